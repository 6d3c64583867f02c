/*
 * flow.h — per-lcore flow state of the engine: the fixed flow table (chained
 * hash over a slot array, free list, idle expiry, eviction), and the two
 * pools of fixed-size blocks attached to flows only while they need them:
 * busy blocks (the pin ring of client bytes not yet acknowledged by the
 * server, the queue of commands awaiting replies, edit points, injected
 * reply text) and segment blocks (out-of-order data).
 * An idle flow owns neither, so its state is just struct flow.
 * Everything is allocated once at init; runs on the owning worker lcore.
 */
#ifndef RG_ENGINE_FLOW_H
#define RG_ENGINE_FLOW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ilist.h"
#include "pkt.h"
#include "smtp.h"
#include "tcpedit.h"

#define FLOW_NONE UINT32_MAX
#define FLOW_CHAIN_MAX 16u	/* flows walked per bucket before refusing a new one */
#define FLOW_INLINE_Q 8u	/* commands awaiting replies kept without a busy block */
#define FLOW_HELO_MAX 48u	/* HELO/EHLO argument kept for events (truncated) */
#define FLOW_FROM_MAX 64u	/* MAIL FROM address kept for events (truncated) */

enum flow_state {
	FS_FREE = 0,
	FS_SYN,		/* client SYN seen */
	FS_EST,		/* server SYN-ACK seen: sequence spaces known */
	FS_CLOSING,	/* FIN both ways or RST: kept briefly for stray segments;
			 * once both FINs are acknowledged (or at the RST) the flow
			 * is freed, or lingers on the ended list when offsets are
			 * in force (late retransmissions still need them) */
};

/* Client stream mode: how the next client bytes are read. */
enum flow_cmode {
	CM_CMD = 0,	/* command lines */
	CM_DATA_WAIT,	/* DATA forwarded, its reply not seen */
	CM_BODY,	/* message body until CRLF.CRLF */
	CM_BDAT,	/* chunk bytes (bdat_left) forwarded */
	CM_BDAT_EAT,	/* chunk bytes (bdat_left) removed */
	CM_TLS_WAIT,	/* STARTTLS forwarded, its reply not seen */
	CM_AUTH,	/* one SASL response line streams through unparsed */
	CM_AUTH_WAIT,	/* AUTH (or a SASL line) forwarded, its reply not seen */
	CM_OPAQUE,	/* TLS or fail-open: offsets applied, nothing parsed */
	CM_SWALLOW,	/* after a harvest 421: client bytes removed */
};

/* Kinds of the commands awaiting replies (the RFC 2920 order queue). */
enum flow_qkind {
	Q_FWD = 0,	/* forwarded, nothing special about its reply */
	Q_EHLO,
	Q_HELO,
	Q_DATA,		/* 354 -> body */
	Q_DOT,		/* end of a message body */
	Q_BDAT,
	Q_STARTTLS,	/* 220 -> opaque */
	Q_AUTH,		/* 334 -> stays at the head */
	Q_RCPT,
	Q_INJ,		/* answered by the engine: text in the busy block */
	Q_INJ_CLOSE,	/* the harvest 421: the session ends after it */
	Q_OPAQUE,	/* client stream turned opaque here: so does the server's */
};

#define FLOW_F_TS 0x01u		/* timestamps negotiated */
#define FLOW_F_C_FIN 0x02u	/* client FIN seen */
#define FLOW_F_S_FIN 0x04u	/* server FIN seen */
#define FLOW_F_RETX 0x08u	/* on the retransmission list */
#define FLOW_F_S_OPAQUE 0x10u	/* server stream no longer parsed */
#define FLOW_F_HARVEST 0x20u	/* a harvest 421 is queued or sent */
#define FLOW_F_PIPELINING 0x40u /* server announced PIPELINING */
#define FLOW_F_CHUNKING 0x80u	/* server announced CHUNKING */
#define FLOW_F2_NEWSYN 0x01u	/* a SYN with a new ISN seen: syn_isn, syn_mss */
#define FLOW_F2_NEWSYN_TS 0x02u /* that SYN offered timestamps */
#define FLOW_F2_WSCALE 0x04u	/* both ends announced window scaling */
#define FLOW_F2_EHLO 0x10u	/* a 2xx EHLO reply was seen: its keywords are known */
#define FLOW_F2_HELD 0x40u	/* in the hold set (engine.h): the XDP program
				 * drops its frames while no data plane runs */
#define FLOW_F2_DOOMED 0x20u	/* taken over without its state (engine_adopt):
				 * reset on both sides at the first chance */

