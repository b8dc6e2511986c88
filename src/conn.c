/* The connection object: its allocation, the phase that puts it on the
 * context's walk, its state as its calls see it (open or why not),
 * keepalive, the one wait of a call blocked on it, and what the
 * application may ask of it (its data pointer, addresses, parameters). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "conn.h"
#include "opts.h"

struct zc_conn *zc__conn_alloc(struct zc_ctx *ctx, const struct zc_conn_opts *opts)
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


/* The phase, with the connection on ctx->life while it has one to advance. */
void zc__conn_set_phase(struct zc_conn *c, enum zc__phase ph)
{
	c->phase = ph;
	if (ph == ZC_PH_NONE || ph == ZC_PH_DONE)
		zc__list_del(&c->life_node);
	else if (!zc__list_linked(&c->life_node))
		zc__list_add_tail(&c->ctx->life, &c->life_node);
}


/* An accepted connection stops counting against its listener's backlog. */
void zc__conn_leave_listener(struct zc_conn *c)
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

void zc_conn_set_data(struct zc_conn *c, void *data)
{
	if (c)
		c->data = data;
}

void *zc_conn_data(const struct zc_conn *c)
{
	return c ? c->data : NULL;
}

void zc__cm_query_id(struct rdma_cm_id *id, struct zc_ctx *ctx, struct zc_conn_info *info)
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
	zc__cm_query_id(c->id, c->ctx, info);
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
	zc__cm_query_id(c->id, c->ctx, info);
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
