/*
 * refusals.h — which domains and which client prefixes (IPv4 /24, IPv6 /64)
 * draw the most refusals (the data plane's MSG_EV_REJECT events, 550 or 450
 * from reject_code), for `rcptctl top`.  A bounded table per kind
 * (REFUSALS_SLOTS keys) kept with the space-saving rule: a new key replaces
 * the least counted one and inherits its count as its error bound, so any
 * key refused more than total/REFUSALS_SLOTS times is in the table and the
 * counts of the top keys are exact or over by at most their error.
 * Thread: main thread only (fed from the core's event drain).
 */
#ifndef RG_REFUSALS_H
#define RG_REFUSALS_H

#include <stdint.h>

#include "msg.h"

#define REFUSALS_SLOTS 128u
#define REFUSALS_KEY_MAX 256u

enum refusals_kind { REFUSALS_DOMAIN = 0, REFUSALS_PREFIX = 1 };

struct refusals_entry {
	char key[REFUSALS_KEY_MAX];
	uint64_t count;		/* refusals counted (an upper bound) */
	uint64_t error;		/* count may exceed the truth by this much */
};

/* Count ev when it is a refusal. */
void refusals_note(const struct msg_event *ev);
/* The n most refused keys of kind, most first, into out; returns how many. */
unsigned refusals_top(enum refusals_kind kind, struct refusals_entry *out, unsigned n);
/* Refusals counted since start, all keys (exact). */
uint64_t refusals_total(void);

#endif
