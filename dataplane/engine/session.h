/*
 * session.h — the SMTP side of a tracked flow: the client's command stream
 * (resumable line assembly, the verb dispatch, the RCPT decision through the
 * shared tables, DATA/BDAT/STARTTLS/AUTH modes), the server's reply stream,
 * and the RFC 2920 queue that says where each reply comes from.  Decisions
 * are recorded as c2s edit points and queued answer text; engine.c turns them
 * into segments.  Runs on the engine's lcore.
 */
#ifndef RG_ENGINE_SESSION_H
#define RG_ENGINE_SESSION_H

#include <stdint.h>

#include "engine_int.h"

/* The reply queue (inline while short, in the busy block when longer). */
unsigned session_q_len(const struct engine *e, const struct flow *f);
struct flow_qent session_q_head(const struct engine *e, const struct flow *f);
int session_q_push(struct engine *e, struct flow *f, uint8_t kind, uint16_t len);

/* Injected text: n bytes at offset off of the live text, and release of the
 * first n bytes once the client acknowledged them. */
void session_text_copy(const struct engine *e, const struct flow *f, uint32_t off, uint32_t n,
		       uint8_t *dst);
void session_text_free(struct engine *e, struct flow *f, uint32_t n);

/* Stop parsing the client's stream (the server's follows once the replies
 * queued so far are placed); counted once, per cause, and reported to
 * rcptgated with the client's address (MSG_EV_FAILOPEN). */
void session_failopen(struct engine *e, struct flow *f, unsigned cause); /* MSG_FO_* */

/*
 * Parse client bytes [c_fwd, to) that lie in src (src[0] is sequence
 * src_seq).  Advances c_fwd over what is decided; a trailing partial command
 * line stays undecided (the caller holds it).  flush: a FIN follows, so a
 * partial line goes out as it is.
 */
void session_c_consume(struct engine *e, struct flow *f, const uint8_t *src, uint32_t src_seq,
		       uint32_t to, int flush);

/* Parse server bytes [s_fwd, to) from b (b[0] is s_fwd), placing answers at
 * reply boundaries; *ins grows by the bytes inserted.  Returns 1 when the
 * harvest 421 was placed (the session is to be closed). */
int session_s_consume(struct engine *e, struct flow *f, const uint8_t *b, uint32_t to,
		      uint32_t *ins);

/* Place the answers now at the queue's head at server position pos;
 * returns the bytes inserted, *close set when the 421 was among them. */
uint32_t session_place(struct engine *e, struct flow *f, uint32_t pos, int *close);

#endif
