/*
 * test_addr.c — addr: RFC 5321 path parsing and canonical form.  Named
 * table cases for good paths (canonical text and flags), bad paths (the
 * exact error), the length limits, the bare/bracketed control-plane form,
 * the parsed fields, idempotence of the canonical form and truncation.
 * Inputs are copied into exactly-sized heap buffers so a sanitizer build
 * catches any read past the end (the parser must not expect a NUL).
 * Runs in the criterion runner (single thread per test).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdlib.h>
#include <string.h>

#include "addr.h"

#define T_IN_MAX 96
#define T_NAME_MAX 40

/* Parameters are copied to criterion's worker processes: arrays only. */
struct path_case {
	char name[T_NAME_MAX];
	char in[T_IN_MAX];
	size_t len;
	bool cs;		/* local part case-sensitive */
	int rc;			/* expected addr_parse_path() result */
	char canon[T_IN_MAX];	/* expected canonical text when rc == ADDR_OK */
	unsigned flags;		/* expected flags when rc == ADDR_OK */
};

#define IN(s) .in = s, .len = sizeof(s) - 1
#define GOOD(n, s, c, f) { .name = n, IN(s), .cs = false, .rc = ADDR_OK, .canon = c, .flags = f }
#define GOOD_CS(n, s, c, f) { .name = n, IN(s), .cs = true, .rc = ADDR_OK, .canon = c, .flags = f }
#define BAD(n, s, e) { .name = n, IN(s), .rc = e }

static struct path_case path_cases[] = {
	/* the null path and postmaster */
	GOOD("null_path", "<>", "", ADDR_F_NULL),
	GOOD("null_path_params", "<> SIZE=1000 BODY=8BITMIME", "", ADDR_F_NULL),
	GOOD("postmaster", "<postmaster>", "postmaster", ADDR_F_POSTMASTER),
	GOOD("postmaster_mixed_case", "<PostMaster>", "postmaster", ADDR_F_POSTMASTER),
	GOOD_CS("postmaster_case_sensitive", "<PostMaster>", "postmaster", ADDR_F_POSTMASTER),
	GOOD("postmaster_at_domain", "<PostMaster@Example.ORG>", "postmaster@example.org", 0),

	/* plain mailboxes and case */
	GOOD("simple", "<user@example.org>", "user@example.org", 0),
	GOOD("single_label_domain", "<a@b>", "a@b", 0),
	GOOD("case_folded", "<John.Doe@Example.ORG>", "john.doe@example.org", 0),
	GOOD_CS("case_sensitive_local", "<John.Doe@Example.ORG>", "John.Doe@example.org", 0),
	GOOD("atext_specials", "<a!#$%&'*+-/=?^_`{|}~Z@x.example>",
	     "a!#$%&'*+-/=?^_`{|}~z@x.example", 0),
	GOOD("domain_digits_hyphens", "<a@x-1.9a--b.example>", "a@x-1.9a--b.example", 0),
	GOOD("numeric_domain", "<a@198.18.0.1>", "a@198.18.0.1", 0),

	/* source routes */
	GOOD("route_dropped", "<@a.example,@b.example:User@D.example>", "user@d.example",
	     ADDR_F_ROUTE),
	GOOD("route_single", "<@relay.example:u@d.example>", "u@d.example", ADDR_F_ROUTE),

	/* quoted local parts */
	GOOD("quoted_dot_atom", "<\"john.doe\"@x.example>", "john.doe@x.example", ADDR_F_QUOTED),
	GOOD("quoted_space_kept", "<\"john doe\"@x>", "\"john doe\"@x", ADDR_F_QUOTED),
	GOOD("quoted_case_folded", "<\"John Doe\"@X>", "\"john doe\"@x", ADDR_F_QUOTED),
	GOOD_CS("quoted_case_kept", "<\"John Doe\"@X>", "\"John Doe\"@x", ADDR_F_QUOTED),
	GOOD("quoted_escaped_quote", "<\"a\\\"b\"@x>", "\"a\\\"b\"@x", ADDR_F_QUOTED),
	GOOD("quoted_escaped_backslash", "<\"a\\\\b\"@x>", "\"a\\\\b\"@x", ADDR_F_QUOTED),
	GOOD("quoted_needless_escape", "<\"a\\bc\"@x>", "abc@x", ADDR_F_QUOTED),
	GOOD("quoted_needless_escape_space", "<\"a\\ b\"@x>", "\"a b\"@x", ADDR_F_QUOTED),
	GOOD("quoted_double_dot", "<\"a..b\"@x>", "\"a..b\"@x", ADDR_F_QUOTED),
	GOOD("quoted_leading_dot", "<\".a\"@x>", "\".a\"@x", ADDR_F_QUOTED),
	GOOD("quoted_gt_at", "<\"a>b@c\"@x>", "\"a>b@c\"@x", ADDR_F_QUOTED),
	GOOD("quoted_route", "<@r.example:\"A B\"@x>", "\"a b\"@x", ADDR_F_QUOTED | ADDR_F_ROUTE),

