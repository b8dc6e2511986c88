/*
 * blk_initiator.h - a user-space NVMe over Fabrics (RDMA) host
 *
 * One controller of an NVMe-oF RDMA target (zc_blk_target, the kernel's
 * nvmet-rdma, SPDK, ...) on zcrdma's raw mode, as SPDK's perf tool is:
 * an admin queue and N I/O queues, each a raw connection of the caller's
 * context. blk_init_connect() brings the controller up the way Linux's
 * nvme-rdma does: rdma_cm private data nvme_rdma_cm_req, Fabrics Connect
 * (connect data by keyed SGL), Property Get CAP, Property Set CC.EN and
 * Property Get CSTS until RDY, Identify Controller, Set Features Number of
 * Queues, Identify Active Namespace List and Identify Namespace (size and
 * block size), then Connect on every I/O queue. blk_init_close() shuts the
 * controller down in order (CC.SHN, CSTS.SHST) before disconnecting.
 *
 * Data moves by keyed SGL: for each Read or Write the host exports exactly
 * the command's range of the caller's region with exactly the right the
 * target needs (Read: remote write; Write: remote read), and revokes it
 * when the completion arrives; the data never passes through the host's
 * CPU. A Write no longer than the in-capsule data the target takes on I/O
 * queues (IOCCSZ, and SGLS bit 20) goes in the capsule instead (one SEND,
 * no export), unless the options say not to. Keep Alive goes out every
 * kato/2 from blk_init_poll(): call it at least that often.
 *
 * Everything off the wire is checked: reply and reject private data,
 * every CQE's length, command id (in flight on that queue), SQ id,
 * unexpected key invalidations, and the Identify data a host relies on. A
 * breach fails the controller with -EPROTO; a failed connection (the
 * target died, a transport error) fails it with that error. Either is
 * final: commands in flight are lost, blk_init_poll() returns the error
 * and blk_init_last_error() says what happened; close and connect anew.
 * A command the target answers with an error status is not a failure:
 * its completion carries the status.
 *
 * Not thread-safe: like the context, one thread at a time. blk_init_poll()
 * reaps the whole context's completions and drops those of others.
 */
#ifndef ZC_BLK_INITIATOR_H
#define ZC_BLK_INITIATOR_H

#include <stdint.h>

#include <zcrdma.h>

#include "nvmf.h"

#define BLK_MAX_QD 127   /* commands per I/O queue: hsqsize must stay below 128 (Linux, SPDK and ours) */
#define BLK_MAX_QUEUES 16

struct blk_init;

/*
 * How an export is made (both grant exactly the range and the right, and
 * both are revoked when the completion arrives):
 *   WINDOW  a type-2 memory window bound to the range (zcrdma's default)
 *   MR      a memory region of its own registered for the range
 *           (zc_conn_opts.mr_fallback): a registration per command
 *   AUTO    MR on soft-RoCE (rxe) devices, WINDOW elsewhere. On the rxe of
 *           the test guest (kernel 6.1), concurrent multi-packet RDMA READs
 *           by the target from windows fail the host's QP at random (or
 *           stall the guest); from MRs they do not.
 */
enum blk_export_mode { BLK_EXPORT_AUTO, BLK_EXPORT_WINDOW, BLK_EXPORT_MR };

/*
 * struct blk_init_opts - blk_init_opts_init() sets the defaults
 *
 *   queue_depth  commands in flight per I/O queue, 1..BLK_MAX_QD (default
 *                32; less if the target's CAP.MQES or MAXCMD says so)
 *   nr_queues    I/O queues, 1..BLK_MAX_QUEUES (default 1; fewer if the
 *                target grants fewer)
 *   timeout_ms   bound of each connect and admin command (default 10000)
 *   kato_ms      keep-alive timeout asked for (default 10000)
 *   nqn          subsystem NQN; NULL (default): the first NVM subsystem
 *                the target's discovery controller lists
 *   hostnqn      default "nqn.2024-01.io.zcrdma:host"
 *   export_mode  enum blk_export_mode (default AUTO)
 *   no_icd       never send Write data in the capsule (default 0)
 */
