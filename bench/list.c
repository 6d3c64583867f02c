/*
 * list.c — rcptgate-bench list: loading and reloading a closed list of N
 * addresses through rcptgated's own core (in this process, as the tests run
 * it), and what it costs.
 *
 * For each size: write a list file of N addresses, start the core with one
 * `mode = list` domain (the shipped table sizes: 2^16 buckets growing to
 * 2^23), time the start (reading, sorting and publishing the list), check
 * every address in the shared table with a reader, then change 10% of the
 * list and reload (SIGHUP) while a reader in another process looks up every
 * address kept by the reload, and check the whole new list again.
 * Reported: load_per_s (addresses/s over the whole start), reload_s,
 * shm_bytes_per_addr (pages of the shared-memory file actually allocated,
 * after the old slab is given back, / N), daemon_bytes_per_addr (growth of
 * the process's private anonymous memory, RssAnon, / N: the list's keys and
 * everything else the core keeps for it), lost (listed addresses found
 * missing at any check; must be 0).
 * Thread: main; one forked reader per reload.
 */
#include <errno.h>
#include <pthread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "core.h"
#include "daemon.h"
#include "rtable.h"
#include "shm.h"

#define LIST_DOMAIN "bench.test"

struct run {
	uint64_t n;
	double load_s, load_per_s, reload_s, load_cpu_s, reload_cpu_s;
	double shm_bytes_per_addr, daemon_bytes_per_addr, daemon_peak_bytes_per_addr;
	uint64_t lost, lost_reload, checked_during_reload;
	uint32_t table_log2;
	uint64_t table_entries;
};

/* CPU time of this thread (the core's), s: wall time depends on what else
 * the machine runs, this does not */
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static uint64_t rss_anon(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kb = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %lu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/* RssAnon's high-water mark while a load or a reload runs (sampled). */
static struct {
	volatile int run;
	uint64_t peak;
} sampler;

static void *sample_rss(void *arg)
{
	(void)arg;
	while (sampler.run) {
		uint64_t a = rss_anon();
		if (a > sampler.peak)
			sampler.peak = a;
		usleep(2000);
	}
	return NULL;
}

/* Address i of generation g: a tenth of the addresses change between 0 and 1. */
static int addr_of(char *buf, size_t len, uint64_t i, int gen)
{
	if (gen && i % 10 == 0)
		return snprintf(buf, len, "new.%08llu@" LIST_DOMAIN, (unsigned long long)i);
	return snprintf(buf, len, "user.%08llu@" LIST_DOMAIN, (unsigned long long)i);
}

static int write_list(const char *path, uint64_t n, int gen)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	char a[64];
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	fprintf(f, "# %llu mailboxes of " LIST_DOMAIN "\n", (unsigned long long)n);
	for (uint64_t i = 0; i < n; i++) {
		addr_of(a, sizeof(a), i, gen);
		fprintf(f, "%s\n", a);
	}
	return fclose(f) ? -errno : 0;
}

/* Listed addresses of generation gen (only those kept by the reload when
 * kept_only) missing from the table. */
static uint64_t check_all(const char *shm, uint64_t n, int gen, bool kept_only, int quiesce_lc)
{
	struct shm_map m;
	char err[256];
	if (shm_attach_reader(shm, &m, err, sizeof(err))) {
		fprintf(stderr, "bench list: %s\n", err);
		return n;
	}
	struct rtable_reader r;
	rtable_reader_init(&r, &m, quiesce_lc >= 0 ? shm_lcore_at(&m, (uint32_t)quiesce_lc) : NULL);
	if (quiesce_lc >= 0)
		rtable_reader_online(&r, (uint32_t)getpid(), (uint32_t)quiesce_lc);
	uint64_t missing = 0;
	char a[64];
	for (uint64_t i = 0; i < n; i++) {
		if (kept_only && i % 10 == 0)
			continue;
		int len = addr_of(a, sizeof(a), i, gen);
		struct rg_key128 k;
		struct rtable_val v;
		khash128(shm_hdr(&m)->hash_key, a, (size_t)len, &k);
		if (!rtable_lookup(&r, &k, &v) || v.verdict != RT_VALID)
			missing++;
		if ((i & 1023) == 0)
			rtable_quiescent(&r, bench_now_ns());
	}
	rtable_reader_offline(&r);
	shm_detach(&m);
	return missing;
}

static void reloads_fn(const char *g, const char *name, uint64_t v, const char *h, void *arg)
{
	(void)h;
	if (!strcmp(g, "daemon") && !strcmp(name, "reloads"))
		*(uint64_t *)arg = v;
}

