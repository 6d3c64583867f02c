/*
 * testshm.h — a throwaway shared-memory file for the common tests.
 */
#ifndef RG_TESTSHM_H
#define RG_TESTSHM_H

#include <stdio.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "shm.h"

static inline void testshm_path(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "/dev/shm/rg-test-%s-%d", tag, (int)getpid());
}

static inline void testshm_create(struct shm_map *m, const char *path, uint32_t init_log2,
				  uint32_t max_log2)
{
	struct shm_params p;
	char err[256];
	shm_params_default(&p);
	p.max_lcores = 4;
	p.rtable_init_log2 = init_log2;
	p.rtable_max_log2 = max_log2;
	p.miss_slots = 64;
	p.event_slots = 64;
	unlink(path);
	int rc = shm_create(path, &p, m, err, sizeof(err));
	cr_assert_eq(rc, 0, "shm_create: %s", err);
}

#endif
