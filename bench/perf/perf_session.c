/* Control connection setup, parameter agreement and device checks. */
#include "perf_session.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "perf_err.h"
#include "perf_time.h"

#define RETRY_MS 250

static const char *link_name(uint8_t ll)
{
	return ll == IBV_LINK_LAYER_ETHERNET ? "Ethernet" : "InfiniBand";
}

/* The index of the GID rdma_cm routes with (RoCE v2 preferred), or -1. */
static int cm_gid_index(struct rdma_cm_id *id, int tbl_len)
{
	const union ibv_gid *sgid = &id->route.addr.addr.ibaddr.sgid;
	int i, any = -1;

	for (i = 0; i < tbl_len; i++) {
		struct ibv_gid_entry e;

		if (ibv_query_gid_ex(id->verbs, id->port_num, (uint32_t)i, &e, 0))
			continue;
		if (memcmp(&e.gid, sgid, sizeof(*sgid)) != 0)
			continue;
		if (e.gid_type == IBV_GID_TYPE_ROCE_V2)
			return i;
		if (any < 0)
			any = i;
	}
	return any;
}

/* -d, -i and -x against what rdma_cm chose, and the header's device facts. */
static int device_info(struct perf_ctx *ctx, struct rdma_cm_id *id)
{
	const struct perf_opts *o = ctx->o;
	struct perf_devinfo *d = &ctx->dev;
	struct ibv_port_attr pa;

	snprintf(d->name, sizeof(d->name), "%s", ibv_get_device_name(id->verbs->device));
	if (o->dev && strcmp(o->dev, d->name) != 0)
		return perf_err(EXDEV, "-d %s, but rdma_cm routes %s through %s (use the address of %s with -b)", o->dev,
				ctx->is_server ? "the client" : "this connection", d->name, o->dev);
	d->port = id->port_num;
	if (o->ib_port_set && o->ib_port != d->port)
		return perf_err(EXDEV, "-i %d, but rdma_cm uses port %d of %s", o->ib_port, d->port, d->name);
	if (ibv_query_port(id->verbs, id->port_num, &pa))
		return perf_err(errno, "ibv_query_port(%s, %d): %s", d->name, d->port, strerror(errno));
	d->mtu = 128 << pa.active_mtu;
	d->link = link_name(pa.link_layer);
	d->gid_index = cm_gid_index(id, pa.gid_tbl_len);
	if (o->gid_index >= 0) {
		struct ibv_gid_entry e;

		if (o->gid_index >= pa.gid_tbl_len ||
		    ibv_query_gid_ex(id->verbs, id->port_num, (uint32_t)o->gid_index, &e, 0))
			return perf_err(EINVAL, "-x %d: no such GID on %s port %d (table has %d entries)", o->gid_index,
					d->name, d->port, pa.gid_tbl_len);
		if (o->gid_index != d->gid_index)
			fprintf(stderr, "zc_perf: note: -x %d accepted, but rdma_cm picks the GID itself (index %d)\n",
				o->gid_index, d->gid_index);
	}
	perf_cm_addr_str(rdma_get_local_addr(id), d->local, sizeof(d->local));
	perf_cm_addr_str(rdma_get_peer_addr(id), d->remote, sizeof(d->remote));
	return 0;
}

static int alloc_pd(struct perf_ctx *ctx, struct rdma_cm_id *id)
{
	ctx->verbs = id->verbs;
	ctx->pd = ibv_alloc_pd(id->verbs);
	if (!ctx->pd)
		return perf_err(errno, "ibv_alloc_pd: %s", strerror(errno));
	return 0;
}

/* Frees the control QP, the PD, then the id (which may hold the device). */
static void drop_ctrl(struct perf_ctx *ctx)
{
	struct rdma_cm_id *id = ctx->ctrl.id;

	perf_ctrl_destroy(&ctx->ctrl);
	if (ctx->pd)
		ibv_dealloc_pd(ctx->pd);
	ctx->pd = NULL;
	ctx->verbs = NULL;
	if (id)
		rdma_destroy_id(id);
}

static void refuse(struct rdma_cm_id *id, const char *why)
{
	struct perf_reject r;

	perf_reject_make(&r, why);
	rdma_reject(id, &r, sizeof(r));
}

