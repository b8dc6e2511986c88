/* Client side of the zcrdma block protocol (see blk_initiator.h). */
#define _GNU_SOURCE
#include "blk_initiator.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RX_EXTRA 8            /* receive buffers beyond the queue depth */
#define RX_BUF 64             /* a response is 32 bytes; room to see longer junk */
#define RX_TOKEN (1ull << 62) /* token of receive buffer i: RX_TOKEN | i */

struct tag_slot {
	int busy;
	int opcode;
	uint64_t user;
	struct zc_export *exp;
};

struct blk_init {
	struct zc_ctx *ctx;
	struct zc_conn *conn;
	struct blk_geom geom;
	int err;              /* sticky: the connection failed */
	struct tag_slot *tags;
	uint16_t *free_tags;  /* stack */
	int n_free;
	int inflight;
	uint8_t (*rx)[RX_BUF];
	int n_rx;             /* receive buffers posted so far (never reposted past n_rx) */
	struct blk_cpl *stash;/* completions reaped by blk_init_capacity() for blk_init_poll() */
	int stash_head, stash_count, stash_cap;
	int hello_done;
};

static __thread char last_error[512];

const char *blk_init_last_error(void)
{
	return last_error;
}

static int fail(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return rc;
}

static int zfail(int rc, const char *what)
{
	return fail(rc, "%s: %s (%s)", what, zc_strerror(rc), zc_last_error());
}

void blk_init_opts_init(struct blk_init_opts *o)
{
	*o = (struct blk_init_opts){.queue_depth = 32, .timeout_ms = 10000, .export_mode = BLK_EXPORT_AUTO};
}

int blk_export_mode_parse(const char *s)
{
	if (!strcmp(s, "auto"))
		return BLK_EXPORT_AUTO;
	if (!strcmp(s, "window"))
		return BLK_EXPORT_WINDOW;
	if (!strcmp(s, "mr"))
		return BLK_EXPORT_MR;
	return -1;
}

static int post_rx(struct blk_init *bi, int i)
{
	int rc = zc_recv_zc(bi->conn, bi->rx[i], RX_BUF, NULL, RX_TOKEN | (uint64_t)i);

	return rc ? zfail(rc, "zc_recv_zc") : 0;
}

static int post_rx_upto(struct blk_init *bi, int n)
{
	int rc;

	while (bi->n_rx < n) {
		rc = post_rx(bi, bi->n_rx);
		if (rc)
			return rc;
		bi->n_rx++;
	}
	return 0;
}

