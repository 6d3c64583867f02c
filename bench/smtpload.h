/*
 * smtpload.h — an SMTP load generator: many concurrent sessions on one
 * epoll loop, each sending transactions of M recipients (pipelined when the
 * server offers PIPELINING), a given share of them invalid, a small body for
 * transactions with an accepted recipient, RSET otherwise.  Used by
 * `rcptgate-bench peer` and `rcptgate-bench smtpload`.
 */
#ifndef RG_SMTPLOAD_H
#define RG_SMTPLOAD_H

#include <stdint.h>

struct smtpload_cfg {
	const char *server;	/* IPv4 or IPv6 literal */
	uint16_t port;
	unsigned concurrency;	/* sessions open at once */
	unsigned sessions;	/* sessions in all */
	unsigned messages;	/* transactions per session */
	unsigned rcpts;		/* recipients per transaction */
	double invalid_share;	/* 0..1 */
	int invalid_by_session;	/* 1: sessions are either dictionary attacks (rcpts
				 * invalid recipients) or legitimate (legit_rcpts
				 * valid ones), mixed so that invalid_share of all
				 * recipients are invalid; 0: each RCPT drawn alone */
	unsigned legit_rcpts;	/* recipients per legitimate transaction */
	unsigned valid_users;	/* valid local parts: user0 .. user(N-1) */
	const char *domain;
	int pipelining;		/* use PIPELINING when offered */
	unsigned timeout_ms;	/* per reply */
	uint64_t seed;
};

struct smtpload_result {
	uint64_t rcpt_sent, rcpt_2xx, rcpt_4xx, rcpt_5xx;
	uint64_t rcpt_valid_sent;	/* recipients chosen from the valid set */
	uint64_t rcpt_valid_2xx;	/* of those, accepted */
	uint64_t rcpt_invalid_5xx;	/* invalid ones refused with 5xx */
	uint64_t messages_sent, messages_accepted;
	uint64_t sessions_ok, sessions_failed;
	double seconds;
	double p50_ms, p99_ms;		/* transaction latency (MAIL to last RCPT reply) */
	char first_error[160];
};

/* Runs to completion (or timeout); returns 0, or -errno on set-up failure. */
int smtpload_run(const struct smtpload_cfg *cfg, struct smtpload_result *res);

void smtpload_cfg_default(struct smtpload_cfg *cfg);

#endif
