/* The device behind a context: PD, CQ and its arming, event fd, the ring of
 * finished zero-copy operations, and progress over the CQ. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "dev.h"

int64_t zc__now_ms(void)
{
	return zc__now_ns() / 1000000;
}

int64_t zc__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* deadline < 0 means forever; returns a poll()-style timeout. */
int zc__remaining_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - zc__now_ms();
	return left > 0 ? (int)(left > 1000000 ? 1000000 : left) : 0;
}
static int set_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return zc__err(-errno, "fcntl(O_NONBLOCK): %s", strerror(errno));
	return 0;
}

int zc__resolve(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
	struct addrinfo hints = {.ai_flags = AI_NUMERICSERV}, *res;
	char serv[8];
	int rc;

	snprintf(serv, sizeof(serv), "%u", port);
	rc = getaddrinfo(host, serv, &hints, &res);
	if (rc)
		return zc__err(-EHOSTUNREACH, "cannot resolve '%s': %s", host, gai_strerror(rc));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

void zc__set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons(port);
}

static int query_caps(struct zc_ctx *ctx, uint8_t port_num)
{
	struct ibv_device_attr_ex attr;
	struct ibv_port_attr port;
	struct rlimit rl;
	bool soft_roce;

	if (ibv_query_device_ex(ctx->verbs, NULL, &attr))
		return zc__err(-errno, "ibv_query_device_ex: %s", strerror(errno));
	soft_roce = attr.orig_attr.vendor_id == 0xFFFFFF; /* rxe's vendor id */
	snprintf(ctx->caps.device, sizeof(ctx->caps.device), "%s", ibv_get_device_name(ctx->verbs->device));
	ctx->caps.max_sge = (uint32_t)attr.orig_attr.max_sge;
	ctx->caps.max_qp_rd_atom = (uint32_t)attr.orig_attr.max_qp_rd_atom;
	ctx->max_cqe = attr.orig_attr.max_cqe;
	ctx->max_srq_wr = (uint32_t)attr.orig_attr.max_srq_wr;
	ctx->caps.srq = attr.orig_attr.max_srq > 0 && attr.orig_attr.max_srq_wr > 0 && !ctx->opts.no_srq;
	ctx->caps.mw_type2 = !!(attr.orig_attr.device_cap_flags & (IBV_DEVICE_MEM_WINDOW_TYPE_2A |
								  IBV_DEVICE_MEM_WINDOW_TYPE_2B));
	/* Soft-RoCE (measured on Linux 6.1) re-executes a completed
	 * window bind when it retransmits an older request on the same QP; the
	 * second bind fails and takes the QP down. A bind posted on an idle
	 * send queue is retired before anything can be retransmitted. */
	ctx->bind_needs_idle_sq = soft_roce;
	/* rxe's provider copies the kernel's completion, whose "with
	 * invalidate" flag is 0x4 (IBV_WC_IP_CSUM_OK to other providers). */
	ctx->wc_inv_flags = IBV_WC_WITH_INV | (soft_roce ? 0x4 : 0);
	ctx->caps.max_msg_size = 1u << 31;
	if (!ibv_query_port(ctx->verbs, port_num ? port_num : 1, &port) &&
	    port.max_msg_sz)
		ctx->caps.max_msg_size = port.max_msg_sz;
	/* Rendezvous READ size: large enough to stream, small enough to
	 * pipeline. rxe renews a QP's retry budget only when a whole request
	 * completes and spends a try per lost response packet, so a 1 MiB READ
	 * (256 packets) dies at a few percent of loss; 64 KiB ones survive 5 %
	 * (test/rxe/lossy.sh). */
	ctx->read_chunk = soft_roce ? 64 << 10 : 1 << 20;
	if (ctx->read_chunk > ctx->caps.max_msg_size)
		ctx->read_chunk = ctx->caps.max_msg_size;
	/* Inline capacity is only known per QP; probe it once. 256 bytes
	 * carry a 64 B message and what control traffic needs, and keep
	 * rxe's send-queue entry (208 bytes + the inline room, rounded up to a
	 * power of two) at 512 bytes: 512 inline bytes would double the
	 * send queue every connection maps. */
	{
		struct ibv_cq *cq = ibv_create_cq(ctx->verbs, 2, NULL, NULL, 0);
		struct ibv_qp_init_attr qa = {.qp_type = IBV_QPT_RC,
					      .cap = {.max_send_wr = 1, .max_recv_wr = 1, .max_send_sge = 1,
						      .max_recv_sge = 1, .max_inline_data = 256}};
		struct ibv_qp *qp;

		qa.send_cq = qa.recv_cq = cq;
		qp = cq ? ibv_create_qp(ctx->pd, &qa) : NULL;
		if (!qp) {
			qa.cap.max_inline_data = 0;
			qp = cq ? ibv_create_qp(ctx->pd, &qa) : NULL;
		}
		ctx->caps.max_inline = qp ? qa.cap.max_inline_data : 0;
		if (qp)
			ibv_destroy_qp(qp);
		if (cq)
			ibv_destroy_cq(cq);
	}
	if (getrlimit(RLIMIT_MEMLOCK, &rl))
		return zc__err(-errno, "getrlimit(RLIMIT_MEMLOCK): %s", strerror(errno));
	ctx->caps.memlock_limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
	return 0;
}

