/*
 * test_dns.c — MX lookups through a scripted DNS server on loopback
 * (dns_server points the resolver at it): preference order, hosts without
 * an address skipped, RFC 7505 null MX, NXDOMAIN, no MX (the implicit MX,
 * RFC 5321 5.1), and explicit host:port destinations.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ifaddrs.h>
#include <net/if.h>

#include "callout.h"
#include "core.h"
#include "daemon.h"
#include "dns.h"
#include "smtpdest.h"

static char own_ip[64] = "192.0.2.1"; /* a non-loopback address of this host, found at run time */

struct zone {
	const char *name;
	int rcode;
	unsigned nmx;
	struct {
		uint16_t pref;
		const char *host;
	} mx[3];
};

static const struct zone zones[] = {
	{"mx.test", 0, 3, {{30, "127.0.0.1"}, {20, "nowhere.invalid"}, {10, "localhost"}}},
	{"nullmx.test", 0, 1, {{0, "."}}},
	{"nxdomain.test", 3, 0, {{0, NULL}}},
	{"localhost", 0, 0, {{0, NULL}}},
	{"bk.test", 0, 2, {{20, "127.0.0.2"}, {10, "127.0.0.1"}}},
	{"loop.test", 0, 1, {{10, own_ip}}},
};

static int dns_fd = -1;

static size_t put_name(uint8_t *p, const char *name)
{
	size_t o = 0;
	if (!strcmp(name, ".")) {
		p[0] = 0;
		return 1;
	}
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);
		p[o++] = (uint8_t)l;
		memcpy(p + o, name, l);
		o += l;
		name += l + (dot ? 1 : 0);
	}
	p[o++] = 0;
	return o;
}

static void *dns_server(void *arg)
{
	(void)arg;
	uint8_t q[512], r[1024];
	for (;;) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(dns_fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
		if (n < 17)
			return NULL;
		char name[256];
		size_t o = 12, no = 0;
		while (o < (size_t)n && q[o]) {
			if (no)
				name[no++] = '.';
			memcpy(name + no, q + o + 1, q[o]);
			no += q[o];
			o += q[o] + 1u;
		}
		name[no] = 0;
		size_t qend = o + 5; /* zero label, type, class */
		const struct zone *z = NULL;
		for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
			if (!strcasecmp(zones[i].name, name))
				z = &zones[i];
		memcpy(r, q, qend);
		r[2] = 0x81;
		r[3] = (uint8_t)(0x80 | (z ? z->rcode : 3));
		r[4] = 0, r[5] = 1;
		r[6] = 0, r[7] = (uint8_t)(z ? z->nmx : 0);
		memset(r + 8, 0, 4);
		size_t w = qend;
		for (unsigned i = 0; z && i < z->nmx; i++) {
			uint8_t *a = r + w;
			a[0] = 0xc0, a[1] = 0x0c;	/* name: the question's */
			a[2] = 0, a[3] = 15;		/* MX */
			a[4] = 0, a[5] = 1;		/* IN */
			a[6] = 0, a[7] = 0, a[8] = 0x01, a[9] = 0x2c; /* TTL 300 */
			a[12] = (uint8_t)(z->mx[i].pref >> 8);
			a[13] = (uint8_t)z->mx[i].pref;
			size_t nl = put_name(a + 14, z->mx[i].host);
			a[10] = (uint8_t)((nl + 2) >> 8);
			a[11] = (uint8_t)(nl + 2);
			w += 14 + nl;
		}
		sendto(dns_fd, r, w, 0, (struct sockaddr *)&from, fl);
	}
}

static int got;
static struct dns_answer ans;

static void on_answer(const struct dns_answer *a, void *arg)
{
	(void)arg;
	ans = *a;
	got = 1;
}

