/*
 * Internal, layer 2 (queue-pair engine): one reliable-connected QP with its
 * pool of send requests, over the receive and send slots it shares with the
 * context's other QPs (pool.c).
 *
 * The engine knows nothing of protocols. Whoever posts a send request sets
 * its continuation (done), which runs when the request completes; arrivals
 * in receive slots, freed send-queue room and the QP's failure are reported
 * through the ops table of the layer above. Every field is written only by
 * qp.c and pool.c; the layers above read them.
 */
#ifndef ZC_QP_H
#define ZC_QP_H

#include "credit.h"
#include "dev.h"
#include "slab.h"

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
	uint32_t tx; /* staging slot of the send pool, or ZC__NO_TX */
	/* Set by the poster when nothing waits for this request (no done):
	 * it may go unsignaled (zc__qp_post_send). */
	bool quiet;
	/* Set by the poster: the NIC starts it only once every request
	 * posted before it has completed (IBV_SEND_FENCE; zc__qp_send). */
	bool fence;
};
#define ZC__NO_TX UINT32_MAX

/* A send work request held for the next doorbell (zc__qp_hold): a copy,
 * with the one SGE a raw QP's requests carry at most. */
struct zc__held {
	struct ibv_send_wr wr;
	struct ibv_sge sge;
};
/* Held on a QP at most; one more posts them first. */
#define ZC__HELD_MAX 16

/* A receive slot's work request. */
struct zc__rslot {
	struct zc__wr wr;
	struct zc__rxpool *pool;
	uint32_t idx;
};

/*
 * Receive slots: posted to a shared receive queue for every QP of the
 * context, or (owner set: the device has no SRQ, or the context was asked
 * for none) to one QP's own receive queue. The budget (credit.h) counts
 * the slots promised to connections; fill() posts at least that many.
 */
struct zc__rxpool {
	struct zc_ctx *ctx;
	struct ibv_srq *srq;
	struct zc__qp *owner;
	void (*deliver)(struct zc__qp *q, uint32_t slot, const struct ibv_wc *wc);
	struct zc__slab slab;
	/* one array per slab chunk: posted work requests point into them, so
	 * they never move when the pool grows */
	struct zc__rslot **slots;
	struct zc__rx_budget budget;
	uint32_t posted;          /* slots in the receive queue now */
	struct zc__qp **map;      /* shared: qp_num -> QP, open addressing */
	uint32_t map_cap, map_count;
};

/* Staging slots for sends that cannot go inline, lent per send request. */
struct zc__txpool {
	struct zc__slab slab;
	uint32_t *free;
	uint32_t n_free;
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
	/* receive slots: the context's shared pool, or this QP's own */
	struct zc__rxpool *rx;
	bool rx_own;
	uint32_t own_slots;       /* per-QP pool: its size */
	/* send requests */
	uint32_t depth;
	struct zc__sreq *sreq;
	uint32_t *sreq_free;
	uint32_t sreq_free_count, sq_inflight;
	/* the requests in flight in posting order (a ring of depth, oldest
	 * at sq_head), and how many were posted unsignaled since the last
	 * signaled one */
	uint32_t *sq_ring;
	uint32_t sq_head, unsignaled_run;
	/* completions seen (dead-peer detection reads it) */
	uint64_t activity;
	bool probe_inflight;
	/* A raw QP (zc__qp_init_raw): no slots at all, a receive queue of
	 * its own that the layer above posts to, and completion-queue
	 * entries of its own (cq_held), so its send requests do not count
	 * against the context's shared send room. */
	bool raw;
	uint32_t recv_depth, rq_inflight;
	int cq_held;
	/* Raw QPs: send work requests accepted with more to follow
	 * (zc__qp_hold), oldest first, which the NIC has not seen yet; while
	 * there are any, held_node is on the context's held list. */
	struct zc__held *held;
	uint32_t n_held;
	struct zc__list held_node;
};

/* pool.c: the receive pool (owner NULL: shared, on an SRQ) */
/* deliver: where a completion of a slot goes, with the QP it names. */
int zc__rxpool_open(struct zc__rxpool **out, struct zc_ctx *ctx, uint32_t slot_size, struct zc__qp *owner,
		    uint32_t soft_max, uint32_t hard_max,
		    void (*deliver)(struct zc__qp *q, uint32_t slot, const struct ibv_wc *wc));
void zc__rxpool_close(struct zc__rxpool *p);
/* Posts slots until the pool holds every slot its budget promised. */
int zc__rxpool_fill(struct zc__rxpool *p);
/* Posts the slot again; an error on a QP's own queue is for the caller to
 * fail the QP with. */
int zc__rxpool_repost(struct zc__rxpool *p, uint32_t slot);
uint8_t *zc__rxpool_addr(const struct zc__rxpool *p, uint32_t slot);
/* Completions of the shared queue find their QP by number. */
int zc__rxpool_attach(struct zc__rxpool *p, struct zc__qp *q);
void zc__rxpool_detach(struct zc__rxpool *p, struct zc__qp *q);
/* pool.c: the send staging pool */
int zc__txpool_open(struct zc__txpool **out, struct zc_ctx *ctx, uint32_t slot_size);
void zc__txpool_close(struct zc__txpool *t);
int zc__txpool_get(struct zc__txpool *t, uint32_t *slot);
void zc__txpool_put(struct zc__txpool *t, uint32_t slot);

