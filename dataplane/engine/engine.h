/*
 * engine.h — the data plane's engine: the libc-only heart of rcptgate-dp.
 *
 * It takes Ethernet frames in caller-provided buffers, tracks TCP flows to the
 * SMTP ports, parses the client's commands and the server's replies, decides
 * every RCPT TO through the shared tables (addr.h -> dtable.h -> khash.h ->
 * rtable.h), removes refused commands from the client->server stream and
 * answers them itself in the server->client stream, keeping both TCP
 * conversations consistent (DESIGN.md, "The data plane's TCP stream editor").
 * It never includes rte_*.h: the DPDK process (the .c files in dataplane/) owns ports,
 * mbufs and lcores and hands the engine plain byte buffers.
 *
 * Threads: one struct engine per worker lcore, used only by that lcore.
 * engine_create()/engine_init()/engine_destroy() run in the main thread.
 * BOTH DIRECTIONS OF A FLOW MUST REACH THE SAME ENGINE: use symmetric RSS, or
 * dispatch in software by engine_flow_hash(), which gives the same value for
 * a segment and its reply.
 *
 * Memory: everything (flow table, block pool, harvest table, scratch) is
 * allocated once at init.  The packet path never allocates.
 *
 * Output: engine_rx() edits the received frame in place (it may shrink it or
 * grow it into its headroom/tailroom) and returns a verdict for it; it may
 * also write extra frames (replies injected toward the client, the rest of a
 * segment that grew past one frame, ACKs) into transmit buffers the caller
 * lends it in struct engine_out.  The caller transmits the received frame
 * first (if ENGINE_FORWARD), then out->buf[0..out->n) in order, each on the
 * port the engine named in it; an entry with len 0 (port ENGINE_PORT_NONE)
 * carries nothing and is freed.  Buffers not used (index >= out->n) stay the
 * caller's.  Provide at least ENGINE_OUT_MIN buffers of at least
 * ENGINE_OUT_BUF_MIN bytes each per call; with fewer, the engine emits what
 * fits and relies on TCP retransmission for the rest (counted).
 */
#ifndef RG_ENGINE_H
#define RG_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "rtable.h"
#include "shm.h"
#include "spsc.h"
#include "stats.h"

#define ENGINE_MAX_SMTP_PORTS 8u
#define ENGINE_OUT_MIN 8u	    /* transmit buffers to lend per call */
#define ENGINE_OUT_BUF_MIN 2048u /* bytes per transmit buffer */
#define ENGINE_PORT_NONE 0xffffu

/*
 * ---- configuration (every limit named, enforced, counted, documented) ----
 *
 * limit                 when reached                              counter (stats.h)
 * max_flows             reclaim an ended (lingering) flow, else   flows_evicted,
 *                       a closing one, else the least recently    flows_full
 *                       used idle flow without offsets; else
 *                       leave the new flow untracked
 * (flows end at the RST or once both FINs are acknowledged: freed   flows_closed
 *  at once, or after a short linger when offsets are in force)
 * idle_timeout_ms       flow forgotten                            flows_expired
 * busy_blocks           RCPT forwarded / flow fails open          edit_nospace, failopen,
 *                       (a flow without one parses nothing)       pin_nospace
 * pin_max               client bytes not yet acknowledged by the  pin_overrun
 *                       server, kept to pin decisions; the window
 *                       the client sees is clamped to it, bytes
 *                       past it are dropped (TCP resends them)
 * mtu                   frames built or grown are cut to it and   -
 *                       to the receiver's MSS
 * line_max              flow fails open (forwarded as is)         line_too_long, failopen
 * cmd_max               further answers forwarded; queue full:    edit_nospace, failopen
 *                       flow fails open
 * inject_max            RCPT forwarded instead of answered        edit_nospace
 * rcpt_max              RCPT forwarded unchecked                  rcpt_limit
 * ooo_max, seg_blocks   out-of-order segment dropped (resent)     ooo_limit
 * retx_max              answer / owned bytes no longer resent:   inject_giveup,
 *                       both ends reset                           flows_reset
 * idle_timeout_ms       (flow with offsets: both ends reset)      flows_reset
 * harvest_threshold     421, server side reset, client FIN        harvest_closed
 * Forwarding is always the fallback: a limit never loses mail.
 */

