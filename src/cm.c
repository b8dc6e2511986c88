/*
 * Connection manager: listen, accept, connect, close, and rdma_cm events.
 *
 * Set-up and close are state machines (zc_conn.phase, conn.h) advanced by
 * rdma_cm events (zc__cm_process) and by time (zc__cm_walk), so nothing
 * needs a caller waiting: zc_connect() is zc_connect_start() plus a wait,
 * zc_close() is the machine of zc_close_start() plus a wait, and incoming
 * requests are accepted inside progress; zc_accept() only takes
 * established connections off the listener's queue.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "conn.h"
#include "opts.h"

#define RESOLVE_MS 2000 /* short: rdma_cm retries an unresolved neighbour only at its timeout */
#define REJ_CONSUMER 28  /* IB_CM_REJ_CONSUMER_DEFINED: the peer's application said no */


static struct zc_conn *conn_alloc(struct zc_ctx *ctx, const struct zc_conn_opts *opts)
{
	struct zc_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->kind = ZC_OBJ_CONN;
	c->ctx = ctx;
	zc__list_init(&c->exports);
	zc__list_init(&c->ka_node);
	zc__list_init(&c->ev_node);
	zc__list_init(&c->life_node);
	zc__list_init(&c->lq_node);
	zc__list_add(&ctx->conns, &c->node);
	c->state = ZC_CONN_SETUP;
	if (opts)
		c->opts = *opts;
	else
		zc_conn_opts_init(&c->opts);
	zc__conn_opts_resolve(&c->opts);
	if (c->opts.raw) {
		/* the caller's bytes may be gone by the time they are sent */
		if (c->opts.private_data_len)
			memcpy(c->my_priv, c->opts.private_data, c->opts.private_data_len);
		c->opts.private_data = c->opts.private_data_len ? c->my_priv : NULL;
	}
	return c;
}

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

/* The phase, with the connection on ctx->life while it has one to advance. */
static void life_set(struct zc_conn *c, enum zc__phase ph)
{
	c->phase = ph;
	if (ph == ZC_PH_NONE || ph == ZC_PH_DONE)
		zc__list_del(&c->life_node);
	else if (!zc__list_linked(&c->life_node))
		zc__list_add_tail(&c->ctx->life, &c->life_node);
}

/* An accepted connection stops counting against its listener's backlog. */
static void leave_listener(struct zc_conn *c)
{
	struct zc_listener *l = c->listener;

	if (!l)
		return;
	if (zc__list_linked(&c->lq_node)) {
		zc__list_del(&c->lq_node);
		l->queued--;
	} else {
		l->handshakes--;
	}
	c->listener = NULL;
}

static void conn_destroy(struct zc_conn *c)
{
	conn_reset(c, 2000);
	leave_listener(c);
	life_set(c, ZC_PH_NONE);
	zc__conn_ka_del(c);
	zc__ev_forget(c);
	zc__ctx_forget_conn(c->ctx, c, c->data);
	zc__list_del(&c->node);
	free(c->closed_ev);
	free(c);
}

/* A busy listener's reject is retried like a refusal; an incompatible
 * peer's is final. */
static int cm_errno(int event, uint8_t rej)
{
	switch (event) {
	case RDMA_CM_EVENT_REJECTED:
		return rej == ZC_REJ_INCOMPATIBLE ? -ZC_EPEERPROTO : -ECONNREFUSED;
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
		return -EHOSTUNREACH;
	default:
		return -ECONNRESET;
	}
}

void zc__cm_reject(struct rdma_cm_id *id, uint8_t reason)
{
	uint8_t priv[ZC_REJ_SIZE];

	zc__rej_encode(priv, reason);
	rdma_reject(id, priv, sizeof(priv));
}

/* The local ACK timeout, 4.096 us * 2^17 = 0.54 s per try: with 6 retries
 * a dead peer is noticed in about 4 s whatever the path record implies, and
 * an emulated, loaded host does not retransmit spuriously (rxe 6.1 then
 * re-executes window binds already done, which fails the QP). */
static void set_ack_timeout(struct rdma_cm_id *id)
{
	uint8_t timeout = 17;

	rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &timeout, sizeof(timeout));
}

static uint8_t raw_depth(const struct zc_conn *c, int want, uint8_t offered)
{
	return zc__raw_read_depth(c->ctx->caps.max_qp_rd_atom, want, c->passive, offered);
}

static void conn_param(struct zc_conn *c, struct rdma_conn_param *p, uint8_t *priv)
{
	uint32_t rd_atom = c->ctx->caps.max_qp_rd_atom;
	struct zc__priv mine;

	if (c->opts.raw) {
		/* our READs are served by the requester's responder resources */
		*p = (struct rdma_conn_param){
			.private_data = c->opts.private_data, .private_data_len = (uint8_t)c->opts.private_data_len,
			.initiator_depth = raw_depth(c, c->opts.initiator_depth, c->req_responder_resources),
			.responder_resources = raw_depth(c, c->opts.responder_resources, c->req_initiator_depth),
			.retry_count = (uint8_t)c->opts.retry_count, .rnr_retry_count = (uint8_t)c->opts.rnr_retry,
		};
		return;
	}
	zc__ep_local_priv(&c->ep, rd_atom, &mine);
	zc__priv_encode(priv, &mine);
	*p = (struct rdma_conn_param){
		.private_data = priv, .private_data_len = ZC_PRIV_SIZE,
		.responder_resources = (uint8_t)(c->ctx->caps.max_qp_rd_atom > 255 ? 255 : c->ctx->caps.max_qp_rd_atom),
		.initiator_depth = (uint8_t)(c->ctx->caps.max_qp_rd_atom > 255 ? 255 : c->ctx->caps.max_qp_rd_atom),
		.retry_count = (uint8_t)c->opts.retry_count, .rnr_retry_count = (uint8_t)c->opts.rnr_retry,
	};
}

