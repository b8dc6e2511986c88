/* Queue-pair engine: buffers, posting, completion dispatch, failure, drain. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "qp.h"
#include "wire.h"

/* Receive and staging slots of a context: a header and its eager payload. */
static uint32_t slot_size(const struct zc_ctx *ctx)
{
	return (uint32_t)(ZC_HDR_SIZE + ctx->opts.eager_size);
}

/* Shared slots: soft limit from the options, hard limit what the device's
 * receive queue and completion queue can take. */
int zc__ctx_pools(struct zc_ctx *ctx)
{
	uint32_t slot = slot_size(ctx);
	int rc = 0;

	if (!ctx->txpool && (rc = zc__txpool_open(&ctx->txpool, ctx, slot)))
		return rc;
	if (!ctx->rxpool && ctx->caps.srq) {
		uint32_t hard = ctx->max_srq_wr, soft = (uint32_t)ctx->opts.rx_slots;

		if (hard > (uint32_t)ctx->max_cqe / 2)
			hard = (uint32_t)ctx->max_cqe / 2; /* the other half: send completions */
		rc = zc__rxpool_open(&ctx->rxpool, ctx, slot, NULL, soft < hard ? soft : hard, hard, zc__qp_recv_done);
	}
	return rc;
}

/* No QP is left: give the slots back. Completions still queued would
 * name them, so the CQ is polled dry first (with no QP left, none can be
 * added). A context keeps no idle pinned memory. */
static void pools_idle(struct zc_ctx *ctx)
{
	while (zc__ctx_poll_cq(ctx) > 0)
		;
	zc__ctx_pools_close(ctx);
}

void zc__ctx_pools_close(struct zc_ctx *ctx)
{
	zc__rxpool_close(ctx->rxpool);
	zc__txpool_close(ctx->txpool);
	ctx->rxpool = NULL;
	ctx->txpool = NULL;
}

int zc__qp_init_attr(struct zc__qp *q, struct zc_ctx *ctx, uint32_t own_slots, uint32_t depth,
		     struct ibv_qp_init_attr *a)
{
	int rc = zc__ctx_pools(ctx);

	if (rc)
		return rc;
	if (!q->ctx)
		ctx->n_qps++;
	q->ctx = ctx;
	q->depth = depth;
	q->rx_own = !ctx->rxpool;
	q->own_slots = q->rx_own ? own_slots : 0;
	*a = (struct ibv_qp_init_attr){
		.send_cq = ctx->cq, .recv_cq = ctx->cq, .qp_type = IBV_QPT_RC,
		.srq = q->rx_own ? NULL : ctx->rxpool->srq,
		.cap = {.max_send_wr = depth, .max_recv_wr = q->own_slots, .max_send_sge = 2,
			.max_recv_sge = q->rx_own ? 1 : 0, .max_inline_data = ctx->caps.max_inline},
	};
	return 0;
}

int zc__qp_init_raw(struct zc__qp *q, struct zc_ctx *ctx, uint32_t send_depth, uint32_t recv_depth,
		    struct ibv_qp_init_attr *a)
{
	int held = (int)(send_depth + recv_depth);

	if (zc__ctx_reserve_cq(ctx, held))
		return zc__err(-ENOSPC, "the context's completion queue (%d entries, %d at most on %s) has no room "
					"for a raw connection's %u send and %u receive completions: lower "
					"raw_send_depth / raw_recv_depth or use fewer connections",
			      ctx->cq_size, ctx->max_cqe, ctx->caps.device, send_depth, recv_depth);
	q->ctx = ctx;
	q->raw = true;
	q->cq_held = held;
	q->depth = send_depth;
	q->recv_depth = recv_depth;
	*a = (struct ibv_qp_init_attr){
		.send_cq = ctx->cq, .recv_cq = ctx->cq, .qp_type = IBV_QPT_RC,
		.cap = {.max_send_wr = send_depth, .max_recv_wr = recv_depth, .max_send_sge = 1,
			.max_recv_sge = 1, .max_inline_data = ctx->caps.max_inline},
	};
	return 0;
}

static void send_done(struct zc__wr *wr, const struct ibv_wc *wc);

