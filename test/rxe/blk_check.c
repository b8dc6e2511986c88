/*
 * blk_check - checks a running zc_blk_legacy_target through the initiator library
 *
 *   blk_check io SRCADDR ADDR:PORT FIRST_LBA BLOCKS SEED [verify|loop]
 *       write BLOCKS blocks from FIRST_LBA with a pattern of SEED in mixed
 *       command sizes, QD 8, read them back in other sizes and verify every
 *       byte; FLUSH; DISCARD the last quarter and read zeros back. With
 *       "verify": only read and verify (data another initiator wrote). With
 *       "loop": write, read back and verify over and over, printing
 *       "ok: pass N" after each, until killed (a test kills it mid-I/O).
 *       A failed connection fails the run, unless ZC_BLK_RECONNECT=1 (set
 *       only by tests that inject faults): then it is re-established and
 *       the count printed.
 *   blk_check errors SRCADDR ADDR:PORT
 *       raw capsules the target must answer with the right error: out-of-range
 *       LBAs, oversize transfers, bad opcodes, fields, tags, lengths, bad and
 *       short descriptors, wrong rights, tag reuse, commands before HELLO; the
 *       connection keeps working. Last, a revoked descriptor: the RDMA access
 *       fails, the target drops that connection only and serves a new one.
 *   blk_check readonly SRCADDR ADDR:PORT
 *       against a --read-only target: WRITE and DISCARD refused, READ works.
 *
 * Prints one "ok:" line per check; exits 0 when all passed, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zcrdma.h>

#include "blk_initiator.h"
#include "zc_example.h"

#define QD 8
#define TIMEOUT_MS 30000

static const char *src, *host;
static uint16_t port;
static int failures;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	failures++;
}

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL (fatal): ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

struct session {
	struct zc_ctx *ctx;
	struct blk_init *bi;
	struct zc_mr *mr;
	uint8_t *buf;
	size_t len;
	const struct blk_geom *g;
};

/* reconnect: recover from connection failures (blk_init_opts.reconnect_ms);
 * off where a test expects the target to end the connection. */
static void open_session(struct session *s, int no_hello, int reconnect, size_t buflen)
{
	struct blk_init_opts o;
	int rc;

	memset(s, 0, sizeof(*s));
	rc = zc_ctx_new(src, NULL, &s->ctx);
	if (rc)
		fatal("zc_ctx_new(%s): %s (%s)", src, zc_strerror(rc), zc_last_error());
	blk_init_opts_init(&o);
	o.queue_depth = QD;
	o.no_hello = no_hello;
	if (!reconnect)
		o.reconnect_ms = 0;
	rc = blk_init_connect(s->ctx, host, port, &o, &s->bi);
	if (rc)
		fatal("connect to %s:%u: %s", host, port, blk_init_last_error());
	s->g = blk_init_geom(s->bi);
	s->len = buflen;
	s->buf = aligned_alloc(4096, buflen);
	if (!s->buf)
		fatal("out of memory");
	memset(s->buf, 0, buflen);
	rc = zc_mr_reg(s->ctx, s->buf, buflen, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &s->mr);
	if (rc)
		fatal("zc_mr_reg: %s (%s)", zc_strerror(rc), zc_last_error());
}

static void close_session(struct session *s)
{
	if (s->bi)
		blk_init_close(&s->bi);
	zc_mr_dereg(&s->mr);
	zc_ctx_free(&s->ctx);
	free(s->buf);
}

/* The pattern: each 8-byte word depends on the seed and its byte offset on the device. */
static uint64_t word(uint64_t seed, uint64_t off)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ull + off;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill(uint8_t *p, uint64_t dev_off, size_t len, uint64_t seed)
{
	size_t i;

	for (i = 0; i < len; i += 8) {
		uint64_t w = word(seed, dev_off + i);

		memcpy(p + i, &w, 8);
	}
}

static long check(const uint8_t *p, uint64_t dev_off, size_t len, uint64_t seed)
{
	size_t i;

	for (i = 0; i < len; i += 8) {
		uint64_t w = word(seed, dev_off + i);

		if (memcmp(p + i, &w, 8))
			return (long)i;
	}
	return -1;
}

