/*
 * The registration cache.
 *
 * Index: an array of entries sorted by start address. Entries never overlap,
 * so their end addresses are sorted too, and one binary search on the end
 * finds both "the entry containing x" and "the first entry touching [s, e)".
 * Lookups are O(log n); a miss that inserts or removes entries pays an
 * O(n) memmove, which is cheap next to the registration it accompanies.
 *
 * Every entry is in exactly one of these states, and the list links are
 * shared by the two states that need a list:
 *   indexed, refs == 0   on the LRU list (evictable)
 *   indexed, refs > 0    on no list (pinned by a pending transfer)
 *   detached, refs > 0   on the detached list (merged away or invalidated,
 *                        deregistered by its last put or by free())
 * A detached entry with refs == 0 is deregistered and freed at once.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rcache.h"

#define INITIAL_CAP 16

struct link {
	struct link *prev, *next;
};

struct zc__rcache_entry {
	struct link link;
	uintptr_t start;
	size_t len;
	void *handle;
	unsigned long refs;
	bool indexed;
};

struct zc__rcache {
	struct zc__rcache_ops ops;
	size_t max_entries, max_bytes;
	uintptr_t page_mask;

	struct zc__rcache_entry **idx;
	size_t n, cap;
	size_t bytes; /* sum of indexed lengths */

	struct link lru; /* head.next is the least recently used */
	struct link detached;

	struct zc__invring *ring; /* NULL unless watching */
	uint64_t ring_seen;      /* ranges of ring applied so far */

	struct zc__rcache_stats stats;
};

static void list_init(struct link *head)
{
	head->prev = head->next = head;
}

static bool list_empty(const struct link *head)
{
	return head->next == head;
}

