/* Contexts: the device behind a local address, its PD, CQ, event fd, progress. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "zc_internal.h"

int64_t zc_now_ms(void)
{
	return zc_now_ns() / 1000000;
}

int64_t zc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* deadline < 0 means forever; returns a poll()-style timeout. */
int zc_remaining_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - zc_now_ms();
	return left > 0 ? (int)(left > 1000000 ? 1000000 : left) : 0;
}

void zc_ctx_opts_init(struct zc_ctx_opts *o)
{
	if (!o)
		return;
	*o = (struct zc_ctx_opts){.cq_depth = 8192, .busy_poll_us = 100, .rcache_entries = 256,
				  .rcache_bytes = 1ul << 30, .log_level = ZC_LOG_WARN};
}

static int set_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return zc_err(-errno, "fcntl(O_NONBLOCK): %s", strerror(errno));
	return 0;
}

int zc_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
	struct addrinfo hints = {.ai_flags = AI_NUMERICSERV}, *res;
	char serv[8];
	int rc;

	snprintf(serv, sizeof(serv), "%u", port);
	rc = getaddrinfo(host, serv, &hints, &res);
	if (rc)
		return zc_err(-EHOSTUNREACH, "cannot resolve '%s': %s", host, gai_strerror(rc));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static void *rcache_reg(void *arg, void *addr, size_t len, int *err)
{
	struct zc_ctx *ctx = arg;
	struct zc_reg *reg = malloc(sizeof(*reg));

	if (!reg) {
		*err = zc_err(-ENOMEM, "out of memory");
		return NULL;
	}
	reg->mr = zc_reg_local(ctx, addr, len, &reg->ibv_access, err);
	if (!reg->mr) {
		free(reg);
		return NULL;
	}
	return reg;
}

static void rcache_dereg(void *arg, void *handle)
{
	struct zc_reg *reg = handle;

	zc_dereg_mr(arg, reg->mr);
	free(reg);
}

