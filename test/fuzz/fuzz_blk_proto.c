/*
 * fuzz_blk_proto - libFuzzer target for the block protocol's parsers
 * (examples/blk/blk_proto.c, docs/blk-protocol.md) and the size and address
 * parsers its programs take from the command line (examples/common/zc_parse.c)
 *
 * Input: a 17-byte prefix, then the payload.
 *   0..7   u64 capacity (blocks)        \
 *   8..11  u32 max_blocks                |  the target's geometry the
 *   12..13 u16 queue_depth (granted)     |  commands are validated against
 *   14     bit 0 read-only, bit 1 4096-byte blocks (else 512)
 *   15     max_qd: the target's --queue-depth for HELLO
 *   16     what the payload is (% 5):
 *          0  a received capsule: decode, then HELLO and command validation
 *          1  a received response: decode
 *          2  capsule fields -> blk_capsule_encode -> decode -> validate
 *          3  a size string for zc_ex_parse_size
 *          4  u8 hostcap, then an ADDR[:PORT] string for zc_ex_parse_hostport
 *
 * Every decode and validation must return exactly what docs/blk-protocol.md
 * §2, §3 and §5 (checks 1-10) say, computed here independently; what is
 * accepted must respect the bounds (LBA range within the capacity, transfer
 * within max_blocks, tag within the queue depth), and must re-encode to the
 * same bytes and decode to the same struct. Any failure aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk_proto.h"
#include "zc_example.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                  \
	do {                                                                                         \
		if (!(cond)) {                                                                       \
			fprintf(stderr, "fuzz_blk_proto: %s:%d: invariant failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                                    \
			abort();                                                                     \
		}                                                                                    \
	} while (0)

#define PREFIX 17

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static int zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (p[n])
			return 0;
	return 1;
}

/* ---- capsules ------------------------------------------------------------ */

/* §5 checks 1-2 from the bytes; *tag as blk_capsule_decode documents it. */
static int decode_spec(const uint8_t *p, size_t n, uint16_t *tag)
{
	*tag = BLK_TAG_NONE;
	if (!p || n != 64 || p[0] != 1)
		return BLK_S_MALFORMED;
	*tag = (uint16_t)le(p + 4, 2);
	if (!zero(p + 6, 2) || !zero(p + 12, 4) || !zero(p + 24, 8))
		return BLK_S_BAD_FIELD;
	return BLK_S_OK;
}

/* §5 check 3 (HELLO, §4). */
static int hello_spec(const struct blk_capsule *c, uint16_t max_qd, uint16_t *qd)
{
	if (c->opcode != 1)
		return BLK_S_NO_HELLO;
	if (c->flags || c->tag || c->lba || !zero(c->desc.bytes, ZC_DESC_SIZE))
		return BLK_S_BAD_FIELD;
	if (c->nblocks < 1 || c->nblocks > 128)
		return BLK_S_BAD_QD;
	*qd = (uint16_t)(c->nblocks < max_qd ? c->nblocks : max_qd);
	return BLK_S_OK;
}

/* §5 checks 4-10, in order; the range in 128 bits so it cannot overflow. */
static int validate_spec(const struct blk_capsule *c, const struct blk_geom *g)
{
	int op = c->opcode, data = op == 2 || op == 3;
	int nodesc = zero(c->desc.bytes, ZC_DESC_SIZE);

	if (op < 2 || op > 6)
		return BLK_S_BAD_OPCODE;
	if (c->flags)
		return BLK_S_BAD_FIELD;
	if (c->tag >= g->queue_depth)
		return BLK_S_BAD_TAG;
	if (op == 4 || op == 6) /* FLUSH, CAPACITY */
		return c->lba || c->nblocks || !nodesc ? BLK_S_BAD_FIELD : BLK_S_OK;
	if (c->nblocks == 0 || (op == 5 && !nodesc))
		return BLK_S_BAD_FIELD;
	if (g->read_only && (op == 3 || op == 5))
		return BLK_S_READ_ONLY;
	if (data && c->nblocks > g->max_blocks)
		return BLK_S_TOO_LARGE;
	if ((unsigned __int128)c->lba + c->nblocks > g->capacity)
		return BLK_S_LBA_RANGE;
	return BLK_S_OK;
}

