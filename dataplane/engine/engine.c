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
 * The stream model, per flow (client sequence space unless said otherwise):
 *   client -> server: c_una <= c_fwd <= c_rcv.  Bytes below c_una the server
 *     has acknowledged.  [c_una, c_rcv) are kept in the flow's pin ring (the
 *     window the client sees is clamped so they always fit).  Bytes below
 *     c_fwd are decided (forwarded, or removed by a c2s edit point); every
 *     later copy of them is rebuilt from the ring, so a resend with other
 *     bytes never reaches the server ("pin what was decided").  [c_fwd,
 *     c_rcv) are held: a partial command line, or bytes after AUTH, DATA or
 *     STARTTLS waiting for the reply that says how they read.  Held bytes are
 *     acknowledged by the engine at once (c_own): the sender never waits for
 *     them, and the engine sends them itself once decided and resends them
 *     until the server acknowledges them (engine_timer).
 *   Only segments the receiver would accept change anything: checksum good,
 *     ACK set, ACK within what was sent, no stale timestamp (RFC 9293, 7323);
 *     RSTs and SYNs on live flows are judged as RFC 5961 receivers do.
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
 *     new SYN finds the table full.  A flow with offsets whose state would be
 *     lost (idle expiry, an answer given up) is reset on both sides instead.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "engine.h"
#include "engine_int.h"
#include "flow.h"
#include "harvest.h"
#include "ooo.h"
#include "pkt.h"
#include "stream.h"
#include "tcpstate.h"

/* ---- configuration and set-up ---- */

#define ALIGN64(x) (((x) + 63u) & ~(size_t)63u)

struct mem_plan {
	size_t eng, flows, hv, src, obuf, pieces, total;
	unsigned max_pieces;
	uint32_t hslots;
};

static uint32_t pow2_ceil(uint32_t v)
{
	uint32_t p = 1;
	while (p < v && p < (1u << 31))
		p <<= 1;
	return p;
}

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
	ilist_init(&e->retx, e->ft.flows, sizeof(struct flow), offsetof(struct flow, retx));
	ilist_init(&e->ended, e->ft.flows, sizeof(struct flow), offsetof(struct flow, end));
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

int engine_is_smtp(const struct engine *e, const uint8_t *frame, uint16_t len)
{
	struct pkt p;
	if (pkt_parse(&p, (uint8_t *)frame, len) != PKT_TCP)
		return 0;
	return engine_smtp_port(e, p.sport) || engine_smtp_port(e, p.dport);
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
	if (!engine_smtp_port(e, p.dport) && !engine_smtp_port(e, p.sport))
		return ENGINE_FORWARD;
	e->now_ns = now_ns;
	e->now_ms = (uint32_t)(now_ns / 1000000u);

	f = flow_lookup(&e->ft, p.family, p.saddr, p.daddr, p.sport, p.dport, &c2s);
	if ((p.flags & (PKT_TH_SYN | PKT_TH_ACK | PKT_TH_RST)) == PKT_TH_SYN)
		return tcpstate_syn(e, f, c2s, fr, &p);
	if (!f) {
		st(e, STAT_FLOWS_MIDSTREAM);
		return ENGINE_FORWARD;
	}
	st(e, STAT_SMTP_PKTS);

	if (f->state == FS_SYN)
		return tcpstate_handshake(e, f, c2s, fr, &p);
	if (p.flags & PKT_TH_SYN)
		return tcpstate_syn_ack_live(e, f, c2s, fr, &p);
	if (p.flags & PKT_TH_RST)
		return tcpstate_rst(e, f, fr, &p, c2s);
	switch (tcpstate_acceptable(e, f, fr, &p, c2s)) {
	case TS_ACCEPT:
		break;
	case TS_DROPPED_ANYWAY:
		/* the receiver discards it: so does the engine's state; with
		 * offsets in force its numbers would mean other bytes there */
		return tcpstate_has_offsets(f) ? ENGINE_DROP : ENGINE_FORWARD;
	default:
		return ENGINE_DROP;
	}
	f->last_ms = e->now_ms;
	if (c2s && f->state == FS_CLOSING && (f->flags & FLOW_F_HARVEST)) {
		/* the session was ended by the 421: only its ACKs matter */
		if (seq_lt(f->c_ack, p.ack))
			stream_client_acked(e, f, p.ack);
		if (!f->ended && tcpstate_fins_acked(e, f))
			tcpstate_end(e, f);
		return ENGINE_DROP;
	}

	v = c2s ? stream_c2s(e, f, fr, &p, out) : stream_s2c(e, f, fr, &p, out);
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
	tcpstate_release(e, f);
	if (f->state == FS_CLOSING && !f->ended && tcpstate_fins_acked(e, f))
		tcpstate_end(e, f);
	return v;
}
