/*
 * One socket's life under the shim: which path it takes, and the socket
 * calls on a zcrdma connection with TCP's semantics and errno values.
 *
 * Path decision (docs/preload.md): an AF_INET/AF_INET6 stream socket is
 * FRESH until connect() or listen(). connect() to a peer whose route leaves
 * from an address on an RDMA device tries zcrdma on the same port first; a
 * refusal (no zcrdma listener: the peer does not run the shim), an
 * unreachable route or a handshake timeout falls back to kernel TCP on the
 * same fd. listen() keeps the kernel listener and adds zcrdma listeners on
 * the same port (rdma_cm's port space is its own) on every RDMA address it
 * covers; accept() takes from both. Everything else is kernel TCP.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "preload.h"

#define ZP_MAX_CTX 16
#define ZP_MAX_LIS_TOTAL 64
#define ZP_EVENTS 64

/* One zcrdma context per local RDMA address, made on first use; a context
 * of NULL remembers that the address has no RDMA device. */
struct zp_ctx {
	char addr[INET6_ADDRSTRLEN];
	struct zc_ctx *ctx;
	const char *dev_err;
};

static struct zp_ctx ctxs[ZP_MAX_CTX];
static int nctx;
static struct {
	struct zc_listener *l;
	struct zp_sock *s;
} lis_map[ZP_MAX_LIS_TOTAL];
static int nlis_map;
static int closing; /* zc_close_start()s whose CLOSED has not come */
static char closing_mark; /* the user data of a closing connection */
static bool drain_registered;

/* --- addresses ----------------------------------------------------- */

/* Numeric form of sa's address (IPv4-mapped IPv6 as IPv4), and its port. */
static uint16_t addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)len);
		return ntohs(in->sin_port);
	}
	const struct sockaddr_in6 *in6 = (const void *)sa;

	if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
		inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, (socklen_t)len);
	else
		inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)len);
	return ntohs(in6->sin6_port);
}

static bool is_loopback(const char *a)
{
	return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0;
}

static bool is_any(const char *a)
{
	return strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0;
}

