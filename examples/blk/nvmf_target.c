/*
 * zc_blk_target - an NVMe over Fabrics (RDMA) target on zcrdma's raw mode
 *
 *   zc_blk_target --listen ADDR[:PORT] (--file PATH | --memory SIZE) [--nqn NQN]
 *                 [--block-size 512|4096] [--queue-depth N] [--read-only]
 *                 [--busy-poll-us N]
 *
 * Serves one namespace (nsid 1) of one subsystem to any number of NVMe-oF
 * hosts, e.g. Linux's own (`nvme connect -t rdma -a ADDR -s PORT -n NQN`),
 * plus a discovery controller so `nvme discover` lists the subsystem. What
 * the protocol decides is in nvmf.c (wire formats) and nvmf_ctrl.c
 * (controller logic); this file moves the bytes.
 *
 * One thread, one zcrdma context, one event loop on zc_wait_events(), which
 * it polls while events keep coming (--busy-poll-us: for 2 ms after the
 * last one by default, yielding the CPU between polls), then sleeps in. Every
 * queue (the admin queue and each I/O queue of each controller) is one raw
 * connection: its rdma_cm request carries qid and queue sizes
 * (nvme_rdma_cm_req), its receive buffers (SQE + in-capsule data) are posted
 * before the reply goes out, and each capsule becomes a request that one
 * function, advance(), drives through these states:
 *
 *   NEW -> NEED_BUFFER -> FETCHING -> EXECUTING -> COMPLETING -> SENDING -> FREE  (Write with a keyed SGL, Connect, DSM)
 *   NEW -> NEED_BUFFER -> EXECUTING -> COMPLETING -> SENDING -> FREE              (Read, Identify, Get Log Page)
 *   NEW -> EXECUTING -> COMPLETING -> SENDING -> FREE                             (in-capsule Write, Flush, ...)
 *   NEW -> COMPLETING -> SENDING -> FREE                                          (a command that fails its checks)
 *   NEW -> EXECUTING -> HELD                                                      (Asynchronous Event Request)
 *
 * COMPLETING reposts the capsule's receive buffer before the CQE goes out
 * (the host may send the next command as soon as it sees the CQE), then
 * posts the RDMA WRITE of the data (Read) and the SEND of the CQE: RC
 * ordering delivers the data first. Every post (those and FETCHING's RDMA
 * READ) is made with ZC_RAW_MORE, so it waits for the event loop's next
 * wait, which rings each queue's doorbell once for everything the turn
 * posted (as SPDK's target flushes its queues once per poll; on rxe each
 * doorbell is a system call): at QD1 a Read's WRITE and SEND go with one
 * doorbell, as nvmet-rdma chains them, and at QD32 the responses to a
 * batch of commands go with one. SEND_WITH_INVALIDATE is not
 * used: SPDK turns it off on rxe, and the Linux host invalidates its own
 * keys when the CQE comes without it.
 *
 * Keep alive: any command restarts a controller's timer (CTRATT.TBKAS); a
 * controller silent for its KATO loses all its queues. A host that breaks
 * the transport (a capsule shorter than an SQE, an RDMA error) loses its
 * controller's queues; other hosts go on. SIGTERM/SIGINT stop the target;
 * SIGUSR1 prints every queue and request in progress, and the commands,
 * work requests and doorbells (zc_ctx_stats) so far.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zcrdma.h>

#include "nvmf.h"
#include "nvmf_ctrl.h"
#include "zc_example.h"

#define DEFAULT_NQN "nqn.2024-01.io.zcrdma:blk"
#define N_EVENTS 64
#define POOL_BUFS 64
/* By measurement in the guest (docs/benchmarks.md, "Reading the block run"). */
#define DEFAULT_BUSY_POLL_US 2000

const char *const zc_ex_prog = "zc_blk_target";
static volatile sig_atomic_t stop, dump;

enum req_state {
	REQ_FREE,
	REQ_NEW,         /* a capsule arrived: decode and check it */
	REQ_NEED_BUFFER, /* waiting for a data buffer from the pool */
	REQ_FETCHING,    /* RDMA READ of the host's data (write data, connect data, DSM ranges) */
	REQ_EXECUTING,   /* the controller or the backing store does the work */
	REQ_COMPLETING,  /* repost the receive, RDMA WRITE the data, SEND the CQE */
	REQ_SENDING,     /* waiting for those to complete */
	REQ_HELD,        /* an AER: no event ever completes it; it goes with its queue */
};

struct queue;

struct req {
	enum req_state state;
	struct queue *q;
	int rx;                /* the receive buffer holding the capsule; -1 once reposted */
	size_t rx_len;
	struct nvmf_sqe sqe;
	struct nvmf_sgl sgl;
	struct nvmf_io io;
	uint16_t status;
	uint64_t result;
	int buf;               /* pool buffer, -1 if none */
	uint8_t *data;         /* the command's data: a pool buffer or in-capsule */
	int inflight;          /* library operations not completed yet */
	int fetch_posted, data_sent, cqe_sent;
	uint8_t cqe[NVMF_CQE_SIZE];
	int64_t since;         /* ms: when the capsule arrived (SIGUSR1 shows each request's age) */
	int listed;            /* on the ready or stalled list */
	int waiting;           /* on the pool's wait list */
	struct req *next;      /* ready / stalled list */
	struct req *pnext;     /* pool wait list, free list */
};

struct rx_slot {
	struct queue *q;
	int idx;
};

/* A capsule received while every request of its queue was busy. */
struct capsule {
	int idx;              /* its receive slot */
	uint32_t len;
	int64_t since;
};

enum queue_state { Q_SETUP, Q_LIVE, Q_DEAD };

struct ctrl;

struct queue {
	struct zc_conn *zc;   /* NULL once aborted */
	enum queue_state state;
	int established;      /* ZC_EV_CONNECTED came: sends and READs are allowed */
	struct nvmf_cm_req cm;
	uint16_t qid, qsize, sq_head;
	struct ctrl *ctrl;
	char peer[INET6_ADDRSTRLEN + 8];
	uint8_t *rx;
	size_t rx_size;
	struct zc_mr *rx_mr;
	struct rx_slot *slots;
	struct req *reqs, *free_reqs;
	int n_reqs;
	/* Capsules waiting for a request, oldest first: at most one per receive slot, as a slot is
	 * reposted only when its request completes. */
	struct capsule *backlog;
	int backlog_head, n_backlog;
	int outstanding;      /* library operations posted, receives included */
	int64_t last_comp;    /* ms: the last completion of any of its operations */
	uint64_t n_comps;     /* completions of its operations */
	struct queue *next;
};

