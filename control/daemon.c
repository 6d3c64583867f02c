/*
 * daemon.c — rcptgated's core: everything that decides and keeps verdicts:
 * the miss and event rings drained every turn, callout results turned into
 * stored and published verdicts, static lists, background refresh, the
 * control verbs (core.h), signals and reload.  The event loop is loop.c;
 * the services (control socket, policy service, XDP) come in through the
 * table daemon_opts carries (services.h).
 *
 * Order of a loop turn: wait for events (bounded by the next timer and the
 * ring poll interval), dispatch them, run due timers (loop.c), then this
 * file's turn hook: the callout scheduler, the rings, the turn's verdicts made durable
 * (store_commit) and only after that publish them into the shared table:
 * a verdict the data plane has seen is always one a restart will find.
 * Thread: main thread only.
 */
#include "daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "callout.h"
#include "dns.h"
#include "dtable.h"
#include "listen.h"
#include "loop.h"
#include "log.h"
#include "publish.h"
#include "rings.h"
#include "rtable.h"
#include "refusals.h"
#include "sdnotify.h"
#include "stats.h"
#include "store.h"
#include "ttl.h"
#include "list.h"

#define DAEMON_VERSION "0.1.0"
#define RING_POLL_ACTIVE_MS 2	/* ring poll interval while records flow */
#define RING_POLL_IDLE_MS 10	/* ... and after a quiet second */
#define RING_BUDGET 512u	/* records per ring per turn */
#define REFRESH_SCAN_MIN 2000u	/* store records examined per second, at least ... */
#define REFRESH_PASS_S 60u	/* ... and enough for a whole pass per minute */
#define REFRESH_BATCH 1024u	/* refreshes (and expiry deletions) per second */
#define REBUILD_CHUNK 8192u

#define CORE_STATS_LIST(X)                                                              \
	X(MISSES, "misses", "miss records drained from the rings")                      \
	X(MISS_UNMANAGED, "miss_unmanaged", "misses for domains not configured")        \
	X(MISS_LIST, "miss_list_mode", "misses for list-mode domains (no callout)")     \
	X(MISS_CACHED, "miss_cached", "misses already answered by the store (republished)") \
	X(MISS_KEY_MISMATCH, "miss_key_mismatch", "misses whose key did not match their address") \
	X(MISS_BAD, "miss_bad", "misses whose address did not parse")                   \
	X(EVENTS, "events", "event records drained")                                    \
	X(HARVEST, "harvest_events", "harvest reports")                                 \
	X(WARNINGS, "warnings", "refusals not made (action = warn): forwarded and logged") \
	X(RING_BAD, "ring_bad_records", "malformed ring records skipped")               \
	X(STORED, "verdicts_stored", "verdicts written to the store")                   \
	X(KEPT, "verdicts_kept", "failed probes that left a cached verdict in place")   \
	X(STORE_ERRORS, "store_errors", "store writes or commits that failed")          \
	X(NOT_DURABLE, "verdicts_not_durable", "verdicts not published: their store transaction failed") \
	X(PUBLISHED, "verdicts_published", "verdicts written to the shared table")      \
	X(PUBLISH_ERRORS, "publish_errors", "table writes that failed (table full)")    \
	X(REFRESHES, "refreshes", "background re-checks started")                       \
	X(EXPIRED, "store_expired", "expired verdicts removed from the store")          \
	X(CHECKS, "checks", "policy-service checks")                                    \
	X(VERIFIES, "verifies", "verify requests")                                      \
	X(SETS, "sets", "verdicts set by hand")                                         \
	X(DELS, "dels", "verdicts deleted by hand")                                     \
	X(FLUSHES, "flushes", "flush requests")                                         \
	X(RELOADS, "reloads", "successful reloads")                                     \
	X(RELOAD_ERRORS, "reload_errors", "reloads refused (bad config)")                \
	X(LIST_LOADS, "list_loads", "static lists read and published")                  \
	X(LIST_ERRORS, "list_errors", "static lists that could not be read (old list kept)") \
	X(LIST_PARTIAL, "list_partial", "closed lists found not published whole (misses pass)") \
	X(LIST_UNPUBLISHED, "list_unpublished", "listed addresses the table could not take")

enum core_stat {
#define CS_ENUM(id, name, help) CS_##id,
	CORE_STATS_LIST(CS_ENUM)
#undef CS_ENUM
	CS__COUNT
};
static const char *const cs_names[] = {
#define CS_NAME(id, name, help) name,
	CORE_STATS_LIST(CS_NAME)
#undef CS_NAME
};
static const char *const cs_helps[] = {
#define CS_HELP(id, name, help) help,
	CORE_STATS_LIST(CS_HELP)
#undef CS_HELP
};

/* a waiter for a callout result: verify or policy check */
enum { W_CHECK = 1, W_VERIFY = 2 };
struct waiter {
	struct callout_waiter link;	/* first: callout.c chains these */
	struct waiter *id_next;
	uint64_t id;
	int kind;
	bool cancelled;
	core_check_cb ccb;
	core_verify_cb vcb;
	void *arg;
	uint64_t started_ms;
};
#define WAITER_BUCKETS 1024u

/* a static list of one domain: its addresses' table keys (list.h) */
struct dlist {
	char name[RG_DOMAIN_MAX + 1];
	struct list_keys keys;
	bool partial;		/* not published whole: DT_F_LIST_PARTIAL */
	bool unread;		/* could not be read and none before: says nothing */
	uint64_t tried_ms;	/* last publication */
	uint64_t unpublished;	/* keys the table refused at the last publication */
};

struct pubq_ent {
	char addr[RG_ADDR_MAX + 1];
	uint16_t len;
	bool del;
	uint8_t verdict, source, flags;
	uint64_t expiry;
	uint64_t txn;		/* store transaction that holds it */
};

static struct {
	/* loop: the clock as this daemon's turn last saw it (loop.c has its own) */
	int sigfd;
	uint64_t now_ms, wall_s;
	bool loop_ready, stop;
	uint64_t last_ring_ms;
	/* core */
	bool core_ready;
	struct config *cfg;
	struct store *store;
	struct publish pub;
	struct rings_stats rst;
	uint64_t st[CS__COUNT];
	uint64_t started_s, loaded_s;
	struct waiter *wb[WAITER_BUCKETS];
	uint64_t next_waiter_id;
	struct dlist *lists;
	size_t nlists;
	bool lists_flushing;	/* table being emptied: list domains flagged partial */
	struct pubq_ent *pq;
	size_t npq, pq_cap;
	char refresh_cursor[RG_ADDR_MAX + 1];
	core_harvest_fn harvest_fn;
	void *harvest_arg;
	struct core_fleet_hooks fleet;	/* all NULL without a fleet */
	bool log_stderr_forced;
	char config_path[CONFIG_PATH_MAX];
	const struct core_service *services;
	unsigned nservices, nstarted;
} dm = {.sigfd = -1};

#define CS(x) (dm.st[CS_##x]++)

/* ---------------------------------------------------------------------- */
/* the loop (loop.c) and this daemon's turn */

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void clock_update(void)
{
	dm.now_ms = loop_now_ms();
	dm.wall_s = loop_wall_s();
}

static void core_turn(void);

/* After every loop turn: the callout scheduler, then the rings, the store
 * commit and the publication (core_turn). */
static void daemon_turn(void *arg)
{
	(void)arg;
	clock_update();
	callout_tick(dm.now_ms);
	core_turn();
}

int daemon_loop_init(void)
{
	if (dm.loop_ready)
		return 0;
	int r = loop_init();
	if (r)
		return r;
	if ((r = loop_on_turn(daemon_turn, NULL))) {
		loop_fini();
		return r;
	}
	dm.loop_ready = true;
	clock_update();
	return 0;
}

void daemon_loop_fini(void)
{
	loop_fini();
	dm.loop_ready = false;
}

int daemon_loop_once(int timeout_ms)
{
	return loop_once(timeout_ms);
}

/* ---------------------------------------------------------------------- */
/* names */

const char *core_verdict_name(int v)
{
	static const char *const n[] = {"none", "valid", "invalid", "tempfail",
					"unverifiable", "unmanaged", "accept_all"};
	return v >= 0 && (size_t)v < sizeof(n) / sizeof(n[0]) ? n[v] : "?";
}