/* The source address the kernel would pick for peer. */
static int route_src(const struct sockaddr *peer, socklen_t len, char *buf, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = zp_real.socket(peer->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int rc = -1;

	if (fd < 0)
		return -1;
	if (zp_real.connect(fd, peer, len) == 0 && zp_real.getsockname(fd, (void *)&ss, &sl) == 0) {
		addr_str((void *)&ss, buf, cap);
		rc = 0;
	}
	zp_real.close(fd);
	return rc;
}

/* --- contexts ------------------------------------------------------ */

static void drain_closes(void);

static struct zp_ctx *ctx_for(const char *addr)
{
	struct zc_ctx_opts o;
	struct zp_ctx *c;
	int rc;

	for (int i = 0; i < nctx; i++)
		if (strcmp(ctxs[i].addr, addr) == 0)
			return &ctxs[i];
	if (nctx == ZP_MAX_CTX)
		return NULL;
	c = &ctxs[nctx++];
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	zc_ctx_opts_init(&o);
	rc = zc_ctx_new(addr, &o, &c->ctx);
	c->dev_err = rc ? zc_strerror(rc) : NULL;
	if (!rc && !drain_registered) {
		atexit(drain_closes);
		drain_registered = true;
	}
	return c;
}

int zp_ctx_fds(int *fds, int max)
{
	int n = 0;

	for (int i = 0; i < nctx && n < max; i++)
		if (ctxs[i].ctx)
			fds[n++] = zc_ctx_fd(ctxs[i].ctx);
	return n;
}

int zp_errno(int rc)
{
	rc = -rc;
	if (rc == ZC_EMEMLOCK)
		return ENOMEM;
	if (rc > ZC_ERRNO_BASE || rc == ECONNABORTED)
		return ECONNRESET;
	return rc;
}

/* --- sockets ------------------------------------------------------- */

struct zp_sock *zp_sock_new(int family, bool nonblock)
{
	struct zp_sock *s = calloc(1, sizeof(*s));

	if (s) {
		s->family = family;
		s->nonblock = nonblock;
		s->refs = 1;
		s->fd = -1;
	}
	return s;
}

bool zp_uses_kernel_fd(const struct zp_sock *s)
{
	return s->state == ZP_FRESH || s->state == ZP_TCP || s->state == ZP_LISTEN;
}

static void sock_free(struct zp_sock *s)
{
	zp_epoll_forget(s);
	free(s->peek);
	free(s);
}

static void conn_info(struct zp_sock *s)
{
	struct zc_conn_info info;

	if (zc_conn_query(s->conn, &info) == 0) {
		s->local = info.local;
		s->peer = info.peer;
	}
}

/* The handshake's end: open, or kernel TCP if the peer has no zcrdma path. */
static void connected(struct zp_sock *s, int status)
{
	char peer[INET6_ADDRSTRLEN];
	uint16_t port = addr_str((void *)&s->peer, peer, sizeof(peer));
	int flags;

	if (status == 0) {
		s->state = ZP_OPEN;
		conn_info(s);
		zp_log("fd %d connect %s:%u: zcrdma (from %s)", s->fd, peer, port, s->ctx->addr);
		return;
	}
	zc_abort(&s->conn);
	if (status != -ECONNREFUSED && status != -EHOSTUNREACH && status != -ETIMEDOUT &&
	    status != -ZC_EVERSION && status != -ZC_EPEERPROTO && status != -ENODEV) {
		s->state = ZP_FAILED;
		s->err = zp_errno(status);
		zp_log("fd %d connect %s:%u: zcrdma failed: %s", s->fd, peer, port, zc_strerror(status));
		return;
	}
	/* Kernel TCP on the same fd, started without waiting (we hold the lock). */
	flags = zp_real.fcntl(s->fd, F_GETFL);
	zp_real.fcntl(s->fd, F_SETFL, flags | O_NONBLOCK);
	if (zp_real.connect(s->fd, (void *)&s->peer,
			    s->peer.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) == 0 ||
	    errno == EINPROGRESS) {
		s->state = ZP_TCP;
	} else {
		s->state = ZP_FAILED;
		s->err = errno;
	}
	zp_real.fcntl(s->fd, F_SETFL, flags);
	zp_log("fd %d connect %s:%u: kernel TCP (zcrdma: %s)", s->fd, peer, port, zc_strerror(status));
}

static struct zp_sock *listener_sock(struct zc_listener *l)
{
	for (int i = 0; i < nlis_map; i++)
		if (lis_map[i].l == l)
			return lis_map[i].s;
	return NULL;
}

/* Established connections of a listener wait in its socket's backlog with
 * their own state, so their events count before accept() takes them. */
static void take_accepted(struct zp_sock *ls, struct zc_listener *l)
{
	struct zp_sock **tail = &ls->backlog;
	struct zc_conn *c;

	while (*tail)
		tail = &(*tail)->next;
	while (zc_accept(l, &c, 0) == 0) {
		struct zp_sock *s = zp_sock_new(ls->family, false);

		if (!s) {
			zc_abort(&c);
			continue;
		}
		s->conn = c;
		s->state = ZP_OPEN;
		s->ctx = ls->ctx;
		zc_conn_set_data(c, s);
		conn_info(s);
		*tail = s;
		tail = &s->next;
	}
}

/* shutdown(SHUT_WR): the peer reads the end of the stream after what was
 * written; if the send queue is full it goes once WRITABLE comes. */
static void end_stream(struct zp_sock *s)
{
	s->shut_pending = zc_shutdown(s->conn, ZC_DONTWAIT) == -EAGAIN;
}

static void dispatch(const struct zc_event *ev)
{
	struct zp_sock *s = ev->data;

	if (ev->type == ZC_EV_ACCEPT) {
		struct zp_sock *ls = listener_sock(ev->listener);

		if (ls)
			take_accepted(ls, ev->listener);
		return;
	}
	if (s == (void *)&closing_mark) {
		if (ev->type == ZC_EV_CLOSED)
			closing--;
		return;
	}
	if (!s)
		return;
	switch (ev->type) {
	case ZC_EV_CONNECTED:
		connected(s, ev->status);
		break;
	case ZC_EV_READABLE:
		s->readable = true;
		break;
	case ZC_EV_WRITABLE:
		s->wblocked = false;
		if (s->shut_pending)
			end_stream(s);
		break;
	case ZC_EV_PEER_CLOSED:
		s->peer_closed = s->readable = true;
		break;
	case ZC_EV_ERROR:
		s->err = zp_errno(ev->status);
		s->readable = true;
		break;
	case ZC_EV_COMPLETION:
		s->zc_busy = false;
		s->zc_status = ev->status;
		break;
	}
}

static void progress(bool before_sleep)
{
	struct zc_event ev[ZP_EVENTS];

	for (int i = 0; i < nctx; i++) {
		int n;

		if (!ctxs[i].ctx)
			continue;
		do {
			n = before_sleep ? zc_wait_events(ctxs[i].ctx, ev, ZP_EVENTS, 0)
					 : zc_take_events(ctxs[i].ctx, ev, ZP_EVENTS);
			for (int k = 0; k < n; k++)
				dispatch(&ev[k]);
		} while (n == ZP_EVENTS);
	}
}

void zp_progress(void)
{
	progress(false);
}

void zp_progress_before_sleep(void)
{
	progress(true);
}

/* Connections closed in the background finish before the process exits,
 * as the kernel delivers what a closed TCP socket had sent. Bounded. */
static void drain_closes(void)
{
	struct timespec t0, t;

	zp_lock();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int fds[ZP_MAX_CTX];
		struct pollfd p[ZP_MAX_CTX];
		int n;

		zp_progress_before_sleep();
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (closing <= 0 || t.tv_sec - t0.tv_sec > 5)
			break;
		n = zp_ctx_fds(fds, ZP_MAX_CTX);
		for (int i = 0; i < n; i++)
			p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
		zp_unlock();
		zp_real.ppoll(p, (nfds_t)n, &(struct timespec){0, 100000000}, NULL);
		zp_lock();
	}
	zp_unlock();
}

