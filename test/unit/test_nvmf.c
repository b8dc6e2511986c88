/* NVMe over Fabrics (examples/blk/nvmf.c, nvmf_ctrl.c): the wire formats and
 * the controller logic, driven the way the Linux host drives a target. Pure
 * logic, no RDMA. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nvmf.h"
#include "nvmf_ctrl.h"
#include "zc_example.h"

#define NQN "nqn.2024-01.io.zcrdma:test"
#define HOSTNQN "nqn.2014-08.org.nvmexpress:uuid:0f0e0d0c-0b0a-0908-0706-050403020100"

static struct nvmf_subsys ss;
static uint8_t data[8192];

static void setup(void)
{
	ck_assert_int_eq(nvmf_subsys_init(&ss, NQN, 4096, 1000), 0);
	strcpy(ss.traddr, "192.168.77.1");
	strcpy(ss.trsvcid, "4420");
	memset(data, 0xee, sizeof(data));
}

static struct nvmf_sqe sqe_of(uint8_t opcode, uint16_t cid)
{
	struct nvmf_sqe s;

	memset(&s, 0, sizeof(s));
	s.opcode = opcode;
	s.flags = NVMF_PSDT_SGL << 6;
	s.cid = cid;
	return s;
}

static struct nvmf_sgl keyed(uint32_t len)
{
	struct nvmf_sgl g = {.type = NVMF_SGL_KEYED_INV, .addr = 0x1000, .len = len, .key = 0x1234};

	return g;
}

static struct nvmf_connect_data cdata(const char *subnqn, uint16_t cntlid)
{
	struct nvmf_connect_data cd;

	memset(&cd, 0, sizeof(cd));
	memset(cd.hostid, 0x11, sizeof(cd.hostid));
	cd.cntlid = cntlid;
	strcpy(cd.subnqn, subnqn);
	strcpy(cd.hostnqn, HOSTNQN);
	return cd;
}

/* An admin command through the controller; returns the status. */
static uint16_t admin(struct nvmf_ctrl *c, const struct nvmf_sqe *s, uint32_t len, uint64_t *result, unsigned *fx)
{
	struct nvmf_sgl g = keyed(len);
	uint64_t r;
	unsigned f;

	return nvmf_admin_exec(c, s, &g, data, result ? result : &r, fx ? fx : &f);
}

static uint16_t prop_get(struct nvmf_ctrl *c, uint32_t offset, int size, uint64_t *value)
{
	struct nvmf_sqe s = sqe_of(NVMF_FABRICS, 1);

	s.fctype = NVMF_FCT_PROP_GET;
	s.cdw10 = size == 8 ? 1 : 0;
	s.cdw11 = offset;
	return admin(c, &s, 0, value, NULL);
}

static uint16_t prop_set(struct nvmf_ctrl *c, uint32_t offset, uint32_t value, unsigned *fx)
{
	struct nvmf_sqe s = sqe_of(NVMF_FABRICS, 1);

	s.fctype = NVMF_FCT_PROP_SET;
	s.cdw11 = offset;
	s.cdw12 = value;
	return admin(c, &s, 0, NULL, fx);
}

#define CC_LINUX 0x00460001u /* IOCQES 4, IOSQES 6, EN: what the Linux host writes */

/* A controller as the Linux host leaves it after Connect and CC.EN = 1. */
static void enabled_ctrl(struct nvmf_ctrl *c, const char *subnqn)
{
	struct nvmf_connect cmd = {.qid = 0, .sqsize = 31, .kato = 5000};
	struct nvmf_connect_data cd = cdata(subnqn, NVMF_CNTLID_DYNAMIC);

	nvmf_ctrl_init(c, &ss, 42, &cmd, &cd);
	ck_assert_uint_eq(prop_set(c, NVMF_PROP_CC, CC_LINUX, NULL), 0);
}

static uint16_t identify(struct nvmf_ctrl *c, uint8_t cns, uint32_t nsid)
{
	struct nvmf_sqe s = sqe_of(NVMF_ADM_IDENTIFY, 2);

	s.cdw10 = cns;
	s.nsid = nsid;
	return admin(c, &s, NVMF_IDENTIFY_SIZE, NULL, NULL);
}

static uint16_t get_log(struct nvmf_ctrl *c, uint8_t lid, uint32_t len, uint64_t off)
{
	struct nvmf_sqe s = sqe_of(NVMF_ADM_GET_LOG_PAGE, 3);
	uint32_t numd = len / 4 - 1;

	s.cdw10 = lid | (numd & 0xffff) << 16;
	s.cdw11 = numd >> 16;
	s.cdw12 = (uint32_t)off;
	s.cdw13 = (uint32_t)(off >> 32);
	return admin(c, &s, len, NULL, NULL);
}

static uint16_t set_feature(struct nvmf_ctrl *c, uint32_t cdw10, uint32_t cdw11, uint64_t *result)
{
	struct nvmf_sqe s = sqe_of(NVMF_ADM_SET_FEATURES, 4);

	s.cdw10 = cdw10;
	s.cdw11 = cdw11;
	return admin(c, &s, 0, result, NULL);
}

/* ---- rdma_cm private data ------------------------------------------------ */

START_TEST(test_cm_req_linux_admin_and_io_queues_are_accepted)
{
	struct nvmf_cm_req in = {.qid = 0, .hrqsize = 32, .hsqsize = 31}, out;
	uint8_t buf[56] = {0}; /* rdma_cm pads the private data to 56 bytes */

	nvmf_cm_req_encode(&in, buf);
	ck_assert_int_eq(nvmf_cm_req_decode(buf, sizeof(buf), 8, 128, &out), NVMF_CM_OK);
	ck_assert_uint_eq(out.qid, 0);
	ck_assert_uint_eq(out.hrqsize, 32);
	ck_assert_uint_eq(out.hsqsize, 31);
	in = (struct nvmf_cm_req){.qid = 8, .hrqsize = 128, .hsqsize = 127};
	nvmf_cm_req_encode(&in, buf);
	ck_assert_uint_eq(buf[2], 8);
	ck_assert_uint_eq(buf[4], 128);
	ck_assert_int_eq(nvmf_cm_req_decode(buf, NVMF_CM_REQ_SIZE, 8, 128, &out), NVMF_CM_OK);
	ck_assert_uint_eq(out.qid, 8);
}
END_TEST

START_TEST(test_cm_req_rejects_each_bad_field_with_its_reason)
{
	struct nvmf_cm_req r;
	uint8_t buf[NVMF_CM_REQ_SIZE];

	nvmf_cm_req_encode(&(struct nvmf_cm_req){.qid = 1, .hrqsize = 32, .hsqsize = 31}, buf);
	ck_assert_int_eq(nvmf_cm_req_decode(buf, 31, 8, 128, &r), NVMF_CM_INVALID_LEN);
	ck_assert_int_eq(nvmf_cm_req_decode(NULL, 0, 8, 128, &r), NVMF_CM_INVALID_LEN);
	buf[0] = 1;
	ck_assert_int_eq(nvmf_cm_req_decode(buf, sizeof(buf), 8, 128, &r), NVMF_CM_INVALID_RECFMT);
	buf[0] = 0;
	ck_assert_int_eq(nvmf_cm_req_decode(buf, sizeof(buf), 0, 128, &r), NVMF_CM_INVALID_QID);
	/* The admin queue holds at most 32 entries, whatever the I/O limit. */
	nvmf_cm_req_encode(&(struct nvmf_cm_req){.qid = 0, .hrqsize = 33, .hsqsize = 32}, buf);
	ck_assert_int_eq(nvmf_cm_req_decode(buf, sizeof(buf), 8, 128, &r), NVMF_CM_INVALID_HSQSIZE);
	nvmf_cm_req_encode(&(struct nvmf_cm_req){.qid = 1, .hrqsize = 129, .hsqsize = 128}, buf);
	ck_assert_int_eq(nvmf_cm_req_decode(buf, sizeof(buf), 8, 128, &r), NVMF_CM_INVALID_HSQSIZE);
	nvmf_cm_req_encode(&(struct nvmf_cm_req){.qid = 1, .hrqsize = 1, .hsqsize = 0}, buf);
	ck_assert_int_eq(nvmf_cm_req_decode(buf, sizeof(buf), 8, 128, &r), NVMF_CM_INVALID_HSQSIZE);
	/* Fewer receive entries than commands: the host could not take every CQE. */
	nvmf_cm_req_encode(&(struct nvmf_cm_req){.qid = 1, .hrqsize = 63, .hsqsize = 63}, buf);
	ck_assert_int_eq(nvmf_cm_req_decode(buf, sizeof(buf), 8, 128, &r), NVMF_CM_INVALID_HRQSIZE);
	ck_assert_str_eq(nvmf_cm_status_str(NVMF_CM_INVALID_HRQSIZE), "invalid host receive queue size");
}
END_TEST

