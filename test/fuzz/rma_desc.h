/*
 * The RMA descriptor codec of src/rma.c (struct zc_desc, 32 bytes), which is
 * static there; rma_desc.c compiles rma.c into the fuzz targets and exports
 * the pair under these names.
 */
#ifndef ZC_FUZZ_RMA_DESC_H
#define ZC_FUZZ_RMA_DESC_H

#include <stdint.h>

#include "zcrdma.h"

void fuzz_desc_encode(struct zc_desc *d, int access, uint32_t rkey, uint64_t addr, uint64_t len);
int fuzz_desc_decode(const struct zc_desc *d, int *access, uint32_t *rkey, uint64_t *addr, uint64_t *len);

#endif
