/*
 * xdp_shared.h — the XDP program's map names, key/value types, counters and
 * limits, shared by the program (bpf/rg_xdp.bpf.c, run by the kernel on each
 * received frame) and by its userspace managers (control/xdp.c in rcptgated,
 * bpf/rg-xdp.c).  Types only from <linux/types.h>, so both sides include it.
 */
#ifndef RG_XDP_SHARED_H
#define RG_XDP_SHARED_H

#include <linux/types.h>

/* Program and map names as the kernel reports them (at most 15 characters).
 * The XSKMAP is named xsks_map because DPDK's net_af_xdp (xdp_prog= devarg)
 * looks it up by that name to insert its AF_XDP sockets. */
#define XDP_PROG_NAME "rg_xdp"
#define XDP_MAP_XSKS "xsks_map"
#define XDP_MAP_TX_PORT "tx_port"
#define XDP_MAP_CFG "rg_cfg"
#define XDP_MAP_CTRS "rg_ctrs"
#define XDP_MAP_BLOCK4 "rg_block4"
#define XDP_MAP_BLOCK6 "rg_block6"
#define XDP_MAP_HOLD "rg_hold"

/* Where userspace pins the maps of the program attached to IFNAME:
 * XDP_PIN_ROOT/IFNAME/MAPNAME. */
#define XDP_PIN_ROOT "/sys/fs/bpf/rcptgate"

/* Limits (map sizes). */
#define XDP_MAX_QUEUES 64	/* xsks_map entries: RX queues per port with a socket */
#define XDP_MAX_PORTS 64	/* tx_port entries: ingress ports with a peer */
#define XDP_BLOCK_MAX 65536	/* entries per blocklist trie (IPv4, IPv6 each) */
#define XDP_VLAN_MAX 2		/* 802.1Q/802.1ad tags parsed (QinQ) */
#define XDP_IPV6_EXT_MAX 4	/* IPv6 extension headers skipped before giving up */
#define XDP_SMTP_PORT_DEFAULT 25	/* SMTP port used until rg_cfg is written */
#define XDP_PORT_BITMAP_BYTES (65536 / 8)

/* rg_cfg (ARRAY, one entry, key 0). */
enum xdp_cfg_flags {
	XDP_CFG_VALID = 1u << 0,	/* written by userspace; else defaults apply */
	XDP_CFG_OTHER_PASS = 1u << 1,	/* non-SMTP traffic to the kernel, not the peer */
};

struct xdp_cfg {
	__u32 flags;				/* enum xdp_cfg_flags */
	__u32 _pad;
	__u8 smtp_ports[XDP_PORT_BITMAP_BYTES];	/* bit (port & 7) of byte port >> 3 */
};

/* tx_port (DEVMAP_HASH): key = ingress ifindex, value = peer ifindex (__u32). */

/* Blocklist tries (LPM_TRIE).  A hit drops a SYN (without ACK) to an SMTP port. */
struct xdp_lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct xdp_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

struct xdp_block_val {
	__u32 prefixlen;	/* the key's prefix length: tells an exact entry from
				 * a covering one in a userspace (longest-match) lookup */
	__u32 _pad;
	__u64 hits;		/* SYNs dropped, incremented atomically by the program */
	__u64 expires_ns;	/* CLOCK_MONOTONIC (bpf_ktime_get_ns); 0 = never.
				 * The program ignores an expired entry; userspace deletes it. */
	__u64 added_ns;		/* CLOCK_REALTIME when added (for listings) */
};

/* rg_hold (LRU_HASH): the SMTP flows whose state the data plane keeps
 * (established, or with offsets in force), written by rcptgate-dp (raw
 * bpf() on the map of the program attached to its ports; entries in both
 * directions).  While no AF_XDP socket is bound (the data plane is away:
 * crashed, restarting) a frame of such a flow is dropped, not bypassed:
 * untranslated it would desynchronise the two ends, unseen it would leave
 * the state the next data plane takes over behind the conversation; TCP
 * resends it to the next data plane.  Every other frame is bypassed. */
#define XDP_HOLD_MAX 131072	/* entries: two per flow */

struct xdp_hold_key {
	__u8 family;		/* 4 or 6 */
	__u8 _pad0;
	__u16 sport, dport;	/* host order, as the frame travels */
	__u8 saddr[16], daddr[16]; /* IPv4 in the first 4 bytes, rest zero */
	__u16 _pad1;
};

struct xdp_hold_val {
	__u64 held;		/* frames dropped, counted by the program */
};

/* rg_ctrs (PERCPU_ARRAY, one entry): one counter per action and reason.
 * X(enum suffix, "name", "what it counts") — append only. */
#define XDP_CTR_LIST(X)                                                              \
	X(RX, "rx", "frames seen by the program")                                    \
	X(SMTP_XSK, "smtp_xsk", "SMTP frames to the AF_XDP socket (data plane)")      \
	X(SMTP_BYPASS, "smtp_bypass", "SMTP frames to the peer: no socket bound (fail-open)") \
	X(SMTP_BYPASS_PASS, "smtp_bypass_pass", "SMTP frames to the kernel: no socket/peer") \
	X(OTHER_PEER, "other_peer", "non-SMTP frames to the peer port")              \
	X(OTHER_XSK, "other_xsk", "non-SMTP frames to the AF_XDP socket (no peer)")   \
	X(OTHER_PASS, "other_pass", "non-SMTP frames to the kernel")                 \
	X(BLOCKED, "blocked", "SYNs to SMTP from blocklisted sources dropped")        \
	X(BLOCK_EXPIRED, "block_expired", "SYNs matching an expired blocklist entry")  \
	X(VLAN, "vlan", "frames carrying an 802.1Q/802.1ad tag")                     \
	X(NON_IP, "non_ip", "frames neither IPv4 nor IPv6")                          \
	X(NON_TCP, "non_tcp", "IP packets not TCP")                                  \
	X(FRAGMENT, "fragment", "IP fragments (steered as non-SMTP)")                \
	X(TRUNCATED, "truncated", "frames whose headers end early (taken as non-SMTP)") \
	X(IPV6_EXT_LIMIT, "ipv6_ext_limit", "IPv6 packets with too many extension headers") \
	X(SMTP_HELD, "smtp_held",                                                    \
	  "SMTP frames of flows the data plane keeps state for, dropped: no socket bound")

enum xdp_ctr_id {
#define XDP_CTR_ENUM(id, name, help) XDP_CTR_##id,
	XDP_CTR_LIST(XDP_CTR_ENUM)
#undef XDP_CTR_ENUM
	XDP_CTR__COUNT
};

#define XDP_CTR_MAX 32
_Static_assert(XDP_CTR__COUNT <= XDP_CTR_MAX, "too many XDP counters");

struct xdp_ctrs {
	__u64 c[XDP_CTR_MAX];
};

#endif
