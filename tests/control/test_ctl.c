/*
 * test_ctl.c — the control socket server on a real Unix socket in a temp
 * directory, inside a real rcptgated core (daemon_init with a temp config,
 * the loop driven by the test): the socket's mode, verbs answered, refused
 * frames answered once and closed, any split of a request, pipelined
 * requests, a caller whose uid is not allowed (a child that setuid()s to
 * nobody), too many connections per uid, verify with a scripted SMTP
 * destination, a verify caller that goes away.
 * The test process is the server; clients are sockets in the same process
 * (non-blocking, the loop pumped between steps) or forked children.
 */
#include <criterion/criterion.h>

#include "smtpdest.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "ctlproto.h"
#include "daemon.h"
#include "services.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NOBODY 65534
#define WAIT_MS 5000

static char dir[200], sock_path[256], shm_path[128];
static bool running;	/* the core is up: stop() has work */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char cfg_path[256];

/* Writes the config: extra = more [global] lines; port = example.test's
 * destination; sock = the control socket's file name in dir. */
static void write_config(const char *extra, unsigned port, const char *sock)
{
	char store[256];
	FILE *f;

	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(sock_path, sizeof(sock_path), "%s/%s", dir, sock);
	f = fopen(cfg_path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"[global]\n"
		"shm_path = %s\n"
		"shm_max_lcores = 2\n"
		"shm_domains = 64\n"
		"table_init_log2 = 10\n"
		"table_max_log2 = 12\n"
		"miss_ring_slots = 64\n"
		"event_ring_slots = 64\n"
		"store_path = %s\n"
		"store_map_mb = 16\n"
		"control_socket = %s\n"
		"xdp_pin_dir = %s/bpf\n"
		"log_callouts = yes\n"
		"log_stderr = yes\n"
		"%s\n"
		"[domain example.test]\n"
		"destination = 127.0.0.1:%u\n"
		"accept_all_probe = no\n"
		"command_timeout = 3s\n"
		"greeting_timeout = 3s\n",
		shm_path, store, sock_path, dir, extra ? extra : "", port ? port : 9);
	fclose(f);
}

/* Starts the core with the control socket in a fresh temp directory. */
static void start(const char *extra, unsigned port)
{
	const char *base = getenv("RG_TEST_TMP") ? getenv("RG_TEST_TMP") : "/tmp";
	struct daemon_opts o = {.services = rcptgated_services, .nservices = RCPTGATED_NSERVICES};
	char err[512], store[256];
	int rc;

	snprintf(dir, sizeof(dir), "%s/ctl-%d", base, (int)getpid());
	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(shm_path, sizeof(shm_path), "/dev/shm/rgtest-ctl-%d", (int)getpid());
	snprintf(cfg_path, sizeof(cfg_path), "%s/rcptgated.conf", dir);
	mkdir(dir, 0755);
	mkdir(store, 0755);
	write_config(extra, port, "ctl.sock");
	o.config_path = cfg_path;
	running = true;
	rc = daemon_init(&o, err, sizeof(err));
	cr_assert_eq(rc, 0, "daemon_init: %s", err);
}

/* Also the suite's .fini: runs after a failed assertion too. */
static void stop(void)
{
	char cmd[300];

	if (!running)
		return;
	running = false;
	daemon_fini();
	unlink(shm_path);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", dir);
}

TestSuite(ctl, .fini = stop);

static void pump(unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (now_ms() < end)
		daemon_loop_once(5);
}

