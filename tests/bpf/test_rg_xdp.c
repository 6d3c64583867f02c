/*
 * test_rg_xdp.c — the XDP program (bpf/rg_xdp.bpf.c) run through
 * BPF_PROG_TEST_RUN, table-driven: frame in → expected action, and the one
 * action counter that tells where a redirect went (AF_XDP socket, peer port)
 * or why it passed or dropped.  Needs root (BPF, network namespaces).
 *
 * Thread: each case runs in its own criterion process and namespace.
 */
#include <errno.h>
#include <stdio.h>

#include "rg_xdp.skel.h"
#include "xdp_test.h"

/* Copied into each test's process by criterion: no pointers. */
struct xcase {
	char name[80];
	struct xt_frame f;
	uint8_t xsk;		/* an AF_XDP socket bound on queue 0 of the ingress port */
	uint8_t peer;		/* tx_port: ingress → XT_PEER */
	uint8_t other_pass;	/* rg_cfg: non-SMTP to the kernel */
	uint16_t smtp_port;	/* rg_cfg: this port is the only SMTP port */
	char block[48];		/* blocklist prefix, "" = none */
	uint8_t block_expired;	/* ... whose expiry is past */
	uint32_t action;
	enum xdp_ctr_id ctr;	/* the action counter that must count the frame */
	enum xdp_ctr_id why;	/* a reason counter that must count it too (RX: none) */
};

static const enum xdp_ctr_id action_ctrs[] = {
	XDP_CTR_SMTP_XSK,   XDP_CTR_SMTP_BYPASS, XDP_CTR_SMTP_BYPASS_PASS, XDP_CTR_OTHER_PEER,
	XDP_CTR_OTHER_XSK,  XDP_CTR_OTHER_PASS,	 XDP_CTR_BLOCKED,
};

#define V4SYN(port) {.family = 4, .sport = 40000, .dport = (port), .syn = 1}
#define V6SYN(port) {.family = 6, .sport = 40000, .dport = (port), .syn = 1}

