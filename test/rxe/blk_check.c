/*
 * blk_check - checks an NVMe-oF RDMA target through the host library (examples/blk/blk_initiator.h)
 *
 *   blk_check io SRCADDR ADDR:PORT NQN FIRST_LBA BLOCKS SEED [verify|loop|icd]
 *       two I/O queues of QD 4: write BLOCKS blocks from FIRST_LBA with a
 *       pattern of SEED in mixed command sizes (1 block up to the target's
 *       largest, odd counts and odd offsets, in-capsule and keyed), read
 *       them back in other sizes and check every byte; Flush; Write Zeroes
 *       over the last quarter and read zeros back. With "verify": only read
 *       and check what such a run of another host left (the pattern, zeros
 *       in the last quarter). With "loop": write, read back
 *       and check over and over, printing "ok: pass N" after each, until
 *       killed (a test kills it mid-I/O). With "icd": every Write small
 *       enough to travel in the capsule (the target never RDMA-READs).
 *   blk_check errors SRCADDR ADDR:PORT NQN [lenient]
 *       commands the target must refuse with an NVMe status while the
 *       controller goes on: a Read and a Write Zeroes past the end (LBA Out
 *       of Range; with "lenient", any error), a Read beyond the largest
 *       transfer; then a checked
 *       write and read back.
 *   blk_check readonly SRCADDR ADDR:PORT NQN
 *       against a write-protected namespace: Write and Write Zeroes refused
 *       (Namespace is Write Protected), Read works.
 *
 * NQN "-" discovers the subsystem. Prints one "ok:" line per check; exits
 * 0 when all passed, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zcrdma.h>

#include "blk_initiator.h"
#include "zc_example.h"

#define QD 4
#define QUEUES 2
#define SLOTS (QD * QUEUES)
#define MAX_CHUNK (256u << 10) /* bytes per command at most */
#define TIMEOUT_MS 30000

static struct zc_ctx *ctx;
static struct blk_init *bi;
static const struct blk_geom *g;
static struct zc_mr *mr;
static uint8_t *buf; /* SLOTS x MAX_CHUNK */
static uint32_t bs, max_cmd; /* block size, blocks per command at most */
static uint32_t max_write = UINT32_MAX; /* blocks per Write at most ("icd") */
static int failures;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	failures++;
}

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* The byte at namespace offset off, for seed (0: zeros). */
static uint8_t pat(uint32_t seed, uint64_t off)
{
	uint64_t z;

	if (!seed)
		return 0;
	z = (off >> 3) * 0x9e3779b97f4a7c15ull ^ (uint64_t)seed << 32;
	z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ull;
	return (uint8_t)(z >> (8 * (off & 7)));
}

static uint8_t *slot_buf(int s)
{
	return buf + (size_t)s * MAX_CHUNK;
}

/* One command per chunk of [lba, lba + n); the chunks' sizes cycle through sizes[]. */
struct job {
	uint8_t opcode;
	uint32_t seed;      /* Write: the pattern written; Read: the pattern expected */
	uint64_t lba, end;  /* next block to cover, the end */
	const uint32_t *sizes;
	int nsizes, next;
	uint64_t cmds;
};

struct inflight {
	int busy;
	uint64_t lba;
	uint32_t n;
};

static struct inflight slots[SLOTS];

