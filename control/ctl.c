/*
 * ctl.c — the control socket server: accepts rcptctl connections on a Unix
 * socket, checks the caller's credentials, reads one bounded request frame
 * at a time (ctlproto.h), answers it through core.h and writes the JSON
 * answer back.  `verify` is answered when its callout completes; the
 * connection waits meanwhile and the callback is cancelled if it goes away.
 *
 * Thread: rcptgated's main (event-loop) thread; every entry point is either
 * called by the daemon (ctl_start/reload/stop) or by the loop (callbacks).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core.h"
#include "ctl.h"
#include "ctlproto.h"
#include "dtable.h"
#include "listen.h"
#include "log.h"
#include "refusals.h"
#ifdef RG_HAVE_XDP
#include "xdp.h"
#endif

#define CTL_IN_MAX (CTLPROTO_HDR_LEN + CTLPROTO_REQ_MAX)
#define CTL_OUT_INIT 4096u
#define CTL_OUT_MAX (CTLPROTO_HDR_LEN + CTLPROTO_RESP_MAX)
#define CTL_SWEEP_MS 1000u

enum conn_state {
	CS_READ,	/* waiting for (the rest of) a request */
	CS_WAIT,	/* a verify is running; not reading */
	CS_WRITE,	/* sending an answer, then back to CS_READ */
	CS_CLOSE,	/* sending a final error answer, then closing */
};

/* A growable answer buffer, bounded by CTL_OUT_MAX; the frame header's room
 * is kept at the front and filled last. */
struct jbuf {
	char *buf;
	size_t len, cap;
	bool comma;	/* a value precedes: the next member needs a comma */
	bool overflow;	/* something did not fit: the answer is replaced */
	bool toobig;	/* ... because of CTL_OUT_MAX (else: out of memory) */
};

struct ctl_conn {
	int fd;			/* -1 = free slot */
	uid_t uid;
	pid_t pid;
	bool admin;		/* may use state-changing verbs */
	enum conn_state state;
	uint64_t last_ms;	/* last progress (read, write, answer) */
	uint64_t verify_id;	/* core_verify() id while CS_WAIT */
	uint8_t in[CTL_IN_MAX];
	size_t inlen;
	struct jbuf out;
	size_t outpos;		/* octets of out already sent */
};

static struct {
	int lfd;
	struct listen_state lls;	/* lfd's accept state (pauses) */
	char path[CONFIG_PATH_MAX];
	struct config_principal admins[CONFIG_MAX_UIDS], readers[CONFIG_MAX_UIDS];
	unsigned nadmins, nreaders;
	unsigned max_per_uid;
	uint64_t sweep_timer;
	struct ctl_conn conn[CTL_CONN_MAX];
	uint64_t st[CTL_ST__COUNT];
	bool started;
} ctl = {.lfd = -1};

static const char *const ctl_stat_names[CTL_ST__COUNT] = {
#define CTL_STAT_NAME(id, name, help) [CTL_ST_##id] = name,
	CTL_STATS_LIST(CTL_STAT_NAME)
#undef CTL_STAT_NAME
};

static const char *const ctl_stat_help[CTL_ST__COUNT] = {
#define CTL_STAT_HELP(id, name, help) [CTL_ST_##id] = help,
	CTL_STATS_LIST(CTL_STAT_HELP)
#undef CTL_STAT_HELP
};

static void conn_io(int fd, uint32_t events, void *arg);

/* ---------------------------------------------------------------------- */
/* JSON answers                                                            */

static void jb_reset(struct jbuf *j)
{
	j->len = CTLPROTO_HDR_LEN;
	j->comma = false;
	j->overflow = false;
	j->toobig = false;
}

static bool jb_reserve(struct jbuf *j, size_t n)
{
	size_t cap;
	char *nb;

	if (j->overflow)
		return false;
	if (j->len + n + 1 <= j->cap)
		return true;
	if (j->len + n + 1 > CTL_OUT_MAX) {
		j->overflow = j->toobig = true;
		return false;
	}
	cap = j->cap ? j->cap : CTL_OUT_INIT;
	while (cap < j->len + n + 1)
		cap *= 2;
	if (cap > CTL_OUT_MAX)
		cap = CTL_OUT_MAX;
	nb = realloc(j->buf, cap);
	if (!nb) {
		j->overflow = true;
		return false;
	}
	j->buf = nb;
	j->cap = cap;
	return true;
}

static void jb_raw(struct jbuf *j, const char *s, size_t n)
{
	if (!jb_reserve(j, n))
		return;
	memcpy(j->buf + j->len, s, n);
	j->len += n;
}

static void jb_printf(struct jbuf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb_printf(struct jbuf *j, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(tmp))
		jb_raw(j, tmp, (size_t)n);
}

static void jb_strn(struct jbuf *j, const char *s, size_t n)
{
	size_t pos;

	/* escaping at most sextuples each octet */
	if (!jb_reserve(j, n * 6 + 2))
		return;
	pos = j->len;
	if (ctlproto_json_str(j->buf, j->cap, &pos, s, n) < 0) {
		j->overflow = true;
		return;
	}
	j->len = pos;
}

