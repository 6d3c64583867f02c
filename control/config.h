/*
 * config.h — rcptgated's configuration: one INI file with a [global] section
 * and one [domain NAME] section per managed domain.  Every key is declared
 * once in config.c's dispatch table (name, scope, type, default, range); a
 * bad key or value is an error naming file:line.  Keys that tune callouts may
 * appear in [global] (the default for every domain) and in a domain section
 * (that domain only).  docs/CONFIG.md lists every key, its default and why.
 *
 * Thread: parsed in the main thread at start-up and on reload; the result is
 * immutable once loaded and replaced as a whole.
 */
#ifndef RG_CONFIG_H
#define RG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>

#include "shm.h"

#define CONFIG_MAX_DOMAINS 4096u
#define CONFIG_MAX_DESTS 8u	/* host:port entries per domain */
#define CONFIG_MAX_UIDS 16u	/* control_admins / control_readers entries */
#define CONFIG_MAX_ALLOW 32u	/* policy_allow prefixes */
#define CONFIG_LINE_MAX 197u	/* characters of one line (inih's 200-octet buffer) */
#define CONFIG_MAX_CODES 8u	/* invalid_codes entries */
#define CONFIG_PATH_MAX 256u
#define CONFIG_HOST_MAX 256u
#define CONFIG_CMD_MAX 1024u

/* A uid, or a group (gid) whose members (primary or supplementary) match. */
struct config_principal {
	uint32_t id;
	bool group;
};

struct config_cidr {
	int family;		/* AF_INET or AF_INET6 */
	unsigned plen;
	uint8_t addr[16];
};

struct config_dest {
	char host[CONFIG_HOST_MAX];	/* name or address literal (no brackets) */
	uint16_t port;
};

enum config_tls {
	CONFIG_TLS_MAY = 0,		/* STARTTLS when offered (opportunistic) */
	CONFIG_TLS_OFF = 1,		/* never */
	CONFIG_TLS_REQUIRED = 2,	/* never without: a destination not offering it
					 * is unverifiable */
};

enum config_action {
	CONFIG_ACTION_REJECT = 0,	/* refuse invalid recipients */
	CONFIG_ACTION_WARN = 1,		/* dry run: forward, log what would be refused */
};

/* Per-domain settings; [global] holds the defaults every domain inherits. */
struct config_dom {
	char name[RG_DOMAIN_MAX + 1];	/* lowercased */
	/* destination: explicit list, or MX lookup when ndest == 0 */
	struct config_dest dest[CONFIG_MAX_DESTS];
	unsigned ndest;
	uint16_t mx_port;		/* port used for MX-derived hosts */
	uint8_t mode;			/* enum dtable_mode */
	uint8_t miss_policy;		/* enum dtable_miss */
	uint8_t action;			/* enum config_action */
	uint8_t tls;			/* enum config_tls (callouts) */
	uint16_t reject_code;		/* 550 or 450 for an invalid recipient */
	bool case_sensitive;
	char list[CONFIG_PATH_MAX];	/* static valid-recipient list, "" = none */
	char list_command[CONFIG_CMD_MAX]; /* /bin/sh command printing the list, "" = none */
	char mail_from[RG_ADDR_MAX + 1];/* probe sender "local@domain" (checked as an
					 * RFC 5321 path), "" = the null path <> */
	uint32_t mail_from_rotate;	/* s: "local-N@domain", N = time / this; 0 = off */
	char helo_name[CONFIG_HOST_MAX];
	/* callouts leave from these (0.0.0.0 / :: family unset = the kernel's) */
	struct sockaddr_in source4;
	struct sockaddr_in6 source6;
	uint32_t harvest_threshold;	/* published in the domain table; 0 = global */

	/* callout sessions */
	uint32_t batch;			/* RCPTs per transaction */
	uint32_t session_max_rcpts;	/* RCPTs per connection (then QUIT) */
	uint32_t connect_timeout_ms;
	uint32_t greeting_timeout_ms;
	uint32_t command_timeout_ms;
	uint32_t session_timeout_ms;
	uint32_t dest_max_conns;	/* concurrent sessions per destination domain */
	uint32_t dest_conn_rate;	/* new sessions per second per domain */
	uint32_t dest_rcpt_rate;	/* RCPT probes per second per domain */
	uint32_t queue_max;		/* pending addresses per domain */

	/* verdict lifetimes, seconds */
	uint32_t ttl_valid, refresh_valid;
	uint32_t ttl_invalid, refresh_invalid;
	uint32_t ttl_tempfail;		/* no new probe of that address before */
	uint32_t ttl_unverifiable;	/* destination left failing open for */

	/* accept-all detection */
	bool accept_all_probe;
	uint32_t accept_all_interval;	/* seconds between probes */

	/* circuit breaker */
	uint32_t breaker_failures;	/* consecutive failed sessions to open */
	uint32_t breaker_open_s;	/* open for, then one trial session */

