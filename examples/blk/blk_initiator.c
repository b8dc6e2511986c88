/* A user-space NVMe over Fabrics (RDMA) host on zcrdma's raw mode (see blk_initiator.h). */
#define _GNU_SOURCE
#include "blk_initiator.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nvmf_ctrl.h"
#include "zc_example.h"

#define HOSTNQN_DEFAULT "nqn.2024-01.io.zcrdma:host"
#define RX_BUF 64         /* a CQE is 16 bytes; room to see a longer SEND for what it is */
#define ICD_CAP 16384     /* in-capsule Write data used at most, whatever the target takes */
#define ADMIN_SLOTS 2     /* one command at a time, and a Keep Alive */
#define SLOT_SYNC 0
#define SLOT_KA 1
#define TOK_SEND (1ull << 16)
#define TOK_RECV (2ull << 16)
#define CC_CONFIG 0x00460000u /* IOSQES 6 (64 B), IOCQES 4 (16 B), NVM command set, 4 KiB pages */
#define CC_SHN_NORMAL (1u << 14)
#define DATA_SIZE 4096    /* the admin data buffer: connect data, Identify, log pages */

struct slot {
	int busy;      /* from submission until both the CQE and the SEND's completion are in */
	int sending;   /* the capsule's SEND has not completed: its buffer is the library's */
	int answered;  /* the CQE arrived */
	int sync;      /* a bring-up or shutdown command: its waiter takes the CQE */
	uint64_t user;
	struct zc_export *exp;
	struct nvmf_cqe cqe;
};

struct queue {
	uint16_t qid;
	struct zc_conn *conn;
	int connected;   /* 1 open, -1 its connect failed (status), 0 in progress */
	int status;
	int depth;       /* command ids 0..depth-1 */
	struct slot *slots;
	uint16_t *free;  /* stack of idle command ids */
	int n_free;
	uint8_t *area;   /* depth receive buffers of RX_BUF, then depth capsules of cap_size */
	size_t cap_size;
	struct zc_mr *mr;
};

struct blk_init {
	struct zc_ctx *ctx;
	char *addr;
	uint16_t port;
	int timeout_ms;
	int kato_ms;
	int mr_fallback;
	char hostnqn[NVMF_NQN_MAX + 1];
	uint8_t hostid[16];
	struct queue admin;
	struct queue io[BLK_MAX_QUEUES];
	int next_q;
	int inflight;
	struct blk_geom geom;
	uint64_t cap;      /* the CAP property */
	uint32_t cc;
	int err;           /* sticky: the controller failed */
	struct blk_cpl *done; /* completions reaped, not yet returned */
	int done_head, done_n, done_cap;
	int64_t ka_next;   /* when the next Keep Alive is due; 0: none */
	uint8_t *data;     /* DATA_SIZE bytes for admin command data */
	struct zc_mr *data_mr;
};

static __thread char last_error[512];

const char *blk_init_last_error(void)
{
	return last_error;
}

static int say(int rc, const char *fmt, va_list ap)
{
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	return rc;
}

