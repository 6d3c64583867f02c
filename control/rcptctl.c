/*
 * rcptctl.c — the command-line client of rcptgated's control socket.
 * Sends one request (ctlproto.h), waits for the answer, prints it as the
 * daemon sent it (--json) or formatted for people, and exits with a code
 * scripts can rely on (see usage() and docs/RCPTCTL.md).
 *
 * Single-threaded, short-lived; the verbs are one table (verbs[] below).
 * Answers are parsed with jansson.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctlproto.h"
#include "text.h"

#define RCPTCTL_DEFAULT_SOCKET "/run/rcptgate/rcptgated.sock"
#define RCPTCTL_SOCKET_ENV "RCPTCTL_SOCKET"
#define RCPTCTL_TIMEOUT_S 30		/* every verb but verify */
#define RCPTCTL_VERIFY_TIMEOUT_S 300	/* a callout may take minutes */

enum exit_code {
	EX_OK = 0,		/* done; lookup/verify: valid */
	EX_NEGATIVE = 1,	/* invalid, nothing cached, not found */
	EX_USAGE = 2,		/* bad command line */
	EX_CONNECT = 3,		/* daemon unreachable, connection lost, garbled answer */
	EX_REFUSED = 4,		/* daemon refused: uid, busy, version, malformed */
	EX_FAILED = 5,		/* daemon could not do it / feature unavailable */
	EX_UNDETERMINED = 6,	/* lookup/verify: temporary failure or unverifiable */
};

/* Options any verb may take, and the ones particular verbs take. */
enum opt_bit {
	O_TTL = 1u << 0,
	O_DOMAIN = 1u << 1,
	O_ALL = 1u << 2,
	O_COUNT = 1u << 3,
};

struct cmdline {
	const char *socket;
	bool json;
	int timeout_s;
	const char *ttl;
	const char *domain;
	bool all;
	long count;		/* top: refreshes, 0 = until q */
	unsigned opts_seen;
	const char *pos[4];
	unsigned npos;
};

typedef int (*build_fn)(const struct cmdline *cl, struct ctlproto_kv *kv, unsigned *n);
typedef int (*print_fn)(json_t *ans);

struct verb {
	const char *name;
	enum ctlproto_verb id;
	unsigned nargs;		/* positional arguments */
	unsigned opts;		/* enum opt_bit accepted */
	const char *args;	/* for the usage line */
	const char *help;
	build_fn build;
	print_fn print;
};

/* ---------------------------------------------------------------------- */
/* helpers for answers                                                     */

/* A string member, cleaned for the terminal (text.h): reply text and
 * transcripts come from remote SMTP servers.  Rotating buffers: a printf
 * may use several at once. */
static const char *js_clean(json_t *o, const char *k, unsigned flags)
{
	static char buf[8][TEXT_CLEAN_MAX(20000)];
	static unsigned next;
	json_t *v = json_object_get(o, k);
	char *b = buf[next++ % 8];

	if (!json_is_string(v))
		return "";
	text_clean(b, sizeof(buf[0]), json_string_value(v), json_string_length(v), flags);
	return b;
}

static const char *js(json_t *o, const char *k)
{
	return js_clean(o, k, 0);
}

static unsigned long long ju(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (unsigned long long)json_integer_value(v) : 0;
}

static bool jb(json_t *o, const char *k)
{
	return json_is_true(json_object_get(o, k));
}

/* "2026-11-28 04:30:00Z", or "never" for 0. */
static const char *when(unsigned long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0)
		return "never";
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
	return buf;
}

static int verdict_exit(const char *v)
{
	if (!strcmp(v, "valid") || !strcmp(v, "accept_all"))
		return EX_OK;
	if (!strcmp(v, "tempfail") || !strcmp(v, "unverifiable"))
		return EX_UNDETERMINED;
	return EX_NEGATIVE;	/* invalid, none, unmanaged */
}

/* ---------------------------------------------------------------------- */
/* request builders                                                        */

static int b_none(const struct cmdline *cl, struct ctlproto_kv *kv, unsigned *n)
{
	(void)cl;
	(void)kv;
	*n = 0;
	return 0;
}

static int b_addr(const struct cmdline *cl, struct ctlproto_kv *kv, unsigned *n)
{
	kv[0] = (struct ctlproto_kv){CTLK_ADDR, cl->pos[0]};
	*n = 1;
	return 0;
}

static int b_set(const struct cmdline *cl, struct ctlproto_kv *kv, unsigned *n)
{
	if (strcmp(cl->pos[1], "valid") && strcmp(cl->pos[1], "invalid")) {
		fprintf(stderr, "rcptctl: set: verdict must be valid or invalid, not '%s'\n",
			cl->pos[1]);
		return -1;
	}
	kv[0] = (struct ctlproto_kv){CTLK_ADDR, cl->pos[0]};
	kv[1] = (struct ctlproto_kv){CTLK_VERDICT, cl->pos[1]};
	*n = 2;
	if (cl->ttl)
		kv[(*n)++] = (struct ctlproto_kv){CTLK_TTL, cl->ttl};
	return 0;
}

