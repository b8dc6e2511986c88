/*
 * zc_blk_legacy_target - serve one block device over zcrdma (docs/blk-protocol.md)
 *
 *   zc_blk_legacy_target --listen ADDR[:PORT] (--file PATH | --memory SIZE)
 *                 [--block-size 512|4096] [--queue-depth N] [--read-only]
 *                 [--pool N] [--max-io SIZE]
 *
 * One thread, one zcrdma context, any number of initiators. Every capsule
 * lands in a receive buffer posted with zc_recv_zc() and becomes a request
 * that one state machine (advance()) drives:
 *
 *   FREE -> NEW -> NEED_BUFFER -> TRANSFERRING -> EXECUTING -> RESPONDING -> DONE -> FREE   (WRITE)
 *   FREE -> NEW -> NEED_BUFFER -> EXECUTING -> TRANSFERRING -> RESPONDING -> DONE -> FREE   (READ)
 *   FREE -> NEW -> EXECUTING -> RESPONDING -> DONE -> FREE                                  (FLUSH, DISCARD, CAPACITY)
 *   FREE -> NEW -> RESPONDING -> DONE -> FREE                                               (HELLO, any error)
 *
 * Data moves between a shared pool of pre-registered buffers and the
 * initiators' exported buffers by RDMA (zc_rma_read / zc_rma_write); the
 * backing store is read/written with pread/pwrite. Bad commands get an error
 * response; a connection whose transfer fails (RDMA semantics) is dropped,
 * the others go on. SIGTERM/SIGINT stop the target.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zcrdma.h>

#include "blk_proto.h"
#include "zc_example.h"

#define SPARE_REQS 4   /* requests beyond the queue depth: room to reject a misbehaving initiator */
#define RX_BUF 128     /* a capsule is 64 bytes; longer junk is seen as such */
#define POLL_BATCH 64

const char *const zc_ex_prog = "zc_blk_legacy_target";
static volatile sig_atomic_t stop, dump;

enum req_state {
	REQ_FREE,         /* receive buffer posted (or the connection is gone): no command */
	REQ_NEW,          /* a capsule arrived: decode and validate it */
	REQ_NEED_BUFFER,  /* READ/WRITE waiting for a pool buffer */
	REQ_TRANSFERRING, /* RDMA between the pool buffer and the initiator: to post, or in flight */
	REQ_EXECUTING,    /* the backing store does the work */
	REQ_RESPONDING,   /* the response is to be sent */
	REQ_DONE,         /* release everything, repost the receive buffer */
};

static const char *const state_names[] = {"FREE", "NEW", "NEED_BUFFER", "TRANSFERRING", "EXECUTING",
					  "RESPONDING", "DONE"};

struct tconn;

struct req {
	enum req_state state;
	struct tconn *conn;
	uint8_t rx[RX_BUF];
	size_t rx_len;          /* SIZE_MAX: longer than rx (discarded by the library) */
	struct blk_capsule cap; /* decoded capsule */
	uint16_t tag;           /* echoed in the response */
	int owns_tag;           /* this request marked its tag busy */
	int status;             /* enum blk_status for the response */
	uint32_t detail;
	int buf;                /* pool buffer index, -1 if none */
	int rma_posted, rma_done, rma_status;
	int64_t t_new;          /* ms, when the capsule arrived (for the SIGUSR1 dump) */
	int listed;             /* on the ready or stalled list */
	int waiting;            /* on the pool's wait list */
	struct req *next;       /* ready / stalled list */
	struct req *pnext;      /* pool wait list */
};

enum conn_state { C_HELLO, C_ACTIVE, C_DEAD };

struct tconn {
	struct zc_conn *zc;     /* NULL once aborted */
	enum conn_state state;
	unsigned id;
	uint16_t qd;
	uint8_t tag_busy[BLK_MAX_QD];
	struct req *reqs;
	int n_reqs;
	int outstanding;        /* zero-copy operations the library holds for us */
	int active;             /* requests not FREE */
	uint64_t cmds;          /* commands answered */
	uint64_t dead_epoch;    /* t->epoch when it died */
	struct tconn *next;
};

struct list {
	struct req *head, *tail;
};