ParameterizedTestParameters(rg_xdp, table)
{
	static struct xcase cases[] = {
		/* steering */
		{"v4 SYN to 25, socket bound -> AF_XDP", V4SYN(25), .xsk = 1, .peer = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK},
		{"v4 SYN to 25, no socket, peer -> bypass to peer", V4SYN(25), .peer = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_BYPASS},
		{"v4 SYN to 25, no socket, no peer -> kernel", V4SYN(25),
		 .action = XDP_PASS, .ctr = XDP_CTR_SMTP_BYPASS_PASS},
		{"v4 reply from 25 (SYN-ACK) -> AF_XDP",
		 {.family = 4, .sport = 25, .dport = 40000, .syn = 1, .ack = 1}, .xsk = 1,
		 .peer = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK},
		{"v4 data to 25 (ACK) -> AF_XDP",
		 {.family = 4, .sport = 40000, .dport = 25, .ack = 1}, .xsk = 1, .peer = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK},
		{"v4 to 80, peer -> peer", V4SYN(80), .xsk = 1, .peer = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER},
		{"v4 to 80, no peer, socket -> AF_XDP", V4SYN(80), .xsk = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_XSK},
		{"v4 to 80, nothing -> kernel", V4SYN(80),
		 .action = XDP_PASS, .ctr = XDP_CTR_OTHER_PASS},
		{"v4 to 80, other_pass -> kernel", V4SYN(80), .xsk = 1, .peer = 1, .other_pass = 1,
		 .action = XDP_PASS, .ctr = XDP_CTR_OTHER_PASS},
		{"v4 to 25 with other_pass still -> AF_XDP", V4SYN(25), .xsk = 1, .peer = 1,
		 .other_pass = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK},
		{"v4 UDP to 25 -> peer (not TCP)",
		 {.family = 4, .l4 = IPPROTO_UDP, .sport = 40000, .dport = 25}, .xsk = 1, .peer = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER, .why = XDP_CTR_NON_TCP},
		{"v4 ICMP -> peer", {.family = 4, .l4 = IPPROTO_ICMP}, .xsk = 1, .peer = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER, .why = XDP_CTR_NON_TCP},
		{"ARP -> peer", {.family = 0}, .xsk = 1, .peer = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER, .why = XDP_CTR_NON_IP},
		{"v4 with IP options, SYN to 25 -> AF_XDP",
		 {.family = 4, .ihl = 7, .sport = 40000, .dport = 25, .syn = 1}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK},
		{"v4 first fragment (MF) to 25 -> peer",
		 {.family = 4, .frag = 0x2000, .sport = 40000, .dport = 25, .syn = 1}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER,
		 .why = XDP_CTR_FRAGMENT},
		{"v4 SYN to 587, smtp_port 587 -> AF_XDP", V4SYN(587), .xsk = 1, .peer = 1,
		 .smtp_port = 587, .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK},
		{"v4 SYN to 25, smtp_port 587 -> peer", V4SYN(25), .xsk = 1, .peer = 1,
		 .smtp_port = 587, .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER},
		{"v6 SYN to 25 -> AF_XDP", V6SYN(25), .xsk = 1, .peer = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK},
		{"v6 SYN to 25, no socket -> bypass to peer", V6SYN(25), .peer = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_BYPASS},
		{"v6 two extension headers, SYN to 25 -> AF_XDP",
		 {.family = 6, .v6ext = 2, .sport = 40000, .dport = 25, .syn = 1}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK},
		{"v6 five extension headers -> peer (limit)",
		 {.family = 6, .v6ext = 5, .sport = 40000, .dport = 25, .syn = 1}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER,
		 .why = XDP_CTR_IPV6_EXT_LIMIT},
		{"v6 fragment header -> peer",
		 {.family = 6, .v6frag = 1, .sport = 40000, .dport = 25, .syn = 1}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER,
		 .why = XDP_CTR_FRAGMENT},
		{"v6 UDP -> peer", {.family = 6, .l4 = IPPROTO_UDP, .dport = 25}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER,
		 .why = XDP_CTR_NON_TCP},
		/* VLAN */
		{"802.1Q v4 SYN to 25 -> AF_XDP",
		 {.family = 4, .nvlan = 1, .sport = 40000, .dport = 25, .syn = 1}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK, .why = XDP_CTR_VLAN},
		{"QinQ v6 SYN to 25 -> AF_XDP",
		 {.family = 6, .nvlan = 2, .sport = 40000, .dport = 25, .syn = 1}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK, .why = XDP_CTR_VLAN},
		{"802.1Q v4 to 80 -> peer",
		 {.family = 4, .nvlan = 1, .sport = 40000, .dport = 80, .syn = 1}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER, .why = XDP_CTR_VLAN},
		{"three tags -> peer (not parsed as IP)",
		 {.family = 4, .nvlan = 3, .sport = 40000, .dport = 25, .syn = 1}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER,
		 .why = XDP_CTR_NON_IP},
		/* blocklist */
		{"blocked v4 /24, SYN to 25 -> drop",
		 {.family = 4, .src = "198.18.9.77", .sport = 40000, .dport = 25, .syn = 1},
		 .xsk = 1, .peer = 1, .block = "198.18.9.0/24",
		 .action = XDP_DROP, .ctr = XDP_CTR_BLOCKED},
		{"blocked v4, SYN to 25, no socket -> drop",
		 {.family = 4, .src = "198.18.9.77", .sport = 40000, .dport = 25, .syn = 1},
		 .peer = 1, .block = "198.18.9.77/32", .action = XDP_DROP, .ctr = XDP_CTR_BLOCKED},
		{"blocked v4 in VLAN, SYN to 25 -> drop",
		 {.family = 4, .nvlan = 1, .src = "198.18.9.77", .sport = 40000, .dport = 25,
		  .syn = 1},
		 .xsk = 1, .peer = 1, .block = "198.18.9.0/24",
		 .action = XDP_DROP, .ctr = XDP_CTR_BLOCKED, .why = XDP_CTR_VLAN},
		{"blocked v4, ACK to 25 (existing flow) -> AF_XDP",
		 {.family = 4, .src = "198.18.9.77", .sport = 40000, .dport = 25, .ack = 1},
		 .xsk = 1, .peer = 1, .block = "198.18.9.0/24",
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK},
		{"blocked v4, SYN-ACK from 25 -> AF_XDP",
		 {.family = 4, .src = "198.18.9.77", .sport = 25, .dport = 40000, .syn = 1,
		  .ack = 1},
		 .xsk = 1, .peer = 1, .block = "198.18.9.0/24",
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK},
		{"blocked v4, SYN+ACK to 25 (not a new connection) -> AF_XDP",
		 {.family = 4, .src = "198.18.9.77", .sport = 40000, .dport = 25, .syn = 1,
		  .ack = 1},
		 .xsk = 1, .peer = 1, .block = "198.18.9.0/24",
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK},
		{"blocked v4, SYN to 80 -> peer",
		 {.family = 4, .src = "198.18.9.77", .sport = 40000, .dport = 80, .syn = 1},
		 .xsk = 1, .peer = 1, .block = "198.18.9.0/24",
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER},
		{"unblocked v4 next to a blocked /24, SYN to 25 -> AF_XDP",
		 {.family = 4, .src = "198.18.10.1", .sport = 40000, .dport = 25, .syn = 1},
		 .xsk = 1, .peer = 1, .block = "198.18.9.0/24",
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK},
		{"expired block, SYN to 25 -> AF_XDP",
		 {.family = 4, .src = "198.18.9.77", .sport = 40000, .dport = 25, .syn = 1},
		 .xsk = 1, .peer = 1, .block = "198.18.9.0/24", .block_expired = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK, .why = XDP_CTR_BLOCK_EXPIRED},
		{"blocked v6 /48, SYN to 25 -> drop",
		 {.family = 6, .src = "2001:2:0:1::99", .sport = 40000, .dport = 25, .syn = 1},
		 .xsk = 1, .peer = 1, .block = "2001:2::/48",
		 .action = XDP_DROP, .ctr = XDP_CTR_BLOCKED},
		{"unblocked v6 outside /64, SYN to 25 -> AF_XDP",
		 {.family = 6, .src = "2001:2:0:2::99", .sport = 40000, .dport = 25, .syn = 1},
		 .xsk = 1, .peer = 1, .block = "2001:2:0:1::/64",
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_SMTP_XSK},
		/* truncated and malformed */
		{"Ethernet header only, IPv4 type -> peer",
		 {.family = 4, .dport = 25, .syn = 1, .truncate = 14}, .xsk = 1, .peer = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER, .why = XDP_CTR_TRUNCATED},
		{"IPv4 header cut -> peer",
		 {.family = 4, .dport = 25, .syn = 1, .truncate = 14 + 12}, .xsk = 1, .peer = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER, .why = XDP_CTR_TRUNCATED},
		{"IPv4 options past the end -> peer",
		 {.family = 4, .ihl = 15, .dport = 25, .syn = 1, .truncate = 14 + 40}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER,
		 .why = XDP_CTR_TRUNCATED},
		{"IPv4 ihl < 5 -> peer", {.family = 4, .ihl = 3, .dport = 25, .syn = 1}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER,
		 .why = XDP_CTR_TRUNCATED},
		{"TCP header cut -> peer",
		 {.family = 4, .dport = 25, .syn = 1, .truncate = 14 + 20 + 10}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER,
		 .why = XDP_CTR_TRUNCATED},
		{"VLAN tag cut -> peer",
		 {.family = 4, .nvlan = 1, .dport = 25, .syn = 1, .truncate = 16}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER,
		 .why = XDP_CTR_TRUNCATED},
		{"IPv6 header cut -> peer",
		 {.family = 6, .dport = 25, .syn = 1, .truncate = 14 + 30}, .xsk = 1, .peer = 1,
		 .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER, .why = XDP_CTR_TRUNCATED},
		{"IPv6 extension header cut -> peer",
		 {.family = 6, .v6ext = 1, .dport = 25, .syn = 1, .truncate = 14 + 40 + 1},
		 .xsk = 1, .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER,
		 .why = XDP_CTR_TRUNCATED},
		{"IPv6 TCP header cut -> peer",
		 {.family = 6, .dport = 25, .syn = 1, .truncate = 14 + 40 + 19}, .xsk = 1,
		 .peer = 1, .action = XDP_REDIRECT, .ctr = XDP_CTR_OTHER_PEER,
		 .why = XDP_CTR_TRUNCATED},
	};
	return cr_make_param_array(struct xcase, cases, sizeof(cases) / sizeof(cases[0]));
}

