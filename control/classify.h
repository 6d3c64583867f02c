/*
 * classify.h — what an SMTP reply to a callout means, by stage, reply code
 * and enhanced status code (RFC 3463):
 *   2xx                       proceed; at RCPT the address is valid
 *   4xx, at any stage         temporary: try later, never a verdict
 *   5xx at RCPT, X.1.1, X.1.0, X.1.10 (or a domain's invalid_codes)
 *                             the address does not exist
 *   5xx at RCPT without an enhanced code, code 550/551/553 and the text
 *     saying so ("user unknown", "unrouteable address", ...)   invalid
 *   any other 5xx (policy 5.7.x, 5.4.1, rejections at connect, EHLO/HELO,
 *     MAIL)                   the destination is unverifiable: fail open,
 *                             never cache the address as invalid
 *   452 4.5.3 (or a 452 without an enhanced code saying "too many
 *     recipients"), 552 5.5.3 at RCPT
 *                             too many recipients: retry in a new transaction
 *   any other 452 (4.2.2 mailbox full, 4.3.1 no storage)   temporary
 * Thread: any; pure functions.
 */
#ifndef RG_CLASSIFY_H
#define RG_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum classify_stage {
	CL_GREETING = 0,
	CL_EHLO,
	CL_HELO,
	CL_MAIL,
	CL_RCPT,
	CL_RSET,
	CL_QUIT,
};

enum classify_result {
	CL_OK = 0,		/* proceed; at RCPT: valid */
	CL_INVALID,		/* RCPT only: no such recipient */
	CL_TEMP,		/* temporary failure */
	CL_UNVERIFIABLE,	/* destination refuses to be asked */
	CL_RETRY,		/* RCPT only: too many recipients, retry next transaction */
};

#define CLASSIFY_ENH_MAX 12u	/* "5.123.123" + NUL */

/* Extract an RFC 3463 enhanced code at the start of text (after the reply
 * code and separator); out is "" when absent or its class does not match the
 * reply code's first digit.  Returns its length (0 when absent). */
size_t classify_enhanced(uint16_t code, const char *text, size_t len,
			 char out[CLASSIFY_ENH_MAX]);

/* Classify one reply.  text is the reply's text (after "NNN " / "NNN-",
 * continuation lines joined), used only for replies without an enhanced code.
 * extra_invalid: further enhanced codes meaning "no such user" (may be NULL). */
enum classify_result classify_reply(enum classify_stage stage, uint16_t code,
				    const char *enh, const char *text, size_t len,
				    const char (*extra_invalid)[12], unsigned nextra);

const char *classify_result_name(enum classify_result r);
const char *classify_stage_name(enum classify_stage s);

#endif