static int b_flush(const struct cmdline *cl, struct ctlproto_kv *kv, unsigned *n)
{
	if (!!cl->domain == cl->all) {
		fprintf(stderr, "rcptctl: flush: give either --domain D or --all\n");
		return -1;
	}
	kv[0] = cl->all ? (struct ctlproto_kv){CTLK_ALL, "1"}
			: (struct ctlproto_kv){CTLK_DOMAIN, cl->domain};
	*n = 1;
	return 0;
}

static int b_prefix(const struct cmdline *cl, struct ctlproto_kv *kv, unsigned *n)
{
	kv[0] = (struct ctlproto_kv){CTLK_PREFIX, cl->pos[0]};
	*n = 1;
	if (cl->ttl)
		kv[(*n)++] = (struct ctlproto_kv){CTLK_TTL, cl->ttl};
	return 0;
}

/* ---------------------------------------------------------------------- */
/* printers for people                                                     */

static int p_status(json_t *a)
{
	char t1[32], t2[32];
	json_t *hb = json_object_get(a, "dp_heartbeat_age_ms");

	printf("rcptgated %s, pid %llu, up %llus (since %s)\n", js(a, "version"), ju(a, "pid"),
	       ju(a, "uptime_s"), when(ju(a, "started"), t1, sizeof(t1)));
	printf("config:        %s (loaded %s)\n", js(a, "config"),
	       when(ju(a, "config_loaded"), t2, sizeof(t2)));
	printf("shared memory: %s, %llu bytes\n", js(a, "shm_path"), ju(a, "shm_size"));
	printf("table:         %llu entries, generation %llu\n", ju(a, "table_entries"),
	       ju(a, "table_gen"));
	printf("store:         %s, %llu verdicts\n", js(a, "store_path"), ju(a, "store_entries"));
	printf("domains:       %llu\n", ju(a, "domains"));
	printf("lists:         %llu addresses", ju(a, "list_addresses"));
	if (ju(a, "lists_partial"))
		printf(", %llu NOT PUBLISHED WHOLE (their unlisted recipients pass)",
		       ju(a, "lists_partial"));
	printf("\n");
	if (json_is_integer(hb))
		printf("data plane:    %llu lcores online, heartbeat %lld ms ago\n",
		       ju(a, "dp_lcores_online"), (long long)json_integer_value(hb));
	else
		printf("data plane:    %llu lcores online, no heartbeat\n",
		       ju(a, "dp_lcores_online"));
	printf("callouts:      %llu pending, %llu in flight, %llu sessions open\n",
	       ju(a, "callouts_pending"), ju(a, "callouts_inflight"), ju(a, "sessions_open"));
	json_t *fl = json_object_get(a, "fleet");
	if (json_is_object(fl)) {
		char t3[32];
		bool on = json_is_true(json_object_get(fl, "connected"));
		printf("fleet:         node %s, Redis %s: %s", js(fl, "node"), js(fl, "redis"),
		       on ? "connected" : "DISCONNECTED");
		if (!on && ju(fl, "down_since"))
			printf(" since %s (going on alone)", when(ju(fl, "down_since"), t3, sizeof(t3)));
		printf("\n               stream lag %llu ms, last sync %s; %llu applied, %llu shared, "
		       "%llu waiting for Redis\n", ju(fl, "stream_lag_ms"),
		       ju(fl, "last_sync") ? when(ju(fl, "last_sync"), t1, sizeof(t1)) : "never",
		       ju(fl, "applied"), ju(fl, "published"), ju(fl, "outbox"));
		printf("               lock waits %llu, uncoordinated callouts %llu\n",
		       ju(fl, "lock_waits"), ju(fl, "uncoordinated"));
	}
	return EX_OK;
}

static int p_stats(json_t *a)
{
	json_t *groups = json_object_get(a, "stats"), *g, *v;
	const char *gname, *name;

	json_object_foreach(groups, gname, g) {
		json_object_foreach(g, name, v) {
			printf("%s.%s %lld\n", gname, name, (long long)json_integer_value(v));
		}
	}
	return EX_OK;
}

