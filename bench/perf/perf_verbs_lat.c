/*
 * Latency loops, shaped like perftest's run_iter_lat_send (ib_send_lat),
 * run_iter_lat_write (ib_write_lat) and run_iter_lat (ib_read_lat): one
 * message in flight, a timestamp at each post, samples = time between
 * consecutive posts (halved for the ping-pongs by perf_lat_compute).
 * The client starts; the server answers. Duration mode counts the round
 * trips in the middle half of the run like the bandwidth loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "perf_err.h"
#include "perf_time.h"
#include "perf_verbs.h"

#define SPIN_CHECK 65536 /* spins between stop/peer checks */

struct lat_run {
	struct perf_ctx *ctx;
	struct perf_verbs *v;
	struct perf_vqp *q;
	uint64_t n;          /* iterations, 0 in duration mode */
	uint64_t *stamp;     /* post times (iteration mode) */
	uint64_t t0, t_end, s_from, s_to, sampled, last;
	struct ibv_sge sge;
	struct ibv_send_wr wr;
};

static int lat_begin(struct lat_run *l, struct perf_ctx *ctx, uint64_t size, enum ibv_wr_opcode op)
{
	const struct perf_opts *o = ctx->o;

	memset(l, 0, sizeof(*l));
	l->ctx = ctx;
	l->v = ctx->priv;
	l->q = &l->v->q[0];
	l->n = o->duration ? 0 : o->iters;
	if (l->n && !ctx->is_server) {
		l->stamp = calloc(l->n, sizeof(uint64_t));
		if (!l->stamp)
			return perf_err(ENOMEM, "out of memory for %llu timestamps", (unsigned long long)l->n);
	}
	l->sge.addr = (uintptr_t)perf_vq_local(l->q);
	l->sge.length = (uint32_t)size;
	l->sge.lkey = l->q->mr->lkey;
	l->wr.sg_list = &l->sge;
	l->wr.num_sge = 1;
	l->wr.opcode = op;
	l->wr.send_flags = IBV_SEND_SIGNALED;
	if (op != IBV_WR_SEND) {
		l->wr.wr.rdma.remote_addr = l->q->raddr;
		l->wr.wr.rdma.rkey = l->q->rkey;
	}
	if (op != IBV_WR_RDMA_READ && size <= (uint64_t)l->v->inline_max)
		l->wr.send_flags |= IBV_SEND_INLINE;
	l->t0 = perf_now_ns();
	if (o->duration) {
		uint64_t margin = (uint64_t)(o->duration / 4) * 1000000000ull;

		l->t_end = l->t0 + (uint64_t)o->duration * 1000000000ull;
		l->s_from = l->t0 + margin;
		l->s_to = l->t_end - margin;
	}
	return 0;
}

/* Client: 0 to start iteration i (its post time recorded), 1 when done, < 0 if stopped. */
static int lat_next(struct lat_run *l, uint64_t i)
{
	uint64_t now = perf_now_ns();
	int rc = perf_stopped();

	if (rc)
		return perf_err(rc, "%s after %llu round trips", rc == -ETIMEDOUT ? "watchdog expired" : "interrupted",
				(unsigned long long)i);
	if (l->n) {
		if (i >= l->n)
			return 1;
		l->stamp[i] = now;
		return 0;
	}
	if (now >= l->t_end)
		return 1;
	if (now >= l->s_from && now < l->s_to)
		l->sampled++;
	return 0;
}

static int lat_end(struct lat_run *l, uint64_t size, int rtt_factor, uint64_t bytes_per_iter, struct perf_result *r)
{
	int rc = 0;

	r->size = size;
	r->has_lat = 1;
	if (l->n) {
		/* perftest: n posts give n - 1 intervals. */
		uint64_t m = l->n - 1;

		for (uint64_t i = 0; i < m; i++)
			l->stamp[i] = l->stamp[i + 1] - l->stamp[i];
		rc = perf_lat_compute(l->stamp, m, rtt_factor, &r->lat);
		if (rc)
			rc = perf_err(rc, "too few samples for latency statistics");
		r->iters = l->n;
		r->seconds = (double)(perf_now_ns() - l->t0) / 1e9;
		r->bytes = bytes_per_iter * l->n;
	} else {
		double secs = (double)(l->s_to - l->s_from) / 1e9;

		r->iters = l->sampled;
		r->seconds = secs;
		r->lat.avg = l->sampled ? secs * 1e6 / (double)l->sampled / rtt_factor : 0;
		r->bw.msg_rate = secs > 0 ? (double)l->sampled / secs : 0;
		r->bytes = bytes_per_iter * l->last;
	}
	free(l->stamp);
	l->stamp = NULL;
	return rc;
}

static int post(struct lat_run *l)
{
	struct ibv_send_wr *bad;
	int rc = ibv_post_send(l->q->id->qp, &l->wr, &bad);

	return rc ? perf_err(rc, "ibv_post_send: %s", strerror(rc)) : 0;
}

/*
 * One completion from c. Checks the peer now and then: an error if it is
 * gone; with peer_ends (duration-mode server loops) its DONE ends the wait
 * (returns 1).
 */
