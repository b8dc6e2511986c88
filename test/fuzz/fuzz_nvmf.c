/*
 * fuzz_nvmf - libFuzzer target for the NVMe-oF parsers and controller logic
 * (examples/blk/nvmf.c, nvmf_ctrl.c): what a hostile NVMe-oF host controls,
 * and (mode 4) what a hostile target controls of the host's input.
 *
 * Input: an 8-byte prefix, then the payload.
 *   0      mode (% 7), see below
 *   1      flags: 0x01 4096-byte blocks (else 512), 0x02 read-only,
 *          0x04 volatile write cache, 0x08 4 KiB in-capsule data (else none),
 *          0x10 a discovery controller, 0x20 the controller enabled (CC.EN
 *          and Set Features Number of Queues done), 0x40 an I/O queue
 *   2-5    le32 namespace blocks
 *   6      max_qsize (at least 2)
 *   7      max_ioq (1..64)
 * Modes, by payload:
 *   0  rdma_cm connection request private data
 *   1  one capsule (64-byte SQE + in-capsule data) through the target's path:
 *      common checks, then the admin commands or the I/O checks
 *   2  u16 cm qid, u16 cm hsqsize, the Connect fields (8 bytes), then the
 *      1024 bytes of connect data: decode, Connect checks, controller and
 *      I/O queue attach
 *   3  an SGL descriptor (16 bytes)
 *   4  a CQE (16 bytes); the same bytes as the host reads the rest off the
 *      wire: rdma_cm reply and reject private data, Identify Controller,
 *      Identify Namespace and a discovery log entry (zero-padded to 4 KiB)
 *   5  DSM ranges (16 bytes each)
 *   6  a sequence of 64-byte admin SQEs on one controller
 *
 * Every verdict that has a simple definition (CM request, SGL, NQN) is
 * recomputed here from the bytes and must match; what is accepted must
 * respect the namespace and the limits, re-encode to the same bytes, and the
 * controller state must stay consistent (CSTS.RDY == CC.EN, granted queues
 * within max_ioq, held AERs within the limit). Data written for a command
 * goes into a buffer of exactly the SGL's length, so ASan catches an
 * overrun. Any failure aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvmf.h"
#include "nvmf_ctrl.h"
#include "zc_example.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                  \
	do {                                                                                         \
		if (!(cond)) {                                                                       \
			fprintf(stderr, "fuzz_nvmf: %s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                              \
			abort();                                                                     \
		}                                                                                    \
	} while (0)

#define PREFIX 8
#define NQN "nqn.2024-01.io.zcrdma:fuzz"
#define HOSTNQN "nqn.2014-08.org.nvmexpress:uuid:fuzz"
#define DATA_MAX (64 * 1024) /* the largest data buffer a command gets here */

enum { F_4K = 0x01, F_RO = 0x02, F_VWC = 0x04, F_ICD = 0x08, F_DISC = 0x10, F_ENABLED = 0x20, F_IOQ = 0x40 };

/* A status as the parsers return it: a known code, without DNR (nvmf_status() adds it). */
static void status_known(uint16_t st)
{
	CHECK((st & NVMF_DNR) == 0);
	CHECK(strcmp(nvmf_status_str(nvmf_status(st)), "unknown status") != 0);
}

static void ctrl_consistent(const struct nvmf_ctrl *c)
{
	CHECK(!!(c->csts & NVMF_CSTS_RDY) == !!(c->cc & NVMF_CC_EN));
	CHECK(c->nr_ioq <= c->ss->max_ioq);
	CHECK(c->aers <= NVMF_AERL);
	CHECK(!c->discovery || c->ioq_live == 0);
	CHECK(c->nr_ioq >= 64 || c->ioq_live >> c->nr_ioq == 0);
}

/* ---- mode 0: rdma_cm request --------------------------------------------- */

