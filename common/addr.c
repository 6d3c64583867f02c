/*
 * addr.c — parsing of the path after "RCPT TO:" / "MAIL FROM:" (RFC 5321
 * 4.1.2, 4.1.3, 4.5.3.1, extended for SMTPUTF8 by RFC 6531 3.3) and the
 * canonical "local@domain" text that recipient-table keys are hashed from.
 *
 * Threads: any.  Data-plane lcores call addr_parse_path() and
 * addr_canonical() for every RCPT command; rcptgated and rcptctl call
 * addr_normalize() on configured lists and command-line input.  Pure
 * functions over caller buffers: no allocation, no global mutable state.
 *
 * Written by hand: libc has no RFC 5321 path parser, and the RFC 5322
 * address parsers packaged for Debian allocate and accept comments, folding
 * and obsolete forms that are not valid in an SMTP command.
 *
 * The input is network bytes and is not NUL-terminated: it is read only
 * through a cursor checked against its end, never with str* functions.
 * Parsing is one forward pass; each grammar element is a small scanner that
 * advances the cursor over what it accepts and stops at the first byte it
 * does not, and the caller decides from that byte what comes next.  Any
 * input that does not match the grammar is an error: nothing is repaired.
 *
 * Choices where the RFCs leave room (also listed in addr.h):
 * - Limits: local part (as written, quotes included) RG_LOCAL_MAX, domain
 *   (as written) RG_DOMAIN_MAX, each ASCII label ADDR_LABEL_MAX (RFC 1035),
 *   path including the angle brackets RG_PATH_MAX.  The component limits
 *   are checked as each component ends, the path limit at the closing '>'.
 * - Bytes >= 0x80 must form well-formed UTF-8 (RFC 3629); they are accepted
 *   in atoms, quoted strings, domain labels and ESMTP parameter values.
 * - An empty quoted local part ("") is refused.
 * - Address literals: IPv4 and "IPv6:" forms only; a General-address-literal
 *   needs an IANA-registered tag and none but IPv6 exists, so others are
 *   refused.  "::" stands for at least two zero groups (4.1.3).
 * - ESMTP parameters after the path must match esmtp-param and be separated
 *   from the path and each other by spaces; their content is ignored.
 */
#include "addr.h"

#include <string.h>

/* RFC 1035 2.3.4; applied to ASCII labels only (a U-label's limit is on its
 * A-label form, which differs from its UTF-8 length). */
#define ADDR_LABEL_MAX 63u
/* RFC 5321 4.1.3: Snum = 1*3DIGIT of value 0..255; IPv6-hex = 1*4HEXDIG. */
#define ADDR_SNUM_DIGITS 3u
#define ADDR_SNUM_MAX 255u
#define ADDR_IPV4_PARTS 4u
#define ADDR_IPV6_HEX_DIGITS 4u
#define ADDR_IPV6_GROUPS 8u
#define ADDR_IPV6_COMP_GROUPS 6u /* at most, beside "::" (IPv4 counts as 2) */
#define ADDR_IPV6_TAG "ipv6:"
#define ADDR_IPV6_TAG_LEN 5u

#define ADDR_POSTMASTER "postmaster"
#define ADDR_POSTMASTER_LEN 10u

/* Byte classes of the ASCII range; bytes >= 0x80 have none and are checked
 * as UTF-8 sequences where the grammar admits them. */
enum {
	C_ALNUM = 1u << 0, /* Let-dig */
	C_ATEXT = 1u << 1, /* RFC 5322 atext */
	C_PARAMV = 1u << 2,/* esmtp-value: %d33-60 / %d62-126 */
	C_HEX = 1u << 3,
	C_DIGIT = 1u << 4,
	C_CTRL = 1u << 5,  /* %d0-31 / %d127: never valid anywhere */
};

