/*
 * engine.c — the engine's packet path (see engine.h): frames in, flow
 * tracking, and the TCP stream editor that removes refused commands, injects
 * answers in RFC 2920 order and keeps both TCP conversations consistent
 * (DESIGN.md, "The data plane's TCP stream editor"): sequence, ACK and SACK
 * translation, retransmissions replayed through the edit lists, held partial
 * lines, the out-of-order queue, frames of its own, checksums, timers.  The
 * SMTP side of each flow (what to remove, what to answer) is session.c.
 *
 * Written by hand: no library edits live TCP streams in both directions with
 * more than one sequence-adjustment point (netfilter's nf_ct_seqadj keeps one).
 *
 * Runs on one worker lcore per struct engine; init/destroy in the main thread.
 *
 * The stream model, per flow:
 *   client -> server: bytes below c_fwd are decided (forwarded, or removed by
 *     a c2s edit point); [c_fwd, c_rcv) is a partial command line held in the
 *     busy block, not forwarded and so not acknowledged; c_rcv is the next
 *     byte expected.  Bytes below c_fwd that arrive again are replayed through
 *     the edit list, never re-parsed: the first copy decided.
 *   server -> client: bytes below s_fwd are parsed; replies the engine answers
 *     are inserted by s2c edit points at reply boundaries, in the order of the
 *     reply queue.  An insertion rides in the server segment that carries the
 *     preceding reply's end, or, when no server reply is due before it, goes
 *     out on its own and is retransmitted by engine_timer() until acknowledged.
 *     A server segment that starts where an insertion stands does not carry it
 *     again (servers that write one segment per reply): the insertion goes out
 *     once, and again only with a resend of the byte before it.
 *   end: at an RST, or once both FINs are acknowledged, the flow is freed; with
 *     offsets in force it lingers briefly on the ended list (late
 *     retransmissions are still translated) and is the first reclaimed when a
 *     new SYN finds the table full.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "engine.h"
#include "engine_int.h"
#include "flow.h"
#include "harvest.h"
#include "pkt.h"
#include "session.h"
#include "smtp.h"
#include "tcpedit.h"

/* ---- configuration and set-up ---- */

void engine_conf_default(struct engine_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->max_flows = ENGINE_DEF_MAX_FLOWS;
	c->idle_timeout_ms = ENGINE_DEF_IDLE_TIMEOUT_MS;
	c->handshake_timeout_ms = ENGINE_DEF_HANDSHAKE_TIMEOUT_MS;
	c->busy_blocks = ENGINE_DEF_BUSY_BLOCKS;
	c->seg_blocks = ENGINE_DEF_SEG_BLOCKS;
	c->line_max = ENGINE_DEF_LINE_MAX;
	c->ooo_max = ENGINE_DEF_OOO_MAX;
	c->cmd_max = ENGINE_DEF_CMD_MAX;
	c->rcpt_max = ENGINE_DEF_RCPT_MAX;
	c->inject_max = ENGINE_DEF_INJECT_MAX;
	c->pin_max = ENGINE_DEF_PIN_MAX;
	c->mtu = ENGINE_DEF_MTU;
	c->retx_initial_ms = ENGINE_DEF_RETX_INITIAL_MS;
	c->retx_max = ENGINE_DEF_RETX_MAX;
	c->harvest_threshold = ENGINE_DEF_HARVEST_THRESHOLD;
	c->harvest_window_ms = ENGINE_DEF_HARVEST_WINDOW_MS;
	c->harvest_slots = ENGINE_DEF_HARVEST_SLOTS;
	c->smtp_ports[0] = 25;
	c->n_smtp_ports = 1;
	c->inbound_only = 1;
}

int engine_conf_check(const struct engine_conf *c, char *err, size_t errlen)
{
#define BAD(...) do { snprintf(err, errlen, __VA_ARGS__); return -EINVAL; } while (0)
	if (c->max_flows < 1 || c->max_flows > (1u << 26))
		BAD("max_flows %u: must be 1..%u", c->max_flows, 1u << 26);
	if (c->line_max < 64 || c->line_max > ENGINE_LINE_MAX_MAX)
		BAD("line_max %u: must be 64..%u", c->line_max, ENGINE_LINE_MAX_MAX);
	if (c->cmd_max < FLOW_INLINE_Q || c->cmd_max > 4096)
		BAD("cmd_max %u: must be %u..4096", c->cmd_max, FLOW_INLINE_Q);
	if (c->inject_max < 2 * ENGINE_REPLY_MAX || c->inject_max > (1u << 20))
		BAD("inject_max %u: must be %u..%u", c->inject_max, 2 * ENGINE_REPLY_MAX,
		    1u << 20);
	if (c->pin_max < 4096 || c->pin_max > (1u << 20) || (c->pin_max & (c->pin_max - 1)) ||
	    c->pin_max < 2u * c->line_max)
		BAD("pin_max %u: a power of two, 4096..%u and at least twice line_max", c->pin_max,
		    1u << 20);
	if (c->mtu < 576 || c->mtu > 9216)
		BAD("mtu %u: must be 576..9216", c->mtu);
	if (c->busy_blocks > (1u << 24) || c->seg_blocks > (1u << 24))
		BAD("busy_blocks/seg_blocks: at most %u", 1u << 24);
	if (c->ooo_max > 255)
		BAD("ooo_max %u: at most 255", c->ooo_max);
	if (c->n_smtp_ports < 1 || c->n_smtp_ports > ENGINE_MAX_SMTP_PORTS)
		BAD("smtp ports: 1..%u needed", ENGINE_MAX_SMTP_PORTS);
	if (c->idle_timeout_ms < 1000 || c->handshake_timeout_ms < 1000)
		BAD("timeouts: at least 1000 ms");
	if (c->retx_initial_ms < 10 || c->retx_max > 16)
		BAD("retx_initial_ms >= 10 and retx_max <= 16 needed");
	if (c->harvest_slots > (1u << 24) || c->harvest_window_ms < 1000)
		BAD("harvest_slots <= %u and harvest_window_ms >= 1000 needed", 1u << 24);
	return 0;
#undef BAD
}

static uint32_t pow2_ceil(uint32_t v)
{
	uint32_t p = 1;
	while (p < v && p < (1u << 31))
		p <<= 1;
	return p;
}

#define ALIGN64(x) (((x) + 63u) & ~(size_t)63u)

struct mem_plan {
	size_t eng, flows, hv, src, obuf, pieces, total;
	unsigned max_pieces;
	uint32_t hslots;
};

static void plan(const struct engine_conf *c, struct mem_plan *m)
{
	m->eng = ALIGN64(sizeof(struct engine));
	m->flows = ALIGN64(flow_mem_size(c->max_flows, c->busy_blocks, c->seg_blocks,
					 c->pin_max, c->cmd_max, c->inject_max));
	m->hslots = c->harvest_slots ? pow2_ceil(c->harvest_slots) : 0;
	m->hv = ALIGN64(harvest_mem_size(m->hslots));
	m->src = ALIGN64(ENGINE_SCRATCH + c->pin_max);
	m->obuf = ALIGN64(ENGINE_SCRATCH + c->inject_max + c->pin_max);
	m->max_pieces = 2u * (c->cmd_max + 8u) + 4u;
	m->pieces = ALIGN64(m->max_pieces * sizeof(struct tcpedit_piece));
	m->total = m->eng + m->flows + m->hv + m->src + m->obuf + m->pieces;
}

size_t engine_mem_size(const struct engine_conf *c)
{
	struct mem_plan m;
	char err[128];
	if (engine_conf_check(c, err, sizeof(err)) != 0)
		return 0;
	plan(c, &m);
	return m.total;
}

void engine_set_shm(struct engine *e, const struct engine_shm *s)
{
	e->s = *s;
	if (!e->s.stats)
		e->s.stats = &e->priv_stats;
}

int engine_init(void *mem, size_t len, const struct engine_conf *c,
		const struct engine_shm *s, struct engine **out)
{
	struct mem_plan m;
	struct engine *e = mem;
	uint8_t *p = mem;
	uint32_t seed[2];
	char err[128];

	if (engine_conf_check(c, err, sizeof(err)) != 0)
		return -EINVAL;
	plan(c, &m);
	if (!mem || len < m.total || ((uintptr_t)mem & 63u))
		return -EINVAL;
	memset(e, 0, sizeof(*e));
	e->c = *c;
	e->mem_size = m.total;
	engine_set_shm(e, s);
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
		seed[0] = (uint32_t)(uintptr_t)mem ^ 0x2545f491u;
		seed[1] = seed[0] * 0x9e3779b1u;
	}
	p += m.eng;
	flow_table_init(&e->ft, p, c->max_flows, c->busy_blocks, c->seg_blocks, c->pin_max,
			c->cmd_max, c->inject_max, seed[0]);
	p += m.flows;
	harvest_init(&e->hv, m.hslots ? p : NULL, m.hslots, c->harvest_window_ms, seed[1]);
	p += m.hv;
	e->src = p;
	p += m.src;
	e->obuf = p;
	p += m.obuf;
	e->pieces = (struct tcpedit_piece *)p;
	e->max_pieces = m.max_pieces;
	e->retx_head = e->retx_tail = FLOW_NONE;
	e->end_head = e->end_tail = FLOW_NONE;
	*out = e;
	return 0;
}

int engine_create(const struct engine_conf *c, const struct engine_shm *s,
		  struct engine **out)
{
	size_t n = engine_mem_size(c);
	void *mem;
	int rc;
	if (!n)
		return -EINVAL;
	mem = aligned_alloc(64, ALIGN64(n));
	if (!mem)
		return -ENOMEM;
	rc = engine_init(mem, ALIGN64(n), c, s, out);
	if (rc) {
		free(mem);
		return rc;
	}
	(*out)->own_mem = mem;
	return 0;
}

void engine_destroy(struct engine *e)
{
	if (e && e->own_mem)
		free(e->own_mem);
}

