/* Credit accounting and the receive-slot budget: see credit.h for the rules. */
#include <errno.h>

#include "zcrdma.h"
#include "credit.h"
#include "error.h"

int zc__budget_reserve(struct zc__rx_budget *b, uint32_t n, bool mandatory)
{
	uint32_t room;

	if (mandatory) {
		if (n > b->hard_max - b->reserved)
			return zc__err(-ENOBUFS, "the context's receive pool is full (%u slots promised to its "
						 "connections, %u at most): close connections",
				      b->reserved, b->hard_max);
		b->reserved += n;
		return (int)n;
	}
	room = b->reserved < b->soft_max ? b->soft_max - b->reserved : 0;
	if (n > room)
		n = room;
	b->reserved += n;
	return (int)n;
}

void zc__budget_release(struct zc__rx_budget *b, uint32_t n)
{
	b->reserved -= n;
}

bool zc__budget_pressed(const struct zc__rx_budget *b)
{
	return b->reserved > b->soft_max;
}

int zc__credit_open(struct zc__credit *c, struct zc__rx_budget *b, uint32_t max)
{
	uint32_t first = ZC__CREDIT_FIRST_WINDOW;
	int rc;

	*c = (struct zc__credit){.budget = b, .max_out = max, .window = first, .min_window = first,
				 .max_window = max > first ? max : first};
	rc = zc__budget_reserve(b, first + 1, true);
	if (rc < 0) {
		c->budget = NULL;
		return rc;
	}
	c->granted = first;
	return 0;
}

void zc__credit_close(struct zc__credit *c)
{
	if (!c->budget)
		return;
	zc__budget_release(c->budget, (c->granted - c->released) + (c->sent - c->peer_acked) + 1);
	c->budget = NULL;
}

void zc__credit_peer_params(struct zc__credit *c, uint32_t peer_max)
{
	c->edge = ZC__CREDIT_FIRST_WINDOW;
	/* A window beyond what the peer keeps unacknowledged is never used. */
	if (peer_max < c->max_window)
		c->max_window = peer_max > c->min_window ? peer_max : c->min_window;
}

uint32_t zc__credit_avail(const struct zc__credit *c)
{
	uint32_t by_edge = c->edge - c->sent, out = c->sent - c->peer_acked;
	uint32_t by_out = out < c->max_out ? c->max_out - out : 0;

	/* The edge is ahead of sent or equal to it (on_ack checks). */
	return by_edge < by_out ? by_edge : by_out;
}

int zc__credit_take(struct zc__credit *c)
{
	if (zc__credit_avail(c) == 0)
		return -EAGAIN;
	if (zc__budget_reserve(c->budget, 1, true) < 0)
		return -EAGAIN;
	c->sent++;
	return 0;
}

int zc__credit_on_ack(struct zc__credit *c, uint32_t ack, uint32_t window)
{
	uint32_t outstanding = c->sent - c->peer_acked;
	uint32_t delta = ack - c->peer_acked;
	uint32_t edge = ack + window;

	if (delta > outstanding)
		return zc__err(-ZC_EPEERPROTO, "peer returned %u credits but only %u were outstanding", delta,
			      outstanding);
	/* The edge may only move forward; sent is at or below the old one. */
	if ((int32_t)(edge - c->edge) < 0)
		return zc__err(-ZC_EPEERPROTO, "peer moved its credit edge back from %u to %u", c->edge, edge);
	c->peer_acked = ack;
	c->edge = edge;
	zc__budget_release(c->budget, delta);
	return 0;
}

int zc__credit_on_data(struct zc__credit *c)
{
	if (c->recvd == c->granted)
		return zc__err(-ZC_EPEERPROTO, "peer sent more data messages than the %u it was granted",
			      c->granted - c->released);
	c->recvd++;
	return 0;
}

void zc__credit_release(struct zc__credit *c)
{
	bool blocked = c->recvd == c->granted;

	c->released++;
	zc__budget_release(c->budget, 1);
	if (zc__budget_pressed(c->budget)) {
		if (c->window > c->min_window)
			c->window--;
	} else if (blocked && c->window < c->max_window) {
		c->window++;
	}
}

uint32_t zc__credit_unadvertised(const struct zc__credit *c)
{
	return c->released - c->advertised;
}

bool zc__credit_update_due(const struct zc__credit *c)
{
	uint32_t owed = zc__credit_unadvertised(c);
	uint32_t half = c->max_window / 2 ? c->max_window / 2 : 1;

	/* A blocked peer hears back once we hold nothing of its data (or a
	 * half is owed), not at every release: a CREDIT per message while
	 * the reader is the slower side would halve the message rate. The
	 * peer's own limit (sent - acked < its credits) never blocks it first:
	 * the edge is at most max_window beyond the last ack. */
	return owed > 0 && (owed >= half || (c->recvd == c->granted && c->released == c->recvd));
}

void zc__credit_advertise(struct zc__credit *c, uint32_t *ack, uint16_t *window)
{
	uint32_t floor = c->released + c->min_window, target = c->released + c->window;
	int got;

	/* The minimum window is a mandatory promise: it was held before the
	 * releases that gave it back. */
	if ((int32_t)(floor - c->granted) > 0) {
		got = zc__budget_reserve(c->budget, floor - c->granted, true);
		if (got > 0)
			c->granted += (uint32_t)got;
	}
	if ((int32_t)(target - c->granted) > 0) {
		got = zc__budget_reserve(c->budget, target - c->granted, false);
		if (got > 0)
			c->granted += (uint32_t)got;
		/* What the pool could not give is not lent: the window is what
		 * the peer was told. */
		if (c->granted - c->released < c->window)
			c->window = c->granted - c->released;
	}
	c->advertised = c->released;
	*ack = c->released;
	*window = (uint16_t)(c->granted - c->released);
}
