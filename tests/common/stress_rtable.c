/*
 * stress_rtable.c — cross-process stress of the recipient table.
 *
 * One writer (this process) churns: inserts, updates, deletes, growth through
 * several doublings, and flushes that shrink the table back, while reader
 * processes (forked, attached read-only like rcptgate-dp lcores) look keys up
 * in bursts and check that every value they read is one the writer wrote for
 * that key: each value encodes its key (low 16 bits of the expiry word) and
 * its version (high 16 bits), and the verdict is a function of both, so a torn
 * read or a slot read under the wrong key fails the check.
 * Bounded in time (--seconds).  Exit status 0 only if no reader saw a bad
 * value and the run really exercised reads, growth and generation switches.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rtable.h"
#include "testkeys.h"
#include "shm.h"

struct reader_result {
	uint64_t lookups, hits, bad, retries, gave_up, gens_seen;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct rg_key128 key_n(uint64_t n)
{
	return testkeys_key(0x7777, n);
}

static uint32_t h16(uint64_t id)
{
	return (uint32_t)((id * 0x9e3779b97f4a7c15ull) >> 48);
}

static struct rtable_val value_for(uint64_t id, uint16_t ver)
{
	struct rtable_val v = {
		.verdict = (uint8_t)(((ver + id) & 1) ? RT_VALID : RT_INVALID),
		.source = (uint8_t)(id % 4),
		.flags = (uint8_t)(ver % 8),
		.expiry = ((uint64_t)ver << 16) | h16(id),
	};
	return v;
}

static int value_ok(uint64_t id, const struct rtable_val *v)
{
	if ((v->expiry & 0xffff) != h16(id))
		return 0;
	uint16_t ver = (uint16_t)(v->expiry >> 16);
	struct rtable_val want = value_for(id, ver);
	return ver != 0 && v->verdict == want.verdict && v->source == want.source &&
	       v->flags == want.flags;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void reader(const char *path, unsigned idx, uint64_t keys, uint64_t deadline, int fd)
{
	struct shm_map m;
	char err[256];
	struct reader_result res = {0};
	if (shm_attach_reader(path, &m, err, sizeof(err)) != 0) {
		fprintf(stderr, "reader %u: %s\n", idx, err);
		_exit(2);
	}
	struct rtable_reader r;
	rtable_reader_init(&r, &m, shm_lcore_at(&m, idx));
	rtable_reader_online(&r, (uint32_t)getpid(), idx);
	uint64_t seed = 0x243f6a8885a308d3ull + idx, last_gen = ~0ull;
	struct rg_key128 k[32];
	uint64_t ids[32];
	struct rtable_val out[32];
	while (now_ns() < deadline) {
		for (int rep = 0; rep < 64; rep++) {
			for (int i = 0; i < 32; i++) {
				ids[i] = rnd(&seed) % keys;
				k[i] = key_n(ids[i]);
			}
			uint64_t hits = rtable_lookup_burst(&r, k, 32, out);
			res.lookups += 32;
			for (int i = 0; i < 32; i++) {
				if (!(hits & (1ull << i)))
					continue;
				res.hits++;
				if (!value_ok(ids[i], &out[i]) && res.bad++ < 5)
					fprintf(stderr, "reader %u: key %llu bad value expiry %llx "
							"verdict %u\n", idx, (unsigned long long)ids[i],
						(unsigned long long)out[i].expiry, out[i].verdict);
			}
			/* single lookups too */
			struct rtable_val one;
			if (rtable_lookup(&r, &k[0], &one)) {
				res.hits++;
				if (!value_ok(ids[0], &one))
					res.bad++;
			}
			res.lookups++;
			rtable_quiescent(&r, now_ns());
		}
		uint64_t g = __atomic_load_n(&shm_hdr(&m)->rtable_gen, __ATOMIC_ACQUIRE);
		if (g != last_gen) {
			res.gens_seen++;
			last_gen = g;
		}
	}
	res.retries = r.retries;
	res.gave_up = r.gave_up;
	rtable_reader_offline(&r);
	if (write(fd, &res, sizeof(res)) != (ssize_t)sizeof(res))
		_exit(3);
	_exit(0);
}

