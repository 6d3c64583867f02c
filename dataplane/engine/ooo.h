/*
 * ooo.h — out-of-order segments of a flow: kept in segment blocks (bounded
 * per flow and per lcore, counted) and replayed through the stream editor
 * once the gap before them is filled.  Runs on the engine's lcore.
 */
#ifndef RG_ENGINE_OOO_H
#define RG_ENGINE_OOO_H

#include "engine_int.h"
#include "flow.h"
#include "pkt.h"

/* Keep an out-of-order segment of direction dir (0 c2s, 1 s2c); 0 stored, -1 not. */
int ooo_store(struct engine *e, struct flow *f, const struct pkt *p, int dir);

/* Replay the kept segments that became in order, in lent buffers built from
 * the current frame's headers. */
void ooo_drain(struct engine *e, struct flow *f, struct engine_frame *fr, const struct pkt *cur,
	       int dir, struct engine_out *out);

#endif
