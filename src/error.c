/* Error strings, the per-thread detail message, and the log callback. */
#define _GNU_SOURCE /* strerrordesc_np */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "zcrdma.h"
#include "error.h"
#include "version.h"

static __thread char last_error[512];
/* While progress runs inside a call, failures it finds belong to other
 * connections: their details go here, to be kept by those connections
 * (zc__err_detail), and the caller's own detail survives. */
static __thread char progress_error[512];
__thread unsigned zc__progress_depth;

struct err_text {
	int code;
	const char *text;
};

/* errno values the library returns, described for RDMA users. */
static const struct err_text texts[] = {
	{ZC_EMEMLOCK, "memlock limit too low to pin this memory: raise ulimit -l (RLIMIT_MEMLOCK) or grant CAP_IPC_LOCK"},
	{ZC_EREMOTEACCESS, "remote access error: the peer's memory key is invalid, revoked or does not cover the range"},
	{ZC_ERNR, "receiver not ready: the peer had no receive buffer posted (flow-control violation)"},
	{ZC_EPEERPROTO, "the peer violated the zcrdma wire protocol; the connection was closed"},
	{ZC_EVERSION, "the peer speaks an incompatible zcrdma protocol version: upgrade one side"},
	{ZC_ETRANSPORT, "the RDMA transport gave up after retries: the peer is unreachable or dead"},
	{ENODEV, "no RDMA device for this address: check `rdma link` / `ibv_devices` and that the address belongs to an RDMA netdev"},
	{EADDRNOTAVAIL, "address not available: the local address is not configured on this host"},
	{EADDRINUSE, "address already in use: another listener owns this address and port"},
	{ECONNREFUSED, "connection refused: nothing listens on that address and port"},
	{ECONNRESET, "connection reset: the peer aborted, crashed or disconnected"},
	{ETIMEDOUT, "timed out: the peer did not answer in time"},
	{EHOSTUNREACH, "host unreachable: no route to the peer's address"},
	{ENOTCONN, "not connected: the connection is closed or was never established"},
	{EPIPE, "broken pipe: the connection is shut down for sending"},
	{EAGAIN, "resource temporarily unavailable: try again (non-blocking call would block)"},
	{EINVAL, "invalid argument"},
	{ENOMEM, "out of memory"},
	{ENOSPC, "queue full: raise the queue depth or completion-queue size"},
	{EMSGSIZE, "message too long for the buffer or the device"},
	{EBUSY, "resource busy: it is still in use by a pending transfer or export"},
	{EPERM, "operation not permitted"},
	{EPROTO, "protocol error"},
	{ENOTSUP, "operation not supported by this device"},
	{EINTR, "interrupted"},
	{EFAULT, "bad address: the buffer is not mapped, or not writable where the NIC must write"},
	{ECONNABORTED, "connection aborted: the operation was pending when the connection was closed"},
};

const char *zc_version(void)
{
	return ZC_VERSION_STRING;
}

const char *zc_strerror(int err)
{
	size_t i;

	if (err < 0)
		err = -err;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (texts[i].code == err)
			return texts[i].text;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
	/* Other errno values (e.g. passed through from the OS): the C library's
	 * text, which unlike strerror() is thread-safe. */
	if (err && strerrordesc_np(err))
		return strerrordesc_np(err);
#endif
	return "unknown error";
}

const char *zc_last_error(void)
{
	return last_error;
}

int zc__err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(zc__progress_depth ? progress_error : last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err > 0 ? -err : err;
}

const char *zc__err_detail(void)
{
	return zc__progress_depth ? progress_error : last_error;
}

void zc__log(const struct zc_ctx_opts *o, int level, const char *fmt, ...)
{
	int max = o->log_level ? o->log_level : ZC_LOG_WARN;
	char msg[512];
	va_list ap;

	if (!o->log_fn || level > max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o->log_fn(o->log_arg, level, msg);
}
