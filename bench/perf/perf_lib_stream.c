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

static int send_all(struct perf_lib *L, const struct stream_ops *ops, const uint8_t *buf, uint64_t size)
{
	ssize_t n = ops->send(L->conn, buf, size, 0);

	if (n < 0)
		return perf_lib_fail(L, (int)n, ops->send_name);
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

	if (ops->msg) {
		n = zc_msg_recv(L->conn, buf, size, 0);
		if (n < 0)
			return perf_lib_fail(L, (int)n, "zc_msg_recv");
		if ((uint64_t)n != size)
			return perf_err(EIO, "zc_msg_recv: a %zd-byte message, expected %llu", n, (unsigned long long)size);
		got = size;
	}
	while (got < size) {
		n = zc_recv(L->conn, buf + got, size - got, 0);
		if (n < 0)
			return perf_lib_fail(L, (int)n, "zc_recv");
		if (n == 0)
			return perf_err(ECONNRESET, "zc_recv: the peer closed the connection after %llu of %llu bytes",
					(unsigned long long)got, (unsigned long long)size);
		got += (uint64_t)n;
	}
	if (L->ctx->o->fresh_reg)
		zc_mr_invalidate(L->zctx, buf, size);
	return 0;
}

static int setup(struct perf_ctx *ctx)
{
	const struct perf_lib_cfg cfg = {.nbuf = 2, .no_mr = 1};

	return perf_lib_setup(ctx, &cfg);
}

static int prepare(struct perf_ctx *ctx, uint64_t size)
{
	/* Each side sends its own direction's pattern. */
	return perf_lib_verify_size(perf_lib_of(ctx), size, SBUF, 1, ctx->is_server ? 1 : 0);
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

static int run_bw(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	struct perf_lib *L = perf_lib_of(ctx);
	const struct stream_ops *ops = ops_of(ctx);
	const uint64_t n = ctx->o->iters;
	uint8_t *ack = perf_lib_ack(L), *sbuf = perf_lib_buf(L, SBUF);
	struct perf_lib_bw b;
	uint64_t i;
	int rc = 0;

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
	.validate = perf_lib_validate,
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
	.validate = perf_lib_validate,
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
