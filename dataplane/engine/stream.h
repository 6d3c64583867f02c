/*
 * stream.h — the stream editor's two directions: client segments (pinning,
 * holding, deciding, forwarding what was decided) and server segments
 * (replies parsed, answers placed in RFC 2920 order).  Called for segments
 * the receiver would accept (tcpstate.h decided that).  Runs on the
 * engine's lcore.
 */
#ifndef RG_ENGINE_STREAM_H
#define RG_ENGINE_STREAM_H

#include <stdint.h>

#include "engine_int.h"
#include "flow.h"
#include "pkt.h"

enum engine_verdict stream_c2s(struct engine *e, struct flow *f, struct engine_frame *fr,
			       struct pkt *p, struct engine_out *out);
enum engine_verdict stream_s2c(struct engine *e, struct flow *f, struct engine_frame *fr,
			       struct pkt *p, struct engine_out *out);

/* The client acknowledged server bytes up to view position v. */
void stream_client_acked(struct engine *e, struct flow *f, uint32_t v);

#endif