START_TEST(test_cm_rep_and_rej_layouts)
{
	uint8_t rep[NVMF_CM_REP_SIZE], rej[NVMF_CM_REJ_SIZE];

	nvmf_cm_rep_encode(128, rep);
	ck_assert_uint_eq(rep[0] | rep[1], 0);
	ck_assert_uint_eq(rep[2], 128);
	ck_assert_uint_eq(rep[3], 0);
	ck_assert_int_eq(nvmf_cm_rep_decode(rep, sizeof(rep)), 128);
	ck_assert_int_eq(nvmf_cm_rep_decode(rep, 31), -1);
	nvmf_cm_rej_encode(NVMF_CM_INVALID_QID, rej);
	ck_assert_uint_eq(rej[0] | rej[1] | rej[3], 0);
	ck_assert_uint_eq(rej[2], NVMF_CM_INVALID_QID);
}
END_TEST

/* ---- SGL, SQE, CQE ----------------------------------------------------------- */

START_TEST(test_sgl_keyed_has_24_bit_length_and_32_bit_key)
{
	struct nvmf_sgl in = {.type = NVMF_SGL_KEYED_INV, .addr = 0x0102030405060708ull, .len = 0xabcdef, .key = 0x11223344},
			out;
	uint8_t d[NVMF_SGL_SIZE];

	nvmf_sgl_encode(&in, d);
	ck_assert_uint_eq(d[0], 0x08);
	ck_assert_uint_eq(d[8], 0xef);
	ck_assert_uint_eq(d[10], 0xab);
	ck_assert_uint_eq(d[11], 0x44);
	ck_assert_uint_eq(d[15], 0x4f);
	ck_assert_uint_eq(nvmf_sgl_decode(d, &out), 0);
	ck_assert_uint_eq(out.addr, in.addr);
	ck_assert_uint_eq(out.len, in.len);
	ck_assert_uint_eq(out.key, in.key);
	d[15] = NVMF_SGL_KEYED;
	ck_assert_uint_eq(nvmf_sgl_decode(d, &out), 0);
	ck_assert_uint_eq(out.type, NVMF_SGL_KEYED);
}
END_TEST

START_TEST(test_sgl_unknown_types_are_invalid_in_capsule_reserved_ignored)
{
	struct nvmf_sgl in = {.type = NVMF_SGL_INCAPSULE, .addr = 0, .len = 4096}, out;
	uint8_t d[NVMF_SGL_SIZE];
	unsigned t;

	nvmf_sgl_encode(&in, d);
	ck_assert_uint_eq(nvmf_sgl_decode(d, &out), 0);
	ck_assert_uint_eq(out.len, 4096);
	/* What Linux leaves there from the previous keyed SGL (the key's upper bytes). */
	d[12] = 0x12;
	d[13] = 0x34;
	d[14] = 0x56;
	ck_assert_uint_eq(nvmf_sgl_decode(d, &out), 0);
	ck_assert_uint_eq(out.len, 4096);
	for (t = 0; t < 256; t++) {
		d[15] = (uint8_t)t;
		if (t != 0x01 && t != 0x40 && t != 0x4f)
			ck_assert_uint_eq(nvmf_sgl_decode(d, &out), NVMF_SC_SGL_INVALID_TYPE);
	}
}
END_TEST

START_TEST(test_sqe_decode_reads_every_field_and_rejects_short_capsules)
{
	struct nvmf_sqe in = sqe_of(NVMF_IO_WRITE, 0xbeef), out;
	uint8_t buf[NVMF_SQE_SIZE];

	in.nsid = 1;
	in.cdw10 = 10;
	in.cdw11 = 11;
	in.cdw12 = 12;
	in.cdw13 = 13;
	in.cdw14 = 14;
	in.cdw15 = 15;
	nvmf_sgl_encode(&(struct nvmf_sgl){.type = NVMF_SGL_KEYED, .addr = 7, .len = 512, .key = 9}, in.dptr);
	nvmf_sqe_encode(&in, buf);
	ck_assert_uint_eq(buf[1], 0x40);
	ck_assert_uint_eq(buf[2], 0xef);
	ck_assert_uint_eq(buf[40], 10);
	ck_assert_uint_eq(buf[60], 15);
	ck_assert_int_eq(nvmf_sqe_decode(buf, sizeof(buf), &out), 0);
	ck_assert_mem_eq(&in.dptr, &out.dptr, NVMF_SGL_SIZE);
	ck_assert_uint_eq(out.cid, 0xbeef);
	ck_assert_uint_eq(out.nsid, 1);
	ck_assert_uint_eq(out.cdw15, 15);
	ck_assert_int_eq(nvmf_sqe_decode(buf, 63, &out), -1);
}
END_TEST

START_TEST(test_sqe_data_checks_psdt_fuse_and_in_capsule_bounds)
{
	struct nvmf_sqe s = sqe_of(NVMF_IO_WRITE, 1);
	struct nvmf_sgl g;

	nvmf_sgl_encode(&(struct nvmf_sgl){.type = NVMF_SGL_INCAPSULE, .addr = 0, .len = 4096}, s.dptr);
	ck_assert_uint_eq(nvmf_sqe_data(&s, 4096, 4096, &g), 0);
	ck_assert_uint_eq(g.len, 4096);
	ck_assert_uint_eq(nvmf_sqe_data(&s, 4096, 4095, &g), NVMF_SC_SGL_INVALID_DATA);
	ck_assert_uint_eq(nvmf_sqe_data(&s, 0, 4096, &g), NVMF_SC_SGL_INVALID_TYPE); /* the admin queue */
	nvmf_sgl_encode(&(struct nvmf_sgl){.type = NVMF_SGL_INCAPSULE, .addr = 5000, .len = 0}, s.dptr);
	ck_assert_uint_eq(nvmf_sqe_data(&s, 4096, 4096, &g), NVMF_SC_SGL_INVALID_OFFSET);
	s.opcode = NVMF_IO_READ; /* in-capsule data only goes towards the target */
	nvmf_sgl_encode(&(struct nvmf_sgl){.type = NVMF_SGL_INCAPSULE, .addr = 0, .len = 512}, s.dptr);
	ck_assert_uint_eq(nvmf_sqe_data(&s, 4096, 4096, &g), NVMF_SC_SGL_INVALID_TYPE);
	s.flags = 0; /* PRP */
	ck_assert_uint_eq(nvmf_sqe_data(&s, 4096, 4096, &g), NVMF_SC_INVALID_FIELD);
	s.flags = 0x41; /* fused */
	ck_assert_uint_eq(nvmf_sqe_data(&s, 4096, 4096, &g), NVMF_SC_INVALID_FIELD);
	/* A command without data: its data pointer is not looked at. */
	s = sqe_of(NVMF_ADM_KEEP_ALIVE, 1);
	memset(s.dptr, 0xff, sizeof(s.dptr));
	ck_assert_uint_eq(nvmf_sqe_data(&s, 0, 0, &g), 0);
	ck_assert_uint_eq(g.len, 0);
	/* Fabrics: the direction is the fctype's. */
	s = sqe_of(NVMF_FABRICS, 1);
	s.fctype = NVMF_FCT_CONNECT;
	ck_assert_int_eq(nvmf_sqe_dir(&s), NVMF_DIR_TO_CTRL);
	s.fctype = NVMF_FCT_PROP_GET;
	ck_assert_int_eq(nvmf_sqe_dir(&s), NVMF_DIR_NONE);
}
END_TEST