short zp_ready(struct zp_sock *s)
{
	short r = 0;
	ssize_t n;

	switch (s->state) {
	case ZP_LISTEN:
		return s->backlog ? POLLIN : 0;
	case ZP_CONNECTING:
		return 0;
	case ZP_FAILED:
	case ZP_INHERITED:
		return POLLOUT | POLLERR | POLLHUP;
	case ZP_OPEN:
		break;
	default:
		return 0;
	}
	if (s->err)
		return POLLIN | POLLOUT | POLLERR | POLLHUP;
	if (!s->wblocked && !s->zc_busy)
		r |= POLLOUT | POLLWRNORM;
	if (s->peek_off < s->peek_len) {
		r |= POLLIN | POLLRDNORM;
	} else if (s->readable) {
		/* the count, as a -EAGAIN would prepare the fd (may_have_bytes()) */
		n = zc_recv_queued(s->conn);
		if (n == 0) {
			s->readable = false;
			s->rd_gen++;
		} else {
			r |= POLLIN | POLLRDNORM;
		}
		if (n < 0 && !s->peer_closed)
			s->err = zp_errno((int)n);
	}
	if (s->peer_closed)
		r |= POLLIN | POLLRDHUP;
	if (s->peer_closed && s->wr_shut)
		r |= POLLHUP;
	return r;
}

/* --- connect ------------------------------------------------------- */

/* Why fd cannot go by zcrdma to peer (NULL: it can, from *ctx). */
static const char *no_path(int fd, const struct sockaddr *peer, socklen_t len, struct zp_ctx **ctx)
{
	static char why[128];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char p[INET6_ADDRSTRLEN], src[INET6_ADDRSTRLEN];

	if (peer->sa_family != AF_INET && peer->sa_family != AF_INET6)
		return "not an IP address";
	addr_str(peer, p, sizeof(p));
	if (is_loopback(p))
		return "loopback";
	if (zp_real.getsockname(fd, (void *)&ss, &sl) == 0 && (addr_str((void *)&ss, src, sizeof(src)), !is_any(src)))
		;
	else if (route_src(peer, len, src, sizeof(src)))
		return "no route";
	if (is_loopback(src))
		return "routed over loopback";
	*ctx = ctx_for(src);
	if (!*ctx)
		return "too many local addresses";
	if (!(*ctx)->ctx) {
		snprintf(why, sizeof(why), "no RDMA device behind %s", src);
		return why;
	}
	return NULL;
}

static bool not_connecting(struct zp_sock *s)
{
	return s->state != ZP_CONNECTING;
}