struct target {
	struct zc_ctx *ctx;
	struct zc_listener *lis;
	/* backing store */
	int fd;                 /* -1 for --memory */
	uint8_t *mem;
	uint64_t bytes;
	struct blk_geom geom;   /* queue_depth: the most any connection is granted */
	/* buffer pool */
	uint8_t *pool;
	struct zc_mr *pool_mr;
	size_t buf_size;
	int n_bufs, n_free;
	int *free_bufs;
	struct req *wait_head, *wait_tail; /* requests waiting for a buffer, FIFO */
	/* scheduling */
	struct list ready, stalled;
	struct tconn *conns;
	unsigned next_id;
	uint64_t epoch;         /* completion-ring drains started */
};

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

/* Schedules r to be advanced by the main loop. */
static void make_ready(struct target *t, struct req *r)
{
	if (!r->listed) {
		r->listed = 1;
		list_push(&t->ready, r);
	}
}

/* r could not proceed for lack of library resources (-EAGAIN): retry after the next poll. */
static void stall(struct target *t, struct req *r)
{
	if (!r->listed) {
		r->listed = 1;
		list_push(&t->stalled, r);
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SIGUSR1: every connection and every request that is not FREE, to stderr. */
static void dump_state(struct target *t)
{
	int64_t now = now_ms();
	struct tconn *c;
	struct req *r;
	int i, waiting = 0;

	for (r = t->wait_head; r; r = r->pnext)
		waiting++;
	zc_ex_warn("state: pool %d of %d buffers free, %d requests waiting for one", t->n_free, t->n_bufs, waiting);
	for (c = t->conns; c; c = c->next) {
		zc_ex_warn("  connection %u: %s, queue depth %u, %d active, %d zero-copy operations outstanding, %llu answered",
		      c->id, c->state == C_HELLO ? "HELLO" : c->state == C_ACTIVE ? "ACTIVE" : "DEAD", c->qd, c->active,
		      c->outstanding, (unsigned long long)c->cmds);
		for (i = 0; i < c->n_reqs; i++) {
			r = &c->reqs[i];
			if (r->state == REQ_FREE)
				continue;
			zc_ex_warn("    request %d: %s tag %u %s LBA %llu x %u, rma posted %d done %d, listed %d, %lld ms old", i,
			      blk_opcode_str(r->cap.opcode), r->tag, state_names[r->state],
			      (unsigned long long)r->cap.lba, r->cap.nblocks, r->rma_posted, r->rma_done, r->listed,
			      (long long)(now - r->t_new));
		}
	}
}

/* ---- buffer pool ---------------------------------------------------- */

static void wait_remove(struct target *t, struct req *r)
{
	struct req **pp = &t->wait_head, *prev = NULL;

	if (!r->waiting)
		return;
	while (*pp != r) {
		prev = *pp;
		pp = &(*pp)->pnext;
	}
	*pp = r->pnext;
	if (t->wait_tail == r)
		t->wait_tail = prev;
	r->pnext = NULL;
	r->waiting = 0;
}

/* First come, first served across all connections. */
static int pool_get(struct target *t, struct req *r)
{
	if (t->n_free && (!t->wait_head || t->wait_head == r)) {
		wait_remove(t, r);
		r->buf = t->free_bufs[--t->n_free];
		if (t->n_free && t->wait_head)
			make_ready(t, t->wait_head);
		return 1;
	}
	if (!r->waiting) {
		r->waiting = 1;
		r->pnext = NULL;
		if (t->wait_tail)
			t->wait_tail->pnext = r;
		else
			t->wait_head = r;
		t->wait_tail = r;
	}
	return 0;
}

static void pool_put(struct target *t, struct req *r)
{
	if (r->buf < 0)
		return;
	t->free_bufs[t->n_free++] = r->buf;
	r->buf = -1;
	if (t->wait_head)
		make_ready(t, t->wait_head);
}

static uint8_t *buf_ptr(struct target *t, struct req *r)
{
	return t->pool + (size_t)r->buf * t->buf_size;
}

/* ---- connections ---------------------------------------------------- */

/* Ends a connection: aborts it (pending zero-copy operations complete with
 * errors and are reaped by the main loop), and lets every request run to
 * DONE without a response. rc 0: the peer closed in order. */
static void conn_fail(struct target *t, struct tconn *c, int rc)
{
	int i;

	if (c->state == C_DEAD)
		return;
	if (rc == -ESHUTDOWN)
		zc_ex_warn("connection %u closed after %llu commands: the target is stopping", c->id,
			   (unsigned long long)c->cmds);
	else if (rc)
		zc_ex_warn("connection %u failed after %llu commands: %s", c->id, (unsigned long long)c->cmds,
			   zc_ex_why(rc));
	else
		zc_ex_warn("connection %u closed by the initiator after %llu commands", c->id,
		      (unsigned long long)c->cmds);
	c->state = C_DEAD;
	c->dead_epoch = t->epoch;
	zc_abort(&c->zc);
	for (i = 0; i < c->n_reqs; i++)
		if (c->reqs[i].state != REQ_FREE)
			make_ready(t, &c->reqs[i]);
}

static int post_rx(struct target *t, struct req *r)
{
	struct tconn *c = r->conn;
	int rc = zc_recv_zc(c->zc, r->rx, RX_BUF, NULL, (uint64_t)(uintptr_t)r);

	if (rc) {
		conn_fail(t, c, rc);
		return rc;
	}
	c->outstanding++;
	return 0;
}

static void conn_add(struct target *t, struct zc_conn *zc)
{
	struct tconn *c = calloc(1, sizeof(*c));
	int i;

	if (c)
		c->reqs = calloc((size_t)t->geom.queue_depth + SPARE_REQS, sizeof(*c->reqs));
	if (!c || !c->reqs) {
		zc_ex_warn("out of memory for a connection: dropped");
		free(c);
		zc_abort(&zc);
		return;
	}
	c->zc = zc;
	c->id = ++t->next_id;
	c->n_reqs = t->geom.queue_depth + SPARE_REQS;
	c->next = t->conns;
	t->conns = c;
	for (i = 0; i < c->n_reqs; i++) {
		c->reqs[i].conn = c;
		c->reqs[i].buf = -1;
		c->reqs[i].state = REQ_FREE;
		if (c->state != C_DEAD)
			post_rx(t, &c->reqs[i]);
	}
	zc_ex_warn("connection %u accepted", c->id);
}

static void conn_free(struct target *t, struct tconn *c)
{
	struct tconn **pp = &t->conns;

	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	zc_mr_invalidate(t->ctx, c->reqs, sizeof(*c->reqs) * (size_t)c->n_reqs);
	free(c->reqs);
	free(c);
}

/* Frees dead connections once nothing of theirs is outstanding. zc_abort()
 * puts every completion the library will ever deliver for a connection into
 * the ring at once, so a connection that died before the last drain of the
 * ring started has nothing more coming. */
static void sweep_dead(struct target *t)
{
	struct tconn *c = t->conns, *next;
	int i;

	for (; c; c = next) {
		next = c->next;
		if (c->state != C_DEAD || c->dead_epoch >= t->epoch)
			continue;
		if (c->outstanding) {
			zc_ex_warn("connection %u: %d operations never completed; releasing them", c->id, c->outstanding);
			for (i = 0; i < c->n_reqs; i++) {
				struct req *r = &c->reqs[i];

				if (r->rma_posted && !r->rma_done) {
					r->rma_done = 1;
					r->rma_status = -ECONNABORTED;
					make_ready(t, r);
				}
			}
			c->outstanding = 0;
			continue; /* the requests run to DONE first */
		}
		if (c->active)
			continue;
		for (i = 0; i < c->n_reqs; i++)
			if (c->reqs[i].listed)
				break;
		if (i < c->n_reqs)
			continue;
		conn_free(t, c);
	}
}

/* ---- the request state machine ------------------------------------ */

static int full_io(struct target *t, int write, uint8_t *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	if (t->fd < 0) {
		if (write)
			memcpy(t->mem + off, buf, len);
		else
			memcpy(buf, t->mem + off, len);
		return 0;
	}
	while (done < len) {
		ssize_t n = write ? pwrite(t->fd, buf + done, len - done, (off_t)(off + done))
				  : pread(t->fd, buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return EIO; /* the file shrank under us */
		done += (size_t)n;
	}
	return 0;
}

/* NEW: decode and validate the capsule; returns the next state. */
static enum req_state on_new(struct target *t, struct req *r)
{
	struct tconn *c = r->conn;
	struct blk_geom g = t->geom;
	uint16_t qd;
	int st;

	st = blk_capsule_decode(r->rx, r->rx_len == SIZE_MAX ? RX_BUF + 1 : r->rx_len, &r->cap, &r->tag);
	if (c->state == C_HELLO) {
		if (st == BLK_S_OK)
			st = blk_hello_validate(&r->cap, t->geom.queue_depth, &qd);
		if (st == BLK_S_OK) {
			c->qd = qd;
			c->state = C_ACTIVE;
			zc_ex_warn("connection %u: HELLO, queue depth %u granted", c->id, qd);
		}
		r->status = st;
		return REQ_RESPONDING;
	}
	g.queue_depth = c->qd;
	if (st == BLK_S_OK)
		st = blk_capsule_validate(&r->cap, &g);
	if (st == BLK_S_OK && c->tag_busy[r->tag])
		st = BLK_S_TAG_IN_USE;
	r->status = st;
	if (st != BLK_S_OK)
		return REQ_RESPONDING;
	c->tag_busy[r->tag] = 1;
	r->owns_tag = 1;
	if (r->cap.opcode == BLK_OP_READ || r->cap.opcode == BLK_OP_WRITE)
		return REQ_NEED_BUFFER;
	return REQ_EXECUTING;
}

/* EXECUTING: the backing store's part; returns the next state. */
static enum req_state execute(struct target *t, struct req *r)
{
	uint64_t off = r->cap.lba * t->geom.block_size;
	size_t len = (size_t)blk_xfer_bytes(&r->cap, t->geom.block_size);
	int err = 0;

	switch (r->cap.opcode) {
	case BLK_OP_READ:
		err = full_io(t, 0, buf_ptr(t, r), len, off);
		if (!err)
			return REQ_TRANSFERRING;
		break;
	case BLK_OP_WRITE:
		err = full_io(t, 1, buf_ptr(t, r), len, off);
		break;
	case BLK_OP_FLUSH:
		if (t->fd >= 0 && fdatasync(t->fd))
			err = errno;
		break;
	case BLK_OP_DISCARD:
		if (t->fd < 0)
			memset(t->mem + off, 0, len);
		else if (fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) &&
			 errno != EOPNOTSUPP)
			err = errno; /* where holes cannot be punched, discard is a no-op */
		break;
	default: /* CAPACITY */
		break;
	}
	if (err) {
		r->status = BLK_S_IO_ERROR;
		r->detail = (uint32_t)err;
	}
	return REQ_RESPONDING;
}

/* TRANSFERRING, not yet posted: 1 posted, 0 stalled, -1 failed (state set). */
static int post_transfer(struct target *t, struct req *r)
{
	struct tconn *c = r->conn;
	size_t len = (size_t)blk_xfer_bytes(&r->cap, t->geom.block_size);
	uint64_t token = (uint64_t)(uintptr_t)r;
	int rc;

	if (r->cap.opcode == BLK_OP_READ)
		rc = zc_rma_write(c->zc, buf_ptr(t, r), len, t->pool_mr, &r->cap.desc, 0, token);
	else
		rc = zc_rma_read(c->zc, buf_ptr(t, r), len, t->pool_mr, &r->cap.desc, 0, token);
	if (rc == -EAGAIN) {
		stall(t, r);
		return 0;
	}
	if (rc == 0) {
		r->rma_posted = 1;
		c->outstanding++;
		return 1;
	}
	/* Checked locally, before anything reached the wire: the connection lives. */
	if (rc == -EINVAL)
		r->status = BLK_S_BAD_DESC;
	else if (rc == -EPERM)
		r->status = BLK_S_DESC_ACCESS;
	else
		r->status = BLK_S_TRANSFER;
	r->detail = (uint32_t)-rc;
	return -1;
}

/* RESPONDING: 1 sent (or pointless), 0 stalled. */
static int respond(struct target *t, struct req *r)
{
	struct tconn *c = r->conn;
	struct blk_resp resp = {.version = BLK_PROTO_VERSION, .opcode = r->cap.opcode, .tag = r->tag,
				.status = (uint16_t)r->status, .detail = r->detail};
	uint8_t buf[BLK_RESP_SIZE];
	ssize_t n;

	if (r->status == BLK_S_OK && (r->cap.opcode == BLK_OP_HELLO || r->cap.opcode == BLK_OP_CAPACITY)) {
		resp.block_size = t->geom.block_size;
		resp.capacity = t->geom.capacity;
		resp.max_blocks = t->geom.max_blocks;
		resp.queue_depth = c->qd;
		resp.dev_flags = t->geom.read_only ? BLK_F_READ_ONLY : 0;
	}
	blk_resp_encode(&resp, buf);
	n = zc_msg_send(c->zc, buf, sizeof(buf), ZC_DONTWAIT);
	if (n == -EAGAIN) {
		stall(t, r);
		return 0;
	}
	if (n < 0)
		conn_fail(t, c, (int)n);
	else
		c->cmds++;
	return 1;
}

/*
 * advance - drive one request as far as it can go now
 *
 * The only place a request changes state. It returns when the request waits
 * for something outside: a capsule (FREE), a pool buffer (NEED_BUFFER, on
 * the pool's wait list), an RMA completion (TRANSFERRING, posted), or
 * library resources (-EAGAIN: on the stalled list). Events (completions,
 * buffers freed, a dead connection) only record what happened and call
 * make_ready(); the main loop then calls advance().
 */
static void advance(struct target *t, struct req *r)
{
	struct tconn *c = r->conn;

	for (;;) {
		if (c->state == C_DEAD && r->state != REQ_FREE && r->state != REQ_DONE) {
			/* Nobody to answer: finish, but never release a buffer the NIC may still use. */
			if (r->state == REQ_TRANSFERRING && r->rma_posted && !r->rma_done)
				return;
			if (r->state == REQ_NEED_BUFFER)
				wait_remove(t, r);
			r->state = REQ_DONE;
		}
		switch (r->state) {
		case REQ_FREE:
			return;
		case REQ_NEW:
			r->state = on_new(t, r);
			break;
		case REQ_NEED_BUFFER:
			if (!pool_get(t, r))
				return;
			r->state = r->cap.opcode == BLK_OP_READ ? REQ_EXECUTING : REQ_TRANSFERRING;
			break;
		case REQ_TRANSFERRING:
			if (!r->rma_posted) {
				int rc = post_transfer(t, r);

				if (rc < 0)
					r->state = REQ_RESPONDING;
				if (rc >= 0)
					return; /* wait for the completion (or a retry) */
				break;
			}
			if (!r->rma_done)
				return;
			if (r->rma_status) {
				r->status = BLK_S_TRANSFER;
				r->detail = (uint32_t)-r->rma_status;
				r->state = REQ_RESPONDING;
			} else {
				r->state = r->cap.opcode == BLK_OP_WRITE ? REQ_EXECUTING : REQ_RESPONDING;
			}
			break;
		case REQ_EXECUTING:
			r->state = execute(t, r);
			break;
		case REQ_RESPONDING:
			pool_put(t, r); /* the data has moved: the buffer serves others while we answer */
			if (!respond(t, r))
				return;
			r->state = REQ_DONE;
			break;
		case REQ_DONE:
			pool_put(t, r);
			if (r->owns_tag)
				c->tag_busy[r->tag] = 0;
			r->owns_tag = 0;
			r->status = 0;
			r->detail = 0;
			r->rma_posted = r->rma_done = r->rma_status = 0;
			r->state = REQ_FREE;
			c->active--;
			if (c->state != C_DEAD)
				post_rx(t, r);
			return;
		}
	}
}

/* A zero-copy completion: record it, schedule the request. */
static void on_completion(struct target *t, const struct zc_completion *zc)
{
	struct req *r = (struct req *)(uintptr_t)zc->token;
	struct tconn *c = r->conn;

	c->outstanding--;
	if (zc->op == ZC_OP_RECV) {
		if (zc->status && zc->status != -EMSGSIZE) {
			/* -EPIPE: orderly close; anything else: the connection broke. */
			conn_fail(t, c, zc->status == -EPIPE ? 0 : zc->status);
			return;
		}
		if (c->state == C_DEAD)
			return;
		r->rx_len = zc->status ? SIZE_MAX : zc->len;
		r->t_new = now_ms();
		r->state = REQ_NEW;
		c->active++;
		make_ready(t, r);
		return;
	}
	/* ZC_OP_READ / ZC_OP_WRITE */
	if (r->state != REQ_TRANSFERRING || !r->rma_posted) {
		zc_ex_warn("connection %u: unexpected transfer completion in state %s", c->id, state_names[r->state]);
		return;
	}
	r->rma_done = 1;
	r->rma_status = zc->status;
	if (zc->status) {
		if (c->state != C_DEAD)
			zc_ex_warn("connection %u: RDMA %s for %s tag %u (LBA %llu, %u blocks) failed: %s", c->id,
			      zc->op == ZC_OP_READ ? "READ" : "WRITE", blk_opcode_str(r->cap.opcode), r->tag,
			      (unsigned long long)r->cap.lba, r->cap.nblocks, zc_strerror(zc->status));
		conn_fail(t, c, zc->status); /* RDMA: a failed transfer ends the connection */
	}
	make_ready(t, r);
}

static void run_ready(struct target *t)
{
	struct req *r;

	while ((r = list_pop(&t->ready))) {
		r->listed = 0;
		advance(t, r);
	}
}

/* ---- setup ------------------------------------------------------------ */

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
		"usage: %s --listen ADDR[:PORT] (--file PATH | --memory SIZE) [--block-size 512|4096]\n"
		"       [--queue-depth N] [--read-only] [--pool N] [--max-io SIZE]\n"
		"  --listen ADDR[:PORT]  an address of an RDMA netdev (port %d by default)\n"
		"  --file PATH           serve this existing file (its size, rounded down to blocks)\n"
		"  --memory SIZE         serve SIZE bytes of memory instead (K/M/G suffixes)\n"
		"  --block-size B        512 or 4096 (default 512)\n"
		"  --queue-depth N       most commands in flight per initiator, 1..%d (default 32)\n"
		"  --read-only           refuse WRITE and DISCARD\n"
		"  --pool N              registered buffers shared by all initiators (default 64)\n"
		"  --max-io SIZE         largest READ/WRITE (default 128K, a multiple of the block size)\n",
		zc_ex_prog, BLK_DEFAULT_PORT, BLK_MAX_QD);
	exit(2);
}

