/*
 * smtpreply.c — the resumable SMTP reply parser (see smtpreply.h).
 * Any thread; pure functions over caller state.
 */
#include <string.h>

#include "smtpreply.h"

enum {
	RS_D0 = 0,	/* at the start of a line */
	RS_D1,
	RS_D2,
	RS_SEP,		/* after three digits */
	RS_SEPCR,	/* CR right after the digits */
	RS_TEXT,	/* in the text */
	RS_CR,		/* CR in the text */
	RS_SKIP,	/* in a malformed line */
	RS_SKIPCR,	/* CR in a malformed line */
};

/* enh_st */
enum {
	EH_SPACE = 0,	/* leading spaces */
	EH_DOT1,	/* after the class digit */
	EH_SUBJ,	/* subject digits */
	EH_DET,		/* detail digits */
	EH_OK,		/* token complete */
	EH_NO,		/* none */
};

#define KW_DONE 0x80u	/* keyword complete (a SP followed it) */
#define KW_NONE 0xFFu	/* no keyword on this line */

struct kw_ent {
	char w[SMTP_REPLY_KW_MAX];
	uint8_t len;
	uint8_t cap;
};

static const struct kw_ent keywords[] = {
	{"PIPELINING", 10, SMTP_CAP_PIPELINING},
	{"CHUNKING", 8, SMTP_CAP_CHUNKING},
	{"STARTTLS", 8, SMTP_CAP_STARTTLS},
	{"SMTPUTF8", 8, SMTP_CAP_SMTPUTF8},
	{"AUTH", 4, SMTP_CAP_AUTH},
	{"SIZE", 4, SMTP_CAP_SIZE},
	{"8BITMIME", 8, SMTP_CAP_8BITMIME},
	{"DSN", 3, SMTP_CAP_DSN},
};
_Static_assert(sizeof(keywords) / sizeof(keywords[0]) <= 8, "kw_mask has 8 bits");

static int is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

void smtp_reply_reset(struct smtp_reply *r)
{
	*r = (struct smtp_reply){0};
}

void smtp_reply_text_reset(struct smtp_reply_text *t)
{
	t->len = 0;
	t->first_len = 0;
	if (t->cap)
		t->buf[0] = 0;
}

int smtp_reply_idle(const struct smtp_reply *r)
{
	return r->state == RS_D0 && r->code == 0 && r->flags == 0 && r->len == 0 &&
	       r->lines == 0;
}

static void text_put(struct smtp_reply_text *t, uint8_t c)
{
	if (t && t->len + 1 < t->cap)
		t->buf[t->len++] = (char)c;
}

/* The enhanced status code, over the first line's text bytes. */
static void enh_byte(struct smtp_reply *r, uint8_t c)
{
	uint8_t n = 0;
	while (n < SMTP_REPLY_ENH_MAX && r->enh[n])
		n++;
	switch (r->enh_st) {
	case EH_SPACE:
		if (c == ' ')
			return;
		if (c == (uint8_t)('0' + r->code / 100)) {
			r->enh[n] = (char)c;
			r->enh_st = EH_DOT1;
			return;
		}
		break;
	case EH_DOT1:
		if (c == '.') {
			r->enh[n] = '.';
			r->enh_st = EH_SUBJ;
			return;
		}
		break;
	case EH_SUBJ:
	case EH_DET: {
		uint8_t digits = 0; /* of the current part */
		while (digits < n && r->enh[n - 1 - digits] != '.')
			digits++;
		if (is_digit(c) && digits < 3) {
			r->enh[n] = (char)c;
			return;
		}
		if (digits && r->enh_st == EH_SUBJ && c == '.') {
			r->enh[n] = '.';
			r->enh_st = EH_DET;
			return;
		}
		if (digits && r->enh_st == EH_DET && (c == ' ' || c == '\t' || c == '\r')) {
			r->enh_st = EH_OK;
			return;
		}
		break;
	}
	default:
		return;
	}
	r->enh_st = EH_NO;
}

/* One byte of a line's text (after "NNN-" / "NNN ").  The line's first
 * word is matched against the keywords as it comes: kw_mask holds the
 * keywords (bit k: keywords[k]) it can still be, kw_len its length. */
static void text_byte(struct smtp_reply *r, struct smtp_reply_text *t, uint8_t c)
{
	text_put(t, c);
	if (r->lines == 0)
		enh_byte(r, c);
	if (r->kw_len & KW_DONE)
		return; /* KW_NONE has the bit too */
	if (c == ' ') {
		r->kw_len |= KW_DONE;
		return;
	}
	uint8_t u = (c >= 'a' && c <= 'z') ? (uint8_t)(c - 32) : c;
	for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++)
		if (r->kw_len >= keywords[k].len || (uint8_t)keywords[k].w[r->kw_len] != u)
			r->kw_mask &= (uint8_t)~(1u << k);
	r->kw_len++;
	if (!r->kw_mask)
		r->kw_len = KW_NONE;
}

