/*
 * test_policy.c — the policy service's request parser on every split of its
 * input (limits, malformed lines, missing attributes), the classification
 * of requests and the verdict-to-action mapping.  Single-threaded.
 */
#include <criterion/criterion.h>

#include "smtpdest.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtable.h"
#include "policy.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* What Postfix 3.7's smtpd sends for RCPT (SMTPD_POLICY_README). */
#define POSTFIX_RCPT                                                             \
	"request=smtpd_access_policy\n"                                          \
	"protocol_state=RCPT\n"                                                  \
	"protocol_name=ESMTP\n"                                                  \
	"client_address=198.18.1.2\n"                                            \
	"client_name=client.example.test\n"                                      \
	"client_port=40123\n"                                                    \
	"reverse_client_name=client.example.test\n"                              \
	"server_address=198.18.0.25\n"                                           \
	"server_port=25\n"                                                       \
	"helo_name=client.example.test\n"                                        \
	"sender=alice@example.org\n"                                             \
	"recipient=Bob@Example.TEST\n"                                           \
	"recipient_count=0\n"                                                    \
	"queue_id=\n"                                                            \
	"instance=12a3.65a1f0c2.8e7d1.0\n"                                       \
	"size=0\n"                                                               \
	"etrn_domain=\n"                                                         \
	"stress=\n"                                                              \
	"sasl_method=\n"                                                         \
	"sasl_username=\n"                                                       \
	"sasl_sender=\n"                                                         \
	"ccert_subject=\n"                                                       \
	"ccert_issuer=\n"                                                        \
	"ccert_fingerprint=\n"                                                   \
	"ccert_pubkey_fingerprint=\n"                                            \
	"encryption_protocol=TLSv1.3\n"                                          \
	"encryption_cipher=TLS_AES_256_GCM_SHA384\n"                             \
	"encryption_keysize=256\n"                                               \
	"policy_context=\n"                                                      \
	"compatibility_level=3.6\n"                                              \
	"mail_version=3.7.11\n"                                                  \
	"\n"

struct parse_case {
	const char *name;
	char *input;		/* built by the fixture for the long ones */
	int rc;			/* final result when fed whole */
	size_t used;		/* 0 = the whole input */
	const char *recipient;	/* expected recipient, NULL = not checked */
	const char *state;
	uint32_t present;	/* bits that must be present (all checked) */
	uint32_t toolong;
};

#define P(a) (1u << (a))

static char *repeat_attr(const char *name, size_t vlen, unsigned count, const char *tail)
{
	size_t nl = strlen(name), tl = strlen(tail);
	size_t total = count * (nl + 1 + vlen + 1) + tl + 1;
	char *s = malloc(total), *p = s;

	for (unsigned i = 0; i < count; i++) {
		memcpy(p, name, nl);
		p += nl;
		*p++ = '=';
		memset(p, 'v', vlen);
		p += vlen;
		*p++ = '\n';
	}
	memcpy(p, tail, tl + 1);
	return s;
}

static char *cat3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = malloc(la + lb + lc + 1);

	memcpy(s, a, la);
	memcpy(s + la, b, lb);
	memcpy(s + la + lb, c, lc + 1);
	return s;
}

static struct parse_case *cases;
static size_t ncases;

static void add(const char *name, char *input, int rc, size_t used, const char *rcpt,
		const char *state, uint32_t present, uint32_t toolong)
{
	cases = realloc(cases, (ncases + 1) * sizeof(*cases));
	cases[ncases++] = (struct parse_case){name, input, rc, used, rcpt, state, present, toolong};
}

