/*
 * A plain socket program (it knows nothing of zcrdma) for the preload
 * library's tests (test/rxe/preload.sh runs it with and without zcrun).
 *
 *   preload_peer server ADDR PORT [die|zcproof|halfclose|timeo]
 *       accepts one connection; for each request (8-byte length, 4-byte
 *       seed) reads the payload, verifies every byte and answers with the
 *       same length of the pattern of seed + 1; length 0 ends. With "die"
 *       it reads 1 MiB of the first payload and kills itself (SIGKILL).
 *       With "halfclose" it reads until the end of the stream (read() 0,
 *       poll POLLRDHUP), verifies, and only then answers with as many bytes
 *       of the next pattern, in a small and a large write, and closes.
 *       With "timeo" it reads nothing on the first connection until the
 *       client says (on a second one) how much it wrote, waits until
 *       FIONREAD counts all of it (60 s bound), then reads and verifies it.
 *   preload_peer client ADDR PORT MODE EXPECT
 *       MODE: block    blocking connect and transfers
 *             epoll    non-blocking connect, EPOLLOUT for its end, then
 *                      non-blocking transfers driven by epoll, level-
 *                      triggered for half the sizes and edge-triggered for
 *                      the rest, with a pipe in the same set
 *             poll     the same driven by poll(), select for the connect
 *             kill     the server dies mid-transfer: a write or read fails
 *                      with ECONNRESET or EPIPE (or reads end of stream),
 *                      never hangs
 *             zcproof  the zero-copy proof (the server runs "zcproof" too):
 *                      a 4 MiB write() in flight is announced to the server
 *                      whole (FIONREAD: one rendezvous, not copied chunks)
 *                      and its pages are pinned (VmPin grew by 4 MiB); a
 *                      helper thread then makes them PROT_NONE and only then
 *                      lets the server read (over a second connection); the
 *                      bytes arrive intact and write() returns after that, so
 *                      the NIC read the caller's own pages
 *             halfclose  (the server runs "halfclose" too) writes 100 B and
 *                      1 MiB + 1, then shutdown(SHUT_WR): a further write
 *                      fails with EPIPE, and the answer, which the server
 *                      sends only after its read saw the end of stream,
 *                      arrives intact, followed by the end of stream
 *             timeo    (the server runs "timeo" too) SO_RCVTIMEO and
 *                      SO_SNDTIMEO of 300 ms: a read with nothing to read
 *                      and a write with no room fail with EAGAIN, no sooner
 *                      than 300 ms; FIONREAD then counts every queued byte
 *                      (not just the next piece), and they arrive intact
 *       EXPECT: zc (no kernel TCP connection on PORT while connected) or
 *       tcp (one), checked in /proc/net/tcp.
 * Sizes 1 B .. 4 MiB + 3; every byte is checked both ways. Exits 0 on
 * success; every failure names itself.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rxe_env.h"

static const size_t sizes[] = {1, 100, 4095, 16385, 65536, 300000, (1u << 20) + 1, (4u << 20) + 3};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))
#define MAXLEN ((4u << 20) + 3)

struct req {
	uint64_t len;
	uint32_t seed;
	uint32_t pad;
};

static struct sockaddr_storage addr_of(const char *a, int port, socklen_t *len)
{
	struct sockaddr_storage ss = {0};

	if (strchr(a, ':')) {
		struct sockaddr_in6 *in6 = (void *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		RXE_ASSERT(inet_pton(AF_INET6, a, &in6->sin6_addr) == 1, "address %s", a);
		*len = sizeof(*in6);
	} else {
		struct sockaddr_in *in = (void *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		RXE_ASSERT(inet_pton(AF_INET, a, &in->sin_addr) == 1, "address %s", a);
		*len = sizeof(*in);
	}
	return ss;
}

enum drive { BLOCK, EPOLL, POLL };

static int xfer(int fd, enum drive d, void *buf, size_t len, bool out);

static int read_all(int fd, void *buf, size_t len)
{
	return xfer(fd, BLOCK, buf, len, false);
}

static int write_all(int fd, const void *buf, size_t len)
{
	return xfer(fd, BLOCK, (void *)buf, len, true);
}

/* The zero-copy proof's server: once the whole write is announced (one
 * rendezvous of all its bytes: FIONREAD), it says "ready" and reads the
 * payload only after the client's "go". */