struct flow {
	/* identity */
	uint8_t c_ip[16], s_ip[16];	/* IPv4 in the first 4 bytes */
	uint16_t c_port, s_port;
	uint8_t family;
	uint8_t state;			/* enum flow_state */
	uint8_t flags;			/* FLOW_F_* */
	uint8_t n_vlan;
	uint32_t next;			/* hash chain / free list */
	uint32_t busy;			/* busy block or FLOW_NONE */
	uint32_t last_ms;		/* coarse time of the last segment */
	/* how to build frames of our own (as the client's frames look) */
	uint8_t mac_c[6], mac_s[6];
	uint8_t vlan[PKT_VLAN_BYTES];
	uint16_t c_rxport, s_rxport;	/* ports the client's / server's frames arrive on */
	uint16_t c_mss, s_mss;		/* MSS each end announced */
	/* client -> server (client sequence space; see engine.c's stream model) */
	uint32_t c_isn;			/* the client's initial sequence number */
	uint32_t c_una;			/* first client byte the server has not acknowledged */
	uint32_t c_own;			/* client bytes below it acknowledged (by the server or
					 * by the engine, which then owns them) */
	uint32_t c_fwd;			/* client bytes decided */
	uint32_t c_rcv;			/* next client byte expected (c_fwd + held) */
	uint32_t syn_isn;		/* FLOW_F2_NEWSYN: ISN of a new SYN on this 4-tuple */
	uint32_t syn_tsval;
	uint16_t syn_mss;
	uint8_t syn_wscale;		/* its window scale, 0xff none */
	uint8_t c_wshift, s_wshift;	/* window scale each end announced (RFC 7323) */
	uint32_t c_ack;			/* client's latest ACK (view of server stream) */
	uint32_t c_tsval;
	uint16_t c_win;
	uint16_t s_win;
	struct tcpedit c2s;
	/* server -> client */
	uint32_t s_fwd;			/* server bytes parsed */
	uint32_t s_ack;			/* server's latest ACK (of forwarded client bytes) */
	uint32_t s_tsval;
	struct tcpedit s2c;
	uint32_t ack_to_s, ack_to_c;	/* last ACK forwarded to the server / client */
	/* what the engine owes and resends (timer.c) */
	struct ilink retx;		/* on the retransmission list (FLOW_F_RETX) */
	uint32_t retx_ms;		/* when to look next */
	/* ended flows lingering for late retransmissions (tcpstate.c) */
	struct ilink end;		/* on the ended list (ended) */
	uint32_t end_ms;		/* when it ended */
	uint8_t retx_n;
	/* SMTP */
	uint8_t cmode;			/* enum flow_cmode */
	uint8_t body_st;		/* end-of-body matcher */
	uint8_t q_head, q_n;		/* inline queue (no busy block) */
	uint8_t q_inl[FLOW_INLINE_Q];
	uint8_t helo_len, from_len;
	uint8_t ended;			/* 1: on the ended list */
	uint8_t flags2;			/* FLOW_F2_* */
	uint32_t bdat_left;
	uint16_t txn_fwd;		/* RCPTs forwarded in this transaction */
	uint16_t txn_ref;		/* RCPTs answered by the engine */
	struct smtp_reply rp;
	char helo[FLOW_HELO_MAX];
	char from[FLOW_FROM_MAX];
};

/* One entry of the busy block's reply queue. */
struct flow_qent {
	uint8_t kind;	/* enum flow_qkind */
	uint8_t _pad0;
	uint16_t len;	/* Q_INJ*: bytes of text */
};

/* Header of a busy block; the arrays follow at offsets in struct flow_pools. */
struct flow_busy {
	uint32_t next_free;
	uint16_t q_head, q_n;
	uint32_t t_head;	/* text ring: first byte of live inserted text */
	uint32_t t_len;		/* bytes used: live inserted + pending replies */
	uint32_t t_pend;	/* of which pending (not yet placed) */
	uint32_t ooo_head[2];	/* segment blocks per direction (0 c2s, 1 s2c) */
	uint8_t ooo_n[2];
	uint16_t _pad0;
};

/* A stored out-of-order segment. */
struct flow_seg {
	uint32_t next;
	uint32_t seq;
	uint16_t len;
	uint8_t fin;
	uint8_t _pad0;
};

struct flow_table {
	struct flow *flows;
	uint32_t *buckets;
	uint32_t mask;		/* buckets - 1 */
	uint32_t max;
	uint32_t used;
	uint32_t free_head;
	uint32_t seed;
	uint32_t expire_pos;	/* idle scan cursor */
	uint32_t evict_pos;	/* eviction scan cursor */
	/* busy blocks */
	uint8_t *busy_mem;
	size_t busy_size;
	uint32_t busy_total, busy_used, busy_free;
	size_t off_pin, off_q, off_pts_c, off_pts_s, off_text;
	uint32_t pin_max;	/* bytes of the pin ring (a power of two) */
	uint16_t cmd_max, pts_max;
	uint32_t text_max;
	/* segment blocks */
	uint8_t *seg_mem;
	uint32_t seg_total, seg_used, seg_free;
};

