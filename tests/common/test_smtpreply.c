/*
 * test_smtpreply.c — the shared SMTP reply parser: codes, enhanced codes,
 * EHLO keywords, text and malformed replies, the same for every split of
 * the server's stream (two cut points, all pairs), with and without text.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "smtpreply.h"

#define MAXR 4

struct reply_case {
	const char *name;
	const char *stream;
	unsigned n;			/* replies in the stream */
	uint16_t codes[MAXR];
	uint8_t flags[MAXR];		/* SMTP_REPLY_* */
	const char *enh[MAXR];
	const char *text[MAXR];		/* joined text (cap TEXT_CAP) */
	size_t first_len[MAXR];
	uint16_t lines[MAXR];
	uint16_t max_line[MAXR];
	uint8_t caps;			/* of the first reply */
};

#define TEXT_CAP 24u

static const struct reply_case cases[] = {
	{"single", "250 2.1.5 Ok\r\n", 1, {250}, {0}, {"2.1.5"}, {"2.1.5 Ok"}, {8}, {1}, {12},
	 0},
	{"multi-line EHLO",
	 "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n"
	 "250-CHUNKING\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250-DSN\r\n250 SMTPUTF8\r\n",
	 1, {250}, {0}, {""}, {"mx.example PIPELINING SI"}, {10}, {9}, {20},
	 SMTP_CAP_PIPELINING | SMTP_CAP_CHUNKING | SMTP_CAP_STARTTLS | SMTP_CAP_SMTPUTF8 |
		 SMTP_CAP_AUTH | SMTP_CAP_SIZE | SMTP_CAP_8BITMIME | SMTP_CAP_DSN},
	{"pipelined replies", "250 2.1.0 Ok\r\n550 5.1.1 no\r\n354 go\r\n", 3, {250, 550, 354},
	 {0, 0, 0}, {"2.1.0", "5.1.1", ""}, {"2.1.0 Ok", "5.1.1 no", "go"}, {8, 8, 2},
	 {1, 1, 1}, {12, 12, 6}, 0},
	{"bare LF and no text", "220\n221 bye\n", 2, {220, 221}, {0, 0}, {"", ""}, {"", "bye"},
	 {0, 3}, {1, 1}, {3, 7}, 0},
	{"keywords: case, longer words, not on the first line",
	 "250-PIPELINING\r\n250-pipelining\r\n250-STARTTLSX\r\n250 SMTPUTF\r\n", 1, {250}, {0},
	 {""}, {"PIPELINING pipelining ST"}, {10}, {4}, {14}, SMTP_CAP_PIPELINING},
	{"keyword prefixes and longer words",
	 "250-x\r\n250-PIPE\r\n250-SIZEX 1\r\n250-DS\r\n250-AUTH=LOGIN\r\n250 8BITMIME\r\n", 1,
	 {250}, {0}, {""}, {"x PIPE SIZEX 1 DS AUTH=L"}, {1}, {6}, {14}, SMTP_CAP_8BITMIME},
	{"first line only names the server", "250 STARTTLS\r\n", 1, {250}, {0}, {""},
	 {"STARTTLS"}, {8}, {1}, {12}, 0},
	{"garbage line", "hello\r\n250 ok\r\n", 2, {0, 250}, {SMTP_REPLY_BAD, 0}, {"", ""},
	 {"", "ok"}, {0, 2}, {1, 1}, {5, 6}, 0},
	{"first digit 0 or 6", "099 x\r\n650 y\r\n", 2, {0, 0}, {SMTP_REPLY_BAD, SMTP_REPLY_BAD},
	 {"", ""}, {"", ""}, {0, 0}, {1, 1}, {5, 5}, 0},
	{"no separator", "250x\r\n250\rx\r\n", 2, {250, 250}, {SMTP_REPLY_BAD, SMTP_REPLY_BAD},
	 {"", ""}, {"", ""}, {0, 0}, {1, 1}, {4, 5}, 0},
	{"mixed codes", "250-a\r\n251-b\r\n250 c\r\n", 1, {250}, {SMTP_REPLY_MIXED}, {""},
	 {"a b c"}, {1}, {3}, {5}, 0},
	{"enhanced code: class, digits, token end",
	 "550 4.1.1 x\r\n550 5.1234.1 x\r\n550 5.1.1x\r\n550  5.7.1\tno\r\n", 4,
	 {550, 550, 550, 550}, {0, 0, 0, 0}, {"", "", "", "5.7.1"},
	 {"4.1.1 x", "5.1234.1 x", "5.1.1x", " 5.7.1\tno"}, {7, 10, 6, 9}, {1, 1, 1, 1},
	 {11, 14, 10, 13}, 0},
	{"enhanced code at the line's end and short", "250 2.0.0\r\n250 2.0.\r\n", 2,
	 {250, 250}, {0, 0}, {"2.0.0", ""}, {"2.0.0", "2.0."}, {5, 4}, {1, 1}, {9, 8}, 0},
	{"CR, NUL, ESC in text", "550-a\rb\r\r\n550 \0\033\r\n", 1, {550}, {0}, {""},
	 {"a\rb\r \0\033"}, {4}, {2}, {8, 0}, 0},
	{"text capped", "250-0123456789\r\n250-0123456789\r\n250 0123456789\r\n", 1, {250},
	 {0}, {""}, {"0123456789 0123456789 01"}, {10}, {3}, {14}, 0},
};

