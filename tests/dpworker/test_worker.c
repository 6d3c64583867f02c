/*
 * test_worker.c — classification and dispatch of the worker loop (worker.c)
 * without the EAL: frames are built in plain memory behind hand-made mbuf
 * headers, dispatch rings are initialised in caller memory.
 *
 * - worker_flow_hash(): a segment and its reply hash the same (IPv4, IPv6,
 *   one and two VLAN tags, IP options), SMTP is TCP to or from a configured
 *   port and nothing else, fragments are flagged, truncated frames are never
 *   read past their end (the frame ends at a PROT_NONE page).
 * - worker_rx_burst(): non-SMTP frames are bridged by the receiving worker;
 *   with software dispatch SMTP segments go to the owner's ring, both
 *   directions of a flow to the same owner, flows spread over the workers.
 * - worker_plan(): RX queues to workers with RSS, --rx-map and its errors.
 * Single-threaded; criterion runs each test in its own process.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <rte_byteorder.h>
#include <rte_ring.h>

#include "worker.h"

#define T_FRAME_MAX 256u
#define T_MAX_VLANS 3

/* ---- frames ---- */

enum t_l4 { L4_TCP = 6, L4_UDP = 17, L4_ICMP = 1 };

struct t_spec {
	int v6;
	uint8_t src[16], dst[16];	/* client, server (IPv4 in the first 4 bytes) */
	uint16_t sport, dport;
	int vlans;			/* 0..3 tags */
	int proto;			/* enum t_l4, or 0 for TCP */
	int ip_opts;			/* IPv4: one 4-byte option word */
	int v4_frag;			/* IPv4 fragment field (host order) */
	int v6_frag;			/* IPv6: fragment header before TCP */
	int v6_hbh;			/* IPv6: hop-by-hop header before TCP */
	int bad_version;		/* IPv4 ethertype, version nibble 6 */
	int ihl4;			/* IPv4 IHL of 4 (too short) */
	int arp;
};

