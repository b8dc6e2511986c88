/*
 * memhook_bench - what the memory hooks cost, on any host (no RDMA):
 *
 *   1. N mmap/munmap pairs of one page through libc's own functions, before
 *      and after zc__memhook_install() patched them (the hook records the
 *      range under the ring's spinlock and makes the system call itself),
 *      and N munmaps of a page where nothing is mapped (a system call that
 *      does nothing, so the hook's share shows), and the ring push alone;
 *   2. a registration-cache hit (zc__rcache_get + zc__rcache_put of a cached
 *      range, fake registrar), with the cache watching the ring and not,
 *      alternating, once the hooks are in (nothing unmaps meanwhile).
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

/* munmap of a page nothing is mapped at: the system call does no work, so
 * what the hook adds (a ring push under the spinlock) is not lost in noise. */
static double empty_munmap(long n, void *hole)
{
	double v[RUNS];
	int r;

	for (r = 0; r < RUNS; r++) {
		double t0 = now_ns();
		long i;

		for (i = 0; i < n; i++)
			libc_munmap(hole, 4096);
		v[r] = (now_ns() - t0) / (double)n;
	}
	return median(v);
}

/* What a hook adds besides the jump: one push, uncontended. */
static double pushes(long n)
{
	static struct zc__invring ring;
	double v[RUNS];
	int r;

	for (r = 0; r < RUNS; r++) {
		double t0 = now_ns();
		long i;

		for (i = 0; i < n; i++)
			zc__invring_push(&ring, (uintptr_t)i << 12, (uintptr_t)(i + 1) << 12, ZC_INV_UNMAP);
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

/* One run of n cache hits; the caller alternates watching and not. */
static double hits(long n, int watch)
{
	static const struct zc__rcache_ops ops = {fake_reg, fake_dereg, NULL};
	static char buf[1 << 16];
	struct zc__rcache *rc;
	struct zc__rcache_entry *e;
	double t0;
	long i;

	if (zc__rcache_new(&ops, 256, 1 << 30, &rc))
		exit(1);
	zc__rcache_watch(rc, watch ? zc__memhook_ring() : NULL);
	if (zc__rcache_get(rc, buf, sizeof(buf), &e)) /* the miss */
		exit(1);
	zc__rcache_put(rc, e);
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		if (zc__rcache_get(rc, buf, sizeof(buf), &e))
			exit(1);
		zc__rcache_put(rc, e);
	}
	t0 = (now_ns() - t0) / (double)n;
	zc__rcache_free(rc);
	return t0;
}

static void hit_costs(long n)
{
	double off[RUNS], on[RUNS];
	int r;

	for (r = 0; r < RUNS; r++) {
		off[r] = hits(n, 0);
		on[r] = hits(n, 1);
	}
	printf("rcache hit, not watching:      %7.1f ns\n", median(off));
	printf("rcache hit, watching the ring: %7.1f ns\n", median(on));
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 200000;
	void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
	double before, after, e_before, e_after;
	void *hole;
	int mode;

	if (n < 1 || !libc) {
		fprintf(stderr, "usage: memhook_bench [N]\n");
		return 2;
	}
	/* libc's own entry points: the code the hooks patch. */
	libc_mmap = (mmap_fn)dlsym(libc, "mmap");
	libc_munmap = (munmap_fn)dlsym(libc, "munmap");
	hole = libc_mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	libc_munmap(hole, 4096);
	map_unmap(n / 4 + 1); /* warm-up: page tables, caches, CPU frequency */
	before = map_unmap(n);
	e_before = empty_munmap(n, hole);
	mode = zc__memhook_install();
	after = map_unmap(n);
	e_after = empty_munmap(n, hole);
	printf("mmap+munmap, libc unhooked:    %7.1f ns\n", before);
	printf("mmap+munmap, hooks (mode %d):   %7.1f ns (%+.1f ns)\n", mode, after, after - before);
	printf("munmap of nothing, unhooked:   %7.1f ns\n", e_before);
	printf("munmap of nothing, hooked:     %7.1f ns (%+.1f ns)\n", e_after, e_after - e_before);
	printf("ring push alone:               %7.1f ns\n", pushes(n * 10));
	hit_costs(n * 10);
	return 0;
}