/* The QP and the endpoint over it; windows grow up to the credits option
 * each way (credit.h). */
static int create_qp(struct zc_conn *c)
{
	uint32_t credits = (uint32_t)c->opts.credits;
	struct ibv_qp_init_attr attr;
	int rc;

	/* A context created without an address takes its first route's device. */
	if (!c->ctx->verbs && (rc = zc__dev_attach(c->ctx, c->id->verbs, c->id->port_num)))
		return rc;
	if (c->id->verbs != c->ctx->verbs)
		return zc__err(-ENODEV, "the route to the peer leaves through %s, not the context's device %s",
			      ibv_get_device_name(c->id->verbs->device), c->ctx->caps.device);
	if (c->opts.raw) {
		rc = zc__qp_init_raw(&c->ep.qp, c->ctx, c->opts.raw_send_depth, c->opts.raw_recv_depth, &attr);
		if (rc)
			return rc;
		if (rdma_create_qp(c->id, c->ctx->pd, &attr))
			return zc__err(-errno, "rdma_create_qp (raw, %u send and %u receive work requests): %s",
				      c->opts.raw_send_depth, c->opts.raw_recv_depth, strerror(errno));
		return zc__raw_setup(c);
	}
	rc = zc__qp_init_attr(&c->ep.qp, c->ctx, zc__ep_own_slots(credits), (uint32_t)c->opts.send_depth, &attr);
	if (rc)
		return rc;
	if (rdma_create_qp(c->id, c->ctx->pd, &attr))
		return zc__err(-errno, "rdma_create_qp: %s", strerror(errno));
	c->ep.notify = zc__ev_notify;
	return zc__ep_setup(&c->ep, c, c->id, credits, c->opts.eager_size, c->opts.mr_fallback);
}

/* The connection is up; a disconnect that raced its set-up is a reset. */
static void opened(struct zc_conn *c)
{
	c->state = ZC_CONN_OPEN;
	life_set(c, ZC_PH_NONE);
	zc__qp_set_connected(&c->ep.qp);
	zc__conn_ka_add(c, zc__now_ms());
	if (c->disconnected && !c->ep.close_received)
		zc__qp_fail(&c->ep.qp, zc__err(-ECONNRESET, "the peer disconnected right after connecting"));
}

/* Disconnects and starts flushing the QP; zc__cm_walk() finishes the
 * teardown once every work request is reaped, then does `after`. */
static void hang_up(struct zc_conn *c)
{
	if (c->rep_pending) { /* accepted, never answered: refuse it instead */
		c->rep_pending = false;
		rdma_reject(c->id, NULL, 0);
	} else if (c->id && c->ep.qp.qp) {
		rdma_disconnect(c->id);
	}
}

static void teardown(struct zc_conn *c, enum zc__after after)
{
	hang_up(c);
	zc__qp_flush(&c->ep.qp);
	c->after = after;
	c->drain_deadline = zc__now_ms() + 2000;
	life_set(c, ZC_PH_DRAIN);
}

/* A handshake the peer abandoned (it gave up, vanished or disconnected) is
 * dropped, as TCP never hands accept() a connection that died in its
 * handshake. A peer that is not a compatible endpoint (-ZC_EVERSION,
 * -ZC_EPEERPROTO) and the server's own failures are for zc_accept(). */
static bool peer_abandoned(int rc)
{
	return rc == -EINVAL || rc == -ETIMEDOUT || rc == -ECONNRESET || rc == -ECONNREFUSED ||
	       rc == -ECONNABORTED;
}

static void setup_failed(struct zc_conn *c, int rc)
{
	char detail[256];

	snprintf(detail, sizeof(detail), "%s", zc__err_detail());
	if (c->passive && !c->opts.raw) {
		struct zc_listener *l = c->listener;

		if (l && !peer_abandoned(rc) && !l->err) {
			l->err = rc;
			snprintf(l->err_detail, sizeof(l->err_detail), "%s", detail);
			zc__ev_kick_listener(l);
		} else if (l) {
			snprintf(l->skipped, sizeof(l->skipped), "%s", detail);
		}
		/* refused if it was accepted already: harmless */
		zc__cm_reject(c->id, rc == -ZC_EVERSION || rc == -ZC_EPEERPROTO ? ZC_REJ_INCOMPATIBLE : ZC_REJ_BUSY);
		leave_listener(c);
		teardown(c, ZC_AFTER_DROP);
		return;
	}
	/* rxe rejects a quick reconnect from a recycled port as stale; such
	 * attempts and refusals are retried with backoff until the deadline. */
	if (rc == -ECONNREFUSED && !c->rejected)
		c->refused = true;
	if ((rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -EHOSTUNREACH) && !c->passive && !c->rejected &&
	    zc__remaining_ms(c->deadline) > 0) {
		teardown(c, ZC_AFTER_RETRY);
		return;
	}
	/* Report the refusal, not the timeout it was retried into. */
	if (rc == -ETIMEDOUT && c->refused) {
		rc = -ECONNREFUSED;
		snprintf(detail, sizeof(detail), "refused on every attempt for %d ms (nothing listening?)",
			 c->opts.timeout_ms);
	}
	c->result = rc;
	snprintf(c->cm_detail, sizeof(c->cm_detail), "%s %s failed: %s", c->passive ? "accepting" : "connect to",
		 c->peer_name, detail);
	teardown(c, ZC_AFTER_FAIL);
}

