/*
 * Connection churn over real rxe: N connect / transfer / close cycles
 * between a client context and a server thread's context.
 *
 *   rxe_churn [CYCLES]          (CI: 100; scripts/reliability-long: 1000)
 *
 * Every cycle sends one message (alternately eager, 3000 B, and rendezvous,
 * 200 KB, each with its own pattern), the server echoes it, both sides verify
 * every byte, then the client closes and the server sees the end of stream.
 * After WARMUP cycles the process's open file descriptors (/proc/self/fd) and
 * resident set (/proc/self/statm) are taken; at the end the descriptors must
 * be the same and the resident set may have grown by at most
 * ZC_CHURN_RSS_KB (default 4096 KiB, 262144 under ASan, whose 256 MiB quarantine
 * keeps freed memory). The numbers and the cycle time are printed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zcrdma.h"
#include "rxe_env.h"

#define WARMUP 20
#define BIG 200000

#if defined(__SANITIZE_ADDRESS__)
#define RSS_KB_DEFAULT 262144
#else
#define RSS_KB_DEFAULT 4096
#endif

static struct rxe_env env;
static int cycles = 200;

static size_t size_of(int i)
{
	return i % 2 ? BIG : 3000;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	RXE_ASSERT(d, "opendir");
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, rss = 0;

	RXE_ASSERT(f && fscanf(f, "%ld %ld", &size, &rss) == 2, "/proc/self/statm");
	fclose(f);
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

struct server {
	struct zc_ctx *ctx;
	struct zc_listener *l;
};

static void *server_main(void *arg)
{
	struct server *s = arg;
	uint8_t *buf = malloc(BIG);
	int i;

	for (i = 0; i < cycles; i++) {
		struct zc_conn *c;
		ssize_t n;

		CHECK_RC(zc_accept(s->l, &c, 30000), "zc_accept");
		n = zc_msg_recv(c, buf, BIG, 0);
		CHECK_RC(n, "server zc_msg_recv");
		RXE_ASSERT((size_t)n == size_of(i) && rxe_check(buf, (size_t)n, (uint32_t)i) < 0,
			   "cycle %d: the server got %zd corrupt bytes", i, n);
		CHECK_RC(zc_msg_send(c, buf, (size_t)n, 0), "server zc_msg_send");
		RXE_ASSERT(zc_msg_recv(c, buf, BIG, 0) == -EPIPE, "cycle %d: no end of stream", i);
		CHECK_RC(zc_close(&c), "server zc_close");
	}
	zc_mr_invalidate(s->ctx, buf, BIG);
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	struct server s;
	struct zc_ctx *ctx;
	struct zc_conn_opts o;
	uint8_t *buf = malloc(BIG), *back = malloc(BIG);
	long rss0 = 0, rss1, tol = RSS_KB_DEFAULT;
	int fds0 = 0, fds1, i;
	double t0 = 0, t1;
	pthread_t t;
	uint16_t port;

	if (argc > 1)
		cycles = atoi(argv[1]);
	if (getenv("ZC_CHURN_RSS_KB"))
		tol = atol(getenv("ZC_CHURN_RSS_KB"));
	RXE_ASSERT(cycles > WARMUP, "at least %d cycles", WARMUP + 1);
	rxe_env_require(&env);
	zc_conn_opts_init(&o);
	o.timeout_ms = 30000;
	port = rxe_port(0);
	CHECK_RC(zc_ctx_new(env.addr_b, NULL, &s.ctx), "server zc_ctx_new");
	CHECK_RC(zc_listen(s.ctx, port, &o, &s.l), "zc_listen");
	CHECK_RC(zc_ctx_new(env.addr_a, NULL, &ctx), "client zc_ctx_new");
	pthread_create(&t, NULL, server_main, &s);
	for (i = 0; i < cycles; i++) {
		struct zc_conn *c;
		size_t n = size_of(i);
		ssize_t got;

		if (i == WARMUP) {
			fds0 = count_fds();
			rss0 = rss_kb();
			t0 = rxe_now();
		}
		rxe_fill(buf, n, (uint32_t)i);
		CHECK_RC(zc_connect(ctx, env.addr_b, port, &o, &c), "zc_connect");
		CHECK_RC(zc_msg_send(c, buf, n, 0), "client zc_msg_send");
		got = zc_msg_recv(c, back, BIG, 0);
		CHECK_RC(got, "client zc_msg_recv");
		RXE_ASSERT((size_t)got == n && rxe_check(back, n, (uint32_t)i) < 0, "cycle %d: the echo is corrupt", i);
		CHECK_RC(zc_close(&c), "client zc_close");
	}
	t1 = rxe_now();
	pthread_join(t, NULL);
	fds1 = count_fds();
	rss1 = rss_kb();
	printf("churn: %d cycles, %.1f ms per cycle after warm-up; open fds %d -> %d; RSS %ld -> %ld KiB "
	       "(%+ld KiB, tolerance %ld)\n",
	       cycles, (t1 - t0) * 1000 / (cycles - WARMUP), fds0, fds1, rss0, rss1, rss1 - rss0, tol);
	RXE_ASSERT(fds1 == fds0, "file descriptors leaked: %d -> %d", fds0, fds1);
	RXE_ASSERT(rss1 - rss0 <= tol, "RSS grew by %ld KiB over %d cycles", rss1 - rss0, cycles - WARMUP);
	zc_mr_invalidate(ctx, buf, BIG);
	zc_mr_invalidate(ctx, back, BIG);
	free(buf);
	free(back);
	zc_listener_free(&s.l);
	CHECK_RC(zc_ctx_free(&s.ctx), "zc_ctx_free");
	CHECK_RC(zc_ctx_free(&ctx), "zc_ctx_free");
	printf("rxe_churn: PASS\n");
	return 0;
}
