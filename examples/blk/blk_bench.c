/*
 * zc_blk_bench - closed-loop benchmark against a zc_blk_legacy_target
 *
 *   zc_blk_bench -b SRCADDR ADDR[:PORT] [--rw read|write|randread|randwrite]
 *                [--bs SIZE] [--qd N] [--time S] [--size SIZE] [--json FILE]
 *                [--export auto|window|mr]
 *
 * Keeps N commands in flight against the target directly (no kernel block
 * layer): each one transfers SIZE bytes by RDMA between the target's pool
 * and a registered buffer of this process, exported for just that command.
 * Reports IOPS, MB/s (10^6 bytes/s) and completion-latency percentiles
 * (submit to response); --json also writes them to FILE. Offsets are
 * multiples of --bs inside the first --size bytes (default: the whole
 * device). --export: see enum blk_export_mode in blk_initiator.h. Exit status: 0, 1 on any failed command or error, 2 on usage.
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

static void usage(void)
{
	fprintf(stderr,
		"usage: %s -b SRCADDR ADDR[:PORT] [--rw read|write|randread|randwrite] [--bs SIZE] [--qd N]\n"
		"       [--time S] [--size SIZE] [--json FILE] [--export auto|window|mr]\n"
		"  -b SRCADDR   local RDMA address (required)\n"
		"  --rw MODE    access pattern (default randread)\n"
		"  --bs SIZE    bytes per command, a multiple of the block size (default 4K)\n"
		"  --qd N       commands in flight (default 1)\n"
		"  --time S     seconds to run (default 10)\n"
		"  --size SIZE  only the first SIZE bytes of the device (default all)\n"
		"  --json FILE  also write the results as JSON\n"
		"  -e, --export M  how buffers are exported: auto (default), window, mr\n",
		zc_ex_prog);
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
		{"export", required_argument, NULL, 'e'},
		{"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
	};
	const char *src = NULL, *rw = "randread", *json = NULL;
	long long bs = 4096, size = 0, v;
	int qd = 1, opt, rc, write, rnd, i, n, status = 1, export_mode = BLK_EXPORT_AUTO;
	double seconds = 10;
	struct blk_init_opts bo;
	struct blk_init *bi = NULL;
	struct zc_ctx *ctx = NULL;
	struct zc_mr *mr = NULL;
	const struct blk_geom *g;
	struct blk_cpl cpl[64];
	uint64_t *lat = NULL, *start_ns = NULL, nlat = 0, cap_lat = 0, errors = 0, slots, seq = 0, t0, t1, end;
	uint32_t nblocks;
	uint64_t k;
	uint8_t *buf = NULL;
	int *free_slot = NULL, n_free = 0;
	char host[256];
	uint16_t port;
	struct sigaction sa;

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
		case 't': seconds = atof(optarg); if (seconds <= 0) usage(); break;
		case 'S': size = zc_ex_parse_size(optarg); if (size <= 0) usage(); break;
		case 'j': json = optarg; break;
		case 'e':
			export_mode = blk_export_mode_parse(optarg);
			if (export_mode < 0)
				usage();
			break;
		default: usage();
		}
	}
	if (!src || optind != argc - 1 ||
	    zc_ex_parse_hostport(argv[optind], host, sizeof(host), &port, BLK_DEFAULT_PORT))
		usage();
	write = !strcmp(rw, "write") || !strcmp(rw, "randwrite");
	rnd = !strncmp(rw, "rand", 4);
	if (!write && strcmp(rw, "read") && strcmp(rw, "randread"))
		usage();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	rc = zc_ctx_new(src, NULL, &ctx);
	if (rc) {
		zc_ex_warn("cannot open the RDMA device of %s: %s", src, zc_ex_why(rc));
		return 1;
	}
	blk_init_opts_init(&bo);
	bo.queue_depth = qd;
	bo.export_mode = export_mode;
	rc = blk_init_connect(ctx, host, port, &bo, &bi);
	if (rc) {
		zc_ex_warn("cannot connect to %s:%u: %s", host, port, blk_init_last_error());
		goto out;
	}
	g = blk_init_geom(bi);
	if (g->queue_depth < qd) {
		zc_ex_warn("the target granted queue depth %u of %d; running with %u",
			g->queue_depth, qd, g->queue_depth);
		qd = g->queue_depth;
	}
	if (bs % g->block_size || bs / g->block_size > g->max_blocks) {
		zc_ex_warn("--bs must be a multiple of %u bytes and at most %llu", g->block_size,
			(unsigned long long)g->max_blocks * g->block_size);
		goto out;
	}
	if (write && g->read_only) {
		zc_ex_warn("the target is read-only");
		goto out;
	}
	nblocks = (uint32_t)(bs / g->block_size);
	slots = (size && (uint64_t)size / g->block_size < g->capacity ? (uint64_t)size / g->block_size
								      : g->capacity) / nblocks;
	if (!slots) {
		zc_ex_warn("the device is smaller than one %lld-byte command", bs);
		goto out;
	}
	buf = aligned_alloc(4096, (size_t)bs * (size_t)qd);
	free_slot = calloc((size_t)qd, sizeof(int));
	start_ns = calloc((size_t)qd, sizeof(uint64_t));
	if (!buf || !free_slot || !start_ns) {
		zc_ex_warn("out of memory");
		goto out;
	}
	for (k = 0; k < (uint64_t)bs * (uint64_t)qd; k++)
		buf[k] = (uint8_t)next_rand();
	rc = zc_mr_reg(ctx, buf, (size_t)bs * (size_t)qd, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &mr);
	if (rc) {
		zc_ex_warn("zc_mr_reg: %s", zc_ex_why(rc));
		goto out;
	}
	for (i = qd - 1; i >= 0; i--)
		free_slot[n_free++] = i;

	t0 = now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	while (blk_init_inflight(bi) || (!stop && now_ns() < end && !errors)) {
		while (n_free && !stop && !errors && now_ns() < end) {
			int s = free_slot[n_free - 1];
			uint64_t slot = rnd ? next_rand() % slots : seq++ % slots;

			start_ns[s] = now_ns();
			rc = blk_init_submit(bi, write ? BLK_OP_WRITE : BLK_OP_READ, slot * nblocks, nblocks, mr,
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
			if (cpl[i].unsolicited)
				continue;
			if (cpl[i].resp.status != BLK_S_OK) {
				if (!errors++)
					zc_ex_warn("command failed: %s (detail %u)",
						blk_status_str(cpl[i].resp.status), cpl[i].resp.detail);
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
			lat[nlat++] = t1 - start_ns[cpl[i].user];
			free_slot[n_free++] = (int)cpl[i].user;
		}
	}
	t1 = now_ns();
	if (!errors && nlat) {
		double secs = (double)(t1 - t0) / 1e9, iops = (double)nlat / secs, mbs = iops * (double)bs / 1e6;
		double sum = 0;

		for (k = 0; k < nlat; k++)
			sum += (double)lat[k];
		qsort(lat, nlat, sizeof(*lat), cmp_u64);
		printf("%s: %s bs=%lld qd=%d: %llu ops in %.2f s: %.0f IOPS, %.2f MB/s, latency us: "
		       "p50 %.1f p99 %.1f p99.9 %.1f mean %.1f max %.1f\n",
		       zc_ex_prog, rw, bs, qd, (unsigned long long)nlat, secs, iops, mbs, pct(lat, nlat, 50),
		       pct(lat, nlat, 99), pct(lat, nlat, 99.9), sum / (double)nlat / 1000.0,
		       (double)lat[nlat - 1] / 1000.0);
		if (blk_init_reconnects(bi))
			printf("%s: the connection was re-established %u time(s)\n", zc_ex_prog,
			       blk_init_reconnects(bi));
		if (json) {
			FILE *f = fopen(json, "w");

			if (!f) {
				zc_ex_warn("cannot write %s: %s", json, strerror(errno));
				goto out;
			}
			fprintf(f,
				"{\"rw\": \"%s\", \"bs\": %lld, \"qd\": %d, \"block_size\": %u, \"seconds\": %.3f, "
				"\"ops\": %llu, \"iops\": %.1f, \"mb_per_s\": %.3f, \"lat_us\": {\"p50\": %.1f, "
				"\"p99\": %.1f, \"p99.9\": %.1f, \"mean\": %.1f, \"min\": %.1f, \"max\": %.1f}}\n",
				rw, bs, qd, g->block_size, secs, (unsigned long long)nlat, iops, mbs,
				pct(lat, nlat, 50), pct(lat, nlat, 99), pct(lat, nlat, 99.9),
				sum / (double)nlat / 1000.0, (double)lat[0] / 1000.0, (double)lat[nlat - 1] / 1000.0);
			fclose(f);
		}
		status = 0;
	} else if (!errors) {
		zc_ex_warn("no command completed");
	}
out:
	if (bi)
		blk_init_close(&bi);
	if (mr)
		zc_mr_dereg(&mr);
	if (ctx)
		zc_ctx_free(&ctx);
	free(buf);
	free(free_slot);
	free(start_ns);
	free(lat);
	return status;
}
