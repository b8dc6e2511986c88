/*
 * Events (zc_wait_events): which connections and listeners have something
 * to report. A connection is put on the context's ready list when
 * something happens to it (a message queued, room back after -EAGAIN, a
 * failure, a one-shot event), by the endpoint's notify hook or by cm.c; a
 * look takes each listed one off, reports what holds, and lists it again
 * only while a level-triggered event (READABLE, ACCEPT) still holds or
 * events are left over. Nothing ever sweeps every connection.
 */
#include <stdlib.h>

#include "conn.h"

#define EV_BIT(t) (1u << (t))

void zc__ev_kick(struct zc_conn *c)
{
	if (!zc__list_linked(&c->ev_node))
		zc__list_add_tail(&c->ctx->ev_ready, &c->ev_node);
}

void zc__ev_kick_listener(struct zc_listener *l)
{
	if (!zc__list_linked(&l->ev_node))
		zc__list_add_tail(&l->ctx->ev_lready, &l->ev_node);
}

void zc__ev_raise(struct zc_conn *c, int type)
{
	if (c->ev_once & EV_BIT(type))
		return;
	c->ev_once |= EV_BIT(type);
	c->ev_bits |= EV_BIT(type);
	zc__ev_kick(c);
}

void zc__ev_want_writable(struct zc_conn *c)
{
	c->want_writable = true;
}

void zc__ev_forget(struct zc_conn *c)
{
	zc__list_del(&c->ev_node);
}

void zc__ev_forget_listener(struct zc_listener *l)
{
	zc__list_del(&l->ev_node);
}

bool zc__conn_sendable(const struct zc_conn *c)
{
	const struct zc__ep *e = &c->ep;

	if (c->opts.raw)
		return zc__sreq_avail(&e->qp, 1);
	return !e->zq_count && zc__credit_avail(&e->cr) && zc__sreq_avail(&e->qp, 2);
}

/* What zc_recv()/zc_msg_recv() with ZC_DONTWAIT would not answer -EAGAIN
 * to: a queued message, stream bytes or the end of the stream, not
 * claimed by a buffer posted with zc_recv_zc(). */
static bool readable(const struct zc_conn *c)
{
	return c->state == ZC_CONN_OPEN && !c->ep.qp.err && c->ep.item_count && !c->ep.posted_count;
}

void zc__ev_notify(struct zc__ep *e, enum zc__ep_news news)
{
	zc__ev_news(e->conn, news);
}

void zc__ev_news(struct zc_conn *c, enum zc__ep_news news)
{
	switch (news) {
	case ZC_EP_ARRIVED:
		if (c->ep.close_received || c->ep.shut_received)
			zc__ev_raise(c, ZC_EV_PEER_CLOSED);
		zc__ev_kick(c);
		break;
	case ZC_EP_SENDABLE:
		/* the common case costs one flag test */
		if (c->want_writable && zc__conn_sendable(c)) {
			c->want_writable = false;
			c->ev_bits |= EV_BIT(ZC_EV_WRITABLE);
			zc__ev_kick(c);
		}
		break;
	case ZC_EP_FAILED:
		/* set-up failures are CONNECTED's status; closes report CLOSED;
		 * a raw peer's disconnect is its close (PEER_CLOSED, cm.c) */
		if (c->state == ZC_CONN_OPEN && c->phase == ZC_PH_NONE && !(c->opts.raw && c->disconnected))
			zc__ev_raise(c, ZC_EV_ERROR);
		break;
	}
}

int zc__ev_reap(struct zc_ctx *ctx, struct zc_completion *comps, int max)
{
	int n = zc__ctx_reap(ctx, comps, max), i;

	for (i = 0; i < n; i++)
		if (comps[i].conn) /* else zc__ctx_forget_conn kept the data */
			comps[i].data = comps[i].conn->data;
	return n;
}