static void jb_key(struct jbuf *j, const char *k)
{
	if (j->comma)
		jb_raw(j, ",", 1);
	if (k) {
		jb_strn(j, k, strlen(k));
		jb_raw(j, ":", 1);
	}
	j->comma = true;
}

static void jb_open(struct jbuf *j, const char *k, char c)
{
	jb_key(j, k);
	jb_raw(j, &c, 1);
	j->comma = false;
}

static void jb_close(struct jbuf *j, char c)
{
	jb_raw(j, &c, 1);
	j->comma = true;
}

static void jb_str(struct jbuf *j, const char *k, const char *v)
{
	jb_key(j, k);
	if (v)
		jb_strn(j, v, strlen(v));
	else
		jb_raw(j, "null", 4);
}

static void jb_u64(struct jbuf *j, const char *k, uint64_t v)
{
	jb_key(j, k);
	jb_printf(j, "%llu", (unsigned long long)v);
}

static void jb_bool(struct jbuf *j, const char *k, bool v)
{
	jb_key(j, k);
	jb_raw(j, v ? "true" : "false", v ? 4 : 5);
}

/* Starts {"status":"<st>" */
static void jb_begin(struct jbuf *j, enum ctlproto_status st)
{
	jb_reset(j);
	jb_open(j, NULL, '{');
	jb_str(j, "status", ctlproto_status_name(st));
}

static const char *mode_name(unsigned m)
{
	switch (m) {
	case DT_MODE_CALLOUT: return "callout";
	case DT_MODE_LIST: return "list";
	case DT_MODE_BOTH: return "both";
	}
	return "none";
}

static const char *miss_name(unsigned m)
{
	return m == DT_MISS_DEFER ? "defer" : "pass";
}

/* ---------------------------------------------------------------------- */
/* connections                                                             */

static unsigned conns_of(uid_t uid)
{
	unsigned n = 0;

	for (unsigned i = 0; i < CTL_CONN_MAX; i++)
		if (ctl.conn[i].fd >= 0 && ctl.conn[i].uid == uid)
			n++;
	return n;
}

static struct ctl_conn *conn_slot(void)
{
	for (unsigned i = 0; i < CTL_CONN_MAX; i++)
		if (ctl.conn[i].fd < 0)
			return &ctl.conn[i];
	return NULL;
}

static void conn_close(struct ctl_conn *c)
{
	if (c->fd < 0)
		return;
	if (c->state == CS_WAIT && c->verify_id) {
		core_cancel(c->verify_id);
		ctl.st[CTL_ST_VERIFY_CANCELLED]++;
	}
	daemon_del_fd(c->fd);
	close(c->fd);
	c->fd = -1;
	c->verify_id = 0;
	c->inlen = 0;
	free(c->out.buf);
	memset(&c->out, 0, sizeof(c->out));
}

/* Seals the JSON in c->out into a frame and starts sending it. */
static void conn_answer(struct ctl_conn *c, enum ctlproto_status st, bool close_after)
{
	struct jbuf *j = &c->out;

	jb_close(j, '}');
	jb_raw(j, "\n", 1);
	if (j->overflow) {
		bool toobig = j->toobig;

		if (toobig)
			ctl.st[CTL_ST_ANSWER_TOOBIG]++;
		jb_begin(j, CTLS_FAILED);
		jb_str(j, "error", toobig ? "answer over the size limit" : "out of memory");
		jb_close(j, '}');
		jb_raw(j, "\n", 1);
		st = CTLS_FAILED;
		if (j->overflow) {	/* not even that fits: give up on the caller */
			conn_close(c);
			return;
		}
	}
	ctlproto_hdr_write((uint8_t *)j->buf, CTLPROTO_KIND_ANS, (uint16_t)st,
			   (uint32_t)(j->len - CTLPROTO_HDR_LEN));
	c->outpos = 0;
	c->state = close_after ? CS_CLOSE : CS_WRITE;
	c->last_ms = daemon_now_ms();
	if (!close_after)
		ctl.st[CTL_ST_REQUESTS]++;
	daemon_mod_fd(c->fd, EPOLLOUT);
}

static void conn_error(struct ctl_conn *c, enum ctlproto_status st, const char *msg,
		       bool close_after)
{
	jb_begin(&c->out, st);
	jb_str(&c->out, "error", msg);
	conn_answer(c, st, close_after);
}

/* ---------------------------------------------------------------------- */
/* verbs                                                                   */

static enum ctlproto_status errno_status(int rc)
{
	switch (rc) {
	case -ENOENT: return CTLS_NOTFOUND;
	case -ENOTSUP:
	case -ENOSYS: return CTLS_UNAVAILABLE;
	case -EPERM: return CTLS_DENIED;
	}
	return CTLS_FAILED;
}

/* A verb handler fills c->out (after jb_begin) and returns the status, or
 * -1 when the answer comes later (verify). On a status other than OK it may
 * instead leave an error message in err. */
typedef int (*verb_fn)(struct ctl_conn *c, const struct ctlproto_req *r, char *err,
		       size_t errlen);

