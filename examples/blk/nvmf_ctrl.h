/*
 * nvmf_ctrl.h - an NVMe-oF controller's logic (pure code)
 *
 * What a target decides, without moving a byte: the subsystem and its one
 * namespace (nsid 1), Connect validation, controller ids, the property state
 * machine (CC.EN -> CSTS.RDY, CC.SHN -> CSTS.SHST), the admin commands
 * (Identify, Get Log Page, Set/Get Features, Keep Alive, Asynchronous Event
 * Request, Abort, Property Get/Set) with the data they return, the checks
 * of the I/O commands and the keep-alive deadline. blk_target.c moves the
 * data and talks to the backing store; the unit tests drive this directly.
 *
 * Two kinds of controller: an I/O controller of the subsystem, and a
 * discovery controller (NVMF_DISCOVERY_NQN) whose log page 70h lists the
 * subsystem, so that `nvme discover` finds it.
 */
#ifndef ZC_NVMF_CTRL_H
#define ZC_NVMF_CTRL_H

#include <stdint.h>

#include "nvmf.h"

#define NVMF_NSID 1            /* the namespace */
#define NVMF_NSID_ALL 0xffffffffu
#define NVMF_MAX_IOQ 64        /* I/O queues per controller, at most */
#define NVMF_IDENTIFY_SIZE 4096
#define NVMF_KAS_MS 1000       /* keep-alive granularity we declare (KAS = 10 x 100 ms) */
#define NVMF_AERL 4            /* asynchronous event requests held per controller */
#define NVMF_MPS 4096          /* the only memory page size (CAP.MPSMIN = MPSMAX = 0) */

/* Properties (Fabrics Property Get/Set offsets). */
#define NVMF_PROP_CAP 0x00  /* 8 bytes, read-only */
#define NVMF_PROP_VS 0x08   /* 4 bytes, read-only */
#define NVMF_PROP_CC 0x14   /* 4 bytes */
#define NVMF_PROP_CSTS 0x1c /* 4 bytes, read-only */

#define NVMF_VS 0x00010300 /* NVMe 1.3: the Linux host then asks for ns id descriptors */

#define NVMF_CC_EN 0x1
#define NVMF_CC_SHN(cc) (((cc) >> 14) & 0x3)
#define NVMF_CSTS_RDY 0x1
#define NVMF_CSTS_SHST_MASK (0x3u << 2)
#define NVMF_CSTS_SHST_DONE (0x2u << 2)

/* Features */
#define NVMF_FEAT_VWC 0x06
#define NVMF_FEAT_NUM_QUEUES 0x07
#define NVMF_FEAT_ASYNC_EVENT 0x0b
#define NVMF_FEAT_KATO 0x0f

/* Log pages */
#define NVMF_LOG_ERROR 0x01
#define NVMF_LOG_SMART 0x02
#define NVMF_LOG_FW_SLOT 0x03
#define NVMF_LOG_CHANGED_NS 0x04
#define NVMF_LOG_DISCOVERY 0x70

/* The namespace. Identifiers derive from the NQN and nsid, so they survive a restart. */
struct nvmf_ns {
	uint32_t block_size; /* 512 or 4096 */
	uint64_t nblocks;
	int read_only;
	uint8_t nguid[16];
	uint8_t eui64[8];
	uint8_t uuid[16];
};

/* What a target serves, and where (for the discovery log). */
struct nvmf_subsys {
	char nqn[NVMF_NQN_MAX + 1];
	char serial[21];
	struct nvmf_ns ns;
	int vwc;            /* a volatile write cache: Flush makes writes durable */
	uint32_t max_xfer;  /* bytes per Read/Write, a power of two >= NVMF_MPS (MDTS) */
	uint16_t max_qsize; /* entries per I/O queue (CAP.MQES + 1, MAXCMD) */
	uint16_t max_ioq;   /* I/O queues per controller, <= NVMF_MAX_IOQ */
	uint32_t icd_size;  /* in-capsule data bytes an I/O queue takes (IOCCSZ); 0 = none */
	uint8_t adrfam;     /* 1 IPv4, 2 IPv6 */
	char traddr[256];
	char trsvcid[32];
};

/*
 * nvmf_subsys_init - fill ss for a namespace of nblocks blocks
 *
 * Sets the NQN, the serial number and the namespace identifiers (NGUID,
 * EUI-64, UUID: hashes of NQN and nsid), and defaults for the rest:
 * no write cache, 128 KiB per command, 128 entries per I/O queue, 8 I/O
 * queues, 4 KiB in-capsule data, IPv4. Returns 0, or -1 if nqn is not a
 * valid NQN or the block size is neither 512 nor 4096.
 */
int nvmf_subsys_init(struct nvmf_subsys *ss, const char *nqn, uint32_t block_size, uint64_t nblocks);

/* ---- controllers --------------------------------------------------------- */

struct nvmf_ctrl {
	const struct nvmf_subsys *ss;
	int discovery;
	uint16_t cntlid;
	uint8_t hostid[16];
	char hostnqn[NVMF_NQN_MAX + 1];
	uint32_t cc, csts;
	uint32_t kato;        /* ms; 0: no keep-alive timeout */
	uint16_t nr_ioq;      /* I/O queues granted by Set Features (0 until then) */
	uint64_t ioq_live;    /* bit qid-1: that I/O queue is connected */
	uint32_t aec;         /* asynchronous event configuration */
	int vwce;             /* volatile write cache enabled */
	unsigned aers;        /* asynchronous event requests held */
};

