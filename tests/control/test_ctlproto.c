/*
 * test_ctlproto.c — the control protocol's framing and request validation:
 * good frames, every split of a frame, malformed, oversized and
 * wrong-version frames refused as early as the header allows, request
 * arguments checked per verb, error answers escaped.  Single-threaded.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "ctlproto.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- frame check -------------------------------------------------------- */

struct frame_case {
	const char *name;
	uint8_t bytes[32];
	size_t len;
	uint8_t kind;
	uint32_t max;
	long expect;	/* frame length, 0 = need more, < 0 = error */
};

#define HDR(k, code, len) 'R', 'G', CTLPROTO_VERSION, (k), (uint8_t)((code) >> 8), \
	(uint8_t)(code), 0, 0, (uint8_t)((len) >> 24), (uint8_t)((len) >> 16),     \
	(uint8_t)((len) >> 8), (uint8_t)(len)

static const struct frame_case frame_cases[] = {
	{"status, no payload", {HDR('Q', CTLV_STATUS, 0)}, 12, 'Q', CTLPROTO_REQ_MAX, 12},
	{"payload of 3, complete", {HDR('Q', CTLV_STATUS, 3), 'a', 'b', 'c'}, 15, 'Q',
	 CTLPROTO_REQ_MAX, 15},
	{"payload of 3, 2 received", {HDR('Q', CTLV_STATUS, 3), 'a', 'b'}, 14, 'Q',
	 CTLPROTO_REQ_MAX, 0},
	{"next frame's octets follow", {HDR('Q', CTLV_STATS, 1), 'x', 'R', 'G'}, 15, 'Q',
	 CTLPROTO_REQ_MAX, 13},
	{"empty input", {0}, 0, 'Q', CTLPROTO_REQ_MAX, 0},
	{"half a header", {'R', 'G', CTLPROTO_VERSION, 'Q', 0}, 5, 'Q', CTLPROTO_REQ_MAX, 0},
	{"bad first magic octet, refused at once", {'G'}, 1, 'Q', CTLPROTO_REQ_MAX,
	 CTLP_E_MAGIC},
	{"bad second magic octet", {'R', 'R'}, 2, 'Q', CTLPROTO_REQ_MAX, CTLP_E_MAGIC},
	{"text garbage", {'s', 't', 'a', 't', 'u', 's', '\n'}, 7, 'Q', CTLPROTO_REQ_MAX,
	 CTLP_E_MAGIC},
	{"version 2 refused on its octet", {'R', 'G', 2}, 3, 'Q', CTLPROTO_REQ_MAX,
	 CTLP_E_VERSION},
	{"version 0", {'R', 'G', 0, 'Q', 0, 1, 0, 0, 0, 0, 0, 0}, 12, 'Q', CTLPROTO_REQ_MAX,
	 CTLP_E_VERSION},
	{"answer where a request belongs", {HDR('A', 0, 0)}, 12, 'Q', CTLPROTO_REQ_MAX,
	 CTLP_E_KIND},
	{"request where an answer belongs", {HDR('Q', 1, 0)}, 12, 'A', CTLPROTO_RESP_MAX,
	 CTLP_E_KIND},
	{"reserved flags set", {'R', 'G', CTLPROTO_VERSION, 'Q', 0, 1, 0, 1, 0, 0, 0, 0}, 12,
	 'Q', CTLPROTO_REQ_MAX, CTLP_E_FLAGS},
	{"length one over the limit, refused before the payload",
	 {HDR('Q', CTLV_STATUS, CTLPROTO_REQ_MAX + 1)}, 12, 'Q', CTLPROTO_REQ_MAX, CTLP_E_TOOBIG},
	{"length 4 GiB - 1", {HDR('Q', CTLV_STATUS, 0xffffffffu)}, 12, 'Q', CTLPROTO_REQ_MAX,
	 CTLP_E_TOOBIG},
	{"length exactly the limit, need more", {HDR('Q', CTLV_STATUS, CTLPROTO_REQ_MAX)}, 12,
	 'Q', CTLPROTO_REQ_MAX, 0},
	{"verb 0", {HDR('Q', 0, 0)}, 12, 'Q', CTLPROTO_REQ_MAX, CTLP_E_VERB},
	{"verb past the last", {HDR('Q', CTLV__MAX, 0)}, 12, 'Q', CTLPROTO_REQ_MAX, CTLP_E_VERB},
	{"answer status past the last", {HDR('A', CTLS__MAX, 0)}, 12, 'A', CTLPROTO_RESP_MAX,
	 CTLP_E_VERB},
	{"answer ok", {HDR('A', CTLS_OK, 2), '{', '}'}, 14, 'A', CTLPROTO_RESP_MAX, 14},
};

