/*
 * port.h — set-up and tear-down of the ethdevs rcptgate-dp bridges: queue
 * counts, symmetric RSS when the device has it, checksum offloads when it
 * advertises them, promiscuous mode.  Works for any ethdev: PCI NICs and the
 * virtual ones (net_af_packet, net_af_xdp, net_pcap, net_ring).
 * Main thread, at start-up and shutdown; workers only read struct port.
 */
#ifndef RG_PORT_H
#define RG_PORT_H

#include <stdint.h>

#include <rte_ethdev.h>
#include <rte_mempool.h>
#include <rte_spinlock.h>

#define PORT_MAX_QUEUES 64u
#define PORT_RSS_KEY_MAX 64u

struct port {
	uint16_t port_id;
	uint16_t peer;		/* index of the peer in the ports array */
	uint8_t outside;	/* 1: faces the internet (clients) */
	uint8_t rss;		/* symmetric RSS active over nb_rxq queues */
	uint8_t csum_offload;	/* IPv4 + TCP checksum TX offloads enabled */
	uint8_t started;
	uint16_t nb_rxq, nb_txq;
	uint8_t txq_shared;	/* fewer TX queues than workers: txlock[] guards them */
	uint16_t mtu;
	char name[RTE_ETH_NAME_MAX_LEN];
	char driver[32];
	rte_spinlock_t txlock[PORT_MAX_QUEUES];
};

/* The symmetric Toeplitz key: 0x6d5a repeated makes hash(a->b) == hash(b->a). */
void port_symmetric_key(uint8_t *key, unsigned len);

/*
 * Configure and start port_id for nb_workers workers.  want_rss: 1 to try
 * RSS over nb_workers queues, 0 for a single RX queue (software dispatch).
 * rss_required: fail rather than fall back.  Fills p (port_id, rss, queues,
 * offloads, names); p->peer and p->outside are the caller's.
 */
int port_setup(struct port *p, uint16_t port_id, unsigned nb_workers, int want_rss,
	       int rss_required, int sw_csum, unsigned rx_desc, unsigned tx_desc,
	       struct rte_mempool *pool, char *err, size_t errlen);

/* Can port_id spread nb_workers RX queues by symmetric RSS? */
int port_can_rss(uint16_t port_id, unsigned nb_workers);

void port_describe(const struct port *p, char *buf, size_t len);

/* Stop and close (idempotent). */
void port_teardown(struct port *p);

#endif