/* What receive slots leave of the CQ bounds the sends in flight; the CQ
 * grows to keep that at least half of it (zc__ctx_reserve_cq). */
static void set_send_room(struct zc_ctx *ctx)
{
	ctx->cq_send_room = (uint32_t)(ctx->cq_size - ctx->cq_reserved);
}

int zc__dev_open(struct zc_ctx *ctx, const char *local_addr)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int rc;

	ctx->timer_fd = -1;
	ctx->cm_ch = rdma_create_event_channel();
	if (!ctx->cm_ch)
		return zc__err(-errno, "rdma_create_event_channel: %s (is rdma_ucm loaded?)", strerror(errno));
	/* One fd for the application: readable on CM events, the keepalive
	 * timer, and completions once there is a device. The underlying fds are
	 * non-blocking so progress never sleeps. */
	if ((rc = set_nonblocking(ctx->cm_ch->fd)))
		return rc;
	ctx->epfd = epoll_create1(EPOLL_CLOEXEC);
	ctx->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ctx->epfd < 0 || ctx->timer_fd < 0)
		return zc__err(-errno, "epoll/timerfd: %s", strerror(errno));
	{
		struct timespec res;

		/* how far the coarse clock may lag (zc__ctx_timer_maybe_due) */
		ctx->coarse_lag_ms = clock_getres(CLOCK_MONOTONIC_COARSE, &res) ? -1
				     : (int64_t)res.tv_sec * 1000 + res.tv_nsec / 1000000 + 1;
	}
	ev.data.fd = ctx->cm_ch->fd;
	if (epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, ctx->cm_ch->fd, &ev))
		return zc__err(-errno, "epoll: %s", strerror(errno));
	ev.data.fd = ctx->timer_fd;
	if (epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, ctx->timer_fd, &ev))
		return zc__err(-errno, "epoll: %s", strerror(errno));
	if (!local_addr)
		return 0;
	rc = zc__resolve(local_addr, 0, &ctx->local);
	if (rc)
		return rc;
	if (rdma_create_id(ctx->cm_ch, &ctx->bind_id, NULL, RDMA_PS_TCP))
		return zc__err(-errno, "rdma_create_id: %s", strerror(errno));
	if (rdma_bind_addr(ctx->bind_id, (struct sockaddr *)&ctx->local))
		return zc__err(-errno == -EADDRNOTAVAIL ? -EADDRNOTAVAIL : -errno,
			      "cannot bind %s: %s (is it configured on this host?)", local_addr, strerror(errno));
	if (!ctx->bind_id->verbs)
		return zc__err(-ENODEV, "%s is not the address of an RDMA device: check `rdma link` and `ibv_devices`",
			      local_addr);
	return zc__dev_attach(ctx, ctx->bind_id->verbs, ctx->bind_id->port_num);
}