struct ctrl {
	struct nvmf_ctrl nc;
	struct queue *admin;
	struct queue *ioq[NVMF_MAX_IOQ + 1];
	int64_t last_cmd;     /* ms: the keep-alive timer's start */
	struct ctrl *next;
};

struct list {
	struct req *head, *tail;
};

struct target {
	struct zc_ctx *ctx;
	struct zc_listener *lis;
	struct nvmf_subsys ss;
	struct nvmf_cntlids cntlids;
	/* backing store */
	int fd;               /* -1 for --memory */
	uint8_t *mem;
	uint64_t bytes;
	/* data buffers */
	uint8_t *pool;
	struct zc_mr *pool_mr;
	size_t buf_size;
	int free_bufs[POOL_BUFS], n_free;
	struct req *wait_head, *wait_tail;
	/* scheduling */
	struct list ready, stalled;
	int64_t now;          /* ms, read once per turn of the event loop */
	int spin_us;          /* --busy-poll-us */
	struct queue *queues;
	struct ctrl *ctrls;
	uint64_t n_cmds;      /* capsules received (SIGUSR1: doorbells per command) */
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_ms(void)
{
	return now_us() / 1000;
}

static void list_push(struct list *l, struct req *r)
{
	r->next = NULL;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
}

static struct req *list_pop(struct list *l)
{
	struct req *r = l->head;

	if (r) {
		l->head = r->next;
		if (!l->head)
			l->tail = NULL;
		r->next = NULL;
	}
	return r;
}

static void make_ready(struct target *t, struct req *r)
{
	if (!r->listed) {
		r->listed = 1;
		list_push(&t->ready, r);
	}
}

/* The library had no room (-EAGAIN): try again after the next completions. */
static void stall(struct target *t, struct req *r)
{
	if (!r->listed) {
		r->listed = 1;
		list_push(&t->stalled, r);
	}
}

/* ---- the data buffer pool ------------------------------------------------- */

static uint8_t *buf_addr(struct target *t, int b)
{
	return t->pool + (size_t)b * t->buf_size;
}

/* The first waiter gets the next free buffer. */
static void pool_wake(struct target *t)
{
	if (t->n_free && t->wait_head)
		make_ready(t, t->wait_head);
}

/* Gives r a buffer, or queues it (FIFO) until one is free; returns 0 if it has one. */
static int pool_get(struct target *t, struct req *r)
{
	if (r->buf >= 0)
		return 0;
	if (!t->n_free || (t->wait_head && t->wait_head != r)) {
		if (!r->waiting) {
			r->waiting = 1;
			r->pnext = NULL;
			if (t->wait_tail)
				t->wait_tail->pnext = r;
			else
				t->wait_head = r;
			t->wait_tail = r;
		}
		return -1;
	}
	if (r->waiting) {
		t->wait_head = r->pnext;
		if (!t->wait_head)
			t->wait_tail = NULL;
		r->waiting = 0;
	}
	r->buf = t->free_bufs[--t->n_free];
	pool_wake(t); /* several buffers may have come back while the head waited */
	return 0;
}

static void pool_unwait(struct target *t, struct req *r)
{
	struct req **p, *prev = NULL;

	if (!r->waiting)
		return;
	for (p = &t->wait_head; *p != r; p = &(*p)->pnext)
		prev = *p;
	*p = r->pnext;
	if (t->wait_tail == r)
		t->wait_tail = prev;
	r->waiting = 0;
	pool_wake(t);
}

static void pool_put(struct target *t, struct req *r)
{
	if (r->buf < 0)
		return;
	t->free_bufs[t->n_free++] = r->buf;
	r->buf = -1;
	pool_wake(t);
}

/* ---- queues and controllers ---------------------------------------------- */

static void ctrl_fail(struct target *t, struct ctrl *c, const char *why);

static const char *const state_names[] = {"FREE", "NEW", "NEED_BUFFER", "FETCHING", "EXECUTING",
					  "COMPLETING", "SENDING", "HELD"};

/* SIGUSR1: every queue and every request that is not FREE, to stderr. */
static void dump_state(struct target *t)
{
	int64_t now = now_ms();
	struct queue *q;
	struct zc_stats st = {0};
	int i, waiting = 0;

	for (struct req *r = t->wait_head; r; r = r->pnext)
		waiting++;
	zc_ex_warn("state: pool %d of %d buffers free, %d requests waiting for one", t->n_free, POOL_BUFS, waiting);
	zc_ctx_stats(t->ctx, &st);
	zc_ex_warn("totals: %llu commands, %llu send work requests in %llu doorbells, %llu completions",
		   (unsigned long long)t->n_cmds, (unsigned long long)st.send_wrs, (unsigned long long)st.send_posts,
		   (unsigned long long)st.completions);
	for (q = t->queues; q; q = q->next) {
		struct zc_conn_info info = {0};

		if (q->zc)
			zc_conn_query(q->zc, &info);
		zc_ex_warn("  queue %u from %s: controller %d, %s, %u entries, %d capsules waiting for a request, "
			   "%d operations outstanding, %llu completed, the last %lld ms ago, RDMA READs in flight at most %u",
			   q->qid, q->peer, q->ctrl ? q->ctrl->nc.cntlid : -1,
			   q->state == Q_SETUP ? "SETUP" : q->state == Q_LIVE ? "LIVE" : "DEAD", q->qsize, q->n_backlog,
			   q->outstanding,
			   (unsigned long long)q->n_comps, q->n_comps ? (long long)(now - q->last_comp) : -1LL,
			   info.initiator_depth);
		for (i = 0; i < q->n_reqs; i++) {
			struct req *r = &q->reqs[i];

			if (r->state != REQ_FREE)
				zc_ex_warn("    request %d: %s opcode 0x%02x cid %u, %lld ms old, %d in flight (read %d, "
					   "write %d, cqe %d), buffer %d, listed %d", i, state_names[r->state], r->sqe.opcode,
					   r->sqe.cid, (long long)(now - r->since), r->inflight, r->fetch_posted,
					   r->data_sent, r->cqe_sent, r->buf, r->listed);
		}
	}
}

static const char *queue_name(const struct queue *q, char *buf, size_t n)
{
	if (q->ctrl)
		snprintf(buf, n, "controller %u queue %u (%s)", q->ctrl->nc.cntlid, q->qid, q->peer);
	else
		snprintf(buf, n, "queue %u from %s", q->qid, q->peer);
	return buf;
}

/* The queue is gone (or going): abort its connection; its requests finish as their operations complete. */
static void queue_fail(struct target *t, struct queue *q, int err)
{
	struct ctrl *c = q->ctrl;
	char name[128];
	int i;

	if (q->state == Q_DEAD)
		return;
	if (err == -ECONNRESET)
		zc_ex_warn("%s: the host disconnected", queue_name(q, name, sizeof(name)));
	else if (err)
		zc_ex_warn("%s: dropped: %s", queue_name(q, name, sizeof(name)), zc_strerror(err));
	q->state = Q_DEAD;
	if (q->zc)
		zc_abort(&q->zc);
	for (i = 0; i < q->n_reqs; i++)
		if (q->reqs[i].state != REQ_FREE)
			make_ready(t, &q->reqs[i]);
	if (!c)
		return;
	q->ctrl = NULL;
	if (q->qid == 0) {
		c->admin = NULL;
		ctrl_fail(t, c, NULL); /* a controller lives as long as its admin queue */
	} else {
		c->ioq[q->qid] = NULL;
		nvmf_ctrl_ioq_gone(&c->nc, q->qid);
	}
}

static void ctrl_drop_ioqs(struct target *t, struct ctrl *c)
{
	int i;

	for (i = 1; i <= NVMF_MAX_IOQ; i++)
		if (c->ioq[i])
			queue_fail(t, c->ioq[i], 0);
}

/* The controller ends: every queue of it goes, its id is free again. */
static void ctrl_fail(struct target *t, struct ctrl *c, const char *why)
{
	struct ctrl **p;

	if (why)
		zc_ex_warn("controller %u (%s): %s: disconnecting its queues", c->nc.cntlid, c->nc.hostnqn, why);
	ctrl_drop_ioqs(t, c);
	if (c->admin) {
		struct queue *a = c->admin;

		c->admin = NULL;
		a->ctrl = NULL;
		queue_fail(t, a, 0);
	}
	for (p = &t->ctrls; *p != c; p = &(*p)->next)
		;
	*p = c->next;
	zc_ex_warn("controller %u: gone", c->nc.cntlid);
	nvmf_cntlid_free(&t->cntlids, c->nc.cntlid);
	free(c);
}

static struct ctrl *ctrl_find(struct target *t, uint16_t cntlid)
{
	struct ctrl *c;