static void put_block(struct rg_xdp *skel, const char *prefix, uint64_t expires_ns)
{
	struct xdp_block_val val = {.expires_ns = expires_ns};
	struct xdp_lpm6 key = {0};
	char addr[64];
	const char *slash = strchr(prefix, '/');
	int fd;

	cr_assert(slash);
	snprintf(addr, sizeof(addr), "%.*s", (int)(slash - prefix), prefix);
	key.prefixlen = (uint32_t)atoi(slash + 1);
	val.prefixlen = key.prefixlen;
	if (inet_pton(AF_INET, addr, key.addr) == 1)
		fd = bpf_map__fd(skel->maps.rg_block4);
	else {
		cr_assert_eq(inet_pton(AF_INET6, addr, key.addr), 1);
		fd = bpf_map__fd(skel->maps.rg_block6);
	}
	cr_assert_eq(bpf_map_update_elem(fd, &key, &val, BPF_ANY), 0, "block %s: %s", prefix,
		     strerror(errno));
}

static uint64_t block_hits(struct rg_xdp *skel, const char *prefix)
{
	struct xdp_block_val val;
	struct xdp_lpm6 key = {0};
	char addr[64];
	const char *slash = strchr(prefix, '/');
	int fd;

	snprintf(addr, sizeof(addr), "%.*s", (int)(slash - prefix), prefix);
	key.prefixlen = (uint32_t)atoi(slash + 1);
	if (inet_pton(AF_INET, addr, key.addr) == 1)
		fd = bpf_map__fd(skel->maps.rg_block4);
	else {
		inet_pton(AF_INET6, addr, key.addr);
		fd = bpf_map__fd(skel->maps.rg_block6);
	}
	cr_assert_eq(bpf_map_lookup_elem(fd, &key, &val), 0);
	return val.hits;
}