#define CL_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define CL_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define CL_ASPECIAL(c)                                                                \
	((c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' ||        \
	 (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '/' ||       \
	 (c) == '=' || (c) == '?' || (c) == '^' || (c) == '_' || (c) == '`' ||        \
	 (c) == '{' || (c) == '|' || (c) == '}' || (c) == '~')
#define CL_HEXLETTER(c) (((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define CL(c)                                                                         \
	((CL_ALPHA(c) || CL_DIGIT(c) ? C_ALNUM : 0) |                                 \
	 (CL_ALPHA(c) || CL_DIGIT(c) || CL_ASPECIAL(c) ? C_ATEXT : 0) |               \
	 ((c) >= 33 && (c) <= 126 && (c) != '=' ? C_PARAMV : 0) |                     \
	 (CL_DIGIT(c) || CL_HEXLETTER(c) ? C_HEX : 0) | (CL_DIGIT(c) ? C_DIGIT : 0) | \
	 ((c) < 32 || (c) == 127 ? C_CTRL : 0))
#define CL4(c) CL(c), CL((c) + 1), CL((c) + 2), CL((c) + 3)
#define CL16(c) CL4(c), CL4((c) + 4), CL4((c) + 8), CL4((c) + 12)
#define CL64(c) CL16(c), CL16((c) + 16), CL16((c) + 32), CL16((c) + 48)

static const uint8_t addr_cls[256] = { CL64(0), CL64(64) };

/* Read position over [p, end) and the flags gathered so far. */
struct cur {
	const uint8_t *p;
	const uint8_t *end;
	unsigned flags;
};

static inline bool cur_at(const struct cur *c, uint8_t b)
{
	return c->p < c->end && *c->p == b;
}

static inline uint8_t ascii_lower(uint8_t b)
{
	return (b >= 'A' && b <= 'Z') ? (uint8_t)(b + ('a' - 'A')) : b;
}

/* The error for an unexpected byte at the cursor: a control character or
 * NUL is reported as such wherever it appears, anything else as err. */
static int stop_err(const struct cur *c, int err)
{
	if (c->p < c->end && (addr_cls[*c->p] & C_CTRL))
		return ADDR_E_CTRL;
	return err;
}

/* Length of the well-formed UTF-8 sequence of 2..4 bytes at p (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const uint8_t *p, const uint8_t *end)
{
	const uint8_t b = p[0];
	uint8_t lo = 0x80, hi = 0xbf;
	size_t n;

	if (b >= 0xc2 && b <= 0xdf) {
		n = 2;
	} else if (b >= 0xe0 && b <= 0xef) {
		n = 3;
		if (b == 0xe0)
			lo = 0xa0;
		else if (b == 0xed)
			hi = 0x9f;
	} else if (b >= 0xf0 && b <= 0xf4) {
		n = 4;
		if (b == 0xf0)
			lo = 0x90;
		else if (b == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* Consumes one UTF-8 sequence at the cursor (which holds a byte >= 0x80);
 * returns false if it is malformed. */
static bool take_utf8(struct cur *c)
{
	const size_t n = utf8_len(c->p, c->end);

	if (n == 0)
		return false;
	c->p += n;
	c->flags |= ADDR_F_UTF8;
	return true;
}

/* Dot-string = Atom *("." Atom), Atom = 1*atext (RFC 6531: atext =/ UTF8-non-ascii). */
static int scan_dot_string(struct cur *c)
{
	for (;;) {
		const uint8_t *atom = c->p;

		while (c->p < c->end) {
			const uint8_t b = *c->p;

			if (b < 0x80) {
				if (!(addr_cls[b] & C_ATEXT))
					break;
				c->p++;
			} else if (!take_utf8(c)) {
				return ADDR_E_LOCAL;
			}
		}
		if (c->p == atom)	/* empty atom: leading, trailing or double dot */
			return stop_err(c, ADDR_E_LOCAL);
		if (!cur_at(c, '.'))
			return ADDR_OK;
		c->p++;
	}
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE; qtextSMTP is printable ASCII
 * but '"' and '\' (plus UTF8-non-ascii), quoted-pairSMTP is '\' %d32-126. */
static int scan_quoted(struct cur *c)
{
	size_t content = 0;

	c->p++;	/* opening DQUOTE */
	while (c->p < c->end) {
		const uint8_t b = *c->p;

		if (b == '"') {
			c->p++;
			return content ? ADDR_OK : ADDR_E_LOCAL;
		}
		if (b == '\\') {
			c->p++;
			if (c->p == c->end)
				break;
			if (*c->p >= 0x80)
				return ADDR_E_LOCAL;
			if (addr_cls[*c->p] & C_CTRL)
				return ADDR_E_CTRL;
			c->p++;
		} else if (b < 0x80) {
			if (addr_cls[b] & C_CTRL)
				return ADDR_E_CTRL;
			c->p++;
		} else if (!take_utf8(c)) {
			return ADDR_E_LOCAL;
		}
		content++;
	}
	return ADDR_E_LOCAL;	/* no closing quote */
}

/* Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str]
 * (RFC 6531: sub-domain =/ U-label, taken as letters here). */
static int scan_domain(struct cur *c)
{
	const uint8_t *const start = c->p;

	for (;;) {
		const uint8_t *label = c->p;
		bool ascii = true;
		size_t n;

		while (c->p < c->end) {
			const uint8_t b = *c->p;

			if (b < 0x80) {
				if (!(addr_cls[b] & C_ALNUM) && b != '-')
					break;
				c->p++;
			} else if (take_utf8(c)) {
				ascii = false;
			} else {
				return ADDR_E_DOMAIN;
			}
		}
		n = (size_t)(c->p - label);
		if (n == 0)	/* empty label: leading, trailing or double dot */
			return stop_err(c, ADDR_E_DOMAIN);
		if (label[0] == '-' || c->p[-1] == '-')
			return ADDR_E_DOMAIN;
		if (ascii && n > ADDR_LABEL_MAX)
			return ADDR_E_DOMAIN;
		if (!cur_at(c, '.'))
			break;
		c->p++;
	}
	if ((size_t)(c->p - start) > RG_DOMAIN_MAX)
		return ADDR_E_DOMAIN_TOOLONG;
	return ADDR_OK;
}

/* Snum = 1*3DIGIT, value 0..255. */
static int scan_snum(struct cur *c)
{
	unsigned v = 0, n = 0;

	while (c->p < c->end && (addr_cls[*c->p] & C_DIGIT)) {
		if (++n > ADDR_SNUM_DIGITS)
			return ADDR_E_DOMAIN;
		v = v * 10 + (unsigned)(*c->p - '0');
		c->p++;
	}
	if (n == 0)
		return stop_err(c, ADDR_E_DOMAIN);
	return v > ADDR_SNUM_MAX ? ADDR_E_DOMAIN : ADDR_OK;
}

/* IPv4-address-literal = Snum 3("." Snum) */
static int scan_ipv4(struct cur *c)
{
	for (unsigned i = 0; i < ADDR_IPV4_PARTS; i++) {
		int rc;

		if (i > 0) {
			if (!cur_at(c, '.'))
				return stop_err(c, ADDR_E_DOMAIN);
			c->p++;
		}
		rc = scan_snum(c);
		if (rc != ADDR_OK)
			return rc;
	}
	return ADDR_OK;
}

/* IPv6-addr (RFC 5321 4.1.3): full, compressed, and both with a trailing
 * IPv4 address, which counts as two groups.  Stops before the ']'. */
static int scan_ipv6(struct cur *c)
{
	unsigned groups = 0;
	bool comp = false;

	if (c->end - c->p >= 2 && c->p[0] == ':' && c->p[1] == ':') {
		comp = true;
		c->p += 2;
		if (cur_at(c, ']'))
			return ADDR_OK;
	}
	for (;;) {
		const uint8_t *g = c->p;
		unsigned h = 0;

		while (c->p < c->end && (addr_cls[*c->p] & C_HEX)) {
			c->p++;
			h++;
		}
		if (cur_at(c, '.')) {	/* the group was the start of an IPv4 tail */
			int rc;

			c->p = g;
			rc = scan_ipv4(c);
			if (rc != ADDR_OK)
				return rc;
			groups += 2;
			break;
		}
		if (h == 0)
			return stop_err(c, ADDR_E_DOMAIN);
		if (h > ADDR_IPV6_HEX_DIGITS || ++groups > ADDR_IPV6_GROUPS)
			return ADDR_E_DOMAIN;
		if (!cur_at(c, ':'))
			break;
		c->p++;
		if (cur_at(c, ':')) {
			if (comp)
				return ADDR_E_DOMAIN;
			comp = true;
			c->p++;
			if (cur_at(c, ']'))
				break;
		}
	}
	if (comp ? groups > ADDR_IPV6_COMP_GROUPS : groups != ADDR_IPV6_GROUPS)
		return ADDR_E_DOMAIN;
	return ADDR_OK;
}

/* address-literal = "[" ( IPv4-address-literal / "IPv6:" IPv6-addr ) "]";
 * the tag is case-insensitive like every ABNF literal. */
static int scan_literal(struct cur *c)
{
	int rc;
	bool v6 = (size_t)(c->end - c->p) > ADDR_IPV6_TAG_LEN;

	c->p++;	/* '[' */
	for (unsigned i = 0; v6 && i < ADDR_IPV6_TAG_LEN; i++)
		v6 = ascii_lower(c->p[i]) == (uint8_t)ADDR_IPV6_TAG[i];
	if (v6) {
		c->p += ADDR_IPV6_TAG_LEN;
		rc = scan_ipv6(c);
	} else {
		rc = scan_ipv4(c);
	}
	if (rc != ADDR_OK)
		return rc;
	if (!cur_at(c, ']'))
		return stop_err(c, ADDR_E_DOMAIN);
	c->p++;
	c->flags |= ADDR_F_LITERAL;
	return ADDR_OK;
}

/* A-d-l ":" where A-d-l = At-domain *("," At-domain), At-domain = "@" Domain.
 * Dropped from the result: RFC 5321 4.1.1.3 and appendix C. */
static int scan_route(struct cur *c)
{
	for (;;) {
		int rc;

		if (!cur_at(c, '@'))
			return stop_err(c, ADDR_E_ROUTE);
		c->p++;
		rc = scan_domain(c);
		if (rc != ADDR_OK)
			return rc == ADDR_E_CTRL ? rc : ADDR_E_ROUTE;
		if (cur_at(c, ':')) {
			c->p++;
			c->flags |= ADDR_F_ROUTE;
			return ADDR_OK;
		}
		if (!cur_at(c, ','))
			return stop_err(c, ADDR_E_ROUTE);
		c->p++;
	}
}

static bool is_postmaster(const uint8_t *s, size_t n)
{
	if (n != ADDR_POSTMASTER_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(s[i]) != (uint8_t)ADDR_POSTMASTER[i])
			return false;
	return true;
}

/* Mailbox = Local-part "@" ( Domain / address-literal ), or "postmaster"
 * alone (4.1.1.3).  In a path it ends at '>'; a bare address ends at the end
 * of the input or a space.  The cursor is left on that terminator. */
static int scan_mailbox(struct cur *c, struct addr_parsed *out, bool bracketed)
{
	const uint8_t *const local = c->p;
	const uint8_t *domain;
	int rc;

	if (cur_at(c, '"')) {
		c->flags |= ADDR_F_QUOTED;
		rc = scan_quoted(c);
	} else {
		rc = scan_dot_string(c);
	}
	if (rc != ADDR_OK)
		return rc;
	out->local = (const char *)local;
	out->local_len = (size_t)(c->p - local);
	if (out->local_len > RG_LOCAL_MAX)
		return ADDR_E_LOCAL_TOOLONG;

	if (!cur_at(c, '@')) {
		const bool at_end = bracketed ? cur_at(c, '>') : (c->p == c->end || *c->p == ' ');

		if (at_end) {
			if (!(c->flags & (ADDR_F_QUOTED | ADDR_F_ROUTE)) &&
			    is_postmaster(local, out->local_len)) {
				c->flags |= ADDR_F_POSTMASTER;
				return ADDR_OK;
			}
			return ADDR_E_NOAT;
		}
		if (c->p == c->end)
			return ADDR_E_NOBRACKET;
		return stop_err(c, ADDR_E_LOCAL);
	}
	c->p++;

	domain = c->p;
	rc = cur_at(c, '[') ? scan_literal(c) : scan_domain(c);
	if (rc != ADDR_OK)
		return rc;
	out->domain = (const char *)domain;
	out->domain_len = (size_t)(c->p - domain);
	if (out->domain_len > RG_DOMAIN_MAX)
		return ADDR_E_DOMAIN_TOOLONG;
	if (bracketed) {
		if (c->p == c->end)
			return ADDR_E_NOBRACKET;
		if (*c->p != '>')
			return stop_err(c, ADDR_E_DOMAIN);
	} else if (c->p != c->end && *c->p != ' ') {
		return stop_err(c, ADDR_E_DOMAIN);
	}
	return ADDR_OK;
}

/* Mail-parameters = esmtp-param *(SP esmtp-param) after at least one space;
 * esmtp-param = esmtp-keyword ["=" esmtp-value].  Repeated and trailing
 * spaces are tolerated. */
static int scan_params(struct cur *c)
{
	if (c->p == c->end)
		return ADDR_OK;
	if (*c->p != ' ')
		return stop_err(c, ADDR_E_PARAM);
	for (;;) {
		while (cur_at(c, ' '))
			c->p++;
		if (c->p == c->end)
			return ADDR_OK;
		if (!(addr_cls[*c->p] & C_ALNUM))
			return stop_err(c, ADDR_E_PARAM);
		c->p++;
		while (c->p < c->end && ((addr_cls[*c->p] & C_ALNUM) || *c->p == '-'))
			c->p++;
		if (cur_at(c, '=')) {
			const uint8_t *value = ++c->p;

			while (c->p < c->end) {
				const uint8_t b = *c->p;

				if (b < 0x80) {
					if (!(addr_cls[b] & C_PARAMV))
						break;
					c->p++;
				} else {
					const size_t n = utf8_len(c->p, c->end);

					if (n == 0)
						return ADDR_E_PARAM;
					c->p += n;
				}
			}
			if (c->p == value)
				return stop_err(c, ADDR_E_PARAM);
		}
		if (c->p < c->end && *c->p != ' ')
			return stop_err(c, ADDR_E_PARAM);
	}
}

static int parse_path(struct cur *c, struct addr_parsed *out)
{
	const uint8_t *open;
	int rc;

	while (cur_at(c, ' '))
		c->p++;
	if (c->p == c->end)
		return ADDR_E_EMPTY;
	if (*c->p != '<')
		return stop_err(c, ADDR_E_NOBRACKET);
	open = c->p++;
	if (c->p == c->end)
		return ADDR_E_NOBRACKET;
	if (*c->p == '>') {
		c->flags |= ADDR_F_NULL;
	} else {
		if (*c->p == '@') {
			rc = scan_route(c);
			if (rc != ADDR_OK)
				return rc;
		}
		rc = scan_mailbox(c, out, true);
		if (rc != ADDR_OK)
			return rc;
	}
	c->p++;	/* '>' */
	out->path_len = (size_t)(c->p - open);
	if (out->path_len > RG_PATH_MAX)
		return ADDR_E_TOOLONG;
	rc = scan_params(c);
	if (rc != ADDR_OK)
		return rc;
	out->flags = c->flags;
	return ADDR_OK;
}

int addr_parse_path(const char *buf, size_t len, struct addr_parsed *out)
{
	struct cur c = { (const uint8_t *)buf, (const uint8_t *)buf + len, 0 };
	int rc;

	*out = (struct addr_parsed){ 0 };
	rc = parse_path(&c, out);
	if (rc != ADDR_OK)
		*out = (struct addr_parsed){ 0 };
	return rc;
}

/* Copies n bytes, lowercasing ASCII letters; other bytes unchanged. */
static void copy_lower(uint8_t *dst, const uint8_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = ascii_lower(src[i]);
}

static void copy_case(uint8_t *dst, const uint8_t *src, size_t n, bool case_sensitive)
{
	if (case_sensitive)
		memcpy(dst, src, n);
	else
		copy_lower(dst, src, n);
}

int addr_domain_lower(const struct addr_parsed *a, char *out, size_t outlen)
{
	if (a->domain_len > RG_DOMAIN_MAX)
		return ADDR_E_DOMAIN_TOOLONG;
	if (outlen < a->domain_len)
		return ADDR_E_NOSPACE;
	copy_lower((uint8_t *)out, (const uint8_t *)a->domain, a->domain_len);
	return (int)a->domain_len;
}

/* Canonical form of a quoted local part: the content unquoted when it is a
 * dot-atom, else re-quoted with a backslash before '"' and '\' only.  Two
 * passes over the raw text so the output size is known before writing. */
static int canon_quoted(const uint8_t *s, size_t len, bool case_sensitive, uint8_t *out,
			size_t outlen, size_t *outn)
{
	size_t n = 0, esc = 0, need, w = 0;
	bool atom = true, after_dot = true;

	if (len < 2 || s[0] != '"' || s[len - 1] != '"')
		return ADDR_E_LOCAL;
	s++;
	len -= 2;
	for (size_t i = 0; i < len; i++) {
		uint8_t b = s[i];

		if (b == '\\') {
			if (++i == len)
				return ADDR_E_LOCAL;
			b = s[i];
		}
		if (b == '"' || b == '\\') {
			esc++;
			atom = false;
			after_dot = false;
		} else if (b == '.') {
			if (after_dot)
				atom = false;
			after_dot = true;
		} else {
			if (b < 0x80 && !(addr_cls[b] & C_ATEXT))
				atom = false;
			after_dot = false;
		}
		n++;
	}
	if (n == 0)
		return ADDR_E_LOCAL;
	if (after_dot)
		atom = false;
	need = atom ? n : n + esc + 2;
	if (outlen < need)
		return ADDR_E_NOSPACE;

	if (!atom)
		out[w++] = '"';
	for (size_t i = 0; i < len; i++) {
		uint8_t b = s[i];

		if (b == '\\')
			b = s[++i];
		if (b == '"' || b == '\\')
			out[w++] = '\\';
		out[w++] = case_sensitive ? b : ascii_lower(b);
	}
	if (!atom)
		out[w++] = '"';
	*outn = w;
	return ADDR_OK;
}

int addr_canonical(const struct addr_parsed *a, bool case_sensitive, char *out, size_t outlen)
{
	uint8_t *o = (uint8_t *)out;
	size_t n;

	if (a->flags & ADDR_F_NULL)
		return 0;
	if (a->flags & ADDR_F_POSTMASTER) {
		if (outlen < ADDR_POSTMASTER_LEN)
			return ADDR_E_NOSPACE;
		memcpy(out, ADDR_POSTMASTER, ADDR_POSTMASTER_LEN);
		return (int)ADDR_POSTMASTER_LEN;
	}
	if (a->local_len == 0)
		return ADDR_E_LOCAL;
	if (a->domain_len == 0)
		return ADDR_E_DOMAIN;
	if (a->local_len > RG_LOCAL_MAX)
		return ADDR_E_LOCAL_TOOLONG;
	if (a->domain_len > RG_DOMAIN_MAX)
		return ADDR_E_DOMAIN_TOOLONG;

	if (a->flags & ADDR_F_QUOTED) {
		const int rc = canon_quoted((const uint8_t *)a->local, a->local_len, case_sensitive,
					    o, outlen, &n);

		if (rc != ADDR_OK)
			return rc;
	} else {
		if (outlen < a->local_len)
			return ADDR_E_NOSPACE;
		copy_case(o, (const uint8_t *)a->local, a->local_len, case_sensitive);
		n = a->local_len;
	}
	if (outlen - n < 1 + a->domain_len)
		return ADDR_E_NOSPACE;
	o[n++] = '@';
	copy_lower(o + n, (const uint8_t *)a->domain, a->domain_len);
	return (int)(n + a->domain_len);
}

/* A bare "local@domain" (or "postmaster"); it must fit in a path once the
 * angle brackets are added. */
static int parse_bare(struct cur *c, struct addr_parsed *out)
{
	const uint8_t *const start = c->p;
	int rc = scan_mailbox(c, out, false);

	if (rc != ADDR_OK)
		return rc;
	out->path_len = (size_t)(c->p - start) + 2;
	if (out->path_len > RG_PATH_MAX)
		return ADDR_E_TOOLONG;
	out->flags = c->flags;
	return ADDR_OK;
}

int addr_normalize(const char *in, size_t len, bool case_sensitive, char *out, size_t outlen)
{
	struct cur c = { (const uint8_t *)in, (const uint8_t *)in + len, 0 };
	struct addr_parsed a = { 0 };
	int rc;

	while (cur_at(&c, ' '))
		c.p++;
	if (c.p == c.end)
		return ADDR_E_EMPTY;
	if (*c.p == '<') {
		rc = addr_parse_path((const char *)c.p, (size_t)(c.end - c.p), &a);
		if (rc != ADDR_OK)
			return rc;
		c.p += a.path_len;
	} else {
		rc = parse_bare(&c, &a);
		if (rc != ADDR_OK)
			return rc;
	}
	while (cur_at(&c, ' '))
		c.p++;
	if (c.p != c.end)	/* no ESMTP parameters or other text here */
		return stop_err(&c, ADDR_E_PARAM);
	return addr_canonical(&a, case_sensitive, out, outlen);
}

const char *addr_strerror(int err)
{
	switch (err) {
	case ADDR_OK:
		return "ok";
	case ADDR_E_EMPTY:
		return "empty address";
	case ADDR_E_NOBRACKET:
		return "path not enclosed in <>";
	case ADDR_E_TOOLONG:
		return "path too long";
	case ADDR_E_LOCAL_TOOLONG:
		return "local part too long";
	case ADDR_E_DOMAIN_TOOLONG:
		return "domain too long";
	case ADDR_E_LOCAL:
		return "bad local part syntax";
	case ADDR_E_DOMAIN:
		return "bad domain or address literal syntax";
	case ADDR_E_ROUTE:
		return "bad source route";
	case ADDR_E_NOAT:
		return "no '@' in address";
	case ADDR_E_CTRL:
		return "control character or NUL in address";
	case ADDR_E_PARAM:
		return "bad text after the path";
	case ADDR_E_NOSPACE:
		return "output buffer too small";
	default:
		return "unknown address error";
	}
}
