/*
 * rg_maps.c — the XDP program's map layer (see rg_maps.h): loading and
 * attaching it through the bpftool skeleton (libbpf), adopting the copy
 * DPDK's net_af_xdp loaded, pinning and opening each port's maps (under
 * PIN_ROOT/IFNAME/MAPNAME), one port's blocklist and counters; prefixes and
 * clocks.  Without libbpf (no RG_XDP_LIBBPF) the port calls answer -ENOTSUP.
 *
 * Thread: the caller's (rcptgated's main thread; rg-xdp's only thread).
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

#include "rg_maps.h"

#ifdef RG_XDP_LIBBPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "rg_xdp.skel.h"
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

int xdp_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
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
			xdp_fail(err, errlen, rc, "%s: %s", path, strerror(-rc));
			goto fail;
		}
		rc = map_id_of(out->fd[i], &out->map_id[i], NULL, 0);
		if (rc) {
			xdp_fail(err, errlen, rc, "%s: map info: %s", path, strerror(-rc));
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
		return xdp_fail(err, errlen, rc, "%s: %s (is bpffs mounted on /sys/fs/bpf?)",
			    path, strerror(-rc));
	for (i = 0; i < XDP_M__COUNT; i++) {
		rc = pin_path(path, sizeof(path), pin_root, p->ifname, xdp_map_names[i]);
		if (rc)
			return xdp_fail(err, errlen, rc, "pin path too long");
		if (unlink(path) && errno != ENOENT)
			return xdp_fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
		if (bpf_obj_pin(p->fd[i], path))
			return xdp_fail(err, errlen, -errno, "pin %s: %s", path, strerror(errno));
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
		return xdp_fail(err, errlen, -ENOMEM, "out of memory");
	cfg->flags = XDP_CFG_VALID | (c->other_pass ? XDP_CFG_OTHER_PASS : 0);
	if (c->nsmtp_ports == 0)
		cfg->smtp_ports[XDP_SMTP_PORT_DEFAULT >> 3] |= 1u << (XDP_SMTP_PORT_DEFAULT & 7);
	for (i = 0; i < c->nsmtp_ports && i < XDP_SMTP_PORTS_MAX; i++)
		cfg->smtp_ports[c->smtp_ports[i] >> 3] |= (uint8_t)(1u << (c->smtp_ports[i] & 7));

	if (c->peer[0]) {
		peer = if_nametoindex(c->peer);
		if (!peer) {
			rc = xdp_fail(err, errlen, -ENODEV, "peer %s: no such interface", c->peer);
			goto out;
		}
		if (bpf_map_update_elem(p->fd[XDP_M_TX_PORT], &p->ifindex, &peer, BPF_ANY)) {
			rc = xdp_fail(err, errlen, -errno, "%s: set peer %s: %s", p->ifname, c->peer,
				  strerror(errno));
			goto out;
		}
	} else if (bpf_map_delete_elem(p->fd[XDP_M_TX_PORT], &p->ifindex) && errno != ENOENT) {
		rc = xdp_fail(err, errlen, -errno, "%s: clear peer: %s", p->ifname, strerror(errno));
		goto out;
	}
	if (bpf_map_update_elem(p->fd[XDP_M_CFG], &zero, cfg, BPF_ANY))
		rc = xdp_fail(err, errlen, -errno, "%s: write config: %s", p->ifname, strerror(errno));
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
		return xdp_fail(err, errlen, rc, "%s: program %u: %s", p->ifname, prog_id,
			    strerror(-rc));
	if (!ours)
		return xdp_fail(err, errlen, -EMEDIUMTYPE, "%s: the attached program %u is not %s",
			    p->ifname, prog_id, XDP_PROG_NAME);
	for (i = 0; i < nids; i++) {
		fd = bpf_map_get_fd_by_id(ids[i]);
		if (fd < 0)
			return xdp_fail(err, errlen, -errno, "map %u: %s", ids[i], strerror(errno));
		rc = map_id_of(fd, &id, name, sizeof(name));
		if (rc) {
			close(fd);
			return xdp_fail(err, errlen, rc, "map %u: %s", ids[i], strerror(-rc));
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
			return xdp_fail(err, errlen, -EMEDIUMTYPE, "%s: program %u has no map %s",
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
		return xdp_fail(err, errlen, -ENODEV, "%s: no such interface", ifname);
	rc = attached_prog(out->ifindex, &prog_id, &mode);
	if (rc)
		return xdp_fail(err, errlen, rc, "%s: no XDP program attached", ifname);
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
			xdp_fail(err, errlen, rc, "%s: carrying state over: %s", ifname,
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
		return xdp_fail(err, errlen, -ENODEV, "%s: no such interface", ifname);
	skel = rg_xdp__open_and_load();
	if (!skel)
		return xdp_fail(err, errlen, -errno ? -errno : -EINVAL, "loading %s: %s",
			    XDP_PROG_NAME, strerror(errno));
	xflags = (flags & XDP_ATTACH_SKB) ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	if (!(flags & XDP_ATTACH_REPLACE))
		xflags |= XDP_FLAGS_UPDATE_IF_NOEXIST;
	rc = bpf_xdp_attach((int)ifindex, bpf_program__fd(skel->progs.rg_xdp), xflags, NULL);
	if (rc) {
		xdp_fail(err, errlen, rc, "%s: attach (%s mode): %s%s", ifname,
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
			return xdp_fail(err, errlen, rc, "%s: program %u: %s", ifname, prog_id,
				    strerror(-rc));
		if (!ours) {
			rc = xdp_fail(err, errlen, -EMEDIUMTYPE,
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
				return xdp_fail(err, errlen, rc, "%s: detach: %s", ifname,
					    strerror(-rc));
		}
	}
	if (!(flags & XDP_DETACH_KEEP_PINS) && unpin_all(pin_root, ifname) && rc == 0)
		rc = xdp_fail(err, errlen, -errno, "%s/%s: unpin: %s", pin_root, ifname,
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

bool xdp_maps_supported(void)
{
	return true;
}

#else /* !RG_XDP_LIBBPF: no map layer in this build */

