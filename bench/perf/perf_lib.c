/* Library tests' shared plumbing: context, connection, buffers, verify, timing. */
#include "perf_lib.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf_err.h"
#include "perf_time.h"
#include "perf_verbs.h" /* the payload pattern */

#define PAGE 4096ull
/* Control message sequence of the setup exchange (sizes use 0, 1, ...). */
#define SETUP_SEQ 0x7fff0000u

int perf_lib_fail(struct perf_lib *L, int rc, const char *what)
{
	const char *detail = zc_last_error();

	L->failed = 1;
	if (rc >= 0)
		rc = -EIO;
	return perf_err(rc, "%s: %s%s%s%s", what, zc_strerror(rc), detail && *detail ? " (" : "",
			detail ? detail : "", detail && *detail ? ")" : "");
}

int perf_lib_skip(const struct perf_ctx *ctx, uint64_t size, char *why, size_t whylen)
{
	if (!ctx->o->copy || size <= PERF_LIB_EAGER_MAX)
		return 0;
	snprintf(why, whylen, "--copy: the copy path carries at most %u bytes (eager_size maximum)",
		 PERF_LIB_EAGER_MAX);
	return 1;
}

/* The numeric address of the control connection's local end: where the library context lives. */
static int local_addr(struct perf_ctx *ctx, char *host, size_t len)
{
	struct sockaddr *sa = rdma_get_local_addr(ctx->ctrl.id);
	socklen_t sl = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int rc = getnameinfo(sa, sl, host, (socklen_t)len, NULL, 0, NI_NUMERICHOST);

	if (rc)
		return perf_err(EINVAL, "the control connection's local address: %s", gai_strerror(rc));
	return 0;
}

/* Server sends the library listener's port, the client 0; each learns the other's. */
static int exchange_port(struct perf_ctx *ctx, uint16_t mine, uint16_t *peer)
{
	struct perf_msg m;
	int rc;

	memset(&m, 0, sizeof(m));
	m.type = PERF_MSG_READY;
	m.seq = SETUP_SEQ;
	m.size = mine;
	rc = perf_ctrl_send(&ctx->ctrl, &m);
	if (!rc)
		rc = perf_ctrl_expect(&ctx->ctrl, PERF_MSG_READY, SETUP_SEQ, &m, PERF_CTRL_MS);
	if (!rc)
		*peer = (uint16_t)m.size;
	return rc;
}

