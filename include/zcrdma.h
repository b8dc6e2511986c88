/*
 * zcrdma.h - zero-copy messaging over RDMA
 *
 * OVERVIEW
 *   zcrdma moves bytes between two processes' memory with RDMA: the
 *   application hands the library its own buffers, and the NIC reads and
 *   writes them directly. The API mirrors sockets (listen, accept, connect,
 *   send, recv, close) and adds zero-copy variants in which the caller keeps
 *   ownership of registered buffers.
 *
 * ERRORS
 *   Every function that can fail returns 0 (or a non-negative count) on
 *   success and a negative errno value, or one of the negative ZC_E* codes
 *   below, on failure. zc_strerror() turns either into a message that names
 *   the cause and, where there is one, the fix; zc_last_error() adds the
 *   details of the calling thread's most recent failure (sizes, addresses,
 *   the verbs call that failed). No function aborts on bad input.
 */
#ifndef ZCRDMA_H
#define ZCRDMA_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ZC_API __attribute__((visibility("default")))
#else
#define ZC_API
#endif

/* Error codes beyond errno, returned negated like errno values. */
enum zc_error {
	ZC_ERRNO_BASE = 10000,
	ZC_EMEMLOCK,      /* pinning would exceed RLIMIT_MEMLOCK */
	ZC_EREMOTEACCESS, /* the peer refused an RDMA access (bad or revoked key) */
	ZC_ERNR,          /* receiver not ready: a flow-control violation */
	ZC_EPEERPROTO,    /* the peer broke the zcrdma wire protocol */
	ZC_EVERSION,      /* the peer speaks another protocol version */
	ZC_ETRANSPORT,    /* the NIC gave up on the connection (retries exhausted) */
	ZC_ERRNO_MAX
};

/*
 * zc_version - the library's version
 *
 * Returns the version as "MAJOR.MINOR.PATCH", a static string.
 */
ZC_API const char *zc_version(void);

/*
 * zc_strerror - describe an error code
 *
 * err is a value returned by a zcrdma function: a negative errno or a
 * negative ZC_E* code (positive values are accepted as well). Returns a
 * static string that names the cause and, where there is one, the fix.
 * Unknown codes give "unknown error".
 */
ZC_API const char *zc_strerror(int err);

/*
 * zc_last_error - details of the calling thread's last failure
 *
 * Returns a thread-local string describing the most recent error a zcrdma
 * function returned in this thread, with specifics (e.g. "registering 16 MiB
 * needs 16388 KiB of locked memory but ulimit -l is 64 KiB: raise ulimit -l
 * or grant CAP_IPC_LOCK"). Empty when nothing failed yet. Valid until the next
 * zcrdma call in the same thread.
 */
ZC_API const char *zc_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* ZCRDMA_H */
