/*
 * Library tests rma and rma_read: one-sided zc_rma_write / zc_rma_read
 * against a range the server exported with zc_export.
 *
 * The server registers slots of -s bytes (up to 16, one zc_mr_reg region)
 * and exports all of them on the connection, with write access (rma) or
 * read access (rma_read), and hands the descriptor to the client with
 * zc_msg_send before the first size. Operation i uses slot i mod slots.
 *
 * bw:  the client keeps up to -t operations in flight from a pool of -t
 *      local buffers (zc_mr_reg, or --rcache / --no-rcache-reuse as in the
 *      zc test); an operation completes with its ZC_OP_WRITE / ZC_OP_READ
 *      completion, as a raw RDMA WRITE/READ completes with its work
 *      completion. The server's CPU takes no part, as in ib_write_bw.
 * lat: one operation outstanding at a time; a sample is the whole
 *      operation (no halving: like ib_read_lat, unlike the ib_write_lat
 *      ping-pong).
 * --verify: rma_read checks every buffer read (the server's slot k holds
 *      the pattern stamped k); rma has the server check after the run that
 *      each slot holds the last write aimed at it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "perf_err.h"
#include "perf_lib.h"

#define RMA_SLOTS 16
#define BATCH 16
#define TOKEN(i, idx) (((uint64_t)(i) << 20) | (uint64_t)(idx))
#define TOKEN_IDX(t) ((int)((t) & 0xfffff))
#define TOKEN_OP(t) ((t) >> 20)

/* What the server tells the client, in one message. */
struct rma_offer {
	struct zc_desc desc;
	uint64_t slots;
	uint64_t stride;
};

struct rma_state {
	int read;              /* rma_read */
	struct zc_export *exp; /* server */
	struct rma_offer offer;
	int *free_idx; /* client: pool buffers not lent to the library */
	int nfree;
};

static struct rma_state *state(const struct perf_ctx *ctx)
{
	return perf_lib_of(ctx)->test;
}

static int is_read(const struct perf_ctx *ctx)
{
	return strcmp(ctx->test->name, "rma_read") == 0;
}

static int setup(struct perf_ctx *ctx)
{
	const struct perf_opts *o = ctx->o;
	struct perf_lib_cfg cfg = {.nbuf = o->lat ? 1 : o->tx_depth};
	struct perf_lib *L;
	struct rma_state *z;
	ssize_t got;
	int rc;

	if (ctx->is_server) {
		cfg.nbuf = RMA_SLOTS;
		cfg.force_mr = 1;
		cfg.mr_access = is_read(ctx) ? ZC_ACCESS_REMOTE_READ : ZC_ACCESS_REMOTE_WRITE;
	}
	rc = perf_lib_setup(ctx, &cfg);
	if (rc)
		return rc;
	L = perf_lib_of(ctx);
	z = calloc(1, sizeof(*z));
	if (z)
		z->free_idx = calloc((size_t)L->nbuf, sizeof(int));
	L->test = z;
	if (!z || !z->free_idx)
		return perf_err(ENOMEM, "out of memory");
	z->read = is_read(ctx);
	if (ctx->is_server) {
		z->offer.slots = (uint64_t)L->nbuf;
		z->offer.stride = L->stride;
		rc = zc_export(L->conns[0], L->mr, 0, (size_t)L->nbuf * L->stride, cfg.mr_access, &z->exp, &z->offer.desc);
		if (rc)
			return perf_lib_fail(L, rc, "zc_export");
		got = zc_msg_send(L->conns[0], &z->offer, sizeof(z->offer), 0);
		if (got < 0)
			return perf_lib_fail(L, (int)got, "zc_msg_send (the export's descriptor)");
		ctx->rx_depth = 0;
		return 0;
	}
	got = zc_msg_recv(L->conns[0], &z->offer, sizeof(z->offer), 0);
	if (got < 0)
		return perf_lib_fail(L, (int)got, "zc_msg_recv (the export's descriptor)");
	if ((size_t)got != sizeof(z->offer) || !z->offer.slots || z->offer.stride < ctx->max_size)
		return perf_err(EPROTO, "the server's export offer is malformed (%zd bytes)", got);
	ctx->rx_depth = 0;
	return 0;
}

