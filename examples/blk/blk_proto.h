/*
 * blk_proto.h - the zcrdma block protocol: capsules, responses, validation
 *
 * Pure code (no RDMA, no I/O): encodes and decodes the fixed-size messages of
 * docs/blk-protocol.md and validates commands against a device's geometry.
 * Used by zc_blk_legacy_target, the initiator library and the unit tests.
 *
 * A capsule (initiator -> target) is BLK_CAPSULE_SIZE bytes, a response
 * (target -> initiator) BLK_RESP_SIZE bytes; every multi-byte field is
 * little-endian. The descriptor inside a capsule is a struct zc_desc from
 * zc_export(), carried as opaque bytes.
 */
#ifndef ZC_BLK_PROTO_H
#define ZC_BLK_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <zcrdma.h>

#include "zc_example.h"

#define BLK_PROTO_VERSION 1
#define BLK_CAPSULE_SIZE 64
#define BLK_RESP_SIZE 32
#define BLK_DEFAULT_PORT 7480
#define BLK_MAX_QD 128          /* largest queue depth a target grants */
#define BLK_TAG_NONE 0xffff     /* response tag when the capsule's tag is unknown */
#define BLK_DEFAULT_MAX_IO (128u * 1024) /* bytes per READ/WRITE command */

enum blk_opcode {
	BLK_OP_HELLO = 1,    /* first message: queue depth negotiation */
	BLK_OP_READ = 2,     /* target RDMA-WRITEs the blocks into the descriptor */
	BLK_OP_WRITE = 3,    /* target RDMA-READs the blocks from the descriptor */
	BLK_OP_FLUSH = 4,    /* make completed writes durable (fdatasync) */
	BLK_OP_DISCARD = 5,  /* the blocks' contents may be dropped (read as zeros after) */
	BLK_OP_CAPACITY = 6, /* geometry query */
};

enum blk_status {
	BLK_S_OK = 0,
	BLK_S_MALFORMED = 1,     /* wrong length or version: not a capsule */
	BLK_S_BAD_OPCODE = 2,    /* opcode unknown (or HELLO twice) */
	BLK_S_BAD_FIELD = 3,     /* flags or reserved bytes not 0, nblocks 0, lba/nblocks where none belong */
	BLK_S_BAD_TAG = 4,       /* tag >= negotiated queue depth */
	BLK_S_TAG_IN_USE = 5,    /* a command with this tag is still running */
	BLK_S_LBA_RANGE = 6,     /* lba + nblocks beyond the capacity */
	BLK_S_TOO_LARGE = 7,     /* nblocks * block size beyond max_blocks */
	BLK_S_BAD_DESC = 8,      /* descriptor malformed or shorter than the transfer */
	BLK_S_DESC_ACCESS = 9,   /* descriptor lacks the right the command needs */
	BLK_S_READ_ONLY = 10,    /* WRITE/DISCARD on a read-only device */
	BLK_S_IO_ERROR = 11,     /* the backing store failed; detail = errno */
	BLK_S_TRANSFER = 12,     /* the RDMA transfer failed; detail = -zcrdma code */
	BLK_S_NO_HELLO = 13,     /* a command before the HELLO exchange */
	BLK_S_BAD_QD = 14,       /* HELLO asked for queue depth 0 or more than BLK_MAX_QD */
	BLK_S_MAX_
};

#define BLK_F_READ_ONLY 0x1 /* device flag in HELLO/CAPACITY responses */

/* A decoded capsule. For HELLO, nblocks carries the requested queue depth. */
struct blk_capsule {
	uint8_t version;
	uint8_t opcode;
	uint16_t flags;
	uint16_t tag;
	uint32_t nblocks;
	uint64_t lba;
	struct zc_desc desc;
};

/* A decoded response. Geometry fields are set in HELLO/CAPACITY responses. */
struct blk_resp {
	uint8_t version;
	uint8_t opcode;     /* the command's opcode, 0 if it could not be decoded */
	uint16_t tag;
	uint16_t status;    /* enum blk_status */
	uint16_t dev_flags; /* BLK_F_* */
	uint32_t detail;    /* errno or zcrdma code (positive) for IO_ERROR / TRANSFER */
	uint32_t block_size;
	uint64_t capacity;  /* in blocks */
	uint16_t queue_depth;
	uint32_t max_blocks;
};

/* What a target serves: the numbers its commands are checked against. */
struct blk_geom {
	uint32_t block_size; /* 512 or 4096 */
	uint64_t capacity;   /* blocks */
	uint32_t max_blocks; /* largest READ/WRITE in blocks */
	uint16_t queue_depth;/* negotiated: valid tags are 0..queue_depth-1 */
	int read_only;
};

void blk_capsule_encode(const struct blk_capsule *c, uint8_t out[BLK_CAPSULE_SIZE]);

/*
 * blk_capsule_decode - parse len bytes into *c
 *
 * Returns BLK_S_OK, BLK_S_MALFORMED (len != BLK_CAPSULE_SIZE or version not
 * BLK_PROTO_VERSION) or BLK_S_BAD_FIELD (reserved bytes not 0). *tag is set
 * whenever the buffer held at least the tag (else BLK_TAG_NONE), so an error
 * response can name the command.
 */
int blk_capsule_decode(const void *buf, size_t len, struct blk_capsule *c, uint16_t *tag);

/*
 * blk_capsule_validate - check a decoded command (not HELLO) against g
 *
 * Order: opcode, flags, tag, fields per opcode, read-only, size, range.
 * Returns BLK_S_OK or the status to report. Tag reuse and descriptor checks
 * need state and the library; they are the target's job.
 */
int blk_capsule_validate(const struct blk_capsule *c, const struct blk_geom *g);

/* Checks a HELLO capsule; on success *qd is the depth to grant (<= max_qd). */
int blk_hello_validate(const struct blk_capsule *c, uint16_t max_qd, uint16_t *qd);

void blk_resp_encode(const struct blk_resp *r, uint8_t out[BLK_RESP_SIZE]);

/* Returns 0, or -1 for a response that is not one (length, version, status, reserved). */
int blk_resp_decode(const void *buf, size_t len, struct blk_resp *r);

/* Bytes a READ/WRITE moves: nblocks * block_size. */
static inline uint64_t blk_xfer_bytes(const struct blk_capsule *c, uint32_t block_size)
{
	return (uint64_t)c->nblocks * block_size;
}

const char *blk_status_str(int status);
const char *blk_opcode_str(int opcode);

#endif
