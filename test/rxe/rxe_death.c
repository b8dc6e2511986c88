/*
 * Peer death over real rxe: the peer is a separate process (this program,
 * re-executed) that is SIGKILLed in the middle of a transfer.
 *
 *   rxe_death stream|zc|rma
 *
 * Each kind runs four cases: the peer is the client or the server, and the
 * survivor sends or receives (rma: the survivor issues READ/WRITE against the
 * peer's export, or exports while the peer hammers it). In every case:
 *   - the transfer runs byte-verified on both sides until the survivor has
 *     made progress, then the peer gets SIGKILL while the survivor is in (or
 *     between) blocking calls or has zero-copy operations pending;
 *   - the survivor's pending call, or its pending operations' completions,
 *     fail with an error (never success, never an orderly end of stream)
 *     within ZC_DEATH_BOUND_S seconds of the kill (default 5), and so do
 *     later calls; zc_close() returns within the bound as well;
 *   - the peer died of the SIGKILL (it never stops on its own, so it was
 *     killed mid-transfer) and not of a verification failure;
 *   - a new peer process then connects to the same survivor (same context,
 *     same listener when the survivor serves) and a bounded transfer is
 *     verified on both sides (the new peer exits 0);
 *   - the survivor's open file descriptors are the same after the last case
 *     as after the first (leaks are left to ASan in the ASan suite).
 * The measured times are printed per case.
 *
 *   rxe_death peer KIND DIR ROLE PORT kill|good     (internal: the peer)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zcrdma.h"
#include "rxe_env.h"

#define MAXCH (256 * 1024)
#define WIN 8
#define GOOD_N 24
#define REG (4u << 20)
#define HALF (REG / 2)
#define PIECE (64 * 1024)
#define NPIECE (HALF / PIECE)
#define KILL_AFTER 12 /* units of survivor progress before the kill */

static struct rxe_env env;
static double bound_s = 5;
static pid_t peer_pid;

static const size_t sizes[] = {300, 100000, 20000, MAXCH};

static size_t ch_size(uint64_t k)
{
	return sizes[k % 4];
}

static uint32_t ch_seed(uint64_t k)
{
	return (uint32_t)(k * 2654435761u + 7);
}

/* Open file descriptors, listed on stderr if show is set. */
static int count_fds(int show)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	RXE_ASSERT(d, "opendir /proc/self/fd");
	while ((e = readdir(d))) {
		char path[300], target[256] = "";

		if (e->d_name[0] == '.')
			continue;
		n++;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		if (show && readlink(path, target, sizeof(target) - 1) > 0)
			fprintf(stderr, "  fd %s -> %s\n", e->d_name, target);
	}
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* Opens and closes a context on each device: libibverbs and librdmacm keep
 * the devices they have seen open for the life of the process. */
static void warm_up(void)
{
	struct zc_ctx *ctx;

	CHECK_RC(zc_ctx_new(env.addr_a, NULL, &ctx), "zc_ctx_new");
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
	CHECK_RC(zc_ctx_new(env.addr_b, NULL, &ctx), "zc_ctx_new");
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
}

static struct zc_conn_opts conn_opts(void)
{
	struct zc_conn_opts o;

	zc_conn_opts_init(&o);
	o.timeout_ms = 30000; /* the other process may still be starting */
	return o;
}

/* ---- stream helpers ---- */

static ssize_t send_full(struct zc_conn *c, const uint8_t *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = zc_send(c, p + done, n - done, 0);

		if (r < 0)
			return r;
		done += (size_t)r;
	}
	return (ssize_t)n;
}

/* n bytes, or 0 at an end of stream before the first byte, or an error. */
static ssize_t recv_full(struct zc_conn *c, uint8_t *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = zc_recv(c, p + done, n - done, 0);

		if (r < 0)
			return r;
		if (r == 0)
			return done ? -EPIPE : 0;
		done += (size_t)r;
	}
	return (ssize_t)n;
}

/* ---- the two sides of each kind ---- */

/*
 * Every loop below runs `limit` units (or forever when limit < 0), counts
 * progress, and returns 0 or the first error, with its time in *t_err.
 */
struct run {
	struct zc_ctx *ctx;
	struct zc_conn *c;
	long limit;
	atomic_long *progress;
	double t_err;
	int outstanding; /* zero-copy operations submitted and not reaped */
	int pending_ok;  /* ... of which completed successfully after the error */
	const char *who;
};

static int fail_at(struct run *r, long err)
{
	r->t_err = rxe_now();
	return (int)err;
}

