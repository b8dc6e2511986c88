/*
 * nvmf_rawhost - a misbehaving NVMe-oF RDMA host against zc_blk_target,
 * built on zcrdma's raw mode (the host side of the same wire formats,
 * encoded with examples/blk/nvmf.c). From rxe1's address ($ZC_ADDR_B) to a
 * target listening on ADDR:PORT:
 *
 *   nvmf_rawhost ADDR PORT NQN
 *
 * 1. connection requests with a bad record format and a queue id beyond
 *    the target's are rejected with those reasons in the reject's data
 * 2. on an admin queue: a command before Connect is a Command Sequence
 *    Error; Connect (keyed SGL to an export) gives a controller id; then
 *    bad commands get their NVMe status with the command id echoed:
 *    unknown opcode, PSDT 00b, SGL type 0x00, an Identify SGL of 100 bytes,
 *    Property Get CAP as 4 bytes, an unknown log page, an unknown fctype;
 *    Identify Controller lands in the export with our controller id
 * 3. the host then falls silent: the target must drop the admin queue once
 *    the 3 s keep-alive timeout passes, not before 2.5 s, not after 10 s
 * 4. a second admin queue sends a 10-byte capsule: the target drops it
 * Prints "nvmf_rawhost: passed" and exits 0, else says what failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zcrdma.h"
#include "nvmf.h"
#include "rxe_env.h"
#include "zc_example.h"

#define HOSTNQN "nqn.2024-01.io.zcrdma:rawhost"
#define NRECV 32

static struct zc_ctx *ctx;
static const char *addr, *nqn;
static uint16_t port;
static uint8_t cqes[NRECV][NVMF_CQE_SIZE];
static uint8_t *buf; /* [0, 4096): connect data, [4096, 8192): identify data */
static struct zc_mr *mr;

/* The next event of conn of the given type (a completion: of op), within secs. */
static struct zc_event next_event(struct zc_conn *conn, int type, int op, double secs)
{
	double end = rxe_now() + secs;
	struct zc_event ev;

	while (rxe_now() < end) {
		int n = zc_wait_events(ctx, &ev, 1, 100);

		CHECK_RC(n, "zc_wait_events");
		if (n == 0)
			continue;
		if (ev.type == ZC_EV_COMPLETION && ev.op == ZC_OP_RAW_SEND && ev.status == 0)
			continue;
		if (ev.type == type && (type != ZC_EV_COMPLETION || ev.op == op) && (!conn || ev.conn == conn))
			return ev;
		if (type == ZC_EV_COMPLETION || ev.type == ZC_EV_ERROR || ev.type == ZC_EV_PEER_CLOSED)
			RXE_FAIL("waiting for event %d op %d: got event %d op %d status %d", type, op, ev.type, ev.op,
				 ev.status);
	}
	RXE_FAIL("no event %d (op %d) within %.0f s", type, op, secs);
}

/* A raw connection whose request carries req; returns it connected, or NULL with the reject's sts in *sts. */
static struct zc_conn *open_queue(const struct nvmf_cm_req *req, int *sts)
{
	uint8_t pd[NVMF_CM_REQ_SIZE];
	struct zc_conn_opts o;
	struct zc_conn *c;
	struct zc_event ev;
	const void *rep;
	size_t n;
	int i;

