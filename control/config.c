/*
 * config.c — rcptgated's INI configuration, parsed with inih.
 *
 * Every key lives in one dispatch table (config_keys[]): its name, where it
 * may appear ([global], [domain NAME] or both), its type, its default and its
 * range.  The inih handler looks the key up, converts and range-checks the
 * value, and on any error records "file:line: message" (inih returns the line
 * of the first handler failure).  Keys that tune callouts are "domain keys":
 * in [global] they set the default each domain inherits, in a domain section
 * they override it for that domain.  After parsing, cross-key rules are
 * checked (refresh < ttl, a list file for list mode, ...).
 *
 * Thread: main thread, at start-up and on reload.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <idn2.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "addr.h"
#include "ctlproto.h"
#include "dtable.h"
#include "text.h"

enum key_scope { SC_GLOBAL = 1, SC_DOMAIN = 2, SC_BOTH = 3, SC_FLEET = 4 };

enum key_type {
	KT_STR,		/* string into char[size] */
	KT_U32,		/* unsigned with range */
	KT_BOOL,	/* yes/no/true/false/on/off/1/0 */
	KT_SECS,	/* duration: N[s|m|h|d] -> seconds */
	KT_MS,		/* duration: N[ms|s|m] -> milliseconds */
	KT_MODE,	/* callout | list | both */
	KT_MISS,	/* pass | defer */
	KT_REJCODE,	/* 550 | 450 */
	KT_ACTION,	/* reject | warn */
	KT_TLS,		/* may | off | required */
	KT_FACILITY,	/* mail, daemon, local0..7 */
	KT_DESTS,	/* host[:port][, host[:port]...] | mx */
	KT_IDS,		/* uid | user | @gid | @group [, ...] */
	KT_OCTAL,	/* file mode, octal */
	KT_GROUP,	/* group name or number; "" = -1 */
	KT_CIDRS,	/* prefix[, prefix...] */
	KT_MAILBOX,	/* local@domain or <local@domain>, RFC 5321; "" = <> */
	KT_HOSTNAME,	/* a host name for EHLO; "" = the system's */
	KT_SOURCE,	/* up to one IPv4 and one IPv6 address */
	KT_CODES,	/* x.y.z[, x.y.z...] */
	KT_PORT,	/* 1..65535 */
};

struct config_key {
	const char *name;
	enum key_scope scope;
	enum key_type type;
	size_t off;		/* into struct config (SC_GLOBAL) or struct config_dom */
	size_t size;		/* for KT_STR */
	const char *def;	/* default, parsed like a value from the file */
	uint64_t min, max;	/* range for numbers (after unit conversion) */
	const char *help;
};

#define G(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define D(f) offsetof(struct config_dom, f), sizeof(((struct config_dom *)0)->f)
#define DAY (86400ull)

