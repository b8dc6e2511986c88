/*
 * zc_wait_events() over real rxe: servers and clients that are event loops,
 * each sleeping only in zc_wait_events(). Every transfer is byte-verified.
 *
 *   rxe_events echo|sparse|refused|handshake|close|writable|dead|dead_fd
 *
 * echo       an event-loop server, 16 clients driven by one event-loop
 *            client thread (zc_connect_start, zc_close_start), each
 *            echoing messages of 1 B .. 1 MiB
 * sparse     16 idle connections; one becomes readable: the event arrives
 *            (taken by spinning on zc_take_events()) and
 *            zc_stats.event_checks grows by a handful, not by 16; then,
 *            after zc_wait_events(..., 0), another message wakes
 *            zc_ctx_fd() (NO MISSED WAKE-UPS after zc_take_events() looks)
 * refused    zc_connect_start to a port nobody listens on: CONNECTED with
 *            an error, the loop never blocked
 * handshake  raw rdma_cm clients that never finish their handshake (one
 *            abandons it after rdma_connect, one sends garbage private
 *            data): accept(0) and wait_events(0) never block, and a real
 *            client is still served
 * close      zc_close_start right after 1 MiB + 1: the peer gets it all and
 *            then EOF; CLOSED carries the user data and status 0
 * writable   ZC_DONTWAIT sends until -EAGAIN against a peer that does not
 *            read; once it reads, WRITABLE arrives
 * dead       a client whose link goes dark (netem 100 % loss) while idle:
 *            the server, only sleeping in zc_wait_events, gets ERROR
 *            within 10 s
 * dead_fd    the same with the server asleep in its own poll() on
 *            zc_ctx_fd(): the keepalive timer wakes the fd by itself
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <rdma/rdma_cma.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zcrdma.h"
#include "rxe_env.h"
#include "wire.h"

#define MiB (1024 * 1024)
#define NCLI 16
#define EV_MAX 32

static struct rxe_env env;
static uint16_t port;
static const size_t sizes[] = {1, 100, 4096, 16384, 16385, 65539, MiB};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static const char *ev_name(int t)
{
	static const char *names[] = {"?", "ACCEPT", "CONNECTED", "READABLE", "WRITABLE",
				      "PEER_CLOSED", "ERROR", "CLOSED", "COMPLETION"};

	return t >= 1 && t <= ZC_EV_COMPLETION ? names[t] : "?";
}

/* One zc_wait_events() that must report something within 10 s. */
static int wait_some(struct zc_ctx *ctx, struct zc_event *ev, const char *who)
{
	int n = zc_wait_events(ctx, ev, EV_MAX, 10000);

	CHECK_RC(n, "zc_wait_events");
	RXE_ASSERT(n > 0, "%s: no event within 10 s", who);
	return n;
}

/* Spins on zc_take_events() until something comes, for up to 10 s. */
static int take_some(struct zc_ctx *ctx, struct zc_event *ev, const char *who)
{
	double t0 = rxe_now();
	int n;

	while ((n = zc_take_events(ctx, ev, EV_MAX)) == 0)
		RXE_ASSERT(rxe_now() - t0 < 10, "%s: no event within 10 s", who);
	CHECK_RC(n, "zc_take_events");
	return n;
}

static struct zc_ctx *ctx_new(const char *addr)
{
	struct zc_ctx *ctx;

	CHECK_RC(zc_ctx_new(addr, NULL, &ctx), "zc_ctx_new");
	return ctx;
}

/* ---- the event-loop echo server (echo, close) ---- */

struct server {
	struct zc_ctx *ctx;
	struct zc_listener *l;
	int want;            /* connections to serve to their end */
	int closed;
	uint8_t *buf;
	atomic_int ready;
};

static void serve_readable(struct zc_conn *c, uint8_t *buf)
{
	for (;;) {
		ssize_t m = zc_msg_recv(c, buf, MiB, ZC_DONTWAIT);

		if (m == -EAGAIN)
			return;
		if (m == -EPIPE) { /* the client's end: close without waiting */
			CHECK_RC(zc_close_start(&c), "zc_close_start");
			return;
		}
		CHECK_RC(m, "server zc_msg_recv");
		CHECK_RC(zc_msg_send(c, buf, (size_t)m, 0), "server zc_msg_send");
	}
}