static int query_caps(struct zc_ctx *ctx)
{
	struct ibv_device_attr_ex attr;
	struct ibv_port_attr port;
	struct rlimit rl;
	bool soft_roce;

	if (ibv_query_device_ex(ctx->verbs, NULL, &attr))
		return zc_err(-errno, "ibv_query_device_ex: %s", strerror(errno));
	soft_roce = attr.orig_attr.vendor_id == 0xFFFFFF; /* rxe's vendor id */
	snprintf(ctx->caps.device, sizeof(ctx->caps.device), "%s", ibv_get_device_name(ctx->verbs->device));
	ctx->caps.max_sge = (uint32_t)attr.orig_attr.max_sge;
	ctx->caps.max_qp_rd_atom = (uint32_t)attr.orig_attr.max_qp_rd_atom;
	ctx->caps.mw_type2 = !!(attr.orig_attr.device_cap_flags & (IBV_DEVICE_MEM_WINDOW_TYPE_2A |
								  IBV_DEVICE_MEM_WINDOW_TYPE_2B));
	/* Soft-RoCE (measured on Linux 6.1) re-executes a completed
	 * window bind when it retransmits an older request on the same QP; the
	 * second bind fails and takes the QP down. A bind posted on an idle
	 * send queue is retired before anything can be retransmitted. */
	ctx->bind_needs_idle_sq = soft_roce;
	ctx->caps.max_msg_size = 1u << 31;
	if (!ibv_query_port(ctx->verbs, ctx->bind_id->port_num ? ctx->bind_id->port_num : 1, &port) &&
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
	/* Inline capacity is only known per QP; probe it once. */
	{
		struct ibv_cq *cq = ibv_create_cq(ctx->verbs, 2, NULL, NULL, 0);
		struct ibv_qp_init_attr qa = {.qp_type = IBV_QPT_RC,
					      .cap = {.max_send_wr = 1, .max_recv_wr = 1, .max_send_sge = 1,
						      .max_recv_sge = 1, .max_inline_data = 512}};
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
		return zc_err(-errno, "getrlimit(RLIMIT_MEMLOCK): %s", strerror(errno));
	ctx->caps.memlock_limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
	return 0;
}

int zc_ctx_new(const char *local_addr, const struct zc_ctx_opts *opts, struct zc_ctx **out)
{
	struct zc_rcache_ops ops = {.reg = rcache_reg, .dereg = rcache_dereg};
	struct epoll_event ev = {.events = EPOLLIN};
	struct zc_ctx *ctx;
	int rc;

	if (!local_addr || !out)
		return zc_err(-EINVAL, "zc_ctx_new: local address and output pointer are required");
	if (opts && (opts->cq_depth < 64 || opts->rcache_entries < 1 || opts->rcache_bytes < 1))
		return zc_err(-EINVAL, "zc_ctx_new: cq_depth must be >= 64 and the cache bounds >= 1");
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return zc_err(-ENOMEM, "zc_ctx_new: out of memory");
	ctx->epfd = -1;
	zc_list_init(&ctx->conns);
	zc_list_init(&ctx->listeners);
	if (opts)
		ctx->opts = *opts;
	else
		zc_ctx_opts_init(&ctx->opts);

	rc = zc_resolve(local_addr, 0, &ctx->local);
	if (rc)
		goto err;
	ctx->cm_ch = rdma_create_event_channel();
	if (!ctx->cm_ch) {
		rc = zc_err(-errno, "rdma_create_event_channel: %s (is rdma_ucm loaded?)", strerror(errno));
		goto err;
	}
	if (rdma_create_id(ctx->cm_ch, &ctx->bind_id, NULL, RDMA_PS_TCP)) {
		rc = zc_err(-errno, "rdma_create_id: %s", strerror(errno));
		goto err;
	}
	if (rdma_bind_addr(ctx->bind_id, (struct sockaddr *)&ctx->local)) {
		rc = zc_err(-errno == -EADDRNOTAVAIL ? -EADDRNOTAVAIL : -errno,
			    "cannot bind %s: %s (is it configured on this host?)", local_addr, strerror(errno));
		goto err;
	}
	ctx->verbs = ctx->bind_id->verbs;
	if (!ctx->verbs) {
		rc = zc_err(-ENODEV, "%s is not the address of an RDMA device: check `rdma link` and `ibv_devices`",
			    local_addr);
		goto err;
	}
	if (!(ctx->pd = ibv_alloc_pd(ctx->verbs))) {
		rc = zc_err(errno ? -errno : -ENOMEM, "ibv_alloc_pd on %s: %s", ibv_get_device_name(ctx->verbs->device),
			    strerror(errno));
		goto err;
	}
	if (!(ctx->comp_ch = ibv_create_comp_channel(ctx->verbs))) {
		rc = zc_err(errno ? -errno : -ENOMEM, "ibv_create_comp_channel: %s", strerror(errno));
		goto err;
	}
	if (!(ctx->cq = ibv_create_cq(ctx->verbs, ctx->opts.cq_depth, ctx, ctx->comp_ch, 0))) {
		rc = zc_err(errno ? -errno : -ENOMEM, "ibv_create_cq of %d entries on %s: %s (lower zc_ctx_opts.cq_depth?)",
			    ctx->opts.cq_depth, ibv_get_device_name(ctx->verbs->device), strerror(errno));
		goto err;
	}
	rc = query_caps(ctx);
	if (rc)
		goto err;
	ops.arg = ctx;
	rc = zc_rcache_new(&ops, ctx->opts.rcache_entries, ctx->opts.rcache_bytes, &ctx->rcache);
	if (rc)
		goto err;
	ctx->done_cap = (unsigned)ctx->opts.cq_depth;
	ctx->done = calloc(ctx->done_cap, sizeof(*ctx->done));
	if (!ctx->done) {
		rc = zc_err(-ENOMEM, "zc_ctx_new: out of memory");
		goto err;
	}
	/* One fd for the application: readable on completions or CM events.
	 * Both underlying fds are non-blocking so progress never sleeps. */
	if ((rc = set_nonblocking(ctx->comp_ch->fd)) || (rc = set_nonblocking(ctx->cm_ch->fd)))
		goto err;
	ctx->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ctx->epfd < 0 || epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, ctx->comp_ch->fd, &ev) ||
	    epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, ctx->cm_ch->fd, &ev)) {
		rc = zc_err(-errno, "epoll: %s", strerror(errno));
		goto err;
	}
	if (ibv_req_notify_cq(ctx->cq, 0) == 0)
		ctx->cq_armed = true;
	*out = ctx;
	return 0;
err:
	zc_ctx_free(&ctx);
	return rc;
}