	/* SMTPUTF8: bytes >= 0x80 kept, ASCII around them folded */
	GOOD("utf8_local", "<J\xc3\xb6hn@Example.org>", "j\xc3\xb6hn@example.org", ADDR_F_UTF8),
	GOOD_CS("utf8_local_cs", "<J\xc3\x96hn@Example.org>", "J\xc3\x96hn@example.org",
		ADDR_F_UTF8),
	GOOD("utf8_upper_not_folded", "<\xc3\x96@x>", "\xc3\x96@x", ADDR_F_UTF8),
	GOOD("utf8_domain", "<user@B\xc3\x9c" "CHER.example>", "user@b\xc3\x9c" "cher.example",
	     ADDR_F_UTF8),
	GOOD("utf8_quoted", "<\"\xc3\x84 B\"@x>", "\"\xc3\x84 b\"@x", ADDR_F_UTF8 | ADDR_F_QUOTED),
	GOOD("utf8_4byte", "<\xf0\x9f\x93\xa7@x>", "\xf0\x9f\x93\xa7@x", ADDR_F_UTF8),

	/* ESMTP parameters and spaces */
	GOOD("params_size_notify", "<a@b> SIZE=100 NOTIFY=NEVER", "a@b", 0),
	GOOD("params_orcpt", "<a@b> ORCPT=rfc822;a@b", "a@b", 0),
	GOOD("params_keyword_only", "<a@b> SMTPUTF8", "a@b", 0),
	GOOD("params_utf8_value", "<a@b> ORCPT=utf-8;\xc3\xa4@b", "a@b", 0),
	GOOD("params_extra_spaces", "<a@b>  SIZE=1  BODY=8BITMIME ", "a@b", 0),
	GOOD("trailing_space", "<a@b> ", "a@b", 0),
	GOOD("leading_space", " <a@b>", "a@b", 0),
	GOOD("leading_spaces", "   <A@B>", "a@b", 0),

	/* address literals */
	GOOD("literal_ipv4", "<user@[198.18.0.1]>", "user@[198.18.0.1]", ADDR_F_LITERAL),
	GOOD("literal_ipv6", "<user@[IPv6:2001:2::1]>", "user@[ipv6:2001:2::1]", ADDR_F_LITERAL),
	GOOD("literal_ipv6_full", "<u@[IPv6:2001:2:0:0:0:0:0:1]>", "u@[ipv6:2001:2:0:0:0:0:0:1]",
	     ADDR_F_LITERAL),
	GOOD("literal_ipv6_loopback", "<u@[IPv6:::1]>", "u@[ipv6:::1]", ADDR_F_LITERAL),
	GOOD("literal_ipv6_trailing_comp", "<u@[IPv6:2001:2::]>", "u@[ipv6:2001:2::]",
	     ADDR_F_LITERAL),
	GOOD("literal_ipv6_hex_case", "<u@[ipv6:2001:2:ABCD::1]>", "u@[ipv6:2001:2:abcd::1]",
	     ADDR_F_LITERAL),
	GOOD("literal_ipv6v4_comp", "<u@[IPv6:::ffff:198.18.0.1]>", "u@[ipv6:::ffff:198.18.0.1]",
	     ADDR_F_LITERAL),
	GOOD("literal_ipv6v4_full", "<u@[IPv6:1:2:3:4:5:6:198.18.0.1]>",
	     "u@[ipv6:1:2:3:4:5:6:198.18.0.1]", ADDR_F_LITERAL),

