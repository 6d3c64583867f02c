/*
 * tcpstate.c — a flow's TCP life (see tcpstate.h).  Runs on the engine's lcore.
 */
#include <errno.h>
#include <string.h>

#include "frame.h"
#include "seqmap.h"
#include "session.h"
#include "tcpstate.h"
#include "timer.h"

/* What a client's SYN says, kept to start (or restart) a flow. */
struct syn_info {
	uint32_t isn;
	uint16_t mss;
	uint8_t ts, wscale_ok, wscale;
	uint32_t tsval;
};

static void ended_unlink(struct engine *e, struct flow *f)
{
	if (!f->ended)
		return;
	ilist_remove(&e->ended, flow_index(&e->ft, f));
	f->ended = 0;
}

void tcpstate_forget(struct engine *e, struct flow *f)
{
	if (f->flags2 & FLOW_F2_HELD)
		engine_hold_note(e, f, 0);
	timer_unlink(e, f);
	ended_unlink(e, f);
	flow_remove(&e->ft, f);
}

/* Does the flow's state matter to its endpoints?  Offsets in force, or
 * client bytes the engine acknowledged itself and must still deliver. */
int tcpstate_has_offsets(const struct flow *f)
{
	return f->c2s.base || f->s2c.base || f->c2s.n || f->s2c.n || seq_lt(f->c_una, f->c_own);
}

/*
 * The flow is over (RST, or both FINs acknowledged): nothing of it needs
 * parsing any more.  Without offsets a late segment passes correctly
 * untracked, so the flow goes now; with offsets it lingers (ENGINE_LINGER_MS)
 * on the ended list, first in line when a new flow needs a slot.
 */
void tcpstate_end(struct engine *e, struct flow *f)
{
	uint32_t idx = flow_index(&e->ft, f);
	timer_unlink(e, f);
	if (!tcpstate_has_offsets(f)) {
		tcpstate_forget(e, f);
		return;
	}
	if (f->ended)
		return;
	f->ended = 1;
	f->end_ms = e->now_ms;
	ilist_append(&e->ended, idx);
}

/* Give the busy block back once nothing needs it. */
void tcpstate_release(struct engine *e, struct flow *f)
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

/*
 * Reset both ends, each at the sequence number it expects next (RFC 5961
 * 3.2: only an exact match resets), and forget the flow.  For flows with
 * offsets whose state is being lost: a clean end instead of a silent desync.
 */
void tcpstate_reset(struct engine *e, struct flow *f, struct engine_out *out)
{
	if (f->state == FS_EST) {
		frame_build(e, f, 0, out, f->s_ack, 0, NULL, 0, PKT_TH_RST);
		frame_build(e, f, 1, out, f->c_ack, 0, NULL, 0, PKT_TH_RST);
		st(e, STAT_FLOWS_RESET);
	}
	tcpstate_forget(e, f);
}

/* Remember the newest timestamp of each end from an in-order segment (PAWS's
 * TS.Recent, RFC 7323 4.3; and what our own frames carry). */
void tcpstate_note_ts(struct flow *f, const struct pkt *p, int c2s)
{
	uint32_t *r = c2s ? &f->c_tsval : &f->s_tsval, v;
	if (!p->has_ts)
		return;
	v = pkt_get32(p->frame + p->ts_off);
	if (seq_lt(*r, v))
		*r = v;
}

/* A frame the receiver's IP or TCP layer drops: a bad header checksum
 * (IPv4) or TCP checksum, verified here when the port gave no verdict. */
int tcpstate_csum_bad(struct engine *e, const struct engine_frame *fr, const struct pkt *p)
{
	if (fr->rx_csum == ENGINE_RXCSUM_GOOD)
		return 0;
	if (fr->rx_csum == ENGINE_RXCSUM_BAD || !pkt_ip_csum_ok(p) || !pkt_tcp_csum_ok(p)) {
		st(e, STAT_BAD_CSUM);
		return 1;
	}
	return 0;
}

