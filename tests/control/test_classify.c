/*
 * test_classify.c — reply classification, table-driven with real replies
 * from Postfix, Exim, Exchange/Microsoft 365, Gmail, greylisting servers.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

#include "classify.h"

/* arrays, not pointers: criterion may run each case in a fresh process */
struct cl_case {
	char name[64];
	enum classify_stage stage;
	char line[300];		/* "NNN text" as received (last line of the reply) */
	char extra[12];		/* one extra invalid code or "" */
	enum classify_result want;
};

static const struct cl_case cases[] = {
	{"postfix valid", CL_RCPT, "250 2.1.5 Ok", "", CL_OK},
	{"postfix virtual unknown", CL_RCPT,
	 "550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown in virtual mailbox table",
	 "", CL_INVALID},
	{"postfix local unknown", CL_RCPT,
	 "550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown in local recipient table",
	 "", CL_INVALID},
	{"postfix relay denied", CL_RCPT, "554 5.7.1 <x@other.test>: Relay access denied", "",
	 CL_UNVERIFIABLE},
	{"postfix rbl", CL_RCPT,
	 "554 5.7.1 Service unavailable; Client host [198.18.0.9] blocked using zen.spamhaus.org",
	 "", CL_UNVERIFIABLE},
	{"postfix too many recipients", CL_RCPT, "452 4.5.3 Error: too many recipients", "", CL_RETRY},
	{"452 mailbox full is temporary", CL_RCPT, "452 4.2.2 <a@b>: Mailbox full", "", CL_TEMP},
	{"452 no storage is temporary", CL_RCPT, "452 4.3.1 Insufficient system storage", "", CL_TEMP},
	{"bare 452 too many", CL_RCPT, "452 Too many recipients received this hour", "", CL_RETRY},
	{"bare 452 other", CL_RCPT, "452 Requested action not taken: mailbox full", "", CL_TEMP},
	{"postfix verify pending", CL_RCPT,
	 "450 4.1.1 <x@example.test>: Recipient address rejected: unverified address: Address verification in progress",
	 "", CL_TEMP},
	{"postgrey", CL_RCPT,
	 "450 4.2.0 <x@example.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.test.html",
	 "", CL_TEMP},
	{"greylisting 451 4.7.1", CL_RCPT, "451 4.7.1 Greylisting in action, please come back later",
	 "", CL_TEMP},
	{"exim unrouteable", CL_RCPT, "550 Unrouteable address", "", CL_INVALID},
	{"exim accepted", CL_RCPT, "250 Accepted", "", CL_OK},
	{"exim temporary", CL_RCPT, "451 Temporary local problem - please try later", "", CL_TEMP},
	{"exim policy no enhanced", CL_RCPT, "550 Administrative prohibition", "", CL_UNVERIFIABLE},
	{"sendmail user unknown", CL_RCPT, "550 5.1.1 <nobody@example.test>... User unknown", "",
	 CL_INVALID},
	{"old sendmail no enhanced", CL_RCPT, "550 <nobody@example.test>... User unknown", "",
	 CL_INVALID},
	{"exchange 5.1.10", CL_RCPT,
	 "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
	 "", CL_INVALID},
	{"exchange 5.1.1", CL_RCPT, "550 5.1.1 User unknown", "", CL_INVALID},
	{"m365 dbeb 5.4.1 by default", CL_RCPT,
	 "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [DM6NAM12FT034.eop-nam12.prod.protection.outlook.com]",
	 "", CL_UNVERIFIABLE},
	{"m365 dbeb 5.4.1 configured", CL_RCPT,
	 "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", "5.4.1", CL_INVALID},
	{"gmail no such user", CL_RCPT,
	 "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser",
	 "", CL_INVALID},
	{"5.1.0 other address status", CL_RCPT, "550 5.1.0 Address rejected", "", CL_INVALID},
	{"5.1.3 bad syntax is not invalid", CL_RCPT, "553 5.1.3 Bad recipient address syntax", "",
	 CL_UNVERIFIABLE},
	{"mailbox full", CL_RCPT, "552 5.2.2 Mailbox full", "", CL_UNVERIFIABLE},
	{"old too many recipients", CL_RCPT, "552 5.5.3 Too many recipients", "", CL_RETRY},
	{"mailbox disabled", CL_RCPT, "550 5.2.1 Mailbox disabled, not accepting messages", "",
	 CL_UNVERIFIABLE},
	{"421 at rcpt", CL_RCPT, "421 4.7.0 mx.example.test Error: too many connections", "",
	 CL_TEMP},
	{"mismatched enhanced class", CL_RCPT, "550 4.1.1 odd server", "", CL_UNVERIFIABLE},
	{"greeting ok", CL_GREETING, "220 mx.example.test ESMTP Postfix", "", CL_OK},
	{"greeting 554", CL_GREETING, "554 5.7.1 mx.example.test: Access denied", "", CL_UNVERIFIABLE},
	{"greeting 421", CL_GREETING, "421 4.3.2 Service shutting down", "", CL_TEMP},
	{"ehlo 5xx", CL_EHLO, "550 5.7.1 EHLO rejected", "", CL_UNVERIFIABLE},
	{"helo ok", CL_HELO, "250 mx.example.test", "", CL_OK},
	{"mail from null rejected", CL_MAIL,
	 "550 5.7.1 <>: Sender address rejected: Access denied", "", CL_UNVERIFIABLE},
	{"mail from 5.1.1 is still not an address verdict", CL_MAIL,
	 "550 5.1.1 <probe@example.test>: Sender address rejected: User unknown", "", CL_UNVERIFIABLE},
	{"mail temp", CL_MAIL, "451 4.3.0 Error: queue file write error", "", CL_TEMP},
	{"quit 5xx ignored", CL_QUIT, "500 5.5.2 what", "", CL_OK},
	{"3xx at rcpt concludes nothing", CL_RCPT, "354 go ahead", "", CL_TEMP},
};

