/*
 * Library tests stream and msg: the blocking socket-like calls.
 *
 *   stream  bw: the client zc_send()s -s bytes per iteration; the server
 *               zc_recv()s until it has all -s bytes of the iteration.
 *           lat: ping-pong of -s bytes, zc_send/zc_recv both ways.
 *   msg     the same with zc_msg_send()/zc_msg_recv() (whole messages).
 *
 * Bandwidth ends when the server, having received every byte of the last
 * iteration, answers with an 8-byte acknowledgement on the same connection
 * (same calls): a send that returned after copying into the send ring is
 * not counted as delivered. Sizes beyond the eager size go by rendezvous,
 * where a blocking send returns once the peer has read the buffer: each
 * return then counts as a completion (for the peak, as in perf_bw_exact). Latency halves round trips like ib_send_lat.
 * Buffer 0 is what a side sends, buffer 1 where it receives.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "perf_err.h"
#include "perf_lib.h"

#define SBUF 0
#define RBUF 1

struct stream_ops {
	const char *send_name, *recv_name;
	ssize_t (*send)(struct zc_conn *c, const void *buf, size_t len, int flags);
	int msg; /* whole messages: one receive returns exactly one */
};

static const struct stream_ops stream_ops = {"zc_send", "zc_recv", zc_send, 0};
static const struct stream_ops msg_ops = {"zc_msg_send", "zc_msg_recv", zc_msg_send, 1};

static const struct stream_ops *ops_of(const struct perf_ctx *ctx)
{
	return ctx->test->name[0] == 'm' ? &msg_ops : &stream_ops;
}

/* One call: the count, or -EAGAIN (ZC_DONTWAIT and nothing fitted), or a recorded failure. */
static ssize_t send_some(struct perf_lib *L, const struct stream_ops *ops, struct zc_conn *c, const uint8_t *buf,
			 uint64_t len, int flags)
{
	ssize_t n = ops->send(c, buf, len, flags);

	if (n == -EAGAIN && flags)
		return n;
	return n < 0 ? perf_lib_fail(L, (int)n, ops->send_name) : n;
}

/* One call: stream bytes (a clean close is an error here), or one whole
 * message of exactly len bytes; -EAGAIN as send_some. */
static ssize_t recv_some(struct perf_lib *L, const struct stream_ops *ops, struct zc_conn *c, uint8_t *buf,
			 uint64_t len, int flags)
{
	ssize_t n = ops->msg ? zc_msg_recv(c, buf, len, flags) : zc_recv(c, buf, len, flags);

	if (n == -EAGAIN && flags)
		return n;
	if (n < 0)
		return perf_lib_fail(L, (int)n, ops->recv_name);
	if (ops->msg && (uint64_t)n != len)
		return perf_err(EIO, "zc_msg_recv: a %zd-byte message, expected %llu", n, (unsigned long long)len);
	if (n == 0)
		return perf_err(ECONNRESET, "zc_recv: the peer closed the connection");
	return n;
}

static int send_all(struct perf_lib *L, const struct stream_ops *ops, const uint8_t *buf, uint64_t size)
{
	ssize_t n = send_some(L, ops, L->conns[0], buf, size, 0);

	if (n < 0)
		return (int)n;
	if ((uint64_t)n != size)
		return perf_err(EIO, "%s took %zd of %llu bytes while blocking", ops->send_name, n,
				(unsigned long long)size);
	if (L->ctx->o->fresh_reg)
		zc_mr_invalidate(L->zctx, buf, size);
	return 0;
}

/* stream: zc_recv until size bytes are in; msg: one zc_msg_recv of exactly size bytes. */
static int recv_all(struct perf_lib *L, const struct stream_ops *ops, uint8_t *buf, uint64_t size)
{
	uint64_t got = 0;
	ssize_t n;

	do {
		n = recv_some(L, ops, L->conns[0], buf + got, size - got, 0);
		if (n < 0)
			return (int)n;
		got += (uint64_t)n;
	} while (got < size);
	if (L->ctx->o->fresh_reg)
		zc_mr_invalidate(L->zctx, buf, size);
	return 0;
}

/* Connection ci's send and receive buffers (shared when the pool cap leaves fewer than 2 -q). */
static uint8_t *sbuf_of(const struct perf_lib *L, int ci)
{
	return perf_lib_buf(L, (2 * ci + SBUF) % L->nbuf);
}