static void server_zcproof(int l, uint8_t *buf)
{
	int c1 = accept(l, NULL, NULL), c2 = -1, queued = 0;
	struct pollfd p;
	struct req r;
	char go;

	RXE_ASSERT(c1 >= 0, "accept: %s", strerror(errno));
	RXE_ASSERT(read_all(c1, &r, sizeof(r)) == 0 && r.len <= MAXLEN, "zcproof: request");
	c2 = accept(l, NULL, NULL); /* connected after the request was sent */
	RXE_ASSERT(c2 >= 0, "accept: %s", strerror(errno));
	p = (struct pollfd){.fd = c1, .events = POLLIN};
	RXE_ASSERT(poll(&p, 1, 60000) == 1, "zcproof: the payload was never announced");
	RXE_ASSERT(ioctl(c1, FIONREAD, &queued) == 0 && queued == (int)r.len,
		   "zcproof: %d bytes announced, not the whole %llu-byte write in one piece", queued,
		   (unsigned long long)r.len);
	RXE_ASSERT(write_all(c2, "r", 1) == 0, "zcproof: ready");
	RXE_ASSERT(read_all(c2, &go, 1) == 0 && go == 'g', "zcproof: go");
	RXE_ASSERT(read_all(c1, buf, r.len) == 0, "zcproof: payload");
	RXE_ASSERT(rxe_check(buf, r.len, r.seed) < 0, "zcproof: payload corrupt at %ld", rxe_check(buf, r.len, r.seed));
	RXE_ASSERT(write_all(c1, "k", 1) == 0, "zcproof: ack");
	close(c1);
	close(c2);
	printf("server: zcproof: the whole 4 MiB announced at once, read after PROT_NONE, intact\n");
}

#define HALF_LEN (100 + (1u << 20) + 1)

/* The half-close server: the request is the whole stream, up to its end. */
static void server_halfclose(int l, uint8_t *buf)
{
	int c = accept(l, NULL, NULL);
	struct pollfd p;
	size_t got = 0;
	ssize_t n;

	RXE_ASSERT(c >= 0, "accept: %s", strerror(errno));
	while ((n = read(c, buf + got, MAXLEN - got)) > 0)
		got += (size_t)n;
	RXE_ASSERT(n == 0, "halfclose: read: %s", strerror(errno));
	RXE_ASSERT(got == HALF_LEN, "halfclose: %zu bytes before the end of stream, sent %u", got, HALF_LEN);
	RXE_ASSERT(rxe_check(buf, got, 11) < 0, "halfclose: request corrupt at %ld", rxe_check(buf, got, 11));
	p = (struct pollfd){.fd = c, .events = POLLIN | POLLOUT | POLLRDHUP};
	RXE_ASSERT(poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLOUT | POLLRDHUP)) == (POLLIN | POLLOUT | POLLRDHUP) &&
			   !(p.revents & (POLLHUP | POLLERR)),
		   "halfclose: poll revents %#x after the peer's shutdown, want IN|OUT|RDHUP", p.revents);
	rxe_fill(buf, got, 12);
	RXE_ASSERT(write_all(c, buf, 100) == 0 && write_all(c, buf + 100, got - 100) == 0,
		   "halfclose: answer to a half-closed peer: %s", strerror(errno));
	RXE_ASSERT(close(c) == 0, "close");
	printf("server: halfclose: %zu bytes up to the end of stream, answered after it\n", got);
}

/* SO_SNDTIMEO's server: the client's writes queue unread until it says how
 * many there are; then FIONREAD must count them all. */
