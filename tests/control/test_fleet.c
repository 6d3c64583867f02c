/*
 * test_fleet.c — the fleet module against a real redis-server (started by
 * the test on a Unix socket in a temporary directory): the [fleet] section,
 * the shared hash secret in the table, a verdict learned here written to
 * Redis (key + stream), the stream applied to the store and table, Redis
 * asked before a callout, a lock held elsewhere waited for (served by the
 * other node's verdict, or a callout alone after callout_wait), Redis down
 * (callouts go on, counted uncoordinated; what was learned reaches Redis when
 * it is back), catch-up from the last stream id or from the keys when the
 * stream was trimmed, and two daemons (this process and a child rcptgated)
 * verifying each address once between them.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "core.h"
#include "daemon.h"
#include "fleet.h"
#include "khash.h"
#include "rtable.h"
#include "services.h"
#include "spsc.h"
#include "store.h"
#include "xdp.h"

#define SECRET_HEX "00112233445566778899aabbccddeeff"

/* ---- a loopback destination: local parts starting "no" do not exist;
 * every RCPT counted */

static int srv_fd = -1, srv_port;
static int srv_rcpts;
static int srv_active, srv_max_active;	/* concurrent sessions (connected, no QUIT yet) */
static int srv_rcpt_delay_ms;		/* before each RCPT reply */

static void *responder(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096], line[1024];
	size_t len = 0;
	bool counted = true;
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
			if (!strncasecmp(line, "RCPT", 4)) {
				__atomic_add_fetch(&srv_rcpts, 1, __ATOMIC_SEQ_CST);
				if (srv_rcpt_delay_ms)
					usleep((useconds_t)srv_rcpt_delay_ms * 1000u);
			}
			if (!strncasecmp(line, "EHLO", 4))
				r = "250-mx.test\r\n250 PIPELINING\r\n";
			else if (!strncasecmp(line, "RCPT TO:<no", 11))
				r = "550 5.1.1 User unknown in virtual mailbox table\r\n";
			else if (!strncasecmp(line, "QUIT", 4))
				r = "221 Bye\r\n";
			else
				r = "250 Ok\r\n";
			/* a client that says QUIT is done with the session (it may
			 * open its next one before this thread sees the close) */
			if (!strncasecmp(line, "QUIT", 4) && counted) {
				__atomic_sub_fetch(&srv_active, 1, __ATOMIC_SEQ_CST);
				counted = false;
			}
			size_t rl = strlen(r);
			if (ol + rl < sizeof(out)) {
				memcpy(out + ol, r, rl);
				ol += rl;
			}
		}
		if (ol && send(fd, out, ol, MSG_NOSIGNAL) < 0)
			break;
	}
	if (counted)
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

static int rcpts(void)
{
	return __atomic_load_n(&srv_rcpts, __ATOMIC_SEQ_CST);
}

/* ---- redis-server in the temporary directory */

static char dir[64], conf[128], shm[128], rsock[128], secret[128];
static pid_t redis_pid, nodeb_pid;
static redisContext *rc;

static void redis_start(void)
{
	char rdir[100];
	snprintf(rdir, sizeof(rdir), "%s/redis", dir);
	mkdir(rdir, 0700);
	redis_pid = fork();
	cr_assert_geq(redis_pid, 0);
	if (redis_pid == 0) {
		freopen("/dev/null", "w", stdout);
		execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", rsock,
		       "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", rdir,
		       (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		redisContext *c = redisConnectUnix(rsock);
		if (c && !c->err) {
			redisReply *r = redisCommand(c, "PING");
			bool ok = r && r->type == REDIS_REPLY_STATUS;
			freeReplyObject(r);
			if (ok) {
				rc = c;
				return;
			}
		}
		if (c)
			redisFree(c);
		usleep(10000);
	}
	cr_assert_fail("redis-server did not start (is it installed? scripts/setup)");
}

static void redis_kill(void)
{
	if (rc)
		redisFree(rc);
	rc = NULL;
	if (redis_pid > 0) {
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
	}
	redis_pid = 0;
	unlink(rsock);
}

static redisReply *cmd(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(rc, fmt, ap);
	va_end(ap);
	cr_assert_not_null(r, "redis: %s", rc->errstr);
	return r;
}

static void key_of(const char *addr, char *out, const char *kind)
{
	uint8_t k[16];
	char err[200];
	cr_assert_eq(fleet_secret_read(secret, k, err, sizeof(err)), 0, "%s", err);
	struct rg_key128 h;
	khash128(k, addr, strlen(addr), &h);
	sprintf(out, "rg:%s:%016" PRIx64 "%016" PRIx64, kind, h.hi, h.lo);
}

/* another node's verdict as it writes it: the key, and the stream unless
 * key_only */
static void other_node_learns(const char *addr, bool valid, bool key_only)
{
	struct store_rec rec = {.version = STORE_REC_VERSION};
	rec.verdict = valid ? RT_VALID : RT_INVALID;
	rec.source = RT_SRC_CALLOUT;
	rec.updated = (uint64_t)time(NULL);
	rec.refresh_at = rec.updated + 600;
	rec.expiry = rec.updated + 3600;
	rec.code = valid ? 250 : 550;
	char val[FLEET_REC_MAX], key[100];
	int n = fleet_rec_encode(addr, strlen(addr), &rec, val);
	cr_assert_gt(n, 0);
	key_of(addr, key, "v");
	freeReplyObject(cmd("SET %s %b EXAT %" PRIu64, key, val, (size_t)n, rec.expiry));
	if (!key_only)
		freeReplyObject(cmd("XADD rg:stream MAXLEN ~ 100000 * n other o v r %b", val,
				    (size_t)n));
}

/* ---- the daemon */

static const char *fleet_extra = "";
static const char *dom_extra = "";

static void write_conf_at(const char *path, const char *shm_path, const char *store,
			  const char *ctl, const char *node)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"[global]\nshm_path = %s\nstore_path = %s\ncontrol_socket = %s\n"
		"shm_max_lcores = 2\ntable_init_log2 = 10\ntable_max_log2 = 16\n"
		"syslog_facility = local7\nxdp_pin_dir = %s/bpf\n\n"
		"[fleet]\nredis = %s\nsecret_file = %s\nnode_name = %s\n%s\n"
		"[domain dm.test]\ndestination = 127.0.0.1:%d\naccept_all_probe = no\n%s",
		shm_path, store, ctl, dir, rsock, secret, node, fleet_extra, srv_port, dom_extra);
	fclose(f);
}