static uint8_t *rbuf_of(const struct perf_lib *L, int ci)
{
	return perf_lib_buf(L, (2 * ci + RBUF) % L->nbuf);
}

static int setup(struct perf_ctx *ctx)
{
	const struct perf_lib_cfg cfg = {.nbuf = 2 * ctx->o->qps, .no_mr = 1};
	int rc = perf_lib_setup(ctx, &cfg);

	/* --verify stamps and checks each connection's payload in place. */
	if (!rc && ctx->o->verify && perf_lib_of(ctx)->nbuf < cfg.nbuf)
		rc = perf_err(EINVAL, "--verify with -q %d needs %d buffers of %zu bytes, beyond the %llu MiB pool: "
				      "use a smaller -s or -q",
			      ctx->o->qps, cfg.nbuf, perf_lib_of(ctx)->stride, PERF_LIB_POOL_BYTES >> 20);
	return rc;
}

static int prepare(struct perf_ctx *ctx, uint64_t size)
{
	struct perf_lib *L = perf_lib_of(ctx);

	/* Each side sends its own direction's pattern. */
	return perf_lib_verify_size(L, size, 0, L->nbuf, ctx->is_server ? 1 : 0);
}

/* The receiving side of one payload: clear, take it, check it. */
static int take(struct perf_lib *L, const struct stream_ops *ops, uint64_t size, int dir, uint64_t i)
{
	uint8_t *rbuf = perf_lib_buf(L, RBUF);
	int rc;

	if (L->ctx->o->verify)
		memset(rbuf, 0, size);
	rc = recv_all(L, ops, rbuf, size);
	if (!rc && L->ctx->o->verify)
		rc = perf_lib_check(L, rbuf, size, dir, i, dir ? "reply" : "payload");
	return rc;
}

static int give(struct perf_lib *L, const struct stream_ops *ops, uint64_t size, uint64_t i)
{
	uint8_t *sbuf = perf_lib_buf(L, SBUF);

	if (L->ctx->o->verify)
		perf_lib_stamp(sbuf, size, i);
	return send_all(L, ops, sbuf, size);
}

/*
 * -q > 1: every connection driven from this thread with ZC_DONTWAIT calls,
 * so that a connection without credit or data does not hold up the others:
 * the client sweeps them round-robin, the server waits for events. Per
 * connection: iteration i, bytes of it done, and (client) the
 * acknowledgement's bytes. A rendezvous message (msg beyond the eager size)
 * still returns once the peer has read it.
 */
struct multi_conn {
	uint64_t i, off, ack;
};

/* Takes what connection ci has (one receive); at its last iteration tells its client side. */
static int server_take(struct perf_lib *L, const struct stream_ops *ops, uint64_t size, struct multi_conn *c, int ci,
		       uint64_t *total, int *open)
{
	const uint64_t n = L->ctx->o->iters;
	const int verify = L->ctx->o->verify;
	uint8_t *rbuf = rbuf_of(L, ci);
	ssize_t got = recv_some(L, ops, L->conns[ci], rbuf + c->off, size - c->off, ZC_DONTWAIT);
	int rc;

	if (got == -EAGAIN)
		return 0;
	if (got < 0)
		return (int)got;
	c->off += (uint64_t)got;
	if (c->off < size)
		return 0;
	if (verify && (rc = perf_lib_check(L, rbuf, size, 0, c->i, "payload")))
		return rc;
	if (L->ctx->o->fresh_reg)
		zc_mr_invalidate(L->zctx, rbuf, size);
	if (verify)
		memset(rbuf, 0, size);
	c->off = 0;
	++*total;
	if (++c->i < n)
		return 0;
	got = send_some(L, ops, L->conns[ci], perf_lib_ack(L, ci), PERF_LIB_ACK_LEN, 0);
	--*open;
	return got < 0 ? (int)got : 0;
}

/* The server is one loop over zc_wait_events(), as zcrdma.h's many-client
 * server: a connection is looked at when it is readable, never swept.
 * READABLE is level-triggered, so each report takes one receive and the
 * next call reports the connection again while more waits: no receive
 * answers -EAGAIN, and calls with a timeout that find work make no system
 * call. */
