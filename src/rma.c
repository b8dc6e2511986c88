/* One-sided RMA: exporting ranges to a peer, and RDMA READ/WRITE against them. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "zc_internal.h"

#define DESC_VERSION 1

/* Descriptor bytes: u8 version, u8 access, u16 zero, u32 rkey, u64 addr,
 * u64 len, u64 zero; little-endian. */
static void desc_encode(struct zc_desc *d, int access, uint32_t rkey, uint64_t addr, uint64_t len)
{
	uint32_t k = htole32(rkey);
	uint64_t a = htole64(addr), l = htole64(len);

	memset(d, 0, sizeof(*d));
	d->bytes[0] = DESC_VERSION;
	d->bytes[1] = (uint8_t)access;
	memcpy(d->bytes + 4, &k, 4);
	memcpy(d->bytes + 8, &a, 8);
	memcpy(d->bytes + 16, &l, 8);
}

static int desc_decode(const struct zc_desc *d, int *access, uint32_t *rkey, uint64_t *addr, uint64_t *len)
{
	static const uint8_t zero[8];
	uint32_t k;
	uint64_t a, l;

	if (!d || d->bytes[0] != DESC_VERSION || d->bytes[2] || d->bytes[3] || memcmp(d->bytes + 24, zero, 8) ||
	    !d->bytes[1] || (d->bytes[1] & ~(ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE)))
		return zc_err(-EINVAL, "not a zcrdma memory descriptor");
	memcpy(&k, d->bytes + 4, 4);
	memcpy(&a, d->bytes + 8, 8);
	memcpy(&l, d->bytes + 16, 8);
	*access = d->bytes[1];
	*rkey = le32toh(k);
	*addr = le64toh(a);
	*len = le64toh(l);
	if (*len == 0 || *addr + *len < *addr)
		return zc_err(-EINVAL, "memory descriptor with an empty or wrapping range");
	return 0;
}

static int ibv_rights(int access)
{
	return (access & ZC_ACCESS_REMOTE_READ ? IBV_ACCESS_REMOTE_READ : 0) |
	       (access & ZC_ACCESS_REMOTE_WRITE ? IBV_ACCESS_REMOTE_WRITE : 0);
}

void zc_export_bound(struct zc_export *e, int status)
{
	e->bind_pending = false;
	e->status = status;
}

/* Binds a type-2 window to the range on conn's QP and waits for the bind. */
static int bind_window(struct zc_conn *c, struct zc_export *e, uintptr_t addr, size_t len, int access)
{
	struct ibv_send_wr wr;
	int i, rc;

	e->mw = ibv_alloc_mw(c->ctx->pd, IBV_MW_TYPE_2);
	if (!e->mw)
		return zc_err(-ENOMEM, "ibv_alloc_mw: %s", strerror(errno));
	/* see bind_needs_idle_sq */
	while ((c->ctx->bind_needs_idle_sq && c->sq_inflight) || (i = zc_sreq_get(c)) < 0) {
		if (c->err)
			return zc_conn_error(c);
		zc_ctx_wait(c->ctx, 100);
	}
	c->sreq[i].wr.kind = ZC_WR_MW;
	c->sreq[i].token = (uintptr_t)e;
	e->rkey = ibv_inc_rkey(e->mw->rkey);
	wr = (struct ibv_send_wr){
		.wr_id = (uintptr_t)&c->sreq[i].wr, .opcode = IBV_WR_BIND_MW, .send_flags = IBV_SEND_SIGNALED,
		.bind_mw = {.mw = e->mw, .rkey = e->rkey,
			    .bind_info = {.mr = e->mr->mr, .addr = addr, .length = len,
					  .mw_access_flags = (unsigned)ibv_rights(access)}},
	};
	e->bind_pending = true;
	rc = zc_post_send_wr(c, &wr);
	if (rc) {
		zc_sreq_put(c, (uint32_t)i);
		return rc;
	}
	while (e->bind_pending)
		zc_ctx_wait(c->ctx, 100);
	if (e->status)
		return zc_err(e->status, "binding a memory window failed");
	e->mw->rkey = e->rkey;
	c->ctx->stats.mw_binds++;
	return 0;
}

int zc_export(struct zc_conn *c, struct zc_mr *mr, size_t offset, size_t len, int access, struct zc_export **out,
	      struct zc_desc *desc)
{
	struct zc_export *e;
	uintptr_t addr;
	int rc = zc_conn_check(c);