static uint64_t reloads(void)
{
	uint64_t v = 0;
	core_stats_foreach(reloads_fn, &v);
	return v;
}

static int verbose;

static int one_run(const char *dir, uint64_t n, struct run *out)
{
	char conf[256], list[256], shm[256], cmd[600];
	snprintf(conf, sizeof(conf), "%s/rcptgated.conf", dir);
	snprintf(list, sizeof(list), "%s/list.txt", dir);
	snprintf(shm, sizeof(shm), "/dev/shm/rg-bench-list-%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s && mkdir -p %s", dir, shm, dir);
	if (system(cmd) != 0)
		return -EIO;
	FILE *f = fopen(conf, "w");
	if (!f)
		return -errno;
	fprintf(f,
		"[global]\nshm_path = %s\nstore_path = %s/store\ncontrol_socket = %s/ctl.sock\n"
		"shm_max_lcores = 2\nsyslog_facility = local7\nlog_stderr = %s\n\n"
		"[domain " LIST_DOMAIN "]\nmode = list\nlist = %s\n",
		shm, dir, dir, verbose ? "yes" : "no", list);
	fclose(f);
	int rc = write_list(list, n, 0);
	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	out->n = n;

	uint64_t anon0 = rss_anon();
	struct daemon_opts o = {.config_path = conf};
	char err[512] = "";
	pthread_t sth;
	sampler.run = 1;
	sampler.peak = anon0;
	pthread_create(&sth, NULL, sample_rss, NULL);
	uint64_t t0 = bench_now_ns();
	double c0 = cpu_s();
	rc = daemon_init(&o, err, sizeof(err));
	out->load_cpu_s = cpu_s() - c0;
	sampler.run = 0;
	pthread_join(sth, NULL);
	if (rc) {
		fprintf(stderr, "bench list: daemon_init: %s\n", err);
		return rc;
	}
	out->load_s = (double)(bench_now_ns() - t0) / 1e9;
	out->load_per_s = (double)n / out->load_s;
	/* let the core give the old slab back (no reader holds it) */
	for (int i = 0; i < 20; i++)
		daemon_loop_once(1);
	uint64_t anon1 = rss_anon();
	out->daemon_bytes_per_addr = (double)(anon1 > anon0 ? anon1 - anon0 : 0) / (double)n;
	struct stat st;
	if (stat(shm, &st) == 0)
		out->shm_bytes_per_addr = (double)st.st_blocks * 512.0 / (double)n;
	out->lost = check_all(shm, n, 0, false, -1);

	/* reload with 10% changed, a reader in another process checking the
	 * addresses kept all the while */
	if ((rc = write_list(list, n, 1)))
		goto done;
	int pfd[2];
	if (pipe(pfd)) {
		rc = -errno;
		goto done;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* the loop below ends on it */
		uint64_t rounds = 0, missing = 0;
		/* until told to stop by SIGTERM after the reload: whole passes */
		sigset_t ss;
		sigemptyset(&ss);
		sigaddset(&ss, SIGTERM);
		sigprocmask(SIG_BLOCK, &ss, NULL);
		struct timespec zero = {0, 0};
		do {
			missing += check_all(shm, n, 0, true, 0);
			rounds++;
		} while (sigtimedwait(&ss, NULL, &zero) < 0);
		uint64_t res[2] = {missing, rounds * (n - (n + 9) / 10)};
		if (write(pfd[1], res, sizeof(res)) != sizeof(res))
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	usleep(100000);
	sampler.run = 1;
	pthread_create(&sth, NULL, sample_rss, NULL);
	t0 = bench_now_ns();
	c0 = cpu_s();
	uint64_t reloads0 = reloads();
	kill(getpid(), SIGHUP);
	/* the reload runs inside the loop turn that reads the signal */
	struct core_status cs;
	while (reloads() == reloads0 && bench_now_ns() - t0 < 120000000000ull) {
		daemon_loop_once(1);
	}
	if (reloads() == reloads0) {
		fprintf(stderr, "bench list: the reload did not happen\n");
		rc = -ETIMEDOUT;
	}
	out->reload_s = (double)(bench_now_ns() - t0) / 1e9;
	out->reload_cpu_s = cpu_s() - c0;
	sampler.run = 0;
	pthread_join(sth, NULL);
	out->daemon_peak_bytes_per_addr =
		(double)(sampler.peak > anon0 ? sampler.peak - anon0 : 0) / (double)n;
	kill(pid, SIGTERM);
	uint64_t res[2] = {0, 0};
	if (read(pfd[0], res, sizeof(res)) != sizeof(res))
		res[0] = n;
	close(pfd[0]);
	waitpid(pid, NULL, 0);
	out->lost_reload = res[0];
	out->checked_during_reload = res[1];
	out->lost += res[0];
	out->lost += check_all(shm, n, 1, false, -1);
	if (core_status(&cs) == 0)
		out->table_entries = cs.table_entries;
	{
		struct shm_map m;
		if (shm_attach_reader(shm, &m, err, sizeof(err)) == 0) {
			const struct shm_hdr *h = shm_hdr(&m);
			out->table_log2 = h->rtable_log2[h->rtable_gen & 1];
			shm_detach(&m);
		}
	}
done:
	daemon_fini();
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, shm);
	if (system(cmd) != 0)
		fprintf(stderr, "bench list: cleanup of %s failed\n", dir);
	return rc;
}

