/*
 * fuzz_gen_corpus - writes the seed corpus of the fuzz targets
 *
 *   build-fuzz/bin/fuzz_gen_corpus test/fuzz/corpus
 *
 * writes DIR/wire/<name> (fuzz_wire), DIR/nvmf/<name> (fuzz_nvmf) and
 * DIR/args/<name> (fuzz_args):
 * valid messages of every kind and edge cases just inside and just outside
 * each documented bound, built with the library's own encoders. The output
 * depends on nothing but this file, so the committed corpus is exactly what
 * it prints; bench/fuzz regenerates it into its work dir and warns when the
 * two differ. The input formats are described at the top of fuzz_wire.c,
 * fuzz_nvmf.c and fuzz_args.c.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nvmf.h"
#include "wire.h"

static const char *outdir;
static int nfiles;

static void put(const char *sub, const char *name, const void *a, size_t na, const void *b, size_t nb)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", outdir, sub);
	if (mkdir(path, 0755) && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, sub, name);
	f = fopen(path, "wb");
	if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb) || fclose(f)) {
		perror(path);
		exit(1);
	}
	nfiles++;
}

/* ---- fuzz_wire: byte 0 = mode ---------------------------------------------- */

enum { W_MSG, W_PRIV, W_DESC, W_ENC_MSG, W_ENC_PRIV, W_ENC_DESC };

/* Mode 0: u32 eager_max, then the message. */
static void msg(const char *name, uint32_t eager_max, const struct zc__hdr *h, const struct zc__rts *r, size_t len)
{
	uint8_t buf[5 + ZC_RTS_SIZE + 256] = {W_MSG};

	memcpy(buf + 1, &(uint32_t){htole32(eager_max)}, 4);
	zc__hdr_encode(buf + 5, h);
	if (r)
		zc__rts_encode(buf + 5 + ZC_HDR_SIZE, r);
	else
		for (size_t i = ZC_HDR_SIZE; i < len; i++)
			buf[5 + i] = (uint8_t)i; /* eager payload */
	put("wire", name, buf, 5 + len, NULL, 0);
}

/* Mode 0 read as an EAGER: the immediate data, the previous ack, payload;
 * len bytes in all (the bytes received). */
static void imm(const char *name, uint32_t eager_max, uint32_t ack_delta, uint16_t window, uint32_t prev_ack,
		size_t len)
{
	uint8_t buf[5 + 256] = {W_MSG};
	uint32_t v = zc__imm_encode(ack_delta, window);

	memcpy(buf + 1, &(uint32_t){htole32(eager_max)}, 4);
	memcpy(buf + 5, &v, 4);
	memcpy(buf + 9, &(uint32_t){htole32(prev_ack)}, 4);
	for (size_t i = 8; i < len; i++)
		buf[5 + i] = (uint8_t)i;
	put("wire", name, buf, 5 + len, NULL, 0);
}

