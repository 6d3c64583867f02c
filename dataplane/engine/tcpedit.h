/*
 * tcpedit.h — the edit list of one direction of a TCP flow: the points where
 * the engine replaced original stream bytes (client commands it removed) or
 * inserted bytes (replies it injected), and the translation of sequence
 * numbers, acknowledgements and SACK edges through them.
 *
 * A point {pos, del, ins} says: original bytes [pos, pos+del) are replaced by
 * ins bytes of the engine's own (del = 0: a pure insertion before byte pos;
 * ins = 0: a pure removal).  Points are kept sorted and never overlap; a point
 * that starts where the previous one ends is merged into it.  Points whose
 * replacement the receiver has acknowledged collapse into one cumulative
 * offset (base), as in netfilter's nf_ct_seqadj but with any number of live
 * points.  All positions are 32-bit sequence numbers compared serially, so the
 * list is correct across sequence wraparound as long as live points lie within
 * 2^31 of each other (TCP's own window rule guarantees it).
 *
 * The points array lives in the flow's busy block (flow.h); struct tcpedit is
 * what every flow keeps inline.  Runs on the flow's worker lcore.
 */
#ifndef RG_ENGINE_TCPEDIT_H
#define RG_ENGINE_TCPEDIT_H

#include <stdint.h>

struct tcpedit_pt {
	uint32_t pos;
	uint32_t del;
	uint32_t ins;
};

struct tcpedit {
	int32_t base;	/* (ins - del) summed over collapsed points */
	uint16_t n;	/* live points */
	uint16_t _pad0;
};

static inline int seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}
static inline int seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}
static inline uint32_t seq_max(uint32_t a, uint32_t b)
{
	return seq_lt(a, b) ? b : a;
}
static inline uint32_t seq_min(uint32_t a, uint32_t b)
{
	return seq_lt(a, b) ? a : b;
}

/* View position of original boundary p, before any insertion at p. */
uint32_t tcpedit_map_lo(const struct tcpedit *l, const struct tcpedit_pt *pts, uint32_t p);

/* View position of original boundary p, after a pure insertion at p. */
uint32_t tcpedit_map_hi(const struct tcpedit *l, const struct tcpedit_pt *pts, uint32_t p);

/*
 * Original position acknowledged by a view acknowledgement v: a replacement
 * counts as received only when v covers all of it, and then its removed
 * original bytes count as received too.
 */
uint32_t tcpedit_unmap(const struct tcpedit *l, const struct tcpedit_pt *pts, uint32_t v);

/*
 * Add a point at pos (>= the end of the last point).  Returns 0, or -ENOSPC
 * when cap points are live and pos does not merge into the last one.
 */
int tcpedit_add(struct tcpedit *l, struct tcpedit_pt *pts, uint16_t cap, uint32_t pos,
		uint32_t del, uint32_t ins);

/*
 * Collapse the leading points whose replacement lies wholly below the view
 * acknowledgement v.  Returns the inserted bytes those points held (the
 * caller frees as many bytes of injected text).
 */
uint32_t tcpedit_collapse(struct tcpedit *l, struct tcpedit_pt *pts, uint32_t v);

/* One piece of the view of an original range. */
struct tcpedit_piece {
	uint32_t from;	/* original position (orig) or byte offset into the
			 * inserted text of all live points (insert) */
	uint32_t len;
	uint8_t insert;	/* 0: original bytes [from, from+len); 1: inserted text */
};

/*
 * The view of original range [x, y) as pieces, in order: original bytes not
 * removed, and inserted text.  A pure insertion at p belongs to the range
 * that holds original byte p - 1 (it follows the reply that ends at p): it
 * is part of [x, y) when x < p <= y, and at p == x only when with_x is set
 * (the caller's range was cut at x but its segment held byte x - 1).
 * *view_start gets the view position of the first piece: before a pure
 * insertion at x when it is included, after it when not.  Returns the number
 * of pieces, at most max (further pieces are cut off; the caller sizes max as
 * 2 * live points + 1).
 */
unsigned tcpedit_pieces(const struct tcpedit *l, const struct tcpedit_pt *pts, uint32_t x,
			uint32_t y, int with_x, struct tcpedit_piece *out, unsigned max,
			uint32_t *view_start);

/* Total inserted bytes of live points (bytes of text the caller keeps). */
uint32_t tcpedit_live_ins(const struct tcpedit *l, const struct tcpedit_pt *pts);

#endif