START_TEST(test_cqe_status_is_shifted_past_the_phase_bit_and_cid_echoed)
{
	struct nvmf_cqe in = {.result = 0x1122334455667788ull, .sq_head = 7, .sq_id = 3, .cid = 0xa55a,
			      .status = nvmf_status(NVMF_SC_LBA_RANGE)},
			out;
	uint8_t buf[NVMF_CQE_SIZE];

	nvmf_cqe_encode(&in, buf);
	ck_assert_uint_eq(buf[0], 0x88);
	ck_assert_uint_eq(buf[8], 7);
	ck_assert_uint_eq(buf[10], 3);
	ck_assert_uint_eq(buf[12], 0x5a);
	ck_assert_uint_eq(zc_ex_get16(buf + 14), (0x4000 | 0x80) << 1);
	ck_assert_int_eq(nvmf_cqe_decode(buf, sizeof(buf), &out), 0);
	ck_assert_uint_eq(out.status, in.status);
	ck_assert_uint_eq(out.cid, in.cid);
	ck_assert_uint_eq(out.result, in.result);
	ck_assert_int_eq(nvmf_cqe_decode(buf, 15, &out), -1);
	ck_assert_uint_eq(nvmf_status(NVMF_SC_SUCCESS), 0);
	ck_assert_str_eq(nvmf_status_str(nvmf_status(NVMF_SC_LBA_RANGE)), "LBA out of range");
}
END_TEST

/* ---- Connect ---------------------------------------------------------------- */

START_TEST(test_connect_data_roundtrip_and_nqn_errors_name_the_field)
{
	struct nvmf_connect_data in = cdata(NQN, 0xffff), out;
	uint8_t buf[NVMF_CONNECT_DATA_SIZE];
	uint64_t result;

	nvmf_connect_data_encode(&in, buf);
	ck_assert_uint_eq(nvmf_connect_data_decode(buf, sizeof(buf), &out, &result), 0);
	ck_assert_str_eq(out.subnqn, NQN);
	ck_assert_str_eq(out.hostnqn, HOSTNQN);
	ck_assert_uint_eq(out.cntlid, 0xffff);
	ck_assert_mem_eq(out.hostid, in.hostid, 16);
	ck_assert_uint_eq(nvmf_connect_data_decode(buf, 1023, &out, &result), NVMF_SC_SGL_INVALID_DATA);
	memset(buf + 256, 'n', 256); /* no NUL within the field */
	ck_assert_uint_eq(nvmf_connect_data_decode(buf, sizeof(buf), &out, &result), NVMF_SC_CONNECT_INVALID_PARAM);
	ck_assert_uint_eq(result, 256u | 1u << 16);
	nvmf_connect_data_encode(&in, buf);
	memcpy(buf + 512, "iqn.x", 6);
	ck_assert_uint_eq(nvmf_connect_data_decode(buf, sizeof(buf), &out, &result), NVMF_SC_CONNECT_INVALID_PARAM);
	ck_assert_uint_eq(result, 512u | 1u << 16);
	ck_assert(!nvmf_nqn_valid("nqn."));
	ck_assert(!nvmf_nqn_valid("nqn.a b"));
	ck_assert(nvmf_nqn_valid(NVMF_DISCOVERY_NQN));
}
END_TEST

START_TEST(test_connect_check_names_the_invalid_parameter)
{
	struct nvmf_cm_req cm = {.qid = 0, .hrqsize = 32, .hsqsize = 31};
	struct nvmf_connect cmd = {.qid = 0, .sqsize = 31, .kato = 5000};
	struct nvmf_connect_data cd = cdata(NQN, NVMF_CNTLID_DYNAMIC);
	uint64_t r;

	ck_assert_uint_eq(nvmf_connect_check(&ss, &cm, &cmd, &cd, &r), 0);
	cmd.recfmt = 1;
	ck_assert_uint_eq(nvmf_connect_check(&ss, &cm, &cmd, &cd, &r), NVMF_SC_CONNECT_FORMAT);
	cmd.recfmt = 0;
	cmd.qid = 1;
	ck_assert_uint_eq(nvmf_connect_check(&ss, &cm, &cmd, &cd, &r), NVMF_SC_CONNECT_INVALID_PARAM);
	ck_assert_uint_eq(r, 42);
	cmd.qid = 0;
	cmd.sqsize = 32; /* more than the queue was sized for */
	ck_assert_uint_eq(nvmf_connect_check(&ss, &cm, &cmd, &cd, &r), NVMF_SC_CONNECT_INVALID_PARAM);
	ck_assert_uint_eq(r, 44);
	cmd.sqsize = 0;
	ck_assert_uint_eq(nvmf_connect_check(&ss, &cm, &cmd, &cd, &r), NVMF_SC_CONNECT_INVALID_PARAM);
	cmd.sqsize = 31;
	cd.cntlid = 5; /* a static controller: we only have dynamic ones */
	ck_assert_uint_eq(nvmf_connect_check(&ss, &cm, &cmd, &cd, &r), NVMF_SC_CONNECT_INVALID_PARAM);
	ck_assert_uint_eq(r, 16u | 1u << 16);
	cd = cdata("nqn.2024-01.io.zcrdma:other", NVMF_CNTLID_DYNAMIC);
	ck_assert_uint_eq(nvmf_connect_check(&ss, &cm, &cmd, &cd, &r), NVMF_SC_CONNECT_INVALID_PARAM);
	ck_assert_uint_eq(r, 256u | 1u << 16);
	cd = cdata(NVMF_DISCOVERY_NQN, NVMF_CNTLID_DYNAMIC);
	ck_assert_uint_eq(nvmf_connect_check(&ss, &cm, &cmd, &cd, &r), 0);
	cm.qid = cmd.qid = 1; /* the discovery controller has no I/O queues */
	ck_assert_uint_eq(nvmf_connect_check(&ss, &cm, &cmd, &cd, &r), NVMF_SC_CONNECT_INVALID_PARAM);
	ck_assert_uint_eq(r, 256u | 1u << 16);
}
END_TEST

START_TEST(test_io_queue_connect_needs_enabled_ctrl_granted_qid_same_host)
{
	struct nvmf_ctrl c;
	struct nvmf_connect io = {.qid = 1, .sqsize = 127};
	struct nvmf_connect_data cd = cdata(NQN, 42);
	uint64_t r;

	enabled_ctrl(&c, NQN);
	/* No Set Features Number of Queues yet: no I/O queue. */
	ck_assert_uint_eq(nvmf_ctrl_ioq_connect(&c, &io, &cd, &r), NVMF_SC_CONNECT_INVALID_PARAM);
	ck_assert_uint_eq(r, 42);
	ck_assert_uint_eq(set_feature(&c, NVMF_FEAT_NUM_QUEUES, 1 | 1 << 16, &r), 0);
	ck_assert_uint_eq(r, 1 | 1 << 16);
	ck_assert_uint_eq(nvmf_ctrl_ioq_connect(&c, &io, &cd, &r), 0);
	ck_assert_uint_eq(r, 42);
	ck_assert_uint_eq(nvmf_ctrl_ioq_connect(&c, &io, &cd, &r), NVMF_SC_CONNECT_INVALID_PARAM); /* twice */
	io.qid = 3;
	ck_assert_uint_eq(nvmf_ctrl_ioq_connect(&c, &io, &cd, &r), NVMF_SC_CONNECT_INVALID_PARAM); /* not granted */
	io.qid = 2;
	io.sqsize = 128;
	ck_assert_uint_eq(nvmf_ctrl_ioq_connect(&c, &io, &cd, &r), NVMF_SC_CONNECT_INVALID_PARAM);
	ck_assert_uint_eq(r, 44);
	io.sqsize = 127;
	strcpy(cd.hostnqn, "nqn.2024-01.io.zcrdma:intruder");
	ck_assert_uint_eq(nvmf_ctrl_ioq_connect(&c, &io, &cd, &r), NVMF_SC_CONNECT_INVALID_PARAM);
	ck_assert_uint_eq(r, 512u | 1u << 16);
	/* Queues are live: the number of queues is fixed. */
	ck_assert_uint_eq(set_feature(&c, NVMF_FEAT_NUM_QUEUES, 7 | 7 << 16, &r), NVMF_SC_CMD_SEQ_ERROR);
	nvmf_ctrl_ioq_gone(&c, 1);
	io.qid = 1;
	cd = cdata(NQN, 42);
	ck_assert_uint_eq(nvmf_ctrl_ioq_connect(&c, &io, &cd, &r), 0);
}
END_TEST

