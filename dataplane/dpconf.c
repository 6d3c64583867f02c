/*
 * dpconf.c — rcptgate-dp's settings from the command line and an INI file.
 * One keyword table serves both: "--max-flows N" on the command line is
 * "max_flows = N" (or "max-flows") in the [dataplane] section of the file.
 * The INI reader is inih's.  Main thread only, at start-up.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "dpconf.h"

typedef int (*dpconf_set_fn)(struct dpconf *c, const char *val, char *err, size_t errlen);

struct dpconf_kw {
	const char *name;	/* long option / INI key (dashes) */
	int has_arg;
	dpconf_set_fn set;
	const char *arg;
	const char *help;
};

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int set_uint(unsigned *dst, const char *what, const char *val, unsigned lo,
		    unsigned hi, char *err, size_t errlen)
{
	if (parse_uint(val, lo, hi, dst) < 0) {
		snprintf(err, errlen, "%s: '%s' is not a number in [%u, %u]", what,
			 val ? val : "", lo, hi);
		return -EINVAL;
	}
	return 0;
}

static int set_shm(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	if (strlen(v) >= sizeof(c->shm_path)) {
		snprintf(err, errlen, "shm: path too long");
		return -EINVAL;
	}
	snprintf(c->shm_path, sizeof(c->shm_path), "%s", v);
	return 0;
}

static int set_pair(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	char a[16], *colon;
	unsigned o, i;

	if (c->n_pairs >= DPCONF_MAX_PAIRS) {
		snprintf(err, errlen, "pair: at most %u pairs", DPCONF_MAX_PAIRS);
		return -EINVAL;
	}
	if (strlen(v) >= sizeof(a))
		goto bad;
	snprintf(a, sizeof(a), "%s", v);
	colon = strchr(a, ':');
	if (!colon)
		goto bad;
	*colon = 0;
	if (parse_uint(a, 0, UINT16_MAX - 1, &o) || parse_uint(colon + 1, 0, UINT16_MAX - 1, &i) ||
	    o == i)
		goto bad;
	c->pairs[c->n_pairs].outside = (uint16_t)o;
	c->pairs[c->n_pairs].inside = (uint16_t)i;
	c->n_pairs++;
	return 0;
bad:
	snprintf(err, errlen, "pair: '%s' is not OUTSIDE:INSIDE (two different port ids)", v);
	return -EINVAL;
}

static int set_rx_map(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	char a[48], *colon, *at;
	unsigned port, queue, lcore;

	if (c->n_rxmap >= DPCONF_MAX_RXMAP || strlen(v) >= sizeof(a))
		goto bad;
	snprintf(a, sizeof(a), "%s", v);
	colon = strchr(a, ':');
	at = strchr(a, '@');
	if (!colon || !at || at < colon)
		goto bad;
	*colon = 0;
	*at = 0;
	if (parse_uint(a, 0, UINT16_MAX - 1, &port) || parse_uint(colon + 1, 0, 1023, &queue) ||
	    parse_uint(at + 1, 0, 1023, &lcore))
		goto bad;
	c->rxmap[c->n_rxmap++] = (struct dpconf_rxmap){(uint16_t)port, (uint16_t)queue, lcore};
	return 0;
bad:
	snprintf(err, errlen, "rx-map: '%s' is not PORT:QUEUE@LCORE (at most %u)", v,
		 DPCONF_MAX_RXMAP);
	return -EINVAL;
}

static int set_smtp_ports(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	char buf[256], *save = NULL, *tok;
	unsigned n = 0, p;

	if (strlen(v) >= sizeof(buf))
		goto bad;
	snprintf(buf, sizeof(buf), "%s", v);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n >= DPCONF_MAX_SMTP_PORTS || parse_uint(tok, 1, 65535, &p))
			goto bad;
		c->smtp_ports[n++] = (uint16_t)p;
	}
	if (n == 0)
		goto bad;
	c->n_smtp_ports = n;
	return 0;
bad:
	snprintf(err, errlen, "smtp-ports: '%s' is not a list of up to %u ports", v,
		 DPCONF_MAX_SMTP_PORTS);
	return -EINVAL;
}

static int set_burst(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	return set_uint(&c->burst, "burst", v, 1, DPCONF_MAX_BURST, err, errlen);
}

static int set_rx_desc(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	return set_uint(&c->rx_desc, "rx-desc", v, 64, 16384, err, errlen);
}

static int set_tx_desc(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	return set_uint(&c->tx_desc, "tx-desc", v, 64, 16384, err, errlen);
}

static int set_mbufs(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	return set_uint(&c->mbufs, "mbufs", v, 1023, 1u << 22, err, errlen);
}

