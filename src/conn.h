/*
 * Internal, layer 4 (the API): connections' set-up (cm.c) and end
 * (close.c), listeners (listener.c), the connection object, its state
 * checks and waits (conn.c), the application's transfer calls (stream.c),
 * one-sided RMA (rma.c) and the context's public calls (ctx.c).
 */
#ifndef ZC_CONN_H
#define ZC_CONN_H

#include "proto.h"

enum zc__obj_kind { ZC_OBJ_LISTENER = 1, ZC_OBJ_CONN, ZC_OBJ_REQ };

/* rdma_cm carries at most 255 bytes of private data (a byte counts them). */
#define ZC__PRIV_MAX 255

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
	uint64_t addr;     /* the range's first byte (zc_export_key) */
	bool bind_pending;
	bool invalidated;  /* the peer's SEND_WITH_INVALIDATE voided rkey */
	int status;
};

/* A raw connection's receive posted by the application (raw.c). */
struct zc__raw_rreq {
	struct zc__wr wr;
	struct zc_conn *conn;
	uint32_t idx;
	uint64_t token;
	struct zc__rcache_entry *entry;
};

/* A raw connection's state beyond its QP (raw.c writes it). */
struct zc__raw {
	struct zc__raw_rreq *rreq; /* raw_recv_depth of them */
	uint32_t *rfree;
	uint32_t n_rfree;
};

/* A raw listener's connection request, until the application answers it
 * (cm.c). */
struct zc_conn_req {
	int kind; /* ZC_OBJ_REQ: first, as rdma_cm contexts are tagged by it */
	struct zc_listener *listener; /* while queued on listener->reqs */
	struct zc__list node;         /* on listener->reqs, then on ctx->reqs */
	struct zc_ctx *ctx;
	struct zc_conn_opts opts;     /* the listener's (zc_req_accept with NULL) */
	struct rdma_cm_id *id;
	uint8_t priv[ZC__PRIV_MAX];
	uint8_t priv_len;
	uint8_t initiator_depth, responder_resources; /* the requester's */
};

/* SETUP: handshake running; OPEN (also while a close lingers: phase says
 * so); FAILED: an asynchronous connect failed, nothing is left but the
 * handle. */
enum zc__conn_state { ZC_CONN_SETUP = 1, ZC_CONN_OPEN, ZC_CONN_FAILED };

/* Where a connection's set-up or close stands (cm.c and close.c advance
 * it, from rdma_cm events and from zc__cm_walk()):
 *   CONNECT  waiting for the rdma_cm event in `expect` (both sides)
 *   BACKOFF  a refused or stale attempt: the next starts at retry_at
 *   LINGER   closing: what was sent must be delivered, then CLOSE
 *   DRAIN    the QP flushes; then `after` says what follows
 *   DONE     a blocking zc_close() frees it */
enum zc__phase { ZC_PH_NONE = 0, ZC_PH_CONNECT, ZC_PH_BACKOFF, ZC_PH_LINGER, ZC_PH_DRAIN, ZC_PH_DONE };
enum zc__after { ZC_AFTER_RETRY = 1, ZC_AFTER_FAIL, ZC_AFTER_DROP, ZC_AFTER_CLOSED, ZC_AFTER_DONE };

/* A CLOSED event outliving its connection (allocated by zc_close_start, so
 * reporting it cannot fail). */
struct zc__evnode {
	struct zc__list node; /* on ctx->ev_orphans */
	struct zc_event ev;
};

/* cm.c, close.c and conn.c write every field but the RMA ones (rma.c), ep
 * (xfer.c) and the events' (event.c). */