static void teardown(struct perf_ctx *ctx)
{
	struct perf_lib *L = perf_lib_of(ctx);
	struct rma_state *z = L ? L->test : NULL;

	if (z && z->exp)
		zc_export_revoke(&z->exp); /* before the region goes */
	perf_lib_teardown(ctx);
	if (z)
		free(z->free_idx);
	free(z);
}

static int prepare(struct perf_ctx *ctx, uint64_t size)
{
	struct perf_lib *L = perf_lib_of(ctx);
	struct rma_state *z = state(ctx);
	int i, rc;

	for (i = 0; i < L->nbuf; i++)
		z->free_idx[i] = L->nbuf - 1 - i;
	z->nfree = L->nbuf;
	if (!ctx->is_server)
		/* Write: the source buffers carry the pattern; read: only the reference. */
		return perf_lib_verify_size(L, size, 0, z->read ? 0 : L->nbuf, z->read ? 1 : 0);
	if (!z->read) {
		for (i = 0; i < L->nbuf; i++)
			memset(perf_lib_buf(L, i), 0, size);
		return perf_lib_verify_size(L, size, 0, 0, 0);
	}
	/* Read: slot k holds the pattern stamped k. */
	rc = perf_lib_verify_size(L, size, 0, L->nbuf, 1);
	for (i = 0; !rc && ctx->o->verify && i < L->nbuf; i++)
		perf_lib_stamp(perf_lib_buf(L, i), size, (uint64_t)i);
	return rc;
}

/* Submits operation i from (or into) pool buffer idx. */
static int submit(struct perf_lib *L, struct rma_state *z, uint64_t size, uint64_t i, int idx)
{
	uint8_t *buf = perf_lib_buf(L, idx);
	uint64_t off = (i % z->offer.slots) * z->offer.stride;

	if (L->ctx->o->verify) {
		if (z->read)
			memset(buf, 0, size);
		else
			perf_lib_stamp(buf, size, i);
	}
	if (z->read)
		return zc_rma_read(L->conns[0], buf, size, L->mr, &z->offer.desc, off, TOKEN(i, idx));
	return zc_rma_write(L->conns[0], buf, size, L->mr, &z->offer.desc, off, TOKEN(i, idx));
}

/* A completion: the right op, a pool buffer; rma_read with --verify checks what arrived. */
static int completed(struct perf_lib *L, struct rma_state *z, const struct zc_completion *c, uint64_t size)
{
	int idx = TOKEN_IDX(c->token);

	if (c->op != (z->read ? ZC_OP_READ : ZC_OP_WRITE) || idx >= L->nbuf)
		return perf_err(EPROTO, "unexpected completion: op %d token %llu", c->op, (unsigned long long)c->token);
	if (z->read && L->ctx->o->verify) {
		int rc = perf_lib_check(L, perf_lib_buf(L, idx), size, 1, TOKEN_OP(c->token) % z->offer.slots,
					"read of slot");

		if (rc)
			return rc;
	}
	z->free_idx[z->nfree++] = idx;
	if (L->ctx->o->fresh_reg)
		zc_mr_invalidate(L->zctx, perf_lib_buf(L, idx), size);
	return 0;
}

static const char *op_name(const struct rma_state *z)
{
	return z->read ? "zc_rma_read" : "zc_rma_write";
}

