#define _GNU_SOURCE
#include <check.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include "memhook.h"
#include "zcrdma.h"

/*
 * The hooks installed in this very process (no RDMA needed): each way of
 * giving memory back, including the ones glibc makes internally from free()
 * and malloc_trim(), must leave its range in the ring with its cause.
 */

static uint64_t seen;

static void setup(void)
{
	int mode = zc__memhook_install();

#if defined(__x86_64__) && defined(__GLIBC__)
	ck_assert_int_eq(mode, ZC_MEMHOOKS_PATCH);
#else
	ck_assert_int_ge(mode, ZC_MEMHOOKS_INTERPOSE);
#endif
	seen = zc__invring_seq(zc__memhook_ring());
}

/* True if a range pushed since setup (or the last call) with this cause
 * covers [addr, addr + len). */
static int recorded(uintptr_t s, size_t len, int cause)
{
	struct zc__inv_range r[64];
	int n, i, found = 0;

	while ((n = zc__invring_read(zc__memhook_ring(), &seen, r, 64)) > 0)
		for (i = 0; i < n; i++)
			if (r[i].cause == cause && r[i].start <= s && r[i].end >= s + len)
				found = 1;
	ck_assert_int_ge(n, 0);
	return found;
}

static void *map(void *at, size_t len, int flags)
{
	void *p = mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

START_TEST(test_munmap_and_mmap_fixed_are_recorded)
{
	char *p = map(NULL, 1 << 20, 0);

	ck_assert(!recorded((uintptr_t)p, 1 << 20, ZC_INV_UNMAP)); /* a fresh mapping replaces nothing */
	ck_assert_int_eq(munmap(p + 4096, 8192), 0);
	ck_assert(recorded((uintptr_t)(p + 4096), 8192, ZC_INV_UNMAP));
	ck_assert_ptr_eq(map(p, 1 << 20, MAP_FIXED), p);
	ck_assert(recorded((uintptr_t)p, 1 << 20, ZC_INV_REMAP));
	munmap(p, 1 << 20);
}
END_TEST

START_TEST(test_mremap_records_the_old_range_and_a_fixed_destination)
{
	char *p = map(NULL, 1 << 20, 0), *q, *d = map(NULL, 2 << 20, 0);

	q = mremap(p, 1 << 20, 4 << 20, MREMAP_MAYMOVE);
	ck_assert_ptr_ne(q, MAP_FAILED);
	ck_assert(recorded((uintptr_t)p, 1 << 20, ZC_INV_UNMAP));
	p = mremap(q, 4 << 20, 2 << 20, MREMAP_MAYMOVE | MREMAP_FIXED, d);
	ck_assert_ptr_eq(p, d);
	ck_assert(recorded((uintptr_t)d, 2 << 20, ZC_INV_REMAP));
	munmap(d, 2 << 20);
}
END_TEST

START_TEST(test_madvise_records_only_advice_that_drops_pages)
{
	char *p = map(NULL, 1 << 20, 0);

	ck_assert_int_eq(madvise(p, 4096, MADV_WILLNEED), 0);
	ck_assert(!recorded((uintptr_t)p, 4096, ZC_INV_MADVISE));
	ck_assert_int_eq(madvise(p + 8192, 4096, MADV_DONTNEED), 0);
	ck_assert(recorded((uintptr_t)(p + 8192), 4096, ZC_INV_MADVISE));
	ck_assert_int_eq(madvise(p, 4096, MADV_FREE), 0);
	ck_assert(recorded((uintptr_t)p, 4096, ZC_INV_MADVISE));
	munmap(p, 1 << 20);
}
END_TEST

START_TEST(test_heap_shrinking_by_sbrk_and_brk_is_seen)
{
	char *top = sbrk(0);

	ck_assert_ptr_ne(sbrk(1 << 20), (void *)-1);
	ck_assert_ptr_ne(sbrk(-(1 << 19)), (void *)-1);
	ck_assert_ptr_eq(sbrk(0), top + (1 << 19)); /* __curbrk kept exact */
	ck_assert(recorded((uintptr_t)(top + (1 << 19)), 1 << 19, ZC_INV_BRK));
	ck_assert_ptr_ne(sbrk(-(1 << 19)), (void *)-1);
	ck_assert_ptr_eq(sbrk(0), top);
	ck_assert_int_eq(brk(top + 8192), 0);
	ck_assert_ptr_eq(sbrk(0), top + 8192);
	ck_assert_int_eq(brk(top), 0);
	ck_assert(recorded((uintptr_t)top, 8192, ZC_INV_BRK));
}
END_TEST

/* ASan's allocator replaces glibc's malloc: these two need the real one. */
#ifndef __SANITIZE_ADDRESS__
START_TEST(test_free_of_a_large_block_is_seen_inside_glibc)
{
	char *p = malloc(4 << 20); /* above the mmap threshold: its own mapping */
	uintptr_t at = (uintptr_t)p;

	ck_assert_ptr_nonnull(p);
	memset(p, 'A', 4 << 20);
	free(p);
	ck_assert(recorded(at, 4 << 20, ZC_INV_UNMAP));
}
END_TEST

START_TEST(test_malloc_trim_shrinking_the_heap_is_seen)
{
	char *p;
	uintptr_t mid;

	/* The heap grows under small blocks; freeing them and trimming shrinks it. */
	mallopt(M_TRIM_THRESHOLD, 128 << 10);
	p = malloc(100 << 10); /* below the mmap threshold: from the heap */
	ck_assert_ptr_nonnull(p);
	memset(p, 1, 100 << 10);
	mid = (uintptr_t)p + (64 << 10);
	free(p);
	malloc_trim(0);
	ck_assert(recorded(mid, 4096, ZC_INV_BRK) || recorded(mid, 4096, ZC_INV_MADVISE));
}
END_TEST
#endif

START_TEST(test_shmdt_records_the_whole_segment)
{
	int id = shmget(IPC_PRIVATE, 3 << 20, IPC_CREAT | 0600);
	char *p;

	ck_assert_int_ge(id, 0);
	p = shmat(id, NULL, 0);
	shmctl(id, IPC_RMID, NULL);
	ck_assert_ptr_ne(p, (void *)-1);
	ck_assert_int_eq(shmdt(p), 0);
	ck_assert(recorded((uintptr_t)p, 3 << 20, ZC_INV_SHMDT));
}
END_TEST

START_TEST(test_install_is_idempotent)
{
	int mode = zc__memhook_install();

	ck_assert_int_eq(zc__memhook_install(), mode);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("memhook");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_munmap_and_mmap_fixed_are_recorded);
	tcase_add_test(tc, test_mremap_records_the_old_range_and_a_fixed_destination);
	tcase_add_test(tc, test_madvise_records_only_advice_that_drops_pages);
	tcase_add_test(tc, test_heap_shrinking_by_sbrk_and_brk_is_seen);
#ifndef __SANITIZE_ADDRESS__
	tcase_add_test(tc, test_free_of_a_large_block_is_seen_inside_glibc);
	tcase_add_test(tc, test_malloc_trim_shrinking_the_heap_is_seen);
#endif
	tcase_add_test(tc, test_shmdt_records_the_whole_segment);
	tcase_add_test(tc, test_install_is_idempotent);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
