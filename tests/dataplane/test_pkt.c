/*
 * test_pkt.c — frame parsing (every header bounds-checked), TCP options,
 * checksums and the symmetric flow hash.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "pkt.h"
#include "tb.h"

static struct tb B;

static uint16_t frame(int family, int vlan, uint8_t *buf, const char *pay, uint8_t flags,
		      int sack)
{
	static const uint32_t blk[1][2] = {{1000, 2000}};
	B.family = family;
	B.vlan = vlan;
	B.use_ts = 1;
	B.mss = 1400;
	memcpy(B.cli.ip, family == 4 ? (const uint8_t *)"\xc6\x12\0\1" :
		(const uint8_t *)"\x20\x01\0\2\0\0\0\0\0\0\0\0\0\0\0\1", family == 4 ? 4 : 16);
	memcpy(B.srv.ip, family == 4 ? (const uint8_t *)"\xc6\x13\0\2" :
		(const uint8_t *)"\x20\x01\0\2\0\0\0\0\0\0\0\0\0\0\0\2", family == 4 ? 4 : 16);
	B.cli.port = 40000;
	B.srv.port = 25;
	return tb_build(&B, &B.cli, &B.srv, buf, 0x01020304u, 0x0a0b0c0du, flags,
			(const uint8_t *)pay, (uint16_t)strlen(pay), sack ? blk : NULL,
			sack ? 1u : 0u);
}

enum mutation {
	M_NONE,
	M_THREE_TAGS,
	M_V4_MF,
	M_V4_OFFSET,
	M_V4_IHL_SHORT,
	M_V4_TOTLEN_LONG,
	M_TRUNC_TCP,
	M_UDP,
	M_ARP,
	M_PADDING,
	M_V6_FRAG_EXT,
	M_V6_HOP_EXT,
	M_TCP_DOFF_LONG,
};

struct parse_case {
	const char *name;
	int family, vlan;
	enum mutation m;
	enum pkt_kind kind;
	uint16_t pay_len;
};

static const struct parse_case parse_cases[] = {
	{"IPv4", 4, 0, M_NONE, PKT_TCP, 5},
	{"IPv6", 6, 0, M_NONE, PKT_TCP, 5},
	{"IPv4 802.1Q", 4, 1, M_NONE, PKT_TCP, 5},
	{"IPv6 QinQ", 6, 2, M_NONE, PKT_TCP, 5},
	{"three tags", 4, 2, M_THREE_TAGS, PKT_OTHER, 0},
	{"IPv4 more fragments", 4, 0, M_V4_MF, PKT_FRAG, 0},
	{"IPv4 fragment offset", 4, 0, M_V4_OFFSET, PKT_FRAG, 0},
	{"IPv4 IHL below 5", 4, 0, M_V4_IHL_SHORT, PKT_BAD, 0},
	{"IPv4 total length past the frame", 4, 0, M_V4_TOTLEN_LONG, PKT_BAD, 0},
	{"truncated TCP header", 4, 0, M_TRUNC_TCP, PKT_BAD, 0},
	{"TCP data offset past the datagram", 4, 0, M_TCP_DOFF_LONG, PKT_BAD, 0},
	{"UDP", 4, 0, M_UDP, PKT_OTHER, 0},
	{"ARP", 4, 0, M_ARP, PKT_OTHER, 0},
	{"Ethernet padding ignored", 4, 0, M_PADDING, PKT_TCP, 5},
	{"IPv6 fragment header", 6, 0, M_V6_FRAG_EXT, PKT_FRAG, 0},
	{"IPv6 hop-by-hop then TCP", 6, 0, M_V6_HOP_EXT, PKT_TCP, 5},
};

static uint16_t mutate(uint8_t *b, uint16_t n, const struct parse_case *c)
{
	unsigned l2 = 14 + 4u * (unsigned)c->vlan;
	uint8_t *ip = b + l2;
	switch (c->m) {
	case M_NONE:
		break;
	case M_THREE_TAGS:
		memmove(b + 16, b + 12, n - 12u);
		pkt_put16(b + 12, 0x8100);
		return (uint16_t)(n + 4);
	case M_V4_MF:
		pkt_put16(ip + 6, 0x2000);
		break;
	case M_V4_OFFSET:
		pkt_put16(ip + 6, 0x0010);
		break;
	case M_V4_IHL_SHORT:
		ip[0] = 0x44;
		break;
	case M_V4_TOTLEN_LONG:
		pkt_put16(ip + 2, (uint16_t)(n + 10));
		break;
	case M_TRUNC_TCP:
		pkt_put16(ip + 2, 30);
		return (uint16_t)(l2 + 30);
	case M_TCP_DOFF_LONG:
		ip[20 + 12] = 0xf0;
		pkt_put16(ip + 2, 50);
		return (uint16_t)(l2 + 50);
	case M_UDP:
		ip[9] = 17;
		break;
	case M_ARP:
		pkt_put16(b + 12, 0x0806);
		break;
	case M_PADDING:
		memset(b + n, 0, 30);
		return (uint16_t)(n + 30);
	case M_V6_FRAG_EXT:
	case M_V6_HOP_EXT: {
		/* insert an 8-byte extension header before TCP */
		memmove(ip + 48, ip + 40, n - l2 - 40u);
		ip[40] = 6;
		ip[41] = 0;
		memset(ip + 42, 0, 6);
		ip[6] = c->m == M_V6_FRAG_EXT ? 44 : 0;
		pkt_put16(ip + 4, (uint16_t)(pkt_get16(ip + 4) + 8));
		return (uint16_t)(n + 8);
	}
	}
	return n;
}

