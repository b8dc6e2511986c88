/* An NVMe-oF controller's logic: connect, properties, admin commands, I/O checks (pure code). */
#include "nvmf_ctrl.h"

#include <stdio.h>
#include <string.h>

#include "zc_example.h"

#define MODEL "zcrdma zc_blk_target"
#define FIRMWARE "1.0"
#define TBKAS (1u << 6)       /* CTRATT: traffic based keep alive: any command restarts the timer */
#define HID_128 (1u << 0)     /* CTRATT: 128-bit host identifier */
#define CMIC_MULTI_CTRL 0x2   /* several controllers (hosts) share the subsystem */
#define ONCS_DSM (1u << 2)
#define ONCS_WRITE_ZEROES (1u << 3)
#define SGLS_SUPPORTED 0x1
#define SGLS_KEYED (1u << 2)
#define SGLS_OFFSET (1u << 20)
#define LOG_SIZE_MAX 4096     /* the largest log page we build */

/* ---- the subsystem ----------------------------------------------------- */

/* FNV-1a over the NQN, the nsid and what the bytes are for. */
static uint64_t id_hash(const char *nqn, uint32_t nsid, uint8_t what)
{
	uint64_t h = 0xcbf29ce484222325ull;
	uint8_t tail[5] = {(uint8_t)nsid, (uint8_t)(nsid >> 8), (uint8_t)(nsid >> 16), (uint8_t)(nsid >> 24), what};
	size_t i;

	for (i = 0; nqn[i]; i++)
		h = (h ^ (uint8_t)nqn[i]) * 0x100000001b3ull;
	for (i = 0; i < sizeof(tail); i++)
		h = (h ^ tail[i]) * 0x100000001b3ull;
	return h;
}

static void id_bytes(const char *nqn, uint32_t nsid, uint8_t what, uint8_t *out, size_t n)
{
	size_t i;

	for (i = 0; i < n; i += 8) {
		uint8_t b[8];
		size_t k = n - i < 8 ? n - i : 8;

		zc_ex_put64(b, id_hash(nqn, nsid, (uint8_t)(what + i)));
		memcpy(out + i, b, k);
	}
}

int nvmf_subsys_init(struct nvmf_subsys *ss, const char *nqn, uint32_t block_size, uint64_t nblocks)
{
	memset(ss, 0, sizeof(*ss));
	if (!nvmf_nqn_valid(nqn) || (block_size != 512 && block_size != 4096))
		return -1;
	strcpy(ss->nqn, nqn);
	snprintf(ss->serial, sizeof(ss->serial), "zc%016llx", (unsigned long long)id_hash(nqn, 0, 's'));
	ss->ns.block_size = block_size;
	ss->ns.nblocks = nblocks;
	id_bytes(nqn, NVMF_NSID, 'g', ss->ns.nguid, sizeof(ss->ns.nguid));
	id_bytes(nqn, NVMF_NSID, 'e', ss->ns.eui64, sizeof(ss->ns.eui64));
	id_bytes(nqn, NVMF_NSID, 'u', ss->ns.uuid, sizeof(ss->ns.uuid));
	/* An RFC 9562 version 8 (vendor-specific) UUID. */
	ss->ns.uuid[6] = (uint8_t)((ss->ns.uuid[6] & 0x0f) | 0x80);
	ss->ns.uuid[8] = (uint8_t)((ss->ns.uuid[8] & 0x3f) | 0x80);
	ss->max_xfer = 128 * 1024;
	ss->max_qsize = 128;
	ss->max_ioq = 8;
	ss->icd_size = 4096;
	ss->adrfam = 1;
	return 0;
}

/* ---- connect -------------------------------------------------------------- */

static uint16_t invalid_param(uint64_t *result, uint8_t iattr, uint16_t ipo)
{
	*result = nvmf_connect_invalid(iattr, ipo);
	return NVMF_SC_CONNECT_INVALID_PARAM;
}

