/*
 * libzcrdma over real rxe: a server thread on rxe1 and a client on rxe0 in
 * one process, each with its own context. Every transfer is byte-verified.
 *
 *   rxe_lib stream|msg|msgnowait|zc|close|close_server|halfclose|zcproof|evloop|noaddr
 *
 * Every mode checks zc_conn_query() on both ends: addresses and ports as
 * used, devices, and the negotiated parameters agree. noaddr is stream with
 * a client context created without an address (zc_ctx_new(NULL)): no device
 * until it connects, the route picks rxe0, and a connection routed through
 * rxe1 afterwards fails with -ENODEV.
 *
 * evloop drives both ends the way an event-loop application does: it
 * sleeps in its own poll() on zc_ctx_fd() and then calls zc_poll(..., 0)
 * or ZC_DONTWAIT receives. A missed wake-up fails the test (the fd must
 * fire within 10 s while data is due), and so does a fd that stays
 * readable with nothing to do (500 or more wake-ups without a completion).
 *
 * msgnowait sends every message with ZC_DONTWAIT and overwrites the
 * buffer as soon as the call returns. It starts with a 1 MiB + 1 message
 * (a rendezvous) that the server does not read until the client's call has
 * returned: a send that waited for the peer would never return (the test
 * fails after 20 s), and the bytes must arrive as they were at the call.
 *
 * halfclose: the client sends 1 B, which the server reads (the window it
 * lends grows to 2: the client had no other credit), then 100 B and
 * 1 MiB - 99 (eager, then a rendezvous), which zc_recv_queued() counts
 * whole before the server reads them (within 20 s), then zc_shutdown(): its sends fail with
 * -EPIPE, the server reads every byte and then end of stream (sticky),
 * and still sends back (eager and rendezvous), which the client reads
 * intact; the client's zc_close() then sends nothing more, and the
 * server's sends fail with -EPIPE once that disconnect arrives (within
 * 20 s). Both closes return 0.
 *
 * zcproof is the zero-copy proof: after registration both ends' payload
 * pages are mprotect(PROT_NONE), so any CPU touch of the payload by the
 * library would fault; the NIC reaches the pinned pages regardless.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "zcrdma.h"
#include "rxe_env.h"

#define MiB (1024 * 1024)

static struct rxe_env env;
static uint16_t port;
static const char *mode;
static int noaddr;
static struct zc_conn_info srv_info, cli_info;
/* msgnowait: the client's first non-blocking rendezvous returned */
static volatile int first_returned;
#define NOWAIT_FIRST (MiB + 1)
#define NOWAIT_SEED 99
static const size_t sizes[] = {0, 1, 63, 4095, 4097, 16385, MiB + 1, 64 * MiB};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static uint8_t *alloc_buf(size_t len)
{
	uint8_t *p = malloc(len + 64);

	RXE_ASSERT(p, "out of memory");
	return p;
}

static void recv_all(struct zc_conn *c, uint8_t *buf, size_t len)
{
	size_t got = 0, step = 1;

	/* Read in growing, odd-sized pieces to exercise partial reads. */
	while (got < len) {
		size_t want = len - got < step ? len - got : step;
		ssize_t n = zc_recv(c, buf + got, want, 0);

		CHECK_RC(n, "zc_recv");
		RXE_ASSERT(n > 0, "zc_recv returned 0 after %zu of %zu bytes", got, len);
		got += (size_t)n;
		step = step * 3 + 7;
	}
}

struct side {
	struct zc_ctx *ctx;
	struct zc_listener *l;
};