int xdp_port_attach(const char *pin_root, const char *ifname, const struct xdp_port_conf *c,
		    unsigned flags, struct xdp_port *out, char *err, size_t errlen)
{
	(void)pin_root, (void)c, (void)flags, (void)out;
	return xdp_fail(err, errlen, -ENOTSUP, "%s: built without libbpf", ifname);
}

int xdp_port_adopt(const char *pin_root, const char *ifname, const struct xdp_port_conf *c,
		   struct xdp_port *out, char *err, size_t errlen)
{
	(void)pin_root, (void)c, (void)out;
	return xdp_fail(err, errlen, -ENOTSUP, "%s: built without libbpf", ifname);
}

int xdp_port_open(const char *pin_root, const char *ifname, struct xdp_port *out, char *err,
		  size_t errlen)
{
	(void)pin_root, (void)out;
	return xdp_fail(err, errlen, -ENOTSUP, "%s: built without libbpf", ifname);
}

void xdp_port_close(struct xdp_port *p)
{
	(void)p;
}

int xdp_port_detach(const char *pin_root, const char *ifname, unsigned flags, char *err,
		    size_t errlen)
{
	(void)pin_root, (void)flags;
	return xdp_fail(err, errlen, -ENOTSUP, "%s: built without libbpf", ifname);
}

int xdp_port_configure(const struct xdp_port *p, const struct xdp_port_conf *c, char *err,
		       size_t errlen)
{
	(void)p, (void)c;
	return xdp_fail(err, errlen, -ENOTSUP, "built without libbpf");
}

int xdp_port_get_conf(const struct xdp_port *p, struct xdp_port_conf *c)
{
	(void)p, (void)c;
	return -ENOTSUP;
}

int xdp_port_live(const struct xdp_port *p)
{
	(void)p;
	return -ENOTSUP;
}

int xdp_port_counters(const struct xdp_port *p, uint64_t out[XDP_CTR__COUNT])
{
	(void)p, (void)out;
	return -ENOTSUP;
}

int xdp_port_block_put(const struct xdp_port *p, const struct xdp_prefix *pf,
		       uint64_t expires_ns, uint64_t added_ns)
{
	(void)p, (void)pf, (void)expires_ns, (void)added_ns;
	return -ENOTSUP;
}

int xdp_port_block_del(const struct xdp_port *p, const struct xdp_prefix *pf)
{
	(void)p, (void)pf;
	return -ENOTSUP;
}

int xdp_port_block_get(const struct xdp_port *p, const struct xdp_prefix *pf,
		       struct xdp_block_entry *out)
{
	(void)p, (void)pf, (void)out;
	return -ENOTSUP;
}

int xdp_port_block_foreach(const struct xdp_port *p, xdp_block_entry_fn fn, void *arg)
{
	(void)p, (void)fn, (void)arg;
	return -ENOTSUP;
}

bool xdp_maps_supported(void)
{
	return false;
}

#endif /* RG_XDP_LIBBPF */