/* ESTABLISHED: the client takes the server's parameters; the server's
 * connection joins its listener's queue. */
static void keep_peer_priv(struct zc_conn *c, const uint8_t *priv, uint8_t n)
{
	memcpy(c->peer_priv, priv, n);
	c->peer_priv_len = n;
	c->peer_priv_set = true;
}

static int established(struct zc_conn *c, const uint8_t *priv, uint8_t n)
{
	int rc = 0;

	if (c->ep.qp.err) /* the peer's first message broke the protocol */
		return zc__qp_error(&c->ep.qp);
	if (c->opts.raw) { /* the application hears of it as any connect's end */
		if (!c->passive)
			keep_peer_priv(c, priv, n);
		opened(c);
		if (c->owned)
			zc__ev_raise(c, ZC_EV_CONNECTED);
		return 0;
	}
	if (c->passive) {
		if (!c->listener)
			return zc__err(-ECONNABORTED, "the listener was freed during the handshake");
	} else {
		if (n)
			rc = zc__priv_decode(priv, n, &c->peer);
		if (!rc)
			rc = zc__ep_peer(&c->ep, &c->peer);
		if (rc)
			return rc;
	}
	opened(c);
	if (c->passive) {
		struct zc_listener *l = c->listener;

		l->handshakes--;
		l->queued++;
		zc__list_add_tail(&l->ready, &c->lq_node);
		zc__ev_kick_listener(l);
	} else if (c->owned) {
		zc__ev_raise(c, ZC_EV_CONNECTED);
	}
	return 0;
}

/* The next step of a handshake, on the rdma_cm event it waited for. */
static void setup_event(struct zc_conn *c, int event, int status, const uint8_t *priv, uint8_t n)
{
	struct rdma_conn_param param;
	uint8_t mine[ZC_PRIV_SIZE];
	int rc = 0;

	if (event != c->expect && c->opts.raw && event == RDMA_CM_EVENT_REJECTED) {
		/* the peer's reject is its answer (final); others may pass */
		keep_peer_priv(c, priv, n);
		c->rejected = status == REJ_CONSUMER;
		setup_failed(c, zc__err(-ECONNREFUSED, "rejected (status %d%s)", status,
				       c->rejected ? ": by the peer's application, with private data" : ""));
		return;
	}
	if (event != c->expect) {
		uint8_t rej = event == RDMA_CM_EVENT_REJECTED ? zc__rej_decode(priv, n) : 0;

		setup_failed(c, zc__err(cm_errno(event, rej), "%s while waiting for %s (status %d%s)", rdma_event_str(event),
				       rdma_event_str(c->expect), status,
				       event != RDMA_CM_EVENT_REJECTED ? ""
				       : rej == ZC_REJ_BUSY ? ": the listener's backlog is full"
				       : rej == ZC_REJ_INCOMPATIBLE ? ": the listener refused our connection parameters"
				       : ": not by a zcrdma listener; its kernel may have refused the route"));
		return;
	}
	switch (event) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		set_ack_timeout(c->id);
		c->expect = RDMA_CM_EVENT_ROUTE_RESOLVED;
		if (rdma_resolve_route(c->id, RESOLVE_MS))
			rc = zc__err(-errno, "rdma_resolve_route: %s", strerror(errno));
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		c->expect = RDMA_CM_EVENT_ESTABLISHED;
		rc = create_qp(c);
		if (!rc) {
			conn_param(c, &param, mine);
			if (rdma_connect(c->id, &param))
				rc = zc__err(-errno, "rdma_connect: %s", strerror(errno));
		}
		break;
	default:
		rc = established(c, priv, n);
	}
	if (rc)
		setup_failed(c, rc);
}

/* A raw listener's request waits for the application (zc_req_get). */
static void raw_request(struct zc_listener *l, struct rdma_cm_id *id, const struct rdma_conn_param *p,
			const uint8_t *priv, uint8_t n)
{
	struct zc_conn_req *r;

	if (l->handshakes + l->queued >= l->backlog || !(r = calloc(1, sizeof(*r)))) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return;
	}
	r->kind = ZC_OBJ_REQ;
	r->listener = l;
	r->ctx = l->ctx;
	r->id = id;
	id->context = r;
	memcpy(r->priv, priv, n);
	r->priv_len = n;
	/* rdma_cm hands them over as this side should answer: the
	 * requester's READs are our responder resources and the other way */
	r->initiator_depth = p->responder_resources;
	r->responder_resources = p->initiator_depth;
	zc__list_add_tail(&l->reqs, &r->node);
	l->queued++;
	zc__ev_kick_listener(l);
}

