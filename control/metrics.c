/*
 * metrics.c — /metrics for Prometheus (see metrics.h).
 *
 * The HTTP side is libmicrohttpd's (Debian's libmicrohttpd12) in its
 * "external epoll" mode: MHD keeps one epoll fd for its listener and
 * connections; the loop watches that fd and calls MHD_run(), which does
 * not block; a 1 s timer runs it too so idle connections time out.  Only
 * GET /metrics is answered; connections are capped (METRICS_MAX_CONNS) and
 * time out after METRICS_CONN_TIMEOUT_S.
 *
 * Naming (Prometheus conventions): rcptgate_ prefix, the rcptctl group and
 * counter name in snake case, _total for counters, base units (seconds,
 * bytes).  A counter of rcptctl stats is a gauge here when it is a level
 * rather than a count of events (metric_is_gauge()).
 * Thread: main thread only.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "log.h"
#include "stats.h"

#ifdef RG_HAVE_MICROHTTPD
#include <microhttpd.h>
#endif

#define METRICS_MAX_CONNS 16u
#define METRICS_CONN_TIMEOUT_S 10u
#define METRICS_NAME_MAX 128u

static struct {
	char listen[CONFIG_PATH_MAX];
#ifdef RG_HAVE_MICROHTTPD
	struct MHD_Daemon *mhd;
#endif
	int fd;
	uint64_t timer;
	uint64_t requests, not_found, errors;
} mt = {.fd = -1};

/* ---------------------------------------------------------------------- */
/* the exposition                                                          */

/* A metric name from parts: [a-z0-9_], anything else becomes '_'. */
static void metric_name(char *out, size_t len, const char *a, const char *b, const char *suffix)
{
	snprintf(out, len, "rcptgate_%s_%s%s", a, b, suffix);
	for (char *p = out; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			*p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : '_';
}

static bool ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && !strcmp(s + n - m, suf);
}

/* Levels among rcptctl's counters: entries held, ring depths, connections
 * open, ports and blocks present.  Everything else counts events. */
static bool metric_is_gauge(const char *name)
{
	return ends_with(name, "entries") || ends_with(name, "_depth") || !strcmp(name, "open") ||
	       ends_with(name, "_open") || ends_with(name, "_live") || ends_with(name, "_active") ||
	       !strcmp(name, "ports");
}

/* HELP text: backslash and newline escaped. */
static void help_text(FILE *f, const char *s)
{
	for (; s && *s; s++)
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
}

/* A label value: backslash, quote and newline escaped. */
static void label_value(FILE *f, const char *s)
{
	for (; *s; s++)
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s ", name);
	help_text(f, help && *help ? help : name);
	fprintf(f, "\n# TYPE %s %s\n", name, type);
}

/* Family names already written in this exposition (a name twice would be
 * an invalid exposition: the first one wins). */
struct seen {
	char (*name)[METRICS_NAME_MAX];
	size_t n, cap;
	int err;
};

static bool seen_add(struct seen *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->name[i], name))
			return false;
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 256;
		void *p = realloc(s->name, nc * sizeof(*s->name));
		if (!p) {
			s->err = -ENOMEM;
			return false;
		}
		s->name = p;
		s->cap = nc;
	}
	snprintf(s->name[s->n++], METRICS_NAME_MAX, "%s", name);
	return true;
}

struct render {
	FILE *f;
	struct seen seen;
};

static void on_stat(const char *group, const char *name, uint64_t value, const char *help,
		    void *arg)
{
	struct render *r = arg;
	if (!strcmp(group, "dataplane"))
		return; /* per lcore, below */
	bool gauge = metric_is_gauge(name);
	char m[METRICS_NAME_MAX];
	metric_name(m, sizeof(m), group, name, gauge ? "" : "_total");
	if (!seen_add(&r->seen, m))
		return;
	family(r->f, m, gauge ? "gauge" : "counter", help);
	fprintf(r->f, "%s %" PRIu64 "\n", m, value);
}

struct lcores {
	unsigned n;
	unsigned id[SHM_MAX_LCORES];
	bool online[SHM_MAX_LCORES];
	uint64_t ctr[SHM_MAX_LCORES][STAT__COUNT];
};