static void tick(struct run *r)
{
	if (r->progress)
		atomic_fetch_add(r->progress, 1);
}

static int stream_send(struct run *r)
{
	uint8_t *buf = malloc(MAXCH);
	int rc = 0;
	long k;

	for (k = 0; (r->limit < 0 || k < r->limit) && !rc; k++) {
		ssize_t n;

		rxe_fill(buf, ch_size((uint64_t)k), ch_seed((uint64_t)k));
		n = send_full(r->c, buf, ch_size((uint64_t)k));
		if (n < 0)
			rc = fail_at(r, n);
		else
			tick(r);
	}
	zc_mr_invalidate(r->ctx, buf, MAXCH);
	free(buf);
	return rc;
}

static int stream_recv(struct run *r)
{
	uint8_t *buf = malloc(MAXCH);
	int rc = 0;
	long k;

	for (k = 0; (r->limit < 0 || k < r->limit) && !rc; k++) {
		size_t len = ch_size((uint64_t)k);
		ssize_t n = recv_full(r->c, buf, len);

		RXE_ASSERT(n != 0, "%s: chunk %ld: end of stream from a peer that never closed", r->who, k);
		if (n < 0) {
			rc = fail_at(r, n);
			break;
		}
		RXE_ASSERT(rxe_check(buf, len, ch_seed((uint64_t)k)) < 0, "%s: chunk %ld corrupt", r->who, k);
		tick(r);
	}
	if (!rc && r->limit >= 0)
		RXE_ASSERT(zc_recv(r->c, buf, 1, 0) == 0, "%s: no end of stream after %ld chunks", r->who, r->limit);
	zc_mr_invalidate(r->ctx, buf, MAXCH);
	free(buf);
	return rc;
}

/* Reaps what zc_poll() has within timeout_ms; calls done() per completion. */
static int reap(struct run *r, int timeout_ms, void (*done)(struct run *, const struct zc_completion *, void *),
		void *arg)
{
	struct zc_completion comp[WIN];
	int n = zc_poll(r->ctx, comp, WIN, timeout_ms), i;

	CHECK_RC(n, "zc_poll");
	for (i = 0; i < n; i++) {
		r->outstanding--;
		done(r, &comp[i], arg);
	}
	return n;
}

/* After the error every pending operation must complete too (with an
 * error, or successfully if it had finished on the wire), within the bound. */
static void reap_rest(struct run *r, const char *what, void (*done)(struct run *, const struct zc_completion *, void *),
		      void *arg)
{
	while (r->outstanding && rxe_now() - r->t_err < bound_s)
		reap(r, 100, done, arg);
	RXE_ASSERT(r->outstanding == 0, "%s: %d %s operations still pending %.1f s after the error", r->who,
		   r->outstanding, what, bound_s);
}

struct zc_state {
	uint8_t *buf[WIN];
	int busy[WIN];
	long seq[WIN];
	int err;
};

static void zc_done(struct run *r, const struct zc_completion *cp, void *arg)
{
	struct zc_state *s = arg;
	int slot = (int)(cp->token & 0xff);

	RXE_ASSERT(slot < WIN && s->busy[slot], "%s: completion for a slot not in use (token %llu)", r->who,
		   (unsigned long long)cp->token);
	s->busy[slot] = 0;
	if (cp->status < 0) {
		if (!s->err)
			s->err = fail_at(r, cp->status);
		return;
	}
	if (s->err) {
		r->pending_ok++;
		return;
	}
	if (cp->op == ZC_OP_RECV) {
		size_t len = ch_size((uint64_t)s->seq[slot]);

		RXE_ASSERT(cp->len == len, "%s: message %ld has %zu bytes, expected %zu", r->who, s->seq[slot],
			   cp->len, len);
		RXE_ASSERT(rxe_check(s->buf[slot], len, ch_seed((uint64_t)s->seq[slot])) < 0,
			   "%s: message %ld corrupt", r->who, s->seq[slot]);
	}
	tick(r);
}

