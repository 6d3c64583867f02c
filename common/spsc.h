/*
 * spsc.h — single-producer/single-consumer rings of fixed-size records in
 * shared memory: one miss ring and one event ring per data-plane lcore.
 *
 * Producer: the lcore that owns the ring (rcptgate-dp).  Consumer: rcptgated.
 *
 * Memory-ordering contract:
 *   - head is written only by the producer, tail only by the consumer; neither
 *     side ever does an atomic read-modify-write.
 *   - producer: fill the record, then store-release head (P1).  The consumer's
 *     load-acquire of head (C1) therefore sees a complete record.
 *   - consumer: read the record, then store-release tail (C2).  The producer's
 *     load-acquire of tail (P0) therefore never lets it overwrite a record still
 *     being read.
 *   - full ring: the producer counts the record in `drops` (its own line) and
 *     returns; it never waits.
 * Indices run free (uint64_t, never wrap in practice); slot = index & (slots-1).
 */
#ifndef RG_SPSC_H
#define RG_SPSC_H

#include <stddef.h>
#include <stdint.h>

#include "shm.h"

struct spsc_hdr {
	/* line 0: constant after creation */
	uint32_t slots;		/* power of two */
	uint32_t rec_size;	/* multiple of 8 */
	uint8_t _pad0[SHM_CACHE_LINE - 8];
	/* line 1: producer-owned */
	uint64_t head;
	uint64_t drops;
	uint64_t prod_cache_tail; /* producer's last view of tail (private) */
	uint8_t _pad1[SHM_CACHE_LINE - 24];
	/* line 2: consumer-owned */
	uint64_t tail;
	uint8_t _pad2[SHM_CACHE_LINE - 8];
};
_Static_assert(sizeof(struct spsc_hdr) == 3 * SHM_CACHE_LINE, "spsc_hdr size");
_Static_assert(offsetof(struct spsc_hdr, head) == SHM_CACHE_LINE, "head line");
_Static_assert(offsetof(struct spsc_hdr, tail) == 2 * SHM_CACHE_LINE, "tail line");

static inline uint8_t *spsc_rec(struct spsc_hdr *r, uint64_t idx)
{
	return (uint8_t *)(r + 1) + (size_t)(idx & (r->slots - 1)) * r->rec_size;
}

static inline uint64_t spsc_bytes(uint32_t slots, uint32_t rec_size)
{
	return sizeof(struct spsc_hdr) + (uint64_t)slots * rec_size;
}

void spsc_init(struct spsc_hdr *r, uint32_t slots, uint32_t rec_size);

/* Producer: a slot to fill, or NULL (counted in drops) when the ring is full. */
static inline void *spsc_reserve(struct spsc_hdr *r)
{
	uint64_t head = r->head; /* own field */
	if (head - r->prod_cache_tail >= r->slots) {
		r->prod_cache_tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE); /* P0 */
		if (head - r->prod_cache_tail >= r->slots) {
			__atomic_store_n(&r->drops, r->drops + 1, __ATOMIC_RELAXED);
			return NULL;
		}
	}
	return spsc_rec(r, head);
}

/* Producer: publish the slot spsc_reserve() returned. */
static inline void spsc_commit(struct spsc_hdr *r)
{
	__atomic_store_n(&r->head, r->head + 1, __ATOMIC_RELEASE); /* P1 */
}

/* Consumer: the oldest record, or NULL when empty. */
static inline const void *spsc_peek(struct spsc_hdr *r)
{
	uint64_t tail = r->tail;
	if (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == tail) /* C1 */
		return NULL;
	return spsc_rec(r, tail);
}

/* Consumer: done with the record spsc_peek() returned. */
static inline void spsc_release(struct spsc_hdr *r)
{
	__atomic_store_n(&r->tail, r->tail + 1, __ATOMIC_RELEASE); /* C2 */
}

static inline uint64_t spsc_count(const struct spsc_hdr *r)
{
	return __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) -
	       __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
}

static inline uint64_t spsc_drops(const struct spsc_hdr *r)
{
	return __atomic_load_n(&r->drops, __ATOMIC_RELAXED);
}

#endif