static int v_status(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	struct core_status s;
	struct jbuf *j = &c->out;
	int rc;

	(void)r;
	rc = core_status(&s);
	if (rc < 0) {
		snprintf(err, el, "status: %s", strerror(-rc));
		return errno_status(rc);
	}
	jb_str(j, "version", s.version);
	jb_u64(j, "pid", s.pid);
	jb_u64(j, "started", s.started_s);
	jb_u64(j, "uptime_s", s.uptime_s);
	jb_str(j, "config", s.config_path);
	jb_u64(j, "config_loaded", s.config_loaded_s);
	jb_str(j, "shm_path", s.shm_path);
	jb_u64(j, "shm_size", s.shm_size);
	jb_u64(j, "table_entries", s.table_entries);
	jb_u64(j, "table_gen", s.table_gen);
	jb_u64(j, "domains", s.domains);
	jb_u64(j, "list_addresses", s.list_addresses);
	jb_u64(j, "lists_partial", s.lists_partial);
	jb_u64(j, "dp_lcores_online", s.dp_lcores_online);
	jb_key(j, "dp_heartbeat_age_ms");
	if (s.dp_heartbeat_age_ms == UINT64_MAX)
		jb_raw(j, "null", 4);
	else
		jb_printf(j, "%llu", (unsigned long long)s.dp_heartbeat_age_ms);
	jb_str(j, "store_path", s.store_path);
	jb_u64(j, "store_entries", s.store_entries);
	jb_u64(j, "callouts_pending", s.callouts_pending);
	jb_u64(j, "callouts_inflight", s.callouts_inflight);
	jb_u64(j, "sessions_open", s.sessions_open);
	if (s.fleet.enabled) {
		/* an object of scalars (rcptctl status and top print it) */
		jb_open(j, "fleet", '{');
		jb_bool(j, "connected", s.fleet.connected);
		jb_str(j, "node", s.fleet.node);
		jb_str(j, "redis", s.fleet.redis);
		jb_u64(j, "down_since", s.fleet.down_since_s);
		jb_u64(j, "stream_lag_ms", s.fleet.stream_lag_ms);
		jb_u64(j, "last_sync", s.fleet.last_sync_s);
		jb_u64(j, "applied", s.fleet.applied);
		jb_u64(j, "published", s.fleet.published);
		jb_u64(j, "lock_waits", s.fleet.lock_waits);
		jb_u64(j, "uncoordinated", s.fleet.uncoordinated);
		jb_u64(j, "outbox", s.fleet.outbox);
		jb_close(j, '}');
	}
	return CTLS_OK;
}

#define STATS_GROUPS_MAX 16u
#define STATS_GROUP_LEN 32u

struct stats_walk {
	struct jbuf *j;
	char groups[STATS_GROUPS_MAX][STATS_GROUP_LEN];
	unsigned ngroups;
	const char *only;	/* second pass: the group being written */
};

static void stats_collect(const char *group, const char *name, uint64_t v, const char *help,
			  void *arg)
{
	struct stats_walk *w = arg;

	(void)name;
	(void)v;
	(void)help;
	for (unsigned i = 0; i < w->ngroups; i++)
		if (strcmp(w->groups[i], group) == 0)
			return;
	if (w->ngroups < STATS_GROUPS_MAX)
		snprintf(w->groups[w->ngroups++], STATS_GROUP_LEN, "%s", group);
}

static void stats_emit(const char *group, const char *name, uint64_t v, const char *help,
		       void *arg)
{
	struct stats_walk *w = arg;

	(void)help;
	if (strcmp(group, w->only) == 0)
		jb_u64(w->j, name, v);
}

static int v_stats(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	struct stats_walk w = {.j = &c->out};

	(void)r;
	(void)err;
	(void)el;
	core_stats_foreach(stats_collect, &w);
	jb_open(w.j, "stats", '{');
	for (unsigned g = 0; g < w.ngroups; g++) {
		w.only = w.groups[g];
		jb_open(w.j, w.only, '{');
		core_stats_foreach(stats_emit, &w);
		jb_close(w.j, '}');
	}
	jb_close(w.j, '}');
	return CTLS_OK;
}

static void put_lookup(struct jbuf *j, const struct core_lookup *l)
{
	jb_str(j, "addr", l->addr);
	jb_str(j, "domain", l->domain);
	jb_bool(j, "managed", l->managed);
	jb_str(j, "mode", l->managed ? mode_name(l->mode) : "none");
	jb_bool(j, "accept_all", l->accept_all);
	jb_str(j, "verdict", core_verdict_name(l->verdict));
	jb_str(j, "source", l->in_table || l->in_store ? core_source_name(l->source) : NULL);
	jb_bool(j, "in_table", l->in_table);
	jb_bool(j, "in_store", l->in_store);
	jb_bool(j, "pinned", l->pinned);
	jb_bool(j, "stale", l->stale);
	jb_bool(j, "pending", l->pending);
	jb_u64(j, "updated", l->updated_s);
	jb_u64(j, "refresh", l->refresh_s);
	jb_u64(j, "expiry", l->expiry_s);
	jb_u64(j, "code", l->code);
	jb_str(j, "reply", l->reply);
}

static int v_lookup(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	struct core_lookup l;
	int rc;

	memset(&l, 0, sizeof(l));
	rc = core_lookup(r->arg[CTLK_ADDR], &l, err, el);
	if (rc < 0)
		return errno_status(rc);
	put_lookup(&c->out, &l);
	return CTLS_OK;
}

