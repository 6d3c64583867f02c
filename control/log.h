/*
 * log.h — rcptgated's logging: syslog (facility from the config, mail by
 * default), optionally stderr, with a per-kind rate limit so a flood of
 * rejections or callout results cannot flood the log: past log_rate lines per
 * second of one kind, lines are counted and a summary ("N similar messages
 * suppressed") is written when the second ends.
 * Thread: main thread only.
 */
#ifndef RG_LOG_H
#define RG_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

#include "msg.h"

enum log_kind {
	LOG_K_GENERAL = 0,	/* start-up, reload, errors: never rate-limited */
	LOG_K_REJECT,		/* data-plane rejections (NOQUEUE lines) */
	LOG_K_CALLOUT,		/* callout results */
	LOG_K_HARVEST,		/* harvest reports */
	LOG_K_CLIENT,		/* refused or misbehaving local clients (policy, control) */
	LOG_K__COUNT
};

void log_init(const char *ident, int facility, bool to_stderr, uint32_t rate);
void log_reconfigure(const char *ident, int facility, bool to_stderr, uint32_t rate);
void log_close(void);

void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Rate-limited by kind; returns false when the line was suppressed. */
bool log_kind(enum log_kind k, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Format an event record in Postfix's shape into buf (NUL-terminated).
 * MSG_EV_REJECT / MSG_EV_DEFER:
 *   NOQUEUE: reject: RCPT from host[ip]: 550 5.1.1 <rcpt>: Recipient address
 *   rejected: User unknown; from=<f> to=<rcpt> proto=ESMTP helo=<h>
 * Returns the length. */
int log_format_event(const struct msg_event *ev, char *buf, size_t len);

/* Log one event record (rate-limited, kind by type). */
void log_event(const struct msg_event *ev);

/* Call once a second: writes suppression summaries. */
void log_tick(uint64_t now_ms);

/* Lines suppressed since start, per kind. */
uint64_t log_suppressed(enum log_kind k);

#endif
