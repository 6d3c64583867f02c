/*
 * test_spsc.c — SPSC ring: order across wraparound, full ring counted and
 * never overwritten, empty ring.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "spsc.h"

struct rec {
	uint64_t seq;
	uint64_t pad[3];
};

static struct spsc_hdr *ring_new(uint32_t slots)
{
	struct spsc_hdr *r = aligned_alloc(64, spsc_bytes(slots, sizeof(struct rec)));
	cr_assert_not_null(r);
	spsc_init(r, slots, sizeof(struct rec));
	return r;
}

Test(spsc, empty)
{
	struct spsc_hdr *r = ring_new(8);
	cr_expect_null(spsc_peek(r));
	cr_expect_eq(spsc_count(r), 0);
	free(r);
}

struct wrap_case {
	const char *name;
	uint32_t slots;
	unsigned batch; /* produce this many, then consume them */
	unsigned rounds;
};

Test(spsc, wraparound_keeps_order)
{
	const struct wrap_case cases[] = {
		{"one at a time", 4, 1, 1000},
		{"half ring", 8, 4, 500},
		{"whole ring", 16, 16, 300},
		{"odd batches", 8, 3, 777},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct spsc_hdr *r = ring_new(cases[c].slots);
		uint64_t next_in = 0, next_out = 0;
		for (unsigned round = 0; round < cases[c].rounds; round++) {
			for (unsigned i = 0; i < cases[c].batch; i++) {
				struct rec *x = spsc_reserve(r);
				cr_assert_not_null(x, "%s: ring full too early", cases[c].name);
				x->seq = next_in++;
				spsc_commit(r);
			}
			cr_expect_eq(spsc_count(r), cases[c].batch);
			const struct rec *y;
			while ((y = spsc_peek(r)) != NULL) {
				cr_assert_eq(y->seq, next_out, "%s: out of order", cases[c].name);
				next_out++;
				spsc_release(r);
			}
		}
		cr_expect_eq(next_out, next_in, "%s", cases[c].name);
		cr_expect_eq(spsc_drops(r), 0, "%s", cases[c].name);
		free(r);
	}
}

Test(spsc, full_counts_and_keeps_old)
{
	struct spsc_hdr *r = ring_new(4);
	for (uint64_t i = 0; i < 4; i++) {
		struct rec *x = spsc_reserve(r);
		cr_assert_not_null(x);
		x->seq = i;
		spsc_commit(r);
	}
	for (int i = 0; i < 3; i++)
		cr_expect_null(spsc_reserve(r), "full ring must refuse");
	cr_expect_eq(spsc_drops(r), 3);
	const struct rec *y = spsc_peek(r);
	cr_assert_not_null(y);
	cr_expect_eq(y->seq, 0, "oldest record must survive a full ring");
	spsc_release(r);
	struct rec *x = spsc_reserve(r);
	cr_expect_not_null(x, "one slot free after a release");
	free(r);
}
