/*
 * stats.c — counter names and sums over lcores (rcptgated, rcptctl, tests).
 */
#include "stats.h"

const char *const stats_names[STAT__COUNT] = {
#define STATS_NAME(id, name, help) name,
	STATS_LIST(STATS_NAME)
#undef STATS_NAME
};

const char *const stats_help[STAT__COUNT] = {
#define STATS_HELP(id, name, help) help,
	STATS_LIST(STATS_HELP)
#undef STATS_HELP
};

uint64_t stats_sum(const struct shm_map *m, enum stats_id id)
{
	const struct shm_hdr *h = shm_hdr(m);
	uint64_t sum = 0;
	for (uint32_t i = 0; i < h->max_lcores; i++)
		sum += stats_read(shm_lcore_at(m, i), id);
	return sum;
}