/* Reaps completions until `want` have arrived; checks each one. */
static void reap(struct zc_ctx *ctx, int want, int op, uint8_t **bufs, size_t base)
{
	struct zc_completion comp[16];
	int done = 0, k, n;

	while (done < want) {
		n = zc_poll(ctx, comp, 16, 30000);
		CHECK_RC(n, "zc_poll");
		RXE_ASSERT(n > 0, "no completion within 30 s (%d of %d)", done, want);
		for (k = 0; k < n; k++) {
			size_t i = (size_t)(comp[k].token - base);

			RXE_ASSERT(comp[k].op == op, "completion op %d, expected %d", comp[k].op, op);
			RXE_ASSERT(i < NSIZES, "unknown token %llu", (unsigned long long)comp[k].token);
			/* receives complete in posting order, large ones read at once */
			RXE_ASSERT(op != ZC_OP_RECV || i == (size_t)(done + k), "receive %zu completed as number %d", i,
				   done + k);
			CHECK_RC(comp[k].status, "zero-copy completion");
			RXE_ASSERT(comp[k].len == sizes[i], "token %zu moved %zu bytes, expected %zu", i, comp[k].len,
				   sizes[i]);
			if (bufs)
				RXE_ASSERT(rxe_check(bufs[i], sizes[i], (uint32_t)i) < 0, "zc message %zu corrupt", sizes[i]);
		}
		done += n;
	}
}

#define PROOF_LEN (2 * MiB)

static uint8_t *proof_buf(struct zc_ctx *ctx, struct zc_mr **mr, uint32_t seed)
{
	uint8_t *p = mmap(NULL, PROOF_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	RXE_ASSERT(p != MAP_FAILED, "mmap");
	if (seed)
		rxe_fill(p, PROOF_LEN, seed);
	else
		memset(p, 0, PROOF_LEN);
	CHECK_RC(zc_mr_reg(ctx, p, PROOF_LEN, 0, mr), "zc_mr_reg");
	RXE_ASSERT(mprotect(p, PROOF_LEN, PROT_NONE) == 0, "mprotect");
	return p;
}

static void proof_done(uint8_t *p, struct zc_mr **mr, uint32_t seed)
{
	RXE_ASSERT(mprotect(p, PROOF_LEN, PROT_READ | PROT_WRITE) == 0, "mprotect");
	if (seed)
		RXE_ASSERT(rxe_check(p, PROOF_LEN, seed) < 0, "zero-copy payload corrupt at %ld",
			   rxe_check(p, PROOF_LEN, seed));
	CHECK_RC(zc_mr_dereg(mr), "zc_mr_dereg");
	munmap(p, PROOF_LEN);
}

/* One completion of a PROOF_LEN transfer. */
static void reap_one(struct zc_ctx *ctx, int op)
{
	struct zc_completion comp;
	int n = zc_poll(ctx, &comp, 1, 30000);

	CHECK_RC(n, "zc_poll");
	RXE_ASSERT(n == 1, "no completion within 30 s");
	CHECK_RC(comp.status, "zero-copy completion");
	RXE_ASSERT(comp.op == op && comp.len == PROOF_LEN, "op %d len %zu", comp.op, comp.len);
}

static unsigned idle_wakeups;
/* 136 measured in the TCG guest: internal messages (credits, FINs) wake the
 * loop without a completion for it; a fd stuck readable gives thousands. */
#define IDLE_WAKEUPS_MAX 500

/* Sleeps on the context's fd as an application's event loop would. */
static void evloop_sleep(struct zc_ctx *ctx)
{
	struct pollfd p = {.fd = zc_ctx_fd(ctx), .events = POLLIN};

	RXE_ASSERT(poll(&p, 1, 10000) == 1, "zc_ctx_fd() did not fire within 10 s: a missed wake-up");
}

/* One zc_poll(..., 0) of up to 4 checked completions. */
static int evloop_take(struct zc_ctx *ctx, int op)
{
	struct zc_completion comp[4];
	int n = zc_poll(ctx, comp, 4, 0), k;

	CHECK_RC(n, "zc_poll");
	for (k = 0; k < n; k++) {
		CHECK_RC(comp[k].status, "zero-copy completion");
		RXE_ASSERT(comp[k].op == op, "completion op %d, expected %d", comp[k].op, op);
	}
	return n;
}

/* reap() for an event loop: completions only through zc_poll(..., 0),
 * drained before each sleep as zc_ctx_fd() asks. A wake-up that yields
 * nothing at all is counted. */
static void evloop_reap(struct zc_ctx *ctx, int want, int op)
{
	int done = 0, n;

	for (;;) {
		while ((n = evloop_take(ctx, op)) == 4)
			done += n;
		done += n;
		if (done == want)
			return;
		evloop_sleep(ctx);
		n = evloop_take(ctx, op);
		done += n;
		__atomic_add_fetch(&idle_wakeups, n == 0, __ATOMIC_RELAXED);
	}
}

/* Receives len bytes with ZC_DONTWAIT, sleeping on the fd in between. */
static void evloop_recv(struct zc_conn *c, struct zc_ctx *ctx, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = zc_recv(c, buf + got, len - got, ZC_DONTWAIT);

		if (n == -EAGAIN) {
			evloop_sleep(ctx);
			continue;
		}
		CHECK_RC(n, "zc_recv ZC_DONTWAIT");
		RXE_ASSERT(n > 0, "end of stream after %zu of %zu bytes", got, len);
		got += (size_t)n;
	}
}