void engine_set_realtime_offset(struct engine *e, int64_t real_minus_mono_ns)
{
	e->rt_off = real_minus_mono_ns;
}

void engine_info(const struct engine *e, struct engine_info *o)
{
	o->flows = e->ft.used;
	o->max_flows = e->ft.max;
	o->busy_used = e->ft.busy_used;
	o->busy_total = e->ft.busy_total;
	o->seg_used = e->ft.seg_used;
	o->seg_total = e->ft.seg_total;
	o->flow_bytes = sizeof(struct flow) + sizeof(uint32_t);
	o->mem_bytes = e->mem_size;
}

uint32_t engine_flow_hash(const uint8_t *frame, uint16_t len)
{
	return pkt_flow_hash(frame, len);
}

static int smtp_port(const struct engine *e, uint16_t port)
{
	for (unsigned i = 0; i < e->c.n_smtp_ports; i++)
		if (e->c.smtp_ports[i] == port)
			return 1;
	return 0;
}

int engine_is_smtp(const struct engine *e, const uint8_t *frame, uint16_t len)
{
	struct pkt p;
	if (pkt_parse(&p, (uint8_t *)frame, len) != PKT_TCP)
		return 0;
	return smtp_port(e, p.sport) || smtp_port(e, p.dport);
}

/* ---- edit lists of a flow ---- */

static inline struct tcpedit_pt *pts_of(const struct engine *e, const struct flow *f, int s2c)
{
	return f->busy != FLOW_NONE ? flow_pts(&e->ft, f, s2c) : NULL;
}

static uint32_t map_c2s(const struct engine *e, const struct flow *f, uint32_t p)
{
	return f->c2s.n ? tcpedit_map_hi(&f->c2s, pts_of(e, f, 0), p) : p + (uint32_t)f->c2s.base;
}

static uint32_t map_s2c_hi(const struct engine *e, const struct flow *f, uint32_t p)
{
	return f->s2c.n ? tcpedit_map_hi(&f->s2c, pts_of(e, f, 1), p) : p + (uint32_t)f->s2c.base;
}

/* Server ACK (of forwarded client bytes) -> client's view. */
static uint32_t unmap_c2s(const struct engine *e, const struct flow *f, uint32_t v)
{
	return f->c2s.n ? tcpedit_unmap(&f->c2s, pts_of(e, f, 0), v) : v - (uint32_t)f->c2s.base;
}

/* The ACK the client gets for its stream: the server's, translated, or what
 * the engine acknowledged itself (bytes it owns), whichever is further. */
static uint32_t ack_for_client(const struct engine *e, const struct flow *f, uint32_t v)
{
	return seq_max(unmap_c2s(e, f, v), f->c_own);
}

/* Client ACK (of the server stream as the client sees it) -> server's view. */
static uint32_t unmap_s2c(const struct engine *e, const struct flow *f, uint32_t v)
{
	return f->s2c.n ? tcpedit_unmap(&f->s2c, pts_of(e, f, 1), v) : v - (uint32_t)f->s2c.base;
}

/* ---- retransmission list ---- */

static void retx_unlink(struct engine *e, struct flow *f)
{
	struct flow *fl = e->ft.flows;
	uint32_t idx = flow_index(&e->ft, f);
	if (!(f->flags & FLOW_F_RETX))
		return;
	if (f->retx_prev != FLOW_NONE)
		fl[f->retx_prev].retx_next = f->retx_next;
	else
		e->retx_head = f->retx_next;
	if (f->retx_next != FLOW_NONE)
		fl[f->retx_next].retx_prev = f->retx_prev;
	else
		e->retx_tail = f->retx_prev;
	f->retx_next = f->retx_prev = FLOW_NONE;
	f->flags &= (uint8_t)~FLOW_F_RETX;
	(void)idx;
}

static void retx_append(struct engine *e, struct flow *f)
{
	uint32_t idx = flow_index(&e->ft, f);
	f->retx_next = FLOW_NONE;
	f->retx_prev = e->retx_tail;
	if (e->retx_tail != FLOW_NONE)
		e->ft.flows[e->retx_tail].retx_next = idx;
	else
		e->retx_head = idx;
	e->retx_tail = idx;
	f->flags |= FLOW_F_RETX;
}

static void retx_arm(struct engine *e, struct flow *f)
{
	f->retx_n = 0;
	f->retx_ms = e->now_ms + e->c.retx_initial_ms;
	if (!(f->flags & FLOW_F_RETX))
		retx_append(e, f);
}

/* ---- ended flows ---- */

static void ended_unlink(struct engine *e, struct flow *f)
{
	struct flow *fl = e->ft.flows;
	if (!f->ended)
		return;
	if (f->end_prev != FLOW_NONE)
		fl[f->end_prev].end_next = f->end_next;
	else
		e->end_head = f->end_next;
	if (f->end_next != FLOW_NONE)
		fl[f->end_next].end_prev = f->end_prev;
	else
		e->end_tail = f->end_prev;
	f->end_next = f->end_prev = FLOW_NONE;
	f->ended = 0;
}

static void flow_forget(struct engine *e, struct flow *f)
{
	retx_unlink(e, f);
	ended_unlink(e, f);
	flow_remove(&e->ft, f);
}

/* Does the flow's state matter to its endpoints?  Offsets in force, or
 * client bytes the engine acknowledged itself and must still deliver. */
static int has_offsets(const struct flow *f)
{
	return f->c2s.base || f->s2c.base || f->c2s.n || f->s2c.n || seq_lt(f->c_una, f->c_own);
}

/*
 * The flow is over (RST, or both FINs acknowledged): nothing of it needs
 * parsing any more.  Without offsets a late segment passes correctly
 * untracked, so the flow goes now; with offsets it lingers (ENGINE_LINGER_MS)
 * on the ended list, first in line when a new flow needs a slot.
 */
static void flow_end(struct engine *e, struct flow *f)
{
	uint32_t idx = flow_index(&e->ft, f);
	retx_unlink(e, f);
	if (!has_offsets(f)) {
		flow_forget(e, f);
		return;
	}
	if (f->ended)
		return;
	f->ended = 1;
	f->end_ms = e->now_ms;
	f->end_next = FLOW_NONE;
	f->end_prev = e->end_tail;
	if (e->end_tail != FLOW_NONE)
		e->ft.flows[e->end_tail].end_next = idx;
	else
		e->end_head = idx;
	e->end_tail = idx;
}

static int fins_acked(const struct engine *e, const struct flow *f);

/* Give the busy block back once nothing needs it. */
static void maybe_release(struct engine *e, struct flow *f)
{
	const struct flow_busy *b;
	if (f->busy == FLOW_NONE)
		return;
	b = flow_busy(&e->ft, f);
	if (f->c2s.n || f->s2c.n || b->t_len || f->c_rcv != f->c_fwd || b->q_n > FLOW_INLINE_Q ||
	    b->ooo_n[0] || b->ooo_n[1] || (f->cmode != CM_OPAQUE && f->c_una != f->c_rcv) ||
	    seq_lt(f->c_una, f->c_own))
		return;
	for (unsigned k = 0; k < b->q_n; k++)
		if (flow_q(&e->ft, f)[(b->q_head + k) % e->c.cmd_max].kind >= Q_INJ)
			return;
	flow_busy_put(&e->ft, f);
}

/* ---- building frames ---- */

static inline uint16_t csum_fix32(uint16_t ck, uint32_t old, uint32_t nw)
{
	/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') */
	uint32_t s = (uint16_t)~ck;
	s += (uint16_t)~(old >> 16);
	s += (uint16_t)~(old & 0xffffu);
	s += nw >> 16;
	s += nw & 0xffffu;
	return (uint16_t)~pkt_csum_fold(s);
}

static void put32_fix(uint8_t *field, uint8_t *ck, uint32_t nw)
{
	uint32_t old = pkt_get32(field);
	if (old == nw)
		return;
	pkt_put32(field, nw);
	pkt_put16(ck, csum_fix32(pkt_get16(ck), old, nw));
}

static void put16_fix(uint8_t *field, uint8_t *ck, uint16_t nw)
{
	uint16_t old = pkt_get16(field);
	if (old == nw)
		return;
	pkt_put16(field, nw);
	pkt_put16(ck, csum_fix32(pkt_get16(ck), old, nw));
}

/*
 * The window the client may see in a frame acknowledging a (client
 * sequence space): no further than pin_max bytes past what the server has
 * acknowledged, so every client byte not yet acknowledged by the server fits
 * the flow's pin ring.  The edge only moves forward (c_una only grows), so
 * the window never shrinks (RFC 9293 3.8.6).  win is in the server's units.
 */
static uint16_t win_to_client(const struct engine *e, const struct flow *f, uint16_t win,
			      uint32_t a, int syn)
{
	uint32_t edge = f->c_una + e->c.pin_max;
	uint32_t room = seq_lt(a, edge) ? edge - a : 0;
	if (!syn && (f->flags2 & FLOW_F2_WSCALE))
		room >>= f->s_wshift;
	return room < win ? (uint16_t)room : win;
}

/* Checksums of a frame whose payload or length changed. */
static void finish_csum(struct engine *e, struct pkt *p, uint16_t *tx_flags)
{
	uint8_t *th = p->frame + p->tcp_off;
	if (e->c.tx_csum_offload) {
		uint16_t tlen = (uint16_t)(p->ip_end - p->tcp_off);
		if (p->family == 4) {
			uint8_t *ip = p->frame + p->ip_off;
			ip[10] = ip[11] = 0;
		}
		pkt_put16(th + 16, pkt_csum_fold(pkt_pseudo_sum(p, tlen)));
		*tx_flags = (uint16_t)((p->family == 4 ? ENGINE_TX_IPV4 : ENGINE_TX_IPV6) |
				       ENGINE_TX_TCP_CKSUM);
		return;
	}
	pkt_ip_csum(p);
	pkt_tcp_csum(p);
	*tx_flags = 0;
	st(e, STAT_CSUM_SW);
}