/* ---- io -------------------------------------------------------------- */

struct op {
	int busy;
	uint64_t lba;
	uint32_t n;
	int opcode;
};

/* Runs READs or WRITEs over [first, first + blocks) with sizes from sizes[],
 * QD commands in flight, each in its own slot of the buffer. */
static void sweep(struct session *s, int opcode, uint64_t first, uint64_t blocks, const uint32_t *sizes, int nsizes,
		  uint64_t seed, int expect_zero)
{
	uint32_t bs = s->g->block_size;
	size_t slot = (size_t)s->g->max_blocks * bs;
	struct op ops[QD] = {{0}};
	struct blk_cpl c[16];
	uint64_t next = first, end = first + blocks, done = 0;
	int k = 0, i, n, rc;

	while (done < blocks) {
		for (i = 0; i < QD && next < end; i++) {
			uint32_t want;

			if (ops[i].busy)
				continue;
			want = sizes[k++ % nsizes];
			if (want > s->g->max_blocks)
				want = s->g->max_blocks;
			if (want > end - next)
				want = (uint32_t)(end - next);
			ops[i] = (struct op){.busy = 1, .lba = next, .n = want, .opcode = opcode};
			if (opcode == BLK_OP_WRITE)
				fill(s->buf + i * slot, next * bs, (size_t)want * bs, seed);
			else
				memset(s->buf + i * slot, 0xee, (size_t)want * bs);
			rc = blk_init_submit(s->bi, opcode, next, want, s->mr, i * slot, (uint64_t)i);
			if (rc)
				fatal("submit %s lba %llu: %s", blk_opcode_str(opcode), (unsigned long long)next,
				      blk_init_last_error());
			next += want;
		}
		n = blk_init_poll(s->bi, c, 16, TIMEOUT_MS);
		if (n <= 0)
			fatal("no completion (%d: %s): %s", n, n ? zc_strerror(n) : "timeout", blk_init_last_error());
		for (i = 0; i < n; i++) {
			struct op *o;

			if (c[i].unsolicited)
				fatal("unsolicited response %s", blk_status_str(c[i].resp.status));
			o = &ops[c[i].user];
			if (c[i].resp.status)
				fatal("%s lba %llu x %u: %s (detail %u)", blk_opcode_str(opcode),
				      (unsigned long long)o->lba, o->n, blk_status_str(c[i].resp.status),
				      c[i].resp.detail);
			if (opcode == BLK_OP_READ) {
				uint8_t *p = s->buf + c[i].user * slot;
				long bad;

				if (expect_zero) {
					size_t j;

					for (j = 0; j < (size_t)o->n * bs && !p[j]; j++)
						;
					bad = j < (size_t)o->n * bs ? (long)j : -1;
				} else {
					bad = check(p, o->lba * bs, (size_t)o->n * bs, seed);
				}
				if (bad >= 0)
					fatal("READ lba %llu x %u: byte %ld differs from what was written",
					      (unsigned long long)o->lba, o->n, bad);
			}
			done += o->n;
			o->busy = 0;
		}
	}
}

static int simple(struct session *s, int opcode, uint64_t lba, uint32_t n)
{
	struct blk_cpl c;
	int rc = blk_init_submit(s->bi, opcode, lba, n, NULL, 0, 99);

	if (rc)
		fatal("submit %s: %s", blk_opcode_str(opcode), blk_init_last_error());
	do {
		rc = blk_init_poll(s->bi, &c, 1, TIMEOUT_MS);
		if (rc <= 0)
			fatal("no %s response", blk_opcode_str(opcode));
	} while (c.unsolicited);
	return c.resp.status;
}

