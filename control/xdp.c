/*
 * xdp.c — userspace side of the XDP program: loading and attaching it through
 * the bpftool skeleton (libbpf), adopting the copy DPDK's net_af_xdp loaded,
 * pinning and opening each port's maps, the blocklist and the counters; and
 * rcptgated's xdp module on top (see xdp.h).
 *
 * Thread: rcptgated's main (event-loop) thread; rg-xdp's only thread.
 *
 * Each port runs its own instance of the program (DPDK loads one per port, and
 * each needs its own xsks_map keyed by RX queue), so every port has its own
 * maps, pinned under PIN_ROOT/IFNAME/MAPNAME.  The blocklist is therefore
 * written to every port; rcptgated keeps the list it owns in memory and
 * replays it into a port whose program was replaced.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "xdp.h"

#ifdef RG_XDP_LIBBPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "rg_xdp.skel.h"
#endif

#ifdef RG_HAVE_XDP
#include "core.h"
#include "log.h"
#endif

const char *const xdp_map_names[XDP_M__COUNT] = {
	[XDP_M_XSKS] = XDP_MAP_XSKS,	 [XDP_M_TX_PORT] = XDP_MAP_TX_PORT,
	[XDP_M_CFG] = XDP_MAP_CFG,	 [XDP_M_CTRS] = XDP_MAP_CTRS,
	[XDP_M_BLOCK4] = XDP_MAP_BLOCK4, [XDP_M_BLOCK6] = XDP_MAP_BLOCK6,
};

const char *const xdp_ctr_names[XDP_CTR__COUNT] = {
#define XDP_CTR_NAME(id, name, help) [XDP_CTR_##id] = name,
	XDP_CTR_LIST(XDP_CTR_NAME)
#undef XDP_CTR_NAME
};

const char *const xdp_ctr_help[XDP_CTR__COUNT] = {
#define XDP_CTR_HELP(id, name, help) [XDP_CTR_##id] = help,
	XDP_CTR_LIST(XDP_CTR_HELP)
#undef XDP_CTR_HELP
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

uint64_t xdp_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t xdp_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------------- */
/* Prefixes                                                                */

static void prefix_mask(struct xdp_prefix *p)
{
	unsigned bytes = p->family == 4 ? 4 : 16;
	unsigned i, bit;

	for (i = 0; i < 16; i++) {
		bit = i * 8;
		if (i >= bytes || bit >= p->len)
			p->addr[i] = 0;
		else if (p->len - bit < 8)
			p->addr[i] &= (uint8_t)(0xff << (8 - (p->len - bit)));
	}
}

int xdp_prefix_make(uint8_t family, const uint8_t *addr, unsigned len, struct xdp_prefix *out)
{
	if ((family != 4 && family != 6) || len > (family == 4 ? 32u : 128u))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->family = family;
	out->len = (uint8_t)len;
	memcpy(out->addr, addr, family == 4 ? 4 : 16);
	prefix_mask(out);
	return 0;
}