static int out_take(struct engine *e, struct engine_out *out, uint16_t need)
{
	if (!out || out->n >= out->cap || out->buf[out->n].cap < need) {
		st(e, STAT_OUT_FULL);
		return -1;
	}
	return out->n++;
}

/*
 * A frame of our own toward the client (s2c = 1) or the server, carrying
 * len bytes of payload from pay, at view sequence seq.  Headers as the flow's
 * frames look, timestamps copied from the latest segments.
 */
static int build_frame(struct engine *e, struct flow *f, int s2c, struct engine_out *out,
		       uint32_t seq, uint32_t ack, const uint8_t *pay, uint16_t len,
		       uint8_t flags)
{
	unsigned l2 = PKT_ETH_LEN + f->n_vlan * PKT_VLAN_LEN;
	unsigned l3 = f->family == 4 ? PKT_IPV4_LEN : PKT_IPV6_LEN;
	unsigned l4 = PKT_TCP_LEN + ((f->flags & FLOW_F_TS) ? 12u : 0u);
	unsigned alen = f->family == 4 ? 4u : 16u;
	int k = out_take(e, out, (uint16_t)(l2 + l3 + l4 + len));
	struct engine_txbuf *tb;
	uint8_t *b, *ip, *th;
	const uint8_t *sip, *dip;
	struct pkt p;

	if (k < 0)
		return -ENOSPC;
	tb = &out->buf[k];
	b = tb->data;
	memcpy(b, s2c ? f->mac_c : f->mac_s, 6);
	memcpy(b + 6, s2c ? f->mac_s : f->mac_c, 6);
	memcpy(b + 12, f->vlan, f->n_vlan * PKT_VLAN_LEN);
	pkt_put16(b + 12 + f->n_vlan * PKT_VLAN_LEN,
		  f->family == 4 ? PKT_ETHERTYPE_IPV4 : PKT_ETHERTYPE_IPV6);
	ip = b + l2;
	sip = s2c ? f->s_ip : f->c_ip;
	dip = s2c ? f->c_ip : f->s_ip;
	if (f->family == 4) {
		ip[0] = 0x45;
		ip[1] = 0;
		pkt_put16(ip + 2, (uint16_t)(l3 + l4 + len));
		pkt_put16(ip + 4, 0);
		pkt_put16(ip + 6, 0x4000); /* DF */
		ip[8] = ENGINE_TTL;
		ip[9] = 6;
		ip[10] = ip[11] = 0;
		memcpy(ip + 12, sip, 4);
		memcpy(ip + 16, dip, 4);
	} else {
		pkt_put32(ip, 0x60000000u);
		pkt_put16(ip + 4, (uint16_t)(l4 + len));
		ip[6] = 6;
		ip[7] = ENGINE_TTL;
		memcpy(ip + 8, sip, alen);
		memcpy(ip + 24, dip, alen);
	}
	th = ip + l3;
	pkt_put16(th, s2c ? f->s_port : f->c_port);
	pkt_put16(th + 2, s2c ? f->c_port : f->s_port);
	pkt_put32(th + 4, seq);
	pkt_put32(th + 8, ack);
	th[12] = (uint8_t)((l4 / 4) << 4);
	th[13] = flags;
	pkt_put16(th + 14, s2c ? win_to_client(e, f, f->s_win, ack, 0) : f->c_win);
	if (flags & PKT_TH_RST)
		pkt_put16(th + 14, 0);
	pkt_put16(th + 16, 0);
	pkt_put16(th + 18, 0);
	if (f->flags & FLOW_F_TS) {
		th[20] = 1;
		th[21] = 1;
		th[22] = 8;
		th[23] = 10;
		pkt_put32(th + 24, s2c ? f->s_tsval : f->c_tsval);
		pkt_put32(th + 28, s2c ? f->c_tsval : f->s_tsval);
	}
	if (len)
		memcpy(th + l4, pay, len);
	tb->len = (uint16_t)(l2 + l3 + l4 + len);
	tb->port = s2c ? f->c_rxport : f->s_rxport;
	tb->l2_len = (uint8_t)l2;
	tb->l3_len = (uint8_t)l3;
	tb->l4_len = (uint8_t)l4;
	memset(&p, 0, sizeof(p));
	p.frame = b;
	p.family = f->family;
	p.ip_off = (uint16_t)l2;
	p.tcp_off = (uint16_t)(l2 + l3);
	p.pay_off = (uint16_t)(l2 + l3 + l4);
	p.pay_len = len;
	p.ip_end = (uint16_t)(l2 + l3 + l4 + len);
	p.saddr = ip + (f->family == 4 ? 12 : 8);
	p.daddr = ip + (f->family == 4 ? 16 : 24);
	finish_csum(e, &p, &tb->tx_flags);
	return 0;
}

/*
 * Payload bytes per frame toward the client (s2c) or the server: the MSS
 * that end announced, the port's MTU, and the transmit buffers the caller
 * lends, whichever is least; opt_len is the TCP option bytes per frame.
 */
static uint16_t mss_to(const struct engine *e, const struct flow *f, int s2c, uint16_t opt_len)
{
	unsigned l3 = f->family == 4 ? PKT_IPV4_LEN : PKT_IPV6_LEN;
	unsigned by_mtu = e->c.mtu - l3 - PKT_TCP_LEN;
	unsigned by_buf = ENGINE_OUT_BUF_MIN - PKT_ETH_LEN - PKT_VLAN_BYTES - l3 - PKT_TCP_LEN;
	unsigned m = s2c ? f->c_mss : f->s_mss;
	if (!m)
		m = f->family == 4 ? ENGINE_DEF_MSS4 : ENGINE_DEF_MSS6;
	if (m > by_mtu)
		m = by_mtu;
	if (m > by_buf)
		m = by_buf;
	return m > opt_len + 64u ? (uint16_t)(m - opt_len) : 64u;
}

/* Send view bytes [vseq, vseq+len) of injected text (offset toff) to the client. */
static void send_text(struct engine *e, struct flow *f, struct engine_out *out, uint32_t vseq,
		      uint32_t toff, uint32_t len, uint8_t extra_flags)
{
	uint16_t mss = mss_to(e, f, 1, (f->flags & FLOW_F_TS) ? 12 : 0);
	uint32_t ack = ack_for_client(e, f, f->s_ack);
	while (len) {
		uint16_t n = (uint16_t)(len < mss ? len : mss);
		uint8_t fl = PKT_TH_ACK | (n == len ? (PKT_TH_PSH | extra_flags) : 0);
		session_text_copy(e, f, toff, n, e->obuf);
		if (build_frame(e, f, 1, out, vseq, ack, e->obuf, n, fl) != 0)
			return;
		f->ack_to_c = ack;
		vseq += n;
		toff += n;
		len -= n;
	}
}

/* ---- the pin ring: client bytes the server has not acknowledged ---- */

static void pin_put(const struct engine *e, const struct flow *f, uint32_t seq, const uint8_t *b,
		    uint32_t n)
{
	uint8_t *r = flow_pin(&e->ft, f);
	uint32_t mask = e->c.pin_max - 1, at = seq & mask, first = n < e->c.pin_max - at
								  ? n
								  : e->c.pin_max - at;
	memcpy(r + at, b, first);
	memcpy(r, b + first, n - first);
}

static void pin_get(const struct engine *e, const struct flow *f, uint32_t seq, uint8_t *d,
		    uint32_t n)
{
	const uint8_t *r = flow_pin(&e->ft, f);
	uint32_t mask = e->c.pin_max - 1, at = seq & mask, first = n < e->c.pin_max - at
								  ? n
								  : e->c.pin_max - at;
	memcpy(d, r + at, first);
	memcpy(d + first, r, n - first);
}

/* Do the bytes of a resent range differ from the pinned ones? */
static int pin_differs(const struct engine *e, const struct flow *f, uint32_t seq,
		       const uint8_t *b, uint32_t n)
{
	const uint8_t *r = flow_pin(&e->ft, f);
	uint32_t mask = e->c.pin_max - 1, at = seq & mask, first = n < e->c.pin_max - at
								  ? n
								  : e->c.pin_max - at;
	return memcmp(r + at, b, first) != 0 || memcmp(r, b + first, n - first) != 0;
}

/*
 * Send the view of client bytes [x, y) from the pin ring to the server in
 * frames of our own (bytes the engine decided after their segment went by,
 * or owns and resends).  Removed ranges are left out, as in every copy.
 */
static void send_c2s(struct engine *e, struct flow *f, struct engine_out *out, uint32_t x,
		     uint32_t y)
{
	uint8_t *ob = e->obuf;
	uint16_t mss = mss_to(e, f, 0, (f->flags & FLOW_F_TS) ? 12 : 0);
	uint32_t vstart, total = 0, done = 0;
	unsigned np;

	if (!seq_lt(x, y) || f->busy == FLOW_NONE)
		return;
	if (f->c2s.n) {
		np = tcpedit_pieces(&f->c2s, flow_pts(&e->ft, f, 0), x, y, 1, e->pieces,
				    e->max_pieces, &vstart);
	} else {
		e->pieces[0] = (struct tcpedit_piece){x, y - x, 0};
		np = 1;
		vstart = x + (uint32_t)f->c2s.base;
	}
	for (unsigned i = 0; i < np; i++) {
		pin_get(e, f, e->pieces[i].from, ob + total, e->pieces[i].len);
		total += e->pieces[i].len;
	}
	while (done < total) {
		uint16_t n = (uint16_t)(total - done < mss ? total - done : mss);
		uint8_t fl = PKT_TH_ACK | (done + n == total ? PKT_TH_PSH : 0);
		if (build_frame(e, f, 0, out, vstart + done, f->ack_to_s, ob + done, n, fl) != 0)
			return;
		done += n;
	}
}

/* ---- emitting an edited segment ---- */

/* Translate the SACK blocks of a segment through the other direction's list.
 * Blocks that become empty are dropped and the option shrinks (NOP padding). */