const char *core_source_name(int s)
{
	static const char *const n[] = {"callout", "list", "manual", "policy"};
	return s >= 0 && (size_t)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

const char *core_health_name(int h)
{
	static const char *const n[] = {"unknown", "ok", "degraded", "down", "unverifiable"};
	return h >= 0 && (size_t)h < sizeof(n) / sizeof(n[0]) ? n[h] : "?";
}

const struct config *core_config(void)
{
	return dm.cfg;
}

/* ---------------------------------------------------------------------- */
/* publishing: the turn's verdicts go to the store, are committed, then
 * written to the table */

static int pubq_add(const char *addr, size_t len, bool del, uint8_t verdict, uint8_t source,
		    uint8_t flags, uint64_t expiry)
{
	if (dm.npq == dm.pq_cap) {
		size_t n = dm.pq_cap ? dm.pq_cap * 2 : 256;
		struct pubq_ent *np = realloc(dm.pq, n * sizeof(*np));
		if (!np)
			return -ENOMEM;
		dm.pq = np;
		dm.pq_cap = n;
	}
	struct pubq_ent *e = &dm.pq[dm.npq++];
	memcpy(e->addr, addr, len);
	e->addr[len] = 0;
	e->len = (uint16_t)len;
	e->del = del;
	e->verdict = verdict;
	e->source = source;
	e->flags = flags;
	e->expiry = expiry;
	e->txn = store_txn(dm.store);
	return 0;
}

static int put_retry(const char *addr, size_t len, uint8_t verdict, uint8_t source,
		     uint8_t flags, uint64_t expiry);

static void pubq_flush(void)
{
	if (dm.store && store_dirty(dm.store) && store_commit(dm.store)) {
		CS(STORE_ERRORS);
		log_kind(LOG_K_GENERAL, LOG_ERR, "store commit failed: verdicts of this turn not durable");
	}
	for (size_t i = 0; i < dm.npq; i++) {
		struct pubq_ent *e = &dm.pq[i];
		/* only what a restart will find goes to the table (a failed write
		 * aborts the whole transaction, earlier verdicts of it included);
		 * an entry whose transaction id was never used was read from
		 * committed data (a cached verdict put back) */
		if (dm.store && e->txn != store_txn(dm.store) && !store_durable(dm.store, e->txn)) {
			CS(NOT_DURABLE);
			continue;
		}
		int r = e->del ? publish_del(&dm.pub, e->addr, e->len)
			       : put_retry(e->addr, e->len, e->verdict, e->source, e->flags, e->expiry);
		if (!e->del) {
			if (r) {
				CS(PUBLISH_ERRORS);
			} else {
				CS(PUBLISHED);
			}
		}
	}
	dm.npq = 0;
}

/* A put that finds the probe window full drives the table's growth to the
 * end and tries once more. */
static int put_retry(const char *addr, size_t len, uint8_t verdict, uint8_t source,
		     uint8_t flags, uint64_t expiry)
{
	int r = publish_put(&dm.pub, addr, len, verdict, source, flags, expiry);
	if (r != -ENOSPC)
		return r;
	for (int i = 0; i < 64 && rtable_maintain(&dm.pub.w, UINT32_MAX, mono_ms() * 1000000ull); i++)
		if (!dm.pub.w.migrating)
			break;
	return publish_put(&dm.pub, addr, len, verdict, source, flags, expiry);
}

/* Store a record (durable at the end of the turn) and queue its publication. */
static void verdict_record(const char *addr, size_t len, const struct store_rec *rec, bool publish)
{
	int r = store_put(dm.store, addr, len, rec);
	if (r) {
		/* not durable, so not published either: the data plane goes on
		 * treating the address as unknown (forwarded or deferred) */
		CS(STORE_ERRORS);
		log_kind(LOG_K_CALLOUT, LOG_ERR, "store: <%s> not written (%s); not published", addr,
			 r == -ENOSPC ? "store full: raise store_map_mb" : strerror(-r));
		return;
	}
	CS(STORED);
	if (publish)
		pubq_add(addr, len, false, rec->verdict, rec->source, rec->flags, rec->expiry);
}

/* Note that an address was asked about (for the refresh rule: verdicts are
 * refreshed only while in use).  Written at most once per TOUCH_INTERVAL_S. */
#define TOUCH_INTERVAL_S 3600u
static void touch(const char *addr, size_t len, struct store_rec *rec)
{
	if (dm.wall_s - rec->last_seen < TOUCH_INTERVAL_S)
		return;
	rec->last_seen = dm.wall_s;
	if (store_put(dm.store, addr, len, rec))
		CS(STORE_ERRORS);
}

/* ---------------------------------------------------------------------- */
/* address helpers */

/* Split at the last '@' and lowercase the domain into dom. */
static int addr_domain(const char *addr, size_t len, char *dom)
{
	size_t at = len;
	while (at > 0 && addr[at - 1] != '@')
		at--;
	if (at == 0 || at == len || len - at > RG_DOMAIN_MAX)
		return -EINVAL;
	for (size_t i = at; i < len; i++) {
		char c = addr[i];
		dom[i - at] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	dom[len - at] = 0;
	return 0;
}

/* Canonical form of user input; the domain's case rule applies. */
static int normalize(const char *in, char *out, char *dom, const struct config_dom **dc,
		     char *err, size_t errlen)
{
	size_t n = strlen(in);
	char tmp[RG_ADDR_MAX + 1];
	/* find the domain first (case rule), from a first case-insensitive pass */
	int len = addr_normalize(in, n, false, tmp, sizeof(tmp) - 1);
	if (len < 0) {
		if (err)
			snprintf(err, errlen, "%s: %s", in, addr_strerror(len));
		return -EINVAL;
	}
	if (addr_domain(tmp, (size_t)len, dom)) {
		if (err)
			snprintf(err, errlen, "%s: no domain", in);
		return -EINVAL;
	}
	const struct config_dom *d = dm.cfg ? config_domain(dm.cfg, dom) : NULL;
	if (d && d->case_sensitive) {
		len = addr_normalize(in, n, true, tmp, sizeof(tmp) - 1);
		if (len < 0) {
			if (err)
				snprintf(err, errlen, "%s: %s", in, addr_strerror(len));
			return -EINVAL;
		}
	}
	memcpy(out, tmp, (size_t)len);
	out[len] = 0;
	if (dc)
		*dc = d;
	return len;
}

/* ---------------------------------------------------------------------- */
/* static lists */

static struct dlist *list_find(const char *dom)
{
	for (size_t i = 0; i < dm.nlists; i++)
		if (!strcmp(dm.lists[i].name, dom))
			return &dm.lists[i];
	return NULL;
}

static bool list_has(const char *dom, const char *addr)
{
	struct dlist *l = list_find(dom);
	if (!l || !l->keys.n)
		return false;
	struct rg_key128 k;
	publish_key(&dm.pub, addr, strlen(addr), &k);
	return list_contains(&l->keys, &k);
}

static void list_free(struct dlist *l)
{
	list_keys_free(&l->keys);
}

/* A listed address is valid, from the list, for ever (the file is the source
 * of truth: not through the store). */
static int list_put_key(const struct rg_key128 *k, void *arg)
{
	static const struct rtable_val v = {.verdict = RT_VALID, .source = RT_SRC_LIST};
	(void)arg;
	int r = rtable_put(&dm.pub.w, k, &v);
	if (r)
		dm.pub.put_errors++;
	else
		dm.pub.puts++;
	return r;
}

static int list_skip_key(const struct rg_key128 *k, void *arg)
{
	(void)k;
	(void)arg;
	return 0;
}

/* Keys that left a list: out of the table now; collected (in key order) so
 * that what the store knows about them can be put back. */
struct list_gone {
	struct list_keys keys;
	size_t cap;
};

static int list_del_key(const struct rg_key128 *k, void *arg)
{
	struct list_gone *gone = arg;
	if (!rtable_del(&dm.pub.w, k))
		dm.pub.dels++;
	if (!gone || !store_count(dm.store))
		return 0; /* nothing to put back */
	if (gone->keys.n == gone->cap) {
		size_t nc = gone->cap ? gone->cap * 2 : 1024;
		struct rg_key128 *nk = realloc(gone->keys.k, nc * sizeof(*nk));
		if (!nk)
			return 0; /* not put back now; the store keeps it for a restart */
		gone->keys.k = nk;
		gone->cap = nc;
	}
	gone->keys.k[gone->keys.n++] = *k;
	return 0;
}

struct restore_ctx {
	const struct list_keys *gone;
	uint64_t restored;
};

static int restore_fn(const char *addr, size_t len, const struct store_rec *rec, void *arg)
{
	struct restore_ctx *c = arg;
	struct rg_key128 k;
	publish_key(&dm.pub, addr, len, &k);
	if (list_contains(c->gone, &k) && ttl_live(rec, dm.wall_s) &&
	    !publish_put(&dm.pub, addr, len, rec->verdict, rec->source, rec->flags, rec->expiry))
		c->restored++;
	return 0;
}

/* Addresses that left a list fall back to what the store knows (a verdict
 * set by hand, a callout's in mode both). */
static void list_restore(struct list_gone *g)
{
	struct list_keys *gone = &g->keys;
	if (!gone->n || !store_count(dm.store)) {
		list_keys_free(gone);
		return;
	}
	list_keys_sort(gone);
	struct restore_ctx c = {.gone = gone};
	char cursor[RG_ADDR_MAX + 1] = "", next[RG_ADDR_MAX + 1];
	for (;;) {
		next[0] = 0;
		long n = store_scan(dm.store, cursor, 4096, restore_fn, &c, next);
		if (n <= 0 || !next[0])
			break;
		memcpy(cursor, next, sizeof(cursor));
	}
	list_keys_free(gone);
}

static void list_set_partial(struct dlist *l, bool partial, const char *why)
{
	if (partial && !l->partial) {
		CS(LIST_PARTIAL);
		log_msg(LOG_ERR, "list of %s not published whole (%s): its unlisted recipients pass "
			"(the destination decides) until it is", l->name, why);
	} else if (!partial && l->partial) {
		log_msg(LOG_NOTICE, "list of %s published whole: unlisted recipients are refused "
			"again", l->name);
	}
	l->partial = partial;
}

/* Bring the table from `old` (what it holds of this list) to l: only the
 * difference, or every key when the table may lack some (first load, after
 * a partial publication or a flush). */
static void list_apply(struct dlist *l, const struct list_keys *old, bool full)
{
	static const struct list_keys none;
	struct list_gone gone = {0};
	uint64_t failed;
	if (full) {
		list_diff(old, &l->keys, list_skip_key, list_del_key, &gone);
		failed = list_diff(&none, &l->keys, list_put_key, list_del_key, NULL);
	} else {
		failed = list_diff(old, &l->keys, list_put_key, list_del_key, &gone);
	}
	list_restore(&gone);
	l->tried_ms = daemon_now_ms();
	l->unpublished = failed;
	dm.st[CS_LIST_UNPUBLISHED] += failed;
	if (failed) {
		char why[96];
		snprintf(why, sizeof(why), "the table refused %llu addresses: raise shm_table_max_log2",
			 (unsigned long long)failed);
		list_set_partial(l, true, why);
	} else {
		list_set_partial(l, false, NULL);
	}
}

/* (Re)load every domain's list; entries gone from a list leave the table,
 * entries still listed never do. */
static void lists_reload(const struct config *cfg)
{
	static const struct list_keys none;
	struct dlist *nl = calloc(cfg->ndom ? cfg->ndom : 1, sizeof(*nl));
	size_t nn = 0;
	if (!nl) {
		log_msg(LOG_ERR, "lists: out of memory; keeping the old lists");
		return;
	}
	for (unsigned i = 0; i < cfg->ndom; i++) {
		const struct config_dom *d = &cfg->dom[i];
		if (!d->list[0] && !d->list_command[0])
			continue;
		struct dlist *old = list_find(d->name), *l = &nl[nn++];
		snprintf(l->name, sizeof(l->name), "%s", d->name);
		l->partial = old && old->partial;
		struct list_source src = {.domain = d->name, .file = d->list,
					  .command = d->list_command,
					  .case_sensitive = d->case_sensitive};
		struct list_read_stats st;
		char err[CONFIG_CMD_MAX + 128];
		uint64_t t0 = mono_ms();
		int r = list_read(&src, shm_hdr(&dm.pub.map)->hash_key, &l->keys, &st, err,
				  sizeof(err));
		if (r) {
			CS(LIST_ERRORS);
			if (old) {
				/* unreadable now: keep the old list rather than open the gate */
				log_msg(LOG_ERR, "%s; the list of %s stays as it was", err, d->name);
				l->keys = old->keys;
				l->unpublished = old->unpublished;
				l->unread = old->unread;
				old->keys = none;
			} else {
				log_msg(LOG_ERR, "%s", err);
				l->unread = true;
				list_set_partial(l, true, "its list could not be read");
			}
			continue;
		}
		uint64_t t1 = mono_ms();
		list_apply(l, old ? &old->keys : &none, !old || old->partial);
		CS(LIST_LOADS);
		log_msg(LOG_INFO, "list %s: %zu addresses for %s (%llu lines, %llu bad, %llu of other "
			"domains, %llu repeated); read in %llu ms, published in %llu ms",
			d->list[0] ? d->list : d->list_command, l->keys.n, d->name,
			(unsigned long long)st.lines, (unsigned long long)st.bad,
			(unsigned long long)st.other, (unsigned long long)st.dups,
			(unsigned long long)(t1 - t0), (unsigned long long)(mono_ms() - t1));
	}
	/* domains no longer listed: their entries leave */
	for (size_t i = 0; i < dm.nlists; i++) {
		struct dlist *old = &dm.lists[i];
		bool kept = false;
		for (size_t j = 0; j < nn; j++)
			kept |= !strcmp(nl[j].name, old->name);
		if (!kept && old->keys.n) {
			struct list_gone gone = {0};
			list_diff(&old->keys, &none, list_skip_key, list_del_key, &gone);
			list_restore(&gone);
		}
		list_free(old);
	}
	free(dm.lists);
	dm.lists = nl;
	dm.nlists = nn;
	/* give back the heap the reading and sorting used */
	malloc_trim(0);
}

/* ---------------------------------------------------------------------- */
/* domains in the domain table */

static void domain_publish(const struct config_dom *c)
{
	struct callout_dom *d = callout_domain(c->name);
	struct dtable_info info = {.mode = c->mode, .miss_policy = c->miss_policy,
				   .harvest_threshold = c->harvest_threshold};
	info.flags = 0;
	if (c->case_sensitive)
		info.flags |= DT_F_CASE_SENSITIVE;
	if (c->action == CONFIG_ACTION_WARN)
		info.flags |= DT_F_WARN;
	if (c->reject_code == 450)
		info.flags |= DT_F_REJECT_450;
	if (d && d->accept_all)
		info.flags |= DT_F_ACCEPT_ALL;
	if (d && callout_failing_open(d, daemon_now_ms()))
		info.flags |= DT_F_FAILOPEN;
	struct dlist *l = list_find(c->name);
	if (l && (l->partial || dm.lists_flushing))
		info.flags |= DT_F_LIST_PARTIAL;
	if (publish_domain(&dm.pub, c->name, &info))
		log_msg(LOG_ERR, "domain table full: %s not published", c->name);
}

static void domains_publish(const struct config *cfg, const struct config *old)
{
	if (old)
		for (unsigned i = 0; i < old->ndom; i++)
			if (!config_domain(cfg, old->dom[i].name))
				publish_domain_del(&dm.pub, old->dom[i].name);
	for (unsigned i = 0; i < cfg->ndom; i++)
		domain_publish(&cfg->dom[i]);
	__atomic_store_n(&shm_hdr(&dm.pub.map)->dtable_count, cfg->ndom, __ATOMIC_RELAXED);
}

static void on_domain_changed(struct callout_dom *d, void *arg)
{
	(void)arg;
	if (!dm.core_ready)
		return;
	const struct config_dom *c = config_domain(dm.cfg, d->cfg.name);
	if (c)
		domain_publish(c);
}

/* ---------------------------------------------------------------------- */
/* waiters */

static struct waiter *waiter_new(int kind, void *arg)
{
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->kind = kind;
	w->arg = arg;
	w->id = ++dm.next_waiter_id;
	w->started_ms = daemon_now_ms();
	struct waiter **b = &dm.wb[w->id % WAITER_BUCKETS];
	w->id_next = *b;
	*b = w;
	return w;
}

static void waiter_free(struct waiter *w)
{
	struct waiter **b = &dm.wb[w->id % WAITER_BUCKETS];
	while (*b && *b != w)
		b = &(*b)->id_next;
	if (*b)
		*b = w->id_next;
	free(w);
}

void core_cancel(uint64_t id)
{
	for (struct waiter *w = dm.wb[id % WAITER_BUCKETS]; w; w = w->id_next)
		if (w->id == id) {
			w->cancelled = true;
			return;
		}
}

/* ---------------------------------------------------------------------- */
/* callout results */

/* callout latency histogram (core_callout_latency) */
const uint32_t core_latency_ms[CORE_LATENCY_BUCKETS] = {5,   10,   25,   50,   100,   250,
							 500, 1000, 2500, 5000, 10000, 30000};
static struct {
	uint64_t bucket[CORE_LATENCY_BUCKETS + 1]; /* not cumulative; last: above */
	uint64_t sum_ms;
} lat;

static void latency_observe(uint64_t ms)
{
	unsigned i = 0;
	while (i < CORE_LATENCY_BUCKETS && ms > core_latency_ms[i])
		i++;
	lat.bucket[i]++;
	lat.sum_ms += ms;
}

void core_callout_latency(struct core_latency *out)
{
	uint64_t c = 0;
	for (unsigned i = 0; i <= CORE_LATENCY_BUCKETS; i++) {
		c += lat.bucket[i];
		out->le[i] = c;
	}
	out->sum_ms = lat.sum_ms;
}

static void on_result(const struct callout_result *r, void *arg)
{
	(void)arg;
	if (r->flags & CALLOUT_F_PROBE) {
		log_kind(LOG_K_CALLOUT, LOG_INFO, "callout: accept-all probe %s: %s (%s)", r->addr,
			 core_verdict_name(r->verdict), r->reply);
		return;
	}
	latency_observe(r->elapsed_ms);
	const struct config_dom *dc = dm.cfg ? config_domain(dm.cfg, r->domain) : NULL;
	bool cached = false;
	uint64_t now = daemon_wall_s();
	if (r->flags & CALLOUT_F_FLEET) {
		cached = true; /* core_fleet_apply stored and published it */
	} else if (dc && dm.core_ready) {
		struct store_rec old, rec;
		bool have = !store_get(dm.store, r->addr, r->len, &old);
		/* a verdict set by hand or from a list is replaced only by verify */
		bool protect = have && old.source != RT_SRC_CALLOUT &&
			       !(r->flags & CALLOUT_F_VERIFY) && ttl_live(&old, now);
		/* on an accept-all destination, or from a backup MX (store and
		 * forward: it takes everything), a 2xx says nothing about the address */
		bool says_nothing = r->verdict == CORE_V_ACCEPT_ALL ||
				    (r->backup && r->verdict == CORE_V_VALID);
		enum ttl_outcome o = (protect || says_nothing) ?
					     TTL_NONE :
					     ttl_apply(dc, have ? &old : NULL, r->verdict, now, &rec);
		if (o == TTL_STORE) {
			rec.code = r->code;
			snprintf(rec.reply, sizeof(rec.reply), "%s", r->reply);
			verdict_record(r->addr, r->len, &rec, true);
			cached = true;
			if (dm.fleet.learned)
				dm.fleet.learned(r->addr, r->len, &rec, dm.fleet.arg);
		} else if (o == TTL_KEEP) {
			CS(KEPT);
			verdict_record(r->addr, r->len, &rec, true); /* clears the stale flag */
		}
	}
	if ((!dm.cfg || dm.cfg->log_callouts) && !(r->flags & CALLOUT_F_FLEET))
		log_kind(LOG_K_CALLOUT, LOG_INFO, "callout: <%s>: %s%s via %s in %llu ms: %s", r->addr,
			 core_verdict_name(r->verdict),
			 (r->flags & CALLOUT_F_REFRESH) ? " (refresh)"
			 : r->backup && r->verdict == CORE_V_VALID ? " (backup MX, not cached)" : "",
			 r->dest[0] ? r->dest : "-", (unsigned long long)r->elapsed_ms, r->reply);
	struct callout_waiter *cw = r->waiters;
	while (cw) {
		struct waiter *w = (struct waiter *)cw;
		cw = cw->next;
		if (!w->cancelled) {
			if (w->kind == W_VERIFY && w->vcb) {
				struct core_verify_result vr;
				memset(&vr, 0, sizeof(vr));
				snprintf(vr.addr, sizeof(vr.addr), "%s", r->addr);
				vr.verdict = r->verdict;
				vr.code = r->code;
				snprintf(vr.enhanced, sizeof(vr.enhanced), "%s", r->enh);
				snprintf(vr.reply, sizeof(vr.reply), "%s", r->reply);
				snprintf(vr.dest, sizeof(vr.dest), "%s", r->dest);
				vr.cached = cached;
				vr.elapsed_ms = daemon_now_ms() - w->started_ms;
				vr.transcript = r->transcript ? r->transcript : "";
				vr.transcript_len = r->transcript ? r->transcript_len : 0;
				w->vcb(&vr, w->arg);
			} else if (w->kind == W_CHECK && w->ccb) {
				struct core_check c;
				memset(&c, 0, sizeof(c));
				snprintf(c.addr, sizeof(c.addr), "%s", r->addr);
				c.verdict = r->verdict;
				c.miss_policy = dc ? dc->miss_policy : DT_MISS_PASS;
				c.warn = dc && dc->action == CONFIG_ACTION_WARN;
				c.reject_code = dc ? dc->reject_code : 550;
				struct callout_dom *d = callout_domain(r->domain);
				c.failopen = d && callout_failing_open(d, daemon_now_ms());
				w->ccb(&c, w->arg);
			}
		}
		waiter_free(w);
	}
}

/* ---------------------------------------------------------------------- */
/* rings */

static void on_miss(const struct msg_miss *m, void *arg)
{
	(void)arg;
	CS(MISSES);
	char addr[RG_ADDR_MAX + 1], dom[RG_DOMAIN_MAX + 1];
	size_t len = m->len;
	memcpy(addr, m->addr, len);
	addr[len] = 0;
	if (memchr(addr, 0, len) || addr_domain(addr, len, dom)) {
		CS(MISS_BAD);
		return;
	}
	struct rg_key128 k;
	publish_key(&dm.pub, addr, len, &k);
	if (k.hi != m->key_hi || k.lo != m->key_lo) {
		/* the planes disagree on a key: a hash secret or canonical form
		 * mismatch; verdicts would never be found, so say it loudly */
		if (dm.st[CS_MISS_KEY_MISMATCH]++ < 10)
			log_msg(LOG_ERR, "miss <%s>: the data plane's key differs from the table's; "
				"is it attached to %s?", addr, dm.cfg->shm_path);
	}
	const struct config_dom *dc = config_domain(dm.cfg, dom);
	if (!dc) {
		CS(MISS_UNMANAGED);
		return;
	}
	if (dc->mode == DT_MODE_LIST) {
		CS(MISS_LIST);
		return;
	}
	struct callout_dom *cd = callout_domain(dom);
	if (cd && cd->accept_all)
		return; /* nothing to learn: the destination takes any local part */
	struct store_rec rec;
	if (!store_get(dm.store, addr, len, &rec) && ttl_live(&rec, dm.wall_s)) {
		/* known but not (or no longer) in the table: put it back */
		CS(MISS_CACHED);
		touch(addr, len, &rec);
		pubq_add(addr, len, false, rec.verdict, rec.source, rec.flags, rec.expiry);
		if (!ttl_refresh_due(&rec, dm.wall_s))
			return;
	}
	callout_submit(addr, len, 0, NULL);
}

static void on_event(const struct msg_event *ev, void *arg)
{
	(void)arg;
	CS(EVENTS);
	log_event(ev);
	refusals_note(ev);
	if (ev->type == MSG_EV_WARN)
		CS(WARNINGS);
	if (ev->type == MSG_EV_HARVEST) {
		CS(HARVEST);
		if (dm.harvest_fn)
			dm.harvest_fn(ev, dm.harvest_arg);
	}
	if (dm.fleet.event)
		dm.fleet.event(ev, dm.fleet.arg);
}

void core_set_harvest_hook(core_harvest_fn fn, void *arg)
{
	dm.harvest_fn = fn;
	dm.harvest_arg = arg;
}

/* ---------------------------------------------------------------------- */
/* the fleet (fleet.c): verdicts learned elsewhere, the callout gate */

void core_set_fleet_hooks(const struct core_fleet_hooks *h)
{
	if (h)
		dm.fleet = *h;
	else
		memset(&dm.fleet, 0, sizeof(dm.fleet));
}

static bool fleet_gate(const char *addr, size_t len, void *arg)
{
	(void)arg;
	return dm.fleet.gate && dm.fleet.gate(addr, len, dm.fleet.arg);
}

static bool fleet_budget(const struct callout_dom *d, double *conn, double *rcpt,
			 uint32_t *max_conns, void *arg)
{
	(void)arg;
	const struct config_dom *c = &d->cfg;
	struct core_budget b = {
		.domain = c->name,
		.conn_rate = c->dest_conn_rate,
		.rcpt_rate = c->dest_rcpt_rate,
		.rcpt_burst = c->dest_rcpt_rate > c->batch ? c->dest_rcpt_rate : c->batch,
		.max_conns = c->dest_max_conns,
		.sessions_open = d->sessions_open,
		.waiting = d->nqueued > d->reserved,
		.conn = conn,
		.rcpt = rcpt,
		.allowed_conns = max_conns,
	};
	return dm.fleet.budget && dm.fleet.budget(&b, dm.fleet.arg);
}

int core_fleet_apply(const char *addr, size_t len, const struct store_rec *in)
{
	char dom[RG_DOMAIN_MAX + 1];
	if (!dm.core_ready || len == 0 || len > RG_ADDR_MAX || memchr(addr, 0, len) ||
	    addr_domain(addr, len, dom) || (in->verdict != RT_VALID && in->verdict != RT_INVALID))
		return -EINVAL;
	const struct config_dom *dc = config_domain(dm.cfg, dom);
	/* not ours to judge, or a closed list here (only a verdict set by hand
	 * overrides the list, as on this node) */
	if (!dc || (dc->mode == DT_MODE_LIST && in->source != RT_SRC_MANUAL))
		return -ENOENT;
	struct store_rec old, rec = *in;
	uint64_t now = daemon_wall_s();
	if (!ttl_live(&rec, now))
		return -EEXIST;
	bool have = !store_get(dm.store, addr, len, &old) && ttl_live(&old, now);
	/* the newer verdict wins; one set here by hand is replaced only by one
	 * set by hand (anywhere) */
	if (have && (old.updated > rec.updated ||
		     (old.source == RT_SRC_MANUAL && rec.source != RT_SRC_MANUAL)))
		return -EEXIST;
	rec.version = STORE_REC_VERSION;
	/* in use here since then, or not at all: refreshed only while asked about */
	rec.last_seen = have && old.last_seen > rec.updated ? old.last_seen : rec.updated;
	char a[RG_ADDR_MAX + 1];
	memcpy(a, addr, len);
	a[len] = 0;
	verdict_record(a, len, &rec, !list_has(dom, a));
	callout_gate_answer(a, len, rec.verdict == RT_VALID ? CORE_V_VALID : CORE_V_INVALID);
	return 0;
}

int core_fleet_del(const char *addr, size_t len)
{
	char dom[RG_DOMAIN_MAX + 1], a[RG_ADDR_MAX + 1];
	if (!dm.core_ready || len == 0 || len > RG_ADDR_MAX || memchr(addr, 0, len) ||
	    addr_domain(addr, len, dom))
		return -EINVAL;
	memcpy(a, addr, len);
	a[len] = 0;
	int r = store_del(dm.store, a, len);
	if (r)
		return r;
	if (!list_has(dom, a))
		pubq_add(a, len, true, 0, 0, 0, 0);
	return 0;
}

void core_fleet_go(const char *addr, size_t len)
{
	callout_gate_open(addr, len);
}

bool core_fleet_block(const char *prefix, uint32_t ttl_s)
{
	return dm.fleet.block && dm.fleet.block(prefix, ttl_s, dm.fleet.arg);
}

bool core_fleet_unblock(const char *prefix)
{
	return dm.fleet.unblock && dm.fleet.unblock(prefix, dm.fleet.arg);
}

void core_note_reject(const char *client)
{
	struct msg_event ev;
	if (!dm.fleet.event || !client)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = MSG_EV_REJECT;
	ev.code = 550;
	if (inet_pton(AF_INET, client, ev.client_ip) == 1)
		ev.family = 4;
	else if (inet_pton(AF_INET6, client, ev.client_ip) == 1)
		ev.family = 6;
	else
		return;
	dm.fleet.event(&ev, dm.fleet.arg);
}

void core_fleet_harvest(const struct msg_event *ev)
{
	if (dm.harvest_fn)
		dm.harvest_fn(ev, dm.harvest_arg);
}

/* ---------------------------------------------------------------------- */
/* background refresh and store expiry */

struct scan_ctx {
	char (*refresh)[RG_ADDR_MAX + 1];
	size_t nrefresh, cap;
	char (*expired)[RG_ADDR_MAX + 1];
	size_t nexpired;
};

static int scan_fn(const char *addr, size_t len, const struct store_rec *rec, void *arg)
{
	struct scan_ctx *c = arg;
	if (!ttl_live(rec, dm.wall_s)) {
		if (c->nexpired < c->cap) {
			memcpy(c->expired[c->nexpired], addr, len + 1);
			c->nexpired++;
		}
		/* full: stop here, the next scan resumes after this record */
		return c->nexpired == c->cap;
	}
	if (!ttl_refresh_due(rec, dm.wall_s))
		return 0;
	/* refreshed only while in use: not asked about for a whole TTL, it expires */
	uint64_t ttl = rec->expiry > rec->updated ? rec->expiry - rec->updated : 0;
	if (rec->last_seen && ttl && dm.wall_s - rec->last_seen > ttl)
		return 0;
	if (c->nrefresh < c->cap) {
		memcpy(c->refresh[c->nrefresh], addr, len + 1);
		c->nrefresh++;
	}
	return c->nrefresh == c->cap;
}

static void refresh_scan(void *arg)
{
	(void)arg;
	if (!dm.core_ready)
		return;
	/* keep background work below half the queue */
	if (callout_nqueued() > dm.cfg->queue_max / 2)
		return;
	static char bufr[REFRESH_BATCH][RG_ADDR_MAX + 1], bufe[REFRESH_BATCH][RG_ADDR_MAX + 1];
	struct scan_ctx c = {.refresh = bufr, .expired = bufe, .cap = REFRESH_BATCH};
	char next[RG_ADDR_MAX + 1];
	uint64_t budget = store_count(dm.store) / REFRESH_PASS_S;
	if (budget < REFRESH_SCAN_MIN)
		budget = REFRESH_SCAN_MIN;
	long n = store_scan(dm.store, dm.refresh_cursor, budget, scan_fn, &c, next);
	if (n < 0)
		return;
	memcpy(dm.refresh_cursor, next, sizeof(next));
	for (size_t i = 0; i < c.nexpired; i++) {
		const char *a = c.expired[i];
		if (!store_del(dm.store, a, strlen(a)))
			CS(EXPIRED);
	}
	for (size_t i = 0; i < c.nrefresh; i++) {
		const char *a = c.refresh[i];
		size_t len = strlen(a);
		char dom[RG_DOMAIN_MAX + 1];
		if (addr_domain(a, len, dom) || !config_domain(dm.cfg, dom) || callout_pending(a, len))
			continue;
		if (callout_submit(a, len, CALLOUT_F_REFRESH, NULL) == 0) {
			CS(REFRESHES);
			struct store_rec rec;
			if (!store_get(dm.store, a, len, &rec))
				pubq_add(a, len, false, rec.verdict, rec.source, rec.flags | RT_F_STALE,
					 rec.expiry);
		}
	}
}

/* ---------------------------------------------------------------------- */
/* per-turn work */

static void core_turn(void)
{
	if (!dm.core_ready)
		return;
	uint64_t now = dm.now_ms;
	unsigned got = rings_drain(&dm.pub.map, RING_BUDGET, on_miss, on_event, NULL, &dm.rst);
	if (got)
		dm.last_ring_ms = now;
	pubq_flush();
	publish_tick(&dm.pub, now, dm.wall_s);
}

static void housekeeping(void *arg)
{
	(void)arg;
	log_tick(daemon_now_ms());
	/* a list the table could not take whole (a data plane holding the old
	 * table, or the table full) is tried again now and then */
	for (size_t i = 0; i < dm.nlists; i++) {
		struct dlist *l = &dm.lists[i];
		if (!l->partial || l->unread ||
		    daemon_now_ms() - l->tried_ms < (uint64_t)dm.cfg->list_retry_s * 1000u)
			continue;
		list_apply(l, &l->keys, true);
		const struct config_dom *c = config_domain(dm.cfg, l->name);
		if (c)
			domain_publish(c);
	}
}

/* ---------------------------------------------------------------------- */
/* signals */

static int do_reload(char *err, size_t errlen);

/* A reload the service manager hears about (RELOADING, then READY). */
static int reload_notified(char *err, size_t errlen)
{
	sdnotify_reloading();
	int r = do_reload(err, errlen);
	sdnotify_ready("%s", r ? "running, last reload refused" : "running");
	return r;
}

static void on_signal(int fd, uint32_t events, void *arg)
{
	(void)events;
	(void)arg;
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			char err[512];
			if (reload_notified(err, sizeof(err)))
				log_msg(LOG_ERR, "reload failed, old configuration kept: %s", err);
		} else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			log_msg(LOG_INFO, "signal %u: stopping", si.ssi_signo);
			sdnotify_stopping();
			dm.stop = true;
		}
	}
}

