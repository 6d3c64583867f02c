/*
 * callout.c — `rcptgate-bench callout`: how fast rcptgated verifies
 * recipients by callout, end to end, the way the data plane sees it.
 *
 * It starts Postfix's smtp-sink on a free loopback port and rcptgated with a
 * throw-away configuration (one domain whose destination is the sink,
 * accept-all probing off since smtp-sink accepts every address), attaches to
 * rcptgated's shared memory as a data plane would, pushes N distinct misses
 * into lcore 0's miss ring and polls the recipient table until every
 * address has a verdict.  Latency of an address = from its miss record
 * being queued to its verdict being readable in the table.  Connections are
 * counted by smtp-sink itself (its -c session counter).
 * Thread: one (the bench), plus the two child processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "khash.h"
#include "msg.h"
#include "rtable.h"
#include "shm.h"
#include "spsc.h"
#include "stats.h"

#define BC_DEF_COUNT 10000u
#define BC_MAX_COUNT 1000000u
#define BC_TIMEOUT_S 120u
#define BC_DOMAIN "bench.test"

struct bc_opts {
	unsigned count, batch, conns, session_max;
	int json;
	char rcptgated[4096];
	const char *sink;
};

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &l)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return ntohs(a.sin_port);
}

static int port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Last "sess=N" smtp-sink printed into its output file. */
static long sink_sessions(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	long last = -1;
	for (char *p = buf; (p = strstr(p, "sess=")); p += 5)
		last = strtol(p + 5, NULL, 10);
	return last;
}

static void default_rcptgated(char *out, size_t len)
{
	char self[3900];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		snprintf(out, len, "rcptgated");
		return;
	}
	self[n] = 0;
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = 0;
	snprintf(out, len, "%s/../control/rcptgated", self);
}