static int clamp(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* -q connections from one context to one listener; accepted in the order the client connects. */
static int connect_lib(struct perf_ctx *ctx, struct perf_lib *L)
{
	uint16_t port = 0, peer = 0;
	int rc, i;

	L->conns = calloc((size_t)ctx->o->qps, sizeof(*L->conns));
	if (!L->conns)
		return perf_err(ENOMEM, "out of memory");
	if (ctx->is_server) {
		rc = zc_listen(L->zctx, 0, &L->copts, &L->lis);
		if (rc)
			return perf_lib_fail(L, rc, "zc_listen");
		port = zc_listener_port(L->lis);
	}
	rc = exchange_port(ctx, port, &peer);
	if (rc)
		return rc;
	if (!ctx->is_server && !peer)
		return perf_err(EPROTO, "the server sent no library port");
	for (i = 0; i < ctx->o->qps; i++) {
		char what[48];

		rc = ctx->is_server ? zc_accept(L->lis, &L->conns[i], PERF_CM_STEP_MS)
				    : zc_connect(L->zctx, ctx->o->server, peer, &L->copts, &L->conns[i]);
		if (rc) {
			snprintf(what, sizeof(what), "%s (connection %d of %d)", ctx->is_server ? "zc_accept" : "zc_connect",
				 i + 1, ctx->o->qps);
			return perf_lib_fail(L, rc, what);
		}
		zc_conn_set_data(L->conns[i], (void *)(intptr_t)i);
		L->nconn = i + 1;
	}
	return 0;
}

int perf_lib_conn_index(const struct perf_lib *L, const struct zc_completion *c)
{
	intptr_t i = (intptr_t)c->data;

	return c->conn && i >= 0 && i < L->nconn && L->conns[i] == c->conn ? (int)i : -1;
}

int perf_lib_setup(struct perf_ctx *ctx, const struct perf_lib_cfg *cfg)
{
	const struct perf_opts *o = ctx->o;
	struct perf_lib *L = calloc(1, sizeof(*L));
	char host[NI_MAXHOST];
	int credits, rc;
	void *p;

	if (!L)
		return perf_err(ENOMEM, "out of memory");
	ctx->priv = L;
	L->ctx = ctx;
	L->no_mr = cfg->no_mr;
	/* Blocking library calls never see the stop flag. */
	perf_watchdog_hard(PERF_LIB_GRACE_S);

	L->stride = (size_t)((ctx->max_size + PAGE - 1) / PAGE * PAGE + PAGE);
	L->nbuf = cfg->nbuf < 1 ? 1 : cfg->nbuf;
	if ((uint64_t)L->nbuf * L->stride > PERF_LIB_POOL_BYTES)
		L->nbuf = (int)(PERF_LIB_POOL_BYTES / L->stride) > 0 ? (int)(PERF_LIB_POOL_BYTES / L->stride) : 1;

	zc_conn_opts_init(&L->copts);
	/* Credits are the receive window. A ping-pong has one message in
	 * flight whatever the window, and with a window of one every message
	 * needs its own CREDIT back: --lat keeps the library's default window,
	 * as an application would. */
	credits = o->lat ? L->copts.credits : clamp(o->tx_depth, 1, 4096);
	L->copts.credits = credits;
	L->copts.send_depth = clamp(2 * credits + 8, 8, 16384);
	if (o->copy)
		L->copts.eager_size = PERF_LIB_EAGER_MAX;
	zc_ctx_opts_init(&L->xopts);
	if (o->copy)
		L->xopts.eager_size = PERF_LIB_EAGER_MAX; /* the receive slots take the copy path's messages */
	/* perftest posts rx_depth receives on every QP; the shared pool's
	 * soft limit likewise lets every connection's window grow to its
	 * credits (below it, windows shrink and CREDITs multiply). */
	if (L->xopts.rx_slots < o->qps * credits)
		L->xopts.rx_slots = o->qps * credits;
	L->xopts.busy_poll_us = o->busy_poll_us;
	L->xopts.no_memhooks = o->no_memhooks;
	if (L->xopts.cq_depth < 2 * credits + 2 + L->copts.send_depth + 64)
		L->xopts.cq_depth = 2 * credits + 2 + L->copts.send_depth + 64;
	/* Room for every buffer of the pool, so that --rcache measures reuse, not eviction. */
	if (L->xopts.rcache_entries < (unsigned)L->nbuf + 16)
		L->xopts.rcache_entries = (unsigned)L->nbuf + 16;

	rc = local_addr(ctx, host, sizeof(host));
	if (rc)
		return rc;
	rc = zc_ctx_new(host, &L->xopts, &L->zctx);
	if (rc)
		return perf_lib_fail(L, rc, "zc_ctx_new");
	rc = zc_ctx_query(L->zctx, &L->caps);
	if (rc)
		return perf_lib_fail(L, rc, "zc_ctx_query");
	rc = connect_lib(ctx, L);
	if (rc)
		return rc;

	/* The buffers, then one acknowledgement slot per connection. */
	L->mem_len = (size_t)L->nbuf * L->stride +
		     ((size_t)o->qps * PERF_LIB_ACK_LEN + PAGE - 1) / PAGE * PAGE;
	rc = posix_memalign(&p, PAGE, L->mem_len);
	if (rc)
		return perf_err(rc, "cannot allocate %zu bytes: %s", L->mem_len, strerror(rc));
	L->mem = p;
	memset(L->mem, 0, L->mem_len);
	if (!cfg->no_mr && (!o->rcache || cfg->force_mr)) {
		rc = zc_mr_reg(L->zctx, L->mem, L->mem_len, cfg->mr_access, &L->mr);
		if (rc)
			return perf_lib_fail(L, rc, "zc_mr_reg");
	}
	if (o->verify) {
		L->ref[0] = malloc(ctx->max_size);
		L->ref[1] = malloc(ctx->max_size);
		if (!L->ref[0] || !L->ref[1])
			return perf_err(ENOMEM, "out of memory for --verify's reference patterns");
	}
	ctx->inline_size = (int)L->caps.max_inline;
	ctx->rx_depth = 2 * credits + 2; /* the connection's receive slots */
	return 0;
}

void perf_lib_teardown(struct perf_ctx *ctx)
{
	struct perf_lib *L = ctx->priv;
	int rc, i;

	if (!L)
		return;
	for (i = 0; i < L->nconn; i++) {
		int orderly = !L->failed && !ctx->failed;

		rc = orderly ? zc_close(&L->conns[i]) : zc_abort(&L->conns[i]);
		if (rc && orderly)
			fprintf(stderr, "zc_perf: note: zc_close: %s (%s)\n", zc_strerror(rc), zc_last_error());
	}
	free(L->conns);
	if (L->lis)
		zc_listener_free(&L->lis);
	if (L->mr && (rc = zc_mr_dereg(&L->mr)))
		fprintf(stderr, "zc_perf: note: zc_mr_dereg: %s (%s)\n", zc_strerror(rc), zc_last_error());
	if (L->zctx)
		zc_ctx_free(&L->zctx);
	free(L->mem);
	free(L->ref[0]);
	free(L->ref[1]);
	free(L);
	ctx->priv = NULL;
	perf_watchdog_hard(0);
}

void perf_lib_header(const struct perf_ctx *ctx, FILE *f)
{
	const struct perf_opts *o = ctx->o;
	const struct perf_lib *L = perf_lib_of(ctx);
	char eager[48], reg[96];

	if (!L)
		return;
	snprintf(eager, sizeof(eager), "%zu[B]%s", L->copts.eager_size, o->copy ? " (--copy)" : "");
	if (o->fresh_reg)
		snprintf(reg, sizeof(reg), "cache, zc_mr_invalidate after every completion (--no-rcache-reuse)");
	else if (o->rcache)
		snprintf(reg, sizeof(reg), "registration cache (--rcache)");
	else
		snprintf(reg, sizeof(reg), "zc_mr_reg, one region for all buffers");
	fprintf(f, " Library         : zcrdma %-7s Connection     : zc_listen/zc_accept/zc_connect\n", zc_version());
	fprintf(f, " Credits         : %-14u  Send depth     : %d\n", (unsigned)L->copts.credits, L->copts.send_depth);
	fprintf(f, " Eager size      : %-14s  busy_poll_us   : %d%s\n", eager, L->xopts.busy_poll_us,
		L->xopts.busy_poll_us < 0 ? " (never sleeps)"
		: L->xopts.busy_poll_us ? " (spins, then sleeps on the event fd)" : " (sleeps on the event fd)");
	fprintf(f, " Buffers         : %d x %-10zu  Memory windows : %s\n", L->nbuf, L->stride,
		L->caps.mw_type2 ? "type 2" : "none (MR fallback)");
	fprintf(f, " Registration    : %s\n",
		L->no_mr ? (o->fresh_reg ? "cache, zc_mr_invalidate after every call (--no-rcache-reuse)"
					 : "registration cache (the stream/msg API takes no region)")
			 : reg);
}

void perf_lib_footer(const struct perf_ctx *ctx, FILE *f)
{
	const struct perf_lib *L = perf_lib_of(ctx);
	int i;

	if (!L || !L->nstats)
		return;
	fprintf(f, " zcrdma counters on this side, per size (zc_ctx_stats):\n");
	fprintf(f, " %-10s %-10s %-10s %-8s %-8s %-8s %-9s %-10s %-10s %-9s %-9s %-9s %-9s %-9s %-10s %-10s %-10s %-10s %-8s %-8s\n",
		"#bytes", "rc_hits", "rc_misses", "rc_evict", "rc_inval", "rc_live", "mw_binds", "eager", "inline", "rndv",
		"credit", "mr_fallbk", "reg+dereg", "reg_ms", "send_wrs", "doorbells", "recv_wrs", "cqes", "put", "adv");
	for (i = 0; i < L->nstats; i++) {
		const struct zc_stats *d = &L->stats[i].d;

		fprintf(f,
			" %-10llu %-10llu %-10llu %-8llu %-8llu %-8llu %-9llu %-10llu %-10llu %-9llu %-9llu %-9llu %-9llu "
			"%-9.3f %-10llu %-10llu %-10llu %-10llu %-8llu %-8llu\n",
			(unsigned long long)L->stats[i].size, (unsigned long long)d->rcache_hits,
			(unsigned long long)d->rcache_misses, (unsigned long long)d->rcache_evictions,
			(unsigned long long)d->rcache_invalidations, (unsigned long long)d->rcache_entries,
			(unsigned long long)d->mw_binds, (unsigned long long)d->eager_msgs,
			(unsigned long long)d->inline_msgs, (unsigned long long)d->rndv_msgs,
			(unsigned long long)d->credit_msgs, (unsigned long long)d->mr_fallbacks,
			(unsigned long long)(d->regs + d->deregs), (double)d->reg_ns / 1e6,
			(unsigned long long)d->send_wrs, (unsigned long long)d->send_posts,
			(unsigned long long)d->recv_wrs, (unsigned long long)d->completions,
			(unsigned long long)d->put_msgs, (unsigned long long)d->adv_msgs);
	}
	fputs("---------------------------------------------------------------------------------------\n", f);
}

int perf_lib_reg_delta(const struct perf_ctx *ctx, uint64_t size, uint64_t *calls, uint64_t *ns)
{
	const struct perf_lib *L = ctx->test->library ? perf_lib_of(ctx) : NULL;
	const struct zc_stats *d;

	if (!L || !L->nstats || L->stats[L->nstats - 1].size != size)
		return 0;
	d = &L->stats[L->nstats - 1].d;
	*calls = d->regs + d->deregs;
	*ns = d->reg_ns;
	return 1;
}

int perf_lib_verify_size(struct perf_lib *L, uint64_t size, int first, int count, int dir)
{
	int i;

	if (!L->ctx->o->verify)
		return 0;
	if (L->ref_size != size) {
		perf_pattern_fill(L->ref[0], size, perf_pattern_seed(size, 0));
		perf_pattern_fill(L->ref[1], size, perf_pattern_seed(size, 1));
		L->ref_size = size;
	}
	for (i = first; i < first + count && i < L->nbuf; i++)
		memcpy(perf_lib_buf(L, i), L->ref[dir], size);
	return 0;
}

void perf_lib_stamp(uint8_t *p, uint64_t size, uint64_t i)
{
	uint64_t v = i + 1;
	unsigned k;

	for (k = 0; k < PERF_LIB_STAMP && k < size; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

int perf_lib_check(const struct perf_lib *L, const uint8_t *p, uint64_t size, int dir, uint64_t i,
		   const char *what)
{
	uint8_t want[PERF_LIB_STAMP];
	uint64_t k, n = size < PERF_LIB_STAMP ? size : PERF_LIB_STAMP;

	perf_lib_stamp(want, n, i);
	for (k = 0; k < n; k++)
		if (p[k] != want[k])
			goto bad;
	if (size > n && memcmp(p + n, L->ref[dir] + n, size - n) != 0)
		for (k = n; k < size; k++)
			if (p[k] != L->ref[dir][k])
				goto bad;
	return 0;
bad:
	return perf_err(EIO, "--verify: %s #%llu (%llu bytes): byte %llu is 0x%02x, expected 0x%02x%s", what,
			(unsigned long long)i, (unsigned long long)size, (unsigned long long)k, p[k],
			k < n ? want[k] : L->ref[dir][k], k < n ? " (the iteration stamp)" : "");
}

int perf_lib_where(int rc, uint64_t submitted, uint64_t completed, uint64_t n)
{
	char msg[PERF_ERR_LEN];

	snprintf(msg, sizeof(msg), "%s", perf_errmsg());
	return perf_err(rc, "%s [%llu of %llu submitted, %llu complete]", msg, (unsigned long long)submitted,
			(unsigned long long)n, (unsigned long long)completed);
}

int perf_lib_stopped(uint64_t done, uint64_t n)
{
	int rc = perf_stopped();

	if (!rc)
		return 0;
	return perf_err(rc, "%s after %llu of %llu operations", rc == -ETIMEDOUT ? "watchdog expired" : "interrupted",
			(unsigned long long)done, (unsigned long long)n);
}

int perf_lib_poll(struct perf_lib *L, struct zc_completion *c, int max)
{
	/* The library's own wait for at most a slice: it spins busy_poll_us
	 * (busy mode: the whole slice), then sleeps on the event fd. A call
	 * with a timeout that finds completions makes no system call. */
	int n = zc_poll(L->zctx, c, max, PERF_LIB_SLICE_MS), i, rc;

	if (n < 0)
		return perf_lib_fail(L, n, "zc_poll");
	for (i = 0; i < n; i++)
		if (c[i].status) {
			static const char *const ops[] = {"?", "ZC_OP_SEND", "ZC_OP_RECV", "ZC_OP_READ", "ZC_OP_WRITE"};
			char what[64];

			snprintf(what, sizeof(what), "%s completion (token %llu)",
				 c[i].op >= 1 && c[i].op <= 4 ? ops[c[i].op] : "unknown",
				 (unsigned long long)c[i].token);
			return perf_lib_fail(L, c[i].status, what);
		}
	if (n > 0)
		return n;
	if ((rc = perf_stopped()))
		return perf_err(rc, "%s while waiting for a completion",
				rc == -ETIMEDOUT ? "watchdog expired" : "interrupted");
	/* Nothing completed for a whole slice: has the peer given up (ABORT, disconnect)? */
	rc = perf_peer_check(L->ctx);
	return rc < 0 ? rc : 0;
}

int perf_lib_idle(struct perf_lib *L, uint64_t *idle)
{
	const struct perf_opts *o = L->ctx->o;
	struct zc_event ev[16];
	/* An event loop's wait: it ends at the first event (a connection
	 * writable or readable again), spinning busy_poll_us first. A
	 * timeout-0 zc_poll() per empty sweep armed the completion queue (a
	 * system call on rxe, and an event per completion after it) for a
	 * sleep the busy loop never took. */
	int n = zc_wait_events(L->zctx, ev, 16, PERF_LIB_SLICE_MS), i, rc;

	if (n < 0)
		return perf_lib_fail(L, n, "zc_wait_events");
	for (i = 0; i < n; i++)
		if (ev[i].type == ZC_EV_COMPLETION) /* the stream and message calls submit no zero-copy operations */
			return perf_err(EPROTO, "unexpected completion: op %d token %llu", ev[i].op,
					(unsigned long long)ev[i].token);
	if ((rc = perf_stopped()))
		return perf_err(rc, "%s while waiting for the connections",
				rc == -ETIMEDOUT ? "watchdog expired" : "interrupted");
	if (n == 0 || o->busy_poll_us == 0 || ++*idle % PERF_LIB_IDLE_CHECK == 0) {
		rc = perf_peer_check(L->ctx);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void perf_lib_stats_begin(struct perf_lib *L)
{
	zc_ctx_stats(L->zctx, &L->before);
}

void perf_lib_stats_end(struct perf_lib *L, uint64_t size)
{
	struct zc_stats a, *d;

	if (L->nstats >= PERF_MAX_SIZES)
		return;
	zc_ctx_stats(L->zctx, &a);
	d = &L->stats[L->nstats].d;
	L->stats[L->nstats++].size = size;
#define DIFF(f) d->f = a.f - L->before.f
	DIFF(rcache_hits);
	DIFF(rcache_misses);
	DIFF(rcache_evictions);
	DIFF(rcache_invalidations);
	DIFF(eager_msgs);
	DIFF(inline_msgs);
	DIFF(rndv_msgs);
	DIFF(rndv_bytes);
	DIFF(credit_msgs);
	DIFF(mw_binds);
	DIFF(put_msgs);
	DIFF(adv_msgs);
	DIFF(mr_fallbacks);
	DIFF(regs);
	DIFF(deregs);
	DIFF(reg_ns);
	DIFF(send_wrs);
	DIFF(send_posts);
	DIFF(recv_wrs);
	DIFF(completions);
#undef DIFF
	d->rcache_entries = a.rcache_entries;
	d->rcache_bytes = a.rcache_bytes;
}

int perf_lib_bw_begin(struct perf_lib_bw *b, uint64_t n, uint64_t window)
{
	memset(b, 0, sizeof(*b));
	b->n = n;
	if (n <= PERF_PEAK_EXACT_MAX) {
		b->exact = n;
		b->tposted = calloc(n, sizeof(uint64_t));
		b->tcompleted = calloc(n, sizeof(uint64_t));
		if (!b->tposted || !b->tcompleted) {
			perf_lib_bw_free(b);
			return perf_err(ENOMEM, "out of memory for %llu timestamps", (unsigned long long)n);
		}
	}
	b->t0 = b->t_last = perf_now_ns();
	perf_window_init(&b->win, window, b->t0);
	return 0;
}

void perf_lib_bw_posted(struct perf_lib_bw *b, uint64_t i)
{
	if (b->exact)
		b->tposted[i] = perf_now_ns();
}

void perf_lib_bw_completed(struct perf_lib_bw *b, uint64_t total)
{
	uint64_t now = perf_now_ns();

	b->t_last = now;
	if (b->exact && total)
		b->tcompleted[total - 1] = now;
	perf_window_update(&b->win, now, total);
}

int perf_lib_bw_end(struct perf_lib_bw *b, uint64_t size, struct perf_result *r)
{
	int rc = 0;

	r->size = size;
	r->iters = b->n;
	r->bytes = size * b->n;
	if (b->exact) {
		rc = perf_bw_exact(b->tposted, b->tcompleted, b->n, size, &r->bw);
		if (rc)
			rc = perf_err(rc, "no time elapsed");
		else {
			r->peak_valid = 1;
			r->seconds = (double)(b->tcompleted[b->n - 1] - b->tposted[0]) / 1e9;
		}
	} else {
		double secs = (double)(b->t_last - b->t0) / 1e9;

		r->seconds = secs;
		r->bw.bw_avg = secs > 0 ? (double)size * (double)b->n / secs : 0;
		r->bw.msg_rate = secs > 0 ? (double)b->n / secs : 0;
		r->bw.bw_peak = perf_window_peak(&b->win, size);
		r->peak_valid = r->bw.bw_peak > 0;
	}
	perf_lib_bw_free(b);
	return rc;
}

void perf_lib_bw_free(struct perf_lib_bw *b)
{
	free(b->tposted);
	free(b->tcompleted);
	b->tposted = b->tcompleted = NULL;
}

int perf_lib_lat_begin(struct perf_lib_lat *l, uint64_t n)
{
	memset(l, 0, sizeof(*l));
	l->n = n;
	l->stamp = calloc(n, sizeof(uint64_t));
	if (!l->stamp)
		return perf_err(ENOMEM, "out of memory for %llu timestamps", (unsigned long long)n);
	l->t0 = perf_now_ns();
	return 0;
}

void perf_lib_lat_mark(struct perf_lib_lat *l, uint64_t i)
{
	l->stamp[i] = perf_now_ns();
}

int perf_lib_lat_end(struct perf_lib_lat *l, uint64_t size, int rtt_factor, uint64_t bytes_per_iter,
		     struct perf_result *r)
{
	uint64_t i, m = l->n - 1;
	int rc;

	r->size = size;
	r->has_lat = 1;
	r->iters = l->n;
	r->bytes = bytes_per_iter * l->n;
	r->seconds = (double)(perf_now_ns() - l->t0) / 1e9;
	/* perftest: n posts give n - 1 intervals. */
	for (i = 0; i < m; i++)
		l->stamp[i] = l->stamp[i + 1] - l->stamp[i];
	rc = perf_lat_compute(l->stamp, m, rtt_factor, &r->lat);
	if (rc)
		rc = perf_err(rc, "too few samples for latency statistics");
	perf_lib_lat_free(l);
	return rc;
}

void perf_lib_lat_free(struct perf_lib_lat *l)
{
	free(l->stamp);
	l->stamp = NULL;
}
