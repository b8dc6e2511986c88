/*
 * A zc_perf session: the control connection between client and server, the
 * check that both run the same test (refused with a message naming the first
 * differing option), and what the header reports about the device.
 */
#ifndef ZC_PERF_SESSION_H
#define ZC_PERF_SESSION_H

#include "perf_test.h"

/* Server: listen, take one client. Client: connect (retrying for --wait). */
int perf_session_open(struct perf_ctx *ctx);

/* Frees everything perf_session_open made; safe after a partial open. */
void perf_session_close(struct perf_ctx *ctx);

#endif
