/*
 * test_rtable.c — recipient table semantics: insert, update, delete, expiry,
 * overflow chains, growth with reclamation, full table, flush, burst lookup.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include <criterion/criterion.h>

#include "rtable.h"
#include "testkeys.h"
#include "testshm.h"

static struct shm_map map;
static struct rtable_writer w;
static struct rtable_reader r;
static char path[128];

static void setup_sized(uint32_t init_log2, uint32_t max_log2)
{
	testshm_path(path, sizeof(path), "rtable");
	testshm_create(&map, path, init_log2, max_log2);
	rtable_writer_init(&w, &map);
	rtable_reader_init(&r, &map, NULL);
	/* a fresh file has no reader that could hold the other slab */
	rtable_maintain(&w, 0, 0);
	cr_assert_eq(w.reclaim_pending, 0);
}

static void setup(void)
{
	setup_sized(6, 16);
}

static void teardown(void)
{
	shm_detach(&map);
	unlink(path);
}

static struct rg_key128 key_n(uint64_t n)
{
	return testkeys_key(0x1234567, n);
}

static struct rtable_val val(uint8_t verdict, uint8_t source, uint8_t flags, uint64_t expiry)
{
	return (struct rtable_val){verdict, source, flags, expiry};
}

TestSuite(rtable, .init = setup, .fini = teardown);

/* A scripted sequence of operations on a handful of keys. */
enum op { PUT, DEL, GET_HIT, GET_MISS };
struct step {
	const char *name;
	enum op op;
	int key;
	struct rtable_val v; /* PUT: value; GET_HIT: expected */
	int rc;		     /* expected return of PUT/DEL */
};

Test(rtable, scripted_semantics)
{
	uint64_t exp = (uint64_t)time(NULL) + 3600;
	const struct step steps[] = {
		{"miss on empty", GET_MISS, 1, {0}, 0},
		{"insert invalid", PUT, 1, val(RT_INVALID, RT_SRC_CALLOUT, 0, exp), 0},
		{"hit after insert", GET_HIT, 1, val(RT_INVALID, RT_SRC_CALLOUT, 0, exp), 0},
		{"other key misses", GET_MISS, 2, {0}, 0},
		{"update to valid", PUT, 1, val(RT_VALID, RT_SRC_MANUAL, RT_F_PINNED, 0), 0},
		{"hit sees update", GET_HIT, 1, val(RT_VALID, RT_SRC_MANUAL, RT_F_PINNED, 0), 0},
		{"insert second", PUT, 2, val(RT_VALID, RT_SRC_LIST, 0, exp + 5), 0},
		{"second hit", GET_HIT, 2, val(RT_VALID, RT_SRC_LIST, 0, exp + 5), 0},
		{"delete first", DEL, 1, {0}, 0},
		{"first gone", GET_MISS, 1, {0}, 0},
		{"second kept", GET_HIT, 2, val(RT_VALID, RT_SRC_LIST, 0, exp + 5), 0},
		{"delete absent", DEL, 1, {0}, -ENOENT},
		{"reinsert first", PUT, 1, val(RT_INVALID, RT_SRC_POLICY, RT_F_STALE, exp), 0},
		{"first back", GET_HIT, 1, val(RT_INVALID, RT_SRC_POLICY, RT_F_STALE, exp), 0},
		{"empty verdict refused", PUT, 3, val(RT_NONE, 0, 0, 0), -EINVAL},
		{"refused not stored", GET_MISS, 3, {0}, 0},
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		const struct step *s = &steps[i];
		struct rg_key128 k = key_n((uint64_t)s->key);
		struct rtable_val got;
		switch (s->op) {
		case PUT:
			cr_expect_eq(rtable_put(&w, &k, &s->v), s->rc, "%s", s->name);
			break;
		case DEL:
			cr_expect_eq(rtable_del(&w, &k), s->rc, "%s", s->name);
			break;
		case GET_HIT:
			cr_assert(rtable_lookup(&r, &k, &got), "%s: not found", s->name);
			cr_expect_eq(got.verdict, s->v.verdict, "%s: verdict", s->name);
			cr_expect_eq(got.source, s->v.source, "%s: source", s->name);
			cr_expect_eq(got.flags, s->v.flags, "%s: flags", s->name);
			cr_expect_eq(got.expiry, s->v.expiry, "%s: expiry", s->name);
			cr_assert(rtable_get(&w, &k, &got), "%s: writer view", s->name);
			break;
		case GET_MISS:
			cr_expect_not(rtable_lookup(&r, &k, &got), "%s: found", s->name);
			break;
		}
	}
	cr_expect_eq(rtable_count(&w), 2);
	cr_expect_eq(shm_hdr(&map)->rtable_count, 2);
}