static int sack_fix(struct engine *e, struct flow *f, struct pkt *p, int c2s)
{
	uint8_t *o = p->frame + p->sack_off;
	uint32_t blk[PKT_MAX_SACK][2];
	unsigned k = 0, n = p->sack_n, len;
	int changed = 0;

	for (unsigned i = 0; i < n; i++) {
		uint32_t l = pkt_get32(o + 2 + 8 * i), r = pkt_get32(o + 6 + 8 * i);
		uint32_t l2 = c2s ? unmap_s2c(e, f, l) : unmap_c2s(e, f, l);
		uint32_t r2 = c2s ? unmap_s2c(e, f, r) : unmap_c2s(e, f, r);
		if (l2 != l || r2 != r)
			changed = 1;
		if (!seq_lt(l2, r2)) {
			changed = 1;
			continue;
		}
		blk[k][0] = l2;
		blk[k][1] = r2;
		k++;
	}
	if (!changed)
		return 0;
	len = 2 + 8 * n;
	if (k == 0) {
		memset(o, 1, len);
	} else {
		o[1] = (uint8_t)(2 + 8 * k);
		for (unsigned i = 0; i < k; i++) {
			pkt_put32(o + 2 + 8 * i, blk[i][0]);
			pkt_put32(o + 6 + 8 * i, blk[i][1]);
		}
		memset(o + 2 + 8 * k, 1, len - (2 + 8 * k));
	}
	return 1;
}

/*
 * Emit the view of original range [x, y) of direction s2c (src[0] is
 * original sequence src_seq) in the received frame and, past what it holds,
 * in lent buffers.  ack/fin/news as decided by the caller.
 */
static enum engine_verdict emit(struct engine *e, struct flow *f, struct engine_frame *fr,
				struct pkt *p, int s2c, const uint8_t *src, uint32_t src_seq,
				uint32_t x, uint32_t y, uint32_t empty_seq, int fin_ok, int news,
				struct engine_out *out)
{
	const struct tcpedit *l = s2c ? &f->s2c : &f->c2s;
	const struct tcpedit_pt *pts = pts_of(e, f, s2c);
	uint8_t *th = p->frame + p->tcp_off;
	uint8_t flags = p->flags, *ck = th + 16;
	unsigned np;
	uint32_t vstart, total = 0;
	int sack_changed = 0;

	/* acknowledgement and SACK of the other direction */
	if (p->flags & PKT_TH_ACK) {
		uint32_t a = s2c ? ack_for_client(e, f, p->ack) : unmap_s2c(e, f, p->ack);
		put32_fix(th + 8, ck, a);
		if (s2c) {
			f->ack_to_c = a;
			put16_fix(th + 14, ck, win_to_client(e, f, p->win, a, 0));
		} else {
			f->ack_to_s = a;
		}
		if (p->sack_n)
			sack_changed = sack_fix(e, f, p, !s2c);
	}
	if (!fin_ok && (flags & PKT_TH_FIN)) {
		uint16_t old = pkt_get16(th + 12);
		th[13] &= (uint8_t)~PKT_TH_FIN;
		flags &= (uint8_t)~PKT_TH_FIN;
		pkt_put16(ck, csum_fix32(pkt_get16(ck), old, pkt_get16(th + 12)));
	}

	if (seq_lt(x, y)) {
		if (l->n) {
			/* an answer inserted at x rode in the segment that held the
			 * byte before x: it goes again only with a resend of that byte
			 * (a range cut at x by the receiver's ACK), never in front of
			 * the next reply, which would carry it twice */
			int with_x = !s2c || seq_lt(p->seq, x);
			np = tcpedit_pieces(l, pts, x, y, with_x, e->pieces, e->max_pieces, &vstart);
		} else {
			e->pieces[0].from = x;
			e->pieces[0].len = y - x;
			e->pieces[0].insert = 0;
			np = 1;
			vstart = x + (uint32_t)l->base;
		}
		for (unsigned i = 0; i < np; i++)
			total += e->pieces[i].len;
	} else {
		np = 0;
		vstart = empty_seq;
	}

	/* the common case: the payload goes out as it came, only renumbered */
	if (np == 1 && !e->pieces[0].insert && e->pieces[0].from == p->seq &&
	    e->pieces[0].len == p->pay_len && src == p->frame + p->pay_off) {
		put32_fix(th + 4, ck, vstart);
		if (sack_changed)
			finish_csum(e, p, &fr->tx_flags);
		return ENGINE_FORWARD;
	}
	if (total == 0) {
		if (!(flags & (PKT_TH_FIN | PKT_TH_RST | PKT_TH_SYN)) && !news)
			return ENGINE_DROP;
		pkt_put32(th + 4, vstart);
		pkt_set_ip_len(p, 0);
		fr->len = p->ip_end;
		finish_csum(e, p, &fr->tx_flags);
		return ENGINE_FORWARD;
	}

	/* compose the new payload, then cut it into frames */
	{
		uint8_t *ob = e->obuf;
		uint32_t off = 0, done = 0, room;
		uint16_t mss = mss_to(e, f, s2c, (uint16_t)(p->pay_off - p->tcp_off - PKT_TCP_LEN));
		uint16_t hdr = p->pay_off;
		if (total > ENGINE_SCRATCH + e->c.inject_max)
			total = ENGINE_SCRATCH + e->c.inject_max;
		for (unsigned i = 0; i < np && off < total; i++) {
			const struct tcpedit_piece *pc = &e->pieces[i];
			uint32_t n = pc->len < total - off ? pc->len : total - off;
			if (pc->insert)
				session_text_copy(e, f, pc->from, n, ob + off);
			else
				memcpy(ob + off, src + (pc->from - src_seq), n);
			off += n;
		}
		room = (uint32_t)fr->len + fr->tailroom;
		room = room > hdr ? room - hdr : 0;
		if (room > mss)
			room = mss;
		if (room == 0)
			return ENGINE_DROP;
		/* the received frame carries the first part */
		{
			uint32_t n = total < room ? total : room;
			int last = n == total;
			memcpy(p->frame + p->pay_off, ob, n);
			pkt_set_ip_len(p, (uint16_t)n);
			fr->len = p->ip_end;
			pkt_put32(th + 4, vstart);
			if (!last)
				th[13] &= (uint8_t)~(PKT_TH_FIN | PKT_TH_PSH);
			finish_csum(e, p, &fr->tx_flags);
			done = n;
		}
		/* the rest in lent buffers, headers cloned from the first */
		while (done < total) {
			uint32_t n = total - done < mss ? total - done : mss;
			int k = out_take(e, out, (uint16_t)(hdr + n));
			struct engine_txbuf *tb;
			struct pkt q;
			if (k < 0)
				break; /* the receiver asks again; we answer the same */
			tb = &out->buf[k];
			memcpy(tb->data, p->frame, hdr);
			memcpy(tb->data + hdr, ob + done, n);
			q = *p;
			q.frame = tb->data;
			q.saddr = tb->data + (p->saddr - p->frame);
			q.daddr = tb->data + (p->daddr - p->frame);
			pkt_set_ip_len(&q, (uint16_t)n);
			pkt_put32(tb->data + q.tcp_off + 4, vstart + done);
			tb->data[q.tcp_off + 13] = (uint8_t)(flags & ~(PKT_TH_FIN | PKT_TH_PSH));
			if (done + n == total)
				tb->data[q.tcp_off + 13] = flags;
			tb->len = q.ip_end;
			tb->port = fr->peer_port;
			tb->l2_len = (uint8_t)p->ip_off;
			tb->l3_len = (uint8_t)(p->tcp_off - p->ip_off);
			tb->l4_len = (uint8_t)(p->pay_off - p->tcp_off);
			finish_csum(e, &q, &tb->tx_flags);
			done += n;
		}
	}
	return ENGINE_FORWARD;
}

/* ---- ending flows the engine can no longer keep consistent ---- */

/*
 * Reset both ends, each at the sequence number it expects next (RFC 5961
 * 3.2: only an exact match resets), and forget the flow.  For flows with
 * offsets whose state is being lost: a clean end instead of a silent desync.
 */
static void flow_reset(struct engine *e, struct flow *f, struct engine_out *out)
{
	if (f->state == FS_EST) {
		build_frame(e, f, 0, out, f->s_ack, 0, NULL, 0, PKT_TH_RST);
		build_frame(e, f, 1, out, f->c_ack, 0, NULL, 0, PKT_TH_RST);
		st(e, STAT_FLOWS_RESET);
	}
	flow_forget(e, f);
}

/* ---- harvest close ---- */

static void harvest_close(struct engine *e, struct flow *f, struct engine_out *out)
{
	/* reset the server side at the next byte it expects */
	uint32_t seq = map_c2s(e, f, f->c_fwd);
	build_frame(e, f, 0, out, seq, f->s_fwd, NULL, 0, PKT_TH_RST | PKT_TH_ACK);
	/* and end the client's side after the 421 */
	build_frame(e, f, 1, out, map_s2c_hi(e, f, f->s_fwd), ack_for_client(e, f, f->s_ack), NULL,
		    0, PKT_TH_FIN | PKT_TH_ACK);
	f->flags |= FLOW_F_S_OPAQUE;
	f->state = FS_CLOSING;
}

/* Replies at the queue's head with no server reply due before them go to
 * the client on their own, inserted where the server's stream stands. */
static void inject_alone(struct engine *e, struct flow *f, struct engine_out *out)
{
	uint32_t v0, ins;
	int close = 0;
	if (f->busy == FLOW_NONE || !session_q_len(e, f) || !smtp_reply_idle(&f->rp) ||
	    (f->flags & FLOW_F_S_OPAQUE) || f->state != FS_EST)
		return;
	v0 = map_s2c_hi(e, f, f->s_fwd);
	ins = session_place(e, f, f->s_fwd, &close);
	if (!ins)
		return;
	{
		const struct tcpedit_pt *pts = flow_pts(&e->ft, f, 1);
		uint32_t toff = tcpedit_live_ins(&f->s2c, pts) - ins;
		send_text(e, f, out, v0, toff, ins, 0);
	}
	st(e, STAT_INJECTED);
	retx_arm(e, f);
	if (close)
		harvest_close(e, f, out);
}

