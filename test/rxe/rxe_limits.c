/*
 * Exhausted limits over real rxe: each must fail with a clear error whose
 * zc_strerror()/zc_last_error() names the cause and the way out.
 *
 *   rxe_limits
 *
 *   sendq    a peer that never reads: zero-copy sends beyond its credits
 *            queue (4 x send_depth) until -EAGAIN naming the queue and
 *            zc_poll(); nothing is lost or corrupted on the way
 *   ring     zero-copy sends never reaped on a context with the smallest
 *            completion ring (cq_depth 64): -EAGAIN naming zc_poll() at
 *            exactly 64 outstanding; then all 64 are reaped with status 0 and
 *            the peer receives all 64 messages byte-verified
 *   recvq    zc_recv_zc beyond the posted-buffer limit (2 x credits + 2):
 *            -ENOSPC naming the posted buffers
 *   conns    more receive slots than the device's largest completion queue
 *            holds (connections with their own queues of 2 x 4096 + 1
 *            slots), on the connecting and on the accepting side: -ENOSPC
 *            naming the completion queue and the way out; the connections
 *            already open keep working
 *   memory   zc_mr_reg of unmapped memory, of a range running past the end of
 *            its mapping (1 TiB), and zc_send_zc of unmapped memory: -EFAULT
 *            "not mapped" with the verbs call; a PROT_NONE mapping is printed
 *            (6.1 registers it read-only)
 * (RLIMIT_MEMLOCK exhaustion is rxe_memlock's.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zcrdma.h"
#include "rxe_env.h"

static struct rxe_env env;

/* rc must be want, and the two messages must contain the words given. */
static void expect(long rc, int want, const char *in_strerror, const char *in_last, const char *what)
{
	const char *last = zc_last_error();

	printf("%s: %ld: %s | %s\n", what, rc, zc_strerror((int)rc), last);
	RXE_ASSERT(rc == want, "%s: expected %d (%s), got %ld (%s)", what, want, zc_strerror(want), rc,
		   zc_strerror((int)rc));
	RXE_ASSERT(strstr(zc_strerror((int)rc), in_strerror), "%s: zc_strerror does not say \"%s\"", what,
		   in_strerror);
	RXE_ASSERT(strstr(last, in_last), "%s: zc_last_error does not say \"%s\"", what, in_last);
}

/* ---- a server thread: accepts and holds connections, reads on request ---- */

struct server {
	struct zc_ctx *ctx;
	struct zc_listener *l;
	uint16_t port;
	int read_msgs;     /* read this many messages of 100 B from each connection */
	int want;          /* connections to try to accept */
	atomic_int stop;
	int accepted, read_ok;
	int accept_err;
	char accept_msg[512];
	pthread_t t;
};

static void *server_main(void *arg)
{
	struct server *s = arg;
	struct zc_conn *c[8];
	uint8_t buf[128];
	int i, k, n = 0;

	while (n < s->want && !atomic_load(&s->stop)) {
		int rc = zc_accept(s->l, &c[n], 200);

		if (rc == -ETIMEDOUT)
			continue;
		if (rc < 0) {
			s->accept_err = rc;
			snprintf(s->accept_msg, sizeof(s->accept_msg), "%s", zc_last_error());
			break;
		}
		n++;
	}
	s->accepted = n;
	for (i = 0; i < n; i++)
		for (k = 0; k < s->read_msgs; k++) {
			ssize_t r = zc_msg_recv(c[i], buf, sizeof(buf), 0);

			if (r == 100 && rxe_check(buf, 100, (uint32_t)k) < 0)
				s->read_ok++;
		}
	while (!atomic_load(&s->stop)) {
		struct zc_completion comp;

		zc_poll(s->ctx, &comp, 1, 50); /* keep the connections serviced */
	}
	for (i = 0; i < n; i++)
		zc_abort(&c[i]);
	return NULL;
}

