/*
 * port.c — ethdev set-up for rcptgate-dp.  RSS is configured with the
 * symmetric Toeplitz key (0x6d5a repeated) over IP and TCP hash types and a
 * RETA filled round-robin, so both directions of a connection, seen on the two
 * ports of a pair, land on the same queue index and so on the same worker.
 * Devices without RSS (most virtual ones) get one RX queue; the workers then
 * dispatch SMTP flows among themselves in software.  TX checksum offloads are
 * enabled when advertised; otherwise the engine fixes checksums in software.
 * Main thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "port.h"

void port_symmetric_key(uint8_t *key, unsigned len)
{
	for (unsigned i = 0; i < len; i++)
		key[i] = (i & 1) ? 0x5a : 0x6d;
}

static uint64_t port_rss_hf(const struct rte_eth_dev_info *di)
{
	return di->flow_type_rss_offloads &
	       (RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_IPV6 |
		RTE_ETH_RSS_NONFRAG_IPV6_TCP | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_FRAG_IPV6);
}

int port_can_rss(uint16_t port_id, unsigned nb_workers)
{
	struct rte_eth_dev_info di;

	if (rte_eth_dev_info_get(port_id, &di) != 0)
		return 0;
	if (nb_workers <= 1)
		return 0; /* nothing to spread */
	return port_rss_hf(&di) != 0 && di.max_rx_queues >= nb_workers &&
	       di.max_tx_queues >= 1;
}

static void port_set_reta(struct port *p, const struct rte_eth_dev_info *di)
{
	struct rte_eth_rss_reta_entry64 reta[RTE_ETH_RSS_RETA_SIZE_512 / RTE_ETH_RETA_GROUP_SIZE];
	unsigned size = di->reta_size;

	if (size == 0 || size > RTE_ETH_RSS_RETA_SIZE_512)
		return;
	memset(reta, 0, sizeof(reta));
	for (unsigned i = 0; i < size; i++) {
		reta[i / RTE_ETH_RETA_GROUP_SIZE].mask |= 1ull << (i % RTE_ETH_RETA_GROUP_SIZE);
		reta[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] =
			(uint16_t)(i % p->nb_rxq);
	}
	/* Same table on both ports of a pair; a device that refuses keeps its
	 * default, which is the same round-robin fill. */
	(void)rte_eth_dev_rss_reta_update(p->port_id, reta, (uint16_t)size);
}

int port_setup(struct port *p, uint16_t port_id, unsigned nb_workers, int want_rss,
	       int rss_required, int sw_csum, unsigned rx_desc, unsigned tx_desc,
	       struct rte_mempool *pool, char *err, size_t errlen)
{
	struct rte_eth_dev_info di;
	struct rte_eth_conf conf;
	uint8_t key[PORT_RSS_KEY_MAX];
	uint16_t nrx, ntx, nb_rxd = (uint16_t)rx_desc, nb_txd = (uint16_t)tx_desc;
	uint64_t csum = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
	int rc, socket;

	p->port_id = port_id;
	p->started = 0;
	if (!rte_eth_dev_is_valid_port(port_id)) {
		snprintf(err, errlen, "port %u does not exist (check the EAL --vdev/-a options)",
			 port_id);
		return -ENODEV;
	}
	rc = rte_eth_dev_info_get(port_id, &di);
	if (rc != 0) {
		snprintf(err, errlen, "port %u: dev_info: %s", port_id, rte_strerror(-rc));
		return rc;
	}
	rte_eth_dev_get_name_by_port(port_id, p->name);
	snprintf(p->driver, sizeof(p->driver), "%s", di.driver_name ? di.driver_name : "?");

