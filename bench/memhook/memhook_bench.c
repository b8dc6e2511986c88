/*
 * memhook_bench - what the memory hooks cost, on any host (no RDMA):
 *
 *   1. N mmap/munmap pairs of one page through libc's own functions, before
 *      and after zc_memhook_install() patched them (the hook records the
 *      range under the ring's spinlock and makes the system call itself);
 *   2. a registration-cache hit (zc_rcache_get + zc_rcache_put of a cached
 *      range, fake registrar), with the cache watching the ring and not.
 *
 *   memhook_bench [N]      (default 200000)
 *
 * Prints one line per measurement: the median of 5 runs, in ns per pair or
 * per hit. docs/benchmarks.md ("Memory hooks") has the figures.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "memhook.h"
#include "rcache.h"

#define RUNS 5

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);

static mmap_fn libc_mmap;
static munmap_fn libc_munmap;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v)
{
	qsort(v, RUNS, sizeof(*v), cmp);
	return v[RUNS / 2];
}

static double map_unmap(long n)
{
	double v[RUNS];
	int r;

	for (r = 0; r < RUNS; r++) {
		double t0 = now_ns();
		long i;

		for (i = 0; i < n; i++) {
			void *p = libc_mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (p == MAP_FAILED || libc_munmap(p, 4096)) {
				perror("mmap/munmap");
				exit(1);
			}
		}
		v[r] = (now_ns() - t0) / (double)n;
	}
	return median(v);
}

static void *fake_reg(void *arg, void *addr, size_t len, int *err)
{
	(void)arg, (void)len, (void)err;
	return addr;
}

static void fake_dereg(void *arg, void *handle)
{
	(void)arg, (void)handle;
}

static double hits(long n, int watch)
{
	static const struct zc_rcache_ops ops = {fake_reg, fake_dereg, NULL};
	static char buf[1 << 16];
	struct zc_rcache *rc;
	struct zc_rcache_entry *e;
	double v[RUNS];
	int r;

	if (zc_rcache_new(&ops, 256, 1 << 30, &rc))
		exit(1);
	zc_rcache_watch(rc, watch ? zc_memhook_ring() : NULL);
	for (r = 0; r < RUNS; r++) {
		double t0 = now_ns();
		long i;

		for (i = 0; i < n; i++) {
			if (zc_rcache_get(rc, buf, sizeof(buf), &e))
				exit(1);
			zc_rcache_put(rc, e);
		}
		v[r] = (now_ns() - t0) / (double)n;
	}
	zc_rcache_free(rc);
	return median(v);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 200000;
	void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
	double before, after;
	int mode;

	if (n < 1 || !libc) {
		fprintf(stderr, "usage: memhook_bench [N]\n");
		return 2;
	}
	/* libc's own entry points: the code the hooks patch. */
	libc_mmap = (mmap_fn)dlsym(libc, "mmap");
	libc_munmap = (munmap_fn)dlsym(libc, "munmap");
	before = map_unmap(n);
	printf("rcache hit, not watching:      %7.1f ns\n", hits(n * 10, 0));
	mode = zc_memhook_install();
	after = map_unmap(n);
	printf("mmap+munmap, libc unhooked:    %7.1f ns\n", before);
	printf("mmap+munmap, hooks (mode %d):   %7.1f ns (%+.1f ns)\n", mode, after, after - before);
	printf("rcache hit, watching the ring: %7.1f ns\n", hits(n * 10, 1));
	return 0;
}
