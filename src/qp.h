/*
 * Internal, layer 2 (queue-pair engine): one reliable-connected QP with its
 * receive slots, its registered send ring and its pool of send requests.
 *
 * The engine knows nothing of protocols. Whoever posts a send request sets
 * its continuation (done), which runs when the request completes; arrivals
 * in receive slots, freed send-queue room and the QP's failure are reported
 * through the ops table of the layer above. Every field is written only by
 * qp.c; the layers above read them.
 */
#ifndef ZC_QP_H
#define ZC_QP_H

#include "dev.h"

struct zc__qp;
struct zc__sreq;

struct zc__qp_ops {
	/* A message arrived in receive slot `slot` (the QP is alive). */
	void (*recv)(struct zc__qp *q, uint32_t slot, const struct ibv_wc *wc);
	/* A completion was handled and the QP is alive: send-queue room or
	 * READ depth may have freed for work that waits for it. */
	void (*progress)(struct zc__qp *q);
	/* The QP failed with err (zc__qp_fail): give every pending operation
	 * back. Runs once. */
	void (*failed)(struct zc__qp *q, int err);
};

/* A send work request in flight. done, set by the poster, runs on its
 * completion with 0 or the error; the request returns to the pool after. */
struct zc__sreq {
	struct zc__wr wr;
	struct zc__qp *qp;
	uint32_t idx;
	void (*done)(struct zc__qp *q, struct zc__sreq *s, int status);
	/* for the poster's continuation */
	uint8_t op;
	uint64_t token;
	uint64_t len;
	struct zc__rcache_entry *entry;
	void *arg;
};

/* A receive slot's work request. */
struct zc__rwr {
	struct zc__wr wr;
	struct zc__qp *qp;
	uint32_t slot;
};

struct zc__qp {
	struct zc_ctx *ctx;
	struct ibv_qp *qp;
	struct rdma_cm_id *id;    /* the QP's rdma_cm id: disconnected on failure */
	const struct zc__qp_ops *ops;
	bool connected;           /* established: a failure disconnects */
	bool dead;                /* failed, or being torn down */
	int err;                  /* sticky: why it is dead */
	char detail[256];         /* zc_last_error() text behind err */
	/* receive slots */
	uint32_t slot_size, n_slots;
	uint8_t *rx_buf;
	struct ibv_mr *rx_mr;
	struct zc__rwr *rx_wr;
	uint32_t rx_posted;
	/* send ring: one slot per send request */
	uint32_t depth;
	uint8_t *tx_buf;
	struct ibv_mr *tx_mr;
	struct zc__sreq *sreq;
	uint32_t *sreq_free;
	uint32_t sreq_free_count, sq_inflight;
	/* completions seen (dead-peer detection reads it) */
	uint64_t activity;
	bool probe_inflight;
};

/* Reserves CQ room for n_slots receives and depth sends, and fills the
 * attributes rdma_create_qp() needs. */
int zc__qp_init_attr(struct zc__qp *q, struct zc_ctx *ctx, uint32_t n_slots, uint32_t depth, uint32_t slot_size,
		     struct ibv_qp_init_attr *attr);
/* The QP exists (on id): allocates and registers the buffers, posts every
 * receive slot. */
int zc__qp_setup(struct zc__qp *q, struct rdma_cm_id *id, const struct zc__qp_ops *ops);
/* Frees the buffers; every work request must have been reaped (drain). */
void zc__qp_release(struct zc__qp *q);
void zc__qp_set_connected(struct zc__qp *q);

uint8_t *zc__qp_rx_slot(const struct zc__qp *q, uint32_t slot);
uint8_t *zc__qp_tx_slot(const struct zc__qp *q, uint32_t i);
int zc__qp_post_recv(struct zc__qp *q, uint32_t slot);
/* A free send request (its continuation cleared), or -EAGAIN. */
int zc__sreq_get(struct zc__qp *q);
void zc__sreq_put(struct zc__qp *q, uint32_t i);
/* Posts wr (whose wr_id names send requests); a failure fails the QP. */
int zc__qp_post_send(struct zc__qp *q, struct ibv_send_wr *wr);
/* Sends len bytes staged in send request i's ring slot. */
int zc__qp_post_staged(struct zc__qp *q, int i, uint32_t len, enum ibv_wr_opcode opcode, uint32_t inv_rkey);
/* A zero-length RDMA WRITE: a dead peer fails it once retries run out. */
int zc__qp_probe(struct zc__qp *q);

/* Fails the QP: records err and its detail, disconnects, reports through
 * ops->failed. Returns err (or the earlier error). */
int zc__qp_fail(struct zc__qp *q, int err);
/* q->err, with zc_last_error() set to the detail recorded with it. */
int zc__qp_error(struct zc__qp *q);
/* Moves the QP to ERROR and reaps every work request it still holds, so no
 * completion can name it after it is freed. */
void zc__qp_drain(struct zc__qp *q, int timeout_ms);
/* The first half of zc__qp_drain, which never waits: marks the QP dead and
 * moves it to ERROR; its work requests then flush as progress polls. */
void zc__qp_flush(struct zc__qp *q);
/* Every work request of the QP has been reaped (or it has none). */
bool zc__qp_drained(const struct zc__qp *q);

#endif
