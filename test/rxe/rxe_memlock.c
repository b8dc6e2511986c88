/*
 * A registration beyond RLIMIT_MEMLOCK without CAP_IPC_LOCK fails with
 * -ZC_EMEMLOCK and a message naming `ulimit -l` and the size needed, not a
 * crash. CMake runs it under `ulimit -l 64` with CAP_IPC_LOCK dropped
 * (root ignores the limit otherwise).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rxe_env.h"
#include "zcrdma.h"

int main(void)
{
	struct rxe_env env;
	struct zc_ctx *ctx;
	struct zc_caps caps;
	struct zc_mr *mr = NULL;
	size_t len = 16 << 20;
	char *buf = malloc(len);
	int rc;

	rxe_env_require(&env);
	rc = zc_ctx_new(env.addr_a, NULL, &ctx);
	RXE_ASSERT(rc == 0, "zc_ctx_new: %s (%s)", zc_strerror(rc), zc_last_error());
	zc_ctx_query(ctx, &caps);
	RXE_ASSERT(!caps.cap_ipc_lock, "CAP_IPC_LOCK was not dropped: run through ctest");
	RXE_ASSERT(caps.memlock_limit == 64 * 1024, "memlock limit is %llu, expected 64 KiB",
		   (unsigned long long)caps.memlock_limit);
	rc = zc_mr_reg(ctx, buf, len, 0, &mr);
	printf("zc_mr_reg(16 MiB) with ulimit -l 64: %d\n  zc_strerror: %s\n  zc_last_error: %s\n", rc, zc_strerror(rc),
	       zc_last_error());
	RXE_ASSERT(rc == -ZC_EMEMLOCK, "expected -ZC_EMEMLOCK, got %d", rc);
	RXE_ASSERT(strstr(zc_strerror(rc), "ulimit -l"), "zc_strerror does not name the fix");
	RXE_ASSERT(strstr(zc_last_error(), "ulimit -l") && strstr(zc_last_error(), "16777216"),
		   "detail lacks the limit or the size");
	RXE_ASSERT(mr == NULL, "a region was returned on failure");
	RXE_ASSERT(zc_ctx_free(&ctx) == 0, "zc_ctx_free");
	free(buf);
	printf("rxe_memlock: PASS\n");
	return 0;
}