int xdp_prefix_parse(const char *s, struct xdp_prefix *out)
{
	char buf[XDP_PREFIX_STRLEN];
	uint8_t addr[16];
	const char *slash;
	unsigned long len;
	uint8_t family;
	char *end;
	size_t alen;

	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (inet_pton(AF_INET, buf, addr) == 1)
		family = 4;
	else if (inet_pton(AF_INET6, buf, addr) == 1)
		family = 6;
	else
		return -EINVAL;
	len = family == 4 ? 32 : 128;
	if (slash) {
		if (slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		errno = 0;
		len = strtoul(slash + 1, &end, 10);
		if (errno || *end != '\0' || len > (family == 4 ? 32u : 128u))
			return -EINVAL;
	}
	return xdp_prefix_make(family, addr, (unsigned)len, out);
}

void xdp_prefix_format(const struct xdp_prefix *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (!inet_ntop(p->family == 4 ? AF_INET : AF_INET6, p->addr, a, sizeof(a)))
		snprintf(a, sizeof(a), "?");
	snprintf(buf, len, "%s/%u", a, p->len);
}

bool xdp_prefix_equal(const struct xdp_prefix *a, const struct xdp_prefix *b)
{
	return a->family == b->family && a->len == b->len &&
	       memcmp(a->addr, b->addr, a->family == 4 ? 4 : 16) == 0;
}

bool xdp_prefix_overlaps(const struct xdp_prefix *a, const struct xdp_prefix *b)
{
	struct xdp_prefix x, y;
	unsigned len;

	if (a->family != b->family)
		return false;
	len = a->len < b->len ? a->len : b->len;
	xdp_prefix_make(a->family, a->addr, len, &x);
	xdp_prefix_make(b->family, b->addr, len, &y);
	return xdp_prefix_equal(&x, &y);
}

#ifdef RG_XDP_LIBBPF

/* ---------------------------------------------------------------------- */
/* Ports                                                                   */

static int pin_path(char *buf, size_t len, const char *root, const char *ifname,
		    const char *map)
{
	int n;

	if (map)
		n = snprintf(buf, len, "%s/%s/%s", root, ifname, map);
	else
		n = snprintf(buf, len, "%s/%s", root, ifname);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static void port_init(struct xdp_port *p, const char *ifname)
{
	unsigned i;

	memset(p, 0, sizeof(*p));
	snprintf(p->ifname, sizeof(p->ifname), "%s", ifname);
	for (i = 0; i < XDP_M__COUNT; i++)
		p->fd[i] = -1;
}

void xdp_port_close(struct xdp_port *p)
{
	unsigned i;

	for (i = 0; i < XDP_M__COUNT; i++) {
		if (p->fd[i] >= 0)
			close(p->fd[i]);
		p->fd[i] = -1;
	}
}

static int map_id_of(int fd, uint32_t *id, char *name, size_t namelen)
{
	struct bpf_map_info info;
	uint32_t len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	*id = info.id;
	if (name)
		snprintf(name, namelen, "%s", info.name);
	return 0;
}

int xdp_port_open(const char *pin_root, const char *ifname, struct xdp_port *out, char *err,
		  size_t errlen)
{
	char path[PATH_MAX];
	unsigned i;
	int rc;

	port_init(out, ifname);
	out->ifindex = if_nametoindex(ifname);
	for (i = 0; i < XDP_M__COUNT; i++) {
		rc = pin_path(path, sizeof(path), pin_root, ifname, xdp_map_names[i]);
		if (rc)
			goto fail;
		out->fd[i] = bpf_obj_get(path);
		if (out->fd[i] < 0) {
			rc = -errno;
			fail(err, errlen, rc, "%s: %s", path, strerror(-rc));
			goto fail;
		}
		rc = map_id_of(out->fd[i], &out->map_id[i], NULL, 0);
		if (rc) {
			fail(err, errlen, rc, "%s: map info: %s", path, strerror(-rc));
			goto fail;
		}
	}
	return 0;
fail:
	xdp_port_close(out);
	return rc;
}

static int unpin_all(const char *pin_root, const char *ifname)
{
	char path[PATH_MAX];
	unsigned i;
	int rc;

	for (i = 0; i < XDP_M__COUNT; i++) {
		rc = pin_path(path, sizeof(path), pin_root, ifname, xdp_map_names[i]);
		if (rc)
			return rc;
		if (unlink(path) && errno != ENOENT)
			return -errno;
	}
	rc = pin_path(path, sizeof(path), pin_root, ifname, NULL);
	if (rc)
		return rc;
	if (rmdir(path) && errno != ENOENT)
		return -errno;
	return 0;
}

/* Pin the port's maps under pin_root/ifname/, replacing what was there. */
static int port_pin(const struct xdp_port *p, const char *pin_root, char *err, size_t errlen)
{
	char path[PATH_MAX];
	unsigned i;
	int rc;

	rc = pin_path(path, sizeof(path), pin_root, p->ifname, NULL);
	if (rc == 0)
		rc = mkdir_p(path);
	if (rc)
		return fail(err, errlen, rc, "%s: %s (is bpffs mounted on /sys/fs/bpf?)",
			    path, strerror(-rc));
	for (i = 0; i < XDP_M__COUNT; i++) {
		rc = pin_path(path, sizeof(path), pin_root, p->ifname, xdp_map_names[i]);
		if (rc)
			return fail(err, errlen, rc, "pin path too long");
		if (unlink(path) && errno != ENOENT)
			return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
		if (bpf_obj_pin(p->fd[i], path))
			return fail(err, errlen, -errno, "pin %s: %s", path, strerror(errno));
	}
	return 0;
}

int xdp_port_configure(const struct xdp_port *p, const struct xdp_port_conf *c, char *err,
		       size_t errlen)
{
	struct xdp_cfg *cfg;
	uint32_t zero = 0, peer;
	unsigned i;
	int rc = 0;

	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return fail(err, errlen, -ENOMEM, "out of memory");
	cfg->flags = XDP_CFG_VALID | (c->other_pass ? XDP_CFG_OTHER_PASS : 0);
	if (c->nsmtp_ports == 0)
		cfg->smtp_ports[XDP_SMTP_PORT_DEFAULT >> 3] |= 1u << (XDP_SMTP_PORT_DEFAULT & 7);
	for (i = 0; i < c->nsmtp_ports && i < XDP_SMTP_PORTS_MAX; i++)
		cfg->smtp_ports[c->smtp_ports[i] >> 3] |= (uint8_t)(1u << (c->smtp_ports[i] & 7));

	if (c->peer[0]) {
		peer = if_nametoindex(c->peer);
		if (!peer) {
			rc = fail(err, errlen, -ENODEV, "peer %s: no such interface", c->peer);
			goto out;
		}
		if (bpf_map_update_elem(p->fd[XDP_M_TX_PORT], &p->ifindex, &peer, BPF_ANY)) {
			rc = fail(err, errlen, -errno, "%s: set peer %s: %s", p->ifname, c->peer,
				  strerror(errno));
			goto out;
		}
	} else if (bpf_map_delete_elem(p->fd[XDP_M_TX_PORT], &p->ifindex) && errno != ENOENT) {
		rc = fail(err, errlen, -errno, "%s: clear peer: %s", p->ifname, strerror(errno));
		goto out;
	}
	if (bpf_map_update_elem(p->fd[XDP_M_CFG], &zero, cfg, BPF_ANY))
		rc = fail(err, errlen, -errno, "%s: write config: %s", p->ifname, strerror(errno));
out:
	free(cfg);
	return rc;
}

int xdp_port_get_conf(const struct xdp_port *p, struct xdp_port_conf *c)
{
	struct xdp_cfg *cfg;
	uint32_t zero = 0, peer;
	unsigned port;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return -ENOMEM;
	if (bpf_map_lookup_elem(p->fd[XDP_M_CFG], &zero, cfg)) {
		rc = -errno;
		goto out;
	}
	c->other_pass = !!(cfg->flags & XDP_CFG_OTHER_PASS);
	if (cfg->flags & XDP_CFG_VALID) {
		for (port = 0; port < 65536 && c->nsmtp_ports < XDP_SMTP_PORTS_MAX; port++)
			if (cfg->smtp_ports[port >> 3] & (1u << (port & 7)))
				c->smtp_ports[c->nsmtp_ports++] = (uint16_t)port;
	}
	if (bpf_map_lookup_elem(p->fd[XDP_M_TX_PORT], &p->ifindex, &peer) == 0 &&
	    !if_indextoname(peer, c->peer))
		c->peer[0] = '\0';
out:
	free(cfg);
	return rc;
}

/* The program attached to ifindex: id and attach mode.  -ENOENT if none. */
static int attached_prog(uint32_t ifindex, uint32_t *prog_id, uint8_t *mode)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int rc;

	rc = bpf_xdp_query((int)ifindex, 0, &q);
	if (rc)
		return rc;
	if (q.attach_mode == XDP_ATTACHED_NONE)
		return -ENOENT;
	*prog_id = q.prog_id ? q.prog_id : (q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id);
	*mode = q.attach_mode;
	return *prog_id ? 0 : -ENOENT;
}

/* Ids of the maps of program prog_id, and whether it is ours by name. */
static int prog_maps(uint32_t prog_id, uint32_t *ids, uint32_t *nids, bool *ours)
{
	struct bpf_prog_info info;
	uint32_t len = sizeof(info);
	uint32_t max = *nids;
	int fd, rc = 0;

	fd = bpf_prog_get_fd_by_id(prog_id);
	if (fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	info.nr_map_ids = max;
	info.map_ids = (uint64_t)(uintptr_t)ids;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		rc = -errno;
	close(fd);
	if (rc)
		return rc;
	*nids = info.nr_map_ids < max ? info.nr_map_ids : max;
	*ours = strcmp(info.name, XDP_PROG_NAME) == 0;
	return 0;
}

int xdp_port_live(const struct xdp_port *p)
{
	uint32_t ids[16], nids = 16, prog_id, i;
	uint8_t mode;
	bool ours;
	int rc;

	rc = attached_prog(p->ifindex, &prog_id, &mode);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	rc = prog_maps(prog_id, ids, &nids, &ours);
	if (rc)
		return rc;
	for (i = 0; ours && i < nids; i++)
		if (ids[i] == p->map_id[XDP_M_BLOCK4])
			return 1;
	return 0;
}

/* Open the maps of the program attached to p->ifindex into p. */
static int port_from_prog(struct xdp_port *p, uint32_t prog_id, char *err, size_t errlen)
{
	uint32_t ids[16], nids = 16, i, j, id = 0;
	char name[BPF_OBJ_NAME_LEN];
	bool ours;
	int fd, rc;

	rc = prog_maps(prog_id, ids, &nids, &ours);
	if (rc)
		return fail(err, errlen, rc, "%s: program %u: %s", p->ifname, prog_id,
			    strerror(-rc));
	if (!ours)
		return fail(err, errlen, -EMEDIUMTYPE, "%s: the attached program %u is not %s",
			    p->ifname, prog_id, XDP_PROG_NAME);
	for (i = 0; i < nids; i++) {
		fd = bpf_map_get_fd_by_id(ids[i]);
		if (fd < 0)
			return fail(err, errlen, -errno, "map %u: %s", ids[i], strerror(errno));
		rc = map_id_of(fd, &id, name, sizeof(name));
		if (rc) {
			close(fd);
			return fail(err, errlen, rc, "map %u: %s", ids[i], strerror(-rc));
		}
		for (j = 0; j < XDP_M__COUNT; j++)
			if (strcmp(name, xdp_map_names[j]) == 0 && p->fd[j] < 0)
				break;
		if (j == XDP_M__COUNT) {
			close(fd);	/* .rodata/.bss or a duplicate: not ours to manage */
			continue;
		}
		p->fd[j] = fd;
		p->map_id[j] = id;
	}
	for (j = 0; j < XDP_M__COUNT; j++)
		if (p->fd[j] < 0)
			return fail(err, errlen, -EMEDIUMTYPE, "%s: program %u has no map %s",
				    p->ifname, prog_id, xdp_map_names[j]);
	return 0;
}

static int block_write(const struct xdp_port *p, const struct xdp_prefix *pf,
		       uint64_t expires_ns, uint64_t added_ns, uint64_t hits);

/* An entry of the old maps into the new ones, hit count included. */
static int copy_block(const struct xdp_block_entry *e, void *arg)
{
	const struct xdp_port *to = arg;

	return block_write(to, &e->prefix, e->expires_ns, e->added_ns, e->hits);
}

int xdp_port_adopt(const char *pin_root, const char *ifname, const struct xdp_port_conf *c,
		   struct xdp_port *out, char *err, size_t errlen)
{
	struct xdp_port_conf old_conf;
	struct xdp_port old;
	uint32_t prog_id;
	uint8_t mode;
	bool have_old;
	int rc;

	port_init(out, ifname);
	out->ifindex = if_nametoindex(ifname);
	if (!out->ifindex)
		return fail(err, errlen, -ENODEV, "%s: no such interface", ifname);
	rc = attached_prog(out->ifindex, &prog_id, &mode);
	if (rc)
		return fail(err, errlen, rc, "%s: no XDP program attached", ifname);
	rc = port_from_prog(out, prog_id, err, errlen);
	if (rc)
		goto fail;

	have_old = xdp_port_open(pin_root, ifname, &old, NULL, 0) == 0;
	if (have_old && old.map_id[XDP_M_BLOCK4] == out->map_id[XDP_M_BLOCK4]) {
		xdp_port_close(&old);	/* already adopted */
		have_old = false;
	}
	if (c) {
		rc = xdp_port_configure(out, c, err, errlen);
	} else if (have_old) {
		rc = xdp_port_get_conf(&old, &old_conf);
		if (rc == 0)
			rc = xdp_port_configure(out, &old_conf, err, errlen);
		if (rc == 0)
			rc = xdp_port_block_foreach(&old, copy_block, out);
		if (rc)
			fail(err, errlen, rc, "%s: carrying state over: %s", ifname,
			     strerror(-rc));
	}
	if (have_old)
		xdp_port_close(&old);
	if (rc == 0)
		rc = port_pin(out, pin_root, err, errlen);
	if (rc == 0)
		return 0;
fail:
	xdp_port_close(out);
	return rc;
}

int xdp_port_attach(const char *pin_root, const char *ifname, const struct xdp_port_conf *c,
		    unsigned flags, struct xdp_port *out, char *err, size_t errlen)
{
	struct rg_xdp *skel;
	uint32_t ifindex, xflags;
	int rc;

	port_init(out, ifname);
	ifindex = if_nametoindex(ifname);
	if (!ifindex)
		return fail(err, errlen, -ENODEV, "%s: no such interface", ifname);
	skel = rg_xdp__open_and_load();
	if (!skel)
		return fail(err, errlen, -errno ? -errno : -EINVAL, "loading %s: %s",
			    XDP_PROG_NAME, strerror(errno));
	xflags = (flags & XDP_ATTACH_SKB) ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	if (!(flags & XDP_ATTACH_REPLACE))
		xflags |= XDP_FLAGS_UPDATE_IF_NOEXIST;
	rc = bpf_xdp_attach((int)ifindex, bpf_program__fd(skel->progs.rg_xdp), xflags, NULL);
	if (rc) {
		fail(err, errlen, rc, "%s: attach (%s mode): %s%s", ifname,
		     (flags & XDP_ATTACH_SKB) ? "skb" : "native", strerror(-rc),
		     rc == -EBUSY || rc == -EEXIST ? " (a program is attached already)" : "");
		goto out;
	}
	/* the attachment now holds the program and its maps; adopt them */
	rc = xdp_port_adopt(pin_root, ifname, c, out, err, errlen);
	if (rc)
		bpf_xdp_detach((int)ifindex, xflags & ~XDP_FLAGS_UPDATE_IF_NOEXIST, NULL);
out:
	rg_xdp__destroy(skel);
	return rc;
}

int xdp_port_detach(const char *pin_root, const char *ifname, unsigned flags, char *err,
		    size_t errlen)
{
	uint32_t ids[16], nids = 16, prog_id, ifindex;
	uint32_t xflags = 0;
	uint8_t mode;
	bool ours = false;
	int rc = 0;

	ifindex = if_nametoindex(ifname);
	if (ifindex && attached_prog(ifindex, &prog_id, &mode) == 0) {
		rc = prog_maps(prog_id, ids, &nids, &ours);
		if (rc)
			return fail(err, errlen, rc, "%s: program %u: %s", ifname, prog_id,
				    strerror(-rc));
		if (!ours) {
			rc = fail(err, errlen, -EMEDIUMTYPE,
				  "%s: attached program %u is not %s; left alone", ifname,
				  prog_id, XDP_PROG_NAME);
		} else {
			if (mode == XDP_ATTACHED_SKB)
				xflags = XDP_FLAGS_SKB_MODE;
			else if (mode == XDP_ATTACHED_DRV)
				xflags = XDP_FLAGS_DRV_MODE;
			else if (mode == XDP_ATTACHED_HW)
				xflags = XDP_FLAGS_HW_MODE;
			rc = bpf_xdp_detach((int)ifindex, xflags, NULL);
			if (rc)
				return fail(err, errlen, rc, "%s: detach: %s", ifname,
					    strerror(-rc));
		}
	}
	if (!(flags & XDP_DETACH_KEEP_PINS) && unpin_all(pin_root, ifname) && rc == 0)
		rc = fail(err, errlen, -errno, "%s/%s: unpin: %s", pin_root, ifname,
			  strerror(errno));
	return rc;
}

int xdp_port_counters(const struct xdp_port *p, uint64_t out[XDP_CTR__COUNT])
{
	struct xdp_ctrs *vals;
	uint32_t zero = 0;
	int ncpu, cpu, i;

	memset(out, 0, sizeof(uint64_t) * XDP_CTR__COUNT);
	ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	if (bpf_map_lookup_elem(p->fd[XDP_M_CTRS], &zero, vals)) {
		free(vals);
		return -errno;
	}
	for (cpu = 0; cpu < ncpu; cpu++)
		for (i = 0; i < XDP_CTR__COUNT; i++)
			out[i] += vals[cpu].c[i];
	free(vals);
	return 0;
}

/* LPM keys: { u32 prefixlen; u8 addr[] } */
static int block_fd_key(const struct xdp_port *p, const struct xdp_prefix *pf, int *fd,
			struct xdp_lpm6 *key)
{
	memset(key, 0, sizeof(*key));
	key->prefixlen = pf->len;
	if (pf->family == 4) {
		memcpy(key->addr, pf->addr, 4);
		*fd = p->fd[XDP_M_BLOCK4];
	} else if (pf->family == 6) {
		memcpy(key->addr, pf->addr, 16);
		*fd = p->fd[XDP_M_BLOCK6];
	} else {
		return -EINVAL;
	}
	return 0;
}

int xdp_port_block_get(const struct xdp_port *p, const struct xdp_prefix *pf,
		       struct xdp_block_entry *out)
{
	struct xdp_block_val val;
	struct xdp_lpm6 key;
	int fd, rc;

	rc = block_fd_key(p, pf, &fd, &key);
	if (rc)
		return rc;
	/* a userspace lookup in an LPM trie is a longest match too: the value
	 * records its own prefix length to tell an exact hit */
	if (bpf_map_lookup_elem(fd, &key, &val))
		return -errno;
	if (val.prefixlen != pf->len)
		return -ENOENT;
	out->prefix = *pf;
	out->hits = val.hits;
	out->expires_ns = val.expires_ns;
	out->added_ns = val.added_ns;
	return 0;
}

static int block_write(const struct xdp_port *p, const struct xdp_prefix *pf,
		       uint64_t expires_ns, uint64_t added_ns, uint64_t hits)
{
	struct xdp_block_val val;
	struct xdp_lpm6 key;
	int fd, rc;

	rc = block_fd_key(p, pf, &fd, &key);
	if (rc)
		return rc;
	memset(&val, 0, sizeof(val));
	val.prefixlen = pf->len;
	val.hits = hits;
	val.expires_ns = expires_ns;
	val.added_ns = added_ns;
	if (bpf_map_update_elem(fd, &key, &val, BPF_ANY))
		return -errno;
	return 0;
}

int xdp_port_block_put(const struct xdp_port *p, const struct xdp_prefix *pf,
		       uint64_t expires_ns, uint64_t added_ns)
{
	struct xdp_block_entry cur;

	/* keep the count of an entry being extended (hits between this read and
	 * the update are lost: a few SYNs at most) */
	if (xdp_port_block_get(p, pf, &cur) != 0)
		cur.hits = 0;
	return block_write(p, pf, expires_ns, added_ns, cur.hits);
}

int xdp_port_block_del(const struct xdp_port *p, const struct xdp_prefix *pf)
{
	struct xdp_lpm6 key;
	int fd, rc;

	rc = block_fd_key(p, pf, &fd, &key);
	if (rc)
		return rc;
	if (bpf_map_delete_elem(fd, &key))
		return -errno;
	return 0;
}

int xdp_port_block_foreach(const struct xdp_port *p, xdp_block_entry_fn fn, void *arg)
{
	static const uint8_t fams[2] = {4, 6};
	struct xdp_block_entry e;
	struct xdp_block_val val;
	struct xdp_lpm6 key, next;
	unsigned f;
	void *prev;
	int fd, rc;

	for (f = 0; f < 2; f++) {
		fd = p->fd[fams[f] == 4 ? XDP_M_BLOCK4 : XDP_M_BLOCK6];
		prev = NULL;
		while (bpf_map_get_next_key(fd, prev, &next) == 0) {
			key = next;
			prev = &key;
			if (bpf_map_lookup_elem(fd, &key, &val))
				continue;	/* deleted meanwhile */
			memset(&e, 0, sizeof(e));
			if (xdp_prefix_make(fams[f], key.addr, key.prefixlen, &e.prefix))
				continue;
			e.hits = val.hits;
			e.expires_ns = val.expires_ns;
			e.added_ns = val.added_ns;
			rc = fn(&e, arg);
			if (rc)
				return rc;
		}
		if (errno != ENOENT)
			return -errno;
	}
	return 0;
}

#endif /* RG_XDP_LIBBPF */

#ifdef RG_HAVE_XDP
/* ---------------------------------------------------------------------- */
/* rcptgated's xdp module                                                  */

#define XDP_MOD_ALLOW_MAX 1024	/* allowlist prefixes */
#define XDP_MOD_BLOCK_MAX XDP_BLOCK_MAX

/* Module counters, named for `rcptctl stats` (group "xdp"). */
#define XDP_MOD_STATS(X)                                                             \
	X(PORTS, "ports", "ports with the program pinned under xdp_pin_dir")         \
	X(PORTS_LIVE, "ports_live", "of those, ports whose program is attached now")  \
	X(HARVEST_EVENTS, "harvest_events", "harvest reports from the data plane")    \
	X(HARVEST_ALLOWED, "harvest_allowlisted", "harvest reports for allowlisted sources") \
	X(BLOCKS_ACTIVE, "blocks_active", "prefixes blocked by rcptgated now")       \
	X(BLOCKS_ADDED, "blocks_added", "blocks added (harvest and manual)")          \
	X(BLOCKS_EXPIRED, "blocks_expired", "blocks removed at expiry")              \
	X(BLOCKS_FULL, "blocks_full", "blocks refused: blocklist full")               \
	X(MAP_ERRORS, "map_errors", "failed map updates")                             \
	X(REPLAYS, "port_replays", "ports whose program changed and got the blocklist again") \
	X(PORTS_OVER, "ports_over_limit", "pinned ports ignored: more than XDP_MOD_PORTS_MAX")

enum xdp_mod_stat {
#define XDP_MOD_ENUM(id, name, help) XDP_MS_##id,
	XDP_MOD_STATS(XDP_MOD_ENUM)
#undef XDP_MOD_ENUM
	XDP_MS__COUNT
};

static const char *const xdp_mod_stat_names[XDP_MS__COUNT] = {
#define XDP_MOD_NAME(id, name, help) [XDP_MS_##id] = name,
	XDP_MOD_STATS(XDP_MOD_NAME)
#undef XDP_MOD_NAME
};

static const char *const xdp_mod_stat_help[XDP_MS__COUNT] = {
#define XDP_MOD_HELP(id, name, help) [XDP_MS_##id] = help,
	XDP_MOD_STATS(XDP_MOD_HELP)
#undef XDP_MOD_HELP
};

/* A prefix rcptgated blocks, or remembers for backoff after its block ended. */
struct blk {
	struct xdp_prefix prefix;
	uint64_t added_s;	/* realtime */
	uint64_t expires_s;	/* realtime; 0 = never */
	uint64_t forget_s;	/* realtime: drop the offence history after this */
	uint32_t offences;
	bool manual;
	bool active;		/* in the maps */
};

static struct {
	bool started;
	char pin_root[CONFIG_PATH_MAX];
	uint32_t ttl, ttl_max;
	struct xdp_prefix *allow;
	unsigned nallow;
	struct blk *blk;
	unsigned nblk, cap;
#ifdef RG_XDP_LIBBPF
	struct xdp_port ports[XDP_MOD_PORTS_MAX];
	unsigned nports;
#endif
	uint64_t timer;
	uint64_t st[XDP_MS__COUNT];
} xm;

static uint64_t wall_s(void)
{
	return xdp_wall_ns() / 1000000000u;
}

#ifdef RG_XDP_LIBBPF
/* realtime expiry → the program's monotonic clock */
static uint64_t expiry_mono_ns(uint64_t expires_s)
{
	uint64_t now_s = wall_s();

	if (!expires_s)
		return 0;
	return xdp_mono_ns() + (expires_s > now_s ? expires_s - now_s : 0) * 1000000000u;
}
#endif

static int load_allowlist(const char *path, struct xdp_prefix **out, unsigned *n, char *err,
			  size_t errlen)
{
	struct xdp_prefix *list = NULL;
	char line[256], *s, *e;
	unsigned cnt = 0, lineno = 0;
	FILE *f;

	*out = NULL;
	*n = 0;
	if (!path[0])
		return 0;
	f = fopen(path, "re");
	if (!f)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	list = calloc(XDP_MOD_ALLOW_MAX, sizeof(*list));
	if (!list) {
		fclose(f);
		return fail(err, errlen, -ENOMEM, "out of memory");
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if ((s = strchr(line, '#')))
			*s = '\0';
		for (s = line; *s == ' ' || *s == '\t'; s++)
			;
		for (e = s + strlen(s); e > s && (e[-1] == '\n' || e[-1] == ' ' ||
						  e[-1] == '\t' || e[-1] == '\r'); e--)
			;
		*e = '\0';
		if (!*s)
			continue;
		if (cnt == XDP_MOD_ALLOW_MAX) {
			fclose(f);
			free(list);
			return fail(err, errlen, -E2BIG, "%s:%u: more than %u prefixes", path,
				    lineno, XDP_MOD_ALLOW_MAX);
		}
		if (xdp_prefix_parse(s, &list[cnt])) {
			fclose(f);
			free(list);
			return fail(err, errlen, -EINVAL, "%s:%u: not a prefix: %s", path, lineno,
				    s);
		}
		cnt++;
	}
	fclose(f);
	*out = list;
	*n = cnt;
	return 0;
}

static const struct xdp_prefix *allowlisted(const struct xdp_prefix *p)
{
	unsigned i;

	for (i = 0; i < xm.nallow; i++)
		if (xdp_prefix_overlaps(p, &xm.allow[i]))
			return &xm.allow[i];
	return NULL;
}

static struct blk *blk_find(const struct xdp_prefix *p)
{
	unsigned i;

	for (i = 0; i < xm.nblk; i++)
		if (xdp_prefix_equal(&xm.blk[i].prefix, p))
			return &xm.blk[i];
	return NULL;
}

static struct blk *blk_new(const struct xdp_prefix *p)
{
	struct blk *b;
	unsigned cap;

	if (xm.nblk == xm.cap) {
		if (xm.cap >= XDP_MOD_BLOCK_MAX)
			return NULL;
		cap = xm.cap ? xm.cap * 2 : 64;
		b = realloc(xm.blk, cap * sizeof(*b));
		if (!b)
			return NULL;
		xm.blk = b;
		xm.cap = cap;
	}
	b = &xm.blk[xm.nblk++];
	memset(b, 0, sizeof(*b));
	b->prefix = *p;
	return b;
}

static void blk_remove(struct blk *b)
{
	*b = xm.blk[--xm.nblk];
}

#ifdef RG_XDP_LIBBPF
static void push_block(const struct blk *b)
{
	unsigned i;

	for (i = 0; i < xm.nports; i++)
		if (xdp_port_block_put(&xm.ports[i], &b->prefix, expiry_mono_ns(b->expires_s),
				       b->added_s * 1000000000u))
			xm.st[XDP_MS_MAP_ERRORS]++;
}

static int pull_block(const struct xdp_prefix *p)
{
	unsigned i, found = 0;
	int rc;

	for (i = 0; i < xm.nports; i++) {
		rc = xdp_port_block_del(&xm.ports[i], p);
		if (rc == 0)
			found++;
		else if (rc != -ENOENT)
			xm.st[XDP_MS_MAP_ERRORS]++;
	}
	return found ? 0 : -ENOENT;
}

/* Put rcptgated's blocks into port i (its program is new to us). */
static void replay(unsigned i)
{
	unsigned j;

	for (j = 0; j < xm.nblk; j++)
		if (xm.blk[j].active &&
		    xdp_port_block_put(&xm.ports[i], &xm.blk[j].prefix,
				       expiry_mono_ns(xm.blk[j].expires_s),
				       xm.blk[j].added_s * 1000000000u))
			xm.st[XDP_MS_MAP_ERRORS]++;
}

/* Follow the ports pinned under pin_root: new ones, replaced programs (a
 * restarted data plane: adopt the new one, carrying the old config over),
 * vanished pins. */
static void scan_ports(void)
{
	struct xdp_port p, *cur;
	struct dirent *de;
	bool seen[XDP_MOD_PORTS_MAX] = {false};
	unsigned i, live = 0;
	DIR *d;

	d = opendir(xm.pin_root);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= IF_NAMESIZE)
			continue;
		if (xdp_port_open(xm.pin_root, de->d_name, &p, NULL, 0))
			continue;
		/* the pins are older than the attached program: adopt it */
		if (xdp_port_live(&p) == 0) {
			struct xdp_port n;

			if (xdp_port_adopt(xm.pin_root, de->d_name, NULL, &n, NULL, 0) == 0) {
				xdp_port_close(&p);
				p = n;
			}
		}
		cur = NULL;
		for (i = 0; i < xm.nports; i++)
			if (strcmp(xm.ports[i].ifname, p.ifname) == 0)
				cur = &xm.ports[i];
		if (cur && cur->map_id[XDP_M_BLOCK4] == p.map_id[XDP_M_BLOCK4]) {
			xdp_port_close(&p);
			seen[cur - xm.ports] = true;
			continue;
		}
		if (!cur) {
			if (xm.nports == XDP_MOD_PORTS_MAX) {
				xm.st[XDP_MS_PORTS_OVER]++;
				xdp_port_close(&p);
				continue;
			}
			cur = &xm.ports[xm.nports++];
		} else {
			xdp_port_close(cur);
			xm.st[XDP_MS_REPLAYS]++;
		}
		*cur = p;
		seen[cur - xm.ports] = true;
		replay((unsigned)(cur - xm.ports));
		log_msg(LOG_INFO, "xdp: managing %s (%s)", cur->ifname,
			xdp_port_live(cur) == 1 ? "program attached" : "pinned maps only");
	}
	if (d)
		closedir(d);
	for (i = xm.nports; i-- > 0;) {
		if (seen[i])
			continue;
		xdp_port_close(&xm.ports[i]);
		xm.ports[i] = xm.ports[--xm.nports];
	}
	for (i = 0; i < xm.nports; i++)
		if (xdp_port_live(&xm.ports[i]) == 1)
			live++;
	xm.st[XDP_MS_PORTS] = xm.nports;
	xm.st[XDP_MS_PORTS_LIVE] = live;
}
#else
static void push_block(const struct blk *b)
{
	(void)b;
}

