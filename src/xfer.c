/* Transfer protocols: eager sends, rendezvous, credit returns, matching. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "proto.h"


/* Our credit return and window for the next message. A grown window may
 * have promised more receive slots: they are posted before the message
 * that advertises them can leave. */
static int advertise(struct zc__ep *e, uint32_t *ack, uint16_t *window)
{
	int rc;

	zc__credit_advertise(&e->cr, ack, window);
	rc = zc__rxpool_fill(e->qp.rx);
	return rc ? zc__qp_fail(&e->qp, rc) : 0;
}

static int fill_hdr(struct zc__ep *e, uint8_t *buf, uint8_t type, uint32_t len, uint32_t id)
{
	struct zc__hdr h = {.version = ZC_WIRE_VERSION, .type = type, .len = len, .id = id};
	int rc = advertise(e, &h.ack, &h.window);

	zc__hdr_encode(buf, &h);
	return rc;
}

/* A data message: its credit promised a slot for the peer's reply. */
static int take_credit(struct zc__ep *e)
{
	int rc = zc__credit_take(&e->cr);

	if (!rc && (rc = zc__rxpool_fill(e->qp.rx)))
		return zc__qp_fail(&e->qp, rc);
	return rc;
}

int zc__send_ctl(struct zc__ep *e, uint8_t type, uint32_t id, uint32_t inv_rkey, bool fence)
{
	uint8_t hdr[ZC_HDR_SIZE];
	int i = zc__sreq_get(&e->qp), rc;

	if (i < 0)
		return -EAGAIN;
	if ((rc = fill_hdr(e, hdr, type, 0, id))) {
		zc__sreq_put(&e->qp, (uint32_t)i);
		return rc;
	}
	if (type == ZC_MSG_CREDIT)
		e->ctx->stats.credit_msgs++;
	/* nothing waits for a credit return or a FIN to complete; a CLOSE's
	 * completion ends the linger */
	e->qp.sreq[i].quiet = type == ZC_MSG_CREDIT || type == ZC_MSG_FIN;
	e->qp.sreq[i].fence = fence;
	return zc__qp_send(&e->qp, NULL, i, hdr, ZC_HDR_SIZE, NULL, 0, inv_rkey ? IBV_WR_SEND_WITH_INV : IBV_WR_SEND,
			   inv_rkey);
}

static void zq_drain(struct zc__ep *e);
static void reads_progress(struct zc__ep *e);
static void adv_flush(struct zc__ep *e);
static int ring_grow(void **arr, uint32_t *head, uint32_t count, uint32_t *cap, uint32_t max, size_t elem);

/* A data message's slot is free again: repost it and owe the peer a credit. */
static void release_slot(struct zc__ep *e, uint32_t slot)
{
	zc__credit_release(&e->cr);
	zc__qp_post_recv(&e->qp, slot);
}

/* Sends what control traffic is owed: queued FINs, then a credit return.
 * Callers that consumed data call it too, so an idle peer waiting for
 * credits hears about them without any traffic of its own. */
void zc__flush_ctl(struct zc__ep *e)
{
	zq_drain(e);
	while (e->fin_count && zc__sreq_avail(&e->qp, 1)) {
		struct zc__fin f = e->fin_queue[e->fin_head];

		e->fin_head = (e->fin_head + 1) % e->items_cap;
		e->fin_count--;
		release_slot(e, f.slot);
		zc__send_ctl(e, ZC_MSG_FIN, f.id, f.rkey, false);
	}
	adv_flush(e); /* an ADV returns credits too */
	if (zc__credit_update_due(&e->cr) && zc__sreq_avail(&e->qp, 1))
		zc__send_ctl(e, ZC_MSG_CREDIT, 0, 0, false);
	/* Room may have freed for READs waiting for it. */
	reads_progress(e);
	zc__ep_notify(e, ZC_EP_SENDABLE); /* events hook */
}

/* A zero-copy eager send's buffer was copied at once; it completes when
 * its SEND does. */
static void eager_done(struct zc__qp *q, struct zc__sreq *s, int status)
{
	struct zc__ep *e = zc__container_of(q, struct zc__ep, qp);

	zc__ctx_complete(e->ctx, e->conn, s->token, s->op, status, status ? 0 : s->len);
}

static void flush_ctl_hook(struct zc__qp *q)
{
	zc__flush_ctl(zc__container_of(q, struct zc__ep, qp));
}

int zc__send_eager(struct zc__ep *e, const void *buf, size_t len, uint8_t op, uint64_t token)
{
	uint32_t prev_ack = e->cr.advertised, ack;
	uint16_t window;
	struct zc__sreq *s;
	int i, rc;

	if (!zc__credit_avail(&e->cr) || (i = zc__sreq_get(&e->qp)) < 0)
		return -EAGAIN;
	if ((rc = take_credit(e)) || (rc = advertise(e, &ack, &window))) {
		zc__sreq_put(&e->qp, (uint32_t)i);
		return rc;
	}
	s = &e->qp.sreq[i];
	if (op) {
		s->done = eager_done;
		s->op = op;
		s->token = token;
		s->len = len;
	} else {
		s->quiet = true; /* a copy: the caller has its buffer back */
	}
	if (len <= e->ctx->caps.max_inline)
		e->ctx->stats.inline_msgs++;
	else
		e->ctx->stats.eager_msgs++;
	/* Inline, or one copy into a registered staging slot: cheaper than
	 * registering a small buffer, and the caller gets it back at once.
	 * The header rides in the immediate data (wire.h): at most the
	 * messages received since our last one were released, fewer than
	 * ZC_CREDITS_MAX. */
	return zc__qp_send(&e->qp, NULL, i, NULL, 0, buf, (uint32_t)len, IBV_WR_SEND_WITH_IMM,
			   zc__imm_encode(ack - prev_ack, window));
}

static int free_rndv(struct zc__ep *e)
{
	uint32_t i;

	for (i = 0; i < e->n_rndv; i++)
		if (e->rndv[i].owner == ZC_RNDV_FREE)
			return (int)i;
	return -1;
}

static void rndv_finish(struct zc__ep *e, struct zc__rndv *r, int status);

/* The entry is in use from here: its message is going out. */
static void rndv_start(struct zc__rndv *r, uint8_t owner, bool put, uint64_t token, uint64_t len)
{
	r->owner = owner;
	r->put = put;
	r->done = false;
	r->status = 0;
	r->token = token;
	r->len = len;
}

/* Gives back the send requests a failed post took (those not -1). */
static void sreqs_put(struct zc__ep *e, int a, int b)
{
	if (a >= 0)
		zc__sreq_put(&e->qp, (uint32_t)a);
	if (b >= 0)
		zc__sreq_put(&e->qp, (uint32_t)b);
}

