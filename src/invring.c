/* The ring of invalidated ranges (see invring.h). */
#include <errno.h>

#include "invring.h"

static void lock(struct zc__invring *ring)
{
	while (atomic_flag_test_and_set_explicit(&ring->lock, memory_order_acquire))
		;
}

static void unlock(struct zc__invring *ring)
{
	atomic_flag_clear_explicit(&ring->lock, memory_order_release);
}

void zc__invring_after_fork(struct zc__invring *ring)
{
	/* The holder was between taking the lock and bumping the sequence:
	 * its range is not visible, and its unmap never happened here. */
	unlock(ring);
}

void zc__invring_push(struct zc__invring *ring, uintptr_t start, uintptr_t end, int cause)
{
	uint64_t seq;

	lock(ring);
	seq = atomic_load_explicit(&ring->seq, memory_order_relaxed);
	ring->r[seq % ZC_INVRING_SIZE] = (struct zc__inv_range){start, end, cause};
	/* Release: a reader that sees the new sequence sees the range. */
	atomic_store_explicit(&ring->seq, seq + 1, memory_order_release);
	unlock(ring);
}

int zc__invring_read(struct zc__invring *ring, uint64_t *from, struct zc__inv_range *out, int max)
{
	uint64_t seq;
	int n = 0;

	lock(ring);
	seq = atomic_load_explicit(&ring->seq, memory_order_relaxed);
	if (seq - *from > ZC_INVRING_SIZE) {
		*from = seq;
		unlock(ring);
		return -EOVERFLOW;
	}
	for (; *from != seq && n < max; ++*from)
		out[n++] = ring->r[*from % ZC_INVRING_SIZE];
	unlock(ring);
	return n;
}
