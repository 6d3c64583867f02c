/*
 * telemetry.h — rcptgate-dp's counters in DPDK telemetry, so that
 * dpdk-telemetry.py (and anything speaking its socket) shows them:
 *   /rcptgate/stats          every counter summed over the workers
 *   /rcptgate/lcore,N        the counters of worker N
 *   /rcptgate/info           ports, workers, dispatch mode, shared memory
 * The callbacks run on DPDK's telemetry thread and read the shm_lcore blocks
 * (relaxed loads) under the dpshm lock.  Registration: main thread.
 */
#ifndef RG_TELEMETRY_H
#define RG_TELEMETRY_H

struct worker_ctx;

int telemetry_register(struct worker_ctx *x);

#endif
