/*
 * test_rings.c — draining the data plane's rings: every lcore's miss and
 * event rings are read in order, within the per-call budget, and records
 * with impossible lengths (the rings are memory the data plane writes) are
 * counted and skipped, never used.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"
#include "rings.h"
#include "shm.h"
#include "spsc.h"
#include "stats.h"

static struct shm_map m;
static char path[64];

static void setup(void)
{
	struct shm_params p;
	shm_params_default(&p);
	p.max_lcores = 3;
	p.rtable_init_log2 = 8;
	p.rtable_max_log2 = 10;
	p.dtable_slots = 16;
	p.miss_slots = 64;
	p.event_slots = 64;
	snprintf(path, sizeof(path), "/dev/shm/rg-test-rings-%d", (int)getpid());
	char err[256];
	cr_assert_eq(shm_create(path, &p, &m, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
	shm_detach(&m);
	unlink(path);
}

static struct spsc_hdr *ring(unsigned lc, bool miss)
{
	const struct shm_hdr *h = shm_hdr(&m);
	return (struct spsc_hdr *)((uint8_t *)shm_lcore_at(&m, lc) +
				   (miss ? h->miss_ring_off : h->event_ring_off));
}

static void miss(unsigned lc, const char *addr, uint16_t len)
{
	struct msg_miss *r = spsc_reserve(ring(lc, true));
	cr_assert_not_null(r);
	memset(r, 0, sizeof(*r));
	r->len = len;
	memcpy(r->addr, addr, strlen(addr));
	spsc_commit(ring(lc, true));
}

static void event(unsigned lc, uint8_t family, uint16_t rcpt_len)
{
	struct msg_event *e = spsc_reserve(ring(lc, false));
	cr_assert_not_null(e);
	memset(e, 0, sizeof(*e));
	e->type = MSG_EV_REJECT;
	e->family = family;
	e->rcpt_len = rcpt_len;
	spsc_commit(ring(lc, false));
}

static char got[1024];
static unsigned nev;

static void on_miss(const struct msg_miss *mm, void *arg)
{
	(void)arg;
	strncat(got, mm->addr, mm->len);
	strcat(got, " ");
}

static void on_event(const struct msg_event *e, void *arg)
{
	(void)arg;
	(void)e;
	nev++;
}

TestSuite(rings, .init = setup, .fini = teardown);

Test(rings, drain_all_lcores_in_order)
{
	miss(0, "a@x.test", 8);
	miss(0, "b@x.test", 8);
	miss(2, "c@x.test", 8);
	event(1, 4, 3);
	event(2, 6, 3);
	struct rings_stats st = {0};
	unsigned n = rings_drain(&m, 16, on_miss, on_event, NULL, &st);
	cr_assert_eq(n, 5);
	cr_assert_str_eq(got, "a@x.test b@x.test c@x.test ");
	cr_assert_eq(nev, 2);
	cr_assert_eq(st.misses, 3);
	cr_assert_eq(st.events, 2);
	cr_assert_eq(rings_drain(&m, 16, on_miss, on_event, NULL, &st), 0, "empty now");
	uint64_t md, mdrop, ed, edrop;
	rings_depths(&m, &md, &mdrop, &ed, &edrop);
	cr_assert_eq(md + ed, 0);
}

Test(rings, budget_per_ring)
{
	for (int i = 0; i < 10; i++)
		miss(1, "d@x.test", 8);
	struct rings_stats st = {0};
	cr_assert_eq(rings_drain(&m, 4, on_miss, on_event, NULL, &st), 4);
	uint64_t md, mdrop, ed, edrop;
	rings_depths(&m, &md, &mdrop, &ed, &edrop);
	cr_assert_eq(md, 6);
	cr_assert_eq(rings_drain(&m, 100, on_miss, on_event, NULL, &st), 6);
}

Test(rings, bad_records_skipped)
{
	miss(0, "", 0);				/* empty */
	miss(0, "e@x.test", RG_ADDR_MAX + 1);	/* longer than its field */
	miss(0, "f@x.test", 8);
	event(0, 5, 3);				/* no such family */
	event(0, 4, RG_ADDR_MAX + 1);		/* rcpt longer than its field */
	event(0, 4, 3);
	struct rings_stats st = {0};
	rings_drain(&m, 16, on_miss, on_event, NULL, &st);
	cr_assert_str_eq(got, "f@x.test ");
	cr_assert_eq(nev, 1);
	cr_assert_eq(st.bad_records, 4);
}
