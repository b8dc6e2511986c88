/*
 * Many connections on one context, on real rxe.
 *
 *   rxe_scale [CONNS [PROCS]]   (default 1024 connections from 8 client
 *                                processes; ZC_SCALE_CONNS overrides)
 *
 * A server process serves every connection from one context and one event
 * loop (zc_wait_events).
 * The client processes each open CONNS/PROCS connections from a context of
 * their own and echo messages of 1 B to 100 kB (eager and rendezvous) over
 * every connection, each byte-verified. Printed: connect time, and the
 * server's memory per idle connection after one echo each (resident and
 * pinned growth from half the connections to all of them). Then they echo
 * until told to stop. Then three client processes
 * are killed with SIGKILL while they are echoing (they loop until told
 * otherwise, so work provably remains); the others must go on echoing
 * through full verified rounds, the server must notice every dead
 * connection and drop it, and once the survivors close, the server's open
 * fds, pinned memory and connections must be back to where they started.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zcrdma.h"
#include "rxe_env.h"

#define MAXMSG 100000
#define KILLED 3

static struct rxe_env env;
static uint16_t port;

/* ---- a pipe-borne report: what the server measured ---- */

struct report {
	long rss_kb, anon_kb, pin_kb, verbs_kb, fds, conns;
	uint64_t rx_slots, tx_slots, errors_seen, event_checks, rcache_bytes;
};

static long status_kb(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	RXE_ASSERT(f, "/proc/self/status");
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

/* Resident KiB of the device's mappings: rxe's queues, which the kernel
 * allocates and maps into the process (a QP's send queue above all). */
static long verbs_kb(void)
{
	char line[512];
	bool in = false;
	long kb = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	RXE_ASSERT(f, "/proc/self/smaps");
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' ') && strlen(line) > 20 &&
		    line[strspn(line, "0123456789abcdef")] == '-')
			in = strstr(line, "/dev/infiniband/") != NULL;
		else if (in && !strncmp(line, "Rss:", 4))
			kb += strtol(line + 4, NULL, 10);
	}
	fclose(f);
	return kb;
}

static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	long n = 0;

	RXE_ASSERT(d, "/proc/self/fd");
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void put(int fd, const void *p, size_t n)
{
	RXE_ASSERT(write(fd, p, n) == (ssize_t)n, "pipe write: %s", strerror(errno));
}

static int get(int fd, void *p, size_t n, int timeout_ms)
{
	struct pollfd pf = {.fd = fd, .events = POLLIN};

	if (poll(&pf, 1, timeout_ms) != 1)
		return -1;
	return read(fd, p, n) == (ssize_t)n ? 0 : -1;
}

/* ---- server: one event loop (zc_wait_events) ---- */

static uint8_t sbuf[MAXMSG];

/* Echoes what is waiting on c; false once the client's stream ended. */
static bool serve(struct zc_conn *c, uint64_t *errors)
{
	for (;;) {
		ssize_t n = zc_msg_recv(c, sbuf, sizeof(sbuf), ZC_DONTWAIT);

		if (n == -EAGAIN)
			return true;
		if (n < 0) {
			if (n != -EPIPE)
				(*errors)++; /* the ERROR event follows */
			return n != -EPIPE;
		}
		if (zc_msg_send(c, sbuf, (size_t)n, 0) < 0) {
			(*errors)++;
			return true;
		}
	}
}

