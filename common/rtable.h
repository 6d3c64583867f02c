/*
 * rtable.h — the recipient table: verdicts keyed by the 128-bit keyed hash of
 * the canonical address, in shared memory.  One writer (rcptgated), many
 * readers in other processes (rcptgate-dp lcores) that map it read-only.
 *
 * Layout: buckets of one cache line each (struct rtable_bucket), 3 slots per
 * bucket, open addressing: a key lives in its home bucket (the top log2 bits
 * of key.hi) or at most rtable_max_probe buckets after it; a home bucket's
 * `ovf` counts its keys living further on, so a miss usually costs one cache
 * line.  A slot stores key.hi (64 bits) and, in its value word, the top 24
 * bits of key.lo: 88 bits of the keyed hash are compared, so a false match
 * needs ~2^88 tries per slot, and the secret key keeps senders from aiming.
 * The home index comes from stored bits so growth can rehash without the
 * original address.
 *
 * Memory-ordering contract (a per-bucket sequence lock, readers never write):
 *   W1  writer: seq = s+1 (relaxed store), then a release fence: no slot store
 *       below can become visible before the odd seq.
 *   W2  writer: slot and ovf stores (relaxed atomic 64/16-bit stores).
 *   W3  writer: seq = s+2 (release store): slot stores visible before the even seq.
 *   R1  reader: s1 = seq (acquire load); odd -> retry.
 *   R2  reader: slot loads (relaxed atomic).
 *   R3  reader: acquire fence, then s2 = seq (relaxed load); s1 != s2 -> retry.
 *       The fence orders R2 before R3, so a reader that saw any W2 store also
 *       sees W1's odd seq or W3's new seq, and retries: no torn slot is used.
 *   R4  past the home bucket a reader stops once it has seen `ovf` keys homed
 *       there (or at the end of the window); having stopped early it issues
 *       an acquire fence and re-reads home's seq: changed -> retry.  The
 *       writer bumps home's ovf (its own W1-W3) before storing a displaced
 *       slot and clears a displaced slot before lowering ovf, so a reader
 *       that saw a key inserted after its ovf read has synchronised with
 *       that insert's W3, sees home's seq moved, and cannot have counted it
 *       in place of the key it looks for.
 *   Readers retry at most RTABLE_READ_RETRIES times, then report a miss
 *   (counted): the packet path never spins behind the writer, and a miss only
 *   forwards.  The writer waits for readers only as G5 says, bounded.
 *
 * Growth and rebuild (two slabs, quiescent-state based reclamation):
 *   G1  the writer fills the inactive slab (2x buckets for growth, same size
 *       for a flush/rebuild) bucket by bucket, in rtable_maintain() steps and
 *       RTABLE_PUT_MIGRATE buckets per put, while applying every update to
 *       both slabs, so nothing is lost meanwhile.
 *   G2  it then publishes the new slab: store-release of hdr.rtable_gen
 *       (gen+1; slab = gen & 1) after the slab's log2 is stored.
 *   G3  readers load-acquire rtable_gen at every lookup, and at each quiescent
 *       point (between bursts) store-release it into their shm_lcore.qsbr_gen.
 *   G4  the old slab is reused only after every online reader has published
 *       qsbr_gen >= the new gen, or is dead (pid gone) or offline.  Until then
 *       the writer keeps applying updates to the new slab only and defers.
 *   G5  a put returns 0 only once its key is in the live slab, so a reader
 *       that learnt the put returned (through any release/acquire pair) loads
 *       that generation or a later one at G3, and finds the key.  A put that meets a full probe
 *       window in the live slab makes room first, in the writer: it finishes
 *       a migration under way synchronously and publishes it (G2), or waits
 *       for the readers' quiescent points (G4; readers never wait, and the
 *       writer gives up with -EAGAIN after RTABLE_RECLAIM_WAIT_MS so a
 *       stopped reader cannot hang it; for RTABLE_STALL_BACKOFF_MS after
 *       that, such puts fail at once) and starts growth, then tries again.
 *       While a migration runs each put also copies RTABLE_PUT_MIGRATE
 *       buckets, so growth keeps up with any insertion rate.  Only at
 *       rtable_max_log2 does a put fail with -ENOSPC (counted in `full`).
 */
