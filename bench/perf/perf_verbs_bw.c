/*
 * Bandwidth loops, shaped like perftest's run_iter_bw / run_iter_bw_server so
 * the numbers compare: up to tx_depth requests outstanding per QP, every
 * cq_mod-th request signaled (and the last), completions polled in batches of
 * 16, a timestamp per post and per completion.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "perf_err.h"
#include "perf_time.h"
#include "perf_verbs.h"

/* wr_id of a signaled request: QP index and how many requests it completes. */
#define WRID(qp, covers) ((uint64_t)(qp) | ((uint64_t)(covers) << 16))
#define WRID_QP(id) ((int)((id)&0xffff))
#define WRID_COVERS(id) ((id) >> 16)
#define IDLE_CHECK 4096 /* empty polls between peer checks */

struct bw_state {
	uint64_t *scnt, *ccnt, *last_sig;
	uint64_t *tposted, *tcompleted; /* exact peak only */
	struct ibv_send_wr *wr;
	struct ibv_sge *sge;
};

static void bw_state_free(struct bw_state *s)
{
	free(s->scnt);
	free(s->ccnt);
	free(s->last_sig);
	free(s->tposted);
	free(s->tcompleted);
	free(s->wr);
	free(s->sge);
}

static int bw_state_alloc(struct bw_state *s, int nq, uint64_t exact_n)
{
	memset(s, 0, sizeof(*s));
	s->scnt = calloc((size_t)nq, sizeof(uint64_t));
	s->ccnt = calloc((size_t)nq, sizeof(uint64_t));
	s->last_sig = calloc((size_t)nq, sizeof(uint64_t));
	s->wr = calloc((size_t)nq, sizeof(*s->wr));
	s->sge = calloc((size_t)nq, sizeof(*s->sge));
	if (exact_n) {
		s->tposted = calloc(exact_n, sizeof(uint64_t));
		s->tcompleted = calloc(exact_n, sizeof(uint64_t));
	}
	if (!s->scnt || !s->ccnt || !s->last_sig || !s->wr || !s->sge ||
	    (exact_n && (!s->tposted || !s->tcompleted))) {
		bw_state_free(s);
		return perf_err(ENOMEM, "out of memory for %llu timestamps", (unsigned long long)exact_n);
	}
	return 0;
}

static void build_wrs(struct perf_verbs *v, struct bw_state *s, uint64_t size, enum ibv_wr_opcode op)
{
	int i;

	for (i = 0; i < v->nq; i++) {
		struct perf_vqp *q = &v->q[i];

		s->sge[i].addr = (uintptr_t)perf_vq_local(q);
		s->sge[i].length = (uint32_t)size;
		s->sge[i].lkey = q->mr->lkey;
		s->wr[i].sg_list = &s->sge[i];
		s->wr[i].num_sge = 1;
		s->wr[i].opcode = op;
		if (op != IBV_WR_SEND) {
			s->wr[i].wr.rdma.remote_addr = q->raddr;
			s->wr[i].wr.rdma.rkey = q->rkey;
		}
		if (op != IBV_WR_RDMA_READ && size <= (uint64_t)v->inline_max)
			s->wr[i].send_flags = IBV_SEND_INLINE;
	}
}

static int post_one(struct perf_verbs *v, struct bw_state *s, int i, int signaled)
{
	struct ibv_send_wr *wr = &s->wr[i], *bad;
	unsigned int base = wr->send_flags & ~(unsigned int)IBV_SEND_SIGNALED;
	int rc;

	wr->send_flags = base | (signaled ? IBV_SEND_SIGNALED : 0);
	wr->wr_id = signaled ? WRID(i, s->scnt[i] + 1 - s->last_sig[i]) : 0;
	rc = ibv_post_send(v->q[i].id->qp, wr, &bad);
	if (rc)
		return perf_err(rc, "ibv_post_send on QP %d after %llu requests: %s", i,
				(unsigned long long)s->scnt[i], strerror(rc));
	s->scnt[i]++;
	if (signaled)
		s->last_sig[i] = s->scnt[i];
	return 0;
}

