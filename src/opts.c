/* Connection options: defaults, checks, and what "default" resolves to. */
#include <errno.h>

#include "error.h"
#include "opts.h"
#include "wire.h"

void zc_conn_opts_init(struct zc_conn_opts *o)
{
	if (!o)
		return;
	*o = (struct zc_conn_opts){.timeout_ms = 10000, .credits = 16, .eager_size = 16384, .send_depth = 31,
				   .rnr_retry = -1, .retry_count = 6, .mr_fallback = 0, .keepalive_ms = 2000,
				   .initiator_depth = -1, .responder_resources = -1};
}

/* priv_max: what the message the private data goes in can carry. */
static int check_raw(const struct zc_conn_opts *o, size_t priv_max, const char *msg)
{
	if (o->private_data_len > priv_max)
		return zc__err(-EINVAL, "%zu bytes of private data: a %s carries at most %zu", o->private_data_len, msg,
			      priv_max);
	if (!o->private_data && o->private_data_len)
		return zc__err(-EINVAL, "private_data is NULL but private_data_len is %zu", o->private_data_len);
	if (o->raw_send_depth > 16384 || o->raw_recv_depth > 16384 || o->initiator_depth < -1 ||
	    o->initiator_depth > 255 || o->responder_resources < -1 || o->responder_resources > 255)
		return zc__err(-EINVAL, "raw options out of range (raw_send_depth, raw_recv_depth 0..16384; "
				       "initiator_depth, responder_resources -1..255)");
	return 0;
}

int zc__conn_opts_check(const struct zc_conn_opts *o, size_t priv_max, const char *msg)
{
	if (o->timeout_ms < 0 || o->rnr_retry < -1 || o->rnr_retry > 7 || o->retry_count < 0 || o->retry_count > 7 ||
	    o->keepalive_ms < 0)
		return zc__err(-EINVAL, "connection options out of range (timeout_ms, keepalive_ms >= 0, rnr_retry "
				       "-1..7, retry_count 0..7)");
	if (o->raw)
		return check_raw(o, priv_max, msg);
	if (o->private_data || o->private_data_len)
		return zc__err(-EINVAL, "private data is for raw connections (zc_conn_opts.raw): a zcrdma "
				       "connection's is zcrdma's own");
	if (o->credits < 1 || o->credits > ZC_CREDITS_MAX || o->eager_size < 64 ||
	    o->eager_size > ZC_SLOT_MAX - ZC_HDR_SIZE || o->send_depth < 8 || o->send_depth > 16384)
		return zc__err(-EINVAL, "connection options out of range (credits 1..%d, eager_size 64..%d, "
				       "send_depth 8..16384)",
			      ZC_CREDITS_MAX, ZC_SLOT_MAX - ZC_HDR_SIZE);
	if (o->send_depth < o->credits + 8)
		return zc__err(-EINVAL, "send_depth (%d) must exceed credits (%d) by at least 8: finishing each "
				       "rendezvous the peer may have open takes a send slot",
			      o->send_depth, o->credits);
	return 0;
}


void zc__conn_opts_resolve(struct zc_conn_opts *o)
{
	if (o->rnr_retry < 0) /* credits make RNR impossible; a raw peer's receives are its own */
		o->rnr_retry = o->raw ? 7 : 0;
	if (!o->raw)
		return;
	if (!o->raw_send_depth)
		o->raw_send_depth = ZC__RAW_DEPTH;
	if (!o->raw_recv_depth)
		o->raw_recv_depth = ZC__RAW_DEPTH;
}

uint8_t zc__raw_read_depth(uint32_t dev_max, int want, bool accepting, uint8_t offered)
{
	uint32_t d = dev_max > 255 ? 255 : dev_max;

	if (want >= 0 && (uint32_t)want < d)
		d = (uint32_t)want;
	if (accepting && offered < d)
		d = offered;
	return (uint8_t)d;
}
