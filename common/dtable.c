/*
 * dtable.c — the domain table (dtable.h).  Each entry is read under its own
 * sequence lock with the recipient table's protocol (rtable.h W1-W3, R1-R3).
 * Readers: rcptgate-dp lcores.  Writer: rcptgated's main thread.
 */
#include <errno.h>
#include <string.h>

#include "dtable.h"

#define DTABLE_READ_RETRIES 64u

static inline struct dtable_ent *ents(const struct shm_map *m)
{
	return (struct dtable_ent *)(m->base + shm_hdr(m)->dtable_off);
}

bool dtable_lookup(const struct shm_map *m, const struct rg_key128 *key,
		   struct dtable_info *out)
{
	const struct shm_hdr *h = shm_hdr(m);
	const struct dtable_ent *t = ents(m);
	uint32_t mask = h->dtable_slots - 1;
	for (uint32_t i = 0; i < h->dtable_slots; i++) {
		const struct dtable_ent *e = &t[(key->lo + i) & mask];
		for (unsigned tries = 0;; tries++) {
			if (tries == DTABLE_READ_RETRIES)
				return false; /* writer busy: unmanaged for now, forwards */
			uint32_t s1 = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE); /* R1 */
			if (s1 & 1u)
				continue;
			uint16_t flags = __atomic_load_n(&e->flags, __ATOMIC_RELAXED); /* R2 */
			uint64_t hi = __atomic_load_n(&e->key_hi, __ATOMIC_RELAXED);
			uint64_t lo = __atomic_load_n(&e->key_lo, __ATOMIC_RELAXED);
			struct dtable_info v = {
				.mode = __atomic_load_n(&e->mode, __ATOMIC_RELAXED),
				.miss_policy = __atomic_load_n(&e->miss_policy, __ATOMIC_RELAXED),
				.flags = flags,
				.harvest_threshold =
					__atomic_load_n(&e->harvest_threshold, __ATOMIC_RELAXED),
			};
			__atomic_thread_fence(__ATOMIC_ACQUIRE); /* R3 */
			if (__atomic_load_n(&e->seq, __ATOMIC_RELAXED) != s1)
				continue;
			if (!(flags & DT_F_USED))
				return false; /* end of the probe chain */
			if (!(flags & DT_F_TOMBSTONE) && hi == key->hi && lo == key->lo) {
				*out = v;
				return true;
			}
			break;
		}
	}
	return false;
}

static void ent_write(struct dtable_ent *e, const struct rg_key128 *key,
		      const struct dtable_info *in, uint16_t flags)
{
	__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELAXED); /* W1 */
	__atomic_thread_fence(__ATOMIC_RELEASE);		  /* W1 */
	__atomic_store_n(&e->key_hi, key->hi, __ATOMIC_RELAXED); /* W2 */
	__atomic_store_n(&e->key_lo, key->lo, __ATOMIC_RELAXED);
	__atomic_store_n(&e->mode, in ? in->mode : 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->miss_policy, in ? in->miss_policy : 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->harvest_threshold, in ? in->harvest_threshold : 0,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&e->flags, flags, __ATOMIC_RELAXED);
	__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELEASE); /* W3 */
}

/* Slot holding key, or -1; *free_slot gets the first reusable slot seen. */
static int64_t find(const struct shm_map *m, const struct rg_key128 *key, int64_t *free_slot)
{
	const struct shm_hdr *h = shm_hdr(m);
	struct dtable_ent *t = ents(m);
	uint32_t mask = h->dtable_slots - 1;
	*free_slot = -1;
	for (uint32_t i = 0; i < h->dtable_slots; i++) {
		uint32_t idx = (uint32_t)((key->lo + i) & mask);
		struct dtable_ent *e = &t[idx];
		if (!(e->flags & DT_F_USED)) {
			if (*free_slot < 0)
				*free_slot = idx;
			return -1;
		}
		if (e->flags & DT_F_TOMBSTONE) {
			if (*free_slot < 0)
				*free_slot = idx;
			continue;
		}
		if (e->key_hi == key->hi && e->key_lo == key->lo)
			return idx;
	}
	return -1;
}

int dtable_put(struct shm_map *m, const struct rg_key128 *key, const struct dtable_info *in)
{
	int64_t free_slot;
	int64_t idx = find(m, key, &free_slot);
	struct shm_hdr *h = shm_hdr(m);
	uint16_t flags = (uint16_t)((in->flags & ~DT_F_TOMBSTONE) | DT_F_USED);
	if (idx < 0) {
		if (free_slot < 0)
			return -ENOSPC;
		idx = free_slot;
		h->dtable_count++;
	}
	ent_write(&ents(m)[idx], key, in, flags);
	return 0;
}

int dtable_del(struct shm_map *m, const struct rg_key128 *key)
{
	int64_t free_slot;
	int64_t idx = find(m, key, &free_slot);
	if (idx < 0)
		return -ENOENT;
	ent_write(&ents(m)[idx], key, NULL, DT_F_USED | DT_F_TOMBSTONE);
	shm_hdr(m)->dtable_count--;
	return 0;
}