	if (rc)
		return rc;
	if (!mr || !out || !desc || !len || mr->ctx != c->ctx || offset > mr->mr->length ||
	    len > mr->mr->length - offset || !access || (access & ~(ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE)))
		return zc_err(-EINVAL, "zc_export: the range must lie inside the region and access must be set");
	if (access & ~mr->access)
		return zc_err(-EPERM, "zc_export: the region was registered without the rights requested");
	e = calloc(1, sizeof(*e));
	if (!e)
		return zc_err(-ENOMEM, "zc_export: out of memory");
	e->mr = mr;
	zc_list_init(&e->node);
	addr = (uintptr_t)mr->mr->addr + offset;
	if (c->ctx->caps.mw_type2 && !c->opts.mr_fallback && (mr->ibv_access & IBV_ACCESS_MW_BIND)) {
		rc = bind_window(c, e, addr, len, access);
	} else {
		/* Without windows (or on read-only pages, which cannot carry one):
		 * a region of its own, exactly this range and these rights,
		 * deregistered on revoke. */
		int local = access & ZC_ACCESS_REMOTE_WRITE ? IBV_ACCESS_LOCAL_WRITE : 0; /* required with remote write */

		e->fallback_mr = zc_reg_mr(c->ctx, (void *)addr, len, ibv_rights(access) | local, &rc);
		if (e->fallback_mr) {
			e->rkey = e->fallback_mr->rkey;
			c->ctx->stats.mr_fallbacks++;
		}
	}
	if (rc) {
		if (e->mw)
			zc_dealloc_mw(c->ctx, e->mw);
		free(e);
		return rc;
	}
	desc_encode(desc, access, e->rkey, addr, len);
	e->conn = c;
	zc_list_add(&c->exports, &e->node);
	mr->exports++;
	*out = e;
	return 0;
}

/* Deallocating a bound window invalidates it at once, so revoking needs no
 * work request and works on a dead connection too. */
static void export_release(struct zc_export *e)
{
	if (e->mw)
		zc_dealloc_mw(e->mr->ctx, e->mw);
	if (e->fallback_mr)
		zc_dereg_mr(e->mr->ctx, e->fallback_mr);
	e->mw = NULL;
	e->fallback_mr = NULL;
}

void zc_exports_orphan(struct zc_conn *c)
{
	while (!zc_list_empty(&c->exports)) {
		struct zc_export *e = zc_list_first(&c->exports, struct zc_export, node);

		export_release(e);
		e->conn = NULL;
		zc_list_del(&e->node);
	}
}

int zc_export_revoke(struct zc_export **pe)
{
	struct zc_export *e;

	if (!pe || !*pe)
		return zc_err(-EINVAL, "zc_export_revoke: no export");
	e = *pe;
	export_release(e);
	zc_list_del(&e->node);
	e->mr->exports--;
	free(e);
	*pe = NULL;
	return 0;
}

static int rma(struct zc_conn *c, enum ibv_wr_opcode opcode, int op, void *buf, size_t len, struct zc_mr *mr,
	       const struct zc_desc *remote, uint64_t off, uint64_t token)
{
	uint64_t raddr = 0, rlen = 0, piece, done;
	uint32_t rkey = 0, pieces, i, lkey;
	int access = 0, rc = zc_conn_check(c);
	struct zc_rma_op *o = NULL;

	if (rc)
		return rc;
	if ((!buf && len) || !len)
		return zc_err(-EINVAL, "RMA of an empty or NULL buffer");
	rc = desc_decode(remote, &access, &rkey, &raddr, &rlen);
	if (rc)
		return rc;
	if (off > rlen || len > rlen - off)
		return zc_err(-EINVAL, "RMA of %zu bytes at offset %llu is outside the %llu-byte export", len,
			      (unsigned long long)off, (unsigned long long)rlen);
	if (!(access & (op == ZC_OP_READ ? ZC_ACCESS_REMOTE_READ : ZC_ACCESS_REMOTE_WRITE)))
		return zc_err(-EPERM, "the peer did not grant %s access to this range",
			      op == ZC_OP_READ ? "read" : "write");
	rc = zc_ctx_room(c->ctx);
	if (rc)
		return rc;
	piece = c->ctx->caps.max_msg_size;
	pieces = (uint32_t)((len + piece - 1) / piece);
	for (i = 0; i < c->n_rma && !o; i++)
		if (!c->rma[i].busy)
			o = &c->rma[i];
	if (!o || c->sreq_free_count < pieces + 1)
		return -EAGAIN;
	*o = (struct zc_rma_op){.busy = true, .op = (uint8_t)op, .pieces = pieces, .token = token, .len = len};
	rc = zc_lkey_for(c->ctx, buf, len, mr, op == ZC_OP_READ, &lkey, &o->entry);
	if (rc) {
		o->busy = false;
		return rc;
	}
	for (done = 0; done < len; done += piece) {
		uint64_t n = len - done < piece ? len - done : piece;
		struct ibv_sge sge = {.addr = (uintptr_t)buf + done, .length = (uint32_t)n, .lkey = lkey};
		int s = zc_sreq_get(c);
		struct ibv_send_wr wr = {.wr_id = (uintptr_t)&c->sreq[s].wr, .sg_list = &sge, .num_sge = 1,
					 .opcode = opcode, .send_flags = IBV_SEND_SIGNALED,
					 .wr.rdma = {.remote_addr = raddr + off + done, .rkey = rkey}};

		c->sreq[s].wr.kind = ZC_WR_RMA;
		c->sreq[s].rma = (uint32_t)(o - c->rma);
		rc = zc_post_send_wr(c, &wr);
		if (rc) {
			/* The QP is dead: pieces already posted flush, the rest never will. */
			zc_sreq_put(c, (uint32_t)s);
			o->status = rc;
			o->pieces -= (uint32_t)((len - done + piece - 1) / piece);
			if (o->pieces == 0) {
				zc_entry_put(c->ctx, o->entry);
				o->busy = false;
				return rc;
			}
			break;
		}
	}
	c->ctx->zc_outstanding++;
	return 0;
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
