/* Memory registration: explicit regions, the memlock check, cache lookups. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "error.h"
#include "dev.h"
#include "memhook.h"

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
int zc__memlock_check(struct zc_ctx *ctx, size_t len)
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
		return zc__err(-ZC_EMEMLOCK,
			      "registering %zu bytes needs %llu KiB of locked memory but ulimit -l is %llu KiB "
			      "(%llu KiB already pinned): raise ulimit -l to at least %llu or grant CAP_IPC_LOCK",
			      len, (unsigned long long)need_kb, (unsigned long long)(rl.rlim_cur / 1024),
			      (unsigned long long)pinned_kb, (unsigned long long)need_kb);
	return 0;
}

/* A region that cannot be deregistered (rxe refuses while a window is
 * bound to it) stays pinned and leaks: say so instead of staying silent. */
void zc__dereg_mr(struct zc_ctx *ctx, struct ibv_mr *mr)
{
	int64_t t0 = zc__now_ns();
	int rc = ibv_dereg_mr(mr);

	ctx->stats.deregs++;
	ctx->stats.reg_ns += (uint64_t)(zc__now_ns() - t0);
	if (rc)
		zc__log(&ctx->opts, ZC_LOG_ERR, "ibv_dereg_mr(%p, %zu): %s: the region stays pinned", mr->addr,
		       mr->length, strerror(rc));
}

void zc__dealloc_mw(struct zc_ctx *ctx, struct ibv_mw *mw)
{
	int rc = ibv_dealloc_mw(mw);

	if (rc)
		zc__log(&ctx->opts, ZC_LOG_ERR, "ibv_dealloc_mw(rkey %#x): %s", mw->rkey, strerror(rc));
}

/* The memlock limit is diagnosed only when a registration fails: reading
 * /proc on every registration would tax the data path for nothing. */
struct ibv_mr *zc__reg_mr(struct zc_ctx *ctx, void *addr, size_t len, int access, int *err)
{
	int64_t t0;
	struct ibv_mr *mr;
	int e, limit;

	if (!ctx->pd) {
		*err = zc__err(-ENODEV, "the context was created without an address and has no device to register "
				       "memory with until it connects");
		return NULL;
	}
	t0 = zc__now_ns();
	mr = ibv_reg_mr(ctx->pd, addr, len, access);

	ctx->stats.regs++;
	ctx->stats.reg_ns += (uint64_t)(zc__now_ns() - t0);
	if (mr)
		return mr;
	e = errno;
	limit = (e == ENOMEM || e == EAGAIN) ? zc__memlock_check(ctx, len) : 1;
	if (limit < 0)
		*err = limit;
	else if (limit == 0)
		*err = zc__err(-ZC_EMEMLOCK, "ibv_reg_mr of %zu bytes failed (%s): the memlock limit is probably too "
					    "low: raise ulimit -l or grant CAP_IPC_LOCK",
			      len, strerror(e));
	else
		*err = zc__err(e == EFAULT ? -EFAULT : -(e ? e : ENOMEM), "ibv_reg_mr(%p, %zu): %s", addr, len,
			      strerror(e));
	return NULL;
}

struct ibv_mr *zc__reg_local(struct zc_ctx *ctx, void *addr, size_t len, int *ibv_access, int *err)
{
	struct ibv_mr *mr;

	*ibv_access = IBV_ACCESS_LOCAL_WRITE | (ctx->caps.mw_type2 ? IBV_ACCESS_MW_BIND : 0);
	mr = zc__reg_mr(ctx, addr, len, *ibv_access, err);
	if (!mr && *err == -EFAULT) {
		*ibv_access = 0;
		mr = zc__reg_mr(ctx, addr, len, 0, err);
	}
	return mr;
}

int zc_mr_reg(struct zc_ctx *ctx, void *addr, size_t len, int access, struct zc_mr **out)
{
	int err = 0;
	struct zc_mr *m;

	if (!ctx || !addr || !len || !out || (access & ~(ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE)))
		return zc__err(-EINVAL, "zc_mr_reg: bad arguments");
	m = calloc(1, sizeof(*m));
	if (!m)
		return zc__err(-ENOMEM, "zc_mr_reg: out of memory");
	/* The region itself grants nothing remote: rights go out through windows
	 * bound to exact sub-ranges. Read-only pages register read-only, so a
	 * PROT_READ file mapping is sent without a copy. */
	m->mr = zc__reg_local(ctx, addr, len, &m->ibv_access, &err);
	if (m->mr && (access & ZC_ACCESS_REMOTE_WRITE) && !(m->ibv_access & IBV_ACCESS_LOCAL_WRITE)) {
		zc__dereg_mr(ctx, m->mr);
		m->mr = NULL;
		err = zc__err(-EFAULT, "zc_mr_reg: remote write requested on read-only memory");
	}
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
		return zc__err(-EINVAL, "zc_mr_dereg: no region");
	m = *pm;
	if (m->exports)
		return zc__err(-EBUSY, "zc_mr_dereg: %u exports of this region are still live", m->exports);
	zc__dereg_mr(m->ctx, m->mr);
	m->ctx->n_mrs--;
	free(m);
	*pm = NULL;
	return 0;
}