static void t_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Build the frame of spec s, client to server or (reply) server to client. */
static uint16_t t_frame(uint8_t *buf, const struct t_spec *s, int reply)
{
	static const uint8_t mac_c[6] = {2, 0, 0, 0, 0, 1}, mac_s[6] = {2, 0, 0, 0, 0, 2};
	const uint8_t *sa = reply ? s->dst : s->src, *da = reply ? s->src : s->dst;
	uint16_t sp = reply ? s->dport : s->sport, dp = reply ? s->sport : s->dport;
	uint8_t proto = (uint8_t)(s->proto ? s->proto : L4_TCP);
	uint8_t *p = buf, *l4;
	uint16_t l4len = proto == L4_TCP ? 20 : 8;

	memset(buf, 0, T_FRAME_MAX);
	memcpy(p, reply ? mac_c : mac_s, 6);
	memcpy(p + 6, reply ? mac_s : mac_c, 6);
	p += 12;
	for (int v = 0; v < s->vlans; v++) {
		t_put16(p, v == 0 && s->vlans > 1 ? RTE_ETHER_TYPE_QINQ : RTE_ETHER_TYPE_VLAN);
		t_put16(p + 2, (uint16_t)(100 + v));
		p += 4;
	}
	if (s->arp) {
		t_put16(p, RTE_ETHER_TYPE_ARP);
		p += 2;
		memset(p, 0, 28);
		return (uint16_t)(p + 28 - buf);
	}
	t_put16(p, s->v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
	p += 2;
	if (!s->v6) {
		unsigned ihl = s->ihl4 ? 4 : s->ip_opts ? 6 : 5;
		p[0] = (uint8_t)((s->bad_version ? 0x60 : 0x40) | ihl);
		t_put16(p + 2, (uint16_t)(ihl * 4 + l4len));
		t_put16(p + 6, (uint16_t)s->v4_frag);
		p[8] = 64;
		p[9] = proto;
		memcpy(p + 12, sa, 4);
		memcpy(p + 16, da, 4);
		if (ihl == 6)
			memset(p + 20, 1, 4); /* NOPs */
		p += ihl < 5 ? 20 : ihl * 4;
	} else {
		uint8_t next = s->v6_frag ? 44 : s->v6_hbh ? 0 : proto;
		unsigned ext = (s->v6_frag || s->v6_hbh) ? 8 : 0;
		p[0] = 0x60;
		t_put16(p + 4, (uint16_t)(ext + l4len));
		p[6] = next;
		p[7] = 64;
		memcpy(p + 8, sa, 16);
		memcpy(p + 24, da, 16);
		p += 40;
		if (ext) {
			p[0] = proto;
			p += 8;
		}
	}
	l4 = p;
	t_put16(l4, sp);
	t_put16(l4 + 2, dp);
	if (proto == L4_TCP) {
		l4[12] = 0x50;
		l4[13] = 0x10;
	}
	return (uint16_t)(l4 + l4len - buf);
}

static void t_mbuf(struct rte_mbuf *m, uint8_t *data, uint16_t len)
{
	memset(m, 0, sizeof(*m));
	m->buf_addr = data;
	m->buf_len = len;
	m->data_off = 0;
	m->data_len = len;
	m->pkt_len = len;
	m->nb_segs = 1;
}

static uint32_t t_hash(const struct t_spec *s, int reply, const struct dpconf *c, int *smtp,
		       int *frag)
{
	static uint8_t buf[T_FRAME_MAX];
	struct rte_mbuf m;
	uint16_t len = t_frame(buf, s, reply);

	t_mbuf(&m, buf, len);
	return worker_flow_hash(&m, c, smtp, frag);
}

static void t_conf(struct dpconf *c, const uint16_t *ports, unsigned n)
{
	dpconf_defaults(c);
	if (n) {
		memcpy(c->smtp_ports, ports, n * sizeof(*ports));
		c->n_smtp_ports = n;
	}
}

#define V4(a, b, c, d) {a, b, c, d}
#define V6(x, y) {0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, x, y}

/* ---- the symmetric flow hash ---- */

struct sym_case {
	char name[48];
	struct t_spec s;
};

static const struct sym_case sym_cases[] = {
	{"ipv4 to 25", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25}},
	{"ipv4 to 587", {.src = V4(198, 18, 1, 7), .dst = V4(198, 19, 0, 2), .sport = 1024, .dport = 587}},
	{"ipv4 25 to 25", {.src = V4(198, 18, 0, 9), .dst = V4(198, 18, 0, 2), .sport = 25, .dport = 25}},
	{"ipv4 same address", {.src = V4(198, 18, 0, 2), .dst = V4(198, 18, 0, 2), .sport = 5000, .dport = 25}},
	{"ipv4 with options", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40001, .dport = 25, .ip_opts = 1}},
	{"ipv4 one vlan", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25, .vlans = 1}},
	{"ipv4 qinq", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25, .vlans = 2}},
	{"ipv6 to 25", {.v6 = 1, .src = V6(0, 1), .dst = V6(0, 2), .sport = 40000, .dport = 25}},
	{"ipv6 to 587", {.v6 = 1, .src = V6(0x12, 0x34), .dst = V6(0xff, 2), .sport = 65535, .dport = 587}},
	{"ipv6 one vlan", {.v6 = 1, .src = V6(0, 1), .dst = V6(0, 2), .sport = 40000, .dport = 25, .vlans = 1}},
	{"ipv6 qinq", {.v6 = 1, .src = V6(0, 1), .dst = V6(0, 2), .sport = 40000, .dport = 25, .vlans = 2}},
};

ParameterizedTestParameters(worker, hash_symmetric)
{
	return cr_make_param_array(struct sym_case, sym_cases,
				   sizeof(sym_cases) / sizeof(sym_cases[0]));
}

ParameterizedTest(const struct sym_case *k, worker, hash_symmetric)
{
	static const uint16_t ports[] = {25, 587};
	struct dpconf c;
	struct t_spec plain = k->s;
	int smtp, frag;
	uint32_t h, r, u;

	t_conf(&c, ports, 2);
	h = t_hash(&k->s, 0, &c, &smtp, &frag);
	cr_expect(smtp, "%s: segment not classified SMTP", k->name);
	cr_expect(!frag, "%s: segment flagged as a fragment", k->name);
	r = t_hash(&k->s, 1, &c, &smtp, &frag);
	cr_expect(smtp, "%s: reply not classified SMTP", k->name);
	cr_expect_eq(h, r, "%s: segment hash %08x, reply %08x", k->name, h, r);
	/* tags and options do not change which worker owns the flow */
	plain.vlans = 0;
	plain.ip_opts = 0;
	u = t_hash(&plain, 0, &c, &smtp, &frag);
	cr_expect_eq(h, u, "%s: hash %08x, untagged %08x", k->name, h, u);
}

