/* Internal: the objects behind the public handles, shared by src/ files. */
#ifndef ZC_INTERNAL_H
#define ZC_INTERNAL_H

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include <stdbool.h>
#include <stdint.h>

#include "zcrdma.h"
#include "credit.h"
#include "list.h"
#include "rcache.h"
#include "wire.h"

enum zc_obj_kind { ZC_OBJ_LISTENER = 1, ZC_OBJ_CONN };

/* A work request's identity: wr_id points at one of these. */
enum zc_wr_kind { ZC_WR_RECV = 1, ZC_WR_SEND, ZC_WR_READ, ZC_WR_RMA, ZC_WR_MW, ZC_WR_PROBE };
struct zc_wr {
	struct zc_conn *conn;
	uint8_t kind;
	uint32_t idx;
};

struct zc_ctx {
	struct zc_ctx_opts opts;
	struct rdma_event_channel *cm_ch;
	struct rdma_cm_id *bind_id; /* holds the device for the local address */
	struct sockaddr_storage local;
	struct ibv_context *verbs;
	struct ibv_pd *pd;
	struct ibv_comp_channel *comp_ch;
	struct ibv_cq *cq;
	int cq_reserved;
	/* CQ notification: armed, the next completion raises an event on
	 * comp_ch; fired, a completion was polled while armed, so an event
	 * may be (or soon be) on the channel and must be consumed. */
	bool cq_armed, cq_fired;
	bool bind_needs_idle_sq; /* see zc_ctx_new's device query */
	uint64_t read_chunk;     /* largest rendezvous READ, likewise */
	unsigned idle_polls;
	int epfd;
	struct zc_caps caps;
	struct zc_rcache *rcache;
	struct zc_stats stats;
	unsigned n_mrs;
	bool logged_fallback;
	struct zc_list conns;         /* every live connection, freed with the context */
	struct zc_list listeners;
	struct zc_completion *done;   /* reaped by zc_poll(): a ring */
	unsigned done_cap, done_head, done_count, zc_outstanding;
};

struct zc_mr {
	struct zc_ctx *ctx;
	struct ibv_mr *mr;
	int access;
	int ibv_access; /* what the registration got (see zc_reg_local) */
	unsigned exports;
};

/* A registration-cache entry's handle. */
struct zc_reg {
	struct ibv_mr *mr;
	int ibv_access;
};

/* Where a message that arrived waits for the application. */
enum zc_item_kind { ZC_ITEM_EAGER = 1, ZC_ITEM_RTS, ZC_ITEM_CLOSE };
/*
 * The RDMA READ round that pulls [off, off + want) of an RTS into dst:
 *   IDLE      no round: the item waits for a reader
 *   POSTING   pieces left to post; waits for READ depth or send-queue room
 *   DRAINING  nothing more to post (all posted, or the round failed); waits
 *             for the pieces in flight
 *   DONE      nothing in flight; status says how it ended. A SYNC reader (a
 *             blocked zc_recv) ends the round; a POSTED one (zc_recv_zc) is
 *             ended by zc_read_advance() itself.
 * zc_read_advance() is the only function that moves it: called when the
 * round starts, on each READ completion, whenever send-queue room frees,
 * and when the connection fails.
 */
enum zc_read_state { ZC_READ_IDLE = 0, ZC_READ_POSTING, ZC_READ_DRAINING, ZC_READ_DONE };
enum zc_reader { ZC_READER_SYNC = 1, ZC_READER_POSTED };
struct zc_item {
	uint8_t kind;
	bool inv;        /* RTS: the rkey is a window FIN must invalidate */
	uint8_t rstate;  /* enum zc_read_state */
	uint8_t reader;  /* who waits for the round */
	uint32_t slot;   /* receive slot held (EAGER, RTS) */
	uint32_t id;     /* RTS: the sender's rendezvous id */
	uint32_t rkey;   /* RTS: key of the sender's buffer */
	uint64_t off;    /* bytes already consumed */
	uint64_t len;    /* payload length */
	uint64_t raddr;  /* RTS: the sender's buffer */
	/* the RDMA READ round in progress: [off, off + want) into dst */
	uint8_t *dst;
	uint32_t dst_lkey;
	struct zc_rcache_entry *dst_entry;
	uint64_t want, posted;
	uint32_t reads;
	int status;
};

/* A buffer posted by zc_recv_zc(). */
struct zc_posted {
	void *buf;
	size_t len;
	struct zc_rcache_entry *entry;
	struct zc_mr *mr;
	uint64_t token;
};

/* A zero-copy send waiting for a credit or send-queue room. */
struct zc_zsend {
	const void *buf;
	size_t len;
	struct zc_mr *mr;
	uint64_t token;
};

/* Our side of a rendezvous: a buffer exposed to the peer until its FIN. */
enum zc_rndv_owner { ZC_RNDV_FREE = 0, ZC_RNDV_USER, ZC_RNDV_BLOCKING };
struct zc_rndv {
	uint8_t owner;
	uint16_t gen;
	bool done;
	int status;
	uint64_t token;
	uint64_t len;
	struct ibv_mw *mw;              /* window, kept for rebinding */
	uint32_t rkey;                  /* what the peer was given */
	struct ibv_mr *fallback_mr;     /* per-transfer MR where windows are off */
	struct zc_rcache_entry *entry;
};

