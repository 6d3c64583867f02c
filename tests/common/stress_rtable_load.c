/*
 * stress_rtable_load.c — a bulk load of the recipient table at full speed
 * (a list of millions published at once) against readers in other processes.
 *
 * The writer (this process) puts keys 0..N-1 as fast as it can, with no
 * maintenance turn in between, through every growth from the initial size;
 * after each put returns it release-stores how many have returned.  Readers
 * (forked, attached read-only like rcptgate-dp lcores, quiescent between
 * bursts) acquire that count and look up the newest key and random older
 * ones: every one must be found with its value.  At the end reader 0 checks
 * every key once more.  A lookup the writer kept busy past the retry limit
 * is counted apart (`gave_up`: the data plane forwards those), a definite
 * "absent" is a miss.  Exit 0 only if there was no miss, no bad value, no
 * refused put, and the load really went through several growths.
 * Bounded in time (--seconds): the writer stops there and says how far it got.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rtable.h"
#include "shm.h"
#include "testkeys.h"

#define MAX_READERS 4

struct shared {
	uint64_t done;	/* keys whose put has returned (release-stored) */
	uint32_t stop;
	struct reader_result {
		uint64_t lookups, misses, bad, gave_up, fresh_checks, final_checked;
		uint64_t first_miss;
	} res[MAX_READERS];
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct rg_key128 key_n(uint64_t n)
{
	return testkeys_key(0x10ad, n);
}

static struct rtable_val value_for(uint64_t id)
{
	return (struct rtable_val){.verdict = RT_VALID, .source = RT_SRC_LIST, .flags = 0,
				   .expiry = 1 + (id & 0x7fffffff)};
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void check(struct rtable_reader *r, struct reader_result *res, uint64_t id)
{
	struct rg_key128 k = key_n(id);
	struct rtable_val v;
	uint64_t gu = r->gave_up;
	res->lookups++;
	if (rtable_lookup(r, &k, &v)) {
		if (v.expiry != value_for(id).expiry || v.verdict != RT_VALID)
			res->bad++;
	} else if (r->gave_up != gu) {
		res->gave_up++;
	} else if (res->misses++ == 0) {
		res->first_miss = id;
	}
}

static void reader(const char *path, unsigned idx, struct shared *sh)
{
	struct shm_map m;
	char err[256];
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the writer */
	if (shm_attach_reader(path, &m, err, sizeof(err)) != 0) {
		fprintf(stderr, "reader %u: %s\n", idx, err);
		_exit(2);
	}
	struct reader_result *res = &sh->res[idx];
	struct rtable_reader r;
	rtable_reader_init(&r, &m, shm_lcore_at(&m, idx));
	rtable_reader_online(&r, (uint32_t)getpid(), idx);
	uint64_t seed = 0x243f6a8885a308d3ull + idx;
	while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE)) {
		uint64_t n = __atomic_load_n(&sh->done, __ATOMIC_ACQUIRE);
		if (n) {
			check(&r, res, n - 1); /* the newest: its put just returned */
			res->fresh_checks++;
			for (int i = 0; i < 31; i++)
				check(&r, res, rnd(&seed) % n);
		}
		rtable_quiescent(&r, now_ns());
	}
	if (idx == 0) {
		uint64_t n = __atomic_load_n(&sh->done, __ATOMIC_ACQUIRE);
		for (uint64_t id = 0; id < n; id++) {
			check(&r, res, id);
			if ((id & 255) == 0)
				rtable_quiescent(&r, now_ns());
		}
		res->final_checked = n;
	}
	rtable_reader_offline(&r);
	_exit(0);
}

