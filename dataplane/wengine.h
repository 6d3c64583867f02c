/*
 * wengine.h — the worker's side of the engine: per-lcore engine state, the
 * translation between mbufs and the engine's packet view, where the engine's
 * output frames go (peer port or back out of the ingress port), checksum
 * offload flags, and the engine's timers.  Runs on the owning worker lcore
 * (init and fini in the main thread).
 */
#ifndef RG_WENGINE_H
#define RG_WENGINE_H

#include <stdint.h>

#include <rte_mbuf.h>

#include "shm.h"

struct worker_ctx;
struct worker;

/* Create w->eng for the shared memory m; -ENOTSUP when built without the engine. */
int wengine_init(struct worker_ctx *x, struct worker *w, struct shm_map *m);

/* Point the engine at a new shared-memory file (tables, rings, stats). */
void wengine_attach(struct worker_ctx *x, struct worker *w, struct shm_map *m);

/* Feed n SMTP segments received on ports[pi]; output goes to worker_emit(). */
void wengine_burst(struct worker_ctx *x, struct worker *w, uint16_t pi,
		   struct rte_mbuf **pkts, uint16_t n);

/* Idle timeouts and retransmission of injected replies. */
void wengine_timers(struct worker_ctx *x, struct worker *w, uint64_t now_ns);

void wengine_fini(struct worker_ctx *x, struct worker *w);

/* The engine of worker w (NULL without one), for introspection. */
struct engine *wengine_engine(struct worker *w);

/* worker.c: queue m for transmission on ports[pi]. */
void worker_emit(struct worker_ctx *x, struct worker *w, uint16_t pi, struct rte_mbuf *m);

#endif