Test(rtable, expiry)
{
	uint64_t now = (uint64_t)time(NULL);
	struct rg_key128 old = key_n(10), fresh = key_n(11), forever = key_n(12);
	struct rtable_val v = val(RT_INVALID, 0, 0, now - 10), got;
	cr_assert_eq(rtable_put(&w, &old, &v), 0);
	v.expiry = now + 100;
	cr_assert_eq(rtable_put(&w, &fresh, &v), 0);
	v.expiry = 0;
	cr_assert_eq(rtable_put(&w, &forever, &v), 0);

	cr_assert(rtable_lookup(&r, &old, &got));
	cr_expect_not(rtable_val_live(&got, now), "expired entry reported live");
	cr_assert(rtable_lookup(&r, &fresh, &got));
	cr_expect(rtable_val_live(&got, now));

	unsigned removed = rtable_expire(&w, now, 1u << 6);
	cr_expect_eq(removed, 1);
	cr_expect_not(rtable_lookup(&r, &old, &got));
	cr_expect(rtable_lookup(&r, &fresh, &got));
	cr_expect(rtable_lookup(&r, &forever, &got));
	/* later: the fresh one expires too, the pinned one never */
	cr_expect_eq(rtable_expire(&w, now + 1000, 1u << 6), 1);
	cr_expect(rtable_lookup(&r, &forever, &got));
}

/* Keys that share a home bucket spill into the next ones and are found. */
Test(rtable, overflow_chain)
{
	uint32_t log2 = shm_hdr(&map)->rtable_log2[0];
	struct rg_key128 k[6];
	struct rtable_val v = val(RT_INVALID, 0, 0, 0), got;
	for (int i = 0; i < 6; i++) {
		/* same top log2 bits of hi => same home bucket */
		k[i] = key_n((uint64_t)i + 100);
		k[i].hi = (k[i].hi >> log2 >> 1) | (5ull << (64 - log2));
		cr_assert_eq(rtable_put(&w, &k[i], &v), 0);
	}
	const struct rtable_bucket *slab =
		(const void *)(map.base + shm_hdr(&map)->rtable_off[0]);
	cr_expect_eq(slab[5].ovf, 3, "three keys live past their home");
	for (int i = 0; i < 6; i++)
		cr_expect(rtable_lookup(&r, &k[i], &got), "key %d lost", i);
	cr_assert_eq(rtable_del(&w, &k[4]), 0);
	cr_expect_eq(slab[5].ovf, 2);
	cr_expect_not(rtable_lookup(&r, &k[4], &got));
	for (int i = 0; i < 6; i++)
		if (i != 4)
			cr_expect(rtable_lookup(&r, &k[i], &got), "key %d lost after delete", i);
}

Test(rtable, growth_keeps_every_key)
{
	const uint64_t n = 20000; /* 64 buckets to start: forces several doublings */
	struct rtable_val got;
	uint32_t log2_before = shm_hdr(&map)->rtable_log2[0];
	for (uint64_t i = 0; i < n; i++) {
		struct rg_key128 k = key_n(i);
		struct rtable_val v = val((i & 1) ? RT_VALID : RT_INVALID, 0, 0, 1000 + i);
		int rc = rtable_put(&w, &k, &v);
		while (rc == -ENOSPC && rtable_maintain(&w, 1024, 0))
			rc = rtable_put(&w, &k, &v);
		cr_assert_eq(rc, 0, "put %llu: %d", (unsigned long long)i, rc);
		rtable_maintain(&w, 64, 0);
	}
	while (rtable_maintain(&w, 1u << 20, 0))
		;
	uint64_t gen = shm_hdr(&map)->rtable_gen;
	uint32_t log2_after = shm_hdr(&map)->rtable_log2[gen & 1];
	cr_expect_gt(log2_after, log2_before + 5, "table grew from 2^%u to 2^%u", log2_before,
		     log2_after);
	cr_expect_eq(rtable_count(&w), n);
	for (uint64_t i = 0; i < n; i++) {
		struct rg_key128 k = key_n(i);
		cr_assert(rtable_lookup(&r, &k, &got), "key %llu lost", (unsigned long long)i);
		cr_assert_eq(got.verdict, (i & 1) ? RT_VALID : RT_INVALID);
		cr_assert_eq(got.expiry, 1000 + i);
	}
	cr_expect_gt(w.st.grows, 5);
}

