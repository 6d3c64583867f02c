/*
 * rg_maps.h — the map layer of the XDP program (rg_xdp.bpf.c): load and
 * attach it with its bpftool skeleton, or adopt the copy DPDK's net_af_xdp
 * loaded (xdp_prog=), pin each port's maps by name under PIN_ROOT/IFNAME/,
 * configure the peer port and the SMTP ports, read and write one port's
 * source blocklist (prefixes with expiry and hit counts) and read the
 * per-CPU counters; prefixes and the two clocks.
 *
 * Used by rcptgated's xdp module (control/xdp.c, the blocklist policy), by
 * rg-xdp (the loader CLI) and by the tests.  No global state.  Built with
 * libbpf (RG_XDP_LIBBPF); without it every xdp_port_* call answers
 * -ENOTSUP and xdp_maps_supported() is false.
 *
 * Thread: the caller's.  Errors are 0 / -errno, with a message for people
 * in err when given.
 */
#ifndef RG_MAPS_H
#define RG_MAPS_H


#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xdp_shared.h"

/* ---------------------------------------------------------------------- */
/* Prefixes.                                                               */

#define XDP_PREFIX_STRLEN 64	/* "ffff:...:ffff/128" and a NUL fit */

struct xdp_prefix {
	uint8_t family;		/* 4 or 6 */
	uint8_t len;		/* prefix length: 0..32 or 0..128 */
	uint8_t addr[16];	/* network order, bits past len cleared; IPv4 in 0..3 */
};

/* "198.18.0.0/24", "2001:2::/48", or a bare address (a host prefix).  Host
 * bits are cleared.  -EINVAL for anything else. */
int xdp_prefix_parse(const char *s, struct xdp_prefix *out);
void xdp_prefix_format(const struct xdp_prefix *p, char *buf, size_t len);
/* Do a and b share an address (one contains the other)? */
bool xdp_prefix_overlaps(const struct xdp_prefix *a, const struct xdp_prefix *b);
bool xdp_prefix_equal(const struct xdp_prefix *a, const struct xdp_prefix *b);
/* The prefix of length len containing addr (family 4: addr[0..3]). */
int xdp_prefix_make(uint8_t family, const uint8_t *addr, unsigned len, struct xdp_prefix *out);

/* ---------------------------------------------------------------------- */
/* One port: the maps of the program instance attached to it.              */

enum xdp_map_idx {
	XDP_M_XSKS,
	XDP_M_TX_PORT,
	XDP_M_CFG,
	XDP_M_CTRS,
	XDP_M_BLOCK4,
	XDP_M_BLOCK6,
	XDP_M__COUNT
};
extern const char *const xdp_map_names[XDP_M__COUNT];
extern const char *const xdp_ctr_names[XDP_CTR__COUNT];
extern const char *const xdp_ctr_help[XDP_CTR__COUNT];

struct xdp_port {
	char ifname[IF_NAMESIZE];
	uint32_t ifindex;
	uint32_t map_id[XDP_M__COUNT];
	int fd[XDP_M__COUNT];	/* -1 when closed */
};

#define XDP_SMTP_PORTS_MAX 16

struct xdp_port_conf {
	char peer[IF_NAMESIZE];	/* "" = none: non-SMTP to the AF_XDP socket or the kernel */
	bool other_pass;	/* non-SMTP to the kernel instead of the peer */
	uint16_t smtp_ports[XDP_SMTP_PORTS_MAX];
	unsigned nsmtp_ports;	/* 0 = XDP_SMTP_PORT_DEFAULT only */
};

enum xdp_attach_flags {
	XDP_ATTACH_SKB = 1u << 0,	/* generic (skb) mode instead of native */
	XDP_ATTACH_REPLACE = 1u << 1,	/* replace a program already attached */
};

/* Load the program from the embedded skeleton, attach it to ifname, pin its
 * maps under pin_root/ifname/ (replacing older pins) and configure it. */
int xdp_port_attach(const char *pin_root, const char *ifname, const struct xdp_port_conf *c,
		    unsigned flags, struct xdp_port *out, char *err, size_t errlen);

/* Take over the rg_xdp program some other process attached to ifname (DPDK's
 * net_af_xdp with xdp_prog=): pin its maps under pin_root/ifname/.  With c,
 * configure it; with c == NULL, carry the configuration and the blocklist
 * over from the maps pinned there before (a restarted data plane).
 * -ENOENT: nothing attached; -EMEDIUMTYPE: the attached program is not ours. */
int xdp_port_adopt(const char *pin_root, const char *ifname, const struct xdp_port_conf *c,
		   struct xdp_port *out, char *err, size_t errlen);

/* Open the maps pinned under pin_root/ifname/. */
int xdp_port_open(const char *pin_root, const char *ifname, struct xdp_port *out, char *err,
		  size_t errlen);
void xdp_port_close(struct xdp_port *p);

enum xdp_detach_flags {
	XDP_DETACH_KEEP_PINS = 1u << 0,	/* leave pin_root/ifname/ for a later adopt */
};

/* Detach rg_xdp from ifname if it is attached there (another program is left
 * alone: -EMEDIUMTYPE) and remove pin_root/ifname/ and its pins unless
 * XDP_DETACH_KEEP_PINS: then a later xdp_port_adopt(..., NULL, ...) carries
 * the configuration and the blocklist over to the next program. */
int xdp_port_detach(const char *pin_root, const char *ifname, unsigned flags, char *err,
		    size_t errlen);

/* Write the peer, flags and SMTP ports into the maps. */
int xdp_port_configure(const struct xdp_port *p, const struct xdp_port_conf *c, char *err,
		       size_t errlen);
/* Read them back (peer "" when none). */
int xdp_port_get_conf(const struct xdp_port *p, struct xdp_port_conf *c);

/* 1 when the program attached to the port right now uses these maps, 0 when
 * another or no program is attached, -errno on error. */
int xdp_port_live(const struct xdp_port *p);

/* The per-CPU counters, summed over CPUs. */
int xdp_port_counters(const struct xdp_port *p, uint64_t out[XDP_CTR__COUNT]);

/* Blocklist of one port.  expires_ns is CLOCK_MONOTONIC (0 = never); added_ns
 * CLOCK_REALTIME.  Putting an existing prefix keeps its hit count. */
struct xdp_block_entry {
	struct xdp_prefix prefix;
	uint64_t hits;
	uint64_t expires_ns;
	uint64_t added_ns;
};
int xdp_port_block_put(const struct xdp_port *p, const struct xdp_prefix *pf,
		       uint64_t expires_ns, uint64_t added_ns);
int xdp_port_block_del(const struct xdp_port *p, const struct xdp_prefix *pf); /* -ENOENT */
int xdp_port_block_get(const struct xdp_port *p, const struct xdp_prefix *pf,
		       struct xdp_block_entry *out); /* -ENOENT */
/* Calls fn for each entry, IPv4 first; stops at and returns fn's nonzero value. */
typedef int (*xdp_block_entry_fn)(const struct xdp_block_entry *e, void *arg);
int xdp_port_block_foreach(const struct xdp_port *p, xdp_block_entry_fn fn, void *arg);

/* CLOCK_MONOTONIC and CLOCK_REALTIME in ns (the program's clock is the former). */
uint64_t xdp_mono_ns(void);
uint64_t xdp_wall_ns(void);

/* Format an error into err (when given) and return rc: the one error
 * helper of the map layer and the blocklist module. */
int xdp_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Whether this build has the map layer (libbpf); else xdp_port_* answer
 * -ENOTSUP. */
bool xdp_maps_supported(void);

#endif