/* ---------------------------------------------------------------------- */
/* start-up */

struct rebuild_ctx {
	uint64_t published, expired, errors;
	char (*expired_addr)[RG_ADDR_MAX + 1];
	size_t nexp, cap;
};

static int rebuild_fn(const char *addr, size_t len, const struct store_rec *rec, void *arg)
{
	struct rebuild_ctx *c = arg;
	if (!ttl_live(rec, dm.wall_s)) {
		c->expired++;
		if (c->nexp < c->cap) {
			memcpy(c->expired_addr[c->nexp], addr, len + 1);
			c->nexp++;
		}
		return 0;
	}
	if (put_retry(addr, len, rec->verdict, rec->source, rec->flags, rec->expiry))
		c->errors++;
	else
		c->published++;
	return 0;
}

static void rebuild_table(void)
{
	/* size the table for the store first, so that the rebuild does not
	 * migrate generation after generation */
	uint64_t want = store_count(dm.store) * 2; /* slots at <= 1/2 load */
	uint32_t log2 = dm.cfg->shm_table_init_log2;
	while (log2 < dm.cfg->shm_table_max_log2 && ((uint64_t)RTABLE_SLOTS << log2) < want)
		log2++;
	if (rtable_grow_to(&dm.pub.w, log2))
		log_msg(LOG_NOTICE, "table: could not pre-size to 2^%u buckets", log2);
	static char exp_buf[1024][RG_ADDR_MAX + 1];
	struct rebuild_ctx c = {.expired_addr = exp_buf, .cap = 1024};
	char cursor[RG_ADDR_MAX + 1] = "", next[RG_ADDR_MAX + 1];
	uint64_t t0 = mono_ms();
	for (;;) {
		long n = store_scan(dm.store, cursor, REBUILD_CHUNK, rebuild_fn, &c, next);
		/* migration steps between chunks keep growth moving */
		while (rtable_maintain(&dm.pub.w, 1u << 16, mono_ms() * 1000000ull) && dm.pub.w.migrating)
			;
		if (n <= 0 || !next[0])
			break;
		memcpy(cursor, next, sizeof(cursor));
	}
	for (size_t i = 0; i < c.nexp; i++)
		store_del(dm.store, c.expired_addr[i], strlen(c.expired_addr[i]));
	store_commit(dm.store);
	log_msg(LOG_INFO, "table rebuilt from the store: %llu verdicts published, %llu expired, "
		"%llu not published (table full) in %llu ms",
		(unsigned long long)c.published, (unsigned long long)c.expired,
		(unsigned long long)c.errors, (unsigned long long)(mono_ms() - t0));
}