	memset(&conf, 0, sizeof(conf));
	p->rss = want_rss && port_can_rss(port_id, nb_workers);
	if (want_rss && rss_required && !p->rss) {
		snprintf(err, errlen, "port %u (%s): no RSS over %u queues (max_rx_queues %u)",
			 port_id, p->driver, nb_workers, di.max_rx_queues);
		return -ENOTSUP;
	}
	if (p->rss) {
		unsigned klen = di.hash_key_size ? di.hash_key_size : 40;
		if (klen > sizeof(key))
			klen = sizeof(key);
		port_symmetric_key(key, klen);
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_key = key;
		conf.rx_adv_conf.rss_conf.rss_key_len = (uint8_t)klen;
		conf.rx_adv_conf.rss_conf.rss_hf = port_rss_hf(&di);
		nrx = (uint16_t)nb_workers;
	} else {
		nrx = 1;
	}
	ntx = (uint16_t)(nb_workers < di.max_tx_queues ? nb_workers : di.max_tx_queues);
	if (ntx == 0)
		ntx = 1;
	if (ntx > PORT_MAX_QUEUES)
		ntx = PORT_MAX_QUEUES;
	p->txq_shared = ntx < nb_workers;
	p->csum_offload = !sw_csum && (di.tx_offload_capa & csum) == csum;
	if (p->csum_offload)
		conf.txmode.offloads |= csum;
	if (di.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;

	rc = rte_eth_dev_configure(port_id, nrx, ntx, &conf);
	if (rc != 0) {
		snprintf(err, errlen, "port %u (%s): configure %u rx %u tx: %s", port_id,
			 p->driver, nrx, ntx, rte_strerror(-rc));
		return rc;
	}
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd);
	if (rc != 0) {
		snprintf(err, errlen, "port %u: descriptors: %s", port_id, rte_strerror(-rc));
		return rc;
	}
	socket = rte_eth_dev_socket_id(port_id);
	if (socket < 0)
		socket = (int)rte_socket_id();
	for (uint16_t q = 0; q < nrx; q++) {
		rc = rte_eth_rx_queue_setup(port_id, q, nb_rxd, (unsigned)socket, NULL, pool);
		if (rc != 0) {
			snprintf(err, errlen, "port %u: rx queue %u: %s", port_id, q,
				 rte_strerror(-rc));
			return rc;
		}
	}
	for (uint16_t q = 0; q < ntx; q++) {
		struct rte_eth_txconf txc = di.default_txconf;
		txc.offloads = conf.txmode.offloads;
		rc = rte_eth_tx_queue_setup(port_id, q, nb_txd, (unsigned)socket, &txc);
		if (rc != 0) {
			snprintf(err, errlen, "port %u: tx queue %u: %s", port_id, q,
				 rte_strerror(-rc));
			return rc;
		}
		rte_spinlock_init(&p->txlock[q]);
	}
	p->nb_rxq = nrx;
	p->nb_txq = ntx;
	if (rte_eth_dev_get_mtu(port_id, &p->mtu) != 0)
		p->mtu = RTE_ETHER_MTU;
	rc = rte_eth_dev_start(port_id);
	if (rc != 0) {
		snprintf(err, errlen, "port %u (%s): start: %s", port_id, p->driver,
			 rte_strerror(-rc));
		return rc;
	}
	p->started = 1;
	if (p->rss)
		port_set_reta(p, &di);
	/* A bridge must see every frame, whatever its destination MAC. */
	rc = rte_eth_promiscuous_enable(port_id);
	if (rc != 0 && rc != -ENOTSUP)
		fprintf(stderr, "rcptgate-dp: port %u: promiscuous: %s (continuing)\n", port_id,
			rte_strerror(-rc));
	return 0;
}

void port_describe(const struct port *p, char *buf, size_t len)
{
	snprintf(buf, len, "port %u %s (%s, %s): %u rx / %u tx queue%s%s, %s checksums, mtu %u",
		 p->port_id, p->name, p->driver, p->outside ? "outside" : "inside", p->nb_rxq,
		 p->nb_txq, p->nb_txq > 1 ? "s" : "",
		 p->rss ? ", symmetric RSS" : ", software dispatch",
		 p->csum_offload ? "offloaded" : "software", p->mtu);
}

void port_teardown(struct port *p)
{
	if (p->started) {
		int rc = rte_eth_dev_stop(p->port_id);
		if (rc != 0)
			fprintf(stderr, "rcptgate-dp: port %u: stop: %s\n", p->port_id,
				rte_strerror(-rc));
		p->started = 0;
	}
	rte_eth_dev_close(p->port_id);
}