	nvmf_cm_req_encode(req, pd);
	zc_conn_opts_init(&o);
	o.raw = 1;
	o.private_data = pd;
	o.private_data_len = sizeof(pd);
	o.raw_recv_depth = NRECV;
	CHECK_RC(zc_connect_start(ctx, addr, port, &o, &c), "zc_connect_start");
	ev = next_event(c, ZC_EV_CONNECTED, 0, 30);
	if (ev.status == -ECONNREFUSED) {
		CHECK_RC(zc_conn_peer_private_data(c, &rep, &n), "the reject's private data");
		RXE_ASSERT(n >= NVMF_CM_REJ_SIZE && zc_ex_get16(rep) == 0, "reject record format");
		*sts = zc_ex_get16((const uint8_t *)rep + 2);
		zc_abort(&c);
		return NULL;
	}
	CHECK_RC(ev.status, "connect");
	CHECK_RC(zc_conn_peer_private_data(c, &rep, &n), "the reply's private data");
	RXE_ASSERT(nvmf_cm_rep_decode(rep, n) == req->hsqsize + 1, "crqsize %d, expected %d",
		   nvmf_cm_rep_decode(rep, n), req->hsqsize + 1);
	for (i = 0; i < NRECV; i++)
		CHECK_RC(zc_raw_recv(c, cqes[i], NVMF_CQE_SIZE, NULL, (uint64_t)i), "zc_raw_recv");
	return c;
}

static struct nvmf_sqe sqe(uint8_t opcode, uint16_t cid)
{
	struct nvmf_sqe s;

	memset(&s, 0, sizeof(s));
	s.opcode = opcode;
	s.flags = NVMF_PSDT_SGL << 6;
	s.cid = cid;
	s.dptr[15] = NVMF_SGL_KEYED; /* no data: what Linux sends (nvme_rdma_set_sg_null) */
	return s;
}

static void keyed(struct nvmf_sqe *s, struct zc_export *exp, uint32_t len)
{
	struct nvmf_sgl g = {.type = NVMF_SGL_KEYED, .len = len};

	CHECK_RC(zc_export_key(exp, &g.addr, &g.key), "zc_export_key");
	nvmf_sgl_encode(&g, s->dptr);
}

/* Sends s, returns its CQE (which must name s's command id). */
static struct nvmf_cqe command(struct zc_conn *c, const struct nvmf_sqe *s)
{
	static uint8_t out[NVMF_SQE_SIZE];
	struct nvmf_cqe cqe;
	struct zc_event ev;

	nvmf_sqe_encode(s, out);
	CHECK_RC(zc_raw_send(c, out, sizeof(out), NULL, 1000 + s->cid, 0, 0), "zc_raw_send");
	ev = next_event(c, ZC_EV_COMPLETION, ZC_OP_RAW_RECV, 30);
	CHECK_RC(ev.status, "the CQE's receive");
	RXE_ASSERT(nvmf_cqe_decode(cqes[ev.token], ev.len, &cqe) == 0, "a %zu-byte CQE", ev.len);
	RXE_ASSERT(cqe.cid == s->cid, "CQE for command %u, expected %u", cqe.cid, s->cid);
	CHECK_RC(zc_raw_recv(c, cqes[ev.token], NVMF_CQE_SIZE, NULL, ev.token), "zc_raw_recv again");
	return cqe;
}

static void expect_status(struct zc_conn *c, const struct nvmf_sqe *s, uint16_t sc, const char *what)
{
	struct nvmf_cqe cqe = command(c, s);

	RXE_ASSERT(cqe.status == nvmf_status(sc), "%s: status 0x%x (%s), expected 0x%x", what, cqe.status,
		   nvmf_status_str(cqe.status), nvmf_status(sc));
	printf("ok: %s -> %s\n", what, nvmf_status_str(cqe.status));
}

/* Waits for the target to drop c; returns the seconds it took from since. */
static double dropped(struct zc_conn *c, double since, double secs)
{
	double end = rxe_now() + secs;
	struct zc_event ev;

	while (rxe_now() < end) {
		if (zc_wait_events(ctx, &ev, 1, 100) <= 0 || ev.conn != c)
			continue;
		if (ev.type == ZC_EV_PEER_CLOSED || ev.type == ZC_EV_ERROR)
			return rxe_now() - since;
	}
	RXE_FAIL("the target did not drop the connection within %.0f s", secs);
}

