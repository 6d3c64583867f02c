/*
 * fleet.h — several rcptgated boxes sharing one state through Redis
 * (redis-server, libhiredis): verdicts as keys with their TTL plus a capped
 * update stream every node applies to its store and table, a look into
 * Redis before a callout, and one callout per address per fleet (a short
 * per-address lock; the other nodes wait for the verdict on the stream,
 * bounded, then decide alone).  Redis down is single-box behaviour: the
 * node answers from its own table and store, calls out alone (counted as
 * uncoordinated), keeps what it learned for Redis's return, reconnects with
 * backoff, logs the outage once, and resynchronises (from its last stream
 * id, or from the keys when the stream was trimmed past it).
 *
 * A service (services.h): it uses the core's fleet hooks (core.h) and the
 * event loop; hiredis's asynchronous client is plugged into the loop through
 * its adapter hooks, so the loop never waits for Redis.  Docs: docs/fleet.md.
 * Thread: main thread only.
 */
#ifndef RG_FLEET_H
#define RG_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

#define FLEET_OUTBOX_MAX 65536u	/* verdicts kept while Redis is away */
#define FLEET_GATES_MAX 262144u	/* addresses waiting at the gate at once */
#define FLEET_XREAD_COUNT 512u	/* stream entries per read */
#define FLEET_XREAD_BLOCK_MS 1000u
#define FLEET_SCAN_COUNT 1000u	/* keys per SCAN step of a resync */
#define FLEET_BACKOFF_MIN_MS 100u
#define FLEET_REC_MAX 400u	/* an encoded verdict */
#define FLEET_POS_FILE "fleet-stream.pos"	/* in the store's directory */
#define FLEET_BATCH_MAX 256u		/* addresses per gate or share script call */
#define FLEET_HARVEST_SLOTS 4096u	/* source prefixes counted between flushes */
#define FLEET_HARVEST_FLUSH_MS 100u	/* local counts added to Redis this often */

/* Read the fleet's table hash secret: 32 hex digits on the first line of
 * path.  0, or -errno with err saying why (the secret is never printed). */
int fleet_secret_read(const char *path, uint8_t key[16], char *err, size_t errlen);

/* Encoding of one verdict as the keys and the stream carry it
 * ("1 verdict source flags updated refresh_at expiry code addr").
 * fleet_rec_encode returns the length (< FLEET_REC_MAX) or -ENAMETOOLONG;
 * fleet_rec_decode 0 with addr (size RG_ADDR_MAX + 1) and *rec filled,
 * or -EINVAL for anything malformed. */
int fleet_rec_encode(const char *addr, size_t len, const struct store_rec *rec, char *out);
int fleet_rec_decode(const char *s, size_t n, char *addr, size_t *len, struct store_rec *rec);

int fleet_start(const struct config *cfg, char *err, size_t errlen);
int fleet_reload(const struct config *cfg, char *err, size_t errlen);
void fleet_stop(void);
/* Counters for `rcptctl stats` (group "fleet"). */
void fleet_stats_foreach(core_stat_fn fn, void *arg);

#endif
