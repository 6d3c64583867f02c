/*
 * pkt.c — frame parsing and checksums for the engine (see pkt.h).
 * Runs on the worker lcore that owns the frame.
 */
#include <string.h>

#include "pkt.h"

#define TCPOPT_EOL 0u
#define TCPOPT_NOP 1u
#define TCPOPT_MSS 2u
#define TCPOPT_WSCALE 3u
#define TCPOPT_SACK_OK 4u
#define TCPOPT_SACK 5u
#define TCPOPT_TS 8u

#define IPPROTO_TCP_ 6u
#define V6_HOPOPTS 0u
#define V6_ROUTING 43u
#define V6_FRAGMENT 44u
#define V6_DSTOPTS 60u

/* Walk the TCP options; malformed options end the walk (the segment still
 * parses: options are not needed to forward it). */
static void parse_tcp_opts(struct pkt *p, const uint8_t *o, const uint8_t *end)
{
	while (o < end) {
		uint8_t kind = o[0], len;
		if (kind == TCPOPT_EOL)
			return;
		if (kind == TCPOPT_NOP) {
			o++;
			continue;
		}
		if (o + 2 > end)
			return;
		len = o[1];
		if (len < 2 || o + len > end)
			return;
		switch (kind) {
		case TCPOPT_MSS:
			if (len == 4)
				p->mss = pkt_get16(o + 2);
			break;
		case TCPOPT_WSCALE:
			p->wscale_ok = len == 3;
			if (len == 3) /* RFC 7323 2.3: a shift over 14 is taken as 14 */
				p->wscale = o[2] > 14 ? 14 : o[2];
			break;
		case TCPOPT_SACK_OK:
			p->sack_ok = len == 2;
			break;
		case TCPOPT_SACK:
			if (len >= 10 && (len - 2u) % 8u == 0 && (len - 2u) / 8u <= PKT_MAX_SACK) {
				p->sack_off = (uint16_t)(o - p->frame);
				p->sack_n = (uint8_t)((len - 2) / 8);
			}
			break;
		case TCPOPT_TS:
			if (len == 10) {
				p->has_ts = 1;
				p->ts_off = (uint16_t)(o + 2 - p->frame);
			}
			break;
		default:
			break;
		}
		o += len;
	}
}

enum pkt_kind pkt_parse(struct pkt *p, uint8_t *frame, uint16_t len)
{
	const uint8_t *b = frame, *end = frame + len;
	uint16_t et;
	uint8_t proto;
	const uint8_t *ip, *th;
	unsigned thl;

	memset(p, 0, sizeof(*p));
	p->frame = frame;
	p->frame_len = len;
	if (b + PKT_ETH_LEN > end)
		return PKT_BAD;
	et = pkt_get16(b + 12);
	b += PKT_ETH_LEN;
	while (et == PKT_ETHERTYPE_VLAN || et == PKT_ETHERTYPE_QINQ) {
		if (p->n_vlan == PKT_MAX_VLANS)
			return PKT_OTHER;
		if (b + PKT_VLAN_LEN > end)
			return PKT_BAD;
		et = pkt_get16(b + 2);
		b += PKT_VLAN_LEN;
		p->n_vlan++;
	}
	ip = b;
	p->ip_off = (uint16_t)(ip - frame);
	if (et == PKT_ETHERTYPE_IPV4) {
		unsigned ihl, tot;
		if (ip + PKT_IPV4_LEN > end)
			return PKT_BAD;
		if ((ip[0] >> 4) != 4)
			return PKT_BAD;
		ihl = (ip[0] & 0x0fu) * 4u;
		tot = pkt_get16(ip + 2);
		if (ihl < PKT_IPV4_LEN || tot < ihl || ip + tot > end)
			return PKT_BAD;
		if (ip[9] != IPPROTO_TCP_)
			return PKT_OTHER;
		if (pkt_get16(ip + 6) & 0x3fffu) /* MF or a fragment offset */
			return PKT_FRAG;
		p->family = 4;
		p->saddr = ip + 12;
		p->daddr = ip + 16;
		th = ip + ihl;
		p->ip_end = (uint16_t)(ip + tot - frame);
	} else if (et == PKT_ETHERTYPE_IPV6) {
		unsigned plen, n;
		if (ip + PKT_IPV6_LEN > end)
			return PKT_BAD;
		if ((ip[0] >> 4) != 6)
			return PKT_BAD;
		plen = pkt_get16(ip + 4);
		if (plen == 0 || ip + PKT_IPV6_LEN + plen > end) /* jumbograms too */
			return PKT_BAD;
		p->ip_end = (uint16_t)(ip + PKT_IPV6_LEN + plen - frame);
		proto = ip[6];
		th = ip + PKT_IPV6_LEN;
		for (n = 0; proto != IPPROTO_TCP_; n++) {
			if (proto == V6_FRAGMENT)
				return PKT_FRAG;
			if (proto != V6_HOPOPTS && proto != V6_ROUTING && proto != V6_DSTOPTS)
				return PKT_OTHER;
			if (n == PKT_MAX_V6_EXT || th + 8 > frame + p->ip_end)
				return PKT_BAD;
			proto = th[0];
			th += (th[1] + 1u) * 8u;
		}
		p->v6_ext = (uint16_t)(th - (ip + PKT_IPV6_LEN));
		p->family = 6;
		p->saddr = ip + 8;
		p->daddr = ip + 24;
	} else {
		return PKT_OTHER;
	}
	end = frame + p->ip_end;
	if (th + PKT_TCP_LEN > end)
		return PKT_BAD;
	thl = (th[12] >> 4) * 4u;
	if (thl < PKT_TCP_LEN || th + thl > end)
		return PKT_BAD;
	p->tcp_off = (uint16_t)(th - frame);
	p->pay_off = (uint16_t)(th + thl - frame);
	p->pay_len = (uint16_t)(p->ip_end - p->pay_off);
	p->sport = pkt_get16(th);
	p->dport = pkt_get16(th + 2);
	p->seq = pkt_get32(th + 4);
	p->ack = pkt_get32(th + 8);
	p->flags = th[13] & 0x3fu;
	p->win = pkt_get16(th + 14);
	parse_tcp_opts(p, th + PKT_TCP_LEN, th + thl);
	return PKT_TCP;
}

