/*
 * test_config.c — the INI configuration parser: good files give the values
 * (defaults, [global] inheritance, domain overrides), bad files are refused
 * with "file:line: message" naming the right line.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "dtable.h"

/* arrays, not pointers: criterion may run each case in a fresh process */
struct bad_case {
	char name[64];
	char text[256];
	char err[128]; /* expected substring, with file:line */
};

static const struct bad_case bad_cases[] = {
	{"unknown key", "[global]\nshm_path = /x\nno_such_key = 1\n", "t.conf:3: unknown key 'no_such_key'"},
	{"unknown section", "[global]\n\n[frobnicate]\nmode = list\n", "t.conf:3: unknown section [frobnicate]"},
	{"key outside section", "batch = 5\n", "t.conf:1: key outside any section"},
	{"number not a number", "[domain a.test]\nbatch = many\n", "t.conf:2: batch: 'many' is not a number"},
	{"number out of range", "[domain a.test]\nbatch = 0\n", "t.conf:2: batch: 0 out of range 1..1000"},
	{"number too big", "[global]\nshm_max_lcores = 65\n", "t.conf:2: shm_max_lcores: 65 out of range"},
	{"bad duration unit", "[global]\n\n\n[domain a.test]\nttl_valid = 3 fortnights\n", "t.conf:5: ttl_valid: '3 fortnights' is not a duration"},
	{"ms for a seconds key", "[domain a.test]\nttl_valid = 1500ms\n", "t.conf:2: ttl_valid"},
	{"bad bool", "[global]\nlog_stderr = perhaps\n", "t.conf:2: log_stderr: 'perhaps' is not yes/no"},
	{"bad mode", "[domain a.test]\nmode = open\n", "t.conf:2: mode: 'open' is not callout, list or both"},
	{"bad miss policy", "[domain a.test]\nmiss_policy = drop\n", "t.conf:2: miss_policy: 'drop'"},
	{"bad facility", "[global]\nsyslog_facility = kern9\n", "t.conf:2: syslog_facility: unknown facility"},
	{"bad port", "[domain a.test]\ndestination = mx1.a.test:70000\n", "t.conf:2: bad port '70000'"},
	{"bad host", "[domain a.test]\ndestination = mx1/a\n", "t.conf:2: bad destination host 'mx1/a'"},
	{"v6 without brackets", "[domain a.test]\ndestination = 2001:2::1:25\n", "t.conf:2: IPv6 destination must be written [addr]:port"},
	{"too many destinations", "[domain a.test]\ndestination = a,b,c,d,e,f,g,h,i\n", "t.conf:2: more than 8 destinations"},
	{"global key in domain", "[domain a.test]\nshm_path = /x\n", "t.conf:2: key 'shm_path' belongs in [global]"},
	{"duplicate domain", "[domain a.test]\nbatch = 5\n[domain A.TEST]\nbatch = 6\n", "t.conf:3: domain a.test defined twice"},
	{"bad domain name", "[domain a..test]\n", "t.conf:1: bad domain name 'a..test'"},
	{"bad uid", "[global]\ncontrol_uids = 0, root\n", "t.conf:2: bad uid 'root'"},
	{"bad invalid code", "[domain a.test]\ninvalid_codes = 4.1.1\n", "t.conf:2: bad enhanced status code '4.1.1'"},
	{"value too long", "[global]\nsyslog_ident = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", "t.conf:2: syslog_ident: value longer than 63"},
	{"syntax error", "[global]\nthis line has no equals sign\n", "t.conf:2: syntax error"},
	{"refresh not below ttl", "[domain a.test]\nttl_invalid = 10m\nrefresh_invalid = 10m\n", "[domain a.test]: refresh_* must be shorter than ttl_*"},
	{"list mode without list", "[domain a.test]\nmode = list\n", "[domain a.test]: mode list needs a list file"},
	{"list and list_command", "[domain a.test]\nmode = list\nlist = /etc/hostname\nlist_command = cat /etc/hostname\n", "[domain a.test]: list and list_command are exclusive"},
	{"list_command in [global]", "[global]\nlist_command = true\n", "list_command"},
	{"list file missing", "[domain a.test]\nmode = both\nlist = /nonexistent/list.txt\n", "list /nonexistent/list.txt"},
	{"mail_from without domain", "[domain a.test]\nmail_from = postmaster\n", "mail_from must be local@domain"},
	{"rings not power of two", "[global]\nmiss_ring_slots = 1000\n", "powers of two"},
};

ParameterizedTestParameters(config, bad)
{
	return cr_make_param_array(struct bad_case, bad_cases, sizeof(bad_cases) / sizeof(bad_cases[0]));
}

ParameterizedTest(const struct bad_case *c, config, bad)
{
	struct config cfg;
	char err[512] = "";
	int r = config_load_string("t.conf", c->text, &cfg, err, sizeof(err));
	cr_assert_lt(r, 0, "%s: accepted", c->name);
	cr_assert(strstr(err, c->err), "%s: error '%s' lacks '%s'", c->name, err, c->err);
}

