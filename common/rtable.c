/*
 * rtable.c — the recipient table (see rtable.h for the layout and the
 * memory-ordering contract; the tags W1-W3, R1-R3, G1-G4 below refer to it).
 * Readers: rcptgate-dp lcores.  Writer: rcptgated's main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "rtable.h"

#define CHK_SHIFT 40
#define VERDICT_SHIFT 38
#define SOURCE_SHIFT 35
#define FLAGS_SHIFT 32
#define EXPIRY_MASK 0xffffffffull

/* A key as the table stores it: all of key.hi, the top 24 bits of key.lo. */
struct ikey {
	uint64_t tag;
	uint64_t chk;
};

static inline struct ikey ikey_of(const struct rg_key128 *k)
{
	return (struct ikey){k->hi, k->lo >> CHK_SHIFT};
}

static inline uint32_t home_of(uint64_t tag, uint32_t log2)
{
	return (uint32_t)(tag >> (64 - log2));
}

static inline unsigned word_verdict(uint64_t w)
{
	return (unsigned)(w >> VERDICT_SHIFT) & 3u;
}

static inline uint64_t word_make(uint64_t chk, const struct rtable_val *v, uint64_t epoch)
{
	uint64_t rel = 0;
	if (v->expiry) {
		rel = v->expiry > epoch ? v->expiry - epoch : 1;
		if (rel > EXPIRY_MASK)
			rel = EXPIRY_MASK;
	}
	return chk << CHK_SHIFT | (uint64_t)(v->verdict & 3u) << VERDICT_SHIFT |
	       (uint64_t)(v->source & 7u) << SOURCE_SHIFT |
	       (uint64_t)(v->flags & 7u) << FLAGS_SHIFT | rel;
}

static inline void word_decode(uint64_t w, uint64_t epoch, struct rtable_val *v)
{
	uint64_t rel = w & EXPIRY_MASK;
	v->verdict = (uint8_t)word_verdict(w);
	v->source = (uint8_t)((w >> SOURCE_SHIFT) & 7u);
	v->flags = (uint8_t)((w >> FLAGS_SHIFT) & 7u);
	v->expiry = rel ? epoch + rel : 0;
}

