/*
 * table.c — `rcptgate-bench table`: lookups per second per core of the
 * recipient table against DPDK's rte_hash (RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF,
 * the same addresses zero-padded to 64-byte keys), single and burst, hits and
 * misses; then this table's burst rate while a writer in another process
 * updates it at a fixed rate.
 *
 * Two views are measured: "table" — the key hash is computed once, before the
 * timed loop, for both (ours: khash128; rte_hash: rte_hash_hash, CRC32 of the
 * 64-byte key) and only the lookups are timed; "e2e" — from the address bytes,
 * hashing included.  Every figure is the median of --reps runs (min and max
 * printed).  Single-threaded measurements run on one core; the churn writer
 * and the measuring reader are pinned to different cores.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_lcore.h>

#include "bench.h"
#include "khash.h"
#include "rtable.h"
#include "shm.h"

#define KEYLEN 64
#define BURST 32
#define MAX_REPS 15

struct fig {
	double med, min, max;
};

struct bench_cfg {
	uint32_t entries;
	unsigned reps;
	double churn_s;
	uint32_t churn_rate;
	int json;
};

struct dataset {
	uint32_t n;
	char (*hit_addr)[KEYLEN];	/* zero-padded */
	char (*miss_addr)[KEYLEN];
	uint8_t *hit_len, *miss_len;
	struct rg_key128 *hit_key, *miss_key;
	hash_sig_t *hit_sig, *miss_sig;
	uint32_t *order;		/* random permutation */
};

static volatile uint64_t sink;