static void *echo_server(void *arg)
{
	struct server *s = arg;
	struct zc_event ev[EV_MAX];
	struct zc_conn *c;
	int n, i, slot = 0;

	while (s->closed < s->want) {
		n = wait_some(s->ctx, ev, "echo server");
		for (i = 0; i < n; i++) {
			switch (ev[i].type) {
			case ZC_EV_ACCEPT:
				RXE_ASSERT(ev[i].listener == s->l, "ACCEPT of another listener");
				while (zc_accept(s->l, &c, 0) == 0)
					zc_conn_set_data(c, (void *)(uintptr_t)(1000 + slot++));
				break;
			case ZC_EV_READABLE:
				RXE_ASSERT(zc_conn_data(ev[i].conn) == ev[i].data, "READABLE with the wrong data");
				serve_readable(ev[i].conn, s->buf);
				break;
			case ZC_EV_PEER_CLOSED:
				break;
			case ZC_EV_CLOSED:
				RXE_ASSERT(!ev[i].conn && (uintptr_t)ev[i].data >= 1000, "CLOSED without its data");
				CHECK_RC(ev[i].status, "server close");
				s->closed++;
				break;
			default:
				RXE_FAIL("echo server: unexpected %s event, status %d (%s)", ev_name(ev[i].type),
					 ev[i].status, zc_strerror(ev[i].status));
			}
		}
	}
	return NULL;
}

static void server_open(struct server *s, int want)
{
	memset(s, 0, sizeof(*s));
	s->ctx = ctx_new(env.addr_b);
	s->want = want;
	s->buf = malloc(MiB + 64);
	RXE_ASSERT(s->buf, "out of memory");
	CHECK_RC(zc_listen(s->ctx, port, NULL, &s->l), "zc_listen");
}

static void server_close(struct server *s)
{
	CHECK_RC(zc_listener_free(&s->l), "zc_listener_free");
	CHECK_RC(zc_ctx_free(&s->ctx), "server zc_ctx_free");
	free(s->buf);
}

/* ---- echo: 16 clients in one event loop ---- */

struct client {
	struct zc_conn *c;
	unsigned next;   /* the size index in flight */
	bool echoed, sent; /* its echo arrived; its send completion was reaped */
	uint8_t *sbuf;
	bool done;
};

static uint32_t seed_of(unsigned cli, unsigned idx)
{
	return cli * 131 + idx + 1;
}

/* Sends are zc_send_zc: a blocking rendezvous send in one loop while the
 * other loop blocks in its echo would deadlock two single-threaded loops.
 * The buffer is the library's until its completion, so the next message
 * goes once both the echo and the completion are in. */
static void client_next(struct client *k, unsigned me)
{
	if (!k->echoed || !k->sent)
		return;
	if (++k->next == NSIZES) {
		k->done = true;
		CHECK_RC(zc_close_start(&k->c), "client zc_close_start");
		return;
	}
	k->echoed = k->sent = false;
	rxe_fill(k->sbuf, sizes[k->next], seed_of(me, k->next));
	CHECK_RC(zc_send_zc(k->c, k->sbuf, sizes[k->next], NULL, me), "client zc_send_zc");
}