/* co and lo may be NULL (defaults). */
static void server_start(struct server *s, int port_off, const struct zc_ctx_opts *co, const struct zc_conn_opts *lo,
			 int want, int read_msgs)
{
	memset(s, 0, sizeof(*s));
	CHECK_RC(zc_ctx_new(env.addr_b, co, &s->ctx), "server zc_ctx_new");
	s->port = rxe_port(port_off);
	CHECK_RC(zc_listen(s->ctx, s->port, lo, &s->l), "zc_listen");
	s->want = want;
	s->read_msgs = read_msgs;
	pthread_create(&s->t, NULL, server_main, s);
}

static void server_stop(struct server *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->t, NULL);
	zc_listener_free(&s->l);
	CHECK_RC(zc_ctx_free(&s->ctx), "server zc_ctx_free");
}

static struct zc_ctx *client_ctx(const struct zc_ctx_opts *co)
{
	struct zc_ctx *ctx;

	CHECK_RC(zc_ctx_new(env.addr_a, co, &ctx), "client zc_ctx_new");
	return ctx;
}

/* Connections with receive queues of their own, as large as credits go
 * (2 x 4096 + 1 slots of 80 bytes each): the device's largest completion
 * queue (rxe: 32767 entries, kept at least half free for sends) takes
 * three of them. */
static struct zc_ctx_opts own_queues(void)
{
	struct zc_ctx_opts co;

	zc_ctx_opts_init(&co);
	co.no_srq = 1;
	co.eager_size = 64;
	return co;
}

static struct zc_conn_opts max_credits(void)
{
	struct zc_conn_opts o;

	zc_conn_opts_init(&o);
	o.credits = 4096;
	o.send_depth = 4104;
	o.eager_size = 64;
	o.timeout_ms = 5000;
	return o;
}

static struct zc_conn_opts small_opts(void)
{
	struct zc_conn_opts o;

	zc_conn_opts_init(&o);
	o.credits = 8;
	o.send_depth = 16;
	return o;
}

/* Reaps everything within 10 s; returns how many completed with status 0. */
static int reap_all(struct zc_ctx *ctx, int n)
{
	struct zc_completion comp[64];
	int got = 0, ok = 0, tries, i;

	for (tries = 0; got < n && tries < 100; tries++) {
		int m = zc_poll(ctx, comp, 64, 100);

		CHECK_RC(m, "zc_poll");
		for (i = 0; i < m; i++)
			ok += comp[i].status == 0;
		got += m;
	}
	RXE_ASSERT(got == n, "%d of %d completions arrived", got, n);
	return ok;
}

static void sendq(void)
{
	struct server s;
	struct zc_conn_opts o = small_opts();
	struct zc_ctx *ctx = client_ctx(NULL);
	struct zc_conn *c;
	static uint8_t msgs[200][100];
	int n, rc = 0;

	server_start(&s, 0, NULL, NULL, 1, 0);
	CHECK_RC(zc_connect(ctx, env.addr_b, s.port, &o, &c), "zc_connect");
	for (n = 0; n < 200; n++) {
		rxe_fill(msgs[n], 100, (uint32_t)n);
		if ((rc = zc_send_zc(c, msgs[n], 100, NULL, (uint64_t)n)) < 0)
			break;
	}
	expect(rc, -EAGAIN, "try again", "zc_poll()", "sendq: zc_send_zc beyond credits + queue");
	/* A server that has not consumed anything lent the first window only
	 * (one message, docs/protocol.md section 4): one goes out, the rest
	 * wait in the queue. */
	printf("sendq: %d zero-copy sends accepted (first window 1, queue 4 x send_depth 16 = 64)\n", n);
	RXE_ASSERT(n == 1 + 4 * 16, "expected 65 accepted sends, got %d", n);
	/* Aborting completes every accepted send, the queued ones included. */
	zc_abort(&c);
	reap_all(ctx, n);
	server_stop(&s);
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
}

