/*
 * test_dpconf.c — rcptgate-dp's own settings (dpconf.c): every command-line
 * option in and out of range, the repeatable and list options, the
 * [dataplane] section of an INI file (errors name file:line, unknown keys
 * refused, other sections left to rcptgated), the order of --config and the
 * options around it, and the cross-field checks of dpconf_validate().
 * Single-threaded; criterion runs each test in its own process.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpconf.h"

#define T_ARGS_MAX 64
#define T_LINE_MAX 2048

/* Split a space-separated command line after "rcptgate-dp" into argv. */
static int t_parse(struct dpconf *c, const char *line, char *err, size_t errlen)
{
	static char buf[T_LINE_MAX];
	char *argv[T_ARGS_MAX + 1], *save = NULL, *tok;
	int argc = 0;

	snprintf(buf, sizeof(buf), "%s", line);
	argv[argc++] = (char *)"rcptgate-dp";
	for (tok = strtok_r(buf, " ", &save); tok && argc < T_ARGS_MAX;
	     tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	argv[argc] = NULL;
	err[0] = 0;
	return dpconf_parse_args(c, argc, argv, err, errlen, stdout);
}

/* Files this test wrote, removed after it whatever its outcome. */
static char t_files[4][256];
static unsigned t_nfiles;

static void t_cleanup(void)
{
	for (unsigned i = 0; i < t_nfiles; i++)
		unlink(t_files[i]);
	t_nfiles = 0;
}

TestSuite(dpconf, .fini = t_cleanup);

static void t_file(char *path, size_t len, const char *tag, const char *text)
{
	FILE *f;

	snprintf(path, len, "/tmp/rg-dpw-%s-%d.ini", tag, (int)getpid());
	if (t_nfiles < 4)
		snprintf(t_files[t_nfiles++], sizeof(t_files[0]), "%s", path);
	f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

/* ---- numeric options: both ends of the range in, one past each end out ---- */

struct num_case {
	char name[32];		/* option, also the key in the file */
	size_t off;		/* unsigned field in struct dpconf */
	unsigned lo, hi;
	unsigned def;		/* value after dpconf_defaults (0: engine default) */
};

#define NUM(n, field, lo, hi, def) {n, offsetof(struct dpconf, field), lo, hi, def}

static const struct num_case num_cases[] = {
	NUM("burst", burst, 1, 64, 32),
	NUM("rx-desc", rx_desc, 64, 16384, 1024),
	NUM("tx-desc", tx_desc, 64, 16384, 1024),
	NUM("mbufs", mbufs, 1023, 1u << 22, 16383),
	NUM("ring-slots", ring_slots, 64, 1u << 20, 4096),
	NUM("max-flows", max_flows, 16, 1u << 22, 65536),
	NUM("idle-timeout", idle_s, 1, 86400, 300),
	NUM("shm-retry", shm_retry_s, 1, 3600, 1),
	NUM("handshake-timeout-ms", eng.handshake_ms, 100, 3600000, 0),
	NUM("busy-blocks", eng.busy_blocks, 16, 1u << 22, 0),
	NUM("seg-blocks", eng.seg_blocks, 16, 1u << 22, 0),
	NUM("line-max", eng.line_max, 512, 4096, 0),
	NUM("ooo-max", eng.ooo_max, 1, 256, 0),
	NUM("cmd-max", eng.cmd_max, 8, 4096, 0),
	NUM("rcpt-max", eng.rcpt_max, 1, 100000, 0),
	NUM("inject-max", eng.inject_max, 1024, 1u << 20, 0),
	NUM("retx-initial-ms", eng.retx_initial_ms, 10, 60000, 0),
	NUM("retx-max", eng.retx_max, 1, 64, 0),
	NUM("harvest-threshold", eng.harvest_threshold, 0, 1000000, 0),
	NUM("harvest-window-ms", eng.harvest_window_ms, 1000, 86400000, 0),
	NUM("harvest-slots", eng.harvest_slots, 64, 1u << 22, 0),
};

ParameterizedTestParameters(dpconf, numeric)
{
	return cr_make_param_array(struct num_case, num_cases,
				   sizeof(num_cases) / sizeof(num_cases[0]));
}

static unsigned t_field(const struct dpconf *c, size_t off)
{
	unsigned v;
	memcpy(&v, (const char *)c + off, sizeof(v));
	return v;
}

ParameterizedTest(const struct num_case *k, dpconf, numeric)
{
	struct dpconf c;
	char line[256], err[512];
	unsigned good[2] = {k->lo, k->hi};
	const char *bad[] = {"", "x", "12x", "-1", "1.5", "99999999999999999999"};

	dpconf_defaults(&c);
	cr_expect_eq(t_field(&c, k->off), k->def, "%s: default %u, expected %u", k->name,
		     t_field(&c, k->off), k->def);
	for (unsigned i = 0; i < 2; i++) {
		dpconf_defaults(&c);
		snprintf(line, sizeof(line), "--%s %u", k->name, good[i]);
		cr_expect_eq(t_parse(&c, line, err, sizeof(err)), 0, "%s: %s", line, err);
		cr_expect_eq(t_field(&c, k->off), good[i], "%s: got %u", line, t_field(&c, k->off));
		/* the same with --opt=value */
		dpconf_defaults(&c);
		snprintf(line, sizeof(line), "--%s=%u", k->name, good[i]);
		cr_expect_eq(t_parse(&c, line, err, sizeof(err)), 0, "%s: %s", line, err);
		cr_expect_eq(t_field(&c, k->off), good[i], "%s: got %u", line, t_field(&c, k->off));
	}
	if (k->lo > 0) {
		dpconf_defaults(&c);
		snprintf(line, sizeof(line), "--%s=%u", k->name, k->lo - 1);
		cr_expect_eq(t_parse(&c, line, err, sizeof(err)), -EINVAL, "%s: accepted", line);
		cr_expect(strstr(err, k->name), "%s: error '%s' does not name the option", line,
			  err);
	}
	dpconf_defaults(&c);
	snprintf(line, sizeof(line), "--%s=%llu", k->name, (unsigned long long)k->hi + 1);
	cr_expect_eq(t_parse(&c, line, err, sizeof(err)), -EINVAL, "%s: accepted", line);
	cr_expect(strstr(err, k->name), "%s: error '%s' does not name the option", line, err);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dpconf_defaults(&c);
		snprintf(line, sizeof(line), "--%s=%s", k->name, bad[i]);
		cr_expect_eq(t_parse(&c, line, err, sizeof(err)), -EINVAL, "%s: accepted", line);
		cr_expect(strstr(err, "is not a number"), "%s: error '%s'", line, err);
	}
}

/* ---- every other option: named command lines, accepted or refused ---- */

enum t_check {
	CK_NONE,
	CK_PAIRS,	/* pairs as "o:i,o:i" in want */
	CK_SMTP,	/* smtp ports as "a,b" */
	CK_RXMAP,	/* "p:q@l,..." */
	CK_DISPATCH,	/* "auto" | "rss" | "sw" */
	CK_FLAGS,	/* "no_engine inbound_only sw_csum" as 0/1 digits */
	CK_SHM,
	CK_HARVEST_OFF,	/* "0" | "1" */
};

struct arg_case {
	char name[64];
	char args[T_LINE_MAX];
	int rc;			/* expected dpconf_parse_args() result */
	char err[128];		/* substring of the error when rc < 0 */
	int check;		/* enum t_check, when rc == 0 */
	char want[128];
};

static void t_describe(const struct dpconf *c, int check, char *out, size_t len)
{
	size_t n = 0;

	out[0] = 0;
	switch (check) {
	case CK_PAIRS:
		for (unsigned i = 0; i < c->n_pairs; i++)
			n += (size_t)snprintf(out + n, len - n, "%s%u:%u", i ? "," : "",
					      c->pairs[i].outside, c->pairs[i].inside);
		break;
	case CK_SMTP:
		for (unsigned i = 0; i < c->n_smtp_ports; i++)
			n += (size_t)snprintf(out + n, len - n, "%s%u", i ? "," : "",
					      c->smtp_ports[i]);
		break;
	case CK_RXMAP:
		for (unsigned i = 0; i < c->n_rxmap && n < len; i++)
			n += (size_t)snprintf(out + n, len - n, "%s%u:%u@%u", i ? "," : "",
					      c->rxmap[i].port, c->rxmap[i].queue,
					      c->rxmap[i].lcore);
		break;
	case CK_DISPATCH:
		snprintf(out, len, "%s",
			 c->dispatch == DPCONF_DISPATCH_AUTO  ? "auto"
			 : c->dispatch == DPCONF_DISPATCH_RSS ? "rss"
			 : c->dispatch == DPCONF_DISPATCH_SW  ? "sw"
							      : "?");
		break;
	case CK_FLAGS:
		snprintf(out, len, "%d%d%d", c->no_engine, c->inbound_only, c->sw_csum);
		break;
	case CK_SHM:
		snprintf(out, len, "%.*s", (int)(len - 1), c->shm_path);
		break;
	case CK_HARVEST_OFF:
		snprintf(out, len, "%d", c->eng.harvest_off);
		break;
	default:
		break;
	}
}

static const struct arg_case arg_cases[] = {
	/* nothing given: defaults */
	{"empty", "", 0, "", CK_SMTP, "25"},
	{"default dispatch", "", 0, "", CK_DISPATCH, "auto"},
	{"default flags", "", 0, "", CK_FLAGS, "000"},
	{"shm path", "--shm /dev/shm/rcptgate", 0, "", CK_SHM, "/dev/shm/rcptgate"},
	{"shm path given twice: last wins", "--shm /a --shm /b", 0, "", CK_SHM, "/b"},
	/* --pair */
	{"one pair", "--pair 0:1", 0, "", CK_PAIRS, "0:1"},
	{"pair reversed", "--pair 1:0", 0, "", CK_PAIRS, "1:0"},
	{"pair large ids", "--pair 65533:65534", 0, "", CK_PAIRS, "65533:65534"},
	{"pair repeated", "--pair 0:1 --pair 2:3 --pair=5:4", 0, "", CK_PAIRS, "0:1,2:3,5:4"},
	{"eight pairs", "--pair 0:1 --pair 2:3 --pair 4:5 --pair 6:7 --pair 8:9 --pair 10:11 "
			"--pair 12:13 --pair 14:15",
	 0, "", CK_PAIRS, "0:1,2:3,4:5,6:7,8:9,10:11,12:13,14:15"},
	{"nine pairs", "--pair 0:1 --pair 2:3 --pair 4:5 --pair 6:7 --pair 8:9 --pair 10:11 "
		       "--pair 12:13 --pair 14:15 --pair 16:17",
	 -EINVAL, "pair: at most 8 pairs", 0, ""},
	{"pair without colon", "--pair 01", -EINVAL, "pair: '01' is not OUTSIDE:INSIDE", 0, ""},
	{"pair missing inside", "--pair 0:", -EINVAL, "pair: '0:'", 0, ""},
	{"pair missing outside", "--pair :1", -EINVAL, "pair: ':1'", 0, ""},
	{"pair same port", "--pair 3:3", -EINVAL, "two different port ids", 0, ""},
	{"pair three fields", "--pair 0:1:2", -EINVAL, "pair: '0:1:2'", 0, ""},
	{"pair names", "--pair a:b", -EINVAL, "pair: 'a:b'", 0, ""},
	{"pair negative", "--pair -1:2", -EINVAL, "pair: '-1:2'", 0, ""},
	{"pair port id 65535", "--pair 0:65535", -EINVAL, "pair: '0:65535'", 0, ""},
	{"pair overlong", "--pair 00000000000000:1", -EINVAL, "pair:", 0, ""},
	{"pair missing value", "--pair", -EINVAL, "unknown or incomplete option '--pair'", 0, ""},
	/* --smtp-ports */
	{"smtp one port replaces 25", "--smtp-ports 587", 0, "", CK_SMTP, "587"},
	{"smtp list", "--smtp-ports 25,587,465", 0, "", CK_SMTP, "25,587,465"},
	{"smtp eight ports", "--smtp-ports 1,2,3,4,5,6,7,65535", 0, "", CK_SMTP,
	 "1,2,3,4,5,6,7,65535"},
	{"smtp nine ports", "--smtp-ports 1,2,3,4,5,6,7,8,9", -EINVAL,
	 "smtp-ports: '1,2,3,4,5,6,7,8,9' is not a list of up to 8 ports", 0, ""},
	{"smtp port 0", "--smtp-ports 0", -EINVAL, "smtp-ports: '0'", 0, ""},
	{"smtp port 65536", "--smtp-ports 25,65536", -EINVAL, "smtp-ports: '25,65536'", 0, ""},
	{"smtp name", "--smtp-ports smtp", -EINVAL, "smtp-ports: 'smtp'", 0, ""},
	{"smtp only commas", "--smtp-ports ,,", -EINVAL, "smtp-ports: ',,'", 0, ""},
	{"smtp empty", "--smtp-ports=", -EINVAL, "smtp-ports: ''", 0, ""},
	{"smtp range syntax", "--smtp-ports 25-30", -EINVAL, "smtp-ports: '25-30'", 0, ""},
	/* --dispatch */
	{"dispatch auto", "--dispatch sw --dispatch auto", 0, "", CK_DISPATCH, "auto"},
	{"dispatch rss", "--dispatch rss", 0, "", CK_DISPATCH, "rss"},
	{"dispatch sw", "--dispatch sw", 0, "", CK_DISPATCH, "sw"},
	{"dispatch upper case", "--dispatch RSS", -EINVAL, "dispatch: 'RSS' is not auto, rss or sw",
	 0, ""},
	{"dispatch other", "--dispatch software", -EINVAL, "dispatch: 'software'", 0, ""},
	{"dispatch empty", "--dispatch=", -EINVAL, "dispatch: ''", 0, ""},
	/* --rx-map */
	{"rx-map one", "--rx-map 0:0@1", 0, "", CK_RXMAP, "0:0@1"},
	{"rx-map repeated", "--rx-map 0:0@1 --rx-map 1:0@1 --rx-map 0:1@2", 0, "", CK_RXMAP,
	 "0:0@1,1:0@1,0:1@2"},
	{"rx-map limits", "--rx-map 65534:1023@1023", 0, "", CK_RXMAP, "65534:1023@1023"},
	{"rx-map no lcore", "--rx-map 0:0", -EINVAL, "rx-map: '0:0' is not PORT:QUEUE@LCORE", 0,
	 ""},
	{"rx-map no queue", "--rx-map 0@1", -EINVAL, "rx-map: '0@1'", 0, ""},
	{"rx-map @ before :", "--rx-map 0@1:2", -EINVAL, "rx-map: '0@1:2'", 0, ""},
	{"rx-map empty lcore", "--rx-map 0:0@", -EINVAL, "rx-map: '0:0@'", 0, ""},
	{"rx-map empty port", "--rx-map :0@1", -EINVAL, "rx-map: ':0@1'", 0, ""},
	{"rx-map queue 1024", "--rx-map 0:1024@1", -EINVAL, "rx-map: '0:1024@1'", 0, ""},
	{"rx-map lcore 1024", "--rx-map 0:0@1024", -EINVAL, "rx-map: '0:0@1024'", 0, ""},
	{"rx-map port 65535", "--rx-map 65535:0@1", -EINVAL, "rx-map: '65535:0@1'", 0, ""},
	{"rx-map letters", "--rx-map p:q@l", -EINVAL, "rx-map: 'p:q@l'", 0, ""},
	/* flags */
	{"flag no-engine", "--no-engine", 0, "", CK_FLAGS, "100"},
	{"flag inbound-only", "--inbound-only", 0, "", CK_FLAGS, "010"},
	{"flag sw-csum", "--sw-csum", 0, "", CK_FLAGS, "001"},
	{"all flags", "--sw-csum --no-engine --inbound-only", 0, "", CK_FLAGS, "111"},
	{"flag with a value", "--no-engine=yes", -EINVAL, "unknown or incomplete option", 0, ""},
	/* harvest-threshold 0 switches harvest blocking off explicitly */
	{"harvest off", "--harvest-threshold 0", 0, "", CK_HARVEST_OFF, "1"},
	{"harvest on", "--harvest-threshold 5", 0, "", CK_HARVEST_OFF, "0"},
	{"harvest off then on", "--harvest-threshold 0 --harvest-threshold 3", 0, "",
	 CK_HARVEST_OFF, "0"},
	/* ring-slots must be a power of two */
	{"ring-slots not a power of two", "--ring-slots 1000", -EINVAL,
	 "ring-slots: 1000 is not a power of two", 0, ""},
	/* unknown and stray arguments */
	{"unknown option", "--bogus 1", -EINVAL, "unknown or incomplete option '--bogus'", 0, ""},
	{"unknown underscore spelling", "--max_flows 100", -EINVAL,
	 "unknown or incomplete option '--max_flows'", 0, ""},
	{"short option", "-x", -EINVAL, "unknown or incomplete option '-x'", 0, ""},
	{"missing value at end", "--shm /x --burst", -EINVAL,
	 "unknown or incomplete option '--burst'", 0, ""},
	{"stray argument", "--shm /x extra", -EINVAL, "unexpected argument 'extra'", 0, ""},
	{"config file absent", "--config /nonexistent/rg-dp.ini", -ENOENT,
	 "/nonexistent/rg-dp.ini: cannot open", 0, ""},
};

ParameterizedTestParameters(dpconf, args)
{
	return cr_make_param_array(struct arg_case, arg_cases,
				   sizeof(arg_cases) / sizeof(arg_cases[0]));
}

ParameterizedTest(const struct arg_case *k, dpconf, args)
{
	struct dpconf c;
	char err[512], got[T_LINE_MAX];
	int rc;

	dpconf_defaults(&c);
	rc = t_parse(&c, k->args, err, sizeof(err));
	cr_assert_eq(rc, k->rc, "%s: '%s' returned %d (%s), expected %d", k->name, k->args, rc,
		     err, k->rc);
	if (rc < 0) {
		cr_expect(strstr(err, k->err), "%s: error '%s' lacks '%s'", k->name, err, k->err);
		return;
	}
	t_describe(&c, k->check, got, sizeof(got));
	cr_expect_str_eq(got, k->want, "%s: got '%s', expected '%s'", k->name, got, k->want);
}

Test(dpconf, shm_path_length)
{
	/* PATH_MAX - 1 characters fit with the NUL; PATH_MAX do not */
	static char arg[PATH_MAX + 16];
	struct dpconf c;
	char err[512];
	size_t n = (size_t)snprintf(arg, sizeof(arg), "--shm=");
	char *argv[] = {(char *)"rcptgate-dp", arg, NULL};

	memset(arg + n, 'a', PATH_MAX - 1);
	arg[n] = '/';
	arg[n + PATH_MAX - 1] = 0;
	dpconf_defaults(&c);
	cr_expect_eq(dpconf_parse_args(&c, 2, argv, err, sizeof(err), stdout), 0, "%s", err);
	cr_expect_eq(strlen(c.shm_path), PATH_MAX - 1);
	arg[n + PATH_MAX - 1] = 'a';
	arg[n + PATH_MAX] = 0;
	dpconf_defaults(&c);
	cr_expect_eq(dpconf_parse_args(&c, 2, argv, err, sizeof(err), stdout), -EINVAL);
	cr_expect(strstr(err, "shm: path too long"), "error '%s'", err);
}

Test(dpconf, smtp_port_classification)
{
	struct dpconf c;
	char err[256];

	dpconf_defaults(&c);
	cr_expect(dpconf_is_smtp_port(&c, 25));
	cr_expect(!dpconf_is_smtp_port(&c, 587));
	cr_assert_eq(t_parse(&c, "--smtp-ports 587,2525", err, sizeof(err)), 0, "%s", err);
	cr_expect(dpconf_is_smtp_port(&c, 587));
	cr_expect(dpconf_is_smtp_port(&c, 2525));
	cr_expect(!dpconf_is_smtp_port(&c, 25), "the list replaces the default");
	cr_expect(!dpconf_is_smtp_port(&c, 0));
}

Test(dpconf, help_lists_every_option)
{
	struct dpconf c;
	char err[256], *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	char *argv[] = {(char *)"rcptgate-dp", (char *)"--help", NULL};
	static const char *const more[] = {"--shm PATH", "--pair OUT:IN", "--smtp-ports LIST",
					   "--rx-map P:Q@L", "--dispatch MODE", "--no-engine",
					   "--inbound-only", "--sw-csum", "\n  --config FILE "};

	cr_assert_not_null(out);
	dpconf_defaults(&c);
	cr_expect_eq(dpconf_parse_args(&c, 2, argv, err, sizeof(err), out), 1);
	fclose(out);
	for (size_t i = 0; i < sizeof(num_cases) / sizeof(num_cases[0]); i++) {
		char opt[sizeof(num_cases[i].name) + 8];
		snprintf(opt, sizeof(opt), "\n  --%.31s ", num_cases[i].name);
		cr_expect(strstr(text, opt), "usage lacks %s", opt);
	}
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		cr_expect(strstr(text, more[i]), "usage lacks %s", more[i]);
	free(text);
}

/* ---- dpconf_validate ---- */

struct val_case {
	char name[64];
	char args[256];
	int rc;
	char err[128];
};

static const struct val_case val_cases[] = {
	{"complete", "--shm /dev/shm/x --pair 0:1", 0, ""},
	{"two pairs", "--shm /dev/shm/x --pair 0:1 --pair 3:2", 0, ""},
	{"shm missing", "--pair 0:1", -EINVAL, "--shm PATH is required"},
	{"nothing given", "", -EINVAL, "--shm PATH is required"},
	{"pair missing", "--shm /dev/shm/x", -EINVAL, "at least one --pair"},
	{"same outside twice", "--shm /x --pair 0:1 --pair 0:2", -EINVAL,
	 "port in two pairs (0:1 and 0:2)"},
	{"same inside twice", "--shm /x --pair 0:1 --pair 2:1", -EINVAL, "port in two pairs"},
	{"inside reused as outside", "--shm /x --pair 0:1 --pair 1:2", -EINVAL,
	 "port in two pairs"},
	{"pair given twice", "--shm /x --pair 0:1 --pair 0:1", -EINVAL, "port in two pairs"},
	{"pair reversed twice", "--shm /x --pair 0:1 --pair 1:0", -EINVAL, "port in two pairs"},
};

ParameterizedTestParameters(dpconf, validate)
{
	return cr_make_param_array(struct val_case, val_cases,
				   sizeof(val_cases) / sizeof(val_cases[0]));
}

ParameterizedTest(const struct val_case *k, dpconf, validate)
{
	struct dpconf c;
	char err[512] = "";
	int rc;

	dpconf_defaults(&c);
	cr_assert_eq(t_parse(&c, k->args, err, sizeof(err)), 0, "%s: parse: %s", k->name, err);
	err[0] = 0;
	rc = dpconf_validate(&c, err, sizeof(err));
	cr_assert_eq(rc, k->rc, "%s: validate returned %d (%s)", k->name, rc, err);
	if (rc < 0)
		cr_expect(strstr(err, k->err), "%s: error '%s' lacks '%s'", k->name, err, k->err);
}

/* ---- the [dataplane] section of an INI file ---- */

struct file_case {
	char name[64];
	char text[512];
	char err[160];		/* "" : accepted; else substring, FILE replaced by "@:" */
};

static const struct file_case bad_files[] = {
	{"unknown key", "[dataplane]\nshm = /x\nno_such_key = 1\n", "@:3: unknown key 'no_such_key' in [dataplane]"},
	{"config key inside the file", "[dataplane]\nconfig = /other.ini\n", "@:2: unknown key 'config'"},
	{"help key inside the file", "[dataplane]\n\nhelp = yes\n", "@:3: unknown key 'help'"},
	{"number out of range", "[dataplane]\nburst = 65\n", "@:2: burst: '65' is not a number in [1, 64]"},
	{"number with a unit", "; tuned\n[dataplane]\nidle_timeout = 5m\n", "@:3: idle-timeout: '5m' is not a number"},
	{"empty number", "[dataplane]\nmax-flows =\n", "@:2: max-flows: '' is not a number"},
	{"bad pair", "[dataplane]\npair = 0:1\npair = 2\n", "@:3: pair: '2' is not OUTSIDE:INSIDE"},
	{"same port pair", "[dataplane]\npair = 4:4\n", "@:2: pair: '4:4'"},
	{"bad smtp ports", "[dataplane]\nsmtp_ports = 25,70000\n", "@:2: smtp-ports: '25,70000'"},
	{"bad dispatch", "[dataplane]\ndispatch = hw\n", "@:2: dispatch: 'hw' is not auto, rss or sw"},
	{"bad rx-map", "[dataplane]\nrx_map = 0:0@1\nrx_map = 0-1@2\n", "@:3: rx-map: '0-1@2'"},
	{"bad flag value", "[dataplane]\nno_engine = maybe\n", "@:2: no-engine: 'maybe' is not yes or no"},
	{"empty flag value", "[dataplane]\nsw_csum =\n", "@:2: sw-csum: '' is not yes or no"},
	{"ring slots not a power of two", "[dataplane]\n\n\nring_slots = 3000\n", "@:4: ring-slots: 3000 is not a power of two"},
	{"syntax error", "[dataplane]\nburst 32\n", "@:2: syntax error"},
	{"unclosed section", "[dataplane\nburst = 32\n", "@:1: syntax error"},
	{"first of two bad lines is named", "[dataplane]\nburst = 0\nmax_flows = 1\n", "@:2: burst:"},
	{"syntax error before a bad key", "[dataplane]\nburst 32\nbogus = 1\n", "@:2: syntax error"},
};

ParameterizedTestParameters(dpconf, bad_file)
{
	return cr_make_param_array(struct file_case, bad_files,
				   sizeof(bad_files) / sizeof(bad_files[0]));
}

static void t_expand(char *out, size_t len, const char *pattern, const char *path)
{
	const char *at = strchr(pattern, '@');
	if (!at) {
		snprintf(out, len, "%s", pattern);
		return;
	}
	snprintf(out, len, "%.*s%s%s", (int)(at - pattern), pattern, path, at + 1);
}

ParameterizedTest(const struct file_case *k, dpconf, bad_file)
{
	struct dpconf c;
	char path[256], err[512] = "", want[512], line[300];
	int rc;

	t_file(path, sizeof(path), "bad", k->text);
	t_expand(want, sizeof(want), k->err, path);
	/* read directly ... */
	dpconf_defaults(&c);
	rc = dpconf_load_file(&c, path, err, sizeof(err));
	cr_expect_eq(rc, -EINVAL, "%s: load returned %d (%s)", k->name, rc, err);
	cr_expect(strstr(err, want), "%s: error '%s' lacks '%s'", k->name, err, want);
	/* ... and through --config */
	dpconf_defaults(&c);
	snprintf(line, sizeof(line), "--shm /x --config %s --pair 0:1", path);
	rc = t_parse(&c, line, err, sizeof(err));
	cr_expect_eq(rc, -EINVAL, "%s: --config returned %d (%s)", k->name, rc, err);
	cr_expect(strstr(err, want), "%s: --config error '%s' lacks '%s'", k->name, err, want);
	unlink(path);
}

Test(dpconf, file_every_key)
{
	static const char text[] =
		"; every key of [dataplane], dashes and underscores mixed\n"
		"[global]\n"
		"shm_path = /dev/shm/for-rcptgated\n"
		"something_rcptgated_knows = 1\n"
		"\n"
		"[dataplane]\n"
		"shm = /dev/shm/rg-file\n"
		"pair = 0:1\n"
		"pair = 3:2\n"
		"smtp_ports = 25, 587\n"
		"rx-map = 0:0@1\n"
		"rx_map = 1:0@1\n"
		"dispatch = sw\n"
		"burst = 16\n"
		"rx_desc = 512\n"
		"tx-desc = 256\n"
		"mbufs = 8191\n"
		"ring_slots = 1024\n"
		"max_flows = 4096\n"
		"idle_timeout = 60\n"
		"handshake_timeout_ms = 2000\n"
		"busy_blocks = 128\n"
		"seg_blocks = 256\n"
		"line_max = 1024\n"
		"ooo_max = 8\n"
		"cmd_max = 32\n"
		"rcpt_max = 500\n"
		"inject_max = 4096\n"
		"retx_initial_ms = 50\n"
		"retx_max = 5\n"
		"harvest_threshold = 0\n"
		"harvest_window_ms = 60000\n"
		"harvest_slots = 1024\n"
		"shm_retry = 2\n"
		"no_engine = yes\n"
		"inbound-only = true\n"
		"sw_csum = 1\n"
		"\n"
		"[domain example.test]\n"
		"mode = callout\n";
	struct dpconf c;
	char path[256], err[512] = "";

	t_file(path, sizeof(path), "all", text);
	dpconf_defaults(&c);
	cr_assert_eq(dpconf_load_file(&c, path, err, sizeof(err)), 0, "%s", err);
	unlink(path);
	cr_expect_str_eq(c.shm_path, "/dev/shm/rg-file");
	cr_expect_eq(c.n_pairs, 2);
	cr_expect_eq(c.pairs[1].outside, 3);
	cr_expect_eq(c.pairs[1].inside, 2);
	/* inih keeps the space after the comma: " 587" must still parse */
	cr_expect_eq(c.n_smtp_ports, 2);
	cr_expect_eq(c.smtp_ports[1], 587);
	cr_expect_eq(c.n_rxmap, 2);
	cr_expect_eq(c.rxmap[1].port, 1);
	cr_expect_eq(c.rxmap[1].lcore, 1);
	cr_expect_eq(c.dispatch, DPCONF_DISPATCH_SW);
	cr_expect_eq(c.burst, 16);
	cr_expect_eq(c.rx_desc, 512);
	cr_expect_eq(c.tx_desc, 256);
	cr_expect_eq(c.mbufs, 8191);
	cr_expect_eq(c.ring_slots, 1024);
	cr_expect_eq(c.max_flows, 4096);
	cr_expect_eq(c.idle_s, 60);
	cr_expect_eq(c.eng.handshake_ms, 2000);
	cr_expect_eq(c.eng.busy_blocks, 128);
	cr_expect_eq(c.eng.seg_blocks, 256);
	cr_expect_eq(c.eng.line_max, 1024);
	cr_expect_eq(c.eng.ooo_max, 8);
	cr_expect_eq(c.eng.cmd_max, 32);
	cr_expect_eq(c.eng.rcpt_max, 500);
	cr_expect_eq(c.eng.inject_max, 4096);
	cr_expect_eq(c.eng.retx_initial_ms, 50);
	cr_expect_eq(c.eng.retx_max, 5);
	cr_expect_eq(c.eng.harvest_threshold, 0);
	cr_expect_eq(c.eng.harvest_off, 1);
	cr_expect_eq(c.eng.harvest_window_ms, 60000);
	cr_expect_eq(c.eng.harvest_slots, 1024);
	cr_expect_eq(c.shm_retry_s, 2);
	cr_expect_eq(c.no_engine, 1);
	cr_expect_eq(c.inbound_only, 1);
	cr_expect_eq(c.sw_csum, 1);
	cr_expect_eq(dpconf_validate(&c, err, sizeof(err)), 0, "%s", err);
}

Test(dpconf, file_flags_off)
{
	static const char text[] = "[dataplane]\nno_engine = no\ninbound_only = false\nsw_csum = 0\n";
	struct dpconf c;
	char path[256], err[512] = "";

	t_file(path, sizeof(path), "off", text);
	dpconf_defaults(&c);
	c.no_engine = c.inbound_only = c.sw_csum = 1;
	cr_assert_eq(dpconf_load_file(&c, path, err, sizeof(err)), 0, "%s", err);
	unlink(path);
	cr_expect_eq(c.no_engine, 0);
	cr_expect_eq(c.inbound_only, 0);
	cr_expect_eq(c.sw_csum, 0);
}

Test(dpconf, file_other_sections_only)
{
	/* a file for rcptgated alone: nothing for the data plane, no error */
	static const char text[] = "[global]\nburst = banana\n[domain a.test]\nmode = list\n";
	struct dpconf c, d;
	char path[256], err[512] = "";

	t_file(path, sizeof(path), "other", text);
	dpconf_defaults(&c);
	dpconf_defaults(&d);
	cr_expect_eq(dpconf_load_file(&c, path, err, sizeof(err)), 0, "%s", err);
	unlink(path);
	cr_expect_eq(memcmp(&c, &d, sizeof(c)), 0, "settings changed by other sections");
}

/* ---- the order of --config and the options around it ---- */

struct order_case {
	char name[64];
	char args[256];		/* "@" stands for the file's path */
	unsigned burst, max_flows;
	char pairs[64];
	char smtp[64];
};

static const struct order_case order_cases[] = {
	{"file alone", "--config @", 8, 1000, "0:1", "587"},
	{"option after the file overrides it", "--config @ --burst 16", 16, 1000, "0:1", "587"},
	{"option before the file is overridden", "--burst 16 --config @", 8, 1000, "0:1", "587"},
	{"both sides", "--max-flows 50 --config @ --burst 4", 4, 1000, "0:1", "587"},
	{"list after the file replaces it", "--config @ --smtp-ports 25", 8, 1000, "0:1", "25"},
	{"pairs add to the file's", "--config @ --pair 2:3", 8, 1000, "0:1,2:3", "587"},
	{"pairs before and after", "--pair 4:5 --config @ --pair 2:3", 8, 1000, "4:5,0:1,2:3",
	 "587"},
	{"file given twice", "--config @ --burst 2 --config @", 8, 1000, "0:1,0:1", "587"},
};

ParameterizedTestParameters(dpconf, order)
{
	return cr_make_param_array(struct order_case, order_cases,
				   sizeof(order_cases) / sizeof(order_cases[0]));
}

ParameterizedTest(const struct order_case *k, dpconf, order)
{
	static const char text[] =
		"[dataplane]\nburst = 8\nmax_flows = 1000\npair = 0:1\nsmtp_ports = 587\n";
	struct dpconf c;
	char path[256], err[512] = "", line[1024], got[256];
	size_t n = 0;

	t_file(path, sizeof(path), "order", text);
	for (const char *p = k->args; *p && n + 1 < sizeof(line); p++) {
		if (*p == '@')
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%s", path);
		else
			line[n++] = *p;
	}
	line[n] = 0;
	dpconf_defaults(&c);
	cr_assert_eq(t_parse(&c, line, err, sizeof(err)), 0, "%s: %s", k->name, err);
	unlink(path);
	cr_expect_eq(c.burst, k->burst, "%s: burst %u, expected %u", k->name, c.burst, k->burst);
	cr_expect_eq(c.max_flows, k->max_flows, "%s: max-flows %u, expected %u", k->name,
		     c.max_flows, k->max_flows);
	t_describe(&c, CK_PAIRS, got, sizeof(got));
	cr_expect_str_eq(got, k->pairs, "%s: pairs '%s', expected '%s'", k->name, got, k->pairs);
	t_describe(&c, CK_SMTP, got, sizeof(got));
	cr_expect_str_eq(got, k->smtp, "%s: smtp ports '%s', expected '%s'", k->name, got,
			 k->smtp);
}

Test(dpconf, file_shm_satisfies_validate)
{
	/* --shm may come from the file alone; without it validate still refuses */
	struct dpconf c;
	char path[256], err[512] = "", line[400];

	t_file(path, sizeof(path), "shm", "[dataplane]\nshm = /dev/shm/from-file\npair = 0:1\n");
	dpconf_defaults(&c);
	snprintf(line, sizeof(line), "--config %s", path);
	cr_assert_eq(t_parse(&c, line, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(dpconf_validate(&c, err, sizeof(err)), 0, "%s", err);
	unlink(path);

	t_file(path, sizeof(path), "noshm", "[dataplane]\npair = 0:1\n");
	snprintf(line, sizeof(line), "--config %s", path);
	dpconf_defaults(&c);
	cr_assert_eq(t_parse(&c, line, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(dpconf_validate(&c, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "--shm PATH is required"), "error '%s'", err);
	unlink(path);
}
