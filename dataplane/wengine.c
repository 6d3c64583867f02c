/*
 * wengine.c — adapter between the worker loop and the engine (engine/):
 * see wengine.h.  Runs on the owning worker lcore.
 */
#include <errno.h>

#include "wengine.h"
#include "worker.h"

#ifdef RG_HAVE_ENGINE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_ethdev.h>
#include <rte_malloc.h>

#include "dpstate.h"
#include "engine.h"
#include "xdphold.h"

_Static_assert(WENGINE_TX_MAX >= 1 + ENGINE_OUT_MIN, "wengine_tx holds a frame and its output");

/* Everything one worker's engine needs besides the engine itself: the
 * transmit buffers lent to it (mbufs taken from the pool ahead of time and
 * replaced after use, never on the packet path's critical section) and the
 * configuration it was built with. */
struct dp_engine {
	struct engine *e;
	void *mem;		/* engine_init()'s block */
	struct engine_shm es;
	struct rte_mempool *pool;
	uint64_t last_rt_ns;
	struct xdphold hold;	/* the XDP programs' hold maps (none: n = 0) */
	unsigned n_spare;
	struct rte_mbuf *spare[ENGINE_OUT_MIN];
	struct engine_txbuf txb[ENGINE_OUT_MIN];
};

static int64_t wengine_rt_offset(void)
{
	struct timespec r, m;
	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return ((int64_t)r.tv_sec - (int64_t)m.tv_sec) * 1000000000ll +
	       ((int64_t)r.tv_nsec - (int64_t)m.tv_nsec);
}

static void wengine_fill_shm(struct worker *w, struct shm_map *m, struct engine_shm *es)
{
	const struct shm_hdr *h = shm_hdr(m);
	uint8_t *region = (uint8_t *)shm_lcore_at(m, w->idx);

	es->map = m;
	es->reader = &w->rt;
	es->stats = w->lc;
	es->miss_ring = (struct spsc_hdr *)(region + h->miss_ring_off);
	es->event_ring = (struct spsc_hdr *)(region + h->event_ring_off);
}

static void wengine_describe(struct dp_engine *d, unsigned i)
{
	struct rte_mbuf *m = d->spare[i];
	uint16_t room = rte_pktmbuf_tailroom(m);

	d->txb[i].data = rte_pktmbuf_mtod(m, uint8_t *);
	d->txb[i].cap = room;
}

/* Keep ENGINE_OUT_MIN spare mbufs to lend; a failed refill shrinks what the
 * engine may emit this time (it counts and relies on retransmission). */
static void wengine_refill(struct dp_engine *d, struct shm_lcore *lc)
{
	unsigned have = d->n_spare, need = ENGINE_OUT_MIN - have;
	if (need == 0)
		return;
	if (rte_pktmbuf_alloc_bulk(d->pool, &d->spare[have], need) != 0) {
		if (lc)
			stats_add(lc, STAT_MBUF_ALLOC_FAIL, 1);
		return;
	}
	for (unsigned i = have; i < ENGINE_OUT_MIN; i++)
		wengine_describe(d, i);
	d->n_spare = ENGINE_OUT_MIN;
}

static inline void wengine_lend(struct dp_engine *d, struct engine_out *out)
{
	out->buf = d->txb;
	out->cap = (uint16_t)d->n_spare;
	out->n = 0;
}

static inline void wengine_offload(struct rte_mbuf *m, uint16_t fl, uint8_t l2, uint8_t l3,
				   uint8_t l4)
{
	m->ol_flags &= ~RTE_MBUF_F_TX_OFFLOAD_MASK;
	if (!fl)
		return;
	if (fl & ENGINE_TX_IPV4)
		m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
	if (fl & ENGINE_TX_IPV6)
		m->ol_flags |= RTE_MBUF_F_TX_IPV6;
	if (fl & ENGINE_TX_TCP_CKSUM)
		m->ol_flags |= RTE_MBUF_F_TX_TCP_CKSUM;
	m->l2_len = l2;
	m->l3_len = l3;
	m->l4_len = l4;
}

