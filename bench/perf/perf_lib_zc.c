/*
 * Library test zc: zero-copy messages with zc_send_zc / zc_recv_zc / zc_poll.
 *
 * bw:  the client keeps up to -t messages in flight from a pool of -t
 *      buffers (one zc_mr_reg region, or the registration cache with
 *      --rcache); a buffer is reused once its ZC_OP_SEND completion is
 *      reaped. The server keeps up to min(-r, 2 -t) receive buffers posted
 *      (the first ones before the start barrier, like ib_send_bw) and reposts
 *      each as its ZC_OP_RECV completion is reaped. After the last message it
 *      answers with an 8-byte zc_send_zc, which the client has a zc_recv_zc
 *      posted for: the run ends when both the last send completion and that
 *      acknowledgement are in.
 *      With -q N the pools hold N times that, shared by the N connections,
 *      each of which has at most its share in flight (posted); submissions
 *      and reposts sweep the connections round-robin, and each connection
 *      ends with its own acknowledgement, sent once all its n messages are
 *      in. Completions tell their connection by zc_conn_data.
 * lat: ping-pong: each side has one receive posted; the client sends, waits
 *      for its send completion and the reply, reposts; the server waits for
 *      the message, reposts, then replies.
 * --no-rcache-reuse: after each completion the buffer's cache entries are
 *      dropped (zc_mr_invalidate), so every transfer registers afresh.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "perf_err.h"
#include "perf_lib.h"

#define TOKEN_ACK UINT64_MAX
#define BATCH 16
#define LAT_SBUF 0
#define LAT_RBUF 1

/* bw, per connection: messages submitted (client) or receives posted (server), and completed. */
struct zc_conn_st {
	uint64_t posted, done;
};

struct zc_state {
	int *free_idx; /* stack of pool buffers not lent to the library */
	int nfree;
	int share;     /* bw: buffers one connection may hold at a time */
	int next;      /* bw: connection the next sweep starts with */
	uint64_t *seq; /* server bw: which message of its connection each posted buffer gets (posting order) */
	int *owner;    /* server bw: the connection each posted buffer went to */
	struct zc_conn_st *cs;
};

static struct zc_state *state(const struct perf_ctx *ctx)
{
	return perf_lib_of(ctx)->test;
}

static int setup(struct perf_ctx *ctx)
{
	const struct perf_opts *o = ctx->o;
	struct perf_lib_cfg cfg = {.nbuf = 2};
	struct perf_lib *L;
	struct zc_state *z;
	int credits = o->tx_depth > 4096 ? 4096 : o->tx_depth, rc;

	if (!o->lat)
		cfg.nbuf = o->qps * (ctx->is_server ? (o->rx_depth < 2 * credits ? o->rx_depth : 2 * credits) : o->tx_depth);
	rc = perf_lib_setup(ctx, &cfg);
	if (rc)
		return rc;
	L = perf_lib_of(ctx);
	z = calloc(1, sizeof(*z));
	if (z) {
		z->free_idx = calloc((size_t)L->nbuf, sizeof(int));
		z->seq = calloc((size_t)L->nbuf, sizeof(uint64_t));
		z->owner = calloc((size_t)L->nbuf, sizeof(int));
		z->cs = calloc((size_t)L->nconn, sizeof(*z->cs));
	}
	L->test = z;
	if (!z || !z->free_idx || !z->seq || !z->owner || !z->cs)
		return perf_err(ENOMEM, "out of memory");
	/* Equal shares of a pool the 128 MiB cap may have made smaller. */
	z->share = L->nbuf / L->nconn > 0 ? L->nbuf / L->nconn : 1;
	if (ctx->is_server && !o->lat)
		ctx->rx_depth = z->share; /* receive buffers kept posted per connection */
	return 0;
}

static void teardown(struct perf_ctx *ctx)
{
	struct perf_lib *L = perf_lib_of(ctx);
	struct zc_state *z = L ? L->test : NULL;

	/* The connection goes first: it may still hold pool buffers. */
	perf_lib_teardown(ctx);
	if (z) {
		free(z->free_idx);
		free(z->seq);
		free(z->owner);
		free(z->cs);
	}
	free(z);
}

static void reset_pool(struct perf_lib *L, struct zc_state *z)
{
	int i;

	for (i = 0; i < L->nbuf; i++)
		z->free_idx[i] = L->nbuf - 1 - i;
	z->nfree = L->nbuf;
	z->next = 0;
	memset(z->cs, 0, (size_t)L->nconn * sizeof(*z->cs));
}