static void rndv_release(struct zc__ep *e, struct zc__rndv *r)
{
	zc__entry_put(e->ctx, r->entry);
	r->entry = NULL;
	if (r->fallback_mr)
		zc__dereg_mr(e->ctx, r->fallback_mr);
	r->fallback_mr = NULL;
}

/* Messages (EAGER, RTS, PUT: those that become items) sent and received:
 * the data messages of the credit count, less the ADVs. An ADV names the
 * message its buffer takes by this count. */
static uint32_t msgs_sent(const struct zc__ep *e)
{
	return e->cr.sent - e->advs_sent;
}

static uint32_t msgs_recvd(const struct zc__ep *e)
{
	return e->cr.recvd - e->advs_recvd;
}

/* Whether our message seq has gone already. */
static bool msg_gone(const struct zc__ep *e, uint32_t seq)
{
	return (int32_t)(seq - msgs_sent(e)) < 0;
}

/* Drops the peer's ADVs for data messages already sent: they lost the
 * race to the message, which went another way. */
static void adv_drop_stale(struct zc__ep *e)
{
	while (e->adv_count && msg_gone(e, e->advs[e->adv_head].seq)) {
		e->adv_head = (e->adv_head + 1) % e->adv_cap;
		e->adv_count--;
	}
}

/* The peer posted buffers for our data messages h->id, h->id + 1, ...
 * (an ADV of byte_len bytes at msg). They are kept, in order, until those
 * messages go. */
static int adv_store(struct zc__ep *e, const struct zc__hdr *h, const void *msg, size_t byte_len)
{
	uint32_t n = zc__adv_count(byte_len), i;
	int rc;

	if (e->adv_seen && (int32_t)(h->id - e->adv_last) <= 0)
		return zc__err(-ZC_EPEERPROTO, "peer advertised buffers out of order (message %u after %u)", h->id,
			       e->adv_last);
	e->adv_seen = true;
	e->adv_last = h->id + n - 1;
	adv_drop_stale(e);
	for (i = 0; i < n; i++) {
		struct zc__rts d;

		if (msg_gone(e, h->id + i))
			continue;
		if (e->adv_count == e->adv_cap &&
		    (rc = ring_grow((void **)&e->advs, &e->adv_head, e->adv_count, &e->adv_cap, e->adv_max,
				    sizeof(*e->advs))))
			return rc == -ENOSPC ? zc__err(-ZC_EPEERPROTO,
						       "peer advertised more buffers than it may post (%u)", e->adv_max)
					     : zc__err(rc, "out of memory for the peer's buffer advertisements");
		zc__adv_desc(msg, i, &d);
		e->advs[(e->adv_head + e->adv_count++) % e->adv_cap] =
			(struct zc__adv){.seq = h->id + i, .rkey = d.rkey, .addr = d.addr, .len = d.len};
	}
	return 0;
}

/* The peer's buffer for our next data message, if it takes len bytes in
 * one WRITE. */
static const struct zc__adv *adv_for(struct zc__ep *e, size_t len)
{
	const struct zc__adv *a;

	adv_drop_stale(e);
	if (!e->adv_count)
		return NULL;
	a = &e->advs[e->adv_head];
	return a->seq == msgs_sent(e) && len <= a->len && len <= e->ctx->caps.max_msg_size ? a : NULL;
}

static void put_done(struct zc__qp *q, struct zc__sreq *s, int status)
{
	struct zc__ep *e = zc__container_of(q, struct zc__ep, qp);
	struct zc__rndv *r = s->arg;

	/* A failed connection may have finished it already (rndv_fail_all). */
	if (r->owner != ZC_RNDV_FREE && !r->done && r->gen == (uint16_t)s->len)
		rndv_finish(e, r, status);
}

/* One hop: writes buf into the peer's advertised buffer, then a PUT that
 * invalidates the buffer's window, both with one doorbell. The PUT's
 * completion says the bytes are placed: the send is over. */
static int send_put(struct zc__ep *e, const struct zc__adv *a, const void *buf, size_t len, struct zc_mr *mr,
		    uint8_t owner, uint64_t token, uint32_t *out)
{
	struct ibv_sge sge = {.addr = (uintptr_t)buf, .length = (uint32_t)len};
	struct ibv_send_wr wr = {.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_RDMA_WRITE,
				 .wr.rdma = {.remote_addr = a->addr, .rkey = a->rkey}};
	uint32_t seq = a->seq, rkey = a->rkey;
	uint8_t hdr[ZC_HDR_SIZE];
	struct zc__rndv *r;
	int ri, rw, rs, rc;

	if (!zc__credit_avail(&e->cr) || !zc__sreq_avail(&e->qp, 2) || (ri = free_rndv(e)) < 0)
		return -EAGAIN;
	r = &e->rndv[ri];
	if ((rc = zc__lkey_for(e->ctx, buf, len, mr, false, &sge.lkey, &r->entry)))
		return rc;
	rw = zc__sreq_get(&e->qp);
	rs = zc__sreq_get(&e->qp);
	r->gen++;
	if (rw < 0 || rs < 0 || (rc = take_credit(e)) || (rc = fill_hdr(e, hdr, ZC_MSG_PUT, (uint32_t)len, seq))) {
		sreqs_put(e, rs, rw);
		rndv_release(e, r);
		return rc ? rc : -EAGAIN;
	}
	/* take_credit counted the PUT: a is stale from here */
	wr.wr_id = (uintptr_t)&e->qp.sreq[rw].wr;
	e->qp.sreq[rw].quiet = true;
	e->qp.sreq[rs].done = put_done;
	e->qp.sreq[rs].arg = r;
	e->qp.sreq[rs].len = r->gen;
	rndv_start(r, owner, true, token, len);
	e->ctx->stats.put_msgs++;
	*out = (uint32_t)ri;
	rc = zc__qp_send(&e->qp, &wr, rs, hdr, ZC_HDR_SIZE, NULL, 0, IBV_WR_SEND_WITH_INV, rkey);
	if (!rc && owner == ZC_RNDV_COPY)
		r->copy = (void *)buf;
	return rc;
}

/* Exposes buf to the peer for one RDMA READ and sends it the RTS. The
 * window's bind rides in the RTS's doorbell and leaves unsignaled: the
 * RTS's completion retires it, and a failed bind completes with its error
 * all the same (which fails the QP). */