static void build_cases(void)
{
	char longrcpt[RG_PATH_MAX + 50];

	ncases = 0;
	add("full Postfix RCPT request", strdup(POSTFIX_RCPT), POLICY_P_DONE, 0,
	    "Bob@Example.TEST", "RCPT",
	    P(PA_REQUEST) | P(PA_PROTOCOL_STATE) | P(PA_RECIPIENT) | P(PA_SENDER) |
		    P(PA_CLIENT_ADDRESS) | P(PA_CLIENT_NAME) | P(PA_HELO_NAME) | P(PA_QUEUE_ID) |
		    P(PA_INSTANCE),
	    0);
	add("CRLF line ends",
	    strdup("request=smtpd_access_policy\r\nprotocol_state=RCPT\r\n"
		   "recipient=a@b.test\r\n\r\n"),
	    POLICY_P_DONE, 0, "a@b.test", "RCPT", P(PA_REQUEST) | P(PA_PROTOCOL_STATE) |
	    P(PA_RECIPIENT), 0);
	add("unknown attributes skipped",
	    strdup("x_custom=1\nrequest=smtpd_access_policy\nfoo=bar=baz\n"
		   "protocol_state=MAIL\n\n"),
	    POLICY_P_DONE, 0, NULL, "MAIL", P(PA_REQUEST) | P(PA_PROTOCOL_STATE), 0);
	add("last occurrence wins",
	    strdup("recipient=first@b.test\nrecipient=second@b.test\n\n"), POLICY_P_DONE, 0,
	    "second@b.test", NULL, P(PA_RECIPIENT), 0);
	add("value holding '='", strdup("recipient=a=b@c.test\n\n"), POLICY_P_DONE, 0,
	    "a=b@c.test", NULL, P(PA_RECIPIENT), 0);
	add("empty value", strdup("protocol_state=RCPT\nrecipient=\n\n"), POLICY_P_DONE, 0, "",
	    "RCPT", P(PA_PROTOCOL_STATE) | P(PA_RECIPIENT), 0);
	add("empty request", strdup("\n"), POLICY_P_DONE, 0, NULL, NULL, 0, 0);
	add("empty request with CRLF", strdup("\r\n"), POLICY_P_DONE, 0, NULL, NULL, 0, 0);
	add("two requests back to back: the first only",
	    strdup("recipient=one@b.test\n\nrecipient=two@b.test\n\n"), POLICY_P_DONE, 22,
	    "one@b.test", NULL, P(PA_RECIPIENT), 0);
	add("incomplete request", strdup("request=smtpd_access_policy\nprotocol_state=RC"),
	    POLICY_P_MORE, 0, NULL, NULL, 0, 0);
	add("line exactly POLICY_LINE_MAX octets",
	    repeat_attr("ccert_subject", POLICY_LINE_MAX - 14, 1, "\n"), POLICY_P_DONE, 0, NULL,
	    NULL, 0, 0);
	add("line one octet over POLICY_LINE_MAX",
	    repeat_attr("ccert_subject", POLICY_LINE_MAX - 13, 1, "\n"), POLICY_E_LINE,
	    POLICY_LINE_MAX + 1, NULL, NULL, 0, 0);
	memset(longrcpt, 'x', sizeof(longrcpt) - 1);
	longrcpt[sizeof(longrcpt) - 1] = '\0';
	add("recipient longer than a path",
	    cat3("protocol_state=RCPT\nrecipient=", longrcpt, "@b.test\n\n"), POLICY_P_DONE, 0,
	    NULL, "RCPT", P(PA_RECIPIENT), P(PA_RECIPIENT));
	add("request over POLICY_REQ_MAX",
	    repeat_attr("x", 1000, POLICY_REQ_MAX / 1000 + 1, "\n"), POLICY_E_SIZE,
	    POLICY_REQ_MAX + 1, NULL, NULL, 0, 0);
	add("too many attributes", repeat_attr("a", 1, POLICY_ATTRS_MAX + 1, "\n"),
	    POLICY_E_ATTRS, (POLICY_ATTRS_MAX + 1) * 4 - 2, NULL, NULL, 0, 0);
	add("exactly POLICY_ATTRS_MAX attributes", repeat_attr("a", 1, POLICY_ATTRS_MAX, "\n"),
	    POLICY_P_DONE, 0, NULL, NULL, 0, 0);
	add("line without '='", strdup("request=smtpd_access_policy\nhello\n\n"),
	    POLICY_E_SYNTAX, 34, NULL, NULL, 0, 0);
	add("empty name", strdup("=value\n\n"), POLICY_E_SYNTAX, 1, NULL, NULL, 0, 0);
	add("CR inside a name", strdup("reci\rpient=a@b.test\n\n"), POLICY_E_SYNTAX, 5, NULL,
	    NULL, 0, 0);
	{
		char *s = malloc(POLICY_NAME_MAX + 10);
		memset(s, 'n', POLICY_NAME_MAX + 1);
		memcpy(s + POLICY_NAME_MAX + 1, "=v\n\n", 5);
		add("name over POLICY_NAME_MAX", s, POLICY_E_SYNTAX, POLICY_NAME_MAX + 1, NULL,
		    NULL, 0, 0);
	}
}

static void free_cases(void)
{
	for (size_t i = 0; i < ncases; i++)
		free(cases[i].input);
	free(cases);
	cases = NULL;
	ncases = 0;
}

TestSuite(policy_parser, .init = build_cases, .fini = free_cases);

/* Feeds input in the given pieces; returns the first non-MORE result and the
 * total octets consumed up to it. */
static int feed(struct policy_parser *p, const uint8_t *in, size_t len, const size_t *cuts,
		unsigned ncuts, size_t *total_used)
{
	size_t pos = 0;
	int rc = POLICY_P_MORE;

	*total_used = 0;
	for (unsigned i = 0; i <= ncuts && rc == POLICY_P_MORE; i++) {
		size_t end = i < ncuts ? cuts[i] : len, used = 0;
		rc = policy_parse(p, in + pos, end - pos, &used);
		*total_used += used;
		pos = end;
	}
	return rc;
}

static void check_case(const struct parse_case *c, const struct policy_parser *p, int rc,
		       size_t used, size_t len, const char *how)
{
	size_t want_used = c->used ? c->used : len;

	cr_expect_eq(rc, c->rc, "%s (%s): rc %d (%s), want %d", c->name, how, rc,
		     policy_strerror(rc), c->rc);
	cr_expect_eq(used, want_used, "%s (%s): used %zu, want %zu", c->name, how, used,
		     want_used);
	if (rc != POLICY_P_DONE)
		return;
	if (c->recipient)
		cr_expect_str_eq(p->req.recipient, c->recipient, "%s (%s): recipient", c->name,
				 how);
	if (c->state)
		cr_expect_str_eq(p->req.protocol_state, c->state, "%s (%s): state", c->name, how);
	cr_expect_eq(p->req.present & c->present, c->present, "%s (%s): present %#x", c->name,
		     how, p->req.present);
	cr_expect_eq(p->req.toolong, c->toolong, "%s (%s): toolong %#x", c->name, how,
		     p->req.toolong);
}