static int do_io(uint64_t first, uint64_t blocks, uint64_t seed, int verify_only, int loop)
{
	static const uint32_t wsizes[] = {1, 7, 256, 3, 64, 1024, 2, 255, 8};
	static const uint32_t rsizes[] = {5, 1024, 1, 100, 33, 512, 4};
	const char *reconnect = getenv("ZC_BLK_RECONNECT");
	struct session s;
	struct blk_resp cap;
	unsigned pass;
	int rc;

	/* On a clean link a failed QP is a bug: reconnecting would hide it. */
	open_session(&s, 0, reconnect && !strcmp(reconnect, "1"), (size_t)QD * 128 * 1024);
	if ((size_t)s.g->max_blocks * s.g->block_size > 128 * 1024)
		fatal("target max transfer larger than this test's slots");
	printf("ok: connected: %llu blocks of %u bytes, max %u blocks per command, queue depth %u\n",
	       (unsigned long long)s.g->capacity, s.g->block_size, s.g->max_blocks, s.g->queue_depth);
	if (first + blocks > s.g->capacity)
		fatal("the region is beyond the device");
	for (pass = 1; loop; pass++) {
		sweep(&s, BLK_OP_WRITE, first, blocks, wsizes, 9, seed + pass, 0);
		sweep(&s, BLK_OP_READ, first, blocks, rsizes, 7, seed + pass, 0);
		printf("ok: pass %u\n", pass);
	}
	if (!verify_only) {
		sweep(&s, BLK_OP_WRITE, first, blocks, wsizes, 9, seed, 0);
		printf("ok: wrote %llu blocks from LBA %llu (seed %llu)\n", (unsigned long long)blocks,
		       (unsigned long long)first, (unsigned long long)seed);
	}
	sweep(&s, BLK_OP_READ, first, blocks, rsizes, 7, seed, 0);
	printf("ok: read back and verified %llu blocks from LBA %llu\n", (unsigned long long)blocks,
	       (unsigned long long)first);
	if (!verify_only) {
		rc = simple(&s, BLK_OP_FLUSH, 0, 0);
		if (rc)
			fail("FLUSH: %s", blk_status_str(rc));
		else
			printf("ok: FLUSH\n");
		rc = blk_init_capacity(s.bi, &cap, TIMEOUT_MS);
		if (rc || cap.status || cap.capacity != s.g->capacity || cap.block_size != s.g->block_size)
			fail("CAPACITY: rc %d status %s capacity %llu", rc, blk_status_str(cap.status),
			     (unsigned long long)cap.capacity);
		else
			printf("ok: CAPACITY says %llu blocks\n", (unsigned long long)cap.capacity);
		rc = simple(&s, BLK_OP_DISCARD, first + blocks - blocks / 4, (uint32_t)(blocks / 4));
		if (rc)
			fail("DISCARD: %s", blk_status_str(rc));
		sweep(&s, BLK_OP_READ, first + blocks - blocks / 4, blocks / 4, rsizes, 7, seed, 1);
		printf("ok: DISCARD of %llu blocks reads back as zeros\n", (unsigned long long)(blocks / 4));
		/* Put the pattern back so another initiator can verify the whole region. */
		sweep(&s, BLK_OP_WRITE, first + blocks - blocks / 4, blocks / 4, wsizes, 9, seed, 0);
	}
	printf("ok: done; the connection was re-established %u time(s)\n", blk_init_reconnects(s.bi));
	close_session(&s);
	return failures ? 1 : 0;
}

/* ---- errors ------------------------------------------------------------ */

/* Sends raw bytes and returns the one response they get. */
static struct blk_resp raw(struct session *s, const void *bytes, size_t len)
{
	struct blk_cpl c;
	int n;

	if (blk_init_send_raw(s->bi, bytes, len))
		fatal("send: %s", blk_init_last_error());
	n = blk_init_poll(s->bi, &c, 1, TIMEOUT_MS);
	if (n != 1)
		fatal("no response to a raw capsule (%d: %s)", n, n < 0 ? zc_strerror(n) : "timeout");
	return c.resp;
}

static struct blk_resp raw_cmd(struct session *s, const struct blk_capsule *c)
{
	uint8_t buf[BLK_CAPSULE_SIZE];

	blk_capsule_encode(c, buf);
	return raw(s, buf, sizeof(buf));
}

static void expect(const char *what, struct blk_resp r, int status, uint16_t tag)
{
	if (r.status != status || r.tag != tag)
		fail("%s: got status '%s' tag %u, expected '%s' tag %u", what, blk_status_str(r.status), r.tag,
		     blk_status_str(status), tag);
	else
		printf("ok: %s -> %s (tag %u)\n", what, blk_status_str(status), tag);
}

