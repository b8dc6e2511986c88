/*
 * zc_blk_nbd - attach a kernel NBD device to a zc_blk_legacy_target
 *
 *   zc_blk_nbd [-b SRCADDR] [-q QD] [-e MODE] ADDR[:PORT] /dev/nbdN   attach, stay in the foreground
 *   zc_blk_nbd -d /dev/nbdN                                   detach (the attached process exits)
 *
 * Like `qemu-nbd -c`: a socketpair, one end handed to the kernel with
 * NBD_SET_BLKSIZE / NBD_SET_SIZE_BLOCKS / NBD_SET_FLAGS / NBD_SET_SOCK, and
 * NBD_DO_IT in a thread of its own. The kernel's NBD requests (READ, WRITE,
 * FLUSH, TRIM, DISC; simple replies) are read from our end and forwarded to
 * the target, split into commands of at most the target's max transfer.
 *
 * Data path: the NBD socket protocol needs one copy, so payloads go through
 * a bounce pool registered with zc_mr_reg(); between that pool and the
 * target's buffers the bytes move by RDMA, exported per command with
 * exactly the right needed (zero-copy between initiator and target); -e
 * chooses windows or per-command MRs for that (blk_initiator.h).
 *
 * SIGTERM/SIGINT or `zc_blk_nbd -d` disconnect: outstanding commands finish,
 * NBD_CLEAR_SOCK, the connection to the target closes, exit 0. Without -b
 * the source address is the one the kernel's route to ADDR uses.
 * Exit status: 0 detached cleanly, 1 failure (one line on stderr), 2 usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/nbd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <zcrdma.h>

#include "blk_initiator.h"
#include "zc_example.h"

#define BOUNCE_BYTES (32u << 20) /* the kernel's largest NBD request (max_hw_sectors 65536) */
#define NBD_HDR 28
#define NBD_REPLY 16

const char *const zc_ex_prog = "zc_blk_nbd";
static volatile sig_atomic_t stop, dump;

/* One NBD request from the kernel. */
struct nreq {
	uint32_t type;
	uint64_t from;
	uint32_t len;
	uint8_t handle[8];
	int err;         /* errno for the reply (set early when invalid) */
	int *slots;      /* bounce slots, one per chunk of READ/WRITE */
	int nslots;
	uint32_t chunks, next_chunk, done_chunks;
	struct timespec t0;         /* when the reader got it */
	uint64_t t_submit, t_done;  /* ns: first chunk submitted, last chunk completed */
	struct nreq *next;          /* reader queue / pending list */
	struct nreq *iprev, *inext; /* in-flight list */
};

struct bridge {
	int nbd;                 /* /dev/nbdN */
	int sock;                /* our end of the socketpair */
	int efd;                 /* eventfd: the reader queued something */
	struct zc_ctx *ctx;
	struct blk_init *bi;
	const struct blk_geom *g;
	int broken;              /* the target connection failed */
	/* bounce pool */
	uint8_t *pool;
	struct zc_mr *mr;
	size_t slot_size;
	int n_slots;
	/* shared with the reader thread, under lock */
	pthread_mutex_t lock;
	pthread_cond_t slots_cv;
	int *free_slots, n_free;
	struct nreq *q_head, *q_tail;
	int reader_done;         /* no more requests will be queued */
	int got_disc;            /* ... because the kernel sent NBD_CMD_DISC */
	/* main thread only */
	struct nreq *p_head, *p_tail; /* waiting for tags */
	int inflight;            /* requests with chunks at the target */
	struct nreq *i_head;     /* ... the same, as a list */
	int reply_failed;
	/* where the time goes, for requests that went to the target */
	uint64_t n_timed, ns_queue, ns_target, ns_reply;
	volatile int doit_done;
	char dev[64];
};