int main(int argc, char **argv)
{
	struct nvmf_cm_req admin = {.qid = 0, .hrqsize = 32, .hsqsize = 31};
	struct nvmf_connect_data cd = {.cntlid = NVMF_CNTLID_DYNAMIC};
	struct zc_export *conn_exp, *id_exp;
	struct rxe_env env;
	struct zc_desc desc;
	struct zc_conn *c;
	struct nvmf_sqe s;
	struct nvmf_cqe cqe;
	uint16_t cntlid;
	double t0, took;
	int sts = -1;

	if (argc != 4) {
		fprintf(stderr, "usage: nvmf_rawhost ADDR PORT NQN\n");
		return 2;
	}
	rxe_env_require(&env);
	addr = argv[1];
	port = (uint16_t)atoi(argv[2]);
	nqn = argv[3];
	CHECK_RC(zc_ctx_new(env.addr_b, NULL, &ctx), "zc_ctx_new");
	buf = aligned_alloc(4096, 8192);
	RXE_ASSERT(buf, "out of memory");
	memset(buf, 0, 8192);
	CHECK_RC(zc_mr_reg(ctx, buf, 8192, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &mr), "zc_mr_reg");

	/* 1. rejected requests */
	{
		uint8_t bad[NVMF_CM_REQ_SIZE];
		struct zc_conn_opts o;
		struct zc_event ev;

		nvmf_cm_req_encode(&admin, bad);
		bad[0] = 1; /* record format 1 */
		zc_conn_opts_init(&o);
		o.raw = 1;
		o.private_data = bad;
		o.private_data_len = sizeof(bad);
		CHECK_RC(zc_connect_start(ctx, addr, port, &o, &c), "zc_connect_start");
		ev = next_event(c, ZC_EV_CONNECTED, 0, 30);
		RXE_ASSERT(ev.status == -ECONNREFUSED, "record format 1: connect status %d", ev.status);
		{
			const void *rej;
			size_t n;

			CHECK_RC(zc_conn_peer_private_data(c, &rej, &n), "reject data");
			RXE_ASSERT(zc_ex_get16((const uint8_t *)rej + 2) == NVMF_CM_INVALID_RECFMT, "reject reason %u",
				   zc_ex_get16((const uint8_t *)rej + 2));
		}
		zc_abort(&c);
		printf("ok: record format 1 rejected: %s\n", nvmf_cm_status_str(NVMF_CM_INVALID_RECFMT));
	}
	RXE_ASSERT(!open_queue(&(struct nvmf_cm_req){.qid = 999, .hrqsize = 32, .hsqsize = 31}, &sts) &&
			   sts == NVMF_CM_INVALID_QID,
		   "queue 999: reject reason %d", sts);
	printf("ok: queue 999 rejected: %s\n", nvmf_cm_status_str(sts));

	/* 2. an admin queue and its commands */
	c = open_queue(&admin, &sts);
	RXE_ASSERT(c, "the admin queue was rejected (%d)", sts);
	s = sqe(NVMF_ADM_IDENTIFY, 1);
	expect_status(c, &s, NVMF_SC_CMD_SEQ_ERROR, "Identify before Connect");

	memset(cd.hostid, 0x42, sizeof(cd.hostid));
	snprintf(cd.subnqn, sizeof(cd.subnqn), "%s", nqn);
	snprintf(cd.hostnqn, sizeof(cd.hostnqn), "%s", HOSTNQN);
	nvmf_connect_data_encode(&cd, buf);
	CHECK_RC(zc_export(c, mr, 0, NVMF_CONNECT_DATA_SIZE, ZC_ACCESS_REMOTE_READ, &conn_exp, &desc), "zc_export");
	CHECK_RC(zc_export(c, mr, 4096, 4096, ZC_ACCESS_REMOTE_WRITE, &id_exp, &desc), "zc_export");
	s = sqe(NVMF_FABRICS, 2);
	s.fctype = NVMF_FCT_CONNECT;
	s.cdw11 = 31;   /* sqsize */
	s.cdw12 = 3000; /* kato, ms */
	keyed(&s, conn_exp, NVMF_CONNECT_DATA_SIZE);
	cqe = command(c, &s);
	RXE_ASSERT(cqe.status == 0, "Connect: %s", nvmf_status_str(cqe.status));
	cntlid = (uint16_t)cqe.result;
	printf("ok: Connect -> controller %u\n", cntlid);

	s = sqe(NVMF_FABRICS, 3);
	s.fctype = NVMF_FCT_PROP_SET;
	s.cdw11 = 0x14;
	s.cdw12 = 0x00460001; /* CC.EN */
	expect_status(c, &s, NVMF_SC_SUCCESS, "Property Set CC.EN");
	s = sqe(0x55, 4);
	expect_status(c, &s, NVMF_SC_INVALID_OPCODE, "opcode 0x55");
	s = sqe(NVMF_ADM_IDENTIFY, 5);
	s.flags = 0;
	expect_status(c, &s, NVMF_SC_INVALID_FIELD, "PSDT 00b");
	s = sqe(NVMF_ADM_IDENTIFY, 6);
	s.cdw10 = 1;
	keyed(&s, id_exp, 4096);
	s.dptr[15] = 0x00; /* a data block with an address: not on RDMA */
	expect_status(c, &s, NVMF_SC_SGL_INVALID_TYPE, "Identify with SGL type 0x00");
	s = sqe(NVMF_ADM_IDENTIFY, 7);
	s.cdw10 = 1;
	keyed(&s, id_exp, 100);
	expect_status(c, &s, NVMF_SC_SGL_INVALID_DATA, "Identify into 100 bytes");
	s = sqe(NVMF_FABRICS, 8);
	s.fctype = NVMF_FCT_PROP_GET;
	expect_status(c, &s, NVMF_SC_INVALID_FIELD, "Property Get CAP as 4 bytes");
	s = sqe(NVMF_FABRICS, 9);
	s.fctype = 0x05;
	expect_status(c, &s, NVMF_SC_INVALID_OPCODE, "fctype 0x05");
	s = sqe(NVMF_ADM_GET_LOG_PAGE, 10);
	s.cdw10 = 0xc0 | 127u << 16;
	keyed(&s, id_exp, 512);
	expect_status(c, &s, NVMF_SC_INVALID_LOG_PAGE, "Get Log Page 0xc0");
	s = sqe(NVMF_ADM_IDENTIFY, 11);
	s.cdw10 = 1;
	keyed(&s, id_exp, 4096);
	expect_status(c, &s, NVMF_SC_SUCCESS, "Identify Controller");
	RXE_ASSERT(zc_ex_get16(buf + 4096 + 78) == cntlid, "Identify CNTLID %u, Connect gave %u",
		   zc_ex_get16(buf + 4096 + 78), cntlid);
	RXE_ASSERT(strcmp((char *)buf + 4096 + 768, nqn) == 0, "Identify SUBNQN '%.64s'", (char *)buf + 4096 + 768);
	printf("ok: Identify Controller data: CNTLID %u, SUBNQN %s\n", cntlid, nqn);

	/* 3. silence: the keep-alive timeout */
	t0 = rxe_now();
	took = dropped(c, t0, 15);
	RXE_ASSERT(took >= 2.5 && took <= 10, "dropped after %.1f s of silence with a 3 s keep-alive timeout", took);
	printf("ok: silent for %.1f s with a 3 s keep-alive timeout: dropped\n", took);
	zc_export_revoke(&conn_exp);
	zc_export_revoke(&id_exp);
	zc_abort(&c);

	/* 4. not a capsule */
	c = open_queue(&admin, &sts);
	RXE_ASSERT(c, "the second admin queue was rejected (%d)", sts);
	CHECK_RC(zc_raw_send(c, "0123456789", 10, NULL, 77, 0, 0), "zc_raw_send");
	t0 = rxe_now();
	took = dropped(c, t0, 10);
	printf("ok: a 10-byte capsule: dropped after %.1f s\n", took);
	zc_abort(&c);

	zc_mr_dereg(&mr);
	zc_ctx_free(&ctx);
	free(buf);
	printf("nvmf_rawhost: passed\n");
	return 0;
}