/* Zero-copy sends (send != 0) or posted receives of the message sequence. */
static int zc_run(struct run *r, int send)
{
	struct zc_state s = {.err = 0};
	long next = 0, slot;

	for (slot = 0; slot < WIN; slot++)
		s.buf[slot] = malloc(MAXCH);
	while (!s.err && (r->limit < 0 || next < r->limit || r->outstanding)) {
		int rc = -EAGAIN;

		for (slot = 0; slot < WIN && s.busy[slot]; slot++)
			;
		if (slot < WIN && (r->limit < 0 || next < r->limit)) {
			size_t len = ch_size((uint64_t)next);

			if (send) {
				rxe_fill(s.buf[slot], len, ch_seed((uint64_t)next));
				rc = zc_send_zc(r->c, s.buf[slot], len, NULL, (uint64_t)slot);
			} else {
				rc = zc_recv_zc(r->c, s.buf[slot], MAXCH, NULL, (uint64_t)slot);
			}
			if (!rc) {
				s.busy[slot] = 1;
				s.seq[slot] = next++;
				r->outstanding++;
				continue;
			}
			if (rc != -EAGAIN) {
				s.err = fail_at(r, rc);
				break;
			}
		}
		reap(r, 1000, zc_done, &s);
	}
	reap_rest(r, "zero-copy", zc_done, &s);
	for (slot = 0; slot < WIN; slot++) {
		zc_mr_invalidate(r->ctx, s.buf[slot], MAXCH);
		free(s.buf[slot]);
	}
	return s.err;
}

/* Peer side of zero-copy sends: whole messages, verified. */
static int msg_recv(struct run *r)
{
	uint8_t *buf = malloc(MAXCH);
	int rc = 0;
	long k;

	for (k = 0; (r->limit < 0 || k < r->limit) && !rc; k++) {
		ssize_t n = zc_msg_recv(r->c, buf, MAXCH, 0);

		if (n < 0) {
			rc = fail_at(r, n);
			break;
		}
		RXE_ASSERT((size_t)n == ch_size((uint64_t)k) && rxe_check(buf, (size_t)n, ch_seed((uint64_t)k)) < 0,
			   "%s: message %ld (%zd bytes) corrupt", r->who, k, n);
		tick(r);
	}
	if (!rc && r->limit >= 0)
		RXE_ASSERT(zc_msg_recv(r->c, buf, MAXCH, 0) == -EPIPE, "%s: no end of stream", r->who);
	zc_mr_invalidate(r->ctx, buf, MAXCH);
	free(buf);
	return rc;
}

/* ---- RMA ---- */

static uint8_t *ref1, *ref2; /* the two halves' patterns */

struct rma_state {
	uint8_t *buf;
	int busy[WIN];
	int err;
};

static void rma_done(struct run *r, const struct zc_completion *cp, void *arg)
{
	struct rma_state *s = arg;
	int slot = (int)(cp->token & 0xff), piece = (int)(cp->token >> 8);

	s->busy[slot] = 0;
	if (cp->status < 0) {
		if (!s->err)
			s->err = fail_at(r, cp->status);
		return;
	}
	if (s->err) {
		r->pending_ok++;
		return;
	}
	if (cp->op == ZC_OP_READ)
		RXE_ASSERT(memcmp(s->buf + (size_t)slot * PIECE, ref1 + (size_t)piece * PIECE, PIECE) == 0,
			   "%s: RDMA READ of piece %d returned wrong bytes", r->who, piece);
	tick(r);
}

/* Writes the second half of the peer's export piece by piece and reads and
 * verifies the first half, alternating (limit: that many operations). */
static int rma_ops(struct run *r, const struct zc_desc *d)
{
	struct rma_state s = {.buf = malloc((size_t)WIN * PIECE)};
	long op = 0;
	int slot;

	while (!s.err && (r->limit < 0 || op < r->limit || r->outstanding)) {
		int rc = -EAGAIN;

		for (slot = 0; slot < WIN && s.busy[slot]; slot++)
			;
		if (slot < WIN && (r->limit < 0 || op < r->limit)) {
			int piece = (int)(op / 2 % NPIECE);
			uint8_t *b = s.buf + (size_t)slot * PIECE;
			uint64_t token = (uint64_t)slot | (uint64_t)piece << 8;

			if (op % 2 == 0) {
				memcpy(b, ref2 + (size_t)piece * PIECE, PIECE);
				rc = zc_rma_write(r->c, b, PIECE, NULL, d, HALF + (uint64_t)piece * PIECE, token);
			} else {
				rc = zc_rma_read(r->c, b, PIECE, NULL, d, (uint64_t)piece * PIECE, token);
			}
			if (!rc) {
				s.busy[slot] = 1;
				op++;
				r->outstanding++;
				continue;
			}
			if (rc != -EAGAIN) {
				s.err = fail_at(r, rc);
				break;
			}
		}
		reap(r, 1000, rma_done, &s);
	}
	reap_rest(r, "RMA", rma_done, &s);
	zc_mr_invalidate(r->ctx, s.buf, (size_t)WIN * PIECE);
	free(s.buf);
	return s.err;
}

