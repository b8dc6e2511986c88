/* Connection manager: listen, accept, connect, close, and rdma_cm events. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "conn.h"

#define RESOLVE_MS 2000 /* short: rdma_cm retries an unresolved neighbour only at its timeout */

void zc_conn_opts_init(struct zc_conn_opts *o)
{
	if (!o)
		return;
	*o = (struct zc_conn_opts){.timeout_ms = 10000, .credits = 64, .eager_size = 16384, .send_depth = 128,
				   .rnr_retry = 0, .retry_count = 6, .mr_fallback = 0, .keepalive_ms = 2000};
}

static int check_opts(const struct zc_conn_opts *o)
{
	if (o->timeout_ms < 0 || o->credits < 1 || o->credits > ZC_CREDITS_MAX || o->eager_size < 64 ||
	    o->eager_size > ZC_SLOT_MAX - ZC_HDR_SIZE || o->send_depth < 8 || o->send_depth > 16384 ||
	    o->rnr_retry < 0 || o->rnr_retry > 7 || o->retry_count < 0 || o->retry_count > 7 || o->keepalive_ms < 0)
		return zc__err(-EINVAL, "connection options out of range (credits 1..%d, eager_size 64..%d, "
				       "send_depth 8..16384, retries 0..7)",
			      ZC_CREDITS_MAX, ZC_SLOT_MAX - ZC_HDR_SIZE);
	if (o->send_depth < o->credits + 8)
		return zc__err(-EINVAL, "send_depth (%d) must exceed credits (%d) by at least 8: finishing each "
				       "rendezvous the peer may have open takes a send slot",
			      o->send_depth, o->credits);
	return 0;
}

static struct zc_conn *conn_alloc(struct zc_ctx *ctx, const struct zc_conn_opts *opts)
{
	struct zc_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->kind = ZC_OBJ_CONN;
	c->ctx = ctx;
	zc__list_init(&c->exports);
	zc__list_add(&ctx->conns, &c->node);
	c->state = ZC_CONN_SETUP;
	if (opts)
		c->opts = *opts;
	else
		zc_conn_opts_init(&c->opts);
	return c;
}

/* Reclaims every work request (flushing the QP), then buffers and windows,
 * then the QP: a type-2 window still bound to a QP holds a reference on it,
 * and rxe's destroy then stalls for a minute. */
static void conn_reset(struct zc_conn *c)
{
	bool has_qp = c->ep.qp.qp != NULL;

	if (has_qp)
		zc__qp_drain(&c->ep.qp, 2000);
	zc__rma_release(c);
	zc__ep_release(&c->ep);
	if (has_qp)
		rdma_destroy_qp(c->id);
	if (c->id) {
		rdma_destroy_id(c->id);
		c->id = NULL;
	}
}

static void conn_destroy(struct zc_conn *c)
{
	conn_reset(c);
	zc__ctx_forget_conn(c->ctx, c, c->data);
	zc__list_del(&c->node);
	free(c);
}

static int cm_errno(int event, int status)
{
	switch (event) {
	case RDMA_CM_EVENT_REJECTED:
		return status == 28 /* IB_CM_REJ_CONSUMER_DEFINED */ ? -ZC_EPEERPROTO : -ECONNREFUSED;
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
		return -EHOSTUNREACH;
	default:
		return -ECONNRESET;
	}
}

