/*
 * test_store.c — the LMDB verdict store: writes are visible inside the open
 * transaction and durable after commit (a reopened store finds them), keys
 * group by domain (flush of one domain leaves the others), scans resume
 * where they stopped, malformed addresses are refused.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rtable.h"
#include "store.h"

static char dir[64];
static struct store *st;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/rg-test-store-%d", (int)getpid());
	char err[256];
	cr_assert_eq(store_open(&st, dir, 64, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
	store_close(st);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
}

static struct store_rec rec(uint8_t verdict, const char *reply)
{
	struct store_rec r;
	memset(&r, 0, sizeof(r));
	r.version = STORE_REC_VERSION;
	r.verdict = verdict;
	r.source = RT_SRC_CALLOUT;
	r.updated = 1800000000;
	r.expiry = 1800003600;
	r.code = 550;
	snprintf(r.reply, sizeof(r.reply), "%s", reply);
	return r;
}

static void put(const char *a, uint8_t v)
{
	struct store_rec r = rec(v, "550 5.1.1 User unknown");
	cr_assert_eq(store_put(st, a, strlen(a), &r), 0, "put %s", a);
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, put_get_commit_reopen)
{
	put("alice@a.test", RT_VALID);
	struct store_rec r;
	cr_assert_eq(store_get(st, "alice@a.test", 12, &r), 0, "visible before commit");
	cr_assert_eq(store_dirty(st), 1);
	cr_assert_eq(store_commit(st), 0);
	cr_assert_eq(store_dirty(st), 0);
	store_close(st);
	char err[256];
	cr_assert_eq(store_open(&st, dir, 64, err, sizeof(err)), 0, "%s", err);
	memset(&r, 0, sizeof(r));
	cr_assert_eq(store_get(st, "alice@a.test", 12, &r), 0, "durable after reopen");
	cr_assert_eq(r.verdict, RT_VALID);
	cr_assert_eq(r.expiry, 1800003600);
	cr_assert_str_eq(r.reply, "550 5.1.1 User unknown");
	cr_assert_eq(store_get(st, "bob@a.test", 10, &r), -ENOENT);
	cr_assert_eq(store_del(st, "alice@a.test", 12), 0);
	cr_assert_eq(store_del(st, "alice@a.test", 12), -ENOENT);
}

Test(store, uncommitted_writes_are_lost_on_abort)
{
	put("carol@a.test", RT_VALID);
	cr_assert_eq(store_commit(st), 0);
	put("dave@a.test", RT_INVALID);
	/* no commit: a process killed now loses this write only */
	store_close(st); /* commits, as a clean stop does */
	char err[256];
	cr_assert_eq(store_open(&st, dir, 64, err, sizeof(err)), 0, "%s", err);
	struct store_rec r;
	cr_assert_eq(store_get(st, "dave@a.test", 11, &r), 0, "clean close commits");
}

struct bad_key {
	char name[32];
	char addr[300];
};

Test(store, malformed_addresses_refused)
{
	static const struct bad_key bad[] = {{"no at", "nobody"}, {"empty local", "@a.test"},
					     {"empty domain", "x@"}};
	struct store_rec r = rec(RT_VALID, "");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int e = store_put(st, bad[i].addr, strlen(bad[i].addr), &r);
		cr_assert_eq(e, -EINVAL, "%s: %d", bad[i].name, e);
	}
	char longa[300];
	memset(longa, 'x', sizeof(longa));
	memcpy(longa + 280, "@a.test", 8);
	cr_assert_eq(store_put(st, longa, strlen(longa), &r), -EINVAL, "over RG_ADDR_MAX");
}

static int collect(const char *addr, size_t len, const struct store_rec *r, void *arg)
{
	(void)r;
	char *out = arg;
	strncat(out, addr, len);
	strcat(out, " ");
	return 0;
}

