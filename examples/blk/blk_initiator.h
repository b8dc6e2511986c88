/*
 * blk_initiator.h - client side of the zcrdma block protocol
 *
 * One connection to a zc_blk_legacy_target. The caller owns the zcrdma context (one
 * per initiator: blk_init_poll() reaps every completion of the context) and
 * the registered buffers. Every READ/WRITE names a range of a region from
 * zc_mr_reg(); the initiator exports exactly that range with exactly the
 * right the target needs (READ: ZC_ACCESS_REMOTE_WRITE, the target writes
 * into it; WRITE: ZC_ACCESS_REMOTE_READ, the target reads it), sends the
 * capsule, and revokes the export when the response arrives. The data never
 * passes through the initiator's CPU.
 *
 * When the connection fails (not when the target breaks the protocol), the
 * initiator connects again for up to reconnect_ms and resends every command
 * in flight: block commands are idempotent, so one may run twice. The caller
 * sees only the delay; blk_init_reconnects() counts them. It gives up when
 * the target refuses connections for 2 s (nobody listens), and after four
 * reconnects in a row during which no command was answered.
 *
 * Not thread-safe: like the context, one thread at a time.
 */
#ifndef ZC_BLK_INITIATOR_H
#define ZC_BLK_INITIATOR_H

#include <stdint.h>

#include <zcrdma.h>

#include "blk_proto.h"

struct blk_init;

/*
 * How an export is made (both grant exactly the range and the right, and
 * both are revoked when the response arrives):
 *   WINDOW  a type-2 memory window bound to the range (zcrdma's default)
 *   MR      a memory region of its own registered for the range
 *           (zc_conn_opts.mr_fallback): a registration per command
 *   AUTO    MR on soft-RoCE (rxe) devices, WINDOW elsewhere. On the rxe of
 *           the test guest (kernel 6.1), concurrent multi-packet RDMA READs
 *           by the target from windows fail the initiator's QP at random
 *           (or stall the guest); from MRs they do not. See the README,
 *           "Block target".
 */
enum blk_export_mode { BLK_EXPORT_AUTO, BLK_EXPORT_WINDOW, BLK_EXPORT_MR };

struct blk_init_opts {
	int queue_depth; /* requested; the target may grant less (default 32) */
	int timeout_ms;  /* connect and HELLO bound (default 10000) */
	int reconnect_ms;/* how long to try to reconnect after a failure; 0: never (default 10000) */
	int export_mode; /* enum blk_export_mode (default AUTO) */
	int no_hello;    /* tests only: connect without the HELLO exchange */
};

/* "auto", "window", "mr" -> enum blk_export_mode, or -1. */
int blk_export_mode_parse(const char *s);

/* One finished command. */
struct blk_cpl {
	uint64_t user;        /* the caller's value from blk_init_submit() */
	int unsolicited;      /* matched no command of ours (raw capsules, TAG_IN_USE) */
	struct blk_resp resp; /* tag, opcode, status, detail, geometry */
};

void blk_init_opts_init(struct blk_init_opts *o);

/*
 * blk_init_connect - connect to a target and negotiate the queue depth
 *
 * Returns 0 and sets *out, or a negative errno / zcrdma code;
 * -EPROTO when the target refused the HELLO (blk_init_last_error() says why).
 */
int blk_init_connect(struct zc_ctx *ctx, const char *addr, uint16_t port, const struct blk_init_opts *o,
		     struct blk_init **out);

/* Geometry and granted queue depth (zero before HELLO with no_hello). */
const struct blk_geom *blk_init_geom(const struct blk_init *bi);
struct zc_conn *blk_init_conn(struct blk_init *bi);

/* Commands in flight, and tags free for blk_init_submit(). */
int blk_init_inflight(const struct blk_init *bi);
int blk_init_free_tags(const struct blk_init *bi);

/*
 * blk_init_submit - start one command
 *
 * opcode READ/WRITE: [mr_off, mr_off + nblocks * block_size) of mr is
 * exported and transferred. FLUSH, CAPACITY: lba, nblocks and mr unused.
 * DISCARD: mr unused. Returns 0, -EBUSY (no free tag: poll first), or the
 * error of zc_export()/zc_msg_send().
 */
int blk_init_submit(struct blk_init *bi, int opcode, uint64_t lba, uint32_t nblocks, struct zc_mr *mr,
		    size_t mr_off, uint64_t user);

/* Tests: send raw bytes as one message (a capsule, or not). */
int blk_init_send_raw(struct blk_init *bi, const void *buf, size_t len);

/*
 * blk_init_poll - reap finished commands
 *
 * Waits up to timeout_ms (-1 forever) for at least one; returns how many were
 * stored, 0 on timeout, or a negative code when the connection failed and
 * could not be re-established (commands still in flight are lost then:
 * blk_init_close() revokes their exports).
 */
int blk_init_poll(struct blk_init *bi, struct blk_cpl *out, int max, int timeout_ms);

/* Sends CAPACITY and waits for its response (other completions are kept). */
int blk_init_capacity(struct blk_init *bi, struct blk_resp *out, int timeout_ms);

/* Connections re-established after a failure so far. */
unsigned blk_init_reconnects(const struct blk_init *bi);

/* Revokes exports of commands still in flight, closes the connection. */
int blk_init_close(struct blk_init **bi);

/* Details of the calling thread's last failure in this module. */
const char *blk_init_last_error(void);

#endif