static int v_set(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	bool valid = strcmp(r->arg[CTLK_VERDICT], "valid") == 0;
	struct core_lookup l;
	int rc;

	rc = core_set(r->arg[CTLK_ADDR], valid, r->ttl, err, el);
	if (rc < 0)
		return errno_status(rc);
	memset(&l, 0, sizeof(l));
	if (core_lookup(r->arg[CTLK_ADDR], &l, err, el) == 0) {
		put_lookup(&c->out, &l);
	} else {
		jb_str(&c->out, "addr", r->arg[CTLK_ADDR]);
		jb_str(&c->out, "verdict", r->arg[CTLK_VERDICT]);
	}
	err[0] = '\0';
	return CTLS_OK;
}

static int v_del(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	int rc = core_del(r->arg[CTLK_ADDR], err, el);

	if (rc < 0) {
		if (rc == -ENOENT && !err[0])
			snprintf(err, el, "%s: not in the table", r->arg[CTLK_ADDR]);
		return errno_status(rc);
	}
	jb_str(&c->out, "addr", r->arg[CTLK_ADDR]);
	jb_bool(&c->out, "deleted", true);
	return CTLS_OK;
}

static int v_flush(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	uint64_t removed = 0;
	int rc = core_flush(r->arg[CTLK_DOMAIN], &removed, err, el);

	if (rc < 0)
		return errno_status(rc);
	jb_str(&c->out, "domain", r->arg[CTLK_DOMAIN]);
	jb_u64(&c->out, "removed", removed);
	return CTLS_OK;
}

static int put_domain(const struct core_domain_info *d, void *arg)
{
	struct jbuf *j = arg;

	jb_open(j, NULL, '{');
	jb_str(j, "name", d->name);
	jb_str(j, "mode", mode_name(d->mode));
	jb_str(j, "miss_policy", miss_name(d->miss_policy));
	jb_bool(j, "case_sensitive", d->case_sensitive);
	jb_bool(j, "accept_all", d->accept_all);
	jb_u64(j, "accept_all_checked", d->accept_all_checked_s);
	jb_bool(j, "failopen", d->failopen);
	jb_str(j, "health", core_health_name(d->health));
	jb_str(j, "dest", d->dest);
	jb_str(j, "dest_last", d->dest_last);
	jb_u64(j, "breaker_until", d->breaker_until_s);
	jb_u64(j, "consecutive_failures", d->consecutive_failures);
	jb_u64(j, "list_entries", d->list_entries);
	jb_bool(j, "list_partial", d->list_partial);
	jb_u64(j, "list_unpublished", d->list_unpublished);
	jb_u64(j, "pending", d->pending);
	jb_u64(j, "sessions_open", d->sessions_open);
	jb_open(j, "counters", '{');
	jb_u64(j, "callouts", d->callouts);
	jb_u64(j, "valid", d->valid);
	jb_u64(j, "invalid", d->invalid);
	jb_u64(j, "tempfail", d->tempfail);
	jb_u64(j, "unverifiable", d->unverifiable);
	jb_u64(j, "sessions", d->sessions);
	jb_u64(j, "connect_failures", d->connect_failures);
	jb_close(j, '}');
	jb_str(j, "last_error", d->last_error);
	jb_close(j, '}');
	return j->overflow ? 1 : 0;
}

static int v_domains(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	(void)r;
	(void)err;
	(void)el;
	jb_open(&c->out, "domains", '[');
	core_domains_foreach(put_domain, &c->out);
	jb_close(&c->out, ']');
	return CTLS_OK;
}

static int v_reload(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	int rc;

	(void)r;
	rc = core_reload(err, el);
	if (rc < 0)
		return CTLS_FAILED;
	jb_bool(&c->out, "reloaded", true);
	return CTLS_OK;
}

static void verify_done(const struct core_verify_result *res, void *arg)
{
	struct ctl_conn *c = arg;
	struct jbuf *j = &c->out;

	c->verify_id = 0;
	if (c->fd < 0 || c->state != CS_WAIT)
		return;
	if (res->err < 0) {
		conn_error(c, errno_status(res->err),
			   res->errmsg[0] ? res->errmsg : strerror(-res->err), false);
		return;
	}
	jb_begin(j, CTLS_OK);
	jb_str(j, "addr", res->addr);
	jb_str(j, "verdict", core_verdict_name(res->verdict));
	jb_u64(j, "code", res->code);
	jb_str(j, "enhanced", res->enhanced);
	jb_str(j, "reply", res->reply);
	jb_str(j, "dest", res->dest);
	jb_bool(j, "cached", res->cached);
	jb_u64(j, "elapsed_ms", res->elapsed_ms);
	jb_key(j, "transcript");
	jb_strn(j, res->transcript ? res->transcript : "",
		res->transcript ? res->transcript_len : 0);
	conn_answer(c, CTLS_OK, false);
}

static int v_verify(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	uint64_t id = 0;
	int rc;

	/* the callback may only run from the loop, never inside core_verify() */
	c->state = CS_WAIT;
	rc = core_verify(r->arg[CTLK_ADDR], verify_done, c, &id, err, el);
	if (rc < 0) {
		c->state = CS_READ;
		return errno_status(rc);
	}
	c->verify_id = id;
	daemon_mod_fd(c->fd, 0);
	return -1;
}

