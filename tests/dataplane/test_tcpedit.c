/*
 * test_tcpedit.c — edit lists: sequence mapping, ACK unmapping, pieces of a
 * range, merging and collapse, across sequence wraparound.
 */
#include <errno.h>

#include <criterion/criterion.h>

#include "tcpedit.h"

struct map_case {
	const char *name;
	uint32_t base_seq;		/* all positions are offsets from here */
	struct tcpedit_pt pts[4];	/* offsets, made absolute by the test */
	unsigned n;
	uint32_t p;			/* original position (offset) */
	int32_t lo, hi;			/* expected view offsets */
};

static const struct map_case map_cases[] = {
	{"no points", 1000, {{0}}, 0, 50, 50, 50},
	{"before a removal", 1000, {{100, 20, 0}}, 1, 99, 99, 99},
	{"at a removal's start", 1000, {{100, 20, 0}}, 1, 100, 100, 100},
	{"inside a removal", 1000, {{100, 20, 0}}, 1, 110, 100, 100},
	{"after a removal", 1000, {{100, 20, 0}}, 1, 150, 130, 130},
	{"at an insertion", 1000, {{100, 0, 30}}, 1, 100, 100, 130},
	{"after an insertion", 1000, {{100, 0, 30}}, 1, 101, 131, 131},
	{"two removals", 1000, {{10, 5, 0}, {50, 10, 0}}, 2, 70, 55, 55},
	{"insertion and removal", 1000, {{10, 0, 7}, {50, 10, 0}}, 2, 70, 67, 67},
	{"replacement", 1000, {{10, 4, 9}}, 1, 20, 25, 25},
	{"across wraparound", 0xfffffff0u, {{0x8, 12, 0}, {0x20, 0, 40}}, 2, 0x30, 0x4c, 0x4c},
	{"at insertion across wraparound", 0xfffffff0u, {{0x8, 12, 0}, {0x20, 0, 40}}, 2, 0x20,
	 0x14, 0x3c},
};

static void make(const struct map_case *c, struct tcpedit *l, struct tcpedit_pt *pts)
{
	l->base = 0;
	l->n = 0;
	for (unsigned i = 0; i < c->n; i++)
		cr_assert_eq(tcpedit_add(l, pts, 8, c->base_seq + c->pts[i].pos, c->pts[i].del,
					 c->pts[i].ins),
			     0);
}

Test(tcpedit, map_table)
{
	for (unsigned k = 0; k < sizeof(map_cases) / sizeof(map_cases[0]); k++) {
		const struct map_case *c = &map_cases[k];
		struct tcpedit l;
		struct tcpedit_pt pts[8];
		make(c, &l, pts);
		uint32_t p = c->base_seq + c->p;
		cr_expect_eq(tcpedit_map_lo(&l, pts, p), c->base_seq + (uint32_t)c->lo, "%s: lo",
			     c->name);
		cr_expect_eq(tcpedit_map_hi(&l, pts, p), c->base_seq + (uint32_t)c->hi, "%s: hi",
			     c->name);
	}
}

struct unmap_case {
	const char *name;
	struct tcpedit_pt pts[3];
	unsigned n;
	uint32_t v;	/* view ACK (offset) */
	uint32_t want;	/* original ACK (offset) */
};

static const struct unmap_case unmap_cases[] = {
	{"linear", {{0}}, 0, 40, 40},
	{"up to a removal: the removed bytes count as received", {{100, 20, 0}}, 1, 100, 120},
	{"short of a removal", {{100, 20, 0}}, 1, 99, 99},
	{"past a removal", {{100, 20, 0}}, 1, 105, 125},
	{"inside an insertion", {{100, 0, 30}}, 1, 110, 100},
	{"at an insertion's start", {{100, 0, 30}}, 1, 100, 100},
	{"at an insertion's end", {{100, 0, 30}}, 1, 130, 100},
	{"past an insertion", {{100, 0, 30}}, 1, 131, 101},
	{"partly acked replacement", {{10, 4, 9}}, 1, 15, 10},
	{"fully acked replacement", {{10, 4, 9}}, 1, 19, 14},
};

Test(tcpedit, unmap_table)
{
	for (unsigned k = 0; k < sizeof(unmap_cases) / sizeof(unmap_cases[0]); k++) {
		const struct unmap_case *c = &unmap_cases[k];
		struct tcpedit l = {0};
		struct tcpedit_pt pts[8];
		const uint32_t b = 0xffffffc0u; /* everything wraps */
		for (unsigned i = 0; i < c->n; i++)
			tcpedit_add(&l, pts, 8, b + c->pts[i].pos, c->pts[i].del, c->pts[i].ins);
		cr_expect_eq(tcpedit_unmap(&l, pts, b + c->v), b + c->want, "%s", c->name);
	}
}