/* The writer reuses the old slab only after every online reader passed a
 * quiescent point; a dead reader does not hold it. */
Test(rtable, reclaim_waits_for_readers)
{
	struct shm_lcore *lc = shm_lcore_at(&map, 1);
	struct rtable_reader rr;
	rtable_reader_init(&rr, &map, lc);
	rtable_reader_online(&rr, (uint32_t)getpid(), 1);
	uint64_t gen0 = shm_hdr(&map)->rtable_gen;

	cr_assert_eq(rtable_flush(&w), 0);
	cr_expect_eq(shm_hdr(&map)->rtable_gen, gen0 + 1);
	cr_expect(rtable_maintain(&w, 0, 0), "must defer: reader not quiescent");
	cr_expect_eq(w.reclaim_pending, 1);
	cr_expect_eq(rtable_flush(&w), -EAGAIN, "no second switch while reclaim pending");

	rtable_quiescent(&rr, 1);
	cr_expect_eq(lc->qsbr_gen, gen0 + 1);
	cr_expect_not(rtable_maintain(&w, 0, 0));
	cr_expect_eq(w.reclaim_pending, 0);

	/* an online reader whose process is gone */
	cr_assert_eq(rtable_flush(&w), 0);
	lc->pid = 0x7ffffff0; /* no such process */
	cr_expect_not(rtable_maintain(&w, 0, 0), "a dead reader must not block reclaim");
	/* an offline reader */
	rtable_reader_online(&rr, (uint32_t)getpid(), 1);
	cr_assert_eq(rtable_flush(&w), 0);
	rtable_reader_offline(&rr);
	cr_expect_not(rtable_maintain(&w, 0, 0));
}

Test(rtable, full_table_refuses)
{
	teardown();
	setup_sized(4, 4); /* 16 buckets x 3 slots, no growth possible */
	struct rtable_val v = val(RT_INVALID, 0, 0, 0), got;
	int stored = 0, refused = 0;
	for (uint64_t i = 0; i < 100; i++) {
		struct rg_key128 k = key_n(i);
		int rc = rtable_put(&w, &k, &v);
		cr_assert(rc == 0 || rc == -ENOSPC, "rc %d", rc);
		if (rc == 0)
			stored++;
		else
			refused++;
	}
	cr_expect_leq(stored, 48);
	cr_expect_gt(stored, 30, "probe window should fill most slots (%d)", stored);
	cr_expect_eq(refused, 100 - stored);
	cr_expect_eq(w.st.full, (uint64_t)refused);
	int found = 0;
	for (uint64_t i = 0; i < 100; i++) {
		struct rg_key128 k = key_n(i);
		found += rtable_lookup(&r, &k, &got);
	}
	cr_expect_eq(found, stored);
}

Test(rtable, flush_empties_and_shrinks)
{
	struct rtable_val v = val(RT_INVALID, 0, 0, 0), got;
	for (uint64_t i = 0; i < 2000; i++) {
		struct rg_key128 k = key_n(i);
		cr_assert_eq(rtable_put(&w, &k, &v), 0);
		rtable_maintain(&w, 1u << 20, 0);
	}
	while (rtable_maintain(&w, 1u << 20, 0))
		;
	cr_assert_eq(rtable_flush(&w), 0);
	uint64_t gen = shm_hdr(&map)->rtable_gen;
	cr_expect_eq(shm_hdr(&map)->rtable_log2[gen & 1], 6);
	cr_expect_eq(rtable_count(&w), 0);
	for (uint64_t i = 0; i < 2000; i++) {
		struct rg_key128 k = key_n(i);
		cr_assert_not(rtable_lookup(&r, &k, &got));
	}
}

