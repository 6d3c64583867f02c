/*
 * timer.h — what the engine owes the ends and resends itself (injected
 * answers, client bytes it acknowledged), with backoff and a limit after
 * which the flow is reset on both sides; idle expiry; the linger of ended
 * flows.  engine_timer() (engine.h) runs them.  Runs on the engine's lcore.
 */
#ifndef RG_ENGINE_TIMER_H
#define RG_ENGINE_TIMER_H

#include "engine_int.h"
#include "flow.h"

/* Something is owed: (re)start its retransmission clock. */
void timer_arm(struct engine *e, struct flow *f);
/* Nothing is owed any more (or the flow goes). */
void timer_unlink(struct engine *e, struct flow *f);

#endif