static inline void wengine_tx_add(struct wengine_tx *tx, uint16_t port, struct rte_mbuf *m)
{
	tx->port[tx->n] = port;
	tx->m[tx->n++] = m;
}

/* Hand back the frames the engine wrote into lent buffers; the spares used
 * are the caller's now, the rest stay. */
static void wengine_out(struct worker_ctx *x, struct dp_engine *d, const struct engine_out *out,
			struct wengine_tx *tx)
{
	unsigned n = out->n, k = 0;

	for (unsigned i = 0; i < n; i++) {
		struct rte_mbuf *m = d->spare[i];
		const struct engine_txbuf *b = &d->txb[i];
		m->data_len = b->len;
		m->pkt_len = b->len;
		wengine_offload(m, b->tx_flags, b->l2_len, b->l3_len, b->l4_len);
		if (b->port < x->n_ports && tx->n < WENGINE_TX_MAX)
			wengine_tx_add(tx, b->port, m);
		else
			rte_pktmbuf_free(m);
	}
	for (unsigned i = n; i < d->n_spare; i++) {
		d->spare[k] = d->spare[i];
		d->txb[k] = d->txb[i];
		k++;
	}
	d->n_spare = k;
}

static int wengine_conf(struct worker_ctx *x, struct engine_conf *ec, char *err, size_t len)
{
	int offload = 1;

	engine_conf_default(ec);
	ec->max_flows = x->conf->max_flows;
	ec->idle_timeout_ms = x->conf->idle_s * 1000u;
	ec->n_smtp_ports = (uint8_t)x->conf->n_smtp_ports;
	for (unsigned i = 0; i < x->conf->n_smtp_ports; i++)
		ec->smtp_ports[i] = x->conf->smtp_ports[i];
	ec->inbound_only = (uint8_t)x->conf->inbound_only;
#define WENGINE_SET(dst, src)                                                              \
	do {                                                                               \
		if (x->conf->eng.src)                                                      \
			ec->dst = x->conf->eng.src;                                        \
	} while (0)
	WENGINE_SET(handshake_timeout_ms, handshake_ms);
	WENGINE_SET(busy_blocks, busy_blocks);
	WENGINE_SET(seg_blocks, seg_blocks);
	WENGINE_SET(line_max, line_max);
	WENGINE_SET(ooo_max, ooo_max);
	WENGINE_SET(cmd_max, cmd_max);
	WENGINE_SET(rcpt_max, rcpt_max);
	WENGINE_SET(inject_max, inject_max);
	WENGINE_SET(pin_max, pin_max);
	WENGINE_SET(retx_initial_ms, retx_initial_ms);
	WENGINE_SET(retx_max, retx_max);
	WENGINE_SET(harvest_threshold, harvest_threshold);
	WENGINE_SET(harvest_window_ms, harvest_window_ms);
	WENGINE_SET(harvest_slots, harvest_slots);
#undef WENGINE_SET
	if (x->conf->eng.harvest_off)
		ec->harvest_threshold = 0;
	for (unsigned i = 0; i < x->n_ports; i++) {
		offload &= x->ports[i].csum_offload;
		/* frames the engine builds fit the smallest port's MTU */
		if (x->ports[i].mtu >= 576 && x->ports[i].mtu < ec->mtu)
			ec->mtu = x->ports[i].mtu;
	}
	ec->tx_csum_offload = (uint8_t)offload;
	return engine_conf_check(ec, err, len);
}

size_t wengine_mem_size(struct worker_ctx *x)
{
	struct engine_conf ec;
	char err[256];
	if (wengine_conf(x, &ec, err, sizeof(err)) != 0)
		return 0;
	return engine_mem_size(&ec);
}

