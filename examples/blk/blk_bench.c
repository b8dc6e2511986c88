/*
 * zc_blk_bench - closed-loop benchmark of an NVMe over Fabrics (RDMA) target
 *
 *   zc_blk_bench -b SRCADDR ADDR[:PORT] [--nqn NQN] [--rw read|write|randread|randwrite]
 *                [--bs SIZE] [--qd N] [--queues N] [--time S] [--size SIZE] [--json FILE]
 *                [--export auto|window|mr] [--no-icd] [--verify] [--busy-poll-us N]
 *
 * A user-space NVMe-oF host (blk_initiator.h; SPDK's perf tool is the
 * model) that keeps N commands in flight per I/O queue against any NVMe-oF
 * RDMA target (zc_blk_target, the kernel's nvmet-rdma) directly, no kernel
 * block layer: each Read or Write moves --bs bytes by RDMA between the
 * target and a registered buffer of this process, exported for just that
 * command (small Writes go in the capsule if the target takes in-capsule
 * data, unless --no-icd). Port 4420 by default; without --nqn the first
 * subsystem the target's discovery controller lists. Reports IOPS, MB/s
 * (10^6 bytes/s) and completion-latency percentiles (submit to completion);
 * --json also writes them to FILE. Offsets are multiples of --bs inside the
 * first --size bytes (default: the whole namespace). --verify: every Write
 * carries a pattern that depends only on the byte's offset in the
 * namespace, and every Read is checked byte for byte against it (so read
 * what a --verify write run wrote). Exit status: 0, 1 on any failed
 * command, mismatch or error, 2 on usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zcrdma.h>

#include "blk_initiator.h"
#include "zc_example.h"

const char *const zc_ex_prog = "zc_blk_bench";

/* Never sleep, as SPDK's perf: against both targets in the guest (4 KiB
 * randread QD32, same boot) -1 beat 2000 and 100 us of spinning before a
 * sleep (zc_blk_target 3,679 / 2,891 / 2,130 IOPS; nvmet-rdma 6,187 /
 * 2,340 / 3,325). */
#define DEFAULT_BUSY_POLL_US -1

static void usage(void)
{
	fprintf(stderr,
		"usage: %s -b SRCADDR ADDR[:PORT] [--nqn NQN] [--rw read|write|randread|randwrite] [--bs SIZE]\n"
		"       [--qd N] [--queues N] [--time S] [--size SIZE] [--json FILE] [--export auto|window|mr]\n"
		"       [--no-icd] [--verify] [--busy-poll-us N]\n"
		"  -b SRCADDR   local RDMA address (required); the target's port defaults to %d\n"
		"  --nqn NQN    subsystem (default: the first one the discovery controller lists)\n"
		"  --rw MODE    access pattern (default randread)\n"
		"  --bs SIZE    bytes per command, a multiple of the block size (default 4K)\n"
		"  --qd N       commands in flight per I/O queue (default 1, at most %d)\n"
		"  --queues N   I/O queues (default 1, at most %d)\n"
		"  --time S     seconds to run (default 10)\n"
		"  --size SIZE  only the first SIZE bytes of the namespace (default all)\n"
		"  --json FILE  also write the results as JSON\n"
		"  -e, --export M  how buffers are exported: auto (default), window, mr\n"
		"  --no-icd     no in-capsule Write data\n"
		"  --verify     write a pattern of the offset, check every byte read against it\n"
		"  --busy-poll-us N  spin this long for the next completion before sleeping\n"
		"               (default %d: never sleeps; 0 sleeps at once)\n",
		zc_ex_prog, NVMF_PORT, BLK_MAX_QD, BLK_MAX_QUEUES, DEFAULT_BUSY_POLL_US);
	exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)ceil(p / 100.0 * (double)n);
	if (i > 0)
		i--;
	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1000.0;
}