struct engine_conf {
	uint32_t max_flows;	   /* tracked flows per lcore (hash buckets: next 2^n) */
	uint32_t idle_timeout_ms;  /* established flow idle -> forgotten */
	uint32_t handshake_timeout_ms; /* SYN seen, no data yet */
	uint32_t busy_blocks;	   /* per lcore: flows that may hold edits, held
				    * bytes, queued replies at the same time */
	uint32_t seg_blocks;	   /* per lcore: out-of-order segments stored */
	uint16_t line_max;	   /* command line limit incl. CRLF (RFC 5321: 512;
				    * extensions raise it), <= ENGINE_LINE_MAX_MAX */
	uint16_t ooo_max;	   /* out-of-order segments queued per flow */
	uint16_t cmd_max;	   /* commands awaiting a reply per flow */
	uint16_t rcpt_max;	   /* RCPTs decided per transaction; beyond: forwarded */
	uint32_t inject_max;	   /* bytes of injected replies not yet acknowledged */
	uint32_t pin_max;	   /* per flow: client bytes kept until the server
				    * acknowledges them (power of two); also the
				    * most a client may have in flight */
	uint16_t mtu;		   /* IP MTU of the ports (frames the engine builds) */
	uint16_t _pad1;
	uint32_t retx_initial_ms;  /* first retransmission of a lone injected reply */
	uint32_t retx_max;	   /* retransmissions before the flow gives up */
	uint32_t harvest_threshold; /* invalid RCPTs per window per source prefix
				     * (/32, /24, IPv6 /64); 0 = off.  A managed
				     * domain's own threshold overrides it. */
	uint32_t harvest_window_ms;
	uint32_t harvest_slots;	   /* per-lcore source table (rounded up to 2^n) */
	uint16_t smtp_ports[ENGINE_MAX_SMTP_PORTS]; /* host order */
	uint8_t n_smtp_ports;
	uint8_t inbound_only;	   /* 1: track only flows whose SYN came from the
				    * outside port (clients outside, servers inside) */
	uint8_t tx_csum_offload;   /* 1: the ports compute IPv4/TCP checksums; the
				    * engine fills the pseudo-header sum and sets
				    * ENGINE_TX_* flags.  0: checksums in software. */
	uint8_t _pad0[3];
};

#define ENGINE_LINE_MAX_MAX 4096u

#define ENGINE_DEF_MAX_FLOWS 65536u
#define ENGINE_DEF_IDLE_TIMEOUT_MS 600000u /* RFC 5321 4.5.3.2.6: 10 min after "." */
#define ENGINE_DEF_HANDSHAKE_TIMEOUT_MS 30000u
#define ENGINE_DEF_BUSY_BLOCKS 2048u
#define ENGINE_DEF_SEG_BLOCKS 4096u
#define ENGINE_DEF_LINE_MAX 1024u
#define ENGINE_DEF_OOO_MAX 8u
#define ENGINE_DEF_CMD_MAX 256u
#define ENGINE_DEF_RCPT_MAX 1000u
#define ENGINE_DEF_INJECT_MAX 8192u
#define ENGINE_DEF_PIN_MAX 16384u
#define ENGINE_DEF_MTU 1500u
#define ENGINE_DEF_RETX_INITIAL_MS 200u
#define ENGINE_DEF_RETX_MAX 8u
#define ENGINE_DEF_HARVEST_THRESHOLD 0u
#define ENGINE_DEF_HARVEST_WINDOW_MS 60000u
#define ENGINE_DEF_HARVEST_SLOTS 16384u

void engine_conf_default(struct engine_conf *c);

/* 0, or -EINVAL with the offending limit named in err. */
int engine_conf_check(const struct engine_conf *c, char *err, size_t errlen);

/* ---- what the engine reads and writes in shared memory ---- */

struct engine_shm {
	const struct shm_map *map;	/* NULL: no tables; every RCPT forwarded */
	struct rtable_reader *reader;	/* this lcore's reader (rtable.h) */
	struct shm_lcore *stats;	/* counters; never NULL (may be private) */
	struct spsc_hdr *miss_ring;	/* may be NULL: misses only counted */
	struct spsc_hdr *event_ring;	/* may be NULL: events only counted */
};

struct engine;

/* Bytes engine_init() needs for c (for rte_zmalloc_socket and friends);
 * 0 when c does not pass engine_conf_check(). */
size_t engine_mem_size(const struct engine_conf *c);