struct distinct_case {
	char name[48];
	int vary_addr, vary_port, v6;
};

static const struct distinct_case distinct_cases[] = {
	{"ipv4 clients on one port", 1, 0, 0},
	{"ipv4 ports of one client", 0, 1, 0},
	{"ipv4 clients and ports", 1, 1, 0},
	{"ipv6 clients on one port", 1, 0, 1},
	{"ipv6 ports of one client", 0, 1, 1},
};

ParameterizedTestParameters(worker, hash_distinguishes_flows)
{
	return cr_make_param_array(struct distinct_case, distinct_cases,
				   sizeof(distinct_cases) / sizeof(distinct_cases[0]));
}

ParameterizedTest(const struct distinct_case *k, worker, hash_distinguishes_flows)
{
	/* 4096 flows to one server that differ only in what the case varies */
	enum { N = 4096 };
	static uint32_t hs[N];
	struct dpconf c;
	unsigned same = 0;
	int smtp, frag;

	t_conf(&c, NULL, 0);
	for (unsigned i = 0; i < N; i++) {
		struct t_spec s = {.v6 = k->v6, .dst = V6(0, 25), .sport = 40000, .dport = 25};
		uint8_t a4[4] = V4(198, 18, 0, 1), a6[16] = V6(0, 1);
		if (k->vary_addr) {
			a4[2] = a6[12] = (uint8_t)(i >> 8);
			a4[3] = a6[13] = (uint8_t)i;
		}
		if (k->vary_port)
			s.sport = (uint16_t)(1024 + i * 7);
		if (k->v6) {
			memcpy(s.src, a6, 16);
		} else {
			uint8_t d4[4] = V4(198, 19, 0, 25);
			memcpy(s.src, a4, 4);
			memcpy(s.dst, d4, 4);
		}
		hs[i] = t_hash(&s, 0, &c, &smtp, &frag);
		cr_assert(smtp);
	}
	for (unsigned i = 0; i < N; i++)
		for (unsigned j = i + 1; j < N; j++)
			same += hs[i] == hs[j];
	/* 32-bit values, 8.4M pairs: a handful of equal ones at most */
	cr_expect_leq(same, 4, "%s: %u equal hashes among %u flows", k->name, same, N);
}

/* ---- classification: what is SMTP and what is not ---- */

struct cls_case {
	char name[48];
	struct t_spec s;
	uint16_t smtp_ports[4];	/* 0-terminated; empty: the default (25) */
	int smtp, frag;
};