/* Releases what zc__dev_attach() acquired, whatever it got to. */
static void dev_detach(struct zc_ctx *ctx)
{
	if (ctx->cq)
		ibv_destroy_cq(ctx->cq);
	if (ctx->comp_ch)
		ibv_destroy_comp_channel(ctx->comp_ch);
	if (ctx->pd)
		ibv_dealloc_pd(ctx->pd);
	free(ctx->done);
	ctx->cq = NULL;
	ctx->comp_ch = NULL;
	ctx->pd = NULL;
	ctx->done = NULL;
	ctx->verbs = NULL;
}

static int dev_attach(struct zc_ctx *ctx, struct ibv_context *verbs, uint8_t port_num)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int rc;

	ctx->verbs = verbs;
	if (!(ctx->pd = ibv_alloc_pd(ctx->verbs)))
		return zc__err(errno ? -errno : -ENOMEM, "ibv_alloc_pd on %s: %s", ibv_get_device_name(ctx->verbs->device),
			      strerror(errno));
	if (!(ctx->comp_ch = ibv_create_comp_channel(ctx->verbs)))
		return zc__err(errno ? -errno : -ENOMEM, "ibv_create_comp_channel: %s", strerror(errno));
	if (!(ctx->cq = ibv_create_cq(ctx->verbs, ctx->opts.cq_depth, ctx, ctx->comp_ch, 0)))
		return zc__err(errno ? -errno : -ENOMEM, "ibv_create_cq of %d entries on %s: %s (lower zc_ctx_opts.cq_depth?)",
			      ctx->opts.cq_depth, ibv_get_device_name(ctx->verbs->device), strerror(errno));
	rc = query_caps(ctx, port_num);
	if (rc)
		return rc;
	ctx->cq_size = ctx->cq->cqe;
	set_send_room(ctx);
	ctx->done_cap = (unsigned)ctx->opts.cq_depth;
	ctx->done = calloc(ctx->done_cap, sizeof(*ctx->done));
	if (!ctx->done)
		return zc__err(-ENOMEM, "zc_ctx_new: out of memory for the completion ring");
	if ((rc = set_nonblocking(ctx->comp_ch->fd)))
		return rc;
	ev.data.fd = ctx->comp_ch->fd;
	if (epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, ctx->comp_ch->fd, &ev))
		return zc__err(-errno, "epoll: %s", strerror(errno));
	if (ibv_req_notify_cq(ctx->cq, 0) == 0)
		ctx->cq_armed = true;
	return 0;
}

int zc__dev_attach(struct zc_ctx *ctx, struct ibv_context *verbs, uint8_t port_num)
{
	int rc = dev_attach(ctx, verbs, port_num);

	if (rc)
		dev_detach(ctx);
	return rc;
}

/* Releases what zc__dev_open() acquired, whatever it got to. */
void zc__dev_close(struct zc_ctx *ctx)
{
	dev_detach(ctx);
	if (ctx->bind_id)
		rdma_destroy_id(ctx->bind_id);
	if (ctx->cm_ch)
		rdma_destroy_event_channel(ctx->cm_ch);
	if (ctx->epfd >= 0)
		close(ctx->epfd);
	if (ctx->timer_fd >= 0)
		close(ctx->timer_fd);
}

int zc__ctx_reserve_cq(struct zc_ctx *ctx, int entries)
{
	int need = 2 * (ctx->cq_reserved + entries);

	if (need > ctx->cq_size) {
		int size = need > ctx->max_cqe ? ctx->max_cqe : need;

		if (size < need / 2 + 64 || ibv_resize_cq(ctx->cq, size))
			return zc__err(-ENOSPC, "the context's completion queue (%d entries, %d at most on %s) has "
						 "no room for %d more receive slots: use fewer connections, fewer credits "
						 "per connection, or the shared receive queue (zc_ctx_opts.no_srq 0)",
				      ctx->cq_size, ctx->max_cqe, ctx->caps.device, entries);
		/* The provider may round up: its figure is the size. */
		ctx->cq_size = ctx->cq->cqe;
	}
	ctx->cq_reserved += entries;
	set_send_room(ctx);
	return 0;
}

