/*
 * Raw-verbs data path shared by the write, read and send tests: QPs connected
 * through rdma_cm, one buffer per QP split in two halves (local: what this
 * side posts from or reads into; exposed: what the peer writes, reads or sends
 * into), shared send and receive CQs, and bounded CQ waits.
 */
#ifndef ZC_PERF_VERBS_H
#define ZC_PERF_VERBS_H

#include <infiniband/verbs.h>
#include <stdint.h>

#include "perf_test.h"

#define PERF_POLL_BATCH 16 /* completions per ibv_poll_cq, like perftest */

struct perf_cqw {
	struct ibv_cq *cq;
	struct ibv_comp_channel *ch; /* -e only */
	int armed;
};

struct perf_vqp {
	struct rdma_cm_id *id;
	uint8_t *buf;            /* 2 * half bytes, page aligned */
	struct ibv_mr *mr;
	uint64_t raddr;          /* the peer's exposed half */
	uint32_t rkey;
	uint64_t rlen;
	uint64_t rposted;        /* receives posted in this run */
};

struct perf_verbs {
	struct perf_ctx *ctx;
	int nq;
	struct perf_vqp *q;
	struct perf_cqw scq, rcq;
	uint64_t half;           /* bytes per buffer half: ctx->max_size */
	int tx_depth, rx_depth;
	int inline_max;          /* sizes up to this are posted inline (-I) */
	int rd_atom;             /* negotiated outstanding RDMA reads */
};

static inline uint8_t *perf_vq_local(const struct perf_vqp *q)
{
	return q->buf;
}

static inline uint8_t *perf_vq_exposed(const struct perf_verbs *v, const struct perf_vqp *q)
{
	return q->buf + v->half;
}

/* Connects ctx->o->qps data QPs (use_recv: size the receive queues). */
int perf_verbs_setup(struct perf_ctx *ctx, int use_recv, int inline_size);
void perf_verbs_teardown(struct perf_ctx *ctx);

/*
 * Up to max completions. Busy mode: never blocks, may return 0. Event mode
 * (-e): sleeps on the completion channel for at most a short slice, so the
 * caller's loop still checks the stop flag and the peer. < 0 on error.
 */
int perf_cq_poll(struct perf_cqw *c, struct ibv_wc *wc, int max);

/* n receives of size bytes into q's exposed half. */
int perf_post_recvs(struct perf_verbs *v, struct perf_vqp *q, uint64_t size, int n);

/* What prepare does to each QP's buffer before a size. */
#define PERF_PREP_FILL_LOCAL 0x1   /* --verify: pattern in the local half */
#define PERF_PREP_FILL_EXPOSED 0x2 /* --verify: pattern in the exposed half */
#define PERF_PREP_ZERO_LOCAL 0x4
#define PERF_PREP_ZERO_EXPOSED 0x8
#define PERF_PREP_RECV 0x10        /* post min(rx depth, iterations) receives */

int perf_verbs_prepare(struct perf_ctx *ctx, uint64_t size, unsigned int what);

/* --verify: 0 if [0, len) of each QP's local or exposed half holds the pattern. */
int perf_verbs_check(struct perf_ctx *ctx, uint64_t size, uint64_t len, int exposed);

/* Payload pattern, by position and seed (size and QP index). */
void perf_pattern_fill(uint8_t *p, uint64_t len, uint32_t seed);
int64_t perf_pattern_check(const uint8_t *p, uint64_t len, uint32_t seed);
uint32_t perf_pattern_seed(uint64_t size, int qp);

/* Loops, in perf_verbs_bw.c and perf_verbs_lat.c. */
int perf_verbs_bw_post(struct perf_ctx *ctx, uint64_t size, enum ibv_wr_opcode op, struct perf_result *r);
int perf_verbs_bw_recv(struct perf_ctx *ctx, uint64_t size);
int perf_verbs_lat_send(struct perf_ctx *ctx, uint64_t size, struct perf_result *r);
int perf_verbs_lat_write(struct perf_ctx *ctx, uint64_t size, struct perf_result *r);
int perf_verbs_lat_read(struct perf_ctx *ctx, uint64_t size, struct perf_result *r);

#endif
