/* The zcrdma block protocol: encoding, decoding and validation (pure code). */
#include "blk_proto.h"

#include <string.h>

/*
 * Capsule layout (64 bytes, little-endian):
 *   0 u8 version   1 u8 opcode   2 u16 flags   4 u16 tag   6 u16 reserved
 *   8 u32 nblocks  12 u32 reserved   16 u64 lba   24 u64 reserved
 *   32 desc[32]
 * Response layout (32 bytes):
 *   0 u8 version   1 u8 opcode   2 u16 tag   4 u16 status   6 u16 dev_flags
 *   8 u32 detail   12 u32 block_size   16 u64 capacity
 *   24 u16 queue_depth   26 u16 reserved   28 u32 max_blocks
 */

static int all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return 0;
	return 1;
}

void blk_capsule_encode(const struct blk_capsule *c, uint8_t out[BLK_CAPSULE_SIZE])
{
	memset(out, 0, BLK_CAPSULE_SIZE);
	out[0] = c->version;
	out[1] = c->opcode;
	zc_ex_put16(out + 2, c->flags);
	zc_ex_put16(out + 4, c->tag);
	zc_ex_put32(out + 8, c->nblocks);
	zc_ex_put64(out + 16, c->lba);
	memcpy(out + 32, c->desc.bytes, ZC_DESC_SIZE);
}

int blk_capsule_decode(const void *buf, size_t len, struct blk_capsule *c, uint16_t *tag)
{
	const uint8_t *p = buf;

	*tag = BLK_TAG_NONE;
	memset(c, 0, sizeof(*c));
	if (!p)
		return BLK_S_MALFORMED;
	if (len >= 6)
		*tag = zc_ex_get16(p + 4);
	if (len != BLK_CAPSULE_SIZE || p[0] != BLK_PROTO_VERSION) {
		*tag = BLK_TAG_NONE; /* not a capsule: its bytes mean nothing */
		return BLK_S_MALFORMED;
	}
	c->version = p[0];
	c->opcode = p[1];
	c->flags = zc_ex_get16(p + 2);
	c->tag = zc_ex_get16(p + 4);
	c->nblocks = zc_ex_get32(p + 8);
	c->lba = zc_ex_get64(p + 16);
	memcpy(c->desc.bytes, p + 32, ZC_DESC_SIZE);
	if (!all_zero(p + 6, 2) || !all_zero(p + 12, 4) || !all_zero(p + 24, 8))
		return BLK_S_BAD_FIELD;
	return BLK_S_OK;
}

int blk_capsule_validate(const struct blk_capsule *c, const struct blk_geom *g)
{
	int data = c->opcode == BLK_OP_READ || c->opcode == BLK_OP_WRITE;

	if (c->opcode < BLK_OP_READ || c->opcode > BLK_OP_CAPACITY)
		return BLK_S_BAD_OPCODE; /* HELLO after the HELLO is a bad opcode too */
	if (c->flags)
		return BLK_S_BAD_FIELD;
	if (c->tag >= g->queue_depth)
		return BLK_S_BAD_TAG;
	switch (c->opcode) {
	case BLK_OP_FLUSH:
	case BLK_OP_CAPACITY:
		if (c->lba || c->nblocks || !all_zero(c->desc.bytes, ZC_DESC_SIZE))
			return BLK_S_BAD_FIELD;
		return BLK_S_OK;
	case BLK_OP_DISCARD:
		if (!c->nblocks || !all_zero(c->desc.bytes, ZC_DESC_SIZE))
			return BLK_S_BAD_FIELD;
		break;
	default:
		if (!c->nblocks)
			return BLK_S_BAD_FIELD;
		break;
	}
	if (g->read_only && c->opcode != BLK_OP_READ)
		return BLK_S_READ_ONLY;
	if (data && c->nblocks > g->max_blocks)
		return BLK_S_TOO_LARGE;
	if (c->lba >= g->capacity || c->nblocks > g->capacity - c->lba)
		return BLK_S_LBA_RANGE;
	return BLK_S_OK;
}

