/* Credit accounting: see credit.h for the rules. */
#include <errno.h>

#include "zcrdma.h"
#include "credit.h"
#include "error.h"

void zc_credit_init(struct zc_credit *c, uint32_t limit)
{
	*c = (struct zc_credit){.limit = limit};
}

uint32_t zc_credit_avail(const struct zc_credit *c)
{
	return c->limit - (c->sent - c->peer_acked);
}

int zc_credit_take(struct zc_credit *c)
{
	if (zc_credit_avail(c) == 0)
		return -EAGAIN;
	c->sent++;
	return 0;
}

int zc_credit_on_ack(struct zc_credit *c, uint32_t ack)
{
	uint32_t outstanding = c->sent - c->peer_acked;
	uint32_t delta = ack - c->peer_acked;

	if (delta > outstanding)
		return zc_err(-ZC_EPEERPROTO, "peer returned %u credits but only %u were outstanding", delta,
			      outstanding);
	c->peer_acked = ack;
	return 0;
}

void zc_credit_release(struct zc_credit *c)
{
	c->released++;
}

uint32_t zc_credit_unadvertised(const struct zc_credit *c)
{
	return c->released - c->advertised;
}

int zc_credit_peer_may_send(const struct zc_credit *c, uint32_t held)
{
	return held + zc_credit_unadvertised(c) < c->limit;
}

int zc_credit_update_due(const struct zc_credit *c, uint32_t held)
{
	uint32_t owed = zc_credit_unadvertised(c);
	uint32_t quarter = c->limit / 4 ? c->limit / 4 : 1;

	return owed >= quarter || (owed > 0 && held + owed >= c->limit);
}

uint32_t zc_credit_advertise(struct zc_credit *c)
{
	c->advertised = c->released;
	return c->released;
}
