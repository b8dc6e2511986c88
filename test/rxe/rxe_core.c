/*
 * Defects of the core found by reading it, each pinned by a test over real
 * rxe (zcrdma_static: read_postfail reaches the QP to inject one fault).
 *
 *   rxe_core mr_readonly        zc_mr_reg(REMOTE_WRITE) of read-only memory
 *                               is -EFAULT, not a crash
 *   rxe_core read_room          a burst of zc_rma_write leaves one send
 *                               request free; a zc_recv_zc buffer's
 *                               rendezvous read still runs as the writes
 *                               complete (it used to wait forever)
 *   rxe_core close_completions  operations pending at zc_abort/zc_close
 *                               complete with -ECONNABORTED, conn NULL and
 *                               the connection's user data (no dangling
 *                               pointer under ASan)
 *   rxe_core recvzc_readonly    a read-only zc_recv_zc buffer completes with
 *                               -EFAULT (not -ENOMEM) and the message goes
 *                               to the next posted buffer, byte-verified
 *   rxe_core read_postfail      the first READ post of a posted buffer fails:
 *                               the buffer completes with the error and its
 *                               cache entry is released (deregistered when
 *                               invalidated)
 *   rxe_core recvzc_order       six posted buffers take six messages sent at
 *                               once (rendezvous read together, eager ones,
 *                               one too long for its buffer): completions in
 *                               posting order, each byte-verified
 *   rxe_core recvzc_onehop      six buffers of one zc_mr, posted and
 *                               advertised before anything is sent: the
 *                               messages that fit are written in one hop
 *                               (PUT, no RTS/READ/FIN), an eager one and one
 *                               too long take the usual paths; completions
 *                               in posting order, each byte-verified; the
 *                               four windows the PUTs invalidated are kept,
 *                               the other two revoked
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "zcrdma.h"
#include "rxe_env.h"
#include "conn.h"

#define MiB (1024 * 1024)
#define BIG MiB

static struct rxe_env env;

struct pair {
	struct zc_ctx *sctx, *cctx;
	struct zc_listener *l;
	struct zc_conn *s, *c;
	uint16_t port;
};

static void *accept_main(void *arg)
{
	struct pair *p = arg;

	CHECK_RC(zc_accept(p->l, &p->s, 20000), "zc_accept");
	return NULL;
}

static void pair_open(struct pair *p, int port_offset)
{
	pthread_t t;

	CHECK_RC(zc_ctx_new(env.addr_b, NULL, &p->sctx), "server zc_ctx_new");
	CHECK_RC(zc_ctx_new(env.addr_a, NULL, &p->cctx), "client zc_ctx_new");
	p->port = rxe_port(port_offset);
	CHECK_RC(zc_listen(p->sctx, p->port, NULL, &p->l), "zc_listen");
	RXE_ASSERT(!pthread_create(&t, NULL, accept_main, p), "pthread_create");
	CHECK_RC(zc_connect(p->cctx, env.addr_b, p->port, NULL, &p->c), "zc_connect");
	pthread_join(t, NULL);
}

static void pair_close(struct pair *p)
{
	if (p->c)
		zc_close(&p->c);
	if (p->s)
		zc_close(&p->s);
	zc_listener_free(&p->l);
	CHECK_RC(zc_ctx_free(&p->sctx), "zc_ctx_free");
	CHECK_RC(zc_ctx_free(&p->cctx), "zc_ctx_free");
}

static struct zc_completion reap(struct zc_ctx *ctx)
{
	struct zc_completion comp;

	RXE_ASSERT(zc_poll(ctx, &comp, 1, 30000) == 1, "no completion within 30 s");
	return comp;
}

static void *readonly_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	RXE_ASSERT(p != MAP_FAILED, "mmap");
	return p;
}

/* ---- mr_readonly ---- */