Test(rtable, burst_matches_single)
{
	struct rtable_val v = val(RT_INVALID, 0, 0, 0);
	for (uint64_t i = 0; i < 200; i += 2) {
		struct rg_key128 k = key_n(i);
		cr_assert_eq(rtable_put(&w, &k, &v), 0);
		rtable_maintain(&w, 1u << 20, 0);
	}
	while (rtable_maintain(&w, 1u << 20, 0))
		;
	struct rg_key128 keys[64];
	struct rtable_val out[64];
	for (unsigned base = 0; base < 192; base += 64) {
		for (unsigned i = 0; i < 64; i++)
			keys[i] = key_n(base + i);
		uint64_t mask = rtable_lookup_burst(&r, keys, 64, out);
		for (unsigned i = 0; i < 64; i++) {
			struct rtable_val one;
			bool hit = rtable_lookup(&r, &keys[i], &one);
			cr_expect_eq(!!(mask & (1ull << i)), hit, "key %u", base + i);
			cr_expect_eq(hit, ((base + i) % 2) == 0);
			if (hit)
				cr_expect_eq(out[i].verdict, RT_INVALID);
		}
	}
}

/* The packet path maps the table read-only: a stray write faults. */
Test(rtable, reader_mapping_is_read_only, .signal = SIGSEGV)
{
	struct shm_map ro;
	char err[256];
	cr_assert_eq(shm_attach_reader(path, &ro, err, sizeof(err)), 0, "%s", err);
	/* the rw region is writable */
	struct shm_lcore *lc = shm_lcore_at(&ro, 0);
	lc->ctr[0] = 1;
	struct rtable_bucket *b = (void *)(ro.base + shm_hdr(&ro)->rtable_off[0]);
	unlink(path); /* the test process dies below: no fini runs */
	signal(SIGSEGV, SIG_DFL); /* a sanitizer's handler would exit(1) instead */
	*(volatile uint32_t *)&b->seq = 7; /* must fault */
}

/* A bulk load at full speed (the daemon loading a list: no maintenance turn
 * between puts, one reader online and quiescent between lookups): every put
 * returns 0, its key is found by a reader as soon as it returns, nothing is
 * refused, and the table grew through several generations to hold it all. */
Test(rtable, bulk_load_never_loses, .timeout = 60)
{
	teardown();
	setup_sized(16, 23); /* the shipped defaults */
	struct shm_lcore *lc = shm_lcore_at(&map, 0);
	struct rtable_reader rr;
	rtable_reader_init(&rr, &map, lc);
	rtable_reader_online(&rr, (uint32_t)getpid(), 0);
	const uint64_t n = 2000000;
	struct rtable_val v = val(RT_VALID, RT_SRC_LIST, 0, 0), got;
	uint64_t lost = 0;
	for (uint64_t i = 0; i < n; i++) {
		struct rg_key128 k = key_n(i);
		int rc = rtable_put(&w, &k, &v);
		cr_assert_eq(rc, 0, "put %llu refused: %d (table 2^%u, full %llu)",
			     (unsigned long long)i, rc,
			     shm_hdr(&map)->rtable_log2[shm_hdr(&map)->rtable_gen & 1],
			     (unsigned long long)w.st.full);
		if (!rtable_lookup(&rr, &k, &got) && lost++ < 5)
			cr_log_error("key %llu not found after its put returned",
				     (unsigned long long)i);
		rtable_quiescent(&rr, i);
	}
	cr_expect_eq(lost, 0, "%llu keys not visible once their put returned",
		     (unsigned long long)lost);
	cr_expect_eq(w.st.full, 0);
	cr_expect_eq(rtable_count(&w), n);
	cr_expect_geq(w.st.grows, 4, "2^16 -> 2^20 buckets");
	cr_log_info("bulk load: %llu grows, %llu finished in a put, %llu reader waits, "
		    "%llu migrated", (unsigned long long)w.st.grows,
		    (unsigned long long)w.st.sync_migrations,
		    (unsigned long long)w.st.reclaim_sync_waits, (unsigned long long)w.st.migrated);
	for (uint64_t i = 0; i < n; i++) {
		struct rg_key128 k = key_n(i);
		if (!rtable_lookup(&rr, &k, &got)) {
			cr_assert_fail("key %llu lost at the end", (unsigned long long)i);
		}
	}
	rtable_reader_offline(&rr);
}