static void wire_seeds(void)
{
	const uint32_t slot_eager = 48; /* the smallest slot (64 bytes) minus the header */
	struct zc__hdr h = {.version = ZC_WIRE_VERSION, .ack = 3};
	struct zc__rts r = {.addr = 0x7f0000001000, .len = 1 << 20, .rkey = 0x1234, .flags = ZC_RTS_F_INV};
	struct zc__priv pv = {.version = ZC_WIRE_VERSION, .credits = 64, .slot_size = 4096 + 16, .rd_atom = 16};
	uint8_t b[64] = {0};
	struct zc_desc d;

	imm("imm-eager-8", 4080, 0, 1, 0, 8);
	imm("imm-eager-100", 4080, 5, 64, UINT32_MAX - 2, 100);
	imm("imm-eager-max", slot_eager, ZC_IMM_ACK_DELTA_MAX, 4096, 7, slot_eager);
	imm("imm-eager-over", slot_eager, 1, 1, 0, slot_eager + 1);
	imm("imm-window-over", 4080, 1, 4097, 0, 8);
	h.type = ZC_MSG_EAGER;
	h.len = 10;
	msg("msg-eager-inband", 4080, &h, NULL, ZC_HDR_SIZE + 10);
	h.len = 0;
	h.type = ZC_MSG_RTS;
	h.id = 5 | 1 << 16;
	msg("msg-rts", 4080, &h, &r, ZC_RTS_SIZE);
	r.len = ZC_RNDV_MAX_LEN;
	r.addr = UINT64_MAX - r.len; /* ends at the last byte of the address space */
	r.flags = 0;
	msg("msg-rts-maxlen", 4080, &h, &r, ZC_RTS_SIZE);
	r.addr++;
	msg("msg-rts-wrap", 4080, &h, &r, ZC_RTS_SIZE);
	r.addr = 0x1000;
	r.len = ZC_RNDV_MAX_LEN + 1;
	msg("msg-rts-toolong", 4080, &h, &r, ZC_RTS_SIZE);
	r.len = 1;
	r.flags = 2;
	msg("msg-rts-badflags", 4080, &h, &r, ZC_RTS_SIZE);
	h.type = ZC_MSG_FIN;
	msg("msg-fin", 4080, &h, NULL, ZC_HDR_SIZE);
	h.id = 0;
	h.type = ZC_MSG_CREDIT;
	h.ack = UINT32_MAX;
	msg("msg-credit", 4080, &h, NULL, ZC_HDR_SIZE);
	h.type = ZC_MSG_CLOSE;
	msg("msg-close", 4080, &h, NULL, ZC_HDR_SIZE);
	h.type = ZC_MSG_SHUTDOWN;
	msg("msg-shutdown", 4080, &h, NULL, ZC_HDR_SIZE);
	h.type = ZC_MSG_CLOSE;
	msg("msg-short", 4080, &h, NULL, ZC_HDR_SIZE - 1);
	h.version = ZC_WIRE_VERSION + 1;
	msg("msg-version-next", 4080, &h, NULL, ZC_HDR_SIZE);
	h.version = ZC_WIRE_VERSION;
	h.type = ZC_MSG_ADV;
	h.id = 41;
	r = (struct zc__rts){.addr = 0x7f0000003001, .len = 65536, .rkey = 0x4321};
	msg("msg-adv", 4080, &h, &r, ZC_RTS_SIZE);
	{
		uint8_t pre[5] = {W_MSG}, adv[ZC_ADV_SIZE(3)];

		zc__hdr_encode(adv, &h);
		for (uint32_t i = 0; i < 3; i++)
			zc__rts_encode(adv + ZC_ADV_SIZE(i),
				       &(struct zc__rts){.addr = 0x7f0000010000 + i * 65536, .len = 65536, .rkey = 0x100 + i});
		memcpy(pre + 1, &(uint32_t){htole32(4080)}, 4);
		put("wire", "msg-adv3", pre, sizeof(pre), adv, sizeof(adv));
	}
	h.type = ZC_MSG_PUT;
	h.len = 65536;
	msg("msg-put", 4080, &h, NULL, ZC_HDR_SIZE);
	h.len = 0;
	msg("msg-put-empty", 4080, &h, NULL, ZC_HDR_SIZE);
	h.id = 0;
	h.type = ZC_MSG_PUT + 1; /* the first unknown type */
	msg("msg-type9", 4080, &h, NULL, ZC_HDR_SIZE);

	/* Private data: as sent, padded by rdma_cm, at the limits, broken. */
	b[0] = W_PRIV;
	zc__priv_encode(b + 1, &pv);
	put("wire", "priv", b, 1 + ZC_PRIV_SIZE, NULL, 0);
	put("wire", "priv-padded", b, 1 + 56, NULL, 0);
	put("wire", "priv-short", b, ZC_PRIV_SIZE, NULL, 0);
	pv = (struct zc__priv){.version = ZC_WIRE_VERSION, .credits = ZC_CREDITS_MAX, .slot_size = ZC_SLOT_MAX,
			      .rd_atom = 65536};
	zc__priv_encode(b + 1, &pv);
	put("wire", "priv-max", b, 1 + ZC_PRIV_SIZE, NULL, 0);
	pv = (struct zc__priv){.version = ZC_WIRE_VERSION, .credits = 1, .slot_size = ZC_SLOT_MIN, .rd_atom = 1};
	zc__priv_encode(b + 1, &pv);
	put("wire", "priv-min", b, 1 + ZC_PRIV_SIZE, NULL, 0);
	b[1 + 12] ^= 1;
	put("wire", "priv-badmagic", b, 1 + ZC_PRIV_SIZE, NULL, 0);
	put("wire", "priv-null", b, 1, NULL, 0);

	/* RMA descriptors. */
	memset(b, 0, sizeof(b));
	b[0] = W_DESC;
	zc__desc_encode(&d, ZC_ACCESS_REMOTE_READ, 0xabcd, 0x7f0000002000, 8192);
	put("wire", "desc-read", b, 1, d.bytes, sizeof(d.bytes));
	zc__desc_encode(&d, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, 7, UINT64_MAX - 4096, 4096);
	put("wire", "desc-rw-top", b, 1, d.bytes, sizeof(d.bytes));
	d.bytes[31] = 1;
	put("wire", "desc-reserved", b, 1, d.bytes, sizeof(d.bytes));
	put("wire", "desc-null", b, 1, NULL, 0);

	/* Encoder modes: the fields as raw host-order bytes (see fuzz_wire.c). */
	b[0] = W_ENC_MSG;
	put("wire", "enc-msg", b, 1, &(struct zc__hdr){.version = ZC_WIRE_VERSION, .type = ZC_MSG_EAGER, .len = 8}, sizeof(h));
	b[0] = W_ENC_PRIV;
	put("wire", "enc-priv", b, 1, &(struct zc__priv){.version = ZC_WIRE_VERSION, .credits = 8, .slot_size = 256, .rd_atom = 4},
	    sizeof(pv));
	b[0] = W_ENC_DESC;
	b[1] = ZC_ACCESS_REMOTE_WRITE;
	b[2] = 9;  /* rkey */
	b[10] = 1; /* addr */
	b[14] = 1; /* len */
	put("wire", "enc-desc", b, 1 + 1 + 4 + 8 + 8, NULL, 0);
}