static void test_mr_readonly(void)
{
	struct zc_ctx *ctx;
	struct zc_mr *mr = NULL;
	void *ro = readonly_map(MiB);
	int rc;

	CHECK_RC(zc_ctx_new(env.addr_a, NULL, &ctx), "zc_ctx_new");
	rc = zc_mr_reg(ctx, ro, MiB, ZC_ACCESS_REMOTE_WRITE, &mr);
	RXE_ASSERT(rc == -EFAULT && !mr, "remote write on read-only memory: %d (%s)", rc, zc_last_error());
	CHECK_RC(zc_mr_reg(ctx, ro, MiB, ZC_ACCESS_REMOTE_READ, &mr), "read-only registration for remote read");
	CHECK_RC(zc_mr_dereg(&mr), "zc_mr_dereg");
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
	munmap(ro, MiB);
}

/* ---- read_room ---- */

#define WRITE_LEN (256 * 1024)
#define RECV_TOKEN 1000000

struct room_server {
	struct pair *p;
	uint8_t *region;
};

static void *room_server_main(void *arg)
{
	struct room_server *rs = arg;
	struct zc_conn *s = rs->p->s;
	struct zc_mr *mr;
	struct zc_export *e;
	struct zc_desc d;
	uint8_t *big = malloc(BIG);
	char done[8];

	rxe_fill(big, BIG, 21);
	CHECK_RC(zc_mr_reg(rs->p->sctx, rs->region, WRITE_LEN, ZC_ACCESS_REMOTE_WRITE, &mr), "zc_mr_reg");
	CHECK_RC(zc_export(s, mr, 0, WRITE_LEN, ZC_ACCESS_REMOTE_WRITE, &e, &d), "zc_export");
	CHECK_RC(zc_msg_send(s, &d, sizeof(d), 0), "send descriptor");
	/* Returns once the client has read it all. */
	RXE_ASSERT(zc_msg_send(s, big, BIG, 0) == BIG, "rendezvous send: %s", zc_last_error());
	RXE_ASSERT(zc_msg_recv(s, done, sizeof(done), 0) == 5, "done message: %s", zc_last_error());
	CHECK_RC(zc_export_revoke(&e), "zc_export_revoke");
	CHECK_RC(zc_mr_dereg(&mr), "zc_mr_dereg");
	free(big);
	return NULL;
}

static void test_read_room(void)
{
	struct pair p = {0};
	struct room_server rs = {.p = &p, .region = malloc(WRITE_LEN)};
	uint8_t *src = malloc(WRITE_LEN), *dst = malloc(BIG + 1);
	struct zc_desc d;
	pthread_t t;
	ssize_t n;
	int rc, writes = 0, i;
	long bad;

	pair_open(&p, 0);
	RXE_ASSERT(!pthread_create(&t, NULL, room_server_main, &rs), "pthread_create");
	RXE_ASSERT(zc_msg_recv(p.c, &d, sizeof(d), 0) == sizeof(d), "descriptor: %s", zc_last_error());
	/* The RTS is here: the read below starts at once. */
	n = zc_msg_peek(p.c, 0);
	RXE_ASSERT(n == BIG, "peek: %zd (%s)", n, zc_last_error());
	memset(src, 0x3c, WRITE_LEN);
	while ((rc = zc_rma_write(p.c, src, WRITE_LEN, NULL, &d, 0, (uint64_t)writes)) == 0)
		writes++;
	RXE_ASSERT(rc == -EAGAIN && writes >= 8, "burst ended with %d after %d writes", rc, writes);
	/* Nothing was reaped since the burst: the READ round starts with one
	 * send request free and must be driven by the writes' completions. */
	CHECK_RC(zc_recv_zc(p.c, dst + 1, BIG, NULL, RECV_TOKEN), "zc_recv_zc");
	for (i = 0; i <= writes; i++) {
		struct zc_completion comp = reap(p.cctx);

		if (comp.token == RECV_TOKEN) {
			RXE_ASSERT(comp.op == ZC_OP_RECV && comp.status == 0 && comp.len == BIG,
				   "rendezvous receive: op %d status %d len %zu", comp.op, comp.status, comp.len);
			continue;
		}
		RXE_ASSERT(comp.op == ZC_OP_WRITE && comp.status == 0 && comp.len == WRITE_LEN,
			   "write %llu: op %d status %d", (unsigned long long)comp.token, comp.op, comp.status);
	}
	bad = rxe_check(dst + 1, BIG, 21);
	RXE_ASSERT(bad < 0, "rendezvous bytes differ at %ld", bad);
	CHECK_RC(zc_msg_send(p.c, "done", 5, 0), "done");
	pthread_join(t, NULL);
	for (i = 0; i < WRITE_LEN; i++)
		RXE_ASSERT(rs.region[i] == 0x3c, "written byte %d is %#x", i, rs.region[i]);
	pair_close(&p);
	free(rs.region);
	free(src);
	free(dst);
	printf("read_room: %d writes left one send request free; the 1 MiB read completed, verified\n", writes);
}

