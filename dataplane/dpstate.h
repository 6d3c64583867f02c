/*
 * dpstate.h — the data plane's state file: every worker's engine memory
 * (flow tables, edit lists, held and owned bytes, answers not yet
 * acknowledged, out-of-order segments, harvest windows) in one file owned by
 * rcptgate-dp, so that a restarted or upgraded rcptgate-dp takes the flows
 * over instead of breaking them.  On hugetlbfs when the path is on it (sizes
 * rounded to its page size), else any file system that maps shared
 * (/dev/shm).
 *
 * Layout: a header (this file's magic and version, total size, how flows map
 * to workers, the writer's pid and build) and one region per worker, each
 * holding one engine's block as engine_init() lays it out (the engine's own
 * header says its layout: engine.h, engine_adopt()).  No pointers: offsets.
 *
 * One process at a time: the file is locked (flock) while a data plane uses
 * it.  A second rcptgate-dp is refused, or with --takeover waits for the lock,
 * i.e. for the running one to exit, and then takes everything over.
 *
 * Flows must reach the same worker after a restart: the header records the
 * number of workers and the dispatch (RSS or software hash); with another
 * mapping the state is not taken over as it is, and its flows with offsets
 * are reset on both sides (engine_import_resets) rather than left to pass
 * untranslated.
 *
 * Main thread only, at start-up and exit.
 */
#ifndef RG_DPSTATE_H
#define RG_DPSTATE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "shm.h"

#define DPSTATE_MAGIC 0x54535044u	/* "DPST" */
#define DPSTATE_VERSION 1u
#define DPSTATE_BUILD_MAX 48u
#define DPSTATE_ALIGN (2u << 20)	/* regions start on 2 MiB boundaries */

struct dpstate_region {
	uint64_t off, size;
};

struct dpstate_hdr {
	uint32_t magic;
	uint32_t version;
	uint64_t size;		/* bytes of the file */
	uint32_t n_regions;	/* workers */
	uint32_t pid;		/* the data plane that wrote it last */
	uint32_t mapping;	/* DPSTATE_MAP(workers, sw dispatch) */
	uint32_t _pad0;
	char build[DPSTATE_BUILD_MAX];	/* the writer's version string */
	struct dpstate_region region[SHM_MAX_LCORES];
};
_Static_assert(sizeof(struct dpstate_hdr) == 80 + 16 * SHM_MAX_LCORES, "dpstate_hdr layout");

/* How flows map to workers: their number, and software dispatch (1) or RSS. */
#define DPSTATE_MAP(workers, sw) (((uint32_t)(workers) << 1) | ((sw) ? 1u : 0u))

struct dpstate {
	char path[PATH_MAX];
	int fd;			/* locked */
	uint8_t *base;
	size_t size;
	int adopt;		/* the regions hold the previous process's engines */
	/* the previous file, when it could not be taken over as it is */
	uint8_t *old;
	size_t old_size;
	unsigned old_n;
	char why[256];		/* why not (for the log) */
};

/* The default path for the shared-memory file shm: SHM.dp-state beside it. */
void dpstate_default_path(char *out, size_t len, const char *shm);

/*
 * Lock path (creating it empty when absent).  Held by another process:
 * -EBUSY with its pid in err, or with wait set, wait until it is released
 * (checking *quit every millisecond; -EINTR when set).  0 when locked.
 */
int dpstate_lock(struct dpstate *s, const char *path, int wait, volatile int *quit, char *err,
		 size_t errlen);

/*
 * After dpstate_lock: map the file for n regions of region bytes each with
 * mapping.  A file of the same shape is kept as it is (s->adopt = 1: each
 * engine takes its region over, engine_adopt() checks the rest); any other
 * (another version, size, number of workers or mapping) is kept aside for
 * engine_import_resets() (s->old, why in s->why) and replaced by a fresh
 * file.  0, or -errno with err.
 */
int dpstate_open(struct dpstate *s, unsigned n, size_t region, uint32_t mapping,
		 const char *build, char *err, size_t errlen);

/* Region i: its memory and length. */
void *dpstate_region(struct dpstate *s, unsigned i, size_t *len);

/* Region i of the previous file (NULL past its regions). */
const void *dpstate_old_region(const struct dpstate *s, unsigned i, size_t *len);

/* Done with the previous file: unmapped (its pages go with it). */
void dpstate_drop_old(struct dpstate *s);

/* Unmap and unlock; the file stays for the next process. */
void dpstate_close(struct dpstate *s);

#endif