	for (c = t->ctrls; c; c = c->next)
		if (c->nc.cntlid == cntlid)
			return c;
	return NULL;
}

static int post_rx(struct target *t, struct queue *q, int i)
{
	int rc;

	if (q->state == Q_DEAD)
		return 0;
	rc = zc_raw_recv(q->zc, q->rx + (size_t)i * q->rx_size, q->rx_size, q->rx_mr, (uintptr_t)&q->slots[i]);
	if (rc) {
		queue_fail(t, q, rc);
		return rc;
	}
	q->outstanding++;
	return 0;
}

static void queue_free(struct queue *q)
{
	if (q->rx_mr)
		zc_mr_dereg(&q->rx_mr);
	free(q->rx);
	free(q->slots);
	free(q->reqs);
	free(q->backlog);
	free(q);
}

/* Frees dead queues whose every operation has completed. */
static void sweep_dead(struct target *t)
{
	struct queue **p = &t->queues, *q;
	int i, busy;

	while ((q = *p)) {
		busy = q->state != Q_DEAD || q->outstanding;
		for (i = 0; !busy && i < q->n_reqs; i++)
			busy = q->reqs[i].listed || q->reqs[i].state != REQ_FREE;
		if (busy) {
			p = &q->next;
			continue;
		}
		*p = q->next;
		zc_ex_warn("queue %u from %s: freed", q->qid, q->peer);
		queue_free(q);
	}
}

/* ---- accepting queues ------------------------------------------------------ */

static void reject(struct zc_conn_req **r, int sts, const char *peer)
{
	uint8_t rej[NVMF_CM_REJ_SIZE];

	zc_ex_warn("connection request from %s rejected: %s", peer, nvmf_cm_status_str(sts));
	nvmf_cm_rej_encode((uint16_t)sts, rej);
	zc_req_reject(r, rej, sizeof(rej));
}

static void peer_str(const struct sockaddr_storage *ss, char *buf, size_t n)
{
	char host[INET6_ADDRSTRLEN];
	int port;

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
	} else {
		const struct sockaddr_in *a = (const void *)ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
	}
	snprintf(buf, n, "%s:%d", host, port);
}

static struct queue *queue_new(struct target *t, const struct nvmf_cm_req *cm, const char *peer)
{
	struct queue *q = calloc(1, sizeof(*q));
	int i;

