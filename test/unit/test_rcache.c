#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rcache.h"

/*
 * The cache never touches the memory it registers, so the tests use made-up
 * page-aligned addresses and a fake registrar that records every call.
 */

#define MAXLOG 1024

/* ck_assert reports every passing check to the parent process; this one
 * stays silent until it fails, for the hot paths of the random workload. */
#define require(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg("requirement failed: %s", #cond);                            \
	} while (0)
#define BASE ((uintptr_t)0x10000000)

struct fake_mr {
	uintptr_t start;
	size_t len;
};

static struct fake {
	int regs, deregs;
	int fail;		      /* next regs return this error while nonzero */
	int push_on_dereg;	      /* the next dereg pushes page 10 to the ring */
	struct fake_mr reg_log[MAXLOG]; /* ranges registered, in order */
	uintptr_t dereg_log[MAXLOG];  /* starts of ranges deregistered, in order */
	struct fake_mr *live[MAXLOG];
	int nlive;
} F;

static size_t pg;
static struct zc__invring ring; /* the tests' own: no hook fills it */

static void *fake_reg(void *arg, void *addr, size_t len, int *err)
{
	struct fake_mr *mr;

	require(arg == &F);
	if (F.fail) {
		*err = F.fail;
		return NULL;
	}
	require(F.nlive < MAXLOG);
	mr = malloc(sizeof(*mr));
	require(mr);
	mr->start = (uintptr_t)addr;
	mr->len = len;
	if (F.regs < MAXLOG)
		F.reg_log[F.regs] = *mr;
	F.regs++;
	F.live[F.nlive++] = mr;
	return mr;
}

static void fake_dereg(void *arg, void *handle)
{
	int i;

	require(arg == &F);
	for (i = 0; i < F.nlive && F.live[i] != handle; i++)
		;
	require(i < F.nlive); /* never registered, or deregistered twice */
	F.live[i] = F.live[--F.nlive];
	if (F.push_on_dereg) {
		F.push_on_dereg = 0;
		zc__invring_push(&ring, BASE + 10 * pg, BASE + 11 * pg, ZC_INV_BRK);
	}
	if (F.deregs < MAXLOG)
		F.dereg_log[F.deregs] = ((struct fake_mr *)handle)->start;
	F.deregs++;
	free(handle);
}

static const struct zc__rcache_ops fake_ops = {fake_reg, fake_dereg, &F};

static int is_live(const void *handle)
{
	int i;

	for (i = 0; i < F.nlive; i++)
		if (F.live[i] == handle)
			return 1;
	return 0;
}

static void setup(void)
{
	memset(&F, 0, sizeof(F));
	pg = (size_t)sysconf(_SC_PAGESIZE);
}

static uintptr_t page(size_t n)
{
	return BASE + n * pg;
}

static void *at(size_t n, size_t off)
{
	return (void *)(page(n) + off);
}

static struct zc__rcache *cache(unsigned max_entries, size_t max_bytes)
{
	struct zc__rcache *rc = NULL;

	ck_assert_int_eq(zc__rcache_new(&fake_ops, max_entries, max_bytes, &rc), 0);
	ck_assert_ptr_nonnull(rc);
	return rc;
}

static struct zc__rcache *roomy_cache(void)
{
	return cache(1000, SIZE_MAX);
}

/* Gets pages [first, first + n) and checks the entry covers them. */
static struct zc__rcache_entry *get_pages(struct zc__rcache *rc, size_t first, size_t n)
{
	struct zc__rcache_entry *e = NULL;

	ck_assert_int_eq(zc__rcache_get(rc, at(first, 0), n * pg, &e), 0);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_le(zc__rcache_entry_start(e), page(first));
	ck_assert_uint_ge(zc__rcache_entry_start(e) + zc__rcache_entry_len(e), page(first + n));
	return e;
}

static void touch_pages(struct zc__rcache *rc, size_t first, size_t n)
{
	zc__rcache_put(rc, get_pages(rc, first, n));
}

static void check_stats(struct zc__rcache *rc, uint64_t hits, uint64_t misses, uint64_t evictions,
			uint64_t invalidations, uint64_t merges, uint64_t entries, uint64_t bytes)
{
	struct zc__rcache_stats s;

	zc__rcache_get_stats(rc, &s);
	ck_assert_uint_eq(s.hits, hits);
	ck_assert_uint_eq(s.misses, misses);
	ck_assert_uint_eq(s.evictions, evictions);
	ck_assert_uint_eq(s.invalidations, invalidations);
	ck_assert_uint_eq(s.merges, merges);
	ck_assert_uint_eq(s.entries, entries);
	ck_assert_uint_eq(s.bytes, bytes);
}

static void check_registered(int i, size_t first, size_t n)
{
	ck_assert_int_lt(i, F.regs);
	ck_assert_uint_eq(F.reg_log[i].start, page(first));
	ck_assert_uint_eq(F.reg_log[i].len, n * pg);
}

/* Frees the cache and checks every registration was undone exactly once
 * (fake_dereg already fails on a second dereg of the same handle). */
static void free_cache(struct zc__rcache *rc)
{
	zc__rcache_free(rc);
	ck_assert_int_eq(F.nlive, 0);
	ck_assert_int_eq(F.deregs, F.regs);
}