static int wc_error(const struct ibv_wc *wc, uint64_t done)
{
	return perf_err(EIO, "completion error on QP %d after %llu completions: %s (vendor error 0x%x)",
			WRID_QP(wc->wr_id), (unsigned long long)done, ibv_wc_status_str(wc->status), wc->vendor_err);
}

/*
 * Client side of write, read and send bandwidth. Iteration mode: -n requests
 * per QP. Duration mode: requests until -D seconds have passed; like perftest
 * only the middle of the run counts (a quarter of the duration, in whole
 * seconds, is warm-up and as much is cool-down).
 *
 * BW average: size * requests / (last completion - first post), as perftest.
 * BW peak: perftest's definition (perf_bw_exact) up to PERF_PEAK_EXACT_MAX
 * requests; beyond, and in duration mode, the best window of completions
 * covering at least 16 * tx_depth * QPs requests (perf_window_update); 0 (not
 * measured, as perftest prints it) if the run is shorter than one window.
 */
int perf_verbs_bw_post(struct perf_ctx *ctx, uint64_t size, enum ibv_wr_opcode op, struct perf_result *r)
{
	const struct perf_opts *o = ctx->o;
	struct perf_verbs *v = ctx->priv;
	const int nq = v->nq, dur = o->duration, cq_mod = perf_opts_cq_mod(o, size);
	const uint64_t n = dur ? 0 : o->iters, tot = n * (uint64_t)nq, tx = (uint64_t)v->tx_depth;
	const uint64_t exact_n = (!dur && tot <= PERF_PEAK_EXACT_MAX) ? tot : 0;
	uint64_t totscnt = 0, totccnt = 0, sampled = 0, idle = 0, t0, t_last, t_end = 0, s_from = 0, s_to = 0;
	struct ibv_wc wc[PERF_POLL_BATCH];
	struct perf_window win;
	struct bw_state s;
	int stopping = 0, i, rc;

	rc = bw_state_alloc(&s, nq, exact_n);
	if (rc)
		return rc;
	build_wrs(v, &s, size, op);
	t0 = t_last = perf_now_ns();
	if (dur) {
		uint64_t margin = (uint64_t)(dur / 4) * 1000000000ull;

		t_end = t0 + (uint64_t)dur * 1000000000ull;
		s_from = t0 + margin;
		s_to = t_end - margin;
	}
	/* Windows much longer than what is in flight, so that a burst of
	 * completions for requests long on the wire cannot pass for a peak. */
	perf_window_init(&win, 16 * tx * (uint64_t)nq, t0);
	for (;;) {
		int ne;

		if (dur && !stopping && perf_now_ns() >= t_end) {
			/* Unsignaled requests after the last signaled one would never
			 * complete visibly: close each QP with a signaled one. */
			stopping = 1;
			for (i = 0; i < nq; i++)
				if (s.scnt[i] > s.last_sig[i] && (rc = post_one(v, &s, i, 1)))
					goto out;
		}
		for (i = 0; i < nq && !stopping; i++) {
			while ((dur || s.scnt[i] < n) && s.scnt[i] - s.ccnt[i] < tx) {
				uint64_t k = s.scnt[i];
				int sig = (k + 1) % (uint64_t)cq_mod == 0 || (!dur && k == n - 1);

				if (exact_n)
					s.tposted[totscnt] = perf_now_ns();
				rc = post_one(v, &s, i, sig);
				if (rc)
					goto out;
				totscnt++;
			}
		}
		if (!dur && totccnt >= tot)
			break;
		if (dur && stopping) {
			for (i = 0; i < nq && s.ccnt[i] == s.scnt[i]; i++)
				;
			if (i == nq)
				break;
		}
		ne = perf_cq_poll(&v->scq, wc, PERF_POLL_BATCH);
		if (ne < 0) {
			rc = ne;
			goto out;
		}
		if ((rc = perf_stopped())) {
			perf_err(rc, "%s after %llu of %llu completions", rc == -ETIMEDOUT ? "watchdog expired" : "interrupted",
				 (unsigned long long)totccnt, (unsigned long long)tot);
			goto out;
		}
		/* Nothing completing: has the server gone (disconnect, ABORT)? The
		 * transport's retries may take long or, on some setups, forever. */
		if (ne == 0 && (v->scq.ch || ++idle % IDLE_CHECK == 0) && (rc = perf_peer_check(ctx)) < 0)
			goto out;
		for (int k = 0; k < ne; k++) {
			uint64_t c = WRID_COVERS(wc[k].wr_id), now;
			int q = WRID_QP(wc[k].wr_id);

			if (wc[k].status != IBV_WC_SUCCESS) {
				rc = wc_error(&wc[k], totccnt);
				goto out;
			}
			s.ccnt[q] += c;
			totccnt += c;
			now = t_last = perf_now_ns();
			if (exact_n)
				s.tcompleted[totccnt - 1] = now;
			perf_window_update(&win, now, totccnt);
			if (dur && now >= s_from && now < s_to)
				sampled += c;
		}
	}
	r->size = size;
	if (exact_n) {
		rc = perf_bw_exact(s.tposted, s.tcompleted, tot, size, &r->bw);
		if (rc) {
			perf_err(rc, "no time elapsed");
			goto out;
		}
		r->peak_valid = 1;
		r->iters = tot;
		r->seconds = (double)(s.tcompleted[tot - 1] - s.tposted[0]) / 1e9;
	} else {
		double secs = dur ? (double)(s_to - s_from) / 1e9 : (double)(t_last - t0) / 1e9;

		r->iters = dur ? sampled : tot;
		r->seconds = secs;
		r->bw.bw_avg = secs > 0 ? (double)size * (double)r->iters / secs : 0;
		r->bw.msg_rate = secs > 0 ? (double)r->iters / secs : 0;
		r->bw.bw_peak = perf_window_peak(&win, size);
		r->peak_valid = r->bw.bw_peak > 0;
	}
	r->bytes = size * totccnt;
	rc = 0;
out:
	bw_state_free(&s);
	return rc;
}

