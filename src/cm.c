/*
 * Connection manager: a connection's set-up (connect, handshake, retries),
 * the context's rdma_cm events, the walk that advances set-ups and closes
 * by time, and the calls that start or wait on those machines. Listeners
 * and their requests are listener.c's; the linger and the drain that end
 * every connection close.c's.
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
void zc__cm_set_ack_timeout(struct rdma_cm_id *id)
{
	uint8_t timeout = 17;

	rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &timeout, sizeof(timeout));
}

static uint8_t raw_depth(const struct zc_conn *c, int want, uint8_t offered)
{
	return zc__raw_read_depth(c->ctx->caps.max_qp_rd_atom, want, c->passive, offered);
}

void zc__conn_param(struct zc_conn *c, struct rdma_conn_param *p, uint8_t *priv)
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
int zc__conn_create_qp(struct zc_conn *c)
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
	zc__conn_set_phase(c, ZC_PH_NONE);
	zc__qp_set_connected(&c->ep.qp);
	zc__conn_ka_add(c, zc__now_ms());
	if (c->disconnected && !c->ep.close_received)
		zc__qp_fail(&c->ep.qp, zc__err(-ECONNRESET, "the peer disconnected right after connecting"));
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

void zc__conn_setup_failed(struct zc_conn *c, int rc)
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
		zc__conn_leave_listener(c);
		zc__conn_drain_then(c, ZC_AFTER_DROP);
		return;
	}
	/* rxe rejects a quick reconnect from a recycled port as stale; such
	 * attempts and refusals are retried with backoff until the deadline. */
	if (rc == -ECONNREFUSED && !c->rejected)
		c->refused = true;
	if ((rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -EHOSTUNREACH) && !c->passive && !c->rejected &&
	    zc__remaining_ms(c->deadline) > 0) {
		zc__conn_drain_then(c, ZC_AFTER_RETRY);
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
	zc__conn_drain_then(c, ZC_AFTER_FAIL);
}

/* ESTABLISHED: the client takes the server's parameters; the server's
 * connection joins its listener's queue. */
void zc__conn_keep_peer_priv(struct zc_conn *c, const uint8_t *priv, uint8_t n)
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
			zc__conn_keep_peer_priv(c, priv, n);
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
		zc__conn_keep_peer_priv(c, priv, n);
		c->rejected = status == REJ_CONSUMER;
		zc__conn_setup_failed(c, zc__err(-ECONNREFUSED, "rejected (status %d%s)", status,
				       c->rejected ? ": by the peer's application, with private data" : ""));
		return;
	}
	if (event != c->expect) {
		uint8_t rej = event == RDMA_CM_EVENT_REJECTED ? zc__rej_decode(priv, n) : 0;

		zc__conn_setup_failed(c, zc__err(cm_errno(event, rej), "%s while waiting for %s (status %d%s)", rdma_event_str(event),
				       rdma_event_str(c->expect), status,
				       event != RDMA_CM_EVENT_REJECTED ? ""
				       : rej == ZC_REJ_BUSY ? ": the listener's backlog is full"
				       : rej == ZC_REJ_INCOMPATIBLE ? ": the listener refused our connection parameters"
				       : ": not by a zcrdma listener; its kernel may have refused the route"));
		return;
	}
	switch (event) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		zc__cm_set_ack_timeout(c->id);
		c->expect = RDMA_CM_EVENT_ROUTE_RESOLVED;
		if (rdma_resolve_route(c->id, RESOLVE_MS))
			rc = zc__err(-errno, "rdma_resolve_route: %s", strerror(errno));
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		c->expect = RDMA_CM_EVENT_ESTABLISHED;
		rc = zc__conn_create_qp(c);
		if (!rc) {
			zc__conn_param(c, &param, mine);
			if (rdma_connect(c->id, &param))
				rc = zc__err(-errno, "rdma_connect: %s", strerror(errno));
		}
		break;
	default:
		rc = established(c, priv, n);
	}
	if (rc)
		zc__conn_setup_failed(c, rc);
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
		/* A half-closed peer's disconnect is its close: orderly, and
		 * sends to it fail with -EPIPE from now on. */
		if (c->ep.shut_received)
			c->ep.close_received = true;
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
		if (event == RDMA_CM_EVENT_CONNECT_REQUEST) {
			struct zc_listener *l = listen_id->context;

			if (l) {
				l->on_request(l, id, &param, priv, n);
			} else {
				zc__cm_reject(id, ZC_REJ_BUSY);
				rdma_destroy_id(id);
			}
		}
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
	zc__conn_set_phase(c, ZC_PH_CONNECT);
	if (rdma_create_id(c->ctx->cm_ch, &c->id, c, RDMA_PS_TCP))
		rc = zc__err(-errno, "rdma_create_id: %s", strerror(errno));
	/* Without a source address, the route to dst chooses it and the device. */
	else if (rdma_resolve_addr(c->id, src.ss_family ? (struct sockaddr *)&src : NULL, (struct sockaddr *)&c->dst,
				   RESOLVE_MS))
		rc = zc__err(-errno, "rdma_resolve_addr: %s", strerror(errno));
	if (rc)
		zc__conn_setup_failed(c, rc);
}

/* An accepted raw connection's reply, after the application had its chance
 * to post receives (zc_req_accept). */
static int send_rep(struct zc_conn *c)
{
	struct rdma_conn_param param;

	c->rep_pending = false;
	zc__conn_param(c, &param, NULL);
	zc__cm_set_ack_timeout(c->id);
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
			zc__conn_setup_failed(c, rc);
			return advance(c, now);
		}
		if (now < c->deadline)
			return c->deadline;
		zc__conn_setup_failed(c, zc__err(-ETIMEDOUT, "timed out waiting for %s", rdma_event_str(c->expect)));
		return advance(c, now);
	case ZC_PH_BACKOFF:
		if (now < c->retry_at)
			return c->retry_at;
		attempt_start(c);
		return c->phase == ZC_PH_CONNECT ? c->deadline : advance(c, now);
	case ZC_PH_LINGER:
	case ZC_PH_DRAIN:
		return zc__conn_close_step(c, now);
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
	c = zc__conn_alloc(ctx, opts);
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
	zc__conn_destroy(c);
	return zc__err(rc, "%s", detail);
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
	zc__conn_close_begin(c, true);
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
	zc__conn_close_begin(c, false);
	zc__ctx_wait_for(c->ctx, close_over, c, -1); /* the machine keeps the deadline */
	rc = c->result;
	snprintf(detail, sizeof(detail), "%s", c->cm_detail);
	zc__conn_destroy(c);
	return rc ? zc__err(rc, "%s", detail) : 0;
}