static int cm_spec(const uint8_t *p, size_t n, uint16_t max_qid, uint16_t max_qsize)
{
	uint16_t qid, hrq, hsq, limit;

	if (n < 32)
		return NVMF_CM_INVALID_LEN;
	if (zc_ex_get16(p))
		return NVMF_CM_INVALID_RECFMT;
	qid = zc_ex_get16(p + 2);
	hrq = zc_ex_get16(p + 4);
	hsq = zc_ex_get16(p + 6);
	if (qid > max_qid)
		return NVMF_CM_INVALID_QID;
	limit = qid ? max_qsize : 32;
	if (hsq == 0 || hsq + 1 > limit)
		return NVMF_CM_INVALID_HSQSIZE;
	if (hrq < hsq + 1 || hrq > limit)
		return NVMF_CM_INVALID_HRQSIZE;
	return NVMF_CM_OK;
}

static void cm_check(const struct nvmf_subsys *ss, const uint8_t *p, size_t n)
{
	struct nvmf_cm_req r, r2;
	uint8_t out[NVMF_CM_REQ_SIZE], rep[NVMF_CM_REP_SIZE];
	int st = nvmf_cm_req_decode(n ? p : NULL, n, ss->max_ioq, ss->max_qsize, &r);

	CHECK(st == cm_spec(p, n, ss->max_ioq, ss->max_qsize));
	CHECK(strcmp(nvmf_cm_status_str(st), "unknown reject reason") != 0);
	if (st != NVMF_CM_OK)
		return;
	CHECK(r.qid <= ss->max_ioq && r.hsqsize >= 1 && r.hrqsize > r.hsqsize);
	nvmf_cm_req_encode(&r, out);
	CHECK(memcmp(out, p, 8) == 0);
	CHECK(nvmf_cm_req_decode(out, sizeof(out), ss->max_ioq, ss->max_qsize, &r2) == NVMF_CM_OK);
	CHECK(r2.qid == r.qid && r2.hrqsize == r.hrqsize && r2.hsqsize == r.hsqsize);
	nvmf_cm_rep_encode((uint16_t)(r.hsqsize + 1), rep);
	CHECK(nvmf_cm_rep_decode(rep, sizeof(rep)) == r.hsqsize + 1);
}

/* ---- mode 1 and 6: capsules ---------------------------------------------------- */

static void controller(struct nvmf_ctrl *c, const struct nvmf_subsys *ss, uint8_t flags)
{
	struct nvmf_connect cmd = {.sqsize = 31, .kato = 5000};
	struct nvmf_connect_data cd;

	memset(&cd, 0, sizeof(cd));
	strcpy(cd.subnqn, flags & F_DISC ? NVMF_DISCOVERY_NQN : NQN);
	strcpy(cd.hostnqn, HOSTNQN);
	cd.cntlid = NVMF_CNTLID_DYNAMIC;
	nvmf_ctrl_init(c, ss, 1, &cmd, &cd);
}

/* What the Linux host does after Connect: CC.EN = 1, then Number of Queues (not on discovery). */
static void enable(struct nvmf_ctrl *c)
{
	struct nvmf_sgl none = {0};
	struct nvmf_sqe s;
	uint64_t r;
	unsigned fx;

	memset(&s, 0, sizeof(s));
	s.opcode = NVMF_FABRICS;
	s.flags = NVMF_PSDT_SGL << 6;
	s.fctype = NVMF_FCT_PROP_SET;
	s.cdw11 = NVMF_PROP_CC;
	s.cdw12 = 0x00460001;
	CHECK(nvmf_admin_exec(c, &s, &none, NULL, &r, &fx) == 0);
	if (c->discovery)
		return;
	s.opcode = NVMF_ADM_SET_FEATURES;
	s.cdw10 = NVMF_FEAT_NUM_QUEUES;
	s.cdw11 = 0xfffe | 0xfffeu << 16;
	CHECK(nvmf_admin_exec(c, &s, &none, NULL, &r, &fx) == 0);
	CHECK(c->nr_ioq == c->ss->max_ioq);
}

