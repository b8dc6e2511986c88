/*
 * Interposition: the libc names a socket program calls, each sending a
 * tracked socket to sock.c / wait.c and everything else to the real
 * function (dlsym RTLD_NEXT), unchanged.
 *
 * Re-entry: libzcrdma and its RDMA libraries call close(), poll() and
 * friends themselves, from inside our calls. A thread that holds the
 * shim's lock goes straight to the real functions (in_shim), and their fds
 * are never tracked anyway.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "preload.h"

#define ZP_API __attribute__((visibility("default")))

/* glibc's _FORTIFY_SOURCE entry points (no public prototypes). */
ZP_API ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen);
ZP_API ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);
ZP_API ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags, struct sockaddr *sa,
			      socklen_t *salen);
ZP_API int __poll_chk(struct pollfd *fds, nfds_t n, int timeout_ms, size_t fdslen);

struct zp_real zp_real;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int in_shim;
static struct zp_sock *table[ZP_MAX_FDS];
static int tracked; /* sockets in table, for the fast path of poll/select */
static int log_on;

void zp_lock(void)
{
	pthread_mutex_lock(&lock);
	in_shim++;
}

void zp_unlock(void)
{
	in_shim--;
	pthread_mutex_unlock(&lock);
}

struct zp_sock *zp_get(int fd)
{
	if (fd < 0 || fd >= ZP_MAX_FDS || in_shim)
		return NULL;
	return __atomic_load_n(&table[fd], __ATOMIC_ACQUIRE);
}

struct zp_sock *zp_get_locked(int fd)
{
	return fd < 0 || fd >= ZP_MAX_FDS ? NULL : table[fd];
}

void zp_set(int fd, struct zp_sock *s)
{
	if (fd < 0 || fd >= ZP_MAX_FDS)
		return;
	tracked += (s != NULL) - (table[fd] != NULL);
	__atomic_store_n(&table[fd], s, __ATOMIC_RELEASE);
}

bool zp_any_tracked(void)
{
	return !in_shim && __atomic_load_n(&tracked, __ATOMIC_RELAXED) > 0;
}

void zp_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	if (!log_on)
		return;
	n = snprintf(line, sizeof(line), "zcrdma-preload[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	(void)!zp_real.write(2, line, strlen(line));
}

int zp_fail(int err)
{
	errno = err;
	return -1;
}

static void fork_prepare(void)
{
	zp_lock();
}

static void fork_parent(void)
{
	zp_unlock();
}

static void fork_child(void)
{
	zp_fork_child();
	zp_unlock();
}

struct zp_conf zp_conf;

/* A ZCRDMA_PRELOAD_* number: def when unset or below min. */
static long env_num(const char *name, long min, long def)
{
	const char *e = getenv(name);

	return e && atol(e) >= min ? atol(e) : def;
}

#define REAL(name) zp_real.name = (__typeof__(zp_real.name))dlsym(RTLD_NEXT, #name)

