/*
 * services.h — the services rcptgated runs besides its core, in start
 * order: one table (name, start, reload, stop, stats), registered by main.c
 * (and by the tests that run a whole daemon).  The daemon calls services
 * only through this table; a service uses the core (core.h) and the event
 * loop, never the other way round.
 * Thread: main thread only.
 */
#ifndef RG_SERVICES_H
#define RG_SERVICES_H

#include "core.h"
#include "fleet.h"
#include "metrics.h"

static const struct core_service rcptgated_services[] = {
	{"control socket", ctl_start, ctl_reload, ctl_stop, ctl_stats_foreach},
	{"policy service", policy_start, policy_reload, policy_stop, policy_stats_foreach},
	{"fleet", fleet_start, fleet_reload, fleet_stop, fleet_stats_foreach},
	{"metrics", metrics_start, metrics_reload, metrics_stop, metrics_stats_foreach},
#ifdef RG_HAVE_XDP
	{"xdp", xdp_start, xdp_reload, xdp_stop, xdp_stats_foreach},
#endif
};
#define RCPTGATED_NSERVICES (sizeof(rcptgated_services) / sizeof(rcptgated_services[0]))

#endif