/* close and close_server: one side sends MiB + 1 bytes and closes right away. */
static void send_then_close(struct zc_conn **c, uint8_t *buf)
{
	rxe_fill(buf, MiB + 1, 42);
	RXE_ASSERT(zc_send(*c, buf, 100, 0) == 100 && zc_send(*c, buf + 100, MiB + 1 - 100, 0) == MiB + 1 - 100,
		   "zc_send before the close");
	CHECK_RC(zc_close(c), "zc_close right after the data");
}

/* The other side: every byte, then end of stream (sticky), and a send to the
 * closed peer fails with -EPIPE. */
static void recv_until_closed(struct zc_conn *c, uint8_t *buf)
{
	uint8_t byte;
	ssize_t n;

	recv_all(c, buf, MiB + 1);
	RXE_ASSERT(rxe_check(buf, MiB + 1, 42) < 0, "data before the close corrupt");
	RXE_ASSERT(zc_recv(c, &byte, 1, 0) == 0, "no end of stream after the peer closed");
	n = zc_send(c, &byte, 1, 0);
	RXE_ASSERT(n == -EPIPE, "a send to the closed peer returned %zd (%s), expected -EPIPE", n,
		   zc_strerror((int)n));
	RXE_ASSERT(zc_recv(c, &byte, 1, 0) == 0, "end of stream is not sticky");
}

/* halfclose, server side: the client's stream to its end, then ours back. */
static void halfclose_server(struct zc_ctx *ctx, struct zc_conn *c, uint8_t *buf)
{
	struct zc_completion comp;
	double t0;
	uint8_t byte;
	ssize_t n;

	RXE_ASSERT(zc_recv(c, &byte, 1, 0) == 1 && byte == 'w', "the warm-up byte");
	t0 = rxe_now();
	while ((n = zc_recv_queued(c)) != MiB + 1) {
		RXE_ASSERT(n >= 0 && n <= MiB + 1, "zc_recv_queued: %zd (%s)", n, zc_strerror((int)n));
		RXE_ASSERT(rxe_now() - t0 < 20, "zc_recv_queued counts %zd of the %d bytes sent", n, MiB + 1);
		RXE_ASSERT(zc_poll(ctx, &comp, 1, 100) >= 0, "zc_poll");
	}
	RXE_ASSERT(zc_msg_peek(c, ZC_DONTWAIT) == 100, "the first queued message is not the 100-byte one");
	recv_all(c, buf, MiB + 1);
	RXE_ASSERT(rxe_check(buf, MiB + 1, 42) < 0, "data before the half-close corrupt");
	RXE_ASSERT(zc_recv_queued(c) == 0, "zc_recv_queued after everything was read");
	RXE_ASSERT(zc_recv(c, &byte, 1, 0) == 0, "no end of stream after the peer's zc_shutdown");
	RXE_ASSERT(zc_recv(c, &byte, 1, ZC_DONTWAIT) == 0, "end of stream is not sticky");
	rxe_fill(buf, MiB + 1, 43);
	n = zc_send(c, buf, 100, 0);
	RXE_ASSERT(n == 100, "an eager send to a half-closed peer returned %zd (%s)", n, zc_strerror((int)n));
	n = zc_send(c, buf + 100, MiB + 1 - 100, 0);
	RXE_ASSERT(n == MiB + 1 - 100, "a rendezvous to a half-closed peer returned %zd (%s)", n,
		   zc_strerror((int)n));
	t0 = rxe_now();
	while ((n = zc_send(c, &byte, 0, ZC_DONTWAIT)) == 0) {
		RXE_ASSERT(rxe_now() - t0 < 20, "sends still accepted 20 s after the half-closed peer closed");
		RXE_ASSERT(zc_poll(ctx, &comp, 1, 100) >= 0, "zc_poll");
	}
	RXE_ASSERT(n == -EPIPE, "a send after the half-closed peer closed returned %zd (%s), expected -EPIPE", n,
		   zc_strerror((int)n));
}

