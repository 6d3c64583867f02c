/*
 * worker.c — the rcptgate-dp lcore loop.  Each worker polls its RX queues,
 * classifies every frame (Ethernet, up to two VLAN tags, IPv4/IPv6, TCP),
 * bridges everything that is not TCP to or from an SMTP port straight to the
 * peer port, and gives SMTP segments to the engine, which edits them and may
 * emit reply segments back toward the client.
 *
 * Both directions of a flow must meet on one worker.  With symmetric RSS the
 * NIC already did that; on ports with one RX queue the worker that received
 * a segment computes a symmetric flow hash and passes the segment through the
 * owner's rte_ring (multi-producer, single-consumer).  Non-SMTP frames are
 * bridged by whichever worker received them.
 *
 * No allocation on the packet path: mbufs come from the pools set up at
 * start, buffers and counters are per worker.  Counters are batched per loop
 * iteration into the worker's shm_lcore block (single writer).
 * Runs on every worker lcore; set-up (worker_plan) in the main thread.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_byteorder.h>
#include <rte_branch_prediction.h>
#include <rte_ether.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_prefetch.h>
#include <rte_tcp.h>

#include "worker.h"
#include "wengine.h"

uint64_t worker_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- classification ---- */

#define WORKER_MAX_VLANS 2

uint32_t worker_flow_hash(const struct rte_mbuf *m, const struct dpconf *c, int *smtp,
			  int *frag)
{
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
	const uint8_t *end = p + rte_pktmbuf_data_len(m);
	const struct rte_ether_hdr *eh = (const void *)p;
	const struct rte_ipv4_hdr *ih4 = NULL;
	const struct rte_ipv6_hdr *ih6 = NULL;
	const struct rte_tcp_hdr *th;
	uint16_t et, sp, dp;
	uint32_t ipx, pk;
	int v;

	*smtp = 0;
	*frag = 0;
	if ((const uint8_t *)(eh + 1) > end)
		return 0;
	et = eh->ether_type;
	p = (const uint8_t *)(eh + 1);
	for (v = 0; v < WORKER_MAX_VLANS &&
		    (et == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN) ||
		     et == rte_cpu_to_be_16(RTE_ETHER_TYPE_QINQ));
	     v++) {
		const struct rte_vlan_hdr *vh = (const void *)p;
		if ((const uint8_t *)(vh + 1) > end)
			return 0;
		et = vh->eth_proto;
		p = (const uint8_t *)(vh + 1);
	}
	if (likely(et == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4))) {
		unsigned ihl;
		ih4 = (const void *)p;
		if ((const uint8_t *)(ih4 + 1) > end)
			return 0;
		ihl = (ih4->version_ihl & 0x0f) * 4u;
		if ((ih4->version_ihl >> 4) != 4 || ihl < sizeof(*ih4) || p + ihl > end ||
		    ih4->next_proto_id != IPPROTO_TCP)
			return 0;
		if (ih4->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG |
							    RTE_IPV4_HDR_OFFSET_MASK)) {
			*frag = 1;
			return 0;
		}
		th = (const void *)(p + ihl);
	} else if (et == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6)) {
		ih6 = (const void *)p;
		if ((const uint8_t *)(ih6 + 1) > end)
			return 0;
		if (ih6->proto == 44) { /* fragment header */
			*frag = 1;
			return 0;
		}
		if (ih6->proto != IPPROTO_TCP)
			return 0;
		th = (const void *)(ih6 + 1);
	} else {
		return 0;
	}
	if ((const uint8_t *)(th + 1) > end)
		return 0;
	sp = rte_be_to_cpu_16(th->src_port);
	dp = rte_be_to_cpu_16(th->dst_port);
	if (!dpconf_is_smtp_port(c, dp) && !dpconf_is_smtp_port(c, sp))
		return 0;
	*smtp = 1;
	/* XOR and sum of the two ports and XOR of the two addresses are the same
	 * whichever way the segment travels. */
	if (ih4) {
		ipx = ih4->src_addr ^ ih4->dst_addr;
	} else {
		uint32_t a[4], b[4];
		memcpy(a, ih6->src_addr, 16);
		memcpy(b, ih6->dst_addr, 16);
		ipx = (a[0] ^ b[0]) ^ (a[1] ^ b[1]) ^ (a[2] ^ b[2]) ^ (a[3] ^ b[3]);
	}
	pk = (uint32_t)(sp ^ dp) | ((uint32_t)(uint16_t)(sp + dp) << 16);
	return rte_hash_crc_4byte(pk, rte_hash_crc_4byte(ipx, 0x52475450u));
}