int bench_list(int argc, char **argv)
{
	int json = 0;
	uint64_t sizes[8];
	unsigned nsizes = 0;
	const char *dir = "/tmp/rg-bench-list";
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"addresses", required_argument, NULL, 'n'},
		{"dir", required_argument, NULL, 'd'},
		{"verbose", no_argument, NULL, 'v'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "jn:d:v", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'n':
			if (nsizes < 8)
				sizes[nsizes++] = strtoull(optarg, NULL, 10);
			break;
		case 'd': dir = optarg; break;
		case 'v': verbose = 1; break;
		default:
			fprintf(stderr, "usage: rcptgate-bench list [--json] [--addresses N]... "
					"[--dir D] [--verbose]\n");
			return 2;
		}
	}
	if (!nsizes) {
		sizes[nsizes++] = 1000000;
		sizes[nsizes++] = 10000000;
	}
	for (unsigned i = 0; i < nsizes; i++)
		if (sizes[i] < 1000 || sizes[i] > 20000000) {
			fprintf(stderr, "rcptgate-bench list: --addresses 1000..20000000\n");
			return 2;
		}
	/* the core reads reloads from a signalfd: SIGHUP must be blocked */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);

	bench_print_machine(stdout, argc, argv);
	struct run runs[8];
	int failed = 0;
	printf("%10s %8s %8s %11s %8s %8s %10s %10s %11s %6s %5s %10s\n", "addresses", "load_s",
	       "load_cpu", "load_per_s", "reload_s", "rel_cpu", "shm_B/addr", "rss_B/addr",
	       "peak_B/addr", "table", "lost", "reload_chk");
	for (unsigned i = 0; i < nsizes; i++) {
		int rc = one_run(dir, sizes[i], &runs[i]);
		if (rc) {
			fprintf(stderr, "rcptgate-bench list: %llu addresses: %s\n",
				(unsigned long long)sizes[i], strerror(-rc));
			return 1;
		}
		const struct run *r = &runs[i];
		printf("%10llu %8.2f %8.2f %11.0f %8.2f %8.2f %10.1f %10.1f %11.1f %4s%2u %5llu %10llu\n",
		       (unsigned long long)r->n, r->load_s, r->load_cpu_s, r->load_per_s, r->reload_s,
		       r->reload_cpu_s,
		       r->shm_bytes_per_addr, r->daemon_bytes_per_addr, r->daemon_peak_bytes_per_addr,
		       "2^", r->table_log2, (unsigned long long)r->lost,
		       (unsigned long long)r->checked_during_reload);
		fflush(stdout);
		failed |= r->lost != 0;
	}
	if (json) {
		printf("{\"bench\":\"list\",\"runs\":[");
		for (unsigned i = 0; i < nsizes; i++) {
			const struct run *r = &runs[i];
			printf("%s{\"addresses\":%llu,\"load_s\":%.3f,\"load_cpu_s\":%.3f,"
			       "\"load_per_s\":%.0f,\"reload_s\":%.3f,\"reload_cpu_s\":%.3f,"
			       "\"shm_bytes_per_addr\":%.1f,"
			       "\"daemon_bytes_per_addr\":%.1f,\"daemon_peak_bytes_per_addr\":%.1f,"
			       "\"table_log2\":%u,\"table_entries\":%llu,\"lost\":%llu,"
			       "\"lost_during_reload\":%llu,\"checked_during_reload\":%llu}",
			       i ? "," : "", (unsigned long long)r->n, r->load_s, r->load_cpu_s,
			       r->load_per_s, r->reload_s, r->reload_cpu_s, r->shm_bytes_per_addr, r->daemon_bytes_per_addr,
			       r->daemon_peak_bytes_per_addr, r->table_log2,
			       (unsigned long long)r->table_entries, (unsigned long long)r->lost,
			       (unsigned long long)r->lost_reload,
			       (unsigned long long)r->checked_during_reload);
		}
		printf("]}\n");
	}
	return failed ? 1 : 0;
}