int zc__cm_process(struct zc_ctx *ctx)
{
	struct rdma_cm_event *ev;
	int handled = 0;

	zc__err_progress_begin();
	while (rdma_get_cm_event(ctx->cm_ch, &ev) == 0) {
		int *kind = ev->id->context;

		handled++;
		if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
			struct zc_listener *l = ev->listen_id->context;

			if (l && l->pending_count < l->backlog) {
				struct zc__pending *p = &l->pending[(l->pending_head + l->pending_count++) % l->backlog];
				uint8_t n = ev->param.conn.private_data_len;

				p->id = ev->id;
				p->priv_len = n < sizeof(p->priv) ? n : sizeof(p->priv);
				memcpy(p->priv, ev->param.conn.private_data, p->priv_len);
				ev->id->context = NULL;
			} else {
				rdma_reject(ev->id, NULL, 0);
				rdma_ack_cm_event(ev);
				continue;
			}
		} else if (kind && *kind == ZC_OBJ_CONN) {
			struct zc_conn *c = ev->id->context;

			/* The first event after a wait began is the answer; a
			 * DISCONNECTED right behind an ESTABLISHED is handled below. */
			if (c->state == ZC_CONN_SETUP && c->cm_event == ZC_CM_NONE) {
				c->cm_event = ev->event;
				c->cm_status = ev->status;
				if (ev->event == RDMA_CM_EVENT_ESTABLISHED && ev->param.conn.private_data_len) {
					int rc = zc__priv_decode(ev->param.conn.private_data,
								ev->param.conn.private_data_len, &c->peer);
					if (rc) {
						c->cm_status = rc;
						snprintf(c->cm_detail, sizeof(c->cm_detail), "%s", zc__err_detail());
					}
				}
			}
			if (ev->event == RDMA_CM_EVENT_DISCONNECTED || ev->event == RDMA_CM_EVENT_DEVICE_REMOVAL) {
				/* The peer's CLOSE completed before it disconnected, but
				 * its completion may still sit in our CQ: reap it first so
				 * an orderly close is not mistaken for a reset. */
				zc__ctx_poll_cq(ctx);
				c->disconnected = true;
				if (c->state == ZC_CONN_OPEN && !c->ep.close_received)
					zc__qp_fail(&c->ep.qp, zc__err(-ECONNRESET, "the peer disconnected (%s)",
							       rdma_event_str(ev->event)));
			}
		}
		rdma_ack_cm_event(ev);
	}
	zc__err_progress_end();
	return handled;
}

/* The connection is up; a disconnect that raced its set-up is a reset. */
static void opened(struct zc_conn *c)
{
	c->state = ZC_CONN_OPEN;
	zc__qp_set_connected(&c->ep.qp);
	if (c->disconnected && !c->ep.close_received)
		zc__qp_fail(&c->ep.qp, zc__err(-ECONNRESET, "the peer disconnected right after connecting"));
}

static int cm_answered(struct zc_conn *c, void *arg)
{
	(void)arg;
	return c->cm_event != ZC_CM_NONE;
}

/* Waits for the next rdma_cm event of a connection being set up. A
 * connection that fails meanwhile (the peer's first message broke the
 * protocol) ends the wait with its error. */