/* The services (daemon_opts.services): the daemon calls them only through
 * their table entry, never by name. */
static int modules_start(const struct config *cfg, char *err, size_t errlen)
{
	for (dm.nstarted = 0; dm.nstarted < dm.nservices; dm.nstarted++) {
		int r = dm.services[dm.nstarted].start(cfg, err, errlen);
		if (r)
			return r;
	}
	return 0;
}

static void modules_reload(const struct config *cfg)
{
	char err[512];
	for (unsigned i = 0; i < dm.nstarted; i++)
		if (dm.services[i].reload(cfg, err, sizeof(err)))
			log_msg(LOG_ERR, "%s reload: %s", dm.services[i].name, err);
}

static void modules_stop(void)
{
	/* a service that failed to start may hold resources: stopped too */
	unsigned n = dm.nstarted < dm.nservices ? dm.nstarted + 1 : dm.nservices;
	while (n > 0)
		dm.services[--n].stop();
	dm.nstarted = 0;
}

int daemon_init(const struct daemon_opts *o, char *err, size_t errlen)
{
	int r;
	snprintf(dm.config_path, sizeof(dm.config_path), "%s", o->config_path);
	dm.services = o->services;
	dm.nservices = o->services ? o->nservices : 0;
	dm.log_stderr_forced = o->log_stderr;
	struct config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return -ENOMEM;
	if ((r = config_load(o->config_path, cfg, err, errlen))) {
		free(cfg);
		return r;
	}
	dm.cfg = cfg;
	log_init(cfg->syslog_ident, cfg->syslog_facility, cfg->log_stderr || o->log_stderr,
		 cfg->log_rate);
	if ((r = daemon_loop_init())) {
		snprintf(err, errlen, "epoll: %s", strerror(-r));
		return r;
	}
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	dm.sigfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	if (dm.sigfd < 0 || daemon_add_fd(dm.sigfd, EPOLLIN, on_signal, NULL)) {
		snprintf(err, errlen, "signalfd: %s", strerror(errno));
		return -errno;
	}
	if ((r = store_open(&dm.store, cfg->store_path, cfg->store_map_mb, err, errlen)))
		return r;
	if ((r = publish_open(&dm.pub, cfg, err, errlen)))
		return r;
	clock_update();
	dm.started_s = dm.loaded_s = dm.wall_s;
	rebuild_table();
	struct callout_hooks h = {.result = on_result, .domain_changed = on_domain_changed,
				  .gate = fleet_gate, .budget = fleet_budget};
	if ((r = callout_init(&h)) || (r = callout_configure(cfg))) {
		snprintf(err, errlen, "callout engine: %s", strerror(-r));
		return r;
	}
	if ((r = dns_start())) {
		snprintf(err, errlen, "resolver thread: %s", strerror(-r));
		return r;
	}
	dns_set_server(cfg->dns_server);
	dm.core_ready = true;
	lists_reload(cfg);
	domains_publish(cfg, NULL);
	if (!daemon_timer_add(1000, 1000, refresh_scan, NULL) ||
	    !daemon_timer_add(1000, 1000, housekeeping, NULL)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if ((r = modules_start(cfg, err, errlen)))
		return r;
	log_msg(LOG_INFO, "rcptgated %s started: %u domains, store %s (%llu verdicts), shm %s",
		DAEMON_VERSION, cfg->ndom, cfg->store_path,
		(unsigned long long)store_count(dm.store), cfg->shm_path);
	return 0;
}

int daemon_run(void)
{
	dm.stop = false;
	while (!dm.stop) {
		int poll = dm.now_ms - dm.last_ring_ms < 1000 ? RING_POLL_ACTIVE_MS : RING_POLL_IDLE_MS;
		int r = daemon_loop_once(poll);
		if (r < 0) {
			log_msg(LOG_ERR, "event loop: %s", strerror(-r));
			return r;
		}
	}
	return 0;
}

void daemon_stop(void)
{
	dm.stop = true;
}

void daemon_fini(void)
{
	modules_stop();
	/* the modules are gone: nobody may be called back any more */
	for (size_t b = 0; b < WAITER_BUCKETS; b++)
		for (struct waiter *w = dm.wb[b]; w; w = w->id_next)
			w->cancelled = true;
	if (dm.core_ready) {
		callout_shutdown();
		pubq_flush();
		dns_stop();
	}
	dm.core_ready = false;
	for (size_t i = 0; i < dm.nlists; i++)
		list_free(&dm.lists[i]);
	free(dm.lists);
	dm.lists = NULL;
	dm.nlists = 0;
	for (size_t b = 0; b < WAITER_BUCKETS; b++)
		while (dm.wb[b]) {
			struct waiter *w = dm.wb[b];
			dm.wb[b] = w->id_next;
			free(w);
		}
	if (dm.store) {
		store_close(dm.store);
		dm.store = NULL;
	}
	publish_close(&dm.pub);
	if (dm.sigfd >= 0) {
		daemon_del_fd(dm.sigfd);
		close(dm.sigfd);
		dm.sigfd = -1;
	}
	daemon_loop_fini();
	if (dm.cfg) {
		config_free(dm.cfg);
		free(dm.cfg);
		dm.cfg = NULL;
	}
	free(dm.pq);
	dm.pq = NULL;
	dm.npq = dm.pq_cap = 0;
	log_close();
}

/* ---------------------------------------------------------------------- */
/* reload */

static int do_reload(char *err, size_t errlen)
{
	struct config *nc = calloc(1, sizeof(*nc));
	if (!nc)
		return -ENOMEM;
	int r = config_load(dm.config_path, nc, err, errlen);
	if (r) {
		free(nc);
		CS(RELOAD_ERRORS);
		return r;
	}
	struct config *old = dm.cfg;
	/* what is fixed for the life of the process stays as it was */
	if (strcmp(nc->shm_path, old->shm_path) || nc->shm_max_lcores != old->shm_max_lcores ||
	    nc->shm_dtable_slots != old->shm_dtable_slots ||
	    nc->shm_table_max_log2 != old->shm_table_max_log2 ||
	    nc->shm_miss_slots != old->shm_miss_slots || nc->shm_event_slots != old->shm_event_slots ||
	    strcmp(nc->store_path, old->store_path))
		log_msg(LOG_WARNING, "reload: shared-memory and store settings take effect at the "
			"next restart");
	snprintf(nc->shm_path, sizeof(nc->shm_path), "%s", old->shm_path);
	nc->shm_max_lcores = old->shm_max_lcores;
	nc->shm_dtable_slots = old->shm_dtable_slots;
	nc->shm_table_init_log2 = old->shm_table_init_log2;
	nc->shm_table_max_log2 = old->shm_table_max_log2;
	nc->shm_miss_slots = old->shm_miss_slots;
	nc->shm_event_slots = old->shm_event_slots;
	snprintf(nc->store_path, sizeof(nc->store_path), "%s", old->store_path);
	nc->store_map_mb = old->store_map_mb;
	dm.cfg = nc;
	log_reconfigure(nc->syslog_ident, nc->syslog_facility, nc->log_stderr || dm.log_stderr_forced,
			nc->log_rate);
	dns_set_server(nc->dns_server);
	callout_configure(nc);
	lists_reload(nc);
	domains_publish(nc, old);
	modules_reload(nc);
	config_free(old);
	free(old);
	dm.loaded_s = daemon_wall_s();
	CS(RELOADS);
	log_msg(LOG_INFO, "configuration reloaded: %u domains", nc->ndom);
	return 0;
}

int core_reload(char *err, size_t errlen)
{
	if (!dm.core_ready) {
		snprintf(err, errlen, "not running");
		return -ENOTCONN;
	}
	return reload_notified(err, errlen);
}

/* ---------------------------------------------------------------------- */
/* the verbs */

int core_status(struct core_status *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->version, sizeof(o->version), "%s", DAEMON_VERSION);
	o->pid = (uint32_t)getpid();
	o->started_s = dm.started_s;
	o->uptime_s = daemon_wall_s() - dm.started_s;
	if (!dm.core_ready)
		return -ENOTCONN;
	snprintf(o->config_path, sizeof(o->config_path), "%s", dm.config_path);
	o->config_loaded_s = dm.loaded_s;
	snprintf(o->shm_path, sizeof(o->shm_path), "%s", dm.cfg->shm_path);
	o->shm_size = dm.pub.map.size;
	o->table_entries = rtable_count(&dm.pub.w);
	o->table_gen = __atomic_load_n(&shm_hdr(&dm.pub.map)->rtable_gen, __ATOMIC_ACQUIRE);
	o->domains = dm.cfg->ndom;
	for (size_t i = 0; i < dm.nlists; i++) {
		o->list_addresses += dm.lists[i].keys.n;
		o->lists_partial += dm.lists[i].partial;
	}
	o->dp_heartbeat_age_ms = UINT64_MAX;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	const struct shm_hdr *h = shm_hdr(&dm.pub.map);
	for (unsigned i = 0; i < h->max_lcores; i++) {
		const struct shm_lcore *lc = shm_lcore_at(&dm.pub.map, i);
		if (!__atomic_load_n(&lc->online, __ATOMIC_RELAXED))
			continue;
		o->dp_lcores_online++;
		uint64_t hb = __atomic_load_n(&lc->heartbeat_ns, __ATOMIC_RELAXED);
		uint64_t age = now_ns > hb ? (now_ns - hb) / 1000000u : 0;
		if (age < o->dp_heartbeat_age_ms)
			o->dp_heartbeat_age_ms = age;
	}
	snprintf(o->store_path, sizeof(o->store_path), "%s", store_path(dm.store));
	o->store_entries = store_count(dm.store);
	o->callouts_pending = callout_nqueued();
	o->callouts_inflight = callout_ninflight();
	o->sessions_open = callout_nsessions();
	if (dm.fleet.status)
		dm.fleet.status(&o->fleet, dm.fleet.arg);
	return 0;
}