/* Build an engine in mem (engine_mem_size(c) bytes, 64-byte aligned). */
int engine_init(void *mem, size_t len, const struct engine_conf *c,
		const struct engine_shm *s, struct engine **out);

/* Convenience: allocate with aligned_alloc() and engine_init(). */
int engine_create(const struct engine_conf *c, const struct engine_shm *s,
		  struct engine **out);
void engine_destroy(struct engine *e); /* only for engine_create()d engines */

/*
 * ---- state that outlives the process ----
 *
 * The block given to engine_init() holds every bit of flow state, as
 * indices and offsets behind a header (magic, layout version, struct sizes,
 * the limits that size the pools).  A block left by an engine of another
 * process (a state file on hugetlbfs or /dev/shm, mapped anywhere) is taken
 * over by engine_adopt(): pointers are derived again from mem, the hash
 * chains, free lists and timer lists are rebuilt from the flows, and the
 * flow the old process was working on when it died, if it had offsets, is
 * reset on both sides (flows_adopt_reset).  Every other flow goes on being
 * translated, retransmitted and answered (flows_adopted).  The clock must
 * be the same CLOCK_MONOTONIC (system-wide) as the old process used.
 *
 * engine_adopt() returns 0; -ENOENT when mem holds no state (engine_init()
 * it); -EPROTO when the state's layout differs (why names the first value
 * that differs): then engine_init() a fresh block and engine_import_resets()
 * the old one, which schedules every flow with offsets of the old state to
 * be reset on both sides at the next engine_timer() or segment (counted,
 * flows_adopt_reset), instead of passing untranslated.  Returns how many.
 * Main thread, before the worker runs the engine.
 */
int engine_adopt(void *mem, size_t len, const struct engine_conf *c,
		 const struct engine_shm *s, struct engine **out, char *why, size_t whylen);
int engine_import_resets(struct engine *e, const void *old, size_t len, char *why,
			 size_t whylen);

/*
 * ---- the hold set: flows the XDP program must not bypass ----
 *
 * While no data plane runs, the XDP program in front of it bypasses SMTP
 * frames to the peer port (fail-open); a flow with offsets in force would
 * then pass untranslated, and any flow whose state the next data plane
 * takes over would have bytes pass that its state never saw (it would
 * stall, or an invalid RCPT would reach the server).  The engine says which
 * flows those are: a flow enters the set once established (or with offsets
 * in force) and leaves it when it is forgotten.  Only connections opened
 * while no data plane runs, which no state knows of, are bypassed.  The caller applies the changes to the XDP program's hold
 * map (the program drops those flows' frames while no AF_XDP socket is
 * bound; TCP resends them to the next data plane).  The queue of changes
 * lives in the engine's state block (ENGINE_HOLD_Q): changes not yet applied
 * when a process dies are applied by the next.  A full queue delays an entry
 * to the flow's next segment, or loses a removal (the hold map is LRU).
 */
#define ENGINE_HOLD_Q 256u

struct engine_hold {
	uint8_t add;		/* 1 enters the set, 0 leaves it */
	uint8_t family;		/* 4 or 6 */
	uint16_t c_port, s_port; /* host order */
	uint8_t c_ip[16], s_ip[16]; /* IPv4 in the first 4 bytes */
	uint16_t _pad0;
};

/* Keep the set (off by default: nothing is noted). */
void engine_hold_enable(struct engine *e, int on);

/* Take up to max changes, oldest first; returns how many. */
unsigned engine_hold_changes(struct engine *e, struct engine_hold *out, unsigned max);

/* Every flow in the set now (for a hold map that starts empty: after a
 * take-over, the XDP program loaded again), max at a time from *cursor (start
 * at 0); returns how many, 0 at the end. */
unsigned engine_hold_all(struct engine *e, uint32_t *cursor, struct engine_hold *out,
			 unsigned max);

/* Bytes of the state block at mem (the engine_mem_size() it was built
 * for), 0 when mem holds none. */
size_t engine_state_size(const void *mem, size_t len);

/* Point a running engine at a new shared-memory file (re-attach). Flows stay. */
void engine_set_shm(struct engine *e, const struct engine_shm *s);

/* CLOCK_REALTIME - CLOCK_MONOTONIC in ns, for table expiry and record time
 * stamps; call at start and then every second or so. */