__attribute__((constructor)) static void zp_init(void)
{
	const char *l = getenv("ZCRDMA_PRELOAD_LOG");

	REAL(socket); REAL(bind); REAL(listen); REAL(accept4); REAL(connect);
	REAL(read); REAL(readv); REAL(recvfrom); REAL(recvmsg);
	REAL(write); REAL(writev); REAL(sendto); REAL(sendmsg); REAL(sendfile);
	REAL(shutdown); REAL(close); REAL(dup); REAL(dup2); REAL(dup3); REAL(fcntl); REAL(ioctl);
	REAL(getsockopt); REAL(setsockopt); REAL(getsockname); REAL(getpeername);
	REAL(ppoll); REAL(epoll_ctl); REAL(epoll_pwait); REAL(pselect);
	log_on = l && *l && strcmp(l, "0") != 0;
	zp_conf.spin_us = (int)env_num("ZCRDMA_PRELOAD_SPIN_US", 0, 100);
	zp_conf.connect_ms = (int)env_num("ZCRDMA_PRELOAD_CONNECT_MS", 1, 1500);
	zp_conf.zc_min = (size_t)env_num("ZCRDMA_PRELOAD_ZC_MIN", 1, 65536);
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* A socket whose kernel fd is only a placeholder: the bytes go by zcrdma. */
static struct zp_sock *zc_sock(int fd)
{
	struct zp_sock *s = zp_get(fd);

	return s && !zp_uses_kernel_fd(s) ? s : NULL;
}

/* --- sockets ------------------------------------------------------- */

ZP_API int socket(int domain, int type, int protocol)
{
	int fd = zp_real.socket(domain, type, protocol);

	if (fd < 0 || in_shim || fd >= ZP_MAX_FDS)
		return fd;
	if ((domain == AF_INET || domain == AF_INET6) && (type & 0xf) == SOCK_STREAM &&
	    (protocol == 0 || protocol == IPPROTO_TCP)) {
		struct zp_sock *s = zp_sock_new(domain, type & SOCK_NONBLOCK);

		if (s) {
			zp_lock();
			s->fd = fd;
			zp_set(fd, s);
			zp_unlock();
		}
	}
	return fd;
}

/* A blocking connect that fell back to kernel TCP: wait for its outcome. */
static int kernel_connect_wait(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	socklen_t len = sizeof(int);
	int err = 0;

	if (zp_real.ppoll(&p, 1, NULL, NULL) < 0)
		return -1;
	if (zp_real.getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return -1;
	return err ? zp_fail(err) : 0;
}

ZP_API int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct zp_sock *s = zp_get(fd);
	int rc;

	if (!s)
		return zp_real.connect(fd, sa, len);
	zp_lock();
	rc = zp_connect(fd, s, sa, len);
	zp_unlock();
	if (rc == ZP_PASS)
		return zp_real.connect(fd, sa, len);
	return rc == ZP_KCONNECT ? kernel_connect_wait(fd) : rc;
}

ZP_API int listen(int fd, int backlog)
{
	struct zp_sock *s = zp_get(fd);
	int rc;

	if (!s)
		return zp_real.listen(fd, backlog);
	zp_lock();
	rc = zp_listen(fd, s, backlog);
	zp_unlock();
	return rc == ZP_PASS ? zp_real.listen(fd, backlog) : rc;
}

ZP_API int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct zp_sock *s = zp_get(fd);
	int rc;

	if (!s || s->state != ZP_LISTEN)
		return zp_real.accept4(fd, sa, len, flags);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		zp_lock();
		rc = zp_accept(fd, s, sa, len, flags);
		zp_unlock();
		if (rc == ZP_PASS)
			return zp_real.accept4(fd, sa, len, flags);
		if (rc != ZP_AGAIN)
			return rc;
		/* blocking: wait for either side, then take the kernel's if it has one */
		if (zp_poll(&p, 1, -1, NULL) < 0)
			return -1;
		if (zp_real.ppoll(&p, 1, &(struct timespec){0, 0}, NULL) == 1)
			return zp_real.accept4(fd, sa, len, flags);
	}
}

ZP_API int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	return accept4(fd, sa, len, 0);
}

/* --- transfers ----------------------------------------------------- */

static ssize_t recv_iov(struct zp_sock *s, const struct iovec *iov, int n, int flags)
{
	ssize_t rc;

	zp_lock();
	rc = zp_recv(s, iov, n, flags);
	zp_unlock();
	return rc;
}

static ssize_t send_iov(struct zp_sock *s, const struct iovec *iov, int n, int flags)
{
	ssize_t rc;

	zp_lock();
	rc = zp_send(s, iov, n, flags);
	zp_unlock();
	return rc;
}

ZP_API ssize_t read(int fd, void *buf, size_t len)
{
	struct zp_sock *s = zc_sock(fd);
	struct iovec v = {buf, len};

	return s ? recv_iov(s, &v, 1, 0) : zp_real.read(fd, buf, len);
}

ZP_API ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	if (len > buflen)
		abort();
	return read(fd, buf, len);
}

ZP_API ssize_t readv(int fd, const struct iovec *iov, int n)
{
	struct zp_sock *s = zc_sock(fd);

	return s ? recv_iov(s, iov, n, 0) : zp_real.readv(fd, iov, n);
}

ZP_API ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *sa, socklen_t *salen)
{
	struct zp_sock *s = zc_sock(fd);
	struct iovec v = {buf, len};
	ssize_t rc;

	if (!s)
		return zp_real.recvfrom(fd, buf, len, flags, sa, salen);
	rc = recv_iov(s, &v, 1, flags);
	if (rc >= 0 && sa && salen)
		zp_name(s, true, sa, salen);
	return rc;
}