static const struct config_key config_keys[] = {
	/* shared memory */
	{"shm_path", SC_GLOBAL, KT_STR, G(shm_path), "/dev/shm/rcptgate", 0, 0,
	 "shared-memory file (hugetlbfs or tmpfs)"},
	{"shm_max_lcores", SC_GLOBAL, KT_U32, G(shm_max_lcores), "16", 1, SHM_MAX_LCORES,
	 "data-plane lcore regions (rings, stats)"},
	{"shm_domains", SC_GLOBAL, KT_U32, G(shm_dtable_slots), "4096", 16, 1u << 20,
	 "domain table slots (power of two)"},
	{"table_init_log2", SC_GLOBAL, KT_U32, G(shm_table_init_log2), "16", 8, 26,
	 "recipient table initial buckets (log2; 3 entries each)"},
	{"table_max_log2", SC_GLOBAL, KT_U32, G(shm_table_max_log2), "23", 10, 26,
	 "recipient table maximum buckets (log2)"},
	{"miss_ring_slots", SC_GLOBAL, KT_U32, G(shm_miss_slots), "4096", 64, 1u << 20,
	 "miss ring records per lcore (power of two)"},
	{"event_ring_slots", SC_GLOBAL, KT_U32, G(shm_event_slots), "4096", 64, 1u << 20,
	 "event ring records per lcore (power of two)"},
	/* store */
	{"store_path", SC_GLOBAL, KT_STR, G(store_path), "/var/lib/rcptgate", 0, 0,
	 "LMDB environment directory of the verdict store"},
	{"store_map_mb", SC_GLOBAL, KT_U32, G(store_map_mb), "4096", 16, 1u << 20,
	 "LMDB map size in MiB (address space, not memory)"},
	/* control socket */
	{"control_socket", SC_GLOBAL, KT_STR, G(control_socket), "/run/rcptgate/rcptgated.sock",
	 0, 0, "rcptctl's Unix socket"},
	{"control_admins", SC_GLOBAL, KT_IDS, G(control_admins), "0", 0, 0,
	 "uids/@groups allowed every control verb (root always is)"},
	{"control_uids", SC_GLOBAL, KT_IDS, G(control_admins), "0", 0, 0,
	 "older name of control_admins"},
	{"control_readers", SC_GLOBAL, KT_IDS, G(control_readers), "", 0, 0,
	 "uids/@groups allowed the read-only verbs (status, stats, lookup, domains, blocks)"},
	{"control_max_clients", SC_GLOBAL, KT_U32, G(control_max_clients), "16", 1, 1024,
	 "concurrent control connections"},
	/* policy service */
	{"policy_listen", SC_GLOBAL, KT_STR, G(policy_listen), "", 0, 0,
	 "policy service: host:port or a Unix socket path; empty = off"},
	{"policy_timeout", SC_GLOBAL, KT_MS, G(policy_timeout_ms), "5s", 0, 60000,
	 "how long the policy service waits for a callout"},
	{"policy_max_clients", SC_GLOBAL, KT_U32, G(policy_max_clients), "256", 1, 4096,
	 "concurrent policy connections"},
	{"policy_socket_mode", SC_GLOBAL, KT_OCTAL, G(policy_socket_mode), "0660", 0, 0777,
	 "file mode of a Unix policy socket"},
	{"policy_socket_group", SC_GLOBAL, KT_GROUP, G(policy_socket_gid), "", 0, 0,
	 "group of a Unix policy socket (e.g. postfix); empty = the daemon's"},
	{"policy_allow", SC_GLOBAL, KT_CIDRS, G(policy_allow), "127.0.0.0/8, ::1/128", 0, 0,
	 "client prefixes allowed on a TCP policy listener"},
	/* metrics (metrics.c) */
	{"metrics_listen", SC_GLOBAL, KT_STR, G(metrics_listen), "", 0, 0,
	 "Prometheus /metrics on this address:port (IPv4, or [IPv6]:port); empty = off"},
	/* xdp */
	{"xdp_pin_dir", SC_GLOBAL, KT_STR, G(xdp_pin_dir), "/sys/fs/bpf/rcptgate", 0, 0,
	 "bpffs directory of the XDP program's pinned maps"},
	{"block_ttl", SC_GLOBAL, KT_SECS, G(block_ttl), "1h", 1, 30 * DAY,
	 "how long a harvesting source is blocked at first"},
	{"block_ttl_max", SC_GLOBAL, KT_SECS, G(block_ttl_max), "1d", 1, 365 * DAY,
	 "ceiling of the doubling block time for repeat offenders"},
	{"block_allow", SC_GLOBAL, KT_STR, G(block_allow), "", 0, 0,
	 "file of prefixes never blocked, one per line"},
	/* logging */
	{"syslog_ident", SC_GLOBAL, KT_STR, G(syslog_ident), "rcptgated", 0, 0,
	 "syslog ident"},
	{"syslog_facility", SC_GLOBAL, KT_FACILITY, G(syslog_facility), "mail", 0, 0,
	 "syslog facility"},
	{"log_stderr", SC_GLOBAL, KT_BOOL, G(log_stderr), "no", 0, 0,
	 "also log to stderr"},
	{"log_rate", SC_GLOBAL, KT_U32, G(log_rate), "200", 1, 1000000,
	 "log lines per second per kind before summarising"},
	{"log_callouts", SC_GLOBAL, KT_BOOL, G(log_callouts), "yes", 0, 0,
	 "log one line per callout result"},
	{"list_retry", SC_GLOBAL, KT_SECS, G(list_retry_s), "60s", 1, DAY,
	 "a closed list not published whole is published again this often"},
	/* housekeeping */
	{"queue_max", SC_GLOBAL, KT_U32, G(queue_max), "200000", 16, 100000000,
	 "addresses waiting for a callout, all domains"},
	{"dns_timeout", SC_GLOBAL, KT_MS, G(dns_timeout_ms), "5s", 100, 60000,
	 "MX lookup timeout"},
	{"dns_server", SC_GLOBAL, KT_STR, G(dns_server), "", 0, 0,
	 "nameserver for MX queries (IPv4[:port]); empty = /etc/resolv.conf"},
	{"mx_min_ttl", SC_GLOBAL, KT_SECS, G(mx_min_ttl), "5m", 0, DAY,
	 "an MX answer is kept at least this long"},

	/* domain keys ([global] = default for every domain) */
	{"destination", SC_BOTH, KT_DESTS, D(dest), "mx", 0, 0,
	 "host[:port] list to probe, or mx"},
	{"mx_port", SC_BOTH, KT_PORT, D(mx_port), "25", 1, 65535,
	 "port for hosts found by MX lookup"},
	{"mode", SC_BOTH, KT_MODE, D(mode), "callout", 0, 0, "callout | list | both"},
	{"list", SC_BOTH, KT_STR, D(list), "", 0, 0,
	 "file of valid recipients: one address per line, or Postfix map lines"},
	{"list_command", SC_DOMAIN, KT_STR, D(list_command), "", 0, 0,
	 "command (/bin/sh -c) whose output is the list, instead of a file"},
	{"miss_policy", SC_BOTH, KT_MISS, D(miss_policy), "pass", 0, 0,
	 "unknown recipient while verifying: pass | defer"},
	{"reject_code", SC_BOTH, KT_REJCODE, D(reject_code), "550", 0, 0,
	 "reply to an invalid recipient: 550 (5.1.1) or 450 (4.1.1, the sender retries)"},
	{"action", SC_BOTH, KT_ACTION, D(action), "reject", 0, 0,
	 "reject | warn: forward everything, log what would have been refused"},
	{"case_sensitive", SC_BOTH, KT_BOOL, D(case_sensitive), "no", 0, 0,
	 "local parts compared as written"},
	{"mail_from", SC_BOTH, KT_MAILBOX, D(mail_from), "", 0, 0,
	 "probe sender (e.g. double-bounce@this-host); empty = the null path <>"},
	{"tls", SC_BOTH, KT_TLS, D(tls), "may", 0, 0,
	 "STARTTLS on callouts: may (when offered), off, required"},
	{"mail_from_rotate", SC_BOTH, KT_SECS, D(mail_from_rotate), "0", 0, 365 * DAY,
	 "change the probe sender's local part this often (local-N@domain); 0 = never"},
	{"source_address", SC_BOTH, KT_SOURCE, D(source4), "", 0, 0,
	 "callouts leave from this IPv4 and/or IPv6 address; empty = the kernel's choice"},
	{"helo_name", SC_BOTH, KT_HOSTNAME, D(helo_name), "", 0, 0,
	 "EHLO name; empty = the host name"},
	{"harvest_threshold", SC_BOTH, KT_U32, D(harvest_threshold), "0", 0, 1000000,
	 "invalid RCPTs per window per source; 0 = the data plane's global value"},
	{"batch", SC_BOTH, KT_U32, D(batch), "100", 1, 1000,
	 "RCPTs per transaction"},
	{"session_max_rcpts", SC_BOTH, KT_U32, D(session_max_rcpts), "1000", 1, 100000,
	 "RCPTs per connection before QUIT"},
	{"connect_timeout", SC_BOTH, KT_MS, D(connect_timeout_ms), "5s", 100, 300000,
	 "TCP connect timeout"},
	{"greeting_timeout", SC_BOTH, KT_MS, D(greeting_timeout_ms), "20s", 100, 300000,
	 "wait for the 220 greeting"},
	{"command_timeout", SC_BOTH, KT_MS, D(command_timeout_ms), "15s", 100, 300000,
	 "wait for each reply"},
	{"session_timeout", SC_BOTH, KT_MS, D(session_timeout_ms), "120s", 1000, 3600000,
	 "whole session"},
	{"dest_max_conns", SC_BOTH, KT_U32, D(dest_max_conns), "4", 1, 1024,
	 "concurrent sessions per domain"},
	{"dest_conn_rate", SC_BOTH, KT_U32, D(dest_conn_rate), "10", 1, 100000,
	 "new sessions per second per domain"},
	{"dest_rcpt_rate", SC_BOTH, KT_U32, D(dest_rcpt_rate), "2000", 1, 10000000,
	 "RCPT probes per second per domain"},
	{"domain_queue_max", SC_BOTH, KT_U32, D(queue_max), "20000", 1, 100000000,
	 "addresses waiting per domain"},
	{"ttl_valid", SC_BOTH, KT_SECS, D(ttl_valid), "7d", 2, 365 * DAY,
	 "a valid verdict is served this long"},
	{"refresh_valid", SC_BOTH, KT_SECS, D(refresh_valid), "1d", 1, 365 * DAY,
	 "a valid verdict is re-checked after this"},
	{"ttl_invalid", SC_BOTH, KT_SECS, D(ttl_invalid), "1h", 2, 365 * DAY,
	 "an invalid verdict is served this long"},
	{"refresh_invalid", SC_BOTH, KT_SECS, D(refresh_invalid), "10m", 1, 365 * DAY,
	 "an invalid verdict is re-checked after this"},
	{"ttl_tempfail", SC_BOTH, KT_SECS, D(ttl_tempfail), "60s", 1, DAY,
	 "no new probe of an address that failed temporarily before this"},
	{"ttl_unverifiable", SC_BOTH, KT_SECS, D(ttl_unverifiable), "10m", 10, 30 * DAY,
	 "a destination refusing callouts fails open this long"},
	{"accept_all_probe", SC_BOTH, KT_BOOL, D(accept_all_probe), "yes", 0, 0,
	 "probe a random local part to detect accept-all"},
	{"accept_all_interval", SC_BOTH, KT_SECS, D(accept_all_interval), "6h", 1, 30 * DAY,
	 "re-probe for accept-all after this"},
	{"breaker_failures", SC_BOTH, KT_U32, D(breaker_failures), "5", 1, 1000,
	 "consecutive failed sessions that open the circuit breaker"},
	{"breaker_open", SC_BOTH, KT_SECS, D(breaker_open_s), "60s", 1, DAY,
	 "breaker stays open (failing open) this long before a trial session"},
	{"invalid_codes", SC_BOTH, KT_CODES, D(invalid_codes), "", 0, 0,
	 "more enhanced codes meaning no such user (e.g. 5.4.1 for M365)"},

	/* [fleet]: several boxes share verdicts through Redis (docs/fleet.md) */
	{"redis", SC_FLEET, KT_STR, G(fleet_redis), "", 0, 0,
	 "Redis server: host:port, [IPv6]:port or a Unix socket path; empty = no fleet"},
	{"redis_user", SC_FLEET, KT_STR, G(fleet_user), "", 0, 0,
	 "Redis ACL user; empty = the default user"},
	{"redis_password_file", SC_FLEET, KT_STR, G(fleet_password_file), "", 0, 0,
	 "file holding the Redis password (first line); empty = no AUTH"},
	{"key_prefix", SC_FLEET, KT_STR, G(fleet_prefix), "rg:", 0, 0,
	 "prefix of every Redis key the fleet uses"},
	{"node_name", SC_FLEET, KT_STR, G(fleet_node), "", 0, 0,
	 "this node's name in the fleet; empty = the host name"},
	{"secret_file", SC_FLEET, KT_STR, G(fleet_secret_file), "", 0, 0,
	 "the table's hash secret shared by the fleet: 32 hex digits"},
	{"stream_max", SC_FLEET, KT_U32, G(fleet_stream_max), "100000", 100, 100000000,
	 "update stream entries kept (a node away longer resyncs from the keys)"},
	{"callout_lock", SC_FLEET, KT_MS, G(fleet_lock_ms), "15s", 100, 600000,
	 "life of the per-address callout lock"},
	{"callout_wait", SC_FLEET, KT_MS, G(fleet_wait_ms), "3s", 10, 600000,
	 "wait for another node's verdict before calling out alone"},
	{"redis_timeout", SC_FLEET, KT_MS, G(fleet_connect_timeout_ms), "2s", 10, 60000,
	 "Redis connect and reply timeout"},
	{"reconnect_max", SC_FLEET, KT_MS, G(fleet_reconnect_max_ms), "10s", 100, 600000,
	 "ceiling of the reconnect backoff"},
	{"harvest_limit", SC_FLEET, KT_U32, G(fleet_harvest_limit), "0", 0, 100000000,
	 "invalid RCPTs per window per source prefix summed over the fleet, then blocked "
	 "everywhere; 0 = off"},
	{"harvest_window", SC_FLEET, KT_MS, G(fleet_harvest_window_ms), "60s", 1000, 3600000,
	 "window of harvest_limit"},
};
#define NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))
_Static_assert(NKEYS <= 128, "set_mask holds 128 keys");