/* ---- fuzz_nvmf: 8-byte prefix --------------------------------------------------- */

enum { N_CM, N_CAPSULE, N_CONNECT, N_SGL, N_CQE, N_DSM, N_SEQUENCE };
enum { NF_4K = 0x01, NF_RO = 0x02, NF_VWC = 0x04, NF_ICD = 0x08, NF_DISC = 0x10, NF_ENABLED = 0x20, NF_IOQ = 0x40 };

/* 1000 blocks, 128 entries per I/O queue, 8 I/O queues. */
static void nvmf_prefix(uint8_t *p, uint8_t mode, uint8_t flags)
{
	p[0] = mode;
	p[1] = flags;
	memcpy(p + 2, &(uint32_t){htole32(1000)}, 4);
	p[6] = 128;
	p[7] = 8;
}

static void nvmf_put(const char *name, uint8_t mode, uint8_t flags, const void *a, size_t na)
{
	uint8_t pre[8];

	nvmf_prefix(pre, mode, flags);
	put("nvmf", name, pre, sizeof(pre), a, na);
}

static void cm(const char *name, uint16_t qid, uint16_t hrq, uint16_t hsq, size_t len)
{
	uint8_t b[56] = {0};

	nvmf_cm_req_encode(&(struct nvmf_cm_req){.qid = qid, .hrqsize = hrq, .hsqsize = hsq}, b);
	nvmf_put(name, N_CM, 0, b, len);
}

/* An SQE as the Linux host builds it: PSDT 01b, a keyed SGL (0x4F) of len bytes. */
static struct nvmf_sqe nsqe(uint8_t opcode, uint32_t nsid, uint32_t len)
{
	struct nvmf_sqe s;

	memset(&s, 0, sizeof(s));
	s.opcode = opcode;
	s.flags = NVMF_PSDT_SGL << 6;
	s.cid = 0x1234;
	s.nsid = nsid;
	nvmf_sgl_encode(&(struct nvmf_sgl){.type = len ? NVMF_SGL_KEYED_INV : NVMF_SGL_KEYED, .addr = len ? 0x7f00 : 0,
					   .len = len, .key = len ? 0xabcd : 0},
			s.dptr);
	return s;
}

