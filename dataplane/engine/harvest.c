/*
 * harvest.c — sliding-window invalid-recipient counts per source prefix
 * (see harvest.h).  The window is the classic two-bucket estimate: the
 * previous window's count weighted by how much of it still overlaps.
 * Runs on the owning worker lcore.
 */
#include <string.h>

#include "harvest.h"

size_t harvest_mem_size(uint32_t slots)
{
	return (size_t)slots * sizeof(struct harvest_slot);
}

void harvest_init(struct harvest *h, void *mem, uint32_t slots, uint32_t window_ms,
		  uint32_t seed)
{
	h->slots = mem;
	h->mask = slots ? slots - 1 : 0;
	h->window_ms = window_ms ? window_ms : 1;
	h->seed = seed;
	memset(mem, 0, harvest_mem_size(slots));
}

static uint32_t key_hash(const struct harvest *h, const uint8_t *k, uint8_t plen)
{
	uint32_t x = h->seed ^ plen;
	for (unsigned i = 0; i < 16; i += 4) {
		uint32_t w;
		memcpy(&w, k + i, 4);
		x = (x ^ w) * 0x9e3779b1u;
		x ^= x >> 15;
	}
	return x;
}

static uint32_t count_one(struct harvest *h, uint8_t family, const uint8_t *addr,
			  unsigned plen, uint32_t now_ms)
{
	uint8_t k[16] = {0};
	unsigned bytes = plen / 8;
	struct harvest_slot *s;
	uint32_t el, w = h->window_ms;

	memcpy(k, addr, bytes);
	s = &h->slots[key_hash(h, k, (uint8_t)plen) & h->mask];
	if (s->family != family || s->plen != plen || memcmp(s->key, k, 16) != 0) {
		memcpy(s->key, k, 16);
		s->family = family;
		s->plen = (uint8_t)plen;
		s->win_start = now_ms;
		s->cur = s->prev = 0;
	}
	el = now_ms - s->win_start;
	if (el >= 2 * w) {
		s->prev = 0;
		s->cur = 0;
		s->win_start = now_ms;
		el = 0;
	} else if (el >= w) {
		s->prev = s->cur;
		s->cur = 0;
		s->win_start += w;
		el -= w;
	}
	s->cur++;
	return s->cur + (uint32_t)((uint64_t)s->prev * (w - el) / w);
}

unsigned harvest_note(struct harvest *h, uint8_t family, const uint8_t *addr,
		      uint32_t now_ms, uint32_t threshold, uint32_t *count)
{
	static const unsigned v4[] = {32, 24}, v6[] = {64};
	const unsigned *pl = family == 4 ? v4 : v6;
	unsigned n = family == 4 ? 2 : 1, hit = 0;

	if (!threshold || !h->slots)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		uint32_t c = count_one(h, family, addr, pl[i], now_ms);
		if (c >= threshold && !hit) {
			hit = pl[i];
			*count = c;
		}
	}
	return hit;
}