static int parse(int argc, char **argv, struct bc_opts *o)
{
	*o = (struct bc_opts){.count = BC_DEF_COUNT, .batch = 100, .conns = 4,
			      .session_max = 1000, .sink = "/usr/sbin/smtp-sink"};
	default_rcptgated(o->rcptgated, sizeof(o->rcptgated));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--json")) {
			o->json = 1;
		} else if (!strcmp(a, "--count") && v) {
			o->count = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (!strcmp(a, "--batch") && v) {
			o->batch = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (!strcmp(a, "--conns") && v) {
			o->conns = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (!strcmp(a, "--session-max") && v) {
			o->session_max = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (!strcmp(a, "--rcptgated") && v) {
			snprintf(o->rcptgated, sizeof(o->rcptgated), "%s", v);
			i++;
		} else if (!strcmp(a, "--smtp-sink") && v) {
			o->sink = v;
			i++;
		} else {
			fprintf(stderr,
				"usage: rcptgate-bench callout [--json] [--count N] [--batch N] "
				"[--conns N] [--session-max N] [--rcptgated PATH] [--smtp-sink PATH]\n");
			return -1;
		}
	}
	if (!o->count || o->count > BC_MAX_COUNT || !o->batch || o->batch > 1000 || !o->conns) {
		fprintf(stderr, "callout: count 1..%u, batch 1..1000, conns >= 1\n", BC_MAX_COUNT);
		return -1;
	}
	return 0;
}

int bench_callout(int argc, char **argv)
{
	struct bc_opts o;
	if (parse(argc, argv, &o))
		return 2;
	if (access(o.rcptgated, X_OK) || access(o.sink, X_OK)) {
		fprintf(stderr, "callout: need %s and %s\n", o.rcptgated, o.sink);
		return 1;
	}
	char dir[] = "/tmp/rg-bench-callout-XXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	int port = free_port();
	char path[4200], conf[4200], sinkout[4200], logp[4200], listen[64], portarg[16];
	snprintf(conf, sizeof(conf), "%s/rcptgated.conf", dir);
	snprintf(sinkout, sizeof(sinkout), "%s/smtp-sink.out", dir);
	snprintf(logp, sizeof(logp), "%s/rcptgated.log", dir);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(portarg, sizeof(portarg), "%d", port);
	FILE *cf = fopen(conf, "w");
	if (!cf || port < 0) {
		fprintf(stderr, "callout: cannot set up %s\n", dir);
		return 1;
	}
	fprintf(cf,
		"[global]\nshm_path = %s/shm\nstore_path = %s/store\ncontrol_socket = %s/ctl.sock\n"
		"shm_max_lcores = 1\ntable_init_log2 = 16\ntable_max_log2 = 20\n"
		"log_callouts = no\nqueue_max = %u\nsyslog_facility = local7\n\n"
		"[domain " BC_DOMAIN "]\ndestination = 127.0.0.1:%d\naccept_all_probe = no\n"
		"batch = %u\nsession_max_rcpts = %u\ndest_max_conns = %u\n"
		"dest_conn_rate = 100000\ndest_rcpt_rate = 10000000\ndomain_queue_max = %u\n",
		dir, dir, dir, o.count + 16, port, o.batch, o.session_max, o.conns, o.count + 16);
	fclose(cf);

	int sfd = open(sinkout, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char *sargv[8];
	int k = 0;
	sargv[k++] = (char *)o.sink;
	if (geteuid() == 0) {
		sargv[k++] = "-u";
		sargv[k++] = "nobody";
	}
	sargv[k++] = "-c";
	sargv[k++] = listen;
	sargv[k++] = "256";
	sargv[k] = NULL;
	pid_t sink = bench_spawn(sargv, sfd);
	int lfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char *dargv[] = {o.rcptgated, "-c", conf, "-e", NULL};
	pid_t gated = -1;
	int rc = 1;
	struct shm_map m = {.fd = -1};
	uint64_t *t_enq = calloc(o.count, sizeof(uint64_t));
	uint64_t *t_done = calloc(o.count, sizeof(uint64_t));
	struct rg_key128 *keys = calloc(o.count, sizeof(*keys));
	char(*addrs)[64] = calloc(o.count, 64);
	unsigned *pending = calloc(o.count, sizeof(unsigned));
	if (!t_enq || !t_done || !keys || !addrs || !pending)
		goto out;
	for (int i = 0; i < 100 && !port_open(port); i++)
		usleep(20000);
	if (!port_open(port)) {
		fprintf(stderr, "callout: smtp-sink did not start (see %s)\n", sinkout);
		goto out;
	}
	gated = bench_spawn(dargv, lfd);
	char err[256] = "";
	snprintf(path, sizeof(path), "%s/shm", dir);
	for (int i = 0; i < 250; i++) {
		if (!access(path, F_OK) && !shm_attach_reader(path, &m, err, sizeof(err)))
			break;
		m.base = NULL;
		usleep(20000);
	}
	if (!m.base) {
		fprintf(stderr, "callout: cannot attach %s: %s (log %s)\n", path, err, logp);
		goto out;
	}
	usleep(200000); /* rcptgated finishes start-up after creating the file */
	const struct shm_hdr *h = shm_hdr(&m);
	struct spsc_hdr *ring = (struct spsc_hdr *)((uint8_t *)shm_lcore_at(&m, 0) + h->miss_ring_off);
	struct rtable_reader rd;
	rtable_reader_init(&rd, &m, NULL);
	uint32_t salt = (uint32_t)time(NULL);
	for (unsigned i = 0; i < o.count; i++) {
		int n = snprintf(addrs[i], 64, "b%u-%08x@" BC_DOMAIN, i, salt);
		khash128(h->hash_key, addrs[i], (size_t)n, &keys[i]);
	}
	unsigned next = 0, npend = 0, done = 0;
	uint64_t t0 = bench_now_ns(), deadline = t0 + (uint64_t)BC_TIMEOUT_S * 1000000000ull;
	while (done < o.count && bench_now_ns() < deadline) {
		/* feed the ring as a data-plane lcore does (full ring: try later) */
		while (next < o.count) {
			struct msg_miss *mm = spsc_reserve(ring);
			if (!mm)
				break;
			memset(mm, 0, sizeof(*mm));
			size_t n = strlen(addrs[next]);
			mm->key_hi = keys[next].hi;
			mm->key_lo = keys[next].lo;
			mm->len = (uint16_t)n;
			mm->ts_ns = (uint64_t)time(NULL) * 1000000000ull;
			memcpy(mm->addr, addrs[next], n);
			t_enq[next] = bench_now_ns();
			spsc_commit(ring);
			pending[npend++] = next;
			next++;
		}
		/* poll the verdicts of what was queued */
		unsigned w = 0;
		for (unsigned j = 0; j < npend; j++) {
			unsigned i = pending[j];
			struct rtable_val v;
			if (rtable_lookup(&rd, &keys[i], &v)) {
				t_done[i] = bench_now_ns();
				done++;
			} else {
				pending[w++] = i;
			}
		}
		npend = w;
		usleep(200);
	}
	uint64_t t_end = 0;
	uint64_t *lat = calloc(o.count, sizeof(uint64_t));
	unsigned nl = 0;
	for (unsigned i = 0; i < o.count; i++)
		if (t_done[i]) {
			lat[nl++] = t_done[i] - t_enq[i];
			if (t_done[i] > t_end)
				t_end = t_done[i];
		}
	if (!lat || nl == 0) {
		fprintf(stderr, "callout: no verdict arrived (log %s)\n", logp);
		free(lat);
		goto out;
	}
	qsort(lat, nl, sizeof(uint64_t), bench_cmp_u64);
	double secs = (double)(t_end - t0) / 1e9;
	double per_s = nl / secs;
	double p50 = lat[nl / 2] / 1e6, p99 = lat[(size_t)((nl - 1) * 0.99)] / 1e6,
	       pmax = lat[nl - 1] / 1e6;
	free(lat);
	bench_stop(gated, 1000);
	gated = -1;
	usleep(100000);
	bench_stop(sink, 1000);
	sink = -1;
	long sess = sink_sessions(sinkout);
	double per_conn = sess > 0 ? (double)nl / (double)sess : 0;
	bench_print_machine(stdout, argc, argv);
	printf("callout verification through rcptgated against smtp-sink on %s\n", listen);
	printf("  addresses            %u (verified %u)\n", o.count, nl);
	printf("  batch / conns / max  %u RCPT per transaction, %u sessions, %u RCPT per session\n",
	       o.batch, o.conns, o.session_max);
	printf("  elapsed              %.3f s\n", secs);
	printf("  verifications/s      %.0f\n", per_s);
	printf("  smtp-sink sessions   %ld\n", sess);
	printf("  addresses/connection %.1f\n", per_conn);
	printf("  latency p50/p99/max  %.2f / %.2f / %.2f ms (miss queued -> verdict in table)\n",
	       p50, p99, pmax);
	if (o.json)
		printf("{\"bench\":\"callout\",\"addresses\":%u,\"verified\":%u,\"elapsed_s\":%.3f,"
		       "\"verifications_per_s\":%.0f,\"sessions\":%ld,\"addresses_per_connection\":%.1f,"
		       "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,\"batch\":%u,\"conns\":%u}\n",
		       o.count, nl, secs, per_s, sess, per_conn, p50, p99, pmax, o.batch, o.conns);
	rc = nl == o.count ? 0 : 1;
out:
	if (m.base)
		shm_detach(&m);
	bench_stop(gated, 1000);
	bench_stop(sink, 1000);
	if (sfd >= 0)
		close(sfd);
	if (lfd >= 0)
		close(lfd);
	free(t_enq);
	free(t_done);
	free(keys);
	free(addrs);
	free(pending);
	if (rc == 0) {
		char cmd[4300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "callout: could not remove %s\n", dir);
	} else {
		fprintf(stderr, "callout: files kept in %s\n", dir);
	}
	return rc;
}
