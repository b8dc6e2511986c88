/* NVMe over Fabrics (RDMA): wire formats, encoding and validation (pure code). */
#include "nvmf.h"

#include <string.h>

#include "zc_example.h"

/* ---- rdma_cm private data ----------------------------------------------- */

int nvmf_cm_req_decode(const void *buf, size_t len, uint16_t max_qid, uint16_t max_qsize, struct nvmf_cm_req *req)
{
	const uint8_t *p = buf;
	uint16_t limit;

	memset(req, 0, sizeof(*req));
	if (!p || len < NVMF_CM_REQ_SIZE)
		return NVMF_CM_INVALID_LEN;
	if (zc_ex_get16(p) != 0)
		return NVMF_CM_INVALID_RECFMT;
	req->qid = zc_ex_get16(p + 2);
	req->hrqsize = zc_ex_get16(p + 4);
	req->hsqsize = zc_ex_get16(p + 6);
	if (req->qid > max_qid)
		return NVMF_CM_INVALID_QID;
	limit = req->qid ? max_qsize : NVMF_AQ_DEPTH;
	/* hsqsize is 0-based and a queue needs two entries (one is always empty). */
	if (req->hsqsize < 1 || req->hsqsize >= limit)
		return NVMF_CM_INVALID_HSQSIZE;
	/* The host must be able to take a CQE for every command it may send. */
	if (req->hrqsize < req->hsqsize + 1u || req->hrqsize > limit)
		return NVMF_CM_INVALID_HRQSIZE;
	return NVMF_CM_OK;
}

void nvmf_cm_req_encode(const struct nvmf_cm_req *req, uint8_t out[NVMF_CM_REQ_SIZE])
{
	memset(out, 0, NVMF_CM_REQ_SIZE);
	zc_ex_put16(out + 2, req->qid);
	zc_ex_put16(out + 4, req->hrqsize);
	zc_ex_put16(out + 6, req->hsqsize);
}

void nvmf_cm_rep_encode(uint16_t crqsize, uint8_t out[NVMF_CM_REP_SIZE])
{
	memset(out, 0, NVMF_CM_REP_SIZE);
	zc_ex_put16(out + 2, crqsize);
}

int nvmf_cm_rep_decode(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (!p || len < NVMF_CM_REP_SIZE || zc_ex_get16(p) != 0)
		return -1;
	return zc_ex_get16(p + 2);
}

void nvmf_cm_rej_encode(uint16_t sts, uint8_t out[NVMF_CM_REJ_SIZE])
{
	zc_ex_put16(out, 0);
	zc_ex_put16(out + 2, sts);
}

const char *nvmf_cm_status_str(int sts)
{
	switch (sts) {
	case NVMF_CM_OK: return "ok";
	case NVMF_CM_INVALID_LEN: return "invalid private data length";
	case NVMF_CM_INVALID_RECFMT: return "invalid record format";
	case NVMF_CM_INVALID_QID: return "invalid queue id";
	case NVMF_CM_INVALID_HSQSIZE: return "invalid host send queue size";
	case NVMF_CM_INVALID_HRQSIZE: return "invalid host receive queue size";
	case NVMF_CM_NO_RSC: return "no resources";
	case NVMF_CM_INVALID_IRD: return "invalid IRD";
	case NVMF_CM_INVALID_ORD: return "invalid ORD";
	}
	return "unknown reject reason";
}