static int capsule_eq(const struct blk_capsule *a, const struct blk_capsule *b)
{
	return a->version == b->version && a->opcode == b->opcode && a->flags == b->flags && a->tag == b->tag &&
	       a->nblocks == b->nblocks && a->lba == b->lba && memcmp(a->desc.bytes, b->desc.bytes, ZC_DESC_SIZE) == 0;
}

/* A decoded capsule through both validators, as the target runs them. */
static void validate_check(const struct blk_capsule *c, const struct blk_geom *g, uint16_t max_qd)
{
	uint16_t qd = 0xbeef, want_qd = 0xbeef;
	int st;

	st = blk_hello_validate(c, max_qd, &qd);
	CHECK(st == hello_spec(c, max_qd, &want_qd));
	if (st == BLK_S_OK) {
		CHECK(qd == want_qd);
		CHECK(qd <= max_qd && qd <= c->nblocks && qd <= BLK_MAX_QD);
	}

	st = blk_capsule_validate(c, g);
	CHECK(st == validate_spec(c, g));
	CHECK(st >= BLK_S_OK && st < BLK_S_MAX_);
	CHECK(strcmp(blk_status_str(st), "unknown status") != 0);
	if (st != BLK_S_OK)
		return;
	CHECK(strcmp(blk_opcode_str(c->opcode), "?") != 0);
	CHECK(c->tag < g->queue_depth && c->flags == 0);
	if (c->opcode == BLK_OP_FLUSH || c->opcode == BLK_OP_CAPACITY) {
		CHECK(c->lba == 0 && c->nblocks == 0);
		return;
	}
	/* READ, WRITE, DISCARD: a non-empty range inside the device. */
	CHECK(c->nblocks >= 1 && c->lba < g->capacity && c->nblocks <= g->capacity - c->lba);
	CHECK(!g->read_only || c->opcode == BLK_OP_READ);
	if (c->opcode == BLK_OP_READ || c->opcode == BLK_OP_WRITE) {
		uint64_t bytes = blk_xfer_bytes(c, g->block_size);

		CHECK(c->nblocks <= g->max_blocks);
		CHECK(bytes == (uint64_t)c->nblocks * g->block_size);
		CHECK(bytes / g->block_size == c->nblocks);
		CHECK(bytes <= (uint64_t)g->max_blocks * g->block_size);
	}
}

static void capsule_check(const uint8_t *p, size_t n, const struct blk_geom *g, uint16_t max_qd)
{
	struct blk_capsule c, c2;
	uint8_t out[BLK_CAPSULE_SIZE];
	uint16_t tag, tag2, want_tag;
	int st = blk_capsule_decode(p, n, &c, &tag);

	CHECK(st == decode_spec(p, n, &want_tag));
	CHECK(tag == want_tag);
	if (st == BLK_S_MALFORMED) {
		struct blk_capsule none;

		memset(&none, 0, sizeof(none));
		CHECK(capsule_eq(&c, &none));
		return;
	}
	/* Decoded (OK or BAD_FIELD): every field is the bytes'. */
	CHECK(c.version == BLK_PROTO_VERSION && c.tag == tag);
	CHECK(c.opcode == p[1] && c.flags == le(p + 2, 2) && c.nblocks == le(p + 8, 4) && c.lba == le(p + 16, 8));
	CHECK(memcmp(c.desc.bytes, p + 32, ZC_DESC_SIZE) == 0);
	if (st != BLK_S_OK)
		return;
	blk_capsule_encode(&c, out);
	CHECK(memcmp(out, p, BLK_CAPSULE_SIZE) == 0);
	CHECK(blk_capsule_decode(out, sizeof(out), &c2, &tag2) == BLK_S_OK);
	CHECK(tag2 == tag && capsule_eq(&c, &c2));
	validate_check(&c, g, max_qd);
}

