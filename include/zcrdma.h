/*
 * zcrdma.h - zero-copy messaging over RDMA
 *
 * OVERVIEW
 *   zcrdma moves bytes between two processes' memory with RDMA: the
 *   application hands the library its own buffers, and the NIC reads and
 *   writes them directly. The API mirrors sockets (listen, accept, connect,
 *   send, recv, close) and adds zero-copy variants in which the caller keeps
 *   ownership of registered buffers.
 *
 * WALK-THROUGH
 *   Server:                                 Client:
 *     zc_ctx_new("192.168.77.2", NULL, &c)    zc_ctx_new("192.168.77.1", NULL, &c)
 *     zc_listen(c, 7471, NULL, &l)            zc_connect(c, "192.168.77.2", 7471, NULL, &k)
 *     zc_accept(l, &k, -1)                    zc_send(k, buf, len, 0)
 *     zc_recv(k, buf, len, 0)                 zc_close(&k)
 *     ... zc_recv() returns 0: peer closed    zc_ctx_free(&c)
 *     zc_close(&k); zc_listener_free(&l); zc_ctx_free(&c)
 *
 *   A context (zc_ctx) owns one RDMA device, chosen by the local address it
 *   is created for (or, created without one, by the route to the first peer
 *   it connects to), with its protection domain, one completion queue shared
 *   by all its connections, the registration cache and one event fd.
 *
 * DATA PATHS
 *   Small payloads (up to the connection's eager size) are sent inline in
 *   the work request or copied once into a pre-registered ring; the receiver
 *   gets them in pre-posted receive slots. Larger payloads go by rendezvous:
 *   the sender binds a memory window granting remote READ on exactly the
 *   buffer, the receiver RDMA-READs straight into its destination buffer, and
 *   its FIN (SEND_WITH_INV) invalidates the window. Neither CPU touches the
 *   payload. docs/protocol.md describes the wire protocol.
 *
 * BUFFER OWNERSHIP
 *   zc_send()/zc_msg_send() return once the buffer may be reused (for a
 *   rendezvous that is when the peer has read it). zc_send_zc()/zc_recv_zc()
 *   lend the buffer to the library until the matching completion is reaped
 *   with zc_poll(): do not touch, free or unmap it before. Buffers that are
 *   not registered with zc_mr_reg() are registered through the registration
 *   cache, which notices by itself when such memory is unmapped, remapped or
 *   freed (REGISTRATION CACHE, below zc_mr_invalidate()).
 *
 * COMPLETIONS AND BLOCKING
 *   Calls block unless given ZC_DONTWAIT, in which case they return -EAGAIN
 *   instead of waiting. All progress happens inside zcrdma calls on the
 *   context (there is no background thread). zc_ctx_fd() returns one fd per
 *   context that becomes readable when zc_wait_events(), zc_poll() or a
 *   ZC_DONTWAIT call may make progress; use it with poll/epoll, then call
 *   zc_wait_events(ctx, ..., 0) (or zc_poll(ctx, ..., 0)).
 *
 * MANY CONNECTIONS: ONE EVENT LOOP
 *   A server serves every client from one loop over zc_wait_events(),
 *   which reports each connection's events with its user data, found
 *   without sweeping all connections (see Events, below zc_poll()):
 *
 *     zc_listen(ctx, port, NULL, &l);
 *     for (;;) {
 *         int n = zc_wait_events(ctx, ev, 64, -1);
 *         for (i = 0; i < n; i++) {
 *             struct zc_conn *c = ev[i].conn;
 *             switch (ev[i].type) {
 *             case ZC_EV_ACCEPT:          // level-triggered
 *                 while (zc_accept(l, &c, 0) == 0)
 *                     zc_conn_set_data(c, client_new());
 *                 break;
 *             case ZC_EV_READABLE:        // level-triggered
 *                 while ((len = zc_msg_recv(c, buf, cap, ZC_DONTWAIT)) >= 0)
 *                     handle(ev[i].data, buf, len);
 *                 if (len == -EPIPE)      // the client's end of stream
 *                     zc_close_start(&c); // ZC_EV_CLOSED follows
 *                 break;
 *             case ZC_EV_ERROR:           // once; ev[i].status says why
 *                 zc_abort(&c);
 *                 client_free(ev[i].data);
 *                 break;
 *             case ZC_EV_CLOSED:          // once; conn is NULL, data is not
 *                 client_free(ev[i].data);
 *                 break;
 *             }
 *         }
 *     }
 *
 *   Clients connect without waiting with zc_connect_start() (a
 *   ZC_EV_CONNECTED event follows). To sleep in your own epoll instead,
 *   add zc_ctx_fd() to it and call zc_wait_events(ctx, ev, 64, 0) when it
 *   fires, following NO MISSED WAKE-UPS at zc_wait_events(). Silent dead
 *   peers are found by keepalive probes the loop sends by itself.
 *   examples/zc_echo.c (zc_echo -l) is a complete server.
 *
 * THREAD SAFETY
 *   A context and everything created from it (listeners, connections,
 *   memory regions, exports) must be used by one thread at a time. Distinct
 *   contexts are independent: use one per thread.
 *
 * ERRORS
 *   Every function that can fail returns 0 (or a non-negative count) on
 *   success and a negative errno value, or one of the negative ZC_E* codes
 *   below, on failure. zc_strerror() turns either into a message that names
 *   the cause and, where there is one, the fix; zc_last_error() adds the
 *   details of the calling thread's most recent failure (sizes, addresses,
 *   the verbs call that failed). No function aborts on bad input. A peer
 *   that disconnects, crashes or breaks the protocol makes pending and later
 *   calls on that connection fail with -ECONNRESET, -ZC_ETRANSPORT or
 *   -ZC_EPEERPROTO; an orderly close by the peer makes receives return 0.
 */
#ifndef ZCRDMA_H
#define ZCRDMA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ZC_API __attribute__((visibility("default")))
#else
#define ZC_API
#endif


/* ------------------------------------------------------------------ */
/* Contexts                                                            */

struct zc_ctx;
struct zc_listener;
struct zc_conn;
struct zc_mr;
struct zc_export;

/*
 * struct zc_ctx_opts - context options (zc_ctx_opts_init() sets defaults)
 *
 *   cq_depth          completion-queue entries shared by all connections
 *                     at first (default 8192); the queue grows as receive
 *                     slots are added, up to the device's limit
 *   eager_size        largest payload this context's connections receive by
 *                     copy: the size of its receive slots (default 16384,
 *                     at least 64); a connection's own eager_size may lower
 *                     what it sends and accepts, never raise it
 *   rx_slots          receive slots the context's connections share
 *                     (default 1024); see MEMORY PER CONNECTION below
 *   no_srq            if set, every connection gets receive slots of its
 *                     own (2 * credits + 1) instead of sharing the context's
 *                     pool; the default where the device has no shared
 *                     receive queue (zc_caps.srq)
 *   busy_poll_us      how long blocking calls spin on the completion queue
 *                     before sleeping on the event fd (default 100; 0 sleeps
 *                     at once, -1 never sleeps).
 *   rcache_entries    registration-cache bound on unused entries (default 256)
 *   rcache_bytes      ... and on their bytes (default 1 GiB)
 *   log_fn, log_arg   where the library's log messages go: log_fn(log_arg,
 *                     level, message) is called from inside zcrdma calls on
 *                     this context, in the calling thread (default NULL: the
 *                     library is silent; it never writes to stdout/stderr)
 *   log_level         the most verbose level passed to log_fn (default
 *                     ZC_LOG_WARN)
 *   no_memhooks       if set, this context's registration cache does not
 *                     follow the process's memory hooks and trusts the
 *                     application to call zc_mr_invalidate() before it
 *                     unmaps, remaps or frees memory that went through the
 *                     cache (default 0: hooks on; see REGISTRATION CACHE
 *                     below zc_mr_invalidate())
 */
enum zc_log_level {
	ZC_LOG_ERR = 1,  /* a resource leaked or a peer broke a rule */
	ZC_LOG_WARN,     /* a degraded mode, e.g. no memory windows on the device */
	ZC_LOG_INFO,     /* (no message uses INFO or DEBUG yet) */
	ZC_LOG_DEBUG,
};
struct zc_ctx_opts {
	int cq_depth;
	int busy_poll_us;
	unsigned rcache_entries;
	size_t rcache_bytes;
	void (*log_fn)(void *log_arg, int level, const char *msg);
	void *log_arg;
	int log_level;
	int no_memhooks;
	size_t eager_size;
	int rx_slots;
	int no_srq;
};