int zc__send_rndv(struct zc__ep *e, const void *buf, size_t len, struct zc_mr *mr, uint8_t owner, uint64_t token,
		 uint32_t *out)
{
	struct zc_ctx *ctx = e->ctx;
	bool window = ctx->caps.mw_type2 && !e->mr_fallback;
	struct zc__rts rts = {.addr = (uintptr_t)buf, .len = len};
	struct ibv_send_wr bind, *first = NULL;
	struct zc__rndv *r;
	struct ibv_mr *local = NULL;
	uint8_t msg[ZC_RTS_SIZE];
	const struct zc__adv *a = adv_for(e, len);
	int ri, rs, rb = -1, rc, access = 0;

	if (a)
		return send_put(e, a, buf, len, mr, owner, token, out);
	if (!zc__credit_avail(&e->cr) || !zc__sreq_avail(&e->qp, 2) || (ri = free_rndv(e)) < 0 ||
	    (window && ctx->bind_needs_idle_sq && !zc__qp_sq_idle(&e->qp)))
		return -EAGAIN;
	r = &e->rndv[ri];
	if (window) {
		rc = zc__reg_for(ctx, buf, len, mr, false, &local, &access, &r->entry);
		if (rc)
			return rc;
		/* Read-only pages cannot carry a window: fall back for this one. */
		if (!(access & IBV_ACCESS_MW_BIND)) {
			rndv_release(e, r);
			window = false;
		}
	}
	if (window) {
		if (!r->mw && !(r->mw = ibv_alloc_mw(ctx->pd, IBV_MW_TYPE_2))) {
			rndv_release(e, r);
			return zc__err(-ENOMEM, "ibv_alloc_mw: %s", strerror(errno));
		}
		if ((rb = zc__sreq_get(&e->qp)) < 0) {
			rndv_release(e, r);
			return -EAGAIN;
		}
		r->rkey = ibv_inc_rkey(r->mw->rkey);
		bind = (struct ibv_send_wr){
			.wr_id = (uintptr_t)&e->qp.sreq[rb].wr, .opcode = IBV_WR_BIND_MW,
			.bind_mw = {.mw = r->mw, .rkey = r->rkey,
				    .bind_info = {.mr = local, .addr = (uintptr_t)buf, .length = len,
						  .mw_access_flags = IBV_ACCESS_REMOTE_READ}},
		};
		e->qp.sreq[rb].quiet = true;
		first = &bind;
		rts.flags = ZC_RTS_F_INV;
	} else {
		if (!ctx->logged_fallback && !local) {
			zc__log(&ctx->opts, ZC_LOG_WARN, "%s: %s; rendezvous exposes per-transfer MRs instead of memory windows",
			       ctx->caps.device, e->mr_fallback ? "mr_fallback requested" : "no type-2 memory windows");
			ctx->logged_fallback = true;
		}
		rc = 0;
		r->fallback_mr = zc__reg_mr(ctx, (void *)buf, len, IBV_ACCESS_REMOTE_READ, &rc);
		if (!r->fallback_mr)
			return rc;
		r->rkey = r->fallback_mr->rkey;
		ctx->stats.mr_fallbacks++;
	}
	rts.rkey = r->rkey;
	rc = (rs = zc__sreq_get(&e->qp)) < 0 ? -EAGAIN : 0;
	r->gen++;
	/* A failure of these two failed the QP already. */
	if (rc || (rc = take_credit(e)) ||
	    (rc = fill_hdr(e, msg, ZC_MSG_RTS, 0, (uint32_t)ri | (uint32_t)r->gen << 16))) {
		sreqs_put(e, rs, rb);
		rndv_release(e, r);
		return rc;
	}
	rndv_start(r, owner, false, token, len);
	zc__rts_encode(msg + ZC_HDR_SIZE, &rts);
	ctx->stats.rndv_msgs++;
	ctx->stats.rndv_bytes += len;
	*out = (uint32_t)ri;
	/* Nothing waits for the RTS's completion (the FIN says the transfer
	 * is over), but on rxe the next bind waits for an idle queue. */
	e->qp.sreq[rs].quiet = !ctx->bind_needs_idle_sq;
	/* From here a failure fails the QP, whose failure hands the entry
	 * back (ep_failed). */
	rc = zc__qp_send(&e->qp, first, rs, msg, ZC_RTS_SIZE, NULL, 0, IBV_WR_SEND, 0);
	if (!rc && first) {
		r->mw->rkey = r->rkey;
		ctx->stats.mw_binds++;
	}
	/* The entry owns a copy only once it went out: until then a failure
	 * leaves it with the caller. */
	if (!rc && owner == ZC_RNDV_COPY)
		r->copy = (void *)buf;
	return rc;
}

static void rndv_finish(struct zc__ep *e, struct zc__rndv *r, int status)
{
	/* Without the peer's invalidating FIN the window is still bound, and
	 * rxe refuses to deregister a region under a bound window: revoke it
	 * by deallocating it (a new one is allocated when needed). */
	if (status && r->mw && !r->put) {
		zc__dealloc_mw(e->ctx, r->mw);
		r->mw = NULL;
	}
	rndv_release(e, r);
	if (r->owner == ZC_RNDV_USER) {
		zc__ctx_complete(e->ctx, e->conn, r->token, ZC_OP_SEND, status, status ? 0 : r->len);
		r->owner = ZC_RNDV_FREE;
	} else if (r->owner == ZC_RNDV_COPY) {
		free(r->copy);
		r->copy = NULL;
		r->owner = ZC_RNDV_FREE;
	} else {
		r->done = true; /* the blocked sender frees it */
		r->status = status;
	}
}

static void rndv_fail_all(struct zc__ep *e, int err)
{
	uint32_t i;

	for (i = 0; e->rndv && i < e->n_rndv; i++)
		if (e->rndv[i].owner != ZC_RNDV_FREE && !e->rndv[i].done)
			rndv_finish(e, &e->rndv[i], err);
}

static int on_fin(struct zc__ep *e, const struct zc__hdr *h, const struct ibv_wc *wc)
{
	uint32_t idx = h->id & 0xffff;
	struct zc__rndv *r = idx < e->n_rndv ? &e->rndv[idx] : NULL;

	if (!r || r->owner == ZC_RNDV_FREE || r->done || r->put || r->gen != (uint16_t)(h->id >> 16))
		return zc__err(-ZC_EPEERPROTO, "peer finished rendezvous %#x, which is not outstanding", h->id);
	if (r->mw) {
		/* rxe reports the invalidation as wc_flags bit 0x4 rather than
		 * IBV_WC_WITH_INV; invalidated_rkey is right on both. */
		bool inv = wc->wc_flags & (IBV_WC_WITH_INV | 0x4);

		if (!r->fallback_mr && (!inv || wc->invalidated_rkey != r->rkey))
			return zc__err(-ZC_EPEERPROTO, "peer's FIN did not invalidate the window it was given");
	}
	rndv_finish(e, r, 0);
	return 0;
}