/* ---- close_completions ---- */

static void expect_aborted(struct zc_ctx *ctx, int count, void *data)
{
	int i;

	for (i = 0; i < count; i++) {
		struct zc_completion comp = reap(ctx);

		RXE_ASSERT(comp.status == -ECONNABORTED, "completion %d: status %d", i, comp.status);
		RXE_ASSERT(comp.conn == NULL, "completion %d names the freed connection %p", i, (void *)comp.conn);
		RXE_ASSERT(comp.data == data, "completion %d: data %p, expected %p", i, comp.data, data);
	}
}

static void test_close_completions(void)
{
	struct pair p = {0};
	static uint8_t bufs[4][4096];
	int marker_abort, marker_close, i;

	pair_open(&p, 1);
	zc_conn_set_data(p.c, &marker_abort);
	RXE_ASSERT(zc_conn_data(p.c) == &marker_abort, "zc_conn_data");
	for (i = 0; i < 3; i++)
		CHECK_RC(zc_recv_zc(p.c, bufs[i], sizeof(bufs[i]), NULL, (uint64_t)i), "zc_recv_zc");
	CHECK_RC(zc_abort(&p.c), "zc_abort");
	expect_aborted(p.cctx, 3, &marker_abort);
	pair_close(&p);

	p = (struct pair){0};
	pair_open(&p, 2);
	zc_conn_set_data(p.c, &marker_close);
	CHECK_RC(zc_recv_zc(p.c, bufs[3], sizeof(bufs[3]), NULL, 7), "zc_recv_zc");
	CHECK_RC(zc_close(&p.c), "zc_close");
	expect_aborted(p.cctx, 1, &marker_close);
	pair_close(&p);
	printf("close_completions: 3 after abort, 1 after close: -ECONNABORTED, conn NULL, user data kept\n");
}

/* ---- recvzc_readonly ---- */

static void *big_sender_main(void *arg)
{
	struct pair *p = arg;
	uint8_t *big = malloc(BIG);
	ssize_t n;

	rxe_fill(big, BIG, 33);
	n = zc_msg_send(p->s, big, BIG, 0);
	RXE_ASSERT(n == BIG, "send: %zd (%s)", n, zc_last_error());
	free(big);
	return NULL;
}

static void test_recvzc_readonly(void)
{
	struct pair p = {0};
	uint8_t *ro = readonly_map(BIG), *ok = malloc(BIG);
	struct zc_completion comp;
	pthread_t t;
	long bad;

	pair_open(&p, 3);
	CHECK_RC(zc_recv_zc(p.c, ro, BIG, NULL, 1), "zc_recv_zc read-only");
	CHECK_RC(zc_recv_zc(p.c, ok, BIG, NULL, 2), "zc_recv_zc");
	RXE_ASSERT(!pthread_create(&t, NULL, big_sender_main, &p), "pthread_create");
	comp = reap(p.cctx);
	RXE_ASSERT(comp.token == 1 && comp.status == -EFAULT, "read-only buffer: token %llu status %d (%s)",
		   (unsigned long long)comp.token, comp.status, zc_strerror(comp.status));
	comp = reap(p.cctx);
	RXE_ASSERT(comp.token == 2 && comp.status == 0 && comp.len == BIG, "next buffer: token %llu status %d len %zu",
		   (unsigned long long)comp.token, comp.status, comp.len);
	bad = rxe_check(ok, BIG, 33);
	RXE_ASSERT(bad < 0, "bytes differ at %ld", bad);
	pthread_join(t, NULL);
	pair_close(&p);
	munmap(ro, BIG);
	free(ok);
	printf("recvzc_readonly: -EFAULT for the read-only buffer, the message verified in the next\n");
}