Test(policy_parser, whole_input)
{
	for (size_t i = 0; i < ncases; i++) {
		struct policy_parser p;
		size_t used = 0, len = strlen(cases[i].input);
		int rc;

		policy_parser_init(&p);
		rc = feed(&p, (const uint8_t *)cases[i].input, len, NULL, 0, &used);
		check_case(&cases[i], &p, rc, used, len, "whole");
	}
}

Test(policy_parser, every_two_piece_split)
{
	for (size_t i = 0; i < ncases; i++) {
		size_t len = strlen(cases[i].input);
		/* long inputs: every split near the limits and a stride elsewhere */
		size_t step = len > 600 ? 97 : 1;
		for (size_t cut = 0; cut <= len; cut += (cut < 40 || len - cut < 40) ? 1 : step) {
			struct policy_parser p;
			size_t used = 0;
			char how[32];
			int rc;

			policy_parser_init(&p);
			rc = feed(&p, (const uint8_t *)cases[i].input, len, &cut, 1, &used);
			snprintf(how, sizeof(how), "split at %zu", cut);
			check_case(&cases[i], &p, rc, used, len, how);
		}
	}
}

Test(policy_parser, byte_by_byte)
{
	for (size_t i = 0; i < ncases; i++) {
		size_t len = strlen(cases[i].input);
		size_t *cuts = malloc((len + 1) * sizeof(*cuts));
		struct policy_parser p;
		size_t used = 0;
		int rc;

		for (size_t k = 0; k < len; k++)
			cuts[k] = k + 1;
		policy_parser_init(&p);
		rc = feed(&p, (const uint8_t *)cases[i].input, len, cuts, (unsigned)len, &used);
		check_case(&cases[i], &p, rc, used, len, "byte by byte");
		free(cuts);
	}
}

Test(policy_parser, nul_octet_refused)
{
	const uint8_t in[] = "recipient=a\0b@c.test\n\n";
	struct policy_parser p;
	size_t used = 0;

	policy_parser_init(&p);
	cr_expect_eq(policy_parse(&p, in, sizeof(in) - 1, &used), POLICY_E_NUL);
	cr_expect_eq(used, 12u);
}

Test(policy_parser, second_request_after_reinit)
{
	const char *in = "recipient=one@b.test\n\nrecipient=two@b.test\nprotocol_state=RCPT\n\n";
	struct policy_parser p;
	size_t used = 0, used2 = 0;

	policy_parser_init(&p);
	cr_assert_eq(policy_parse(&p, (const uint8_t *)in, strlen(in), &used), POLICY_P_DONE);
	cr_expect_str_eq(p.req.recipient, "one@b.test");
	cr_expect_eq(p.req.present, P(PA_RECIPIENT));
	policy_parser_init(&p);
	cr_assert_eq(policy_parse(&p, (const uint8_t *)in + used, strlen(in) - used, &used2),
		     POLICY_P_DONE);
	cr_expect_str_eq(p.req.recipient, "two@b.test");
	cr_expect_str_eq(p.req.protocol_state, "RCPT");
	cr_expect_eq(used + used2, strlen(in));
}

/* ---- classification ------------------------------------------------------ */

struct class_case {
	const char *name;
	const char *input;
	enum policy_kind kind;
};

static const struct class_case class_cases[] = {
	{"RCPT with recipient",
	 "request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=a@b.test\n\n", PK_CHECK},
	{"lowercase state",
	 "request=smtpd_access_policy\nprotocol_state=rcpt\nrecipient=a@b.test\n\n", PK_CHECK},
	{"MAIL state", "request=smtpd_access_policy\nprotocol_state=MAIL\nsender=a@b.test\n\n",
	 PK_NOT_RCPT},
	{"DATA state",
	 "request=smtpd_access_policy\nprotocol_state=DATA\nrecipient=a@b.test\n\n",
	 PK_NOT_RCPT},
	{"RCPT without recipient", "request=smtpd_access_policy\nprotocol_state=RCPT\n\n",
	 PK_NO_RECIPIENT},
	{"RCPT with empty recipient",
	 "request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=\n\n", PK_NO_RECIPIENT},
	{"request attribute missing", "protocol_state=RCPT\nrecipient=a@b.test\n\n",
	 PK_BAD_REQUEST},
	{"another request type",
	 "request=junk\nprotocol_state=RCPT\nrecipient=a@b.test\n\n", PK_BAD_REQUEST},
	{"protocol_state missing", "request=smtpd_access_policy\nrecipient=a@b.test\n\n",
	 PK_MISSING_STATE},
	{"empty request", "\n", PK_BAD_REQUEST},
};