static void on_lcore(unsigned lcore, bool online, const uint64_t *ctr, void *arg)
{
	struct lcores *l = arg;
	if (l->n == SHM_MAX_LCORES)
		return;
	l->id[l->n] = lcore;
	l->online[l->n] = online;
	memcpy(l->ctr[l->n], ctr, sizeof(l->ctr[0]));
	l->n++;
}

static void render_dataplane(struct render *r)
{
	struct lcores *l = calloc(1, sizeof(*l));
	if (!l) {
		r->seen.err = -ENOMEM;
		return;
	}
	core_lcores_foreach(on_lcore, l);
	FILE *f = r->f;
	family(f, "rcptgate_dataplane_lcore_online", "gauge",
	       "1 while the data-plane lcore runs, 0 after it stopped");
	for (unsigned i = 0; i < l->n; i++)
		fprintf(f, "rcptgate_dataplane_lcore_online{lcore=\"%u\"} %d\n", l->id[i],
			l->online[i]);
	for (int k = 0; k < STAT__COUNT; k++) {
		char m[METRICS_NAME_MAX];
		metric_name(m, sizeof(m), "dataplane", stats_names[k], "_total");
		if (!seen_add(&r->seen, m))
			continue;
		family(f, m, "counter", stats_help[k]);
		for (unsigned i = 0; i < l->n; i++)
			fprintf(f, "%s{lcore=\"%u\"} %" PRIu64 "\n", m, l->id[i], l->ctr[i][k]);
		if (!l->n) /* no data plane ever attached: the sums, all 0 */
			fprintf(f, "%s{lcore=\"none\"} 0\n", m);
	}
	free(l);
}

static void render_status(struct render *r)
{
	struct core_status st;
	if (core_status(&st))
		return;
	FILE *f = r->f;
	family(f, "rcptgate_start_time_seconds", "gauge", "when rcptgated started (unix time)");
	fprintf(f, "rcptgate_start_time_seconds %" PRIu64 "\n", st.started_s);
	family(f, "rcptgate_config_loaded_time_seconds", "gauge",
	       "when the configuration in force was loaded (unix time)");
	fprintf(f, "rcptgate_config_loaded_time_seconds %" PRIu64 "\n", st.config_loaded_s);
	family(f, "rcptgate_domains", "gauge", "managed domains");
	fprintf(f, "rcptgate_domains %u\n", st.domains);
	family(f, "rcptgate_shm_size_bytes", "gauge", "size of the shared-memory file");
	fprintf(f, "rcptgate_shm_size_bytes %" PRIu64 "\n", (uint64_t)st.shm_size);
	family(f, "rcptgate_table_generation", "gauge", "recipient table generation (grows)");
	fprintf(f, "rcptgate_table_generation %" PRIu64 "\n", (uint64_t)st.table_gen);
	family(f, "rcptgate_list_addresses", "gauge", "addresses from static lists");
	fprintf(f, "rcptgate_list_addresses %" PRIu64 "\n", (uint64_t)st.list_addresses);
	family(f, "rcptgate_dataplane_lcores_online", "gauge", "data-plane lcores running");
	fprintf(f, "rcptgate_dataplane_lcores_online %u\n", st.dp_lcores_online);
	if (st.dp_heartbeat_age_ms != UINT64_MAX) {
		family(f, "rcptgate_dataplane_heartbeat_age_seconds", "gauge",
		       "age of the freshest data-plane heartbeat");
		fprintf(f, "rcptgate_dataplane_heartbeat_age_seconds %.3f\n",
			(double)st.dp_heartbeat_age_ms / 1000.0);
	}
	family(f, "rcptgate_callouts_pending", "gauge", "addresses waiting for a callout");
	fprintf(f, "rcptgate_callouts_pending %" PRIu64 "\n", (uint64_t)st.callouts_pending);
	family(f, "rcptgate_callouts_inflight", "gauge", "addresses being asked now");
	fprintf(f, "rcptgate_callouts_inflight %" PRIu64 "\n", (uint64_t)st.callouts_inflight);
	family(f, "rcptgate_callout_sessions_open", "gauge", "callout SMTP sessions open");
	fprintf(f, "rcptgate_callout_sessions_open %" PRIu64 "\n", (uint64_t)st.sessions_open);
}