Test(ctlproto, frame_check_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(frame_cases); i++) {
		const struct frame_case *c = &frame_cases[i];
		struct ctlproto_hdr h;
		long n = ctlproto_frame_check(c->bytes, c->len, c->kind, c->max, &h);
		cr_expect_eq(n, c->expect, "%s: got %ld (%s), want %ld", c->name, n,
			     n < 0 ? ctlproto_strerror((int)n) : "-", c->expect);
	}
}

Test(ctlproto, frame_every_split)
{
	const struct ctlproto_kv kv[] = {{CTLK_ADDR, "user@example.test"},
					 {CTLK_VERDICT, "invalid"},
					 {CTLK_TTL, "1h"}};
	uint8_t buf[256];
	struct ctlproto_hdr h;
	long len = ctlproto_req_encode(buf, sizeof(buf), CTLV_SET, kv, 3, NULL);

	cr_assert_gt(len, CTLPROTO_HDR_LEN);
	for (long cut = 0; cut < len; cut++)
		cr_expect_eq(ctlproto_frame_check(buf, (size_t)cut, 'Q', CTLPROTO_REQ_MAX, &h), 0,
			     "prefix of %ld octets must need more", cut);
	cr_expect_eq(ctlproto_frame_check(buf, (size_t)len, 'Q', CTLPROTO_REQ_MAX, &h), len);
	cr_expect_eq(h.code, CTLV_SET);
	cr_expect_eq(h.len, (uint32_t)(len - CTLPROTO_HDR_LEN));
}

/* ---- request decoding --------------------------------------------------- */

struct req_case {
	const char *name;
	enum ctlproto_verb verb;
	const char *payload;	/* '|' stands for NUL */
	int expect;
	const char *where;	/* offending key name, or NULL */
};

