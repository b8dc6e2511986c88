/* Control messages over their own RC QP. */
#include "perf_ctrl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf_err.h"
#include "perf_time.h"

_Static_assert(sizeof(struct perf_msg) <= PERF_CTRL_SLOT, "a control message must fit its slot");

#define SLICE_MS 200
#define SEND_WR_ID ((uint64_t)PERF_CTRL_SLOTS)

static int post_recv(struct perf_ctrl *c, int slot)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)(c->buf + (size_t)slot * PERF_CTRL_SLOT),
		.length = PERF_CTRL_SLOT,
		.lkey = c->mr->lkey,
	};
	struct ibv_recv_wr wr = {.wr_id = (uint64_t)slot, .sg_list = &sge, .num_sge = 1}, *bad;
	int rc = ibv_post_recv(c->id->qp, &wr, &bad);

	return rc ? perf_err(rc, "control: ibv_post_recv: %s", strerror(rc)) : 0;
}

int perf_ctrl_init(struct perf_ctrl *c, struct perf_cm *cm, struct rdma_cm_id *id, struct ibv_pd *pd)
{
	struct ibv_qp_init_attr attr;
	size_t len = (size_t)(PERF_CTRL_SLOTS + 1) * PERF_CTRL_SLOT;
	int i, rc;

	memset(c, 0, sizeof(*c));
	c->cm = cm;
	c->id = id;
	c->cc = ibv_create_comp_channel(id->verbs);
	c->cq = c->cc ? ibv_create_cq(id->verbs, 2 * PERF_CTRL_SLOTS, NULL, c->cc, 0) : NULL;
	c->buf = calloc(1, len);
	if (!c->cq || !c->buf)
		return perf_err(errno ? errno : ENOMEM, "control: CQ: %s", strerror(errno ? errno : ENOMEM));
	c->mr = ibv_reg_mr(pd, c->buf, len, IBV_ACCESS_LOCAL_WRITE);
	if (!c->mr)
		return perf_err(errno, "control: ibv_reg_mr: %s", strerror(errno));
	memset(&attr, 0, sizeof(attr));
	attr.send_cq = c->cq;
	attr.recv_cq = c->cq;
	attr.qp_type = IBV_QPT_RC;
	attr.sq_sig_all = 1;
	attr.cap.max_send_wr = 4;
	attr.cap.max_recv_wr = PERF_CTRL_SLOTS;
	attr.cap.max_send_sge = 1;
	attr.cap.max_recv_sge = 1;
	if (rdma_create_qp(id, pd, &attr))
		return perf_err(errno, "control: rdma_create_qp: %s", strerror(errno));
	for (i = 0; i < PERF_CTRL_SLOTS; i++) {
		rc = post_recv(c, i);
		if (rc)
			return rc;
	}
	return 0;
}

void perf_ctrl_destroy(struct perf_ctrl *c)
{
	if (c->id) {
		if (c->connected)
			rdma_disconnect(c->id);
		if (c->id->qp)
			rdma_destroy_qp(c->id);
	}
	if (c->mr)
		ibv_dereg_mr(c->mr);
	if (c->cq)
		ibv_destroy_cq(c->cq);
	if (c->cc)
		ibv_destroy_comp_channel(c->cc);
	free(c->buf);
	memset(c, 0, sizeof(*c));
}

/* Takes every completion there is; stashes messages, notes the send's end. */
static int reap(struct perf_ctrl *c, int *got)
{
	struct ibv_wc wc[PERF_CTRL_SLOTS];
	int n, i, rc;

	*got = 0;
	while ((n = ibv_poll_cq(c->cq, PERF_CTRL_SLOTS, wc)) > 0) {
		for (i = 0; i < n; i++) {
			if (wc[i].status != IBV_WC_SUCCESS)
				return perf_err(EIO, "control connection failed: %s (the peer is gone?)",
						ibv_wc_status_str(wc[i].status));
			*got = 1;
			if (wc[i].wr_id == SEND_WR_ID) {
				c->send_busy = 0;
				continue;
			}
			if (c->ninbox == PERF_CTRL_SLOTS)
				return perf_err(EPROTO, "control: too many unread messages");
			memcpy(&c->inbox[c->ninbox], c->buf + wc[i].wr_id * PERF_CTRL_SLOT, sizeof(struct perf_msg));
			if (wc[i].byte_len < sizeof(struct perf_msg) || c->inbox[c->ninbox].magic != PERF_MAGIC)
				return perf_err(EPROTO, "control: malformed message (%u bytes)", wc[i].byte_len);
			c->ninbox++;
			rc = post_recv(c, (int)wc[i].wr_id);
			if (rc)
				return rc;
		}
	}
	return n < 0 ? perf_err(EIO, "control: ibv_poll_cq failed") : 0;
}

