// SPDX-License-Identifier: BSD-2-Clause
/*
 * rg_xdp.bpf.c — the XDP program on each port of a bridged pair.  Runs in the
 * kernel, in the receive path (NAPI context) of the port it is attached to,
 * once per frame.
 *
 *   TCP to or from an SMTP port  → the AF_XDP socket of this RX queue
 *                                  (xsks_map, where rcptgate-dp reads);
 *                                  no socket bound → XDP_DROP when the flow
 *                                  is in rg_hold (its state awaits the next
 *                                  data plane; TCP resends it), else the peer
 *                                  port (fail-open bypass), or the kernel if
 *                                  no peer is set
 *   SYN (no ACK) to an SMTP port from a blocklisted prefix → XDP_DROP
 *   everything else              → the peer port (tx_port), or the kernel
 *                                  when XDP_CFG_OTHER_PASS; with no peer set,
 *                                  the AF_XDP socket (the data plane bridges it)
 *
 * Frames whose headers cannot be parsed (truncated, fragments, too many IPv6
 * extension headers) are never SMTP here: they take the "everything else" path,
 * counted.  Every read of packet data is preceded by a bounds check.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xdp_shared.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XDP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, XDP_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} tx_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdp_cfg);
} rg_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdp_ctrs);
} rg_ctrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, XDP_BLOCK_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xdp_lpm4);
	__type(value, struct xdp_block_val);
} rg_block4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, XDP_BLOCK_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xdp_lpm6);
	__type(value, struct xdp_block_val);
} rg_block6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XDP_HOLD_MAX);
	__type(key, struct xdp_hold_key);
	__type(value, struct xdp_hold_val);
} rg_hold SEC(".maps");

/* 802.1Q / 802.1ad tag following the MAC addresses (not in the UAPI headers). */
struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* What the parser learnt about a frame. */
struct pkt {
	__u8 family;		/* 4, 6, or 0 when not TCP over IP */
	__u8 syn_only;		/* SYN without ACK */
	__u16 sport, dport;	/* host order */
	__u8 saddr[16];		/* IPv4 in the first 4 bytes */
	__u8 daddr[16];
};

enum parse_result {
	PARSE_TCP,	/* pkt filled in */
	PARSE_OTHER,	/* not TCP over IP, or not parseable: counted by the parser */
};

static __always_inline void ctr_inc(struct xdp_ctrs *ctrs, enum xdp_ctr_id id)
{
	/* per-CPU value: this CPU is its only writer */
	ctrs->c[id]++;
}

static __always_inline int port_is_smtp(const struct xdp_cfg *cfg, __u16 port)
{
	if (!cfg || !(cfg->flags & XDP_CFG_VALID))
		return port == XDP_SMTP_PORT_DEFAULT;
	return (cfg->smtp_ports[port >> 3] >> (port & 7)) & 1;
}

static __always_inline enum parse_result parse_tcp(void *l4, void *end, struct pkt *p,
						   struct xdp_ctrs *ctrs)
{
	struct tcphdr *th = l4;

	if ((void *)(th + 1) > end) {
		ctr_inc(ctrs, XDP_CTR_TRUNCATED);
		return PARSE_OTHER;
	}
	p->sport = bpf_ntohs(th->source);
	p->dport = bpf_ntohs(th->dest);
	p->syn_only = th->syn && !th->ack;
	return PARSE_TCP;
}

static __always_inline enum parse_result parse_ipv4(void *l3, void *end, struct pkt *p,
						    struct xdp_ctrs *ctrs)
{
	struct iphdr *iph = l3;
	__u32 hlen;

	if ((void *)(iph + 1) > end) {
		ctr_inc(ctrs, XDP_CTR_TRUNCATED);
		return PARSE_OTHER;
	}
	hlen = iph->ihl * 4;
	if (hlen < sizeof(*iph) || l3 + hlen > end) {
		ctr_inc(ctrs, XDP_CTR_TRUNCATED);
		return PARSE_OTHER;
	}
	if (iph->protocol != IPPROTO_TCP) {
		ctr_inc(ctrs, XDP_CTR_NON_TCP);
		return PARSE_OTHER;
	}
	/* every fragment of a datagram takes the same (non-SMTP) path */
	if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET)) {
		ctr_inc(ctrs, XDP_CTR_FRAGMENT);
		return PARSE_OTHER;
	}
	p->family = 4;
	__builtin_memcpy(p->saddr, &iph->saddr, 4);
	__builtin_memcpy(p->daddr, &iph->daddr, 4);
	return parse_tcp(l3 + hlen, end, p, ctrs);
}

static __always_inline enum parse_result parse_ipv6(void *l3, void *end, struct pkt *p,
						    struct xdp_ctrs *ctrs)
{
	struct ipv6hdr *ip6h = l3;
	void *cur = ip6h + 1;
	__u8 next;
	int i;

	if (cur > end) {
		ctr_inc(ctrs, XDP_CTR_TRUNCATED);
		return PARSE_OTHER;
	}
	next = ip6h->nexthdr;
#pragma unroll
	for (i = 0; i < XDP_IPV6_EXT_MAX; i++) {
		struct ipv6_opt_hdr *opt = cur;

		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING &&
		    next != IPPROTO_DSTOPTS && next != IPPROTO_FRAGMENT)
			break;
		if (next == IPPROTO_FRAGMENT) {
			ctr_inc(ctrs, XDP_CTR_FRAGMENT);
			return PARSE_OTHER;
		}
		if ((void *)(opt + 1) > end) {
			ctr_inc(ctrs, XDP_CTR_TRUNCATED);
			return PARSE_OTHER;
		}
		next = opt->nexthdr;
		cur += (opt->hdrlen + 1) * 8;
	}
	if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING ||
	    next == IPPROTO_DSTOPTS || next == IPPROTO_FRAGMENT) {
		ctr_inc(ctrs, XDP_CTR_IPV6_EXT_LIMIT);
		return PARSE_OTHER;
	}
	if (next != IPPROTO_TCP) {
		ctr_inc(ctrs, XDP_CTR_NON_TCP);
		return PARSE_OTHER;
	}
	p->family = 6;
	__builtin_memcpy(p->saddr, &ip6h->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6h->daddr, 16);
	return parse_tcp(cur, end, p, ctrs);
}

