/*
 * tcpedit.c — edit lists and sequence translation (see tcpedit.h).
 * Runs on the flow's worker lcore.  Lists are short (points collapse once
 * acknowledged), so a linear walk beats any index.
 */
#include <errno.h>
#include <string.h>

#include "tcpedit.h"

uint32_t tcpedit_map_lo(const struct tcpedit *l, const struct tcpedit_pt *pts, uint32_t p)
{
	uint32_t d = (uint32_t)l->base;
	for (unsigned i = 0; i < l->n; i++) {
		const struct tcpedit_pt *t = &pts[i];
		if (!seq_lt(t->pos, p))
			break;
		if (!seq_le(t->pos + t->del, p))
			return t->pos + d + t->ins; /* inside a removal */
		d += t->ins - t->del;
	}
	return p + d;
}

uint32_t tcpedit_map_hi(const struct tcpedit *l, const struct tcpedit_pt *pts, uint32_t p)
{
	uint32_t d = (uint32_t)l->base;
	for (unsigned i = 0; i < l->n; i++) {
		const struct tcpedit_pt *t = &pts[i];
		if (t->pos == p && t->del == 0) {
			d += t->ins;
			break;
		}
		if (!seq_lt(t->pos, p))
			break;
		if (!seq_le(t->pos + t->del, p))
			return t->pos + d + t->ins;
		d += t->ins - t->del;
	}
	return p + d;
}

uint32_t tcpedit_unmap(const struct tcpedit *l, const struct tcpedit_pt *pts, uint32_t v)
{
	uint32_t d = (uint32_t)l->base;
	for (unsigned i = 0; i < l->n; i++) {
		const struct tcpedit_pt *t = &pts[i];
		uint32_t vs = t->pos + d, ve = vs + t->ins;
		if (seq_lt(v, vs))
			return v - d;
		if (seq_lt(v, ve))
			return t->pos;
		if (v == ve)
			return t->pos + t->del;
		d += t->ins - t->del;
	}
	return v - d;
}

int tcpedit_add(struct tcpedit *l, struct tcpedit_pt *pts, uint16_t cap, uint32_t pos,
		uint32_t del, uint32_t ins)
{
	if (l->n) {
		struct tcpedit_pt *t = &pts[l->n - 1];
		if (t->pos + t->del == pos) {
			t->del += del;
			t->ins += ins;
			return 0;
		}
	}
	if (l->n >= cap)
		return -ENOSPC;
	pts[l->n].pos = pos;
	pts[l->n].del = del;
	pts[l->n].ins = ins;
	l->n++;
	return 0;
}

uint32_t tcpedit_collapse(struct tcpedit *l, struct tcpedit_pt *pts, uint32_t v)
{
	uint32_t freed = 0, d = (uint32_t)l->base;
	unsigned k = 0;
	while (k < l->n) {
		const struct tcpedit_pt *t = &pts[k];
		uint32_t ve = t->pos + d + t->ins;
		if (!seq_le(ve, v))
			break;
		d += t->ins - t->del;
		freed += t->ins;
		k++;
	}
	if (k) {
		l->base = (int32_t)d;
		l->n = (uint16_t)(l->n - k);
		memmove(pts, pts + k, l->n * sizeof(*pts));
	}
	return freed;
}

uint32_t tcpedit_live_ins(const struct tcpedit *l, const struct tcpedit_pt *pts)
{
	uint32_t s = 0;
	for (unsigned i = 0; i < l->n; i++)
		s += pts[i].ins;
	return s;
}

unsigned tcpedit_pieces(const struct tcpedit *l, const struct tcpedit_pt *pts, uint32_t x,
			uint32_t y, int with_x, struct tcpedit_piece *out, unsigned max,
			uint32_t *view_start)
{
	uint32_t cur = x, toff = 0;
	unsigned n = 0;

	*view_start = with_x ? tcpedit_map_lo(l, pts, x) : tcpedit_map_hi(l, pts, x);
	for (unsigned i = 0; i < l->n && n < max; i++) {
		const struct tcpedit_pt *t = &pts[i];
		uint32_t pe = t->pos + t->del;
		if (seq_le(pe, x) && !(with_x && t->pos == x && t->del == 0)) {
			toff += t->ins;
			continue; /* wholly before x */
		}
		if (seq_lt(y, t->pos) || (t->pos == y && t->del > 0))
			break; /* wholly after y */
		if (seq_lt(cur, t->pos)) {
			out[n].from = cur;
			out[n].len = t->pos - cur;
			out[n].insert = 0;
			n++;
		}
		if (t->ins && !seq_lt(t->pos, x) && n < max) {
			out[n].from = toff;
			out[n].len = t->ins;
			out[n].insert = 1;
			n++;
		}
		toff += t->ins;
		if (seq_lt(cur, pe))
			cur = pe;
	}
	if (seq_lt(cur, y) && n < max) {
		out[n].from = cur;
		out[n].len = y - cur;
		out[n].insert = 0;
		n++;
	}
	return n;
}
