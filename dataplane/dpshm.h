/*
 * dpshm.h — rcptgate-dp's attachment to the shared-memory file: waiting for
 * rcptgated to create it, refusing an ABI mismatch, and switching the
 * workers to a new file when the header says RETIRED (rcptgated re-created
 * it).  The main thread attaches and detaches; workers switch at their
 * quiescent points (worker.c); the telemetry thread reads under the lock.
 */
#ifndef RG_DPSHM_H
#define RG_DPSHM_H

#include <pthread.h>
#include <stdint.h>

#include "shm.h"

struct dpshm {
	struct shm_map map[2];	/* current and, during a switch, the previous */
	unsigned cur;		/* index of the current map */
	uint64_t gen;		/* bumped (release) at every attach; workers ack it */
	unsigned need_lcores;	/* regions the file must have */
	pthread_mutex_t lock;	/* held by main while maps change; by telemetry reads */
};

void dpshm_init(struct dpshm *s, unsigned need_lcores);

/*
 * Attach to path, retrying every retry_s seconds with a message while it is
 * absent, not ready or retired; gives up when *quit becomes nonzero (-EINTR).
 * An ABI mismatch (or a file with too few lcore regions) is fatal: -EPROTO.
 */
int dpshm_attach_wait(struct dpshm *s, const char *path, unsigned retry_s,
		      volatile int *quit);

/* True when the current file's header says RETIRED. */
int dpshm_retired(const struct dpshm *s);

static inline struct shm_map *dpshm_cur(struct dpshm *s)
{
	return &s->map[__atomic_load_n(&s->cur, __ATOMIC_ACQUIRE)];
}

static inline uint64_t dpshm_gen(const struct dpshm *s)
{
	return __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
}

/* Detach the map that is not current (after every worker acked the switch). */
void dpshm_drop_old(struct dpshm *s);

void dpshm_fini(struct dpshm *s);

#endif
