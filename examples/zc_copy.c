/*
 * zc_copy - copy one file over zcrdma, the NIC moving the bytes
 *
 *   receiver:  zc_copy -l ADDR[:PORT] [-t SECONDS] [-a SECONDS] [-v] OUTFILE
 *   sender:    zc_copy [-b SRCADDR] [-t SECONDS] [-C CHUNK] [-v] INFILE ADDR[:PORT]
 *
 * The receiver listens on ADDR (an address of an RDMA netdev; PORT defaults
 * to 7472), takes one connection, receives one file into OUTFILE, msyncs and
 * fsyncs it, confirms it to the sender and exits 0. The sender exits 0 once
 * the receiver has confirmed the whole file (byte count and checksum). -b
 * SRCADDR sends from that local address (rxe0 is 192.168.77.1 in the rxe
 * guest); without it the route to the receiver picks the source address and
 * the RDMA device. IPv6 addresses go in brackets when a port follows
 * ([fd77::2]:7472). Any failure: exit status 1 and one line
 * on stderr naming the cause (2: bad usage). On failure the receiver removes
 * OUTFILE unless it existed before. A progress line is shown on stderr when it
 * is a terminal; -v prints "listening" once the receiver listens and a
 * summary line at the end.
 *
 * Every wait is bounded: connecting, each step of the transfer (no chunk
 * finished within -t SECONDS, default 10, is a failure), the receiver's
 * flush (the sender allows -t seconds plus one second per 16 MiB) and the
 * final close. Only the receiver's wait for a sender to connect is unbounded
 * unless -a SECONDS is given. A peer that disconnects or crashes ends the
 * other side with "connection reset".
 *
 * ZERO COPY
 *   Receiver: OUTFILE is ftruncate()d to the announced size and mapped
 *   MAP_SHARED read-write; each chunk's place in the mapping is registered
 *   (zc_mr_reg) and posted with zc_recv_zc(), so the sender's NIC writes
 *   its pages straight into the file's page cache (the library offers
 *   posted buffers of a region to the sender; a chunk sent before its offer
 *   arrived is RDMA-read instead). Then msync + fsync.
 *   This needs a filesystem whose shared mappings can be pinned for writing
 *   (tmpfs always; ext4/xfs on kernels before 6.5); otherwise the
 *   registration fails and so does zc_copy, naming the reason.
 *   Sender: INFILE is mapped and each chunk is registered (zc_mr_reg) and
 *   sent by reference with zc_send_zc(), up to 4 chunks in flight, reaped
 *   with zc_poll(). The sender maps INFILE read-only (MAP_PRIVATE), which
 *   the library registers read-only. KERNEL LIMITATION: before Linux 6.2 the
 *   RDMA core pins every registration with forced write access, which gives
 *   each page of a private mapping a copy at registration (the guest's 6.1
 *   does this); from 6.2 on the pages are pinned in place. MADV_DONTNEED
 *   after each chunk frees such copies again.
 *   Chunks at most the connection's eager size (16 KiB by default: only a
 *   small file's single chunk, or the short last chunk) are copied through
 *   the library's rings.
 *
 * PROTOCOL (version 1; all integers little-endian)
 *   One zcrdma connection in message mode, the receiver listening.
 *   1. sender -> receiver, one 32-byte message HEADER:
 *        u32 magic 0x5950435a ("ZCPY"), u32 version 1,
 *        u64 file size, u64 chunk size (a multiple of 4096, 4 KiB .. 1 GiB),
 *        u64 reserved 0
 *   2. sender -> receiver, ceil(size / chunk) messages CHUNK 0..n-1: chunk i
 *      holds bytes [i * chunk, min(size, (i + 1) * chunk)) of the file. An
 *      empty file has no chunks.
 *   3. receiver -> sender, after msync + fsync, one message CONFIRM of 32
 *      bytes plus an optional reason text (at most 256 bytes, no NUL):
 *        u32 magic 0x4b50435a ("ZCPK"), u32 status (0: file written; else an
 *        errno value, the text saying why the receiver failed),
 *        u64 bytes written, u64 checksum, u64 reserved 0
 *      A receiver that fails sends CONFIRM with a non-zero status as soon as
 *      it can, even while chunks are still coming, then closes.
 *   4. The sender checks status, byte count and checksum, then closes; the
 *      receiver waits for that end of stream (bounded) and closes.
 *   Checksum: chunk i (bytes p[0..n)) hashes to h_i = H(i, p, n):
 *        h = 0x9e3779b97f4a7c15 ^ (i * 0xff51afd7ed558ccd) ^ n
 *        for each 8-byte little-endian word w (the last one zero-padded):
 *            h = rotl64((h ^ w) * 0x9e3779b97f4a7c15, 29)
 *   and the file's checksum folds them in order, starting from
 *   0xcbf29ce484222325: c = (c ^ h_i) * 0x100000001b3 (mod 2^64).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zcrdma.h>

#include "zc_example.h"

#define DEFAULT_PORT 7472
#define MiB (1024ull * 1024)
#define HDR_MAGIC 0x5950435au
#define ACK_MAGIC 0x4b50435au
#define PROTO_VERSION 1
#define HDR_LEN 32
#define ACK_LEN 32
#define ACK_TEXT_MAX 256
#define DEFAULT_CHUNK (8 * MiB)
#define MIN_CHUNK 4096ull
#define MAX_CHUNK (1024 * MiB)
#define DEPTH 4 /* chunks in flight per side */

