/*
 * Internal: the registration cache.
 *
 * Registering memory (pinning + NIC translation tables) is the expensive step
 * of zero-copy I/O, so buffers that reach the zero-copy paths unregistered are
 * registered once and reused. The cache is keyed by page-aligned address
 * range: a lookup hits when one entry covers the whole requested range;
 * overlapping or adjacent entries are merged into one larger registration;
 * unused entries are evicted least-recently-used first when the cache exceeds
 * its entry or byte bound; zc__rcache_invalidate() drops every entry touching
 * a range the application freed or remapped. Entries in use (referenced by a
 * pending transfer) are never deregistered under it: they leave the index and
 * die when their last reference is put.
 *
 * A cache that watches a ring of invalidated ranges (invring.h, filled by
 * the memory hooks of memhook.c) applies every range pushed since its last
 * call before doing anything else, so a hit is never served from pages the
 * process has since unmapped, remapped or released; when the ring overflowed
 * in between it forgets every entry instead.
 *
 * Pure bookkeeping: the actual registration goes through the ops callbacks,
 * so the unit tests run without an RDMA device.
 */
#ifndef ZC_RCACHE_H
#define ZC_RCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "invring.h"

struct zc__rcache;
struct zc__rcache_entry;

struct zc__rcache_ops {
	/* Registers [addr, addr + len); returns an opaque handle (an ibv_mr *)
	 * or NULL with *err set to a negative error code. */
	void *(*reg)(void *arg, void *addr, size_t len, int *err);
	void (*dereg)(void *arg, void *handle);
	void *arg;
};

struct zc__rcache_stats {
	uint64_t hits, misses, evictions, invalidations, merges;
	uint64_t inv[ZC_INV_CAUSES]; /* entries dropped, by cause; they sum to invalidations */
	uint64_t entries, bytes; /* currently indexed */
};

/* max_entries / max_bytes: LRU bounds on what stays registered while unused. */
int zc__rcache_new(const struct zc__rcache_ops *ops, unsigned max_entries, size_t max_bytes,
		  struct zc__rcache **rc);
/* Deregisters everything; entries still referenced are a caller bug (they
 * are deregistered anyway). */
void zc__rcache_free(struct zc__rcache *rc);

/* Finds or creates an entry covering [addr, addr + len) and takes a
 * reference on it. len 0 is -EINVAL. */
int zc__rcache_get(struct zc__rcache *rc, const void *addr, size_t len, struct zc__rcache_entry **e);
void zc__rcache_put(struct zc__rcache *rc, struct zc__rcache_entry *e);

void *zc__rcache_entry_handle(const struct zc__rcache_entry *e);
/* The page-aligned range the entry registered. */
uintptr_t zc__rcache_entry_start(const struct zc__rcache_entry *e);
size_t zc__rcache_entry_len(const struct zc__rcache_entry *e);

/* Drops every entry that overlaps [addr, addr + len) (cause
 * ZC_INV_EXPLICIT). Returns how many. */
int zc__rcache_invalidate(struct zc__rcache *rc, const void *addr, size_t len);

/* From now on, apply the ranges pushed to ring (NULL: stop watching). */
void zc__rcache_watch(struct zc__rcache *rc, struct zc__invring *ring);

void zc__rcache_get_stats(const struct zc__rcache *rc, struct zc__rcache_stats *s);

#endif
