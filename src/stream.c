/* The application's calls: stream, message and zero-copy transfers. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "conn.h"

/* Blocking calls wait for as long as the connection lives. */
static int64_t deadline_for(int flags)
{
	return flags & ZC_DONTWAIT ? ZC__NOWAIT : -1;
}

struct span {
	const void *buf;
	size_t len;
	uint32_t idx; /* rendezvous started */
	void *copy;   /* rndv_copy_started: ours until the rendezvous took it */
};

/* Conditions of the waits below: > 0 met, 0 not yet, < 0 failed. */

/* A send attempt as a condition: -EAGAIN (no credit or room) is "not yet". */
static int attempted(int rc)
{
	return rc == -EAGAIN ? 0 : rc < 0 ? rc : 1;
}

/* Queued zero-copy sends go first: a copy must not overtake them. */
static int eager_sent(struct zc_conn *c, void *arg)
{
	struct span *s = arg;

	return c->ep.zq_count ? 0 : attempted(zc__send_eager(&c->ep, s->buf, s->len, 0, 0));
}

static int rndv_started(struct zc_conn *c, void *arg)
{
	struct span *s = arg;

	return c->ep.zq_count ? 0
			      : attempted(zc__send_rndv(&c->ep, s->buf, s->len, NULL, ZC_RNDV_BLOCKING, 0, &s->idx));
}

/* A non-blocking message beyond the eager size goes from a copy: the
 * rendezvous owns it once the RTS is out and frees it when the peer has
 * read it. Copies only when there is room to send (the WRITABLE rule). */
static int rndv_copy_started(struct zc_conn *c, void *arg)
{
	struct span *s = arg;
	int rc;

	if (!zc__conn_sendable(c))
		return 0;
	if (!s->copy) {
		if (!(s->copy = malloc(s->len)))
			return zc__err(-ENOMEM, "out of memory for a copy of a %zu-byte non-blocking message", s->len);
		memcpy(s->copy, s->buf, s->len);
	}
	rc = zc__send_rndv(&c->ep, s->copy, s->len, NULL, ZC_RNDV_COPY, 0, &s->idx);
	if (!rc)
		s->copy = NULL;
	return attempted(rc);
}

/* A failed connection finishes every rendezvous (ep_failed), so this is
 * met before the connection's error would end the wait. */
static int rndv_finished(struct zc_conn *c, void *arg)
{
	return zc__rndv_done(&c->ep, ((struct span *)arg)->idx);
}

/* A reset wins over data still queued, as with TCP's RST: once an error is
 * reported, nothing more is delivered. */
static int head_ready(struct zc_conn *c, void *arg)
{
	(void)arg;
	if (c->ep.qp.err)
		return zc__qp_error(&c->ep.qp);
	if (c->state != ZC_CONN_OPEN)
		return zc__err(-ENOTCONN, "the connection is not open");
	return zc__item_head(&c->ep) && !c->ep.posted_count;
}

static int round_done(void *arg)
{
	return ((struct zc__item *)arg)->rstate == ZC_READ_DONE;
}

static int send_check(struct zc_conn *c, const void *buf, size_t len)
{
	int rc = zc__conn_mode(c, false);

	if (!rc)
		rc = zc__conn_check(c);

	if (rc)
		return rc;
	if (c->ep.close_sent)
		return zc__err(-EPIPE, "the connection was closed for sending");
	if (c->ep.close_received)
		return zc__err(-EPIPE, "the peer closed the connection");
	if (!buf && len)
		return zc__err(-EINVAL, "NULL buffer");
	return 0;
}

/* Zero-copy sends still queued go first: SHUTDOWN must not overtake them. */
static int shutdown_sent(struct zc_conn *c, void *arg)
{
	(void)arg;
	return c->ep.zq_count ? 0 : attempted(zc__ep_close(&c->ep, ZC_MSG_SHUTDOWN));
}

int zc_shutdown(struct zc_conn *c, int flags)
{
	int rc = send_check(c, "", 0);

	if (rc)
		return rc;
	rc = zc__conn_wait_for(c, shutdown_sent, NULL, deadline_for(flags), "");
	if (rc == -EAGAIN)
		zc__ev_want_writable(c);
	return rc < 0 ? rc : 0;
}

