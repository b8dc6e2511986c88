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
 *
 *   nvmf_rawhost --io ADDR PORT NQN LBA
 *
 * A well-behaved host instead (host NQN ...:rawhost-io), for a test that
 * kills it mid-I/O: an admin queue and one I/O queue, then QD 4 KiB Writes
 * (keyed SGLs) from LBA on, each read back and checked byte for byte, until
 * IO_VERIFIED have been; then it stops reposting its receives, so once they
 * are used up the target's CQEs find none: the next QD Writes stay
 * outstanding at the target (their CQE SENDs retry, receiver not ready).
 * It prints "holding QD commands" and waits to be killed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zcrdma.h"
#include "nvmf.h"
#include "nvmf_ctrl.h"
#include "rxe_env.h"
#include "zc_example.h"

#define HOSTNQN "nqn.2024-01.io.zcrdma:rawhost"
#define NRECV 32
#define QD 8
#define IO_VERIFIED 256

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

/* A raw connection whose request carries req, its NRECV receives posted in rx; returns it connected, or NULL
 * with the reject's sts in *sts. */
static struct zc_conn *open_queue_rx(const struct nvmf_cm_req *req, uint8_t (*rx)[NVMF_CQE_SIZE], int *sts)
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
	zc_conn_set_data(c, rx); /* command() finds the CQEs there */
	for (i = 0; i < NRECV; i++)
		CHECK_RC(zc_raw_recv(c, rx[i], NVMF_CQE_SIZE, NULL, (uint64_t)i), "zc_raw_recv");
	return c;
}

static struct zc_conn *open_queue(const struct nvmf_cm_req *req, int *sts)
{
	return open_queue_rx(req, cqes, sts);
}

/* A command without data: the null keyed descriptor Linux sends (nvme_rdma_set_sg_null). */
static struct nvmf_sqe sqe(uint8_t opcode, uint16_t cid)
{
	struct nvmf_sqe s;

	nvmf_cmd_init(&s, opcode, cid, 0);
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
	uint8_t (*rx)[NVMF_CQE_SIZE];
	struct nvmf_cqe cqe;
	struct zc_event ev;