static void print_lookup(json_t *a)
{
	char t[32];

	printf("address:   %s\n", js(a, "addr"));
	if (jb(a, "managed"))
		printf("domain:    %s (managed, mode %s%s)\n", js(a, "domain"), js(a, "mode"),
		       jb(a, "accept_all") ? ", accepts all" : "");
	else
		printf("domain:    %s (not managed)\n", js(a, "domain"));
	printf("verdict:   %s", js(a, "verdict"));
	if (json_is_string(json_object_get(a, "source")))
		printf(" (%s%s%s)", js(a, "source"), jb(a, "pinned") ? ", pinned" : "",
		       jb(a, "stale") ? ", stale" : "");
	printf("\n");
	printf("where:     %s%s%s\n", jb(a, "in_table") ? "table " : "",
	       jb(a, "in_store") ? "store " : "",
	       !jb(a, "in_table") && !jb(a, "in_store") ? "nowhere" : "");
	if (ju(a, "updated"))
		printf("learned:   %s\n", when(ju(a, "updated"), t, sizeof(t)));
	if (ju(a, "refresh"))
		printf("refresh:   %s\n", when(ju(a, "refresh"), t, sizeof(t)));
	if (ju(a, "updated"))
		printf("expires:   %s\n", when(ju(a, "expiry"), t, sizeof(t)));
	if (ju(a, "code"))
		printf("reply:     %s\n", js(a, "reply"));
	if (jb(a, "pending"))
		printf("pending:   a callout is queued or running\n");
}

/* lookup: nothing cached for a domain that accepts every local part is a pass */
static int lookup_exit(json_t *a)
{
	if (jb(a, "accept_all") && !strcmp(js(a, "verdict"), "none"))
		return EX_OK;
	return verdict_exit(js(a, "verdict"));
}

static int p_lookup(json_t *a)
{
	print_lookup(a);
	return lookup_exit(a);
}

static int p_verify(json_t *a)
{
	const char *t = js_clean(a, "transcript", TEXT_KEEP_NL);
	size_t tl = strlen(t);

	fputs(t, stdout);
	if (tl && t[tl - 1] != '\n')
		putchar('\n');
	printf("verdict: %s", js(a, "verdict"));
	if (ju(a, "code"))
		printf(" (%s)", js(a, "reply"));
	printf("\ndestination: %s, %llu ms%s\n", js(a, "dest"), ju(a, "elapsed_ms"),
	       jb(a, "cached") ? ", cached" : "");
	return verdict_exit(js(a, "verdict"));
}

static int p_set(json_t *a)
{
	print_lookup(a);
	return EX_OK;
}

static int p_del(json_t *a)
{
	printf("deleted %s\n", js(a, "addr"));
	return EX_OK;
}

static int p_flush(json_t *a)
{
	const char *d = js(a, "domain");

	printf("flushed %llu verdicts%s%s\n", ju(a, "removed"), *d ? " of " : "", d);
	return EX_OK;
}

static int p_domains(json_t *a)
{
	json_t *list = json_object_get(a, "domains"), *d;
	size_t i;

	printf("%-32s %-8s %-5s %-10s %-12s %10s %-7s %7s %9s %9s %9s %9s  %s\n", "DOMAIN", "MODE",
	       "MISS", "ACCEPTALL", "HEALTH", "LISTED", "LIST", "PENDING", "CALLOUTS", "VALID",
	       "INVALID", "TEMPFAIL", "LAST ERROR");
	json_array_foreach(list, i, d) {
		json_t *c = json_object_get(d, "counters");
		bool listed = strcmp(js(d, "mode"), "callout") != 0;
		printf("%-32s %-8s %-5s %-10s %-12s %10llu %-7s %7llu %9llu %9llu %9llu %9llu  %s\n",
		       js(d, "name"), js(d, "mode"), js(d, "miss_policy"),
		       jb(d, "accept_all") ? "yes" : "no", js(d, "health"), ju(d, "list_entries"),
		       !listed ? "-" : jb(d, "list_partial") ? "PARTIAL" : "whole", ju(d, "pending"),
		       ju(c, "callouts"), ju(c, "valid"), ju(c, "invalid"), ju(c, "tempfail"),
		       js(d, "last_error"));
	}
	return EX_OK;
}

static int p_reload(json_t *a)
{
	(void)a;
	printf("configuration reloaded\n");
	return EX_OK;
}

static int p_block(json_t *a)
{
	if (ju(a, "ttl"))
		printf("blocked %s for %llus\n", js(a, "prefix"), ju(a, "ttl"));
	else
		printf("blocked %s until unblocked\n", js(a, "prefix"));
	return EX_OK;
}

static int p_unblock(json_t *a)
{
	printf("unblocked %s\n", js(a, "prefix"));
	return EX_OK;
}

static int p_blocks(json_t *a)
{
	json_t *list = json_object_get(a, "blocks"), *b;
	char t[32];
	size_t i;

	printf("%-44s %-21s %12s %8s %-6s\n", "PREFIX", "EXPIRES", "HITS", "OFFENCES", "MANUAL");
	json_array_foreach(list, i, b) {
		printf("%-44s %-21s %12llu %8llu %-6s\n", js(b, "prefix"),
		       when(ju(b, "expires"), t, sizeof(t)), ju(b, "hits"), ju(b, "offences"),
		       jb(b, "manual") ? "yes" : "no");
	}
	return EX_OK;
}

