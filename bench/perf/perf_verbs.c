/* Raw-verbs data connections, buffers and CQ waits. */
#include "perf_verbs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf_err.h"
#include "perf_time.h"

#define SLICE_MS 100

/* Private data of a data connection, both directions. */
struct perf_data_pd {
	struct perf_pdata_hdr hdr;
	uint32_t index;
	uint32_t rkey;
	uint64_t addr;
	uint64_t len;
};

_Static_assert(sizeof(struct perf_data_pd) <= PERF_CONNECT_PDATA_MAX, "must fit a connect request");

static int cqw_create(struct perf_cqw *c, struct ibv_context *verbs, int depth, int events)
{
	memset(c, 0, sizeof(*c));
	if (events) {
		int fl;

		c->ch = ibv_create_comp_channel(verbs);
		if (!c->ch)
			return perf_err(errno, "ibv_create_comp_channel: %s", strerror(errno));
		/* Non-blocking: a spurious wakeup must not block in ibv_get_cq_event. */
		fl = fcntl(c->ch->fd, F_GETFL);
		if (fl < 0 || fcntl(c->ch->fd, F_SETFL, fl | O_NONBLOCK) < 0)
			return perf_err(errno, "fcntl: %s", strerror(errno));
	}
	c->cq = ibv_create_cq(verbs, depth, NULL, c->ch, 0);
	if (!c->cq)
		return perf_err(errno, "ibv_create_cq(%d): %s", depth, strerror(errno));
	return 0;
}

static void cqw_destroy(struct perf_cqw *c)
{
	if (c->cq)
		ibv_destroy_cq(c->cq);
	if (c->ch)
		ibv_destroy_comp_channel(c->ch);
	memset(c, 0, sizeof(*c));
}

int perf_cq_poll(struct perf_cqw *c, struct ibv_wc *wc, int max)
{
	struct pollfd pfd;
	int n = ibv_poll_cq(c->cq, max, wc);

	if (n < 0)
		return perf_err(EIO, "ibv_poll_cq failed (%d)", n);
	if (n > 0 || !c->ch)
		return n;
	if (!c->armed) {
		if (ibv_req_notify_cq(c->cq, 0))
			return perf_err(EIO, "ibv_req_notify_cq failed");
		c->armed = 1;
		/* Completions that came before arming raise no event. */
		n = ibv_poll_cq(c->cq, max, wc);
		if (n)
			return n < 0 ? perf_err(EIO, "ibv_poll_cq failed (%d)", n) : n;
	}
	pfd.fd = c->ch->fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, SLICE_MS) > 0) {
		struct ibv_cq *cq;
		void *cq_ctx;

		if (ibv_get_cq_event(c->ch, &cq, &cq_ctx) == 0) {
			ibv_ack_cq_events(cq, 1);
			c->armed = 0;
		}
	}
	n = ibv_poll_cq(c->cq, max, wc);
	return n < 0 ? perf_err(EIO, "ibv_poll_cq failed (%d)", n) : n;
}

int perf_post_recvs(struct perf_verbs *v, struct perf_vqp *q, uint64_t size, int n)
{
	struct ibv_sge sge = {.addr = (uintptr_t)perf_vq_exposed(v, q), .length = (uint32_t)size, .lkey = q->mr->lkey};
	struct ibv_recv_wr wr = {.wr_id = (uint64_t)(q - v->q), .sg_list = &sge, .num_sge = 1}, *bad;
	int i, rc;

	for (i = 0; i < n; i++) {
		rc = ibv_post_recv(q->id->qp, &wr, &bad);
		if (rc)
			return perf_err(rc, "ibv_post_recv: %s", strerror(rc));
		q->rposted++;
	}
	return 0;
}

uint32_t perf_pattern_seed(uint64_t size, int qp)
{
	return (uint32_t)(size * 2654435761u) ^ (uint32_t)qp * 40503u ^ 0x5a17u;
}

