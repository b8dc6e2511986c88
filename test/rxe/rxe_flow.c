/*
 * libzcrdma flow control, caching, aborts and concurrency over real rxe.
 * Every QP runs with rnr_retry 0, so a credit mistake fails the test.
 *
 *   rxe_flow inflight       600 mixed eager/rendezvous zero-copy sends, up to
 *                           200 in flight, credits 8 vs 64 (negotiated down),
 *                           a receiver that pauses; order and bytes verified
 *   rxe_flow rcache         one buffer sent 20 times: 1 miss, 19 hits; after
 *                           zc_mr_invalidate the next send misses again
 *   rxe_flow abort_client   the client aborts: the server's receive fails with
 *                           -ECONNRESET, not end of stream, within 10 s
 *   rxe_flow abort_server   the server aborts: the client's calls fail within 10 s
 *   rxe_flow threads        8 threads x 8 connections, each thread with its own
 *                           contexts, messages of 1 B .. 100 KB byte-verified
 *   rxe_flow late_listen    a connect to the port is first refused; then the
 *                           client's zc_connect starts 1 s before the server
 *                           listens and succeeds only after it does
 *   rxe_flow rofile         a PROT_READ file mapping is sent zero-copy (cache
 *                           and explicit region), byte-verified
 *   rxe_flow abort_midread  the sender aborts 200 ms into a posted receive's
 *                           RDMA READ of 8 MiB: exactly one completion, either
 *                           a reset/transport/remote-access error (the READ
 *                           was cut) or success with every byte verified (it
 *                           had finished), and teardown returns
 *   rxe_flow silent         the link goes dark (netem 100 % loss both ways)
 *                           under an idle blocking receive: it fails within
 *                           10 s of the link going dark (keepalive probe +
 *                           transport retries), never before
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "zcrdma.h"
#include "rxe_env.h"

#define NMSG 600
#define MAXMSG 40000
#define WINDOW 200

static struct rxe_env env;
static const char *mode;

static size_t msg_size(int i)
{
	return (size_t)(i * 7919) % MAXMSG;
}

struct pair {
	struct zc_ctx *sctx, *cctx;
	struct zc_listener *l;
	uint16_t port;
	/* threads: where each side is (round * NCONNS + conn, done), for the
	 * report of a run that stopped moving */
	atomic_int srv_at, cli_at;
};

static void pair_open(struct pair *p, int port_offset)
{
	CHECK_RC(zc_ctx_new(env.addr_b, NULL, &p->sctx), "server zc_ctx_new");
	CHECK_RC(zc_ctx_new(env.addr_a, NULL, &p->cctx), "client zc_ctx_new");
	p->port = rxe_port(port_offset);
	CHECK_RC(zc_listen(p->sctx, p->port, NULL, &p->l), "zc_listen");
}

static void pair_close(struct pair *p)
{
	zc_listener_free(&p->l);
	CHECK_RC(zc_ctx_free(&p->sctx), "zc_ctx_free");
	CHECK_RC(zc_ctx_free(&p->cctx), "zc_ctx_free");
}

/* ---- inflight ---- */

static void *inflight_server(void *arg)
{
	struct pair *p = arg;
	struct zc_conn *c;
	uint8_t *buf = malloc(MAXMSG);
	int i;

	CHECK_RC(zc_accept(p->l, &c, 20000), "zc_accept");
	for (i = 0; i < NMSG; i++) {
		ssize_t n = zc_msg_recv(c, buf, MAXMSG, 0);

		CHECK_RC(n, "zc_msg_recv");
		RXE_ASSERT((size_t)n == msg_size(i), "message %d has %zd bytes, expected %zu", i, n, msg_size(i));
		RXE_ASSERT(rxe_check(buf, (size_t)n, (uint32_t)i) < 0, "message %d corrupt", i);
		if (i % 50 == 49)
			usleep(50000); /* a slow reader: the sender must stall on credits, not overrun */
	}
	RXE_ASSERT(zc_msg_recv(c, buf, MAXMSG, 0) == -EPIPE, "no end of stream");
	CHECK_RC(zc_close(&c), "server zc_close");
	free(buf);
	return NULL;
}

