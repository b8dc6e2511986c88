/* Internal: recording the detail behind an error code. */
#ifndef ZC_ERROR_H
#define ZC_ERROR_H

/*
 * Records a detail message for zc_last_error() and returns err as a negative
 * code, so call sites read: return zc__err(-EINVAL, "port %d out of range", p);
 */
int zc__err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The detail zc__err() recorded last: zc_last_error()'s, or, between
 * zc__err_progress_begin() and _end(), that of a failure found by progress
 * (which a connection keeps with its error instead of overwriting the
 * caller's). Calls nest. */
const char *zc__err_detail(void);

/* Progress brackets every poll: initial-exec, the depth is one load from
 * the thread pointer, where the default model calls __tls_get_addr (3 % of
 * a 256-connection server's CPU in a guest profile). Four bytes fit the
 * static TLS that glibc keeps for libraries loaded later with dlopen. */
extern __thread unsigned zc__progress_depth __attribute__((tls_model("initial-exec")));

static inline void zc__err_progress_begin(void)
{
	zc__progress_depth++;
}

static inline void zc__err_progress_end(void)
{
	zc__progress_depth--;
}

struct zc_ctx_opts;
/* Passes a message to the context's log callback, if it takes that level. */
void zc__log(const struct zc_ctx_opts *opts, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
