/* One-sided RMA: exporting ranges to a peer, and RDMA READ/WRITE against them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "conn.h"

static int ibv_rights(int access)
{
	return (access & ZC_ACCESS_REMOTE_READ ? IBV_ACCESS_REMOTE_READ : 0) |
	       (access & ZC_ACCESS_REMOTE_WRITE ? IBV_ACCESS_REMOTE_WRITE : 0);
}

static void bind_done(struct zc__qp *q, struct zc__sreq *s, int status)
{
	struct zc_export *e = s->arg;

	(void)q;
	e->bind_pending = false;
	e->status = status;
}

/* A send request to bind with: on rxe only on an idle send queue (see
 * bind_needs_idle_sq). */
static int bind_slot(struct zc_conn *c, void *arg)
{
	struct zc__qp *q = &c->ep.qp;
	int i;

	if (c->ctx->bind_needs_idle_sq && !zc__qp_sq_idle(q))
		return 0;
	i = zc__sreq_get(q);
	if (i < 0)
		return 0;
	*(int *)arg = i;
	return 1;
}

/* A failed QP flushes the bind, so this wait ends either way. */
static int bound(struct zc_conn *c, void *arg)
{
	(void)c;
	return !((struct zc_export *)arg)->bind_pending;
}

/* Binds a type-2 window to the range on conn's QP and waits for the bind. */
static int bind_window(struct zc_conn *c, struct zc_export *e, uintptr_t addr, size_t len, int access)
{
	struct zc__qp *q = &c->ep.qp;
	struct ibv_send_wr wr;
	int i, rc;

	e->mw = ibv_alloc_mw(c->ctx->pd, IBV_MW_TYPE_2);
	if (!e->mw)
		return zc__err(-ENOMEM, "ibv_alloc_mw: %s", strerror(errno));
	rc = zc__conn_wait_for(c, bind_slot, &i, -1, "");
	if (rc < 0)
		return rc;
	q->sreq[i].done = bind_done;
	q->sreq[i].arg = e;
	e->rkey = ibv_inc_rkey(e->mw->rkey);
	wr = (struct ibv_send_wr){
		.wr_id = (uintptr_t)&q->sreq[i].wr, .opcode = IBV_WR_BIND_MW,
		.bind_mw = {.mw = e->mw, .rkey = e->rkey,
			    .bind_info = {.mr = e->mr->mr, .addr = addr, .length = len,
					  .mw_access_flags = (unsigned)ibv_rights(access)}},
	};
	e->bind_pending = true;
	rc = zc__qp_post_send(q, &wr);
	if (rc) {
		zc__sreq_put(q, (uint32_t)i);
		return rc;
	}
	zc__conn_wait_for(c, bound, e, -1, "");
	if (e->status)
		return zc__err(e->status, "binding a memory window failed");
	e->mw->rkey = e->rkey;
	c->ctx->stats.mw_binds++;
	return 0;
}

int zc_export(struct zc_conn *c, struct zc_mr *mr, size_t offset, size_t len, int access, struct zc_export **out,
	      struct zc_desc *desc)
{
	struct zc_export *e;
	uintptr_t addr;
	int rc = zc__conn_check(c);

	if (rc)
		return rc;
	if (!mr || !out || !desc || !len || mr->ctx != c->ctx || offset > mr->mr->length ||
	    len > mr->mr->length - offset || !access || (access & ~(ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE)))
		return zc__err(-EINVAL, "zc_export: the range must lie inside the region and access must be set");
	if (access & ~mr->access)
		return zc__err(-EPERM, "zc_export: the region was registered without the rights requested");
	e = calloc(1, sizeof(*e));
	if (!e)
		return zc__err(-ENOMEM, "zc_export: out of memory");
	e->mr = mr;
	zc__list_init(&e->node);
	addr = (uintptr_t)mr->mr->addr + offset;
	if (c->ctx->caps.mw_type2 && !c->opts.mr_fallback && (mr->ibv_access & IBV_ACCESS_MW_BIND)) {
		rc = bind_window(c, e, addr, len, access);
	} else {
		/* Without windows (or on read-only pages, which cannot carry one):
		 * a region of its own, exactly this range and these rights,
		 * deregistered on revoke. */
		int local = access & ZC_ACCESS_REMOTE_WRITE ? IBV_ACCESS_LOCAL_WRITE : 0; /* required with remote write */

		e->fallback_mr = zc__reg_mr(c->ctx, (void *)addr, len, ibv_rights(access) | local, &rc);
		if (e->fallback_mr) {
			e->rkey = e->fallback_mr->rkey;
			c->ctx->stats.mr_fallbacks++;
		}
	}
	if (rc) {
		if (e->mw)
			zc__dealloc_mw(c->ctx, e->mw);
		free(e);
		return rc;
	}
	zc__desc_encode(desc, access, e->rkey, addr, len);
	e->addr = addr;
	e->conn = c;
	zc__list_add(&c->exports, &e->node);
	mr->exports++;
	*out = e;
	return 0;
}

