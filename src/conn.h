/*
 * Internal, layer 4 (the API): connections and listeners (cm.c), a
 * connection's state checks and waits (conn.c), the application's transfer
 * calls (stream.c), one-sided RMA (rma.c) and the context's public calls
 * (ctx.c).
 */
#ifndef ZC_CONN_H
#define ZC_CONN_H

#include "proto.h"

enum zc__obj_kind { ZC_OBJ_LISTENER = 1, ZC_OBJ_CONN };

/* A one-sided operation split into RDMA pieces (rma.c). */
struct zc__rma_op {
	bool busy;
	uint8_t op;
	uint32_t pieces;
	int status;
	uint64_t token;
	uint64_t len;
	struct zc__rcache_entry *entry;
};

/* A range of a region granted to one connection's peer (rma.c). */
struct zc_export {
	struct zc_conn *conn; /* NULL once the connection is gone */
	struct zc__list node;  /* on conn->exports */
	struct zc_mr *mr;
	struct ibv_mw *mw;
	struct ibv_mr *fallback_mr;
	uint32_t rkey;
	bool bind_pending;
	int status;
};

enum zc__conn_state { ZC_CONN_SETUP = 1, ZC_CONN_OPEN };

/* cm.c writes every field but the RMA ones (rma.c) and ep (xfer.c). */
struct zc_conn {
	int kind; /* ZC_OBJ_CONN: first, as rdma_cm contexts are tagged by it */
	struct zc_ctx *ctx;
	void *data;            /* the application's (zc_conn_set_data) */
	struct zc__list node;   /* on ctx->conns */
	struct rdma_cm_id *id;
	struct zc_conn_opts opts;
	enum zc__conn_state state;
	bool disconnected;
	int cm_event;          /* last rdma_cm event for this id while setting up */
#define ZC_CM_NONE (-1)        /* (RDMA_CM_EVENT_ADDR_RESOLVED is 0) */
	int cm_status;
	uint8_t cm_rej;        /* a REJECTED's zcrdma reason (wire.h), 0 if none */
	char cm_detail[256];   /* zc_last_error() text behind a failed cm_status */
	struct zc__priv peer;   /* the peer's connection parameters */
	/* dead-peer detection: completions seen, and when that last changed */
	uint64_t activity_seen;
	int64_t quiet_since;
	/* one-sided RMA (rma.c) */
	struct zc__rma_op *rma;
	uint32_t n_rma;
	struct zc__list exports;
	struct zc__ep ep;
};

struct zc__pending {
	struct rdma_cm_id *id;
	uint8_t priv[ZC_PRIV_SIZE];
	uint8_t priv_len;
};

struct zc_listener {
	int kind; /* ZC_OBJ_LISTENER */
	struct zc_ctx *ctx;
	struct zc__list node;   /* on ctx->listeners */
	struct rdma_cm_id *id;
	struct zc_conn_opts opts;
	struct zc__pending *pending;
	unsigned pending_head, pending_count, backlog;
};

/* cm.c */
/* Handles every pending rdma_cm event of the context (its cm_hook). */
int zc__cm_process(struct zc_ctx *ctx);
/* Rejects a connection request, saying why (wire.h). */
void zc__cm_reject(struct rdma_cm_id *id, uint8_t reason);

/* conn.c */
/* 0 if the connection is open, else why not (with its detail). */
int zc__conn_check(struct zc_conn *conn);
/* Probes a quiet connection (see zc_conn_opts.keepalive_ms). */
int zc__conn_keepalive(struct zc_conn *conn);
/* The wait of a call blocked on conn (zc__ctx_wait_for): until cond(conn,
 * arg) returns non-zero (> 0 met, < 0 an error), the connection fails (its
 * error, after cond had its say), or deadline passes (-ETIMEDOUT, with
 * "timed out <what>" in zc_last_error()); ZC__NOWAIT gives -EAGAIN at
 * once. Quiet peers are probed meanwhile. */
int zc__conn_wait_for(struct zc_conn *conn, int (*cond)(struct zc_conn *conn, void *arg), void *arg,
		      int64_t deadline, const char *what);

/* rma.c */
/* Revokes every export (the peer loses access at once) and frees RMA state. */
void zc__rma_release(struct zc_conn *conn);

#endif