static void release(struct perf_lib *L, struct zc_state *z, int idx, uint64_t size)
{
	z->free_idx[z->nfree++] = idx;
	if (L->ctx->o->fresh_reg)
		zc_mr_invalidate(L->zctx, perf_lib_buf(L, idx), size);
}

/* Server bw: posts receives, round-robin over the connections, while
 * buffers are free and a connection is below its share and needs more. */
static int post_recvs(struct perf_lib *L, struct zc_state *z, uint64_t size)
{
	const uint64_t n = L->ctx->o->iters;
	int k;

	for (k = 0; k < L->nconn && z->nfree; k++) {
		int ci = (z->next + k) % L->nconn;
		struct zc_conn_st *c = &z->cs[ci];

		while (c->posted < n && c->posted - c->done < (uint64_t)z->share && z->nfree) {
			int idx = z->free_idx[z->nfree - 1], rc;
			uint8_t *buf = perf_lib_buf(L, idx);

			if (L->ctx->o->verify)
				memset(buf, 0, size);
			rc = zc_recv_zc(L->conns[ci], buf, size, L->mr, (uint64_t)idx);
			if (rc == -ENOSPC)
				break; /* this connection's posted-buffer table is full */
			if (rc)
				return perf_lib_fail(L, rc, "zc_recv_zc");
			z->nfree--;
			z->seq[idx] = c->posted++;
			z->owner[idx] = ci;
		}
	}
	z->next = (z->next + 1) % L->nconn;
	return 0;
}

static int prepare(struct perf_ctx *ctx, uint64_t size)
{
	struct perf_lib *L = perf_lib_of(ctx);
	struct zc_state *z = state(ctx);
	uint8_t *rbuf = perf_lib_buf(L, LAT_RBUF);
	int rc;

	reset_pool(L, z);
	if (ctx->o->lat) {
		rc = perf_lib_verify_size(L, size, LAT_SBUF, 1, ctx->is_server ? 1 : 0);
		if (rc)
			return rc;
		if (ctx->o->verify)
			memset(rbuf, 0, size);
		rc = zc_recv_zc(L->conns[0], rbuf, size, L->mr, LAT_RBUF);
		return rc ? perf_lib_fail(L, rc, "zc_recv_zc") : 0;
	}
	if (ctx->is_server) {
		rc = perf_lib_verify_size(L, size, 0, 0, 0); /* the reference pattern only */
		return rc ? rc : post_recvs(L, z, size);
	}
	return perf_lib_verify_size(L, size, 0, L->nbuf, 0);
}

static int unexpected(const struct zc_completion *c, const char *want)
{
	return perf_err(EPROTO, "unexpected completion: op %d token %llu len %zu (expected %s)", c->op,
			(unsigned long long)c->token, c->len, want);
}

static int bw_server(struct perf_ctx *ctx, uint64_t size)
{
	struct perf_lib *L = perf_lib_of(ctx);
	struct zc_state *z = state(ctx);
	const uint64_t n = ctx->o->iters, tot = n * (uint64_t)L->nconn;
	struct zc_completion c[BATCH];
	uint64_t done = 0;
	int rc = 0, k, ne, acks = 0, ci;

	perf_lib_stats_begin(L);
	while (done < tot || acks < L->nconn) {
		if ((rc = post_recvs(L, z, size)))
			goto out;
		ne = perf_lib_poll(L, c, BATCH);
		if (ne < 0) {
			rc = ne;
			goto out;
		}
		for (k = 0; k < ne; k++) {
			int idx = (int)c[k].token;

			ci = perf_lib_conn_index(L, &c[k]);
			if (c[k].op == ZC_OP_SEND && c[k].token == TOKEN_ACK && ci >= 0) {
				acks++;
				continue;
			}
			if (c[k].op != ZC_OP_RECV || c[k].token >= (uint64_t)L->nbuf || ci != z->owner[idx]) {
				rc = unexpected(&c[k], "ZC_OP_RECV");
				goto out;
			}
			if (c[k].len != size) {
				rc = perf_err(EIO, "message #%llu of connection %d has %zu bytes, expected %llu",
					      (unsigned long long)z->seq[idx], ci, c[k].len, (unsigned long long)size);
				goto out;
			}
			/* Posted buffers fill in posting order: the buffer posted k-th holds message #k. */
			if (ctx->o->verify &&
			    (rc = perf_lib_check(L, perf_lib_buf(L, idx), size, 0, z->seq[idx], "message")))
				goto out;
			release(L, z, idx, size);
			done++;
			/* Every message of this connection is in: answer with its 8-byte acknowledgement. */
			if (++z->cs[ci].done == n &&
			    (rc = zc_send_zc(L->conns[ci], perf_lib_ack(L, ci), PERF_LIB_ACK_LEN, L->mr, TOKEN_ACK))) {
				rc = perf_lib_fail(L, rc, "zc_send_zc (acknowledgement)");
				goto out;
			}
		}
	}
out:
	perf_lib_stats_end(L, size);
	return rc ? perf_lib_where(rc, done, done, tot) : 0;
}