static void render_latency(struct render *r)
{
	struct core_latency lt;
	core_callout_latency(&lt);
	FILE *f = r->f;
	const char *m = "rcptgate_callout_duration_seconds";
	family(f, m, "histogram", "callout latency, submission to result");
	for (unsigned i = 0; i < CORE_LATENCY_BUCKETS; i++)
		fprintf(f, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", m, core_latency_ms[i] / 1000.0,
			lt.le[i]);
	fprintf(f, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", m, lt.le[CORE_LATENCY_BUCKETS]);
	fprintf(f, "%s_sum %.3f\n", m, (double)lt.sum_ms / 1000.0);
	fprintf(f, "%s_count %" PRIu64 "\n", m, lt.le[CORE_LATENCY_BUCKETS]);
}

struct domains {
	struct core_domain_info *d;
	size_t n, cap;
	int err;
};

static int on_domain(const struct core_domain_info *d, void *arg)
{
	struct domains *ds = arg;
	if (ds->n == ds->cap) {
		size_t nc = ds->cap ? ds->cap * 2 : 16;
		void *p = realloc(ds->d, nc * sizeof(*ds->d));
		if (!p) {
			ds->err = -ENOMEM;
			return 1;
		}
		ds->d = p;
		ds->cap = nc;
	}
	ds->d[ds->n++] = *d;
	return 0;
}

/* one per-domain family: the value of field at offset off (type u64, u32
 * or bool, by size) */
#define DOM_FIELD(f) offsetof(struct core_domain_info, f), sizeof(((struct core_domain_info *)0)->f)
static const struct {
	const char *name, *type, *help;
	size_t off, size;
} dom_metrics[] = {
	{"rcptgate_domain_queue_depth", "gauge", "addresses waiting for a callout", DOM_FIELD(pending)},
	{"rcptgate_domain_sessions_open", "gauge", "callout sessions open", DOM_FIELD(sessions_open)},
	{"rcptgate_domain_accept_all", "gauge", "1 when the destination accepts any local part",
	 DOM_FIELD(accept_all)},
	{"rcptgate_domain_failopen", "gauge", "1 while the domain fails open (misses pass)",
	 DOM_FIELD(failopen)},
	{"rcptgate_domain_health", "gauge",
	 "destination health: 0 unknown, 1 ok, 2 degraded, 3 down (breaker open), 4 unverifiable",
	 DOM_FIELD(health)},
	{"rcptgate_domain_consecutive_failures", "gauge", "failed sessions in a row",
	 DOM_FIELD(consecutive_failures)},
	{"rcptgate_domain_list_entries", "gauge", "verdicts held from the static list",
	 DOM_FIELD(list_entries)},
	{"rcptgate_domain_callouts_total", "counter", "addresses checked by callout",
	 DOM_FIELD(callouts)},
	{"rcptgate_domain_sessions_total", "counter", "callout sessions", DOM_FIELD(sessions)},
	{"rcptgate_domain_connect_failures_total", "counter", "callout connections that failed",
	 DOM_FIELD(connect_failures)},
};

static uint64_t dom_value(const struct core_domain_info *d, size_t off, size_t size)
{
	const unsigned char *p = (const unsigned char *)d + off;
	if (size == sizeof(uint64_t)) {
		uint64_t v;
		memcpy(&v, p, sizeof(v));
		return v;
	}
	if (size == sizeof(uint32_t)) {
		uint32_t v;
		memcpy(&v, p, sizeof(v));
		return v;
	}
	return *p;
}

static void dom_sample(FILE *f, const char *m, const char *domain, const char *extra, uint64_t v)
{
	fprintf(f, "%s{domain=\"", m);
	label_value(f, domain);
	fprintf(f, "\"%s} %" PRIu64 "\n", extra, v);
}

static void render_domains(struct render *r)
{
	struct domains ds = {0};
	core_domains_foreach(on_domain, &ds);
	if (ds.err)
		r->seen.err = ds.err;
	FILE *f = r->f;
	uint64_t now = daemon_wall_s();
	family(f, "rcptgate_domain_breaker_open", "gauge",
	       "1 while the domain's circuit breaker is open (failing open)");
	for (size_t i = 0; i < ds.n; i++)
		dom_sample(f, "rcptgate_domain_breaker_open", ds.d[i].name, "",
			   ds.d[i].breaker_until_s > now);
	for (size_t k = 0; k < sizeof(dom_metrics) / sizeof(dom_metrics[0]); k++) {
		family(f, dom_metrics[k].name, dom_metrics[k].type, dom_metrics[k].help);
		for (size_t i = 0; i < ds.n; i++)
			dom_sample(f, dom_metrics[k].name, ds.d[i].name, "",
				   dom_value(&ds.d[i], dom_metrics[k].off, dom_metrics[k].size));
	}
	family(f, "rcptgate_domain_verdicts_total", "counter", "callout verdicts by kind");
	for (size_t i = 0; i < ds.n; i++) {
		dom_sample(f, "rcptgate_domain_verdicts_total", ds.d[i].name, ",verdict=\"valid\"",
			   ds.d[i].valid);
		dom_sample(f, "rcptgate_domain_verdicts_total", ds.d[i].name, ",verdict=\"invalid\"",
			   ds.d[i].invalid);
		dom_sample(f, "rcptgate_domain_verdicts_total", ds.d[i].name,
			   ",verdict=\"tempfail\"", ds.d[i].tempfail);
		dom_sample(f, "rcptgate_domain_verdicts_total", ds.d[i].name,
			   ",verdict=\"unverifiable\"", ds.d[i].unverifiable);
	}
	free(ds.d);
}

int metrics_render(FILE *f)
{
	struct render r = {.f = f};
	/* the status and histogram names first: a counter of the same name
	 * from a table would be skipped, not written twice */
	seen_add(&r.seen, "rcptgate_callout_duration_seconds");
	render_status(&r);
	render_latency(&r);
	core_stats_foreach(on_stat, &r);
	render_dataplane(&r);
	render_domains(&r);
	free(r.seen.name);
	if (r.seen.err)
		return r.seen.err;
	return ferror(f) ? -EIO : 0;
}

/* ---------------------------------------------------------------------- */
/* HTTP                                                                    */

#ifdef RG_HAVE_MICROHTTPD

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, char *body, size_t len,
			      const char *ctype)
{
	struct MHD_Response *rsp =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!rsp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	enum MHD_Result ret = MHD_queue_response(c, status, rsp);
	MHD_destroy_response(rsp);
	return ret;
}