#ifdef RG_HAVE_XDP
static int v_block(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	int rc = xdp_block(r->arg[CTLK_PREFIX], r->ttl, err, el);

	if (rc < 0)
		return errno_status(rc);
	/* with a fleet: every node blocks it (their allowlists still apply) */
	bool fleet = core_fleet_block(r->arg[CTLK_PREFIX], r->ttl);
	jb_str(&c->out, "prefix", r->arg[CTLK_PREFIX]);
	jb_u64(&c->out, "ttl", r->ttl);
	if (fleet)
		jb_bool(&c->out, "fleet", true);
	return CTLS_OK;
}

static int v_unblock(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	int rc = xdp_unblock(r->arg[CTLK_PREFIX], err, el);
	struct xdp_prefix p;

	/* with a fleet: unblocked everywhere, blocked here or not */
	if (!xdp_prefix_parse(r->arg[CTLK_PREFIX], &p) && core_fleet_unblock(r->arg[CTLK_PREFIX])) {
		if (rc == -ENOENT) {
			rc = 0;
			err[0] = 0;
		}
		jb_bool(&c->out, "fleet", true);
	}
	if (rc < 0) {
		if (rc == -ENOENT && !err[0])
			snprintf(err, el, "%s: not blocked", r->arg[CTLK_PREFIX]);
		return errno_status(rc);
	}
	jb_str(&c->out, "prefix", r->arg[CTLK_PREFIX]);
	jb_bool(&c->out, "unblocked", true);
	return CTLS_OK;
}

static int put_block(const struct xdp_block_info *b, void *arg)
{
	struct jbuf *j = arg;

	jb_open(j, NULL, '{');
	jb_str(j, "prefix", b->prefix);
	jb_u64(j, "hits", b->hits);
	jb_u64(j, "added", b->added_s);
	jb_u64(j, "expires", b->expires_s);
	jb_u64(j, "offences", b->offences);
	jb_bool(j, "manual", b->manual);
	jb_u64(j, "ports", b->ports);
	jb_close(j, '}');
	return j->overflow ? 1 : 0;
}

static int v_blocks(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	int rc;

	(void)r;
	jb_open(&c->out, "blocks", '[');
	rc = xdp_blocks_foreach(put_block, &c->out);
	jb_close(&c->out, ']');
	if (rc < 0) {
		snprintf(err, el, "blocklist: %s", strerror(-rc));
		return errno_status(rc);
	}
	return CTLS_OK;
}
#else
static int v_noxdp(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	(void)c;
	(void)r;
	snprintf(err, el, "the XDP module is not built into this rcptgated");
	return CTLS_UNAVAILABLE;
}
#define v_block v_noxdp
#define v_unblock v_noxdp
#define v_blocks v_noxdp
#endif

/* top: the most refused domains and client prefixes (refusals.h) */
#define CTL_TOP_N 10u
static void put_top(struct jbuf *j, const char *k, enum refusals_kind kind)
{
	struct refusals_entry e[CTL_TOP_N];
	unsigned n = refusals_top(kind, e, CTL_TOP_N);

	jb_open(j, k, '[');
	for (unsigned i = 0; i < n; i++) {
		jb_open(j, NULL, '{');
		jb_str(j, "key", e[i].key);
		jb_u64(j, "refused", e[i].count);
		jb_u64(j, "error", e[i].error);
		jb_close(j, '}');
	}
	jb_close(j, ']');
}

static int v_top(struct ctl_conn *c, const struct ctlproto_req *r, char *err, size_t el)
{
	(void)r;
	(void)err;
	(void)el;
	jb_u64(&c->out, "refused", refusals_total());
	put_top(&c->out, "domains", REFUSALS_DOMAIN);
	put_top(&c->out, "prefixes", REFUSALS_PREFIX);
	return CTLS_OK;
}

static const verb_fn verb_table[CTLV__MAX] = {
	[CTLV_STATUS] = v_status,
	[CTLV_STATS] = v_stats,
	[CTLV_LOOKUP] = v_lookup,
	[CTLV_VERIFY] = v_verify,
	[CTLV_SET] = v_set,
	[CTLV_DEL] = v_del,
	[CTLV_FLUSH] = v_flush,
	[CTLV_DOMAINS] = v_domains,
	[CTLV_RELOAD] = v_reload,
	[CTLV_BLOCK] = v_block,
	[CTLV_UNBLOCK] = v_unblock,
	[CTLV_BLOCKS] = v_blocks,
	[CTLV_TOP] = v_top,
};

/* ---------------------------------------------------------------------- */
/* reading and dispatching                                                 */