const char *nvmf_status_str(uint16_t status)
{
	switch (status & NVMF_SC_MASK) {
	case NVMF_SC_SUCCESS: return "success";
	case NVMF_SC_INVALID_OPCODE: return "invalid command opcode";
	case NVMF_SC_INVALID_FIELD: return "invalid field in command";
	case NVMF_SC_CMDID_CONFLICT: return "command id conflict";
	case NVMF_SC_DATA_XFER_ERROR: return "data transfer error";
	case NVMF_SC_INTERNAL: return "internal error";
	case NVMF_SC_INVALID_NS: return "invalid namespace or format";
	case NVMF_SC_CMD_SEQ_ERROR: return "command sequence error";
	case NVMF_SC_SGL_INVALID_LAST: return "invalid SGL segment descriptor";
	case NVMF_SC_SGL_INVALID_COUNT: return "invalid number of SGL descriptors";
	case NVMF_SC_SGL_INVALID_DATA: return "data SGL length invalid";
	case NVMF_SC_SGL_INVALID_TYPE: return "SGL descriptor type invalid";
	case NVMF_SC_SGL_INVALID_OFFSET: return "SGL offset invalid";
	case NVMF_SC_NS_WRITE_PROTECTED: return "namespace is write protected";
	case NVMF_SC_LBA_RANGE: return "LBA out of range";
	case NVMF_SC_CAP_EXCEEDED: return "capacity exceeded";
	case NVMF_SC_AER_LIMIT: return "asynchronous event request limit exceeded";
	case NVMF_SC_INVALID_LOG_PAGE: return "invalid log page";
	case NVMF_SC_FEATURE_NOT_SAVEABLE: return "feature identifier not saveable";
	case NVMF_SC_CONNECT_FORMAT: return "connect: incompatible format";
	case NVMF_SC_CONNECT_CTRL_BUSY: return "connect: controller busy";
	case NVMF_SC_CONNECT_INVALID_PARAM: return "connect: invalid parameters";
	case NVMF_SC_CONNECT_INVALID_HOST: return "connect: invalid host";
	}
	return "unknown status";
}

/* ---- SGL descriptors ---------------------------------------------------- */

uint16_t nvmf_sgl_decode(const uint8_t d[NVMF_SGL_SIZE], struct nvmf_sgl *sgl)
{
	memset(sgl, 0, sizeof(*sgl));
	sgl->type = d[15];
	sgl->addr = zc_ex_get64(d);
	switch (d[15]) {
	case NVMF_SGL_KEYED:
	case NVMF_SGL_KEYED_INV:
		sgl->len = (uint32_t)d[8] | (uint32_t)d[9] << 8 | (uint32_t)d[10] << 16;
		sgl->key = zc_ex_get32(d + 11);
		return NVMF_SC_SUCCESS;
	case NVMF_SGL_INCAPSULE:
		/* Bytes 12-14 are reserved, but Linux's host leaves there what the
		 * previous command's keyed SGL had (nvme_rdma_map_sg_inline): ignored. */
		sgl->len = zc_ex_get32(d + 8);
		return NVMF_SC_SUCCESS;
	}
	return NVMF_SC_SGL_INVALID_TYPE;
}

void nvmf_sgl_encode(const struct nvmf_sgl *sgl, uint8_t out[NVMF_SGL_SIZE])
{
	memset(out, 0, NVMF_SGL_SIZE);
	zc_ex_put64(out, sgl->addr);
	if (sgl->type == NVMF_SGL_INCAPSULE) {
		zc_ex_put32(out + 8, sgl->len);
	} else {
		out[8] = (uint8_t)sgl->len;
		out[9] = (uint8_t)(sgl->len >> 8);
		out[10] = (uint8_t)(sgl->len >> 16);
		zc_ex_put32(out + 11, sgl->key);
	}
	out[15] = sgl->type;
}

/* ---- submission and completion queue entries ---------------------------- */

int nvmf_sqe_decode(const void *buf, size_t len, struct nvmf_sqe *sqe)
{
	const uint8_t *p = buf;

	memset(sqe, 0, sizeof(*sqe));
	if (!p || len < NVMF_SQE_SIZE)
		return -1;
	sqe->opcode = p[0];
	sqe->flags = p[1];
	sqe->cid = zc_ex_get16(p + 2);
	sqe->nsid = zc_ex_get32(p + 4);
	sqe->fctype = p[4];
	memcpy(sqe->dptr, p + 24, NVMF_SGL_SIZE);
	sqe->cdw10 = zc_ex_get32(p + 40);
	sqe->cdw11 = zc_ex_get32(p + 44);
	sqe->cdw12 = zc_ex_get32(p + 48);
	sqe->cdw13 = zc_ex_get32(p + 52);
	sqe->cdw14 = zc_ex_get32(p + 56);
	sqe->cdw15 = zc_ex_get32(p + 60);
	return 0;
}