/*
 * Would the receiving TCP accept this (non-SYN, non-RST) segment?  Only then
 * may it be parsed or change any state (RFC 9293 3.10.7.4): checksum good,
 * ACK bit set, acknowledging nothing never sent, and (RFC 7323 5.3) no
 * timestamp older than the newest of an in-order segment.  Bytes outside the
 * window need no check here: they are pinned like any other once decided.
 * Returns TS_ACCEPT, or why not: TS_DROPPED_ANYWAY when the receiver
 * certainly drops it (bad checksum, no ACK bit: forwarding it untouched is
 * harmless), TS_REFUSE when the engine's judgement could be stricter than
 * the receiver's (it is then dropped: at worst the sender resends it, never
 * does the server keep bytes the engine did not parse).
 */
int tcpstate_acceptable(struct engine *e, struct flow *f, const struct engine_frame *fr,
			const struct pkt *p, int c2s)
{
	uint32_t sent;
	if (tcpstate_csum_bad(e, fr, p))
		return TS_DROPPED_ANYWAY;
	if (!(p->flags & PKT_TH_ACK)) {
		st(e, STAT_SEG_UNACCEPTABLE);
		return TS_DROPPED_ANYWAY;
	}
	sent = c2s ? map_s2c_hi(e, f, f->s_fwd) : map_c2s(e, f, f->c_fwd);
	if (seq_lt(sent + 1, p->ack) ||
	    ((f->flags & FLOW_F_TS) && p->has_ts &&
	     seq_lt(pkt_get32(p->frame + p->ts_off), c2s ? f->c_tsval : f->s_tsval))) {
		st(e, STAT_SEG_UNACCEPTABLE);
		return TS_REFUSE;
	}
	return TS_ACCEPT;
}

