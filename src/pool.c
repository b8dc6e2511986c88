/*
 * Receive and send slots shared by the connections of a context: the
 * receive pool posts its slots to one shared receive queue (or, where the
 * device has none, one pool per QP posts to that QP's own queue), and the
 * send pool lends staging slots to sends too large to go inline.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "qp.h"

/* About 1 MiB per chunk: growth costs one registration per chunk. */
static uint32_t per_chunk(uint32_t slot_size)
{
	uint32_t n = (1u << 20) / slot_size;

	return n < 4 ? 4 : n > 64 ? 64 : n;
}

/* ---- qp_num -> QP, for completions from the shared queue ---- */

static uint32_t map_hash(uint32_t qpn, uint32_t cap)
{
	return (qpn * 2654435761u) & (cap - 1);
}

static int map_put(struct zc__rxpool *p, struct zc__qp *q)
{
	uint32_t i;

	if (2 * (p->map_count + 1) > p->map_cap) {
		uint32_t cap = p->map_cap ? 2 * p->map_cap : 64, j;
		struct zc__qp **old = p->map, **map = calloc(cap, sizeof(*map));

		if (!map)
			return zc__err(-ENOMEM, "out of memory for the queue-pair table");
		for (j = 0; j < p->map_cap; j++)
			if (old[j]) {
				for (i = map_hash(old[j]->qp->qp_num, cap); map[i]; i = (i + 1) & (cap - 1))
					;
				map[i] = old[j];
			}
		free(old);
		p->map = map;
		p->map_cap = cap;
	}
	for (i = map_hash(q->qp->qp_num, p->map_cap); p->map[i]; i = (i + 1) & (p->map_cap - 1))
		;
	p->map[i] = q;
	p->map_count++;
	return 0;
}

static struct zc__qp *map_get(const struct zc__rxpool *p, uint32_t qpn)
{
	uint32_t i;

	if (!p->map_cap)
		return NULL;
	for (i = map_hash(qpn, p->map_cap); p->map[i]; i = (i + 1) & (p->map_cap - 1))
		if (p->map[i]->qp->qp_num == qpn)
			return p->map[i];
	return NULL;
}

/* Linear probing: the entries after a removed one move back into the gap
 * when their home slot allows it, so lookups never stop short. */
static void map_del(struct zc__rxpool *p, const struct zc__qp *q)
{
	uint32_t mask = p->map_cap - 1, i, j, home;

	for (i = map_hash(q->qp->qp_num, p->map_cap); p->map[i] != q; i = (i + 1) & mask)
		if (!p->map[i])
			return;
	p->map[i] = NULL;
	p->map_count--;
	for (j = (i + 1) & mask; p->map[j]; j = (j + 1) & mask) {
		home = map_hash(p->map[j]->qp->qp_num, p->map_cap);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			p->map[i] = p->map[j];
			p->map[j] = NULL;
			i = j;
		}
	}
}

/* ---- the receive pool ---- */

static void slot_done(struct zc__wr *wr, const struct ibv_wc *wc);

int zc__rxpool_open(struct zc__rxpool **out, struct zc_ctx *ctx, uint32_t slot_size, struct zc__qp *owner,
		    uint32_t soft_max, uint32_t hard_max,
		    void (*deliver)(struct zc__qp *q, uint32_t slot, const struct ibv_wc *wc))
{
	struct zc__rxpool *p = calloc(1, sizeof(*p));
	uint32_t chunk = owner ? hard_max : per_chunk(slot_size);

	if (!p)
		return zc__err(-ENOMEM, "out of memory for the receive pool");
	p->ctx = ctx;
	p->owner = owner;
	p->deliver = deliver;
	p->budget = (struct zc__rx_budget){.soft_max = soft_max, .hard_max = hard_max};
	zc__slab_init(&p->slab, ctx, slot_size, chunk);
	if (!owner) {
		struct ibv_srq_init_attr a = {.attr = {.max_wr = hard_max, .max_sge = 1}};

		p->srq = ibv_create_srq(ctx->pd, &a);
		if (!p->srq) {
			free(p);
			return zc__err(errno ? -errno : -ENOMEM, "ibv_create_srq of %u entries on %s: %s", hard_max,
				      ctx->caps.device, strerror(errno));
		}
	}
	*out = p;
	return 0;
}

void zc__rxpool_close(struct zc__rxpool *p)
{
	uint32_t i;

	if (!p)
		return;
	if (p->srq)
		ibv_destroy_srq(p->srq);
	if (zc__slab_slots(&p->slab))
		zc__ctx_release_cq(p->ctx, (int)zc__slab_slots(&p->slab));
	p->ctx->stats.rx_slots -= zc__slab_slots(&p->slab);
	for (i = 0; i < zc__slab_slots(&p->slab) / p->slab.per_chunk; i++)
		free(p->slots[i]);
	zc__slab_free(&p->slab);
	free(p->slots);
	free(p->map);
	free(p);
}

uint8_t *zc__rxpool_addr(const struct zc__rxpool *p, uint32_t slot)
{
	return zc__slab_addr(&p->slab, slot);
}

