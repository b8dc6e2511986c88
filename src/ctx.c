/* Contexts: the public calls (the device itself is dev.c), and zc_poll(). */
#include <errno.h>
#include <stdlib.h>

#include "error.h"
#include "conn.h"

void zc_ctx_opts_init(struct zc_ctx_opts *o)
{
	if (!o)
		return;
	*o = (struct zc_ctx_opts){.cq_depth = 8192, .busy_poll_us = 100, .rcache_entries = 256,
				  .rcache_bytes = 1ul << 30, .log_level = ZC_LOG_WARN};
}
int zc_ctx_new(const char *local_addr, const struct zc_ctx_opts *opts, struct zc_ctx **out)
{
	struct zc_ctx *ctx;
	int rc;

	if (!out)
		return zc__err(-EINVAL, "zc_ctx_new: output pointer is required");
	if (opts && (opts->cq_depth < 64 || opts->rcache_entries < 1 || opts->rcache_bytes < 1))
		return zc__err(-EINVAL, "zc_ctx_new: cq_depth must be >= 64 and the cache bounds >= 1");
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return zc__err(-ENOMEM, "zc_ctx_new: out of memory");
	ctx->epfd = -1;
	ctx->cm_hook = zc__cm_process;
	zc__list_init(&ctx->conns);
	zc__list_init(&ctx->listeners);
	if (opts)
		ctx->opts = *opts;
	else
		zc_ctx_opts_init(&ctx->opts);
	rc = zc__dev_open(ctx, local_addr);
	if (!rc)
		rc = zc__rcache_open(ctx);
	if (rc) {
		zc__rcache_close(ctx);
		zc__dev_close(ctx);
		free(ctx);
		return rc;
	}
	*out = ctx;
	return 0;
}

int zc_ctx_free(struct zc_ctx **pctx)
{
	struct zc_ctx *ctx;

	if (!pctx || !*pctx)
		return zc__err(-EINVAL, "zc_ctx_free: no context");
	ctx = *pctx;
	if (ctx->n_mrs)
		return zc__err(-EBUSY, "zc_ctx_free: %u memory regions are still registered", ctx->n_mrs);
	while (!zc__list_empty(&ctx->conns)) {
		struct zc_conn *c = zc__list_first(&ctx->conns, struct zc_conn, node);

		zc_abort(&c);
	}
	while (!zc__list_empty(&ctx->listeners)) {
		struct zc_listener *l = zc__list_first(&ctx->listeners, struct zc_listener, node);

		zc_listener_free(&l);
	}
	zc__rcache_close(ctx);
	zc__dev_close(ctx);
	free(ctx);
	*pctx = NULL;
	return 0;
}

int zc_ctx_query(struct zc_ctx *ctx, struct zc_caps *caps)
{
	if (!ctx || !caps)
		return zc__err(-EINVAL, "zc_ctx_query: NULL argument");
	if (!ctx->verbs)
		return zc__err(-ENODEV, "zc_ctx_query: the context was created without an address and has no device "
				       "until it connects");
	*caps = ctx->caps;
	caps->cap_ipc_lock = zc__memlock_check(ctx, 0) == 1;
	return 0;
}

int zc_ctx_fd(struct zc_ctx *ctx)
{
	return ctx ? ctx->epfd : zc__err(-EINVAL, "zc_ctx_fd: no context");
}

int zc_ctx_stats(struct zc_ctx *ctx, struct zc_stats *s)
{
	struct zc__rcache_stats rs;

	if (!ctx || !s)
		return zc__err(-EINVAL, "zc_ctx_stats: NULL argument");
	zc__rcache_get_stats(ctx->rcache, &rs);
	*s = ctx->stats;
	s->rcache_hits = rs.hits;
	s->rcache_misses = rs.misses;
	s->rcache_evictions = rs.evictions;
	s->rcache_invalidations = rs.invalidations;
	s->rcache_inv_unmap = rs.inv[ZC_INV_UNMAP];
	s->rcache_inv_remap = rs.inv[ZC_INV_REMAP];
	s->rcache_inv_madvise = rs.inv[ZC_INV_MADVISE];
	s->rcache_inv_brk = rs.inv[ZC_INV_BRK];
	s->rcache_inv_shmdt = rs.inv[ZC_INV_SHMDT];
	s->rcache_inv_explicit = rs.inv[ZC_INV_EXPLICIT];
	s->rcache_inv_overflow = rs.inv[ZC_INV_OVERFLOW];
	s->rcache_entries = rs.entries;
	s->rcache_bytes = rs.bytes;
	return 0;
}

/* An application blocked in zc_poll() waits for every connection at once:
 * each quiet one is probed as a blocking call would probe its own. */
static void keepalive_all(struct zc_ctx *ctx)
{
	struct zc__list *n;

	for (n = ctx->conns.next; n != &ctx->conns; n = n->next)
		zc__conn_keepalive(zc__container_of(n, struct zc_conn, node));
}

struct reap {
	struct zc_ctx *ctx;
	struct zc_completion *comps;
	int max, n;
	bool waiting; /* a blocking poll probes quiet connections */
};

static int reap_some(void *arg)
{
	struct reap *r = arg;
	int i;

	for (i = r->n, r->n += zc__ctx_reap(r->ctx, r->comps + r->n, r->max - r->n); i < r->n; i++)
		if (r->comps[i].conn) /* else zc__ctx_forget_conn kept the data */
			r->comps[i].data = r->comps[i].conn->data;
	if (r->n)
		return 1;
	if (r->waiting)
		keepalive_all(r->ctx);
	return 0;
}

int zc_poll(struct zc_ctx *ctx, struct zc_completion *comps, int max, int timeout_ms)
{
	struct reap r = {.ctx = ctx, .comps = comps, .max = max, .waiting = timeout_ms != 0};
	int rc;

	if (!ctx || !comps || max <= 0)
		return zc__err(-EINVAL, "zc_poll: bad arguments");
	/* once per call, CM included: an event-loop application calls this
	 * when the context's fd fires, whichever source made it fire */
	zc__ctx_progress_all(ctx);
	rc = zc__ctx_wait_for(ctx, reap_some, &r,
			      timeout_ms < 0 ? -1 : timeout_ms == 0 ? ZC__NOWAIT : zc__now_ms() + timeout_ms);
	/* Returning with the ring empty: the caller may sleep on the fd next,
	 * so it must be armed (-EAGAIN: it is; a full array: the caller comes
	 * back for the rest). */
	while (rc != -EAGAIN && r.n < max && zc__ctx_rearm(ctx) && ctx->done_count)
		reap_some(&r);
	return r.n;
}