/* ---- what the receiver accepts ---- */

/* Remember the newest timestamp of each end (PAWS, and our own frames). */
static void note_ts(struct flow *f, const struct pkt *p, int c2s)
{
	uint32_t *r = c2s ? &f->c_tsval : &f->s_tsval, v;
	if (!p->has_ts)
		return;
	v = pkt_get32(p->frame + p->ts_off);
	if (seq_lt(*r, v))
		*r = v;
}

static int csum_bad(struct engine *e, const struct engine_frame *fr, const struct pkt *p)
{
	if (fr->rx_csum == ENGINE_RXCSUM_GOOD)
		return 0;
	if (fr->rx_csum == ENGINE_RXCSUM_BAD || !pkt_tcp_csum_ok(p)) {
		st(e, STAT_BAD_CSUM);
		return 1;
	}
	return 0;
}

/*
 * Would the receiving TCP accept this (non-SYN, non-RST) segment?  Only then
 * may it be parsed or change any state (RFC 9293 3.10.7.4): checksum good,
 * ACK bit set, acknowledging nothing never sent, and (RFC 7323 5.3) no
 * timestamp older than the sender's newest.  Bytes outside the window need
 * no check here: they are pinned like any other once decided.
 */
static int seg_acceptable(struct engine *e, struct flow *f, const struct engine_frame *fr,
			  const struct pkt *p, int c2s)
{
	uint32_t sent;
	if (csum_bad(e, fr, p))
		return 0;
	if (!(p->flags & PKT_TH_ACK))
		goto no;
	sent = c2s ? map_s2c_hi(e, f, f->s_fwd) : map_c2s(e, f, f->c_fwd);
	if (seq_lt(sent + 1, p->ack))
		goto no;
	if ((f->flags & FLOW_F_TS) && p->has_ts &&
	    seq_lt(pkt_get32(p->frame + p->ts_off), c2s ? f->c_tsval : f->s_tsval))
		goto no;
	return 1;
no:
	st(e, STAT_SEG_UNACCEPTABLE);
	return 0;
}

/* Keep an out-of-order segment for later; 0 stored, -1 not. */
static int ooo_store(struct engine *e, struct flow *f, const struct pkt *p, int dir)
{
	struct flow_busy *b;
	uint32_t idx, *pp;
	struct flow_seg *sg;

	if (p->pay_len > FLOW_SEG_DATA || (f->busy == FLOW_NONE && flow_busy_get(&e->ft, f)))
		goto full;
	b = flow_busy(&e->ft, f);
	if (b->ooo_n[dir] >= e->c.ooo_max)
		goto full;
	pp = &b->ooo_head[dir];
	while (*pp != FLOW_NONE) {
		struct flow_seg *o = flow_seg(&e->ft, *pp);
		if (o->seq == p->seq && o->len >= p->pay_len)
			return 0; /* a copy of what is kept */
		if (seq_lt(p->seq, o->seq))
			break;
		pp = &o->next;
	}
	idx = flow_seg_get(&e->ft);
	if (idx == FLOW_NONE)
		goto full;
	sg = flow_seg(&e->ft, idx);
	sg->seq = p->seq;
	sg->len = p->pay_len;
	sg->fin = (p->flags & PKT_TH_FIN) != 0;
	memcpy(sg + 1, p->frame + p->pay_off, p->pay_len);
	sg->next = *pp;
	*pp = idx;
	b->ooo_n[dir]++;
	st(e, STAT_OOO_SEGS);
	return 0;
full:
	st(e, STAT_OOO_LIMIT);
	return -1;
}

static enum engine_verdict c2s_seg(struct engine *e, struct flow *f, struct engine_frame *fr,
				   struct pkt *p, struct engine_out *out);
static enum engine_verdict s2c_seg(struct engine *e, struct flow *f, struct engine_frame *fr,
				   struct pkt *p, struct engine_out *out);

/*
 * Out-of-order segments that became in order: run them through the same
 * path as a received frame, built in a lent buffer from the current frame's
 * headers.  They were checked when stored.
 */
static void ooo_drain(struct engine *e, struct flow *f, struct engine_frame *fr,
		      const struct pkt *cur, int dir, struct engine_out *out)
{
	for (;;) {
		struct flow_busy *b;
		struct flow_seg *sg;
		uint32_t idx, next_seq = dir == 0 ? f->c_rcv : f->s_fwd;
		struct pkt q;
		struct engine_frame nf;
		int k;

		if (f->busy == FLOW_NONE || f->state == FS_FREE)
			return;
		b = flow_busy(&e->ft, f);
		idx = b->ooo_head[dir];
		if (idx == FLOW_NONE)
			return;
		sg = flow_seg(&e->ft, idx);
		if (seq_lt(next_seq, sg->seq))
			return; /* still a gap */
		b->ooo_head[dir] = sg->next;
		b->ooo_n[dir]--;
		if (seq_le(sg->seq + sg->len, next_seq) && !sg->fin) {
			flow_seg_put(&e->ft, idx);
			continue; /* wholly covered meanwhile */
		}
		k = out_take(e, out, (uint16_t)(cur->pay_off + sg->len));
		if (k < 0) {
			flow_seg_put(&e->ft, idx);
			return;
		}
		memcpy(out->buf[k].data, cur->frame, cur->pay_off);
		memcpy(out->buf[k].data + cur->pay_off, sg + 1, sg->len);
		q = *cur;
		q.frame = out->buf[k].data;
		q.saddr = q.frame + (cur->saddr - cur->frame);
		q.daddr = q.frame + (cur->daddr - cur->frame);
		q.sack_n = 0;
		q.seq = sg->seq;
		q.flags = (uint8_t)(PKT_TH_ACK | PKT_TH_PSH | (sg->fin ? PKT_TH_FIN : 0));
		q.frame[q.tcp_off + 13] = q.flags;
		pkt_put32(q.frame + q.tcp_off + 4, q.seq);
		pkt_put32(q.frame + q.tcp_off + 8, q.ack);
		pkt_set_ip_len(&q, sg->len);
		pkt_ip_csum(&q);
		pkt_tcp_csum(&q);
		flow_seg_put(&e->ft, idx);
		nf.data = q.frame;
		nf.len = q.ip_end;
		nf.headroom = 0;
		nf.tailroom = (uint16_t)(out->buf[k].cap - q.ip_end);
		nf.rx_port = fr->rx_port;
		nf.peer_port = fr->peer_port;
		nf.outside = fr->outside;
		nf.rx_csum = ENGINE_RXCSUM_GOOD;
		nf.tx_flags = 0;
		{
			/* the lent buffer is this frame now: the rest of out follows it */
			struct engine_out rest = {out->buf + k + 1, (uint16_t)(out->cap - k - 1), 0};
			enum engine_verdict v =
				dir == 0 ? c2s_seg(e, f, &nf, &q, &rest) : s2c_seg(e, f, &nf, &q, &rest);
			struct engine_txbuf *tb = &out->buf[k];
			if (v == ENGINE_DROP) {
				tb->len = 0; /* nothing in it: the caller frees it */
				tb->port = ENGINE_PORT_NONE;
				tb->tx_flags = 0;
			} else {
				tb->len = nf.len;
				tb->port = fr->peer_port;
				tb->tx_flags = nf.tx_flags;
				tb->l2_len = (uint8_t)q.ip_off;
				tb->l3_len = (uint8_t)(q.tcp_off - q.ip_off);
				tb->l4_len = (uint8_t)(q.pay_off - q.tcp_off);
			}
			out->n = (uint16_t)(k + 1 + rest.n);
			if (v == ENGINE_DROP && rest.n == 0)
				out->n = (uint16_t)k; /* give the unused buffer back */
		}
	}
}

/* ---- client -> server ---- */

/* c_una from the server's latest ACK: a removal that ends where the server
 * acknowledged counts as received (tcpedit_unmap), so it is recomputed after
 * edits as well as after ACKs. */
static void refresh_una(const struct engine *e, struct flow *f)
{
	uint32_t una = unmap_c2s(e, f, f->s_ack);
	if (seq_lt(f->c_rcv, una))
		una = f->c_rcv;
	if (seq_lt(f->c_una, una))
		f->c_una = una;
}

/* The server acknowledged client bytes up to view position v. */
static void server_acked(struct engine *e, struct flow *f, uint32_t v)
{
	f->s_ack = v;
	if (f->c2s.n)
		tcpedit_collapse(&f->c2s, flow_pts(&e->ft, f, 0), f->s_ack);
	refresh_una(e, f);
}

/* The client acknowledged server bytes up to view position v. */
static void client_acked(struct engine *e, struct flow *f, uint32_t v)
{
	f->c_ack = v;
	if (f->s2c.n)
		session_text_free(e, f, tcpedit_collapse(&f->s2c, flow_pts(&e->ft, f, 1), f->c_ack));
}

/* Client modes whose bytes are parsed (and so pinned). */
static int c_parsed(const struct flow *f)
{
	return f->cmode != CM_OPAQUE;
}

/*
 * Parse the client bytes not decided yet, [c_fwd, c_rcv), from the pin ring
 * (or from b when the caller has them contiguous at c_fwd).
 */
static void c2s_decide(struct engine *e, struct flow *f, const uint8_t *b, int flush)
{
	if (!seq_lt(f->c_fwd, f->c_rcv) || !c_parsed(f))
		return;
	if (!b) {
		pin_get(e, f, f->c_fwd, e->src, f->c_rcv - f->c_fwd);
		b = e->src;
	}
	session_c_consume(e, f, b, f->c_fwd, f->c_rcv, flush);
}

