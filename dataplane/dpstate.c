/*
 * dpstate.c — the data plane's state file (see dpstate.h).  Main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "dpstate.h"

#define DPSTATE_HUGETLBFS_MAGIC 0x958458f6
#define DPSTATE_EXIT_WAIT_MS 2000u	/* a holder that unlocked: wait for its exit */

static size_t round_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

void dpstate_default_path(char *out, size_t len, const char *shm)
{
	snprintf(out, len, "%s.dp-state", shm);
}

/* The pid the file's header names, 0 when it names none. */
static uint32_t header_pid(int fd)
{
	struct dpstate_hdr h;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.magic != DPSTATE_MAGIC)
		return 0;
	return h.pid;
}

int dpstate_lock(struct dpstate *s, const char *path, int wait, volatile int *quit, char *err,
		 size_t errlen)
{
	uint32_t holder = 0;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if (strlen(path) >= sizeof(s->path)) {
		snprintf(err, errlen, "state file %s: path too long", path);
		return -ENAMETOOLONG;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		int e = errno;
		snprintf(err, errlen, "state file %s: %s", path, strerror(e));
		return -e;
	}
	for (;;) {
		if (flock(s->fd, LOCK_EX | LOCK_NB) == 0) {
			struct stat a, b;
			/* the holder may have replaced the file meanwhile: the lock
			 * counts only on the inode the path names now */
			if (fstat(s->fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
			    a.st_dev == b.st_dev) {
				/* the holder unlocks just before it exits: its ports
				 * (sockets, XDP program) go with the process */
				for (unsigned t = 0; holder && t < DPSTATE_EXIT_WAIT_MS; t++) {
					if (kill((pid_t)holder, 0) != 0 && errno == ESRCH)
						break;
					usleep(1000);
				}
				return 0;
			}
			close(s->fd);
			s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
			if (s->fd < 0) {
				int e = errno;
				snprintf(err, errlen, "state file %s: %s", path, strerror(e));
				return -e;
			}
			continue;
		}
		if (errno != EWOULDBLOCK) {
			int e = errno;
			snprintf(err, errlen, "state file %s: lock: %s", path, strerror(e));
			return -e;
		}
		if (!holder)
			holder = header_pid(s->fd);
		if (!wait) {
			snprintf(err, errlen,
				 "state file %s is in use by another rcptgate-dp (pid %u): stop it "
				 "first, or start this one with --takeover",
				 path, holder);
			return -EBUSY;
		}
		if (quit && __atomic_load_n(quit, __ATOMIC_RELAXED)) {
			snprintf(err, errlen, "interrupted while waiting for %s", path);
			return -EINTR;
		}
		usleep(1000);
	}
}

/* Does the mapped file have exactly the wanted shape?  Says why not. */
static int same_shape(const struct dpstate_hdr *h, size_t fsize, unsigned n, size_t region,
		      uint32_t mapping, size_t want, char *why, size_t len)
{
	if (h->magic != DPSTATE_MAGIC) {
		snprintf(why, len, "no state (no header)");
		return 0;
	}
	if (h->version != DPSTATE_VERSION) {
		snprintf(why, len, "state file version %u, this build %u", h->version,
			 DPSTATE_VERSION);
		return 0;
	}
	if (h->mapping != mapping) {
		snprintf(why, len,
			 "flows map to workers differently: the state has %u workers with %s, "
			 "now %u with %s",
			 h->mapping >> 1, (h->mapping & 1) ? "software dispatch" : "RSS",
			 mapping >> 1, (mapping & 1) ? "software dispatch" : "RSS");
		return 0;
	}
	for (unsigned i = 0; i < n && h->n_regions == n; i++)
		if (h->region[i].size != region) {
			snprintf(why, len, "region %u of %llu bytes, %zu needed (engine limits "
					   "changed)",
				 i, (unsigned long long)h->region[i].size, region);
			return 0;
		}
	if (h->n_regions != n || h->size != fsize || fsize != want) {
		snprintf(why, len, "state file of %llu bytes for %u workers, %zu needed for %u",
			 (unsigned long long)h->size, h->n_regions, want, n);
		return 0;
	}
	return 1;
}

int dpstate_open(struct dpstate *s, unsigned n, size_t region, uint32_t mapping,
		 const char *build, char *err, size_t errlen)
{
	struct stat sb;
	struct statfs fs;
	size_t page = 4096, hdr, want, fsize;
	struct dpstate_hdr *h;
	uint8_t *m;

	if (n == 0 || n > SHM_MAX_LCORES) {
		snprintf(err, errlen, "state file: %u workers (1..%u)", n, SHM_MAX_LCORES);
		return -EINVAL;
	}
	if (fstatfs(s->fd, &fs) == 0 && (unsigned long)fs.f_type == DPSTATE_HUGETLBFS_MAGIC)
		page = (size_t)fs.f_bsize;
	region = round_up(region, page);
	hdr = round_up(sizeof(struct dpstate_hdr), DPSTATE_ALIGN > page ? DPSTATE_ALIGN : page);
	want = hdr + (size_t)n * round_up(region, DPSTATE_ALIGN > page ? DPSTATE_ALIGN : page);
	if (fstat(s->fd, &sb) != 0) {
		snprintf(err, errlen, "state file %s: %s", s->path, strerror(errno));
		return -errno;
	}
	fsize = (size_t)sb.st_size;
	if (fsize >= sizeof(struct dpstate_hdr)) {
		m = mmap(NULL, fsize, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
		if (m == MAP_FAILED) {
			snprintf(err, errlen, "state file %s: mmap: %s", s->path, strerror(errno));
			return -errno;
		}
		h = (struct dpstate_hdr *)m;
		if (same_shape(h, fsize, n, region, mapping, want, s->why, sizeof(s->why))) {
			s->base = m;
			s->size = fsize;
			s->adopt = 1;
			h->pid = (uint32_t)getpid();
			snprintf(h->build, sizeof(h->build), "%s", build);
			return 0;
		}
		if (h->magic == DPSTATE_MAGIC && h->version == DPSTATE_VERSION) {
			/* kept for engine_import_resets(): its flows with offsets
			 * are reset rather than left to pass untranslated */
			s->old = m;
			s->old_size = fsize;
			s->old_n = h->n_regions <= SHM_MAX_LCORES ? h->n_regions : 0;
		} else {
			munmap(m, fsize);
		}
	} else if (fsize == 0) {
		snprintf(s->why, sizeof(s->why), "no state yet");
	}
	{
		/* a fresh file in place of the old one: a new inode, renamed
		 * over the path; the old pages live on in s->old until dropped */
		char tmp[PATH_MAX + 16];
		int fd;
		snprintf(tmp, sizeof(tmp), "%s.new", s->path);
		unlink(tmp);
		fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0 || ftruncate(fd, (off_t)want) != 0) {
			int e = errno;
			snprintf(err, errlen, "state file %s: %s (%zu bytes)", tmp, strerror(e), want);
			if (fd >= 0) {
				close(fd);
				unlink(tmp);
			}
			return -e;
		}
		m = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED) {
			int e = errno;
			snprintf(err, errlen, "state file %s: mmap of %zu bytes: %s", tmp, want,
				 strerror(e));
			close(fd);
			unlink(tmp);
			return -e;
		}
		h = (struct dpstate_hdr *)m;
		memset(h, 0, sizeof(*h));
		h->version = DPSTATE_VERSION;
		h->size = want;
		h->n_regions = n;
		h->pid = (uint32_t)getpid();
		h->mapping = mapping;
		snprintf(h->build, sizeof(h->build), "%s", build);
		for (unsigned i = 0; i < n; i++) {
			h->region[i].off = hdr + (uint64_t)i * round_up(region, DPSTATE_ALIGN > page
										       ? DPSTATE_ALIGN
										       : page);
			h->region[i].size = region;
		}
		h->magic = DPSTATE_MAGIC;
		if (rename(tmp, s->path) != 0) {
			int e = errno;
			snprintf(err, errlen, "state file %s: rename: %s", s->path, strerror(e));
			munmap(m, want);
			close(fd);
			unlink(tmp);
			return -e;
		}
		close(s->fd); /* the old inode's lock: ours now is on the new one */
		s->fd = fd;
		s->base = m;
		s->size = want;
		s->adopt = 0;
	}
	return 0;
}

void *dpstate_region(struct dpstate *s, unsigned i, size_t *len)
{
	const struct dpstate_hdr *h = (const struct dpstate_hdr *)s->base;
	if (!s->base || i >= h->n_regions)
		return NULL;
	*len = (size_t)h->region[i].size;
	return s->base + h->region[i].off;
}

const void *dpstate_old_region(const struct dpstate *s, unsigned i, size_t *len)
{
	const struct dpstate_hdr *h = (const struct dpstate_hdr *)s->old;
	if (!s->old || i >= s->old_n)
		return NULL;
	if (h->region[i].off > s->old_size || h->region[i].size > s->old_size - h->region[i].off)
		return NULL;
	*len = (size_t)h->region[i].size;
	return s->old + h->region[i].off;
}

void dpstate_drop_old(struct dpstate *s)
{
	if (s->old)
		munmap(s->old, s->old_size);
	s->old = NULL;
	s->old_size = 0;
	s->old_n = 0;
}

void dpstate_close(struct dpstate *s)
{
	if (!s->path[0])
		return; /* never locked */
	dpstate_drop_old(s);
	if (s->base)
		munmap(s->base, s->size);
	s->base = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}