static int wait_one(struct lat_run *l, struct perf_cqw *c, struct ibv_wc *wc, int peer_ends)
{
	uint64_t spins = 0;
	int rc;

	for (;;) {
		int ne = perf_cq_poll(c, wc, 1);

		if (ne < 0)
			return ne;
		if (ne == 1) {
			if (wc->status != IBV_WC_SUCCESS)
				return perf_err(EIO, "completion error after %llu round trips: %s", (unsigned long long)l->last,
						ibv_wc_status_str(wc->status));
			return 0;
		}
		if (c->ch || ++spins % SPIN_CHECK == 0) {
			if ((rc = perf_stopped()))
				return perf_err(rc, "%s after %llu round trips",
						rc == -ETIMEDOUT ? "watchdog expired" : "interrupted",
						(unsigned long long)l->last);
			/* Also catches a peer that vanished or gave up. */
			rc = perf_peer_check(l->ctx);
			if (rc < 0 || (rc == 1 && peer_ends))
				return rc;
		}
	}
}

/* Send ping-pong (ib_send_lat): both sides keep receives posted in prepare. */
int perf_verbs_lat_send(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	struct lat_run l;
	struct ibv_wc wc;
	int server = ctx->is_server, rc;
	uint64_t i;

	rc = lat_begin(&l, ctx, size, IBV_WR_SEND);
	if (rc)
		return rc;
	for (i = 0;; i++) {
		if (server) {
			if (l.n && i >= l.n)
				break;
			rc = wait_one(&l, &l.v->rcq, &wc, !l.n);
		} else
			rc = lat_next(&l, i);
		if (rc)
			break;
		if (server && wc.byte_len != size) {
			rc = perf_err(EIO, "received %u bytes, expected %llu", wc.byte_len, (unsigned long long)size);
			break;
		}
		if (server && (!l.n || l.q->rposted < l.n) && (rc = perf_post_recvs(l.v, l.q, size, 1)))
			break;
		if ((rc = post(&l)) || (rc = wait_one(&l, &l.v->scq, &wc, 0)))
			break;
		if (!server) {
			if ((rc = wait_one(&l, &l.v->rcq, &wc, 0)))
				break;
			if (wc.byte_len != size) {
				rc = perf_err(EIO, "received %u bytes, expected %llu", wc.byte_len,
					      (unsigned long long)size);
				break;
			}
			if ((!l.n || l.q->rposted < l.n) && (rc = perf_post_recvs(l.v, l.q, size, 1)))
				break;
		}
		l.last = i + 1;
	}
	if (rc == 1)
		rc = 0; /* the client ran out of time or iterations; the server heard DONE */
	if (rc) {
		free(l.stamp);
		return rc;
	}
	if (server) {
		free(l.stamp);
		return 0;
	}
	return lat_end(&l, size, 2, 2 * size, r);
}

/* Spins until the peer's write has put (uint8_t)want in the last byte. */
static int wait_byte(struct lat_run *l, volatile uint8_t *p, uint8_t want, int peer_ends)
{
	uint64_t spins = 0;
	int rc;

	while (*p != want) {
		if (++spins % SPIN_CHECK)
			continue;
		if ((rc = perf_stopped()))
			return perf_err(rc, "%s after %llu round trips", rc == -ETIMEDOUT ? "watchdog expired" : "interrupted",
					(unsigned long long)l->last);
		rc = perf_peer_check(l->ctx);
		if (rc < 0 || (rc == 1 && peer_ends))
			return rc;
	}
	return 0;
}

/*
 * Write ping-pong (ib_write_lat): each side RDMA-writes size bytes whose last
 * byte is the iteration count and spins on the last byte of its own exposed
 * half until the peer's write lands there. RDMA places a write in order on
 * soft-RoCE as on the NICs perftest targets, so the last byte comes last.
 */
int perf_verbs_lat_write(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	struct lat_run l;
	struct ibv_wc wc;
	volatile uint8_t *poll_at, *post_at;
	int server = ctx->is_server, rc = 0;
	uint64_t i;

	rc = lat_begin(&l, ctx, size, IBV_WR_RDMA_WRITE);
	if (rc)
		return rc;
	poll_at = perf_vq_exposed(l.v, l.q) + size - 1;
	post_at = perf_vq_local(l.q) + size - 1;
	for (i = 0;; i++) {
		if (server) {
			if (l.n && i >= l.n)
				break;
			rc = wait_byte(&l, poll_at, (uint8_t)(i + 1), !l.n);
		} else
			rc = lat_next(&l, i);
		if (rc)
			break;
		*post_at = (uint8_t)(i + 1);
		if ((rc = post(&l)) || (rc = wait_one(&l, &l.v->scq, &wc, 0)))
			break;
		if (!server && (rc = wait_byte(&l, poll_at, (uint8_t)(i + 1), 0)))
			break;
		l.last = i + 1;
	}
	if (rc == 1)
		rc = 0;
	if (rc || server) {
		free(l.stamp);
		return rc;
	}
	return lat_end(&l, size, 2, 2 * size, r);
}

/* One RDMA read at a time (ib_read_lat); the server only waits. */
int perf_verbs_lat_read(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	struct lat_run l;
	struct ibv_wc wc;
	uint64_t i;
	int rc;

	if (ctx->is_server)
		return 0;
	rc = lat_begin(&l, ctx, size, IBV_WR_RDMA_READ);
	if (rc)
		return rc;
	for (i = 0; (rc = lat_next(&l, i)) == 0; i++) {
		if ((rc = post(&l)) || (rc = wait_one(&l, &l.v->scq, &wc, 0)))
			break;
		l.last = i + 1;
	}
	if (rc < 0) {
		free(l.stamp);
		return rc;
	}
	return lat_end(&l, size, 1, size, r);
}
