/*
 * fuzz_wire - libFuzzer target for every decoder of the zcrdma wire protocol
 *
 * Byte 0 of the input picks what the rest is (byte 0 % 6):
 *   0  a received message: u32 eager_max (LE), then the message itself, whose
 *      length is byte_len (zc__msg_decode: header, RTS body, controls; and its
 *      first 8 bytes as an EAGER's immediate data and previous ack for
 *      zc__imm_decode)
 *   1  rdma_cm private data, all of the rest (zc__priv_decode; empty = NULL)
 *   2  an RMA descriptor (struct zc_desc, src/wire.c): the first 32 bytes of
 *      the rest, zero-padded (empty = a NULL descriptor)
 *   3  header and RTS fields -> zc__hdr_encode/zc__rts_encode -> decode
 *   4  private-data fields -> zc__priv_encode -> decode
 *   5  descriptor fields -> desc_encode -> decode
 *
 * Every decode is held to three things, any failure being a crash:
 *   - it returns exactly what docs/protocol.md §1.1 and §5 (P1-P3, M1-M6) and
 *     the descriptor layout in src/wire.c say, computed here independently
 *     from the bytes;
 *   - what it accepts respects the stated bounds (lengths, ranges, flags);
 *   - what it accepts re-encodes to the same bytes, which decode to the same
 *     struct.
 * Plus ASan and UBSan on every byte the decoders touch.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zcrdma.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                  \
	do {                                                                                         \
		if (!(cond)) {                                                                       \
			fprintf(stderr, "fuzz_wire: %s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                              \
			abort();                                                                     \
		}                                                                                    \
	} while (0)

/* Little-endian reads, written differently from wire.c on purpose. */
static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static void take(const uint8_t **p, size_t *n, void *out, size_t want)
{
	size_t k = *n < want ? *n : want;

	memset(out, 0, want);
	memcpy(out, *p, k);
	*p += k;
	*n -= k;
}

/* ---- messages (docs/protocol.md §2, §5 M1-M6) ---------------------------- */

static int msg_spec(const uint8_t *p, size_t n)
{
	uint64_t len, id, raddr, rlen, rflags;

	if (n < ZC_HDR_SIZE)
		return -ZC_EPEERPROTO; /* M1 */
	if (p[0] != 5)
		return -ZC_EVERSION; /* M2 */
	if (le(p + 2, 2) > 4096)
		return -ZC_EPEERPROTO; /* M3: window */
	len = le(p + 8, 4);
	id = le(p + 12, 4);
	switch (p[1]) {
	case 1: /* EAGER: only with immediate data, M4 */
		return -ZC_EPEERPROTO;
	case 2: /* RTS, M5: one buffer */
	case 7: /* ADV, M7: 1..8 buffers, no flag defined */
		if (len != 0 || (p[1] == 2 ? n != 40 : n < 40 || n > 16 + 8 * 24 || (n - 16) % 24))
			return -ZC_EPEERPROTO;
		for (size_t at = 16; at < n; at += 24) {
			raddr = le(p + at, 8);
			rlen = le(p + at + 8, 8);
			rflags = le(p + at + 20, 4);
			if ((rflags | (p[1] == 2)) != (p[1] == 2) || rlen < 1 || rlen > (1ull << 40) ||
			    raddr > UINT64_MAX - rlen)
				return -ZC_EPEERPROTO;
		}
		return 0;
	case 8: /* PUT, M8 */
		return n == ZC_HDR_SIZE && len != 0 ? 0 : -ZC_EPEERPROTO;
	case 3: /* FIN, M6 */
		return n == ZC_HDR_SIZE && len == 0 ? 0 : -ZC_EPEERPROTO;
	case 4: /* CREDIT */
	case 5: /* CLOSE */
	case 6: /* SHUTDOWN */
		return n == ZC_HDR_SIZE && len == 0 && id == 0 ? 0 : -ZC_EPEERPROTO;
	default:
		return -ZC_EPEERPROTO; /* M3 */
	}
}

static int hdr_eq(const struct zc__hdr *a, const struct zc__hdr *b)
{
	return a->version == b->version && a->type == b->type && a->window == b->window && a->ack == b->ack &&
	       a->len == b->len && a->id == b->id;
}