int zc_ctx_free(struct zc_ctx **pctx)
{
	struct zc_ctx *ctx;

	if (!pctx || !*pctx)
		return zc_err(-EINVAL, "zc_ctx_free: no context");
	ctx = *pctx;
	if (ctx->n_mrs)
		return zc_err(-EBUSY, "zc_ctx_free: %u memory regions are still registered", ctx->n_mrs);
	while (!zc_list_empty(&ctx->conns)) {
		struct zc_conn *c = zc_list_first(&ctx->conns, struct zc_conn, node);

		zc_abort(&c);
	}
	while (!zc_list_empty(&ctx->listeners)) {
		struct zc_listener *l = zc_list_first(&ctx->listeners, struct zc_listener, node);

		zc_listener_free(&l);
	}
	if (ctx->rcache)
		zc_rcache_free(ctx->rcache);
	if (ctx->cq)
		ibv_destroy_cq(ctx->cq);
	if (ctx->comp_ch)
		ibv_destroy_comp_channel(ctx->comp_ch);
	if (ctx->pd)
		ibv_dealloc_pd(ctx->pd);
	if (ctx->bind_id)
		rdma_destroy_id(ctx->bind_id);
	if (ctx->cm_ch)
		rdma_destroy_event_channel(ctx->cm_ch);
	if (ctx->epfd >= 0)
		close(ctx->epfd);
	free(ctx->done);
	free(ctx);
	*pctx = NULL;
	return 0;
}

int zc_ctx_query(struct zc_ctx *ctx, struct zc_caps *caps)
{
	if (!ctx || !caps)
		return zc_err(-EINVAL, "zc_ctx_query: NULL argument");
	*caps = ctx->caps;
	caps->cap_ipc_lock = zc_memlock_check(ctx, 0) == 1;
	return 0;
}

int zc_ctx_fd(struct zc_ctx *ctx)
{
	return ctx ? ctx->epfd : zc_err(-EINVAL, "zc_ctx_fd: no context");
}

int zc_ctx_stats(struct zc_ctx *ctx, struct zc_stats *s)
{
	struct zc_rcache_stats rs;

	if (!ctx || !s)
		return zc_err(-EINVAL, "zc_ctx_stats: NULL argument");
	zc_rcache_get_stats(ctx->rcache, &rs);
	*s = ctx->stats;
	s->rcache_hits = rs.hits;
	s->rcache_misses = rs.misses;
	s->rcache_evictions = rs.evictions;
	s->rcache_invalidations = rs.invalidations;
	s->rcache_entries = rs.entries;
	s->rcache_bytes = rs.bytes;
	return 0;
}

int zc_ctx_reserve_cq(struct zc_ctx *ctx, int entries)
{
	if (ctx->cq_reserved + entries > ctx->opts.cq_depth)
		return zc_err(-ENOSPC, "the context's completion queue (%d entries) has room for %d more, this "
				       "connection needs %d: raise zc_ctx_opts.cq_depth or use fewer connections",
			      ctx->opts.cq_depth, ctx->opts.cq_depth - ctx->cq_reserved, entries);
	ctx->cq_reserved += entries;
	return 0;
}

void zc_ctx_release_cq(struct zc_ctx *ctx, int entries)
{
	ctx->cq_reserved -= entries;
}

/* Whether one more zero-copy operation fits the completion ring. */
int zc_ctx_room(struct zc_ctx *ctx)
{
	if (ctx->zc_outstanding >= ctx->done_cap)
		return zc_err(-EAGAIN, "%u zero-copy operations outstanding: reap completions with zc_poll()",
			      ctx->zc_outstanding);
	return 0;
}

int zc_ctx_complete(struct zc_ctx *ctx, struct zc_conn *conn, uint64_t token, int op, int status, size_t len)
{
	struct zc_completion *c;

	/* Submissions are bounded by done_cap, so the ring cannot overflow. */
	c = &ctx->done[(ctx->done_head + ctx->done_count) % ctx->done_cap];
	*c = (struct zc_completion){.conn = conn, .data = conn->data, .token = token, .op = op, .status = status,
				    .len = len};
	ctx->done_count++;
	return 0;
}

/* The connection is being freed: completions not reaped yet must not name it. */
void zc_ctx_forget_conn(struct zc_ctx *ctx, const struct zc_conn *conn)
{
	unsigned i;

	for (i = 0; i < ctx->done_count; i++) {
		struct zc_completion *c = &ctx->done[(ctx->done_head + i) % ctx->done_cap];

		if (c->conn == conn)
			c->conn = NULL;
	}
}

/* Polls the CQ and CM channel once; returns how many events were handled. */
int zc_ctx_poll_cq(struct zc_ctx *ctx)
{
	struct ibv_wc wc[32];
	int n, i, total = 0;

	zc_err_progress_begin();
	while ((n = ibv_poll_cq(ctx->cq, 32, wc)) > 0) {
		for (i = 0; i < n; i++)
			zc_handle_wc(ctx, &wc[i]);
		total += n;
		if (n < 32)
			break;
	}
	zc_err_progress_end();
	if (total && ctx->cq_armed)
		ctx->cq_fired = true;
	return total;
}