uint16_t nvmf_connect_check(const struct nvmf_subsys *ss, const struct nvmf_cm_req *cm, const struct nvmf_connect *cmd,
			    const struct nvmf_connect_data *cd, uint64_t *result)
{
	int discovery = strcmp(cd->subnqn, NVMF_DISCOVERY_NQN) == 0;

	*result = 0;
	if (cmd->recfmt != 0)
		return NVMF_SC_CONNECT_FORMAT;
	if (cmd->qid != cm->qid)
		return invalid_param(result, NVMF_IATTR_SQE, NVMF_IPO_QID);
	if (cmd->sqsize < 1 || cmd->sqsize > cm->hsqsize)
		return invalid_param(result, NVMF_IATTR_SQE, NVMF_IPO_SQSIZE);
	if (strcmp(cd->subnqn, ss->nqn) != 0 && !(discovery && cmd->qid == 0))
		return invalid_param(result, NVMF_IATTR_DATA, NVMF_IPO_SUBNQN);
	if (cmd->qid == 0 && cd->cntlid != NVMF_CNTLID_DYNAMIC)
		return invalid_param(result, NVMF_IATTR_DATA, NVMF_IPO_CNTLID);
	return NVMF_SC_SUCCESS;
}

void nvmf_ctrl_init(struct nvmf_ctrl *c, const struct nvmf_subsys *ss, uint16_t cntlid, const struct nvmf_connect *cmd,
		    const struct nvmf_connect_data *cd)
{
	memset(c, 0, sizeof(*c));
	c->ss = ss;
	c->discovery = strcmp(cd->subnqn, NVMF_DISCOVERY_NQN) == 0;
	c->cntlid = cntlid;
	memcpy(c->hostid, cd->hostid, sizeof(c->hostid));
	strcpy(c->hostnqn, cd->hostnqn);
	c->kato = cmd->kato;
	c->vwce = ss->vwc;
}

uint16_t nvmf_ctrl_ioq_connect(struct nvmf_ctrl *c, const struct nvmf_connect *cmd,
			       const struct nvmf_connect_data *cd, uint64_t *result)
{
	*result = 0;
	if (strcmp(cd->hostnqn, c->hostnqn) != 0)
		return invalid_param(result, NVMF_IATTR_DATA, NVMF_IPO_HOSTNQN);
	if (c->discovery || strcmp(cd->subnqn, c->ss->nqn) != 0)
		return invalid_param(result, NVMF_IATTR_DATA, NVMF_IPO_SUBNQN);
	if (!(c->csts & NVMF_CSTS_RDY) || cmd->qid == 0 || cmd->qid > c->nr_ioq ||
	    (c->ioq_live >> (cmd->qid - 1) & 1))
		return invalid_param(result, NVMF_IATTR_SQE, NVMF_IPO_QID);
	if (cmd->sqsize >= c->ss->max_qsize)
		return invalid_param(result, NVMF_IATTR_SQE, NVMF_IPO_SQSIZE);
	c->ioq_live |= 1ull << (cmd->qid - 1);
	*result = c->cntlid;
	return NVMF_SC_SUCCESS;
}

void nvmf_ctrl_ioq_gone(struct nvmf_ctrl *c, uint16_t qid)
{
	if (qid >= 1 && qid <= NVMF_MAX_IOQ)
		c->ioq_live &= ~(1ull << (qid - 1));
}

int64_t nvmf_ctrl_kato_deadline(const struct nvmf_ctrl *c, int64_t last_ms)
{
	int64_t kato = c->kato;

	if (!kato)
		return INT64_MAX;
	return last_ms + (kato + NVMF_KAS_MS - 1) / NVMF_KAS_MS * NVMF_KAS_MS;
}

/* ---- properties ------------------------------------------------------------ */

static uint64_t prop_cap(const struct nvmf_ctrl *c)
{
	uint64_t mqes = c->ss->max_qsize - 1u;

	/* MQES, CQR (contiguous queues required), TO 7.5 s, CSS bit 37 (NVM command set); MPSMIN = MPSMAX = 0 (4 KiB). */
	return mqes | 1ull << 16 | 15ull << 24 | 1ull << 37;
}