/* A connection request: the whole handshake runs inside progress. */
static void incoming(struct zc_listener *l, struct rdma_cm_id *id, const struct rdma_conn_param *p,
		     const uint8_t *priv, uint8_t n)
{
	struct rdma_conn_param param;
	uint8_t mine[ZC_PRIV_SIZE];
	struct zc_conn *c;
	int rc;

	if (l && l->opts.raw) {
		raw_request(l, id, p, priv, n);
		return;
	}
	if (!l || l->handshakes + l->queued >= l->backlog || !(c = conn_alloc(l->ctx, &l->opts))) {
		zc__cm_reject(id, ZC_REJ_BUSY);
		rdma_destroy_id(id);
		return;
	}
	c->passive = true;
	c->id = id;
	id->context = c;
	c->listener = l;
	l->handshakes++;
	c->deadline = zc__now_ms() + c->opts.timeout_ms;
	c->expect = RDMA_CM_EVENT_ESTABLISHED;
	life_set(c, ZC_PH_CONNECT);
	rc = zc__priv_decode(priv, n, &c->peer);
	if (!rc)
		rc = create_qp(c);
	if (!rc)
		rc = zc__ep_peer(&c->ep, &c->peer);
	if (!rc) {
		conn_param(c, &param, mine);
		param.responder_resources = (uint8_t)(c->peer.rd_atom < param.responder_resources
							      ? c->peer.rd_atom : param.responder_resources);
		set_ack_timeout(id);
		if (rdma_accept(id, &param))
			rc = zc__err(-errno, "rdma_accept: %s", strerror(errno));
	}
	if (rc)
		setup_failed(c, rc);
}

static void conn_event(struct zc_conn *c, int event, int status, const uint8_t *priv, uint8_t n)
{
	if (c->phase == ZC_PH_CONNECT)
		setup_event(c, event, status, priv, n);
	if (event == RDMA_CM_EVENT_DISCONNECTED || event == RDMA_CM_EVENT_DEVICE_REMOVAL) {
		/* The peer's CLOSE completed before it disconnected, but its
		 * completion may still sit in our CQ: reap it first so an
		 * orderly close is not mistaken for a reset. */
		zc__ctx_poll_cq(c->ctx);
		c->disconnected = true;
		/* A raw protocol's close is the disconnect: PEER_CLOSED, and
		 * what is still posted completes with -ECONNRESET. */
		if (c->opts.raw && c->state == ZC_CONN_OPEN && c->phase == ZC_PH_NONE && !c->ep.qp.err)
			zc__ev_raise(c, ZC_EV_PEER_CLOSED);
		if (c->state == ZC_CONN_OPEN && !c->ep.close_received)
			zc__qp_fail(&c->ep.qp, zc__err(-ECONNRESET, "the peer disconnected (%s)", rdma_event_str(event)));
	}
}

int zc__cm_process(struct zc_ctx *ctx)
{
	struct rdma_cm_event *ev;
	int handled = 0;

	zc__err_progress_begin();
	while (rdma_get_cm_event(ctx->cm_ch, &ev) == 0) {
		struct rdma_cm_id *id = ev->id, *listen_id = ev->listen_id;
		int event = ev->event, status = ev->status, *kind = id->context;
		struct rdma_conn_param param = ev->param.conn;
		uint8_t priv[ZC__PRIV_MAX], n = 0;

		/* raw connections hand all of it to the application */
		if (param.private_data) {
			n = param.private_data_len;
			memcpy(priv, param.private_data, n);
		}
		/* Acked before it is handled: handling may destroy the id, and
		 * rdma_destroy_id() waits until its events are acked. */
		rdma_ack_cm_event(ev);
		handled++;
		if (event == RDMA_CM_EVENT_CONNECT_REQUEST)
			incoming(listen_id->context, id, &param, priv, n);
		else if (kind && *kind == ZC_OBJ_CONN)
			conn_event(id->context, event, status, priv, n);
	}
	zc__err_progress_end();
	return handled;
}

/* One attempt of a connect: resolve, route, connect, each step on the
 * event before it (setup_event). */
static void attempt_start(struct zc_conn *c)
{
	struct sockaddr_storage src = c->ctx->local;
	int rc = 0;

	zc__set_port(&src, 0);
	c->state = ZC_CONN_SETUP;
	c->disconnected = false;
	c->expect = RDMA_CM_EVENT_ADDR_RESOLVED;
	life_set(c, ZC_PH_CONNECT);
	if (rdma_create_id(c->ctx->cm_ch, &c->id, c, RDMA_PS_TCP))
		rc = zc__err(-errno, "rdma_create_id: %s", strerror(errno));
	/* Without a source address, the route to dst chooses it and the device. */
	else if (rdma_resolve_addr(c->id, src.ss_family ? (struct sockaddr *)&src : NULL, (struct sockaddr *)&c->dst,
				   RESOLVE_MS))
		rc = zc__err(-errno, "rdma_resolve_addr: %s", strerror(errno));
	if (rc)
		setup_failed(c, rc);
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
		return zc__ep_close(&c->ep); /* 0 once posted: wait for its completion */
	return 1;
}