/*
 * The engine in worker w's region of the state file: the previous process's
 * engine taken over as it is, or a fresh one; flows with offsets of a state
 * that cannot be taken over (another layout, another flow-to-worker mapping)
 * are reset on both sides by the new engine's first timer run.
 */
static int wengine_from_state(struct worker_ctx *x, struct worker *w, struct dp_engine *d,
			      const struct engine_conf *ec)
{
	struct dpstate *s = x->state;
	size_t len = 0, olen;
	void *mem = dpstate_region(s, w->idx, &len);
	char why[256];
	int rc, n;
	const void *old;

	if (!mem || len < engine_mem_size(ec))
		return -EINVAL;
	if (s->adopt) {
		rc = engine_adopt(mem, len, ec, &d->es, &d->e, why, sizeof(why));
		if (rc == 0) {
			struct engine_info ei;
			engine_info(d->e, &ei);
			fprintf(stderr, "rcptgate-dp: worker %u: took over %u flows from the state file\n",
				w->idx, ei.flows);
			return 0;
		}
		if (rc != -EPROTO && rc != -ENOENT)
			return rc;
		if (rc == -EPROTO) {
			/* the old engine's block, aside, for its flows' resets */
			void *copy = malloc(len);
			fprintf(stderr, "rcptgate-dp: worker %u: state refused: %s; its flows with "
					"offsets are reset\n",
				w->idx, why);
			if (!copy)
				return -ENOMEM;
			memcpy(copy, mem, len);
			rc = engine_init(mem, len, ec, &d->es, &d->e);
			if (rc == 0) {
				n = engine_import_resets(d->e, copy, len, why, sizeof(why));
				if (n < 0)
					fprintf(stderr, "rcptgate-dp: worker %u: previous flows not "
							"readable (%s): not reset\n",
						w->idx, why);
				else
					fprintf(stderr, "rcptgate-dp: worker %u: %d flows with offsets "
							"to reset\n", w->idx, n);
			}
			free(copy);
			return rc;
		}
	}
	rc = engine_init(mem, len, ec, &d->es, &d->e);
	if (rc)
		return rc;
	/* the previous file's regions this worker inherits (i % workers) */
	for (unsigned i = w->idx; (old = dpstate_old_region(s, i, &olen)) != NULL;
	     i += x->n_workers) {
		n = engine_import_resets(d->e, old, olen, why, sizeof(why));
		if (n < 0)
			fprintf(stderr, "rcptgate-dp: worker %u: previous region %u not readable "
					"(%s): its flows are not reset\n", w->idx, i, why);
		else if (n > 0)
			fprintf(stderr, "rcptgate-dp: worker %u: %d flows with offsets of previous "
					"region %u to reset (%s)\n", w->idx, n, i, s->why);
	}
	return 0;
}

/* Apply the hold set's changes to the XDP programs' maps. */
static void wengine_hold_sync(struct dp_engine *d, struct shm_lcore *lc)
{
	struct engine_hold c[16];
	unsigned n;
	while ((n = engine_hold_changes(d->e, c, 16)) > 0)
		for (unsigned i = 0; i < n; i++)
			if (xdphold_apply(&d->hold, &c[i]) != 0 && lc)
				stats_add(lc, STAT_XDP_HOLD_LOST, 1);
}

/* The XDP programs on the ports' interfaces: their hold maps get the set,
 * whole (a program loaded again starts with an empty map), then changes. */
