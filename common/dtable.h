/*
 * dtable.h — the domain table in shared memory: which domains rcptgate
 * manages and how (mode, miss policy, accept-all, case sensitivity, harvest
 * threshold).  Keyed by khash128 of the lowercased domain; open addressing;
 * each entry carries its own sequence lock with the same contract as the
 * recipient table (rtable.h W1-W3/R1-R3).  Deleted entries become tombstones
 * so probe chains stay intact; rcptgated rebuilds when tombstones pile up.
 * Writer: rcptgated. Readers: rcptgate-dp lcores (read-only mapping).
 */
#ifndef RG_DTABLE_H
#define RG_DTABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "khash.h"
#include "shm.h"

enum dtable_mode {
	DT_MODE_CALLOUT = 1,	/* verify unknown recipients by callout */
	DT_MODE_LIST = 2,	/* closed list: unlisted means invalid */
	DT_MODE_BOTH = 3,	/* listed are valid; others verified by callout */
};

enum dtable_miss {
	DT_MISS_PASS = 0,	/* forward; the destination decides */
	DT_MISS_DEFER = 1,	/* answer 450 4.7.1 until verified */
};

enum dtable_flags {
	DT_F_USED = 1u << 0,
	DT_F_TOMBSTONE = 1u << 1,
	DT_F_ACCEPT_ALL = 1u << 2,	/* destination accepts any local part */
	DT_F_CASE_SENSITIVE = 1u << 3,	/* local parts compared as written */
	DT_F_FAILOPEN = 1u << 4,	/* destination unverifiable or breaker open:
					 * misses always pass */
	DT_F_LIST_PARTIAL = 1u << 5,	/* closed list not published whole (table
					 * at its maximum, file unreadable): a miss
					 * is unknown, not invalid, and passes */
	DT_F_WARN = 1u << 8,		/* dry run: every RCPT is forwarded; what would
					 * have been refused is reported (MSG_EV_WARN) */
	DT_F_REJECT_450 = 1u << 9,	/* invalid recipients get 450 4.1.1, not 550 5.1.1 */
};

struct dtable_ent {
	uint32_t seq;
	uint8_t mode;		/* enum dtable_mode */
	uint8_t miss_policy;	/* enum dtable_miss */
	uint16_t flags;		/* enum dtable_flags */
	uint64_t key_hi, key_lo;
	uint32_t harvest_threshold; /* invalid RCPTs per window per source; 0 = global */
	uint32_t _pad0;
	uint8_t _reserved[SHM_CACHE_LINE - 32];
};
_Static_assert(sizeof(struct dtable_ent) == SHM_CACHE_LINE, "dtable_ent size");

struct dtable_info {
	uint8_t mode, miss_policy;
	uint16_t flags;
	uint32_t harvest_threshold;
};

/* Reader: true and *out filled when the domain is managed. */
bool dtable_lookup(const struct shm_map *m, const struct rg_key128 *key,
		   struct dtable_info *out);

/* Writer: insert/update (0 or -ENOSPC), delete (0 or -ENOENT). */
int dtable_put(struct shm_map *m, const struct rg_key128 *key, const struct dtable_info *in);
int dtable_del(struct shm_map *m, const struct rg_key128 *key);

/* Key of a domain name (lowercased by the caller). */
static inline void dtable_key(const struct shm_map *m, const char *dom, size_t len,
			      struct rg_key128 *out)
{
	khash128(shm_hdr(m)->hash_key, dom, len, out);
}

#endif
