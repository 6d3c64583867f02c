/*
 * stream.c — the stream editor proper (DESIGN.md, "The data plane's TCP
 * stream editor"; the stream model is in engine.c's header).  Runs on the
 * engine's lcore.
 */
#include <string.h>

#include "emit.h"
#include "frame.h"
#include "ooo.h"
#include "seqmap.h"
#include "session.h"
#include "smtp.h"
#include "stream.h"
#include "tcpedit.h"
#include "tcpstate.h"
#include "timer.h"

static void harvest_close(struct engine *e, struct flow *f, struct engine_out *out)
{
	/* reset the server side at the next byte it expects */
	uint32_t seq = map_c2s(e, f, f->c_fwd);
	frame_build(e, f, 0, out, seq, f->s_fwd, NULL, 0, PKT_TH_RST | PKT_TH_ACK);
	/* and end the client's side after the 421 */
	frame_build(e, f, 1, out, map_s2c_hi(e, f, f->s_fwd), ack_for_client(e, f, f->s_ack), NULL,
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
		emit_text(e, f, out, v0, toff, ins, 0);
	}
	st(e, STAT_INJECTED);
	timer_arm(e, f);
	if (close)
		harvest_close(e, f, out);
}

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
void stream_client_acked(struct engine *e, struct flow *f, uint32_t v)
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
	if (!seq_lt(f->c_fwd, f->c_rcv))
		return;
	if (!c_parsed(f)) {
		/* turned opaque (TLS, failed open) with bytes held: they pass */
		f->c_fwd = f->c_rcv;
		return;
	}
	if (!b) {
		flow_pin_get(&e->ft, f, f->c_fwd, e->src, f->c_rcv - f->c_fwd);
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
		emit_c2s(e, f, out, old_fwd, f->c_fwd);
		timer_arm(e, f);
	}
}

enum engine_verdict stream_c2s(struct engine *e, struct flow *f, struct engine_frame *fr,
				   struct pkt *p, struct engine_out *out)
{
	uint32_t s = p->seq, end = s + p->pay_len, x, y, empty_seq;
	uint32_t old_fwd = f->c_fwd, old_rcv = f->c_rcv;
	const uint8_t *pay = p->frame + p->pay_off, *src = pay;
	int fin = (p->flags & PKT_TH_FIN) != 0, fin_ok, news = 0, own = 0, resent;

	if (!seq_lt(f->c_rcv, p->seq))
		tcpstate_note_ts(f, p, 1);
	if (p->win != f->c_win || p->sack_n)
		news = 1;
	f->c_win = p->win;
	if (seq_lt(f->c_ack, p->ack))
		stream_client_acked(e, f, p->ack);
	if (unmap_s2c(e, f, p->ack) != f->ack_to_s)
		news = 1;
	refresh_una(e, f);

	if (p->pay_len == 0 && !fin) {
		/* a pure ACK goes on even when it says nothing new: duplicate
		 * ACKs drive the server's fast retransmission */
		empty_seq = map_c2s(e, f, seq_lt(s, f->c_fwd) ? s : f->c_fwd);
		return emit_segment(e, f, fr, p, 0, src, s, s, s, empty_seq, 1, 1, out);
	}
	if (seq_lt(f->c_rcv, s)) {
		/* a gap before it: keep it for later, pass the ACK on, and tell
		 * the client what its receiver would: a duplicate ACK, so its
		 * fast retransmission fills the gap */
		if (ooo_store(e, f, p, 0) == 0)
			frame_build(e, f, 1, out, map_s2c_hi(e, f, f->s_fwd), f->ack_to_c, NULL, 0,
				    PKT_TH_ACK);
		empty_seq = map_c2s(e, f, f->c_fwd);
		return emit_segment(e, f, fr, p, 0, src, s, s, s, empty_seq, 0, news, out);
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
			session_failopen(e, f, MSG_FO_PIN);
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
		flow_pin_put(&e->ft, f, from, pay + (from - s), n);
		f->c_rcv = from + n;
	}
	if (resent) {
		uint32_t lo = seq_max(s, f->c_una), hi = seq_min(end, old_rcv);
		st(e, STAT_RETRANS);
		if (seq_lt(lo, hi) && flow_pin_differs(&e->ft, f, lo, pay + (lo - s), hi - lo))
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
	refresh_una(e, f); /* removals at the server's ACK count as received */

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
		flow_pin_get(&e->ft, f, x, e->src, y - x);
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
			emit_segment(e, f, fr, p, 0, src, s, x, y, empty_seq, fin && fin_ok, news, out);
		if (own) {
			st(e, STAT_HELD_ACKED);
			timer_arm(e, f);
		}
		if (own || (x == y && p->pay_len && seq_le(p->seq + p->pay_len, f->c_fwd)))
			/* held bytes the engine owns, or a resent command it
			 * removed (the server never acknowledges it): the ACK
			 * comes from the engine, or the client resends forever */
			frame_build(e, f, 1, out, map_s2c_hi(e, f, f->s_fwd),
				    ack_for_client(e, f, f->s_ack), NULL, 0, PKT_TH_ACK);
		inject_alone(e, f, out);
		return v;
	}
}

enum engine_verdict stream_s2c(struct engine *e, struct flow *f, struct engine_frame *fr,
				   struct pkt *p, struct engine_out *out)
{
	uint32_t s = p->seq, end = s + p->pay_len, x = s, y = s, ins = 0;
	const uint8_t *src = p->frame + p->pay_off;
	int fin = (p->flags & PKT_TH_FIN) != 0, fin_ok = 1, news = 0, close = 0;
	enum engine_verdict v;

	if (!seq_lt(f->s_fwd, p->seq))
		tcpstate_note_ts(f, p, 0);
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
		return emit_segment(e, f, fr, p, 1, src, s, s, s, map_s2c_hi(e, f, s), 1, 1, out);
	if (seq_lt(f->s_fwd, s)) {
		if (ooo_store(e, f, p, 1) == 0)
			frame_build(e, f, 0, out, map_c2s(e, f, f->c_fwd), f->ack_to_s, NULL, 0,
				    PKT_TH_ACK);
		return emit_segment(e, f, fr, p, 1, src, s, s, s, map_s2c_hi(e, f, f->s_fwd), 0, news,
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
	v = emit_segment(e, f, fr, p, 1, src, s, x, y, map_s2c_hi(e, f, end), fin_ok, news, out);
	if (x == y && p->pay_len && !close)
		/* a resend the client already has: its ACK comes from us */
		frame_build(e, f, 0, out, map_c2s(e, f, f->c_fwd), unmap_s2c(e, f, f->c_ack),
			    NULL, 0, PKT_TH_ACK);
	if (ins)
		timer_arm(e, f);
	if (close) {
		harvest_close(e, f, out);
		return v;
	}
	c2s_release(e, f, out);
	inject_alone(e, f, out);
	return v;
}
