/*
 * smtpreply.h — the SMTP reply parser both planes use: the data plane's
 * engine (server replies of every flow) and rcptgated's callout client.
 *
 * Byte-driven and resumable: feed the server's bytes in any split, get the
 * same replies.  No allocation, no str* on network bytes, every count
 * bounded (saturating).  Any thread; the state belongs to its caller.
 *
 * What a reply yields (RFC 5321 4.2):
 * - code: the first line's three digits.  A line that does not start with
 *   three digits, the first one 1..5, followed by SP, "-" or the line's end
 *   sets SMTP_REPLY_BAD and ends the reply there.  A later line whose code
 *   differs from the first sets SMTP_REPLY_MIXED (the reply goes on).
 * - lines: complete lines so far; len: bytes of the line being read (its CR
 *   included, its LF not); max_line: the longest complete line without its
 *   CRLF.  Callers enforce their own limits on these.
 * - caps: EHLO keywords (SMTP_CAP_*) on any line but the first (the first
 *   carries the server's name, RFC 5321 4.1.1.1), any case, the keyword
 *   followed by SP or the line's end.
 * - enh: the enhanced status code (RFC 3463) at the start of the first
 *   line's text ("5.1.1"), its class equal to the code's first digit, each
 *   other part 1..3 digits, the token ended by SP, HT or the line's end;
 *   else empty.  Digits are kept as written.
 * - text, only when the caller passes a struct smtp_reply_text: the bytes
 *   after "NNN-" / "NNN " of every line (one trailing CR dropped), lines
 *   joined by one SP, at most cap - 1 bytes (then NUL-terminated; the text
 *   may hold any byte, NUL included: use len).  first_len: bytes of the
 *   first line's text in buf.  The engine keeps a parser in every flow and
 *   wants no text, so the text is the caller's, not the parser's.
 */
#ifndef RG_SMTPREPLY_H
#define RG_SMTPREPLY_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_KW_MAX 10u	/* longest keyword looked for (PIPELINING) */
#define SMTP_REPLY_ENH_MAX 10u	/* "5.123.123" + NUL */

/* EHLO keywords. */
#define SMTP_CAP_PIPELINING 0x01u
#define SMTP_CAP_CHUNKING 0x02u
#define SMTP_CAP_STARTTLS 0x04u
#define SMTP_CAP_SMTPUTF8 0x08u
#define SMTP_CAP_AUTH 0x10u
#define SMTP_CAP_SIZE 0x20u
#define SMTP_CAP_8BITMIME 0x40u
#define SMTP_CAP_DSN 0x80u

/* flags */
#define SMTP_REPLY_BAD 0x1u	/* a line is not "NNN[ -]..." with N 1..5 */
#define SMTP_REPLY_MIXED 0x2u	/* a line's code differs from the first's */

/* Parser state (the engine keeps one in every flow: keep it small). */
struct smtp_reply {
	uint16_t code;		/* first line's code; 0 while unknown */
	uint16_t lines;		/* complete lines of this reply */
	uint16_t len;		/* bytes of the current line so far */
	uint16_t max_line;	/* longest complete line, CRLF excluded */
	uint16_t line_code;	/* private */
	uint8_t state;		/* private */
	uint8_t caps;		/* SMTP_CAP_* */
	uint8_t flags;		/* SMTP_REPLY_* */
	uint8_t last;		/* private: the current line is the last */
	uint8_t kw_len;		/* private */
	uint8_t kw_mask;	/* private */
	uint8_t enh_st;		/* private */
	char enh[SMTP_REPLY_ENH_MAX];	/* NUL-terminated once the reply is done */
};

/* The caller's text buffer (see above).  Reset len and first_len with
 * smtp_reply_text_reset() before each reply. */
struct smtp_reply_text {
	char *buf;
	size_t cap;		/* > 0 */
	size_t len;
	size_t first_len;
};

/* What smtp_reply_step() stopped at. */
enum smtp_reply_ev {
	SMTP_REPLY_MORE = 0,	/* every byte consumed, inside a line */
	SMTP_REPLY_LINE,	/* a line ended; the reply goes on */
	SMTP_REPLY_DONE,	/* the reply ended */
};

void smtp_reply_reset(struct smtp_reply *r);
void smtp_reply_text_reset(struct smtp_reply_text *t);

/*
 * Feed server bytes.  Returns the number consumed: up to and including the
 * LF that ends a complete reply (then *done = 1 and the fields describe it;
 * call smtp_reply_reset() before feeding the next), or all len (*done = 0).
 */
size_t smtp_reply_feed(struct smtp_reply *r, const uint8_t *b, size_t len, int *done);

/* smtp_reply_feed() without the enhanced code (enh stays empty): a line's
 * text is then skipped at memchr speed once its keyword is known.  The data
 * plane feeds every reply of every session through it. */
size_t smtp_reply_scan(struct smtp_reply *r, const uint8_t *b, size_t len, int *done);

/*
 * The same, stopping after every line's LF (*ev says which event), the
 * text going to t when t is not NULL.
 */
size_t smtp_reply_step(struct smtp_reply *r, const uint8_t *b, size_t len,
		       struct smtp_reply_text *t, enum smtp_reply_ev *ev);

/* 1 when the parser sits between replies (no partial line consumed). */
int smtp_reply_idle(const struct smtp_reply *r);

#endif
