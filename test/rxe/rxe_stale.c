/*
 * The registration cache never sends (or receives into) stale pages: the
 * memory hooks tell it about every unmap, remap and free. Each mode sends a
 * buffer, then replaces the memory behind the same address with new content
 * and sends again; the receiver verifies every byte. Without the hooks the
 * second transfer hits the first registration, whose pinned pages are the
 * old ones, and the receiver gets the old content.
 *
 *   rxe_stale stream     mmap / zc_send 1 MiB (rendezvous) / munmap / mmap at
 *                        the same address / zc_send
 *   rxe_stale msg        the same with zc_msg_send
 *   rxe_stale zc         the same with zc_send_zc
 *   rxe_stale recv       a zc_recv_zc buffer: received into once, then posted
 *                        again and remapped before the data comes: the new
 *                        mapping gets it
 *   rxe_stale free       free() + malloc() of 48 MiB blocks (above glibc's
 *                        largest dynamic mmap threshold, so each is its own
 *                        mapping and the second lands where the first was):
 *                        free() unmaps inside glibc
 *   rxe_stale mremap     a 2 MiB mapping moved and grown by mremap; new
 *                        memory at the old address, and the moved one, sent
 *   rxe_stale madvise    MADV_DONTNEED on part of a cached range, new data
 *                        written everywhere, sent
 *   rxe_stale brk        heap memory from sbrk, shrunk with a negative sbrk,
 *                        grown back, new content, sent
 *   rxe_stale inflight   the buffer of a posted zc_send_zc still in flight is
 *                        unmapped: that transfer carries the content at unmap
 *                        time, the next send from the new mapping the new one
 *   rxe_stale threads    a thread munmaps/mmaps its own range over and over
 *                        while the main thread sends from another range of
 *                        the same context (remapping that one every 4th send)
 *
 * `rxe_stale MODE nohooks` runs the same with zc_ctx_opts.no_memhooks on
 * both sides, to show that the mode fails without the hooks.
 *
 * The server is a forked child (its own address space: nothing it does moves
 * the client's mappings); it verifies and exits 0. The client asserts the
 * cache's invalidation counters by cause.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zcrdma.h"
#include "rxe_env.h"

#define LEN (1u << 20)
#define BIG (48u << 20)
#define MAXLEN (BIG + (4u << 20))

static struct rxe_env env;
static const char *mode;
static uint16_t port;
static bool stream; /* everything on the byte stream, else messages */
static bool nohooks;

static int ctx_new(const char *addr, struct zc_ctx **ctx)
{
	struct zc_ctx_opts o;

	zc_ctx_opts_init(&o);
	o.no_memhooks = nohooks;
	return zc_ctx_new(addr, &o, ctx);
}

struct hdr {
	uint64_t len;
	uint32_t seed;
	uint32_t pad;
};

/* ---- server (child) ---- */

static void recv_exact(struct zc_conn *c, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = zc_recv(c, (char *)buf + got, len - got, 0);

		CHECK_RC(n, "zc_recv");
		RXE_ASSERT(n > 0, "stream ended early");
		got += (size_t)n;
	}
}

static void *map_at(void *at, size_t len)
{
	void *p = mmap(at, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED_NOREPLACE : 0), -1, 0);

	RXE_ASSERT(p != MAP_FAILED, "mmap: %s", strerror(errno));
	RXE_ASSERT(!at || p == at, "the address was not free again");
	return p;
}

static void wait_one(struct zc_ctx *ctx, int op, struct zc_completion *comp)
{
	int n = zc_poll(ctx, comp, 1, 60000);

	CHECK_RC(n, "zc_poll");
	RXE_ASSERT(n == 1 && comp->op == op, "no completion within 60 s");
}

/* recv: data into a posted buffer, then the same buffer posted again and
 * remapped before anything is sent into it. */
static void serve_recv(struct zc_ctx *ctx, struct zc_conn *c)
{
	uint8_t *p = map_at(NULL, LEN);
	struct zc_completion comp;
	struct zc_stats st;
	int round;

	for (round = 1; round <= 2; round++) {
		CHECK_RC(zc_recv_zc(c, p, LEN, NULL, (uint64_t)round), "zc_recv_zc");
		if (round == 2) {
			RXE_ASSERT(munmap(p, LEN) == 0, "munmap");
			map_at(p, LEN);
		}
		CHECK_RC(zc_msg_send(c, "go", 2, 0), "zc_msg_send go");
		wait_one(ctx, ZC_OP_RECV, &comp);
		CHECK_RC(comp.status, "posted receive");
		RXE_ASSERT(comp.len == LEN, "received %zu bytes", comp.len);
		RXE_ASSERT(rxe_check(p, LEN, (uint32_t)round) < 0, "round %d: the posted buffer has stale content at %ld",
			   round, rxe_check(p, LEN, (uint32_t)round));
	}
	zc_ctx_stats(ctx, &st);
	printf("server: %llu misses, invalidations: %llu by unmap\n", (unsigned long long)st.rcache_misses,
	       (unsigned long long)st.rcache_inv_unmap);
	RXE_ASSERT(nohooks || st.rcache_inv_unmap >= 1, "the receiver's cache saw no unmap");
}

