#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rxe_env.h"

static void skip(const char *why)
{
	fprintf(stderr, "SKIPPED: %s. rxe tests need the rxe0/rxe1 topology: run them with "
			"scripts/rxe-guest (or on a native rxe host after scripts/rxe-setup).\n", why);
	exit(RXE_SKIP);
}

void rxe_env_require(struct rxe_env *env)
{
	char path[256];

	env->dev_a = getenv("ZC_DEV_A");
	env->dev_b = getenv("ZC_DEV_B");
	env->addr_a = getenv("ZC_ADDR_A");
	env->addr_b = getenv("ZC_ADDR_B");
	if (!env->dev_a || !env->dev_b || !env->addr_a || !env->addr_b)
		skip("ZC_DEV_A/ZC_DEV_B/ZC_ADDR_A/ZC_ADDR_B are not set");
	/* ZC_TEST_FAMILY=6: the same test over the devices' IPv6 addresses. */
	env->family = getenv("ZC_TEST_FAMILY") && !strcmp(getenv("ZC_TEST_FAMILY"), "6") ? 6 : 4;
	if (env->family == 6) {
		env->addr_a = getenv("ZC_ADDR6_A");
		env->addr_b = getenv("ZC_ADDR6_B");
		if (!env->addr_a || !env->addr_b)
			skip("ZC_TEST_FAMILY=6 but ZC_ADDR6_A/ZC_ADDR6_B are not set");
	}
	env->gid_a = getenv("ZC_GID_A") ? atoi(getenv("ZC_GID_A")) : 1;
	env->gid_b = getenv("ZC_GID_B") ? atoi(getenv("ZC_GID_B")) : 1;
	snprintf(path, sizeof(path), "/sys/class/infiniband/%s", env->dev_a);
	if (access(path, F_OK) != 0)
		skip("no RDMA device named by ZC_DEV_A in /sys/class/infiniband");
}

uint16_t rxe_port(int offset)
{
	return (uint16_t)(20000 + (getpid() % 2000) * 16 + offset);
}

static inline uint8_t pattern_byte(size_t i, uint32_t seed)
{
	uint32_t x = (uint32_t)i * 2654435761u ^ seed;

	x ^= x >> 15;
	return (uint8_t)(x ^ (x >> 8) ^ (i >> 12));
}

void rxe_fill(void *buf, size_t len, uint32_t seed)
{
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = pattern_byte(i, seed);
}

long rxe_check(const void *buf, size_t len, uint32_t seed)
{
	const uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != pattern_byte(i, seed))
			return (long)i;
	return -1;
}

double rxe_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}