static void item_remove(struct zc__ep *e)
{
	e->item_head = (e->item_head + 1) % e->items_cap;
	e->item_count--;
}

/* Drops the head item of a failed connection, its slot back in the pool. */
static void item_drop(struct zc__ep *e)
{
	struct zc__item *it = zc__item_head(e);

	if (it->kind != ZC_ITEM_CLOSE && !it->fin_sent)
		zc__qp_post_recv(&e->qp, it->slot);
	item_remove(e);
}

void zc__item_pop(struct zc__ep *e)
{
	struct zc__item *it = zc__item_head(e);

	if (it->kind != ZC_ITEM_CLOSE)
		release_slot(e, it->slot);
	item_remove(e);
}

/* The key an RTS's FIN invalidates: its window (0: a per-transfer MR,
 * which the sender deregisters itself). */
static uint32_t fin_rkey(const struct zc__item *it)
{
	return it->inv ? it->rkey : 0;
}

/* The head RTS is fully consumed: free its slot, then FIN (which carries
 * the credit, keeping control acks strictly increasing), unless the FIN
 * went behind the READs already. */
static void finish_rts(struct zc__ep *e, struct zc__item *it)
{
	struct zc__fin f = {.id = it->id, .rkey = fin_rkey(it), .slot = it->slot};
	bool sent = it->fin_sent;

	item_remove(e);
	if (!sent)
		e->fin_queue[(e->fin_head + e->fin_count++) % e->items_cap] = f;
	zc__flush_ctl(e);
}

/* A blocked reader's READs, all posted, take the rest of the RTS: its FIN
 * goes now, fenced, so the NIC sends it once they have completed and never
 * if one fails (the QP is then in error). The peer hears of the end without
 * waiting for us to reap the READs, and our next sends wait behind them.
 * The slot is free at once: its RTS was copied into the item. Posted
 * buffers' rounds do without: a fence would hold the next round's READs
 * behind this one's. */
static void fin_behind_reads(struct zc__ep *e, struct zc__item *it)
{
	if (it->reader != ZC_READER_SYNC || it->fin_sent || it->status || it->posted != it->want ||
	    it->off + it->want != it->len || !zc__sreq_avail(&e->qp, 1))
		return;
	it->fin_sent = true;
	release_slot(e, it->slot);
	zc__send_ctl(e, ZC_MSG_FIN, it->id, fin_rkey(it), true);
}

/* The k-th posted buffer, which takes the k-th item. */
static struct zc__posted *posted_at(struct zc__ep *e, uint32_t k)
{
	return &e->posted[(e->posted_head + k) % e->posted_cap];
}

/* The posted buffer that the next arriving data message takes. */
static struct zc__posted *posted_next(struct zc__ep *e)
{
	return e->item_count < e->posted_count ? posted_at(e, e->item_count) : NULL;
}

/* A PUT: the peer wrote its data message h->id into the buffer advertised
 * for it and invalidated the buffer's window. Checked here, so its item
 * only has to complete that buffer when its turn comes. */
static int put_arrived(struct zc__ep *e, const struct zc__hdr *h, const struct ibv_wc *wc)
{
	struct zc__posted *p = posted_next(e);

	if (!p || p->adv != ZC_ADV_SENT || p->seq != h->id || h->id != msgs_recvd(e) - 1)
		return zc__err(-ZC_EPEERPROTO, "peer wrote its message %u into no buffer advertised for it", h->id);
	if (h->len > p->len)
		return zc__err(-ZC_EPEERPROTO, "peer wrote %u bytes into a buffer of %zu", h->len, p->len);
	if (!(wc->wc_flags & e->ctx->wc_inv_flags) || wc->invalidated_rkey != p->rkey)
		return zc__err(-ZC_EPEERPROTO, "peer's PUT did not invalidate the window it was given");
	p->adv = ZC_ADV_WRITTEN;
	return 0;
}

static int push_item(struct zc__ep *e, const struct zc__item *src)
{
	if (e->item_count == e->items_cap)
		return zc__err(-ZC_EPEERPROTO, "peer sent more messages than it had credits for");
	e->items[(e->item_head + e->item_count++) % e->items_cap] = *src;
	return 0;
}

static void ep_recv(struct zc__qp *q, uint32_t slot, const struct ibv_wc *wc)
{
	struct zc__ep *e = zc__container_of(q, struct zc__ep, qp);
	struct zc__item it = {.slot = slot};
	struct zc__hdr h;
	struct zc__rts rts;
	int rc = wc->wc_flags & IBV_WC_WITH_IMM
			 ? zc__imm_decode(wc->imm_data, wc->byte_len, e->eager_in, e->cr.peer_acked, &h)
			 : zc__msg_decode(zc__qp_rx_slot(&e->qp, slot), wc->byte_len, &h, &rts);

	if (!rc)
		rc = zc__credit_on_ack(&e->cr, h.ack, h.window);
	if (!rc && zc__msg_is_data(h.type))
		rc = zc__credit_on_data(&e->cr);
	/* The end of the peer's stream is its last data-path message: data or
	 * a second CLOSE/SHUTDOWN after it breaks the protocol. */
	if (!rc && (e->close_received || e->shut_received) &&
	    (zc__msg_is_data(h.type) || h.type == ZC_MSG_CLOSE || h.type == ZC_MSG_SHUTDOWN))
		rc = zc__err(-ZC_EPEERPROTO, "peer sent message type %u after the end of its stream", h.type);
	if (rc) {
		zc__qp_post_recv(&e->qp, slot);
		zc__qp_fail(&e->qp, rc);
		return;
	}
	switch (h.type) {
	case ZC_MSG_EAGER:
		it.kind = ZC_ITEM_EAGER;
		it.len = h.len;
		rc = push_item(e, &it);
		break;
	case ZC_MSG_RTS:
		it.kind = ZC_ITEM_RTS;
		it.len = rts.len;
		it.raddr = rts.addr;
		it.rkey = rts.rkey;
		it.inv = rts.flags & ZC_RTS_F_INV;
		it.id = h.id;
		rc = push_item(e, &it);
		break;
	case ZC_MSG_ADV:
		/* consumed at once: its credit goes back with our next header */
		e->advs_recvd++;
		rc = adv_store(e, &h, zc__qp_rx_slot(&e->qp, slot), wc->byte_len);
		release_slot(e, slot);
		break;
	case ZC_MSG_PUT:
		if ((rc = put_arrived(e, &h, wc))) {
			zc__qp_post_recv(&e->qp, slot);
			break;
		}
		it.kind = ZC_ITEM_PUT;
		it.len = h.len;
		it.id = h.id;
		rc = push_item(e, &it);
		break;
	case ZC_MSG_FIN:
		rc = on_fin(e, &h, wc);
		zc__qp_post_recv(&e->qp, slot);
		break;
	case ZC_MSG_CREDIT:
		zc__qp_post_recv(&e->qp, slot);
		break;
	case ZC_MSG_CLOSE:
	case ZC_MSG_SHUTDOWN:
		if (h.type == ZC_MSG_CLOSE)
			e->close_received = true;
		else
			e->shut_received = true;
		it.kind = ZC_ITEM_CLOSE;
		zc__qp_post_recv(&e->qp, slot);
		rc = push_item(e, &it);
		break;
	}
	if (rc)
		zc__qp_fail(&e->qp, rc);
	else
		zc__match_posted(e);
	if (!rc && it.kind)
		zc__ep_notify(e, ZC_EP_ARRIVED); /* events hook */
}

