/*
 * Readiness: poll/ppoll/select/pselect/epoll over kernel fds and zcrdma
 * sockets in one call, with no helper thread.
 *
 * A zcrdma socket's kernel fd is a placeholder whose own readiness means
 * nothing, so it is left out of the kernel's wait and its readiness comes
 * from the library's events instead (sock.c, zp_ready()); the contexts'
 * event fds are waited on beside the application's kernel fds, and a
 * wake-up on one of them only makes progress and looks again. A listener
 * is both: its kernel fd (plain TCP clients) and its zcrdma backlog.
 *
 * epoll: registrations of tracked sockets are kept here (struct zp_reg) as
 * well as, while the socket uses its kernel fd, in the kernel's set; before
 * each wait they are moved to match the socket's path (a connect that fell
 * back to TCP joins the kernel's set). Edge-triggered zcrdma registrations
 * report a rising readiness bit, and a bit falls whenever the socket
 * returned EAGAIN for it, as the kernel re-arms an edge then.
 *
 * Like the library's blocking calls (zc_ctx_opts.busy_poll_us), a wait
 * first polls without sleeping for ZCRDMA_PRELOAD_SPIN_US (default 100 us):
 * a reply that comes within it skips the event fd's wake-up, which on rxe
 * costs more than the message itself. Its looks make no system call: the
 * library's events are taken without preparing the contexts' fds (that is
 * done once, right before a sleep), and the kernel's fds are polled on the
 * first look and every 32nd (on rxe a system call costs about as much as
 * the message, and two per look made ping-pongs twice the library's).
 *
 * Sleeps are cut into ZP_SLICE_MS slices: in a threaded program another
 * thread may consume a context event that concerns this wait while it
 * sleeps; the next slice looks again. Single-threaded programs never
 * depend on it (their waits end on the event fd).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "preload.h"

#define ZP_SLICE_MS 50
#define ZP_MAX_CTXFD 16
#define ZP_MARK 0x7a63726d61707265ULL /* epoll data of the contexts' event fds */

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The next sleep: 0 if something is ready, else up to the deadline (-1: none), in slices. */
static int slice(int ready, int64_t deadline)
{
	int64_t left;

	if (ready)
		return 0;
	left = deadline < 0 ? ZP_SLICE_MS : deadline - now_ms();
	return left < 0 ? 0 : left > ZP_SLICE_MS ? ZP_SLICE_MS : (int)left;
}

