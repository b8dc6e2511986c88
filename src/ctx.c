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
				  .rcache_bytes = 1ul << 30, .log_level = ZC_LOG_WARN, .eager_size = 16384,
				  .rx_slots = 1024};
}
int zc_ctx_new(const char *local_addr, const struct zc_ctx_opts *opts, struct zc_ctx **out)
{
	struct zc_ctx *ctx;
	int rc;

	if (!out)
		return zc__err(-EINVAL, "zc_ctx_new: output pointer is required");
	if (opts && (opts->cq_depth < 64 || opts->rcache_entries < 1 || opts->rcache_bytes < 1 ||
		     opts->eager_size < 64 || opts->eager_size > ZC_SLOT_MAX - ZC_HDR_SIZE || opts->rx_slots < 1))
		return zc__err(-EINVAL, "zc_ctx_new: cq_depth must be >= 64, the cache bounds and rx_slots >= 1, "
				       "eager_size 64..%d",
			      ZC_SLOT_MAX - ZC_HDR_SIZE);
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return zc__err(-ENOMEM, "zc_ctx_new: out of memory");
	ctx->epfd = -1;
	ctx->cm_hook = zc__cm_process;
	ctx->held_hook = zc__qp_post_all_held;
	zc__list_init(&ctx->held);
	zc__list_init(&ctx->conns);
	zc__list_init(&ctx->listeners);
	zc__list_init(&ctx->ev_ready);
	zc__list_init(&ctx->ev_lready);
	zc__list_init(&ctx->ev_orphans);
	zc__list_init(&ctx->life);
	zc__list_init(&ctx->ka);
	zc__list_init(&ctx->reqs);
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
	while (!zc__list_empty(&ctx->reqs)) {
		struct zc_conn_req *r = zc__list_first(&ctx->reqs, struct zc_conn_req, node);

		zc_req_reject(&r, NULL, 0);
	}
	while (!zc__list_empty(&ctx->ev_orphans)) {
		struct zc__evnode *o = zc__list_first(&ctx->ev_orphans, struct zc__evnode, node);

		zc__list_del(&o->node);
		free(o);
	}
	zc__ctx_pools_close(ctx);
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
	s->rx_slots_promised = ctx->rxpool ? ctx->rxpool->budget.reserved : 0;
	s->rcache_entries = rs.entries;
	s->rcache_bytes = rs.bytes;
	return 0;
}

/* One look of zc_wait_events() or zc_poll() (comps set: completions
 * only): set-ups and closes advance, events are stored, and, when the look
 * found nothing or every 64th look (a loop that always finds something
 * must not starve them), the timer is consumed and keepalives that are due
 * run. The timer holds the earliest of those deadlines, so the clock is
 * read only when it may be due. */
struct collect {
	struct zc_ctx *ctx;
	struct zc_event *evs;
	struct zc_completion *comps;
	int max, n;
};

static int collect(void *arg)
{
	struct collect *k = arg;
	struct zc_ctx *ctx = k->ctx;
	int before = k->n;

	zc__cm_walk(ctx);
	k->n += k->comps ? zc__ev_reap(ctx, k->comps + k->n, k->max - k->n)
			 : zc__ev_collect(ctx, k->evs + k->n, k->max - k->n);
	if ((k->n == before || (++ctx->ev_calls & 63) == 0) && zc__ctx_timer_maybe_due(ctx)) {
		int64_t now = zc__now_ms();

		ctx->timer_fired = false;
		if (zc__ctx_timer_check(ctx, now))
			zc__cm_walk(ctx); /* arms the timer again for what it still waits for */
		zc__conn_ka_tick(ctx, now);
	}
	return k->n > 0;
}

/* A new call (each reports a source at most once) and its progress. The
 * CM channel costs a system call to look at: every 64th call does, or a
 * completion queue that is never idle would starve connection events. */
static void look_progress(struct zc_ctx *ctx, bool cm)
{
	if (++ctx->ev_gen % 64 == 0 || cm)
		zc__ctx_progress_all(ctx);
	else
		zc__ctx_progress(ctx);
}

static int run_collect(struct collect *k, int timeout_ms)
{
	struct zc_ctx *ctx = k->ctx;
	int rc;

	/* A call without a timeout is what an event-loop application makes
	 * when the context's fd fired, whichever source made it fire, and the
	 * last before it sleeps on the fd (NO MISSED WAKE-UPS): it looks at the
	 * CM channel and leaves the fd armed. A call with a timeout does both
	 * only where it sleeps (zc__ctx_wait()), so a loop of them that keeps
	 * finding work makes no system call of its own. */
	look_progress(ctx, timeout_ms == 0);
	rc = zc__ctx_wait_ms(ctx, collect, k, timeout_ms);
	/* Returning with room left: the caller may sleep on the fd next, so it
	 * must be armed (-EAGAIN: it is; a full array: the caller comes back
	 * for the rest), and what the arming found is reported now. */
	if (timeout_ms == 0 && rc != -EAGAIN && k->n < k->max && zc__ctx_rearm(ctx))
		collect(k);
	return k->n;
}

int zc_poll(struct zc_ctx *ctx, struct zc_completion *comps, int max, int timeout_ms)
{
	struct collect k = {.ctx = ctx, .comps = comps, .max = max};

	if (!ctx || !comps || max <= 0)
		return zc__err(-EINVAL, "zc_poll: bad arguments");
	return run_collect(&k, timeout_ms);
}

int zc_wait_events(struct zc_ctx *ctx, struct zc_event *evs, int max, int timeout_ms)
{
	struct collect k = {.ctx = ctx, .evs = evs, .max = max};

	if (!ctx || !evs || max <= 0)
		return zc__err(-EINVAL, "zc_wait_events: bad arguments");
	return run_collect(&k, timeout_ms);
}

int zc_take_events(struct zc_ctx *ctx, struct zc_event *evs, int max)
{
	struct collect k = {.ctx = ctx, .evs = evs, .max = max};

	if (!ctx || !evs || max <= 0)
		return zc__err(-EINVAL, "zc_take_events: bad arguments");
	look_progress(ctx, false);
	collect(&k);
	return k.n;
}