static int rts_eq(const struct zc__rts *a, const struct zc__rts *b)
{
	return a->addr == b->addr && a->len == b->len && a->rkey == b->rkey && a->flags == b->flags;
}

/* The first 4 bytes as an EAGER's immediate data (as the completion
 * carries it), the next 4 as the previous ack, n as the bytes received. */
static void imm_check(const uint8_t *p, size_t n, size_t eager_max)
{
	uint32_t imm = 0, prev = n >= 8 ? (uint32_t)le(p + 4, 4) : 0, v;
	struct zc__hdr h;
	int rc, spec;

	if (n < 4)
		return;
	memcpy(&imm, p, 4);
	v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; /* big-endian */
	spec = v >> 29 != 1 || (v & 0xffff) > 4096 || n > eager_max ? -ZC_EPEERPROTO : 0;
	rc = zc__imm_decode(imm, n, eager_max, prev, &h);
	CHECK(rc == spec);
	if (rc) {
		CHECK(zc_last_error()[0] != '\0');
		return;
	}
	CHECK(h.type == ZC_MSG_EAGER && h.len == n && h.window == (v & 0xffff));
	CHECK(h.ack == prev + (v >> 16 & 0x1fff));
	CHECK(zc__imm_encode(h.ack - prev, h.window) == imm); /* round trip */
}

/* Decodes p[0..n), checks it against the spec, bounds and round trip. */
static void msg_check(const uint8_t *p, size_t n, size_t eager_max)
{
	struct zc__hdr h, h2;
	struct zc__rts r, r2;
	uint8_t *out;
	int rc = zc__msg_decode(p, n, &h, &r);

	imm_check(p, n, eager_max);
	CHECK(rc == msg_spec(p, n));
	if (rc) {
		CHECK(zc_last_error()[0] != '\0');
		return;
	}
	CHECK(h.version == ZC_WIRE_VERSION && h.window <= ZC_CREDITS_MAX);
	CHECK(h.type > ZC_MSG_EAGER && h.type <= ZC_MSG_PUT);
	switch (h.type) {
	case ZC_MSG_RTS:
		CHECK(n == ZC_RTS_SIZE && h.len == 0);
		CHECK(r.len >= 1 && r.len <= ZC_RNDV_MAX_LEN);
		CHECK(r.addr <= UINT64_MAX - r.len); /* [addr, addr + len) does not wrap */
		CHECK((r.flags & ~(uint32_t)ZC_RTS_F_INV) == 0);
		break;
	case ZC_MSG_ADV:
		CHECK(h.len == 0 && zc__adv_count(n) >= 1 && zc__adv_count(n) <= ZC_ADV_MAX &&
		      n == ZC_ADV_SIZE(zc__adv_count(n)));
		for (uint32_t i = 0; i < zc__adv_count(n); i++) {
			zc__adv_desc(p, i, &r2);
			CHECK(r2.len >= 1 && r2.len <= ZC_RNDV_MAX_LEN && r2.addr <= UINT64_MAX - r2.len && r2.flags == 0);
		}
		break;
	case ZC_MSG_PUT:
		CHECK(n == ZC_HDR_SIZE && h.len != 0);
		break;
	default:
		CHECK(n == ZC_HDR_SIZE && h.len == 0);
		CHECK(h.type == ZC_MSG_FIN || h.id == 0);
		break;
	}
	CHECK(zc__msg_is_data(h.type) == (h.type == ZC_MSG_EAGER || h.type == ZC_MSG_RTS || h.type == ZC_MSG_ADV ||
					  h.type == ZC_MSG_PUT));

	/* Round trip: the header (and RTS body) re-encode to the same bytes, and
	 * those decode to the same struct. */
	out = malloc(n);
	CHECK(out);
	memcpy(out, p, n);
	memset(out, 0xee, h.type == ZC_MSG_RTS ? ZC_RTS_SIZE : ZC_HDR_SIZE);
	zc__hdr_encode(out, &h);
	if (h.type == ZC_MSG_RTS)
		zc__rts_encode(out + ZC_HDR_SIZE, &r);
	CHECK(memcmp(out, p, n) == 0);
	CHECK(zc__msg_decode(out, n, &h2, &r2) == 0);
	CHECK(hdr_eq(&h, &h2));
	CHECK(h.type != ZC_MSG_RTS || rts_eq(&r, &r2));
	free(out);
}