static const struct cls_case cls_cases[] = {
	{"to 25", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25}, {0}, 1, 0},
	{"from 25", {.src = V4(198, 18, 0, 2), .dst = V4(198, 18, 0, 1), .sport = 25, .dport = 40000}, {0}, 1, 0},
	{"to 80", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 80}, {0}, 0, 0},
	{"to 26", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 26}, {0}, 0, 0},
	{"from 24", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 24, .dport = 40000}, {0}, 0, 0},
	{"25 in the wrong byte order", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 0x1900}, {0}, 0, 0},
	{"to 587 by default", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 587}, {0}, 0, 0},
	{"to 587 listed", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 587}, {25, 587, 0}, 1, 0},
	{"from 2525 listed", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 2525, .dport = 40000}, {587, 2525, 0}, 1, 0},
	{"to 25 not listed", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25}, {587, 0}, 0, 0},
	{"ipv6 to 25", {.v6 = 1, .src = V6(0, 1), .dst = V6(0, 2), .sport = 40000, .dport = 25}, {0}, 1, 0},
	{"ipv6 to 443", {.v6 = 1, .src = V6(0, 1), .dst = V6(0, 2), .sport = 40000, .dport = 443}, {0}, 0, 0},
	{"udp to 25", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25, .proto = L4_UDP}, {0}, 0, 0},
	{"ipv6 udp to 25", {.v6 = 1, .src = V6(0, 1), .dst = V6(0, 2), .sport = 40000, .dport = 25, .proto = L4_UDP}, {0}, 0, 0},
	{"icmp", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .proto = L4_ICMP}, {0}, 0, 0},
	{"arp", {.arp = 1}, {0}, 0, 0},
	{"vlan arp", {.arp = 1, .vlans = 1}, {0}, 0, 0},
	{"ipv4 more fragments", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25, .v4_frag = 0x2000}, {0}, 0, 1},
	{"ipv4 fragment offset", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25, .v4_frag = 0x0010}, {0}, 0, 1},
	{"ipv4 don't fragment", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25, .v4_frag = 0x4000}, {0}, 1, 0},
	{"ipv6 fragment header", {.v6 = 1, .src = V6(0, 1), .dst = V6(0, 2), .sport = 40000, .dport = 25, .v6_frag = 1}, {0}, 0, 1},
	{"ipv6 hop-by-hop before tcp", {.v6 = 1, .src = V6(0, 1), .dst = V6(0, 2), .sport = 40000, .dport = 25, .v6_hbh = 1}, {0}, 0, 0},
	{"three vlan tags", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25, .vlans = 3}, {0}, 0, 0},
	{"ip version 6 in an ipv4 ethertype", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25, .bad_version = 1}, {0}, 0, 0},
	{"ipv4 ihl 4", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25, .ihl4 = 1}, {0}, 0, 0},
};

ParameterizedTestParameters(worker, classify)
{
	return cr_make_param_array(struct cls_case, cls_cases,
				   sizeof(cls_cases) / sizeof(cls_cases[0]));
}

ParameterizedTest(const struct cls_case *k, worker, classify)
{
	struct dpconf c;
	unsigned n = 0;
	int smtp = -1, frag = -1;

	while (n < 4 && k->smtp_ports[n])
		n++;
	t_conf(&c, k->smtp_ports, n);
	t_hash(&k->s, 0, &c, &smtp, &frag);
	cr_expect_eq(smtp, k->smtp, "%s: smtp %d, expected %d", k->name, smtp, k->smtp);
	cr_expect_eq(frag, k->frag, "%s: frag %d, expected %d", k->name, frag, k->frag);
}

/* ---- truncated frames: never read past the end ---- */

struct trunc_case {
	char name[32];
	struct t_spec s;
};

static const struct trunc_case trunc_cases[] = {
	{"ipv4", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25}},
	{"ipv4 options", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25, .ip_opts = 1}},
	{"ipv4 qinq", {.src = V4(198, 18, 0, 1), .dst = V4(198, 18, 0, 2), .sport = 40000, .dport = 25, .vlans = 2}},
	{"ipv6", {.v6 = 1, .src = V6(0, 1), .dst = V6(0, 2), .sport = 40000, .dport = 25}},
	{"ipv6 vlan", {.v6 = 1, .src = V6(0, 1), .dst = V6(0, 2), .sport = 40000, .dport = 25, .vlans = 1}},
};

ParameterizedTestParameters(worker, truncated)
{
	return cr_make_param_array(struct trunc_case, trunc_cases,
				   sizeof(trunc_cases) / sizeof(trunc_cases[0]));
}

ParameterizedTest(const struct trunc_case *k, worker, truncated)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *area, frame[T_FRAME_MAX];
	struct dpconf c;
	struct rte_mbuf m;
	uint16_t full = t_frame(frame, &k->s, 0);
	int smtp, frag;

	area = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	cr_assert_neq(area, MAP_FAILED);
	cr_assert_eq(mprotect(area + pg, (size_t)pg, PROT_NONE), 0);
	t_conf(&c, NULL, 0);
	for (uint16_t len = 0; len <= full; len++) {
		/* the frame ends at the last readable byte, or one before it:
		 * headers are 2-byte aligned as in an mbuf */
		uint8_t *at = (uint8_t *)((uintptr_t)(area + pg - len) & ~(uintptr_t)1);
		memcpy(at, frame, len);
		t_mbuf(&m, at, len);
		worker_flow_hash(&m, &c, &smtp, &frag);
		cr_expect_eq(smtp, len == full, "%s: %u of %u bytes: smtp %d", k->name, len, full,
			     smtp);
	}
	munmap(area, (size_t)pg * 2);
}

