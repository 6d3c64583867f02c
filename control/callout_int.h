/*
 * callout_int.h — what the callout engine's two halves share (private to
 * callout.c and csession.c; nothing else includes it).
 *
 *   callout.c   scheduling: the pending-address hash, domain queues, holds,
 *               rate limits, the circuit breaker, accept-all probes,
 *               batching into transactions, verdicts.
 *   csession.c  the SMTP client session: connect (next destination of the
 *               round), read replies (common/smtpreply.h), response()
 *               picks the next state and enter_state() sends what it sends,
 *               STARTTLS, the transcript.
 *
 * The scheduler starts a session (sess_new, connect_next) and drives its
 * transactions (tx_start, tx_done -> enter_state); a session reports back
 * through the calls listed under "scheduler" below.
 * Thread: main thread only.
 */
#ifndef RG_CALLOUT_INT_H
#define RG_CALLOUT_INT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "callout.h"
#include "smtpreply.h"

enum pend_state { P_QUEUED = 1, P_INFLIGHT, P_HOLD,
		  P_GATE,	/* held at the gate: the fleet decides who calls out */
};

struct callout_pend {
	struct callout_pend *hnext;	/* hash chain */
	struct callout_pend *qnext;	/* domain queue or hold list */
	struct callout_dom *dom;
	uint64_t hash;
	uint8_t state;
	uint8_t flags;
	uint8_t retries;		/* "too many recipients" refusals so far */
	bool hashed;
	uint16_t len;
	uint64_t queued_ms;
	uint64_t hold_until_ms;
	struct callout_waiter *waiters;
	char addr[RG_ADDR_MAX + 1];
};

enum sess_state {
	S_CONNECT = 0,
	S_GREETING,
	S_EHLO,
	S_HELO,
	S_MAIL,
	S_RCPT,
	S_SWALLOW,	/* pipelined RCPT replies after a failed MAIL */
	S_RSET,
	S_QUIT,
	S_STARTTLS,	/* STARTTLS sent, waiting for its 220 */
	S_TLS,		/* TLS handshake running */
};

struct sess {
	struct sess *next, *prev;
	int fd;
	struct callout_dom *dom;
	enum sess_state state;
	unsigned target;		/* index into dom->dest.t */
	unsigned tries;			/* connect attempts */
	struct dns_target tgt;
	char dest[128];
	bool pipelining, verify, ehlo_ok, trial;
	bool dead;			/* closed; freed at the next tick */
	bool probe_only;		/* scheduled accept-all re-probe, no queue */
	uint32_t reserved;
	uint64_t deadline_ms, end_ms, started_ms;
	/* transaction */
	struct callout_pend **tx;
	unsigned cap, ntx, next_reply, nsent, swallow;
	struct callout_pend *retry_head, *retry_tail; /* 452'd, back to the queue in order */
	uint32_t rcpts_total, transactions;
	unsigned tx_asked, tx_retried;	/* this transaction: RCPTs, 452 4.5.3 answers */
	/* reply being parsed: rbuf holds the current line from its start,
	 * rfed bytes of it fed to rp */
	char rbuf[CALLOUT_RBUF];
	size_t rlen, rfed;
	struct smtp_reply rp;
	struct smtp_reply_text rt;	/* into rtext */
	/* the last complete reply */
	uint16_t rcode;
	char renh[SMTP_REPLY_ENH_MAX];	/* enhanced status code, or "" */
	char rtext[CALLOUT_TEXT_MAX];	/* the lines' text joined */
	size_t rtext_len;
	char rfirst[256];		/* first line, for reports */
	bool saw_pipelining, saw_smtputf8;	/* EHLO keywords seen */
	uint16_t greet5xx;			/* a destination refused us at greeting */
	char greet5xx_text[256];
	bool smtputf8;				/* the server takes UTF-8 addresses */
	bool saw_starttls;			/* EHLO offered STARTTLS */
	bool tx_utf8;				/* this transaction: MAIL ... SMTPUTF8 */
	SSL *ssl;				/* TLS after STARTTLS, else NULL */
	bool tls_on, tls_want_write;
	/* output */
	char *wbuf;
	size_t wlen, woff, wcap;
	bool want_out;
	/* transcript (verify only) */
	char *tbuf;
	size_t tlen;
	bool tcut;
};

/* The callout engine's state (main thread). */
struct callout_co {
	struct callout_hooks hooks;
	struct callout_dom *doms;
	struct callout_dom *kick;	/* domains with work to schedule */
	struct callout_pend **tab;
	size_t tab_size, tab_count;
	uint8_t hkey[16];
	struct callout_pend *hold_head, *hold_tail;
	struct sess *sessions;
	struct sess *graveyard;		/* closed sessions, freed by callout_tick */
	uint32_t nsessions, nqueued, ninflight, ngated;
	uint32_t queue_max;
	uint32_t dns_timeout_ms, mx_min_ttl;	/* from the configuration */
	uint64_t last_sweep_ms;
	uint64_t st[CALLOUT_ST__COUNT];
	char hostname[256];
	SSL_CTX *ssl_ctx;		/* STARTTLS on callouts; NULL = unavailable */
	struct sockaddr_storage own[CALLOUT_OWN_MAX];	/* this host's addresses */
	unsigned nown;
	bool inited;
};
extern struct callout_co callout_co;

/* Each of the two files points co at callout_co. */
#define ST(x) (co->st[CALLOUT_ST_##x]++)

/* ---- csession.c */

/* Enter state st: send what it sends, arm its timer (see csession.c). */
void enter_state(struct sess *s, enum sess_state st);
/* End the session politely (QUIT). */
void send_quit(struct sess *s);
/* Connect to the next destination of the round: 0, or -errno when none is
 * left or the socket could not be made. */
int connect_next(struct sess *s);
/* The destination did not greet: on to the next of the round, or the
 * round is over (round_over: unverifiable when one refused us with a 5xx,
 * else a temporary failure). */
void greeting_failed(struct sess *s, const char *why);
void round_over(struct sess *s, const char *why);
/* Destinations of the best MX preference (all of an explicit list). */
unsigned primaries(const struct callout_dom *d);

/* ---- callout.c (scheduler) */

/* A session's EHLO/HELO succeeded (the breaker closes). */
void sess_success(struct sess *s);
/* Take a batch from the queue and start a transaction (or QUIT). */
void tx_start(struct sess *s);
/* The transaction's last RCPT reply came: RSET for more, or QUIT. */
void tx_done(struct sess *s);
/* The reply to the next RCPT of the transaction is in s->rcode/renh/rtext. */
void on_rcpt_reply(struct sess *s, const char *enh);
/* Answer the transaction's unanswered addresses with verdict. */
void fail_tx(struct sess *s, int verdict, uint16_t code, const char *enh, const char *why);
/* The destination refuses callouts: fail open for ttl_unverifiable. */
void mark_unverifiable(struct callout_dom *d, uint16_t code, const char *reply);
/* The session ended without finishing its work (a breaker failure before
 * EHLO succeeded). */
void sess_fail(struct sess *s, int verdict, uint16_t code, const char *why);
/* Close the session (freed at the next tick); its addresses go back or are
 * answered. */
void sess_close(struct sess *s, bool ok);

#endif