const char *const zc_ex_prog = "zc_copy";

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void usage(void)
{
	fprintf(stderr,
		"usage: %s -l ADDR[:PORT] [-t SECONDS] [-a SECONDS] [-v] OUTFILE          (receiver)\n"
		"       %s [-b SRCADDR] [-t SECONDS] [-C CHUNK] [-v] INFILE ADDR[:PORT]     (sender)\n"
		"  -l ADDR[:PORT]  receive one file on ADDR, an address of an RDMA netdev (port %d by default)\n"
		"  -b SRCADDR      the sender's local RDMA address (default: the route's)\n"
		"  -t SECONDS      bound on connecting and on every step of the transfer (default 10)\n"
		"  -a SECONDS      receiver: give up if no sender connects in time (default: wait forever)\n"
		"  -C CHUNK        sender: chunk size, a multiple of 4K (default 8M)\n"
		"  -v              say when listening (receiver); print a summary line at the end\n",
		zc_ex_prog, zc_ex_prog, DEFAULT_PORT);
	exit(2);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t chunk_hash(uint64_t idx, const uint8_t *p, size_t n)
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t h = k ^ (idx * 0xff51afd7ed558ccdull) ^ (uint64_t)n, w;

	for (; n >= 8; p += 8, n -= 8) {
		h = (h ^ zc_ex_get64(p)) * k;
		h = h << 29 | h >> 35;
	}
	if (n) {
		uint8_t tail[8] = {0};

		memcpy(tail, p, n);
		w = zc_ex_get64(tail);
		h = (h ^ w) * k;
		h = h << 29 | h >> 35;
	}
	return h;
}

static uint64_t fold_hashes(const uint64_t *h, uint64_t n)
{
	uint64_t c = 0xcbf29ce484222325ull, i;

	for (i = 0; i < n; i++)
		c = (c ^ h[i]) * 0x100000001b3ull;
	return c;
}

/* One transfer, either side. */
struct slot {
	struct zc_mr *mr;
	uint64_t idx;
	int busy;
};

struct xfer {
	int sender;
	int timeout_ms;
	int verbose, tty;
	struct zc_ctx *ctx;
	struct zc_listener *l;
	struct zc_conn *conn;
	int fd;
	const char *path;
	int created;         /* receiver: OUTFILE did not exist before */
	uint8_t *map;
	uint64_t size, chunk, nchunks;
	uint64_t *hashes;
	uint64_t next, done, bytes_done;
	unsigned inflight;
	struct slot slots[DEPTH];
	struct zc_mr *pending; /* registered for chunk `next`, not yet submitted */
	int64_t t_start, t_progress, t_shown;
	/* Sender: a confirmation that overtook the completions of the last
	 * chunks (RDMA orders neither before the other), checked once they
	 * are reaped. */
	uint8_t early[ACK_LEN + ACK_TEXT_MAX];
	ssize_t early_len;
};

