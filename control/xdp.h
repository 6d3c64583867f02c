/*
 * xdp.h — rcptgated's xdp module: xdp_start/reload/stop (core.h), xdp_block,
 * xdp_unblock, xdp_blocks_foreach, xdp_stats_foreach.  It watches every
 * port pinned under xdp_pin_dir, keeps the blocklist (manual blocks and
 * harvest blocks with backoff, never an allowlisted prefix) in all of them,
 * and expires it.  The maps themselves are the map layer's
 * (bpf/rg_maps.h).
 *
 * Thread: rcptgated's main (event-loop) thread.
 * Errors are 0 / -errno, with a message for people in err when given.
 */
#ifndef RG_XDP_H
#define RG_XDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../bpf/rg_maps.h"	/* found without bpf/ on the include path */


/* ---------------------------------------------------------------------- */
/* rcptgated's xdp module (RG_HAVE_XDP).  xdp_start & co are in core.h.    */

#define XDP_MOD_PORTS_MAX 16	/* ports watched under xdp_pin_dir */
#define XDP_MOD_TICK_MS 1000	/* rescan ports, expire blocks */

struct xdp_block_info {
	char prefix[XDP_PREFIX_STRLEN];
	uint64_t hits;		/* SYNs dropped, summed over ports */
	uint64_t added_s;	/* CLOCK_REALTIME */
	uint64_t expires_s;	/* CLOCK_REALTIME; 0 = never */
	uint32_t offences;	/* harvest reports for this prefix (backoff step) */
	bool manual;		/* added by hand (rcptctl block / rg-xdp block) */
	unsigned ports;		/* ports whose maps hold it */
};
typedef int (*xdp_block_fn)(const struct xdp_block_info *b, void *arg);

/* rcptctl block PREFIX [--ttl S]: ttl_s 0 = until unblocked.  -EINVAL (bad
 * prefix), -EPERM (overlaps the allowlist), -ENOSPC (blocklist full),
 * -ENOTSUP (built without libbpf). */
int xdp_block(const char *prefix, uint32_t ttl_s, char *err, size_t errlen);
/* rcptctl unblock PREFIX: -ENOENT when not blocked. */
int xdp_unblock(const char *prefix, char *err, size_t errlen);
/* rcptctl blocks: every prefix in any port's maps or blocked by rcptgated. */
int xdp_blocks_foreach(xdp_block_fn fn, void *arg);

#endif