	/* structure */
	BAD("empty", "", ADDR_E_EMPTY),
	BAD("only_spaces", "   ", ADDR_E_EMPTY),
	BAD("no_brackets", "a@b", ADDR_E_NOBRACKET),
	BAD("no_closing_bracket", "<a@b", ADDR_E_NOBRACKET),
	BAD("no_opening_bracket", "a@b>", ADDR_E_NOBRACKET),
	BAD("lone_open_bracket", "<", ADDR_E_NOBRACKET),
	BAD("no_at", "<user>", ADDR_E_NOAT),
	BAD("quoted_postmaster", "<\"postmaster\">", ADDR_E_NOAT),
	BAD("route_to_postmaster", "<@a.example:postmaster>", ADDR_E_NOAT),
	BAD("nested_brackets", "<<a@b>>", ADDR_E_LOCAL),
	BAD("double_closing_bracket", "<a@b>>", ADDR_E_PARAM),
	BAD("double_at", "<a@b@c>", ADDR_E_DOMAIN),

	/* local part */
	BAD("empty_local", "<@b>", ADDR_E_ROUTE),
	BAD("empty_quoted_local", "<\"\"@b>", ADDR_E_LOCAL),
	BAD("unbalanced_quote", "<\"a@b>", ADDR_E_LOCAL),
	BAD("quote_inside_atom", "<a\"b@c>", ADDR_E_LOCAL),
	BAD("text_after_quoted", "<\"a\"b@c>", ADDR_E_LOCAL),
	BAD("space_after_open", "< a@b>", ADDR_E_LOCAL),
	BAD("space_in_local", "<a b@c>", ADDR_E_LOCAL),
	BAD("leading_dot_local", "<.a@b>", ADDR_E_LOCAL),
	BAD("trailing_dot_local", "<a.@b>", ADDR_E_LOCAL),
	BAD("double_dot_local", "<a..b@c>", ADDR_E_LOCAL),
	BAD("bracket_in_local", "<a[b@c>", ADDR_E_LOCAL),
	BAD("escaped_non_ascii", "<\"a\\\xc3\xa4\"@b>", ADDR_E_LOCAL),
	BAD("escape_at_end", "<\"a\\", ADDR_E_LOCAL),

	/* domain */
	BAD("at_no_domain", "<a@>", ADDR_E_DOMAIN),
	BAD("trailing_dot_domain", "<a@b.>", ADDR_E_DOMAIN),
	BAD("leading_dot_domain", "<a@.b>", ADDR_E_DOMAIN),
	BAD("double_dot_domain", "<a@b..c>", ADDR_E_DOMAIN),
	BAD("label_leading_hyphen", "<a@-b.example>", ADDR_E_DOMAIN),
	BAD("label_trailing_hyphen", "<a@b-.example>", ADDR_E_DOMAIN),
	BAD("last_label_hyphen", "<a@b.example->", ADDR_E_DOMAIN),
	BAD("space_in_domain", "<a@b c>", ADDR_E_DOMAIN),
	BAD("space_before_close", "<a@b >", ADDR_E_DOMAIN),
	BAD("underscore_in_domain", "<a@b_c.example>", ADDR_E_DOMAIN),

	/* address literals */
	BAD("literal_ipv4_octet_256", "<a@[198.18.0.256]>", ADDR_E_DOMAIN),
	BAD("literal_ipv4_three_parts", "<a@[198.18.0]>", ADDR_E_DOMAIN),
	BAD("literal_ipv4_five_parts", "<a@[198.18.0.1.2]>", ADDR_E_DOMAIN),
	BAD("literal_ipv4_four_digits", "<a@[0198.18.0.1]>", ADDR_E_DOMAIN),
	BAD("literal_unterminated", "<a@[198.18.0.1>", ADDR_E_DOMAIN),
	BAD("literal_empty", "<a@[]>", ADDR_E_DOMAIN),
	BAD("literal_general_tag", "<a@[x-tag:abc]>", ADDR_E_DOMAIN),
	BAD("literal_ipv6_empty", "<a@[IPv6:]>", ADDR_E_DOMAIN),
	BAD("literal_ipv6_one_colon", "<a@[IPv6::1]>", ADDR_E_DOMAIN),
	BAD("literal_ipv6_two_comp", "<a@[IPv6:2001::2::1]>", ADDR_E_DOMAIN),
	BAD("literal_ipv6_triple_colon", "<a@[IPv6:2001:::1]>", ADDR_E_DOMAIN),
	BAD("literal_ipv6_five_hex", "<a@[IPv6:12345::1]>", ADDR_E_DOMAIN),
	BAD("literal_ipv6_seven_groups", "<a@[IPv6:1:2:3:4:5:6:7]>", ADDR_E_DOMAIN),
	BAD("literal_ipv6_nine_groups", "<a@[IPv6:1:2:3:4:5:6:7:8:9]>", ADDR_E_DOMAIN),
	BAD("literal_ipv6_seven_and_comp", "<a@[IPv6:1:2:3:4:5:6:7::]>", ADDR_E_DOMAIN),
	BAD("literal_ipv6_trailing_colon", "<a@[IPv6:1:2:3:4:5:6:7:8:]>", ADDR_E_DOMAIN),
	BAD("literal_ipv6v4_too_many", "<a@[IPv6:1:2:3:4:5::198.18.0.1]>", ADDR_E_DOMAIN),
	BAD("literal_ipv6v4_bad_v4", "<a@[IPv6:::ffff:198.18.0]>", ADDR_E_DOMAIN),
	BAD("literal_ipv6_no_tag", "<a@[2001:2::1]>", ADDR_E_DOMAIN),

