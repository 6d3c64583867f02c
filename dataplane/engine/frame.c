/*
 * frame.c — frames of the engine's own, payload per frame, the client's
 * window, checksums (see frame.h).  Runs on the engine's lcore.
 */
#include <errno.h>
#include <string.h>

#include "frame.h"
#include "seqmap.h"

/*
 * The window the client may see in a frame acknowledging a (client
 * sequence space): no further than pin_max bytes past what the server has
 * acknowledged, so every client byte not yet acknowledged by the server fits
 * the flow's pin ring.  The edge only moves forward (c_una only grows), so
 * the window never shrinks (RFC 9293 3.8.6).  win is in the server's units.
 */
uint16_t frame_win_to_client(const struct engine *e, const struct flow *f, uint16_t win,
			      uint32_t a, int syn)
{
	uint32_t edge = f->c_una + e->c.pin_max;
	if (f->cmode == CM_OPAQUE && !seq_lt(f->c_una, f->c_own))
		return win; /* nothing is pinned any more (TLS, failed open) */
	uint32_t room = seq_lt(a, edge) ? edge - a : 0;
	if (!syn && (f->flags2 & FLOW_F2_WSCALE))
		room >>= f->s_wshift;
	return room < win ? (uint16_t)room : win;
}

/* Checksums of a frame whose payload or length changed. */
void frame_csum(struct engine *e, struct pkt *p, uint16_t *tx_flags)
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

int frame_out_take(struct engine *e, struct engine_out *out, uint16_t need)
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
int frame_build(struct engine *e, struct flow *f, int s2c, struct engine_out *out,
		       uint32_t seq, uint32_t ack, const uint8_t *pay, uint16_t len,
		       uint8_t flags)
{
	unsigned l2 = PKT_ETH_LEN + f->n_vlan * PKT_VLAN_LEN;
	unsigned l3 = f->family == 4 ? PKT_IPV4_LEN : PKT_IPV6_LEN;
	unsigned l4 = PKT_TCP_LEN + ((f->flags & FLOW_F_TS) ? 12u : 0u);
	unsigned alen = f->family == 4 ? 4u : 16u;
	int k = frame_out_take(e, out, (uint16_t)(l2 + l3 + l4 + len));
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
	pkt_put16(th + 14, s2c ? frame_win_to_client(e, f, f->s_win, ack, 0) : f->c_win);
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
	frame_csum(e, &p, &tb->tx_flags);
	return 0;
}

/*
 * Payload bytes per frame toward the client (s2c) or the server: the MSS
 * that end announced, the port's MTU, and the transmit buffers the caller
 * lends, whichever is least; opt_len is the TCP option bytes per frame.
 */
uint16_t frame_mss(const struct engine *e, const struct flow *f, int s2c, uint16_t opt_len)
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