static int server(void)
{
	struct zc_ctx *ctx;
	struct zc_listener *l;
	struct zc_conn *c;
	uint8_t *buf = map_at(NULL, MAXLEN);
	struct hdr h;
	int n = 0;

	CHECK_RC(ctx_new(env.addr_b, &ctx), "server zc_ctx_new");
	CHECK_RC(zc_listen(ctx, port, NULL, &l), "zc_listen");
	CHECK_RC(zc_accept(l, &c, 30000), "zc_accept");
	if (!strcmp(mode, "recv")) {
		serve_recv(ctx, c);
		h.len = 0;
	} else {
		for (;;) {
			if (stream)
				recv_exact(c, &h, sizeof(h));
			else
				RXE_ASSERT(zc_msg_recv(c, &h, sizeof(h), 0) == sizeof(h), "bad header");
			if (!h.len)
				break;
			RXE_ASSERT(h.len <= MAXLEN, "header of %llu bytes", (unsigned long long)h.len);
			if (stream)
				recv_exact(c, buf, h.len);
			else
				RXE_ASSERT(zc_msg_recv(c, buf, MAXLEN, 0) == (ssize_t)h.len, "message %d: wrong length", n);
			RXE_ASSERT(rxe_check(buf, h.len, h.seed) < 0,
				   "message %d (%llu bytes, seed %u): wrong byte at %ld (stale pages?)", n,
				   (unsigned long long)h.len, h.seed, rxe_check(buf, h.len, h.seed));
			n++;
		}
	}
	if (stream)
		RXE_ASSERT(zc_recv(c, buf, 1, 0) == 0, "no end of stream");
	else
		RXE_ASSERT(zc_msg_recv(c, buf, 1, 0) == -EPIPE, "no end of stream");
	CHECK_RC(zc_close(&c), "server zc_close");
	zc_listener_free(&l);
	CHECK_RC(zc_ctx_free(&ctx), "server zc_ctx_free");
	printf("server: %d messages verified\n", n);
	return 0;
}

/* ---- client (parent) ---- */

static struct zc_ctx *cctx;
static struct zc_conn *conn;

static void reap_sends(int n)
{
	struct zc_completion comp;

	while (n--) {
		wait_one(cctx, ZC_OP_SEND, &comp);
		CHECK_RC(comp.status, "zero-copy send");
	}
}

/* Sends len bytes of buf, which the caller filled with seed's pattern. */
static void send_buf(const void *buf, size_t len, uint32_t seed)
{
	struct hdr h = {.len = len, .seed = seed};

	if (stream) {
		RXE_ASSERT(zc_send(conn, &h, sizeof(h), 0) == sizeof(h), "zc_send header");
		RXE_ASSERT(zc_send(conn, buf, len, 0) == (ssize_t)len, "zc_send");
		return;
	}
	CHECK_RC(zc_msg_send(conn, &h, sizeof(h), 0), "zc_msg_send header");
	if (!strcmp(mode, "zc") || !strcmp(mode, "inflight")) {
		CHECK_RC(zc_send_zc(conn, buf, len, NULL, seed), "zc_send_zc");
		if (!strcmp(mode, "zc"))
			reap_sends(1);
	} else {
		CHECK_RC(zc_msg_send(conn, buf, len, 0), "zc_msg_send");
	}
}

static void fill_send(void *buf, size_t len, uint32_t seed)
{
	rxe_fill(buf, len, seed);
	send_buf(buf, len, seed);
}

static void replace_mapping(void *p, size_t len)
{
	RXE_ASSERT(munmap(p, len) == 0, "munmap");
	map_at(p, len);
}

static void run_remap(void)
{
	uint8_t *p = map_at(NULL, LEN);

	fill_send(p, LEN, 1);
	replace_mapping(p, LEN);
	fill_send(p, LEN, 2);
	munmap(p, LEN);
}

static void run_free(void)
{
	uint8_t *p = malloc(BIG), *q;
	uintptr_t first = (uintptr_t)p;

	RXE_ASSERT(p, "malloc");
	fill_send(p, BIG, 1);
	free(p);
	q = malloc(BIG);
	RXE_ASSERT((uintptr_t)q == first, "the second block is elsewhere: the test proves nothing");
	fill_send(q, BIG, 2);
	free(q);
}

