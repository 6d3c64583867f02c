/*
 * ttl.c — verdict lifetimes and the refresh rule (see ttl.h).
 * Thread: any; pure functions.
 */
#include "ttl.h"

#include <string.h>

#include "core.h"
#include "rtable.h"

bool ttl_live(const struct store_rec *r, uint64_t now)
{
	return r->expiry == 0 || r->expiry > now;
}

bool ttl_refresh_due(const struct store_rec *r, uint64_t now)
{
	return r->source == RT_SRC_CALLOUT && !(r->flags & RT_F_PINNED) && r->refresh_at &&
	       r->refresh_at <= now && ttl_live(r, now);
}

enum ttl_outcome ttl_apply(const struct config_dom *d, const struct store_rec *old, int result,
			   uint64_t now, struct store_rec *out)
{
	memset(out, 0, sizeof(*out));
	out->version = STORE_REC_VERSION;
	out->source = RT_SRC_CALLOUT;
	out->updated = now;
	out->last_seen = old ? old->last_seen : now;
	switch (result) {
	case CORE_V_VALID:
		out->verdict = RT_VALID;
		out->refresh_at = now + d->refresh_valid;
		out->expiry = now + d->ttl_valid;
		return TTL_STORE;
	case CORE_V_INVALID:
		out->verdict = RT_INVALID;
		out->refresh_at = now + d->refresh_invalid;
		out->expiry = now + d->ttl_invalid;
		return TTL_STORE;
	default:
		break;
	}
	/* a failed probe: never clobber what is cached and still live */
	if (old && ttl_live(old, now)) {
		*out = *old;
		uint64_t retry = now + d->ttl_tempfail;
		if (out->expiry && retry > out->expiry)
			retry = out->expiry;
		if (out->refresh_at)
			out->refresh_at = retry;
		return TTL_KEEP;
	}
	return TTL_NONE;
}

void ttl_manual(struct store_rec *r, bool valid, uint32_t ttl, uint64_t now)
{
	memset(r, 0, sizeof(*r));
	r->version = STORE_REC_VERSION;
	r->verdict = valid ? RT_VALID : RT_INVALID;
	r->source = RT_SRC_MANUAL;
	r->flags = ttl ? 0 : RT_F_PINNED;
	r->updated = now;
	r->last_seen = now;
	r->refresh_at = 0;
	r->expiry = ttl ? now + ttl : 0;
}
