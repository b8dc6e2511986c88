/*
 * The control connection: a small RC QP of its own, next to the tests' data
 * path, so barriers and result exchange never disturb what is measured.
 * Lock-step messages (struct perf_msg); every wait watches the rdma_cm
 * channel too, so a vanished peer ends it instead of hanging.
 */
#ifndef ZC_PERF_CTRL_H
#define ZC_PERF_CTRL_H

#include <infiniband/verbs.h>
#include <stdint.h>

#include "perf_cm.h"
#include "perf_wire.h"

#define PERF_CTRL_SLOTS 8
#define PERF_CTRL_SLOT 256
#define PERF_CTRL_MS 30000 /* a control exchange that takes longer means trouble */

struct perf_ctrl {
	struct perf_cm *cm;
	struct rdma_cm_id *id;
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	struct ibv_mr *mr;
	uint8_t *buf; /* PERF_CTRL_SLOTS receive slots, then one send slot */
	int armed;
	int send_busy;
	struct perf_msg inbox[PERF_CTRL_SLOTS];
	int ninbox;
	int connected;
};

/* QP, CQ and posted receives on id (before it connects or is accepted). */
int perf_ctrl_init(struct perf_ctrl *c, struct perf_cm *cm, struct rdma_cm_id *id, struct ibv_pd *pd);

/*
 * Disconnects (if connected) and frees the QP and its resources. The id stays:
 * its owner destroys it after the PD, as the id may hold the last reference
 * to the device.
 */
void perf_ctrl_destroy(struct perf_ctrl *c);

int perf_ctrl_send(struct perf_ctrl *c, struct perf_msg *m);

/* Next message, waiting at most timeout_ms (< 0: until the stop flag). */
int perf_ctrl_recv(struct perf_ctrl *c, struct perf_msg *m, int timeout_ms);

/* Non-blocking: 1 and a message, 0 if none yet, < 0 on error or disconnect. */
int perf_ctrl_poll(struct perf_ctrl *c, struct perf_msg *m);

/*
 * Receive the message of the given type and seq; an ABORT from the peer
 * becomes -ECONNABORTED with its reason.
 */
int perf_ctrl_expect(struct perf_ctrl *c, int type, uint32_t seq, struct perf_msg *m, int timeout_ms);

/* Both sides reach this point for step seq before either goes on. */
int perf_ctrl_barrier(struct perf_ctrl *c, uint32_t seq);

/* Best effort: tell the peer why we give up. */
void perf_ctrl_abort(struct perf_ctrl *c, int code, const char *why);

#endif
