/*
 * nvmf.h - NVMe over Fabrics, RDMA transport: the wire formats (pure code)
 *
 * Encoders and validating decoders for what crosses the wire between an
 * NVMe-oF RDMA host and a target: the rdma_cm private data of the connection
 * request, reply and reject (nvme_rdma_cm_req/rep/rej), the 64-byte
 * submission queue entry with its SGL descriptor, the 16-byte completion
 * queue entry, the Fabrics Connect command and its 1024-byte connect data,
 * Property Get/Set fields and Dataset Management ranges. No RDMA, no I/O:
 * the controller logic is in nvmf_ctrl.h, the transport in blk_target.c.
 *
 * Every multi-byte field is little-endian. Offsets in the comments are byte
 * offsets from the start of the structure, as in the NVMe base and fabrics
 * specifications.
 */
#ifndef ZC_NVMF_H
#define ZC_NVMF_H

#include <stddef.h>
#include <stdint.h>

#define NVMF_PORT 4420
#define NVMF_DISCOVERY_NQN "nqn.2014-08.org.nvmexpress.discovery"
#define NVMF_NQN_FIELD 256 /* bytes an NQN field occupies */
#define NVMF_NQN_MAX 223   /* longest NQN, without the NUL */
#define NVMF_AQ_DEPTH 32   /* admin queue entries the Linux host asks for; the most we grant */

/* ---- rdma_cm private data (RDMA transport binding) ---------------------- */

#define NVMF_CM_REQ_SIZE 32
#define NVMF_CM_REP_SIZE 32
#define NVMF_CM_REJ_SIZE 4

/* Reason in a reject's private data. */
enum nvmf_cm_status {
	NVMF_CM_OK = 0,
	NVMF_CM_INVALID_LEN = 0x01,
	NVMF_CM_INVALID_RECFMT = 0x02,
	NVMF_CM_INVALID_QID = 0x03,
	NVMF_CM_INVALID_HSQSIZE = 0x04,
	NVMF_CM_INVALID_HRQSIZE = 0x05,
	NVMF_CM_NO_RSC = 0x06,
	NVMF_CM_INVALID_IRD = 0x07,
	NVMF_CM_INVALID_ORD = 0x08,
};

/* Host -> target: 0 le16 recfmt, 2 le16 qid, 4 le16 hrqsize, 6 le16 hsqsize. */
struct nvmf_cm_req {
	uint16_t qid;
	uint16_t hrqsize; /* host receive queue entries: the most CQEs in flight */
	uint16_t hsqsize; /* host send queue entries, 0-based */
};

/*
 * nvmf_cm_req_decode - parse a connection request's private data
 *
 * max_qid: the highest queue id accepted (the I/O queues per controller);
 * max_qsize: the most entries of an I/O queue (the admin queue's limit is
 * NVMF_AQ_DEPTH). Returns NVMF_CM_OK or the reject reason. Bytes 8-31 are
 * reserved and ignored (later revisions define some of them); rdma_cm pads
 * the private data, so len may exceed NVMF_CM_REQ_SIZE.
 */
int nvmf_cm_req_decode(const void *buf, size_t len, uint16_t max_qid, uint16_t max_qsize, struct nvmf_cm_req *req);
void nvmf_cm_req_encode(const struct nvmf_cm_req *req, uint8_t out[NVMF_CM_REQ_SIZE]);
/* Target -> host on accept: 0 le16 recfmt, 2 le16 crqsize (target receive queue entries). */
void nvmf_cm_rep_encode(uint16_t crqsize, uint8_t out[NVMF_CM_REP_SIZE]);
/* Returns crqsize, or -1 if the reply is malformed. */
int nvmf_cm_rep_decode(const void *buf, size_t len);
/* Target -> host on reject: 0 le16 recfmt, 2 le16 sts (enum nvmf_cm_status). */
void nvmf_cm_rej_encode(uint16_t sts, uint8_t out[NVMF_CM_REJ_SIZE]);
/* Returns sts, or -1 if the reject carries no NVMe-oF private data. */
int nvmf_cm_rej_decode(const void *buf, size_t len);
const char *nvmf_cm_status_str(int sts);