static void capsule_encode_check(const uint8_t *p, size_t n, const struct blk_geom *g, uint16_t max_qd)
{
	uint8_t f[BLK_CAPSULE_SIZE] = {0}, out[BLK_CAPSULE_SIZE];
	struct blk_capsule c, d;
	uint16_t tag;

	memcpy(f, p, n < sizeof(f) ? n : sizeof(f));
	c.version = BLK_PROTO_VERSION;
	c.opcode = f[0];
	c.flags = (uint16_t)le(f + 1, 2);
	c.tag = (uint16_t)le(f + 3, 2);
	c.nblocks = (uint32_t)le(f + 5, 4);
	c.lba = le(f + 9, 8);
	memcpy(c.desc.bytes, f + 17, ZC_DESC_SIZE);
	blk_capsule_encode(&c, out);
	CHECK(blk_capsule_decode(out, sizeof(out), &d, &tag) == BLK_S_OK);
	CHECK(tag == c.tag && capsule_eq(&c, &d));
	capsule_check(out, sizeof(out), g, max_qd);
}

/* ---- responses (§3) ------------------------------------------------------ */

static int resp_eq(const struct blk_resp *a, const struct blk_resp *b)
{
	return a->version == b->version && a->opcode == b->opcode && a->tag == b->tag && a->status == b->status &&
	       a->dev_flags == b->dev_flags && a->detail == b->detail && a->block_size == b->block_size &&
	       a->capacity == b->capacity && a->queue_depth == b->queue_depth && a->max_blocks == b->max_blocks;
}

static void resp_check(const uint8_t *p, size_t n)
{
	struct blk_resp r, r2;
	uint8_t out[BLK_RESP_SIZE];
	int rc = blk_resp_decode(p, n, &r);
	int want = p && n == 32 && p[0] == 1 && zero(p + 26, 2) && le(p + 4, 2) < BLK_S_MAX_ ? 0 : -1;

	CHECK(rc == want);
	if (rc)
		return;
	CHECK(r.version == BLK_PROTO_VERSION && r.status < BLK_S_MAX_);
	CHECK(strcmp(blk_status_str(r.status), "unknown status") != 0);
	CHECK(r.opcode == p[1] && r.tag == le(p + 2, 2) && r.dev_flags == le(p + 6, 2) && r.detail == le(p + 8, 4) &&
	      r.block_size == le(p + 12, 4) && r.capacity == le(p + 16, 8) && r.queue_depth == le(p + 24, 2) &&
	      r.max_blocks == le(p + 28, 4));
	blk_resp_encode(&r, out);
	CHECK(memcmp(out, p, BLK_RESP_SIZE) == 0);
	CHECK(blk_resp_decode(out, sizeof(out), &r2) == 0);
	CHECK(resp_eq(&r, &r2));
}

/* ---- option strings ------------------------------------------------------ */

/* "123", "4k", "64M", "1G", "2GiB", "8kb", "512b": digits, then optionally
 * k/m/g with an optional i after it, then an optional b; the value must fit a
 * long long. Anything else is -1. */
static void size_check(const char *s)
{
	long long v = zc_ex_parse_size(s), back;
	unsigned __int128 digits = 0, mult = 1;
	const char *q = s, *dend;
	char buf[32];
	int documented;

	CHECK(v >= -1);
	while (*q >= '0' && *q <= '9') {
		if (digits <= (unsigned __int128)1 << 80)
			digits = digits * 10 + (unsigned)(*q - '0');
		q++;
	}
	dend = q;
	switch (*q) {
	case 'k': case 'K': mult = 1u << 10; break;
	case 'm': case 'M': mult = 1u << 20; break;
	case 'g': case 'G': mult = 1u << 30; break;
	}
	if (mult > 1) {
		q++;
		if (*q == 'i' || *q == 'I')
			q++;
	}
	if (*q == 'b' || *q == 'B')
		q++;
	documented = dend > s && *q == 0;
	if (documented && digits * mult <= (unsigned __int128)INT64_MAX)
		CHECK(v == (long long)(digits * mult));
	else
		CHECK(v == -1);
	if (v < 0)
		return;
	CHECK((unsigned __int128)v == digits * mult);
	snprintf(buf, sizeof(buf), "%lld", v);
	back = zc_ex_parse_size(buf);
	CHECK(back == v);
}