Test(policy_classify, table)
{
	for (size_t i = 0; i < ARRAY_SIZE(class_cases); i++) {
		struct policy_parser p;
		size_t used;

		policy_parser_init(&p);
		cr_assert_eq(policy_parse(&p, (const uint8_t *)class_cases[i].input,
					  strlen(class_cases[i].input), &used),
			     POLICY_P_DONE, "%s", class_cases[i].name);
		cr_expect_eq(policy_classify(&p.req), class_cases[i].kind, "%s: kind %d",
			     class_cases[i].name, policy_classify(&p.req));
	}
}

Test(policy_classify, recipient_too_long)
{
	struct policy_parser p;
	char in[1024];
	size_t used;
	int n = snprintf(in, sizeof(in),
			 "request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=%0300d@b.test\n\n",
			 7);

	policy_parser_init(&p);
	cr_assert_eq(policy_parse(&p, (const uint8_t *)in, (size_t)n, &used), POLICY_P_DONE);
	cr_expect_eq(policy_classify(&p.req), PK_RECIPIENT_TOOLONG);
}

/* ---- answers ------------------------------------------------------------- */

struct reply_case {
	const char *name;
	int verdict;
	uint8_t miss;
	bool failopen;
	const char *expect;
	uint16_t reject_code;	/* 0 = 550 */
	bool warn;
};

#define R550 "action=550 5.1.1 User unknown\n\n"
#define R450 "action=450 4.7.1 verification in progress\n\n"
#define RDUNNO "action=DUNNO\n\n"

static const struct reply_case reply_cases[] = {
	{"invalid", CORE_V_INVALID, DT_MISS_PASS, false, R550},
	{"invalid, defer domain", CORE_V_INVALID, DT_MISS_DEFER, false, R550},
	{"valid", CORE_V_VALID, DT_MISS_DEFER, false, RDUNNO},
	{"unmanaged", CORE_V_UNMANAGED, DT_MISS_PASS, false, RDUNNO},
	{"accept-all", CORE_V_ACCEPT_ALL, DT_MISS_DEFER, false, RDUNNO},
	{"unverifiable", CORE_V_UNVERIFIABLE, DT_MISS_DEFER, false, RDUNNO},
	{"no answer in time, pass", CORE_V_NONE, DT_MISS_PASS, false, RDUNNO},
	{"no answer in time, defer", CORE_V_NONE, DT_MISS_DEFER, false, R450},
	{"no answer in time, defer but failing open", CORE_V_NONE, DT_MISS_DEFER, true, RDUNNO},
	{"temporary failure, defer", CORE_V_TEMPFAIL, DT_MISS_DEFER, false, R450},
	{"temporary failure, pass", CORE_V_TEMPFAIL, DT_MISS_PASS, false, RDUNNO},
	{"invalid, reject_code 450", CORE_V_INVALID, DT_MISS_PASS, false,
	 "action=450 4.1.1 User unknown\n\n", 450},
	{"invalid, action warn", CORE_V_INVALID, DT_MISS_PASS, false, RDUNNO, 550, true},
	{"no answer in time, defer, action warn", CORE_V_NONE, DT_MISS_DEFER, false, RDUNNO, 550,
	 true},
};

Test(policy_reply, table)
{
	for (size_t i = 0; i < ARRAY_SIZE(reply_cases); i++) {
		const struct reply_case *c = &reply_cases[i];
		struct core_check chk = {.verdict = c->verdict, .miss_policy = c->miss,
					 .failopen = c->failopen,
					 .reject_code = c->reject_code ? c->reject_code : 550,
					 .warn = c->warn};
		char out[POLICY_REPLY_MAX];
		int n = policy_reply(&chk, out, sizeof(out));

		cr_expect_eq(n, (int)strlen(c->expect), "%s: length %d", c->name, n);
		cr_expect_str_eq(out, c->expect, "%s", c->name);
	}
}

Test(policy_reply, buffer_too_small)
{
	struct core_check chk = {.verdict = CORE_V_INVALID, .miss_policy = DT_MISS_DEFER};
	char out[POLICY_REPLY_MAX];

	cr_expect_eq(policy_reply(&chk, out, 16), -ENOSPC);
	cr_expect_eq(policy_reply_dunno(out, 8), -ENOSPC);
}

/* ======================================================================== */
/* The service on real sockets, inside a real rcptgated core (daemon_init  */
/* with a temp config; the loop driven by the test).                        */

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "services.h"
#include "listen.h"
#include "log.h"
#include <dirent.h>
#include <sys/resource.h>
#include <arpa/inet.h>

#define WAIT_MS 5000
#define POLICY_TIMEOUT_MS 300

static char dir[200], shm_path[128], unix_path[256];
static bool running;	/* the core is up: stop() has work */
static int hang_fd = -1;	/* a destination that accepts and never greets */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned listen_hang(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sl = sizeof(sin);

	hang_fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(bind(hang_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(hang_fd, 64), 0);
	getsockname(hang_fd, (struct sockaddr *)&sin, &sl);
	return ntohs(sin.sin_port);
}

static char cfg_path[256];
static unsigned dest_port;

static void write_config(const char *listen, const char *extra)
{
	char store[256];
	FILE *f;

	snprintf(store, sizeof(store), "%s/store", dir);
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
		"control_socket = %s/ctl.sock\n"
		"xdp_pin_dir = %s/bpf\n"
		"policy_listen = %s\n"
		"policy_timeout = %ums\n"
		"log_stderr = yes\n"
		"accept_all_probe = no\n"
		"greeting_timeout = 3s\n"
		"command_timeout = 3s\n"
		"%s\n"
		"[domain defer.test]\n"
		"destination = 127.0.0.1:%u\n"
		"miss_policy = defer\n"
		"[domain pass.test]\n"
		"destination = 127.0.0.1:%u\n"
		"miss_policy = pass\n",
		shm_path, store, dir, dir, listen, POLICY_TIMEOUT_MS, extra ? extra : "",
		dest_port, dest_port);
	fclose(f);
}

