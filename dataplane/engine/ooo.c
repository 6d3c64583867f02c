/*
 * ooo.c — the out-of-order queue (see ooo.h).  Runs on the engine's lcore.
 */
#include <string.h>

#include "frame.h"
#include "ooo.h"
#include "stream.h"

/* Keep an out-of-order segment for later; 0 stored, -1 not. */
int ooo_store(struct engine *e, struct flow *f, const struct pkt *p, int dir)
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

/*
 * Out-of-order segments that became in order: run them through the same
 * path as a received frame, built in a lent buffer from the current frame's
 * headers.  They were checked when stored.
 */
void ooo_drain(struct engine *e, struct flow *f, struct engine_frame *fr,
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
		k = frame_out_take(e, out, (uint16_t)(cur->pay_off + sg->len));
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
				dir == 0 ? stream_c2s(e, f, &nf, &q, &rest) : stream_s2c(e, f, &nf, &q, &rest);
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