int zc__qp_setup(struct zc__qp *q, struct rdma_cm_id *id, const struct zc__qp_ops *ops)
{
	uint32_t i;
	int rc;

	q->id = id;
	q->qp = id->qp;
	q->ops = ops;
	q->sreq = calloc(q->depth, sizeof(*q->sreq));
	q->sreq_free = calloc(q->depth, sizeof(*q->sreq_free));
	q->sq_ring = calloc(q->depth, sizeof(*q->sq_ring));
	if (!q->sreq || !q->sreq_free || !q->sq_ring)
		return zc__err(-ENOMEM, "out of memory for connection state");
	for (i = 0; i < q->depth; i++) {
		q->sreq[i] = (struct zc__sreq){.wr.done = send_done, .qp = q, .idx = i, .tx = ZC__NO_TX};
		q->sreq_free[i] = q->depth - 1 - i;
	}
	q->sreq_free_count = q->depth;
	if (q->raw) {
		q->held = calloc(ZC__HELD_MAX, sizeof(*q->held));
		return q->held ? 0 : zc__err(-ENOMEM, "out of memory for connection state");
	}
	if (q->rx_own)
		return zc__rxpool_open(&q->rx, q->ctx, slot_size(q->ctx), q, q->own_slots, q->own_slots,
				       zc__qp_recv_done);
	q->rx = q->ctx->rxpool;
	rc = zc__rxpool_attach(q->rx, q);
	if (rc)
		q->rx = NULL;
	return rc;
}

void zc__qp_release(struct zc__qp *q)
{
	if (q->rx && q->rx_own)
		zc__rxpool_close(q->rx);
	else if (q->rx)
		zc__rxpool_detach(q->rx, q);
	free(q->sreq);
	free(q->sreq_free);
	free(q->sq_ring);
	free(q->held);
	if (q->qp)
		rdma_destroy_qp(q->id);
	if (q->ctx && q->raw)
		zc__ctx_release_cq(q->ctx, q->cq_held);
	else if (q->ctx && !--q->ctx->n_qps)
		pools_idle(q->ctx);
	/* As new: a retried connect sets it up again. */
	*q = (struct zc__qp){0};
}

void zc__qp_set_connected(struct zc__qp *q)
{
	q->connected = true;
}

uint8_t *zc__qp_rx_slot(const struct zc__qp *q, uint32_t slot)
{
	return zc__rxpool_addr(q->rx, slot);
}

int zc__qp_post_recv(struct zc__qp *q, uint32_t slot)
{
	int rc = zc__rxpool_repost(q->rx, slot);

	return rc && q->rx_own ? zc__qp_fail(q, rc) : 0;
}

bool zc__sreq_avail(const struct zc__qp *q, uint32_t n)
{
	return q->sreq_free_count >= n && (q->raw || q->ctx->sreqs_inuse + n <= q->ctx->cq_send_room);
}

int zc__sreq_get(struct zc__qp *q)
{
	struct zc__sreq *s;
	uint32_t i;

	if (!zc__sreq_avail(q, 1))
		return -EAGAIN;
	i = q->sreq_free[--q->sreq_free_count];
	if (!q->raw)
		q->ctx->sreqs_inuse++;
	s = &q->sreq[i];
	s->done = NULL;
	s->op = 0;
	s->token = 0;
	s->len = 0;
	s->entry = NULL;
	s->arg = NULL;
	s->quiet = false;
	s->fence = false;
	return (int)i;
}

void zc__sreq_put(struct zc__qp *q, uint32_t i)
{
	struct zc__sreq *s = &q->sreq[i];

	if (s->tx != ZC__NO_TX) {
		zc__txpool_put(q->ctx->txpool, s->tx);
		s->tx = ZC__NO_TX;
	}
	if (!q->raw)
		q->ctx->sreqs_inuse--;
	q->sreq_free[q->sreq_free_count++] = i;
}

static struct zc__sreq *sreq_of(const struct ibv_send_wr *w)
{
	return zc__container_of((struct zc__wr *)(uintptr_t)w->wr_id, struct zc__sreq, wr);
}

/*
 * Selective signaling: on soft-RoCE a completion per send costs a fifth of
 * the message rate (ib_send_bw --cq-mod 1 against 100). A quiet request
 * leaves unsignaled; the next completion on the QP retires it, since a
 * send queue completes in order and an error or a flush always makes a
 * completion. At most half the queue waits behind the last signaled
 * request, and only while sends hold at most half of the context's
 * completion queue: whoever waits for a send request then always has a
 * completion coming. What waits for an idle queue asks for one
 * (zc__qp_sq_idle). A raw QP's completion entries are its own, and the
 * application waits for every request: all but the last of a doorbell go
 * unsignaled, the last one retiring them (as Linux's nvmet-rdma posts a
 * Read's data WRITE and response SEND).
 */
