/*
 * stats.h — per-lcore counter blocks and reader state in shared memory.
 *
 * Each data-plane lcore owns one struct shm_lcore in the rw region and is its
 * only writer (plain relaxed stores, no read-modify-write shared with anyone);
 * rcptgated and rcptctl read the counters and sum them over lcores.  Counters
 * are named once, here, in STATS_LIST, so both planes print the same names.
 */
#ifndef RG_STATS_H
#define RG_STATS_H

#include <stdint.h>

#include "shm.h"

/* X(enum suffix, "name", "what it counts") — append only within an ABI version. */
#define STATS_LIST(X)                                                                  \
	X(RX_PKTS, "rx_pkts", "frames received on any port")                           \
	X(TX_PKTS, "tx_pkts", "frames transmitted on any port")                        \
	X(TX_DROP, "tx_drop", "frames the port refused to transmit (queue full)")     \
	X(BRIDGED, "bridged", "frames bridged untouched (not SMTP)")                   \
	X(SMTP_PKTS, "smtp_pkts", "frames of tracked SMTP flows")                      \
	X(FLOWS_NEW, "flows_new", "SMTP flows created (SYN seen)")                     \
	X(FLOWS_CLOSED, "flows_closed", "SMTP flows ended (FIN/RST)")                  \
	X(FLOWS_EXPIRED, "flows_expired", "SMTP flows idle-timed out")                 \
	X(FLOWS_EVICTED, "flows_evicted", "SMTP flows evicted to make room")           \
	X(FLOWS_FULL, "flows_full", "new flows not tracked: flow table full")          \
	X(FLOWS_MIDSTREAM, "flows_midstream", "segments of untracked flows forwarded") \
	X(FAILOPEN, "failopen", "flows turned to plain forwarding on bad input")      \
	X(CMDS, "cmds", "client commands parsed")                                      \
	X(RCPT, "rcpt", "RCPT TO commands seen")                                       \
	X(RCPT_REJECTED, "rcpt_rejected", "RCPTs answered 550 by the data plane")     \
	X(RCPT_DEFERRED, "rcpt_deferred", "RCPTs answered 450 by the data plane")     \
	X(RCPT_FORWARDED, "rcpt_forwarded", "RCPTs forwarded to the server")           \
	X(RCPT_VALID, "rcpt_valid", "RCPTs whose table verdict was valid")             \
	X(RCPT_MISS, "rcpt_miss", "RCPTs not in the table")                            \
	X(RCPT_UNMANAGED, "rcpt_unmanaged", "RCPTs to domains not managed")            \
	X(RCPT_ACCEPT_ALL, "rcpt_accept_all", "RCPTs to accept-all domains")           \
	X(RCPT_BADADDR, "rcpt_badaddr", "RCPTs whose address did not parse")          \
	X(MISS_ENQ, "miss_enq", "misses queued for verification")                     \
	X(MISS_RING_FULL, "miss_ring_full", "misses dropped: miss ring full")          \
	X(EVENT_ENQ, "event_enq", "events queued for rcptgated")                       \
	X(EVENT_RING_FULL, "event_ring_full", "events dropped: event ring full")       \
	X(RT_RETRY, "rt_retry", "table reads retried (writer was mid-update)")         \
	X(LINE_TOO_LONG, "line_too_long", "command lines over the limit")              \
	X(HELD_BYTES_LIMIT, "held_bytes_limit", "flows over the held-bytes limit")     \
	X(OOO_SEGS, "ooo_segs", "out-of-order segments queued")                        \
	X(OOO_LIMIT, "ooo_limit", "out-of-order segments beyond the queue limit")      \
	X(RETRANS, "retrans", "retransmitted segments re-edited")                      \
	X(INJECTED, "injected", "reply segments injected on their own")                \
	X(INJECT_RETX, "inject_retx", "injected replies retransmitted")                \
	X(FRAGMENTS, "fragments", "IP fragments forwarded unedited")                   \
	X(MALFORMED, "malformed", "malformed frames forwarded unedited")               \
	X(BARE_LF, "bare_lf", "command lines ended by a bare LF")                      \
	X(NUL_BYTES, "nul_bytes", "command lines containing NUL")                      \
	X(STARTTLS, "starttls", "flows turned opaque by STARTTLS")                     \
	X(HARVEST_CLOSED, "harvest_closed", "sessions closed 421 for harvesting")     \
	X(CSUM_SW, "csum_sw", "checksums computed in software")                       \
	X(DISPATCH_DROP, "dispatch_drop", "SMTP frames dropped: owner lcore's ring full")	\
	X(EDIT_NOSPACE, "edit_nospace", "RCPTs forwarded: no room to record the edit") \
	X(RCPT_LIMIT, "rcpt_limit", "RCPTs forwarded unchecked: per-transaction limit") \
	X(BAD_CSUM, "bad_csum", "segments dropped: bad TCP checksum") \
	X(OUT_FULL, "out_full", "frames not emitted: no transmit buffer (TCP resends)") \
	X(DATA_REFUSED, "data_refused", "DATA/BDAT answered 554: no valid recipients") \
	X(INJECT_GIVEUP, "inject_giveup", "injected replies abandoned after retries") \
	X(REPLY_MALFORMED, "reply_malformed", "server replies not starting with a code") \
	X(MBUF_ALLOC_FAIL, "mbuf_alloc_fail", "spare transmit mbufs not allocated: pool empty") \
	X(SEG_UNACCEPTABLE, "seg_unacceptable",                                        \
	  "segments the receiver discards (no ACK bit, ACK beyond sent, PAWS): not parsed") \
	X(RST_IGNORED, "rst_ignored", "RSTs outside the window (RFC 5961): flow kept")  \
	X(FLOWS_REUSED, "flows_reused", "new connections on a tracked 4-tuple (new ISN)") \
	X(FLOWS_RESET, "flows_reset",                                                   \
	  "flows with offsets reset on both sides: state lost or answer given up")      \
	X(PIN_REWRITE, "pin_rewrite", "resent client bytes that differed from the decided ones, rewritten") \
	X(HELD_ACKED, "held_acked", "held client bytes acknowledged by the engine (it owns them)") \
	X(OWN_RETX, "own_retx", "owned client bytes resent to the server by the engine") \
	X(PIN_NOSPACE, "pin_nospace", "flows forwarded unparsed: no busy block to keep decided bytes") \
	X(PIN_OVERRUN, "pin_overrun", "client bytes beyond the clamped window: dropped, resent by TCP") \
	X(FAILOPEN_QUEUE, "failopen_queue", "flows failed open: reply queue or edit list full") \
	X(FAILOPEN_BDAT, "failopen_bdat", "flows failed open: BDAT of unknown length or after HELO") \
	X(FAILOPEN_FIN, "failopen_fin", "flows ended with a partial command line, forwarded as is") \
	X(FLOWS_ADOPTED, "flows_adopted", "flows taken over from a previous data-plane process") \
	X(FLOWS_ADOPT_RESET, "flows_adopt_reset",                                     \
	  "flows with offsets reset on both sides at a take-over: state refused or torn") \
	X(XDP_HOLD_LOST, "xdp_hold_lost",                                             \
	  "changes to the XDP hold set not applied (queue full, or the map refused them)")