/* ---- transmit ---- */

static void worker_tx_port(struct worker_ctx *x, struct worker *w, uint16_t pi)
{
	struct worker_txbuf *b = &w->tx[pi];
	struct port *p = &x->ports[pi];
	uint16_t q = (uint16_t)(w->idx % p->nb_txq), sent;

	if (b->n == 0)
		return;
	if (p->txq_shared)
		rte_spinlock_lock(&p->txlock[q]);
	sent = rte_eth_tx_burst(p->port_id, q, b->pkts, b->n);
	if (p->txq_shared)
		rte_spinlock_unlock(&p->txlock[q]);
	w->n_tx += sent;
	if (sent < b->n) {
		/* TX ring full: drop what did not fit (as a switch would), counted. */
		w->n_txdrop += b->n - sent;
		rte_pktmbuf_free_bulk(&b->pkts[sent], b->n - sent);
	}
	b->n = 0;
}

static inline void worker_tx_one(struct worker_ctx *x, struct worker *w, uint16_t pi,
				 struct rte_mbuf *m)
{
	struct worker_txbuf *b = &w->tx[pi];
	if (b->n == WORKER_TXBUF)
		worker_tx_port(x, w, pi);
	b->pkts[b->n++] = m;
}

void worker_flush(struct worker_ctx *x, struct worker *w)
{
	for (uint16_t pi = 0; pi < x->n_ports; pi++)
		worker_tx_port(x, w, pi);
}

/* ---- the SMTP path ---- */

static void worker_smtp(struct worker_ctx *x, struct worker *w, uint16_t pi,
			struct rte_mbuf **pkts, uint16_t n)
{
	if (!w->eng) {
		/* with the engine, it counts smtp_pkts itself */
		w->n_smtp += n;
		for (uint16_t i = 0; i < n; i++)
			worker_tx_one(x, w, x->ports[pi].peer, pkts[i]);
		return;
	}
	for (uint16_t i = 0; i < n; i++) {
		struct wengine_tx tx;
		wengine_rx(x, w, pi, pkts[i], &tx);
		for (unsigned k = 0; k < tx.n; k++)
			worker_tx_one(x, w, tx.port[k], tx.m[k]);
	}
}

static void worker_dispatch(struct worker_ctx *x, struct worker *w, unsigned owner,
			    struct rte_mbuf **pkts, unsigned n)
{
	unsigned done = rte_ring_enqueue_burst(x->workers[owner].ring, (void **)pkts, n, NULL);
	if (done < n) {
		w->n_dispatch_drop += n - done;
		rte_pktmbuf_free_bulk(&pkts[done], n - done);
	}
}

void worker_rx_burst(struct worker_ctx *x, struct worker *w, uint16_t pi,
		     struct rte_mbuf **pkts, uint16_t n)
{
	struct rte_mbuf *mine[DPCONF_MAX_BURST];
	uint16_t n_mine = 0;
	uint16_t peer = x->ports[pi].peer;
	unsigned nw = x->n_workers;
	int dispatch = x->sw_dispatch && nw > 1;
	int smtp, frag;

	w->n_rx += n;
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		uint32_t h;
		if (i + 1 < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
		h = worker_flow_hash(m, x->conf, &smtp, &frag);
		if (!smtp) {
			w->n_frag += (uint64_t)frag;
			w->n_bridged++;
			worker_tx_one(x, w, peer, m);
			continue;
		}
		if (dispatch) {
			unsigned owner = (unsigned)(((uint64_t)h * nw) >> 32);
			if (owner != w->idx) {
				/* tag the ingress port index for the owner */
				m->hash.usr = pi;
				w->away[owner][w->n_away[owner]++] = m;
				continue;
			}
		}
		mine[n_mine++] = m;
	}
	if (n_mine)
		worker_smtp(x, w, pi, mine, n_mine);
	if (dispatch)
		for (unsigned o = 0; o < nw; o++)
			if (w->n_away[o]) {
				worker_dispatch(x, w, o, w->away[o], w->n_away[o]);
				w->n_away[o] = 0;
			}
}