static double secs_since(uint64_t t0)
{
	return (double)(bench_now_ns() - t0) / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static struct fig fig_of(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return (struct fig){v[n / 2], v[0], v[n - 1]};
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int make_addr(char *out, uint64_t i, const char *prefix)
{
	/* realistic mix: varied local parts over a few hundred domains */
	static const char *const tld[] = {"test", "example", "invalid"};
	int len = snprintf(out, KEYLEN, "%s%llu.%c%llu@mail%llu.domain%llu.%s", prefix,
			   (unsigned long long)(i * 7919 % 1000003), 'a' + (int)(i % 26),
			   (unsigned long long)(i % 97), (unsigned long long)(i % 5),
			   (unsigned long long)(i % 311), tld[i % 3]);
	memset(out + len, 0, KEYLEN - (size_t)len);
	return len;
}

static void dataset_build(struct dataset *d, uint32_t n, const uint8_t *hkey,
			  const struct rte_hash *h)
{
	d->n = n;
	d->hit_addr = calloc(n, KEYLEN);
	d->miss_addr = calloc(n, KEYLEN);
	d->hit_len = calloc(n, 1);
	d->miss_len = calloc(n, 1);
	d->hit_key = calloc(n, sizeof(*d->hit_key));
	d->miss_key = calloc(n, sizeof(*d->miss_key));
	d->hit_sig = calloc(n, sizeof(*d->hit_sig));
	d->miss_sig = calloc(n, sizeof(*d->miss_sig));
	d->order = calloc(n, sizeof(*d->order));
	for (uint32_t i = 0; i < n; i++) {
		d->hit_len[i] = (uint8_t)make_addr(d->hit_addr[i], i, "user");
		d->miss_len[i] = (uint8_t)make_addr(d->miss_addr[i], i, "nobody");
		khash128(hkey, d->hit_addr[i], d->hit_len[i], &d->hit_key[i]);
		khash128(hkey, d->miss_addr[i], d->miss_len[i], &d->miss_key[i]);
		d->hit_sig[i] = rte_hash_hash(h, d->hit_addr[i]);
		d->miss_sig[i] = rte_hash_hash(h, d->miss_addr[i]);
		d->order[i] = i;
	}
	uint64_t s = 0x853c49e6748fea9bull;
	for (uint32_t i = n - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(rnd(&s) % (i + 1));
		uint32_t t = d->order[i];
		d->order[i] = d->order[j];
		d->order[j] = t;
	}
}

/* ---- the timed loops: each returns lookups per second and checks hits ---- */

enum which { HIT, MISS };

static double ours_single(struct rtable_reader *r, const struct dataset *d, enum which w,
			  int e2e, const uint8_t *hkey)
{
	const struct rg_key128 *keys = w == HIT ? d->hit_key : d->miss_key;
	uint64_t found = 0;
	struct rtable_val v;
	uint64_t t0 = bench_now_ns();
	for (uint32_t i = 0; i < d->n; i++) {
		uint32_t k = d->order[i];
		if (e2e) {
			struct rg_key128 kk;
			const char *a = w == HIT ? d->hit_addr[k] : d->miss_addr[k];
			khash128(hkey, a, w == HIT ? d->hit_len[k] : d->miss_len[k], &kk);
			found += rtable_lookup(r, &kk, &v);
		} else {
			found += rtable_lookup(r, &keys[k], &v);
		}
	}
	double s = secs_since(t0);
	if (found != (w == HIT ? d->n : 0))
		fprintf(stderr, "table: ours found %llu of %u (%s)\n", (unsigned long long)found,
			d->n, w == HIT ? "hits" : "misses");
	sink += found;
	return d->n / s;
}

static double ours_burst(struct rtable_reader *r, const struct dataset *d, enum which w,
			 int e2e, const uint8_t *hkey, uint64_t *found_out)
{
	const struct rg_key128 *keys = w == HIT ? d->hit_key : d->miss_key;
	struct rg_key128 kb[BURST];
	struct rtable_val out[BURST];
	uint64_t found = 0;
	uint64_t t0 = bench_now_ns();
	for (uint32_t i = 0; i + BURST <= d->n; i += BURST) {
		if (e2e) /* as rte_hash's bulk lookup does with its keys */
			for (unsigned j = 0; j < BURST; j++) {
				uint32_t k = d->order[i + j];
				__builtin_prefetch(w == HIT ? d->hit_addr[k] : d->miss_addr[k]);
			}
		for (unsigned j = 0; j < BURST; j++) {
			uint32_t k = d->order[i + j];
			if (e2e)
				khash128(hkey, w == HIT ? d->hit_addr[k] : d->miss_addr[k],
					 w == HIT ? d->hit_len[k] : d->miss_len[k], &kb[j]);
			else
				kb[j] = keys[k];
		}
		found += (uint64_t)__builtin_popcountll(rtable_lookup_burst(r, kb, BURST, out));
		rtable_quiescent(r, 0);
	}
	double s = secs_since(t0);
	sink += found;
	if (found_out)
		*found_out = found;
	return (d->n / BURST * BURST) / s;
}

static double rte_single(const struct rte_hash *h, const struct dataset *d, enum which w,
			 int e2e)
{
	uint64_t found = 0;
	void *data;
	uint64_t t0 = bench_now_ns();
	for (uint32_t i = 0; i < d->n; i++) {
		uint32_t k = d->order[i];
		const char *a = w == HIT ? d->hit_addr[k] : d->miss_addr[k];
		int rc = e2e ? rte_hash_lookup_data(h, a, &data)
			     : rte_hash_lookup_with_hash_data(h, a,
							      w == HIT ? d->hit_sig[k]
								       : d->miss_sig[k],
							      &data);
		found += rc >= 0;
	}
	double s = secs_since(t0);
	if (found != (w == HIT ? d->n : 0))
		fprintf(stderr, "table: rte_hash found %llu of %u\n", (unsigned long long)found,
			d->n);
	sink += found;
	return d->n / s;
}

static double rte_burst(const struct rte_hash *h, const struct dataset *d, enum which w,
			int e2e)
{
	const void *kp[BURST];
	hash_sig_t sig[BURST];
	void *data[BURST];
	uint64_t hit_mask, found = 0;
	uint64_t t0 = bench_now_ns();
	for (uint32_t i = 0; i + BURST <= d->n; i += BURST) {
		for (unsigned j = 0; j < BURST; j++) {
			uint32_t k = d->order[i + j];
			kp[j] = w == HIT ? d->hit_addr[k] : d->miss_addr[k];
			sig[j] = w == HIT ? d->hit_sig[k] : d->miss_sig[k];
		}
		if (e2e)
			rte_hash_lookup_bulk_data(h, kp, BURST, &hit_mask, data);
		else
			rte_hash_lookup_with_hash_bulk_data(h, kp, sig, BURST, &hit_mask, data);
		found += (uint64_t)__builtin_popcountll(hit_mask);
	}
	double s = secs_since(t0);
	sink += found;
	return (d->n / BURST * BURST) / s;
}

/* ---- churn: reader child measures, writer parent updates ---- */

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
	sched_setaffinity(0, sizeof(set), &set);
}

struct churn_result {
	double quiet_mops, churn_mops;
};

static void churn_reader(const char *path, const struct dataset *d, const struct bench_cfg *c,
			 int wfd, int rfd)
{
	struct shm_map m;
	char err[256];
	pin(1);
	if (shm_attach_reader(path, &m, err, sizeof(err)) != 0) {
		fprintf(stderr, "table: reader: %s\n", err);
		_exit(2);
	}
	struct rtable_reader r;
	rtable_reader_init(&r, &m, shm_lcore_at(&m, 0));
	rtable_reader_online(&r, (uint32_t)getpid(), 0);
	struct churn_result res = {0};
	double q[MAX_REPS], ch[MAX_REPS];
	char go;
	for (unsigned rep = 0; rep < c->reps; rep++) {
		/* quiet: the writer idles */
		double acc = 0;
		unsigned passes = 0;
		uint64_t t0 = bench_now_ns();
		while (secs_since(t0) < c->churn_s) {
			acc += ours_burst(&r, d, HIT, 0, NULL, NULL);
			passes++;
		}
		q[rep] = acc / passes / 1e6;
		/* churn: tell the writer to start, measure, tell it to stop */
		if (write(wfd, "s", 1) != 1 || read(rfd, &go, 1) != 1)
			_exit(3);
		acc = 0;
		passes = 0;
		t0 = bench_now_ns();
		while (secs_since(t0) < c->churn_s) {
			acc += ours_burst(&r, d, HIT, 0, NULL, NULL);
			passes++;
		}
		ch[rep] = acc / passes / 1e6;
		if (write(wfd, "e", 1) != 1 || read(rfd, &go, 1) != 1)
			_exit(3);
	}
	res.quiet_mops = fig_of(q, c->reps).med;
	res.churn_mops = fig_of(ch, c->reps).med;
	rtable_reader_offline(&r);
	if (write(wfd, &res, sizeof(res)) != (ssize_t)sizeof(res))
		_exit(3);
	_exit(0);
}

/* Updates existing entries (flip verdict, refresh expiry) at rate per second
 * until the reader writes a byte on rfd; returns the achieved rate. */
static double churn_writer(struct rtable_writer *w, const struct dataset *d, uint32_t rate,
			   int rfd)
{
	uint64_t t0 = bench_now_ns(), done = 0, s = 0x2545f4914f6cdd1dull;
	for (;;) {
		double el = secs_since(t0);
		uint64_t target = (uint64_t)(el * rate);
		while (done < target) {
			uint32_t k = (uint32_t)(rnd(&s) % d->n);
			struct rtable_val v = {
				.verdict = (uint8_t)((done & 1) ? RT_VALID : RT_INVALID),
				.source = RT_SRC_CALLOUT,
				.expiry = (uint64_t)time(NULL) + 3600 + (done & 1023),
			};
			rtable_put(w, &d->hit_key[k], &v);
			done++;
		}
		rtable_maintain(w, 256, bench_now_ns());
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
		char b;
		ssize_t n = recv(rfd, &b, 1, MSG_DONTWAIT);
		if (n == 1)
			break;
	}
	return done / secs_since(t0);
}

static void usage(void)
{
	fprintf(stderr, "usage: rcptgate-bench table [--json] [--entries N] [--reps R] "
			"[--churn-seconds S] [--churn-rate U]\n");
}

int bench_table(int argc, char **argv)
{
	struct bench_cfg c = {.entries = 1000000, .reps = 5, .churn_s = 1.0, .churn_rate = 100000};
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"entries", required_argument, NULL, 'n'},
		{"reps", required_argument, NULL, 'r'},
		{"churn-seconds", required_argument, NULL, 's'},
		{"churn-rate", required_argument, NULL, 'u'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'j': c.json = 1; break;
		case 'n': c.entries = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'r': c.reps = (unsigned)atoi(optarg); break;
		case 's': c.churn_s = atof(optarg); break;
		case 'u': c.churn_rate = (uint32_t)strtoul(optarg, NULL, 10); break;
		default: usage(); return 2;
		}
	}
	if (c.entries < 1024 || c.entries > (8u << 20) || c.reps < 1 || c.reps > MAX_REPS ||
	    c.churn_s <= 0 || c.churn_rate < 1) {
		usage();
		return 2;
	}
	bench_print_machine(stdout, argc, argv);

	char prefix[64];
	snprintf(prefix, sizeof(prefix), "rgbench%d", (int)getpid());
	char *eal[] = {"rcptgate-bench", "--no-pci", "--no-huge", "-m", "2048", "--file-prefix",
		       prefix, "--log-level", "lib.eal:error", "--no-telemetry", "-l", "0"};
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])), eal) < 0) {
		fprintf(stderr, "table: rte_eal_init failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	struct rte_hash_parameters hp = {
		.name = "bench",
		.entries = c.entries + c.entries / 4,
		.key_len = KEYLEN,
		.hash_func = rte_hash_crc,
		.hash_func_init_val = 0,
		.socket_id = (int)rte_socket_id(),
		.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF,
	};
	struct rte_hash *h = rte_hash_create(&hp);
	if (!h) {
		fprintf(stderr, "table: rte_hash_create: %s\n", rte_strerror(rte_errno));
		return 1;
	}

	char path[128], err[256];
	snprintf(path, sizeof(path), "/dev/shm/rg-bench-table-%d", (int)getpid());
	struct shm_params p;
	shm_params_default(&p);
	p.max_lcores = 2;
	struct shm_map m;
	if (shm_create(path, &p, &m, err, sizeof(err)) != 0) {
		fprintf(stderr, "table: %s\n", err);
		return 1;
	}
	struct rtable_writer w;
	rtable_writer_init(&w, &m);
	struct rtable_reader r;
	rtable_reader_init(&r, &m, NULL);

	struct dataset d;
	dataset_build(&d, c.entries, shm_hdr(&m)->hash_key, h);
	for (uint32_t i = 0; i < d.n; i++) {
		struct rtable_val v = {.verdict = RT_INVALID, .source = RT_SRC_CALLOUT,
				       .expiry = (uint64_t)time(NULL) + 86400};
		int rc;
		while ((rc = rtable_put(&w, &d.hit_key[i], &v)) == -ENOSPC &&
		       rtable_maintain(&w, 1u << 20, 0))
			;
		rtable_maintain(&w, 4096, 0);
		if (rc != 0 ||
		    rte_hash_add_key_with_hash_data(h, d.hit_addr[i], d.hit_sig[i],
						    (void *)(uintptr_t)(i + 1)) != 0) {
			fprintf(stderr, "table: insert %u failed\n", i);
			return 1;
		}
	}
	while (rtable_maintain(&w, 1u << 20, 0))
		;
	uint32_t log2 = shm_hdr(&m)->rtable_log2[shm_hdr(&m)->rtable_gen & 1];
	printf("entries: %u; ours: 2^%u buckets x %u slots (%.0f%% full, %.1f MiB); "
	       "rte_hash: %u-byte keys, RW_CONCURRENCY_LF, burst %u\n",
	       d.n, log2, RTABLE_SLOTS, 100.0 * d.n / ((double)RTABLE_SLOTS * (1u << log2)),
	       (double)(64u << log2) / (1 << 20), KEYLEN, BURST);

	/* rows: name, function of the rep */
	enum { O_S_H, O_S_M, O_B_H, O_B_M, R_S_H, R_S_M, R_B_H, R_B_M, O_E_S, O_E_B, R_E_S,
	       R_E_B, NROW };
	static const char *const names[NROW] = {
		"ours   lookup  hit", "ours   lookup  miss", "ours   burst   hit",
		"ours   burst   miss", "rte    lookup  hit", "rte    lookup  miss",
		"rte    burst   hit", "rte    burst   miss", "ours   e2e lookup hit",
		"ours   e2e burst  hit", "rte    e2e lookup hit", "rte    e2e burst  hit"};
	double v[NROW][MAX_REPS];
	const uint8_t *hk = shm_hdr(&m)->hash_key;
	for (unsigned rep = 0; rep < c.reps; rep++) {
		/* interleave ours and theirs so drift hits both alike */
		v[O_S_H][rep] = ours_single(&r, &d, HIT, 0, hk);
		v[R_S_H][rep] = rte_single(h, &d, HIT, 0);
		v[O_S_M][rep] = ours_single(&r, &d, MISS, 0, hk);
		v[R_S_M][rep] = rte_single(h, &d, MISS, 0);
		v[O_B_H][rep] = ours_burst(&r, &d, HIT, 0, hk, NULL);
		v[R_B_H][rep] = rte_burst(h, &d, HIT, 0);
		v[O_B_M][rep] = ours_burst(&r, &d, MISS, 0, hk, NULL);
		v[R_B_M][rep] = rte_burst(h, &d, MISS, 0);
		v[O_E_S][rep] = ours_single(&r, &d, HIT, 1, hk);
		v[R_E_S][rep] = rte_single(h, &d, HIT, 1);
		v[O_E_B][rep] = ours_burst(&r, &d, HIT, 1, hk, NULL);
		v[R_E_B][rep] = rte_burst(h, &d, HIT, 1);
	}
	struct fig f[NROW];
	printf("\n%-24s %10s %10s %10s   (Mlookups/s, one core, %u reps)\n", "", "median", "min",
	       "max", c.reps);
	for (int i = 0; i < NROW; i++) {
		for (unsigned rep = 0; rep < c.reps; rep++)
			v[i][rep] /= 1e6;
		f[i] = fig_of(v[i], c.reps);
		printf("%-24s %10.2f %10.2f %10.2f\n", names[i], f[i].med, f[i].min, f[i].max);
	}

	/* churn: reader in a child process on another core, writer here */
	int up[2], down[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, up) != 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, down) != 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		churn_reader(path, &d, &c, up[1], down[0]);
	}
	close(up[1]);
	close(down[0]);
	pin(0);
	double rates[MAX_REPS];
	for (unsigned rep = 0; rep < c.reps; rep++) {
		char b;
		if (read(up[0], &b, 1) != 1 || write(down[1], "g", 1) != 1)
			return 1;
		rates[rep] = churn_writer(&w, &d, c.churn_rate, up[0]);
		if (write(down[1], "g", 1) != 1)
			return 1;
	}
	struct churn_result cr;
	if (read(up[0], &cr, sizeof(cr)) != (ssize_t)sizeof(cr))
		return 1;
	int st;
	waitpid(pid, &st, 0);
	struct fig rate = fig_of(rates, c.reps);
	printf("\nchurn (reader and writer in separate processes, pinned apart):\n");
	printf("%-24s %10.2f Mlookups/s\n", "ours burst quiet", cr.quiet_mops);
	printf("%-24s %10.2f Mlookups/s (%.1f%% of quiet) at %.0f updates/s (min %.0f max %.0f)\n",
	       "ours burst churn", cr.churn_mops, 100 * cr.churn_mops / cr.quiet_mops, rate.med,
	       rate.min, rate.max);
	printf("\nburst hit: ours / rte_hash = %.2fx (table), %.2fx (e2e, hashing included)\n",
	       f[O_B_H].med / f[R_B_H].med, f[O_E_B].med / f[R_E_B].med);

	if (c.json)
		printf("{\"bench\":\"table\",\"entries\":%u,\"burst\":%u,\"reps\":%u,"
		       "\"ours_lookup_mops\":%.3f,\"ours_lookup_miss_mops\":%.3f,"
		       "\"ours_burst_mops\":%.3f,\"ours_burst_miss_mops\":%.3f,"
		       "\"rte_hash_lookup_mops\":%.3f,\"rte_hash_lookup_miss_mops\":%.3f,"
		       "\"rte_hash_burst_mops\":%.3f,\"rte_hash_burst_miss_mops\":%.3f,"
		       "\"ours_e2e_lookup_mops\":%.3f,\"ours_e2e_burst_mops\":%.3f,"
		       "\"rte_hash_e2e_lookup_mops\":%.3f,\"rte_hash_e2e_burst_mops\":%.3f,"
		       "\"ours_burst_quiet_mops\":%.3f,\"ours_burst_churn_mops\":%.3f,"
		       "\"churn_updates_per_s\":%.0f,\"burst_ratio\":%.3f,\"churn_ratio\":%.3f,"
		       "\"churn_vs_burst_ratio\":%.3f}\n",
		       d.n, BURST, c.reps, f[O_S_H].med, f[O_S_M].med, f[O_B_H].med, f[O_B_M].med,
		       f[R_S_H].med, f[R_S_M].med, f[R_B_H].med, f[R_B_M].med, f[O_E_S].med,
		       f[O_E_B].med, f[R_E_S].med, f[R_E_B].med, cr.quiet_mops, cr.churn_mops,
		       rate.med, f[O_B_H].med / f[R_B_H].med, cr.churn_mops / cr.quiet_mops,
		       cr.churn_mops / f[O_B_H].med);
	rte_hash_free(h);
	shm_detach(&m);
	unlink(path);
	rte_eal_cleanup();
	return 0;
}
