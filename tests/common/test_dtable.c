/*
 * test_dtable.c — domain table: put/update/delete, tombstones reused and
 * still probed through, full table refused.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dtable.h"
#include "testshm.h"

static struct shm_map map;
static char path[128];

static void setup(void)
{
	testshm_path(path, sizeof(path), "dtable");
	testshm_create(&map, path, 6, 8);
}

static void teardown(void)
{
	shm_detach(&map);
	unlink(path);
}

TestSuite(dtable, .init = setup, .fini = teardown);

static struct rg_key128 dkey(const char *d)
{
	struct rg_key128 k;
	dtable_key(&map, d, strlen(d), &k);
	return k;
}

Test(dtable, put_update_delete)
{
	struct dtable_info in = {DT_MODE_CALLOUT, DT_MISS_DEFER, DT_F_ACCEPT_ALL, 30}, out;
	struct rg_key128 a = dkey("example.test"), b = dkey("other.test");
	cr_expect_not(dtable_lookup(&map, &a, &out));
	cr_assert_eq(dtable_put(&map, &a, &in), 0);
	cr_assert(dtable_lookup(&map, &a, &out));
	cr_expect_eq(out.mode, DT_MODE_CALLOUT);
	cr_expect_eq(out.miss_policy, DT_MISS_DEFER);
	cr_expect(out.flags & DT_F_ACCEPT_ALL);
	cr_expect_eq(out.harvest_threshold, 30);
	cr_expect_not(dtable_lookup(&map, &b, &out));

	in.mode = DT_MODE_LIST;
	in.flags = DT_F_CASE_SENSITIVE;
	cr_assert_eq(dtable_put(&map, &a, &in), 0);
	cr_assert(dtable_lookup(&map, &a, &out));
	cr_expect_eq(out.mode, DT_MODE_LIST);
	cr_expect_not(out.flags & DT_F_ACCEPT_ALL);
	cr_expect(out.flags & DT_F_CASE_SENSITIVE);
	cr_expect_eq(shm_hdr(&map)->dtable_count, 1);

	cr_assert_eq(dtable_del(&map, &a), 0);
	cr_expect_not(dtable_lookup(&map, &a, &out));
	cr_expect_eq(dtable_del(&map, &a), -ENOENT);
	cr_expect_eq(shm_hdr(&map)->dtable_count, 0);
}

/* Keys colliding on the same slot: deleting the first must not hide the
 * second, and the tombstone is reused. */
Test(dtable, tombstones)
{
	struct dtable_info in = {DT_MODE_CALLOUT, DT_MISS_PASS, 0, 0}, out;
	struct rg_key128 k[3] = {{1, 7}, {2, 7}, {3, 7}}; /* same lo: same home slot */
	for (int i = 0; i < 3; i++)
		cr_assert_eq(dtable_put(&map, &k[i], &in), 0);
	cr_assert_eq(dtable_del(&map, &k[0]), 0);
	cr_expect(dtable_lookup(&map, &k[1], &out), "probe must pass the tombstone");
	cr_expect(dtable_lookup(&map, &k[2], &out));
	struct rg_key128 k4 = {4, 7};
	cr_assert_eq(dtable_put(&map, &k4, &in), 0);
	const struct dtable_ent *e = (const void *)(map.base + shm_hdr(&map)->dtable_off);
	cr_expect_eq(e[7].key_hi, 4, "the tombstone slot is reused");
	cr_expect(dtable_lookup(&map, &k4, &out));
}

Test(dtable, full_refused)
{
	struct dtable_info in = {DT_MODE_CALLOUT, DT_MISS_PASS, 0, 0}, out;
	uint32_t slots = shm_hdr(&map)->dtable_slots;
	for (uint32_t i = 0; i < slots; i++) {
		struct rg_key128 k = {i + 1, i};
		cr_assert_eq(dtable_put(&map, &k, &in), 0, "slot %u", i);
	}
	struct rg_key128 extra = {0xffff, 3};
	cr_expect_eq(dtable_put(&map, &extra, &in), -ENOSPC);
	cr_expect_not(dtable_lookup(&map, &extra, &out), "lookup in a full table ends");
	struct rg_key128 k5 = {6, 5};
	cr_expect(dtable_lookup(&map, &k5, &out));
}