static int p_top_once(json_t *a)
{
	json_t *e;
	size_t i;

	printf("refused: %llu\n", ju(a, "refused"));
	json_array_foreach(json_object_get(a, "domains"), i, e)
		printf("domain %s %llu\n", js(e, "key"), ju(e, "refused"));
	json_array_foreach(json_object_get(a, "prefixes"), i, e)
		printf("prefix %s %llu\n", js(e, "key"), ju(e, "refused"));
	return EX_OK;
}

static const struct verb verbs[] = {
	{"status", CTLV_STATUS, 0, 0, "", "daemon, shared memory, store and data-plane state",
	 b_none, p_status},
	{"stats", CTLV_STATS, 0, 0, "", "every counter of rcptgated, the data plane and XDP",
	 b_none, p_stats},
	{"lookup", CTLV_LOOKUP, 1, 0, "ADDR", "what the table says about ADDR", b_addr,
	 p_lookup},
	{"verify", CTLV_VERIFY, 1, 0, "ADDR",
	 "callout for ADDR now; prints the SMTP transcript and the verdict", b_addr, p_verify},
	{"set", CTLV_SET, 2, O_TTL, "ADDR valid|invalid [--ttl T]",
	 "set a verdict by hand (no --ttl: kept until changed)", b_set, p_set},
	{"del", CTLV_DEL, 1, 0, "ADDR", "forget ADDR (table and store)", b_addr, p_del},
	{"flush", CTLV_FLUSH, 0, O_DOMAIN | O_ALL, "--domain D | --all",
	 "forget the cached verdicts of domain D, or all of them", b_flush, p_flush},
	{"domains", CTLV_DOMAINS, 0, 0, "",
	 "managed domains: mode, accept-all, destination health, counters", b_none, p_domains},
	{"reload", CTLV_RELOAD, 0, 0, "", "re-read the configuration (like SIGHUP)", b_none,
	 p_reload},
	{"block", CTLV_BLOCK, 1, O_TTL, "PREFIX [--ttl T]",
	 "drop traffic from PREFIX in XDP (no --ttl: until unblocked)", b_prefix, p_block},
	{"unblock", CTLV_UNBLOCK, 1, 0, "PREFIX", "remove PREFIX from the blocklist", b_prefix,
	 p_unblock},
	{"blocks", CTLV_BLOCKS, 0, 0, "", "list the blocklist", b_none, p_blocks},
	{"top", CTLV_TOP, 0, O_COUNT, "[--count N]",
	 "live view, each second: rates, most refused domains and prefixes, breakers (q quits)",
	 b_none, p_top_once},
};

#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rcptctl [--socket PATH] [--json] [--timeout S] VERB [ARGS]\n"
		"\n"
		"Talks to rcptgated over its control socket.\n"
		"\n"
		"verbs:\n");
	for (size_t i = 0; i < NVERBS; i++) {
		char head[64];
		snprintf(head, sizeof(head), "%s %s", verbs[i].name, verbs[i].args);
		fprintf(f, "  %-36s %s\n", head, verbs[i].help);
	}
	fprintf(f,
		"\n"
		"options (anywhere on the line):\n"
		"  --socket PATH   control socket (default $" RCPTCTL_SOCKET_ENV " or "
		RCPTCTL_DEFAULT_SOCKET ")\n"
		"  --json          print the daemon's JSON answer as it is\n"
		"  --timeout S     seconds to wait for the answer (default %d, verify %d)\n"
		"  --ttl T         lifetime: N seconds, or Ns Nm Nh Nd Nw (at most 10 years)\n"
		"  --domain D      flush: the domain\n"
		"  --all           flush: every domain\n"
		"  --count N       top: refresh N times, then exit (default: until q)\n"
		"  -h, --help      this text\n"
		"\n"
		"ADDR is local@domain or <local@domain>; PREFIX is an IPv4/IPv6 address\n"
		"with an optional /length (host bits must be zero).\n"
		"\n"
		"exit status:\n"
		"  0  success; lookup/verify: the address is valid (or its domain accepts all)\n"
		"  1  lookup/verify: invalid, or nothing known (lookup of an unmanaged domain too);\n"
		"     del/unblock: not found\n"
		"  2  usage error (unknown verb, missing or malformed argument)\n"
		"  3  cannot reach rcptgated (no socket, connection refused or lost, timeout,\n"
		"     an answer that is not of the protocol)\n"
		"  4  rcptgated refused the request (uid not allowed, too many connections,\n"
		"     protocol version mismatch, malformed request, allowlisted prefix)\n"
		"  5  rcptgated could not do it (internal failure, reload error, feature not\n"
		"     available such as XDP)\n"
		"  6  lookup/verify: undetermined (temporary failure, or the destination\n"
		"     cannot be verified)\n",
		RCPTCTL_TIMEOUT_S, RCPTCTL_VERIFY_TIMEOUT_S);
}