/* Stream lengths with embedded NULs: the case's bytes up to the last "\n". */
static size_t stream_len(const struct reply_case *c)
{
	size_t n = strlen(c->stream);
	if (!strcmp(c->name, "CR, NUL, ESC in text"))
		n = sizeof("550-a\rb\r\r\n550 \0\033\r\n") - 1;
	return n;
}

static void check(const struct reply_case *c, unsigned got, const struct smtp_reply *r,
		  const struct smtp_reply_text *t, size_t a, size_t b)
{
	cr_assert_lt(got, c->n, "%s (cuts %zu,%zu): too many replies", c->name, a, b);
	cr_expect_eq(r->code, c->codes[got], "%s (cuts %zu,%zu): reply %u code %u", c->name, a,
		     b, got, r->code);
	cr_expect_eq(r->flags, c->flags[got], "%s: reply %u flags %u", c->name, got, r->flags);
	if (c->flags[got] & SMTP_REPLY_BAD)
		return;
	cr_expect_str_eq(r->enh, c->enh[got], "%s: reply %u enh", c->name, got);
	cr_expect_eq(r->lines, c->lines[got], "%s: reply %u lines", c->name, got);
	if (c->max_line[got] || got == 0)
		cr_expect_eq(r->max_line, c->max_line[got], "%s: reply %u max_line %u", c->name,
			     got, r->max_line);
	if (got == 0)
		cr_expect_eq(r->caps, c->caps, "%s: caps %#x", c->name, r->caps);
	if (t) {
		size_t want = strlen(c->text[got]);
		if (!strcmp(c->name, "CR, NUL, ESC in text"))
			want = 7;
		cr_expect_eq(t->len, want, "%s: reply %u text length %zu", c->name, got, t->len);
		cr_expect(memcmp(t->buf, c->text[got], want) == 0, "%s: reply %u text", c->name,
			  got);
		cr_expect_eq(t->buf[t->len], 0, "%s: text NUL-terminated", c->name);
		cr_expect_eq(t->first_len, c->first_len[got], "%s: reply %u first_len %zu",
			     c->name, got, t->first_len);
	}
}

/* Feed in three chunks [0,a) [a,b) [b,len), by lines with text or by
 * replies without. */
static void run(const struct reply_case *c, size_t a, size_t b, int with_text)
{
	struct smtp_reply r;
	char buf[TEXT_CAP + 1];
	struct smtp_reply_text t = {.buf = buf, .cap = sizeof(buf)};
	const uint8_t *s = (const uint8_t *)c->stream;
	size_t len = stream_len(c), at = 0, ends[3] = {a, b, len};
	unsigned got = 0;
	smtp_reply_reset(&r);
	smtp_reply_text_reset(&t);
	for (unsigned ch = 0; ch < 3; ch++) {
		while (at < ends[ch]) {
			int done;
			size_t n;
			if (with_text) {
				enum smtp_reply_ev ev;
				n = smtp_reply_step(&r, s + at, ends[ch] - at, &t, &ev);
				cr_assert(n > 0);
				if (ev == SMTP_REPLY_MORE)
					cr_assert_eq(at + n, ends[ch]);
				else
					cr_assert_eq(s[at + n - 1], '\n');
				done = ev == SMTP_REPLY_DONE;
			} else {
				n = smtp_reply_feed(&r, s + at, ends[ch] - at, &done);
			}
			at += n;
			if (done) {
				check(c, got, &r, with_text ? &t : NULL, a, b);
				got++;
				smtp_reply_reset(&r);
				smtp_reply_text_reset(&t);
			}
		}
	}
	cr_expect_eq(got, c->n, "%s (cuts %zu,%zu): %u replies", c->name, a, b, got);
	cr_expect(smtp_reply_idle(&r), "%s: parser idle at the end", c->name);
}

Test(smtpreply, every_split)
{
	for (unsigned k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		size_t len = stream_len(&cases[k]);
		for (size_t a = 0; a <= len; a++)
			for (size_t b = a; b <= len; b++) {
				run(&cases[k], a, b, 0);
				run(&cases[k], a, b, 1);
			}
	}
}