struct region {
	uint8_t *mem;
	struct zc_mr *mr;
	struct zc_export *exp;
};

static void region_export(struct run *r, struct region *g)
{
	struct zc_desc d;

	g->mem = malloc(REG);
	memcpy(g->mem, ref1, HALF);
	memset(g->mem + HALF, 0, HALF);
	CHECK_RC(zc_mr_reg(r->ctx, g->mem, REG, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &g->mr), "zc_mr_reg");
	CHECK_RC(zc_export(r->c, g->mr, 0, REG, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &g->exp, &d),
		 "zc_export");
	CHECK_RC(zc_msg_send(r->c, &d, sizeof(d), 0), "sending the descriptor");
}

static void region_free(struct region *g)
{
	CHECK_RC(zc_export_revoke(&g->exp), "zc_export_revoke");
	CHECK_RC(zc_mr_dereg(&g->mr), "zc_mr_dereg");
	free(g->mem);
}

static void recv_desc(struct run *r, struct zc_desc *d)
{
	ssize_t n = zc_msg_recv(r->c, d, sizeof(*d), 0);

	CHECK_RC(n, "receiving the descriptor");
	RXE_ASSERT(n == (ssize_t)sizeof(*d), "descriptor of %zd bytes", n);
}

/* The exporting side waits for the issuer's "done" (its only message), then
 * checks what was written; returns the error of that wait, if any. */
static int export_wait(struct run *r, struct region *g)
{
	char m;
	ssize_t n = zc_msg_recv(r->c, &m, 1, 0);

	if (n < 0)
		return fail_at(r, n);
	RXE_ASSERT(n == 1 && m == 'd', "%s: expected the issuer's done message", r->who);
	RXE_ASSERT(memcmp(g->mem + HALF, ref2, HALF) == 0, "%s: the RDMA WRITEs left wrong bytes", r->who);
	RXE_ASSERT(memcmp(g->mem, ref1, HALF) == 0, "%s: the read half changed", r->who);
	return 0;
}

/* ---- one side of a case ---- */

/*
 * The survivor's direction DIR is "send" or "recv" (stream, zc) or "issue"
 * or "export" (rma); the peer does the opposite. Returns the error that
 * ended a kill-mode run.
 */
static int side(const char *kind, const char *dir, int survivor, struct run *r)
{
	int sends = (strcmp(dir, "send") == 0) == survivor; /* this side sends / issues */

	if (!strcmp(kind, "stream"))
		return sends ? stream_send(r) : stream_recv(r);
	if (!strcmp(kind, "zc"))
		return sends ? zc_run(r, 1) : survivor ? zc_run(r, 0) : msg_recv(r);
	sends = (strcmp(dir, "issue") == 0) == survivor;
	if (r->limit >= 0)
		r->limit = 2 * NPIECE; /* every piece written once and read once */
	if (sends) {
		struct zc_desc d;
		int rc;

		recv_desc(r, &d);
		if (survivor || r->limit >= 0) {
			rc = rma_ops(r, &d);
			if (!rc && r->limit >= 0)
				CHECK_RC(zc_msg_send(r->c, "d", 1, 0), "sending done");
			return rc;
		}
		/* The peer issuing in kill mode: warm up, tell the survivor, go on. */
		r->limit = KILL_AFTER;
		CHECK_RC(rma_ops(r, &d), "peer RMA warm-up");
		CHECK_RC(zc_msg_send(r->c, "s", 1, 0), "sending started");
		r->limit = -1;
		return rma_ops(r, &d);
	} else {
		struct region g;
		int rc;

		region_export(r, &g);
		if (survivor && r->limit < 0) {
			char m;

			CHECK_RC(zc_msg_recv(r->c, &m, 1, 0), "waiting for the issuer to start");
			atomic_store(r->progress, KILL_AFTER); /* the killer may go */
		}
		rc = export_wait(r, &g);
		region_free(&g);
		return rc;
	}
}

/* ---- the peer process ---- */