static void echo(void)
{
	struct server s;
	struct client cl[NCLI];
	struct zc_ctx *ctx;
	struct zc_event ev[EV_MAX];
	uint8_t *rbuf = malloc(MiB + 64);
	int closed = 0, i, n, connected = 0;
	pthread_t t;

	server_open(&s, NCLI);
	pthread_create(&t, NULL, echo_server, &s);
	ctx = ctx_new(env.addr_a);
	for (i = 0; i < NCLI; i++) {
		cl[i] = (struct client){.sbuf = malloc(MiB + 64)};
		RXE_ASSERT(cl[i].sbuf, "out of memory");
		CHECK_RC(zc_connect_start(ctx, env.addr_b, port, NULL, &cl[i].c), "zc_connect_start");
		zc_conn_set_data(cl[i].c, &cl[i]);
	}
	while (closed < NCLI) {
		n = wait_some(ctx, ev, "echo clients");
		for (i = 0; i < n; i++) {
			struct client *k = ev[i].data;
			unsigned me = (unsigned)(k - cl);
			ssize_t m;

			RXE_ASSERT(k >= cl && k < cl + NCLI, "%s event without the client's data", ev_name(ev[i].type));
			switch (ev[i].type) {
			case ZC_EV_CONNECTED:
				CHECK_RC(ev[i].status, "asynchronous connect");
				RXE_ASSERT(ev[i].conn == k->c, "CONNECTED names another connection");
				connected++;
				k->next = (unsigned)-1;
				k->echoed = k->sent = true;
				client_next(k, me);
				break;
			case ZC_EV_COMPLETION:
				RXE_ASSERT(ev[i].op == ZC_OP_SEND && ev[i].token == me, "completion op %d token %llu",
					   ev[i].op, (unsigned long long)ev[i].token);
				CHECK_RC(ev[i].status, "client zc_send_zc");
				RXE_ASSERT(ev[i].len == sizes[k->next], "sent %zu of %zu", ev[i].len, sizes[k->next]);
				k->sent = true;
				client_next(k, me);
				break;
			case ZC_EV_READABLE:
				if (k->done) /* the server's end of stream after ours */
					break;
				m = zc_msg_recv(k->c, rbuf, MiB, ZC_DONTWAIT);
				if (m == -EAGAIN)
					break;
				CHECK_RC(m, "client zc_msg_recv");
				RXE_ASSERT((size_t)m == sizes[k->next], "client %u: echo of %zd bytes, sent %zu", me, m,
					   sizes[k->next]);
				RXE_ASSERT(rxe_check(rbuf, (size_t)m, seed_of(me, k->next)) < 0,
					   "client %u: echo of %zu bytes corrupt at %ld", me, sizes[k->next],
					   rxe_check(rbuf, (size_t)m, seed_of(me, k->next)));
				k->echoed = true;
				client_next(k, me);
				break;
			case ZC_EV_CLOSED:
				RXE_ASSERT(k->done && !ev[i].conn, "CLOSED of client %u before it was done", me);
				CHECK_RC(ev[i].status, "client close");
				closed++;
				break;
			default:
				RXE_FAIL("echo client %u: unexpected %s, status %d (%s)", me, ev_name(ev[i].type),
					 ev[i].status, zc_strerror(ev[i].status));
			}
		}
	}
	pthread_join(t, NULL);
	printf("echo: %d clients connected asynchronously, each echoed %zu messages (1 B .. 1 MiB), closed\n",
	       connected, NSIZES);
	RXE_ASSERT(connected == NCLI, "%d of %d connected", connected, NCLI);
	for (i = 0; i < NCLI; i++)
		free(cl[i].sbuf);
	free(rbuf);
	CHECK_RC(zc_ctx_free(&ctx), "client zc_ctx_free");
	server_close(&s);
}

/* ---- sparse: one of N readable ---- */

struct sparse_client {
	/* 1: all connected; 2: the message may go; 3: the server is about to
	 * sleep on its fd, the second message may go; 4: server done */
	atomic_int phase;
};

static struct sparse_client sc;

static void *sparse_client_main(void *arg)
{
	struct zc_ctx *ctx = ctx_new(env.addr_a);
	struct zc_conn *c[NCLI];
	uint8_t msg[64];
	int i;

	(void)arg;
	for (i = 0; i < NCLI; i++)
		CHECK_RC(zc_connect(ctx, env.addr_b, port, NULL, &c[i]), "zc_connect");
	atomic_store(&sc.phase, 1);
	while (atomic_load(&sc.phase) < 2)
		zc_poll(ctx, (struct zc_completion[1]){0}, 1, 10);
	rxe_fill(msg, sizeof(msg), 77);
	CHECK_RC(zc_msg_send(c[NCLI / 2], msg, sizeof(msg), 0), "zc_msg_send");
	while (atomic_load(&sc.phase) < 3)
		zc_poll(ctx, (struct zc_completion[1]){0}, 1, 10);
	CHECK_RC(zc_msg_send(c[NCLI / 4], msg, sizeof(msg), 0), "zc_msg_send");
	while (atomic_load(&sc.phase) < 4)
		zc_poll(ctx, (struct zc_completion[1]){0}, 1, 10);
	for (i = 0; i < NCLI; i++)
		zc_close(&c[i]);
	CHECK_RC(zc_ctx_free(&ctx), "client zc_ctx_free");
	return NULL;
}

