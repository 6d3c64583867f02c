/*
 * smtp.c — SMTP command classification and the resumable reply parser
 * (see smtp.h).  Runs on the flow's worker lcore.
 */
#include <string.h>

#include "smtp.h"

static uint8_t up(uint8_t c)
{
	return (c >= 'a' && c <= 'z') ? (uint8_t)(c - 32) : c;
}

/* Case-insensitive compare of len bytes of b with the upper-case word w. */
static int word_eq(const uint8_t *b, size_t len, const char *w, size_t wlen)
{
	if (len < wlen)
		return 0;
	for (size_t i = 0; i < wlen; i++)
		if (up(b[i]) != (uint8_t)w[i])
			return 0;
	return 1;
}

struct verb_ent {
	const char *name;
	uint8_t len;
	enum smtp_verb verb;
	const char *kw;	/* MAIL/RCPT: the keyword and colon that must follow */
	uint8_t kw_len;
};

static const struct verb_ent verbs[] = {
	{"HELO", 4, SMTP_V_HELO, NULL, 0},
	{"EHLO", 4, SMTP_V_EHLO, NULL, 0},
	{"MAIL", 4, SMTP_V_MAIL, "FROM:", 5},
	{"RCPT", 4, SMTP_V_RCPT, "TO:", 3},
	{"DATA", 4, SMTP_V_DATA, NULL, 0},
	{"BDAT", 4, SMTP_V_BDAT, NULL, 0},
	{"RSET", 4, SMTP_V_RSET, NULL, 0},
	{"QUIT", 4, SMTP_V_QUIT, NULL, 0},
	{"STARTTLS", 8, SMTP_V_STARTTLS, NULL, 0},
	{"AUTH", 4, SMTP_V_AUTH, NULL, 0},
	{"NOOP", 4, SMTP_V_NOOP, NULL, 0},
};

static const char *const verb_names[SMTP_V__COUNT] = {
	[SMTP_V_OTHER] = "other", [SMTP_V_HELO] = "HELO",   [SMTP_V_EHLO] = "EHLO",
	[SMTP_V_MAIL] = "MAIL",	  [SMTP_V_RCPT] = "RCPT",   [SMTP_V_DATA] = "DATA",
	[SMTP_V_BDAT] = "BDAT",	  [SMTP_V_RSET] = "RSET",   [SMTP_V_QUIT] = "QUIT",
	[SMTP_V_STARTTLS] = "STARTTLS", [SMTP_V_AUTH] = "AUTH", [SMTP_V_NOOP] = "NOOP",
};

const char *smtp_verb_name(enum smtp_verb v)
{
	return (unsigned)v < SMTP_V__COUNT ? verb_names[v] : "?";
}

/* Whitespace as the most lenient common server reads a command line
 * (Postfix's smtpd splits on any of these). */
static int ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void parse_bdat(const uint8_t *b, size_t len, struct smtp_cmd *c)
{
	size_t i = c->arg_off;
	uint64_t n = 0;
	unsigned digits = 0;
	for (; i < len && b[i] >= '0' && b[i] <= '9'; i++, digits++) {
		n = n * 10 + (uint64_t)(b[i] - '0');
		if (n > UINT32_MAX) {
			c->bad = 1; /* chunks over 4 GiB are not tracked */
			return;
		}
	}
	if (!digits) {
		c->bad = 1;
		return;
	}
	c->bdat_size = (uint32_t)n;
	while (i < len && ws(b[i]))
		i++;
	if (i < len) {
		if (len - i == 4 && word_eq(b + i, 4, "LAST", 4))
			c->bdat_last = 1;
		else
			c->bad = 1;
	}
}