void nvmf_sqe_encode(const struct nvmf_sqe *sqe, uint8_t out[NVMF_SQE_SIZE])
{
	memset(out, 0, NVMF_SQE_SIZE);
	out[0] = sqe->opcode;
	out[1] = sqe->flags;
	zc_ex_put16(out + 2, sqe->cid);
	if (sqe->opcode == NVMF_FABRICS)
		out[4] = sqe->fctype;
	else
		zc_ex_put32(out + 4, sqe->nsid);
	memcpy(out + 24, sqe->dptr, NVMF_SGL_SIZE);
	zc_ex_put32(out + 40, sqe->cdw10);
	zc_ex_put32(out + 44, sqe->cdw11);
	zc_ex_put32(out + 48, sqe->cdw12);
	zc_ex_put32(out + 52, sqe->cdw13);
	zc_ex_put32(out + 56, sqe->cdw14);
	zc_ex_put32(out + 60, sqe->cdw15);
}

enum nvmf_dir nvmf_sqe_dir(const struct nvmf_sqe *sqe)
{
	uint8_t op = sqe->opcode == NVMF_FABRICS ? sqe->fctype : sqe->opcode;

	switch (op & 3) {
	case 1: return NVMF_DIR_TO_CTRL;
	case 2: return NVMF_DIR_FROM_CTRL;
	}
	return NVMF_DIR_NONE; /* 11b (bidirectional) is no command we implement */
}

uint16_t nvmf_sqe_data(const struct nvmf_sqe *sqe, uint32_t icd_max, size_t icd_len, struct nvmf_sgl *sgl)
{
	enum nvmf_dir dir = nvmf_sqe_dir(sqe);
	uint16_t st;

	memset(sgl, 0, sizeof(*sgl));
	if ((sqe->flags & 0x3) || (sqe->flags >> 6) != NVMF_PSDT_SGL)
		return NVMF_SC_INVALID_FIELD;
	if (dir == NVMF_DIR_NONE)
		return NVMF_SC_SUCCESS; /* the data pointer is not looked at */
	st = nvmf_sgl_decode(sqe->dptr, sgl);
	if (st)
		return st;
	if (sgl->type != NVMF_SGL_INCAPSULE)
		return NVMF_SC_SUCCESS;
	if (dir != NVMF_DIR_TO_CTRL || icd_max == 0)
		return NVMF_SC_SGL_INVALID_TYPE;
	if (sgl->addr > icd_len)
		return NVMF_SC_SGL_INVALID_OFFSET;
	if (sgl->len > icd_len - sgl->addr)
		return NVMF_SC_SGL_INVALID_DATA;
	return NVMF_SC_SUCCESS;
}

void nvmf_cqe_encode(const struct nvmf_cqe *cqe, uint8_t out[NVMF_CQE_SIZE])
{
	zc_ex_put64(out, cqe->result);
	zc_ex_put16(out + 8, cqe->sq_head);
	zc_ex_put16(out + 10, cqe->sq_id);
	zc_ex_put16(out + 12, cqe->cid);
	zc_ex_put16(out + 14, (uint16_t)(cqe->status << 1));
}

int nvmf_cqe_decode(const void *buf, size_t len, struct nvmf_cqe *cqe)
{
	const uint8_t *p = buf;

	memset(cqe, 0, sizeof(*cqe));
	if (!p || len != NVMF_CQE_SIZE)
		return -1;
	cqe->result = zc_ex_get64(p);
	cqe->sq_head = zc_ex_get16(p + 8);
	cqe->sq_id = zc_ex_get16(p + 10);
	cqe->cid = zc_ex_get16(p + 12);
	cqe->status = zc_ex_get16(p + 14) >> 1;
	return 0;
}

/* ---- Fabrics commands --------------------------------------------------- */

void nvmf_connect_decode(const struct nvmf_sqe *sqe, struct nvmf_connect *c)
{
	c->recfmt = (uint16_t)sqe->cdw10;
	c->qid = (uint16_t)(sqe->cdw10 >> 16);
	c->sqsize = (uint16_t)sqe->cdw11;
	c->cattr = (uint8_t)(sqe->cdw11 >> 16);
	c->kato = sqe->cdw12;
}

int nvmf_nqn_valid(const char *s)
{
	size_t n = strnlen(s, NVMF_NQN_MAX + 1), i;

	if (n < 5 || n > NVMF_NQN_MAX || strncmp(s, "nqn.", 4) != 0)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return 0;
	return 1;
}