/* ---- worker_rx_burst: bridging and software dispatch ---- */

#define T_RING_SLOTS 8192u

struct t_dp {
	struct dpconf conf;
	struct port ports[2];
	struct worker *w;
	struct worker_ctx x;
	void *rings[WORKER_MAX];
};

static void t_dp_init(struct t_dp *d, unsigned nw, int sw_dispatch)
{
	memset(d, 0, sizeof(*d));
	t_conf(&d->conf, NULL, 0);
	d->ports[0] = (struct port){.port_id = 0, .peer = 1, .outside = 1, .nb_rxq = 1,
				    .nb_txq = 1};
	d->ports[1] = (struct port){.port_id = 1, .peer = 0, .nb_rxq = 1, .nb_txq = 1};
	d->w = aligned_alloc(RTE_CACHE_LINE_SIZE, sizeof(struct worker) * nw);
	cr_assert_not_null(d->w);
	memset(d->w, 0, sizeof(struct worker) * nw);
	for (unsigned i = 0; i < nw; i++) {
		char name[32];
		ssize_t sz = rte_ring_get_memsize(T_RING_SLOTS);
		d->w[i].idx = i;
		d->w[i].lcore_id = i + 1;
		if (!sw_dispatch)
			continue;
		cr_assert_gt(sz, 0);
		d->rings[i] = aligned_alloc(RTE_CACHE_LINE_SIZE, (size_t)sz);
		cr_assert_not_null(d->rings[i]);
		snprintf(name, sizeof(name), "t_disp_%u", i);
		cr_assert_eq(rte_ring_init(d->rings[i], name, T_RING_SLOTS, RING_F_SC_DEQ), 0);
		d->w[i].ring = d->rings[i];
	}
	d->x = (struct worker_ctx){.conf = &d->conf, .ports = d->ports, .n_ports = 2,
				   .workers = d->w, .n_workers = nw, .sw_dispatch = sw_dispatch};
}

static void t_dp_fini(struct t_dp *d)
{
	for (unsigned i = 0; i < WORKER_MAX; i++)
		free(d->rings[i]);
	free(d->w);
}

/* Frames worker w buffered for transmission on port pi, taken out. */
static unsigned t_take_tx(struct worker *w, uint16_t pi, struct rte_mbuf **out)
{
	unsigned n = w->tx[pi].n;
	memcpy(out, w->tx[pi].pkts, n * sizeof(*out));
	w->tx[pi].n = 0;
	return n;
}

struct t_pkt {
	struct rte_mbuf m;
	uint8_t data[T_FRAME_MAX];
	int flow;	/* index of the flow */
	int where;	/* worker it ended up with, -1: nowhere yet */
};

static void t_pkt_make(struct t_pkt *p, const struct t_spec *s, int reply, int flow)
{
	uint16_t len = t_frame(p->data, s, reply);
	t_mbuf(&p->m, p->data, len);
	p->flow = flow;
	p->where = -1;
}

/* Run pkts through worker rx on port pi in bursts of 32; record where each went:
 * the receiver (local SMTP or bridged, in its tx buffer for the peer) or the
 * owner's ring. */
static void t_dp_rx(struct t_dp *d, unsigned rx, uint16_t pi, struct t_pkt *pkts, unsigned n)
{
	struct worker *w = &d->w[rx];
	uint16_t peer = d->ports[pi].peer;

	for (unsigned i = 0; i < n; i += 32) {
		struct rte_mbuf *burst[32], *out[WORKER_TXBUF];
		unsigned b = n - i < 32 ? n - i : 32, got;
		for (unsigned j = 0; j < b; j++)
			burst[j] = &pkts[i + j].m;
		worker_rx_burst(&d->x, w, pi, burst, (uint16_t)b);
		got = t_take_tx(w, peer, out);
		for (unsigned j = 0; j < got; j++)
			((struct t_pkt *)(void *)out[j])->where = (int)rx;
		cr_assert_eq(t_take_tx(w, pi, out), 0, "frames sent back out of the ingress port");
		for (unsigned o = 0; o < d->x.n_workers; o++) {
			void *m;
			if (!d->w[o].ring)
				continue;
			while (rte_ring_dequeue(d->w[o].ring, &m) == 0) {
				struct t_pkt *p = m;
				cr_expect_eq(p->m.hash.usr, pi, "ingress port not tagged");
				cr_expect_neq(o, rx, "receiver dispatched to itself");
				p->where = (int)o;
			}
		}
	}
}