static void read_done(struct zc__qp *q, struct zc__sreq *s, int status);

/* Posts READ pieces of the round while READ depth and send-queue room last;
 * one send request stays free for the FIN and credit traffic. A failed
 * post fails the round. */
static void post_reads(struct zc__ep *e, struct zc__item *it)
{
	uint64_t max = e->ctx->read_chunk;

	while (it->posted < it->want && e->reads_inflight < e->max_reads && zc__sreq_avail(&e->qp, 2)) {
		uint64_t n = it->want - it->posted < max ? it->want - it->posted : max;
		struct ibv_sge sge = {.addr = (uintptr_t)(it->dst + it->posted), .length = (uint32_t)n,
				      .lkey = it->dst_lkey};
		int i = zc__sreq_get(&e->qp);
		struct ibv_send_wr wr = {.wr_id = (uintptr_t)&e->qp.sreq[i].wr, .sg_list = &sge, .num_sge = 1,
					 .opcode = IBV_WR_RDMA_READ,
					 .wr.rdma = {.remote_addr = it->raddr + it->off + it->posted, .rkey = it->rkey}};

		e->qp.sreq[i].done = read_done;
		e->qp.sreq[i].arg = it;
		if (zc__qp_post_send(&e->qp, &wr)) {
			zc__sreq_put(&e->qp, (uint32_t)i);
			it->status = e->qp.err;
			return;
		}
		it->posted += n;
		it->reads++;
		e->reads_inflight++;
	}
	fin_behind_reads(e, it);
}

/* Withdraws what a posted buffer's ADV exposed, before the buffer goes
 * back to the application: a window the PUT invalidated is kept for the
 * next ADV; one still bound (the message came another way, or the
 * connection failed) is revoked by deallocating it. */
static void posted_unexpose(struct zc__ep *e, struct zc__posted *p)
{
	if (p->mw) {
		if (p->adv == ZC_ADV_WRITTEN)
			e->mw_spare[e->n_mw_spare++] = p->mw;
		else
			zc__dealloc_mw(e->ctx, p->mw);
		p->mw = NULL;
	}
}

static void complete_posted(struct zc__ep *e, int status, size_t len)
{
	struct zc__posted *p = posted_at(e, 0);

	posted_unexpose(e, p);
	zc__ctx_complete(e->ctx, e->conn, p->token, ZC_OP_RECV, status, len);
	e->posted_head = (e->posted_head + 1) % e->posted_cap;
	e->posted_count--;
	if (e->posted_adv)
		e->posted_adv--;
}

/* Binds windows with remote write over exactly the posted buffers k ..
 * k + n - 1 (consecutive: the peer's messages seq, seq + 1, ...) and sends
 * one ADV naming them all, with one doorbell (the binds unsignaled, as an
 * RTS's). Returns how many were offered (the run stops at a buffer that
 * cannot carry a window: 0 if the first cannot), or the QP's failure. */
static int adv_post(struct zc__ep *e, uint32_t k, uint32_t n)
{
	struct zc_ctx *ctx = e->ctx;
	uint32_t seq = msgs_recvd(e) + (k - e->item_count), i;
	struct ibv_send_wr bind[ZC_ADV_MAX];
	uint8_t msg[ZC_ADV_SIZE(ZC_ADV_MAX)];
	int rb[ZC_ADV_MAX], rs, rc;

	for (i = 0; i < n; i++) {
		struct zc__posted *p = posted_at(e, k + i);
		struct zc__rts d = {.addr = (uintptr_t)p->buf, .len = p->len};
		struct zc__rcache_entry *none; /* p->mr is given */
		struct ibv_mr *local = NULL;
		int access = 0;

		if (zc__reg_for(ctx, p->buf, p->len, p->mr, true, &local, &access, &none) ||
		    !(access & IBV_ACCESS_MW_BIND) ||
		    !(p->mw = e->n_mw_spare ? e->mw_spare[--e->n_mw_spare] : ibv_alloc_mw(ctx->pd, IBV_MW_TYPE_2)))
			break;
		rb[i] = zc__sreq_get(&e->qp); /* adv_flush saw room for all */
		p->rkey = d.rkey = ibv_inc_rkey(p->mw->rkey);
		bind[i] = (struct ibv_send_wr){
			.wr_id = (uintptr_t)&e->qp.sreq[rb[i]].wr, .opcode = IBV_WR_BIND_MW,
			.bind_mw = {.mw = p->mw, .rkey = p->rkey,
				    .bind_info = {.mr = local, .addr = (uintptr_t)p->buf, .length = p->len,
						  .mw_access_flags = IBV_ACCESS_REMOTE_WRITE}},
		};
		if (i)
			bind[i - 1].next = &bind[i];
		e->qp.sreq[rb[i]].quiet = true;
		zc__rts_encode(msg + ZC_ADV_SIZE(i), &d);
	}
	n = i;
	if (!n)
		return 0;
	rs = zc__sreq_get(&e->qp);
	if (rs < 0 || (rc = take_credit(e)) || (rc = fill_hdr(e, msg, ZC_MSG_ADV, 0, seq))) {
		sreqs_put(e, rs, -1);
		for (i = 0; i < n; i++) {
			struct zc__posted *p = posted_at(e, k + i);

			sreqs_put(e, rb[i], -1);
			e->mw_spare[e->n_mw_spare++] = p->mw; /* never bound */
			p->mw = NULL;
		}
		return rs < 0 ? -EAGAIN : rc;
	}
	e->advs_sent++; /* take_credit counted it as a data message */
	for (i = 0; i < n; i++) {
		posted_at(e, k + i)->seq = seq + i;
		posted_at(e, k + i)->adv = ZC_ADV_SENT;
	}
	e->qp.sreq[rs].quiet = !ctx->bind_needs_idle_sq; /* as an RTS's */
	if ((rc = zc__qp_send(&e->qp, bind, rs, msg, ZC_ADV_SIZE(n), NULL, 0, IBV_WR_SEND, 0)))
		return rc;
	for (i = 0; i < n; i++)
		posted_at(e, k + i)->mw->rkey = posted_at(e, k + i)->rkey;
	ctx->stats.mw_binds += n;
	ctx->stats.adv_msgs += n;
	return (int)n;
}