#ifndef RG_RTABLE_H
#define RG_RTABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "khash.h"
#include "shm.h"
#include "stats.h"

#define RTABLE_SLOTS 3u
#define RTABLE_READ_RETRIES 64u
#define RTABLE_DEF_MAX_PROBE 64u	/* readers stop early (R4): a wide window
					 * costs only keys that overflow */
#define RTABLE_PUT_MIGRATE 16u	/* buckets copied per put while growing */
#define RTABLE_RECLAIM_WAIT_MS 1000u	/* longest a put waits for readers (G5) */
#define RTABLE_STALL_BACKOFF_MS 10000u	/* after such a wait ran out, puts that
					 * need the old slab fail at once */

enum rtable_verdict {
	RT_NONE = 0,	/* empty slot / not found */
	RT_VALID = 1,
	RT_INVALID = 2,
};

enum rtable_source {
	RT_SRC_CALLOUT = 0,
	RT_SRC_LIST = 1,
	RT_SRC_MANUAL = 2,
	RT_SRC_POLICY = 3,
};

enum rtable_flags {
	RT_F_STALE = 1u << 0,	/* past refresh time, refresh in progress */
	RT_F_PINNED = 1u << 1,	/* set by hand without TTL */
};

struct rtable_val {
	uint8_t verdict;	/* enum rtable_verdict */
	uint8_t source;		/* enum rtable_source, 3 bits */
	uint8_t flags;		/* enum rtable_flags, 3 bits */
	uint64_t expiry;	/* CLOCK_REALTIME seconds; 0 = never */
};

struct rtable_slot {
	uint64_t tag;		/* key.hi */
	uint64_t word;		/* chk:24 | verdict:2 | source:3 | flags:3 | expiry:32 */
};

struct rtable_bucket {
	uint32_t seq;		/* even = stable; see the contract above */
	uint16_t ovf;		/* keys homed here that live in later buckets */
	uint16_t _pad0;
	uint64_t _pad1;
	struct rtable_slot slot[RTABLE_SLOTS];
};
_Static_assert(sizeof(struct rtable_bucket) == SHM_CACHE_LINE, "bucket is a cache line");
_Static_assert(offsetof(struct rtable_bucket, slot) == 16, "slot offset");

/* ---- readers (data plane) ---- */

struct rtable_reader {
	const struct shm_hdr *hdr;
	const uint8_t *base;		/* read-only mapping of the file */
	struct shm_lcore *lc;		/* this reader's published state, or NULL */
	uint64_t retries;		/* reads that had to retry (private) */
	uint64_t gave_up;		/* reads reported as a miss after retries */
};

void rtable_reader_init(struct rtable_reader *r, const struct shm_map *m,
			struct shm_lcore *lc);

/* Mark this reader online (qsbr at the current generation) / offline. */
void rtable_reader_online(struct rtable_reader *r, uint32_t pid, uint32_t lcore_id);
void rtable_reader_offline(struct rtable_reader *r);

/* A quiescent point: the reader holds nothing read before now. Call between
 * bursts. now_ns is CLOCK_MONOTONIC (coarse is fine). */
static inline void rtable_quiescent(struct rtable_reader *r, uint64_t now_ns)
{
	uint64_t gen = __atomic_load_n(&r->hdr->rtable_gen, __ATOMIC_ACQUIRE); /* G3 */
	if (r->lc) {
		__atomic_store_n(&r->lc->heartbeat_ns, now_ns, __ATOMIC_RELAXED);
		__atomic_store_n(&r->lc->qsbr_gen, gen, __ATOMIC_RELEASE);	/* G3 */
	}
}

/* Look one key up: true and *out filled when present (expired or not: the
 * caller compares out->expiry with its clock via rtable_val_live()). */
