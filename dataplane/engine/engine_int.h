/*
 * engine_int.h — what the engine's own files share (engine.c: the packet
 * path and the stream editor; session.c: the SMTP side of each flow): the
 * per-lcore engine state and its internal limits.  Not for the DPDK process,
 * which uses engine.h only.  Everything here runs on the engine's lcore.
 */
#ifndef RG_ENGINE_INT_H
#define RG_ENGINE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "flow.h"
#include "harvest.h"
#include "ilist.h"
#include "shm.h"
#include "stats.h"
#include "tcpedit.h"

#define ENGINE_SCRATCH 65536u		/* largest IP payload */
#define ENGINE_CLOSING_MS 10000u	/* FIN both ways, not yet acknowledged: kept
					 * at most this long for stray segments */
#define ENGINE_LINGER_MS 2000u		/* ended flow with offsets in force: kept this
					 * long to translate a late retransmission (a
					 * FIN resent because the last ACK was lost);
					 * reclaimed first when the table is full */
#define ENGINE_EXPIRE_SCAN 64u		/* flow slots checked per engine_timer() */
#define ENGINE_RETX_SCAN 64u		/* retransmission entries per engine_timer() */
#define ENGINE_EVICT_SCAN 8u		/* flows sampled to find one to evict */
#define ENGINE_DEF_MSS4 536u		/* RFC 9293 default MSS */
#define ENGINE_DEF_MSS6 1220u
#define ENGINE_REPLY_MAX (RG_ADDR_MAX + 96u)
#define ENGINE_TTL 64u

/*
 * The engine's memory outlives its process (engine_adopt): it starts with
 * this header, at offset 0 of the block, fixed in layout across versions.
 * Everything after it is indices and offsets; the pointers in struct engine
 * are derived again from the block's address on adoption.  The header says
 * what the layout depends on (struct sizes, the limits that size the
 * pools); a state with other values is refused, naming the first that
 * differs.  For that case the "reset view" says where, in each flow slot of
 * the old layout, a newer build finds what it takes to reset a flow cleanly
 * (addresses, ports, MACs, tags, the sequence numbers each end expects):
 * ENGINE_RVIEW_VERSION changes only when one of those fields changes
 * meaning, so a build with another flow layout can still end every flow
 * with offsets on both sides instead of letting it pass untranslated.
 * in_call is 1 while engine_rx()/engine_timer() run, cur_flow the flow
 * engine_rx() works on: a process killed in the middle leaves that flow
 * half-updated, and the adopter resets it (counted, flows_adopt_reset).
 */
#define ENGINE_STATE_MAGIC 0x53454752u	/* "RGES" */
#define ENGINE_STATE_VERSION 1u		/* bump when a field of the state changes meaning */
#define ENGINE_RVIEW_VERSION 1u		/* bump when a reset-view field changes meaning */
#define ENGINE_RV_MAX 32u

enum engine_rv_field {
	RV_STATE, RV_FAMILY, RV_FLAGS, RV_N_VLAN, RV_C_IP, RV_S_IP, RV_C_PORT, RV_S_PORT,
	RV_MAC_C, RV_MAC_S, RV_VLAN, RV_C_RXPORT, RV_S_RXPORT, RV_C_ACK, RV_S_ACK,
	RV_C_TSVAL, RV_S_TSVAL, RV_C2S, RV_S2C, RV_C_UNA, RV_C_OWN, RV_S_WIN, RV_C_WIN,
	RV__COUNT
};
_Static_assert(RV__COUNT <= ENGINE_RV_MAX, "reset view too large");

struct engine_rv_ent {
	uint16_t off, size;	/* of the field in struct flow */
};

struct engine_state_hdr {
	uint32_t magic;
	uint32_t version;
	uint64_t mem_size;
	uint32_t sz_engine, sz_flow, sz_busy, sz_seg, sz_pt, sz_qent, sz_hslot, sz_reply;
	uint32_t max_flows, busy_blocks, seg_blocks, pin_max, inject_max, harvest_slots;
	uint32_t cmd_max, fs_est;
	uint32_t in_call;
	uint32_t cur_flow;
	uint32_t rv_version;
	uint32_t rv_n;		/* entries of rv */
	uint64_t rv_flows_off;	/* flow slots, from the start of the block */
	uint32_t rv_stride, rv_count;
	struct engine_rv_ent rv[ENGINE_RV_MAX];
};
_Static_assert(sizeof(struct engine_state_hdr) == 240, "engine_state_hdr layout");
_Static_assert(offsetof(struct engine_state_hdr, rv_flows_off) == 96, "engine_state_hdr");

struct engine {
	struct engine_state_hdr h;	/* first: offset 0 of the block */
	struct engine_conf c;
	struct engine_shm s;
	struct shm_lcore priv_stats;	/* used when the caller gives none */
	int64_t rt_off;
	void *own_mem;
	size_t mem_size;
	struct flow_table ft;
	struct harvest hv;
	uint8_t *src;			/* held line + new client bytes, contiguous */
	uint8_t *obuf;			/* composed output payload */
	struct tcpedit_piece *pieces;
	unsigned max_pieces;
	struct ilist retx;		/* flows owed a retransmission (timer.c) */
	struct ilist ended;		/* ended flows lingering, oldest first */
	uint32_t now_ms;
	uint64_t now_ns;
	/* the hold set's changes not yet taken (engine_hold_changes) */
	uint32_t hold_on;		/* engine_hold_enable() */
	uint32_t hold_head, hold_n;
	struct engine_hold hold_q[ENGINE_HOLD_Q];
};

/* A flow enters (add) or leaves the hold set; 0, or -1 when the queue is full. */
int engine_hold_note(struct engine *e, struct flow *f, int add);

/* A flow taken over without its state: both ends reset (flows_adopt_reset). */
void engine_doom_reset(struct engine *e, struct flow *f, struct engine_out *out);

static inline void st(struct engine *e, enum stats_id id)
{
	stats_add(e->s.stats, id, 1);
}


static inline int engine_smtp_port(const struct engine *e, uint16_t port)
{
	for (unsigned i = 0; i < e->c.n_smtp_ports; i++)
		if (e->c.smtp_ports[i] == port)
			return 1;
	return 0;
}

#endif
