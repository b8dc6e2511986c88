/*
 * rdma_cm plumbing shared by the control connection and the tests' data
 * connections: one event channel per process, every wait bounded by a
 * timeout or the stop flag, and events for another id kept for later instead
 * of being mistaken for errors.
 */
#ifndef ZC_PERF_CM_H
#define ZC_PERF_CM_H

#include <rdma/rdma_cma.h>
#include <stddef.h>
#include <sys/socket.h>

#define PERF_CM_STEP_MS 10000   /* one connection setup step */
#define PERF_CM_RESOLVE_MS 2000 /* one resolve attempt (retried) */
#define PERF_CM_PENDING 32

struct perf_cm {
	struct rdma_event_channel *ch;
	struct rdma_cm_id *listen_id;            /* server only */
	struct sockaddr_storage src, dst;        /* client: --bind and SERVER */
	int have_src;
	struct rdma_cm_event *pending[PERF_CM_PENDING]; /* fetched, not yet consumed */
	int npending;
};

int perf_cm_open(struct perf_cm *cm);
void perf_cm_close(struct perf_cm *cm);

/* Server: listen on bind (NULL: any address) and port. */
int perf_cm_listen(struct perf_cm *cm, const char *bind, int port, char *err, size_t errlen);

/* Client: look up SERVER and --bind once. */
int perf_cm_set_peer(struct perf_cm *cm, const char *bind, const char *server, int port, char *err,
		     size_t errlen);

/*
 * Next event of the given type (for id, or any id when id is NULL), waiting
 * at most timeout_ms (< 0: until the stop flag). Other ids' connect requests
 * and establishments are kept for later callers; anything else unexpected is
 * an error (-ECONNRESET for a disconnect, -EPROTO otherwise) described in err.
 * The caller acks the returned event.
 */
int perf_cm_wait(struct perf_cm *cm, struct rdma_cm_id *id, enum rdma_cm_event_type type, int timeout_ms,
		 struct rdma_cm_event **ev, char *err, size_t errlen);

/*
 * Client: a new id resolved to the peer (address and route, retried), so
 * id->verbs names the device. Rejected from the next call: the caller
 * creates a QP and calls perf_cm_connect.
 */
int perf_cm_client_id(struct perf_cm *cm, struct rdma_cm_id **id, char *err, size_t errlen);

/*
 * Client: connect id and wait until established. The server's private data
 * is copied to peer_pd (at most *peer_len bytes; *peer_len becomes the
 * length). A zc_perf server's refusal comes back as -ECONNREFUSED with its
 * reason in err; no listener at all as -EHOSTUNREACH.
 */
int perf_cm_connect(struct perf_cm *cm, struct rdma_cm_id *id, struct rdma_conn_param *param, void *peer_pd,
		    size_t *peer_len, char *err, size_t errlen);

/* Server: accept id and wait until established. */
int perf_cm_accept(struct perf_cm *cm, struct rdma_cm_id *id, struct rdma_conn_param *param, char *err,
		   size_t errlen);

/* Non-blocking: 0, or -ECONNRESET if a disconnect (or device loss) arrived. */
int perf_cm_check(struct perf_cm *cm, char *err, size_t errlen);

/* "192.168.77.2:18515" */
const char *perf_cm_addr_str(const struct sockaddr *sa, char *buf, size_t len);

#endif