static struct nvmf_sqe prop(uint8_t fctype, uint8_t attrib, uint32_t offset, uint32_t value)
{
	struct nvmf_sqe s = nsqe(NVMF_FABRICS, 0, 0);

	s.fctype = fctype;
	s.cdw10 = attrib;
	s.cdw11 = offset;
	s.cdw12 = value;
	return s;
}

static void capsule_of(const char *name, uint8_t flags, const struct nvmf_sqe *s, const void *icd, size_t icd_len)
{
	uint8_t b[NVMF_SQE_SIZE + 4096];

	nvmf_sqe_encode(s, b);
	if (icd_len)
		memcpy(b + NVMF_SQE_SIZE, icd, icd_len);
	nvmf_put(name, N_CAPSULE, flags, b, NVMF_SQE_SIZE + icd_len);
}

static void connect_of(const char *name, uint16_t qid, uint16_t sqsize, const char *subnqn, uint16_t cntlid)
{
	struct nvmf_connect_data cd;
	uint8_t b[12 + NVMF_CONNECT_DATA_SIZE] = {0};

	memset(&cd, 0, sizeof(cd));
	memset(cd.hostid, 0x5a, sizeof(cd.hostid));
	cd.cntlid = cntlid;
	strcpy(cd.subnqn, subnqn);
	strcpy(cd.hostnqn, "nqn.2014-08.org.nvmexpress:uuid:fuzz");
	memcpy(b, &(uint16_t){htole16(qid)}, 2);
	memcpy(b + 2, &(uint16_t){htole16(sqsize)}, 2);
	memcpy(b + 6, &(uint16_t){htole16(qid)}, 2);
	memcpy(b + 8, &(uint16_t){htole16(sqsize)}, 2);
	b[11] = 5; /* kato 5 s */
	nvmf_connect_data_encode(&cd, b + 12);
	nvmf_put(name, N_CONNECT, 0, b, sizeof(b));
}