void zc__ctx_release_cq(struct zc_ctx *ctx, int entries)
{
	ctx->cq_reserved -= entries;
	set_send_room(ctx);
}

/* Whether one more zero-copy operation fits the completion ring. */
int zc__ctx_room(struct zc_ctx *ctx)
{
	if (ctx->zc_outstanding >= ctx->done_cap)
		return zc__err(-EAGAIN, "%u zero-copy operations outstanding: reap completions with zc_poll()",
			      ctx->zc_outstanding);
	return 0;
}

void zc__ctx_submitted(struct zc_ctx *ctx)
{
	ctx->zc_outstanding++;
}

int zc__ctx_reap(struct zc_ctx *ctx, struct zc_completion *comps, int max)
{
	int n = 0;

	while (n < max && ctx->done_count) {
		comps[n++] = ctx->done[ctx->done_head];
		ctx->done_head = (ctx->done_head + 1) % ctx->done_cap;
		ctx->done_count--;
		ctx->zc_outstanding--;
	}
	return n;
}

struct zc_completion *zc__ctx_complete(struct zc_ctx *ctx, struct zc_conn *conn, uint64_t token, int op, int status,
				       size_t len)
{
	struct zc_completion *c;

	/* Submissions are bounded by done_cap, so the ring cannot overflow. */
	c = &ctx->done[(ctx->done_head + ctx->done_count) % ctx->done_cap];
	*c = (struct zc_completion){.conn = conn, .token = token, .op = op, .status = status,
				    .len = len};
	ctx->done_count++;
	return c;
}

void zc__ctx_forget_conn(struct zc_ctx *ctx, const struct zc_conn *conn, void *data)
{
	unsigned i;

	for (i = 0; i < ctx->done_count; i++) {
		struct zc_completion *c = &ctx->done[(ctx->done_head + i) % ctx->done_cap];

		if (c->conn == conn) {
			c->conn = NULL;
			c->data = data;
		}
	}
}

/* Returns how many completions were handled. Failures their continuations
 * find belong to other calls than the caller's (see error.h). */
int zc__ctx_poll_cq(struct zc_ctx *ctx)
{
	struct ibv_wc wc[32];
	int n, i, total = 0;

	if (!ctx->cq)
		return 0; /* no device yet (zc__dev_open) */
	zc__err_progress_begin();
	if (!zc__list_empty(&ctx->held))
		ctx->held_hook(ctx);
	while ((n = ibv_poll_cq(ctx->cq, 32, wc)) > 0) {
		for (i = 0; i < n; i++) {
			struct zc__wr *wr = (struct zc__wr *)(uintptr_t)wc[i].wr_id;

			wr->done(wr, &wc[i]);
		}
		total += n;
		ctx->stats.completions += (uint64_t)n;
		if (n < 32)
			break;
	}
	zc__err_progress_end();
	if (total && ctx->cq_armed)
		ctx->cq_fired = true;
	return total;
}

/* Completions first. The CM channel costs a system call to look at, so the
 * data path checks it only when the CQ is idle, and then only every 64th
 * time; zc__ctx_wait() always checks before sleeping. */
int zc__ctx_progress(struct zc_ctx *ctx)
{
	int total = zc__ctx_poll_cq(ctx);

	/* CM events count as progress, or a busy wait for a connection
	 * (busy_poll_us < 0) would spin out its whole timeout. */
	if (total == 0 && (++ctx->idle_polls & 63) == 0)
		total = ctx->cm_hook(ctx);
	return total;
}

int zc__ctx_progress_all(struct zc_ctx *ctx)
{
	int total = zc__ctx_poll_cq(ctx);

	return total + ctx->cm_hook(ctx);
}