static int parse_cmdline(int argc, char **argv, struct cmdline *cl, const struct verb **vp)
{
	const struct verb *v = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **valp = NULL;
		unsigned bit = 0;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(EX_OK);
		} else if (!strcmp(a, "--json")) {
			cl->json = true;
			continue;
		} else if (!strcmp(a, "--all")) {
			cl->all = true;
			cl->opts_seen |= O_ALL;
			continue;
		} else if (!strcmp(a, "--socket")) {
			valp = &cl->socket;
		} else if (!strcmp(a, "--ttl")) {
			valp = &cl->ttl;
			bit = O_TTL;
		} else if (!strcmp(a, "--domain")) {
			valp = &cl->domain;
			bit = O_DOMAIN;
		} else if (!strcmp(a, "--count")) {
			char *end;
			if (i + 1 >= argc) {
				fprintf(stderr, "rcptctl: --count needs a value\n");
				return -1;
			}
			cl->count = strtol(argv[++i], &end, 10);
			if (*end || cl->count <= 0 || cl->count > 100000000) {
				fprintf(stderr, "rcptctl: --count: a positive number\n");
				return -1;
			}
			cl->opts_seen |= O_COUNT;
			continue;
		} else if (!strcmp(a, "--timeout")) {
			char *end;
			if (i + 1 >= argc) {
				fprintf(stderr, "rcptctl: --timeout needs a value\n");
				return -1;
			}
			cl->timeout_s = (int)strtol(argv[++i], &end, 10);
			if (*end || cl->timeout_s <= 0 || cl->timeout_s > 86400) {
				fprintf(stderr, "rcptctl: --timeout: 1..86400 seconds\n");
				return -1;
			}
			continue;
		} else if (a[0] == '-' && a[1] == '-' && a[2]) {
			fprintf(stderr, "rcptctl: unknown option %s\n", a);
			return -1;
		}
		if (valp) {
			if (i + 1 >= argc) {
				fprintf(stderr, "rcptctl: %s needs a value\n", a);
				return -1;
			}
			*valp = argv[++i];
			cl->opts_seen |= bit;
			continue;
		}
		if (!v) {
			for (size_t k = 0; k < NVERBS; k++)
				if (!strcmp(verbs[k].name, a))
					v = &verbs[k];
			if (!v) {
				fprintf(stderr, "rcptctl: unknown verb '%s' (rcptctl --help lists them)\n",
					a);
				return -1;
			}
			continue;
		}
		if (cl->npos == sizeof(cl->pos) / sizeof(cl->pos[0])) {
			fprintf(stderr, "rcptctl: too many arguments\n");
			return -1;
		}
		cl->pos[cl->npos++] = a;
	}
	if (!v) {
		usage(stderr);
		return -1;
	}
	if (cl->npos != v->nargs) {
		fprintf(stderr, "usage: rcptctl %s %s\n", v->name, v->args);
		return -1;
	}
	if (cl->opts_seen & ~v->opts) {
		fprintf(stderr, "rcptctl: %s does not take %s\n", v->name,
			(cl->opts_seen & ~v->opts & O_TTL)      ? "--ttl"
			: (cl->opts_seen & ~v->opts & O_DOMAIN) ? "--domain"
			: (cl->opts_seen & ~v->opts & O_COUNT)  ? "--count"
								: "--all");
		return -1;
	}
	*vp = v;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* talking to the daemon                                                   */

static int wait_fd(int fd, short ev, int64_t deadline_ms)
{
	struct timespec ts;
	struct pollfd p = {.fd = fd, .events = ev};
	int64_t now;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (now >= deadline_ms)
		return -ETIMEDOUT;
	do
		rc = poll(&p, 1, (int)(deadline_ms - now));
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return -ETIMEDOUT;
	return rc < 0 ? -errno : 0;
}

static int64_t deadline_after(int s)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + (int64_t)s * 1000;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "rcptctl: socket path too long: %s\n", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "rcptctl: cannot connect to %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Sends the request and reads one answer frame into *buf (malloc'd).
 * Returns the frame length, or -1 after saying why. */
static long exchange(int fd, const uint8_t *req, size_t reqlen, int timeout_s, uint8_t **buf,
		     struct ctlproto_hdr *hdr)
{
	int64_t deadline = deadline_after(timeout_s);
	size_t off = 0, have = 0, cap = 4096;
	uint8_t *b;
	long n;