/* A reader that never reaches a quiescent point (a stopped data plane) holds
 * the old slab: a put that needs growth waits RTABLE_RECLAIM_WAIT_MS, then
 * gives up with -EAGAIN, counted; readers keep every key put before; once
 * the reader moves on, puts complete again. */
Test(rtable, stuck_reader_bounds_the_wait, .timeout = 30)
{
	teardown();
	setup_sized(4, 12);
	struct shm_lcore *lc = shm_lcore_at(&map, 2);
	struct rtable_reader rr;
	rtable_reader_init(&rr, &map, lc);
	rtable_reader_online(&rr, (uint32_t)getpid(), 2);
	struct rtable_val v = val(RT_VALID, RT_SRC_LIST, 0, 0), got;
	uint64_t i, stored = 0;
	int rc = 0;
	struct timespec t0, t1;
	for (i = 0; i < 3000; i++) {
		struct rg_key128 k = key_n(i);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		rc = rtable_put(&w, &k, &v);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (rc)
			break;
		stored++;
	}
	cr_assert_eq(rc, -EAGAIN, "a put needing the held slab must give up (rc %d after %llu)",
		     rc, (unsigned long long)stored);
	double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_expect_geq(waited, RTABLE_RECLAIM_WAIT_MS / 1000.0 * 0.9, "waited %.3f s", waited);
	cr_expect_eq(w.st.stalls, 1);
	cr_expect_eq(w.st.full, 0);
	/* the next put that needs the held slab fails at once, not after
	 * another wait: a bulk load goes on (and flags what it could not put) */
	uint64_t m, failed_fast = 0;
	for (m = i + 1; m < 3000 && !failed_fast; m++) {
		struct rg_key128 k = key_n(m);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		rc = rtable_put(&w, &k, &v);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		if (rc == -EAGAIN) {
			cr_expect_lt(took, 0.1, "a second wait of %.3f s", took);
			failed_fast = 1;
		} else {
			cr_assert_eq(rc, 0);
		}
	}
	cr_expect(failed_fast, "no second put needed the held slab");
	cr_expect_eq(w.st.stalls, 2);
	cr_expect_eq(w.st.reclaim_sync_waits, 1);
	for (uint64_t j = 0; j < stored; j++) {
		struct rg_key128 k = key_n(j);
		cr_assert(rtable_lookup(&rr, &k, &got), "key %llu lost", (unsigned long long)j);
	}
	rtable_quiescent(&rr, 1);
	for (; i < 3000; i++) {
		struct rg_key128 k = key_n(i);
		cr_assert_eq(rtable_put(&w, &k, &v), 0, "put %llu after the reader moved on",
			     (unsigned long long)i);
		rtable_quiescent(&rr, 1);
	}
	cr_expect_eq(rtable_count(&w), 3000);
}

/* Narrow probe windows (1 bucket past home) fill long before 2/3 load: puts
 * meet full windows while a growth is under way and finish it themselves,
 * and a target that cannot place a key restarts one size up; every key is
 * visible as soon as its put returns and none is refused. */
Test(rtable, full_windows_finish_growth_in_the_put, .timeout = 30)
{
	teardown();
	setup_sized(4, 18);
	shm_hdr(&map)->rtable_max_probe = 1;
	struct rtable_val v = val(RT_VALID, RT_SRC_LIST, 0, 0), got;
	const uint64_t n = 20000;
	for (uint64_t i = 0; i < n; i++) {
		struct rg_key128 k = key_n(i);
		cr_assert_eq(rtable_put(&w, &k, &v), 0, "put %llu", (unsigned long long)i);
		cr_assert(rtable_lookup(&r, &k, &got), "key %llu not visible after its put",
			  (unsigned long long)i);
	}
	for (uint64_t i = 0; i < n; i++) {
		struct rg_key128 k = key_n(i);
		cr_assert(rtable_lookup(&r, &k, &got), "key %llu lost", (unsigned long long)i);
	}
	cr_log_info("narrow windows: %llu grows, %llu finished in a put, %llu restarts",
		    (unsigned long long)w.st.grows, (unsigned long long)w.st.sync_migrations,
		    (unsigned long long)w.st.migrate_restarts);
	cr_expect_gt(w.st.sync_migrations, 0, "no put had to finish a growth");
	cr_expect_eq(w.st.full, 0);
	cr_expect_eq(rtable_count(&w), n);
}