static const struct req_case req_cases[] = {
	{"status without arguments", CTLV_STATUS, "", CTLP_OK, NULL},
	{"status takes no address", CTLV_STATUS, "addr=a@b.test|", CTLP_E_KEY, "addr"},
	{"lookup", CTLV_LOOKUP, "addr=user@example.test|", CTLP_OK, NULL},
	{"lookup with angle brackets", CTLV_LOOKUP, "addr=<User@Example.TEST>|", CTLP_OK, NULL},
	{"lookup without address", CTLV_LOOKUP, "", CTLP_E_MISSING, "addr"},
	{"lookup empty address", CTLV_LOOKUP, "addr=|", CTLP_E_VALUE, "addr"},
	{"lookup address without @", CTLV_LOOKUP, "addr=nobody|", CTLP_E_VALUE, "addr"},
	{"lookup address with a control char", CTLV_LOOKUP, "addr=a\tb@c.test|", CTLP_E_VALUE,
	 "addr"},
	{"lookup address twice", CTLV_LOOKUP, "addr=a@b.test|addr=c@d.test|", CTLP_E_DUP, "addr"},
	{"unknown key", CTLV_LOOKUP, "addr=a@b.test|colour=red|", CTLP_E_KEY, NULL},
	{"argument without =", CTLV_LOOKUP, "addr|", CTLP_E_SYNTAX, NULL},
	{"argument with empty key", CTLV_LOOKUP, "=a@b.test|", CTLP_E_SYNTAX, NULL},
	{"argument without its NUL", CTLV_LOOKUP, "addr=a@b.test", CTLP_E_SYNTAX, NULL},
	{"key longer than the limit", CTLV_LOOKUP, "addraddraddraddraddr=a@b.test|", CTLP_E_SYNTAX,
	 NULL},
	{"nine arguments", CTLV_SET, "a=1|b=2|c=3|d=4|e=5|f=6|g=7|h=8|i=9|", CTLP_E_TOOMANY, NULL},
	{"set valid", CTLV_SET, "addr=a@b.test|verdict=valid|", CTLP_OK, NULL},
	{"set invalid with ttl", CTLV_SET, "addr=a@b.test|verdict=invalid|ttl=3600|", CTLP_OK,
	 NULL},
	{"set without verdict", CTLV_SET, "addr=a@b.test|", CTLP_E_MISSING, "verdict"},
	{"set verdict maybe", CTLV_SET, "addr=a@b.test|verdict=maybe|", CTLP_E_VALUE, "verdict"},
	{"set ttl 0", CTLV_SET, "addr=a@b.test|verdict=valid|ttl=0|", CTLP_E_VALUE, "ttl"},
	{"set ttl over ten years", CTLV_SET, "addr=a@b.test|verdict=valid|ttl=315360001|",
	 CTLP_E_VALUE, "ttl"},
	{"set ttl not a number", CTLV_SET, "addr=a@b.test|verdict=valid|ttl=soon|", CTLP_E_VALUE,
	 "ttl"},
	{"del", CTLV_DEL, "addr=a@b.test|", CTLP_OK, NULL},
	{"flush a domain", CTLV_FLUSH, "domain=example.test|", CTLP_OK, NULL},
	{"flush all", CTLV_FLUSH, "all=1|", CTLP_OK, NULL},
	{"flush with neither", CTLV_FLUSH, "", CTLP_E_MISSING, "domain"},
	{"flush with both", CTLV_FLUSH, "domain=example.test|all=1|", CTLP_E_MISSING, NULL},
	{"flush all=yes", CTLV_FLUSH, "all=yes|", CTLP_E_VALUE, "all"},
	{"flush empty label", CTLV_FLUSH, "domain=example..test|", CTLP_E_VALUE, "domain"},
	{"flush domain with a space", CTLV_FLUSH, "domain=exa mple.test|", CTLP_E_VALUE,
	 "domain"},
	{"block IPv4 prefix", CTLV_BLOCK, "prefix=198.18.0.0/15|", CTLP_OK, NULL},
	{"block IPv4 host bits set", CTLV_BLOCK, "prefix=198.18.0.1/15|", CTLP_E_VALUE, "prefix"},
	{"block IPv6 prefix with ttl", CTLV_BLOCK, "prefix=2001:2::/48|ttl=1d|", CTLP_OK, NULL},
	{"block IPv6 /129", CTLV_BLOCK, "prefix=2001:2::/129|", CTLP_E_VALUE, "prefix"},
	{"block bare address", CTLV_BLOCK, "prefix=198.18.7.9|", CTLP_OK, NULL},
	{"block empty length", CTLV_BLOCK, "prefix=198.18.0.0/|", CTLP_E_VALUE, "prefix"},
	{"block length with leading zero", CTLV_BLOCK, "prefix=198.18.0.0/015|", CTLP_E_VALUE,
	 "prefix"},
	{"block a name", CTLV_BLOCK, "prefix=mail.example.test|", CTLP_E_VALUE, "prefix"},
	{"unblock", CTLV_UNBLOCK, "prefix=198.18.0.0/24|", CTLP_OK, NULL},
	{"unblock takes no ttl", CTLV_UNBLOCK, "prefix=198.18.0.0/24|ttl=5|", CTLP_E_KEY, "ttl"},
	{"blocks", CTLV_BLOCKS, "", CTLP_OK, NULL},
	{"verify", CTLV_VERIFY, "addr=postmaster@example.test|", CTLP_OK, NULL},
	{"reload with an argument", CTLV_RELOAD, "all=1|", CTLP_E_KEY, "all"},
};

static size_t unbar(const char *in, uint8_t *out)
{
	size_t n = strlen(in);

	for (size_t i = 0; i < n; i++)
		out[i] = in[i] == '|' ? '\0' : (uint8_t)in[i];
	return n;
}

