/*
 * fork() while transfers are in flight, over real rxe.
 *
 *   rxe_fork
 *
 * A client thread sends messages (mostly rendezvous: the NIC reads the
 * client's buffer) from one reused buffer that it rewrites with a new pattern
 * after each send; a server thread receives each into one reused buffer (the
 * NIC writes it), verifies every byte and echoes it back from that buffer;
 * the client receives the echo into another reused buffer and verifies it.
 * Meanwhile the main thread forks a child every few milliseconds; each child
 * scribbles over its copies of all three buffers, maps and unmaps memory and
 * exits 0. Both rewriting a registered buffer after fork() (the parent's
 * copy-on-write fault) and the children's writes are what used to corrupt
 * RDMA buffers: the test passes if every message and echo is intact, every
 * child exits 0 (its pages were accessible), and there were forks during the
 * transfers: the client goes on past its 60 messages until 10 children
 * have been forked (within 240 s), so a fast host cannot finish the transfers
 * first. The library does not call ibv_fork_init(); the value of
 * ibv_is_fork_initialized() is printed (docs/reliability.md, "fork").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "zcrdma.h"
#include "rxe_env.h"

#define NMSG 60      /* messages at least */
#define MIN_FORKS 10 /* and at least this many forks while they run */
#define DEADLINE_S 240
#define MAXLEN (512 * 1024)

static struct rxe_env env;
static struct zc_ctx *sctx, *cctx;
static struct zc_listener *lis;
static uint16_t port;
static uint8_t *sbuf, *rbuf, *ebuf; /* client send, server receive, client echo */
static atomic_int done, forks;
static int nmsg; /* messages the client sent */

static size_t len_of(int i)
{
	return i % 5 == 0 ? 5000 : (size_t)(MAXLEN - i % NMSG * 4099);
}

static void *server_main(void *arg)
{
	struct zc_conn *c;
	int i;

	(void)arg;
	CHECK_RC(zc_accept(lis, &c, 30000), "zc_accept");
	for (i = 0;; i++) { /* until the client's end of stream */
		ssize_t n = zc_msg_recv(c, rbuf, MAXLEN, 0);

		if (n == -EPIPE)
			break;
		CHECK_RC(n, "server zc_msg_recv");
		RXE_ASSERT((size_t)n == len_of(i), "message %d: %zd bytes", i, n);
		RXE_ASSERT(rxe_check(rbuf, (size_t)n, (uint32_t)i) < 0, "message %d corrupt at byte %ld", i,
			   rxe_check(rbuf, (size_t)n, (uint32_t)i));
		CHECK_RC(zc_msg_send(c, rbuf, (size_t)n, 0), "server zc_msg_send");
	}
	RXE_ASSERT(i >= NMSG, "end of stream after %d messages", i);
	CHECK_RC(zc_close(&c), "server zc_close");
	zc_mr_invalidate(sctx, rbuf, MAXLEN);
	return NULL;
}

static void *client_main(void *arg)
{
	struct zc_conn_opts o;
	struct zc_conn *c;
	double deadline = rxe_now() + DEADLINE_S;
	int i;

	(void)arg;
	zc_conn_opts_init(&o);
	o.timeout_ms = 30000;
	CHECK_RC(zc_connect(cctx, env.addr_b, port, &o, &c), "zc_connect");
	for (i = 0; i < NMSG || atomic_load(&forks) < MIN_FORKS; i++) {
		ssize_t n;

		RXE_ASSERT(rxe_now() < deadline, "only %d forks in %d s (%d messages)", atomic_load(&forks),
			   DEADLINE_S, i);
		rxe_fill(sbuf, len_of(i), (uint32_t)i); /* a write to a registered page after fork() */
		CHECK_RC(zc_msg_send(c, sbuf, len_of(i), 0), "client zc_msg_send");
		n = zc_msg_recv(c, ebuf, MAXLEN, 0);
		CHECK_RC(n, "client zc_msg_recv");
		RXE_ASSERT((size_t)n == len_of(i) && rxe_check(ebuf, (size_t)n, (uint32_t)i) < 0,
			   "echo %d corrupt", i);
	}
	nmsg = i;
	CHECK_RC(zc_close(&c), "client zc_close");
	zc_mr_invalidate(cctx, sbuf, MAXLEN);
	zc_mr_invalidate(cctx, ebuf, MAXLEN);
	atomic_store(&done, 1);
	return NULL;
}

/* Async-signal-safe only: the parent has other threads. */
static void child(void)
{
	void *m;

	memset(sbuf, 0xa5, MAXLEN);
	memset(rbuf, 0x5a, MAXLEN);
	memset(ebuf, 0xff, MAXLEN);
	m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		_exit(3);
	memset(m, 1, 1 << 20);
	munmap(m, 1 << 20);
	usleep(20000); /* still alive while the parent rewrites its buffers */
	_exit(0);
}

int main(void)
{
	pthread_t st, ct;
	int failed = 0, fi;

	rxe_env_require(&env);
	fi = ibv_is_fork_initialized();
	printf("fork: ibv_is_fork_initialized() = %s\n",
	       fi == IBV_FORK_UNNEEDED ? "IBV_FORK_UNNEEDED (the kernel copies pinned pages at fork)"
	       : fi == IBV_FORK_ENABLED ? "IBV_FORK_ENABLED" : "IBV_FORK_DISABLED");
	sbuf = malloc(MAXLEN);
	rbuf = malloc(MAXLEN);
	ebuf = malloc(MAXLEN);
	CHECK_RC(zc_ctx_new(env.addr_b, NULL, &sctx), "zc_ctx_new");
	CHECK_RC(zc_ctx_new(env.addr_a, NULL, &cctx), "zc_ctx_new");
	port = rxe_port(0);
	CHECK_RC(zc_listen(sctx, port, NULL, &lis), "zc_listen");
	pthread_create(&st, NULL, server_main, NULL);
	pthread_create(&ct, NULL, client_main, NULL);
	while (!atomic_load(&done)) {
		pid_t pid = fork();
		int status;

		RXE_ASSERT(pid >= 0, "fork");
		if (pid == 0)
			child();
		RXE_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");
		atomic_fetch_add(&forks, 1);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			failed++;
			fprintf(stderr, "child %d ended with status 0x%x\n", atomic_load(&forks), status);
		}
		usleep(5000);
	}
	pthread_join(ct, NULL);
	pthread_join(st, NULL);
	printf("fork: %d messages and echoes verified while %d children were forked\n", nmsg, atomic_load(&forks));
	RXE_ASSERT(failed == 0, "%d of %d children failed", failed, atomic_load(&forks));
	zc_listener_free(&lis);
	CHECK_RC(zc_ctx_free(&sctx), "zc_ctx_free");
	CHECK_RC(zc_ctx_free(&cctx), "zc_ctx_free");
	free(sbuf);
	free(rbuf);
	free(ebuf);
	printf("rxe_fork: PASS\n");
	return 0;
}