static int cl_connect(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0, "connect: %s",
		     strerror(errno));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static void cl_send(int fd, const void *buf, size_t len)
{
	cr_assert_eq(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void cl_request(int fd, enum ctlproto_verb v, const struct ctlproto_kv *kv, unsigned n)
{
	uint8_t buf[CTLPROTO_HDR_LEN + CTLPROTO_REQ_MAX];
	long len = ctlproto_req_encode(buf, sizeof(buf), v, kv, n, NULL);

	cr_assert_gt(len, 0);
	cl_send(fd, buf, (size_t)len);
}

struct answer {
	struct ctlproto_hdr hdr;
	char json[65536];
	bool eof_after;	/* the server closed the connection after the answer */
};

/* Pumps the loop until one whole answer frame arrived (true), or EOF or
 * the time is up (false).  Octets past the frame stay in the state. */
struct rxstate {
	uint8_t buf[70000];
	size_t have;
};

static bool cl_answer(int fd, struct rxstate *rx, struct answer *a)
{
	uint64_t end = now_ms() + WAIT_MS;

	while (now_ms() < end) {
		long n = ctlproto_frame_check(rx->buf, rx->have, 'A', sizeof(a->json) - 1, &a->hdr);
		ssize_t r;

		cr_assert_geq(n, 0, "answer refused: %s", ctlproto_strerror((int)n));
		if (n > 0) {
			memcpy(a->json, rx->buf + CTLPROTO_HDR_LEN, a->hdr.len);
			a->json[a->hdr.len] = '\0';
			memmove(rx->buf, rx->buf + n, rx->have - (size_t)n);
			rx->have -= (size_t)n;
			return true;
		}
		daemon_loop_once(5);
		r = recv(fd, rx->buf + rx->have, sizeof(rx->buf) - rx->have, 0);
		if (r == 0)
			return false;
		if (r > 0)
			rx->have += (size_t)r;
	}
	return false;
}

/* True when the server closes the connection within WAIT_MS. */
static bool cl_eof(int fd)
{
	uint64_t end = now_ms() + WAIT_MS;
	char c;

	while (now_ms() < end) {
		ssize_t r;
		daemon_loop_once(5);
		r = recv(fd, &c, 1, 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return true;
	}
	return false;
}

static void one(enum ctlproto_verb v, const struct ctlproto_kv *kv, unsigned n, struct answer *a)
{
	struct rxstate *rx = calloc(1, sizeof(*rx));
	int fd = cl_connect();

	cl_request(fd, v, kv, n);
	cr_assert(cl_answer(fd, rx, a), "no answer to %s", ctlproto_verb_name(v));
	close(fd);
	free(rx);
}

/* ---------------------------------------------------------------------- */

Test(ctl, socket_mode_and_status)
{
	struct answer *a = calloc(1, sizeof(*a));
	char pid[32];
	struct stat st;

	start(NULL, 0);
	cr_assert_eq(stat(sock_path, &st), 0);
	cr_expect(S_ISSOCK(st.st_mode));
	cr_expect_eq(st.st_mode & 0777, 0660, "mode %o", st.st_mode & 0777);
	one(CTLV_STATUS, NULL, 0, a);
	cr_expect_eq(a->hdr.code, CTLS_OK);
	snprintf(pid, sizeof(pid), "\"pid\":%d,", (int)getpid());
	cr_expect(strstr(a->json, pid), "status answer without our pid: %s", a->json);
	cr_expect_eq(ctlproto_ans_check((uint8_t *)a->json, a->hdr.len), 0);
	free(a);
	stop();
}

Test(ctl, set_lookup_del_on_one_connection)
{
	struct answer *a = calloc(1, sizeof(*a));
	struct rxstate *rx = calloc(1, sizeof(*rx));
	const struct ctlproto_kv set[] = {{CTLK_ADDR, "<Bob@Example.TEST>"},
					  {CTLK_VERDICT, "invalid"}, {CTLK_TTL, "3600"}};
	const struct ctlproto_kv addr[] = {{CTLK_ADDR, "bob@example.test"}};
	int fd;

	start(NULL, 0);
	fd = cl_connect();
	cl_request(fd, CTLV_SET, set, 3);
	cr_assert(cl_answer(fd, rx, a));
	cr_expect_eq(a->hdr.code, CTLS_OK, "%s", a->json);
	cl_request(fd, CTLV_LOOKUP, addr, 1);
	cr_assert(cl_answer(fd, rx, a));
	cr_expect_eq(a->hdr.code, CTLS_OK);
	cr_expect(strstr(a->json, "\"verdict\":\"invalid\""), "%s", a->json);
	cr_expect(strstr(a->json, "\"addr\":\"bob@example.test\""), "%s", a->json);
	cl_request(fd, CTLV_DEL, addr, 1);
	cr_assert(cl_answer(fd, rx, a));
	cr_expect_eq(a->hdr.code, CTLS_OK, "%s", a->json);
	cl_request(fd, CTLV_DEL, addr, 1);
	cr_assert(cl_answer(fd, rx, a));
	cr_expect_eq(a->hdr.code, CTLS_NOTFOUND, "%s", a->json);
	cr_expect(strstr(a->json, "\"error\":"), "%s", a->json);
	/* a refused verb keeps the connection */
	cl_request(fd, CTLV_LOOKUP, addr, 1);
	cr_assert(cl_answer(fd, rx, a), "connection closed after notfound");
	cr_expect(strstr(a->json, "\"verdict\":\"none\""), "%s", a->json);
	close(fd);
	free(rx);
	free(a);
	stop();
}

/* ---------------------------------------------------------------------- */

struct refuse_case {
	const char *name;
	uint8_t bytes[64];
	size_t len;
	enum ctlproto_status status;
	enum ctl_stat_id counter;
};

#define HDR(ver, k, code, flags, len) 'R', 'G', (ver), (k), 0, (code), 0, (flags), \
	(uint8_t)((len) >> 24), (uint8_t)((len) >> 16), (uint8_t)((len) >> 8), (uint8_t)(len)

static const struct refuse_case refuse_cases[] = {
	{"text garbage", "status\n", 7, CTLS_BADREQ, CTL_ST_BADREQ},
	{"HTTP request", "GET / HTTP/1.0\r\n\r\n", 18, CTLS_BADREQ, CTL_ST_BADREQ},
	{"protocol version 2", {HDR(2, 'Q', CTLV_STATUS, 0, 0)}, 12, CTLS_VERSION,
	 CTL_ST_VERSION},
	{"version 2, header only partly sent", {'R', 'G', 2}, 3, CTLS_VERSION, CTL_ST_VERSION},
	{"length over the limit, no payload sent",
	 {HDR(CTLPROTO_VERSION, 'Q', CTLV_STATUS, 0, CTLPROTO_REQ_MAX + 1)}, 12, CTLS_TOOBIG,
	 CTL_ST_TOOBIG},
	{"length 4 GiB - 1", {HDR(CTLPROTO_VERSION, 'Q', CTLV_STATUS, 0, 0xffffffffu)}, 12,
	 CTLS_TOOBIG, CTL_ST_TOOBIG},
	{"reserved flags", {HDR(CTLPROTO_VERSION, 'Q', CTLV_STATUS, 1, 0)}, 12, CTLS_BADREQ,
	 CTL_ST_BADREQ},
	{"unknown verb", {HDR(CTLPROTO_VERSION, 'Q', 99, 0, 0)}, 12, CTLS_BADREQ, CTL_ST_BADREQ},
	{"an answer frame", {HDR(CTLPROTO_VERSION, 'A', 0, 0, 0)}, 12, CTLS_BADREQ,
	 CTL_ST_BADREQ},
	{"address that does not parse",
	 {HDR(CTLPROTO_VERSION, 'Q', CTLV_LOOKUP, 0, 12), 'a', 'd', 'd', 'r', '=', 'n', 'o', 'b',
	  'o', 'd', 'y', 0},
	 24, CTLS_BADREQ, CTL_ST_BADREQ},
	{"argument without its NUL",
	 {HDR(CTLPROTO_VERSION, 'Q', CTLV_LOOKUP, 0, 10), 'a', 'd', 'd', 'r', '=', 'a', '@', 'b',
	  '.', 't'},
	 22, CTLS_BADREQ, CTL_ST_BADREQ},
	{"status with an argument",
	 {HDR(CTLPROTO_VERSION, 'Q', CTLV_STATUS, 0, 6), 'a', 'l', 'l', '=', '1', 0}, 18,
	 CTLS_BADREQ, CTL_ST_BADREQ},
	{"flush with no scope", {HDR(CTLPROTO_VERSION, 'Q', CTLV_FLUSH, 0, 0)}, 12, CTLS_BADREQ,
	 CTL_ST_BADREQ},
};

Test(ctl, refused_frames_answered_then_closed)
{
	struct answer *a = calloc(1, sizeof(*a));
	struct rxstate *rx = calloc(1, sizeof(*rx));

	start(NULL, 0);
	for (size_t i = 0; i < ARRAY_SIZE(refuse_cases); i++) {
		const struct refuse_case *c = &refuse_cases[i];
		uint64_t before = ctl_stat(c->counter);
		int fd = cl_connect();

		rx->have = 0;
		cl_send(fd, c->bytes, c->len);
		cr_expect(cl_answer(fd, rx, a), "%s: no error answer", c->name);
		cr_expect_eq(a->hdr.code, c->status, "%s: status %u (%s)", c->name, a->hdr.code,
			     a->json);
		cr_expect(strstr(a->json, "\"error\":\""), "%s: %s", c->name, a->json);
		cr_expect(cl_eof(fd), "%s: connection left open", c->name);
		cr_expect_eq(ctl_stat(c->counter), before + 1, "%s: counter", c->name);
		close(fd);
	}
	pump(50);
	cr_expect_eq(ctl_conns_open(), 0);
	free(rx);
	free(a);
	stop();
}

Test(ctl, request_split_byte_by_byte)
{
	struct answer *a = calloc(1, sizeof(*a));
	struct rxstate *rx = calloc(1, sizeof(*rx));
	const struct ctlproto_kv set[] = {{CTLK_ADDR, "carol@example.test"},
					  {CTLK_VERDICT, "valid"}};
	uint8_t buf[256];
	long len = ctlproto_req_encode(buf, sizeof(buf), CTLV_SET, set, 2, NULL);
	int fd;

	start(NULL, 0);
	fd = cl_connect();
	for (long i = 0; i < len; i++) {
		cl_send(fd, buf + i, 1);
		daemon_loop_once(1);
	}
	cr_assert(cl_answer(fd, rx, a));
	cr_expect_eq(a->hdr.code, CTLS_OK, "%s", a->json);
	cr_expect(strstr(a->json, "\"verdict\":\"valid\""), "%s", a->json);
	close(fd);
	free(rx);
	free(a);
	stop();
}

Test(ctl, pipelined_requests_answered_in_order)
{
	struct answer *a = calloc(1, sizeof(*a));
	struct rxstate *rx = calloc(1, sizeof(*rx));
	const struct ctlproto_kv set[] = {{CTLK_ADDR, "dave@example.test"},
					  {CTLK_VERDICT, "invalid"}};
	const struct ctlproto_kv addr[] = {{CTLK_ADDR, "dave@example.test"}};
	uint8_t buf[512];
	long n1, n2, n3;
	int fd;

	start(NULL, 0);
	n1 = ctlproto_req_encode(buf, sizeof(buf), CTLV_SET, set, 2, NULL);
	n2 = ctlproto_req_encode(buf + n1, sizeof(buf) - (size_t)n1, CTLV_LOOKUP, addr, 1, NULL);
	n3 = ctlproto_req_encode(buf + n1 + n2, sizeof(buf) - (size_t)(n1 + n2), CTLV_DOMAINS,
				 NULL, 0, NULL);
	cr_assert(n1 > 0 && n2 > 0 && n3 > 0);
	fd = cl_connect();
	cl_send(fd, buf, (size_t)(n1 + n2 + n3));
	cr_assert(cl_answer(fd, rx, a));
	cr_expect_eq(a->hdr.code, CTLS_OK);
	cr_assert(cl_answer(fd, rx, a));
	cr_expect(strstr(a->json, "\"verdict\":\"invalid\""), "second answer: %s", a->json);
	cr_assert(cl_answer(fd, rx, a));
	cr_expect(strstr(a->json, "\"domains\":[{\"name\":\"example.test\""), "third: %s",
		  a->json);
	close(fd);
	free(rx);
	free(a);
	stop();
}

/* ---------------------------------------------------------------------- */
/* peer credentials                                                        */

/* In a child: become uid, connect, send verb (with one address argument
 * when addr is not NULL), read the answer.  Returns the child's exit
 * status: 10 + the answer's status, 2 could not connect, 3 no answer, 4
 * setuid failed. */
static int run_as_kv(uid_t uid, enum ctlproto_verb verb, enum ctlproto_key key, const char *addr)
{
	pid_t pid = fork();
	int ws;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		static uint8_t req[600], buf[70000];
		struct ctlproto_hdr h;
		size_t have = 0;
		long n;
		int fd;

		alarm(10);
		if (setgid(uid) != 0 || setuid(uid) != 0 || getuid() != uid)
			_exit(4);
		memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			_exit(2);
		{
			const struct ctlproto_kv kv[] = {{key, addr}};
			n = ctlproto_req_encode(req, sizeof(req), verb, kv, addr ? 1 : 0, NULL);
		}
		if (send(fd, req, (size_t)n, MSG_NOSIGNAL) < 0) {
			/* refused callers may be closed already: read the answer */
		}
		for (;;) {
			ssize_t r = read(fd, buf + have, sizeof(buf) - have);
			if (r <= 0)
				_exit(3);
			have += (size_t)r;
			n = ctlproto_frame_check(buf, have, 'A', sizeof(buf), &h);
			if (n < 0)
				_exit(3);
			if (n > 0)
				_exit(10 + h.code);
		}
	}
	while (waitpid(pid, &ws, WNOHANG) == 0)
		daemon_loop_once(5);
	cr_assert(WIFEXITED(ws), "child did not exit");
	return WEXITSTATUS(ws);
}

static int run_as_verb(uid_t uid, enum ctlproto_verb verb, const char *addr)
{
	return run_as_kv(uid, verb, CTLK_ADDR, addr);
}

static int run_as(uid_t uid)
{
	return run_as_verb(uid, CTLV_STATUS, NULL);
}

Test(ctl, uid_not_allowed_is_refused)
{
	start(NULL, 0);
	/* the file mode alone keeps nobody out: */
	cr_expect_eq(run_as(NOBODY), 2, "nobody connected through a 0660 root socket");
	/* open the file so the credential check is what refuses */
	cr_assert_eq(chmod(sock_path, 0666), 0);
	cr_expect_eq(run_as(NOBODY), 10 + CTLS_DENIED);
	cr_expect_eq(ctl_stat(CTL_ST_DENIED), 1);
	cr_expect_eq(ctl_stat(CTL_ST_ACCEPTED), 0);
	/* root always may */
	cr_expect_eq(run_as(0), 10 + CTLS_OK);
	stop();
}

Test(ctl, uid_in_control_uids_is_served)
{
	cr_expect_eq(ctl_role(&(struct config){.ncontrol_admins = 0}, 0, 0), CTL_ROLE_ADMIN);
	cr_expect_eq(ctl_role(&(struct config){.ncontrol_admins = 0}, NOBODY, NOBODY),
		     CTL_ROLE_NONE);
	start("control_uids = 0, 65534", 0);
	cr_assert_eq(chmod(sock_path, 0666), 0);
	cr_expect_eq(run_as(NOBODY), 10 + CTLS_OK);
	cr_expect_eq(run_as_verb(NOBODY, CTLV_RELOAD, NULL), 10 + CTLS_OK,
		     "control_uids is the older name of control_admins");
	cr_expect_eq(run_as(1234), 10 + CTLS_DENIED);
	stop();
}

/* A monitoring user reads; only an administrator changes state. */
Test(ctl, readers_read_admins_change)
{
	start("control_readers = 65534", 0);
	cr_assert_eq(chmod(sock_path, 0666), 0);
	cr_expect_eq(run_as_verb(NOBODY, CTLV_STATUS, NULL), 10 + CTLS_OK);
	cr_expect_eq(run_as_verb(NOBODY, CTLV_STATS, NULL), 10 + CTLS_OK);
	cr_expect_eq(run_as_verb(NOBODY, CTLV_LOOKUP, "a@example.test"), 10 + CTLS_OK);
	cr_expect_eq(run_as_verb(NOBODY, CTLV_DOMAINS, NULL), 10 + CTLS_OK);
	cr_expect_eq(run_as_verb(NOBODY, CTLV_RELOAD, NULL), 10 + CTLS_DENIED);
	cr_expect_eq(run_as_verb(NOBODY, CTLV_DEL, "a@example.test"), 10 + CTLS_DENIED);
	cr_expect_eq(run_as_kv(NOBODY, CTLV_FLUSH, CTLK_ALL, "1"), 10 + CTLS_DENIED);
	cr_expect_eq(run_as_verb(NOBODY, CTLV_VERIFY, "a@example.test"), 10 + CTLS_DENIED);
	cr_expect_eq(ctl_stat(CTL_ST_VERB_DENIED), 4);
	cr_expect_eq(run_as_verb(1234, CTLV_STATUS, NULL), 10 + CTLS_DENIED, "not listed at all");
	cr_expect_eq(run_as_verb(0, CTLV_RELOAD, NULL), 10 + CTLS_OK, "root administers");
	stop();
}

/* Roles by group: the peer's primary group counts (setgid in run_as). */
Test(ctl, roles_by_group)
{
	start("control_readers = @nogroup\ncontrol_admins = 0, @4321", 0);
	cr_assert_eq(chmod(sock_path, 0666), 0);
	cr_expect_eq(run_as_verb(NOBODY, CTLV_STATUS, NULL), 10 + CTLS_OK);
	cr_expect_eq(run_as_verb(NOBODY, CTLV_RELOAD, NULL), 10 + CTLS_DENIED);
	cr_expect_eq(run_as_verb(4321, CTLV_RELOAD, NULL), 10 + CTLS_OK, "gid 4321 administers");
	cr_expect_eq(run_as_verb(1234, CTLV_STATUS, NULL), 10 + CTLS_DENIED);
	stop();
}

Test(ctl, too_many_connections_per_uid)
{
	struct answer *a = calloc(1, sizeof(*a));
	struct rxstate *rx = calloc(1, sizeof(*rx));
	int fd[3], extra, later;

	start("control_max_clients = 3", 0);
	for (int i = 0; i < 3; i++) {
		fd[i] = cl_connect();
		cl_request(fd[i], CTLV_STATUS, NULL, 0);
		rx->have = 0;
		cr_assert(cl_answer(fd[i], rx, a), "connection %d not served", i);
		cr_expect_eq(a->hdr.code, CTLS_OK);
	}
	cr_expect_eq(ctl_conns_open(), 3);
	extra = cl_connect();
	rx->have = 0;
	cr_assert(cl_answer(extra, rx, a), "no busy answer");
	cr_expect_eq(a->hdr.code, CTLS_BUSY, "%s", a->json);
	cr_expect(strstr(a->json, "limit 3"), "%s", a->json);
	cr_expect(cl_eof(extra));
	cr_expect_eq(ctl_stat(CTL_ST_BUSY), 1);
	close(extra);
	/* a slot freed is a slot to use */
	close(fd[0]);
	pump(50);
	cr_expect_eq(ctl_conns_open(), 2);
	later = cl_connect();
	cl_request(later, CTLV_STATUS, NULL, 0);
	rx->have = 0;
	cr_assert(cl_answer(later, rx, a));
	cr_expect_eq(a->hdr.code, CTLS_OK);
	close(later);
	close(fd[1]);
	close(fd[2]);
	free(rx);
	free(a);
	stop();
}

/* ---------------------------------------------------------------------- */
/* verify                                                                  */


Test(ctl, verify_prints_transcript_and_verdict)
{
	struct answer *a = calloc(1, sizeof(*a));
	struct rxstate *rx = calloc(1, sizeof(*rx));
	const struct ctlproto_kv addr[] = {{CTLK_ADDR, "bob@example.test"}};
	unsigned port;
	pid_t dest = smtp_dest(&port, "550 5.1.1 <bob@example.test>: Recipient address rejected: "
				       "User unknown in virtual mailbox table\r\n");
	int fd, ws;

	start(NULL, port);
	fd = cl_connect();
	cl_request(fd, CTLV_VERIFY, addr, 1);
	cr_assert(cl_answer(fd, rx, a), "no verify answer");
	cr_expect_eq(a->hdr.code, CTLS_OK, "%s", a->json);
	cr_expect(strstr(a->json, "\"verdict\":\"invalid\""), "%s", a->json);
	cr_expect(strstr(a->json, "\"code\":550"), "%s", a->json);
	cr_expect(strstr(a->json, "RCPT TO:<bob@example.test>"), "transcript: %s", a->json);
	cr_expect(strstr(a->json, "5.1.1"), "%s", a->json);
	close(fd);
	/* the verdict was stored and is what lookup says now */
	one(CTLV_LOOKUP, addr, 1, a);
	cr_expect(strstr(a->json, "\"verdict\":\"invalid\""), "%s", a->json);
	kill(dest, SIGTERM);
	waitpid(dest, &ws, 0);
	free(rx);
	free(a);
	stop();
}

/* Runs rcptctl (RG_RCPTCTL) with args against the test's socket while the
 * loop is pumped; its stdout into out.  Returns its exit code. */
static int rcptctl_run(char *const args[], char *out, size_t outlen)
{
	const char *bin = getenv("RG_RCPTCTL");
	int p[2], ws;
	size_t have = 0;
	pid_t pid;

	cr_assert_not_null(bin, "RG_RCPTCTL not set");
	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char *argv[12] = {(char *)bin, "--socket", sock_path};
		int i = 3;
		for (int j = 0; args[j] && i < 11; j++)
			argv[i++] = args[j];
		argv[i] = NULL;
		dup2(p[1], 1);
		close(p[0]);
		alarm(20);
		execv(bin, argv);
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
	cr_assert(WIFEXITED(ws));
	return WEXITSTATUS(ws);
}

/* A destination's reply text reaches the operator's terminal harmless. */
Test(ctl, rcptctl_verify_output_has_no_control_characters)
{
	char *out = calloc(1, 65536);
	unsigned port;
	pid_t dest = smtp_dest(&port, "550 5.1.1 <bob@example.test>: User unknown\x1b]0;owned\x07"
				       "\x1b[2J\rforged\x7f\r\n");
	char *const args[] = {"verify", "bob@example.test", NULL};
	int rc, ws;

	start(NULL, port);
	rc = rcptctl_run(args, out, 65536);
	cr_expect_eq(rc, 1, "invalid: exit 1 (%d)\n%s", rc, out);
	cr_assert(strstr(out, "User unknown"), "%s", out);
	for (const char *q = out; *q; q++)
		cr_assert(((unsigned char)*q >= 0x20 && *q != 0x7f) || *q == '\n',
			  "byte 0x%02x in rcptctl's output:\n%s", (unsigned char)*q, out);
	kill(dest, SIGTERM);
	waitpid(dest, &ws, 0);
	free(out);
	stop();
}

Test(ctl, verify_caller_gone_is_cancelled)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sl = sizeof(sin);
	const struct ctlproto_kv addr[] = {{CTLK_ADDR, "erin@example.test"}};
	int lfd = socket(AF_INET, SOCK_STREAM, 0), fd;

	/* a destination that accepts connections and never greets */
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(lfd, 8), 0);
	getsockname(lfd, (struct sockaddr *)&sin, &sl);
	start(NULL, ntohs(sin.sin_port));
	fd = cl_connect();
	cl_request(fd, CTLV_VERIFY, addr, 1);
	pump(200);
	cr_expect_eq(ctl_conns_open(), 1);
	close(fd);
	pump(200);
	cr_expect_eq(ctl_conns_open(), 0);
	cr_expect_eq(ctl_stat(CTL_ST_VERIFY_CANCELLED), 1);
	/* the callout ends on its greeting timeout without anyone to answer */
	pump(3500);
	cr_expect_eq(ctl_stat(CTL_ST_REQUESTS), 0);
	close(lfd);
	stop();
}