static uint16_t prop_get(const struct nvmf_ctrl *c, const struct nvmf_prop *p, uint64_t *value)
{
	uint8_t want;

	switch (p->offset) {
	case NVMF_PROP_CAP: want = 8; *value = prop_cap(c); break;
	case NVMF_PROP_VS: want = 4; *value = NVMF_VS; break;
	case NVMF_PROP_CC: want = 4; *value = c->cc; break;
	case NVMF_PROP_CSTS: want = 4; *value = c->csts; break;
	default: return NVMF_SC_INVALID_FIELD;
	}
	if (p->size != want) {
		*value = 0;
		return NVMF_SC_INVALID_FIELD;
	}
	return NVMF_SC_SUCCESS;
}

/* CC fields other than EN and SHN: CSS 6:4 = 0 (NVM), MPS 10:7 = 0, AMS 13:11 = 0, IOSQES 19:16 = 6, IOCQES 23:20 = 4. */
#define CC_CONFIG_MASK 0x00ff3ff0u
#define CC_CONFIG_OK 0x00460000u

static uint16_t prop_set_cc(struct nvmf_ctrl *c, uint32_t cc, unsigned *fx)
{
	int en = cc & NVMF_CC_EN, was = c->cc & NVMF_CC_EN;

	if (cc & ~(CC_CONFIG_MASK | NVMF_CC_EN | 0xc000u))
		return NVMF_SC_INVALID_FIELD; /* reserved bits, CRIME */
	if (NVMF_CC_SHN(cc) == 3)
		return NVMF_SC_INVALID_FIELD;
	if (en && (cc & CC_CONFIG_MASK) != CC_CONFIG_OK)
		return NVMF_SC_INVALID_FIELD; /* nothing else is implemented */
	if (en && was && (cc & CC_CONFIG_MASK) != (c->cc & CC_CONFIG_MASK))
		return NVMF_SC_INVALID_FIELD; /* no reconfiguration while enabled */
	c->cc = cc;
	if (en && !was) {
		c->csts = NVMF_CSTS_RDY;
	} else if (!en && was) {
		/* A controller reset: the I/O queues go, the state starts over. */
		c->csts = 0;
		c->nr_ioq = 0;
		*fx |= NVMF_FX_RESET;
	}
	if (NVMF_CC_SHN(cc)) {
		/* The target flushes before this command completes, so "complete" is true when the host reads it. */
		c->csts = (c->csts & ~NVMF_CSTS_SHST_MASK) | NVMF_CSTS_SHST_DONE;
		*fx |= NVMF_FX_SHUTDOWN;
	}
	return NVMF_SC_SUCCESS;
}

static uint16_t prop_set(struct nvmf_ctrl *c, const struct nvmf_prop *p, unsigned *fx)
{
	if (p->offset != NVMF_PROP_CC || p->size != 4 || p->value >> 32)
		return NVMF_SC_INVALID_FIELD; /* CAP, VS, CSTS are read-only; NSSR not supported */
	return prop_set_cc(c, (uint32_t)p->value, fx);
}

/* ---- Identify ---------------------------------------------------------------- */

/* An ASCII field padded with spaces, as Identify wants it. */
static void pad_str(uint8_t *out, size_t n, const char *s)
{
	size_t k = strnlen(s, n);

	memset(out, ' ', n);
	memcpy(out, s, k);
}

static unsigned ilog2(uint64_t v)
{
	unsigned r = 0;

	while (v >>= 1)
		r++;
	return r;
}

