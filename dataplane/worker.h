/*
 * worker.h — the lcore loop of rcptgate-dp: receive bursts, bridge frames to
 * the peer port, hand TCP segments of SMTP flows to the engine, transmit,
 * and mark quiescent points for the recipient table between bursts.
 * Set-up and tear-down run in the main thread; worker_main() on each worker
 * lcore (or, in the benchmark, on the calling thread).
 */
#ifndef RG_WORKER_H
#define RG_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "dpconf.h"
#include "dpshm.h"
#include "dpstate.h"
#include "port.h"
#include "rtable.h"
#include "stats.h"

#define WORKER_MAX SHM_MAX_LCORES
#define WORKER_MAX_RXQ (2u * DPCONF_MAX_PORTS)
#define WORKER_TXBUF 64u		/* frames buffered per port before a flush */
#define WORKER_ENGINE_OUT 128u		/* frames the engine may emit per burst */
#define WORKER_TIMER_NS 1000000ull	/* engine timers run every millisecond */

struct worker_rxq {
	uint16_t port;		/* index into the ports array */
	uint16_t queue;
};

struct worker_txbuf {
	uint16_t n;
	struct rte_mbuf *pkts[WORKER_TXBUF];
};

struct dp_engine;

struct worker {
	unsigned idx;		/* 0..n_workers-1; also its shm lcore region */
	unsigned lcore_id;
	struct worker_rxq rxq[WORKER_MAX_RXQ];
	unsigned n_rxq;
	struct rte_ring *ring;	/* SMTP frames other workers dispatched to us */
	struct shm_lcore *lc;
	struct rtable_reader rt;
	uint64_t shm_gen;	/* dpshm generation this worker uses */
	uint64_t last_timer_ns;
	uint64_t now_ns;	/* CLOCK_MONOTONIC at the start of this iteration */
	struct dp_engine *eng;	/* NULL: bridge everything */
	struct worker_txbuf tx[DPCONF_MAX_PORTS];
	/* software dispatch: SMTP frames of one burst sorted by owning worker */
	uint16_t n_away[WORKER_MAX];
	struct rte_mbuf *away[WORKER_MAX][DPCONF_MAX_BURST];
	/* counters batched per loop, added to lc once per iteration */
	uint64_t n_rx, n_tx, n_txdrop, n_bridged, n_smtp, n_frag, n_dispatch_drop;
} __rte_cache_aligned;

struct worker_ctx {
	const struct dpconf *conf;
	struct port *ports;
	unsigned n_ports;
	struct worker *workers;
	unsigned n_workers;
	bool sw_dispatch;	/* some port has one RX queue for all workers */
	struct dpshm *shm;	/* NULL in the benchmark (lc set by the caller) */
	struct dpstate *state;	/* engine state file; NULL: process memory */
	volatile int quit;
	struct rte_mempool *pool;
};

/* Assign RX queues to workers and create the dispatch rings. */
int worker_plan(struct worker_ctx *x, char *err, size_t errlen);

/* Attach worker w to the current shared memory and its engine; mark it online. */
int worker_online(struct worker_ctx *x, struct worker *w);

/* Per-packet processing of one received burst from ports[port] (also used
 * by the benchmark); frames end up in w->tx or freed.  Returns frames taken. */
void worker_rx_burst(struct worker_ctx *x, struct worker *w, uint16_t port,
		     struct rte_mbuf **pkts, uint16_t n);

/* Transmit everything buffered. */
void worker_flush(struct worker_ctx *x, struct worker *w);

/* One iteration of the loop: poll every queue and the ring, flush, timers,
 * quiescent point.  Returns frames received. */
unsigned worker_poll(struct worker_ctx *x, struct worker *w, uint64_t now_ns);

/* The lcore entry point: arg is the worker_ctx; runs until x->quit. */
int worker_main(void *arg);

/* Offline, drain, free rings. */
void worker_fini(struct worker_ctx *x);

/* Symmetric flow hash of an IPv4/IPv6 TCP frame (same both directions).
 * Returns 0 and sets *smtp when the frame is TCP to/from an SMTP port. */
uint32_t worker_flow_hash(const struct rte_mbuf *m, const struct dpconf *c, int *smtp,
			  int *frag);

uint64_t worker_now_ns(void);

#endif
