/*
 * Internal, layer 3 (protocols): eager sends, rendezvous with its READ
 * rounds, credits and FIN/CREDIT/CLOSE (xfer.c) over one queue-pair
 * engine; docs/protocol.md is the wire protocol. struct zc__ep is one
 * connection's transfer state, written only by xfer.c.
 */
#ifndef ZC_PROTO_H
#define ZC_PROTO_H

#include "credit.h"
#include "qp.h"
#include "wire.h"

/* Where a message that arrived waits for the application. */
/* PUT: the message was written into the posted buffer it was advertised
 * for (checked on arrival), which only that buffer's turn completes. */
enum zc__item_kind { ZC_ITEM_EAGER = 1, ZC_ITEM_RTS, ZC_ITEM_CLOSE, ZC_ITEM_PUT };

/*
 * The RDMA READ round that pulls [off, off + want) of an RTS into dst:
 *   IDLE      no round: the item waits for a reader
 *   POSTING   pieces left to post; waits for READ depth or send-queue room
 *   DRAINING  nothing more to post (all posted, or the round failed); waits
 *             for the pieces in flight
 *   DONE      nothing in flight; status says how it ended. A SYNC reader (a
 *             blocked zc_recv) ends the round; POSTED ones (zc_recv_zc),
 *             several at once, end in item order in zc__match_posted().
 * zc__read_advance() is the only function that moves it: called when the
 * round starts, on each READ completion, whenever send-queue room frees,
 * and when the connection fails.
 */
enum zc__read_state { ZC_READ_IDLE = 0, ZC_READ_POSTING, ZC_READ_DRAINING, ZC_READ_DONE };
enum zc__reader { ZC_READER_SYNC = 1, ZC_READER_POSTED };

struct zc__item {
	uint8_t kind;
	bool inv;        /* RTS: the rkey is a window FIN must invalidate */
	bool fin_sent;   /* RTS: its FIN went behind the round's READs */
	uint8_t rstate;  /* enum zc__read_state */
	uint8_t reader;  /* who waits for the round */
	uint32_t slot;   /* receive slot held (EAGER, RTS) */
	uint32_t id;     /* RTS: the sender's rendezvous id */
	uint32_t rkey;   /* RTS: key of the sender's buffer */
	uint64_t off;    /* bytes already consumed */
	uint64_t len;    /* payload length */
	uint64_t raddr;  /* RTS: the sender's buffer */
	/* the READ round: [off, off + want) into dst */
	uint8_t *dst;
	uint32_t dst_lkey;
	struct zc__rcache_entry *dst_entry;
	uint64_t want, posted;
	uint32_t reads;
	int status;
};

/* Whether a posted buffer was offered to the peer for a one-hop write:
 * not decided yet, not offered, offered (its window is bound), written
 * (the peer's PUT invalidated the window). */
enum zc__adv_state { ZC_ADV_UNDECIDED = 0, ZC_ADV_NONE, ZC_ADV_SENT, ZC_ADV_WRITTEN };

/* A buffer posted by zc_recv_zc(). */
struct zc__posted {
	void *buf;
	size_t len;
	struct zc_mr *mr;
	uint64_t token;
	/* its ADV: the peer's data message it takes, and the window */
	uint8_t adv;
	uint32_t seq, rkey;
	struct ibv_mw *mw;
};

/* An ADV from the peer: where its buffer for our data message seq is. */
struct zc__adv {
	uint32_t seq, rkey;
	uint64_t addr, len;
};

/* A zero-copy send waiting for a credit or send-queue room. */
struct zc__zsend {
	const void *buf;
	size_t len;
	struct zc_mr *mr;
	uint64_t token;
};

/* Our side of a rendezvous: a buffer exposed to the peer until its FIN. */
/* Who finishes a rendezvous: the application's completion (zc_send_zc), a
 * blocked sender, or nobody (the library's copy of a non-blocking message,
 * freed when the peer has read it). */
enum zc__rndv_owner { ZC_RNDV_FREE = 0, ZC_RNDV_USER, ZC_RNDV_BLOCKING, ZC_RNDV_COPY };
struct zc__rndv {
	uint8_t owner;
	uint16_t gen;
	bool done;
	bool put;                       /* written into an ADV's buffer: done when the PUT completes */
	int status;
	uint64_t token;
	uint64_t len;
	struct ibv_mw *mw;              /* window, kept for rebinding */
	uint32_t rkey;                  /* what the peer was given */
	struct ibv_mr *fallback_mr;     /* per-transfer MR where windows are off */
	struct zc__rcache_entry *entry;
	void *copy;                     /* ZC_RNDV_COPY: the buffer to free */
};

/* A FIN that found the send queue full. Its RTS slot stays held until the
 * FIN is posted, so the FIN is what advertises that slot's credit. */
struct zc__fin {
	uint32_t id, rkey, slot;
};

/* What the endpoint tells the layer above through zc__ep.notify (events). */
enum zc__ep_news {
	ZC_EP_ARRIVED = 1, /* a message (data, RTS or CLOSE) was queued for the application */
	ZC_EP_SENDABLE,    /* credits or send-queue room may have come back */
	ZC_EP_FAILED,      /* the connection failed (qp.err says why) */
};

