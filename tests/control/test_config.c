/*
 * test_config.c — the INI configuration parser: good files give the values
 * (defaults, [global] inheritance, domain overrides), bad files are refused
 * with "file:line: message" naming the right line.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "dtable.h"

/* arrays, not pointers: criterion may run each case in a fresh process */
struct bad_case {
	char name[64];
	char text[512];
	char err[160]; /* expected substring, with file:line */
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
	{"unknown user", "[global]\ncontrol_uids = 0, no-such-user-rg\n", "t.conf:2: control_uids: unknown user 'no-such-user-rg'"},
	{"unknown group", "[global]\ncontrol_readers = @no-such-group-rg\n", "t.conf:2: control_readers: unknown group 'no-such-group-rg'"},
	{"bad policy_allow", "[global]\npolicy_allow = 127.0.0.1/8\n", "t.conf:2: policy_allow: bad prefix '127.0.0.1/8'"},
	{"bad socket mode", "[global]\npolicy_socket_mode = 0999\n", "t.conf:2: policy_socket_mode: '0999' is not an octal mode"},
	{"unknown socket group", "[global]\npolicy_socket_group = no-such-group-rg\n", "t.conf:2: policy_socket_group: unknown group 'no-such-group-rg'"},
	{"mail_from with parameters", "[global]\n[domain a.test]\nmail_from = x@y> SIZE=1 <\n", "t.conf:3: mail_from: 'x@y> SIZE=1 <' is not a mailbox"},
	{"mail_from with CR", "[domain a.test]\nmail_from = x@y\rRCPT TO:<z@a>\n", "t.conf:2: mail_from"},
	{"mail_from null path", "[domain a.test]\nmail_from = <>\n", "t.conf:2: mail_from: '<>' is not a mailbox (leave it empty for the null path)"},
	{"line too long", "[global]\nlog_rate = 5\nsyslog_ident = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nlog_stderr = yes\n", "t.conf:3: line longer than 197 characters"},
	{"duplicate key in global", "[global]\nlog_rate = 5\nlog_stderr = no\nlog_rate = 6\n", "t.conf:4: log_rate given twice in [global] (first at line 2)"},
	{"duplicate key in domain", "[domain a.test]\nbatch = 5\n\n[domain b.test]\nbatch = 5\n[domain a.test ]\n", "t.conf:6: domain a.test defined twice"},
	{"duplicate key in one domain", "[domain a.test]\nbatch = 5\nmode = callout\nbatch = 6\n", "t.conf:4: batch given twice in [domain a.test] (first at line 2)"},
	{"alias given twice", "[global]\ncontrol_uids = 0\ncontrol_admins = 0\n", "t.conf:3: control_admins given twice in [global] (first at line 2, as control_uids)"},
	{"bad UTF-8 domain", "[domain a\xc3\x28.test]\n", "t.conf:1: bad domain name"},
	{"IDNA-invalid domain", "[domain a\xe2\x99\xa5.test]\n", "t.conf:1: bad domain name 'a\xe2\x99\xa5.test': not a valid international domain name"},
	{"bad invalid code", "[domain a.test]\ninvalid_codes = 4.1.1\n", "t.conf:2: bad enhanced status code '4.1.1'"},
	{"value too long", "[global]\nsyslog_ident = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", "t.conf:2: syslog_ident: value longer than 63"},
	{"syntax error", "[global]\nthis line has no equals sign\n", "t.conf:2: syntax error"},
	{"refresh not below ttl", "[domain a.test]\nttl_invalid = 10m\nrefresh_invalid = 10m\n", "[domain a.test]: refresh_* must be shorter than ttl_*"},
	{"list mode without list", "[domain a.test]\nmode = list\n", "[domain a.test]: mode list needs a list file"},
	{"list and list_command", "[domain a.test]\nmode = list\nlist = /etc/hostname\nlist_command = cat /etc/hostname\n", "[domain a.test]: list and list_command are exclusive"},
	{"list_command in [global]", "[global]\nlist_command = true\n", "list_command"},
	{"list file missing", "[domain a.test]\nmode = both\nlist = /nonexistent/list.txt\n", "list /nonexistent/list.txt"},
	{"mail_from without domain", "[domain a.test]\nmail_from = postmaster\n", "t.conf:2: mail_from: 'postmaster' is not a mailbox"},
	{"bad reject_code", "[domain a.test]\nreject_code = 500\n", "t.conf:2: reject_code: '500' is not 550 or 450"},
	{"bad action", "[domain a.test]\naction = log\n", "t.conf:2: action: 'log' is not reject or warn"},
	{"rotation without mail_from", "[domain a.test]\nmail_from_rotate = 1d\n", "[domain a.test]: mail_from_rotate needs mail_from"},
	{"rotation of a quoted local part", "[domain a.test]\nmail_from = \"x y\"@a.test\nmail_from_rotate = 1d\n", "[domain a.test]: mail_from_rotate needs a mail_from whose local part is a dot-atom"},
	{"bad source_address", "[global]\nsource_address = mx.example\n", "t.conf:2: source_address: 'mx.example' is not an IPv4 or IPv6 address"},
	{"two IPv4 source addresses", "[global]\nsource_address = 198.18.0.1, 198.18.0.2\n", "t.conf:2: source_address: at most one IPv4 and one IPv6 address"},
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
	cr_assert_eq(cfg.ncontrol_admins, 2, "control_uids is control_admins");
	cr_assert_eq(cfg.control_admins[1].id, 1000);
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

Test(config, control_roles_and_policy_access)
{
	static const char text[] =
		"[global]\n"
		"control_admins = 0, 1000\n"
		"control_readers = nobody, @nogroup, 4242\n"
		"policy_socket_mode = 0640\n"
		"policy_socket_group = nogroup\n"
		"policy_allow = 198.18.0.0/15, 2001:2::/48, 127.0.0.1\n";
	struct config cfg;
	char err[512] = "";
	cr_assert_eq(config_load_string("r.conf", text, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cfg.ncontrol_admins, 2);
	cr_assert_eq(cfg.control_admins[1].id, 1000);
	cr_assert_not(cfg.control_admins[1].group);
	cr_assert_eq(cfg.ncontrol_readers, 3);
	cr_assert_eq(cfg.control_readers[0].id, 65534);
	cr_assert_not(cfg.control_readers[0].group);
	cr_assert_eq(cfg.control_readers[1].id, 65534);
	cr_assert(cfg.control_readers[1].group);
	cr_assert_eq(cfg.control_readers[2].id, 4242);
	cr_assert_eq(cfg.policy_socket_mode, 0640);
	cr_assert_eq(cfg.policy_socket_gid, 65534);
	cr_assert_eq(cfg.npolicy_allow, 3);
	cr_assert_eq(cfg.policy_allow[0].plen, 15);
	cr_assert_eq(cfg.policy_allow[1].family, AF_INET6);
	cr_assert_eq(cfg.policy_allow[2].plen, 32);
	config_free(&cfg);
	/* defaults: root administers, nobody reads, 0660, loopback clients only */
	cr_assert_eq(config_load_string("d.conf", "[global]\n", &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cfg.ncontrol_admins, 1);
	cr_assert_eq(cfg.control_admins[0].id, 0);
	cr_assert_eq(cfg.ncontrol_readers, 0);
	cr_assert_eq(cfg.policy_socket_mode, 0660);
	cr_assert_eq(cfg.policy_socket_gid, -1);
	cr_assert_eq(cfg.npolicy_allow, 2);
	config_free(&cfg);
}

Test(config, mail_from_is_a_checked_path)
{
	struct config cfg;
	char err[512] = "";
	cr_assert_eq(config_load_string("m.conf",
					"[global]\nmail_from = <Double-Bounce@Edge.Example.TEST>\n"
					"[domain a.test]\n[domain b.test]\nmail_from = probe@b.test\n",
					&cfg, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_str_eq(config_domain(&cfg, "a.test")->mail_from, "Double-Bounce@edge.example.test",
			 "brackets dropped, domain lowercased, local part kept");
	cr_assert_str_eq(config_domain(&cfg, "b.test")->mail_from, "probe@b.test");
	config_free(&cfg);
}

Test(config, utf8_domain_names_become_a_labels)
{
	struct config cfg;
	char err[512] = "";
	cr_assert_eq(config_load_string("i.conf", "[domain B\xc3\xbc" "cher.Example]\nbatch = 5\n",
					&cfg, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(cfg.ndom, 1);
	cr_assert_str_eq(cfg.dom[0].name, "xn--bcher-kva.example");
	cr_assert_eq(cfg.dom[0].batch, 5, "keys of the section apply to the converted name");
	cr_assert_not_null(config_domain(&cfg, "xn--bcher-kva.example"));
	config_free(&cfg);
}

Test(config, long_line_limit_is_exact)
{
	struct config cfg;
	char err[512] = "", text[600], ident[200];
	/* "syslog_ident = " is 15 characters: 15 + 63 fits the key, the line is
	 * what is measured: 197 characters pass, 198 do not */
	memset(ident, 'b', sizeof(ident));
	snprintf(text, sizeof(text), "[global]\n; %.*s\nlog_rate = 7\n", 195, ident);
	cr_assert_eq(config_load_string("l.conf", text, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cfg.log_rate, 7);
	config_free(&cfg);
	snprintf(text, sizeof(text), "[global]\n; %.*s\nlog_rate = 7\n", 196, ident);
	cr_assert_lt(config_load_string("l.conf", text, &cfg, err, sizeof(err)), 0);
	cr_assert(strstr(err, "l.conf:2: line longer than 197 characters"), "%s", err);
}

Test(config, reject_code_and_action)
{
	struct config cfg;
	char err[512] = "";
	cr_assert_eq(config_load_string("a.conf",
					"[global]\nreject_code = 450\n[domain a.test]\n"
					"[domain b.test]\naction = warn\nreject_code = 550\n",
					&cfg, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(config_domain(&cfg, "a.test")->reject_code, 450);
	cr_assert_eq(config_domain(&cfg, "a.test")->action, CONFIG_ACTION_REJECT);
	cr_assert_eq(config_domain(&cfg, "b.test")->reject_code, 550);
	cr_assert_eq(config_domain(&cfg, "b.test")->action, CONFIG_ACTION_WARN);
	config_free(&cfg);
	cr_assert_eq(config_load_string("d.conf", "[domain c.test]\n", &cfg, err, sizeof(err)), 0);
	cr_assert_eq(cfg.dom[0].reject_code, 550, "550 unless asked");
	cr_assert_eq(cfg.dom[0].action, CONFIG_ACTION_REJECT);
	config_free(&cfg);
}