static void admin_check(struct nvmf_ctrl *c, const struct nvmf_sqe *s, const struct nvmf_sgl *g)
{
	uint32_t cc = c->cc, csts = c->csts;
	uint16_t nr_ioq = c->nr_ioq;
	uint8_t *buf = NULL;
	uint64_t r = 0xdead;
	unsigned fx = ~0u;
	uint16_t st;

	if (nvmf_sqe_dir(s) != NVMF_DIR_NONE && g->len > DATA_MAX)
		return; /* the target refuses it before: longer than its buffers */
	if (nvmf_sqe_dir(s) == NVMF_DIR_FROM_CTRL) {
		buf = malloc(g->len ? g->len : 1);
		CHECK(buf);
	}
	st = nvmf_admin_exec(c, s, g, buf, &r, &fx);
	free(buf);
	status_known(st);
	CHECK((fx & ~(NVMF_FX_HOLD | NVMF_FX_RESET | NVMF_FX_SHUTDOWN)) == 0);
	if (st) {
		CHECK(fx == 0);
		CHECK(c->cc == cc && c->csts == csts && c->nr_ioq == nr_ioq);
	}
	if (fx & NVMF_FX_HOLD)
		CHECK(s->opcode == NVMF_ADM_ASYNC_EVENT);
	if (fx & NVMF_FX_RESET)
		CHECK((cc & NVMF_CC_EN) && !(c->cc & NVMF_CC_EN) && c->nr_ioq == 0);
	if (fx & NVMF_FX_SHUTDOWN)
		CHECK(NVMF_CC_SHN(c->cc) && (c->csts & NVMF_CSTS_SHST_MASK) == NVMF_CSTS_SHST_DONE);
	if (s->opcode != NVMF_FABRICS && st == 0)
		CHECK(csts & NVMF_CSTS_RDY); /* nothing but Fabrics commands before CC.EN */
	ctrl_consistent(c);
}

static void io_check(const struct nvmf_ctrl *c, const struct nvmf_sqe *s, const struct nvmf_sgl *g)
{
	const struct nvmf_ns *ns = &c->ss->ns;
	unsigned __int128 end, bytes = (unsigned __int128)ns->nblocks * ns->block_size;
	struct nvmf_io io;
	uint16_t st = nvmf_io_check(c, s, g, &io);

	status_known(st);
	if (st)
		return;
	CHECK(io.opcode == s->opcode);
	CHECK(s->nsid == NVMF_NSID || (s->opcode == NVMF_IO_FLUSH && s->nsid == NVMF_NSID_ALL));
	end = (unsigned __int128)io.offset + io.len;
	switch (s->opcode) {
	case NVMF_IO_READ:
	case NVMF_IO_WRITE:
		CHECK(io.len == g->len && io.len <= c->ss->max_xfer && io.len >= ns->block_size);
		CHECK(io.offset % ns->block_size == 0 && io.len % ns->block_size == 0 && end <= bytes);
		CHECK(s->opcode == NVMF_IO_READ || !ns->read_only);
		break;
	case NVMF_IO_WRITE_ZEROES:
		CHECK(!ns->read_only && io.len >= ns->block_size && end <= bytes);
		break;
	case NVMF_IO_DSM:
		CHECK(io.nr_ranges >= 1 && io.nr_ranges <= NVMF_DSM_MAX_RANGES);
		CHECK((uint64_t)io.nr_ranges * NVMF_DSM_RANGE_SIZE == io.len && io.len <= g->len);
		CHECK(!io.deallocate || !ns->read_only);
		break;
	case NVMF_IO_FLUSH:
		break;
	default:
		CHECK(0);
	}
}