void core_stats_foreach(core_stat_fn fn, void *arg)
{
	for (int i = 0; i < CS__COUNT; i++)
		fn("daemon", cs_names[i], dm.st[i], cs_helps[i], arg);
	for (int i = 0; i < CALLOUT_ST__COUNT; i++)
		fn("daemon", callout_stat_name((enum callout_stat)i),
		   callout_stat((enum callout_stat)i), callout_stat_help((enum callout_stat)i), arg);
	fn("daemon", "log_suppressed_reject", log_suppressed(LOG_K_REJECT),
	   "rejection log lines suppressed by log_rate", arg);
	fn("daemon", "log_suppressed_callout", log_suppressed(LOG_K_CALLOUT),
	   "callout log lines suppressed by log_rate", arg);
	fn("daemon", "log_suppressed_client", log_suppressed(LOG_K_CLIENT),
	   "refused-client log lines suppressed by log_rate", arg);
	fn("daemon", "listen_pauses", listen_pauses(),
	   "accepts paused for LISTEN_PAUSE_MS: out of descriptors or memory", arg);
	if (!dm.core_ready)
		return;
	const struct rtable_writer_stats *ws = &dm.pub.w.st;
	fn("table", "entries", rtable_count(&dm.pub.w), "live entries in the recipient table", arg);
	fn("table", "inserts", ws->inserts, "entries inserted", arg);
	fn("table", "updates", ws->updates, "entries updated", arg);
	fn("table", "deletes", ws->deletes, "entries deleted", arg);
	fn("table", "expired", ws->expired, "entries expired", arg);
	fn("table", "full", ws->full, "puts refused: table full", arg);
	fn("table", "stalls", ws->stalls,
	   "puts refused: a data plane held the old table past the wait", arg);
	fn("table", "grows", ws->grows, "table growths", arg);
	fn("table", "store_entries", store_count(dm.store), "verdicts in the LMDB store", arg);
	uint64_t md, mdrop, ed, edrop;
	rings_depths(&dm.pub.map, &md, &mdrop, &ed, &edrop);
	fn("rings", "miss_depth", md, "miss records waiting", arg);
	fn("rings", "miss_drops", mdrop, "misses dropped by the data plane: ring full", arg);
	fn("rings", "event_depth", ed, "event records waiting", arg);
	fn("rings", "event_drops", edrop, "events dropped by the data plane: ring full", arg);
	fn("rings", "bad_records", dm.rst.bad_records, "malformed records skipped", arg);
	for (int i = 0; i < STAT__COUNT; i++)
		fn("dataplane", stats_names[i], stats_sum(&dm.pub.map, (enum stats_id)i),
		   stats_help[i], arg);
	for (unsigned i = 0; i < dm.nstarted; i++)
		if (dm.services[i].stats)
			dm.services[i].stats(fn, arg);
}