static void usage(void)
{
	fprintf(stderr,
		"usage: %s [-b SRCADDR] [-q QD] [-e auto|window|mr] ADDR[:PORT] /dev/nbdN   attach (foreground)\n"
		"       %s -d /dev/nbdN                                                 detach\n"
		"  -b SRCADDR  local RDMA address (default: the source of the route to ADDR)\n"
		"  -q QD       commands in flight at the target (default 32)\n"
		"  -e MODE     how buffers are exported: auto (default: MRs on rxe), window, mr\n",
		zc_ex_prog, zc_ex_prog);
	exit(2);
}

static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int writev_full(int fd, struct iovec *iov, int cnt)
{
	while (cnt) {
		ssize_t n = writev(fd, iov, cnt < 1024 ? cnt : 1024);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		while (cnt && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static uint64_t ns_of(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000ull + (uint64_t)t->tv_nsec;
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return ns_of(&t);
}

static uint8_t *slot_ptr(struct bridge *b, int s)
{
	return b->pool + (size_t)s * b->slot_size;
}

/* ---- reader thread: NBD requests from the kernel ---------------------- */

static void queue_req(struct bridge *b, struct nreq *r)
{
	uint64_t one = 1;

	pthread_mutex_lock(&b->lock);
	r->next = NULL;
	if (b->q_tail)
		b->q_tail->next = r;
	else
		b->q_head = r;
	b->q_tail = r;
	pthread_mutex_unlock(&b->lock);
	if (write(b->efd, &one, sizeof(one)) < 0) {
		/* an eventfd write only fails on overflow; the main loop polls anyway */
	}
}

static void *reader(void *arg)
{
	struct bridge *b = arg;
	uint64_t bytes = b->g->capacity * b->g->block_size;
	uint8_t h[NBD_HDR];

	for (;;) {
		struct nreq *r;
		uint32_t magic, type, len;
		uint64_t from;
		int i;

		if (read_full(b->sock, h, sizeof(h)))
			break; /* the kernel closed its end */
		memcpy(&magic, h, 4);
		memcpy(&type, h + 4, 4);
		memcpy(&from, h + 16, 8);
		memcpy(&len, h + 24, 4);
		if (ntohl(magic) != NBD_REQUEST_MAGIC) {
			zc_ex_warn("bad request magic 0x%08x from the kernel: stopping", ntohl(magic));
			break;
		}
		r = calloc(1, sizeof(*r));
		if (!r) {
			zc_ex_warn("out of memory");
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &r->t0);
		r->type = ntohl(type) & 0xffff; /* the high half holds command flags (FUA) */
		memcpy(r->handle, h + 8, 8);
		r->from = be64toh(from);
		r->len = ntohl(len);
		if (r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE || r->type == NBD_CMD_TRIM) {
			if (r->from % b->g->block_size || r->len % b->g->block_size || !r->len || r->from > bytes ||
			    r->len > bytes - r->from)
				r->err = EINVAL;
		}
		if ((r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) && !r->err) {
			r->nslots = (int)((r->len + b->slot_size - 1) / b->slot_size);
			if (r->nslots > b->n_slots) {
				r->err = ENOMEM; /* larger than the whole pool: cannot happen with the kernel's limits */
				r->nslots = 0;
			} else {
				r->slots = calloc((size_t)r->nslots, sizeof(int));
				if (!r->slots) {
					zc_ex_warn("out of memory");
					free(r);
					break;
				}
				pthread_mutex_lock(&b->lock);
				while (b->n_free < r->nslots)
					pthread_cond_wait(&b->slots_cv, &b->lock);
				for (i = 0; i < r->nslots; i++)
					r->slots[i] = b->free_slots[--b->n_free];
				pthread_mutex_unlock(&b->lock);
			}
		}
		if (r->type == NBD_CMD_WRITE) {
			uint32_t left = r->len;

			for (i = 0; left; i++) {
				uint32_t n = left < b->slot_size ? left : (uint32_t)b->slot_size;

				/* Without slots (invalid request) the payload is read and dropped. */
				static uint8_t sink[65536];
				uint8_t *dst = r->nslots ? slot_ptr(b, r->slots[i]) : sink;

				if (!r->nslots && n > sizeof(sink))
					n = sizeof(sink);
				if (read_full(b->sock, dst, n))
					goto eof;
				left -= n;
			}
		}
		if (r->type == NBD_CMD_DISC) {
			free(r->slots);
			free(r);
			pthread_mutex_lock(&b->lock);
			b->got_disc = 1;
			pthread_mutex_unlock(&b->lock);
			break;
		}
		queue_req(b, r);
		continue;
eof:
		free(r->slots);
		free(r);
		break;
	}
	pthread_mutex_lock(&b->lock);
	b->reader_done = 1;
	pthread_mutex_unlock(&b->lock);
	{
		uint64_t one = 1;

		if (write(b->efd, &one, sizeof(one)) < 0) {
			/* see queue_req */
		}
	}
	return NULL;
}

/* ---- NBD_DO_IT thread -------------------------------------------------- */

static void *doit(void *arg)
{
	struct bridge *b = arg;
	uint64_t one = 1;

	if (ioctl(b->nbd, NBD_DO_IT) < 0 && errno != EPIPE && errno != 0)
		zc_ex_warn("NBD_DO_IT ended: %s", strerror(errno));
	ioctl(b->nbd, NBD_CLEAR_QUE);
	ioctl(b->nbd, NBD_CLEAR_SOCK);
	b->doit_done = 1;
	if (write(b->efd, &one, sizeof(one)) < 0) {
		/* see queue_req */
	}
	return NULL;
}

/* ---- main thread: commands at the target, replies to the kernel ------ */

static int status_errno(const struct blk_resp *r)
{
	switch (r->status) {
	case BLK_S_OK: return 0;
	case BLK_S_READ_ONLY: return EPERM;
	case BLK_S_LBA_RANGE: return EINVAL;
	case BLK_S_IO_ERROR: return r->detail && r->detail < 4096 ? (int)r->detail : EIO;
	default: return EIO;
	}
}

static void release_slots(struct bridge *b, struct nreq *r)
{
	int i;

	if (!r->nslots)
		return;
	pthread_mutex_lock(&b->lock);
	for (i = 0; i < r->nslots; i++)
		b->free_slots[b->n_free++] = r->slots[i];
	pthread_cond_broadcast(&b->slots_cv);
	pthread_mutex_unlock(&b->lock);
}

static void reply(struct bridge *b, struct nreq *r)
{
	uint8_t h[NBD_REPLY];
	uint32_t magic = htonl(NBD_REPLY_MAGIC), err = htonl((uint32_t)r->err);
	struct iovec *iov = calloc((size_t)r->nslots + 1, sizeof(*iov));
	int cnt = 1, i;

	if (!iov) {
		zc_ex_warn("out of memory for a reply");
		return;
	}

	memcpy(h, &magic, 4);
	memcpy(h + 4, &err, 4);
	memcpy(h + 8, r->handle, 8);
	iov[0] = (struct iovec){.iov_base = h, .iov_len = sizeof(h)};
	if (r->type == NBD_CMD_READ && !r->err) {
		uint32_t left = r->len;

		for (i = 0; i < r->nslots; i++) {
			size_t n = left < b->slot_size ? left : b->slot_size;

			iov[cnt++] = (struct iovec){.iov_base = slot_ptr(b, r->slots[i]), .iov_len = n};
			left -= (uint32_t)n;
		}
	}
	if (writev_full(b->sock, iov, cnt) && !b->reply_failed++)
		zc_ex_warn("reply to the kernel failed: %s", strerror(errno));
	if (r->t_done) {
		b->n_timed++;
		b->ns_queue += r->t_submit - ns_of(&r->t0);
		b->ns_target += r->t_done - r->t_submit;
		b->ns_reply += now_ns() - r->t_done;
	}
	free(iov);
	release_slots(b, r);
	free(r->slots);
	free(r);
}

static void pend(struct bridge *b, struct nreq *r)
{
	r->next = NULL;
	if (b->p_tail)
		b->p_tail->next = r;
	else
		b->p_head = r;
	b->p_tail = r;
}

/* Prepares a queued request: how many target commands it takes. */
static void plan(struct bridge *b, struct nreq *r)
{
	uint64_t blocks = r->len / b->g->block_size;

	switch (r->type) {
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
		r->chunks = (uint32_t)r->nslots;
		break;
	case NBD_CMD_TRIM:
		r->chunks = (uint32_t)((blocks + (1u << 30) - 1) >> 30);
		break;
	case NBD_CMD_FLUSH:
		r->chunks = 1;
		break;
	default:
		r->chunks = 0;
		break;
	}
}

/* Submits what tags allow, in order. Returns 0, or -1 if the target is gone. */
static int submit_pending(struct bridge *b)
{
	uint32_t bs = b->g->block_size, per = (uint32_t)(b->slot_size / bs);

	while (b->p_head) {
		struct nreq *r = b->p_head;

		if (r->err || b->broken || !r->chunks) {
			b->p_head = r->next;
			if (!b->p_head)
				b->p_tail = NULL;
			if (!r->err && !r->chunks)
				r->err = EINVAL; /* unknown command */
			if (b->broken && !r->err)
				r->err = EIO;
			reply(b, r);
			continue;
		}
		while (r->next_chunk < r->chunks) {
			uint64_t lba = r->from / bs, total = r->len / bs;
			uint32_t c = r->next_chunk;
			int rc;

			if (r->type == NBD_CMD_FLUSH) {
				rc = blk_init_submit(b->bi, BLK_OP_FLUSH, 0, 0, NULL, 0, (uint64_t)(uintptr_t)r);
			} else if (r->type == NBD_CMD_TRIM) {
				uint64_t first = (uint64_t)c << 30, n = total - first < (1u << 30) ? total - first : 1u << 30;

				rc = blk_init_submit(b->bi, BLK_OP_DISCARD, lba + first, (uint32_t)n, NULL, 0,
						     (uint64_t)(uintptr_t)r);
			} else {
				uint64_t first = (uint64_t)c * per, n = total - first < per ? total - first : per;

				rc = blk_init_submit(b->bi, r->type == NBD_CMD_READ ? BLK_OP_READ : BLK_OP_WRITE,
						     lba + first, (uint32_t)n, b->mr,
						     (size_t)r->slots[c] * b->slot_size, (uint64_t)(uintptr_t)r);
			}
			if (rc == -EBUSY)
				return 0; /* no tag: wait for completions */
			if (rc) {
				zc_ex_warn("submitting to the target failed: %s", blk_init_last_error());
				b->broken = 1;
				return -1;
			}
			if (r->next_chunk++ == 0) {
				r->t_submit = now_ns();
				b->inflight++;
				r->iprev = NULL;
				r->inext = b->i_head;
				if (b->i_head)
					b->i_head->iprev = r;
				b->i_head = r;
			}
		}
		b->p_head = r->next; /* all chunks out: it lives on through its completions */
		if (!b->p_head)
			b->p_tail = NULL;
	}
	return 0;
}

static void unlist(struct bridge *b, struct nreq *r)
{
	if (r->iprev)
		r->iprev->inext = r->inext;
	else
		b->i_head = r->inext;
	if (r->inext)
		r->inext->iprev = r->iprev;
	b->inflight--;
}

/* The target is gone: every request it holds fails with EIO. */
static void fail_inflight(struct bridge *b)
{
	while (b->i_head) {
		struct nreq *r = b->i_head;

		unlist(b, r);
		if (b->p_head == r) { /* partly submitted */
			b->p_head = r->next;
			if (!b->p_head)
				b->p_tail = NULL;
		}
		r->err = EIO;
		reply(b, r);
	}
}

static void on_cpl(struct bridge *b, const struct blk_cpl *c)
{
	struct nreq *r = (struct nreq *)(uintptr_t)c->user;

	if (c->unsolicited)
		return;
	if (c->resp.status && !r->err) {
		r->err = status_errno(&c->resp);
		zc_ex_warn("%s at LBA %llu failed: %s (detail %u)", blk_opcode_str(c->resp.opcode),
		     (unsigned long long)(r->from / b->g->block_size), blk_status_str(c->resp.status), c->resp.detail);
	}
	if (++r->done_chunks == r->chunks) {
		r->t_done = now_ns();
		unlist(b, r);
		reply(b, r);
	}
}

/* NBD_DISCONNECT / NBD_CLEAR_SOCK wait for the kernel's sender, which may
 * wait for room in the socket, which only the main loop makes (by answering
 * and freeing bounce slots for the reader): never issue them from there. */
static void *disconnect_thread(void *arg)
{
	struct bridge *b = arg;

	if (ioctl(b->nbd, NBD_DISCONNECT) < 0)
		zc_ex_warn("NBD_DISCONNECT: %s", strerror(errno));
	ioctl(b->nbd, NBD_CLEAR_SOCK);
	return NULL;
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		dump = 1;
	else
		stop = 1;
}

static void print_times(struct bridge *b)
{
	if (b->n_timed)
		zc_ex_warn("%llu requests; mean us from the kernel's request to the first command %.0f, at the target "
		     "%.0f, reply written %.0f", (unsigned long long)b->n_timed,
		     (double)b->ns_queue / 1e3 / (double)b->n_timed, (double)b->ns_target / 1e3 / (double)b->n_timed,
		     (double)b->ns_reply / 1e3 / (double)b->n_timed);
}

/* SIGUSR1: what is in flight, to stderr. */
static void dump_state(struct bridge *b)
{
	struct timespec now;
	struct nreq *r;
	int pending = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	for (r = b->p_head; r; r = r->next)
		pending++;
	zc_ex_warn("state: %d requests at the target (%d commands, %d tags free), %d waiting for tags, %d of %d bounce "
	     "slots free%s", b->inflight, blk_init_inflight(b->bi), blk_init_free_tags(b->bi), pending, b->n_free,
	     b->n_slots, b->broken ? ", target connection broken" : "");
	print_times(b);
	for (r = b->i_head; r; r = r->inext)
		zc_ex_warn("  type %u at %llu, %u bytes: %u of %u chunks sent, %u done, %lld ms old", r->type,
		     (unsigned long long)r->from, r->len, r->next_chunk, r->chunks, r->done_chunks,
		     (long long)((now.tv_sec - r->t0.tv_sec) * 1000 + (now.tv_nsec - r->t0.tv_nsec) / 1000000));
}

/* The local address the kernel would use towards host. */
static int route_source(const char *host, uint16_t port, char *out, size_t cap)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *res;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	char serv[8];
	int fd, ok;

	snprintf(serv, sizeof(serv), "%u", port);
	if (getaddrinfo(host, serv, &hints, &res))
		return -1;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	ok = fd >= 0 && !connect(fd, res->ai_addr, res->ai_addrlen) && !getsockname(fd, (struct sockaddr *)&sin, &sl) &&
	     inet_ntop(AF_INET, &sin.sin_addr, out, (socklen_t)cap);
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return ok ? 0 : -1;
}

static int detach(const char *dev)
{
	int fd = open(dev, O_RDWR);

	if (fd < 0)
		zc_ex_die("cannot open %s: %s", dev, strerror(errno));
	if (ioctl(fd, NBD_DISCONNECT) < 0)
		zc_ex_die("NBD_DISCONNECT on %s: %s", dev, strerror(errno));
	ioctl(fd, NBD_CLEAR_SOCK);
	close(fd);
	return 0;
}

/* Waits until the kernel started the device (/sys/block/nbdN/pid appears). */
static int wait_started(struct bridge *b, int ms)
{
	const char *name = strrchr(b->dev, '/');
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/block/%s/pid", name ? name + 1 : b->dev);
	for (; ms > 0; ms -= 10) {
		if (!stat(path, &st))
			return 0;
		if (b->doit_done)
			return -1;
		usleep(10000);
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct bridge b = {.nbd = -1, .sock = -1, .efd = -1, .lock = PTHREAD_MUTEX_INITIALIZER,
			   .slots_cv = PTHREAD_COND_INITIALIZER};
	const char *src = NULL, *detach_dev = NULL;
	char host[256], srcbuf[64];
	struct blk_init_opts bo;
	struct blk_cpl cpl[64];
	pthread_t t_reader, t_doit, t_disc;
	struct sigaction sa;
	sigset_t all, old;
	uint16_t port;
	int opt, rc, sv[2], i, n, flags, disconnecting = 0, status = 0;
	unsigned reconnects;
	long v;

	blk_init_opts_init(&bo);
	while ((opt = getopt(argc, argv, "b:q:d:e:h")) != -1) {
		switch (opt) {
		case 'b': src = optarg; break;
		case 'q':
			v = atol(optarg);
			if (v < 1 || v > BLK_MAX_QD)
				usage();
			bo.queue_depth = (int)v;
			break;
		case 'd': detach_dev = optarg; break;
		case 'e':
			bo.export_mode = blk_export_mode_parse(optarg);
			if (bo.export_mode < 0)
				usage();
			break;
		default: usage();
		}
	}
	if (detach_dev) {
		if (optind != argc || src)
			usage();
		return detach(detach_dev);
	}
	if (optind != argc - 2 || zc_ex_parse_hostport(argv[optind], host, sizeof(host), &port, BLK_DEFAULT_PORT))
		usage();
	snprintf(b.dev, sizeof(b.dev), "%s", argv[optind + 1]);
	if (!src) {
		if (route_source(host, port, srcbuf, sizeof(srcbuf)))
			zc_ex_die("no route to %s: give the local RDMA address with -b", host);
		src = srcbuf;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	b.nbd = open(b.dev, O_RDWR | O_CLOEXEC);
	if (b.nbd < 0)
		zc_ex_die("cannot open %s: %s%s", b.dev, strerror(errno), errno == ENOENT ? " (modprobe nbd?)" : "");
	rc = zc_ctx_new(src, NULL, &b.ctx);
	if (rc)
		zc_ex_die("cannot open the RDMA device of %s: %s", src, zc_ex_why(rc));
	rc = blk_init_connect(b.ctx, host, port, &bo, &b.bi);
	if (rc)
		zc_ex_die("cannot connect to %s:%u: %s", host, port, blk_init_last_error());
	b.g = blk_init_geom(b.bi);
	b.slot_size = (size_t)b.g->max_blocks * b.g->block_size;
	b.n_slots = (int)(BOUNCE_BYTES / b.slot_size);
	if (b.n_slots < 2 * b.g->queue_depth)
		b.n_slots = 2 * b.g->queue_depth;
	b.pool = mmap(NULL, b.slot_size * (size_t)b.n_slots, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	b.free_slots = calloc((size_t)b.n_slots, sizeof(int));
	if (b.pool == MAP_FAILED || !b.free_slots)
		zc_ex_die("out of memory for the %d x %zu-byte bounce pool", b.n_slots, b.slot_size);
	rc = zc_mr_reg(b.ctx, b.pool, b.slot_size * (size_t)b.n_slots, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE,
		       &b.mr);
	if (rc)
		zc_ex_die("cannot register the bounce pool: %s", zc_ex_why(rc));
	for (i = b.n_slots - 1; i >= 0; i--)
		b.free_slots[b.n_free++] = i;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		zc_ex_die("socketpair: %s", strerror(errno));
	b.sock = sv[0];
	b.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b.efd < 0)
		zc_ex_die("eventfd: %s", strerror(errno));
	flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | (b.g->read_only ? NBD_FLAG_READ_ONLY : NBD_FLAG_SEND_TRIM);
	if (ioctl(b.nbd, NBD_SET_BLKSIZE, (unsigned long)b.g->block_size) < 0 ||
	    ioctl(b.nbd, NBD_SET_SIZE_BLOCKS, (unsigned long)b.g->capacity) < 0 ||
	    ioctl(b.nbd, NBD_SET_FLAGS, (unsigned long)flags) < 0)
		zc_ex_die("configuring %s: %s", b.dev, strerror(errno));
	if (ioctl(b.nbd, NBD_SET_SOCK, (unsigned long)sv[1]) < 0)
		zc_ex_die("NBD_SET_SOCK on %s: %s%s", b.dev, strerror(errno),
		    errno == EBUSY ? " (already attached? detach with -d)" : "");

	/* Helper threads never take the signals: they go to this thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&t_doit, NULL, doit, &b) || pthread_create(&t_reader, NULL, reader, &b))
		zc_ex_die("cannot start threads");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (wait_started(&b, 10000) == 0) {

		printf("%s: %s attached to %s:%u (%llu blocks of %u bytes%s, queue depth %u)\n", zc_ex_prog, b.dev, host,
		       port, (unsigned long long)b.g->capacity, b.g->block_size, b.g->read_only ? ", read-only" : "",
		       b.g->queue_depth);
		fflush(stdout);
	} else {
		zc_ex_warn("the kernel did not start %s", b.dev);
		status = 1;
		stop = 1;
	}

	for (;;) {
		struct nreq *q;
		int reader_done;

		if (dump) {
			dump = 0;
			dump_state(&b);
		}
		if (stop && !disconnecting) {
			/* As `-d` does: the kernel sends DISC, then shuts its end down. */
			disconnecting = 1;
			pthread_sigmask(SIG_BLOCK, &all, &old);
			if (pthread_create(&t_disc, NULL, disconnect_thread, &b))
				zc_ex_die("cannot start a thread");
			pthread_sigmask(SIG_SETMASK, &old, NULL);
		}
		pthread_mutex_lock(&b.lock);
		q = b.q_head;
		b.q_head = b.q_tail = NULL;
		reader_done = b.reader_done;
		pthread_mutex_unlock(&b.lock);
		while (q) {
			struct nreq *next = q->next;

			plan(&b, q);
			pend(&b, q);
			q = next;
		}
		if (submit_pending(&b)) {
			status = 1;
			stop = 1;
		}
		if (b.broken)
			fail_inflight(&b);
		if (reader_done && !b.p_head && !b.inflight)
			break;
		if (b.inflight) {
			n = blk_init_poll(b.bi, cpl, 64, 1);
			if (n < 0) {
				zc_ex_warn("%s; failing every request", blk_init_last_error());
				b.broken = 1;
				status = 1;
				stop = 1;
				n = 0;
			}
			for (i = 0; i < n; i++)
				on_cpl(&b, &cpl[i]);
		} else {
			struct pollfd pfd = {.fd = b.efd, .events = POLLIN};
			uint64_t cnt;

			if (poll(&pfd, 1, 200) > 0 && read(b.efd, &cnt, sizeof(cnt)) < 0) {
				/* spurious */
			}
		}
	}
	if (disconnecting)
		pthread_join(t_disc, NULL);
	else if (b.got_disc)
		ioctl(b.nbd, NBD_CLEAR_SOCK); /* someone else disconnected: just let go */
	else
		disconnect_thread(&b);
	shutdown(b.sock, SHUT_RDWR);
	pthread_join(t_reader, NULL);
	pthread_join(t_doit, NULL);
	close(b.sock);
	close(sv[1]);
	close(b.nbd);
	reconnects = blk_init_reconnects(b.bi);
	rc = blk_init_close(&b.bi);
	if (b.mr)
		zc_mr_dereg(&b.mr);
	zc_ctx_free(&b.ctx);
	munmap(b.pool, b.slot_size * (size_t)b.n_slots);
	free(b.free_slots);
	close(b.efd);
	print_times(&b);
	if (reconnects)
		zc_ex_warn("the connection was re-established %u time(s)", reconnects);
	zc_ex_warn("%s detached%s", b.dev, status ? " after an error" : "");
	return status;
}
