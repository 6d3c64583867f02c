/*
 * rings.h — draining the data plane's per-lcore rings: the miss ring
 * (recipients to verify) and the event ring (rejections, deferrals, harvest
 * reports).  rcptgated is every ring's single consumer.
 * Thread: main thread only.
 */
#ifndef RG_RINGS_H
#define RG_RINGS_H

#include <stdint.h>

#include "msg.h"
#include "shm.h"

struct rings_stats {
	uint64_t misses, events, bad_records;
};

typedef void (*rings_miss_fn)(const struct msg_miss *m, void *arg);
typedef void (*rings_event_fn)(const struct msg_event *e, void *arg);

/* Drain up to budget records per ring; returns how many were consumed. */
unsigned rings_drain(struct shm_map *m, unsigned budget, rings_miss_fn on_miss,
		     rings_event_fn on_event, void *arg, struct rings_stats *st);

/* Sum of ring depths and producer drops over all lcores. */
void rings_depths(const struct shm_map *m, uint64_t *miss_depth, uint64_t *miss_drops,
		  uint64_t *event_depth, uint64_t *event_drops);

#endif