struct zc_conn {
	int kind; /* ZC_OBJ_CONN: first, as rdma_cm contexts are tagged by it */
	struct zc_ctx *ctx;
	void *data;            /* the application's (zc_conn_set_data) */
	struct zc__list node;   /* on ctx->conns */
	struct rdma_cm_id *id;
	struct zc_conn_opts opts;
	enum zc__conn_state state;
	bool disconnected;
	char cm_detail[384];   /* zc_last_error() text behind a failed set-up or close */
	struct zc__priv peer;   /* the peer's connection parameters */
	/* dead-peer detection: completions seen, and when that last changed */
	uint64_t activity_seen;
	int64_t quiet_since;
	struct zc__list ka_node; /* on ctx->ka, ordered by ka_due (conn.c) */
	int64_t ka_due;
	/* events (event.c) */
	bool owned;              /* the application holds the handle */
	bool want_writable;      /* a send returned -EAGAIN */
	unsigned ev_bits;        /* one-shot events waiting: 1u << ZC_EV_* */
	unsigned ev_once;        /* one-shot events already raised */
	uint64_t ev_gen;         /* the zc_wait_events() call that last reported it */
	struct zc__list ev_node; /* on ctx->ev_ready */
	/* set-up and close as a state machine (cm.c, close.c) */
	struct zc__list life_node; /* on ctx->life while phase != NONE */
	enum zc__phase phase;
	enum zc__after after;
	int expect;              /* the rdma_cm event CONNECT waits for */
	int64_t deadline, retry_at, drain_deadline;
	unsigned attempt;
	bool refused, async_close;
	bool passive;            /* the accepting side */
	int result;              /* the set-up's (CONNECTED) or the close's outcome */
	struct zc_listener *listener; /* accepted side, until zc_accept() hands it out */
	struct zc__list lq_node;  /* on listener->ready once established */
	struct zc__evnode *closed_ev;
	struct sockaddr_storage dst;
	char peer_name[64];
	/* raw mode (cm.c): the peer's private data (request, reply or
	 * reject); a reply waiting for the next progress; a reject by the
	 * peer's application, which is final */
	uint8_t peer_priv[ZC__PRIV_MAX];
	uint8_t peer_priv_len;
	bool peer_priv_set, rep_pending, rejected;
	uint8_t req_initiator_depth, req_responder_resources;
	uint8_t my_priv[ZC__PRIV_MAX]; /* opts.private_data points here */
	struct zc__raw raw;
	/* one-sided RMA (rma.c) */
	struct zc__rma_op *rma;
	uint32_t n_rma;
	struct zc__list exports;
	struct zc__ep ep;
};

struct zc_listener {
	int kind; /* ZC_OBJ_LISTENER */
	struct zc_ctx *ctx;
	/* A connection request arrived (listener.c; cm.c calls it from the
	 * context's rdma_cm events, which come below listeners) */
	void (*on_request)(struct zc_listener *l, struct rdma_cm_id *id, const struct rdma_conn_param *p,
			   const uint8_t *priv, uint8_t n);
	struct zc__list node;   /* on ctx->listeners */
	struct rdma_cm_id *id;
	struct zc_conn_opts opts;
	/* Requests are accepted inside progress; established connections
	 * wait on `ready` for zc_accept(). handshakes + queued <= backlog. */
	struct zc__list ready;
	struct zc__list reqs;   /* raw: requests for zc_req_get(), counted in queued */
	unsigned handshakes, queued, backlog;
	int err;                /* a failure zc_accept() reports next (the server's own, or an incompatible peer) */
	char err_detail[256];
	char skipped[256];      /* the last handshake a peer abandoned */
	struct zc__list ev_node; /* on ctx->ev_lready (event.c) */
	uint64_t ev_gen;
};

/* conn.c: the connection object */
struct zc_conn *zc__conn_alloc(struct zc_ctx *ctx, const struct zc_conn_opts *opts);
void zc__conn_set_phase(struct zc_conn *c, enum zc__phase ph);
void zc__conn_leave_listener(struct zc_conn *c);
/* Addresses and device of id into info. */
void zc__cm_query_id(struct rdma_cm_id *id, struct zc_ctx *ctx, struct zc_conn_info *info);

/* cm.c: set-up and the context's rdma_cm events */
/* Creates the QP (and for zcrdma connections the endpoint over it). */
int zc__conn_create_qp(struct zc_conn *c);
/* The rdma_cm parameters of connect/accept; priv holds the private data. */
void zc__conn_param(struct zc_conn *c, struct rdma_conn_param *p, uint8_t *priv);
/* Ends a set-up that failed, reporting rc where its owner will look. */
void zc__conn_setup_failed(struct zc_conn *c, int rc);
/* Keeps the peer's rdma_cm private data (raw connections read it). */
void zc__conn_keep_peer_priv(struct zc_conn *c, const uint8_t *priv, uint8_t n);
void zc__cm_set_ack_timeout(struct rdma_cm_id *id);
/* Handles every pending rdma_cm event of the context (its cm_hook). */
int zc__cm_process(struct zc_ctx *ctx);
/* Rejects a connection request, saying why (wire.h). */
void zc__cm_reject(struct rdma_cm_id *id, uint8_t reason);
/* Advances every connection being set up or closed (ctx->life) by time:
 * deadlines, backoff, linger and drain; arms the timer for the next. Never
 * waits. */