static void refuse(struct ctl_conn *c, int perr, const char *where)
{
	enum ctlproto_status st = CTLS_BADREQ;
	char msg[160];

	switch (perr) {
	case CTLP_E_VERSION:
		st = CTLS_VERSION;
		ctl.st[CTL_ST_VERSION]++;
		snprintf(msg, sizeof(msg), "protocol version mismatch: this rcptgated speaks "
			 "version %u", CTLPROTO_VERSION);
		break;
	case CTLP_E_TOOBIG:
		st = CTLS_TOOBIG;
		ctl.st[CTL_ST_TOOBIG]++;
		snprintf(msg, sizeof(msg), "request over %u octets", CTLPROTO_REQ_MAX);
		break;
	default:
		ctl.st[CTL_ST_BADREQ]++;
		if (where)
			snprintf(msg, sizeof(msg), "malformed request: %s: %s",
				 ctlproto_strerror(perr), where);
		else
			snprintf(msg, sizeof(msg), "malformed request: %s",
				 ctlproto_strerror(perr));
		break;
	}
	conn_error(c, st, msg, true);
}

static void conn_dispatch(struct ctl_conn *c, size_t flen, const struct ctlproto_hdr *hdr)
{
	struct ctlproto_req req;
	const char *where = NULL;
	char err[256] = "";
	int rc;

	rc = ctlproto_req_decode(hdr, c->in + CTLPROTO_HDR_LEN, &req, &where);
	if (rc < 0) {
		refuse(c, rc, where);
		return;
	}
	if (!c->admin && !ctl_verb_readonly(req.verb)) {
		ctl.st[CTL_ST_VERB_DENIED]++;
		log_kind(LOG_K_CLIENT, LOG_WARNING,
			 "control: refused %s to uid %u (pid %d): not in control_admins",
			 ctlproto_verb_name(req.verb), (unsigned)c->uid, (int)c->pid);
		memmove(c->in, c->in + flen, c->inlen - flen);
		c->inlen -= flen;
		snprintf(err, sizeof(err), "%s changes state: uid %u is not in control_admins",
			 ctlproto_verb_name(req.verb), (unsigned)c->uid);
		conn_error(c, CTLS_DENIED, err, false);
		return;
	}
	jb_begin(&c->out, CTLS_OK);
	rc = verb_table[req.verb](c, &req, err, sizeof(err));
	/* the frame is used up (values were only read during the call) */
	memmove(c->in, c->in + flen, c->inlen - flen);
	c->inlen -= flen;
	if (rc < 0)
		return;		/* answered later */
	if (rc != CTLS_OK) {
		conn_error(c, (enum ctlproto_status)rc, err[0] ? err : ctlproto_status_name((unsigned)rc),
			   false);
		return;
	}
	conn_answer(c, CTLS_OK, false);
}

/* Looks for a whole request in c->in and handles it. */
static void conn_parse(struct ctl_conn *c)
{
	struct ctlproto_hdr hdr;
	long n;

	if (c->state != CS_READ || c->inlen == 0)
		return;
	n = ctlproto_frame_check(c->in, c->inlen, CTLPROTO_KIND_REQ, CTLPROTO_REQ_MAX, &hdr);
	if (n < 0)
		refuse(c, (int)n, NULL);
	else if (n > 0)
		conn_dispatch(c, (size_t)n, &hdr);
}

static void conn_read(struct ctl_conn *c)
{
	ssize_t n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);

	if (n == 0) {
		conn_close(c);
		return;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		ctl.st[CTL_ST_IO_ERRORS]++;
		conn_close(c);
		return;
	}
	c->inlen += (size_t)n;
	c->last_ms = daemon_now_ms();
	conn_parse(c);
}

static void conn_write(struct ctl_conn *c)
{
	struct jbuf *j = &c->out;
	ssize_t n = send(c->fd, j->buf + c->outpos, j->len - c->outpos, MSG_NOSIGNAL);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		ctl.st[CTL_ST_IO_ERRORS]++;
		conn_close(c);
		return;
	}
	c->outpos += (size_t)n;
	c->last_ms = daemon_now_ms();
	if (c->outpos < j->len)
		return;
	if (c->state == CS_CLOSE) {
		conn_close(c);
		return;
	}
	/* keep the answer buffer small between requests */
	if (j->cap > CTL_OUT_INIT) {
		free(j->buf);
		memset(j, 0, sizeof(*j));
	}
	c->state = CS_READ;
	daemon_mod_fd(c->fd, EPOLLIN);
	conn_parse(c);	/* a pipelined request may already be here */
}

static void conn_io(int fd, uint32_t events, void *arg)
{
	struct ctl_conn *c = arg;

	(void)fd;
	if (c->fd < 0)
		return;
	if ((events & EPOLLOUT) && (c->state == CS_WRITE || c->state == CS_CLOSE)) {
		conn_write(c);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->state == CS_READ) {
		if (c->inlen >= sizeof(c->in)) {
			/* cannot happen: the frame check refuses before */
			refuse(c, CTLP_E_TOOBIG, NULL);
			return;
		}
		conn_read(c);
		return;
	}
	if (events & (EPOLLHUP | EPOLLERR))
		conn_close(c);
}

/* ---------------------------------------------------------------------- */
/* accepting                                                               */

bool ctl_verb_readonly(unsigned verb)
{
	switch (verb) {
	case CTLV_STATUS:
	case CTLV_STATS:
	case CTLV_LOOKUP:
	case CTLV_DOMAINS:
	case CTLV_BLOCKS:
	case CTLV_TOP:
		return true;
	default:
		return false; /* verify too: it probes a destination and stores */
	}
}

/* Whether uid/gid is one of list: a uid entry by number, a group entry by
 * the primary gid or, for a uid with a passwd entry, its group list. */