Test(tcpedit, adjacent_points_merge_and_capacity_is_enforced)
{
	struct tcpedit l = {0};
	struct tcpedit_pt pts[2];
	cr_assert_eq(tcpedit_add(&l, pts, 2, 100, 10, 0), 0);
	cr_assert_eq(tcpedit_add(&l, pts, 2, 110, 5, 0), 0, "adjacent: merged");
	cr_assert_eq(l.n, 1);
	cr_assert_eq(pts[0].del, 15);
	cr_assert_eq(tcpedit_add(&l, pts, 2, 200, 0, 8), 0);
	cr_assert_eq(tcpedit_add(&l, pts, 2, 200, 0, 4), 0, "same insertion point: merged");
	cr_assert_eq(pts[1].ins, 12);
	cr_assert_eq(tcpedit_add(&l, pts, 2, 300, 1, 0), -ENOSPC);
}

Test(tcpedit, collapse_keeps_the_mapping)
{
	struct tcpedit l = {0};
	struct tcpedit_pt pts[8];
	tcpedit_add(&l, pts, 8, 100, 0, 30);
	tcpedit_add(&l, pts, 8, 200, 0, 20);
	uint32_t before = tcpedit_map_hi(&l, pts, 500);
	cr_assert_eq(tcpedit_collapse(&l, pts, 129), 0, "not wholly acknowledged");
	cr_assert_eq(tcpedit_collapse(&l, pts, 130), 30);
	cr_assert_eq(l.n, 1);
	cr_assert_eq(l.base, 30);
	cr_assert_eq(tcpedit_map_hi(&l, pts, 500), before);
	cr_assert_eq(tcpedit_unmap(&l, pts, 240), 200);
	cr_assert_eq(tcpedit_collapse(&l, pts, 250), 20);
	cr_assert_eq(l.n, 0);
	cr_assert_eq(tcpedit_map_hi(&l, pts, 500), before);
}

struct pieces_case {
	const char *name;
	struct tcpedit_pt pts[3];
	unsigned n;
	uint32_t x, y;
	int with_x;
	struct tcpedit_piece want[5];
	unsigned n_want;
	uint32_t vstart;
};

static const struct pieces_case pieces_cases[] = {
	{"untouched", {{0}}, 0, 10, 20, 0, {{10, 10, 0}}, 1, 10},
	{"removal in the middle", {{100, 20, 0}}, 1, 90, 130, 0, {{90, 10, 0}, {120, 10, 0}}, 2,
	 90},
	{"starts inside a removal", {{100, 20, 0}}, 1, 110, 130, 0, {{120, 10, 0}}, 1, 100},
	{"insertion at the end rides along", {{100, 0, 5}}, 1, 90, 100, 0,
	 {{90, 10, 0}, {0, 5, 1}}, 2, 90},
	{"insertion at the start belongs to the range before", {{100, 0, 5}}, 1, 100, 110, 0,
	 {{100, 10, 0}}, 1, 105},
	{"insertion at the start, range cut there", {{100, 0, 5}}, 1, 100, 110, 1,
	 {{0, 5, 1}, {100, 10, 0}}, 2, 100},
	{"insertions at both ends", {{100, 0, 5}, {110, 0, 7}}, 2, 100, 110, 0,
	 {{100, 10, 0}, {5, 7, 1}}, 2, 105},
	{"second insertion's text offset", {{50, 0, 5}, {100, 0, 7}}, 2, 60, 120, 0,
	 {{60, 40, 0}, {5, 7, 1}, {100, 20, 0}}, 3, 65},
	{"all removed", {{100, 20, 0}}, 1, 100, 120, 0, {{0}}, 0, 100},
};

Test(tcpedit, pieces_table)
{
	for (unsigned k = 0; k < sizeof(pieces_cases) / sizeof(pieces_cases[0]); k++) {
		const struct pieces_case *c = &pieces_cases[k];
		struct tcpedit l = {0};
		struct tcpedit_pt pts[8];
		struct tcpedit_piece out[8];
		uint32_t vs;
		for (unsigned i = 0; i < c->n; i++)
			tcpedit_add(&l, pts, 8, c->pts[i].pos, c->pts[i].del, c->pts[i].ins);
		unsigned n = tcpedit_pieces(&l, pts, c->x, c->y, c->with_x, out, 8, &vs);
		cr_expect_eq(n, c->n_want, "%s: pieces", c->name);
		cr_expect_eq(vs, c->vstart, "%s: view start", c->name);
		for (unsigned i = 0; i < n && i < c->n_want; i++) {
			cr_expect_eq(out[i].from, c->want[i].from, "%s: piece %u from", c->name, i);
			cr_expect_eq(out[i].len, c->want[i].len, "%s: piece %u len", c->name, i);
			cr_expect_eq(out[i].insert, c->want[i].insert, "%s: piece %u kind", c->name, i);
		}
	}
}
