/*
 * testkeys.h — well-spread synthetic 128-bit keys (splitmix64) standing in
 * for keyed hashes of addresses in the table tests and the stress test.
 */
#ifndef RG_TESTKEYS_H
#define RG_TESTKEYS_H

#include <stdint.h>

#include "khash.h"

static inline uint64_t testkeys_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Key number n of a sequence named by seed. */
static inline struct rg_key128 testkeys_key(uint64_t seed, uint64_t n)
{
	uint64_t hi = testkeys_mix(n * 0x9e3779b97f4a7c15ull + seed);
	return (struct rg_key128){hi, testkeys_mix(hi * 0x9e3779b97f4a7c15ull)};
}

#endif