static void ring(void)
{
	struct server s;
	struct zc_conn_opts o = small_opts();
	struct zc_ctx_opts co;
	struct zc_ctx *ctx;
	struct zc_conn *c;
	static uint8_t msgs[80][100];
	int n, rc = 0, ok;

	zc_ctx_opts_init(&co);
	co.cq_depth = 64; /* the completion ring: 64 zero-copy operations */
	ctx = client_ctx(&co);
	server_start(&s, 1, NULL, NULL, 1, 64);
	CHECK_RC(zc_connect(ctx, env.addr_b, s.port, &o, &c), "zc_connect");
	for (n = 0; n < 80; n++) {
		rxe_fill(msgs[n], 100, (uint32_t)n);
		if ((rc = zc_send_zc(c, msgs[n], 100, NULL, (uint64_t)n)) < 0)
			break;
	}
	expect(rc, -EAGAIN, "try again", "reap completions with zc_poll()", "ring: unreaped zero-copy sends");
	RXE_ASSERT(n == 64, "the ring of a cq_depth 64 context took %d sends", n);
	ok = reap_all(ctx, n);
	RXE_ASSERT(ok == 64, "%d of 64 sends completed with status 0", ok);
	for (rc = 0; rc < 100 && s.read_ok < 64; rc++)
		usleep(100000);
	printf("ring: 64 sends reaped, the peer verified %d messages\n", s.read_ok);
	RXE_ASSERT(s.read_ok == 64, "the peer verified %d of 64 messages", s.read_ok);
	CHECK_RC(zc_close(&c), "zc_close");
	server_stop(&s);
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
}

static void recvq(void)
{
	struct server s;
	struct zc_conn_opts o = small_opts();
	struct zc_ctx *ctx = client_ctx(NULL);
	struct zc_conn *c;
	static uint8_t bufs[40][64];
	int n, rc = 0;

	server_start(&s, 2, NULL, NULL, 1, 0);
	CHECK_RC(zc_connect(ctx, env.addr_b, s.port, &o, &c), "zc_connect");
	for (n = 0; n < 40; n++)
		if ((rc = zc_recv_zc(c, bufs[n], 64, NULL, (uint64_t)n)) < 0)
			break;
	expect(rc, -ENOSPC, "queue full", "receive buffers already posted", "recvq: zc_recv_zc beyond the limit");
	RXE_ASSERT(n == 2 * 8 + 2, "expected 18 posted buffers, got %d", n);
	zc_abort(&c);
	RXE_ASSERT(reap_all(ctx, n) == 0, "an aborted posted receive completed with status 0");
	server_stop(&s);
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
}

static void conns(void)
{
	struct server s;
	struct zc_ctx_opts co = own_queues();
	struct zc_conn_opts o = max_credits();
	struct zc_ctx *ctx = client_ctx(&co);
	struct zc_conn *c[4];
	uint8_t msg[100];
	int rc, k;

	server_start(&s, 3, NULL, NULL, 3, 2);
	for (k = 0; k < 3; k++)
		CHECK_RC(zc_connect(ctx, env.addr_b, s.port, &o, &c[k]), "zc_connect");
	rc = zc_connect(ctx, env.addr_b, s.port, &o, &c[3]);
	expect(rc, -ENOSPC, "completion-queue", "fewer credits", "conns: a fourth connection of 8193 own slots");
	for (k = 0; k < 3; k++) { /* the open ones still work */
		rxe_fill(msg, 100, 0);
		CHECK_RC(zc_msg_send(c[k], msg, 100, 0), "zc_msg_send");
		rxe_fill(msg, 100, 1);
		CHECK_RC(zc_msg_send(c[k], msg, 100, 0), "zc_msg_send");
	}
	for (rc = 0; rc < 100 && s.read_ok < 6; rc++)
		usleep(100000);
	RXE_ASSERT(s.read_ok == 6, "the open connections delivered %d of 6 messages", s.read_ok);
	atomic_store(&s.stop, 1);
	for (k = 0; k < 3; k++)
		zc_abort(&c[k]);
	server_stop(&s);

	/* The accepting side runs out (a client context with room to spare). */
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
	ctx = client_ctx(NULL);
	server_start(&s, 4, &co, &o, 4, 0);
	for (k = 0; k < 4; k++) {
		rc = zc_connect(ctx, env.addr_b, s.port, NULL, &c[k]);
		if (rc < 0)
			break;
	}
	printf("conns: the client's fourth zc_connect to a full server: %d (%s): %s\n", rc, zc_strerror(rc),
	       zc_last_error());
	RXE_ASSERT(k == 3 && rc < 0, "the client made %d connections to a server with room for 3", k);
	for (rc = 0; rc < 100 && !s.accept_err; rc++)
		usleep(100000);
	printf("conns: zc_accept: %d (%s) | %s\n", s.accept_err, zc_strerror(s.accept_err), s.accept_msg);
	RXE_ASSERT(s.accept_err == -ENOSPC && strstr(s.accept_msg, "completion queue"),
		   "the server's zc_accept did not fail with -ENOSPC naming the completion queue");
	for (k = 0; k < 3; k++)
		zc_abort(&c[k]);
	server_stop(&s);
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
}

