/*
 * smtp.h — the engine's SMTP command parser: the client's command lines,
 * classified through a verb table.  The server's replies go through the
 * parser both planes share (common/smtpreply.h).  No allocation, no str*
 * on packet bytes.  Runs on the flow's worker lcore.
 */
#ifndef RG_ENGINE_SMTP_H
#define RG_ENGINE_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "smtpreply.h"

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

#endif