void core_lcores_foreach(core_lcore_fn fn, void *arg)
{
	if (!dm.core_ready)
		return;
	const struct shm_hdr *h = shm_hdr(&dm.pub.map);
	uint64_t ctr[STAT__COUNT];
	for (unsigned i = 0; i < h->max_lcores; i++) {
		const struct shm_lcore *lc = shm_lcore_at(&dm.pub.map, i);
		if (!__atomic_load_n(&lc->pid, __ATOMIC_RELAXED) &&
		    !__atomic_load_n(&lc->online, __ATOMIC_RELAXED))
			continue;
		for (int k = 0; k < STAT__COUNT; k++)
			ctr[k] = stats_read(lc, (enum stats_id)k);
		fn(i, __atomic_load_n(&lc->online, __ATOMIC_RELAXED) != 0, ctr, arg);
	}
}

int core_lookup(const char *in, struct core_lookup *o, char *err, size_t errlen)
{
	memset(o, 0, sizeof(*o));
	if (!dm.core_ready) {
		snprintf(err, errlen, "not running");
		return -ENOTCONN;
	}
	const struct config_dom *dc;
	int len = normalize(in, o->addr, o->domain, &dc, err, errlen);
	if (len < 0)
		return len;
	o->managed = dc != NULL;
	o->verdict = dc ? CORE_V_NONE : CORE_V_UNMANAGED;
	if (dc) {
		o->mode = dc->mode;
		struct callout_dom *d = callout_domain(o->domain);
		o->accept_all = d && d->accept_all;
	}
	struct rtable_val v;
	if (publish_get(&dm.pub, o->addr, (size_t)len, &v) && rtable_val_live(&v, daemon_wall_s())) {
		o->in_table = true;
		o->verdict = v.verdict == RT_VALID ? CORE_V_VALID : CORE_V_INVALID;
		o->source = v.source;
		o->pinned = v.flags & RT_F_PINNED;
		o->stale = v.flags & RT_F_STALE;
		o->expiry_s = v.expiry;
	}
	struct store_rec rec;
	if (!store_get(dm.store, o->addr, (size_t)len, &rec) && ttl_live(&rec, daemon_wall_s())) {
		o->in_store = true;
		if (!o->in_table || o->source == rec.source) {
			o->verdict = rec.verdict == RT_VALID ? CORE_V_VALID : CORE_V_INVALID;
			o->source = rec.source;
			o->expiry_s = rec.expiry;
		}
		o->updated_s = rec.updated;
		o->refresh_s = rec.refresh_at;
		o->pinned = rec.flags & RT_F_PINNED;
		o->code = rec.code;
		snprintf(o->reply, sizeof(o->reply), "%s", rec.reply);
		if (ttl_refresh_due(&rec, daemon_wall_s()))
			o->stale = true;
	}
	struct dlist *dl = dc ? list_find(o->domain) : NULL;
	if (dc && !o->in_table && !o->in_store && dc->mode == DT_MODE_LIST && !(dl && dl->unread)) {
		o->verdict = CORE_V_INVALID; /* closed list: unlisted */
		o->source = RT_SRC_LIST;
	}
	if (dc && list_has(o->domain, o->addr)) {
		o->verdict = CORE_V_VALID;
		o->source = RT_SRC_LIST;
	}
	if (o->verdict == CORE_V_NONE && o->accept_all)
		o->verdict = CORE_V_ACCEPT_ALL;
	o->pending = callout_pending(o->addr, (size_t)len);
	return 0;
}

