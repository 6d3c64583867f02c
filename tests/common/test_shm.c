/*
 * test_shm.c — creating and attaching the shared-memory file; every ABI
 * mismatch refused with a message that says what differs.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include <criterion/criterion.h>

#include "dtable.h"
#include "msg.h"
#include "rtable.h"
#include "spsc.h"
#include "stats.h"
#include "testshm.h"

static char path[128];

static void setup(void)
{
	testshm_path(path, sizeof(path), "shm");
}

static void teardown(void)
{
	unlink(path);
}

TestSuite(shm, .init = setup, .fini = teardown);

Test(shm, create_then_attach)
{
	struct shm_map w, r;
	char err[256];
	testshm_create(&w, path, 8, 10);
	const struct shm_hdr *h = shm_hdr(&w);
	cr_expect_eq(h->state, SHM_STATE_ACTIVE);
	cr_expect_eq(h->writer_pid, (uint32_t)getpid());
	cr_expect_eq(h->total_size % (2u << 20), 0, "sized in 2 MiB steps for hugetlbfs");
	cr_expect_eq(h->rw_off % SHM_PAGE, 0);
	cr_expect_eq(h->rtable_off[0] % SHM_PAGE, 0);
	static const uint8_t zero[SHM_HASH_KEY_LEN];
	cr_expect_neq(memcmp(h->hash_key, zero, sizeof(zero)), 0, "secret must be set");
	cr_assert_eq(shm_attach_reader(path, &r, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(memcmp(shm_hdr(&r)->hash_key, h->hash_key, SHM_HASH_KEY_LEN), 0);
	/* both views see the same rings */
	struct spsc_hdr *ring = (void *)((uint8_t *)shm_lcore_at(&r, 2) + h->miss_ring_off);
	struct msg_miss *m = spsc_reserve(ring);
	cr_assert_not_null(m);
	m->len = 3;
	memcpy(m->addr, "a@b", 3);
	spsc_commit(ring);
	struct spsc_hdr *wring = (void *)((uint8_t *)shm_lcore_at(&w, 2) + h->miss_ring_off);
	const struct msg_miss *got = spsc_peek(wring);
	cr_assert_not_null(got);
	cr_expect_eq(got->len, 3);
	spsc_release(wring);
	/* and the same counters */
	stats_add(shm_lcore_at(&r, 1), STAT_RCPT, 5);
	stats_add(shm_lcore_at(&r, 3), STAT_RCPT, 2);
	cr_expect_eq(stats_sum(&w, STAT_RCPT), 7);
	shm_detach(&r);
	shm_detach(&w);
}

/* Corrupt one header field; attach must refuse and say what differs. */
struct mismatch {
	const char *name;
	size_t off;	/* byte offset in the header */
	uint32_t value; /* 32-bit value to write there */
	const char *msg;
};

