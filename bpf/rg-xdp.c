/*
 * rg-xdp.c — command-line loader and inspector of the XDP program, for
 * deployment scripts and tests.  One process, one thread; each verb opens
 * what it needs, acts, and exits.  The maps live on pinned in bpffs
 * (PIN_ROOT/IFNAME/), so a later run — or rcptgated — finds them.
 *
 *   rg-xdp attach IFACE [--peer IF2] [--other-pass] [--smtp-port N]... [--skb] [--replace]
 *   rg-xdp adopt IFACE [--peer IF2] [--other-pass] [--smtp-port N]...
 *   rg-xdp config IFACE [--peer IF2] [--other-pass] [--smtp-port N]...
 *   rg-xdp detach IFACE [--keep-pins]
 *   rg-xdp status | stats [IFACE]
 *   rg-xdp block PREFIX [--ttl SECONDS] | unblock PREFIX | blocks
 *
 * All verbs take --pin-root DIR (default XDP_PIN_ROOT).  block/unblock/blocks
 * act on every port pinned there.  While rcptgated runs, block through
 * rcptctl instead: rcptgated replays only the blocks it knows into a port
 * whose program was replaced.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rg_maps.h"

#define RGX_PORTS_MAX 32

struct opts {
	const char *pin_root;
	struct xdp_port_conf conf;
	bool conf_given;	/* any of --peer/--other-pass/--smtp-port */
	unsigned flags;		/* enum xdp_attach_flags */
	uint32_t ttl;
	bool keep_pins;		/* detach --keep-pins */
	char **args;
	int nargs;
};

static int usage(void);

static int need_args(const struct opts *o, int n, const char *what)
{
	if (o->nargs != n) {
		fprintf(stderr, "rg-xdp: expected %s\n", what);
		return -EINVAL;
	}
	return 0;
}

/* Open every port pinned under the root (or just o->args[0] when given). */
static int open_ports(const struct opts *o, const char *only, struct xdp_port *ports,
		      unsigned *n)
{
	char err[256];
	struct dirent *de;
	DIR *d;

	*n = 0;
	if (only) {
		if (xdp_port_open(o->pin_root, only, &ports[0], err, sizeof(err))) {
			fprintf(stderr, "rg-xdp: %s\n", err);
			return -ENOENT;
		}
		*n = 1;
		return 0;
	}
	d = opendir(o->pin_root);
	if (!d)
		return 0;
	while ((de = readdir(d)) && *n < RGX_PORTS_MAX) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= IF_NAMESIZE)
			continue;
		if (xdp_port_open(o->pin_root, de->d_name, &ports[*n], err, sizeof(err)) == 0)
			(*n)++;
		else
			fprintf(stderr, "rg-xdp: skipping %s: %s\n", de->d_name, err);
	}
	closedir(d);
	return 0;
}

static void close_ports(struct xdp_port *ports, unsigned n)
{
	while (n--)
		xdp_port_close(&ports[n]);
}

static int cmd_attach(struct opts *o)
{
	struct xdp_port p;
	char err[256];
	int rc;

	if ((rc = need_args(o, 1, "IFACE")))
		return rc;
	rc = xdp_port_attach(o->pin_root, o->args[0], &o->conf, o->flags, &p, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "rg-xdp: %s\n", err);
		return rc;
	}
	printf("attached %s to %s, maps pinned under %s/%s\n", XDP_PROG_NAME, p.ifname,
	       o->pin_root, p.ifname);
	xdp_port_close(&p);
	return 0;
}

static int cmd_adopt(struct opts *o)
{
	struct xdp_port p;
	char err[256];
	int rc;

	if ((rc = need_args(o, 1, "IFACE")))
		return rc;
	rc = xdp_port_adopt(o->pin_root, o->args[0], o->conf_given ? &o->conf : NULL, &p, err,
			    sizeof(err));
	if (rc) {
		fprintf(stderr, "rg-xdp: %s\n", err);
		return rc;
	}
	printf("adopted %s on %s, maps pinned under %s/%s\n", XDP_PROG_NAME, p.ifname,
	       o->pin_root, p.ifname);
	xdp_port_close(&p);
	return 0;
}

static int cmd_config(struct opts *o)
{
	struct xdp_port p;
	char err[256];
	int rc;

	if ((rc = need_args(o, 1, "IFACE")))
		return rc;
	if (xdp_port_open(o->pin_root, o->args[0], &p, err, sizeof(err))) {
		fprintf(stderr, "rg-xdp: %s\n", err);
		return -ENOENT;
	}
	rc = xdp_port_configure(&p, &o->conf, err, sizeof(err));
	if (rc)
		fprintf(stderr, "rg-xdp: %s\n", err);
	xdp_port_close(&p);
	return rc;
}