/* Deallocating a bound window invalidates it at once, so revoking needs no
 * work request and works on a dead connection too. */
static void export_release(struct zc_export *e)
{
	if (e->mw)
		zc__dealloc_mw(e->mr->ctx, e->mw);
	if (e->fallback_mr)
		zc__dereg_mr(e->mr->ctx, e->fallback_mr);
	e->mw = NULL;
	e->fallback_mr = NULL;
}

/* Made at the first one-sided operation: most connections never make one. */
static int rma_table(struct zc_conn *c)
{
	if (c->rma)
		return 0;
	c->rma = calloc(c->ep.qp.depth, sizeof(*c->rma));
	if (!c->rma)
		return zc__err(-ENOMEM, "out of memory for RMA state");
	c->n_rma = c->ep.qp.depth;
	return 0;
}

/* Every piece has been reaped (the QP was drained): what remains are the
 * exports, which the application revokes later; the peer loses them now. */
void zc__rma_release(struct zc_conn *c)
{
	while (!zc__list_empty(&c->exports)) {
		struct zc_export *e = zc__list_first(&c->exports, struct zc_export, node);

		export_release(e);
		e->conn = NULL;
		zc__list_del(&e->node);
	}
	free(c->rma);
	c->rma = NULL;
	c->n_rma = 0;
}

void zc__rma_invalidated(struct zc_conn *c, uint32_t rkey)
{
	struct zc__list *n;

	for (n = c->exports.next; n != &c->exports; n = n->next) {
		struct zc_export *e = zc__container_of(n, struct zc_export, node);

		if (e->rkey == rkey)
			e->invalidated = true;
	}
}

int zc_export_key(const struct zc_export *e, uint64_t *addr, uint32_t *rkey)
{
	if (!e || !addr || !rkey)
		return zc__err(-EINVAL, "zc_export_key: export, address and key outputs are required");
	if (e->invalidated)
		return zc__err(-ESTALE, "the peer invalidated this export's key 0x%x (SEND_WITH_INVALIDATE): revoke it",
			      e->rkey);
	if (!e->conn)
		return zc__err(-ENOTCONN, "the export's connection is gone, and the grant with it: revoke it");
	*addr = e->addr;
	*rkey = e->rkey;
	return 0;
}

static void piece_done(struct zc__qp *q, struct zc__sreq *s, int status)
{
	struct zc_conn *c = zc__container_of(q, struct zc_conn, ep.qp);
	struct zc__rma_op *o = s->arg;

	if (status && !o->status)
		o->status = status;
	if (--o->pieces == 0) {
		zc__entry_put(c->ctx, o->entry);
		zc__ctx_complete(c->ctx, c, o->token, o->op, o->status, o->status ? 0 : o->len);
		o->busy = false;
	}
}

int zc_export_revoke(struct zc_export **pe)
{
	struct zc_export *e;

	if (!pe || !*pe)
		return zc__err(-EINVAL, "zc_export_revoke: no export");
	e = *pe;
	export_release(e);
	zc__list_del(&e->node);
	e->mr->exports--;
	free(e);
	*pe = NULL;
	return 0;
}

/* A zcrdma connection keeps one send request spare for the FIN of a
 * rendezvous; a raw one has none. The pieces go out with one doorbell,
 * held with more to follow (raw connections) or not. */
