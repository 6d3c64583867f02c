/*
 * test_daemon.c — rcptgated's core as a whole, in-process: verdicts set by
 * hand survive a restart (the table is rebuilt from the store), a miss
 * pushed into the miss ring as the data plane does is verified by callout
 * against a loopback SMTP responder and lands in the table and the store,
 * the policy check answers from cache or after a callout, list mode closes a
 * domain, flush and del remove, SIGHUP reloads and a bad file is refused.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"
#include "daemon.h"
#include "services.h"
#include "dtable.h"
#include "khash.h"
#include "rtable.h"
#include "spsc.h"
#include "stats.h"
#include "store.h"

/* ---- a loopback SMTP responder: local parts starting "no" do not exist */

static int srv_fd = -1, srv_port;
static volatile int srv_sessions;
static volatile int srv_tempfail;	/* every RCPT answered 451 4.7.1 */
static int srv_active, srv_max_active;	/* concurrent sessions (atomics) */
static volatile int srv_catchall_off;	/* all.test stops accepting any local part */

static void *responder(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096], line[1024];
	size_t len = 0;
	srv_sessions++;
	int act = __atomic_add_fetch(&srv_active, 1, __ATOMIC_SEQ_CST);
	int mx = __atomic_load_n(&srv_max_active, __ATOMIC_SEQ_CST);
	while (act > mx && !__atomic_compare_exchange_n(&srv_max_active, &mx, act, false,
							 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
	dprintf(fd, "220 mx.test ESMTP\r\n");
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		char out[8192];
		size_t ol = 0;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (len < sizeof(line) - 1)
					line[len++] = buf[i];
				continue;
			}
			line[len && line[len - 1] == '\r' ? len - 1 : len] = 0;
			len = 0;
			const char *r;
			if (!strncasecmp(line, "EHLO", 4))
				r = "250-mx.test\r\n250 PIPELINING\r\n";
			else if (!strncasecmp(line, "RCPT", 4) && srv_tempfail)
				r = "451 4.7.1 Greylisted, try again later\r\n";
			else if (!strncasecmp(line, "RCPT TO:<no", 11))
				r = "550 5.1.1 User unknown in virtual mailbox table\r\n";
			else if (!strncasecmp(line, "RCPT TO:<rg-probe-", 18) &&
				 (!strstr(line, "@all.test") || srv_catchall_off))
				r = "550 5.1.1 User unknown\r\n";
			else if (!strncasecmp(line, "QUIT", 4))
				r = "221 Bye\r\n";
			else
				r = "250 Ok\r\n";
			size_t rl = strlen(r);
			if (ol + rl < sizeof(out)) {
				memcpy(out + ol, r, rl);
				ol += rl;
			}
		}
		if (ol && send(fd, out, ol, MSG_NOSIGNAL) < 0)
			break;
	}
	__atomic_sub_fetch(&srv_active, 1, __ATOMIC_SEQ_CST);
	close(fd);
	return NULL;
}

static void *acceptor(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(srv_fd, NULL, NULL);
		if (c < 0)
			return NULL;
		pthread_t t;
		pthread_create(&t, NULL, responder, (void *)(intptr_t)c);
		pthread_detach(t);
	}
}

static void responder_start(void)
{
	srv_fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	cr_assert_eq(bind(srv_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(srv_fd, (struct sockaddr *)&a, &l);
	srv_port = ntohs(a.sin_port);
	listen(srv_fd, 16);
	pthread_t t;
	pthread_create(&t, NULL, acceptor, NULL);
	pthread_detach(t);
}

/* ---- the daemon around a temporary configuration */

static char dir[64], conf[128], shm[128], list[128];
static const char *global_extra = "";

static void write_conf(const char *extra)
{
	FILE *f = fopen(conf, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"[global]\nshm_path = %s\nstore_path = %s/store\ncontrol_socket = %s/ctl.sock\n"
		"shm_max_lcores = 2\ntable_init_log2 = 10\ntable_max_log2 = 16\n"
		"syslog_facility = local7\n%s\n"
		"[domain dm.test]\ndestination = 127.0.0.1:%d\naccept_all_probe = no\n\n"
		"[domain list.test]\nmode = list\nlist = %s\n\n%s",
		shm, dir, dir, global_extra, srv_port, list, extra);
	fclose(f);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/rg-test-daemon-%d", (int)getpid());
	snprintf(conf, sizeof(conf), "%s/rcptgated.conf", dir);
	snprintf(shm, sizeof(shm), "/dev/shm/rg-test-daemon-%d", (int)getpid());
	snprintf(list, sizeof(list), "%s/list.txt", dir);
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", dir, dir);
	cr_assert_eq(system(cmd), 0);
	FILE *f = fopen(list, "w");
	fprintf(f, "# exported from the mail server\nAlice@List.Test\nbob@list.test\n\n");
	fclose(f);
	/* as in rcptgated, every thread blocks the signals the loop reads
	 * through its signalfd: block them before the responder threads exist */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	responder_start();
	write_conf("");
}

static void teardown(void)
{
	daemon_fini();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, shm);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
}

static void start(void)
{
	struct daemon_opts o = {.config_path = conf, .services = rcptgated_services,
				.nservices = RCPTGATED_NSERVICES};
	char err[512] = "";
	cr_assert_eq(daemon_init(&o, err, sizeof(err)), 0, "daemon_init: %s", err);
}

static void spin(int ms)
{
	uint64_t end = daemon_now_ms() + (uint64_t)ms;
	while (daemon_now_ms() < end)
		daemon_loop_once(5);
}

static int lookup_verdict(const char *a, struct core_lookup *l)
{
	char err[256];
	cr_assert_eq(core_lookup(a, l, err, sizeof(err)), 0, "%s", err);
	return l->verdict;
}

TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 60);