static int reap(struct zc_ctx *ctx, int block)
{
	struct zc_completion comp[32];
	int n = zc_poll(ctx, comp, 32, block ? 30000 : 0), k;

	CHECK_RC(n, "zc_poll");
	RXE_ASSERT(n > 0 || !block, "no completion within 30 s");
	for (k = 0; k < n; k++) {
		CHECK_RC(comp[k].status, "zero-copy send");
		RXE_ASSERT(comp[k].op == ZC_OP_SEND && comp[k].len == msg_size((int)comp[k].token),
			   "completion %llu: op %d len %zu", (unsigned long long)comp[k].token, comp[k].op,
			   comp[k].len);
	}
	return n;
}

static void inflight_client(struct pair *p)
{
	struct zc_conn_opts o;
	struct zc_conn *c;
	uint8_t *pool = malloc((size_t)NMSG * MAXMSG);
	int i = 0, inflight = 0, max_inflight = 0;

	zc_conn_opts_init(&o);
	o.credits = 8;
	o.send_depth = 64;
	CHECK_RC(zc_connect(p->cctx, env.addr_b, p->port, &o, &c), "zc_connect");
	for (i = 0; i < NMSG; i++)
		rxe_fill(pool + (size_t)i * MAXMSG, msg_size(i), (uint32_t)i);
	for (i = 0; i < NMSG;) {
		int rc = inflight < WINDOW ? zc_send_zc(c, pool + (size_t)i * MAXMSG, msg_size(i), NULL, (uint64_t)i)
					   : -EAGAIN;

		if (rc == -EAGAIN) {
			inflight -= reap(p->cctx, 1);
			continue;
		}
		CHECK_RC(rc, "zc_send_zc");
		i++;
		if (++inflight > max_inflight)
			max_inflight = inflight;
	}
	while (inflight)
		inflight -= reap(p->cctx, 1);
	printf("inflight: %d messages, up to %d in flight at once\n", NMSG, max_inflight);
	/* The client reaps only when the window is full or a send says EAGAIN,
	 * so the library must take all 200 against its 8 credits. */
	RXE_ASSERT(max_inflight == WINDOW, "at most %d messages in flight, not %d", max_inflight, WINDOW);
	CHECK_RC(zc_close(&c), "client zc_close");
	zc_mr_invalidate(p->cctx, pool, (size_t)NMSG * MAXMSG);
	free(pool);
}

/* ---- rcache ---- */

#define RC_LEN (1024 * 1024)
#define RC_SENDS 20

static void *rcache_server(void *arg)
{
	struct pair *p = arg;
	struct zc_conn *c;
	uint8_t *buf = malloc(RC_LEN);
	int i;

	CHECK_RC(zc_accept(p->l, &c, 20000), "zc_accept");
	for (i = 0; i <= RC_SENDS; i++) {
		ssize_t n = zc_msg_recv(c, buf, RC_LEN, 0);

		CHECK_RC(n, "zc_msg_recv");
		RXE_ASSERT(n == RC_LEN && rxe_check(buf, RC_LEN, 9) < 0, "message %d corrupt", i);
	}
	RXE_ASSERT(zc_msg_recv(c, buf, 16, 0) == -EPIPE, "no end of stream");
	CHECK_RC(zc_close(&c), "server zc_close");
	free(buf);
	return NULL;
}

static void send_and_reap(struct pair *p, struct zc_conn *c, uint8_t *buf)
{
	struct zc_completion comp;

	CHECK_RC(zc_send_zc(c, buf, RC_LEN, NULL, 1), "zc_send_zc");
	RXE_ASSERT(zc_poll(p->cctx, &comp, 1, 30000) == 1 && comp.status == 0, "send did not complete");
}