/* zc_ctx_opts_init - fill opts with the defaults documented above. */
ZC_API void zc_ctx_opts_init(struct zc_ctx_opts *opts);

/*
 * zc_ctx_new - open the RDMA device that owns a local address
 *
 * local_addr is an IPv4/IPv6 address (or host name) configured on an RDMA
 * netdev (e.g. "192.168.77.1" for rxe0). Listeners of the context listen on
 * it and its connections use it as their source address. opts may be NULL.
 *
 * local_addr NULL makes a context for clients that do not care which local
 * address they connect from: it has no device until its first zc_connect(),
 * whose route to the peer picks the source address and the device; the
 * context then owns that device for good. A later connection whose route
 * leaves through another device fails with -ENODEV (create one context per
 * device). Until the first connection, calls that need the device
 * (zc_mr_reg(), zc_ctx_query()) fail with -ENODEV, and zc_listen() always
 * fails with -EINVAL: listening needs an address.
 *
 * Returns 0 and sets *ctx, or: -EINVAL (bad arguments), -EADDRNOTAVAIL
 * (the address is not local), -ENODEV (no RDMA device behind it), -ENOMEM.
 */
ZC_API int zc_ctx_new(const char *local_addr, const struct zc_ctx_opts *opts, struct zc_ctx **ctx);

/*
 * zc_ctx_free - release a context
 *
 * Aborts any connection still open on it, frees listeners (rejecting their
 * requests, also those taken with zc_req_get() and not answered yet),
 * exports and the registration cache. Memory regions from zc_mr_reg() must be deregistered
 * first (-EBUSY otherwise, and nothing is freed). Sets *ctx to NULL.
 */
ZC_API int zc_ctx_free(struct zc_ctx **ctx);

/*
 * struct zc_caps - what the device behind a context can do
 */
struct zc_caps {
	char device[64];        /* e.g. "rxe0" */
	uint32_t max_inline;    /* largest inline send */
	uint32_t max_sge;
	uint64_t max_msg_size;  /* largest single RDMA message */
	uint32_t max_qp_rd_atom;/* RDMA READs in flight per QP */
	int mw_type2;           /* type-2 memory windows available */
	uint64_t memlock_limit; /* RLIMIT_MEMLOCK in bytes, UINT64_MAX if unlimited */
	int cap_ipc_lock;       /* the process may lock memory beyond the limit */
	int memhooks;           /* how the registration cache learns of unmaps: ZC_MEMHOOKS_* */
	int srq;                /* connections share receive slots (a shared receive queue) */
};

/* zc_caps.memhooks (see REGISTRATION CACHE below zc_mr_invalidate()) */
#define ZC_MEMHOOKS_OFF 0       /* created with no_memhooks (or a ThreadSanitizer build) */
#define ZC_MEMHOOKS_INTERPOSE 1 /* calls through the dynamic linker only */
#define ZC_MEMHOOKS_PATCH 2     /* libc's own functions patched: malloc/free too */

/* zc_ctx_query - fill caps. Returns 0, -EINVAL, or -ENODEV (a context made
 * without an address that has not connected yet has no device). */
ZC_API int zc_ctx_query(struct zc_ctx *ctx, struct zc_caps *caps);

/*
 * zc_ctx_fd - the context's event fd
 *
 * Readable when a completion or connection event is pending, or a timer of
 * the context (keepalive, handshake or close timeout) is due. Use it with
 * poll/epoll (POLLIN); when it fires call zc_wait_events(ctx, ..., 0),
 * zc_poll(ctx, ..., 0) or the ZC_DONTWAIT calls you were waiting on. The fd signals what happens after
 * the library last said "nothing more": so before sleeping on it, call
 * zc_poll(ctx, ..., 0) until it returns fewer than max, and repeat a
 * ZC_DONTWAIT call until it returns -EAGAIN (a call with a timeout does not
 * prepare the fd: see NO MISSED WAKE-UPS). Wake-ups without work are
 * possible and harmless. The fd belongs to the context.
 */
ZC_API int zc_ctx_fd(struct zc_ctx *ctx);

/*
 * struct zc_stats - counters of a context since it was created
 */
struct zc_stats {
	uint64_t rcache_hits, rcache_misses, rcache_evictions, rcache_invalidations;
	uint64_t rcache_entries, rcache_bytes;  /* currently cached */
	uint64_t eager_msgs, inline_msgs, rndv_msgs, rndv_bytes;
	uint64_t credit_msgs, mw_binds, mr_fallbacks;
	uint64_t regs, deregs, reg_ns; /* ibv_reg_mr/ibv_dereg_mr calls, and the time spent in them */
	/* Cache entries dropped (they add up to rcache_invalidations), by why:
	 * munmap or the old place of an mremap; mmap MAP_FIXED or mremap onto
	 * the range; madvise releasing pages; the heap shrinking (brk, sbrk,
	 * malloc trimming); shmdt; zc_mr_invalidate(); and every entry dropped
	 * because more unmaps happened between two calls on the context than
	 * the hooks' ring holds (1024 ranges). */
	uint64_t rcache_inv_unmap, rcache_inv_remap, rcache_inv_madvise, rcache_inv_brk;
	uint64_t rcache_inv_shmdt, rcache_inv_explicit, rcache_inv_overflow;
	/* Receive slots posted (shared pool and per-connection ones), how
	 * many of them are promised to connections now, and send staging
	 * slots; each is eager_size + 16 bytes of registered memory. */
	uint64_t rx_slots, rx_slots_promised, tx_slots;
	/* Connections and listeners zc_wait_events() looked at: only those
	 * something happened to (or that stay readable), never all of them;
	 * and keepalive checks, each of a connection that was due. */
	uint64_t event_checks, keepalive_checks;
	/* Work the device did for this context: send work requests posted
	 * (SENDs, READs, WRITEs, window binds), the ibv_post_send() calls that
	 * carried them (each one a doorbell: a system call on rxe), receive
	 * work requests posted, and completions reaped. */
	uint64_t send_wrs, send_posts, recv_wrs, completions;
	/* One-hop rendezvous: messages this side wrote straight into a buffer
	 * the peer posted (they are not in rndv_msgs), and the buffers it
	 * posted that it advertised for such writes. */
	uint64_t put_msgs, adv_msgs;
};

/* zc_ctx_stats - read the counters. Returns 0 or -EINVAL. */
ZC_API int zc_ctx_stats(struct zc_ctx *ctx, struct zc_stats *stats);

/* ------------------------------------------------------------------ */
/* Connections                                                         */

/*
 * struct zc_conn_opts - connection options (zc_conn_opts_init() sets defaults)
 *
 *   timeout_ms     connect / accept / orderly close bound (default 10000)
 *   credits        data messages either side may have in flight unconsumed
 *                  (default 16); both sides use the smaller of their offers
 *   eager_size     largest payload sent by copy; larger ones go by
 *                  rendezvous (default 16384, at least 64)
 *   send_depth     send work requests in flight (default 31; at least
 *                  credits + 8). The defaults keep an idle connection
 *                  small (MEMORY PER CONNECTION below); a connection that
 *                  streams small messages at full rate wants more, e.g.
 *                  credits 128 and send_depth 264 as zc_perf uses
 *   rnr_retry      receiver-not-ready retries, 0..7 (7: retry forever);
 *                  -1 (the default) means 0 for a zcrdma connection
 *                  (credits make RNR impossible, so any RNR is an error)
 *                  and 7 for a raw one (the application posts receives).
 *                  rdma_cm carries it in the connect request or reply, and
 *                  on InfiniBand and RoCE it is the PEER's queue pair that
 *                  uses it: how often the peer retries a SEND that finds
 *                  no receive posted on this side (zc_conn_query() shows
 *                  the value this side's own sends got from the peer)
 *   retry_count    transport retries before the connection fails (default 6;
 *                  7 means "retry forever" to rxe, so a dead peer would
 *                  never be noticed)
 *   mr_fallback    if set, rendezvous exposes a per-transfer MR instead of
 *                  a memory window even when windows exist (default 0)
 *   keepalive_ms   a connection that has seen nothing from the peer for
 *                  this long probes it with a zero-length RDMA WRITE, from
 *                  a blocking call on it or from zc_wait_events()/zc_poll()
 *                  (see DEAD PEERS there); a dead peer then fails the
 *                  connection with -ZC_ETRANSPORT once the transport's
 *                  retries (retry_count) run out, about 5 s on rxe
 *                  (default 2000; 0 turns probing off)
 *
 *   RAW MODE (see RAW CONNECTIONS, section Raw connections; all 0 / NULL /
 *   -1 by default, and ignored by zcrdma connections unless noted)
 *   raw            if set, the connection (or every request of a listener)
 *                  is raw: no zcrdma header, credits or shared receive
 *                  slots; credits, eager_size and send_depth do not
 *                  apply (mr_fallback still chooses how zc_export() grants)
 *   private_data, private_data_len
 *                  raw only (-EINVAL on a zcrdma connection, whose
 *                  private data is its own): bytes sent in the rdma_cm
 *                  connect request (zc_connect*(), at most
 *                  ZC_PRIV_REQ_MAX = 56 bytes) or reply (zc_req_accept(),
 *                  at most ZC_PRIV_REP_MAX = 196); copied by the call
 *   initiator_depth  raw: RDMA READs this side may have in flight; -1
 *                  (default) is the device's limit; either way capped to
 *                  the device, to 255 and, when accepting, to the
 *                  requester's responder resources
 *   responder_resources  raw: the peer's RDMA READs this side serves at
 *                  once; -1 (default) is the device's limit; capped
 *                  likewise (to the requester's initiator depth)
 *   raw_send_depth, raw_recv_depth  raw: the queue pair's send and receive
 *                  queue depths (0: default 128 each; at most 16384 and
 *                  the device's limit). Each raw connection reserves
 *                  raw_send_depth + raw_recv_depth entries of the
 *                  context's completion queue.
 */