static void server_timeo(int l, uint8_t *buf)
{
	int c1 = accept(l, NULL, NULL), c2, queued = -1;
	double t0 = rxe_now();
	uint64_t total;
	char w;

	/* one message consumed while the client had no other credit: zcrdma
	 * lends it a window of 2 from then on, so 2 writes queue unread */
	RXE_ASSERT(c1 >= 0 && read_all(c1, &w, 1) == 0 && w == 'w' && write_all(c1, "W", 1) == 0, "timeo: warm-up");
	c2 = accept(l, NULL, NULL);

	RXE_ASSERT(c1 >= 0 && c2 >= 0, "accept: %s", strerror(errno));
	RXE_ASSERT(read_all(c2, &total, sizeof(total)) == 0 && total <= MAXLEN, "timeo: the count");
	while (ioctl(c1, FIONREAD, &queued) == 0 && queued != (int)total) {
		RXE_ASSERT(rxe_now() - t0 < 60, "timeo: FIONREAD says %d of the %llu bytes queued", queued,
			   (unsigned long long)total);
		usleep(10000);
	}
	RXE_ASSERT(queued == (int)total, "timeo: FIONREAD: %s", strerror(errno));
	RXE_ASSERT(read_all(c1, buf, total) == 0, "timeo: read");
	RXE_ASSERT(rxe_check(buf, total, 21) < 0, "timeo: data corrupt at %ld", rxe_check(buf, total, 21));
	RXE_ASSERT(write_all(c2, "k", 1) == 0, "timeo: ack");
	close(c1);
	close(c2);
	printf("server: timeo: FIONREAD counted all %llu queued bytes, intact\n", (unsigned long long)total);
}

static int server(const char *a, int port, const char *mode)
{
	socklen_t len;
	struct sockaddr_storage ss = addr_of(a, port, &len);
	uint8_t *buf = malloc(MAXLEN);
	int one = 1, l = socket(ss.ss_family, SOCK_STREAM, 0), c;
	struct req r;

	RXE_ASSERT(buf && l >= 0, "socket: %s", strerror(errno));
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	RXE_ASSERT(bind(l, (void *)&ss, len) == 0, "bind %s:%d: %s", a, port, strerror(errno));
	RXE_ASSERT(listen(l, 8) == 0, "listen: %s", strerror(errno));
	printf("listening\n");
	fflush(stdout);
	if (!strcmp(mode, "zcproof") || !strcmp(mode, "halfclose") || !strcmp(mode, "timeo")) {
		alarm(120); /* e.g. a missing end of stream would leave both ends waiting */
		(!strcmp(mode, "zcproof") ? server_zcproof : !strcmp(mode, "halfclose") ? server_halfclose : server_timeo)(l, buf);
		free(buf);
		return 0;
	}
	c = accept(l, NULL, NULL);
	RXE_ASSERT(c >= 0, "accept: %s", strerror(errno));
	for (;;) {
		RXE_ASSERT(read_all(c, &r, sizeof(r)) == 0, "server: read request: %s", strerror(errno));
		if (!r.len)
			break;
		RXE_ASSERT(r.len <= MAXLEN, "request of %llu bytes", (unsigned long long)r.len);
		if (!strcmp(mode, "die")) {
			RXE_ASSERT(read_all(c, buf, 1u << 20) == 0, "server: read 1 MiB");
			raise(SIGKILL);
		}
		RXE_ASSERT(read_all(c, buf, r.len) == 0, "server: read %llu bytes", (unsigned long long)r.len);
		RXE_ASSERT(rxe_check(buf, r.len, r.seed) < 0, "server: %llu-byte payload corrupt at %ld",
			   (unsigned long long)r.len, rxe_check(buf, r.len, r.seed));
		rxe_fill(buf, r.len, r.seed + 1);
		RXE_ASSERT(write_all(c, buf, r.len) == 0, "server: write %llu bytes: %s", (unsigned long long)r.len,
			   strerror(errno));
	}
	RXE_ASSERT(close(c) == 0 && close(l) == 0, "close");
	free(buf);
	printf("server: ok\n");
	return 0;
}

/* Kernel TCP connections in state ESTABLISHED with PORT at either end. */
static int tcp_established(int port)
{
	const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	int count = 0;

	for (int f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "r");
		char line[512];

		if (!fp)
			continue;
		while (fgets(line, sizeof(line), fp)) {
			char local[64], remote[64];
			unsigned st;
			char *lp, *rp;

			if (sscanf(line, " %*d: %63s %63s %x", local, remote, &st) != 3 || st != 1)
				continue;
			lp = strrchr(local, ':');
			rp = strrchr(remote, ':');
			if ((lp && strtol(lp + 1, NULL, 16) == port) || (rp && strtol(rp + 1, NULL, 16) == port))
				count++;
		}
		fclose(fp);
	}
	return count;
}