/* The linger ended (rc as lingered() said; 0: it timed out). */
static void close_drain(struct zc_conn *c, int rc)
{
	if (!rc)
		rc = zc__err(-ETIMEDOUT, "timed out in zc_close: the peer did not take the remaining data");
	if (rc > 0 || rc == -ECONNRESET)
		rc = 0; /* a peer that reset after taking everything */
	if (!rc && c->ep.qp.err && c->ep.qp.err != -ECONNRESET)
		rc = zc__qp_error(&c->ep.qp);
	c->result = rc;
	if (rc)
		snprintf(c->cm_detail, sizeof(c->cm_detail), "%s", zc__err_detail());
	teardown(c, c->async_close ? ZC_AFTER_CLOSED : ZC_AFTER_DONE);
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
		life_set(c, ZC_PH_BACKOFF);
		return c->retry_at;
	case ZC_AFTER_FAIL:
		c->state = ZC_CONN_FAILED;
		life_set(c, ZC_PH_NONE);
		if (c->owned)
			zc__ev_raise(c, ZC_EV_CONNECTED);
		return 0;
	case ZC_AFTER_CLOSED:
		o = c->closed_ev;
		c->closed_ev = NULL;
		o->ev = (struct zc_event){.type = ZC_EV_CLOSED, .data = c->data, .status = c->result};
		zc__list_add_tail(&c->ctx->ev_orphans, &o->node);
		conn_destroy(c);
		return 0;
	case ZC_AFTER_DONE:
		life_set(c, ZC_PH_DONE);
		return 0;
	default: /* ZC_AFTER_DROP */
		conn_destroy(c);
		return 0;
	}
}

/* An accepted raw connection's reply, after the application had its chance
 * to post receives (zc_req_accept). */
static int send_rep(struct zc_conn *c)
{
	struct rdma_conn_param param;

	c->rep_pending = false;
	conn_param(c, &param, NULL);
	set_ack_timeout(c->id);
	if (rdma_accept(c->id, &param))
		return zc__err(-errno, "rdma_accept: %s", strerror(errno));
	return 0;
}

static int64_t advance(struct zc_conn *c, int64_t now)
{
	int rc;

	switch (c->phase) {
	case ZC_PH_CONNECT:
		if (c->rep_pending && (rc = send_rep(c)) < 0) {
			setup_failed(c, rc);
			return advance(c, now);
		}
		if (now < c->deadline)
			return c->deadline;
		setup_failed(c, zc__err(-ETIMEDOUT, "timed out waiting for %s", rdma_event_str(c->expect)));
		return advance(c, now);
	case ZC_PH_BACKOFF:
		if (now < c->retry_at)
			return c->retry_at;
		attempt_start(c);
		return c->phase == ZC_PH_CONNECT ? c->deadline : advance(c, now);
	case ZC_PH_LINGER:
		rc = lingered(c);
		if (!rc && now < c->deadline)
			return c->deadline;
		close_drain(c, rc);
		return advance(c, now);
	case ZC_PH_DRAIN:
		if (!zc__qp_drained(&c->ep.qp) && now < c->drain_deadline)
			return c->drain_deadline;
		return drained(c, now);
	default:
		return 0;
	}
}

void zc__cm_walk(struct zc_ctx *ctx)
{
	struct zc__list *n, *next;
	int64_t now, due, first = 0;

	if (zc__list_empty(&ctx->life))
		return;
	now = zc__now_ms();
	zc__err_progress_begin();
	for (n = ctx->life.next; n != &ctx->life; n = next) {
		next = n->next; /* advance() may free this one, never another */
		due = advance(zc__container_of(n, struct zc_conn, life_node), now);
		if (due && (!first || due < first))
			first = due;
	}
	zc__err_progress_end();
	zc__ctx_timer_at(ctx, first);
}

static int connect_begin(struct zc_ctx *ctx, const char *addr, uint16_t port, const struct zc_conn_opts *opts,
			 bool owned, struct zc_conn **out)
{
	struct sockaddr_storage dst;
	struct zc_conn *c;
	int rc;

	if (!ctx || !addr || !out || !port)
		return zc__err(-EINVAL, "zc_connect: context, address, port and output are required");
	if (opts && (rc = zc__conn_opts_check(opts, ZC_PRIV_REQ_MAX, "connect request")))
		return rc;
	rc = zc__resolve(addr, port, &dst);
	if (rc)
		return rc;
	c = conn_alloc(ctx, opts);
	if (!c)
		return zc__err(-ENOMEM, "zc_connect: out of memory");
	c->dst = dst;
	c->owned = owned;
	snprintf(c->peer_name, sizeof(c->peer_name), "%s:%u", addr, port);
	c->deadline = zc__now_ms() + c->opts.timeout_ms;
	attempt_start(c);
	*out = c;
	return 0;
}

int zc_connect_start(struct zc_ctx *ctx, const char *addr, uint16_t port, const struct zc_conn_opts *opts,
		     struct zc_conn **out)
{
	return connect_begin(ctx, addr, port, opts, true, out);
}

static int setup_over(void *arg)
{
	struct zc_conn *c = arg;

	zc__cm_walk(c->ctx);
	return c->state != ZC_CONN_SETUP;
}

int zc_connect(struct zc_ctx *ctx, const char *addr, uint16_t port, const struct zc_conn_opts *opts,
	       struct zc_conn **out)
{
	struct zc_conn *c;
	char detail[sizeof(c->cm_detail)];
	int rc = connect_begin(ctx, addr, port, opts, false, &c);

