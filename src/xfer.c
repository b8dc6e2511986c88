/* Transfer protocols: eager sends, rendezvous, credit returns, matching. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "zc_internal.h"


static uint8_t *tx_slot(struct zc_conn *c, uint32_t i)
{
	return c->tx_buf + (size_t)i * c->tx_slot_size;
}

static uint8_t *rx_slot(struct zc_conn *c, uint32_t i)
{
	return c->rx_buf + (size_t)i * c->slot_size;
}

static void fill_hdr(struct zc_conn *c, uint8_t *buf, uint8_t type, uint32_t len, uint32_t id)
{
	struct zc_hdr h = {.version = ZC_WIRE_VERSION, .type = type, .len = len, .id = id,
			   .ack = zc_credit_advertise(&c->cr)};

	zc_hdr_encode(buf, &h);
}

/* Posts one SEND of the header (and body) staged in sreq i's tx slot. */
static int post_staged(struct zc_conn *c, int i, uint32_t len, enum ibv_wr_opcode opcode, uint32_t inv_rkey)
{
	struct ibv_sge sge = {.addr = (uintptr_t)tx_slot(c, (uint32_t)i), .length = len, .lkey = c->tx_mr->lkey};
	struct ibv_send_wr wr = {.wr_id = (uintptr_t)&c->sreq[i].wr, .sg_list = &sge, .num_sge = 1,
				 .opcode = opcode, .send_flags = IBV_SEND_SIGNALED};

	if (len <= c->ctx->caps.max_inline)
		wr.send_flags |= IBV_SEND_INLINE;
	if (opcode == IBV_WR_SEND_WITH_INV)
		wr.invalidate_rkey = inv_rkey;
	return zc_post_send_wr(c, &wr);
}

int zc_send_ctl(struct zc_conn *c, uint8_t type, uint32_t id, uint32_t inv_rkey)
{
	int i = zc_sreq_get(c);

	if (i < 0)
		return -EAGAIN;
	fill_hdr(c, tx_slot(c, (uint32_t)i), type, 0, id);
	if (type == ZC_MSG_CREDIT)
		c->ctx->stats.credit_msgs++;
	return post_staged(c, i, ZC_HDR_SIZE, inv_rkey ? IBV_WR_SEND_WITH_INV : IBV_WR_SEND, inv_rkey);
}

/* A data message's slot is free again: repost it and owe the peer a credit. */
static void release_slot(struct zc_conn *c, uint32_t slot)
{
	zc_credit_release(&c->cr);
	c->held--;
	zc_post_recv(c, slot);
}

/* Sends what control traffic is owed: queued FINs, then a credit return.
 * Callers that consumed data call it too, so an idle peer waiting for
 * credits hears about them without any traffic of its own. */
void zc_flush_ctl(struct zc_conn *c)
{
	zc_zq_drain(c);
	while (c->fin_count && c->sreq_free_count) {
		struct zc_fin f = c->fin_queue[c->fin_head];

		c->fin_head = (c->fin_head + 1) % c->n_slots;
		c->fin_count--;
		release_slot(c, f.slot);
		zc_send_ctl(c, ZC_MSG_FIN, f.id, f.rkey);
	}
	if (zc_credit_update_due(&c->cr, c->held) && c->sreq_free_count)
		zc_send_ctl(c, ZC_MSG_CREDIT, 0, 0);
	/* Room may have freed for a READ round waiting for it. */
	zc_read_advance(c, zc_item_head(c));
}

int zc_send_eager(struct zc_conn *c, const void *buf, size_t len, uint8_t op, uint64_t token)
{
	struct zc_sreq *s;
	uint8_t *slot;
	int i;

	if (!c->sreq_free_count || !zc_credit_avail(&c->cr))
		return -EAGAIN;
	i = zc_sreq_get(c);
	zc_credit_take(&c->cr);
	s = &c->sreq[i];
	s->op = op;
	s->token = token;
	s->len = len;
	slot = tx_slot(c, (uint32_t)i);
	fill_hdr(c, slot, ZC_MSG_EAGER, (uint32_t)len, 0);
	/* One copy into the registered ring: cheaper than registering a small
	 * buffer, and the caller gets it back at once. */
	if (len)
		memcpy(slot + ZC_HDR_SIZE, buf, len);
	if (ZC_HDR_SIZE + len <= c->ctx->caps.max_inline)
		c->ctx->stats.inline_msgs++;
	else
		c->ctx->stats.eager_msgs++;
	return post_staged(c, i, (uint32_t)(ZC_HDR_SIZE + len), IBV_WR_SEND, 0);
}

