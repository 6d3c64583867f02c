/*
 * core.h — what rcptgated's core offers the modules around it: the control
 * socket (ctl), the Postfix policy service (policy) and the XDP map manager
 * (xdp).  One function per rcptctl verb, the policy service's recipient check,
 * the harvest-event hook, and the single event loop every socket plugs into.
 *
 * Thread: everything here runs in rcptgated's main (event-loop) thread and
 * must be called from it.  Callbacks are invoked from the same thread, never
 * re-entrantly from inside the call that registered them.
 *
 * Strings returned through structs are NUL-terminated copies owned by the
 * struct; pointers marked "valid during the callback" must be copied.
 * Errors are 0 / -errno; a message for people goes into err when given.
 */
#ifndef RG_CORE_H
#define RG_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "msg.h"
#include "shm.h"
#include "store.h"

/* ---------------------------------------------------------------------- */
/* Event loop: loop.h (daemon_add_fd, daemon_timer_add, daemon_now_ms ...). */

/* The configuration in force (replaced on reload: do not keep the pointer
 * across a return to the loop; modules get the new one through *_reload()). */
const struct config *core_config(void);

/* ---------------------------------------------------------------------- */
/* Verdicts.                                                               */

/* What the core knows or learned about one address. */
enum core_verdict {
	CORE_V_NONE = 0,	 /* nothing cached */
	CORE_V_VALID = 1,	 /* exists (callout 2xx, listed, or set by hand) */
	CORE_V_INVALID = 2,	 /* does not exist (5.1.1 / 5.1.0 / 5.1.10, unlisted) */
	CORE_V_TEMPFAIL = 3,	 /* 4xx, timeout, connection failure: try later */
	CORE_V_UNVERIFIABLE = 4, /* destination refuses to be asked (policy 5xx) */
	CORE_V_UNMANAGED = 5,	 /* domain not configured: not ours to judge */
	CORE_V_ACCEPT_ALL = 6,	 /* domain accepts any local part: always pass */
};
const char *core_verdict_name(int v); /* "valid", "invalid", ... */

/* Source of a cached verdict (same values as enum rtable_source). */
const char *core_source_name(int src); /* "callout", "list", "manual", "policy" */

/* ---------------------------------------------------------------------- */
/* status, stats                                                           */

/* The fleet's state as `status` shows it (filled by the fleet module). */
struct core_fleet_status {
	bool enabled;			/* [fleet] redis configured */
	bool connected;			/* both Redis connections up */
	char node[64];
	char redis[CONFIG_PATH_MAX];
	uint64_t down_since_s;		/* realtime start of the outage, 0 when up */
	uint64_t stream_lag_ms;		/* age of the last stream entry when applied */
	uint64_t last_sync_s;		/* realtime of the last stream read, 0 = never */
	uint64_t applied;		/* verdicts applied from the fleet */
	uint64_t published;		/* verdicts shared with the fleet */
	uint64_t lock_waits;		/* callouts left to another node's lock */
	uint64_t uncoordinated;		/* callouts made without the fleet */
	uint64_t outbox;		/* verdicts waiting for Redis */
};

struct core_status {
	char version[32];
	uint32_t pid;
	uint64_t started_s;		/* CLOCK_REALTIME */
	uint64_t uptime_s;
	char config_path[256];
	uint64_t config_loaded_s;	/* last successful (re)load */
	char shm_path[256];
	uint64_t shm_size;
	uint64_t table_entries;		/* live entries in the recipient table */
	uint64_t table_gen;
	uint32_t domains;		/* configured domains */
	uint64_t list_addresses;	/* addresses in static lists */
	uint32_t lists_partial;		/* closed lists not published whole */
	uint32_t dp_lcores_online;	/* data-plane lcores marked online */
	uint64_t dp_heartbeat_age_ms;	/* youngest lcore heartbeat; UINT64_MAX if none */
	char store_path[256];
	uint64_t store_entries;		/* verdicts in the LMDB store */
	uint32_t callouts_pending;	/* addresses queued for a callout */
	uint32_t callouts_inflight;	/* addresses in open sessions */
	uint32_t sessions_open;		/* open callout connections */
	struct core_fleet_status fleet;
};
int core_status(struct core_status *out);

/*
 * Every counter, once: group is "daemon" (rcptgated's own, CORE_STATS_LIST),
 * "dataplane" (stats_sum() over the shm lcore blocks, names from stats.h),
 * "rings" (ring depths and drops) or "xdp" (from xdp_stats_foreach when the
 * xdp module is built).  help is a one-line description (may be "").
 */