static void server(int cmd, int out)
{
	struct zc_listener *l;
	struct zc_ctx *ctx;
	struct report r = {0};
	struct zc_event ev[64];
	long live = 0;
	int n, i;

	CHECK_RC(zc_ctx_new(env.addr_b, NULL, &ctx), "server zc_ctx_new");
	CHECK_RC(zc_listen(ctx, port, NULL, &l), "zc_listen");
	for (;;) {
		struct zc_stats st;
		char op;

		n = zc_wait_events(ctx, ev, 64, 50);
		CHECK_RC(n, "zc_wait_events");
		for (i = 0; i < n; i++) {
			struct zc_conn *c = ev[i].conn;

			switch (ev[i].type) {
			case ZC_EV_ACCEPT:
				while (zc_accept(l, &c, 0) == 0)
					live++;
				break;
			case ZC_EV_READABLE:
				if (!serve(c, &r.errors_seen))
					zc_close_start(&c);
				break;
			case ZC_EV_ERROR:
				zc_abort(&c);
				live--;
				break;
			case ZC_EV_CLOSED:
				live--;
				break;
			}
		}
		if (get(cmd, &op, 1, 0) == 0) {
			if (op == 'q')
				break;
			CHECK_RC(zc_ctx_stats(ctx, &st), "zc_ctx_stats");
			r.rss_kb = status_kb("VmRSS");
			r.anon_kb = status_kb("RssAnon");
			r.verbs_kb = verbs_kb();
			r.pin_kb = status_kb("VmPin");
			r.fds = open_fds();
			r.conns = live;
			r.rx_slots = st.rx_slots;
			r.event_checks = st.event_checks;
			r.rcache_bytes = st.rcache_bytes;
			r.tx_slots = st.tx_slots;
			put(out, &r, sizeof(r));
		}
	}
	zc_listener_free(&l);
	zc_ctx_free(&ctx);
	exit(0);
}

/* ---- clients ---- */

/* One verified echo of len bytes on c. */
static void echo(struct zc_conn *c, uint8_t *buf, uint8_t *back, size_t len, uint32_t seed, int id, int round)
{
	ssize_t n;

	rxe_fill(buf, len, seed);
	CHECK_RC(zc_msg_send(c, buf, len, 0), "client send");
	n = zc_msg_recv(c, back, MAXMSG, 0);
	CHECK_RC(n, "client recv");
	RXE_ASSERT((size_t)n == len && rxe_check(back, len, seed) < 0,
		   "connection %d round %d: echo of %zu bytes came back as %zd bytes, or corrupt", id, round, len, n);
}

static size_t msg_size(int conn, int round)
{
	return (size_t)((conn * 7919 + round * 104729) % MAXMSG) + 1;
}

static void client(int index, int nconns, int cmd, int out)
{
	struct zc_conn **cs = calloc((size_t)nconns, sizeof(*cs));
	uint8_t *buf = malloc(MAXMSG), *back = malloc(MAXMSG);
	struct zc_ctx *ctx;
	double t0;
	int round, i, report_after = -1;
	char op;

	CHECK_RC(zc_ctx_new(env.addr_a, NULL, &ctx), "client zc_ctx_new");
	t0 = rxe_now();
	for (i = 0; i < nconns; i++)
		CHECK_RC(zc_connect(ctx, env.addr_b, port, NULL, &cs[i]), "zc_connect");
	for (round = 0;; round++) {
		for (i = 0; i < nconns; i++) {
			int id = index * nconns + i;

			echo(cs[i], buf, back, msg_size(id, round), (uint32_t)(id * 131 + round), id, round);
		}
		if (round == 0) {
			double t = rxe_now() - t0;

			/* idle until told to go on ('g'): the server's memory is
			 * taken over idle connections; '1' echoes once on the
			 * first one alone */
			put(out, &t, sizeof(t));
			for (;;) {
				RXE_ASSERT(get(cmd, &op, 1, 300000) == 0, "client %d: no go", index);
				if (op == 'g')
					break;
				echo(cs[0], buf, back, 64, 7, index * nconns, -1);
				put(out, &op, 1);
			}
		}
		if (round == report_after)
			put(out, &round, sizeof(round));
		/* 'r': report the next round, all of it after the request; 's': stop */
		if (get(cmd, &op, 1, 0) == 0) {
			if (op == 's')
				break;
			report_after = round + 1;
		}
	}
	for (i = 0; i < nconns; i++)
		CHECK_RC(zc_close(&cs[i]), "client close");
	zc_ctx_free(&ctx);
	exit(0);
}

/* ---- the test ---- */

/* A failing test takes its processes with it: they hold ctest's output
 * pipe, which would keep ctest waiting until its timeout. */
static pid_t main_pid, children[65];
static int n_children;

static void kill_children(void)
{
	int i;

	if (getpid() != main_pid)
		return;
	for (i = 0; i < n_children; i++)
		if (children[i] > 0)
			kill(children[i], SIGKILL);
}