struct zc_conn_opts {
	int timeout_ms;
	int credits;
	size_t eager_size;
	int send_depth;
	int rnr_retry;
	int retry_count;
	int mr_fallback;
	int keepalive_ms;
	/* raw mode */
	int raw;
	const void *private_data;
	size_t private_data_len;
	int initiator_depth;
	int responder_resources;
	uint32_t raw_send_depth, raw_recv_depth;
};

/* Largest private data rdma_cm carries in a connect request (after its own
 * header), in a reply and in a reject (InfiniBand CM; RoCE alike). */
#define ZC_PRIV_REQ_MAX 56
#define ZC_PRIV_REP_MAX 196
#define ZC_PRIV_REJ_MAX 148

/* zc_conn_opts_init - fill opts with the defaults documented above. */
ZC_API void zc_conn_opts_init(struct zc_conn_opts *opts);

/*
 * MEMORY PER CONNECTION
 *
 * Receive slots (the context's eager_size each, registered and pinned)
 * belong to the context: one pool on a shared receive queue. A connection
 * holds a slot for every message the peer may send it unconsumed (its
 * window, at least 1, at most credits) and one for its CLOSE. Windows grow
 * while the peer uses all of its window and the pool holds fewer than
 * rx_slots promised slots, and shrink back when it holds more; only the
 * minimum (a window of one and the CLOSE) takes the pool beyond rx_slots,
 * up to the device's limit. So an idle connection holds two slots; give a
 * context whose connections all stream at once rx_slots of about
 * connections x credits.
 * A connection's send queue is send_depth entries in the device's queue
 * pair (rxe: 512 bytes each, for send_depth + 1 rounded up to a power of
 * two: 16 KiB with the default 31), and the library keeps state that grows
 * with send_depth and credits.
 * With the default options an idle connection costs about 60 KiB on rxe:
 * 32 KiB of receive slots, 20 KiB of queues mapped in, 9 KiB of state
 * (test/rxe/rxe_scale.c prints the breakdown for 1024 of them).
 */

/*
 * zc_listen - listen for connections on the context's address
 *
 * port 0 picks a free port (see zc_listener_port()). Accepted connections
 * use opts (may be NULL). Credits are negotiated down to the smaller offer;
 * each side sends eagerly up to what the other's receive slots hold.
 *
 * Returns 0 and sets *listener, or -EINVAL (also for a context created
 * without an address: a listener needs one), -EADDRINUSE, -ENOMEM.
 */
ZC_API int zc_listen(struct zc_ctx *ctx, uint16_t port, const struct zc_conn_opts *opts,
		     struct zc_listener **listener);

/* zc_listener_port - the port a listener is bound to. */
ZC_API uint16_t zc_listener_port(struct zc_listener *listener);

/*
 * zc_accept - take the next incoming connection
 *
 * The library accepts incoming requests itself, inside progress (any
 * call on the context that makes progress: zc_wait_events(), zc_poll(),
 * waits): it creates the connection, answers the handshake and queues the
 * connection once it is established, up to a backlog of 64 handshakes and
 * queued connections together (more are rejected). zc_accept() takes the
 * oldest established connection; it waits up to timeout_ms (-1: forever,
 * 0: not at all, and then it never waits) for one, with zc_wait_events()'s
 * rule for long timeouts.
 *
 * Returns 0 and sets *conn, or -EAGAIN (timeout_ms 0, nothing queued),
 * -ETIMEDOUT, and, once each, the failure of a request the server could
 * not take: -ZC_EVERSION / -ZC_EPEERPROTO (the peer is not a compatible
 * zcrdma endpoint; it was rejected), -ENOSPC (completion queue full),
 * -ENOMEM. A request whose peer abandons the handshake (gives up, vanishes
 * or disconnects, or it takes longer than the listener's timeout_ms) is
 * dropped silently, as TCP never hands accept() a connection that died in
 * its handshake; the -ETIMEDOUT message names the last such failure.
 */
ZC_API int zc_accept(struct zc_listener *listener, struct zc_conn **conn, int timeout_ms);

/* zc_listener_free - stop listening; pending requests are rejected. */
ZC_API int zc_listener_free(struct zc_listener **listener);

/*
 * zc_connect - connect to a zcrdma listener
 *
 * addr is the peer's address (name or numeric, IPv4 or IPv6), port its
 * port; the context's address is the source (a context created without one
 * lets the route choose it, see zc_ctx_new()). Blocks up to
 * opts->timeout_ms, retrying rejected attempts with backoff.
 *
 * Returns 0 and sets *conn, or -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH,
 * -ZC_EVERSION, -ENOSPC, -ENOMEM, -EINVAL, -ENODEV (the route to the peer
 * leaves through another device than the context's).
 */
ZC_API int zc_connect(struct zc_ctx *ctx, const char *addr, uint16_t port, const struct zc_conn_opts *opts,
		      struct zc_conn **conn);

/*
 * zc_connect_start - connect without waiting
 *
 * Returns at once with *conn set to a connection being set up; the
 * handshake (address and route resolution, the connect, retries of
 * refused attempts with backoff until opts->timeout_ms) runs inside later
 * calls on the context. zc_wait_events() reports its end as one
 * ZC_EV_CONNECTED event: status 0 (the connection is open) or the error
 * zc_connect() would have returned. Until then, transfers on conn fail with
 * -ENOTCONN; after a failure they fail with that error. Either way the
 * application closes conn (zc_close(), zc_close_start() or zc_abort()).
 * zc_connect() is this call plus a wait for that outcome.
 *
 * Returns 0 and sets *conn, or -EINVAL, -EHOSTUNREACH (the name does not
 * resolve), -ENOMEM. Never waits for the network, with one exception: a
 * host name (not a numeric address) is resolved by getaddrinfo(3) within
 * the call, which may wait for DNS. Give numeric addresses in an event
 * loop.
 */
ZC_API int zc_connect_start(struct zc_ctx *ctx, const char *addr, uint16_t port, const struct zc_conn_opts *opts,
			    struct zc_conn **conn);

/*
 * zc_close - orderly close
 *
 * Waits (up to the connection's timeout) until everything sent has been
 * delivered, tells the peer that no more data follows (its receives return 0
 * once it has consumed what came before), disconnects, reclaims every
 * outstanding work request and frees the connection. Zero-copy operations
 * still pending complete with -ECONNABORTED: their completions are reaped
 * with zc_poll() after the connection is gone, so they carry conn NULL and
 * the connection's user data (zc_conn_set_data()). Sets *conn to NULL.
 *
 * Returns 0, or the error that made the close unclean (the connection is
 * freed either way).
 */
ZC_API int zc_close(struct zc_conn **conn);

/*
 * zc_close_start - orderly close without waiting
 *
 * Starts what zc_close() does (deliver what was sent, CLOSE, disconnect,
 * reclaim) and returns at once; later calls on the context carry it on.
 * The handle is the library's from now on: *conn is set to NULL, and no
 * event names the connection again except one ZC_EV_CLOSED from
 * zc_wait_events(), with conn NULL, the user data and the status
 * zc_close() would have returned; the connection is freed by then. A
 * connection still being set up is abandoned. Pending zero-copy operations
 * complete as for zc_close().
 *
 * Returns 0, or -EINVAL, -ENOMEM (nothing was started).
 */
ZC_API int zc_close_start(struct zc_conn **conn);