Test(ctlproto, request_decode_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(req_cases); i++) {
		const struct req_case *c = &req_cases[i];
		uint8_t payload[CTLPROTO_REQ_MAX];
		struct ctlproto_hdr h = {CTLPROTO_VERSION, 'Q', (uint16_t)c->verb, 0, 0};
		struct ctlproto_req r;
		const char *where = NULL;
		int rc;

		h.len = (uint32_t)unbar(c->payload, payload);
		rc = ctlproto_req_decode(&h, payload, &r, &where);
		cr_expect_eq(rc, c->expect, "%s: got %d (%s), want %d (%s)", c->name, rc,
			     ctlproto_strerror(rc), c->expect, ctlproto_strerror(c->expect));
		if (c->where)
			cr_expect(where && strcmp(where, c->where) == 0, "%s: where %s, want %s",
				  c->name, where ? where : "(null)", c->where);
		else if (c->expect != CTLP_OK)
			cr_expect_null(where, "%s: where %s", c->name, where);
	}
}

Test(ctlproto, request_values_point_into_payload)
{
	uint8_t payload[128];
	struct ctlproto_hdr h = {CTLPROTO_VERSION, 'Q', CTLV_SET, 0, 0};
	struct ctlproto_req r;

	h.len = (uint32_t)unbar("ttl=2h|verdict=invalid|addr=x@y.test|", payload);
	cr_assert_eq(ctlproto_req_decode(&h, payload, &r, NULL), CTLP_OK);
	cr_expect_eq(r.verb, CTLV_SET);
	cr_expect_str_eq(r.arg[CTLK_ADDR], "x@y.test");
	cr_expect_str_eq(r.arg[CTLK_VERDICT], "invalid");
	cr_expect_eq(r.ttl, 7200u);
	cr_expect_null(r.arg[CTLK_DOMAIN]);
}

Test(ctlproto, request_header_checks)
{
	uint8_t payload[4] = {0};
	struct ctlproto_req r;
	struct ctlproto_hdr v2 = {2, 'Q', CTLV_STATUS, 0, 0};
	struct ctlproto_hdr big = {CTLPROTO_VERSION, 'Q', CTLV_STATUS, 0, CTLPROTO_REQ_MAX + 1};
	struct ctlproto_hdr ans = {CTLPROTO_VERSION, 'A', CTLV_STATUS, 0, 0};
	struct ctlproto_hdr verb = {CTLPROTO_VERSION, 'Q', 999, 0, 0};

	cr_expect_eq(ctlproto_req_decode(&v2, payload, &r, NULL), CTLP_E_VERSION);
	cr_expect_eq(ctlproto_req_decode(&big, payload, &r, NULL), CTLP_E_TOOBIG);
	cr_expect_eq(ctlproto_req_decode(&ans, payload, &r, NULL), CTLP_E_KIND);
	cr_expect_eq(ctlproto_req_decode(&verb, payload, &r, NULL), CTLP_E_VERB);
}

/* ---- encoding ----------------------------------------------------------- */

Test(ctlproto, encode_round_trip)
{
	const struct ctlproto_kv kv[] = {{CTLK_PREFIX, "2001:2::/48"}, {CTLK_TTL, "90m"}};
	uint8_t buf[256];
	struct ctlproto_hdr h;
	struct ctlproto_req r;
	long len = ctlproto_req_encode(buf, sizeof(buf), CTLV_BLOCK, kv, 2, NULL);

	cr_assert_gt(len, 0);
	cr_assert_eq(ctlproto_frame_check(buf, (size_t)len, 'Q', CTLPROTO_REQ_MAX, &h), len);
	cr_assert_eq(ctlproto_req_decode(&h, buf + CTLPROTO_HDR_LEN, &r, NULL), CTLP_OK);
	cr_expect_eq(r.verb, CTLV_BLOCK);
	cr_expect_str_eq(r.arg[CTLK_PREFIX], "2001:2::/48");
	cr_expect_eq(r.ttl, 5400u);
}

struct enc_case {
	const char *name;
	enum ctlproto_verb verb;
	struct ctlproto_kv kv[3];
	unsigned n;
	long expect_err;	/* 0 = success */
};