static void rcache_client(struct pair *p)
{
	struct zc_conn *c;
	struct zc_stats st;
	uint8_t *buf = malloc(RC_LEN);
	int i;

	rxe_fill(buf, RC_LEN, 9);
	CHECK_RC(zc_connect(p->cctx, env.addr_b, p->port, NULL, &c), "zc_connect");
	for (i = 0; i < RC_SENDS; i++)
		send_and_reap(p, c, buf);
	zc_ctx_stats(p->cctx, &st);
	printf("rcache: %llu misses, %llu hits after %d sends of one buffer\n", (unsigned long long)st.rcache_misses,
	       (unsigned long long)st.rcache_hits, RC_SENDS);
	RXE_ASSERT(st.rcache_misses == 1 && st.rcache_hits == RC_SENDS - 1, "expected 1 miss and %d hits",
		   RC_SENDS - 1);
	RXE_ASSERT(zc_mr_invalidate(p->cctx, buf, RC_LEN) == 1, "invalidate dropped no entry");
	send_and_reap(p, c, buf);
	zc_ctx_stats(p->cctx, &st);
	RXE_ASSERT(st.rcache_misses == 2 && st.rcache_invalidations == 1, "the send after invalidation did not miss");
	CHECK_RC(zc_close(&c), "client zc_close");
	zc_mr_invalidate(p->cctx, buf, RC_LEN);
	free(buf);
}

/* ---- aborts ---- */

static void *abort_server(void *arg)
{
	struct pair *p = arg;
	struct zc_conn *c;
	uint8_t buf[1024];
	double t0;
	ssize_t n;

	CHECK_RC(zc_accept(p->l, &c, 20000), "zc_accept");
	if (!strcmp(mode, "abort_server")) {
		CHECK_RC(zc_abort(&c), "zc_abort");
		return NULL;
	}
	t0 = rxe_now();
	while ((n = zc_msg_recv(c, buf, sizeof(buf), 0)) >= 0)
		;
	printf("server: receive failed after the client aborted: %s (%.2f s)\n", zc_strerror((int)n), rxe_now() - t0);
	RXE_ASSERT(n == -ECONNRESET, "expected -ECONNRESET, got %zd (%s)", n, zc_strerror((int)n));
	RXE_ASSERT(rxe_now() - t0 < 10, "took %.1f s", rxe_now() - t0);
	n = zc_msg_recv(c, buf, sizeof(buf), 0);
	RXE_ASSERT(n == -ECONNRESET, "the error is not sticky: then %zd (%s)", n, zc_strerror((int)n));
	zc_close(&c);
	return NULL;
}

static void abort_client(struct pair *p)
{
	struct zc_conn *c;
	uint8_t buf[1024] = {0};
	double t0;
	ssize_t n = 0;
	int i;

	CHECK_RC(zc_connect(p->cctx, env.addr_b, p->port, NULL, &c), "zc_connect");
	if (!strcmp(mode, "abort_client")) {
		for (i = 0; i < 3; i++)
			CHECK_RC(zc_msg_send(c, buf, sizeof(buf), 0), "zc_msg_send");
		CHECK_RC(zc_abort(&c), "zc_abort");
		return;
	}
	t0 = rxe_now();
	for (i = 0; i < 10000 && n >= 0; i++)
		n = zc_msg_send(c, buf, sizeof(buf), 0);
	if (n >= 0)
		n = zc_msg_recv(c, buf, sizeof(buf), 0);
	printf("client: calls failed after the server aborted: %s (%.2f s)\n", zc_strerror((int)n), rxe_now() - t0);
	RXE_ASSERT(n == -ECONNRESET || n == -ZC_ETRANSPORT, "expected a reset, got %zd (%s)", n, zc_strerror((int)n));
	RXE_ASSERT(rxe_now() - t0 < 10, "took %.1f s", rxe_now() - t0);
	zc_close(&c);
}

/* ---- late_listen, rofile, abort_midread ---- */

#define BIG (8 * 1024 * 1024)

/* late_listen: when the client's zc_connect started and returned, and when
 * the server listened (the server waits for `connecting` first). */
static atomic_int connecting;
static double t_connect, t_connected, t_listen;