	nvmf_sqe_encode(s, out);
	CHECK_RC(zc_raw_send(c, out, sizeof(out), NULL, 1000 + s->cid, 0, 0), "zc_raw_send");
	ev = next_event(c, ZC_EV_COMPLETION, ZC_OP_RAW_RECV, 30);
	CHECK_RC(ev.status, "the CQE's receive");
	rx = ev.data;
	RXE_ASSERT(nvmf_cqe_decode(rx[ev.token], ev.len, &cqe) == 0, "a %zu-byte CQE", ev.len);
	RXE_ASSERT(cqe.cid == s->cid, "CQE for command %u, expected %u", cqe.cid, s->cid);
	CHECK_RC(zc_raw_recv(c, rx[ev.token], NVMF_CQE_SIZE, NULL, ev.token), "zc_raw_recv again");
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

/* Fabrics Connect of queue qid (its connect data RDMA-read from buf[0, 1024)); returns the controller id. */
static uint16_t connect_queue(struct zc_conn *c, uint16_t qid, uint16_t sqsize, uint16_t cntlid, const char *hostnqn,
			      uint32_t kato_ms)
{
	struct nvmf_connect_data cd = {.cntlid = cntlid};
	struct zc_export *exp;
	struct zc_desc desc;
	struct nvmf_sqe s = sqe(NVMF_FABRICS, 100 + qid);
	struct nvmf_cqe cqe;

	memset(cd.hostid, 0x42, sizeof(cd.hostid));
	snprintf(cd.subnqn, sizeof(cd.subnqn), "%s", nqn);
	snprintf(cd.hostnqn, sizeof(cd.hostnqn), "%s", hostnqn);
	nvmf_connect_data_encode(&cd, buf);
	CHECK_RC(zc_export(c, mr, 0, NVMF_CONNECT_DATA_SIZE, ZC_ACCESS_REMOTE_READ, &exp, &desc), "zc_export");
	s.fctype = NVMF_FCT_CONNECT;
	s.cdw10 = (uint32_t)qid << 16;
	s.cdw11 = sqsize;
	s.cdw12 = kato_ms;
	keyed(&s, exp, NVMF_CONNECT_DATA_SIZE);
	cqe = command(c, &s);
	RXE_ASSERT(cqe.status == 0, "Connect of queue %u: %s", qid, nvmf_status_str(cqe.status));
	zc_export_revoke(&exp);
	return (uint16_t)cqe.result;
}

struct io_slot {
	struct zc_export *exp; /* the slot's 4 KiB of buf, read and write */
	uint64_t lba;
	uint32_t seed;
	int reading;           /* the Write is done: the Read back is in flight */
};

static void io_submit(struct zc_conn *c, struct io_slot *io, uint16_t cid)
{
	uint8_t out[NVMF_SQE_SIZE];
	struct nvmf_sqe s = sqe(io->reading ? NVMF_IO_READ : NVMF_IO_WRITE, cid);

	s.nsid = 1;
	s.cdw10 = (uint32_t)io->lba;
	s.cdw11 = (uint32_t)(io->lba >> 32);
	s.cdw12 = 4096 / 512 - 1; /* NLB, 0's based */
	keyed(&s, io->exp, 4096);
	nvmf_sqe_encode(&s, out);
	CHECK_RC(zc_raw_send(c, out, sizeof(out), NULL, 2000 + cid, 0, 0), "zc_raw_send (I/O)");
}

/* --io: verified I/O, then QD commands left outstanding at the target (see the top). */
static int io_host(uint64_t lba0)
{
	static uint8_t iocqes[NRECV][NVMF_CQE_SIZE];
	struct io_slot io[QD];
	struct zc_conn *admin, *ioq;
	struct nvmf_sqe s;
	struct nvmf_cqe cqe;
	struct zc_event ev;
	uint16_t cntlid;
	int i, sts = -1, verified = 0, used_rx = 0;
	uint32_t gen = 1;

	admin = open_queue(&(struct nvmf_cm_req){.qid = 0, .hrqsize = 32, .hsqsize = 31}, &sts);
	RXE_ASSERT(admin, "the admin queue was rejected (%d)", sts);
	cntlid = connect_queue(admin, 0, 31, NVMF_CNTLID_DYNAMIC, HOSTNQN "-io", 5000);
	s = sqe(NVMF_FABRICS, 3);
	s.fctype = NVMF_FCT_PROP_SET;
	s.cdw11 = NVMF_PROP_CC;
	s.cdw12 = 0x00460001; /* CC.EN */
	expect_status(admin, &s, NVMF_SC_SUCCESS, "Property Set CC.EN");
	s = sqe(NVMF_ADM_SET_FEATURES, 4);
	s.cdw10 = NVMF_FEAT_NUM_QUEUES;
	expect_status(admin, &s, NVMF_SC_SUCCESS, "Set Features number of queues (1)");
	ioq = open_queue_rx(&(struct nvmf_cm_req){.qid = 1, .hrqsize = 2 * QD, .hsqsize = 2 * QD - 1}, iocqes, &sts);
	RXE_ASSERT(ioq, "I/O queue 1 was rejected (%d)", sts);
	RXE_ASSERT(connect_queue(ioq, 1, 2 * QD - 1, cntlid, HOSTNQN "-io", 5000) == cntlid, "I/O queue: controller id");
	printf("ok: controller %u: admin queue and I/O queue 1 connected\n", cntlid);

	for (i = 0; i < QD; i++) {
		io[i] = (struct io_slot){.lba = lba0 + (uint64_t)i * 8, .seed = gen++};
		CHECK_RC(zc_export(ioq, mr, 4096 * (size_t)(i + 1), 4096, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE,
				   &io[i].exp, &(struct zc_desc){0}), "zc_export (I/O)");
		rxe_fill(buf + 4096 * (i + 1), 4096, io[i].seed);
		io_submit(ioq, &io[i], (uint16_t)i);
	}
	/* Each slot: Write its pattern, Read it back into the same 4 KiB (zeroed first), check, next LBA. */
	while (used_rx < NRECV) {
		ev = next_event(ioq, ZC_EV_COMPLETION, ZC_OP_RAW_RECV, 30);
		CHECK_RC(ev.status, "a CQE's receive");
		RXE_ASSERT(nvmf_cqe_decode(iocqes[ev.token], ev.len, &cqe) == 0, "a %zu-byte CQE", ev.len);
		RXE_ASSERT(cqe.cid < QD && cqe.status == 0, "CQE cid %u status %s", cqe.cid, nvmf_status_str(cqe.status));
		/* Past IO_VERIFIED receives are used up: the QD commands in flight when the last goes stay there. */
		if (verified < IO_VERIFIED)
			CHECK_RC(zc_raw_recv(ioq, iocqes[ev.token], NVMF_CQE_SIZE, NULL, ev.token), "zc_raw_recv again");
		else
			used_rx++;
		i = cqe.cid;
		if (io[i].reading) {
			long bad = rxe_check(buf + 4096 * (i + 1), 4096, io[i].seed);

			RXE_ASSERT(bad < 0, "LBA %llu: byte %ld differs from what was written",
				   (unsigned long long)io[i].lba, bad);
			verified++;
			io[i].lba += QD * 8;
			io[i].seed = gen++;
			rxe_fill(buf + 4096 * (i + 1), 4096, io[i].seed);
		} else {
			memset(buf + 4096 * (i + 1), 0, 4096);
		}
		io[i].reading = !io[i].reading;
		io_submit(ioq, &io[i], (uint16_t)i);
	}
	printf("ok: %d Writes read back and verified byte for byte\n", verified);
	printf("holding %d commands: the target cannot deliver their completions\n", QD);
	fflush(stdout);
	/* Keep-alives: the controller stays until this process dies. */
	for (i = 0;; i++) {
		double next = rxe_now() + 1;

		s = sqe(NVMF_ADM_KEEP_ALIVE, (uint16_t)(10 + i % 1000));
		cqe = command(admin, &s);
		RXE_ASSERT(cqe.status == 0, "Keep Alive: %s", nvmf_status_str(cqe.status));
		while (rxe_now() < next)
			zc_wait_events(ctx, &ev, 1, 100);
	}
}

int main(int argc, char **argv)
{
	struct nvmf_cm_req admin = {.qid = 0, .hrqsize = 32, .hsqsize = 31};
	struct zc_export *id_exp;
	struct rxe_env env;
	struct zc_desc desc;
	struct zc_conn *c;
	struct nvmf_sqe s;
	uint16_t cntlid;
	double t0, took;
	int sts = -1, io = argc == 6 && strcmp(argv[1], "--io") == 0;
	size_t size = io ? 4096 * (QD + 1) : 8192;

	if (argc != 4 && !io) {
		fprintf(stderr, "usage: nvmf_rawhost ADDR PORT NQN\n       nvmf_rawhost --io ADDR PORT NQN LBA\n");
		return 2;
	}
	rxe_env_require(&env);
	addr = argv[1 + io];
	port = (uint16_t)atoi(argv[2 + io]);
	nqn = argv[3 + io];
	CHECK_RC(zc_ctx_new(env.addr_b, NULL, &ctx), "zc_ctx_new");
	buf = aligned_alloc(4096, size);
	RXE_ASSERT(buf, "out of memory");
	memset(buf, 0, size);
	CHECK_RC(zc_mr_reg(ctx, buf, size, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &mr), "zc_mr_reg");
	if (io)
		return io_host(strtoull(argv[5], NULL, 0));

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

	cntlid = connect_queue(c, 0, 31, NVMF_CNTLID_DYNAMIC, HOSTNQN, 3000);
	CHECK_RC(zc_export(c, mr, 4096, 4096, ZC_ACCESS_REMOTE_WRITE, &id_exp, &desc), "zc_export");
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
