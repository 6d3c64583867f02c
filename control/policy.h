/*
 * policy.h — the Postfix SMTP access policy delegation service
 * (check_policy_service): an MTA that terminates sessions the data plane
 * cannot read (TLS on 465/587, or a Postfix in front of the data plane)
 * asks rcptgated about each recipient and gets the same verdicts from the
 * same table and callouts.
 *
 * Protocol (Postfix SMTPD_POLICY_README): the client sends "name=value"
 * lines, an empty line ends the request; the server answers one
 * "action=..." line and an empty line, and keeps the connection for the next
 * request.  Unknown attributes are ignored.  For protocol_state=RCPT the
 * answer is
 *   action=550 5.1.1 User unknown
 *   action=450 4.7.1 verification in progress
 *       (nothing known yet, or the last probe failed temporarily, and the
 *        domain's miss policy is defer)
 *   action=DUNNO   (valid, unmanaged, accept-all, failing open, miss policy pass,
 *                   any other protocol state, a missing or unparsable recipient)
 * Postfix puts "<rcpt>: Recipient address rejected: " in front of the text of
 * a 4xx/5xx action, so its client reads exactly what the data plane answers
 * itself: "550 5.1.1 <rcpt>: Recipient address rejected: User unknown".
 * A miss waits up to policy_timeout_ms for its callout before answering.
 *
 * Listeners: policy_listen is a comma-separated list of "host:port",
 * "[v6addr]:port", ":port" / "port" (127.0.0.1) or an absolute Unix socket
 * path (policy_socket_mode, 0660 by default, in policy_socket_group: the
 * MTA's group, e.g. postfix, and nobody else, may ask which addresses exist
 * and trigger callouts).  A TCP listener serves only clients from
 * policy_allow (loopback by default); others are closed at once, counted
 * (denied) and logged rate-limited.
 *
 * Limits (enforced and counted, see policy_stats_foreach()): a line over
 * POLICY_LINE_MAX octets, a request over POLICY_REQ_MAX octets or
 * POLICY_ATTRS_MAX attributes, a NUL or a line without '=' end the
 * connection (the protocol has no error reply; Postfix then applies its
 * smtpd_policy_service_default_action); at most policy_max_clients
 * connections; a connection idle for POLICY_IDLE_MS is closed.
 *
 * Thread: rcptgated's main (event-loop) thread.  The parser and the reply
 * builder are pure functions (tests call them directly).
 */
#ifndef RG_POLICY_H
#define RG_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

#define POLICY_LINE_MAX 2048u		/* octets of one name=value line */
#define POLICY_REQ_MAX 16384u		/* octets of one request */
#define POLICY_ATTRS_MAX 128u		/* attributes of one request */
#define POLICY_NAME_MAX 64u		/* octets of an attribute name */
#define POLICY_REPLY_MAX 512u		/* octets of one answer */
#define POLICY_IDLE_MS 330000u		/* > Postfix's policy max_idle (300 s) */
#define POLICY_LISTEN_MAX 4u		/* listeners in policy_listen */
#define POLICY_CLIENTS_HARD_MAX 4096u	/* ceiling for policy_max_clients */
#define POLICY_DEF_MAX_CLIENTS 512u	/* when policy_max_clients is 0 */
#define POLICY_BACKLOG 128
#define POLICY_DEF_PORT_HOST "127.0.0.1"
#define POLICY_REJECT_TEXT "550 5.1.1 User unknown"
#define POLICY_REJECT_450_TEXT "450 4.1.1 User unknown"	/* reject_code = 450 */
#define POLICY_DEFER_TEXT "450 4.7.1 verification in progress"

/* The attributes the service reads; others are skipped. */
enum policy_attr {
	PA_REQUEST = 0,		/* "smtpd_access_policy" */
	PA_PROTOCOL_STATE,	/* CONNECT, EHLO, HELO, MAIL, RCPT, DATA, ... */
	PA_RECIPIENT,
	PA_SENDER,
	PA_CLIENT_ADDRESS,
	PA_CLIENT_NAME,
	PA_HELO_NAME,
	PA_QUEUE_ID,
	PA_INSTANCE,
	PA__COUNT
};

/* A request as parsed: each known attribute's value (NUL-terminated; the
 * last occurrence wins), which were present, which did not fit their field. */
struct policy_req {
	char request[32];
	char protocol_state[32];
	char recipient[RG_PATH_MAX + 1];
	char sender[RG_PATH_MAX + 1];
	char client_address[64];
	char client_name[256];
	char helo_name[256];
	char queue_id[64];
	char instance[64];
	uint32_t present;	/* 1 << enum policy_attr */
	uint32_t toolong;	/* 1 << enum policy_attr: value truncated */
	uint32_t nattrs;	/* attributes seen, known or not */
};