struct parse_ctx {
	const char *fname;
	struct config *cfg;
	struct config_dom *cur;	/* NULL in [global] */
	int in_global;		/* 1 in [global] */
	int in_fleet;		/* 1 in [fleet] */
	int bad_section;	/* unknown section: every key in it fails */
	char section[256];
	int failed;		/* first error recorded */
	char msg[256];
	size_t cap;
};

static int fail(struct parse_ctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parse_ctx *p, const char *fmt, ...)
{
	if (!p->failed) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
		va_end(ap);
		p->failed = 1;
	}
	return 0;
}

/* A keyword taking one of a few words (any case), stored as a byte. */
struct word {
	const char *w;
	uint8_t v;
};

static int pick(struct parse_ctx *p, const struct config_key *k, const char *v, uint8_t *dst,
		const struct word *tab, const char *choices)
{
	for (; tab->w; tab++)
		if (!strcasecmp(v, tab->w)) {
			*dst = tab->v;
			return 1;
		}
	return fail(p, "%s: '%s' is not %s", k->name, v, choices);
}

static const struct config_key *key_find(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(config_keys[i].name, name))
			return &config_keys[i];
	return NULL;
}

static int parse_u64(const char *v, uint64_t *out, const char **rest)
{
	char *end;
	if (!isdigit((unsigned char)*v))
		return -EINVAL;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno)
		return -ERANGE;
	*out = n;
	*rest = end;
	return 0;
}

/* Durations: a number with an optional unit; base is the unit of the result
 * in milliseconds (1000 for seconds, 1 for milliseconds). */
