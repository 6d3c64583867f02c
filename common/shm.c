/*
 * shm.c — creating, validating and mapping the shared-memory file (shm.h).
 * Writer side runs in rcptgated's main thread; reader side once in
 * rcptgate-dp's main lcore before the workers start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "khash.h"
#include "rtable.h"
#include "dtable.h"
#include "shm.h"
#include "spsc.h"
#include "stats.h"
#include "msg.h"

/* Files are sized in 2 MiB steps so the same layout works on hugetlbfs. */
#define SHM_SIZE_ALIGN (2u << 20)

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static int is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

void shm_params_default(struct shm_params *p)
{
	p->max_lcores = SHM_DEF_MAX_LCORES;
	p->dtable_slots = SHM_DEF_DTABLE_SLOTS;
	p->rtable_init_log2 = SHM_DEF_RTABLE_INIT_LOG2;
	p->rtable_max_log2 = SHM_DEF_RTABLE_MAX_LOG2;
	p->miss_slots = SHM_DEF_MISS_SLOTS;
	p->event_slots = SHM_DEF_EVENT_SLOTS;
	p->hash_key = NULL;
}

struct layout {
	uint64_t dtable_off, rtable_off[2], slab_size, rw_off, stride, total;
	uint32_t miss_ring_off, event_ring_off;
};

static void layout_for(const struct shm_params *p, struct layout *l)
{
	l->dtable_off = SHM_PAGE;
	l->slab_size = align_up((uint64_t)sizeof(struct rtable_bucket) << p->rtable_max_log2,
				SHM_PAGE);
	l->rtable_off[0] = align_up(l->dtable_off + (uint64_t)p->dtable_slots *
						       sizeof(struct dtable_ent), SHM_PAGE);
	l->rtable_off[1] = l->rtable_off[0] + l->slab_size;
	l->rw_off = l->rtable_off[1] + l->slab_size;
	l->miss_ring_off = sizeof(struct shm_lcore);
	l->event_ring_off = (uint32_t)align_up(
		l->miss_ring_off + spsc_bytes(p->miss_slots, sizeof(struct msg_miss)),
		SHM_CACHE_LINE);
	l->stride = align_up(l->event_ring_off +
				     spsc_bytes(p->event_slots, sizeof(struct msg_event)),
			     SHM_PAGE);
	l->total = align_up(l->rw_off + l->stride * p->max_lcores, SHM_SIZE_ALIGN);
}

uint64_t shm_size_for(const struct shm_params *p)
{
	struct layout l;
	layout_for(p, &l);
	return l.total;
}

static int params_check(const struct shm_params *p, char *err, size_t errlen)
{
	if (p->max_lcores == 0 || p->max_lcores > SHM_MAX_LCORES)
		return fail(err, errlen, -EINVAL, "max_lcores %u not in 1..%u", p->max_lcores,
			    SHM_MAX_LCORES);
	if (!is_pow2(p->dtable_slots) || !is_pow2(p->miss_slots) || !is_pow2(p->event_slots))
		return fail(err, errlen, -EINVAL,
			    "dtable_slots, miss_slots, event_slots must be powers of two");
	if (p->rtable_init_log2 < 4 || p->rtable_max_log2 > 30 ||
	    p->rtable_init_log2 > p->rtable_max_log2)
		return fail(err, errlen, -EINVAL,
			    "table size log2 init %u max %u: need 4 <= init <= max <= 30",
			    p->rtable_init_log2, p->rtable_max_log2);
	return 0;
}

