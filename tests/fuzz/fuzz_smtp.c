/*
 * fuzz_smtp.c — libFuzzer harness for the engine's SMTP parsers
 * (dataplane/engine/smtp.c): the command classifier and the resumable reply
 * parser.
 *
 * Input: the first two bytes seed the way the stream is split, the rest is
 * stream bytes, used twice: as client command lines (each LF-terminated
 * piece, without its terminator, exactly sized) and as a server reply
 * stream.
 * Checks, beyond memory safety and undefined behaviour:
 * - commands: the verb is a known one, arg_off lies within the line, the
 *   classification does not depend on letter case (every ASCII letter
 *   upper-cased gives the same struct smtp_cmd);
 * - replies: every call consumes at least one byte and never more than it
 *   was given; and "feed any split of the stream, get the same replies"
 *   (smtp.h): the replies (where each ends, code, capabilities, bad flag)
 *   found feeding the whole stream at once equal those found feeding it
 *   in pieces of random sizes and byte by byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REPLIES 4096u

struct rec {
	size_t end;	/* stream offset just past the reply */
	uint16_t code;
	uint8_t caps, bad;
};

static struct rec ref[MAX_REPLIES], got[MAX_REPLIES];

static void check_cmd(const uint8_t *line, size_t len)
{
	struct smtp_cmd c, u;
	uint8_t *copy = malloc(len ? len : 1), *upper = malloc(len ? len : 1);
	FZ_CHECK(copy && upper, "malloc");
	memcpy(copy, line, len);
	smtp_cmd_parse(copy, len, &c);
	FZ_CHECK((unsigned)c.verb < SMTP_V__COUNT, "verb %d", (int)c.verb);
	FZ_CHECK(c.arg_off <= len, "arg_off %u > len %zu", c.arg_off, len);
	(void)smtp_verb_name(c.verb);
	for (size_t i = 0; i < len; i++)
		upper[i] = line[i] >= 'a' && line[i] <= 'z' ? (uint8_t)(line[i] - 32) : line[i];
	smtp_cmd_parse(upper, len, &u);
	FZ_CHECK(c.verb == u.verb && c.arg_off == u.arg_off && c.bad == u.bad &&
			 c.bdat_last == u.bdat_last && c.bdat_size == u.bdat_size,
		 "case changes the classification of \"%.*s\": verb %s/%s arg_off %u/%u "
		 "bad %u/%u", (int)(len > 80 ? 80 : len), (const char *)line,
		 smtp_verb_name(c.verb), smtp_verb_name(u.verb), c.arg_off, u.arg_off, c.bad,
		 u.bad);
	free(copy);
	free(upper);
}

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Feed b[0..len) in pieces (max_piece 0: all at once); record each reply. */
static unsigned feed(const uint8_t *b, size_t len, uint32_t seed, size_t max_piece,
		     struct rec *out)
{
	struct smtp_reply r;
	unsigned n = 0;
	size_t off = 0;
	smtp_reply_reset(&r);
	FZ_CHECK(smtp_reply_idle(&r), "a reset parser is not idle");
	while (off < len) {
		size_t piece = len - off;
		if (max_piece && piece > max_piece)
			piece = 1 + rnd(&seed) % max_piece;
		if (piece > len - off)
			piece = len - off;
		/* exactly sized copy: a read past the piece is an ASan report */
		uint8_t *p = malloc(piece);
		int done = 0;
		size_t k;
		FZ_CHECK(p, "malloc");
		memcpy(p, b + off, piece);
		k = smtp_reply_feed(&r, p, piece, &done);
		free(p);
		FZ_CHECK(k >= 1 && k <= piece, "smtp_reply_feed consumed %zu of %zu", k, piece);
		FZ_CHECK(done || k == piece, "stopped after %zu of %zu without a reply", k, piece);
		off += k;
		if (done) {
			FZ_CHECK(n < MAX_REPLIES, "too many replies");
			out[n].end = off;
			out[n].code = r.code;
			out[n].caps = r.caps;
			out[n].bad = r.flags;
			n++;
			smtp_reply_reset(&r);
		}
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t seed;
	const uint8_t *b;
	size_t len;
	unsigned nref;

	if (size < 2)
		return 0;
	seed = 0x9e3779b9u ^ ((uint32_t)data[0] << 8 | data[1]);
	b = data + 2;
	len = size - 2;

	/* commands: each LF-terminated line without CRLF/LF, and the rest */
	for (size_t at = 0; at < len;) {
		const uint8_t *lf = memchr(b + at, '\n', len - at);
		size_t end = lf ? (size_t)(lf - b) : len, l = end - at;
		if (l && b[at + l - 1] == '\r')
			l--;
		check_cmd(b + at, l);
		at = end + 1;
	}

	/* replies: whole stream, random pieces, single bytes */
	nref = feed(b, len, seed, 0, ref);
	for (int way = 0; way < 2; way++) {
		unsigned n = feed(b, len, seed, way ? 1 : 1 + (seed >> 3) % 13, got);
		FZ_CHECK(n == nref, "%u replies fed in pieces (max %d), %u at once", n,
			 way ? 1 : 13, nref);
		for (unsigned i = 0; i < n; i++)
			FZ_CHECK(got[i].end == ref[i].end && got[i].code == ref[i].code &&
					 got[i].caps == ref[i].caps && got[i].bad == ref[i].bad,
				 "reply %u differs with pieces: end %zu/%zu code %u/%u caps %u/%u "
				 "bad %u/%u",
				 i, got[i].end, ref[i].end, got[i].code, ref[i].code, got[i].caps,
				 ref[i].caps, got[i].bad, ref[i].bad);
	}
	return 0;
}