static void capsule_check(struct nvmf_ctrl *c, uint8_t flags, const uint8_t *p, size_t n)
{
	uint32_t icd_max = flags & F_IOQ ? c->ss->icd_size : 0;
	struct nvmf_sqe s, s2;
	struct nvmf_sgl g;
	uint8_t out[NVMF_SQE_SIZE];
	size_t icd_len;
	uint16_t st;

	if (nvmf_sqe_decode(n ? p : NULL, n, &s)) {
		CHECK(n < NVMF_SQE_SIZE);
		return;
	}
	nvmf_sqe_encode(&s, out);
	CHECK(nvmf_sqe_decode(out, sizeof(out), &s2) == 0);
	CHECK(memcmp(&s, &s2, sizeof(s)) == 0 || s.opcode == NVMF_FABRICS);
	icd_len = n - NVMF_SQE_SIZE < icd_max ? n - NVMF_SQE_SIZE : icd_max;
	st = nvmf_sqe_data(&s, icd_max, icd_len, &g);
	status_known(st);
	if (st)
		return;
	CHECK((s.flags & 3) == 0 && s.flags >> 6 == NVMF_PSDT_SGL);
	if (g.type == NVMF_SGL_INCAPSULE) {
		CHECK(icd_max && nvmf_sqe_dir(&s) == NVMF_DIR_TO_CTRL);
		CHECK((unsigned __int128)g.addr + g.len <= icd_len);
	}
	if (flags & F_IOQ) {
		if (s.opcode != NVMF_FABRICS)
			io_check(c, &s, &g);
		return;
	}
	if (s.opcode == NVMF_FABRICS && s.fctype == NVMF_FCT_CONNECT)
		return; /* mode 2 */
	admin_check(c, &s, &g);
}

/* ---- mode 2: Connect ----------------------------------------------------------- */

static int nqn_spec(const uint8_t *f)
{
	size_t n = 0, i;

	while (n < 256 && f[n])
		n++;
	if (n < 5 || n > 223 || memcmp(f, "nqn.", 4) != 0)
		return 0;
	for (i = 0; i < n; i++)
		if (f[i] < 0x21 || f[i] > 0x7e)
			return 0;
	return 1;
}

static void connect_check(const struct nvmf_subsys *ss, const uint8_t *p, size_t n)
{
	struct nvmf_cm_req cm;
	struct nvmf_connect cmd;
	struct nvmf_connect_data cd, cd2;
	struct nvmf_ctrl c;
	uint8_t out[NVMF_CONNECT_DATA_SIZE];
	uint64_t r;
	uint16_t st;

	if (n < 12)
		return;
	memset(&cm, 0, sizeof(cm));
	cm.qid = zc_ex_get16(p);
	cm.hsqsize = zc_ex_get16(p + 2);
	cmd.recfmt = zc_ex_get16(p + 4);
	cmd.qid = zc_ex_get16(p + 6);
	cmd.sqsize = zc_ex_get16(p + 8);
	cmd.cattr = p[10];
	cmd.kato = p[11] * 1000u;
	p += 12;
	n -= 12;
	st = nvmf_connect_data_decode(p, n, &cd, &r);
	if (n != NVMF_CONNECT_DATA_SIZE) {
		CHECK(st == NVMF_SC_SGL_INVALID_DATA);
		return;
	}
	if (!nqn_spec(p + 256)) {
		CHECK(st == NVMF_SC_CONNECT_INVALID_PARAM && r == (256u | 1u << 16));
		return;
	}
	if (!nqn_spec(p + 512)) {
		CHECK(st == NVMF_SC_CONNECT_INVALID_PARAM && r == (512u | 1u << 16));
		return;
	}
	CHECK(st == 0 && r == 0);
	CHECK(cd.cntlid == zc_ex_get16(p + 16) && memcmp(cd.hostid, p, 16) == 0);
	nvmf_connect_data_encode(&cd, out);
	CHECK(nvmf_connect_data_decode(out, sizeof(out), &cd2, &r) == 0);
	CHECK(memcmp(&cd, &cd2, sizeof(cd)) == 0);

	st = nvmf_connect_check(ss, &cm, &cmd, &cd, &r);
	status_known(st);
	CHECK((st == NVMF_SC_CONNECT_INVALID_PARAM) == (r != 0));
	if (st)
		return;
	CHECK(cmd.recfmt == 0 && cmd.qid == cm.qid && cmd.sqsize >= 1 && cmd.sqsize <= cm.hsqsize);
	CHECK(!strcmp(cd.subnqn, ss->nqn) || (!strcmp(cd.subnqn, NVMF_DISCOVERY_NQN) && cmd.qid == 0));
	if (cmd.qid != 0)
		return;
	CHECK(cd.cntlid == NVMF_CNTLID_DYNAMIC);
	nvmf_ctrl_init(&c, ss, 9, &cmd, &cd);
	CHECK(c.kato == cmd.kato && c.csts == 0);
	/* I/O queues of the same host, before and after CC.EN and Number of Queues. */
	cmd.qid = 1;
	cd.cntlid = 9;
	CHECK(nvmf_ctrl_ioq_connect(&c, &cmd, &cd, &r) == NVMF_SC_CONNECT_INVALID_PARAM);
	enable(&c);
	st = nvmf_ctrl_ioq_connect(&c, &cmd, &cd, &r);
	CHECK((st == 0) == (!c.discovery && cmd.sqsize < ss->max_qsize));
	if (st == 0) {
		CHECK(r == 9 && c.ioq_live == 1);
		CHECK(nvmf_ctrl_ioq_connect(&c, &cmd, &cd, &r) == NVMF_SC_CONNECT_INVALID_PARAM);
		nvmf_ctrl_ioq_gone(&c, 1);
		CHECK(c.ioq_live == 0);
	}
	ctrl_consistent(&c);
}

