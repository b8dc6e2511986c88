/*
 * zc_echo - message echo over zcrdma
 *
 *   server:  zc_echo -l ADDR[:PORT] [-n N] [-m MAXSIZE]
 *   client:  zc_echo [-b SRCADDR] ADDR[:PORT] [-s SIZE] [-c COUNT] [--verify] [-t SECONDS]
 *
 * The server listens on ADDR (an address of an RDMA netdev, PORT default
 * 7471) and serves every client at once from one event loop
 * (zc_wait_events(): the recipe for a many-client server), forever or until
 * N connections (-n; it stops listening after the N-th) have ended. It
 * sends every message it receives straight back with zc_msg_recv() /
 * zc_msg_send(): small messages are copied through the library's rings,
 * larger ones are RDMA-read into its buffer and RDMA-read back by the client.
 * Messages up to MAXSIZE bytes (default 16 MiB) are echoed; a larger one ends
 * that connection with an error. The server's exit status is 0 when every
 * connection it served ended in an orderly close.
 *
 * The client sends COUNT (default 100) messages of SIZE bytes (default 1024,
 * 0 allowed), one at a time, waits for each echo and checks its length; with
 * --verify each message carries a pattern that depends on its number and the
 * echo is compared byte for byte. It prints round-trip statistics and closes.
 * -b SRCADDR connects from that local address (rxe0 is 192.168.77.1 in the
 * rxe guest); without it the route to the server picks the source address
 * and the RDMA device. IPv6 addresses go in brackets when a port follows
 * ([fd77::2]:7471). If no echo arrives within -t SECONDS
 * (default 30) the client gives up. Sizes take K, M, G suffixes (powers of 2).
 *
 * Exit status: 0 on success, 1 on any failure (one line on stderr naming the
 * cause), 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zcrdma.h>

#include "zc_example.h"

#define DEFAULT_PORT 7471
#define MiB (1024 * 1024)
#define MAX_SIZE (1ll << 40) /* -s and -m */

const char *const zc_ex_prog = "zc_echo";

static void usage(void)
{
	fprintf(stderr,
		"usage: %s -l ADDR[:PORT] [-n N] [-m MAXSIZE]                    (server)\n"
		"       %s [-b SRCADDR] ADDR[:PORT] [-s SIZE] [-c COUNT] [--verify] [-t SECONDS]  (client)\n"
		"  -l ADDR[:PORT]  listen on ADDR, an address of an RDMA netdev (port %d by default)\n"
		"  -n N            serve N connections (all at once), then exit (default: forever)\n"
		"  -m MAXSIZE      largest message echoed (default 16M)\n"
		"  -b SRCADDR      the client's local RDMA address (default: the route's)\n"
		"  -s SIZE         message size in bytes, K/M/G suffixes allowed (default 1024)\n"
		"  -c COUNT        messages to send (default 100)\n"
		"  --verify        check every echoed byte against the pattern sent\n"
		"  -t SECONDS      client: give up when an echo takes longer (default 30)\n",
		zc_ex_prog, zc_ex_prog, DEFAULT_PORT);
	exit(2);
}

