/*
 * xdp.c — rcptgated's xdp module (see xdp.h): the source blocklist policy
 * (manual blocks, harvest blocks with backoff, the allowlist, expiry) kept
 * in every port pinned under xdp_pin_dir through the map layer
 * (bpf/rg_maps.h).
 *
 * Thread: rcptgated's main (event-loop) thread.
 *
 * Each port runs its own instance of the program (DPDK loads one per port, and
 * each needs its own xsks_map keyed by RX queue), so every port has its own
 * maps.  The blocklist is therefore written to every port; rcptgated keeps the
 * list it owns in memory and replays it into a port whose program was
 * replaced.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xdp.h"

#include "core.h"
#include "log.h"

#define XDP_MOD_ALLOW_MAX 1024	/* allowlist prefixes */
#define XDP_MOD_BLOCK_MAX XDP_BLOCK_MAX

/* Module counters, named for `rcptctl stats` (group "xdp"). */
#define XDP_MOD_STATS(X)                                                             \
	X(PORTS, "ports", "ports with the program pinned under xdp_pin_dir")         \
	X(PORTS_LIVE, "ports_live", "of those, ports whose program is attached now")  \
	X(HARVEST_EVENTS, "harvest_events", "harvest reports from the data plane")    \
	X(HARVEST_ALLOWED, "harvest_allowlisted", "harvest reports for allowlisted sources") \
	X(BLOCKS_ACTIVE, "blocks_active", "prefixes blocked by rcptgated now")       \
	X(BLOCKS_ADDED, "blocks_added", "blocks added (harvest and manual)")          \
	X(BLOCKS_EXPIRED, "blocks_expired", "blocks removed at expiry")              \
	X(BLOCKS_FULL, "blocks_full", "blocks refused: blocklist full")               \
	X(MAP_ERRORS, "map_errors", "failed map updates")                             \
	X(REPLAYS, "port_replays", "ports whose program changed and got the blocklist again") \
	X(PORTS_OVER, "ports_over_limit", "pinned ports ignored: more than XDP_MOD_PORTS_MAX")

enum xdp_mod_stat {
#define XDP_MOD_ENUM(id, name, help) XDP_MS_##id,
	XDP_MOD_STATS(XDP_MOD_ENUM)
#undef XDP_MOD_ENUM
	XDP_MS__COUNT
};

static const char *const xdp_mod_stat_names[XDP_MS__COUNT] = {
#define XDP_MOD_NAME(id, name, help) [XDP_MS_##id] = name,
	XDP_MOD_STATS(XDP_MOD_NAME)
#undef XDP_MOD_NAME
};

static const char *const xdp_mod_stat_help[XDP_MS__COUNT] = {
#define XDP_MOD_HELP(id, name, help) [XDP_MS_##id] = help,
	XDP_MOD_STATS(XDP_MOD_HELP)
#undef XDP_MOD_HELP
};

/* A prefix rcptgated blocks, or remembers for backoff after its block ended. */
struct blk {
	struct xdp_prefix prefix;
	uint64_t added_s;	/* realtime */
	uint64_t expires_s;	/* realtime; 0 = never */
	uint64_t forget_s;	/* realtime: drop the offence history after this */
	uint32_t offences;
	bool manual;
	bool active;		/* in the maps */
};

static struct {
	bool started;
	char pin_root[CONFIG_PATH_MAX];
	uint32_t ttl, ttl_max;
	struct xdp_prefix *allow;
	unsigned nallow;
	struct blk *blk;
	unsigned nblk, cap;
	struct xdp_port ports[XDP_MOD_PORTS_MAX];
	unsigned nports;
	uint64_t timer;
	uint64_t st[XDP_MS__COUNT];
} xm;

static uint64_t wall_s(void)
{
	return xdp_wall_ns() / 1000000000u;
}

/* realtime expiry → the program's monotonic clock */
static uint64_t expiry_mono_ns(uint64_t expires_s)
{
	uint64_t now_s = wall_s();

	if (!expires_s)
		return 0;
	return xdp_mono_ns() + (expires_s > now_s ? expires_s - now_s : 0) * 1000000000u;
}