static void drain_cq_events(struct zc_ctx *ctx)
{
	struct ibv_cq *cq;
	void *cq_ctx;

	while (ctx->comp_ch && ibv_get_cq_event(ctx->comp_ch, &cq, &cq_ctx) == 0) {
		ibv_ack_cq_events(cq, 1);
		ctx->cq_armed = ctx->cq_fired = false;
	}
}

/*
 * Called before the library sleeps or tells the application "nothing yet":
 * afterwards the context's fd becomes readable when anything new happens.
 * Consumes a fired event, re-arms, and polls once more for completions that
 * landed before the arm. An event still on its way keeps cq_fired set, so
 * the call after the wake-up consumes it. Returns the events handled.
 * CM events need no arming (the channel's fd in the set is level-triggered:
 * one pending keeps the fd readable), so this looks at them only as
 * zc__ctx_progress() does: a ZC_DONTWAIT call answering -EAGAIN costs no
 * system call while the CQ stays armed. zc_wait_events() and zc_poll()
 * look at them on every call.
 */
int zc__ctx_rearm(struct zc_ctx *ctx)
{
	if (ctx->cq_fired)
		drain_cq_events(ctx);
	if (ctx->cq && !ctx->cq_armed && ibv_req_notify_cq(ctx->cq, 0) == 0)
		ctx->cq_armed = true;
	return zc__ctx_progress(ctx);
}