static bool may_go_unsignaled(const struct zc__qp *q, const struct ibv_send_wr *w, uint32_t run)
{
	if (q->raw)
		return w->next != NULL;
	return sreq_of(w)->quiet && run + 1 < q->depth / 2 && q->ctx->sreqs_inuse <= q->ctx->cq_send_room / 2;
}

/* The held requests, oldest first, then wr (may be NULL), as one list. */
static struct ibv_send_wr *chain(struct zc__qp *q, struct ibv_send_wr *wr)
{
	uint32_t i;

	for (i = q->n_held; i-- > 0;) {
		struct zc__held *h = &q->held[i];

		h->wr.sg_list = &h->sge;
		h->wr.next = wr;
		wr = &h->wr;
	}
	return wr;
}

/* Held requests from `from` on never reached the NIC: each completes with
 * err. The QP holds nothing after. */
static void held_drop(struct zc__qp *q, uint32_t from, int err)
{
	uint32_t n = q->n_held, i;

	if (!n)
		return;
	q->n_held = 0;
	zc__list_del(&q->held_node);
	for (i = from; i < n; i++) {
		struct zc__sreq *s = sreq_of(&q->held[i].wr);

		if (s->done)
			s->done(q, s, err);
		zc__sreq_put(q, s->idx);
	}
}

int zc__qp_post_send(struct zc__qp *q, struct ibv_send_wr *wr)
{
	struct ibv_send_wr *bad = NULL, *w, *list = chain(q, wr);
	uint32_t run = q->unsignaled_run, held = 0, n = 0;
	int rc;

	for (w = list; w; w = w->next)
		if (may_go_unsignaled(q, w, run)) {
			w->send_flags &= ~(unsigned)IBV_SEND_SIGNALED;
			run++;
		} else {
			w->send_flags |= IBV_SEND_SIGNALED;
			run = 0;
		}
	rc = ibv_post_send(q->qp, list, &bad);
	if (!rc)
		bad = NULL;
	/* A failed post took the requests before bad all the same. */
	run = q->unsignaled_run;
	for (w = list; w != bad; w = w->next) {
		q->sq_ring[(q->sq_head + q->sq_inflight++) % q->depth] = sreq_of(w)->idx;
		run = w->send_flags & IBV_SEND_SIGNALED ? 0 : run + 1;
		held += held < q->n_held;
		n++;
	}
	q->unsignaled_run = run;
	if (n) {
		q->ctx->stats.send_wrs += n;
		q->ctx->stats.send_posts++;
	}
	if (rc) {
		rc = zc__err(-rc, "ibv_post_send: %s", strerror(rc));
		held_drop(q, held, rc);
		return zc__qp_fail(q, rc);
	}
	if (q->n_held) {
		q->n_held = 0;
		zc__list_del(&q->held_node);
	}
	return 0;
}

int zc__qp_hold(struct zc__qp *q, struct ibv_send_wr *wr)
{
	struct zc__held *h;
	int rc;

	if (!q->held)
		return zc__qp_post_send(q, wr);
	if (q->n_held == ZC__HELD_MAX && (rc = zc__qp_post_held(q)))
		return rc;
	h = &q->held[q->n_held];
	h->wr = *wr;
	if (wr->num_sge)
		h->sge = wr->sg_list[0];
	if (!q->n_held++)
		zc__list_add_tail(&q->ctx->held, &q->held_node);
	return 0;
}

int zc__qp_post_held(struct zc__qp *q)
{
	return q->n_held ? zc__qp_post_send(q, NULL) : 0;
}

void zc__qp_post_all_held(struct zc_ctx *ctx)
{
	/* Each post empties its QP's hold, failed or not. */
	while (!zc__list_empty(&ctx->held))
		zc__qp_post_held(zc__list_first(&ctx->held, struct zc__qp, held_node));
}

bool zc__qp_sq_idle(struct zc__qp *q)
{
	zc__qp_post_held(q);
	if (!q->sq_inflight)
		return true;
	if (q->unsignaled_run)
		zc__qp_probe(q);
	return false;
}