static int64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* A wait's busy-polling phase: ZCRDMA_PRELOAD_SPIN_US (default 100 us).
 * As in the library's own waits (zc__ctx_wait), the clock is read every
 * 32 looks, the first time after 32: in a TCG guest clock_gettime is a
 * system call reading the HPET, dearer than a look, and read on every
 * look it cut a 100 us spin to a few looks, so a reply that came a little
 * later found the wait asleep (sockperf ping-pong 2x the library's). */
struct spin {
	int64_t start;
	unsigned looks;
};

/* Whether the wait should look again without sleeping. */
static bool spinning(struct spin *sp)
{
	if (zp_conf.spin_us == 0 || sp->start == INT64_MAX)
		return false;
	if (++sp->looks & 31)
		return true;
	if (!sp->start)
		sp->start = now_us();
	else if (now_us() - sp->start >= zp_conf.spin_us)
		sp->start = INT64_MAX;
	return sp->start != INT64_MAX;
}

static bool expired(int64_t deadline)
{
	return deadline >= 0 && now_ms() >= deadline;
}

/*
 * Signals. A kernel wait returns EINTR when a handler runs during it. A
 * wait here spins and sleeps in slices with work in between, and a handler
 * that ran in between went unnoticed while the wait slept on (a signalled
 * nginx never left epoll_wait). So a wait that may block keeps signals
 * blocked from its start, except inside its kernel waits, which take the
 * mask it began with (or the caller's, for ppoll/pselect/epoll_pwait): a
 * signal then interrupts the first kernel wait after it came, or, if the
 * call returns first, is delivered as it returns, as right after a kernel
 * wait. The price is two system calls per call that may block.
 */
struct sig_hold {
	bool held;
	sigset_t old;
};

static void hold_signals(struct sig_hold *h, int timeout_ms)
{
	sigset_t all;

	if (timeout_ms == 0)
		return;
	sigfillset(&all);
	h->held = pthread_sigmask(SIG_BLOCK, &all, &h->old) == 0;
}

/* The mask for a kernel wait: the caller's, else the one the wait began with. */
static const sigset_t *sleep_mask(const struct sig_hold *h, const sigset_t *mask)
{
	return mask || !h->held ? mask : &h->old;
}

/* pthread_sigmask returns its error, so errno is kept for the caller. */
static void restore_signals(struct sig_hold *h)
{
	if (h->held)
		pthread_sigmask(SIG_SETMASK, &h->old, NULL);
	h->held = false;
}

int zp_block(struct zp_sock *s, bool (*cond)(struct zp_sock *), int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	struct spin sp = {0};
	struct sig_hold sh = {0};
	int rc;

	hold_signals(&sh, timeout_ms);
	for (;;) {
		struct pollfd p[ZP_MAX_CTXFD];
		int fds[ZP_MAX_CTXFD], n, r, ms;

		zp_progress();
		if (cond(s)) {
			rc = 0;
			break;
		}
		if (spinning(&sp))
			continue;
		if (expired(deadline)) {
			rc = -ETIMEDOUT;
			break;
		}
		zp_progress_before_sleep();
		if (cond(s)) {
			rc = 0;
			break;
		}
		ms = slice(0, deadline);
		n = zp_ctx_fds(fds, ZP_MAX_CTXFD);
		for (int i = 0; i < n; i++)
			p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
		zp_unlock();
		r = zp_real.ppoll(p, (nfds_t)n, &(struct timespec){0, ms * 1000000L}, sleep_mask(&sh, NULL));
		zp_lock();
		if (r < 0 && errno == EINTR) {
			rc = -EINTR;
			break;
		}
	}
	restore_signals(&sh);
	return rc;
}

/* What a wait does after a look that found ready things: -1 look again at
 * once (a spinning look; the kernel's fds are polled on the first and every
 * 32nd), else poll the kernel for that many ms, the contexts' fds prepared
 * if that sleeps (the caller then looks once more). */
static int next_step(struct spin *sp, int ready, int64_t deadline)
{
	int ms;

	if (ready)
		return 0;
	if (spinning(sp))
		return sp->looks % 32 == 1 ? 0 : -1;
	if ((ms = slice(0, deadline)) > 0)
		zp_progress_before_sleep();
	return ms;
}

/* zcrdma readiness of fds into zr, and the kernel's share of them into k
 * (fd -1 where the socket does not use its kernel fd); how many are ready. */
static int scan(const struct pollfd *fds, nfds_t n, struct pollfd *k, short *zr)
{
	int ready = 0;

	for (nfds_t i = 0; i < n; i++) {
		struct zp_sock *s = zp_get_locked(fds[i].fd);

		k[i] = fds[i];
		zr[i] = 0;
		if (!s || s->state == ZP_FRESH || s->state == ZP_TCP)
			continue;
		zr[i] = zp_ready(s) & (fds[i].events | POLLERR | POLLHUP);
		ready += zr[i] != 0;
		if (!zp_uses_kernel_fd(s))
			k[i].fd = -1;
	}
	return ready;
}

/* Kernel fds and zcrdma readiness together; fds[i].revents as poll(2). */
int zp_poll(struct pollfd *fds, nfds_t n, int timeout_ms, const sigset_t *mask)
{
	struct pollfd *k = malloc((n + ZP_MAX_CTXFD) * sizeof(*k));
	short *zr = malloc((n ? n : 1) * sizeof(*zr));
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	struct spin sp = {0};
	struct sig_hold sh = {0};
	int count = -1;

	if (!k || !zr) {
		free(k);
		free(zr);
		return zp_fail(ENOMEM);
	}
	hold_signals(&sh, timeout_ms);
	for (;;) {
		int ctxfd[ZP_MAX_CTXFD], nc, ms, r;

		zp_lock();
		zp_progress();
		if ((ms = next_step(&sp, scan(fds, n, k, zr), deadline)) < 0) {
			zp_unlock();
			continue;
		}
		if (ms > 0 && scan(fds, n, k, zr))
			ms = 0;
		nc = zp_ctx_fds(ctxfd, ZP_MAX_CTXFD);
		for (int i = 0; i < nc; i++)
			k[n + i] = (struct pollfd){.fd = ctxfd[i], .events = POLLIN};
		zp_unlock();
		r = zp_real.ppoll(k, n + (nfds_t)nc, &(struct timespec){ms / 1000, (ms % 1000) * 1000000L},
				  sleep_mask(&sh, mask));
		if (r < 0)
			break;
		count = 0;
		for (nfds_t i = 0; i < n; i++) {
			fds[i].revents = (short)((fds[i].fd >= 0 && k[i].fd >= 0 ? k[i].revents : 0) | zr[i]);
			count += fds[i].revents != 0;
		}
		if (count || expired(deadline))
			break;
	}
	restore_signals(&sh);
	free(k);
	free(zr);
	return count;
}

int zp_select(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts, const sigset_t *mask)
{
	struct pollfd *p;
	int n = 0, count = 0, rc;

	if (!zp_any_tracked() || nfds <= 0)
		return zp_real.pselect(nfds, r, w, e, ts, mask);
	if (!(p = malloc((size_t)nfds * sizeof(*p))))
		return zp_fail(ENOMEM);
	for (int fd = 0; fd < nfds; fd++) {
		short ev = (short)((r && FD_ISSET(fd, r) ? POLLIN : 0) | (w && FD_ISSET(fd, w) ? POLLOUT : 0) |
				   (e && FD_ISSET(fd, e) ? POLLPRI : 0));

		if (ev)
			p[n++] = (struct pollfd){.fd = fd, .events = ev};
	}
	rc = zp_poll(p, (nfds_t)n, ts ? (int)(ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000) : -1, mask);
	if (rc >= 0) {
		for (int i = 0; i < n; i++) {
			short re = p[i].revents;

			if (re & POLLNVAL) {
				free(p);
				return zp_fail(EBADF);
			}
			if (r && FD_ISSET(p[i].fd, r) && !(re & (POLLIN | POLLHUP | POLLERR) && ++count))
				FD_CLR(p[i].fd, r);
			if (w && FD_ISSET(p[i].fd, w) && !(re & (POLLOUT | POLLERR) && ++count))
				FD_CLR(p[i].fd, w);
			if (e && FD_ISSET(p[i].fd, e) && !(re & POLLPRI && ++count))
				FD_CLR(p[i].fd, e);
		}
		rc = count;
	}
	free(p);
	return rc;
}

/* --- epoll --------------------------------------------------------- */

struct zp_reg {
	int fd;
	struct zp_sock *s;
	struct epoll_event ev;
	bool in_kernel; /* also in the kernel's set (the socket uses its fd) */
	bool disabled;  /* EPOLLONESHOT fired */
	uint32_t last;  /* EPOLLET: bits reported and not fallen since */
	unsigned rd_gen, wr_gen;
};

struct zp_epset {
	int epfd;
	struct zp_reg *regs;
	int n, cap;
	int ctxfd[ZP_MAX_CTXFD];
	int nctxfd;
	struct zp_epset *next;
};

static struct zp_epset *sets;

static struct zp_epset *set_find(int epfd)
{
	for (struct zp_epset *e = sets; e; e = e->next)
		if (e->epfd == epfd)
			return e;
	return NULL;
}

static struct zp_reg *reg_find(struct zp_epset *e, int fd)
{
	for (int i = 0; i < e->n; i++)
		if (e->regs[i].fd == fd)
			return &e->regs[i];
	return NULL;
}

static int reg_add(int epfd, int fd, struct zp_sock *s, struct epoll_event *ev)
{
	struct zp_epset *e = set_find(epfd);
	bool in_kernel = zp_uses_kernel_fd(s);

	if (!e) {
		if (!(e = calloc(1, sizeof(*e))))
			return zp_fail(ENOMEM);
		e->epfd = epfd;
		e->next = sets;
		sets = e;
	}
	if (reg_find(e, fd))
		return zp_fail(EEXIST);
	if (e->n == e->cap) {
		int cap = e->cap ? 2 * e->cap : 16;
		struct zp_reg *n = realloc(e->regs, (size_t)cap * sizeof(*n));

		if (!n)
			return zp_fail(ENOMEM);
		e->regs = n;
		e->cap = cap;
	}
	if (in_kernel && zp_real.epoll_ctl(epfd, EPOLL_CTL_ADD, fd, ev))
		return -1;
	e->regs[e->n++] = (struct zp_reg){.fd = fd, .s = s, .ev = *ev, .in_kernel = in_kernel};
	return 0;
}

static void reg_del(struct zp_epset *e, struct zp_reg *r)
{
	*r = e->regs[--e->n];
}

int zp_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	struct zp_sock *s = zp_get(fd);
	struct zp_epset *e;
	struct zp_reg *r;
	int rc = 0;

	if (!s)
		return zp_real.epoll_ctl(epfd, op, fd, ev);
	zp_lock();
	e = set_find(epfd);
	r = e ? reg_find(e, fd) : NULL;
	if (op == EPOLL_CTL_ADD) {
		rc = ev ? reg_add(epfd, fd, s, ev) : zp_fail(EFAULT);
	} else if (!r) {
		rc = zp_fail(ENOENT);
	} else if (op == EPOLL_CTL_MOD) {
		rc = r->in_kernel ? zp_real.epoll_ctl(epfd, op, fd, ev) : 0;
		if (!rc) {
			r->ev = *ev;
			r->disabled = false;
			r->last = 0;
		}
	} else if (op == EPOLL_CTL_DEL) {
		if (r->in_kernel)
			zp_real.epoll_ctl(epfd, op, fd, ev);
		reg_del(e, r);
	} else {
		rc = zp_fail(EINVAL);
	}
	zp_unlock();
	return rc;
}

