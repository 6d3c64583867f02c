/*
 * ttl.h — how long verdicts live and when they are re-checked.
 *
 * Each cached verdict has two times: refresh_at (re-check it from then on,
 * while still serving it) and expiry (stop serving it).  Valid and invalid
 * verdicts have their own pair (ttl_valid/refresh_valid,
 * ttl_invalid/refresh_invalid): a valid verdict is kept long (a wrong one
 * only lets mail through to the destination, which then decides), an invalid
 * one briefly (a wrong one refuses mail to a mailbox that now exists).
 *
 * The rule, as Postfix's verify(8) keeps it: A FAILED PROBE NEVER CLOBBERS A
 * CACHED VERDICT BEFORE IT EXPIRES.  A temporary failure or an unverifiable
 * answer leaves the cached valid/invalid verdict in place (re-tried after
 * ttl_tempfail), and only a definite answer (2xx, or 5.1.x) replaces it.
 * Verdicts set by hand or from a static list are never refreshed by callout.
 * Thread: any; pure functions.
 */
#ifndef RG_TTL_H
#define RG_TTL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "store.h"

enum ttl_outcome {
	TTL_STORE = 0,	/* *out is the new record: store and publish it */
	TTL_KEEP,	/* keep the cached record; *out has its new refresh time */
	TTL_NONE,	/* nothing to cache (temporary/unverifiable, no verdict) */
};

/* The probe result, as core_verdict values: VALID, INVALID, TEMPFAIL,
 * UNVERIFIABLE.  old may be NULL (nothing cached). */
enum ttl_outcome ttl_apply(const struct config_dom *d, const struct store_rec *old,
			   int result, uint64_t now, struct store_rec *out);

/* Still to be served at now. */
bool ttl_live(const struct store_rec *r, uint64_t now);

/* Due for a background re-check at now (live, past refresh_at, from a
 * callout). */
bool ttl_refresh_due(const struct store_rec *r, uint64_t now);

/* Fill a record for a verdict set by hand (ttl 0 = pinned, never expires). */
void ttl_manual(struct store_rec *r, bool valid, uint32_t ttl, uint64_t now);

#endif
