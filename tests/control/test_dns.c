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

#include "daemon.h"
#include "dns.h"

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