int core_set(const char *in, bool valid, uint32_t ttl_s, char *err, size_t errlen)
{
	if (!dm.core_ready) {
		snprintf(err, errlen, "not running");
		return -ENOTCONN;
	}
	char addr[RG_ADDR_MAX + 1], dom[RG_DOMAIN_MAX + 1];
	int len = normalize(in, addr, dom, NULL, err, errlen);
	if (len < 0)
		return len;
	struct store_rec rec;
	ttl_manual(&rec, valid, ttl_s, daemon_wall_s());
	if (store_put(dm.store, addr, (size_t)len, &rec) || store_commit(dm.store)) {
		CS(STORE_ERRORS);
		snprintf(err, errlen, "store write failed");
		return -EIO;
	}
	CS(SETS);
	if (dm.fleet.learned)
		dm.fleet.learned(addr, (size_t)len, &rec, dm.fleet.arg);
	int r = publish_put(&dm.pub, addr, (size_t)len, rec.verdict, rec.source, rec.flags, rec.expiry);
	if (r) {
		snprintf(err, errlen, "stored, but the table is full: not published");
		return r;
	}
	log_msg(LOG_INFO, "set <%s> %s%s by hand", addr, valid ? "valid" : "invalid",
		ttl_s ? "" : " (pinned)");
	return 0;
}

int core_del(const char *in, char *err, size_t errlen)
{
	if (!dm.core_ready) {
		snprintf(err, errlen, "not running");
		return -ENOTCONN;
	}
	char addr[RG_ADDR_MAX + 1], dom[RG_DOMAIN_MAX + 1];
	int len = normalize(in, addr, dom, NULL, err, errlen);
	if (len < 0)
		return len;
	int rs = store_del(dm.store, addr, (size_t)len);
	store_commit(dm.store);
	/* a listed address is never out of the table: the list still says so */
	bool listed = list_has(dom, addr);
	int rt = listed ? publish_put(&dm.pub, addr, (size_t)len, RT_VALID, RT_SRC_LIST, 0, 0)
			: publish_del(&dm.pub, addr, (size_t)len);
	if (rs && rt) {
		snprintf(err, errlen, "%s: not cached", addr);
		return -ENOENT;
	}
	CS(DELS);
	if (dm.fleet.deleted)
		dm.fleet.deleted(addr, (size_t)len, dm.fleet.arg);
	log_msg(LOG_INFO, "deleted <%s> by hand", addr);
	return 0;
}

struct flush_ctx {
	const char *dom;
	size_t dlen;
	char (*addr)[RG_ADDR_MAX + 1];
	size_t n, cap;
};

static int flush_fn(const char *addr, size_t len, const struct store_rec *rec, void *arg)
{
	(void)rec;
	struct flush_ctx *c = arg;
	if (len > c->dlen && addr[len - c->dlen - 1] == '@' && !memcmp(addr + len - c->dlen, c->dom, c->dlen) &&
	    c->n < c->cap) {
		memcpy(c->addr[c->n++], addr, len + 1);
	}
	return 0;
}