	if (rc)
		return rc;
	/* the machine keeps the deadline */
	zc__ctx_wait_for(ctx, setup_over, c, -1);
	if (c->state == ZC_CONN_OPEN) {
		c->owned = true;
		zc__ev_kick(c); /* what happened before it was handed out */
		*out = c;
		return 0;
	}
	rc = c->result;
	snprintf(detail, sizeof(detail), "%s", c->cm_detail);
	conn_destroy(c);
	return zc__err(rc, "%s", detail);
}

int zc_listen(struct zc_ctx *ctx, uint16_t port, const struct zc_conn_opts *opts, struct zc_listener **out)
{
	struct sockaddr_storage addr;
	struct zc_listener *l;
	int rc;

	if (!ctx || !out)
		return zc__err(-EINVAL, "zc_listen: context and output are required");
	/* The wildcard address would take requests on any device, and a
	 * context serves only one. */
	if (!ctx->local.ss_family)
		return zc__err(-EINVAL, "zc_listen: the context has no address to listen on: create it with "
				       "zc_ctx_new(local_addr, ...)");
	if (opts && (rc = zc__conn_opts_check(opts, ZC_PRIV_REP_MAX, "reply")))
		return rc;
	l = calloc(1, sizeof(*l));
	if (!l)
		return zc__err(-ENOMEM, "zc_listen: out of memory");
	l->kind = ZC_OBJ_LISTENER;
	l->ctx = ctx;
	l->backlog = 64;
	zc__list_init(&l->ready);
	zc__list_init(&l->reqs);
	zc__list_init(&l->ev_node);
	if (opts)
		l->opts = *opts;
	else
		zc_conn_opts_init(&l->opts);
	/* replies carry zc_req_accept()'s private data only */
	l->opts.private_data = NULL;
	l->opts.private_data_len = 0;
	addr = ctx->local;
	zc__set_port(&addr, port);
	if (rdma_create_id(ctx->cm_ch, &l->id, l, RDMA_PS_TCP)) {
		rc = zc__err(-errno, "zc_listen: rdma_create_id: %s", strerror(errno));
		goto err;
	}
	if (rdma_bind_addr(l->id, (struct sockaddr *)&addr) || rdma_listen(l->id, (int)l->backlog)) {
		rc = zc__err(-errno, "cannot listen on port %u: %s", port, strerror(errno));
		goto err;
	}
	zc__list_add(&ctx->listeners, &l->node);
	*out = l;
	return 0;
err:
	if (l->id)
		rdma_destroy_id(l->id);
	free(l);
	return rc;
}

uint16_t zc_listener_port(struct zc_listener *l)
{
	return l ? ntohs(rdma_get_src_port(l->id)) : 0;
}

static int conn_teardown(struct zc_conn *c, int rc)
{
	hang_up(c);
	conn_destroy(c);
	return rc;
}

int zc_listener_free(struct zc_listener **pl)
{
	struct zc_listener *l;
	struct zc__list *n;

	if (!pl || !*pl)
		return zc__err(-EINVAL, "zc_listener_free: no listener");
	l = *pl;
	/* Established connections nobody took are aborted (which makes
	 * progress: requests may still join); then handshakes still running
	 * lose the listener and are dropped when they end. */
	while (!zc__list_empty(&l->ready))
		conn_teardown(zc__list_first(&l->ready, struct zc_conn, lq_node), 0);
	while (!zc__list_empty(&l->reqs)) {
		struct zc_conn_req *r = zc__list_first(&l->reqs, struct zc_conn_req, node);

		zc_req_reject(&r, NULL, 0);
	}
	for (n = l->ctx->life.next; n != &l->ctx->life; n = n->next) {
		struct zc_conn *c = zc__container_of(n, struct zc_conn, life_node);

		if (c->listener == l)
			leave_listener(c);
	}
	zc__ev_forget_listener(l);
	zc__list_del(&l->node);
	rdma_destroy_id(l->id);
	free(l);
	*pl = NULL;
	return 0;
}

static int accept_ready(void *arg)
{
	struct zc_listener *l = arg;

	zc__cm_walk(l->ctx);
	return l->queued || l->err;
}

/* The wait of zc_accept() and zc_req_get(): until ready(l), up to
 * timeout_ms (0: a look, -EAGAIN with the fd armed). */
static int listener_wait(struct zc_listener *l, int (*ready)(void *arg), int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : timeout_ms == 0 ? ZC__NOWAIT : zc__now_ms() + timeout_ms;

	zc__ctx_progress(l->ctx);
	zc__cm_process(l->ctx);
	return zc__ctx_wait_for(l->ctx, ready, l, deadline);
}

int zc_accept(struct zc_listener *l, struct zc_conn **out, int timeout_ms)
{
	struct zc_conn *c;
	int rc;

	if (!l || !out)
		return zc__err(-EINVAL, "zc_accept: listener and output are required");
	if (l->opts.raw)
		return zc__err(-EINVAL, "zc_accept: a raw listener's requests are taken with zc_req_get()");
	rc = listener_wait(l, accept_ready, timeout_ms);
	if (rc == -EAGAIN)
		return rc; /* the fd is armed: the caller may sleep on it */
	if (rc == -ETIMEDOUT)
		return zc__err(-ETIMEDOUT, "no connection within %d ms%s%s", timeout_ms,
			      *l->skipped ? "; a handshake failed: " : "", l->skipped);
	if (!l->queued) {
		rc = l->err;
		l->err = 0;
		return zc__err(rc, "%s", l->err_detail);
	}
	c = zc__list_first(&l->ready, struct zc_conn, lq_node);
	leave_listener(c);
	c->owned = true;
	zc__ev_kick(c); /* what happened before it was handed out */
	*out = c;
	return 0;
}