/* A send-queue work request in flight. */
struct zc_sreq {
	int32_t tx_slot;   /* send-ring slot to free, or -1 */
	uint8_t op;        /* enum zc_op when it completes a zero-copy send/RMA */
	uint64_t token;
	uint64_t len;
	struct zc_rcache_entry *entry;
	struct zc_wr wr;
	uint32_t rma;      /* for RMA pieces: index of the op they belong to */
};

/* A one-sided operation split into RDMA pieces. */
struct zc_rma_op {
	bool busy;
	uint8_t op;
	uint32_t pieces;
	int status;
	uint64_t token;
	uint64_t len;
	struct zc_rcache_entry *entry;
};

/* A FIN that found the send queue full. Its RTS slot stays held until the
 * FIN is posted, so the FIN is what advertises that slot's credit. */
struct zc_fin {
	uint32_t id, rkey, slot;
};

/* A range of a region granted to one connection's peer (rma.c). */
struct zc_export {
	struct zc_conn *conn; /* NULL once the connection is gone */
	struct zc_list node;  /* on conn->exports */
	struct zc_mr *mr;
	struct ibv_mw *mw;
	struct ibv_mr *fallback_mr;
	uint32_t rkey;
	bool bind_pending;
	int status;
};

enum zc_conn_state { ZC_CONN_SETUP = 1, ZC_CONN_OPEN, ZC_CONN_DEAD };

struct zc_conn {
	int kind; /* ZC_OBJ_CONN: first, as rdma_cm contexts are tagged by it */
	struct zc_ctx *ctx;
	void *data;            /* the application's (zc_conn_set_data) */
	struct zc_list node;   /* on ctx->conns */
	struct rdma_cm_id *id;
	struct ibv_qp *qp;
	struct zc_conn_opts opts;
	uint32_t credits;      /* negotiated: min of both sides, used both ways */
	enum zc_conn_state state;
	int err;               /* sticky: why the connection is dead */
	char detail[256];      /* zc_last_error() text behind err */
	bool peer_closed;      /* CLOSE consumed by the application */
	bool close_sent;
	bool close_received;   /* CLOSE arrived: a disconnect after it is orderly */
	bool disconnected;
	int cm_event;          /* last rdma_cm event for this id while setting up */
#define ZC_CM_NONE (-1)        /* (RDMA_CM_EVENT_ADDR_RESOLVED is 0) */
	int cm_status;
	struct zc_priv peer;   /* the peer's connection parameters */

	/* receive side */
	uint32_t slot_size, n_slots;
	uint8_t *rx_buf;
	struct ibv_mr *rx_mr;
	struct zc_wr *rx_wr;
	uint32_t rx_posted;
	struct zc_item *items;  /* FIFO of arrived messages */
	uint32_t item_head, item_count, items_cap;
	uint32_t held;          /* data slots held by items */
	struct zc_posted *posted;
	uint32_t posted_head, posted_count, posted_cap;

	/* send side */
	size_t eager_max;       /* payload bytes the peer's slots take */
	uint32_t tx_slot_size, n_tx;
	uint8_t *tx_buf;
	struct ibv_mr *tx_mr;
	uint32_t *tx_free;
	uint32_t tx_free_count;
	struct zc_sreq *sreq;
	uint32_t *sreq_free;
	uint32_t sreq_free_count, sq_inflight;
	uint8_t *ctl_hdr;       /* registered headers for control messages and RTS */
	struct ibv_mr *ctl_mr;
	struct zc_credit cr;
	struct zc_rndv *rndv;   /* indexed by id & 0xffff */
	uint32_t n_rndv;
	struct zc_rma_op *rma;
	uint32_t n_rma;
	uint32_t reads_inflight, max_reads;
	struct zc_list exports;
	/* dead-peer detection: completions seen, and when that last changed */
	uint64_t activity, activity_seen;
	int64_t quiet_since;
	bool probe_inflight;
	struct zc_zsend *zq;    /* zero-copy sends queued in submission order */
	uint32_t zq_head, zq_count, zq_cap;
	struct zc_fin *fin_queue; /* FINs waiting for send-queue room */
	uint32_t fin_head, fin_count;
};

struct zc_pending {
	struct rdma_cm_id *id;
	uint8_t priv[ZC_PRIV_SIZE];
	uint8_t priv_len;
};

struct zc_listener {
	int kind; /* ZC_OBJ_LISTENER */
	struct zc_ctx *ctx;
	struct zc_list node;   /* on ctx->listeners */
	struct rdma_cm_id *id;
	struct zc_conn_opts opts;
	struct zc_pending *pending;
	unsigned pending_head, pending_count, backlog;
};