static void stash_push(struct blk_init *bi, const struct blk_cpl *c)
{
	if (bi->stash_count == bi->stash_cap)
		return; /* cannot happen: at most one per buffer posted */
	bi->stash[(bi->stash_head + bi->stash_count++) % bi->stash_cap] = *c;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Turns one receive completion into a blk_cpl; returns 1 if *out is set. */
static int on_rx(struct blk_init *bi, const struct zc_completion *zc, struct blk_cpl *out)
{
	int i = (int)(zc->token & 0xffff), rc;
	struct blk_resp r;

	if (zc->status) {
		if (!bi->err)
			fail(zc->status, "the connection to the target failed: %s (%s)", zc_strerror(zc->status),
			     zc_last_error());
		bi->err = zc->status == -EPIPE ? -ECONNRESET : zc->status;
		return 0;
	}
	if (blk_resp_decode(bi->rx[i], zc->len, &r)) {
		bi->err = fail(-EPROTO, "the target sent a %zu-byte message that is not a response", zc->len);
		return 0;
	}
	rc = post_rx(bi, i);
	if (rc) {
		bi->err = rc;
		return 0;
	}
	memset(out, 0, sizeof(*out));
	out->resp = r;
	if (r.tag < bi->geom.queue_depth && bi->tags[r.tag].busy && r.status != BLK_S_TAG_IN_USE &&
	    r.opcode == bi->tags[r.tag].opcode) {
		struct tag_slot *t = &bi->tags[r.tag];

		if (t->exp)
			zc_export_revoke(&t->exp);
		out->user = t->user;
		t->busy = 0;
		bi->free_tags[bi->n_free++] = r.tag;
		bi->inflight--;
	} else {
		out->unsolicited = 1;
	}
	return 1;
}

static int poll_once(struct blk_init *bi, struct blk_cpl *out, int max, int timeout_ms)
{
	struct zc_completion zc[64];
	int n, i, got = 0;

	if (max > 64)
		max = 64;
	n = zc_poll(bi->ctx, zc, max, timeout_ms);
	if (n < 0)
		return zfail(n, "zc_poll");
	for (i = 0; i < n; i++) {
		if (zc[i].op != ZC_OP_RECV || zc[i].conn != bi->conn || !(zc[i].token & RX_TOKEN))
			continue;
		got += on_rx(bi, &zc[i], &out[got]);
	}
	if (!got && bi->err)
		return bi->err;
	return got;
}

int blk_init_poll(struct blk_init *bi, struct blk_cpl *out, int max, int timeout_ms)
{
	int got = 0;

	if (!bi || !out || max <= 0)
		return -EINVAL;
	while (got < max && bi->stash_count) {
		out[got++] = bi->stash[bi->stash_head];
		bi->stash_head = (bi->stash_head + 1) % bi->stash_cap;
		bi->stash_count--;
	}
	if (got)
		return got;
	if (bi->err)
		return bi->err;
	return poll_once(bi, out, max, timeout_ms);
}

/* Waits for the response to the command submitted with user value `user`. */
static int wait_user(struct blk_init *bi, uint64_t user, struct blk_resp *out, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct blk_cpl c[64];
	int n, i, found = 0;

	while (!found) {
		int left = (int)(deadline - now_ms());

		if (left <= 0)
			return fail(-ETIMEDOUT, "no response within %d ms", timeout_ms);
		n = poll_once(bi, c, 64, left);
		if (n < 0)
			return n;
		for (i = 0; i < n; i++) {
			if (!found && !c[i].unsolicited && c[i].user == user) {
				*out = c[i].resp;
				found = 1;
			} else {
				stash_push(bi, &c[i]);
			}
		}
	}
	return 0;
}

static int send_capsule(struct blk_init *bi, const struct blk_capsule *c)
{
	uint8_t buf[BLK_CAPSULE_SIZE];
	ssize_t n;

	blk_capsule_encode(c, buf);
	n = zc_msg_send(bi->conn, buf, sizeof(buf), 0);
	return n < 0 ? zfail((int)n, "sending a capsule") : 0;
}

static int hello(struct blk_init *bi, int want_qd, int timeout_ms)
{
	struct blk_capsule c = {.version = BLK_PROTO_VERSION, .opcode = BLK_OP_HELLO, .nblocks = (uint32_t)want_qd};
	int64_t deadline = now_ms() + timeout_ms;
	struct blk_cpl cpl;
	int rc, n;

	rc = send_capsule(bi, &c);
	if (rc)
		return rc;
	for (;;) {
		int left = (int)(deadline - now_ms());

		if (left <= 0)
			return fail(-ETIMEDOUT, "no HELLO response within %d ms", timeout_ms);
		n = poll_once(bi, &cpl, 1, left);
		if (n < 0)
			return n;
		if (n == 1)
			break;
	}
	if (cpl.resp.opcode != BLK_OP_HELLO || cpl.resp.status != BLK_S_OK)
		return fail(-EPROTO, "the target refused the HELLO: %s", blk_status_str(cpl.resp.status));
	if (!cpl.resp.queue_depth || cpl.resp.queue_depth > want_qd || cpl.resp.queue_depth > BLK_MAX_QD ||
	    (cpl.resp.block_size != 512 && cpl.resp.block_size != 4096) || !cpl.resp.max_blocks)
		return fail(-EPROTO, "the target's HELLO response is inconsistent (qd %u, block size %u)",
			    cpl.resp.queue_depth, cpl.resp.block_size);
	bi->geom = (struct blk_geom){.block_size = cpl.resp.block_size, .capacity = cpl.resp.capacity,
				     .max_blocks = cpl.resp.max_blocks, .queue_depth = cpl.resp.queue_depth,
				     .read_only = !!(cpl.resp.dev_flags & BLK_F_READ_ONLY)};
	for (n = bi->geom.queue_depth - 1; n >= 0; n--)
		bi->free_tags[bi->n_free++] = (uint16_t)n;
	bi->hello_done = 1;
	return post_rx_upto(bi, bi->geom.queue_depth + RX_EXTRA);
}

int blk_init_connect(struct zc_ctx *ctx, const char *addr, uint16_t port, const struct blk_init_opts *o,
		     struct blk_init **out)
{
	struct blk_init_opts def;
	struct zc_conn_opts co;
	struct blk_init *bi;
	int rc, credits;

	if (!o) {
		blk_init_opts_init(&def);
		o = &def;
	}
	if (!ctx || !addr || !out || o->queue_depth < 1 || o->queue_depth > BLK_MAX_QD ||
	    o->export_mode < BLK_EXPORT_AUTO || o->export_mode > BLK_EXPORT_MR)
		return fail(-EINVAL, "blk_init_connect: bad arguments (queue depth 1..%d)", BLK_MAX_QD);
	bi = calloc(1, sizeof(*bi));
	if (!bi)
		return fail(-ENOMEM, "out of memory");
	bi->ctx = ctx;
	bi->tags = calloc(BLK_MAX_QD, sizeof(*bi->tags));
	bi->free_tags = calloc(BLK_MAX_QD, sizeof(*bi->free_tags));
	bi->rx = calloc(BLK_MAX_QD + RX_EXTRA, RX_BUF);
	bi->stash_cap = BLK_MAX_QD + RX_EXTRA;
	bi->stash = calloc((size_t)bi->stash_cap, sizeof(*bi->stash));

	if (!bi->tags || !bi->free_tags || !bi->rx || !bi->stash) {
		rc = fail(-ENOMEM, "out of memory");
		goto err;
	}
	/* Capsules never outrun credits: each side grants at least the depth. */
	zc_conn_opts_init(&co);
	credits = o->queue_depth + RX_EXTRA > co.credits ? o->queue_depth + RX_EXTRA : co.credits;
	co.credits = credits;
	co.send_depth = 2 * credits + 16;
	co.timeout_ms = o->timeout_ms;
	co.mr_fallback = o->export_mode == BLK_EXPORT_MR;
	if (o->export_mode == BLK_EXPORT_AUTO) {
		struct zc_caps caps;

		co.mr_fallback = !zc_ctx_query(ctx, &caps) && !strncmp(caps.device, "rxe", 3);
	}
	rc = zc_connect(ctx, addr, port, &co, &bi->conn);
	if (rc) {
		zfail(rc, "zc_connect");
		goto err;
	}
	rc = post_rx_upto(bi, RX_EXTRA);
	if (!rc && !o->no_hello)
		rc = hello(bi, o->queue_depth, o->timeout_ms);
	if (rc)
		goto err;
	*out = bi;
	return 0;
err:
	blk_init_close(&bi);
	return rc;
}

const struct blk_geom *blk_init_geom(const struct blk_init *bi)
{
	return &bi->geom;
}

struct zc_conn *blk_init_conn(struct blk_init *bi)
{
	return bi->conn;
}

int blk_init_inflight(const struct blk_init *bi)
{
	return bi->inflight;
}

int blk_init_free_tags(const struct blk_init *bi)
{
	return bi->n_free;
}

int blk_init_submit(struct blk_init *bi, int opcode, uint64_t lba, uint32_t nblocks, struct zc_mr *mr,
		    size_t mr_off, uint64_t user)
{
	struct blk_capsule c = {.version = BLK_PROTO_VERSION, .opcode = (uint8_t)opcode};
	struct tag_slot *t;
	uint16_t tag;
	int rc;

	if (!bi)
		return -EINVAL;
	if (bi->err)
		return bi->err;
	if (!bi->hello_done)
		return fail(-EINVAL, "blk_init_submit: no HELLO exchanged");
	if (!bi->n_free)
		return -EBUSY;
	tag = bi->free_tags[bi->n_free - 1];
	t = &bi->tags[tag];
	c.tag = tag;
	switch (opcode) {
	case BLK_OP_READ:
	case BLK_OP_WRITE: {
		uint64_t len = (uint64_t)nblocks * bi->geom.block_size;

		if (!mr || !len)
			return fail(-EINVAL, "blk_init_submit: READ/WRITE need a registered buffer and blocks");
		rc = zc_export(bi->conn, mr, mr_off, (size_t)len,
			       opcode == BLK_OP_READ ? ZC_ACCESS_REMOTE_WRITE : ZC_ACCESS_REMOTE_READ, &t->exp, &c.desc);
		if (rc)
			return zfail(rc, "zc_export");
	}
		/* fall through */
	case BLK_OP_DISCARD:
		c.lba = lba;
		c.nblocks = nblocks;
		break;
	case BLK_OP_FLUSH:
	case BLK_OP_CAPACITY:
		break;
	default:
		return fail(-EINVAL, "blk_init_submit: unknown opcode %d", opcode);
	}
	rc = send_capsule(bi, &c);
	if (rc) {
		if (t->exp)
			zc_export_revoke(&t->exp);
		bi->err = rc;
		return rc;
	}
	t->busy = 1;
	t->opcode = opcode;
	t->user = user;
	bi->n_free--;
	bi->inflight++;
	return 0;
}

int blk_init_send_raw(struct blk_init *bi, const void *buf, size_t len)
{
	ssize_t n = zc_msg_send(bi->conn, buf, len, 0);

	return n < 0 ? zfail((int)n, "zc_msg_send") : 0;
}

int blk_init_capacity(struct blk_init *bi, struct blk_resp *out, int timeout_ms)
{
	static const uint64_t user = 0xcafe0000cafe0000ull;
	int rc = blk_init_submit(bi, BLK_OP_CAPACITY, 0, 0, NULL, 0, user);

	if (rc)
		return rc;
	return wait_user(bi, user, out, timeout_ms);
}

int blk_init_close(struct blk_init **pbi)
{
	struct blk_init *bi;
	struct zc_completion zc[64];
	int i, rc = 0;

	if (!pbi || !*pbi)
		return -EINVAL;
	bi = *pbi;
	for (i = 0; i < BLK_MAX_QD && bi->tags; i++)
		if (bi->tags[i].exp)
			zc_export_revoke(&bi->tags[i].exp);

	if (bi->conn) {
		rc = zc_close(&bi->conn);
		/* Our posted receives complete now; drop them. */
		while (zc_poll(bi->ctx, zc, 64, 0) > 0)
			;
	}
	if (bi->rx)
		zc_mr_invalidate(bi->ctx, bi->rx, (size_t)(BLK_MAX_QD + RX_EXTRA) * RX_BUF);
	free(bi->tags);
	free(bi->free_tags);
	free(bi->rx);
	free(bi->stash);
	free(bi);
	*pbi = NULL;
	return rc;
}