/* Whether posted buffer p, the k-th, is worth an ADV: its message has not
 * arrived, no eager message fills it, windows are allowed, and data may
 * still flow both ways (an ADV is a data message of ours). Only a buffer
 * in a zc_mr: a cache registration made now would pin the pages mapped
 * now, and the header promises that a buffer without one is registered
 * when its message arrives (so a remapped buffer gets the new pages). */
static bool adv_wanted(const struct zc__ep *e, const struct zc__posted *p, uint32_t k)
{
	return p->mr && e->ctx->caps.mw_type2 && !e->mr_fallback && p->len > e->eager_max && k >= e->item_count &&
	       !e->close_sent && !e->close_received && !e->shut_received;
}

/* Offers the posted buffers whose messages have not arrived to the peer
 * for a one-hop write, in posting order, up to ZC_ADV_MAX per ADV
 * (docs/protocol.md 3.3). A shortage of credits or send requests, or (rxe)
 * a busy send queue, waits for the next flush; the buffers posted
 * meanwhile go together then. So do buffers posted while ZC_ADV_MAX
 * offered ones still wait for their messages. */
static void adv_flush(struct zc__ep *e)
{
	while (e->posted_adv < e->posted_count && !e->qp.dead) {
		uint32_t k = e->posted_adv, n = 0;
		int rc;

		while (n < ZC_ADV_MAX && k + n < e->posted_count && adv_wanted(e, posted_at(e, k + n), k + n))
			n++;
		/* With a full ADV's worth offered ahead, let more buffers come
		 * for the next: on rxe every ADV waits for an idle send queue. */
		if (n && n < ZC_ADV_MAX && k + n == e->posted_count && k >= e->item_count + ZC_ADV_MAX)
			return;
		if (n && (!zc__credit_avail(&e->cr) || !zc__sreq_avail(&e->qp, n + 1) ||
			  (e->ctx->bind_needs_idle_sq && !zc__qp_sq_idle(&e->qp))))
			return;
		rc = n ? adv_post(e, k, n) : 0;
		if (rc < 0)
			return; /* the QP failed, or no send request after all */
		if (!rc) {
			posted_at(e, k)->adv = ZC_ADV_NONE;
			rc = 1;
		}
		e->posted_adv += (uint32_t)rc;
	}
}

void zc__read_advance(struct zc__ep *e, struct zc__item *it)
{
	if (!it || it->rstate == ZC_READ_IDLE || it->rstate == ZC_READ_DONE)
		return;
	if (e->qp.dead && !it->status)
		it->status = e->qp.err ? e->qp.err : -ECONNABORTED;
	if (it->rstate == ZC_READ_POSTING) {
		if (!it->status)
			post_reads(e, it);
		/* A failed post fails the QP, whose failure advanced the round
		 * already (ep_failed). */
		if (it->rstate != ZC_READ_POSTING)
			return;
		if (it->status || it->posted == it->want)
			it->rstate = ZC_READ_DRAINING;
	}
	if (it->rstate == ZC_READ_DRAINING && !it->reads)
		it->rstate = ZC_READ_DONE;
}

int zc__item_start_read(struct zc__ep *e, struct zc__item *it, void *buf, size_t len, struct zc_mr *mr,
		       uint8_t reader)
{
	int rc = zc__lkey_for(e->ctx, buf, len, mr, true, &it->dst_lkey, &it->dst_entry);

	if (rc)
		return rc;
	it->dst = buf;
	it->want = len;
	it->posted = 0;
	it->status = 0;
	it->reader = reader;
	it->rstate = ZC_READ_POSTING;
	zc__read_advance(e, it);
	return 0;
}

/* Closes a finished READ round: the bytes count as consumed, and a fully
 * read RTS is finished (slot freed, FIN sent). */
void zc__item_end_read(struct zc__ep *e, struct zc__item *it)
{
	zc__entry_put(e->ctx, it->dst_entry);
	it->dst_entry = NULL;
	it->rstate = ZC_READ_IDLE;
	if (it->status)
		return;
	it->off += it->want;
	if (it->off == it->len)
		finish_rts(e, it);
}

static void read_done(struct zc__qp *q, struct zc__sreq *s, int status)
{
	struct zc__ep *e = zc__container_of(q, struct zc__ep, qp);
	struct zc__item *it = s->arg;

	e->reads_inflight--;
	it->reads--;
	if (status && !it->status)
		it->status = status;
	reads_progress(e);
}

/*
 * Buffers posted with zc_recv_zc() take arrived messages in order, the
 * k-th posted buffer the k-th item. The first e->rounds items have a READ
 * round into their buffer: their READs are posted in item order as READ
 * depth and send-queue room allow, complete in that order (one QP), and
 * the rounds end in that order, so buffers complete in arrival order
 * while several messages are read at once.
 */
static struct zc__item *item_at(struct zc__ep *e, uint32_t k)
{
	return &e->items[(e->item_head + k) % e->items_cap];
}

/* Posts what the rounds may, in order: a round still posting holds back
 * the ones after it. */
static void rounds_advance(struct zc__ep *e)
{
	for (uint32_t k = 0; k < e->rounds; k++) {
		struct zc__item *it = item_at(e, k);

		zc__read_advance(e, it);
		if (it->rstate == ZC_READ_POSTING)
			return;
	}
}

/* Ends the rounds at the head that are over: each buffer goes back to the
 * application, and the item is finished (FIN) or, after a failure, dropped. */
static void rounds_end(struct zc__ep *e)
{
	struct zc__item *it;

	while (e->rounds && (it = zc__item_head(e))->rstate == ZC_READ_DONE) {
		int st = it->status;

		e->rounds--;
		complete_posted(e, st, st ? 0 : it->want);
		zc__item_end_read(e, it);
		if (st) {
			item_drop(e);
			zc__qp_fail(&e->qp, st);
		}
	}
}