static struct zc_export *export(struct session *s, size_t off, size_t len, int access, struct zc_desc *d)
{
	struct zc_export *e;
	int rc = zc_export(blk_init_conn(s->bi), s->mr, off, len, access, &e, d);

	if (rc)
		fatal("zc_export: %s (%s)", zc_strerror(rc), zc_last_error());
	return e;
}

static void io_still_works(struct session *s, uint64_t seed)
{
	static const uint32_t sizes[] = {8, 1, 3};

	sweep(s, BLK_OP_WRITE, 64, 24, sizes, 3, seed, 0);
	sweep(s, BLK_OP_READ, 64, 24, sizes, 3, seed, 0);
	printf("ok: verified I/O on the same connection afterwards\n");
}

static int do_errors(void)
{
	struct session s;
	struct blk_capsule c;
	struct zc_export *e, *e2;
	struct zc_desc d;
	struct blk_resp r;
	uint8_t junk[256];
	uint32_t bs, maxb;
	uint64_t cap;
	int attempt, got_ok, got_dup, i, n;

	/* Before HELLO. */
	open_session(&s, 1, 0, 1 << 20);
	c = (struct blk_capsule){.version = BLK_PROTO_VERSION, .opcode = BLK_OP_CAPACITY, .tag = 3};
	expect("CAPACITY before HELLO", raw_cmd(&s, &c), BLK_S_NO_HELLO, 3);
	c = (struct blk_capsule){.version = BLK_PROTO_VERSION, .opcode = BLK_OP_HELLO, .nblocks = 0};
	expect("HELLO asking for queue depth 0", raw_cmd(&s, &c), BLK_S_BAD_QD, 0);
	c.nblocks = BLK_MAX_QD + 1;
	expect("HELLO asking for queue depth 129", raw_cmd(&s, &c), BLK_S_BAD_QD, 0);
	c.nblocks = 4;
	r = raw_cmd(&s, &c);
	expect("HELLO asking for queue depth 4", r, BLK_S_OK, 0);
	if (r.queue_depth != 4 || !r.capacity || !r.max_blocks)
		fail("HELLO response: queue depth %u capacity %llu max blocks %u", r.queue_depth,
		     (unsigned long long)r.capacity, r.max_blocks);
	expect("a second HELLO", raw_cmd(&s, &c), BLK_S_BAD_OPCODE, 0);
	close_session(&s);

	open_session(&s, 0, 0, 1 << 20);
	bs = s.g->block_size;
	maxb = s.g->max_blocks;
	cap = s.g->capacity;
	e = export(&s, 0, (size_t)maxb * bs, ZC_ACCESS_REMOTE_WRITE, &d);
#define CMD(op, t, l, n) ((struct blk_capsule){.version = BLK_PROTO_VERSION, .opcode = (op), .tag = (t), .lba = (l), .nblocks = (n), .desc = d})
	c = CMD(BLK_OP_READ, 1, cap, 1);
	expect("READ at LBA == capacity", raw_cmd(&s, &c), BLK_S_LBA_RANGE, 1);
	c = CMD(BLK_OP_READ, 2, cap - 1, 2);
	expect("READ crossing the end", raw_cmd(&s, &c), BLK_S_LBA_RANGE, 2);
	c = CMD(BLK_OP_READ, 3, UINT64_MAX, 1);
	expect("READ at LBA 2^64-1", raw_cmd(&s, &c), BLK_S_LBA_RANGE, 3);
	c = CMD(BLK_OP_READ, 4, 0, maxb + 1);
	expect("READ of max_blocks + 1", raw_cmd(&s, &c), BLK_S_TOO_LARGE, 4);
	c = CMD(BLK_OP_READ, 4, 0, 0);
	expect("READ of 0 blocks", raw_cmd(&s, &c), BLK_S_BAD_FIELD, 4);
	c = CMD(0, 5, 0, 1);
	expect("opcode 0", raw_cmd(&s, &c), BLK_S_BAD_OPCODE, 5);
	c = CMD(99, 5, 0, 1);
	expect("opcode 99", raw_cmd(&s, &c), BLK_S_BAD_OPCODE, 5);
	c = CMD(BLK_OP_READ, 6, 0, 1);
	c.flags = 0x8000;
	expect("undefined flags", raw_cmd(&s, &c), BLK_S_BAD_FIELD, 6);
	c = CMD(BLK_OP_READ, (uint16_t)s.g->queue_depth, 0, 1);
	expect("tag == queue depth", raw_cmd(&s, &c), BLK_S_BAD_TAG, s.g->queue_depth);
	c = CMD(BLK_OP_FLUSH, 1, 7, 0);
	expect("FLUSH with an LBA", raw_cmd(&s, &c), BLK_S_BAD_FIELD, 1);
	memset(junk, 0x42, sizeof(junk));
	expect("10-byte message", raw(&s, junk, 10), BLK_S_MALFORMED, BLK_TAG_NONE);
	expect("0-byte message", raw(&s, junk, 0), BLK_S_MALFORMED, BLK_TAG_NONE);
	expect("100-byte message", raw(&s, junk, 100), BLK_S_MALFORMED, BLK_TAG_NONE);
	expect("256-byte message", raw(&s, junk, 256), BLK_S_MALFORMED, BLK_TAG_NONE);
	c = CMD(BLK_OP_READ, 1, 0, 1);
	blk_capsule_encode(&c, junk);
	junk[0] = 7;
	expect("protocol version 7", raw(&s, junk, BLK_CAPSULE_SIZE), BLK_S_MALFORMED, BLK_TAG_NONE);

	/* Descriptors: checked by the library on the target before any RDMA. */
	c = CMD(BLK_OP_READ, 1, 0, 1);
	memset(c.desc.bytes, 0x5a, sizeof(c.desc.bytes));
	expect("READ with a garbage descriptor", raw_cmd(&s, &c), BLK_S_BAD_DESC, 1);
	c = CMD(BLK_OP_WRITE, 2, 0, 1); /* d grants only REMOTE_WRITE: the target must read */
	expect("WRITE with a write-only descriptor", raw_cmd(&s, &c), BLK_S_DESC_ACCESS, 2);
	e2 = export(&s, (size_t)maxb * bs, bs, ZC_ACCESS_REMOTE_READ, &c.desc);
	c.opcode = BLK_OP_READ;
	c.tag = 3;
	expect("READ with a read-only descriptor", raw_cmd(&s, &c), BLK_S_DESC_ACCESS, 3);
	c.opcode = BLK_OP_WRITE;
	c.nblocks = 2;
	expect("WRITE of 2 blocks with a 1-block descriptor", raw_cmd(&s, &c), BLK_S_BAD_DESC, 3);
	zc_export_revoke(&e2);

	/* Tag reuse: a second command with the tag of one still running. The
	 * first is a max-size READ, so it is normally still transferring when
	 * the second arrives; retry a few times if the first won the race. */
	for (attempt = 0, got_dup = 0; attempt < 5 && !got_dup; attempt++) {
		uint8_t a[BLK_CAPSULE_SIZE];
		struct blk_cpl cpl[2];

		c = CMD(BLK_OP_READ, 5, 0, maxb);
		blk_capsule_encode(&c, a);
		if (blk_init_send_raw(s.bi, a, sizeof(a)) || blk_init_send_raw(s.bi, a, sizeof(a)))
			fatal("send: %s", blk_init_last_error());
		for (got_ok = 0, i = 0; i < 2;) {
			n = blk_init_poll(s.bi, &cpl[i], 2 - i, TIMEOUT_MS);
			if (n <= 0)
				fatal("no response to the tag reuse pair");
			i += n;
		}
		for (i = 0; i < 2; i++) {
			got_ok += cpl[i].resp.status == BLK_S_OK && cpl[i].resp.tag == 5;
			got_dup += cpl[i].resp.status == BLK_S_TAG_IN_USE && cpl[i].resp.tag == 5;
		}
		if (got_ok + got_dup != 2 && !(got_ok == 2))
			fail("tag reuse: unexpected responses %s / %s", blk_status_str(cpl[0].resp.status),
			     blk_status_str(cpl[1].resp.status));
	}
	if (got_dup)
		printf("ok: a second command with a running command's tag -> %s (attempt %d)\n",
		       blk_status_str(BLK_S_TAG_IN_USE), attempt);
	else
		fail("tag reuse was never refused in 5 attempts");
	zc_export_revoke(&e);
	io_still_works(&s, 11);

	/* A revoked descriptor passes every local check; the RDMA access itself
	 * fails, which ends this connection (RDMA semantics) but not the target. */
	e = export(&s, 0, bs, ZC_ACCESS_REMOTE_WRITE, &d);
	zc_export_revoke(&e);
	c = CMD(BLK_OP_READ, 1, 0, 1);
	{
		uint8_t a[BLK_CAPSULE_SIZE];
		struct blk_cpl cpl;

		blk_capsule_encode(&c, a);
		if (blk_init_send_raw(s.bi, a, sizeof(a)))
			fatal("send: %s", blk_init_last_error());
		n = blk_init_poll(s.bi, &cpl, 1, TIMEOUT_MS);
		if (n >= 0)
			fail("READ into a revoked export: the connection survived (%d, %s)", n,
			     n ? blk_status_str(cpl.resp.status) : "timeout");
		else
			printf("ok: READ into a revoked export ends the connection (%s)\n", zc_strerror(n));
	}
	close_session(&s);
	open_session(&s, 0, 0, 1 << 20);
	io_still_works(&s, 12);
	printf("ok: the target serves a new connection after that\n");
	close_session(&s);
	return failures ? 1 : 0;
}

