/*
 * test_callout.c — the callout state machine against scripted SMTP servers
 * on loopback: pipelined and one-by-one sessions, replies split byte by byte,
 * multi-line replies, slow replies, timeouts, disconnects, 421/554 at
 * connect, MAIL rejected, 452 "too many recipients" retried in a new
 * transaction, HELO fallback, over-long and malformed lines, accept-all
 * probe, verify transcript; plus deduplication and the circuit breaker.
 *
 * The server is a thread running a script of steps:
 *   "R<n>"  read n command lines from the client (recorded)
 *   "S..."  send the text at once
 *   "s..."  send the text one byte at a time (1 ms apart)
 *   "W<ms>" wait
 *   "C"     close the connection
 * A script that reads more lines than the client sends before it waits for a
 * reply (e.g. "R3" after EHLO) only passes if the client pipelines.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "callout.h"
#include "core.h"
#include "daemon.h"
#include "dns.h"
#include "smtpdest.h"

#define MAX_STEPS 24
#define MAX_ADDRS 4

struct script_case {
	char name[64];
	char steps[MAX_STEPS][200];
	char addrs[MAX_ADDRS][64];	/* local parts; the domain is added */
	int want[MAX_ADDRS];		/* enum core_verdict */
	bool probe;			/* accept_all_probe on */
	bool verify;			/* submit the first address as verify */
	int want_health;		/* -1 = don't check */
	char client_has[64];		/* a line the client must have sent, or "" */
	char transcript_has[64];	/* verify only */
};

/* ---- the scripted server */

struct server {
	int lfd, port;
	pthread_t thr;
	const struct script_case *sc;
	char log[16384];
	size_t loglen;
	int lines;
};

static int read_lines(struct server *sv, int fd, int n)
{
	char c;
	char line[1100];
	size_t len = 0;
	while (n > 0) {
		ssize_t r = recv(fd, &c, 1, 0);
		if (r <= 0)
			return -1;
		if (c == '\n') {
			if (len && line[len - 1] == '\r')
				len--;
			if (sv->loglen + len + 2 < sizeof(sv->log)) {
				memcpy(sv->log + sv->loglen, line, len);
				sv->loglen += len;
				sv->log[sv->loglen++] = '\n';
				sv->log[sv->loglen] = 0;
			}
			sv->lines++;
			len = 0;
			n--;
		} else if (len < sizeof(line) - 1) {
			line[len++] = c;
		}
	}
	return 0;
}

