/* Encoding and validation of everything zcrdma peers send each other. */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "zcrdma.h"
#include "error.h"
#include "wire.h"

static void put16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

void zc__hdr_encode(void *buf, const struct zc__hdr *h)
{
	uint8_t *p = buf;

	p[0] = h->version;
	p[1] = h->type;
	put16(p + 2, h->window);
	put32(p + 4, h->ack);
	put32(p + 8, h->len);
	put32(p + 12, h->id);
}

void zc__rts_encode(void *buf, const struct zc__rts *r)
{
	uint8_t *p = buf;

	put64(p, r->addr);
	put64(p + 8, r->len);
	put32(p + 16, r->rkey);
	put32(p + 20, r->flags);
}

static int proto(const char *what, unsigned long long v)
{
	return zc__err(-ZC_EPEERPROTO, "peer sent a bad message: %s (%llu)", what, v);
}

static void desc_get(const uint8_t *p, struct zc__rts *r)
{
	r->addr = get64(p);
	r->len = get64(p + 8);
	r->rkey = get32(p + 16);
	r->flags = get32(p + 20);
}

/* A buffer descriptor (RTS or ADV body) at p. */
static int desc_decode(const uint8_t *p, uint32_t flags_allowed, struct zc__rts *r)
{
	desc_get(p, r);
	if (r->flags & ~flags_allowed)
		return proto("unknown buffer descriptor flags", r->flags);
	if (r->len == 0 || r->len > ZC_RNDV_MAX_LEN)
		return proto("buffer length out of range", r->len);
	if (r->addr + r->len < r->addr)
		return proto("buffer range wraps around", r->addr);
	return 0;
}

void zc__adv_desc(const void *buf, uint32_t i, struct zc__rts *d)
{
	desc_get((const uint8_t *)buf + ZC_ADV_SIZE(i), d);
}

int zc__msg_decode(const void *buf, size_t byte_len, struct zc__hdr *h, struct zc__rts *r)
{
	size_t i, n;
	int rc;

	const uint8_t *p = buf;

	if (byte_len < ZC_HDR_SIZE)
		return proto("message shorter than the header", byte_len);
	h->version = p[0];
	h->type = p[1];
	h->window = get16(p + 2);
	h->ack = get32(p + 4);
	h->len = get32(p + 8);
	h->id = get32(p + 12);
	if (h->version != ZC_WIRE_VERSION)
		return zc__err(-ZC_EVERSION, "peer speaks wire version %u, this side %u", h->version, ZC_WIRE_VERSION);
	if (h->window > ZC_CREDITS_MAX)
		return proto("credit window beyond the largest allowed", h->window);
	switch (h->type) {
	case ZC_MSG_EAGER:
		return proto("an eager message with a header (it travels with immediate data)", byte_len);
	case ZC_MSG_RTS:
		if (byte_len != ZC_RTS_SIZE || h->len != 0)
			return proto("rendezvous request of the wrong size", byte_len);
		return desc_decode(p + ZC_HDR_SIZE, ZC_RTS_F_INV, r);
	case ZC_MSG_ADV:
		n = (byte_len - ZC_HDR_SIZE) / ZC_RTS_BODY_SIZE;
		if (n == 0 || n > ZC_ADV_MAX || byte_len != ZC_ADV_SIZE(n) || h->len != 0)
			return proto("buffer advertisement of the wrong size", byte_len);
		for (i = n; i-- > 0;)
			if ((rc = desc_decode(p + ZC_ADV_SIZE(i), 0, r)))
				return rc;
		return 0;
	case ZC_MSG_PUT:
		if (byte_len != ZC_HDR_SIZE || h->len == 0)
			return proto("written-message notice of the wrong size or length", h->len);
		return 0;
	case ZC_MSG_FIN:
	case ZC_MSG_CREDIT:
	case ZC_MSG_CLOSE:
	case ZC_MSG_SHUTDOWN:
		if (byte_len != ZC_HDR_SIZE || h->len != 0)
			return proto("control message with a payload", byte_len);
		if (h->type != ZC_MSG_FIN && h->id != 0)
			return proto("control message with an id", h->id);
		return 0;
	default:
		return proto("unknown message type", h->type);
	}
}

uint32_t zc__imm_encode(uint32_t ack_delta, uint16_t window)
{
	return htobe32(ZC_IMM_EAGER << 29 | (ack_delta & ZC_IMM_ACK_DELTA_MAX) << 16 | window);
}