static int open_store(struct target *t, const char *file, long long memsize)
{
	if (file) {
		struct stat st;

		t->fd = open(file, (t->geom.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
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
	} else {
		t->fd = -1;
		t->bytes = (uint64_t)memsize;
		t->mem = mmap(NULL, t->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (t->mem == MAP_FAILED) {
			t->mem = NULL;
			zc_ex_warn("cannot allocate %llu bytes: %s", (unsigned long long)t->bytes, strerror(errno));
			return -1;
		}
	}
	t->geom.capacity = t->bytes / t->geom.block_size;
	if (!t->geom.capacity) {
		zc_ex_warn("the device is smaller than one %u-byte block", t->geom.block_size);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},   {"file", required_argument, NULL, 'f'},
		{"memory", required_argument, NULL, 'm'},   {"block-size", required_argument, NULL, 'B'},
		{"queue-depth", required_argument, NULL, 'q'}, {"read-only", no_argument, NULL, 'r'},
		{"pool", required_argument, NULL, 'p'},     {"max-io", required_argument, NULL, 'x'},
		{"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
	};
	struct target t = {.fd = -1};
	const char *listen_arg = NULL, *file = NULL;
	long long memsize = -1, max_io = BLK_DEFAULT_MAX_IO, v;
	struct zc_completion comps[POLL_BATCH];
	struct zc_ctx_opts xo;
	struct zc_conn_opts co;
	struct sigaction sa;
	char host[256];
	uint16_t port;
	int opt, rc, i, n, credits, status = 1;

	t.geom.block_size = 512;
	t.geom.queue_depth = 32;
	t.n_bufs = 64;
	while ((opt = getopt_long(argc, argv, "l:f:m:B:q:rp:x:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l': listen_arg = optarg; break;
		case 'f': file = optarg; break;
		case 'm':
			memsize = zc_ex_parse_size(optarg);
			if (memsize <= 0)
				usage();
			break;
		case 'B':
			v = atoll(optarg);
			if (v != 512 && v != 4096)
				usage();
			t.geom.block_size = (uint32_t)v;
			break;
		case 'q':
			v = atoll(optarg);
			if (v < 1 || v > BLK_MAX_QD)
				usage();
			t.geom.queue_depth = (uint16_t)v;
			break;
		case 'r': t.geom.read_only = 1; break;
		case 'p':
			v = atoll(optarg);
			if (v < 1 || v > 65536)
				usage();
			t.n_bufs = (int)v;
			break;
		case 'x':
			max_io = zc_ex_parse_size(optarg);
			if (max_io <= 0 || max_io > (64ll << 20))
				usage();
			break;
		default: usage();
		}
	}
	if (optind != argc || !listen_arg || !file == (memsize < 0) ||
	    zc_ex_parse_hostport(listen_arg, host, sizeof(host), &port, BLK_DEFAULT_PORT))
		usage();
	if (max_io % t.geom.block_size) {
		zc_ex_warn("--max-io must be a multiple of the block size (%u)", t.geom.block_size);
		return 2;
	}
	t.geom.max_blocks = (uint32_t)(max_io / t.geom.block_size);
	t.buf_size = (size_t)max_io;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: the poll wakes up */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (open_store(&t, file, memsize))
		goto out;
	zc_ctx_opts_init(&xo);
	xo.cq_depth = 16384;
	rc = zc_ctx_new(host, &xo, &t.ctx);
	if (rc) {
		zc_ex_warn("cannot open the RDMA device of %s: %s", host, zc_ex_why(rc));
		goto out;
	}
	t.pool = mmap(NULL, t.buf_size * (size_t)t.n_bufs, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t.free_bufs = calloc((size_t)t.n_bufs, sizeof(int));
	if (t.pool == MAP_FAILED || !t.free_bufs) {
		t.pool = NULL;
		zc_ex_warn("out of memory for the buffer pool");
		goto out;
	}
	rc = zc_mr_reg(t.ctx, t.pool, t.buf_size * (size_t)t.n_bufs, 0, &t.pool_mr);
	if (rc) {
		zc_ex_warn("cannot register the %d x %zu-byte buffer pool: %s", t.n_bufs, t.buf_size, zc_ex_why(rc));
		goto out;
	}
	for (i = 0; i < t.n_bufs; i++)
		t.free_bufs[t.n_free++] = i;
	zc_conn_opts_init(&co);
	credits = t.geom.queue_depth + SPARE_REQS + 8 > co.credits ? t.geom.queue_depth + SPARE_REQS + 8 : co.credits;
	co.credits = credits;
	co.send_depth = 2 * credits + 16;
	rc = zc_listen(t.ctx, port, &co, &t.lis);
	if (rc) {
		zc_ex_warn("cannot listen on %s:%u: %s", host, port, zc_ex_why(rc));
		goto out;
	}
	zc_ex_warn("listening on %s:%u: %s%s, %llu blocks of %u bytes, queue depth %u, pool %d x %zu bytes%s", host,
	      zc_listener_port(t.lis), file ? "file " : "memory", file ? file : "",
	      (unsigned long long)t.geom.capacity, t.geom.block_size, t.geom.queue_depth, t.n_bufs, t.buf_size,
	      t.geom.read_only ? ", read-only" : "");

	while (!stop) {
		struct zc_conn *zc;
		int timeout = t.ready.head || t.stalled.head ? 0 : 100;

		while ((rc = zc_accept(t.lis, &zc, 0)) != -EAGAIN) {
			if (rc) {
				zc_ex_warn("accept failed: %s", zc_ex_why(rc));
				break;
			}
			conn_add(&t, zc);
		}
		/* Stalled requests get another try after the completions. */
		while (t.stalled.head) {
			struct req *r = list_pop(&t.stalled);

			r->listed = 0;
			make_ready(&t, r);
		}
		t.epoch++;
		do {
			n = zc_poll(t.ctx, comps, POLL_BATCH, timeout);
			for (i = 0; i < n; i++)
				on_completion(&t, &comps[i]);
			timeout = 0;
		} while (n == POLL_BATCH);
		run_ready(&t);
		sweep_dead(&t);
		if (dump) {
			dump = 0;
			dump_state(&t);
		}
	}
	zc_ex_warn("stopping");
	status = 0;
out:
	/* Abort everyone, then let every request run to DONE (bounded). */
	for (i = 0; t.conns && i < 100; i++) {
		struct tconn *c;

		for (c = t.conns; c; c = c->next)
			conn_fail(&t, c, -ESHUTDOWN);
		while (t.stalled.head) {
			struct req *r = list_pop(&t.stalled);

			r->listed = 0;
			make_ready(&t, r);
		}
		t.epoch++;
		while ((n = zc_poll(t.ctx, comps, POLL_BATCH, 0)) > 0) {
			int j;

			for (j = 0; j < n; j++)
				on_completion(&t, &comps[j]);
		}
		run_ready(&t);
		sweep_dead(&t);
	}
	if (t.lis)
		zc_listener_free(&t.lis);
	if (t.pool_mr)
		zc_mr_dereg(&t.pool_mr);
	if (t.ctx)
		zc_ctx_free(&t.ctx);
	if (t.pool)
		munmap(t.pool, t.buf_size * (size_t)t.n_bufs);
	free(t.free_bufs);
	if (t.mem)
		munmap(t.mem, t.bytes);
	if (t.fd >= 0)
		close(t.fd);
	return status;
}