static int parse_duration(const char *v, uint64_t base_ms, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}, {"w", 604800000}};
	const char *rest;
	uint64_t n;
	if (parse_u64(v, &n, &rest))
		return -EINVAL;
	uint64_t mult = base_ms;
	if (*rest) {
		size_t i;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (!strcmp(rest, units[i].suffix))
				break;
		if (i == sizeof(units) / sizeof(units[0]))
			return -EINVAL;
		mult = units[i].ms;
	}
	if (n > UINT64_MAX / mult)
		return -ERANGE;
	uint64_t ms = n * mult;
	if (ms % base_ms)
		return -EINVAL; /* "500ms" for a key counted in seconds */
	*out = ms / base_ms;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_facility(const char *v, int *out)
{
	static const struct {
		const char *name;
		int fac;
	} fac[] = {{"mail", LOG_MAIL},	   {"daemon", LOG_DAEMON}, {"user", LOG_USER},
		   {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
		   {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
		   {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7}};
	for (size_t i = 0; i < sizeof(fac) / sizeof(fac[0]); i++)
		if (!strcasecmp(v, fac[i].name)) {
			*out = fac[i].fac;
			return 0;
		}
	return -EINVAL;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	return s;
}

static int valid_hostname(const char *h)
{
	size_t n = strlen(h);
	if (n == 0 || n >= CONFIG_HOST_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];
		if (!(isalnum(c) || c == '-' || c == '.' || c == ':' || c == '_'))
			return 0;
	}
	return 1;
}

/* "host[:port], [v6addr]:port, ..." or "mx". */
static int parse_dests(struct parse_ctx *p, const char *v, struct config_dom *d)
{
	char buf[1024];
	if (strlen(v) >= sizeof(buf))
		return fail(p, "destination list too long");
	if (!strcasecmp(v, "mx")) {
		d->ndest = 0;
		return 1;
	}
	snprintf(buf, sizeof(buf), "%s", v);
	unsigned n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (n == CONFIG_MAX_DESTS)
			return fail(p, "more than %u destinations", CONFIG_MAX_DESTS);
		char *host = tok, *port = NULL;
		if (*tok == '[') {
			char *close = strchr(tok, ']');
			if (!close)
				return fail(p, "unterminated '[' in destination '%s'", tok);
			*close = 0;
			host = tok + 1;
			if (close[1] == ':')
				port = close + 2;
			else if (close[1])
				return fail(p, "junk after ']' in destination");
		} else {
			char *colon = strchr(tok, ':');
			if (colon && strchr(colon + 1, ':'))
				return fail(p, "IPv6 destination must be written [addr]:port");
			if (colon) {
				*colon = 0;
				port = colon + 1;
			}
		}
		if (!valid_hostname(host))
			return fail(p, "bad destination host '%s'", host);
		uint64_t pn = 25;
		if (port) {
			const char *rest;
			if (parse_u64(port, &pn, &rest) || *rest || pn < 1 || pn > 65535)
				return fail(p, "bad port '%s' (1..65535)", port);
		}
		snprintf(d->dest[n].host, sizeof(d->dest[n].host), "%s", host);
		d->dest[n].port = (uint16_t)pn;
		n++;
	}
	if (n == 0)
		return fail(p, "empty destination (use 'mx' for an MX lookup)");
	d->ndest = n;
	return 1;
}

/* A group by name or number: 0 and *gid, or -1 (message recorded). */
static int parse_gid(struct parse_ctx *p, const char *key, const char *tok, uint32_t *gid)
{
	uint64_t u;
	const char *rest;
	if (!parse_u64(tok, &u, &rest) && !*rest && u < UINT32_MAX) {
		*gid = (uint32_t)u;
		return 0;
	}
	struct group *g = getgrnam(tok);
	if (!g) {
		fail(p, "%s: unknown group '%s'", key, tok);
		return -1;
	}
	*gid = (uint32_t)g->gr_gid;
	return 0;
}

/* "0, mailadm, @rcptgate, @4242": users by name or uid, groups after '@'.
 * Names are resolved here, once: the control socket checks numbers. */
static int parse_ids(struct parse_ctx *p, const struct config_key *k, const char *v,
		     struct config *c)
{
	bool admins = k->off == offsetof(struct config, control_admins);
	struct config_principal *out = admins ? c->control_admins : c->control_readers;
	unsigned *nout = admins ? &c->ncontrol_admins : &c->ncontrol_readers;
	char buf[512];
	if (strlen(v) >= sizeof(buf))
		return fail(p, "%s: list too long", k->name);
	snprintf(buf, sizeof(buf), "%s", v);
	unsigned n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		uint64_t u;
		const char *rest;
		if (n == CONFIG_MAX_UIDS)
			return fail(p, "%s: more than %u entries", k->name, CONFIG_MAX_UIDS);
		if (tok[0] == '@') {
			if (parse_gid(p, k->name, tok + 1, &out[n].id))
				return 0;
			out[n++].group = true;
			continue;
		}
		out[n].group = false;
		if (!parse_u64(tok, &u, &rest) && !*rest && u < UINT32_MAX) {
			out[n++].id = (uint32_t)u;
			continue;
		}
		struct passwd *pw = getpwnam(tok);
		if (!pw)
			return fail(p, "%s: unknown user '%s'", k->name, tok);
		out[n++].id = (uint32_t)pw->pw_uid;
	}
	*nout = n;
	return 1;
}

static int parse_cidrs(struct parse_ctx *p, const struct config_key *k, const char *v,
		       struct config *c)
{
	char buf[1024];
	if (strlen(v) >= sizeof(buf))
		return fail(p, "%s: list too long", k->name);
	snprintf(buf, sizeof(buf), "%s", v);
	unsigned n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (n == CONFIG_MAX_ALLOW)
			return fail(p, "%s: more than %u prefixes", k->name, CONFIG_MAX_ALLOW);
		struct config_cidr *x = &c->policy_allow[n];
		if (ctlproto_parse_prefix(tok, &x->family, x->addr, &x->plen))
			return fail(p, "%s: bad prefix '%s' (e.g. 198.18.0.0/15 or 2001:2::/48, no "
				    "host bits)", k->name, tok);
		n++;
	}
	c->npolicy_allow = n;
	return 1;
}

/* The probe sender: an RFC 5321 mailbox (common/addr.h), never the null
 * path (that is the empty value), no parameters, no source route.  Kept as
 * written but for the brackets and a lowercased domain. */
static int parse_mailbox(struct parse_ctx *p, const struct config_key *k, const char *v,
			 char *dst, size_t size)
{
	char path[RG_PATH_MAX + 3];
	struct addr_parsed a;
	size_t len;
	if (!*v) {
		dst[0] = 0;
		return 1;
	}
	len = (size_t)snprintf(path, sizeof(path), v[0] == '<' ? "%s" : "<%s>", v);
	if (len >= sizeof(path) || addr_parse_path(path, len, &a) != ADDR_OK ||
	    a.path_len != len || (a.flags & (ADDR_F_ROUTE | ADDR_F_POSTMASTER)) || !a.domain_len)
		return fail(p, "%s: '%s' is not a mailbox (%s)", k->name, v,
			    (a.flags & ADDR_F_NULL) ? "leave it empty for the null path"
						    : "local@domain, no parameters");
	if (a.local_len + 1 + a.domain_len >= size)
		return fail(p, "%s: '%s' is too long", k->name, v);
	memcpy(dst, a.local, a.local_len);
	dst[a.local_len] = '@';
	int dl = addr_domain_lower(&a, dst + a.local_len + 1, size - a.local_len - 1);
	if (dl < 0)
		return fail(p, "%s: '%s': %s", k->name, v, addr_strerror(dl));
	dst[a.local_len + 1 + (size_t)dl] = 0;
	return 1;
}

static int valid_enhanced(const char *s)
{
	/* class.subject.detail: class 2/4/5, 1-3 digits, 1-3 digits */
	if (!(s[0] == '2' || s[0] == '4' || s[0] == '5') || s[1] != '.')
		return 0;
	const char *q = s + 2;
	for (int part = 0; part < 2; part++) {
		int digits = 0;
		while (isdigit((unsigned char)*q) && digits < 4) {
			q++;
			digits++;
		}
		if (digits < 1 || digits > 3)
			return 0;
		if (part == 0) {
			if (*q != '.')
				return 0;
			q++;
		}
	}
	return *q == 0;
}