/*
 * zc_abort - close at once
 *
 * Disconnects without waiting for pending data; the peer's calls fail with
 * -ECONNRESET. Pending zero-copy operations complete with -ECONNABORTED, as
 * for zc_close(). Frees the connection and sets *conn to NULL.
 */
ZC_API int zc_abort(struct zc_conn **conn);

/*
 * zc_conn_set_data, zc_conn_data - the application's pointer for a connection
 *
 * Every completion and event of the connection carries it
 * (zc_completion.data, zc_event.data), even one reported after the
 * connection was closed (ZC_EV_CLOSED). NULL until set.
 */
ZC_API void zc_conn_set_data(struct zc_conn *conn, void *data);
ZC_API void *zc_conn_data(const struct zc_conn *conn);

/*
 * struct zc_conn_info - what a connection runs with (zc_conn_query())
 *
 *   local, peer   this side's and the peer's address and port (AF_INET or
 *                 AF_INET6; cast to struct sockaddr_in / sockaddr_in6)
 *   device        the RDMA device carrying it, e.g. "rxe0"
 *   credits       the credits option: the largest window either way
 *   window_in     the window this side lends the peer now: data messages
 *                 it may send beyond what this side has consumed (starts
 *                 at 1, grows while the peer uses it all; docs/protocol.md)
 *   window_out    data messages this side may send now
 *   eager_size    largest payload this side sends by copy: its own option,
 *                 bounded by the peer's receive slots
 *   eager_in      largest payload the peer may send by copy (this side's
 *                 slots)
 *   send_depth    send work requests in flight on this side
 *   read_depth    RDMA READs this side's rendezvous receives keep in
 *                 flight at most: the smaller of this device's limit and
 *                 what the peer accepts, at most 255
 *   raw           the connection is raw (RAW CONNECTIONS); then credits,
 *                 windows and eager sizes are 0, and the fields below are
 *                 read from the queue pair itself (ibv_query_qp):
 *   initiator_depth      RDMA READs this side may have in flight
 *   responder_resources  the peer's RDMA READs this side serves at once
 *   rnr_retry     receiver-not-ready retries of this side's sends (the
 *                 peer's rnr_retry option, see struct zc_conn_opts)
 *   recv_depth    the receive queue's depth (send_depth: the send queue's)
 *   For a request (zc_req_query()): local, peer, device and raw, and
 *   initiator_depth / responder_resources as the requester offered them
 *   (its READs in flight / the READs it serves); the rest 0.
 */
struct zc_conn_info {
	struct sockaddr_storage local, peer;
	char device[64];
	uint32_t credits;
	uint32_t window_in, window_out;
	uint32_t eager_size, eager_in;
	uint32_t send_depth;
	uint32_t read_depth;
	int raw;
	uint32_t initiator_depth, responder_resources;
	uint32_t rnr_retry;
	uint32_t recv_depth;
};

/* zc_conn_query - fill info for an established connection (also one that
 * has failed since). Returns 0 or -EINVAL. */
ZC_API int zc_conn_query(struct zc_conn *conn, struct zc_conn_info *info);

/* ------------------------------------------------------------------ */
/* Stream and message transfers                                        */

#define ZC_DONTWAIT 0x1 /* return -EAGAIN instead of blocking */

/*
 * zc_send - send bytes on the connection's stream
 *
 * Like send(2) on a stream socket: the bytes arrive in order, without
 * boundaries. Returns the number of bytes accepted, which is len when
 * blocking. With ZC_DONTWAIT it accepts what fits without waiting (copied
 * into the send ring) and returns -EAGAIN when nothing fits. Large blocking
 * sends go zero-copy by rendezvous: the call returns once the peer has read
 * the buffer.
 *
 * Errors: -ENOTCONN, -EPIPE (closed by zc_close(), or by the peer),
 * -ECONNRESET,
 * -ZC_ETRANSPORT, -ZC_EPEERPROTO, -ZC_EMEMLOCK, -EINVAL.
 */
ZC_API ssize_t zc_send(struct zc_conn *conn, const void *buf, size_t len, int flags);

/*
 * zc_recv - receive bytes from the connection's stream
 *
 * Like recv(2): returns 1..len bytes (partial reads keep the rest for the
 * next call), 0 once the peer closed in order and everything before was
 * consumed, or -EAGAIN with ZC_DONTWAIT when nothing is there. Data sent by
 * rendezvous is RDMA-read straight into buf.
 *
 * Errors: as zc_send().
 */
ZC_API ssize_t zc_recv(struct zc_conn *conn, void *buf, size_t len, int flags);

/*
 * zc_msg_send - send one message, keeping its boundary
 *
 * Messages up to the eager size are copied and the call returns at once.
 * Larger ones go by rendezvous: without ZC_DONTWAIT straight from buf (no
 * copy), and the call returns once the peer has read it; with ZC_DONTWAIT
 * the library sends from a copy of its own (malloc'd, freed when the peer
 * has read it), so the call never waits and buf is yours again at once. A
 * 0-byte message is allowed.
 *
 * Returns len, or -EAGAIN (ZC_DONTWAIT and no credit or send room: retry
 * after ZC_EV_WRITABLE), -EMSGSIZE (len beyond 2^40), -ENOMEM (no memory
 * for the copy), and the errors of zc_send().
 */
ZC_API ssize_t zc_msg_send(struct zc_conn *conn, const void *buf, size_t len, int flags);

/*
 * zc_msg_recv - receive one whole message
 *
 * Returns its length. If cap is smaller than the next message, returns
 * -EMSGSIZE and leaves the message queued (zc_msg_peek() tells its size).
 * 0 means a 0-byte message; end of stream is -EPIPE here.
 */
ZC_API ssize_t zc_msg_recv(struct zc_conn *conn, void *buf, size_t cap, int flags);

/* zc_msg_peek - size of the next message (blocks unless ZC_DONTWAIT). */
ZC_API ssize_t zc_msg_peek(struct zc_conn *conn, int flags);

/*
 * zc_recv_queued - bytes zc_recv() can return without waiting
 *
 * Everything that arrived and is not consumed yet, eager copies and
 * announced rendezvous alike, up to the end of stream: FIONREAD of a TCP
 * socket. Makes progress first and never blocks. 0 when nothing is queued,
 * or while buffers posted with zc_recv_zc() claim what comes.
 *
 * Returns the count, or -ENOTCONN, -ECONNRESET, -ZC_ETRANSPORT, -EINVAL
 * (a raw connection).
 */
ZC_API ssize_t zc_recv_queued(struct zc_conn *conn);

/*
 * zc_shutdown - half-close: end this side's stream, keep receiving
 *
 * Like shutdown(SHUT_WR) on a TCP socket. Everything sent before reaches
 * the peer, then its end of stream: the peer's zc_recv() returns 0 (its
 * zc_msg_recv() and zc_msg_peek() -EPIPE, and ZC_EV_PEER_CLOSED is
 * raised), while the peer may go on sending and this side receiving. Later
 * sends on this side fail with -EPIPE. zc_close() afterwards sends nothing
 * more (the end of stream went already); the peer's sends fail with -EPIPE
 * once it has seen that disconnect. Zero-copy sends still queued for credit
 * go first: the call waits for them (and for room in the send queue) unless
 * given ZC_DONTWAIT, which returns -EAGAIN instead (ZC_EV_WRITABLE says when
 * to retry).
 *
 * Returns 0, or -EAGAIN, -EPIPE (already shut down, closing, or the peer
 * closed), -ENOTCONN, -ECONNRESET, -ZC_ETRANSPORT, -EINVAL (a raw
 * connection, see RAW CONNECTIONS).
 */
ZC_API int zc_shutdown(struct zc_conn *conn, int flags);

/* ------------------------------------------------------------------ */
/* Zero-copy transfers                                                 */

enum zc_op {
	ZC_OP_SEND = 1,  /* zc_send_zc() finished: the buffer is yours again */
	ZC_OP_RECV,      /* zc_recv_zc() buffer filled with one message */
	ZC_OP_READ,      /* zc_rma_read() finished */
	ZC_OP_WRITE,     /* zc_rma_write() finished */
	ZC_OP_RAW_RECV,  /* zc_raw_recv() buffer filled by one SEND (len: its length) */
	ZC_OP_RAW_SEND,  /* zc_raw_send() finished: the buffer is yours again */
	ZC_OP_RAW_READ,  /* zc_raw_read() finished */
	ZC_OP_RAW_WRITE, /* zc_raw_write() finished */
};

/* zc_completion.flags */
#define ZC_COMP_INVALIDATED 0x1 /* RAW_RECV: the peer's SEND invalidated invalidated_rkey */

