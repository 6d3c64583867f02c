/*
 * test_harvest.c — invalid-recipient counting per source prefix over a
 * sliding window.
 */
#include <stdlib.h>

#include <criterion/criterion.h>

#include "harvest.h"

static struct harvest H;
static void *mem;

static void setup(void)
{
	mem = calloc(1, harvest_mem_size(1024));
	harvest_init(&H, mem, 1024, 60000, 7);
}

static void teardown(void)
{
	free(mem);
}

TestSuite(harvest, .init = setup, .fini = teardown);

Test(harvest, same_host_trips_at_threshold_on_slash32)
{
	const uint8_t a[4] = {198, 18, 0, 1};
	uint32_t c = 0;
	cr_assert_eq(harvest_note(&H, 4, a, 1000, 3, &c), 0);
	cr_assert_eq(harvest_note(&H, 4, a, 1001, 3, &c), 0);
	cr_assert_eq(harvest_note(&H, 4, a, 1002, 3, &c), 32);
	cr_assert_eq(c, 3);
}

Test(harvest, neighbours_trip_the_slash24)
{
	uint32_t c = 0;
	unsigned hit = 0;
	for (uint8_t i = 1; i <= 3; i++) {
		const uint8_t a[4] = {198, 18, 0, i};
		hit = harvest_note(&H, 4, a, 1000 + i, 3, &c);
	}
	cr_assert_eq(hit, 24);
}

Test(harvest, ipv6_counts_per_slash64)
{
	uint8_t a[16] = {0x20, 0x01, 0, 2, 0, 0, 0, 1};
	uint32_t c = 0;
	unsigned hit = 0;
	for (int i = 0; i < 4; i++) {
		a[15] = (uint8_t)i;
		hit = harvest_note(&H, 6, a, 5000, 4, &c);
	}
	cr_assert_eq(hit, 64);
}

Test(harvest, counts_age_out_of_the_window)
{
	const uint8_t a[4] = {198, 18, 9, 9};
	uint32_t c = 0;
	harvest_note(&H, 4, a, 1000, 3, &c);
	harvest_note(&H, 4, a, 1000, 3, &c);
	/* two windows later the old counts no longer weigh */
	cr_assert_eq(harvest_note(&H, 4, a, 1000 + 120001, 3, &c), 0);
	/* a window and a half later, the previous window weighs half */
	const uint8_t b[4] = {198, 19, 7, 7};
	harvest_note(&H, 4, b, 200000, 3, &c);
	harvest_note(&H, 4, b, 200000, 3, &c);
	cr_assert_eq(harvest_note(&H, 4, b, 290000, 3, &c), 0, "1 + 2/2 = 2 < 3");
	cr_assert_eq(harvest_note(&H, 4, b, 290000, 3, &c), 32, "2 + 2/2 = 3");
	cr_assert_eq(c, 3);
}

Test(harvest, threshold_zero_is_off)
{
	const uint8_t a[4] = {198, 18, 0, 1};
	uint32_t c = 0;
	for (int i = 0; i < 10; i++)
		cr_assert_eq(harvest_note(&H, 4, a, 1000, 0, &c), 0);
}