static int multi_server(struct perf_lib *L, const struct stream_ops *ops, uint64_t size, struct multi_conn *m)
{
	const uint64_t n = L->ctx->o->iters;
	const int q = L->nconn;
	struct zc_event ev[64];
	uint64_t total = 0;
	int ci, rc = 0, open = q, k, e;

	for (ci = 0; ci < q && L->ctx->o->verify; ci++)
		memset(rbuf_of(L, ci), 0, size);
	while (open && !rc) {
		if ((rc = perf_lib_stopped(total, n * (uint64_t)q)))
			break;
		k = zc_wait_events(L->zctx, ev, 64, PERF_LIB_SLICE_MS);
		if (k < 0) {
			rc = perf_lib_fail(L, k, "zc_wait_events");
			break;
		}
		if (k == 0 && (rc = perf_peer_check(L->ctx)) > 0)
			rc = 0;
		for (e = 0; e < k && !rc; e++) {
			ci = (int)(intptr_t)ev[e].data;
			if (!ev[e].conn || ci < 0 || ci >= q || L->conns[ci] != ev[e].conn)
				continue;
			if (ev[e].type == ZC_EV_ERROR)
				rc = perf_lib_fail(L, ev[e].status, "connection");
			else if (ev[e].type == ZC_EV_READABLE && m[ci].i < n)
				rc = server_take(L, ops, size, &m[ci], ci, &total, &open);
		}
	}
	return rc ? perf_lib_where(rc, total, total, n * (uint64_t)q) : 0;
}

static int multi_client(struct perf_lib *L, const struct stream_ops *ops, uint64_t size, struct multi_conn *m,
			struct perf_lib_bw *b)
{
	const uint64_t n = L->ctx->o->iters;
	const int q = L->nconn;
	uint64_t idle = 0, started = 0, done = 0;
	int ci, rc = 0, open = q;

	while (open && !rc) {
		int progress = 0;

		if ((rc = perf_lib_stopped(done, n * (uint64_t)q)))
			break;
		for (ci = 0; ci < q && !rc; ci++) {
			struct multi_conn *c = &m[ci];
			uint8_t *sbuf = sbuf_of(L, ci);
			ssize_t got;

			if (c->i < n) {
				/* An iteration starts when its first bytes are taken (a retry moves its time). */
				if (c->off == 0) {
					if (L->ctx->o->verify)
						perf_lib_stamp(sbuf, size, c->i);
					perf_lib_bw_posted(b, started);
				}
				got = send_some(L, ops, L->conns[ci], sbuf + c->off, size - c->off, ZC_DONTWAIT);
				if (got == -EAGAIN)
					continue;
				if (got < 0) {
					rc = (int)got;
					break;
				}
				progress = 1;
				started += c->off == 0;
				c->off += (uint64_t)got;
				if (c->off == size) {
					if (L->ctx->o->fresh_reg)
						zc_mr_invalidate(L->zctx, sbuf, size);
					c->off = 0;
					c->i++;
				}
			} else if (c->ack < PERF_LIB_ACK_LEN) {
				got = recv_some(L, ops, L->conns[ci], perf_lib_ack(L, ci) + c->ack, PERF_LIB_ACK_LEN - c->ack,
						ZC_DONTWAIT);
				if (got == -EAGAIN)
					continue;
				if (got < 0) {
					rc = (int)got;
					break;
				}
				progress = 1;
				c->ack += (uint64_t)got;
				/* The server has every byte of this connection: n completions. */
				if (c->ack == PERF_LIB_ACK_LEN) {
					done += n;
					perf_lib_bw_completed(b, done);
					open--;
				}
			}
		}
		if (!progress && !rc)
			rc = perf_lib_idle(L, &idle);
	}
	return rc ? perf_lib_where(rc, started, done, n * (uint64_t)q) : 0;
}

static int run_bw_multi(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	struct perf_lib *L = perf_lib_of(ctx);
	const struct stream_ops *ops = ops_of(ctx);
	struct multi_conn *m = calloc((size_t)L->nconn, sizeof(*m));
	struct perf_lib_bw b;
	int rc;

	if (!m)
		return perf_err(ENOMEM, "out of memory");
	perf_lib_stats_begin(L);
	if (ctx->is_server)
		rc = multi_server(L, ops, size, m);
	else if (!(rc = perf_lib_bw_begin(&b, ctx->o->iters * (uint64_t)L->nconn,
					  16 * (uint64_t)L->copts.credits * (uint64_t)L->nconn))) {
		rc = multi_client(L, ops, size, m, &b);
		if (rc)
			perf_lib_bw_free(&b);
	}
	perf_lib_stats_end(L, size);
	free(m);
	return rc || ctx->is_server ? rc : perf_lib_bw_end(&b, size, r);
}