ParameterizedTestParameters(classify, replies)
{
	return cr_make_param_array(struct cl_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(const struct cl_case *c, classify, replies)
{
	uint16_t code = (uint16_t)((c->line[0] - '0') * 100 + (c->line[1] - '0') * 10 + (c->line[2] - '0'));
	const char *text = c->line + 4;
	char enh[CLASSIFY_ENH_MAX];
	classify_enhanced(code, text, strlen(text), enh);
	char extra[1][12] = {""};
	snprintf(extra[0], sizeof(extra[0]), "%s", c->extra);
	enum classify_result r = classify_reply(c->stage, code, enh, text, strlen(text),
						(const char(*)[12])extra, c->extra[0] ? 1 : 0);
	cr_assert_eq(r, c->want, "%s: got %s, want %s (enh '%s')", c->name, classify_result_name(r),
		     classify_result_name(c->want), enh);
}

struct enh_case {
	char name[64];
	uint16_t code;
	char text[64];
	char want[16];
};

static const struct enh_case enh_cases[] = {
	{"plain", 550, "5.1.1 <x>: unknown", "5.1.1"},
	{"three digits", 550, "5.1.10 RESOLVER", "5.1.10"},
	{"end of text", 250, "2.1.5", "2.1.5"},
	{"leading space", 250, " 2.0.0 Ok", "2.0.0"},
	{"no code", 550, "Unrouteable address", ""},
	{"class mismatch", 550, "4.1.1 x", ""},
	{"four digits", 550, "5.1111.1 x", ""},
	{"glued text", 550, "5.1.1x", ""},
	{"missing detail", 550, "5.1. x", ""},
	{"version-looking text", 220, "2.0 ready", ""},
};

ParameterizedTestParameters(classify, enhanced)
{
	return cr_make_param_array(struct enh_case, enh_cases, sizeof(enh_cases) / sizeof(enh_cases[0]));
}

ParameterizedTest(const struct enh_case *c, classify, enhanced)
{
	char out[CLASSIFY_ENH_MAX];
	classify_enhanced(c->code, c->text, strlen(c->text), out);
	cr_assert_str_eq(out, c->want, "%s", c->name);
}
