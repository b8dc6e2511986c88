/* Queue-pair engine: buffers, posting, completion dispatch, failure, drain. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "qp.h"

int zc__qp_init_attr(struct zc__qp *q, struct zc_ctx *ctx, uint32_t n_slots, uint32_t depth, uint32_t slot_size,
		     struct ibv_qp_init_attr *a)
{
	int rc = zc__ctx_reserve_cq(ctx, (int)(n_slots + depth));

	if (rc)
		return rc;
	q->ctx = ctx;
	q->n_slots = n_slots;
	q->depth = depth;
	q->slot_size = slot_size;
	*a = (struct ibv_qp_init_attr){
		.send_cq = ctx->cq, .recv_cq = ctx->cq, .qp_type = IBV_QPT_RC,
		.cap = {.max_send_wr = depth, .max_recv_wr = n_slots, .max_send_sge = 2, .max_recv_sge = 1,
			.max_inline_data = ctx->caps.max_inline},
	};
	return 0;
}

static void *alloc_registered(struct zc__qp *q, size_t len, struct ibv_mr **mr, int *rc)
{
	void *buf = NULL;

	if (posix_memalign(&buf, 4096, len)) {
		*rc = zc__err(-ENOMEM, "out of memory for %zu bytes of connection buffers", len);
		return NULL;
	}
	memset(buf, 0, len);
	*mr = zc__reg_mr(q->ctx, buf, len, IBV_ACCESS_LOCAL_WRITE, rc);
	if (!*mr) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void recv_done(struct zc__wr *wr, const struct ibv_wc *wc);
static void send_done(struct zc__wr *wr, const struct ibv_wc *wc);

int zc__qp_setup(struct zc__qp *q, struct rdma_cm_id *id, const struct zc__qp_ops *ops)
{
	uint32_t i;
	int rc = 0;

	q->id = id;
	q->qp = id->qp;
	q->ops = ops;
	q->rx_buf = alloc_registered(q, (size_t)q->slot_size * q->n_slots, &q->rx_mr, &rc);
	if (!q->rx_buf)
		return rc;
	q->tx_buf = alloc_registered(q, (size_t)q->slot_size * q->depth, &q->tx_mr, &rc);
	if (!q->tx_buf)
		return rc;
	q->rx_wr = calloc(q->n_slots, sizeof(*q->rx_wr));
	q->sreq = calloc(q->depth, sizeof(*q->sreq));
	q->sreq_free = calloc(q->depth, sizeof(*q->sreq_free));
	if (!q->rx_wr || !q->sreq || !q->sreq_free)
		return zc__err(-ENOMEM, "out of memory for connection state");
	for (i = 0; i < q->depth; i++) {
		q->sreq[i] = (struct zc__sreq){.wr.done = send_done, .qp = q, .idx = i};
		q->sreq_free[i] = q->depth - 1 - i;
	}
	q->sreq_free_count = q->depth;
	for (i = 0; i < q->n_slots; i++) {
		q->rx_wr[i] = (struct zc__rwr){.wr.done = recv_done, .qp = q, .slot = i};
		rc = zc__qp_post_recv(q, i);
		if (rc)
			return rc;
	}
	return 0;
}

void zc__qp_release(struct zc__qp *q)
{
	if (q->rx_mr)
		zc__dereg_mr(q->ctx, q->rx_mr);
	if (q->tx_mr)
		zc__dereg_mr(q->ctx, q->tx_mr);
	free(q->rx_buf);
	free(q->tx_buf);
	free(q->rx_wr);
	free(q->sreq);
	free(q->sreq_free);
	if (q->n_slots)
		zc__ctx_release_cq(q->ctx, (int)(q->n_slots + q->depth));
	q->rx_mr = q->tx_mr = NULL;
	q->rx_buf = q->tx_buf = NULL;
	q->rx_wr = NULL;
	q->sreq = NULL;
	q->sreq_free = NULL;
	q->n_slots = q->depth = q->sreq_free_count = 0;
}

void zc__qp_set_connected(struct zc__qp *q)
{
	q->connected = true;
}

uint8_t *zc__qp_rx_slot(const struct zc__qp *q, uint32_t slot)
{
	return q->rx_buf + (size_t)slot * q->slot_size;
}

uint8_t *zc__qp_tx_slot(const struct zc__qp *q, uint32_t i)
{
	return q->tx_buf + (size_t)i * q->slot_size;
}

int zc__qp_post_recv(struct zc__qp *q, uint32_t slot)
{
	struct ibv_sge sge = {.addr = (uintptr_t)zc__qp_rx_slot(q, slot), .length = q->slot_size,
			      .lkey = q->rx_mr->lkey};
	struct ibv_recv_wr wr = {.wr_id = (uintptr_t)&q->rx_wr[slot].wr, .sg_list = &sge, .num_sge = 1}, *bad;
	int rc;

	if (q->dead)
		return 0;
	/* Providers return the error; errno is not always set. */
	if ((rc = ibv_post_recv(q->qp, &wr, &bad)))
		return zc__qp_fail(q, zc__err(-rc, "ibv_post_recv: %s", strerror(rc)));
	q->rx_posted++;
	return 0;
}

int zc__sreq_get(struct zc__qp *q)
{
	struct zc__sreq *s;
	uint32_t i;

	if (!q->sreq_free_count)
		return -EAGAIN;
	i = q->sreq_free[--q->sreq_free_count];
	s = &q->sreq[i];
	s->done = NULL;
	s->op = 0;
	s->token = 0;
	s->len = 0;
	s->entry = NULL;
	s->arg = NULL;
	return (int)i;
}