enum policy_perr {
	POLICY_P_MORE = 0,	/* all input consumed, request not complete */
	POLICY_P_DONE = 1,	/* a request is complete in p->req */
	POLICY_E_LINE = -1,	/* line over POLICY_LINE_MAX */
	POLICY_E_SIZE = -2,	/* request over POLICY_REQ_MAX */
	POLICY_E_ATTRS = -3,	/* more than POLICY_ATTRS_MAX attributes */
	POLICY_E_SYNTAX = -4,	/* line without '=', empty or oversized name */
	POLICY_E_NUL = -5,	/* NUL octet */
};

/* Resumable parser state: feed it any split of the input. */
struct policy_parser {
	int state;		/* internal */
	char name[POLICY_NAME_MAX + 1];
	uint32_t nlen;		/* octets of name so far */
	int field;		/* enum policy_attr being filled, -1 = skipped */
	uint32_t vlen;		/* octets of the value so far */
	uint32_t line;		/* octets of the line so far */
	uint32_t total;		/* octets of the request so far */
	bool cr;		/* a CR was seen and not yet placed */
	struct policy_req req;
};

void policy_parser_init(struct policy_parser *p);

/*
 * Consumes input up to and including the end of one request.  Returns
 * POLICY_P_DONE with *used octets consumed (the rest belongs to the next
 * request: call policy_parser_init() before feeding it), POLICY_P_MORE with
 * *used == len, or a negative enum policy_perr (the connection must end).
 */
int policy_parse(struct policy_parser *p, const uint8_t *buf, size_t len, size_t *used);

const char *policy_strerror(int err);

/* What to do with a parsed request. */
enum policy_kind {
	PK_CHECK = 0,		/* an RCPT with a recipient: ask the core */
	PK_NOT_RCPT,		/* another protocol state: DUNNO */
	PK_NO_RECIPIENT,	/* RCPT without recipient (or empty): DUNNO */
	PK_BAD_REQUEST,		/* request= missing or not smtpd_access_policy */
	PK_MISSING_STATE,	/* protocol_state missing */
	PK_RECIPIENT_TOOLONG,	/* recipient longer than a path can be: DUNNO */
};
enum policy_kind policy_classify(const struct policy_req *r);

/*
 * Writes the answer ("action=...\n\n") for a recipient into out.  res is the
 * core's answer; res->verdict == CORE_V_NONE means the callout did not
 * answer within policy_timeout_ms, and the domain's miss policy (and
 * failopen) in res decide.  Returns the length, or -ENOSPC.
 */
int policy_reply(const struct core_check *res, char *out, size_t outlen);
/* "action=DUNNO\n\n" */
int policy_reply_dunno(char *out, size_t outlen);

/* Counters (group "policy"). */
#define POLICY_STATS_LIST(X)                                                        \
	X(ACCEPTED, "accepted", "client connections accepted")                      \
	X(BUSY, "busy", "connections refused: policy_max_clients reached")          \
	X(DENIED, "denied", "TCP connections refused: client not in policy_allow")  \
	X(REQUESTS, "requests", "requests answered")                                \
	X(RCPT, "rcpt", "RCPT requests judged")                                     \
	X(REJECT, "reject", "answered 550 5.1.1")                                   \
	X(DEFER, "defer", "answered 450 4.7.1")                                     \
	X(DUNNO, "dunno", "answered DUNNO")                                         \
	X(WARNED, "warned", "refusals answered DUNNO and logged (action = warn)")   \
	X(WAITED, "waited", "answers that waited for a callout")                    \
	X(WAIT_TIMEOUT, "wait_timeout", "callouts not done within policy_timeout_ms") \
	X(NOT_RCPT, "not_rcpt", "requests for other protocol states")               \
	X(NO_RECIPIENT, "no_recipient", "RCPT requests without a recipient")        \
	X(BAD_REQUEST, "bad_request", "requests without request=smtpd_access_policy") \
	X(MISSING_STATE, "missing_state", "requests without protocol_state")        \
	X(BAD_ADDR, "bad_addr", "recipients that do not parse or are too long")     \
	X(LINE_TOO_LONG, "line_too_long", "lines over POLICY_LINE_MAX (closed)")    \
	X(REQ_TOO_BIG, "req_too_big", "requests over the size/attribute limits (closed)") \
	X(SYNTAX, "syntax", "malformed lines or NUL octets (closed)")               \
	X(IDLE_CLOSED, "idle_closed", "connections closed for idling")              \
	X(IO_ERRORS, "io_errors", "connections lost on a read/write error")

enum policy_stat_id {
#define POLICY_STAT_ENUM(id, name, help) POLICY_ST_##id,
	POLICY_STATS_LIST(POLICY_STAT_ENUM)
#undef POLICY_STAT_ENUM
	POLICY_ST__COUNT
};

void policy_stats_foreach(core_stat_fn fn, void *arg);
uint64_t policy_stat(enum policy_stat_id id);
unsigned policy_conns_open(void);

/* The listeners' bound addresses (tests bind port 0): the TCP port of the
 * i-th listener, or 0 when it is not TCP or absent. */
uint16_t policy_listen_port(unsigned i);

#endif