static enum MHD_Result answer_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	char *b = strdup(text);
	return b ? answer(c, status, b, strlen(b), "text/plain; charset=utf-8") : MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_size, void **con_cls)
{
	(void)cls, (void)version, (void)upload_data, (void)con_cls;
	if (*upload_size) { /* a body we do not want */
		*upload_size = 0;
		return MHD_YES;
	}
	mt.requests++;
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		mt.not_found++;
		return answer_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics only\n");
	}
	if (strcmp(url, "/metrics")) {
		mt.not_found++;
		return answer_text(c, MHD_HTTP_NOT_FOUND, "rcptgated: try /metrics\n");
	}
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	int r = f ? metrics_render(f) : -ENOMEM;
	if (f && fclose(f) && !r)
		r = -ENOMEM;
	if (r) {
		mt.errors++;
		free(body);
		log_msg(LOG_ERR, "metrics: %s", strerror(-r));
		return answer_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "rcptgated: out of memory\n");
	}
	return answer(c, MHD_HTTP_OK, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[256];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = 0;
	log_msg(LOG_WARNING, "metrics: %s", msg);
}

static void mhd_turn(void)
{
	if (mt.mhd)
		MHD_run(mt.mhd);
}

static void on_fd(int fd, uint32_t events, void *arg)
{
	(void)fd, (void)events, (void)arg;
	mhd_turn();
}

