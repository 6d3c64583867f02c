/*
 * pkt.h — frame parsing and building for the engine: Ethernet, up to two
 * 802.1Q/802.1ad tags, IPv4, IPv6 (with extension headers), TCP and its
 * options; Internet checksums (RFC 1071, incremental updates per RFC 1624).
 * Every header access is bounds-checked against the frame's end.
 * Runs on the worker lcore that owns the frame; pure functions.
 */
#ifndef RG_ENGINE_PKT_H
#define RG_ENGINE_PKT_H

#include <stddef.h>
#include <stdint.h>

#define PKT_MAX_VLANS 2u
#define PKT_MAX_V6_EXT 4u	/* IPv6 extension headers walked before giving up */
#define PKT_ETH_LEN 14u
#define PKT_VLAN_LEN 4u
#define PKT_VLAN_BYTES (PKT_MAX_VLANS * PKT_VLAN_LEN)
#define PKT_IPV4_LEN 20u
#define PKT_IPV6_LEN 40u
#define PKT_TCP_LEN 20u
#define PKT_TCP_OPT_MAX 40u
#define PKT_MAX_SACK 4u

#define PKT_ETHERTYPE_IPV4 0x0800u
#define PKT_ETHERTYPE_IPV6 0x86ddu
#define PKT_ETHERTYPE_VLAN 0x8100u
#define PKT_ETHERTYPE_QINQ 0x88a8u

#define PKT_TH_FIN 0x01u
#define PKT_TH_SYN 0x02u
#define PKT_TH_RST 0x04u
#define PKT_TH_PSH 0x08u
#define PKT_TH_ACK 0x10u

enum pkt_kind {
	PKT_TCP = 0,	/* a TCP segment, fully parsed */
	PKT_OTHER = 1,	/* not TCP over IP (ARP, UDP, ...): bridge it */
	PKT_FRAG = 2,	/* an IP fragment: bridge it */
	PKT_BAD = 3,	/* truncated or inconsistent headers: bridge it */
};

/* A parsed TCP frame.  Offsets are from the start of the frame. */
struct pkt {
	uint8_t *frame;
	uint16_t frame_len;	/* bytes in the buffer (may include padding) */
	uint16_t ip_off;	/* == l2_len */
	uint16_t tcp_off;
	uint16_t pay_off;
	uint16_t pay_len;
	uint16_t ip_end;	/* frame offset just past the IP datagram */
	uint8_t family;		/* 4 or 6 */
	uint8_t n_vlan;
	uint8_t flags;		/* PKT_TH_* */
	uint8_t has_ts;
	uint8_t sack_ok, wscale_ok;
	uint8_t wscale;		/* shift when wscale_ok */
	uint16_t mss;		/* 0: no option */
	uint16_t ts_off;	/* frame offset of TSval when has_ts */
	uint16_t sack_off;	/* frame offset of the SACK option kind byte, 0 none */
	uint8_t sack_n;		/* blocks */
	uint16_t v6_ext;	/* IPv6 extension header bytes before TCP */
	uint32_t seq, ack;
	uint16_t win;
	uint16_t sport, dport;
	const uint8_t *saddr, *daddr;	/* 4 or 16 bytes */
};

/* Parse a frame; fills p for PKT_TCP. */
enum pkt_kind pkt_parse(struct pkt *p, uint8_t *frame, uint16_t len);

/* Symmetric flow hash (addresses and ports sorted); 0 for non-IP. */
uint32_t pkt_flow_hash(const uint8_t *frame, uint16_t len);

/* Big-endian loads and stores. */
static inline uint16_t pkt_get16(const uint8_t *b)
{
	return (uint16_t)((uint16_t)b[0] << 8 | b[1]);
}
static inline uint32_t pkt_get32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static inline void pkt_put16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}
static inline void pkt_put32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}

/* Ones'-complement sum of len bytes added to sum (not folded). */
uint32_t pkt_csum_add(uint32_t sum, const uint8_t *b, size_t len);
uint16_t pkt_csum_fold(uint32_t sum);

/* Recompute the IPv4 header checksum (no-op for IPv6). */
void pkt_ip_csum(struct pkt *p);

/* Verify the IPv4 header checksum: 1 good (or IPv6), 0 bad. */
int pkt_ip_csum_ok(const struct pkt *p);

/* Pseudo-header sum for p's addresses and a TCP length. */
uint32_t pkt_pseudo_sum(const struct pkt *p, uint16_t tcp_len);

/* Recompute the TCP checksum in full.  */
void pkt_tcp_csum(struct pkt *p);

/* Verify the TCP checksum: 1 good, 0 bad. */
int pkt_tcp_csum_ok(const struct pkt *p);

/* Write a new payload length into the IP header (total / payload length). */
void pkt_set_ip_len(struct pkt *p, uint16_t pay_len);

#endif