static void t_client(struct t_spec *s, unsigned i)
{
	memset(s, 0, sizeof(*s));
	s->v6 = i & 1;
	if (s->v6) {
		uint8_t a[16] = V6(0, 0), b[16] = V6(0, 25);
		a[12] = (uint8_t)(i >> 16);
		a[13] = (uint8_t)(i >> 8);
		a[15] = (uint8_t)i;
		memcpy(s->src, a, 16);
		memcpy(s->dst, b, 16);
	} else {
		uint8_t a[4] = V4(198, 18, (uint8_t)(i >> 8), (uint8_t)i), b[4] = V4(198, 19, 0, 25);
		memcpy(s->src, a, 4);
		memcpy(s->dst, b, 4);
	}
	s->sport = (uint16_t)(32768 + (i * 2654435761u >> 17) % 28000);
	s->dport = 25;
}

struct spread_case {
	char name[16];
	unsigned workers;
};

static const struct spread_case spread_cases[] = {
	{"2 workers", 2}, {"3 workers", 3}, {"4 workers", 4}, {"8 workers", 8},
};

ParameterizedTestParameters(worker, dispatch_spread)
{
	return cr_make_param_array(struct spread_case, spread_cases,
				   sizeof(spread_cases) / sizeof(spread_cases[0]));
}

ParameterizedTest(const struct spread_case *k, worker, dispatch_spread)
{
	enum { N = 4096 };
	struct t_dp d;
	struct t_pkt *pkts = calloc(N, sizeof(*pkts));
	unsigned count[WORKER_MAX] = {0}, fair = N / k->workers;

	cr_assert_not_null(pkts);
	t_dp_init(&d, k->workers, 1);
	for (unsigned i = 0; i < N; i++) {
		struct t_spec s;
		t_client(&s, i);
		t_pkt_make(&pkts[i], &s, 0, (int)i);
	}
	t_dp_rx(&d, 0, 0, pkts, N);
	for (unsigned i = 0; i < N; i++) {
		cr_assert_geq(pkts[i].where, 0, "%s: frame %u lost", k->name, i);
		count[pkts[i].where]++;
	}
	for (unsigned o = 0; o < k->workers; o++)
		cr_expect(count[o] >= fair * 8 / 10 && count[o] <= fair * 12 / 10,
			  "%s: worker %u owns %u flows, fair share %u", k->name, o, count[o], fair);
	cr_expect_eq(d.w[0].n_rx, N);
	cr_expect_eq(d.w[0].n_bridged, 0);
	cr_expect_eq(d.w[0].n_dispatch_drop, 0);
	t_dp_fini(&d);
	free(pkts);
}

Test(worker, dispatch_both_directions_meet)
{
	/* the client's segments arrive on port 0 at one worker, the server's on
	 * port 1 at another; the flow's owner must be the same */
	enum { N = 600, NW = 3 };
	struct t_dp d;
	struct t_pkt *fwd = calloc(N, sizeof(*fwd)), *rev = calloc(N, sizeof(*rev));
	unsigned local = 0;

	cr_assert(fwd && rev);
	t_dp_init(&d, NW, 1);
	for (unsigned i = 0; i < N; i++) {
		struct t_spec s;
		t_client(&s, i);
		t_pkt_make(&fwd[i], &s, 0, (int)i);
		t_pkt_make(&rev[i], &s, 1, (int)i);
	}
	for (unsigned rx = 0; rx < NW; rx++) {
		/* worker rx receives the client side of flows i%NW==rx, the server
		 * side of flows i%NW==(rx+1)%NW */
		for (unsigned i = rx; i < N; i += NW)
			t_dp_rx(&d, rx, 0, &fwd[i], 1);
		for (unsigned i = (rx + 1) % NW; i < N; i += NW)
			t_dp_rx(&d, rx, 1, &rev[i], 1);
	}
	for (unsigned i = 0; i < N; i++) {
		cr_assert_geq(fwd[i].where, 0);
		cr_expect_eq(fwd[i].where, rev[i].where, "flow %u: client side at %d, server side at %d",
			     i, fwd[i].where, rev[i].where);
		local += fwd[i].where == (int)(i % NW);
	}
	/* about a third stay with the worker that received them */
	cr_expect(local > N / NW / 2 && local < N / NW * 2, "%u of %u kept locally", local, N);
	t_dp_fini(&d);
	free(fwd);
	free(rev);
}