static __always_inline enum parse_result parse(struct xdp_md *ctx, struct pkt *p,
					       struct xdp_ctrs *ctrs)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *cur = eth + 1;
	__be16 proto;
	int i;

	if (cur > end) {
		ctr_inc(ctrs, XDP_CTR_TRUNCATED);
		return PARSE_OTHER;
	}
	proto = eth->h_proto;
#pragma unroll
	for (i = 0; i < XDP_VLAN_MAX; i++) {
		struct vlan_tag *tag = cur;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if (i == 0)
			ctr_inc(ctrs, XDP_CTR_VLAN);
		if ((void *)(tag + 1) > end) {
			ctr_inc(ctrs, XDP_CTR_TRUNCATED);
			return PARSE_OTHER;
		}
		proto = tag->proto;
		cur = tag + 1;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(cur, end, p, ctrs);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(cur, end, p, ctrs);
	ctr_inc(ctrs, XDP_CTR_NON_IP);
	return PARSE_OTHER;
}

/* Drop this SYN?  The entry's expiry is checked here too, so an entry that
 * userspace has not swept yet (rcptgated stopped) stops blocking on time. */
static __always_inline int blocked(const struct pkt *p, struct xdp_ctrs *ctrs)
{
	struct xdp_block_val *val;

	if (p->family == 4) {
		struct xdp_lpm4 key = { .prefixlen = 32 };

		__builtin_memcpy(key.addr, p->saddr, 4);
		val = bpf_map_lookup_elem(&rg_block4, &key);
	} else {
		struct xdp_lpm6 key = { .prefixlen = 128 };

		__builtin_memcpy(key.addr, p->saddr, 16);
		val = bpf_map_lookup_elem(&rg_block6, &key);
	}
	if (!val)
		return 0;
	if (val->expires_ns && bpf_ktime_get_ns() >= val->expires_ns) {
		ctr_inc(ctrs, XDP_CTR_BLOCK_EXPIRED);
		return 0;
	}
	__sync_fetch_and_add(&val->hits, 1);
	return 1;
}

/* Is the frame's flow in the hold set?  Counts the frame on its entry. */
static __always_inline int held(const struct pkt *p)
{
	struct xdp_hold_key key = {};
	struct xdp_hold_val *val;

	key.family = p->family;
	key.sport = p->sport;
	key.dport = p->dport;
	__builtin_memcpy(key.saddr, p->saddr, 16);
	__builtin_memcpy(key.daddr, p->daddr, 16);
	val = bpf_map_lookup_elem(&rg_hold, &key);
	if (!val)
		return 0;
	__sync_fetch_and_add(&val->held, 1);
	return 1;
}

/* The peer port, or XDP_PASS when none is configured for this ingress port. */
static __always_inline int to_peer(struct xdp_md *ctx)
{
	return bpf_redirect_map(&tx_port, ctx->ingress_ifindex, XDP_PASS);
}

/* The AF_XDP socket of this queue, or XDP_PASS when none is bound. */
static __always_inline int to_xsk(struct xdp_md *ctx)
{
	return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

SEC("xdp")
int rg_xdp(struct xdp_md *ctx)
{
	struct xdp_ctrs *ctrs;
	struct xdp_cfg *cfg;
	struct pkt p = {};
	__u32 zero = 0;
	int act;

	ctrs = bpf_map_lookup_elem(&rg_ctrs, &zero);
	if (!ctrs)
		return XDP_PASS;
	cfg = bpf_map_lookup_elem(&rg_cfg, &zero);
	ctr_inc(ctrs, XDP_CTR_RX);

	if (parse(ctx, &p, ctrs) == PARSE_TCP &&
	    (port_is_smtp(cfg, p.dport) || port_is_smtp(cfg, p.sport))) {
		if (p.syn_only && port_is_smtp(cfg, p.dport) && blocked(&p, ctrs)) {
			ctr_inc(ctrs, XDP_CTR_BLOCKED);
			return XDP_DROP;
		}
		act = to_xsk(ctx);
		if (act == XDP_REDIRECT) {
			ctr_inc(ctrs, XDP_CTR_SMTP_XSK);
			return act;
		}
		if (held(&p)) {
			ctr_inc(ctrs, XDP_CTR_SMTP_HELD);
			return XDP_DROP;
		}
		act = to_peer(ctx);
		ctr_inc(ctrs, act == XDP_REDIRECT ? XDP_CTR_SMTP_BYPASS : XDP_CTR_SMTP_BYPASS_PASS);
		return act;
	}

	if (cfg && (cfg->flags & XDP_CFG_OTHER_PASS)) {
		ctr_inc(ctrs, XDP_CTR_OTHER_PASS);
		return XDP_PASS;
	}
	act = to_peer(ctx);
	if (act == XDP_REDIRECT) {
		ctr_inc(ctrs, XDP_CTR_OTHER_PEER);
		return act;
	}
	act = to_xsk(ctx);
	ctr_inc(ctrs, act == XDP_REDIRECT ? XDP_CTR_OTHER_XSK : XDP_CTR_OTHER_PASS);
	return act;
}
