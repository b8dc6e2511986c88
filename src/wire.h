/*
 * Internal: the zcrdma wire protocol (docs/protocol.md is the full story).
 *
 * Every SEND between zcrdma peers but an EAGER starts with a 16-byte header,
 * little-endian:
 *
 *   0        1        2        4        8        12       16
 *   +--------+--------+--------+--------+--------+--------+
 *   |version | type   | window |  ack            |  len  ...
 *   +--------+--------+--------+--------+--------+--------+
 *   ... len  |  id             |
 *
 *   version  ZC_WIRE_VERSION
 *   type     enum zc__msg_type
 *   window   data messages the receiver of this header may send beyond ack
 *   ack      cumulative count of data messages of the peer the sender of this
 *            header has consumed; ack + window is the peer's credit edge
 *            (credit.h), which never moves back
 *   len      PUT: the bytes written; 0 otherwise (an EAGER's length is the
 *            bytes received, see below)
 *   id       RTS/FIN: rendezvous identifier chosen by the data's sender;
 *            ADV/PUT: the sequence number (data messages sent before it) of
 *            the data message the advertised buffer takes
 *
 * An EAGER has no header: its payload is the whole message, sent with
 * SEND_WITH_IMM, and the header fields it needs travel in the 32-bit
 * immediate data (big-endian, as the transport carries it), so a payload
 * of exactly one MTU (4096 bytes) still takes one packet:
 *
 *   bits 31..29  kind, ZC_IMM_EAGER (the others are reserved)
 *   bits 28..16  ack minus the ack of the previous message the sender sent
 *                (never more than ZC_CREDITS_MAX: no more was outstanding)
 *   bits 15..0   window
 *
 * An RTS carries a 24-byte body after the header: u64 addr, u64 len,
 * u32 rkey, u32 flags (ZC_RTS_F_INV: the rkey is a memory window the FIN
 * must invalidate with SEND_WITH_INV). An ADV carries 1..ZC_ADV_MAX such
 * bodies (flags 0), one per buffer the receiver posted, for the peer's
 * data messages id, id + 1, ...; each rkey is a window with remote write
 * that the PUT into its buffer invalidates. A PUT (header only) follows
 * the RDMA WRITE of the message into that buffer.
 *
 * Decoding is pure: every field is checked before anything uses it.
 */
#ifndef ZC_WIRE_H
#define ZC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "zcrdma.h"

#define ZC_WIRE_VERSION 5
#define ZC_HDR_SIZE 16
#define ZC_RTS_BODY_SIZE 24
#define ZC_RTS_SIZE (ZC_HDR_SIZE + ZC_RTS_BODY_SIZE)
/* Buffers one ADV offers, at most: its binds and it take one doorbell. */
#define ZC_ADV_MAX 8
#define ZC_ADV_SIZE(n) (ZC_HDR_SIZE + (n) * ZC_RTS_BODY_SIZE)
/* Rendezvous transfers are bounded so lengths stay far from overflow. */
#define ZC_RNDV_MAX_LEN (1ull << 40)

enum zc__msg_type {
	ZC_MSG_EAGER = 1,  /* data: payload only, header in the immediate (uses a credit) */
	ZC_MSG_RTS = 2,    /* data: rendezvous request, body = zc__rts (uses a credit) */
	ZC_MSG_FIN = 3,    /* control: rendezvous id done; sent with SEND_WITH_INV */
	ZC_MSG_CREDIT = 4, /* control: credit return only */
	ZC_MSG_CLOSE = 5,  /* control: orderly close, no more data follows */
	ZC_MSG_SHUTDOWN = 6, /* control: half-close, no more data follows; the sender keeps receiving.
	                      * Sent instead of CLOSE: a side sends one of the two, once */
	ZC_MSG_ADV = 7,    /* data: a posted receive buffer, body = zc__rts (uses a credit) */
	ZC_MSG_PUT = 8,    /* data: a message was written into an ADV's buffer; SEND_WITH_INV (uses a credit) */
};

struct zc__hdr {
	uint8_t version;
	uint8_t type;
	uint16_t window;
	uint32_t ack;
	uint32_t len;
	uint32_t id;
};

#define ZC_RTS_F_INV 0x1

struct zc__rts {
	uint64_t addr;
	uint64_t len;
	uint32_t rkey;
	uint32_t flags;
};