	if (!q)
		return NULL;
	q->cm = *cm;
	q->qid = cm->qid;
	q->qsize = (uint16_t)(cm->hsqsize + 1);
	snprintf(q->peer, sizeof(q->peer), "%s", peer);
	/* The admin queue takes only SQEs; I/O queues take in-capsule data after them (IOCCSZ). */
	q->rx_size = NVMF_SQE_SIZE + (q->qid ? t->ss.icd_size : 0);
	/* A CQE's SEND may still be in flight when the next command arrives: two requests per entry.
	 * Not a bound: held in an unsignaled chain, a SEND completes only with the chain's last request,
	 * which a lost packet can keep for several of the host's rounds (the backlog takes the rest). */
	q->n_reqs = 2 * q->qsize;
	q->rx = aligned_alloc(64, q->rx_size * q->qsize);
	q->slots = calloc(q->qsize, sizeof(*q->slots));
	q->reqs = calloc((size_t)q->n_reqs, sizeof(*q->reqs));
	q->backlog = calloc(q->qsize, sizeof(*q->backlog));
	if (!q->rx || !q->slots || !q->reqs || !q->backlog || zc_mr_reg(t->ctx, q->rx, q->rx_size * q->qsize, 0, &q->rx_mr)) {
		queue_free(q);
		return NULL;
	}
	/* The NIC fills these without a system call valgrind could see: zeroed
	 * once, memcheck takes the capsules that land here as the defined bytes
	 * they are (test/rxe/valgrind_examples.sh). */
	memset(q->rx, 0, q->rx_size * q->qsize);
	for (i = 0; i < q->qsize; i++)
		q->slots[i] = (struct rx_slot){.q = q, .idx = i};
	for (i = q->n_reqs - 1; i >= 0; i--) {
		q->reqs[i].q = q;
		q->reqs[i].buf = -1;
		q->reqs[i].pnext = q->free_reqs;
		q->free_reqs = &q->reqs[i];
	}
	return q;
}

static void accept_one(struct target *t, struct zc_conn_req *r)
{
	struct zc_conn_info info;
	struct nvmf_cm_req cm;
	struct zc_conn_opts o;
	struct queue *q;
	uint8_t rep[NVMF_CM_REP_SIZE];
	const void *pd = NULL;
	char peer[INET6_ADDRSTRLEN + 8] = "?";
	size_t len = 0;
	int rc, sts, i;

	if (!zc_req_query(r, &info))
		peer_str(&info.peer, peer, sizeof(peer));
	zc_req_private_data(r, &pd, &len);
	sts = nvmf_cm_req_decode(pd, len, t->ss.max_ioq, t->ss.max_qsize, &cm);
	if (sts) {
		reject(&r, sts, peer);
		return;
	}
	q = queue_new(t, &cm, peer);
	if (!q) {
		reject(&r, NVMF_CM_NO_RSC, peer);
		return;
	}
	nvmf_cm_rep_encode(q->qsize, rep);
	zc_conn_opts_init(&o);
	o.raw = 1;
	o.private_data = rep;
	o.private_data_len = sizeof(rep);
	o.raw_recv_depth = q->qsize;
	/* Per request at most an RDMA READ or WRITE and a SEND. */
	o.raw_send_depth = 2u * (uint32_t)q->n_reqs;
	rc = zc_req_accept(&r, &o, &q->zc);
	if (rc) {
		zc_ex_warn("cannot accept queue %u from %s: %s", cm.qid, peer, zc_ex_why(rc));
		queue_free(q);
		return;
	}
	zc_conn_set_data(q->zc, q);
	q->next = t->queues;
	t->queues = q;
	/* Receives before the reply: the host sends Connect as soon as it is established. */
	for (i = 0; i < q->qsize; i++)
		if (post_rx(t, q, i))
			return;
}

/* ---- the backing store ------------------------------------------------------ */