int shm_validate(const struct shm_hdr *h, uint64_t file_size, char *err, size_t errlen)
{
	if (file_size < sizeof(*h))
		return fail(err, errlen, -EPROTO, "file is %llu bytes, smaller than a header (%zu)",
			    (unsigned long long)file_size, sizeof(*h));
	if (memcmp(h->magic, SHM_MAGIC, sizeof(h->magic)) != 0)
		return fail(err, errlen, -EPROTO, "bad magic: not an rcptgate shared-memory file");
	if (h->abi_version != SHM_ABI_VERSION)
		return fail(err, errlen, -EPROTO, "abi version %u, expected %u", h->abi_version,
			    SHM_ABI_VERSION);
#define CHECK_SIZE(field, type)                                                            \
	if (h->field != sizeof(type))                                                      \
		return fail(err, errlen, -EPROTO, #type " size %u, expected %zu", h->field,  \
			    sizeof(type));
	CHECK_SIZE(hdr_size, struct shm_hdr)
	CHECK_SIZE(sz_rtable_bucket, struct rtable_bucket)
	CHECK_SIZE(sz_dtable_ent, struct dtable_ent)
	CHECK_SIZE(sz_lcore, struct shm_lcore)
	CHECK_SIZE(sz_spsc_hdr, struct spsc_hdr)
	CHECK_SIZE(miss_rec_size, struct msg_miss)
	CHECK_SIZE(event_rec_size, struct msg_event)
#undef CHECK_SIZE
	if (h->total_size != file_size)
		return fail(err, errlen, -EPROTO, "file is %llu bytes, header says %llu",
			    (unsigned long long)file_size, (unsigned long long)h->total_size);
	struct shm_params p = {
		.max_lcores = h->max_lcores,
		.dtable_slots = h->dtable_slots,
		.rtable_init_log2 = h->rtable_init_log2,
		.rtable_max_log2 = h->rtable_max_log2,
		.miss_slots = h->miss_slots,
		.event_slots = h->event_slots,
	};
	char perr[128];
	if (params_check(&p, perr, sizeof(perr)) != 0)
		return fail(err, errlen, -EPROTO, "bad header parameters: %s", perr);
	struct layout l;
	layout_for(&p, &l);
	if (l.dtable_off != h->dtable_off || l.rtable_off[0] != h->rtable_off[0] ||
	    l.rtable_off[1] != h->rtable_off[1] || l.slab_size != h->rtable_slab_size ||
	    l.rw_off != h->rw_off || l.stride != h->lcore_stride ||
	    l.miss_ring_off != h->miss_ring_off || l.event_ring_off != h->event_ring_off ||
	    l.total != h->total_size)
		return fail(err, errlen, -EPROTO, "region offsets differ from this build's layout");
	if (h->rtable_log2[0] > h->rtable_max_log2 || h->rtable_log2[1] > h->rtable_max_log2 ||
	    h->rtable_max_probe == 0 || h->rtable_max_probe > 64)
		return fail(err, errlen, -EPROTO, "table size beyond its slab");
	return 0;
}

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int map_file(int fd, uint64_t size, int prot, uint64_t off, void **out)
{
	void *p = mmap(NULL, size, prot, MAP_SHARED, fd, (off_t)off);
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

int shm_create(const char *path, const struct shm_params *p, struct shm_map *out,
	       char *err, size_t errlen)
{
	int rc = params_check(p, err, errlen);
	if (rc)
		return rc;
	struct layout l;
	layout_for(p, &l);

	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp))
		return fail(err, errlen, -ENAMETOOLONG, "%s: path too long", path);
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: %s", tmp, strerror(errno));
	if (ftruncate(fd, (off_t)l.total) != 0) {
		rc = fail(err, errlen, -errno, "%s: cannot size to %llu bytes: %s", tmp,
			  (unsigned long long)l.total, strerror(errno));
		goto out_unlink;
	}
	void *base = NULL;
	if ((rc = map_file(fd, l.total, PROT_READ | PROT_WRITE, 0, &base)) != 0) {
		fail(err, errlen, rc, "%s: mmap %llu bytes: %s", tmp, (unsigned long long)l.total,
		     strerror(-rc));
		goto out_unlink;
	}
	struct shm_hdr *h = base;
	memcpy(h->magic, SHM_MAGIC, sizeof(h->magic));
	h->abi_version = SHM_ABI_VERSION;
	h->hdr_size = sizeof(*h);
	h->total_size = l.total;
	h->created_ns = now_ns(CLOCK_REALTIME);
	h->state = SHM_STATE_INIT;
	h->writer_pid = (uint32_t)getpid();
	h->heartbeat_ns = now_ns(CLOCK_MONOTONIC);
	h->epoch_s = 0; /* expiry words hold unix seconds as u32 (to 2106) */
	if (p->hash_key)
		memcpy(h->hash_key, p->hash_key, sizeof(h->hash_key));
	else if ((rc = khash_new_key(h->hash_key)) != 0) {
		fail(err, errlen, rc, "getrandom: %s", strerror(-rc));
		munmap(base, l.total);
		goto out_unlink;
	}
	h->sz_rtable_bucket = sizeof(struct rtable_bucket);
	h->sz_dtable_ent = sizeof(struct dtable_ent);
	h->sz_lcore = sizeof(struct shm_lcore);
	h->sz_spsc_hdr = sizeof(struct spsc_hdr);
	h->dtable_off = l.dtable_off;
	h->dtable_slots = p->dtable_slots;
	h->rtable_off[0] = l.rtable_off[0];
	h->rtable_off[1] = l.rtable_off[1];
	h->rtable_slab_size = l.slab_size;
	h->rtable_log2[0] = p->rtable_init_log2;
	h->rtable_log2[1] = p->rtable_init_log2;
	h->rtable_max_log2 = p->rtable_max_log2;
	h->rtable_init_log2 = p->rtable_init_log2;
	h->rtable_max_probe = RTABLE_DEF_MAX_PROBE;
	h->rtable_gen = 0;
	h->rw_off = l.rw_off;
	h->lcore_stride = l.stride;
	h->max_lcores = p->max_lcores;
	h->miss_slots = p->miss_slots;
	h->miss_rec_size = sizeof(struct msg_miss);
	h->event_slots = p->event_slots;
	h->event_rec_size = sizeof(struct msg_event);
	h->miss_ring_off = l.miss_ring_off;
	h->event_ring_off = l.event_ring_off;
	for (uint32_t i = 0; i < p->max_lcores; i++) {
		uint8_t *reg = (uint8_t *)base + l.rw_off + (uint64_t)i * l.stride;
		spsc_init((struct spsc_hdr *)(reg + l.miss_ring_off), p->miss_slots,
			  sizeof(struct msg_miss));
		spsc_init((struct spsc_hdr *)(reg + l.event_ring_off), p->event_slots,
			  sizeof(struct msg_event));
	}
	__atomic_store_n(&h->state, SHM_STATE_ACTIVE, __ATOMIC_RELEASE);

	/* Retire the file we replace only once the new one is in place, so a
	 * reader that sees RETIRED and re-opens the path finds the new file. */
	int oldfd = open(path, O_RDWR | O_CLOEXEC);
	if (rename(tmp, path) != 0) {
		rc = fail(err, errlen, -errno, "rename %s -> %s: %s", tmp, path, strerror(errno));
		if (oldfd >= 0)
			close(oldfd);
		munmap(base, l.total);
		goto out_unlink;
	}
	if (oldfd >= 0) {
		struct stat st;
		void *ob = NULL;
		if (fstat(oldfd, &st) == 0 && (uint64_t)st.st_size >= sizeof(struct shm_hdr) &&
		    map_file(oldfd, sizeof(struct shm_hdr), PROT_READ | PROT_WRITE, 0, &ob) == 0) {
			struct shm_hdr *oh = ob;
			if (memcmp(oh->magic, SHM_MAGIC, sizeof(oh->magic)) == 0)
				__atomic_store_n(&oh->state, SHM_STATE_RETIRED, __ATOMIC_RELEASE);
			munmap(ob, sizeof(struct shm_hdr));
		}
		close(oldfd);
	}
	out->base = base;
	out->rw = (uint8_t *)base + l.rw_off;
	out->size = l.total;
	out->writable_table = 1;
	out->fd = fd;
	return 0;