static inline const struct rtable_bucket *slab_ro(const uint8_t *base,
						  const struct shm_hdr *h, unsigned s)
{
	return (const struct rtable_bucket *)(base + h->rtable_off[s]);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/* ---- readers ---- */

enum { B_MISS = 0, B_HIT = 1, B_BUSY = -1 };

/* One consistent read of a bucket (R1-R3): B_HIT with *word, or B_MISS with
 * *ovf and, in *homed, how many of its keys have their home at `home`; or
 * B_BUSY when the writer kept it busy for every retry.  *seq is the even
 * sequence the read was consistent with. */
static inline int bucket_read(const struct rtable_bucket *b, struct ikey k, uint32_t home,
			      uint32_t log2, uint64_t *word, uint16_t *ovf, unsigned *homed,
			      uint32_t *seq, uint64_t *retries)
{
	for (unsigned t = 0; t < RTABLE_READ_RETRIES; t++) {
		uint32_t s1 = __atomic_load_n(&b->seq, __ATOMIC_ACQUIRE); /* R1 */
		if (s1 & 1u) {
			(*retries)++;
			cpu_relax();
			continue;
		}
		int hit = B_MISS;
		uint64_t w = 0;
		unsigned nh = 0;
		for (unsigned i = 0; i < RTABLE_SLOTS; i++) { /* R2 */
			uint64_t tag = __atomic_load_n(&b->slot[i].tag, __ATOMIC_RELAXED);
			uint64_t wd = __atomic_load_n(&b->slot[i].word, __ATOMIC_RELAXED);
			if (!word_verdict(wd))
				continue;
			if (tag == k.tag && (wd >> CHK_SHIFT) == k.chk) {
				w = wd;
				hit = B_HIT;
				break;
			}
			nh += home_of(tag, log2) == home;
		}
		uint16_t o = __atomic_load_n(&b->ovf, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE); /* R3 */
		if (__atomic_load_n(&b->seq, __ATOMIC_RELAXED) != s1) {
			(*retries)++;
			continue;
		}
		*word = w;
		*ovf = o;
		*homed = nh;
		*seq = s1;
		return hit;
	}
	return B_BUSY;
}

void rtable_reader_init(struct rtable_reader *r, const struct shm_map *m,
			struct shm_lcore *lc)
{
	memset(r, 0, sizeof(*r));
	r->hdr = shm_hdr(m);
	r->base = m->base;
	r->lc = lc;
}

void rtable_reader_online(struct rtable_reader *r, uint32_t pid, uint32_t lcore_id)
{
	if (!r->lc)
		return;
	r->lc->pid = pid;
	r->lc->lcore_id = lcore_id;
	__atomic_store_n(&r->lc->qsbr_gen, __atomic_load_n(&r->hdr->rtable_gen, __ATOMIC_ACQUIRE),
			 __ATOMIC_RELEASE);
	__atomic_store_n(&r->lc->online, 1, __ATOMIC_RELEASE);
}

void rtable_reader_offline(struct rtable_reader *r)
{
	if (r->lc)
		__atomic_store_n(&r->lc->online, 0, __ATOMIC_RELEASE);
}

static inline bool lookup_in(struct rtable_reader *r, const struct rtable_bucket *slab,
			     uint32_t log2, struct ikey k, struct rtable_val *out)
{
	const struct shm_hdr *h = r->hdr;
	uint32_t mask = (1u << log2) - 1;
	uint32_t idx = home_of(k.tag, log2);
	uint64_t w;
	uint16_t ovf, o2;
	unsigned homed;
	uint32_t hs, s2;
	for (unsigned t = 0; t < RTABLE_READ_RETRIES; t++) {
		int rc = bucket_read(&slab[idx], k, idx, log2, &w, &ovf, &homed, &hs, &r->retries);
		if (rc == B_HIT)
			goto hit;
		if (rc == B_BUSY)
			break;
		if (!ovf)
			return false;
		/* walk on until every key homed here that lives further on was
		 * seen (R4), or to the end of the window */
		unsigned seen = 0;
		uint32_t i;
		for (i = 1; i <= h->rtable_max_probe && seen < ovf; i++) {
			rc = bucket_read(&slab[(idx + i) & mask], k, idx, log2, &w, &o2, &homed, &s2,
					 &r->retries);
			if (rc == B_HIT)
				goto hit;
			if (rc == B_BUSY)
				goto busy;
			seen += homed;
		}
		if (i > h->rtable_max_probe)
			return false;
		__atomic_thread_fence(__ATOMIC_ACQUIRE); /* R4 */
		if (__atomic_load_n(&slab[idx].seq, __ATOMIC_RELAXED) == hs)
			return false;
		r->retries++;
	}
busy:
	r->gave_up++;
	return false;
hit:
	word_decode(w, h->epoch_s, out);
	return true;
}

bool rtable_lookup(struct rtable_reader *r, const struct rg_key128 *key, struct rtable_val *out)
{
	const struct shm_hdr *h = r->hdr;
	uint64_t gen = __atomic_load_n(&h->rtable_gen, __ATOMIC_ACQUIRE); /* G3 */
	unsigned s = (unsigned)(gen & 1);
	return lookup_in(r, slab_ro(r->base, h, s), h->rtable_log2[s], ikey_of(key), out);
}

uint64_t rtable_lookup_burst(struct rtable_reader *r, const struct rg_key128 *keys,
			     unsigned n, struct rtable_val *out)
{
	const struct shm_hdr *h = r->hdr;
	uint64_t gen = __atomic_load_n(&h->rtable_gen, __ATOMIC_ACQUIRE); /* G3 */
	unsigned s = (unsigned)(gen & 1);
	uint32_t log2 = h->rtable_log2[s];
	const struct rtable_bucket *slab = slab_ro(r->base, h, s);
	uint64_t hits = 0;
	if (n > 64)
		n = 64;
	for (unsigned i = 0; i < n; i++)
		__builtin_prefetch(&slab[home_of(keys[i].hi, log2)], 0, 3);
	for (unsigned i = 0; i < n; i++)
		if (lookup_in(r, slab, log2, ikey_of(&keys[i]), &out[i]))
			hits |= 1ull << i;
	return hits;
}

/* ---- the writer ---- */

static inline struct rtable_bucket *slab_rw(struct rtable_writer *w, unsigned s)
{
	return (struct rtable_bucket *)(w->map->base + w->hdr->rtable_off[s]);
}

static inline unsigned live_slab(const struct rtable_writer *w)
{
	return (unsigned)(w->hdr->rtable_gen & 1);
}

static inline void write_begin(struct rtable_bucket *b)
{
	__atomic_store_n(&b->seq, b->seq + 1, __ATOMIC_RELAXED); /* W1 */
	__atomic_thread_fence(__ATOMIC_RELEASE);		  /* W1 */
}

static inline void write_end(struct rtable_bucket *b)
{
	__atomic_store_n(&b->seq, b->seq + 1, __ATOMIC_RELEASE); /* W3 */
}

static inline void slot_store(struct rtable_slot *sl, uint64_t tag, uint64_t word)
{
	__atomic_store_n(&sl->tag, tag, __ATOMIC_RELAXED);   /* W2 */
	__atomic_store_n(&sl->word, word, __ATOMIC_RELAXED); /* W2 */
}

static inline void ovf_store(struct rtable_bucket *b, int delta)
{
	__atomic_store_n(&b->ovf, (uint16_t)(b->ovf + delta), __ATOMIC_RELAXED); /* W2 */
}

/* Where a key sits in a slab: bucket offset from home and slot, or -1.
 * Stops once every key homed here that lives further on was seen. */
static int slab_find(struct rtable_bucket *slab, uint32_t log2, uint32_t max_probe,
		     struct ikey k, uint32_t *bidx, unsigned *slot)
{
	uint32_t mask = (1u << log2) - 1;
	uint32_t home = home_of(k.tag, log2);
	uint32_t ovf = slab[home].ovf, seen = 0;
	for (uint32_t i = 0; i <= max_probe; i++) {
		struct rtable_bucket *b = &slab[(home + i) & mask];
		for (unsigned j = 0; j < RTABLE_SLOTS; j++) {
			uint64_t wd = b->slot[j].word;
			if (!word_verdict(wd))
				continue;
			if (b->slot[j].tag == k.tag && (wd >> CHK_SHIFT) == k.chk) {
				*bidx = (home + i) & mask;
				*slot = j;
				return (int)i;
			}
			seen += i && home_of(b->slot[j].tag, log2) == home;
		}
		if (seen >= ovf)
			break;
	}
	return -1;
}

/* 1 inserted, 0 updated, -ENOSPC. */
static int slab_put(struct rtable_writer *w, unsigned s, struct ikey k, uint64_t word)
{
	struct rtable_bucket *slab = slab_rw(w, s);
	uint32_t log2 = w->hdr->rtable_log2[s];
	uint32_t mask = (1u << log2) - 1;
	uint32_t bi;
	unsigned j;
	if (slab_find(slab, log2, w->hdr->rtable_max_probe, k, &bi, &j) >= 0) {
		if (slab[bi].slot[j].word != word) {
			write_begin(&slab[bi]);
			slot_store(&slab[bi].slot[j], k.tag, word);
			write_end(&slab[bi]);
		}
		return 0;
	}
	uint32_t home = home_of(k.tag, log2);
	for (uint32_t i = 0; i <= w->hdr->rtable_max_probe; i++) {
		struct rtable_bucket *b = &slab[(home + i) & mask];
		for (j = 0; j < RTABLE_SLOTS; j++) {
			if (word_verdict(b->slot[j].word))
				continue;
			if (i) {
				/* ovf first: a reader that sees the slot below
				 * then sees home's seq moved (R4) */
				write_begin(&slab[home]);
				ovf_store(&slab[home], +1);
				write_end(&slab[home]);
			}
			write_begin(b);
			slot_store(&b->slot[j], k.tag, word);
			write_end(b);
			w->count[s]++;
			w->slab_clean[s] = 0;
			return 1;
		}
	}
	return -ENOSPC;
}

static int slab_del(struct rtable_writer *w, unsigned s, struct ikey k)
{
	struct rtable_bucket *slab = slab_rw(w, s);
	uint32_t log2 = w->hdr->rtable_log2[s];
	uint32_t bi;
	unsigned j;
	int off = slab_find(slab, log2, w->hdr->rtable_max_probe, k, &bi, &j);
	if (off < 0)
		return -ENOENT;
	write_begin(&slab[bi]);
	slot_store(&slab[bi].slot[j], 0, 0);
	write_end(&slab[bi]);
	if (off) {
		uint32_t home = home_of(k.tag, log2);
		write_begin(&slab[home]);
		ovf_store(&slab[home], -1);
		write_end(&slab[home]);
	}
	w->count[s]--;
	return 0;
}

static void slab_clear(struct rtable_writer *w, unsigned s)
{
	if (w->slab_clean[s])
		return;
	/* Give the pages back on tmpfs; fall back to zeroing in place. */
	if (fallocate(w->map->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)w->hdr->rtable_off[s], (off_t)w->hdr->rtable_slab_size) != 0)
		memset(slab_rw(w, s), 0, w->hdr->rtable_slab_size);
	w->count[s] = 0;
	w->slab_clean[s] = 1;
}