static int load_allowlist(const char *path, struct xdp_prefix **out, unsigned *n, char *err,
			  size_t errlen)
{
	struct xdp_prefix *list = NULL;
	char line[256], *s, *e;
	unsigned cnt = 0, lineno = 0;
	FILE *f;

	*out = NULL;
	*n = 0;
	if (!path[0])
		return 0;
	f = fopen(path, "re");
	if (!f)
		return xdp_fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	list = calloc(XDP_MOD_ALLOW_MAX, sizeof(*list));
	if (!list) {
		fclose(f);
		return xdp_fail(err, errlen, -ENOMEM, "out of memory");
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if ((s = strchr(line, '#')))
			*s = '\0';
		for (s = line; *s == ' ' || *s == '\t'; s++)
			;
		for (e = s + strlen(s); e > s && (e[-1] == '\n' || e[-1] == ' ' ||
						  e[-1] == '\t' || e[-1] == '\r'); e--)
			;
		*e = '\0';
		if (!*s)
			continue;
		if (cnt == XDP_MOD_ALLOW_MAX) {
			fclose(f);
			free(list);
			return xdp_fail(err, errlen, -E2BIG, "%s:%u: more than %u prefixes", path,
				    lineno, XDP_MOD_ALLOW_MAX);
		}
		if (xdp_prefix_parse(s, &list[cnt])) {
			fclose(f);
			free(list);
			return xdp_fail(err, errlen, -EINVAL, "%s:%u: not a prefix: %s", path, lineno,
				    s);
		}
		cnt++;
	}
	fclose(f);
	*out = list;
	*n = cnt;
	return 0;
}

static const struct xdp_prefix *allowlisted(const struct xdp_prefix *p)
{
	unsigned i;

	for (i = 0; i < xm.nallow; i++)
		if (xdp_prefix_overlaps(p, &xm.allow[i]))
			return &xm.allow[i];
	return NULL;
}

static struct blk *blk_find(const struct xdp_prefix *p)
{
	unsigned i;

	for (i = 0; i < xm.nblk; i++)
		if (xdp_prefix_equal(&xm.blk[i].prefix, p))
			return &xm.blk[i];
	return NULL;
}

static struct blk *blk_new(const struct xdp_prefix *p)
{
	struct blk *b;
	unsigned cap;

	if (xm.nblk == xm.cap) {
		if (xm.cap >= XDP_MOD_BLOCK_MAX)
			return NULL;
		cap = xm.cap ? xm.cap * 2 : 64;
		b = realloc(xm.blk, cap * sizeof(*b));
		if (!b)
			return NULL;
		xm.blk = b;
		xm.cap = cap;
	}
	b = &xm.blk[xm.nblk++];
	memset(b, 0, sizeof(*b));
	b->prefix = *p;
	return b;
}

static void blk_remove(struct blk *b)
{
	*b = xm.blk[--xm.nblk];
}

static void push_block(const struct blk *b)
{
	unsigned i;

	for (i = 0; i < xm.nports; i++)
		if (xdp_port_block_put(&xm.ports[i], &b->prefix, expiry_mono_ns(b->expires_s),
				       b->added_s * 1000000000u))
			xm.st[XDP_MS_MAP_ERRORS]++;
}

static int pull_block(const struct xdp_prefix *p)
{
	unsigned i, found = 0;
	int rc;

	for (i = 0; i < xm.nports; i++) {
		rc = xdp_port_block_del(&xm.ports[i], p);
		if (rc == 0)
			found++;
		else if (rc != -ENOENT)
			xm.st[XDP_MS_MAP_ERRORS]++;
	}
	return found ? 0 : -ENOENT;
}

/* Put rcptgated's blocks into port i (its program is new to us). */
static void replay(unsigned i)
{
	unsigned j;

	for (j = 0; j < xm.nblk; j++)
		if (xm.blk[j].active &&
		    xdp_port_block_put(&xm.ports[i], &xm.blk[j].prefix,
				       expiry_mono_ns(xm.blk[j].expires_s),
				       xm.blk[j].added_s * 1000000000u))
			xm.st[XDP_MS_MAP_ERRORS]++;
}

/* Follow the ports pinned under pin_root: new ones, replaced programs (a
 * restarted data plane: adopt the new one, carrying the old config over),
 * vanished pins. */