static inline uint8_t pattern_byte(uint64_t i, uint32_t seed)
{
	uint32_t x = (uint32_t)i * 2654435761u ^ seed;

	x ^= x >> 15;
	return (uint8_t)(x ^ (x >> 8) ^ (i >> 12));
}

void perf_pattern_fill(uint8_t *p, uint64_t len, uint32_t seed)
{
	uint64_t i;

	for (i = 0; i < len; i++)
		p[i] = pattern_byte(i, seed);
}

int64_t perf_pattern_check(const uint8_t *p, uint64_t len, uint32_t seed)
{
	uint64_t i;

	for (i = 0; i < len; i++)
		if (p[i] != pattern_byte(i, seed))
			return (int64_t)i;
	return -1;
}

int perf_verbs_prepare(struct perf_ctx *ctx, uint64_t size, unsigned int what)
{
	struct perf_verbs *v = ctx->priv;
	int i, rc;

	for (i = 0; i < v->nq; i++) {
		struct perf_vqp *q = &v->q[i];
		uint32_t seed = perf_pattern_seed(size, i);

		if (what & PERF_PREP_ZERO_LOCAL)
			memset(perf_vq_local(q), 0, size);
		if (what & PERF_PREP_ZERO_EXPOSED)
			memset(perf_vq_exposed(v, q), 0, size);
		if ((what & PERF_PREP_FILL_LOCAL) && ctx->o->verify)
			perf_pattern_fill(perf_vq_local(q), size, seed);
		if ((what & PERF_PREP_FILL_EXPOSED) && ctx->o->verify)
			perf_pattern_fill(perf_vq_exposed(v, q), size, seed);
		q->rposted = 0;
		if (what & PERF_PREP_RECV) {
			uint64_t n = (uint64_t)v->rx_depth;

			if (!ctx->o->duration && ctx->o->iters < n)
				n = ctx->o->iters;
			rc = perf_post_recvs(v, q, size, (int)n);
			if (rc)
				return rc;
		}
	}
	return 0;
}

int perf_verbs_check(struct perf_ctx *ctx, uint64_t size, uint64_t len, int exposed)
{
	struct perf_verbs *v = ctx->priv;
	int i;

	for (i = 0; i < v->nq; i++) {
		const struct perf_vqp *q = &v->q[i];
		int64_t bad = perf_pattern_check(exposed ? perf_vq_exposed(v, q) : perf_vq_local(q), len,
						 perf_pattern_seed(size, i));

		if (bad >= 0)
			return perf_err(EIO, "--verify: %llu-byte payload differs at byte %lld on QP %d",
					(unsigned long long)size, (long long)bad, i);
	}
	return 0;
}