ZP_API ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	return recvfrom(fd, buf, len, flags, NULL, NULL);
}

ZP_API ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
	if (len > buflen)
		abort();
	return recv(fd, buf, len, flags);
}

ZP_API ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags, struct sockaddr *sa,
			      socklen_t *salen)
{
	if (len > buflen)
		abort();
	return recvfrom(fd, buf, len, flags, sa, salen);
}

ZP_API ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	struct zp_sock *s = zc_sock(fd);
	ssize_t rc;

	if (!s)
		return zp_real.recvmsg(fd, m, flags);
	rc = recv_iov(s, m->msg_iov, (int)m->msg_iovlen, flags);
	if (rc >= 0) {
		m->msg_controllen = 0;
		m->msg_flags = 0;
		if (m->msg_name)
			zp_name(s, true, m->msg_name, &m->msg_namelen);
	}
	return rc;
}

ZP_API ssize_t write(int fd, const void *buf, size_t len)
{
	struct zp_sock *s = zc_sock(fd);
	struct iovec v = {(void *)buf, len};

	return s ? send_iov(s, &v, 1, 0) : zp_real.write(fd, buf, len);
}

ZP_API ssize_t writev(int fd, const struct iovec *iov, int n)
{
	struct zp_sock *s = zc_sock(fd);

	return s ? send_iov(s, iov, n, 0) : zp_real.writev(fd, iov, n);
}

ZP_API ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *sa, socklen_t salen)
{
	struct zp_sock *s = zc_sock(fd);
	struct iovec v = {(void *)buf, len};

	return s ? send_iov(s, &v, 1, flags) : zp_real.sendto(fd, buf, len, flags, sa, salen);
}

ZP_API ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	return sendto(fd, buf, len, flags, NULL, 0);
}

ZP_API ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	struct zp_sock *s = zc_sock(fd);

	return s ? send_iov(s, m->msg_iov, (int)m->msg_iovlen, flags) : zp_real.sendmsg(fd, m, flags);
}

/* sendfile to a zcrdma socket: through a buffer (a copy path). */
ZP_API ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
	struct zp_sock *s = zc_sock(out);
	size_t cap = count < (1u << 20) ? count : (1u << 20);
	ssize_t n, rc;
	void *buf;

	if (!s)
		return zp_real.sendfile(out, in, off, count);
	if (!(buf = malloc(cap ? cap : 1)))
		return zp_fail(ENOMEM);
	n = off ? pread(in, buf, cap, *off) : zp_real.read(in, buf, cap);
	if (n > 0) {
		struct iovec v = {buf, (size_t)n};

		rc = send_iov(s, &v, 1, 0);
		if (rc > 0 && off)
			*off += rc;
		else if (rc > 0 && rc < n)
			lseek(in, rc - n, SEEK_CUR);
		n = rc;
	}
	free(buf);
	return n;
}

ZP_API ssize_t sendfile64(int out, int in, off_t *off, size_t count)
{
	return sendfile(out, in, off, count);
}

ZP_API int shutdown(int fd, int how)
{
	struct zp_sock *s = zc_sock(fd);
	int rc;

	if (!s)
		return zp_real.shutdown(fd, how);
	zp_lock();
	rc = zp_shutdown(s, how);
	zp_unlock();
	return rc;
}

/* --- fds ----------------------------------------------------------- */

ZP_API int close(int fd)
{
	struct zp_sock *s = zp_get(fd);

	if (!in_shim && fd >= 0 && fd < ZP_MAX_FDS) {
		zp_lock();
		zp_epoll_close(fd);
		if (s) {
			zp_set(fd, NULL);
			zp_sock_unref(fd, s);
		}
		zp_unlock();
	}
	return zp_real.close(fd);
}

/* newfd now names what oldfd names (after a successful dup*). */
static int dup_track(int oldfd, int newfd)
{
	struct zp_sock *s = zp_get(oldfd), *old = zp_get(newfd);

	if (newfd < 0 || in_shim || s == old)
		return newfd;
	zp_lock();
	if (old) {
		zp_set(newfd, NULL);
		zp_sock_unref(newfd, old);
	}
	if (s && newfd < ZP_MAX_FDS) {
		s->refs++;
		zp_set(newfd, s);
	}
	zp_unlock();
	return newfd;
}