/*
 * The address grammar, computed here independently: "[" HOST "]" [":" PORT],
 * or HOST ":" PORT with a single colon, or HOST alone (an unbracketed HOST
 * with two or more colons is a bare IPv6 address without a port). HOST is
 * not empty and shorter than hostcap; PORT is digits only, 1..65535.
 * Returns 0 with *h, *hn and *port set, or -1.
 */
static int hostport_spec(const char *s, size_t hostcap, const char **h, size_t *hn, uint16_t *port)
{
	const char *colon = NULL, *close, *first = strchr(s, ':'), *d;
	unsigned long v = 0;

	*h = s;
	if (s[0] == '[') {
		close = strchr(s, ']');
		if (!close)
			return -1;
		*h = s + 1;
		*hn = (size_t)(close - s - 1);
		if (close[1] == ':')
			colon = close + 1;
		else if (close[1])
			return -1;
	} else if (first && !strchr(first + 1, ':')) {
		colon = first;
		*hn = (size_t)(first - s);
	} else {
		*hn = strlen(s);
	}
	if (*hn == 0 || *hn >= hostcap)
		return -1;
	*port = BLK_DEFAULT_PORT;
	if (!colon)
		return 0;
	d = colon + 1;
	if (*d == 0)
		return -1;
	for (; *d; d++) {
		if (*d < '0' || *d > '9')
			return -1;
		if (v <= 65535)
			v = v * 10 + (unsigned long)(*d - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static void hostport_check(const char *s, size_t hostcap)
{
	char *host = malloc(hostcap), *host2, *re; /* exactly hostcap bytes: ASan sees a write past them */
	const char *want_h = NULL;
	size_t n = 0, relen;
	uint16_t port = 0, port2 = 0, want_port = 0;
	int rc, want;

	CHECK(host || hostcap == 0);
	want = hostport_spec(s, hostcap, &want_h, &n, &want_port);
	rc = zc_ex_parse_hostport(s, host, hostcap, &port, BLK_DEFAULT_PORT);
	CHECK(rc == want);
	if (rc == 0) {
		CHECK(strlen(host) == n && n < hostcap && memcmp(host, want_h, n) == 0);
		CHECK(port == want_port && port != 0);
	}
	if (rc == 0 && !(strchr(host, ':') && strchr(host, ']'))) {
		/* ADDR:PORT printed back (bracketed where it must be) parses to the same;
		 * a bare IPv6 address holding a ']' has no such form. */
		relen = n + 10;
		re = malloc(relen);
		host2 = malloc(hostcap);
		CHECK(re && host2);
		snprintf(re, relen, strchr(host, ':') || host[0] == '[' ? "[%s]:%u" : "%s:%u", host, port);
		CHECK(zc_ex_parse_hostport(re, host2, hostcap, &port2, 1) == 0);
		CHECK(strcmp(host, host2) == 0 && port2 == port);
		free(re);
		free(host2);
	}
	free(host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blk_geom g;
	const uint8_t *p;
	size_t n;
	uint16_t max_qd;
	char *s;

	if (size < PREFIX)
		return 0;
	p = data + PREFIX;
	n = size - PREFIX;
	g.capacity = le(data, 8);
	g.max_blocks = (uint32_t)le(data + 8, 4);
	g.queue_depth = (uint16_t)le(data + 12, 2);
	g.read_only = data[14] & 1;
	g.block_size = data[14] & 2 ? 4096 : 512;
	max_qd = data[15];
	switch (data[16] % 5) {
	case 0:
		capsule_check(n ? p : NULL, n, &g, max_qd);
		break;
	case 1:
		resp_check(n ? p : NULL, n);
		break;
	case 2:
		capsule_encode_check(p, n, &g, max_qd);
		break;
	case 3:
	case 4: {
		size_t hostcap = 0;

		if (data[16] % 5 == 4) {
			if (n == 0)
				return 0;
			hostcap = *p++;
			n--;
		}
		s = malloc(n + 1);
		CHECK(s);
		memcpy(s, p, n);
		s[n] = 0;
		if (data[16] % 5 == 3)
			size_check(s);
		else
			hostport_check(s, hostcap);
		free(s);
		break;
	}
	}
	return 0;
}