static void write_conf(void)
{
	char store[100], ctl[100];
	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(ctl, sizeof(ctl), "%s/ctl.sock", dir);
	write_conf_at(conf, shm, store, ctl, "a");
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/rg-test-fleet-%d", (int)getpid());
	snprintf(conf, sizeof(conf), "%s/rcptgated.conf", dir);
	snprintf(shm, sizeof(shm), "/dev/shm/rg-test-fleet-%d", (int)getpid());
	snprintf(rsock, sizeof(rsock), "%s/redis.sock", dir);
	snprintf(secret, sizeof(secret), "%s/fleet.key", dir);
	char c[200];
	snprintf(c, sizeof(c), "rm -rf %s && mkdir -p %s", dir, dir);
	cr_assert_eq(system(c), 0);
	FILE *f = fopen(secret, "w");
	fprintf(f, "%s\n", SECRET_HEX);
	fclose(f);
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	srv_rcpts = 0;
	srv_active = srv_max_active = srv_rcpt_delay_ms = 0;
	srv_fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	cr_assert_eq(bind(srv_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(srv_fd, (struct sockaddr *)&a, &l);
	srv_port = ntohs(a.sin_port);
	listen(srv_fd, 64);
	pthread_t t;
	pthread_create(&t, NULL, acceptor, NULL);
	pthread_detach(t);
	redis_start();
	write_conf();
}

static void teardown(void)
{
	daemon_fini();
	if (nodeb_pid > 0) {
		kill(nodeb_pid, SIGKILL);
		waitpid(nodeb_pid, NULL, 0);
		nodeb_pid = 0;
	}
	redis_kill();
	char c[400];
	snprintf(c, sizeof(c), "rm -rf %s %s %s-b", dir, shm, shm);
	if (system(c) != 0)
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

struct stat_q {
	const char *name;
	uint64_t v;
	bool found;
};

static void stat_fn(const char *g, const char *n, uint64_t v, const char *h, void *arg)
{
	(void)h;
	struct stat_q *q = arg;
	if (!strcmp(g, "fleet") && !strcmp(n, q->name)) {
		q->v = v;
		q->found = true;
	}
}

static uint64_t fstat_v(const char *name)
{
	struct stat_q q = {.name = name};
	core_stats_foreach(stat_fn, &q);
	cr_assert(q.found, "no fleet counter %s", name);
	return q.v;
}

static bool connected(void)
{
	struct core_status st;
	core_status(&st);
	return st.fleet.connected;
}

static void wait_connected(void)
{
	for (int i = 0; i < 400 && !connected(); i++)
		spin(10);
	cr_assert(connected(), "fleet connected to Redis");
}

static void push_miss_at(const char *path, const char *addr)
{
	struct shm_map m;
	char err[256];
	cr_assert_eq(shm_attach_reader(path, &m, err, sizeof(err)), 0, "%s", err);
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

static bool table_has_at(const char *path, const char *addr, uint8_t verdict)
{
	struct shm_map m;
	char err[256];
	if (shm_attach_reader(path, &m, err, sizeof(err)))
		return false;
	struct rtable_reader rd;
	rtable_reader_init(&rd, &m, NULL);
	struct rg_key128 k;
	khash128(shm_hdr(&m)->hash_key, addr, strlen(addr), &k);
	struct rtable_val v;
	bool ok = rtable_lookup(&rd, &k, &v) && v.verdict == verdict;
	shm_detach(&m);
	return ok;
}

static bool table_has(const char *addr, uint8_t verdict)
{
	return table_has_at(shm, addr, verdict);
}

static void wait_table(const char *addr, uint8_t verdict, int ms)
{
	for (int i = 0; i < ms / 10 && !table_has(addr, verdict); i++)
		spin(10);
	cr_assert(table_has(addr, verdict), "%s in the table", addr);
}

/* Node b (a child rcptgated) connected to Redis: its stats say so. */
static bool child_connected(const char *ctlsock)
{
	const char *ctl = getenv("RG_RCPTCTL");
	cr_assert_not_null(ctl, "RG_RCPTCTL not set");
	char line[400], out[16384] = "";
	size_t ol = 0;
	snprintf(line, sizeof(line), "%s --socket %s stats 2>/dev/null", ctl, ctlsock);
	FILE *p = popen(line, "r");
	if (!p)
		return false;
	while (ol < sizeof(out) - 1 && fgets(out + ol, (int)(sizeof(out) - ol), p))
		ol += strlen(out + ol);
	pclose(p);
	return strstr(out, "fleet.connected 1\n") != NULL;
}

static void wait_child_connected(const char *ctlsock)
{
	bool ok = false;
	for (int i = 0; i < 100 && !(ok = child_connected(ctlsock)); i++)
		spin(20);
	cr_assert(ok, "node b connected to Redis");
}

TestSuite(fleet, .init = setup, .fini = teardown, .timeout = 90);

/* ---- the [fleet] section */

Test(fleet, config_section)
{
	struct config c;
	char err[512];
	cr_assert_eq(config_load_string("t.conf", "[global]\n[fleet]\nredis = /run/redis.sock\n"
					"secret_file = /etc/k\nnode_name = edge1\ncallout_wait = 500ms\n",
					&c, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(c.fleet_redis, "/run/redis.sock");
	cr_expect_str_eq(c.fleet_node, "edge1");
	cr_expect_str_eq(c.fleet_prefix, "rg:");
	cr_expect_eq(c.fleet_wait_ms, 500);
	cr_expect_eq(c.fleet_lock_ms, 15000);
	config_free(&c);
	cr_assert_eq(config_load_string("t.conf", "[fleet]\nredis = [2001:2::1]:6379\n"
					"secret_file = /k\n", &c, err, sizeof(err)), 0, "%s", err);
	config_free(&c);
	cr_assert_eq(config_load_string("t.conf", "[fleet]\nredis = 198.18.0.1:6379\n"
					"secret_file = /k\n", &c, err, sizeof(err)), 0, "%s", err);
	config_free(&c);
	/* absent: no fleet */
	cr_assert_eq(config_load_string("t.conf", "[global]\n", &c, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(c.fleet_redis, "");
	config_free(&c);
	static const struct {
		const char *text, *msg;
	} bad[] = {
		{"[fleet]\nredis = /r.sock\n", "needs secret_file"},
		{"[global]\nredis = /r.sock\n", "belongs in [fleet]"},
		{"[fleet]\nstore_path = /x\n", "does not belong in [fleet]"},
		{"[fleet]\nredis = /r\nsecret_file = /k\ncallout_wait = 20s\n", "shorter than"},
		{"[fleet]\nredis = /r\nredis = /s\n", "given twice"},
		{"[fleet]\nredis = redis.example:6379\nsecret_file = /k\n", "blocking"},
		{"[fleet]\nredis = 198.18.0.1\nsecret_file = /k\n", "IPv4:port"},
		{"[fleet]\nredis = 198.18.0.1:0\nsecret_file = /k\n", "IPv4:port"},
		{"[fleet]\nredis = [2001:2::1]6379\nsecret_file = /k\n", "IPv4:port"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		cr_expect_neq(config_load_string("t.conf", bad[i].text, &c, err, sizeof(err)), 0,
			      "%s accepted", bad[i].text);
		cr_expect(strstr(err, bad[i].msg), "%s: '%s' lacks '%s'", bad[i].text, err, bad[i].msg);
		config_free(&c);
	}
}

/* The table hashes with the fleet's secret; a bad secret file stops the start. */
Test(fleet, shared_secret)
{
	start();
	struct shm_map m;
	char err[256];
	cr_assert_eq(shm_attach_reader(shm, &m, err, sizeof(err)), 0, "%s", err);
	static const uint8_t want[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
					 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
	cr_assert_arr_eq(shm_hdr(&m)->hash_key, want, 16);
	shm_detach(&m);
	daemon_fini();
	FILE *f = fopen(secret, "w");
	fprintf(f, "not hex\n");
	fclose(f);
	struct daemon_opts o = {.config_path = conf, .services = rcptgated_services,
				.nservices = RCPTGATED_NSERVICES};
	char e2[512] = "";
	cr_assert_neq(daemon_init(&o, e2, sizeof(e2)), 0);
	cr_assert(strstr(e2, "32 hex digits"), "%s", e2);
}

/* A verdict learned here goes to Redis: its key (with the expiry) and the stream. */
Test(fleet, verdict_shared)
{
	start();
	wait_connected();
	push_miss_at(shm, "nobody@dm.test");
	wait_table("nobody@dm.test", RT_INVALID, 3000);
	cr_assert_eq(rcpts(), 1);
	char key[100];
	key_of("nobody@dm.test", key, "v");
	redisReply *r = NULL;
	for (int i = 0; i < 100; i++) {
		spin(10);
		freeReplyObject(r);
		r = cmd("GET %s", key);
		if (r->type == REDIS_REPLY_STRING)
			break;
	}
	cr_assert_eq(r->type, REDIS_REPLY_STRING, "key written");
	char a[RG_ADDR_MAX + 1];
	size_t al;
	struct store_rec rec;
	cr_assert_eq(fleet_rec_decode(r->str, r->len, a, &al, &rec), 0, "%s", r->str);
	cr_expect_str_eq(a, "nobody@dm.test");
	cr_expect_eq(rec.verdict, RT_INVALID);
	cr_expect_eq(rec.code, 550);
	freeReplyObject(r);
	r = cmd("TTL %s", key);
	cr_expect_gt(r->integer, 0, "the key expires with the verdict");
	freeReplyObject(r);
	r = cmd("XRANGE rg:stream - +");
	cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
	cr_assert_eq(r->elements, 1);
	redisReply *fields = r->element[0]->element[1];
	cr_expect_str_eq(fields->element[1]->str, "a", "the node's name");
	freeReplyObject(r);
	cr_expect_eq(fstat_v("published"), 1);
	cr_expect_eq(fstat_v("locks_taken"), 1);
}

/* Another node's verdict on the stream reaches this node's store and table. */
Test(fleet, stream_applied)
{
	start();
	wait_connected();
	other_node_learns("remote@dm.test", true, false);
	other_node_learns("noremote@dm.test", false, false);
	other_node_learns("x@unmanaged.test", true, false);
	wait_table("remote@dm.test", RT_VALID, 3000);
	wait_table("noremote@dm.test", RT_INVALID, 3000);
	struct core_lookup l;
	char err[256];
	cr_assert_eq(core_lookup("noremote@dm.test", &l, err, sizeof(err)), 0, "%s", err);
	cr_expect(l.in_store, "in the store too");
	cr_expect_eq(l.verdict, CORE_V_INVALID);
	cr_expect_eq(fstat_v("applied"), 2);
	cr_expect_eq(fstat_v("apply_skipped"), 1, "a domain not managed here");
	cr_expect_eq(rcpts(), 0, "no callout");
	/* a miss for it now is answered here: nothing asked */
	struct core_status st;
	core_status(&st);
	cr_expect(st.fleet.enabled && st.fleet.connected);
	cr_expect_gt(st.fleet.last_sync_s, 0);
	cr_expect_eq(st.fleet.applied, 2);
}

/* One stream entry carries every verdict of a turn (an "r" field each):
 * all of them are applied; an entry of this node's own (n = a) is not. */
static int rec_of(const char *addr, bool valid, char *val)
{
	struct store_rec rec = {.version = STORE_REC_VERSION};
	rec.verdict = valid ? RT_VALID : RT_INVALID;
	rec.source = RT_SRC_CALLOUT;
	rec.updated = (uint64_t)time(NULL);
	rec.refresh_at = rec.updated + 600;
	rec.expiry = rec.updated + 3600;
	rec.code = valid ? 250 : 550;
	int n = fleet_rec_encode(addr, strlen(addr), &rec, val);
	cr_assert_gt(n, 0);
	return n;
}

Test(fleet, stream_entry_of_several)
{
	start();
	wait_connected();
	char v1[FLEET_REC_MAX], v2[FLEET_REC_MAX], v3[FLEET_REC_MAX], v4[FLEET_REC_MAX];
	int n1 = rec_of("multi1@dm.test", true, v1), n2 = rec_of("multi2@dm.test", false, v2);
	int n3 = rec_of("multi3@dm.test", true, v3), n4 = rec_of("mine@dm.test", true, v4);
	freeReplyObject(cmd("XADD rg:stream * n a o v r %b", v4, (size_t)n4));
	freeReplyObject(cmd("XADD rg:stream * n other o v r %b r %b r %b", v1, (size_t)n1, v2,
			    (size_t)n2, v3, (size_t)n3));
	wait_table("multi1@dm.test", RT_VALID, 3000);
	wait_table("multi2@dm.test", RT_INVALID, 3000);
	wait_table("multi3@dm.test", RT_VALID, 3000);
	spin(50);
	cr_expect_eq(fstat_v("applied"), 3, "the three verdicts of one entry");
	cr_expect_not(table_has("mine@dm.test", RT_VALID), "this node's own entry skipped");
	cr_expect_eq(fstat_v("apply_bad"), 0);
}

/* A node new to the fleet reads every key: a callout lock held in a
 * verdict's key (no verdict yet) is no verdict, not a malformed one. */
Test(fleet, resync_skips_locks)
{
	char lk[100];
	key_of("pending@dm.test", lk, "v");
	freeReplyObject(cmd("SET %s %s PX 10000", lk, "L other"));
	other_node_learns("keyed@dm.test", true, true);
	start();
	wait_connected();
	wait_table("keyed@dm.test", RT_VALID, 3000);
	spin(50);
	cr_expect_eq(fstat_v("resync_keys"), 1, "the verdict, not the lock");
	cr_expect_eq(fstat_v("apply_bad"), 0);
	cr_expect_not(table_has("pending@dm.test", RT_VALID));
	cr_expect_not(table_has("pending@dm.test", RT_INVALID));
}

/* On a miss the node looks into Redis before it calls out. */
Test(fleet, redis_asked_before_callout)
{
	start();
	wait_connected();
	other_node_learns("keyonly@dm.test", true, true);
	push_miss_at(shm, "keyonly@dm.test");
	wait_table("keyonly@dm.test", RT_VALID, 3000);
	spin(100);
	cr_expect_eq(rcpts(), 0, "answered from Redis, no callout");
	cr_expect_eq(fstat_v("gate_hits"), 1);
	cr_expect_eq(fstat_v("locks_taken"), 0);
}

/* A lock held by another node: wait for its verdict on the stream. */
Test(fleet, lock_wait_served)
{
	start();
	wait_connected();
	char lk[100];
	key_of("erin@dm.test", lk, "v"); /* another node's lock: in the verdict's key */
	freeReplyObject(cmd("SET %s %s NX PX 10000", lk, "L other"));
	push_miss_at(shm, "erin@dm.test");
	spin(300);
	cr_assert_eq(rcpts(), 0, "no callout while another node holds the lock");
	cr_assert_eq(fstat_v("lock_waits"), 1);
	other_node_learns("erin@dm.test", true, false);
	wait_table("erin@dm.test", RT_VALID, 2000);
	spin(50);
	cr_expect_eq(rcpts(), 0);
	cr_expect_eq(fstat_v("lock_wait_served"), 1);
	cr_expect_eq(fstat_v("lock_timeouts"), 0);
}

/* ... and when no verdict comes within callout_wait, call out alone. */
Test(fleet, lock_wait_timeout)
{
	fleet_extra = "callout_wait = 300ms\n";
	write_conf();
	start();
	fleet_extra = "";
	wait_connected();
	char lk[100];
	key_of("nofrank@dm.test", lk, "v"); /* another node's lock: in the verdict's key */
	freeReplyObject(cmd("SET %s %s NX PX 10000", lk, "L other"));
	push_miss_at(shm, "nofrank@dm.test");
	spin(150);
	cr_assert_eq(rcpts(), 0, "still waiting");
	wait_table("nofrank@dm.test", RT_INVALID, 3000);
	cr_expect_eq(rcpts(), 1, "called out alone after the wait");
	cr_expect_eq(fstat_v("lock_timeouts"), 1);
}

/* Redis down: callouts go on (uncoordinated), and what was learned meanwhile
 * reaches Redis when it is back. */
Test(fleet, redis_down_and_back)
{
	start();
	wait_connected();
	redis_kill();
	spin(200);
	cr_assert_not(connected());
	push_miss_at(shm, "grace@dm.test");
	wait_table("grace@dm.test", RT_VALID, 3000);
	cr_expect_eq(rcpts(), 1, "verified alone");
	cr_expect_geq(fstat_v("uncoordinated"), 1);
	struct core_status st;
	core_status(&st);
	cr_expect_gt(st.fleet.down_since_s, 0);
	cr_expect_eq(st.fleet.outbox, 1);
	spin(500); /* several reconnect attempts: one outage */
	cr_expect_eq(fstat_v("outages"), 1);
	redis_start();
	wait_connected();
	char key[100];
	key_of("grace@dm.test", key, "v");
	redisReply *r = NULL;
	for (int i = 0; i < 100; i++) {
		spin(10);
		freeReplyObject(r);
		r = cmd("GET %s", key);
		if (r->type == REDIS_REPLY_STRING)
			break;
	}
	cr_expect_eq(r->type, REDIS_REPLY_STRING, "the verdict learned while down is in Redis");
	freeReplyObject(r);
	core_status(&st);
	cr_expect_eq(st.fleet.outbox, 0);
	cr_expect_eq(st.fleet.down_since_s, 0);
}

/* A dropped connection resumes from the last stream id; trimmed past it, the
 * node resynchronises from the keys. */
Test(fleet, catch_up)
{
	start();
	wait_connected();
	other_node_learns("first@dm.test", true, false);
	wait_table("first@dm.test", RT_VALID, 3000);
	uint64_t resyncs = fstat_v("resyncs");
	/* away briefly: the entries written meanwhile come from the stream */
	freeReplyObject(cmd("CLIENT KILL TYPE normal SKIPME yes"));
	other_node_learns("second@dm.test", true, false);
	wait_table("second@dm.test", RT_VALID, 3000);
	cr_expect_eq(fstat_v("resyncs"), resyncs, "resumed from the last id");
	/* away while the stream is trimmed past it: from the keys */
	freeReplyObject(cmd("CLIENT KILL TYPE normal SKIPME yes"));
	char a[64];
	for (int i = 0; i < 30; i++) {
		snprintf(a, sizeof(a), "bulk%d@dm.test", i);
		other_node_learns(a, true, false);
	}
	freeReplyObject(cmd("XTRIM rg:stream MAXLEN 5"));
	for (int i = 0; i < 300; i++) {
		spin(10);
		if (table_has("bulk0@dm.test", RT_VALID) && table_has("bulk29@dm.test", RT_VALID))
			break;
	}
	for (int i = 0; i < 30; i++) {
		snprintf(a, sizeof(a), "bulk%d@dm.test", i);
		cr_expect(table_has(a, RT_VALID), "%s caught up", a);
	}
	cr_expect_eq(fstat_v("resyncs"), resyncs + 1, "resynchronised from the keys");
	cr_expect_eq(rcpts(), 0);
}

/* This daemon and a child rcptgated ("b", its shared memory in shmb), both
 * in the fleet, configured with dom_extra (reset after), both connected. */
static void two_nodes(char shmb[140])
{
	const char *bin = getenv("RG_RCPTGATED");
	cr_assert_not_null(bin, "RG_RCPTGATED not set");
	char confb[128], storeb[100], ctlb[100];
	snprintf(confb, sizeof(confb), "%s/b.conf", dir);
	snprintf(shmb, 140, "%s-b", shm);
	snprintf(storeb, sizeof(storeb), "%s/store-b", dir);
	snprintf(ctlb, sizeof(ctlb), "%s/ctl-b.sock", dir);
	write_conf_at(confb, shmb, storeb, ctlb, "b");
	write_conf();
	dom_extra = "";
	nodeb_pid = fork();
	cr_assert_geq(nodeb_pid, 0);
	if (nodeb_pid == 0) {
		freopen("/dev/null", "w", stderr);
		execl(bin, bin, "-c", confb, "-e", (char *)NULL);
		_exit(127);
	}
	start();
	wait_connected();
	struct stat sb;
	for (int i = 0; i < 300 && stat(ctlb, &sb); i++)
		spin(10);
	cr_assert_eq(stat(ctlb, &sb), 0, "node b started");
	wait_child_connected(ctlb); /* node b connected to Redis */
}

/* Two daemons (this one and a child rcptgated) both see a miss for each of
 * 40 addresses: the destination is asked once per address. */
Test(fleet, two_nodes_one_callout)
{
	char shmb[140];
	two_nodes(shmb);
	enum { N = 40 };
	char a[N][64];
	for (int i = 0; i < N; i++) {
		snprintf(a[i], sizeof(a[i]), "%suser%d@dm.test", i % 2 ? "no" : "", i);
		push_miss_at(shmb, a[i]);
		push_miss_at(shm, a[i]);
	}
	int done = 0;
	for (int t = 0; t < 600 && done < 2 * N; t++) {
		spin(10);
		done = 0;
		for (int i = 0; i < N; i++) {
			uint8_t v = i % 2 ? RT_INVALID : RT_VALID;
			done += table_has(a[i], v) + table_has_at(shmb, a[i], v);
		}
	}
	cr_assert_eq(done, 2 * N, "every verdict in both tables");
	spin(200);
	cr_expect_eq(rcpts(), N, "each address verified once for the fleet (%d RCPTs)", rcpts());
	/* node b's status and stats, as rcptctl shows them */
	const char *ctl = getenv("RG_RCPTCTL");
	cr_assert_not_null(ctl, "RG_RCPTCTL not set");
	char line[600], out[8192] = "", ctlb[100];
	snprintf(ctlb, sizeof(ctlb), "%s/ctl-b.sock", dir); /* two_nodes's */
	size_t ol = 0;
	snprintf(line, sizeof(line), "%s --socket %s status; %s --socket %s stats; "
		 "%s --socket %s --json status", ctl, ctlb, ctl, ctlb, ctl, ctlb);
	FILE *p = popen(line, "r");
	cr_assert_not_null(p);
	while (ol < sizeof(out) - 1 && fgets(out + ol, (int)(sizeof(out) - ol), p))
		ol += strlen(out + ol);
	pclose(p);
	cr_expect(strstr(out, "fleet:         node b, Redis "), "%s", out);
	cr_expect(strstr(out, ": connected\n"), "%s", out);
	cr_expect(strstr(out, "lock waits "), "%s", out);
	cr_expect(strstr(out, "uncoordinated callouts 0"), "%s", out);
	cr_expect(strstr(out, "fleet.connected 1"), "%s", out);
	cr_expect(strstr(out, "fleet.published "), "%s", out);
	cr_expect(strstr(out, "\"fleet\":{\"connected\":true,\"node\":\"b\""),
		  "status --json: the fleet as an object: %s", out);
	cr_log_info("two nodes: %d RCPTs for %d addresses; here: %" PRIu64 " locks, %" PRIu64
		    " waits served, %" PRIu64 " gate hits, %" PRIu64 " uncoordinated",
		    rcpts(), N, fstat_v("locks_taken"), fstat_v("lock_wait_served"),
		    fstat_v("gate_hits"), fstat_v("uncoordinated"));
}

/* ---- harvest sums and blocks */

static void push_reject(const char *client)
{
	struct shm_map m;
	char err[256];
	cr_assert_eq(shm_attach_reader(shm, &m, err, sizeof(err)), 0, "%s", err);
	const struct shm_hdr *h = shm_hdr(&m);
	struct spsc_hdr *r = (struct spsc_hdr *)((uint8_t *)shm_lcore_at(&m, 0) + h->event_ring_off);
	struct msg_event *ev = spsc_reserve(r);
	cr_assert_not_null(ev);
	memset(ev, 0, sizeof(*ev));
	ev->type = MSG_EV_REJECT;
	ev->code = 550;
	ev->family = 4;
	inet_pton(AF_INET, client, ev->client_ip);
	ev->rcpt_len = 13;
	memcpy(ev->rcpt, "nobody@dm.test", 13);
	spsc_commit(r);
	shm_detach(&m);
}

struct blk_q {
	const char *prefix;
	bool found, manual;
};

static int blk_fn(const struct xdp_block_info *b, void *arg)
{
	struct blk_q *q = arg;
	if (!strcmp(b->prefix, q->prefix)) {
		q->found = true;
		q->manual = b->manual;
	}
	return 0;
}

static bool blocked(const char *prefix, bool *manual)
{
	struct blk_q q = {.prefix = prefix};
	xdp_blocks_foreach(blk_fn, &q);
	if (manual)
		*manual = q.manual;
	return q.found;
}

/* Stream entries (their op and prefix) written by node a. */
static int stream_ops(const char *op, const char *prefix)
{
	redisReply *r = cmd("XRANGE rg:stream - +");
	int n = 0;
	for (size_t i = 0; i < r->elements; i++) {
		redisReply *f = r->element[i]->element[1];
		const char *no = "", *o = "", *p = "";
		for (size_t k = 0; k + 1 < f->elements; k += 2) {
			if (!strcmp(f->element[k]->str, "n"))
				no = f->element[k + 1]->str;
			if (!strcmp(f->element[k]->str, "o"))
				o = f->element[k + 1]->str;
			if (!strcmp(f->element[k]->str, "p"))
				p = f->element[k + 1]->str;
		}
		n += !strcmp(no, "a") && !strcmp(o, op) && !strcmp(p, prefix);
	}
	freeReplyObject(r);
	return n;
}

/* Rejections of one source on two nodes add up: over harvest_limit together
 * (never alone), it is blocked here and announced to the fleet. */
Test(fleet, harvest_summed_over_nodes)
{
	fleet_extra = "harvest_limit = 10\nharvest_window = 60s\n";
	write_conf();
	start();
	fleet_extra = "";
	wait_connected();
	if (!xdp_maps_supported())
		cr_skip_test("built without libbpf: no XDP blocklist");
	/* alone: 5 rejections stay under the limit */
	for (int i = 0; i < 5; i++)
		push_reject("198.18.5.7");
	spin(300);
	cr_assert_eq(fstat_v("harvest_counted"), 10, "/32 and /24 each counted");
	cr_assert_not(blocked("198.18.5.7/32", NULL), "5 of 10: not blocked");
	/* another node counted 4 of the same source in this window */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t win = ((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u) / 60000u;
	freeReplyObject(cmd("INCRBY rg:h:%" PRIu64 ":198.18.5.7/32 4", win));
	for (int i = 0; i < 2; i++)
		push_reject("198.18.5.7");
	for (int i = 0; i < 100 && !blocked("198.18.5.7/32", NULL); i++)
		spin(10);
	bool manual = true;
	cr_assert(blocked("198.18.5.7/32", &manual), "5 + 4 + 2 over the fleet: blocked");
	cr_expect_not(manual, "a harvest block");
	cr_expect_not(blocked("198.18.5.0/24", NULL), "the /24 saw 7 only");
	cr_expect_eq(fstat_v("harvest_blocks"), 1);
	for (int i = 0; i < 100 && stream_ops("b", "198.18.5.7/32") < 1; i++)
		spin(10);
	cr_expect_eq(stream_ops("b", "198.18.5.7/32"), 1, "announced on the stream");
	redisReply *r = cmd("PTTL rg:b:198.18.5.7/32");
	cr_expect_gt(r->integer, 0, "one announcement per block_ttl");
	freeReplyObject(r);
}

/* A block decided elsewhere (harvest or by hand) enters this node's
 * blocklist; an unblock leaves it. */
Test(fleet, blocks_from_the_fleet)
{
	start();
	wait_connected();
	if (!xdp_maps_supported())
		cr_skip_test("built without libbpf: no XDP blocklist");
	/* as another node writes them: the key, then the stream entry (a block
	 * written just before this node's first probe reaches it by the key) */
	freeReplyObject(cmd("SET rg:b:198.18.9.0/24 %s PX 600000", "other 1 0 0 198.18.9.0/24"));
	freeReplyObject(cmd("XADD rg:stream * n other o b p 198.18.9.0/24 m 1 t 600 c 0"));
	freeReplyObject(cmd("SET rg:b:198.18.10.3/32 %s PX 3600000", "other 0 0 40 198.18.10.3/32"));
	freeReplyObject(cmd("XADD rg:stream * n other o b p 198.18.10.3/32 m 0 t 3600 c 40"));
	for (int i = 0; i < 100 && !blocked("198.18.10.3/32", NULL); i++)
		spin(10);
	bool manual = false;
	cr_assert(blocked("198.18.9.0/24", &manual));
	cr_expect(manual, "blocked by hand elsewhere");
	cr_assert(blocked("198.18.10.3/32", &manual));
	cr_expect_not(manual, "a harvest block elsewhere");
	freeReplyObject(cmd("DEL rg:b:198.18.9.0/24"));
	freeReplyObject(cmd("XADD rg:stream * n other o u p 198.18.9.0/24 m 1 t 0 c 0"));
	for (int i = 0; i < 100 && blocked("198.18.9.0/24", NULL); i++)
		spin(10);
	cr_expect_not(blocked("198.18.9.0/24", NULL), "unblocked by the fleet");
	/* each block once, or twice when both its key and its entry were read */
	cr_expect_geq(fstat_v("blocks_applied"), 2);
	cr_expect_leq(fstat_v("blocks_applied"), 4);
	cr_expect_eq(fstat_v("unblocks_applied"), 1);
}

/* Blocks decided before a node joins (or while it was away longer than the
 * stream remembers) reach it from the keys: a block is also a key b:<prefix>
 * ("node manual expiry_ms count prefix", expiring with the block), read by the
 * resynchronisation as the verdicts are. */
Test(fleet, blocks_reach_a_new_node)
{
	if (!xdp_maps_supported())
		cr_skip_test("built without libbpf: no XDP blocklist");
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned long long now = (unsigned long long)ts.tv_sec * 1000u + ts.tv_nsec / 1000000u;
	char v[96];
	snprintf(v, sizeof(v), "other 1 %llu 0 198.18.11.0/24", now + 600000u);
	freeReplyObject(cmd("SET rg:b:198.18.11.0/24 %s PX 600000", v));
	snprintf(v, sizeof(v), "other 0 %llu 40 198.18.12.3/32", now + 3600000u);
	freeReplyObject(cmd("SET rg:b:198.18.12.3/32 %s PX 3600000", v));
	/* the stream has moved on: nothing of these blocks in it */
	freeReplyObject(cmd("XADD rg:stream * n other o d a x@example.test"));
	start();
	wait_connected();
	for (int i = 0; i < 200 && !(blocked("198.18.11.0/24", NULL) &&
				     blocked("198.18.12.3/32", NULL)); i++)
		spin(10);
	bool manual = false;
	cr_assert(blocked("198.18.11.0/24", &manual),
		  "a block by hand from before this node (resyncs %d, keys %d, bad %d)",
		  (int)fstat_v("resyncs"), (int)fstat_v("resync_keys"), (int)fstat_v("apply_bad"));
	cr_expect(manual);
	cr_assert(blocked("198.18.12.3/32", &manual), "a harvest block from before this node");
	cr_expect_not(manual);
}

/* rcptctl against the in-process daemon, the loop pumped meanwhile. */
static int rcptctl_run(const char *const args[], char *out, size_t outlen)
{
	const char *bin = getenv("RG_RCPTCTL");
	cr_assert_not_null(bin, "RG_RCPTCTL not set");
	char sock[100];
	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	int p[2], ws;
	size_t have = 0;
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		const char *argv[12] = {bin, "--socket", sock};
		int i = 3;
		for (int j = 0; args[j] && i < 11; j++)
			argv[i++] = args[j];
		argv[i] = NULL;
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		alarm(20);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	for (;;) {
		ssize_t r = read(p[0], out + have, outlen - 1 - have);
		if (r > 0) {
			have += (size_t)r;
			continue;
		}
		if (r == 0)
			break;
		daemon_loop_once(5);
	}
	out[have] = 0;
	close(p[0]);
	while (waitpid(pid, &ws, WNOHANG) == 0)
		daemon_loop_once(5);
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/* rcptctl block/unblock act fleet-wide: written to the stream; an unblock
 * of a prefix not blocked here still reaches the others. */
Test(fleet, block_by_hand_fleet_wide)
{
	start();
	wait_connected();
	if (!xdp_maps_supported())
		cr_skip_test("built without libbpf: no XDP blocklist");
	char out[4096];
	const char *blk[] = {"block", "198.18.7.0/24", "--ttl", "600", "--json", NULL};
	cr_assert_eq(rcptctl_run(blk, out, sizeof(out)), 0, "%s", out);
	cr_expect(strstr(out, "\"fleet\": true") || strstr(out, "\"fleet\":true"), "%s", out);
	cr_assert(blocked("198.18.7.0/24", NULL));
	for (int i = 0; i < 100 && stream_ops("b", "198.18.7.0/24") < 1; i++)
		spin(10);
	cr_expect_eq(stream_ops("b", "198.18.7.0/24"), 1);
	/* and its key, for nodes that join later (by hand: manual flag 1) */
	redisReply *k = NULL;
	for (int i = 0; i < 100; i++) {
		k = cmd("GET rg:b:198.18.7.0/24");
		if (k->type == REDIS_REPLY_STRING)
			break;
		freeReplyObject(k);
		k = NULL;
		spin(10);
	}
	cr_assert_not_null(k, "b: key of a block by hand");
	cr_expect(strstr(k->str, " 1 ") != NULL, "manual flag in '%s'", k->str);
	freeReplyObject(k);
	redisReply *pt = cmd("PTTL rg:b:198.18.7.0/24");
	cr_expect(pt->type == REDIS_REPLY_INTEGER && pt->integer > 0, "the key expires with the block");
	freeReplyObject(pt);
	const char *ub[] = {"unblock", "198.18.8.0/24", NULL};
	cr_assert_eq(rcptctl_run(ub, out, sizeof(out)), 0, "not blocked here, unblocked fleet-wide: %s",
		     out);
	for (int i = 0; i < 100 && stream_ops("u", "198.18.8.0/24") < 1; i++)
		spin(10);
	cr_expect_eq(stream_ops("u", "198.18.8.0/24"), 1);
	cr_expect_eq(fstat_v("blocks_shared"), 2);
}

/* dest_rcpt_rate holds for the fleet as a whole: two nodes at 20 RCPTs/s
 * each take about 80/20 - 1 = 3 s for 80 addresses between them (a node
 * alone would let 2 x 20 per second through and finish in about 1 s). */
Test(fleet, rcpt_rate_shared)
{
	dom_extra = "dest_rcpt_rate = 20\nbatch = 10\ndest_conn_rate = 100\n";
	char shmb[140];
	two_nodes(shmb);
	enum { N = 80 };
	char a[N][64];
	uint64_t t0 = daemon_now_ms();
	for (int i = 0; i < N; i++) {
		snprintf(a[i], sizeof(a[i]), "rate%d@dm.test", i);
		push_miss_at(i % 2 ? shmb : shm, a[i]);
	}
	int done = 0;
	uint64_t t1 = t0;
	for (int t = 0; t < 1000 && done < N; t++) {
		spin(10);
		done = 0;
		for (int i = 0; i < N; i++)
			done += table_has_at(i % 2 ? shmb : shm, a[i], RT_VALID);
		t1 = daemon_now_ms();
	}
	cr_assert_eq(done, N, "all verified");
	cr_log_info("two nodes, 20 RCPTs/s for the fleet: %d addresses in %llu ms (%d RCPTs)", N,
		    (unsigned long long)(t1 - t0), rcpts());
	cr_expect_geq(t1 - t0, 2500, "80 RCPTs at 20/s for the fleet take about 3 s, took %llu ms",
		      (unsigned long long)(t1 - t0));
	cr_expect_leq(t1 - t0, 6000, "and not much more: %llu ms", (unsigned long long)(t1 - t0));
}

/* An ACL user with only what docs/fleet.md grants, its password from a
 * file: the node authenticates and every path works (lookup-or-lock, the
 * verdict shared, the stream read, a rate budget taken). */
Test(fleet, acl_user)
{
	freeReplyObject(cmd("ACL SETUSER rcptgate on >s3cret-pw ~rg:* resetchannels -@all +get "
			    "+set +del +mget +scan +xadd +xread +xrange +xrevrange +multi +exec "
			    "+evalsha +script|load +ping +incrby +pexpire +hset +hmget +time +zadd +zrem "
			    "+zcard +zremrangebyscore"));
	freeReplyObject(cmd("ACL SETUSER default off"));
	char pw[128], extra[300];
	snprintf(pw, sizeof(pw), "%s/redis.pass", dir);
	FILE *f = fopen(pw, "w");
	fprintf(f, "s3cret-pw\n");
	fclose(f);
	snprintf(extra, sizeof(extra), "redis_user = rcptgate\nredis_password_file = %s\n", pw);
	fleet_extra = extra;
	write_conf();
	start();
	fleet_extra = "";
	wait_connected();
	push_miss_at(shm, "acl@dm.test");
	wait_table("acl@dm.test", RT_VALID, 3000);
	other_node_learns("aclremote@dm.test", false, false);
	wait_table("aclremote@dm.test", RT_INVALID, 3000);
	spin(100);
	cr_expect_eq(fstat_v("locks_taken"), 1);
	cr_expect_eq(fstat_v("published"), 1);
	cr_expect_geq(fstat_v("budget_asks"), 1);
	cr_expect_gt(fstat_v("budget_rcpt_tokens"), 0);
	cr_expect_eq(fstat_v("error_replies"), 0, "nothing refused by the ACL");
	/* a wrong password: refused, counted, and the node goes on alone */
	daemon_fini();
	f = fopen(pw, "w");
	fprintf(f, "wrong\n");
	fclose(f);
	start();
	spin(300);
	cr_expect_not(connected());
	cr_expect_geq(fstat_v("error_replies"), 1);
	push_miss_at(shm, "alone@dm.test");
	wait_table("alone@dm.test", RT_VALID, 3000);
	cr_expect_geq(fstat_v("uncoordinated"), 1);
}

/* dest_max_conns holds for the fleet as a whole: two nodes, 2 sessions at
 * most between them at a slow destination (each node alone would open 2). */
Test(fleet, max_conns_shared)
{
	srv_rcpt_delay_ms = 40;
	dom_extra = "dest_max_conns = 2\nbatch = 1\nsession_max_rcpts = 3\ndest_conn_rate = 1000\n";
	char shmb[140];
	two_nodes(shmb);
	enum { N = 40 };
	char a[N][64];
	for (int i = 0; i < N; i++) {
		snprintf(a[i], sizeof(a[i]), "conn%d@dm.test", i);
		push_miss_at(i % 2 ? shmb : shm, a[i]);
	}
	int done = 0;
	for (int t = 0; t < 1500 && done < N; t++) {
		spin(10);
		done = 0;
		for (int i = 0; i < N; i++)
			done += table_has_at(i % 2 ? shmb : shm, a[i], RT_VALID);
	}
	cr_assert_eq(done, N, "all verified");
	cr_log_info("two nodes, dest_max_conns 2 for the fleet: at most %d sessions at once",
		    srv_max_active);
	cr_expect_leq(srv_max_active, 2, "sessions at once over the fleet: %d", srv_max_active);
	cr_expect_eq(srv_max_active, 2, "and the fleet uses both");
}

/* A closed list here is not overridden by another node's callout verdict
 * (only by one set by hand, as on this node). */
Test(fleet, closed_list_kept)
{
	char lst[128], extra[300];
	snprintf(lst, sizeof(lst), "%s/list.txt", dir);
	FILE *f = fopen(lst, "w");
	fprintf(f, "alice@list.test\n");
	fclose(f);
	snprintf(extra, sizeof(extra), "\n[domain list.test]\nmode = list\nlist = %s\n", lst);
	dom_extra = extra;
	write_conf();
	dom_extra = "";
	start();
	wait_connected();
	other_node_learns("mallory@list.test", true, false);
	other_node_learns("remote2@dm.test", true, false);
	wait_table("remote2@dm.test", RT_VALID, 3000);
	cr_expect_not(table_has("mallory@list.test", RT_VALID), "the list says unlisted");
	/* once, or twice when it was written while this new node read the keys
	 * (then it comes from the keys and from the stream: harmless) */
	uint64_t skipped = fstat_v("apply_skipped");
	cr_expect(skipped == 1 || skipped == 2, "skipped %" PRIu64 " times", skipped);
}

/* The record as keys and stream carry it: round trip, and every malformed
 * form refused (named cases). */
Test(fleet, rec_codec)
{
	struct store_rec r = {.version = STORE_REC_VERSION, .verdict = RT_INVALID,
			      .source = RT_SRC_CALLOUT, .flags = 0, .code = 550,
			      .updated = 1700000000, .refresh_at = 1700000600, .expiry = 1700003600};
	char buf[FLEET_REC_MAX], a[RG_ADDR_MAX + 1];
	size_t al;
	struct store_rec o;
	int n = fleet_rec_encode("x y@dm.test", 11, &r, buf);
	cr_assert_gt(n, 0);
	cr_assert_eq(fleet_rec_decode(buf, (size_t)n, a, &al, &o), 0, "%s", buf);
	cr_expect_str_eq(a, "x y@dm.test", "the address may hold a space (quoted local part)");
	cr_expect_eq(al, 11);
	cr_expect(o.verdict == r.verdict && o.source == r.source && o.code == r.code &&
		  o.updated == r.updated && o.refresh_at == r.refresh_at && o.expiry == r.expiry);
	static const struct {
		const char *name, *text;
	} bad[] = {
		{"empty", ""},
		{"version 2", "2 1 0 0 1 2 3 250 a@b"},
		{"verdict 3", "1 3 0 0 1 2 3 250 a@b"},
		{"verdict 0", "1 0 0 0 1 2 3 250 a@b"},
		{"source 256", "1 1 256 0 1 2 3 250 a@b"},
		{"code 1000", "1 1 0 0 1 2 3 1000 a@b"},
		{"field missing", "1 1 0 0 1 2 3 a@b"},
		{"no address", "1 1 0 0 1 2 3 250 "},
		{"address without @", "1 1 0 0 1 2 3 250 ab"},
		{"not a number", "1 1 0 0 x 2 3 250 a@b"},
		{"overflow", "1 1 0 0 99999999999999999999999 2 3 250 a@b"},
		{"two spaces", "1 1 0 0  1 2 3 250 a@b"},
		{"negative", "1 1 0 0 -1 2 3 250 a@b"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(fleet_rec_decode(bad[i].text, strlen(bad[i].text), a, &al, &o), -EINVAL,
			     "%s accepted", bad[i].name);
	char nul[] = "1 1 0 0 1 2 3 250 a\0@b";
	cr_expect_eq(fleet_rec_decode(nul, sizeof(nul) - 1, a, &al, &o), -EINVAL, "a NUL accepted");
	char longaddr[RG_ADDR_MAX + 2];
	memset(longaddr, 'x', sizeof(longaddr) - 1);
	longaddr[sizeof(longaddr) - 1] = 0;
	longaddr[10] = '@';
	cr_expect_lt(fleet_rec_encode(longaddr, strlen(longaddr), &r, buf), 0, "over RG_ADDR_MAX");
}

/* A Redis that stops answering (SIGSTOP) does not hold misses: after
 * redis_timeout the node drops the connection and calls out alone. */
Test(fleet, redis_stuck)
{
	fleet_extra = "redis_timeout = 300ms\n";
	write_conf();
	start();
	fleet_extra = "";
	wait_connected();
	kill(redis_pid, SIGSTOP);
	uint64_t t0 = daemon_now_ms();
	push_miss_at(shm, "stuck@dm.test");
	wait_table("stuck@dm.test", RT_VALID, 5000);
	uint64_t took = daemon_now_ms() - t0;
	kill(redis_pid, SIGCONT);
	cr_log_info("verdict with Redis stopped after %llu ms", (unsigned long long)took);
	cr_expect_leq(took, 2000, "bounded by redis_timeout, took %llu ms", (unsigned long long)took);
	cr_expect_geq(fstat_v("timeouts"), 1);
	cr_expect_geq(fstat_v("uncoordinated"), 1);
	wait_connected();
	cr_expect_eq(fstat_v("outages"), 1);
}

/* A reload with another key_prefix moves the node to that key space. */
Test(fleet, reload_prefix)
{
	start();
	wait_connected();
	fleet_extra = "key_prefix = rg2:\n";
	write_conf();
	fleet_extra = "";
	char err[512];
	cr_assert_eq(core_reload(err, sizeof(err)), 0, "%s", err);
	spin(50);
	wait_connected();
	push_miss_at(shm, "moved@dm.test");
	wait_table("moved@dm.test", RT_VALID, 3000);
	char key[100], k2[120];
	key_of("moved@dm.test", key, "v"); /* "rg:v:<hex>" */
	snprintf(k2, sizeof(k2), "rg2:%s", key + 3);
	redisReply *r = NULL;
	for (int i = 0; i < 100; i++) {
		spin(10);
		freeReplyObject(r);
		r = cmd("GET %s", k2);
		if (r->type == REDIS_REPLY_STRING)
			break;
	}
	cr_expect_eq(r->type, REDIS_REPLY_STRING, "written under the new prefix (%s)", k2);
	freeReplyObject(r);
	r = cmd("EXISTS %s", key);
	cr_expect_eq(r->integer, 0, "nothing under the old prefix");
	freeReplyObject(r);
}

/* A restarted node resumes the stream where it stopped (the position saved
 * next to its store): what the fleet learned meanwhile comes from the stream,
 * no resynchronisation from the keys. */
Test(fleet, restart_resumes_stream)
{
	start();
	wait_connected();
	other_node_learns("before@dm.test", true, false);
	wait_table("before@dm.test", RT_VALID, 3000);
	cr_assert_eq(fstat_v("resyncs"), 1, "a new node reads the keys once");
	daemon_fini();
	char pos[160];
	snprintf(pos, sizeof(pos), "%s/store/" FLEET_POS_FILE, dir);
	struct stat st;
	cr_assert_eq(stat(pos, &st), 0, "position saved at stop");
	other_node_learns("meanwhile@dm.test", false, false);
	/* a key no stream entry announces: only a resync would bring it */
	other_node_learns("keyonly2@dm.test", true, true);
	start();
	wait_connected();
	wait_table("meanwhile@dm.test", RT_INVALID, 3000);
	spin(100);
	cr_expect_eq(fstat_v("resyncs"), 0, "resumed from the saved position");
	cr_expect_not(table_has("keyonly2@dm.test", RT_VALID), "no resync happened");
}
