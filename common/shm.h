/*
 * shm.h — the ABI of rcptgate's shared-memory file, the only channel between
 * rcptgated (the single writer, which creates and sizes the file) and
 * rcptgate-dp (the readers, one per data-plane lcore).
 *
 * Threads: shm_create()/shm_open_writer() run in rcptgated's main thread;
 * shm_attach_reader() runs once in rcptgate-dp's main lcore before workers start.
 *
 * Layout (every offset page aligned, every struct fixed width, no pointers):
 *
 *   0                 header (struct shm_hdr, one page)             \
 *   dtable_off        domain table (struct dtable_ent[dtable_slots])  > read-only
 *   rtable_off[0]     recipient table slab A (struct rtable_bucket[]) | for the
 *   rtable_off[1]     recipient table slab B                         /  data plane
 *   rw_off            per-lcore regions, lcore_stride apart:          \ read-write
 *                       struct shm_lcore (stats, quiescent state)      > for the
 *                       miss ring (struct spsc_hdr + records)          | data plane
 *                       event ring (struct spsc_hdr + records)        /
 *
 * The data plane maps [0, rw_off) PROT_READ and [rw_off, total_size) read-write,
 * so a bug in the packet path cannot corrupt a verdict.  On tmpfs the file is
 * sparse: table slabs are sized for the configured maximum but only the pages of
 * the current generation are ever touched.
 */
#ifndef RG_SHM_H
#define RG_SHM_H

#include <stddef.h>
#include <stdint.h>

#define SHM_MAGIC "RCPTGATE"
#define SHM_ABI_VERSION 1u
#define SHM_PAGE 4096u
#define SHM_CACHE_LINE 64u

#define SHM_MAX_LCORES 64u
#define SHM_HASH_KEY_LEN 16u

/* Address limits (RFC 5321 4.5.3.1): path incl. the angle brackets. */
#define RG_PATH_MAX 256u
#define RG_LOCAL_MAX 64u
#define RG_DOMAIN_MAX 255u
#define RG_ADDR_MAX 256u /* canonical "local@domain", no brackets, no NUL */

enum shm_state {
	SHM_STATE_INIT = 0,    /* being built by rcptgated */
	SHM_STATE_ACTIVE = 1,  /* valid, serve it */
	SHM_STATE_RETIRED = 2, /* replaced by a new file at the same path: re-attach */
};

struct shm_hdr {
	char magic[8];		/* SHM_MAGIC, no NUL */
	uint32_t abi_version;	/* SHM_ABI_VERSION */
	uint32_t hdr_size;	/* sizeof(struct shm_hdr) */
	uint64_t total_size;	/* file size */
	uint64_t created_ns;	/* CLOCK_REALTIME at creation */
	uint32_t state;		/* enum shm_state; release-stored by the writer */
	uint32_t writer_pid;
	uint64_t heartbeat_ns;	/* writer's CLOCK_MONOTONIC, updated every second */
	uint64_t epoch_s;	/* base of rtable expiry words (0: unix seconds) */
	uint8_t hash_key[SHM_HASH_KEY_LEN]; /* per-installation secret (getrandom) */

	/* sizes of every shared struct, checked on attach */
	uint32_t sz_rtable_bucket;
	uint32_t sz_dtable_ent;
	uint32_t sz_lcore;
	uint32_t sz_spsc_hdr;

	/* domain table */
	uint64_t dtable_off;
	uint32_t dtable_slots;	/* power of two */
	uint32_t dtable_count;	/* live entries (informational) */

	/* recipient table: two slabs, generation selects the live one */
	uint64_t rtable_off[2];
	uint64_t rtable_slab_size;	/* bytes reserved per slab */
	uint32_t rtable_log2[2];	/* buckets = 1 << log2, per slab */
	uint32_t rtable_max_log2;	/* slab capacity */
	uint32_t rtable_max_probe;	/* buckets a key may live past its home */
	uint64_t rtable_gen;		/* live slab = gen & 1; release-stored */
	uint64_t rtable_count;		/* live entries (informational) */