static uint64_t slab_scan_count(struct rtable_writer *w, unsigned s)
{
	const struct rtable_bucket *slab = slab_rw(w, s);
	uint64_t n = 0;
	for (uint32_t i = 0; i < (1u << w->hdr->rtable_log2[s]); i++)
		for (unsigned j = 0; j < RTABLE_SLOTS; j++)
			n += word_verdict(slab[i].slot[j].word) != 0;
	return n;
}

void rtable_writer_init(struct rtable_writer *w, struct shm_map *m)
{
	memset(w, 0, sizeof(*w));
	w->map = m;
	w->hdr = shm_hdr(m);
	unsigned s = live_slab(w);
	w->count[s] = slab_scan_count(w, s);
	__atomic_store_n(&w->hdr->rtable_count, w->count[s], __ATOMIC_RELAXED);
	/* A previous writer may have switched generations just before it
	 * stopped: treat the other slab as possibly still read (G4). */
	w->reclaim_pending = 1;
	w->reclaim_gen = w->hdr->rtable_gen;
}

/* Start filling the inactive slab with log2 buckets (G1). */
static int start_migration(struct rtable_writer *w, uint32_t log2)
{
	if (w->migrating || w->reclaim_pending)
		return -EAGAIN;
	unsigned t = live_slab(w) ^ 1u;
	slab_clear(w, t);
	w->hdr->rtable_log2[t] = log2;
	w->target_log2 = log2;
	w->migrate_pos = 0;
	w->migrate_bad = 0;
	w->migrating = 1;
	return 0;
}

