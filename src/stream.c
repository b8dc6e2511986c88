/* The application's calls: stream, message and zero-copy transfers. */
#include <errno.h>
#include <string.h>

#include "error.h"
#include "conn.h"

/* Waits for progress on a blocking call; fails if the connection died. */
static int block(struct zc_conn *c, int flags)
{
	if (c->ep.qp.err)
		return zc__qp_error(&c->ep.qp);
	if (flags & ZC_DONTWAIT)
		return zc__ctx_rearm(c->ctx) ? 0 : -EAGAIN;
	return zc__conn_wait(c);
}

static int send_check(struct zc_conn *c, const void *buf, size_t len)
{
	int rc = zc__conn_check(c);

	if (rc)
		return rc;
	if (c->ep.close_sent)
		return zc_err(-EPIPE, "the connection was closed for sending");
	if (c->ep.close_received)
		return zc_err(-EPIPE, "the peer closed the connection");
	if (!buf && len)
		return zc_err(-EINVAL, "NULL buffer");
	return 0;
}

/* Sends buf by rendezvous and waits until the peer has read it. */
static ssize_t send_rndv_blocking(struct zc_conn *c, const void *buf, size_t len, int flags)
{
	uint32_t idx;
	int rc;

	while ((rc = c->ep.zq_count ? -EAGAIN : zc__send_rndv(&c->ep, buf, len, NULL, ZC_RNDV_BLOCKING, 0, &idx)) ==
	       -EAGAIN)
		if ((rc = block(c, flags & ~ZC_DONTWAIT)))
			return rc;
	if (rc)
		return rc;
	/* A failed connection finishes every rendezvous (ep_failed). */
	while (!zc__rndv_done(&c->ep, idx))
		zc__conn_wait(c);
	rc = zc__rndv_reap(&c->ep, idx);
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
		size_t n = len - sent < c->ep.eager_max ? len - sent : c->ep.eager_max;

		rc = c->ep.zq_count ? -EAGAIN : zc__send_eager(&c->ep, p + sent, n, 0, 0);
		if (rc == -EAGAIN) {
			if (sent && (flags & ZC_DONTWAIT))
				break;
			rc = block(c, flags);
			if (rc)
				return sent ? (ssize_t)sent : rc;
			continue;
		}
		if (rc)
			return sent ? (ssize_t)sent : rc;
		sent += n;
	}
	return (ssize_t)sent;
}

/* Waits for the head item unless flags say not to; NULL with *rc set if none. */
static struct zc__item *head_item(struct zc_conn *c, int flags, int *rc)
{
	struct zc__item *it;

	*rc = 0;
	if (!c) {
		*rc = zc_err(-EINVAL, "no connection");
		return NULL;
	}
	zc__ctx_progress(c->ctx);
	/* A reset wins over data still queued, as with TCP's RST: once an
	 * error is reported, nothing more is delivered. */
	while (c->ep.qp.err || !(it = zc__item_head(&c->ep)) || c->ep.posted_count) {
		if (c->ep.qp.err) {
			*rc = zc__qp_error(&c->ep.qp);
			return NULL;
		}
		if (c->state != ZC_CONN_OPEN) {
			*rc = zc_err(-ENOTCONN, "the connection is not open");
			return NULL;
		}
		if ((*rc = block(c, flags)))
			return NULL;
	}
	return it;
}

/* Reads [it->off, it->off + len) of a rendezvous straight into buf. */
static int read_rts(struct zc_conn *c, struct zc__item *it, void *buf, size_t len)
{
	int rc = zc__item_start_read(&c->ep, it, buf, len, NULL, ZC_READER_SYNC);

	if (rc)
		return rc;
	/* The NIC is writing into buf: wait for it, whatever the flags. A
	 * failed connection ends the round (zc_read_advance). */
	while (it->rstate != ZC_READ_DONE)
		zc__conn_wait(c);
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
		return zc_err(-EINVAL, "NULL buffer");
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
	int rc = send_check(c, buf, len);

	if (rc)
		return rc;
	if (len > ZC_RNDV_MAX_LEN)
		return zc_err(-EMSGSIZE, "message of %zu bytes exceeds the 2^40 limit", len);
	if (len > c->ep.eager_max)
		return send_rndv_blocking(c, buf, len, flags);
	while ((rc = c->ep.zq_count ? -EAGAIN : zc__send_eager(&c->ep, buf, len, 0, 0)) == -EAGAIN)
		if ((rc = block(c, flags)))
			return rc;
	return rc ? rc : (ssize_t)len;
}

ssize_t zc_msg_peek(struct zc_conn *c, int flags)
{
	int rc;
	struct zc__item *it = head_item(c, flags, &rc);

	if (!it)
		return rc;
	if (it->kind == ZC_ITEM_CLOSE)
		return zc_err(-EPIPE, "the peer closed the connection");
	return (ssize_t)(it->len - it->off);
}

ssize_t zc_msg_recv(struct zc_conn *c, void *buf, size_t cap, int flags)
{
	struct zc__item *it;
	size_t n;
	int rc;

	if (!buf && cap)
		return zc_err(-EINVAL, "NULL buffer");
	it = head_item(c, flags, &rc);
	if (!it)
		return rc;
	if (it->kind == ZC_ITEM_CLOSE)
		return zc_err(-EPIPE, "the peer closed the connection");
	n = (size_t)(it->len - it->off);
	if (n > cap)
		return zc_err(-EMSGSIZE, "next message has %zu bytes, the buffer %zu", n, cap);
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
		return zc_err(-EMSGSIZE, "message of %zu bytes exceeds the 2^40 limit", len);
	rc = zc__zsend_submit(&c->ep, &z);
	if (!rc)
		zc__ctx_submitted(c->ctx);
	return rc;
}

int zc_recv_zc(struct zc_conn *c, void *buf, size_t len, struct zc_mr *mr, uint64_t token)
{
	struct zc__posted p = {.buf = buf, .len = len, .mr = mr, .token = token};
	int rc = zc__conn_check(c);

	if (!rc)
		rc = zc__ctx_room(c->ctx);
	if (rc)
		return rc;
	if (!buf && len)
		return zc_err(-EINVAL, "NULL buffer");
	rc = zc__posted_add(&c->ep, &p);
	if (!rc)
		zc__ctx_submitted(c->ctx);
	return rc;
}