	/* source routes */
	BAD("route_empty_domain", "<@:u@d.example>", ADDR_E_ROUTE),
	BAD("route_no_colon", "<@a.example,@b.example u@d>", ADDR_E_ROUTE),
	BAD("route_missing_at", "<@a.example,b.example:u@d>", ADDR_E_ROUTE),
	BAD("route_trailing_comma", "<@a.example,:u@d>", ADDR_E_ROUTE),
	BAD("route_literal", "<@[198.18.0.1]:u@d>", ADDR_E_ROUTE),
	BAD("route_bad_domain", "<@a..b:u@d>", ADDR_E_ROUTE),
	BAD("route_hyphen", "<@a-:u@d>", ADDR_E_ROUTE),
	BAD("route_without_mailbox", "<@a.example:>", ADDR_E_LOCAL),
	BAD("route_unterminated", "<@a.example", ADDR_E_ROUTE),

	/* control characters and NUL, wherever they are */
	BAD("ctrl_in_local", "<a\x01" "b@c>", ADDR_E_CTRL),
	BAD("nul_in_local", "<a\0b@c>", ADDR_E_CTRL),
	BAD("nul_in_domain", "<a@b\0c>", ADDR_E_CTRL),
	BAD("nul_after_at", "<a@\0>", ADDR_E_CTRL),
	BAD("del_in_local", "<a\x7f" "b@c>", ADDR_E_CTRL),
	BAD("tab_in_quoted", "<\"a\tb\"@c>", ADDR_E_CTRL),
	BAD("escaped_ctrl_in_quoted", "<\"a\\\x01\"@c>", ADDR_E_CTRL),
	BAD("ctrl_in_route", "<@a\x02" "b:u@d>", ADDR_E_CTRL),
	BAD("tab_before_path", "\t<a@b>", ADDR_E_CTRL),
	BAD("crlf_after_path", "<a@b>\r\n", ADDR_E_CTRL),
	BAD("nul_in_params", "<a@b> SIZE=1\0", ADDR_E_CTRL),
	BAD("nul_before_path", "\0<a@b>", ADDR_E_CTRL),

	/* malformed UTF-8 */
	BAD("utf8_bad_lead_local", "<a\xff@b>", ADDR_E_LOCAL),
	BAD("utf8_truncated_domain", "<a@b\xc3>", ADDR_E_DOMAIN),
	BAD("utf8_overlong", "<\xc0\xaf@b>", ADDR_E_LOCAL),
	BAD("utf8_surrogate", "<\xed\xa0\x80@b>", ADDR_E_LOCAL),
	BAD("utf8_above_max", "<\xf4\x90\x80\x80@b>", ADDR_E_LOCAL),
	BAD("utf8_lone_continuation", "<\"\x80\"@b>", ADDR_E_LOCAL),
	BAD("utf8_bad_in_params", "<a@b> X=\xc3(", ADDR_E_PARAM),

	/* text after the path */
	BAD("garbage_after_path", "<a@b>garbage", ADDR_E_PARAM),
	BAD("param_no_keyword", "<a@b> =1", ADDR_E_PARAM),
	BAD("param_empty_value", "<a@b> SIZE=", ADDR_E_PARAM),
	BAD("param_keyword_hyphen_first", "<a@b> -X", ADDR_E_PARAM),
	BAD("param_equals_in_value", "<a@b> SIZE=1=2", ADDR_E_PARAM),
	BAD("param_bad_keyword_char", "<a@b> SI_ZE=1", ADDR_E_PARAM),
	BAD("second_path", "<a@b> <c@d>", ADDR_E_PARAM),
};