static uint64_t chunk_len(const struct xfer *x, uint64_t idx)
{
	uint64_t off = idx * x->chunk;

	return x->size - off < x->chunk ? x->size - off : x->chunk;
}

static void progress(struct xfer *x, int final)
{
	int64_t t = now_ms();
	double el, mib;

	if (!x->tty || (!final && t - x->t_shown < 250))
		return;
	x->t_shown = t;
	el = (double)(t - x->t_start) / 1000.0;
	mib = (double)x->bytes_done / (double)MiB;
	fprintf(stderr, "\r%s: %s %.1f of %.1f MiB (%3.0f%%) %.1f MiB/s   %s", zc_ex_prog, x->sender ? "sent" : "received",
		mib, (double)x->size / (double)MiB, x->size ? 100.0 * (double)x->bytes_done / (double)x->size : 100.0,
		el > 0 ? mib / el : 0.0, final ? "\n" : "");
}

/* Releases everything; after a failure the receiver also removes its
 * partial output file. */
static void cleanup(struct xfer *x, int failed)
{
	struct zc_completion comp[DEPTH];
	unsigned i;

	if (failed && !x->sender && x->created)
		unlink(x->path);
	if (x->conn)
		zc_abort(&x->conn);
	if (x->ctx)
		while (zc_poll(x->ctx, comp, DEPTH, 0) > 0)
			;
	for (i = 0; i < DEPTH; i++)
		if (x->slots[i].mr)
			zc_mr_dereg(&x->slots[i].mr);
	if (x->pending)
		zc_mr_dereg(&x->pending);
	if (x->map)
		munmap(x->map, x->size);
	x->map = NULL;
	if (x->l)
		zc_listener_free(&x->l);
	if (x->ctx)
		zc_ctx_free(&x->ctx);
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	free(x->hashes);
	x->hashes = NULL;
}

/* Prints the one-line reason and returns 1 (the exit status). */
static int __attribute__((format(printf, 2, 3))) fail(struct xfer *x, const char *fmt, ...)
{
	va_list ap;

	if (x->tty && x->t_shown)
		fputc('\n', stderr);
	va_start(ap, fmt);
	zc_ex_vwarn(fmt, ap);
	va_end(ap);
	cleanup(x, 1);
	return 1;
}

/* "after N of M bytes" context for transfer errors. */
static const char *where(const struct xfer *x)
{
	static char buf[96];

	snprintf(buf, sizeof(buf), "after %" PRIu64 " of %" PRIu64 " bytes", x->bytes_done, x->size);
	return buf;
}

/*
 * Sleeps up to 10 ms while making progress. Called while no zero-copy
 * operation is outstanding (zc_poll() has nothing to hand back), or while
 * failing, when what it reaps no longer matters.
 */
static void idle_wait(struct xfer *x)
{
	struct zc_completion comp;

	zc_poll(x->ctx, &comp, 1, 10);
}

/* Sends one small message; waits (bounded) for a credit. 0 or an error code. */
static int send_small(struct xfer *x, const void *buf, size_t len, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	ssize_t n;

	while ((n = zc_msg_send(x->conn, buf, len, ZC_DONTWAIT)) == -EAGAIN) {
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		idle_wait(x);
	}
	return n < 0 ? (int)n : 0;
}

/* Receives one message of at most cap bytes within timeout_ms. */
static ssize_t recv_small(struct xfer *x, void *buf, size_t cap, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	ssize_t n;

	while ((n = zc_msg_recv(x->conn, buf, cap, ZC_DONTWAIT)) == -EAGAIN) {
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		idle_wait(x);
	}
	return n;
}

static struct slot *slot_of(struct xfer *x, uint64_t idx)
{
	unsigned i;

	for (i = 0; i < DEPTH; i++)
		if (x->slots[i].busy && x->slots[i].idx == idx)
			return &x->slots[i];
	return NULL;
}

static struct slot *free_slot(struct xfer *x)
{
	unsigned i;

	for (i = 0; i < DEPTH; i++)
		if (!x->slots[i].busy)
			return &x->slots[i];
	return NULL;
}

