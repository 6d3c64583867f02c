/*
 * test_dpstate.c — the data plane's state file (dataplane/dpstate.c): one
 * process at a time (a second is refused, or waits with --takeover), a file
 * of the same shape is kept for the engines to take over, any other shape is
 * kept aside (for the resets of its flows) and replaced, saying why.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "dpstate.h"

static char path[128];

static void setup(void)
{
	snprintf(path, sizeof(path), "/dev/shm/rg-test-dpstate-%d", (int)getpid());
	unlink(path);
}

static void teardown(void)
{
	unlink(path);
}

TestSuite(dpstate, .init = setup, .fini = teardown, .timeout = 30);

Test(dpstate, fresh_then_same_shape_taken_over)
{
	struct dpstate s;
	char err[256];
	size_t len;
	uint8_t *r;

	cr_assert_eq(dpstate_lock(&s, path, 0, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(dpstate_open(&s, 2, 100000, DPSTATE_MAP(2, 1), "b1", err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(s.adopt, 0);
	cr_assert(strstr(s.why, "no state"), "%s", s.why);
	r = dpstate_region(&s, 1, &len);
	cr_assert(r && len >= 100000);
	memcpy(r, "flow state", 11);
	dpstate_close(&s);

	cr_assert_eq(dpstate_lock(&s, path, 0, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(dpstate_open(&s, 2, 100000, DPSTATE_MAP(2, 1), "b2", err, sizeof(err)), 0);
	cr_assert_eq(s.adopt, 1);
	r = dpstate_region(&s, 1, &len);
	cr_assert_str_eq((char *)r, "flow state");
	dpstate_close(&s);
}

Test(dpstate, second_process_refused_or_waits)
{
	struct dpstate a, b;
	char err[256];
	volatile int quit = 1;

	cr_assert_eq(dpstate_lock(&a, path, 0, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(dpstate_open(&a, 1, 4096, DPSTATE_MAP(1, 0), "b1", err, sizeof(err)), 0);
	cr_assert_eq(dpstate_lock(&b, path, 0, NULL, err, sizeof(err)), -EBUSY);
	cr_assert(strstr(err, "in use by another rcptgate-dp (pid "), "%s", err);
	cr_assert(strstr(err, "--takeover"), "%s", err);
	/* waiting, interrupted */
	cr_assert_eq(dpstate_lock(&b, path, 1, &quit, err, sizeof(err)), -EINTR);
	dpstate_close(&b);
	dpstate_close(&a);
	/* released: the next one gets it */
	cr_assert_eq(dpstate_lock(&b, path, 1, &quit, err, sizeof(err)), 0, "%s", err);
	dpstate_close(&b);
}

Test(dpstate, other_shape_kept_aside_and_replaced)
{
	static const struct {
		const char *name;
		unsigned n;
		size_t region;
		uint32_t map;
		const char *why;
	} cases[] = {
		{"workers", 3, 8192, DPSTATE_MAP(3, 1), "the state has 2 workers"},
		{"dispatch", 2, 8192, DPSTATE_MAP(2, 0), "with software dispatch, now 2 with RSS"},
		{"region", 2, 5u << 20, DPSTATE_MAP(2, 1), "engine limits changed"},
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dpstate s;
		char err[256];
		size_t len;
		const char *o;
		unlink(path);
		cr_assert_eq(dpstate_lock(&s, path, 0, NULL, err, sizeof(err)), 0);
		cr_assert_eq(dpstate_open(&s, 2, 8192, DPSTATE_MAP(2, 1), "b1", err, sizeof(err)), 0);
		memcpy(dpstate_region(&s, 0, &len), "old zero", 9);
		memcpy(dpstate_region(&s, 1, &len), "old one", 8);
		dpstate_close(&s);

		cr_assert_eq(dpstate_lock(&s, path, 0, NULL, err, sizeof(err)), 0);
		cr_assert_eq(dpstate_open(&s, cases[i].n, cases[i].region, cases[i].map, "b2", err,
					  sizeof(err)), 0, "%s", err);
		cr_assert_eq(s.adopt, 0, "%s", cases[i].name);
		cr_assert(strstr(s.why, cases[i].why), "%s: %s", cases[i].name, s.why);
		o = dpstate_old_region(&s, 1, &len);
		cr_assert(o && !strcmp(o, "old one"), "%s: the old regions readable", cases[i].name);
		cr_assert_null(dpstate_old_region(&s, 2, &len));
		cr_assert_neq(((char *)dpstate_region(&s, 1, &len))[0], 'o', "a fresh file");
		dpstate_drop_old(&s);
		cr_assert_null(dpstate_old_region(&s, 0, &len));
		dpstate_close(&s);
	}
}
