/*
 * text.c — see text.h.  Written by hand: a dozen lines of UTF-8 checking
 * are less than any library that would bring them.
 * Any thread; pure functions.
 */
#include "text.h"

#include <stdint.h>

/* Length of the well-formed UTF-8 sequence at in (1..4), or 0 when the
 * bytes there are not one (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF). */
static size_t utf8_len(const unsigned char *in, size_t n)
{
	unsigned char c = in[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xBF;

	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (n < len || in[1] < lo || in[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (in[i] < 0x80 || in[i] > 0xBF)
			return 0;
	return len;
}

size_t text_clean(char *out, size_t outlen, const char *in, size_t n, unsigned flags)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)in;
	size_t o = 0, i = 0;

	if (outlen == 0)
		return 0;
	while (i < n) {
		unsigned char c = u[i];
		size_t k = 1;
		int esc;
		if (c >= 0x20 && c < 0x7F)
			esc = 0;
		else if (c == '\n' && (flags & TEXT_KEEP_NL))
			esc = 0;
		else if (c >= 0x80 && (k = utf8_len(u + i, n - i)) > 0)
			esc = c == 0xC2 && u[i + 1] <= 0x9F; /* C1 control */
		else
			esc = 1, k = 1;
		if (esc) {
			/* a C1 control: both of its bytes escaped */
			size_t need = 4 * k;
			if (o + need >= outlen)
				break;
			for (size_t j = 0; j < k; j++) {
				out[o++] = '\\';
				out[o++] = 'x';
				out[o++] = hex[u[i + j] >> 4];
				out[o++] = hex[u[i + j] & 15];
			}
		} else {
			if (o + k >= outlen)
				break;
			for (size_t j = 0; j < k; j++)
				out[o++] = (char)u[i + j];
		}
		i += k;
	}
	out[o] = 0;
	return o;
}
