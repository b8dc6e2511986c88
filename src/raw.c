/*
 * Raw connections: a bare queue pair for a protocol the application speaks
 * itself. The application's receives and SENDs go to the QP as they are,
 * with no header, credit or shared slot; every one completes through the
 * context's completion ring with its token. (RDMA READ/WRITE are rma.c's,
 * set-up and teardown cm.c's.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "conn.h"

int zc__conn_mode(const struct zc_conn *c, bool want_raw)
{
	if (!c)
		return zc__err(-EINVAL, "no connection");
	if (!c->opts.raw == !want_raw)
		return 0;
	return zc__err(-EINVAL, want_raw ? "zc_raw_* calls need a raw connection (zc_conn_opts.raw)"
					 : "a raw connection carries only zc_raw_* transfers (and exports, RMA)");
}

static struct zc_conn *conn_of(struct zc__qp *q)
{
	return zc__container_of(q, struct zc_conn, ep.qp);
}

/* Pending work flushes as completions of its own, so a failure only needs
 * telling (ZC_EV_ERROR). */
static void raw_failed(struct zc__qp *q, int err)
{
	(void)err;
	zc__ev_news(conn_of(q), ZC_EP_FAILED);
}

static void raw_progress(struct zc__qp *q)
{
	zc__ev_news(conn_of(q), ZC_EP_SENDABLE);
}

/* Raw QPs have no receive slots: the engine never calls this. */
static void raw_slot(struct zc__qp *q, uint32_t slot, const struct ibv_wc *wc)
{
	(void)q;
	(void)slot;
	(void)wc;
}

static const struct zc__qp_ops raw_ops = {.recv = raw_slot, .progress = raw_progress, .failed = raw_failed};

static void recv_done(struct zc__wr *wr, const struct ibv_wc *wc)
{
	struct zc__raw_rreq *r = zc__container_of(wr, struct zc__raw_rreq, wr);
	struct zc_conn *c = r->conn;
	int status = zc__qp_rwr_status(&c->ep.qp, wc);
	struct zc_completion *comp;

	zc__entry_put(c->ctx, r->entry);
	r->entry = NULL;
	comp = zc__ctx_complete(c->ctx, c, r->token, ZC_OP_RAW_RECV, status, status ? 0 : wc->byte_len);
	if (!status && (wc->wc_flags & c->ctx->wc_inv_flags)) {
		comp->flags = ZC_COMP_INVALIDATED;
		comp->invalidated_rkey = wc->invalidated_rkey;
		zc__rma_invalidated(c, wc->invalidated_rkey);
	}
	c->raw.rfree[c->raw.n_rfree++] = r->idx;
}

int zc__raw_setup(struct zc_conn *c)
{
	struct zc__qp *q = &c->ep.qp;
	uint32_t i, n = q->recv_depth;
	int rc = zc__qp_setup(q, c->id, &raw_ops);

	if (rc)
		return rc;
	c->raw.rreq = calloc(n, sizeof(*c->raw.rreq));
	c->raw.rfree = calloc(n, sizeof(*c->raw.rfree));
	if (!c->raw.rreq || !c->raw.rfree)
		return zc__err(-ENOMEM, "out of memory for a raw connection's %u receives", n);
	for (i = 0; i < n; i++) {
		c->raw.rreq[i] = (struct zc__raw_rreq){.wr.done = recv_done, .conn = c, .idx = i};
		c->raw.rfree[i] = n - 1 - i;
	}
	c->raw.n_rfree = n;
	return 0;
}

void zc__raw_release(struct zc_conn *c)
{
	zc__qp_release(&c->ep.qp);
	free(c->raw.rreq);
	free(c->raw.rfree);
	c->raw = (struct zc__raw){0};
}

/* Transfers need an open connection; receives may also be posted on an
 * accepted one whose reply has not gone out yet. */
static int raw_check(struct zc_conn *c, bool recv, const void *buf, size_t len)
{
	int rc = zc__conn_mode(c, true);

	if (rc)
		return rc;
	if (c->ep.qp.err)
		return zc__qp_error(&c->ep.qp);
	if (c->state == ZC_CONN_FAILED)
		return zc__err(c->result, "%s", c->cm_detail);
	if (c->state != ZC_CONN_OPEN && !(recv && c->passive && c->ep.qp.qp && c->phase == ZC_PH_CONNECT))
		return zc__err(-ENOTCONN, "the raw connection is not open (still being set up, or closing)");
	if (c->state == ZC_CONN_OPEN && c->phase != ZC_PH_NONE)
		return zc__err(-ENOTCONN, "the raw connection is closing");
	if (!buf && len)
		return zc__err(-EINVAL, "NULL buffer");
	if (len > c->ctx->caps.max_msg_size || len > UINT32_MAX)
		return zc__err(-EINVAL, "%zu bytes exceed the largest message of %s (%llu bytes)", len,
			      c->ctx->caps.device, (unsigned long long)c->ctx->caps.max_msg_size);
	return 0;
}

/* No room: WRITABLE follows when a send request frees. */
static int no_room(struct zc_conn *c, const char *what)
{
	zc__ev_want_writable(c);
	return zc__err(-EAGAIN, "the raw connection's send queue is full (%u %s in flight): reap completions",
		      c->ep.qp.depth, what);
}