/* Waits until fd is ready for ev (POLLIN/POLLOUT) the way the mode says. */
static int ep = -1, pipefd[2];
static bool et;
static uint32_t registered = EPOLLOUT;

static void wait_ready(int fd, enum drive d, short ev)
{
	double end = rxe_now() + 120;

	if (d == POLL) {
		struct pollfd p = {.fd = fd, .events = ev};

		RXE_ASSERT(poll(&p, 1, 120000) == 1, "poll: %s", strerror(errno));
		RXE_ASSERT(p.revents & (ev | POLLERR | POLLHUP), "poll revents %#x", p.revents);
		return;
	}
	for (;;) {
		struct epoll_event e = {.events = (uint32_t)ev | (et ? EPOLLET : 0), .data.fd = fd}, got[4];
		int n;

		/* re-registering re-arms an edge: only when the interest changes */
		if (e.events != registered) {
			RXE_ASSERT(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e) == 0, "epoll_ctl MOD: %s", strerror(errno));
			registered = e.events;
		}
		n = epoll_wait(ep, got, 4, 120000);
		RXE_ASSERT(n > 0, "epoll_wait: %d (%s)", n, strerror(errno));
		for (int i = 0; i < n; i++)
			if (got[i].data.fd == fd && (got[i].events & ((uint32_t)ev | EPOLLERR | EPOLLHUP)))
				return;
		RXE_ASSERT(rxe_now() < end, "epoll: fd %d never ready for %#x", fd, ev);
	}
}

/* Exact transfers; 0 on success, else the errno (reading 0 bytes, the end
 * of the stream: -1). Non-blocking ones drain to EAGAIN before each wait
 * (as edge-triggered epoll requires). */
static int xfer(int fd, enum drive d, void *buf, size_t len, bool out)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = out ? write(fd, p, len) : read(fd, p, len);

		if (n == 0 && !out)
			return -1;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && d != BLOCK) {
			wait_ready(fd, d, out ? POLLOUT : POLLIN);
			continue;
		}
		if (n < 0)
			return errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int connect_nb(int fd, enum drive d, const struct sockaddr_storage *ss, socklen_t len)
{
	int err = 0;
	socklen_t el = sizeof(err);

	RXE_ASSERT(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0, "fcntl");
	if (connect(fd, (const void *)ss, len) == 0)
		return 0;
	RXE_ASSERT(errno == EINPROGRESS, "non-blocking connect: %s, not EINPROGRESS", strerror(errno));
	if (d == POLL) {
		fd_set w;
		struct timeval tv = {120, 0};

		FD_ZERO(&w);
		FD_SET(fd, &w);
		RXE_ASSERT(select(fd + 1, NULL, &w, NULL, &tv) == 1 && FD_ISSET(fd, &w), "select for connect");
	} else {
		struct epoll_event e = {.events = EPOLLOUT, .data.fd = fd}, got[4];
		bool seen = false;
		char b = 0;

		RXE_ASSERT(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0, "epoll_ctl ADD: %s", strerror(errno));
		/* a kernel fd in the same set is reported beside the socket */
		RXE_ASSERT(write(pipefd[1], "x", 1) == 1, "pipe write");
		for (int n; !seen && (n = epoll_wait(ep, got, 4, 120000)) > 0;)
			for (int i = 0; i < n; i++)
				seen |= got[i].data.fd == pipefd[0];
		RXE_ASSERT(seen, "no event for the pipe");
		RXE_ASSERT(read(pipefd[0], &b, 1) == 1 && b == 'x', "pipe read");
		wait_ready(fd, d, POLLOUT);
	}
	RXE_ASSERT(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0, "SO_ERROR");
	return err;
}

/* Pinned memory of this process (VmPin), in bytes. */
static long vm_pin(void)
{
	FILE *fp = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	while (fp && fgets(line, sizeof(line), fp))
		if (sscanf(line, "VmPin: %ld kB", &kb) == 1)
			break;
	if (fp)
		fclose(fp);
	return kb * 1024;
}