/* Gives arrived messages to posted buffers not yet matched. A read starts
 * a round; the rest (an eager copy, a CLOSE, a message too long, a buffer
 * that cannot be registered) completes at once, so only in its turn, when
 * no round is ahead of it. */
static void rounds_match(struct zc__ep *e)
{
	while (!e->qp.dead && e->rounds < e->posted_count && e->rounds < e->item_count) {
		struct zc__item *it = item_at(e, e->rounds);
		struct zc__posted *p = posted_at(e, e->rounds);
		uint64_t left = it->len - it->off;
		int rc;

		if (it->rstate != ZC_READ_IDLE)
			return;
		/* a round that cannot post all its READs yet holds back the next */
		if (e->rounds && item_at(e, e->rounds - 1)->rstate == ZC_READ_POSTING)
			return;
		if (it->kind == ZC_ITEM_RTS && left <= p->len) {
			/* counted first: a failure inside hands it back as a round */
			e->rounds++;
			rc = zc__item_start_read(e, it, p->buf, left, p->mr, ZC_READER_POSTED);
			if (!rc)
				continue;
			e->rounds--;
			if (e->rounds)
				return;
			/* The buffer fails alone; the message goes to the next one. */
			complete_posted(e, rc, 0);
			continue;
		}
		if (e->rounds)
			return;
		if (it->kind == ZC_ITEM_PUT) {
			/* written in place, window invalidated (put_arrived) */
			zc__item_pop(e);
			complete_posted(e, 0, left);
			continue;
		}
		if (it->kind == ZC_ITEM_CLOSE) {
			complete_posted(e, -EPIPE, 0);
			continue;
		}
		if (left > p->len) {
			complete_posted(e, -EMSGSIZE, left);
			if (it->kind == ZC_ITEM_RTS)
				finish_rts(e, it);
			else
				zc__item_pop(e);
			continue;
		}
		if (it->kind == ZC_ITEM_EAGER) {
			if (left)
				memcpy(p->buf, zc__qp_rx_slot(&e->qp, it->slot) + it->off, left);
			zc__item_pop(e);
			complete_posted(e, 0, left);
			continue;
		}
	}
}

/* Drives the rounds. What it calls may call it again (a FIN's flush, a
 * failure): the inner call leaves the work to this one, which goes round
 * until nothing is left to do. */
void zc__match_posted(struct zc__ep *e)
{
	if (e->in_rounds) {
		e->rounds_again = true;
		return;
	}
	e->in_rounds = true;
	do {
		e->rounds_again = false;
		rounds_advance(e);
		rounds_end(e);
		rounds_match(e);
	} while (e->rounds_again || (e->rounds && zc__item_head(e)->rstate == ZC_READ_DONE));
	e->in_rounds = false;
}

/* READs may go or have ended: the posted buffers' rounds, or a blocked
 * reader's round at the head. */
static void reads_progress(struct zc__ep *e)
{
	if (e->rounds)
		zc__match_posted(e);
	else
		zc__read_advance(e, zc__item_head(e));
}

/* Copies up to len bytes of the head EAGER item; pops it when drained. */
size_t zc__item_copy(struct zc__ep *e, struct zc__item *it, void *buf, size_t len)
{
	uint64_t left = it->len - it->off;
	size_t n = len < left ? len : (size_t)left;

	if (n)
		memcpy(buf, zc__qp_rx_slot(&e->qp, it->slot) + it->off, n);
	it->off += n;
	if (it->off == it->len)
		zc__item_pop(e);
	return n;
}

static int zsend_post(struct zc__ep *e, const struct zc__zsend *z)
{
	uint32_t idx;

	return z->len > e->eager_max ? zc__send_rndv(e, z->buf, z->len, z->mr, ZC_RNDV_USER, z->token, &idx)
				     : zc__send_eager(e, z->buf, z->len, ZC_OP_SEND, z->token);
}

/* Posts queued zero-copy sends, in order, while credits and room last. */
static void zq_drain(struct zc__ep *e)
{
	while (e->zq_count && !e->qp.dead) {
		struct zc__zsend *z = &e->zq[e->zq_head];
		int rc = zsend_post(e, z);

		if (rc == -EAGAIN)
			return;
		if (rc)
			zc__ctx_complete(e->ctx, e->conn, z->token, ZC_OP_SEND, rc, 0);
		e->zq_head = (e->zq_head + 1) % e->zq_cap;
		e->zq_count--;
	}
}

/* Rings an idle connection never needs start empty and double, up to max,
 * keeping their order (unwrapped to head 0). */
static int ring_grow(void **arr, uint32_t *head, uint32_t count, uint32_t *cap, uint32_t max, size_t elem)
{
	uint32_t n = *cap ? 2 * *cap : 8, i;
	uint8_t *a;

	if (n > max)
		n = max;
	if (n <= *cap)
		return -ENOSPC;
	a = malloc(n * elem);
	if (!a)
		return -ENOMEM;
	for (i = 0; i < count; i++)
		memcpy(a + i * elem, (uint8_t *)*arr + ((*head + i) % *cap) * elem, elem);
	free(*arr);
	*arr = a;
	*head = 0;
	*cap = n;
	return 0;
}

int zc__zsend_submit(struct zc__ep *e, const struct zc__zsend *z)
{
	/* Beyond the credits, sends wait in the queue in order; they go out
	 * as credits come back. */
	int rc = e->zq_count ? -EAGAIN : zsend_post(e, z);

	if (rc != -EAGAIN)
		return rc;
	if (e->zq_count == e->zq_cap &&
	    ring_grow((void **)&e->zq, &e->zq_head, e->zq_count, &e->zq_cap, e->zq_max, sizeof(*e->zq)))
		return zc__err(-EAGAIN, "%u zero-copy sends wait for the peer's credits and the queue (4 x send_depth) "
				       "is full: reap completions with zc_poll() and retry",
			      e->zq_count);
	e->zq[(e->zq_head + e->zq_count++) % e->zq_cap] = *z;
	return 0;
}

int zc__posted_add(struct zc__ep *e, const struct zc__posted *p)
{
	if (e->posted_count == e->posted_cap &&
	    ring_grow((void **)&e->posted, &e->posted_head, e->posted_count, &e->posted_cap, e->posted_max,
		      sizeof(*e->posted)))
		return zc__err(-ENOSPC, "%u receive buffers already posted", e->posted_count);
	e->posted[(e->posted_head + e->posted_count++) % e->posted_cap] = *p;
	zc__match_posted(e);
	zc__flush_ctl(e);
	return 0;
}

bool zc__rndv_done(const struct zc__ep *e, uint32_t idx)
{
	return e->rndv[idx].done;
}

