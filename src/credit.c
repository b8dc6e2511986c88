/* Credit accounting: see credit.h for the rules. */
#include <errno.h>

#include "zcrdma.h"
#include "credit.h"
#include "error.h"

void zc__credit_init(struct zc__credit *c, uint32_t limit)
{
	*c = (struct zc__credit){.limit = limit};
}

uint32_t zc__credit_avail(const struct zc__credit *c)
{
	return c->limit - (c->sent - c->peer_acked);
}

int zc__credit_take(struct zc__credit *c)
{
	if (zc__credit_avail(c) == 0)
		return -EAGAIN;
	c->sent++;
	return 0;
}

int zc__credit_on_ack(struct zc__credit *c, uint32_t ack)
{
	uint32_t outstanding = c->sent - c->peer_acked;
	uint32_t delta = ack - c->peer_acked;

	if (delta > outstanding)
		return zc__err(-ZC_EPEERPROTO, "peer returned %u credits but only %u were outstanding", delta,
			      outstanding);
	c->peer_acked = ack;
	return 0;
}

void zc__credit_release(struct zc__credit *c)
{
	c->released++;
}

uint32_t zc__credit_unadvertised(const struct zc__credit *c)
{
	return c->released - c->advertised;
}

int zc__credit_peer_may_send(const struct zc__credit *c, uint32_t held)
{
	return held + zc__credit_unadvertised(c) < c->limit;
}

int zc__credit_update_due(const struct zc__credit *c, uint32_t held)
{
	uint32_t owed = zc__credit_unadvertised(c);
	uint32_t quarter = c->limit / 4 ? c->limit / 4 : 1;

	return owed >= quarter || (owed > 0 && held + owed >= c->limit);
}

uint32_t zc__credit_advertise(struct zc__credit *c)
{
	c->advertised = c->released;
	return c->released;
}