static const struct enc_case enc_cases[] = {
	{"lookup", CTLV_LOOKUP, {{CTLK_ADDR, "a@b.test"}}, 1, 0},
	{"lookup bad address", CTLV_LOOKUP, {{CTLK_ADDR, "a@"}}, 1, CTLP_E_VALUE},
	{"lookup without address", CTLV_LOOKUP, {{0}}, 0, CTLP_E_MISSING},
	{"del with a verdict", CTLV_DEL, {{CTLK_ADDR, "a@b.test"}, {CTLK_VERDICT, "valid"}}, 2,
	 CTLP_E_KEY},
	{"verb 0", CTLV_NONE, {{0}}, 0, CTLP_E_VERB},
	{"set ttl 1x", CTLV_SET, {{CTLK_ADDR, "a@b.test"}, {CTLK_VERDICT, "valid"},
				  {CTLK_TTL, "1x"}}, 3, CTLP_E_VALUE},
};

Test(ctlproto, encode_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(enc_cases); i++) {
		const struct enc_case *c = &enc_cases[i];
		uint8_t buf[256];
		long len = ctlproto_req_encode(buf, sizeof(buf), c->verb, c->kv, c->n, NULL);
		if (c->expect_err)
			cr_expect_eq(len, c->expect_err, "%s: got %ld", c->name, len);
		else
			cr_expect_gt(len, CTLPROTO_HDR_LEN, "%s: got %ld", c->name, len);
	}
}

Test(ctlproto, encode_refuses_oversized_value)
{
	char big[CTLPROTO_VAL_MAX + 2];
	const struct ctlproto_kv kv[] = {{CTLK_ADDR, big}};
	uint8_t buf[CTLPROTO_HDR_LEN + CTLPROTO_REQ_MAX];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_expect_eq(ctlproto_req_encode(buf, sizeof(buf), CTLV_LOOKUP, kv, 1, NULL), CTLP_E_VALUE);
	cr_expect_eq(ctlproto_req_encode(buf, 20, CTLV_LOOKUP,
					 (struct ctlproto_kv[]){{CTLK_ADDR, "a@b.test"}}, 1, NULL),
		     CTLP_E_NOSPACE);
}

/* ---- answers -------------------------------------------------------------- */

Test(ctlproto, error_answer_is_escaped_json)
{
	uint8_t buf[512];
	struct ctlproto_hdr h;
	long n = ctlproto_err_answer(buf, sizeof(buf), CTLS_DENIED, "uid \"7\"\nrefused\\");

	cr_assert_gt(n, CTLPROTO_HDR_LEN);
	cr_assert_eq(ctlproto_frame_check(buf, (size_t)n, 'A', CTLPROTO_RESP_MAX, &h), n);
	cr_expect_eq(h.code, CTLS_DENIED);
	cr_expect_eq(ctlproto_ans_check(buf + CTLPROTO_HDR_LEN, h.len), CTLP_OK);
	buf[n] = '\0';
	cr_expect_str_eq((char *)buf + CTLPROTO_HDR_LEN,
			 "{\"status\":\"denied\",\"error\":\"uid \\\"7\\\"\\nrefused\\\\\"}");
	/* other control characters as \u00XX */
	n = ctlproto_err_answer(buf, sizeof(buf), CTLS_FAILED, "a\001b");
	cr_assert_gt(n, CTLPROTO_HDR_LEN);
	buf[n] = '\0';
	cr_expect_str_eq((char *)buf + CTLPROTO_HDR_LEN,
			 "{\"status\":\"failed\",\"error\":\"a\\u0001b\"}");
	cr_expect_eq(ctlproto_err_answer(buf, 40, CTLS_DENIED, "x"), CTLP_E_NOSPACE);
}

struct ans_case {
	const char *name;
	const char *text;
	size_t len;
	int expect;
};

static const struct ans_case ans_cases[] = {
	{"empty object", "{}", 2, CTLP_OK},
	{"object with newline", " {\"a\":1}\n", 9, CTLP_OK},
	{"array", "[]", 2, CTLP_E_PAYLOAD},
	{"empty", "", 0, CTLP_E_PAYLOAD},
	{"NUL inside", "{\0}", 3, CTLP_E_PAYLOAD},
	{"unterminated", "{\"a\":1", 6, CTLP_E_PAYLOAD},
};