int core_flush(const char *domain, uint64_t *removed, char *err, size_t errlen)
{
	*removed = 0;
	if (!dm.core_ready) {
		snprintf(err, errlen, "not running");
		return -ENOTCONN;
	}
	CS(FLUSHES);
	if (!domain) {
		int r = store_flush(dm.store, NULL, removed);
		if (!r)
			r = store_commit(dm.store);
		if (r) {
			snprintf(err, errlen, "store: %s", strerror(-r));
			return r;
		}
		/* the table empties at once: closed lists fail safe (misses
		 * pass) until they are back in it */
		static const struct list_keys none;
		dm.lists_flushing = true;
		domains_publish(dm.cfg, NULL);
		rtable_flush(&dm.pub.w);
		for (size_t i = 0; i < dm.nlists; i++)
			list_apply(&dm.lists[i], &none, true);
		dm.lists_flushing = false;
		domains_publish(dm.cfg, NULL);
		log_msg(LOG_INFO, "flushed all verdicts (%llu)", (unsigned long long)*removed);
		return 0;
	}
	char dom[RG_DOMAIN_MAX + 1];
	size_t dl = strlen(domain);
	if (!dl || dl > RG_DOMAIN_MAX) {
		snprintf(err, errlen, "bad domain");
		return -EINVAL;
	}
	for (size_t i = 0; i <= dl; i++)
		dom[i] = (char)((domain[i] >= 'A' && domain[i] <= 'Z') ? domain[i] + 32 : domain[i]);
	/* the table has no per-domain index: walk the store for its addresses */
	static char buf[4096][RG_ADDR_MAX + 1];
	char cursor[RG_ADDR_MAX + 1] = "", next[RG_ADDR_MAX + 1];
	for (;;) {
		struct flush_ctx c = {.dom = dom, .dlen = dl, .addr = buf, .cap = 4096};
		long n = store_scan(dm.store, cursor, 4096, flush_fn, &c, next);
		for (size_t i = 0; i < c.n; i++)
			if (!list_has(dom, c.addr[i])) /* listed ones stay */
				publish_del(&dm.pub, c.addr[i], strlen(c.addr[i]));
		if (n <= 0 || !next[0])
			break;
		memcpy(cursor, next, sizeof(cursor));
	}
	int r = store_flush(dm.store, dom, removed);
	if (!r)
		r = store_commit(dm.store);
	if (r) {
		snprintf(err, errlen, "store: %s", strerror(-r));
		return r;
	}
	struct dlist *l = list_find(dom);
	if (l) {
		static const struct list_keys none;
		list_apply(l, &none, true);
		domain_publish(config_domain(dm.cfg, dom));
	}
	log_msg(LOG_INFO, "flushed %llu verdicts of %s", (unsigned long long)*removed, dom);
	return 0;
}

int core_verify(const char *in, core_verify_cb cb, void *arg, uint64_t *id, char *err,
		size_t errlen)
{
	if (!dm.core_ready) {
		snprintf(err, errlen, "not running");
		return -ENOTCONN;
	}
	char addr[RG_ADDR_MAX + 1], dom[RG_DOMAIN_MAX + 1];
	const struct config_dom *dc;
	int len = normalize(in, addr, dom, &dc, err, errlen);
	if (len < 0)
		return len;
	if (!dc) {
		snprintf(err, errlen, "%s: domain %s is not configured", addr, dom);
		return -ENOENT;
	}
	struct waiter *w = waiter_new(W_VERIFY, arg);
	if (!w)
		return -ENOMEM;
	w->vcb = cb;
	int r = callout_submit(addr, (size_t)len, CALLOUT_F_VERIFY, &w->link);
	if (r < 0) {
		waiter_free(w);
		snprintf(err, errlen, "%s: cannot start a callout: %s", addr, strerror(-r));
		return r;
	}
	CS(VERIFIES);
	if (id)
		*id = w->id;
	return 0;
}

int core_domains_foreach(core_domain_fn fn, void *arg)
{
	if (!dm.cfg)
		return 0;
	for (unsigned i = 0; i < dm.cfg->ndom; i++) {
		const struct config_dom *c = &dm.cfg->dom[i];
		struct callout_dom *d = callout_domain(c->name);
		struct core_domain_info o;
		memset(&o, 0, sizeof(o));
		snprintf(o.name, sizeof(o.name), "%s", c->name);
		o.mode = c->mode;
		o.miss_policy = c->miss_policy;
		o.case_sensitive = c->case_sensitive;
		if (c->ndest == 0) {
			snprintf(o.dest, sizeof(o.dest), "MX");
		} else {
			size_t off = 0;
			for (unsigned k = 0; k < c->ndest && off < sizeof(o.dest); k++) {
				int n = snprintf(o.dest + off, sizeof(o.dest) - off, "%s%s%s%s:%u",
						 k ? "," : "", strchr(c->dest[k].host, ':') ? "[" : "",
						 c->dest[k].host, strchr(c->dest[k].host, ':') ? "]" : "",
						 c->dest[k].port);
				if (n < 0)
					break;
				off += (size_t)n;
			}
		}
		struct dlist *l = list_find(c->name);
		o.list_entries = l ? (uint32_t)l->keys.n : 0;
		o.list_partial = l && l->partial;
		o.list_unpublished = l ? l->unpublished : 0;
		if (d) {
			o.accept_all = d->accept_all;
			o.accept_all_checked_s = d->aa_checked_s;
			o.failopen = callout_failing_open(d, daemon_now_ms());
			o.health = d->health;
			snprintf(o.dest_last, sizeof(o.dest_last), "%s", d->dest_last);
			o.breaker_until_s = d->breaker_until_ms && daemon_now_ms() < d->breaker_until_ms ?
						    d->breaker_until_s : 0;
			o.consecutive_failures = d->failures;
			o.pending = d->nqueued;
			o.sessions_open = d->sessions_open;
			o.callouts = d->callouts;
			o.valid = d->valid;
			o.invalid = d->invalid;
			o.tempfail = d->tempfail;
			o.unverifiable = d->unverifiable;
			o.sessions = d->sessions;
			o.connect_failures = d->connect_failures;
			snprintf(o.last_error, sizeof(o.last_error), "%s", d->last_error);
		}
		int r = fn(&o, arg);
		if (r)
			return r;
	}
	return 0;
}

int core_check_recipient(const char *in, struct core_check *o, core_check_cb cb, void *arg,
			 uint64_t *id)
{
	memset(o, 0, sizeof(*o));
	if (!dm.core_ready)
		return -ENOTCONN;
	CS(CHECKS);
	char dom[RG_DOMAIN_MAX + 1];
	const struct config_dom *dc;
	int len = normalize(in, o->addr, dom, &dc, NULL, 0);
	if (len < 0)
		return len;
	o->from_cache = true;
	if (!dc) {
		o->verdict = CORE_V_UNMANAGED;
		return 0;
	}
	o->miss_policy = dc->miss_policy;
	o->warn = dc->action == CONFIG_ACTION_WARN;
	o->reject_code = dc->reject_code;
	struct callout_dom *d = callout_domain(dom);
	if (list_has(dom, o->addr)) {
		o->verdict = CORE_V_VALID;
		return 0;
	}
	struct store_rec rec;
	bool have = !store_get(dm.store, o->addr, (size_t)len, &rec) && ttl_live(&rec, daemon_wall_s());
	if (have) {
		o->verdict = rec.verdict == RT_VALID ? CORE_V_VALID : CORE_V_INVALID;
		touch(o->addr, (size_t)len, &rec);
		if (ttl_refresh_due(&rec, daemon_wall_s()) && !callout_pending(o->addr, (size_t)len) &&
		    dc->mode != DT_MODE_LIST)
			if (callout_submit(o->addr, (size_t)len, CALLOUT_F_REFRESH, NULL) == 0)
				CS(REFRESHES);
		return 0;
	}
	if (dc->mode == DT_MODE_LIST) {
		struct dlist *l = list_find(dom);
		if (l && l->unread) {
			/* no list to go by: the destination decides */
			o->failopen = true;
			return 0;
		}
		o->verdict = CORE_V_INVALID;
		return 0;
	}
	if (d && d->accept_all) {
		o->verdict = CORE_V_ACCEPT_ALL;
		return 0;
	}
	if (d && callout_failing_open(d, daemon_now_ms())) {
		o->verdict = d->health == CORE_H_UNVERIFIABLE ? CORE_V_UNVERIFIABLE : CORE_V_TEMPFAIL;
		o->failopen = true;
		return 0;
	}
	struct waiter *w = waiter_new(W_CHECK, arg);
	if (!w)
		return -ENOMEM;
	w->ccb = cb;
	int r = callout_submit(o->addr, (size_t)len, 0, &w->link);
	if (r >= 0) {
		o->from_cache = false;
		if (id)
			*id = w->id;
		return 1;
	}
	waiter_free(w);
	o->verdict = CORE_V_TEMPFAIL;
	o->failopen = r == -EHOSTDOWN;
	return 0;
}