static void *late_server(void *arg)
{
	struct pair *p = arg;
	struct zc_conn *c;
	uint8_t *buf = malloc(BIG);
	int i, n = !strcmp(mode, "rofile") ? 2 : 0;

	if (!strcmp(mode, "late_listen")) {
		while (!atomic_load(&connecting))
			usleep(1000);
		usleep(1000000);
		t_listen = rxe_now();
		CHECK_RC(zc_listen(p->sctx, p->port, NULL, &p->l), "zc_listen");
	}
	CHECK_RC(zc_accept(p->l, &c, 30000), "zc_accept");
	if (!strcmp(mode, "abort_midread")) {
		struct zc_completion comp[4];
		int got = 0, k;

		CHECK_RC(zc_recv_zc(c, buf, BIG, NULL, 77), "zc_recv_zc");
		for (k = 0; k < 20; k++) { /* 10 s: every completion, not just the first */
			int m = zc_poll(p->sctx, comp, 4, 500);

			CHECK_RC(m, "zc_poll");
			got += m;
		}
		printf("abort_midread: %d completion(s) for the posted buffer, status %d (%s)\n", got, comp[0].status,
		       zc_strerror(comp[0].status));
		RXE_ASSERT(got == 1 && comp[0].token == 77, "expected exactly one completion, got %d", got);
		/* Which one depends on the speed of the host; each must be right. */
		if (comp[0].status == 0)
			RXE_ASSERT(comp[0].len == BIG && rxe_check(buf, BIG, 21) < 0,
				   "a successful completion of %zu bytes, not all %d verified", comp[0].len, BIG);
		else
			RXE_ASSERT(comp[0].status == -ECONNRESET || comp[0].status == -ZC_ETRANSPORT ||
					   comp[0].status == -ZC_EREMOTEACCESS,
				   "the cut READ completed with %d (%s)", comp[0].status, zc_strerror(comp[0].status));
		printf("abort_midread: %s\n", comp[0].status ? "the READ was cut by the abort"
							 : "the READ had finished before the abort, data verified");
		CHECK_RC(zc_abort(&c), "zc_abort");
	} else {
		for (i = 0; i < n; i++) {
			ssize_t m = zc_msg_recv(c, buf, BIG, 0);

			CHECK_RC(m, "zc_msg_recv");
			RXE_ASSERT(m == BIG && rxe_check(buf, BIG, 21) < 0, "message %d corrupt", i);
		}
		RXE_ASSERT(zc_msg_recv(c, buf, BIG, 0) == -EPIPE, "no end of stream");
		CHECK_RC(zc_close(&c), "zc_close");
	}
	zc_mr_invalidate(p->sctx, buf, BIG);
	free(buf);
	return NULL;
}

/* Nothing listens yet: a connect is refused on every attempt (not timed out). */
static void refused(struct pair *p)
{
	struct zc_conn_opts o;
	struct zc_conn *c = NULL;
	int rc;

	zc_conn_opts_init(&o);
	o.timeout_ms = 5000;
	rc = zc_connect(p->cctx, env.addr_b, p->port, &o, &c);
	printf("late_listen: a connect before the listen: %s (%s)\n", zc_strerror(rc), zc_last_error());
	RXE_ASSERT(rc == -ECONNREFUSED, "expected -ECONNREFUSED, got %d", rc);
}

