/*
 * test_smtp.c — command classification and the resumable reply parser: the
 * same replies for every split of the server's stream.
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

struct reply_case {
	const char *name;
	const char *stream;
	unsigned n;		/* replies in the stream */
	uint16_t codes[4];
	uint8_t caps;		/* of the first reply */
	int bad;		/* some reply malformed */
};

static const struct reply_case reply_cases[] = {
	{"single", "250 2.1.5 Ok\r\n", 1, {250}, 0, 0},
	{"multi-line EHLO",
	 "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n"
	 "250-CHUNKING\r\n250 SMTPUTF8\r\n",
	 1, {250}, SMTP_CAP_PIPELINING | SMTP_CAP_CHUNKING | SMTP_CAP_STARTTLS | SMTP_CAP_SMTPUTF8,
	 0},
	{"pipelined replies", "250 2.1.0 Ok\r\n550 5.1.1 no\r\n354 go\r\n", 3, {250, 550, 354}, 0,
	 0},
	{"bare LF and no text", "220\n221 bye\n", 2, {220, 221}, 0, 0},
	{"keyword case and longer words", "250-pipelining\r\n250 PIPELININGX\r\n", 1, {250},
	 SMTP_CAP_PIPELINING, 0},
	{"garbage line", "hello\r\n250 ok\r\n", 2, {0, 250}, 0, 1},
};

static void run_reply(const struct reply_case *c, size_t cut1, size_t cut2)
{
	struct smtp_reply r;
	const uint8_t *s = (const uint8_t *)c->stream;
	size_t len = strlen(c->stream), at = 0, chunk_end[3] = {cut1, cut2, len};
	unsigned got = 0;
	int bad = 0;
	smtp_reply_reset(&r);
	for (unsigned ch = 0; ch < 3; ch++) {
		size_t end = chunk_end[ch] < at ? at : chunk_end[ch];
		while (at < end) {
			int done;
			size_t n = smtp_reply_feed(&r, s + at, end - at, &done);
			at += n;
			if (done) {
				cr_assert_lt(got, c->n, "%s: too many replies", c->name);
				cr_expect_eq(r.code, c->codes[got], "%s (cuts %zu,%zu): reply %u",
					     c->name, cut1, cut2, got);
				if (got == 0)
					cr_expect_eq(r.caps, c->caps, "%s: caps", c->name);
				bad |= r.bad;
				got++;
				smtp_reply_reset(&r);
			}
		}
	}
	cr_expect_eq(got, c->n, "%s (cuts %zu,%zu): replies", c->name, cut1, cut2);
	cr_expect_eq(bad, c->bad, "%s: malformed", c->name);
	cr_expect(smtp_reply_idle(&r), "%s: parser idle at the end", c->name);
}

Test(smtp, replies_every_split)
{
	for (unsigned k = 0; k < sizeof(reply_cases) / sizeof(reply_cases[0]); k++) {
		const struct reply_case *c = &reply_cases[k];
		size_t len = strlen(c->stream);
		for (size_t a = 0; a <= len; a++)
			for (size_t b = a; b <= len; b++)
				run_reply(c, a, b);
	}
}