static int pull_block(const struct xdp_prefix *p)
{
	(void)p;
	return -ENOENT;
}

static void scan_ports(void)
{
}
#endif

static void expire_blocks(void)
{
	uint64_t now = wall_s();
	char buf[XDP_PREFIX_STRLEN];
	unsigned i, active = 0;

	for (i = xm.nblk; i-- > 0;) {
		struct blk *b = &xm.blk[i];

		if (b->active && b->expires_s && now >= b->expires_s) {
			pull_block(&b->prefix);
			b->active = false;
			xm.st[XDP_MS_BLOCKS_EXPIRED]++;
			xdp_prefix_format(&b->prefix, buf, sizeof(buf));
			log_msg(LOG_NOTICE, "xdp: block of %s expired", buf);
		}
		if (!b->active && now >= b->forget_s) {
			blk_remove(b);
			continue;
		}
		if (b->active)
			active++;
	}
	xm.st[XDP_MS_BLOCKS_ACTIVE] = active;
}

static void tick(void *arg)
{
	(void)arg;
	scan_ports();
	expire_blocks();
}

/* Block p for ttl_s (0 = until unblocked). */
static int block_prefix(const struct xdp_prefix *p, uint32_t ttl_s, bool manual,
			uint32_t *offences)
{
	uint64_t now = wall_s();
	struct blk *b;

	b = blk_find(p);
	if (!b) {
		b = blk_new(p);
		if (!b) {
			xm.st[XDP_MS_BLOCKS_FULL]++;
			return -ENOSPC;
		}
	}
	if (!manual) {
		uint32_t t = xm.ttl;

		b->offences++;
		/* backoff: the block time doubles with each repeat, up to ttl_max */
		for (uint32_t k = 1; k < b->offences && t < xm.ttl_max; k++)
			t = t > xm.ttl_max / 2 ? xm.ttl_max : t * 2;
		ttl_s = t < xm.ttl_max ? t : xm.ttl_max;
	}
	if (!b->active)
		b->added_s = now;
	b->manual = manual || (b->active && b->manual);
	b->expires_s = ttl_s ? now + ttl_s : 0;
	b->forget_s = (b->expires_s ? b->expires_s : now) + xm.ttl_max;
	b->active = true;
	push_block(b);
	xm.st[XDP_MS_BLOCKS_ADDED]++;
	if (offences)
		*offences = b->offences;
	return 0;
}