static void scan_ports(void)
{
	struct xdp_port p, *cur;
	struct dirent *de;
	bool seen[XDP_MOD_PORTS_MAX] = {false};
	unsigned i, live = 0;
	DIR *d;

	d = opendir(xm.pin_root);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= IF_NAMESIZE)
			continue;
		if (xdp_port_open(xm.pin_root, de->d_name, &p, NULL, 0))
			continue;
		/* the pins are older than the attached program: adopt it */
		if (xdp_port_live(&p) == 0) {
			struct xdp_port n;

			if (xdp_port_adopt(xm.pin_root, de->d_name, NULL, &n, NULL, 0) == 0) {
				xdp_port_close(&p);
				p = n;
			}
		}
		cur = NULL;
		for (i = 0; i < xm.nports; i++)
			if (strcmp(xm.ports[i].ifname, p.ifname) == 0)
				cur = &xm.ports[i];
		if (cur && cur->map_id[XDP_M_BLOCK4] == p.map_id[XDP_M_BLOCK4]) {
			xdp_port_close(&p);
			seen[cur - xm.ports] = true;
			continue;
		}
		if (!cur) {
			if (xm.nports == XDP_MOD_PORTS_MAX) {
				xm.st[XDP_MS_PORTS_OVER]++;
				xdp_port_close(&p);
				continue;
			}
			cur = &xm.ports[xm.nports++];
		} else {
			xdp_port_close(cur);
			xm.st[XDP_MS_REPLAYS]++;
		}
		*cur = p;
		seen[cur - xm.ports] = true;
		replay((unsigned)(cur - xm.ports));
		log_msg(LOG_INFO, "xdp: managing %s (%s)", cur->ifname,
			xdp_port_live(cur) == 1 ? "program attached" : "pinned maps only");
	}
	if (d)
		closedir(d);
	for (i = xm.nports; i-- > 0;) {
		if (seen[i])
			continue;
		xdp_port_close(&xm.ports[i]);
		xm.ports[i] = xm.ports[--xm.nports];
	}
	for (i = 0; i < xm.nports; i++)
		if (xdp_port_live(&xm.ports[i]) == 1)
			live++;
	xm.st[XDP_MS_PORTS] = xm.nports;
	xm.st[XDP_MS_PORTS_LIVE] = live;
}

static void expire_blocks(void)
{
	uint64_t now = wall_s();
	char buf[XDP_PREFIX_STRLEN];
	unsigned i, active = 0;

	for (i = xm.nblk; i-- > 0;) {
		struct blk *b = &xm.blk[i];

		if (b->active && b->expires_s && now >= b->expires_s) {
			pull_block(&b->prefix);
			b->active = false;
			xm.st[XDP_MS_BLOCKS_EXPIRED]++;
			xdp_prefix_format(&b->prefix, buf, sizeof(buf));
			log_msg(LOG_NOTICE, "xdp: block of %s expired", buf);
		}
		if (!b->active && now >= b->forget_s) {
			blk_remove(b);
			continue;
		}
		if (b->active)
			active++;
	}
	xm.st[XDP_MS_BLOCKS_ACTIVE] = active;
}

static void tick(void *arg)
{
	(void)arg;
	scan_ports();
	expire_blocks();
}

/* Block p for ttl_s (0 = until unblocked). */
static int block_prefix(const struct xdp_prefix *p, uint32_t ttl_s, bool manual,
			uint32_t *offences)
{
	uint64_t now = wall_s();
	struct blk *b;

	b = blk_find(p);
	if (!b) {
		b = blk_new(p);
		if (!b) {
			xm.st[XDP_MS_BLOCKS_FULL]++;
			return -ENOSPC;
		}
	}
	if (!manual) {
		uint32_t t = xm.ttl;

		b->offences++;
		/* backoff: the block time doubles with each repeat, up to ttl_max */
		for (uint32_t k = 1; k < b->offences && t < xm.ttl_max; k++)
			t = t > xm.ttl_max / 2 ? xm.ttl_max : t * 2;
		ttl_s = t < xm.ttl_max ? t : xm.ttl_max;
	}
	if (!b->active)
		b->added_s = now;
	b->manual = manual || (b->active && b->manual);
	b->expires_s = ttl_s ? now + ttl_s : 0;
	b->forget_s = (b->expires_s ? b->expires_s : now) + xm.ttl_max;
	b->active = true;
	push_block(b);
	xm.st[XDP_MS_BLOCKS_ADDED]++;
	if (offences)
		*offences = b->offences;
	return 0;
}

