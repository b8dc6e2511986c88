/*
 * libzcrdma_preload: unmodified socket programs over zcrdma (docs/preload.md).
 *
 *   sys.c    interposition: the exported libc names, the real functions
 *            behind them (dlsym RTLD_NEXT), the fd -> socket table
 *   sock.c   one socket's state machine: path decision, connect/fallback,
 *            listen/accept on both sides, transfers, close, fork
 *   wait.c   poll/ppoll/select/pselect/epoll over kernel fds and zcrdma
 *            sockets together
 *
 * Everything below runs under one process-wide lock (zp_lock) because a
 * zcrdma context is single-threaded; no call sleeps while holding it.
 */
#ifndef ZC_PRELOAD_H
#define ZC_PRELOAD_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "zcrdma.h"

#define ZP_MAX_FDS 65536
#define ZP_MAX_LISTENERS 8

/* The real libc functions (sys.c). */
struct zp_real {
	int (*socket)(int, int, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	ssize_t (*sendfile)(int, int, off_t *, size_t);
	int (*shutdown)(int, int);
	int (*close)(int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
};
extern struct zp_real zp_real;

/* Where a tracked socket is. Kernel TCP sockets that never became zcrdma
 * ones are not tracked at all (their fd maps to NULL). */
enum zp_state {
	ZP_FRESH,      /* AF_INET/AF_INET6 stream socket, path not chosen yet */
	ZP_TCP,        /* decided: kernel TCP from now on (the fd is all there is) */
	ZP_LISTEN,     /* kernel listener plus zcrdma listeners on the same port */
	ZP_CONNECTING, /* zcrdma handshake in flight; kernel TCP if refused */
	ZP_OPEN,       /* zcrdma connection (the kernel socket is a placeholder) */
	ZP_FAILED,     /* connect failed for good: err says why */
	ZP_INHERITED,  /* a fork()ed child's copy: the connection is the parent's */
};

struct zp_ctx;

struct zp_sock {
	enum zp_state state;
	int refs;     /* fds naming it (dup) */
	int family;
	bool nonblock;
	struct zp_ctx *ctx;
	struct zc_conn *conn;
	struct zc_listener *lis[ZP_MAX_LISTENERS];
	int nlis;
	struct zp_sock *backlog; /* accepted by the library, not yet by accept() */
	struct zp_sock *next;    /* in a listener's backlog */
	int err;        /* SO_ERROR to report (positive errno), or a failed connection's */
	bool readable;  /* READABLE seen and no -EAGAIN since */
	bool wblocked;  /* a send returned -EAGAIN and WRITABLE has not come */
	bool peer_closed, rd_shut, wr_shut;
	bool shut_pending; /* wr_shut: the end of stream waits for send-queue room */
	bool zc_busy;   /* a zero-copy write is in flight */
	unsigned rd_gen, wr_gen; /* bumped when reading / writing found nothing to do (EAGAIN) */
	int zc_status;
	int rcvtimeo_ms, sndtimeo_ms; /* SO_RCVTIMEO/SO_SNDTIMEO (-1: none), once timeo_known */
	bool timeo_known;             /* cleared by setsockopt(SOL_SOCKET) */
	uint8_t *peek;  /* bytes taken for MSG_PEEK, served first */
	size_t peek_len, peek_off;
	struct sockaddr_storage local, peer;
	int fd; /* first fd, for the log */
};

/* Returned (locked) by sock.c when the wrapper should do the real call itself,
 * unlocked: the kernel side of a socket may block. */
#define ZP_PASS (-1000)
/* zp_connect: a blocking connect fell back to kernel TCP, which is in flight. */
#define ZP_KCONNECT (-1001)
/* zp_accept: nothing queued on either side of a blocking listener yet. */
#define ZP_AGAIN (-1002)

/* sys.c */
void zp_lock(void);
void zp_unlock(void);
struct zp_sock *zp_get(int fd); /* NULL: not tracked (or fd out of range) */
void zp_set(int fd, struct zp_sock *s);
struct zp_sock *zp_get_locked(int fd); /* with the lock held */
bool zp_any_tracked(void);
void zp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The ZCRDMA_PRELOAD_* settings, read once when the library loads (sys.c):
 * getenv() walks the whole environment, 663 instructions a call (callgrind),
 * too dear for a send or a wait. */
struct zp_conf {
	int spin_us;    /* SPIN_US: a wait's busy-polling phase (default 100) */
	int connect_ms; /* CONNECT_MS: a zcrdma connect's bound (default 1500) */
	size_t zc_min;  /* ZC_MIN: blocking sends this large go zero-copy (default 65536) */
};
extern struct zp_conf zp_conf;
int zp_fail(int err); /* sets errno = err, returns -1 */

/* sock.c */
struct zp_sock *zp_sock_new(int family, bool nonblock);
void zp_sock_unref(int fd, struct zp_sock *s);
/* Takes the contexts' events without a system call (zc_take_events());
 * zp_progress_before_sleep() also prepares their fds for a sleep. */
void zp_progress(void);
void zp_progress_before_sleep(void);
short zp_ready(struct zp_sock *s); /* POLL* bits of a zcrdma socket */
bool zp_uses_kernel_fd(const struct zp_sock *s);
int zp_ctx_fds(int *fds, int max);
int zp_connect(int fd, struct zp_sock *s, const struct sockaddr *sa, socklen_t len);
int zp_listen(int fd, struct zp_sock *s, int backlog);
int zp_accept(int fd, struct zp_sock *s, struct sockaddr *sa, socklen_t *len, int flags);
ssize_t zp_recv(struct zp_sock *s, const struct iovec *iov, int n, int flags);
ssize_t zp_send(struct zp_sock *s, const struct iovec *iov, int n, int flags);
int zp_shutdown(struct zp_sock *s, int how);
int zp_getsockopt(int fd, struct zp_sock *s, int level, int name, void *val, socklen_t *len);
int zp_name(struct zp_sock *s, bool peer, struct sockaddr *sa, socklen_t *len);
int zp_nread(struct zp_sock *s);
void zp_fork_child(void);
int zp_errno(int zc_rc); /* a zcrdma error as the errno TCP would give */

/* wait.c: the poll core every blocking call sleeps in; called unlocked. */
int zp_poll(struct pollfd *fds, nfds_t n, int timeout_ms, const sigset_t *mask);
int zp_select(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts, const sigset_t *mask);
int zp_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int zp_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout_ms, const sigset_t *mask);
/* Sleeps until cond(s) holds (called locked, returns locked); -EINTR on a
 * signal, -ETIMEDOUT after timeout_ms (-1: none). */
int zp_block(struct zp_sock *s, bool (*cond)(struct zp_sock *), int timeout_ms);
void zp_epoll_forget(struct zp_sock *s);
void zp_epoll_close(int epfd);

#endif
