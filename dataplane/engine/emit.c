/*
 * emit.c — re-emitting segments through the edit lists, injected text, and
 * client bytes the engine sends itself (see emit.h).  Runs on the engine's
 * lcore.
 */
#include <string.h>

#include "emit.h"
#include "frame.h"
#include "seqmap.h"
#include "session.h"
#include "tcpedit.h"

/* Send view bytes [vseq, vseq+len) of injected text (offset toff) to the client. */
void emit_text(struct engine *e, struct flow *f, struct engine_out *out, uint32_t vseq,
		      uint32_t toff, uint32_t len, uint8_t extra_flags)
{
	uint16_t mss = frame_mss(e, f, 1, (f->flags & FLOW_F_TS) ? 12 : 0);
	uint32_t ack = ack_for_client(e, f, f->s_ack);
	while (len) {
		uint16_t n = (uint16_t)(len < mss ? len : mss);
		uint8_t fl = PKT_TH_ACK | (n == len ? (PKT_TH_PSH | extra_flags) : 0);
		session_text_copy(e, f, toff, n, e->obuf);
		if (frame_build(e, f, 1, out, vseq, ack, e->obuf, n, fl) != 0)
			return;
		f->ack_to_c = ack;
		vseq += n;
		toff += n;
		len -= n;
	}
}

/*
 * Send the view of client bytes [x, y) from the pin ring to the server in
 * frames of our own (bytes the engine decided after their segment went by,
 * or owns and resends).  Removed ranges are left out, as in every copy.
 */
void emit_c2s(struct engine *e, struct flow *f, struct engine_out *out, uint32_t x,
		     uint32_t y)
{
	uint8_t *ob = e->obuf;
	uint16_t mss = frame_mss(e, f, 0, (f->flags & FLOW_F_TS) ? 12 : 0);
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
		flow_pin_get(&e->ft, f, e->pieces[i].from, ob + total, e->pieces[i].len);
		total += e->pieces[i].len;
	}
	while (done < total) {
		uint16_t n = (uint16_t)(total - done < mss ? total - done : mss);
		uint8_t fl = PKT_TH_ACK | (done + n == total ? PKT_TH_PSH : 0);
		if (frame_build(e, f, 0, out, vstart + done, f->ack_to_s, ob + done, n, fl) != 0)
			return;
		done += n;
	}
}

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
enum engine_verdict emit_segment(struct engine *e, struct flow *f, struct engine_frame *fr,
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
			put16_fix(th + 14, ck, frame_win_to_client(e, f, p->win, a, 0));
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
			frame_csum(e, p, &fr->tx_flags);
		return ENGINE_FORWARD;
	}
	if (total == 0) {
		if (!(flags & (PKT_TH_FIN | PKT_TH_RST | PKT_TH_SYN)) && !news)
			return ENGINE_DROP;
		pkt_put32(th + 4, vstart);
		pkt_set_ip_len(p, 0);
		fr->len = p->ip_end;
		frame_csum(e, p, &fr->tx_flags);
		return ENGINE_FORWARD;
	}

	/* compose the new payload, then cut it into frames */
	{
		uint8_t *ob = e->obuf;
		uint32_t off = 0, done = 0, room;
		uint16_t mss = frame_mss(e, f, s2c, (uint16_t)(p->pay_off - p->tcp_off - PKT_TCP_LEN));
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
			frame_csum(e, p, &fr->tx_flags);
			done = n;
		}
		/* the rest in lent buffers, headers cloned from the first */
		while (done < total) {
			uint32_t n = total - done < mss ? total - done : mss;
			int k = frame_out_take(e, out, (uint16_t)(hdr + n));
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
			frame_csum(e, &q, &tb->tx_flags);
			done += n;
		}
	}
	return ENGINE_FORWARD;
}