static int wait_cm(struct zc_conn *c, int expected, int64_t deadline)
{
	char what[64];
	int ev, rc;

	c->cm_event = ZC_CM_NONE;
	snprintf(what, sizeof(what), "waiting for %s", rdma_event_str(expected));
	rc = zc__conn_wait_for(c, cm_answered, NULL, deadline, what);
	if (rc < 0)
		return rc;
	ev = c->cm_event;
	if (ev == expected)
		return c->cm_status < 0 ? zc__err(c->cm_status, "%s", c->cm_detail) : 0;
	return zc__err(cm_errno(ev, c->cm_status), "%s while waiting for %s (status %d)", rdma_event_str(ev),
		      rdma_event_str(expected), c->cm_status);
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

static void conn_param(struct zc_conn *c, struct rdma_conn_param *p, uint8_t *priv)
{
	uint32_t rd_atom = c->ctx->caps.max_qp_rd_atom;
	struct zc__priv mine;

	zc__ep_local_priv(&c->ep, c->opts.eager_size, rd_atom, &mine);
	zc__priv_encode(priv, &mine);
	*p = (struct rdma_conn_param){
		.private_data = priv, .private_data_len = ZC_PRIV_SIZE,
		.responder_resources = (uint8_t)(c->ctx->caps.max_qp_rd_atom > 255 ? 255 : c->ctx->caps.max_qp_rd_atom),
		.initiator_depth = (uint8_t)(c->ctx->caps.max_qp_rd_atom > 255 ? 255 : c->ctx->caps.max_qp_rd_atom),
		.retry_count = (uint8_t)c->opts.retry_count, .rnr_retry_count = (uint8_t)c->opts.rnr_retry,
	};
}

/* The QP and the endpoint over it, offering `credits`. The client posts
 * its slots before it knows the server's offer, so it uses its own, which
 * is never smaller than the negotiated value. */
static int create_qp(struct zc_conn *c, uint32_t credits)
{
	struct ibv_qp_init_attr attr;
	int rc;

	/* A context created without an address takes its first route's device. */
	if (!c->ctx->verbs && (rc = zc__dev_attach(c->ctx, c->id->verbs, c->id->port_num)))
		return rc;
	if (c->id->verbs != c->ctx->verbs)
		return zc__err(-ENODEV, "the route to the peer leaves through %s, not the context's device %s",
			      ibv_get_device_name(c->id->verbs->device), c->ctx->caps.device);
	rc = zc__qp_init_attr(&c->ep.qp, c->ctx, zc__ep_slots(credits), (uint32_t)c->opts.send_depth,
			      (uint32_t)(ZC_HDR_SIZE + c->opts.eager_size), &attr);
	if (rc)
		return rc;
	if (rdma_create_qp(c->id, c->ctx->pd, &attr))
		return zc__err(-errno, "rdma_create_qp: %s", strerror(errno));
	return zc__ep_setup(&c->ep, c, c->id, credits, c->opts.mr_fallback);
}

/* src NULL: the route to dst chooses the source address and device. */
static int connect_once(struct zc_conn *c, struct sockaddr_storage *src, struct sockaddr_storage *dst,
			int64_t deadline)
{
	struct rdma_conn_param param;
	uint8_t priv[ZC_PRIV_SIZE];
	int rc;

	if (rdma_create_id(c->ctx->cm_ch, &c->id, c, RDMA_PS_TCP))
		return zc__err(-errno, "rdma_create_id: %s", strerror(errno));
	if (rdma_resolve_addr(c->id, (struct sockaddr *)src, (struct sockaddr *)dst, RESOLVE_MS))
		return zc__err(-errno, "rdma_resolve_addr: %s", strerror(errno));
	rc = wait_cm(c, RDMA_CM_EVENT_ADDR_RESOLVED, deadline);
	if (rc)
		return rc;
	set_ack_timeout(c->id);
	if (rdma_resolve_route(c->id, RESOLVE_MS))
		return zc__err(-errno, "rdma_resolve_route: %s", strerror(errno));
	rc = wait_cm(c, RDMA_CM_EVENT_ROUTE_RESOLVED, deadline);
	if (!rc)
		rc = create_qp(c, (uint32_t)c->opts.credits);
	if (rc)
		return rc;
	conn_param(c, &param, priv);
	if (rdma_connect(c->id, &param))
		return zc__err(-errno, "rdma_connect: %s", strerror(errno));
	return wait_cm(c, RDMA_CM_EVENT_ESTABLISHED, deadline);
}

static int never(void *arg)
{
	(void)arg;
	return 0;
}

/* Waits until retry_at (or the deadline) making progress on the context's
 * other connections, instead of sleeping under them. */
static void backoff(struct zc_ctx *ctx, int64_t retry_at, int64_t deadline)
{
	zc__ctx_wait_for(ctx, never, NULL, retry_at < deadline ? retry_at : deadline);
}

int zc_connect(struct zc_ctx *ctx, const char *addr, uint16_t port, const struct zc_conn_opts *opts,
	       struct zc_conn **out)
{
	struct sockaddr_storage dst, src;
	int64_t deadline;
	struct zc_conn *c;
	bool refused = false;
	int rc, attempt;

	if (!ctx || !addr || !out || !port)
		return zc__err(-EINVAL, "zc_connect: context, address, port and output are required");
	if (opts && (rc = check_opts(opts)))
		return rc;
	rc = zc__resolve(addr, port, &dst);
	if (rc)
		return rc;
	c = conn_alloc(ctx, opts);
	if (!c)
		return zc__err(-ENOMEM, "zc_connect: out of memory");
	deadline = zc__now_ms() + c->opts.timeout_ms;
	src = ctx->local;
	zc__set_port(&src, 0);

	/* rxe rejects a quick reconnect from a recycled port as stale; such
	 * attempts and refusals are retried with backoff until the deadline. */
	for (attempt = 0;; attempt++) {
		rc = connect_once(c, src.ss_family ? &src : NULL, &dst, deadline);
		if (!rc)
			break;
		/* Report the refusal, not the timeout it was retried into. */
		if (rc == -ECONNREFUSED)
			refused = true;
		else if (rc == -ETIMEDOUT && refused)
			rc = zc__err(-ECONNREFUSED, "refused on every attempt for %d ms (nothing listening?)",
				    c->opts.timeout_ms);
		conn_reset(c);
		if ((rc != -ECONNREFUSED && rc != -ETIMEDOUT && rc != -EHOSTUNREACH) || zc__remaining_ms(deadline) == 0)
			break;
		/* Each attempt starts from a fresh connection state (the
		 * endpoint's was cleared by its release). */
		c->state = ZC_CONN_SETUP;
		c->disconnected = false;
		backoff(ctx, zc__now_ms() + (10 << (attempt < 6 ? attempt : 6)), deadline);
		if (zc__remaining_ms(deadline) == 0)
			break;
	}
	if (rc) {
		char detail[256];

		snprintf(detail, sizeof(detail), "%s", zc_last_error());
		conn_destroy(c);
		return zc__err(rc, "connect to %s:%u failed: %s", addr, port, detail);
	}
	rc = zc__ep_peer(&c->ep, &c->peer, c->opts.eager_size);
	if (!rc)
		rc = zc__rma_setup(c);
	if (rc) {
		zc_abort(&c);
		return rc;
	}
	opened(c);
	*out = c;
	return 0;
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
	if (opts && (rc = check_opts(opts)))
		return rc;
	l = calloc(1, sizeof(*l));
	if (!l)
		return zc__err(-ENOMEM, "zc_listen: out of memory");
	l->kind = ZC_OBJ_LISTENER;
	l->ctx = ctx;
	l->backlog = 64;
	l->pending = calloc(l->backlog, sizeof(*l->pending));
	if (opts)
		l->opts = *opts;
	else
		zc_conn_opts_init(&l->opts);
	addr = ctx->local;
	zc__set_port(&addr, port);
	if (!l->pending) {
		rc = zc__err(-ENOMEM, "zc_listen: out of memory");
		goto err;
	}
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
	free(l->pending);
	free(l);
	return rc;
}

uint16_t zc_listener_port(struct zc_listener *l)
{
	return l ? ntohs(rdma_get_src_port(l->id)) : 0;
}

int zc_listener_free(struct zc_listener **pl)
{
	struct zc_listener *l;

	if (!pl || !*pl)
		return zc__err(-EINVAL, "zc_listener_free: no listener");
	l = *pl;
	while (l->pending_count) {
		struct rdma_cm_id *id = l->pending[l->pending_head].id;

		l->pending_head = (l->pending_head + 1) % l->backlog;
		l->pending_count--;
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
	}
	zc__list_del(&l->node);
	rdma_destroy_id(l->id);
	free(l->pending);
	free(l);
	*pl = NULL;
	return 0;
}

/* Completes the handshake of the oldest pending request. */
static int accept_one(struct zc_listener *l, struct zc_conn **out)
{
	struct rdma_conn_param param;
	struct zc__pending p;
	struct rdma_cm_id *id;
	uint8_t priv[ZC_PRIV_SIZE];
	struct zc_conn *c;
	int64_t deadline;
	int rc;

	p = l->pending[l->pending_head];
	id = p.id;
	l->pending_head = (l->pending_head + 1) % l->backlog;
	l->pending_count--;

	c = conn_alloc(l->ctx, &l->opts);
	if (!c) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return zc__err(-ENOMEM, "zc_accept: out of memory");
	}
	c->id = id;
	id->context = c;
	rc = zc__priv_decode(p.priv, p.priv_len, &c->peer);
	if (rc) {
		rdma_reject(id, NULL, 0);
		conn_destroy(c);
		return rc;
	}
	/* Both directions run with the smaller offer: the control-message bound
	 * (credit.h) needs each side's slots to cover the other's credits. */
	rc = create_qp(c, c->peer.credits < (uint32_t)c->opts.credits ? c->peer.credits : (uint32_t)c->opts.credits);
	if (!rc)
		rc = zc__ep_peer(&c->ep, &c->peer, c->opts.eager_size);
	if (!rc)
		rc = zc__rma_setup(c);
	if (rc) {
		rdma_reject(id, NULL, 0);
		conn_destroy(c);
		return rc;
	}
	conn_param(c, &param, priv);
	param.responder_resources = (uint8_t)(c->peer.rd_atom < param.responder_resources ? c->peer.rd_atom
											  : param.responder_resources);
	deadline = zc__now_ms() + c->opts.timeout_ms;
	set_ack_timeout(id);
	rc = rdma_accept(id, &param) ? zc__err(-errno, "rdma_accept: %s", strerror(errno))
				     : wait_cm(c, RDMA_CM_EVENT_ESTABLISHED, deadline);
	if (rc) {
		zc_abort(&c);
		return rc;
	}
	opened(c);
	*out = c;
	return 0;
}