out_unlink:
	unlink(tmp);
	close(fd);
	return rc;
}

static int open_and_map(const char *path, int writer, struct shm_map *out, char *err,
			size_t errlen)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int rc = -errno;
		close(fd);
		return fail(err, errlen, rc, "%s: %s", path, strerror(-rc));
	}
	uint64_t size = (uint64_t)st.st_size;
	void *base = NULL;
	int rc;
	if (size < sizeof(struct shm_hdr)) {
		close(fd);
		return fail(err, errlen, -EPROTO, "%s: file is %llu bytes, smaller than a header",
			    path, (unsigned long long)size);
	}
	rc = map_file(fd, size, writer ? PROT_READ | PROT_WRITE : PROT_READ, 0, &base);
	if (rc) {
		close(fd);
		return fail(err, errlen, rc, "%s: mmap: %s", path, strerror(-rc));
	}
	char verr[200];
	if ((rc = shm_validate(base, size, verr, sizeof(verr))) != 0) {
		munmap(base, size);
		close(fd);
		return fail(err, errlen, rc, "%s: %s", path, verr);
	}
	const struct shm_hdr *h = base;
	out->base = base;
	out->size = size;
	out->fd = fd;
	out->writable_table = writer;
	if (writer) {
		out->rw = (uint8_t *)base + h->rw_off;
	} else {
		void *rw = NULL;
		rc = map_file(fd, size - h->rw_off, PROT_READ | PROT_WRITE, h->rw_off, &rw);
		if (rc) {
			munmap(base, size);
			close(fd);
			return fail(err, errlen, rc, "%s: mmap rw region: %s", path, strerror(-rc));
		}
		out->rw = rw;
	}
	return 0;
}

