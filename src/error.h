/* Internal: recording the detail behind an error code. */
#ifndef ZC_ERROR_H
#define ZC_ERROR_H

/*
 * Records a detail message for zc_last_error() and returns err as a negative
 * code, so call sites read: return zc_err(-EINVAL, "port %d out of range", p);
 */
int zc_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