static int failf(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int failf(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(rc, fmt, ap);
	va_end(ap);
	return rc;
}

/* The controller failed: rc is final (the first failure's story is kept). */
static int breach(struct blk_init *bi, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int breach(struct blk_init *bi, int rc, const char *fmt, ...)
{
	va_list ap;

	if (bi->err)
		return bi->err;
	va_start(ap, fmt);
	say(rc, fmt, ap);
	va_end(ap);
	bi->err = rc;
	return rc;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void blk_init_opts_init(struct blk_init_opts *o)
{
	*o = (struct blk_init_opts){.queue_depth = 32, .nr_queues = 1, .timeout_ms = 10000, .kato_ms = 10000,
				    .export_mode = BLK_EXPORT_AUTO};
}

int blk_export_mode_parse(const char *s)
{
	if (!strcmp(s, "auto"))
		return BLK_EXPORT_AUTO;
	if (!strcmp(s, "window"))
		return BLK_EXPORT_WINDOW;
	if (!strcmp(s, "mr"))
		return BLK_EXPORT_MR;
	return -1;
}

/* ---- queues ------------------------------------------------------------------ */

static uint8_t *rx_buf(struct queue *q, int i)
{
	return q->area + (size_t)i * RX_BUF;
}

static uint8_t *capsule(struct queue *q, int i)
{
	return q->area + (size_t)q->depth * RX_BUF + (size_t)i * q->cap_size;
}

static int queue_alloc(struct blk_init *bi, struct queue *q, uint16_t qid, int depth, size_t cap_size)
{
	size_t len = (size_t)depth * (RX_BUF + cap_size);
	int rc;

	q->qid = qid;
	q->depth = depth;
	q->cap_size = cap_size;
	q->slots = calloc((size_t)depth, sizeof(*q->slots));
	q->free = calloc((size_t)depth, sizeof(*q->free));
	q->area = aligned_alloc(4096, (len + 4095) & ~(size_t)4095);
	if (!q->slots || !q->free || !q->area)
		return failf(-ENOMEM, "out of memory");
	memset(q->area, 0, len);
	rc = zc_mr_reg(bi->ctx, q->area, len, 0, &q->mr);
	if (rc)
		return failf(rc, "registering queue %u's buffers: %s (%s)", qid, zc_strerror(rc), zc_last_error());
	return 0;
}

static void queue_free(struct blk_init *bi, struct queue *q)
{
	int i;

	for (i = 0; q->slots && i < q->depth; i++)
		if (q->slots[i].exp)
			zc_export_revoke(&q->slots[i].exp);
	if (q->conn && (bi->err || q->connected != 1))
		zc_abort(&q->conn);
	else if (q->conn)
		zc_close(&q->conn);
	if (q->mr)
		zc_mr_dereg(&q->mr);
	free(q->slots);
	free(q->free);
	free(q->area);
	memset(q, 0, sizeof(*q));
}

static struct queue *queue_of(struct blk_init *bi, const struct zc_conn *conn)
{
	int i;

	if (!conn)
		return NULL;
	if (bi->admin.conn == conn)
		return &bi->admin;
	for (i = 0; i < BLK_MAX_QUEUES; i++)
		if (bi->io[i].conn == conn)
			return &bi->io[i];
	return NULL;
}

static void slot_release(struct queue *q, int cid)
{
	struct slot *s = &q->slots[cid];

	if (s->busy && s->answered && !s->sending) {
		s->busy = 0;
		if (q->qid) /* the admin queue's slots are fixed: SLOT_SYNC, SLOT_KA */
			q->free[q->n_free++] = (uint16_t)cid;
	}
}

/* A CQE arrived in receive buffer i of q: check it against what is in flight there. */
static void on_cqe(struct blk_init *bi, struct queue *q, const struct zc_event *ev)
{
	int i = (int)(ev->token & 0xffff), rc;
	struct nvmf_cqe cqe;
	struct slot *s;

	if (ev->len != NVMF_CQE_SIZE || nvmf_cqe_decode(rx_buf(q, i), ev->len, &cqe)) {
		breach(bi, -EPROTO, "queue %u: the target sent %zu bytes where a 16-byte completion belongs", q->qid,
		       ev->len);
		return;
	}
	if (ev->flags & ZC_COMP_INVALIDATED) {
		breach(bi, -EPROTO, "queue %u: the target invalidated key %#x, which no command offered", q->qid,
		       ev->invalidated_rkey);
		return;
	}
	if (cqe.cid >= q->depth || !q->slots[cqe.cid].busy || q->slots[cqe.cid].answered) {
		breach(bi, -EPROTO, "queue %u: a completion for command id %u, which is not in flight", q->qid, cqe.cid);
		return;
	}
	if (cqe.sq_id != q->qid) {
		breach(bi, -EPROTO, "queue %u: the completion of command %u names submission queue %u", q->qid,
		       cqe.cid, cqe.sq_id);
		return;
	}
	rc = zc_raw_recv(q->conn, rx_buf(q, i), RX_BUF, q->mr, TOK_RECV | (uint64_t)i);
	if (rc) {
		breach(bi, rc, "queue %u: reposting a receive: %s (%s)", q->qid, zc_strerror(rc), zc_last_error());
		return;
	}
	s = &q->slots[cqe.cid];
	s->answered = 1;
	s->cqe = cqe;
	if (s->exp)
		zc_export_revoke(&s->exp);
	if (q->qid && !s->sync) {
		bi->done[(bi->done_head + bi->done_n++) % bi->done_cap] = (struct blk_cpl){.user = s->user,
											   .status = cqe.status};
		bi->inflight--;
	} else if (!q->qid && cqe.cid == SLOT_KA && cqe.status) {
		breach(bi, -EIO, "Keep Alive failed: %s", nvmf_status_str(cqe.status));
	}
	slot_release(q, cqe.cid);
}

static void on_event(struct blk_init *bi, const struct zc_event *ev)
{
	struct queue *q = queue_of(bi, ev->conn);
	int i = (int)(ev->token & 0xffff);

	if (!q)
		return; /* another user's, or of a queue already closed */
	switch (ev->type) {
	case ZC_EV_CONNECTED:
		q->connected = ev->status ? -1 : 1;
		q->status = ev->status;
		return;
	case ZC_EV_PEER_CLOSED:
		breach(bi, -ECONNRESET, "queue %u: the target disconnected", q->qid);
		return;
	case ZC_EV_ERROR:
		breach(bi, ev->status, "queue %u failed: %s (%s)", q->qid, zc_strerror(ev->status), zc_last_error());
		return;
	case ZC_EV_COMPLETION:
		break;
	default:
		return;
	}
	if (ev->status) {
		breach(bi, ev->status == -ECONNABORTED ? -ECONNRESET : ev->status, "queue %u failed: %s (%s)", q->qid,
		       zc_strerror(ev->status), zc_last_error());
		return;
	}
	if (ev->op == ZC_OP_RAW_SEND && i < q->depth) {
		q->slots[i].sending = 0;
		slot_release(q, i);
	} else if (ev->op == ZC_OP_RAW_RECV && i < q->depth) {
		on_cqe(bi, q, ev);
	}
}

/* Processes what happened on the context within timeout_ms; returns the controller's error. */
static int progress(struct blk_init *bi, int timeout_ms)
{
	struct zc_event ev[64];
	int n, i;

	n = zc_wait_events(bi->ctx, ev, 64, timeout_ms);
	if (n < 0)
		return breach(bi, n, "zc_wait_events: %s", zc_strerror(n));
	for (i = 0; i < n; i++)
		on_event(bi, &ev[i]);
	return bi->err;
}

/* Opens queue q (already allocated) as the given rdma_cm request; waits until it is connected. */
static int queue_connect(struct blk_init *bi, struct queue *q, uint16_t hsqsize)
{
	struct nvmf_cm_req req = {.qid = q->qid, .hrqsize = (uint16_t)(hsqsize + 1), .hsqsize = hsqsize};
	uint8_t pd[NVMF_CM_REQ_SIZE];
	int64_t deadline = now_ms() + bi->timeout_ms;
	struct zc_conn_opts o;
	const void *rep;
	size_t len;
	int rc, i, crq;

	nvmf_cm_req_encode(&req, pd);
	zc_conn_opts_init(&o);
	o.raw = 1;
	o.private_data = pd;
	o.private_data_len = sizeof(pd);
	o.timeout_ms = bi->timeout_ms;
	o.mr_fallback = bi->mr_fallback;
	o.raw_send_depth = (uint32_t)q->depth + 1;
	o.raw_recv_depth = (uint32_t)q->depth;
	rc = zc_connect_start(bi->ctx, bi->addr, bi->port, &o, &q->conn);
	if (rc)
		return failf(rc, "connecting queue %u: %s (%s)", q->qid, zc_strerror(rc), zc_last_error());
	while (!q->connected && !bi->err && now_ms() < deadline)
		progress(bi, (int)(deadline - now_ms()));
	if (bi->err)
		return bi->err;
	if (!q->connected)
		return failf(-ETIMEDOUT, "queue %u: no connection within %d ms", q->qid, bi->timeout_ms);
	if (q->connected < 0) {
		if (q->status == -ECONNREFUSED && !zc_conn_peer_private_data(q->conn, &rep, &len) &&
		    nvmf_cm_rej_decode(rep, len) >= 0)
			return failf(-ECONNREFUSED, "the target rejected queue %u: %s", q->qid,
				     nvmf_cm_status_str(nvmf_cm_rej_decode(rep, len)));
		return failf(q->status, "connecting queue %u: %s", q->qid, zc_strerror(q->status));
	}
	rc = zc_conn_peer_private_data(q->conn, &rep, &len);
	crq = rc ? -1 : nvmf_cm_rep_decode(rep, len);
	if (crq < 1)
		return breach(bi, -EPROTO, "queue %u: the target's reply carries no valid nvme_rdma_cm_rep", q->qid);
	/* Never more commands in flight than the target posted receives for. */
	for (i = (crq < q->depth ? crq : q->depth) - 1; q->qid && i >= 0; i--)
		q->free[q->n_free++] = (uint16_t)i;
	for (i = 0; i < q->depth; i++) {
		rc = zc_raw_recv(q->conn, rx_buf(q, i), RX_BUF, q->mr, TOK_RECV | (uint64_t)i);
		if (rc)
			return breach(bi, rc, "queue %u: posting receives: %s (%s)", q->qid, zc_strerror(rc),
				      zc_last_error());
	}
	return 0;
}

/* Sends the SQE in slot cid's capsule (len bytes) on q. */
static int post(struct blk_init *bi, struct queue *q, int cid, size_t len, uint64_t user, int sync)
{
	struct slot *s = &q->slots[cid];
	int rc = zc_raw_send(q->conn, capsule(q, cid), len, q->mr, TOK_SEND | (uint64_t)cid, 0, 0);

	if (rc)
		return breach(bi, rc, "queue %u: sending a command: %s (%s)", q->qid, zc_strerror(rc), zc_last_error());
	*s = (struct slot){.busy = 1, .sending = 1, .sync = sync, .user = user, .exp = s->exp};
	return 0;
}

/* ---- admin commands ----------------------------------------------------------- */

/*
 * Runs one command in slot SLOT_SYNC of q (the admin queue, or an I/O
 * queue before any I/O: its Connect) and waits for its completion.
 * data_len > 0: the command's data is the first data_len bytes of the
 * data buffer, exported with access. Returns 0 with *cqe, or an error; a
 * non-success status is -EIO with what in blk_init_last_error().
 */
static int sync_cmd(struct blk_init *bi, struct queue *q, struct nvmf_sqe *sqe, uint32_t data_len, int access,
		    const char *what, struct nvmf_cqe *cqe)
{
	struct slot *s = &q->slots[SLOT_SYNC];
	int64_t deadline = now_ms() + bi->timeout_ms;
	int rc;

	*cqe = (struct nvmf_cqe){0};
	if (bi->err)
		return bi->err;
	while (s->busy && !bi->err && now_ms() < deadline)
		progress(bi, (int)(deadline - now_ms()));
	if (s->busy)
		return breach(bi, bi->err ? bi->err : -ETIMEDOUT, "%s: the previous command never finished", what);
	if (q->qid)
		q->n_free--; /* SLOT_SYNC is the top of a fresh queue's stack */
	sqe->cid = SLOT_SYNC;
	if (data_len) {
		struct nvmf_sgl g = {.type = NVMF_SGL_KEYED, .len = data_len};

		rc = zc_export(q->conn, bi->data_mr, 0, data_len, access, &s->exp, &(struct zc_desc){0});
		if (!rc)
			rc = zc_export_key(s->exp, &g.addr, &g.key);
		if (rc)
			return breach(bi, rc, "%s: exporting its data: %s (%s)", what, zc_strerror(rc), zc_last_error());
		nvmf_sgl_encode(&g, sqe->dptr);
	}
	nvmf_sqe_encode(sqe, capsule(q, SLOT_SYNC));
	rc = post(bi, q, SLOT_SYNC, NVMF_SQE_SIZE, 0, 1);
	while (!rc && !s->answered && !bi->err && now_ms() < deadline)
		rc = progress(bi, (int)(deadline - now_ms()));
	if (bi->err)
		return bi->err;
	if (!s->answered)
		return breach(bi, -ETIMEDOUT, "%s: no completion within %d ms", what, bi->timeout_ms);
	*cqe = s->cqe;
	if (rc)
		return rc;
	if (cqe->status)
		return failf(-EIO, "%s failed: %s (status %#x)", what, nvmf_status_str(cqe->status), cqe->status);
	return 0;
}

static int prop_get(struct blk_init *bi, uint32_t offset, uint8_t size, uint64_t *value)
{
	struct nvmf_prop p = {.size = size, .offset = offset};
	struct nvmf_cqe cqe;
	struct nvmf_sqe s;
	int rc;

	nvmf_prop_encode(&p, 0, 0, &s);
	rc = sync_cmd(bi, &bi->admin, &s, 0, 0, "Property Get", &cqe);
	*value = size == 4 ? (uint32_t)cqe.result : cqe.result;
	return rc;
}

static int prop_set_cc(struct blk_init *bi, uint32_t cc)
{
	struct nvmf_prop p = {.size = 4, .offset = NVMF_PROP_CC, .value = cc};
	struct nvmf_cqe cqe;
	struct nvmf_sqe s;
	int rc;

	nvmf_prop_encode(&p, 1, 0, &s);
	rc = sync_cmd(bi, &bi->admin, &s, 0, 0, "Property Set CC", &cqe);
	if (!rc)
		bi->cc = cc;
	return rc;
}

/* Reads CSTS until (CSTS & mask) == want, for at most ms. */
static int wait_csts(struct blk_init *bi, uint32_t mask, uint32_t want, int64_t ms, const char *what)
{
	int64_t deadline = now_ms() + ms;
	uint64_t csts;
	int rc;

	for (;;) {
		rc = prop_get(bi, NVMF_PROP_CSTS, 4, &csts);
		if (rc)
			return rc;
		if (csts & 0x2) /* CFS */
			return breach(bi, -EIO, "the controller reports a fatal status (CSTS %#llx)",
				      (unsigned long long)csts);
		if ((csts & mask) == want)
			return 0;
		if (now_ms() >= deadline)
			return failf(-ETIMEDOUT, "%s: not within %lld ms (CSTS %#llx)", what, (long long)ms,
				     (unsigned long long)csts);
		progress(bi, 1);
	}
}

/* Connects the admin queue to subnqn and enables the controller. */
static int admin_open(struct blk_init *bi, const char *subnqn, uint32_t kato_ms)
{
	struct nvmf_connect c = {.qid = 0, .sqsize = NVMF_AQ_DEPTH - 1, .kato = kato_ms};
	struct nvmf_connect_data cd = {.cntlid = NVMF_CNTLID_DYNAMIC};
	struct nvmf_cqe cqe;
	struct nvmf_sqe s;
	int64_t to_ms;
	int rc;

	rc = queue_alloc(bi, &bi->admin, 0, ADMIN_SLOTS, NVMF_SQE_SIZE);
	if (!rc)
		rc = queue_connect(bi, &bi->admin, NVMF_AQ_DEPTH - 1);
	if (rc)
		return rc;
	memcpy(cd.hostid, bi->hostid, sizeof(cd.hostid));
	snprintf(cd.subnqn, sizeof(cd.subnqn), "%s", subnqn);
	snprintf(cd.hostnqn, sizeof(cd.hostnqn), "%s", bi->hostnqn);
	nvmf_connect_data_encode(&cd, bi->data);
	nvmf_connect_encode(&c, 0, &s);
	rc = sync_cmd(bi, &bi->admin, &s, NVMF_CONNECT_DATA_SIZE, ZC_ACCESS_REMOTE_READ, "Connect (admin queue)", &cqe);
	if (rc)
		return rc;
	bi->geom.cntlid = (uint16_t)cqe.result;
	rc = prop_get(bi, NVMF_PROP_CAP, 8, &bi->cap);
	if (!rc)
		rc = prop_set_cc(bi, CC_CONFIG | NVMF_CC_EN);
	if (rc)
		return rc;
	to_ms = (int64_t)((bi->cap >> 24) & 0xff) * 500; /* CAP.TO, 500 ms units */
	return wait_csts(bi, NVMF_CSTS_RDY, NVMF_CSTS_RDY, to_ms > bi->timeout_ms ? to_ms : bi->timeout_ms,
			 "CSTS.RDY after CC.EN");
}

/* Normal shutdown (CC.SHN), then the admin queue goes. */
static int admin_close(struct blk_init *bi)
{
	int rc = 0;

	if (bi->admin.connected == 1 && !bi->err && (bi->cc & NVMF_CC_EN)) {
		rc = prop_set_cc(bi, bi->cc | CC_SHN_NORMAL);
		if (!rc)
			rc = wait_csts(bi, NVMF_CSTS_SHST_MASK, NVMF_CSTS_SHST_DONE, bi->timeout_ms,
				       "CSTS.SHST complete after CC.SHN");
	}
	queue_free(bi, &bi->admin);
	bi->cc = 0;
	return rc;
}

static int identify(struct blk_init *bi, uint8_t cns, uint32_t nsid, const char *what)
{
	struct nvmf_cqe cqe;
	struct nvmf_sqe s;

	nvmf_cmd_init(&s, NVMF_ADM_IDENTIFY, 0, nsid);
	s.cdw10 = cns;
	memset(bi->data, 0, DATA_SIZE);
	return sync_cmd(bi, &bi->admin, &s, NVMF_IDENTIFY_SIZE, ZC_ACCESS_REMOTE_WRITE, what, &cqe);
}

static int get_log(struct blk_init *bi, uint8_t lid, uint32_t len, uint64_t offset)
{
	uint32_t numd = len / 4 - 1;
	struct nvmf_cqe cqe;
	struct nvmf_sqe s;

	nvmf_cmd_init(&s, NVMF_ADM_GET_LOG_PAGE, 0, 0);
	s.cdw10 = lid | (numd & 0xffff) << 16;
	s.cdw11 = numd >> 16;
	s.cdw12 = (uint32_t)offset;
	s.cdw13 = (uint32_t)(offset >> 32);
	memset(bi->data, 0, DATA_SIZE);
	return sync_cmd(bi, &bi->admin, &s, len, ZC_ACCESS_REMOTE_WRITE, "Get Log Page", &cqe);
}

/* The first NVM subsystem over RDMA that the discovery controller lists. */
static int discover(struct blk_init *bi, char nqn[NVMF_NQN_MAX + 1])
{
	struct nvmf_disc_entry de;
	uint64_t numrec, i, n;
	int rc;

	rc = admin_open(bi, NVMF_DISCOVERY_NQN, 0);
	if (!rc)
		rc = get_log(bi, NVMF_LOG_DISCOVERY, NVMF_DISC_ENTRY_SIZE, 0);
	if (rc)
		goto out;
	numrec = nvmf_disc_numrec(bi->data);
	n = numrec < DATA_SIZE / NVMF_DISC_ENTRY_SIZE ? numrec : DATA_SIZE / NVMF_DISC_ENTRY_SIZE;
	rc = n ? get_log(bi, NVMF_LOG_DISCOVERY, (uint32_t)n * NVMF_DISC_ENTRY_SIZE, NVMF_DISC_ENTRY_SIZE) : 0;
	if (rc)
		goto out;
	rc = failf(-ENOENT, "the discovery controller lists no NVM subsystem over RDMA (%llu entries)",
		   (unsigned long long)numrec);
	for (i = 0; i < n; i++) {
		if (nvmf_disc_entry_decode(bi->data + i * NVMF_DISC_ENTRY_SIZE, &de)) {
			rc = breach(bi, -EPROTO, "discovery log entry %llu has no valid SUBNQN", (unsigned long long)i);
			break;
		}
		if (de.trtype == 1 && de.subtype == 2) {
			snprintf(nqn, NVMF_NQN_MAX + 1, "%s", de.subnqn);
			rc = 0;
			break;
		}
	}
out:
	if (admin_close(bi) && !rc)
		rc = failf(-EIO, "shutting the discovery controller down: %s", last_error);
	return rc;
}

/* Identify Controller, the queues granted, the namespace. */
static int learn(struct blk_init *bi, int want_qd, int want_queues)
{
	struct blk_geom *g = &bi->geom;
	struct nvmf_id_ctrl id;
	struct nvmf_id_ns ns;
	struct nvmf_cqe cqe;
	struct nvmf_sqe s;
	uint32_t page = 4096u << ((bi->cap >> 48) & 0xf), max_bytes;
	int mqes = (int)(bi->cap & 0xffff), rc;

	rc = identify(bi, 0x01, 0, "Identify Controller");
	if (rc)
		return rc;
	if (nvmf_id_ctrl_decode(bi->data, &id))
		return breach(bi, -EPROTO, "the Identify Controller data is malformed (SUBNQN, IOCCSZ, ICDOFF, SGLS)");
	if (id.cntlid != g->cntlid || strcmp(id.subnqn, g->nqn) != 0 || id.cntrltype == 2)
		return breach(bi, -EPROTO, "Identify Controller names controller %u of %s, not %u of %s", id.cntlid,
			      id.subnqn, g->cntlid, g->nqn);
	g->oncs = id.oncs;
	max_bytes = id.mdts && id.mdts < 18 ? page << id.mdts : 1u << 30;
	g->queue_depth = want_qd;
	if (g->queue_depth > mqes)
		g->queue_depth = mqes; /* CAP.MQES is 0's based; a queue keeps one entry empty */
	if (id.maxcmd && g->queue_depth > id.maxcmd)
		g->queue_depth = id.maxcmd;
	if (g->queue_depth < 1)
		return breach(bi, -EPROTO, "the target's queues hold no command (CAP.MQES %d, MAXCMD %u)", mqes,
			      id.maxcmd);
	if (id.sgls & NVMF_SGLS_OFFSET && id.ioccsz > NVMF_SQE_SIZE / 16) {
		g->icd_max = id.ioccsz * 16 - NVMF_SQE_SIZE;
		if (g->icd_max > ICD_CAP)
			g->icd_max = ICD_CAP;
	}

	nvmf_cmd_init(&s, NVMF_ADM_SET_FEATURES, 0, 0);
	s.cdw10 = NVMF_FEAT_NUM_QUEUES;
	s.cdw11 = (uint32_t)(want_queues - 1) | (uint32_t)(want_queues - 1) << 16;
	rc = sync_cmd(bi, &bi->admin, &s, 0, 0, "Set Features (Number of Queues)", &cqe);
	if (rc)
		return rc;
	g->nr_queues = want_queues;
	if ((int)(cqe.result & 0xffff) + 1 < g->nr_queues)
		g->nr_queues = (int)(cqe.result & 0xffff) + 1;
	if ((int)((cqe.result >> 16) & 0xffff) + 1 < g->nr_queues)
		g->nr_queues = (int)((cqe.result >> 16) & 0xffff) + 1;

	rc = identify(bi, 0x02, 0, "Identify Active Namespace List");
	if (rc)
		return rc;
	g->nsid = zc_ex_get32(bi->data);
	if (!g->nsid || g->nsid >= 0xfffffffeu)
		return failf(-ENOENT, "subsystem %s has no active namespace", g->nqn);
	rc = identify(bi, 0x00, g->nsid, "Identify Namespace");
	if (rc)
		return rc;
	if (nvmf_id_ns_decode(bi->data, &ns) || !ns.nsze)
		return breach(bi, -EPROTO, "namespace %u: malformed Identify data (size 0, no usable LBA format)",
			      g->nsid);
	g->block_size = ns.block_size;
	g->capacity = ns.nsze;
	g->read_only = ns.write_protected;
	g->max_blocks = max_bytes / g->block_size ? max_bytes / g->block_size : 1;
	if (g->max_blocks > 65536)
		g->max_blocks = 65536; /* NLB is 16 bits */
	return 0;
}

static int io_queues_open(struct blk_init *bi, int no_icd)
{
	struct nvmf_connect c = {.sqsize = (uint16_t)bi->geom.queue_depth};
	struct nvmf_connect_data cd = {.cntlid = bi->geom.cntlid};
	size_t cap_size;
	int i, rc;

	if (no_icd)
		bi->geom.icd_max = 0;
	cap_size = NVMF_SQE_SIZE + bi->geom.icd_max;
	bi->done_cap = bi->geom.nr_queues * bi->geom.queue_depth;
	bi->done = calloc((size_t)bi->done_cap, sizeof(*bi->done));
	if (!bi->done)
		return failf(-ENOMEM, "out of memory");
	memcpy(cd.hostid, bi->hostid, sizeof(cd.hostid));
	snprintf(cd.subnqn, sizeof(cd.subnqn), "%s", bi->geom.nqn);
	snprintf(cd.hostnqn, sizeof(cd.hostnqn), "%s", bi->hostnqn);
	for (i = 0; i < bi->geom.nr_queues; i++) {
		struct queue *q = &bi->io[i];
		struct nvmf_sqe sqe;
		struct nvmf_cqe cqe;

		rc = queue_alloc(bi, q, (uint16_t)(i + 1), bi->geom.queue_depth, cap_size);
		if (!rc)
			rc = queue_connect(bi, q, (uint16_t)bi->geom.queue_depth);
		if (rc)
			return rc;
		/* Connect on the queue itself, its connect data by keyed SGL as on the admin queue. */
		nvmf_connect_data_encode(&cd, bi->data);
		c.qid = q->qid;
		nvmf_connect_encode(&c, 0, &sqe);
		rc = sync_cmd(bi, q, &sqe, NVMF_CONNECT_DATA_SIZE, ZC_ACCESS_REMOTE_READ, "Connect (I/O queue)", &cqe);
		if (rc)
			return rc;
		if ((uint16_t)cqe.result != bi->geom.cntlid)
			return breach(bi, -EPROTO, "Connect of I/O queue %u answered controller %u, not %u", q->qid,
				      (uint16_t)cqe.result, bi->geom.cntlid);
	}
	return 0;
}

int blk_init_connect(struct zc_ctx *ctx, const char *addr, uint16_t port, const struct blk_init_opts *o,
		     struct blk_init **out)
{
	struct blk_init_opts def;
	struct blk_init *bi;
	int rc, i;

	if (!o) {
		blk_init_opts_init(&def);
		o = &def;
	}
	if (!ctx || !addr || !out || o->queue_depth < 1 || o->queue_depth > BLK_MAX_QD || o->nr_queues < 1 ||
	    o->nr_queues > BLK_MAX_QUEUES || o->timeout_ms <= 0 || o->kato_ms < 0 ||
	    (o->nqn && !nvmf_nqn_valid(o->nqn)) || (o->hostnqn && !nvmf_nqn_valid(o->hostnqn)) ||
	    o->export_mode < BLK_EXPORT_AUTO || o->export_mode > BLK_EXPORT_MR)
		return failf(-EINVAL, "blk_init_connect: bad arguments (queue depth 1..%d, 1..%d queues, valid NQNs)",
			     BLK_MAX_QD, BLK_MAX_QUEUES);
	bi = calloc(1, sizeof(*bi));
	if (!bi)
		return failf(-ENOMEM, "out of memory");
	bi->ctx = ctx;
	bi->port = port;
	bi->timeout_ms = o->timeout_ms;
	bi->kato_ms = o->kato_ms;
	bi->addr = strdup(addr);
	bi->data = aligned_alloc(4096, DATA_SIZE);
	if (!bi->addr || !bi->data) {
		rc = failf(-ENOMEM, "out of memory");
		goto err;
	}
	snprintf(bi->hostnqn, sizeof(bi->hostnqn), "%s", o->hostnqn ? o->hostnqn : HOSTNQN_DEFAULT);
	/* A host identifier of this instance: a target ties the I/O queues to the admin queue's. */
	{
		uint64_t x = (uint64_t)getpid() << 32 ^ (uint64_t)now_ms() ^ (uintptr_t)bi;

		for (i = 0; i < 16; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			bi->hostid[i] = (uint8_t)x;
		}
	}
	bi->mr_fallback = o->export_mode == BLK_EXPORT_MR;
	if (o->export_mode == BLK_EXPORT_AUTO) {
		struct zc_caps caps;

		bi->mr_fallback = !zc_ctx_query(ctx, &caps) && !strncmp(caps.device, "rxe", 3);
	}
	rc = zc_mr_reg(ctx, bi->data, DATA_SIZE, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &bi->data_mr);
	if (rc) {
		failf(rc, "zc_mr_reg: %s (%s)", zc_strerror(rc), zc_last_error());
		goto err;
	}
	if (o->nqn)
		snprintf(bi->geom.nqn, sizeof(bi->geom.nqn), "%s", o->nqn);
	else if ((rc = discover(bi, bi->geom.nqn)))
		goto err;
	rc = admin_open(bi, bi->geom.nqn, (uint32_t)o->kato_ms);
	if (!rc)
		rc = learn(bi, o->queue_depth, o->nr_queues);
	if (!rc)
		rc = io_queues_open(bi, o->no_icd);
	if (rc)
		goto err;
	if (bi->kato_ms)
		bi->ka_next = now_ms() + bi->kato_ms / 2;
	*out = bi;
	return 0;
err:
	{
		char why[sizeof(last_error)];

		snprintf(why, sizeof(why), "%s", last_error);
		blk_init_close(&bi);
		snprintf(last_error, sizeof(last_error), "%s", why);
	}
	return rc;
}

const struct blk_geom *blk_init_geom(const struct blk_init *bi)
{
	return &bi->geom;
}

int blk_init_inflight(const struct blk_init *bi)
{
	return bi->inflight;
}

int blk_init_free_slots(const struct blk_init *bi)
{
	int i, n = 0;

	for (i = 0; i < bi->geom.nr_queues; i++)
		n += bi->io[i].n_free;
	return n;
}

int blk_init_submit(struct blk_init *bi, uint8_t opcode, uint64_t lba, uint32_t nblocks, void *buf,
		    struct zc_mr *mr, size_t mr_off, uint64_t user)
{
	size_t len = (size_t)nblocks * (bi ? bi->geom.block_size : 0), caplen = NVMF_SQE_SIZE;
	struct nvmf_sgl g = {.type = NVMF_SGL_KEYED};
	struct nvmf_sqe sqe;
	struct queue *q = NULL;
	struct slot *s;
	int i, cid, rc, data = opcode == NVMF_IO_READ || opcode == NVMF_IO_WRITE;

	if (!bi)
		return -EINVAL;
	if (bi->err)
		return bi->err;
	if ((!data && opcode != NVMF_IO_FLUSH && opcode != NVMF_IO_WRITE_ZEROES) ||
	    (opcode != NVMF_IO_FLUSH && (nblocks < 1 || nblocks > 65536)) || (data && (!buf || !mr)))
		return failf(-EINVAL, "blk_init_submit: opcode %#x, %u blocks, buffer %p", opcode, nblocks, buf);
	for (i = 0; i < bi->geom.nr_queues && !q; i++) {
		struct queue *c = &bi->io[(bi->next_q + i) % bi->geom.nr_queues];

		if (c->n_free) {
			q = c;
			bi->next_q = (bi->next_q + i + 1) % bi->geom.nr_queues;
		}
	}
	if (!q)
		return -EBUSY;
	cid = q->free[q->n_free - 1];
	s = &q->slots[cid];
	nvmf_cmd_init(&sqe, opcode, (uint16_t)cid, bi->geom.nsid);
	if (opcode != NVMF_IO_FLUSH)
		nvmf_rw_encode(&sqe, lba, nblocks);
	if (opcode == NVMF_IO_WRITE && len <= bi->geom.icd_max) {
		/* In-capsule data at offset 0 (ICDOFF 0): one SEND, nothing to export. */
		g = (struct nvmf_sgl){.type = NVMF_SGL_INCAPSULE, .len = (uint32_t)len};
		memcpy(capsule(q, cid) + NVMF_SQE_SIZE, buf, len);
		caplen += len;
	} else if (data) {
		int access = opcode == NVMF_IO_READ ? ZC_ACCESS_REMOTE_WRITE : ZC_ACCESS_REMOTE_READ;

		g.len = (uint32_t)len;
		rc = zc_export(q->conn, mr, mr_off, len, access, &s->exp, &(struct zc_desc){0});
		if (!rc)
			rc = zc_export_key(s->exp, &g.addr, &g.key);
		if (rc) {
			if (s->exp)
				zc_export_revoke(&s->exp);
			return failf(rc, "exporting %zu bytes: %s (%s)", len, zc_strerror(rc), zc_last_error());
		}
	}
	nvmf_sgl_encode(&g, sqe.dptr);
	nvmf_sqe_encode(&sqe, capsule(q, cid));
	q->n_free--;
	rc = post(bi, q, cid, caplen, user, 0);
	if (rc) {
		if (s->exp)
			zc_export_revoke(&s->exp);
		return rc;
	}
	bi->inflight++;
	return 0;
}

/* Sends a Keep Alive if one is due and none is in flight. */
static int keep_alive(struct blk_init *bi)
{
	struct queue *q = &bi->admin;
	struct nvmf_sqe s;
	int64_t now;

	if (!bi->ka_next || (now = now_ms()) < bi->ka_next || q->slots[SLOT_KA].busy)
		return 0;
	nvmf_cmd_init(&s, NVMF_ADM_KEEP_ALIVE, SLOT_KA, 0);
	nvmf_sqe_encode(&s, capsule(q, SLOT_KA));
	bi->ka_next = now + bi->kato_ms / 2;
	return post(bi, q, SLOT_KA, NVMF_SQE_SIZE, 0, 0);
}

static int drain(struct blk_init *bi, struct blk_cpl *out, int max)
{
	int n = 0;

	while (n < max && bi->done_n) {
		out[n++] = bi->done[bi->done_head];
		bi->done_head = (bi->done_head + 1) % bi->done_cap;
		bi->done_n--;
	}
	return n;
}

int blk_init_poll(struct blk_init *bi, struct blk_cpl *out, int max, int timeout_ms)
{
	int64_t deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	int n, rc, first = 1;

	if (!bi || !out || max <= 0)
		return -EINVAL;
	for (;;) {
		int64_t now = now_ms(), wait;

		n = drain(bi, out, max);
		if (n)
			return n;
		if (bi->err)
			return bi->err;
		rc = keep_alive(bi);
		if (rc)
			return rc;
		if (!first && timeout_ms >= 0 && now >= deadline)
			return 0;
		first = 0;
		wait = timeout_ms < 0 ? -1 : deadline - now;
		if (bi->ka_next && (wait < 0 || bi->ka_next - now < wait))
			wait = bi->ka_next > now ? bi->ka_next - now : 0;
		progress(bi, (int)(wait < 0 ? -1 : wait));
	}
}

int blk_init_close(struct blk_init **pbi)
{
	struct blk_init *bi;
	int rc, i;

	if (!pbi || !*pbi)
		return -EINVAL;
	bi = *pbi;
	for (i = 0; i < BLK_MAX_QUEUES; i++)
		queue_free(bi, &bi->io[i]);
	rc = admin_close(bi);
	if (bi->data_mr)
		zc_mr_dereg(&bi->data_mr);
	free(bi->data);
	free(bi->addr);
	free(bi->done);
	free(bi);
	*pbi = NULL;
	return rc;
}