void smtp_cmd_parse(const uint8_t *line, size_t len, struct smtp_cmd *out)
{
	size_t i0 = 0;
	memset(out, 0, sizeof(*out));
	out->verb = SMTP_V_OTHER;
	while (len && ws(line[len - 1]))
		len--; /* trailing whitespace is no part of the argument */
	while (i0 < len && ws(line[i0]))
		i0++; /* nor is leading whitespace a part of the verb */
	for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++) {
		const struct verb_ent *v = &verbs[k];
		size_t i = i0 + v->len;
		if (!word_eq(line + i0, len - i0, v->name, v->len))
			continue;
		if (i < len && !ws(line[i]))
			continue; /* a longer word: not this verb */
		out->verb = v->verb;
		while (i < len && ws(line[i]))
			i++;
		if (v->kw) {
			/* RFC 5321 has no space before or after the colon; servers
			 * accept any whitespace there */
			if (!word_eq(line + i, len - i, v->kw, v->kw_len)) {
				out->bad = 1;
				out->arg_off = (uint16_t)len;
				return;
			}
			i += v->kw_len;
			while (i < len && ws(line[i]))
				i++;
		}
		out->arg_off = (uint16_t)i;
		out->arg_len = (uint16_t)(len - i);
		if (v->verb == SMTP_V_BDAT)
			parse_bdat(line, len, out);
		return;
	}
}

/* ---- replies ---- */

enum {
	RS_D0 = 0,	/* at the start of a line */
	RS_D1,
	RS_D2,
	RS_SEP,		/* after three digits */
	RS_TEXT,	/* in the text; keyword being captured */
	RS_REST,	/* in the text; keyword complete or abandoned */
	RS_CR,		/* saw CR in the text */
};

void smtp_reply_reset(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

int smtp_reply_idle(const struct smtp_reply *r)
{
	return r->state == RS_D0 && r->code == 0 && !r->bad;
}

struct kw_ent {
	const char *w;
	uint8_t len;
	uint8_t cap;
};

static const struct kw_ent keywords[] = {
	{"PIPELINING", 10, SMTP_CAP_PIPELINING},
	{"CHUNKING", 8, SMTP_CAP_CHUNKING},
	{"STARTTLS", 8, SMTP_CAP_STARTTLS},
	{"SMTPUTF8", 8, SMTP_CAP_SMTPUTF8},
};

static void line_done(struct smtp_reply *r)
{
	for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++)
		if (r->kw_len == keywords[k].len &&
		    memcmp(r->kw, keywords[k].w, keywords[k].len) == 0)
			r->caps |= keywords[k].cap;
	r->kw_len = 0;
}

size_t smtp_reply_feed(struct smtp_reply *r, const uint8_t *b, size_t len, int *done)
{
	size_t i = 0;
	*done = 0;
	while (i < len) {
		uint8_t c = b[i++];
		switch (r->state) {
		case RS_D0:
		case RS_D1:
		case RS_D2:
			if (c >= '0' && c <= '9') {
				r->line_code = (uint16_t)(r->line_code * 10 + (c - '0'));
				r->state++;
				break;
			}
			r->bad = 1;
			r->last = 1;
			r->state = c == '\n' ? RS_D0 : RS_REST;
			if (c == '\n')
				goto line_end;
			break;
		case RS_SEP:
			if (!r->code)
				r->code = r->line_code;
			r->line_code = 0;
			if (c == '-') {
				r->last = 0;
				r->state = RS_TEXT;
			} else if (c == ' ') {
				r->last = 1;
				r->state = RS_TEXT;
			} else if (c == '\r') {
				r->last = 1;
				r->state = RS_CR;
			} else if (c == '\n') {
				r->last = 1;
				goto line_end;
			} else {
				r->bad = 1;
				r->last = 1;
				r->state = RS_REST;
			}
			break;
		case RS_TEXT:
			if (c == '\r') {
				r->state = RS_CR;
			} else if (c == '\n') {
				goto line_end;
			} else if (c == ' ' || r->kw_len == SMTP_REPLY_KW_MAX) {
				r->state = RS_REST;
			} else {
				r->kw[r->kw_len++] = (char)up(c);
			}
			break;
		case RS_REST:
			if (c == '\r')
				r->state = RS_CR;
			else if (c == '\n')
				goto line_end;
			break;
		case RS_CR:
			if (c == '\n')
				goto line_end;
			if (c != '\r')
				r->state = RS_REST;
			break;
		}
		continue;
	line_end:
		line_done(r);
		r->state = RS_D0;
		r->line_code = 0;
		if (r->last) {
			*done = 1;
			return i;
		}
	}
	return i;
}
