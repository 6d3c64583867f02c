/*
 * tcpstate.h — a flow's TCP life as the receivers see it: which segments they
 * accept (checksum, ACK, PAWS), SYN and RST on live flows (RFC 5961), a new
 * connection on a tracked 4-tuple, the handshake, flow creation, eviction,
 * the end (freed, lingering, or reset on both sides when its state is lost).
 * Runs on the engine's lcore.
 */
#ifndef RG_ENGINE_TCPSTATE_H
#define RG_ENGINE_TCPSTATE_H

#include <stdint.h>

#include "engine_int.h"
#include "flow.h"
#include "pkt.h"

/* Offsets in force, or client bytes the engine owns: the flow's state matters. */
int tcpstate_has_offsets(const struct flow *f);
void tcpstate_note_ts(struct flow *f, const struct pkt *p, int c2s);
int tcpstate_csum_bad(struct engine *e, const struct engine_frame *fr, const struct pkt *p);
/* Would the receiver accept this (non-SYN, non-RST) segment?  Counted when not. */
enum { TS_ACCEPT = 0, TS_DROPPED_ANYWAY = 1, TS_REFUSE = 2 };
int tcpstate_acceptable(struct engine *e, struct flow *f, const struct engine_frame *fr,
			const struct pkt *p, int c2s);
int tcpstate_fins_acked(const struct engine *e, const struct flow *f);
void tcpstate_forget(struct engine *e, struct flow *f);
void tcpstate_end(struct engine *e, struct flow *f);
void tcpstate_reset(struct engine *e, struct flow *f, struct engine_out *out);
void tcpstate_release(struct engine *e, struct flow *f);
enum engine_verdict tcpstate_handshake(struct engine *e, struct flow *f, int c2s,
				       struct engine_frame *fr, struct pkt *p);
enum engine_verdict tcpstate_syn_ack_live(struct engine *e, struct flow *f, int c2s,
					  struct engine_frame *fr, struct pkt *p);
enum engine_verdict tcpstate_rst(struct engine *e, struct flow *f, struct engine_frame *fr,
				 struct pkt *p, int c2s);
enum engine_verdict tcpstate_syn(struct engine *e, struct flow *f, int c2s,
				 struct engine_frame *fr, struct pkt *p);

#endif