START_TEST(test_get_inside_registered_range_is_a_hit)
{
	struct zc__rcache *rc = roomy_cache();
	struct zc__rcache_entry *a = get_pages(rc, 0, 4), *b = NULL;

	zc__rcache_put(rc, a);
	ck_assert_int_eq(zc__rcache_get(rc, at(1, 5), pg, &b), 0);
	ck_assert_ptr_eq(b, a);
	ck_assert_int_eq(F.regs, 1);
	check_stats(rc, 1, 1, 0, 0, 0, 1, 4 * pg);
	zc__rcache_put(rc, b);
	free_cache(rc);
}
END_TEST

START_TEST(test_first_get_misses_and_the_same_range_then_hits)
{
	struct zc__rcache *rc = roomy_cache();
	struct zc__rcache_entry *a = get_pages(rc, 2, 3), *b;

	ck_assert_int_eq(F.regs, 1);
	check_registered(0, 2, 3);
	check_stats(rc, 0, 1, 0, 0, 0, 1, 3 * pg);
	b = get_pages(rc, 2, 3);
	ck_assert_ptr_eq(b, a);
	ck_assert_int_eq(F.regs, 1);
	check_stats(rc, 1, 1, 0, 0, 0, 1, 3 * pg);
	zc__rcache_put(rc, a);
	zc__rcache_put(rc, b);
	ck_assert_int_eq(F.deregs, 0);
	free_cache(rc);
}
END_TEST

START_TEST(test_one_byte_get_at_odd_address_registers_one_page)
{
	struct zc__rcache *rc = roomy_cache();
	struct zc__rcache_entry *e = NULL;

	ck_assert_int_eq(zc__rcache_get(rc, at(3, 777), 1, &e), 0);
	check_registered(0, 3, 1);
	ck_assert_uint_eq(zc__rcache_entry_start(e), page(3));
	ck_assert_uint_eq(zc__rcache_entry_len(e), pg);
	zc__rcache_put(rc, e);
	free_cache(rc);
}
END_TEST

START_TEST(test_get_straddling_a_page_boundary_registers_both_pages)
{
	struct zc__rcache *rc = roomy_cache();
	struct zc__rcache_entry *e = NULL;

	ck_assert_int_eq(zc__rcache_get(rc, at(3, pg - 1), 2, &e), 0);
	check_registered(0, 3, 2);
	zc__rcache_put(rc, e);
	free_cache(rc);
}
END_TEST

START_TEST(test_entry_reports_the_handle_and_range_it_registered)
{
	struct zc__rcache *rc = roomy_cache();
	struct zc__rcache_entry *e = get_pages(rc, 7, 2);

	ck_assert_ptr_eq(zc__rcache_entry_handle(e), F.live[0]);
	ck_assert_uint_eq(zc__rcache_entry_start(e), page(7));
	ck_assert_uint_eq(zc__rcache_entry_len(e), 2 * pg);
	zc__rcache_put(rc, e);
	free_cache(rc);
}
END_TEST

START_TEST(test_overlapping_get_merges_into_one_registration_of_the_union)
{
	struct zc__rcache *rc = roomy_cache();
	struct zc__rcache_entry *a = get_pages(rc, 0, 2), *b;
	void *old = zc__rcache_entry_handle(a);

	zc__rcache_put(rc, a);
	b = get_pages(rc, 1, 3);
	ck_assert_int_eq(F.regs, 2);
	check_registered(1, 0, 4);
	ck_assert_int_eq(F.deregs, 1);
	ck_assert(!is_live(old));
	check_stats(rc, 0, 2, 0, 0, 1, 1, 4 * pg);
	zc__rcache_put(rc, b);
	ck_assert_ptr_eq(get_pages(rc, 0, 1), b);
	zc__rcache_put(rc, b);
	free_cache(rc);
}
END_TEST

START_TEST(test_adjacent_ranges_merge)
{
	struct zc__rcache *rc = roomy_cache();

	touch_pages(rc, 4, 2);
	touch_pages(rc, 6, 1); /* adjacent above */
	check_registered(1, 4, 3);
	touch_pages(rc, 3, 1); /* adjacent below */
	check_registered(2, 3, 4);
	ck_assert_int_eq(F.deregs, 2);
	check_stats(rc, 0, 3, 0, 0, 2, 1, 4 * pg);
	free_cache(rc);
}
END_TEST

START_TEST(test_get_bridging_several_entries_merges_them_all_and_spares_the_rest)
{
	struct zc__rcache *rc = roomy_cache();

	touch_pages(rc, 0, 1);
	touch_pages(rc, 2, 1);
	touch_pages(rc, 4, 1);
	touch_pages(rc, 7, 1);
	touch_pages(rc, 1, 3); /* overlaps page 2, touches pages 0 and 4 */
	check_registered(4, 0, 5);
	ck_assert_int_eq(F.deregs, 3);
	check_stats(rc, 0, 5, 0, 0, 3, 2, 6 * pg);
	free_cache(rc);
}
END_TEST