int zc_mr_invalidate(struct zc_ctx *ctx, const void *addr, size_t len)
{
	if (!ctx)
		return zc__err(-EINVAL, "zc_mr_invalidate: no context");
	return zc__rcache_invalidate(ctx->rcache, addr, len);
}

int zc__reg_for(struct zc_ctx *ctx, const void *buf, size_t len, struct zc_mr *mr, bool write, struct ibv_mr **out,
	       int *ibv_access, struct zc__rcache_entry **entry)
{
	struct zc__reg *reg;
	int rc, attempt;

	*entry = NULL;
	if (mr) {
		uintptr_t b = (uintptr_t)buf, s = (uintptr_t)mr->mr->addr;

		if (mr->ctx != ctx || b < s || b + len > s + mr->mr->length)
			return zc__err(-EINVAL, "the buffer is not inside the given memory region");
		if (write && !(mr->ibv_access & IBV_ACCESS_LOCAL_WRITE))
			return zc__err(-EPERM, "the memory region is read-only but is used as a destination");
		*out = mr->mr;
		*ibv_access = mr->ibv_access;
		return 0;
	}
	/* A read-only entry may cover a range that is writable now (or in part):
	 * drop it and register again once before giving up. */
	for (attempt = 0; attempt < 2; attempt++) {
		rc = zc__rcache_get(ctx->rcache, buf, len ? len : 1, entry);
		if (rc)
			return rc;
		reg = zc__rcache_entry_handle(*entry);
		if (!write || (reg->ibv_access & IBV_ACCESS_LOCAL_WRITE)) {
			*out = reg->mr;
			*ibv_access = reg->ibv_access;
			return 0;
		}
		zc__rcache_put(ctx->rcache, *entry);
		*entry = NULL;
		zc__rcache_invalidate(ctx->rcache, buf, len ? len : 1);
	}
	return zc__err(-EFAULT, "the destination buffer %p (%zu bytes) is not writable", buf, len);
}

int zc__lkey_for(struct zc_ctx *ctx, const void *buf, size_t len, struct zc_mr *mr, bool write, uint32_t *lkey,
		struct zc__rcache_entry **entry)
{
	struct ibv_mr *m;
	int access, rc = zc__reg_for(ctx, buf, len, mr, write, &m, &access, entry);

	if (!rc)
		*lkey = m->lkey;
	return rc;
}

void zc__entry_put(struct zc_ctx *ctx, struct zc__rcache_entry *entry)
{
	if (entry)
		zc__rcache_put(ctx->rcache, entry);
}

static void *rcache_reg(void *arg, void *addr, size_t len, int *err)
{
	struct zc_ctx *ctx = arg;
	struct zc__reg *reg = malloc(sizeof(*reg));

	if (!reg) {
		*err = zc__err(-ENOMEM, "out of memory");
		return NULL;
	}
	reg->mr = zc__reg_local(ctx, addr, len, &reg->ibv_access, err);
	if (!reg->mr) {
		free(reg);
		return NULL;
	}
	return reg;
}

static void rcache_dereg(void *arg, void *handle)
{
	struct zc__reg *reg = handle;

	zc__dereg_mr(arg, reg->mr);
	free(reg);
}

void zc__rcache_close(struct zc_ctx *ctx)
{
	if (ctx->rcache)
		zc__rcache_free(ctx->rcache);
	ctx->rcache = NULL;
}

int zc__rcache_open(struct zc_ctx *ctx)
{
	struct zc__rcache_ops ops = {.reg = rcache_reg, .dereg = rcache_dereg, .arg = ctx};
	int rc = zc__rcache_new(&ops, ctx->opts.rcache_entries, ctx->opts.rcache_bytes, &ctx->rcache);

	if (rc || ctx->opts.no_memhooks)
		return rc;
	ctx->caps.memhooks = zc__memhook_install();
	zc__rcache_watch(ctx->rcache, zc__memhook_ring());
	if (ctx->caps.memhooks == ZC_MEMHOOKS_INTERPOSE)
		zc__log(&ctx->opts, ZC_LOG_WARN, "libc could not be patched: the registration cache sees only "
						"unmaps made through the dynamic linker, not those inside malloc/free");
	return 0;
}