static void sparse(void)
{
	struct server s;
	struct zc_conn *c[NCLI];
	struct zc_event ev[EV_MAX];
	struct zc_stats before, after;
	uint8_t buf[64];
	int accepted = 0, n, i, got = -1;
	pthread_t t;

	server_open(&s, 0);
	pthread_create(&t, NULL, sparse_client_main, NULL);
	while (accepted < NCLI) {
		n = wait_some(s.ctx, ev, "sparse accept");
		for (i = 0; i < n; i++)
			if (ev[i].type == ZC_EV_ACCEPT)
				while (accepted < NCLI && zc_accept(s.l, &c[accepted], 0) == 0) {
					zc_conn_set_data(c[accepted], (void *)(uintptr_t)(accepted + 1));
					accepted++;
				}
	}
	/* Settle: every connection handed out has had its look. */
	while (zc_wait_events(s.ctx, ev, EV_MAX, 0) > 0)
		;
	while (atomic_load(&sc.phase) < 1)
		zc_wait_events(s.ctx, ev, EV_MAX, 10);
	while (zc_wait_events(s.ctx, ev, EV_MAX, 0) > 0)
		;
	CHECK_RC(zc_ctx_stats(s.ctx, &before), "zc_ctx_stats");
	atomic_store(&sc.phase, 2);
	while (got < 0) {
		n = take_some(s.ctx, ev, "sparse readable");
		for (i = 0; i < n; i++) {
			RXE_ASSERT(ev[i].type == ZC_EV_READABLE, "unexpected %s", ev_name(ev[i].type));
			got = (int)(uintptr_t)ev[i].data - 1;
		}
	}
	CHECK_RC(zc_ctx_stats(s.ctx, &after), "zc_ctx_stats");
	printf("sparse: connection %d of %d became readable; zc_take_events looked at %llu connections\n", got,
	       NCLI, (unsigned long long)(after.event_checks - before.event_checks));
	RXE_ASSERT(got == NCLI / 2 && zc_msg_recv(c[got], buf, sizeof(buf), 0) == sizeof(buf) &&
			   rxe_check(buf, sizeof(buf), 77) < 0,
		   "the readable connection's message");
	RXE_ASSERT(after.event_checks - before.event_checks <= 4,
		   "%llu looks for one readable connection of %d: the ready list was swept",
		   (unsigned long long)(after.event_checks - before.event_checks), NCLI);
	/* Prepare the fd as NO MISSED WAKE-UPS says, then sleep on it: the
	 * second message, sent only now, must wake it. */
	n = zc_wait_events(s.ctx, ev, EV_MAX, 0);
	RXE_ASSERT(n == 0, "unexpected %s before the second message", n > 0 ? ev_name(ev[0].type) : "error");
	atomic_store(&sc.phase, 3);
	{
		struct pollfd p = {.fd = zc_ctx_fd(s.ctx), .events = POLLIN};

		RXE_ASSERT(poll(&p, 1, 10000) == 1, "zc_ctx_fd() did not wake within 10 s for a message");
	}
	for (got = -1; got < 0;) {
		n = take_some(s.ctx, ev, "sparse second readable");
		for (i = 0; i < n; i++) {
			RXE_ASSERT(ev[i].type == ZC_EV_READABLE, "unexpected %s", ev_name(ev[i].type));
			got = (int)(uintptr_t)ev[i].data - 1;
		}
	}
	RXE_ASSERT(got == NCLI / 4 && zc_msg_recv(c[got], buf, sizeof(buf), 0) == sizeof(buf) &&
			   rxe_check(buf, sizeof(buf), 77) < 0,
		   "the second readable connection's message");
	printf("sparse: the second message woke zc_ctx_fd()\n");
	atomic_store(&sc.phase, 4);
	pthread_join(t, NULL);
	for (i = 0; i < NCLI; i++)
		zc_abort(&c[i]);
	server_close(&s);
}

/* ---- refused ---- */

