/*
 * Internal, layer 1 (device and memory): the context's device, protection
 * domain, completion queue and its arming, the registration helpers, the
 * ring of finished zero-copy operations, and progress over the CQ.
 *
 * Nothing here knows what a connection is. A completion is handed to the
 * continuation its work request carries (struct zc__wr); connection-manager
 * events are handed to the context's cm hook, set by the layer that owns
 * connections.
 */
#ifndef ZC_DEV_H
#define ZC_DEV_H

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include <stdbool.h>
#include <stdint.h>

#include "zcrdma.h"
#include "list.h"
#include "rcache.h"

/* A posted work request: wr_id points at one, and done() runs when its
 * completion is polled. Whoever posts it sets done. */
struct zc__wr {
	void (*done)(struct zc__wr *wr, const struct ibv_wc *wc);
};

struct zc__rxpool;
struct zc__txpool;

struct zc_ctx {
	struct zc_ctx_opts opts;
	struct rdma_event_channel *cm_ch;
	struct rdma_cm_id *bind_id; /* holds the device for the local address */
	struct sockaddr_storage local; /* AF_UNSPEC: created without an address */
	struct ibv_context *verbs;     /* NULL until such a context's first route */
	struct ibv_pd *pd;
	struct ibv_comp_channel *comp_ch;
	struct ibv_cq *cq;
	int cq_size, max_cqe;
	int cq_reserved;        /* entries promised to posted receive slots */
	uint32_t cq_send_room;  /* the rest: send completions in flight at most */
	uint32_t sreqs_inuse;   /* send requests taken, over all QPs */
	uint32_t max_srq_wr;
	unsigned n_qps;            /* QPs on the pools; at 0 the pools are freed */
	struct zc__rxpool *rxpool; /* shared receive slots (qp layer) */
	struct zc__txpool *txpool; /* shared send staging slots */
	/* CQ notification: armed, the next completion raises an event on
	 * comp_ch; fired, a completion was polled while armed, so an event
	 * may be (or soon be) on the channel and must be consumed. */
	bool cq_armed, cq_fired;
	bool bind_needs_idle_sq; /* see zc__dev_open's device query */
	unsigned wc_inv_flags;   /* wc_flags meaning "the SEND invalidated a key", likewise */
	uint64_t read_chunk;     /* largest rendezvous READ, likewise */
	unsigned idle_polls; /* zc__ctx_progress() looks that found nothing: every 64th asks the CM channel */
	int epfd;
	struct zc_caps caps;
	struct zc__rcache *rcache;
	struct zc_stats stats;
	unsigned n_mrs;
	bool logged_fallback;
	/* Handles every pending rdma_cm event; returns how many (cm.c). */
	int (*cm_hook)(struct zc_ctx *ctx);
	/* Queue pairs holding send work requests for their next doorbell
	 * (qp layer): progress posts them first, through held_hook, so
	 * nothing stays held while the application waits. */
	struct zc__list held;
	void (*held_hook)(struct zc_ctx *ctx);
	struct zc__list conns;         /* every live connection, freed with the context */
	struct zc__list listeners;
	/* The API layer's lists (conn.h says what is on them): connections
	 * and listeners that may have events (event.c), finished closes'
	 * events, connections being set up or closed (cm.c) and keepalive
	 * checks ordered by when they are due (conn.c), and raw connection
	 * requests taken by the application but not answered yet (cm.c). */
	struct zc__list ev_ready, ev_lready, ev_orphans, life, ka, reqs;
	uint64_t ev_gen;
	unsigned ev_calls;
	/* A timerfd in the event fd's set, armed for the earliest deadline
	 * the layers above asked for (0: disarmed), so the fd wakes by itself
	 * when a keepalive or a handshake timeout is due. */
	int timer_fd;
	int64_t timer_due, coarse_lag_ms;
	bool timer_fired; /* consumed by a wait whose caller runs no timers */
	struct zc_completion *done;   /* reaped by zc_poll(): a ring */
	unsigned done_cap, done_head, done_count, zc_outstanding;
};

struct zc_mr {
	struct zc_ctx *ctx;
	struct ibv_mr *mr;
	int access;
	int ibv_access; /* what the registration got (see zc__reg_local) */
	unsigned exports;
};

/* A registration-cache entry's handle. */
struct zc__reg {
	struct ibv_mr *mr;
	int ibv_access;
};

/* dev.c: the device */
/* The CM channel and event fd, and the device behind local_addr
 * (zc__dev_attach); local_addr NULL leaves the device to the first route. */
int zc__dev_open(struct zc_ctx *ctx, const char *local_addr);
/* Takes verbs as the context's device: PD, CQ, capabilities (of port
 * port_num), completion ring, CQ events on the event fd. All or nothing. */
int zc__dev_attach(struct zc_ctx *ctx, struct ibv_context *verbs, uint8_t port_num);
void zc__dev_close(struct zc_ctx *ctx);
/* Promises CQ entries to receive slots, growing the CQ as far as the
 * device allows; what is left bounds the send completions in flight. */
int zc__ctx_reserve_cq(struct zc_ctx *ctx, int entries);
void zc__ctx_release_cq(struct zc_ctx *ctx, int entries);

