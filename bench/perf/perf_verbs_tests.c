/*
 * The raw-verbs tests: write, read and send, each in bandwidth (ib_*_bw) and
 * latency (ib_*_lat) form. What differs between them is which side fills,
 * clears and checks which half of the buffers; the loops are shared.
 */
#include "perf_verbs.h"

/* Client = requester (posts the verbs), server = responder. */
static int is_client(const struct perf_ctx *ctx)
{
	return !ctx->is_server;
}

static void teardown(struct perf_ctx *ctx)
{
	perf_verbs_teardown(ctx);
}

/* --- write: client writes its local half into the server's exposed half --- */

static int write_setup(struct perf_ctx *ctx)
{
	return perf_verbs_setup(ctx, 0, ctx->o->inline_size);
}

static int write_prepare(struct perf_ctx *ctx, uint64_t size)
{
	/* Latency: both sides write, so both fill and both clear. */
	if (ctx->o->lat)
		return perf_verbs_prepare(ctx, size, PERF_PREP_FILL_LOCAL | PERF_PREP_ZERO_EXPOSED);
	return perf_verbs_prepare(ctx, size, is_client(ctx) ? PERF_PREP_FILL_LOCAL : PERF_PREP_ZERO_EXPOSED);
}

static int write_bw(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	return is_client(ctx) ? perf_verbs_bw_post(ctx, size, IBV_WR_RDMA_WRITE, r) : 0;
}

static int write_check(struct perf_ctx *ctx, uint64_t size)
{
	/* The last byte of a latency write carries the iteration count. */
	if (ctx->o->lat)
		return perf_verbs_check(ctx, size, size - 1, 1);
	return is_client(ctx) ? 0 : perf_verbs_check(ctx, size, size, 1);
}

const struct perf_test perf_test_write = {
	.name = "write",
	.title = "RDMA_Write",
	.about = "RDMA WRITE, raw verbs (ib_write_bw, ib_write_lat)",
	.setup = write_setup,
	.prepare = write_prepare,
	.run_bw = write_bw,
	.run_lat = perf_verbs_lat_write,
	.check = write_check,
	.teardown = teardown,
};

/* --- read: client reads the server's exposed half into its local half --- */

static int read_setup(struct perf_ctx *ctx)
{
	/* perftest forces inline off for reads: there is nothing to inline. */
	return perf_verbs_setup(ctx, 0, 0);
}

static int read_prepare(struct perf_ctx *ctx, uint64_t size)
{
	return perf_verbs_prepare(ctx, size, is_client(ctx) ? PERF_PREP_ZERO_LOCAL : PERF_PREP_FILL_EXPOSED);
}

static int read_bw(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	return is_client(ctx) ? perf_verbs_bw_post(ctx, size, IBV_WR_RDMA_READ, r) : 0;
}

static int read_check(struct perf_ctx *ctx, uint64_t size)
{
	return is_client(ctx) ? perf_verbs_check(ctx, size, size, 0) : 0;
}

const struct perf_test perf_test_read = {
	.name = "read",
	.title = "RDMA_Read",
	.about = "RDMA READ, raw verbs (ib_read_bw, ib_read_lat)",
	.setup = read_setup,
	.prepare = read_prepare,
	.run_bw = read_bw,
	.run_lat = perf_verbs_lat_read,
	.check = read_check,
	.teardown = teardown,
};

/* --- send: client sends from its local half into receives on the server's exposed half --- */

static int send_setup(struct perf_ctx *ctx)
{
	return perf_verbs_setup(ctx, 1, ctx->o->inline_size);
}

static int send_prepare(struct perf_ctx *ctx, uint64_t size)
{
	const unsigned int both = PERF_PREP_FILL_LOCAL | PERF_PREP_ZERO_EXPOSED | PERF_PREP_RECV;

	if (ctx->o->lat)
		return perf_verbs_prepare(ctx, size, both);
	return perf_verbs_prepare(ctx, size,
				  is_client(ctx) ? PERF_PREP_FILL_LOCAL : PERF_PREP_ZERO_EXPOSED | PERF_PREP_RECV);
}

static int send_bw(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	return is_client(ctx) ? perf_verbs_bw_post(ctx, size, IBV_WR_SEND, r) : perf_verbs_bw_recv(ctx, size);
}

static int send_check(struct perf_ctx *ctx, uint64_t size)
{
	if (ctx->o->lat || !is_client(ctx))
		return perf_verbs_check(ctx, size, size, 1);
	return 0;
}

const struct perf_test perf_test_send = {
	.name = "send",
	.title = "Send",
	.about = "SEND/RECV, raw verbs (ib_send_bw, ib_send_lat)",
	.setup = send_setup,
	.prepare = send_prepare,
	.run_bw = send_bw,
	.run_lat = perf_verbs_lat_send,
	.check = send_check,
	.teardown = teardown,
};
