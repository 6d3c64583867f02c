/*
 * emit.h — what leaves the engine for a flow: a received segment re-emitted
 * as the view of an original range (renumbered, edited, cut to fit, ACK and
 * SACK translated), injected text toward the client, and client bytes from
 * the pin ring toward the server.  Runs on the engine's lcore.
 */
#ifndef RG_ENGINE_EMIT_H
#define RG_ENGINE_EMIT_H

#include <stdint.h>

#include "engine_int.h"
#include "flow.h"
#include "pkt.h"

/* Send view bytes [vseq, vseq+len) of injected text (offset toff) to the client. */
void emit_text(struct engine *e, struct flow *f, struct engine_out *out, uint32_t vseq,
	       uint32_t toff, uint32_t len, uint8_t extra_flags);

/* Send the view of client bytes [x, y) from the pin ring to the server. */
void emit_c2s(struct engine *e, struct flow *f, struct engine_out *out, uint32_t x, uint32_t y);

/*
 * Emit the view of original range [x, y) of direction s2c (src[0] is
 * original sequence src_seq) in the received frame and, past what it holds,
 * in lent buffers.  empty_seq: the sequence number when nothing is carried;
 * fin_ok: the FIN may go; news: a segment without payload still says
 * something (window, SACK).
 */
enum engine_verdict emit_segment(struct engine *e, struct flow *f, struct engine_frame *fr,
				 struct pkt *p, int s2c, const uint8_t *src, uint32_t src_seq,
				 uint32_t x, uint32_t y, uint32_t empty_seq, int fin_ok, int news,
				 struct engine_out *out);

#endif