Test(ctlproto, answer_check_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(ans_cases); i++) {
		const struct ans_case *c = &ans_cases[i];
		cr_expect_eq(ctlproto_ans_check((const uint8_t *)c->text, (uint32_t)c->len),
			     c->expect, "%s", c->name);
	}
}

/* ---- value parsers -------------------------------------------------------- */

struct ttl_case {
	const char *in;
	int rc;
	uint32_t secs;
};

static const struct ttl_case ttl_cases[] = {
	{"30", CTLP_OK, 30},	    {"30s", CTLP_OK, 30},   {"5m", CTLP_OK, 300},
	{"2h", CTLP_OK, 7200},	    {"1d", CTLP_OK, 86400}, {"1w", CTLP_OK, 604800},
	{"315360000", CTLP_OK, 315360000},
	{"0", CTLP_E_VALUE, 0},	    {"", CTLP_E_VALUE, 0},  {"1x", CTLP_E_VALUE, 0},
	{"1mm", CTLP_E_VALUE, 0},   {"-1", CTLP_E_VALUE, 0}, {"m", CTLP_E_VALUE, 0},
	{"315360001", CTLP_E_VALUE, 0}, {"99999999999999999999", CTLP_E_VALUE, 0},
	{"3651d", CTLP_E_VALUE, 0},
};

Test(ctlproto, ttl_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(ttl_cases); i++) {
		uint32_t s = 0;
		int rc = ctlproto_parse_ttl(ttl_cases[i].in, &s);
		cr_expect_eq(rc, ttl_cases[i].rc, "ttl '%s': rc %d", ttl_cases[i].in, rc);
		if (rc == CTLP_OK)
			cr_expect_eq(s, ttl_cases[i].secs, "ttl '%s': %u", ttl_cases[i].in, s);
	}
}

struct prefix_case {
	const char *in;
	int rc, family;
	unsigned plen;
};

static const struct prefix_case prefix_cases[] = {
	{"198.18.0.0/15", CTLP_OK, AF_INET, 15},
	{"198.18.3.4", CTLP_OK, AF_INET, 32},
	{"0.0.0.0/0", CTLP_OK, AF_INET, 0},
	{"2001:2::/48", CTLP_OK, AF_INET6, 48},
	{"2001:2::1", CTLP_OK, AF_INET6, 128},
	{"198.18.0.0/33", CTLP_E_VALUE, 0, 0},
	{"198.18.0.0/a", CTLP_E_VALUE, 0, 0},
	{"198.18.0.0/8", CTLP_E_VALUE, 0, 0},	/* host bits */
	{"2001:2::/8", CTLP_E_VALUE, 0, 0},	/* host bits */
	{"/8", CTLP_E_VALUE, 0, 0},
	{"198.18.0", CTLP_E_VALUE, 0, 0},
};

Test(ctlproto, prefix_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(prefix_cases); i++) {
		const struct prefix_case *c = &prefix_cases[i];
		uint8_t a[16];
		int fam = 0;
		unsigned plen = 0;
		int rc = ctlproto_parse_prefix(c->in, &fam, a, &plen);
		cr_expect_eq(rc, c->rc, "prefix '%s': rc %d", c->in, rc);
		if (rc == CTLP_OK) {
			cr_expect_eq(fam, c->family, "prefix '%s': family", c->in);
			cr_expect_eq(plen, c->plen, "prefix '%s': len %u", c->in, plen);
		}
	}
}

Test(ctlproto, names)
{
	cr_expect_eq(ctlproto_verb_by_name("lookup"), CTLV_LOOKUP);
	cr_expect_eq(ctlproto_verb_by_name("blocks"), CTLV_BLOCKS);
	cr_expect_eq(ctlproto_verb_by_name("nonsense"), CTLV_NONE);
	cr_expect_str_eq(ctlproto_verb_name(CTLV_FLUSH), "flush");
	cr_expect_str_eq(ctlproto_status_name(CTLS_NOTFOUND), "notfound");
	cr_expect_str_eq(ctlproto_status_name(999), "unknown");
	for (int v = CTLV_NONE + 1; v < CTLV__MAX; v++)
		cr_expect_eq(ctlproto_verb_by_name(ctlproto_verb_name(v)), v);
}
