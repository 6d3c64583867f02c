/*
 * rings.c — consumer side of the miss and event rings (spsc.h contract:
 * peek reads a complete record, release hands the slot back).  Records are
 * checked before use: lengths beyond their fields are counted and skipped,
 * since the rings live in memory the data plane writes.
 * Thread: main thread only.
 */
#include "rings.h"

#include "spsc.h"
#include "stats.h"

static struct spsc_hdr *ring_at(const struct shm_map *m, unsigned i, uint32_t off)
{
	return (struct spsc_hdr *)((uint8_t *)shm_lcore_at(m, i) + off);
}

unsigned rings_drain(struct shm_map *m, unsigned budget, rings_miss_fn on_miss,
		     rings_event_fn on_event, void *arg, struct rings_stats *st)
{
	const struct shm_hdr *h = shm_hdr(m);
	unsigned total = 0;
	for (unsigned i = 0; i < h->max_lcores; i++) {
		struct spsc_hdr *mr = ring_at(m, i, h->miss_ring_off);
		for (unsigned n = 0; n < budget; n++) {
			const struct msg_miss *rec = spsc_peek(mr);
			if (!rec)
				break;
			if (rec->len == 0 || rec->len > RG_ADDR_MAX) {
				st->bad_records++;
			} else {
				st->misses++;
				on_miss(rec, arg);
			}
			spsc_release(mr);
			total++;
		}
		struct spsc_hdr *er = ring_at(m, i, h->event_ring_off);
		for (unsigned n = 0; n < budget; n++) {
			const struct msg_event *ev = spsc_peek(er);
			if (!ev)
				break;
			if (ev->helo_len > sizeof(ev->helo) || ev->from_len > sizeof(ev->from) ||
			    ev->rcpt_len > sizeof(ev->rcpt) || (ev->family != 4 && ev->family != 6)) {
				st->bad_records++;
			} else {
				st->events++;
				on_event(ev, arg);
			}
			spsc_release(er);
			total++;
		}
	}
	return total;
}

void rings_depths(const struct shm_map *m, uint64_t *miss_depth, uint64_t *miss_drops,
		  uint64_t *event_depth, uint64_t *event_drops)
{
	const struct shm_hdr *h = shm_hdr(m);
	*miss_depth = *miss_drops = *event_depth = *event_drops = 0;
	for (unsigned i = 0; i < h->max_lcores; i++) {
		struct spsc_hdr *mr = ring_at(m, i, h->miss_ring_off);
		struct spsc_hdr *er = ring_at(m, i, h->event_ring_off);
		*miss_depth += spsc_count(mr);
		*miss_drops += spsc_drops(mr);
		*event_depth += spsc_count(er);
		*event_drops += spsc_drops(er);
	}
}