static int run_bw(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	struct perf_lib *L = perf_lib_of(ctx);
	const struct stream_ops *ops = ops_of(ctx);
	const uint64_t n = ctx->o->iters;
	uint8_t *ack = perf_lib_ack(L, 0), *sbuf = perf_lib_buf(L, SBUF);
	struct perf_lib_bw b;
	uint64_t i;
	int rc = 0;

	if (L->nconn > 1)
		return run_bw_multi(ctx, size, r);
	perf_lib_stats_begin(L);
	if (ctx->is_server) {
		for (i = 0; i < n && !rc; i++)
			if (!(rc = perf_lib_stopped(i, n)))
				rc = take(L, ops, size, 0, i);
		if (!rc)
			rc = send_all(L, ops, ack, PERF_LIB_ACK_LEN);
		perf_lib_stats_end(L, size);
		return rc;
	}
	rc = perf_lib_bw_begin(&b, n, 16 * (uint64_t)L->copts.credits);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		if ((rc = perf_lib_stopped(i, n)))
			goto out;
		if (ctx->o->verify)
			perf_lib_stamp(sbuf, size, i);
		perf_lib_bw_posted(&b, i);
		if ((rc = send_all(L, ops, sbuf, size)))
			goto out;
		/* Beyond the eager size a blocking send returns once the peer has
		 * read the buffer (rendezvous): that is a completion. */
		if (size > L->copts.eager_size)
			perf_lib_bw_completed(&b, i + 1);
	}
	/* Done when the server says it has every byte. */
	if ((rc = recv_all(L, ops, ack, PERF_LIB_ACK_LEN)))
		goto out;
	perf_lib_bw_completed(&b, n);
	perf_lib_stats_end(L, size);
	return perf_lib_bw_end(&b, size, r);
out:
	perf_lib_bw_free(&b);
	return rc;
}

static int run_lat(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	struct perf_lib *L = perf_lib_of(ctx);
	const struct stream_ops *ops = ops_of(ctx);
	const uint64_t n = ctx->o->iters;
	struct perf_lib_lat l;
	uint64_t i;
	int rc = 0;

	perf_lib_stats_begin(L);
	if (ctx->is_server) {
		for (i = 0; i < n && !rc; i++) {
			if (!(rc = perf_lib_stopped(i, n)) && !(rc = take(L, ops, size, 0, i)))
				rc = give(L, ops, size, i);
		}
		perf_lib_stats_end(L, size);
		return rc;
	}
	rc = perf_lib_lat_begin(&l, n);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		if ((rc = perf_lib_stopped(i, n))) {
			perf_lib_lat_free(&l);
			return rc;
		}
		perf_lib_lat_mark(&l, i);
		if ((rc = give(L, ops, size, i)) || (rc = take(L, ops, size, 1, i))) {
			perf_lib_lat_free(&l);
			return rc;
		}
	}
	perf_lib_stats_end(L, size);
	return perf_lib_lat_end(&l, size, 2, 2 * size, r);
}

const struct perf_test perf_test_stream = {
	.name = "stream",
	.title = "zc_send/zc_recv",
	.about = "zcrdma stream: zc_send / zc_recv (bw; --lat ping-pong)",
	.validate = perf_opts_check_lib,
	.setup = setup,
	.prepare = prepare,
	.run_bw = run_bw,
	.run_lat = run_lat,
	.teardown = perf_lib_teardown,
	.library = 1,
	.skip = perf_lib_skip,
	.header = perf_lib_header,
	.footer = perf_lib_footer,
};

const struct perf_test perf_test_msg = {
	.name = "msg",
	.title = "zc_msg_send/zc_msg_recv",
	.about = "zcrdma messages: zc_msg_send / zc_msg_recv (bw; --lat ping-pong)",
	.validate = perf_opts_check_lib,
	.setup = setup,
	.prepare = prepare,
	.run_bw = run_bw,
	.run_lat = run_lat,
	.teardown = perf_lib_teardown,
	.library = 1,
	.skip = perf_lib_skip,
	.header = perf_lib_header,
	.footer = perf_lib_footer,
};