#define N_PATH_CASES (sizeof(path_cases) / sizeof(path_cases[0]))

/* Input in a heap block of exactly len bytes (one byte for len 0). */
static char *exact_copy(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);

	cr_assert_not_null(p);
	memcpy(p, s, len);
	return p;
}

/* Canonical text of a good case must normalise to itself. */
static void expect_idempotent(const char *name, const char *canon, int n, bool cs)
{
	char again[RG_ADDR_MAX];
	char *in = exact_copy(canon, (size_t)n);
	int m = addr_normalize(in, (size_t)n, cs, again, sizeof(again));

	cr_expect_eq(m, n, "%s: normalising the canonical form gave %d (%s), want %d", name, m,
		     m < 0 ? addr_strerror(m) : "length", n);
	if (m == n)
		cr_expect_eq(memcmp(again, canon, (size_t)n), 0,
			     "%s: canonical form not idempotent: \"%.*s\" -> \"%.*s\"", name, n,
			     canon, m, again);
	free(in);
}

ParameterizedTestParameters(addr, paths)
{
	return cr_make_param_array(struct path_case, path_cases, N_PATH_CASES);
}

ParameterizedTest(struct path_case *tc, addr, paths)
{
	struct addr_parsed a;
	char out[RG_ADDR_MAX];
	char *in = exact_copy(tc->in, tc->len);
	int rc = addr_parse_path(in, tc->len, &a);
	int n;

	cr_assert_eq(rc, tc->rc, "%s: addr_parse_path gave %d (%s), want %d (%s)", tc->name, rc,
		     addr_strerror(rc), tc->rc, addr_strerror(tc->rc));
	if (rc != ADDR_OK) {
		cr_expect(a.local == NULL && a.domain == NULL && a.flags == 0,
			  "%s: result not cleared on error", tc->name);
		free(in);
		return;
	}
	cr_expect_eq(a.flags, tc->flags, "%s: flags 0x%x, want 0x%x", tc->name, a.flags, tc->flags);

	n = addr_canonical(&a, tc->cs, out, sizeof(out));
	cr_assert_geq(n, 0, "%s: addr_canonical gave %d (%s)", tc->name, n, addr_strerror(n));
	cr_expect_eq((size_t)n, strlen(tc->canon), "%s: canonical \"%.*s\", want \"%s\"", tc->name,
		     n, out, tc->canon);
	cr_expect_eq(memcmp(out, tc->canon, (size_t)n), 0, "%s: canonical \"%.*s\", want \"%s\"",
		     tc->name, n, out, tc->canon);
	if (n > 0)
		expect_idempotent(tc->name, out, n, tc->cs);
	free(in);
}

/* Any good path cut before its closing '>' is an error, never a guess. */
Test(addr, truncated_paths_refused)
{
	for (size_t i = 0; i < N_PATH_CASES; i++) {
		const struct path_case *tc = &path_cases[i];
		const char *gt;
		size_t end;

		if (tc->rc != ADDR_OK)
			continue;
		gt = memchr(tc->in, '<', tc->len);
		cr_assert_not_null(gt, "%s", tc->name);
		{
			struct addr_parsed a;
			int rc = addr_parse_path(tc->in, tc->len, &a);

			cr_assert_eq(rc, ADDR_OK, "%s", tc->name);
			end = (size_t)(gt - tc->in) + a.path_len;
		}
		for (size_t cut = 0; cut < end; cut++) {
			struct addr_parsed a;
			char *in = exact_copy(tc->in, cut);
			int rc = addr_parse_path(in, cut, &a);

			cr_expect_lt(rc, 0, "%s cut to %zu bytes: accepted", tc->name, cut);
			free(in);
		}
	}
}

/* Generated inputs at and around the RFC 5321 length limits. */
struct limit_case {
	char name[T_NAME_MAX];
	unsigned local_len;	/* as written */
	bool quoted;		/* local part is '"' + 'a'* + '"' */
	unsigned domain_len;	/* as written */
	unsigned label_max;	/* longest label in the generated domain */
	int rc;
};