/* ---- properties ------------------------------------------------------------------ */

START_TEST(test_cap_declares_queue_size_nvm_css_and_4k_pages)
{
	struct nvmf_ctrl c;
	struct nvmf_connect cmd = {.sqsize = 31};
	struct nvmf_connect_data cd = cdata(NQN, NVMF_CNTLID_DYNAMIC);
	uint64_t v;

	nvmf_ctrl_init(&c, &ss, 7, &cmd, &cd);
	ck_assert_uint_eq(prop_get(&c, NVMF_PROP_CAP, 8, &v), 0);
	ck_assert_uint_eq(v & 0xffff, 127);      /* MQES */
	ck_assert_uint_eq(v >> 16 & 1, 1);       /* CQR */
	ck_assert_uint_eq(v >> 37 & 1, 1);       /* CSS: NVM */
	ck_assert_uint_eq(v >> 43 & 1, 0);       /* not "I/O command sets" */
	ck_assert_uint_eq(v >> 48 & 0xff, 0);    /* MPSMIN = MPSMAX = 4 KiB */
	ck_assert_uint_eq(prop_get(&c, NVMF_PROP_CAP, 4, &v), NVMF_SC_INVALID_FIELD);
	ck_assert_uint_eq(prop_get(&c, NVMF_PROP_VS, 4, &v), 0);
	ck_assert_uint_eq(v, 0x10300);
	ck_assert_uint_eq(prop_get(&c, NVMF_PROP_VS, 8, &v), NVMF_SC_INVALID_FIELD);
	ck_assert_uint_eq(prop_get(&c, 0x24, 4, &v), NVMF_SC_INVALID_FIELD); /* AQA: not on fabrics */
	ck_assert_uint_eq(prop_set(&c, NVMF_PROP_CSTS, 1, NULL), NVMF_SC_INVALID_FIELD);
	ck_assert_uint_eq(prop_set(&c, NVMF_PROP_VS, 0, NULL), NVMF_SC_INVALID_FIELD);
}
END_TEST

