/*
 * khash.h — keyed hashing of addresses and domains: SipHash-2-4 with its
 * 128-bit output (Aumasson & Bernstein), keyed by the per-installation secret
 * in the shared-memory header, so a sender cannot aim collisions at the table.
 * Written from the specification (no library in Debian 12 exposes the 128-bit
 * variant to C programs); checked against the reference test vectors.
 * Any thread; pure functions.
 */
#ifndef RG_KHASH_H
#define RG_KHASH_H

#include <stddef.h>
#include <stdint.h>

struct rg_key128 {
	uint64_t hi, lo;
};

/* SipHash-2-4-128 of data under key; out->lo is the first 8 output bytes
 * (little endian), out->hi the last 8. */
void khash128(const uint8_t key[16], const void *data, size_t len, struct rg_key128 *out);

/* SipHash-2-4 (64-bit output), for flow tables and other keyed uses. */
uint64_t khash64(const uint8_t key[16], const void *data, size_t len);

/* A fresh secret from getrandom(2). Returns 0 or -errno. */
int khash_new_key(uint8_t key[16]);

#endif