void zc__ctx_timer_at(struct zc_ctx *ctx, int64_t due)
{
	struct itimerspec its = {.it_value = {.tv_sec = due / 1000, .tv_nsec = due % 1000 * 1000000}};

	if (due <= 0 || (ctx->timer_due && ctx->timer_due <= due))
		return;
	/* zc__now_ms() reads CLOCK_MONOTONIC, the timer's clock */
	if (timerfd_settime(ctx->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		ctx->timer_due = due;
}

/* The precise clock is a system call where the TSC is not trusted (a TCG
 * guest reads the HPET); the coarse one comes from the vDSO everywhere and
 * lags it by at most its resolution. Pushed ahead by that lag it is never
 * behind zc__now_ms() and at most a tick ahead; -1 where there is none. */
static int64_t coarse_bound_ms(const struct zc_ctx *ctx)
{
	struct timespec ts;

	if (ctx->coarse_lag_ms < 0 || clock_gettime(CLOCK_MONOTONIC_COARSE, &ts))
		return -1;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + ctx->coarse_lag_ms;
}

/* Enough to tell a timer that cannot be due yet. */
bool zc__ctx_timer_maybe_due(const struct zc_ctx *ctx)
{
	int64_t now;

	if (ctx->timer_fired)
		return true;
	if (!ctx->timer_due)
		return false;
	now = coarse_bound_ms(ctx);
	return now < 0 || now >= ctx->timer_due;
}

/* Returns whether it fired (its users then arm it again for what they
 * still wait for). */
bool zc__ctx_timer_check(struct zc_ctx *ctx, int64_t now)
{
	struct itimerspec off = {{0, 0}, {0, 0}};
	uint64_t expirations;

	if (!ctx->timer_due || now < ctx->timer_due)
		return false;
	/* Consumed, or the fd would stay readable; one not expired yet (a
	 * clock read a hair early) is disarmed instead. */
	if (read(ctx->timer_fd, &expirations, sizeof(expirations)) < 0)
		timerfd_settime(ctx->timer_fd, 0, &off, NULL);
	ctx->timer_due = 0;
	return true;
}

/* The loop of both waits below, rc being what the first look found, and
 * left (or -1) the first wait's bound when the caller knows it without a
 * clock read. */
static int wait_loop(struct zc_ctx *ctx, int (*cond)(void *arg), void *arg, int64_t deadline, int rc, int left)
{
	for (;; rc = cond(arg), left = -1) {
		if (rc)
			return rc;
		if (deadline == ZC__NOWAIT)
			return zc__ctx_rearm(ctx) && (rc = cond(arg)) ? rc : -EAGAIN;
		if (left < 0)
			left = zc__remaining_ms(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		/* Short slices: a caller's cond may also probe quiet peers. */
		zc__ctx_wait(ctx, left < 0 || left > 100 ? 100 : left);
	}
}

int zc__ctx_wait_for(struct zc_ctx *ctx, int (*cond)(void *arg), void *arg, int64_t deadline)
{
	return wait_loop(ctx, cond, arg, deadline, cond(arg), -1);
}

/* A long timeout's deadline starts from coarse_bound_ms(): never early, at
 * most a tick (under 5 %) late; the first wait needs no other clock read,
 * and most end with progress. */
int zc__ctx_wait_ms(struct zc_ctx *ctx, int (*cond)(void *arg), void *arg, int timeout_ms)
{
	int rc = cond(arg);
	int64_t now;

	if (rc || timeout_ms == 0)
		return wait_loop(ctx, cond, arg, ZC__NOWAIT, rc, -1);
	if (timeout_ms < 0)
		return wait_loop(ctx, cond, arg, -1, rc, -1);
	if (ctx->coarse_lag_ms > 0 && timeout_ms >= 20 * ctx->coarse_lag_ms && timeout_ms <= 1 << 30 &&
	    (now = coarse_bound_ms(ctx)) >= 0)
		return wait_loop(ctx, cond, arg, now + timeout_ms, rc, timeout_ms + (int)ctx->coarse_lag_ms);
	return wait_loop(ctx, cond, arg, zc__now_ms() + timeout_ms, rc, timeout_ms);
}

/* Waits until something may have happened: spins for busy_poll_us, then
 * sleeps on the event fd. */
int zc__ctx_wait(struct zc_ctx *ctx, int timeout_ms)
{
	struct epoll_event ev[3];
	bool never_sleep = ctx->opts.busy_poll_us < 0;
	int64_t spin_us = ctx->opts.busy_poll_us, start;
	int n, i;

	/* A spin longer than the timeout ends with it, and then no sleep
	 * follows: a call given 1 ms must not spin a 100 ms busy_poll_us.
	 * Never sleeping, the spin lasts the timeout (without end if none). */
	if (never_sleep || (timeout_ms >= 0 && spin_us > (int64_t)timeout_ms * 1000)) {
		spin_us = (int64_t)timeout_ms * 1000;
		never_sleep = true;
	}

	/* Spin for busy_poll_us, or (busy_poll_us < 0) for the whole timeout
	 * without ever sleeping; a negative timeout then spins until progress.
	 * The clock is read every 32 polls, the first time after 32: where the
	 * TSC is not trusted (a TCG guest) clock_gettime is a system call
	 * reading the HPET, which cost more than the polls themselves (17 % of
	 * a 4 KiB stream run), and most waits end within a few polls. Timing
	 * long spins with the coarse clock (vDSO) instead was tried: it made
	 * one-at-a-time rendezvous (blocking stream sends of 64 KiB) a fifth
	 * slower in the same boot, as if those system calls were where the
	 * spinner let rxe's deferred work run (docs/benchmarks.md). */
	if (spin_us != 0) {
		unsigned polls = 0;

		start = -1;
		for (;;) {
			if (zc__ctx_progress(ctx))
				return 1;
			if (spin_us < 0 || (++polls & 31))
				continue;
			if (start < 0)
				start = zc__now_ns() / 1000;
			else if (zc__now_ns() / 1000 - start >= spin_us)
				break;
		}
	}
	if (never_sleep)
		return zc__ctx_progress_all(ctx) > 0;
	if (zc__ctx_rearm(ctx))
		return 1;
	n = epoll_wait(ctx->epfd, ev, 3, timeout_ms);
	if (n > 0)
		drain_cq_events(ctx);
	for (i = 0; i < n; i++)
		if (ev[i].data.fd == ctx->timer_fd && zc__ctx_timer_check(ctx, ctx->timer_due))
			ctx->timer_fired = true; /* for the next look (zc__ctx_timer_maybe_due) */
	return zc__ctx_progress_all(ctx) > 0 || n > 0;
}