/* ---- modes 3-5 ----------------------------------------------------------------- */

static void sgl_check(const uint8_t *p, size_t n)
{
	struct nvmf_sgl g;
	uint8_t d[NVMF_SGL_SIZE] = {0}, out[NVMF_SGL_SIZE];
	int valid;
	uint16_t st;

	memcpy(d, p, n < sizeof(d) ? n : sizeof(d));
	valid = d[15] == 0x40 || d[15] == 0x4f || d[15] == 0x01;
	st = nvmf_sgl_decode(d, &g);
	CHECK(valid ? st == 0 : st == NVMF_SC_SGL_INVALID_TYPE);
	if (!valid)
		return;
	CHECK(g.type == d[15] && g.addr == zc_ex_get64(d));
	CHECK(g.type == NVMF_SGL_INCAPSULE || g.len < 1u << 24);
	nvmf_sgl_encode(&g, out);
	CHECK(memcmp(out, d, g.type == NVMF_SGL_INCAPSULE ? 12 : sizeof(d)) == 0 && out[15] == d[15]);
}

static void cqe_check(const uint8_t *p, size_t n)
{
	struct nvmf_cqe c;
	uint8_t out[NVMF_CQE_SIZE];

	if (nvmf_cqe_decode(n ? p : NULL, n, &c)) {
		CHECK(n != NVMF_CQE_SIZE);
		return;
	}
	CHECK(c.status < 0x8000);
	nvmf_cqe_encode(&c, out);
	CHECK(memcmp(out, p, 14) == 0 && out[15] == p[15] && out[14] == (p[14] & 0xfe));
}

