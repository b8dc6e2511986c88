/*
 * What a zc_perf test is: a named set of callbacks the driver (perf_main.c)
 * calls on both sides. Adding a test means one new file defining a
 * `const struct perf_test` and one line in perf_tests.c.
 *
 * Per process:   validate -> setup -> { per size: prepare, barrier, run, check } -> teardown
 * Per size the driver: calls prepare (post receives, reset buffers), meets
 * the peer at a barrier, measures getrusage() around run, then the client
 * sends its result (DONE) and the server answers with its status after
 * check (ACK). The client's run fills the result; the server's run does its
 * side of the work (or nothing, for one-sided verbs) and returns, and the
 * driver then waits for DONE. A server loop whose length the client decides
 * (duration mode) polls perf_peer_check() to learn that the client is done.
 *
 * Library tests (perf_lib.h) set .library and may add lines to the header
 * and after the table; .skip leaves out sizes a mode cannot run (both sides
 * decide alike from the options they agreed on).
 */
#ifndef ZC_PERF_TEST_H
#define ZC_PERF_TEST_H

#include <infiniband/verbs.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "perf_cm.h"
#include "perf_ctrl.h"
#include "perf_opts.h"
#include "perf_stats.h"
#include "perf_wire.h"

struct perf_devinfo {
	char name[64];
	int port;
	int mtu;           /* bytes, active */
	const char *link;  /* "Ethernet" or "InfiniBand" */
	int gid_index;     /* the GID rdma_cm uses, -1 if not found */
	char local[80];    /* address:port of the control connection */
	char remote[80];
};

struct perf_result {
	uint64_t size;
	uint64_t iters;       /* operations completed, all QPs */
	uint64_t bytes;       /* payload bytes moved, both directions: for CPU per GB */
	double seconds;       /* measured interval */
	struct perf_bw bw;    /* bytes/s and messages/s */
	int peak_valid;
	int has_lat;
	struct perf_lat lat;
	double cpu_user, cpu_sys;           /* this side, seconds */
	int has_peer_cpu;
	double peer_cpu_user, peer_cpu_sys; /* the other side's, from the control exchange */
	int has_reg;                        /* library tests: registration work in the interval */
	uint64_t regs, peer_regs;           /* registrations + deregistrations, this side / the other */
	double reg_s, peer_reg_s;           /* seconds spent in them */
};

struct perf_test;

struct perf_ctx {
	const struct perf_opts *o;
	const struct perf_test *test;
	int is_server;
	struct perf_cm cm;
	struct perf_ctrl ctrl;
	struct ibv_context *verbs; /* device of the control connection */
	struct ibv_pd *pd;
	struct perf_devinfo dev;
	uint64_t max_size;         /* largest size any run uses */
	int inline_size;           /* what setup got for inline data, for the header */
	int rx_depth;              /* receive queue depth setup used, 0: none */
	int peer_done;             /* DONE arrived while the server ran */
	struct perf_msg done;
	int failed;                /* set before teardown when the run failed */
	void *priv;                /* the test's own state */
};

struct perf_test {
	const char *name;  /* --test=NAME */
	const char *title; /* header: "RDMA_Write" -> "RDMA_Write BW Test" */
	const char *about; /* one line for the test list */
	/* Optional: refuse option combinations this test cannot run. */
	int (*validate)(const struct perf_opts *o, char *err, size_t errlen);
	/* Data path up, buffers for ctx->max_size. 0 or negative errno (perf_err). */
	int (*setup)(struct perf_ctx *ctx);
	/* Optional: before the barrier of each size. */
	int (*prepare)(struct perf_ctx *ctx, uint64_t size);
	int (*run_bw)(struct perf_ctx *ctx, uint64_t size, struct perf_result *r);
	int (*run_lat)(struct perf_ctx *ctx, uint64_t size, struct perf_result *r);
	/* Optional: --verify's payload check after a size, on each side. */
	int (*check)(struct perf_ctx *ctx, uint64_t size);
	void (*teardown)(struct perf_ctx *ctx);
	int library;       /* goes through libzcrdma rather than raw verbs */
	/* Optional: 1 (and why) to leave this size out, 0 to run it. */
	int (*skip)(const struct perf_ctx *ctx, uint64_t size, char *why, size_t whylen);
	/* Optional: extra header lines (after setup) and lines after the table. */
	void (*header)(const struct perf_ctx *ctx, FILE *f);
	void (*footer)(const struct perf_ctx *ctx, FILE *f);
};

/* NULL-terminated table, in perf_tests.c. */
extern const struct perf_test *const perf_tests[];

const struct perf_test *perf_test_find(const char *name);

/*
 * For server loops: 1 once the client's DONE has arrived (kept in ctx->done),
 * 0 if not yet, negative errno if the peer aborted or vanished. Cheap enough
 * to call every few thousand idle polls.
 */
int perf_peer_check(struct perf_ctx *ctx);

#endif
