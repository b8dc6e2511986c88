/*
 * One-sided RMA over real rxe: a server exports two ranges of one region
 * (read-only and write-only, each exactly as long as needed); the client
 * RDMA-READs one and RDMA-WRITEs the other, byte-verified, with nothing
 * outside the ranges touched. Local validation refuses wrong rights, ranges
 * and descriptors; after revocation the peer's READ fails with a remote
 * access error.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zcrdma.h"
#include "rxe_env.h"

#define MiB (1024 * 1024)
#define REGION (4 * MiB)
#define R_OFF (MiB + 3)
#define R_LEN MiB
#define W_OFF (2 * MiB + 5)
#define W_LEN (MiB + 7)

static struct rxe_env env;
static uint16_t port;
static uint8_t *expect; /* the server region's initial pattern */
/* The server saw its connection fail: only then does the client tear its
 * own end down, so that failure cannot come from the teardown. */
static atomic_int server_saw_failure;

static void msg(struct zc_conn *c, const char *text)
{
	CHECK_RC(zc_msg_send(c, text, strlen(text) + 1, 0), "zc_msg_send");
}

static void wait_msg(struct zc_conn *c, const char *text)
{
	char buf[64];
	ssize_t n = zc_msg_recv(c, buf, sizeof(buf), 0);

	CHECK_RC(n, "zc_msg_recv");
	RXE_ASSERT(!strcmp(buf, text), "expected '%s', got '%s'", text, buf);
}

static struct zc_completion reap(struct zc_ctx *ctx)
{
	struct zc_completion comp;

	RXE_ASSERT(zc_poll(ctx, &comp, 1, 30000) == 1, "no completion within 30 s");
	return comp;
}

static void *server(void *arg)
{
	struct zc_listener *l = ((void **)arg)[0];
	struct zc_ctx *ctx = NULL;
	struct zc_conn *c;
	struct zc_mr *mr;
	struct zc_export *r, *w;
	struct zc_desc d[2];
	uint8_t *region = malloc(REGION);
	char buf[64];
	long bad;

	memcpy(region, expect, REGION);
	CHECK_RC(zc_accept(l, &c, 20000), "zc_accept");
	CHECK_RC(zc_ctx_new(env.addr_b, NULL, &ctx), "zc_ctx_new"); /* only to test foreign regions */
	CHECK_RC(zc_mr_reg(ctx, region, REGION, ZC_ACCESS_REMOTE_READ, &mr), "zc_mr_reg");
	RXE_ASSERT(zc_export(c, mr, 0, 16, ZC_ACCESS_REMOTE_READ, &r, &d[0]) == -EINVAL,
		   "a region of another context was exported");
	CHECK_RC(zc_mr_dereg(&mr), "zc_mr_dereg");
	zc_ctx_free(&ctx);
	ctx = ((void **)arg)[1];

	CHECK_RC(zc_mr_reg(ctx, region, REGION, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &mr), "zc_mr_reg");
	RXE_ASSERT(zc_export(c, mr, REGION - 8, 16, ZC_ACCESS_REMOTE_READ, &r, &d[0]) == -EINVAL, "range past the end");
	CHECK_RC(zc_export(c, mr, R_OFF, R_LEN, ZC_ACCESS_REMOTE_READ, &r, &d[0]), "zc_export read");
	CHECK_RC(zc_export(c, mr, W_OFF, W_LEN, ZC_ACCESS_REMOTE_WRITE, &w, &d[1]), "zc_export write");
	CHECK_RC(zc_msg_send(c, d, sizeof(d), 0), "send descriptors");
	RXE_ASSERT(zc_mr_dereg(&mr) == -EBUSY, "a region with live exports was deregistered");

	wait_msg(c, "written");
	rxe_fill(expect + W_OFF, W_LEN, 6);
	bad = memcmp(region, expect, REGION);
	RXE_ASSERT(bad == 0, "the region differs from what the client should have written");
	CHECK_RC(zc_export_revoke(&r), "zc_export_revoke");
	msg(c, "revoked");
	/* The client's READ through the revoked window kills the connection. */
	RXE_ASSERT(zc_msg_recv(c, buf, sizeof(buf), 0) < 0, "the connection survived a remote access error");
	atomic_store(&server_saw_failure, 1);
	CHECK_RC(zc_export_revoke(&w), "zc_export_revoke after the connection died");
	CHECK_RC(zc_mr_dereg(&mr), "zc_mr_dereg");
	zc_close(&c);
	free(region);
	return NULL;
}

