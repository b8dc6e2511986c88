/* The application's calls: stream, message and zero-copy transfers. */
#include <errno.h>
#include <string.h>

#include "error.h"
#include "zc_internal.h"

/* Waits for progress on a blocking call; fails if the connection died. */
static int block(struct zc_conn *c, int flags)
{
	if (c->err)
		return zc_conn_error(c);
	if (flags & ZC_DONTWAIT)
		return zc_ctx_rearm(c->ctx) ? 0 : -EAGAIN;
	return zc_conn_wait(c);
}

static int send_check(struct zc_conn *c, const void *buf, size_t len)
{
	int rc = zc_conn_check(c);

	if (rc)
		return rc;
	if (c->close_sent)
		return zc_err(-EPIPE, "the connection was closed for sending");
	if (c->close_received)
		return zc_err(-EPIPE, "the peer closed the connection");
	if (!buf && len)
		return zc_err(-EINVAL, "NULL buffer");
	return 0;
}

/* Sends buf by rendezvous and waits until the peer has read it. */
static ssize_t send_rndv_blocking(struct zc_conn *c, const void *buf, size_t len, int flags)
{
	struct zc_rndv *r;
	uint32_t idx;
	int rc;

	while ((rc = c->zq_count ? -EAGAIN : zc_send_rndv(c, buf, len, NULL, ZC_RNDV_BLOCKING, 0, &idx)) == -EAGAIN)
		if ((rc = block(c, flags & ~ZC_DONTWAIT)))
			return rc;
	if (rc)
		return rc;
	r = &c->rndv[idx];
	while (!r->done)
		zc_conn_wait(c);
	rc = r->status;
	r->owner = ZC_RNDV_FREE;
	return rc ? rc : (ssize_t)len;
}

ssize_t zc_send(struct zc_conn *c, const void *buf, size_t len, int flags)
{
	const uint8_t *p = buf;
	size_t sent = 0;
	int rc = send_check(c, buf, len);

	if (rc)
		return rc;
	if (len > c->eager_max && !(flags & ZC_DONTWAIT))
		return send_rndv_blocking(c, buf, len, flags);
	/* Small or non-blocking: copy through the ring, as much as credits allow. */
	while (sent < len) {
		size_t n = len - sent < c->eager_max ? len - sent : c->eager_max;

		rc = c->zq_count ? -EAGAIN : zc_send_eager(c, p + sent, n, 0, 0);
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
static struct zc_item *head_item(struct zc_conn *c, int flags, int *rc)
{
	struct zc_item *it;

	*rc = 0;
	if (!c) {
		*rc = zc_err(-EINVAL, "no connection");
		return NULL;
	}
	zc_ctx_progress(c->ctx);
	/* A reset wins over data still queued, as with TCP's RST: once an
	 * error is reported, nothing more is delivered. */
	while (c->err || !(it = zc_item_head(c)) || c->posted_count) {
		if (c->err) {
			*rc = zc_conn_error(c);
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
static int read_rts(struct zc_conn *c, struct zc_item *it, void *buf, size_t len)
{
	int rc = zc_item_start_read(c, it, buf, len, NULL, ZC_READER_SYNC);

	if (rc)
		return rc;
	/* The NIC is writing into buf: wait for it, whatever the flags. A
	 * failed connection ends the round (zc_read_advance). */
	while (it->rstate != ZC_READ_DONE)
		zc_conn_wait(c);
	rc = it->status;
	zc_item_end_read(c, it);
	return rc;
}

ssize_t zc_recv(struct zc_conn *c, void *buf, size_t len, int flags)
{
	uint8_t *p = buf;
	size_t got = 0;
	struct zc_item *it;
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
		got += zc_item_copy(c, it, p + got, len - got);
		it = zc_item_head(c);
	}
	zc_flush_ctl(c);
	return (ssize_t)got;
}

ssize_t zc_msg_send(struct zc_conn *c, const void *buf, size_t len, int flags)
{
	int rc = send_check(c, buf, len);

	if (rc)
		return rc;
	if (len > ZC_RNDV_MAX_LEN)
		return zc_err(-EMSGSIZE, "message of %zu bytes exceeds the 2^40 limit", len);
	if (len > c->eager_max)
		return send_rndv_blocking(c, buf, len, flags);
	while ((rc = c->zq_count ? -EAGAIN : zc_send_eager(c, buf, len, 0, 0)) == -EAGAIN)
		if ((rc = block(c, flags)))
			return rc;
	return rc ? rc : (ssize_t)len;
}

ssize_t zc_msg_peek(struct zc_conn *c, int flags)
{
	int rc;
	struct zc_item *it = head_item(c, flags, &rc);

	if (!it)
		return rc;
	if (it->kind == ZC_ITEM_CLOSE)
		return zc_err(-EPIPE, "the peer closed the connection");
	return (ssize_t)(it->len - it->off);
}

ssize_t zc_msg_recv(struct zc_conn *c, void *buf, size_t cap, int flags)
{
	struct zc_item *it;
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
			zc_item_pop(c);
		else
			zc_item_copy(c, it, buf, n);
		zc_flush_ctl(c);
		return (ssize_t)n;
	}
	rc = read_rts(c, it, buf, n);
	return rc ? rc : (ssize_t)n;
}

int zc_send_zc(struct zc_conn *c, const void *buf, size_t len, struct zc_mr *mr, uint64_t token)
{
	struct zc_zsend z = {.buf = buf, .len = len, .mr = mr, .token = token};
	int rc = send_check(c, buf, len);

	if (!rc)
		rc = zc_ctx_room(c->ctx);
	if (rc)
		return rc;
	if (len > ZC_RNDV_MAX_LEN)
		return zc_err(-EMSGSIZE, "message of %zu bytes exceeds the 2^40 limit", len);
	/* Beyond the credits, sends wait in the connection's queue in order;
	 * they go out as credits come back. */
	rc = c->zq_count ? -EAGAIN : zc_zsend_post(c, &z);
	if (rc == -EAGAIN && c->zq_count < c->zq_cap) {
		c->zq[(c->zq_head + c->zq_count++) % c->zq_cap] = z;
		rc = 0;
	} else if (rc == -EAGAIN) {
		rc = zc_err(-EAGAIN, "%u zero-copy sends wait for the peer's credits and the queue (4 x send_depth) "
				     "is full: reap completions with zc_poll() and retry",
			    c->zq_count);
	}
	if (!rc)
		c->ctx->zc_outstanding++;
	return rc;
}

int zc_recv_zc(struct zc_conn *c, void *buf, size_t len, struct zc_mr *mr, uint64_t token)
{
	struct zc_posted *p;
	int rc = zc_conn_check(c);

	if (!rc)
		rc = zc_ctx_room(c->ctx);
	if (rc)
		return rc;
	if (!buf && len)
		return zc_err(-EINVAL, "NULL buffer");
	if (c->posted_count == c->posted_cap)
		return zc_err(-ENOSPC, "%u receive buffers already posted", c->posted_count);
	p = &c->posted[(c->posted_head + c->posted_count) % c->posted_cap];
	*p = (struct zc_posted){.buf = buf, .len = len, .mr = mr, .token = token};
	c->posted_count++;
	c->ctx->zc_outstanding++;
	zc_match_posted(c);
	zc_flush_ctl(c);
	return 0;
}