START_TEST(test_cc_enable_sets_rdy_disable_resets_shutdown_completes)
{
	struct nvmf_ctrl c;
	struct nvmf_connect cmd = {.sqsize = 31};
	struct nvmf_connect_data cd = cdata(NQN, NVMF_CNTLID_DYNAMIC);
	unsigned fx;
	uint64_t v;

	nvmf_ctrl_init(&c, &ss, 7, &cmd, &cd);
	ck_assert_uint_eq(prop_get(&c, NVMF_PROP_CSTS, 4, &v), 0);
	ck_assert_uint_eq(v, 0);
	/* Commands other than Fabrics wait for CC.EN. */
	ck_assert_uint_eq(identify(&c, 1, 0), NVMF_SC_CMD_SEQ_ERROR);
	/* Only 64-byte SQEs, 16-byte CQEs, 4 KiB pages and the NVM command set. */
	ck_assert_uint_eq(prop_set(&c, NVMF_PROP_CC, 0x00450001, NULL), NVMF_SC_INVALID_FIELD);
	ck_assert_uint_eq(prop_set(&c, NVMF_PROP_CC, CC_LINUX | 1 << 7, NULL), NVMF_SC_INVALID_FIELD);
	ck_assert_uint_eq(prop_set(&c, NVMF_PROP_CC, CC_LINUX | 6 << 4, NULL), NVMF_SC_INVALID_FIELD);
	ck_assert_uint_eq(prop_set(&c, NVMF_PROP_CC, CC_LINUX, &fx), 0);
	ck_assert_uint_eq(fx, 0);
	ck_assert_uint_eq(prop_get(&c, NVMF_PROP_CSTS, 4, &v), 0);
	ck_assert_uint_eq(v, NVMF_CSTS_RDY);
	ck_assert_uint_eq(prop_get(&c, NVMF_PROP_CC, 4, &v), 0);
	ck_assert_uint_eq(v, CC_LINUX);
	ck_assert_uint_eq(identify(&c, 1, 0), 0);
	/* SHN = 01b (normal): shutdown complete, and the target must flush. */
	ck_assert_uint_eq(prop_set(&c, NVMF_PROP_CC, CC_LINUX | 1 << 14, &fx), 0);
	ck_assert_uint_eq(fx, NVMF_FX_SHUTDOWN);
	ck_assert_uint_eq(prop_get(&c, NVMF_PROP_CSTS, 4, &v), 0);
	ck_assert_uint_eq(v, NVMF_CSTS_RDY | NVMF_CSTS_SHST_DONE);
	ck_assert_uint_eq(prop_set(&c, NVMF_PROP_CC, CC_LINUX | 3 << 14, &fx), NVMF_SC_INVALID_FIELD);
	/* EN 1 -> 0: a reset, which takes the I/O queues down. */
	ck_assert_uint_eq(set_feature(&c, NVMF_FEAT_NUM_QUEUES, 0, &v), 0);
	ck_assert_uint_eq(prop_set(&c, NVMF_PROP_CC, CC_LINUX & ~1u, &fx), 0);
	ck_assert_uint_eq(fx, NVMF_FX_RESET);
	ck_assert_uint_eq(prop_get(&c, NVMF_PROP_CSTS, 4, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_uint_eq(c.nr_ioq, 0);
}
END_TEST

/* ---- Identify ------------------------------------------------------------------------ */

START_TEST(test_identify_ctrl_declares_what_linux_checks)
{
	struct nvmf_ctrl c;

	enabled_ctrl(&c, NQN);
	ck_assert_uint_eq(identify(&c, 1, 0), 0);
	ck_assert_uint_eq(zc_ex_get16(data + 78), 42);                   /* CNTLID: the Connect's */
	ck_assert_uint_eq(zc_ex_get32(data + 80), 0x10300);              /* VER */
	ck_assert_uint_eq(data[77], 5);                                  /* MDTS: 128 KiB */
	ck_assert_uint_eq(data[111], 1);                                 /* CNTRLTYPE: I/O */
	ck_assert_uint_ne(zc_ex_get16(data + 320), 0);                   /* KAS */
	ck_assert_uint_ge(zc_ex_get16(data + 514), 128);                 /* MAXCMD */
	ck_assert_uint_eq(zc_ex_get32(data + 516), 1);                   /* NN */
	ck_assert_uint_eq(zc_ex_get32(data + 536) & (1u << 2 | 1u << 20), 1u << 2 | 1u << 20); /* SGLS */
	ck_assert_str_eq((char *)data + 768, NQN);
	ck_assert_uint_eq(zc_ex_get32(data + 1792), (64 + 4096) / 16);   /* IOCCSZ */
	ck_assert_uint_eq(zc_ex_get32(data + 1796), 1);                  /* IORCSZ */
	ck_assert_uint_eq(zc_ex_get16(data + 1800), 0);                  /* ICDOFF */
	ck_assert_uint_eq(data[1803], 1);                                /* MSDBD */
	ck_assert_uint_eq(data[76] & 2, 2);                              /* CMIC: several hosts */
	ck_assert_mem_eq(data + 24, "zcrdma zc_blk_target    ", 24);     /* MN, space padded */
	ck_assert_uint_eq(data[4], 'z');
	ck_assert_uint_eq(zc_ex_get16(data + 520), 0xc);                 /* ONCS: DSM, Write Zeroes */
	/* A length that is not the structure's. */
	{
		struct nvmf_sqe s = sqe_of(NVMF_ADM_IDENTIFY, 2);

		s.cdw10 = 1;
		ck_assert_uint_eq(admin(&c, &s, 1024, NULL, NULL), NVMF_SC_SGL_INVALID_DATA);
	}
}
END_TEST

START_TEST(test_identify_ns_and_descriptors_agree_and_survive_a_restart)
{
	struct nvmf_ctrl c;
	struct nvmf_subsys again, other;
	uint8_t nguid[16], eui[8];

	enabled_ctrl(&c, NQN);
	ck_assert_uint_eq(identify(&c, 0, 1), 0);
	ck_assert_uint_eq(zc_ex_get64(data), 1000);         /* NSZE */
	ck_assert_uint_eq(zc_ex_get64(data + 8), 1000);     /* NCAP */
	ck_assert_uint_eq(data[25], 0);                     /* NLBAF */
	ck_assert_uint_eq(data[128 + 2], 12);               /* LBAF0: 4096-byte blocks */
	ck_assert_uint_eq(data[30], 1);                     /* NMIC */
	ck_assert_uint_eq(data[99], 0);                     /* not write protected */
	memcpy(nguid, data + 104, 16);
	memcpy(eui, data + 120, 8);
	ck_assert_mem_eq(nguid, ss.ns.nguid, 16);
	ck_assert_uint_eq(identify(&c, 3, 1), 0);
	ck_assert_uint_eq(data[0], 1);
	ck_assert_uint_eq(data[1], 8);
	ck_assert_mem_eq(data + 4, eui, 8);
	ck_assert_uint_eq(data[12], 2);
	ck_assert_uint_eq(data[13], 16);
	ck_assert_mem_eq(data + 16, nguid, 16);
	ck_assert_uint_eq(data[32], 3);
	ck_assert_uint_eq(data[36 + 6] >> 4, 8);            /* UUID version 8 */
	ck_assert_uint_eq(data[52], 4);                     /* CSI: NVM */
	ck_assert_uint_eq(data[56], 0);
	ck_assert_uint_eq(data[57], 0);                     /* end of the list */
	/* The same NQN gives the same identifiers; another NQN others. */
	ck_assert_int_eq(nvmf_subsys_init(&again, NQN, 512, 5), 0);
	ck_assert_mem_eq(again.ns.nguid, nguid, 16);
	ck_assert_mem_eq(again.ns.eui64, eui, 8);
	ck_assert_str_eq(again.serial, ss.serial);
	ck_assert_int_eq(nvmf_subsys_init(&other, "nqn.2024-01.io.zcrdma:other", 512, 5), 0);
	ck_assert(memcmp(other.ns.nguid, nguid, 16) != 0);
	ck_assert(memcmp(other.ns.uuid, ss.ns.uuid, 16) != 0);
}
END_TEST

START_TEST(test_identify_lists_and_bad_nsid_or_cns)
{
	struct nvmf_ctrl c;

	ss.ns.read_only = 1;
	enabled_ctrl(&c, NQN);
	ck_assert_uint_eq(identify(&c, 0, 1), 0);
	ck_assert_uint_eq(data[99], 1);
	ck_assert_uint_eq(identify(&c, 2, 0), 0);
	ck_assert_uint_eq(zc_ex_get32(data), 1);
	ck_assert_uint_eq(zc_ex_get32(data + 4), 0);
	ck_assert_uint_eq(identify(&c, 2, 1), 0); /* namespaces above 1: none */
	ck_assert_uint_eq(zc_ex_get32(data), 0);
	ck_assert_uint_eq(identify(&c, 2, 0xfffffffe), NVMF_SC_INVALID_NS);
	ck_assert_uint_eq(identify(&c, 0, 2), NVMF_SC_INVALID_NS);
	ck_assert_uint_eq(identify(&c, 0, 0xffffffff), NVMF_SC_INVALID_NS);
	ck_assert_uint_eq(identify(&c, 3, 0), NVMF_SC_INVALID_NS);
	ck_assert_uint_eq(identify(&c, 6, 0), 0);
	ck_assert_uint_eq(identify(&c, 0x10, 0), NVMF_SC_INVALID_FIELD);
}
END_TEST

/* ---- log pages, features, AER ------------------------------------------------------------ */

START_TEST(test_log_pages_lengths_offsets_and_unknown_ids)
{
	struct nvmf_ctrl c;

	enabled_ctrl(&c, NQN);
	ck_assert_uint_eq(get_log(&c, NVMF_LOG_SMART, 512, 0), 0);
	ck_assert_uint_eq(data[3], 100);
	ck_assert_uint_eq(get_log(&c, NVMF_LOG_ERROR, 64, 0), 0);
	ck_assert_uint_eq(get_log(&c, NVMF_LOG_FW_SLOT, 512, 0), 0);
	ck_assert_uint_eq(data[0], 1);
	ck_assert_uint_eq(data[8], '1');
	/* A part of the page, from an offset; beyond the page's end, zeros. */
	ck_assert_uint_eq(get_log(&c, NVMF_LOG_FW_SLOT, 8, 8), 0);
	ck_assert_uint_eq(data[0], '1');
	ck_assert_uint_eq(get_log(&c, NVMF_LOG_SMART, 1024, 0), 0);
	ck_assert_uint_eq(data[1000], 0);
	ck_assert_uint_eq(get_log(&c, NVMF_LOG_SMART, 512, 2), NVMF_SC_INVALID_FIELD);
	ck_assert_uint_eq(get_log(&c, NVMF_LOG_SMART, 4, 516), NVMF_SC_INVALID_FIELD);
	ck_assert_uint_eq(get_log(&c, NVMF_LOG_DISCOVERY, 1024, 0), NVMF_SC_INVALID_LOG_PAGE);
	ck_assert_uint_eq(get_log(&c, 0xc0, 512, 0), NVMF_SC_INVALID_LOG_PAGE);
	{
		struct nvmf_sqe s = sqe_of(NVMF_ADM_GET_LOG_PAGE, 3);

		s.cdw10 = NVMF_LOG_SMART | 127u << 16; /* 512 bytes asked, 256 described */
		ck_assert_uint_eq(admin(&c, &s, 256, NULL, NULL), NVMF_SC_SGL_INVALID_DATA);
	}
}
END_TEST

START_TEST(test_discovery_controller_lists_the_subsystem)
{
	struct nvmf_ctrl c;
	uint8_t *e = data + NVMF_DISC_ENTRY_SIZE;

	enabled_ctrl(&c, NVMF_DISCOVERY_NQN);
	ck_assert_int_eq(c.discovery, 1);
	ck_assert_uint_eq(identify(&c, 1, 0), 0);
	ck_assert_uint_eq(data[111], 2);                    /* CNTRLTYPE: discovery */
	ck_assert_uint_eq(zc_ex_get32(data + 516), 0);      /* no namespaces */
	ck_assert_str_eq((char *)data + 768, NVMF_DISCOVERY_NQN);
	ck_assert_uint_eq(identify(&c, 0, 1), NVMF_SC_INVALID_FIELD);
	ck_assert_uint_eq(get_log(&c, NVMF_LOG_DISCOVERY, 1024, 0), 0);
	ck_assert_uint_eq(zc_ex_get64(data + 8), 1);        /* NUMREC */
	ck_assert_uint_eq(get_log(&c, NVMF_LOG_DISCOVERY, 2048, 0), 0);
	ck_assert_uint_eq(e[0], 1);                         /* RDMA */
	ck_assert_uint_eq(e[1], 1);                         /* IPv4 */
	ck_assert_uint_eq(e[2], 2);                         /* an NVM subsystem */
	ck_assert_uint_eq(zc_ex_get16(e + 6), 0xffff);
	ck_assert_str_eq((char *)e + 32, "4420");
	ck_assert_str_eq((char *)e + 256, NQN);
	ck_assert_str_eq((char *)e + 512, "192.168.77.1");
	ck_assert_uint_eq(e[770], 1);                       /* rdma_cm */
	ck_assert_uint_eq(get_log(&c, NVMF_LOG_SMART, 512, 0), NVMF_SC_INVALID_LOG_PAGE);
	ck_assert_uint_eq(set_feature(&c, NVMF_FEAT_NUM_QUEUES, 0, NULL), NVMF_SC_INVALID_FIELD);
}
END_TEST

START_TEST(test_features_queues_kato_and_errors)
{
	struct nvmf_ctrl c;
	struct nvmf_sqe g = sqe_of(NVMF_ADM_GET_FEATURES, 5);
	uint64_t r;

	enabled_ctrl(&c, NQN);
	ck_assert_uint_eq(set_feature(&c, NVMF_FEAT_NUM_QUEUES, 63 | 63 << 16, &r), 0);
	ck_assert_uint_eq(r, 7 | 7 << 16); /* 8 granted, 0-based */
	ck_assert_uint_eq(c.nr_ioq, 8);
	ck_assert_uint_eq(set_feature(&c, NVMF_FEAT_NUM_QUEUES, 0xffff, &r), NVMF_SC_INVALID_FIELD);
	ck_assert_uint_eq(set_feature(&c, NVMF_FEAT_KATO, 10000, &r), 0);
	g.cdw10 = NVMF_FEAT_KATO;
	ck_assert_uint_eq(admin(&c, &g, 0, &r, NULL), 0);
	ck_assert_uint_eq(r, 10000);
	g.cdw10 = NVMF_FEAT_NUM_QUEUES | 3 << 8; /* supported capabilities */
	ck_assert_uint_eq(admin(&c, &g, 0, &r, NULL), 0);
	ck_assert_uint_eq(r, 4);
	g.cdw10 = NVMF_FEAT_KATO | 4 << 8;
	ck_assert_uint_eq(admin(&c, &g, 0, &r, NULL), NVMF_SC_INVALID_FIELD);
	ck_assert_uint_eq(set_feature(&c, NVMF_FEAT_KATO | 1u << 31, 1, &r), NVMF_SC_FEATURE_NOT_SAVEABLE);
	ck_assert_uint_eq(set_feature(&c, 0x02, 0, &r), NVMF_SC_INVALID_FIELD);
	ck_assert_uint_eq(set_feature(&c, NVMF_FEAT_VWC, 1, &r), NVMF_SC_INVALID_FIELD); /* no cache */
	ck_assert_uint_eq(set_feature(&c, NVMF_FEAT_ASYNC_EVENT, 0x100, &r), 0);
}
END_TEST

START_TEST(test_aer_held_up_to_the_limit_and_other_opcodes)
{
	struct nvmf_ctrl c;
	struct nvmf_sqe s = sqe_of(NVMF_ADM_ASYNC_EVENT, 9);
	unsigned fx, i;
	uint64_t r;

	enabled_ctrl(&c, NQN);
	for (i = 0; i < NVMF_AERL; i++) {
		ck_assert_uint_eq(admin(&c, &s, 0, NULL, &fx), 0);
		ck_assert_uint_eq(fx, NVMF_FX_HOLD);
	}
	ck_assert_uint_eq(admin(&c, &s, 0, NULL, &fx), NVMF_SC_AER_LIMIT);
	ck_assert_uint_eq(fx, 0);
	s.opcode = NVMF_ADM_KEEP_ALIVE;
	ck_assert_uint_eq(admin(&c, &s, 0, NULL, NULL), 0);
	s.opcode = NVMF_ADM_ABORT;
	ck_assert_uint_eq(admin(&c, &s, 0, &r, NULL), 0);
	ck_assert_uint_eq(r & 1, 1); /* not aborted */
	s.opcode = 0x01;             /* Create I/O SQ: not on fabrics */
	ck_assert_uint_eq(admin(&c, &s, 0, NULL, NULL), NVMF_SC_INVALID_OPCODE);
	s = sqe_of(NVMF_FABRICS, 1);
	s.fctype = 0x05;             /* authentication */
	ck_assert_uint_eq(admin(&c, &s, 0, NULL, NULL), NVMF_SC_INVALID_OPCODE);
	s.fctype = NVMF_FCT_CONNECT;
	ck_assert_uint_eq(admin(&c, &s, 0, NULL, NULL), NVMF_SC_CMD_SEQ_ERROR);
}
END_TEST

START_TEST(test_kato_deadline_rounds_up_to_the_granularity)
{
	struct nvmf_ctrl c;

	enabled_ctrl(&c, NQN);
	ck_assert_int_eq(nvmf_ctrl_kato_deadline(&c, 1000), 6000);
	c.kato = 4500;
	ck_assert_int_eq(nvmf_ctrl_kato_deadline(&c, 1000), 6000);
	c.kato = 0;
	ck_assert_int_eq(nvmf_ctrl_kato_deadline(&c, 1000), INT64_MAX);
}
END_TEST

/* ---- I/O commands ------------------------------------------------------------------------ */

static uint16_t io(struct nvmf_ctrl *c, uint8_t op, uint64_t slba, uint32_t nlb0, uint32_t sgl_len, struct nvmf_io *out)
{
	struct nvmf_sqe s = sqe_of(op, 11);
	struct nvmf_sgl g = keyed(sgl_len);

	s.nsid = 1;
	s.cdw10 = (uint32_t)slba;
	s.cdw11 = (uint32_t)(slba >> 32);
	s.cdw12 = nlb0;
	return nvmf_io_check(c, &s, &g, out);
}

START_TEST(test_read_write_range_size_and_length_checks)
{
	struct nvmf_ctrl c;
	struct nvmf_io x;

	enabled_ctrl(&c, NQN);
	ck_assert_uint_eq(io(&c, NVMF_IO_READ, 10, 1, 8192, &x), 0);
	ck_assert_uint_eq(x.offset, 10 * 4096);
	ck_assert_uint_eq(x.len, 8192);
	ck_assert_uint_eq(io(&c, NVMF_IO_WRITE, 999, 0, 4096, &x), 0);               /* the last block */
	ck_assert_uint_eq(io(&c, NVMF_IO_WRITE, 999, 1, 8192, &x), NVMF_SC_LBA_RANGE);
	ck_assert_uint_eq(io(&c, NVMF_IO_READ, 1000, 0, 4096, &x), NVMF_SC_LBA_RANGE);
	ck_assert_uint_eq(io(&c, NVMF_IO_READ, UINT64_MAX, 0xffff, 4096, &x), NVMF_SC_LBA_RANGE);
	ck_assert_uint_eq(io(&c, NVMF_IO_READ, 0, 31, 128 * 1024, &x), 0);           /* MDTS */
	ck_assert_uint_eq(io(&c, NVMF_IO_READ, 0, 32, 132 * 1024, &x), NVMF_SC_INVALID_FIELD);
	ck_assert_uint_eq(io(&c, NVMF_IO_READ, 0, 1, 4096, &x), NVMF_SC_SGL_INVALID_DATA);
	ck_assert_uint_eq(io(&c, NVMF_IO_READ, 0, 1, 3 * 4096, &x), NVMF_SC_SGL_INVALID_DATA);
	ck_assert_uint_eq(io(&c, NVMF_IO_WRITE, 0, 0 | 1u << 30, 4096, &x), 0);     /* FUA */
	ck_assert_uint_eq(x.fua, 1);
	ck_assert_uint_eq(io(&c, NVMF_IO_WRITE, 0, 0 | 1u << 26, 4096, &x), NVMF_SC_INVALID_FIELD); /* PRINFO */
	ck_assert_uint_eq(io(&c, 0x05, 0, 0, 4096, &x), NVMF_SC_INVALID_OPCODE);   /* Compare */
	ss.ns.read_only = 1;
	ck_assert_uint_eq(io(&c, NVMF_IO_WRITE, 0, 0, 4096, &x), NVMF_SC_NS_WRITE_PROTECTED);
	ck_assert_uint_eq(io(&c, NVMF_IO_WRITE_ZEROES, 0, 0, 0, &x), NVMF_SC_NS_WRITE_PROTECTED);
	ck_assert_uint_eq(io(&c, NVMF_IO_READ, 0, 0, 4096, &x), 0);
}
END_TEST

START_TEST(test_namespace_flush_write_zeroes_and_dsm)
{
	struct nvmf_ctrl c;
	struct nvmf_sqe s = sqe_of(NVMF_IO_FLUSH, 1);
	struct nvmf_sgl none = keyed(0), ranges = keyed(32);
	struct nvmf_dsm_range r = {.nlb = 8, .slba = 992}, back;
	uint8_t b[NVMF_DSM_RANGE_SIZE];
	uint64_t off, len;
	struct nvmf_io x;

	enabled_ctrl(&c, NQN);
	s.nsid = NVMF_NSID_ALL;
	ck_assert_uint_eq(nvmf_io_check(&c, &s, &none, &x), 0);
	s.nsid = 2;
	ck_assert_uint_eq(nvmf_io_check(&c, &s, &none, &x), NVMF_SC_INVALID_NS);
	s.opcode = NVMF_IO_READ;
	s.nsid = NVMF_NSID_ALL;
	ck_assert_uint_eq(nvmf_io_check(&c, &s, &none, &x), NVMF_SC_INVALID_NS);
	ck_assert_uint_eq(io(&c, NVMF_IO_WRITE_ZEROES, 100, 899, 0, &x), 0); /* not bound by MDTS */
	ck_assert_uint_eq(x.len, 900ull * 4096);
	ck_assert_uint_eq(io(&c, NVMF_IO_WRITE_ZEROES, 100, 1u << 25, 0, &x), 0);
	ck_assert_uint_eq(x.deallocate, 1);
	ck_assert_uint_eq(io(&c, NVMF_IO_WRITE_ZEROES, 1000, 0, 0, &x), NVMF_SC_LBA_RANGE);
	s = sqe_of(NVMF_IO_DSM, 1);
	s.nsid = 1;
	s.cdw10 = 1; /* 2 ranges */
	s.cdw11 = 1u << 2;
	ck_assert_uint_eq(nvmf_io_check(&c, &s, &ranges, &x), 0);
	ck_assert_uint_eq(x.nr_ranges, 2);
	ck_assert_uint_eq(x.deallocate, 1);
	s.cdw10 = 2; /* 3 ranges, 2 described */
	ck_assert_uint_eq(nvmf_io_check(&c, &s, &ranges, &x), NVMF_SC_SGL_INVALID_DATA);
	s.cdw10 = 0; /* Linux: one range in a 4096-byte buffer */
	ck_assert_uint_eq(nvmf_io_check(&c, &s, &(struct nvmf_sgl){.type = NVMF_SGL_INCAPSULE, .len = 4096}, &x), 0);
	ck_assert_uint_eq(x.len, 16);
	s.cdw11 = 1u << 3;
	ck_assert_uint_eq(nvmf_io_check(&c, &s, &ranges, &x), NVMF_SC_INVALID_FIELD);
	nvmf_dsm_range_encode(&r, b);
	nvmf_dsm_range_decode(b, &back);
	ck_assert_uint_eq(back.nlb, 8);
	ck_assert_uint_eq(back.slba, 992);
	ck_assert_uint_eq(nvmf_dsm_range_check(&ss.ns, &back, &off, &len), 0);
	ck_assert_uint_eq(off, 992 * 4096);
	ck_assert_uint_eq(len, 8 * 4096);
	back.nlb = 9;
	ck_assert_uint_eq(nvmf_dsm_range_check(&ss.ns, &back, &off, &len), NVMF_SC_LBA_RANGE);
}
END_TEST

/* ---- controller ids ---------------------------------------------------------------------- */

START_TEST(test_cntlids_start_at_the_seed_wrap_and_run_out)
{
	static struct nvmf_cntlids a;
	unsigned i;

	nvmf_cntlids_init(&a, 0);
	ck_assert_int_eq(nvmf_cntlid_alloc(&a), 1);
	nvmf_cntlids_init(&a, NVMF_CNTLID_MAX - 1);
	ck_assert_int_eq(nvmf_cntlid_alloc(&a), NVMF_CNTLID_MAX);
	ck_assert_int_eq(nvmf_cntlid_alloc(&a), 1);
	nvmf_cntlid_free(&a, NVMF_CNTLID_MAX);
	for (i = 2; i < NVMF_CNTLID_MAX; i++)
		ck_assert_int_eq(nvmf_cntlid_alloc(&a), (int)i);
	ck_assert_int_eq(nvmf_cntlid_alloc(&a), NVMF_CNTLID_MAX); /* freed, so it comes back */
	ck_assert_int_eq(nvmf_cntlid_alloc(&a), -1);
	nvmf_cntlid_free(&a, 77);
	ck_assert_int_eq(nvmf_cntlid_alloc(&a), 77);
	/* Two seeds (two runs of the target) give different first ids. */
	nvmf_cntlids_init(&a, 1000);
	i = (unsigned)nvmf_cntlid_alloc(&a);
	nvmf_cntlids_init(&a, 2000);
	ck_assert_int_ne(nvmf_cntlid_alloc(&a), (int)i);
}
END_TEST

/* ---- host side: what the host sends is what the target reads, what the target sends decodes ---- */

START_TEST(test_host_connect_and_property_commands_decode_as_sent)
{
	struct nvmf_connect c = {.qid = 3, .sqsize = 127, .cattr = 0, .kato = 5000}, d;
	struct nvmf_prop p = {.size = 8, .offset = NVMF_PROP_CAP}, q;
	struct nvmf_sqe s, back;
	uint8_t wire[NVMF_SQE_SIZE];

	nvmf_connect_encode(&c, 9, &s);
	nvmf_sqe_encode(&s, wire);
	ck_assert_int_eq(nvmf_sqe_decode(wire, sizeof(wire), &back), 0);
	ck_assert_uint_eq(back.opcode, NVMF_FABRICS);
	ck_assert_uint_eq(back.fctype, NVMF_FCT_CONNECT);
	ck_assert_uint_eq(back.cid, 9);
	ck_assert_uint_eq(back.flags >> 6, NVMF_PSDT_SGL);
	nvmf_connect_decode(&back, &d);
	ck_assert_uint_eq(d.recfmt, 0);
	ck_assert_uint_eq(d.qid, 3);
	ck_assert_uint_eq(d.sqsize, 127);
	ck_assert_uint_eq(d.kato, 5000);

	nvmf_prop_encode(&p, 0, 4, &s);
	nvmf_sqe_encode(&s, wire);
	nvmf_sqe_decode(wire, sizeof(wire), &back);
	ck_assert_uint_eq(back.fctype, NVMF_FCT_PROP_GET);
	nvmf_prop_decode(&back, &q);
	ck_assert_uint_eq(q.size, 8);
	ck_assert_uint_eq(q.offset, NVMF_PROP_CAP);
	p = (struct nvmf_prop){.size = 4, .offset = NVMF_PROP_CC, .value = CC_LINUX | 1u << 14};
	nvmf_prop_encode(&p, 1, 5, &s);
	nvmf_sqe_encode(&s, wire);
	nvmf_sqe_decode(wire, sizeof(wire), &back);
	ck_assert_uint_eq(back.fctype, NVMF_FCT_PROP_SET);
	nvmf_prop_decode(&back, &q);
	ck_assert_uint_eq(q.size, 4);
	ck_assert_uint_eq(q.value, CC_LINUX | 1u << 14);
}
END_TEST

START_TEST(test_host_read_write_commands_pass_the_target_checks)
{
	struct nvmf_ctrl c;
	struct nvmf_sqe s, back;
	struct nvmf_sgl g = {.type = NVMF_SGL_KEYED, .addr = 0x7f0000001000, .len = 3 * 4096, .key = 0xabcd}, got;
	struct nvmf_io io;
	uint8_t wire[NVMF_SQE_SIZE];

	enabled_ctrl(&c, NQN);
	nvmf_cmd_init(&s, NVMF_IO_READ, 17, NVMF_NSID);
	nvmf_rw_encode(&s, 997, 3);
	nvmf_sgl_encode(&g, s.dptr);
	nvmf_sqe_encode(&s, wire);
	nvmf_sqe_decode(wire, sizeof(wire), &back);
	ck_assert_uint_eq(nvmf_sqe_data(&back, 0, 0, &got), NVMF_SC_SUCCESS);
	ck_assert_uint_eq(got.key, 0xabcd);
	ck_assert_uint_eq(nvmf_io_check(&c, &back, &got, &io), NVMF_SC_SUCCESS);
	ck_assert_uint_eq(io.offset, 997 * 4096);
	ck_assert_uint_eq(io.len, 3 * 4096);
	/* One block further is past the end of the 1000-block namespace. */
	nvmf_rw_encode(&s, 998, 3);
	nvmf_sqe_encode(&s, wire);
	nvmf_sqe_decode(wire, sizeof(wire), &back);
	ck_assert_uint_eq(nvmf_io_check(&c, &back, &got, &io), NVMF_SC_LBA_RANGE);
	/* A command without data: the null keyed descriptor Linux sends, never looked at. */
	nvmf_cmd_init(&s, NVMF_IO_FLUSH, 18, NVMF_NSID);
	ck_assert_uint_eq(s.dptr[15], NVMF_SGL_KEYED);
	ck_assert_uint_eq(nvmf_sqe_data(&s, 0, 0, &got), NVMF_SC_SUCCESS);
	ck_assert_uint_eq(got.len, 0);
	/* Write with 65536 blocks: NLB 0xffff. */
	nvmf_cmd_init(&s, NVMF_IO_WRITE, 19, NVMF_NSID);
	nvmf_rw_encode(&s, 1ull << 33, 65536);
	ck_assert_uint_eq(s.cdw10, 0);
	ck_assert_uint_eq(s.cdw11, 2);
	ck_assert_uint_eq(s.cdw12, 0xffff);
}
END_TEST

START_TEST(test_host_identify_decoders_read_what_the_controller_declared)
{
	struct nvmf_id_ctrl id;
	struct nvmf_id_ns ns;
	struct nvmf_ctrl c;

	ss.ns.read_only = 1;
	enabled_ctrl(&c, NQN);
	ck_assert_uint_eq(identify(&c, 1, 0), 0);
	ck_assert_int_eq(nvmf_id_ctrl_decode(data, &id), 0);
	ck_assert_uint_eq(id.cntlid, 42);
	ck_assert_str_eq(id.subnqn, NQN);
	ck_assert_uint_eq(id.cntrltype, 1);
	ck_assert_uint_eq(id.ioccsz * 16, NVMF_SQE_SIZE + ss.icd_size);
	ck_assert_uint_eq(4096u << id.mdts, ss.max_xfer);
	ck_assert_uint_eq(id.maxcmd, ss.max_qsize);
	ck_assert(id.sgls & NVMF_SGLS_KEYED);
	ck_assert(id.sgls & NVMF_SGLS_OFFSET);
	ck_assert(id.oncs & 0x8); /* Write Zeroes */
	ck_assert_uint_eq(id.nn, 1);
	ck_assert_uint_eq(identify(&c, 0, NVMF_NSID), 0);
	ck_assert_int_eq(nvmf_id_ns_decode(data, &ns), 0);
	ck_assert_uint_eq(ns.nsze, 1000);
	ck_assert_uint_eq(ns.block_size, 4096);
	ck_assert_int_eq(ns.write_protected, 1);

	/* What a host cannot work with. */
	data[26] = 1; /* FLBAS: format 1, beyond NLBAF 0 */
	ck_assert_int_eq(nvmf_id_ns_decode(data, &ns), -1);
	data[26] = 0;
	data[128 + 2] = 8; /* 256-byte blocks */
	ck_assert_int_eq(nvmf_id_ns_decode(data, &ns), -1);
	data[128 + 2] = 12;
	data[128] = 8; /* 8 bytes of metadata per block */
	ck_assert_int_eq(nvmf_id_ns_decode(data, &ns), -1);
	ck_assert_uint_eq(identify(&c, 1, 0), 0);
	data[1800] = 16; /* ICDOFF */
	ck_assert_int_eq(nvmf_id_ctrl_decode(data, &id), -1);
	data[1800] = 0;
	zc_ex_put32(data + 536, zc_ex_get32(data + 536) & ~NVMF_SGLS_KEYED);
	ck_assert_int_eq(nvmf_id_ctrl_decode(data, &id), -1);
	ck_assert_uint_eq(identify(&c, 1, 0), 0);
	zc_ex_put32(data + 1792, 3); /* IOCCSZ below the SQE */
	ck_assert_int_eq(nvmf_id_ctrl_decode(data, &id), -1);
	ck_assert_uint_eq(identify(&c, 1, 0), 0);
	memset(data + 768, 'x', 256); /* SUBNQN not terminated */
	ck_assert_int_eq(nvmf_id_ctrl_decode(data, &id), -1);
}
END_TEST

START_TEST(test_host_discovery_entry_and_reject_decode)
{
	struct nvmf_disc_entry de;
	struct nvmf_ctrl c;
	uint8_t rej[NVMF_CM_REJ_SIZE];

	enabled_ctrl(&c, NVMF_DISCOVERY_NQN);
	ck_assert_uint_eq(get_log(&c, NVMF_LOG_DISCOVERY, 2048, 0), 0);
	ck_assert_uint_eq(nvmf_disc_numrec(data), 1);
	ck_assert_int_eq(nvmf_disc_entry_decode(data + NVMF_DISC_ENTRY_SIZE, &de), 0);
	ck_assert_uint_eq(de.trtype, 1);
	ck_assert_uint_eq(de.subtype, 2);
	ck_assert_str_eq(de.subnqn, NQN);
	ck_assert_str_eq(de.traddr, "192.168.77.1");
	ck_assert_str_eq(de.trsvcid, "4420");
	memset(data + NVMF_DISC_ENTRY_SIZE + 256, 'n', 256);
	ck_assert_int_eq(nvmf_disc_entry_decode(data + NVMF_DISC_ENTRY_SIZE, &de), -1);

	nvmf_cm_rej_encode(NVMF_CM_INVALID_HSQSIZE, rej);
	ck_assert_int_eq(nvmf_cm_rej_decode(rej, sizeof(rej)), NVMF_CM_INVALID_HSQSIZE);
	ck_assert_int_eq(nvmf_cm_rej_decode(rej, 3), -1);
	rej[0] = 1; /* record format 1 */
	ck_assert_int_eq(nvmf_cm_rej_decode(rej, sizeof(rej)), -1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("nvmf");
	TCase *w = tcase_create("wire"), *c = tcase_create("ctrl"), *i = tcase_create("io");

	tcase_add_checked_fixture(w, setup, NULL);
	tcase_add_checked_fixture(c, setup, NULL);
	tcase_add_checked_fixture(i, setup, NULL);
	tcase_add_test(w, test_cm_req_linux_admin_and_io_queues_are_accepted);
	tcase_add_test(w, test_cm_req_rejects_each_bad_field_with_its_reason);
	tcase_add_test(w, test_cm_rep_and_rej_layouts);
	tcase_add_test(w, test_sgl_keyed_has_24_bit_length_and_32_bit_key);
	tcase_add_test(w, test_sgl_unknown_types_are_invalid_in_capsule_reserved_ignored);
	tcase_add_test(w, test_sqe_decode_reads_every_field_and_rejects_short_capsules);
	tcase_add_test(w, test_sqe_data_checks_psdt_fuse_and_in_capsule_bounds);
	tcase_add_test(w, test_cqe_status_is_shifted_past_the_phase_bit_and_cid_echoed);
	tcase_add_test(w, test_connect_data_roundtrip_and_nqn_errors_name_the_field);
	tcase_add_test(c, test_connect_check_names_the_invalid_parameter);
	tcase_add_test(c, test_io_queue_connect_needs_enabled_ctrl_granted_qid_same_host);
	tcase_add_test(c, test_cap_declares_queue_size_nvm_css_and_4k_pages);
	tcase_add_test(c, test_cc_enable_sets_rdy_disable_resets_shutdown_completes);
	tcase_add_test(c, test_identify_ctrl_declares_what_linux_checks);
	tcase_add_test(c, test_identify_ns_and_descriptors_agree_and_survive_a_restart);
	tcase_add_test(c, test_identify_lists_and_bad_nsid_or_cns);
	tcase_add_test(c, test_log_pages_lengths_offsets_and_unknown_ids);
	tcase_add_test(c, test_discovery_controller_lists_the_subsystem);
	tcase_add_test(c, test_features_queues_kato_and_errors);
	tcase_add_test(c, test_aer_held_up_to_the_limit_and_other_opcodes);
	tcase_add_test(c, test_kato_deadline_rounds_up_to_the_granularity);
	tcase_add_test(i, test_read_write_range_size_and_length_checks);
	tcase_add_test(i, test_namespace_flush_write_zeroes_and_dsm);
	tcase_add_test(i, test_cntlids_start_at_the_seed_wrap_and_run_out);
	tcase_add_test(w, test_host_connect_and_property_commands_decode_as_sent);
	tcase_add_test(i, test_host_read_write_commands_pass_the_target_checks);
	tcase_add_test(c, test_host_identify_decoders_read_what_the_controller_declared);
	tcase_add_test(c, test_host_discovery_entry_and_reject_decode);
	suite_add_tcase(s, w);
	suite_add_tcase(s, c);
	suite_add_tcase(s, i);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
