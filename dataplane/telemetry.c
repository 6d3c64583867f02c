/*
 * telemetry.c — registers rcptgate-dp's telemetry commands (see telemetry.h).
 * Telemetry thread (callbacks) and main thread (registration).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <rte_telemetry.h>

#include "telemetry.h"
#include "worker.h"

static struct worker_ctx *telemetry_ctx;

static void telemetry_sum(struct worker_ctx *x, uint64_t *sum)
{
	struct shm_map *m;

	for (unsigned i = 0; i < STAT__COUNT; i++)
		sum[i] = 0;
	pthread_mutex_lock(&x->shm->lock);
	m = dpshm_cur(x->shm);
	if (m->base)
		for (unsigned w = 0; w < x->n_workers; w++)
			for (unsigned i = 0; i < STAT__COUNT; i++)
				sum[i] += stats_read(shm_lcore_at(m, w), i);
	pthread_mutex_unlock(&x->shm->lock);
}

static int telemetry_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	uint64_t sum[STAT__COUNT];

	(void)cmd;
	(void)params;
	telemetry_sum(telemetry_ctx, sum);
	rte_tel_data_start_dict(d);
	for (unsigned i = 0; i < STAT__COUNT; i++)
		rte_tel_data_add_dict_u64(d, stats_names[i], sum[i]);
	return 0;
}

static int telemetry_lcore(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct worker_ctx *x = telemetry_ctx;
	struct shm_map *m;
	char *end;
	unsigned long w;

	(void)cmd;
	if (!params || !*params)
		return -EINVAL;
	w = strtoul(params, &end, 10);
	if (*end || w >= x->n_workers)
		return -EINVAL;
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_int(d, "lcore_id", (int)x->workers[w].lcore_id);
	pthread_mutex_lock(&x->shm->lock);
	m = dpshm_cur(x->shm);
	if (m->base) {
		const struct shm_lcore *lc = shm_lcore_at(m, (unsigned)w);
		rte_tel_data_add_dict_int(d, "online", (int)__atomic_load_n(&lc->online,
									    __ATOMIC_RELAXED));
		rte_tel_data_add_dict_u64(d, "qsbr_gen",
					  __atomic_load_n(&lc->qsbr_gen, __ATOMIC_RELAXED));
		/* a worker stuck outside its loop stops moving this */
		rte_tel_data_add_dict_u64(d, "heartbeat_ns",
					  __atomic_load_n(&lc->heartbeat_ns, __ATOMIC_RELAXED));
		for (unsigned i = 0; i < STAT__COUNT; i++)
			rte_tel_data_add_dict_u64(d, stats_names[i], stats_read(lc, i));
	}
	pthread_mutex_unlock(&x->shm->lock);
	return 0;
}

static int telemetry_info(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct worker_ctx *x = telemetry_ctx;
	char buf[256];

	(void)cmd;
	(void)params;
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_int(d, "workers", (int)x->n_workers);
	rte_tel_data_add_dict_string(d, "dispatch", x->sw_dispatch ? "software" : "rss");
	rte_tel_data_add_dict_string(d, "engine", x->conf->no_engine ? "off" : "on");
	rte_tel_data_add_dict_string(d, "shm", x->conf->shm_path);
	for (unsigned i = 0; i < x->n_ports; i++) {
		char key[16];
		port_describe(&x->ports[i], buf, sizeof(buf));
		snprintf(key, sizeof(key), "port%u", i);
		rte_tel_data_add_dict_string(d, key, buf);
	}
	return 0;
}

int telemetry_register(struct worker_ctx *x)
{
	int rc;

	telemetry_ctx = x;
	rc = rte_telemetry_register_cmd("/rcptgate/stats", telemetry_stats,
					"rcptgate-dp counters summed over workers. No parameters");
	if (rc == 0)
		rc = rte_telemetry_register_cmd("/rcptgate/lcore", telemetry_lcore,
						"Counters of one worker. Parameters: int worker");
	if (rc == 0)
		rc = rte_telemetry_register_cmd("/rcptgate/info", telemetry_info,
						"Ports, workers, dispatch mode. No parameters");
	return rc;
}
