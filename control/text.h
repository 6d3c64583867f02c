/*
 * text.h — untrusted text made safe for a log line or a terminal.
 *
 * Reply text from an SMTP destination, an address from the network, a HELO
 * name: any of them may carry CR, LF, ESC, NUL or C1 controls that would
 * forge a second log line or drive the operator's terminal.  text_clean()
 * keeps printable ASCII and well-formed UTF-8 (except the C1 controls
 * U+0080..U+009F) and writes every other byte as "\xHH".
 * Used by the daemon's log output, the callout client (reply text kept for
 * verdicts and transcripts) and rcptctl (everything it prints).
 * Any thread; pure functions over caller buffers.
 */
#ifndef RG_TEXT_H
#define RG_TEXT_H

#include <stddef.h>

enum text_flags {
	TEXT_KEEP_NL = 1u << 0,	/* keep '\n' (multi-line transcripts) */
};

/* Worst case: every input byte becomes 4 output bytes. */
#define TEXT_CLEAN_MAX(n) ((n) * 4u + 1u)

/* Clean n bytes of in into out (always NUL-terminated when outlen > 0);
 * stops before a character that does not fit whole.  Returns the length
 * written. */
size_t text_clean(char *out, size_t outlen, const char *in, size_t n, unsigned flags);

#endif