/* Completions first. The CM channel costs a system call to look at, so the
 * data path checks it only when the CQ is idle, and then only every 64th
 * time; zc_ctx_wait() always checks before sleeping. */
int zc_ctx_progress(struct zc_ctx *ctx)
{
	int total = zc_ctx_poll_cq(ctx);

	/* CM events count as progress, or a busy wait for a connection
	 * (busy_poll_us < 0) would spin out its whole timeout. */
	if (total == 0 && (++ctx->idle_polls & 63) == 0)
		total = zc_cm_process(ctx);
	return total;
}

static int progress_all(struct zc_ctx *ctx)
{
	int total = zc_ctx_poll_cq(ctx);

	return total + zc_cm_process(ctx);
}

static void drain_cq_events(struct zc_ctx *ctx)
{
	struct ibv_cq *cq;
	void *cq_ctx;

	while (ibv_get_cq_event(ctx->comp_ch, &cq, &cq_ctx) == 0) {
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
 */
int zc_ctx_rearm(struct zc_ctx *ctx)
{
	if (ctx->cq_fired)
		drain_cq_events(ctx);
	if (!ctx->cq_armed && ibv_req_notify_cq(ctx->cq, 0) == 0)
		ctx->cq_armed = true;
	return progress_all(ctx);
}

/* Waits until something may have happened: spins for busy_poll_us, then
 * sleeps on the event fd. */
int zc_ctx_wait(struct zc_ctx *ctx, int timeout_ms)
{
	struct epoll_event ev[2];
	bool never_sleep = ctx->opts.busy_poll_us < 0;
	int64_t spin_us = never_sleep ? (int64_t)timeout_ms * 1000 : ctx->opts.busy_poll_us, start;
	int n;

	/* Spin for busy_poll_us, or (busy_poll_us < 0) for the whole timeout
	 * without ever sleeping; a negative timeout then spins until progress.
	 * The clock is read every 32 polls, the first time after 32: where the
	 * TSC is not trusted (a TCG guest) clock_gettime is a system call
	 * reading the HPET, which cost more than the polls themselves (17 % of
	 * a 4 KiB stream run), and most waits end within a few polls. */
	if (spin_us != 0) {
		unsigned polls = 0;

		start = -1;
		for (;;) {
			if (zc_ctx_progress(ctx))
				return 1;
			if (spin_us < 0 || (++polls & 31))
				continue;
			if (start < 0)
				start = zc_now_ns() / 1000;
			else if (zc_now_ns() / 1000 - start >= spin_us)
				break;
		}
	}
	if (never_sleep)
		return progress_all(ctx) > 0;
	if (zc_ctx_rearm(ctx))
		return 1;
	n = epoll_wait(ctx->epfd, ev, 2, timeout_ms);
	if (n > 0)
		drain_cq_events(ctx);
	return progress_all(ctx) > 0 || n > 0;
}

/* An application blocked in zc_poll() waits for every connection at once:
 * each quiet one is probed as a blocking call would probe its own. */
static void keepalive_all(struct zc_ctx *ctx)
{
	struct zc_list *n;

	for (n = ctx->conns.next; n != &ctx->conns; n = n->next)
		zc_conn_keepalive(zc_container_of(n, struct zc_conn, node));
}

int zc_poll(struct zc_ctx *ctx, struct zc_completion *comps, int max, int timeout_ms)
{
	int64_t deadline;
	int n = 0;

	if (!ctx || !comps || max <= 0)
		return zc_err(-EINVAL, "zc_poll: bad arguments");
	deadline = timeout_ms <= 0 ? timeout_ms : zc_now_ms() + timeout_ms;
	/* once per call, CM included: an event-loop application calls this
	 * when the context's fd fires, whichever source made it fire */
	progress_all(ctx);
	for (;;) {
		int left;

		while (n < max && ctx->done_count) {
			comps[n++] = ctx->done[ctx->done_head];
			ctx->done_head = (ctx->done_head + 1) % ctx->done_cap;
			ctx->done_count--;
			ctx->zc_outstanding--;
		}
		if (n == max)
			return n; /* the caller comes back for the rest */
		left = timeout_ms == 0 ? 0 : zc_remaining_ms(deadline); /* no clock read for a poll */
		if (n || left == 0) {
			/* Returning with the ring empty: the caller may sleep
			 * on the fd next, so it must be armed. */
			if (zc_ctx_rearm(ctx) && ctx->done_count)
				continue;
			return n;
		}
		zc_ctx_wait(ctx, left < 0 || left > 100 ? 100 : left);
		keepalive_all(ctx);
	}
}