static void on_harvest(const struct msg_event *ev, void *arg)
{
	char buf[XDP_PREFIX_STRLEN], abuf[XDP_PREFIX_STRLEN], cli[INET6_ADDRSTRLEN];
	const struct xdp_prefix *a;
	const struct blk *b;
	struct xdp_prefix p;
	unsigned len;

	(void)arg;
	xm.st[XDP_MS_HARVEST_EVENTS]++;
	len = ev->prefix_len ? ev->prefix_len : (ev->family == 4 ? 32 : 128);
	if (xdp_prefix_make(ev->family, ev->client_ip, len, &p))
		return;
	xdp_prefix_format(&p, buf, sizeof(buf));
	inet_ntop(ev->family == 4 ? AF_INET : AF_INET6, ev->client_ip, cli, sizeof(cli));
	a = allowlisted(&p);
	if (a) {
		xm.st[XDP_MS_HARVEST_ALLOWED]++;
		xdp_prefix_format(a, abuf, sizeof(abuf));
		log_kind(LOG_K_HARVEST, LOG_NOTICE,
			 "xdp: harvest from %s (%u invalid recipients): %s not blocked, "
			 "allowlisted by %s", cli, ev->count, buf, abuf);
		return;
	}
	if (block_prefix(&p, 0, false, NULL) || !(b = blk_find(&p))) {
		log_kind(LOG_K_HARVEST, LOG_WARNING,
			 "xdp: harvest from %s: cannot block %s: blocklist full", cli, buf);
		return;
	}
	log_kind(LOG_K_HARVEST, LOG_NOTICE,
		 "xdp: harvest from %s (%u invalid recipients): blocked %s for %us (offence %u)",
		 cli, ev->count, buf, (unsigned)(b->expires_s - wall_s()), b->offences);
}

static int apply_config(const struct config *cfg, char *err, size_t errlen)
{
	struct xdp_prefix *allow;
	unsigned nallow;
	int rc;

	rc = load_allowlist(cfg->block_allow, &allow, &nallow, err, errlen);
	if (rc)
		return rc;
	free(xm.allow);
	xm.allow = allow;
	xm.nallow = nallow;
	xm.ttl = cfg->block_ttl;
	xm.ttl_max = cfg->block_ttl_max;
	if (strcmp(xm.pin_root, cfg->xdp_pin_dir) != 0) {
		unsigned i;

		for (i = 0; i < xm.nports; i++)
			xdp_port_close(&xm.ports[i]);
		xm.nports = 0;
	}
	snprintf(xm.pin_root, sizeof(xm.pin_root), "%s", cfg->xdp_pin_dir);
	return 0;
}

int xdp_start(const struct config *cfg, char *err, size_t errlen)
{
	int rc;

	rc = apply_config(cfg, err, errlen);
	if (rc)
		return rc;
	xm.timer = daemon_timer_add(0, XDP_MOD_TICK_MS, tick, NULL);
	if (!xm.timer)
		return xdp_fail(err, errlen, -ENOMEM, "xdp: no timer");
	core_set_harvest_hook(on_harvest, NULL);
	xm.started = true;
	if (!xdp_maps_supported())
		log_msg(LOG_WARNING, "xdp: built without libbpf: harvest sources are not blocked");
	return 0;
}

int xdp_reload(const struct config *cfg, char *err, size_t errlen)
{
	return apply_config(cfg, err, errlen);
}

void xdp_stop(void)
{
	if (!xm.started)
		return;
	core_set_harvest_hook(NULL, NULL);
	daemon_timer_cancel(xm.timer);
	for (unsigned i = 0; i < xm.nports; i++)
		xdp_port_close(&xm.ports[i]);
	xm.nports = 0;
	/* the blocks stay in the maps: the program keeps enforcing them (it checks
	 * expiry itself) while rcptgated is down */
	free(xm.allow);
	free(xm.blk);
	memset(&xm, 0, sizeof(xm));
}

int xdp_block(const char *prefix, uint32_t ttl_s, char *err, size_t errlen)
{
	char abuf[XDP_PREFIX_STRLEN];
	const struct xdp_prefix *a;
	struct xdp_prefix p;

	if (!xdp_maps_supported())
		return xdp_fail(err, errlen, -ENOTSUP, "rcptgated was built without XDP support");
	if (xdp_prefix_parse(prefix, &p))
		return xdp_fail(err, errlen, -EINVAL, "not a prefix: %s", prefix);
	a = allowlisted(&p);
	if (a) {
		xdp_prefix_format(a, abuf, sizeof(abuf));
		return xdp_fail(err, errlen, -EPERM, "%s overlaps allowlisted %s", prefix, abuf);
	}
	if (block_prefix(&p, ttl_s, true, NULL))
		return xdp_fail(err, errlen, -ENOSPC, "blocklist full (%u)", XDP_MOD_BLOCK_MAX);
	xdp_prefix_format(&p, abuf, sizeof(abuf));
	if (ttl_s)
		log_msg(LOG_NOTICE, "xdp: %s blocked by hand for %us", abuf, ttl_s);
	else
		log_msg(LOG_NOTICE, "xdp: %s blocked by hand until unblocked", abuf);
	if (xm.nports == 0)
		xdp_fail(err, errlen, 0, "no XDP port under %s yet: applied when one appears",
		     xm.pin_root);
	return 0;
}

