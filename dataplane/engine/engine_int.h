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

struct engine {
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
};

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
