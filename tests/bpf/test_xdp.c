/*
 * test_xdp.c — the XDP program's map layer (bpf/rg_maps.c) and rcptgated's
 * xdp module (control/xdp.c): prefixes, attach/adopt/detach with pinned maps, configuration round trip,
 * blocklist add/extend/delete with hit counts (frames run through the
 * attached program with BPF_PROG_TEST_RUN), counters; and rcptgated's xdp
 * module (harvest blocks with backoff, allowlist, expiry, replay into a
 * replaced program) with the core's loop and hook stubbed.  Needs root.
 *
 * Thread: each test runs in its own criterion process and network namespace;
 * pins go under a bpffs directory of its own, removed at the end.
 */
#include <errno.h>
#include <linux/if_link.h>
#include <stdarg.h>
#include <linux/magic.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "log.h"
#include "rg_xdp.skel.h"
#include "xdp.h"
#include "xdp_test.h"

/* ---------------------------------------------------------------------- */
/* prefixes                                                                */

struct pcase {
	char in[64];
	int rc;
	char out[64];	/* canonical form when rc == 0 */
};

ParameterizedTestParameters(xdp, prefix_parse)
{
	static struct pcase cases[] = {
		{"198.18.0.0/24", 0, "198.18.0.0/24"},
		{"198.18.3.77/24", 0, "198.18.3.0/24"},
		{"198.18.3.77", 0, "198.18.3.77/32"},
		{"198.18.3.77/0", 0, "0.0.0.0/0"},
		{"198.18.255.255/17", 0, "198.18.128.0/17"},
		{"2001:2::/48", 0, "2001:2::/48"},
		{"2001:2:0:1:ffff::1/64", 0, "2001:2:0:1::/64"},
		{"2001:2::5", 0, "2001:2::5/128"},
		{"2001:2:abcd::/33", 0, "2001:2:8000::/33"},
		{"2001:2:7bcd::/33", 0, "2001:2::/33"},
		{"198.18.0.0/33", -EINVAL, ""},
		{"2001:2::/129", -EINVAL, ""},
		{"198.18.0.0/", -EINVAL, ""},
		{"198.18.0.0/-1", -EINVAL, ""},
		{"198.18.0.0/24x", -EINVAL, ""},
		{"198.18.0/24", -EINVAL, ""},
		{"example.test", -EINVAL, ""},
		{"", -EINVAL, ""},
		{"/24", -EINVAL, ""},
	};
	return cr_make_param_array(struct pcase, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct pcase *c, xdp, prefix_parse)
{
	struct xdp_prefix p;
	char buf[XDP_PREFIX_STRLEN];
	int rc = xdp_prefix_parse(c->in, &p);

	cr_assert_eq(rc, c->rc, "'%s': rc %d, expected %d", c->in, rc, c->rc);
	if (rc == 0) {
		xdp_prefix_format(&p, buf, sizeof(buf));
		cr_expect_str_eq(buf, c->out, "'%s' -> '%s', expected '%s'", c->in, buf, c->out);
	}
}

struct ocase {
	char a[64], b[64];
	bool overlaps;
};

ParameterizedTestParameters(xdp, prefix_overlaps)
{
	static struct ocase cases[] = {
		{"198.18.0.0/16", "198.18.5.0/24", true},
		{"198.18.5.0/24", "198.18.0.0/16", true},
		{"198.18.5.0/24", "198.18.6.0/24", false},
		{"198.18.5.7", "198.18.5.0/24", true},
		{"198.18.5.7", "198.18.5.8", false},
		{"2001:2::/48", "2001:2:0:9::/64", true},
		{"2001:2::/48", "2001:3::/48", false},
		{"198.18.0.0/15", "2001:2::/48", false},
		{"0.0.0.0/0", "198.18.1.1", true},
	};
	return cr_make_param_array(struct ocase, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct ocase *c, xdp, prefix_overlaps)
{
	struct xdp_prefix a, b;

	cr_assert_eq(xdp_prefix_parse(c->a, &a), 0);
	cr_assert_eq(xdp_prefix_parse(c->b, &b), 0);
	cr_expect_eq(xdp_prefix_overlaps(&a, &b), c->overlaps, "%s vs %s", c->a, c->b);
}

/* ---------------------------------------------------------------------- */
/* ports                                                                   */

static char pin_root[128];

static void setup(void)
{
	struct statfs sfs;

	xt_netns();
	if (statfs("/sys/fs/bpf", &sfs) || sfs.f_type != BPF_FS_MAGIC)
		cr_assert_eq(mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL), 0, "mount bpffs: %s",
			     strerror(errno));
	snprintf(pin_root, sizeof(pin_root), "/sys/fs/bpf/rgtest-%d", (int)getpid());
}

static void teardown(void)
{
	xdp_port_detach(pin_root, XT_IN, 0, NULL, 0);
	xdp_port_detach(pin_root, XT_PEER, 0, NULL, 0);
	rmdir(pin_root);
}

static int prog_fd_on(const char *ifname)
{
	uint32_t id = 0;

	cr_assert_eq(bpf_xdp_query_id((int)if_nametoindex(ifname), 0, &id), 0);
	cr_assert_neq(id, 0, "no program on %s", ifname);
	return bpf_prog_get_fd_by_id(id);
}

static uint32_t run_from(int prog_fd, const char *src, uint16_t dport, bool syn)
{
	struct xt_frame f = {.sport = 40000, .dport = dport, .syn = syn, .ack = !syn};
	uint8_t frame[XT_FRAME_MAX];

	snprintf(f.src, sizeof(f.src), "%s", src);
	f.family = strchr(src, ':') ? 6 : 4;
	return xt_run(prog_fd, frame, xt_build(&f, frame), if_nametoindex(XT_IN));
}

static bool pinned(const char *ifname, const char *map)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s/%s", pin_root, ifname, map);
	return stat(path, &st) == 0;
}