/* Fields from the input -> encode -> decode: accepted exactly when the spec
 * says so, and then with every field as encoded. */
static void msg_encode_check(const uint8_t *p, size_t n)
{
	struct zc__hdr h, d;
	struct zc__rts r, e;
	uint8_t buf[ZC_RTS_SIZE + 4096];
	uint32_t eager_max;
	uint16_t extra;
	size_t len;
	int rc;

	take(&p, &n, &h, sizeof(h));
	take(&p, &n, &r, sizeof(r));
	take(&p, &n, &eager_max, sizeof(eager_max));
	take(&p, &n, &extra, sizeof(extra));
	eager_max %= 8192;
	if (h.type == ZC_MSG_EAGER)
		h.len %= 4096;
	/* Usually the length the type implies, sometimes off by a little. */
	len = h.type == ZC_MSG_EAGER ? ZC_HDR_SIZE + h.len
	      : h.type == ZC_MSG_RTS || h.type == ZC_MSG_ADV ? ZC_RTS_SIZE : ZC_HDR_SIZE;
	if (extra & 0x8000)
		len = (len + (extra & 0x3f)) % sizeof(buf);
	else if (extra & 0x4000)
		len -= len < (extra & 0x3fu) ? len : (extra & 0x3fu);
	memset(buf, 0x5a, sizeof(buf));
	zc__hdr_encode(buf, &h);
	zc__rts_encode(buf + ZC_HDR_SIZE, &r);
	rc = zc__msg_decode(buf, len, &d, &e);
	CHECK(rc == msg_spec(buf, len));
	if (rc == 0) {
		CHECK(hdr_eq(&h, &d));
		CHECK(h.type != ZC_MSG_RTS || rts_eq(&r, &e));
	}
	msg_check(buf, len, eager_max);
}

/* ---- connection private data (docs/protocol.md §1.1, §5 P1-P3) ----------- */

static int priv_spec(const uint8_t *p, size_t n)
{
	uint64_t credits, slot, rd_atom;

	if (!p || n < 16 || memcmp(p + 12, "\x64\x72\x63\x7a", 4) != 0)
		return -ZC_EPEERPROTO; /* P1 */
	if (p[0] != 5)
		return -ZC_EVERSION; /* P2 */
	credits = le(p + 2, 2);
	slot = le(p + 4, 4);
	rd_atom = le(p + 8, 4);
	if (p[1] != 0 || credits < 1 || credits > 4096 || slot < 64 || slot > (1u << 20) || rd_atom < 1 ||
	    rd_atom > 65536)
		return -ZC_EPEERPROTO; /* P3 */
	return 0;
}

static int priv_eq(const struct zc__priv *a, const struct zc__priv *b)
{
	return a->version == b->version && a->flags == b->flags && a->credits == b->credits &&
	       a->slot_size == b->slot_size && a->rd_atom == b->rd_atom;
}

static void priv_check(const uint8_t *p, size_t n)
{
	struct zc__priv pr, pr2;
	uint8_t out[ZC_PRIV_SIZE];
	int rc = zc__priv_decode(p, n, &pr);

	CHECK(rc == priv_spec(p, n));
	/* Extra bytes (rdma_cm's padding) never change the verdict. */
	if (p && n > ZC_PRIV_SIZE) {
		CHECK(zc__priv_decode(p, ZC_PRIV_SIZE, &pr2) == rc);
		CHECK(rc || priv_eq(&pr, &pr2));
	}
	if (rc) {
		CHECK(zc_last_error()[0] != '\0');
		return;
	}
	CHECK(n >= ZC_PRIV_SIZE);
	CHECK(pr.version == ZC_WIRE_VERSION && pr.flags == 0);
	CHECK(pr.credits >= 1 && pr.credits <= ZC_CREDITS_MAX);
	CHECK(pr.slot_size >= ZC_SLOT_MIN && pr.slot_size <= ZC_SLOT_MAX);
	CHECK(pr.rd_atom >= 1 && pr.rd_atom <= 65536);
	zc__priv_encode(out, &pr);
	CHECK(memcmp(out, p, ZC_PRIV_SIZE) == 0);
	CHECK(zc__priv_decode(out, sizeof(out), &pr2) == 0);
	CHECK(priv_eq(&pr, &pr2));
}

