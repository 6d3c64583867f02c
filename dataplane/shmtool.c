/*
 * shmtool.c — rg-shmtool: creates and fills rcptgate's shared-memory file the
 * way rcptgated does, and reads what the data plane wrote into it.  For tests
 * and for running rcptgate-dp on its own.  It takes the writer's role, so it
 * must not run while rcptgated owns the same file.  Single-threaded; libc and
 * the shared library only.
 *
 *   rg-shmtool create PATH [LCORES]
 *   rg-shmtool put PATH ADDR valid|invalid [TTL_S]
 *   rg-shmtool del PATH ADDR
 *   rg-shmtool domain PATH DOMAIN [callout|list|both] [pass|defer] [accept-all]
 *   rg-shmtool lookup PATH ADDR
 *   rg-shmtool stats PATH [COUNTER]
 *   rg-shmtool events PATH     (drains the event rings: one line per event)
 *   rg-shmtool misses PATH     (drains the miss rings: one address per line)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "addr.h"
#include "dtable.h"
#include "khash.h"
#include "msg.h"
#include "rtable.h"
#include "shm.h"
#include "spsc.h"
#include "stats.h"

#define SHMTOOL_MAINTAIN_ROUNDS 100000u

__attribute__((format(printf, 1, 2))) static int shmtool_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rg-shmtool: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return 1;
}

/* Open as writer with the parameters the file was built with. */
static int shmtool_open_writer(const char *path, struct shm_map *m)
{
	struct shm_params p;
	struct shm_map r;
	char err[256];
	int rc;

	memset(&r, 0, sizeof(r));
	rc = shm_attach_reader(path, &r, err, sizeof(err));
	if (rc)
		return shmtool_fail("%s", err);
	shm_params_default(&p);
	p.max_lcores = shm_hdr(&r)->max_lcores;
	p.dtable_slots = shm_hdr(&r)->dtable_slots;
	p.rtable_max_log2 = shm_hdr(&r)->rtable_max_log2;
	p.miss_slots = shm_hdr(&r)->miss_slots;
	p.event_slots = shm_hdr(&r)->event_slots;
	shm_detach(&r);
	rc = shm_open_writer(path, &p, m, err, sizeof(err));
	if (rc)
		return shmtool_fail("%s", err);
	return 0;
}

static int shmtool_attach(const char *path, struct shm_map *m)
{
	char err[256];
	memset(m, 0, sizeof(*m));
	if (shm_attach_reader(path, m, err, sizeof(err)))
		return shmtool_fail("%s", err);
	return 0;
}

/* Canonical address and its table key, honouring the domain's case rule. */
static int shmtool_key(const struct shm_map *m, const char *in, char *canon, size_t len,
		       struct rg_key128 *key)
{
	struct rg_key128 dk;
	struct dtable_info di;
	const char *at;
	int n = addr_normalize(in, strlen(in), false, canon, len - 1);

	if (n < 0) {
		shmtool_fail("%s: %s", in, addr_strerror(n));
		return -EINVAL;
	}
	canon[n] = 0;
	at = strrchr(canon, '@');
	if (at) {
		dtable_key(m, at + 1, strlen(at + 1), &dk);
		if (dtable_lookup(m, &dk, &di) && (di.flags & DT_F_CASE_SENSITIVE)) {
			n = addr_normalize(in, strlen(in), true, canon, len - 1);
			if (n < 0)
				return -EINVAL;
			canon[n] = 0;
		}
	}
	khash128(shm_hdr(m)->hash_key, canon, (size_t)n, key);
	return n;
}

static int cmd_create(int argc, char **argv)
{
	struct shm_params p;
	struct shm_map m;
	char err[256];

	shm_params_default(&p);
	if (argc > 3)
		p.max_lcores = (uint32_t)atoi(argv[3]);
	memset(&m, 0, sizeof(m));
	if (shm_create(argv[2], &p, &m, err, sizeof(err)))
		return shmtool_fail("%s", err);
	printf("created %s: %llu bytes, %u lcore regions\n", argv[2],
	       (unsigned long long)m.size, shm_hdr(&m)->max_lcores);
	shm_detach(&m);
	return 0;
}

/* Finish growth/migration so readers see every entry in the live slab. */
static void shmtool_settle(struct rtable_writer *w)
{
	struct timespec ts;
	for (unsigned i = 0; i < SHMTOOL_MAINTAIN_ROUNDS; i++) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (!rtable_maintain(w, 4096, (uint64_t)ts.tv_sec * 1000000000ull +
						      (uint64_t)ts.tv_nsec))
			return;
		if (i % 64 == 63)
			usleep(1000); /* readers reach a quiescent point */
	}
}