/* dev.c: finished zero-copy operations, reaped by zc_poll() */
/* Whether one more zero-copy operation fits the ring (-EAGAIN if not);
 * a submission that went through counts itself with zc__ctx_submitted(). */
int zc__ctx_room(struct zc_ctx *ctx);
void zc__ctx_submitted(struct zc_ctx *ctx);
/* Moves up to max finished operations to comps; returns how many. */
int zc__ctx_reap(struct zc_ctx *ctx, struct zc_completion *comps, int max);
/* Returns the completion, for fields beyond these (raw receives). */
struct zc_completion *zc__ctx_complete(struct zc_ctx *ctx, struct zc_conn *conn, uint64_t token, int op, int status,
				       size_t len);
/* The connection is being freed: completions not reaped yet must not name
 * it, and keep its user data instead (zc_poll fills it in for the rest). */
void zc__ctx_forget_conn(struct zc_ctx *ctx, const struct zc_conn *conn, void *data);

/* dev.c: progress */
/* Polls the CQ once, running each completion's continuation. */
int zc__ctx_poll_cq(struct zc_ctx *ctx);
/* The CQ, and the CM channel when the CQ is idle (every 64th time). */
int zc__ctx_progress(struct zc_ctx *ctx);
/* Both sources, once. */
int zc__ctx_progress_all(struct zc_ctx *ctx);
/* Arms the fd for the caller's sleep and polls what landed before the arm. */
int zc__ctx_rearm(struct zc_ctx *ctx);
/* Spins busy_poll_us, then sleeps on the event fd up to timeout_ms;
 * returns whether anything may have happened. */
int zc__ctx_wait(struct zc_ctx *ctx, int timeout_ms);

/* The one bounded wait: makes progress until cond(arg) returns non-zero
 * (> 0: met, < 0: an error) and returns that, or until deadline (on
 * zc__now_ms()'s clock; -1 never) passes: -ETIMEDOUT. A deadline of
 * ZC__NOWAIT looks once more, with the fd armed for the caller's own sleep,
 * and returns -EAGAIN. Sets no detail: the caller says what timed out. */
#define ZC__NOWAIT 0
int zc__ctx_wait_for(struct zc_ctx *ctx, int (*cond)(void *arg), void *arg, int64_t deadline);
/* The same with a poll()-style timeout (-1 forever, 0 as ZC__NOWAIT). A
 * long one may run over by one tick of the coarse clock: its deadline then
 * costs no read of the precise clock (a system call where the TSC is not
 * trusted). */
int zc__ctx_wait_ms(struct zc_ctx *ctx, int (*cond)(void *arg), void *arg, int timeout_ms);

/* dev.c: the timer. Asks for the event fd to become readable at due (on
 * zc__now_ms()'s clock) unless it already will sooner; after it fired,
 * zc__ctx_timer_check() consumes it (the fd would stay readable). */
void zc__ctx_timer_at(struct zc_ctx *ctx, int64_t due);
bool zc__ctx_timer_check(struct zc_ctx *ctx, int64_t now);
/* False when the timer is disarmed or cannot be due yet, read without a
 * system call; true: read the clock and check. */
bool zc__ctx_timer_maybe_due(const struct zc_ctx *ctx);

/* dev.c: time and addresses */
int64_t zc__now_ms(void);
int64_t zc__now_ns(void);
/* deadline < 0 means forever; returns a poll()-style timeout. */
int zc__remaining_ms(int64_t deadline);
int zc__resolve(const char *host, uint16_t port, struct sockaddr_storage *ss);
/* Sets the port of an AF_INET or AF_INET6 address. */
void zc__set_port(struct sockaddr_storage *ss, uint16_t port);

/* mr.c: registrations */
int zc__memlock_check(struct zc_ctx *ctx, size_t len);
void zc__dereg_mr(struct zc_ctx *ctx, struct ibv_mr *mr);
void zc__dealloc_mw(struct zc_ctx *ctx, struct ibv_mw *mw);
struct ibv_mr *zc__reg_mr(struct zc_ctx *ctx, void *addr, size_t len, int ibv_access, int *err);
/* Registers for local use with local write and window binding where the
 * pages allow; read-only pages (a PROT_READ file mapping) get neither, as
 * the kernel counts window binding as write access. *ibv_access says what
 * was granted. */
struct ibv_mr *zc__reg_local(struct zc_ctx *ctx, void *addr, size_t len, int *ibv_access, int *err);
/* The registration for [buf, buf+len): mr if given, else a cache entry
 * (*entry, to be put). write: the NIC will write into it. */
int zc__reg_for(struct zc_ctx *ctx, const void *buf, size_t len, struct zc_mr *mr, bool write, struct ibv_mr **reg,
		int *ibv_access, struct zc__rcache_entry **entry);
int zc__lkey_for(struct zc_ctx *ctx, const void *buf, size_t len, struct zc_mr *mr, bool write, uint32_t *lkey,
		 struct zc__rcache_entry **entry);
void zc__entry_put(struct zc_ctx *ctx, struct zc__rcache_entry *entry);
/* The registration cache over this context's device (after zc__dev_open),
 * watching the memory hooks unless the options say not to. */
int zc__rcache_open(struct zc_ctx *ctx);
void zc__rcache_close(struct zc_ctx *ctx);

#endif