/* extra: more [global] lines; port: destination of both domains (0 = a
 * destination that accepts and never answers).  Listens on 127.0.0.1 (an
 * ephemeral port) and on a Unix socket. */
static void srv_start(const char *extra, unsigned port)
{
	const char *base = getenv("RG_TEST_TMP") ? getenv("RG_TEST_TMP") : "/tmp";
	struct daemon_opts o = {.services = rcptgated_services, .nservices = RCPTGATED_NSERVICES};
	char err[512], store[256], listen[300];
	int rc;

	dest_port = port ? port : listen_hang();
	snprintf(dir, sizeof(dir), "%s/policy-%d", base, (int)getpid());
	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(unix_path, sizeof(unix_path), "%s/policy.sock", dir);
	snprintf(shm_path, sizeof(shm_path), "/dev/shm/rgtest-policy-%d", (int)getpid());
	snprintf(cfg_path, sizeof(cfg_path), "%s/rcptgated.conf", dir);
	mkdir(dir, 0755);
	mkdir(store, 0755);
	snprintf(listen, sizeof(listen), "127.0.0.1:0, %s", unix_path);
	write_config(listen, extra);
	o.config_path = cfg_path;
	running = true;
	rc = daemon_init(&o, err, sizeof(err));
	cr_assert_eq(rc, 0, "daemon_init: %s", err);
	cr_assert_neq(policy_listen_port(0), 0, "no TCP listener");
}

/* Also the suite's .fini: runs after a failed assertion too. */
static void srv_stop(void)
{
	char cmd[300];

	if (!running)
		return;
	running = false;
	daemon_fini();
	unlink(shm_path);
	if (hang_fd >= 0)
		close(hang_fd);
	hang_fd = -1;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", dir);
}

TestSuite(policy_server, .fini = srv_stop);

static void pump(unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (now_ms() < end)
		daemon_loop_once(5);
}