static int set_ring_slots(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	int rc = set_uint(&c->ring_slots, "ring-slots", v, 64, 1u << 20, err, errlen);
	if (rc == 0 && (c->ring_slots & (c->ring_slots - 1))) {
		snprintf(err, errlen, "ring-slots: %u is not a power of two", c->ring_slots);
		return -EINVAL;
	}
	return rc;
}

static int set_max_flows(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	return set_uint(&c->max_flows, "max-flows", v, 16, DPCONF_MAX_MAX_FLOWS, err, errlen);
}

static int set_idle(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	return set_uint(&c->idle_s, "idle-timeout", v, 1, 86400, err, errlen);
}

static int set_shm_retry(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	return set_uint(&c->shm_retry_s, "shm-retry", v, 1, 3600, err, errlen);
}

static int set_dispatch(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	static const char *const names[] = {"auto", "rss", "sw"};
	for (int i = 0; i < 3; i++)
		if (!strcmp(v, names[i])) {
			c->dispatch = i;
			return 0;
		}
	snprintf(err, errlen, "dispatch: '%s' is not auto, rss or sw", v);
	return -EINVAL;
}

static int set_bool(int *dst, const char *what, const char *v, char *err, size_t errlen)
{
	if (!v || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true")) {
		*dst = 1;
		return 0;
	}
	if (!strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false")) {
		*dst = 0;
		return 0;
	}
	snprintf(err, errlen, "%s: '%s' is not yes or no", what, v);
	return -EINVAL;
}

static int set_state(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	if (!strcmp(v, "none")) {
		c->no_state = 1;
		c->state_path[0] = 0;
		return 0;
	}
	if (!v[0] || strlen(v) >= sizeof(c->state_path)) {
		snprintf(err, errlen, "state: a path of 1..%zu bytes, or none",
			 sizeof(c->state_path) - 1);
		return -EINVAL;
	}
	c->no_state = 0;
	snprintf(c->state_path, sizeof(c->state_path), "%s", v);
	return 0;
}

static int set_takeover(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	return set_bool(&c->takeover, "takeover", v, err, errlen);
}

static int set_no_engine(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	return set_bool(&c->no_engine, "no-engine", v, err, errlen);
}

static int set_inbound_only(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	return set_bool(&c->inbound_only, "inbound-only", v, err, errlen);
}

static int set_sw_csum(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	return set_bool(&c->sw_csum, "sw-csum", v, err, errlen);
}

#define DPCONF_ENG_SETTER(field, key, lo, hi)                                             \
	static int set_eng_##field(struct dpconf *c, const char *v, char *err, size_t errlen) \
	{                                                                                  \
		return set_uint(&c->eng.field, key, v, lo, hi, err, errlen);               \
	}
DPCONF_ENG_SETTER(handshake_ms, "handshake-timeout-ms", 100, 3600000)
DPCONF_ENG_SETTER(busy_blocks, "busy-blocks", 16, 1u << 22)
DPCONF_ENG_SETTER(seg_blocks, "seg-blocks", 16, 1u << 22)
DPCONF_ENG_SETTER(line_max, "line-max", 512, 4096)
DPCONF_ENG_SETTER(ooo_max, "ooo-max", 1, 256)
DPCONF_ENG_SETTER(cmd_max, "cmd-max", 8, 4096)
DPCONF_ENG_SETTER(rcpt_max, "rcpt-max", 1, 100000)
DPCONF_ENG_SETTER(inject_max, "inject-max", 1024, 1u << 20)
DPCONF_ENG_SETTER(pin_max, "pin-max", 4096, 1u << 20)
DPCONF_ENG_SETTER(retx_initial_ms, "retx-initial-ms", 10, 60000)
DPCONF_ENG_SETTER(retx_max, "retx-max", 1, 64)
DPCONF_ENG_SETTER(harvest_window_ms, "harvest-window-ms", 1000, 86400000)
DPCONF_ENG_SETTER(harvest_slots, "harvest-slots", 64, 1u << 22)

static int set_eng_harvest_threshold(struct dpconf *c, const char *v, char *err, size_t errlen)
{
	int rc = set_uint(&c->eng.harvest_threshold, "harvest-threshold", v, 0, 1000000, err,
			  errlen);
	c->eng.harvest_off = rc == 0 && c->eng.harvest_threshold == 0;
	return rc;
}