static void identify_ctrl(const struct nvmf_ctrl *c, uint8_t *d)
{
	const struct nvmf_subsys *ss = c->ss;

	pad_str(d + 4, 20, ss->serial);
	pad_str(d + 24, 40, MODEL);
	pad_str(d + 64, 8, FIRMWARE);
	d[72] = 6;                                          /* RAB */
	d[76] = CMIC_MULTI_CTRL;
	d[77] = (uint8_t)ilog2(ss->max_xfer / NVMF_MPS);    /* MDTS */
	zc_ex_put16(d + 78, c->cntlid);
	zc_ex_put32(d + 80, NVMF_VS);
	zc_ex_put32(d + 96, HID_128 | TBKAS);               /* CTRATT */
	d[111] = c->discovery ? 2 : 1;                      /* CNTRLTYPE: discovery or I/O */
	d[258] = 3;                                         /* ACL: 4 aborts (0-based) */
	d[259] = NVMF_AERL - 1;                             /* AERL (0-based) */
	d[260] = 0x3;                                       /* FRMW: one slot, read-only */
	d[261] = 0x4;                                       /* LPA: extended data (offsets) for Get Log Page */
	zc_ex_put16(d + 320, NVMF_KAS_MS / 100);            /* KAS, 100 ms units */
	d[512] = 0x66;                                      /* SQES: 64 bytes */
	d[513] = 0x44;                                      /* CQES: 16 bytes */
	zc_ex_put16(d + 514, ss->max_qsize);                /* MAXCMD */
	zc_ex_put32(d + 516, c->discovery ? 0 : 1);         /* NN */
	if (!c->discovery) {
		zc_ex_put16(d + 520, ONCS_DSM | ONCS_WRITE_ZEROES);
		d[525] = (uint8_t)ss->vwc;                  /* VWC */
	}
	zc_ex_put32(d + 536, SGLS_SUPPORTED | SGLS_KEYED | (ss->icd_size ? SGLS_OFFSET : 0));
	memcpy(d + 768, c->discovery ? NVMF_DISCOVERY_NQN : ss->nqn,
	       strlen(c->discovery ? NVMF_DISCOVERY_NQN : ss->nqn));
	/* Fabrics: IOCCSZ and IORCSZ in 16-byte units, ICDOFF 0, dynamic controller model, one SGL descriptor. */
	zc_ex_put32(d + 1792, (NVMF_SQE_SIZE + (c->discovery ? 0 : ss->icd_size)) / 16);
	zc_ex_put32(d + 1796, NVMF_CQE_SIZE / 16);
	d[1803] = 1;                                        /* MSDBD */
}

static void identify_ns(const struct nvmf_ns *ns, uint8_t *d)
{
	zc_ex_put64(d, ns->nblocks);         /* NSZE */
	zc_ex_put64(d + 8, ns->nblocks);     /* NCAP */
	zc_ex_put64(d + 16, ns->nblocks);    /* NUSE */
	d[30] = 1;                           /* NMIC: shared by the controllers */
	d[33] = 0x1 | 0x8;                   /* DLFEAT: deallocated blocks read zeros; Write Zeroes may deallocate */
	d[99] = ns->read_only ? 1 : 0;       /* NSATTR: write protected */
	memcpy(d + 104, ns->nguid, 16);
	memcpy(d + 120, ns->eui64, 8);
	d[128 + 2] = (uint8_t)ilog2(ns->block_size); /* LBAF0: LBADS, no metadata */
}

/* Namespace identification descriptors: NIDT, NIDL, 2 reserved, NID. */
static size_t ns_desc(uint8_t *d, uint8_t type, const void *id, uint8_t len)
{
	d[0] = type;
	d[1] = len;
	memcpy(d + 4, id, len);
	return 4u + len;
}

static void identify_ns_descs(const struct nvmf_ns *ns, uint8_t *d)
{
	static const uint8_t csi_nvm = 0;
	size_t off = 0;

	off += ns_desc(d + off, 1, ns->eui64, 8);
	off += ns_desc(d + off, 2, ns->nguid, 16);
	off += ns_desc(d + off, 3, ns->uuid, 16);
	ns_desc(d + off, 4, &csi_nvm, 1);
}

static uint16_t identify(const struct nvmf_ctrl *c, const struct nvmf_sqe *sqe, uint8_t *d)
{
	uint8_t cns = (uint8_t)sqe->cdw10;

	memset(d, 0, NVMF_IDENTIFY_SIZE);
	if (cns == 0x01) {
		identify_ctrl(c, d);
		return NVMF_SC_SUCCESS;
	}
	if (c->discovery)
		return NVMF_SC_INVALID_FIELD;
	switch (cns) {
	case 0x00: /* namespace */
		if (sqe->nsid != NVMF_NSID)
			return NVMF_SC_INVALID_NS;
		identify_ns(&c->ss->ns, d);
		return NVMF_SC_SUCCESS;
	case 0x02: /* active namespaces above nsid */
		if (sqe->nsid >= 0xfffffffeu)
			return NVMF_SC_INVALID_NS;
		if (sqe->nsid < NVMF_NSID)
			zc_ex_put32(d, NVMF_NSID);
		return NVMF_SC_SUCCESS;
	case 0x03: /* namespace identification descriptors */
		if (sqe->nsid != NVMF_NSID)
			return NVMF_SC_INVALID_NS;
		identify_ns_descs(&c->ss->ns, d);
		return NVMF_SC_SUCCESS;
	case 0x06: /* NVM command set controller data: all zero, no limits beyond MDTS */
		return sqe->cdw11 >> 24 == 0 ? NVMF_SC_SUCCESS : NVMF_SC_INVALID_FIELD;
	}
	return NVMF_SC_INVALID_FIELD;
}