static int run_bw(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	struct perf_lib *L = perf_lib_of(ctx);
	struct rma_state *z = state(ctx);
	const uint64_t n = ctx->o->iters;
	const uint64_t tx = (uint64_t)(ctx->o->tx_depth < L->nbuf ? ctx->o->tx_depth : L->nbuf);
	struct zc_completion c[BATCH];
	uint64_t sent = 0, done = 0;
	struct perf_lib_bw b;
	int rc, k, ne;

	if (ctx->is_server)
		return 0; /* one-sided: nothing to do until the client's DONE */
	perf_lib_stats_begin(L);
	rc = perf_lib_bw_begin(&b, n, 16 * tx);
	if (rc)
		return rc;
	while (done < n) {
		while (sent < n && sent - done < tx && z->nfree) {
			int idx = z->free_idx[z->nfree - 1];

			perf_lib_bw_posted(&b, sent);
			rc = submit(L, z, size, sent, idx);
			if (rc == -EAGAIN)
				break; /* no send-queue room: reap first */
			if (rc) {
				rc = perf_lib_fail(L, rc, op_name(z));
				goto out;
			}
			z->nfree--;
			sent++;
		}
		ne = perf_lib_poll(L, c, BATCH);
		if (ne < 0) {
			rc = ne;
			goto out;
		}
		for (k = 0; k < ne; k++) {
			if ((rc = completed(L, z, &c[k], size)))
				goto out;
			done++;
			perf_lib_bw_completed(&b, done);
		}
	}
	perf_lib_stats_end(L, size);
	return perf_lib_bw_end(&b, size, r);
out:
	perf_lib_bw_free(&b);
	return perf_lib_where(rc, sent, done, n);
}

static int run_lat(struct perf_ctx *ctx, uint64_t size, struct perf_result *r)
{
	struct perf_lib *L = perf_lib_of(ctx);
	struct rma_state *z = state(ctx);
	const uint64_t n = ctx->o->iters;
	struct zc_completion c;
	struct perf_lib_lat l;
	uint64_t i;
	int rc;

	if (ctx->is_server)
		return 0;
	perf_lib_stats_begin(L);
	rc = perf_lib_lat_begin(&l, n);
	if (rc)
		return rc;
	for (i = 0; i < n && !rc; i++) {
		if ((rc = perf_lib_stopped(i, n)))
			break;
		perf_lib_lat_mark(&l, i);
		rc = submit(L, z, size, i, 0);
		if (rc) {
			rc = perf_lib_fail(L, rc, op_name(z));
			break;
		}
		z->nfree--;
		while ((rc = perf_lib_poll(L, &c, 1)) == 0)
			;
		rc = rc < 0 ? rc : completed(L, z, &c, size);
	}
	if (rc) {
		perf_lib_lat_free(&l);
		return rc;
	}
	perf_lib_stats_end(L, size);
	return perf_lib_lat_end(&l, size, 1, size, r);
}

/* rma --verify: slot k holds the last write aimed at it. */
static int check(struct perf_ctx *ctx, uint64_t size)
{
	struct perf_lib *L = perf_lib_of(ctx);
	struct rma_state *z = state(ctx);
	const uint64_t n = ctx->o->iters, slots = (uint64_t)L->nbuf;
	uint64_t k;

	if (!ctx->is_server || z->read)
		return 0;
	for (k = 0; k < slots && k < n; k++) {
		uint64_t last = k + (n - 1 - k) / slots * slots;
		int rc = perf_lib_check(L, perf_lib_buf(L, (int)k), size, 0, last, "write into slot");

		if (rc)
			return rc;
	}
	return 0;
}

const struct perf_test perf_test_rma = {
	.name = "rma",
	.title = "zc_rma_write",
	.about = "zcrdma one-sided: zc_rma_write into a zc_export'ed range, -t in flight (bw; --lat)",
	.validate = perf_opts_check_lib,
	.setup = setup,
	.prepare = prepare,
	.run_bw = run_bw,
	.run_lat = run_lat,
	.check = check,
	.teardown = teardown,
	.library = 1,
	.header = perf_lib_header,
	.footer = perf_lib_footer,
};

const struct perf_test perf_test_rma_read = {
	.name = "rma_read",
	.title = "zc_rma_read",
	.about = "zcrdma one-sided: zc_rma_read from a zc_export'ed range, -t in flight (bw; --lat)",
	.validate = perf_opts_check_lib,
	.setup = setup,
	.prepare = prepare,
	.run_bw = run_bw,
	.run_lat = run_lat,
	.check = check,
	.teardown = teardown,
	.library = 1,
	.header = perf_lib_header,
	.footer = perf_lib_footer,
};