struct zc__ep {
	struct zc__qp qp;
	/* Set by the layer above before zc__ep_setup(); may be NULL. */
	void (*notify)(struct zc__ep *e, enum zc__ep_news news);
	struct zc_ctx *ctx;
	struct zc_conn *conn;  /* named in completions */
	bool mr_fallback;      /* windows refused by the options */
	uint32_t credits;      /* the largest window, both ways (credits option) */
	size_t eager_max;      /* payload bytes we send eagerly: the peer's slots take them */
	size_t eager_in;       /* payload bytes our slots take */
	bool close_sent;
	bool close_received;   /* CLOSE arrived: a disconnect after it is orderly */
	bool shut_received;    /* SHUTDOWN arrived: the peer's stream ended, it still receives */
	struct zc__credit cr;
	/* arrived messages, a FIFO */
	struct zc__item *items;
	uint32_t item_head, item_count, items_cap;
	struct zc__posted *posted; /* grows on demand up to posted_max */
	uint32_t posted_head, posted_count, posted_cap, posted_max;
	/* the first `rounds` items are being read into posted buffers
	 * (zc__match_posted), which in_rounds/rounds_again keep from
	 * re-entering itself */
	uint32_t rounds;
	bool in_rounds, rounds_again;
	struct zc__rndv *rndv;  /* indexed by id & 0xffff */
	uint32_t n_rndv;
	uint32_t reads_inflight, max_reads;
	struct zc__zsend *zq;   /* zero-copy sends queued in submission order */
	uint32_t zq_head, zq_count, zq_cap, zq_max;
	struct zc__fin *fin_queue; /* FINs waiting for send-queue room */
	uint32_t fin_head, fin_count;
	/* One-hop rendezvous (docs/protocol.md 3.3). As the receiver: the
	 * first posted_adv posted buffers were considered for an ADV, and
	 * windows the peer's PUTs invalidated are kept for the next. As the
	 * sender: the peer's ADVs, in order, the last seq seen. ADVs sent and
	 * received, which the credit counts include: the rest are the
	 * messages an ADV names (xfer.c msgs_sent). */
	uint32_t advs_sent, advs_recvd;
	uint32_t posted_adv;
	struct ibv_mw **mw_spare;
	uint32_t n_mw_spare;
	struct zc__adv *advs;
	uint32_t adv_head, adv_count, adv_cap, adv_max, adv_last;
	bool adv_seen;
};

/* xfer.c: set-up and teardown */
/* Receive slots of a connection that has its own (no shared queue): a full
 * window of data, as many control messages, and CLOSE (credit.h). */
uint32_t zc__ep_own_slots(uint32_t credits);
/* This side's connection parameters, for the rdma_cm private data. */
void zc__ep_local_priv(const struct zc__ep *e, uint32_t rd_atom, struct zc__priv *p);
/* The QP exists: engine, the promises of our first window, protocol state.
 * eager_size: the connection's option (the context's bounds it). */
int zc__ep_setup(struct zc__ep *e, struct zc_conn *conn, struct rdma_cm_id *id, uint32_t credits, size_t eager_size,
		 bool mr_fallback);
/* The peer's parameters are known (its private data). */
int zc__ep_peer(struct zc__ep *e, const struct zc__priv *peer);
/* Gives every zero-copy operation still owned by the endpoint back to the
 * application with err, then frees its state. Work requests must all be
 * reaped already (zc__qp_drain). */
void zc__ep_release(struct zc__ep *e);
/* Anything still being delivered: sends, FINs, queued zero-copy sends,
 * rendezvous the peer has not finished (zc__qp_sq_idle: may ask for a
 * completion). */
bool zc__ep_busy(struct zc__ep *e);

/* xfer.c: transfers */
int zc__send_ctl(struct zc__ep *e, uint8_t type, uint32_t id, uint32_t inv_rkey, bool fence);
int zc__send_eager(struct zc__ep *e, const void *buf, size_t len, uint8_t op, uint64_t token);
int zc__send_rndv(struct zc__ep *e, const void *buf, size_t len, struct zc_mr *mr, uint8_t owner, uint64_t token,
		  uint32_t *idx);
/* Whether a blocking sender's rendezvous is over; reaping it frees its
 * entry and returns its status. */
bool zc__rndv_done(const struct zc__ep *e, uint32_t idx);
int zc__rndv_reap(struct zc__ep *e, uint32_t idx);
/* Sends CLOSE or SHUTDOWN (type): no more data follows from this side. */
int zc__ep_close(struct zc__ep *e, uint8_t type);
int zc__item_start_read(struct zc__ep *e, struct zc__item *it, void *buf, size_t len, struct zc_mr *mr,
			uint8_t reader);
void zc__item_end_read(struct zc__ep *e, struct zc__item *it);
void zc__read_advance(struct zc__ep *e, struct zc__item *it);
void zc__item_pop(struct zc__ep *e);
size_t zc__item_copy(struct zc__ep *e, struct zc__item *it, void *buf, size_t len);
void zc__match_posted(struct zc__ep *e);
void zc__flush_ctl(struct zc__ep *e);
int zc__zsend_submit(struct zc__ep *e, const struct zc__zsend *z);
int zc__posted_add(struct zc__ep *e, const struct zc__posted *p);

static inline void zc__ep_notify(struct zc__ep *e, enum zc__ep_news news)
{
	if (e->notify)
		e->notify(e, news);
}

static inline struct zc__item *zc__item_head(struct zc__ep *e)
{
	return e->item_count ? &e->items[e->item_head] : NULL;
}

#endif
