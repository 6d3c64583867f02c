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

static void state_hdr(struct engine_state_hdr *h, const struct engine_conf *c,
		      const struct mem_plan *m);

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
	state_hdr(&e->h, c, &m);
	*out = e;
	return 0;
}

/* ---- state that outlives the process (see engine_int.h) ---- */

#define RV(id, field)                                                                      \
	h->rv[id] = (struct engine_rv_ent){(uint16_t)offsetof(struct flow, field),          \
					   (uint16_t)sizeof(((struct flow *)0)->field)}

static void state_hdr(struct engine_state_hdr *h, const struct engine_conf *c,
		      const struct mem_plan *m)
{
	memset(h, 0, sizeof(*h));
	h->version = ENGINE_STATE_VERSION;
	h->mem_size = m->total;
	h->sz_engine = sizeof(struct engine);
	h->sz_flow = sizeof(struct flow);
	h->sz_busy = sizeof(struct flow_busy);
	h->sz_seg = sizeof(struct flow_seg);
	h->sz_pt = sizeof(struct tcpedit_pt);
	h->sz_qent = sizeof(struct flow_qent);
	h->sz_hslot = sizeof(struct harvest_slot);
	h->sz_reply = sizeof(struct smtp_reply);
	h->max_flows = c->max_flows;
	h->busy_blocks = c->busy_blocks;
	h->seg_blocks = c->seg_blocks;
	h->pin_max = c->pin_max;
	h->inject_max = c->inject_max;
	h->harvest_slots = m->hslots;
	h->cmd_max = c->cmd_max;
	h->fs_est = FS_EST;
	h->cur_flow = FLOW_NONE;
	h->rv_version = ENGINE_RVIEW_VERSION;
	h->rv_n = RV__COUNT;
	h->rv_flows_off = m->eng;
	h->rv_stride = sizeof(struct flow);
	h->rv_count = c->max_flows;
	RV(RV_STATE, state);
	RV(RV_FAMILY, family);
	RV(RV_FLAGS, flags);
	RV(RV_N_VLAN, n_vlan);
	RV(RV_C_IP, c_ip);
	RV(RV_S_IP, s_ip);
	RV(RV_C_PORT, c_port);
	RV(RV_S_PORT, s_port);
	RV(RV_MAC_C, mac_c);
	RV(RV_MAC_S, mac_s);
	RV(RV_VLAN, vlan);
	RV(RV_C_RXPORT, c_rxport);
	RV(RV_S_RXPORT, s_rxport);
	RV(RV_C_ACK, c_ack);
	RV(RV_S_ACK, s_ack);
	RV(RV_C_TSVAL, c_tsval);
	RV(RV_S_TSVAL, s_tsval);
	RV(RV_C2S, c2s);
	RV(RV_S2C, s2c);
	RV(RV_C_UNA, c_una);
	RV(RV_C_OWN, c_own);
	RV(RV_S_WIN, s_win);
	RV(RV_C_WIN, c_win);
	/* the magic last: a block with it is a complete state */
	h->magic = ENGINE_STATE_MAGIC;
}
#undef RV

/* Name the first layout value of have that differs from want. */
static int state_cmp(const struct engine_state_hdr *have, const struct engine_state_hdr *want,
		     char *why, size_t len)
{
#define CMP(f)                                                                             \
	do {                                                                               \
		if (have->f != want->f) {                                                  \
			snprintf(why, len, "%s: the state has %llu, this engine %llu", #f,  \
				 (unsigned long long)have->f, (unsigned long long)want->f); \
			return -EPROTO;                                                    \
		}                                                                          \
	} while (0)
	CMP(version);
	CMP(sz_engine);
	CMP(sz_flow);
	CMP(sz_busy);
	CMP(sz_seg);
	CMP(sz_pt);
	CMP(sz_qent);
	CMP(sz_hslot);
	CMP(sz_reply);
	CMP(max_flows);
	CMP(busy_blocks);
	CMP(seg_blocks);
	CMP(pin_max);
	CMP(inject_max);
	CMP(harvest_slots);
	CMP(cmd_max);
	CMP(fs_est);
	CMP(mem_size);
	return 0;
#undef CMP
}

size_t engine_state_size(const void *mem, size_t len)
{
	const struct engine_state_hdr *h = mem;
	if (!mem || len < sizeof(*h) || h->magic != ENGINE_STATE_MAGIC)
		return 0;
	return (size_t)h->mem_size;
}

