/*
 * fleet.c — `rcptgate-bench fleet`: what the fleet (control/fleet.h) costs
 * and saves, for 1, 2 and 3 rcptgated nodes sharing one redis-server.
 *
 * It starts redis-server on a Unix socket in a temporary directory, a
 * loopback SMTP destination (a thread here that answers 250 to every RCPT
 * and counts them), and N rcptgated processes, each with its own store and
 * shared memory, all in one fleet.  Then, attached to each node's shared
 * memory as its data plane would be:
 *
 *  - callouts per address: every address's miss is pushed into every
 *    node's miss ring at once (an attack spread over the boxes: each box
 *    sees each address); RCPTs the destination saw / addresses.  The same
 *    run without [fleet] (N lone boxes) is printed next to it.
 *  - propagation: misses pushed into node 0 only, a few at a time; for each
 *    address the time from its verdict being readable in node 0's table to
 *    being readable in node 1's (N >= 2).
 *  - miss path ratio: addresses pushed into node 0 only, verifications/s
 *    with the fleet (Redis asked, lock taken, verdict shared) over the same
 *    with a lone box (no [fleet]), same destination, same run.
 *
 * Thread: the bench, the destination's threads, and the child processes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <hiredis/hiredis.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "khash.h"
#include "msg.h"
#include "rtable.h"
#include "shm.h"
#include "spsc.h"

#define BF_MAX_NODES 3
#define BF_DEF_COUNT 2000u
#define BF_MAX_COUNT 100000u
#define BF_DEF_PROP 300u
#define BF_TIMEOUT_S 60u
#define BF_MAX_DELAY_MS 1000u
#define BF_SETTLE_US 200000u	/* after a measure, before its cost is read */
#define BF_DOMAIN "bench.test"
#define BF_SECRET "0f1e2d3c4b5a69788796a5b4c3d2e1f0"

struct bf_opts {
	unsigned count, prop, maxnodes, delay_ms;
	int json;
	char rcptgated[4096];
	const char *redis;
};

/* ---- the destination: 250 to everything, RCPTs counted */

static int dest_fd = -1, dest_port;
static unsigned long dest_rcpts;
static unsigned dest_delay_ms;	/* --dest-delay-ms: before every RCPT reply */

static void *dest_session(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[65536], out[65536];
	size_t len = 0;
	int r = -1;
	if (write(fd, "220 dest.bench ESMTP\r\n", 22) < 0)
		goto done;
	for (;;) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		size_t ol = 0, start = 0;
		for (size_t i = 0; i < len; i++) {
			if (buf[i] != '\n')
				continue;
			const char *line = buf + start;
			const char *rep = "250 Ok\r\n";
			if (!strncasecmp(line, "EHLO", 4))
				rep = "250-dest.bench\r\n250 PIPELINING\r\n";
			else if (!strncasecmp(line, "RCPT", 4)) {
				__atomic_add_fetch(&dest_rcpts, 1, __ATOMIC_RELAXED);
				if (dest_delay_ms) {
					/* a real destination's lookup: the replies
					 * before this one go now, this one after it */
					if (ol && send(fd, out, ol, MSG_NOSIGNAL) < 0)
						goto done;
					ol = 0;
					struct timespec d = {.tv_sec = dest_delay_ms / 1000u,
							     .tv_nsec = (long)(dest_delay_ms % 1000u) * 1000000L};
					nanosleep(&d, NULL);
				}
			}
			else if (!strncasecmp(line, "QUIT", 4))
				rep = "221 Bye\r\n";
			size_t rl = strlen(rep);
			if (ol + rl < sizeof(out)) {
				memcpy(out + ol, rep, rl);
				ol += rl;
			}
			start = i + 1;
		}
		memmove(buf, buf + start, len - start);
		len -= start;
		if (len == sizeof(buf))
			len = 0; /* a line over 64 KiB: dropped */
		if (ol && send(fd, out, ol, MSG_NOSIGNAL) < 0)
			break;
	}
	r = 0;
done:
	(void)r;
	close(fd);
	return NULL;
}

static void *dest_accept(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(dest_fd, NULL, NULL);
		if (c < 0)
			return NULL;
		pthread_t t;
		if (pthread_create(&t, NULL, dest_session, (void *)(intptr_t)c))
			close(c);
		else
			pthread_detach(t);
	}
}

