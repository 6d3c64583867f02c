/*
 * spsc.c — ring initialisation (the writer, at shared-memory creation).
 * The hot paths are inline in spsc.h.
 */
#include <string.h>

#include "spsc.h"

void spsc_init(struct spsc_hdr *r, uint32_t slots, uint32_t rec_size)
{
	memset(r, 0, sizeof(*r));
	r->slots = slots;
	r->rec_size = rec_size;
}
