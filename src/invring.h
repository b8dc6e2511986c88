/*
 * Internal: the ring of invalidated address ranges.
 *
 * The memory hooks (src/memhook.c) push every range whose pages the process
 * just gave up (munmap, mremap, MAP_FIXED, madvise, brk, shmdt) and bump a
 * 64-bit sequence number; every registration cache remembers the last
 * sequence it applied and catches up on its next call. The ring is the only
 * state shared between the hooks (any thread, possibly inside free() holding
 * malloc's locks) and the caches (their context's thread), so pushing never
 * allocates and takes only a spinlock held for a few stores. Readers copy
 * ranges out under the lock and apply them after releasing it: applying
 * deregisters, which may free, which may unmap, which pushes.
 *
 * A reader that fell more than ZC_INVRING_SIZE ranges behind has lost some:
 * it is told so (-EOVERFLOW) and must forget everything it cached.
 *
 * Pure code: the unit tests drive their own ring without any hook.
 */
#ifndef ZC_INVRING_H
#define ZC_INVRING_H

#include <stdatomic.h>
#include <stdint.h>

#define ZC_INVRING_SIZE 1024

/* Why a cached registration was dropped (zc_stats counts each). */
enum zc__inv_cause {
	ZC_INV_UNMAP,    /* munmap, or the old place of an mremap */
	ZC_INV_REMAP,    /* mmap MAP_FIXED over it, mremap onto it */
	ZC_INV_MADVISE,  /* MADV_DONTNEED / FREE / REMOVE / DONTNEED_LOCKED */
	ZC_INV_BRK,      /* the heap shrank (brk, sbrk, malloc trimming) */
	ZC_INV_SHMDT,    /* a System V segment was detached */
	ZC_INV_EXPLICIT, /* zc_mr_invalidate() */
	ZC_INV_OVERFLOW, /* dropped because the ring overflowed */
	ZC_INV_CAUSES
};

struct zc__inv_range {
	uintptr_t start, end; /* [start, end) */
	int cause;
};

struct zc__invring {
	atomic_flag lock;
	_Atomic uint64_t seq; /* ranges pushed so far; range n is at r[n % SIZE] */
	struct zc__inv_range r[ZC_INVRING_SIZE];
};

/* A zeroed ring (static storage, or memset) is ready to use. */

/* Records [start, end). Never allocates; safe inside malloc and free. */
void zc__invring_push(struct zc__invring *ring, uintptr_t start, uintptr_t end, int cause);

/* In a fork()ed child, the only thread: a lock some other thread of the
 * parent held at the fork stays held forever unless released here. */
void zc__invring_after_fork(struct zc__invring *ring);

/* The hot-path check: has anything been pushed since seq? */
static inline uint64_t zc__invring_seq(struct zc__invring *ring)
{
	return atomic_load_explicit(&ring->seq, memory_order_acquire);
}

/*
 * Copies up to max ranges pushed from sequence *from on into out and
 * advances *from past them. Returns how many (0: caught up), or -EOVERFLOW
 * when some of them were already overwritten; *from then jumps to the
 * current sequence and the caller must treat everything as invalidated.
 */
int zc__invring_read(struct zc__invring *ring, uint64_t *from, struct zc__inv_range *out, int max);

#endif