/* Puts each registration where its socket's path is, and the contexts'
 * event fds in the kernel's set. */
static void sync_set(struct zp_epset *e)
{
	int fds[ZP_MAX_CTXFD], n = zp_ctx_fds(fds, ZP_MAX_CTXFD);

	for (int i = 0; i < e->n; i++) {
		struct zp_reg *r = &e->regs[i];
		bool want = zp_uses_kernel_fd(r->s);

		if (want == r->in_kernel)
			continue;
		zp_real.epoll_ctl(e->epfd, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, r->fd, &r->ev);
		r->in_kernel = want;
	}
	for (int i = e->nctxfd; i < n; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ZP_MARK};

		zp_real.epoll_ctl(e->epfd, EPOLL_CTL_ADD, fds[i], &ev);
		e->ctxfd[e->nctxfd++] = fds[i];
	}
}

/* What a zcrdma registration reports now (0: nothing). */
static uint32_t reg_ready(struct zp_reg *r)
{
	uint32_t bits;

	if (r->disabled || (r->in_kernel && r->s->state != ZP_LISTEN))
		return 0;
	bits = (uint32_t)zp_ready(r->s) & (r->ev.events | EPOLLERR | EPOLLHUP);
	if (r->ev.events & EPOLLET) {
		if (r->rd_gen != r->s->rd_gen)
			r->last &= ~(uint32_t)(EPOLLIN | EPOLLRDNORM);
		if (r->wr_gen != r->s->wr_gen)
			r->last &= ~(uint32_t)(EPOLLOUT | EPOLLWRNORM);
		r->rd_gen = r->s->rd_gen;
		r->wr_gen = r->s->wr_gen;
		bits &= ~r->last;
		r->last |= bits;
	}
	if (bits && (r->ev.events & EPOLLONESHOT))
		r->disabled = true;
	return bits;
}