/*
 * nvmf_connect_check - the checks of a Connect common to every queue
 *
 * cm: the queue's connection request, which sized it. RECFMT 0 (else
 * Incompatible Format); QID that of the connection request, SQSIZE 1..the
 * requested hsqsize, SUBNQN this subsystem's or the discovery NQN (only on
 * the admin queue), and on the admin queue CNTLID 0xffff (else Connect
 * Invalid Parameters, *result naming the field).
 */
uint16_t nvmf_connect_check(const struct nvmf_subsys *ss, const struct nvmf_cm_req *cm, const struct nvmf_connect *cmd,
			    const struct nvmf_connect_data *cd, uint64_t *result);

/* A new controller for an admin Connect that passed nvmf_connect_check(). */
void nvmf_ctrl_init(struct nvmf_ctrl *c, const struct nvmf_subsys *ss, uint16_t cntlid, const struct nvmf_connect *cmd,
		    const struct nvmf_connect_data *cd);

/*
 * nvmf_ctrl_ioq_connect - attach I/O queue cmd->qid to controller c
 *
 * The host and subsystem must be the controller's, the controller enabled,
 * not a discovery controller, qid within the queues granted and not yet
 * connected, and the queue no larger than CAP.MQES allows. Returns
 * NVMF_SC_SUCCESS (and *result = cntlid) or Connect Invalid Parameters.
 */
uint16_t nvmf_ctrl_ioq_connect(struct nvmf_ctrl *c, const struct nvmf_connect *cmd,
			       const struct nvmf_connect_data *cd, uint64_t *result);
/* I/O queue qid is gone: it may connect again. */
void nvmf_ctrl_ioq_gone(struct nvmf_ctrl *c, uint16_t qid);

/* What an admin command asks of the target besides its completion. */
#define NVMF_FX_HOLD 0x1     /* an AER: keep it; it completes when an event occurs (or never) */
#define NVMF_FX_RESET 0x2    /* CC.EN 1 -> 0: drop the controller's I/O queues */
#define NVMF_FX_SHUTDOWN 0x4 /* CC.SHN set: make writes durable before completing */

/*
 * nvmf_admin_exec - run an admin command (Property Get/Set included)
 *
 * sgl: the command's data pointer after nvmf_sqe_data(). For a command that
 * returns data, exactly sgl->len bytes of data are written (the target
 * RDMA-WRITEs them); the length must be the command's own (4096 for
 * Identify, NUMD for Get Log Page), else Data SGL Length Invalid. Returns the
 * status; *result is DW0-1 of the completion; *fx NVMF_FX_* flags.
 */
uint16_t nvmf_admin_exec(struct nvmf_ctrl *c, const struct nvmf_sqe *sqe, const struct nvmf_sgl *sgl, uint8_t *data,
			 uint64_t *result, unsigned *fx);

/* The time (ms, the caller's clock) past which c has timed out, given its last command at last_ms; INT64_MAX if never. */
int64_t nvmf_ctrl_kato_deadline(const struct nvmf_ctrl *c, int64_t last_ms);

/* ---- I/O commands --------------------------------------------------------- */

/* What an I/O command does, once checked. */
struct nvmf_io {
	uint8_t opcode;      /* enum nvmf_io_opcode */
	uint64_t offset;     /* bytes into the namespace (Read, Write, Write Zeroes) */
	uint64_t len;        /* bytes */
	int fua;             /* Write: durable before completion */
	int deallocate;      /* DSM: deallocate the ranges; Write Zeroes: may deallocate */
	uint32_t nr_ranges;  /* DSM: ranges in the data (sgl->len / 16) */
};

/*
 * nvmf_io_check - validate an I/O command against the controller
 *
 * In order: opcode (Invalid Opcode), nsid (Invalid Namespace), reserved and
 * unsupported fields (protection information, directives: Invalid Field),
 * write protection, LBA range, size against max_xfer (Invalid Field), the
 * data length against the SGL's (Data SGL Length Invalid: Read and Write
 * need it exact; DSM at least its ranges, io->len, which is what the
 * target needs to fetch).
 */
uint16_t nvmf_io_check(const struct nvmf_ctrl *c, const struct nvmf_sqe *sqe, const struct nvmf_sgl *sgl,
		       struct nvmf_io *io);

/* A DSM range in bytes; NVMF_SC_LBA_RANGE if it leaves the namespace. */
uint16_t nvmf_dsm_range_check(const struct nvmf_ns *ns, const struct nvmf_dsm_range *r, uint64_t *offset,
			      uint64_t *len);

/* ---- controller ids -------------------------------------------------------- */

/* Controller ids 1..NVMF_CNTLID_MAX handed out round-robin from a seed, so a restarted target gives new ones. */
struct nvmf_cntlids {
	uint16_t next;
	uint8_t used[NVMF_CNTLID_MAX / 8 + 1];
};

void nvmf_cntlids_init(struct nvmf_cntlids *a, uint32_t seed);
/* Returns an unused id, or -1 when all are in use. */
int nvmf_cntlid_alloc(struct nvmf_cntlids *a);
void nvmf_cntlid_free(struct nvmf_cntlids *a, uint16_t id);

#endif