static int free_rndv(struct zc_conn *c)
{
	uint32_t i;

	for (i = 0; i < c->n_rndv; i++)
		if (c->rndv[i].owner == ZC_RNDV_FREE)
			return (int)i;
	return -1;
}

static void rndv_release(struct zc_conn *c, struct zc_rndv *r)
{
	zc_entry_put(c->ctx, r->entry);
	r->entry = NULL;
	if (r->fallback_mr)
		zc_dereg_mr(c->ctx, r->fallback_mr);
	r->fallback_mr = NULL;
}

/* Exposes buf to the peer for one RDMA READ and sends it the RTS. */
int zc_send_rndv(struct zc_conn *c, const void *buf, size_t len, struct zc_mr *mr, uint8_t owner, uint64_t token,
		 uint32_t *out)
{
	struct zc_ctx *ctx = c->ctx;
	bool window = ctx->caps.mw_type2 && !c->opts.mr_fallback;
	struct zc_rts rts = {.addr = (uintptr_t)buf, .len = len};
	struct zc_rndv *r;
	struct ibv_mr *local = NULL;
	int ri, rs, rb = -1, rc, access = 0;

	if (!zc_credit_avail(&c->cr) || c->sreq_free_count < 2 || (ri = free_rndv(c)) < 0 ||
	    (window && ctx->bind_needs_idle_sq && c->sq_inflight))
		return -EAGAIN;
	r = &c->rndv[ri];
	if (window) {
		rc = zc_reg_for(ctx, buf, len, mr, false, &local, &access, &r->entry);
		if (rc)
			return rc;
		/* Read-only pages cannot carry a window: fall back for this one. */
		if (!(access & IBV_ACCESS_MW_BIND)) {
			rndv_release(c, r);
			window = false;
		}
	}
	if (window) {
		if (!r->mw && !(r->mw = ibv_alloc_mw(ctx->pd, IBV_MW_TYPE_2))) {
			rndv_release(c, r);
			return zc_err(-ENOMEM, "ibv_alloc_mw: %s", strerror(errno));
		}
		rb = zc_sreq_get(c);
		r->rkey = ibv_inc_rkey(r->mw->rkey);
		{
			struct ibv_send_wr bind = {
				.wr_id = (uintptr_t)&c->sreq[rb].wr, .opcode = IBV_WR_BIND_MW,
				.send_flags = IBV_SEND_SIGNALED,
				.bind_mw = {.mw = r->mw, .rkey = r->rkey,
					    .bind_info = {.mr = local, .addr = (uintptr_t)buf, .length = len,
							  .mw_access_flags = IBV_ACCESS_REMOTE_READ}},
			};
			rc = zc_post_send_wr(c, &bind);
		}
		if (rc) {
			rndv_release(c, r);
			return rc;
		}
		r->mw->rkey = r->rkey;
		rts.flags = ZC_RTS_F_INV;
		ctx->stats.mw_binds++;
	} else {
		if (!ctx->logged_fallback && !local) {
			zc_log(&ctx->opts, ZC_LOG_WARN, "%s: %s; rendezvous exposes per-transfer MRs instead of memory windows",
			       ctx->caps.device, c->opts.mr_fallback ? "mr_fallback requested" : "no type-2 memory windows");
			ctx->logged_fallback = true;
		}
		rc = 0;
		r->fallback_mr = zc_reg_mr(ctx, (void *)buf, len, IBV_ACCESS_REMOTE_READ, &rc);
		if (!r->fallback_mr)
			return rc;
		r->rkey = r->fallback_mr->rkey;
		ctx->stats.mr_fallbacks++;
	}
	rts.rkey = r->rkey;
	r->owner = owner;
	r->gen++;
	r->done = false;
	r->status = 0;
	r->token = token;
	r->len = len;
	rs = zc_sreq_get(c);
	zc_credit_take(&c->cr);
	fill_hdr(c, tx_slot(c, (uint32_t)rs), ZC_MSG_RTS, 0, (uint32_t)ri | (uint32_t)r->gen << 16);
	zc_rts_encode(tx_slot(c, (uint32_t)rs) + ZC_HDR_SIZE, &rts);
	ctx->stats.rndv_msgs++;
	ctx->stats.rndv_bytes += len;
	*out = (uint32_t)ri;
	return post_staged(c, rs, ZC_RTS_SIZE, IBV_WR_SEND, 0);
}