static enum smtp_reply_ev line_end(struct smtp_reply *r, struct smtp_reply_text *t, int cr)
{
	if (r->lines == 0) {
		uint8_t n = 0;
		while (n < SMTP_REPLY_ENH_MAX && r->enh[n])
			n++;
		/* complete: ended by SP/HT/CR, or by the line's end after a digit */
		int ok = r->enh_st == EH_OK ||
			 (r->enh_st == EH_DET && n && r->enh[n - 1] != '.');
		if (!ok)
			for (unsigned k = 0; k < SMTP_REPLY_ENH_MAX; k++)
				r->enh[k] = 0;
		r->enh_st = EH_NO;
		if (t)
			t->first_len = t->len;
	}
	if (r->kw_len != KW_NONE && r->lines > 0)
		for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++)
			if ((r->kw_mask & (1u << k)) && keywords[k].len == (r->kw_len & ~KW_DONE))
				r->caps |= keywords[k].cap;
	uint16_t n = (uint16_t)(r->len - (cr ? 1 : 0));
	if (n > r->max_line)
		r->max_line = n;
	if (r->lines < UINT16_MAX)
		r->lines++;
	r->len = 0;
	r->line_code = 0;
	r->kw_len = 0;
	r->state = RS_D0;
	if (t && t->cap)
		t->buf[t->len] = 0;
	return r->last ? SMTP_REPLY_DONE : SMTP_REPLY_LINE;
}

static void bad_line(struct smtp_reply *r)
{
	r->flags |= SMTP_REPLY_BAD;
	r->last = 1;
	r->state = RS_SKIP;
}

size_t smtp_reply_step(struct smtp_reply *r, const uint8_t *b, size_t len,
		       struct smtp_reply_text *t, enum smtp_reply_ev *ev)
{
	size_t i = 0;
	*ev = SMTP_REPLY_MORE;
	while (i < len) {
		if (r->state == RS_TEXT && !t && (r->kw_len & KW_DONE) &&
		    (r->lines > 0 || r->enh_st == EH_OK || r->enh_st == EH_NO)) {
			/* nothing more to learn from this line and no text wanted
			 * (the engine's case): jump to its end */
			const uint8_t *lf = memchr(b + i, '\n', len - i);
			size_t n = lf ? (size_t)(lf - (b + i)) : len - i;
			r->len = r->len + n > UINT16_MAX ? UINT16_MAX : (uint16_t)(r->len + n);
			if (!lf) {
				if (b[len - 1] == '\r')
					r->state = RS_CR; /* a CR held back, as below */
				return len;
			}
			i += n + 1;
			*ev = line_end(r, t, n && b[i - 2] == '\r');
			return i;
		}
		uint8_t c = b[i++];
		if (c != '\n' && r->len < UINT16_MAX)
			r->len++;
		switch (r->state) {
		case RS_D0:
		case RS_D1:
		case RS_D2:
			if (is_digit(c) && (r->state != RS_D0 || (c >= '1' && c <= '5'))) {
				r->line_code = (uint16_t)(r->line_code * 10 + (c - '0'));
				r->state++;
				break;
			}
			bad_line(r);
			if (c == '\n') {
				*ev = line_end(r, t, 0);
				return i;
			}
			if (c == '\r')
				r->state = RS_SKIPCR;
			break;
		case RS_SEP:
			if (!r->code)
				r->code = r->line_code;
			else if (r->line_code != r->code)
				r->flags |= SMTP_REPLY_MIXED;
			if (r->lines && t && t->len)
				text_put(t, ' '); /* lines joined by one SP */
			r->kw_len = r->lines ? 0 : KW_NONE;
			r->kw_mask = 0xFF;
			if (c == '-' || c == ' ') {
				r->last = c == ' ';
				r->state = RS_TEXT;
			} else if (c == '\r') {
				r->last = 1;
				r->state = RS_SEPCR;
			} else if (c == '\n') {
				r->last = 1;
				*ev = line_end(r, t, 0);
				return i;
			} else {
				bad_line(r);
			}
			break;
		case RS_SEPCR:
			if (c == '\n') {
				*ev = line_end(r, t, 1);
				return i;
			}
			bad_line(r);
			if (c == '\r')
				r->state = RS_SKIPCR;
			break;
		case RS_TEXT:
			if (c == '\r')
				r->state = RS_CR;
			else if (c == '\n') {
				*ev = line_end(r, t, 0);
				return i;
			} else
				text_byte(r, t, c);
			break;
		case RS_CR:
			if (c == '\n') {
				*ev = line_end(r, t, 1);
				return i;
			}
			text_byte(r, t, '\r'); /* the CR held back was text */
			if (c != '\r') {
				text_byte(r, t, c);
				r->state = RS_TEXT;
			}
			break;
		case RS_SKIP:
		case RS_SKIPCR:
			if (c == '\n') {
				*ev = line_end(r, t, r->state == RS_SKIPCR);
				return i;
			}
			r->state = c == '\r' ? RS_SKIPCR : RS_SKIP;
			break;
		}
	}
	return i;
}

size_t smtp_reply_feed(struct smtp_reply *r, const uint8_t *b, size_t len, int *done)
{
	size_t i = 0;
	*done = 0;
	while (i < len) {
		enum smtp_reply_ev ev;
		i += smtp_reply_step(r, b + i, len - i, NULL, &ev);
		if (ev == SMTP_REPLY_DONE) {
			*done = 1;
			break;
		}
	}
	return i;
}

size_t smtp_reply_scan(struct smtp_reply *r, const uint8_t *b, size_t len, int *done)
{
	if (r->lines == 0)
		r->enh_st = EH_NO; /* no enhanced code wanted */
	return smtp_reply_feed(r, b, len, done);
}