static void client(struct zc_ctx *ctx)
{
	struct zc_conn *c;
	struct zc_desc d[2], junk;
	struct zc_completion comp;
	uint8_t *buf = malloc(W_LEN + 8), *src = malloc(W_LEN + 8);
	double deadline;
	ssize_t n;

	CHECK_RC(zc_connect(ctx, env.addr_b, port, NULL, &c), "zc_connect");
	n = zc_msg_recv(c, d, sizeof(d), 0);
	RXE_ASSERT(n == sizeof(d), "descriptors: %zd", n);

	RXE_ASSERT(zc_rma_write(c, src, 16, NULL, &d[0], 0, 1) == -EPERM, "write to a read-only export accepted");
	RXE_ASSERT(zc_rma_read(c, buf, 16, NULL, &d[1], 0, 1) == -EPERM, "read of a write-only export accepted");
	RXE_ASSERT(zc_rma_read(c, buf, 20, NULL, &d[0], R_LEN - 10, 1) == -EINVAL, "read past the export accepted");
	memset(&junk, 0x5a, sizeof(junk));
	RXE_ASSERT(zc_rma_read(c, buf, 16, NULL, &junk, 0, 1) == -EINVAL, "garbage descriptor accepted");

	CHECK_RC(zc_rma_read(c, buf + 1, R_LEN, NULL, &d[0], 0, 10), "zc_rma_read");
	comp = reap(ctx);
	CHECK_RC(comp.status, "read completion");
	RXE_ASSERT(comp.op == ZC_OP_READ && comp.token == 10 && comp.len == R_LEN, "read completion fields");
	RXE_ASSERT(memcmp(buf + 1, expect + R_OFF, R_LEN) == 0, "RDMA READ bytes differ");

	rxe_fill(src + 3, W_LEN, 6);
	CHECK_RC(zc_rma_write(c, src + 3, W_LEN, NULL, &d[1], 0, 11), "zc_rma_write");
	comp = reap(ctx);
	CHECK_RC(comp.status, "write completion");
	RXE_ASSERT(comp.op == ZC_OP_WRITE && comp.token == 11 && comp.len == W_LEN, "write completion fields");
	msg(c, "written");

	wait_msg(c, "revoked");
	CHECK_RC(zc_rma_read(c, buf, 64, NULL, &d[0], 0, 12), "zc_rma_read after revoke (submission)");
	comp = reap(ctx);
	printf("read through the revoked export: %s\n", zc_strerror(comp.status));
	RXE_ASSERT(comp.status == -ZC_EREMOTEACCESS, "expected a remote access error, got %d", comp.status);
	deadline = rxe_now() + 30;
	while (!atomic_load(&server_saw_failure)) {
		RXE_ASSERT(rxe_now() < deadline, "the server's connection survived the remote access error for 30 s");
		usleep(1000);
	}
	zc_abort(&c);
	zc_mr_invalidate(ctx, buf, W_LEN + 8);
	zc_mr_invalidate(ctx, src, W_LEN + 8);
	free(buf);
	free(src);
}

int main(void)
{
	struct zc_ctx *sctx, *cctx;
	struct zc_listener *l;
	void *args[2];
	pthread_t t;

	rxe_env_require(&env);
	port = rxe_port(4);
	expect = malloc(REGION);
	rxe_fill(expect, REGION, 5);
	CHECK_RC(zc_ctx_new(env.addr_b, NULL, &sctx), "zc_ctx_new");
	CHECK_RC(zc_ctx_new(env.addr_a, NULL, &cctx), "zc_ctx_new");
	CHECK_RC(zc_listen(sctx, port, NULL, &l), "zc_listen");
	args[0] = l;
	args[1] = sctx;
	pthread_create(&t, NULL, server, args);
	client(cctx);
	pthread_join(t, NULL);
	zc_listener_free(&l);
	CHECK_RC(zc_ctx_free(&sctx), "zc_ctx_free");
	CHECK_RC(zc_ctx_free(&cctx), "zc_ctx_free");
	free(expect);
	printf("rxe_rma: PASS\n");
	return 0;
}