Test(smtpreply, partial_line_counts)
{
	struct smtp_reply r;
	enum smtp_reply_ev ev;
	smtp_reply_reset(&r);
	cr_assert(smtp_reply_idle(&r));
	cr_assert_eq(smtp_reply_step(&r, (const uint8_t *)"250-abc", 7, NULL, &ev), 7);
	cr_expect_eq(ev, SMTP_REPLY_MORE);
	cr_expect_eq(r.len, 7);
	cr_expect(!smtp_reply_idle(&r));
	cr_assert_eq(smtp_reply_step(&r, (const uint8_t *)"\r\n250 x\r\n", 9, NULL, &ev), 2);
	cr_expect_eq(ev, SMTP_REPLY_LINE);
	cr_expect_eq(r.len, 0);
	cr_expect_eq(r.max_line, 7);
	cr_expect_eq(r.lines, 1);
}

Test(smtpreply, long_line_saturates)
{
	static uint8_t big[70000];
	struct smtp_reply r;
	int done;
	memset(big, 'x', sizeof(big));
	memcpy(big, "250 ", 4);
	smtp_reply_reset(&r);
	cr_assert_eq(smtp_reply_feed(&r, big, sizeof(big), &done), sizeof(big));
	cr_expect_eq(done, 0);
	cr_expect_eq(r.len, UINT16_MAX);
	cr_assert_eq(smtp_reply_feed(&r, (const uint8_t *)"\n", 1, &done), 1);
	cr_expect_eq(done, 1);
	cr_expect_eq(r.code, 250);
	cr_expect_eq(r.max_line, UINT16_MAX);
}

/* The enhanced status code at the start of a one-line reply's text. */
struct enh_case {
	const char *name;
	const char *line;
	const char *want;
};

static const struct enh_case enh_cases[] = {
	{"plain", "550 5.1.1 <x>: unknown", "5.1.1"},
	{"three digits", "550 5.1.10 RESOLVER", "5.1.10"},
	{"three and three", "550 5.123.123 x", "5.123.123"},
	{"end of text", "250 2.1.5", "2.1.5"},
	{"leading space", "250  2.0.0 Ok", "2.0.0"},
	{"tab ends it", "250 2.0.0\tOk", "2.0.0"},
	{"no code", "550 Unrouteable address", ""},
	{"class mismatch", "550 4.1.1 x", ""},
	{"four digits", "550 5.1111.1 x", ""},
	{"four detail digits", "550 5.1.1111 x", ""},
	{"glued text", "550 5.1.1x", ""},
	{"missing detail", "550 5.1. x", ""},
	{"version-looking text", "220 2.0 ready", ""},
	{"on a later line only", "550-x\r\n550 5.1.1 y", ""},
};

Test(smtpreply, enhanced_codes)
{
	for (unsigned k = 0; k < sizeof(enh_cases) / sizeof(enh_cases[0]); k++) {
		const struct enh_case *c = &enh_cases[k];
		char line[128];
		int n = snprintf(line, sizeof(line), "%s\r\n", c->line), done;
		struct smtp_reply r;
		smtp_reply_reset(&r);
		cr_assert_eq(smtp_reply_feed(&r, (const uint8_t *)line, (size_t)n, &done), (size_t)n);
		cr_assert_eq(done, 1, "%s", c->name);
		cr_expect_str_eq(r.enh, c->want, "%s", c->name);
	}
}

/* The data plane's lean path reads the same replies as smtp_reply_feed(),
 * enhanced code aside, however the stream is cut. */
Test(smtpreply, scan_matches_feed_at_every_split)
{
	for (unsigned k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const struct reply_case *c = &cases[k];
		const uint8_t *s = (const uint8_t *)c->stream;
		size_t len = stream_len(c);
		for (size_t cut = 0; cut <= len; cut++) {
			struct smtp_reply a, b;
			size_t at_a = 0, at_b = 0;
			unsigned got = 0;
			smtp_reply_reset(&a);
			smtp_reply_reset(&b);
			while (at_a < len) {
				int da = 0, db = 0;
				size_t end = at_a < cut ? cut : len;
				at_a += smtp_reply_feed(&a, s + at_a, end - at_a, &da);
				while (!db && at_b < at_a)
					at_b += smtp_reply_scan(&b, s + at_b,
								(at_b < cut ? cut : at_a) - at_b, &db);
				cr_assert_eq(da, db, "%s cut %zu: reply ends differ", c->name, cut);
				if (!da)
					continue;
				cr_assert_eq(at_a, at_b, "%s cut %zu", c->name, cut);
				cr_expect(a.code == b.code && a.caps == b.caps && a.flags == b.flags &&
						  a.lines == b.lines && a.max_line == b.max_line,
					  "%s cut %zu reply %u: scan read another reply", c->name, cut,
					  got);
				cr_expect_str_empty(b.enh, "%s: scan gave an enhanced code", c->name);
				got++;
				smtp_reply_reset(&a);
				smtp_reply_reset(&b);
			}
			cr_expect_eq(got, c->n, "%s cut %zu: %u replies", c->name, cut, got);
		}
	}
}