/* The context's pools, created on first use; slot_size bytes per slot
 * (header included). */
int zc__ctx_pools(struct zc_ctx *ctx);
void zc__ctx_pools_close(struct zc_ctx *ctx);

/* Fills the attributes rdma_create_qp() needs: on the context's shared
 * receive queue, or with a receive queue of own_slots where there is none. */
int zc__qp_init_attr(struct zc__qp *q, struct zc_ctx *ctx, uint32_t own_slots, uint32_t depth,
		     struct ibv_qp_init_attr *attr);
/* Likewise for a raw QP: no slots, a receive queue of recv_depth, and
 * send_depth + recv_depth entries of the context's CQ reserved (-ENOSPC
 * when it cannot grow that far). */
int zc__qp_init_raw(struct zc__qp *q, struct zc_ctx *ctx, uint32_t send_depth, uint32_t recv_depth,
		    struct ibv_qp_init_attr *attr);
/* The QP exists (on id): the send requests, the QP's own receive pool if
 * it has one, its entry in the shared pool's table otherwise. */
int zc__qp_setup(struct zc__qp *q, struct rdma_cm_id *id, const struct zc__qp_ops *ops);
/* Frees what setup made and destroys the QP; every work request must have
 * been reaped (drain) and every window bound on it deallocated. Leaves q
 * zeroed. */
void zc__qp_release(struct zc__qp *q);
void zc__qp_set_connected(struct zc__qp *q);

uint8_t *zc__qp_rx_slot(const struct zc__qp *q, uint32_t slot);
int zc__qp_post_recv(struct zc__qp *q, uint32_t slot);
/* A message arrived for q in receive slot `slot` (pool.c). */
void zc__qp_recv_done(struct zc__qp *q, uint32_t slot, const struct ibv_wc *wc);
/* n send requests can be taken now: the QP has them free, and the
 * context's completion queue has room for their completions. */
bool zc__sreq_avail(const struct zc__qp *q, uint32_t n);
/* A free send request (its continuation cleared), or -EAGAIN where
 * zc__sreq_avail(q, 1) is false. */
int zc__sreq_get(struct zc__qp *q);
void zc__sreq_put(struct zc__qp *q, uint32_t i);
/* Posts wr (one work request, whose wr_id names a send request) behind
 * the held ones, all with one doorbell; a failure fails the QP, and the
 * held requests it did not post complete with the error (wr does not: it
 * is the caller's again). The engine sets IBV_SEND_SIGNALED: quiet
 * requests, and on a raw QP every request of a doorbell but its last
 * (whose completion retires them), go without it. */
int zc__qp_post_send(struct zc__qp *q, struct ibv_send_wr *wr);
/* Accepts wr (as zc__qp_post_send) without ringing: it goes out with the
 * next post, or the context's next progress (zc__qp_post_held). A QP
 * that cannot hold (not raw) posts it at once. */
int zc__qp_hold(struct zc__qp *q, struct ibv_send_wr *wr);
/* Posts what the QP holds, if anything (same failure rule). */
int zc__qp_post_held(struct zc__qp *q);
/* The context's held_hook: posts what every QP holds. */
void zc__qp_post_all_held(struct zc_ctx *ctx);
/* No send request is held or in flight (held ones are posted first).
 * Where the last ones posted wait for a completion that is not coming
 * (unsignaled), posts a zero-length WRITE to bring one. */
bool zc__qp_sq_idle(struct zc__qp *q);
/* Sends hdr (hdr_len may be 0) followed by len bytes of payload with send
 * request i: inline when it fits (nothing is copied by us), else copied
 * into a staging slot. ex is the rkey SEND_WITH_INV invalidates, or the
 * immediate data (network byte order) of SEND_WITH_IMM. first (or NULL):
 * requests of the caller's (a chain) that go ahead of it in the same
 * doorbell. */
int zc__qp_send(struct zc__qp *q, struct ibv_send_wr *first, int i, const void *hdr, uint32_t hdr_len,
		const void *payload, uint32_t len, enum ibv_wr_opcode opcode, uint32_t ex);
/* A raw QP's receive work requests, whose wr_id the poster owns: posted
 * (a failure fails the QP), and the status of one that completed (0, or
 * the error; an unexpected failure fails the QP). */
int zc__qp_post_rwr(struct zc__qp *q, struct ibv_recv_wr *wr);
int zc__qp_rwr_status(struct zc__qp *q, const struct ibv_wc *wc);
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
/* Every work request of the QP has been reaped (or it has none); asks for
 * the completion that retires unsignaled ones (zc__qp_sq_idle). */
bool zc__qp_drained(struct zc__qp *q);

#endif
