/*
 * wengine.h — the worker's side of the engine: per-lcore engine state, the
 * translation between mbufs and the engine's packet view, where the engine's
 * output frames go (peer port or back out of the ingress port), checksum
 * offload flags, and the engine's timers.  Runs on the owning worker lcore
 * (init and fini in the main thread).
 */
#ifndef RG_WENGINE_H
#define RG_WENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "shm.h"

struct worker_ctx;
struct worker;

/* Bytes of one worker's engine (its region of the state file); 0 without
 * an engine or with limits the engine refuses. */
size_t wengine_mem_size(struct worker_ctx *x);

/* Create w->eng for the shared memory m (in its region of x->state, taken
 * over when the previous process left one there); -ENOTSUP when built without the engine. */
int wengine_init(struct worker_ctx *x, struct worker *w, struct shm_map *m);

/* Point the engine at a new shared-memory file (tables, rings, stats). */
void wengine_attach(struct worker_ctx *x, struct worker *w, struct shm_map *m);

/*
 * Frames the engine gives back to transmit, in order: mbuf m[i] on port
 * index port[i].  The engine returns them; it never transmits (the worker
 * owns the TX queues).
 */
#define WENGINE_TX_MAX 16u	/* >= 1 + the engine's ENGINE_OUT_MIN lent buffers */
struct wengine_tx {
	uint16_t n;
	uint16_t port[WENGINE_TX_MAX];
	struct rte_mbuf *m[WENGINE_TX_MAX];
};

/* Run one SMTP segment received on ports[pi] through the engine: the frame
 * itself (when forwarded) and the engine's own frames go into tx. */
void wengine_rx(struct worker_ctx *x, struct worker *w, uint16_t pi, struct rte_mbuf *m,
		struct wengine_tx *tx);

/* Idle timeouts and retransmissions: what is due goes into tx. */
void wengine_timers(struct worker_ctx *x, struct worker *w, uint64_t now_ns,
		    struct wengine_tx *tx);

void wengine_fini(struct worker_ctx *x, struct worker *w);

/* The engine of worker w (NULL without one), for introspection. */
struct engine *wengine_engine(struct worker *w);

#endif