int zc__rma_post(struct zc_conn *c, enum ibv_wr_opcode opcode, int op, void *buf, size_t len, struct zc_mr *mr,
		 uint64_t raddr, uint32_t rkey, uint64_t token, bool more)
{
	uint64_t piece, done;
	uint32_t pieces, i, lkey;
	int rc = zc__conn_check(c);
	struct zc__qp *q = &c->ep.qp;
	struct zc__rma_op *o = NULL;

	if (rc)
		return rc;
	if ((rc = zc__ctx_room(c->ctx)) || (rc = rma_table(c)))
		return rc;
	piece = c->ctx->caps.max_msg_size;
	pieces = (uint32_t)((len + piece - 1) / piece);
	for (i = 0; i < c->n_rma && !o; i++)
		if (!c->rma[i].busy)
			o = &c->rma[i];
	if (!o || !zc__sreq_avail(q, pieces + (c->opts.raw ? 0 : 1)))
		return zc__err(-EAGAIN, "the send queue has no room for %u more RDMA operations: reap completions",
			      pieces);
	*o = (struct zc__rma_op){.busy = true, .op = (uint8_t)op, .pieces = pieces, .token = token, .len = len};
	rc = zc__lkey_for(c->ctx, buf, len, mr, opcode == IBV_WR_RDMA_READ, &lkey, &o->entry);
	if (rc) {
		o->busy = false;
		return rc;
	}
	for (done = 0; done < len; done += piece) {
		uint64_t n = len - done < piece ? len - done : piece;
		struct ibv_sge sge = {.addr = (uintptr_t)buf + done, .length = (uint32_t)n, .lkey = lkey};
		int s = zc__sreq_get(q);
		struct ibv_send_wr wr = {.wr_id = (uintptr_t)&q->sreq[s].wr, .sg_list = &sge, .num_sge = 1,
					 .opcode = opcode,
					 .wr.rdma = {.remote_addr = raddr + done, .rkey = rkey}};

		q->sreq[s].done = piece_done;
		q->sreq[s].arg = o;
		rc = more || done + n < len ? zc__qp_hold(q, &wr) : zc__qp_post_send(q, &wr);
		if (rc) {
			/* The QP is dead: pieces already posted flush, the rest never will. */
			zc__sreq_put(q, (uint32_t)s);
			o->status = rc;
			o->pieces -= (uint32_t)((len - done + piece - 1) / piece);
			if (o->pieces == 0) {
				zc__entry_put(c->ctx, o->entry);
				o->busy = false;
				return rc;
			}
			break;
		}
	}
	zc__ctx_submitted(c->ctx);
	return 0;
}

/* The descriptor is checked here, where it can be: the range and rights. */
static int rma(struct zc_conn *c, enum ibv_wr_opcode opcode, int op, void *buf, size_t len, struct zc_mr *mr,
	       const struct zc_desc *remote, uint64_t off, uint64_t token)
{
	uint64_t raddr = 0, rlen = 0;
	uint32_t rkey = 0;
	int access = 0, rc = zc__conn_check(c);

	if (rc)
		return rc;
	if ((!buf && len) || !len)
		return zc__err(-EINVAL, "RMA of an empty or NULL buffer");
	rc = zc__desc_decode(remote, &access, &rkey, &raddr, &rlen);
	if (rc)
		return rc;
	if (off > rlen || len > rlen - off)
		return zc__err(-EINVAL, "RMA of %zu bytes at offset %llu is outside the %llu-byte export", len,
			      (unsigned long long)off, (unsigned long long)rlen);
	if (!(access & (op == ZC_OP_READ ? ZC_ACCESS_REMOTE_READ : ZC_ACCESS_REMOTE_WRITE)))
		return zc__err(-EPERM, "the peer did not grant %s access to this range",
			      op == ZC_OP_READ ? "read" : "write");
	return zc__rma_post(c, opcode, op, buf, len, mr, raddr + off, rkey, token, false);
}

int zc_rma_read(struct zc_conn *c, void *buf, size_t len, struct zc_mr *mr, const struct zc_desc *remote,
		uint64_t off, uint64_t token)
{
	return rma(c, IBV_WR_RDMA_READ, ZC_OP_READ, buf, len, mr, remote, off, token);
}

int zc_rma_write(struct zc_conn *c, const void *buf, size_t len, struct zc_mr *mr, const struct zc_desc *remote,
		 uint64_t off, uint64_t token)
{
	return rma(c, IBV_WR_RDMA_WRITE, ZC_OP_WRITE, (void *)buf, len, mr, remote, off, token);
}