/*
 * Server side of send bandwidth: take every message, repost its receive until
 * -n per QP have been posted (duration mode: until the client says DONE).
 */
int perf_verbs_bw_recv(struct perf_ctx *ctx, uint64_t size)
{
	const struct perf_opts *o = ctx->o;
	struct perf_verbs *v = ctx->priv;
	const int dur = o->duration;
	const uint64_t n = o->iters, tot = dur ? 0 : n * (uint64_t)v->nq;
	struct ibv_wc wc[PERF_POLL_BATCH];
	uint64_t rcnt = 0, idle = 0;
	int rc;

	while (dur || rcnt < tot) {
		int ne = perf_cq_poll(&v->rcq, wc, PERF_POLL_BATCH);

		if (ne < 0)
			return ne;
		if ((rc = perf_stopped()))
			return perf_err(rc, "%s after %llu of %llu messages",
					rc == -ETIMEDOUT ? "watchdog expired" : "interrupted", (unsigned long long)rcnt,
					(unsigned long long)tot);
		if (ne == 0) {
			/* Only duration mode ends on DONE; in iteration mode the last
			 * receive completions may still be on their way. */
			if (o->events || ++idle % IDLE_CHECK == 0) {
				rc = perf_peer_check(ctx);
				if (rc < 0 || (rc == 1 && dur))
					return rc < 0 ? rc : 0;
			}
			continue;
		}
		for (int k = 0; k < ne; k++) {
			struct perf_vqp *q = &v->q[wc[k].wr_id];

			if (wc[k].status != IBV_WC_SUCCESS)
				return perf_err(EIO, "receive completion error on QP %d after %llu messages: %s",
						(int)wc[k].wr_id, (unsigned long long)rcnt, ibv_wc_status_str(wc[k].status));
			if (wc[k].byte_len != size)
				return perf_err(EIO, "received %u bytes, expected %llu", wc[k].byte_len,
						(unsigned long long)size);
			rcnt++;
			if (dur || q->rposted < n) {
				rc = perf_post_recvs(v, q, size, 1);
				if (rc)
					return rc;
			}
		}
	}
	return 0;
}