static int conn_events(struct zc_conn *c, struct zc_event *evs, int max)
{
	static const int order[] = {ZC_EV_CONNECTED, ZC_EV_WRITABLE, ZC_EV_READABLE, ZC_EV_PEER_CLOSED, ZC_EV_ERROR};
	unsigned i;
	int n = 0;

	for (i = 0; i < sizeof(order) / sizeof(order[0]) && n < max; i++) {
		int t = order[i], status = 0;

		if (t == ZC_EV_READABLE ? !readable(c) : !(c->ev_bits & EV_BIT(t)))
			continue;
		c->ev_bits &= ~EV_BIT(t);
		if (t == ZC_EV_CONNECTED)
			status = c->result;
		else if (t == ZC_EV_ERROR)
			status = c->ep.qp.err;
		evs[n++] = (struct zc_event){.type = t, .conn = c, .data = c->data, .status = status};
	}
	return n;
}

/* Looks at every listed connection once: reports what holds, keeps on the
 * list what still may. */
static int ready_conns(struct zc_ctx *ctx, struct zc_event *evs, int max)
{
	struct zc__list todo;
	int n = 0;

	zc__list_init(&todo);
	zc__list_splice_front(&ctx->ev_ready, &todo);
	while (n < max && !zc__list_empty(&todo)) {
		struct zc_conn *c = zc__list_first(&todo, struct zc_conn, ev_node);
		int got;

		zc__list_del(&c->ev_node);
		ctx->stats.event_checks++;
		if (c->ev_gen == ctx->ev_gen) { /* reported by this call already */
			zc__list_add_tail(&ctx->ev_ready, &c->ev_node);
			continue;
		}
		/* Not the application's (yet, or any more): zc_accept() lists a
		 * connection again when it hands it out. */
		if (!c->owned)
			continue;
		got = conn_events(c, evs + n, max - n);
		if (got)
			c->ev_gen = ctx->ev_gen;
		n += got;
		if (c->ev_bits || readable(c))
			zc__list_add_tail(&ctx->ev_ready, &c->ev_node);
	}
	/* not looked at: first in line next time */
	zc__list_splice_front(&todo, &ctx->ev_ready);
	return n;
}

static int ready_listeners(struct zc_ctx *ctx, struct zc_event *evs, int max)
{
	struct zc__list todo;
	int n = 0;

	zc__list_init(&todo);
	zc__list_splice_front(&ctx->ev_lready, &todo);
	while (n < max && !zc__list_empty(&todo)) {
		struct zc_listener *l = zc__list_first(&todo, struct zc_listener, ev_node);

		zc__list_del(&l->ev_node);
		ctx->stats.event_checks++;
		if (!l->queued && !l->err)
			continue;
		if (l->ev_gen != ctx->ev_gen) {
			l->ev_gen = ctx->ev_gen;
			evs[n++] = (struct zc_event){.type = ZC_EV_ACCEPT, .listener = l};
		}
		zc__list_add_tail(&ctx->ev_lready, &l->ev_node);
	}
	zc__list_splice_front(&todo, &ctx->ev_lready);
	return n;
}

int zc__ev_collect(struct zc_ctx *ctx, struct zc_event *evs, int max)
{
	struct zc_completion comp;
	int n = 0;

	while (n < max && !zc__list_empty(&ctx->ev_orphans)) {
		struct zc__evnode *o = zc__list_first(&ctx->ev_orphans, struct zc__evnode, node);

		zc__list_del(&o->node);
		evs[n++] = o->ev;
		free(o);
	}
	while (n < max && zc__ev_reap(ctx, &comp, 1)) {
		evs[n++] = (struct zc_event){.type = ZC_EV_COMPLETION, .conn = comp.conn, .data = comp.data,
					     .status = comp.status, .token = comp.token, .op = comp.op, .len = comp.len,
					     .invalidated_rkey = comp.invalidated_rkey, .flags = comp.flags};
		/* a posted buffer fewer: queued messages may be the application's now */
		if (comp.conn && comp.op == ZC_OP_RECV)
			zc__ev_kick(comp.conn);
	}
	n += ready_listeners(ctx, evs + n, max - n);
	return n + ready_conns(ctx, evs + n, max - n);
}