Test(worker, dispatch_keeps_non_smtp_local)
{
	enum { NW = 4, N = 64 };
	struct t_dp d;
	struct t_pkt *pkts = calloc(N, sizeof(*pkts));
	unsigned frags = 0;

	cr_assert_not_null(pkts);
	t_dp_init(&d, NW, 1);
	for (unsigned i = 0; i < N; i++) {
		struct t_spec s;
		t_client(&s, i);
		s.dport = (uint16_t)(80 + (i % 3)); /* 80, 81, 82: not SMTP */
		if (i % 4 == 3) {
			s.dport = 25;
			s.v6 = 0;
			s.v4_frag = 0x2000; /* SMTP port, but a fragment: bridged */
			frags++;
		}
		t_pkt_make(&pkts[i], &s, 0, (int)i);
	}
	t_dp_rx(&d, 2, 1, pkts, N);
	for (unsigned i = 0; i < N; i++)
		cr_expect_eq(pkts[i].where, 2, "frame %u went to %d", i, pkts[i].where);
	cr_expect_eq(d.w[2].n_bridged, N);
	cr_expect_eq(d.w[2].n_frag, frags);
	cr_expect_eq(d.w[2].n_smtp, 0);
	t_dp_fini(&d);
	free(pkts);
}

Test(worker, rx_burst_single_worker_classifies)
{
	/* one worker, no dispatch: SMTP to the (absent) engine path, the rest bridged */
	enum { N = 48 };
	struct t_dp d;
	struct t_pkt *pkts = calloc(N, sizeof(*pkts));
	unsigned smtp = 0;

	cr_assert_not_null(pkts);
	t_dp_init(&d, 1, 0);
	for (unsigned i = 0; i < N; i++) {
		struct t_spec s;
		t_client(&s, i);
		if (i % 3 == 0)
			s.dport = 443;
		else
			smtp++;
		t_pkt_make(&pkts[i], &s, (int)(i & 2), (int)i);
	}
	t_dp_rx(&d, 0, 1, pkts, N);
	for (unsigned i = 0; i < N; i++)
		cr_expect_eq(pkts[i].where, 0, "frame %u went to %d", i, pkts[i].where);
	cr_expect_eq(d.w[0].n_rx, N);
	cr_expect_eq(d.w[0].n_smtp, smtp);
	cr_expect_eq(d.w[0].n_bridged, N - smtp);
	t_dp_fini(&d);
	free(pkts);
}

/* ---- worker_plan: RX queues to workers ---- */

struct plan_case {
	char name[64];
	unsigned n_workers;
	unsigned n_ports;
	uint16_t nb_rxq[4];	/* per port; rss when > 1 */
	char rxmap[128];	/* "p:q@l ..." */
	int rc;
	char err[96];
	char want[128];		/* per worker "p.q p.q|p.q" (port index.queue) */
};