/* Prints "zc_echo: WHAT: cause (details)" for a zcrdma error code. */
static void zc_fail(const char *what, long rc)
{
	zc_ex_warn("%s: %s", what, zc_ex_why((int)rc));
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Byte j of message number i; consecutive messages differ in every byte. */
static inline uint8_t pattern(uint64_t i, size_t j)
{
	return (uint8_t)(j * 7 + (j >> 8) * 13 + (j >> 16) + i * 0x9d + 1);
}

static void fill(uint8_t *p, size_t len, uint64_t i)
{
	size_t j;

	for (j = 0; j < len; j++)
		p[j] = pattern(i, j);
}

static long check(const uint8_t *p, size_t len, uint64_t i)
{
	size_t j;

	for (j = 0; j < len; j++)
		if (p[j] != pattern(i, j))
			return (long)j;
	return -1;
}

/* ------------------------------------------------------------------ */
/* Server                                                              */

/* One client of the server, its user data (zc_conn_set_data). */
struct peer {
	long long id;
	uint64_t msgs, bytes;
};

struct echo_server {
	struct zc_ctx *ctx;
	struct zc_listener *l;
	uint8_t *buf;
	size_t maxsize;
	long long nconns, accepted, ended;
	int failures;
};

/* A connection's end: its line, and the peer freed. */
static void peer_end(struct echo_server *s, struct peer *p, int failed)
{
	zc_ex_warn("connection %lld: echoed %" PRIu64 " messages, %" PRIu64 " bytes%s", p->id, p->msgs, p->bytes,
		   failed ? " (failed)" : "");
	s->failures += failed;
	s->ended++;
	free(p);
}

/* Accepts what is established; with -n, stops listening after the last. */
static void on_accept(struct echo_server *s)
{
	struct zc_conn *conn;
	struct peer *p;
	int rc;

	while (s->l && (rc = zc_accept(s->l, &conn, 0)) != -EAGAIN) {
		if (rc) {
			/* a peer that is not a zcrdma endpoint was rejected; keep serving */
			zc_fail("accept", rc);
			s->failures++;
			continue;
		}
		p = calloc(1, sizeof(*p));
		if (!p) {
			zc_ex_warn("out of memory for connection %lld", s->accepted + 1);
			zc_abort(&conn);
			s->failures++;
			continue;
		}
		p->id = ++s->accepted;
		zc_conn_set_data(conn, p);
		if (s->nconns >= 0 && s->accepted == s->nconns)
			zc_listener_free(&s->l);
	}
}

/* Echoes what the connection has, without waiting for more; closes it
 * (zc_close_start) once the client has closed. */
static void on_readable(struct echo_server *s, struct zc_conn *conn, struct peer *p)
{
	for (;;) {
		ssize_t n = zc_msg_recv(conn, s->buf, s->maxsize, ZC_DONTWAIT), sent;

		if (n == -EAGAIN)
			return;
		if (n == -EPIPE) { /* the client closed after its last message */
			if (zc_close_start(&conn)) {
				zc_abort(&conn);
				peer_end(s, p, 1);
			}
			return;
		}
		if (n == -EMSGSIZE)
			zc_ex_warn("connection %lld: a message of %zd bytes exceeds -m %zu; dropping it", p->id,
				   zc_msg_peek(conn, ZC_DONTWAIT), s->maxsize);
		else if (n < 0)
			zc_fail("receive", n);
		/* Blocking: a small echo waits only for a credit; a large one
		 * until this client has read it (other clients wait meanwhile). */
		sent = n < 0 ? n : zc_msg_send(conn, s->buf, (size_t)n, 0);
		if (sent < 0) {
			if (n >= 0)
				zc_fail("send", sent);
			zc_abort(&conn);
			peer_end(s, p, 1);
			return;
		}
		p->msgs++;
		p->bytes += (uint64_t)n;
	}
}

static void on_event(struct echo_server *s, const struct zc_event *ev)
{
	struct zc_conn *conn = ev->conn;

	switch (ev->type) {
	case ZC_EV_ACCEPT:
		on_accept(s);
		break;
	case ZC_EV_READABLE:
		on_readable(s, conn, ev->data);
		break;
	case ZC_EV_ERROR:
		zc_fail("connection", ev->status);
		zc_abort(&conn);
		peer_end(s, ev->data, 1);
		break;
	case ZC_EV_CLOSED:
		if (ev->status)
			zc_fail("close", ev->status);
		peer_end(s, ev->data, ev->status != 0);
		break;
	default: /* PEER_CLOSED: the end of stream is read as READABLE */
		break;
	}
}

/*
 * The server is one event loop over every client: zc_wait_events()
 * reports which connection has messages (READABLE), new connections
 * (ACCEPT), failures (ERROR) and finished closes (CLOSED); nothing in it
 * waits for one client while others have work, except a rendezvous echo
 * (see on_readable).
 */
static int server(const char *listen_arg, long long nconns, size_t maxsize)
{
	struct echo_server s = {.nconns = nconns, .maxsize = maxsize};
	struct zc_event ev[64];
	char host[256];
	uint16_t port;
	int rc, n, i;

	if (zc_ex_parse_hostport(listen_arg, host, sizeof(host), &port, DEFAULT_PORT)) {
		zc_ex_warn("bad listen address '%s' (ADDR[:PORT])", listen_arg);
		return 2;
	}
	s.buf = malloc(maxsize ? maxsize : 1);
	if (!s.buf) {
		zc_ex_warn("cannot allocate the %zu-byte message buffer (-m)", maxsize);
		return 1;
	}
	rc = zc_ctx_new(host, NULL, &s.ctx);
	if (rc) {
		zc_fail(host, rc);
		free(s.buf);
		return 1;
	}
	rc = zc_listen(s.ctx, port, NULL, &s.l);
	if (rc) {
		zc_fail("listen", rc);
		zc_ctx_free(&s.ctx);
		free(s.buf);
		return 1;
	}
	zc_ex_warn("listening on %s port %u", host, zc_listener_port(s.l));
	while (nconns < 0 || s.ended < nconns) {
		n = zc_wait_events(s.ctx, ev, 64, -1);
		if (n < 0) {
			zc_fail("wait", n);
			s.failures++;
			break;
		}
		for (i = 0; i < n; i++)
			on_event(&s, &ev[i]);
	}
	if (s.l)
		zc_listener_free(&s.l);
	zc_mr_invalidate(s.ctx, s.buf, maxsize ? maxsize : 1);
	zc_ctx_free(&s.ctx);
	free(s.buf);
	return s.failures ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* Client                                                              */

static unsigned echo_timeout = 30;

/* Every wait of the client is bounded: no echo within -t seconds ends it. */
static void on_alarm(int sig)
{
	static const char msg[] = "zc_echo: no echo within the -t timeout: the server is not answering\n";
	ssize_t w;

	(void)sig;
	w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)w;
	_exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int client(const char *src, const char *dst_arg, size_t size, long long count, int verify)
{
	char host[256];
	uint16_t port;
	struct zc_ctx *ctx = NULL;
	struct zc_conn *conn = NULL;
	struct zc_conn_opts opts;
	uint8_t *sbuf = NULL, *rbuf = NULL;
	double *rtt = NULL, t0, total = 0;
	long long i;
	int rc, ret = 1;

	if (zc_ex_parse_hostport(dst_arg, host, sizeof(host), &port, DEFAULT_PORT)) {
		zc_ex_warn("bad server address '%s' (ADDR[:PORT])", dst_arg);
		return 2;
	}
	sbuf = malloc(size ? size : 1);
	rbuf = malloc(size ? size : 1);
	rtt = malloc(sizeof(*rtt) * (size_t)count);
	if (!sbuf || !rbuf || !rtt) {
		zc_ex_warn("out of memory for %zu-byte messages", size);
		goto out;
	}
	fill(sbuf, size, 0);
	rc = zc_ctx_new(src, NULL, &ctx);
	if (rc) {
		zc_fail(src ? src : "zc_ctx_new", rc);
		goto out;
	}
	zc_conn_opts_init(&opts);
	if (echo_timeout && echo_timeout * 1000ull < (unsigned)opts.timeout_ms)
		opts.timeout_ms = (int)(echo_timeout * 1000);
	rc = zc_connect(ctx, host, port, &opts, &conn);
	if (rc) {
		zc_ex_warn("connect to %s port %u: %s", host, port, zc_ex_why(rc));
		goto out;
	}
	signal(SIGALRM, on_alarm);
	for (i = 0; i < count; i++) {
		ssize_t n;

		if (verify && i)
			fill(sbuf, size, (uint64_t)i);
		alarm(echo_timeout);
		t0 = now_us();
		n = zc_msg_send(conn, sbuf, size, 0);
		if (n < 0) {
			zc_fail("send", n);
			goto out;
		}
		n = zc_msg_recv(conn, rbuf, size, 0);
		if (n == -EMSGSIZE) {
			zc_ex_warn("message %lld: the echo is longer than the %zu bytes sent", i, size);
			goto out;
		}
		if (n < 0) {
			zc_fail("receive", n);
			goto out;
		}
		rtt[i] = now_us() - t0;
		total += rtt[i];
		if ((size_t)n != size) {
			zc_ex_warn("message %lld: echo has %zd bytes, sent %zu", i, n, size);
			goto out;
		}
		if (verify) {
			long bad = check(rbuf, size, (uint64_t)i);

			if (bad >= 0) {
				zc_ex_warn("message %lld: echo differs at byte %ld (0x%02x, expected 0x%02x)",
					i, bad, rbuf[bad], pattern((uint64_t)i, (size_t)bad));
				goto out;
			}
		}
	}
	alarm(echo_timeout);
	rc = zc_close(&conn);
	alarm(0);
	if (rc) {
		zc_fail("close", rc);
		goto out;
	}
	if (count > 0) {
		double mb = 2.0 * (double)size * (double)count / total; /* bytes per us = MB/s */

		qsort(rtt, (size_t)count, sizeof(*rtt), cmp_double);
		printf("zc_echo: %lld x %zu bytes to %s port %u%s: round trip us min %.1f avg %.1f p50 %.1f "
		       "p99 %.1f max %.1f; %.2f MB/s both ways\n",
		       count, size, host, port, verify ? ", verified" : "", rtt[0], total / (double)count,
		       rtt[(size_t)(count - 1) / 2], rtt[(size_t)((double)(count - 1) * 0.99)], rtt[count - 1], mb);
	} else {
		printf("zc_echo: connected to %s port %u and closed (no messages)\n", host, port);
	}
	ret = 0;
out:
	alarm(0);
	if (conn)
		zc_abort(&conn);
	if (ctx) {
		zc_mr_invalidate(ctx, sbuf, size ? size : 1);
		zc_mr_invalidate(ctx, rbuf, size ? size : 1);
		zc_ctx_free(&ctx);
	}
	free(sbuf);
	free(rbuf);
	free(rtt);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"verify", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *listen_arg = NULL, *src = NULL;
	long long nconns = -1, size = 1024, count = 100, maxsize = 16 * MiB, v;
	int verify = 0, opt;
	char *end;

	while ((opt = getopt_long(argc, argv, "l:n:m:b:s:c:t:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen_arg = optarg;
			break;
		case 'b':
			src = optarg;
			break;
		case 'n':
		case 'c':
		case 't':
			errno = 0;
			v = strtoll(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 0 || (opt == 't' && v > 86400)) {
				zc_ex_warn("-%c needs a non-negative number, got '%s'", opt, optarg);
				usage();
			}
			if (opt == 'n')
				nconns = v;
			else if (opt == 'c')
				count = v;
			else
				echo_timeout = (unsigned)v;
			break;
		case 's':
		case 'm':
			v = zc_ex_parse_size(optarg);
			if (v < 0 || v > MAX_SIZE) {
				zc_ex_warn("-%c needs a byte count (K/M/G suffixes allowed), got '%s'", opt, optarg);
				usage();
			}
			if (opt == 's')
				size = v;
			else
				maxsize = v;
			break;
		case 'V':
			verify = 1;
			break;
		default:
			usage();
		}
	}
	if (listen_arg) {
		if (optind != argc || src) {
			zc_ex_warn("the server takes no server address and no -b");
			usage();
		}
		return server(listen_arg, nconns, (size_t)maxsize);
	}
	if (optind != argc - 1) {
		zc_ex_warn("give -l ADDR[:PORT] (server) or the server's ADDR[:PORT] (client)");
		usage();
	}
	return client(src, argv[optind], (size_t)size, count, verify);
}