int zp_connect(int fd, struct zp_sock *s, const struct sockaddr *sa, socklen_t len)
{
	struct zc_conn_opts o;
	struct zp_ctx *ctx = NULL;
	const char *why;
	char peer[INET6_ADDRSTRLEN];
	uint16_t port;
	int rc;

	switch (s->state) {
	case ZP_FRESH:
		break;
	case ZP_CONNECTING:
		return zp_fail(s->nonblock ? EALREADY : EINPROGRESS);
	case ZP_OPEN:
		return zp_fail(EISCONN);
	case ZP_FAILED:
	case ZP_INHERITED:
		return zp_fail(s->err ? s->err : ENOTCONN);
	default:
		return ZP_PASS;
	}
	if (!sa || len < sizeof(struct sockaddr_in))
		return ZP_PASS;
	s->fd = fd;
	why = no_path(fd, sa, len, &ctx);
	port = addr_str(sa, peer, sizeof(peer));
	if (why) {
		s->state = ZP_TCP;
		zp_log("fd %d connect %s:%u: kernel TCP (%s)", fd, peer, port, why);
		return ZP_PASS;
	}
	memcpy(&s->peer, sa, len < sizeof(s->peer) ? len : sizeof(s->peer));
	zc_conn_opts_init(&o);
	o.timeout_ms = zp_conf.connect_ms;
	rc = zc_connect_start(ctx->ctx, peer, port, &o, &s->conn);
	if (rc) {
		s->state = ZP_TCP;
		zp_log("fd %d connect %s:%u: kernel TCP (zcrdma: %s)", fd, peer, port, zc_strerror(rc));
		return ZP_PASS;
	}
	s->ctx = ctx;
	s->state = ZP_CONNECTING;
	zc_conn_set_data(s->conn, s);
	if (s->nonblock)
		return zp_fail(EINPROGRESS);
	if (zp_block(s, not_connecting, -1) == -EINTR)
		return zp_fail(EINTR);
	if (s->state == ZP_TCP)
		return ZP_KCONNECT;
	if (s->state == ZP_FAILED) {
		rc = s->err;
		s->err = 0;
		return zp_fail(rc);
	}
	return 0;
}

/* --- listen / accept ----------------------------------------------- */

static void listen_on(struct zp_sock *s, const char *addr, uint16_t port, char *names, size_t cap)
{
	struct zp_ctx *c;
	struct zc_listener *l;

	if (s->nlis == ZP_MAX_LISTENERS || nlis_map == ZP_MAX_LIS_TOTAL || is_loopback(addr))
		return;
	c = ctx_for(addr);
	if (!c || !c->ctx || zc_listen(c->ctx, port, NULL, &l))
		return;
	s->lis[s->nlis++] = l;
	s->ctx = c;
	lis_map[nlis_map].l = l;
	lis_map[nlis_map++].s = s;
	snprintf(names + strlen(names), cap - strlen(names), " %s", addr);
}

int zp_listen(int fd, struct zp_sock *s, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char local[INET6_ADDRSTRLEN], names[256] = "";
	uint16_t port;
	int v6only = 0;

	if (s->state != ZP_FRESH)
		return ZP_PASS;
	if (zp_real.listen(fd, backlog) || zp_real.getsockname(fd, (void *)&ss, &sl))
		return -1;
	s->fd = fd;
	port = addr_str((void *)&ss, local, sizeof(local));
	if (is_any(local)) {
		struct ifaddrs *ifa, *i;

		sl = sizeof(v6only);
		if (s->family == AF_INET6)
			zp_real.getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &sl);
		if (getifaddrs(&ifa) == 0) {
			for (i = ifa; i; i = i->ifa_next) {
				char a[INET6_ADDRSTRLEN];
				int fam = i->ifa_addr ? i->ifa_addr->sa_family : -1;

				if (fam != s->family && !(fam == AF_INET && s->family == AF_INET6 && !v6only))
					continue;
				if (fam == AF_INET6 &&
				    IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr))
					continue;
				addr_str(i->ifa_addr, a, sizeof(a));
				listen_on(s, a, port, names, sizeof(names));
			}
			freeifaddrs(ifa);
		}
	} else {
		listen_on(s, local, port, names, sizeof(names));
	}
	if (!s->nlis) {
		s->state = ZP_TCP;
		zp_log("fd %d listen %s:%u: kernel TCP only (no RDMA address)", fd, local, port);
		return 0;
	}
	s->state = ZP_LISTEN;
	zp_log("fd %d listen %s:%u: kernel TCP + zcrdma on%s", fd, local, port, names);
	return 0;
}