static int cmd_put(int argc, char **argv)
{
	struct shm_map m;
	struct rtable_writer w;
	struct rtable_val v = {0};
	struct rg_key128 key;
	char canon[RG_ADDR_MAX + 1];
	int rc;

	if (argc < 5)
		return shmtool_fail("usage: put PATH ADDR valid|invalid [TTL_S]");
	if (!strcmp(argv[4], "valid"))
		v.verdict = RT_VALID;
	else if (!strcmp(argv[4], "invalid"))
		v.verdict = RT_INVALID;
	else
		return shmtool_fail("verdict '%s' is not valid or invalid", argv[4]);
	if (shmtool_open_writer(argv[2], &m))
		return 1;
	if (shmtool_key(&m, argv[3], canon, sizeof(canon), &key) < 0) {
		shm_detach(&m);
		return 1;
	}
	v.source = RT_SRC_MANUAL;
	if (argc > 5 && atoi(argv[5]) > 0)
		v.expiry = (uint64_t)time(NULL) + (uint64_t)atoi(argv[5]);
	else
		v.flags = RT_F_PINNED;
	rtable_writer_init(&w, &m);
	rc = rtable_put(&w, &key, &v);
	shmtool_settle(&w);
	shm_detach(&m);
	if (rc)
		return shmtool_fail("put %s: %s", canon, strerror(-rc));
	printf("%s %s\n", canon, argv[4]);
	return 0;
}

static int cmd_del(int argc, char **argv)
{
	struct shm_map m;
	struct rtable_writer w;
	struct rg_key128 key;
	char canon[RG_ADDR_MAX + 1];
	int rc;

	if (argc < 4)
		return shmtool_fail("usage: del PATH ADDR");
	if (shmtool_open_writer(argv[2], &m))
		return 1;
	if (shmtool_key(&m, argv[3], canon, sizeof(canon), &key) < 0) {
		shm_detach(&m);
		return 1;
	}
	rtable_writer_init(&w, &m);
	rc = rtable_del(&w, &key);
	shm_detach(&m);
	if (rc)
		return shmtool_fail("del %s: %s", canon, strerror(-rc));
	return 0;
}

static int cmd_lookup(int argc, char **argv)
{
	static const char *const verdicts[] = {"none", "valid", "invalid"};
	struct shm_map m;
	struct rtable_reader r;
	struct rtable_val v;
	struct rg_key128 key;
	char canon[RG_ADDR_MAX + 1];

	if (argc < 4)
		return shmtool_fail("usage: lookup PATH ADDR");
	if (shmtool_attach(argv[2], &m))
		return 1;
	if (shmtool_key(&m, argv[3], canon, sizeof(canon), &key) < 0) {
		shm_detach(&m);
		return 1;
	}
	rtable_reader_init(&r, &m, NULL);
	if (rtable_lookup(&r, &key, &v))
		printf("%s %s\n", canon, verdicts[v.verdict < 3 ? v.verdict : 0]);
	else
		printf("%s miss\n", canon);
	shm_detach(&m);
	return 0;
}

static int cmd_domain(int argc, char **argv)
{
	struct shm_map m;
	struct dtable_info di = {.mode = DT_MODE_CALLOUT, .miss_policy = DT_MISS_PASS};
	struct rg_key128 key;
	char dom[RG_DOMAIN_MAX + 1];
	size_t len;
	int rc;

	if (argc < 4)
		return shmtool_fail("usage: domain PATH DOMAIN [callout|list|both] [pass|defer] "
				    "[accept-all]");
	len = strlen(argv[3]);
	if (len == 0 || len > RG_DOMAIN_MAX)
		return shmtool_fail("bad domain '%s'", argv[3]);
	for (size_t i = 0; i < len; i++)
		dom[i] = (argv[3][i] >= 'A' && argv[3][i] <= 'Z') ? (char)(argv[3][i] + 32)
								  : argv[3][i];
	dom[len] = 0;
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "callout"))
			di.mode = DT_MODE_CALLOUT;
		else if (!strcmp(argv[i], "list"))
			di.mode = DT_MODE_LIST;
		else if (!strcmp(argv[i], "both"))
			di.mode = DT_MODE_BOTH;
		else if (!strcmp(argv[i], "pass"))
			di.miss_policy = DT_MISS_PASS;
		else if (!strcmp(argv[i], "defer"))
			di.miss_policy = DT_MISS_DEFER;
		else if (!strcmp(argv[i], "accept-all"))
			di.flags |= DT_F_ACCEPT_ALL;
		else if (!strcmp(argv[i], "case-sensitive"))
			di.flags |= DT_F_CASE_SENSITIVE;
		else
			return shmtool_fail("unknown domain option '%s'", argv[i]);
	}
	if (shmtool_open_writer(argv[2], &m))
		return 1;
	dtable_key(&m, dom, len, &key);
	rc = dtable_put(&m, &key, &di);
	shm_detach(&m);
	if (rc)
		return shmtool_fail("domain %s: %s", dom, strerror(-rc));
	printf("domain %s\n", dom);
	return 0;
}