/* A handshake the peer abandoned (it gave up, vanished or disconnected) is
 * skipped, as TCP never hands accept() a connection that died in its
 * handshake. A peer that is not a compatible endpoint (-ZC_EVERSION,
 * -ZC_EPEERPROTO) and the server's own failures end the call. */
static bool peer_abandoned(int rc)
{
	return rc == -EINVAL || rc == -ETIMEDOUT || rc == -ECONNRESET || rc == -ECONNREFUSED ||
	       rc == -ECONNABORTED;
}

static int request_pending(void *arg)
{
	return ((struct zc_listener *)arg)->pending_count > 0;
}

int zc_accept(struct zc_listener *l, struct zc_conn **out, int timeout_ms)
{
	char skipped[160] = "";
	int64_t deadline;
	int rc;

	if (!l || !out)
		return zc__err(-EINVAL, "zc_accept: listener and output are required");
	deadline = timeout_ms < 0 ? -1 : timeout_ms == 0 ? ZC__NOWAIT : zc__now_ms() + timeout_ms;
	zc__ctx_progress(l->ctx);
	zc__cm_process(l->ctx);
	for (;;) {
		rc = zc__ctx_wait_for(l->ctx, request_pending, l, deadline);
		if (rc == -EAGAIN)
			return rc; /* the fd is armed: the caller may sleep on it */
		if (rc == -ETIMEDOUT)
			return zc__err(-ETIMEDOUT, "no connection within %d ms%s%s", timeout_ms,
				      *skipped ? "; a handshake failed: " : "", skipped);
		rc = accept_one(l, out);
		if (!rc || !peer_abandoned(rc))
			return rc;
		snprintf(skipped, sizeof(skipped), "%s", zc_last_error());
	}
}