/* ---- Get Log Page ---------------------------------------------------------------- */

static void disc_entry(const struct nvmf_subsys *ss, uint8_t *e)
{
	e[0] = 1;                     /* TRTYPE: RDMA */
	e[1] = ss->adrfam;
	e[2] = 2;                     /* SUBTYPE: an NVM subsystem */
	zc_ex_put16(e + 4, 1);        /* PORTID */
	zc_ex_put16(e + 6, NVMF_CNTLID_DYNAMIC);
	zc_ex_put16(e + 8, NVMF_AQ_DEPTH); /* ASQSZ */
	memcpy(e + 32, ss->trsvcid, strnlen(ss->trsvcid, 32));
	memcpy(e + 256, ss->nqn, strlen(ss->nqn));
	memcpy(e + 512, ss->traddr, strnlen(ss->traddr, 256));
	e[768] = 1;                   /* RDMA QPTYPE: reliable connected */
	e[769] = 1;                   /* RDMA PRTYPE: no provider specified */
	e[770] = 1;                   /* RDMA CMS: rdma_cm */
}

/* Builds log page lid into buf (LOG_SIZE_MAX bytes, zeroed); returns its size, or 0 if there is no such page. */
static size_t log_page(const struct nvmf_ctrl *c, uint8_t lid, uint32_t nsid, uint8_t *buf)
{
	if (c->discovery) {
		if (lid != NVMF_LOG_DISCOVERY)
			return 0;
		zc_ex_put64(buf, 1);  /* GENCTR: the list never changes */
		zc_ex_put64(buf + 8, 1); /* NUMREC */
		disc_entry(c->ss, buf + NVMF_DISC_ENTRY_SIZE);
		return 2 * NVMF_DISC_ENTRY_SIZE;
	}
	switch (lid) {
	case NVMF_LOG_ERROR:
		return 64; /* one entry (ELPE 0), empty */
	case NVMF_LOG_SMART:
		if (nsid != 0 && nsid != NVMF_NSID && nsid != NVMF_NSID_ALL)
			return 0;
		zc_ex_put16(buf + 1, 273 + 25); /* composite temperature, kelvin */
		buf[3] = 100;                   /* available spare % */
		buf[4] = 10;                    /* its threshold */
		return 512;
	case NVMF_LOG_FW_SLOT:
		buf[0] = 1; /* AFI: slot 1 active */
		pad_str(buf + 8, 8, FIRMWARE);
		return 512;
	case NVMF_LOG_CHANGED_NS:
		return 4096; /* the namespace never changes */
	}
	return 0;
}

static uint16_t get_log_page(const struct nvmf_ctrl *c, const struct nvmf_sqe *sqe, const struct nvmf_sgl *sgl,
			     uint8_t *d)
{
	uint8_t buf[LOG_SIZE_MAX] = {0};
	uint8_t lid = (uint8_t)sqe->cdw10;
	uint64_t numd = (sqe->cdw10 >> 16 | (uint64_t)(sqe->cdw11 & 0xffff) << 16) + 1;
	uint64_t off = sqe->cdw12 | (uint64_t)sqe->cdw13 << 32, len = numd * 4;
	size_t size = log_page(c, lid, sqe->nsid, buf);

	if (!size)
		return NVMF_SC_INVALID_LOG_PAGE;
	if (len != sgl->len)
		return NVMF_SC_SGL_INVALID_DATA;
	if (off & 3 || off > size)
		return NVMF_SC_INVALID_FIELD;
	memset(d, 0, len);
	memcpy(d, buf + off, len < size - off ? len : size - off);
	return NVMF_SC_SUCCESS;
}

