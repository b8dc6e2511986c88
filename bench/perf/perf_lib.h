/*
 * Shared plumbing of the library tests (stream, msg, zc, rma, rma_read; see
 * docs/zc_perf.md): a zcrdma context and the -q connections that the library
 * makes itself (zc_listen/zc_accept/zc_connect) next to zc_perf's control
 * connection, all of them from that one context, the test buffers,
 * --verify's payload stamps, timing shaped like the raw-verbs loops, and the
 * library's counters per size.
 *
 * Mapping of zc_perf's options onto the library:
 *   -t N   zc_conn_opts.credits = N (1..4096) and send_depth = 2 N + 8; the
 *          zc and rma tests keep up to N operations in flight
 *   -r N   zc test: receive buffers the server keeps posted (at most 2 N)
 *   -q N   stream, msg, zc bandwidth: N connections from this one context
 *   -e     zc_ctx_opts.busy_poll_us = 0 (sleep on the event fd); without it
 *          -1 (never sleep), like perftest's busy polling
 *   --copy zc_conn_opts.eager_size = PERF_LIB_EAGER_MAX
 */
#ifndef ZC_PERF_LIB_H
#define ZC_PERF_LIB_H

#include <stdint.h>
#include <zcrdma.h>

#include "perf_stats.h"
#include "perf_test.h"

/* Pools of buffers for in-flight operations stay below this per side. */
#define PERF_LIB_POOL_BYTES (128ull << 20)
#define PERF_LIB_SLICE_MS 100  /* longest wait in zc_poll between stop/peer checks */
#define PERF_LIB_IDLE_CHECK 4096 /* busy mode: empty polls between peer checks */
#define PERF_LIB_STAMP 8       /* --verify: bytes of the iteration stamp at a payload's start */
#define PERF_LIB_ACK_LEN 8     /* the end-of-run acknowledgement */
#define PERF_LIB_GRACE_S 15    /* after the watchdog: exit if still stuck in the library */

struct perf_lib_cfg {
	int nbuf;      /* buffers wanted (capped to PERF_LIB_POOL_BYTES) */
	int mr_access; /* ZC_ACCESS_* of the explicit region */
	int force_mr;  /* register one region even with --rcache (an export needs one) */
	int no_mr;     /* the API takes no region (stream, msg): never register one */
};

struct perf_lib_stat {
	uint64_t size;
	struct zc_stats d; /* counters: difference over the run; entries/bytes: after it */
};

struct perf_lib {
	struct perf_ctx *ctx;
	struct zc_ctx *zctx;
	struct zc_listener *lis;
	struct zc_conn **conns; /* -q of them; conns[i] carries zc_conn_data i */
	int nconn;
	struct zc_ctx_opts xopts;
	struct zc_conn_opts copts;
	struct zc_caps caps;
	int failed; /* a library call failed: abort rather than close */
	int no_mr;  /* the test's API takes no region (stream, msg) */
	/*
	 * nbuf buffers of stride bytes (the largest size rounded up to a page,
	 * plus a guard page so that cache entries of neighbours never merge),
	 * then the pages of the acknowledgements (PERF_LIB_ACK_LEN bytes for
	 * each connection). mr covers all of it, or is NULL
	 * when the buffers go through the registration cache.
	 */
	uint8_t *mem;
	size_t mem_len, stride;
	int nbuf;
	struct zc_mr *mr;
	uint8_t *ref[2]; /* --verify: the pattern of each direction, for this size */
	uint64_t ref_size;
	struct zc_stats before;
	int nstats;
	struct perf_lib_stat stats[PERF_MAX_SIZES];
	void *test; /* the test's own state */
};

static inline struct perf_lib *perf_lib_of(const struct perf_ctx *ctx)
{
	return ctx->priv;
}

static inline uint8_t *perf_lib_buf(const struct perf_lib *L, int i)
{
	return L->mem + (size_t)i * L->stride;
}

/* Connection i's acknowledgement. */
static inline uint8_t *perf_lib_ack(const struct perf_lib *L, int i)
{
	return L->mem + (size_t)L->nbuf * L->stride + (size_t)i * PERF_LIB_ACK_LEN;
}

/* Context, connection and buffers; fills ctx->priv. */
int perf_lib_setup(struct perf_ctx *ctx, const struct perf_lib_cfg *cfg);
/* Orderly close (abort after a failure), then frees everything. */
void perf_lib_teardown(struct perf_ctx *ctx);

/* Records a library failure (with zc_strerror and zc_last_error) as the message zc_perf prints. */
int perf_lib_fail(struct perf_lib *L, int rc, const char *what);