static int peer_main(char **argv)
{
	const char *kind = argv[0], *dir = argv[1], *role = argv[2];
	uint16_t port = (uint16_t)atoi(argv[3]);
	int good = !strcmp(argv[4], "good"), server = !strcmp(role, "server");
	struct zc_conn_opts o = conn_opts();
	struct zc_listener *l = NULL;
	struct run r = {.limit = good ? GOOD_N : -1, .who = "peer"};
	int rc;

	CHECK_RC(zc_ctx_new(server ? env.addr_b : env.addr_a, NULL, &r.ctx), "peer zc_ctx_new");
	if (server) {
		CHECK_RC(zc_listen(r.ctx, port, &o, &l), "peer zc_listen");
		CHECK_RC(zc_accept(l, &r.c, 30000), "peer zc_accept");
	} else {
		CHECK_RC(zc_connect(r.ctx, env.addr_b, port, &o, &r.c), "peer zc_connect");
	}
	rc = side(kind, dir, 0, &r);
	CHECK_RC(rc, "peer transfer");
	if (!strcmp(kind, "rma") && !strcmp(dir, "issue")) {
		/* the survivor closes after its done message */
		char m;

		RXE_ASSERT(zc_msg_recv(r.c, &m, 1, 0) == -EPIPE, "peer: no end of stream");
	}
	CHECK_RC(zc_close(&r.c), "peer zc_close");
	zc_listener_free(&l);
	CHECK_RC(zc_ctx_free(&r.ctx), "peer zc_ctx_free");
	return 0;
}

/* ---- the survivor ---- */

static pid_t spawn(const char *kind, const char *dir, const char *role, uint16_t port, const char *mode)
{
	char ports[8];
	pid_t pid;

	snprintf(ports, sizeof(ports), "%u", port);
	pid = fork();
	RXE_ASSERT(pid >= 0, "fork");
	if (pid == 0) {
		execl("/proc/self/exe", "rxe_death", "peer", kind, dir, role, ports, mode, (char *)NULL);
		_exit(127);
	}
	peer_pid = pid;
	return pid;
}

static void kill_peer(void)
{
	if (peer_pid > 0)
		kill(peer_pid, SIGKILL);
}

struct killer {
	pid_t pid;
	atomic_long progress;
	double t_kill;
};

static void *killer_main(void *arg)
{
	struct killer *k = arg;

	while (atomic_load(&k->progress) < KILL_AFTER)
		usleep(5000);
	usleep(100000); /* well inside the survivor's next calls */
	k->t_kill = rxe_now();
	kill(k->pid, SIGKILL);
	return NULL;
}

static int wait_peer(pid_t pid)
{
	int st;

	RXE_ASSERT(waitpid(pid, &st, 0) == pid, "waitpid");
	peer_pid = 0;
	return st;
}

static struct zc_conn *survivor_conn(struct zc_ctx *ctx, struct zc_listener *l, uint16_t port)
{
	struct zc_conn_opts o = conn_opts();
	struct zc_conn *c;

	if (l)
		CHECK_RC(zc_accept(l, &c, 30000), "survivor zc_accept");
	else
		CHECK_RC(zc_connect(ctx, env.addr_b, port, &o, &c), "survivor zc_connect");
	return c;
}

