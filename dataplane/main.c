/*
 * main.c — rcptgate-dp: parse, attach the shared memory, set up ports and
 * workers, run until SIGINT/SIGTERM, tear down along one cleanup path.
 * The main lcore watches for a retired shared-memory file and switches the
 * workers to its replacement; the worker lcores run worker_main().
 * The engines live in the state file (dpstate.h): the ports are opened only
 * once it is locked, so that with --takeover this process prepares
 * everything else beside a running one, waits for it to exit (SIGTERM) and
 * then takes its ports and flows over.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "dpconf.h"
#include "dpshm.h"
#include "dpstate.h"
#include "dpversion.h"
#include "port.h"
#include "telemetry.h"
#include "wengine.h"
#include "worker.h"

#define DP_MBUF_CACHE 256u
#define DP_MBUF_DATA (RTE_MBUF_DEFAULT_BUF_SIZE)	/* 2048 + headroom */

static struct worker_ctx dp;
static struct dpconf conf;
static struct dpshm shm;
static struct dpstate state;

static void dp_signal(int sig)
{
	(void)sig;
	__atomic_store_n(&dp.quit, 1, __ATOMIC_RELAXED);
}

static int dp_setup_ports(char *err, size_t errlen)
{
	int want_rss = conf.dispatch != DPCONF_DISPATCH_SW;
	int need_rss = conf.dispatch == DPCONF_DISPATCH_RSS;
	unsigned n = 0;

	for (unsigned i = 0; i < conf.n_pairs; i++) {
		dp.ports[n] = (struct port){.outside = 1, .peer = (uint16_t)(n + 1)};
		dp.ports[n + 1] = (struct port){.outside = 0, .peer = (uint16_t)n};
		n += 2;
	}
	/* RSS only helps if every port spreads the same way. */
	for (unsigned i = 0; i < conf.n_pairs && want_rss; i++)
		if (!port_can_rss(conf.pairs[i].outside, dp.n_workers) ||
		    !port_can_rss(conf.pairs[i].inside, dp.n_workers))
			want_rss = need_rss;
	for (unsigned i = 0; i < conf.n_pairs; i++) {
		uint16_t ids[2] = {conf.pairs[i].outside, conf.pairs[i].inside};
		for (unsigned k = 0; k < 2; k++) {
			struct port *p = &dp.ports[2 * i + k];
			char desc[256];
			int rc = port_setup(p, ids[k], dp.n_workers, want_rss, need_rss,
					    conf.sw_csum, conf.rx_desc, conf.tx_desc, dp.pool,
					    err, errlen);
			dp.n_ports = 2 * i + k + 1;
			if (rc)
				return rc;
			port_describe(p, desc, sizeof(desc));
			fprintf(stderr, "rcptgate-dp: %s\n", desc);
		}
	}
	return 0;
}

static int dp_collect_workers(char *err, size_t errlen)
{
	unsigned lcore, n = 0;

	RTE_LCORE_FOREACH_WORKER(lcore) {
		if (n >= WORKER_MAX) {
			snprintf(err, errlen, "at most %u worker lcores", WORKER_MAX);
			return -E2BIG;
		}
		dp.workers[n].idx = n;
		dp.workers[n].lcore_id = lcore;
		n++;
	}
	if (n == 0) {
		snprintf(err, errlen,
			 "no worker lcore: give the EAL at least two (e.g. -l 0-1); the main "
			 "lcore supervises");
		return -EINVAL;
	}
	dp.n_workers = n;
	return 0;
}

