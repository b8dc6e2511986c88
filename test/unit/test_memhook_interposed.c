#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memhook.h"
#include "zcrdma.h"

/*
 * The hooks with an interposer ahead of them that forwards to libc's own
 * mmap, as AddressSanitizer's interceptor does when its runtime is preloaded
 * ahead of libc and libzcrdma comes after libc (zcrun with a sanitizer
 * build). This executable's mmap wins the symbol lookup over the hooks'
 * (built into a shared library here, test/CMakeLists.txt). libc's patched
 * mmap must jump to the hooks' own handler: were it to jump to whatever
 * "mmap" resolves to, it would land in the interposer again, which forwards
 * to libc's mmap, and so on forever (ASan's tail call spun in place).
 */

static void *(*libc_mmap)(void *, size_t, int, int, int, off_t);
static int depth, reentered, calls;

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p;

	if (!libc_mmap) /* not the test's yet (ASan's runtime maps before main) */
		return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	calls++;
	if (depth) { /* came back through libc: the loop, cut short here */
		reentered++;
		return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	}
	depth++;
	p = libc_mmap(addr, len, prot, flags, fd, off);
	depth--;
	return p;
}

START_TEST(test_libc_entry_reaches_the_handler_not_the_interposer)
{
	void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
	uint64_t seen;
	struct zc__inv_range r[64];
	int n, i, found = 0, mode;
	char *p;

	ck_assert_ptr_nonnull(libc);
	mode = zc__memhook_install();
	libc_mmap = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(libc, "mmap");
	ck_assert_ptr_nonnull(libc_mmap);
#if defined(__x86_64__) && defined(__GLIBC__)
	ck_assert_int_eq(mode, ZC_MEMHOOKS_PATCH);
#else
	(void)mode;
#endif
	seen = zc__invring_seq(zc__memhook_ring());
	p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	ck_assert_ptr_eq(mmap(p, 1 << 16, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), p);
	ck_assert_int_eq(calls, 2); /* once each, never back through libc */
	ck_assert_int_eq(reentered, 0);
	while ((n = zc__invring_read(zc__memhook_ring(), &seen, r, 64)) > 0)
		for (i = 0; i < n; i++)
			if (r[i].cause == ZC_INV_REMAP && r[i].start == (uintptr_t)p &&
			    r[i].end == (uintptr_t)p + (1 << 16))
				found = 1;
	ck_assert(found);
	syscall(SYS_munmap, p, 1 << 20);
	dlclose(libc);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("memhook_interposed");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_libc_entry_reaches_the_handler_not_the_interposer);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