static void publish(struct rtable_writer *w)
{
	uint64_t gen = w->hdr->rtable_gen + 1;
	__atomic_store_n(&w->hdr->rtable_gen, gen, __ATOMIC_RELEASE); /* G2 */
	__atomic_store_n(&w->hdr->rtable_count, w->count[gen & 1], __ATOMIC_RELAXED);
	w->migrating = 0;
	w->grow_blocked = 0;
	w->reclaim_pending = 1;
	w->reclaim_gen = gen;
}

/* G4: has every live reader passed a quiescent point since reclaim_gen? */
static bool readers_quiescent(struct rtable_writer *w)
{
	for (uint32_t i = 0; i < w->hdr->max_lcores; i++) {
		const struct shm_lcore *lc = shm_lcore_at(w->map, i);
		if (!__atomic_load_n(&lc->online, __ATOMIC_ACQUIRE))
			continue;
		if (__atomic_load_n(&lc->qsbr_gen, __ATOMIC_ACQUIRE) >= w->reclaim_gen)
			continue;
		/* a reader whose process is gone holds nothing */
		if (lc->pid && kill((pid_t)lc->pid, 0) != 0 && errno == ESRCH)
			continue;
		return false;
	}
	return true;
}

/* Reclaim the old slab if every reader has moved on (G4).  true when done. */
static bool try_reclaim(struct rtable_writer *w)
{
	if (!w->reclaim_pending)
		return true;
	if (!readers_quiescent(w))
		return false;
	w->reclaim_pending = 0;
	slab_clear(w, live_slab(w) ^ 1u);
	return true;
}

/* Copy up to budget buckets of the live slab into the target (G1); publish
 * the target once every bucket is copied (G2).  A key the target cannot place
 * (its window full even at twice the size) makes the migration start over one
 * size up, or give up at the maximum: the live slab still holds everything,
 * so nothing is lost either way. */