static void late_client(struct pair *p)
{
	struct zc_conn *c;
	struct zc_completion comp;
	struct zc_mr *mr;
	uint8_t *map, *buf;
	char path[] = "/tmp/zc_rofile.XXXXXX";
	int fd;

	if (!strcmp(mode, "late_listen")) {
		struct zc_conn_opts o;

		zc_conn_opts_init(&o);
		o.timeout_ms = 30000;
		t_connect = rxe_now();
		atomic_store(&connecting, 1);
		CHECK_RC(zc_connect(p->cctx, env.addr_b, p->port, &o, &c), "zc_connect before the listen");
		t_connected = rxe_now();
		CHECK_RC(zc_close(&c), "zc_close");
		return;
	}
	CHECK_RC(zc_connect(p->cctx, env.addr_b, p->port, NULL, &c), "zc_connect");
	if (!strcmp(mode, "abort_midread")) {
		buf = malloc(BIG);
		rxe_fill(buf, BIG, 21);
		CHECK_RC(zc_send_zc(c, buf, BIG, NULL, 1), "zc_send_zc");
		usleep(200000); /* the READs are under way (8 MiB take seconds here) */
		CHECK_RC(zc_abort(&c), "zc_abort");
		zc_poll(p->cctx, &comp, 1, 0);
		zc_mr_invalidate(p->cctx, buf, BIG);
		free(buf);
		return;
	}
	/* rofile: the pages can only be pinned read-only */
	fd = mkstemp(path);
	buf = malloc(BIG);
	rxe_fill(buf, BIG, 21);
	RXE_ASSERT(fd >= 0 && write(fd, buf, BIG) == BIG, "temp file");
	free(buf);
	/* MAP_PRIVATE: kernel 6.1 pins even read-only MRs with forced write
	 * access, which a shared read-only mapping refuses (6.2 fixed that). */
	map = mmap(NULL, BIG, PROT_READ, MAP_PRIVATE, fd, 0);
	RXE_ASSERT(map != MAP_FAILED, "mmap");
	CHECK_RC(zc_send_zc(c, map, BIG, NULL, 1), "zc_send_zc from a read-only mapping (cache)");
	RXE_ASSERT(zc_poll(p->cctx, &comp, 1, 30000) == 1 && comp.status == 0, "send 1: %d", comp.status);
	CHECK_RC(zc_mr_reg(p->cctx, map, BIG, 0, &mr), "zc_mr_reg of a read-only mapping");
	CHECK_RC(zc_send_zc(c, map, BIG, mr, 2), "zc_send_zc from a read-only region");
	RXE_ASSERT(zc_poll(p->cctx, &comp, 1, 30000) == 1 && comp.status == 0, "send 2: %d", comp.status);
	CHECK_RC(zc_close(&c), "zc_close");
	CHECK_RC(zc_mr_dereg(&mr), "zc_mr_dereg");
	zc_mr_invalidate(p->cctx, map, BIG);
	munmap(map, BIG);
	close(fd);
	unlink(path);
}

/* ---- silent ---- */

static void netem(const char *op)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "tc qdisc %s dev va root netem loss 100%% 2>/dev/null; "
				   "tc qdisc %s dev vb root netem loss 100%% 2>/dev/null", op, op);
	if (system(cmd) < 0)
		RXE_FAIL("system(tc)");
}

static void netem_off(void)
{
	netem("del");
}

/* The receive's result and when it returned; main checks them after the join. */
static ssize_t silent_n;
static double t_silent_ret;

static void *silent_server(void *arg)
{
	struct pair *p = arg;
	struct zc_conn *c;
	uint8_t buf[64];

	CHECK_RC(zc_accept(p->l, &c, 20000), "zc_accept");
	silent_n = zc_msg_recv(c, buf, sizeof(buf), 0); /* the link dies while this waits */
	t_silent_ret = rxe_now();
	printf("silent: the blocked receive returned %zd (%s): %s\n", silent_n, zc_strerror((int)silent_n),
	       zc_last_error());
	zc_abort(&c);
	return NULL;
}

static void silent(void)
{
	struct pair p;
	struct zc_conn *c;
	double t_dark0, t_dark;
	pthread_t t;

	if (system("modprobe sch_netem && tc qdisc show >/dev/null") != 0)
		RXE_FAIL("netem is not available");
	atexit(netem_off);
	pair_open(&p, 7);
	pthread_create(&t, NULL, silent_server, &p);
	CHECK_RC(zc_connect(p.cctx, env.addr_b, p.port, NULL, &c), "zc_connect");
	usleep(500000);
	/* The bound runs from the moment both directions are dark, not from setup. */
	t_dark0 = rxe_now();
	netem("add");
	t_dark = rxe_now();
	pthread_join(t, NULL);
	netem_off();
	printf("silent: failed %.1f s after the link went dark (tc took %.1f s)\n", t_silent_ret - t_dark,
	       t_dark - t_dark0);
	RXE_ASSERT(silent_n == -ZC_ETRANSPORT || silent_n == -ECONNRESET, "expected a transport error");
	RXE_ASSERT(t_silent_ret > t_dark0, "the receive failed before the link went dark");
	RXE_ASSERT(t_silent_ret - t_dark < 10, "took %.1f s, more than 10", t_silent_ret - t_dark);
	zc_abort(&c);
	pair_close(&p);
}