int xdp_unblock(const char *prefix, char *err, size_t errlen)
{
	struct xdp_prefix p;
	struct blk *b;
	int rc;

	if (xdp_prefix_parse(prefix, &p))
		return xdp_fail(err, errlen, -EINVAL, "not a prefix: %s", prefix);
	rc = pull_block(&p);
	b = blk_find(&p);
	if (b) {
		rc = b->active ? 0 : rc;
		blk_remove(b);	/* forgets the offences too: a deliberate pardon */
	}
	if (rc)
		return xdp_fail(err, errlen, -ENOENT, "%s is not blocked", prefix);
	return 0;
}

struct merge {
	struct xdp_block_info *v;
	struct xdp_prefix *pf;
	unsigned n, cap;
};

static int merge_one(const struct xdp_block_entry *e, void *arg)
{
	struct merge *m = arg;
	uint64_t now_mono = xdp_mono_ns(), now = wall_s();
	unsigned i;

	for (i = 0; i < m->n; i++)
		if (xdp_prefix_equal(&m->pf[i], &e->prefix))
			break;
	if (i == m->n) {
		if (m->n == m->cap)
			return 0;
		m->n++;
		memset(&m->v[i], 0, sizeof(m->v[i]));
		m->pf[i] = e->prefix;
		xdp_prefix_format(&e->prefix, m->v[i].prefix, sizeof(m->v[i].prefix));
		m->v[i].added_s = e->added_ns / 1000000000u;
		m->v[i].manual = true;	/* not rcptgated's: put by rg-xdp */
		if (e->expires_ns)
			m->v[i].expires_s = now + (e->expires_ns > now_mono ?
				(e->expires_ns - now_mono) / 1000000000u : 0);
	}
	m->v[i].hits += e->hits;
	m->v[i].ports++;
	return 0;
}

int xdp_blocks_foreach(xdp_block_fn fn, void *arg)
{
	struct xdp_block_info one;
	unsigned i;
	int rc = 0;

	struct merge m = {0};
	unsigned j;

	m.cap = 2 * XDP_BLOCK_MAX;
	m.v = calloc(m.cap, sizeof(*m.v));
	m.pf = calloc(m.cap, sizeof(*m.pf));
	if (!m.v || !m.pf) {
		free(m.v);
		free(m.pf);
		return -ENOMEM;
	}
	for (i = 0; i < xm.nports; i++)
		xdp_port_block_foreach(&xm.ports[i], merge_one, &m);
	for (i = 0; i < m.n && rc == 0; i++) {
		struct blk *b = blk_find(&m.pf[i]);

		if (b && b->active) {
			m.v[i].offences = b->offences;
			m.v[i].manual = b->manual;
			m.v[i].expires_s = b->expires_s;
			m.v[i].added_s = b->added_s;
		}
		rc = fn(&m.v[i], arg);
	}
	/* blocks no port holds yet (no port pinned) */
	for (j = 0; j < xm.nblk && rc == 0; j++) {
		const struct blk *b = &xm.blk[j];

		if (!b->active)
			continue;
		for (i = 0; i < m.n; i++)
			if (xdp_prefix_equal(&m.pf[i], &b->prefix))
				break;
		if (i < m.n)
			continue;
		memset(&one, 0, sizeof(one));
		xdp_prefix_format(&b->prefix, one.prefix, sizeof(one.prefix));
		one.added_s = b->added_s;
		one.expires_s = b->expires_s;
		one.offences = b->offences;
		one.manual = b->manual;
		rc = fn(&one, arg);
	}
	free(m.v);
	free(m.pf);
	return rc;
}

void xdp_stats_foreach(core_stat_fn fn, void *arg)
{
	unsigned i;

	if (xdp_maps_supported()) { /* the program's counters, summed over ports */
		uint64_t sum[XDP_CTR__COUNT] = {0}, c[XDP_CTR__COUNT];
		unsigned j;

		for (i = 0; i < xm.nports; i++) {
			if (xdp_port_counters(&xm.ports[i], c))
				continue;
			for (j = 0; j < XDP_CTR__COUNT; j++)
				sum[j] += c[j];
		}
		for (j = 0; j < XDP_CTR__COUNT; j++)
			fn("xdp", xdp_ctr_names[j], sum[j], xdp_ctr_help[j], arg);
	}
	for (i = 0; i < XDP_MS__COUNT; i++)
		fn("xdp", xdp_mod_stat_names[i], xm.st[i], xdp_mod_stat_help[i], arg);
}