static void on_harvest(const struct msg_event *ev, void *arg)
{
	char buf[XDP_PREFIX_STRLEN], abuf[XDP_PREFIX_STRLEN], cli[INET6_ADDRSTRLEN];
	const struct xdp_prefix *a;
	const struct blk *b;
	struct xdp_prefix p;
	unsigned len;

	(void)arg;
	xm.st[XDP_MS_HARVEST_EVENTS]++;
	len = ev->prefix_len ? ev->prefix_len : (ev->family == 4 ? 32 : 128);
	if (xdp_prefix_make(ev->family, ev->client_ip, len, &p))
		return;
	xdp_prefix_format(&p, buf, sizeof(buf));
	inet_ntop(ev->family == 4 ? AF_INET : AF_INET6, ev->client_ip, cli, sizeof(cli));
	a = allowlisted(&p);
	if (a) {
		xm.st[XDP_MS_HARVEST_ALLOWED]++;
		xdp_prefix_format(a, abuf, sizeof(abuf));
		log_kind(LOG_K_HARVEST, LOG_NOTICE,
			 "xdp: harvest from %s (%u invalid recipients): %s not blocked, "
			 "allowlisted by %s", cli, ev->count, buf, abuf);
		return;
	}
	if (block_prefix(&p, 0, false, NULL) || !(b = blk_find(&p))) {
		log_kind(LOG_K_HARVEST, LOG_WARNING,
			 "xdp: harvest from %s: cannot block %s: blocklist full", cli, buf);
		return;
	}
	log_kind(LOG_K_HARVEST, LOG_NOTICE,
		 "xdp: harvest from %s (%u invalid recipients): blocked %s for %us (offence %u)",
		 cli, ev->count, buf, (unsigned)(b->expires_s - wall_s()), b->offences);
}