static struct limit_case limit_cases[] = {
	{ "path_256_ok", 64, false, 189, 63, ADDR_OK },
	{ "path_257", 64, false, 190, 63, ADDR_E_TOOLONG },
	{ "local_64_ok", 64, false, 11, 63, ADDR_OK },
	{ "local_65", 65, false, 11, 63, ADDR_E_LOCAL_TOOLONG },
	{ "quoted_local_64_ok", 64, true, 11, 63, ADDR_OK },
	{ "quoted_local_65", 65, true, 11, 63, ADDR_E_LOCAL_TOOLONG },
	{ "domain_252_ok", 1, false, 252, 63, ADDR_OK },
	{ "domain_253_path_257", 1, false, 253, 63, ADDR_E_TOOLONG },
	{ "domain_255_path_259", 1, false, 255, 63, ADDR_E_TOOLONG },
	{ "domain_256", 1, false, 256, 63, ADDR_E_DOMAIN_TOOLONG },
	{ "label_63_ok", 1, false, 63, 63, ADDR_OK },
	{ "label_64", 1, false, 64, 64, ADDR_E_DOMAIN },
	{ "local_65_and_path_long", 65, false, 200, 63, ADDR_E_LOCAL_TOOLONG },
};

#define N_LIMIT_CASES (sizeof(limit_cases) / sizeof(limit_cases[0]))

/* "<" local "@" domain ">" into buf; returns the length. */
static size_t build_path(const struct limit_case *tc, char *buf)
{
	size_t n = 0, left = tc->domain_len;

	buf[n++] = '<';
	if (tc->quoted) {
		buf[n++] = '"';
		memset(buf + n, 'a', tc->local_len - 2);
		n += tc->local_len - 2;
		buf[n++] = '"';
	} else {
		memset(buf + n, 'a', tc->local_len);
		n += tc->local_len;
	}
	buf[n++] = '@';
	while (left > 0) {
		if (left <= tc->label_max) {
			memset(buf + n, 'b', left);
			n += left;
			left = 0;
		} else {	/* a full label and a dot, leaving at least one byte */
			size_t lab = tc->label_max < left - 1 ? tc->label_max : left - 2;

			memset(buf + n, 'b', lab);
			n += lab;
			buf[n++] = '.';
			left -= lab + 1;
		}
	}
	buf[n++] = '>';
	return n;
}

ParameterizedTestParameters(addr, limits)
{
	return cr_make_param_array(struct limit_case, limit_cases, N_LIMIT_CASES);
}

ParameterizedTest(struct limit_case *tc, addr, limits)
{
	char buf[512], out[RG_ADDR_MAX];
	size_t len = build_path(tc, buf);
	char *in = exact_copy(buf, len);
	struct addr_parsed a;
	int rc = addr_parse_path(in, len, &a);

	cr_assert_eq(len, 1 + tc->local_len + 1 + tc->domain_len + 1, "%s: generator", tc->name);
	cr_assert_eq(rc, tc->rc, "%s: addr_parse_path gave %d (%s), want %d (%s)", tc->name, rc,
		     addr_strerror(rc), tc->rc, addr_strerror(tc->rc));
	if (rc == ADDR_OK) {
		int n;

		cr_expect_eq(a.local_len, tc->local_len, "%s", tc->name);
		cr_expect_eq(a.domain_len, tc->domain_len, "%s", tc->name);
		cr_expect_eq(a.path_len, len, "%s", tc->name);
		n = addr_canonical(&a, false, out, sizeof(out));
		cr_assert_gt(n, 0, "%s: addr_canonical gave %d (%s)", tc->name, n, addr_strerror(n));
		cr_expect_leq((size_t)n, RG_ADDR_MAX, "%s", tc->name);
		expect_idempotent(tc->name, out, n, false);
	}
	free(in);
}

/* The domain limit itself, on parsed results the path limit cannot reach. */
Test(addr, domain_limit_255)
{
	static char dom[RG_DOMAIN_MAX + 1];
	char out[RG_DOMAIN_MAX + 1];
	struct addr_parsed a = { .local = "a", .local_len = 1, .domain = dom };

	memset(dom, 'B', sizeof(dom));
	a.domain_len = RG_DOMAIN_MAX;
	cr_expect_eq(addr_domain_lower(&a, out, sizeof(out)), (int)RG_DOMAIN_MAX);
	cr_expect_eq(out[0], 'b');
	cr_expect_eq(out[RG_DOMAIN_MAX - 1], 'b');
	a.domain_len = RG_DOMAIN_MAX + 1;
	cr_expect_eq(addr_domain_lower(&a, out, sizeof(out)), ADDR_E_DOMAIN_TOOLONG);
	cr_expect_eq(addr_canonical(&a, false, out, sizeof(out)), ADDR_E_DOMAIN_TOOLONG);
}

