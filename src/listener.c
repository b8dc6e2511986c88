/*
 * Listeners: zc_listen(), zc_accept(), and a raw listener's requests that
 * the application answers (zc_req_*()). A zcrdma request is accepted
 * inside progress, so zc_accept() only takes established connections off
 * the listener's queue; a raw one waits on the listener for its answer.
 * The connections themselves are cm.c's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "conn.h"
#include "opts.h"

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

	if (l->opts.raw) {
		raw_request(l, id, p, priv, n);
		return;
	}
	if (l->handshakes + l->queued >= l->backlog || !(c = zc__conn_alloc(l->ctx, &l->opts))) {
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
	zc__conn_set_phase(c, ZC_PH_CONNECT);
	rc = zc__priv_decode(priv, n, &c->peer);
	if (!rc)
		rc = zc__conn_create_qp(c);
	if (!rc)
		rc = zc__ep_peer(&c->ep, &c->peer);
	if (!rc) {
		zc__conn_param(c, &param, mine);
		param.responder_resources = (uint8_t)(c->peer.rd_atom < param.responder_resources
							      ? c->peer.rd_atom : param.responder_resources);
		zc__cm_set_ack_timeout(id);
		if (rdma_accept(id, &param))
			rc = zc__err(-errno, "rdma_accept: %s", strerror(errno));
	}
	if (rc)
		zc__conn_setup_failed(c, rc);
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
	l->on_request = incoming;
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
		zc__conn_teardown(zc__list_first(&l->ready, struct zc_conn, lq_node), 0);
	while (!zc__list_empty(&l->reqs)) {
		struct zc_conn_req *r = zc__list_first(&l->reqs, struct zc_conn_req, node);

		zc_req_reject(&r, NULL, 0);
	}
	for (n = l->ctx->life.next; n != &l->ctx->life; n = n->next) {
		struct zc_conn *c = zc__container_of(n, struct zc_conn, life_node);

		if (c->listener == l)
			zc__conn_leave_listener(c);
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
	zc__ctx_progress(l->ctx);
	zc__cm_process(l->ctx);
	return zc__ctx_wait_ms(l->ctx, ready, l, timeout_ms);
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
	zc__conn_leave_listener(c);
	c->owned = true;
	zc__ev_kick(c); /* what happened before it was handed out */
	*out = c;
	return 0;
}

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
	zc__cm_query_id(r->id, r->ctx, info);
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
	if (!rc && !(c = zc__conn_alloc(r->ctx, opts)))
		rc = zc__err(-ENOMEM, "zc_req_accept: out of memory");
	if (rc) {
		zc_req_reject(pr, NULL, 0); /* sets no error: the detail stays this one's */
		return rc;
	}
	c->passive = true;
	c->owned = true;
	c->id = r->id;
	c->id->context = c;
	zc__conn_keep_peer_priv(c, r->priv, r->priv_len);
	c->req_initiator_depth = r->initiator_depth;
	c->req_responder_resources = r->responder_resources;
	c->deadline = zc__now_ms() + c->opts.timeout_ms;
	c->expect = RDMA_CM_EVENT_ESTABLISHED;
	snprintf(c->peer_name, sizeof(c->peer_name), "a request");
	zc__conn_set_phase(c, ZC_PH_CONNECT);
	req_free(pr);
	rc = zc__conn_create_qp(c);
	if (rc) {
		char detail[256];

		snprintf(detail, sizeof(detail), "%s", zc__err_detail());
		rdma_reject(c->id, NULL, 0);
		zc__conn_destroy(c);
		return zc__err(rc, "%s", detail);
	}
	/* The reply goes out at the next progress (send_rep): receives the
	 * application posts meanwhile are there before the peer can send. */
	c->rep_pending = true;
	zc__ctx_timer_at(c->ctx, zc__now_ms());
	*out = c;
	return 0;
}
