/* src/rma.c as it is, plus entry points for its static descriptor codec. */
#include "rma.c"

#include "rma_desc.h"

void fuzz_desc_encode(struct zc_desc *d, int access, uint32_t rkey, uint64_t addr, uint64_t len)
{
	desc_encode(d, access, rkey, addr, len);
}

int fuzz_desc_decode(const struct zc_desc *d, int *access, uint32_t *rkey, uint64_t *addr, uint64_t *len)
{
	return desc_decode(d, access, rkey, addr, len);
}
