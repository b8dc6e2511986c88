/*
 * Internal: memory hooks, so the registration caches learn of every change
 * that can make a cached registration stale (see memhook.c for how).
 */
#ifndef ZC_MEMHOOK_H
#define ZC_MEMHOOK_H

#include "invring.h"

/* Installs the hooks once per process (later calls return at once) and
 * returns the mode in force: ZC_MEMHOOKS_PATCH, _INTERPOSE (zcrdma.h). */
int zc__memhook_install(void);

/* The ring the hooks fill, for zc__rcache_watch(). */
struct zc__invring *zc__memhook_ring(void);

#endif
