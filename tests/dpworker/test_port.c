/*
 * test_port.c — the parts of port.c that need no device: the symmetric
 * Toeplitz key gives the same RSS hash to a segment and its reply (checked
 * with DPDK's software Toeplitz, rte_softrss, for IPv4 and IPv6 tuples), and
 * port_describe() says what the port was set up with.
 * Single-threaded.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#include <rte_thash.h>

#include "port.h"

struct rss_case {
	char name[32];
	int v6;
	uint8_t a[16], b[16];
	uint16_t pa, pb;
	unsigned key_len;
};

#define A4(w, x, y, z) {w, x, y, z}
#define A6(x, y) {0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, x, y}

static const struct rss_case rss_cases[] = {
	{"ipv4 40-byte key", 0, A4(198, 18, 0, 1), A4(198, 18, 0, 2), 40000, 25, 40},
	{"ipv4 52-byte key", 0, A4(198, 18, 3, 77), A4(198, 19, 255, 254), 1025, 25, 52},
	{"ipv4 same ports", 0, A4(198, 18, 0, 1), A4(198, 18, 0, 9), 25, 25, 40},
	{"ipv6 40-byte key", 1, A6(0, 1), A6(0, 2), 40000, 25, 40},
	{"ipv6 52-byte key", 1, A6(0x7f, 0x31), A6(0xff, 0x25), 65535, 587, 52},
};

ParameterizedTestParameters(port, symmetric_rss)
{
	return cr_make_param_array(struct rss_case, rss_cases,
				   sizeof(rss_cases) / sizeof(rss_cases[0]));
}

static uint32_t t_rss(const struct rss_case *k, int reply, const uint8_t *key)
{
	union rte_thash_tuple t;
	const uint8_t *sa = reply ? k->b : k->a, *da = reply ? k->a : k->b;
	uint16_t sp = reply ? k->pb : k->pa, dp = reply ? k->pa : k->pb;

	memset(&t, 0, sizeof(t));
	if (!k->v6) {
		t.v4.src_addr = (uint32_t)sa[0] << 24 | (uint32_t)sa[1] << 16 |
				(uint32_t)sa[2] << 8 | sa[3];
		t.v4.dst_addr = (uint32_t)da[0] << 24 | (uint32_t)da[1] << 16 |
				(uint32_t)da[2] << 8 | da[3];
		t.v4.sport = sp;
		t.v4.dport = dp;
		return rte_softrss((uint32_t *)&t, RTE_THASH_V4_L4_LEN, key);
	}
	struct rte_ipv6_hdr ip;
	memset(&ip, 0, sizeof(ip));
	memcpy(ip.src_addr, sa, 16);
	memcpy(ip.dst_addr, da, 16);
	rte_thash_load_v6_addrs(&ip, &t);
	t.v6.sport = sp;
	t.v6.dport = dp;
	return rte_softrss((uint32_t *)&t, RTE_THASH_V6_L4_LEN, key);
}

ParameterizedTest(const struct rss_case *k, port, symmetric_rss)
{
	uint8_t key[PORT_RSS_KEY_MAX];
	uint32_t h, r;

	memset(key, 0xee, sizeof(key));
	port_symmetric_key(key, k->key_len);
	for (unsigned i = k->key_len; i < sizeof(key); i++)
		cr_expect_eq(key[i], 0xee, "%s: key written past %u bytes", k->name, k->key_len);
	h = t_rss(k, 0, key);
	r = t_rss(k, 1, key);
	cr_expect_eq(h, r, "%s: segment %08x, reply %08x", k->name, h, r);
	cr_expect_neq(h, 0, "%s: hash 0", k->name);
}

Test(port, ordinary_key_is_not_symmetric)
{
	/* the check above can tell: the usual (Microsoft) key is not symmetric */
	static const uint8_t ms_key[40] = {
		0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
		0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
		0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
	unsigned asym = 0;

	for (size_t i = 0; i < sizeof(rss_cases) / sizeof(rss_cases[0]); i++)
		asym += t_rss(&rss_cases[i], 0, ms_key) != t_rss(&rss_cases[i], 1, ms_key);
	cr_expect_gt(asym, 0);
}

struct desc_case {
	char name[32];
	struct port p;
	char want[160];
};

static const struct desc_case desc_cases[] = {
	{"rss nic", {.port_id = 0, .outside = 1, .rss = 1, .csum_offload = 1, .nb_rxq = 4,
		     .nb_txq = 4, .mtu = 1500, .name = "0000:01:00.0", .driver = "net_ice"},
	 "port 0 0000:01:00.0 (net_ice, outside): 4 rx / 4 tx queues, symmetric RSS, "
	 "offloaded checksums, mtu 1500"},
	{"af_packet", {.port_id = 1, .nb_rxq = 1, .nb_txq = 1, .mtu = 1500,
		       .name = "net_af_packet1", .driver = "net_af_packet"},
	 "port 1 net_af_packet1 (net_af_packet, inside): 1 rx / 1 tx queue, software "
	 "dispatch, software checksums, mtu 1500"},
};

ParameterizedTestParameters(port, describe)
{
	return cr_make_param_array(struct desc_case, desc_cases,
				   sizeof(desc_cases) / sizeof(desc_cases[0]));
}

ParameterizedTest(const struct desc_case *k, port, describe)
{
	char buf[256];

	port_describe(&k->p, buf, sizeof(buf));
	cr_expect_str_eq(buf, k->want, "%s: '%s'", k->name, buf);
}