Test(daemon, set_survives_restart)
{
	start();
	char err[256];
	struct core_lookup l;
	cr_assert_eq(core_set("Pinned@DM.test", true, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(core_set("gone@dm.test", false, 3600, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(lookup_verdict("pinned@dm.test", &l), CORE_V_VALID);
	cr_assert(l.in_table && l.in_store && l.pinned);
	cr_assert_eq(l.source, RT_SRC_MANUAL);
	/* restart: a new shared-memory file, the table rebuilt from the store */
	daemon_fini();
	unlink(shm);
	start();
	cr_assert_eq(lookup_verdict("pinned@dm.test", &l), CORE_V_VALID);
	cr_assert(l.in_table, "published again from the store");
	cr_assert_eq(lookup_verdict("gone@dm.test", &l), CORE_V_INVALID);
	cr_assert_gt(l.expiry_s, 0);
	cr_assert_eq(core_del("gone@dm.test", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(lookup_verdict("gone@dm.test", &l), CORE_V_NONE);
	cr_assert_eq(core_del("gone@dm.test", err, sizeof(err)), -ENOENT);
	cr_assert_lt(core_set("not an address", true, 0, err, sizeof(err)), 0);
}

/* push a miss as rcptgate-dp does */
static void push_miss(const char *addr)
{
	struct shm_map m;
	char err[256];
	cr_assert_eq(shm_attach_reader(shm, &m, err, sizeof(err)), 0, "%s", err);
	const struct shm_hdr *h = shm_hdr(&m);
	struct spsc_hdr *r = (struct spsc_hdr *)((uint8_t *)shm_lcore_at(&m, 1) + h->miss_ring_off);
	struct msg_miss *mm = spsc_reserve(r);
	cr_assert_not_null(mm);
	memset(mm, 0, sizeof(*mm));
	struct rg_key128 k;
	khash128(h->hash_key, addr, strlen(addr), &k);
	mm->key_hi = k.hi;
	mm->key_lo = k.lo;
	mm->len = (uint16_t)strlen(addr);
	memcpy(mm->addr, addr, mm->len);
	spsc_commit(r);
	shm_detach(&m);
}

static bool table_has(const char *addr, uint8_t verdict)
{
	struct shm_map m;
	char err[256];
	cr_assert_eq(shm_attach_reader(shm, &m, err, sizeof(err)), 0, "%s", err);
	struct rtable_reader rd;
	rtable_reader_init(&rd, &m, NULL);
	struct rg_key128 k;
	khash128(shm_hdr(&m)->hash_key, addr, strlen(addr), &k);
	struct rtable_val v;
	bool ok = rtable_lookup(&rd, &k, &v) && v.verdict == verdict;
	shm_detach(&m);
	return ok;
}

Test(daemon, miss_ring_to_table)
{
	start();
	push_miss("carol@dm.test");
	push_miss("nosuch@dm.test");
	push_miss("x@unmanaged.test");
	for (int i = 0; i < 200 && !(table_has("carol@dm.test", RT_VALID) &&
				      table_has("nosuch@dm.test", RT_INVALID)); i++)
		spin(10);
	cr_assert(table_has("carol@dm.test", RT_VALID), "valid verdict published");
	cr_assert(table_has("nosuch@dm.test", RT_INVALID), "invalid verdict published");
	struct core_lookup l;
	cr_assert_eq(lookup_verdict("nosuch@dm.test", &l), CORE_V_INVALID);
	cr_assert(l.in_store);
	cr_assert_eq(l.code, 550);
	cr_assert(strstr(l.reply, "5.1.1"), "%s", l.reply);
	cr_assert_eq(lookup_verdict("x@unmanaged.test", &l), CORE_V_UNMANAGED);
	cr_assert_eq(srv_sessions, 1, "both addresses in one session");
}

struct check_out {
	int done;
	struct core_check c;
};

static void check_cb(const struct core_check *c, void *arg)
{
	struct check_out *o = arg;
	o->c = *c;
	o->done++;
}

Test(daemon, check_recipient)
{
	start();
	struct core_check c;
	struct check_out out = {0};
	uint64_t id = 0;
	cr_assert_eq(core_check_recipient("dave@dm.test", &c, check_cb, &out, &id), 1,
		     "unknown: a callout is started");
	cr_assert_eq(core_check_recipient("dave@dm.test", &c, check_cb, &out, &id), 1,
		     "the same address joins the callout");
	for (int i = 0; i < 200 && out.done < 2; i++)
		spin(10);
	cr_assert_eq(out.done, 2);
	cr_assert_eq(out.c.verdict, CORE_V_VALID);
	cr_assert_eq(core_check_recipient("dave@dm.test", &c, check_cb, &out, &id), 0);
	cr_assert_eq(c.verdict, CORE_V_VALID);
	cr_assert(c.from_cache);
	cr_assert_eq(core_check_recipient("ALICE@list.test", &c, check_cb, &out, &id), 0);
	cr_assert_eq(c.verdict, CORE_V_VALID, "listed");
	cr_assert_eq(core_check_recipient("mallory@list.test", &c, check_cb, &out, &id), 0);
	cr_assert_eq(c.verdict, CORE_V_INVALID, "closed list: unlisted is invalid");
	cr_assert_eq(core_check_recipient("a@elsewhere.test", &c, check_cb, &out, &id), 0);
	cr_assert_eq(c.verdict, CORE_V_UNMANAGED);
	/* a cancelled check is never called back */
	struct check_out late = {0};
	cr_assert_eq(core_check_recipient("eve@dm.test", &c, check_cb, &late, &id), 1);
	core_cancel(id);
	spin(300);
	cr_assert_eq(late.done, 0);
	cr_assert_eq(core_check_recipient("eve@dm.test", &c, check_cb, &late, &id), 0,
		     "cached by the cancelled check's callout");
}

Test(daemon, list_mode_published)
{
	start();
	cr_assert(table_has("alice@list.test", RT_VALID), "listed addresses are in the table");
	cr_assert(table_has("bob@list.test", RT_VALID));
	struct core_lookup l;
	cr_assert_eq(lookup_verdict("mallory@list.test", &l), CORE_V_INVALID);
	cr_assert_eq(l.source, RT_SRC_LIST);
	/* the list changes: bob leaves, carol arrives; SIGHUP reloads */
	FILE *f = fopen(list, "w");
	fprintf(f, "alice@list.test\ncarol@list.test\n");
	fclose(f);
	kill(getpid(), SIGHUP);
	spin(100);
	cr_assert(table_has("carol@list.test", RT_VALID));
	cr_assert_not(table_has("bob@list.test", RT_VALID), "removed from the list: out of the table");
	struct shm_map m;
	char err[256];
	cr_assert_eq(shm_attach_reader(shm, &m, err, sizeof(err)), 0);
	struct rg_key128 k;
	dtable_key(&m, "list.test", 9, &k);
	struct dtable_info di;
	cr_assert(dtable_lookup(&m, &k, &di));
	cr_assert_eq(di.mode, DT_MODE_LIST);
	shm_detach(&m);
}

static int count_dom(const struct core_domain_info *d, void *arg)
{
	(void)d;
	(*(int *)arg)++;
	return 0;
}

Test(daemon, reload)
{
	start();
	int n = 0;
	core_domains_foreach(count_dom, &n);
	cr_assert_eq(n, 2);
	write_conf("[domain new.test]\ndestination = 127.0.0.1:25\n");
	char err[512] = "";
	cr_assert_eq(core_reload(err, sizeof(err)), 0, "%s", err);
	n = 0;
	core_domains_foreach(count_dom, &n);
	cr_assert_eq(n, 3);
	write_conf("[domain new.test]\nbatch = none\n");
	cr_assert_lt(core_reload(err, sizeof(err)), 0);
	cr_assert(strstr(err, "rcptgated.conf:") && strstr(err, "batch"), "%s", err);
	n = 0;
	core_domains_foreach(count_dom, &n);
	cr_assert_eq(n, 3, "bad file refused, old config kept");
}

Test(daemon, flush)
{
	start();
	char err[256];
	uint64_t removed = 0;
	cr_assert_eq(core_set("a@dm.test", true, 0, err, sizeof(err)), 0);
	cr_assert_eq(core_set("b@dm.test", false, 0, err, sizeof(err)), 0);
	cr_assert_eq(core_set("c@other.test", true, 0, err, sizeof(err)), 0);
	cr_assert_eq(core_flush("DM.test", &removed, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(removed, 2);
	cr_assert_not(table_has("a@dm.test", RT_VALID));
	cr_assert(table_has("c@other.test", RT_VALID));
	cr_assert_eq(core_flush(NULL, &removed, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(removed, 1);
	spin(50);
	cr_assert_not(table_has("c@other.test", RT_VALID));
	cr_assert(table_has("alice@list.test", RT_VALID), "lists are published again after a flush");
	struct core_status st;
	cr_assert_eq(core_status(&st), 0);
	cr_assert_eq(st.store_entries, 0);
	cr_assert_eq(st.domains, 2);
}

struct stat_query {
	const char *name;
	uint64_t v;
};

static void stat_fn(const char *g, const char *n, uint64_t v, const char *h, void *arg)
{
	struct stat_query *q = arg;
	(void)g;
	(void)h;
	if (!strcmp(n, q->name))
		q->v = v;
}

static uint64_t stat_value(const char *name)
{
	struct stat_query q = {name, UINT64_MAX};
	core_stats_foreach(stat_fn, &q);
	cr_assert_neq(q.v, UINT64_MAX, "no counter %s", name);
	return q.v;
}

Test(daemon, refresh_before_expiry_and_failed_probe_keeps_verdict)
{
	char extra[256];
	snprintf(extra, sizeof(extra),
		 "[domain fresh.test]\ndestination = 127.0.0.1:%d\naccept_all_probe = no\n"
		 "ttl_valid = 6s\nrefresh_valid = 1s\nttl_tempfail = 1s\n",
		 srv_port);
	write_conf(extra);
	start();
	struct core_check c;
	struct check_out out = {0};
	uint64_t id;
	cr_assert_eq(core_check_recipient("frank@fresh.test", &c, check_cb, &out, &id), 1);
	for (int i = 0; i < 200 && !out.done; i++)
		spin(10);
	cr_assert_eq(out.c.verdict, CORE_V_VALID);
	int first = srv_sessions;
	struct core_lookup l;
	lookup_verdict("frank@fresh.test", &l);
	uint64_t refresh1 = l.refresh_s;
	/* past refresh_valid: re-checked in the background while still served */
	for (int i = 0; i < 300 && srv_sessions == first; i++) {
		spin(10);
		cr_assert(table_has("frank@fresh.test", RT_VALID), "served while refreshing");
	}
	cr_assert_gt(srv_sessions, first, "a refresh session ran");
	spin(200);
	lookup_verdict("frank@fresh.test", &l);
	cr_assert_eq(l.verdict, CORE_V_VALID);
	cr_assert_gt(l.refresh_s, refresh1, "refresh time moved on");
	cr_assert_gt(stat_value("refreshes"), 0);
	/* the destination now fails temporarily: the valid verdict stays */
	srv_tempfail = 1;
	uint64_t kept = stat_value("verdicts_kept");
	for (int i = 0; i < 400 && stat_value("verdicts_kept") == kept; i++)
		spin(10);
	cr_assert_gt(stat_value("verdicts_kept"), kept, "a failed refresh was recorded");
	cr_assert(table_has("frank@fresh.test", RT_VALID), "failed probe did not clobber the verdict");
	lookup_verdict("frank@fresh.test", &l);
	cr_assert_eq(l.verdict, CORE_V_VALID);
	cr_assert(l.in_store);
	/* with a healthy store, every verdict put back (stale while refreshed)
	 * reached the table: none was held back as not durable */
	cr_assert_eq(stat_value("verdicts_not_durable"), 0);
}

Test(daemon, destination_limits)
{
	char extra[300];
	snprintf(extra, sizeof(extra),
		 "[domain rate.test]\ndestination = 127.0.0.1:%d\naccept_all_probe = no\n"
		 "batch = 5\ndest_rcpt_rate = 5\ndest_max_conns = 1\nsession_max_rcpts = 5\n",
		 srv_port);
	write_conf(extra);
	start();
	struct check_out out = {0};
	struct core_check c;
	uint64_t id;
	char a[64];
	for (int i = 0; i < 15; i++) {
		snprintf(a, sizeof(a), "r%d@rate.test", i);
		cr_assert_eq(core_check_recipient(a, &c, check_cb, &out, &id), 1);
	}
	uint64_t t0 = daemon_now_ms();
	for (int i = 0; i < 500 && out.done < 15; i++)
		spin(10);
	uint64_t took = daemon_now_ms() - t0;
	cr_assert_eq(out.done, 15);
	/* a burst of 5, then 5 RCPTs per second: the last 10 need about 2 s */
	cr_assert_geq(took, 1500, "rate limit held: %llu ms", (unsigned long long)took);
	cr_assert_eq(srv_max_active, 1, "one session at a time");
	cr_assert_geq(srv_sessions, 3, "5 RCPTs per session");
}

static int find_dom(const struct core_domain_info *d, void *arg)
{
	struct core_domain_info *want = arg;
	if (strcmp(d->name, want->name))
		return 0;
	*want = *d;
	return 1;
}

static uint16_t dt_flags(const char *dom)
{
	struct shm_map m;
	char err[256];
	cr_assert_eq(shm_attach_reader(shm, &m, err, sizeof(err)), 0);
	struct rg_key128 k;
	dtable_key(&m, dom, strlen(dom), &k);
	struct dtable_info di = {0};
	cr_assert(dtable_lookup(&m, &k, &di), "%s in the domain table", dom);
	shm_detach(&m);
	return di.flags;
}

Test(daemon, domain_flags_published)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd); /* nobody listens there now */
	char extra[400];
	snprintf(extra, sizeof(extra),
		 "[domain down.test]\ndestination = 127.0.0.1:%d\nbreaker_failures = 1\n"
		 "breaker_open = 1h\n\n[domain all.test]\ndestination = 127.0.0.1:%d\n",
		 ntohs(a.sin_port), srv_port);
	write_conf(extra);
	start();
	cr_assert_not(dt_flags("down.test") & DT_F_FAILOPEN);
	struct check_out out = {0};
	struct core_check c;
	uint64_t id;
	cr_assert_eq(core_check_recipient("x@down.test", &c, check_cb, &out, &id), 1);
	cr_assert_eq(core_check_recipient("y@all.test", &c, check_cb, &out, &id), 1);
	for (int i = 0; i < 300 && out.done < 2; i++)
		spin(10);
	cr_assert_eq(out.done, 2);
	cr_assert(dt_flags("down.test") & DT_F_FAILOPEN, "breaker open: domain fails open");
	cr_assert(dt_flags("all.test") & DT_F_ACCEPT_ALL, "accept-all published");
	cr_assert_not(dt_flags("dm.test") & (DT_F_ACCEPT_ALL | DT_F_FAILOPEN));
	struct core_domain_info di = {.name = "down.test"};
	cr_assert_eq(core_domains_foreach(find_dom, &di), 1);
	cr_assert(di.failopen);
	cr_assert_eq(di.health, CORE_H_DOWN);
	cr_assert_gt(di.breaker_until_s, 0);
	cr_assert_gt(di.connect_failures, 0);
	cr_assert(di.last_error[0]);
	/* while failing open, checks are answered at once */
	cr_assert_eq(core_check_recipient("z@down.test", &c, check_cb, &out, &id), 0);
	cr_assert(c.failopen);
	struct core_domain_info ai = {.name = "all.test"};
	core_domains_foreach(find_dom, &ai);
	cr_assert(ai.accept_all);
	cr_assert_gt(ai.accept_all_checked_s, 0);
	cr_assert_eq(core_check_recipient("other@all.test", &c, check_cb, &out, &id), 0);
	cr_assert_eq(c.verdict, CORE_V_ACCEPT_ALL);
}

Test(daemon, accept_all_rechecked)
{
	char extra[300];
	snprintf(extra, sizeof(extra),
		 "[domain all.test]\ndestination = 127.0.0.1:%d\naccept_all_interval = 1s\n",
		 srv_port);
	write_conf(extra);
	start();
	struct check_out out = {0};
	struct core_check c;
	uint64_t id;
	cr_assert_eq(core_check_recipient("y@all.test", &c, check_cb, &out, &id), 1);
	for (int i = 0; i < 300 && !out.done; i++)
		spin(10);
	cr_assert_eq(out.c.verdict, CORE_V_ACCEPT_ALL);
	cr_assert(dt_flags("all.test") & DT_F_ACCEPT_ALL);
	/* the catch-all goes away; no miss arrives, the scheduled probe notices */
	srv_catchall_off = 1;
	int before = srv_sessions;
	for (int i = 0; i < 400 && (dt_flags("all.test") & DT_F_ACCEPT_ALL); i++)
		spin(10);
	cr_assert_not(dt_flags("all.test") & DT_F_ACCEPT_ALL, "accept-all cleared by a re-probe");
	cr_assert_gt(srv_sessions, before, "a probe session ran without any miss");
}

static int harvests;
static void on_harvest(const struct msg_event *ev, void *arg)
{
	(void)arg;
	cr_assert_eq(ev->type, MSG_EV_HARVEST);
	harvests++;
}

static void push_event(uint16_t type, const char *rcpt)
{
	struct shm_map m;
	char err[256];
	cr_assert_eq(shm_attach_reader(shm, &m, err, sizeof(err)), 0, "%s", err);
	const struct shm_hdr *h = shm_hdr(&m);
	struct spsc_hdr *r = (struct spsc_hdr *)((uint8_t *)shm_lcore_at(&m, 0) + h->event_ring_off);
	struct msg_event *ev = spsc_reserve(r);
	cr_assert_not_null(ev);
	memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->code = type == MSG_EV_REJECT || type == MSG_EV_WARN ? 550 : 421;
	ev->family = 4;
	inet_pton(AF_INET, "198.18.0.44", ev->client_ip);
	ev->prefix_len = 32;
	ev->count = type == MSG_EV_WARN ? MSG_EV_REJECT : 25;
	ev->helo_len = 11;
	memcpy(ev->helo, "client.test", 11);
	ev->from_len = 10;
	memcpy(ev->from, "s@c.test.x", 10);
	ev->rcpt_len = (uint16_t)strlen(rcpt);
	memcpy(ev->rcpt, rcpt, ev->rcpt_len);
	spsc_commit(r);
	shm_detach(&m);
}

Test(daemon, events_logged_and_harvest_hook)
{
	global_extra = "log_stderr = yes\n";
	write_conf("");
	cr_redirect_stderr();
	start();
	core_set_harvest_hook(on_harvest, NULL);
	push_event(MSG_EV_REJECT, "nobody@dm.test");
	push_event(MSG_EV_HARVEST, "");
	spin(100);
	cr_assert_eq(harvests, 1, "harvest report passed to the hook");
	cr_assert_eq(stat_value("events"), 2);
	fflush(stderr);
	FILE *f = cr_get_redirected_stderr();
	char buf[16384];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	cr_assert(strstr(buf, "NOQUEUE: reject: RCPT from unknown[198.18.0.44]: 550 5.1.1 "
			      "<nobody@dm.test>: Recipient address rejected: User unknown; "
			      "from=<s@c.test.x> to=<nobody@dm.test> proto=ESMTP helo=<client.test>"),
		  "%s", buf);
	cr_assert(strstr(buf, "harvest: client unknown[198.18.0.44]"), "%s", buf);
}
/* Fills the store at path (map_mb) until not one more record fits; returns
 * the number of records written. */
static unsigned fill(struct store *s, const char *prefix)
{
	unsigned n = 0;
	for (unsigned chunk = 1000; chunk >= 1; chunk /= 10) {
		for (;;) {
			int r = 0;
			for (unsigned i = 0; i < chunk && !r; i++) {
				char a[64];
				snprintf(a, sizeof(a), "%s%07u@fill.test", prefix, n + i);
				struct store_rec x = {.version = STORE_REC_VERSION, .verdict = RT_VALID,
							  .source = RT_SRC_CALLOUT, .updated = 1800000000,
							  .expiry = 4000000000u};
				snprintf(x.reply, sizeof(x.reply), "250 2.1.5 Ok, a reply text long enough to take room");
				r = store_put(s, a, strlen(a), &x);
			}
			if (!r)
				r = store_commit(s);
			if (r) {
				store_commit(s); /* drop what is left of the failed chunk */
				break;
			}
			n += chunk;
		}
	}
	return n;
}

/* The turn's verdicts are published only if the store commit made them
 * durable: with a store too full for them, none is in the table without
 * being in the store. */
Test(daemon, full_store_publishes_nothing_it_could_not_commit)
{
	char err[256], sp[160];
	struct store *s;
	snprintf(sp, sizeof(sp), "%s/store", dir);
	cr_assert_eq(store_open(&s, sp, 16, err, sizeof(err)), 0, "%s", err);
	unsigned filled = fill(s, "f");
	/* a little room: a few pages free, much less than the verdicts below need */
	for (unsigned i = 0; i < 150; i++) {
		char a[64];
		snprintf(a, sizeof(a), "f%07u@fill.test", i);
		cr_assert_eq(store_del(s, a, strlen(a)), 0);
	}
	cr_assert_eq(store_commit(s), 0);
	store_close(s);
	cr_assert_gt(filled, 1000);
	global_extra = "store_map_mb = 16\n";
	write_conf("");
	start();
	global_extra = "";
	enum { N = 400 };
	static char addrs[N][40];
	for (unsigned i = 0; i < N; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "user%03u@dm.test", i);
		push_miss(addrs[i]);
	}
	spin(3000);
	unsigned in_table = 0, in_store = 0;
	for (unsigned i = 0; i < N; i++) {
		struct core_lookup l;
		lookup_verdict(addrs[i], &l);
		in_table += l.in_table;
		in_store += l.in_store;
		cr_assert(!l.in_table || l.in_store, "%s published but not in the store", addrs[i]);
	}
	cr_assert_lt(in_store, N, "the store was full for some (%u stored)", in_store);
	cr_log_info("full store: %u of %u stored, %u published", in_store, N, in_table);
}

/* A second rcptgated on the same store is refused at start, with a message
 * naming the first; the first's control socket is left alone. */
Test(daemon, second_daemon_on_one_store_refused)
{
	const char *bin = getenv("RG_RCPTGATED");
	cr_assert_not_null(bin, "RG_RCPTGATED not set");
	start();
	char ctlsock[200];
	struct stat st0, st1;
	snprintf(ctlsock, sizeof(ctlsock), "%s/ctl.sock", dir);
	cr_assert_eq(stat(ctlsock, &st0), 0);
	/* the same store, its own control socket (and shared memory) */
	char conf2[200], text[8192], *q;
	snprintf(conf2, sizeof(conf2), "%s/second.conf", dir);
	FILE *cf = fopen(conf, "r");
	size_t tl = fread(text, 1, sizeof(text) - 1, cf);
	fclose(cf);
	text[tl] = 0;
	cr_assert_not_null((q = strstr(text, "/ctl.sock")));
	memcpy(q, "/ct2.sock", 9);
	cr_assert_not_null((q = strstr(text, "shm_path = ")));
	cr_assert_not_null((q = strstr(q, "-daemon-")));
	memcpy(q, "-dae2on-", 8);
	cf = fopen(conf2, "w");
	fputs(text, cf);
	fclose(cf);
	char errp[200];
	snprintf(errp, sizeof(errp), "%s/second.err", dir);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		freopen(errp, "w", stderr);
		alarm(10);
		execl(bin, bin, "-c", conf2, "-e", (char *)NULL);
		_exit(127);
	}
	int ws;
	while (waitpid(pid, &ws, WNOHANG) == 0)
		spin(5);
	cr_assert(WIFEXITED(ws));
	cr_assert_eq(WEXITSTATUS(ws), 1, "the second rcptgated exits 1");
	char msg[1024] = "";
	FILE *f = fopen(errp, "r");
	cr_assert_not_null(f);
	size_t n = fread(msg, 1, sizeof(msg) - 1, f);
	msg[n] = 0;
	fclose(f);
	char want[64];
	snprintf(want, sizeof(want), "in use by another rcptgated (pid %d)", (int)getpid());
	cr_assert(strstr(msg, want), "stderr: %s", msg);
	/* the first still serves, on the same socket */
	cr_assert_eq(stat(ctlsock, &st1), 0);
	cr_assert_eq(st0.st_ino, st1.st_ino, "the control socket was not replaced");
	char err[256];
	cr_assert_eq(core_set("still@dm.test", true, 0, err, sizeof(err)), 0, "%s", err);
}

/* reject_code and action reach the data plane as domain flags; the data
 * plane's would-be refusals in warn mode are logged and counted apart. */
Test(daemon, soft_and_warn_modes)
{
	global_extra = "log_stderr = yes\n";
	write_conf("[domain soft.test]\ndestination = 127.0.0.1:9\nreject_code = 450\n\n"
		   "[domain dry.test]\ndestination = 127.0.0.1:9\naction = warn\n");
	cr_redirect_stderr();
	start();
	cr_assert(dt_flags("soft.test") & DT_F_REJECT_450);
	cr_assert_not(dt_flags("soft.test") & DT_F_WARN);
	cr_assert(dt_flags("dry.test") & DT_F_WARN);
	cr_assert_not(dt_flags("dm.test") & (DT_F_WARN | DT_F_REJECT_450));
	uint64_t rejects = stat_value("events");
	push_event(MSG_EV_WARN, "ghost@dry.test");
	spin(100);
	cr_assert_eq(stat_value("events"), rejects + 1);
	cr_assert_eq(stat_value("warnings"), 1, "counted apart from refusals");
	fflush(stderr);
	FILE *f = cr_get_redirected_stderr();
	char buf[16384];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	cr_assert(strstr(buf, "NOQUEUE: reject_warning: RCPT from unknown[198.18.0.44]: 550 5.1.1 "
			      "<ghost@dry.test>: Recipient address rejected: User unknown"),
		  "%s", buf);
	/* the policy service's view: invalid in warn mode is not refused */
	char err[256];
	struct core_check c;
	uint64_t id;
	cr_assert_eq(core_set("ghost@dry.test", false, 600, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(core_set("ghost@soft.test", false, 600, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(core_check_recipient("ghost@dry.test", &c, check_cb, NULL, &id), 0);
	cr_assert_eq(c.verdict, CORE_V_INVALID);
	cr_assert(c.warn);
	cr_assert_eq(core_check_recipient("ghost@soft.test", &c, check_cb, NULL, &id), 0);
	cr_assert_not(c.warn);
	cr_assert_eq(c.reject_code, 450);
}

/* A closed list larger than the table's maximum (2^16 buckets here): it
 * cannot be published whole, so its domain is flagged DT_F_LIST_PARTIAL
 * (the data plane then lets misses pass), logged once, counted and shown;
 * a smaller list published whole clears the flag. */
Test(daemon, list_too_big_fails_safe)
{
	FILE *f = fopen(list, "w");
	for (int i = 0; i < 220000; i++)
		fprintf(f, "user%d@list.test\n", i);
	fclose(f);
	start();
	cr_assert(dt_flags("list.test") & DT_F_LIST_PARTIAL, "a list not published whole is flagged");
	cr_assert_not(dt_flags("dm.test") & DT_F_LIST_PARTIAL);
	struct core_domain_info d = {.name = "list.test"};
	cr_assert_eq(core_domains_foreach(find_dom, &d), 1);
	cr_assert(d.list_partial);
	cr_assert_gt(d.list_unpublished, 0);
	cr_assert_eq(d.list_entries, 220000);
	struct core_status s;
	cr_assert_eq(core_status(&s), 0);
	cr_assert_eq(s.lists_partial, 1);
	cr_assert_eq(s.list_addresses, 220000);
	cr_assert_eq(stat_value("list_partial"), 1);
	cr_assert_eq(stat_value("list_unpublished"), d.list_unpublished);
	/* the list shrinks to what fits: published whole, the flag goes */
	f = fopen(list, "w");
	for (int i = 0; i < 50000; i++)
		fprintf(f, "user%d@list.test\n", i);
	fclose(f);
	kill(getpid(), SIGHUP);
	spin(200);
	cr_assert_not(dt_flags("list.test") & DT_F_LIST_PARTIAL, "published whole again");
	cr_assert_eq(core_domains_foreach(find_dom, &d), 1);
	cr_assert_not(d.list_partial);
	cr_assert_eq(stat_value("list_partial"), 1, "counted once");
	for (int i = 0; i < 50000; i += 997) {
		char a[64];
		snprintf(a, sizeof(a), "user%d@list.test", i);
		cr_assert(table_has(a, RT_VALID), "%s listed and in the table", a);
	}
	cr_assert_not(table_has("user60000@list.test", RT_VALID), "left the list");
}

/* A list that cannot be read at start: nothing to publish, so the domain
 * fails safe rather than refusing everyone. */
Test(daemon, unreadable_list_at_start_fails_safe)
{
	write_conf("[domain cmd.test]\nmode = list\nlist_command = echo a@cmd.test; exit 4\n");
	start();
	cr_assert(dt_flags("cmd.test") & DT_F_LIST_PARTIAL);
	cr_assert_not(dt_flags("list.test") & DT_F_LIST_PARTIAL);
	cr_assert_eq(stat_value("list_errors"), 1);
	/* the policy service and lookup do not call anyone invalid either */
	struct core_check c;
	cr_assert_eq(core_check_recipient("a@cmd.test", &c, NULL, NULL, NULL), 0);
	cr_assert_eq(c.verdict, CORE_V_NONE);
	cr_assert(c.failopen);
	struct core_lookup l;
	cr_assert_eq(lookup_verdict("a@cmd.test", &l), CORE_V_NONE);
	/* while a readable closed list still refuses the unlisted */
	cr_assert_eq(core_check_recipient("nobody@list.test", &c, NULL, NULL, NULL), 0);
	cr_assert_eq(c.verdict, CORE_V_INVALID);
	/* still unreadable at a reload: still nothing to go by */
	kill(getpid(), SIGHUP);
	spin(100);
	cr_assert_eq(stat_value("list_errors"), 2);
	cr_assert(dt_flags("cmd.test") & DT_F_LIST_PARTIAL);
	cr_assert_eq(core_check_recipient("a@cmd.test", &c, NULL, NULL, NULL), 0);
	cr_assert_eq(c.verdict, CORE_V_NONE);
}

Test(daemon, list_command_output_is_the_list)
{
	write_conf("[domain cmd.test]\nmode = list\n"
		   "list_command = printf 'ann@cmd.test OK\\nben@cmd.test\\n'\n");
	start();
	cr_assert(table_has("ann@cmd.test", RT_VALID));
	cr_assert(table_has("ben@cmd.test", RT_VALID));
	cr_assert_not(dt_flags("cmd.test") & DT_F_LIST_PARTIAL);
	struct core_lookup l;
	cr_assert_eq(lookup_verdict("cid@cmd.test", &l), CORE_V_INVALID);
}

/* A reload that changes a tenth of a list: the addresses listed before and
 * after are never out of the table (a reader in another process checks them
 * all the while), added ones appear, removed ones go. */
Test(daemon, list_reload_never_drops_a_listed_address, .timeout = 120)
{
	const int n = 100000;
	FILE *f = fopen(list, "w");
	for (int i = 0; i < n; i++)
		fprintf(f, "u%d@list.test\n", i);
	fclose(f);
	start();
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	uint64_t *shared_rounds = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE,
				       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(shared_rounds, MAP_FAILED);
	*shared_rounds = 0;
	fcntl(pfd[0], F_SETFL, O_NONBLOCK); /* the reader polls it between rounds */
	pid_t pid = fork();
	if (pid == 0) {
		/* reader: keys of the addresses kept by the reload (i % 10 != 0) */
		struct shm_map m;
		char err[256];
		if (shm_attach_reader(shm, &m, err, sizeof(err)))
			_exit(2);
		struct rtable_reader rd;
		rtable_reader_init(&rd, &m, shm_lcore_at(&m, 0));
		rtable_reader_online(&rd, (uint32_t)getpid(), 0);
		uint64_t misses = 0, rounds = 0;
		char c;
		close(pfd[1]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) {
			ssize_t rr = read(pfd[0], &c, 1);
			if (rr == 0 || (rr == 1 && c == 'q'))
				break; /* told to stop, or the test is gone */
			for (int i = 1; i < n; i++) {
				if (i % 10 == 0)
					continue;
				char a[32];
				int len = snprintf(a, sizeof(a), "u%d@list.test", i);
				struct rg_key128 k;
				khash128(shm_hdr(&m)->hash_key, a, (size_t)len, &k);
				struct rtable_val v;
				misses += !rtable_lookup(&rd, &k, &v);
				if ((i & 255) == 0)
					rtable_quiescent(&rd, 1);
			}
			rounds++;
			__atomic_store_n(shared_rounds, rounds, __ATOMIC_RELEASE);
			rtable_quiescent(&rd, 1);
		}
		rtable_reader_offline(&rd);
		_exit(misses ? 1 : rounds >= 2 ? 0 : 3);
	}
	close(pfd[0]);
	/* the reader has gone through the list once before the reload ... */
	for (int i = 0; i < 600 && __atomic_load_n(shared_rounds, __ATOMIC_ACQUIRE) < 1; i++)
		spin(100);
	f = fopen(list, "w");
	for (int i = 0; i < n; i++)
		if (i % 10)
			fprintf(f, "u%d@list.test\n", i);
		else
			fprintf(f, "new%d@list.test\n", i);
	fclose(f);
	uint64_t r0 = __atomic_load_n(shared_rounds, __ATOMIC_ACQUIRE);
	kill(getpid(), SIGHUP);
	spin(100);
	/* ... and once more wholly after it (so it also read during it) */
	for (int i = 0; i < 600 && __atomic_load_n(shared_rounds, __ATOMIC_ACQUIRE) < r0 + 2; i++)
		spin(100);
	cr_assert_eq(write(pfd[1], "q", 1), 1);
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st), "reader died");
	cr_assert_eq(WEXITSTATUS(st), 0, "reader: %s",
		     WEXITSTATUS(st) == 1 ? "a listed address was missing" : "too few rounds");
	cr_assert(table_has("new0@list.test", RT_VALID));
	cr_assert(table_has("new99990@list.test", RT_VALID));
	cr_assert_not(table_has("u0@list.test", RT_VALID));
	cr_assert_not(table_has("u99990@list.test", RT_VALID));
	cr_assert(table_has("u99999@list.test", RT_VALID));
}

/* A data plane that stops passing quiescent points (stopped, not dead) holds
 * the old table: the list cannot grow into a new one, so it is published in
 * part, its domain fails safe; once the reader is gone the list is published
 * again (list_retry) and the flag clears. */
Test(daemon, stuck_reader_list_retried, .timeout = 60)
{
	/* create the file, then a reader attaches and goes online */
	start();
	daemon_fini();
	int go[2], ready[2];
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(ready), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct shm_map m;
		char err[256], c;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (shm_attach_reader(shm, &m, err, sizeof(err)))
			_exit(2);
		struct rtable_reader rd;
		rtable_reader_init(&rd, &m, shm_lcore_at(&m, 0));
		rtable_reader_online(&rd, (uint32_t)getpid(), 0);
		if (write(ready[1], "r", 1) != 1)
			_exit(3);
		/* never quiescent again until told to go */
		if (read(go[0], &c, 1) != 1)
			_exit(4);
		_exit(0);
	}
	char c;
	cr_assert_eq(read(ready[0], &c, 1), 1);
	FILE *f = fopen(list, "w");
	for (int i = 0; i < 100000; i++)
		fprintf(f, "s%d@list.test\n", i);
	fclose(f);
	global_extra = "list_retry = 1s";
	write_conf("");
	start();
	global_extra = "";
	cr_assert(dt_flags("list.test") & DT_F_LIST_PARTIAL, "the list could not grow the table");
	cr_assert_gt(stat_value("stalls"), 0, "refused because the reader held the table");
	struct core_domain_info d = {.name = "list.test"};
	cr_assert_eq(core_domains_foreach(find_dom, &d), 1);
	cr_assert_gt(d.list_unpublished, 0);
	/* the reader goes away: the next try publishes the whole list */
	cr_assert_eq(write(go[1], "g", 1), 1);
	waitpid(pid, NULL, 0);
	for (int i = 0; i < 60 && (dt_flags("list.test") & DT_F_LIST_PARTIAL); i++)
		spin(100);
	cr_assert_not(dt_flags("list.test") & DT_F_LIST_PARTIAL, "published whole on a retry");
	cr_assert_eq(core_domains_foreach(find_dom, &d), 1);
	cr_assert_eq(d.list_unpublished, 0);
	for (int i = 0; i < 100000; i += 7919) {
		char a[32];
		snprintf(a, sizeof(a), "s%d@list.test", i);
		cr_assert(table_has(a, RT_VALID), "%s", a);
	}
}
