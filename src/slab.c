/* Registered slots in chunks: see slab.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "slab.h"

void zc__slab_init(struct zc__slab *s, struct zc_ctx *ctx, uint32_t slot_size, uint32_t per_chunk)
{
	*s = (struct zc__slab){.ctx = ctx, .slot_size = slot_size, .per_chunk = per_chunk};
}

int zc__slab_grow(struct zc__slab *s)
{
	size_t len = (size_t)s->slot_size * s->per_chunk;
	struct zc__slab_chunk *c;
	int rc = 0;

	if (s->n_chunks == s->cap_chunks) {
		uint32_t cap = s->cap_chunks ? 2 * s->cap_chunks : 8;
		struct zc__slab_chunk *n = realloc(s->chunks, cap * sizeof(*n));

		if (!n)
			return zc__err(-ENOMEM, "out of memory for the slot table");
		s->chunks = n;
		s->cap_chunks = cap;
	}
	c = &s->chunks[s->n_chunks];
	if (posix_memalign((void **)&c->buf, 4096, len))
		return zc__err(-ENOMEM, "out of memory for %zu bytes of connection buffers", len);
	memset(c->buf, 0, len);
	c->mr = zc__reg_mr(s->ctx, c->buf, len, IBV_ACCESS_LOCAL_WRITE, &rc);
	if (!c->mr) {
		free(c->buf);
		return rc;
	}
	s->n_chunks++;
	return 0;
}

void zc__slab_free(struct zc__slab *s)
{
	uint32_t i;

	for (i = 0; i < s->n_chunks; i++) {
		zc__dereg_mr(s->ctx, s->chunks[i].mr);
		free(s->chunks[i].buf);
	}
	free(s->chunks);
	s->chunks = NULL;
	s->n_chunks = s->cap_chunks = 0;
}