/*
 * struct zc_completion - one finished zero-copy operation
 *
 *   conn    the connection it ran on; NULL once that connection has been
 *           closed or aborted (its pending operations complete with
 *           -ECONNABORTED after it is gone: never a dangling pointer)
 *   data    the connection's user data (zc_conn_set_data()) when the
 *           operation finished
 *   token   the caller's token given at submission
 *   op      enum zc_op
 *   status  0 or a negative error code
 *   len     bytes moved (for ZC_OP_RECV, the message length; for
 *           ZC_OP_RAW_RECV, the bytes the peer's SEND carried)
 *   invalidated_rkey, flags   ZC_OP_RAW_RECV: with ZC_COMP_INVALIDATED in
 *           flags, the peer sent with invalidate and this key (one of this
 *           side's, e.g. an export's) is void now; else 0
 *
 * ORDERING
 *   RDMA orders neither way between a completion of this side and a
 *   message the peer sends in reaction to the transfer: the peer may read a
 *   zc_send_zc() message, answer it, and that answer may be received here
 *   before the ZC_OP_SEND completion is reaped. Completions of one
 *   connection are reaped in the order their operations finished, which for
 *   sends is submission order; a reply proves delivery, not that the
 *   completion was reaped.
 */
struct zc_completion {
	struct zc_conn *conn;
	void *data;
	uint64_t token;
	int op;
	int status;
	size_t len;
	uint32_t invalidated_rkey;
	int flags;
};

/*
 * zc_send_zc - submit one message by reference
 *
 * The buffer belongs to the library until the ZC_OP_SEND completion with
 * this token is reaped. mr may be NULL (the registration cache is used) or
 * a region from zc_mr_reg() covering the buffer. Messages are delivered in
 * submission order, interleaved in order with zc_msg_send() messages.
 *
 * Sends beyond the peer's credits wait in the connection's queue (four
 * times send_depth deep) and go out in order as credits return.
 *
 * Returns 0, or -EAGAIN (that queue or the completion ring is full: reap
 * completions and retry), -EINVAL, -ENOTCONN, -ECONNRESET, -ZC_EMEMLOCK.
 */
ZC_API int zc_send_zc(struct zc_conn *conn, const void *buf, size_t len, struct zc_mr *mr, uint64_t token);

/*
 * zc_recv_zc - post a destination buffer for the next message
 *
 * Incoming messages fill posted buffers in posting order (before zc_recv()
 * and zc_msg_recv() see them), and the buffers' ZC_OP_RECV completions come
 * in that order too. Large messages are RDMA-read directly into the buffer,
 * several at once when several buffers are posted. A buffer inside a
 * region from zc_mr_reg() (mr given) whose message has not arrived yet is
 * offered to the peer instead: the sender RDMA-writes its next message
 * straight into it if it fits, in one hop with no read round trip, through
 * a memory window with remote write over exactly [buf, buf+len) that the
 * sender's notice invalidates (or that is revoked when the message comes
 * another way), always before the completion. A message longer than len
 * completes with -EMSGSIZE and is discarded. The buffer belongs to the
 * library until its ZC_OP_RECV completion is reaped.
 *
 * Returns 0, or -ENOSPC (too many posted), -EINVAL, -ENOTCONN.
 */
ZC_API int zc_recv_zc(struct zc_conn *conn, void *buf, size_t len, struct zc_mr *mr, uint64_t token);

/*
 * zc_poll - make progress and reap completions
 *
 * Processes completions and connection events for every connection of the
 * context, then stores up to max zero-copy completions in comps. Waits up to
 * timeout_ms (-1 forever, 0 not at all) for at least one. It is
 * zc_wait_events() reporting completions only: set-ups, closes and
 * keepalives progress the same way, and other events stay pending.
 *
 * Returns the number stored (0 on timeout), or -EINVAL.
 */
ZC_API int zc_poll(struct zc_ctx *ctx, struct zc_completion *comps, int max, int timeout_ms);

/* ------------------------------------------------------------------ */
/* Events                                                              */

enum zc_event_type {
	ZC_EV_ACCEPT = 1,  /* listener: zc_accept() (raw: zc_req_get()) has something for you */
	ZC_EV_CONNECTED,   /* zc_connect_start() finished: status 0 or why it failed */
	ZC_EV_READABLE,    /* a message, stream bytes or the end of the stream waits */
	ZC_EV_WRITABLE,    /* room again after a send returned -EAGAIN */
	ZC_EV_PEER_CLOSED, /* the peer closed in order (its CLOSE arrived; raw: it disconnected) */
	ZC_EV_ERROR,       /* the connection failed: status is the error */
	ZC_EV_CLOSED,      /* zc_close_start() finished: status as zc_close()'s */
	ZC_EV_COMPLETION,  /* a zero-copy operation finished (as zc_poll() reports) */
};

/*
 * struct zc_event - one thing that happened
 *
 *   type      enum zc_event_type
 *   conn      the connection; NULL for ZC_EV_ACCEPT, for ZC_EV_CLOSED (it
 *             is freed) and for completions of a closed connection
 *   listener  the listener of ZC_EV_ACCEPT, else NULL
 *   data      the connection's user data (zc_conn_set_data())
 *   status    0 or a negative error code (CONNECTED, ERROR, CLOSED,
 *             COMPLETION)
 *   token, op, len, invalidated_rkey, flags   ZC_EV_COMPLETION only: as
 *             in struct zc_completion
 */
struct zc_event {
	int type;
	struct zc_conn *conn;
	struct zc_listener *listener;
	void *data;
	int status;
	uint64_t token;
	int op;
	size_t len;
	uint32_t invalidated_rkey;
	int flags;
};

/*
 * zc_wait_events - make progress and report what happened
 *
 * Processes completions, connection events and due timers for the whole
 * context (as zc_poll() does), then stores up to max events in evs. Waits
 * up to timeout_ms (-1 forever, 0 not at all: it then never waits or
 * sleeps) for at least one; a timeout of 20 coarse clock ticks or more
 * (CLOCK_MONOTONIC_COARSE, e.g. 100 ms at 250 Hz) may run over by one tick,
 * so that its deadline costs no read of the precise clock (a system call
 * where the kernel does not trust the TSC). Returns the number stored (0 on
 * timeout), or -EINVAL.
 *
 * TRIGGERING (as epoll(7) would call it)
 *   Level-triggered, reported by every call while they hold (at most once
 *   per call):
 *     ZC_EV_READABLE  while zc_recv()/zc_msg_recv()/zc_msg_peek() with
 *                     ZC_DONTWAIT would not return -EAGAIN: data, or the
 *                     end of the stream (which stays: close the
 *                     connection). Not while zc_recv_zc() buffers are
 *                     posted (messages go to them) or after ZC_EV_ERROR.
 *     ZC_EV_ACCEPT    while zc_accept(l, &c, 0) would not return -EAGAIN.
 *   Edge-triggered, once per occurrence:
 *     ZC_EV_WRITABLE  once after zc_send(), zc_msg_send() or zc_send_zc()
 *                     returned -EAGAIN (or a ZC_DONTWAIT zc_send() took
 *                     less than len), when a credit and send-queue room
 *                     are back (and no zc_send_zc() is still queued);
 *                     another -EAGAIN arms it again. Not for a full
 *                     completion ring: reap completions for that.
 *     ZC_EV_COMPLETION  once per zero-copy operation.
 *   Once per connection: ZC_EV_CONNECTED, ZC_EV_PEER_CLOSED, ZC_EV_ERROR,
 *   ZC_EV_CLOSED.
 *   Events of one connection come in this order within a call:
 *   CONNECTED, WRITABLE, READABLE, PEER_CLOSED, ERROR. A connection that
 *   zc_accept() has not handed out yet reports nothing; its events follow
 *   once it has been.
 *
 * NO MISSED WAKE-UPS
 *   zc_wait_events() with a timeout returns as soon as any event holds.
 *   An application sleeping in its own epoll/poll on zc_ctx_fd() must, as
 *   for zc_poll(), first call zc_wait_events(ctx, evs, max, 0) until it
 *   returns fewer than max, and for each READABLE (ACCEPT) it got, receive
 *   (accept) until -EAGAIN, or call zc_wait_events() again instead of
 *   sleeping: a level-triggered event still holding does not make the fd
 *   readable. After that the fd becomes readable when anything new
 *   happens, including a keepalive or handshake timeout coming due (a
 *   timerfd in the context's set). Spurious wake-ups are possible.
 *   Only a call with timeout 0 (and a ZC_DONTWAIT call answering -EAGAIN)
 *   prepares the fd like this, at the cost of a few system calls; a call
 *   with a timeout that finds events at once makes none, so a loop that
 *   busy-polls with zc_wait_events(ctx, evs, max, T) stays free of them.
 *   A loop that spins over several sources before it sleeps (a poll()
 *   over other fds too, a preload shim) takes events with zc_take_events()
 *   while it spins and calls zc_wait_events(ctx, evs, max, 0) only on the
 *   look right before it sleeps.
 *
 * COST
 *   Finding ready connections does not grow with the number of
 *   connections: a connection is looked at when something happened to it
 *   (zc_stats.event_checks counts the looks), keepalive checks take only
 *   connections that are due (zc_stats.keepalive_checks), and set-ups and
 *   closes in progress are advanced on their own list.
 *
 * DEAD PEERS
 *   Every open connection with keepalive_ms set is checked every
 *   keepalive_ms / 4 by zc_wait_events() and zc_poll(): a peer silent for
 *   keepalive_ms is probed, and a dead one is reported as ZC_EV_ERROR
 *   (-ZC_ETRANSPORT, or -ECONNRESET) once retry_count runs out (about
 *   5 s on rxe with the defaults), also while the application only sleeps
 *   in zc_wait_events() or on zc_ctx_fd().
 */