static void nvmf_seeds(void)
{
	const uint8_t on = NF_ENABLED, io = NF_ENABLED | NF_IOQ | NF_ICD;
	struct nvmf_sqe s, seq[8];
	uint8_t b[64], icd[4096];
	unsigned i;

	cm("cm-admin", 0, 32, 31, 56);
	cm("cm-io", 1, 128, 127, 32);
	cm("cm-io-too-deep", 1, 129, 128, 32);
	cm("cm-short", 0, 32, 31, 31);
	cm("cm-qid-9", 9, 32, 31, 32);

	s = nsqe(NVMF_FABRICS, 0, NVMF_CONNECT_DATA_SIZE);
	s.fctype = NVMF_FCT_CONNECT;
	s.cdw11 = 31;
	capsule_of("cap-connect", 0, &s, NULL, 0);
	s = prop(NVMF_FCT_PROP_GET, 1, 0x00, 0);
	capsule_of("cap-prop-get-cap", 0, &s, NULL, 0);
	s = prop(NVMF_FCT_PROP_SET, 0, 0x14, 0x00460001);
	capsule_of("cap-prop-set-cc", 0, &s, NULL, 0);
	s = prop(NVMF_FCT_PROP_SET, 0, 0x14, 0x00464001);
	capsule_of("cap-prop-set-shn", on, &s, NULL, 0);
	s = nsqe(NVMF_ADM_IDENTIFY, 0, 4096);
	s.cdw10 = 1;
	capsule_of("cap-identify-ctrl", on, &s, NULL, 0);
	capsule_of("cap-identify-ctrl-disc", on | NF_DISC, &s, NULL, 0);
	for (i = 0; i < 4; i++) {
		static const uint8_t cns[] = {0x00, 0x02, 0x03, 0x06};
		char name[32];

		s = nsqe(NVMF_ADM_IDENTIFY, cns[i] == 0x02 || cns[i] == 0x06 ? 0 : 1, 4096);
		s.cdw10 = cns[i];
		snprintf(name, sizeof(name), "cap-identify-cns%02x", cns[i]);
		capsule_of(name, on, &s, NULL, 0);
	}
	s = nsqe(NVMF_ADM_GET_LOG_PAGE, 0xffffffff, 512);
	s.cdw10 = 0x02 | 127u << 16;
	capsule_of("cap-log-smart", on, &s, NULL, 0);
	s = nsqe(NVMF_ADM_GET_LOG_PAGE, 0, 2048);
	s.cdw10 = 0x70 | 511u << 16;
	capsule_of("cap-log-discovery", on | NF_DISC, &s, NULL, 0);
	s = nsqe(NVMF_ADM_SET_FEATURES, 0, 0);
	s.cdw10 = 0x07;
	s.cdw11 = 1 | 1 << 16;
	capsule_of("cap-features-queues", on, &s, NULL, 0);
	s = nsqe(NVMF_ADM_KEEP_ALIVE, 0, 0);
	capsule_of("cap-keep-alive", on, &s, NULL, 0);
	s = nsqe(NVMF_ADM_ASYNC_EVENT, 0, 0);
	capsule_of("cap-aer", on, &s, NULL, 0);

	s = nsqe(NVMF_IO_READ, 1, 8 * 512);
	s.cdw10 = 992;
	s.cdw12 = 7;
	capsule_of("cap-read", io, &s, NULL, 0);
	s.cdw10 = 993;
	capsule_of("cap-read-beyond", io, &s, NULL, 0);
	s = nsqe(NVMF_IO_WRITE, 1, 0);
	nvmf_sgl_encode(&(struct nvmf_sgl){.type = NVMF_SGL_INCAPSULE, .len = 4096}, s.dptr);
	s.cdw12 = 7 | 1u << 30;
	for (i = 0; i < sizeof(icd); i++)
		icd[i] = (uint8_t)i;
	capsule_of("cap-write-incapsule", io, &s, icd, sizeof(icd));
	s = nsqe(NVMF_IO_WRITE_ZEROES, 1, 0);
	s.cdw12 = 99 | 1u << 25;
	capsule_of("cap-write-zeroes", io, &s, NULL, 0);
	s = nsqe(NVMF_IO_DSM, 1, 16);
	s.cdw11 = 1u << 2;
	capsule_of("cap-dsm", io, &s, NULL, 0);
	s = nsqe(NVMF_IO_FLUSH, 0xffffffff, 0);
	capsule_of("cap-flush", io | NF_VWC, &s, NULL, 0);

	connect_of("connect-admin", 0, 31, "nqn.2024-01.io.zcrdma:fuzz", 0xffff);
	connect_of("connect-io", 1, 127, "nqn.2024-01.io.zcrdma:fuzz", 9);
	connect_of("connect-discovery", 0, 31, NVMF_DISCOVERY_NQN, 0xffff);
	connect_of("connect-other-subsys", 0, 31, "nqn.2024-01.io.zcrdma:other", 0xffff);

	nvmf_sgl_encode(&(struct nvmf_sgl){.type = NVMF_SGL_KEYED_INV, .addr = 1, .len = 0xffffff, .key = 7}, b);
	nvmf_put("sgl-keyed-inv", N_SGL, 0, b, 16);
	nvmf_sgl_encode(&(struct nvmf_sgl){.type = NVMF_SGL_INCAPSULE, .len = 4096}, b);
	nvmf_put("sgl-incapsule", N_SGL, 0, b, 16);
	b[15] = 0x00;
	nvmf_put("sgl-data-block", N_SGL, 0, b, 16);
	nvmf_cqe_encode(&(struct nvmf_cqe){.result = 5, .sq_head = 1, .sq_id = 1, .cid = 0x1234,
					   .status = nvmf_status(NVMF_SC_LBA_RANGE)},
			b);
	nvmf_put("cqe-lba-range", N_CQE, 0, b, 16);
	nvmf_dsm_range_encode(&(struct nvmf_dsm_range){.nlb = 8, .slba = 992}, b);
	nvmf_dsm_range_encode(&(struct nvmf_dsm_range){.nlb = 9, .slba = 992}, b + 16);
	nvmf_put("dsm-edge", N_DSM, 0, b, 32);

	/* The Linux host's admin bring-up and shutdown, in order. */
	seq[0] = prop(NVMF_FCT_PROP_GET, 1, 0x00, 0);
	seq[1] = prop(NVMF_FCT_PROP_GET, 0, 0x08, 0);
	seq[2] = prop(NVMF_FCT_PROP_SET, 0, 0x14, 0x00460001);
	seq[3] = prop(NVMF_FCT_PROP_GET, 0, 0x1c, 0);
	seq[4] = nsqe(NVMF_ADM_IDENTIFY, 0, 4096);
	seq[4].cdw10 = 1;
	seq[5] = nsqe(NVMF_ADM_SET_FEATURES, 0, 0);
	seq[5].cdw10 = 0x07;
	seq[5].cdw11 = 1 | 1 << 16;
	seq[6] = nsqe(NVMF_ADM_KEEP_ALIVE, 0, 0);
	seq[7] = prop(NVMF_FCT_PROP_SET, 0, 0x14, 0x00464001);
	{
		uint8_t all[8 * NVMF_SQE_SIZE];

		for (i = 0; i < 8; i++)
			nvmf_sqe_encode(&seq[i], all + i * NVMF_SQE_SIZE);
		nvmf_put("seq-bringup", N_SEQUENCE, 0, all, sizeof(all));
	}
}