int zp_accept(int fd, struct zp_sock *s, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct zp_sock *c;
	char peer[INET6_ADDRSTRLEN];
	uint16_t port;
	int nfd;

	zp_progress();
	c = s->backlog;
	if (!c) {
		s->rd_gen++;
		return s->nonblock ? ZP_PASS : ZP_AGAIN;
	}
	nfd = zp_real.socket(c->family, SOCK_STREAM | (flags & (SOCK_NONBLOCK | SOCK_CLOEXEC)), 0);
	if (nfd < 0)
		return -1;
	if (nfd >= ZP_MAX_FDS) {
		zp_real.close(nfd);
		return zp_fail(EMFILE);
	}
	s->backlog = c->next;
	c->next = NULL;
	c->fd = nfd;
	c->nonblock = (flags & SOCK_NONBLOCK) != 0;
	zp_set(nfd, c);
	if (sa && len)
		zp_name(c, true, sa, len);
	port = addr_str((void *)&c->peer, peer, sizeof(peer));
	zp_log("fd %d accept on fd %d from %s:%u: zcrdma", nfd, fd, peer, port);
	return nfd;
}

/* --- transfers ----------------------------------------------------- */

static bool readable_or_err(struct zp_sock *s)
{
	return s->readable || s->err || s->peek_off < s->peek_len;
}

static bool writable_or_err(struct zp_sock *s)
{
	return !s->wblocked || s->err;
}

static bool zc_done(struct zp_sock *s)
{
	return !s->zc_busy;
}

