/*
 * Internal: credit-based flow control (pure logic, unit-tested).
 *
 * Each side posts receive buffers ("slots") for its peer. Data messages
 * (EAGER, RTS) occupy a slot until the application consumes the data, so the
 * sender may only have `limit` of them outstanding: one credit each.
 * Control messages (FIN, CREDIT, CLOSE) are consumed and reposted at once and
 * need no credit: the receiver posts limit + limit + 2 slots, and every control
 * message carries a strictly larger ack than the one before it, which bounds
 * the control messages in flight by limit (docs/protocol.md has the proof).
 * Nothing ever relies on RNR retry.
 *
 * Counters are cumulative u32s and compared with wrap-around arithmetic.
 */
#ifndef ZC_CREDIT_H
#define ZC_CREDIT_H

#include <stdint.h>

struct zc__credit {
	uint32_t limit;      /* slots the peer grants us */
	uint32_t sent;       /* data messages we sent */
	uint32_t peer_acked; /* slots the peer released (its latest ack) */
	uint32_t released;   /* data slots we released for the peer */
	uint32_t advertised; /* `released` as of the last header we sent */
};

void zc__credit_init(struct zc__credit *c, uint32_t limit);
/* Data messages we may send now. */
uint32_t zc__credit_avail(const struct zc__credit *c);
/* Consumes one credit; -EAGAIN when none is left. */
int zc__credit_take(struct zc__credit *c);
/* Applies the peer's ack; -ZC_EPEERPROTO if it releases more than we sent
 * or goes backwards. */
int zc__credit_on_ack(struct zc__credit *c, uint32_t ack);
/* One of the peer's data messages was consumed: its slot is free again. */
void zc__credit_release(struct zc__credit *c);
/* Whether the peer may send one more data message while the application
 * holds `held` of its slots. Slots released but not yet advertised still
 * count as occupied: the peer cannot know of them (both sides grant the
 * same number of credits, so `limit` bounds the peer too). */
int zc__credit_peer_may_send(const struct zc__credit *c, uint32_t held);
/* Released slots the peer has not been told about. */
uint32_t zc__credit_unadvertised(const struct zc__credit *c);
/* Whether to send a stand-alone CREDIT now: a quarter of the window is
 * waiting, or the peer has used every credit we told it about (held +
 * unadvertised = limit) and can only go on once it hears from us. Anything
 * less rides on the next header we send anyway (a reply, a FIN), so a
 * ping-pong costs no extra message. */
int zc__credit_update_due(const struct zc__credit *c, uint32_t held);
/* Value for the next header's ack field; marks it advertised. */
uint32_t zc__credit_advertise(struct zc__credit *c);

#endif