ZC_API int zc_wait_events(struct zc_ctx *ctx, struct zc_event *evs, int max, int timeout_ms);

/*
 * zc_take_events - the events that hold now, leaving the fd as it is
 *
 * What zc_wait_events(ctx, evs, max, 0) returns, without preparing
 * zc_ctx_fd() for a sleep: the completion queue is not armed and the
 * connection-manager channel is looked at only every 64th call, so a look
 * makes no system call of its own (beyond the doorbell of raw operations
 * held with ZC_RAW_MORE, which it posts). For busy-polling loops; before sleeping
 * on the fd, call zc_wait_events(..., 0) (NO MISSED WAKE-UPS). Returns the
 * number stored (0: nothing now), or -EINVAL.
 */
ZC_API int zc_take_events(struct zc_ctx *ctx, struct zc_event *evs, int max);

/* ------------------------------------------------------------------ */
/* Memory registration                                                 */

#define ZC_ACCESS_REMOTE_READ 0x1  /* the peer may RDMA-READ (via exports) */
#define ZC_ACCESS_REMOTE_WRITE 0x2 /* the peer may RDMA-WRITE (via exports) */

/*
 * zc_mr_reg - register memory for zero-copy use
 *
 * Pins [addr, addr + len) for the context's device. Read-only pages (a
 * PROT_READ file mapping) are registered read-only, so they can be sent
 * without a copy but not received into. The region grants no remote
 * access by itself; access lists the rights zc_export() may later
 * hand out on sub-ranges. Checks RLIMIT_MEMLOCK first.
 *
 * Returns 0 and sets *mr, or -ZC_EMEMLOCK (the limit and the size needed
 * are in zc_last_error()), -EINVAL, -ENOMEM, -EFAULT (not mapped).
 */
ZC_API int zc_mr_reg(struct zc_ctx *ctx, void *addr, size_t len, int access, struct zc_mr **mr);

/* zc_mr_dereg - deregister; -EBUSY while exports of it exist. */
ZC_API int zc_mr_dereg(struct zc_mr **mr);

/*
 * zc_mr_invalidate - forget cached registrations of a range
 *
 * Drops every cache entry overlapping [addr, addr + len) at once. With the
 * memory hooks on (the default) this is never needed for correctness: it
 * is a fast path for memory the application is about to reuse in a way no
 * hook sees, and the only way with no_memhooks set (then call it before
 * freeing or unmapping memory that was passed unregistered to the zero-copy
 * paths). Registrations still used by pending transfers are released when
 * those finish. Returns the number of cache entries dropped.
 */
ZC_API int zc_mr_invalidate(struct zc_ctx *ctx, const void *addr, size_t len);

/*
 * REGISTRATION CACHE
 *   Buffers passed without a zc_mr are registered on first use and the
 *   registration is kept (pinned pages and all) for the next transfer
 *   from or into the same range. A registration pins the pages that were
 *   mapped when it was made; if the application later unmaps the range and
 *   maps new memory at the same address, a cache hit would move the OLD
 *   pages. So the first zc_ctx_new() (unless opts.no_memhooks) installs
 *   process-wide memory hooks that record every range given up by munmap,
 *   mremap (old range; a fixed destination too), mmap with MAP_FIXED,
 *   madvise MADV_DONTNEED / MADV_FREE / MADV_REMOVE / MADV_DONTNEED_LOCKED,
 *   brk/sbrk shrinking the heap, and shmdt. Every call on a context first
 *   applies the ranges recorded since its previous call (one atomic load
 *   when nothing happened), so a hit is only served from pages still
 *   mapped where they were registered. zc_stats counts the entries dropped
 *   by each cause.
 *
 *   zc_caps.memhooks tells how the hooks are installed. ZC_MEMHOOKS_PATCH
 *   (x86_64 with glibc): the entries of libc's own munmap, mremap, mmap,
 *   madvise, brk and shmdt jump to the library's handlers, so the calls
 *   glibc makes internally (malloc, free, malloc_trim, realloc) are seen
 *   too. ZC_MEMHOOKS_INTERPOSE (other architectures, or libc could not be
 *   patched): libzcrdma exports those functions (not brk/sbrk), which
 *   catches calls through the dynamic linker but not libc's internal ones:
 *   free() of a large block or a trimmed heap then goes unseen; call
 *   zc_mr_invalidate() or register with zc_mr_reg().
 *
 *   A transfer in flight keeps its registration: its pages stay pinned
 *   until it completes even when the range is unmapped meanwhile, so a
 *   posted send moves the bytes the old pages held at unmap time and a
 *   receive lands in pages nobody can see any more (or the transfer
 *   fails); no later transfer uses them. A zc_send_zc() still queued in
 *   the library (waiting for credits or, on rxe, for an idle send queue)
 *   is registered only when it goes out, so it carries what is mapped at
 *   that address then; likewise a zc_recv_zc() buffer is registered when a
 *   message arrives for it (which is why only buffers in a zc_mr are
 *   offered to the peer ahead of their message). Unmapping a buffer lent to the library breaks
 *   BUFFER OWNERSHIP; this only defines what happens.
 *
 *   Not covered: system calls made without libc (raw syscall(2), inline
 *   assembly, allocators that map memory that way such as ASan's and
 *   valgrind's replacement malloc, another
 *   libc such as musl, static binaries whose libc is not
 *   the shared glibc), another process changing a shared mapping's file or
 *   pages (truncate, hole punching), shmat with SHM_REMAP, and a fork()ed
 *   child's copy-on-write (the parent keeps its pinned pages; see
 *   rxe_fork). A library that patches the same functions after zcrdma
 *   disables these hooks. The hooks run inside malloc and free: they never
 *   allocate or lock anything but a spinlock of their own, which also
 *   means a signal handler that unmaps memory while its thread is inside a
 *   zcrdma call could deadlock.
 */

/* ------------------------------------------------------------------ */
/* One-sided RMA                                                       */

#define ZC_DESC_SIZE 32

/*
 * struct zc_desc - a remotely accessible range, as bytes to hand the peer
 *
 * Opaque, fixed size, position independent: send it with zc_msg_send() or
 * any other channel. It names the range, the rights and a key.
 */
struct zc_desc {
	uint8_t bytes[ZC_DESC_SIZE];
};

/*
 * zc_export - grant the peer of conn access to part of a region
 *
 * Binds a type-2 memory window to exactly [offset, offset + len) of mr with
 * exactly the rights in access (ZC_ACCESS_REMOTE_READ and/or _WRITE, a subset
 * of those mr was registered with) on conn's queue pair, so only conn's peer
 * can use it, and writes its descriptor to *desc. Blocks until the window is
 * bound. Where the device has no type-2 windows (or mr_fallback is set) a
 * region of its own covering exactly the range is registered instead. The
 * grant lasts until zc_export_revoke(); revoke exports before deregistering
 * mr (zc_mr_dereg() fails with -EBUSY otherwise), also after the connection
 * closed (the grant is already void then).
 *
 * Returns 0 and sets *exp, or -EINVAL (range outside the region, no
 * rights), -EPERM (rights beyond the region's), -ENOTCONN, -ENOMEM.
 */
ZC_API int zc_export(struct zc_conn *conn, struct zc_mr *mr, size_t offset, size_t len, int access,
		     struct zc_export **exp, struct zc_desc *desc);