static void rndv_finish(struct zc_conn *c, struct zc_rndv *r, int status)
{
	/* Without the peer's invalidating FIN the window is still bound, and
	 * rxe refuses to deregister a region under a bound window: revoke it
	 * by deallocating it (a new one is allocated when needed). */
	if (status && r->mw) {
		zc_dealloc_mw(c->ctx, r->mw);
		r->mw = NULL;
	}
	rndv_release(c, r);
	if (r->owner == ZC_RNDV_USER) {
		zc_ctx_complete(c->ctx, c, r->token, ZC_OP_SEND, status, status ? 0 : r->len);
		r->owner = ZC_RNDV_FREE;
	} else {
		r->done = true; /* the blocked sender frees it */
		r->status = status;
	}
}

void zc_rndv_fail_all(struct zc_conn *c, int err)
{
	uint32_t i;

	for (i = 0; c->rndv && i < c->n_rndv; i++)
		if (c->rndv[i].owner != ZC_RNDV_FREE && !c->rndv[i].done)
			rndv_finish(c, &c->rndv[i], err);
}

static int on_fin(struct zc_conn *c, const struct zc_hdr *h, const struct ibv_wc *wc)
{
	uint32_t idx = h->id & 0xffff;
	struct zc_rndv *r = idx < c->n_rndv ? &c->rndv[idx] : NULL;

	if (!r || r->owner == ZC_RNDV_FREE || r->done || r->gen != (uint16_t)(h->id >> 16))
		return zc_err(-ZC_EPEERPROTO, "peer finished rendezvous %#x, which is not outstanding", h->id);
	if (r->mw) {
		/* rxe reports the invalidation as wc_flags bit 0x4 rather than
		 * IBV_WC_WITH_INV; invalidated_rkey is right on both. */
		bool inv = wc->wc_flags & (IBV_WC_WITH_INV | 0x4);

		if (!r->fallback_mr && (!inv || wc->invalidated_rkey != r->rkey))
			return zc_err(-ZC_EPEERPROTO, "peer's FIN did not invalidate the window it was given");
	}
	rndv_finish(c, r, 0);
	return 0;
}

static void item_remove(struct zc_conn *c)
{
	c->item_head = (c->item_head + 1) % c->items_cap;
	c->item_count--;
}

void zc_item_pop(struct zc_conn *c)
{
	struct zc_item *it = zc_item_head(c);

	if (it->kind != ZC_ITEM_CLOSE)
		release_slot(c, it->slot);
	item_remove(c);
}

/* The head RTS is fully consumed: free its slot, then FIN (which carries
 * the credit, keeping control acks strictly increasing). */
static void finish_rts(struct zc_conn *c, struct zc_item *it)
{
	struct zc_fin f = {.id = it->id, .rkey = it->inv ? it->rkey : 0, .slot = it->slot};

	item_remove(c);
	c->fin_queue[(c->fin_head + c->fin_count++) % c->n_slots] = f;
	zc_flush_ctl(c);
}

static int push_item(struct zc_conn *c, const struct zc_item *src)
{
	if (c->item_count == c->items_cap)
		return zc_err(-ZC_EPEERPROTO, "peer sent more messages than it had credits for");
	c->items[(c->item_head + c->item_count++) % c->items_cap] = *src;
	return 0;
}