static void wengine_hold_open(struct worker_ctx *x, struct worker *w, struct dp_engine *d)
{
	unsigned ifx[DPCONF_MAX_PORTS] = {0};
	struct engine_hold c[16];
	uint32_t cur = 0;
	char err[256];
	unsigned n;
	int found;

	for (unsigned i = 0; i < x->n_ports; i++) {
		struct rte_eth_dev_info di;
		if (rte_eth_dev_info_get(x->ports[i].port_id, &di) == 0)
			ifx[i] = di.if_index;
	}
	found = xdphold_open(&d->hold, ifx, x->n_ports, err, sizeof(err));
	if (w->idx == 0) {
		if (err[0])
			fprintf(stderr, "rcptgate-dp: %s\n", err);
		if (found > 0)
			fprintf(stderr, "rcptgate-dp: XDP hold set: %d map%s (frames of the flows in "
					"the state are held back while no data plane runs)\n",
				found, found > 1 ? "s" : "");
	}
	engine_hold_enable(d->e, found > 0);
	if (found <= 0) {
		while (engine_hold_changes(d->e, c, 16) > 0)
			; /* no map to apply them to */
		return;
	}
	while ((n = engine_hold_all(d->e, &cur, c, 16)) > 0)
		for (unsigned i = 0; i < n; i++)
			if (xdphold_apply(&d->hold, &c[i]) != 0)
				stats_add(w->lc, STAT_XDP_HOLD_LOST, 1);
	wengine_hold_sync(d, w->lc);
}

int wengine_init(struct worker_ctx *x, struct worker *w, struct shm_map *m)
{
	struct engine_conf ec;
	struct dp_engine *d;
	char err[256];
	size_t sz;
	void *mem = NULL;
	int rc;

	rc = wengine_conf(x, &ec, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "rcptgate-dp: engine configuration: %s\n", err);
		return rc;
	}
	sz = engine_mem_size(&ec);
	d = rte_zmalloc_socket("rg_dp_engine", sizeof(*d), RTE_CACHE_LINE_SIZE,
			       (int)rte_lcore_to_socket_id(w->lcore_id));
	if (d && !x->state)
		mem = rte_zmalloc_socket("rg_engine", sz, RTE_CACHE_LINE_SIZE,
					 (int)rte_lcore_to_socket_id(w->lcore_id));
	if (!d || (!x->state && !mem)) {
		rte_free(d);
		rte_free(mem);
		fprintf(stderr, "rcptgate-dp: engine: %zu bytes of hugepage memory not available\n",
			sz);
		return -ENOMEM;
	}
	wengine_fill_shm(w, m, &d->es);
	rc = x->state ? wengine_from_state(x, w, d, &ec) : engine_init(mem, sz, &ec, &d->es, &d->e);
	if (rc) {
		rte_free(d);
		rte_free(mem);
		return rc;
	}
	d->mem = mem; /* NULL: in the state file */
	if (w->idx == 0) {
		struct engine_info ei;
		engine_info(d->e, &ei);
		fprintf(stderr, "rcptgate-dp: engine: %u flows per worker, %zu bytes per idle flow, "
				"%.1f MiB per worker\n",
			ei.max_flows, ei.flow_bytes, (double)sz / (1024.0 * 1024.0));
	}
	engine_set_realtime_offset(d->e, wengine_rt_offset());
	wengine_hold_open(x, w, d);
	d->pool = x->pool;
	wengine_refill(d, NULL);
	w->eng = d;
	return 0;
}

void wengine_attach(struct worker_ctx *x, struct worker *w, struct shm_map *m)
{
	struct dp_engine *d = w->eng;
	(void)x;
	wengine_fill_shm(w, m, &d->es);
	engine_set_shm(d->e, &d->es);
}

/* What the port checked: the engine verifies only what the port did not.
 * Both IP and L4 must be known good to skip the engine's own check. */