/* ---- features ---------------------------------------------------------------------- */

static uint32_t queues_value(uint16_t n)
{
	return (uint32_t)(n - 1) | (uint32_t)(n - 1) << 16;
}

static uint16_t set_features(struct nvmf_ctrl *c, const struct nvmf_sqe *sqe, uint64_t *result)
{
	uint8_t fid = (uint8_t)sqe->cdw10;
	uint32_t v = sqe->cdw11;
	uint16_t nsq = (uint16_t)v, ncq = (uint16_t)(v >> 16);

	if (sqe->cdw10 >> 31)
		return NVMF_SC_FEATURE_NOT_SAVEABLE;
	switch (fid) {
	case NVMF_FEAT_KATO:
		c->kato = v;
		return NVMF_SC_SUCCESS;
	case NVMF_FEAT_ASYNC_EVENT:
		c->aec = v;
		return NVMF_SC_SUCCESS;
	}
	if (c->discovery)
		return NVMF_SC_INVALID_FIELD;
	switch (fid) {
	case NVMF_FEAT_NUM_QUEUES:
		if (nsq == 0xffff || ncq == 0xffff)
			return NVMF_SC_INVALID_FIELD;
		if (c->ioq_live)
			return NVMF_SC_CMD_SEQ_ERROR;
		nsq = nsq < ncq ? nsq : ncq;
		c->nr_ioq = (uint16_t)(nsq + 1u < c->ss->max_ioq ? nsq + 1u : c->ss->max_ioq);
		*result = queues_value(c->nr_ioq);
		return NVMF_SC_SUCCESS;
	case NVMF_FEAT_VWC:
		if (!c->ss->vwc || v >> 1)
			return NVMF_SC_INVALID_FIELD;
		c->vwce = v & 1;
		return NVMF_SC_SUCCESS;
	}
	return NVMF_SC_INVALID_FIELD;
}

static uint16_t get_features(const struct nvmf_ctrl *c, const struct nvmf_sqe *sqe, uint64_t *result)
{
	uint8_t fid = (uint8_t)sqe->cdw10;
	unsigned sel = sqe->cdw10 >> 8 & 0x7;
	int dflt = sel == 1;

	if (sel > 3)
		return NVMF_SC_INVALID_FIELD;
	switch (fid) {
	case NVMF_FEAT_KATO: *result = dflt ? 0 : c->kato; break;
	case NVMF_FEAT_ASYNC_EVENT: *result = dflt ? 0 : c->aec; break;
	case NVMF_FEAT_NUM_QUEUES:
		if (c->discovery)
			return NVMF_SC_INVALID_FIELD;
		*result = queues_value(dflt || !c->nr_ioq ? c->ss->max_ioq : c->nr_ioq);
		break;
	case NVMF_FEAT_VWC:
		if (c->discovery || !c->ss->vwc)
			return NVMF_SC_INVALID_FIELD;
		*result = dflt ? 1 : (uint64_t)c->vwce;
		break;
	default:
		return NVMF_SC_INVALID_FIELD;
	}
	if (sel == 3)
		*result = 0x4; /* capabilities: changeable, not saveable, not per namespace */
	return NVMF_SC_SUCCESS;
}

/* ---- admin dispatch ----------------------------------------------------------------- */

/* The SGL length a command that returns data needs; 0 if it returns none. */
static uint16_t data_len_ok(const struct nvmf_sgl *sgl, uint32_t want)
{
	return sgl->len == want ? NVMF_SC_SUCCESS : NVMF_SC_SGL_INVALID_DATA;
}

static uint16_t fabrics(struct nvmf_ctrl *c, const struct nvmf_sqe *sqe, uint64_t *result, unsigned *fx)
{
	struct nvmf_prop p;

	nvmf_prop_decode(sqe, &p);
	switch (sqe->fctype) {
	case NVMF_FCT_PROP_GET:
		return prop_get(c, &p, result);
	case NVMF_FCT_PROP_SET:
		return prop_set(c, &p, fx);
	case NVMF_FCT_CONNECT:
		return NVMF_SC_CMD_SEQ_ERROR; /* the queue is connected already */
	}
	return NVMF_SC_INVALID_OPCODE;
}