/* ---- read_postfail ---- */

static int (*real_post_send)(struct ibv_qp *, struct ibv_send_wr *, struct ibv_send_wr **);
static int fail_next_read;

static int faulty_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	if (fail_next_read && wr->opcode == IBV_WR_RDMA_READ) {
		fail_next_read = 0;
		*bad = wr;
		errno = ENOMEM; /* some providers set it, some do not */
		return ENOMEM;
	}
	return real_post_send(qp, wr, bad);
}

static void *big_sender_quiet(void *arg)
{
	struct pair *p = arg;
	uint8_t *big = malloc(BIG);

	rxe_fill(big, BIG, 44);
	/* The receiver's connection fails under this send: any error is fine. */
	RXE_ASSERT(zc_msg_send(p->s, big, BIG, 0) < 0, "the send succeeded though its reader failed");
	free(big);
	return NULL;
}

static void test_read_postfail(void)
{
	struct pair p = {0};
	uint8_t *buf = malloc(BIG);
	struct ibv_context *verbs;
	struct zc_completion comp;
	struct zc_stats before, after;
	pthread_t t;
	int dropped;

	pair_open(&p, 4);
	verbs = p.c->ep.qp.qp->context;
	real_post_send = verbs->ops.post_send;
	verbs->ops.post_send = faulty_post_send;
	fail_next_read = 1;
	CHECK_RC(zc_recv_zc(p.c, buf, BIG, NULL, 9), "zc_recv_zc");
	RXE_ASSERT(!pthread_create(&t, NULL, big_sender_quiet, &p), "pthread_create");
	comp = reap(p.cctx);
	RXE_ASSERT(comp.token == 9 && comp.status == -ENOMEM, "posted buffer: token %llu status %d",
		   (unsigned long long)comp.token, comp.status);
	RXE_ASSERT(!fail_next_read, "no READ was posted");
	verbs->ops.post_send = real_post_send;
	CHECK_RC(zc_ctx_stats(p.cctx, &before), "zc_ctx_stats");
	dropped = zc_mr_invalidate(p.cctx, buf, BIG);
	CHECK_RC(zc_ctx_stats(p.cctx, &after), "zc_ctx_stats");
	RXE_ASSERT(dropped == 1, "invalidate dropped %d entries", dropped);
	RXE_ASSERT(after.deregs == before.deregs + 1, "the buffer's cache entry is still referenced (%llu deregs)",
		   (unsigned long long)(after.deregs - before.deregs));
	zc_abort(&p.c);
	pthread_join(t, NULL);
	pair_close(&p);
	free(buf);
	printf("read_postfail: the buffer completed with -ENOMEM and its registration was released\n");
}

/* ---- recvzc_order, recvzc_onehop ---- */

#define N_MSGS 6

/* Messages of these lengths, sent at once with zc_send_zc from a second
 * thread, each filled with the pattern seed + i. */
struct burst {
	struct pair *p;
	const size_t *len;
	uint32_t seed;
};

static void *burst_sender(void *arg)
{
	const struct burst *b = arg;
	uint8_t *bufs[N_MSGS];
	int i;

	for (i = 0; i < N_MSGS; i++) {
		bufs[i] = malloc(b->len[i]);
		RXE_ASSERT(bufs[i], "out of memory");
		rxe_fill(bufs[i], b->len[i], b->seed + (uint32_t)i);
		CHECK_RC(zc_send_zc(b->p->s, bufs[i], b->len[i], NULL, (uint64_t)i), "zc_send_zc");
	}
	for (i = 0; i < N_MSGS; i++)
		CHECK_RC(reap(b->p->sctx).status, "zero-copy send");
	for (i = 0; i < N_MSGS; i++) {
		zc_mr_invalidate(b->p->sctx, bufs[i], b->len[i]);
		free(bufs[i]);
	}
	return NULL;
}