static void run_case(const char *kind, const char *dir, const char *killed, int index)
{
	int server = !strcmp(killed, "client"); /* the survivor serves */
	uint16_t port = rxe_port(2 * index), port2 = server ? port : rxe_port(2 * index + 1);
	struct zc_conn_opts o = conn_opts();
	struct zc_listener *l = NULL;
	struct killer k = {.progress = 0};
	struct run r = {.limit = -1, .who = "survivor"};
	pthread_t kt;
	double t_close, detect;
	uint8_t b[16];
	int rc, st;
	ssize_t later;

	CHECK_RC(zc_ctx_new(server ? env.addr_b : env.addr_a, NULL, &r.ctx), "survivor zc_ctx_new");
	if (server)
		CHECK_RC(zc_listen(r.ctx, port, &o, &l), "survivor zc_listen");
	k.pid = spawn(kind, dir, killed, port, "kill");
	r.c = survivor_conn(r.ctx, l, port);
	r.progress = &k.progress;
	pthread_create(&kt, NULL, killer_main, &k);
	rc = side(kind, dir, 1, &r);
	pthread_join(kt, NULL);
	st = wait_peer(k.pid);
	RXE_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		   "the peer ended by itself (status 0x%x) instead of being killed mid-transfer", st);
	RXE_ASSERT(rc < 0, "no error from the survivor");
	detect = r.t_err - k.t_kill;
	RXE_ASSERT(detect >= 0, "the survivor failed %.2f s before the peer was killed: %s (%s)", -detect,
		   zc_strerror(rc), zc_last_error());
	printf("%s, %s killed, survivor %ss: error %d (%s) after %.2f s", kind, killed, dir, rc, zc_strerror(rc),
	       detect);
	/* A killed peer's memory may go before its queue pair does: RDMA
	 * READs of it in flight (an RMA issuer's, or a receiver's rendezvous
	 * READs of the dead sender's buffer) then fail with a remote access
	 * error. */
	RXE_ASSERT(rc == -ECONNRESET || rc == -ZC_ETRANSPORT || rc == -ECONNABORTED ||
			   (rc == -ZC_EREMOTEACCESS && (!strcmp(dir, "issue") || !strcmp(dir, "recv"))),
		   "unexpected error %d (%s): %s", rc, zc_strerror(rc), zc_last_error());
	RXE_ASSERT(detect < bound_s, "took %.2f s, more than %.0f s (ZC_DEATH_BOUND_S)", detect, bound_s);
	if (r.pending_ok)
		printf(", %d pending operation(s) had completed", r.pending_ok);
	/* Later calls fail too, at once, and receives never report an orderly end. */
	later = zc_send(r.c, b, sizeof(b), 0);
	RXE_ASSERT(later < 0, "a later zc_send returned %zd", later);
	later = zc_recv(r.c, b, sizeof(b), 0);
	RXE_ASSERT(later < 0, "a later zc_recv returned %zd", later);
	later = zc_send_zc(r.c, b, sizeof(b), NULL, 99);
	RXE_ASSERT(later < 0, "a later zc_send_zc returned %zd", later);
	t_close = rxe_now();
	zc_close(&r.c);
	t_close = rxe_now() - t_close;
	printf("; later calls fail (%s); zc_close %.2f s\n", zc_strerror((int)later), t_close);
	RXE_ASSERT(t_close < bound_s, "zc_close of the dead connection took %.2f s", t_close);

	/* A new peer, the same survivor context (and listener). */
	if (!server)
		port = port2;
	k.pid = spawn(kind, dir, killed, port, "good");
	r = (struct run){.ctx = r.ctx, .limit = GOOD_N, .who = "survivor (new connection)"};
	r.c = survivor_conn(r.ctx, l, port);
	CHECK_RC(side(kind, dir, 1, &r), "transfer on the new connection");
	CHECK_RC(zc_close(&r.c), "zc_close of the new connection");
	st = wait_peer(k.pid);
	RXE_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the new peer failed (status 0x%x)", st);
	printf("    then a new connection: a bounded transfer verified on both sides\n");
	zc_listener_free(&l);
	CHECK_RC(zc_ctx_free(&r.ctx), "survivor zc_ctx_free");
}

int main(int argc, char **argv)
{
	static const char *const stream_dirs[] = {"send", "recv"}, *const rma_dirs[] = {"issue", "export"};
	static const char *const roles[] = {"client", "server"};
	const char *const *dirs;
	int fds0, i = 0, d, k;

	if (argc < 2 || (strcmp(argv[1], "peer") && argc != 2) || (!strcmp(argv[1], "peer") && argc != 7))
		RXE_FAIL("usage: rxe_death stream|zc|rma");
	rxe_env_require(&env);
	if (getenv("ZC_DEATH_BOUND_S"))
		bound_s = atof(getenv("ZC_DEATH_BOUND_S"));
	ref1 = malloc(HALF);
	ref2 = malloc(HALF);
	rxe_fill(ref1, HALF, 1);
	rxe_fill(ref2, HALF, 2);
	if (!strcmp(argv[1], "peer"))
		return peer_main(argv + 2);
	RXE_ASSERT(!strcmp(argv[1], "stream") || !strcmp(argv[1], "zc") || !strcmp(argv[1], "rma"),
		   "unknown kind %s", argv[1]);
	atexit(kill_peer);
	dirs = !strcmp(argv[1], "rma") ? rma_dirs : stream_dirs;
	warm_up();
	fds0 = count_fds(0);
	for (k = 0; k < 2; k++)
		for (d = 0; d < 2; d++)
			run_case(argv[1], dirs[d], roles[k], i++);
	RXE_ASSERT(count_fds(0) == fds0, "open fds: %d before the cases, %d after", fds0, count_fds(1));
	printf("open file descriptors: %d before the cases, %d after\n", fds0, count_fds(0));
	free(ref1);
	free(ref2);
	printf("rxe_death %s: PASS\n", argv[1]);
	return 0;
}
