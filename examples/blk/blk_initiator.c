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

#define RECOVER_MAX_FRUITLESS 4 /* reconnects in a row with no command answered */
/* One reconnect attempt: zc_connect() retries refusals within it, which
 * covers a target restarting; a target that stays away ends recovery. */
#define RECONNECT_ATTEMPT_MS 2000

struct tag_slot {
	int busy;
	struct blk_capsule cap; /* as sent; resent after a reconnect */
	struct zc_mr *mr;       /* READ/WRITE: the buffer, exported anew for each connection */
	size_t mr_off;
	uint64_t user;
	struct zc_export *exp;
};

struct blk_init {
	struct zc_ctx *ctx;
	struct zc_conn *conn;
	char *addr;
	uint16_t port;
	struct zc_conn_opts co;
	int reconnect_ms;     /* 0: a failed connection is final */
	unsigned reconnects;
	int fruitless;        /* reconnects since a command was last answered */
	struct blk_geom geom;
	int err;              /* sticky until a reconnect: the connection failed */
	int lost;             /* err is the connection's failure, not a protocol breach */
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
	*o = (struct blk_init_opts){
		.queue_depth = 32, .timeout_ms = 10000, .export_mode = BLK_EXPORT_AUTO, .reconnect_ms = 10000};
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

/* Codes with which the library reports a failed connection (rather than a
 * refused call on a working one). */
static int is_conn_failure(int rc)
{
	return rc == -ECONNRESET || rc == -EPIPE || rc == -ENOTCONN || rc == -ETIMEDOUT || rc == -ECONNABORTED ||
	       rc == -ZC_ETRANSPORT || rc == -ZC_EREMOTEACCESS || rc == -ZC_ERNR || rc == -ZC_EPEERPROTO;
}

/* The connection failed under us (not a protocol breach): recoverable. */
static int conn_lost(struct blk_init *bi, int rc)
{
	if (!bi->err) {
		bi->err = rc == -EPIPE ? -ECONNRESET : rc;
		bi->lost = 1;
	}
	return bi->err;
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
		conn_lost(bi, zc->status);
		return 0;
	}
	if (blk_resp_decode(bi->rx[i], zc->len, &r)) {
		bi->err = fail(-EPROTO, "the target sent a %zu-byte message that is not a response", zc->len);
		return 0;
	}
	rc = post_rx(bi, i);
	if (rc) {
		conn_lost(bi, rc);
		return 0;
	}
	memset(out, 0, sizeof(*out));
	out->resp = r;
	if (r.tag < bi->geom.queue_depth && bi->tags[r.tag].busy && r.status != BLK_S_TAG_IN_USE &&
	    r.opcode == bi->tags[r.tag].cap.opcode) {
		struct tag_slot *t = &bi->tags[r.tag];

		if (t->exp)
			zc_export_revoke(&t->exp);
		out->user = t->user;
		t->busy = 0;
		bi->free_tags[bi->n_free++] = r.tag;
		bi->inflight--;
		bi->fruitless = 0;
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

static int send_capsule(struct blk_init *bi, const struct blk_capsule *c)
{
	uint8_t buf[BLK_CAPSULE_SIZE];
	ssize_t n;

	blk_capsule_encode(c, buf);
	n = zc_msg_send(bi->conn, buf, sizeof(buf), 0);
	return n < 0 ? zfail((int)n, "sending a capsule") : 0;
}

/* Sends HELLO on the current connection; *g is the target's validated answer. */
static int hello(struct blk_init *bi, int want_qd, int timeout_ms, struct blk_geom *g)
{
	struct blk_capsule c = {.version = BLK_PROTO_VERSION, .opcode = BLK_OP_HELLO, .nblocks = (uint32_t)want_qd};
	int64_t deadline = now_ms() + timeout_ms;
	struct blk_cpl cpl;
	int rc, n;

	rc = send_capsule(bi, &c);
	if (rc)
		return conn_lost(bi, rc);
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
	*g = (struct blk_geom){.block_size = cpl.resp.block_size, .capacity = cpl.resp.capacity,
			       .max_blocks = cpl.resp.max_blocks, .queue_depth = cpl.resp.queue_depth,
			       .read_only = !!(cpl.resp.dev_flags & BLK_F_READ_ONLY)};
	return post_rx_upto(bi, g->queue_depth + RX_EXTRA);
}

/* Exports a READ/WRITE command's buffer on the current connection (exactly
 * the range, exactly the right the target needs) and sends its capsule. */
static int transmit(struct blk_init *bi, struct tag_slot *t)
{
	int rc;

	if (t->mr) {
		size_t len = (size_t)t->cap.nblocks * bi->geom.block_size;
		int access = t->cap.opcode == BLK_OP_READ ? ZC_ACCESS_REMOTE_WRITE : ZC_ACCESS_REMOTE_READ;

		rc = zc_export(bi->conn, t->mr, t->mr_off, len, access, &t->exp, &t->cap.desc);
		if (rc)
			return zfail(rc, "zc_export");
	}
	rc = send_capsule(bi, &t->cap);
	if (rc && t->exp)
		zc_export_revoke(&t->exp);
	return rc;
}

/* Revokes every export, closes the connection and drops its completions. */
static int drop_conn(struct blk_init *bi)
{
	struct zc_completion zc[64];
	int i, rc = 0;

	for (i = 0; i < BLK_MAX_QD && bi->tags; i++)
		if (bi->tags[i].exp)
			zc_export_revoke(&bi->tags[i].exp);
	if (bi->conn) {
		rc = zc_close(&bi->conn);
		/* Our posted receives complete now; drop them. */
		while (zc_poll(bi->ctx, zc, 64, 0) > 0)
			;
	}
	bi->n_rx = 0;
	return rc;
}

/*
 * The connection failed with commands in flight: connect again within
 * reconnect_ms and resend them. Every command is idempotent (the same blocks
 * from or into the same buffer, FLUSH, DISCARD, CAPACITY), so one that ran
 * before the failure may run twice. What makes this more than a nicety on
 * rxe: a late duplicate of an RDMA READ request for a WRITE already answered
 * (netem duplication and reordering) reaches our QP after the export was
 * revoked; rxe replays duplicate READs against the current rkey, finds it
 * invalid and moves our QP to the error state (see docs/reliability.md).
 * Gives up when the target refuses for a whole attempt (nobody listens).
 */
static int recover(struct blk_init *bi)
{
	int64_t deadline = now_ms() + bi->reconnect_ms;
	char cause[sizeof(last_error)];
	int rc = bi->err, i;

	if (!bi->lost || !bi->reconnect_ms || !bi->hello_done) {
		bi->lost = 0;
		return bi->err;
	}
	snprintf(cause, sizeof(cause), "%s", last_error);
	while (bi->fruitless < RECOVER_MAX_FRUITLESS && now_ms() < deadline) {
		int left = (int)(deadline - now_ms());
		struct zc_conn_opts co;
		struct blk_geom g;

		bi->fruitless++;
		drop_conn(bi);
		co = bi->co;
		co.timeout_ms = left < RECONNECT_ATTEMPT_MS ? left : RECONNECT_ATTEMPT_MS;
		rc = zc_connect(bi->ctx, bi->addr, bi->port, &co, &bi->conn);
		if (rc == -ECONNREFUSED)
			break;
		if (rc) {
			zfail(rc, "zc_connect");
			nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
			continue;
		}
		bi->err = bi->lost = 0;
		rc = post_rx_upto(bi, RX_EXTRA);
		if (!rc)
			rc = hello(bi, bi->geom.queue_depth, left, &g);
		if (!rc && (g.queue_depth != bi->geom.queue_depth || g.block_size != bi->geom.block_size ||
			    g.capacity != bi->geom.capacity)) {
			rc = fail(-EPROTO, "the target came back with another geometry or queue depth");
			break;
		}
		for (i = 0; !rc && i < bi->geom.queue_depth; i++)
			if (bi->tags[i].busy)
				rc = transmit(bi, &bi->tags[i]);
		if (!rc) {
			bi->reconnects++;
			return 0;
		}
		if (rc == -EPROTO)
			break;
		conn_lost(bi, rc);
	}
	bi->err = rc ? rc : bi->err;
	bi->lost = 0;
	return fail(bi->err, "%s; reconnecting failed after %d attempt(s): %s", cause, bi->fruitless,
		    rc == -ECONNREFUSED ? "the target refused the connection (not listening)" : last_error);
}

/* poll_once, reconnecting after a failure until timeout_ms (-1: forever). */
static int poll_recovering(struct blk_init *bi, struct blk_cpl *out, int max, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int n;

	for (;;) {
		int left = timeout_ms < 0 ? -1 : (int)(deadline - now_ms());

		if (bi->err && (n = recover(bi)))
			return n;
		n = poll_once(bi, out, max, left < -1 ? 0 : left);
		if (n > 0 || (n < 0 && !bi->lost) || (n == 0 && timeout_ms >= 0 && now_ms() >= deadline))
			return n;
	}
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
	return poll_recovering(bi, out, max, timeout_ms);
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
		n = poll_recovering(bi, c, 64, left);
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

int blk_init_connect(struct zc_ctx *ctx, const char *addr, uint16_t port, const struct blk_init_opts *o,
		     struct blk_init **out)
{
	struct blk_init_opts def;
	struct blk_init *bi;
	int rc, credits;

	if (!o) {
		blk_init_opts_init(&def);
		o = &def;
	}
	if (!ctx || !addr || !out || o->queue_depth < 1 || o->queue_depth > BLK_MAX_QD ||
	    o->export_mode < BLK_EXPORT_AUTO || o->export_mode > BLK_EXPORT_MR || o->reconnect_ms < 0)
		return fail(-EINVAL, "blk_init_connect: bad arguments (queue depth 1..%d)", BLK_MAX_QD);
	bi = calloc(1, sizeof(*bi));
	if (!bi)
		return fail(-ENOMEM, "out of memory");
	bi->ctx = ctx;
	bi->addr = strdup(addr);
	bi->port = port;
	bi->reconnect_ms = o->reconnect_ms;
	bi->tags = calloc(BLK_MAX_QD, sizeof(*bi->tags));
	bi->free_tags = calloc(BLK_MAX_QD, sizeof(*bi->free_tags));
	bi->rx = calloc(BLK_MAX_QD + RX_EXTRA, RX_BUF);
	bi->stash_cap = BLK_MAX_QD + RX_EXTRA;
	bi->stash = calloc((size_t)bi->stash_cap, sizeof(*bi->stash));

	if (!bi->addr || !bi->tags || !bi->free_tags || !bi->rx || !bi->stash) {
		rc = fail(-ENOMEM, "out of memory");
		goto err;
	}
	/* Capsules never outrun credits: each side grants at least the depth. */
	zc_conn_opts_init(&bi->co);
	credits = o->queue_depth + RX_EXTRA > bi->co.credits ? o->queue_depth + RX_EXTRA : bi->co.credits;
	bi->co.credits = credits;
	bi->co.send_depth = 2 * credits + 16;
	bi->co.timeout_ms = o->timeout_ms;
	bi->co.mr_fallback = o->export_mode == BLK_EXPORT_MR;
	if (o->export_mode == BLK_EXPORT_AUTO) {
		struct zc_caps caps;

		bi->co.mr_fallback = !zc_ctx_query(ctx, &caps) && !strncmp(caps.device, "rxe", 3);
	}
	rc = zc_connect(ctx, addr, port, &bi->co, &bi->conn);
	if (rc) {
		zfail(rc, "zc_connect");
		goto err;
	}
	rc = post_rx_upto(bi, RX_EXTRA);
	if (!rc && !o->no_hello) {
		rc = hello(bi, o->queue_depth, o->timeout_ms, &bi->geom);
		for (int n = bi->geom.queue_depth - 1; !rc && n >= 0; n--)
			bi->free_tags[bi->n_free++] = (uint16_t)n;
		bi->hello_done = !rc;
	}
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
	struct tag_slot *t;
	uint16_t tag;
	int rc;

	if (!bi)
		return -EINVAL;
	if (bi->err && (rc = recover(bi)))
		return rc;
	if (!bi->hello_done)
		return fail(-EINVAL, "blk_init_submit: no HELLO exchanged");
	if (!bi->n_free)
		return -EBUSY;
	tag = bi->free_tags[bi->n_free - 1];
	t = &bi->tags[tag];
	*t = (struct tag_slot){.cap = {.version = BLK_PROTO_VERSION, .opcode = (uint8_t)opcode, .tag = tag},
			       .user = user};
	switch (opcode) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		if (!mr || !nblocks)
			return fail(-EINVAL, "blk_init_submit: READ/WRITE need a registered buffer and blocks");
		t->mr = mr;
		t->mr_off = mr_off;
		/* fall through */
	case BLK_OP_DISCARD:
		t->cap.lba = lba;
		t->cap.nblocks = nblocks;
		break;
	case BLK_OP_FLUSH:
	case BLK_OP_CAPACITY:
		break;
	default:
		return fail(-EINVAL, "blk_init_submit: unknown opcode %d", opcode);
	}
	rc = transmit(bi, t);
	if (rc && !is_conn_failure(rc))
		return rc; /* the connection is fine: this command could not start */
	t->busy = 1;
	bi->n_free--;
	bi->inflight++;
	if (rc) {
		/* The connection failed: the command is resent on the next one. */
		conn_lost(bi, rc);
		rc = recover(bi);
		if (rc) {
			t->busy = 0;
			bi->free_tags[bi->n_free++] = tag;
			bi->inflight--;
		}
	}
	return rc;
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

unsigned blk_init_reconnects(const struct blk_init *bi)
{
	return bi->reconnects;
}

int blk_init_close(struct blk_init **pbi)
{
	struct blk_init *bi;
	int rc;

	if (!pbi || !*pbi)
		return -EINVAL;
	bi = *pbi;
	rc = drop_conn(bi);
	if (bi->rx)
		zc_mr_invalidate(bi->ctx, bi->rx, (size_t)(BLK_MAX_QD + RX_EXTRA) * RX_BUF);
	free(bi->addr);
	free(bi->tags);
	free(bi->free_tags);
	free(bi->rx);
	free(bi->stash);
	free(bi);
	*pbi = NULL;
	return rc;
}