struct proof {
	uint8_t *buf;
	size_t len;
	long pin0;
	int ctl;
	volatile int returned, protected_in_flight;
};

static void *proof_helper(void *arg)
{
	struct proof *p = arg;
	char ready;

	/* the server saw the whole write announced: registered, window bound */
	RXE_ASSERT(read_all(p->ctl, &ready, 1) == 0 && ready == 'r', "zcproof: ready");
	RXE_ASSERT(vm_pin() >= p->pin0 + (long)p->len, "zcproof: the write's %zu bytes are not pinned (VmPin %ld, before %ld)",
		   p->len, vm_pin(), p->pin0);
	RXE_ASSERT(mprotect(p->buf, p->len, PROT_NONE) == 0, "mprotect: %s", strerror(errno));
	p->protected_in_flight = !p->returned;
	RXE_ASSERT(write_all(p->ctl, "g", 1) == 0, "zcproof: go");
	return NULL;
}

/* SO_RCVTIMEO/SO_SNDTIMEO, then FIONREAD on the server (server_timeo). */
static void client_timeo(int fd, const struct sockaddr_storage *ss, socklen_t len, uint8_t *buf)
{
	struct timeval tv = {0, 300000};
	uint64_t total = 0;
	int ctl;
	double t0;
	ssize_t n;
	char ack;

	alarm(120);
	RXE_ASSERT(write_all(fd, "w", 1) == 0 && read_all(fd, &ack, 1) == 0 && ack == 'W', "timeo: warm-up");
	RXE_ASSERT(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
			   setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0,
		   "setsockopt: %s", strerror(errno));
	t0 = rxe_now();
	n = read(fd, buf, 1);
	RXE_ASSERT(n == -1 && errno == EAGAIN && rxe_now() - t0 >= 0.299,
		   "SO_RCVTIMEO: read with nothing sent returned %zd (%s) after %.3f s", n, strerror(errno),
		   rxe_now() - t0);
	rxe_fill(buf, MAXLEN, 21);
	do { /* the server reads nothing yet: the writes fill what it queues */
		RXE_ASSERT(total + 4096 <= MAXLEN, "SO_SNDTIMEO: %llu bytes written, none timed out",
			   (unsigned long long)total);
		t0 = rxe_now();
		n = write(fd, buf + total, 4096);
		total += n > 0 ? (uint64_t)n : 0;
	} while (n > 0);
	RXE_ASSERT(n == -1 && errno == EAGAIN && rxe_now() - t0 >= 0.299,
		   "SO_SNDTIMEO: the write with no room returned %zd (%s) after %.3f s", n, strerror(errno),
		   rxe_now() - t0);
	RXE_ASSERT(total >= 8192, "timeo: only %llu bytes queued, expected two 4 KiB writes at least",
		   (unsigned long long)total);
	ctl = socket(ss->ss_family, SOCK_STREAM, 0);
	RXE_ASSERT(ctl >= 0 && connect(ctl, (const void *)ss, len) == 0, "second connection: %s", strerror(errno));
	RXE_ASSERT(write_all(ctl, &total, sizeof(total)) == 0, "timeo: the count");
	RXE_ASSERT(read_all(ctl, &ack, 1) == 0 && ack == 'k', "timeo: the server's verdict");
	close(ctl);
	RXE_ASSERT(close(fd) == 0, "close");
	printf("client timeo: read and write timed out with EAGAIN after >= 300 ms; %llu bytes queued, counted, intact\n",
	       (unsigned long long)total);
}