int tcpstate_fins_acked(const struct engine *e, const struct flow *f)
{
	int s_fin = (f->flags & (FLOW_F_S_FIN | FLOW_F_HARVEST)) != 0 &&
		    seq_lt(map_s2c_hi(e, f, f->s_fwd), f->c_ack);
	if (f->flags & FLOW_F_HARVEST)
		return s_fin;
	return s_fin && (f->flags & FLOW_F_C_FIN) && seq_lt(map_c2s(e, f, f->c_fwd), f->s_ack);
}

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
		if (tcpstate_has_offsets(f) || f->busy != FLOW_NONE)
			continue;
		if (!best || seq_lt(f->last_ms, best->last_ms))
			best = f;
	}
	return best;
}

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
		struct flow *v = e->ended.head != ILIST_NONE && e->ft.free_head == FLOW_NONE
					 ? &e->ft.flows[e->ended.head]
					 : evict_one(e);
		if (v) {
			tcpstate_forget(e, v);
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
static struct flow *tcpstate_restart(struct engine *e, struct flow *f)
{
	struct flow keep = *f;
	struct syn_info si = {f->syn_isn, f->syn_mss, (f->flags2 & FLOW_F2_NEWSYN_TS) != 0,
			      f->syn_wscale != 0xff, f->syn_wscale != 0xff ? f->syn_wscale : 0, 0};
	struct flow *n;
	tcpstate_forget(e, f);
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
static void tcpstate_syn_ack(struct engine *e, struct flow *f, struct pkt *p)
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
	put16_fix(th + 14, th + 16, frame_win_to_client(e, f, p->win, f->c_fwd, 1));
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
	/* a FIN the receiver has takes one more sequence number */
	if (c2s)
		return seq_le(f->c_una, p->seq) &&
		       seq_le(p->seq, f->c_rcv + ((f->flags & FLOW_F_C_FIN) ? 1u : 0u));
	return seq_le(unmap_s2c(e, f, f->c_ack), p->seq) &&
	       seq_le(p->seq, f->s_fwd + ((f->flags & FLOW_F_S_FIN) ? 1u : 0u));
}

enum engine_verdict tcpstate_rst(struct engine *e, struct flow *f, struct engine_frame *fr,
				  struct pkt *p, int c2s)
{
	uint8_t *th = p->frame + p->tcp_off;
	uint32_t seq;
	if (tcpstate_csum_bad(e, fr, p))
		return tcpstate_has_offsets(f) ? ENGINE_DROP : ENGINE_FORWARD;
	if (!rst_plausible(e, f, p, c2s)) {
		/* the receiver ignores it (or answers a challenge ACK, which
		 * would only confirm the connection): keep the flow */
		st(e, STAT_RST_IGNORED);
		return tcpstate_has_offsets(f) ? ENGINE_DROP : ENGINE_FORWARD;
	}
	seq = c2s ? map_c2s(e, f, p->seq) : map_s2c_hi(e, f, p->seq);
	put32_fix(th + 4, th + 16, seq);
	if (p->flags & PKT_TH_ACK)
		put32_fix(th + 8, th + 16,
			  c2s ? unmap_s2c(e, f, p->ack) : ack_for_client(e, f, p->ack));
	if (f->state != FS_CLOSING)
		st(e, STAT_FLOWS_CLOSED);
	f->state = FS_CLOSING;
	tcpstate_end(e, f);
	return ENGINE_FORWARD;
}

/* A SYN with no ACK: a new flow, a retried handshake, or a new connection on
 * a tracked 4-tuple. */
enum engine_verdict tcpstate_syn(struct engine *e, struct flow *f, int c2s,
				  struct engine_frame *fr, struct pkt *p)
{
	if (tcpstate_csum_bad(e, fr, p))
		return ENGINE_FORWARD;
	if (f && f->state == FS_CLOSING) {
		tcpstate_forget(e, f);
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
		if (!tcpstate_has_offsets(f)) {
			tcpstate_forget(e, f);
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
		if (!engine_smtp_port(e, p->dport) || (e->c.inbound_only && !fr->outside))
			return ENGINE_FORWARD;
		f = flow_new(e, fr, p);
	}
	if (f)
		st(e, STAT_SMTP_PKTS);
	return ENGINE_FORWARD;
}

/* A segment of a flow whose handshake is not complete. */
enum engine_verdict tcpstate_handshake(struct engine *e, struct flow *f, int c2s,
				       struct engine_frame *fr, struct pkt *p)
{
	if (tcpstate_csum_bad(e, fr, p))
		return ENGINE_FORWARD;
	f->last_ms = e->now_ms;
	if ((p->flags & PKT_TH_RST) &&
	    (c2s ? p->seq == f->c_fwd : (p->flags & PKT_TH_ACK) && p->ack == f->c_fwd)) {
		/* refused or abandoned before any data: nothing to keep */
		st(e, STAT_FLOWS_CLOSED);
		tcpstate_forget(e, f);
		return ENGINE_FORWARD;
	}
	if (!c2s && (p->flags & (PKT_TH_SYN | PKT_TH_ACK)) == (PKT_TH_SYN | PKT_TH_ACK) &&
	    p->ack == f->c_fwd) {
		tcpstate_syn_ack(e, f, p);
		return ENGINE_FORWARD;
	}
	if (p->pay_len)
		/* data before the handshake was seen: nothing can be translated
		 * or decided, so it passes as it is */
		st(e, STAT_FLOWS_MIDSTREAM);
	return ENGINE_FORWARD; /* nothing to translate yet */
}

/* A SYN-ACK on an established flow: a retransmission (passes; no offsets
 * before data), or the server taking a new connection on this 4-tuple. */
enum engine_verdict tcpstate_syn_ack_live(struct engine *e, struct flow *f, int c2s,
					  struct engine_frame *fr, struct pkt *p)
{
	if (!c2s && (f->flags2 & FLOW_F2_NEWSYN) && (p->flags & PKT_TH_ACK) &&
	    p->ack == f->syn_isn + 1 && !tcpstate_csum_bad(e, fr, p)) {
		f = tcpstate_restart(e, f);
		if (f)
			tcpstate_syn_ack(e, f, p);
	}
	return ENGINE_FORWARD;
}