/* Sends a copy of buf by rendezvous without waiting for the peer. */
static ssize_t send_rndv_copy(struct zc_conn *c, const void *buf, size_t len)
{
	struct span s = {.buf = buf, .len = len};
	int rc = zc__conn_wait_for(c, rndv_copy_started, &s, ZC__NOWAIT, "");

	free(s.copy);
	if (rc == -EAGAIN)
		zc__ev_want_writable(c);
	return rc < 0 ? rc : (ssize_t)len;
}

/* Sends buf by rendezvous and waits until the peer has read it. */
static ssize_t send_rndv_blocking(struct zc_conn *c, const void *buf, size_t len, int flags)
{
	struct span s = {.buf = buf, .len = len};
	int rc = zc__conn_wait_for(c, rndv_started, &s, deadline_for(flags & ~ZC_DONTWAIT), "");

	if (rc < 0)
		return rc;
	zc__conn_wait_for(c, rndv_finished, &s, -1, "");
	rc = zc__rndv_reap(&c->ep, s.idx);
	return rc ? rc : (ssize_t)len;
}

ssize_t zc_send(struct zc_conn *c, const void *buf, size_t len, int flags)
{
	const uint8_t *p = buf;
	size_t sent = 0;
	int rc = send_check(c, buf, len);

	if (rc)
		return rc;
	if (len > c->ep.eager_max && !(flags & ZC_DONTWAIT))
		return send_rndv_blocking(c, buf, len, flags);
	/* Small or non-blocking: copy through the ring, as much as credits allow. */
	while (sent < len) {
		struct span s = {.buf = p + sent, .len = len - sent < c->ep.eager_max ? len - sent : c->ep.eager_max};

		rc = zc__conn_wait_for(c, eager_sent, &s, deadline_for(flags), "");
		if (rc == -EAGAIN)
			zc__ev_want_writable(c);
		if (rc < 0)
			return sent ? (ssize_t)sent : rc;
		sent += s.len;
	}
	return (ssize_t)sent;
}

/* Waits for the head item unless flags say not to; NULL with *rc set if none. */
static struct zc__item *head_item(struct zc_conn *c, int flags, int *rc)
{
	if ((*rc = zc__conn_mode(c, false)))
		return NULL;
	zc__ctx_progress(c->ctx);
	*rc = zc__conn_wait_for(c, head_ready, NULL, deadline_for(flags), "");
	if (*rc < 0)
		return NULL;
	*rc = 0;
	return zc__item_head(&c->ep);
}

/* Reads [it->off, it->off + len) of a rendezvous straight into buf. */
static int read_rts(struct zc_conn *c, struct zc__item *it, void *buf, size_t len)
{
	int rc = zc__item_start_read(&c->ep, it, buf, len, NULL, ZC_READER_SYNC);

	if (rc)
		return rc;
	/* The NIC is writing into buf: wait for it, whatever the flags and
	 * even on a failed connection, which ends the round once its READs
	 * have flushed (zc__read_advance). */
	zc__ctx_wait_for(c->ctx, round_done, it, -1);
	rc = it->status;
	zc__item_end_read(&c->ep, it);
	return rc;
}

ssize_t zc_recv(struct zc_conn *c, void *buf, size_t len, int flags)
{
	uint8_t *p = buf;
	size_t got = 0;
	struct zc__item *it;
	int rc;

	if (!buf && len)
		return zc__err(-EINVAL, "NULL buffer");
	if (len == 0)
		return 0;
	it = head_item(c, flags, &rc);
	if (!it)
		return rc;
	if (it->kind == ZC_ITEM_RTS) {
		size_t n = len < it->len - it->off ? len : (size_t)(it->len - it->off);

		rc = read_rts(c, it, p, n);
		return rc ? rc : (ssize_t)n;
	}
	/* Gather what small messages already arrived, up to len. */
	while (it && it->kind == ZC_ITEM_EAGER && got < len) {
		got += zc__item_copy(&c->ep, it, p + got, len - got);
		it = zc__item_head(&c->ep);
	}
	zc__flush_ctl(&c->ep);
	return (ssize_t)got;
}