enum stats_id {
#define STATS_ENUM(id, name, help) STAT_##id,
	STATS_LIST(STATS_ENUM)
#undef STATS_ENUM
	STAT__COUNT
};

#define STATS_MAX 256u
_Static_assert(STAT__COUNT <= STATS_MAX, "too many counters");

extern const char *const stats_names[STAT__COUNT];
extern const char *const stats_help[STAT__COUNT];

/*
 * One per data-plane lcore.  The first cache line is the reader's published
 * state for the recipient table's reclamation (see rtable.h); counters follow
 * on their own lines.  Only the owning lcore writes any of it.
 */
struct shm_lcore {
	uint64_t qsbr_gen;	/* table generation seen at the last quiescent point */
	uint64_t heartbeat_ns;	/* CLOCK_MONOTONIC of the last quiescent point */
	uint32_t online;	/* 1 while the lcore runs; 0 after a clean stop */
	uint32_t pid;		/* the data plane's pid, to tell a crashed reader */
	uint32_t lcore_id;
	uint32_t _pad0;
	uint8_t _pad1[SHM_CACHE_LINE - 32];
	uint64_t ctr[STATS_MAX];
	uint8_t _reserved[SHM_PAGE - SHM_CACHE_LINE - STATS_MAX * 8];
};
_Static_assert(sizeof(struct shm_lcore) == SHM_PAGE, "shm_lcore is one page");
_Static_assert(offsetof(struct shm_lcore, ctr) == SHM_CACHE_LINE, "ctr offset");

static inline void stats_add(struct shm_lcore *lc, enum stats_id id, uint64_t n)
{
	/* single writer: a relaxed load and store, never an atomic RMW */
	__atomic_store_n(&lc->ctr[id], __atomic_load_n(&lc->ctr[id], __ATOMIC_RELAXED) + n,
			 __ATOMIC_RELAXED);
}

static inline uint64_t stats_read(const struct shm_lcore *lc, enum stats_id id)
{
	return __atomic_load_n(&lc->ctr[id], __ATOMIC_RELAXED);
}

/* Address of lcore i's region and of its parts. */
static inline struct shm_lcore *shm_lcore_at(const struct shm_map *m, unsigned i)
{
	const struct shm_hdr *h = shm_hdr(m);
	return (struct shm_lcore *)(m->rw + (uint64_t)i * h->lcore_stride);
}

/* Sum of one counter over every lcore region. */
uint64_t stats_sum(const struct shm_map *m, enum stats_id id);

#endif