/* Control-plane input: bare or bracketed, spaces around, nothing else. */
struct norm_case {
	char name[T_NAME_MAX];
	char in[T_IN_MAX];
	size_t len;
	bool cs;
	int rc;
	char canon[T_IN_MAX];
};

#define NGOOD(n, s, c) { .name = n, IN(s), .rc = ADDR_OK, .canon = c }
#define NGOOD_CS(n, s, c) { .name = n, IN(s), .cs = true, .rc = ADDR_OK, .canon = c }
#define NBAD(n, s, e) { .name = n, IN(s), .rc = e }

static struct norm_case norm_cases[] = {
	NGOOD("bare", "User@Example.ORG", "user@example.org"),
	NGOOD_CS("bare_case_sensitive", "User@Example.ORG", "User@example.org"),
	NGOOD("bracketed", "<User@Example.ORG>", "user@example.org"),
	NGOOD("bare_spaces_around", "  user@x  ", "user@x"),
	NGOOD("bracketed_spaces_around", " <user@x> ", "user@x"),
	NGOOD("bare_postmaster", "PostMaster", "postmaster"),
	NGOOD("bracketed_postmaster", "<postmaster>", "postmaster"),
	NGOOD("bare_quoted", "\"John Doe\"@X", "\"john doe\"@x"),
	NGOOD("bare_quoted_atom", "\"john.doe\"@x", "john.doe@x"),
	NGOOD("bare_literal", "u@[IPv6:2001:2::1]", "u@[ipv6:2001:2::1]"),
	NGOOD("bracketed_route", "<@a.example:U@d.example>", "u@d.example"),
	NGOOD("bare_utf8", "\xc3\x96@B\xc3\xbc.example", "\xc3\x96@b\xc3\xbc.example"),
	NGOOD("null_path", "<>", ""),
	NBAD("empty", "", ADDR_E_EMPTY),
	NBAD("spaces", "  ", ADDR_E_EMPTY),
	NBAD("bare_no_at", "user", ADDR_E_NOAT),
	NBAD("bare_empty_local", "@b", ADDR_E_LOCAL),
	NBAD("bare_empty_domain", "a@", ADDR_E_DOMAIN),
	NBAD("bare_route", "@a.example:u@d", ADDR_E_LOCAL),
	NBAD("bare_trailing_gt", "a@b>", ADDR_E_DOMAIN),
	NBAD("bare_two_words", "a@b c", ADDR_E_PARAM),
	NBAD("bare_space_inside", "a b@c", ADDR_E_NOAT),
	NBAD("bare_postmaster_extra", "postmaster x", ADDR_E_PARAM),
	NBAD("bracketed_params", "<a@b> SIZE=1", ADDR_E_PARAM),
	NBAD("bare_newline", "a@b\n", ADDR_E_CTRL),
	NBAD("bare_nul", "a@b\0", ADDR_E_CTRL),
	NBAD("bare_trailing_dot", "a@b.", ADDR_E_DOMAIN),
};

#define N_NORM_CASES (sizeof(norm_cases) / sizeof(norm_cases[0]))

ParameterizedTestParameters(addr, normalize)
{
	return cr_make_param_array(struct norm_case, norm_cases, N_NORM_CASES);
}

ParameterizedTest(struct norm_case *tc, addr, normalize)
{
	char out[RG_ADDR_MAX];
	char *in = exact_copy(tc->in, tc->len);
	int n = addr_normalize(in, tc->len, tc->cs, out, sizeof(out));

	if (tc->rc != ADDR_OK) {
		cr_expect_eq(n, tc->rc, "%s: gave %d (%s), want %d (%s)", tc->name, n,
			     n < 0 ? addr_strerror(n) : "a length", tc->rc, addr_strerror(tc->rc));
	} else {
		cr_assert_geq(n, 0, "%s: gave %d (%s)", tc->name, n, addr_strerror(n));
		cr_expect_eq((size_t)n, strlen(tc->canon), "%s: \"%.*s\", want \"%s\"", tc->name, n,
			     out, tc->canon);
		cr_expect_eq(memcmp(out, tc->canon, (size_t)n), 0, "%s: \"%.*s\", want \"%s\"",
			     tc->name, n, out, tc->canon);
		if (n > 0)
			expect_idempotent(tc->name, out, n, tc->cs);
	}
	free(in);
}

