/* The ring of invalidated ranges (see invring.h). */
#include <errno.h>

#include "invring.h"

static void lock(struct zc_invring *ring)
{
	while (atomic_flag_test_and_set_explicit(&ring->lock, memory_order_acquire))
		;
}

static void unlock(struct zc_invring *ring)
{
	atomic_flag_clear_explicit(&ring->lock, memory_order_release);
}

void zc_invring_after_fork(struct zc_invring *ring)
{
	/* The holder was between taking the lock and bumping the sequence:
	 * its range is not visible, and its unmap never happened here. */
	unlock(ring);
}

void zc_invring_push(struct zc_invring *ring, uintptr_t start, uintptr_t end, int cause)
{
	uint64_t seq;

	lock(ring);
	seq = atomic_load_explicit(&ring->seq, memory_order_relaxed);
	ring->r[seq % ZC_INVRING_SIZE] = (struct zc_inv_range){start, end, cause};
	/* Release: a reader that sees the new sequence sees the range. */
	atomic_store_explicit(&ring->seq, seq + 1, memory_order_release);
	unlock(ring);
}

int zc_invring_read(struct zc_invring *ring, uint64_t *from, struct zc_inv_range *out, int max)
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