/*
 * zc_export_revoke - withdraw an export
 *
 * The window is invalidated at once: later accesses by the peer fail with a
 * remote access error (which also ends the peer's connection). Sets *exp to
 * NULL. Returns 0 or -EINVAL.
 */
ZC_API int zc_export_revoke(struct zc_export **exp);

/*
 * zc_rma_read / zc_rma_write - one-sided transfers against a peer's export
 *
 * Move len bytes between local [buf, buf + len) and the peer's exported
 * range at remote_off, without the peer's CPU. mr may be NULL (registration
 * cache). The descriptor is validated locally first: -EINVAL for a range
 * outside it or a malformed descriptor, -EPERM for rights it does not grant.
 * Completion: ZC_OP_READ / ZC_OP_WRITE with token via zc_poll(); a revoked
 * export completes with -ZC_EREMOTEACCESS, and (as RDMA defines it) the
 * connection fails with it.
 *
 * Returns 0, or -EAGAIN (no send-queue room: reap completions and retry),
 * -ENOTCONN, -ECONNRESET, -ZC_EMEMLOCK and the validation errors above.
 */
ZC_API int zc_rma_read(struct zc_conn *conn, void *buf, size_t len, struct zc_mr *mr, const struct zc_desc *remote,
		       uint64_t remote_off, uint64_t token);
ZC_API int zc_rma_write(struct zc_conn *conn, const void *buf, size_t len, struct zc_mr *mr,
			const struct zc_desc *remote, uint64_t remote_off, uint64_t token);

/* ------------------------------------------------------------------ */
/* Raw connections                                                     */

/*
 * RAW CONNECTIONS
 *   A raw connection is a bare reliable-connected queue pair for a
 *   standard protocol (NVMe over Fabrics, iSER, ...) that the application
 *   speaks itself: zcrdma adds no header, no credits and no receive slots
 *   of its own, and the rdma_cm private data is the application's. It
 *   lives on the same context as zcrdma connections: the same completion
 *   queue, event fd, zc_wait_events()/zc_poll() completions and events,
 *   registration cache (mr NULL), exports and error reporting.
 *
 *   Server:                                   Client:
 *     opts.raw = 1; zc_listen(ctx, port,        opts.raw = 1;
 *                      &opts, &l)               opts.private_data = req;
 *     ZC_EV_ACCEPT: zc_req_get(l, &r, 0)        zc_connect_start(ctx, addr,
 *     zc_req_private_data(r, &pd, &n)             port, &opts, &c)
 *     zc_req_accept(&r, &opts, &c)  (or         ZC_EV_CONNECTED (status 0):
 *        zc_req_reject(&r, rej, len))             zc_conn_peer_private_data()
 *     zc_raw_recv(c, ...) x N  (before the        zc_raw_recv(c, ...) x N
 *        reply goes out at the next progress)     zc_raw_send(c, cmd, ...)
 *     ZC_EV_CONNECTED (status 0)
 *     ZC_EV_COMPLETION op ZC_OP_RAW_RECV: a command arrived ...
 *
 *   Raw queue pairs have receive queues of their own (raw_recv_depth) and
 *   never attach to the context's shared receive queue; the application
 *   posts every receive buffer itself and must keep enough posted: a SEND
 *   that finds none is retried by the peer's NIC (receiver not ready, up
 *   to the peer's rnr_retry) and then fails the connection. A SEND longer
 *   than the receive buffer it lands in fails that receive (-EMSGSIZE where
 *   the device reports the length error; rxe flushes it, -ECONNRESET) and,
 *   as RDMA defines it, the connection. The zcrdma calls (zc_send(),
 *   zc_recv(), zc_msg_*(), zc_send_zc(), zc_recv_zc()) fail with -EINVAL on
 *   a raw connection and the zc_raw_*() calls on a zcrdma one;
 *   zc_export(), zc_rma_read()/zc_rma_write(), zc_conn_query(), zc_close(),
 *   zc_close_start() and zc_abort() work on both. A zcrdma listener rejects
 *   raw clients (their private data is not zcrdma's) and a raw listener
 *   hands zcrdma clients' requests to the application like any other.
 *
 *   Every raw operation completes exactly once, through zc_poll() or
 *   ZC_EV_COMPLETION, with its token: status 0, or a negative error such
 *   as -ZC_EREMOTEACCESS (a bad or invalidated key), -EMSGSIZE, -ZC_ERNR,
 *   -ZC_ETRANSPORT. When the connection fails or closes, posted receives
 *   and operations in flight complete with its error (-ECONNRESET when the
 *   peer disconnected, -ECONNABORTED after zc_close()/zc_abort()), so their
 *   buffers can be freed. The peer disconnecting is ZC_EV_PEER_CLOSED (raw
 *   connections have no CLOSE message); any other failure is ZC_EV_ERROR.
 *   A raw operation counts against the completion ring (zc_ctx_opts.
 *   cq_depth operations outstanding per context, receives posted
 *   included) and its queue: either full is -EAGAIN. WRITABLE follows a
 *   zc_raw_send()/_read()/_write() -EAGAIN once send-queue room is back.
 *
 *   Every posting call rings the device's doorbell (on soft-RoCE, a
 *   system call). ZC_RAW_MORE in a zc_raw_send()/_read()/_write() says
 *   more follows (libfabric's FI_MORE): the operation is accepted (its
 *   queue room and completion taken, 0 returned) but held on the
 *   connection, and goes to the device with everything held before it,
 *   in order and with one doorbell, by the next of those calls on the
 *   connection without the flag, or at the latest by the next call that
 *   makes progress on the context (zc_poll(), zc_wait_events(),
 *   zc_take_events(), a blocking call): nothing stays held while the
 *   application waits. At most 16 wait on a connection; a 17th rings
 *   for them first. An NVMe-oF target answers a Read so, as Linux's
 *   does: zc_raw_write(data, ZC_RAW_MORE) then zc_raw_send(response); RC
 *   ordering places the data before the response. The operations of one doorbell but its last
 *   make no completion of their own on the device (they are unsignaled):
 *   each still completes exactly once with its token, when the last one
 *   does, or with the error if one fails (a failed WRITE fails the
 *   connection, so the SEND after it completes with the connection's
 *   error too). So a response SEND's completion can trail the peer's
 *   next requests by more than one round: the peer acts on the response
 *   when it arrives, while its completion here waits for the last
 *   operation of its doorbell (under 1 % packet loss, two rounds were
 *   seen). What is freed on those completions is not bounded by the
 *   peer's queue depth: zc_blk_target queues a capsule that finds no
 *   free request. A held operation's buffer belongs to the library until
 *   its completion, even one short enough to go inline. zc_ctx_stats()
 *   counts the doorbells (send_posts) and work requests (send_wrs).
 *
 *   The private data lengths rdma_cm reports are those of the whole field
 *   on InfiniBand and RoCE (56 bytes of a request, 196 of a reply, 148 of
 *   a reject), zero-padded beyond what the peer put there.
 */
struct zc_conn_req;

/*
 * zc_req_get - take the next connection request of a raw listener
 *
 * A raw listener (zc_listen() with opts.raw set) does not accept requests
 * by itself: they queue (up to 64, more are rejected) until the
 * application takes each with zc_req_get() and answers it with
 * zc_req_accept() or zc_req_reject(). ZC_EV_ACCEPT reports the listener
 * while requests wait (level-triggered). Waits up to timeout_ms (-1
 * forever, 0 not at all) for one.
 *
 * Returns 0 and sets *req, or -EAGAIN (timeout_ms 0 and none waiting),
 * -ETIMEDOUT, -EINVAL (not a raw listener, NULL arguments).
 */
ZC_API int zc_req_get(struct zc_listener *listener, struct zc_conn_req **req, int timeout_ms);

/*
 * zc_req_private_data - the private data of a connection request
 *
 * Sets *data to the request's private data (valid until the request is
 * answered) and *len to its length (see RAW CONNECTIONS for padding).
 * Returns 0 or -EINVAL.
 */
ZC_API int zc_req_private_data(const struct zc_conn_req *req, const void **data, size_t *len);

/*
 * zc_req_query - what is known of a request: addresses, device, and the
 * requester's READ depths (struct zc_conn_info). Returns 0 or -EINVAL.
 */
ZC_API int zc_req_query(const struct zc_conn_req *req, struct zc_conn_info *info);