	while (off < reqlen) {
		ssize_t w = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);
		if (w < 0) {
			/* a daemon that refused us at once has closed already:
			 * its answer may still be waiting to be read */
			if (errno == EPIPE || errno == ECONNRESET)
				break;
			fprintf(stderr, "rcptctl: send: %s\n", strerror(errno));
			return -1;
		}
		off += (size_t)w;
	}
	b = malloc(cap);
	if (!b)
		return -1;
	for (;;) {
		ssize_t r;
		int rc;

		n = ctlproto_frame_check(b, have, CTLPROTO_KIND_ANS, CTLPROTO_RESP_MAX, hdr);
		if (n > 0)
			break;
		if (n < 0) {
			fprintf(stderr, "rcptctl: bad answer from rcptgated: %s\n",
				ctlproto_strerror((int)n));
			free(b);
			return -1;
		}
		if (have == cap) {
			uint8_t *nb;
			cap = cap * 2 > CTLPROTO_HDR_LEN + CTLPROTO_RESP_MAX
				      ? CTLPROTO_HDR_LEN + CTLPROTO_RESP_MAX
				      : cap * 2;
			nb = realloc(b, cap);
			if (!nb) {
				free(b);
				return -1;
			}
			b = nb;
		}
		rc = wait_fd(fd, POLLIN, deadline);
		if (rc < 0) {
			fprintf(stderr, "rcptctl: no answer from rcptgated: %s\n", strerror(-rc));
			free(b);
			return -1;
		}
		r = read(fd, b + have, cap - have);
		if (r <= 0) {
			fprintf(stderr, "rcptctl: rcptgated closed the connection%s%s\n",
				r < 0 ? ": " : " without an answer", r < 0 ? strerror(errno) : "");
			free(b);
			return -1;
		}
		have += (size_t)r;
	}
	*buf = b;
	return n;
}

static int status_exit(unsigned st)
{
	switch (st) {
	case CTLS_OK: return EX_OK;
	case CTLS_NOTFOUND: return EX_NEGATIVE;
	case CTLS_BADREQ:
	case CTLS_VERSION:
	case CTLS_DENIED:
	case CTLS_BUSY:
	case CTLS_TOOBIG: return EX_REFUSED;
	default: return EX_FAILED;
	}
}

/* ---------------------------------------------------------------------- */
/* top: a live view                                                        */

/* One request without arguments; the answer's JSON object, or NULL after
 * saying why. */
static json_t *query(const struct cmdline *cl, enum ctlproto_verb verb)
{
	uint8_t req[CTLPROTO_HDR_LEN + CTLPROTO_REQ_MAX], *ans = NULL;
	struct ctlproto_hdr hdr;
	json_error_t jerr;
	json_t *j = NULL;
	long len = ctlproto_req_encode(req, sizeof(req), verb, NULL, 0, NULL);
	int fd;

	if (len < 0)
		return NULL;
	fd = connect_to(cl->socket);
	if (fd < 0)
		return NULL;
	len = exchange(fd, req, (size_t)len, cl->timeout_s, &ans, &hdr);
	close(fd);
	if (len < 0)
		return NULL;
	if (hdr.code != CTLS_OK ||
	    ctlproto_ans_check(ans + CTLPROTO_HDR_LEN, hdr.len) < 0 ||
	    !(j = json_loadb((const char *)ans + CTLPROTO_HDR_LEN, hdr.len, 0, &jerr)) ||
	    !json_is_object(j)) {
		fprintf(stderr, "rcptctl: top: %s answer refused or not JSON (%s)\n",
			ctlproto_verb_name(verb), ctlproto_status_name(hdr.code));
		if (j)
			json_decref(j);
		j = NULL;
	}
	free(ans);
	return j;
}

/* The rates top shows: rcptctl stats counters (group.name), per second. */
static const struct {
	const char *label, *group, *name, *name2;
} top_rates[] = {
	{"RCPTs seen", "dataplane", "rcpt", NULL},
	{"answered", "dataplane", "rcpt_rejected", "rcpt_deferred"},
	{"refused", "dataplane", "rcpt_rejected", NULL},
	{"forwarded", "dataplane", "rcpt_forwarded", NULL},
	{"misses", "dataplane", "rcpt_miss", NULL},
	{"callouts", "daemon", "callout_submitted", NULL},
	{"harvesters closed", "dataplane", "harvest_closed", NULL},
	{"blocked (XDP)", "xdp", "blocked", NULL},
};
#define NRATES (sizeof(top_rates) / sizeof(top_rates[0]))

static unsigned long long stat_of(json_t *stats, const char *g, const char *n)
{
	json_t *grp = json_object_get(json_object_get(stats, "stats"), g);
	json_t *v = json_object_get(grp, n);

	return json_is_integer(v) ? (unsigned long long)json_integer_value(v) : 0;
}

static volatile sig_atomic_t top_stop;
static struct termios top_tio;
static bool top_raw;

static void top_signal(int sig)
{
	(void)sig;
	top_stop = 1;
}

static void top_restore(void)
{
	if (top_raw)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &top_tio);
	top_raw = false;
}

