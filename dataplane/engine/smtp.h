/*
 * smtp.h — the SMTP parsers of the engine: the client's command lines
 * (classified through a verb table) and the server's replies (a byte-driven,
 * resumable state machine: feed any split of the stream, get the same
 * replies).  Neither allocates nor uses str* on packet bytes.
 * Runs on the flow's worker lcore.
 */
#ifndef RG_ENGINE_SMTP_H
#define RG_ENGINE_SMTP_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_KW_MAX 12u	/* bytes of each reply line kept to spot EHLO keywords */

enum smtp_verb {
	SMTP_V_OTHER = 0,
	SMTP_V_HELO,
	SMTP_V_EHLO,
	SMTP_V_MAIL,
	SMTP_V_RCPT,
	SMTP_V_DATA,
	SMTP_V_BDAT,
	SMTP_V_RSET,
	SMTP_V_QUIT,
	SMTP_V_STARTTLS,
	SMTP_V_AUTH,
	SMTP_V_NOOP,
	SMTP_V__COUNT
};

/* A classified command line (line excludes its CRLF / LF). */
struct smtp_cmd {
	enum smtp_verb verb;
	uint16_t arg_off;	/* MAIL/RCPT: past "FROM:"/"TO:" and whitespace;
				 * else past the verb and whitespace */
	uint16_t arg_len;	/* argument bytes, trailing whitespace excluded */
	uint8_t bad;		/* MAIL/RCPT without "FROM:"/"TO:", BDAT without size */
	uint8_t bdat_last;
	uint32_t bdat_size;
};

/* Classify one command line of len bytes, as leniently as the most lenient
 * common server: any case, leading and trailing whitespace, any whitespace
 * (SP, HT, CR, VT, FF) between verb, keyword and argument. */
void smtp_cmd_parse(const uint8_t *line, size_t len, struct smtp_cmd *out);

/* Name of a verb, for logs and tests. */
const char *smtp_verb_name(enum smtp_verb v);

/* EHLO keywords the engine acts on. */
#define SMTP_CAP_PIPELINING 0x1u
#define SMTP_CAP_CHUNKING 0x2u
#define SMTP_CAP_STARTTLS 0x4u
#define SMTP_CAP_SMTPUTF8 0x8u

/* Server reply parser state (kept in every flow: keep it small). */
struct smtp_reply {
	uint16_t code;		/* first line's code; 0 while unknown */
	uint8_t state;		/* private */
	uint8_t caps;		/* SMTP_CAP_* seen in this reply's lines */
	uint8_t bad;		/* a line did not start with three digits */
	uint8_t kw_len;
	uint8_t last;		/* current line is the reply's last */
	uint8_t digits;
	uint16_t line_code;
	char kw[SMTP_REPLY_KW_MAX];
};

void smtp_reply_reset(struct smtp_reply *r);

/*
 * Feed server bytes.  Returns the number consumed: up to and including the
 * LF that ends a complete reply (then *done = 1 and r->code/caps/bad describe
 * it; call smtp_reply_reset() before feeding the next), or all len (*done = 0).
 */
size_t smtp_reply_feed(struct smtp_reply *r, const uint8_t *b, size_t len, int *done);

/* 1 when the parser sits between replies (no partial line consumed). */
int smtp_reply_idle(const struct smtp_reply *r);

#endif
