/* Shared by the rxe tests: the topology scripts/rxe-setup built, and helpers. */
#ifndef ZC_TEST_RXE_ENV_H
#define ZC_TEST_RXE_ENV_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define RXE_SKIP 77

struct rxe_env {
	const char *dev_a, *dev_b;   /* rxe0, rxe1 */
	const char *addr_a, *addr_b; /* 192.168.77.1, 192.168.77.2 (fd77::1, fd77::2) */
	int family;                  /* 4, or 6 with ZC_TEST_FAMILY=6 */
	int gid_a, gid_b;            /* RoCE v2 GID index of each */
};

/* Fills env from ZC_* variables, or exits RXE_SKIP with a loud reason.
 * ZC_TEST_FAMILY=6 selects the IPv6 addresses (ZC_ADDR6_A/B). */
void rxe_env_require(struct rxe_env *env);

/* A TCP/RDMA-CM port no other concurrently running test uses. */
uint16_t rxe_port(int offset);

/* Fills buf with a pattern that depends on seed and on each byte's position. */
void rxe_fill(void *buf, size_t len, uint32_t seed);

/* Index of the first byte that differs from rxe_fill(seed), or -1. */
long rxe_check(const void *buf, size_t len, uint32_t seed);

/* CLOCK_MONOTONIC in seconds: bounds and deadlines are times, never loop counts. */
double rxe_now(void);

#define RXE_FAIL(...)                                                     \
	do {                                                              \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
		fprintf(stderr, __VA_ARGS__);                             \
		fputc('\n', stderr);                                      \
		exit(1);                                                  \
	} while (0)

#define RXE_ASSERT(cond, ...)                                             \
	do {                                                              \
		if (!(cond)) {                                            \
			fprintf(stderr, "assertion `%s` failed\n", #cond); \
			RXE_FAIL(__VA_ARGS__);                            \
		}                                                         \
	} while (0)

/* For tests of the library: fail with zcrdma's own explanation. */
#ifdef ZCRDMA_H
#define CHECK_RC(rc, what)                                                                        \
	do {                                                                                      \
		long _rc = (long)(rc);                                                            \
		if (_rc < 0)                                                                      \
			RXE_FAIL("%s: %s (%s)", what, zc_strerror((int)_rc), zc_last_error());     \
	} while (0)
#endif

#endif