Test(pkt, parse_table)
{
	for (unsigned k = 0; k < sizeof(parse_cases) / sizeof(parse_cases[0]); k++) {
		const struct parse_case *c = &parse_cases[k];
		uint8_t buf[512] = {0};
		struct pkt p;
		uint16_t n = frame(c->family, c->vlan, buf, "hello", PKT_TH_ACK | PKT_TH_PSH, 0);
		n = mutate(buf, n, c);
		enum pkt_kind kind = pkt_parse(&p, buf, n);
		cr_expect_eq(kind, c->kind, "%s: kind %d", c->name, kind);
		if (kind == PKT_TCP && c->kind == PKT_TCP) {
			cr_expect_eq(p.pay_len, c->pay_len, "%s: payload", c->name);
			cr_expect_eq(p.family, c->family, "%s: family", c->name);
			cr_expect_eq(p.sport, 40000, "%s: sport", c->name);
			cr_expect_eq(p.dport, 25, "%s: dport", c->name);
			cr_expect_eq(p.seq, 0x01020304u, "%s: seq", c->name);
			cr_expect_eq(p.ack, 0x0a0b0c0du, "%s: ack", c->name);
			cr_expect(memcmp(buf + p.pay_off, "hello", 5) == 0, "%s: payload bytes",
				  c->name);
		}
	}
}

Test(pkt, truncated_at_every_length_never_reads_past_the_end)
{
	uint8_t buf[512];
	uint16_t n = frame(6, 2, buf, "hello", PKT_TH_ACK, 1);
	for (uint16_t len = 0; len < n; len++) {
		struct pkt p;
		/* a copy exactly len bytes long: a sanitizer build flags any overread */
		uint8_t *c = malloc(len ? len : 1);
		memcpy(c, buf, len);
		enum pkt_kind k = pkt_parse(&p, c, len);
		cr_expect(k == PKT_BAD || (k == PKT_TCP && len >= n - 5), "len %u: kind %d", len, k);
		free(c);
	}
}

Test(pkt, tcp_options)
{
	uint8_t buf[512];
	struct pkt p;
	uint16_t n = frame(4, 0, buf, "", PKT_TH_SYN, 0);
	cr_assert_eq(pkt_parse(&p, buf, n), PKT_TCP);
	cr_expect_eq(p.mss, 1400);
	cr_expect(p.sack_ok);
	cr_expect(p.has_ts);
	n = frame(4, 0, buf, "x", PKT_TH_ACK, 1);
	cr_assert_eq(pkt_parse(&p, buf, n), PKT_TCP);
	cr_expect_eq(p.sack_n, 1);
	cr_expect_eq(pkt_get32(buf + p.sack_off + 2), 1000);
	cr_expect_eq(pkt_get32(buf + p.sack_off + 6), 2000);
}