static void memory(void)
{
	struct server s;
	struct zc_ctx *ctx = client_ctx(NULL);
	struct zc_conn *c;
	struct zc_mr *mr = NULL;
	long page = sysconf(_SC_PAGESIZE);
	uint8_t *hole = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *none = mmap(NULL, 4 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *small = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int rc;

	RXE_ASSERT(hole != MAP_FAILED && none != MAP_FAILED && small != MAP_FAILED, "mmap");
	munmap(hole, 4 * page);
	memset(small, 1, 1 << 20);
	expect(zc_mr_reg(ctx, hole, 4 * page, 0, &mr), -EFAULT, "not mapped", "ibv_reg_mr",
	       "memory: zc_mr_reg of unmapped memory");
	expect(zc_mr_reg(ctx, small, 1ull << 40, 0, &mr), -EFAULT, "not mapped", "ibv_reg_mr",
	       "memory: zc_mr_reg of 1 TiB from a 1 MiB mapping");
	RXE_ASSERT(mr == NULL, "a failed zc_mr_reg set *mr");
	/* Kernel 6.1 pins read-only registrations with FOLL_FORCE, which takes
	 * PROT_NONE pages too: the read-only fallback then succeeds (6.2 no). */
	rc = zc_mr_reg(ctx, none, 4 * page, 0, &mr);
	printf("memory: zc_mr_reg of a PROT_NONE mapping: %d (%s)\n", rc, rc ? zc_last_error() : "registered read-only");
	RXE_ASSERT(rc == 0 || rc == -EFAULT, "zc_mr_reg of a PROT_NONE mapping: %d", rc);
	if (!rc)
		CHECK_RC(zc_mr_dereg(&mr), "zc_mr_dereg");

	server_start(&s, 5, NULL, NULL, 1, 0);
	CHECK_RC(zc_connect(ctx, env.addr_b, s.port, NULL, &c), "zc_connect");
	/* Unmapped right before the send: the connection's own queues, mapped
	 * meanwhile, could have landed in the first hole. 64 KiB is past the
	 * eager size, so nothing is copied; the registration may fail at once
	 * or when the send is posted, and then the completion carries it. */
	hole = mmap(NULL, 128 * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	RXE_ASSERT(hole != MAP_FAILED, "mmap");
	munmap(hole, 128 * 1024);
	rc = zc_send_zc(c, hole, 64 * 1024, NULL, 1);
	if (rc == 0) {
		struct zc_completion comp;

		RXE_ASSERT(zc_poll(ctx, &comp, 1, 10000) == 1, "no completion for the send of unmapped memory");
		rc = comp.status;
	}
	expect(rc, -EFAULT, "not mapped", "ibv_reg_mr", "memory: zc_send_zc of unmapped memory");
	/* The connection is unharmed. */
	CHECK_RC(zc_msg_send(c, small, 100, 0), "zc_msg_send after the failed registration");
	zc_abort(&c);
	server_stop(&s);
	munmap(none, 4 * page);
	munmap(small, 1 << 20);
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
}

int main(void)
{
	rxe_env_require(&env);
	sendq();
	ring();
	recvq();
	conns();
	memory();
	printf("rxe_limits: PASS\n");
	return 0;
}