/* ---- status codes (the 15 bits above the CQE's phase tag) --------------- */

#define NVMF_SCT_CMD 0x100 /* command specific status */
#define NVMF_DNR 0x4000    /* do not retry */
#define NVMF_SC_MASK 0x7ff /* SCT and SC: what the status says, without DNR, More and CRD */

enum nvmf_sc {
	NVMF_SC_SUCCESS = 0x00,
	NVMF_SC_INVALID_OPCODE = 0x01,
	NVMF_SC_INVALID_FIELD = 0x02,
	NVMF_SC_CMDID_CONFLICT = 0x03,
	NVMF_SC_DATA_XFER_ERROR = 0x04,
	NVMF_SC_INTERNAL = 0x06,
	NVMF_SC_INVALID_NS = 0x0b,
	NVMF_SC_CMD_SEQ_ERROR = 0x0c,
	NVMF_SC_SGL_INVALID_LAST = 0x0d,
	NVMF_SC_SGL_INVALID_COUNT = 0x0e,
	NVMF_SC_SGL_INVALID_DATA = 0x0f, /* Data SGL Length Invalid */
	NVMF_SC_SGL_INVALID_TYPE = 0x11,
	NVMF_SC_SGL_INVALID_OFFSET = 0x16,
	NVMF_SC_NS_WRITE_PROTECTED = 0x20,
	NVMF_SC_LBA_RANGE = 0x80,
	NVMF_SC_CAP_EXCEEDED = 0x81, /* what Linux's nvmet file backend answers past the end */
	NVMF_SC_AER_LIMIT = NVMF_SCT_CMD | 0x05,
	NVMF_SC_INVALID_LOG_PAGE = NVMF_SCT_CMD | 0x09,
	NVMF_SC_FEATURE_NOT_SAVEABLE = NVMF_SCT_CMD | 0x0d,
	NVMF_SC_CONNECT_FORMAT = NVMF_SCT_CMD | 0x80,
	NVMF_SC_CONNECT_CTRL_BUSY = NVMF_SCT_CMD | 0x81,
	NVMF_SC_CONNECT_INVALID_PARAM = NVMF_SCT_CMD | 0x82,
	NVMF_SC_CONNECT_INVALID_HOST = NVMF_SCT_CMD | 0x84,
};

/* Every status but success carries DNR: a retry would fail the same way. */
static inline uint16_t nvmf_status(uint16_t sc)
{
	return sc == NVMF_SC_SUCCESS ? sc : (uint16_t)(sc | NVMF_DNR);
}

const char *nvmf_status_str(uint16_t status);

/* ---- submission queue entry -------------------------------------------- */

#define NVMF_SQE_SIZE 64
#define NVMF_CQE_SIZE 16
#define NVMF_SGL_SIZE 16
#define NVMF_PSDT_SGL 0x1 /* PSDT 01b: SGL for data, the only kind on fabrics */

/* Admin opcodes */
enum nvmf_admin_opcode {
	NVMF_ADM_GET_LOG_PAGE = 0x02,
	NVMF_ADM_IDENTIFY = 0x06,
	NVMF_ADM_ABORT = 0x08,
	NVMF_ADM_SET_FEATURES = 0x09,
	NVMF_ADM_GET_FEATURES = 0x0a,
	NVMF_ADM_ASYNC_EVENT = 0x0c,
	NVMF_ADM_KEEP_ALIVE = 0x18,
	NVMF_FABRICS = 0x7f, /* on any queue; byte 4 is the fctype */
};

enum nvmf_fctype {
	NVMF_FCT_PROP_SET = 0x00,
	NVMF_FCT_CONNECT = 0x01,
	NVMF_FCT_PROP_GET = 0x04,
};

/* I/O (NVM command set) opcodes */
enum nvmf_io_opcode {
	NVMF_IO_FLUSH = 0x00,
	NVMF_IO_WRITE = 0x01,
	NVMF_IO_READ = 0x02,
	NVMF_IO_WRITE_ZEROES = 0x08,
	NVMF_IO_DSM = 0x09,
};