/*
 * A server reply changed how held client bytes read (AUTH refused or done,
 * 354, STARTTLS refused): decide them now and send what was decided.  The
 * engine acknowledged them when it held them, so it owns them until the
 * server acknowledges them.
 */
static void c2s_release(struct engine *e, struct flow *f, struct engine_out *out)
{
	uint32_t old_fwd = f->c_fwd;
	if (f->busy == FLOW_NONE || !seq_lt(f->c_fwd, f->c_rcv))
		return;
	c2s_decide(e, f, NULL, 0);
	if (seq_lt(old_fwd, f->c_fwd)) {
		send_c2s(e, f, out, old_fwd, f->c_fwd);
		retx_arm(e, f);
	}
}

static enum engine_verdict c2s_seg(struct engine *e, struct flow *f, struct engine_frame *fr,
				   struct pkt *p, struct engine_out *out)
{
	uint32_t s = p->seq, end = s + p->pay_len, x, y, empty_seq;
	uint32_t old_fwd = f->c_fwd, old_rcv = f->c_rcv;
	const uint8_t *pay = p->frame + p->pay_off, *src = pay;
	int fin = (p->flags & PKT_TH_FIN) != 0, fin_ok, news = 0, own = 0, resent;

	note_ts(f, p, 1);
	if (p->win != f->c_win || p->sack_n)
		news = 1;
	f->c_win = p->win;
	if (seq_lt(f->c_ack, p->ack))
		client_acked(e, f, p->ack);
	if (unmap_s2c(e, f, p->ack) != f->ack_to_s)
		news = 1;
	refresh_una(e, f);

	if (p->pay_len == 0 && !fin) {
		/* a pure ACK goes on even when it says nothing new: duplicate
		 * ACKs drive the server's fast retransmission */
		empty_seq = map_c2s(e, f, seq_lt(s, f->c_fwd) ? s : f->c_fwd);
		return emit(e, f, fr, p, 0, src, s, s, s, empty_seq, 1, 1, out);
	}
	if (seq_lt(f->c_rcv, s)) {
		/* a gap before it: keep it for later, pass the ACK on, and tell
		 * the client what its receiver would: a duplicate ACK, so its
		 * fast retransmission fills the gap */
		if (ooo_store(e, f, p, 0) == 0)
			build_frame(e, f, 1, out, map_s2c_hi(e, f, f->s_fwd), f->ack_to_c, NULL, 0,
				    PKT_TH_ACK);
		empty_seq = map_c2s(e, f, f->c_fwd);
		return emit(e, f, fr, p, 0, src, s, s, s, empty_seq, 0, news, out);
	}
	resent = seq_lt(s, old_rcv);

	if (!c_parsed(f) && old_fwd == old_rcv) {
		/* opaque (TLS, or failed open): offsets applied, nothing parsed
		 * or pinned; what the server already has is not sent again */
		if (seq_lt(f->c_rcv, end))
			f->c_fwd = f->c_rcv = end;
		x = seq_lt(s, f->c_una) ? seq_min(f->c_una, end) : s;
		y = end;
		if (resent)
			st(e, STAT_RETRANS);
		fin_ok = !fin || end == f->c_rcv;
		goto out;
	}

	/* new bytes are pinned first: the ring holds [c_una, c_rcv) */
	if (seq_lt(f->c_rcv, end)) {
		uint32_t from = f->c_rcv, n = end - from, room;
		if (f->busy == FLOW_NONE && flow_busy_get(&e->ft, f) != 0) {
			/* nowhere to keep them: this flow is forwarded unparsed
			 * (it has no offsets, or it would hold a busy block) */
			st(e, STAT_PIN_NOSPACE);
			session_failopen(e, f);
			f->c_fwd = f->c_rcv = end;
			x = seq_lt(s, f->c_una) ? seq_min(f->c_una, end) : s;
			y = end;
			fin_ok = 1;
			goto out;
		}
		room = f->c_una + e->c.pin_max - from;
		if (n > room) {
			/* past the window the client was given: TCP resends it */
			st(e, STAT_PIN_OVERRUN);
			n = room;
			fin = 0;
		}
		pin_put(e, f, from, pay + (from - s), n);
		f->c_rcv = from + n;
	}
	if (resent) {
		uint32_t lo = seq_max(s, f->c_una), hi = seq_min(end, old_rcv);
		st(e, STAT_RETRANS);
		if (seq_lt(lo, hi) && pin_differs(e, f, lo, pay + (lo - s), hi - lo))
			st(e, STAT_PIN_REWRITE); /* the first copy decided */
		if (seq_lt(old_fwd, old_rcv) && seq_lt(old_fwd, end))
			own = 1; /* held bytes sent again: the sender waits for them */
	}

	/* decide what can be decided; straight from the frame when it is the
	 * plain case (nothing held, the segment starts where parsing stands) */
	if (old_fwd == old_rcv && s == old_fwd && f->c_rcv == end)
		c2s_decide(e, f, pay, fin);
	else
		c2s_decide(e, f, NULL, fin && end == f->c_rcv);

	/* bytes still held are acknowledged now, and owned: a sender that
	 * cannot send the rest of the line before this ACK never stalls */
	if (seq_lt(f->c_fwd, f->c_rcv) && seq_lt(f->c_own, f->c_rcv)) {
		f->c_own = f->c_rcv;
		own = 1;
	}

	/* what goes to the server: this segment's decided bytes, bytes decided
	 * now that came before it, and on a resend what the engine owns and the
	 * server lacks; never what the server acknowledged, always the pinned
	 * copy */
	x = s;
	y = seq_min(end, f->c_fwd);
	if (seq_lt(old_fwd, f->c_fwd)) {
		x = seq_min(x, old_fwd);
		y = f->c_fwd;
	}
	if (resent && seq_lt(f->c_una, f->c_own)) {
		x = f->c_una;
		y = seq_max(y, seq_min(f->c_own, f->c_fwd));
	}
	if (seq_lt(x, f->c_una))
		x = f->c_una;
	if (seq_lt(y, x))
		y = x;
	if (seq_lt(x, y) && (resent || seq_lt(x, s) || seq_lt(end, y))) {
		/* not all of it is this segment's own fresh bytes: the pinned
		 * copy (fresh bytes are the pinned ones) */
		pin_get(e, f, x, e->src, y - x);
		src = e->src;
		s = x; /* src_seq below */
	}
	fin_ok = !fin || (p->seq + p->pay_len == f->c_rcv && f->c_rcv == f->c_fwd);

out:
	if (fin && fin_ok)
		f->flags |= FLOW_F_C_FIN;
	empty_seq = map_c2s(e, f, seq_lt(p->seq, f->c_fwd) ? p->seq : f->c_fwd);
	if (fin && fin_ok)
		empty_seq = map_c2s(e, f, p->seq + p->pay_len);
	{
		enum engine_verdict v =
			emit(e, f, fr, p, 0, src, s, x, y, empty_seq, fin && fin_ok, news, out);
		if (own) {
			st(e, STAT_HELD_ACKED);
			retx_arm(e, f);
		}
		if (own || (x == y && p->pay_len && seq_le(p->seq + p->pay_len, f->c_fwd)))
			/* held bytes the engine owns, or a resent command it
			 * removed (the server never acknowledges it): the ACK
			 * comes from the engine, or the client resends forever */
			build_frame(e, f, 1, out, map_s2c_hi(e, f, f->s_fwd),
				    ack_for_client(e, f, f->s_ack), NULL, 0, PKT_TH_ACK);
		inject_alone(e, f, out);
		return v;
	}
}

/* ---- server -> client ---- */

static enum engine_verdict s2c_seg(struct engine *e, struct flow *f, struct engine_frame *fr,
				   struct pkt *p, struct engine_out *out)
{
	uint32_t s = p->seq, end = s + p->pay_len, x = s, y = s, ins = 0;
	const uint8_t *src = p->frame + p->pay_off;
	int fin = (p->flags & PKT_TH_FIN) != 0, fin_ok = 1, news = 0, close = 0;
	enum engine_verdict v;

	note_ts(f, p, 0);
	if (p->win != f->s_win || p->sack_n)
		news = 1;
	f->s_win = p->win;
	if (seq_lt(f->s_ack, p->ack))
		server_acked(e, f, p->ack);
	if (ack_for_client(e, f, p->ack) != f->ack_to_c)
		news = 1;
	if (f->state == FS_CLOSING && (f->flags & FLOW_F_HARVEST))
		return ENGINE_DROP; /* the server side was reset */
	if (p->pay_len == 0 && !fin)
		return emit(e, f, fr, p, 1, src, s, s, s, map_s2c_hi(e, f, s), 1, 1, out);
	if (seq_lt(f->s_fwd, s)) {
		if (ooo_store(e, f, p, 1) == 0)
			build_frame(e, f, 0, out, map_c2s(e, f, f->c_fwd), f->ack_to_s, NULL, 0,
				    PKT_TH_ACK);
		return emit(e, f, fr, p, 1, src, s, s, s, map_s2c_hi(e, f, f->s_fwd), 0, news,
			    out);
	}
	if (p->pay_len) {
		if (seq_lt(f->s_fwd, end))
			close = session_s_consume(e, f, src + (f->s_fwd - s), end, &ins);
		else
			st(e, STAT_RETRANS);
		y = end;
	}
	if (fin) {
		fin_ok = y == end && !close;
		if (fin_ok)
			f->flags |= FLOW_F_S_FIN;
	}
	if (close)
		y = f->s_fwd; /* nothing of the server's past the 421 */
	{
		uint32_t acked = unmap_s2c(e, f, f->c_ack);
		if (seq_lt(x, acked))
			x = seq_lt(acked, y) ? acked : y;
	}
	v = emit(e, f, fr, p, 1, src, s, x, y, map_s2c_hi(e, f, end), fin_ok, news, out);
	if (x == y && p->pay_len && !close)
		/* a resend the client already has: its ACK comes from us */
		build_frame(e, f, 0, out, map_c2s(e, f, f->c_fwd), unmap_s2c(e, f, f->c_ack),
			    NULL, 0, PKT_TH_ACK);
	if (ins)
		retx_arm(e, f);
	if (close) {
		harvest_close(e, f, out);
		return v;
	}
	c2s_release(e, f, out);
	inject_alone(e, f, out);
	return v;
}