/* halfclose, client side. */
static void halfclose_client(struct zc_conn **c)
{
	uint8_t *buf = alloc_buf(MiB + 1), byte = 1;
	ssize_t n;

	rxe_fill(buf, MiB + 1, 42);
	RXE_ASSERT(zc_send(*c, "w", 1, 0) == 1, "the warm-up byte");
	RXE_ASSERT(zc_send(*c, buf, 100, 0) == 100 && zc_send(*c, buf + 100, MiB + 1 - 100, 0) == MiB + 1 - 100,
		   "zc_send before the half-close");
	CHECK_RC(zc_shutdown(*c, 0), "zc_shutdown");
	n = zc_send(*c, &byte, 1, 0);
	RXE_ASSERT(n == -EPIPE, "a send after zc_shutdown returned %zd (%s), expected -EPIPE", n, zc_strerror((int)n));
	RXE_ASSERT(zc_shutdown(*c, 0) == -EPIPE, "a second zc_shutdown");
	memset(buf, 0, MiB + 1);
	recv_all(*c, buf, MiB + 1);
	RXE_ASSERT(rxe_check(buf, MiB + 1, 43) < 0, "data received after the half-close corrupt at %ld",
		   rxe_check(buf, MiB + 1, 43));
	CHECK_RC(zc_close(c), "client zc_close after its zc_shutdown");
	free(buf);
}