typedef void (*core_stat_fn)(const char *group, const char *name, uint64_t value,
			     const char *help, void *arg);
void core_stats_foreach(core_stat_fn fn, void *arg);

/* The data plane's counters lcore by lcore (names: stats.h STATS_LIST):
 * fn(lcore, online, ctr[STAT__COUNT], arg) for each lcore region that ever
 * ran (pid set).  For /metrics. */
typedef void (*core_lcore_fn)(unsigned lcore, bool online, const uint64_t *ctr, void *arg);
void core_lcores_foreach(core_lcore_fn fn, void *arg);

/* Callout latency (submission to result, answered addresses): counts per
 * upper bound core_latency_ms[i] (cumulative, last = +Inf), sum in ms. */
#define CORE_LATENCY_BUCKETS 12u
extern const uint32_t core_latency_ms[CORE_LATENCY_BUCKETS];
struct core_latency {
	uint64_t le[CORE_LATENCY_BUCKETS + 1];	/* cumulative; [BUCKETS] = count */
	uint64_t sum_ms;
};
void core_callout_latency(struct core_latency *out);

/* ---------------------------------------------------------------------- */
/* lookup, set, del, flush                                                 */

struct core_lookup {
	char addr[RG_ADDR_MAX + 1];	/* canonical form */
	char domain[RG_DOMAIN_MAX + 1];
	bool managed;			/* domain configured */
	uint8_t mode;			/* enum dtable_mode when managed */
	bool accept_all;		/* domain detected accept-all */
	bool in_table;			/* present in the shared recipient table */
	bool in_store;			/* present in the LMDB store */
	int verdict;			/* enum core_verdict */
	uint8_t source;			/* enum rtable_source */
	bool pinned;			/* set by hand, no TTL */
	bool stale;			/* past refresh time, refresh due/running */
	bool pending;			/* a callout for it is queued or running */
	uint64_t updated_s;		/* when the verdict was learned (realtime) */
	uint64_t refresh_s;		/* when a refresh is due; 0 = never */
	uint64_t expiry_s;		/* when it stops being served; 0 = never */
	uint16_t code;			/* last callout reply code, 0 if none */
	char reply[256];		/* last callout reply text (first line) */
};
/* -EINVAL for an address that does not parse (err says why). */
int core_lookup(const char *addr, struct core_lookup *out, char *err, size_t errlen);

/* Set by hand: valid or invalid, ttl_s == 0 means no expiry (pinned).
 * Works for unmanaged domains too (the data plane only consults managed ones). */
int core_set(const char *addr, bool valid, uint32_t ttl_s, char *err, size_t errlen);

/* Remove one address from table and store.  -ENOENT when absent. */
int core_del(const char *addr, char *err, size_t errlen);

/* Remove every cached verdict of one domain (domain != NULL) or all of them
 * (domain == NULL).  Static-list verdicts are republished from the lists
 * afterwards.  *removed gets the number of store entries removed. */
int core_flush(const char *domain, uint64_t *removed, char *err, size_t errlen);

/* ---------------------------------------------------------------------- */
/* verify: a callout now, with the SMTP transcript                         */

struct core_verify_result {
	int err;			/* 0, or -errno: no destination, unmanaged... */
	char errmsg[256];
	char addr[RG_ADDR_MAX + 1];
	int verdict;			/* CORE_V_VALID/INVALID/TEMPFAIL/UNVERIFIABLE, or
					 * ACCEPT_ALL (2xx from an accept-all domain) */
	uint16_t code;			/* reply code that decided, 0 if none */
	char enhanced[16];		/* "5.1.1" or "" */
	char reply[256];		/* deciding reply line */
	char dest[128];			/* "host[ip]:port" actually talked to */
	bool cached;			/* the verdict was stored and published */
	uint64_t elapsed_ms;
	const char *transcript;		/* "C: ...\nS: ...\n", valid during the callback */
	size_t transcript_len;
};
typedef void (*core_verify_cb)(const struct core_verify_result *res, void *arg);

/*
 * Start a callout for addr now (its own session, ahead of the queue, not
 * deduplicated with background probes, not subject to the circuit breaker).
 * Its result is stored and published like any other.  0 and *id set when
 * started (cb runs later, exactly once unless cancelled); -errno when it
 * cannot start (cb is not called; err says why).
 */
int core_verify(const char *addr, core_verify_cb cb, void *arg, uint64_t *id, char *err,
		size_t errlen);

/* Forget a pending callback (the caller went away).  The callout itself runs
 * to completion and its result is still cached.  Unknown ids are ignored. */
void core_cancel(uint64_t id);