Test(shm, abi_mismatch_refused)
{
	const struct mismatch cases[] = {
		{"magic", offsetof(struct shm_hdr, magic), 0x58585858, "bad magic"},
		{"abi version", offsetof(struct shm_hdr, abi_version), SHM_ABI_VERSION + 1,
		 "abi version 2, expected 1"},
		{"header size", offsetof(struct shm_hdr, hdr_size), 2048,
		 "struct shm_hdr size 2048, expected 4096"},
		{"bucket size", offsetof(struct shm_hdr, sz_rtable_bucket), 128,
		 "struct rtable_bucket size 128, expected 64"},
		{"domain entry size", offsetof(struct shm_hdr, sz_dtable_ent), 32,
		 "struct dtable_ent size 32, expected 64"},
		{"lcore block size", offsetof(struct shm_hdr, sz_lcore), 8192,
		 "struct shm_lcore size 8192, expected 4096"},
		{"miss record size", offsetof(struct shm_hdr, miss_rec_size), 256,
		 "struct msg_miss size 256, expected 320"},
		{"total size", offsetof(struct shm_hdr, total_size), 4096, "header says 4096"},
		{"ring offset", offsetof(struct shm_hdr, event_ring_off), 12345,
		 "region offsets differ"},
		{"slots not pow2", offsetof(struct shm_hdr, miss_slots), 100, "powers of two"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct shm_map w, r;
		char err[256] = "";
		testshm_create(&w, path, 6, 8);
		memcpy((uint8_t *)w.base + cases[i].off, &cases[i].value, sizeof(uint32_t));
		int rc = shm_attach_reader(path, &r, err, sizeof(err));
		cr_expect_eq(rc, -EPROTO, "%s: rc %d", cases[i].name, rc);
		cr_expect(strstr(err, cases[i].msg) != NULL, "%s: message '%s' lacks '%s'",
			  cases[i].name, err, cases[i].msg);
		cr_expect(strstr(err, path) != NULL, "%s: message names the file", cases[i].name);
		shm_detach(&w);
	}
}

static void small_params(struct shm_params *p)
{
	shm_params_default(p);
	p->max_lcores = 4;
	p->rtable_init_log2 = 6;
	p->rtable_max_log2 = 8;
	p->miss_slots = 64;
	p->event_slots = 64;
}

/* Creating over a live file retires the old one; a reader of the old one
 * sees RETIRED and re-attaching finds the new file. */
Test(shm, recreate_retires_old_file)
{
	struct shm_map w1, w2, r, r2;
	struct shm_params p;
	char err[256];
	testshm_create(&w1, path, 6, 8);
	cr_assert_eq(shm_attach_reader(path, &r, err, sizeof(err)), 0, "%s", err);
	small_params(&p);
	cr_assert_eq(shm_create(path, &p, &w2, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(__atomic_load_n(&shm_hdr(&r)->state, __ATOMIC_ACQUIRE), SHM_STATE_RETIRED);
	cr_expect_eq(shm_hdr(&w2)->state, SHM_STATE_ACTIVE);
	cr_assert_eq(shm_attach_reader(path, &r2, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(memcmp(shm_hdr(&r2)->hash_key, shm_hdr(&w2)->hash_key, SHM_HASH_KEY_LEN), 0);
	shm_detach(&r);
	shm_detach(&r2);
	shm_detach(&w1);
	shm_detach(&w2);
}

Test(shm, writer_reopens_or_refuses)
{
	struct shm_map w, w2;
	char err[256];
	struct shm_params p;
	testshm_create(&w, path, 6, 8);
	uint8_t key[SHM_HASH_KEY_LEN];
	memcpy(key, shm_hdr(&w)->hash_key, sizeof(key));
	shm_detach(&w);

	small_params(&p);
	cr_assert_eq(shm_open_writer(path, &p, &w2, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(memcmp(shm_hdr(&w2)->hash_key, key, sizeof(key)), 0,
		     "re-attach keeps the secret (and so every key)");
	shm_detach(&w2);

	p.max_lcores = 8;
	cr_expect_eq(shm_open_writer(path, &p, &w2, err, sizeof(err)), -ESTALE);
	cr_expect(strstr(err, "max_lcores") != NULL, "%s", err);
	unlink(path);
	cr_expect_eq(shm_open_writer(path, &p, &w2, err, sizeof(err)), -ENOENT);
}

Test(shm, bad_params_refused)
{
	struct shm_params p;
	struct shm_map w;
	char err[256];
	shm_params_default(&p);
	p.max_lcores = SHM_MAX_LCORES + 1;
	cr_expect_eq(shm_create(path, &p, &w, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "max_lcores") != NULL, "%s", err);
	shm_params_default(&p);
	p.rtable_init_log2 = 20;
	p.rtable_max_log2 = 10;
	cr_expect_eq(shm_create(path, &p, &w, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "log2") != NULL, "%s", err);
}

Test(shm, default_size_holds_16m_entries)
{
	struct shm_params p;
	shm_params_default(&p);
	uint64_t slots = (uint64_t)RTABLE_SLOTS << p.rtable_max_log2;
	cr_expect_geq(slots * 2 / 3, 16u << 20, "16M entries at <= 2/3 load");
}