START_TEST(test_merge_keeps_a_referenced_entry_alive_until_its_put)
{
	struct zc__rcache *rc = roomy_cache();
	struct zc__rcache_entry *a = get_pages(rc, 0, 2), *b;
	void *old = zc__rcache_entry_handle(a);

	b = get_pages(rc, 1, 2);
	ck_assert_ptr_ne(b, a);
	check_registered(1, 0, 3);
	ck_assert_int_eq(F.deregs, 0);
	ck_assert(is_live(old));
	check_stats(rc, 0, 2, 0, 0, 1, 1, 3 * pg);
	/* The swallowed entry is out of the index: lookups find the union. */
	ck_assert_ptr_eq(get_pages(rc, 0, 1), b);
	zc__rcache_put(rc, b);
	zc__rcache_put(rc, b);
	ck_assert_int_eq(F.deregs, 0);
	zc__rcache_put(rc, a);
	ck_assert_int_eq(F.deregs, 1);
	ck_assert(!is_live(old));
	check_stats(rc, 1, 2, 0, 0, 1, 1, 3 * pg);
	free_cache(rc);
}
END_TEST

START_TEST(test_lru_evicts_least_recently_used_first)
{
	struct zc__rcache *rc = cache(2, SIZE_MAX);

	touch_pages(rc, 0, 1); /* A */
	touch_pages(rc, 2, 1); /* B */
	touch_pages(rc, 0, 1); /* A again: B is now the oldest */
	touch_pages(rc, 4, 1); /* C */
	ck_assert_int_eq(F.deregs, 1);
	ck_assert_uint_eq(F.dereg_log[0], page(2));
	touch_pages(rc, 6, 1); /* D: A is now the oldest */
	ck_assert_int_eq(F.deregs, 2);
	ck_assert_uint_eq(F.dereg_log[1], page(0));
	check_stats(rc, 1, 4, 2, 0, 0, 2, 2 * pg);
	touch_pages(rc, 4, 1);
	touch_pages(rc, 6, 1);
	ck_assert_int_eq(F.regs, 4);
	free_cache(rc);
}
END_TEST

START_TEST(test_max_bytes_bound_evicts_least_recently_used_until_under)
{
	struct zc__rcache *rc = cache(1000, 4 * pg);

	touch_pages(rc, 0, 2);
	touch_pages(rc, 3, 2);
	ck_assert_int_eq(F.deregs, 0);
	touch_pages(rc, 6, 1);
	ck_assert_int_eq(F.deregs, 1);
	ck_assert_uint_eq(F.dereg_log[0], page(0));
	check_stats(rc, 0, 3, 1, 0, 0, 2, 3 * pg);
	free_cache(rc);
}
END_TEST

START_TEST(test_entry_larger_than_max_bytes_is_evicted_at_its_last_put)
{
	struct zc__rcache *rc = cache(1000, 4 * pg);
	struct zc__rcache_entry *e = get_pages(rc, 0, 8);

	ck_assert_int_eq(F.deregs, 0);
	check_stats(rc, 0, 1, 0, 0, 0, 1, 8 * pg);
	zc__rcache_put(rc, e);
	ck_assert_int_eq(F.deregs, 1);
	check_stats(rc, 0, 1, 1, 0, 0, 0, 0);
	free_cache(rc);
}
END_TEST

START_TEST(test_referenced_entries_are_never_evicted)
{
	struct zc__rcache *rc = cache(1, pg);
	struct zc__rcache_entry *a = get_pages(rc, 0, 1), *b = get_pages(rc, 2, 1);

	ck_assert_int_eq(F.deregs, 0);
	check_stats(rc, 0, 2, 0, 0, 0, 2, 2 * pg);
	zc__rcache_put(rc, a); /* now evictable, and over the bound */
	ck_assert_int_eq(F.deregs, 1);
	ck_assert_uint_eq(F.dereg_log[0], page(0));
	ck_assert(is_live(zc__rcache_entry_handle(b)));
	zc__rcache_put(rc, b);
	ck_assert_int_eq(F.deregs, 1);
	check_stats(rc, 0, 2, 1, 0, 0, 1, pg);
	free_cache(rc);
}
END_TEST

START_TEST(test_oldest_entry_is_skipped_while_referenced)
{
	struct zc__rcache *rc = cache(2, SIZE_MAX);
	struct zc__rcache_entry *a;

	touch_pages(rc, 0, 1); /* A */
	touch_pages(rc, 2, 1); /* B */
	a = get_pages(rc, 0, 1); /* A is held */
	touch_pages(rc, 4, 1);
	ck_assert_int_eq(F.deregs, 1);
	ck_assert_uint_eq(F.dereg_log[0], page(2));
	touch_pages(rc, 6, 1);
	ck_assert_int_eq(F.deregs, 2);
	ck_assert_uint_eq(F.dereg_log[1], page(4));
	ck_assert(is_live(zc__rcache_entry_handle(a)));
	zc__rcache_put(rc, a);
	free_cache(rc);
}
END_TEST

START_TEST(test_invalidate_of_unreferenced_entry_deregisters_immediately)
{
	struct zc__rcache *rc = roomy_cache();

	touch_pages(rc, 0, 2);
	ck_assert_int_eq(zc__rcache_invalidate(rc, at(1, 10), 1), 1);
	ck_assert_int_eq(F.deregs, 1);
	check_stats(rc, 0, 1, 0, 1, 0, 0, 0);
	touch_pages(rc, 0, 2);
	ck_assert_int_eq(F.regs, 2);
	free_cache(rc);
}
END_TEST