/* The receives of a burst into posted buffers bufs (of lengths cap),
 * tokens 0..N_MSGS-1: they complete in posting order, a message too long
 * for its buffer with -EMSGSIZE, the others byte for byte. */
static void expect_burst(struct pair *p, const struct burst *b, uint8_t *const *bufs, const size_t *cap)
{
	int i;

	for (i = 0; i < N_MSGS; i++) {
		struct zc_completion comp = reap(p->cctx);
		int want = b->len[i] > cap[i] ? -EMSGSIZE : 0;
		long bad;

		RXE_ASSERT(comp.op == ZC_OP_RECV && comp.token == (uint64_t)i,
			   "completion %d: op %d token %llu (receives must complete in posting order)", i, comp.op,
			   (unsigned long long)comp.token);
		RXE_ASSERT(comp.status == want && comp.len == b->len[i], "buffer %d: status %d len %zu, want %d %zu",
			   i, comp.status, comp.len, want, b->len[i]);
		bad = want ? -1 : rxe_check(bufs[i], b->len[i], b->seed + (uint32_t)i);
		RXE_ASSERT(bad < 0, "buffer %d: bytes differ at %ld", i, bad);
	}
}

/* message length, posted buffer length: eager and rendezvous mixed, the
 * third too long for its buffer (discarded with -EMSGSIZE) */
static const size_t order_msg[N_MSGS] = {MiB, 100, 65539, 200000, 1, MiB + 1};
static const size_t order_buf[N_MSGS] = {MiB + 8, 4096, 4096, MiB, 64, 2 * MiB};

static void test_recvzc_order(void)
{
	struct pair p = {0};
	struct burst b = {.p = &p, .len = order_msg, .seed = 50};
	uint8_t *bufs[N_MSGS];
	pthread_t t;
	int i;

	pair_open(&p, 5);
	for (i = 0; i < N_MSGS; i++) {
		/* odd addresses: the READs land unaligned */
		bufs[i] = (uint8_t *)malloc(order_buf[i] + 1) + 1;
		RXE_ASSERT(bufs[i] != (uint8_t *)1, "out of memory");
		CHECK_RC(zc_recv_zc(p.c, bufs[i], order_buf[i], NULL, (uint64_t)i), "zc_recv_zc");
	}
	RXE_ASSERT(!pthread_create(&t, NULL, burst_sender, &b), "pthread_create");
	expect_burst(&p, &b, bufs, order_buf);
	pthread_join(t, NULL);
	pair_close(&p);
	for (i = 0; i < N_MSGS; i++)
		free(bufs[i] - 1);
	printf("recvzc_order: %d messages, rendezvous and eager mixed, completed in order and verified\n", N_MSGS);
}

/* all buffers exceed the eager size (16 KiB), so all are advertised;
 * message 3 is eager, message 4 too long */
static const size_t hop_buf[N_MSGS] = {65536 + 3, 20000, 4 * MiB + 1, 65536, 30000, MiB};
static const size_t hop_msg[N_MSGS] = {65536 + 3, 17000, 4 * MiB + 1, 100, 40000, MiB};

static struct zc_stats stats_of(struct zc_ctx *ctx)
{
	struct zc_stats st;

	CHECK_RC(zc_ctx_stats(ctx, &st), "zc_ctx_stats");
	return st;
}