/* A bare address gets the path limit as if it were bracketed. */
Test(addr, normalize_bare_limit)
{
	char buf[300], out[RG_ADDR_MAX];
	size_t len;

	/* 64 + 1 + 189 = 254 bytes: 256 once bracketed */
	memset(buf, 'a', 64);
	buf[64] = '@';
	for (len = 65; len < 254; len++)
		buf[len] = ((len - 65) % 50 == 49) ? '.' : 'b';
	cr_assert_eq(addr_normalize(buf, 254, false, out, sizeof(out)), 254);
	buf[254] = 'c';
	cr_expect_eq(addr_normalize(buf, 255, false, out, sizeof(out)), ADDR_E_TOOLONG);
}

/* The parsed fields point into the input as written. */
Test(addr, parsed_fields)
{
	static const char in[] = "  <@r.example:\"A b\"@Ex.ORG> SIZE=1";
	static const char path[] = "<@r.example:\"A b\"@Ex.ORG>";
	struct addr_parsed a;
	char dom[16];

	cr_assert_eq(addr_parse_path(in, sizeof(in) - 1, &a), ADDR_OK);
	cr_expect_eq(a.local, in + 14);
	cr_expect_eq(a.local_len, 5u);
	cr_expect_eq(memcmp(a.local, "\"A b\"", 5), 0);
	cr_expect_eq(a.domain, in + 20);
	cr_expect_eq(a.domain_len, 6u);
	cr_expect_eq(a.path_len, sizeof(path) - 1);
	cr_expect_eq(a.flags, (unsigned)(ADDR_F_QUOTED | ADDR_F_ROUTE));
	cr_expect_eq(addr_domain_lower(&a, dom, sizeof(dom)), 6);
	cr_expect_eq(memcmp(dom, "ex.org", 6), 0);
	cr_expect_eq(addr_domain_lower(&a, dom, 5), ADDR_E_NOSPACE);
}

/* Every output size below the canonical length is refused, not truncated. */
Test(addr, output_too_small)
{
	static const char *const ins[] = { "<User@Example.ORG>", "<\"a b\"@x>", "<\"a.b\"@x>",
					   "<postmaster>" };

	for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
		struct addr_parsed a;
		char out[RG_ADDR_MAX];
		int full;

		cr_assert_eq(addr_parse_path(ins[i], strlen(ins[i]), &a), ADDR_OK, "%s", ins[i]);
		full = addr_canonical(&a, false, out, sizeof(out));
		cr_assert_gt(full, 0, "%s", ins[i]);
		for (int sz = 0; sz < full; sz++)
			cr_expect_eq(addr_canonical(&a, false, out, (size_t)sz), ADDR_E_NOSPACE,
				     "%s: size %d", ins[i], sz);
		cr_expect_eq(addr_canonical(&a, false, out, (size_t)full), full, "%s", ins[i]);
	}
}

Test(addr, strerror_distinct)
{
	static const int errs[] = { ADDR_E_EMPTY, ADDR_E_NOBRACKET, ADDR_E_TOOLONG,
				    ADDR_E_LOCAL_TOOLONG, ADDR_E_DOMAIN_TOOLONG, ADDR_E_LOCAL,
				    ADDR_E_DOMAIN, ADDR_E_ROUTE, ADDR_E_NOAT, ADDR_E_CTRL,
				    ADDR_E_PARAM, ADDR_E_NOSPACE };
	const size_t n = sizeof(errs) / sizeof(errs[0]);
	const char *unknown = addr_strerror(-1000);

	cr_assert_not_null(unknown);
	for (size_t i = 0; i < n; i++) {
		const char *s = addr_strerror(errs[i]);

		cr_assert_not_null(s);
		cr_expect_str_neq(s, unknown, "error %d has no message", errs[i]);
		for (size_t j = 0; j < i; j++)
			cr_expect_str_neq(s, addr_strerror(errs[j]), "errors %d and %d share a message",
					  errs[i], errs[j]);
	}
}