START_TEST(test_invalidate_of_referenced_entry_deregisters_at_put_and_next_get_misses)
{
	struct zc__rcache *rc = roomy_cache();
	struct zc__rcache_entry *a = get_pages(rc, 0, 2), *b;
	void *old = zc__rcache_entry_handle(a);

	ck_assert_int_eq(zc__rcache_invalidate(rc, at(0, 0), 2 * pg), 1);
	ck_assert_int_eq(F.deregs, 0);
	ck_assert(is_live(old));
	check_stats(rc, 0, 1, 0, 1, 0, 0, 0);
	b = get_pages(rc, 0, 2);
	ck_assert_ptr_ne(b, a);
	ck_assert_int_eq(F.regs, 2);
	check_registered(1, 0, 2);
	check_stats(rc, 0, 2, 0, 1, 0, 1, 2 * pg);
	zc__rcache_put(rc, a);
	ck_assert_int_eq(F.deregs, 1);
	ck_assert(!is_live(old));
	ck_assert(is_live(zc__rcache_entry_handle(b)));
	zc__rcache_put(rc, b);
	ck_assert_int_eq(F.deregs, 1);
	free_cache(rc);
}
END_TEST

START_TEST(test_invalidate_returns_how_many_overlapping_entries_it_dropped)
{
	struct zc__rcache *rc = roomy_cache();

	ck_assert_int_eq(zc__rcache_invalidate(rc, at(0, 0), 100 * pg), 0);
	touch_pages(rc, 0, 1);
	touch_pages(rc, 2, 1);
	touch_pages(rc, 4, 1);
	touch_pages(rc, 8, 1);
	ck_assert_int_eq(zc__rcache_invalidate(rc, at(2, 0), 0), 0);
	ck_assert_int_eq(zc__rcache_invalidate(rc, at(1, 0), pg), 0); /* only adjacent */
	ck_assert_int_eq(zc__rcache_invalidate(rc, at(2, pg - 1), pg + 2), 2);
	check_stats(rc, 0, 4, 0, 2, 0, 2, 2 * pg);
	ck_assert_int_eq(zc__rcache_invalidate(rc, (void *)(UINTPTR_MAX - 5), 100), 0);
	ck_assert_int_eq(zc__rcache_invalidate(rc, at(0, 0), 100 * pg), 2);
	ck_assert_int_eq(F.deregs, 4);
	check_stats(rc, 0, 4, 0, 4, 0, 0, 0);
	free_cache(rc);
}
END_TEST

START_TEST(test_reg_failure_returns_its_error_and_leaves_the_cache_unchanged)
{
	struct zc__rcache *rc = roomy_cache();
	struct zc__rcache_entry *a = get_pages(rc, 0, 2), *e = (struct zc__rcache_entry *)&F;
	struct zc__rcache_stats before, after;

	zc__rcache_put(rc, a);
	zc__rcache_get_stats(rc, &before);
	F.fail = -EPERM;
	ck_assert_int_eq(zc__rcache_get(rc, at(1, 0), 2 * pg, &e), -EPERM); /* would merge */
	ck_assert_int_eq(zc__rcache_get(rc, at(9, 0), pg, &e), -EPERM);
	ck_assert_ptr_eq(e, (struct zc__rcache_entry *)&F);
	zc__rcache_get_stats(rc, &after);
	ck_assert_mem_eq(&before, &after, sizeof(before));
	ck_assert_int_eq(F.deregs, 0);
	ck_assert(is_live(zc__rcache_entry_handle(a)));
	F.fail = 0;
	ck_assert_ptr_eq(get_pages(rc, 0, 2), a);
	zc__rcache_put(rc, a);
	free_cache(rc);
}
END_TEST

static void *silent_failing_reg(void *arg, void *addr, size_t len, int *err)
{
	(void)arg;
	(void)addr;
	(void)len;
	(void)err;
	return NULL;
}

START_TEST(test_reg_failure_without_an_error_code_is_still_an_error)
{
	static const struct zc__rcache_ops ops = {silent_failing_reg, fake_dereg, &F};
	struct zc__rcache *rc = NULL;
	struct zc__rcache_entry *e = NULL;

	ck_assert_int_eq(zc__rcache_new(&ops, 1, pg, &rc), 0);
	ck_assert_int_lt(zc__rcache_get(rc, at(0, 0), pg, &e), 0);
	ck_assert_ptr_null(e);
	free_cache(rc);
}
END_TEST