int zc__imm_decode(uint32_t imm, size_t byte_len, size_t eager_max, uint32_t prev_ack, struct zc__hdr *h)
{
	uint32_t v = be32toh(imm);

	if (v >> 29 != ZC_IMM_EAGER)
		return proto("immediate data of a reserved kind", v >> 29);
	*h = (struct zc__hdr){.version = ZC_WIRE_VERSION, .type = ZC_MSG_EAGER, .window = (uint16_t)(v & 0xffff),
			      .ack = prev_ack + (v >> 16 & ZC_IMM_ACK_DELTA_MAX), .len = (uint32_t)byte_len};
	if (h->window > ZC_CREDITS_MAX)
		return proto("credit window beyond the largest allowed", h->window);
	if (byte_len > eager_max)
		return proto("eager payload larger than the receive slot", byte_len);
	return 0;
}

void zc__priv_encode(void *buf, const struct zc__priv *pr)
{
	uint8_t *p = buf;

	p[0] = pr->version;
	p[1] = pr->flags;
	put16(p + 2, pr->credits);
	put32(p + 4, pr->slot_size);
	put32(p + 8, pr->rd_atom);
	put32(p + 12, ZC_PRIV_MAGIC);
}

int zc__priv_decode(const void *buf, size_t len, struct zc__priv *pr)
{
	const uint8_t *p = buf;

	/* rdma_cm pads private data with zeros, so longer is fine. */
	if (!buf || len < ZC_PRIV_SIZE || get32(p + 12) != ZC_PRIV_MAGIC)
		return zc__err(-ZC_EPEERPROTO, "peer is not a zcrdma endpoint (no connection parameters)");
	pr->version = p[0];
	pr->flags = p[1];
	pr->credits = get16(p + 2);
	pr->slot_size = get32(p + 4);
	pr->rd_atom = get32(p + 8);
	if (pr->version != ZC_WIRE_VERSION)
		return zc__err(-ZC_EVERSION, "peer speaks wire version %u, this side %u", pr->version, ZC_WIRE_VERSION);
	if (pr->flags != 0)
		return proto("unknown connection flags", pr->flags);
	if (pr->credits == 0 || pr->credits > ZC_CREDITS_MAX)
		return proto("credits out of range", pr->credits);
	if (pr->slot_size < ZC_SLOT_MIN || pr->slot_size > ZC_SLOT_MAX)
		return proto("receive slot size out of range", pr->slot_size);
	if (pr->rd_atom == 0 || pr->rd_atom > 65536)
		return proto("read depth out of range", pr->rd_atom);
	return 0;
}

/* RMA descriptors (zc_export / zc_rma_*) */

#define DESC_VERSION 1

/* Descriptor bytes: u8 version, u8 access, u16 zero, u32 rkey, u64 addr,
 * u64 len, u64 zero; little-endian. */
void zc__desc_encode(struct zc_desc *d, int access, uint32_t rkey, uint64_t addr, uint64_t len)
{
	uint32_t k = htole32(rkey);
	uint64_t a = htole64(addr), l = htole64(len);

	memset(d, 0, sizeof(*d));
	d->bytes[0] = DESC_VERSION;
	d->bytes[1] = (uint8_t)access;
	memcpy(d->bytes + 4, &k, 4);
	memcpy(d->bytes + 8, &a, 8);
	memcpy(d->bytes + 16, &l, 8);
}

int zc__desc_decode(const struct zc_desc *d, int *access, uint32_t *rkey, uint64_t *addr, uint64_t *len)
{
	static const uint8_t zero[8];
	uint32_t k;
	uint64_t a, l;

	if (!d || d->bytes[0] != DESC_VERSION || d->bytes[2] || d->bytes[3] || memcmp(d->bytes + 24, zero, 8) ||
	    !d->bytes[1] || (d->bytes[1] & ~(ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE)))
		return zc__err(-EINVAL, "not a zcrdma memory descriptor");
	memcpy(&k, d->bytes + 4, 4);
	memcpy(&a, d->bytes + 8, 8);
	memcpy(&l, d->bytes + 16, 8);
	*access = d->bytes[1];
	*rkey = le32toh(k);
	*addr = le64toh(a);
	*len = le64toh(l);
	if (*len == 0 || *addr + *len < *addr)
		return zc__err(-EINVAL, "memory descriptor with an empty or wrapping range");
	return 0;
}

void zc__rej_encode(void *buf, uint8_t reason)
{
	uint8_t *p = buf;

	memset(p, 0, ZC_REJ_SIZE);
	put32(p, ZC_REJ_MAGIC);
	p[4] = reason;
}

uint8_t zc__rej_decode(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (!buf || len < ZC_REJ_SIZE || get32(p) != ZC_REJ_MAGIC ||
	    (p[4] != ZC_REJ_BUSY && p[4] != ZC_REJ_INCOMPATIBLE))
		return 0;
	return p[4];
}
