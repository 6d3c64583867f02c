/*
 * test_text.c — text_clean(): what reaches a log line or a terminal.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "text.h"

struct text_case {
	char name[48];
	char in[64];
	size_t n;		/* 0: strlen(in) */
	unsigned flags;
	size_t outlen;		/* 0: 256 */
	char want[160];
};

static const struct text_case cases[] = {
	{"plain ascii kept", "550 5.1.1 User unknown", 0, 0, 0, "550 5.1.1 User unknown"},
	{"CR LF escaped", "a\r\nb", 0, 0, 0, "a\\x0d\\x0ab"},
	{"LF kept on request", "a\nb\r", 0, TEXT_KEEP_NL, 0, "a\nb\\x0d"},
	{"ESC sequence escaped", "\x1b[31mred", 0, 0, 0, "\\x1b[31mred"},
	{"NUL escaped", "a\0b", 3, 0, 0, "a\\x00b"},
	{"DEL escaped", "a\x7f", 0, 0, 0, "a\\x7f"},
	{"UTF-8 kept", "j\xc3\xbcrgen", 0, 0, 0, "j\xc3\xbcrgen"},
	{"C1 CSI escaped", "a\xc2\x9b" "31m", 0, 0, 0, "a\\xc2\\x9b31m"},
	{"lone continuation byte", "a\x9b" "b", 0, 0, 0, "a\\x9bb"},
	{"truncated sequence", "a\xe2\x82", 0, 0, 0, "a\\xe2\\x82"},
	{"overlong escaped", "\xc0\xaf", 0, 0, 0, "\\xc0\\xaf"},
	{"surrogate escaped", "\xed\xa0\x80", 0, 0, 0, "\\xed\\xa0\\x80"},
	{"cut at a whole escape", "ab\x1b", 0, 0, 5, "ab"},
	{"cut before a multibyte char", "a\xc3\xbc", 0, 0, 3, "a"},
};

ParameterizedTestParameters(text, clean)
{
	return cr_make_param_array(struct text_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(const struct text_case *c, text, clean)
{
	char out[256];
	size_t n = c->n ? c->n : strlen(c->in);
	size_t ol = c->outlen ? c->outlen : sizeof(out);
	size_t r = text_clean(out, ol, c->in, n, c->flags);
	cr_assert_str_eq(out, c->want, "%s", c->name);
	cr_assert_eq(r, strlen(c->want), "%s", c->name);
}