static int apply_config(const struct config *cfg, char *err, size_t errlen)
{
	struct xdp_prefix *allow;
	unsigned nallow;
	int rc;

	rc = load_allowlist(cfg->block_allow, &allow, &nallow, err, errlen);
	if (rc)
		return rc;
	free(xm.allow);
	xm.allow = allow;
	xm.nallow = nallow;
	xm.ttl = cfg->block_ttl;
	xm.ttl_max = cfg->block_ttl_max;
#ifdef RG_XDP_LIBBPF
	if (strcmp(xm.pin_root, cfg->xdp_pin_dir) != 0) {
		unsigned i;

		for (i = 0; i < xm.nports; i++)
			xdp_port_close(&xm.ports[i]);
		xm.nports = 0;
	}
#endif
	snprintf(xm.pin_root, sizeof(xm.pin_root), "%s", cfg->xdp_pin_dir);
	return 0;
}

int xdp_start(const struct config *cfg, char *err, size_t errlen)
{
	int rc;

	rc = apply_config(cfg, err, errlen);
	if (rc)
		return rc;
	xm.timer = daemon_timer_add(0, XDP_MOD_TICK_MS, tick, NULL);
	if (!xm.timer)
		return fail(err, errlen, -ENOMEM, "xdp: no timer");
	core_set_harvest_hook(on_harvest, NULL);
	xm.started = true;
#ifndef RG_XDP_LIBBPF
	log_msg(LOG_WARNING, "xdp: built without libbpf: harvest sources are not blocked");
#endif
	return 0;
}