static void setup(void)
{
	dns_fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	cr_assert_eq(bind(dns_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(dns_fd, (struct sockaddr *)&a, &l);
	pthread_t t;
	pthread_create(&t, NULL, dns_server, NULL);
	pthread_detach(t);
	cr_assert_eq(daemon_loop_init(), 0);
	cr_assert_eq(dns_start(), 0);
	char spec[32];
	snprintf(spec, sizeof(spec), "127.0.0.1:%u", ntohs(a.sin_port));
	cr_assert_eq(dns_set_server(spec), 0);
}

static void teardown(void)
{
	dns_stop();
	daemon_loop_fini();
}

static void resolve(const char *dom, const struct config_dest *d, unsigned nd)
{
	got = 0;
	cr_assert_eq(dns_resolve(dom, d, nd, 2525, 2000, on_answer, NULL), 0);
	for (int i = 0; i < 500 && !got; i++)
		daemon_loop_once(10);
	cr_assert(got, "%s: no answer", dom);
}

static uint16_t port_of(const struct dns_target *t)
{
	return ntohs(t->sa.ss_family == AF_INET ? ((const struct sockaddr_in *)&t->sa)->sin_port
						: ((const struct sockaddr_in6 *)&t->sa)->sin6_port);
}

TestSuite(dns, .init = setup, .fini = teardown, .timeout = 30);

Test(dns, mx_in_preference_order)
{
	resolve("mx.test", NULL, 0);
	cr_assert_eq(ans.err, 0, "%s", ans.errmsg);
	cr_assert_geq(ans.n, 2);
	cr_assert_str_eq(ans.t[0].host, "localhost", "preference 10 first");
	cr_assert_str_eq(ans.t[ans.n - 1].host, "127.0.0.1", "preference 30 last");
	for (unsigned i = 0; i < ans.n; i++) {
		cr_assert_str_neq(ans.t[i].host, "nowhere.invalid", "a host without address is skipped");
		cr_assert_eq(port_of(&ans.t[i]), 2525, "mx_port applied");
	}
	cr_assert_geq(ans.ttl, 30);
}

Test(dns, null_mx)
{
	resolve("nullmx.test", NULL, 0);
	cr_assert(ans.null_mx);
	cr_assert_lt(ans.err, 0);
	cr_assert(strstr(ans.errmsg, "null MX"), "%s", ans.errmsg);
}

Test(dns, nxdomain)
{
	resolve("nxdomain.test", NULL, 0);
	cr_assert_eq(ans.err, -ENOENT, "%d %s", ans.err, ans.errmsg);
}

Test(dns, no_mx_means_implicit_mx)
{
	resolve("localhost", NULL, 0);
	cr_assert_eq(ans.err, 0, "%s", ans.errmsg);
	cr_assert_geq(ans.n, 1);
	cr_assert_str_eq(ans.t[0].host, "localhost");
}

Test(dns, explicit_destinations)
{
	struct config_dest d[2] = {{.host = "127.0.0.1", .port = 26}, {.host = "::1", .port = 27}};
	resolve("whatever.test", d, 2);
	cr_assert_eq(ans.err, 0, "%s", ans.errmsg);
	cr_assert_eq(ans.n, 2);
	cr_assert_eq(port_of(&ans.t[0]), 26);
	cr_assert_eq(ans.t[1].sa.ss_family, AF_INET6);
	cr_assert_eq(port_of(&ans.t[1]), 27);
}

/* ---- MX discipline in the callout engine -------------------------------- */

static struct config mcfg;
static unsigned mres;
static struct {
	int verdict;
	bool backup;
} mlast;

static void on_mresult(const struct callout_result *r, void *arg)
{
	(void)arg;
	if (r->flags & CALLOUT_F_PROBE)
		return;
	mres++;
	mlast.verdict = r->verdict;
	mlast.backup = r->backup;
}

static void mx_engine(const char *dom, unsigned port)
{
	char text[600], err[256];
	snprintf(text, sizeof(text),
		 "[domain %s]\nmx_port = %u\nconnect_timeout = 1s\ngreeting_timeout = 1s\n"
		 "command_timeout = 1s\naccept_all_probe = no\nttl_tempfail = 1s\n"
		 "breaker_failures = 100\n", dom, port);
	cr_assert_eq(config_load_string("mx.conf", text, &mcfg, err, sizeof(err)), 0, "%s", err);
	struct callout_hooks h = {.result = on_mresult};
	cr_assert_eq(callout_init(&h), 0);
	cr_assert_eq(callout_configure(&mcfg), 0);
	mres = 0;
}

static void mx_run(const char *addr)
{
	cr_assert_eq(callout_submit(addr, strlen(addr), 0, NULL), 0);
	for (int i = 0; i < 400 && !mres; i++)
		daemon_loop_once(10);
	cr_assert_eq(mres, 1, "no result for %s", addr);
}

static void mx_stop(void)
{
	callout_shutdown();
	config_free(&mcfg);
}

/* The best-preference MX answers whenever it can; the backup is asked only
 * when it cannot, and its 2xx is marked as saying nothing. */
Test(dns, backup_mx_only_when_the_primaries_fail)
{
	struct sdest backup = {.ip = "127.0.0.2"};
	sdest_start(&backup);
	/* nothing listens on 127.0.0.1 at that port: the primary is down */
	mx_engine("bk.test", backup.port);
	mx_run("a@bk.test");
	cr_assert_eq(mlast.verdict, CORE_V_VALID);
	cr_assert(mlast.backup, "answered by the backup MX");
	mx_stop();
	struct sdest primary = {.want_port = backup.port};
	sdest_start(&primary);
	mx_engine("bk.test", backup.port);
	for (int i = 0; i < 3; i++) {
		char a[32];
		snprintf(a, sizeof(a), "p%d@bk.test", i);
		mres = 0;
		mx_run(a);
		cr_assert_eq(mlast.verdict, CORE_V_VALID);
		cr_assert_not(mlast.backup);
	}
	mx_stop();
	sdest_stop(&primary);
	sdest_stop(&backup);
	cr_assert_eq(backup.sessions, 1, "the backup was asked only while the primary was down");
	cr_assert_eq(primary.rcpts, 3);
}

/* An MX that is one of this host's addresses is never asked. */
Test(dns, mx_pointing_at_this_host_is_a_loop)
{
	struct ifaddrs *ifa = NULL, *i;
	bool found = false;
	cr_assert_eq(getifaddrs(&ifa), 0);
	for (i = ifa; i && !found; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && !(i->ifa_flags & IFF_LOOPBACK)) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, own_ip,
				  sizeof(own_ip));
			found = true;
		}
	freeifaddrs(ifa);
	if (!found)
		cr_skip_test("this host has no non-loopback IPv4 address");
	struct sdest d = {.ip = own_ip};
	sdest_start(&d);
	uint64_t loops = callout_stat(CALLOUT_ST_LOOPS);
	mx_engine("loop.test", d.port);
	mx_run("a@loop.test");
	cr_assert_eq(mlast.verdict, CORE_V_UNVERIFIABLE);
	cr_assert_eq(callout_stat(CALLOUT_ST_LOOPS), loops + 1);
	cr_assert(strstr(callout_domain("loop.test")->last_error, "mail loop"), "%s",
		  callout_domain("loop.test")->last_error);
	mx_stop();
	sdest_stop(&d);
	cr_assert_eq(d.sessions, 0, "this host was not asked");
}