ZP_API int dup(int fd)
{
	return dup_track(fd, zp_real.dup(fd));
}

ZP_API int dup2(int fd, int newfd)
{
	if (fd == newfd)
		return zp_real.dup2(fd, newfd);
	return dup_track(fd, zp_real.dup2(fd, newfd));
}

ZP_API int dup3(int fd, int newfd, int flags)
{
	return dup_track(fd, zp_real.dup3(fd, newfd, flags));
}

ZP_API int fcntl(int fd, int cmd, ...)
{
	struct zp_sock *s = zp_get(fd);
	va_list ap;
	void *arg;
	int rc;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	rc = zp_real.fcntl(fd, cmd, arg);
	if (rc < 0 || !s)
		return rc;
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		return dup_track(fd, rc);
	if (cmd == F_SETFL)
		s->nonblock = ((long)arg & O_NONBLOCK) != 0;
	return rc;
}

ZP_API int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl(fd, cmd, arg);
}

ZP_API int ioctl(int fd, unsigned long req, ...)
{
	struct zp_sock *s = zp_get(fd);
	va_list ap;
	void *arg;
	int rc;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (s && !zp_uses_kernel_fd(s) && req == FIONREAD) {
		zp_lock();
		rc = zp_nread(s);
		zp_unlock();
		if (rc < 0)
			return zp_fail(-rc);
		*(int *)arg = rc;
		return 0;
	}
	rc = zp_real.ioctl(fd, req, arg);
	if (rc == 0 && s && req == FIONBIO)
		s->nonblock = *(int *)arg != 0;
	return rc;
}

ZP_API int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct zp_sock *s = zp_get(fd);
	int rc;

	if (!s)
		return zp_real.getsockopt(fd, level, name, val, len);
	zp_lock();
	rc = zp_getsockopt(fd, s, level, name, val, len);
	zp_unlock();
	return rc == ZP_PASS ? zp_real.getsockopt(fd, level, name, val, len) : rc;
}

/* Options stay on the kernel fd; the send and receive timeouts are read
 * back from it once after they may have changed (sock.c, timeo_ms()). */
ZP_API int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	int rc = zp_real.setsockopt(fd, level, name, val, len);
	struct zp_sock *s;

	if (rc == 0 && level == SOL_SOCKET && (s = zp_get(fd))) {
		zp_lock();
		s->timeo_known = false;
		zp_unlock();
	}
	return rc;
}

ZP_API int getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct zp_sock *s = zc_sock(fd);

	return s ? zp_name(s, false, sa, len) : zp_real.getsockname(fd, sa, len);
}

ZP_API int getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct zp_sock *s = zc_sock(fd);

	return s ? zp_name(s, true, sa, len) : zp_real.getpeername(fd, sa, len);
}

/* --- readiness (wait.c) -------------------------------------------- */

ZP_API int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
	int ms = ts ? (int)(ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000) : -1;

	if (!zp_any_tracked())
		return zp_real.ppoll(fds, n, ts, mask);
	return zp_poll(fds, n, ms, mask);
}

ZP_API int poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};

	if (!zp_any_tracked())
		return zp_real.ppoll(fds, n, timeout_ms < 0 ? NULL : &ts, NULL);
	return zp_poll(fds, n, timeout_ms, NULL);
}

ZP_API int __poll_chk(struct pollfd *fds, nfds_t n, int timeout_ms, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		abort();
	return poll(fds, n, timeout_ms);
}

ZP_API int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts, const sigset_t *mask)
{
	return zp_select(n, r, w, e, ts, mask);
}

ZP_API int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
	struct timespec ts;

	if (tv)
		ts = (struct timespec){tv->tv_sec, tv->tv_usec * 1000};
	return zp_select(n, r, w, e, tv ? &ts : NULL, NULL);
}

ZP_API int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	return zp_epoll_ctl(epfd, op, fd, ev);
}

ZP_API int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout_ms)
{
	return zp_epoll_wait(epfd, evs, max, timeout_ms, NULL);
}

ZP_API int epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout_ms, const sigset_t *mask)
{
	return zp_epoll_wait(epfd, evs, max, timeout_ms, mask);
}