	/* extra enhanced codes (beyond 5.1.0, 5.1.1, 5.1.10) that mean "no such
	 * user" at this destination, e.g. "5.4.1" for Microsoft 365 edge blocking */
	char invalid_codes[CONFIG_MAX_CODES][12];
	unsigned ninvalid_codes;

	uint64_t set_mask[2];		/* keys given explicitly (config.c internal) */
};

struct config {
	char path[CONFIG_PATH_MAX];	/* file it was read from */

	/* shared memory */
	char shm_path[CONFIG_PATH_MAX];
	uint32_t shm_max_lcores;
	uint32_t shm_dtable_slots;
	uint32_t shm_table_init_log2;
	uint32_t shm_table_max_log2;
	uint32_t shm_miss_slots;
	uint32_t shm_event_slots;

	/* verdict store */
	char store_path[CONFIG_PATH_MAX];	/* LMDB environment directory */
	uint32_t store_map_mb;

	/* control socket (ctl module) */
	char control_socket[CONFIG_PATH_MAX];
	/* every verb (root always); control_uids is an older name of it */
	struct config_principal control_admins[CONFIG_MAX_UIDS];
	unsigned ncontrol_admins;
	/* the read-only verbs: status, stats, lookup, domains, blocks */
	struct config_principal control_readers[CONFIG_MAX_UIDS];
	unsigned ncontrol_readers;
	uint32_t control_max_clients;

	/* policy service (policy module); "" = off; "host:port" or a unix path */
	char policy_listen[CONFIG_PATH_MAX];
	char metrics_listen[CONFIG_PATH_MAX];	/* host:port of /metrics; "" = off */
	uint32_t policy_timeout_ms;	/* wait for a callout before answering */
	uint32_t policy_max_clients;
	uint32_t policy_socket_mode;	/* Unix listener's file mode */
	int32_t policy_socket_gid;	/* ... and group; -1 = the daemon's */
	struct config_cidr policy_allow[CONFIG_MAX_ALLOW]; /* TCP clients allowed */
	unsigned npolicy_allow;

	/* XDP maps and blocking (xdp module) */
	char xdp_pin_dir[CONFIG_PATH_MAX];
	uint32_t block_ttl;		/* seconds a harvesting source is blocked */
	uint32_t block_ttl_max;		/* backoff ceiling for repeat offenders */
	char block_allow[CONFIG_PATH_MAX]; /* file of never-blocked prefixes, "" = none */

	/* logging */
	char syslog_ident[64];
	int syslog_facility;		/* LOG_MAIL by default */
	bool log_stderr;
	uint32_t log_rate;		/* log lines per second per kind, then summarised */
	bool log_callouts;		/* one line per callout result */

	/* housekeeping */
	uint32_t list_retry_s;		/* a list not published whole is tried again */
	uint32_t queue_max;		/* pending addresses, all domains */
	uint32_t dns_timeout_ms;
	char dns_server[64];		/* "IPv4[:port]" for MX queries; "" = resolv.conf */
	uint32_t mx_min_ttl;		/* seconds an MX answer is kept at least */

	/* fleet ([fleet] section; fleet_redis "" = single box, no fleet) */
	char fleet_redis[CONFIG_PATH_MAX];	/* "host:port", "[v6]:port" or a Unix path */
	char fleet_user[64];			/* Redis ACL user, "" = default */
	char fleet_password_file[CONFIG_PATH_MAX]; /* "" = no AUTH */
	char fleet_prefix[32];			/* key prefix, "rg:" */
	char fleet_node[64];			/* this node's name, "" = host name */
	char fleet_secret_file[CONFIG_PATH_MAX]; /* 16-byte table hash secret, hex */
	uint32_t fleet_stream_max;		/* update stream entries kept (MAXLEN ~) */
	uint32_t fleet_lock_ms;			/* one callout per address: lock life */
	uint32_t fleet_wait_ms;			/* wait for another node's verdict */
	uint32_t fleet_connect_timeout_ms;
	uint32_t fleet_reconnect_max_ms;	/* backoff ceiling */
	uint32_t fleet_harvest_limit;		/* invalid RCPTs per window per source
						 * prefix, summed over the fleet; 0 = off */
	uint32_t fleet_harvest_window_ms;

	struct config_dom defaults;	/* [global] values of domain keys */
	struct config_dom *dom;		/* [domain NAME] sections, in file order */
	unsigned ndom;
};

/* Parse path into *out (zeroed first).  0, or -EINVAL/-errno with
 * "file:line: message" in err.  Validates cross-key rules too. */
int config_load(const char *path, struct config *out, char *err, size_t errlen);

/* Same from a string (tests); name is used in messages. */
int config_load_string(const char *name, const char *text, struct config *out, char *err,
		       size_t errlen);

void config_free(struct config *c);

/* The domain section for a lowercased name, or NULL. */
const struct config_dom *config_domain(const struct config *c, const char *name);

/* Print every key with its default (rcptgated --defaults). */
void config_print_defaults(void *file);
/* Every key as man(7) markup (.TP entries) for rcptgated.conf(5). */
void config_print_man(void *file);

#endif