static int cmd_detach(struct opts *o)
{
	char err[256];
	int rc;

	if ((rc = need_args(o, 1, "IFACE")))
		return rc;
	rc = xdp_port_detach(o->pin_root, o->args[0], o->keep_pins ? XDP_DETACH_KEEP_PINS : 0,
			     err, sizeof(err));
	if (rc)
		fprintf(stderr, "rg-xdp: %s\n", err);
	else
		printf("detached %s from %s\n", XDP_PROG_NAME, o->args[0]);
	return rc;
}

static int cmd_status(struct opts *o)
{
	struct xdp_port ports[RGX_PORTS_MAX];
	struct xdp_port_conf c;
	unsigned n, i, j;
	int rc;

	rc = open_ports(o, o->nargs ? o->args[0] : NULL, ports, &n);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		xdp_port_get_conf(&ports[i], &c);
		printf("%s: %s, peer %s, non-SMTP to %s, SMTP ports", ports[i].ifname,
		       xdp_port_live(&ports[i]) == 1 ? "attached" : "NOT attached (stale pins)",
		       c.peer[0] ? c.peer : "-",
		       c.other_pass ? "kernel" : (c.peer[0] ? "peer" : "AF_XDP socket/kernel"));
		if (c.nsmtp_ports == 0)
			printf(" %u (default)", XDP_SMTP_PORT_DEFAULT);
		for (j = 0; j < c.nsmtp_ports; j++)
			printf(" %u", c.smtp_ports[j]);
		printf("\n");
	}
	close_ports(ports, n);
	return 0;
}

static int cmd_stats(struct opts *o)
{
	struct xdp_port ports[RGX_PORTS_MAX];
	uint64_t sum[XDP_CTR__COUNT] = {0}, c[XDP_CTR__COUNT];
	unsigned n, i, j;
	int rc;

	rc = open_ports(o, o->nargs ? o->args[0] : NULL, ports, &n);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		rc = xdp_port_counters(&ports[i], c);
		if (rc) {
			fprintf(stderr, "rg-xdp: %s: counters: %s\n", ports[i].ifname,
				strerror(-rc));
			break;
		}
		for (j = 0; j < XDP_CTR__COUNT; j++)
			sum[j] += c[j];
	}
	close_ports(ports, n);
	for (j = 0; rc == 0 && j < XDP_CTR__COUNT; j++)
		printf("%s %" PRIu64 "\n", xdp_ctr_names[j], sum[j]);
	return rc;
}

static int cmd_block(struct opts *o)
{
	struct xdp_port ports[RGX_PORTS_MAX];
	struct xdp_prefix p;
	unsigned n, i;
	uint64_t exp;
	int rc = 0;

	if ((rc = need_args(o, 1, "PREFIX")))
		return rc;
	if (xdp_prefix_parse(o->args[0], &p)) {
		fprintf(stderr, "rg-xdp: not a prefix: %s\n", o->args[0]);
		return -EINVAL;
	}
	open_ports(o, NULL, ports, &n);
	if (n == 0) {
		fprintf(stderr, "rg-xdp: no port pinned under %s\n", o->pin_root);
		return -ENOENT;
	}
	exp = o->ttl ? xdp_mono_ns() + (uint64_t)o->ttl * 1000000000u : 0;
	for (i = 0; i < n && rc == 0; i++) {
		rc = xdp_port_block_put(&ports[i], &p, exp, xdp_wall_ns());
		if (rc)
			fprintf(stderr, "rg-xdp: %s: %s\n", ports[i].ifname, strerror(-rc));
	}
	close_ports(ports, n);
	return rc;
}

static int cmd_unblock(struct opts *o)
{
	struct xdp_port ports[RGX_PORTS_MAX];
	struct xdp_prefix p;
	unsigned n, i, found = 0;
	int rc;

	if ((rc = need_args(o, 1, "PREFIX")))
		return rc;
	if (xdp_prefix_parse(o->args[0], &p)) {
		fprintf(stderr, "rg-xdp: not a prefix: %s\n", o->args[0]);
		return -EINVAL;
	}
	open_ports(o, NULL, ports, &n);
	for (i = 0; i < n; i++)
		if (xdp_port_block_del(&ports[i], &p) == 0)
			found++;
	close_ports(ports, n);
	if (!found) {
		fprintf(stderr, "rg-xdp: %s is not blocked\n", o->args[0]);
		return -ENOENT;
	}
	return 0;
}