static int bw_client(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	struct perf_lib *L = perf_lib_of(ctx);
	struct zc_state *z = state(ctx);
	const uint64_t n = ctx->o->iters, tot = n * (uint64_t)L->nconn;
	const uint64_t tx = (uint64_t)(ctx->o->tx_depth < z->share ? ctx->o->tx_depth : z->share);
	struct zc_completion c[BATCH];
	uint64_t sent = 0, done = 0;
	struct perf_lib_bw b;
	int acked = 0, rc, k, ne, ci;

	/* Where the server's acknowledgements land; posted before the clock starts. */
	for (ci = 0; ci < L->nconn; ci++) {
		rc = zc_recv_zc(L->conns[ci], perf_lib_ack(L, ci), PERF_LIB_ACK_LEN, L->mr, TOKEN_ACK);
		if (rc)
			return perf_lib_fail(L, rc, "zc_recv_zc (acknowledgement)");
	}
	perf_lib_stats_begin(L);
	rc = perf_lib_bw_begin(&b, tot, 16 * tx * (uint64_t)L->nconn);
	if (rc)
		return rc;
	while (done < tot || acked < L->nconn) {
		for (k = 0; k < L->nconn && z->nfree; k++) {
			struct zc_conn_st *cs = &z->cs[ci = (z->next + k) % L->nconn];

			while (cs->posted < n && cs->posted - cs->done < tx && z->nfree) {
				int idx = z->free_idx[z->nfree - 1];
				uint8_t *buf = perf_lib_buf(L, idx);

				if (ctx->o->verify)
					perf_lib_stamp(buf, size, cs->posted);
				perf_lib_bw_posted(&b, sent);
				rc = zc_send_zc(L->conns[ci], buf, size, L->mr, (uint64_t)idx);
				if (rc == -EAGAIN)
					break; /* the library's queue is full: reap first */
				if (rc) {
					rc = perf_lib_fail(L, rc, "zc_send_zc");
					goto out;
				}
				z->nfree--;
				cs->posted++;
				sent++;
			}
		}
		z->next = (z->next + 1) % L->nconn;
		ne = perf_lib_poll(L, c, BATCH);
		if (ne < 0) {
			rc = ne;
			goto out;
		}
		for (k = 0; k < ne; k++) {
			ci = perf_lib_conn_index(L, &c[k]);
			if (c[k].token == TOKEN_ACK && c[k].op == ZC_OP_RECV && ci >= 0) {
				acked++;
				continue;
			}
			if (c[k].op != ZC_OP_SEND || c[k].token >= (uint64_t)L->nbuf || ci < 0) {
				rc = unexpected(&c[k], "ZC_OP_SEND");
				goto out;
			}
			release(L, z, (int)c[k].token, size);
			z->cs[ci].done++;
			done++;
			perf_lib_bw_completed(&b, done);
		}
	}
	/* Complete when the server has every message. */
	perf_lib_bw_completed(&b, tot);
	perf_lib_stats_end(L, size);
	return perf_lib_bw_end(&b, size, r);
out:
	perf_lib_bw_free(&b);
	return perf_lib_where(rc, sent, done, tot);
}

static int run_bw(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	return ctx->is_server ? bw_server(ctx, size) : bw_client(ctx, size, r);
}

