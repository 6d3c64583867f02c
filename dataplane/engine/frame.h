/*
 * frame.h — frames of the engine's own and the fields it rewrites: building
 * a frame toward either end as that end's frames look, payload per frame
 * (MSS, MTU, transmit buffers), the window the client may see, checksums
 * (incremental where one field changes, in full or offloaded otherwise).
 * Runs on the engine's lcore.
 */
#ifndef RG_ENGINE_FRAME_H
#define RG_ENGINE_FRAME_H

#include <stdint.h>

#include "engine_int.h"
#include "flow.h"
#include "pkt.h"

static inline uint16_t csum_fix32(uint16_t ck, uint32_t old, uint32_t nw)
{
	/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') */
	uint32_t s = (uint16_t)~ck;
	s += (uint16_t)~(old >> 16);
	s += (uint16_t)~(old & 0xffffu);
	s += nw >> 16;
	s += nw & 0xffffu;
	return (uint16_t)~pkt_csum_fold(s);
}

static inline void put32_fix(uint8_t *field, uint8_t *ck, uint32_t nw)
{
	uint32_t old = pkt_get32(field);
	if (old == nw)
		return;
	pkt_put32(field, nw);
	pkt_put16(ck, csum_fix32(pkt_get16(ck), old, nw));
}

static inline void put16_fix(uint8_t *field, uint8_t *ck, uint16_t nw)
{
	uint16_t old = pkt_get16(field);
	if (old == nw)
		return;
	pkt_put16(field, nw);
	pkt_put16(ck, csum_fix32(pkt_get16(ck), old, nw));
}

uint16_t frame_win_to_client(const struct engine *e, const struct flow *f, uint16_t win,
			     uint32_t a, int syn);
void frame_csum(struct engine *e, struct pkt *p, uint16_t *tx_flags);
/* Index of a lent buffer of at least need bytes, or -1 (counted: out_full). */
int frame_out_take(struct engine *e, struct engine_out *out, uint16_t need);
int frame_build(struct engine *e, struct flow *f, int s2c, struct engine_out *out, uint32_t seq,
		uint32_t ack, const uint8_t *pay, uint16_t len, uint8_t flags);
uint16_t frame_mss(const struct engine *e, const struct flow *f, int s2c, uint16_t opt_len);

#endif