static int read_timeo(int fd, int name)
{
	struct timeval tv;
	socklen_t len = sizeof(tv);

	if (zp_real.getsockopt(fd, SOL_SOCKET, name, &tv, &len) || (!tv.tv_sec && !tv.tv_usec))
		return -1;
	return tv.tv_sec > 1000000 ? 1000000000 : (int)(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
}

/* SO_RCVTIMEO / SO_SNDTIMEO (name) as set on the kernel fd, in ms (-1:
 * none). Read once per setsockopt(), not per blocking call: a system call
 * costs about as much as a small message on rxe. */
static int timeo_ms(struct zp_sock *s, int name)
{
	if (!s->timeo_known) {
		s->rcvtimeo_ms = read_timeo(s->fd, SO_RCVTIMEO);
		s->sndtimeo_ms = read_timeo(s->fd, SO_SNDTIMEO);
		s->timeo_known = true;
	}
	return name == SO_RCVTIMEO ? s->rcvtimeo_ms : s->sndtimeo_ms;
}

/* A blocking call's wait ended without its condition: the errno to return
 * (a timeout is EAGAIN, as TCP's SO_RCVTIMEO/SO_SNDTIMEO). */
static int wait_errno(int rc)
{
	return rc == -ETIMEDOUT ? EAGAIN : -rc;
}

/* Waits out a connect in flight: blocking sockets wait, others -EAGAIN. */
static int usable(struct zp_sock *s, bool nonblock)
{
	if (s->state == ZP_CONNECTING) {
		if (nonblock)
			return -EAGAIN;
		if (zp_block(s, not_connecting, -1))
			return -EINTR;
	}
	if (s->state == ZP_OPEN)
		return 0;
	return -ENOTCONN;
}

/* Copies out of the MSG_PEEK stash, then receives without waiting. */
static ssize_t recv_some(struct zp_sock *s, uint8_t *p, size_t len, bool peek)
{
	ssize_t n;

	if (s->peek_off < s->peek_len) {
		n = (ssize_t)(len < s->peek_len - s->peek_off ? len : s->peek_len - s->peek_off);
		memcpy(p, s->peek + s->peek_off, (size_t)n);
		if (!peek)
			s->peek_off += (size_t)n;
		return n;
	}
	if (!peek)
		return zc_recv(s->conn, p, len, ZC_DONTWAIT);
	free(s->peek);
	s->peek_off = s->peek_len = 0;
	if (!(s->peek = malloc(len)))
		return -ENOMEM;
	n = zc_recv(s->conn, s->peek, len, ZC_DONTWAIT);
	if (n > 0) {
		s->peek_len = (size_t)n;
		memcpy(p, s->peek, (size_t)n);
	}
	return n;
}

/* Whether zc_recv() would not answer -EAGAIN, which prepares the context's
 * fd for a sleep: system calls the shim's waits make only right before
 * they sleep. READABLE may be stale (a read took exactly what was queued):
 * the count says. */
static bool may_have_bytes(struct zp_sock *s)
{
	if (!s->readable && !s->peer_closed)
		zp_progress();
	if (s->peer_closed)
		return true;
	return s->readable && zc_recv_queued(s->conn) != 0;
}

ssize_t zp_recv(struct zp_sock *s, const struct iovec *iov, int niov, int flags)
{
	bool nonblock = s->nonblock || (flags & MSG_DONTWAIT);
	size_t got = 0, off = 0;
	int i = 0, rc = usable(s, nonblock);

	if (rc)
		return zp_fail(-rc);
	if (s->rd_shut)
		return 0;
	while (i < niov) {
		ssize_t n;

		if (off == iov[i].iov_len) {
			i++;
			off = 0;
			continue;
		}
		if (s->peek_off < s->peek_len || may_have_bytes(s))
			n = recv_some(s, (uint8_t *)iov[i].iov_base + off, iov[i].iov_len - off, flags & MSG_PEEK);
		else
			n = -EAGAIN;
		if (n > 0) {
			got += (size_t)n;
			off += (size_t)n;
			if (flags & MSG_PEEK)
				break;
			continue;
		}
		if (n == 0)
			break; /* end of stream */
		if (n != -EAGAIN) {
			if (got)
				break;
			s->err = 0;
			return zp_fail(zp_errno((int)n));
		}
		s->readable = false;
		s->rd_gen++;
		if (got && !(flags & MSG_WAITALL))
			break;
		if (nonblock)
			return got ? (ssize_t)got : zp_fail(EAGAIN);
		if ((rc = zp_block(s, readable_or_err, timeo_ms(s, SO_RCVTIMEO))))
			return got ? (ssize_t)got : zp_fail(wait_errno(rc));
	}
	return (ssize_t)got;
}

/* Large blocking writes: by rendezvous from the caller's buffer; the call
 * returns once the peer has read it (the completion), so the caller may
 * reuse the buffer at once. Signals do not cut it short: the NIC is
 * reading the buffer. */
static ssize_t send_zc(struct zp_sock *s, const uint8_t *p, size_t len)
{
	int rc;

	while ((rc = zc_send_zc(s->conn, p, len, NULL, 0)) == -EAGAIN) {
		s->wblocked = true;
		s->wr_gen++;
		if ((rc = zp_block(s, writable_or_err, timeo_ms(s, SO_SNDTIMEO))))
			return rc;
		if (s->err)
			return -s->err;
	}
	if (rc)
		return rc;
	s->zc_busy = true;
	while (zp_block(s, zc_done, -1))
		;
	return s->zc_status ? s->zc_status : (ssize_t)len;
}

ssize_t zp_send(struct zp_sock *s, const struct iovec *iov, int niov, int flags)
{
	bool nonblock = s->nonblock || (flags & MSG_DONTWAIT);
	size_t sent = 0;
	int rc = usable(s, nonblock);

	if (rc)
		return zp_fail(-rc);
	if (s->err) {
		rc = s->err;
		s->err = 0;
		return zp_fail(rc);
	}
	for (int i = 0; i < niov; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		while (len) {
			ssize_t n;

			if (s->wr_shut)
				n = -EPIPE;
			else if (!nonblock && len >= zp_conf.zc_min)
				n = send_zc(s, p, len);
			else
				n = zc_send(s->conn, p, len, ZC_DONTWAIT);
			if (n > 0) {
				p += n;
				len -= (size_t)n;
				sent += (size_t)n;
				continue;
			}
			if (n == -EAGAIN) {
				s->wblocked = true;
				s->wr_gen++;
				if (nonblock)
					return sent ? (ssize_t)sent : zp_fail(EAGAIN);
				if ((rc = zp_block(s, writable_or_err, timeo_ms(s, SO_SNDTIMEO))))
					return sent ? (ssize_t)sent : zp_fail(wait_errno(rc));
				continue;
			}
			if (sent)
				return (ssize_t)sent;
			if (n == -EINTR || n == -ETIMEDOUT) /* send_zc's wait for room */
				return zp_fail(wait_errno((int)n));
			n = zp_errno((int)n);
			if (n == EPIPE && !(flags & MSG_NOSIGNAL))
				raise(SIGPIPE);
			return zp_fail((int)n);
		}
	}
	return (ssize_t)sent;
}

int zp_shutdown(struct zp_sock *s, int how)
{
	if (s->state != ZP_OPEN)
		return zp_fail(ENOTCONN);
	if (how == SHUT_RD || how == SHUT_RDWR)
		s->rd_shut = true;
	if ((how == SHUT_WR || how == SHUT_RDWR) && !s->wr_shut) {
		s->wr_shut = true;
		end_stream(s);
	}
	return 0;
}

int zp_nread(struct zp_sock *s)
{
	ssize_t n;

	if (s->state != ZP_OPEN)
		return -ENOTCONN;
	n = zc_recv_queued(s->conn);
	n = (n > 0 ? n : 0) + (ssize_t)(s->peek_len - s->peek_off);
	return (int)(n > INT_MAX ? INT_MAX : n);
}

/* --- options and names --------------------------------------------- */

int zp_getsockopt(int fd, struct zp_sock *s, int level, int name, void *val, socklen_t *len)
{
	(void)fd;
	if (zp_uses_kernel_fd(s) || level != SOL_SOCKET || name != SO_ERROR || !val || !len || *len < sizeof(int))
		return ZP_PASS;
	if (s->state == ZP_OPEN)
		zp_ready(s); /* notices a failure */
	*(int *)val = s->err;
	*len = sizeof(int);
	s->err = 0;
	return 0;
}

int zp_name(struct zp_sock *s, bool peer, struct sockaddr *sa, socklen_t *len)
{
	const struct sockaddr_storage *a = peer ? &s->peer : &s->local;
	socklen_t n = a->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

	if (!a->ss_family)
		return zp_fail(ENOTCONN);
	if (!sa || !len)
		return zp_fail(EFAULT);
	memcpy(sa, a, *len < n ? *len : n);
	*len = n;
	return 0;
}

/* --- close and fork ------------------------------------------------ */

static void drop_listeners(struct zp_sock *s)
{
	for (int i = 0; i < s->nlis; i++) {
		for (int k = 0; k < nlis_map; k++)
			if (lis_map[k].l == s->lis[i])
				lis_map[k] = lis_map[--nlis_map];
		zc_listener_free(&s->lis[i]);
	}
	s->nlis = 0;
	while (s->backlog) {
		struct zp_sock *c = s->backlog;

		s->backlog = c->next;
		zc_abort(&c->conn);
		sock_free(c);
	}
}

void zp_sock_unref(int fd, struct zp_sock *s)
{
	(void)fd;
	if (--s->refs > 0)
		return;
	switch (s->state) {
	case ZP_OPEN:
		zc_conn_set_data(s->conn, &closing_mark);
		if (zc_close_start(&s->conn) == 0)
			closing++;
		else
			zc_abort(&s->conn);
		break;
	case ZP_CONNECTING:
		zc_abort(&s->conn);
		break;
	case ZP_LISTEN:
		drop_listeners(s);
		break;
	default:
		break;
	}
	sock_free(s);
}

/* The child of fork() shares the parent's RDMA resources through inherited
 * device fds: destroying anything here would destroy the parent's. So the
 * child forgets every context, its zcrdma connections become dead ends
 * (ENOTCONN) and its listeners plain kernel listeners; new sockets in the
 * child get contexts of their own. */
void zp_fork_child(void)
{
	for (int fd = 0; fd < ZP_MAX_FDS; fd++) {
		struct zp_sock *s = zp_get_locked(fd);

		if (!s)
			continue;
		if (s->state == ZP_LISTEN) {
			s->state = ZP_TCP;
			s->nlis = 0;
			s->backlog = NULL;
		} else if (!zp_uses_kernel_fd(s)) {
			s->state = ZP_INHERITED;
			s->conn = NULL;
		}
	}
	nctx = 0;
	nlis_map = 0;
	closing = 0;
}