int zc__ep_close(struct zc__ep *e, uint8_t type)
{
	int rc = zc__send_ctl(e, type, 0, 0, false);

	if (!rc)
		e->close_sent = true;
	return rc;
}

int zc__rndv_reap(struct zc__ep *e, uint32_t idx)
{
	struct zc__rndv *r = &e->rndv[idx];

	r->owner = ZC_RNDV_FREE;
	return r->status;
}

bool zc__ep_busy(struct zc__ep *e)
{
	uint32_t i;

	if (!zc__qp_sq_idle(&e->qp) || e->fin_count || e->zq_count)
		return true;
	for (i = 0; i < e->n_rndv; i++)
		if (e->rndv[i].owner != ZC_RNDV_FREE)
			return true;
	return false;
}

/* Gives every zero-copy operation the endpoint still owns back to the
 * application with err. */
static void ep_failed(struct zc__qp *q, int err)
{
	struct zc__ep *e = zc__container_of(q, struct zc__ep, qp);
	uint32_t keep;

	zc__ep_notify(e, ZC_EP_FAILED); /* events hook */
	rndv_fail_all(e, err);
	/* Rounds stop posting and end as their READs drain (the QP is dead). */
	reads_progress(e);
	/* The NIC may still write into posted buffers with READs in flight:
	 * those are returned when their rounds drain (flush completions). */
	keep = e->rounds;
	while (e->posted_count > keep) {
		/* from the tail, so a kept head stays first */
		struct zc__posted *p = posted_at(e, e->posted_count - 1);

		posted_unexpose(e, p);
		zc__ctx_complete(e->ctx, e->conn, p->token, ZC_OP_RECV, err, 0);
		e->posted_count--;
	}
	if (e->posted_adv > e->posted_count)
		e->posted_adv = e->posted_count;
	while (e->zq_count) {
		zc__ctx_complete(e->ctx, e->conn, e->zq[e->zq_head].token, ZC_OP_SEND, err, 0);
		e->zq_head = (e->zq_head + 1) % e->zq_cap;
		e->zq_count--;
	}
}

static const struct zc__qp_ops ep_ops = {.recv = ep_recv, .progress = flush_ctl_hook, .failed = ep_failed};

uint32_t zc__ep_own_slots(uint32_t credits)
{
	return 2 * credits + 1;
}

void zc__ep_local_priv(const struct zc__ep *e, uint32_t rd_atom, struct zc__priv *p)
{
	*p = (struct zc__priv){.version = ZC_WIRE_VERSION, .credits = (uint16_t)e->credits,
			      .slot_size = (uint32_t)(ZC_HDR_SIZE + e->eager_in), .rd_atom = rd_atom ? rd_atom : 1};
}

int zc__ep_setup(struct zc__ep *e, struct zc_conn *conn, struct rdma_cm_id *id, uint32_t credits, size_t eager_size,
		 bool mr_fallback)
{
	int rc;

	/* Before the engine, whose failure zc__ep_release() reports with them. */
	e->ctx = e->qp.ctx;
	e->conn = conn;
	e->credits = credits;
	e->mr_fallback = mr_fallback;
	e->eager_in = eager_size < e->ctx->opts.eager_size ? eager_size : e->ctx->opts.eager_size;
	rc = zc__qp_setup(&e->qp, id, &ep_ops);
	if (rc)
		return rc;
	rc = zc__credit_open(&e->cr, &e->qp.rx->budget, credits);
	if (!rc)
		rc = zc__rxpool_fill(e->qp.rx);
	if (rc)
		return rc;
	/* Items: every data message we granted, CLOSE, and an RTS whose FIN
	 * went behind its READs (its credit is back with the peer, but its
	 * item stays until we reap them; only the head is read). */
	e->items_cap = credits + 2;
	e->posted_max = 2 * credits + 2;
	e->items = calloc(e->items_cap, sizeof(*e->items));
	e->fin_queue = calloc(e->items_cap, sizeof(*e->fin_queue));
	e->zq_max = 4 * e->qp.depth;
	/* every posted buffer may hold a window */
	e->mw_spare = calloc(e->posted_max, sizeof(*e->mw_spare));
	if (!e->items || !e->fin_queue || !e->mw_spare)
		return zc__err(-ENOMEM, "out of memory for connection state");
	return 0;
}

int zc__ep_peer(struct zc__ep *e, const struct zc__priv *peer)
{
	e->eager_max = peer->slot_size - ZC_HDR_SIZE;
	if (e->eager_max > e->eager_in)
		e->eager_max = e->eager_in;
	zc__credit_peer_params(&e->cr, peer->credits);
	/* the peer posts at most that many buffers (zc__ep_setup) */
	e->adv_max = 2 * (uint32_t)peer->credits + 2;
	/* A rendezvous holds a credit: never more open than data in flight. */
	e->n_rndv = e->credits;
	e->rndv = calloc(e->n_rndv, sizeof(*e->rndv));
	if (!e->rndv)
		return zc__err(-ENOMEM, "out of memory for rendezvous state");
	/* rdma_cm carries READ depths in a byte, so 255 is the most either side
	 * agreed to, whatever the devices could do. */
	e->max_reads = e->ctx->caps.max_qp_rd_atom < peer->rd_atom ? e->ctx->caps.max_qp_rd_atom : peer->rd_atom;
	if (e->max_reads > 255)
		e->max_reads = 255;
	if (e->max_reads == 0)
		e->max_reads = 1;
	return 0;
}

void zc__ep_release(struct zc__ep *e)
{
	uint32_t i;

	if (e->qp.ops)
		ep_failed(&e->qp, e->qp.err ? e->qp.err : -ECONNABORTED);
	/* Slots still held go back to the pool, and the promises with them. */
	while (e->item_count)
		item_drop(e);
	for (; e->fin_count; e->fin_count--, e->fin_head = (e->fin_head + 1) % e->items_cap)
		zc__qp_post_recv(&e->qp, e->fin_queue[e->fin_head].slot);
	zc__credit_close(&e->cr); /* a no-op if it never opened */
	for (i = 0; e->rndv && i < e->n_rndv; i++)
		if (e->rndv[i].mw)
			zc__dealloc_mw(e->ctx, e->rndv[i].mw);
	while (e->n_mw_spare)
		zc__dealloc_mw(e->ctx, e->mw_spare[--e->n_mw_spare]);
	zc__qp_release(&e->qp);
	free(e->items);
	free(e->posted);
	free(e->fin_queue);
	free(e->zq);
	free(e->rndv);
	free(e->mw_spare);
	free(e->advs);
	/* As new: a retried connect sets it up again. */
	*e = (struct zc__ep){0};
}