static void *server(void *arg)
{
	struct side *s = arg;
	struct zc_conn *c;
	uint8_t *buf = alloc_buf(64 * MiB + 16), byte;
	size_t i;

	CHECK_RC(zc_accept(s->l, &c, 20000), "zc_accept");
	CHECK_RC(zc_conn_query(c, &srv_info), "server zc_conn_query");
	if (!strcmp(mode, "close_server")) {
		send_then_close(&c, buf);
		free(buf);
		return NULL;
	}
	if (!strcmp(mode, "close")) {
		recv_until_closed(c, buf);
	} else if (!strcmp(mode, "halfclose")) {
		halfclose_server(s->ctx, c, buf);
	} else if (!strcmp(mode, "stream")) {
		for (i = 0; i < NSIZES; i++) {
			uint8_t *dst = buf + 3; /* odd destination */

			recv_all(c, dst, sizes[i]);
			RXE_ASSERT(rxe_check(dst, sizes[i], (uint32_t)i) < 0, "stream size %zu corrupt at %ld",
				   sizes[i], rxe_check(dst, sizes[i], (uint32_t)i));
		}
		RXE_ASSERT(zc_recv(c, &byte, 1, 0) == 0, "no end of stream after the client closed");
		RXE_ASSERT(zc_recv(c, &byte, 1, 0) == 0, "end of stream is not sticky");
	} else if (!strcmp(mode, "msg") || !strcmp(mode, "msgnowait")) {
		if (!strcmp(mode, "msgnowait")) {
			double t0 = rxe_now();

			while (!__atomic_load_n(&first_returned, __ATOMIC_ACQUIRE))
				RXE_ASSERT(rxe_now() - t0 < 20,
					   "a ZC_DONTWAIT rendezvous send did not return while its peer read nothing");
			RXE_ASSERT(zc_msg_recv(c, buf, 64 * MiB, 0) == NOWAIT_FIRST, "first message length");
			RXE_ASSERT(rxe_check(buf, NOWAIT_FIRST, NOWAIT_SEED) < 0,
				   "the first message changed after zc_msg_send(ZC_DONTWAIT) returned");
		}
		for (i = 0; i < NSIZES; i++) {
			ssize_t n = zc_msg_peek(c, 0);

			CHECK_RC(n, "zc_msg_peek");
			RXE_ASSERT((size_t)n == sizes[i], "peek says %zd, sent %zu", n, sizes[i]);
			if (sizes[i] > 1)
				RXE_ASSERT(zc_msg_recv(c, buf + 5, sizes[i] - 1, 0) == -EMSGSIZE, "short buffer accepted");
			n = zc_msg_recv(c, buf + 5, 64 * MiB, 0);
			CHECK_RC(n, "zc_msg_recv");
			RXE_ASSERT((size_t)n == sizes[i], "message %zu arrived as %zd bytes", sizes[i], n);
			RXE_ASSERT(rxe_check(buf + 5, sizes[i], (uint32_t)i) < 0, "message size %zu corrupt", sizes[i]);
		}
		RXE_ASSERT(zc_msg_recv(c, buf, 16, 0) == -EPIPE, "no end of stream");
	} else if (!strcmp(mode, "zc")) {
		uint8_t *bufs[NSIZES];

		for (i = 0; i < NSIZES; i++) {
			bufs[i] = alloc_buf(sizes[i] + 8) + 7;
			CHECK_RC(zc_recv_zc(c, bufs[i], sizes[i], NULL, 100 + i), "zc_recv_zc");
		}
		reap(s->ctx, NSIZES, ZC_OP_RECV, bufs, 100);
		for (i = 0; i < NSIZES; i++) {
			zc_mr_invalidate(s->ctx, bufs[i] - 7, sizes[i] + 8);
			free(bufs[i] - 7);
		}
		RXE_ASSERT(zc_recv(c, &byte, 1, 0) == 0, "no end of stream");
	} else if (!strcmp(mode, "evloop")) {
		uint8_t *bufs[NSIZES];

		/* A blocking call first: it leaves the CQ's event consumed. */
		RXE_ASSERT(zc_recv(c, &byte, 1, 0) == 1 && byte == 0x5a, "the go byte");
		for (i = 0; i < NSIZES; i++) {
			bufs[i] = alloc_buf(sizes[i] + 8) + 3;
			CHECK_RC(zc_recv_zc(c, bufs[i], sizes[i], NULL, 100 + i), "zc_recv_zc");
		}
		evloop_reap(s->ctx, NSIZES, ZC_OP_RECV);
		for (i = 0; i < NSIZES; i++) {
			RXE_ASSERT(rxe_check(bufs[i], sizes[i], (uint32_t)i) < 0, "zc message %zu corrupt", sizes[i]);
			zc_mr_invalidate(s->ctx, bufs[i] - 3, sizes[i] + 8);
			free(bufs[i] - 3);
		}
		evloop_recv(c, s->ctx, buf, MiB + 1);
		RXE_ASSERT(rxe_check(buf, MiB + 1, 42) < 0, "stream data corrupt");
		RXE_ASSERT(zc_recv(c, &byte, 1, 0) == 0, "no end of stream");
	} else if (!strcmp(mode, "zcproof")) {
		struct zc_mr *mr;
		uint8_t *p = proof_buf(s->ctx, &mr, 0);

		CHECK_RC(zc_recv_zc(c, p, PROOF_LEN, mr, 1), "zc_recv_zc");
		reap_one(s->ctx, ZC_OP_RECV);
		proof_done(p, &mr, 0x77);
		RXE_ASSERT(zc_recv(c, &byte, 1, 0) == 0, "no end of stream");
	}
	CHECK_RC(zc_close(&c), "server zc_close");
	free(buf);
	return NULL;
}

/* zc_msg_send(ZC_DONTWAIT) until it takes the message, waiting for the
 * context's fd in between; then overwrites the buffer: the message must
 * arrive as it was at the call. */