/* ---- fuzz_args: parser, flags / host size, le16 default port, the string ------- */

static void arg(const char *name, uint8_t parser, uint8_t b1, uint16_t dflt, const char *str)
{
	uint8_t pre[4] = {parser, b1, (uint8_t)dflt, (uint8_t)(dflt >> 8)};

	put("args", name, pre, sizeof(pre), str, strlen(str));
}

static void args_seeds(void)
{
	/* sizes: each suffix form, the largest value, one past it, and junk */
	arg("size-plain", 0, 0, 0, "4096");
	arg("size-k", 0, 0, 0, "4k");
	arg("size-MiB", 0, 0, 0, "64MiB");
	arg("size-gb", 0, 0, 0, "1gb");
	arg("size-max", 0, 0, 0, "8589934591G");
	arg("size-over", 0, 0, 0, "8589934592G");
	arg("size-ib", 0, 0, 0, "12ib");
	arg("size-hex", 0, 0, 0, "0x10");
	/* whole numbers: the flag's range and the full range, each end and one past */
	arg("int-minus1", 1, 0, 0, "-1");
	arg("int-minus2", 1, 0, 0, "-2");
	arg("int-max", 1, 0, 0, "60000000");
	arg("int-llmin", 1, 1, 0, "-9223372036854775808");
	arg("int-llover", 1, 1, 0, "9223372036854775808");
	arg("int-dash", 1, 0, 0, "--1");
	/* host[:port]: every form, a port out of range, a host that just fits and one that does not */
	arg("hp-v4", 2, 63, 4420, "192.168.77.1");
	arg("hp-v4port", 2, 63, 4420, "192.168.77.1:4421");
	arg("hp-v6", 2, 63, 4420, "fe80::1");
	arg("hp-v6port", 2, 63, 4420, "[fe80::1]:65535");
	arg("hp-port0", 2, 63, 4420, "host:0");
	arg("hp-port65536", 2, 63, 4420, "[::1]:65536");
	arg("hp-fits", 2, 4, 1, "abcd");
	arg("hp-toolong", 2, 3, 1, "abcd");
	arg("hp-empty", 2, 63, 1, ":80");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR   (writes DIR/wire/*, DIR/nvmf/* and DIR/args/*)\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	if (mkdir(outdir, 0755) && errno != EEXIST) {
		perror(outdir);
		return 1;
	}
	wire_seeds();
	nvmf_seeds();
	args_seeds();
	printf("%d seeds in %s/wire, %s/nvmf and %s/args\n", nfiles, outdir, outdir, outdir);
	return 0;
}