/* Reaps completions, sleeping up to slice_ms on the CQ and rdma_cm channels if none. */
static int progress(struct perf_ctrl *c, int slice_ms)
{
	struct pollfd pfd[2];
	int got, rc;

	rc = reap(c, &got);
	if (rc || got || slice_ms == 0)
		return rc;
	if (!c->armed) {
		if (ibv_req_notify_cq(c->cq, 0))
			return perf_err(EIO, "control: ibv_req_notify_cq failed");
		c->armed = 1;
		/* A completion that came before arming raises no event: look again. */
		rc = reap(c, &got);
		if (rc || got)
			return rc;
	}
	pfd[0].fd = c->cc->fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = c->cm->ch->fd;
	pfd[1].events = POLLIN;
	if (poll(pfd, 2, slice_ms) < 0 && errno != EINTR)
		return perf_err(errno, "control: poll: %s", strerror(errno));
	if (pfd[0].revents & POLLIN) {
		struct ibv_cq *cq;
		void *cq_ctx;

		if (ibv_get_cq_event(c->cc, &cq, &cq_ctx) == 0) {
			ibv_ack_cq_events(cq, 1);
			c->armed = 0;
		}
	}
	/* Messages first: a peer that answers and leaves at once (the server
	 * after its last ACK) makes both fds ready, and its answer counts. */
	rc = reap(c, &got);
	if (rc || got || !(pfd[1].revents & POLLIN))
		return rc;
	return perf_cm_check(c->cm, perf_errbuf(), PERF_ERR_LEN);
}

static int wait_step(uint64_t deadline, const char *what)
{
	int rc = perf_stopped();

	if (rc)
		return perf_err(rc, "%s: %s", what, rc == -ETIMEDOUT ? "watchdog expired" : "interrupted");
	if (deadline && perf_now_ns() >= deadline)
		return perf_err(ETIMEDOUT, "%s: the peer did not answer in time", what);
	return 0;
}

static uint64_t deadline_in(int timeout_ms)
{
	return timeout_ms < 0 ? 0 : perf_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

int perf_ctrl_send(struct perf_ctrl *c, struct perf_msg *m)
{
	uint8_t *slot = c->buf + (size_t)PERF_CTRL_SLOTS * PERF_CTRL_SLOT;
	struct ibv_sge sge = {.addr = (uintptr_t)slot, .length = sizeof(*m), .lkey = c->mr->lkey};
	struct ibv_send_wr wr = {.wr_id = SEND_WR_ID, .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND}, *bad;
	uint64_t deadline = deadline_in(PERF_CTRL_MS);
	int rc;

	m->magic = PERF_MAGIC;
	memcpy(slot, m, sizeof(*m));
	rc = ibv_post_send(c->id->qp, &wr, &bad);
	if (rc)
		return perf_err(rc, "control: ibv_post_send: %s", strerror(rc));
	c->send_busy = 1;
	while (c->send_busy) {
		rc = progress(c, SLICE_MS);
		if (!rc)
			rc = wait_step(deadline, "control: sending");
		if (rc)
			return rc;
	}
	return 0;
}

static int pop(struct perf_ctrl *c, struct perf_msg *m)
{
	if (!c->ninbox)
		return 0;
	*m = c->inbox[0];
	memmove(&c->inbox[0], &c->inbox[1], (size_t)(c->ninbox - 1) * sizeof(*m));
	c->ninbox--;
	return 1;
}

int perf_ctrl_recv(struct perf_ctrl *c, struct perf_msg *m, int timeout_ms)
{
	uint64_t deadline = deadline_in(timeout_ms);
	int rc;

	while (!pop(c, m)) {
		rc = progress(c, SLICE_MS);
		if (!rc && !c->ninbox)
			rc = wait_step(deadline, "control: waiting for the peer");
		if (rc)
			return rc;
	}
	return 0;
}

int perf_ctrl_poll(struct perf_ctrl *c, struct perf_msg *m)
{
	int rc;

	if (pop(c, m))
		return 1;
	rc = progress(c, 0);
	if (rc)
		return rc;
	rc = perf_cm_check(c->cm, perf_errbuf(), PERF_ERR_LEN);
	if (rc)
		return rc;
	return pop(c, m);
}

int perf_ctrl_expect(struct perf_ctrl *c, int type, uint32_t seq, struct perf_msg *m, int timeout_ms)
{
	int rc = perf_ctrl_recv(c, m, timeout_ms);

	if (rc)
		return rc;
	m->text[sizeof(m->text) - 1] = '\0';
	if (m->type == PERF_MSG_ABORT)
		return perf_err(ECONNABORTED, "peer gave up: %s", m->text[0] ? m->text : strerror(-m->status));
	if (m->type != type || m->seq != seq)
		return perf_err(EPROTO, "control: expected %s #%u, got %s #%u", perf_msg_type_name(type), seq,
				perf_msg_type_name(m->type), m->seq);
	return 0;
}

int perf_ctrl_barrier(struct perf_ctrl *c, uint32_t seq)
{
	struct perf_msg m;
	int rc;

	memset(&m, 0, sizeof(m));
	m.type = PERF_MSG_READY;
	m.seq = seq;
	rc = perf_ctrl_send(c, &m);
	if (rc)
		return rc;
	return perf_ctrl_expect(c, PERF_MSG_READY, seq, &m, PERF_CTRL_MS);
}

void perf_ctrl_abort(struct perf_ctrl *c, int code, const char *why)
{
	char saved[PERF_ERR_LEN];
	struct perf_msg m;

	if (!c->connected)
		return;
	memset(&m, 0, sizeof(m));
	m.type = PERF_MSG_ABORT;
	m.status = (int16_t)(code < 0 ? code : -code);
	snprintf(m.text, sizeof(m.text), "%s", why);
	/* Failing to tell the peer must not replace the message we report. */
	snprintf(saved, sizeof(saved), "%s", perf_errbuf());
	perf_ctrl_send(c, &m);
	snprintf(perf_errbuf(), PERF_ERR_LEN, "%s", saved);
}