static int server_open(struct perf_ctx *ctx)
{
	const struct perf_opts *o = ctx->o;
	struct perf_hello mine, peer;
	struct rdma_conn_param param;
	struct rdma_cm_event *ev;
	struct rdma_cm_id *id;
	char why[PERF_REJECT_TEXT];
	int rc;

	rc = perf_cm_listen(&ctx->cm, o->bind, o->port, perf_errbuf(), PERF_ERR_LEN);
	if (rc)
		return rc;
	if (o->dev && ctx->cm.listen_id->verbs &&
	    strcmp(o->dev, ibv_get_device_name(ctx->cm.listen_id->verbs->device)) != 0)
		return perf_err(EXDEV, "-d %s, but %s belongs to %s", o->dev, o->bind,
				ibv_get_device_name(ctx->cm.listen_id->verbs->device));
	printf("\n************************************\n"
	       "* Waiting for client to connect... *\n"
	       "************************************\n");
	fflush(stdout);
	rc = perf_cm_wait(&ctx->cm, NULL, RDMA_CM_EVENT_CONNECT_REQUEST, o->wait_s ? o->wait_s * 1000 : -1, &ev,
			  perf_errbuf(), PERF_ERR_LEN);
	if (rc) {
		if (rc == -ETIMEDOUT)
			perf_err(rc, "no client connected within --wait %d s", o->wait_s);
		return rc;
	}
	id = ev->id;
	perf_hello_from_opts(o, &mine);
	rc = perf_hello_decode(ev->param.conn.private_data, ev->param.conn.private_data_len, &peer, why,
			       sizeof(why));
	if (rc == 0 && perf_hello_compare(&mine, &peer, "client", perf_errbuf(), PERF_ERR_LEN) != 0) {
		/* Phrase the refusal from the client's point of view. */
		perf_hello_compare(&peer, &mine, "server", why, sizeof(why));
		rc = -EINVAL;
	} else if (rc)
		perf_err(rc, "refused a client: %s", why);
	rdma_ack_cm_event(ev);
	if (rc) {
		refuse(id, why);
		rdma_destroy_id(id);
		return rc;
	}
	ctx->ctrl.id = id; /* owned from here on, even if the next steps fail */
	rc = device_info(ctx, id);
	if (!rc)
		rc = alloc_pd(ctx, id);
	if (!rc)
		rc = perf_ctrl_init(&ctx->ctrl, &ctx->cm, id, ctx->pd);
	ctx->ctrl.id = id;
	if (rc) {
		snprintf(why, sizeof(why), "server: %s", perf_errmsg());
		refuse(id, why);
		return rc;
	}
	memset(&param, 0, sizeof(param));
	param.private_data = &mine;
	param.private_data_len = sizeof(mine);
	param.retry_count = 7;
	param.rnr_retry_count = 7;
	rc = perf_cm_accept(&ctx->cm, id, &param, perf_errbuf(), PERF_ERR_LEN);
	if (rc)
		return rc;
	ctx->ctrl.connected = 1;
	return 0;
}

static int client_attempt(struct perf_ctx *ctx)
{
	struct perf_hello mine, peer;
	struct rdma_conn_param param;
	struct rdma_cm_id *id;
	uint8_t pd[PERF_CONNECT_PDATA_MAX * 4];
	size_t plen = sizeof(pd);
	int rc;

	rc = perf_cm_client_id(&ctx->cm, &id, perf_errbuf(), PERF_ERR_LEN);
	if (rc)
		return rc;
	ctx->ctrl.id = id;
	rc = device_info(ctx, id);
	if (!rc)
		rc = alloc_pd(ctx, id);
	if (!rc)
		rc = perf_ctrl_init(&ctx->ctrl, &ctx->cm, id, ctx->pd);
	ctx->ctrl.id = id;
	if (rc)
		return rc;
	perf_hello_from_opts(ctx->o, &mine);
	memset(&param, 0, sizeof(param));
	param.private_data = &mine;
	param.private_data_len = sizeof(mine);
	param.retry_count = 7;
	param.rnr_retry_count = 7;
	rc = perf_cm_connect(&ctx->cm, id, &param, pd, &plen, perf_errbuf(), PERF_ERR_LEN);
	if (rc)
		return rc;
	ctx->ctrl.connected = 1;
	/* The server compared already; this catches a server of another protocol. */
	rc = perf_hello_decode(pd, plen, &peer, perf_errbuf(), PERF_ERR_LEN);
	if (!rc)
		rc = perf_hello_compare(&mine, &peer, "server", perf_errbuf(), PERF_ERR_LEN);
	return rc;
}

static int client_open(struct perf_ctx *ctx)
{
	const struct perf_opts *o = ctx->o;
	uint64_t deadline = perf_now_ns() + (uint64_t)o->wait_s * 1000000000ull;
	int rc;

	rc = perf_cm_set_peer(&ctx->cm, o->bind, o->server, o->port, perf_errbuf(), PERF_ERR_LEN);
	if (rc)
		return rc;
	for (;;) {
		rc = client_attempt(ctx);
		/* No listener yet: with --wait, try again until the server is up. */
		if (rc != -EHOSTUNREACH || perf_now_ns() >= deadline || perf_stopped())
			return rc;
		drop_ctrl(ctx);
		usleep(RETRY_MS * 1000);
	}
}

int perf_session_open(struct perf_ctx *ctx)
{
	int rc = perf_cm_open(&ctx->cm);

	if (rc)
		return perf_err(rc, "rdma_create_event_channel: %s (is an RDMA device there?)", strerror(-rc));
	return ctx->is_server ? server_open(ctx) : client_open(ctx);
}

void perf_session_close(struct perf_ctx *ctx)
{
	drop_ctrl(ctx);
	perf_cm_close(&ctx->cm);
}

int perf_peer_check(struct perf_ctx *ctx)
{
	struct perf_msg m;
	int rc;

	if (ctx->peer_done)
		return 1;
	rc = perf_ctrl_poll(&ctx->ctrl, &m);
	if (rc <= 0)
		return rc;
	m.text[sizeof(m.text) - 1] = '\0';
	if (m.type == PERF_MSG_ABORT)
		return perf_err(ECONNABORTED, "peer gave up: %s", m.text);
	if (m.type != PERF_MSG_DONE)
		return perf_err(EPROTO, "control: unexpected %s during the run", perf_msg_type_name(m.type));
	ctx->done = m;
	ctx->peer_done = 1;
	return 1;
}