/* Main lcore: follow rcptgated replacing the shared-memory file. */
static void dp_supervise(void)
{
	unsigned ticks = 0;

	while (!__atomic_load_n(&dp.quit, __ATOMIC_RELAXED)) {
		usleep(100000);
		if (++ticks % (conf.shm_retry_s * 10) != 0 || !dpshm_retired(&shm))
			continue;
		fprintf(stderr, "rcptgate-dp: %s was retired; re-attaching\n", conf.shm_path);
		if (dpshm_attach_wait(&shm, conf.shm_path, conf.shm_retry_s, &dp.quit) != 0)
			break;
		for (;;) {
			uint64_t gen = dpshm_gen(&shm);
			unsigned acked = 0;
			for (unsigned i = 0; i < dp.n_workers; i++)
				acked += __atomic_load_n(&dp.workers[i].shm_gen,
							 __ATOMIC_ACQUIRE) == gen;
			if (acked == dp.n_workers || __atomic_load_n(&dp.quit, __ATOMIC_RELAXED))
				break;
			usleep(1000);
		}
		if (!__atomic_load_n(&dp.quit, __ATOMIC_RELAXED))
			dpshm_drop_old(&shm);
	}
}

/*
 * --takeover: the virtual devices (--vdev) are probed only once the running
 * data plane has exited.  Probing one attaches its XDP program or binds its
 * socket (net_af_xdp, net_af_packet), which would take the interface from
 * the running process, and that process's closing the port would then take
 * it from us.  Everything else (EAL, hugepages, mempool, shared memory) is
 * ready before.  PCI devices cannot be shared by two primaries: with them
 * the old process is stopped and the new one started (see README).
 */
#define DP_DEFER_MAX (2u * DPCONF_MAX_PORTS)
static char *deferred[DP_DEFER_MAX];
static unsigned n_deferred;

static int dp_defer_vdevs(int argc, char **argv)
{
	int end = argc, takeover = 0, o = 0;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			end = i;
			break;
		}
	for (int i = end + 1; i < argc; i++)
		takeover |= !strcmp(argv[i], "--takeover");
	if (!takeover)
		return argc;
	for (int i = 0; i < argc; i++) {
		if (i > 0 && i < end && n_deferred < DP_DEFER_MAX) {
			if (!strcmp(argv[i], "--vdev") && i + 1 < end) {
				deferred[n_deferred++] = argv[++i];
				continue;
			}
			if (!strncmp(argv[i], "--vdev=", 7)) {
				deferred[n_deferred++] = argv[i] + 7;
				continue;
			}
		}
		argv[o++] = argv[i];
	}
	argv[o] = NULL;
	return o;
}