Test(config, defaults_and_inheritance)
{
	static const char text[] =
		"; comment\n"
		"[global]\n"
		"shm_path = /dev/shm/rg-test\n"
		"batch = 50\n"
		"ttl_valid = 2d\n"
		"control_uids = 0, 1000\n"
		"syslog_facility = local3\n"
		"\n"
		"[domain Example.TEST]\n"
		"destination = mx1.example.test, [2001:2::25]:2525, 198.18.0.2:25\n"
		"miss_policy = defer\n"
		"batch = 20\n"
		"\n"
		"[domain other.test]\n"
		"\n"
		"[domain m365.test]\n"
		"invalid_codes = 5.4.1\n"
		"command_timeout = 750ms\n";
	struct config cfg;
	char err[512] = "";
	cr_assert_eq(config_load_string("good.conf", text, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(cfg.shm_path, "/dev/shm/rg-test");
	cr_assert_str_eq(cfg.store_path, "/var/lib/rcptgate");
	cr_assert_eq(cfg.ncontrol_uids, 2);
	cr_assert_eq(cfg.control_uids[1], 1000);
	cr_assert_eq(cfg.syslog_facility, LOG_LOCAL3);
	cr_assert_eq(cfg.ndom, 3);

	const struct config_dom *d = config_domain(&cfg, "example.test");
	cr_assert_not_null(d, "domain names are lowercased");
	cr_assert_eq(d->ndest, 3);
	cr_assert_str_eq(d->dest[0].host, "mx1.example.test");
	cr_assert_eq(d->dest[0].port, 25);
	cr_assert_str_eq(d->dest[1].host, "2001:2::25");
	cr_assert_eq(d->dest[1].port, 2525);
	cr_assert_eq(d->miss_policy, DT_MISS_DEFER);
	cr_assert_eq(d->batch, 20, "domain value overrides [global]");
	cr_assert_eq(d->ttl_valid, 2 * 86400, "[global] value inherited");
	cr_assert_eq(d->ttl_invalid, 3600, "built-in default");
	cr_assert_eq(d->mode, DT_MODE_CALLOUT);

	const struct config_dom *o = config_domain(&cfg, "other.test");
	cr_assert_not_null(o, "a section without keys still defines the domain");
	cr_assert_eq(o->ndest, 0, "no destination = MX lookup");
	cr_assert_eq(o->batch, 50);

	const struct config_dom *m = config_domain(&cfg, "m365.test");
	cr_assert_eq(m->ninvalid_codes, 1);
	cr_assert_str_eq(m->invalid_codes[0], "5.4.1");
	cr_assert_eq(m->command_timeout_ms, 750);
	config_free(&cfg);
}

Test(config, list_mode_with_file)
{
	char path[] = "/tmp/rg-test-list-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "a@list.test\n", 12), 12);
	close(fd);
	char text[512];
	snprintf(text, sizeof(text), "[domain list.test]\nmode = list\nlist = %s\n", path);
	struct config cfg;
	char err[512] = "";
	int r = config_load_string("l.conf", text, &cfg, err, sizeof(err));
	unlink(path);
	cr_assert_eq(r, 0, "%s", err);
	cr_assert_eq(cfg.dom[0].mode, DT_MODE_LIST);
	config_free(&cfg);
}

Test(config, list_mode_with_command)
{
	const char *text = "[domain cmd.test]\nmode = list\n"
			   "list_command = /usr/local/bin/export-mailboxes --domain cmd.test\n";
	struct config cfg;
	char err[512] = "";
	int r = config_load_string("c.conf", text, &cfg, err, sizeof(err));
	cr_assert_eq(r, 0, "%s", err);
	cr_assert_eq(cfg.dom[0].mode, DT_MODE_LIST);
	cr_assert_str_eq(cfg.dom[0].list_command, "/usr/local/bin/export-mailboxes --domain cmd.test");
	cr_assert_str_empty(cfg.dom[0].list);
	config_free(&cfg);
}

Test(config, file_errors_name_the_file)
{
	char path[] = "/tmp/rg-test-conf-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	static const char text[] = "[global]\nlog_rate = 10\n\n[domain f.test]\nbatch = lots\n";
	cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	struct config cfg;
	char err[512] = "", want[300];
	int r = config_load(path, &cfg, err, sizeof(err));
	snprintf(want, sizeof(want), "%s:5: batch", path);
	unlink(path);
	cr_assert_lt(r, 0);
	cr_assert(strstr(err, want), "'%s' lacks '%s'", err, want);
	cr_assert_lt(config_load("/nonexistent/rcptgated.conf", &cfg, err, sizeof(err)), 0);
	cr_assert(strstr(err, "/nonexistent/rcptgated.conf: No such file"), "%s", err);
}