ParameterizedTest(struct xcase *c, rg_xdp, table, .init = xt_netns, .timeout = 30)
{
	uint8_t frame[XT_FRAME_MAX];
	uint64_t ctr[XDP_CTR__COUNT];
	struct rg_xdp *skel;
	struct xt_xsk xsk;
	uint32_t in, peer, zero = 0, act;
	size_t len, i;

	in = if_nametoindex(XT_IN);
	peer = if_nametoindex(XT_PEER);
	cr_assert(in && peer);
	skel = rg_xdp__open_and_load();
	cr_assert(skel, "%s: loading the program: %s", c->name, strerror(errno));

	if (c->xsk) {
		int fd = xt_xsk_open(&xsk, XT_IN);

		cr_assert_eq(bpf_map_update_elem(bpf_map__fd(skel->maps.xsks_map), &zero, &fd, 0),
			     0, "%s: xsks_map: %s", c->name, strerror(errno));
	}
	if (c->peer)
		cr_assert_eq(bpf_map_update_elem(bpf_map__fd(skel->maps.tx_port), &in, &peer, 0),
			     0, "%s: tx_port: %s", c->name, strerror(errno));
	if (c->other_pass || c->smtp_port) {
		static struct xdp_cfg cfg;
		uint16_t port = c->smtp_port ? c->smtp_port : 25;

		memset(&cfg, 0, sizeof(cfg));
		cfg.flags = XDP_CFG_VALID | (c->other_pass ? XDP_CFG_OTHER_PASS : 0);
		cfg.smtp_ports[port >> 3] |= (uint8_t)(1u << (port & 7));
		cr_assert_eq(bpf_map_update_elem(bpf_map__fd(skel->maps.rg_cfg), &zero, &cfg, 0),
			     0);
	}
	if (c->block[0])
		put_block(skel, c->block, c->block_expired ? 1 : 0);

	len = xt_build(&c->f, frame);
	act = xt_run(bpf_program__fd(skel->progs.rg_xdp), frame, len, in);
	cr_expect_eq(act, c->action, "%s: action %u, expected %u", c->name, act, c->action);

	xt_counters(bpf_map__fd(skel->maps.rg_ctrs), ctr);
	cr_expect_eq(ctr[XDP_CTR_RX], 1, "%s: rx %lu", c->name, (unsigned long)ctr[XDP_CTR_RX]);
	for (i = 0; i < sizeof(action_ctrs) / sizeof(action_ctrs[0]); i++) {
		enum xdp_ctr_id id = action_ctrs[i];

		cr_expect_eq(ctr[id], id == c->ctr ? 1u : 0u, "%s: counter %u is %lu", c->name,
			     (unsigned)id, (unsigned long)ctr[id]);
	}
	if (c->why != XDP_CTR_RX)
		cr_expect_eq(ctr[c->why], 1, "%s: reason counter %u is %lu", c->name,
			     (unsigned)c->why, (unsigned long)ctr[c->why]);
	if (c->block[0])
		cr_expect_eq(block_hits(skel, c->block), c->action == XDP_DROP ? 1u : 0u,
			     "%s: hits on %s", c->name, c->block);
	rg_xdp__destroy(skel);
	if (c->xsk)
		xt_xsk_close(&xsk);
}

/* Hits accumulate per entry and the longest prefix takes them. */
Test(rg_xdp, hits_per_entry, .init = xt_netns, .timeout = 30)
{
	struct xt_frame syn = {.family = 4, .src = "198.18.9.77", .dport = 25, .syn = 1};
	uint8_t frame[XT_FRAME_MAX];
	struct rg_xdp *skel;
	uint32_t in = if_nametoindex(XT_IN);
	size_t len;
	int i;

	skel = rg_xdp__open_and_load();
	cr_assert(skel);
	put_block(skel, "198.18.0.0/16", 0);
	put_block(skel, "198.18.9.0/24", 0);
	len = xt_build(&syn, frame);
	for (i = 0; i < 5; i++)
		cr_expect_eq(xt_run(bpf_program__fd(skel->progs.rg_xdp), frame, len, in), XDP_DROP);
	snprintf(syn.src, sizeof(syn.src), "198.18.200.1");
	len = xt_build(&syn, frame);
	for (i = 0; i < 2; i++)
		cr_expect_eq(xt_run(bpf_program__fd(skel->progs.rg_xdp), frame, len, in), XDP_DROP);
	cr_expect_eq(block_hits(skel, "198.18.9.0/24"), 5);
	cr_expect_eq(block_hits(skel, "198.18.0.0/16"), 2);
	rg_xdp__destroy(skel);
}
