/*
 * test_refusals.c — the refusal tallies behind `rcptctl top`: refusals
 * counted by recipient domain and by client /24 (IPv4) or /64 (IPv6), other
 * events ignored, the top listed most first, and the space-saving bound
 * when more keys come than the table holds.  Each test runs in its own
 * process (criterion's default), so each starts from empty tallies.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "refusals.h"

static void refuse(int type, const char *rcpt, const char *client)
{
	struct msg_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = (uint16_t)type;
	ev.code = 550;
	if (strchr(client, ':')) {
		ev.family = 6;
		cr_assert_eq(inet_pton(AF_INET6, client, ev.client_ip), 1);
	} else {
		ev.family = 4;
		cr_assert_eq(inet_pton(AF_INET, client, ev.client_ip), 1);
	}
	ev.rcpt_len = (uint16_t)strlen(rcpt);
	memcpy(ev.rcpt, rcpt, ev.rcpt_len);
	refusals_note(&ev);
}

Test(refusals, domains_and_prefixes)
{
	for (int i = 0; i < 5; i++)
		refuse(MSG_EV_REJECT, "a@one.test", "198.18.1.7");
	for (int i = 0; i < 3; i++)
		refuse(MSG_EV_REJECT, "b@two.test", "198.18.1.200"); /* same /24 */
	refuse(MSG_EV_REJECT, "c@two.test", "2001:2:0:1::5");
	refuse(MSG_EV_REJECT, "d@two.test", "2001:2:0:1:ffff::9"); /* same /64 */
	refuse(MSG_EV_DEFER, "e@three.test", "198.18.9.9");
	refuse(MSG_EV_WARN, "e@three.test", "198.18.9.9");
	refuse(MSG_EV_HARVEST, "", "198.18.9.9");

	cr_assert_eq(refusals_total(), 10);
	struct refusals_entry e[10];
	unsigned n = refusals_top(REFUSALS_DOMAIN, e, 10);
	cr_assert_eq(n, 2, "only refused domains: %u", n);
	cr_assert_str_eq(e[0].key, "one.test");
	cr_assert_eq(e[0].count, 5);
	cr_assert_str_eq(e[1].key, "two.test");
	cr_assert_eq(e[1].count, 5);
	n = refusals_top(REFUSALS_PREFIX, e, 10);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(e[0].key, "198.18.1.0/24");
	cr_assert_eq(e[0].count, 8);
	cr_assert_eq(e[0].error, 0);
	cr_assert_str_eq(e[1].key, "2001:2:0:1::/64");
	cr_assert_eq(e[1].count, 2);
	n = refusals_top(REFUSALS_PREFIX, e, 1);
	cr_assert_eq(n, 1, "n caps the answer");
}

Test(refusals, more_keys_than_slots)
{
	/* a heavy domain among 3x as many one-off domains as there are slots */
	char rcpt[64];
	for (unsigned i = 0; i < 3 * REFUSALS_SLOTS; i++) {
		snprintf(rcpt, sizeof(rcpt), "x@d%u.test", i);
		refuse(MSG_EV_REJECT, rcpt, "198.18.2.1");
		if (i % 2 == 0)
			refuse(MSG_EV_REJECT, "x@heavy.test", "198.18.3.1");
	}
	uint64_t heavy = 3 * REFUSALS_SLOTS / 2;
	struct refusals_entry e[REFUSALS_SLOTS];
	unsigned n = refusals_top(REFUSALS_DOMAIN, e, REFUSALS_SLOTS);
	cr_assert_eq(n, REFUSALS_SLOTS, "the table is full: %u", n);
	cr_assert_str_eq(e[0].key, "heavy.test", "the heavy key leads: %s", e[0].key);
	cr_assert_geq(e[0].count, heavy);
	cr_assert_leq(e[0].count - e[0].error, heavy, "count - error never above the truth");
	uint64_t sum = 0;
	for (unsigned i = 0; i < n; i++)
		sum += e[i].count;
	cr_assert_eq(sum, refusals_total(), "space-saving keeps the counts' sum = total");
}
