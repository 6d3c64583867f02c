/*
 * test_smtp.c — command classification.  The reply parser's tests are in
 * tests/common/test_smtpreply.c.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "smtp.h"

struct cmd_case {
	const char *line;
	enum smtp_verb verb;
	int bad;
	const char *arg;	/* expected text at arg_off */
	uint32_t bdat_size;
	int bdat_last;
};

static const struct cmd_case cmd_cases[] = {
	{"RCPT TO:<a@b.c>", SMTP_V_RCPT, 0, "<a@b.c>", 0, 0},
	{"rcpt to:<a@b.c> NOTIFY=NEVER", SMTP_V_RCPT, 0, "<a@b.c> NOTIFY=NEVER", 0, 0},
	{"RCPT  TO: <a@b.c>", SMTP_V_RCPT, 0, "<a@b.c>", 0, 0},
	{" RCPT TO:<a@b.c>", SMTP_V_RCPT, 0, "<a@b.c>", 0, 0},
	{"RCPT\tTO:<a@b.c>", SMTP_V_RCPT, 0, "<a@b.c>", 0, 0},
	{"RCPT TO:\t<a@b.c>\t", SMTP_V_RCPT, 0, "<a@b.c>", 0, 0},
	{"\t rcpt  to: <a@b.c> \r", SMTP_V_RCPT, 0, "<a@b.c>", 0, 0},
	{"RCPTTO:<a@b.c>", SMTP_V_OTHER, 0, "", 0, 0},
	{"BDAT\t12\tLAST", SMTP_V_BDAT, 0, "12\tLAST", 12, 1},
	{"RCPT FROM:<a@b.c>", SMTP_V_RCPT, 1, "", 0, 0},
	{"MAIL FROM:<>", SMTP_V_MAIL, 0, "<>", 0, 0},
	{"EHLO client.example", SMTP_V_EHLO, 0, "client.example", 0, 0},
	{"HELO x", SMTP_V_HELO, 0, "x", 0, 0},
	{"DATA", SMTP_V_DATA, 0, "", 0, 0},
	{"DATAX", SMTP_V_OTHER, 0, "", 0, 0},
	{"BDAT 1000", SMTP_V_BDAT, 0, "1000", 1000, 0},
	{"bdat 0 last", SMTP_V_BDAT, 0, "0 last", 0, 1},
	{"BDAT x", SMTP_V_BDAT, 1, "x", 0, 0},
	{"BDAT 99999999999", SMTP_V_BDAT, 1, "99999999999", 0, 0},
	{"BDAT 5 LASTX", SMTP_V_BDAT, 1, "5 LASTX", 5, 0},
	{"STARTTLS", SMTP_V_STARTTLS, 0, "", 0, 0},
	{"AUTH PLAIN AGZvbwBiYXI=", SMTP_V_AUTH, 0, "PLAIN AGZvbwBiYXI=", 0, 0},
	{"RSET", SMTP_V_RSET, 0, "", 0, 0},
	{"QUIT", SMTP_V_QUIT, 0, "", 0, 0},
	{"NOOP", SMTP_V_NOOP, 0, "", 0, 0},
	{"", SMTP_V_OTHER, 0, "", 0, 0},
	{"RCP", SMTP_V_OTHER, 0, "", 0, 0},
};

Test(smtp, command_table)
{
	for (unsigned k = 0; k < sizeof(cmd_cases) / sizeof(cmd_cases[0]); k++) {
		const struct cmd_case *c = &cmd_cases[k];
		struct smtp_cmd cmd;
		size_t n = strlen(c->line);
		smtp_cmd_parse((const uint8_t *)c->line, n, &cmd);
		cr_expect_eq(cmd.verb, c->verb, "'%s': verb %s", c->line, smtp_verb_name(cmd.verb));
		cr_expect_eq(cmd.bad, c->bad, "'%s': bad", c->line);
		if (c->verb != SMTP_V_OTHER && (!c->bad || c->verb == SMTP_V_BDAT)) {
			cr_expect_eq(cmd.arg_len, strlen(c->arg), "'%s': argument", c->line);
			cr_expect_leq(cmd.arg_off + cmd.arg_len, n, "'%s': argument bounds", c->line);
			cr_expect(memcmp(c->line + cmd.arg_off, c->arg, strlen(c->arg)) == 0,
				  "'%s': argument text", c->line);
		}
		if (c->verb == SMTP_V_BDAT && !c->bad) {
			cr_expect_eq(cmd.bdat_size, c->bdat_size, "'%s': size", c->line);
			cr_expect_eq(cmd.bdat_last, c->bdat_last, "'%s': last", c->line);
		}
	}
}