int zc__rxpool_repost(struct zc__rxpool *p, uint32_t slot)
{
	struct ibv_sge sge = {.addr = (uintptr_t)zc__slab_addr(&p->slab, slot), .length = p->slab.slot_size,
			      .lkey = zc__slab_lkey(&p->slab, slot)};
	struct zc__rslot *s = &p->slots[slot / p->slab.per_chunk][slot % p->slab.per_chunk];
	struct ibv_recv_wr wr = {.wr_id = (uintptr_t)&s->wr, .sg_list = &sge, .num_sge = 1}, *bad;
	int rc;

	/* A dead QP's own queue would only flush it. */
	if (p->owner && p->owner->dead)
		return 0;
	/* Providers return the error; errno is not always set. */
	rc = p->srq ? ibv_post_srq_recv(p->srq, &wr, &bad) : ibv_post_recv(p->owner->qp, &wr, &bad);
	if (rc) {
		rc = zc__err(-rc, "posting a receive slot: %s", strerror(rc));
		/* a QP's own queue: its caller fails the QP; the shared one
		 * carries on with a slot less */
		if (!p->owner)
			zc__log(&p->ctx->opts, ZC_LOG_ERR, "%s: the receive pool lost a slot: %s", p->ctx->caps.device,
			       zc_last_error());
		return rc;
	}
	p->posted++;
	p->ctx->stats.recv_wrs++;
	return 0;
}

int zc__rxpool_fill(struct zc__rxpool *p)
{
	while (zc__slab_slots(&p->slab) < p->budget.reserved) {
		uint32_t first = zc__slab_slots(&p->slab), n = p->slab.per_chunk, c = first / n, i;
		struct zc__rslot **slots, *chunk;
		int rc = zc__ctx_reserve_cq(p->ctx, (int)n);

		if (rc)
			return rc;
		slots = realloc(p->slots, (c + 1) * sizeof(*slots));
		if (slots)
			p->slots = slots;
		chunk = slots ? malloc(n * sizeof(*chunk)) : NULL;
		if (!chunk || (rc = zc__slab_grow(&p->slab))) {
			free(chunk);
			zc__ctx_release_cq(p->ctx, (int)n);
			return chunk ? rc : zc__err(-ENOMEM, "out of memory for receive slots");
		}
		p->slots[c] = chunk;
		for (i = first; i < first + n; i++) {
			chunk[i - first] = (struct zc__rslot){.wr.done = slot_done, .pool = p, .idx = i};
			rc = zc__rxpool_repost(p, i);
			if (rc)
				return rc;
		}
		p->ctx->stats.rx_slots += n;
	}
	return 0;
}

int zc__rxpool_attach(struct zc__rxpool *p, struct zc__qp *q)
{
	return p->owner ? 0 : map_put(p, q);
}

void zc__rxpool_detach(struct zc__rxpool *p, struct zc__qp *q)
{
	if (!p->owner)
		map_del(p, q);
}

static void slot_done(struct zc__wr *wr, const struct ibv_wc *wc)
{
	struct zc__rslot *s = zc__container_of(wr, struct zc__rslot, wr);
	struct zc__rxpool *p = s->pool;
	struct zc__qp *q = p->owner ? p->owner : map_get(p, wc->qp_num);

	p->posted--;
	if (q) {
		p->deliver(q, s->idx, wc);
		return;
	}
	/* A message for a QP already torn down: the slot goes back. */
	zc__rxpool_repost(p, s->idx);
}

/* ---- the send staging pool ---- */

int zc__txpool_open(struct zc__txpool **out, struct zc_ctx *ctx, uint32_t slot_size)
{
	struct zc__txpool *t = calloc(1, sizeof(*t));

	if (!t)
		return zc__err(-ENOMEM, "out of memory for the send pool");
	zc__slab_init(&t->slab, ctx, slot_size, per_chunk(slot_size));
	*out = t;
	return 0;
}

void zc__txpool_close(struct zc__txpool *t)
{
	if (!t)
		return;
	t->slab.ctx->stats.tx_slots -= zc__slab_slots(&t->slab);
	zc__slab_free(&t->slab);
	free(t->free);
	free(t);
}

int zc__txpool_get(struct zc__txpool *t, uint32_t *slot)
{
	if (!t->n_free) {
		uint32_t first = zc__slab_slots(&t->slab), n = t->slab.per_chunk, i;
		uint32_t *f = realloc(t->free, (first + n) * sizeof(*f));
		int rc;

		if (!f)
			return zc__err(-ENOMEM, "out of memory for send slots");
		t->free = f;
		if ((rc = zc__slab_grow(&t->slab)))
			return rc;
		for (i = 0; i < n; i++)
			t->free[t->n_free++] = first + n - 1 - i;
		t->slab.ctx->stats.tx_slots += n;
	}
	*slot = t->free[--t->n_free];
	return 0;
}

void zc__txpool_put(struct zc__txpool *t, uint32_t slot)
{
	t->free[t->n_free++] = slot;
}