static int parse_codes(struct parse_ctx *p, const char *v, struct config_dom *d)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", v);
	unsigned n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (n == CONFIG_MAX_CODES)
			return fail(p, "more than %u codes", CONFIG_MAX_CODES);
		if (!valid_enhanced(tok) || tok[0] != '5')
			return fail(p, "bad enhanced status code '%s' (5.x.y)", tok);
		snprintf(d->invalid_codes[n++], sizeof(d->invalid_codes[0]), "%s", tok);
	}
	d->ninvalid_codes = n;
	return 1;
}

/* Store one value. base is struct config or struct config_dom. */
static int key_set(struct parse_ctx *p, const struct config_key *k, void *base, const char *v)
{
	uint8_t *dst = (uint8_t *)base + k->off;
	uint64_t n;
	const char *rest;
	switch (k->type) {
	case KT_STR:
		if (strlen(v) >= k->size)
			return fail(p, "%s: value longer than %zu characters", k->name, k->size - 1);
		memcpy(dst, v, strlen(v) + 1);
		return 1;
	case KT_U32:
	case KT_PORT:
		if (parse_u64(v, &n, &rest) || *rest)
			return fail(p, "%s: '%s' is not a number", k->name, v);
		if (n < k->min || n > k->max)
			return fail(p, "%s: %s out of range %" PRIu64 "..%" PRIu64, k->name, v, k->min,
				    k->max);
		if (k->type == KT_PORT)
			*(uint16_t *)dst = (uint16_t)n;
		else
			*(uint32_t *)dst = (uint32_t)n;
		return 1;
	case KT_SECS:
	case KT_MS: {
		int r = parse_duration(v, k->type == KT_SECS ? 1000 : 1, &n);
		if (r)
			return fail(p, "%s: '%s' is not a duration (e.g. 30s, 10m, 1h, 7d%s)", k->name,
				    v, k->type == KT_MS ? ", 500ms" : "");
		if (n < k->min || n > k->max)
			return fail(p, "%s: %s out of range", k->name, v);
		*(uint32_t *)dst = (uint32_t)n;
		return 1;
	}
	case KT_BOOL:
		if (parse_bool(v, (bool *)dst))
			return fail(p, "%s: '%s' is not yes/no", k->name, v);
		return 1;
	case KT_MODE:
		return pick(p, k, v, dst, (const struct word[]){{"callout", DT_MODE_CALLOUT},
			    {"list", DT_MODE_LIST}, {"both", DT_MODE_BOTH}, {NULL, 0}},
			    "callout, list or both");
	case KT_MISS:
		return pick(p, k, v, dst, (const struct word[]){{"pass", DT_MISS_PASS},
			    {"defer", DT_MISS_DEFER}, {NULL, 0}}, "pass or defer");
	case KT_REJCODE:
		if (strcmp(v, "550") && strcmp(v, "450"))
			return fail(p, "%s: '%s' is not 550 or 450", k->name, v);
		*(uint16_t *)dst = (uint16_t)atoi(v);
		return 1;
	case KT_TLS:
		return pick(p, k, v, dst, (const struct word[]){{"may", CONFIG_TLS_MAY},
			    {"off", CONFIG_TLS_OFF}, {"required", CONFIG_TLS_REQUIRED}, {NULL, 0}},
			    "may, off or required");
	case KT_ACTION:
		return pick(p, k, v, dst, (const struct word[]){{"reject", CONFIG_ACTION_REJECT},
			    {"warn", CONFIG_ACTION_WARN}, {NULL, 0}}, "reject or warn");
	case KT_FACILITY:
		if (parse_facility(v, (int *)dst))
			return fail(p, "%s: unknown facility '%s'", k->name, v);
		return 1;
	case KT_DESTS:
		return parse_dests(p, v, (struct config_dom *)base);
	case KT_IDS:
		return parse_ids(p, k, v, (struct config *)base);
	case KT_CIDRS:
		return parse_cidrs(p, k, v, (struct config *)base);
	case KT_OCTAL: {
		char *end;
		unsigned long m = strtoul(v, &end, 8);
		if (!*v || *end || strspn(v, "01234567") != strlen(v) || m > k->max)
			return fail(p, "%s: '%s' is not an octal mode (e.g. 0660)", k->name, v);
		*(uint32_t *)dst = (uint32_t)m;
		return 1;
	}
	case KT_GROUP: {
		uint32_t gid;
		if (!*v) {
			*(int32_t *)dst = -1;
			return 1;
		}
		if (parse_gid(p, k->name, v, &gid))
			return 0;
		if (gid > INT32_MAX)
			return fail(p, "%s: group id %u too large", k->name, gid);
		*(int32_t *)dst = (int32_t)gid;
		return 1;
	}
	case KT_MAILBOX:
		return parse_mailbox(p, k, v, (char *)dst, k->size);
	case KT_SOURCE: {
		struct config_dom *dm = (struct config_dom *)base;
		char buf[256], *save = NULL;
		memset(&dm->source4, 0, sizeof(dm->source4));
		memset(&dm->source6, 0, sizeof(dm->source6));
		if (strlen(v) >= sizeof(buf))
			return fail(p, "%s: value too long", k->name);
		snprintf(buf, sizeof(buf), "%s", v);
		for (char *t = strtok_r(buf, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
			struct in_addr a4;
			struct in6_addr a6;
			if (inet_pton(AF_INET, t, &a4) == 1 && !dm->source4.sin_family) {
				dm->source4.sin_family = AF_INET;
				dm->source4.sin_addr = a4;
			} else if (inet_pton(AF_INET6, t, &a6) == 1 && !dm->source6.sin6_family) {
				dm->source6.sin6_family = AF_INET6;
				dm->source6.sin6_addr = a6;
			} else if (inet_pton(AF_INET, t, &a4) == 1 || inet_pton(AF_INET6, t, &a6) == 1) {
				return fail(p, "%s: at most one IPv4 and one IPv6 address", k->name);
			} else {
				return fail(p, "%s: '%s' is not an IPv4 or IPv6 address", k->name, t);
			}
		}
		return 1;
	}
	case KT_HOSTNAME:
		if (*v && (!valid_hostname(v) || strchr(v, ':')))
			return fail(p, "%s: '%s' is not a host name", k->name, v);
		if (strlen(v) >= k->size)
			return fail(p, "%s: value longer than %zu characters", k->name, k->size - 1);
		memcpy(dst, v, strlen(v) + 1);
		return 1;
	case KT_CODES:
		return parse_codes(p, v, (struct config_dom *)base);
	}
	return fail(p, "%s: internal: unknown type", k->name);
}

static int valid_domain_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > RG_DOMAIN_MAX || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(isalnum(c) || c == '-' || c == '.' || c >= 0x80))
			return 0;
		if (c == '.' && s[i + 1] == '.')
			return 0;
	}
	return 1;
}

