/*
 * classify.c — reply classification for callouts (see classify.h for the
 * rules and why policy rejections never make an address invalid).
 * Thread: any; pure functions.
 */
#include "classify.h"

#include <string.h>

static const char *const stage_names[] = {"connect", "EHLO", "HELO", "MAIL", "RCPT", "RSET",
					  "QUIT"};
static const char *const result_names[] = {"ok", "invalid", "temporary", "unverifiable",
					   "retry"};

const char *classify_result_name(enum classify_result r)
{
	return (unsigned)r < sizeof(result_names) / sizeof(result_names[0]) ? result_names[r] : "?";
}

const char *classify_stage_name(enum classify_stage s)
{
	return (unsigned)s < sizeof(stage_names) / sizeof(stage_names[0]) ? stage_names[s] : "?";
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

size_t classify_enhanced(uint16_t code, const char *text, size_t len, char out[CLASSIFY_ENH_MAX])
{
	size_t i = 0, o = 0;
	out[0] = 0;
	while (i < len && text[i] == ' ')
		i++;
	if (i + 5 > len || text[i] != (char)('0' + code / 100) || text[i + 1] != '.')
		return 0;
	out[o++] = text[i];
	out[o++] = '.';
	i += 2;
	for (int part = 0; part < 2; part++) {
		size_t digits = 0;
		while (i < len && is_digit(text[i]) && digits < 3) {
			out[o++] = text[i++];
			digits++;
		}
		if (digits == 0 || (i < len && is_digit(text[i]))) {
			out[0] = 0;
			return 0;
		}
		if (part == 0) {
			if (i >= len || text[i] != '.') {
				out[0] = 0;
				return 0;
			}
			out[o++] = '.';
			i++;
		}
	}
	/* must end the token */
	if (i < len && text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n') {
		out[0] = 0;
		return 0;
	}
	out[o] = 0;
	return o;
}

/* Phrases that, in a 550/551/553 RCPT reply without an enhanced code, say the
 * mailbox does not exist (Exim "Unrouteable address", sendmail "User unknown",
 * qmail-ldap "No such user", old Exchange "Recipient not found"). */
static const char *const unknown_phrases[] = {
	"user unknown",	     "unknown user",	  "no such user",   "unknown recipient",
	"recipient unknown", "unrouteable address", "unknown local part", "does not exist",
	"recipient not found", "no such mailbox", "mailbox not found", "invalid recipient",
	"no mailbox here",    "unknown mailbox",
};

static int contains_ci(const char *hay, size_t n, const char *needle)
{
	size_t m = strlen(needle);
	for (size_t i = 0; i + m <= n; i++) {
		size_t j;
		for (j = 0; j < m; j++) {
			char c = hay[i + j];
			if (c >= 'A' && c <= 'Z')
				c = (char)(c + 32);
			if (c != needle[j])
				break;
		}
		if (j == m)
			return 1;
	}
	return 0;
}

static int enh_is_invalid(const char *enh, const char (*extra)[12], unsigned nextra)
{
	/* the class is already 5; compare subject.detail */
	const char *sd = enh + 2;
	if (!strcmp(sd, "1.1") || !strcmp(sd, "1.0") || !strcmp(sd, "1.10"))
		return 1;
	for (unsigned i = 0; i < nextra; i++)
		if (!strcmp(enh, extra[i]))
			return 1;
	return 0;
}

enum classify_result classify_reply(enum classify_stage stage, uint16_t code, const char *enh,
				    const char *text, size_t len, const char (*extra)[12],
				    unsigned nextra)
{
	unsigned cls = code / 100;
	if (cls == 2)
		return CL_OK;
	if (cls == 4) {
		/* 452 is also "mailbox full" (4.2.2) and "out of storage" (4.3.1):
		 * only 4.5.3, or a bare 452 saying so, means "too many recipients" */
		if (stage == CL_RCPT && code == 452) {
			if (enh && enh[0])
				return !strcmp(enh, "4.5.3") ? CL_RETRY : CL_TEMP;
			return contains_ci(text, len, "too many recipients") ? CL_RETRY : CL_TEMP;
		}
		return CL_TEMP;
	}
	if (cls != 5)
		return CL_TEMP; /* 1xx/3xx here break the protocol: conclude nothing */
	if (stage == CL_RSET || stage == CL_QUIT)
		return CL_OK; /* every verdict is already in */
	if (stage != CL_RCPT)
		return CL_UNVERIFIABLE;
	if (enh && enh[0] == '5') {
		if (code == 552 && !strcmp(enh, "5.5.3"))
			return CL_RETRY; /* RFC 5321 4.5.3.1.10: old "too many recipients" */
		return enh_is_invalid(enh, extra, nextra) ? CL_INVALID : CL_UNVERIFIABLE;
	}
	if (code == 550 || code == 551 || code == 553) {
		for (size_t i = 0; i < sizeof(unknown_phrases) / sizeof(unknown_phrases[0]); i++)
			if (contains_ci(text, len, unknown_phrases[i]))
				return CL_INVALID;
	}
	return CL_UNVERIFIABLE;
}