/* SGL descriptor types (byte 15: type << 4 | subtype) */
enum nvmf_sgl_type {
	NVMF_SGL_INCAPSULE = 0x01,  /* data block, offset into the capsule's data */
	NVMF_SGL_KEYED = 0x40,      /* keyed data block: remote address + rkey */
	NVMF_SGL_KEYED_INV = 0x4f,  /* the same; the target may invalidate the key */
};

/*
 * A data pointer. Keyed: 0 le64 addr, 8 u24 length, 11 le32 key, 15 type.
 * In-capsule: 0 le64 offset, 8 le32 length, 12 reserved[3], 15 type.
 */
struct nvmf_sgl {
	uint8_t type;  /* enum nvmf_sgl_type */
	uint64_t addr; /* remote address, or offset into the in-capsule data */
	uint32_t len;
	uint32_t key;
};

/* Parses a descriptor: NVMF_SC_SUCCESS, or NVMF_SC_SGL_INVALID_TYPE for any other type. */
uint16_t nvmf_sgl_decode(const uint8_t d[NVMF_SGL_SIZE], struct nvmf_sgl *sgl);
void nvmf_sgl_encode(const struct nvmf_sgl *sgl, uint8_t out[NVMF_SGL_SIZE]);

/*
 * A decoded SQE: 0 u8 opcode, 1 u8 flags (FUSE 1:0, PSDT 7:6), 2 u16 cid,
 * 4 le32 nsid (a fabrics command's fctype is byte 4), 16 le64 mptr,
 * 24 dptr[16], 40 le32 cdw10 .. 60 le32 cdw15.
 */