static unsigned worker_drain_ring(struct worker_ctx *x, struct worker *w)
{
	struct rte_mbuf *pkts[DPCONF_MAX_BURST];
	unsigned n = rte_ring_dequeue_burst(w->ring, (void **)pkts, x->conf->burst, NULL);
	unsigned i = 0;

	/* Segments arrive from every port; hand them over in runs per port. */
	while (i < n) {
		unsigned j = i + 1;
		uint16_t pi = (uint16_t)pkts[i]->hash.usr;
		while (j < n && pkts[j]->hash.usr == pi)
			j++;
		worker_smtp(x, w, pi, &pkts[i], (uint16_t)(j - i));
		i = j;
	}
	return n;
}

static void worker_commit_stats(struct worker *w)
{
	struct shm_lcore *lc = w->lc;
	if (w->n_rx)
		stats_add(lc, STAT_RX_PKTS, w->n_rx);
	if (w->n_tx)
		stats_add(lc, STAT_TX_PKTS, w->n_tx);
	if (w->n_txdrop)
		stats_add(lc, STAT_TX_DROP, w->n_txdrop);
	if (w->n_bridged)
		stats_add(lc, STAT_BRIDGED, w->n_bridged);
	if (w->n_smtp)
		stats_add(lc, STAT_SMTP_PKTS, w->n_smtp);
	if (w->n_frag)
		stats_add(lc, STAT_FRAGMENTS, w->n_frag);
	if (w->n_dispatch_drop)
		stats_add(lc, STAT_DISPATCH_DROP, w->n_dispatch_drop);
	w->n_rx = w->n_tx = w->n_txdrop = w->n_bridged = w->n_smtp = w->n_frag = 0;
	w->n_dispatch_drop = 0;
}

/* Switch to a new shared-memory file published by the main thread. */
static void worker_switch_shm(struct worker_ctx *x, struct worker *w, uint64_t gen)
{
	struct shm_map *m = dpshm_cur(x->shm);
	struct shm_lcore *old = w->lc;

	rtable_reader_offline(&w->rt);
	w->lc = shm_lcore_at(m, w->idx);
	/* the new file's counters start where this run's were */
	if (old)
		for (unsigned i = 0; i < STAT__COUNT; i++)
			w->lc->ctr[i] = stats_read(old, i);
	rtable_reader_init(&w->rt, m, w->lc);
	rtable_reader_online(&w->rt, (uint32_t)getpid(), w->lcore_id);
	if (w->eng)
		wengine_attach(x, w, m);
	__atomic_store_n(&w->shm_gen, gen, __ATOMIC_RELEASE);
}

unsigned worker_poll(struct worker_ctx *x, struct worker *w, uint64_t now_ns)
{
	struct rte_mbuf *pkts[DPCONF_MAX_BURST];
	unsigned total = 0;

	w->now_ns = now_ns;
	for (unsigned i = 0; i < w->n_rxq; i++) {
		const struct worker_rxq *q = &w->rxq[i];
		uint16_t n = rte_eth_rx_burst(x->ports[q->port].port_id, q->queue, pkts,
					      (uint16_t)x->conf->burst);
		if (n) {
			worker_rx_burst(x, w, q->port, pkts, n);
			total += n;
		}
	}
	if (w->ring)
		total += worker_drain_ring(x, w);
	if (w->eng && now_ns - w->last_timer_ns >= WORKER_TIMER_NS) {
		struct wengine_tx tx;
		wengine_timers(x, w, now_ns, &tx);
		for (unsigned k = 0; k < tx.n; k++)
			worker_tx_one(x, w, tx.port[k], tx.m[k]);
		w->last_timer_ns = now_ns;
	}
	worker_flush(x, w);
	worker_commit_stats(w);
	rtable_quiescent(&w->rt, now_ns);
	return total;
}

int worker_online(struct worker_ctx *x, struct worker *w)
{
	struct shm_map *m = dpshm_cur(x->shm);

	w->lc = shm_lcore_at(m, w->idx);
	rtable_reader_init(&w->rt, m, w->lc);
	rtable_reader_online(&w->rt, (uint32_t)getpid(), w->lcore_id);
	w->shm_gen = dpshm_gen(x->shm);
	w->last_timer_ns = worker_now_ns();
	if (!x->conf->no_engine)
		return wengine_init(x, w, m);
	return 0;
}

