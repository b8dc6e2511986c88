/* Memory registration: explicit regions, the memlock check, cache lookups. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "error.h"
#include "zc_internal.h"

static uint64_t status_field(const char *name, int hex)
{
	char line[256];
	size_t n = strlen(name);
	uint64_t v = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, n) && line[n] == ':') {
			v = strtoull(line + n + 1, NULL, hex ? 16 : 10);
			break;
		}
	fclose(f);
	return v;
}

/*
 * Returns 1 if the process may pin without limit (CAP_IPC_LOCK or an
 * unlimited RLIMIT_MEMLOCK), 0 if len more bytes fit under the limit, or
 * -ZC_EMEMLOCK with the numbers in zc_last_error(). Pinned memory is what
 * the kernel counts against the limit (VmPin), so the check sees every
 * registration of the process, not only this library's.
 */
int zc_memlock_check(struct zc_ctx *ctx, size_t len)
{
	const uint64_t cap_ipc_lock = 1ull << 14;
	uint64_t pinned_kb, need_kb;
	struct rlimit rl;

	(void)ctx;
	if (status_field("CapEff", 1) & cap_ipc_lock)
		return 1;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return 1;
	pinned_kb = status_field("VmPin", 0) + status_field("VmLck", 0);
	need_kb = pinned_kb + (len + 4095) / 1024;
	if (need_kb > rl.rlim_cur / 1024)
		return zc_err(-ZC_EMEMLOCK,
			      "registering %zu bytes needs %llu KiB of locked memory but ulimit -l is %llu KiB "
			      "(%llu KiB already pinned): raise ulimit -l to at least %llu or grant CAP_IPC_LOCK",
			      len, (unsigned long long)need_kb, (unsigned long long)(rl.rlim_cur / 1024),
			      (unsigned long long)pinned_kb, (unsigned long long)need_kb);
	return 0;
}

struct ibv_mr *zc_reg_mr(struct zc_ctx *ctx, void *addr, size_t len, int access, int *err)
{
	struct ibv_mr *mr;
	int rc = zc_memlock_check(ctx, len);

	if (rc < 0) {
		*err = rc;
		return NULL;
	}
	mr = ibv_reg_mr(ctx->pd, addr, len, access);
	if (!mr) {
		int e = errno;

		if ((e == ENOMEM || e == EAGAIN) && rc == 0)
			*err = zc_err(-ZC_EMEMLOCK, "ibv_reg_mr of %zu bytes failed (%s): the memlock limit is "
						    "probably too low: raise ulimit -l or grant CAP_IPC_LOCK",
				      len, strerror(e));
		else
			*err = zc_err(e == EFAULT ? -EFAULT : -(e ? e : ENOMEM), "ibv_reg_mr(%p, %zu): %s", addr,
				      len, strerror(e));
	}
	return mr;
}

int zc_mr_reg(struct zc_ctx *ctx, void *addr, size_t len, int access, struct zc_mr **out)
{
	int ibv_access = IBV_ACCESS_LOCAL_WRITE, err = 0;
	struct zc_mr *m;

	if (!ctx || !addr || !len || !out || (access & ~(ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE)))
		return zc_err(-EINVAL, "zc_mr_reg: bad arguments");
	/* Remote rights are only ever granted through windows bound to exact
	 * sub-ranges (rendezvous); the region itself grants nothing remote. */
	if (ctx->caps.mw_type2)
		ibv_access |= IBV_ACCESS_MW_BIND;
	m = calloc(1, sizeof(*m));
	if (!m)
		return zc_err(-ENOMEM, "zc_mr_reg: out of memory");
	m->mr = zc_reg_mr(ctx, addr, len, ibv_access, &err);
	if (!m->mr) {
		free(m);
		return err;
	}
	m->ctx = ctx;
	m->access = access;
	ctx->n_mrs++;
	*out = m;
	return 0;
}

int zc_mr_dereg(struct zc_mr **pm)
{
	struct zc_mr *m;

	if (!pm || !*pm)
		return zc_err(-EINVAL, "zc_mr_dereg: no region");
	m = *pm;
	if (m->exports)
		return zc_err(-EBUSY, "zc_mr_dereg: %u exports of this region are still live", m->exports);
	ibv_dereg_mr(m->mr);
	m->ctx->n_mrs--;
	free(m);
	*pm = NULL;
	return 0;
}

int zc_mr_invalidate(struct zc_ctx *ctx, const void *addr, size_t len)
{
	if (!ctx)
		return zc_err(-EINVAL, "zc_mr_invalidate: no context");
	return zc_rcache_invalidate(ctx->rcache, addr, len);
}

int zc_lkey_for(struct zc_ctx *ctx, const void *buf, size_t len, struct zc_mr *mr, uint32_t *lkey,
		struct zc_rcache_entry **entry)
{
	struct ibv_mr *m;
	int rc;

	*entry = NULL;
	if (mr) {
		uintptr_t b = (uintptr_t)buf, s = (uintptr_t)mr->mr->addr;

		if (mr->ctx != ctx || b < s || b + len > s + mr->mr->length)
			return zc_err(-EINVAL, "the buffer is not inside the given memory region");
		*lkey = mr->mr->lkey;
		return 0;
	}
	rc = zc_rcache_get(ctx->rcache, buf, len ? len : 1, entry);
	if (rc)
		return rc;
	m = zc_rcache_entry_handle(*entry);
	*lkey = m->lkey;
	return 0;
}

void zc_entry_put(struct zc_ctx *ctx, struct zc_rcache_entry *entry)
{
	if (entry)
		zc_rcache_put(ctx->rcache, entry);
}