struct nvmf_sqe {
	uint8_t opcode;
	uint8_t flags;
	uint16_t cid; /* echoed verbatim in the CQE */
	uint32_t nsid;
	uint8_t fctype;
	uint8_t dptr[NVMF_SGL_SIZE];
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

/* Returns 0, or -1 when len < NVMF_SQE_SIZE: not a capsule (the queue is dropped, as with a transport error). */
int nvmf_sqe_decode(const void *buf, size_t len, struct nvmf_sqe *sqe);
void nvmf_sqe_encode(const struct nvmf_sqe *sqe, uint8_t out[NVMF_SQE_SIZE]);

enum nvmf_dir {
	NVMF_DIR_NONE = 0,
	NVMF_DIR_TO_CTRL = 1,   /* host -> target: the target RDMA-READs or takes in-capsule data */
	NVMF_DIR_FROM_CTRL = 2, /* target -> host: RDMA WRITE */
};

/* The data a command moves, from its opcode (or fctype) bits 1:0. */
enum nvmf_dir nvmf_sqe_dir(const struct nvmf_sqe *sqe);

/*
 * nvmf_sqe_data - the checks every command gets before its own
 *
 * FUSE must be 0 and PSDT 01b (Invalid Field). For a command that moves
 * data, the descriptor must be keyed (either kind) or, for host -> target
 * data on a queue that takes it (icd_max > 0), in-capsule with offset +
 * length within the icd_len bytes that followed the SQE (SGL Offset / Data
 * SGL Length Invalid). *sgl gets the descriptor (len 0 for no data).
 */
uint16_t nvmf_sqe_data(const struct nvmf_sqe *sqe, uint32_t icd_max, size_t icd_len, struct nvmf_sgl *sgl);

/* ---- completion queue entry --------------------------------------------- */

/* 0 le64 result (DW0-1), 8 le16 sq_head, 10 le16 sq_id, 12 u16 cid, 14 le16 status << 1 | phase (0). */
struct nvmf_cqe {
	uint64_t result;
	uint16_t sq_head;
	uint16_t sq_id;
	uint16_t cid;
	uint16_t status; /* enum nvmf_sc (| NVMF_DNR) */
};

void nvmf_cqe_encode(const struct nvmf_cqe *cqe, uint8_t out[NVMF_CQE_SIZE]);
/* Returns 0, or -1 when len != NVMF_CQE_SIZE. */
int nvmf_cqe_decode(const void *buf, size_t len, struct nvmf_cqe *cqe);

/* ---- Fabrics commands --------------------------------------------------- */

/* Connect: 40 le16 recfmt, 42 le16 qid, 44 le16 sqsize (0-based), 46 u8 cattr, 48 le32 kato (ms). */
struct nvmf_connect {
	uint16_t recfmt;
	uint16_t qid;
	uint16_t sqsize;
	uint8_t cattr;
	uint32_t kato;
};

void nvmf_connect_decode(const struct nvmf_sqe *sqe, struct nvmf_connect *c);
/* Host: the Connect command for c (fctype, cdw10-12); the data pointer is the caller's. */
void nvmf_connect_encode(const struct nvmf_connect *c, uint16_t cid, struct nvmf_sqe *sqe);

#define NVMF_CONNECT_DATA_SIZE 1024
#define NVMF_CNTLID_DYNAMIC 0xffff /* an admin Connect asks for any controller */
#define NVMF_CNTLID_MAX 0xffef     /* 0xfff0-0xffff are reserved */

/* Connect data: 0 hostid[16], 16 le16 cntlid, 256 subnqn[256], 512 hostnqn[256]. */
struct nvmf_connect_data {
	uint8_t hostid[16];
	uint16_t cntlid;
	char subnqn[NVMF_NQN_MAX + 1];
	char hostnqn[NVMF_NQN_MAX + 1];
};

/* Where an invalid Connect parameter is: in the command (SQE) or in the connect data. */
#define NVMF_IATTR_SQE 0
#define NVMF_IATTR_DATA 1
#define NVMF_IPO_QID 42
#define NVMF_IPO_SQSIZE 44
#define NVMF_IPO_CNTLID 16
#define NVMF_IPO_SUBNQN 256
#define NVMF_IPO_HOSTNQN 512

/* The result (DW0) of a Connect Invalid Parameters status: le16 ipo, u8 iattr. */
static inline uint64_t nvmf_connect_invalid(uint8_t iattr, uint16_t ipo)
{
	return (uint64_t)ipo | (uint64_t)iattr << 16;
}

/*
 * nvmf_connect_data_decode - parse the 1024 bytes a Connect carries
 *
 * Both NQNs must be NUL-terminated within their field, start with "nqn."
 * and be at most NVMF_NQN_MAX characters. Returns NVMF_SC_SUCCESS, or
 * NVMF_SC_SGL_INVALID_DATA for len != 1024, or
 * NVMF_SC_CONNECT_INVALID_PARAM with *result naming the field.
 */
uint16_t nvmf_connect_data_decode(const void *buf, size_t len, struct nvmf_connect_data *cd, uint64_t *result);
void nvmf_connect_data_encode(const struct nvmf_connect_data *cd, uint8_t out[NVMF_CONNECT_DATA_SIZE]);
/* Whether s is a well-formed NQN ("nqn." prefix, 5..NVMF_NQN_MAX characters, printable ASCII). */
int nvmf_nqn_valid(const char *s);

/* Property Get/Set: 40 u8 attrib (size: 0 = 4 bytes, 1 = 8 bytes), 44 le32 offset, 48 le64 value (Set). */
struct nvmf_prop {
	uint8_t size; /* 4 or 8; 0 when attrib is invalid */
	uint32_t offset;
	uint64_t value;
};

void nvmf_prop_decode(const struct nvmf_sqe *sqe, struct nvmf_prop *p);
/* Host: Property Set (set != 0, p->value) or Get of p->size bytes at p->offset. */
void nvmf_prop_encode(const struct nvmf_prop *p, int set, uint16_t cid, struct nvmf_sqe *sqe);

/* ---- host side: commands and the data the target returns ---------------- */

/*
 * nvmf_cmd_init - an SQE with PSDT 01b and a null keyed data pointer (what
 * Linux sends for a command without data); nsid for I/O commands.
 */
void nvmf_cmd_init(struct nvmf_sqe *sqe, uint8_t opcode, uint16_t cid, uint32_t nsid);
/* Read / Write / Write Zeroes of nlb (1..65536) blocks from slba: CDW10-12. */
void nvmf_rw_encode(struct nvmf_sqe *sqe, uint64_t slba, uint32_t nlb);

/* What a host needs of Identify Controller (CNS 01h). */
struct nvmf_id_ctrl {
	uint16_t cntlid;
	uint8_t mdts;     /* max transfer 2^mdts pages (CAP.MPSMIN); 0: no limit */
	uint16_t kas;     /* keep-alive granularity, 100 ms units */
	uint8_t cntrltype;/* 1 I/O, 2 discovery */
	uint16_t maxcmd;
	uint32_t nn;
	uint16_t oncs;
	uint8_t vwc;
	uint32_t sgls;
	uint32_t ioccsz;  /* command capsule size, 16-byte units (SQE included) */
	uint32_t iorcsz;
	uint16_t icdoff;
	char subnqn[NVMF_NQN_MAX + 1];
};

#define NVMF_SGLS_KEYED 0x4      /* SGLS bit 2: keyed SGL data blocks */
#define NVMF_SGLS_OFFSET 0x100000 /* SGLS bit 20: in-capsule data (offset) */

/*
 * nvmf_id_ctrl_decode - parse the 4096 bytes of Identify Controller
 *
 * Returns 0, or -1 when what a host relies on is malformed: SUBNQN not a
 * NUL-terminated NQN, IOCCSZ below the SQE or beyond 1 MiB, IORCSZ below
 * the CQE, ICDOFF not 0 (in-capsule data right after the SQE is all we
 * send), no keyed SGL support.
 */
int nvmf_id_ctrl_decode(const uint8_t d[4096], struct nvmf_id_ctrl *id);

/* What a host needs of Identify Namespace (CNS 00h). */
struct nvmf_id_ns {
	uint64_t nsze;        /* blocks */
	uint32_t block_size;  /* from the LBA format FLBAS selects */
	int write_protected;  /* NSATTR bit 0 */
};

/* Returns 0, or -1 if FLBAS selects no format or one with metadata or a block size outside 512 B-4 KiB. */
int nvmf_id_ns_decode(const uint8_t d[4096], struct nvmf_id_ns *ns);

/* A discovery log page entry (log page 70h; NVMF_DISC_ENTRY_SIZE bytes each after a header of as many). */
#define NVMF_DISC_ENTRY_SIZE 1024

struct nvmf_disc_entry {
	uint8_t trtype;  /* 1: RDMA */
	uint8_t adrfam;
	uint8_t subtype; /* 2: an NVM subsystem, 1/3: a discovery controller */
	char trsvcid[33];
	char subnqn[NVMF_NQN_MAX + 1];
	char traddr[257];
};

/* Header: 0 le64 GENCTR, 8 le64 NUMREC. Returns NUMREC. */
uint64_t nvmf_disc_numrec(const uint8_t hdr[NVMF_DISC_ENTRY_SIZE]);
/* Returns 0, or -1 if SUBNQN is not a NUL-terminated NQN. TRSVCID/TRADDR: space padded, trimmed. */
int nvmf_disc_entry_decode(const uint8_t e[NVMF_DISC_ENTRY_SIZE], struct nvmf_disc_entry *de);

/* ---- Dataset Management ranges ------------------------------------------ */

#define NVMF_DSM_RANGE_SIZE 16
#define NVMF_DSM_MAX_RANGES 256

/* 0 le32 context attributes, 4 le32 length (LBAs), 8 le64 starting LBA. */
struct nvmf_dsm_range {
	uint32_t attr;
	uint32_t nlb;
	uint64_t slba;
};

void nvmf_dsm_range_decode(const uint8_t p[NVMF_DSM_RANGE_SIZE], struct nvmf_dsm_range *r);
void nvmf_dsm_range_encode(const struct nvmf_dsm_range *r, uint8_t out[NVMF_DSM_RANGE_SIZE]);

#endif