static void priv_encode_check(const uint8_t *p, size_t n)
{
	struct zc__priv pr, d;
	uint8_t out[ZC_PRIV_SIZE];
	int rc;

	take(&p, &n, &pr, sizeof(pr));
	zc__priv_encode(out, &pr);
	CHECK(le(out + 12, 4) == ZC_PRIV_MAGIC);
	rc = zc__priv_decode(out, sizeof(out), &d);
	CHECK(rc == priv_spec(out, sizeof(out)));
	CHECK(rc || priv_eq(&pr, &d));
	priv_check(out, sizeof(out));
}

/* ---- RMA descriptor (src/wire.c: u8 version 1, u8 access, u16 0, u32 rkey,
 * u64 addr, u64 len, u64 0; access a non-empty subset of READ|WRITE;
 * len >= 1 and [addr, addr + len) not wrapping) ------------------------------ */

static int desc_spec(const uint8_t *p)
{
	static const uint8_t zero[8];
	uint64_t addr, len;

	if (!p || p[0] != 1 || p[2] || p[3] || memcmp(p + 24, zero, 8) != 0 || p[1] == 0 ||
	    (p[1] & ~(ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE)))
		return -EINVAL;
	addr = le(p + 8, 8);
	len = le(p + 16, 8);
	return len != 0 && addr <= UINT64_MAX - len ? 0 : -EINVAL;
}

static void desc_check(const struct zc_desc *d)
{
	struct zc_desc out;
	uint32_t rkey, rkey2;
	uint64_t addr, len, addr2, len2;
	int access, access2;
	int rc = zc__desc_decode(d, &access, &rkey, &addr, &len);

	CHECK(rc == desc_spec(d ? d->bytes : NULL));
	if (rc) {
		CHECK(zc_last_error()[0] != '\0');
		return;
	}
	CHECK(access != 0 && (access & ~(ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE)) == 0);
	CHECK(len >= 1 && addr <= UINT64_MAX - len);
	memset(&out, 0xee, sizeof(out));
	zc__desc_encode(&out, access, rkey, addr, len);
	CHECK(memcmp(out.bytes, d->bytes, ZC_DESC_SIZE) == 0);
	CHECK(zc__desc_decode(&out, &access2, &rkey2, &addr2, &len2) == 0);
	CHECK(access2 == access && rkey2 == rkey && addr2 == addr && len2 == len);
}

static void desc_encode_check(const uint8_t *p, size_t n)
{
	struct {
		uint8_t access;
		uint32_t rkey;
		uint64_t addr, len;
	} f;
	struct zc_desc d;
	uint32_t rkey;
	uint64_t addr, len;
	int access, rc;

	take(&p, &n, &f.access, sizeof(f.access));
	take(&p, &n, &f.rkey, sizeof(f.rkey));
	take(&p, &n, &f.addr, sizeof(f.addr));
	take(&p, &n, &f.len, sizeof(f.len));
	zc__desc_encode(&d, f.access, f.rkey, f.addr, f.len);
	rc = zc__desc_decode(&d, &access, &rkey, &addr, &len);
	CHECK(rc == desc_spec(d.bytes));
	CHECK(rc || (access == f.access && rkey == f.rkey && addr == f.addr && len == f.len));
	desc_check(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p;
	size_t n;
	struct zc_desc d;

	if (size == 0)
		return 0;
	p = data + 1;
	n = size - 1;
	switch (data[0] % 6) {
	case 0: {
		uint32_t eager_max;

		if (n < 4)
			return 0;
		eager_max = (uint32_t)le(p, 4);
		msg_check(p + 4, n - 4, eager_max);
		break;
	}
	case 1:
		priv_check(n ? p : NULL, n);
		break;
	case 2:
		if (n == 0) {
			desc_check(NULL);
			break;
		}
		take(&p, &n, d.bytes, sizeof(d.bytes));
		desc_check(&d);
		break;
	case 3:
		msg_encode_check(p, n);
		break;
	case 4:
		priv_encode_check(p, n);
		break;
	case 5:
		desc_encode_check(p, n);
		break;
	}
	return 0;
}