static struct report ask(int cmd, int res)
{
	struct report r;

	put(cmd, "m", 1);
	RXE_ASSERT(get(res, &r, sizeof(r), 60000) == 0, "the server did not report");
	return r;
}

int main(int argc, char **argv)
{
	int nconns = argc > 1 ? atoi(argv[1]) : getenv("ZC_SCALE_CONNS") ? atoi(getenv("ZC_SCALE_CONNS")) : 1024;
	int procs = argc > 2 ? atoi(argv[2]) : 8, per, i, s_cmd[2], s_res[2], status;
	int c_cmd[64][2], c_res[64][2];
	pid_t spid, cpid[64];
	struct report base, half, full, after;
	double slowest = 0, t0;
	long rss, pin;

	setvbuf(stdout, NULL, _IOLBF, 0); /* nothing buffered is copied into the children */
	main_pid = getpid();
	atexit(kill_children);
	rxe_env_require(&env);
	RXE_ASSERT(procs > KILLED && procs <= 64 && nconns >= procs, "bad arguments");
	per = nconns / procs;
	nconns = per * procs;
	port = rxe_port(0);
	RXE_ASSERT(pipe(s_cmd) == 0 && pipe(s_res) == 0, "pipe");
	spid = fork();
	if (spid == 0)
		server(s_cmd[0], s_res[1]);
	children[n_children++] = spid;
	/* the server's state before any connection */
	base = ask(s_cmd[1], s_res[0]);
	/* Half the clients, then the other half: the growth between the two is
	 * what a connection costs, without the costs paid once (the pools'
	 * first chunks, the listener, libraries warming up). */
	t0 = rxe_now();
	for (i = 0; i < procs; i++) {
		RXE_ASSERT(pipe(c_cmd[i]) == 0 && pipe(c_res[i]) == 0, "pipe");
		cpid[i] = fork();
		if (cpid[i] == 0)
			client(i, per, c_cmd[i][0], c_res[i][1]);
		children[n_children++] = cpid[i];
		if (i == procs / 2 - 1 || i == procs - 1) {
			int k;

			for (k = i == procs - 1 ? procs / 2 : 0; k <= i; k++) {
				double t;

				RXE_ASSERT(get(c_res[k][0], &t, sizeof(t), 300000) == 0, "client %d did not connect and echo",
					   k);
				if (t > slowest)
					slowest = t;
			}
			if (i == procs / 2 - 1)
				half = ask(s_cmd[1], s_res[0]);
		}
	}
	full = ask(s_cmd[1], s_res[0]);
	printf("%d connections from %d processes to one server context: all connected and echoed in %.1f s "
	       "(%.1f ms per connection per client process)\n",
	       nconns, procs, rxe_now() - t0, slowest * 1000 / per);
	{
		long n2 = nconns - (procs / 2) * per;
		long anon = (full.anon_kb - half.anon_kb) / n2, verbs = (full.verbs_kb - half.verbs_kb) / n2;
		struct zc_conn_opts d;

		zc_conn_opts_init(&d);
		rss = (full.rss_kb - half.rss_kb) / n2;
		pin = (full.pin_kb - half.pin_kb) / n2;
		printf("server memory per idle connection (growth from %d to %d connections): %ld KiB resident = %ld KiB "
		       "anonymous (%ld KiB of it pinned receive slots, %ld KiB heap) + %ld KiB of the device's queues "
		       "mapped in (rxe's send queue for send_depth %d)\n",
		       nconns - (int)n2, nconns, rss, anon, pin, anon - pin, verbs, d.send_depth);
		printf("the pools: %llu shared receive slots, %llu send staging slots for %d connections\n",
		       (unsigned long long)full.rx_slots, (unsigned long long)full.tx_slots, nconns);
		RXE_ASSERT(full.conns == nconns, "the server holds %ld connections, not %d", full.conns, nconns);
#ifndef __SANITIZE_ADDRESS__ /* its redzones and quarantine are not the library's */
		/* The goal: 64 KiB in all (each connection pinned 4 MiB before
		 * the shared receive queue, 312 KiB with a 128-deep send queue
		 * and 512 bytes inline). Two 16 KiB slots are its pinned share. */
		RXE_ASSERT(rss <= 64 && pin <= 32, "an idle connection costs %ld KiB resident (goal 64), %ld KiB pinned",
			   rss, pin);
#endif
	}
	/* One connection of all becomes readable: the server finds it without
	 * looking at the others. */
	{
		struct report before = ask(s_cmd[1], s_res[0]), after1;
		char op;

		put(c_cmd[procs - 1][1], "1", 1);
		RXE_ASSERT(get(c_res[procs - 1][0], &op, 1, 60000) == 0, "the single echo did not come back");
		after1 = ask(s_cmd[1], s_res[0]);
		printf("one of %d idle connections echoed a message: the server looked at %llu connections for it\n",
		       nconns, (unsigned long long)(after1.event_checks - before.event_checks));
		RXE_ASSERT(after1.event_checks - before.event_checks <= 8,
			   "the server looked at %llu connections for one message: a sweep",
			   (unsigned long long)(after1.event_checks - before.event_checks));
	}
	for (i = 0; i < procs; i++)
		put(c_cmd[i][1], "g", 1);

	/* Kill three client processes in the middle of their echo loops. */
	for (i = 0; i < KILLED; i++)
		RXE_ASSERT(kill(cpid[i], SIGKILL) == 0, "kill");
	for (i = 0; i < KILLED; i++) {
		RXE_ASSERT(waitpid(cpid[i], &status, 0) == cpid[i] && WIFSIGNALED(status), "killed client");
		children[1 + i] = 0; /* reaped: its pid may be reused */
	}
	/* The others go on: each completes a full verified round started after the kills. */
	for (i = KILLED; i < procs; i++) {
		int round;

		put(c_cmd[i][1], "r", 1);
		RXE_ASSERT(get(c_res[i][0], &round, sizeof(round), 300000) == 0,
			   "surviving client %d stopped echoing after the kills", i);
	}
	/* The server notices the dead connections by itself. */
	for (t0 = rxe_now();;) {
		after = ask(s_cmd[1], s_res[0]);
		if (after.conns == (long)(procs - KILLED) * per)
			break;
		RXE_ASSERT(rxe_now() - t0 < 120, "the server still holds %ld connections, %d expected", after.conns,
			   (procs - KILLED) * per);
		usleep(200000);
	}
	printf("after killing %d client processes: the server dropped their %d connections and serves %ld\n", KILLED,
	       KILLED * per, after.conns);
	for (i = KILLED; i < procs; i++) {
		put(c_cmd[i][1], "s", 1);
		RXE_ASSERT(waitpid(cpid[i], &status, 0) == cpid[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			   "surviving client %d failed", i);
		children[1 + i] = 0;
	}
	for (t0 = rxe_now();;) {
		after = ask(s_cmd[1], s_res[0]);
		if (after.conns == 0)
			break;
		RXE_ASSERT(rxe_now() - t0 < 120, "the server still holds %ld connections after every client closed",
			   after.conns);
		usleep(200000);
	}
	printf("all closed: server fds %ld (before %ld), pinned %ld KiB (before %ld; the registration cache keeps "
	       "%llu bytes of the echo buffer), resident %ld KiB (before %ld)\n",
	       after.fds, base.fds, after.pin_kb, base.pin_kb, (unsigned long long)after.rcache_bytes, after.rss_kb,
	       base.rss_kb);
	RXE_ASSERT(after.fds == base.fds, "the server leaked %ld fds", after.fds - base.fds);
	/* cached registrations pin whole pages: one more at each end at most */
	RXE_ASSERT(after.pin_kb <= base.pin_kb + (long)(after.rcache_bytes / 1024) + 8,
		   "the server still pins %ld KiB more, its registration cache %llu bytes", after.pin_kb - base.pin_kb,
		   (unsigned long long)after.rcache_bytes);
	put(s_cmd[1], "q", 1);
	RXE_ASSERT(waitpid(spid, &status, 0) == spid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "server");
	children[0] = 0;
	printf("ok\n");
	return 0;
}