/* ctx.c */
int zc_ctx_progress(struct zc_ctx *ctx);
int zc_ctx_poll_cq(struct zc_ctx *ctx);
int zc_ctx_wait(struct zc_ctx *ctx, int timeout_ms);
int zc_ctx_rearm(struct zc_ctx *ctx);
int zc_ctx_reserve_cq(struct zc_ctx *ctx, int entries);
void zc_ctx_release_cq(struct zc_ctx *ctx, int entries);
int zc_ctx_room(struct zc_ctx *ctx);
int zc_ctx_complete(struct zc_ctx *ctx, struct zc_conn *conn, uint64_t token, int op, int status, size_t len);
void zc_ctx_forget_conn(struct zc_ctx *ctx, const struct zc_conn *conn);
int64_t zc_now_ms(void);
int64_t zc_now_ns(void);
int zc_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss);
int zc_remaining_ms(int64_t deadline);

/* mr.c */
int zc_memlock_check(struct zc_ctx *ctx, size_t len);
void zc_dereg_mr(struct zc_ctx *ctx, struct ibv_mr *mr);
void zc_dealloc_mw(struct zc_ctx *ctx, struct ibv_mw *mw);
struct ibv_mr *zc_reg_mr(struct zc_ctx *ctx, void *addr, size_t len, int ibv_access, int *err);
/* The registration for [buf, buf+len): mr if given, else a cache entry
 * (*entry, to be put). write: the NIC will write into it. */
int zc_reg_for(struct zc_ctx *ctx, const void *buf, size_t len, struct zc_mr *mr, bool write, struct ibv_mr **reg,
	       int *ibv_access, struct zc_rcache_entry **entry);
int zc_lkey_for(struct zc_ctx *ctx, const void *buf, size_t len, struct zc_mr *mr, bool write, uint32_t *lkey,
		struct zc_rcache_entry **entry);
/* Registers for local use with local write and window binding where the
 * pages allow; read-only pages (a PROT_READ file mapping) get neither, as
 * the kernel counts window binding as write access. *ibv_access says what
 * was granted. */
struct ibv_mr *zc_reg_local(struct zc_ctx *ctx, void *addr, size_t len, int *ibv_access, int *err);
void zc_entry_put(struct zc_ctx *ctx, struct zc_rcache_entry *entry);

/* cm.c */
/* Handles every pending rdma_cm event; returns how many. */
int zc_cm_process(struct zc_ctx *ctx);

/* qp.c: the queue-pair engine */
int zc_conn_resources(struct zc_conn *conn, const struct zc_priv *peer);
void zc_conn_release(struct zc_conn *conn);
int zc_qp_init_attr(struct zc_conn *conn, struct ibv_qp_init_attr *attr);
void zc_local_priv(const struct zc_conn *conn, struct zc_priv *p);
int zc_post_recv(struct zc_conn *conn, uint32_t slot);
int zc_sreq_get(struct zc_conn *conn);
void zc_sreq_put(struct zc_conn *conn, uint32_t i);
int zc_post_send_wr(struct zc_conn *conn, struct ibv_send_wr *wr);
void zc_handle_wc(struct zc_ctx *ctx, const struct ibv_wc *wc);
int zc_conn_fail(struct zc_conn *conn, int err);
/* conn->err, with zc_last_error() set to the detail recorded with it. */
int zc_conn_error(struct zc_conn *conn);
int zc_conn_check(struct zc_conn *conn);
void zc_conn_drain(struct zc_conn *conn, int timeout_ms);
int zc_conn_wait(struct zc_conn *conn);
int zc_conn_keepalive(struct zc_conn *conn);

/* xfer.c: eager and rendezvous protocols */
int zc_send_ctl(struct zc_conn *conn, uint8_t type, uint32_t id, uint32_t inv_rkey);
int zc_send_eager(struct zc_conn *conn, const void *buf, size_t len, uint8_t op, uint64_t token);
int zc_send_rndv(struct zc_conn *conn, const void *buf, size_t len, struct zc_mr *mr, uint8_t owner,
		 uint64_t token, uint32_t *idx);
void zc_on_recv(struct zc_conn *conn, uint32_t slot, const struct ibv_wc *wc);
void zc_on_read_done(struct zc_conn *conn, int status);
void zc_read_advance(struct zc_conn *conn, struct zc_item *it);
int zc_item_start_read(struct zc_conn *conn, struct zc_item *it, void *buf, size_t len, struct zc_mr *mr,
		       uint8_t reader);
void zc_item_end_read(struct zc_conn *conn, struct zc_item *it);
void zc_item_pop(struct zc_conn *conn);
size_t zc_item_copy(struct zc_conn *conn, struct zc_item *it, void *buf, size_t len);
void zc_match_posted(struct zc_conn *conn);
void zc_flush_ctl(struct zc_conn *conn);
void zc_rndv_fail_all(struct zc_conn *conn, int err);
int zc_zsend_post(struct zc_conn *conn, const struct zc_zsend *z);
void zc_zq_drain(struct zc_conn *conn);
void zc_fail_pending(struct zc_conn *conn, int err);

/* rma.c */
void zc_exports_orphan(struct zc_conn *conn);
void zc_export_bound(struct zc_export *exp, int status);

static inline struct zc_item *zc_item_head(struct zc_conn *c)
{
	return c->item_count ? &c->items[c->item_head] : NULL;
}

#endif