#define FLOW_SEG_SIZE 2048u
#define FLOW_SEG_DATA (FLOW_SEG_SIZE - sizeof(struct flow_seg))

/* Memory the table and pools need, and their layout in it. */
size_t flow_mem_size(uint32_t max_flows, uint32_t busy_blocks, uint32_t seg_blocks,
		     uint32_t pin_max, uint16_t cmd_max, uint32_t text_max);
void flow_table_init(struct flow_table *t, void *mem, uint32_t max_flows, uint32_t busy_blocks,
		     uint32_t seg_blocks, uint32_t pin_max, uint16_t cmd_max, uint32_t text_max,
		     uint32_t seed);

/* Point t at mem again (another mapping of the same table). */
void flow_table_relink(struct flow_table *t, void *mem);

/* Chains, free lists and counts derived again from the flows (engine_adopt);
 * flows that lost a block they claimed are marked FLOW_F2_DOOMED. */
uint32_t flow_table_rebuild(struct flow_table *t, uint8_t *mark);

/* Find the flow of a segment; *c2s = 1 when it travels client -> server. */
struct flow *flow_lookup(struct flow_table *t, uint8_t family, const uint8_t *saddr,
			 const uint8_t *daddr, uint16_t sport, uint16_t dport, int *c2s);

/* A fresh zeroed flow for client -> server, or NULL (table or chain full). */
struct flow *flow_insert(struct flow_table *t, uint8_t family, const uint8_t *caddr,
			 const uint8_t *saddr, uint16_t cport, uint16_t sport);

/* Forget a flow (its blocks go back to the pools). */
void flow_remove(struct flow_table *t, struct flow *f);

static inline uint32_t flow_index(const struct flow_table *t, const struct flow *f)
{
	return (uint32_t)(f - t->flows);
}

/* Busy blocks. */
int flow_busy_get(struct flow_table *t, struct flow *f); /* 0 or -ENOSPC */
void flow_busy_put(struct flow_table *t, struct flow *f);
static inline struct flow_busy *flow_busy(const struct flow_table *t, const struct flow *f)
{
	return (struct flow_busy *)(t->busy_mem + (size_t)f->busy * t->busy_size);
}
/* The pin ring: client byte of sequence q lives at [q & (pin_max - 1)]. */
static inline uint8_t *flow_pin(const struct flow_table *t, const struct flow *f)
{
	return (uint8_t *)flow_busy(t, f) + t->off_pin;
}
static inline struct flow_qent *flow_q(const struct flow_table *t, const struct flow *f)
{
	return (struct flow_qent *)((uint8_t *)flow_busy(t, f) + t->off_q);
}
static inline struct tcpedit_pt *flow_pts(const struct flow_table *t, const struct flow *f,
					  int s2c)
{
	return (struct tcpedit_pt *)((uint8_t *)flow_busy(t, f) +
				     (s2c ? t->off_pts_s : t->off_pts_c));
}
static inline uint8_t *flow_text(const struct flow_table *t, const struct flow *f)
{
	return (uint8_t *)flow_busy(t, f) + t->off_text;
}

/* The pin ring: client bytes [seq, seq+n) in or out (n <= pin_max). */
static inline void flow_pin_put(const struct flow_table *t, const struct flow *f, uint32_t seq,
				const uint8_t *b, uint32_t n)
{
	uint8_t *r = flow_pin(t, f);
	uint32_t at = seq & (t->pin_max - 1), first = n < t->pin_max - at ? n : t->pin_max - at;
	memcpy(r + at, b, first);
	memcpy(r, b + first, n - first);
}

static inline void flow_pin_get(const struct flow_table *t, const struct flow *f, uint32_t seq,
				uint8_t *d, uint32_t n)
{
	const uint8_t *r = flow_pin(t, f);
	uint32_t at = seq & (t->pin_max - 1), first = n < t->pin_max - at ? n : t->pin_max - at;
	memcpy(d, r + at, first);
	memcpy(d + first, r, n - first);
}

/* Do n bytes at b differ from the pinned bytes at seq? */
static inline int flow_pin_differs(const struct flow_table *t, const struct flow *f,
				   uint32_t seq, const uint8_t *b, uint32_t n)
{
	const uint8_t *r = flow_pin(t, f);
	uint32_t at = seq & (t->pin_max - 1), first = n < t->pin_max - at ? n : t->pin_max - at;
	return memcmp(r + at, b, first) != 0 || memcmp(r, b + first, n - first) != 0;
}

/* Segment blocks. */
uint32_t flow_seg_get(struct flow_table *t);	/* FLOW_NONE when exhausted */
void flow_seg_put(struct flow_table *t, uint32_t idx);
static inline struct flow_seg *flow_seg(const struct flow_table *t, uint32_t idx)
{
	return (struct flow_seg *)(t->seg_mem + (size_t)idx * FLOW_SEG_SIZE);
}

#endif