struct blk_init_opts {
	int queue_depth;
	int nr_queues;
	int timeout_ms;
	int kato_ms;
	const char *nqn;
	const char *hostnqn;
	int export_mode;
	int no_icd;
};

void blk_init_opts_init(struct blk_init_opts *o);

/* "auto", "window", "mr" -> enum blk_export_mode, or -1. */
int blk_export_mode_parse(const char *s);

/* The controller and namespace, as the target declared them. */
struct blk_geom {
	uint32_t nsid;
	uint32_t block_size;
	uint64_t capacity;   /* blocks */
	uint32_t max_blocks; /* per Read/Write: MDTS, and at most 65536 */
	int queue_depth;     /* per I/O queue, granted */
	int nr_queues;       /* I/O queues, granted */
	int read_only;       /* the namespace is write protected */
	uint32_t icd_max;    /* bytes of in-capsule Write data used; 0: none */
	uint16_t cntlid;
	uint16_t oncs;       /* optional commands (bit 3: Write Zeroes) */
	char nqn[NVMF_NQN_MAX + 1];
};

/* One finished command. */
struct blk_cpl {
	uint64_t user;   /* the caller's value from blk_init_submit() */
	uint16_t status; /* the CQE's status (0: success; nvmf_status_str()) */
};

/*
 * blk_init_connect - bring up a controller of the target at addr:port
 *
 * Returns 0 and sets *out, or a negative errno / zcrdma code: the connect's
 * (-ECONNREFUSED: nobody listens, or the target rejected a queue: the
 * reason is in blk_init_last_error()), -ETIMEDOUT (an admin command or
 * CSTS.RDY took longer than timeout_ms), -EPROTO (the target broke the
 * protocol), -EIO (a bring-up command failed: its NVMe status is in
 * blk_init_last_error()), -ENOENT (no subsystem to discover), -EINVAL.
 */
int blk_init_connect(struct zc_ctx *ctx, const char *addr, uint16_t port, const struct blk_init_opts *o,
		     struct blk_init **out);

const struct blk_geom *blk_init_geom(const struct blk_init *bi);

/* Commands in flight, and how many more blk_init_submit() takes now. */
int blk_init_inflight(const struct blk_init *bi);
int blk_init_free_slots(const struct blk_init *bi);

/*
 * blk_init_submit - start one I/O command on the next I/O queue with room
 *
 * opcode NVMF_IO_READ / NVMF_IO_WRITE: nblocks blocks from lba move between
 * the namespace and buf, which is byte mr_off of mr (from zc_mr_reg() with
 * the remote right the command needs); the buffer belongs to the host
 * until the completion. NVMF_IO_FLUSH, NVMF_IO_WRITE_ZEROES (lba, nblocks):
 * buf and mr unused. Returns 0, -EBUSY (every slot in flight: poll first),
 * -EINVAL, the controller's error, or the error of zc_export()/zc_raw_send().
 */
int blk_init_submit(struct blk_init *bi, uint8_t opcode, uint64_t lba, uint32_t nblocks, void *buf,
		    struct zc_mr *mr, size_t mr_off, uint64_t user);

/*
 * blk_init_poll - reap finished commands, keep the controller alive
 *
 * Waits up to timeout_ms (-1 forever) for at least one; returns how many
 * were stored in out, 0 on timeout, or the controller's error.
 */
int blk_init_poll(struct blk_init *bi, struct blk_cpl *out, int max, int timeout_ms);

/*
 * blk_init_close - shut the controller down and disconnect
 *
 * Revokes the exports of commands still in flight, disconnects the I/O
 * queues, sets CC.SHN and waits (timeout_ms) for CSTS.SHST complete, then
 * disconnects the admin queue. Returns 0, or the error of the shutdown
 * (everything is freed anyway); sets *bi to NULL.
 */
int blk_init_close(struct blk_init **bi);

/* Details of the calling thread's last failure in this module. */
const char *blk_init_last_error(void);

#endif
