/*
 * The end of a connection: zc_close()'s linger (everything sent delivered,
 * then CLOSE), the drain that reclaims every work request before anything
 * is freed, and what follows the drain: a retry of a refused connect, a
 * failed set-up reported, the CLOSED event of zc_close_start(), or the
 * connection freed. zc_abort() skips the linger. cm.c's walk drives it,
 * and its zc_close() waits on it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "conn.h"

/* Reclaims every work request (flushing the QP, waiting up to drain_ms),
 * then buffers and windows, then the QP (the engine's release): a type-2
 * window still bound to a QP holds a reference on it, and rxe's destroy
 * then stalls for a minute. */
static void conn_reset(struct zc_conn *c, int drain_ms)
{
	if (c->ep.qp.qp)
		zc__qp_drain(&c->ep.qp, drain_ms);
	zc__rma_release(c);
	if (c->opts.raw)
		zc__raw_release(c);
	else
		zc__ep_release(&c->ep);
	if (c->id) {
		rdma_destroy_id(c->id);
		c->id = NULL;
	}
}

void zc__conn_destroy(struct zc_conn *c)
{
	conn_reset(c, 2000);
	zc__conn_leave_listener(c);
	zc__conn_set_phase(c, ZC_PH_NONE);
	zc__conn_ka_del(c);
	zc__ev_forget(c);
	zc__ctx_forget_conn(c->ctx, c, c->data);
	zc__list_del(&c->node);
	free(c->closed_ev);
	free(c);
}

/* Tells the peer: a request accepted but never answered is refused, an
 * established connection disconnected. */
static void hang_up(struct zc_conn *c)
{
	if (c->rep_pending) { /* accepted, never answered: refuse it instead */
		c->rep_pending = false;
		rdma_reject(c->id, NULL, 0);
	} else if (c->id && c->ep.qp.qp) {
		rdma_disconnect(c->id);
	}
}

void zc__conn_drain_then(struct zc_conn *c, enum zc__after after)
{
	hang_up(c);
	zc__qp_flush(&c->ep.qp);
	c->after = after;
	c->drain_deadline = zc__now_ms() + 2000;
	zc__conn_set_phase(c, ZC_PH_DRAIN);
}

int zc__conn_teardown(struct zc_conn *c, int rc)
{
	hang_up(c);
	zc__conn_destroy(c);
	return rc;
}

int zc_abort(struct zc_conn **pc)
{
	if (!pc || !*pc)
		return zc__err(-EINVAL, "zc_abort: no connection");
	zc__conn_teardown(*pc, 0);
	*pc = NULL;
	return 0;
}

/* Linger: everything we sent must be delivered (rendezvous buffers read by
 * the peer) before CLOSE tells it no more data follows, and CLOSE itself
 * before the disconnect, or the peer would see a reset. Met when that is
 * done, or when there is nobody left to tell. */
static int lingered(struct zc_conn *c)
{
	if (c->state != ZC_CONN_OPEN || c->ep.qp.err || c->disconnected)
		return 1;
	if (zc__ep_busy(&c->ep))
		return 0;
	if (c->opts.raw) /* no CLOSE: the disconnect says it */
		return 1;
	if (!c->ep.close_sent)
		return zc__ep_close(&c->ep, ZC_MSG_CLOSE); /* 0 once posted: wait for its completion */
	return 1;
}

/* The linger ended (rc as lingered() said; 0: it timed out). */
static void close_drain(struct zc_conn *c, int rc)
{
	if (!rc)
		rc = zc__err(-ETIMEDOUT, "timed out in zc_close: the peer did not take the remaining data");
	if (rc > 0 || rc == -ECONNRESET)
		rc = 0; /* a peer that reset after taking everything */
	/* Both sides closing at once: once the peer's CLOSE has acknowledged
	 * every message we sent (its FINs came before it), a transport error
	 * after it lost nothing. It happens under packet loss: a lost ACK's
	 * retransmission, or our own CLOSE, finds the peer's QP gone. */
	if (!rc && c->ep.qp.err && c->ep.qp.err != -ECONNRESET &&
	    !(c->ep.close_received && c->ep.cr.sent == c->ep.cr.peer_acked))
		rc = zc__qp_error(&c->ep.qp);
	c->result = rc;
	if (rc)
		snprintf(c->cm_detail, sizeof(c->cm_detail), "%s", zc__err_detail());
	zc__conn_drain_then(c, c->async_close ? ZC_AFTER_CLOSED : ZC_AFTER_DONE);
}

/* Every work request is reaped (or the drain gave up): frees what the
 * attempt or the connection held, then goes on. Returns when the
 * connection needs its next look (0: never); it may be freed. */
static int64_t drained(struct zc_conn *c, int64_t now)
{
	struct zc__evnode *o;

	conn_reset(c, 0);
	switch (c->after) {
	case ZC_AFTER_RETRY:
		c->retry_at = now + (10 << (c->attempt < 6 ? c->attempt : 6));
		if (c->retry_at > c->deadline)
			c->retry_at = c->deadline;
		c->attempt++;
		zc__conn_set_phase(c, ZC_PH_BACKOFF);
		return c->retry_at;
	case ZC_AFTER_FAIL:
		c->state = ZC_CONN_FAILED;
		zc__conn_set_phase(c, ZC_PH_NONE);
		if (c->owned)
			zc__ev_raise(c, ZC_EV_CONNECTED);
		return 0;
	case ZC_AFTER_CLOSED:
		o = c->closed_ev;
		c->closed_ev = NULL;
		o->ev = (struct zc_event){.type = ZC_EV_CLOSED, .data = c->data, .status = c->result};
		zc__list_add_tail(&c->ctx->ev_orphans, &o->node);
		zc__conn_destroy(c);
		return 0;
	case ZC_AFTER_DONE:
		zc__conn_set_phase(c, ZC_PH_DONE);
		return 0;
	default: /* ZC_AFTER_DROP */
		zc__conn_destroy(c);
		return 0;
	}
}

int64_t zc__conn_close_step(struct zc_conn *c, int64_t now)
{
	int rc;

	if (c->phase == ZC_PH_LINGER) {
		rc = lingered(c);
		if (!rc && now < c->deadline)
			return c->deadline;
		close_drain(c, rc);
	}
	if (!zc__qp_drained(&c->ep.qp) && now < c->drain_deadline)
		return c->drain_deadline;
	return drained(c, now);
}

void zc__conn_close_begin(struct zc_conn *c, bool async)
{
	c->owned = false;
	c->async_close = async;
	c->deadline = zc__now_ms() + c->opts.timeout_ms;
	if (c->state == ZC_CONN_OPEN) {
		zc__conn_set_phase(c, ZC_PH_LINGER);
	} else {
		c->result = 0;
		zc__conn_drain_then(c, async ? ZC_AFTER_CLOSED : ZC_AFTER_DONE);
	}
}