/* Reset at the first chance: the next timer run or its next segment. */
static void doom(struct engine *e, struct flow *f)
{
	f->flags2 |= FLOW_F2_DOOMED;
	f->retx_ms = e->now_ms;
	if (!(f->flags & FLOW_F_RETX)) {
		ilist_append(&e->retx, flow_index(&e->ft, f));
		f->flags |= FLOW_F_RETX;
	}
}

void engine_doom_reset(struct engine *e, struct flow *f, struct engine_out *out)
{
	st(e, STAT_FLOWS_ADOPT_RESET);
	if (f->state != FS_EST) /* nothing to reset: no RST would be accepted */
		f->state = FS_CLOSING;
	tcpstate_reset(e, f, out);
}

int engine_adopt(void *mem, size_t len, const struct engine_conf *c,
		 const struct engine_shm *s, struct engine **out, char *why, size_t whylen)
{
	struct engine_state_hdr want;
	struct engine *e = mem;
	struct mem_plan m;
	uint8_t *p = mem, *mark;
	uint32_t kept, torn;
	int rc;

	if (engine_conf_check(c, why, whylen) != 0)
		return -EINVAL;
	if (!mem || ((uintptr_t)mem & 63u) || len < sizeof(struct engine_state_hdr) ||
	    e->h.magic != ENGINE_STATE_MAGIC) {
		snprintf(why, whylen, "no engine state");
		return -ENOENT;
	}
	plan(c, &m);
	state_hdr(&want, c, &m);
	rc = state_cmp(&e->h, &want, why, whylen);
	if (rc)
		return rc;
	if (len < m.total) {
		snprintf(why, whylen, "state block of %zu bytes, %zu needed", len, m.total);
		return -EPROTO;
	}
	mark = calloc(1, (size_t)c->busy_blocks + c->seg_blocks + 1);
	if (!mark) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	e->c = *c;
	e->own_mem = NULL;
	e->mem_size = m.total;
	engine_set_shm(e, s);
	e->rt_off = 0;
	p += m.eng;
	flow_table_relink(&e->ft, p);
	p += m.flows;
	e->hv.slots = m.hslots ? (struct harvest_slot *)p : NULL;
	e->hv.window_ms = c->harvest_window_ms;
	p += m.hv;
	e->src = p;
	p += m.src;
	e->obuf = p;
	p += m.obuf;
	e->pieces = (struct tcpedit_piece *)p;
	e->max_pieces = m.max_pieces;
	if (e->hold_n > ENGINE_HOLD_Q || e->hold_head >= ENGINE_HOLD_Q)
		e->hold_head = e->hold_n = 0; /* torn: the flows are listed again */
	torn = e->h.in_call ? e->h.cur_flow : FLOW_NONE;
	kept = flow_table_rebuild(&e->ft, mark);
	free(mark);
	/* the lists again, from the flows' own flags */
	ilist_init(&e->retx, e->ft.flows, sizeof(struct flow), offsetof(struct flow, retx));
	ilist_init(&e->ended, e->ft.flows, sizeof(struct flow), offsetof(struct flow, end));
	for (uint32_t i = 0; i < e->ft.max; i++) {
		struct flow *f = &e->ft.flows[i];
		if (f->state == FS_FREE) {
			f->flags &= (uint8_t)~FLOW_F_RETX;
			f->ended = 0;
			continue;
		}
		if (f->flags & FLOW_F_RETX)
			ilist_append(&e->retx, i);
		if (f->ended)
			ilist_append(&e->ended, i);
		if (f->flags2 & FLOW_F2_DOOMED) {
			f->flags2 &= (uint8_t)~FLOW_F2_DOOMED;
			doom(e, f); /* its block was lost (flow_table_rebuild) */
		}
	}
	stats_add(e->s.stats, STAT_FLOWS_ADOPTED, kept);
	if (torn < e->ft.max && e->ft.flows[torn].state != FS_FREE) {
		struct flow *f = &e->ft.flows[torn];
		if (tcpstate_has_offsets(f))
			doom(e, f);
		else
			tcpstate_forget(e, f); /* no offsets: it passes as it is */
	}
	e->h.in_call = 0;
	e->h.cur_flow = FLOW_NONE;
	*out = e;
	return 0;
}

/* A field of an old flow slot through the reset view; 0 when the view has
 * it at another size than this build. */