int blk_hello_validate(const struct blk_capsule *c, uint16_t max_qd, uint16_t *qd)
{
	if (c->opcode != BLK_OP_HELLO)
		return BLK_S_NO_HELLO;
	if (c->flags || c->tag || c->lba || !all_zero(c->desc.bytes, ZC_DESC_SIZE))
		return BLK_S_BAD_FIELD;
	if (c->nblocks == 0 || c->nblocks > BLK_MAX_QD)
		return BLK_S_BAD_QD;
	*qd = (uint16_t)(c->nblocks < max_qd ? c->nblocks : max_qd);
	return BLK_S_OK;
}

void blk_resp_encode(const struct blk_resp *r, uint8_t out[BLK_RESP_SIZE])
{
	memset(out, 0, BLK_RESP_SIZE);
	out[0] = r->version;
	out[1] = r->opcode;
	zc_ex_put16(out + 2, r->tag);
	zc_ex_put16(out + 4, r->status);
	zc_ex_put16(out + 6, r->dev_flags);
	zc_ex_put32(out + 8, r->detail);
	zc_ex_put32(out + 12, r->block_size);
	zc_ex_put64(out + 16, r->capacity);
	zc_ex_put16(out + 24, r->queue_depth);
	zc_ex_put32(out + 28, r->max_blocks);
}

int blk_resp_decode(const void *buf, size_t len, struct blk_resp *r)
{
	const uint8_t *p = buf;

	memset(r, 0, sizeof(*r));
	if (!p || len != BLK_RESP_SIZE || p[0] != BLK_PROTO_VERSION || !all_zero(p + 26, 2))
		return -1;
	r->version = p[0];
	r->opcode = p[1];
	r->tag = zc_ex_get16(p + 2);
	r->status = zc_ex_get16(p + 4);
	r->dev_flags = zc_ex_get16(p + 6);
	r->detail = zc_ex_get32(p + 8);
	r->block_size = zc_ex_get32(p + 12);
	r->capacity = zc_ex_get64(p + 16);
	r->queue_depth = zc_ex_get16(p + 24);
	r->max_blocks = zc_ex_get32(p + 28);
	if (r->status >= BLK_S_MAX_)
		return -1;
	return 0;
}

const char *blk_status_str(int status)
{
	static const char *const names[] = {
		[BLK_S_OK] = "ok",
		[BLK_S_MALFORMED] = "malformed capsule",
		[BLK_S_BAD_OPCODE] = "bad opcode",
		[BLK_S_BAD_FIELD] = "bad field",
		[BLK_S_BAD_TAG] = "tag beyond the queue depth",
		[BLK_S_TAG_IN_USE] = "tag in use",
		[BLK_S_LBA_RANGE] = "LBA out of range",
		[BLK_S_TOO_LARGE] = "transfer too large",
		[BLK_S_BAD_DESC] = "bad descriptor",
		[BLK_S_DESC_ACCESS] = "descriptor lacks the access needed",
		[BLK_S_READ_ONLY] = "device is read-only",
		[BLK_S_IO_ERROR] = "I/O error",
		[BLK_S_TRANSFER] = "RDMA transfer failed",
		[BLK_S_NO_HELLO] = "no HELLO yet",
		[BLK_S_BAD_QD] = "bad queue depth",
	};

	if (status < 0 || status >= BLK_S_MAX_)
		return "unknown status";
	return names[status];
}

const char *blk_opcode_str(int opcode)
{
	switch (opcode) {
	case BLK_OP_HELLO: return "HELLO";
	case BLK_OP_READ: return "READ";
	case BLK_OP_WRITE: return "WRITE";
	case BLK_OP_FLUSH: return "FLUSH";
	case BLK_OP_DISCARD: return "DISCARD";
	case BLK_OP_CAPACITY: return "CAPACITY";
	default: return "?";
	}
}