void engine_set_realtime_offset(struct engine *e, int64_t real_minus_mono_ns);

/* ---- the packet path ---- */

/* A received frame the engine may edit in place. */
struct engine_frame {
	uint8_t *data;		/* first byte of the Ethernet header */
	uint16_t len;		/* bytes of frame */
	uint16_t headroom;	/* writable bytes before data */
	uint16_t tailroom;	/* writable bytes after data + len */
	uint16_t rx_port;	/* caller's id of the port it arrived on */
	uint16_t peer_port;	/* caller's id of the port it is bridged to */
	uint8_t outside;	/* 1 when rx_port is the outside (internet) port */
	uint8_t rx_csum;	/* ENGINE_RXCSUM_*: what the port checked */
	/* set by the engine when the frame is forwarded: */
	uint16_t tx_flags;	/* ENGINE_TX_* offload requests */
	uint8_t l2_len;		/* bytes of Ethernet + VLAN headers */
	uint8_t l3_len;		/* bytes of the IP header (incl. v6 extensions) */
	uint8_t l4_len;		/* bytes of the TCP header */
	uint8_t _pad1;
};

/* A transmit buffer the caller lends; the engine writes one frame into it. */
struct engine_txbuf {
	uint8_t *data;		/* caller: where the frame goes */
	uint16_t cap;		/* caller: writable bytes at data */
	uint16_t len;		/* engine: frame length */
	uint16_t port;		/* engine: caller's port id to transmit on */
	uint16_t tx_flags;	/* engine: ENGINE_TX_* */
	uint8_t l2_len, l3_len, l4_len, _pad0;
};

struct engine_out {
	struct engine_txbuf *buf;	/* caller's array */
	uint16_t cap;			/* caller: entries available */
	uint16_t n;			/* engine: entries filled */
};

#define ENGINE_RXCSUM_UNKNOWN 0u /* the engine verifies what it parses */
#define ENGINE_RXCSUM_GOOD 1u	   /* IP and TCP checksums verified by the port */
#define ENGINE_RXCSUM_BAD 2u	   /* the port found a bad checksum */

/* Offload requests (only with conf.tx_csum_offload; else checksums are done). */
#define ENGINE_TX_IPV4 0x1u	 /* IPv4 frame: compute the IP header checksum */
#define ENGINE_TX_IPV6 0x2u
#define ENGINE_TX_TCP_CKSUM 0x4u /* TCP checksum holds the pseudo-header sum */

enum engine_verdict {
	ENGINE_FORWARD = 0,	/* transmit the (possibly edited) frame on peer_port */
	ENGINE_DROP = 1,	/* the engine consumed it: free it */
};

/*
 * Process one frame.  Frames that are not TCP to/from an SMTP port are
 * forwarded untouched.  now_ns is CLOCK_MONOTONIC (coarse is fine).
 * out->n is set to the number of extra frames written.
 */
enum engine_verdict engine_rx(struct engine *e, struct engine_frame *f, uint64_t now_ns,
			      struct engine_out *out);

/*
 * Timers: retransmit replies injected on their own that the client has not
 * acknowledged, expire idle flows.  Bounded work per call (a slice of the
 * flow table); call every millisecond or so.  Returns frames written to out.
 */
unsigned engine_timer(struct engine *e, uint64_t now_ns, struct engine_out *out);

/*
 * Symmetric flow hash of a frame: the same value for both directions of a
 * TCP/UDP flow (addresses and ports sorted), 0 for frames that are not IP.
 * Not keyed: use it to pick an lcore, not as a table index exposed to peers.
 */
uint32_t engine_flow_hash(const uint8_t *frame, uint16_t len);

/* 1 when the frame is TCP with a source or destination port in the engine's
 * SMTP port list (the frames engine_rx() may edit), else 0. */
int engine_is_smtp(const struct engine *e, const uint8_t *frame, uint16_t len);

/* ---- introspection (tests, benchmark, telemetry) ---- */

struct engine_info {
	uint32_t flows;			/* tracked now */
	uint32_t max_flows;
	uint32_t busy_used, busy_total;	/* busy blocks attached to flows */
	uint32_t seg_used, seg_total;
	size_t flow_bytes;		/* bytes of state per idle flow */
	size_t mem_bytes;		/* engine_mem_size() */
};

void engine_info(const struct engine *e, struct engine_info *out);

#endif