static int dp_probe_deferred(void)
{
	for (unsigned i = 0; i < n_deferred; i++) {
		char name[128];
		const char *comma = strchr(deferred[i], ',');
		size_t nl = comma ? (size_t)(comma - deferred[i]) : strlen(deferred[i]);
		int rc;
		if (nl >= sizeof(name)) {
			fprintf(stderr, "rcptgate-dp: --vdev %s: name too long\n", deferred[i]);
			return -EINVAL;
		}
		memcpy(name, deferred[i], nl);
		name[nl] = 0;
		rc = rte_eal_hotplug_add("vdev", name, comma ? comma + 1 : "");
		if (rc < 0) {
			fprintf(stderr, "rcptgate-dp: --vdev %s: %s\n", deferred[i], strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* Take the deferred devices away again (a retry probes them anew). */
static void dp_remove_deferred(void)
{
	for (unsigned i = 0; i < n_deferred; i++) {
		char name[128];
		size_t nl = strcspn(deferred[i], ",");
		if (nl >= sizeof(name))
			continue;
		memcpy(name, deferred[i], nl);
		name[nl] = 0;
		rte_eal_hotplug_remove("vdev", name);
	}
}

/*
 * The ports, and with --takeover a bounded retry: the kernel releases the
 * exited process's AF_XDP sockets after its exit (deferred work), so the
 * first bind can still find the queue taken ("Failed to create xsk
 * socket").  Each retry closes the ports, removes and probes the devices
 * again, 50 ms apart, for at most DP_TAKEOVER_WAIT_MS.
 */
#define DP_TAKEOVER_WAIT_MS 3000u
static int dp_setup_ports_takeover(char *err, size_t errlen)
{
	int rc = dp_setup_ports(err, errlen);
	for (unsigned waited = 0; rc < 0 && n_deferred && waited < DP_TAKEOVER_WAIT_MS &&
				  !__atomic_load_n(&dp.quit, __ATOMIC_RELAXED);
	     waited += 50) {
		if (!waited)
			fprintf(stderr, "rcptgate-dp: --takeover: %s: the previous data plane's "
					"sockets are not released yet; trying again\n", err);
		for (unsigned i = 0; i < dp.n_ports; i++)
			port_teardown(&dp.ports[i]);
		dp.n_ports = 0;
		dp_remove_deferred();
		usleep(50000);
		if (dp_probe_deferred() < 0)
			return rc;
		rc = dp_setup_ports(err, errlen);
		if (!rc)
			fprintf(stderr, "rcptgate-dp: --takeover: ports set up after %u ms more\n",
				waited + 50);
	}
	return rc;
}

int main(int argc, char **argv)
{
	char err[512] = "";
	int rc, eal_n, ret = 1, eal_ok = 0, launched = 0;
	unsigned lcore;

	argc = dp_defer_vdevs(argc, argv);
	rc = rte_eal_init(argc, argv);
	if (rc < 0) {
		fprintf(stderr, "rcptgate-dp: EAL init failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	eal_ok = 1;
	eal_n = rc;
	argv[eal_n] = argv[0];
	dpconf_defaults(&conf);
	rc = dpconf_parse_args(&conf, argc - eal_n, argv + eal_n, err, sizeof(err), stdout);
	if (rc == 1) {
		ret = 0;
		goto out;
	}
	if (rc == 0)
		rc = dpconf_validate(&conf, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "rcptgate-dp: %s\n", err);
		dpconf_usage(stderr, argv[0]);
		goto out;
	}
	dp.conf = &conf;
	dp.shm = &shm;
	dp.ports = rte_zmalloc("rg_ports", sizeof(struct port) * DPCONF_MAX_PORTS,
			       RTE_CACHE_LINE_SIZE);
	dp.workers = rte_zmalloc("rg_workers", sizeof(struct worker) * WORKER_MAX,
				 RTE_CACHE_LINE_SIZE);
	if (!dp.ports || !dp.workers) {
		fprintf(stderr, "rcptgate-dp: out of hugepage memory\n");
		goto out;
	}
	if (dp_collect_workers(err, sizeof(err)) < 0) {
		fprintf(stderr, "rcptgate-dp: %s\n", err);
		goto out;
	}
	signal(SIGINT, dp_signal);
	signal(SIGTERM, dp_signal);

	dpshm_init(&shm, dp.n_workers);
	rc = dpshm_attach_wait(&shm, conf.shm_path, conf.shm_retry_s, &dp.quit);
	if (rc) {
		if (rc == -EINTR)
			ret = 0;
		goto out_shm;
	}

	if (!conf.no_engine && !conf.no_state) {
		char path[PATH_MAX];
		if (conf.state_path[0])
			snprintf(path, sizeof(path), "%s", conf.state_path);
		else
			dpstate_default_path(path, sizeof(path), conf.shm_path);
		if (conf.takeover)
			fprintf(stderr, "rcptgate-dp: --takeover: waiting for the data plane using "
					"%s to exit\n", path);
		rc = dpstate_lock(&state, path, conf.takeover, &dp.quit, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "rcptgate-dp: %s\n", err);
			if (rc == -EINTR)
				ret = 0;
			goto out_shm;
		}
		dp.state = &state;
	}
	if (dp_probe_deferred() < 0)
		goto out_shm;
	for (unsigned i = 0; i < conf.n_pairs; i++)
		for (unsigned k = 0; k < 2; k++) {
			uint16_t id = k ? conf.pairs[i].inside : conf.pairs[i].outside;
			if (!rte_eth_dev_is_valid_port(id)) {
				fprintf(stderr, "rcptgate-dp: port %u does not exist (%u ports: check "
						"the EAL --vdev/-a options)\n",
					id, rte_eth_dev_count_avail());
				goto out_shm;
			}
		}

	dp.pool = rte_pktmbuf_pool_create("rg_mbufs", conf.mbufs * 2 * conf.n_pairs,
					  DP_MBUF_CACHE, 0, DP_MBUF_DATA, (int)rte_socket_id());
	if (!dp.pool) {
		fprintf(stderr, "rcptgate-dp: mbuf pool of %u: %s (hugepages reserved?)\n",
			conf.mbufs * 2 * conf.n_pairs, rte_strerror(rte_errno));
		goto out_shm;
	}
	if (dp_setup_ports_takeover(err, sizeof(err)) < 0 ||
	    worker_plan(&dp, err, sizeof(err)) < 0) {
		fprintf(stderr, "rcptgate-dp: %s\n", err);
		goto out_ports;
	}
	if (dp.state) {
		size_t region = wengine_mem_size(&dp);
		uint32_t map = DPSTATE_MAP(dp.n_workers, dp.sw_dispatch && dp.n_workers > 1);
		if (!region || dpstate_open(&state, dp.n_workers, region, map, RG_DP_BUILD, err,
					    sizeof(err)) < 0) {
			fprintf(stderr, "rcptgate-dp: %s\n", region ? err : "engine limits refused");
			goto out_ports;
		}
		if (state.adopt)
			fprintf(stderr, "rcptgate-dp: state file %s: taking over its flows\n",
				state.path);
		else
			fprintf(stderr, "rcptgate-dp: state file %s: fresh (%s)\n", state.path,
				state.why);
	}
	for (unsigned i = 0; i < dp.n_workers; i++) {
		struct worker *w = &dp.workers[i];
		rc = worker_online(&dp, w);
		if (rc) {
			fprintf(stderr, "rcptgate-dp: worker %u: engine: %s\n", i, strerror(-rc));
			goto out_workers;
		}
		{
			char line[256];
			int o = snprintf(line, sizeof(line), "worker %u on lcore %u polls", i,
					 w->lcore_id);
			for (unsigned q = 0; q < w->n_rxq && o < (int)sizeof(line); q++)
				o += snprintf(line + o, sizeof(line) - (size_t)o, " port%u/q%u",
					      dp.ports[w->rxq[q].port].port_id, w->rxq[q].queue);
			fprintf(stderr, "rcptgate-dp: %s%s\n", line,
				dp.sw_dispatch && dp.n_workers > 1 ? " (software dispatch)" : "");
		}
	}
	if (dp.state)
		dpstate_drop_old(&state);
	rc = telemetry_register(&dp);
	if (rc)
		fprintf(stderr, "rcptgate-dp: telemetry registration: %s (continuing)\n",
			strerror(-rc));
	fprintf(stderr, "rcptgate-dp: running %u worker%s, engine %s, build %s, smtp ports",
		dp.n_workers, dp.n_workers > 1 ? "s" : "", conf.no_engine ? "off" : "on",
		RG_DP_BUILD);
	for (unsigned i = 0; i < conf.n_smtp_ports; i++)
		fprintf(stderr, "%s%u", i ? "," : " ", conf.smtp_ports[i]);
	fprintf(stderr, "\n");

	RTE_LCORE_FOREACH_WORKER(lcore)
		rte_eal_remote_launch(worker_main, &dp, lcore);
	launched = 1;
	dp_supervise();
	ret = 0;

out_workers:
	__atomic_store_n(&dp.quit, 1, __ATOMIC_RELAXED);
	if (launched)
		rte_eal_mp_wait_lcore();
	worker_fini(&dp);
out_ports:
	for (unsigned i = 0; i < dp.n_ports; i++)
		port_teardown(&dp.ports[i]);
	fprintf(stderr, "rcptgate-dp: ports stopped and closed; exiting\n");
out_shm:
	dpstate_close(&state); /* the file stays: the next data plane takes it over */
	dpshm_fini(&shm);
out:
	if (dp.pool)
		rte_mempool_free(dp.pool);
	rte_free(dp.ports);
	rte_free(dp.workers);
	if (eal_ok)
		rte_eal_cleanup();
	return ret;
}