/* Copies the NQN field at p if it is NUL-terminated and well-formed. */
static int nqn_field(const uint8_t *p, char out[NVMF_NQN_MAX + 1])
{
	size_t n = strnlen((const char *)p, NVMF_NQN_FIELD);

	if (n > NVMF_NQN_MAX)
		return -1;
	memcpy(out, p, n);
	out[n] = 0;
	return nvmf_nqn_valid(out) ? 0 : -1;
}

uint16_t nvmf_connect_data_decode(const void *buf, size_t len, struct nvmf_connect_data *cd, uint64_t *result)
{
	const uint8_t *p = buf;

	memset(cd, 0, sizeof(*cd));
	*result = 0;
	if (!p || len != NVMF_CONNECT_DATA_SIZE)
		return NVMF_SC_SGL_INVALID_DATA;
	memcpy(cd->hostid, p, sizeof(cd->hostid));
	cd->cntlid = zc_ex_get16(p + 16);
	if (nqn_field(p + NVMF_IPO_SUBNQN, cd->subnqn)) {
		*result = nvmf_connect_invalid(NVMF_IATTR_DATA, NVMF_IPO_SUBNQN);
		return NVMF_SC_CONNECT_INVALID_PARAM;
	}
	if (nqn_field(p + NVMF_IPO_HOSTNQN, cd->hostnqn)) {
		*result = nvmf_connect_invalid(NVMF_IATTR_DATA, NVMF_IPO_HOSTNQN);
		return NVMF_SC_CONNECT_INVALID_PARAM;
	}
	return NVMF_SC_SUCCESS;
}

void nvmf_connect_data_encode(const struct nvmf_connect_data *cd, uint8_t out[NVMF_CONNECT_DATA_SIZE])
{
	memset(out, 0, NVMF_CONNECT_DATA_SIZE);
	memcpy(out, cd->hostid, sizeof(cd->hostid));
	zc_ex_put16(out + 16, cd->cntlid);
	memcpy(out + NVMF_IPO_SUBNQN, cd->subnqn, strnlen(cd->subnqn, NVMF_NQN_MAX));
	memcpy(out + NVMF_IPO_HOSTNQN, cd->hostnqn, strnlen(cd->hostnqn, NVMF_NQN_MAX));
}

void nvmf_prop_decode(const struct nvmf_sqe *sqe, struct nvmf_prop *p)
{
	uint8_t attrib = (uint8_t)sqe->cdw10;

	p->size = attrib == 0 ? 4 : attrib == 1 ? 8 : 0;
	p->offset = sqe->cdw11;
	p->value = (uint64_t)sqe->cdw12 | (uint64_t)sqe->cdw13 << 32;
}

/* ---- Dataset Management ranges ------------------------------------------ */

void nvmf_dsm_range_decode(const uint8_t p[NVMF_DSM_RANGE_SIZE], struct nvmf_dsm_range *r)
{
	r->attr = zc_ex_get32(p);
	r->nlb = zc_ex_get32(p + 4);
	r->slba = zc_ex_get64(p + 8);
}

void nvmf_dsm_range_encode(const struct nvmf_dsm_range *r, uint8_t out[NVMF_DSM_RANGE_SIZE])
{
	zc_ex_put32(out, r->attr);
	zc_ex_put32(out + 4, r->nlb);
	zc_ex_put64(out + 8, r->slba);
}

/* ---- host side ------------------------------------------------------------ */

int nvmf_cm_rej_decode(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (!p || len < NVMF_CM_REJ_SIZE || zc_ex_get16(p) != 0)
		return -1;
	return zc_ex_get16(p + 2);
}

void nvmf_connect_encode(const struct nvmf_connect *c, uint16_t cid, struct nvmf_sqe *sqe)
{
	nvmf_cmd_init(sqe, NVMF_FABRICS, cid, 0);
	sqe->fctype = NVMF_FCT_CONNECT;
	sqe->cdw10 = c->recfmt | (uint32_t)c->qid << 16;
	sqe->cdw11 = c->sqsize | (uint32_t)c->cattr << 16;
	sqe->cdw12 = c->kato;
}