static bool principal_match(const struct config_principal *list, unsigned n, uid_t uid,
			    gid_t gid)
{
	bool groups_read = false;
	gid_t groups[64];
	int ngroups = 0;

	for (unsigned i = 0; i < n; i++) {
		if (!list[i].group) {
			if (list[i].id == uid)
				return true;
			continue;
		}
		if (list[i].id == gid)
			return true;
		if (!groups_read) {
			struct passwd *pw = getpwuid(uid);
			groups_read = true;
			ngroups = (int)(sizeof(groups) / sizeof(groups[0]));
			if (!pw || getgrouplist(pw->pw_name, pw->pw_gid, groups, &ngroups) < 0)
				ngroups = 0;
		}
		for (int g = 0; g < ngroups; g++)
			if (groups[g] == list[i].id)
				return true;
	}
	return false;
}

enum ctl_role ctl_role(const struct config *cfg, uid_t uid, gid_t gid)
{
	if (uid == 0 || principal_match(cfg->control_admins, cfg->ncontrol_admins, uid, gid))
		return CTL_ROLE_ADMIN;
	if (principal_match(cfg->control_readers, cfg->ncontrol_readers, uid, gid))
		return CTL_ROLE_READER;
	return CTL_ROLE_NONE;
}

static enum ctl_role role_of(uid_t uid, gid_t gid)
{
	if (uid == 0 || principal_match(ctl.admins, ctl.nadmins, uid, gid))
		return CTL_ROLE_ADMIN;
	if (principal_match(ctl.readers, ctl.nreaders, uid, gid))
		return CTL_ROLE_READER;
	return CTL_ROLE_NONE;
}

/* Best effort: one error frame on a socket about to be closed.  The frame
 * is small, the socket buffer empty: a non-blocking send writes all of it. */
static void refuse_fd(int fd, enum ctlproto_status st, const char *msg)
{
	uint8_t buf[256];
	long n = ctlproto_err_answer(buf, sizeof(buf), st, msg);

	if (n > 0 && send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the caller hung up already: nothing to tell */
	}
	close(fd);
}

static void ctl_accept(int lfd, uint32_t events, void *arg)
{
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	struct ctl_conn *c;
	char msg[128];
	int fd;

	(void)events;
	(void)arg;
	(void)lfd;
	fd = listen_accept(&ctl.lls, NULL, NULL);
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
		ctl.st[CTL_ST_DENIED]++;
		refuse_fd(fd, CTLS_DENIED, "peer credentials unavailable");
		return;
	}
	enum ctl_role role = role_of(cred.uid, cred.gid);
	if (role == CTL_ROLE_NONE) {
		ctl.st[CTL_ST_DENIED]++;
		log_kind(LOG_K_CLIENT, LOG_WARNING,
			 "control: refused uid %u (pid %d): not in control_admins or control_readers",
			 (unsigned)cred.uid, (int)cred.pid);
		snprintf(msg, sizeof(msg), "uid %u may not use the control socket",
			 (unsigned)cred.uid);
		refuse_fd(fd, CTLS_DENIED, msg);
		return;
	}
	c = conn_slot();
	if (!c || conns_of(cred.uid) >= ctl.max_per_uid) {
		ctl.st[CTL_ST_BUSY]++;
		if (c)
			snprintf(msg, sizeof(msg), "too many connections from uid %u (limit %u)",
				 (unsigned)cred.uid, ctl.max_per_uid);
		else
			snprintf(msg, sizeof(msg), "too many connections (limit %u)",
				 CTL_CONN_MAX);
		refuse_fd(fd, CTLS_BUSY, msg);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->uid = cred.uid;
	c->pid = cred.pid;
	c->admin = role == CTL_ROLE_ADMIN;
	c->state = CS_READ;
	c->last_ms = daemon_now_ms();
	if (daemon_add_fd(fd, EPOLLIN, conn_io, c) < 0) {
		close(fd);
		c->fd = -1;
		return;
	}
	ctl.st[CTL_ST_ACCEPTED]++;
}

static void ctl_sweep(void *arg)
{
	uint64_t now = daemon_now_ms();

	(void)arg;
	for (unsigned i = 0; i < CTL_CONN_MAX; i++) {
		struct ctl_conn *c = &ctl.conn[i];
		/* a running verify has its own timeouts in the callout engine */
		if (c->fd < 0 || c->state == CS_WAIT)
			continue;
		if (now - c->last_ms >= CTL_IDLE_MS) {
			ctl.st[CTL_ST_IDLE_CLOSED]++;
			conn_close(c);
		}
	}
}

/* ---------------------------------------------------------------------- */
/* life cycle                                                              */

static int listen_at(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control_socket %s: path too long (max %zu)", path,
			 sizeof(sun.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -errno;
	}
	/* a live daemon answers on the path: never steal its socket */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 || errno == EAGAIN) {
		close(fd);
		snprintf(err, errlen, "control_socket %s: another rcptgated is listening", path);
		return -EADDRINUSE;
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -errno;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		int e = errno;
		close(fd);
		snprintf(err, errlen, "control_socket %s: unlink: %s", path, strerror(e));
		return -e;
	}
	/* the mode is right from the start: no window with a wider one */
	old = umask(0777 & ~CTL_SOCKET_MODE);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		umask(old);
		close(fd);
		snprintf(err, errlen, "control_socket %s: bind: %s", path, strerror(e));
		return -e;
	}
	umask(old);
	if (chmod(path, CTL_SOCKET_MODE) < 0 || listen(fd, CTL_BACKLOG) < 0) {
		int e = errno;
		close(fd);
		unlink(path);
		snprintf(err, errlen, "control_socket %s: %s", path, strerror(e));
		return -e;
	}
	return fd;
}