int xdp_reload(const struct config *cfg, char *err, size_t errlen)
{
	return apply_config(cfg, err, errlen);
}

void xdp_stop(void)
{
	if (!xm.started)
		return;
	core_set_harvest_hook(NULL, NULL);
	daemon_timer_cancel(xm.timer);
#ifdef RG_XDP_LIBBPF
	for (unsigned i = 0; i < xm.nports; i++)
		xdp_port_close(&xm.ports[i]);
	xm.nports = 0;
#endif
	/* the blocks stay in the maps: the program keeps enforcing them (it checks
	 * expiry itself) while rcptgated is down */
	free(xm.allow);
	free(xm.blk);
	memset(&xm, 0, sizeof(xm));
}

#ifndef RG_XDP_LIBBPF
int xdp_block(const char *prefix, uint32_t ttl_s, char *err, size_t errlen)
{
	(void)prefix;
	(void)ttl_s;
	return fail(err, errlen, -ENOTSUP, "rcptgated was built without XDP support");
}
#else
int xdp_block(const char *prefix, uint32_t ttl_s, char *err, size_t errlen)
{
	char abuf[XDP_PREFIX_STRLEN];
	const struct xdp_prefix *a;
	struct xdp_prefix p;

	if (xdp_prefix_parse(prefix, &p))
		return fail(err, errlen, -EINVAL, "not a prefix: %s", prefix);
	a = allowlisted(&p);
	if (a) {
		xdp_prefix_format(a, abuf, sizeof(abuf));
		return fail(err, errlen, -EPERM, "%s overlaps allowlisted %s", prefix, abuf);
	}
	if (block_prefix(&p, ttl_s, true, NULL))
		return fail(err, errlen, -ENOSPC, "blocklist full (%u)", XDP_MOD_BLOCK_MAX);
	xdp_prefix_format(&p, abuf, sizeof(abuf));
	if (ttl_s)
		log_msg(LOG_NOTICE, "xdp: %s blocked by hand for %us", abuf, ttl_s);
	else
		log_msg(LOG_NOTICE, "xdp: %s blocked by hand until unblocked", abuf);
	if (xm.nports == 0)
		fail(err, errlen, 0, "no XDP port under %s yet: applied when one appears",
		     xm.pin_root);
	return 0;
}
#endif