static int fins_acked(const struct engine *e, const struct flow *f)
{
	int s_fin = (f->flags & (FLOW_F_S_FIN | FLOW_F_HARVEST)) != 0 &&
		    seq_lt(map_s2c_hi(e, f, f->s_fwd), f->c_ack);
	if (f->flags & FLOW_F_HARVEST)
		return s_fin;
	return s_fin && (f->flags & FLOW_F_C_FIN) && seq_lt(map_c2s(e, f, f->c_fwd), f->s_ack);
}

/* ---- flow creation and eviction ---- */

static struct flow *evict_one(struct engine *e)
{
	struct flow_table *t = &e->ft;
	struct flow *best = NULL;
	for (unsigned i = 0; i < ENGINE_EVICT_SCAN; i++) {
		struct flow *f = &t->flows[t->evict_pos];
		t->evict_pos = (t->evict_pos + 1) % t->max;
		if (f->state == FS_FREE)
			continue;
		if (f->state == FS_CLOSING) {
			best = f; /* its session is over */
			break;
		}
		/* only flows with no offsets can go: their segments then pass
		 * unedited and stay correct */
		if (has_offsets(f) || f->busy != FLOW_NONE)
			continue;
		if (!best || seq_lt(f->last_ms, best->last_ms))
			best = f;
	}
	return best;
}

/* What a client's SYN says, kept to start (or restart) a flow. */
struct syn_info {
	uint32_t isn;
	uint16_t mss;
	uint8_t ts, wscale_ok, wscale;
	uint32_t tsval;
};

static void syn_info_of(const struct pkt *p, struct syn_info *si)
{
	si->isn = p->seq;
	si->mss = p->mss;
	si->ts = p->has_ts;
	si->wscale_ok = p->wscale_ok;
	si->wscale = p->wscale;
	si->tsval = p->has_ts ? pkt_get32(p->frame + p->ts_off) : 0;
}

/* A flow's connection state from its client's SYN (identity and L2 set). */
static void flow_start(struct engine *e, struct flow *f, const struct syn_info *si)
{
	f->c_isn = si->isn;
	f->c_fwd = f->c_rcv = f->c_una = f->c_own = si->isn + 1;
	f->c_mss = si->mss;
	if (si->ts)
		f->flags |= FLOW_F_TS;
	f->c_tsval = si->tsval;
	f->c_wshift = si->wscale;
	if (si->wscale_ok)
		f->flags2 |= FLOW_F2_WSCALE;
	f->last_ms = e->now_ms;
	session_q_push(e, f, Q_FWD, 0); /* the server's greeting */
	st(e, STAT_FLOWS_NEW);
}

static struct flow *flow_new(struct engine *e, struct engine_frame *fr, struct pkt *p)
{
	struct flow *f = flow_insert(&e->ft, p->family, p->saddr, p->daddr, p->sport, p->dport);
	struct syn_info si;
	if (!f) {
		/* the oldest ended flow first, then a closing or idle one */
		struct flow *v = e->end_head != FLOW_NONE && e->ft.free_head == FLOW_NONE
					 ? &e->ft.flows[e->end_head]
					 : evict_one(e);
		if (v) {
			flow_forget(e, v);
			st(e, STAT_FLOWS_EVICTED);
			f = flow_insert(&e->ft, p->family, p->saddr, p->daddr, p->sport,
					p->dport);
		}
	}
	if (!f) {
		st(e, STAT_FLOWS_FULL);
		return NULL;
	}
	f->c_win = p->win;
	memcpy(f->mac_c, p->frame + 6, 6);
	memcpy(f->mac_s, p->frame, 6);
	f->n_vlan = p->n_vlan;
	memcpy(f->vlan, p->frame + 12, p->n_vlan * PKT_VLAN_LEN);
	f->c_rxport = fr->rx_port;
	f->s_rxport = fr->peer_port;
	syn_info_of(p, &si);
	flow_start(e, f, &si);
	return f;
}

/*
 * The server took a new connection on a tracked 4-tuple (its SYN-ACK
 * acknowledges the new ISN): the old connection is gone on both ends, and
 * its state with it.  The flow starts again from the new SYN.
 */
static struct flow *flow_restart(struct engine *e, struct flow *f)
{
	struct flow keep = *f;
	struct syn_info si = {f->syn_isn, f->syn_mss, (f->flags2 & FLOW_F2_NEWSYN_TS) != 0,
			      f->syn_wscale != 0xff, f->syn_wscale != 0xff ? f->syn_wscale : 0, 0};
	struct flow *n;
	flow_forget(e, f);
	n = flow_insert(&e->ft, keep.family, keep.c_ip, keep.s_ip, keep.c_port, keep.s_port);
	if (!n)
		return NULL;
	memcpy(n->mac_c, keep.mac_c, 6);
	memcpy(n->mac_s, keep.mac_s, 6);
	n->n_vlan = keep.n_vlan;
	memcpy(n->vlan, keep.vlan, sizeof(n->vlan));
	n->c_rxport = keep.c_rxport;
	n->s_rxport = keep.s_rxport;
	n->c_win = keep.c_win;
	si.tsval = keep.syn_tsval;
	flow_start(e, n, &si);
	return n;
}

/* The server's SYN-ACK: sequence spaces known, the flow is established. */
static void syn_ack(struct engine *e, struct flow *f, struct pkt *p)
{
	uint8_t *th = p->frame + p->tcp_off;
	f->s_fwd = p->seq + 1;
	f->s_mss = p->mss;
	if (!p->has_ts)
		f->flags &= (uint8_t)~FLOW_F_TS;
	f->s_tsval = p->has_ts ? pkt_get32(p->frame + p->ts_off) : 0;
	if (p->wscale_ok)
		f->s_wshift = p->wscale;
	else
		f->flags2 &= (uint8_t)~FLOW_F2_WSCALE;
	if (!(f->flags2 & FLOW_F2_WSCALE))
		f->c_wshift = f->s_wshift = 0;
	f->s_win = p->win;
	f->c_ack = f->s_fwd;
	f->s_ack = f->c_fwd;
	f->ack_to_c = f->c_fwd;
	f->ack_to_s = f->s_fwd;
	f->state = FS_EST;
	/* the client's window starts clamped to the pin ring (a SYN's window
	 * is never scaled) */
	put16_fix(th + 14, th + 16, win_to_client(e, f, p->win, f->c_fwd, 1));
}

/*
 * RFC 5961 3.2: a receiver resets only on an RST at exactly the next
 * sequence number it expects.  The engine cannot know that number to the
 * byte (ACKs may be delayed), so it takes the range it can be in: from what
 * the receiver acknowledged to what was sent to it.
 */
static int rst_plausible(const struct engine *e, const struct flow *f, const struct pkt *p,
			 int c2s)
{
	if (c2s)
		return seq_le(f->c_una, p->seq) && seq_le(p->seq, f->c_rcv);
	return seq_le(unmap_s2c(e, f, f->c_ack), p->seq) && seq_le(p->seq, f->s_fwd);
}

static enum engine_verdict on_rst(struct engine *e, struct flow *f, struct engine_frame *fr,
				  struct pkt *p, int c2s)
{
	uint8_t *th = p->frame + p->tcp_off;
	uint32_t seq;
	if (csum_bad(e, fr, p))
		return has_offsets(f) ? ENGINE_DROP : ENGINE_FORWARD;
	if (!rst_plausible(e, f, p, c2s)) {
		/* the receiver ignores it (or answers a challenge ACK, which
		 * would only confirm the connection): keep the flow */
		st(e, STAT_RST_IGNORED);
		return has_offsets(f) ? ENGINE_DROP : ENGINE_FORWARD;
	}
	seq = c2s ? map_c2s(e, f, p->seq) : map_s2c_hi(e, f, p->seq);
	put32_fix(th + 4, th + 16, seq);
	if (p->flags & PKT_TH_ACK)
		put32_fix(th + 8, th + 16,
			  c2s ? unmap_s2c(e, f, p->ack) : ack_for_client(e, f, p->ack));
	if (f->state != FS_CLOSING)
		st(e, STAT_FLOWS_CLOSED);
	f->state = FS_CLOSING;
	flow_end(e, f);
	return ENGINE_FORWARD;
}

/* A SYN with no ACK: a new flow, a retried handshake, or a new connection on
 * a tracked 4-tuple. */
static enum engine_verdict on_syn(struct engine *e, struct flow *f, int c2s,
				  struct engine_frame *fr, struct pkt *p)
{
	if (csum_bad(e, fr, p))
		return ENGINE_FORWARD;
	if (f && f->state == FS_CLOSING) {
		flow_forget(e, f);
		f = NULL;
	}
	if (f && c2s && f->state == FS_SYN && f->c_fwd != p->seq + 1) {
		/* a new attempt with another ISN on the same ports */
		f->c_isn = p->seq;
		f->c_fwd = f->c_rcv = f->c_una = f->c_own = p->seq + 1;
		f->c_mss = p->mss;
		f->c_tsval = p->has_ts ? pkt_get32(p->frame + p->ts_off) : 0;
	}
	if (f && c2s && f->state == FS_EST && p->seq != f->c_isn) {
		/* a new connection on a 4-tuple still tracked (a vanished client,
		 * a NAT reusing the port) */
		st(e, STAT_FLOWS_REUSED);
		if (!has_offsets(f)) {
			flow_forget(e, f);
			f = NULL;
		} else {
			/* the server decides: a challenge ACK keeps the old connection
			 * (its client then resets it), a SYN-ACK for this ISN ends it */
			f->syn_isn = p->seq;
			f->syn_mss = p->mss;
			f->syn_tsval = p->has_ts ? pkt_get32(p->frame + p->ts_off) : 0;
			f->syn_wscale = p->wscale_ok ? p->wscale : 0xff;
			f->flags2 |= FLOW_F2_NEWSYN;
			if (p->has_ts)
				f->flags2 |= FLOW_F2_NEWSYN_TS;
			else
				f->flags2 &= (uint8_t)~FLOW_F2_NEWSYN_TS;
			return ENGINE_FORWARD;
		}
	}
	if (!f) {
		if (!smtp_port(e, p->dport) || (e->c.inbound_only && !fr->outside))
			return ENGINE_FORWARD;
		f = flow_new(e, fr, p);
	}
	if (f)
		st(e, STAT_SMTP_PKTS);
	return ENGINE_FORWARD;
}