/* Runs the job QD commands per queue at a time; every Read is checked byte for byte. */
static void run(struct job *j)
{
	struct blk_cpl c[SLOTS];
	int s, i, n, busy = 0;

	while (j->lba < j->end || busy) {
		for (s = 0; s < SLOTS && j->lba < j->end; s++) {
			uint32_t k = j->sizes[j->next % j->nsizes];
			int rc;

			if (slots[s].busy)
				continue;
			if (k > max_cmd)
				k = max_cmd;
			if (j->opcode == NVMF_IO_WRITE && k > max_write)
				k = max_write;
			if (k > j->end - j->lba)
				k = (uint32_t)(j->end - j->lba);
			if (j->opcode == NVMF_IO_WRITE)
				for (i = 0; i < (int)(k * bs); i++)
					slot_buf(s)[i] = pat(j->seed, j->lba * bs + (uint64_t)i);
			else
				memset(slot_buf(s), 0xa5, (size_t)k * bs);
			rc = blk_init_submit(bi, j->opcode, j->lba, k, slot_buf(s), mr, (size_t)s * MAX_CHUNK,
					     (uint64_t)s);
			if (rc == -EBUSY)
				break;
			if (rc)
				fatal("submit: %s", blk_init_last_error());
			slots[s] = (struct inflight){.busy = 1, .lba = j->lba, .n = k};
			j->lba += k;
			j->next++;
			j->cmds++;
			busy++;
		}
		n = blk_init_poll(bi, c, SLOTS, TIMEOUT_MS);
		if (n < 0)
			fatal("%s", blk_init_last_error());
		if (n == 0)
			fatal("no completion within %d ms", TIMEOUT_MS);
		for (i = 0; i < n; i++) {
			struct inflight *f = &slots[c[i].user];

			if (c[i].status)
				fatal("opcode %#x of LBA %llu+%u: %s (status %#x)", j->opcode, (unsigned long long)f->lba,
				      f->n, nvmf_status_str(c[i].status), c[i].status);
			if (j->opcode == NVMF_IO_READ) {
				const uint8_t *p = slot_buf((int)c[i].user);
				uint64_t b;

				for (b = 0; b < (uint64_t)f->n * bs; b++)
					if (p[b] != pat(j->seed, f->lba * bs + b))
						fatal("LBA %llu+%u: byte %llu is %#x, expected %#x",
						      (unsigned long long)f->lba, f->n, (unsigned long long)b, p[b],
						      pat(j->seed, f->lba * bs + b));
			}
			f->busy = 0;
			busy--;
		}
	}
}

static const uint32_t wsizes[] = {1, 3, 8, 17, 64, 5, 128, 255, 2, 512, 33};
static const uint32_t rsizes[] = {7, 2, 33, 100, 1, 16, 250, 9, 511, 4};

static void job(uint8_t opcode, uint32_t seed, uint64_t lba, uint64_t n, const uint32_t *sizes, int nsizes)
{
	struct job j = {.opcode = opcode, .seed = seed, .lba = lba, .end = lba + n, .sizes = sizes, .nsizes = nsizes};

	run(&j);
	printf("ok: %s of %llu blocks from LBA %llu in %llu commands%s\n",
	       opcode == NVMF_IO_WRITE ? "write" : "read, checked byte for byte,", (unsigned long long)n,
	       (unsigned long long)lba, (unsigned long long)j.cmds, seed ? "" : " (zeros)");
}

/* One command alone; returns its status. */
static uint16_t one(uint8_t opcode, uint64_t lba, uint32_t n)
{
	struct blk_cpl c;
	int rc = blk_init_submit(bi, opcode, lba, n, slot_buf(0), mr, 0, 77);

	if (rc)
		fatal("submit: %s", blk_init_last_error());
	rc = blk_init_poll(bi, &c, 1, TIMEOUT_MS);
	if (rc != 1)
		fatal("no completion: %s", rc < 0 ? blk_init_last_error() : "timeout");
	if (c.user != 77)
		fatal("a completion for %llu, expected 77", (unsigned long long)c.user);
	return c.status;
}

/* The command must end with status sc (SCT and SC compared). */
static void expect(uint8_t opcode, uint64_t lba, uint32_t n, uint16_t sc, const char *what)
{
	uint16_t st = one(opcode, lba, n);

	if ((st & NVMF_SC_MASK) != sc)
		fail("%s: status %#x (%s), expected %#x (%s)", what, st, nvmf_status_str(st), sc, nvmf_status_str(sc));
	else
		printf("ok: %s -> %s\n", what, nvmf_status_str(st));
}