static void apply_limits(const struct config *cfg)
{
	ctl.nadmins = cfg->ncontrol_admins < CONFIG_MAX_UIDS ? cfg->ncontrol_admins : CONFIG_MAX_UIDS;
	memcpy(ctl.admins, cfg->control_admins, ctl.nadmins * sizeof(ctl.admins[0]));
	ctl.nreaders = cfg->ncontrol_readers < CONFIG_MAX_UIDS ? cfg->ncontrol_readers
							       : CONFIG_MAX_UIDS;
	memcpy(ctl.readers, cfg->control_readers, ctl.nreaders * sizeof(ctl.readers[0]));
	ctl.max_per_uid = cfg->control_max_clients ? cfg->control_max_clients
						   : CTL_DEF_MAX_PER_UID;
	if (ctl.max_per_uid > CTL_CONN_MAX)
		ctl.max_per_uid = CTL_CONN_MAX;
}

int ctl_start(const struct config *cfg, char *err, size_t errlen)
{
	int fd, rc;

	if (ctl.started) {
		snprintf(err, errlen, "control socket already started");
		return -EALREADY;
	}
	if (!cfg->control_socket[0]) {
		snprintf(err, errlen, "control_socket is empty");
		return -EINVAL;
	}
	for (unsigned i = 0; i < CTL_CONN_MAX; i++)
		ctl.conn[i].fd = -1;
	fd = listen_at(cfg->control_socket, err, errlen);
	if (fd < 0)
		return fd;
	rc = daemon_add_fd(fd, EPOLLIN, ctl_accept, NULL);
	if (rc < 0) {
		close(fd);
		unlink(cfg->control_socket);
		snprintf(err, errlen, "control socket: event loop: %s", strerror(-rc));
		return rc;
	}
	ctl.sweep_timer = daemon_timer_add(CTL_SWEEP_MS, CTL_SWEEP_MS, ctl_sweep, NULL);
	if (!ctl.sweep_timer) {
		daemon_del_fd(fd);
		close(fd);
		unlink(cfg->control_socket);
		snprintf(err, errlen, "control socket: no memory for a timer");
		return -ENOMEM;
	}
	ctl.lfd = fd;
	ctl.lls = (struct listen_state){.fd = fd};
	snprintf(ctl.path, sizeof(ctl.path), "%s", cfg->control_socket);
	apply_limits(cfg);
	ctl.started = true;
	return 0;
}

int ctl_reload(const struct config *cfg, char *err, size_t errlen)
{
	if (!ctl.started)
		return ctl_start(cfg, err, errlen);
	if (strcmp(cfg->control_socket, ctl.path) != 0) {
		int fd = listen_at(cfg->control_socket, err, errlen);
		if (fd < 0)
			return fd;	/* keep the old socket and settings */
		if (daemon_add_fd(fd, EPOLLIN, ctl_accept, NULL) < 0) {
			close(fd);
			unlink(cfg->control_socket);
			snprintf(err, errlen, "control socket: event loop registration failed");
			return -EIO;
		}
		listen_forget(&ctl.lls);
		daemon_del_fd(ctl.lfd);
		close(ctl.lfd);
		unlink(ctl.path);
		ctl.lfd = fd;
		ctl.lls = (struct listen_state){.fd = fd};
		snprintf(ctl.path, sizeof(ctl.path), "%s", cfg->control_socket);
	}
	/* admitted connections stay; the new uid list applies to new ones */
	apply_limits(cfg);
	return 0;
}

void ctl_stop(void)
{
	if (!ctl.started)
		return;
	for (unsigned i = 0; i < CTL_CONN_MAX; i++)
		conn_close(&ctl.conn[i]);
	daemon_timer_cancel(ctl.sweep_timer);
	listen_forget(&ctl.lls);
	daemon_del_fd(ctl.lfd);
	close(ctl.lfd);
	unlink(ctl.path);
	ctl.lfd = -1;
	ctl.started = false;
}

void ctl_stats_foreach(core_stat_fn fn, void *arg)
{
	for (unsigned i = 0; i < CTL_ST__COUNT; i++)
		fn("ctl", ctl_stat_names[i], ctl.st[i], ctl_stat_help[i], arg);
	fn("ctl", "open", ctl_conns_open(), "connections open now", arg);
}

uint64_t ctl_stat(enum ctl_stat_id id)
{
	return id < CTL_ST__COUNT ? ctl.st[id] : 0;
}

unsigned ctl_conns_open(void)
{
	unsigned n = 0;

	if (!ctl.started)
		return 0;
	for (unsigned i = 0; i < CTL_CONN_MAX; i++)
		if (ctl.conn[i].fd >= 0)
			n++;
	return n;
}