static void test_recvzc_onehop(void)
{
	struct pair p = {0};
	struct burst b = {.p = &p, .len = hop_msg, .seed = 70};
	size_t total = 0, off = 0;
	struct zc_completion comp;
	struct zc_stats rs, ss;
	struct zc_mr *mr;
	uint8_t *region, *bufs[N_MSGS];
	pthread_t t;
	int i, n;

	pair_open(&p, 6);
	for (i = 0; i < N_MSGS; i++)
		total += hop_buf[i] + 8;
	region = calloc(1, total);
	RXE_ASSERT(region, "out of memory");
	CHECK_RC(zc_mr_reg(p.cctx, region, total, 0, &mr), "zc_mr_reg");
	for (i = 0; i < N_MSGS; i++) {
		/* odd addresses: the writes land unaligned */
		bufs[i] = region + off + 1 + (size_t)i % 3;
		off += hop_buf[i] + 8;
		CHECK_RC(zc_recv_zc(p.c, bufs[i], hop_buf[i], mr, (uint64_t)i), "zc_recv_zc");
	}
	/* Both sides progress until every buffer is advertised: the ADVs need
	 * credits the sender returns as it takes them. Nothing completes yet. */
	for (n = 0; n < 3000 && stats_of(p.cctx).adv_msgs < N_MSGS; n++) {
		RXE_ASSERT(zc_poll(p.cctx, &comp, 1, 5) == 0, "a completion before anything was sent");
		RXE_ASSERT(zc_poll(p.sctx, &comp, 1, 5) == 0, "a completion before anything was sent");
	}
	rs = stats_of(p.cctx);
	RXE_ASSERT(rs.adv_msgs == N_MSGS, "%llu of %d buffers advertised", (unsigned long long)rs.adv_msgs, N_MSGS);
	/* the sender keeps them until its messages go */
	for (n = 0; n < 3000 && p.s->ep.adv_count < N_MSGS; n++)
		RXE_ASSERT(zc_poll(p.sctx, &comp, 1, 5) == 0, "a completion before anything was sent");
	RXE_ASSERT(p.s->ep.adv_count == N_MSGS, "the sender holds %u advertisements", p.s->ep.adv_count);

	RXE_ASSERT(!pthread_create(&t, NULL, burst_sender, &b), "pthread_create");
	expect_burst(&p, &b, bufs, hop_buf);
	pthread_join(t, NULL);
	/* nothing written outside the messages */
	for (i = 0; i < N_MSGS; i++) {
		RXE_ASSERT(bufs[i][-1] == 0, "buffer %d: the byte before it was written", i);
		for (size_t k = hop_msg[i] > hop_buf[i] ? 0 : hop_msg[i]; k < hop_buf[i]; k++)
			RXE_ASSERT(bufs[i][k] == 0, "buffer %d: byte %zu beyond the message was written", i, k);
	}
	ss = stats_of(p.sctx);
	RXE_ASSERT(ss.put_msgs == 4 && ss.rndv_msgs == 1,
		   "sender: %llu one-hop and %llu RTS rendezvous, want 4 and 1 (the message too long for its buffer)",
		   (unsigned long long)ss.put_msgs, (unsigned long long)ss.rndv_msgs);
	RXE_ASSERT(p.c->ep.n_mw_spare == 4, "%u windows kept for reuse, want the 4 the PUTs invalidated",
		   p.c->ep.n_mw_spare);
	printf("recvzc_onehop: %d buffers advertised, %llu messages written in one hop, 1 by RTS, 1 eager; "
	       "in order and verified\n",
	       N_MSGS, (unsigned long long)ss.put_msgs);
	/* every buffer completed: no window is left over the region */
	CHECK_RC(zc_mr_dereg(&mr), "zc_mr_dereg");
	pair_close(&p);
	free(region);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} modes[] = {
		{"mr_readonly", test_mr_readonly},
		{"read_room", test_read_room},
		{"close_completions", test_close_completions},
		{"recvzc_readonly", test_recvzc_readonly},
		{"read_postfail", test_read_postfail},
		{"recvzc_order", test_recvzc_order},
		{"recvzc_onehop", test_recvzc_onehop},
	};
	size_t i;

	rxe_env_require(&env);
	for (i = 0; argc == 2 && i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(argv[1], modes[i].name)) {
			modes[i].fn();
			printf("PASS rxe_core %s\n", argv[1]);
			return 0;
		}
	fprintf(stderr, "usage: rxe_core mr_readonly|read_room|close_completions|recvzc_readonly|read_postfail|\n"
			"recvzc_order|recvzc_onehop\n");
	return 2;
}