static const struct plan_case plan_cases[] = {
	{"rss 2 workers", 2, 2, {2, 2}, "", 0, "", "0.0 1.0|0.1 1.1"},
	{"rss 3 workers 4 ports", 3, 4, {3, 3, 3, 3}, "", 0, "",
	 "0.0 1.0 2.0 3.0|0.1 1.1 2.1 3.1|0.2 1.2 2.2 3.2"},
	{"one worker single queues", 1, 2, {1, 1}, "", 0, "", "0.0 1.0"},
	{"rss fewer queues than workers", 3, 2, {2, 2}, "", 0, "", "0.0 1.0|0.1 1.1|"},
	{"rx-map rss swapped", 2, 2, {2, 2}, "0:0@2 1:0@2 0:1@1 1:1@1", 0, "", "0.1 1.1|0.0 1.0"},
	{"rx-map rss all on one", 2, 2, {2, 2}, "0:0@1 1:0@1 0:1@1 1:1@1", 0, "",
	 "0.0 0.1 1.0 1.1|"},
	{"rx-map queue unmapped", 2, 2, {2, 2}, "0:0@1 1:0@1 0:1@2", -EINVAL,
	 "rx-map: no lcore for port 1 queue 1", ""},
	{"rx-map not a worker lcore", 2, 2, {2, 2}, "0:0@1 1:0@1 0:1@7 1:1@7", -EINVAL,
	 "rx-map 0:1@7: lcore 7 is not a worker lcore", ""},
	{"rx-map rss queues split", 2, 2, {2, 2}, "0:0@1 1:0@2 0:1@2 1:1@1", -EINVAL,
	 "with RSS, queue 0 of ports 0 and 1 must share an lcore", ""},
	{"rx-map single worker", 1, 2, {1, 1}, "0:0@1 1:0@1", 0, "", "0.0 1.0"},
};

ParameterizedTestParameters(worker, plan)
{
	return cr_make_param_array(struct plan_case, plan_cases,
				   sizeof(plan_cases) / sizeof(plan_cases[0]));
}

ParameterizedTest(const struct plan_case *k, worker, plan)
{
	struct dpconf c;
	struct port ports[4];
	struct worker *w = aligned_alloc(RTE_CACHE_LINE_SIZE, sizeof(*w) * k->n_workers);
	struct worker_ctx x;
	char err[256] = "", got[256], buf[128], *save = NULL, *tok;
	size_t n = 0;
	int rc;

	cr_assert_not_null(w);
	memset(w, 0, sizeof(*w) * k->n_workers);
	dpconf_defaults(&c);
	snprintf(buf, sizeof(buf), "%s", k->rxmap);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		unsigned p, q, l;
		cr_assert_eq(sscanf(tok, "%u:%u@%u", &p, &q, &l), 3);
		c.rxmap[c.n_rxmap++] = (struct dpconf_rxmap){(uint16_t)p, (uint16_t)q, l};
	}
	memset(ports, 0, sizeof(ports));
	for (unsigned i = 0; i < k->n_ports; i++) {
		ports[i].port_id = (uint16_t)i;
		ports[i].peer = (uint16_t)(i ^ 1);
		ports[i].nb_rxq = k->nb_rxq[i];
		ports[i].nb_txq = 1;
		ports[i].rss = k->nb_rxq[i] > 1;
	}
	for (unsigned i = 0; i < k->n_workers; i++) {
		w[i].idx = i;
		w[i].lcore_id = i + 1;
	}
	x = (struct worker_ctx){.conf = &c, .ports = ports, .n_ports = k->n_ports, .workers = w,
				.n_workers = k->n_workers};
	rc = worker_plan(&x, err, sizeof(err));
	cr_assert_eq(rc, k->rc, "%s: returned %d (%s), expected %d", k->name, rc, err, k->rc);
	if (rc < 0) {
		cr_expect(strstr(err, k->err), "%s: error '%s' lacks '%s'", k->name, err, k->err);
		free(w);
		return;
	}
	cr_expect(!x.sw_dispatch || k->n_workers == 1, "%s: software dispatch chosen", k->name);
	got[0] = 0;
	for (unsigned i = 0; i < k->n_workers; i++) {
		n += (size_t)snprintf(got + n, sizeof(got) - n, "%s", i ? "|" : "");
		for (unsigned j = 0; j < w[i].n_rxq; j++)
			n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%u.%u", j ? " " : "",
					      w[i].rxq[j].port, w[i].rxq[j].queue);
	}
	cr_expect_str_eq(got, k->want, "%s: plan '%s', expected '%s'", k->name, got, k->want);
	free(w);
}