static const struct dpconf_kw dpconf_kws[] = {
	{"shm", 1, set_shm, "PATH", "shared-memory file rcptgated created (required)"},
	{"pair", 1, set_pair, "OUT:IN", "bridge ports OUT (internet) and IN (servers); repeatable"},
	{"smtp-ports", 1, set_smtp_ports, "LIST", "TCP ports parsed as SMTP (default 25)"},
	{"rx-map", 1, set_rx_map, "P:Q@L", "worker lcore L polls RX queue Q of port P; repeatable"},
	{"dispatch", 1, set_dispatch, "MODE", "auto|rss|sw: flow-to-lcore steering (default auto)"},
	{"burst", 1, set_burst, "N", "frames per RX burst (default 32, max 64)"},
	{"rx-desc", 1, set_rx_desc, "N", "RX descriptors per queue (default 1024)"},
	{"tx-desc", 1, set_tx_desc, "N", "TX descriptors per queue (default 1024)"},
	{"mbufs", 1, set_mbufs, "N", "mbufs per port (default 16383)"},
	{"ring-slots", 1, set_ring_slots, "N", "software-dispatch ring per lcore (default 4096)"},
	{"max-flows", 1, set_max_flows, "N", "SMTP flows tracked per lcore (default 65536)"},
	{"idle-timeout", 1, set_idle, "S", "SMTP flow idle timeout in seconds (default 300)"},
	{"handshake-timeout-ms", 1, set_eng_handshake_ms, "MS", "SYN seen, no data yet: forget after"},
	{"busy-blocks", 1, set_eng_busy_blocks, "N", "flows holding edits at once, per lcore"},
	{"seg-blocks", 1, set_eng_seg_blocks, "N", "out-of-order segments stored, per lcore"},
	{"line-max", 1, set_eng_line_max, "N", "command line limit incl. CRLF (512..4096)"},
	{"ooo-max", 1, set_eng_ooo_max, "N", "out-of-order segments queued per flow"},
	{"cmd-max", 1, set_eng_cmd_max, "N", "commands awaiting a reply per flow"},
	{"rcpt-max", 1, set_eng_rcpt_max, "N", "RCPTs decided per transaction (beyond: forwarded)"},
	{"inject-max", 1, set_eng_inject_max, "N", "bytes of injected replies not yet acknowledged"},
	{"pin-max", 1, set_eng_pin_max, "N",
	 "client bytes kept per flow until the server acknowledges them (power of 2, default 16384)"},
	{"retx-initial-ms", 1, set_eng_retx_initial_ms, "MS", "first retransmission of a lone reply"},
	{"retx-max", 1, set_eng_retx_max, "N", "retransmissions before a flow gives up"},
	{"harvest-threshold", 1, set_eng_harvest_threshold, "N",
	 "invalid RCPTs per window per source (0: off)"},
	{"harvest-window-ms", 1, set_eng_harvest_window_ms, "MS", "harvest counting window"},
	{"harvest-slots", 1, set_eng_harvest_slots, "N", "harvest source table per lcore"},
	{"shm-retry", 1, set_shm_retry, "S", "seconds between attach attempts (default 1)"},
	{"no-engine", 0, set_no_engine, NULL, "bridge every frame untouched (no SMTP parsing)"},
	{"inbound-only", 0, set_inbound_only, NULL,
	 "parse only sessions opened from the outside port"},
	{"sw-csum", 0, set_sw_csum, NULL, "compute checksums in software even with offloads"},
	{"state", 1, set_state, "PATH",
	 "engine state file, taken over by the next rcptgate-dp (default SHM.dp-state; "
	 "none: process memory)"},
	{"takeover", 0, set_takeover, NULL,
	 "wait for the running rcptgate-dp to exit, then take its ports and flows over"},
};
#define DPCONF_NKW (sizeof(dpconf_kws) / sizeof(dpconf_kws[0]))

void dpconf_defaults(struct dpconf *c)
{
	memset(c, 0, sizeof(*c));
	c->smtp_ports[0] = 25;
	c->n_smtp_ports = 1;
	c->burst = DPCONF_DEF_BURST;
	c->rx_desc = DPCONF_DEF_RX_DESC;
	c->tx_desc = DPCONF_DEF_TX_DESC;
	c->mbufs = DPCONF_DEF_MBUFS;
	c->ring_slots = DPCONF_DEF_RING_SLOTS;
	c->max_flows = DPCONF_DEF_MAX_FLOWS;
	c->idle_s = DPCONF_DEF_IDLE_S;
	c->shm_retry_s = DPCONF_DEF_SHM_RETRY_S;
	c->dispatch = DPCONF_DISPATCH_AUTO;
}

void dpconf_usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [EAL options] -- [--config FILE] --shm PATH --pair OUT:IN [options]\n"
		"\nOptions (also keys of the [dataplane] section of --config FILE):\n",
		prog);
	for (size_t i = 0; i < DPCONF_NKW; i++) {
		char left[40];
		snprintf(left, sizeof(left), "--%s%s%s", dpconf_kws[i].name,
			 dpconf_kws[i].arg ? " " : "", dpconf_kws[i].arg ? dpconf_kws[i].arg : "");
		fprintf(out, "  %-26s %s\n", left, dpconf_kws[i].help);
	}
	fprintf(out, "  %-26s %s\n", "--config FILE", "INI file with a [dataplane] section");
}

