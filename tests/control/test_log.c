/*
 * test_log.c — data-plane events rendered in Postfix's NOQUEUE shape (what
 * fail2ban's postfix filter and pflogsumm parse), and the per-kind rate limit.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <regex.h>
#include <string.h>

#include "log.h"

struct ev_case {
	char name[64];
	uint16_t type, code;
	uint8_t family;
	char ip[48];
	char helo[64], from[64], rcpt[64];
	char want[400];
	uint32_t count;		/* MSG_EV_WARN: what it stands for */
};

static const struct ev_case cases[] = {
	{"reject v4", MSG_EV_REJECT, 550, 4, "198.18.0.7", "client.test", "a@client.test",
	 "nobody@example.test",
	 "NOQUEUE: reject: RCPT from unknown[198.18.0.7]: 550 5.1.1 <nobody@example.test>: Recipient "
	 "address rejected: User unknown; from=<a@client.test> to=<nobody@example.test> proto=ESMTP "
	 "helo=<client.test>"},
	{"reject v6, null sender", MSG_EV_REJECT, 550, 6, "2001:2::7", "[2001:2::7]", "",
	 "x@example.test",
	 "NOQUEUE: reject: RCPT from unknown[2001:2::7]: 550 5.1.1 <x@example.test>: Recipient address "
	 "rejected: User unknown; from=<> to=<x@example.test> proto=ESMTP helo=<[2001:2::7]>"},
	{"reject without helo", MSG_EV_REJECT, 550, 4, "198.18.0.8", "", "s@c.test", "y@example.test",
	 "NOQUEUE: reject: RCPT from unknown[198.18.0.8]: 550 5.1.1 <y@example.test>: Recipient address "
	 "rejected: User unknown; from=<s@c.test> to=<y@example.test> proto=ESMTP"},
	{"defer", MSG_EV_DEFER, 450, 4, "198.18.0.9", "h", "s@c.test", "z@example.test",
	 "NOQUEUE: reject: RCPT from unknown[198.18.0.9]: 450 4.7.1 <z@example.test>: Recipient address "
	 "rejected: verification in progress; from=<s@c.test> to=<z@example.test> proto=ESMTP helo=<h>"},
	{"reject with reject_code 450", MSG_EV_REJECT, 450, 4, "198.18.0.11", "h", "s@c.test",
	 "v@example.test",
	 "NOQUEUE: reject: RCPT from unknown[198.18.0.11]: 450 4.1.1 <v@example.test>: Recipient "
	 "address rejected: User unknown; from=<s@c.test> to=<v@example.test> proto=ESMTP helo=<h>"},
	{"warn for a reject", MSG_EV_WARN, 550, 4, "198.18.0.12", "h", "s@c.test", "u@example.test",
	 "NOQUEUE: reject_warning: RCPT from unknown[198.18.0.12]: 550 5.1.1 <u@example.test>: "
	 "Recipient address rejected: User unknown; from=<s@c.test> to=<u@example.test> "
	 "proto=ESMTP helo=<h>", MSG_EV_REJECT},
	{"warn for a defer", MSG_EV_WARN, 450, 4, "198.18.0.13", "h", "s@c.test", "t@example.test",
	 "NOQUEUE: reject_warning: RCPT from unknown[198.18.0.13]: 450 4.7.1 <t@example.test>: "
	 "Recipient address rejected: verification in progress; from=<s@c.test> "
	 "to=<t@example.test> proto=ESMTP helo=<h>", MSG_EV_DEFER},
	{"hostile helo cleaned", MSG_EV_REJECT, 550, 4, "198.18.0.10", "evil>\nfake", "s@c.test",
	 "w@example.test",
	 "NOQUEUE: reject: RCPT from unknown[198.18.0.10]: 550 5.1.1 <w@example.test>: Recipient "
	 "address rejected: User unknown; from=<s@c.test> to=<w@example.test> proto=ESMTP "
	 "helo=<evil??fake>"},
};