static void send_nowait(struct zc_ctx *ctx, struct zc_conn *c, uint8_t *buf, size_t len)
{
	struct pollfd pfd = {.fd = zc_ctx_fd(ctx), .events = POLLIN};
	ssize_t n;

	while ((n = zc_msg_send(c, buf, len, ZC_DONTWAIT)) == -EAGAIN)
		RXE_ASSERT(poll(&pfd, 1, 10000) == 1, "no wake-up within 10 s while a send waited for room");
	CHECK_RC(n, "zc_msg_send(ZC_DONTWAIT)");
	RXE_ASSERT((size_t)n == len, "zc_msg_send took %zd of %zu", n, len);
	memset(buf, 0xa5, len);
}

static void client(struct zc_ctx *ctx)
{
	struct zc_conn *c;
	uint8_t *bufs[NSIZES];
	size_t i;

	CHECK_RC(zc_connect(ctx, env.addr_b, port, NULL, &c), "zc_connect");
	CHECK_RC(zc_conn_query(c, &cli_info), "client zc_conn_query");
	if (!strcmp(mode, "close_server") || !strcmp(mode, "close")) {
		uint8_t *buf = alloc_buf(MiB + 1);

		if (!strcmp(mode, "close")) {
			send_then_close(&c, buf);
		} else {
			recv_until_closed(c, buf);
			CHECK_RC(zc_close(&c), "client zc_close after the peer's");
		}
		zc_mr_invalidate(ctx, buf, MiB + 1);
		free(buf);
		return;
	}
	if (!strcmp(mode, "halfclose")) {
		halfclose_client(&c);
		return;
	}
	for (i = 0; i < NSIZES; i++) {
		bufs[i] = alloc_buf(sizes[i] + 8) + 1; /* odd source */
		rxe_fill(bufs[i], sizes[i], (uint32_t)i);
	}
	if (!strcmp(mode, "stream")) {
		for (i = 0; i < NSIZES; i++) {
			ssize_t n = zc_send(c, bufs[i], sizes[i], 0);

			CHECK_RC(n, "zc_send");
			RXE_ASSERT((size_t)n == sizes[i], "zc_send took %zd of %zu", n, sizes[i]);
		}
	} else if (!strcmp(mode, "msg")) {
		for (i = 0; i < NSIZES; i++) {
			ssize_t n = zc_msg_send(c, bufs[i], sizes[i], 0);

			CHECK_RC(n, "zc_msg_send");
			RXE_ASSERT((size_t)n == sizes[i], "zc_msg_send took %zd of %zu", n, sizes[i]);
		}
	} else if (!strcmp(mode, "msgnowait")) {
		uint8_t *first = alloc_buf(NOWAIT_FIRST);

		rxe_fill(first, NOWAIT_FIRST, NOWAIT_SEED);
		send_nowait(ctx, c, first, NOWAIT_FIRST);
		__atomic_store_n(&first_returned, 1, __ATOMIC_RELEASE);
		for (i = 0; i < NSIZES; i++)
			send_nowait(ctx, c, bufs[i], sizes[i]);
		zc_mr_invalidate(ctx, first, NOWAIT_FIRST);
		free(first);
	} else if (!strcmp(mode, "zc")) {
		for (i = 0; i < NSIZES; i++)
			CHECK_RC(zc_send_zc(c, bufs[i], sizes[i], NULL, 200 + i), "zc_send_zc");
		reap(ctx, NSIZES, ZC_OP_SEND, NULL, 200);
	} else if (!strcmp(mode, "evloop")) {
		uint8_t go = 0x5a, *big = alloc_buf(MiB + 1);

		RXE_ASSERT(zc_send(c, &go, 1, 0) == 1, "the go byte");
		for (i = 0; i < NSIZES; i++)
			CHECK_RC(zc_send_zc(c, bufs[i], sizes[i], NULL, 200 + i), "zc_send_zc");
		evloop_reap(ctx, NSIZES, ZC_OP_SEND);
		rxe_fill(big, MiB + 1, 42);
		RXE_ASSERT(zc_send(c, big, MiB + 1, 0) == MiB + 1, "stream send");
		zc_mr_invalidate(ctx, big, MiB + 1);
		free(big);
	} else if (!strcmp(mode, "zcproof")) {
		struct zc_mr *mr;
		uint8_t *p = proof_buf(ctx, &mr, 0x77);

		CHECK_RC(zc_send_zc(c, p, PROOF_LEN, mr, 1), "zc_send_zc");
		reap_one(ctx, ZC_OP_SEND);
		proof_done(p, &mr, 0x77);
	}
	CHECK_RC(zc_close(&c), "client zc_close");
	RXE_ASSERT(c == NULL, "zc_close left the handle set");
	for (i = 0; i < NSIZES; i++) {
		zc_mr_invalidate(ctx, bufs[i] - 1, sizes[i] + 8);
		free(bufs[i] - 1);
	}
}

