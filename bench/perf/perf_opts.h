/*
 * zc_perf command line: perftest-compatible options, parsed by pure code (no
 * RDMA) so the unit tests can cover every flag and every bad value.
 */
#ifndef ZC_PERF_OPTS_H
#define ZC_PERF_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PERF_TEST_NAME_MAX 16 /* including the NUL */
#define PERF_DEF_PORT 18515
#define PERF_DEF_SIZE_BW 65536
#define PERF_DEF_SIZE_LAT 2
#define PERF_DEF_ITERS 1000
#define PERF_DEF_TX_BW 128
#define PERF_DEF_TX_LAT 1
#define PERF_DEF_RX 512
#define PERF_DEF_CQ_MOD 100
#define PERF_DEF_WAIT_S 120
#define PERF_MIN_ITERS 5
#define PERF_MAX_ITERS 100000000ull
#define PERF_MAX_SIZE (1ull << 30)
#define PERF_ALL_MIN_SHIFT 1  /* -a: 2 B ... */
#define PERF_ALL_MAX_SHIFT 23 /* ... 8 MiB, like perftest */
#define PERF_MAX_SIZES (PERF_ALL_MAX_SHIFT - PERF_ALL_MIN_SHIFT + 1)
/* Library tests: the largest eager_size zc_conn_opts accepts: a receive slot
 * holds at most 1 MiB (docs/protocol.md: slot_size 64..2^20) including its
 * 16-byte header. */
#define PERF_LIB_EAGER_MAX ((1u << 20) - 16)
/* perftest turns CQ moderation off above this size (cq_mod 1). */
#define PERF_CQ_MOD_SIZE_LIMIT 8192

struct perf_opts {
	char test[PERF_TEST_NAME_MAX]; /* --test, default "write" */
	int lat;                       /* --lat: ping-pong latency instead of bandwidth */
	const char *server;            /* positional SERVER: client role; NULL: server role */
	const char *bind;              /* -b: local address (client: source address) */
	const char *dev;               /* -d: expected RDMA device, NULL: rdma_cm's choice */
	int ib_port;                   /* -i */
	int ib_port_set;
	int gid_index;                 /* -x, -1 unset: rdma_cm picks the GID */
	uint64_t size;                 /* -s, bytes */
	int size_set;
	int all;                       /* -a: sweep 2 B .. 8 MiB */
	uint64_t iters;                /* -n, per QP */
	int iters_set;
	int duration;                  /* -D seconds, 0: iteration mode */
	int port;                      /* -p, rdma_cm port */
	int qps;                       /* -q */
	int inline_size;               /* -I */
	int rdma_cm;                   /* -R: accepted, rdma_cm is always used */
	int report_gbits;              /* --report_gbits */
	int tx_depth;                  /* -t */
	int tx_depth_set;
	int rx_depth;                  /* -r */
	int cq_mod;                    /* -Q */
	int cq_mod_set;
	int verify;                    /* --verify */
	int events;                    /* -e: completion channel instead of busy polling */
	const char *json;              /* --json FILE */
	const char *csv;               /* --csv FILE */
	int wait_s;                    /* --wait: server waits for a client, client retries */
	int wait_set;
	int help;                      /* -h: caller prints perf_opts_usage() */
	int version;                   /* -V */
	/* Library tests only (stream, msg, zc, rma, rma_read; docs/zc_perf.md). */
	int copy;                      /* --copy: eager_size at its maximum, the copy path up to it */
	int rcache;                    /* --rcache: zero-copy buffers through the registration cache */
	int fresh_reg;                 /* --no-rcache-reuse: invalidate after every completion (implies --rcache) */
	int no_memhooks;               /* --no-memhooks: zc_ctx_opts.no_memhooks */
	int busy_poll_us;              /* --busy-poll-us: zc_ctx_opts.busy_poll_us (default -1, -e 0) */
	int busy_poll_set;
};

/* Defaults as perftest has them for bandwidth tests (lat adjusts in parse). */
void perf_opts_defaults(struct perf_opts *o);

/*
 * Parses argv[1..argc-1] into o (defaults first). Returns 0, or -EINVAL with a
 * one-line reason in err. Never prints, never exits, keeps no global state.
 * Mode-dependent defaults (size, tx depth) and clamps (tx/rx depth to -n, CQ
 * moderation to the tx depth) are applied here, like perftest does.
 */
int perf_opts_parse(int argc, char **argv, struct perf_opts *o, char *err, size_t errlen);

/* Message sizes to run, smallest first; returns how many (<= PERF_MAX_SIZES). */
int perf_opts_sizes(const struct perf_opts *o, uint64_t *sizes, int max);

/* Largest size any run uses: what buffers must hold. */
uint64_t perf_opts_max_size(const struct perf_opts *o);

/*
 * CQ moderation for one size: signal every Nth work request. Like perftest,
 * moderation is off (1) above 8 KiB unless -Q, -a or -e was given.
 */
int perf_opts_cq_mod(const struct perf_opts *o, uint64_t size);

/*
 * The options the library tests (stream, msg, zc, rma, rma_read) do not take:
 * -D, -I, -Q, --copy beyond PERF_LIB_EAGER_MAX or with rma/rma_read, and
 * -q > 1 with rma/rma_read (one connection, one export). 0, or -EINVAL with
 * the reason in err.
 */
int perf_opts_check_lib(const struct perf_opts *o, char *err, size_t errlen);

void perf_opts_usage(FILE *f, const char *prog);

#endif
