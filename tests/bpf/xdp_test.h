/*
 * xdp_test.h — what the XDP tests share: a private network namespace with
 * veth pairs per test process, a frame builder, BPF_PROG_TEST_RUN, the
 * program's counters and an AF_XDP socket to bind into xsks_map.
 *
 * Thread: the criterion test process (each test runs in its own process, so
 * the namespace, its veths and every BPF object die with it).
 */
#ifndef RG_XDP_TEST_H
#define RG_XDP_TEST_H

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <linux/if_ether.h>
#include <linux/if_xdp.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xdp/xsk.h>

#include "xdp_shared.h"

/* Ports of the test namespace: frames "arrive" on XT_IN, its peer is XT_PEER. */
#define XT_IN "rgt0"
#define XT_PEER "rgt2"

/* A fresh network namespace with lo and two veth pairs (rgt0/rgt1, rgt2/rgt3),
 * IPv6 off so that no router solicitation or MLD report reaches a program
 * under test and moves its counters. */
static inline void xt_netns(void)
{
	cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %s (run as root)",
		     strerror(errno));
	cr_assert_eq(system("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
			    "net.ipv6.conf.default.disable_ipv6=1 && "
			    "ip link set lo up && "
			    "ip link add rgt0 type veth peer name rgt1 && "
			    "ip link add rgt2 type veth peer name rgt3 && "
			    "for d in rgt0 rgt1 rgt2 rgt3; do ip link set $d up || exit 1; done"),
		     0, "creating veths in the test namespace");
}

/* What frame to build. */
struct xt_frame {
	uint8_t family;		/* 4, 6; 0 = ARP */
	uint8_t nvlan;		/* 802.1Q/802.1ad tags */
	uint8_t l4;		/* IPPROTO_TCP (default when 0), IPPROTO_UDP, IPPROTO_ICMP */
	uint16_t sport, dport;
	uint8_t syn, ack;
	char src[48];		/* source address; default ("") 198.18.1.2 / 2001:2::2 */
	uint8_t ihl;		/* IPv4 header words; default 5 */
	uint16_t frag;		/* IPv4 frag_off (host order), e.g. 0x2000 (MF) */
	uint8_t v6ext;		/* IPv6 hop-by-hop/destination option headers */
	uint8_t v6frag;		/* IPv6 fragment header */
	uint16_t truncate;	/* cut the frame to this many bytes (0 = whole) */
};

#define XT_FRAME_MAX 512

static inline size_t xt_build(const struct xt_frame *f, uint8_t *out)
{
	/* Headers are written through struct pointers: build the frame 2 bytes
	 * into an aligned buffer, so that IP and TCP headers are aligned as
	 * their types require (UBSan checks it), then copy it to out. */
	_Alignas(8) uint8_t room[XT_FRAME_MAX + 2];
	uint8_t *buf = room + 2;
	struct ethhdr *eth = (struct ethhdr *)buf;
	uint8_t *p = buf + sizeof(*eth);
	uint8_t l4 = f->l4 ? f->l4 : IPPROTO_TCP;
	uint16_t proto;
	unsigned i;
	size_t len;

	memset(buf, 0, XT_FRAME_MAX);
	memcpy(eth->h_dest, "\x02\x00\x00\x00\x00\x02", 6);
	memcpy(eth->h_source, "\x02\x00\x00\x00\x00\x01", 6);
	proto = f->family == 4 ? ETH_P_IP : f->family == 6 ? ETH_P_IPV6 : ETH_P_ARP;
	eth->h_proto = htons(f->nvlan ? (f->nvlan > 1 ? ETH_P_8021AD : ETH_P_8021Q) : proto);
	for (i = 0; i < f->nvlan; i++) {
		uint16_t next = i + 1 < f->nvlan ? ETH_P_8021Q : proto;

		p[0] = 0;
		p[1] = (uint8_t)(10 + i);	/* VLAN id */
		p[2] = (uint8_t)(next >> 8);
		p[3] = (uint8_t)next;
		p += 4;
	}
	if (f->family == 4) {
		struct iphdr *ip = (struct iphdr *)p;
		unsigned ihl = f->ihl ? f->ihl : 5;

		ip->version = 4;
		ip->ihl = ihl & 15;
		ip->ttl = 64;
		ip->protocol = l4;
		ip->frag_off = htons(f->frag);
		inet_pton(AF_INET, f->src[0] ? f->src : "198.18.1.2", &ip->saddr);
		inet_pton(AF_INET, "198.18.1.3", &ip->daddr);
		p += (ihl < 5 ? 5 : ihl) * 4;
	} else if (f->family == 6) {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)p;
		uint8_t *nh = &ip6->nexthdr;

		ip6->version = 6;
		ip6->hop_limit = 64;
		inet_pton(AF_INET6, f->src[0] ? f->src : "2001:2::2", &ip6->saddr);
		inet_pton(AF_INET6, "2001:2::3", &ip6->daddr);
		p += sizeof(*ip6);
		for (i = 0; i < f->v6ext; i++) {
			*nh = i == 0 ? IPPROTO_HOPOPTS : IPPROTO_DSTOPTS;
			nh = p;		/* next header is the first byte */
			p[1] = 1;	/* (1 + 1) * 8 = 16 bytes */
			p += 16;
		}
		if (f->v6frag) {
			*nh = IPPROTO_FRAGMENT;
			nh = p;
			p += 8;
		}
		*nh = l4;
	} else {
		p += 28;	/* an ARP body, contents irrelevant */
	}
	if (f->family && l4 == IPPROTO_TCP) {
		struct tcphdr *th = (struct tcphdr *)p;

		th->source = htons(f->sport);
		th->dest = htons(f->dport);
		th->doff = 5;
		th->syn = f->syn;
		th->ack = f->ack;
		p += sizeof(*th);
	} else if (f->family && l4 == IPPROTO_UDP) {
		struct udphdr *uh = (struct udphdr *)p;

		uh->source = htons(f->sport);
		uh->dest = htons(f->dport);
		p += sizeof(*uh);
	} else if (f->family) {
		p += 8;	/* ICMP echo */
	}
	len = (size_t)(p - buf) + 16;	/* some payload */
	if (len < 60)
		len = 60;
	if (f->family == 4)
		((struct iphdr *)(buf + sizeof(*eth) + 4 * f->nvlan))->tot_len =
			htons((uint16_t)(len - sizeof(*eth) - 4 * f->nvlan));
	if (f->family == 6)
		((struct ipv6hdr *)(buf + sizeof(*eth) + 4 * f->nvlan))->payload_len =
			htons((uint16_t)(len - sizeof(*eth) - 4 * f->nvlan - 40));
	if (f->truncate && f->truncate < len)
		len = f->truncate;
	memcpy(out, buf, XT_FRAME_MAX);
	return len;
}