/* Sleeps until deadline_ms; true when q was typed (or stdin ended on a tty). */
static bool top_wait(int64_t deadline_ms)
{
	for (;;) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		if (now >= deadline_ms || top_stop)
			return false;
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		int rc = poll(&p, top_raw ? 1 : 0, (int)(deadline_ms - now));
		if (rc > 0) {
			char c;
			ssize_t r = read(STDIN_FILENO, &c, 1);
			if (r == 1 && (c == 'q' || c == 'Q'))
				return true;
			if (r == 0)
				return true;
		}
	}
}

/* The fleet's state, when the daemon reports one in status ("fleet": an
 * object of scalars): one line. */
static void top_fleet(FILE *f, json_t *status)
{
	json_t *fl = json_object_get(status, "fleet"), *v;
	const char *k;

	if (!json_is_object(fl))
		return;
	fprintf(f, "fleet:");
	json_object_foreach(fl, k, v) {
		if (json_is_string(v))
			fprintf(f, " %s=%s", k, js(fl, k));
		else if (json_is_integer(v))
			fprintf(f, " %s=%lld", k, (long long)json_integer_value(v));
		else if (json_is_boolean(v))
			fprintf(f, " %s=%s", k, json_is_true(v) ? "yes" : "no");
	}
	fprintf(f, "\n");
}

static void top_screen(bool first, const double *rate, json_t *top, json_t *doms,
		       json_t *status)
{
	json_t *e;
	size_t i;
	char t[32];
	time_t now = time(NULL);

	strftime(t, sizeof(t), "%H:%M:%S", localtime(&now));
	printf("\033[H\033[2J");
	printf("rcptctl top — rcptgated %s, up %llus, %s   (q quits)\n\n", js(status, "version"),
	       ju(status, "uptime_s"), t);
	printf("%-20s %12s\n", "RATE", "PER SECOND");
	for (size_t k = 0; k < NRATES; k++)
		if (first)
			printf("%-20s %12s\n", top_rates[k].label, "-");
		else
			printf("%-20s %12.1f\n", top_rates[k].label, rate[k]);
	printf("\n%-44s %12s\n", "MOST REFUSED DOMAINS", "REFUSED");
	json_array_foreach(json_object_get(top, "domains"), i, e)
		printf("%-44s %12llu\n", js(e, "key"), ju(e, "refused"));
	printf("\n%-44s %12s\n", "MOST REFUSED CLIENT PREFIXES", "REFUSED");
	json_array_foreach(json_object_get(top, "prefixes"), i, e)
		printf("%-44s %12llu\n", js(e, "key"), ju(e, "refused"));
	printf("\n%-40s %-12s %-8s %8s %9s\n", "DOMAIN", "HEALTH", "BREAKER", "PENDING", "FAILURES");
	json_array_foreach(json_object_get(doms, "domains"), i, e) {
		unsigned long long until = ju(e, "breaker_until");
		printf("%-40s %-12s %-8s %8llu %9llu\n", js(e, "name"), js(e, "health"),
		       until && (time_t)until > now ? "OPEN" : "closed", ju(e, "pending"),
		       ju(e, "consecutive_failures"));
	}
	top_fleet(stdout, status);
	fflush(stdout);
}

static void top_line(bool first, const double *rate, json_t *top, json_t *doms, json_t *status)
{
	char t[32];
	time_t now = time(NULL);
	struct tm tm;
	json_t *e;
	size_t i;
	unsigned open = 0;

	gmtime_r(&now, &tm);
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%s", t);
	for (size_t k = 0; k < NRATES; k++) {
		char name[32];
		size_t n = 0;
		for (const char *c = top_rates[k].label; *c && n + 1 < sizeof(name); c++)
			if (*c != '(' && *c != ')')
				name[n++] = *c == ' ' ? '_' : *c;
		name[n] = 0;
		if (first)
			printf(" %s=-", name);
		else
			printf(" %s=%.1f/s", name, rate[k]);
	}
	json_t *d = json_array_get(json_object_get(top, "domains"), 0);
	json_t *p = json_array_get(json_object_get(top, "prefixes"), 0);
	printf(" top_domain=%s(%llu) top_prefix=%s(%llu)", d ? js(d, "key") : "-",
	       d ? ju(d, "refused") : 0, p ? js(p, "key") : "-", p ? ju(p, "refused") : 0);
	json_array_foreach(json_object_get(doms, "domains"), i, e) {
		unsigned long long until = ju(e, "breaker_until");
		if (until && (time_t)until > now)
			open++;
	}
	printf(" breakers_open=%u\n", open);
	top_fleet(stdout, status);
	fflush(stdout);
}

