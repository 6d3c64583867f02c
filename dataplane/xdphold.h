/*
 * xdphold.h — the hold set (engine.h) written into the XDP program in front
 * of the ports: the map XDP_MAP_HOLD (bpf/xdp_shared.h) of the program
 * attached to each port's interface, found through rtnetlink and bpf(), no
 * libbpf.  A port without an XDP program (net_af_packet, a PCI NIC) has
 * nothing to tell: then the link simply stops while no data plane runs.
 * xdphold_open() in the main thread (after the ports started, when the
 * program is attached), xdphold_apply() on the worker that owns the engine.
 */
#ifndef RG_XDPHOLD_H
#define RG_XDPHOLD_H

#include <stddef.h>

#include "engine.h"

#define XDPHOLD_MAX 16u

struct xdphold {
	unsigned n;
	int fd[XDPHOLD_MAX];	/* one per distinct map */
};

/* The hold maps of the programs on these interfaces (0 entries skipped);
 * returns how many were found; err says why one could not be used. */
int xdphold_open(struct xdphold *h, const unsigned *ifindex, unsigned n, char *err,
		 size_t errlen);

/* One change, both directions of the flow, in every map; 0 or -1. */
int xdphold_apply(const struct xdphold *h, const struct engine_hold *c);

void xdphold_close(struct xdphold *h);

#endif