/* ---------------------------------------------------------------------- */
/* domains                                                                 */

enum core_health {
	CORE_H_UNKNOWN = 0,	/* never contacted */
	CORE_H_OK = 1,		/* last sessions succeeded */
	CORE_H_DEGRADED = 2,	/* recent temporary failures, breaker still closed */
	CORE_H_DOWN = 3,	/* circuit breaker open: failing open */
	CORE_H_UNVERIFIABLE = 4,/* destination refuses callouts: failing open */
};
const char *core_health_name(int h); /* "unknown", "ok", "degraded", "down", "unverifiable" */

struct core_domain_info {
	char name[RG_DOMAIN_MAX + 1];
	uint8_t mode;			/* enum dtable_mode */
	uint8_t miss_policy;		/* enum dtable_miss */
	bool case_sensitive;
	bool accept_all;
	uint64_t accept_all_checked_s;	/* last accept-all probe answered, 0 = never */
	bool failopen;			/* DT_F_FAILOPEN published */
	int health;			/* enum core_health */
	char dest[256];			/* configured "host:port,..." or "MX" */
	char dest_last[128];		/* "host[ip]:port" of the last session */
	uint64_t breaker_until_s;	/* breaker open until (realtime), 0 = closed */
	uint32_t consecutive_failures;
	uint32_t list_entries;		/* addresses from the static list */
	bool list_partial;		/* DT_F_LIST_PARTIAL published: misses pass */
	uint64_t list_unpublished;	/* listed addresses the table refused */
	uint32_t pending;		/* queued addresses */
	uint32_t sessions_open;
	/* counters since start */
	uint64_t callouts;		/* addresses checked by callout */
	uint64_t valid, invalid, tempfail, unverifiable;
	uint64_t sessions, connect_failures;
	char last_error[128];		/* last failure, human-readable, "" if none */
};
typedef int (*core_domain_fn)(const struct core_domain_info *d, void *arg);
/* Calls fn for each configured domain in config order; stops when fn returns
 * nonzero and returns that value; else 0. */
int core_domains_foreach(core_domain_fn fn, void *arg);

/* ---------------------------------------------------------------------- */
/* reload                                                                  */

/* Re-read the config file (same as SIGHUP).  On error the old config stays in
 * force and err says file:line: message.  Cached verdicts are kept. */
int core_reload(char *err, size_t errlen);

/* ---------------------------------------------------------------------- */
/* the policy service's question                                           */

struct core_check {
	char addr[RG_ADDR_MAX + 1];	/* canonical */
	int verdict;			/* enum core_verdict: VALID, INVALID, TEMPFAIL,
					 * UNVERIFIABLE, UNMANAGED, ACCEPT_ALL */
	uint8_t miss_policy;		/* the domain's enum dtable_miss (managed only) */
	bool failopen;			/* domain failing open (breaker/unverifiable) */
	bool from_cache;		/* answered without a callout */
	bool warn;			/* the domain's action is warn (dry run) */
	uint16_t reject_code;		/* 550, or 450 (reject_code) */
};
typedef void (*core_check_cb)(const struct core_check *res, void *arg);

/*
 * Judge one recipient as the data plane would, for the policy service.
 * Returns 0 with *out filled when the answer is known now (cached verdict,
 * list mode, unmanaged, accept-all, failing open); returns 1 when a callout was
 * queued (or joined an in-flight one): cb runs later exactly once, with *id
 * identifying it for core_cancel(); -errno for an address that does not parse.
 * A stale cached verdict is answered now and refreshed in the background.
 */
int core_check_recipient(const char *addr, struct core_check *out, core_check_cb cb,
			 void *arg, uint64_t *id);

/* ---------------------------------------------------------------------- */
/* harvest events (for the xdp module)                                     */

/*
 * The core drains MSG_EV_HARVEST records from the event rings, logs them,
 * and passes each to the hook set here (NULL to unset).  The xdp module sets
 * it in xdp_start().  The record is valid during the call only.
 */
typedef void (*core_harvest_fn)(const struct msg_event *ev, void *arg);
void core_set_harvest_hook(core_harvest_fn fn, void *arg);

/* ---------------------------------------------------------------------- */
/* the fleet (fleet.h): hooks the fleet module sets in fleet_start          */

/* One domain's callout budget, asked every time its callouts are scheduled. */
struct core_budget {
	const char *domain;
	uint32_t conn_rate, rcpt_rate;	/* configured, per second */
	uint32_t rcpt_burst;		/* the bucket's size */
	uint32_t max_conns;		/* configured dest_max_conns */
	uint32_t sessions_open;		/* this node's, now */
	bool waiting;			/* addresses wait for a session */
	double *conn, *rcpt;		/* tokens: granted ones are added */
	uint32_t *allowed_conns;	/* sessions this node may have open now */
};

