/*
 * harvest.h — per-lcore counting of invalid recipients per source prefix
 * (IPv4 /32 and /24, IPv6 /64) over a sliding window, to spot dictionary
 * ("directory harvest") attacks.  A bounded direct-mapped table: a prefix that
 * collides with a busier one starts counting afresh (the table forgets, it
 * never grows).  Each lcore counts the sessions it owns, so a source spread
 * over n lcores is seen at about 1/n of its rate per lcore.
 * Runs on the owning worker lcore.
 */
#ifndef RG_ENGINE_HARVEST_H
#define RG_ENGINE_HARVEST_H

#include <stddef.h>
#include <stdint.h>

struct harvest_slot {
	uint8_t key[16];	/* masked prefix */
	uint8_t family, plen;
	uint16_t _pad0;
	uint32_t win_start;	/* ms (coarse clock) of the current window */
	uint32_t cur, prev;	/* invalid RCPTs in this and the previous window */
	uint32_t _pad1;
};

struct harvest {
	struct harvest_slot *slots;
	uint32_t mask;
	uint32_t window_ms;
	uint32_t seed;
};

size_t harvest_mem_size(uint32_t slots);
void harvest_init(struct harvest *h, void *mem, uint32_t slots, uint32_t window_ms,
		  uint32_t seed);

/*
 * Count one invalid recipient from addr (4 or 16 bytes).  Returns the prefix
 * length that reached threshold (32, 24 or 64) with its windowed count in
 * *count, or 0.  threshold 0 counts nothing.
 */
unsigned harvest_note(struct harvest *h, uint8_t family, const uint8_t *addr,
		      uint32_t now_ms, uint32_t threshold, uint32_t *count);

#endif