static void list_add_tail(struct link *head, struct link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static void list_del(struct link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
}

static struct zc__rcache_entry *entry_of(struct link *l)
{
	return (struct zc__rcache_entry *)((char *)l - offsetof(struct zc__rcache_entry, link));
}

static uintptr_t entry_end(const struct zc__rcache_entry *e)
{
	return e->start + e->len;
}

/* Page-aligns [addr, addr + len); false if the range or its rounding would
 * wrap past the top of the address space. */
static bool page_range(const struct zc__rcache *rc, uintptr_t addr, size_t len, uintptr_t *s,
		       uintptr_t *e)
{
	if (len > UINTPTR_MAX - addr)
		return false;
	*e = addr + len;
	if (*e > UINTPTR_MAX - rc->page_mask)
		return false;
	*e = (*e + rc->page_mask) & ~rc->page_mask;
	*s = addr & ~rc->page_mask;
	return true;
}

/* First index whose entry ends at or after x (n if none). */
static size_t first_end_at_least(const struct zc__rcache *rc, uintptr_t x)
{
	size_t lo = 0, hi = rc->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (entry_end(rc->idx[mid]) < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void destroy(struct zc__rcache *rc, struct zc__rcache_entry *e)
{
	rc->ops.dereg(rc->ops.arg, e->handle);
	free(e);
}

/* Takes e out of the index bookkeeping (the caller fixes up the array). An
 * entry still in use must outlive its registration's last transfer, so it is
 * parked on the detached list instead of being deregistered. */
static void unindex(struct zc__rcache *rc, struct zc__rcache_entry *e)
{
	rc->bytes -= e->len;
	e->indexed = false;
	if (e->refs) {
		list_add_tail(&rc->detached, &e->link);
	} else {
		list_del(&e->link);
		destroy(rc, e);
	}
}

/* Replaces idx[i, j) with `with` (or nothing if NULL); capacity must allow. */
static void splice(struct zc__rcache *rc, size_t i, size_t j, struct zc__rcache_entry *with)
{
	size_t k = with ? i + 1 : i;

	memmove(&rc->idx[k], &rc->idx[j], (rc->n - j) * sizeof(rc->idx[0]));
	rc->n = rc->n - (j - i) + (k - i);
	if (with)
		rc->idx[i] = with;
}

/* Evicts least recently used idle entries until the bounds hold or only
 * entries in use are left (then the bound stays exceeded until they are put). */
static void enforce_bounds(struct zc__rcache *rc)
{
	while ((rc->n > rc->max_entries || rc->bytes > rc->max_bytes) && !list_empty(&rc->lru)) {
		struct zc__rcache_entry *e = entry_of(rc->lru.next);
		size_t i = first_end_at_least(rc, e->start + 1);

		splice(rc, i, i + 1, NULL);
		unindex(rc, e);
		rc->stats.evictions++;
	}
}

static int reserve(struct zc__rcache *rc, size_t need)
{
	struct zc__rcache_entry **idx;
	size_t cap;

	if (need <= rc->cap)
		return 0;
	cap = rc->cap * 2;
	idx = realloc(rc->idx, cap * sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	rc->idx = idx;
	rc->cap = cap;
	return 0;
}

/* Drops every entry touching [s, end), counting them under cause. */
static int drop_range(struct zc__rcache *rc, uintptr_t s, uintptr_t end, int cause)
{
	size_t i, j;

	i = first_end_at_least(rc, s + 1);
	for (j = i; j < rc->n && rc->idx[j]->start < end; j++) {
		unindex(rc, rc->idx[j]);
		rc->stats.invalidations++;
		rc->stats.inv[cause]++;
	}
	splice(rc, i, j, NULL);
	return (int)(j - i);
}

/* Applies what the hooks pushed since the last call. Applying can push more
 * (a deregistration may free, and free may unmap): the loop takes those too. */
static void catch_up(struct zc__rcache *rc)
{
	struct zc__inv_range r[64];
	int n, k;

	while ((n = zc__invring_read(rc->ring, &rc->ring_seen, r, 64)) != 0) {
		if (n < 0) {
			drop_range(rc, 0, UINTPTR_MAX, ZC_INV_OVERFLOW);
			continue;
		}
		for (k = 0; k < n; k++)
			drop_range(rc, r[k].start & ~rc->page_mask, r[k].end, r[k].cause);
	}
}

/* The whole cost of watching on the hot path: one acquire load. */
static void sync_ring(struct zc__rcache *rc)
{
	if (rc->ring && zc__invring_seq(rc->ring) != rc->ring_seen)
		catch_up(rc);
}

void zc__rcache_watch(struct zc__rcache *rc, struct zc__invring *ring)
{
	rc->ring = ring;
	if (ring)
		rc->ring_seen = zc__invring_seq(ring);
}

int zc__rcache_new(const struct zc__rcache_ops *ops, unsigned max_entries, size_t max_bytes,
		  struct zc__rcache **rcp)
{
	struct zc__rcache *rc;

	if (!ops || !ops->reg || !ops->dereg || max_entries < 1 || max_bytes < 1 || !rcp)
		return -EINVAL;
	rc = calloc(1, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	/* Never NULL, so splicing an empty index needs no special case. */
	rc->cap = INITIAL_CAP;
	rc->idx = malloc(rc->cap * sizeof(rc->idx[0]));
	if (!rc->idx) {
		free(rc);
		return -ENOMEM;
	}
	rc->ops = *ops;
	rc->max_entries = max_entries;
	rc->max_bytes = max_bytes;
	rc->page_mask = (uintptr_t)sysconf(_SC_PAGESIZE) - 1;
	list_init(&rc->lru);
	list_init(&rc->detached);
	*rcp = rc;
	return 0;
}

void zc__rcache_free(struct zc__rcache *rc)
{
	size_t i;

	if (!rc)
		return;
	for (i = 0; i < rc->n; i++)
		destroy(rc, rc->idx[i]);
	while (!list_empty(&rc->detached)) {
		struct zc__rcache_entry *e = entry_of(rc->detached.next);

		list_del(&e->link);
		destroy(rc, e);
	}
	free(rc->idx);
	free(rc);
}

int zc__rcache_get(struct zc__rcache *rc, const void *addr, size_t len, struct zc__rcache_entry **ep)
{
	struct zc__rcache_entry *e;
	uintptr_t s, end, us, uend;
	size_t i, j, k;
	int err = 0;

	if (!rc || !addr || !len || !ep || !page_range(rc, (uintptr_t)addr, len, &s, &end))
		return -EINVAL;
	sync_ring(rc);

	/* The only entry that can cover [s, end) is the one containing s. */
	i = first_end_at_least(rc, s + 1);
	if (i < rc->n && rc->idx[i]->start <= s && entry_end(rc->idx[i]) >= end) {
		e = rc->idx[i];
		if (!e->refs++)
			list_del(&e->link);
		rc->stats.hits++;
		*ep = e;
		return 0;
	}

	/* Miss: absorb everything overlapping or adjacent, so the index never
	 * holds two entries a later lookup would need to combine. */
	i = first_end_at_least(rc, s);
	us = s;
	uend = end;
	for (j = i; j < rc->n && rc->idx[j]->start <= end; j++) {
		if (rc->idx[j]->start < us)
			us = rc->idx[j]->start;
		if (entry_end(rc->idx[j]) > uend)
			uend = entry_end(rc->idx[j]);
	}

	/* Allocate before registering so a failure anywhere leaves the cache
	 * (stats included) exactly as it was. */
	if (reserve(rc, rc->n - (j - i) + 1))
		return -ENOMEM;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->handle = rc->ops.reg(rc->ops.arg, (void *)us, uend - us, &err);
	if (!e->handle) {
		free(e);
		/* A callback that forgot *err must not turn a failure into success. */
		return err ? err : -EIO;
	}
	e->start = us;
	e->len = uend - us;
	e->refs = 1;
	e->indexed = true;

	/* The new registration covers the old ones, so they can go now. */
	rc->stats.merges += j - i;
	for (k = i; k < j; k++)
		unindex(rc, rc->idx[k]);
	splice(rc, i, j, e);
	rc->bytes += e->len;
	rc->stats.misses++;
	enforce_bounds(rc);
	*ep = e;
	return 0;
}

void zc__rcache_put(struct zc__rcache *rc, struct zc__rcache_entry *e)
{
	if (--e->refs)
		return;
	if (!e->indexed) {
		list_del(&e->link);
		destroy(rc, e);
		return;
	}
	list_add_tail(&rc->lru, &e->link);
	enforce_bounds(rc);
}

void *zc__rcache_entry_handle(const struct zc__rcache_entry *e)
{
	return e->handle;
}

uintptr_t zc__rcache_entry_start(const struct zc__rcache_entry *e)
{
	return e->start;
}

size_t zc__rcache_entry_len(const struct zc__rcache_entry *e)
{
	return e->len;
}

int zc__rcache_invalidate(struct zc__rcache *rc, const void *addr, size_t len)
{
	uintptr_t s, end;

	if (!len)
		return 0;
	sync_ring(rc);
	/* A range running off the top of the address space still must drop
	 * everything it touches; no entry reaches past UINTPTR_MAX, so clamp. */
	if (!page_range(rc, (uintptr_t)addr, len, &s, &end)) {
		s = (uintptr_t)addr & ~rc->page_mask;
		end = UINTPTR_MAX;
	}
	return drop_range(rc, s, end, ZC_INV_EXPLICIT);
}

void zc__rcache_get_stats(const struct zc__rcache *rc, struct zc__rcache_stats *s)
{
	*s = rc->stats;
	s->entries = rc->n;
	s->bytes = rc->bytes;
}