uint16_t nvmf_admin_exec(struct nvmf_ctrl *c, const struct nvmf_sqe *sqe, const struct nvmf_sgl *sgl, uint8_t *data,
			 uint64_t *result, unsigned *fx)
{
	uint16_t st;

	*result = 0;
	*fx = 0;
	if (sqe->opcode == NVMF_FABRICS)
		return fabrics(c, sqe, result, fx);
	if (!(c->csts & NVMF_CSTS_RDY))
		return NVMF_SC_CMD_SEQ_ERROR; /* only Fabrics commands before CC.EN */
	switch (sqe->opcode) {
	case NVMF_ADM_IDENTIFY:
		st = data_len_ok(sgl, NVMF_IDENTIFY_SIZE);
		return st ? st : identify(c, sqe, data);
	case NVMF_ADM_GET_LOG_PAGE:
		return get_log_page(c, sqe, sgl, data);
	case NVMF_ADM_SET_FEATURES:
		return set_features(c, sqe, result);
	case NVMF_ADM_GET_FEATURES:
		return get_features(c, sqe, result);
	case NVMF_ADM_KEEP_ALIVE:
		return NVMF_SC_SUCCESS; /* the target restarts the timer for every command */
	case NVMF_ADM_ASYNC_EVENT:
		if (c->aers >= NVMF_AERL)
			return NVMF_SC_AER_LIMIT;
		c->aers++;
		*fx = NVMF_FX_HOLD;
		return NVMF_SC_SUCCESS;
	case NVMF_ADM_ABORT:
		*result = 1; /* not aborted: commands run to completion */
		return NVMF_SC_SUCCESS;
	}
	return NVMF_SC_INVALID_OPCODE;
}

/* ---- I/O commands ---------------------------------------------------------------------- */

static uint16_t lba_range(const struct nvmf_ns *ns, uint64_t slba, uint64_t nlb)
{
	return slba >= ns->nblocks || nlb > ns->nblocks - slba ? NVMF_SC_LBA_RANGE : NVMF_SC_SUCCESS;
}

/*
 * The commands on an LBA range (Read, Write, Write Zeroes): cdw10-11 SLBA,
 * cdw12 NLB 15:0 (0-based), FUA 30, LR 31; reserved (the bits of
 * reserved_mask: protection information, directives, ...) must be 0.
 */
static uint16_t lba_cmd(const struct nvmf_ns *ns, const struct nvmf_sqe *sqe, uint32_t reserved_mask, int writes,
			struct nvmf_io *io)
{
	uint64_t slba = sqe->cdw10 | (uint64_t)sqe->cdw11 << 32, nlb = (sqe->cdw12 & 0xffff) + 1u;
	uint16_t st;

	if (sqe->cdw12 & reserved_mask)
		return NVMF_SC_INVALID_FIELD;
	if (writes && ns->read_only)
		return NVMF_SC_NS_WRITE_PROTECTED;
	st = lba_range(ns, slba, nlb);
	if (st)
		return st;
	io->offset = slba * ns->block_size;
	io->len = nlb * ns->block_size;
	io->fua = sqe->cdw12 >> 30 & 1;
	return NVMF_SC_SUCCESS;
}

/* Read and Write: bits 29:16 (PRINFO, DTYPE, reserved) not supported; the data is the SGL's, within MDTS. */
static uint16_t rw_check(const struct nvmf_ctrl *c, const struct nvmf_sqe *sqe, const struct nvmf_sgl *sgl,
			 struct nvmf_io *io)
{
	uint16_t st = lba_cmd(&c->ss->ns, sqe, 0x3fff0000u, sqe->opcode == NVMF_IO_WRITE, io);

	if (st)
		return st;
	if (io->len > c->ss->max_xfer)
		return NVMF_SC_INVALID_FIELD;
	return io->len == sgl->len ? NVMF_SC_SUCCESS : NVMF_SC_SGL_INVALID_DATA;
}