/* What the host (examples/blk/blk_initiator.c) takes off the wire besides CQEs. */
static void host_check(const uint8_t *p, size_t n)
{
	static uint8_t page[4096];
	struct nvmf_id_ctrl id;
	struct nvmf_id_ns ns;
	struct nvmf_disc_entry de;
	int v;

	v = nvmf_cm_rep_decode(n ? p : NULL, n);
	CHECK(v == (n >= NVMF_CM_REP_SIZE && zc_ex_get16(p) == 0 ? zc_ex_get16(p + 2) : -1));
	v = nvmf_cm_rej_decode(n ? p : NULL, n);
	CHECK(v == (n >= NVMF_CM_REJ_SIZE && zc_ex_get16(p) == 0 ? zc_ex_get16(p + 2) : -1));
	memset(page, 0, sizeof(page));
	memcpy(page, p, n < sizeof(page) ? n : sizeof(page));
	if (nvmf_id_ctrl_decode(page, &id) == 0)
		CHECK(id.icdoff == 0 && id.ioccsz >= 4 && id.ioccsz <= (1u << 20) / 16 && id.iorcsz >= 1 &&
		      (id.sgls & NVMF_SGLS_KEYED) && nvmf_nqn_valid(id.subnqn));
	if (nvmf_id_ns_decode(page, &ns) == 0)
		CHECK(ns.block_size >= 512 && ns.block_size <= 4096 && !(ns.block_size & (ns.block_size - 1)));
	if (nvmf_disc_entry_decode(page, &de) == 0)
		CHECK(nvmf_nqn_valid(de.subnqn) && strlen(de.traddr) <= 256 && strlen(de.trsvcid) <= 32);
	(void)nvmf_disc_numrec(page);
}

static void dsm_check(const struct nvmf_ns *ns, const uint8_t *p, size_t n)
{
	struct nvmf_dsm_range r;
	uint64_t off, len;
	uint8_t out[NVMF_DSM_RANGE_SIZE];

	for (; n >= NVMF_DSM_RANGE_SIZE; p += NVMF_DSM_RANGE_SIZE, n -= NVMF_DSM_RANGE_SIZE) {
		nvmf_dsm_range_decode(p, &r);
		nvmf_dsm_range_encode(&r, out);
		CHECK(memcmp(out, p, sizeof(out)) == 0);
		if (nvmf_dsm_range_check(ns, &r, &off, &len) != 0) {
			CHECK(r.nlb && (unsigned __int128)r.slba + r.nlb > ns->nblocks);
			continue;
		}
		CHECK(r.nlb == 0 || (unsigned __int128)r.slba + r.nlb <= ns->nblocks);
		CHECK(r.nlb == 0 || (unsigned __int128)off + len <= (unsigned __int128)ns->nblocks * ns->block_size);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct nvmf_subsys ss;
	struct nvmf_ctrl c;
	const uint8_t *p = data + PREFIX;
	uint8_t flags;
	size_t n;

	if (size < PREFIX)
		return 0;
	n = size - PREFIX;
	flags = data[1];
	CHECK(nvmf_subsys_init(&ss, NQN, flags & F_4K ? 4096 : 512, zc_ex_get32(data + 2)) == 0);
	ss.ns.read_only = !!(flags & F_RO);
	ss.vwc = !!(flags & F_VWC);
	ss.icd_size = flags & F_ICD ? 4096 : 0;
	ss.max_qsize = data[6] < 2 ? 2 : data[6];
	ss.max_ioq = (uint16_t)(data[7] % NVMF_MAX_IOQ + 1);
	strcpy(ss.traddr, "192.168.77.1");
	strcpy(ss.trsvcid, "4420");
	switch (data[0] % 7) {
	case 0:
		cm_check(&ss, p, n);
		break;
	case 1:
		controller(&c, &ss, flags);
		if (flags & F_ENABLED)
			enable(&c);
		capsule_check(&c, flags, p, n);
		break;
	case 2:
		connect_check(&ss, p, n);
		break;
	case 3:
		sgl_check(p, n);
		break;
	case 4:
		cqe_check(p, n);
		host_check(p, n);
		break;
	case 5:
		dsm_check(&ss.ns, p, n);
		break;
	case 6:
		controller(&c, &ss, flags);
		if (flags & F_ENABLED)
			enable(&c);
		for (; n >= NVMF_SQE_SIZE; p += NVMF_SQE_SIZE, n -= NVMF_SQE_SIZE)
			capsule_check(&c, flags & ~F_IOQ, p, NVMF_SQE_SIZE);
		break;
	}
	return 0;
}