void zc_on_recv(struct zc_conn *c, uint32_t slot, const struct ibv_wc *wc)
{
	struct zc_item it = {.slot = slot};
	struct zc_hdr h;
	struct zc_rts rts;
	int rc = zc_msg_decode(rx_slot(c, slot), wc->byte_len, c->slot_size - ZC_HDR_SIZE, &h, &rts);

	if (!rc)
		rc = zc_credit_on_ack(&c->cr, h.ack);
	if (!rc && zc_msg_is_data(h.type) && !zc_credit_peer_may_send(&c->cr, c->held))
		rc = zc_err(-ZC_EPEERPROTO, "peer sent more data messages than its %u credits", c->credits);
	if (rc) {
		zc_conn_fail(c, rc);
		return;
	}
	switch (h.type) {
	case ZC_MSG_EAGER:
		it.kind = ZC_ITEM_EAGER;
		it.len = h.len;
		c->held++;
		rc = push_item(c, &it);
		break;
	case ZC_MSG_RTS:
		it.kind = ZC_ITEM_RTS;
		it.len = rts.len;
		it.raddr = rts.addr;
		it.rkey = rts.rkey;
		it.inv = rts.flags & ZC_RTS_F_INV;
		it.id = h.id;
		c->held++;
		rc = push_item(c, &it);
		break;
	case ZC_MSG_FIN:
		rc = on_fin(c, &h, wc);
		zc_post_recv(c, slot);
		break;
	case ZC_MSG_CREDIT:
		zc_post_recv(c, slot);
		break;
	case ZC_MSG_CLOSE:
		c->close_received = true;
		it.kind = ZC_ITEM_CLOSE;
		zc_post_recv(c, slot);
		rc = push_item(c, &it);
		break;
	}
	if (rc)
		zc_conn_fail(c, rc);
	else
		zc_match_posted(c);
}

/* Posts READ pieces of the round while READ depth and send-queue room last;
 * one send request stays free for the FIN and credit traffic. A failed
 * post fails the round. */
static void post_reads(struct zc_conn *c, struct zc_item *it)
{
	uint64_t max = c->ctx->read_chunk;

	while (it->posted < it->want && c->reads_inflight < c->max_reads && c->sreq_free_count > 1) {
		uint64_t n = it->want - it->posted < max ? it->want - it->posted : max;
		struct ibv_sge sge = {.addr = (uintptr_t)(it->dst + it->posted), .length = (uint32_t)n,
				      .lkey = it->dst_lkey};
		int i = zc_sreq_get(c);
		struct ibv_send_wr wr = {.wr_id = (uintptr_t)&c->sreq[i].wr, .sg_list = &sge, .num_sge = 1,
					 .opcode = IBV_WR_RDMA_READ, .send_flags = IBV_SEND_SIGNALED,
					 .wr.rdma = {.remote_addr = it->raddr + it->off + it->posted, .rkey = it->rkey}};

		c->sreq[i].wr.kind = ZC_WR_READ;
		if (zc_post_send_wr(c, &wr)) {
			zc_sreq_put(c, (uint32_t)i);
			it->status = c->err;
			return;
		}
		it->posted += n;
		it->reads++;
		c->reads_inflight++;
	}
}

static void complete_posted(struct zc_conn *c, int status, size_t len)
{
	struct zc_posted *p = &c->posted[c->posted_head];

	zc_entry_put(c->ctx, p->entry);
	zc_ctx_complete(c->ctx, c, p->token, ZC_OP_RECV, status, len);
	c->posted_head = (c->posted_head + 1) % c->posted_cap;
	c->posted_count--;
}

/* A posted buffer's round is over: the buffer goes back to the application,
 * and the next arrival is matched (or, after a failure, nothing is). */
static void end_posted_round(struct zc_conn *c, struct zc_item *it)
{
	int st = it->status;
	uint64_t n = it->want;

	zc_item_end_read(c, it);
	complete_posted(c, st, st ? 0 : n);
	if (st)
		zc_conn_fail(c, st);
	else
		zc_match_posted(c);
}

void zc_read_advance(struct zc_conn *c, struct zc_item *it)
{
	if (!it || it->rstate == ZC_READ_IDLE || it->rstate == ZC_READ_DONE)
		return;
	if (c->state == ZC_CONN_DEAD && !it->status)
		it->status = c->err ? c->err : -ECONNABORTED;
	if (it->rstate == ZC_READ_POSTING) {
		if (!it->status)
			post_reads(c, it);
		/* A failed post fails the connection, which advanced the round
		 * already (zc_fail_pending). */
		if (it->rstate != ZC_READ_POSTING)
			return;
		if (it->status || it->posted == it->want)
			it->rstate = ZC_READ_DRAINING;
	}
	if (it->rstate == ZC_READ_DRAINING && !it->reads) {
		it->rstate = ZC_READ_DONE;
		if (it->reader == ZC_READER_POSTED)
			end_posted_round(c, it);
	}
}