static void migrate_step(struct rtable_writer *w, uint32_t budget)
{
	unsigned s = live_slab(w), t = s ^ 1u;
	uint32_t n = 1u << w->hdr->rtable_log2[s];
	const struct rtable_bucket *slab = slab_rw(w, s);
	while (budget-- && w->migrate_pos < n && !w->migrate_bad) {
		const struct rtable_bucket *b = &slab[w->migrate_pos++];
		for (unsigned j = 0; j < RTABLE_SLOTS; j++) {
			uint64_t wd = b->slot[j].word;
			if (!word_verdict(wd))
				continue;
			struct ikey k = {b->slot[j].tag, wd >> CHK_SHIFT};
			/* the live slab is always current, so an upsert is right (G1) */
			if (slab_put(w, t, k, wd) < 0)
				w->migrate_bad = 1;
			w->st.migrated++;
		}
	}
	if (w->migrate_bad) {
		w->migrating = 0;
		w->st.migrate_restarts++;
		if (w->target_log2 < w->hdr->rtable_max_log2)
			start_migration(w, w->target_log2 + 1);
		else
			w->grow_blocked = 1; /* the maximum: the live slab is all there is */
		return;
	}
	if (w->migrate_pos == n)
		publish(w);
}

/* Grow when over 2/3 full: reclaims first if it can (never waits). */
static void maybe_grow(struct rtable_writer *w)
{
	unsigned s = live_slab(w);
	uint32_t log2 = w->hdr->rtable_log2[s];
	uint64_t cap = (uint64_t)RTABLE_SLOTS << log2;
	if (w->migrating || w->grow_blocked || log2 >= w->hdr->rtable_max_log2 ||
	    w->count[s] * 3 <= cap * 2)
		return;
	if (!try_reclaim(w))
		return;
	if (start_migration(w, log2 + 1) == 0)
		w->st.grows++;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A put met a full window in the live slab: make room there, the writer
 * doing whatever work that takes (G5).  0 when the put may be tried again,
 * -ENOSPC at the maximum size, -EAGAIN when a reader held the old slab past
 * RTABLE_RECLAIM_WAIT_MS. */
static int make_room(struct rtable_writer *w)
{
	if (w->migrating) {
		/* finish the growth under way now: the key lands in the new slab */
		w->st.sync_migrations++;
		while (w->migrating)
			migrate_step(w, UINT32_MAX);
		return 0;
	}
	unsigned s = live_slab(w);
	uint32_t log2 = w->hdr->rtable_log2[s];
	if (log2 >= w->hdr->rtable_max_log2 || w->grow_blocked)
		return -ENOSPC;
	if (!try_reclaim(w)) {
		uint64_t now = mono_ns();
		if (w->stalled_ns && now - w->stalled_ns < RTABLE_STALL_BACKOFF_MS * 1000000ull) {
			/* a reader just held the old slab past the wait: a bulk
			 * load must not wait again for every key */
			w->st.stalls++;
			return -EAGAIN;
		}
		/* readers pass a quiescent point every burst: wait for them */
		w->st.reclaim_sync_waits++;
		uint64_t deadline = now + RTABLE_RECLAIM_WAIT_MS * 1000000ull;
		struct timespec nap = {0, 50000};
		while (!try_reclaim(w)) {
			if (mono_ns() > deadline) {
				w->st.stalls++;
				w->stalled_ns = mono_ns();
				return -EAGAIN;
			}
			nanosleep(&nap, NULL);
		}
	}
	w->stalled_ns = 0;
	if (start_migration(w, log2 + 1))
		return -EAGAIN; /* not reached: neither migrating nor reclaiming */
	w->st.grows++;
	return 0;
}

int rtable_put(struct rtable_writer *w, const struct rg_key128 *key,
	       const struct rtable_val *val)
{
	if (val->verdict != RT_VALID && val->verdict != RT_INVALID)
		return -EINVAL;
	struct ikey k = ikey_of(key);
	uint64_t word = word_make(k.chk, val, w->hdr->epoch_s);
	unsigned s;
	int rc;
	/* G5: return only once the key is in the slab readers see */
	for (;;) {
		s = live_slab(w);
		rc = slab_put(w, s, k, word);
		if (rc >= 0)
			break;
		int r = make_room(w);
		if (r < 0) {
			if (r == -ENOSPC)
				w->st.full++;
			return r;
		}
	}
	if (w->migrating) {
		/* every update goes to both slabs while the new one fills (G1); a
		 * target that cannot place it restarts the migration one size up */
		if (slab_put(w, s ^ 1u, k, word) < 0)
			w->migrate_bad = 1;
		/* and each put carries a share of the copying, so growth keeps up
		 * with any insertion rate */
		migrate_step(w, RTABLE_PUT_MIGRATE);
	}
	if (rc == 1)
		w->st.inserts++;
	else
		w->st.updates++;
	__atomic_store_n(&w->hdr->rtable_count, w->count[live_slab(w)], __ATOMIC_RELAXED);
	maybe_grow(w);
	return 0;
}

int rtable_del(struct rtable_writer *w, const struct rg_key128 *key)
{
	struct ikey k = ikey_of(key);
	unsigned s = live_slab(w);
	int rc = slab_del(w, s, k);
	if (w->migrating) {
		int rc2 = slab_del(w, s ^ 1u, k);
		if (rc != 0)
			rc = rc2;
	}
	if (rc == 0) {
		w->st.deletes++;
		__atomic_store_n(&w->hdr->rtable_count, w->count[s], __ATOMIC_RELAXED);
	}
	return rc;
}

bool rtable_get(const struct rtable_writer *w, const struct rg_key128 *key,
		struct rtable_val *out)
{
	struct rtable_writer *ww = (struct rtable_writer *)w;
	unsigned s = live_slab(w);
	struct rtable_bucket *slab = slab_rw(ww, s);
	uint32_t bi;
	unsigned j;
	if (slab_find(slab, w->hdr->rtable_log2[s], w->hdr->rtable_max_probe, ikey_of(key), &bi,
		      &j) < 0)
		return false;
	word_decode(slab[bi].slot[j].word, w->hdr->epoch_s, out);
	return true;
}

uint64_t rtable_count(const struct rtable_writer *w)
{
	return w->count[live_slab(w)];
}

bool rtable_maintain(struct rtable_writer *w, uint32_t budget, uint64_t now_mono_ns)
{
	(void)now_mono_ns;
	if (w->reclaim_pending) {
		if (!try_reclaim(w)) {
			w->st.reclaim_waits++;
			return true;
		}
		maybe_grow(w);
	}
	if (!w->migrating)
		return false;
	migrate_step(w, budget);
	return true;
}

int rtable_flush(struct rtable_writer *w)
{
	if (w->migrating || w->reclaim_pending)
		return -EAGAIN;
	unsigned t = live_slab(w) ^ 1u;
	slab_clear(w, t);
	w->hdr->rtable_log2[t] = w->hdr->rtable_init_log2;
	publish(w);
	w->st.rebuilds++;
	return 0;
}

unsigned rtable_expire(struct rtable_writer *w, uint64_t now_s, uint32_t budget)
{
	unsigned s = live_slab(w);
	uint32_t n = 1u << w->hdr->rtable_log2[s];
	struct rtable_bucket *slab = slab_rw(w, s);
	uint64_t epoch = w->hdr->epoch_s;
	unsigned removed = 0;
	while (budget--) {
		if (w->expire_pos >= n)
			w->expire_pos = 0;
		struct rtable_bucket *b = &slab[w->expire_pos++];
		for (unsigned j = 0; j < RTABLE_SLOTS; j++) {
			uint64_t wd = b->slot[j].word;
			uint64_t rel = wd & EXPIRY_MASK;
			if (!word_verdict(wd) || !rel || epoch + rel > now_s)
				continue;
			struct rg_key128 key = {b->slot[j].tag, (wd >> CHK_SHIFT) << CHK_SHIFT};
			if (rtable_del(w, &key) == 0) {
				removed++;
				w->st.expired++;
			}
		}
	}
	return removed;
}

int rtable_grow_to(struct rtable_writer *w, uint32_t log2)
{
	if (log2 > w->hdr->rtable_max_log2)
		return -EINVAL;
	for (;;) {
		while (w->migrating)
			rtable_maintain(w, UINT32_MAX, 0);
		if (log2 <= w->hdr->rtable_log2[live_slab(w)])
			return 0;
		if (w->grow_blocked)
			return -ENOSPC;
		rtable_maintain(w, 0, 0);
		if (w->reclaim_pending)
			return -EAGAIN; /* a reader still holds the other slab */
		if (!w->migrating) {
			int rc = start_migration(w, w->hdr->rtable_log2[live_slab(w)] + 1);
			if (rc)
				return rc;
			w->st.grows++;
		}
	}
}