static void refused(void)
{
	struct zc_ctx *ctx = ctx_new(env.addr_a);
	struct zc_conn_opts o;
	struct zc_conn *c;
	struct zc_event ev[EV_MAX];
	int token = 5, n, i, status = 1;
	double t0 = rxe_now(), slowest = 0;

	zc_conn_opts_init(&o);
	o.timeout_ms = 1500;
	CHECK_RC(zc_connect_start(ctx, env.addr_b, port, &o, &c), "zc_connect_start");
	zc_conn_set_data(c, &token);
	RXE_ASSERT(rxe_now() - t0 < 1, "zc_connect_start took %.2f s", rxe_now() - t0);
	while (status > 0) {
		double t1 = rxe_now();

		/* a look that must not wait, then a short sleep in the loop's own wait */
		n = zc_wait_events(ctx, ev, EV_MAX, 0);
		CHECK_RC(n, "zc_wait_events");
		if (rxe_now() - t1 > slowest)
			slowest = rxe_now() - t1;
		if (!n)
			n = zc_wait_events(ctx, ev, EV_MAX, 50);
		for (i = 0; i < n; i++) {
			RXE_ASSERT(ev[i].type == ZC_EV_CONNECTED && ev[i].conn == c && ev[i].data == &token,
				   "unexpected %s", ev_name(ev[i].type));
			status = ev[i].status;
		}
		RXE_ASSERT(rxe_now() - t0 < 15, "no CONNECTED event within 15 s");
	}
	printf("refused: CONNECTED with %d (%s) after %.2f s; slowest zc_wait_events(0) %.3f s; send: %s\n", status,
	       zc_strerror(status), rxe_now() - t0, slowest, zc_strerror((int)zc_msg_send(c, "x", 1, 0)));
	RXE_ASSERT(status == -ECONNREFUSED, "expected -ECONNREFUSED");
	RXE_ASSERT(zc_msg_send(c, "x", 1, 0) == -ECONNREFUSED, "a send on the failed connection");
	RXE_ASSERT(slowest < 1, "zc_wait_events(0) took %.2f s", slowest);
	CHECK_RC(zc_close(&c), "zc_close of the failed connection");
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
}

/* ---- handshake ---- */

/* A raw rdma_cm client: resolves, creates a QP, connects with priv (len
 * bytes) and then never looks at its event channel again. */
static struct rdma_cm_id *raw_connect(struct rdma_event_channel *ch, const void *priv, uint8_t len)
{
	struct sockaddr_storage src, dst;
	struct rdma_cm_id *id;
	struct rdma_cm_event *e;
	struct ibv_qp_init_attr qa = {.qp_type = IBV_QPT_RC,
				      .cap = {.max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1}};
	struct rdma_conn_param p = {.private_data = priv, .private_data_len = len, .responder_resources = 1,
				    .initiator_depth = 1, .retry_count = 6};
	struct addrinfo *ai;