Test(xdp, attach_configure_detach, .init = setup, .fini = teardown, .timeout = 30)
{
	struct xdp_port_conf c = {.peer = XT_PEER, .smtp_ports = {25, 587}, .nsmtp_ports = 2};
	struct xdp_port_conf back;
	struct xdp_port p, q;
	char err[256] = "";
	unsigned i;
	int rc;

	rc = xdp_port_attach(pin_root, XT_IN, &c, XDP_ATTACH_SKB, &p, err, sizeof(err));
	cr_assert_eq(rc, 0, "attach: %s", err);
	for (i = 0; i < XDP_M__COUNT; i++)
		cr_expect(pinned(XT_IN, xdp_map_names[i]), "%s not pinned", xdp_map_names[i]);
	cr_expect_eq(xdp_port_live(&p), 1);

	/* a second attach without REPLACE refuses */
	rc = xdp_port_attach(pin_root, XT_IN, &c, XDP_ATTACH_SKB, &q, err, sizeof(err));
	cr_expect_neq(rc, 0, "second attach succeeded");

	/* configuration round trip through the pinned maps */
	cr_assert_eq(xdp_port_open(pin_root, XT_IN, &q, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(xdp_port_get_conf(&q, &back), 0);
	cr_expect_str_eq(back.peer, XT_PEER);
	cr_expect_eq(back.nsmtp_ports, 2);
	cr_expect_eq(back.smtp_ports[0], 25);
	cr_expect_eq(back.smtp_ports[1], 587);
	cr_expect_eq(back.other_pass, false);
	xdp_port_close(&q);

	/* the attached program steers by it: 587 is SMTP now, no socket → bypass */
	int fd = prog_fd_on(XT_IN);
	uint64_t ctr[XDP_CTR__COUNT];

	cr_expect_eq(run_from(fd, "198.18.1.2", 587, true), XDP_REDIRECT);
	cr_assert_eq(xdp_port_counters(&p, ctr), 0);
	cr_expect_eq(ctr[XDP_CTR_SMTP_BYPASS], 1);
	cr_expect_eq(ctr[XDP_CTR_RX], 1, "rx %lu: stray frames reached the port",
		     (unsigned long)ctr[XDP_CTR_RX]);

	c.other_pass = true;
	c.peer[0] = '\0';
	cr_assert_eq(xdp_port_configure(&p, &c, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(run_from(fd, "198.18.1.2", 80, true), XDP_PASS);
	/* no peer, no socket */
	cr_expect_eq(run_from(fd, "198.18.1.2", 587, true), XDP_PASS);
	cr_assert_eq(xdp_port_counters(&p, ctr), 0);
	cr_expect_eq(ctr[XDP_CTR_OTHER_PASS], 1);
	cr_expect_eq(ctr[XDP_CTR_SMTP_BYPASS_PASS], 1);
	cr_expect_eq(ctr[XDP_CTR_RX], 3);
	close(fd);
	xdp_port_close(&p);

	cr_assert_eq(xdp_port_detach(pin_root, XT_IN, 0, err, sizeof(err)), 0, "%s", err);
	uint32_t id = 1;
	cr_expect_eq(bpf_xdp_query_id((int)if_nametoindex(XT_IN), 0, &id), 0);
	cr_expect_eq(id, 0, "program still attached");
	cr_expect(!pinned(XT_IN, XDP_MAP_BLOCK4), "pins left behind");
}

struct tally {
	unsigned n;
	uint64_t hits;
};

static int tally_entry(const struct xdp_block_entry *be, void *arg)
{
	struct tally *t = arg;

	t->n++;
	t->hits += be->hits;
	return 0;
}

Test(xdp, blocklist_hits, .init = setup, .fini = teardown, .timeout = 30)
{
	struct xdp_port_conf c = {.peer = XT_PEER};
	struct xdp_block_entry e;
	struct xdp_prefix p24, p6, host;
	struct xdp_port port;
	char err[256] = "";
	int fd, i;

	cr_assert_eq(xdp_port_attach(pin_root, XT_IN, &c, XDP_ATTACH_SKB, &port, err,
				     sizeof(err)), 0, "attach: %s", err);
	fd = prog_fd_on(XT_IN);
	cr_assert_eq(xdp_prefix_parse("198.18.9.0/24", &p24), 0);
	cr_assert_eq(xdp_prefix_parse("2001:2:0:9::/64", &p6), 0);
	cr_assert_eq(xdp_prefix_parse("198.18.9.77", &host), 0);

	cr_expect_eq(run_from(fd, "198.18.9.77", 25, true), XDP_REDIRECT, "blocked before put");
	cr_assert_eq(xdp_port_block_put(&port, &p24, 0, xdp_wall_ns()), 0);
	cr_assert_eq(xdp_port_block_put(&port, &p6, xdp_mono_ns() + 60000000000ull,
					 xdp_wall_ns()), 0);
	for (i = 0; i < 3; i++)
		cr_expect_eq(run_from(fd, "198.18.9.77", 25, true), XDP_DROP);
	cr_expect_eq(run_from(fd, "198.18.9.77", 25, false), XDP_REDIRECT, "ACK dropped");
	cr_expect_eq(run_from(fd, "2001:2:0:9::1", 25, true), XDP_DROP);
	cr_expect_eq(run_from(fd, "2001:2:0:10::1", 25, true), XDP_REDIRECT);

	cr_assert_eq(xdp_port_block_get(&port, &p24, &e), 0);
	cr_expect_eq(e.hits, 3);
	cr_assert_eq(xdp_port_block_get(&port, &p6, &e), 0);
	cr_expect_eq(e.hits, 1);
	cr_expect_neq(e.expires_ns, 0);
	/* an exact lookup: the /32 inside the /24 is not an entry */
	cr_expect_eq(xdp_port_block_get(&port, &host, &e), -ENOENT);

	/* extending keeps the count */
	cr_assert_eq(xdp_port_block_put(&port, &p24, xdp_mono_ns() + 3600000000000ull,
					 xdp_wall_ns()), 0);
	cr_assert_eq(xdp_port_block_get(&port, &p24, &e), 0);
	cr_expect_eq(e.hits, 3);
	cr_expect_neq(e.expires_ns, 0);

	/* listing */
	struct tally sum = {0, 0};

	cr_assert_eq(xdp_port_block_foreach(&port, tally_entry, &sum), 0);
	cr_expect_eq(sum.n, 2);
	cr_expect_eq(sum.hits, 4);

	/* an entry past its expiry no longer blocks, even before it is swept */
	cr_assert_eq(xdp_port_block_put(&port, &p24, xdp_mono_ns() - 1, xdp_wall_ns()), 0);
	cr_expect_eq(run_from(fd, "198.18.9.77", 25, true), XDP_REDIRECT);

	cr_expect_eq(xdp_port_block_del(&port, &p24), 0);
	cr_expect_eq(xdp_port_block_del(&port, &p24), -ENOENT);
	cr_expect_eq(xdp_port_block_get(&port, &p24, &e), -ENOENT);
	cr_expect_eq(run_from(fd, "198.18.9.77", 25, true), XDP_REDIRECT);
	close(fd);
	xdp_port_close(&port);
}

/* A program loaded by someone else (as DPDK's xdp_prog= does) replaces ours:
 * adopting it carries the peer, SMTP ports and blocklist over. */
Test(xdp, adopt_carries_state_over, .init = setup, .fini = teardown, .timeout = 30)
{
	struct xdp_port_conf c = {.peer = XT_PEER, .smtp_ports = {2525}, .nsmtp_ports = 1};
	struct xdp_port_conf back;
	struct xdp_block_entry e;
	struct xdp_port old, cur;
	struct xdp_prefix pf;
	struct rg_xdp *skel;
	char err[256] = "";
	int fd;

	cr_assert_eq(xdp_port_attach(pin_root, XT_IN, &c, XDP_ATTACH_SKB, &old, err,
				     sizeof(err)), 0, "attach: %s", err);
	cr_assert_eq(xdp_prefix_parse("198.18.9.0/24", &pf), 0);
	cr_assert_eq(xdp_port_block_put(&old, &pf, 0, xdp_wall_ns()), 0);
	fd = prog_fd_on(XT_IN);
	cr_expect_eq(run_from(fd, "198.18.9.1", 2525, true), XDP_DROP);
	close(fd);

	/* another loader replaces the program: new instance, empty maps */
	skel = rg_xdp__open_and_load();
	cr_assert(skel);
	cr_assert_eq(bpf_xdp_attach((int)if_nametoindex(XT_IN),
				    bpf_program__fd(skel->progs.rg_xdp), XDP_FLAGS_SKB_MODE,
				    NULL), 0);
	rg_xdp__destroy(skel);	/* the attachment keeps it alive */
	cr_expect_eq(xdp_port_live(&old), 0, "old maps still reported live");

	cr_assert_eq(xdp_port_adopt(pin_root, XT_IN, NULL, &cur, err, sizeof(err)), 0,
		     "adopt: %s", err);
	cr_expect_eq(xdp_port_live(&cur), 1);
	cr_expect_neq(cur.map_id[XDP_M_BLOCK4], old.map_id[XDP_M_BLOCK4]);
	cr_assert_eq(xdp_port_get_conf(&cur, &back), 0);
	cr_expect_str_eq(back.peer, XT_PEER);
	cr_expect_eq(back.nsmtp_ports, 1);
	cr_expect_eq(back.smtp_ports[0], 2525);
	cr_expect_eq(xdp_port_block_get(&cur, &pf, &e), 0, "block not carried over");
	cr_expect_eq(e.hits, 1, "hit count not carried over");

	fd = prog_fd_on(XT_IN);
	cr_expect_eq(run_from(fd, "198.18.9.1", 2525, true), XDP_DROP);
	cr_expect_eq(run_from(fd, "198.18.8.1", 2525, true), XDP_REDIRECT);
	close(fd);

	/* the pins now name the new maps */
	struct xdp_port reopened;

	cr_assert_eq(xdp_port_open(pin_root, XT_IN, &reopened, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(reopened.map_id[XDP_M_BLOCK4], cur.map_id[XDP_M_BLOCK4]);
	xdp_port_close(&reopened);
	xdp_port_close(&cur);
	xdp_port_close(&old);
}

/* A program that is not rg_xdp is neither adopted nor detached. */
Test(xdp, foreign_program_left_alone, .init = setup, .fini = teardown, .timeout = 30)
{
	struct bpf_insn insns[] = {
		{.code = 0xb7, .dst_reg = 0, .imm = XDP_PASS},	/* r0 = XDP_PASS */
		{.code = 0x95},					/* exit */
	};
	struct xdp_port p;
	char err[256] = "";
	uint32_t id = 0;
	int fd;

	fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "other_xdp", "GPL", insns, 2, NULL);
	cr_assert(fd >= 0, "load: %s", strerror(errno));
	cr_assert_eq(bpf_xdp_attach((int)if_nametoindex(XT_IN), fd, XDP_FLAGS_SKB_MODE, NULL), 0);
	cr_expect_eq(xdp_port_adopt(pin_root, XT_IN, NULL, &p, err, sizeof(err)), -EMEDIUMTYPE,
		     "%s", err);
	cr_expect_eq(xdp_port_detach(pin_root, XT_IN, 0, err, sizeof(err)), -EMEDIUMTYPE, "%s",
		     err);
	cr_assert_eq(bpf_xdp_query_id((int)if_nametoindex(XT_IN), 0, &id), 0);
	cr_expect_neq(id, 0, "the foreign program was detached");
	cr_expect_eq(xdp_port_adopt(pin_root, XT_PEER, NULL, &p, err, sizeof(err)), -ENOENT);
	close(fd);
}

/* ---------------------------------------------------------------------- */
/* rcptgated's xdp module, with the core's loop and hook replaced by stubs  */

static daemon_timer_cb stub_tick;
static core_harvest_fn stub_hook;

uint64_t daemon_timer_add(uint64_t delay_ms, uint64_t interval_ms, daemon_timer_cb cb,
			  void *arg)
{
	(void)delay_ms;
	(void)interval_ms;
	(void)arg;
	stub_tick = cb;
	return 1;
}

void daemon_timer_cancel(uint64_t id)
{
	(void)id;
	stub_tick = NULL;
}

void core_set_harvest_hook(core_harvest_fn fn, void *arg)
{
	(void)arg;
	stub_hook = fn;
}

static char last_log[512];

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	(void)prio;
	va_start(ap, fmt);
	vsnprintf(last_log, sizeof(last_log), fmt, ap);
	va_end(ap);
}

bool log_kind(enum log_kind k, int prio, const char *fmt, ...)
{
	va_list ap;

	(void)k;
	(void)prio;
	va_start(ap, fmt);
	vsnprintf(last_log, sizeof(last_log), fmt, ap);
	va_end(ap);
	return true;
}

static void harvest(const char *ip, unsigned prefix_len)
{
	struct msg_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = MSG_EV_HARVEST;
	ev.code = 421;
	ev.count = 50;
	ev.prefix_len = (uint8_t)prefix_len;
	if (inet_pton(AF_INET, ip, ev.client_ip) == 1) {
		ev.family = 4;
	} else {
		cr_assert_eq(inet_pton(AF_INET6, ip, ev.client_ip), 1);
		ev.family = 6;
	}
	cr_assert(stub_hook, "no harvest hook set");
	stub_hook(&ev, NULL);
}

static struct config mod_cfg;

static void mod_setup(void)
{
	char allow[160];
	FILE *f;

	setup();
	snprintf(allow, sizeof(allow), "/tmp/rgtest-allow-%d", (int)getpid());
	f = fopen(allow, "w");
	cr_assert(f);
	fprintf(f, "# never blocked\n198.18.50.0/24\n\n2001:2:50::/48  # partner\n");
	fclose(f);
	memset(&mod_cfg, 0, sizeof(mod_cfg));
	snprintf(mod_cfg.xdp_pin_dir, sizeof(mod_cfg.xdp_pin_dir), "%s", pin_root);
	snprintf(mod_cfg.block_allow, sizeof(mod_cfg.block_allow), "%s", allow);
	mod_cfg.block_ttl = 60;
	mod_cfg.block_ttl_max = 240;
}

static void mod_teardown(void)
{
	char allow[160];

	xdp_stop();
	snprintf(allow, sizeof(allow), "/tmp/rgtest-allow-%d", (int)getpid());
	unlink(allow);
	teardown();
}

struct found {
	char prefix[XDP_PREFIX_STRLEN];
	struct xdp_block_info info;
	bool seen;
};

static int find_block(const struct xdp_block_info *b, void *arg)
{
	struct found *f = arg;

	if (strcmp(b->prefix, f->prefix) == 0) {
		f->info = *b;
		f->seen = true;
	}
	return 0;
}

static struct found lookup_block(const char *prefix)
{
	struct found f = {.seen = false};

	snprintf(f.prefix, sizeof(f.prefix), "%s", prefix);
	cr_assert_eq(xdp_blocks_foreach(find_block, &f), 0);
	return f;
}

struct statval {
	const char *name;
	uint64_t value;
	bool seen;
};

static void find_stat(const char *group, const char *name, uint64_t value, const char *help,
		      void *arg)
{
	struct statval *s = arg;

	(void)help;
	cr_expect_str_eq(group, "xdp");
	if (strcmp(name, s->name) == 0) {
		s->value = value;
		s->seen = true;
	}
}

static uint64_t mod_stat(const char *name)
{
	struct statval s = {.name = name};

	xdp_stats_foreach(find_stat, &s);
	cr_assert(s.seen, "no counter %s", name);
	return s.value;
}

Test(xdp_module, harvest_backoff_allowlist, .init = mod_setup, .fini = mod_teardown,
     .timeout = 30)
{
	struct xdp_port_conf c = {.peer = XT_PEER};
	struct xdp_port port;
	struct found f;
	char err[256] = "";
	uint64_t now;
	int fd;

	cr_assert_eq(xdp_port_attach(pin_root, XT_IN, &c, XDP_ATTACH_SKB, &port, err,
				     sizeof(err)), 0, "attach: %s", err);
	cr_assert_eq(xdp_start(&mod_cfg, err, sizeof(err)), 0, "start: %s", err);
	cr_assert(stub_tick);
	stub_tick(NULL);
	cr_expect_eq(mod_stat("ports"), 1);
	cr_expect_eq(mod_stat("ports_live"), 1);

	/* first offence: block_ttl; then doubling up to block_ttl_max */
	static const unsigned ttl[] = {60, 120, 240, 240};
	for (unsigned i = 0; i < 4; i++) {
		harvest("198.18.9.77", 24);
		now = (uint64_t)time(NULL);
		f = lookup_block("198.18.9.0/24");
		cr_assert(f.seen, "harvest %u: not blocked", i + 1);
		cr_expect_eq(f.info.offences, i + 1);
		cr_expect(f.info.expires_s >= now + ttl[i] - 2 && f.info.expires_s <= now + ttl[i],
			  "offence %u: expires in %ld s, expected %u", i + 1,
			  (long)(f.info.expires_s - now), ttl[i]);
		cr_expect_eq(f.info.ports, 1);
		cr_expect_not(f.info.manual);
	}
	cr_expect(strstr(last_log, "harvest from 198.18.9.77 (50 invalid recipients): blocked "
			 "198.18.9.0/24 for 240s (offence 4)") ||
		  strstr(last_log, "for 239s (offence 4)"), "log: %s", last_log);
	fd = prog_fd_on(XT_IN);
	cr_expect_eq(run_from(fd, "198.18.9.200", 25, true), XDP_DROP);
	cr_expect_eq(run_from(fd, "198.18.9.201", 25, true), XDP_DROP);
	f = lookup_block("198.18.9.0/24");
	cr_expect_eq(f.info.hits, 2);

	/* allowlisted sources are never blocked, by harvest or by hand */
	harvest("198.18.50.9", 32);
	harvest("2001:2:50::9", 64);
	cr_expect_not(lookup_block("198.18.50.9/32").seen);
	cr_expect_not(lookup_block("2001:2:50::/64").seen);
	cr_expect_eq(mod_stat("harvest_allowlisted"), 2);
	cr_expect_eq(xdp_block("198.18.0.0/16", 0, err, sizeof(err)), -EPERM);
	cr_expect_eq(run_from(fd, "198.18.50.9", 25, true), XDP_REDIRECT);

	/* IPv6 /64 harvest */
	harvest("2001:2:0:7::1", 64);
	cr_expect(lookup_block("2001:2:0:7::/64").seen);
	cr_expect_eq(run_from(fd, "2001:2:0:7::99", 25, true), XDP_DROP);
	cr_expect_eq(mod_stat("harvest_events"), 7);

	/* manual block and unblock */
	cr_expect_eq(xdp_block("198.18.100.0/24", 0, err, sizeof(err)), 0, "%s", err);
	f = lookup_block("198.18.100.0/24");
	cr_expect(f.seen && f.info.manual && f.info.expires_s == 0);
	cr_expect_eq(run_from(fd, "198.18.100.1", 25, true), XDP_DROP);
	cr_expect_eq(xdp_unblock("198.18.100.0/24", err, sizeof(err)), 0, "%s", err);
	cr_expect_not(lookup_block("198.18.100.0/24").seen);
	cr_expect_eq(xdp_unblock("198.18.100.0/24", err, sizeof(err)), -ENOENT);
	cr_expect_eq(xdp_block("not-a-prefix", 0, err, sizeof(err)), -EINVAL);
	cr_expect_eq(run_from(fd, "198.18.100.1", 25, true), XDP_REDIRECT);
	close(fd);
	xdp_port_close(&port);
}

/* Blocks leave the maps at expiry; a replaced program gets the blocklist again. */
Test(xdp_module, expiry_and_replay, .init = mod_setup, .fini = mod_teardown, .timeout = 30)
{
	struct xdp_port_conf c = {.peer = XT_PEER};
	struct xdp_port port;
	struct rg_xdp *skel;
	char err[256] = "";
	int fd;

	cr_assert_eq(xdp_port_attach(pin_root, XT_IN, &c, XDP_ATTACH_SKB, &port, err,
				     sizeof(err)), 0, "attach: %s", err);
	xdp_port_close(&port);
	cr_assert_eq(xdp_start(&mod_cfg, err, sizeof(err)), 0, "start: %s", err);
	stub_tick(NULL);
	cr_assert_eq(xdp_block("198.18.7.0/24", 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(xdp_block("198.18.8.0/24", 0, err, sizeof(err)), 0, "%s", err);
	cr_expect(lookup_block("198.18.7.0/24").seen);

	/* the data plane restarts: a fresh program instance on the port */
	skel = rg_xdp__open_and_load();
	cr_assert(skel);
	cr_assert_eq(bpf_xdp_attach((int)if_nametoindex(XT_IN),
				    bpf_program__fd(skel->progs.rg_xdp),
				    XDP_FLAGS_SKB_MODE, NULL), 0);
	rg_xdp__destroy(skel);
	stub_tick(NULL);
	cr_expect_eq(mod_stat("port_replays"), 1);
	cr_expect_eq(mod_stat("ports_live"), 1);
	fd = prog_fd_on(XT_IN);
	cr_expect_eq(run_from(fd, "198.18.8.1", 25, true), XDP_DROP, "not carried over");
	close(fd);

	/* detached with its pins and attached afresh: only rcptgated knows the blocks */
	cr_assert_eq(xdp_port_detach(pin_root, XT_IN, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(xdp_port_attach(pin_root, XT_IN, &c, XDP_ATTACH_SKB, &port, err,
				     sizeof(err)), 0, "attach: %s", err);
	xdp_port_close(&port);
	stub_tick(NULL);
	cr_expect_eq(mod_stat("port_replays"), 2);
	fd = prog_fd_on(XT_IN);
	cr_expect_eq(run_from(fd, "198.18.8.1", 25, true), XDP_DROP, "not replayed");

	usleep(2100 * 1000);
	stub_tick(NULL);
	cr_expect_not(lookup_block("198.18.7.0/24").seen, "expired block still listed");
	cr_expect(lookup_block("198.18.8.0/24").seen);
	cr_expect_eq(mod_stat("blocks_expired"), 1);
	cr_expect_eq(mod_stat("blocks_active"), 1);
	cr_expect_eq(run_from(fd, "198.18.7.1", 25, true), XDP_REDIRECT);
	close(fd);
}