/* Index of a completion's connection (its zc_conn_data), or -1 if it has none. */
int perf_lib_conn_index(const struct perf_lib *L, const struct zc_completion *c);
/* Common skip: --copy cannot carry sizes beyond PERF_LIB_EAGER_MAX. */
int perf_lib_skip(const struct perf_ctx *ctx, uint64_t size, char *why, size_t whylen);
/* Common header lines and footer (the library's counters per size). */
void perf_lib_header(const struct perf_ctx *ctx, FILE *f);
void perf_lib_footer(const struct perf_ctx *ctx, FILE *f);
/* This side's registration work during the run of size (regs + deregs and
 * reg_ns from the counters perf_lib_stats_end() kept): 1 and the figures for
 * a library test, 0 otherwise. */
int perf_lib_reg_delta(const struct perf_ctx *ctx, uint64_t size, uint64_t *calls, uint64_t *ns);

/*
 * --verify. Direction 0 is client -> server, 1 server -> client; each has
 * its own pattern (perf_pattern_fill, seeded by size and direction), and
 * every payload starts with an 8-byte stamp (iteration + 1, little-endian,
 * truncated for smaller payloads), so a stale or reordered message fails.
 * perf_lib_verify_size fills the reference patterns and buffers
 * [first, first + count) with direction dir's pattern (nothing without --verify).
 */
int perf_lib_verify_size(struct perf_lib *L, uint64_t size, int first, int count, int dir);
void perf_lib_stamp(uint8_t *p, uint64_t size, uint64_t i);
int perf_lib_check(const struct perf_lib *L, const uint8_t *p, uint64_t size, int dir, uint64_t i,
		   const char *what);

/*
 * Up to max zero-copy completions: zc_poll waiting at most
 * PERF_LIB_SLICE_MS the library's way (busy_poll_us: busy mode spins the
 * whole slice, -e sleeps on the event fd). When nothing completed it checks
 * the stop flag and the control connection (a peer that gave up); a
 * completion with an error status is an error. Returns the count, or < 0.
 */
int perf_lib_poll(struct perf_lib *L, struct zc_completion *c, int max);

/*
 * For loops of ZC_DONTWAIT calls (stream and msg with -q > 1) after a sweep
 * over every connection made no progress: zc_wait_events() for at most
 * PERF_LIB_SLICE_MS, which returns at the first event (the library spins
 * busy_poll_us, then sleeps on its event fd). Checks the stop flag and the
 * peer like perf_lib_poll.
 * Returns 0 or < 0.
 */
int perf_lib_idle(struct perf_lib *L, uint64_t *idle);

/* The library's counters around a run (outside the timed part). */
void perf_lib_stats_begin(struct perf_lib *L);
void perf_lib_stats_end(struct perf_lib *L, uint64_t size);

/*
 * Bandwidth bookkeeping as perf_verbs_bw_post does it: a timestamp per
 * submission and per completion (completions counted cumulatively), the
 * exact peak up to PERF_PEAK_EXACT_MAX operations, windows beyond.
 */
struct perf_lib_bw {
	uint64_t n, exact;
	uint64_t *tposted, *tcompleted;
	uint64_t t0, t_last;
	struct perf_window win;
};

int perf_lib_bw_begin(struct perf_lib_bw *b, uint64_t n, uint64_t window);
void perf_lib_bw_posted(struct perf_lib_bw *b, uint64_t i);
/* total: operations complete so far (a later call for the same total moves its time). */
void perf_lib_bw_completed(struct perf_lib_bw *b, uint64_t total);
int perf_lib_bw_end(struct perf_lib_bw *b, uint64_t size, struct perf_result *r);
void perf_lib_bw_free(struct perf_lib_bw *b);

/* Latency as the raw-verbs loops: a stamp per iteration start, n - 1 intervals. */
struct perf_lib_lat {
	uint64_t n;
	uint64_t *stamp;
	uint64_t t0;
};

int perf_lib_lat_begin(struct perf_lib_lat *l, uint64_t n);
void perf_lib_lat_mark(struct perf_lib_lat *l, uint64_t i);
int perf_lib_lat_end(struct perf_lib_lat *l, uint64_t size, int rtt_factor, uint64_t bytes_per_iter,
		     struct perf_result *r);
void perf_lib_lat_free(struct perf_lib_lat *l);

/* Appends a loop's progress to the recorded error message; returns rc. */
int perf_lib_where(int rc, uint64_t submitted, uint64_t completed, uint64_t n);

/* Checks the stop flag: 0, or the error to return from a loop. */
int perf_lib_stopped(uint64_t done, uint64_t n);

#endif