int shm_open_writer(const char *path, const struct shm_params *p, struct shm_map *out,
		    char *err, size_t errlen)
{
	int rc = params_check(p, err, errlen);
	if (rc)
		return rc;
	if (access(path, F_OK) != 0)
		return fail(err, errlen, -ENOENT, "%s: %s", path, strerror(errno));
	rc = open_and_map(path, 1, out, err, errlen);
	if (rc == -EPROTO)
		return -ESTALE;
	if (rc)
		return rc;
	struct shm_hdr *h = shm_hdr(out);
	const char *what = NULL;
	if (h->max_lcores != p->max_lcores)
		what = "max_lcores";
	else if (h->dtable_slots != p->dtable_slots)
		what = "dtable_slots";
	else if (h->rtable_max_log2 != p->rtable_max_log2)
		what = "table maximum size";
	else if (h->miss_slots != p->miss_slots || h->event_slots != p->event_slots)
		what = "ring sizes";
	else if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) == SHM_STATE_RETIRED)
		what = "state (retired)";
	else if (p->hash_key && memcmp(h->hash_key, p->hash_key, sizeof(h->hash_key)))
		what = "hash secret";
	if (what) {
		fail(err, errlen, -ESTALE, "%s: %s differs from the configuration", path, what);
		shm_detach(out);
		return -ESTALE;
	}
	h->writer_pid = (uint32_t)getpid();
	shm_heartbeat(out);
	return 0;
}

int shm_attach_reader(const char *path, struct shm_map *out, char *err, size_t errlen)
{
	int rc = open_and_map(path, 0, out, err, errlen);
	if (rc)
		return rc;
	uint32_t st = __atomic_load_n(&shm_hdr(out)->state, __ATOMIC_ACQUIRE);
	if (st != SHM_STATE_ACTIVE) {
		shm_detach(out);
		return fail(err, errlen, st == SHM_STATE_RETIRED ? -ESTALE : -EAGAIN,
			    "%s: %s", path,
			    st == SHM_STATE_RETIRED ? "retired; a newer file replaced it"
						    : "not ready yet");
	}
	return 0;
}

void shm_detach(struct shm_map *m)
{
	if (!m->base)
		return;
	const struct shm_hdr *h = shm_hdr(m);
	if (!m->writable_table && m->rw)
		munmap(m->rw, m->size - h->rw_off);
	munmap(m->base, m->size);
	if (m->fd >= 0)
		close(m->fd);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

void shm_heartbeat(struct shm_map *m)
{
	__atomic_store_n(&shm_hdr(m)->heartbeat_ns, now_ns(CLOCK_MONOTONIC), __ATOMIC_RELAXED);
}