static int dest_start(void)
{
	dest_fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	if (dest_fd < 0 || bind(dest_fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(dest_fd, (struct sockaddr *)&a, &l) || listen(dest_fd, 128))
		return -1;
	dest_port = ntohs(a.sin_port);
	pthread_t t;
	if (pthread_create(&t, NULL, dest_accept, NULL))
		return -1;
	pthread_detach(t);
	return 0;
}

/* ---- processes */

/* bench_spawn with its output appended to log. */
static pid_t spawn_logged(char *const argv[], const char *log)
{
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	pid_t p = bench_spawn(argv, fd);
	if (fd >= 0)
		close(fd);
	return p;
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

struct node {
	pid_t pid;
	char shm[4200];
	struct shm_map m;
	struct spsc_hdr *ring;
	struct rtable_reader rd;
};

static char dir[64];

/* round: a distinct key prefix, store and shared memory per round */
static int nodes_start(const struct bf_opts *o, struct node *nd, unsigned n, bool fleet,
		       unsigned round)
{
	for (unsigned i = 0; i < n; i++) {
		char conf[4200], logp[4200];
		snprintf(conf, sizeof(conf), "%s/r%u-n%u.conf", dir, round, i);
		snprintf(logp, sizeof(logp), "%s/r%u-n%u.log", dir, round, i);
		snprintf(nd[i].shm, sizeof(nd[i].shm), "%s/r%u-n%u.shm", dir, round, i);
		FILE *f = fopen(conf, "w");
		if (!f)
			return -1;
		fprintf(f,
			"[global]\nshm_path = %s\nstore_path = %s/r%u-n%u.store\n"
			"control_socket = %s/r%u-n%u.sock\nshm_max_lcores = 1\n"
			"table_init_log2 = 14\ntable_max_log2 = 20\nlog_callouts = no\n"
			"queue_max = %u\nsyslog_facility = local7\nxdp_pin_dir = %s/bpf\n\n",
			nd[i].shm, dir, round, i, dir, round, i, o->count * 2 + 64, dir);
		if (fleet)
			fprintf(f, "[fleet]\nredis = %s/redis.sock\nsecret_file = %s/fleet.key\n"
				"node_name = n%u\nkey_prefix = r%u:\n\n", dir, dir, i, round);
		fprintf(f,
			"[domain " BF_DOMAIN "]\ndestination = 127.0.0.1:%d\naccept_all_probe = no\n"
			"batch = 100\ndest_max_conns = 4\ndest_conn_rate = 100000\n"
			"dest_rcpt_rate = 10000000\ndomain_queue_max = %u\n",
			dest_port, o->count * 2 + 64);
		fclose(f);
		char *argv[] = {(char *)o->rcptgated, "-c", conf, "-e", NULL};
		nd[i].pid = spawn_logged(argv, logp);
	}
	for (unsigned i = 0; i < n; i++) {
		char err[256] = "";
		nd[i].m.base = NULL;
		for (int t = 0; t < 250; t++) {
			if (!access(nd[i].shm, F_OK) && !shm_attach_reader(nd[i].shm, &nd[i].m, err, sizeof(err)))
				break;
			nd[i].m.base = NULL;
			usleep(20000);
		}
		if (!nd[i].m.base) {
			fprintf(stderr, "fleet: node %u: cannot attach %s: %s\n", i, nd[i].shm, err);
			return -1;
		}
		const struct shm_hdr *h = shm_hdr(&nd[i].m);
		nd[i].ring = (struct spsc_hdr *)((uint8_t *)shm_lcore_at(&nd[i].m, 0) + h->miss_ring_off);
		rtable_reader_init(&nd[i].rd, &nd[i].m, NULL);
	}
	usleep(500000); /* start-up done, Redis connected */
	return 0;
}

static void nodes_stop(struct node *nd, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (nd[i].m.base)
			shm_detach(&nd[i].m);
		nd[i].m.base = NULL;
		bench_stop(nd[i].pid, 2000);
		nd[i].pid = 0;
	}
}

static bool push(struct node *n, const char *addr)
{
	struct msg_miss *mm = spsc_reserve(n->ring);
	if (!mm)
		return false;
	memset(mm, 0, sizeof(*mm));
	size_t len = strlen(addr);
	struct rg_key128 k;
	khash128(shm_hdr(&n->m)->hash_key, addr, len, &k);
	mm->key_hi = k.hi;
	mm->key_lo = k.lo;
	mm->len = (uint16_t)len;
	memcpy(mm->addr, addr, len);
	spsc_commit(n->ring);
	return true;
}

static bool has(struct node *n, const char *addr)
{
	struct rg_key128 k;
	struct rtable_val v;
	khash128(shm_hdr(&n->m)->hash_key, addr, strlen(addr), &k);
	return rtable_lookup(&n->rd, &k, &v);
}

/* Push addr[0..cnt) into the nodes in mask (bit i = node i), then wait until
 * every address is in every node of want_mask.  Returns the elapsed ns
 * (0 on timeout). */
static uint64_t run_batch(struct node *nd, unsigned n, char (*addr)[64], unsigned cnt,
			  unsigned mask, unsigned want_mask)
{
	uint64_t t0 = bench_now_ns(), dl = t0 + (uint64_t)BF_TIMEOUT_S * 1000000000ull;
	unsigned next = 0, done = 0;
	while (done < cnt && bench_now_ns() < dl) {
		while (next < cnt) {
			bool ok = true;
			for (unsigned i = 0; i < n; i++)
				if ((mask >> i) & 1u)
					ok &= push(&nd[i], addr[next]);
			if (!ok)
				break; /* ring full: the rest later (a duplicate is harmless) */
			next++;
		}
		while (done < cnt) {
			bool all = true;
			for (unsigned i = 0; i < n && all; i++)
				if ((want_mask >> i) & 1u)
					all = has(&nd[i], addr[done]);
			if (!all)
				break;
			done++;
		}
		usleep(200);
	}
	return done == cnt ? bench_now_ns() - t0 : 0;
}

/* ---- what a measure cost: CPU of the processes, Redis commands */

/* CPU time of every thread of pid, ns: the first field of each task's
 * schedstat (ns, finer than /proc/PID/stat's utime+stime in clock ticks). */
static uint64_t proc_cpu_ns(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	uint64_t sum = 0;
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char p2[300];
		snprintf(p2, sizeof(p2), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
		FILE *f = fopen(p2, "r");
		unsigned long long ns = 0;
		if (f) {
			if (fscanf(f, "%llu", &ns) == 1)
				sum += ns;
			fclose(f);
		}
	}
	closedir(d);
	return sum;
}

#define BF_CMDS 32

struct bf_cmds {
	unsigned n;
	char name[BF_CMDS][24];
	unsigned long long calls[BF_CMDS];
};

static pid_t redis_pid;
static char redis_sock[4200];

/* INFO commandstats: calls per command (those run by scripts included). */
static int redis_cmds(struct bf_cmds *c)
{
	memset(c, 0, sizeof(*c));
	redisContext *rc = redisConnectUnix(redis_sock);
	if (!rc || rc->err) {
		if (rc)
			redisFree(rc);
		return -1;
	}
	redisReply *r = redisCommand(rc, "INFO commandstats");
	if (r && r->type == REDIS_REPLY_STRING) {
		for (const char *l = r->str; l && *l;) {
			const char *nl = strchr(l, '\n');
			unsigned long long calls;
			char name[24];
			if (c->n < BF_CMDS && sscanf(l, "cmdstat_%23[^:]:calls=%llu", name, &calls) == 2) {
				snprintf(c->name[c->n], sizeof(c->name[0]), "%s", name);
				c->calls[c->n++] = calls;
			}
			l = nl ? nl + 1 : NULL;
		}
	}
	freeReplyObject(r);
	/* this connection's own INFO is counted in the next snapshot: taken off there */
	redisFree(rc);
	return 0;
}

static unsigned long long cmds_get(const struct bf_cmds *c, const char *name)
{
	for (unsigned i = 0; i < c->n; i++)
		if (!strcmp(c->name[i], name))
			return c->calls[i];
	return 0;
}

struct bf_cost {
	double node0_us, nodes_us, redis_us;	/* CPU per address */
	double calls;				/* Redis commands per address */
	unsigned ncmd;
	char cmd[BF_CMDS][24];
	double per[BF_CMDS];
};

struct bf_snap {
	uint64_t node0, nodes, redis;
	struct bf_cmds c;
};

static void snap_take(struct bf_snap *s, const struct node *nd, unsigned n)
{
	s->node0 = proc_cpu_ns(nd[0].pid);
	s->nodes = 0;
	for (unsigned i = 0; i < n; i++)
		s->nodes += proc_cpu_ns(nd[i].pid);
	s->redis = proc_cpu_ns(redis_pid);
	redis_cmds(&s->c);
}

static void snap_cost(const struct bf_snap *a, const struct bf_snap *b, unsigned count,
		      struct bf_cost *out)
{
	memset(out, 0, sizeof(*out));
	out->node0_us = (double)(b->node0 - a->node0) / 1e3 / count;
	out->nodes_us = (double)(b->nodes - a->nodes) / 1e3 / count;
	out->redis_us = (double)(b->redis - a->redis) / 1e3 / count;
	for (unsigned i = 0; i < b->c.n; i++) {
		unsigned long long d = b->c.calls[i] - cmds_get(&a->c, b->c.name[i]);
		if (!strcmp(b->c.name[i], "info") && d)
			d--; /* the snapshot's own */
		if (!d)
			continue;
		snprintf(out->cmd[out->ncmd], sizeof(out->cmd[0]), "%s", b->c.name[i]);
		out->per[out->ncmd++] = (double)d / count;
		out->calls += (double)d / count;
	}
}

struct bf_result {
	unsigned nodes;
	double cpa, cpa_alone;
	double prop_p50, prop_p99;
	bool have_prop;
	double ratio, rate_fleet, rate_alone;
	struct bf_cost cost_fleet, cost_alone;
};

static void addrs_make(char (*a)[64], unsigned cnt, const char *tag)
{
	uint32_t salt = (uint32_t)time(NULL);
	for (unsigned i = 0; i < cnt; i++)
		snprintf(a[i], 64, "%s%u-%08x@" BF_DOMAIN, tag, i, salt);
}

static int one_size(const struct bf_opts *o, unsigned n, unsigned *round, struct bf_result *res)
{
	struct node nd[BF_MAX_NODES];
	memset(nd, 0, sizeof(nd));
	char(*a)[64] = calloc(o->count, 64);
	uint64_t *lat = calloc(o->prop, sizeof(uint64_t));
	int rc = -1;
	unsigned all = (1u << n) - 1;
	memset(res, 0, sizeof(*res));
	res->nodes = n;
	if (!a || !lat)
		goto out;
	/* lone boxes: callouts per address, and the single-box miss path */
	if (nodes_start(o, nd, n, false, ++*round))
		goto out;
	addrs_make(a, o->count, "alone");
	unsigned long r0 = __atomic_load_n(&dest_rcpts, __ATOMIC_RELAXED);
	if (!run_batch(nd, n, a, o->count, all, all))
		goto out;
	usleep(200000);
	res->cpa_alone = (double)(__atomic_load_n(&dest_rcpts, __ATOMIC_RELAXED) - r0) / o->count;
	addrs_make(a, o->count, "solo");
	struct bf_snap s0, s1;
	snap_take(&s0, nd, n);
	uint64_t ns = run_batch(nd, n, a, o->count, 1u, 1u);
	usleep(BF_SETTLE_US);
	snap_take(&s1, nd, n);
	if (!ns)
		goto out;
	snap_cost(&s0, &s1, o->count, &res->cost_alone);
	res->rate_alone = o->count / (ns / 1e9);
	nodes_stop(nd, n);
	/* the fleet */
	if (nodes_start(o, nd, n, true, ++*round))
		goto out;
	addrs_make(a, o->count, "fleet");
	r0 = __atomic_load_n(&dest_rcpts, __ATOMIC_RELAXED);
	if (!run_batch(nd, n, a, o->count, all, all))
		goto out;
	usleep(200000);
	res->cpa = (double)(__atomic_load_n(&dest_rcpts, __ATOMIC_RELAXED) - r0) / o->count;
	addrs_make(a, o->count, "miss");
	snap_take(&s0, nd, n);
	ns = run_batch(nd, n, a, o->count, 1u, 1u);
	usleep(BF_SETTLE_US); /* the verdicts shared, the other nodes' applying them */
	snap_take(&s1, nd, n);
	if (!ns)
		goto out;
	snap_cost(&s0, &s1, o->count, &res->cost_fleet);
	res->rate_fleet = o->count / (ns / 1e9);
	res->ratio = res->rate_fleet / res->rate_alone;
	if (n >= 2) {
		/* node 0 learns, node 1 is watched: a few at a time, polled closely */
		addrs_make(a, o->prop, "prop");
		unsigned nl = 0;
		for (unsigned i = 0; i < o->prop; i++) {
			if (!push(&nd[0], a[i]))
				continue;
			uint64_t dl = bench_now_ns() + 5000000000ull, t0 = 0;
			while (bench_now_ns() < dl) {
				if (!t0 && has(&nd[0], a[i]))
					t0 = bench_now_ns();
				if (t0 && has(&nd[1], a[i])) {
					lat[nl++] = bench_now_ns() - t0;
					break;
				}
				usleep(50);
			}
		}
		if (nl) {
			qsort(lat, nl, sizeof(*lat), bench_cmp_u64);
			res->prop_p50 = lat[nl / 2] / 1e6;
			res->prop_p99 = lat[(size_t)((nl - 1) * 0.99)] / 1e6;
			res->have_prop = true;
		}
	}
	rc = 0;
out:
	nodes_stop(nd, n);
	free(a);
	free(lat);
	return rc;
}

static int parse(int argc, char **argv, struct bf_opts *o)
{
	*o = (struct bf_opts){.count = BF_DEF_COUNT, .prop = BF_DEF_PROP, .maxnodes = 3,
			      .redis = "redis-server"};
	default_rcptgated(o->rcptgated, sizeof(o->rcptgated));
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(argv[i], "--json")) {
			o->json = 1;
		} else if (!strcmp(argv[i], "--count") && v) {
			o->count = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (!strcmp(argv[i], "--propagation") && v) {
			o->prop = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (!strcmp(argv[i], "--nodes") && v) {
			o->maxnodes = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (!strcmp(argv[i], "--dest-delay-ms") && v) {
			o->delay_ms = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (!strcmp(argv[i], "--rcptgated") && v) {
			snprintf(o->rcptgated, sizeof(o->rcptgated), "%s", v);
			i++;
		} else if (!strcmp(argv[i], "--redis-server") && v) {
			o->redis = v;
			i++;
		} else {
			fprintf(stderr, "usage: rcptgate-bench fleet [--json] [--count N] "
				"[--propagation N] [--nodes 1..3] [--dest-delay-ms 0..1000] [--rcptgated PATH] "
				"[--redis-server PATH]\n");
			return -1;
		}
	}
	if (!o->count || o->count > BF_MAX_COUNT || !o->prop || o->prop > o->count ||
	    !o->maxnodes || o->maxnodes > BF_MAX_NODES || o->delay_ms > BF_MAX_DELAY_MS) {
		fprintf(stderr, "fleet: count 1..%u, propagation 1..count, nodes 1..%u, "
			"dest-delay-ms 0..%u\n", BF_MAX_COUNT, BF_MAX_NODES, BF_MAX_DELAY_MS);
		return -1;
	}
	return 0;
}

int bench_fleet(int argc, char **argv)
{
	struct bf_opts o;
	if (parse(argc, argv, &o))
		return 2;
	if (access(o.rcptgated, X_OK)) {
		fprintf(stderr, "fleet: need %s\n", o.rcptgated);
		return 1;
	}
	snprintf(dir, sizeof(dir), "/tmp/rg-bench-fleet-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	dest_delay_ms = o.delay_ms;
	char path[4200], sock[4200], rlog[4200];
	snprintf(path, sizeof(path), "%s/fleet.key", dir);
	FILE *f = fopen(path, "w");
	if (!f || dest_start()) {
		fprintf(stderr, "fleet: cannot set up %s\n", dir);
		return 1;
	}
	fprintf(f, "%s\n", BF_SECRET);
	fclose(f);
	snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
	snprintf(rlog, sizeof(rlog), "%s/redis.log", dir);
	char *rargv[] = {(char *)o.redis, "--port", "0", "--unixsocket", sock, "--unixsocketperm",
			 "700", "--save", "", "--appendonly", "no", "--dir", dir, NULL};
	pid_t redis = spawn_logged(rargv, rlog);
	redis_pid = redis;
	snprintf(redis_sock, sizeof(redis_sock), "%s", sock);
	for (int i = 0; i < 250 && access(sock, F_OK); i++)
		usleep(20000);
	int rc = 1;
	struct bf_result res[BF_MAX_NODES];
	unsigned nres = 0, round = 0;
	if (access(sock, F_OK)) {
		fprintf(stderr, "fleet: redis-server did not start (see %s)\n", rlog);
		goto out;
	}
	for (unsigned n = 1; n <= o.maxnodes; n++) {
		if (one_size(&o, n, &round, &res[nres])) {
			fprintf(stderr, "fleet: the run with %u nodes failed (logs in %s)\n", n, dir);
			goto out;
		}
		nres++;
	}
	bench_print_machine(stdout, argc, argv);
	printf("fleet: %u addresses per measure, redis-server on a Unix socket, destination on "
	       "127.0.0.1:%d, %u ms before every RCPT reply\n", o.count, dest_port, o.delay_ms);
	printf("  nodes  callouts/address (lone boxes)  propagation p50/p99 ms  miss path "
	       "(fleet / lone box /s)\n");
	for (unsigned i = 0; i < nres; i++) {
		char prop[64] = "-";
		if (res[i].have_prop)
			snprintf(prop, sizeof(prop), "%.2f / %.2f", res[i].prop_p50, res[i].prop_p99);
		printf("  %5u  %6.2f (%4.2f)%16s  %-22s  %.2f (%.0f / %.0f)\n", res[i].nodes, res[i].cpa,
		       res[i].cpa_alone, "", prop, res[i].ratio, res[i].rate_fleet, res[i].rate_alone);
	}
	printf("  miss path cost per address: CPU us of node 0 (all nodes) fleet / lone box, "
	       "redis-server CPU us, Redis commands (by command; a script's own calls counted "
	       "too)\n");
	for (unsigned i = 0; i < nres; i++) {
		const struct bf_cost *fc = &res[i].cost_fleet, *a = &res[i].cost_alone;
		printf("  %5u  %.2f (%.2f) / %.2f (%.2f)  redis %.2f us  %.2f commands:", res[i].nodes,
		       fc->node0_us, fc->nodes_us, a->node0_us, a->nodes_us, fc->redis_us, fc->calls);
		for (unsigned k = 0; k < fc->ncmd; k++)
			printf(" %s %.3f", fc->cmd[k], fc->per[k]);
		printf("\n");
	}
	if (o.json) {
		printf("{\"bench\":\"fleet\",\"addresses\":%u,\"dest_delay_ms\":%u,\"runs\":[",
		       o.count, o.delay_ms);
		for (unsigned i = 0; i < nres; i++) {
			printf("%s{\"nodes\":%u,\"callouts_per_address\":%.2f,"
			       "\"callouts_per_address_without_fleet\":%.2f,", i ? "," : "", res[i].nodes,
			       res[i].cpa, res[i].cpa_alone);
			if (res[i].have_prop)
				printf("\"propagation_p50_ms\":%.2f,\"propagation_p99_ms\":%.2f,",
				       res[i].prop_p50, res[i].prop_p99);
			else
				printf("\"propagation_p50_ms\":null,\"propagation_p99_ms\":null,");
			printf("\"miss_path_ratio\":%.2f,\"miss_path_per_s\":%.0f,"
			       "\"miss_path_single_box_per_s\":%.0f,", res[i].ratio, res[i].rate_fleet,
			       res[i].rate_alone);
			const struct bf_cost *fc = &res[i].cost_fleet, *a = &res[i].cost_alone;
			printf("\"miss_cpu_us_per_addr_fleet\":%.3f,"
			       "\"miss_cpu_us_per_addr_fleet_all_nodes\":%.3f,"
			       "\"miss_cpu_us_per_addr_alone\":%.3f,\"redis_cpu_us_per_addr\":%.3f,"
			       "\"redis_calls_per_addr\":%.3f,\"redis_calls_per_addr_by_command\":{",
			       fc->node0_us, fc->nodes_us, a->node0_us, fc->redis_us, fc->calls);
			for (unsigned k = 0; k < fc->ncmd; k++)
				printf("%s\"%s\":%.3f", k ? "," : "", fc->cmd[k], fc->per[k]);
			printf("}}");
		}
		printf("]}\n");
	}
	rc = 0;
out:
	bench_stop(redis, 2000);
	if (rc == 0) {
		char cmd[200];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "fleet: could not remove %s\n", dir);
	} else {
		fprintf(stderr, "fleet: files kept in %s\n", dir);
	}
	return rc;
}