ParameterizedTestParameters(log, events)
{
	return cr_make_param_array(struct ev_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(const struct ev_case *c, log, events)
{
	struct msg_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = c->type;
	ev.code = c->code;
	ev.family = c->family;
	inet_pton(c->family == 6 ? AF_INET6 : AF_INET, c->ip, ev.client_ip);
	ev.helo_len = (uint16_t)strlen(c->helo);
	memcpy(ev.helo, c->helo, ev.helo_len);
	ev.from_len = (uint16_t)strlen(c->from);
	memcpy(ev.from, c->from, ev.from_len);
	ev.rcpt_len = (uint16_t)strlen(c->rcpt);
	memcpy(ev.rcpt, c->rcpt, ev.rcpt_len);
	ev.count = c->count;
	char buf[1200];
	log_format_event(&ev, buf, sizeof(buf));
	cr_assert_str_eq(buf, c->want, "%s", c->name);
}

/* fail2ban's postfix filter (filter.d/postfix.conf, "normal" mode) must match */
Test(log, fail2ban_pattern_matches)
{
	struct msg_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = MSG_EV_REJECT;
	ev.code = 550;
	ev.family = 4;
	inet_pton(AF_INET, "198.18.0.7", ev.client_ip);
	ev.rcpt_len = 14;
	memcpy(ev.rcpt, "no@example.test", 14);
	char buf[1200];
	log_format_event(&ev, buf, sizeof(buf));
	regex_t re;
	cr_assert_eq(regcomp(&re,
			     "^NOQUEUE: reject: RCPT from [^[]*\\[198\\.18\\.0\\.7\\]: 550 5\\.1\\.1 .*; "
			     "from=<[^>]*> to=<[^>]+> proto=ESMTP",
			     REG_EXTENDED),
		     0);
	cr_assert_eq(regexec(&re, buf, 0, NULL, 0), 0, "%s", buf);
	regfree(&re);
}

Test(log, rate_limit_summarises)
{
	log_init("rgtest", LOG_LOCAL7, false, 5);
	unsigned written = 0;
	for (int i = 0; i < 50; i++)
		written += log_kind(LOG_K_REJECT, LOG_INFO, "flood %d", i);
	cr_assert_eq(written, 5, "only log_rate lines per second");
	cr_assert_eq(log_suppressed(LOG_K_REJECT), 45);
	cr_assert(log_kind(LOG_K_GENERAL, LOG_INFO, "general lines are never limited"));
	cr_assert(log_kind(LOG_K_CALLOUT, LOG_INFO, "other kinds have their own budget"));
	log_close();
}

/* Reply text from a destination may carry CR, LF, ESC: one log call is one
 * line, with nothing in it a terminal would act on. */
Test(log, control_characters_never_reach_the_line, .init = cr_redirect_stderr)
{
	log_init("rgtest", LOG_LOCAL7, true, 100);
	log_msg(LOG_INFO, "callout: <a@b.test>: invalid: %s",
		"550 5.1.1 no\r\nrcptgated[1]: forged line \x1b[31mred\x1b[0m\x7f");
	log_close();
	fflush(stderr);
	FILE *f = cr_get_redirected_stderr();
	char buf[4096];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	cr_assert_gt(n, 0);
	cr_assert_eq(strchr(buf, '\n'), buf + n - 1, "one line: [%s]", buf);
	for (size_t i = 0; i + 1 < n; i++)
		cr_assert(buf[i] >= 0x20 && buf[i] != 0x7f, "byte %u at %zu: [%s]",
			  (unsigned char)buf[i], i, buf);
	cr_assert(strstr(buf, "\\x0d\\x0arcptgated[1]: forged line \\x1b[31mred"), "[%s]", buf);
}

Test(log, failopen_event_names_the_client_and_the_cause)
{
	struct msg_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = MSG_EV_FAILOPEN;
	ev.code = MSG_FO_LINE;
	ev.family = 4;
	ev.client_port = 40001;
	inet_pton(AF_INET, "198.18.0.9", ev.client_ip);
	char buf[1200];
	log_format_event(&ev, buf, sizeof(buf));
	cr_assert_str_eq(buf, "failopen: client unknown[198.18.0.9]:40001: command line too "
			      "long; session forwarded unchecked");
	ev.code = 999; /* an unknown cause is named as such, not read out of bounds */
	log_format_event(&ev, buf, sizeof(buf));
	cr_assert_str_eq(buf, "failopen: client unknown[198.18.0.9]:40001: ?; session forwarded "
			      "unchecked");
}
