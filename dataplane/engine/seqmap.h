/*
 * seqmap.h — sequence, acknowledgement and SACK numbers of a flow through its
 * two edit lists (tcpedit.h): original stream positions to what each end
 * sees, and back.  Inline: every segment maps a few numbers.
 * Runs on the flow's lcore.
 */
#ifndef RG_ENGINE_SEQMAP_H
#define RG_ENGINE_SEQMAP_H

#include <stdint.h>

#include "engine_int.h"
#include "flow.h"
#include "tcpedit.h"

static inline struct tcpedit_pt *pts_of(const struct engine *e, const struct flow *f, int s2c)
{
	return f->busy != FLOW_NONE ? flow_pts(&e->ft, f, s2c) : NULL;
}

static inline uint32_t map_c2s(const struct engine *e, const struct flow *f, uint32_t p)
{
	return f->c2s.n ? tcpedit_map_hi(&f->c2s, pts_of(e, f, 0), p) : p + (uint32_t)f->c2s.base;
}

static inline uint32_t map_s2c_hi(const struct engine *e, const struct flow *f, uint32_t p)
{
	return f->s2c.n ? tcpedit_map_hi(&f->s2c, pts_of(e, f, 1), p) : p + (uint32_t)f->s2c.base;
}

/* Server ACK (of forwarded client bytes) -> client's view. */
static inline uint32_t unmap_c2s(const struct engine *e, const struct flow *f, uint32_t v)
{
	return f->c2s.n ? tcpedit_unmap(&f->c2s, pts_of(e, f, 0), v) : v - (uint32_t)f->c2s.base;
}

/* The ACK the client gets for its stream: the server's, translated, or what
 * the engine acknowledged itself (bytes it owns), whichever is further. */
static inline uint32_t ack_for_client(const struct engine *e, const struct flow *f, uint32_t v)
{
	return seq_max(unmap_c2s(e, f, v), f->c_own);
}

/* Client ACK (of the server stream as the client sees it) -> server's view. */
static inline uint32_t unmap_s2c(const struct engine *e, const struct flow *f, uint32_t v)
{
	return f->s2c.n ? tcpedit_unmap(&f->s2c, pts_of(e, f, 1), v) : v - (uint32_t)f->s2c.base;
}

#endif
