/*
 * test_flow.c — the flow table and its block pools: lookup in both
 * directions, removal, the free list, chain and pool limits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "flow.h"

static struct flow_table F;
static void *mem;

static void setup(void)
{
	size_t n = flow_mem_size(8, 2, 3, 512, 16, 1024);
	mem = aligned_alloc(64, (n + 63) & ~(size_t)63);
	flow_table_init(&F, mem, 8, 2, 3, 512, 16, 1024, 42);
}

static void teardown(void)
{
	free(mem);
}

TestSuite(flow, .init = setup, .fini = teardown);

static const uint8_t A[16] = {198, 18, 0, 1}, B[16] = {198, 19, 0, 2};

Test(flow, lookup_both_directions)
{
	int c2s = -1;
	struct flow *f = flow_insert(&F, 4, A, B, 40000, 25);
	cr_assert_not_null(f);
	cr_assert_eq(flow_lookup(&F, 4, A, B, 40000, 25, &c2s), f);
	cr_assert_eq(c2s, 1);
	cr_assert_eq(flow_lookup(&F, 4, B, A, 25, 40000, &c2s), f);
	cr_assert_eq(c2s, 0);
	cr_assert_null(flow_lookup(&F, 4, A, B, 40001, 25, &c2s));
	cr_assert_null(flow_lookup(&F, 6, A, B, 40000, 25, &c2s), "family is part of the key");
	cr_assert_eq(F.used, 1);
	flow_remove(&F, f);
	cr_assert_eq(F.used, 0);
	cr_assert_null(flow_lookup(&F, 4, A, B, 40000, 25, &c2s));
}

Test(flow, table_full_then_free_slot_reused)
{
	struct flow *f[8];
	for (int i = 0; i < 8; i++) {
		f[i] = flow_insert(&F, 4, A, B, (uint16_t)(1000 + i), 25);
		cr_assert_not_null(f[i], "flow %d", i);
	}
	cr_assert_null(flow_insert(&F, 4, A, B, 2000, 25), "no slot left");
	flow_remove(&F, f[3]);
	struct flow *g = flow_insert(&F, 4, A, B, 2000, 25);
	cr_assert_eq(g, f[3]);
	int c2s;
	for (int i = 0; i < 8; i++)
		if (i != 3)
			cr_assert_eq(flow_lookup(&F, 4, A, B, (uint16_t)(1000 + i), 25, &c2s), f[i]);
}

Test(flow, busy_blocks_are_bounded_and_carry_the_queue)
{
	struct flow *a = flow_insert(&F, 4, A, B, 1, 25), *b = flow_insert(&F, 4, A, B, 2, 25),
		    *c = flow_insert(&F, 4, A, B, 3, 25);
	a->q_inl[0] = Q_EHLO;
	a->q_inl[1] = Q_DATA;
	a->q_n = 2;
	cr_assert_eq(flow_busy_get(&F, a), 0);
	cr_assert_eq(flow_busy(&F, a)->q_n, 2);
	cr_assert_eq(flow_q(&F, a)[0].kind, Q_EHLO);
	cr_assert_eq(flow_q(&F, a)[1].kind, Q_DATA);
	cr_assert_eq(a->q_n, 0);
	cr_assert_eq(flow_busy_get(&F, b), 0);
	cr_assert_eq(flow_busy_get(&F, c), -ENOSPC);
	cr_assert_eq(F.busy_used, 2);
	flow_busy_put(&F, a);
	cr_assert_eq(a->q_n, 2, "the queue moved back inline");
	cr_assert_eq(a->q_inl[1], Q_DATA);
	cr_assert_eq(flow_busy_get(&F, c), 0);
	flow_remove(&F, b);
	cr_assert_eq(F.busy_used, 1, "removal frees the block");
}

Test(flow, segment_pool_is_bounded)
{
	uint32_t s[3];
	for (int i = 0; i < 3; i++)
		cr_assert_neq(s[i] = flow_seg_get(&F), FLOW_NONE);
	cr_assert_eq(flow_seg_get(&F), FLOW_NONE);
	flow_seg_put(&F, s[1]);
	cr_assert_eq(flow_seg_get(&F), s[1]);
}

Test(flow, idle_flow_is_small)
{
	cr_assert_leq(sizeof(struct flow) + sizeof(uint32_t), 512);
}