int main(int argc, char **argv)
{
	double seconds = 60;
	unsigned nreaders = 1;
	uint64_t keys = 10000000;
	static const struct option opts[] = {
		{"seconds", required_argument, NULL, 's'},
		{"readers", required_argument, NULL, 'r'},
		{"keys", required_argument, NULL, 'k'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "s:r:k:", opts, NULL)) != -1) {
		switch (c) {
		case 's': seconds = atof(optarg); break;
		case 'r': nreaders = (unsigned)atoi(optarg); break;
		case 'k': keys = strtoull(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: %s [--seconds S] [--readers N] [--keys K]\n", argv[0]);
			return 2;
		}
	}
	if (nreaders < 1 || nreaders > MAX_READERS || keys < 100000 || seconds <= 0) {
		fprintf(stderr, "readers 1..%u, keys >= 100000, seconds > 0\n", MAX_READERS);
		return 2;
	}
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	memset(sh, 0, sizeof(*sh));

	char path[128], err[256];
	snprintf(path, sizeof(path), "/dev/shm/rg-stress-load-%d", (int)getpid());
	struct shm_params p;
	shm_params_default(&p); /* the shipped sizes: 2^16 buckets growing to 2^23 */
	p.max_lcores = nreaders;
	struct shm_map m;
	if (shm_create(path, &p, &m, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct rtable_writer w;
	rtable_writer_init(&w, &m);

	pid_t pids[MAX_READERS];
	for (unsigned i = 0; i < nreaders; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			reader(path, i, sh);
	}
	uint64_t start = now_ns(), deadline = start + (uint64_t)(seconds * 1e9);
	uint64_t refused = 0, id;
	int last_rc = 0;
	for (id = 0; id < keys; id++) {
		struct rg_key128 k = key_n(id);
		struct rtable_val v = value_for(id);
		int rc = rtable_put(&w, &k, &v);
		if (rc) {
			refused++;
			last_rc = rc;
			continue;
		}
		__atomic_store_n(&sh->done, id + 1, __ATOMIC_RELEASE);
		if ((id & 0xffff) == 0 && now_ns() > deadline)
			break;
	}
	uint64_t load_ns = now_ns() - start;
	uint64_t inserted = __atomic_load_n(&sh->done, __ATOMIC_RELAXED);
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
	int failed = 0;
	for (unsigned i = 0; i < nreaders; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed = 1;
	}
	struct reader_result tot = {0};
	for (unsigned i = 0; i < nreaders; i++) {
		tot.lookups += sh->res[i].lookups;
		tot.misses += sh->res[i].misses;
		tot.bad += sh->res[i].bad;
		tot.gave_up += sh->res[i].gave_up;
		tot.fresh_checks += sh->res[i].fresh_checks;
		if (sh->res[i].misses)
			fprintf(stderr, "reader %u: first miss key %llu\n", i,
				(unsigned long long)sh->res[i].first_miss);
	}
	const struct shm_hdr *h = shm_hdr(&m);
	printf("writer: %llu of %llu keys in %.2f s (%.0f puts/s), %llu refused (last rc %d), "
	       "full %llu, stalls %llu, %llu grows (2^16 -> 2^%u buckets), %llu finished in a "
	       "put, %llu reader waits, %llu migrated, table count %llu\n",
	       (unsigned long long)inserted, (unsigned long long)keys, load_ns / 1e9,
	       inserted / (load_ns / 1e9), (unsigned long long)refused, last_rc,
	       (unsigned long long)w.st.full, (unsigned long long)w.st.stalls,
	       (unsigned long long)w.st.grows, h->rtable_log2[h->rtable_gen & 1],
	       (unsigned long long)w.st.sync_migrations,
	       (unsigned long long)w.st.reclaim_sync_waits, (unsigned long long)w.st.migrated,
	       (unsigned long long)rtable_count(&w));
	printf("readers: %u, %llu lookups (%llu of the newest key), %llu misses, %llu bad values, "
	       "%llu gave up (busy), final pass checked %llu keys\n",
	       nreaders, (unsigned long long)tot.lookups, (unsigned long long)tot.fresh_checks,
	       (unsigned long long)tot.misses, (unsigned long long)tot.bad,
	       (unsigned long long)tot.gave_up, (unsigned long long)sh->res[0].final_checked);
	int ok = !failed && refused == 0 && w.st.full == 0 && tot.misses == 0 && tot.bad == 0 &&
		 w.st.grows >= 3 && tot.fresh_checks > 1000 &&
		 sh->res[0].final_checked == inserted && rtable_count(&w) == inserted;
	shm_detach(&m);
	unlink(path);
	printf("%s%s\n", ok ? "PASS" : "FAIL",
	       inserted < keys ? " (time cap reached before every key was loaded)" : "");
	return ok ? 0 : 1;
}