static void run_mremap(void)
{
	uint8_t *p = map_at(NULL, 4 * LEN), *q;

	/* The 2 MiB after the buffer stay mapped, so growing must move it. */
	fill_send(p, 2 * LEN, 1);
	q = mremap(p, 2 * LEN, 4 * LEN, MREMAP_MAYMOVE);
	RXE_ASSERT(q != MAP_FAILED && q != p, "mremap did not move");
	map_at(p, 2 * LEN);
	fill_send(p, 2 * LEN, 2);
	fill_send(q, 4 * LEN, 3);
	munmap(p, 4 * LEN);
	munmap(q, 4 * LEN);
}

static void run_madvise(void)
{
	uint8_t *p = map_at(NULL, LEN);

	fill_send(p, LEN, 1);
	RXE_ASSERT(madvise(p + LEN / 4, LEN / 4, MADV_DONTNEED) == 0, "madvise");
	fill_send(p, LEN, 2);
	munmap(p, LEN);
}

static void run_brk(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *top, *p;

	/* Slack at the top of malloc's heap, so the library's own mallocs never
	 * move the break while this test owns the end of the heap. */
	mallopt(M_TOP_PAD, 64 << 20);
	free(malloc(64));
	top = sbrk(0);
	RXE_ASSERT(sbrk((pg - (intptr_t)top % pg) % pg) != (void *)-1, "sbrk align");
	p = sbrk(LEN);
	RXE_ASSERT(p != (void *)-1, "sbrk");
	fill_send(p, LEN, 1);
	RXE_ASSERT(sbrk(0) == p + LEN, "someone else moved the break");
	RXE_ASSERT(sbrk(-(intptr_t)LEN) == p + LEN, "sbrk shrink");
	RXE_ASSERT(sbrk(LEN) == p, "sbrk grow");
	fill_send(p, LEN, 2);
	RXE_ASSERT(sbrk(-(intptr_t)LEN) == p + LEN, "sbrk release");
}

/* Progress until the rendezvous of the last zc_send_zc is posted (the
 * library may queue it: on rxe a window is bound only on an idle send queue). */
static int wait_posted(uint64_t rndv_before)
{
	struct zc_completion comp;
	struct zc_stats st;
	int reaped = 0, n;

	for (;;) {
		zc_ctx_stats(cctx, &st);
		if (st.rndv_msgs > rndv_before)
			return reaped;
		n = zc_poll(cctx, &comp, 1, 100);

		CHECK_RC(n, "zc_poll");
		if (n) {
			CHECK_RC(comp.status, "zero-copy send");
			reaped++;
		}
	}
}

/* The first send is in flight (posted, its completion not reaped, the peer
 * may not even have read it) when its buffer is unmapped and replaced: it
 * carries the old pages, which hold the content at unmap time. */
static void run_inflight(void)
{
	uint8_t *p = map_at(NULL, 4 * LEN);
	struct zc_stats st;
	int reaped;

	zc_ctx_stats(cctx, &st);
	fill_send(p, 4 * LEN, 1);
	reaped = wait_posted(st.rndv_msgs);
	replace_mapping(p, 4 * LEN);
	fill_send(p, 4 * LEN, 2);
	reap_sends(2 - reaped);
	munmap(p, 4 * LEN);
}

static atomic_bool stop;
static atomic_long churns;

static void *churn(void *arg)
{
	uint8_t *r = arg;

	while (!atomic_load(&stop)) {
		replace_mapping(r, LEN);
		memset(r, 0x5a, 4096);
		atomic_fetch_add(&churns, 1);
	}
	return NULL;
}

static void run_threads(void)
{
	uint8_t *m = map_at(NULL, LEN), *r = map_at(NULL, LEN);
	pthread_t t;
	int k;

	RXE_ASSERT(!pthread_create(&t, NULL, churn, r), "pthread_create");
	for (k = 0; k < 40; k++) {
		if (k % 4 == 3)
			replace_mapping(m, LEN);
		fill_send(m, LEN, 100 + (uint32_t)k);
	}
	atomic_store(&stop, true);
	pthread_join(t, NULL);
	printf("threads: 40 sends, %ld unmap/mmap cycles by the other thread\n", atomic_load(&churns));
	munmap(m, LEN);
	munmap(r, LEN);
}