static int tcp_client(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001),
				  .sin_port = htons(policy_listen_port(0))};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "connect: %s",
		     strerror(errno));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static int unix_client(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memcpy(sun.sun_path, unix_path, strlen(unix_path) + 1);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0, "connect: %s",
		     strerror(errno));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static void csend(int fd, const char *s)
{
	cr_assert_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Pumps until one answer ("...\n\n") arrived; returns it (static buffer) and
 * the milliseconds it took, or NULL on EOF / timeout. */
struct rx {
	char buf[4096];
	size_t have;
};

static const char *answer(int fd, struct rx *rx, uint64_t *took)
{
	static char out[1024];
	uint64_t t0 = now_ms(), end = t0 + WAIT_MS;

	while (now_ms() < end) {
		char *e;
		ssize_t r;

		rx->buf[rx->have] = '\0';
		if ((e = strstr(rx->buf, "\n\n"))) {
			size_t n = (size_t)(e - rx->buf) + 2;
			memcpy(out, rx->buf, n);
			out[n - 2] = '\0';
			memmove(rx->buf, rx->buf + n, rx->have - n);
			rx->have -= n;
			if (took)
				*took = now_ms() - t0;
			return out;
		}
		daemon_loop_once(5);
		r = recv(fd, rx->buf + rx->have, sizeof(rx->buf) - 1 - rx->have, 0);
		if (r == 0)
			return NULL;
		if (r > 0)
			rx->have += (size_t)r;
	}
	return NULL;
}

static bool closed_by_server(int fd)
{
	uint64_t end = now_ms() + WAIT_MS;
	char c[256];

	while (now_ms() < end) {
		ssize_t r;
		daemon_loop_once(5);
		r = recv(fd, c, sizeof(c), 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return true;
	}
	return false;
}

static char *rcpt_req(const char *state, const char *rcpt)
{
	static char b[1024];

	snprintf(b, sizeof(b),
		 "request=smtpd_access_policy\nprotocol_state=%s\nprotocol_name=ESMTP\n"
		 "client_address=198.18.1.2\nclient_name=unknown\nhelo_name=c.example.test\n"
		 "sender=alice@example.org\nrecipient=%s\nqueue_id=\ninstance=a1.b2.c3.0\n\n",
		 state, rcpt);
	return b;
}

#define A550 "action=550 5.1.1 User unknown"
#define A450 "action=450 4.7.1 verification in progress"

struct srv_case {
	const char *name;
	const char *state, *rcpt;
	const char *action;
	bool waits;	/* a miss: answered after policy_timeout */
};

static const struct srv_case srv_cases[] = {
	{"invalid by hand", "RCPT", "bob@defer.test", A550, false},
	{"invalid, other case", "RCPT", "BOB@Defer.Test", A550, false},
	{"valid by hand", "RCPT", "alice@defer.test", "action=DUNNO", false},
	{"unmanaged domain", "RCPT", "x@elsewhere.test", "action=DUNNO", false},
	{"MAIL state", "MAIL", "bob@defer.test", "action=DUNNO", false},
	{"unparsable recipient", "RCPT", "not an address", "action=DUNNO", false},
	{"miss, defer domain", "RCPT", "nobody@defer.test", A450, true},
	{"miss, pass domain", "RCPT", "nobody@pass.test", "action=DUNNO", true},
};

Test(policy_server, verdicts_over_tcp)
{
	struct rx *rx = calloc(1, sizeof(*rx));
	char err[128];
	int fd;

	srv_start(NULL, 0);
	cr_assert_eq(core_set("bob@defer.test", false, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(core_set("alice@defer.test", true, 0, err, sizeof(err)), 0, "%s", err);
	fd = tcp_client();
	for (size_t i = 0; i < ARRAY_SIZE(srv_cases); i++) {
		const struct srv_case *c = &srv_cases[i];
		uint64_t took = 0;
		const char *a;

		csend(fd, rcpt_req(c->state, c->rcpt));
		a = answer(fd, rx, &took);
		cr_assert_not_null(a, "%s: no answer", c->name);
		cr_expect_str_eq(a, c->action, "%s: got '%s'", c->name, a);
		if (c->waits)
			cr_expect_geq(took, POLICY_TIMEOUT_MS - 20, "%s: answered after %llu ms",
				      c->name, (unsigned long long)took);
		else
			cr_expect_lt(took, POLICY_TIMEOUT_MS, "%s: took %llu ms", c->name,
				     (unsigned long long)took);
	}
	cr_expect_eq(policy_stat(POLICY_ST_REJECT), 2);
	cr_expect_eq(policy_stat(POLICY_ST_DEFER), 1);
	cr_expect_eq(policy_stat(POLICY_ST_DUNNO), 5);
	cr_expect_eq(policy_stat(POLICY_ST_WAIT_TIMEOUT), 2);
	cr_expect_eq(policy_stat(POLICY_ST_NOT_RCPT), 1);
	close(fd);
	free(rx);
	srv_stop();
}

Test(policy_server, unix_socket_listener)
{
	struct rx *rx = calloc(1, sizeof(*rx));
	struct stat st;
	char err[128];
	const char *a;
	int fd;

	srv_start(NULL, 0);
	cr_assert_eq(stat(unix_path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0660);
	cr_assert_eq(core_set("carol@pass.test", false, 600, err, sizeof(err)), 0);
	fd = unix_client();
	csend(fd, rcpt_req("RCPT", "carol@pass.test"));
	a = answer(fd, rx, NULL);
	cr_assert_not_null(a);
	cr_expect_str_eq(a, A550);
	close(fd);
	free(rx);
	srv_stop();
}

/* The Unix socket is for the local MTA only: 0660 unless configured, in
 * the group the configuration names. */
Test(policy_server, unix_socket_mode_and_group)
{
	struct stat st;

	srv_start(NULL, 0);
	cr_assert_eq(stat(unix_path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0660, "default mode %o", st.st_mode & 0777);
	srv_stop();
	srv_start("policy_socket_mode = 0620\npolicy_socket_group = nogroup", 0);
	cr_assert_eq(stat(unix_path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0620, "configured mode %o", st.st_mode & 0777);
	cr_expect_eq(st.st_gid, 65534, "configured group %u", (unsigned)st.st_gid);
	srv_stop();
}

/* A TCP client whose address policy_allow does not list is closed at once
 * (counted); its refusals are logged, rate-limited. */
static int tcp_client_from(const char *src)
{
	struct sockaddr_in me = {.sin_family = AF_INET};
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001),
				  .sin_port = htons(policy_listen_port(0))};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, src, &me.sin_addr);
	cr_assert_eq(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0, "bind %s", src);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "connect: %s",
		     strerror(errno));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

Test(policy_server, tcp_client_outside_policy_allow_refused)
{
	struct rx *rx = calloc(1, sizeof(*rx));
	char err[128];
	int fd;

	srv_start("policy_allow = 127.0.0.1/32, 2001:2::/48\nlog_rate = 3", 0);
	cr_assert_eq(core_set("carol@pass.test", false, 600, err, sizeof(err)), 0);
	fd = tcp_client_from("127.0.0.2");
	csend(fd, rcpt_req("RCPT", "carol@pass.test"));
	cr_expect_null(answer(fd, rx, NULL), "a client outside policy_allow gets no answer");
	close(fd);
	cr_expect_eq(policy_stat(POLICY_ST_DENIED), 1);
	/* the allowed address is served */
	rx->have = 0;
	fd = tcp_client_from("127.0.0.1");
	csend(fd, rcpt_req("RCPT", "carol@pass.test"));
	cr_expect_str_eq(answer(fd, rx, NULL), A550);
	close(fd);
	/* a flood of refused connections: counted, logged within log_rate */
	uint64_t before = log_suppressed(LOG_K_CLIENT);
	for (int i = 0; i < 40; i++) {
		fd = tcp_client_from("127.0.0.2");
		pump(2);
		close(fd);
	}
	pump(50);
	cr_expect_eq(policy_stat(POLICY_ST_DENIED), 41);
	cr_expect_gt(log_suppressed(LOG_K_CLIENT), before, "refusal lines are rate-limited");
	free(rx);
	srv_stop();
}

Test(policy_server, request_split_and_pipelined)
{
	struct rx *rx = calloc(1, sizeof(*rx));
	char err[128], two[2048];
	const char *req, *a;
	int fd;

	srv_start(NULL, 0);
	cr_assert_eq(core_set("dan@pass.test", false, 0, err, sizeof(err)), 0);
	fd = tcp_client();
	req = rcpt_req("RCPT", "dan@pass.test");
	for (size_t i = 0; req[i]; i++) {
		cr_assert_eq(send(fd, req + i, 1, MSG_NOSIGNAL), 1);
		daemon_loop_once(0);
	}
	a = answer(fd, rx, NULL);
	cr_assert_not_null(a);
	cr_expect_str_eq(a, A550);
	/* two requests in one segment: two answers, in order */
	snprintf(two, sizeof(two), "%s", rcpt_req("RCPT", "dan@pass.test"));
	snprintf(two + strlen(two), sizeof(two) - strlen(two), "%s", rcpt_req("DATA", "x@y.test"));
	csend(fd, two);
	a = answer(fd, rx, NULL);
	cr_assert_not_null(a);
	cr_expect_str_eq(a, A550);
	a = answer(fd, rx, NULL);
	cr_assert_not_null(a);
	cr_expect_str_eq(a, "action=DUNNO");
	close(fd);
	free(rx);
	srv_stop();
}

Test(policy_server, many_concurrent_clients)
{
	enum { N = 200 };
	struct rx *rx = calloc(N, sizeof(*rx));
	int fd[N];
	char err[128];
	unsigned ok = 0;

	srv_start(NULL, 0);
	cr_assert_eq(core_set("eve@pass.test", false, 0, err, sizeof(err)), 0);
	/* connect while the loop accepts: more than the listen backlog */
	for (int i = 0; i < N; i++) {
		fd[i] = tcp_client();
		daemon_loop_once(0);
	}
	pump(50);
	cr_expect_eq(policy_conns_open(), N);
	for (int i = 0; i < N; i++)
		csend(fd[i], rcpt_req("RCPT", "eve@pass.test"));
	for (int i = 0; i < N; i++) {
		const char *a = answer(fd[i], &rx[i], NULL);
		if (a && !strcmp(a, A550))
			ok++;
	}
	cr_expect_eq(ok, N, "%u of %d clients got the right answer", ok, N);
	for (int i = 0; i < N; i++)
		close(fd[i]);
	pump(50);
	cr_expect_eq(policy_conns_open(), 0);
	free(rx);
	srv_stop();
}

Test(policy_server, client_limit)
{
	struct rx *rx = calloc(1, sizeof(*rx));
	int fd[4], extra;
	const char *a;

	srv_start("policy_max_clients = 4", 0);
	for (int i = 0; i < 4; i++)
		fd[i] = tcp_client();
	pump(50);
	cr_expect_eq(policy_conns_open(), 4);
	extra = tcp_client();
	cr_expect(closed_by_server(extra), "fifth client not refused");
	cr_expect_eq(policy_stat(POLICY_ST_BUSY), 1);
	close(extra);
	/* the four admitted ones are served */
	csend(fd[3], rcpt_req("MAIL", "a@b.test"));
	a = answer(fd[3], rx, NULL);
	cr_assert_not_null(a);
	cr_expect_str_eq(a, "action=DUNNO");
	for (int i = 0; i < 4; i++)
		close(fd[i]);
	free(rx);
	srv_stop();
}

struct bad_case {
	const char *name;
	char *input;
	enum policy_stat_id counter;
};

Test(policy_server, bad_input_closes_connection)
{
	char *line = repeat_attr("ccert_subject", POLICY_LINE_MAX, 1, "\n");
	char *big = repeat_attr("x", 1000, POLICY_REQ_MAX / 1000 + 1, "\n");
	char *many = repeat_attr("a", 1, POLICY_ATTRS_MAX + 1, "\n");
	const struct bad_case bad[] = {
		{"line over POLICY_LINE_MAX", line, POLICY_ST_LINE_TOO_LONG},
		{"request over POLICY_REQ_MAX", big, POLICY_ST_REQ_TOO_BIG},
		{"too many attributes", many, POLICY_ST_REQ_TOO_BIG},
		{"line without '='", "request=smtpd_access_policy\ngarbage\n\n", POLICY_ST_SYNTAX},
		{"HTTP request", "GET / HTTP/1.0\r\n\r\n", POLICY_ST_SYNTAX},
	};

	srv_start(NULL, 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t before = policy_stat(bad[i].counter);
		int fd = tcp_client();
		size_t len = strlen(bad[i].input), off = 0;

		/* the server may close before everything is sent */
		while (off < len) {
			ssize_t w = send(fd, bad[i].input + off, len - off, MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN)
				break;
			if (w > 0)
				off += (size_t)w;
			daemon_loop_once(1);
		}
		cr_expect(closed_by_server(fd), "%s: connection left open", bad[i].name);
		cr_expect_eq(policy_stat(bad[i].counter), before + 1, "%s: counter", bad[i].name);
		close(fd);
	}
	pump(20);
	cr_expect_eq(policy_conns_open(), 0);
	free(line);
	free(big);
	free(many);
	srv_stop();
}


Test(policy_server, miss_answered_by_callout_in_time)
{
	struct rx *rx = calloc(1, sizeof(*rx));
	unsigned port;
	pid_t dest = smtp_dest(&port, "550 5.1.1 <x>: Recipient address rejected: User unknown\r\n");
	const char *a;
	int fd, ws;

	srv_start(NULL, port);
	fd = tcp_client();
	csend(fd, rcpt_req("RCPT", "frank@pass.test"));
	a = answer(fd, rx, NULL);
	cr_assert_not_null(a);
	cr_expect_str_eq(a, A550);
	cr_expect_eq(policy_stat(POLICY_ST_WAITED), 1);
	close(fd);
	kill(dest, SIGTERM);
	waitpid(dest, &ws, 0);
	free(rx);
	srv_stop();
}

Test(policy_server, reload_changes_listeners)
{
	struct rx *rx = calloc(1, sizeof(*rx));
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	uint16_t old_port;
	struct stat st;
	char err[256];
	const char *a;
	int fd;

	srv_start(NULL, 0);
	old_port = policy_listen_port(0);
	/* TCP only, another port */
	write_config("127.0.0.1:0", NULL);
	cr_assert_eq(core_reload(err, sizeof(err)), 0, "reload: %s", err);
	cr_expect_neq(stat(unix_path, &st), 0, "Unix listener still there");
	cr_assert_neq(policy_listen_port(0), 0);
	cr_expect_eq(policy_listen_port(1), 0);
	sin.sin_port = htons(old_port);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (policy_listen_port(0) != old_port)
		cr_expect_neq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0,
			      "old port still listening");
	close(fd);
	fd = tcp_client();
	csend(fd, rcpt_req("MAIL", "a@b.test"));
	a = answer(fd, rx, NULL);
	cr_assert_not_null(a);
	cr_expect_str_eq(a, "action=DUNNO");
	close(fd);
	/* a listener that cannot be opened: the old ones stay */
	write_config("198.18.255.254:1", NULL);	/* not an address of this host */
	cr_expect_eq(core_reload(err, sizeof(err)), 0, "reload: %s", err);
	fd = tcp_client();
	csend(fd, rcpt_req("MAIL", "a@b.test"));
	a = answer(fd, rx, NULL);
	cr_assert_not_null(a, "old listener lost on a failed reload");
	close(fd);
	free(rx);
	srv_stop();
}

/* Out of descriptors: the listener pauses instead of spinning the
 * level-triggered loop on a connection it cannot accept, and takes it once
 * descriptors are free again. */
static int highest_fd(void)
{
	int hi = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	cr_assert_not_null(d);
	while ((e = readdir(d)))
		if (atoi(e->d_name) > hi)
			hi = atoi(e->d_name);
	closedir(d);
	return hi;
}

Test(policy_server, accept_pauses_when_out_of_descriptors)
{
	struct rlimit old, low;
	char err[128];
	int p[2], busy = 0, calls = 0;
	pid_t pid;

	srv_start(NULL, 0);
	cr_assert_eq(core_set("carol@pass.test", false, 600, err, sizeof(err)), 0);
	uint16_t port = policy_listen_port(0);
	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* the client: one request, the answer's first octet back through p */
		struct sockaddr_in sin = {.sin_family = AF_INET,
					  .sin_addr.s_addr = htonl(0x7f000001),
					  .sin_port = htons(port)};
		const char *req = "request=smtpd_access_policy\nprotocol_state=RCPT\n"
				  "recipient=carol@pass.test\n\n";
		char c = '?';
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		alarm(10);
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) ||
		    send(fd, req, strlen(req), MSG_NOSIGNAL) < 0 || recv(fd, &c, 1, 0) != 1)
			c = '!';
		if (write(p[1], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)highest_fd() + 1;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	/* and the holes below it filled: no descriptor left to accept into */
	int fill[1024], nfill = 0;
	while (nfill < 1024 && (fill[nfill] = open("/dev/null", O_RDONLY)) >= 0)
		nfill++;
	cr_assert_eq(errno, EMFILE);
	uint64_t pauses = listen_pauses();
	uint64_t end = now_ms() + 400;
	while (now_ms() < end) {
		calls++;
		if (daemon_loop_once(50) > 0)
			busy++;
	}
	while (nfill > 0)
		close(fill[--nfill]);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	cr_expect_gt(listen_pauses(), pauses, "the listener paused");
	cr_expect_lt(busy, 40, "the loop did not spin: %d of %d turns had events", busy, calls);
	/* descriptors are back: the waiting client is served */
	char c = 0;
	end = now_ms() + WAIT_MS;
	while (now_ms() < end && read(p[0], &c, 1) != 1)
		daemon_loop_once(10);
	cr_expect_eq(c, 'a', "the client got an answer after the pause ('%c')", c);
	close(p[0]);
	int ws;
	waitpid(pid, &ws, 0);
	srv_stop();
}