static int conn_teardown(struct zc_conn *c, int rc)
{
	if (c->id && c->ep.qp.qp)
		rdma_disconnect(c->id);
	conn_destroy(c);
	return rc;
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

int zc_conn_query(struct zc_conn *c, struct zc_conn_info *info)
{
	if (!c || !info)
		return zc__err(-EINVAL, "zc_conn_query: connection and output are required");
	*info = (struct zc_conn_info){.credits = c->ep.credits, .eager_size = (uint32_t)c->ep.eager_max,
				      .send_depth = (uint32_t)c->opts.send_depth, .read_depth = c->ep.max_reads};
	/* rdma_cm keeps both addresses in sockaddr_storage-sized unions. */
	memcpy(&info->local, rdma_get_local_addr(c->id), sizeof(info->local));
	memcpy(&info->peer, rdma_get_peer_addr(c->id), sizeof(info->peer));
	snprintf(info->device, sizeof(info->device), "%s", c->ctx->caps.device);
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

/* Linger: everything we sent must be delivered (rendezvous buffers read by
 * the peer) before CLOSE tells it no more data follows, and CLOSE itself
 * before the disconnect, or the peer would see a reset. Met when that is
 * done, or when there is nobody left to tell. */
static int lingered(struct zc_conn *c, void *arg)
{
	(void)arg;
	if (c->state != ZC_CONN_OPEN || c->ep.qp.err || c->disconnected)
		return 1;
	if (zc__ep_busy(&c->ep))
		return 0;
	if (!c->ep.close_sent)
		return zc__ep_close(&c->ep); /* 0 once posted: wait for its completion */
	return 1;
}

int zc_close(struct zc_conn **pc)
{
	struct zc_conn *c;
	int64_t deadline;
	int rc = 0;

	if (!pc || !*pc)
		return zc__err(-EINVAL, "zc_close: no connection");
	c = *pc;
	*pc = NULL;
	deadline = zc__now_ms() + c->opts.timeout_ms;
	rc = zc__conn_wait_for(c, lingered, NULL, deadline, "in zc_close: the peer did not take the remaining data");
	if (rc > 0 || rc == -ECONNRESET)
		rc = 0; /* a peer that reset after taking everything */
	if (!rc && c->ep.qp.err && c->ep.qp.err != -ECONNRESET)
		rc = zc__qp_error(&c->ep.qp);
	return conn_teardown(c, rc);
}