static void run_recv_client(void)
{
	uint8_t *p = malloc(LEN);
	char go[2];
	int round;

	for (round = 1; round <= 2; round++) {
		RXE_ASSERT(zc_msg_recv(conn, go, sizeof(go), 0) == 2, "no go from the server");
		rxe_fill(p, LEN, (uint32_t)round);
		CHECK_RC(zc_msg_send(conn, p, LEN, 0), "zc_msg_send");
	}
	free(p);
}

/* The entries the hooks made the client's cache drop, by cause. */
static void assert_causes(const struct zc_stats *st)
{
	if (!strcmp(mode, "madvise"))
		RXE_ASSERT(st->rcache_inv_madvise >= 1, "no invalidation by madvise");
	else if (!strcmp(mode, "brk"))
		RXE_ASSERT(st->rcache_inv_brk >= 1, "no invalidation by brk");
	else if (!strcmp(mode, "threads"))
		RXE_ASSERT(st->rcache_inv_unmap + st->rcache_inv_overflow >= 10, "the main thread's remaps went unseen");
	else if (strcmp(mode, "recv"))
		RXE_ASSERT(st->rcache_inv_unmap >= 1, "no invalidation by unmap");
}

static int client(void)
{
	struct zc_caps caps;
	struct zc_stats st;
	struct hdr end = {0};

	CHECK_RC(ctx_new(env.addr_a, &cctx), "client zc_ctx_new");
	CHECK_RC(zc_ctx_query(cctx, &caps), "zc_ctx_query");
	printf("memory hooks: %s\n", caps.memhooks == ZC_MEMHOOKS_PATCH ? "libc patched"
				     : caps.memhooks == ZC_MEMHOOKS_INTERPOSE ? "interposition only" : "off");
	RXE_ASSERT(caps.memhooks == (nohooks ? ZC_MEMHOOKS_OFF : ZC_MEMHOOKS_PATCH),
		   "the guest's glibc on x86_64 must be patchable");
	CHECK_RC(zc_connect(cctx, env.addr_b, port, NULL, &conn), "zc_connect");
	if (!strcmp(mode, "stream") || !strcmp(mode, "msg") || !strcmp(mode, "zc"))
		run_remap();
	else if (!strcmp(mode, "recv"))
		run_recv_client();
	else if (!strcmp(mode, "free"))
		run_free();
	else if (!strcmp(mode, "mremap"))
		run_mremap();
	else if (!strcmp(mode, "madvise"))
		run_madvise();
	else if (!strcmp(mode, "brk"))
		run_brk();
	else if (!strcmp(mode, "inflight"))
		run_inflight();
	else
		run_threads();
	if (strcmp(mode, "recv")) {
		if (stream)
			RXE_ASSERT(zc_send(conn, &end, sizeof(end), 0) == sizeof(end), "end header");
		else
			CHECK_RC(zc_msg_send(conn, &end, sizeof(end), 0), "end header");
	}
	zc_ctx_stats(cctx, &st);
	printf("client: %llu hits, %llu misses; invalidated: %llu unmap, %llu remap, %llu madvise, %llu brk, "
	       "%llu explicit, %llu overflow\n",
	       (unsigned long long)st.rcache_hits, (unsigned long long)st.rcache_misses,
	       (unsigned long long)st.rcache_inv_unmap, (unsigned long long)st.rcache_inv_remap,
	       (unsigned long long)st.rcache_inv_madvise, (unsigned long long)st.rcache_inv_brk,
	       (unsigned long long)st.rcache_inv_explicit, (unsigned long long)st.rcache_inv_overflow);
	if (!nohooks)
		assert_causes(&st);
	CHECK_RC(zc_close(&conn), "client zc_close");
	CHECK_RC(zc_ctx_free(&cctx), "client zc_ctx_free");
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const modes[] = {"stream", "msg", "zc", "recv", "free", "mremap",
					    "madvise", "brk", "inflight", "threads"};
	int status, i;
	pid_t pid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; argc >= 2 && i < 10 && strcmp(argv[1], modes[i]); i++)
		;
	nohooks = argc == 3 && !strcmp(argv[2], "nohooks");
	if (argc < 2 || argc > 3 || i == 10 || (argc == 3 && !nohooks))
		RXE_FAIL("usage: rxe_stale stream|msg|zc|recv|free|mremap|madvise|brk|inflight|threads [nohooks]");
	mode = argv[1];
	stream = !strcmp(mode, "stream");
	rxe_env_require(&env);
	port = rxe_port(7);
	pid = fork();
	RXE_ASSERT(pid >= 0, "fork");
	if (!pid)
		exit(server());
	client();
	RXE_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");
	RXE_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the server failed (status %#x)", status);
	printf("rxe_stale %s: PASS\n", mode);
	return 0;
}