struct core_fleet_hooks {
	/* a definite verdict learned here (callout, by hand): share it */
	void (*learned)(const char *addr, size_t len, const struct store_rec *rec, void *arg);
	/* a verdict removed here by hand */
	void (*deleted)(const char *addr, size_t len, void *arg);
	/* a callout for addr is about to be queued: true when the fleet takes
	 * the address (it answers later, exactly once, with core_fleet_apply or
	 * core_fleet_go); false: queue it now */
	bool (*gate)(const char *addr, size_t len, void *arg);
	void (*status)(struct core_fleet_status *st, void *arg);
	/* every event drained from the rings (rejections counted for the
	 * fleet's harvest protection, the data plane's harvest blocks shared) */
	void (*event)(const struct msg_event *ev, void *arg);
	/* a block or unblock by hand here: share it; false when not shared */
	bool (*block)(const char *prefix, uint32_t ttl_s, void *arg);
	bool (*unblock)(const char *prefix, void *arg);
	/* a domain's callout rate tokens and session slots: true when the
	 * fleet's shared budget hands them out; false: the domain refills its
	 * own bucket and opens up to dest_max_conns sessions */
	bool (*budget)(struct core_budget *b, void *arg);
	void *arg;
};
/* NULL unsets (fleet_stop). */
void core_set_fleet_hooks(const struct core_fleet_hooks *h);

/* A verdict from the fleet: into the store and the table (never shared
 * back); answers the address's callout waiting at the gate, if any.
 * 0, -ENOENT (domain not managed here), -EEXIST (a newer or protected
 * verdict is kept), -EINVAL, or -EIO. */
int core_fleet_apply(const char *addr, size_t len, const struct store_rec *rec);
/* A verdict removed on another node.  0 or -ENOENT. */
int core_fleet_del(const char *addr, size_t len);
/* The gate lets addr's callout go: this node calls out. */
void core_fleet_go(const char *addr, size_t len);
/* rcptctl block/unblock: share with the fleet.  true when shared (a fleet
 * is configured), false in single-box mode. */
bool core_fleet_block(const char *prefix, uint32_t ttl_s);
bool core_fleet_unblock(const char *prefix);
/* A harvest block decided elsewhere in the fleet: handed to the harvest
 * hook (the xdp module) as the data plane's own report would be. */
void core_fleet_harvest(const struct msg_event *ev);
/* A recipient refused outside the data plane (the policy service): counted
 * like the data plane's rejections (the fleet's harvest sums).  client is
 * an IPv4 or IPv6 address; anything else is ignored. */
void core_note_reject(const char *client);

/* ---------------------------------------------------------------------- */
/* Modules the daemon drives (xdp's under RG_HAVE_XDP, which control_lib sets).  *_start runs once after the shared memory, store and loop are up;
 * *_reload after every successful config reload (old config freed after it
 * returns); *_stop once at shut-down.  A nonzero return from *_start is fatal
 * at start-up (err says why); from *_reload it is logged and the module keeps
 * its previous settings.                                                   */

/* A service as the daemon drives it: started in table order after the
 * core, reloaded after each good reload, its counters listed by `stats`,
 * stopped in reverse order.  The table is control/services.h (main.c's);
 * the daemon knows the services only through it. */
struct core_service {
	const char *name;
	int (*start)(const struct config *cfg, char *err, size_t errlen);
	int (*reload)(const struct config *cfg, char *err, size_t errlen);
	void (*stop)(void);
	void (*stats)(core_stat_fn fn, void *arg);
};

int ctl_start(const struct config *cfg, char *err, size_t errlen);
int ctl_reload(const struct config *cfg, char *err, size_t errlen);
void ctl_stop(void);

int policy_start(const struct config *cfg, char *err, size_t errlen);
int policy_reload(const struct config *cfg, char *err, size_t errlen);
void policy_stop(void);

int xdp_start(const struct config *cfg, char *err, size_t errlen);
int xdp_reload(const struct config *cfg, char *err, size_t errlen);
void xdp_stop(void);
/* Counters for `rcptctl stats` (groups "ctl", "policy"). */
void ctl_stats_foreach(core_stat_fn fn, void *arg);
void policy_stats_foreach(core_stat_fn fn, void *arg);
/* Counters for `rcptctl stats` (group "xdp"). */
void xdp_stats_foreach(core_stat_fn fn, void *arg);

#endif