static void on_timer(void *arg)
{
	(void)arg;
	mhd_turn();
}

/* "a.b.c.d:port" or "[v6]:port" into a socket address. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *orig = s;
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || !colon[1]) {
		snprintf(err, errlen, "metrics_listen '%s': expected address:port", s);
		return -EINVAL;
	}
	size_t hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']') {
			snprintf(err, errlen, "metrics_listen '%s': expected [IPv6]:port", s);
			return -EINVAL;
		}
		s++;
		hl -= 2;
	}
	if (hl >= sizeof(host)) {
		snprintf(err, errlen, "metrics_listen: address too long");
		return -EINVAL;
	}
	memcpy(host, s, hl);
	host[hl] = 0;
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc || !ai) {
		snprintf(err, errlen, "metrics_listen '%s': %s (numeric address and port)", orig,
			 rc ? gai_strerror(rc) : "no address");
		return -EINVAL;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return 0;
}

static int open_listener(const char *addr, char *err, size_t errlen)
{
	struct sockaddr_storage ss = {0};
	int r = parse_listen(addr, &ss, err, errlen);
	if (r)
		return r;
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	uint16_t port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						       : ((struct sockaddr_in *)&ss)->sin_port);
	mt.mhd = MHD_start_daemon(flags, port, NULL, NULL, on_request, NULL,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_MAX_CONNS,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_CONN_TIMEOUT_S,
				  MHD_OPTION_END);
	if (!mt.mhd) {
		snprintf(err, errlen, "metrics_listen %s: cannot listen (address in use or "
			 "not local?)", addr);
		return -EADDRINUSE;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(mt.mhd, MHD_DAEMON_INFO_EPOLL_FD);
	mt.fd = info ? info->epoll_fd : -1;
	if (mt.fd < 0 || (r = daemon_add_fd(mt.fd, EPOLLIN, on_fd, NULL))) {
		MHD_stop_daemon(mt.mhd);
		mt.mhd = NULL;
		mt.fd = -1;
		snprintf(err, errlen, "metrics: cannot watch libmicrohttpd's epoll fd");
		return r ? r : -EIO;
	}
	mt.timer = daemon_timer_add(1000, 1000, on_timer, NULL);
	snprintf(mt.listen, sizeof(mt.listen), "%s", addr);
	log_msg(LOG_INFO, "metrics: serving /metrics on %s", addr);
	return 0;
}

static void close_listener(void)
{
	if (mt.timer)
		daemon_timer_cancel(mt.timer);
	mt.timer = 0;
	if (mt.fd >= 0)
		daemon_del_fd(mt.fd);
	mt.fd = -1;
	if (mt.mhd)
		MHD_stop_daemon(mt.mhd);
	mt.mhd = NULL;
	mt.listen[0] = 0;
}

int metrics_start(const struct config *cfg, char *err, size_t errlen)
{
	if (!cfg->metrics_listen[0])
		return 0;
	return open_listener(cfg->metrics_listen, err, errlen);
}

int metrics_reload(const struct config *cfg, char *err, size_t errlen)
{
	if (!strcmp(cfg->metrics_listen, mt.listen))
		return 0;
	close_listener();
	return metrics_start(cfg, err, errlen);
}

void metrics_stop(void)
{
	close_listener();
}

#else /* !RG_HAVE_MICROHTTPD */

int metrics_start(const struct config *cfg, char *err, size_t errlen)
{
	if (!cfg->metrics_listen[0])
		return 0;
	snprintf(err, errlen, "metrics_listen: rcptgated was built without libmicrohttpd");
	return -ENOTSUP;
}

int metrics_reload(const struct config *cfg, char *err, size_t errlen)
{
	return metrics_start(cfg, err, errlen);
}

void metrics_stop(void)
{
}

#endif

void metrics_stats_foreach(core_stat_fn fn, void *arg)
{
	fn("metrics", "requests", mt.requests, "HTTP requests to the metrics listener", arg);
	fn("metrics", "not_found", mt.not_found, "requests for anything but GET /metrics", arg);
	fn("metrics", "errors", mt.errors, "scrapes that failed (out of memory)", arg);
}