Test(store, flush_domain_and_scan)
{
	put("a@one.test", RT_VALID);
	put("b@one.test", RT_INVALID);
	put("a@one.test.example", RT_VALID); /* a longer domain with the same prefix */
	put("z@two.test", RT_VALID);
	put("y@on.test", RT_VALID);
	cr_assert_eq(store_commit(st), 0);
	cr_assert_eq(store_count(st), 5);
	char seen[512] = "", next[RG_ADDR_MAX + 1];
	long n = store_scan(st, NULL, 2, collect, seen, next);
	cr_assert_eq(n, 2);
	cr_assert(next[0], "more to come");
	n = store_scan(st, next, 10, collect, seen, next); /* same buffer in and out */
	cr_assert_eq(n, 3, "%ld: %s", n, seen);
	cr_assert_eq(next[0], 0, "end reached");
	cr_assert(strstr(seen, "z@two.test") && strstr(seen, "y@on.test") && strstr(seen, "b@one.test"),
		  "%s", seen);
	uint64_t removed = 0;
	cr_assert_eq(store_flush(st, "one.test", &removed), 0);
	cr_assert_eq(removed, 2, "only one.test's records");
	cr_assert_eq(store_commit(st), 0);
	struct store_rec r;
	cr_assert_eq(store_get(st, "a@one.test.example", 18, &r), 0);
	cr_assert_eq(store_get(st, "y@on.test", 9, &r), 0);
	cr_assert_eq(store_get(st, "a@one.test", 10, &r), -ENOENT);
	cr_assert_eq(store_flush(st, NULL, &removed), 0);
	cr_assert_eq(removed, 3);
	cr_assert_eq(store_commit(st), 0);
	cr_assert_eq(store_count(st), 0);
}

/* ---- a full map: the failed write leaves the store usable -------------- */

Test(store, map_full_write_aborts_cleanly)
{
	char d2[80], err[256];
	struct store *small;
	snprintf(d2, sizeof(d2), "%s-small", dir);
	cr_assert_eq(store_open(&small, d2, 1, err, sizeof(err)), 0, "%s", err);
	for (int i = 0; i < 10; i++) {
		char a[32];
		snprintf(a, sizeof(a), "keep%d@a.test", i);
		struct store_rec x = rec(RT_VALID, "250 ok");
		cr_assert_eq(store_put(small, a, strlen(a), &x), 0);
	}
	cr_assert_eq(store_commit(small), 0);
	/* one transaction of writes until the map is full */
	int r = 0;
	unsigned n;
	for (n = 0; n < 100000 && !r; n++) {
		char a[64];
		snprintf(a, sizeof(a), "big%06u@b.test", n);
		struct store_rec x = rec(RT_INVALID, "550 5.1.1 a reply text long enough to take room");
		r = store_put(small, a, strlen(a), &x);
	}
	cr_assert_eq(r, -ENOSPC, "put fails with ENOSPC after %u records: %d", n, r);
	/* the failed transaction is gone: reads see the committed state */
	struct store_rec got;
	cr_assert_eq(store_get(small, "keep3@a.test", 12, &got), 0, "committed record readable");
	cr_assert_eq(store_count(small), 10, "count reads the committed records");
	cr_assert_eq(store_get(small, "big000000@b.test", 16, &got), -ENOENT,
		     "writes of the failed transaction are gone");
	/* the daemon learns at commit that the turn's writes were lost */
	cr_assert_eq(store_commit(small), -ENOSPC, "commit reports the lost writes");
	cr_assert_eq(store_dirty(small), 0);
	/* and the store takes writes again */
	struct store_rec x = rec(RT_VALID, "250 ok");
	cr_assert_eq(store_put(small, "later@a.test", 12, &x), 0);
	cr_assert_eq(store_commit(small), 0);
	cr_assert_eq(store_count(small), 11);
	store_close(small);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d2);
	cr_assert_eq(system(cmd), 0);
}

Test(store, second_open_of_one_store_refused)
{
	struct store *two = NULL;
	char err[256] = "";
	int r = store_open(&two, dir, 64, err, sizeof(err));
	cr_assert_eq(r, -EBUSY, "a second open of %s: %d (%s)", dir, r, err);
	cr_assert_null(two);
	cr_assert(strstr(err, "in use"), "the message says why: %s", err);
	/* once the first is closed, the store opens again */
	store_close(st);
	st = NULL;
	cr_assert_eq(store_open(&st, dir, 64, err, sizeof(err)), 0, "%s", err);
}
