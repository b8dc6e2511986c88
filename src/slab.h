/*
 * Internal, layer 1: registered slots of one size, carved from chunks that
 * are allocated and registered (local write only) one at a time as a pool
 * grows. Slots are named by a dense index; chunks are never freed before
 * the slab. The receive pool and the send staging pool are slabs.
 */
#ifndef ZC_SLAB_H
#define ZC_SLAB_H

#include "dev.h"

struct zc__slab_chunk {
	uint8_t *buf;
	struct ibv_mr *mr;
};

struct zc__slab {
	struct zc_ctx *ctx;
	uint32_t slot_size;
	uint32_t per_chunk;  /* slots per chunk */
	uint32_t n_chunks, cap_chunks;
	struct zc__slab_chunk *chunks;
};

void zc__slab_init(struct zc__slab *s, struct zc_ctx *ctx, uint32_t slot_size, uint32_t per_chunk);
/* Slots in the slab. */
static inline uint32_t zc__slab_slots(const struct zc__slab *s)
{
	return s->n_chunks * s->per_chunk;
}
/* Adds one chunk (per_chunk slots, numbered after the existing ones). */
int zc__slab_grow(struct zc__slab *s);
static inline uint8_t *zc__slab_addr(const struct zc__slab *s, uint32_t i)
{
	return s->chunks[i / s->per_chunk].buf + (size_t)(i % s->per_chunk) * s->slot_size;
}
static inline uint32_t zc__slab_lkey(const struct zc__slab *s, uint32_t i)
{
	return s->chunks[i / s->per_chunk].mr->lkey;
}
void zc__slab_free(struct zc__slab *s);

#endif