/* The managed name of a "[domain NAME]" header: lowercased; a name in UTF-8
 * converted to its A-labels (IDNA2008, libidn2: nontransitional, NFC), as
 * the data plane and DNS see it.  Returns 1, or 0 with the message recorded. */
static int section_domain(struct parse_ctx *p, const char *section, char *name)
{
	const char *s = section + 6;
	bool utf8 = false;
	while (isspace((unsigned char)*s))
		s++;
	size_t len = strlen(s);
	if (len > RG_DOMAIN_MAX)
		return fail(p, "domain name too long");
	for (size_t i = 0; i <= len; i++) {
		name[i] = (char)tolower((unsigned char)s[i]);
		utf8 |= (unsigned char)s[i] >= 0x80;
	}
	if (utf8) {
		char *ace = NULL;
		int rc = idn2_to_ascii_8z(name, &ace, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
		if (rc != IDN2_OK) {
			char shown[TEXT_CLEAN_MAX(RG_DOMAIN_MAX)];
			text_clean(shown, sizeof(shown), name, strlen(name), 0);
			return fail(p, "bad domain name '%s': not a valid international domain name "
				    "(%s)", shown, idn2_strerror(rc));
		}
		if (strlen(ace) > RG_DOMAIN_MAX) {
			idn2_free(ace);
			return fail(p, "domain name too long once converted to A-labels");
		}
		snprintf(name, RG_DOMAIN_MAX + 1, "%s", ace);
		idn2_free(ace);
	}
	if (!valid_domain_name(name))
		return fail(p, "bad domain name '%s'", name);
	return 1;
}

/* Register a section header (pre-pass over the text, so that a [domain NAME]
 * section with no keys still defines the domain). */
static int add_section(struct parse_ctx *p, const char *section)
{
	if (!strcmp(section, "global") || !strcmp(section, "fleet"))
		return 1;
	if (strncmp(section, "domain", 6) || !isspace((unsigned char)section[6]))
		return fail(p, "unknown section [%s] (expected [global], [fleet] or [domain NAME])",
			    section);
	char name[RG_DOMAIN_MAX + 1];
	if (!section_domain(p, section, name))
		return 0;
	size_t len = strlen(name);
	struct config *c = p->cfg;
	for (unsigned i = 0; i < c->ndom; i++)
		if (!strcmp(c->dom[i].name, name))
			return fail(p, "domain %s defined twice", name);
	if (c->ndom == CONFIG_MAX_DOMAINS)
		return fail(p, "more than %u domains", CONFIG_MAX_DOMAINS);
	if (c->ndom == p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 8;
		struct config_dom *nd = realloc(c->dom, ncap * sizeof(*nd));
		if (!nd)
			return fail(p, "out of memory");
		c->dom = nd;
		p->cap = ncap;
	}
	struct config_dom *d = &c->dom[c->ndom++];
	memset(d, 0, sizeof(*d));
	memcpy(d->name, name, len + 1);
	return 1;
}

/* Keys that set the same field (control_uids, control_admins) are one key. */
static size_t key_canon(const struct config_key *k)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (config_keys[i].off == k->off &&
		    (config_keys[i].scope == SC_GLOBAL) == (k->scope == SC_GLOBAL))
			return i;
	return (size_t)(k - config_keys);
}

/* Pre-pass over the text, line by line, for what inih cannot tell: a line
 * too long for its buffer (it would split it and blame the next line), a
 * key given twice in one section (it would let the last win), and every
 * "[...]" header in order.  Returns 0 or the failing line. */
static int scan_lines(struct parse_ctx *p, const char *text)
{
	int line = 0, in_global = 0, in_section = 0; /* [fleet] counts as global here */
	int first[NKEYS], gfirst[NKEYS];
	const char *fname[NKEYS], *gname[NKEYS];
	memset(first, 0, sizeof(first));
	memset(gfirst, 0, sizeof(gfirst));
	if (!strncmp(text, "\xEF\xBB\xBF", 3))
		text += 3; /* a UTF-8 BOM, as inih skips it */
	for (const char *s = text; *s;) {
		const char *eol = strchr(s, '\n');
		size_t n = eol ? (size_t)(eol - s) : strlen(s);
		line++;
		if (n > CONFIG_LINE_MAX + (n && s[n - 1] == '\r' ? 1u : 0u)) {
			fail(p, "line longer than %u characters", CONFIG_LINE_MAX);
			return line;
		}
		const char *q = s, *end = s + n;
		while (q < end && isspace((unsigned char)*q))
			q++;
		if (q < end && *q == '[') {
			const char *close = memchr(q, ']', (size_t)(end - q));
			if (close) {
				char sec[300];
				size_t len = (size_t)(close - q - 1);
				if (len >= sizeof(sec))
					len = sizeof(sec) - 1;
				memcpy(sec, q + 1, len);
				sec[len] = 0;
				char *t = trim(sec);
				if (!add_section(p, t))
					return line;
				in_global = !strcmp(t, "global") || !strcmp(t, "fleet");
				in_section = 1;
				memset(first, 0, sizeof(first));
			}
		} else if (q < end && *q != ';' && *q != '#') {
			const char *d = q;
			while (d < end && *d != '=' && *d != ':')
				d++;
			char name[64];
			size_t nl = (size_t)(d - q);
			while (nl && isspace((unsigned char)q[nl - 1]))
				nl--;
			if (in_section && d < end && nl && nl < sizeof(name)) {
				memcpy(name, q, nl);
				name[nl] = 0;
				const struct config_key *k = key_find(name);
				if (k) {
					size_t c = key_canon(k);
					int *f = in_global ? gfirst : first;
					const char **fn = in_global ? gname : fname;
					if (f[c]) {
						fail(p, "%s given twice in [%s%s] (first at line %d%s%s)",
						     config_keys[c].name, in_global ? "" : "domain ",
						     in_global ? "global" : p->cfg->dom[p->cfg->ndom - 1].name,
						     f[c], strcmp(fn[c], k->name) ? ", as " : "",
						     strcmp(fn[c], k->name) ? fn[c] : "");
						return line;
					}
					f[c] = line;
					fn[c] = k->name;
				}
			}
		}
		s = eol ? eol + 1 : s + n;
	}
	return 0;
}