static int rv_get(const struct engine_state_hdr *h, const uint8_t *slot, unsigned id, void *dst,
		  size_t size)
{
	if (id >= h->rv_n || h->rv[id].size != size || h->rv[id].off + size > h->rv_stride)
		return 0;
	memcpy(dst, slot + h->rv[id].off, size);
	return 1;
}

int engine_import_resets(struct engine *e, const void *old, size_t len, char *why,
			 size_t whylen)
{
	const struct engine_state_hdr *h = old;
	const uint8_t *base = old;
	int n = 0;

	if (!old || len < sizeof(*h) || h->magic != ENGINE_STATE_MAGIC) {
		snprintf(why, whylen, "no engine state");
		return -ENOENT;
	}
	if (h->rv_version != ENGINE_RVIEW_VERSION || h->rv_n < RV__COUNT) {
		snprintf(why, whylen, "reset view version %u (%u fields), this engine %u (%u)",
			 h->rv_version, h->rv_n, ENGINE_RVIEW_VERSION, (unsigned)RV__COUNT);
		return -EPROTO;
	}
	if (h->rv_flows_off + (uint64_t)h->rv_stride * h->rv_count > len) {
		snprintf(why, whylen, "reset view beyond the state block");
		return -EPROTO;
	}
	for (uint32_t i = 0; i < h->rv_count; i++) {
		const uint8_t *slot = base + h->rv_flows_off + (size_t)i * h->rv_stride;
		struct flow v, *f;
		int ok = 1;
		memset(&v, 0, sizeof(v));
		ok &= rv_get(h, slot, RV_STATE, &v.state, sizeof(v.state));
		if (!ok || v.state != h->fs_est)
			continue;
		ok &= rv_get(h, slot, RV_FAMILY, &v.family, sizeof(v.family));
		ok &= rv_get(h, slot, RV_FLAGS, &v.flags, sizeof(v.flags));
		ok &= rv_get(h, slot, RV_N_VLAN, &v.n_vlan, sizeof(v.n_vlan));
		ok &= rv_get(h, slot, RV_C_IP, v.c_ip, sizeof(v.c_ip));
		ok &= rv_get(h, slot, RV_S_IP, v.s_ip, sizeof(v.s_ip));
		ok &= rv_get(h, slot, RV_C_PORT, &v.c_port, sizeof(v.c_port));
		ok &= rv_get(h, slot, RV_S_PORT, &v.s_port, sizeof(v.s_port));
		ok &= rv_get(h, slot, RV_MAC_C, v.mac_c, sizeof(v.mac_c));
		ok &= rv_get(h, slot, RV_MAC_S, v.mac_s, sizeof(v.mac_s));
		ok &= rv_get(h, slot, RV_VLAN, v.vlan, sizeof(v.vlan));
		ok &= rv_get(h, slot, RV_C_RXPORT, &v.c_rxport, sizeof(v.c_rxport));
		ok &= rv_get(h, slot, RV_S_RXPORT, &v.s_rxport, sizeof(v.s_rxport));
		ok &= rv_get(h, slot, RV_C_ACK, &v.c_ack, sizeof(v.c_ack));
		ok &= rv_get(h, slot, RV_S_ACK, &v.s_ack, sizeof(v.s_ack));
		ok &= rv_get(h, slot, RV_C_TSVAL, &v.c_tsval, sizeof(v.c_tsval));
		ok &= rv_get(h, slot, RV_S_TSVAL, &v.s_tsval, sizeof(v.s_tsval));
		ok &= rv_get(h, slot, RV_C2S, &v.c2s, sizeof(v.c2s));
		ok &= rv_get(h, slot, RV_S2C, &v.s2c, sizeof(v.s2c));
		ok &= rv_get(h, slot, RV_C_UNA, &v.c_una, sizeof(v.c_una));
		ok &= rv_get(h, slot, RV_C_OWN, &v.c_own, sizeof(v.c_own));
		if (!ok) {
			snprintf(why, whylen, "reset view field sizes differ from this engine's");
			return -EPROTO;
		}
		if ((v.family != 4 && v.family != 6) || v.n_vlan > PKT_VLAN_BYTES / PKT_VLAN_LEN ||
		    !tcpstate_has_offsets(&v))
			continue; /* without offsets it passes correctly untracked */
		f = flow_insert(&e->ft, v.family, v.c_ip, v.s_ip, v.c_port, v.s_port);
		if (!f) {
			st(e, STAT_FLOWS_FULL);
			continue;
		}
		f->state = FS_EST;
		f->flags = (uint8_t)(v.flags & FLOW_F_TS);
		f->n_vlan = v.n_vlan;
		memcpy(f->mac_c, v.mac_c, sizeof(f->mac_c));
		memcpy(f->mac_s, v.mac_s, sizeof(f->mac_s));
		memcpy(f->vlan, v.vlan, sizeof(f->vlan));
		f->c_rxport = v.c_rxport;
		f->s_rxport = v.s_rxport;
		f->c_ack = v.c_ack;
		f->s_ack = v.s_ack;
		f->c_tsval = v.c_tsval;
		f->s_tsval = v.s_tsval;
		f->c2s.base = v.c2s.base ? v.c2s.base : 1; /* offsets in force: no edit list */
		f->last_ms = e->now_ms;
		doom(e, f);
		n++;
	}
	return n;
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

static enum engine_verdict rx_frame(struct engine *e, struct engine_frame *fr, uint64_t now_ns,
				    struct engine_out *out);

/* in_call brackets the call for a take-over after a kill (engine_int.h); the
 * signal fences keep the compiler from moving state stores across them. */
enum engine_verdict engine_rx(struct engine *e, struct engine_frame *fr, uint64_t now_ns,
			      struct engine_out *out)
{
	enum engine_verdict v;
	e->h.cur_flow = FLOW_NONE;
	e->h.in_call = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	v = rx_frame(e, fr, now_ns, out);
	if (e->h.cur_flow != FLOW_NONE) {
		struct flow *f = &e->ft.flows[e->h.cur_flow];
		if (e->hold_on && (f->state == FS_EST || (f->state != FS_FREE &&
							   tcpstate_has_offsets(f))) &&
		    !(f->flags2 & (FLOW_F2_HELD | FLOW_F2_DOOMED)))
			engine_hold_note(e, f, 1); /* full: again at its next segment */
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	e->h.in_call = 0;
	return v;
}

static void hold_entry(const struct flow *f, int add, struct engine_hold *h)
{
	memset(h, 0, sizeof(*h));
	h->add = (uint8_t)add;
	h->family = f->family;
	h->c_port = f->c_port;
	h->s_port = f->s_port;
	memcpy(h->c_ip, f->c_ip, sizeof(h->c_ip));
	memcpy(h->s_ip, f->s_ip, sizeof(h->s_ip));
}

void engine_hold_enable(struct engine *e, int on)
{
	e->hold_on = on ? 1u : 0u;
}

int engine_hold_note(struct engine *e, struct flow *f, int add)
{
	if (!e->hold_on) {
		f->flags2 &= (uint8_t)~FLOW_F2_HELD;
		return 0;
	}
	if (e->hold_n >= ENGINE_HOLD_Q) {
		st(e, STAT_XDP_HOLD_LOST);
		return -1;
	}
	hold_entry(f, add, &e->hold_q[(e->hold_head + e->hold_n) % ENGINE_HOLD_Q]);
	e->hold_n++;
	if (add)
		f->flags2 |= FLOW_F2_HELD;
	else
		f->flags2 &= (uint8_t)~FLOW_F2_HELD;
	return 0;
}

unsigned engine_hold_changes(struct engine *e, struct engine_hold *out, unsigned max)
{
	unsigned n = 0;
	while (n < max && e->hold_n) {
		out[n++] = e->hold_q[e->hold_head];
		e->hold_head = (e->hold_head + 1) % ENGINE_HOLD_Q;
		e->hold_n--;
	}
	return n;
}

unsigned engine_hold_all(struct engine *e, uint32_t *cursor, struct engine_hold *out,
			 unsigned max)
{
	unsigned n = 0;
	for (; *cursor < e->ft.max && n < max; (*cursor)++) {
		const struct flow *f = &e->ft.flows[*cursor];
		if (f->state != FS_FREE && (f->flags2 & FLOW_F2_HELD))
			hold_entry(f, 1, &out[n++]);
	}
	return n;
}

static enum engine_verdict rx_frame(struct engine *e, struct engine_frame *fr, uint64_t now_ns,
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
	if (f) {
		e->h.cur_flow = flow_index(&e->ft, f);
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		if (f->flags2 & FLOW_F2_DOOMED) {
			/* taken over without its state: end it on both sides; the
			 * endpoints' retransmissions of this segment meet no flow */
			engine_doom_reset(e, f, out);
			return ENGINE_DROP;
		}
	}
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