bool rtable_lookup(struct rtable_reader *r, const struct rg_key128 *key,
		   struct rtable_val *out);

/* Up to 64 keys: prefetches every home bucket first.  Returns a bit mask of
 * the keys found; out[i] is filled for those. */
uint64_t rtable_lookup_burst(struct rtable_reader *r, const struct rg_key128 *keys,
			     unsigned n, struct rtable_val *out);

static inline bool rtable_val_live(const struct rtable_val *v, uint64_t now_s)
{
	return v->expiry == 0 || v->expiry > now_s;
}

/* ---- the writer (rcptgated) ---- */

struct rtable_writer_stats {
	uint64_t inserts, updates, deletes, expired;
	uint64_t full;		/* puts refused: probe limit at maximum size */
	uint64_t grows, rebuilds, migrated;
	uint64_t reclaim_waits;	/* maintain() calls that deferred reclamation */
	uint64_t sync_migrations;	/* puts that finished a migration (G5) */
	uint64_t reclaim_sync_waits;	/* puts that waited for readers (G5) */
	uint64_t stalls;	/* puts given up: a reader held the old slab */
	uint64_t migrate_restarts;	/* migrations restarted one size up */
};

struct rtable_writer {
	struct shm_map *map;
	struct shm_hdr *hdr;
	/* migration state (G1) */
	int migrating;		/* 1 while filling the inactive slab */
	uint32_t migrate_pos;	/* next bucket of the live slab to copy */
	uint32_t target_log2;
	int migrate_bad;	/* the target could not place a key: restart */
	int grow_blocked;	/* no larger slab can place every key */
	uint64_t stalled_ns;	/* CLOCK_MONOTONIC of the last wait that ran out */
	/* reclamation (G4) */
	int reclaim_pending;	/* old slab still possibly read */
	uint64_t reclaim_gen;	/* generation readers must reach */
	uint32_t expire_pos;	/* expiry scan cursor */
	uint64_t count[2];	/* live entries per slab */
	int slab_clean[2];	/* slab known to be all zero */
	struct rtable_writer_stats st;
};

/* Attach the writer to a map created by shm_create()/shm_open_writer(). */
void rtable_writer_init(struct rtable_writer *w, struct shm_map *m);

/* Insert or update.  0 once the key is visible to readers (G5); -ENOSPC
 * when the table is at its maximum size and the key's probe window is full;
 * -EAGAIN when growth was needed but a reader held the old slab for
 * RTABLE_RECLAIM_WAIT_MS (counted in `stalls`).  A put that finds the table
 * over 2/3 full starts growth, continued by later puts and rtable_maintain(). */
int rtable_put(struct rtable_writer *w, const struct rg_key128 *key,
	       const struct rtable_val *val);

/* 0, or -ENOENT. */
int rtable_del(struct rtable_writer *w, const struct rg_key128 *key);

/* Writer-side read of the live slab. */
bool rtable_get(const struct rtable_writer *w, const struct rg_key128 *key,
		struct rtable_val *out);

/* Drop every entry: switches to an empty generation of the initial size.
 * -EAGAIN while a growth or reclamation is under way. */
int rtable_flush(struct rtable_writer *w);

/* Call from the writer's loop: migrates up to budget buckets, publishes a new
 * generation when migration is complete, reclaims an old slab once readers
 * are quiescent.  Returns true while work remains. */
bool rtable_maintain(struct rtable_writer *w, uint32_t budget, uint64_t now_mono_ns);

/* Remove entries expired before now_s, scanning at most budget buckets.
 * Returns the number removed. */
unsigned rtable_expire(struct rtable_writer *w, uint64_t now_s, uint32_t budget);

/* Live entries in the table the readers see. */
uint64_t rtable_count(const struct rtable_writer *w);

/* Force growth to log2 buckets (tests, pre-sizing). */
int rtable_grow_to(struct rtable_writer *w, uint32_t log2);

#endif