void zc_conn_set_data(struct zc_conn *c, void *data)
{
	if (c)
		c->data = data;
}

void *zc_conn_data(const struct zc_conn *c)
{
	return c ? c->data : NULL;
}

static void query_id(struct rdma_cm_id *id, struct zc_ctx *ctx, struct zc_conn_info *info)
{
	/* rdma_cm keeps both addresses in sockaddr_storage-sized unions. */
	memcpy(&info->local, rdma_get_local_addr(id), sizeof(info->local));
	memcpy(&info->peer, rdma_get_peer_addr(id), sizeof(info->peer));
	snprintf(info->device, sizeof(info->device), "%s", ctx->caps.device);
}

/* What the QP itself runs with, not what was asked for. */
static int raw_query(struct zc_conn *c, struct zc_conn_info *info)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;
	int rc;

	*info = (struct zc_conn_info){.raw = 1, .send_depth = c->ep.qp.depth, .recv_depth = c->ep.qp.recv_depth};
	query_id(c->id, c->ctx, info);
	if (!c->ep.qp.qp)
		return zc__err(-ENOTCONN, "zc_conn_query: the raw connection has no queue pair (being set up)");
	rc = ibv_query_qp(c->ep.qp.qp, &a, IBV_QP_MAX_QP_RD_ATOMIC | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_RNR_RETRY,
			  &ia);
	if (rc)
		return zc__err(-rc, "zc_conn_query: ibv_query_qp: %s", strerror(rc));
	info->initiator_depth = a.max_rd_atomic;
	info->responder_resources = a.max_dest_rd_atomic;
	info->rnr_retry = a.rnr_retry;
	return 0;
}

int zc_conn_query(struct zc_conn *c, struct zc_conn_info *info)
{
	if (!c || !info)
		return zc__err(-EINVAL, "zc_conn_query: connection and output are required");
	if (!c->id)
		return zc__err(-ENOTCONN, "zc_conn_query: the connection was never set up, or its set-up failed");
	if (c->opts.raw)
		return raw_query(c, info);
	*info = (struct zc_conn_info){.credits = c->ep.credits, .window_in = c->ep.cr.granted - c->ep.cr.released,
				      .window_out = zc__credit_avail(&c->ep.cr), .eager_size = (uint32_t)c->ep.eager_max,
				      .eager_in = (uint32_t)c->ep.eager_in, .send_depth = (uint32_t)c->opts.send_depth,
				      .read_depth = c->ep.max_reads};
	query_id(c->id, c->ctx, info);
	return 0;
}

int zc_abort(struct zc_conn **pc)
{
	if (!pc || !*pc)
		return zc__err(-EINVAL, "zc_abort: no connection");
	conn_teardown(*pc, 0);
	*pc = NULL;
	return 0;
}

/* Starts the close machine: an open connection lingers, one still being
 * set up (or whose set-up failed) is torn down at once. */
static void close_begin(struct zc_conn *c, bool async)
{
	c->owned = false;
	c->async_close = async;
	c->deadline = zc__now_ms() + c->opts.timeout_ms;
	if (c->state == ZC_CONN_OPEN) {
		life_set(c, ZC_PH_LINGER);
	} else {
		c->result = 0;
		teardown(c, async ? ZC_AFTER_CLOSED : ZC_AFTER_DONE);
	}
}

int zc_close_start(struct zc_conn **pc)
{
	struct zc_conn *c;

	if (!pc || !*pc)
		return zc__err(-EINVAL, "zc_close_start: no connection");
	c = *pc;
	/* allocated now, so reporting the end cannot fail */
	c->closed_ev = calloc(1, sizeof(*c->closed_ev));
	if (!c->closed_ev)
		return zc__err(-ENOMEM, "zc_close_start: out of memory");
	*pc = NULL;
	close_begin(c, true);
	return 0;
}

static int close_over(void *arg)
{
	struct zc_conn *c = arg;

	zc__cm_walk(c->ctx);
	return c->phase == ZC_PH_DONE;
}

int zc_close(struct zc_conn **pc)
{
	struct zc_conn *c;
	char detail[sizeof(c->cm_detail)];
	int rc;

	if (!pc || !*pc)
		return zc__err(-EINVAL, "zc_close: no connection");
	c = *pc;
	*pc = NULL;
	close_begin(c, false);
	zc__ctx_wait_for(c->ctx, close_over, c, -1); /* the machine keeps the deadline */
	rc = c->result;
	snprintf(detail, sizeof(detail), "%s", c->cm_detail);
	conn_destroy(c);
	return rc ? zc__err(rc, "%s", detail) : 0;
}

/* ------------------------------------------------------------------ */
/* Raw listeners' requests: the application answers each one. */

static int req_waiting(void *arg)
{
	struct zc_listener *l = arg;

	zc__cm_walk(l->ctx);
	return !zc__list_empty(&l->reqs);
}

