/*
 * callout.h — verifying recipients by asking their destination: SMTP client
 * sessions on non-blocking sockets in the daemon's event loop.
 *
 * One session checks up to `batch` pending addresses of one domain per
 * transaction (EHLO, MAIL FROM:<> or the configured sender, RCPT x N
 * pipelined when PIPELINING is advertised, else one by one), then RSET and the
 * next batch while work is queued (up to session_max_rcpts), then QUIT.
 * Replies are classified by classify.h.  Per domain: one queue, deduplicated
 * (an address queued or in flight is never probed twice at once; a waiter
 * joins it), a concurrency limit, token-bucket rates for new sessions and for
 * RCPTs, a circuit breaker that opens after breaker_failures failed sessions
 * and fails open (queued addresses answered "temporary", the domain flagged
 * DT_F_FAILOPEN by the daemon) until a trial session succeeds, accept-all
 * detection by a random local part sent first in a session when due, and
 * "unverifiable" when the destination refuses callouts (5xx at connect,
 * EHLO/HELO or MAIL).  An address that failed temporarily is held back for
 * ttl_tempfail before it may be probed again.  STARTTLS (OpenSSL) when the
 * destination offers it and the domain's tls is may (the default) or
 * required; required and not offered is unverifiable.  Encryption only: the
 * certificate is not checked (Postfix's "may" and "encrypt"); a failed
 * handshake under may goes plain for CALLOUT_TLS_SKIP_MS.
 * Thread: main thread only.
 */
#ifndef RG_CALLOUT_H
#define RG_CALLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dns.h"

#define CALLOUT_LINE_MAX 1000u		/* reply line; RFC 5321 says 512, some exceed */
#define CALLOUT_REPLY_LINES_MAX 128u	/* lines in one multi-line reply */
#define CALLOUT_RBUF 8192u		/* receive buffer per session */
#define CALLOUT_TEXT_MAX 512u		/* reply text kept for classification */
#define CALLOUT_TRANSCRIPT_MAX 16384u	/* verify transcript */
#define CALLOUT_MAX_SESSIONS 4096u	/* all domains */
#define CALLOUT_RETRY_MAX 3u		/* "too many recipients" retries of one address */
#define CALLOUT_TLS_SKIP_MS 600000u	/* tls = may: plain this long after a failed handshake */
#define CALLOUT_OWN_MAX 64u		/* this host's addresses kept for loop detection */

#define CALLOUT_STATS_LIST(X)                                                           \
	X(SUBMITTED, "callout_submitted", "addresses submitted for a callout")          \
	X(JOINED, "callout_joined", "submissions joined to one already queued/in flight") \
	X(HELD, "callout_held", "submissions refused: recent temporary failure")        \
	X(QUEUE_FULL, "callout_queue_full", "submissions refused: queue limit")         \
	X(FAILING_OPEN, "callout_failing_open", "submissions answered at once: domain failing open") \
	X(SESSIONS, "callout_sessions", "sessions opened")                              \
	X(SESSIONS_FAILED, "callout_sessions_failed", "sessions that failed before MAIL") \
	X(CONNECT_FAILED, "callout_connect_failed", "connection attempts that failed")  \
	X(TLS, "callout_tls", "sessions that went through STARTTLS")                   \
	X(TLS_FAILED, "callout_tls_failed", "STARTTLS handshakes that failed")          \
	X(LOOPS, "callout_loops", "destinations refused: this host (own address or greeting name)") \
	X(GREETING_NEXT, "callout_greeting_next", "failed greetings that moved the session to the next destination") \
	X(TIMEOUTS, "callout_timeouts", "connect/reply timeouts")                       \
	X(PROTO_ERRORS, "callout_proto_errors", "malformed replies")                    \
	X(LINE_TOO_LONG, "callout_line_too_long", "reply lines over CALLOUT_LINE_MAX")  \
	X(TRANSACTIONS, "callout_transactions", "MAIL transactions")                    \
	X(RSET_REUSE, "callout_rset_reuse", "transactions on a reused connection")      \
	X(RCPT_SENT, "callout_rcpt_sent", "RCPT commands sent")                         \
	X(VALID, "callout_valid", "addresses found valid")                              \
	X(INVALID, "callout_invalid", "addresses found invalid")                        \
	X(TEMPFAIL, "callout_tempfail", "addresses with a temporary result")            \
	X(UNVERIFIABLE, "callout_unverifiable", "addresses whose destination refused") \
	X(RETRY_452, "callout_retry_452", "RCPTs refused as too many, requeued")        \
	X(RETRY_LIMIT, "callout_retry_limit", "addresses refused as too many CALLOUT_RETRY_MAX times: temporary") \
	X(PROBES, "callout_accept_all_probes", "accept-all probes sent")                \
	X(BREAKER_OPENED, "callout_breaker_opened", "circuit breaker openings")         \
	X(DNS_FAILURES, "callout_dns_failures", "destination lookups that failed")        \
	X(DNS_QUEUE_FULL, "callout_dns_queue_full", "lookups not queued: resolver queue full") \
	X(SESSIONS_LIMIT, "callout_sessions_limit", "sessions not opened: CALLOUT_MAX_SESSIONS") \
	X(TRANSCRIPT_CUT, "callout_transcript_cut", "verify transcripts cut at CALLOUT_TRANSCRIPT_MAX")

enum callout_stat {
#define CALLOUT_ENUM(id, name, help) CALLOUT_ST_##id,
	CALLOUT_STATS_LIST(CALLOUT_ENUM)
#undef CALLOUT_ENUM
	CALLOUT_ST__COUNT
};