	RXE_ASSERT(getaddrinfo(env.addr_a, NULL, NULL, &ai) == 0, "getaddrinfo");
	memcpy(&src, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	RXE_ASSERT(getaddrinfo(env.addr_b, NULL, NULL, &ai) == 0, "getaddrinfo");
	memcpy(&dst, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	((struct sockaddr_in *)&dst)->sin_port = htons(port);
	RXE_ASSERT(rdma_create_id(ch, &id, NULL, RDMA_PS_TCP) == 0, "rdma_create_id");
	RXE_ASSERT(rdma_resolve_addr(id, (struct sockaddr *)&src, (struct sockaddr *)&dst, 2000) == 0, "resolve_addr");
	RXE_ASSERT(rdma_get_cm_event(ch, &e) == 0 && e->event == RDMA_CM_EVENT_ADDR_RESOLVED, "ADDR_RESOLVED");
	rdma_ack_cm_event(e);
	RXE_ASSERT(rdma_resolve_route(id, 2000) == 0, "resolve_route");
	RXE_ASSERT(rdma_get_cm_event(ch, &e) == 0 && e->event == RDMA_CM_EVENT_ROUTE_RESOLVED, "ROUTE_RESOLVED");
	rdma_ack_cm_event(e);
	RXE_ASSERT(rdma_create_qp(id, NULL, &qa) == 0, "rdma_create_qp: %s", strerror(errno));
	RXE_ASSERT(rdma_connect(id, &p) == 0, "rdma_connect: %s", strerror(errno));
	return id;
}

static atomic_int hs_client_done;

static void *hs_client(void *arg)
{
	struct zc_ctx *ctx = ctx_new(env.addr_a);
	struct zc_conn *c;
	uint8_t msg[100], back[100];

	(void)arg;
	rxe_fill(msg, sizeof(msg), 9);
	CHECK_RC(zc_connect(ctx, env.addr_b, port, NULL, &c), "zc_connect of the real client");
	CHECK_RC(zc_msg_send(c, msg, sizeof(msg), 0), "zc_msg_send");
	RXE_ASSERT(zc_msg_recv(c, back, sizeof(back), 0) == sizeof(back) && !memcmp(msg, back, sizeof(msg)), "echo");
	CHECK_RC(zc_close(&c), "zc_close");
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
	atomic_store(&hs_client_done, 1);
	return NULL;
}

static void handshake(void)
{
	struct server s;
	struct rdma_event_channel *ch = rdma_create_event_channel();
	struct rdma_cm_id *abandon, *garbage;
	struct zc__priv pv = {.version = ZC_WIRE_VERSION, .credits = 8, .slot_size = 4096, .rd_atom = 1};
	uint8_t priv[ZC_PRIV_SIZE], junk[ZC_PRIV_SIZE];
	struct zc_event ev[EV_MAX];
	struct zc_conn *c;
	double slowest = 0, t0;
	int n, i, accepted = 0, errors = 0, rc;
	pthread_t t;

	RXE_ASSERT(ch, "rdma_create_event_channel");
	server_open(&s, 1);
	zc__priv_encode(priv, &pv);
	memset(junk, 0xa5, sizeof(junk));
	abandon = raw_connect(ch, priv, sizeof(priv));
	garbage = raw_connect(ch, junk, sizeof(junk));
	pthread_create(&t, NULL, hs_client, NULL);
	t0 = rxe_now();
	while (!atomic_load(&hs_client_done) || s.closed < 1) {
		double t1 = rxe_now();

		n = zc_wait_events(s.ctx, ev, EV_MAX, 0);
		CHECK_RC(n, "zc_wait_events");
		rc = zc_accept(s.l, &c, 0);
		if (rxe_now() - t1 > slowest)
			slowest = rxe_now() - t1;
		if (rc == 0) {
			accepted++;
			serve_readable(c, s.buf);
		} else if (rc != -EAGAIN) {
			printf("handshake: zc_accept(0) reported a refused request: %d (%s): %s\n", rc, zc_strerror(rc),
			       zc_last_error());
			errors++;
		}
		if (!n && rc == -EAGAIN)
			n = zc_wait_events(s.ctx, ev, EV_MAX, 20);
		for (i = 0; i < n; i++)
			if (ev[i].type == ZC_EV_READABLE)
				serve_readable(ev[i].conn, s.buf);
			else if (ev[i].type == ZC_EV_CLOSED)
				s.closed++;
		RXE_ASSERT(rxe_now() - t0 < 60, "the real client was not served within 60 s");
	}
	printf("handshake: real client served (%d accepted) beside an abandoned handshake and garbage private data "
	       "(%d refusal reported); slowest zc_accept(0) + zc_wait_events(0): %.3f s\n",
	       accepted, errors, slowest);
	RXE_ASSERT(accepted == 1, "%d connections accepted, expected only the real one", accepted);
	RXE_ASSERT(errors == 1, "the garbage private data was reported %d times", errors);
	RXE_ASSERT(slowest < 1, "a non-blocking call took %.2f s", slowest);
	pthread_join(t, NULL);
	rdma_destroy_qp(abandon);
	rdma_destroy_id(abandon);
	rdma_destroy_qp(garbage);
	rdma_destroy_id(garbage);
	rdma_destroy_event_channel(ch);
	server_close(&s);
}

/* ---- close ---- */

static void *close_client(void *arg)
{
	struct zc_ctx *ctx = ctx_new(env.addr_a);
	uint8_t *buf = malloc(MiB + 1);
	struct zc_conn *c;
	size_t got = 0;
	ssize_t n;

	(void)arg;
	CHECK_RC(zc_connect(ctx, env.addr_b, port, NULL, &c), "zc_connect");
	while ((n = zc_recv(c, buf + got, MiB + 1 - got + (got == MiB + 1), 0)) > 0)
		got += (size_t)n;
	CHECK_RC(n, "zc_recv");
	printf("close: the peer received %zu bytes, then end of stream\n", got);
	RXE_ASSERT(got == MiB + 1 && rxe_check(buf, got, 42) < 0, "received %zu bytes", got);
	CHECK_RC(zc_close(&c), "zc_close");
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
	free(buf);
	return NULL;
}

static void close_test(void)
{
	struct server s;
	struct zc_event ev[EV_MAX];
	struct zc_conn *c = NULL;
	uint8_t *buf = malloc(MiB + 1);
	int token = 1, n, i, closed = 0;
	pthread_t t;

	server_open(&s, 1);
	pthread_create(&t, NULL, close_client, NULL);
	while (!c) {
		n = wait_some(s.ctx, ev, "close accept");
		for (i = 0; i < n; i++)
			if (ev[i].type == ZC_EV_ACCEPT)
				CHECK_RC(zc_accept(s.l, &c, 0), "zc_accept");
	}
	zc_conn_set_data(c, &token);
	rxe_fill(buf, MiB + 1, 42);
	RXE_ASSERT(zc_send(c, buf, 100, 0) == 100 && zc_send(c, buf + 100, MiB + 1 - 100, 0) == MiB + 1 - 100,
		   "zc_send");
	CHECK_RC(zc_close_start(&c), "zc_close_start");
	RXE_ASSERT(!c, "zc_close_start left the handle");
	while (!closed) {
		n = wait_some(s.ctx, ev, "close");
		for (i = 0; i < n; i++) {
			RXE_ASSERT(ev[i].type == ZC_EV_CLOSED, "unexpected %s after zc_close_start",
				   ev_name(ev[i].type));
			RXE_ASSERT(!ev[i].conn && ev[i].data == &token, "CLOSED without the user data");
			CHECK_RC(ev[i].status, "the close");
			closed = 1;
		}
	}
	printf("close: CLOSED with the user data, status 0\n");
	pthread_join(t, NULL);
	free(buf);
	server_close(&s);
}

/* ---- writable ---- */

static atomic_int wr_phase; /* 1: the server may read */

static void *writable_server(void *arg)
{
	struct server *s = arg;
	struct zc_conn *c;
	uint8_t buf[256];
	ssize_t n;
	long got = 0;

	CHECK_RC(zc_accept(s->l, &c, 20000), "zc_accept");
	while (!atomic_load(&wr_phase))
		zc_poll(s->ctx, (struct zc_completion[1]){0}, 1, 10);
	while ((n = zc_msg_recv(c, buf, sizeof(buf), 0)) >= 0)
		got++;
	printf("writable: server read %ld messages, then %zd (%s)\n", got, n, zc_strerror((int)n));
	zc_abort(&c);
	return NULL;
}

static void writable(void)
{
	struct server s;
	struct zc_ctx *ctx = ctx_new(env.addr_a);
	struct zc_conn_opts o;
	struct zc_conn *c;
	struct zc_event ev[EV_MAX];
	uint8_t msg[200];
	int sent = 0, n, i, got_writable = 0;
	ssize_t rc;
	pthread_t t;

	server_open(&s, 0);
	pthread_create(&t, NULL, writable_server, &s);
	zc_conn_opts_init(&o);
	o.credits = 8;
	o.send_depth = 16;
	CHECK_RC(zc_connect(ctx, env.addr_b, port, &o, &c), "zc_connect");
	rxe_fill(msg, sizeof(msg), 3);
	while ((rc = zc_msg_send(c, msg, sizeof(msg), ZC_DONTWAIT)) == sizeof(msg))
		sent++;
	RXE_ASSERT(rc == -EAGAIN, "zc_msg_send ZC_DONTWAIT: %zd", rc);
	/* Nothing reads yet: no WRITABLE. */
	n = zc_wait_events(ctx, ev, EV_MAX, 0);
	RXE_ASSERT(n == 0, "%d events while the peer reads nothing (first: %s)", n, ev_name(ev[0].type));
	atomic_store(&wr_phase, 1);
	while (!got_writable) {
		n = wait_some(ctx, ev, "writable");
		for (i = 0; i < n; i++) {
			RXE_ASSERT(ev[i].type == ZC_EV_WRITABLE && ev[i].conn == c, "unexpected %s", ev_name(ev[i].type));
			got_writable++;
		}
	}
	rc = zc_msg_send(c, msg, sizeof(msg), ZC_DONTWAIT);
	printf("writable: %d sends fit the credits, then -EAGAIN; WRITABLE once the peer read; the next send: %zd\n",
	       sent, rc);
	RXE_ASSERT(rc == sizeof(msg), "a send after WRITABLE: %zd", rc);
	n = zc_wait_events(ctx, ev, EV_MAX, 0);
	RXE_ASSERT(n == 0, "WRITABLE repeated without a new -EAGAIN");
	CHECK_RC(zc_close(&c), "zc_close");
	pthread_join(t, NULL);
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
	server_close(&s);
}

/* ---- dead ---- */

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

static atomic_int dead_phase; /* 1: the client is connected and idle; 2: the server saw ERROR */

static void *dead_client(void *arg)
{
	struct zc_ctx *ctx = ctx_new(env.addr_a);
	struct zc_conn *c;

	(void)arg;
	CHECK_RC(zc_connect(ctx, env.addr_b, port, NULL, &c), "zc_connect");
	CHECK_RC(zc_msg_send(c, "hello", 5, 0), "zc_msg_send");
	atomic_store(&dead_phase, 1);
	/* idle: this thread makes no call on its context until the end */
	while (atomic_load(&dead_phase) < 2)
		usleep(10000);
	zc_abort(&c);
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
	return NULL;
}

/* own_poll: the server sleeps in its own poll() on zc_ctx_fd() and calls
 * zc_wait_events(..., 0) when it fires, following NO MISSED WAKE-UPS; the
 * keepalive timer must wake the fd by itself. */
static void dead(bool own_poll)
{
	struct server s;
	struct zc_event ev[EV_MAX];
	struct zc_stats st;
	struct zc_conn *c = NULL;
	uint8_t buf[16];
	double t_dark = 0;
	int n, i, status = 0, wakeups = 0;
	pthread_t t;

	if (system("modprobe sch_netem && tc qdisc show >/dev/null") != 0)
		RXE_FAIL("netem is not available");
	atexit(netem_off);
	server_open(&s, 0);
	pthread_create(&t, NULL, dead_client, NULL);
	while (!status) {
		n = zc_wait_events(s.ctx, ev, EV_MAX, own_poll ? 0 : 20000);
		CHECK_RC(n, "zc_wait_events");
		if (own_poll && n == 0) {
			struct pollfd p = {.fd = zc_ctx_fd(s.ctx), .events = POLLIN};

			RXE_ASSERT(poll(&p, 1, 20000) == 1, "zc_ctx_fd() silent for 20 s (the link went dark %.1f s ago)",
				   t_dark ? rxe_now() - t_dark : 0);
			wakeups++;
			continue;
		}
		RXE_ASSERT(n > 0, "no event within 20 s (the link went dark %.1f s ago)", t_dark ? rxe_now() - t_dark : 0);
		for (i = 0; i < n; i++) {
			switch (ev[i].type) {
			case ZC_EV_ACCEPT:
				CHECK_RC(zc_accept(s.l, &c, 0), "zc_accept");
				break;
			case ZC_EV_READABLE:
				RXE_ASSERT(zc_msg_recv(c, buf, sizeof(buf), ZC_DONTWAIT) == 5, "hello");
				RXE_ASSERT(zc_msg_recv(c, buf, sizeof(buf), ZC_DONTWAIT) == -EAGAIN, "drained");
				while (atomic_load(&dead_phase) < 1) /* the client's send returned */
					usleep(1000);
				/* both sides idle from here: cut the link */
				netem("add");
				t_dark = rxe_now();
				break;
			case ZC_EV_ERROR:
				RXE_ASSERT(ev[i].conn == c && t_dark, "ERROR before the link went dark");
				status = ev[i].status;
				break;
			default:
				RXE_FAIL("dead: unexpected %s", ev_name(ev[i].type));
			}
		}
	}
	CHECK_RC(zc_ctx_stats(s.ctx, &st), "zc_ctx_stats");
	printf("dead%s: ERROR %d (%s) %.1f s after the link went dark; %llu keepalive checks, %d fd wake-ups\n",
	       own_poll ? "_fd" : "", status, zc_strerror(status), rxe_now() - t_dark,
	       (unsigned long long)st.keepalive_checks, wakeups);
	RXE_ASSERT(status == -ZC_ETRANSPORT || status == -ECONNRESET, "expected a transport error");
	RXE_ASSERT(rxe_now() - t_dark < 10, "took %.1f s, more than 10", rxe_now() - t_dark);
	netem_off();
	atomic_store(&dead_phase, 2);
	pthread_join(t, NULL);
	zc_abort(&c);
	server_close(&s);
}

int main(int argc, char **argv)
{
	const char *mode = argc == 2 ? argv[1] : "";

	rxe_env_require(&env);
	port = rxe_port(9);
	if (!strcmp(mode, "echo"))
		echo();
	else if (!strcmp(mode, "sparse"))
		sparse();
	else if (!strcmp(mode, "refused"))
		refused();
	else if (!strcmp(mode, "handshake"))
		handshake();
	else if (!strcmp(mode, "close"))
		close_test();
	else if (!strcmp(mode, "writable"))
		writable();
	else if (!strcmp(mode, "dead"))
		dead(false);
	else if (!strcmp(mode, "dead_fd"))
		dead(true);
	else
		RXE_FAIL("usage: rxe_events echo|sparse|refused|handshake|close|writable|dead|dead_fd");
	printf("rxe_events %s: PASS\n", mode);
	return 0;
}