START_TEST(test_new_rejects_bad_arguments)
{
	struct zc__rcache_ops no_reg = {NULL, fake_dereg, &F}, no_dereg = {fake_reg, NULL, &F};
	struct zc__rcache *rc = (struct zc__rcache *)&F;

	ck_assert_int_eq(zc__rcache_new(NULL, 1, 1, &rc), -EINVAL);
	ck_assert_int_eq(zc__rcache_new(&no_reg, 1, 1, &rc), -EINVAL);
	ck_assert_int_eq(zc__rcache_new(&no_dereg, 1, 1, &rc), -EINVAL);
	ck_assert_int_eq(zc__rcache_new(&fake_ops, 0, 1, &rc), -EINVAL);
	ck_assert_int_eq(zc__rcache_new(&fake_ops, 1, 0, &rc), -EINVAL);
	ck_assert_int_eq(zc__rcache_new(&fake_ops, 1, 1, NULL), -EINVAL);
	ck_assert_ptr_eq(rc, (struct zc__rcache *)&F);
	ck_assert_int_eq(zc__rcache_new(&fake_ops, 1, 1, &rc), 0);
	free_cache(rc);
	zc__rcache_free(NULL);
}
END_TEST

START_TEST(test_get_rejects_bad_arguments_and_ranges_that_wrap)
{
	struct zc__rcache *rc = roomy_cache();
	struct zc__rcache_entry *e = NULL;

	ck_assert_int_eq(zc__rcache_get(NULL, at(0, 0), pg, &e), -EINVAL);
	ck_assert_int_eq(zc__rcache_get(rc, NULL, pg, &e), -EINVAL);
	ck_assert_int_eq(zc__rcache_get(rc, at(0, 0), 0, &e), -EINVAL);
	ck_assert_int_eq(zc__rcache_get(rc, at(0, 0), pg, NULL), -EINVAL);
	/* addr + len wraps */
	ck_assert_int_eq(zc__rcache_get(rc, (void *)(UINTPTR_MAX - 10), 100, &e), -EINVAL);
	/* addr + len fits, but rounding it up to a page wraps */
	ck_assert_int_eq(zc__rcache_get(rc, (void *)(UINTPTR_MAX - 10), 5, &e), -EINVAL);
	ck_assert_int_eq(zc__rcache_get(rc, (void *)(UINTPTR_MAX - pg + 1), pg, &e), -EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(F.regs, 0);
	check_stats(rc, 0, 0, 0, 0, 0, 0, 0);
	free_cache(rc);
}
END_TEST

START_TEST(test_free_deregisters_every_handle_exactly_once)
{
	struct zc__rcache *rc = roomy_cache();
	struct zc__rcache_entry *merged, *invalidated;

	touch_pages(rc, 20, 1);		    /* indexed, idle */
	(void)get_pages(rc, 30, 1);	    /* indexed, still referenced */
	merged = get_pages(rc, 0, 2);	    /* swallowed by the next get */
	(void)get_pages(rc, 1, 2);	    /* the union, still referenced */
	invalidated = get_pages(rc, 10, 1); /* invalidated while referenced */
	ck_assert_int_eq(zc__rcache_invalidate(rc, at(10, 0), pg), 1);
	ck_assert_ptr_nonnull(merged);
	ck_assert_ptr_nonnull(invalidated);
	ck_assert_int_eq(F.nlive, 5);
	ck_assert_int_eq(F.deregs, 0);
	free_cache(rc);
	ck_assert_int_eq(F.regs, 5);
}
END_TEST

START_TEST(test_stats_count_every_event_exactly)
{
	struct zc__rcache *rc = cache(2, SIZE_MAX);

	touch_pages(rc, 0, 1); /* miss */
	check_stats(rc, 0, 1, 0, 0, 0, 1, pg);
	touch_pages(rc, 0, 1); /* hit */
	check_stats(rc, 1, 1, 0, 0, 0, 1, pg);
	touch_pages(rc, 1, 1); /* miss merging page 0 */
	check_stats(rc, 1, 2, 0, 0, 1, 1, 2 * pg);
	touch_pages(rc, 5, 1); /* miss */
	check_stats(rc, 1, 3, 0, 0, 1, 2, 3 * pg);
	touch_pages(rc, 10, 1); /* miss evicting pages 0-1 */
	check_stats(rc, 1, 4, 1, 0, 1, 2, 2 * pg);
	ck_assert_int_eq(zc__rcache_invalidate(rc, at(5, 0), pg), 1);
	check_stats(rc, 1, 4, 1, 1, 1, 1, pg);
	touch_pages(rc, 10, 1); /* hit */
	check_stats(rc, 2, 4, 1, 1, 1, 1, pg);
	free_cache(rc);
}
END_TEST

static uint32_t rnd(uint64_t *state)
{
	*state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(*state >> 33);
}

START_TEST(test_random_workload_keeps_references_valid_and_leaks_nothing)
{
	enum { MAX_ENTRIES = 8, MAX_PAGES = 32, HELD = 16, STEPS = 20000 };
	struct zc__rcache *rc = cache(MAX_ENTRIES, MAX_PAGES * pg);
	struct zc__rcache_entry *held[HELD];
	struct zc__rcache_stats s;
	uint64_t state = 42;
	int nheld = 0, step, i;

	for (step = 0; step < STEPS; step++) {
		uint32_t op = rnd(&state) % 10;
		uintptr_t addr = page(rnd(&state) % 64) + rnd(&state) % pg;
		size_t len = 1 + rnd(&state) % (4 * pg);

		if (op < 5 && nheld < HELD) {
			struct zc__rcache_entry *e = NULL;

			require(zc__rcache_get(rc, (void *)addr, len, &e) == 0);
			require(zc__rcache_entry_start(e) % pg == 0);
			require(zc__rcache_entry_len(e) % pg == 0);
			require(zc__rcache_entry_start(e) <= addr);
			require(zc__rcache_entry_start(e) + zc__rcache_entry_len(e) >= addr + len);
			held[nheld++] = e;
		} else if (op < 8 && nheld > 0) {
			i = (int)(rnd(&state) % (uint32_t)nheld);
			zc__rcache_put(rc, held[i]);
			held[i] = held[--nheld];
		} else {
			require(zc__rcache_invalidate(rc, (void *)addr, len) >= 0);
		}
		for (i = 0; i < nheld; i++)
			require(is_live(zc__rcache_entry_handle(held[i])));
	}
	while (nheld > 0)
		zc__rcache_put(rc, held[--nheld]);
	/* With nothing referenced the bounds must hold again. */
	zc__rcache_get_stats(rc, &s);
	ck_assert_uint_le(s.entries, MAX_ENTRIES);
	ck_assert_uint_le(s.bytes, MAX_PAGES * pg);
	ck_assert_int_eq(F.nlive, (int)s.entries);
	ck_assert_uint_gt(s.hits, 0);
	ck_assert_uint_gt(s.merges, 0);
	ck_assert_uint_gt(s.evictions, 0);
	free_cache(rc);
}
END_TEST

/* ---- the ring of invalidated ranges (what the memory hooks fill) ---- */


static struct zc__rcache *watching_cache(void)
{
	struct zc__rcache *rc = roomy_cache();

	memset(&ring, 0, sizeof(ring));
	zc__rcache_watch(rc, &ring);
	return rc;
}

static void push_pages(size_t first, size_t n, int cause)
{
	zc__invring_push(&ring, page(first), page(first + n), cause);
}

static uint64_t inv(struct zc__rcache *rc, int cause)
{
	struct zc__rcache_stats s;

	zc__rcache_get_stats(rc, &s);
	return s.inv[cause];
}

START_TEST(test_ring_read_returns_ranges_in_order_and_catches_up)
{
	struct zc__inv_range r[4];
	uint64_t from = 0;
	int i;

	memset(&ring, 0, sizeof(ring));
	for (i = 0; i < 6; i++)
		zc__invring_push(&ring, (uintptr_t)i * 10, (uintptr_t)i * 10 + 5, i % ZC_INV_CAUSES);
	ck_assert_uint_eq(zc__invring_seq(&ring), 6);
	ck_assert_int_eq(zc__invring_read(&ring, &from, r, 4), 4);
	ck_assert_uint_eq(from, 4);
	ck_assert_uint_eq(r[3].start, 30);
	ck_assert_uint_eq(r[3].end, 35);
	ck_assert_int_eq(r[3].cause, 3);
	ck_assert_int_eq(zc__invring_read(&ring, &from, r, 4), 2);
	ck_assert_uint_eq(r[1].start, 50);
	ck_assert_int_eq(zc__invring_read(&ring, &from, r, 4), 0);
	ck_assert_uint_eq(from, 6);
}
END_TEST

/* Two threads push while one reads: every range read is whole (no torn
 * copy of a slot being rewritten), and each pusher's ranges come in the
 * order pushed. Pushers stay within half a ring of the reader, so nothing
 * is lost and every range must arrive. Run under ThreadSanitizer too. */
#define PUSHES 20000
static _Atomic uint64_t read_upto;

static void *pusher(void *arg)
{
	uintptr_t id = (uintptr_t)arg, i;

	for (i = 0; i < PUSHES; i++) {
		while (zc__invring_seq(&ring) - atomic_load(&read_upto) >= ZC_INVRING_SIZE / 2)
			sched_yield();
		zc__invring_push(&ring, id << 40 | i << 12, (id << 40 | i << 12) + 4096 * (id + 1), (int)id);
	}
	return NULL;
}

START_TEST(test_ring_pushes_from_threads_are_read_whole_and_in_order)
{
	struct zc__inv_range r[64];
	uintptr_t next[2] = {0, 0};
	uint64_t from = 0, got = 0;
	pthread_t t[2];
	int n, i;

	memset(&ring, 0, sizeof(ring));
	ck_assert_int_eq(pthread_create(&t[0], NULL, pusher, (void *)0), 0);
	ck_assert_int_eq(pthread_create(&t[1], NULL, pusher, (void *)1), 0);
	atomic_store(&read_upto, 0);
	while (from < 2 * PUSHES) {
		n = zc__invring_read(&ring, &from, r, 64);
		ck_assert_int_ge(n, 0);
		atomic_store(&read_upto, from);
		for (i = 0; i < n; i++) {
			uintptr_t id = (uintptr_t)r[i].cause, idx = (r[i].start & ((1ul << 40) - 1)) >> 12;

			ck_assert(id < 2);
			ck_assert_uint_eq(r[i].start >> 40, id);
			ck_assert_uint_eq(r[i].end - r[i].start, 4096 * (id + 1));
			ck_assert_uint_eq(idx, next[id]);
			next[id] = idx + 1;
			got++;
		}
	}
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	ck_assert_uint_eq(got, 2 * PUSHES);
}
END_TEST

START_TEST(test_ring_reader_left_behind_by_more_than_its_size_is_told_overflow)
{
	struct zc__inv_range r[1];
	uint64_t from = 0, i;

	memset(&ring, 0, sizeof(ring));
	for (i = 0; i < ZC_INVRING_SIZE; i++)
		zc__invring_push(&ring, i, i + 1, ZC_INV_UNMAP);
	ck_assert_int_eq(zc__invring_read(&ring, &from, r, 1), 1); /* exactly full: nothing lost */
	zc__invring_push(&ring, 0, 1, ZC_INV_UNMAP);
	zc__invring_push(&ring, 0, 1, ZC_INV_UNMAP);
	from = 0;
	ck_assert_int_eq(zc__invring_read(&ring, &from, r, 1), -EOVERFLOW);
	ck_assert_uint_eq(from, ZC_INVRING_SIZE + 2);
	ck_assert_int_eq(zc__invring_read(&ring, &from, r, 1), 0);
}
END_TEST

START_TEST(test_ring_lock_held_at_fork_is_released_in_the_child)
{
	struct zc__inv_range r[1];
	uint64_t from = 0;

	memset(&ring, 0, sizeof(ring));
	ck_assert(!atomic_flag_test_and_set(&ring.lock)); /* "another thread" holds it */
	zc__invring_after_fork(&ring);
	zc__invring_push(&ring, 1, 2, ZC_INV_UNMAP); /* would spin forever otherwise */
	ck_assert_int_eq(zc__invring_read(&ring, &from, r, 1), 1);
}
END_TEST

START_TEST(test_watched_range_drops_only_overlapping_entries_at_the_next_get)
{
	struct zc__rcache *rc = watching_cache();

	touch_pages(rc, 0, 2);
	touch_pages(rc, 10, 2);
	touch_pages(rc, 20, 2);
	/* A sub-page range inside page 11: the whole entry [10, 12) is stale. */
	zc__invring_push(&ring, page(11) + 100, page(11) + 200, ZC_INV_MADVISE);
	ck_assert_int_eq(F.deregs, 0); /* the hook never touches the cache */
	touch_pages(rc, 0, 2);         /* any call catches up first */
	ck_assert_int_eq(F.deregs, 1);
	ck_assert_uint_eq(F.dereg_log[0], page(10));
	ck_assert_uint_eq(inv(rc, ZC_INV_MADVISE), 1);
	check_stats(rc, 1, 3, 0, 1, 0, 2, 4 * pg);
	touch_pages(rc, 10, 2); /* the new mapping is registered again */
	ck_assert_int_eq(F.regs, 4);
	zc__rcache_free(rc);
}
END_TEST

START_TEST(test_watched_cache_applies_every_range_since_its_last_call_in_order)
{
	struct zc__rcache *rc = watching_cache();
	int i;

	for (i = 0; i < 8; i++)
		touch_pages(rc, (size_t)i * 4, 1);
	/* More ranges than one catch-up batch, causes mixed. */
	for (i = 0; i < 200; i++)
		push_pages((size_t)(i % 8) * 4, 1, i % 2 ? ZC_INV_UNMAP : ZC_INV_REMAP);
	ck_assert_int_eq(zc__rcache_invalidate(rc, at(100, 0), pg), 0);
	ck_assert_int_eq(F.deregs, 8);
	ck_assert_uint_eq(inv(rc, ZC_INV_REMAP) + inv(rc, ZC_INV_UNMAP), 8);
	ck_assert_uint_eq(inv(rc, ZC_INV_REMAP), 4);
	/* Nothing new: the next call applies nothing again. */
	touch_pages(rc, 0, 1);
	ck_assert_int_eq(F.deregs, 8);
	ck_assert_int_eq(F.regs, 9);
	zc__rcache_free(rc);
}
END_TEST

START_TEST(test_ring_overflow_drops_every_entry_in_use_ones_at_their_put)
{
	struct zc__rcache *rc = watching_cache();
	struct zc__rcache_entry *busy;
	int i;

	touch_pages(rc, 0, 1);
	touch_pages(rc, 10, 1);
	busy = get_pages(rc, 20, 1);
	for (i = 0; i < ZC_INVRING_SIZE + 1; i++)
		push_pages(1000, 1, ZC_INV_UNMAP); /* touches no entry, but the ring laps */
	touch_pages(rc, 30, 1);
	ck_assert_int_eq(F.deregs, 2); /* the idle ones at once */
	ck_assert(is_live(zc__rcache_entry_handle(busy)));
	ck_assert_uint_eq(inv(rc, ZC_INV_OVERFLOW), 3);
	touch_pages(rc, 20, 1); /* the busy entry left the index: a miss */
	ck_assert_int_eq(F.regs, 5);
	zc__rcache_put(rc, busy);
	ck_assert_int_eq(F.deregs, 3);
	zc__rcache_free(rc);
	ck_assert_int_eq(F.nlive, 0);
}
END_TEST

START_TEST(test_unmap_of_entry_in_use_defers_its_dereg_and_never_hits_again)
{
	struct zc__rcache *rc = watching_cache();
	struct zc__rcache_entry *busy = get_pages(rc, 0, 4), *e;

	push_pages(2, 1, ZC_INV_UNMAP);
	e = get_pages(rc, 0, 4); /* same range after the unmap: must miss */
	ck_assert_ptr_ne(e, busy);
	ck_assert_int_eq(F.regs, 2);
	ck_assert_int_eq(F.deregs, 0); /* the transfer in flight keeps its pages */
	ck_assert(is_live(zc__rcache_entry_handle(busy)));
	zc__rcache_put(rc, busy);
	ck_assert_int_eq(F.deregs, 1);
	ck_assert_uint_eq(F.dereg_log[0], page(0));
	ck_assert_uint_eq(inv(rc, ZC_INV_UNMAP), 1);
	zc__rcache_put(rc, e);
	zc__rcache_free(rc);
	ck_assert_int_eq(F.nlive, 0);
}
END_TEST

START_TEST(test_pushes_made_by_a_dereg_during_catch_up_are_applied_too)
{
	struct zc__rcache *rc = watching_cache();

	touch_pages(rc, 0, 1);
	touch_pages(rc, 10, 1);
	F.push_on_dereg = 1; /* the first dereg "frees", and free unmaps page 10 */
	push_pages(0, 1, ZC_INV_UNMAP);
	touch_pages(rc, 20, 1);
	ck_assert_int_eq(F.deregs, 2);
	ck_assert_uint_eq(inv(rc, ZC_INV_BRK), 1);
	zc__rcache_free(rc);
}
END_TEST

START_TEST(test_explicit_invalidate_counts_as_explicit)
{
	struct zc__rcache *rc = watching_cache();

	touch_pages(rc, 0, 1);
	ck_assert_int_eq(zc__rcache_invalidate(rc, at(0, 0), 1), 1);
	ck_assert_uint_eq(inv(rc, ZC_INV_EXPLICIT), 1);
	zc__rcache_free(rc);
}
END_TEST


int main(void)
{
	Suite *s = suite_create("rcache");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_get_inside_registered_range_is_a_hit);
	tcase_add_test(tc, test_first_get_misses_and_the_same_range_then_hits);
	tcase_add_test(tc, test_one_byte_get_at_odd_address_registers_one_page);
	tcase_add_test(tc, test_get_straddling_a_page_boundary_registers_both_pages);
	tcase_add_test(tc, test_entry_reports_the_handle_and_range_it_registered);
	tcase_add_test(tc, test_overlapping_get_merges_into_one_registration_of_the_union);
	tcase_add_test(tc, test_adjacent_ranges_merge);
	tcase_add_test(tc, test_get_bridging_several_entries_merges_them_all_and_spares_the_rest);
	tcase_add_test(tc, test_merge_keeps_a_referenced_entry_alive_until_its_put);
	tcase_add_test(tc, test_lru_evicts_least_recently_used_first);
	tcase_add_test(tc, test_max_bytes_bound_evicts_least_recently_used_until_under);
	tcase_add_test(tc, test_entry_larger_than_max_bytes_is_evicted_at_its_last_put);
	tcase_add_test(tc, test_referenced_entries_are_never_evicted);
	tcase_add_test(tc, test_oldest_entry_is_skipped_while_referenced);
	tcase_add_test(tc, test_invalidate_of_unreferenced_entry_deregisters_immediately);
	tcase_add_test(tc, test_invalidate_of_referenced_entry_deregisters_at_put_and_next_get_misses);
	tcase_add_test(tc, test_invalidate_returns_how_many_overlapping_entries_it_dropped);
	tcase_add_test(tc, test_reg_failure_returns_its_error_and_leaves_the_cache_unchanged);
	tcase_add_test(tc, test_reg_failure_without_an_error_code_is_still_an_error);
	tcase_add_test(tc, test_new_rejects_bad_arguments);
	tcase_add_test(tc, test_get_rejects_bad_arguments_and_ranges_that_wrap);
	tcase_add_test(tc, test_free_deregisters_every_handle_exactly_once);
	tcase_add_test(tc, test_stats_count_every_event_exactly);
	tcase_add_test(tc, test_random_workload_keeps_references_valid_and_leaks_nothing);
	tcase_add_test(tc, test_ring_read_returns_ranges_in_order_and_catches_up);
	tcase_add_test(tc, test_ring_pushes_from_threads_are_read_whole_and_in_order);
	tcase_add_test(tc, test_ring_reader_left_behind_by_more_than_its_size_is_told_overflow);
	tcase_add_test(tc, test_ring_lock_held_at_fork_is_released_in_the_child);
	tcase_add_test(tc, test_watched_range_drops_only_overlapping_entries_at_the_next_get);
	tcase_add_test(tc, test_watched_cache_applies_every_range_since_its_last_call_in_order);
	tcase_add_test(tc, test_ring_overflow_drops_every_entry_in_use_ones_at_their_put);
	tcase_add_test(tc, test_unmap_of_entry_in_use_defers_its_dereg_and_never_hits_again);
	tcase_add_test(tc, test_pushes_made_by_a_dereg_during_catch_up_are_applied_too);
	tcase_add_test(tc, test_explicit_invalidate_counts_as_explicit);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