static int print_block(const struct xdp_block_entry *e, void *arg)
{
	const char *ifname = arg;
	char buf[XDP_PREFIX_STRLEN];
	uint64_t now = xdp_mono_ns();

	xdp_prefix_format(&e->prefix, buf, sizeof(buf));
	printf("%s %s hits %" PRIu64 " ", ifname, buf, e->hits);
	if (!e->expires_ns)
		printf("expires never\n");
	else if (e->expires_ns <= now)
		printf("expired\n");
	else
		printf("expires in %" PRIu64 "s\n", (e->expires_ns - now) / 1000000000u);
	return 0;
}

static int cmd_blocks(struct opts *o)
{
	struct xdp_port ports[RGX_PORTS_MAX];
	unsigned n, i;
	int rc = 0;

	open_ports(o, NULL, ports, &n);
	for (i = 0; i < n && rc == 0; i++)
		rc = xdp_port_block_foreach(&ports[i], print_block, ports[i].ifname);
	close_ports(ports, n);
	return rc;
}

static const struct verb {
	const char *name;
	int (*run)(struct opts *o);
	const char *help;
} verbs[] = {
	{"attach", cmd_attach, "IFACE: load, attach, pin under PIN_ROOT/IFACE, configure"},
	{"adopt", cmd_adopt, "IFACE: pin the maps of the rg_xdp another process attached"},
	{"config", cmd_config, "IFACE: rewrite peer, flags, SMTP ports"},
	{"detach", cmd_detach, "IFACE [--keep-pins]: detach rg_xdp, remove its pins (or keep\n"
	 "           them so that adopt carries config and blocklist to the next program)"},
	{"status", cmd_status, "[IFACE]: ports pinned, attached or not, their config"},
	{"stats", cmd_stats, "[IFACE]: counters summed over CPUs (and ports)"},
	{"block", cmd_block, "PREFIX [--ttl S]: drop SYNs to SMTP from PREFIX on every port"},
	{"unblock", cmd_unblock, "PREFIX: remove it from every port"},
	{"blocks", cmd_blocks, "list every port's blocklist with hit counts"},
};

static int usage(void)
{
	size_t i;

	fprintf(stderr, "usage: rg-xdp VERB [ARGS] [--pin-root DIR] [--peer IF] [--other-pass]\n"
			"              [--smtp-port N]... [--skb] [--replace] [--ttl S]\n"
			"              [--keep-pins]\n");
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(stderr, "  %-8s %s\n", verbs[i].name, verbs[i].help);
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"pin-root", required_argument, NULL, 'r'},
		{"peer", required_argument, NULL, 'p'},
		{"other-pass", no_argument, NULL, 'o'},
		{"smtp-port", required_argument, NULL, 's'},
		{"skb", no_argument, NULL, 'k'},
		{"replace", no_argument, NULL, 'R'},
		{"ttl", required_argument, NULL, 't'},
		{"keep-pins", no_argument, NULL, 'K'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct opts o = {.pin_root = XDP_PIN_ROOT};
	const struct verb *v = NULL;
	unsigned long n;
	char *end;
	size_t i;
	int c;

	if (argc < 2)
		return usage();
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(argv[1], verbs[i].name) == 0)
			v = &verbs[i];
	if (!v)
		return usage();
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			o.pin_root = optarg;
			break;
		case 'p':
			if (strlen(optarg) >= IF_NAMESIZE)
				return usage();
			snprintf(o.conf.peer, sizeof(o.conf.peer), "%s", optarg);
			o.conf_given = true;
			break;
		case 'o':
			o.conf.other_pass = true;
			o.conf_given = true;
			break;
		case 's':
			n = strtoul(optarg, &end, 10);
			if (*end || n == 0 || n > 65535 ||
			    o.conf.nsmtp_ports == XDP_SMTP_PORTS_MAX) {
				fprintf(stderr, "rg-xdp: bad or too many --smtp-port (max %u)\n",
					XDP_SMTP_PORTS_MAX);
				return 2;
			}
			o.conf.smtp_ports[o.conf.nsmtp_ports++] = (uint16_t)n;
			o.conf_given = true;
			break;
		case 'k':
			o.flags |= XDP_ATTACH_SKB;
			break;
		case 'R':
			o.flags |= XDP_ATTACH_REPLACE;
			break;
		case 'K':
			o.keep_pins = true;
			break;
		case 't':
			n = strtoul(optarg, &end, 10);
			if (*end || n > UINT32_MAX)
				return usage();
			o.ttl = (uint32_t)n;
			break;
		default:
			return usage();
		}
	}
	o.args = argv + optind;
	o.nargs = argc - optind;
	return v->run(&o) ? 1 : 0;
}