static int enter_section(struct parse_ctx *p, const char *section)
{
	size_t sl = strnlen(section, sizeof(p->section) - 1);
	memcpy(p->section, section, sl);
	p->section[sl] = 0;
	p->cur = NULL;
	p->in_global = !strcmp(section, "global");
	p->in_fleet = !strcmp(section, "fleet");
	p->bad_section = 0;
	if (p->in_global || p->in_fleet)
		return 1;
	char name[RG_DOMAIN_MAX + 1];
	if (!strncmp(section, "domain", 6) && isspace((unsigned char)section[6]) &&
	    !section_domain(p, section, name))
		return 0;
	for (unsigned i = 0; i < p->cfg->ndom; i++)
		if (!strcmp(p->cfg->dom[i].name, name)) {
			p->cur = &p->cfg->dom[i];
			return 1;
		}
	p->bad_section = 1;
	if (!section[0])
		return fail(p, "key outside any section (start with [global])");
	return fail(p, "unknown section [%s]", section);
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *p = user;
	if (strcmp(section, p->section) ||
	    (!p->in_global && !p->in_fleet && !p->cur && !p->bad_section)) {
		if (!enter_section(p, section))
			return 0;
	}
	if (p->bad_section)
		return 0;
	const struct config_key *k = key_find(name);
	if (!k)
		return fail(p, "unknown key '%s' in [%s]", name, section);
	char vbuf[1024];
	snprintf(vbuf, sizeof(vbuf), "%s", value);
	char *v = trim(vbuf);
	if (p->in_fleet != (k->scope == SC_FLEET))
		return fail(p, p->in_fleet ? "key '%s' does not belong in [fleet]" :
				"key '%s' belongs in [fleet]", name);
	if (p->in_fleet)
		return key_set(p, k, p->cfg, v);
	if (p->in_global) {
		if (k->scope == SC_GLOBAL)
			return key_set(p, k, p->cfg, v);
		if (k->scope == SC_DOMAIN)
			return fail(p, "key '%s' belongs in a [domain ...] section", name);
		size_t idx = (size_t)(k - config_keys);
		p->cfg->defaults.set_mask[idx / 64] |= 1ull << (idx % 64);
		return key_set(p, k, &p->cfg->defaults, v);
	}
	if (!(k->scope & SC_DOMAIN))
		return fail(p, "key '%s' belongs in [global], not [%s]", name, section);
	size_t idx = (size_t)(k - config_keys);
	p->cur->set_mask[idx / 64] |= 1ull << (idx % 64);
	return key_set(p, k, p->cur, v);
}

static void apply_defaults(struct config *c)
{
	struct parse_ctx p = {.fname = "(defaults)", .cfg = c};
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		if (k->scope == SC_GLOBAL || k->scope == SC_FLEET)
			key_set(&p, k, c, k->def);
		else
			key_set(&p, k, &c->defaults, k->def);
	}
}

/* Domain keys not set in a domain section take the [global] value. */
static void inherit(struct config *c)
{
	for (unsigned d = 0; d < c->ndom; d++) {
		struct config_dom *dom = &c->dom[d];
		for (size_t i = 0; i < NKEYS; i++) {
			const struct config_key *k = &config_keys[i];
			if (k->scope != SC_BOTH || (dom->set_mask[i / 64] & (1ull << (i % 64))))
				continue;
			memcpy((uint8_t *)dom + k->off, (uint8_t *)&c->defaults + k->off, k->size);
			if (k->type == KT_DESTS)
				dom->ndest = c->defaults.ndest;
			if (k->type == KT_CODES)
				dom->ninvalid_codes = c->defaults.ninvalid_codes;
			if (k->type == KT_SOURCE)
				dom->source6 = c->defaults.source6;
		}
	}
}

static int is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* metrics_listen: "" or a numeric address and port, "a.b.c.d:P" or
 * "[v6]:P" (metrics.c binds it as given: no name lookup at start). */
static bool metrics_listen_ok(const char *s)
{
	char host[INET6_ADDRSTRLEN];
	const char *colon = strrchr(s, ':');
	if (!*s)
		return true;
	if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return false;
	unsigned long port = strtoul(colon + 1, NULL, 10);
	size_t hl = (size_t)(colon - s);
	if (port < 1 || port > 65535 || hl < 1)
		return false;
	bool v6 = s[0] == '[';
	if (v6) {
		if (hl < 3 || s[hl - 1] != ']')
			return false;
		s++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return false;
	memcpy(host, s, hl);
	host[hl] = 0;
	unsigned char a[16];
	return inet_pton(v6 ? AF_INET6 : AF_INET, host, a) == 1;
}

/* Rules across keys; the message names the section (no line for these). */
static int validate(struct config *c, char *err, size_t errlen)
{
	const char *f = c->path;
	if (!metrics_listen_ok(c->metrics_listen)) {
		snprintf(err, errlen, "%s: metrics_listen '%s': expected a numeric IPv4:port or "
			 "[IPv6]:port (or empty: off)", f, c->metrics_listen);
		return -EINVAL;
	}
	if (!is_pow2(c->shm_dtable_slots) || !is_pow2(c->shm_miss_slots) ||
	    !is_pow2(c->shm_event_slots)) {
		snprintf(err, errlen, "%s: shm_domains, miss_ring_slots and event_ring_slots must be powers of two", f);
		return -EINVAL;
	}
	if (c->shm_table_init_log2 > c->shm_table_max_log2) {
		snprintf(err, errlen, "%s: table_init_log2 > table_max_log2", f);
		return -EINVAL;
	}
	if (c->fleet_redis[0] && c->fleet_redis[0] != '/') {
		/* an IP address and a port: a name would need a blocking lookup */
		char host[CONFIG_PATH_MAX];
		const char *r = c->fleet_redis, *colon = strrchr(r, ':'), *h = r, *he = colon;
		if (r[0] == '[') {
			const char *rb = strchr(r, ']');
			h = r + 1;
			he = rb;
			colon = rb && rb[1] == ':' ? rb + 1 : NULL;
		}
		char *end = NULL;
		long port = colon ? strtol(colon + 1, &end, 10) : 0;
		unsigned char a[16];
		bool ok = colon && he && he > h && (size_t)(he - h) < sizeof(host) && colon[1] &&
			  !*end && port >= 1 && port <= 65535;
		if (ok) {
			memcpy(host, h, (size_t)(he - h));
			host[he - h] = 0;
			ok = inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
		}
		if (!ok) {
			snprintf(err, errlen, "%s: [fleet]: redis '%s': give IPv4:port, [IPv6]:port or "
				 "a Unix socket path (a host name would be resolved with a blocking "
				 "lookup)", f, r);
			return -EINVAL;
		}
	}
	if (c->fleet_redis[0] && !c->fleet_secret_file[0]) {
		snprintf(err, errlen, "%s: [fleet]: redis needs secret_file (every node of a fleet "
			 "hashes with the same secret)", f);
		return -EINVAL;
	}
	if (c->fleet_redis[0] && c->fleet_wait_ms >= c->fleet_lock_ms) {
		snprintf(err, errlen, "%s: [fleet]: callout_wait must be shorter than callout_lock", f);
		return -EINVAL;
	}
	if (c->ndom > c->shm_dtable_slots / 2) {
		snprintf(err, errlen, "%s: %u domains need shm_domains >= %u", f, c->ndom, c->ndom * 2);
		return -EINVAL;
	}
	for (unsigned d = 0; d < c->ndom; d++) {
		const struct config_dom *dom = &c->dom[d];
		if (dom->refresh_valid >= dom->ttl_valid || dom->refresh_invalid >= dom->ttl_invalid) {
			snprintf(err, errlen, "%s: [domain %s]: refresh_* must be shorter than ttl_*", f,
				 dom->name);
			return -EINVAL;
		}
		if (dom->mode != DT_MODE_CALLOUT && !dom->list[0] && !dom->list_command[0]) {
			snprintf(err, errlen, "%s: [domain %s]: mode %s needs a list file or list_command",
				 f, dom->name, dom->mode == DT_MODE_LIST ? "list" : "both");
			return -EINVAL;
		}
		if (dom->list[0] && dom->list_command[0]) {
			snprintf(err, errlen, "%s: [domain %s]: list and list_command are exclusive", f,
				 dom->name);
			return -EINVAL;
		}
		if (dom->mail_from_rotate) {
			const char *at = strrchr(dom->mail_from, '@');
			if (!at) {
				snprintf(err, errlen, "%s: [domain %s]: mail_from_rotate needs mail_from", f,
					 dom->name);
				return -EINVAL;
			}
			/* "-" and up to 10 digits are appended to the local part */
			if (dom->mail_from[0] == '"' || at - dom->mail_from + 11 > RG_LOCAL_MAX) {
				snprintf(err, errlen, "%s: [domain %s]: mail_from_rotate needs a mail_from "
					 "whose local part is a dot-atom of at most %u characters", f,
					 dom->name, RG_LOCAL_MAX - 11);
				return -EINVAL;
			}
		}
		if (dom->list[0] && access(dom->list, R_OK)) {
			snprintf(err, errlen, "%s: [domain %s]: list %s: %s", f, dom->name, dom->list,
				 strerror(errno));
			return -errno;
		}
	}
	if (c->dns_server[0]) {
		char host[64];
		snprintf(host, sizeof(host), "%s", c->dns_server);
		char *colon = strchr(host, ':');
		if (colon)
			*colon = 0;
		struct in_addr ia;
		if (inet_pton(AF_INET, host, &ia) != 1) {
			snprintf(err, errlen, "%s: dns_server '%s' is not IPv4[:port]", f, c->dns_server);
			return -EINVAL;
		}
	}
	if (c->block_ttl > c->block_ttl_max) {
		snprintf(err, errlen, "%s: block_ttl > block_ttl_max", f);
		return -EINVAL;
	}
	return 0;
}

#define CONFIG_FILE_MAX (16u << 20)

static int load(const char *name, const char *text, struct config *out, char *err,
		size_t errlen)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->path, sizeof(out->path), "%s", name);
	apply_defaults(out);
	struct parse_ctx p = {.fname = name, .cfg = out};
	p.section[0] = 0;
	int line = scan_lines(&p, text);
	if (!line)
		line = ini_parse_string(text, handler, &p);
	if (line < 0) {
		snprintf(err, errlen, "%s: cannot parse", name);
		config_free(out);
		return -EIO;
	}
	if (line > 0) {
		if (p.failed)
			snprintf(err, errlen, "%s:%d: %s", name, line, p.msg);
		else
			snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)",
				 name, line);
		config_free(out);
		return -EINVAL;
	}
	inherit(out);
	int r = validate(out, err, errlen);
	if (r) {
		config_free(out);
		return r;
	}
	return 0;
}