int zc_item_start_read(struct zc_conn *c, struct zc_item *it, void *buf, size_t len, struct zc_mr *mr,
		       uint8_t reader)
{
	int rc = zc_lkey_for(c->ctx, buf, len, mr, true, &it->dst_lkey, &it->dst_entry);

	if (rc)
		return rc;
	it->dst = buf;
	it->want = len;
	it->posted = 0;
	it->status = 0;
	it->reader = reader;
	it->rstate = ZC_READ_POSTING;
	zc_read_advance(c, it);
	return 0;
}

/* Closes a finished READ round: the bytes count as consumed, and a fully
 * read RTS is finished (slot freed, FIN sent). */
void zc_item_end_read(struct zc_conn *c, struct zc_item *it)
{
	zc_entry_put(c->ctx, it->dst_entry);
	it->dst_entry = NULL;
	it->rstate = ZC_READ_IDLE;
	if (it->status)
		return;
	it->off += it->want;
	if (it->off == it->len)
		finish_rts(c, it);
}

void zc_on_read_done(struct zc_conn *c, int status)
{
	struct zc_item *it = zc_item_head(c);

	c->reads_inflight--;
	if (!it || it->kind != ZC_ITEM_RTS || !it->reads)
		return;
	it->reads--;
	if (status && !it->status)
		it->status = status;
	zc_read_advance(c, it);
}

/* Hands arrived messages to buffers posted with zc_recv_zc(), in order. */
void zc_match_posted(struct zc_conn *c)
{
	struct zc_item *it;
	int rc;

	if (c->state == ZC_CONN_DEAD)
		return;
	while (c->posted_count && (it = zc_item_head(c)) && it->rstate == ZC_READ_IDLE) {
		struct zc_posted *p = &c->posted[c->posted_head];
		uint64_t left = it->len - it->off;

		if (it->kind == ZC_ITEM_CLOSE) {
			complete_posted(c, -EPIPE, 0);
			continue;
		}
		if (left > p->len) {
			complete_posted(c, -EMSGSIZE, left);
			if (it->kind == ZC_ITEM_RTS)
				finish_rts(c, it);
			else
				zc_item_pop(c);
			continue;
		}
		if (it->kind == ZC_ITEM_EAGER) {
			if (left)
				memcpy(p->buf, rx_slot(c, it->slot) + ZC_HDR_SIZE + it->off, left);
			zc_item_pop(c);
			complete_posted(c, 0, left);
			continue;
		}
		/* A buffer that cannot take the message fails alone; the
		 * message goes to the next one. */
		rc = zc_item_start_read(c, it, p->buf, left, p->mr, ZC_READER_POSTED);
		if (!rc)
			return;
		complete_posted(c, rc, 0);
	}
}

/* Copies up to len bytes of the head EAGER item; pops it when drained. */
size_t zc_item_copy(struct zc_conn *c, struct zc_item *it, void *buf, size_t len)
{
	uint64_t left = it->len - it->off;
	size_t n = len < left ? len : (size_t)left;

	if (n)
		memcpy(buf, rx_slot(c, it->slot) + ZC_HDR_SIZE + it->off, n);
	it->off += n;
	if (it->off == it->len)
		zc_item_pop(c);
	return n;
}

int zc_zsend_post(struct zc_conn *c, const struct zc_zsend *z)
{
	uint32_t idx;

	return z->len > c->eager_max ? zc_send_rndv(c, z->buf, z->len, z->mr, ZC_RNDV_USER, z->token, &idx)
				     : zc_send_eager(c, z->buf, z->len, ZC_OP_SEND, z->token);
}

/* Posts queued zero-copy sends, in order, while credits and room last. */
void zc_zq_drain(struct zc_conn *c)
{
	while (c->zq_count && c->state != ZC_CONN_DEAD) {
		struct zc_zsend *z = &c->zq[c->zq_head];
		int rc = zc_zsend_post(c, z);

		if (rc == -EAGAIN)
			return;
		if (rc)
			zc_ctx_complete(c->ctx, c, z->token, ZC_OP_SEND, rc, 0);
		c->zq_head = (c->zq_head + 1) % c->zq_cap;
		c->zq_count--;
	}
}