static int store_io(struct target *t, int write, uint8_t *buf, uint64_t len, uint64_t off)
{
	ssize_t n;

	if (t->fd < 0) {
		if (write)
			memcpy(t->mem + off, buf, len);
		else
			memcpy(buf, t->mem + off, len);
		return 0;
	}
	while (len) {
		n = write ? pwrite(t->fd, buf, len, (off_t)off) : pread(t->fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int store_sync(struct target *t)
{
	return t->fd >= 0 && fdatasync(t->fd) ? -errno : 0;
}

/* Zeros [off, off + len): a hole where the file system can punch one, else written zeros. */
static int store_zero(struct target *t, uint64_t off, uint64_t len)
{
	static uint8_t zeros[64 * 1024];

	if (t->fd < 0) {
		memset(t->mem + off, 0, len);
		return 0;
	}
	if (!fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return 0;
	while (len) {
		uint64_t k = len < sizeof(zeros) ? len : sizeof(zeros);
		int rc = store_io(t, 1, zeros, k, off);

		if (rc)
			return rc;
		off += k;
		len -= k;
	}
	return 0;
}

/* ---- executing commands ------------------------------------------------------ */

static void exec_connect(struct target *t, struct req *r)
{
	struct queue *q = r->q;
	struct nvmf_connect cmd;
	struct nvmf_connect_data cd;
	struct ctrl *c;
	int id;

	nvmf_connect_decode(&r->sqe, &cmd);
	r->status = nvmf_connect_data_decode(r->data, r->sgl.len, &cd, &r->result);
	if (!r->status)
		r->status = nvmf_connect_check(&t->ss, &q->cm, &cmd, &cd, &r->result);
	if (r->status)
		return;
	if (q->qid == 0) {
		c = calloc(1, sizeof(*c));
		id = c ? nvmf_cntlid_alloc(&t->cntlids) : -1;
		if (id < 0) {
			free(c);
			r->status = NVMF_SC_CONNECT_CTRL_BUSY;
			return;
		}
		nvmf_ctrl_init(&c->nc, &t->ss, (uint16_t)id, &cmd, &cd);
		c->admin = q;
		c->next = t->ctrls;
		t->ctrls = c;
		r->result = c->nc.cntlid;
		zc_ex_warn("controller %u: %s%s connected from %s, keep-alive timeout %u ms", c->nc.cntlid, cd.hostnqn,
			   c->nc.discovery ? " (discovery)" : "", q->peer, c->nc.kato);
	} else {
		c = ctrl_find(t, cd.cntlid);
		if (!c) {
			r->result = nvmf_connect_invalid(NVMF_IATTR_DATA, NVMF_IPO_CNTLID);
			r->status = NVMF_SC_CONNECT_INVALID_PARAM;
			return;
		}
		r->status = nvmf_ctrl_ioq_connect(&c->nc, &cmd, &cd, &r->result);
		if (r->status)
			return;
		c->ioq[q->qid] = q;
	}
	q->ctrl = c;
	q->state = Q_LIVE;
	c->last_cmd = now_ms();
}

static void exec_admin(struct target *t, struct req *r)
{
	struct ctrl *c = r->q->ctrl;
	unsigned fx;

	if (r->data)
		memset(r->data, 0, r->sgl.len); /* a command that returns less leaks no other host's data */
	r->status = nvmf_admin_exec(&c->nc, &r->sqe, &r->sgl, r->data, &r->result, &fx);
	if (fx & NVMF_FX_RESET)
		ctrl_drop_ioqs(t, c);
	if ((fx & NVMF_FX_SHUTDOWN) && store_sync(t))
		zc_ex_warn("controller %u: shutdown: fdatasync failed: %s", c->nc.cntlid, strerror(errno));
	if (fx & NVMF_FX_HOLD)
		r->state = REQ_HELD;
}

static uint16_t exec_dsm(struct target *t, struct req *r)
{
	struct nvmf_dsm_range rg;
	uint64_t off, len;
	uint32_t i;
	uint16_t st;

	/* Every range is checked before any is touched. */
	for (i = 0; i < r->io.nr_ranges; i++) {
		nvmf_dsm_range_decode(r->data + (size_t)i * NVMF_DSM_RANGE_SIZE, &rg);
		st = nvmf_dsm_range_check(&t->ss.ns, &rg, &off, &len);
		if (st)
			return st;
	}
	if (!r->io.deallocate)
		return NVMF_SC_SUCCESS; /* attributes only: hints we may ignore */
	for (i = 0; i < r->io.nr_ranges; i++) {
		nvmf_dsm_range_decode(r->data + (size_t)i * NVMF_DSM_RANGE_SIZE, &rg);
		nvmf_dsm_range_check(&t->ss.ns, &rg, &off, &len);
		if (len && store_zero(t, off, len))
			return NVMF_SC_INTERNAL;
	}
	return NVMF_SC_SUCCESS;
}

static void exec_io(struct target *t, struct req *r)
{
	const struct nvmf_io *io = &r->io;
	int rc = 0;

	switch (io->opcode) {
	case NVMF_IO_READ:
		rc = store_io(t, 0, r->data, io->len, io->offset);
		break;
	case NVMF_IO_WRITE:
		rc = store_io(t, 1, r->data, io->len, io->offset);
		if (!rc && io->fua)
			rc = store_sync(t);
		break;
	case NVMF_IO_FLUSH:
		rc = store_sync(t);
		break;
	case NVMF_IO_WRITE_ZEROES:
		rc = store_zero(t, io->offset, io->len);
		if (!rc && io->fua)
			rc = store_sync(t);
		break;
	case NVMF_IO_DSM:
		r->status = exec_dsm(t, r);
		return;
	}
	if (rc) {
		zc_ex_warn("the backing store failed: %s", strerror(-rc));
		r->status = NVMF_SC_INTERNAL;
	}
}

/* ---- the request state machine --------------------------------------------------- */

/* Decodes and checks a new capsule; sets the next state. */
static void start(struct target *t, struct req *r)
{
	struct queue *q = r->q;
	uint8_t *rx = q->rx + (size_t)r->rx * q->rx_size;
	enum nvmf_dir dir;

	q->sq_head = (uint16_t)((q->sq_head + 1) % q->qsize);
	if (q->ctrl)
		q->ctrl->last_cmd = t->now;
	r->state = REQ_COMPLETING;
	r->status = nvmf_sqe_data(&r->sqe, q->qid ? t->ss.icd_size : 0, r->rx_len - NVMF_SQE_SIZE, &r->sgl);
	if (r->status)
		return;
	dir = nvmf_sqe_dir(&r->sqe);
	if (r->sgl.type == NVMF_SGL_INCAPSULE)
		r->data = rx + NVMF_SQE_SIZE + r->sgl.addr;
	if (q->state == Q_SETUP) {
		if (r->sqe.opcode != NVMF_FABRICS || r->sqe.fctype != NVMF_FCT_CONNECT)
			r->status = NVMF_SC_CMD_SEQ_ERROR;
		else if (r->sgl.len != NVMF_CONNECT_DATA_SIZE)
			r->status = NVMF_SC_SGL_INVALID_DATA;
		else
			r->state = r->data ? REQ_EXECUTING : REQ_NEED_BUFFER;
		return;
	}
	if (q->qid == 0) {
		/* Admin commands bring no data to the target (Connect is done); some return data. */
		if (dir == NVMF_DIR_FROM_CTRL && r->sgl.len > t->buf_size)
			r->status = NVMF_SC_SGL_INVALID_DATA;
		else
			r->state = dir == NVMF_DIR_FROM_CTRL && r->sgl.len ? REQ_NEED_BUFFER : REQ_EXECUTING;
		return;
	}
	if (r->sqe.opcode == NVMF_FABRICS) {
		r->status = r->sqe.fctype == NVMF_FCT_CONNECT ? NVMF_SC_CMD_SEQ_ERROR : NVMF_SC_INVALID_OPCODE;
		return;
	}
	r->status = nvmf_io_check(&q->ctrl->nc, &r->sqe, &r->sgl, &r->io);
	if (r->status)
		return;
	if (dir != NVMF_DIR_NONE)
		r->sgl.len = (uint32_t)r->io.len; /* DSM: only the ranges, not all the host described */
	if (r->sgl.len > t->buf_size && dir != NVMF_DIR_NONE) {
		r->status = NVMF_SC_SGL_INVALID_DATA; /* DSM with more ranges than a buffer holds */
		return;
	}
	r->state = dir == NVMF_DIR_NONE || r->data ? REQ_EXECUTING : REQ_NEED_BUFFER;
}

static void execute(struct target *t, struct req *r)
{
	struct queue *q = r->q;

	r->state = REQ_COMPLETING;
	if (q->state == Q_SETUP)
		exec_connect(t, r);
	else if (q->qid == 0)
		exec_admin(t, r);
	else
		exec_io(t, r);
}

/* Reposts the receive buffer, then the data (RDMA WRITE) and the CQE (SEND), both held for the loop's
 * next wait (ZC_RAW_MORE: one doorbell for the turn). Returns -EAGAIN to retry. */
static int complete(struct target *t, struct req *r)
{
	struct queue *q = r->q;
	struct nvmf_cqe cqe = {.result = r->result, .sq_head = q->sq_head, .sq_id = q->qid, .cid = r->sqe.cid,
			       .status = nvmf_status(r->status)};
	int rc;

	if (r->rx >= 0) {
		int rx = r->rx;

		r->rx = -1;
		if (post_rx(t, q, rx))
			return 0;
	}
	/* The host may send Connect before our side hears the connection is up. */
	if (!q->established)
		return -EAGAIN;
	if (!r->data_sent && !r->status && r->buf >= 0 && nvmf_sqe_dir(&r->sqe) == NVMF_DIR_FROM_CTRL) {
		rc = zc_raw_write(q->zc, r->data, r->sgl.len, t->pool_mr, r->sgl.addr, r->sgl.key, (uintptr_t)r,
				  ZC_RAW_MORE);
		if (rc == -EAGAIN)
			return rc;
		if (rc) {
			queue_fail(t, q, rc);
			return 0;
		}
		r->data_sent = 1;
		r->inflight++;
		q->outstanding++;
	}
	if (!r->cqe_sent) {
		nvmf_cqe_encode(&cqe, r->cqe);
		rc = zc_raw_send(q->zc, r->cqe, sizeof(r->cqe), NULL, (uintptr_t)r, ZC_RAW_MORE, 0);
		if (rc == -EAGAIN)
			return rc;
		if (rc) {
			queue_fail(t, q, rc);
			return 0;
		}
		r->cqe_sent = 1;
		r->inflight++;
		q->outstanding++;
	}
	return 0;
}

/* The first free request takes capsule c (in its receive slot). */
static void req_start(struct target *t, struct queue *q, const struct capsule *c)
{
	struct req *r = q->free_reqs;

	q->free_reqs = r->pnext;
	r->pnext = NULL;
	t->n_cmds++;
	r->rx = c->idx;
	r->rx_len = c->len;
	r->since = c->since;
	nvmf_sqe_decode(q->rx + (size_t)c->idx * q->rx_size, c->len, &r->sqe);
	r->state = REQ_NEW;
	make_ready(t, r);
}

static void req_free(struct target *t, struct req *r)
{
	struct queue *q = r->q;

	pool_unwait(t, r);
	pool_put(t, r);
	memset(&r->sqe, 0, sizeof(*r) - offsetof(struct req, sqe));
	r->buf = -1;
	r->rx = -1;
	r->state = REQ_FREE;
	r->pnext = q->free_reqs;
	q->free_reqs = r;
	if (q->n_backlog && q->state != Q_DEAD) {
		struct capsule c = q->backlog[q->backlog_head];

		q->backlog_head = (q->backlog_head + 1) % q->qsize;
		q->n_backlog--;
		req_start(t, q, &c);
	}
}

static void advance(struct target *t, struct req *r)
{
	struct queue *q = r->q;
	int rc;

	for (;;) {
		if (q->state == Q_DEAD) {
			/* Nothing more goes out; the request ends when the library gives back what it holds. */
			if (!r->inflight && r->state != REQ_FREE)
				req_free(t, r);
			return;
		}
		switch (r->state) {
		case REQ_FREE:
		case REQ_HELD:
			return;
		case REQ_NEW:
			start(t, r);
			break;
		case REQ_NEED_BUFFER:
			if (pool_get(t, r))
				return; /* pool_put() makes it ready */
			r->data = buf_addr(t, r->buf);
			r->state = nvmf_sqe_dir(&r->sqe) == NVMF_DIR_TO_CTRL ? REQ_FETCHING : REQ_EXECUTING;
			break;
		case REQ_FETCHING:
			if (r->inflight)
				return; /* the READ completes */
			if (r->fetch_posted) {
				r->state = REQ_EXECUTING;
				break;
			}
			rc = q->established ? zc_raw_read(q->zc, r->data, r->sgl.len, t->pool_mr, r->sgl.addr, r->sgl.key,
							      (uintptr_t)r, ZC_RAW_MORE)
					    : -EAGAIN;
			if (rc == -EAGAIN) {
				stall(t, r);
				return;
			}
			if (rc) {
				queue_fail(t, q, rc);
				break;
			}
			r->fetch_posted = 1;
			r->inflight++;
			q->outstanding++;
			return;
		case REQ_EXECUTING:
			execute(t, r);
			if (r->state == REQ_HELD && r->rx >= 0) {
				int rx = r->rx;

				r->rx = -1;
				post_rx(t, q, rx);
			}
			break;
		case REQ_COMPLETING:
			if (complete(t, r) == -EAGAIN) {
				stall(t, r);
				return;
			}
			if (q->state != Q_DEAD)
				r->state = REQ_SENDING;
			break;
		case REQ_SENDING:
			if (r->inflight)
				return;
			req_free(t, r);
			return;
		}
	}
}

static void run_ready(struct target *t)
{
	struct req *r;

	while ((r = list_pop(&t->ready))) {
		r->listed = 0;
		advance(t, r);
	}
}

/* ---- events ------------------------------------------------------------------------ */

static void on_recv(struct target *t, const struct zc_event *ev)
{
	struct rx_slot *s = (struct rx_slot *)(uintptr_t)ev->token;
	struct queue *q = s->q;
	struct capsule c = {.idx = s->idx, .len = ev->len, .since = t->now};

	q->outstanding--;
	q->n_comps++;
	q->last_comp = t->now;
	if (q->state == Q_DEAD)
		return;
	if (ev->status) {
		queue_fail(t, q, ev->status);
		return;
	}
	if (ev->len < NVMF_SQE_SIZE || (ev->flags & ZC_COMP_INVALIDATED)) {
		char name[128];

		/* Not a capsule, or it voided a key of ours: the host breaks the transport. */
		zc_ex_warn("%s: %s", queue_name(q, name, sizeof(name)),
			   ev->len < NVMF_SQE_SIZE ? "a capsule shorter than an SQE" : "a SEND with invalidate");
		if (q->ctrl)
			ctrl_fail(t, q->ctrl, "transport error");
		else
			queue_fail(t, q, -EPROTO);
		return;
	}
	if (q->free_reqs && !q->n_backlog) {
		req_start(t, q, &c);
		return;
	}
	if (q->n_backlog == q->qsize) { /* one per receive slot: a broken invariant, not the host's fault */
		queue_fail(t, q, -ENOBUFS);
		return;
	}
	q->backlog[(q->backlog_head + q->n_backlog++) % q->qsize] = c;
}

static void on_completion(struct target *t, const struct zc_event *ev)
{
	struct req *r;

	if (ev->op == ZC_OP_RAW_RECV) {
		on_recv(t, ev);
		return;
	}
	r = (struct req *)(uintptr_t)ev->token;
	r->inflight--;
	r->q->outstanding--;
	r->q->n_comps++;
	r->q->last_comp = t->now;
	if (ev->status && r->q->state != Q_DEAD)
		queue_fail(t, r->q, ev->status); /* RDMA: a failed operation ends the connection */
	make_ready(t, r);
}

static void on_event(struct target *t, const struct zc_event *ev)
{
	struct queue *q = ev->data;
	struct zc_conn_req *req;
	int rc;

	switch (ev->type) {
	case ZC_EV_ACCEPT:
		while ((rc = zc_req_get(t->lis, &req, 0)) == 0)
			accept_one(t, req);
		break;
	case ZC_EV_COMPLETION:
		on_completion(t, ev);
		break;
	case ZC_EV_CONNECTED:
		if (ev->status)
			queue_fail(t, q, ev->status);
		else
			q->established = 1;
		break;
	case ZC_EV_PEER_CLOSED:
		queue_fail(t, q, -ECONNRESET);
		break;
	case ZC_EV_ERROR:
		queue_fail(t, q, ev->status);
		break;
	}
}

/* Controllers whose host has been silent past the keep-alive timeout. */
static void check_kato(struct target *t)
{
	int64_t now = now_ms();
	struct ctrl *c, *next;

	for (c = t->ctrls; c; c = next) {
		next = c->next;
		if (now > nvmf_ctrl_kato_deadline(&c->nc, c->last_cmd))
			ctrl_fail(t, c, "keep-alive timeout");
	}
}

/*
 * Polls for events without sleeping while the last one is at most
 * spin_us old (-1: always; the call then returns after timeout_ms so the
 * loop runs its checks), yielding the CPU between polls to anything else
 * runnable: in the guest the host, rxe's packet work and this target share
 * two vCPUs, and a poller that does not yield takes their time. Then sleeps
 * on the context's fd up to timeout_ms. The clock is read every 16 polls.
 */
static int wait_events(struct target *t, struct zc_event *evs, int timeout_ms)
{
	int64_t start = -1, now, limit = t->spin_us < 0 ? (int64_t)timeout_ms * 1000 : t->spin_us;
	unsigned polls = 0;
	int n;

	while (t->spin_us && !stop) {
		n = zc_wait_events(t->ctx, evs, N_EVENTS, 0);
		if (n)
			return n;
		sched_yield();
		if (++polls & 15)
			continue;
		now = now_us();
		if (start < 0)
			start = now;
		else if (now - start >= limit)
			break;
	}
	return t->spin_us < 0 ? 0 : zc_wait_events(t->ctx, evs, N_EVENTS, timeout_ms);
}

/* ---- setup ----------------------------------------------------------------------------- */

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		dump = 1;
	else
		stop = 1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: %s --listen ADDR[:PORT] (--file PATH | --memory SIZE) [--nqn NQN]\n"
		"       [--block-size 512|4096] [--queue-depth N] [--read-only] [--busy-poll-us N]\n"
		"  --listen ADDR[:PORT]  an address of an RDMA netdev (port %d by default)\n"
		"  --file PATH           serve this existing file (its size, rounded down to blocks)\n"
		"  --memory SIZE         serve SIZE bytes of memory instead (K/M/G suffixes)\n"
		"  --nqn NQN             the subsystem's NQN (default %s)\n"
		"  --block-size B        512 or 4096 (default 512)\n"
		"  --queue-depth N       entries per I/O queue, 2..1024 (default 128)\n"
		"  --read-only           the namespace is write protected\n"
		"  --busy-poll-us N      after the last event, poll this long (yielding the CPU\n"
		"                        between polls) before sleeping (default %d; -1 never\n"
		"                        sleeps, 0 sleeps at once)\n",
		zc_ex_prog, NVMF_PORT, DEFAULT_NQN, DEFAULT_BUSY_POLL_US);
	exit(2);
}

static int open_store(struct target *t, const char *file, long long memsize, int read_only)
{
	struct stat st;

	if (!file) {
		t->bytes = (uint64_t)memsize;
		t->mem = mmap(NULL, t->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (t->mem == MAP_FAILED) {
			t->mem = NULL;
			zc_ex_warn("cannot allocate %llu bytes: %s", (unsigned long long)t->bytes, strerror(errno));
			return -1;
		}
		return 0;
	}
	t->fd = open(file, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (t->fd < 0) {
		zc_ex_warn("cannot open %s: %s%s", file, strerror(errno),
			   errno == ENOENT ? " (create it first, e.g. truncate -s 256M FILE)" : "");
		return -1;
	}
	if (fstat(t->fd, &st)) {
		zc_ex_warn("cannot stat %s: %s", file, strerror(errno));
		return -1;
	}
	t->bytes = (uint64_t)st.st_size;
	return 0;
}

static void shutdown_all(struct target *t)
{
	struct zc_event evs[N_EVENTS];
	int i, n, rounds;

	while (t->ctrls)
		ctrl_fail(t, t->ctrls, NULL);
	for (struct queue *q = t->queues; q; q = q->next)
		queue_fail(t, q, 0);
	for (rounds = 0; t->queues && rounds < 200; rounds++) {
		n = zc_wait_events(t->ctx, evs, N_EVENTS, 10);
		for (i = 0; i < n; i++)
			on_event(t, &evs[i]);
		run_ready(t);
		while (t->stalled.head) {
			struct req *r = list_pop(&t->stalled);

			r->listed = 0;
			make_ready(t, r);
		}
		run_ready(t);
		sweep_dead(t);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},      {"file", required_argument, NULL, 'f'},
		{"memory", required_argument, NULL, 'm'},      {"nqn", required_argument, NULL, 'n'},
		{"block-size", required_argument, NULL, 'B'},  {"queue-depth", required_argument, NULL, 'q'},
		{"read-only", no_argument, NULL, 'r'},         {"busy-poll-us", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct target t = {.fd = -1};
	const char *listen_arg = NULL, *file = NULL, *nqn = DEFAULT_NQN;
	long long memsize = -1, v, qdepth = 128, busy_poll_us = DEFAULT_BUSY_POLL_US;
	uint32_t block_size = 512;
	struct zc_event evs[N_EVENTS];
	struct zc_ctx_opts xo;
	struct zc_conn_opts lo;
	struct sigaction sa;
	struct timespec seed;
	char host[256];
	uint16_t port;
	int opt, rc, i, n, read_only = 0, status = 1;

	while ((opt = getopt_long(argc, argv, "l:f:m:n:B:q:rp:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l': listen_arg = optarg; break;
		case 'f': file = optarg; break;
		case 'n': nqn = optarg; break;
		case 'm':
			memsize = zc_ex_parse_size(optarg);
			if (memsize <= 0)
				usage();
			break;
		case 'B':
			v = atoll(optarg);
			if (v != 512 && v != 4096)
				usage();
			block_size = (uint32_t)v;
			break;
		case 'q':
			qdepth = atoll(optarg);
			if (qdepth < 2 || qdepth > 1024)
				usage();
			break;
		case 'r': read_only = 1; break;
		case 'p':
			if (zc_ex_parse_int(optarg, -1, 60000000, &busy_poll_us))
				usage();
			break;
		default: usage();
		}
	}
	if (optind != argc || !listen_arg || !file == (memsize < 0) ||
	    zc_ex_parse_hostport(listen_arg, host, sizeof(host), &port, NVMF_PORT))
		usage();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: the wait wakes up */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (open_store(&t, file, memsize, read_only))
		goto out;
	if (nvmf_subsys_init(&t.ss, nqn, block_size, t.bytes / block_size)) {
		zc_ex_warn("%s is not a valid NQN (nqn.YYYY-MM.reverse.domain:name, at most %d characters)", nqn,
			   NVMF_NQN_MAX);
		goto out;
	}
	if (!t.ss.ns.nblocks) {
		zc_ex_warn("the device is smaller than one %u-byte block", block_size);
		goto out;
	}
	t.ss.ns.read_only = read_only;
	t.ss.vwc = file != NULL; /* the page cache: Flush (fdatasync) makes writes durable */
	t.ss.max_qsize = (uint16_t)qdepth;
	t.ss.adrfam = strchr(host, ':') ? 2 : 1;
	snprintf(t.ss.traddr, sizeof(t.ss.traddr), "%s", host);
	snprintf(t.ss.trsvcid, sizeof(t.ss.trsvcid), "%u", port);
	/* A restarted target must hand out new controller ids: the host takes an old one for a stale controller. */
	clock_gettime(CLOCK_REALTIME, &seed);
	nvmf_cntlids_init(&t.cntlids, (uint32_t)(seed.tv_nsec ^ seed.tv_sec ^ getpid()));

	zc_ctx_opts_init(&xo);
	xo.cq_depth = 16384;
	xo.busy_poll_us = 0; /* wait_events() polls, yielding between polls */
	t.spin_us = (int)busy_poll_us;
	rc = zc_ctx_new(host, &xo, &t.ctx);
	if (rc) {
		zc_ex_warn("cannot open the RDMA device of %s: %s", host, zc_ex_why(rc));
		goto out;
	}
	t.buf_size = t.ss.max_xfer;
	t.pool = mmap(NULL, t.buf_size * POOL_BUFS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t.pool == MAP_FAILED) {
		t.pool = NULL;
		zc_ex_warn("out of memory for the buffer pool");
		goto out;
	}
	rc = zc_mr_reg(t.ctx, t.pool, t.buf_size * POOL_BUFS, 0, &t.pool_mr);
	if (rc) {
		zc_ex_warn("cannot register the %d x %zu-byte buffer pool: %s", POOL_BUFS, t.buf_size, zc_ex_why(rc));
		goto out;
	}
	for (i = 0; i < POOL_BUFS; i++)
		t.free_bufs[t.n_free++] = i;
	zc_conn_opts_init(&lo);
	lo.raw = 1;
	rc = zc_listen(t.ctx, port, &lo, &t.lis);
	if (rc) {
		zc_ex_warn("cannot listen on %s:%u: %s", host, port, zc_ex_why(rc));
		goto out;
	}
	zc_ex_warn("listening on %s:%u, NQN %s: namespace 1 = %s%s, %llu blocks of %u bytes%s, queue depth %u", host,
		   zc_listener_port(t.lis), nqn, file ? "file " : "memory", file ? file : "",
		   (unsigned long long)t.ss.ns.nblocks, block_size, read_only ? ", read-only" : "", t.ss.max_qsize);

	while (!stop) {
		n = wait_events(&t, evs, t.stalled.head ? 1 : 100);
		t.now = now_ms();
		for (i = 0; i < n; i++)
			on_event(&t, &evs[i]);
		while (t.stalled.head) {
			struct req *r = list_pop(&t.stalled);

			r->listed = 0;
			make_ready(&t, r);
		}
		run_ready(&t);
		/* Only once the events are drained: a keep-alive may be among them. */
		if (n < N_EVENTS)
			check_kato(&t);
		sweep_dead(&t);
		if (dump) {
			dump = 0;
			dump_state(&t);
		}
	}
	zc_ex_warn("stopping");
	status = 0;
out:
	if (t.ctx)
		shutdown_all(&t);
	if (t.lis)
		zc_listener_free(&t.lis);
	if (t.pool_mr)
		zc_mr_dereg(&t.pool_mr);
	if (t.ctx)
		zc_ctx_free(&t.ctx);
	if (t.pool)
		munmap(t.pool, t.buf_size * POOL_BUFS);
	if (t.mem)
		munmap(t.mem, t.bytes);
	if (t.fd >= 0) {
		store_sync(&t);
		close(t.fd);
	}
	return status;
}