/* Write Zeroes: no data, not bound by MDTS; DEAC (bit 25) allows deallocating. */
static uint16_t write_zeroes_check(const struct nvmf_ctrl *c, const struct nvmf_sqe *sqe, struct nvmf_io *io)
{
	uint16_t st = lba_cmd(&c->ss->ns, sqe, 0xfu << 26 | 0x1ffu << 16, 1, io);

	io->deallocate = !st && (sqe->cdw12 >> 25 & 1);
	return st;
}

/* Dataset Management: cdw10 NR 7:0 (0-based), cdw11 IDR 0, IDW 1, AD 2; the ranges are the data. */
static uint16_t dsm_check(const struct nvmf_ctrl *c, const struct nvmf_sqe *sqe, const struct nvmf_sgl *sgl,
			  struct nvmf_io *io)
{
	if (sqe->cdw10 >> 8 || sqe->cdw11 >> 3)
		return NVMF_SC_INVALID_FIELD;
	io->deallocate = sqe->cdw11 >> 2 & 1;
	if (io->deallocate && c->ss->ns.read_only)
		return NVMF_SC_NS_WRITE_PROTECTED;
	io->nr_ranges = (sqe->cdw10 & 0xff) + 1;
	io->len = (uint64_t)io->nr_ranges * NVMF_DSM_RANGE_SIZE;
	/* Linux describes room for 256 ranges whatever NR says (nvme_setup_discard): longer is fine. */
	return io->len <= sgl->len ? NVMF_SC_SUCCESS : NVMF_SC_SGL_INVALID_DATA;
}

uint16_t nvmf_io_check(const struct nvmf_ctrl *c, const struct nvmf_sqe *sqe, const struct nvmf_sgl *sgl,
		       struct nvmf_io *io)
{
	memset(io, 0, sizeof(*io));
	io->opcode = sqe->opcode;
	switch (sqe->opcode) {
	case NVMF_IO_FLUSH:
	case NVMF_IO_WRITE:
	case NVMF_IO_READ:
	case NVMF_IO_WRITE_ZEROES:
	case NVMF_IO_DSM:
		break;
	default:
		return NVMF_SC_INVALID_OPCODE;
	}
	if (sqe->nsid != NVMF_NSID && !(sqe->opcode == NVMF_IO_FLUSH && sqe->nsid == NVMF_NSID_ALL))
		return NVMF_SC_INVALID_NS;
	switch (sqe->opcode) {
	case NVMF_IO_WRITE:
	case NVMF_IO_READ:
		return rw_check(c, sqe, sgl, io);
	case NVMF_IO_WRITE_ZEROES:
		return write_zeroes_check(c, sqe, io);
	case NVMF_IO_DSM:
		return dsm_check(c, sqe, sgl, io);
	}
	return NVMF_SC_SUCCESS; /* Flush */
}

uint16_t nvmf_dsm_range_check(const struct nvmf_ns *ns, const struct nvmf_dsm_range *r, uint64_t *offset,
			      uint64_t *len)
{
	*offset = r->slba * ns->block_size;
	*len = (uint64_t)r->nlb * ns->block_size;
	if (r->nlb == 0)
		return NVMF_SC_SUCCESS; /* an empty range deallocates nothing */
	return lba_range(ns, r->slba, r->nlb);
}

/* ---- controller ids ------------------------------------------------------------------------ */

void nvmf_cntlids_init(struct nvmf_cntlids *a, uint32_t seed)
{
	memset(a, 0, sizeof(*a));
	a->next = (uint16_t)(1 + seed % NVMF_CNTLID_MAX);
}

int nvmf_cntlid_alloc(struct nvmf_cntlids *a)
{
	unsigned i;

	for (i = 0; i < NVMF_CNTLID_MAX; i++) {
		uint16_t id = a->next;

		a->next = id == NVMF_CNTLID_MAX ? 1 : (uint16_t)(id + 1);
		if (!(a->used[id / 8] >> (id % 8) & 1)) {
			a->used[id / 8] |= (uint8_t)(1u << (id % 8));
			return id;
		}
	}
	return -1;
}

void nvmf_cntlid_free(struct nvmf_cntlids *a, uint16_t id)
{
	if (id >= 1 && id <= NVMF_CNTLID_MAX)
		a->used[id / 8] &= (uint8_t)~(1u << (id % 8));
}