/* The half-close client: request, shutdown(SHUT_WR), then the answer. */
static void client_halfclose(int fd, uint8_t *buf)
{
	ssize_t n;

	alarm(120);
	rxe_fill(buf, HALF_LEN, 11);
	RXE_ASSERT(write_all(fd, buf, 100) == 0 && write_all(fd, buf + 100, HALF_LEN - 100) == 0, "halfclose: write: %s",
		   strerror(errno));
	RXE_ASSERT(shutdown(fd, SHUT_WR) == 0, "shutdown(SHUT_WR): %s", strerror(errno));
	RXE_ASSERT(write(fd, buf, 1) == -1 && errno == EPIPE, "halfclose: a write after shutdown(SHUT_WR): %s",
		   strerror(errno));
	memset(buf, 0, HALF_LEN);
	RXE_ASSERT(read_all(fd, buf, HALF_LEN) == 0, "halfclose: read the answer: %s", strerror(errno));
	RXE_ASSERT(rxe_check(buf, HALF_LEN, 12) < 0, "halfclose: answer corrupt at %ld", rxe_check(buf, HALF_LEN, 12));
	n = read(fd, buf, 1);
	RXE_ASSERT(n == 0, "halfclose: read after the answer returned %zd (%s), not the end of stream", n,
		   strerror(errno));
	RXE_ASSERT(close(fd) == 0, "close");
	printf("client halfclose: %u bytes, shutdown(SHUT_WR), EPIPE after it, the answer intact, end of stream\n",
	       HALF_LEN);
}