void nvmf_prop_encode(const struct nvmf_prop *p, int set, uint16_t cid, struct nvmf_sqe *sqe)
{
	nvmf_cmd_init(sqe, NVMF_FABRICS, cid, 0);
	sqe->fctype = set ? NVMF_FCT_PROP_SET : NVMF_FCT_PROP_GET;
	sqe->cdw10 = p->size == 8 ? 1 : 0;
	sqe->cdw11 = p->offset;
	if (set) {
		sqe->cdw12 = (uint32_t)p->value;
		sqe->cdw13 = (uint32_t)(p->value >> 32);
	}
}

void nvmf_cmd_init(struct nvmf_sqe *sqe, uint8_t opcode, uint16_t cid, uint32_t nsid)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = opcode;
	sqe->flags = NVMF_PSDT_SGL << 6;
	sqe->cid = cid;
	sqe->nsid = nsid;
	sqe->dptr[15] = NVMF_SGL_KEYED;
}

void nvmf_rw_encode(struct nvmf_sqe *sqe, uint64_t slba, uint32_t nlb)
{
	sqe->cdw10 = (uint32_t)slba;
	sqe->cdw11 = (uint32_t)(slba >> 32);
	sqe->cdw12 = (nlb - 1) & 0xffff; /* NLB is 0's based */
}

int nvmf_id_ctrl_decode(const uint8_t d[4096], struct nvmf_id_ctrl *id)
{
	memset(id, 0, sizeof(*id));
	id->mdts = d[77];
	id->cntlid = zc_ex_get16(d + 78);
	id->cntrltype = d[111];
	id->kas = zc_ex_get16(d + 320);
	id->maxcmd = zc_ex_get16(d + 514);
	id->nn = zc_ex_get32(d + 516);
	id->oncs = zc_ex_get16(d + 520);
	id->vwc = d[525];
	id->sgls = zc_ex_get32(d + 536);
	id->ioccsz = zc_ex_get32(d + 1792);
	id->iorcsz = zc_ex_get32(d + 1796);
	id->icdoff = zc_ex_get16(d + 1800);
	if (nqn_field(d + 768, id->subnqn))
		return -1;
	if (id->ioccsz < NVMF_SQE_SIZE / 16 || id->ioccsz > (1u << 20) / 16 || id->iorcsz < NVMF_CQE_SIZE / 16 ||
	    id->icdoff != 0 || !(id->sgls & NVMF_SGLS_KEYED))
		return -1;
	return 0;
}

int nvmf_id_ns_decode(const uint8_t d[4096], struct nvmf_id_ns *ns)
{
	uint8_t fmt = d[26] & 0xf, nlbaf = d[25];
	uint32_t lbaf;
	unsigned lbads;

	memset(ns, 0, sizeof(*ns));
	if (fmt > nlbaf)
		return -1;
	lbaf = zc_ex_get32(d + 128 + 4 * fmt);
	lbads = (lbaf >> 16) & 0xff;
	if ((lbaf & 0xffff) != 0 || lbads < 9 || lbads > 12) /* MS: metadata per block */
		return -1;
	ns->nsze = zc_ex_get64(d);
	ns->block_size = 1u << lbads;
	ns->write_protected = d[99] & 1;
	return 0;
}

uint64_t nvmf_disc_numrec(const uint8_t hdr[NVMF_DISC_ENTRY_SIZE])
{
	return zc_ex_get64(hdr + 8);
}

/* A space-padded ASCII field of n bytes, trimmed and NUL-terminated into out[n + 1]. */
static void ascii_field(const uint8_t *p, size_t n, char *out)
{
	memcpy(out, p, n);
	out[n] = 0;
	while (n && (out[n - 1] == ' ' || out[n - 1] == 0))
		out[--n] = 0;
}

int nvmf_disc_entry_decode(const uint8_t e[NVMF_DISC_ENTRY_SIZE], struct nvmf_disc_entry *de)
{
	memset(de, 0, sizeof(*de));
	de->trtype = e[0];
	de->adrfam = e[1];
	de->subtype = e[2];
	ascii_field(e + 32, 32, de->trsvcid);
	ascii_field(e + 512, 256, de->traddr);
	return nqn_field(e + 256, de->subnqn);
}