int xdp_unblock(const char *prefix, char *err, size_t errlen)
{
	struct xdp_prefix p;
	struct blk *b;
	int rc;

	if (xdp_prefix_parse(prefix, &p))
		return fail(err, errlen, -EINVAL, "not a prefix: %s", prefix);
	rc = pull_block(&p);
	b = blk_find(&p);
	if (b) {
		rc = b->active ? 0 : rc;
		blk_remove(b);	/* forgets the offences too: a deliberate pardon */
	}
	if (rc)
		return fail(err, errlen, -ENOENT, "%s is not blocked", prefix);
	return 0;
}

#ifdef RG_XDP_LIBBPF
struct merge {
	struct xdp_block_info *v;
	struct xdp_prefix *pf;
	unsigned n, cap;
};

static int merge_one(const struct xdp_block_entry *e, void *arg)
{
	struct merge *m = arg;
	uint64_t now_mono = xdp_mono_ns(), now = wall_s();
	unsigned i;

	for (i = 0; i < m->n; i++)
		if (xdp_prefix_equal(&m->pf[i], &e->prefix))
			break;
	if (i == m->n) {
		if (m->n == m->cap)
			return 0;
		m->n++;
		memset(&m->v[i], 0, sizeof(m->v[i]));
		m->pf[i] = e->prefix;
		xdp_prefix_format(&e->prefix, m->v[i].prefix, sizeof(m->v[i].prefix));
		m->v[i].added_s = e->added_ns / 1000000000u;
		m->v[i].manual = true;	/* not rcptgated's: put by rg-xdp */
		if (e->expires_ns)
			m->v[i].expires_s = now + (e->expires_ns > now_mono ?
				(e->expires_ns - now_mono) / 1000000000u : 0);
	}
	m->v[i].hits += e->hits;
	m->v[i].ports++;
	return 0;
}
#endif

