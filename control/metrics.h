/*
 * metrics.h — Prometheus metrics: rcptgated serves the text exposition
 * format (version 0.0.4) at /metrics on metrics_listen (off when empty),
 * through libmicrohttpd driven by the event loop (its epoll fd registered
 * with the loop, MHD_run() when it is ready: never a blocking call, no
 * thread of its own, so a scrape reads the core's state on the thread that
 * owns it).
 *
 * What it exports is generated from the tables rcptctl stats prints:
 * every counter of core_stats_foreach() (the daemon's CORE_STATS_LIST, the
 * callout engine's, the services', the rings', the table's) as
 * rcptgate_GROUP_NAME_total (or a gauge when it is a level), the data
 * plane's STATS_LIST per lcore as rcptgate_dataplane_NAME_total{lcore="N"},
 * per-domain gauges and counters ({domain="..."}), the callout latency as a
 * histogram (rcptgate_callout_duration_seconds), and the daemon's status
 * (table and store entries, ring depths, lcores online...).
 * Thread: main thread only.
 */
#ifndef RG_METRICS_H
#define RG_METRICS_H

#include <stddef.h>
#include <stdio.h>

#include "core.h"

int metrics_start(const struct config *cfg, char *err, size_t errlen);
int metrics_reload(const struct config *cfg, char *err, size_t errlen);
void metrics_stop(void);
void metrics_stats_foreach(core_stat_fn fn, void *arg);

/* Write the whole exposition to f (what GET /metrics answers).  0 or -errno. */
int metrics_render(FILE *f);

#endif