enum callout_flags {
	CALLOUT_F_REFRESH = 1u << 0,	/* background refresh of a cached verdict */
	CALLOUT_F_VERIFY = 1u << 1,	/* by hand: own session, transcript, no dedup */
	CALLOUT_F_PROBE = 1u << 2,	/* accept-all probe (internal) */
	CALLOUT_F_FLEET = 1u << 3,	/* answered by the fleet, no callout made */
};

/* Opaque to this module: the daemon chains its own waiter records here. */
struct callout_waiter {
	struct callout_waiter *next;
};

struct callout_result {
	const char *addr;
	size_t len;
	const char *domain;
	int verdict;		/* CORE_V_VALID, INVALID, TEMPFAIL, UNVERIFIABLE, ACCEPT_ALL */
	uint16_t code;		/* deciding reply code, 0 if none (connect failure...) */
	const char *enh;	/* "" when none */
	const char *reply;	/* deciding reply line or failure text */
	const char *dest;	/* "host[ip]:port" or "" */
	unsigned flags;		/* enum callout_flags of the submission */
	bool backup;		/* answered by a backup MX: a 2xx says nothing */
	struct callout_waiter *waiters; /* handed over to the hook */
	const char *transcript;	/* CALLOUT_F_VERIFY only, else NULL */
	size_t transcript_len;
	uint64_t elapsed_ms;	/* submission to result */
};

/* Runtime state of one destination domain (read by the daemon). */
struct callout_dom {
	struct callout_dom *next;
	struct config_dom cfg;		/* copy of the configured settings */
	bool configured;		/* false after a reload removed it */
	/* queue */
	struct callout_pend *qhead, *qtail;
	uint32_t nqueued, reserved, sessions_open;
	bool in_kick;
	struct callout_dom *kick_next;
	/* destinations */
	struct dns_answer dest;
	uint64_t dest_expiry_ms;
	bool resolving, dest_ok;
	unsigned dest_cursor;
	/* rates */
	double conn_tokens, rcpt_tokens;
	uint64_t tokens_ms;
	uint32_t rcpt_limit;		/* learned from 452 replies; 0 = batch */
	/* breaker and health */
	uint32_t failures;
	uint64_t breaker_until_ms;	/* open until; 0 = closed */
	uint64_t breaker_until_s;
	bool trial;			/* a half-open trial session is running */
	uint64_t unverifiable_until_ms;
	uint64_t unverifiable_until_s;
	int health;			/* enum core_health */
	uint64_t tls_skip_until_ms;	/* tls = may: a failed handshake, plain until */
	/* accept-all */
	bool accept_all;
	bool aa_known;
	bool aa_inflight;
	uint64_t aa_checked_ms, aa_checked_s;
	/* last session */
	char dest_last[128];
	char last_error[128];
	/* counters */
	uint64_t callouts, valid, invalid, tempfail, unverifiable, sessions, connect_failures;
};

struct callout_hooks {
	/* one per finished submission (and per accept-all probe, flag PROBE) */
	void (*result)(const struct callout_result *r, void *arg);
	/* accept_all, failing-open state or health of d changed */
	void (*domain_changed)(struct callout_dom *d, void *arg);
	/* an address is about to be queued (not for verify): true when it is
	 * held at the gate until callout_gate_open() or callout_gate_answer() */
	bool (*gate)(const char *addr, size_t len, void *arg);
	/* rate tokens and session slots of d: true when they come from
	 * elsewhere (a budget shared by a fleet): tokens added to *conn and
	 * *rcpt, *max_conns (in: dest_max_conns) the sessions d may have open
	 * now; false: refilled here, dest_max_conns as configured */
	bool (*budget)(const struct callout_dom *d, double *conn, double *rcpt, uint32_t *max_conns,
		       void *arg);
	void *arg;
};

int callout_init(const struct callout_hooks *h);
void callout_shutdown(void);

/* Bind domain states to cfg (new domains created, runtime state of kept ones
 * preserved, removed ones drained).  0 or -ENOMEM. */
int callout_configure(const struct config *cfg);

struct callout_dom *callout_domain(const char *name);
/* Domains in configuration order are iterated by the daemon through cfg. */

/* Queue addr (canonical; its domain must be configured).
 * Returns 0 when queued, 1 when joined to a queued/in-flight probe (w is
 * chained to it), -EAGAIN when held after a recent temporary failure,
 * -EHOSTDOWN when the domain is failing open (breaker open, unverifiable),
 * -ENOSPC when over a queue limit, -ENOENT for an unconfigured domain.
 * On a negative return w is not kept. */
int callout_submit(const char *addr, size_t len, unsigned flags, struct callout_waiter *w);

bool callout_pending(const char *addr, size_t len);

/* An address held at the gate goes to its domain's queue.  0 or -ENOENT
 * (not held: answered meanwhile, or never gated). */
int callout_gate_open(const char *addr, size_t len);
/* An address held at the gate is answered without a callout (its result
 * carries CALLOUT_F_FLEET).  0 or -ENOENT. */
int callout_gate_answer(const char *addr, size_t len, int verdict);
uint32_t callout_ngated(void);

/* Timeouts, scheduling, hold expiry: call every loop turn. */
void callout_tick(uint64_t now_ms);

/* true while the domain fails open (breaker open or unverifiable). */
bool callout_failing_open(const struct callout_dom *d, uint64_t now_ms);

uint64_t callout_stat(enum callout_stat s);
const char *callout_stat_name(enum callout_stat s);
const char *callout_stat_help(enum callout_stat s);
uint32_t callout_nqueued(void);
uint32_t callout_ninflight(void);
uint32_t callout_nsessions(void);

#endif
