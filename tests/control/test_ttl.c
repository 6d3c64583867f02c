/*
 * test_ttl.c — verdict lifetimes and the refresh rule: a definite answer
 * replaces the cached verdict; a failed probe (temporary, unverifiable)
 * never clobbers a cached verdict before it expires.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "core.h"
#include "rtable.h"
#include "ttl.h"

static struct config_dom dom(void)
{
	struct config_dom d;
	memset(&d, 0, sizeof(d));
	d.ttl_valid = 7 * 86400;
	d.refresh_valid = 86400;
	d.ttl_invalid = 3600;
	d.refresh_invalid = 600;
	d.ttl_tempfail = 60;
	return d;
}

#define NOW 1800000000ull

/* arrays, not pointers: criterion may run each case in a fresh process */
struct ttl_case {
	char name[64];
	int have_old;
	uint8_t old_verdict;
	uint64_t old_expiry;	/* relative to NOW */
	int result;
	enum ttl_outcome want;
	uint8_t want_verdict;
	uint64_t want_refresh, want_expiry; /* relative to NOW; 0 = don't check */
};

static const struct ttl_case cases[] = {
	{"valid, nothing cached", 0, 0, 0, CORE_V_VALID, TTL_STORE, RT_VALID, 86400, 7 * 86400},
	{"invalid, nothing cached", 0, 0, 0, CORE_V_INVALID, TTL_STORE, RT_INVALID, 600, 3600},
	{"tempfail, nothing cached", 0, 0, 0, CORE_V_TEMPFAIL, TTL_NONE, 0, 0, 0},
	{"unverifiable, nothing cached", 0, 0, 0, CORE_V_UNVERIFIABLE, TTL_NONE, 0, 0, 0},
	{"tempfail keeps a live valid", 1, RT_VALID, 5000, CORE_V_TEMPFAIL, TTL_KEEP, RT_VALID, 60, 5000},
	{"unverifiable keeps a live invalid", 1, RT_INVALID, 3000, CORE_V_UNVERIFIABLE, TTL_KEEP,
	 RT_INVALID, 60, 3000},
	{"retry never past expiry", 1, RT_VALID, 30, CORE_V_TEMPFAIL, TTL_KEEP, RT_VALID, 30, 30},
	{"tempfail after expiry caches nothing", 1, RT_VALID, 0, CORE_V_TEMPFAIL, TTL_NONE, 0, 0, 0},
	{"invalid replaces valid", 1, RT_VALID, 5000, CORE_V_INVALID, TTL_STORE, RT_INVALID, 600, 3600},
	{"valid replaces invalid", 1, RT_INVALID, 100, CORE_V_VALID, TTL_STORE, RT_VALID, 86400,
	 7 * 86400},
};

ParameterizedTestParameters(ttl, apply)
{
	return cr_make_param_array(struct ttl_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(const struct ttl_case *c, ttl, apply)
{
	struct config_dom d = dom();
	struct store_rec old, out;
	memset(&old, 0, sizeof(old));
	old.version = STORE_REC_VERSION;
	old.verdict = c->old_verdict;
	old.source = RT_SRC_CALLOUT;
	old.updated = NOW - 1000;
	old.refresh_at = NOW - 10;
	old.expiry = NOW + c->old_expiry;
	enum ttl_outcome o = ttl_apply(&d, c->have_old ? &old : NULL, c->result, NOW, &out);
	cr_assert_eq(o, c->want, "%s: outcome %d want %d", c->name, o, c->want);
	if (o == TTL_NONE)
		return;
	cr_assert_eq(out.verdict, c->want_verdict, "%s: verdict", c->name);
	cr_assert_eq(out.refresh_at, NOW + c->want_refresh, "%s: refresh_at", c->name);
	cr_assert_eq(out.expiry, NOW + c->want_expiry, "%s: expiry", c->name);
}

struct due_case {
	char name[64];
	uint8_t source, flags;
	int64_t refresh, expiry; /* relative to NOW; expiry 0 = never */
	bool live, due;
};

static const struct due_case due_cases[] = {
	{"fresh", RT_SRC_CALLOUT, 0, 100, 1000, true, false},
	{"refresh due, still served", RT_SRC_CALLOUT, 0, -1, 1000, true, true},
	{"expired", RT_SRC_CALLOUT, 0, -100, -1, false, false},
	{"manual never refreshed", RT_SRC_MANUAL, 0, -1, 1000, true, false},
	{"pinned never expires", RT_SRC_MANUAL, RT_F_PINNED, 0, 0, true, false},
	{"list never refreshed", RT_SRC_LIST, 0, -1, 0, true, false},
};

ParameterizedTestParameters(ttl, due)
{
	return cr_make_param_array(struct due_case, due_cases, sizeof(due_cases) / sizeof(due_cases[0]));
}

ParameterizedTest(const struct due_case *c, ttl, due)
{
	struct store_rec r;
	memset(&r, 0, sizeof(r));
	r.source = c->source;
	r.flags = c->flags;
	r.refresh_at = c->refresh ? NOW + c->refresh : 0;
	r.expiry = c->expiry ? NOW + c->expiry : 0;
	cr_assert_eq(ttl_live(&r, NOW), c->live, "%s: live", c->name);
	cr_assert_eq(ttl_refresh_due(&r, NOW), c->due, "%s: due", c->name);
}

Test(ttl, manual)
{
	struct store_rec r;
	ttl_manual(&r, true, 0, NOW);
	cr_assert_eq(r.verdict, RT_VALID);
	cr_assert_eq(r.expiry, 0);
	cr_assert(r.flags & RT_F_PINNED);
	ttl_manual(&r, false, 300, NOW);
	cr_assert_eq(r.verdict, RT_INVALID);
	cr_assert_eq(r.expiry, NOW + 300);
	cr_assert_not(r.flags & RT_F_PINNED);
	cr_assert_eq(r.source, RT_SRC_MANUAL);
}