int xdp_blocks_foreach(xdp_block_fn fn, void *arg)
{
	struct xdp_block_info one;
	unsigned i;
	int rc = 0;

#ifdef RG_XDP_LIBBPF
	struct merge m = {0};
	unsigned j;

	m.cap = 2 * XDP_BLOCK_MAX;
	m.v = calloc(m.cap, sizeof(*m.v));
	m.pf = calloc(m.cap, sizeof(*m.pf));
	if (!m.v || !m.pf) {
		free(m.v);
		free(m.pf);
		return -ENOMEM;
	}
	for (i = 0; i < xm.nports; i++)
		xdp_port_block_foreach(&xm.ports[i], merge_one, &m);
	for (i = 0; i < m.n && rc == 0; i++) {
		struct blk *b = blk_find(&m.pf[i]);

		if (b && b->active) {
			m.v[i].offences = b->offences;
			m.v[i].manual = b->manual;
			m.v[i].expires_s = b->expires_s;
			m.v[i].added_s = b->added_s;
		}
		rc = fn(&m.v[i], arg);
	}
	/* blocks no port holds yet (no port pinned) */
	for (j = 0; j < xm.nblk && rc == 0; j++) {
		const struct blk *b = &xm.blk[j];

		if (!b->active)
			continue;
		for (i = 0; i < m.n; i++)
			if (xdp_prefix_equal(&m.pf[i], &b->prefix))
				break;
		if (i < m.n)
			continue;
		memset(&one, 0, sizeof(one));
		xdp_prefix_format(&b->prefix, one.prefix, sizeof(one.prefix));
		one.added_s = b->added_s;
		one.expires_s = b->expires_s;
		one.offences = b->offences;
		one.manual = b->manual;
		rc = fn(&one, arg);
	}
	free(m.v);
	free(m.pf);
#else
	for (i = 0; i < xm.nblk && rc == 0; i++) {
		if (!xm.blk[i].active)
			continue;
		memset(&one, 0, sizeof(one));
		xdp_prefix_format(&xm.blk[i].prefix, one.prefix, sizeof(one.prefix));
		one.added_s = xm.blk[i].added_s;
		one.expires_s = xm.blk[i].expires_s;
		one.offences = xm.blk[i].offences;
		one.manual = xm.blk[i].manual;
		rc = fn(&one, arg);
	}
#endif
	return rc;
}

void xdp_stats_foreach(core_stat_fn fn, void *arg)
{
	unsigned i;

#ifdef RG_XDP_LIBBPF
	uint64_t sum[XDP_CTR__COUNT] = {0}, c[XDP_CTR__COUNT];
	unsigned j;

	for (i = 0; i < xm.nports; i++) {
		if (xdp_port_counters(&xm.ports[i], c))
			continue;
		for (j = 0; j < XDP_CTR__COUNT; j++)
			sum[j] += c[j];
	}
	for (j = 0; j < XDP_CTR__COUNT; j++)
		fn("xdp", xdp_ctr_names[j], sum[j], xdp_ctr_help[j], arg);
#endif
	for (i = 0; i < XDP_MS__COUNT; i++)
		fn("xdp", xdp_mod_stat_names[i], xm.st[i], xdp_mod_stat_help[i], arg);
}

#endif /* RG_HAVE_XDP */
