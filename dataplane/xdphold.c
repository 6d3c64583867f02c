/*
 * xdphold.c — the data plane's side of the XDP hold set (see xdphold.h):
 * finds the hold map of the XDP program attached to each port's interface
 * and writes the engine's changes into it.  Plain syscalls (rtnetlink for the
 * program attached to an interface, bpf() for its maps): the data plane
 * stays free of libbpf (STYLE.md rule 1), and nothing here needs more than
 * these few commands.  Main thread (open) and the owning worker (apply).
 */
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "xdp_shared.h"
#include "xdphold.h"

static long sys_bpf(int cmd, union bpf_attr *a)
{
	return syscall(__NR_bpf, cmd, a, sizeof(*a));
}

/* The id of the XDP program attached to ifindex (0: none), or -errno. */
static long xdp_prog_id(unsigned ifindex)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req;
	char buf[16384];
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	long id = 0;
	ssize_t n;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return -errno;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifi));
	req.nh.nlmsg_type = RTM_GETLINK;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.nh.nlmsg_seq = 1;
	req.ifi.ifi_family = AF_UNSPEC;
	req.ifi.ifi_index = (int)ifindex;
	if (sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		id = -errno;
		goto out;
	}
	n = recv(fd, buf, sizeof(buf), 0);
	if (n < 0) {
		id = -errno;
		goto out;
	}
	for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n);
	     nh = NLMSG_NEXT(nh, n)) {
		struct rtattr *ra;
		int len;
		if (nh->nlmsg_type == NLMSG_ERROR) {
			id = -ENODEV;
			break;
		}
		if (nh->nlmsg_type != RTM_NEWLINK)
			continue;
		ra = IFLA_RTA((struct ifinfomsg *)NLMSG_DATA(nh));
		len = (int)IFLA_PAYLOAD(nh);
		for (; RTA_OK(ra, len); ra = RTA_NEXT(ra, len)) {
			struct rtattr *x;
			int xl;
			if ((ra->rta_type & ~NLA_F_NESTED) != IFLA_XDP)
				continue;
			x = RTA_DATA(ra);
			xl = (int)RTA_PAYLOAD(ra);
			for (; RTA_OK(x, xl); x = RTA_NEXT(x, xl))
				if (x->rta_type == IFLA_XDP_PROG_ID &&
				    RTA_PAYLOAD(x) >= sizeof(uint32_t)) {
					uint32_t v;
					memcpy(&v, RTA_DATA(x), sizeof(v));
					id = v;
				}
		}
	}
out:
	close(fd);
	return id;
}

/* The fd of the map named XDP_MAP_HOLD of program prog_id, or -errno. */
static int hold_map_of(uint32_t prog_id, uint32_t *map_id)
{
	union bpf_attr a;
	struct bpf_prog_info pi;
	uint32_t ids[64];
	int pfd, rc = -ENOENT;

	memset(&a, 0, sizeof(a));
	a.prog_id = prog_id;
	pfd = (int)sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
	if (pfd < 0)
		return -errno;
	memset(&pi, 0, sizeof(pi));
	pi.nr_map_ids = 64;
	pi.map_ids = (uint64_t)(uintptr_t)ids;
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = (uint32_t)pfd;
	a.info.info_len = sizeof(pi);
	a.info.info = (uint64_t)(uintptr_t)&pi;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) != 0) {
		rc = -errno;
		goto out;
	}
	for (uint32_t i = 0; i < pi.nr_map_ids && i < 64; i++) {
		struct bpf_map_info mi;
		int mfd;
		memset(&a, 0, sizeof(a));
		a.map_id = ids[i];
		mfd = (int)sys_bpf(BPF_MAP_GET_FD_BY_ID, &a);
		if (mfd < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		memset(&a, 0, sizeof(a));
		a.info.bpf_fd = (uint32_t)mfd;
		a.info.info_len = sizeof(mi);
		a.info.info = (uint64_t)(uintptr_t)&mi;
		if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) == 0 && !strcmp(mi.name, XDP_MAP_HOLD) &&
		    mi.key_size == sizeof(struct xdp_hold_key) &&
		    mi.value_size == sizeof(struct xdp_hold_val)) {
			*map_id = mi.id;
			rc = mfd;
			break;
		}
		close(mfd);
	}
out:
	close(pfd);
	return rc;
}

int xdphold_open(struct xdphold *h, const unsigned *ifindex, unsigned n, char *err,
		 size_t errlen)
{
	uint32_t ids[XDPHOLD_MAX];

	memset(h, 0, sizeof(*h));
	err[0] = 0;
	for (unsigned i = 0; i < n && h->n < XDPHOLD_MAX; i++) {
		long prog;
		uint32_t mid = 0;
		int fd, dup = 0;
		if (!ifindex[i])
			continue;
		prog = xdp_prog_id(ifindex[i]);
		if (prog <= 0)
			continue; /* no XDP program there: nothing to tell */
		fd = hold_map_of((uint32_t)prog, &mid);
		if (fd < 0) {
			snprintf(err, errlen, "XDP program %ld on ifindex %u has no usable %s map",
				 prog, ifindex[i], XDP_MAP_HOLD);
			continue;
		}
		for (unsigned k = 0; k < h->n; k++)
			dup |= ids[k] == mid;
		if (dup) {
			close(fd);
			continue;
		}
		ids[h->n] = mid;
		h->fd[h->n++] = fd;
	}
	return (int)h->n;
}

static void key_of(const struct engine_hold *c, int rev, struct xdp_hold_key *k)
{
	unsigned alen = c->family == 4 ? 4u : 16u;
	memset(k, 0, sizeof(*k));
	k->family = c->family;
	k->sport = rev ? c->s_port : c->c_port;
	k->dport = rev ? c->c_port : c->s_port;
	memcpy(k->saddr, rev ? c->s_ip : c->c_ip, alen);
	memcpy(k->daddr, rev ? c->c_ip : c->s_ip, alen);
}

int xdphold_apply(const struct xdphold *h, const struct engine_hold *c)
{
	int bad = 0;
	for (unsigned i = 0; i < h->n; i++)
		for (int rev = 0; rev < 2; rev++) {
			struct xdp_hold_key k;
			struct xdp_hold_val v = {0};
			union bpf_attr a;
			key_of(c, rev, &k);
			memset(&a, 0, sizeof(a));
			a.map_fd = (uint32_t)h->fd[i];
			a.key = (uint64_t)(uintptr_t)&k;
			if (c->add) {
				a.value = (uint64_t)(uintptr_t)&v;
				a.flags = BPF_ANY;
				bad |= sys_bpf(BPF_MAP_UPDATE_ELEM, &a) != 0;
			} else {
				bad |= sys_bpf(BPF_MAP_DELETE_ELEM, &a) != 0 && errno != ENOENT;
			}
		}
	return bad ? -1 : 0;
}

void xdphold_close(struct xdphold *h)
{
	for (unsigned i = 0; i < h->n; i++)
		close(h->fd[i]);
	h->n = 0;
}