/* ---- threads ---- */

#define NTHREADS 8
#define NCONNS 8
#define NROUNDS 6

static struct zc_conn_opts small_opts(void)
{
	struct zc_conn_opts o;

	zc_conn_opts_init(&o);
	o.credits = 16;
	o.eager_size = 4096;
	o.send_depth = 32;
	return o;
}

static size_t t_size(int t, int k, int r)
{
	return (size_t)((t * 131 + k * 17 + r * 7919) * 97) % 100000 + 1;
}

static void *thread_server(void *arg)
{
	struct pair *p = arg;
	struct zc_conn *c[NCONNS];
	uint8_t *buf = malloc(100000);
	int t = p->port % 100, k, r;

	for (k = 0; k < NCONNS; k++)
		CHECK_RC(zc_accept(p->l, &c[k], 60000), "zc_accept");
	for (r = 0; r < NROUNDS; r++)
		for (k = 0; k < NCONNS; k++) {
			ssize_t n;

			atomic_store(&p->srv_at, r * NCONNS + k);
			n = zc_msg_recv(c[k], buf, 100000, 0);
			CHECK_RC(n, "zc_msg_recv");
			RXE_ASSERT((size_t)n == t_size(t, k, r), "thread %d conn %d round %d: %zd bytes", t, k, r, n);
			RXE_ASSERT(rxe_check(buf, (size_t)n, (uint32_t)(t << 16 | k << 8 | r)) < 0, "corrupt");
		}
	for (k = 0; k < NCONNS; k++) {
		RXE_ASSERT(zc_msg_recv(c[k], buf, 16, 0) == -EPIPE, "no end of stream");
		CHECK_RC(zc_close(&c[k]), "zc_close");
	}
	free(buf);
	return NULL;
}

static void *thread_client(void *arg)
{
	struct pair *p = arg;
	struct zc_conn_opts o = small_opts();
	struct zc_conn *c[NCONNS];
	uint8_t *buf = malloc(100000);
	int t = p->port % 100, k, r;

	for (k = 0; k < NCONNS; k++)
		CHECK_RC(zc_connect(p->cctx, env.addr_b, p->port, &o, &c[k]), "zc_connect");
	for (r = 0; r < NROUNDS; r++)
		for (k = 0; k < NCONNS; k++) {
			size_t n = t_size(t, k, r);

			rxe_fill(buf, n, (uint32_t)(t << 16 | k << 8 | r));
			atomic_store(&p->cli_at, r * NCONNS + k);
			CHECK_RC(zc_msg_send(c[k], buf, n, 0), "zc_msg_send");
		}
	for (k = 0; k < NCONNS; k++)
		CHECK_RC(zc_close(&c[k]), "zc_close");
	zc_mr_invalidate(p->cctx, buf, 100000);
	free(buf);
	return NULL;
}

/* A run that stops moving says where every thread stands, with the
 * contexts' counters (read racily: only on the way to failing), instead of
 * waiting for ctest's timeout in silence. */
static atomic_int threads_done;

static void *threads_watchdog(void *arg)
{
	struct pair *p = arg;
	double t0 = rxe_now();
	int t;

	while (!atomic_load(&threads_done) && rxe_now() - t0 < 120)
		usleep(100000);
	if (atomic_load(&threads_done))
		return NULL;
	for (t = 0; t < NTHREADS; t++) {
		struct zc_stats ss, cs;

		zc_ctx_stats(p[t].sctx, &ss);
		zc_ctx_stats(p[t].cctx, &cs);
		fprintf(stderr, "thread %d: server at %d, client at %d (round * %d + conn); server credit msgs %llu, "
				"client rndv %llu eager %llu inline %llu, completions %llu / %llu\n",
			t, atomic_load(&p[t].srv_at), atomic_load(&p[t].cli_at), NCONNS,
			(unsigned long long)ss.credit_msgs, (unsigned long long)cs.rndv_msgs,
			(unsigned long long)cs.eager_msgs, (unsigned long long)cs.inline_msgs,
			(unsigned long long)ss.completions, (unsigned long long)cs.completions);
	}
	RXE_FAIL("threads: no end within 120 s (normally 2 s)");
	return NULL;
}

