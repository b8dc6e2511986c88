/*
 * zc_example.h - what the example programs share (examples/, examples/blk/)
 *
 * zc_echo, zc_copy and the zc_blk_* programs all take ADDR[:PORT] and byte
 * counts with K/M/G suffixes on their command lines, print their diagnostics
 * as "PROG: message", and explain a failed zcrdma call with zc_strerror()
 * plus zc_last_error(); zc_copy and the block protocol also encode
 * little-endian integers. This is the one copy of that code; it is not part of
 * the library (include/zcrdma.h) and uses only its public API.
 *
 * Two objects: zc_parse.c (the parsers: pure code, also linked on their own
 * by the zc_nvmf library) and
 * zc_example.c (messages; needs libzcrdma). The CMake target is the static
 * library zc_example.
 */
#ifndef ZC_EXAMPLE_H
#define ZC_EXAMPLE_H

#include <endian.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- little-endian fields of the examples' wire formats ------------------- */

static inline void zc_ex_put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static inline void zc_ex_put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static inline void zc_ex_put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static inline uint16_t zc_ex_get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

static inline uint32_t zc_ex_get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static inline uint64_t zc_ex_get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* ---- zc_parse.c ---------------------------------------------------------- */

/*
 * zc_ex_parse_size - "123", "4k", "64M", "1G", "2GiB", "8kb" -> bytes
 *
 * Digits, then optionally k/m/g (any case, powers of 2) with an optional i
 * after it, then an optional b; nothing else. Returns -1 for anything else
 * and for values beyond LLONG_MAX.
 */
long long zc_ex_parse_size(const char *s);

/*
 * zc_ex_parse_int - "-1", "0", "250" -> a whole number in [lo, hi]
 *
 * Decimal digits with an optional leading minus; nothing else. Sets *out and
 * returns 0, or returns -1 (and leaves *out alone) for anything else and for
 * values outside [lo, hi].
 */
int zc_ex_parse_int(const char *s, long long lo, long long hi, long long *out);

/*
 * zc_ex_parse_hostport - "ADDR", "ADDR:PORT", "[V6]" or "[V6]:PORT"
 *
 * Copies the address (without brackets) into host (hostcap bytes, NUL
 * included) and sets *port to PORT (1..65535, digits only) or default_port.
 * An unbracketed address with two or more colons is a bare IPv6 address and
 * has no port. Returns 0, or -1 for an empty address, one that does not fit,
 * or a bad port.
 */
int zc_ex_parse_hostport(const char *s, char *host, size_t hostcap, uint16_t *port, uint16_t default_port);

/* ---- zc_example.c -------------------------------------------------------- */

/* The program's name, defined by each program: the "PROG: " of every message. */
extern const char *const zc_ex_prog;

/* Prints "PROG: message\n" on stderr. */
void zc_ex_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void zc_ex_vwarn(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* zc_ex_warn(), then exit(1). */
void zc_ex_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * zc_ex_why - "zc_strerror(rc) (zc_last_error())", or only the first part
 * when the calling thread has no details. The string lives in a per-thread
 * buffer until the next call.
 */
const char *zc_ex_why(int rc);

#endif