ssize_t zc_msg_send(struct zc_conn *c, const void *buf, size_t len, int flags)
{
	struct span s = {.buf = buf, .len = len};
	int rc = send_check(c, buf, len);

	if (rc)
		return rc;
	if (len > ZC_RNDV_MAX_LEN)
		return zc__err(-EMSGSIZE, "message of %zu bytes exceeds the 2^40 limit", len);
	if (len > c->ep.eager_max)
		return flags & ZC_DONTWAIT ? send_rndv_copy(c, buf, len) : send_rndv_blocking(c, buf, len, flags);
	rc = zc__conn_wait_for(c, eager_sent, &s, deadline_for(flags), "");
	if (rc == -EAGAIN)
		zc__ev_want_writable(c);
	return rc < 0 ? rc : (ssize_t)len;
}

ssize_t zc_msg_peek(struct zc_conn *c, int flags)
{
	int rc;
	struct zc__item *it = head_item(c, flags, &rc);

	if (!it)
		return rc;
	if (it->kind == ZC_ITEM_CLOSE)
		return zc__err(-EPIPE, "the peer closed the connection");
	return (ssize_t)(it->len - it->off);
}

ssize_t zc_recv_queued(struct zc_conn *c)
{
	const struct zc__ep *e;
	uint64_t n = 0;
	int rc = zc__conn_mode(c, false);

	if (!rc)
		rc = zc__conn_check(c);
	if (rc)
		return rc;
	zc__ctx_progress(c->ctx);
	e = &c->ep;
	for (uint32_t i = 0; !e->posted_count && i < e->item_count; i++) {
		const struct zc__item *it = &e->items[(e->item_head + i) % e->items_cap];

		if (it->kind == ZC_ITEM_CLOSE)
			break;
		n += it->len - it->off;
	}
	return n > SSIZE_MAX ? SSIZE_MAX : (ssize_t)n;
}

ssize_t zc_msg_recv(struct zc_conn *c, void *buf, size_t cap, int flags)
{
	struct zc__item *it;
	size_t n;
	int rc;

	if (!buf && cap)
		return zc__err(-EINVAL, "NULL buffer");
	it = head_item(c, flags, &rc);
	if (!it)
		return rc;
	if (it->kind == ZC_ITEM_CLOSE)
		return zc__err(-EPIPE, "the peer closed the connection");
	n = (size_t)(it->len - it->off);
	if (n > cap)
		return zc__err(-EMSGSIZE, "next message has %zu bytes, the buffer %zu", n, cap);
	if (it->kind == ZC_ITEM_EAGER) {
		if (n == 0)
			zc__item_pop(&c->ep);
		else
			zc__item_copy(&c->ep, it, buf, n);
		zc__flush_ctl(&c->ep);
		return (ssize_t)n;
	}
	rc = read_rts(c, it, buf, n);
	return rc ? rc : (ssize_t)n;
}

int zc_send_zc(struct zc_conn *c, const void *buf, size_t len, struct zc_mr *mr, uint64_t token)
{
	struct zc__zsend z = {.buf = buf, .len = len, .mr = mr, .token = token};
	int rc = send_check(c, buf, len);

	if (!rc)
		rc = zc__ctx_room(c->ctx);
	if (rc)
		return rc;
	if (len > ZC_RNDV_MAX_LEN)
		return zc__err(-EMSGSIZE, "message of %zu bytes exceeds the 2^40 limit", len);
	rc = zc__zsend_submit(&c->ep, &z);
	if (!rc)
		zc__ctx_submitted(c->ctx);
	else if (rc == -EAGAIN)
		zc__ev_want_writable(c);
	return rc;
}

int zc_recv_zc(struct zc_conn *c, void *buf, size_t len, struct zc_mr *mr, uint64_t token)
{
	struct zc__posted p = {.buf = buf, .len = len, .mr = mr, .token = token};
	int rc = zc__conn_mode(c, false);

	if (!rc)
		rc = zc__conn_check(c);

	if (!rc)
		rc = zc__ctx_room(c->ctx);
	if (rc)
		return rc;
	if (!buf && len)
		return zc__err(-EINVAL, "NULL buffer");
	rc = zc__posted_add(&c->ep, &p);
	if (!rc)
		zc__ctx_submitted(c->ctx);
	return rc;
}