int main(int argc, char **argv)
{
	double seconds = 10;
	unsigned nreaders = 2;
	uint64_t keys = 300000;
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
	if (nreaders < 1 || nreaders > 8 || keys < 1000 || seconds <= 0) {
		fprintf(stderr, "readers 1..8, keys >= 1000, seconds > 0\n");
		return 2;
	}

	char path[128], err[256];
	snprintf(path, sizeof(path), "/dev/shm/rg-stress-%d", (int)getpid());
	struct shm_params p;
	shm_params_default(&p);
	p.max_lcores = nreaders;
	p.rtable_init_log2 = 8;
	p.rtable_max_log2 = 18;
	struct shm_map m;
	if (shm_create(path, &p, &m, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct rtable_writer w;
	rtable_writer_init(&w, &m);

	uint64_t start = now_ns(), deadline = start + (uint64_t)(seconds * 1e9);
	int pipefd[2];
	if (pipe(pipefd) != 0)
		return 1;
	pid_t pids[8];
	for (unsigned i = 0; i < nreaders; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			close(pipefd[0]);
			reader(path, i, keys, deadline, pipefd[1]);
		}
	}
	close(pipefd[1]);

	uint16_t *ver = calloc(keys, sizeof(*ver));
	uint64_t seed = 0x9e3779b97f4a7c15ull, ops = 0, puts = 0, dels = 0, flushes = 0;
	uint64_t full = 0, next_flush = start + (uint64_t)(seconds * 1e9 / 3);
	uint64_t max_count = 0;
	while (now_ns() < deadline) {
		for (int i = 0; i < 256; i++, ops++) {
			uint64_t id = rnd(&seed) % keys;
			struct rg_key128 k = key_n(id);
			if (rnd(&seed) % 4 == 0) {
				if (rtable_del(&w, &k) == 0)
					dels++;
			} else {
				ver[id] = (uint16_t)(ver[id] + 1 ? ver[id] + 1 : 1);
				struct rtable_val v = value_for(id, ver[id]);
				if (rtable_put(&w, &k, &v) == 0)
					puts++;
				else
					full++;
			}
		}
		rtable_maintain(&w, 512, now_ns());
		if (rtable_count(&w) > max_count)
			max_count = rtable_count(&w);
		if (now_ns() > next_flush && rtable_flush(&w) == 0) {
			flushes++;
			next_flush += (uint64_t)(seconds * 1e9 / 3);
		}
	}

	struct reader_result tot = {0};
	int failed = 0;
	for (unsigned i = 0; i < nreaders; i++) {
		struct reader_result res;
		if (read(pipefd[0], &res, sizeof(res)) != (ssize_t)sizeof(res)) {
			failed = 1;
			continue;
		}
		tot.lookups += res.lookups;
		tot.hits += res.hits;
		tot.bad += res.bad;
		tot.retries += res.retries;
		tot.gave_up += res.gave_up;
		tot.gens_seen += res.gens_seen;
	}
	for (unsigned i = 0; i < nreaders; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed = 1;
	}
	double secs = (double)(now_ns() - start) / 1e9;
	printf("writer: %llu ops (%llu puts, %llu deletes, %llu refused), %.0f ops/s, "
	       "%llu grows, %llu flushes, %llu migrated, peak %llu entries, final 2^%u buckets\n",
	       (unsigned long long)ops, (unsigned long long)puts, (unsigned long long)dels,
	       (unsigned long long)full, ops / secs, (unsigned long long)w.st.grows,
	       (unsigned long long)flushes, (unsigned long long)w.st.migrated,
	       (unsigned long long)max_count,
	       shm_hdr(&m)->rtable_log2[shm_hdr(&m)->rtable_gen & 1]);
	printf("readers: %u, %llu lookups, %llu hits, %llu bad values, %llu retries, "
	       "%llu gave up, %llu generations seen\n",
	       nreaders, (unsigned long long)tot.lookups, (unsigned long long)tot.hits,
	       (unsigned long long)tot.bad, (unsigned long long)tot.retries,
	       (unsigned long long)tot.gave_up, (unsigned long long)tot.gens_seen);
	shm_detach(&m);
	unlink(path);
	free(ver);

	int ok = !failed && tot.bad == 0 && tot.hits > 1000 && w.st.grows >= 2 && flushes >= 1 &&
		 tot.gens_seen >= 2 * nreaders;
	printf("%s\n", ok ? "PASS" : "FAIL");
	return ok ? 0 : 1;
}
