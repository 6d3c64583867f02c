/*
 * dpshm.c — attach rcptgate-dp to rcptgated's shared-memory file, wait for
 * it, and re-attach when it is replaced.  Main thread only (the lock keeps
 * the telemetry thread off a map being detached).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dpshm.h"

void dpshm_init(struct dpshm *s, unsigned need_lcores)
{
	memset(s, 0, sizeof(*s));
	s->map[0].fd = -1;
	s->map[1].fd = -1;
	s->need_lcores = need_lcores;
	pthread_mutex_init(&s->lock, NULL);
}

static int dpshm_try(struct dpshm *s, const char *path, struct shm_map *m, char *err,
		     size_t errlen)
{
	int rc = shm_attach_reader(path, m, err, errlen);
	if (rc)
		return rc;
	if (shm_hdr(m)->max_lcores < s->need_lcores) {
		snprintf(err, errlen, "%s: has %u lcore regions, rcptgate-dp runs %u workers",
			 path, shm_hdr(m)->max_lcores, s->need_lcores);
		shm_detach(m);
		return -EPROTO;
	}
	return 0;
}

int dpshm_attach_wait(struct dpshm *s, const char *path, unsigned retry_s,
		      volatile int *quit)
{
	char err[512], last[512] = "";
	unsigned next = s->gen ? (s->cur ^ 1u) : 0u;
	struct shm_map m;
	int rc;

	for (;;) {
		memset(&m, 0, sizeof(m));
		m.fd = -1;
		rc = dpshm_try(s, path, &m, err, sizeof(err));
		if (rc == 0)
			break;
		if (rc != -ENOENT && rc != -EAGAIN && rc != -ESTALE) {
			fprintf(stderr, "rcptgate-dp: cannot attach: %s\n", err);
			return rc == -EPROTO ? -EPROTO : rc;
		}
		if (strcmp(err, last) != 0) {
			fprintf(stderr, "rcptgate-dp: waiting for rcptgated: %s; retrying every %us\n",
				err, retry_s);
			snprintf(last, sizeof(last), "%s", err);
		}
		for (unsigned i = 0; i < retry_s * 10; i++) {
			if (*quit)
				return -EINTR;
			usleep(100000);
		}
	}
	pthread_mutex_lock(&s->lock);
	s->map[next] = m;
	__atomic_store_n(&s->cur, next, __ATOMIC_RELEASE);
	__atomic_store_n(&s->gen, s->gen + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->lock);
	fprintf(stderr, "rcptgate-dp: attached %s (abi %u, %u lcore regions, table gen %llu)\n",
		path, shm_hdr(&m)->abi_version, shm_hdr(&m)->max_lcores,
		(unsigned long long)shm_hdr(&m)->rtable_gen);
	return 0;
}

int dpshm_retired(const struct dpshm *s)
{
	const struct shm_map *m = &s->map[s->cur];
	if (!m->base)
		return 0;
	return __atomic_load_n(&shm_hdr(m)->state, __ATOMIC_ACQUIRE) == SHM_STATE_RETIRED;
}

void dpshm_drop_old(struct dpshm *s)
{
	pthread_mutex_lock(&s->lock);
	shm_detach(&s->map[s->cur ^ 1u]);
	pthread_mutex_unlock(&s->lock);
}

void dpshm_fini(struct dpshm *s)
{
	pthread_mutex_lock(&s->lock);
	shm_detach(&s->map[0]);
	shm_detach(&s->map[1]);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_destroy(&s->lock);
}
