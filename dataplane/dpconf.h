/*
 * dpconf.h — rcptgate-dp's own settings: what follows the EAL arguments on the
 * command line and, optionally, a [dataplane] section of an INI file given
 * with --config (command-line options given after --config override it).
 * Main thread only, at start-up.
 */
#ifndef RG_DPCONF_H
#define RG_DPCONF_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#define DPCONF_MAX_PAIRS 8u
#define DPCONF_MAX_PORTS (2u * DPCONF_MAX_PAIRS)
#define DPCONF_MAX_SMTP_PORTS 8u	/* ENGINE_MAX_SMTP_PORTS */
#define DPCONF_MAX_RXMAP 256u

/* Defaults and bounds of the tunables (documented in dpconf_usage()). */
#define DPCONF_DEF_BURST 32u
#define DPCONF_MAX_BURST 64u
#define DPCONF_DEF_RX_DESC 1024u
#define DPCONF_DEF_TX_DESC 1024u
#define DPCONF_DEF_MBUFS 16383u	     /* per port, plus per-lcore caches */
#define DPCONF_DEF_RING_SLOTS 4096u  /* software-dispatch ring per lcore */
#define DPCONF_DEF_MAX_FLOWS 65536u  /* SMTP flows per lcore */
#define DPCONF_MAX_MAX_FLOWS (1u << 22)
#define DPCONF_DEF_IDLE_S 300u	     /* SMTP flow idle timeout */
#define DPCONF_DEF_SHM_RETRY_S 1u

enum dpconf_dispatch {
	DPCONF_DISPATCH_AUTO = 0,	/* symmetric RSS where the port has it */
	DPCONF_DISPATCH_RSS = 1,	/* require RSS on every port */
	DPCONF_DISPATCH_SW = 2,		/* one RX queue, software flow dispatch */
};

/* Engine limits; 0 keeps the engine's default (engine.h ENGINE_DEF_*).  The
 * engine checks them (engine_conf_check) and names the one out of range. */
struct dpconf_engine {
	unsigned handshake_ms, busy_blocks, seg_blocks, line_max, ooo_max, cmd_max;
	unsigned rcpt_max, inject_max, retx_initial_ms, retx_max, pin_max;
	unsigned harvest_threshold, harvest_window_ms, harvest_slots;
	int harvest_off;	/* harvest-threshold 0 given explicitly */
};

/* --rx-map PORT:QUEUE@LCORE: which worker lcore polls an RX queue. */
struct dpconf_rxmap {
	uint16_t port, queue;
	unsigned lcore;
};

struct dpconf_pair {
	uint16_t outside, inside;	/* DPDK port ids */
};

struct dpconf {
	char shm_path[PATH_MAX];
	struct dpconf_pair pairs[DPCONF_MAX_PAIRS];
	unsigned n_pairs;
	uint16_t smtp_ports[DPCONF_MAX_SMTP_PORTS];
	unsigned n_smtp_ports;
	unsigned burst;
	unsigned rx_desc, tx_desc;
	unsigned mbufs;
	unsigned ring_slots;
	unsigned max_flows;	/* per lcore */
	unsigned idle_s;
	unsigned shm_retry_s;
	int dispatch;		/* enum dpconf_dispatch */
	struct dpconf_engine eng;
	struct dpconf_rxmap rxmap[DPCONF_MAX_RXMAP];
	unsigned n_rxmap;	/* 0: automatic mapping */
	int inbound_only;	/* track only flows opened from the outside port */
	int no_engine;		/* bridge everything (baseline, diagnostics) */
	int sw_csum;		/* ignore checksum offloads even when present */
	char state_path[PATH_MAX]; /* engine state file ("": SHM.dp-state) */
	int no_state;		/* --state none: engine state in process memory */
	int takeover;		/* wait for the running data plane and take over */
};

void dpconf_defaults(struct dpconf *c);

/* Parse argv (after the EAL's "--"); 0, or -EINVAL with a message in err.
 * Returns 1 when --help was given (usage printed on out). */
int dpconf_parse_args(struct dpconf *c, int argc, char **argv, char *err, size_t errlen,
		      FILE *out);

/* Read the [dataplane] section of an INI file; errors name file:line. */
int dpconf_load_file(struct dpconf *c, const char *path, char *err, size_t errlen);

/* Cross-field checks after everything is read. */
int dpconf_validate(const struct dpconf *c, char *err, size_t errlen);

void dpconf_usage(FILE *out, const char *prog);

/* True when port (host order) is one of the SMTP ports. */
static inline int dpconf_is_smtp_port(const struct dpconf *c, uint16_t port)
{
	for (unsigned i = 0; i < c->n_smtp_ports; i++)
		if (c->smtp_ports[i] == port)
			return 1;
	return 0;
}

#endif