static int alloc_buffers(struct perf_verbs *v, struct perf_vqp *q)
{
	size_t len = (size_t)(2 * v->half);
	void *p;
	int rc = posix_memalign(&p, 4096, len);

	if (rc)
		return perf_err(rc, "cannot allocate %zu bytes: %s", len, strerror(rc));
	memset(p, 0, len);
	q->buf = p;
	q->mr = ibv_reg_mr(v->ctx->pd, p, len,
			   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
	if (!q->mr)
		return perf_err(errno, "ibv_reg_mr(%zu bytes): %s%s", len, strerror(errno),
				errno == ENOMEM || errno == EPERM ? " (raise ulimit -l)" : "");
	return 0;
}

static int create_qp(struct perf_verbs *v, struct perf_vqp *q, int use_recv, int inline_size)
{
	struct ibv_qp_init_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.send_cq = v->scq.cq;
	attr.recv_cq = v->rcq.cq;
	attr.qp_type = IBV_QPT_RC;
	/* +1: duration mode closes with one extra signaled request. */
	attr.cap.max_send_wr = (uint32_t)v->tx_depth + 1;
	attr.cap.max_recv_wr = use_recv ? (uint32_t)v->rx_depth : 1;
	attr.cap.max_send_sge = 1;
	attr.cap.max_recv_sge = 1;
	attr.cap.max_inline_data = (uint32_t)inline_size;
	if (rdma_create_qp(q->id, v->ctx->pd, &attr))
		return perf_err(errno, "rdma_create_qp (tx %d, rx %d, inline %d): %s", v->tx_depth, v->rx_depth,
				inline_size, strerror(errno));
	/* Inline only what was asked for, like perftest: providers round the
	 * capability up (soft-RoCE reports 16 for 0). */
	v->inline_max = inline_size;
	return 0;
}

static void data_pd(const struct perf_verbs *v, const struct perf_vqp *q, int index, struct perf_data_pd *pd)
{
	memset(pd, 0, sizeof(*pd));
	pd->hdr.magic = PERF_MAGIC;
	pd->hdr.version = PERF_PROTO_VERSION;
	pd->hdr.kind = PERF_PD_DATA;
	pd->index = (uint32_t)index;
	pd->addr = (uintptr_t)perf_vq_exposed(v, q);
	pd->rkey = q->mr->rkey;
	pd->len = v->half;
}

static int take_peer_pd(struct perf_vqp *q, const void *buf, size_t len, int index)
{
	struct perf_data_pd pd;

	if (!buf || len < sizeof(pd))
		return perf_err(EPROTO, "data connection %d: no buffer descriptor from the peer", index);
	memcpy(&pd, buf, sizeof(pd));
	if (pd.hdr.magic != PERF_MAGIC || pd.hdr.kind != PERF_PD_DATA || (int)pd.index != index)
		return perf_err(EPROTO, "data connection %d: unexpected private data (kind %u, index %u)", index,
				pd.hdr.kind, pd.index);
	q->raddr = pd.addr;
	q->rkey = pd.rkey;
	q->rlen = pd.len;
	return 0;
}

static int same_device(struct perf_ctx *ctx, struct rdma_cm_id *id, int index)
{
	if (id->verbs != ctx->verbs)
		return perf_err(EXDEV, "data connection %d landed on %s, the control connection on %s", index,
				ibv_get_device_name(id->verbs->device), ctx->dev.name);
	return 0;
}

static int connect_client(struct perf_verbs *v, int i, const struct rdma_conn_param *base, int use_recv,
			  int inline_size)
{
	struct rdma_conn_param param = *base;
	struct perf_ctx *ctx = v->ctx;
	struct perf_vqp *q = &v->q[i];
	struct perf_data_pd mine;
	uint8_t peer[64];
	size_t plen = sizeof(peer);
	int rc = perf_cm_client_id(&ctx->cm, &q->id, perf_errbuf(), PERF_ERR_LEN);

	if (rc)
		return rc;
	rc = same_device(ctx, q->id, i);
	if (!rc)
		rc = alloc_buffers(v, q);
	if (!rc)
		rc = create_qp(v, q, use_recv, inline_size);
	if (rc)
		return rc;
	data_pd(v, q, i, &mine);
	param.private_data = &mine;
	param.private_data_len = sizeof(mine);
	rc = perf_cm_connect(&ctx->cm, q->id, &param, peer, &plen, perf_errbuf(), PERF_ERR_LEN);
	if (rc)
		return rc;
	return take_peer_pd(q, peer, plen, i);
}

static int accept_server(struct perf_verbs *v, int i, const struct ibv_device_attr *da, int use_recv,
			 int inline_size)
{
	struct perf_ctx *ctx = v->ctx;
	struct perf_vqp *q = &v->q[i];
	struct rdma_conn_param param;
	struct rdma_cm_event *ev;
	struct perf_data_pd mine;
	int rc = perf_cm_wait(&ctx->cm, NULL, RDMA_CM_EVENT_CONNECT_REQUEST, PERF_CM_STEP_MS, &ev, perf_errbuf(),
			      PERF_ERR_LEN);

	if (rc)
		return rc;
	q->id = ev->id;
	rc = take_peer_pd(q, ev->param.conn.private_data, ev->param.conn.private_data_len, i);
	memset(&param, 0, sizeof(param));
	/* Serve as many reads as the client may issue, within what we can. */
	param.responder_resources = ev->param.conn.initiator_depth;
	if (param.responder_resources > da->max_qp_rd_atom)
		param.responder_resources = (uint8_t)da->max_qp_rd_atom;
	param.initiator_depth = ev->param.conn.responder_resources;
	if (param.initiator_depth > da->max_qp_init_rd_atom)
		param.initiator_depth = (uint8_t)da->max_qp_init_rd_atom;
	param.retry_count = 7;
	param.rnr_retry_count = 7;
	rdma_ack_cm_event(ev);
	if (!rc)
		rc = same_device(ctx, q->id, i);
	if (!rc)
		rc = alloc_buffers(v, q);
	if (!rc)
		rc = create_qp(v, q, use_recv, inline_size);
	if (rc) {
		rdma_reject(q->id, NULL, 0);
		return rc;
	}
	v->rd_atom = param.initiator_depth;
	data_pd(v, q, i, &mine);
	param.private_data = &mine;
	param.private_data_len = sizeof(mine);
	return perf_cm_accept(&ctx->cm, q->id, &param, perf_errbuf(), PERF_ERR_LEN);
}

int perf_verbs_setup(struct perf_ctx *ctx, int use_recv, int inline_size)
{
	const struct perf_opts *o = ctx->o;
	struct ibv_device_attr da;
	struct perf_verbs *v = calloc(1, sizeof(*v));
	int i, rc;

	if (!v)
		return perf_err(ENOMEM, "out of memory");
	ctx->priv = v;
	v->ctx = ctx;
	v->nq = o->qps;
	v->half = ctx->max_size;
	v->tx_depth = o->tx_depth;
	v->rx_depth = o->rx_depth;
	v->q = calloc((size_t)v->nq, sizeof(*v->q));
	if (!v->q)
		return perf_err(ENOMEM, "out of memory");
	if (ibv_query_device(ctx->verbs, &da))
		return perf_err(errno, "ibv_query_device: %s", strerror(errno));
	rc = cqw_create(&v->scq, ctx->verbs, (v->tx_depth + 1) * v->nq, o->events);
	if (!rc)
		rc = cqw_create(&v->rcq, ctx->verbs, (use_recv ? v->rx_depth : 1) * v->nq, o->events);
	if (rc)
		return rc;
	for (i = 0; i < v->nq; i++) {
		if (ctx->is_server) {
			rc = accept_server(v, i, &da, use_recv, inline_size);
		} else {
			struct rdma_conn_param param;

			memset(&param, 0, sizeof(param));
			param.initiator_depth = (uint8_t)(da.max_qp_init_rd_atom > 255 ? 255 : da.max_qp_init_rd_atom);
			param.responder_resources = (uint8_t)(da.max_qp_rd_atom > 255 ? 255 : da.max_qp_rd_atom);
			param.retry_count = 7;
			param.rnr_retry_count = 7;
			v->rd_atom = param.initiator_depth;
			rc = connect_client(v, i, &param, use_recv, inline_size);
		}
		if (rc)
			return rc;
	}
	ctx->inline_size = v->inline_max;
	ctx->rx_depth = use_recv ? v->rx_depth : 0;
	return 0;
}

void perf_verbs_teardown(struct perf_ctx *ctx)
{
	struct perf_verbs *v = ctx->priv;
	int i;

	if (!v)
		return;
	for (i = 0; v->q && i < v->nq; i++) {
		struct perf_vqp *q = &v->q[i];

		if (q->id) {
			rdma_disconnect(q->id);
			if (q->id->qp)
				rdma_destroy_qp(q->id);
		}
		if (q->mr)
			ibv_dereg_mr(q->mr);
		if (q->id)
			rdma_destroy_id(q->id);
		free(q->buf);
	}
	cqw_destroy(&v->scq);
	cqw_destroy(&v->rcq);
	free(v->q);
	free(v);
	ctx->priv = NULL;
}