Test(pkt, checksums)
{
	for (int fam = 4; fam <= 6; fam += 2) {
		uint8_t buf[512];
		struct pkt p;
		uint16_t n = frame(fam, 0, buf, "RCPT TO:<a@b>\r\n", PKT_TH_ACK, 0);
		cr_assert_eq(pkt_parse(&p, buf, n), PKT_TCP);
		cr_expect(pkt_tcp_csum_ok(&p), "IPv%d: built right", fam);
		buf[p.pay_off + 3] ^= 1;
		cr_expect(!pkt_tcp_csum_ok(&p), "IPv%d: corruption seen", fam);
		pkt_tcp_csum(&p);
		cr_expect(pkt_tcp_csum_ok(&p), "IPv%d: recomputed", fam);
	}
}

Test(pkt, ipv4_header_checksum_verified)
{
	uint8_t f[64] = {0};
	struct pkt p;
	/* Ethernet, IPv4 (20), TCP (20) with a good header checksum */
	f[12] = 0x08;
	f[14] = 0x45;
	f[16 + 1] = 40;
	f[14 + 8] = 64;
	f[14 + 9] = 6;
	memcpy(f + 26, "\xc6\x12\x00\x01\xc6\x12\x00\x02", 8);
	f[34 + 12] = 0x50;
	f[34 + 13] = 0x10;
	cr_assert_eq(pkt_parse(&p, f, 54), PKT_TCP);
	pkt_ip_csum(&p);
	cr_assert(pkt_ip_csum_ok(&p));
	f[14 + 8] = 63; /* TTL changed on the way, checksum not */
	cr_assert(!pkt_ip_csum_ok(&p));
}

Test(pkt, flow_hash_is_symmetric)
{
	uint8_t a[512], b[512], c[512];
	uint16_t na = frame(4, 1, a, "x", PKT_TH_ACK, 0);
	struct tb_ep t = B.cli;
	B.cli = B.srv;
	B.srv = t;
	uint16_t nb = tb_build(&B, &B.cli, &B.srv, b, 1, 2, PKT_TH_ACK, NULL, 0, NULL, 0);
	B.cli.port = 26;
	uint16_t nc = tb_build(&B, &B.cli, &B.srv, c, 1, 2, PKT_TH_ACK, NULL, 0, NULL, 0);
	cr_expect_eq(pkt_flow_hash(a, na), pkt_flow_hash(b, nb));
	cr_expect_neq(pkt_flow_hash(a, na), pkt_flow_hash(c, nc));
	cr_expect_neq(pkt_flow_hash(a, na), 0);
}

/* The checksum sum against the plain definition (16-bit big-endian words),
 * for every length and alignment up to 80 bytes. */
static uint32_t ref_sum(uint32_t sum, const uint8_t *b, size_t len)
{
	uint64_t s = sum;
	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)b[i] << 8 | b[i + 1];
	if (len & 1)
		s += (uint32_t)b[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffffu) + (s >> 16);
	return (uint32_t)s;
}

Test(pkt, checksum_sum_matches_the_definition)
{
	uint8_t buf[96];
	uint32_t x = 12345;
	for (int r = 0; r < 50; r++) {
		for (unsigned i = 0; i < sizeof(buf); i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (uint8_t)(x >> 16);
		}
		if (r == 1)
			memset(buf, 0xff, sizeof(buf)); /* carries everywhere */
		for (size_t off = 0; off < 8; off++)
			for (size_t len = 0; len + off <= 88; len++) {
				uint32_t init = (uint32_t)(r * 7919) & 0x3ffff;
				cr_assert_eq(pkt_csum_fold(pkt_csum_add(init, buf + off, len)),
					     ref_sum(init, buf + off, len), "off %zu len %zu", off, len);
			}
	}
}