static uint32_t mix32(uint32_t h, uint32_t v)
{
	h ^= v;
	h *= 0x9e3779b1u;
	return h ^ (h >> 15);
}

uint32_t pkt_flow_hash(const uint8_t *frame, uint16_t len)
{
	struct pkt p;
	const uint8_t *a, *b;
	unsigned alen, i;
	uint16_t pa, pb;
	uint32_t h = 0x5bd1e995u;
	enum pkt_kind k = pkt_parse(&p, (uint8_t *)frame, len);

	if (k != PKT_TCP)
		return 0;
	alen = p.family == 4 ? 4u : 16u;
	a = p.saddr;
	b = p.daddr;
	pa = p.sport;
	pb = p.dport;
	if (memcmp(a, b, alen) > 0 || (memcmp(a, b, alen) == 0 && pa > pb)) {
		const uint8_t *t = a;
		uint16_t tp = pa;
		a = b;
		b = t;
		pa = pb;
		pb = tp;
	}
	for (i = 0; i < alen; i += 4)
		h = mix32(h, pkt_get32(a + i));
	for (i = 0; i < alen; i += 4)
		h = mix32(h, pkt_get32(b + i));
	h = mix32(h, (uint32_t)pa << 16 | pb);
	return h ? h : 1u;
}

/*
 * RFC 1071 2(B): the ones'-complement sum does not depend on byte order, so
 * the words are summed as the CPU loads them (8 bytes at a time, unaligned
 * loads through memcpy) and the folded 16-bit result is put in network order
 * once at the end.
 */
uint32_t pkt_csum_add(uint32_t sum, const uint8_t *b, size_t len)
{
	uint64_t s = 0;
	size_t i = 0;
	uint32_t r;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		s += (w & 0xffffffffu) + (w >> 32);
	}
	if (i + 4 <= len) {
		uint32_t w;
		memcpy(&w, b + i, 4);
		s += w;
		i += 4;
	}
	if (i + 2 <= len) {
		uint16_t w;
		memcpy(&w, b + i, 2);
		s += w;
		i += 2;
	}
	if (i < len) {
		uint16_t w = 0;
		memcpy(&w, b + i, 1); /* the first byte of a word, zero-padded */
		s += w;
	}
	while (s >> 16)
		s = (s & 0xffffu) + (s >> 16);
	r = (uint32_t)s;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	r = ((r & 0xffu) << 8) | (r >> 8);
#endif
	return sum + r;
}

uint16_t pkt_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffffu) + (sum >> 16);
	return (uint16_t)sum;
}

void pkt_ip_csum(struct pkt *p)
{
	uint8_t *ip = p->frame + p->ip_off;
	unsigned ihl;
	if (p->family != 4)
		return;
	ihl = (ip[0] & 0x0fu) * 4u;
	ip[10] = ip[11] = 0;
	pkt_put16(ip + 10, (uint16_t)~pkt_csum_fold(pkt_csum_add(0, ip, ihl)));
}

int pkt_ip_csum_ok(const struct pkt *p)
{
	const uint8_t *ip = p->frame + p->ip_off;
	if (p->family != 4)
		return 1; /* IPv6 has no header checksum */
	return pkt_csum_fold(pkt_csum_add(0, ip, (ip[0] & 0x0fu) * 4u)) == 0xffffu;
}

uint32_t pkt_pseudo_sum(const struct pkt *p, uint16_t tcp_len)
{
	unsigned alen = p->family == 4 ? 4u : 16u;
	uint32_t s = pkt_csum_add(0, p->saddr, alen);
	s = pkt_csum_add(s, p->daddr, alen);
	return s + IPPROTO_TCP_ + tcp_len;
}

void pkt_tcp_csum(struct pkt *p)
{
	uint8_t *th = p->frame + p->tcp_off;
	uint16_t tlen = (uint16_t)(p->ip_end - p->tcp_off);
	uint32_t s;
	th[16] = th[17] = 0;
	s = pkt_csum_add(pkt_pseudo_sum(p, tlen), th, tlen);
	pkt_put16(th + 16, (uint16_t)~pkt_csum_fold(s));
}

int pkt_tcp_csum_ok(const struct pkt *p)
{
	const uint8_t *th = p->frame + p->tcp_off;
	uint16_t tlen = (uint16_t)(p->ip_end - p->tcp_off);
	uint32_t s = pkt_csum_add(pkt_pseudo_sum(p, tlen), th, tlen);
	return pkt_csum_fold(s) == 0xffffu;
}

void pkt_set_ip_len(struct pkt *p, uint16_t pay_len)
{
	uint8_t *ip = p->frame + p->ip_off;
	p->pay_len = pay_len;
	p->ip_end = (uint16_t)(p->pay_off + pay_len);
	if (p->family == 4)
		pkt_put16(ip + 2, (uint16_t)(p->ip_end - p->ip_off));
	else
		pkt_put16(ip + 4, (uint16_t)(p->ip_end - p->ip_off - PKT_IPV6_LEN));
}
