/*
 * publish.h — rcptgated's side of the shared memory: creates the file (or
 * re-attaches to the one a previous run left, so a running data plane keeps
 * its mapping), writes verdicts into the recipient table and domain flags
 * into the domain table, and keeps the file alive: heartbeat every second,
 * table maintenance (growth, reclamation) and expiry scans in bounded steps.
 * Thread: main thread only (the table's single writer).
 */
#ifndef RG_PUBLISH_H
#define RG_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dtable.h"
#include "khash.h"
#include "rtable.h"
#include "shm.h"

struct publish {
	struct shm_map map;
	struct rtable_writer w;
	bool reattached;	/* found a compatible file from a previous run */
	uint64_t last_heartbeat_ms;
	uint64_t puts, dels, put_errors, dtable_errors;
};

/* Open or create the file per cfg.  0 or -errno with err. */
int publish_open(struct publish *p, const struct config *cfg, char *err, size_t errlen);
void publish_close(struct publish *p);

/* Table key of a canonical address. */
void publish_key(const struct publish *p, const char *addr, size_t len, struct rg_key128 *k);

/* Put a verdict (verdict RT_VALID/RT_INVALID; expiry realtime s, 0 never). */
int publish_put(struct publish *p, const char *addr, size_t len, uint8_t verdict,
		uint8_t source, uint8_t flags, uint64_t expiry);
int publish_del(struct publish *p, const char *addr, size_t len);
bool publish_get(const struct publish *p, const char *addr, size_t len, struct rtable_val *v);

/* Put one domain's entry.  name lowercased. */
int publish_domain(struct publish *p, const char *name, const struct dtable_info *info);
int publish_domain_del(struct publish *p, const char *name);

/* Housekeeping, every loop turn: heartbeat (1/s), maintenance, expiry. */
void publish_tick(struct publish *p, uint64_t now_ms, uint64_t wall_s);

#endif