/*
 * zc_req_accept - accept a connection request as a raw connection
 *
 * Creates the connection and its queue pair with opts (NULL: the
 * listener's; opts->raw must be set) and returns it at once in *conn,
 * still being set up: the reply, carrying opts->private_data (at most
 * ZC_PRIV_REP_MAX bytes), is sent by the next call that makes progress on
 * the context (zc_wait_events(), zc_poll(), a blocking call), so receive
 * buffers posted with zc_raw_recv() right after this call are in place
 * before the peer can send. The connection's initiator depth and
 * responder resources are capped to what the requester offered. When the
 * peer confirms, ZC_EV_CONNECTED reports status 0 and transfers may start;
 * a set-up that fails (the peer gives up, opts->timeout_ms passes) reports
 * its error there, and posted receives complete with it. Either way the
 * application closes the connection. *req is consumed (set to NULL) also
 * on failure, when the request is rejected without private data.
 *
 * Returns 0 and sets *conn, or -EINVAL (bad options, private data too
 * long, not a raw request), -ENOSPC (the completion queue cannot take
 * raw_send_depth + raw_recv_depth more entries), -ENOMEM, or the error of
 * creating the queue pair.
 */
ZC_API int zc_req_accept(struct zc_conn_req **req, const struct zc_conn_opts *opts, struct zc_conn **conn);

/*
 * zc_req_reject - refuse a connection request
 *
 * Sends a reject carrying private_data (len at most ZC_PRIV_REJ_MAX; NULL
 * with len 0 for none): a raw client's connect fails with -ECONNREFUSED
 * and zc_conn_peer_private_data() returns these bytes. Frees the request
 * and sets *req to NULL, also on failure. Returns 0, or -EINVAL (private
 * data too long: the request is rejected without it).
 */
ZC_API int zc_req_reject(struct zc_conn_req **req, const void *private_data, size_t len);

/*
 * zc_conn_peer_private_data - the private data the peer sent
 *
 * For a raw connection that connected: the reply's; after its connect was
 * rejected (ZC_EV_CONNECTED or zc_connect() with -ECONNREFUSED; only
 * zc_connect_start() leaves a handle to ask): the reject's; for an
 * accepted one: the request's. *data stays valid while the connection
 * lives. Returns 0, or -ENOENT (nothing received yet), -EINVAL.
 */
ZC_API int zc_conn_peer_private_data(const struct zc_conn *conn, const void **data, size_t *len);

/* zc_raw_send(), zc_raw_read() and zc_raw_write() flags */
#define ZC_RAW_INVALIDATE 0x1 /* zc_raw_send(): SEND_WITH_INVALIDATE of invalidate_rkey */
#define ZC_RAW_MORE 0x2       /* more follows: hold for the next doorbell (RAW CONNECTIONS) */

/*
 * zc_raw_recv - post a receive buffer on a raw connection
 *
 * The next SEND from the peer lands in [buf, buf + len) (receives are
 * filled in posting order); its ZC_OP_RAW_RECV completion says how many
 * bytes it carried and whether it invalidated one of this side's keys. The
 * buffer belongs to the library until then. mr may be NULL (registration
 * cache) or a region covering the buffer. Allowed once the connection is
 * open, and on an accepted one also before (right after zc_req_accept()).
 *
 * Returns 0, or -EAGAIN (raw_recv_depth receives posted, or the completion
 * ring full), -EINVAL (not raw, len 0 or beyond the device's largest
 * message, buffer outside mr), -EFAULT (not writable memory), -ENOTCONN,
 * the connection's error, -ZC_EMEMLOCK.
 */
ZC_API int zc_raw_recv(struct zc_conn *conn, void *buf, size_t len, struct zc_mr *mr, uint64_t token);

/*
 * zc_raw_send - send one message on a raw connection
 *
 * Posts a SEND of [buf, buf + len) exactly as given (0 bytes allowed),
 * with ZC_RAW_INVALIDATE in flags a SEND_WITH_INVALIDATE of
 * invalidate_rkey (a key the peer gave: the peer's NIC voids it), with
 * ZC_RAW_MORE held for the next doorbell (see RAW CONNECTIONS). Up to
 * the device's max_inline bytes go inline: the buffer is copied when the
 * SEND is posted (at once unless held) and needs no registration.
 * Otherwise it belongs to the library until the ZC_OP_RAW_SEND
 * completion.
 *
 * Returns 0, or -EAGAIN (raw_send_depth sends, reads and writes in flight,
 * or the completion ring full), -EINVAL (not raw, unknown flags, len beyond
 * the device's largest message, buffer outside mr), -ENOTCONN, the
 * connection's error, -ZC_EMEMLOCK.
 */
ZC_API int zc_raw_send(struct zc_conn *conn, const void *buf, size_t len, struct zc_mr *mr, uint64_t token,
		       int flags, uint32_t invalidate_rkey);

/*
 * zc_raw_read / zc_raw_write - RDMA READ / WRITE against a raw remote range
 *
 * Move len bytes between local [buf, buf + len) and the peer's memory at
 * remote_addr with rkey, as taken off the wire (e.g. an NVMe keyed SGL).
 * Nothing can be checked locally: a bad key, range or right completes
 * with -ZC_EREMOTEACCESS and, as RDMA defines it, fails the connection.
 * READs beyond the initiator depth wait in the send queue. Transfers
 * larger than the device's largest message are split (one doorbell for
 * all the pieces). flags: 0, or ZC_RAW_MORE to hold the operation for
 * the next doorbell (see RAW CONNECTIONS).
 *
 * Returns 0, or -EAGAIN (send queue or completion ring full), -EINVAL (not
 * raw, len 0, unknown flags, buffer outside mr), -EFAULT (read into
 * unwritable memory), -ENOTCONN, the connection's error, -ZC_EMEMLOCK.
 */
ZC_API int zc_raw_read(struct zc_conn *conn, void *buf, size_t len, struct zc_mr *mr, uint64_t remote_addr,
		       uint32_t rkey, uint64_t token, int flags);
ZC_API int zc_raw_write(struct zc_conn *conn, const void *buf, size_t len, struct zc_mr *mr, uint64_t remote_addr,
			uint32_t rkey, uint64_t token, int flags);

/*
 * zc_export_key - the raw address and key of an export
 *
 * For protocols that carry (address, key) themselves, e.g. an NVMe keyed
 * SGL: *addr is the virtual address of the exported range's first byte
 * and *rkey its key, valid only for the export's connection's peer. If
 * that peer invalidated the key (a SEND_WITH_INVALIDATE whose
 * ZC_OP_RAW_RECV completion named it), the export is void: later accesses
 * fail, this call returns -ESTALE, and zc_export_revoke() still frees it.
 *
 * Returns 0, or -ESTALE (invalidated by the peer), -ENOTCONN (its
 * connection is gone: the grant is void), -EINVAL.
 */
ZC_API int zc_export_key(const struct zc_export *exp, uint64_t *addr, uint32_t *rkey);

/* ------------------------------------------------------------------ */
/* Errors and version                                                  */

/* Error codes beyond errno, returned negated like errno values. */
enum zc_error {
	ZC_ERRNO_BASE = 10000,
	ZC_EMEMLOCK,      /* pinning would exceed RLIMIT_MEMLOCK */
	ZC_EREMOTEACCESS, /* the peer refused an RDMA access (bad or revoked key) */
	ZC_ERNR,          /* receiver not ready: a flow-control violation */
	ZC_EPEERPROTO,    /* the peer broke the zcrdma wire protocol */
	ZC_EVERSION,      /* the peer speaks another protocol version */
	ZC_ETRANSPORT,    /* the NIC gave up on the connection (retries exhausted) */
	ZC_ERRNO_MAX
};

/*
 * zc_version - the library's version
 *
 * Returns the version as "MAJOR.MINOR.PATCH", a static string.
 */
ZC_API const char *zc_version(void);

/*
 * zc_strerror - describe an error code
 *
 * err is a value returned by a zcrdma function: a negative errno or a
 * negative ZC_E* code (positive values are accepted as well). Returns a
 * static string that names the cause and, where there is one, the fix.
 * Unknown codes give "unknown error".
 */
ZC_API const char *zc_strerror(int err);

/*
 * zc_last_error - details of the calling thread's last failure
 *
 * Returns a thread-local string describing the most recent error a zcrdma
 * function returned in this thread, with specifics (e.g. "registering 16 MiB
 * needs 16388 KiB of locked memory but ulimit -l is 64 KiB: raise ulimit -l
 * or grant CAP_IPC_LOCK"). Empty when nothing failed yet. Valid until the next
 * zcrdma call in the same thread. A call's own failure is what it describes:
 * failures the call noticed on other connections while making progress
 * (a peer that vanished) are kept with those connections, and the calls
 * that later report them there restore their details.
 */
ZC_API const char *zc_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* ZCRDMA_H */