/* One run of the program on frame, arriving on ifindex queue 0: its action. */
static inline uint32_t xt_run(int prog_fd, const uint8_t *frame, size_t len, uint32_t ifindex)
{
	struct xdp_md ctx = {
		.data = 0,
		.data_end = (uint32_t)len,
		.ingress_ifindex = ifindex,
		.rx_queue_index = 0,
	};
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = (uint32_t)len,
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
	int rc;

	rc = bpf_prog_test_run_opts(prog_fd, &o);
	cr_assert_eq(rc, 0, "BPF_PROG_TEST_RUN: %s", strerror(-rc));
	return o.retval;
}

/* The counters summed over CPUs. */
static inline void xt_counters(int ctrs_fd, uint64_t out[XDP_CTR__COUNT])
{
	int ncpu = libbpf_num_possible_cpus();
	struct xdp_ctrs *v = calloc((size_t)ncpu, sizeof(*v));
	uint32_t zero = 0;

	cr_assert(v);
	cr_assert_eq(bpf_map_lookup_elem(ctrs_fd, &zero, v), 0);
	memset(out, 0, sizeof(uint64_t) * XDP_CTR__COUNT);
	for (int c = 0; c < ncpu; c++)
		for (int i = 0; i < XDP_CTR__COUNT; i++)
			out[i] += v[c].c[i];
	free(v);
}

/* An AF_XDP socket bound (copy mode) to ifname queue 0, not loading any program. */
struct xt_xsk {
	void *area;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fq, tx;
	struct xsk_ring_cons cq, rx;
};

#define XT_UMEM_SIZE (256 * 4096)

static inline int xt_xsk_open(struct xt_xsk *x, const char *ifname)
{
	struct xsk_socket_config cfg = {
		.rx_size = XSK_RING_CONS__DEFAULT_NUM_DESCS,
		.tx_size = XSK_RING_PROD__DEFAULT_NUM_DESCS,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.bind_flags = XDP_COPY,
	};
	int rc;

	memset(x, 0, sizeof(*x));
	x->area = mmap(NULL, XT_UMEM_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(x->area, MAP_FAILED);
	rc = xsk_umem__create(&x->umem, x->area, XT_UMEM_SIZE, &x->fq, &x->cq, NULL);
	cr_assert_eq(rc, 0, "xsk_umem__create: %s", strerror(-rc));
	rc = xsk_socket__create(&x->xsk, ifname, 0, x->umem, &x->rx, &x->tx, &cfg);
	cr_assert_eq(rc, 0, "xsk_socket__create(%s): %s", ifname, strerror(-rc));
	return xsk_socket__fd(x->xsk);
}

static inline void xt_xsk_close(struct xt_xsk *x)
{
	xsk_socket__delete(x->xsk);
	xsk_umem__delete(x->umem);
	munmap(x->area, XT_UMEM_SIZE);
	memset(x, 0, sizeof(*x));
}

#endif