enum engine_verdict engine_rx(struct engine *e, struct engine_frame *fr, uint64_t now_ns,
			      struct engine_out *out)
{
	struct pkt p;
	struct flow *f;
	int c2s = 0;
	enum engine_verdict v;

	if (out)
		out->n = 0;
	fr->tx_flags = 0;
	switch (pkt_parse(&p, fr->data, fr->len)) {
	case PKT_TCP:
		break;
	case PKT_FRAG:
		st(e, STAT_FRAGMENTS);
		return ENGINE_FORWARD;
	case PKT_BAD:
		st(e, STAT_MALFORMED);
		return ENGINE_FORWARD;
	default:
		return ENGINE_FORWARD;
	}
	fr->l2_len = (uint8_t)p.ip_off;
	fr->l3_len = (uint8_t)(p.tcp_off - p.ip_off);
	fr->l4_len = (uint8_t)(p.pay_off - p.tcp_off);
	if (!smtp_port(e, p.dport) && !smtp_port(e, p.sport))
		return ENGINE_FORWARD;
	e->now_ns = now_ns;
	e->now_ms = (uint32_t)(now_ns / 1000000u);

	f = flow_lookup(&e->ft, p.family, p.saddr, p.daddr, p.sport, p.dport, &c2s);
	if ((p.flags & (PKT_TH_SYN | PKT_TH_ACK | PKT_TH_RST)) == PKT_TH_SYN)
		return on_syn(e, f, c2s, fr, &p);
	if (!f) {
		st(e, STAT_FLOWS_MIDSTREAM);
		return ENGINE_FORWARD;
	}
	st(e, STAT_SMTP_PKTS);

	if (f->state == FS_SYN) {
		if (csum_bad(e, fr, &p))
			return ENGINE_FORWARD;
		f->last_ms = e->now_ms;
		if ((p.flags & PKT_TH_RST) &&
		    (c2s ? p.seq == f->c_fwd : (p.flags & PKT_TH_ACK) && p.ack == f->c_fwd)) {
			/* refused or abandoned before any data: nothing to keep */
			st(e, STAT_FLOWS_CLOSED);
			flow_forget(e, f);
			return ENGINE_FORWARD;
		}
		if (!c2s && (p.flags & (PKT_TH_SYN | PKT_TH_ACK)) == (PKT_TH_SYN | PKT_TH_ACK) &&
		    p.ack == f->c_fwd) {
			syn_ack(e, f, &p);
			return ENGINE_FORWARD;
		}
		if (p.pay_len)
			/* data before the handshake was seen: nothing can be
			 * translated or decided, so it passes as it is */
			st(e, STAT_FLOWS_MIDSTREAM);
		return ENGINE_FORWARD; /* nothing to translate yet */
	}
	if (p.flags & PKT_TH_SYN) {
		if (!c2s && (f->flags2 & FLOW_F2_NEWSYN) && (p.flags & PKT_TH_ACK) &&
		    p.ack == f->syn_isn + 1 && !csum_bad(e, fr, &p)) {
			f = flow_restart(e, f);
			if (f)
				syn_ack(e, f, &p);
		}
		return ENGINE_FORWARD; /* a retransmitted SYN-ACK: no offsets before data */
	}
	if (p.flags & PKT_TH_RST)
		return on_rst(e, f, fr, &p, c2s);
	if (!seg_acceptable(e, f, fr, &p, c2s))
		/* the receiver discards it: so does the engine's state; with
		 * offsets in force its numbers would mean other bytes there */
		return has_offsets(f) ? ENGINE_DROP : ENGINE_FORWARD;
	f->last_ms = e->now_ms;
	if (c2s && f->state == FS_CLOSING && (f->flags & FLOW_F_HARVEST)) {
		/* the session was ended by the 421: only its ACKs matter */
		if (seq_lt(f->c_ack, p.ack))
			client_acked(e, f, p.ack);
		if (!f->ended && fins_acked(e, f))
			flow_end(e, f);
		return ENGINE_DROP;
	}

	v = c2s ? c2s_seg(e, f, fr, &p, out) : s2c_seg(e, f, fr, &p, out);
	if (f->state != FS_FREE && f->busy != FLOW_NONE) {
		const struct flow_busy *b = flow_busy(&e->ft, f);
		if (b->ooo_n[c2s ? 0 : 1])
			ooo_drain(e, f, fr, &p, c2s ? 0 : 1, out);
	}
	if (f->state == FS_FREE)
		return v;
	if ((f->flags & (FLOW_F_C_FIN | FLOW_F_S_FIN)) == (FLOW_F_C_FIN | FLOW_F_S_FIN) &&
	    f->state == FS_EST) {
		f->state = FS_CLOSING;
		st(e, STAT_FLOWS_CLOSED);
	}
	maybe_release(e, f);
	if (f->state == FS_CLOSING && !f->ended && fins_acked(e, f))
		flow_end(e, f);
	return v;
}

/* ---- timers ---- */

/*
 * Resend what the client or server is owed by the engine: injected text the
 * client has not acknowledged although it has everything of the server's
 * before it, and client bytes the engine acknowledged and decided that the
 * server has not acknowledged.  Returns 1 when something was resent.
 */
static int retx_flow(struct engine *e, struct flow *f, struct engine_out *out)
{
	int sent = 0;
	if (f->s2c.n) {
		const struct tcpedit_pt *pts = flow_pts(&e->ft, f, 1);
		uint32_t d = (uint32_t)f->s2c.base, toff = 0;
		for (unsigned i = 0; i < f->s2c.n; i++) {
			const struct tcpedit_pt *t = &pts[i];
			uint32_t vs = t->pos + d, ve = vs + t->ins;
			if (seq_lt(f->c_ack, ve) && seq_le(vs, f->c_ack)) {
				uint32_t from = f->c_ack;
				send_text(e, f, out, from, toff + (from - vs), ve - from, 0);
				st(e, STAT_INJECT_RETX);
				sent = 1;
			}
			toff += t->ins;
			d += t->ins - t->del;
		}
	}
	if (seq_lt(f->c_una, f->c_own) && seq_lt(f->c_una, f->c_fwd)) {
		send_c2s(e, f, out, f->c_una, seq_min(f->c_own, f->c_fwd));
		st(e, STAT_OWN_RETX);
		sent = 1;
	}
	return sent;
}

/* Is anything owed by the engine still unacknowledged? */
static int retx_pending(const struct flow *f)
{
	return f->state != FS_FREE && f->busy != FLOW_NONE &&
	       (f->s2c.n || seq_lt(f->c_una, f->c_own));
}

unsigned engine_timer(struct engine *e, uint64_t now_ns, struct engine_out *out)
{
	struct flow_table *t = &e->ft;
	unsigned n;

	if (out)
		out->n = 0;
	e->now_ns = now_ns;
	e->now_ms = (uint32_t)(now_ns / 1000000u);

	/* retransmissions */
	for (n = 0; n < ENGINE_RETX_SCAN && e->retx_head != FLOW_NONE; n++) {
		struct flow *f = &t->flows[e->retx_head];
		retx_unlink(e, f);
		if (!retx_pending(f))
			continue; /* everything acknowledged */
		if (seq_lt(e->now_ms, f->retx_ms)) {
			retx_append(e, f);
			if (e->retx_head == flow_index(t, f))
				break; /* only not-yet-due entries left */
			continue;
		}
		if (f->retx_n >= e->c.retx_max) {
			/* the peer is gone or the path is: end it cleanly */
			st(e, STAT_INJECT_GIVEUP);
			flow_reset(e, f, out);
			continue;
		}
		if (retx_flow(e, f, out)) {
			f->retx_n++;
			f->retx_ms = e->now_ms + (e->c.retx_initial_ms << f->retx_n);
		} else {
			/* owed bytes wait for a decision (a reply): look again */
			f->retx_ms = e->now_ms + e->c.retx_initial_ms;
		}
		retx_append(e, f);
	}

	/* ended flows whose linger is over, oldest first */
	for (n = 0; n < ENGINE_EXPIRE_SCAN && e->end_head != FLOW_NONE; n++) {
		struct flow *f = &t->flows[e->end_head];
		if (e->now_ms - f->end_ms < ENGINE_LINGER_MS)
			break;
		flow_forget(e, f);
	}

	/* idle expiry, a slice of the table per call */
	for (n = 0; n < ENGINE_EXPIRE_SCAN && t->max; n++) {
		struct flow *f = &t->flows[t->expire_pos];
		uint32_t limit;
		t->expire_pos = (t->expire_pos + 1) % t->max;
		if (f->state == FS_FREE)
			continue;
		limit = f->state == FS_SYN ? e->c.handshake_timeout_ms
			: f->state == FS_CLOSING ? ENGINE_CLOSING_MS
						 : e->c.idle_timeout_ms;
		if (e->now_ms - f->last_ms > limit) {
			if (f->state != FS_CLOSING)
				st(e, STAT_FLOWS_EXPIRED);
			if (f->state == FS_EST && has_offsets(f))
				flow_reset(e, f, out); /* never let it pass untranslated */
			else
				flow_forget(e, f);
		}
	}
	return out ? out->n : 0;
}