/* The zcrdma registrations of e that are ready, into evs; how many. */
static int epoll_scan(struct zp_epset *e, struct epoll_event *evs, int max)
{
	int k = 0;

	for (int i = 0; i < e->n && k < max; i++) {
		uint32_t bits = reg_ready(&e->regs[i]);

		if (bits)
			evs[k++] = (struct epoll_event){.events = bits, .data = e->regs[i].ev.data};
	}
	return k;
}

int zp_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout_ms, const sigset_t *mask)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	struct spin sp = {0};
	struct sig_hold sh = {0};
	struct zp_epset *e;
	int ret;

	if (!zp_any_tracked())
		return zp_real.epoll_pwait(epfd, evs, max, timeout_ms, mask);
	zp_lock();
	e = set_find(epfd);
	zp_unlock();
	if (!e || max <= 0)
		return zp_real.epoll_pwait(epfd, evs, max, timeout_ms, mask);
	hold_signals(&sh, timeout_ms);
	for (;;) {
		int k, n, m, ms;

		zp_lock();
		zp_progress();
		if (!(e = set_find(epfd))) {
			zp_unlock();
			restore_signals(&sh);
			return zp_real.epoll_pwait(epfd, evs, max, timeout_ms, mask);
		}
		sync_set(e);
		k = epoll_scan(e, evs, max);
		if ((ms = next_step(&sp, k, deadline)) < 0) {
			zp_unlock();
			continue;
		}
		if (ms > 0 && (k = epoll_scan(e, evs, max)))
			ms = 0;
		zp_unlock();
		n = zp_real.epoll_pwait(epfd, evs + k, max - k, ms, sleep_mask(&sh, mask));
		if (n < 0) {
			ret = k ? k : -1;
			break;
		}
		m = k;
		for (int i = k; i < k + n; i++)
			if (evs[i].data.u64 != ZP_MARK)
				evs[m++] = evs[i];
		if (m || expired(deadline)) {
			ret = m;
			break;
		}
	}
	restore_signals(&sh);
	return ret;
}

void zp_epoll_forget(struct zp_sock *s)
{
	for (struct zp_epset *e = sets; e; e = e->next)
		for (int i = e->n - 1; i >= 0; i--)
			if (e->regs[i].s == s)
				reg_del(e, &e->regs[i]);
}

void zp_epoll_close(int epfd)
{
	for (struct zp_epset **p = &sets; *p; p = &(*p)->next) {
		struct zp_epset *e = *p;

		if (e->epfd == epfd) {
			*p = e->next;
			free(e->regs);
			free(e);
			return;
		}
	}
}