static int do_readonly(void)
{
	struct session s;
	int st;

	open_session(&s, 0, 0, 1 << 20);
	if (!s.g->read_only)
		fail("HELLO does not say read-only");
	st = simple(&s, BLK_OP_DISCARD, 0, 1);
	if (st != BLK_S_READ_ONLY)
		fail("DISCARD on a read-only target: %s", blk_status_str(st));
	else
		printf("ok: DISCARD -> %s\n", blk_status_str(st));
	{
		struct blk_cpl c;
		int rc = blk_init_submit(s.bi, BLK_OP_WRITE, 0, 1, s.mr, 0, 1);

		if (rc)
			fatal("submit: %s", blk_init_last_error());
		if (blk_init_poll(s.bi, &c, 1, TIMEOUT_MS) != 1 || c.resp.status != BLK_S_READ_ONLY)
			fail("WRITE on a read-only target: %s", blk_status_str(c.resp.status));
		else
			printf("ok: WRITE -> %s\n", blk_status_str(c.resp.status));
		rc = blk_init_submit(s.bi, BLK_OP_READ, 0, 8, s.mr, 0, 2);
		if (rc)
			fatal("submit: %s", blk_init_last_error());
		if (blk_init_poll(s.bi, &c, 1, TIMEOUT_MS) != 1 || c.resp.status != BLK_S_OK)
			fail("READ on a read-only target: %s", blk_status_str(c.resp.status));
		else
			printf("ok: READ works\n");
	}
	close_session(&s);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	char h[256];

	if (argc < 4)
		goto usage;
	src = argv[2];
	if (zc_ex_parse_hostport(argv[3], h, sizeof(h), &port, BLK_DEFAULT_PORT))
		goto usage;
	host = h;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "io") && (argc == 7 || (argc == 8 && (!strcmp(argv[7], "verify") ||
								      !strcmp(argv[7], "loop")))))
		return do_io(strtoull(argv[4], NULL, 0), strtoull(argv[5], NULL, 0), strtoull(argv[6], NULL, 0),
			     argc == 8 && !strcmp(argv[7], "verify"), argc == 8 && !strcmp(argv[7], "loop"));
	if (!strcmp(argv[1], "errors") && argc == 4)
		return do_errors();
	if (!strcmp(argv[1], "readonly") && argc == 4)
		return do_readonly();
usage:
	fprintf(stderr, "usage: blk_check io|errors|readonly SRCADDR ADDR:PORT [FIRST_LBA BLOCKS SEED [verify|loop]]\n");
	return 2;
}
