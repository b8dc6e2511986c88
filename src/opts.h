/*
 * Internal, layer 0 (pure): connection options, checked and resolved
 * (opts.c), and the READ depths a raw connection asks rdma_cm for.
 */
#ifndef ZC_OPTS_H
#define ZC_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zcrdma.h"

#define ZC__RAW_DEPTH 128 /* raw_send_depth, raw_recv_depth by default */

/* 0, or -EINVAL with the reason; priv_max is what the message the private
 * data goes in carries, msg its name ("connect request", "reply"). */
int zc__conn_opts_check(const struct zc_conn_opts *o, size_t priv_max, const char *msg);
/* Replaces "default" values (-1, 0) by what they mean for o's mode. */
void zc__conn_opts_resolve(struct zc_conn_opts *o);
/* A raw READ depth (initiator depth or responder resources): the option
 * (-1: the device's limit dev_max), never beyond dev_max or rdma_cm's
 * byte, and, on the accepting side, never beyond what the requester
 * offered (its responder resources bound our initiator depth and the
 * other way round). */
uint8_t zc__raw_read_depth(uint32_t dev_max, int want, bool accepting, uint8_t offered);

#endif