static void send_failure(struct xfer *x, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int peer_message(struct xfer *x, int quiet);

/*
 * Registers the next chunk and submits it (zc_send_zc on the sender,
 * zc_recv_zc on the receiver) while fewer than DEPTH are in flight. A chunk
 * that gets -EAGAIN (no credit or queue room yet) keeps its region in
 * x->pending for the retry. Returns 0 or an exit status.
 */
static int submit(struct xfer *x)
{
	while (x->next < x->nchunks && x->inflight < DEPTH) {
		struct slot *s = free_slot(x);
		uint64_t idx = x->next, len = chunk_len(x, idx);
		uint8_t *p = x->map + idx * x->chunk;
		int rc;

		if (!x->pending) {
			rc = zc_mr_reg(x->ctx, p, len, 0, &x->pending);
			if (rc) {
				char reason[768];

				snprintf(reason, sizeof(reason), "%s", zc_ex_why(rc));
				if (!x->sender)
					send_failure(x, EFAULT, "cannot register its mapping of %s: %s", x->path,
						     reason);
				return fail(x, "cannot register %" PRIu64 " bytes of the mapping of %s: %s", len,
					    x->path, reason);
			}
		}
		rc = x->sender ? zc_send_zc(x->conn, p, len, x->pending, idx)
			       : zc_recv_zc(x->conn, p, len, x->pending, idx);
		if (rc == -EAGAIN)
			return 0;
		if (rc)
			return fail(x, "%s chunk %" PRIu64 " %s: %s", x->sender ? "sending" : "posting", idx,
				    where(x), zc_ex_why(rc));
		s->mr = x->pending;
		x->pending = NULL;
		s->idx = idx;
		s->busy = 1;
		x->inflight++;
		x->next++;
	}
	return 0;
}

/* Handles finished chunks. Returns 0 or an exit status. */
static int reap(struct xfer *x, int timeout_ms)
{
	struct zc_completion comp[DEPTH];
	int n = zc_poll(x->ctx, comp, DEPTH, timeout_ms), i;

	if (n < 0)
		return fail(x, "zc_poll: %s", zc_ex_why(n));
	for (i = 0; i < n; i++) {
		uint64_t idx = comp[i].token, len;
		struct slot *s = slot_of(x, idx);
		int op = x->sender ? ZC_OP_SEND : ZC_OP_RECV;
		uint8_t *p;

		if (!s || comp[i].op != op)
			return fail(x, "internal error: unexpected completion op %d token %" PRIu64, comp[i].op, idx);
		if (comp[i].status && x->sender && peer_message(x, 1))
			return 1; /* the receiver said why */
		if (comp[i].status)
			return fail(x, "chunk %" PRIu64 " failed %s: %s", idx, where(x), zc_ex_why(comp[i].status));
		len = chunk_len(x, idx);
		if (comp[i].len != len)
			return fail(x, "chunk %" PRIu64 " moved %zu bytes, expected %" PRIu64, idx, comp[i].len, len);
		p = x->map + idx * x->chunk;
		x->hashes[idx] = chunk_hash(idx, p, len);
		zc_mr_dereg(&s->mr);
		/* Sender: drop the private copies made at registration. */
		if (x->sender)
			madvise(p, len, MADV_DONTNEED);
		s->busy = 0;
		x->inflight--;
		x->done++;
		x->bytes_done += len;
		x->t_progress = now_ms();
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Receiver                                                            */

/* Best effort: tells the sender why this receiver gives up. */
static void send_failure(struct xfer *x, int err, const char *fmt, ...)
{
	uint8_t msg[ACK_LEN + ACK_TEXT_MAX];
	va_list ap;
	int n;

	if (!x->conn)
		return;
	memset(msg, 0, ACK_LEN);
	zc_ex_put32(msg, ACK_MAGIC);
	zc_ex_put32(msg + 4, (uint32_t)(err ? err : EIO));
	zc_ex_put64(msg + 8, x->bytes_done);
	va_start(ap, fmt);
	n = vsnprintf((char *)msg + ACK_LEN, ACK_TEXT_MAX, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n >= ACK_TEXT_MAX)
		n = ACK_TEXT_MAX - 1;
	if (send_small(x, msg, ACK_LEN + (size_t)n, 1000) == 0)
		zc_close(&x->conn); /* delivers it, then CLOSE; the sender aborts */
}

static int receiver(struct xfer *x, const char *listen_arg, int accept_ms)
{
	char host[256];
	uint16_t port;
	uint8_t hdr[HDR_LEN], ack[ACK_LEN];
	struct zc_conn_opts opts;
	struct stat st;
	ssize_t n;
	int rc, e;

	if (zc_ex_parse_hostport(listen_arg, host, sizeof(host), &port, DEFAULT_PORT)) {
		zc_ex_warn("bad listen address '%s' (ADDR[:PORT])", listen_arg);
		return 2;
	}
	/* Open first, so an unwritable OUTFILE fails before any network setup;
	 * its content stays until a sender announces the size. */
	x->created = access(x->path, F_OK) != 0;
	x->fd = open(x->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (x->fd < 0)
		return fail(x, "cannot open %s for writing: %s", x->path, strerror(errno));
	if (fstat(x->fd, &st) || !S_ISREG(st.st_mode))
		return fail(x, "%s is not a regular file", x->path);
	rc = zc_ctx_new(host, NULL, &x->ctx);
	if (rc)
		return fail(x, "%s: %s", host, zc_ex_why(rc));
	zc_conn_opts_init(&opts);
	opts.timeout_ms = x->timeout_ms;
	rc = zc_listen(x->ctx, port, &opts, &x->l);
	if (rc)
		return fail(x, "listen on %s port %u: %s", host, port, zc_ex_why(rc));
	if (x->verbose)
		zc_ex_warn("listening on %s port %u", host, zc_listener_port(x->l));
	rc = zc_accept(x->l, &x->conn, accept_ms);
	if (rc)
		return fail(x, "accept on %s port %u: %s", host, port, zc_ex_why(rc));
	zc_listener_free(&x->l);

	n = recv_small(x, hdr, sizeof(hdr), x->timeout_ms);
	if (n == -EMSGSIZE || (n >= 0 && n != HDR_LEN))
		return fail(x, "the peer is not a zc_copy sender (its first message is not a %d-byte header)", HDR_LEN);
	if (n < 0)
		return fail(x, "waiting for the sender's header: %s", zc_ex_why((int)n));
	if (zc_ex_get32(hdr) != HDR_MAGIC) {
		send_failure(x, EPROTO, "bad header magic");
		return fail(x, "the peer is not a zc_copy sender (bad header magic 0x%08x)", zc_ex_get32(hdr));
	}
	if (zc_ex_get32(hdr + 4) != PROTO_VERSION) {
		send_failure(x, EPROTO, "protocol version %u not supported (receiver speaks %d)", zc_ex_get32(hdr + 4),
			     PROTO_VERSION);
		return fail(x, "the sender speaks zc_copy protocol version %u, this receiver %d", zc_ex_get32(hdr + 4),
			    PROTO_VERSION);
	}
	x->size = zc_ex_get64(hdr + 8);
	x->chunk = zc_ex_get64(hdr + 16);
	if (x->chunk < MIN_CHUNK || x->chunk > MAX_CHUNK || x->chunk % MIN_CHUNK || x->size > (uint64_t)INT64_MAX ||
	    x->size > SIZE_MAX) {
		send_failure(x, EPROTO, "bad header: size %" PRIu64 ", chunk %" PRIu64, x->size, x->chunk);
		return fail(x, "bad header from the sender: size %" PRIu64 ", chunk %" PRIu64, x->size, x->chunk);
	}
	x->nchunks = (x->size + x->chunk - 1) / x->chunk;
	x->hashes = calloc(x->nchunks ? x->nchunks : 1, sizeof(*x->hashes));
	if (!x->hashes) {
		send_failure(x, ENOMEM, "out of memory");
		return fail(x, "out of memory");
	}
	if (ftruncate(x->fd, (off_t)x->size)) {
		e = errno;
		send_failure(x, e, "ftruncate %s to %" PRIu64 " bytes: %s", x->path, x->size, strerror(e));
		return fail(x, "ftruncate %s to %" PRIu64 " bytes: %s", x->path, x->size, strerror(e));
	}
	/* Reserve the blocks now: a full filesystem is a clear ENOSPC here
	 * rather than a failed registration (or SIGBUS) later. */
	if (x->size && fallocate(x->fd, 0, 0, (off_t)x->size) && errno != EOPNOTSUPP) {
		e = errno;
		send_failure(x, e, "allocating %" PRIu64 " bytes for %s: %s", x->size, x->path, strerror(e));
		return fail(x, "allocating %" PRIu64 " bytes for %s: %s", x->size, x->path, strerror(e));
	}
	if (x->size) {
		x->map = mmap(NULL, x->size, PROT_READ | PROT_WRITE, MAP_SHARED, x->fd, 0);
		if (x->map == MAP_FAILED) {
			e = errno;
			x->map = NULL;
			send_failure(x, e, "mmap %s: %s", x->path, strerror(e));
			return fail(x, "mmap %s (%" PRIu64 " bytes): %s", x->path, x->size, strerror(e));
		}
	}

	x->t_start = x->t_progress = now_ms();
	while (x->done < x->nchunks) {
		int64_t idle;

		if ((rc = submit(x)) || (rc = reap(x, 100)))
			return rc;
		progress(x, 0);
		idle = now_ms() - x->t_progress;
		if (idle > x->timeout_ms)
			return fail(x, "no data from the sender for %.1f s %s", (double)idle / 1000.0, where(x));
	}
	if (x->size && msync(x->map, x->size, MS_SYNC)) {
		e = errno;
		send_failure(x, e, "msync %s: %s", x->path, strerror(e));
		return fail(x, "msync %s: %s", x->path, strerror(e));
	}
	if (fsync(x->fd)) {
		e = errno;
		send_failure(x, e, "fsync %s: %s", x->path, strerror(e));
		return fail(x, "fsync %s: %s", x->path, strerror(e));
	}
	progress(x, 1);

	memset(ack, 0, sizeof(ack));
	zc_ex_put32(ack, ACK_MAGIC);
	zc_ex_put32(ack + 4, 0);
	zc_ex_put64(ack + 8, x->bytes_done);
	zc_ex_put64(ack + 16, fold_hashes(x->hashes, x->nchunks));
	rc = send_small(x, ack, sizeof(ack), x->timeout_ms);
	if (rc)
		return fail(x, "sending the confirmation: %s", zc_ex_why(rc));
	/* The file is complete and on disk. The sender closes first; its end of
	 * stream tells that it got the confirmation. */
	n = recv_small(x, ack, sizeof(ack), x->timeout_ms);
	if (n != -EPIPE) {
		if (n >= 0 || n == -EMSGSIZE)
			return fail(x, "the sender sent an unexpected message after the file");
		return fail(x, "the file is written, but the sender did not acknowledge the confirmation: %s",
			    zc_ex_why((int)n));
	}
	rc = zc_close(&x->conn);
	if (rc)
		return fail(x, "close: %s", zc_ex_why(rc));
	if (x->verbose)
		zc_ex_warn("received %" PRIu64 " bytes into %s in %.2f s, checksum %016" PRIx64 "",
			x->size, x->path, (double)(now_ms() - x->t_start) / 1000.0, fold_hashes(x->hashes, x->nchunks));
	cleanup(x, 0);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Sender                                                              */

/* Handles a CONFIRM that arrives; returns 0 if it confirms the file. */
static int check_confirm(struct xfer *x, const uint8_t *msg, ssize_t n)
{
	uint64_t mine = fold_hashes(x->hashes, x->nchunks);
	uint32_t status;

	if (n < ACK_LEN || zc_ex_get32(msg) != ACK_MAGIC)
		return fail(x, "the receiver answered something that is not a zc_copy confirmation (%zd bytes)", n);
	status = zc_ex_get32(msg + 4);
	if (status) {
		int tl = (int)(n - ACK_LEN);

		if (tl > 0)
			return fail(x, "the receiver failed %s: %.*s", where(x), tl, (const char *)msg + ACK_LEN);
		return fail(x, "the receiver failed %s: %s", where(x), strerror((int)status));
	}
	if (x->next < x->nchunks)
		return fail(x, "the receiver confirmed before the file was sent %s", where(x));
	if (x->done < x->nchunks) {
		/* Every chunk was delivered, some completions are not reaped yet. */
		memcpy(x->early, msg, (size_t)n);
		x->early_len = n;
		return 0;
	}
	if (zc_ex_get64(msg + 8) != x->size)
		return fail(x, "the receiver wrote %" PRIu64 " bytes, the file has %" PRIu64, zc_ex_get64(msg + 8), x->size);
	if (zc_ex_get64(msg + 16) != mine)
		return fail(x, "checksum mismatch: the receiver has %016" PRIx64 ", the file %016" PRIx64,
			    zc_ex_get64(msg + 16), mine);
	return 0;
}

/*
 * While chunks are in flight the receiver speaks only to say why it failed.
 * Reads such a message if one arrived: returns 0 if none did, else the exit
 * status. With quiet, a connection error is left to the caller to report.
 */
static int peer_message(struct xfer *x, int quiet)
{
	uint8_t msg[ACK_LEN + ACK_TEXT_MAX];
	ssize_t n;

	if (x->early_len)
		return 0; /* the confirmation came: nothing may follow it */
	n = zc_msg_recv(x->conn, msg, sizeof(msg), ZC_DONTWAIT);
	if (n >= 0)
		return check_confirm(x, msg, n);
	if (n == -EAGAIN || quiet)
		return 0;
	if (n == -EPIPE)
		return fail(x, "the receiver closed the connection %s", where(x));
	if (n == -EMSGSIZE)
		return fail(x, "the receiver sent an oversized message %s", where(x));
	return fail(x, "connection lost %s: %s", where(x), zc_ex_why((int)n));
}

static int sender(struct xfer *x, const char *src, const char *dst_arg)
{
	char host[256];
	uint16_t port;
	uint8_t hdr[HDR_LEN], msg[ACK_LEN + ACK_TEXT_MAX];
	struct zc_conn_opts opts;
	struct stat st;
	int64_t deadline;
	ssize_t n;
	int rc;

	if (zc_ex_parse_hostport(dst_arg, host, sizeof(host), &port, DEFAULT_PORT)) {
		zc_ex_warn("bad receiver address '%s' (ADDR[:PORT])", dst_arg);
		return 2;
	}
	x->fd = open(x->path, O_RDONLY | O_CLOEXEC);
	if (x->fd < 0)
		return fail(x, "cannot open %s: %s", x->path, strerror(errno));
	if (fstat(x->fd, &st))
		return fail(x, "stat %s: %s", x->path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(x, "%s is not a regular file", x->path);
	x->size = (uint64_t)st.st_size;
	x->nchunks = (x->size + x->chunk - 1) / x->chunk;
	x->hashes = calloc(x->nchunks ? x->nchunks : 1, sizeof(*x->hashes));
	if (!x->hashes)
		return fail(x, "out of memory");
	if (x->size) {
		/* Read-only and private: see KERNEL LIMITATION above. */
		x->map = mmap(NULL, x->size, PROT_READ, MAP_PRIVATE, x->fd, 0);
		if (x->map == MAP_FAILED) {
			x->map = NULL;
			return fail(x, "mmap %s: %s", x->path, strerror(errno));
		}
	}
	rc = zc_ctx_new(src, NULL, &x->ctx);
	if (rc)
		return fail(x, "%s: %s", src ? src : "zc_ctx_new", zc_ex_why(rc));
	zc_conn_opts_init(&opts);
	opts.timeout_ms = x->timeout_ms;
	rc = zc_connect(x->ctx, host, port, &opts, &x->conn);
	if (rc)
		return fail(x, "connect to %s port %u: %s", host, port, zc_ex_why(rc));

	memset(hdr, 0, sizeof(hdr));
	zc_ex_put32(hdr, HDR_MAGIC);
	zc_ex_put32(hdr + 4, PROTO_VERSION);
	zc_ex_put64(hdr + 8, x->size);
	zc_ex_put64(hdr + 16, x->chunk);
	rc = send_small(x, hdr, sizeof(hdr), x->timeout_ms);
	if (rc)
		return fail(x, "sending the header: %s", zc_ex_why(rc));

	x->t_start = x->t_progress = now_ms();
	while (x->done < x->nchunks) {
		int64_t idle;

		if ((rc = submit(x)) || (rc = peer_message(x, 0)) || (rc = reap(x, 100)))
			return rc;
		progress(x, 0);
		idle = now_ms() - x->t_progress;
		if (idle > x->timeout_ms)
			return fail(x, "the receiver took no data for %.1f s %s", (double)idle / 1000.0, where(x));
	}
	progress(x, 1);
	if (x->early_len) {
		memcpy(msg, x->early, (size_t)x->early_len);
		n = x->early_len;
	} else {
		/* The receiver flushes the file before confirming: allow for it. */
		deadline = (int64_t)x->timeout_ms + (int64_t)(x->size / (16 * MiB)) * 1000;
		n = recv_small(x, msg, sizeof(msg), deadline > INT32_MAX ? INT32_MAX : (int)deadline);
	}
	if (n == -EPIPE)
		return fail(x, "the receiver closed without confirming the file");
	if (n == -EMSGSIZE)
		return fail(x, "the receiver sent an oversized message instead of the confirmation");
	if (n < 0)
		return fail(x, "waiting for the receiver's confirmation: %s", zc_ex_why((int)n));
	if (check_confirm(x, msg, n))
		return 1;
	rc = zc_close(&x->conn);
	if (rc)
		return fail(x, "close: %s", zc_ex_why(rc));
	if (x->verbose) {
		double s = (double)(now_ms() - x->t_start) / 1000.0;

		zc_ex_warn("sent %" PRIu64 " bytes in %.2f s (%.1f MiB/s), confirmed, checksum %016" PRIx64 "",
			x->size, s, s > 0 ? (double)x->size / (double)MiB / s : 0.0,
			fold_hashes(x->hashes, x->nchunks));
	}
	cleanup(x, 0);
	return 0;
}

int main(int argc, char **argv)
{
	struct xfer x = {.fd = -1, .timeout_ms = 10000, .chunk = DEFAULT_CHUNK};
	const char *listen_arg = NULL, *src = NULL;
	long long v, accept_s = -1;
	int opt;
	char *end;

	while ((opt = getopt(argc, argv, "l:b:t:a:C:vh")) != -1) {
		switch (opt) {
		case 'l':
			listen_arg = optarg;
			break;
		case 'b':
			src = optarg;
			break;
		case 't':
		case 'a':
			errno = 0;
			v = strtoll(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > 86400) {
				zc_ex_warn("-%c needs seconds (1..86400), got '%s'", opt, optarg);
				usage();
			}
			if (opt == 't')
				x.timeout_ms = (int)(v * 1000);
			else
				accept_s = v;
			break;
		case 'C':
			v = zc_ex_parse_size(optarg);
			if (v < (long long)MIN_CHUNK || v > (long long)MAX_CHUNK || v % (long long)MIN_CHUNK) {
				zc_ex_warn("-C needs a multiple of 4K between 4K and 1G, got '%s'", optarg);
				usage();
			}
			x.chunk = (uint64_t)v;
			break;
		case 'v':
			x.verbose = 1;
			break;
		default:
			usage();
		}
	}
	x.tty = isatty(STDERR_FILENO);
	if (listen_arg) {
		if (optind != argc - 1 || src) {
			zc_ex_warn("the receiver takes -l ADDR[:PORT] and OUTFILE (no -b)");
			usage();
		}
		x.path = argv[optind];
		return receiver(&x, listen_arg, accept_s < 0 ? -1 : (int)(accept_s * 1000));
	}
	if (optind != argc - 2) {
		zc_ex_warn("give -l ADDR[:PORT] OUTFILE (receiver) or INFILE ADDR[:PORT] (sender)");
		usage();
	}
	x.sender = 1;
	x.path = argv[optind];
	return sender(&x, src, argv[optind + 1]);
}
