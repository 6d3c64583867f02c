/*
 * store.h — the durable verdict store (LMDB): every verdict rcptgated
 * publishes is first committed here, and on start the shared recipient table
 * is rebuilt from it, so a restart or kill -9 loses nothing that was
 * published.  Keys are "domain\0local" (canonical address split at its last
 * '@'), so one domain's verdicts are a contiguous key range (flush by domain,
 * per-domain scans).  Writes collect in one write transaction that
 * store_commit() makes durable (the daemon commits before it publishes).
 * Thread: main thread only.
 */
#ifndef RG_STORE_H
#define RG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm.h"

#define STORE_REC_VERSION 1u
#define STORE_LOCK_FILE "rcptgated.lock"	/* in the store directory: one daemon per store */
#define STORE_REPLY_MAX 160u

/* One verdict as stored (host byte order; the store is not shared). */
struct store_rec {
	uint8_t version;	/* STORE_REC_VERSION */
	uint8_t verdict;	/* enum rtable_verdict: RT_VALID / RT_INVALID */
	uint8_t source;		/* enum rtable_source */
	uint8_t flags;		/* enum rtable_flags (RT_F_PINNED) */
	uint16_t code;		/* callout reply code, 0 if none */
	uint16_t _pad0;
	uint64_t updated;	/* CLOCK_REALTIME s: learned */
	uint64_t refresh_at;	/* due for re-check; 0 = never */
	uint64_t expiry;	/* stop serving; 0 = never */
	uint64_t last_seen;	/* last asked about (miss, check, verify) */
	char reply[STORE_REPLY_MAX]; /* NUL-terminated first reply line */
};

struct store;

/* -EBUSY when another process has the store open (err names its pid). */
int store_open(struct store **out, const char *dir, uint32_t map_mb, char *err, size_t errlen);
void store_close(struct store *s);

/* 0 and *rec filled, -ENOENT, or -errno. */
int store_get(struct store *s, const char *addr, size_t len, struct store_rec *rec);
/* Queue a write in the current transaction.  0 or -errno (-ENOSPC: map
 * full).  A failed write aborts the transaction: the writes queued in it
 * are lost, and the next store_commit() returns the error. */
int store_put(struct store *s, const char *addr, size_t len, const struct store_rec *rec);
/* 0, -ENOENT, or -errno (as store_put). */
int store_del(struct store *s, const char *addr, size_t len);
/* Make every queued write durable.  0, or -errno when the commit failed or
 * writes were lost by a failed write since the last commit. */
int store_commit(struct store *s);
/* Pending (uncommitted or lost, not yet reported) writes. */
unsigned store_dirty(const struct store *s);
/* Id of the transaction the next write goes into; store_durable() says
 * whether a transaction committed (false while open, aborted, failed, or
 * more than 64 transactions ago). */
uint64_t store_txn(const struct store *s);
bool store_durable(const struct store *s, uint64_t txn);

/* Iterate from the key after (addr) (NULL = from the start), at most max
 * records; fn gets the canonical address.  Returns the number visited, and
 * in next (size RG_ADDR_MAX+1) the address to resume after ("" at the end).
 * fn returning nonzero stops early. */
typedef int (*store_fn)(const char *addr, size_t len, const struct store_rec *rec, void *arg);
long store_scan(struct store *s, const char *after, size_t max, store_fn fn, void *arg,
		char *next);

/* Remove every record of domain (NULL = all); *removed gets the count. */
int store_flush(struct store *s, const char *domain, uint64_t *removed);

uint64_t store_count(struct store *s);
const char *store_path(const struct store *s);

#endif