/*
 * Past the end: LBA Out of Range, the specification's answer. With
 * "lenient" any error: Linux's nvmet leaves the check to its backend, and
 * the file backend says Capacity Exceeded, the block device one Internal
 * Error.
 */
static int lenient;

static void past_end(uint8_t opcode, uint64_t lba, uint32_t n, const char *what)
{
	uint16_t st;

	if (!lenient) {
		expect(opcode, lba, n, NVMF_SC_LBA_RANGE, what);
		return;
	}
	st = one(opcode, lba, n);
	if (!st)
		fail("%s succeeded", what);
	else
		printf("ok: %s -> %s (status %#x)\n", what, nvmf_status_str(st), st);
}

/* Blocks at the end of an io region that Write Zeroes clears: a quarter, if the target has the command. */
static uint64_t zeroed(uint64_t n)
{
	return g->oncs & 0x8 ? n / 4 : 0;
}

static void flush_and_zero(uint64_t lba, uint64_t n, uint64_t z)
{
	uint64_t zl = lba + n - z;
	uint16_t st = one(NVMF_IO_FLUSH, 0, 0);

	if (st)
		fatal("Flush: %s (status %#x)", nvmf_status_str(st), st);
	printf("ok: Flush\n");
	if (!z)
		return;
	while (zl < lba + n) {
		uint32_t k = lba + n - zl > 65536 ? 65536 : (uint32_t)(lba + n - zl);

		st = one(NVMF_IO_WRITE_ZEROES, zl, k);
		if (st)
			fatal("Write Zeroes of LBA %llu+%u: %s (status %#x)", (unsigned long long)zl, k,
			      nvmf_status_str(st), st);
		zl += k;
	}
	job(NVMF_IO_READ, 0, lba + n - z, z, rsizes, 8);
}