/* c2 connects after the request went out on c1, so the server tells them apart. */
static void client_zcproof(int c1, const struct sockaddr_storage *ss, socklen_t len)
{
	struct proof p = {.len = 4u << 20};
	struct req r = {.len = 4u << 20, .seed = 42};
	pthread_t t;
	char ack;

	p.buf = mmap(NULL, p.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	RXE_ASSERT(p.buf != MAP_FAILED, "mmap");
	rxe_fill(p.buf, p.len, r.seed);
	RXE_ASSERT(write_all(c1, &r, sizeof(r)) == 0, "zcproof: request");
	p.ctl = socket(ss->ss_family, SOCK_STREAM, 0);
	RXE_ASSERT(p.ctl >= 0 && connect(p.ctl, (const void *)ss, len) == 0, "second connection: %s", strerror(errno));
	p.pin0 = vm_pin();
	RXE_ASSERT(pthread_create(&t, NULL, proof_helper, &p) == 0, "pthread_create");
	RXE_ASSERT(write(c1, p.buf, p.len) == (ssize_t)p.len, "zcproof: write: %s", strerror(errno));
	p.returned = 1;
	pthread_join(t, NULL);
	RXE_ASSERT(p.protected_in_flight, "zcproof: write() returned before the pages were protected");
	RXE_ASSERT(read_all(c1, &ack, 1) == 0 && ack == 'k', "zcproof: the server's verdict");
	RXE_ASSERT(mprotect(p.buf, p.len, PROT_READ | PROT_WRITE) == 0, "mprotect back");
	munmap(p.buf, p.len);
	printf("client zcproof: a 4 MiB write() went from the caller's pinned pages, PROT_NONE while in flight, intact\n");
}

static int client(const char *a, int port, const char *mode, const char *expect)
{
	socklen_t len, pl = sizeof(struct sockaddr_storage);
	struct sockaddr_storage ss = addr_of(a, port, &len), peer;
	enum drive d = !strcmp(mode, "epoll") ? EPOLL : !strcmp(mode, "poll") ? POLL : BLOCK;
	uint8_t *buf = malloc(MAXLEN);
	int fd, rc, tcp;
	double t0 = rxe_now();

	signal(SIGPIPE, SIG_IGN);
	RXE_ASSERT(buf, "malloc");
	if (d == EPOLL) {
		struct epoll_event e = {.events = EPOLLIN, .data.fd = -1};

		RXE_ASSERT((ep = epoll_create1(EPOLL_CLOEXEC)) >= 0 && pipe(pipefd) == 0, "epoll/pipe");
		e.data.fd = pipefd[0];
		RXE_ASSERT(epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &e) == 0, "epoll_ctl pipe");
	}
	for (;;) { /* the server may not listen yet */
		fd = socket(ss.ss_family, SOCK_STREAM, 0);
		RXE_ASSERT(fd >= 0, "socket");
		rc = d == BLOCK ? (connect(fd, (void *)&ss, len) ? errno : 0) : connect_nb(fd, d, &ss, len);
		if (rc != ECONNREFUSED || rxe_now() - t0 > 60)
			break;
		if (d == EPOLL)
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
		close(fd);
		usleep(100000);
	}
	RXE_ASSERT(rc == 0, "connect %s:%d: %s", a, port, strerror(rc));
	RXE_ASSERT(getpeername(fd, (void *)&peer, &pl) == 0 && peer.ss_family == ss.ss_family &&
			   (ss.ss_family == AF_INET ? ((struct sockaddr_in *)&peer)->sin_port
						    : ((struct sockaddr_in6 *)&peer)->sin6_port) == htons((uint16_t)port),
		   "getpeername");
	tcp = tcp_established(port);
	RXE_ASSERT(!strcmp(expect, "tcp") ? tcp > 0 : tcp == 0, "expected %s, found %d kernel TCP connection(s) on port %d",
		   expect, tcp, port);
	if (!strcmp(mode, "zcproof")) {
		client_zcproof(fd, &ss, len);
		free(buf);
		return 0;
	}
	if (!strcmp(mode, "timeo")) {
		client_timeo(fd, &ss, len, buf);
		free(buf);
		return 0;
	}
	if (!strcmp(mode, "halfclose")) {
		client_halfclose(fd, buf);
		free(buf);
		return 0;
	}
	if (!strcmp(mode, "kill")) {
		struct req r = {.len = MAXLEN, .seed = 7};
		int e1 = 0, e2;

		rxe_fill(buf, MAXLEN, 7);
		alarm(120);
		for (int i = 0; i < 64 && !e1; i++)
			e1 = write_all(fd, i ? buf : (void *)&r, i ? MAXLEN : sizeof(r));
		e2 = read_all(fd, buf, 1);
		RXE_ASSERT((e1 == ECONNRESET || e1 == EPIPE) && (e2 == ECONNRESET || e2 == EPIPE || e2 == -1),
			   "after the server died: write %s, read %s", e1 ? strerror(e1) : "succeeded",
			   e2 > 0 ? strerror(e2) : e2 ? "end of stream" : "succeeded");
		printf("client kill: write failed with %s, then read %s\n", strerror(e1),
		       e2 > 0 ? strerror(e2) : "end of stream");
		free(buf);
		return 0;
	}
	for (size_t i = 0; i < NSIZES; i++) {
		struct req r = {.len = sizes[i], .seed = (uint32_t)(i + 1)};

		et = i >= NSIZES / 2;
		rxe_fill(buf, r.len, r.seed);
		if (d == BLOCK) {
			RXE_ASSERT(write_all(fd, &r, sizeof(r)) == 0 && write_all(fd, buf, r.len) == 0, "write %zu: %s",
				   sizes[i], strerror(errno));
			memset(buf, 0, r.len);
			RXE_ASSERT(read_all(fd, buf, r.len) == 0, "read %zu: %s", sizes[i], strerror(errno));
		} else {
			RXE_ASSERT(xfer(fd, d, &r, sizeof(r), true) == 0 && xfer(fd, d, buf, r.len, true) == 0,
				   "write %zu", sizes[i]);
			memset(buf, 0, r.len);
			RXE_ASSERT(xfer(fd, d, buf, r.len, false) == 0, "read %zu", sizes[i]);
		}
		RXE_ASSERT(rxe_check(buf, r.len, r.seed + 1) < 0, "client: %zu-byte answer corrupt at %ld", sizes[i],
			   rxe_check(buf, r.len, r.seed + 1));
	}
	{
		struct req end = {0};

		RXE_ASSERT(write_all(fd, &end, sizeof(end)) == 0, "write end");
	}
	RXE_ASSERT(close(fd) == 0, "close");
	free(buf);
	printf("client %s: %zu sizes 1 B .. %zu B verified both ways (%s)\n", mode, NSIZES, sizes[NSIZES - 1], expect);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && !strcmp(argv[1], "server"))
		return server(argv[2], atoi(argv[3]), argc > 4 ? argv[4] : "");
	if (argc == 6 && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]), argv[4], argv[5]);
	fprintf(stderr, "usage: preload_peer server ADDR PORT [die|zcproof|halfclose|timeo] | client ADDR PORT MODE zc|tcp\n");
	return 2;
}