	/* per-lcore read-write regions */
	uint64_t rw_off;
	uint64_t lcore_stride;
	uint32_t max_lcores;
	uint32_t miss_slots;	/* power of two */
	uint32_t miss_rec_size;
	uint32_t event_slots;	/* power of two */
	uint32_t event_rec_size;
	uint32_t miss_ring_off;	 /* within an lcore region */
	uint32_t event_ring_off; /* within an lcore region */
	uint32_t rtable_init_log2; /* size a flush returns to */

	uint8_t _reserved[SHM_PAGE - 208];
};
_Static_assert(sizeof(struct shm_hdr) == SHM_PAGE, "shm_hdr is one page");
_Static_assert(offsetof(struct shm_hdr, abi_version) == 8, "abi_version offset");
_Static_assert(offsetof(struct shm_hdr, hash_key) == 56, "hash_key offset");
_Static_assert(offsetof(struct shm_hdr, dtable_off) == 88, "dtable_off offset");
_Static_assert(offsetof(struct shm_hdr, rtable_gen) == 144, "rtable_gen offset");
_Static_assert(offsetof(struct shm_hdr, rw_off) == 160, "rw_off offset");
_Static_assert(offsetof(struct shm_hdr, _reserved) == 208, "reserved offset");

/* Parameters the writer chooses at creation. */
struct shm_params {
	uint32_t max_lcores;	   /* <= SHM_MAX_LCORES */
	uint32_t dtable_slots;	   /* power of two */
	uint32_t rtable_init_log2; /* initial buckets */
	uint32_t rtable_max_log2;  /* maximum buckets */
	uint32_t miss_slots;	   /* power of two */
	uint32_t event_slots;	   /* power of two */
	const uint8_t *hash_key;   /* SHM_HASH_KEY_LEN bytes shared by a fleet; NULL = random */
};

/* Defaults: 16M+ entries at <= 2/3 load (3 slots per bucket, 2^23 buckets). */
#define SHM_DEF_MAX_LCORES 16u
#define SHM_DEF_DTABLE_SLOTS 4096u
#define SHM_DEF_RTABLE_INIT_LOG2 16u
#define SHM_DEF_RTABLE_MAX_LOG2 23u
#define SHM_DEF_MISS_SLOTS 4096u
#define SHM_DEF_EVENT_SLOTS 4096u

void shm_params_default(struct shm_params *p);

/* A process's view of the file. */
struct shm_map {
	uint8_t *base;		/* whole file; read-only for readers */
	uint8_t *rw;		/* the rw region (base + rw_off for the writer;
				 * a separate writable mapping for readers) */
	uint64_t size;
	int writable_table;	/* 1 for the writer */
	int fd;
};

static inline struct shm_hdr *shm_hdr(const struct shm_map *m)
{
	return (struct shm_hdr *)m->base;
}

/*
 * Create a fresh file at path (atomically: built under a temporary name, then
 * renamed over the old one, whose header is marked RETIRED).  Returns 0 or
 * -errno with a message in err.
 */
int shm_create(const char *path, const struct shm_params *p, struct shm_map *out,
	       char *err, size_t errlen);

/*
 * Re-open an existing file as its writer if it validates and was built with
 * the same parameters; returns -ESTALE (with the reason in err) when it must be
 * re-created instead, -ENOENT when absent.
 */
int shm_open_writer(const char *path, const struct shm_params *p, struct shm_map *out,
		    char *err, size_t errlen);

/* Attach as a reader: table read-only, rw region writable.  Validates. */
int shm_attach_reader(const char *path, struct shm_map *out, char *err, size_t errlen);

/*
 * Check a header against this build's ABI and the file's size.  Returns 0 or
 * -EPROTO with err saying exactly what differs ("abi version 2, expected 1").
 */
int shm_validate(const struct shm_hdr *h, uint64_t file_size, char *err, size_t errlen);

void shm_detach(struct shm_map *m);

/* Bytes a file with these parameters needs (for docs, tests and checks). */
uint64_t shm_size_for(const struct shm_params *p);

/* Writer: publish liveness (relaxed store, read by readers and rcptctl). */
void shm_heartbeat(struct shm_map *m);

#endif