static int run_top(const struct cmdline *cl)
{
	bool tty = isatty(STDOUT_FILENO);
	unsigned long long prev[NRATES] = {0};
	double rate[NRATES];
	struct timespec t0, t1;
	int rc = EX_OK;

	if (tty && isatty(STDIN_FILENO) && !tcgetattr(STDIN_FILENO, &top_tio)) {
		struct termios raw = top_tio;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		if (!tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw))
			top_raw = true;
	}
	struct sigaction sa = {.sa_handler = top_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int64_t next = (int64_t)t0.tv_sec * 1000 + t0.tv_nsec / 1000000;
	for (long it = 0; !top_stop && (!cl->count || it < cl->count); it++) {
		json_t *stats = query(cl, CTLV_STATS), *top = NULL, *doms = NULL, *st = NULL;
		if (stats)
			top = query(cl, CTLV_TOP);
		if (top)
			doms = query(cl, CTLV_DOMAINS);
		if (doms)
			st = query(cl, CTLV_STATUS);
		if (!st) {
			rc = EX_CONNECT;
			json_decref(stats);
			json_decref(top);
			json_decref(doms);
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		for (size_t k = 0; k < NRATES; k++) {
			unsigned long long v = stat_of(stats, top_rates[k].group, top_rates[k].name);
			if (top_rates[k].name2)
				v += stat_of(stats, top_rates[k].group, top_rates[k].name2);
			rate[k] = it && dt > 0 ? (double)(v - prev[k]) / dt : 0;
			prev[k] = v;
		}
		t0 = t1;
		if (tty)
			top_screen(it == 0, rate, top, doms, st);
		else
			top_line(it == 0, rate, top, doms, st);
		json_decref(stats);
		json_decref(top);
		json_decref(doms);
		json_decref(st);
		if (ferror(stdout)) {
			rc = EX_FAILED;
			break;
		}
		next += 1000;
		if (cl->count && it + 1 >= cl->count)
			break;
		if (top_wait(next))
			break;
	}
	top_restore();
	return rc;
}

int main(int argc, char **argv)
{
	struct cmdline cl = {0};
	const struct verb *v;
	struct ctlproto_kv kv[CTLPROTO_ARGS_MAX];
	uint8_t req[CTLPROTO_HDR_LEN + CTLPROTO_REQ_MAX], *ans = NULL;
	struct ctlproto_hdr hdr;
	const char *payload, *where = NULL;
	json_error_t jerr;
	json_t *j;
	unsigned n = 0;
	long len;
	int fd, rc;

	if (parse_cmdline(argc, argv, &cl, &v) < 0)
		return EX_USAGE;
	if (!cl.socket)
		cl.socket = getenv(RCPTCTL_SOCKET_ENV);
	if (!cl.socket || !*cl.socket)
		cl.socket = RCPTCTL_DEFAULT_SOCKET;
	if (!cl.timeout_s)
		cl.timeout_s = v->id == CTLV_VERIFY ? RCPTCTL_VERIFY_TIMEOUT_S : RCPTCTL_TIMEOUT_S;
	if (v->build(&cl, kv, &n) < 0)
		return EX_USAGE;
	if (v->id == CTLV_TOP && !cl.json)
		return run_top(&cl);
	len = ctlproto_req_encode(req, sizeof(req), v->id, kv, n, &where);
	if (len < 0) {
		if (where)
			fprintf(stderr, "rcptctl: %s: %s: %s\n", v->name, ctlproto_strerror((int)len),
				where);
		else
			fprintf(stderr, "rcptctl: %s: %s\n", v->name, ctlproto_strerror((int)len));
		return EX_USAGE;
	}
	fd = connect_to(cl.socket);
	if (fd < 0)
		return EX_CONNECT;
	len = exchange(fd, req, (size_t)len, cl.timeout_s, &ans, &hdr);
	close(fd);
	if (len < 0)
		return EX_CONNECT;
	payload = (const char *)ans + CTLPROTO_HDR_LEN;
	if (ctlproto_ans_check(ans + CTLPROTO_HDR_LEN, hdr.len) < 0 ||
	    !(j = json_loadb(payload, hdr.len, 0, &jerr)) || !json_is_object(j)) {
		fprintf(stderr, "rcptctl: the answer is not a JSON object\n");
		free(ans);
		return EX_CONNECT;
	}
	if (cl.json) {
		fwrite(payload, 1, hdr.len, stdout);
		if (hdr.len == 0 || payload[hdr.len - 1] != '\n')
			putchar('\n');
		rc = hdr.code == CTLS_OK ? EX_OK : status_exit(hdr.code);
		/* the verdict verbs exit as they would without --json */
		if (hdr.code == CTLS_OK && v->id == CTLV_LOOKUP)
			rc = lookup_exit(j);
		else if (hdr.code == CTLS_OK && v->id == CTLV_VERIFY)
			rc = verdict_exit(js(j, "verdict"));
	} else if (hdr.code != CTLS_OK) {
		fprintf(stderr, "rcptctl: %s: %s: %s\n", v->name, ctlproto_status_name(hdr.code),
			js(j, "error"));
		rc = status_exit(hdr.code);
	} else {
		rc = v->print(j);
	}
	json_decref(j);
	free(ans);
	if (fflush(stdout) != 0)
		return EX_FAILED;
	return rc;
}