/* addr's address as text, and its port. */
static const char *addr_str(const struct sockaddr_storage *ss, char *buf, size_t cap, uint16_t *port_out)
{
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;

	RXE_ASSERT(ss->ss_family == (env.family == 6 ? AF_INET6 : AF_INET), "address family %d", ss->ss_family);
	*port_out = ntohs(ss->ss_family == AF_INET6 ? a6->sin6_port : a4->sin_port);
	return inet_ntop(ss->ss_family, ss->ss_family == AF_INET6 ? (const void *)&a6->sin6_addr : &a4->sin_addr,
			 buf, (socklen_t)cap);
}

/* The address as given (numeric) equals the one a query returned. */
static void check_addr(const char *what, const struct sockaddr_storage *ss, const char *want, uint16_t want_port)
{
	struct sockaddr_storage w;
	char buf[64], wbuf[64];
	uint16_t p, wp;

	memset(&w, 0, sizeof(w));
	w.ss_family = (sa_family_t)(env.family == 6 ? AF_INET6 : AF_INET);
	RXE_ASSERT(inet_pton(w.ss_family, want,
			     env.family == 6 ? (void *)&((struct sockaddr_in6 *)&w)->sin6_addr
					     : (void *)&((struct sockaddr_in *)&w)->sin_addr) == 1,
		   "%s: '%s' is not numeric", what, want);
	addr_str(ss, buf, sizeof(buf), &p);
	addr_str(&w, wbuf, sizeof(wbuf), &wp);
	RXE_ASSERT(!strcmp(buf, wbuf) && (!want_port || p == want_port), "%s is %s port %u, expected %s port %u",
		   what, buf, p, wbuf, want_port);
}

static void check_infos(void)
{
	char buf[64];
	uint16_t cport;

	check_addr("client local", &cli_info.local, env.addr_a, 0);
	check_addr("client peer", &cli_info.peer, env.addr_b, port);
	check_addr("server local", &srv_info.local, env.addr_b, port);
	addr_str(&cli_info.local, buf, sizeof(buf), &cport);
	RXE_ASSERT(cport != 0 && cport != port, "client port %u", cport);
	check_addr("server peer", &srv_info.peer, env.addr_a, cport);
	RXE_ASSERT(!strcmp(cli_info.device, env.dev_a) && !strcmp(srv_info.device, env.dev_b),
		   "devices %s and %s, expected %s and %s", cli_info.device, srv_info.device, env.dev_a, env.dev_b);
	RXE_ASSERT(cli_info.credits == 16 && srv_info.credits == 16, "credits %u and %u (the defaults are 16)",
		   cli_info.credits, srv_info.credits);
	RXE_ASSERT(cli_info.eager_size == 16384 && srv_info.eager_size == 16384 && cli_info.eager_in == 16384 &&
			   srv_info.eager_in == 16384,
		   "eager sizes %u/%u and %u/%u", cli_info.eager_size, cli_info.eager_in, srv_info.eager_size,
		   srv_info.eager_in);
	RXE_ASSERT(cli_info.window_in >= 1 && cli_info.window_in <= 64 && srv_info.window_in >= 1 &&
			   srv_info.window_in <= 64 && cli_info.window_out <= 64 && srv_info.window_out <= 64,
		   "windows %u/%u and %u/%u", cli_info.window_in, cli_info.window_out, srv_info.window_in,
		   srv_info.window_out);
	RXE_ASSERT(cli_info.send_depth == 31 && srv_info.send_depth == 31, "send depths %u and %u",
		   cli_info.send_depth, srv_info.send_depth);
	RXE_ASSERT(cli_info.read_depth >= 1 && cli_info.read_depth <= 255 && srv_info.read_depth >= 1 &&
			   srv_info.read_depth <= 255,
		   "read depths %u and %u", cli_info.read_depth, srv_info.read_depth);
	printf("zc_conn_query: client %s port %u on %s, server port %u on %s; credits %u, eager %u, send depth %u, "
	       "read depth %u/%u\n",
	       buf, cport, cli_info.device, port, srv_info.device, cli_info.credits, cli_info.eager_size,
	       cli_info.send_depth, cli_info.read_depth, srv_info.read_depth);
}