static void *server_main(void *arg)
{
	struct server *sv = arg;
	int fd = accept(sv->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	for (int i = 0; i < MAX_STEPS && sv->sc->steps[i][0]; i++) {
		const char *st = sv->sc->steps[i];
		switch (st[0]) {
		case 'R':
			if (read_lines(sv, fd, atoi(st + 1)))
				goto done;
			break;
		case 'S':
			if (send(fd, st + 1, strlen(st + 1), MSG_NOSIGNAL) < 0)
				goto done;
			break;
		case 's':
			for (const char *p = st + 1; *p; p++) {
				if (send(fd, p, 1, MSG_NOSIGNAL) < 0)
					goto done;
				usleep(1000);
			}
			break;
		case 'W':
			usleep((useconds_t)atoi(st + 1) * 1000u);
			break;
		case 'C':
			goto done;
		}
	}
	/* script over: hold the connection until the client closes it */
	{
		char b[256];
		while (recv(fd, b, sizeof(b), 0) > 0)
			;
	}
done:
	close(fd);
	return NULL;
}

static void server_start(struct server *sv, const struct script_case *sc)
{
	memset(sv, 0, sizeof(*sv));
	sv->sc = sc;
	sv->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int one = 1;
	setsockopt(sv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert_eq(bind(sv->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(sv->lfd, (struct sockaddr *)&a, &l), 0);
	cr_assert_eq(listen(sv->lfd, 8), 0);
	sv->port = ntohs(a.sin_port);
	pthread_create(&sv->thr, NULL, server_main, sv);
}

/* ---- the engine around it */

struct res {
	char addr[RG_ADDR_MAX + 1];
	int verdict;
	char reply[CALLOUT_TEXT_MAX];
	char transcript[CALLOUT_TRANSCRIPT_MAX];
	unsigned waiters;
};
static struct res results[16];
static unsigned nresults;
static unsigned domain_changes;

static void on_result(const struct callout_result *r, void *arg)
{
	(void)arg;
	if (r->flags & CALLOUT_F_PROBE)
		return;
	if (nresults >= 16)
		return;
	struct res *x = &results[nresults++];
	snprintf(x->addr, sizeof(x->addr), "%s", r->addr);
	x->verdict = r->verdict;
	snprintf(x->reply, sizeof(x->reply), "%s", r->reply);
	if (r->transcript)
		snprintf(x->transcript, sizeof(x->transcript), "%.*s", (int)r->transcript_len,
			 r->transcript);
	for (struct callout_waiter *w = r->waiters; w; w = w->next)
		x->waiters++;
}

static void on_domain(struct callout_dom *d, void *arg)
{
	(void)d;
	(void)arg;
	domain_changes++;
}

static struct config cfg;

static void engine_start(const char *dom, int port, bool probe, unsigned breaker)
{
	char text[1024], err[256];
	snprintf(text, sizeof(text),
		 "[domain %s]\ndestination = 127.0.0.1:%d\nconnect_timeout = 1s\n"
		 "greeting_timeout = 1s\ncommand_timeout = 1s\naccept_all_probe = %s\n"
		 "breaker_failures = %u\nttl_tempfail = 1s\ndest_max_conns = 1\n",
		 dom, port, probe ? "yes" : "no", breaker);
	cr_assert_eq(config_load_string("test.conf", text, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(daemon_loop_init(), 0);
	cr_assert_eq(dns_start(), 0);
	struct callout_hooks h = {.result = on_result, .domain_changed = on_domain};
	cr_assert_eq(callout_init(&h), 0);
	cr_assert_eq(callout_configure(&cfg), 0);
	nresults = 0;
	domain_changes = 0;
}

static void run_until(unsigned want, int max_ms)
{
	uint64_t end = daemon_now_ms() + (uint64_t)max_ms;
	while (nresults < want && daemon_now_ms() < end)
		daemon_loop_once(10);
}

static void engine_stop(void)
{
	callout_shutdown();
	dns_stop();
	daemon_loop_fini();
	config_free(&cfg);
}

/* ---- cases */

#define GREET "S220 mx.test ESMTP\r\n"
#define EHLO_PIPE "S250-mx.test\r\n250-SIZE 10240000\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
#define EHLO_PLAIN "S250-mx.test\r\n250 8BITMIME\r\n"

static struct script_case cases[] = {
	{.name = "pipelined valid and invalid",
	 .steps = {GREET, "R1", EHLO_PIPE, "R3",
		   "S250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <b>: Recipient address rejected: User unknown in virtual mailbox table\r\n",
		   "R1", "S221 2.0.0 Bye\r\n", "C"},
	 .addrs = {"a", "b"}, .want = {CORE_V_VALID, CORE_V_INVALID}, .want_health = CORE_H_OK,
	 .client_has = "MAIL FROM:<>"},
	{.name = "no pipelining: one RCPT at a time",
	 .steps = {GREET, "R1", EHLO_PLAIN, "R1", "S250 2.1.0 Ok\r\n", "R1", "S250 2.1.5 Ok\r\n", "R1",
		   "S550 5.1.1 User unknown\r\n", "R1", "S221 Bye\r\n", "C"},
	 .addrs = {"a", "b"}, .want = {CORE_V_VALID, CORE_V_INVALID}, .want_health = CORE_H_OK},
	{.name = "replies split byte by byte",
	 .steps = {"s220 mx.test ESMTP\r\n", "R1",
		   "s250-mx.test\r\n250-PIPELINING\r\n250 SIZE\r\n", "R2",
		   "s250 2.1.0 Ok\r\n550 5.1.1 <a>: User unknown\r\n", "R1", "s221 Bye\r\n", "C"},
	 .addrs = {"a"}, .want = {CORE_V_INVALID}, .want_health = CORE_H_OK},
	{.name = "multi-line RCPT reply",
	 .steps = {GREET, "R1", EHLO_PIPE, "R2",
		   "S250 2.1.0 Ok\r\n550-5.1.1 The email account that you tried to reach does not exist.\r\n",
		   "S550-5.1.1 Please try double-checking the recipient's email address.\r\n",
		   "S550 5.1.1 https://support.google.com/mail/?p=NoSuchUser\r\n",
		   "R1", "S221 Bye\r\n"},
	 .addrs = {"a"}, .want = {CORE_V_INVALID}, .want_health = -1},
	{.name = "greylisting 451 4.7.1 is temporary",
	 .steps = {GREET, "R1", EHLO_PIPE, "R2",
		   "S250 2.1.0 Ok\r\n451 4.7.1 Greylisting in action, please come back later\r\n",
		   "R1", "S221 Bye\r\n"},
	 .addrs = {"a"}, .want = {CORE_V_TEMPFAIL}, .want_health = -1},
	{.name = "421 at connect is temporary",
	 .steps = {"S421 4.3.2 Service shutting down\r\n", "C"},
	 .addrs = {"a"}, .want = {CORE_V_TEMPFAIL}, .want_health = CORE_H_DEGRADED},
	{.name = "554 at connect makes the destination unverifiable",
	 .steps = {"S554 5.7.1 mx.test: no callouts from you\r\n", "R1", "S221 Bye\r\n"},
	 .addrs = {"a"}, .want = {CORE_V_UNVERIFIABLE}, .want_health = CORE_H_UNVERIFIABLE},
	{.name = "MAIL FROM:<> rejected: unverifiable, never invalid",
	 .steps = {GREET, "R1", EHLO_PIPE, "R3",
		   "S550 5.7.1 <>: Sender address rejected: Access denied\r\n503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need MAIL command\r\n",
		   "R1", "S221 Bye\r\n"},
	 .addrs = {"a", "b"}, .want = {CORE_V_UNVERIFIABLE, CORE_V_UNVERIFIABLE},
	 .want_health = CORE_H_UNVERIFIABLE},
	{.name = "disconnect before the RCPT replies",
	 .steps = {GREET, "R1", EHLO_PIPE, "R2", "C"},
	 .addrs = {"a"}, .want = {CORE_V_TEMPFAIL}, .want_health = -1},
	{.name = "slow reply inside the timeout",
	 .steps = {GREET, "R1", EHLO_PIPE, "R2", "W400", "S250 2.1.0 Ok\r\n", "W400",
		   "S250 2.1.5 Ok\r\n", "R1", "S221 Bye\r\n"},
	 .addrs = {"a"}, .want = {CORE_V_VALID}, .want_health = CORE_H_OK},
	{.name = "reply slower than command_timeout",
	 .steps = {GREET, "R1", EHLO_PIPE, "R2", "W1600", "S250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"},
	 .addrs = {"a"}, .want = {CORE_V_TEMPFAIL}, .want_health = -1},
	{.name = "452 too many recipients: retried in a new transaction",
	 .steps = {GREET, "R1", EHLO_PIPE, "R4",
		   "S250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n452 4.5.3 Error: too many recipients\r\n452 4.5.3 Error: too many recipients\r\n",
		   "R1", "S250 2.0.0 Ok\r\n", "R2", "S250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n", "R1",
		   "S250 2.0.0 Ok\r\n", "R2", "S250 2.1.0 Ok\r\n550 5.1.1 User unknown\r\n", "R1",
		   "S221 Bye\r\n"},
	 .addrs = {"a", "b", "c"}, .want = {CORE_V_VALID, CORE_V_VALID, CORE_V_INVALID},
	 .want_health = CORE_H_OK, .client_has = "RSET"},
	{.name = "EHLO refused: HELO fallback",
	 .steps = {GREET, "R1", "S502 5.5.2 Error: command not recognized\r\n", "R1", "S250 mx.test\r\n",
		   "R1", "S250 Ok\r\n", "R1", "S250 Accepted\r\n", "R1", "S221 Bye\r\n"},
	 .addrs = {"a"}, .want = {CORE_V_VALID}, .want_health = CORE_H_OK, .client_has = "HELO "},
	{.name = "Exim without enhanced codes",
	 .steps = {GREET, "R1", EHLO_PIPE, "R3", "S250 OK\r\n250 Accepted\r\n550 Unrouteable address\r\n",
		   "R1", "S221 Bye\r\n"},
	 .addrs = {"a", "b"}, .want = {CORE_V_VALID, CORE_V_INVALID}, .want_health = -1},
	{.name = "reply line over the limit",
	 .steps = {GREET, "R1",
		   "S250-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		   "S", "Sxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		   "Sxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		   "Sxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		   "Sxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		   "Sxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		   "Sxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		   "W200"},
	 .addrs = {"a"}, .want = {CORE_V_TEMPFAIL}, .want_health = -1},
	{.name = "malformed greeting",
	 .steps = {"Shello there\r\n", "W200"},
	 .addrs = {"a"}, .want = {CORE_V_TEMPFAIL}, .want_health = -1},
	{.name = "accept-all destination detected by the probe",
	 .steps = {GREET, "R1", EHLO_PIPE, "R3", "S250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n", "R1",
		   "S221 Bye\r\n"},
	 .addrs = {"a"}, .want = {CORE_V_ACCEPT_ALL}, .probe = true, .want_health = -1,
	 .client_has = "RCPT TO:<rg-probe-"},
	{.name = "UTF-8 address, no SMTPUTF8: unverifiable, never sent",
	 .steps = {GREET, "R1", EHLO_PIPE, "R2", "S250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n", "R1", "S221 Bye\r\n"},
	 .addrs = {"j\xc3\xbcrgen", "a"}, .want = {CORE_V_UNVERIFIABLE, CORE_V_VALID},
	 .want_health = CORE_H_OK, .client_has = "RCPT TO:<a@c.test>"},
	{.name = "UTF-8 address with SMTPUTF8",
	 .steps = {GREET, "R1", "S250-mx.test\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n", "R2",
		   "S250 2.1.0 Ok\r\n550 5.1.1 User unknown\r\n", "R1", "S221 Bye\r\n"},
	 .addrs = {"j\xc3\xbcrgen"}, .want = {CORE_V_INVALID}, .want_health = CORE_H_OK,
	 .client_has = "MAIL FROM:<> SMTPUTF8"},
	{.name = "verify records a transcript",
	 .steps = {GREET, "R1", EHLO_PIPE, "R2", "S250 2.1.0 Ok\r\n550 5.1.1 <a>: User unknown\r\n", "R1",
		   "S221 Bye\r\n"},
	 .addrs = {"a"}, .want = {CORE_V_INVALID}, .verify = true, .want_health = -1,
	 .transcript_has = "S: 550 5.1.1 <a>: User unknown"},
};

ParameterizedTestParameters(callout, scripted)
{
	return cr_make_param_array(struct script_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct script_case *c, callout, scripted)
{
	struct server sv;
	server_start(&sv, c);
	engine_start("c.test", sv.port, c->probe, 100);
	unsigned n = 0;
	char addr[MAX_ADDRS][128];
	for (unsigned i = 0; i < MAX_ADDRS && c->addrs[i][0]; i++, n++) {
		int len = snprintf(addr[i], sizeof(addr[i]), "%s@c.test", c->addrs[i]);
		int r = callout_submit(addr[i], (size_t)len, c->verify && i == 0 ? CALLOUT_F_VERIFY : 0, NULL);
		cr_assert_eq(r, 0, "%s: submit %s: %d", c->name, addr[i], r);
	}
	run_until(n, 4000);
	cr_assert_eq(nresults, n, "%s: %u results of %u", c->name, nresults, n);
	for (unsigned i = 0; i < n; i++) {
		const struct res *r = NULL;
		for (unsigned j = 0; j < nresults; j++)
			if (!strcmp(results[j].addr, addr[i]))
				r = &results[j];
		cr_assert_not_null(r, "%s: no result for %s", c->name, addr[i]);
		cr_assert_eq(r->verdict, c->want[i], "%s: %s is %s, want %s", c->name, addr[i],
			     core_verdict_name(r->verdict), core_verdict_name(c->want[i]));
	}
	if (c->want_health >= 0) {
		struct callout_dom *d = callout_domain("c.test");
		cr_assert_eq(d->health, c->want_health, "%s: health %s, want %s", c->name,
			     core_health_name(d->health), core_health_name(c->want_health));
		cr_assert_eq(callout_failing_open(d, daemon_now_ms()),
			     c->want_health == CORE_H_UNVERIFIABLE || c->want_health == CORE_H_DOWN,
			     "%s: failing open", c->name);
	}
	if (c->want[0] == CORE_V_ACCEPT_ALL) {
		cr_assert(callout_domain("c.test")->accept_all, "%s: accept_all flag", c->name);
		cr_assert_gt(domain_changes, 0, "%s: domain change reported", c->name);
	}
	if (c->transcript_has[0])
		cr_assert(strstr(results[0].transcript, c->transcript_has), "%s: transcript:\n%s",
			  c->name, results[0].transcript);
	engine_stop();
	shutdown(sv.lfd, SHUT_RDWR);
	close(sv.lfd);
	pthread_join(sv.thr, NULL);
	if (c->client_has[0])
		cr_assert(strstr(sv.log, c->client_has), "%s: client sent:\n%s", c->name, sv.log);
}

static struct script_case dedup_script = {
	.name = "dedup",
	.steps = {GREET, "R1", EHLO_PIPE, "R2", "W100", "S250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n", "R1",
		  "S221 Bye\r\n"},
};

Test(callout, one_probe_per_address)
{
	struct server sv;
	server_start(&sv, &dedup_script);
	engine_start("d.test", sv.port, false, 100);
	struct callout_waiter w1, w2;
	cr_assert_eq(callout_submit("x@d.test", 8, 0, &w1), 0);
	cr_assert_eq(callout_submit("x@d.test", 8, 0, &w2), 1, "second submission joins the first");
	cr_assert(callout_pending("x@d.test", 8));
	run_until(1, 3000);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].verdict, CORE_V_VALID);
	cr_assert_eq(results[0].waiters, 2, "both waiters answered by one callout");
	cr_assert_not(callout_pending("x@d.test", 8));
	engine_stop();
	close(sv.lfd);
	pthread_join(sv.thr, NULL);
	cr_assert_eq(sv.lines, 4, "EHLO, MAIL, one RCPT, QUIT:\n%s", sv.log);
}

Test(callout, breaker_opens_and_fails_open)
{
	/* a port nobody listens on */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &l);
	int port = ntohs(a.sin_port);
	close(fd);
	engine_start("down.test", port, false, 2);
	cr_assert_eq(callout_submit("a@down.test", 11, 0, NULL), 0);
	run_until(1, 3000);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].verdict, CORE_V_TEMPFAIL);
	struct callout_dom *d = callout_domain("down.test");
	cr_assert_not(callout_failing_open(d, daemon_now_ms()), "one failure: still closed");
	cr_assert_eq(callout_submit("a@down.test", 11, 0, NULL), -EAGAIN,
		     "held after a temporary failure");
	cr_assert_eq(callout_submit("b@down.test", 11, 0, NULL), 0);
	run_until(2, 3000);
	cr_assert_eq(nresults, 2);
	cr_assert(callout_failing_open(d, daemon_now_ms()), "two failures: breaker open");
	cr_assert_eq(d->health, CORE_H_DOWN);
	cr_assert_gt(domain_changes, 0);
	cr_assert_eq(callout_submit("c@down.test", 11, 0, NULL), -EHOSTDOWN,
		     "failing open: answered at once");
	cr_assert_eq(callout_submit("c@other.test", 12, 0, NULL), -ENOENT);
	engine_stop();
}

/* ---- chaos: many domains, a server that misbehaves at random ------------- */

struct chaos_conn {
	int fd;
	uint32_t seed;
};

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* send text in 1..3 random pieces */
static int chaos_send(int fd, const char *t, uint32_t *seed)
{
	size_t n = strlen(t), off = 0;
	while (off < n) {
		size_t k = 1 + rnd(seed) % (n - off);
		if (rnd(seed) % 3)
			k = n - off;
		if (send(fd, t + off, k, MSG_NOSIGNAL) < 0)
			return -1;
		off += k;
	}
	return 0;
}

static void *chaos_conn_main(void *arg)
{
	struct chaos_conn *c = arg;
	uint32_t seed = c->seed;
	int fd = c->fd;
	free(c);
	static const char *const greet[] = {"220 chaos ESMTP\r\n", "220-chaos\r\n220 ESMTP\r\n",
					    "421 4.3.2 busy\r\n", "554 5.7.1 go away\r\n",
					    "garbage\r\n"};
	static const char *const rcpt[] = {
		"250 2.1.5 Ok\r\n", "550 5.1.1 User unknown\r\n", "451 4.7.1 Greylisted\r\n",
		"452 4.5.3 Too many recipients\r\n", "554 5.7.1 Policy\r\n",
		"250-2.1.5 Ok\r\n250 2.1.5 still ok\r\n", "550 Unrouteable address\r\n", "x\r\n"};
	uint32_t g = rnd(&seed) % 20;
	/* 0-15 a good greeting, 16 421, 17 554, 18 garbage, 19 silence and close */
	if (g == 19 || chaos_send(fd, greet[g < 16 ? (g & 1) : g - 14], &seed) || g >= 16) {
		if (g == 16 || g == 17) /* wait for QUIT or close */
			usleep(20000);
		close(fd);
		return NULL;
	}
	char line[1024];
	size_t len = 0;
	char b;
	while (recv(fd, &b, 1, 0) == 1) {
		if (b != '\n') {
			if (len < sizeof(line) - 1)
				line[len++] = b;
			continue;
		}
		line[len] = 0;
		len = 0;
		const char *r = "250 Ok\r\n";
		uint32_t x = rnd(&seed) % 100;
		if (x < 2) /* hang up in the middle */
			break;
		if (!strncasecmp(line, "EHLO", 4))
			r = x < 70 ? "250-chaos\r\n250-PIPELINING\r\n250 8BITMIME\r\n" : "250 chaos\r\n";
		else if (!strncasecmp(line, "MAIL", 4))
			r = x < 90 ? "250 2.1.0 Ok\r\n" : (x < 95 ? "451 4.3.0 try later\r\n" : "550 5.7.1 no\r\n");
		else if (!strncasecmp(line, "RCPT", 4))
			r = rcpt[rnd(&seed) % (sizeof(rcpt) / sizeof(rcpt[0]))];
		else if (!strncasecmp(line, "QUIT", 4)) {
			chaos_send(fd, "221 Bye\r\n", &seed);
			break;
		}
		if (x == 3)
			usleep(1500000); /* slower than command_timeout */
		if (chaos_send(fd, r, &seed))
			break;
	}
	close(fd);
	return NULL;
}

static int chaos_lfd;

static void *chaos_accept(void *arg)
{
	uint32_t seed = 12345;
	(void)arg;
	for (;;) {
		int fd = accept(chaos_lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		struct chaos_conn *c = malloc(sizeof(*c));
		c->fd = fd;
		c->seed = rnd(&seed) | 1;
		pthread_t t;
		pthread_create(&t, NULL, chaos_conn_main, c);
		pthread_detach(t);
	}
}

#define CHAOS_DOMAINS 12
#define CHAOS_ADDRS 1200

static unsigned chaos_seen[CHAOS_ADDRS];

static void chaos_result(const struct callout_result *r, void *arg)
{
	(void)arg;
	if (r->flags & CALLOUT_F_PROBE)
		return;
	unsigned i;
	if (sscanf(r->addr, "u%u@", &i) == 1 && i < CHAOS_ADDRS)
		chaos_seen[i]++;
	nresults++;
}

Test(callout, chaos_every_address_answered_once, .timeout = 60)
{
	chaos_lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	cr_assert_eq(bind(chaos_lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(chaos_lfd, (struct sockaddr *)&a, &l);
	listen(chaos_lfd, 256);
	pthread_t t;
	pthread_create(&t, NULL, chaos_accept, NULL);
	pthread_detach(t);

	char text[8192], err[256];
	size_t off = 0;
	off += (size_t)snprintf(text + off, sizeof(text) - off, "[global]\nqueue_max = 100000\n");
	for (int d = 0; d < CHAOS_DOMAINS; d++)
		off += (size_t)snprintf(text + off, sizeof(text) - off,
					"[domain d%d.test]\ndestination = 127.0.0.1:%d\n"
					"command_timeout = 1s\ngreeting_timeout = 1s\nbatch = %d\n"
					"breaker_failures = 3\nbreaker_open = 1s\nttl_tempfail = 1s\n"
					"ttl_unverifiable = 10s\ndest_conn_rate = 1000\n",
					d, ntohs(a.sin_port), 5 + d * 7);
	cr_assert_eq(config_load_string("chaos.conf", text, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(daemon_loop_init(), 0);
	cr_assert_eq(dns_start(), 0);
	struct callout_hooks h = {.result = chaos_result};
	cr_assert_eq(callout_init(&h), 0);
	cr_assert_eq(callout_configure(&cfg), 0);
	nresults = 0;
	unsigned submitted = 0, refused = 0;
	uint64_t end = daemon_now_ms() + 40000;
	for (unsigned i = 0; i < CHAOS_ADDRS; i++) {
		char addr[64];
		int n = snprintf(addr, sizeof(addr), "u%u@d%u.test", i, i % CHAOS_DOMAINS);
		int r = callout_submit(addr, (size_t)n, (i % 97 == 0) ? CALLOUT_F_VERIFY : 0, NULL);
		if (r == 0) {
			submitted++;
		} else {
			/* only a failing-open domain may refuse, and then nothing is owed */
			cr_assert_eq(r, -EHOSTDOWN, "submit %s: %d", addr, r);
			refused++;
			chaos_seen[i] = 1;
		}
		if (i % 50 == 0)
			daemon_loop_once(1);
	}
	while (nresults < submitted && daemon_now_ms() < end)
		daemon_loop_once(10);
	cr_assert_eq(nresults, submitted, "%u of %u answered (%u refused)", nresults, submitted,
		     refused);
	for (unsigned i = 0; i < CHAOS_ADDRS; i++)
		cr_assert_eq(chaos_seen[i], 1, "u%u answered %u times", i, chaos_seen[i]);
	/* everything settles: no queue, nothing in flight, sessions close */
	for (int i = 0; i < 400 && callout_nsessions(); i++)
		daemon_loop_once(10);
	cr_assert_eq(callout_nqueued(), 0);
	cr_assert_eq(callout_ninflight(), 0);
	cr_assert_eq(callout_nsessions(), 0);
	cr_log_info("chaos: %u submitted, %u refused, %llu sessions, %llu valid, %llu invalid, "
		    "%llu tempfail, %llu unverifiable, %llu 452 retries, %llu protocol errors, "
		    "%llu timeouts, %llu breaker openings",
		    submitted, refused, (unsigned long long)callout_stat(CALLOUT_ST_SESSIONS),
		    (unsigned long long)callout_stat(CALLOUT_ST_VALID),
		    (unsigned long long)callout_stat(CALLOUT_ST_INVALID),
		    (unsigned long long)callout_stat(CALLOUT_ST_TEMPFAIL),
		    (unsigned long long)callout_stat(CALLOUT_ST_UNVERIFIABLE),
		    (unsigned long long)callout_stat(CALLOUT_ST_RETRY_452),
		    (unsigned long long)callout_stat(CALLOUT_ST_PROTO_ERRORS),
		    (unsigned long long)callout_stat(CALLOUT_ST_TIMEOUTS),
		    (unsigned long long)callout_stat(CALLOUT_ST_BREAKER_OPENED));
	cr_assert_gt(callout_stat(CALLOUT_ST_VALID), 0);
	cr_assert_gt(callout_stat(CALLOUT_ST_INVALID), 0);
	cr_assert_gt(callout_stat(CALLOUT_ST_RETRY_452), 0, "452 path exercised");
	cr_assert_gt(callout_stat(CALLOUT_ST_PROTO_ERRORS), 0, "garbage path exercised");
	engine_stop();
	close(chaos_lfd);
}

/* ---- 452: "too many recipients" told apart from a full mailbox ---------- */

static void engine_start_conf(const char *text)
{
	char err[256];
	cr_assert_eq(config_load_string("test.conf", text, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(daemon_loop_init(), 0);
	cr_assert_eq(dns_start(), 0);
	struct callout_hooks h = {.result = on_result, .domain_changed = on_domain};
	cr_assert_eq(callout_init(&h), 0);
	cr_assert_eq(callout_configure(&cfg), 0);
	nresults = 0;
	domain_changes = 0;
}

static void dest_conf(char *text, size_t n, unsigned port, unsigned batch)
{
	snprintf(text, n,
		 "[domain q.test]\ndestination = 127.0.0.1:%u\nconnect_timeout = 1s\n"
		 "greeting_timeout = 1s\ncommand_timeout = 1s\naccept_all_probe = no\n"
		 "ttl_tempfail = 1s\ndest_max_conns = 1\nbatch = %u\ndest_conn_rate = 1000\n",
		 port, batch);
}

static const struct res *result_for(const char *addr)
{
	for (unsigned j = 0; j < nresults; j++)
		if (!strcmp(results[j].addr, addr))
			return &results[j];
	return NULL;
}

static void submit_all(const char *const *addrs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(callout_submit(addrs[i], strlen(addrs[i]), 0, NULL), 0, "submit %s",
			     addrs[i]);
}

Test(callout, mailbox_full_452_is_temporary_and_not_retried, .timeout = 30)
{
	struct sdest d = {.rule = {{"full@", "452 4.2.2 <full@q.test>: Mailbox full\r\n"}}};
	char text[1024];
	sdest_start(&d);
	dest_conf(text, sizeof(text), d.port, 10);
	engine_start_conf(text);
	const char *const addrs[] = {"full@q.test", "a@q.test", "b@q.test"};
	submit_all(addrs, 3);
	run_until(3, 4000);
	cr_assert_eq(nresults, 3, "%u results of 3 (RCPTs to full@: %u)", nresults,
		     __atomic_load_n(&d.hits[0], __ATOMIC_SEQ_CST));
	cr_assert_eq(result_for("full@q.test")->verdict, CORE_V_TEMPFAIL);
	cr_assert_eq(result_for("a@q.test")->verdict, CORE_V_VALID);
	cr_assert_eq(result_for("b@q.test")->verdict, CORE_V_VALID);
	cr_assert_eq(callout_domain("q.test")->rcpt_limit, 0, "a full mailbox is no recipient limit");
	engine_stop();
	sdest_stop(&d);
	cr_log_info("452 4.2.2 for one address: %u RCPTs for it, %u in all, %u sessions", d.hits[0],
		    d.rcpts, d.sessions);
	cr_assert_eq(d.hits[0], 1, "full@ asked %u times", d.hits[0]);
}

Test(callout, too_many_452_retried_a_bounded_number_of_times, .timeout = 30)
{
	/* a destination that answers "too many" even to a lone RCPT */
	struct sdest d = {.rule = {{"loop@", "452 4.5.3 Error: too many recipients\r\n"}}};
	char text[1024];
	sdest_start(&d);
	dest_conf(text, sizeof(text), d.port, 10);
	engine_start_conf(text);
	uint64_t limit_before = callout_stat(CALLOUT_ST_RETRY_LIMIT);
	const char *const addrs[] = {"loop@q.test", "a@q.test", "b@q.test"};
	submit_all(addrs, 3);
	run_until(3, 4000);
	cr_assert_eq(nresults, 3, "%u results of 3 (RCPTs to loop@: %u)", nresults,
		     __atomic_load_n(&d.hits[0], __ATOMIC_SEQ_CST));
	cr_assert_eq(result_for("loop@q.test")->verdict, CORE_V_TEMPFAIL);
	cr_assert_eq(result_for("a@q.test")->verdict, CORE_V_VALID);
	cr_assert_eq(result_for("b@q.test")->verdict, CORE_V_VALID);
	cr_assert_eq(callout_stat(CALLOUT_ST_RETRY_LIMIT), limit_before + 1);
	engine_stop();
	sdest_stop(&d);
	cr_log_info("452 4.5.3 for one address: %u RCPTs for it, %u in all, %u sessions", d.hits[0],
		    d.rcpts, d.sessions);
	cr_assert_leq(d.hits[0], 1 + CALLOUT_RETRY_MAX, "loop@ asked %u times", d.hits[0]);
	cr_assert_geq(d.hits[0], 2, "retried at least once");
}

Test(callout, batch_recovers_after_452, .timeout = 30)
{
	/* the first session takes two RCPTs per transaction; later ones any number */
	struct sdest d = {.tx_limit = 2, .tx_limit_sessions = 1};
	char text[1024];
	sdest_start(&d);
	dest_conf(text, sizeof(text), d.port, 8);
	engine_start_conf(text);
	static char a1[6][32], a2[16][32];
	for (unsigned i = 0; i < 6; i++) {
		snprintf(a1[i], sizeof(a1[i]), "r1-%u@q.test", i);
		cr_assert_eq(callout_submit(a1[i], strlen(a1[i]), 0, NULL), 0);
	}
	run_until(6, 5000);
	cr_assert_eq(nresults, 6);
	for (unsigned i = 0; i < 6; i++)
		cr_assert_eq(results[i].verdict, CORE_V_VALID, "%s", results[i].addr);
	struct callout_dom *dom = callout_domain("q.test");
	cr_assert(dom->rcpt_limit > 0 && dom->rcpt_limit < 8, "lowered by the 452s: %u",
		  dom->rcpt_limit);
	cr_assert_gt(__atomic_load_n(&d.too_many, __ATOMIC_SEQ_CST), 0);
	for (int i = 0; i < 200 && callout_nsessions(); i++)
		daemon_loop_once(10);
	nresults = 0;
	for (unsigned i = 0; i < 16; i++) {
		snprintf(a2[i], sizeof(a2[i]), "r2-%u@q.test", i);
		cr_assert_eq(callout_submit(a2[i], strlen(a2[i]), 0, NULL), 0);
	}
	run_until(16, 5000);
	cr_assert_eq(nresults, 16);
	cr_assert_eq(dom->rcpt_limit, 0, "the batch recovers once 452s stop: limit %u",
		     dom->rcpt_limit);
	engine_stop();
	sdest_stop(&d);
}

/* ---- reply text is cleaned before anyone logs, stores or prints it ------ */

static void assert_clean(const char *what, const char *t, bool nl_ok)
{
	for (const char *p = t; *p; p++)
		cr_assert(((unsigned char)*p >= 0x20 && *p != 0x7f) || (nl_ok && *p == '\n'),
			  "%s: byte 0x%02x in [%s]", what, (unsigned char)*p, t);
}

Test(callout, reply_text_cleaned, .timeout = 30)
{
	struct sdest d = {.rule = {{"evil@", "550 5.1.1 <evil@q.test>: User unknown\rrcptgated[1]: "
					      "forged \x1b[31mred\x1b[0m\x7f\x01\r\n"}}};
	char text[1024];
	sdest_start(&d);
	dest_conf(text, sizeof(text), d.port, 10);
	engine_start_conf(text);
	cr_assert_eq(callout_submit("evil@q.test", 11, CALLOUT_F_VERIFY, NULL), 0);
	cr_assert_eq(callout_submit("x-evil@q.test", 13, 0, NULL), 0);
	run_until(2, 4000);
	cr_assert_eq(nresults, 2);
	for (unsigned i = 0; i < 2; i++) {
		cr_assert_eq(results[i].verdict, CORE_V_INVALID);
		assert_clean("reply", results[i].reply, false);
		cr_assert(strstr(results[i].reply, "\\x0drcptgated[1]: forged \\x1b[31mred"), "%s",
			  results[i].reply);
		assert_clean("transcript", results[i].transcript, true);
	}
	cr_assert(strstr(result_for("evil@q.test")->transcript, "S: 550 5.1.1"));
	engine_stop();
	sdest_stop(&d);
}

/* ---- a failing greeting moves to the next destination ------------------ */

static void two_dest_conf(char *text, size_t n, unsigned p1, unsigned p2)
{
	snprintf(text, n,
		 "[domain q.test]\ndestination = 127.0.0.1:%u, 127.0.0.1:%u\nconnect_timeout = 1s\n"
		 "greeting_timeout = 1s\ncommand_timeout = 1s\naccept_all_probe = no\n"
		 "ttl_tempfail = 1s\ndest_max_conns = 1\nbreaker_failures = 100\n", p1, p2);
}

struct greet_case {
	char name[48];
	char banner1[80], banner2[80];
	int want, want_health;
	bool second_used;
	unsigned delay1_ms;	/* the first destination greets this late */
};

static const struct greet_case greet_cases[] = {
	{"554 banner, backup works", "554 5.7.1 no callouts from you\r\n", "", CORE_V_VALID,
	 CORE_H_OK, true},
	{"421 banner, backup works", "421 4.3.2 busy, try later\r\n", "", CORE_V_VALID, CORE_H_OK,
	 true},
	{"both 554", "554 5.7.1 no\r\n", "554 5.7.1 no either\r\n", CORE_V_UNVERIFIABLE,
	 CORE_H_UNVERIFIABLE, true},
	{"554 then 421", "554 5.7.1 no\r\n", "421 4.3.2 busy\r\n", CORE_V_UNVERIFIABLE,
	 CORE_H_UNVERIFIABLE, true},
	{"first works", "", "554 5.7.1 never asked\r\n", CORE_V_VALID, CORE_H_OK, false},
	{"greeting past greeting_timeout, backup works", "", "", CORE_V_VALID, CORE_H_OK, true,
	 1500},
};

ParameterizedTestParameters(callout, greeting_failover)
{
	return cr_make_param_array(struct greet_case, greet_cases,
				   sizeof(greet_cases) / sizeof(greet_cases[0]));
}

ParameterizedTest(const struct greet_case *c, callout, greeting_failover, .timeout = 30)
{
	struct sdest d1 = {.banner = c->banner1[0] ? c->banner1 : NULL,
			   .banner_delay_ms = c->delay1_ms};
	struct sdest d2 = {.banner = c->banner2[0] ? c->banner2 : NULL};
	char text[1024];
	sdest_start(&d1);
	sdest_start(&d2);
	two_dest_conf(text, sizeof(text), d1.port, d2.port);
	engine_start_conf(text);
	cr_assert_eq(callout_submit("a@q.test", 8, 0, NULL), 0);
	run_until(1, 4000);
	cr_assert_eq(nresults, 1, "%s", c->name);
	cr_assert_eq(results[0].verdict, c->want, "%s: %s", c->name,
		     core_verdict_name(results[0].verdict));
	cr_assert_eq(callout_domain("q.test")->health, c->want_health, "%s: health %s", c->name,
		     core_health_name(callout_domain("q.test")->health));
	engine_stop();
	sdest_stop(&d1);
	sdest_stop(&d2);
	cr_assert_eq(d1.sessions, 1, "%s", c->name);
	cr_assert_eq(d2.sessions, c->second_used ? 1u : 0u, "%s", c->name);
}

/* ---- the probe sender ---------------------------------------------------- */

Test(callout, probe_sender_rotates_its_local_part, .timeout = 30)
{
	struct sdest d = {0};
	char text[1200];
	sdest_start(&d);
	dest_conf(text, sizeof(text), d.port, 10);
	strcat(text, "mail_from = <Probe@Q.test>\nmail_from_rotate = 1h\n");
	engine_start_conf(text);
	uint64_t e0 = daemon_wall_s() / 3600;
	cr_assert_eq(callout_submit("a@q.test", 8, 0, NULL), 0);
	run_until(1, 4000);
	uint64_t e1 = daemon_wall_s() / 3600;
	cr_assert_eq(nresults, 1);
	engine_stop();
	sdest_stop(&d);
	char w0[128], w1[128];
	snprintf(w0, sizeof(w0), "MAIL FROM:<Probe-%llu@q.test>", (unsigned long long)e0);
	snprintf(w1, sizeof(w1), "MAIL FROM:<Probe-%llu@q.test>", (unsigned long long)e1);
	cr_assert(!strcmp(d.mail, w0) || !strcmp(d.mail, w1), "sent %s, want %s", d.mail, w0);
}

Test(callout, source_address_binds_the_callout, .timeout = 30)
{
	struct sdest d = {0};
	char text[1200];
	sdest_start(&d);
	dest_conf(text, sizeof(text), d.port, 10);
	strcat(text, "source_address = 127.0.0.2, 2001:2::99\n");
	engine_start_conf(text);
	cr_assert_eq(callout_submit("a@q.test", 8, 0, NULL), 0);
	run_until(1, 4000);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].verdict, CORE_V_VALID);
	engine_stop();
	sdest_stop(&d);
	cr_assert_str_eq(d.peer, "127.0.0.2", "the callout came from %s", d.peer);
}

/* ---- loops: a destination that is this host ----------------------------- */

Test(callout, destination_greeting_as_this_host_is_a_loop, .timeout = 30)
{
	char me[256], banner[300], text[1200];
	cr_assert_eq(gethostname(me, sizeof(me)), 0);
	snprintf(banner, sizeof(banner), "220 %s ESMTP\r\n", me);
	struct sdest d1 = {.banner = banner}, d2 = {0};
	sdest_start(&d1);
	sdest_start(&d2);
	uint64_t loops = callout_stat(CALLOUT_ST_LOOPS);
	/* alone: unverifiable, never asked */
	dest_conf(text, sizeof(text), d1.port, 10);
	engine_start_conf(text);
	cr_assert_eq(callout_submit("a@q.test", 8, 0, NULL), 0);
	run_until(1, 4000);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].verdict, CORE_V_UNVERIFIABLE);
	cr_assert_eq(callout_domain("q.test")->health, CORE_H_UNVERIFIABLE);
	cr_assert(strstr(callout_domain("q.test")->last_error, "mail loop"), "%s",
		  callout_domain("q.test")->last_error);
	cr_assert_eq(callout_stat(CALLOUT_ST_LOOPS), loops + 1);
	engine_stop();
	/* with another destination: that one answers */
	two_dest_conf(text, sizeof(text), d1.port, d2.port);
	engine_start_conf(text);
	cr_assert_eq(callout_submit("b@q.test", 8, 0, NULL), 0);
	run_until(1, 4000);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].verdict, CORE_V_VALID);
	engine_stop();
	sdest_stop(&d1);
	sdest_stop(&d2);
	cr_assert_eq(d1.rcpts, 0, "the looping destination was never asked");
	cr_assert_eq(d2.rcpts, 1);
}

/* ---- STARTTLS ------------------------------------------------------------ */

struct tls_case {
	char name[64];
	char tls[16];		/* the domain's tls key, "" = default */
	bool offer, require;	/* the destination offers / requires STARTTLS */
	int want;
	unsigned want_tls;	/* sessions that went through TLS */
	char error_has[64];
};

static const struct tls_case tls_cases[] = {
	{"530 until STARTTLS: verified over TLS", "", true, true, CORE_V_INVALID, 1, ""},
	{"offered, not required: opportunistic", "", true, false, CORE_V_INVALID, 1, ""},
	{"not offered, may: plain", "", false, false, CORE_V_INVALID, 0, ""},
	{"tls = off: the 530 makes it unverifiable", "off", true, true, CORE_V_UNVERIFIABLE, 0, ""},
	{"tls = required, not offered", "required", false, false, CORE_V_UNVERIFIABLE, 0,
	 "STARTTLS"},
	{"tls = required, offered", "required", true, false, CORE_V_INVALID, 1, ""},
};

ParameterizedTestParameters(callout, starttls)
{
	return cr_make_param_array(struct tls_case, tls_cases,
				   sizeof(tls_cases) / sizeof(tls_cases[0]));
}

ParameterizedTest(const struct tls_case *c, callout, starttls, .timeout = 30)
{
	char dir[] = "/tmp/rg-test-tls-XXXXXX", text[1200], cmd[64];
	cr_assert_not_null(mkdtemp(dir));
	struct sdest d = {.rule = {{"nosuch@", "550 5.1.1 <nosuch@q.test>: User unknown\r\n"}},
			  .tls = c->offer ? sdest_tls_ctx(dir) : NULL,
			  .tls_required = c->require};
	sdest_start(&d);
	dest_conf(text, sizeof(text), d.port, 10);
	if (c->tls[0]) {
		strcat(text, "tls = ");
		strcat(text, c->tls);
		strcat(text, "\n");
	}
	engine_start_conf(text);
	cr_assert_eq(callout_submit("nosuch@q.test", 13, CALLOUT_F_VERIFY, NULL), 0);
	run_until(1, 4000);
	cr_assert_eq(nresults, 1, "%s", c->name);
	cr_assert_eq(results[0].verdict, c->want, "%s: %s\n%s", c->name,
		     core_verdict_name(results[0].verdict), results[0].transcript);
	if (c->want_tls)
		cr_assert(strstr(results[0].transcript, "C: STARTTLS"), "%s", results[0].transcript);
	if (c->error_has[0])
		cr_assert(strstr(callout_domain("q.test")->last_error, c->error_has), "%s: %s",
			  c->name, callout_domain("q.test")->last_error);
	engine_stop();
	sdest_stop(&d);
	cr_assert_eq(d.tls_sessions, c->want_tls, "%s", c->name);
	if (d.tls)
		SSL_CTX_free(d.tls);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

/* A destination refusing the null sender: unverifiable with <> (the
 * default), verified with mail_from set (docs/CONFIG.md: Postfix's verify
 * uses double-bounce@$myorigin, not <>). */
Test(callout, null_sender_refused_then_mail_from, .timeout = 30)
{
	struct sdest d = {.refuse_null_sender = true,
			  .rule = {{"nosuch@", "550 5.1.1 <nosuch@q.test>: User unknown\r\n"}}};
	char text[1200];
	sdest_start(&d);
	dest_conf(text, sizeof(text), d.port, 10);
	engine_start_conf(text);
	cr_assert_eq(callout_submit("nosuch@q.test", 13, 0, NULL), 0);
	run_until(1, 4000);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].verdict, CORE_V_UNVERIFIABLE, "never invalid on a refused <>");
	engine_stop();
	strcat(text, "mail_from = double-bounce@edge.q.test\n");
	engine_start_conf(text);
	cr_assert_eq(callout_submit("nosuch@q.test", 13, 0, NULL), 0);
	run_until(1, 4000);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].verdict, CORE_V_INVALID);
	engine_stop();
	sdest_stop(&d);
	cr_assert_str_eq(d.mail, "MAIL FROM:<double-bounce@edge.q.test>");
}