void zc__cm_walk(struct zc_ctx *ctx);

/* close.c: the end of a connection */
/* Hangs up and frees c; returns rc. */
int zc__conn_teardown(struct zc_conn *c, int rc);
void zc__conn_destroy(struct zc_conn *c);
/* Hangs up and flushes the QP; once every work request is reaped (or
 * 2 s passed), does `after` (zc__conn_close_step). */
void zc__conn_drain_then(struct zc_conn *c, enum zc__after after);
/* Starts the close machine: an open connection lingers, one still being
 * set up (or whose set-up failed) is torn down at once. */
void zc__conn_close_begin(struct zc_conn *c, bool async);
/* The LINGER and DRAIN phases of zc__cm_walk(): returns when c needs its
 * next look (0: never); c may be freed. */
int64_t zc__conn_close_step(struct zc_conn *c, int64_t now);

/* event.c: the events of zc_wait_events(). A connection or listener is on
 * the ready list while it may have one: it is put there when something
 * happens to it (never found by sweeping), and taken off when a look finds
 * nothing. */
/* The endpoint's notify hook (zc__ep.notify). */
void zc__ev_notify(struct zc__ep *e, enum zc__ep_news news);
/* The same news for a connection (raw ones have no endpoint protocol). */
void zc__ev_news(struct zc_conn *c, enum zc__ep_news news);
/* Raises a one-shot event (ZC_EV_CONNECTED, _CLOSED is an orphan). */
void zc__ev_raise(struct zc_conn *c, int type);
/* Puts c / l on the ready list for a look. */
void zc__ev_kick(struct zc_conn *c);
void zc__ev_kick_listener(struct zc_listener *l);
/* Room for the sends that return -EAGAIN: a credit and two send requests
 * (a rendezvous takes two), with no zero-copy send queued ahead (raw: a
 * send request). */
bool zc__conn_sendable(const struct zc_conn *c);
/* A send returned -EAGAIN: raise WRITABLE once there is room again. */
void zc__ev_want_writable(struct zc_conn *c);
/* Takes c / l off every event list. */
void zc__ev_forget(struct zc_conn *c);
void zc__ev_forget_listener(struct zc_listener *l);
/* Reaps finished zero-copy operations into comps, with their user data. */
int zc__ev_reap(struct zc_ctx *ctx, struct zc_completion *comps, int max);
/* Stores up to max events (completions, orphans, then the ready list),
 * each source at most once per ctx->ev_gen. Returns how many. */
int zc__ev_collect(struct zc_ctx *ctx, struct zc_event *evs, int max);

/* conn.c */
/* 0 if the connection is open, else why not (with its detail). */
int zc__conn_check(struct zc_conn *conn);
/* Probes a quiet connection (see zc_conn_opts.keepalive_ms). */
int zc__conn_keepalive(struct zc_conn *conn);
/* The context's keepalive checks: an open connection is checked every
 * keepalive_ms / 4 from a list ordered by due time, so a tick looks only
 * at connections that are due. */
void zc__conn_ka_add(struct zc_conn *conn, int64_t now);
void zc__conn_ka_del(struct zc_conn *conn);
void zc__conn_ka_tick(struct zc_ctx *ctx, int64_t now);
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
/* The peer invalidated rkey: an export with that key is void. */
void zc__rma_invalidated(struct zc_conn *conn, uint32_t rkey);
/* Posts one RDMA READ/WRITE (split into pieces of the device's largest
 * message), completing as op with token; more: held for the next doorbell
 * (zc__qp_hold). */
int zc__rma_post(struct zc_conn *conn, enum ibv_wr_opcode opcode, int op, void *buf, size_t len, struct zc_mr *mr,
		 uint64_t raddr, uint32_t rkey, uint64_t token, bool more);

/* raw.c: raw connections' queue pairs */
/* The QP exists (on conn->id, made with zc__qp_init_raw()). */
int zc__raw_setup(struct zc_conn *conn);
/* Frees what setup made and the QP; every work request must be reaped. */
void zc__raw_release(struct zc_conn *conn);
/* 0 if the connection is raw (want_raw) or not, else -EINVAL. */
int zc__conn_mode(const struct zc_conn *conn, bool want_raw);

#endif