/* A context made without an address has no device until its first
 * connection; listening needs an address. */
static void noaddr_before(struct zc_ctx *ctx)
{
	struct zc_caps caps;
	struct zc_listener *l;
	struct zc_mr *mr;
	static char page[4096];

	RXE_ASSERT(zc_ctx_query(ctx, &caps) == -ENODEV, "zc_ctx_query without a device");
	RXE_ASSERT(zc_mr_reg(ctx, page, sizeof(page), 0, &mr) == -ENODEV, "zc_mr_reg without a device");
	RXE_ASSERT(zc_listen(ctx, 0, NULL, &l) == -EINVAL, "zc_listen without an address");
}

/* It has rxe0 now: a peer routed through rxe1 is refused, named. */
static void noaddr_after(struct zc_ctx *ctx)
{
	struct zc_caps caps;
	struct zc_conn *c;
	int rc;

	CHECK_RC(zc_ctx_query(ctx, &caps), "zc_ctx_query after connecting");
	RXE_ASSERT(!strcmp(caps.device, env.dev_a), "the route chose %s, expected %s", caps.device, env.dev_a);
	rc = zc_connect(ctx, env.addr_a, (uint16_t)(port + 5), NULL, &c);
	RXE_ASSERT(rc == -ENODEV, "a connection through %s from a context on %s: %d (%s), expected -ENODEV",
		   env.dev_b, env.dev_a, rc, zc_last_error());
	printf("noaddr: %s\n", zc_last_error());
}

int main(int argc, char **argv)
{
	struct side srv = {0};
	struct zc_ctx *cctx;
	struct zc_stats st;
	pthread_t t;

	if (argc != 2)
		RXE_FAIL("usage: rxe_lib stream|msg|zc|close|close_server|zcproof|evloop|noaddr");
	mode = argv[1];
	noaddr = !strcmp(mode, "noaddr");
	if (noaddr)
		mode = "stream";
	rxe_env_require(&env);
	port = rxe_port(1);
	CHECK_RC(zc_ctx_new(env.addr_b, NULL, &srv.ctx), "server zc_ctx_new");
	CHECK_RC(zc_ctx_new(noaddr ? NULL : env.addr_a, NULL, &cctx), "client zc_ctx_new");
	if (noaddr)
		noaddr_before(cctx);
	CHECK_RC(zc_listen(srv.ctx, port, NULL, &srv.l), "zc_listen");
	pthread_create(&t, NULL, server, &srv);
	client(cctx);
	pthread_join(t, NULL);
	check_infos();
	if (noaddr)
		noaddr_after(cctx);
	zc_ctx_stats(cctx, &st);
	printf("rxe_lib %s: PASS (client: %llu inline, %llu eager, %llu rendezvous, %llu window binds, "
	       "rcache %llu hits / %llu misses)\n",
	       argv[1], (unsigned long long)st.inline_msgs, (unsigned long long)st.eager_msgs,
	       (unsigned long long)st.rndv_msgs, (unsigned long long)st.mw_binds, (unsigned long long)st.rcache_hits,
	       (unsigned long long)st.rcache_misses);
	if (!strcmp(mode, "evloop")) {
		printf("event loop: %u wake-ups without a completion\n", idle_wakeups);
		RXE_ASSERT(idle_wakeups < IDLE_WAKEUPS_MAX, "zc_ctx_fd() stays readable with nothing to do");
	}
	zc_listener_free(&srv.l);
	CHECK_RC(zc_ctx_free(&srv.ctx), "zc_ctx_free");
	CHECK_RC(zc_ctx_free(&cctx), "zc_ctx_free");
	return 0;
}