void zc__sreq_put(struct zc__qp *q, uint32_t i)
{
	q->sreq_free[q->sreq_free_count++] = i;
}

int zc__qp_post_send(struct zc__qp *q, struct ibv_send_wr *wr)
{
	struct ibv_send_wr *bad, *w;
	int n = 0, rc;

	for (w = wr; w; w = w->next)
		n++;
	if ((rc = ibv_post_send(q->qp, wr, &bad)))
		return zc__qp_fail(q, zc__err(-rc, "ibv_post_send: %s", strerror(rc)));
	q->sq_inflight += (uint32_t)n;
	return 0;
}

int zc__qp_post_staged(struct zc__qp *q, int i, uint32_t len, enum ibv_wr_opcode opcode, uint32_t inv_rkey)
{
	struct ibv_sge sge = {.addr = (uintptr_t)zc__qp_tx_slot(q, (uint32_t)i), .length = len, .lkey = q->tx_mr->lkey};
	struct ibv_send_wr wr = {.wr_id = (uintptr_t)&q->sreq[i].wr, .sg_list = &sge, .num_sge = 1,
				 .opcode = opcode, .send_flags = IBV_SEND_SIGNALED};

	if (len <= q->ctx->caps.max_inline)
		wr.send_flags |= IBV_SEND_INLINE;
	if (opcode == IBV_WR_SEND_WITH_INV)
		wr.invalidate_rkey = inv_rkey;
	return zc__qp_post_send(q, &wr);
}

static void probe_done(struct zc__qp *q, struct zc__sreq *s, int status)
{
	(void)s;
	(void)status; /* a failed probe has failed the QP already */
	q->probe_inflight = false;
}

int zc__qp_probe(struct zc__qp *q)
{
	struct ibv_send_wr wr = {.opcode = IBV_WR_RDMA_WRITE, .send_flags = IBV_SEND_SIGNALED};
	int i;

	if (q->probe_inflight || (i = zc__sreq_get(q)) < 0)
		return 0;
	q->sreq[i].done = probe_done;
	wr.wr_id = (uintptr_t)&q->sreq[i].wr;
	if (zc__qp_post_send(q, &wr)) {
		zc__sreq_put(q, (uint32_t)i);
		return zc__qp_error(q);
	}
	q->probe_inflight = true;
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

int zc__qp_fail(struct zc__qp *q, int err)
{
	if (q->err)
		return q->err;
	q->err = err;
	snprintf(q->detail, sizeof(q->detail), "%s", zc__err_detail());
	if (q->connected && !q->dead && q->id)
		rdma_disconnect(q->id); /* the peer learns at once; our WRs flush */
	q->dead = true;
	q->ops->failed(q, err);
	return err;
}

int zc__qp_error(struct zc__qp *q)
{
	return zc__err(q->err, "%s", q->detail);
}

/* Status of a completion; a failure the QP did not expect fails it. */
static int wc_status(struct zc__qp *q, const struct ibv_wc *wc, bool recv)
{
	int status = wc->status == IBV_WC_SUCCESS ? 0 : (q->err ? q->err : wc_error(wc->status));

	/* A flush we did not cause means the QP went to the error state
	 * under us (e.g. the peer broke an RDMA access rule). */
	if (wc->status != IBV_WC_SUCCESS && (wc->status != IBV_WC_WR_FLUSH_ERR || !q->dead))
		zc__qp_fail(q, zc__err(status, "%s completion failed on %s: %s", recv ? "receive" : "send",
				      q->ctx->caps.device, ibv_wc_status_str(wc->status)));
	q->activity++;
	return status;
}

static void recv_done(struct zc__wr *wr, const struct ibv_wc *wc)
{
	struct zc__rwr *r = zc__container_of(wr, struct zc__rwr, wr);
	struct zc__qp *q = r->qp;
	int status = wc_status(q, wc, true);

	q->rx_posted--;
	if (!status && !q->dead)
		q->ops->recv(q, r->slot, wc);
	if (!q->dead)
		q->ops->progress(q);
}

static void send_done(struct zc__wr *wr, const struct ibv_wc *wc)
{
	struct zc__sreq *s = zc__container_of(wr, struct zc__sreq, wr);
	struct zc__qp *q = s->qp;
	int status = wc_status(q, wc, false);

	q->sq_inflight--;
	if (s->done)
		s->done(q, s, status);
	zc__sreq_put(q, s->idx);
	if (!q->dead)
		q->ops->progress(q);
}

bool zc__qp_drained(const struct zc__qp *q)
{
	return !q->qp || (!q->rx_posted && !q->sq_inflight);
}

static int drained(void *arg)
{
	return zc__qp_drained(arg);
}

void zc__qp_flush(struct zc__qp *q)
{
	struct ibv_qp_attr attr = {.qp_state = IBV_QPS_ERR};

	if (!q->qp)
		return;
	if (!q->dead) {
		q->dead = true;
		if (!q->err) {
			q->err = -ECONNABORTED;
			snprintf(q->detail, sizeof(q->detail), "the connection was closed locally");
		}
	}
	ibv_modify_qp(q->qp, &attr, IBV_QP_STATE);
}

void zc__qp_drain(struct zc__qp *q, int timeout_ms)
{
	int64_t deadline = zc__now_ms() + timeout_ms;

	if (!q->qp)
		return;
	zc__qp_flush(q);
	if (zc__ctx_wait_for(q->ctx, drained, q, deadline) < 0)
		zc__log(&q->ctx->opts, ZC_LOG_ERR, "%s: %u receive and %u send work requests not flushed within %d ms",
		       q->ctx->caps.device, q->rx_posted, q->sq_inflight, timeout_ms);
}
