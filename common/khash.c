/*
 * khash.c — SipHash-2-4 (64-bit output) and its 128-bit-output variant,
 * written from the specification (Aumasson & Bernstein, "SipHash: a fast
 * short-input PRF", and the 128-bit variant described with the reference
 * implementation): two compression rounds per 8-byte word, four
 * finalisation rounds.  Keys of the recipient table are khash128() of the
 * canonical address under the per-installation secret in the shm header.
 *
 * Threads: any.  The data-plane lcores hash every RCPT address on the packet
 * path; rcptgated hashes on insert.  Pure functions, no state.
 *
 * Written by hand because no library in Debian 12 exposes SipHash-2-4-128 to
 * C programs.  Speed matters for ~25-byte inputs: words are loaded with
 * memcpy (unaligned-safe, one mov on x86-64) and converted from little
 * endian; the final partial word of an input of 8 bytes or more is read as
 * the last 8 bytes of the input and shifted, so no byte loop is needed.
 */
#include "khash.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>

/* Initialisation constants: "somepseudorandomlygeneratedbytes". */
#define KHASH_C0 0x736f6d6570736575ull
#define KHASH_C1 0x646f72616e646f6dull
#define KHASH_C2 0x6c7967656e657261ull
#define KHASH_C3 0x7465646279746573ull

/* Domain separation of the 128-bit variant (spec: v1 ^= 0xee at start,
 * v2 ^= 0xee before the first finalisation, v1 ^= 0xdd before the second). */
#define KHASH_128_INIT 0xeeu
#define KHASH_128_FIN1 0xeeu
#define KHASH_128_FIN2 0xddu
#define KHASH_64_FIN 0xffu

/* SipHash-2-4: KHASH_C_ROUNDS per word, KHASH_D_ROUNDS per output half;
 * written out below, not looped, so the state stays in registers. */
#define KHASH_C_ROUNDS 2
#define KHASH_D_ROUNDS 4

/* Everything below is inlined into the two entry points: a call boundary
 * would spill the four state words to memory. */
#define KHASH_INLINE static inline __attribute__((always_inline))

struct sip {
	uint64_t v0, v1, v2, v3;
};

KHASH_INLINE uint64_t rotl64(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

KHASH_INLINE uint64_t load_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* Bytes p[0..n), n < 8, as a little-endian integer: at most three loads. */
KHASH_INLINE uint64_t load_le_short(const uint8_t *p, size_t n)
{
	uint64_t t = 0;
	size_t off = 0;

	if (n & 4) {
		uint32_t w;

		memcpy(&w, p, sizeof(w));
		t = le32toh(w);
		off = 4;
	}
	if (n & 2) {
		uint16_t h;

		memcpy(&h, p + off, sizeof(h));
		t |= (uint64_t)le16toh(h) << (8 * off);
		off += 2;
	}
	if (n & 1)
		t |= (uint64_t)p[off] << (8 * off);
	return t;
}

KHASH_INLINE void sip_round(struct sip *s)
{
	s->v0 += s->v1;
	s->v1 = rotl64(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = rotl64(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = rotl64(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = rotl64(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = rotl64(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = rotl64(s->v2, 32);
}

_Static_assert(KHASH_C_ROUNDS == 2 && KHASH_D_ROUNDS == 4, "rounds are written out");

KHASH_INLINE void sip_compress(struct sip *s, uint64_t m)
{
	s->v3 ^= m;
	sip_round(s);
	sip_round(s);
	s->v0 ^= m;
}

KHASH_INLINE uint64_t sip_finalise(struct sip *s)
{
	sip_round(s);
	sip_round(s);
	sip_round(s);
	sip_round(s);
	return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

/* Initialise from the key and absorb the whole message, including the last
 * word (remaining bytes plus the length modulo 256 in the top byte). */
KHASH_INLINE void sip_absorb(struct sip *s, const uint8_t key[16], uint64_t v1_xor,
			      const uint8_t *p, size_t len)
{
	const uint64_t k0 = load_le64(key);
	const uint64_t k1 = load_le64(key + 8);
	const uint8_t *const words_end = p + (len & ~(size_t)7);
	const size_t rem = len & 7;
	uint64_t last = (uint64_t)len << 56;

	s->v0 = k0 ^ KHASH_C0;
	s->v1 = k1 ^ KHASH_C1 ^ v1_xor;
	s->v2 = k0 ^ KHASH_C2;
	s->v3 = k1 ^ KHASH_C3;

	for (; p != words_end; p += 8)
		sip_compress(s, load_le64(p));

	if (rem != 0) {
		if (len >= 8)	/* the last 8 input bytes end with the rem we need */
			last |= load_le64(p + rem - 8) >> (64 - 8 * rem);
		else
			last |= load_le_short(p, rem);
	}
	sip_compress(s, last);
}

void khash128(const uint8_t key[16], const void *data, size_t len, struct rg_key128 *out)
{
	struct sip s;

	sip_absorb(&s, key, KHASH_128_INIT, data, len);
	s.v2 ^= KHASH_128_FIN1;
	out->lo = sip_finalise(&s);
	s.v1 ^= KHASH_128_FIN2;
	out->hi = sip_finalise(&s);
}

uint64_t khash64(const uint8_t key[16], const void *data, size_t len)
{
	struct sip s;

	sip_absorb(&s, key, 0, data, len);
	s.v2 ^= KHASH_64_FIN;
	return sip_finalise(&s);
}

int khash_new_key(uint8_t key[16])
{
	size_t got = 0;

	/* Blocks only until the kernel's pool is initialised (early boot). */
	while (got < 16) {
		ssize_t n = getrandom(key + got, 16 - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	return 0;
}