int zc_raw_recv(struct zc_conn *c, void *buf, size_t len, struct zc_mr *mr, uint64_t token)
{
	struct zc__raw_rreq *r;
	struct ibv_sge sge;
	struct ibv_recv_wr wr = {.sg_list = &sge, .num_sge = 1};
	int rc = raw_check(c, true, buf, len);

	if (rc)
		return rc;
	if (!len)
		return zc__err(-EINVAL, "zc_raw_recv: a receive buffer needs at least one byte");
	if (!c->raw.n_rfree)
		return zc__err(-EAGAIN, "%u receives posted: the raw connection's receive queue is full",
			      c->ep.qp.recv_depth);
	if ((rc = zc__ctx_room(c->ctx)))
		return rc;
	r = &c->raw.rreq[c->raw.rfree[c->raw.n_rfree - 1]];
	rc = zc__lkey_for(c->ctx, buf, len, mr, true, &sge.lkey, &r->entry);
	if (rc)
		return rc;
	sge.addr = (uintptr_t)buf;
	sge.length = (uint32_t)len;
	wr.wr_id = (uintptr_t)&r->wr;
	r->token = token;
	rc = zc__qp_post_rwr(&c->ep.qp, &wr);
	if (rc) {
		zc__entry_put(c->ctx, r->entry);
		r->entry = NULL;
		return rc;
	}
	c->raw.n_rfree--;
	zc__ctx_submitted(c->ctx);
	return 0;
}

static void send_done(struct zc__qp *q, struct zc__sreq *s, int status)
{
	struct zc_conn *c = conn_of(q);

	zc__entry_put(c->ctx, s->entry);
	zc__ctx_complete(c->ctx, c, s->token, ZC_OP_RAW_SEND, status, status ? 0 : s->len);
}

int zc_raw_send(struct zc_conn *c, const void *buf, size_t len, struct zc_mr *mr, uint64_t token, int flags,
		uint32_t invalidate_rkey)
{
	struct zc__qp *q;
	struct zc__sreq *s;
	struct ibv_sge sge = {.addr = (uintptr_t)buf, .length = (uint32_t)len};
	struct ibv_send_wr wr = {.sg_list = &sge, .num_sge = len ? 1 : 0};
	int i, rc = raw_check(c, false, buf, len);

	if (rc)
		return rc;
	if (flags & ~(ZC_RAW_INVALIDATE | ZC_RAW_MORE))
		return zc__err(-EINVAL, "zc_raw_send: unknown flags 0x%x", (unsigned)flags);
	if ((rc = zc__ctx_room(c->ctx)))
		return rc;
	q = &c->ep.qp;
	if ((i = zc__sreq_get(q)) < 0)
		return no_room(c, "sends, reads and writes");
	s = &q->sreq[i];
	/* Inline: the provider copies the bytes at post time, so a buffer of
	 * the application's stack needs no registration (held, the buffer is
	 * the library's until then). A given region is still checked to
	 * cover it. */
	if (len && (mr || len > q->ctx->caps.max_inline)) {
		rc = zc__lkey_for(c->ctx, buf, len, mr, false, &sge.lkey, &s->entry);
		if (rc) {
			zc__sreq_put(q, (uint32_t)i);
			return rc;
		}
	}
	if (len && len <= q->ctx->caps.max_inline)
		wr.send_flags |= IBV_SEND_INLINE;
	wr.opcode = flags & ZC_RAW_INVALIDATE ? IBV_WR_SEND_WITH_INV : IBV_WR_SEND;
	if (flags & ZC_RAW_INVALIDATE)
		wr.invalidate_rkey = invalidate_rkey;
	wr.wr_id = (uintptr_t)&s->wr;
	s->done = send_done;
	s->token = token;
	s->len = len;
	rc = flags & ZC_RAW_MORE ? zc__qp_hold(q, &wr) : zc__qp_post_send(q, &wr);
	if (rc) {
		zc__entry_put(c->ctx, s->entry);
		zc__sreq_put(q, (uint32_t)i);
		return rc;
	}
	zc__ctx_submitted(c->ctx);
	return 0;
}

static int raw_rma(struct zc_conn *c, enum ibv_wr_opcode opcode, int op, void *buf, size_t len, struct zc_mr *mr,
		   uint64_t raddr, uint32_t rkey, uint64_t token, int flags)
{
	const char *what = op == ZC_OP_RAW_READ ? "READ" : "WRITE";
	int rc = zc__conn_mode(c, true);

	if (rc)
		return rc;
	if (!buf || !len)
		return zc__err(-EINVAL, "raw RDMA %s of an empty or NULL buffer", what);
	if (flags & ~ZC_RAW_MORE)
		return zc__err(-EINVAL, "raw RDMA %s: unknown flags 0x%x", what, (unsigned)flags);
	rc = zc__rma_post(c, opcode, op, buf, len, mr, raddr, rkey, token, flags & ZC_RAW_MORE);
	if (rc == -EAGAIN)
		zc__ev_want_writable(c);
	return rc;
}

int zc_raw_read(struct zc_conn *c, void *buf, size_t len, struct zc_mr *mr, uint64_t remote_addr, uint32_t rkey,
		uint64_t token, int flags)
{
	return raw_rma(c, IBV_WR_RDMA_READ, ZC_OP_RAW_READ, buf, len, mr, remote_addr, rkey, token, flags);
}

int zc_raw_write(struct zc_conn *c, const void *buf, size_t len, struct zc_mr *mr, uint64_t remote_addr,
		 uint32_t rkey, uint64_t token, int flags)
{
	return raw_rma(c, IBV_WR_RDMA_WRITE, ZC_OP_RAW_WRITE, (void *)buf, len, mr, remote_addr, rkey, token, flags);
}
