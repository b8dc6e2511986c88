/* Queue-pair engine: buffers, posting, completion dispatch, failure, drain. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "zc_internal.h"

void zc_local_priv(const struct zc_conn *c, struct zc_priv *p)
{
	*p = (struct zc_priv){.version = ZC_WIRE_VERSION, .credits = (uint16_t)c->credits,
			      .slot_size = (uint32_t)(ZC_HDR_SIZE + c->opts.eager_size),
			      .rd_atom = c->ctx->caps.max_qp_rd_atom ? c->ctx->caps.max_qp_rd_atom : 1};
}

/* Slots for data (credits) + the same again for control messages + CLOSE
 * and one spare: see credit.h for why that is enough. The client posts them
 * before it knows the server's offer, so it uses its own, which is never
 * smaller than the negotiated value. */
static uint32_t slots_for(const struct zc_conn *c)
{
	return 2 * c->credits + 2;
}

int zc_qp_init_attr(struct zc_conn *c, struct ibv_qp_init_attr *a)
{
	int rc = zc_ctx_reserve_cq(c->ctx, (int)slots_for(c) + c->opts.send_depth);

	if (rc)
		return rc;
	c->n_slots = slots_for(c);
	*a = (struct ibv_qp_init_attr){
		.send_cq = c->ctx->cq, .recv_cq = c->ctx->cq, .qp_type = IBV_QPT_RC,
		.cap = {.max_send_wr = (uint32_t)c->opts.send_depth, .max_recv_wr = c->n_slots,
			.max_send_sge = 2, .max_recv_sge = 1, .max_inline_data = c->ctx->caps.max_inline},
	};
	return 0;
}

