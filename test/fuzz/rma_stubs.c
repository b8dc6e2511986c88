/*
 * What src/rma.c calls beyond its descriptor codec: the verbs paths of
 * zc_export() and zc_rma_*(), which the fuzz targets never call. Each stub
 * aborts, so reaching one is a crash, and the prototypes come from
 * zc_internal.h, so a changed signature fails the build. If rma.c starts
 * calling another function, the fuzz link names it: add a stub here.
 */
#include <stdlib.h>

#include "zc_internal.h"

int zc_conn_check(struct zc_conn *conn) { (void)conn; abort(); }
int zc_ctx_room(struct zc_ctx *ctx) { (void)ctx; abort(); }
int zc_ctx_wait(struct zc_ctx *ctx, int timeout_ms) { (void)ctx; (void)timeout_ms; abort(); }
void zc_entry_put(struct zc_ctx *ctx, struct zc_rcache_entry *entry) { (void)ctx; (void)entry; abort(); }
int zc_sreq_get(struct zc_conn *conn) { (void)conn; abort(); }
void zc_sreq_put(struct zc_conn *conn, uint32_t i) { (void)conn; (void)i; abort(); }
int zc_post_send_wr(struct zc_conn *conn, struct ibv_send_wr *wr) { (void)conn; (void)wr; abort(); }
int ibv_dereg_mr(struct ibv_mr *mr) { (void)mr; abort(); }
void zc_dereg_mr(struct zc_ctx *ctx, struct ibv_mr *mr) { (void)ctx; (void)mr; abort(); }
void zc_dealloc_mw(struct ibv_mw *mw) { (void)mw; abort(); }

struct ibv_mr *zc_reg_mr(struct zc_ctx *ctx, void *addr, size_t len, int ibv_access, int *err)
{
	(void)ctx; (void)addr; (void)len; (void)ibv_access; (void)err;
	abort();
}

int zc_lkey_for(struct zc_ctx *ctx, const void *buf, size_t len, struct zc_mr *mr, bool write, uint32_t *lkey,
		struct zc_rcache_entry **entry)
{
	(void)ctx; (void)buf; (void)len; (void)mr; (void)write; (void)lkey; (void)entry;
	abort();
}