static int cmd_stats(int argc, char **argv)
{
	struct shm_map m;

	if (shmtool_attach(argv[2], &m))
		return 1;
	for (unsigned i = 0; i < STAT__COUNT; i++) {
		uint64_t v = stats_sum(&m, i);
		if (argc > 3) {
			if (!strcmp(argv[3], stats_names[i]))
				printf("%llu\n", (unsigned long long)v);
		} else {
			printf("%-18s %llu\n", stats_names[i], (unsigned long long)v);
		}
	}
	shm_detach(&m);
	return 0;
}

static struct spsc_hdr *shmtool_ring(const struct shm_map *m, unsigned lcore, uint32_t off)
{
	return (struct spsc_hdr *)((uint8_t *)shm_lcore_at(m, lcore) + off);
}

static int cmd_events(int argc, char **argv)
{
	struct shm_map m;
	(void)argc;

	if (shmtool_attach(argv[2], &m))
		return 1;
	for (unsigned l = 0; l < shm_hdr(&m)->max_lcores; l++) {
		struct spsc_hdr *r = shmtool_ring(&m, l, shm_hdr(&m)->event_ring_off);
		const struct msg_event *e;
		while ((e = spsc_peek(r)) != NULL) {
			char ip[INET6_ADDRSTRLEN] = "?";
			inet_ntop(e->family == 6 ? AF_INET6 : AF_INET, e->client_ip, ip,
				  sizeof(ip));
			printf("type=%u code=%u client=%s helo=%.*s from=%.*s rcpt=%.*s\n", e->type,
			       e->code, ip, e->helo_len > 256 ? 256 : e->helo_len, e->helo,
			       e->from_len > RG_PATH_MAX ? RG_PATH_MAX : e->from_len, e->from,
			       e->rcpt_len > RG_ADDR_MAX ? RG_ADDR_MAX : e->rcpt_len, e->rcpt);
			spsc_release(r);
		}
	}
	shm_detach(&m);
	return 0;
}

static int cmd_misses(int argc, char **argv)
{
	struct shm_map m;
	(void)argc;

	if (shmtool_attach(argv[2], &m))
		return 1;
	for (unsigned l = 0; l < shm_hdr(&m)->max_lcores; l++) {
		struct spsc_hdr *r = shmtool_ring(&m, l, shm_hdr(&m)->miss_ring_off);
		const struct msg_miss *e;
		while ((e = spsc_peek(r)) != NULL) {
			printf("%.*s\n", e->len > RG_ADDR_MAX ? RG_ADDR_MAX : e->len, e->addr);
			spsc_release(r);
		}
	}
	shm_detach(&m);
	return 0;
}

struct shmtool_cmd {
	const char *name;
	int min_args;
	int (*run)(int, char **);
};

static const struct shmtool_cmd shmtool_cmds[] = {
	{"create", 3, cmd_create}, {"put", 5, cmd_put},	      {"del", 4, cmd_del},
	{"lookup", 4, cmd_lookup}, {"domain", 4, cmd_domain}, {"stats", 3, cmd_stats},
	{"events", 3, cmd_events}, {"misses", 3, cmd_misses},
};

int main(int argc, char **argv)
{
	if (argc >= 2)
		for (size_t i = 0; i < sizeof(shmtool_cmds) / sizeof(shmtool_cmds[0]); i++)
			if (!strcmp(argv[1], shmtool_cmds[i].name)) {
				if (argc < shmtool_cmds[i].min_args)
					break;
				return shmtool_cmds[i].run(argc, argv);
			}
	fprintf(stderr,
		"usage: rg-shmtool create PATH [LCORES]\n"
		"       rg-shmtool put PATH ADDR valid|invalid [TTL_S]\n"
		"       rg-shmtool del PATH ADDR\n"
		"       rg-shmtool lookup PATH ADDR\n"
		"       rg-shmtool domain PATH DOMAIN [callout|list|both] [pass|defer] "
		"[accept-all] [case-sensitive]\n"
		"       rg-shmtool stats PATH [COUNTER]\n"
		"       rg-shmtool events PATH\n"
		"       rg-shmtool misses PATH\n");
	return 2;
}