int config_load(const char *path, struct config *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	FILE *fp = fopen(path, "r");
	if (!fp) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	char *text = malloc(CONFIG_FILE_MAX + 1);
	if (!text) {
		fclose(fp);
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	size_t n = fread(text, 1, CONFIG_FILE_MAX + 1, fp);
	int rerr = ferror(fp);
	fclose(fp);
	if (rerr || n > CONFIG_FILE_MAX) {
		free(text);
		snprintf(err, errlen, "%s: %s", path, rerr ? "read error" : "larger than 16 MiB");
		return rerr ? -EIO : -EFBIG;
	}
	text[n] = 0;
	if (memchr(text, 0, n)) {
		free(text);
		snprintf(err, errlen, "%s: contains a NUL byte", path);
		return -EINVAL;
	}
	int r = load(path, text, out, err, errlen);
	free(text);
	return r;
}

int config_load_string(const char *name, const char *text, struct config *out, char *err,
		       size_t errlen)
{
	return load(name, text, out, err, errlen);
}

void config_free(struct config *c)
{
	free(c->dom);
	c->dom = NULL;
	c->ndom = 0;
}

const struct config_dom *config_domain(const struct config *c, const char *name)
{
	for (unsigned i = 0; i < c->ndom; i++)
		if (!strcmp(c->dom[i].name, name))
			return &c->dom[i];
	return NULL;
}

static const char *scope_name(enum key_scope sc)
{
	switch (sc) {
	case SC_GLOBAL:
		return "global";
	case SC_DOMAIN:
		return "domain";
	case SC_BOTH:
		return "both";
	case SC_FLEET:
		return "fleet";
	}
	return "?";
}

void config_print_defaults(void *file)
{
	FILE *f = file;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		fprintf(f, "%-22s %-8s %-30s %s\n", k->name, scope_name(k->scope),
			k->def[0] ? k->def : "\"\"", k->help);
	}
}

/* s as roff text: backslashes and hyphens escaped, a leading '.' or '\''
 * made literal, lines broken at a space after 64 columns (mandoc's lint
 * asks for input lines of at most 80). */
static void roff_text(FILE *f, const char *s)
{
	unsigned col = 0;
	if (*s == '.' || *s == '\'')
		fputs("\\&", f);
	for (; *s; s++, col++)
		if (*s == ' ' && col > 64 && s[1] && s[1] != '.' && s[1] != '\'') {
			fputc('\n', f);
			col = 0;
		} else if (*s == '\\') {
			fputs("\\e", f);
		} else if (*s == '-') {
			fputs("\\-", f);
		} else {
			fputc(*s, f);
		}
}

/* The key list of rcptgated.conf(5), man(7) markup, from config_keys[]:
 * the page is built from this output, so it names every key the parser
 * takes (and tests/pkg checks the installed page against --defaults). */
void config_print_man(void *file)
{
	FILE *f = file;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		fprintf(f, ".TP\n.B %s\n", k->name);
		roff_text(f, k->help);
		fputs(".\n.br\n", f);
		fprintf(f, "Section: %s.\n.br\nDefault: ",
			k->scope == SC_GLOBAL   ? "[global]"
			: k->scope == SC_DOMAIN ? "[domain NAME]"
			: k->scope == SC_BOTH	? "[global] (every domain's default) or [domain NAME]"
			: k->scope == SC_FLEET	? "[fleet]"
						: scope_name(k->scope));
		if (k->def[0]) {
			fputs("\\(lq", f);
			roff_text(f, k->def);
			fputs("\\(rq", f);
		} else {
			fputs("empty", f);
		}
		fputs(".\n", f);
	}
}