int worker_main(void *arg)
{
	struct worker_ctx *x = arg;
	unsigned lcore = rte_lcore_id();
	struct worker *w = NULL;

	for (unsigned i = 0; i < x->n_workers; i++)
		if (x->workers[i].lcore_id == lcore)
			w = &x->workers[i];
	if (!w)
		return 0;
	while (!__atomic_load_n(&x->quit, __ATOMIC_RELAXED)) {
		uint64_t now = worker_now_ns();
		uint64_t gen = dpshm_gen(x->shm);
		if (gen != w->shm_gen)
			worker_switch_shm(x, w, gen);
		worker_poll(x, w, now);
	}
	worker_flush(x, w);
	worker_commit_stats(w);
	rtable_reader_offline(&w->rt);
	return 0;
}

/* The worker an --rx-map entry names for (port id, queue), or NULL. */
static struct worker *worker_mapped(struct worker_ctx *x, uint16_t port_id, uint16_t q,
				    char *err, size_t errlen)
{
	const struct dpconf *c = x->conf;
	for (unsigned i = 0; i < c->n_rxmap; i++) {
		if (c->rxmap[i].port != port_id || c->rxmap[i].queue != q)
			continue;
		for (unsigned k = 0; k < x->n_workers; k++)
			if (x->workers[k].lcore_id == c->rxmap[i].lcore)
				return &x->workers[k];
		snprintf(err, errlen, "rx-map %u:%u@%u: lcore %u is not a worker lcore", port_id, q,
			 c->rxmap[i].lcore, c->rxmap[i].lcore);
		return NULL;
	}
	snprintf(err, errlen, "rx-map: no lcore for port %u queue %u", port_id, q);
	return NULL;
}

int worker_plan(struct worker_ctx *x, char *err, size_t errlen)
{
	unsigned nw = x->n_workers, next = 0;

	x->sw_dispatch = false;
	for (unsigned pi = 0; pi < x->n_ports; pi++)
		if (!x->ports[pi].rss)
			x->sw_dispatch = true;
	for (unsigned pi = 0; pi < x->n_ports; pi++) {
		struct port *p = &x->ports[pi];
		for (uint16_t q = 0; q < p->nb_rxq; q++) {
			/* RSS: queue q belongs to worker q on every port, so both
			 * directions of a flow meet.  Single queue: round robin. */
			struct worker *w = &x->workers[p->rss ? q % nw : next++ % nw];
			if (x->conf->n_rxmap) {
				w = worker_mapped(x, p->port_id, q, err, errlen);
				if (!w)
					return -EINVAL;
				/* with RSS a flow's two directions arrive on queue q of
				 * two ports: one worker must poll queue q everywhere */
				for (unsigned pj = 0; pj < pi && p->rss; pj++) {
					struct worker *o = worker_mapped(x, x->ports[pj].port_id, q,
									 err, errlen);
					if (o && o != w) {
						snprintf(err, errlen,
							 "rx-map: with RSS, queue %u of ports %u and "
							 "%u must share an lcore",
							 q, x->ports[pj].port_id, p->port_id);
						return -EINVAL;
					}
				}
			}
			if (w->n_rxq >= WORKER_MAX_RXQ) {
				snprintf(err, errlen, "worker %u: too many RX queues", w->idx);
				return -E2BIG;
			}
			w->rxq[w->n_rxq].port = (uint16_t)pi;
			w->rxq[w->n_rxq].queue = q;
			w->n_rxq++;
		}
	}
	if (x->sw_dispatch && nw > 1) {
		for (unsigned i = 0; i < nw; i++) {
			char name[RTE_RING_NAMESIZE];
			snprintf(name, sizeof(name), "rg_disp_%u", i);
			x->workers[i].ring = rte_ring_create(name, x->conf->ring_slots,
							     (int)rte_socket_id(), RING_F_SC_DEQ);
			if (!x->workers[i].ring) {
				snprintf(err, errlen, "dispatch ring %u: %s", i,
					 rte_strerror(rte_errno));
				return -ENOMEM;
			}
		}
	}
	return 0;
}

void worker_fini(struct worker_ctx *x)
{
	for (unsigned i = 0; i < x->n_workers; i++) {
		struct worker *w = &x->workers[i];
		for (uint16_t pi = 0; pi < x->n_ports; pi++) {
			if (w->tx[pi].n)
				rte_pktmbuf_free_bulk(w->tx[pi].pkts, w->tx[pi].n);
			w->tx[pi].n = 0;
		}
		if (w->ring) {
			void *m;
			while (rte_ring_dequeue(w->ring, &m) == 0)
				rte_pktmbuf_free(m);
			rte_ring_free(w->ring);
			w->ring = NULL;
		}
		if (w->eng)
			wengine_fini(x, w);
		if (w->lc)
			rtable_reader_offline(&w->rt);
	}
}