int zc_req_get(struct zc_listener *l, struct zc_conn_req **out, int timeout_ms)
{
	struct zc_conn_req *r;
	int rc;

	if (!l || !out)
		return zc__err(-EINVAL, "zc_req_get: listener and output are required");
	if (!l->opts.raw)
		return zc__err(-EINVAL, "zc_req_get: not a raw listener (zcrdma listeners accept by themselves: "
				       "zc_accept())");
	rc = listener_wait(l, req_waiting, timeout_ms);
	if (rc == -EAGAIN)
		return zc__err(rc, "no connection request waits"); /* the fd is armed */
	if (rc == -ETIMEDOUT)
		return zc__err(rc, "no connection request within %d ms", timeout_ms);
	r = zc__list_first(&l->reqs, struct zc_conn_req, node);
	zc__list_del(&r->node);
	l->queued--;
	r->listener = NULL;
	/* the listener may be freed before the answer: keep what it knew;
	 * the context rejects it if it is freed first */
	r->opts = l->opts;
	zc__list_add(&l->ctx->reqs, &r->node);
	*out = r;
	return 0;
}

int zc_req_private_data(const struct zc_conn_req *r, const void **data, size_t *len)
{
	if (!r || !data || !len)
		return zc__err(-EINVAL, "zc_req_private_data: request and outputs are required");
	*data = r->priv;
	*len = r->priv_len;
	return 0;
}

int zc_req_query(const struct zc_conn_req *r, struct zc_conn_info *info)
{
	if (!r || !info)
		return zc__err(-EINVAL, "zc_req_query: request and output are required");
	*info = (struct zc_conn_info){.raw = 1, .initiator_depth = r->initiator_depth,
				      .responder_resources = r->responder_resources};
	query_id(r->id, r->ctx, info);
	return 0;
}

static void req_free(struct zc_conn_req **pr)
{
	struct zc_conn_req *r = *pr;

	zc__list_del(&r->node); /* on its listener's queue, or taken on the context's */
	if (r->listener)
		r->listener->queued--;
	free(r);
	*pr = NULL;
}

int zc_req_reject(struct zc_conn_req **pr, const void *data, size_t len)
{
	int rc = 0;

	if (!pr || !*pr)
		return zc__err(-EINVAL, "zc_req_reject: no request");
	if (len > ZC_PRIV_REJ_MAX || (!data && len)) {
		rc = zc__err(-EINVAL, "zc_req_reject: %zu bytes of private data%s: a reject carries at most %d "
				      "(rejected without them)",
			     len, data ? "" : " at NULL", ZC_PRIV_REJ_MAX);
		data = NULL;
		len = 0;
	}
	rdma_reject((*pr)->id, data, (uint8_t)len);
	rdma_destroy_id((*pr)->id);
	req_free(pr);
	return rc;
}

int zc_req_accept(struct zc_conn_req **pr, const struct zc_conn_opts *opts, struct zc_conn **out)
{
	struct zc_conn_req *r;
	struct zc_conn *c = NULL;
	int rc;

	if (!pr || !*pr || !out)
		return zc__err(-EINVAL, "zc_req_accept: request and output are required");
	r = *pr;
	if (!opts)
		opts = &r->opts;
	if (!opts->raw)
		rc = zc__err(-EINVAL, "zc_req_accept: the options must be raw (zc_conn_opts.raw)");
	else
		rc = zc__conn_opts_check(opts, ZC_PRIV_REP_MAX, "reply");
	if (!rc && !(c = conn_alloc(r->ctx, opts)))
		rc = zc__err(-ENOMEM, "zc_req_accept: out of memory");
	if (rc) {
		zc_req_reject(pr, NULL, 0); /* sets no error: the detail stays this one's */
		return rc;
	}
	c->passive = true;
	c->owned = true;
	c->id = r->id;
	c->id->context = c;
	keep_peer_priv(c, r->priv, r->priv_len);
	c->req_initiator_depth = r->initiator_depth;
	c->req_responder_resources = r->responder_resources;
	c->deadline = zc__now_ms() + c->opts.timeout_ms;
	c->expect = RDMA_CM_EVENT_ESTABLISHED;
	snprintf(c->peer_name, sizeof(c->peer_name), "a request");
	life_set(c, ZC_PH_CONNECT);
	req_free(pr);
	rc = create_qp(c);
	if (rc) {
		char detail[256];

		snprintf(detail, sizeof(detail), "%s", zc__err_detail());
		rdma_reject(c->id, NULL, 0);
		conn_destroy(c);
		return zc__err(rc, "%s", detail);
	}
	/* The reply goes out at the next progress (send_rep): receives the
	 * application posts meanwhile are there before the peer can send. */
	c->rep_pending = true;
	zc__ctx_timer_at(c->ctx, zc__now_ms());
	*out = c;
	return 0;
}

int zc_conn_peer_private_data(const struct zc_conn *c, const void **data, size_t *len)
{
	if (!c || !data || !len)
		return zc__err(-EINVAL, "zc_conn_peer_private_data: connection and outputs are required");
	if (!c->peer_priv_set)
		return zc__err(-ENOENT, "the peer has sent no private data yet");
	*data = c->peer_priv;
	*len = c->peer_priv_len;
	return 0;
}