int zc__qp_send(struct zc__qp *q, struct ibv_send_wr *first, int i, const void *hdr, uint32_t hdr_len,
		const void *payload, uint32_t len, enum ibv_wr_opcode opcode, uint32_t ex)
{
	struct zc__sreq *s = &q->sreq[i];
	struct ibv_sge sge[2];
	struct ibv_send_wr wr = {.wr_id = (uintptr_t)&s->wr, .sg_list = sge, .opcode = opcode}, *last;

	if (hdr_len)
		sge[wr.num_sge++] = (struct ibv_sge){.addr = (uintptr_t)hdr, .length = hdr_len};
	if (len)
		sge[wr.num_sge++] = (struct ibv_sge){.addr = (uintptr_t)payload, .length = len};

	/* Inline: the provider copies from our memory at post time. */
	if (hdr_len + len <= q->ctx->caps.max_inline) {
		wr.send_flags |= IBV_SEND_INLINE;
	} else {
		struct zc__txpool *t = q->ctx->txpool;
		uint8_t *buf;
		int rc = zc__txpool_get(t, &s->tx);

		if (rc)
			return zc__qp_fail(q, rc);
		buf = zc__slab_addr(&t->slab, s->tx);
		if (hdr_len)
			memcpy(buf, hdr, hdr_len);
		if (len)
			memcpy(buf + hdr_len, payload, len);
		sge[0] = (struct ibv_sge){.addr = (uintptr_t)buf, .length = hdr_len + len,
					  .lkey = zc__slab_lkey(&t->slab, s->tx)};
		wr.num_sge = 1;
	}
	if (s->fence)
		wr.send_flags |= IBV_SEND_FENCE;
	if (opcode == IBV_WR_SEND_WITH_INV)
		wr.invalidate_rkey = ex;
	else if (opcode == IBV_WR_SEND_WITH_IMM)
		wr.imm_data = ex;
	if (!first)
		return zc__qp_post_send(q, &wr);
	for (last = first; last->next; last = last->next)
		;
	last->next = &wr;
	return zc__qp_post_send(q, first);
}

static void probe_done(struct zc__qp *q, struct zc__sreq *s, int status)
{
	(void)s;
	(void)status; /* a failed probe has failed the QP already */
	q->probe_inflight = false;
}

int zc__qp_probe(struct zc__qp *q)
{
	struct ibv_send_wr wr = {.opcode = IBV_WR_RDMA_WRITE};
	int i;

	/* also what retires unsignaled requests (zc__qp_sq_idle) */
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
	case IBV_WC_LOC_LEN_ERR: /* a message longer than the receive buffer */
		return -EMSGSIZE;
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
	held_drop(q, 0, err);
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

int zc__qp_post_rwr(struct zc__qp *q, struct ibv_recv_wr *wr)
{
	struct ibv_recv_wr *bad;
	int rc = ibv_post_recv(q->qp, wr, &bad);

	if (rc)
		return zc__qp_fail(q, zc__err(-rc, "ibv_post_recv: %s", strerror(rc)));
	q->rq_inflight++;
	q->ctx->stats.recv_wrs++;
	return 0;
}

int zc__qp_rwr_status(struct zc__qp *q, const struct ibv_wc *wc)
{
	q->rq_inflight--;
	return wc_status(q, wc, true);
}

void zc__qp_recv_done(struct zc__qp *q, uint32_t slot, const struct ibv_wc *wc)
{
	int status = wc_status(q, wc, true);

	if (!status && !q->dead)
		q->ops->recv(q, slot, wc);
	else if (!q->rx_own)
		zc__rxpool_repost(q->rx, slot); /* a shared slot outlives the QP */
	if (!q->dead)
		q->ops->progress(q);
}

/* The completion retires its request and the unsignaled ones posted
 * before it, which succeeded (a failure would have had a completion). */
static void send_done(struct zc__wr *wr, const struct ibv_wc *wc)
{
	struct zc__sreq *s = zc__container_of(wr, struct zc__sreq, wr);
	struct zc__qp *q = s->qp;
	int status = wc_status(q, wc, false);
	uint32_t left = q->sq_inflight, i;

	do {
		struct zc__sreq *r;

		i = q->sq_ring[q->sq_head];
		r = &q->sreq[i];
		q->sq_head = (q->sq_head + 1) % q->depth;
		q->sq_inflight--;
		/* done may post: the ring's head has moved already */
		if (r->done)
			r->done(q, r, i == s->idx ? status : 0);
		zc__sreq_put(q, i);
	} while (i != s->idx && --left);
	if (!q->dead)
		q->ops->progress(q);
}

bool zc__qp_drained(struct zc__qp *q)
{
	if (!q->qp)
		return true;
	/* Shared slots are not flushed: only a QP's own queue must empty. */
	return (!q->rx_own || !q->rx || !q->rx->posted) && zc__qp_sq_idle(q) && !q->rq_inflight;
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
	held_drop(q, 0, q->err);
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
		       q->ctx->caps.device, q->rx_own && q->rx ? q->rx->posted : 0, q->sq_inflight, timeout_ms);
}