static const struct dpconf_kw *kw_find(const char *name)
{
	char norm[64];
	size_t i;

	if (strlen(name) >= sizeof(norm))
		return NULL;
	for (i = 0; name[i]; i++)
		norm[i] = name[i] == '_' ? '-' : name[i];
	norm[i] = 0;
	for (i = 0; i < DPCONF_NKW; i++)
		if (!strcmp(norm, dpconf_kws[i].name))
			return &dpconf_kws[i];
	return NULL;
}

/*
 * inih goes on parsing after a bad line and reports the first bad line's
 * number; the handler keeps the first message it produced and the line it
 * was on (counted by our own line reader), so the two always match.
 */
struct dpconf_ini_ctx {
	struct dpconf *c;
	FILE *f;
	int lineno;		/* lines read so far */
	int err_line;		/* line of the first handler error, 0 = none */
	char msg[256];
};

static char *dpconf_ini_reader(char *buf, int size, void *stream)
{
	struct dpconf_ini_ctx *x = stream;
	char *r = fgets(buf, size, x->f);
	if (r)
		x->lineno++;
	return r;
}

static int dpconf_ini_line(void *user, const char *section, const char *name, const char *value)
{
	struct dpconf_ini_ctx *x = user;
	const struct dpconf_kw *kw;
	char msg[sizeof(x->msg)];

	if (strcmp(section, "dataplane") != 0)
		return 1; /* other sections belong to rcptgated */
	kw = kw_find(name);
	if (!kw)
		snprintf(msg, sizeof(msg), "unknown key '%s' in [dataplane]", name);
	else if (kw->set(x->c, value, msg, sizeof(msg)) == 0)
		return 1;
	if (!x->err_line) {
		x->err_line = x->lineno;
		memcpy(x->msg, msg, sizeof(msg));
	}
	return 0;
}

int dpconf_load_file(struct dpconf *c, const char *path, char *err, size_t errlen)
{
	struct dpconf_ini_ctx x = {.c = c};
	int line;

	x.f = fopen(path, "r");
	if (!x.f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -ENOENT;
	}
	line = ini_parse_stream(dpconf_ini_reader, &x, dpconf_ini_line, &x);
	fclose(x.f);
	if (line > 0) {
		snprintf(err, errlen, "%s:%d: %s", path, line,
			 line == x.err_line ? x.msg : "syntax error");
		return -EINVAL;
	}
	return 0;
}

int dpconf_parse_args(struct dpconf *c, int argc, char **argv, char *err, size_t errlen,
		      FILE *out)
{
	struct option opts[DPCONF_NKW + 3];
	size_t i;
	int o, idx;

	for (i = 0; i < DPCONF_NKW; i++)
		opts[i] = (struct option){dpconf_kws[i].name,
					  dpconf_kws[i].has_arg ? required_argument : no_argument,
					  NULL, 0};
	opts[i++] = (struct option){"config", required_argument, NULL, 0};
	opts[i++] = (struct option){"help", no_argument, NULL, 'h'};
	opts[i] = (struct option){0};

	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
		if (o == 'h') {
			dpconf_usage(out, argv[0]);
			return 1;
		}
		if (o != 0) {
			snprintf(err, errlen, "unknown or incomplete option '%s'",
				 argv[optind - 1]);
			return -EINVAL;
		}
		if ((size_t)idx == DPCONF_NKW) {
			int rc = dpconf_load_file(c, optarg, err, errlen);
			if (rc < 0)
				return rc;
			continue;
		}
		if (dpconf_kws[idx].set(c, optarg, err, errlen) < 0)
			return -EINVAL;
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

int dpconf_validate(const struct dpconf *c, char *err, size_t errlen)
{
	if (!c->shm_path[0]) {
		snprintf(err, errlen, "--shm PATH is required");
		return -EINVAL;
	}
	if (c->n_pairs == 0) {
		snprintf(err, errlen, "at least one --pair OUTSIDE:INSIDE is required");
		return -EINVAL;
	}
	for (unsigned i = 0; i < c->n_pairs; i++)
		for (unsigned j = 0; j < c->n_pairs; j++) {
			const struct dpconf_pair *a = &c->pairs[i], *b = &c->pairs[j];
			if (i != j && (a->outside == b->outside || a->outside == b->inside ||
				       a->inside == b->inside || a->inside == b->outside)) {
				snprintf(err, errlen, "port in two pairs (%u:%u and %u:%u)",
					 a->outside, a->inside, b->outside, b->inside);
				return -EINVAL;
			}
		}
	return 0;
}