/* Whether a message type consumes one of the peer's data credits. */
static inline int zc__msg_is_data(uint8_t type)
{
	return type == ZC_MSG_EAGER || type == ZC_MSG_RTS || type == ZC_MSG_ADV || type == ZC_MSG_PUT;
}

void zc__hdr_encode(void *buf, const struct zc__hdr *h);
void zc__rts_encode(void *buf, const struct zc__rts *r);

/*
 * Decodes and validates a received message of byte_len bytes that came
 * without immediate data (so never an EAGER). Returns 0, or
 * -ZC_EVERSION / -ZC_EPEERPROTO (with zc_last_error() naming the field).
 * On success *h is filled, for RTS *r too, and for ADV *r with its first
 * buffer (every one was checked: zc__adv_desc reads them).
 */
int zc__msg_decode(const void *buf, size_t byte_len, struct zc__hdr *h, struct zc__rts *r);
/* The buffers of an ADV of byte_len bytes that zc__msg_decode() accepted,
 * and the i-th of them. */
static inline uint32_t zc__adv_count(size_t byte_len)
{
	return (uint32_t)((byte_len - ZC_HDR_SIZE) / ZC_RTS_BODY_SIZE);
}
void zc__adv_desc(const void *buf, uint32_t i, struct zc__rts *d);

#define ZC_IMM_EAGER 1u
#define ZC_IMM_ACK_DELTA_MAX 0x1fffu

/* The immediate data of an EAGER, as the work request carries it (network
 * byte order). ack_delta must not exceed ZC_IMM_ACK_DELTA_MAX. */
uint32_t zc__imm_encode(uint32_t ack_delta, uint16_t window);
/* Decodes an EAGER's immediate data (as the completion carries it) into *h:
 * its ack is prev_ack (the ack of the previous message received from this
 * peer) plus the delta, its length byte_len. Returns 0, or -ZC_EPEERPROTO
 * for a reserved kind, a window beyond ZC_CREDITS_MAX or a payload beyond
 * eager_max. */
int zc__imm_decode(uint32_t imm, size_t byte_len, size_t eager_max, uint32_t prev_ack, struct zc__hdr *h);

/*
 * Connection parameters exchanged in rdma_cm private data (both directions),
 * 16 bytes little-endian: u8 version, u8 flags, u16 credits, u32 slot_size,
 * u32 max_rndv_reads, u32 magic.
 */
#define ZC_PRIV_SIZE 16
#define ZC_PRIV_MAGIC 0x7a637264u /* "zcrd" */
#define ZC_CREDITS_MAX 4096
#define ZC_SLOT_MIN 64
#define ZC_SLOT_MAX (1u << 20)

struct zc__priv {
	uint8_t version;
	uint8_t flags;
	uint16_t credits;       /* the sender's credits option: it never keeps more data messages unacknowledged */
	uint32_t slot_size;     /* bytes per receive slot, header included */
	uint32_t rd_atom;       /* RDMA READs this side accepts in flight as responder */
};

void zc__priv_encode(void *buf, const struct zc__priv *p);
int zc__priv_decode(const void *buf, size_t len, struct zc__priv *p);

/*
 * Why a zcrdma listener rejected a connection request, in the rdma_cm
 * reject's private data (8 bytes: u32 magic "zcrj", u8 reason, 3 zero).
 * A reject without it (status 28 too) comes from something else: the
 * peer's kernel, or a listener that is not zcrdma.
 */
#define ZC_REJ_SIZE 8
#define ZC_REJ_MAGIC 0x6a72637au /* "zcrj" */
enum zc__rej_reason {
	ZC_REJ_BUSY = 1,         /* the backlog is full: try again */
	ZC_REJ_INCOMPATIBLE = 2, /* the request's parameters were refused */
};
void zc__rej_encode(void *buf, uint8_t reason);
/* The reason, or 0 when buf is not a zcrdma reject. */
uint8_t zc__rej_decode(const void *buf, size_t len);

/* An RMA descriptor: u8 version, u8 access, u16 zero, u32 rkey, u64 addr,
 * u64 len, u64 zero, little-endian. Decoding refuses any other version,
 * unknown or no access bits, non-zero reserved bytes and empty or wrapping
 * ranges. */
void zc__desc_encode(struct zc_desc *d, int access, uint32_t rkey, uint64_t addr, uint64_t len);
int zc__desc_decode(const struct zc_desc *d, int *access, uint32_t *rkey, uint64_t *addr, uint64_t *len);

#endif