static inline uint8_t wengine_rx_csum(const struct rte_mbuf *m)
{
	uint64_t ip = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
	uint64_t l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
	if (ip == RTE_MBUF_F_RX_IP_CKSUM_BAD || l4 == RTE_MBUF_F_RX_L4_CKSUM_BAD)
		return ENGINE_RXCSUM_BAD;
	if (ip == RTE_MBUF_F_RX_IP_CKSUM_GOOD && l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
		return ENGINE_RXCSUM_GOOD;
	return ENGINE_RXCSUM_UNKNOWN;
}

void wengine_rx(struct worker_ctx *x, struct worker *w, uint16_t pi, struct rte_mbuf *m,
		struct wengine_tx *tx)
{
	struct dp_engine *d = w->eng;
	const struct port *p = &x->ports[pi];
	struct engine_frame f;
	struct engine_out out;
	enum engine_verdict v;

	tx->n = 0;
	f.data = rte_pktmbuf_mtod(m, uint8_t *);
	f.len = rte_pktmbuf_data_len(m);
	f.headroom = rte_pktmbuf_headroom(m);
	f.tailroom = rte_pktmbuf_tailroom(m);
	f.rx_port = pi;
	f.peer_port = p->peer;
	f.outside = p->outside;
	f.rx_csum = wengine_rx_csum(m);
	f.tx_flags = 0;
	if (d->n_spare < ENGINE_OUT_MIN)
		wengine_refill(d, w->lc);
	wengine_lend(d, &out);
	v = engine_rx(d->e, &f, w->now_ns, &out);
	if (v == ENGINE_FORWARD) {
		m->data_off = (uint16_t)(f.data - (uint8_t *)m->buf_addr);
		m->data_len = f.len;
		m->pkt_len = f.len;
		wengine_offload(m, f.tx_flags, f.l2_len, f.l3_len, f.l4_len);
		wengine_tx_add(tx, p->peer, m);
	} else {
		rte_pktmbuf_free(m);
	}
	if (out.n)
		wengine_out(x, d, &out, tx);
	if (d->hold.n)
		wengine_hold_sync(d, w->lc);
}

void wengine_timers(struct worker_ctx *x, struct worker *w, uint64_t now_ns,
		    struct wengine_tx *tx)
{
	struct dp_engine *d = w->eng;
	struct engine_out out;

	tx->n = 0;
	if (now_ns - d->last_rt_ns >= 1000000000ull) {
		engine_set_realtime_offset(d->e, wengine_rt_offset());
		d->last_rt_ns = now_ns;
	}
	wengine_refill(d, w->lc);
	wengine_lend(d, &out);
	if (engine_timer(d->e, now_ns, &out) && out.n)
		wengine_out(x, d, &out, tx);
	if (d->hold.n)
		wengine_hold_sync(d, w->lc);
}

void wengine_fini(struct worker_ctx *x, struct worker *w)
{
	struct dp_engine *d = w->eng;
	(void)x;
	if (!d)
		return;
	if (d->n_spare)
		rte_pktmbuf_free_bulk(d->spare, d->n_spare);
	xdphold_close(&d->hold);
	rte_free(d->mem);
	rte_free(d);
	w->eng = NULL;
}

struct engine *wengine_engine(struct worker *w)
{
	return w->eng ? w->eng->e : NULL;
}

#else /* !RG_HAVE_ENGINE */

/* Built without engine/: rcptgate-dp can only bridge (--no-engine). */
int wengine_init(struct worker_ctx *x, struct worker *w, struct shm_map *m)
{
	(void)x;
	(void)w;
	(void)m;
	return -ENOTSUP;
}

void wengine_attach(struct worker_ctx *x, struct worker *w, struct shm_map *m)
{
	(void)x;
	(void)w;
	(void)m;
}

void wengine_rx(struct worker_ctx *x, struct worker *w, uint16_t pi, struct rte_mbuf *m,
		struct wengine_tx *tx)
{
	(void)w;
	tx->n = 1;
	tx->port[0] = x->ports[pi].peer;
	tx->m[0] = m;
}

void wengine_timers(struct worker_ctx *x, struct worker *w, uint64_t now_ns,
		    struct wengine_tx *tx)
{
	(void)x;
	(void)w;
	(void)now_ns;
	tx->n = 0;
}

void wengine_fini(struct worker_ctx *x, struct worker *w)
{
	(void)x;
	(void)w;
}

struct engine *wengine_engine(struct worker *w)
{
	(void)w;
	return NULL;
}

size_t wengine_mem_size(struct worker_ctx *x)
{
	(void)x;
	return 0;
}

#endif /* RG_HAVE_ENGINE */