/* ---------------------------------------------------------------------- */
/* reload                                                                  */

Test(ctl, reload_moves_socket_and_applies_uids)
{
	char old[256], err[256];
	struct stat st;

	start(NULL, 0);
	snprintf(old, sizeof(old), "%s", sock_path);
	write_config("control_uids = 0, 65534", 0, "ctl2.sock");
	cr_assert_eq(core_reload(err, sizeof(err)), 0, "reload: %s", err);
	cr_expect_neq(stat(old, &st), 0, "old socket still there");
	cr_assert_eq(stat(sock_path, &st), 0, "no socket at the new path");
	cr_expect_eq(st.st_mode & 0777, 0660);
	cr_assert_eq(chmod(sock_path, 0666), 0);
	cr_expect_eq(run_as(NOBODY), 10 + CTLS_OK);
	/* a socket path that cannot be bound: the module keeps its socket and
	 * its previous settings (the daemon logs it; the reload itself stands) */
	write_config("control_uids = 0", 0, "no/such/dir/ctl3.sock");
	cr_expect_eq(core_reload(err, sizeof(err)), 0, "reload: %s", err);
	snprintf(sock_path, sizeof(sock_path), "%s/ctl2.sock", dir);
	cr_expect_eq(stat(sock_path, &st), 0, "socket lost on a failed reload");
	cr_expect_eq(run_as(NOBODY), 10 + CTLS_OK, "previous uid list not kept");
	cr_expect_eq(run_as(0), 10 + CTLS_OK);
	stop();
}