/* Reaps until the wanted op (ZC_OP_SEND or ZC_OP_RECV) has completed; notes the others. */
static int lat_wait(struct perf_lib *L, int want, int *send_busy, uint64_t size)
{
	struct zc_completion c;
	int got = 0, rc;

	if (want == ZC_OP_SEND && !*send_busy)
		return 0;
	while (!got) {
		rc = perf_lib_poll(L, &c, 1);
		if (rc < 0)
			return rc;
		if (rc == 0)
			continue;
		if (c.op == ZC_OP_SEND && c.token == LAT_SBUF && *send_busy) {
			*send_busy = 0;
			if (L->ctx->o->fresh_reg)
				zc_mr_invalidate(L->zctx, perf_lib_buf(L, LAT_SBUF), size);
			got = want == ZC_OP_SEND;
		} else if (c.op == ZC_OP_RECV && c.token == LAT_RBUF && want == ZC_OP_RECV) {
			if (c.len != size)
				return perf_err(EIO, "a %zu-byte message, expected %llu", c.len, (unsigned long long)size);
			if (L->ctx->o->fresh_reg)
				zc_mr_invalidate(L->zctx, perf_lib_buf(L, LAT_RBUF), size);
			got = 1;
		} else
			return unexpected(&c, want == ZC_OP_SEND ? "ZC_OP_SEND" : "ZC_OP_RECV");
	}
	return 0;
}

static int lat_send(struct perf_lib *L, uint64_t size, uint64_t i, int *send_busy)
{
	uint8_t *sbuf = perf_lib_buf(L, LAT_SBUF);
	int rc;

	if (L->ctx->o->verify)
		perf_lib_stamp(sbuf, size, i);
	rc = zc_send_zc(L->conns[0], sbuf, size, L->mr, LAT_SBUF);
	if (rc)
		return perf_lib_fail(L, rc, "zc_send_zc");
	*send_busy = 1;
	return 0;
}

/* Checks the message just received, then posts the buffer again if the run needs it. */
static int lat_took(struct perf_lib *L, uint64_t size, uint64_t i, int dir)
{
	uint8_t *rbuf = perf_lib_buf(L, LAT_RBUF);
	int rc;

	if (L->ctx->o->verify && (rc = perf_lib_check(L, rbuf, size, dir, i, dir ? "reply" : "message")))
		return rc;
	if (i + 1 >= L->ctx->o->iters)
		return 0;
	if (L->ctx->o->verify)
		memset(rbuf, 0, size);
	rc = zc_recv_zc(L->conns[0], rbuf, size, L->mr, LAT_RBUF);
	return rc ? perf_lib_fail(L, rc, "zc_recv_zc") : 0;
}

static int run_lat(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	struct perf_lib *L = perf_lib_of(ctx);
	const uint64_t n = ctx->o->iters;
	struct perf_lib_lat l;
	int send_busy = 0, rc = 0;
	uint64_t i;

	perf_lib_stats_begin(L);
	if (ctx->is_server) {
		for (i = 0; i < n && !rc; i++) {
			if ((rc = perf_lib_stopped(i, n)) || (rc = lat_wait(L, ZC_OP_RECV, &send_busy, size)) ||
			    (rc = lat_took(L, size, i, 0)) || (rc = lat_wait(L, ZC_OP_SEND, &send_busy, size)))
				break;
			rc = lat_send(L, size, i, &send_busy);
		}
		if (!rc)
			rc = lat_wait(L, ZC_OP_SEND, &send_busy, size);
		perf_lib_stats_end(L, size);
		return rc;
	}
	rc = perf_lib_lat_begin(&l, n);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		if ((rc = perf_lib_stopped(i, n)))
			break;
		perf_lib_lat_mark(&l, i);
		if ((rc = lat_send(L, size, i, &send_busy)) || (rc = lat_wait(L, ZC_OP_RECV, &send_busy, size)) ||
		    (rc = lat_wait(L, ZC_OP_SEND, &send_busy, size)) || (rc = lat_took(L, size, i, 1)))
			break;
	}
	if (rc) {
		perf_lib_lat_free(&l);
		return rc;
	}
	perf_lib_stats_end(L, size);
	return perf_lib_lat_end(&l, size, 2, 2 * size, r);
}

const struct perf_test perf_test_zc = {
	.name = "zc",
	.title = "zc_send_zc/zc_recv_zc",
	.about = "zcrdma zero-copy: zc_send_zc / zc_recv_zc / zc_poll, -t in flight (bw; --lat)",
	.validate = perf_opts_check_lib,
	.setup = setup,
	.prepare = prepare,
	.run_bw = run_bw,
	.run_lat = run_lat,
	.teardown = teardown,
	.library = 1,
	.skip = perf_lib_skip,
	.header = perf_lib_header,
	.footer = perf_lib_footer,
};