static void run_threads(void)
{
	struct pair p[NTHREADS];
	pthread_t s[NTHREADS], c[NTHREADS], dog;
	struct zc_conn_opts o = small_opts();
	int t;

	for (t = 0; t < NTHREADS; t++) {
		CHECK_RC(zc_ctx_new(env.addr_b, NULL, &p[t].sctx), "zc_ctx_new");
		CHECK_RC(zc_ctx_new(env.addr_a, NULL, &p[t].cctx), "zc_ctx_new");
		/* port % 100 doubles as the thread's index for the patterns */
		p[t].port = (uint16_t)(rxe_port(2) / 100 * 100 + 100 + t);
		CHECK_RC(zc_listen(p[t].sctx, p[t].port, &o, &p[t].l), "zc_listen");
	}
	for (t = 0; t < NTHREADS; t++) {
		atomic_init(&p[t].srv_at, -1);
		atomic_init(&p[t].cli_at, -1);
	}
	pthread_create(&dog, NULL, threads_watchdog, p);
	for (t = 0; t < NTHREADS; t++) {
		pthread_create(&s[t], NULL, thread_server, &p[t]);
		pthread_create(&c[t], NULL, thread_client, &p[t]);
	}
	for (t = 0; t < NTHREADS; t++) {
		pthread_join(c[t], NULL);
		pthread_join(s[t], NULL);
	}
	atomic_store(&threads_done, 1);
	pthread_join(dog, NULL);
	for (t = 0; t < NTHREADS; t++)
		pair_close(&p[t]);
	printf("threads: %d threads x %d connections x %d messages verified\n", NTHREADS, NCONNS, NROUNDS);
}

int main(int argc, char **argv)
{
	struct pair p;
	pthread_t t;
	void *(*server)(void *);

	if (argc != 2)
		RXE_FAIL("usage: rxe_flow inflight|rcache|abort_client|abort_server|threads|late_listen|rofile|"
			 "abort_midread|silent");
	mode = argv[1];
	rxe_env_require(&env);
	if (!strcmp(mode, "silent")) {
		silent();
		printf("rxe_flow silent: PASS\n");
		return 0;
	}
	if (!strcmp(mode, "threads")) {
		run_threads();
		printf("rxe_flow threads: PASS\n");
		return 0;
	}
	if (!strcmp(mode, "late_listen") || !strcmp(mode, "rofile") || !strcmp(mode, "abort_midread")) {
		CHECK_RC(zc_ctx_new(env.addr_b, NULL, &p.sctx), "server zc_ctx_new");
		CHECK_RC(zc_ctx_new(env.addr_a, NULL, &p.cctx), "client zc_ctx_new");
		p.port = rxe_port(6);
		p.l = NULL;
		if (strcmp(mode, "late_listen"))
			CHECK_RC(zc_listen(p.sctx, p.port, NULL, &p.l), "zc_listen");
		else
			refused(&p);
		pthread_create(&t, NULL, late_server, &p);
		late_client(&p);
		pthread_join(t, NULL);
		if (!strcmp(mode, "late_listen")) {
			printf("late_listen: zc_connect started %.2f s before the listen and returned %.2f s after it\n",
			       t_listen - t_connect, t_connected - t_listen);
			RXE_ASSERT(t_connect < t_listen && t_connected > t_listen, "the connect did not span the listen");
		}
		pair_close(&p);
		printf("rxe_flow %s: PASS\n", mode);
		return 0;
	}
	server = !strcmp(mode, "inflight") ? inflight_server : !strcmp(mode, "rcache") ? rcache_server : abort_server;
	pair_open(&p, 3);
	pthread_create(&t, NULL, server, &p);
	if (!strcmp(mode, "inflight"))
		inflight_client(&p);
	else if (!strcmp(mode, "rcache"))
		rcache_client(&p);
	else if (!strncmp(mode, "abort_", 6))
		abort_client(&p);
	else
		RXE_FAIL("unknown mode %s", mode);
	pthread_join(t, NULL);
	pair_close(&p);
	printf("rxe_flow %s: PASS\n", mode);
	return 0;
}