static void *alloc_registered(struct zc_conn *c, size_t len, struct ibv_mr **mr, int *rc)
{
	void *buf = NULL;

	if (posix_memalign(&buf, 4096, len)) {
		*rc = zc_err(-ENOMEM, "out of memory for %zu bytes of connection buffers", len);
		return NULL;
	}
	memset(buf, 0, len);
	*mr = zc_reg_mr(c->ctx, buf, len, IBV_ACCESS_LOCAL_WRITE, rc);
	if (!*mr) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int setup_local(struct zc_conn *c)
{
	uint32_t i, depth = (uint32_t)c->opts.send_depth;
	int rc = 0;

	c->slot_size = (uint32_t)(ZC_HDR_SIZE + c->opts.eager_size);
	c->tx_slot_size = c->slot_size;
	c->rx_buf = alloc_registered(c, (size_t)c->slot_size * c->n_slots, &c->rx_mr, &rc);
	if (!c->rx_buf)
		return rc;
	c->tx_buf = alloc_registered(c, (size_t)c->tx_slot_size * depth, &c->tx_mr, &rc);
	if (!c->tx_buf)
		return rc;
	c->rx_wr = calloc(c->n_slots, sizeof(*c->rx_wr));
	c->items = calloc(c->n_slots, sizeof(*c->items));
	c->posted = calloc(c->n_slots, sizeof(*c->posted));
	c->fin_queue = calloc(c->n_slots, sizeof(*c->fin_queue));
	c->zq_cap = 4 * depth;
	c->zq = calloc(c->zq_cap, sizeof(*c->zq));
	c->sreq = calloc(depth, sizeof(*c->sreq));
	c->sreq_free = calloc(depth, sizeof(*c->sreq_free));
	c->rma = calloc(depth, sizeof(*c->rma));
	if (!c->rx_wr || !c->items || !c->posted || !c->fin_queue || !c->zq || !c->sreq || !c->sreq_free || !c->rma)
		return zc_err(-ENOMEM, "out of memory for connection state");
	c->items_cap = c->posted_cap = c->n_slots;
	c->n_rma = depth;
	for (i = 0; i < depth; i++) {
		c->sreq[i].wr = (struct zc_wr){.conn = c, .kind = ZC_WR_SEND, .idx = i};
		c->sreq_free[i] = depth - 1 - i;
	}
	c->sreq_free_count = depth;
	for (i = 0; i < c->n_slots; i++) {
		c->rx_wr[i] = (struct zc_wr){.conn = c, .kind = ZC_WR_RECV, .idx = i};
		rc = zc_post_recv(c, i);
		if (rc)
			return rc;
	}
	return 0;
}

static int setup_peer(struct zc_conn *c, const struct zc_priv *peer)
{
	c->eager_max = peer->slot_size - ZC_HDR_SIZE;
	if (c->eager_max > c->opts.eager_size)
		c->eager_max = c->opts.eager_size;
	if (peer->credits > c->credits)
		return zc_err(-ZC_EPEERPROTO, "peer answered with %u credits, more than the %u offered", peer->credits,
			      c->credits);
	c->credits = peer->credits;
	zc_credit_init(&c->cr, c->credits);
	c->n_rndv = c->credits;
	c->rndv = calloc(c->n_rndv, sizeof(*c->rndv));
	if (!c->rndv)
		return zc_err(-ENOMEM, "out of memory for rendezvous state");
	/* rdma_cm carries READ depths in a byte, so 255 is the most either side
	 * agreed to, whatever the devices could do. */
	c->max_reads = c->ctx->caps.max_qp_rd_atom < peer->rd_atom ? c->ctx->caps.max_qp_rd_atom : peer->rd_atom;
	if (c->max_reads > 255)
		c->max_reads = 255;
	if (c->max_reads == 0)
		c->max_reads = 1;
	return 0;
}

int zc_conn_resources(struct zc_conn *c, const struct zc_priv *peer)
{
	return peer ? setup_peer(c, peer) : setup_local(c);
}

/* Gives every zero-copy operation still owned by the connection back to
 * the application with err, then frees the connection's buffers. The QP's
 * work requests must all be reaped already. */
void zc_conn_release(struct zc_conn *c)
{
	struct zc_ctx *ctx = c->ctx;
	uint32_t i;

	zc_fail_pending(c, c->err ? c->err : -ECONNABORTED);
	zc_exports_orphan(c);
	for (i = 0; c->rndv && i < c->n_rndv; i++)
		if (c->rndv[i].mw)
			zc_dealloc_mw(ctx, c->rndv[i].mw);
	if (c->rx_mr)
		zc_dereg_mr(c->ctx, c->rx_mr);
	if (c->tx_mr)
		zc_dereg_mr(c->ctx, c->tx_mr);
	free(c->rx_buf);
	free(c->tx_buf);
	free(c->rx_wr);
	free(c->items);
	free(c->posted);
	free(c->fin_queue);
	free(c->zq);
	free(c->sreq);
	free(c->sreq_free);
	free(c->rma);
	free(c->rndv);
	if (c->n_slots)
		zc_ctx_release_cq(ctx, (int)c->n_slots + c->opts.send_depth);
	c->rx_mr = c->tx_mr = NULL;
	c->rx_buf = c->tx_buf = NULL;
	c->rx_wr = NULL;
	c->items = NULL;
	c->posted = NULL;
	c->fin_queue = NULL;
	c->zq = NULL;
	c->sreq = NULL;
	c->sreq_free = NULL;
	c->rma = NULL;
	c->rndv = NULL;
	c->n_slots = c->n_rndv = c->item_count = c->posted_count = c->fin_count = c->zq_count = 0;
	c->sreq_free_count = 0;
}

int zc_post_recv(struct zc_conn *c, uint32_t slot)
{
	struct ibv_sge sge = {.addr = (uintptr_t)(c->rx_buf + (size_t)slot * c->slot_size),
			      .length = c->slot_size, .lkey = c->rx_mr->lkey};
	struct ibv_recv_wr wr = {.wr_id = (uintptr_t)&c->rx_wr[slot], .sg_list = &sge, .num_sge = 1}, *bad;
	int rc;

	if (c->state == ZC_CONN_DEAD)
		return 0;
	/* Providers return the error; errno is not always set. */
	if ((rc = ibv_post_recv(c->qp, &wr, &bad)))
		return zc_conn_fail(c, zc_err(-rc, "ibv_post_recv: %s", strerror(rc)));
	c->rx_posted++;
	return 0;
}

int zc_sreq_get(struct zc_conn *c)
{
	struct zc_sreq *s;
	uint32_t i;

	if (!c->sreq_free_count)
		return -EAGAIN;
	i = c->sreq_free[--c->sreq_free_count];
	s = &c->sreq[i];
	s->op = 0;
	s->token = 0;
	s->len = 0;
	s->entry = NULL;
	s->wr.kind = ZC_WR_SEND;
	return (int)i;
}

void zc_sreq_put(struct zc_conn *c, uint32_t i)
{
	c->sreq_free[c->sreq_free_count++] = i;
}

int zc_post_send_wr(struct zc_conn *c, struct ibv_send_wr *wr)
{
	struct ibv_send_wr *bad, *w;
	int n = 0, rc;

	for (w = wr; w; w = w->next)
		n++;
	if ((rc = ibv_post_send(c->qp, wr, &bad)))
		return zc_conn_fail(c, zc_err(-rc, "ibv_post_send: %s", strerror(rc)));
	c->sq_inflight += (uint32_t)n;
	return 0;
}

static int wc_error(enum ibv_wc_status st)
{
	switch (st) {
	case IBV_WC_REM_ACCESS_ERR:
		return -ZC_EREMOTEACCESS;
	case IBV_WC_RETRY_EXC_ERR:
		return -ZC_ETRANSPORT;
	case IBV_WC_RNR_RETRY_EXC_ERR:
		return -ZC_ERNR;
	case IBV_WC_REM_INV_REQ_ERR:
		return -ZC_EPEERPROTO;
	/* The responder's QP could not carry out the request: what a peer
	 * being torn down answers (measured: a SIGKILLed peer), more often
	 * than a broken rule. */
	case IBV_WC_REM_OP_ERR:
	default:
		return -ECONNRESET;
	}
}

int zc_conn_fail(struct zc_conn *c, int err)
{
	if (c->err)
		return c->err;
	c->err = err;
	snprintf(c->detail, sizeof(c->detail), "%s", zc_err_detail());
	if (c->state == ZC_CONN_OPEN && c->id)
		rdma_disconnect(c->id); /* the peer learns at once; our WRs flush */
	c->state = ZC_CONN_DEAD;
	zc_fail_pending(c, err);
	return err;
}

/* Gives every zero-copy operation the connection still owns back to the
 * application with err. */
void zc_fail_pending(struct zc_conn *c, int err)
{
	struct zc_item *it = zc_item_head(c);
	uint32_t keep;

	zc_rndv_fail_all(c, err);
	if (it && (it->rstate == ZC_READ_POSTING || it->rstate == ZC_READ_DRAINING) && !it->status)
		it->status = err;
	zc_read_advance(c, it);
	/* The NIC may still write into a posted buffer with READs in flight:
	 * that one is returned when the round drains (flush completions). */
	keep = it && it->reader == ZC_READER_POSTED && it->rstate != ZC_READ_IDLE ? 1 : 0;
	while (c->posted_count > keep) {
		/* from the tail, so a kept head stays first */
		struct zc_posted *p = &c->posted[(c->posted_head + c->posted_count - 1) % c->posted_cap];

		zc_entry_put(c->ctx, p->entry);
		zc_ctx_complete(c->ctx, c, p->token, ZC_OP_RECV, err, 0);
		c->posted_count--;
	}
	while (c->zq_count) {
		zc_ctx_complete(c->ctx, c, c->zq[c->zq_head].token, ZC_OP_SEND, err, 0);
		c->zq_head = (c->zq_head + 1) % c->zq_cap;
		c->zq_count--;
	}
}

int zc_conn_error(struct zc_conn *c)
{
	return zc_err(c->err, "%s", c->detail);
}

int zc_conn_check(struct zc_conn *c)
{
	if (!c)
		return zc_err(-EINVAL, "no connection");
	if (c->err)
		return zc_conn_error(c);
	if (c->state != ZC_CONN_OPEN)
		return zc_err(-ENOTCONN, "the connection is not open");
	return 0;
}

static void send_done(struct zc_conn *c, struct zc_sreq *s, int status)
{
	struct zc_ctx *ctx = c->ctx;

	if (s->wr.kind == ZC_WR_READ) {
		zc_on_read_done(c, status);
	} else if (s->wr.kind == ZC_WR_RMA) {
		struct zc_rma_op *op = &c->rma[s->rma];

		if (status && !op->status)
			op->status = status;
		if (--op->pieces == 0) {
			zc_entry_put(ctx, op->entry);
			zc_ctx_complete(ctx, c, op->token, op->op, op->status, op->status ? 0 : op->len);
			op->busy = false;
		}
	} else if (s->wr.kind == ZC_WR_PROBE) {
		c->probe_inflight = false;
	} else if (s->wr.kind == ZC_WR_MW) {
		zc_export_bound((struct zc_export *)(uintptr_t)s->token, status);
	} else if (s->op) {
		zc_entry_put(ctx, s->entry);
		zc_ctx_complete(ctx, c, s->token, s->op, status, status ? 0 : s->len);
	}
}

void zc_handle_wc(struct zc_ctx *ctx, const struct ibv_wc *wc)
{
	struct zc_wr *wr = (struct zc_wr *)(uintptr_t)wc->wr_id;
	struct zc_conn *c = wr->conn;
	int status = wc->status == IBV_WC_SUCCESS ? 0 : (c->err ? c->err : wc_error(wc->status));

	(void)ctx;
	/* A flush we did not cause means the QP went to the error state
	 * under us (e.g. the peer broke an RDMA access rule). */
	if (wc->status != IBV_WC_SUCCESS && (wc->status != IBV_WC_WR_FLUSH_ERR || c->state == ZC_CONN_OPEN))
		zc_conn_fail(c, zc_err(status, "%s completion failed on %s: %s", wr->kind == ZC_WR_RECV ? "receive" : "send",
				       ctx->caps.device, ibv_wc_status_str(wc->status)));
	c->activity++;
	if (wr->kind == ZC_WR_RECV) {
		c->rx_posted--;
		if (!status && c->state != ZC_CONN_DEAD)
			zc_on_recv(c, wr->idx, wc);
	} else {
		struct zc_sreq *s = &c->sreq[wr->idx];

		c->sq_inflight--;
		send_done(c, s, status);
		zc_sreq_put(c, wr->idx);
	}
	if (c->state != ZC_CONN_DEAD)
		zc_flush_ctl(c);
}

/* Moves the QP to ERROR and reaps every work request it still holds, so no
 * completion can name this connection after it is freed. */
void zc_conn_drain(struct zc_conn *c, int timeout_ms)
{
	struct ibv_qp_attr attr = {.qp_state = IBV_QPS_ERR};
	int64_t deadline = zc_now_ms() + timeout_ms;

	if (!c->qp)
		return;
	if (c->state != ZC_CONN_DEAD) {
		c->state = ZC_CONN_DEAD;
		if (!c->err) {
			c->err = -ECONNABORTED;
			snprintf(c->detail, sizeof(c->detail), "the connection was closed locally");
		}
	}
	ibv_modify_qp(c->qp, &attr, IBV_QP_STATE);
	while ((c->rx_posted || c->sq_inflight) && zc_remaining_ms(deadline) > 0)
		if (!zc_ctx_progress(c->ctx))
			zc_ctx_wait(c->ctx, 10);
	if (c->rx_posted || c->sq_inflight)
		zc_log(&c->ctx->opts, ZC_LOG_ERR, "%s: %u receive and %u send work requests not flushed within %d ms",
		       c->ctx->caps.device, c->rx_posted, c->sq_inflight, timeout_ms);
}

/*
 * A peer that died without a word (power loss, link down) sends nothing and
 * acknowledges nothing, so when no completion arrived for keepalive_ms a
 * zero-length RDMA WRITE probes it: it needs no memory on either side, and
 * against a dead peer it fails once the transport's retries run out,
 * failing the connection with -ZC_ETRANSPORT.
 */
int zc_conn_keepalive(struct zc_conn *c)
{
	int64_t now;

	if (c->err)
		return zc_conn_error(c);
	if (!c->opts.keepalive_ms || c->state != ZC_CONN_OPEN)
		return 0;
	/* A busy connection costs no clock read: its quiet time starts at
	 * the first check that finds it idle. */
	if (c->activity != c->activity_seen) {
		c->activity_seen = c->activity;
		c->quiet_since = 0;
		return 0;
	}
	now = zc_now_ms();
	if (!c->quiet_since) {
		c->quiet_since = now;
		return 0;
	}
	if (now - c->quiet_since >= c->opts.keepalive_ms && !c->probe_inflight) {
		struct ibv_send_wr wr = {.opcode = IBV_WR_RDMA_WRITE, .send_flags = IBV_SEND_SIGNALED};
		int i = zc_sreq_get(c);

		if (i < 0)
			return 0;
		c->sreq[i].wr.kind = ZC_WR_PROBE;
		wr.wr_id = (uintptr_t)&c->sreq[i].wr;
		if (zc_post_send_wr(c, &wr)) {
			zc_sreq_put(c, (uint32_t)i);
			return zc_conn_error(c);
		}
		c->probe_inflight = true;
		c->quiet_since = now;
	}
	return 0;
}

/* Waits for progress on behalf of a blocked call on c. */
int zc_conn_wait(struct zc_conn *c)
{
	zc_ctx_wait(c->ctx, 100);
	return zc_conn_keepalive(c);
}
