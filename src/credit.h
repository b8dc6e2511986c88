/*
 * Internal: credit-based flow control over a shared pool of receive slots
 * (pure logic, unit-tested; docs/protocol.md section 4 has the proof).
 *
 * All connections of a context receive into one pool of slots posted to a
 * shared receive queue. A slot is occupied from the moment a message lands
 * until it is reposted: control messages (FIN, CREDIT, CLOSE) are reposted
 * as soon as they are processed, data messages (EAGER, RTS) when the
 * application has consumed them. The pool's budget counts the slots
 * promised to connections; the pool posts at least that many, and every
 * slot a message can occupy is promised first, so a receiver is never
 * short of a slot (no RNR, ever). Per connection, promised are:
 *
 *   data     granted - released: what the peer may still send, plus what
 *            this side holds unconsumed. The peer may send data while its
 *            `sent` is below `granted`, the edge last advertised to it
 *            (header ack + window); the edge never moves back.
 *   control  sent - peer_acked: every control message the peer sends
 *            carries a strictly larger ack than its previous header, and it
 *            cannot ack more than this side sent, so at most that many are
 *            on their way. One slot is promised before each data message
 *            is sent and given back when an ack covers it.
 *   CLOSE    one, for the connection's life.
 *
 * The window lent to a peer starts at ZC__CREDIT_FIRST_WINDOW (a protocol
 * constant, so neither side needs the other's to start), grows by one for each
 * message consumed while the peer had used every credit it was given (it
 * was blocked), up to max_window (the smaller of both sides' credits
 * options: a peer never keeps more unacknowledged) and while the pool is
 * below its soft
 * limit, and shrinks by one per consumed message while the pool is above
 * it. The minimum is always kept: it is what lets every connection make
 * progress, so it may take the pool past its soft limit (never past the
 * hard one).
 *
 * Counters are cumulative u32s compared with wrap-around arithmetic.
 */
#ifndef ZC_CREDIT_H
#define ZC_CREDIT_H

#include <stdbool.h>
#include <stdint.h>

/* The window each side lends at first, and never less. */
#define ZC__CREDIT_FIRST_WINDOW 1u

/* The slots of one pool: promised to connections, and the limits. */
struct zc__rx_budget {
	uint32_t reserved; /* promised, over all connections */
	uint32_t soft_max; /* window growth stops here */
	uint32_t hard_max; /* nothing beyond: what the pool can post */
};

/* Promises up to n slots. Mandatory promises (a connection's minimum
 * window, its CLOSE, the control reply to a data message) succeed up to
 * hard_max; discretionary ones (window growth) only up to soft_max, and may
 * get fewer. Returns how many were promised, or -ENOBUFS for a mandatory
 * promise beyond hard_max. */
int zc__budget_reserve(struct zc__rx_budget *b, uint32_t n, bool mandatory);
void zc__budget_release(struct zc__rx_budget *b, uint32_t n);
bool zc__budget_pressed(const struct zc__rx_budget *b);

struct zc__credit {
	struct zc__rx_budget *budget;
	/* our data messages to the peer */
	uint32_t sent;       /* data messages we sent */
	uint32_t peer_acked; /* of those, released by the peer (its latest ack) */
	uint32_t edge;       /* we may send while sent < edge */
	uint32_t max_out;    /* and while sent - peer_acked < max_out */
	/* the peer's data messages to us */
	uint32_t recvd;      /* data messages received */
	uint32_t released;   /* of those, consumed and reposted */
	uint32_t advertised; /* `released` as of the last header we sent */
	uint32_t granted;    /* the edge we advertised */
	uint32_t window;     /* what we lend now: the edge is released + window */
	uint32_t min_window, max_window;
};

/* Promises the connection's first window and its CLOSE: -ENOBUFS when the
 * pool cannot take another connection. Both directions are bounded by max
 * (the credits option). */
int zc__credit_open(struct zc__credit *c, struct zc__rx_budget *b, uint32_t max);
/* Returns every promise of the connection to the pool (nothing if it
 * never opened, or failed to). */
void zc__credit_close(struct zc__credit *c);
/* The peer's connection parameters: its credits option. Its first window
 * is the protocol's. */
void zc__credit_peer_params(struct zc__credit *c, uint32_t peer_max);

/* Data messages we may send now. */
uint32_t zc__credit_avail(const struct zc__credit *c);
/* Consumes one credit and promises a slot for the peer's reply; -EAGAIN
 * when there is no credit or the pool is at its hard limit. */
int zc__credit_take(struct zc__credit *c);
/* Applies a header's ack and window: -ZC_EPEERPROTO if it releases more
 * than we sent, goes backwards, or moves the edge back. */
int zc__credit_on_ack(struct zc__credit *c, uint32_t ack, uint32_t window);
/* A data message arrived: -ZC_EPEERPROTO beyond the edge we granted. */
int zc__credit_on_data(struct zc__credit *c);
/* One of the peer's data messages was consumed: its slot is free again. */
void zc__credit_release(struct zc__credit *c);
/* Released slots the peer has not been told about. */
uint32_t zc__credit_unadvertised(const struct zc__credit *c);
/* Whether to send a stand-alone CREDIT now: the peer has used every credit
 * it was given, can only go on once it hears from us, and we have consumed
 * all it sent; or half of the largest window is waiting. The half is of max_window, not of the
 * current window: a small window is not a reason to send more often, and
 * anything less rides on the next header we send anyway (a reply, a FIN),
 * so a ping-pong costs no extra message. */
bool zc__credit_update_due(const struct zc__credit *c);
/* Values for the next header: moves the edge to released + window (as far
 * as the pool allows) and marks the releases advertised. */
void zc__credit_advertise(struct zc__credit *c, uint32_t *ack, uint16_t *window);

#endif
