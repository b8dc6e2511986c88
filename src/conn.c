/* A connection's state as its calls see it: open or why not, keepalive, and
 * the one wait of a call blocked on it. */
#include <errno.h>

#include "error.h"
#include "conn.h"

int zc__conn_check(struct zc_conn *c)
{
	if (!c)
		return zc__err(-EINVAL, "no connection");
	if (c->ep.qp.err)
		return zc__qp_error(&c->ep.qp);
	if (c->state == ZC_CONN_FAILED)
		return zc__err(c->result, "%s", c->cm_detail);
	if (c->state != ZC_CONN_OPEN)
		return zc__err(-ENOTCONN, "the connection is not open (still being set up)");
	return 0;
}

/*
 * A peer that died without a word (power loss, link down) sends nothing and
 * acknowledges nothing, so when no completion arrived for keepalive_ms a
 * zero-length RDMA WRITE probes it: it needs no memory on either side, and
 * against a dead peer it fails once the transport's retries run out,
 * failing the connection with -ZC_ETRANSPORT.
 */
int zc__conn_keepalive(struct zc_conn *c)
{
	int64_t now;

	if (c->ep.qp.err)
		return zc__qp_error(&c->ep.qp);
	if (!c->opts.keepalive_ms || c->state != ZC_CONN_OPEN)
		return 0;
	/* A busy connection costs no clock read: its quiet time starts at
	 * the first check that finds it idle. */
	if (c->ep.qp.activity != c->activity_seen) {
		c->activity_seen = c->ep.qp.activity;
		c->quiet_since = 0;
		return 0;
	}
	now = zc__now_ms();
	if (!c->quiet_since) {
		c->quiet_since = now;
		return 0;
	}
	if (now - c->quiet_since >= c->opts.keepalive_ms && !c->ep.qp.probe_inflight) {
		c->quiet_since = now;
		return zc__qp_probe(&c->ep.qp);
	}
	return 0;
}

/* Checks come every keepalive_ms / 4, so a peer quiet since just after a
 * check is probed within 1.5 keepalive_ms (zc__conn_keepalive starts the
 * quiet time at the first check that finds no activity). */
static int64_t ka_key(const struct zc__list *n)
{
	return zc__container_of(n, struct zc_conn, ka_node)->ka_due;
}

void zc__conn_ka_add(struct zc_conn *c, int64_t now)
{
	if (!c->opts.keepalive_ms)
		return;
	c->ka_due = now + (c->opts.keepalive_ms >= 4 ? c->opts.keepalive_ms / 4 : 1);
	zc__list_insert_sorted(&c->ctx->ka, &c->ka_node, ka_key);
	zc__ctx_timer_at(c->ctx, ka_key(c->ctx->ka.next));
}

void zc__conn_ka_del(struct zc_conn *c)
{
	zc__list_del(&c->ka_node);
}

void zc__conn_ka_tick(struct zc_ctx *ctx, int64_t now)
{
	/* Failures found here belong to those connections, not to the caller. */
	zc__err_progress_begin();
	while (!zc__list_empty(&ctx->ka)) {
		struct zc_conn *c = zc__list_first(&ctx->ka, struct zc_conn, ka_node);

		if (c->ka_due > now) {
			zc__ctx_timer_at(ctx, c->ka_due);
			break;
		}
		zc__list_del(&c->ka_node);
		ctx->stats.keepalive_checks++;
		if (!zc__conn_keepalive(c) && !c->ep.qp.err)
			zc__conn_ka_add(c, now);
	}
	zc__err_progress_end();
}

struct conn_wait {
	struct zc_conn *c;
	int (*cond)(struct zc_conn *c, void *arg);
	void *arg;
	bool blocking, looked;
};

/* Quiet time is measured only by a blocking call that has waited: a
 * condition met at once (the common case while busy) and a ZC__NOWAIT look
 * cost no clock read, which is a system call where the TSC is not trusted. */
static int conn_cond(void *arg)
{
	struct conn_wait *w = arg;
	int rc = w->cond(w->c, w->arg);

	if (rc)
		return rc;
	if (!w->blocking || !w->looked) {
		w->looked = true;
		return w->c->ep.qp.err ? zc__qp_error(&w->c->ep.qp) : 0;
	}
	return zc__conn_keepalive(w->c);
}

int zc__conn_wait_for(struct zc_conn *c, int (*cond)(struct zc_conn *c, void *arg), void *arg, int64_t deadline,
		      const char *what)
{
	struct conn_wait w = {.c = c, .cond = cond, .arg = arg, .blocking = deadline != ZC__NOWAIT};
	int rc = zc__ctx_wait_for(c->ctx, conn_cond, &w, deadline);

	if (rc == -ETIMEDOUT)
		return zc__err(rc, "timed out %s", what);
	return rc;
}