int main(int argc, char **argv)
{
	struct blk_init_opts o;
	char host[256];
	uint16_t port;
	int rc, io, loop = 0, verify = 0, icd_only = 0;
	const char *mode;

	if (argc < 5)
		goto usage;
	mode = argv[1];
	io = !strcmp(mode, "io");
	if (io && argc != 8 && argc != 9)
		goto usage;
	lenient = !strcmp(mode, "errors") && argc == 6 && !strcmp(argv[5], "lenient");
	if (!io && (argc != 5 + lenient || (strcmp(mode, "errors") && strcmp(mode, "readonly"))))
		goto usage;
	if (io && argc == 9) {
		loop = !strcmp(argv[8], "loop");
		verify = !strcmp(argv[8], "verify");
		icd_only = !strcmp(argv[8], "icd");
		if (!loop && !verify && !icd_only)
			goto usage;
	}
	if (zc_ex_parse_hostport(argv[3], host, sizeof(host), &port, NVMF_PORT))
		goto usage;
	rc = zc_ctx_new(argv[2], NULL, &ctx);
	if (rc)
		fatal("zc_ctx_new(%s): %s", argv[2], zc_strerror(rc));
	blk_init_opts_init(&o);
	o.queue_depth = QD;
	o.nr_queues = QUEUES;
	o.nqn = strcmp(argv[4], "-") ? argv[4] : NULL;
	o.hostnqn = "nqn.2024-01.io.zcrdma:blk-check";
	rc = blk_init_connect(ctx, host, port, &o, &bi);
	if (rc)
		fatal("connect: %s", blk_init_last_error());
	g = blk_init_geom(bi);
	bs = g->block_size;
	max_cmd = g->max_blocks < MAX_CHUNK / bs ? g->max_blocks : MAX_CHUNK / bs;
	printf("ok: controller %u of %s: namespace %u, %llu blocks of %u bytes, %d queue(s) of %d, "
	       "%u bytes per command, in-capsule data %u bytes\n",
	       g->cntlid, g->nqn, g->nsid, (unsigned long long)g->capacity, bs, g->nr_queues, g->queue_depth,
	       g->max_blocks * bs, g->icd_max);
	if (icd_only) {
		if (g->icd_max < bs)
			fatal("the target takes no in-capsule data of a block");
		max_write = g->icd_max / bs;
	}
	buf = aligned_alloc(4096, (size_t)SLOTS * MAX_CHUNK);
	if (!buf)
		fatal("out of memory");
	rc = zc_mr_reg(ctx, buf, (size_t)SLOTS * MAX_CHUNK, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &mr);
	if (rc)
		fatal("zc_mr_reg: %s", zc_strerror(rc));

	if (io) {
		uint64_t lba = strtoull(argv[5], NULL, 0), n = strtoull(argv[6], NULL, 0);
		uint32_t seed = (uint32_t)strtoul(argv[7], NULL, 0), pass;

		if (!seed || !n || lba + n > g->capacity)
			fatal("LBA %llu+%llu outside the namespace (%llu blocks), or seed 0", (unsigned long long)lba,
			      (unsigned long long)n, (unsigned long long)g->capacity);
		uint64_t z = zeroed(n);

		if (verify) {
			/* What another host left: the pattern, its last quarter zeroed. */
			job(NVMF_IO_READ, seed, lba, n - z, rsizes, sizeof(rsizes) / sizeof(*rsizes));
			if (z)
				job(NVMF_IO_READ, 0, lba + n - z, z, rsizes, 8);
		}
		for (pass = 1; !verify; pass++) {
			job(NVMF_IO_WRITE, seed, lba, n, wsizes, sizeof(wsizes) / sizeof(*wsizes));
			job(NVMF_IO_READ, seed, lba, n, rsizes, sizeof(rsizes) / sizeof(*rsizes));
			if (!loop)
				break;
			printf("ok: pass %u\n", pass);
			fflush(stdout);
		}
		if (!verify)
			flush_and_zero(lba, n, z);
	} else if (!strcmp(mode, "errors")) {
		past_end(NVMF_IO_READ, g->capacity, 1, "Read of the block past the end");
		past_end(NVMF_IO_READ, g->capacity - 1, 2, "Read across the end");
		if (g->oncs & 0x8)
			past_end(NVMF_IO_WRITE_ZEROES, g->capacity - 3, 8, "Write Zeroes across the end");
		if (g->max_blocks < MAX_CHUNK / bs) {
			uint16_t st = one(NVMF_IO_READ, 0, g->max_blocks + 1);

			if (!st)
				fail("a Read of %u blocks, beyond MDTS, succeeded", g->max_blocks + 1);
			else
				printf("ok: Read beyond the largest transfer -> %s\n", nvmf_status_str(st));
		}
		job(NVMF_IO_WRITE, 9, 100, 40, wsizes, 4);
		job(NVMF_IO_READ, 9, 100, 40, rsizes, 4);
		printf("ok: the controller still works\n");
	} else {
		if (!g->read_only)
			fail("the namespace is not write protected in Identify Namespace");
		expect(NVMF_IO_WRITE, 0, 1, NVMF_SC_NS_WRITE_PROTECTED, "Write");
		if (g->oncs & 0x8)
			expect(NVMF_IO_WRITE_ZEROES, 0, 1, NVMF_SC_NS_WRITE_PROTECTED, "Write Zeroes");
		expect(NVMF_IO_READ, 0, 8, NVMF_SC_SUCCESS, "Read");
	}
	rc = blk_init_close(&bi);
	if (rc)
		fail("close (CC.SHN): %s", blk_init_last_error());
	else
		printf("ok: controller shut down (CSTS.SHST complete) and disconnected\n");
	zc_mr_dereg(&mr);
	zc_ctx_free(&ctx);
	free(buf);
	return failures ? 1 : 0;
usage:
	fprintf(stderr, "usage: blk_check io SRCADDR ADDR[:PORT] NQN|- FIRST_LBA BLOCKS SEED [verify|loop|icd]\n"
			"       blk_check errors SRCADDR ADDR[:PORT] NQN|- [lenient]\n"
			"       blk_check readonly SRCADDR ADDR[:PORT] NQN|-\n");
	return 2;
}
