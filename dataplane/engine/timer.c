/*
 * timer.c — retransmissions owed by the engine, linger and idle expiry (see
 * timer.h).  Runs on the engine's lcore.
 */
#include <string.h>

#include "emit.h"
#include "seqmap.h"
#include "session.h"
#include "tcpstate.h"
#include "timer.h"

static void retx_append(struct engine *e, struct flow *f)
{
	ilist_append(&e->retx, flow_index(&e->ft, f));
	f->flags |= FLOW_F_RETX;
}

void timer_unlink(struct engine *e, struct flow *f)
{
	if (!(f->flags & FLOW_F_RETX))
		return;
	ilist_remove(&e->retx, flow_index(&e->ft, f));
	f->flags &= (uint8_t)~FLOW_F_RETX;
}

void timer_arm(struct engine *e, struct flow *f)
{
	f->retx_n = 0;
	f->retx_ms = e->now_ms + e->c.retx_initial_ms;
	if (!(f->flags & FLOW_F_RETX))
		retx_append(e, f);
}

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
				emit_text(e, f, out, from, toff + (from - vs), ve - from, 0);
				st(e, STAT_INJECT_RETX);
				sent = 1;
			}
			toff += t->ins;
			d += t->ins - t->del;
		}
	}
	if (seq_lt(f->c_una, f->c_own) && seq_lt(f->c_una, f->c_fwd)) {
		emit_c2s(e, f, out, f->c_una, seq_min(f->c_own, f->c_fwd));
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
	for (n = 0; n < ENGINE_RETX_SCAN && e->retx.head != ILIST_NONE; n++) {
		struct flow *f = &t->flows[e->retx.head];
		if (f->flags2 & FLOW_F2_DOOMED) {
			/* taken over without its state: two RSTs, room for both */
			if (out && out->cap - out->n < 2)
				break;
			timer_unlink(e, f);
			engine_doom_reset(e, f, out);
			continue;
		}
		timer_unlink(e, f);
		if (!retx_pending(f))
			continue; /* everything acknowledged */
		if (seq_lt(e->now_ms, f->retx_ms)) {
			retx_append(e, f);
			if (e->retx.head == flow_index(t, f))
				break; /* only not-yet-due entries left */
			continue;
		}
		if (f->retx_n >= e->c.retx_max) {
			/* the peer is gone or the path is: end it cleanly */
			st(e, STAT_INJECT_GIVEUP);
			tcpstate_reset(e, f, out);
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
	for (n = 0; n < ENGINE_EXPIRE_SCAN && e->ended.head != ILIST_NONE; n++) {
		struct flow *f = &t->flows[e->ended.head];
		if (e->now_ms - f->end_ms < ENGINE_LINGER_MS)
			break;
		tcpstate_forget(e, f);
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
			if (f->state == FS_EST && tcpstate_has_offsets(f))
				tcpstate_reset(e, f, out); /* never let it pass untranslated */
			else
				tcpstate_forget(e, f);
		}
	}
	return out ? out->n : 0;
}