/* The --verify pattern: 8-byte words that depend only on their offset in the namespace. */
static uint64_t pattern(uint64_t offset)
{
	uint64_t z = offset / 8 + 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill(uint8_t *buf, size_t len, uint64_t offset)
{
	size_t i;

	for (i = 0; i < len; i += 8) {
		uint64_t w = pattern(offset + i);

		memcpy(buf + i, &w, 8);
	}
}

/* Returns the offset of the first byte that differs, or -1. */
static long long check(const uint8_t *buf, size_t len, uint64_t offset)
{
	size_t i, k;

	for (i = 0; i < len; i += 8) {
		uint64_t w = pattern(offset + i);

		if (memcmp(buf + i, &w, 8) != 0) {
			for (k = 0; ((const uint8_t *)&w)[k] == buf[i + k]; k++)
				;
			return (long long)(offset + i + k);
		}
	}
	return -1;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"rw", required_argument, NULL, 'r'},   {"bs", required_argument, NULL, 's'},
		{"qd", required_argument, NULL, 'q'},   {"time", required_argument, NULL, 't'},
		{"size", required_argument, NULL, 'S'}, {"json", required_argument, NULL, 'j'},
		{"export", required_argument, NULL, 'e'}, {"nqn", required_argument, NULL, 'n'},
		{"queues", required_argument, NULL, 'Q'}, {"no-icd", no_argument, NULL, 'I'},
		{"verify", no_argument, NULL, 'V'},     {"busy-poll-us", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *src = NULL, *rw = "randread", *json = NULL;
	long long bs = 4096, size = 0, v, busy_poll_us = DEFAULT_BUSY_POLL_US;
	int qd = 1, opt, rc, write, rnd, i, n, status = 1, verify = 0, total;
	double seconds = 10;
	struct blk_init_opts bo;
	struct zc_ctx_opts xo;
	struct blk_init *bi = NULL;
	struct zc_ctx *ctx = NULL;
	struct zc_mr *mr = NULL;
	const struct blk_geom *g;
	struct blk_cpl cpl[64];
	uint64_t *lat = NULL, *start_ns = NULL, *slot_off = NULL, nlat = 0, cap_lat = 0, errors = 0, slots, seq = 0;
	uint64_t t0, t1, end, k;
	uint32_t nblocks;
	uint8_t *buf = NULL;
	int *free_slot = NULL, n_free = 0;
	char host[256];
	uint16_t port;
	struct sigaction sa;

	blk_init_opts_init(&bo);
	while ((opt = getopt_long(argc, argv, "b:e:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'b': src = optarg; break;
		case 'r': rw = optarg; break;
		case 's': bs = zc_ex_parse_size(optarg); if (bs <= 0) usage(); break;
		case 'q':
			v = atoll(optarg);
			if (v < 1 || v > BLK_MAX_QD)
				usage();
			qd = (int)v;
			break;
		case 'Q':
			v = atoll(optarg);
			if (v < 1 || v > BLK_MAX_QUEUES)
				usage();
			bo.nr_queues = (int)v;
			break;
		case 't': seconds = atof(optarg); if (seconds <= 0) usage(); break;
		case 'S': size = zc_ex_parse_size(optarg); if (size <= 0) usage(); break;
		case 'j': json = optarg; break;
		case 'n':
			if (!nvmf_nqn_valid(optarg))
				usage();
			bo.nqn = optarg;
			break;
		case 'I': bo.no_icd = 1; break;
		case 'V': verify = 1; break;
		case 'p':
			if (zc_ex_parse_int(optarg, -1, 60000000, &busy_poll_us))
				usage();
			break;
		case 'e':
			bo.export_mode = blk_export_mode_parse(optarg);
			if (bo.export_mode < 0)
				usage();
			break;
		default: usage();
		}
	}
	if (!src || optind != argc - 1 || zc_ex_parse_hostport(argv[optind], host, sizeof(host), &port, NVMF_PORT))
		usage();
	write = !strcmp(rw, "write") || !strcmp(rw, "randwrite");
	rnd = !strncmp(rw, "rand", 4);
	if (!write && strcmp(rw, "read") && strcmp(rw, "randread"))
		usage();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	zc_ctx_opts_init(&xo);
	xo.busy_poll_us = (int)busy_poll_us;
	rc = zc_ctx_new(src, &xo, &ctx);
	if (rc) {
		zc_ex_warn("cannot open the RDMA device of %s: %s", src, zc_ex_why(rc));
		return 1;
	}
	bo.queue_depth = qd;
	rc = blk_init_connect(ctx, host, port, &bo, &bi);
	if (rc) {
		zc_ex_warn("cannot connect to %s:%u: %s", host, port, blk_init_last_error());
		goto out;
	}
	g = blk_init_geom(bi);
	if (g->queue_depth < qd || g->nr_queues < bo.nr_queues) {
		zc_ex_warn("the target granted %d queue(s) of depth %d (asked: %d of %d); running with those",
			   g->nr_queues, g->queue_depth, bo.nr_queues, qd);
		qd = g->queue_depth;
	}
	total = qd * g->nr_queues;
	if (bs % g->block_size || bs / g->block_size > g->max_blocks) {
		zc_ex_warn("--bs must be a multiple of %u bytes and at most %llu", g->block_size,
			   (unsigned long long)g->max_blocks * g->block_size);
		goto out;
	}
	if (write && g->read_only) {
		zc_ex_warn("the namespace is write protected");
		goto out;
	}
	nblocks = (uint32_t)(bs / g->block_size);
	slots = (size && (uint64_t)size / g->block_size < g->capacity ? (uint64_t)size / g->block_size
								      : g->capacity) / nblocks;
	if (!slots) {
		zc_ex_warn("the namespace is smaller than one %lld-byte command", bs);
		goto out;
	}
	buf = aligned_alloc(4096, (size_t)bs * (size_t)total);
	free_slot = calloc((size_t)total, sizeof(int));
	start_ns = calloc((size_t)total, sizeof(uint64_t));
	slot_off = calloc((size_t)total, sizeof(uint64_t));
	if (!buf || !free_slot || !start_ns || !slot_off) {
		zc_ex_warn("out of memory");
		goto out;
	}
	for (k = 0; k < (uint64_t)bs * (uint64_t)total; k++)
		buf[k] = (uint8_t)next_rand();
	rc = zc_mr_reg(ctx, buf, (size_t)bs * (size_t)total, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &mr);
	if (rc) {
		zc_ex_warn("zc_mr_reg: %s", zc_ex_why(rc));
		goto out;
	}
	for (i = total - 1; i >= 0; i--)
		free_slot[n_free++] = i;

	t0 = now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	while (blk_init_inflight(bi) || (!stop && now_ns() < end && !errors)) {
		while (n_free && !stop && !errors && now_ns() < end) {
			int s = free_slot[n_free - 1];
			uint64_t slot = rnd ? next_rand() % slots : seq++ % slots;
			uint8_t *p = buf + (size_t)s * (size_t)bs;

			slot_off[s] = slot * (uint64_t)bs;
			if (verify && write)
				fill(p, (size_t)bs, slot_off[s]);
			start_ns[s] = now_ns();
			rc = blk_init_submit(bi, write ? NVMF_IO_WRITE : NVMF_IO_READ, slot * nblocks, nblocks, p, mr,
					     (size_t)s * (size_t)bs, (uint64_t)s);
			if (rc == -EBUSY)
				break;
			if (rc) {
				zc_ex_warn("submit: %s", blk_init_last_error());
				goto out;
			}
			n_free--;
		}
		n = blk_init_poll(bi, cpl, 64, 100);
		if (n < 0) {
			zc_ex_warn("%s", blk_init_last_error());
			goto out;
		}
		t1 = now_ns();
		for (i = 0; i < n; i++) {
			int s = (int)cpl[i].user;

			if (cpl[i].status) {
				if (!errors++)
					zc_ex_warn("command failed: %s (status %#x)", nvmf_status_str(cpl[i].status),
						   cpl[i].status);
			} else if (verify && !write) {
				long long bad = check(buf + (size_t)s * (size_t)bs, (size_t)bs, slot_off[s]);

				if (bad >= 0 && !errors++)
					zc_ex_warn("verify: byte %lld of the namespace differs from the pattern", bad);
			}
			if (nlat == cap_lat) {
				uint64_t *nl;

				cap_lat = cap_lat ? 2 * cap_lat : 65536;
				nl = realloc(lat, cap_lat * sizeof(*lat));
				if (!nl) {
					zc_ex_warn("out of memory");
					goto out;
				}
				lat = nl;
			}
			lat[nlat++] = t1 - start_ns[s];
			free_slot[n_free++] = s;
		}
	}
	t1 = now_ns();
	if (!errors && nlat) {
		double secs = (double)(t1 - t0) / 1e9, iops = (double)nlat / secs, mbs = iops * (double)bs / 1e6;
		double sum = 0;

		for (k = 0; k < nlat; k++)
			sum += (double)lat[k];
		qsort(lat, nlat, sizeof(*lat), cmp_u64);
		printf("%s: %s bs=%lld qd=%d queues=%d: %llu ops in %.2f s: %.0f IOPS, %.2f MB/s, latency us: "
		       "p50 %.1f p99 %.1f p99.9 %.1f mean %.1f max %.1f%s\n",
		       zc_ex_prog, rw, bs, qd, g->nr_queues, (unsigned long long)nlat, secs, iops, mbs,
		       pct(lat, nlat, 50), pct(lat, nlat, 99), pct(lat, nlat, 99.9), sum / (double)nlat / 1000.0,
		       (double)lat[nlat - 1] / 1000.0, verify ? ", verified" : "");
		if (json) {
			FILE *f = fopen(json, "w");

			if (!f) {
				zc_ex_warn("cannot write %s: %s", json, strerror(errno));
				goto out;
			}
			fprintf(f,
				"{\"rw\": \"%s\", \"bs\": %lld, \"qd\": %d, \"queues\": %d, \"block_size\": %u, "
				"\"nqn\": \"%s\", \"seconds\": %.3f, \"ops\": %llu, \"iops\": %.1f, \"mb_per_s\": %.3f, "
				"\"lat_us\": {\"p50\": %.1f, \"p99\": %.1f, \"p99.9\": %.1f, \"mean\": %.1f, \"min\": %.1f, "
				"\"max\": %.1f}}\n",
				rw, bs, qd, g->nr_queues, g->block_size, g->nqn, secs, (unsigned long long)nlat, iops,
				mbs, pct(lat, nlat, 50), pct(lat, nlat, 99), pct(lat, nlat, 99.9),
				sum / (double)nlat / 1000.0, (double)lat[0] / 1000.0, (double)lat[nlat - 1] / 1000.0);
			fclose(f);
		}
		status = 0;
	} else if (!errors) {
		zc_ex_warn("no command completed");
	}
out:
	if (bi && blk_init_close(&bi) && status == 0) {
		zc_ex_warn("shutting the controller down: %s", blk_init_last_error());
		status = 1;
	}
	if (mr)
		zc_mr_dereg(&mr);
	if (ctx)
		zc_ctx_free(&ctx);
	free(buf);
	free(free_slot);
	free(start_ns);
	free(slot_off);
	free(lat);
	return status;
}
