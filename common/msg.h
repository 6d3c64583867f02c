/*
 * msg.h — the fixed-size records the data plane sends rcptgated over the
 * per-lcore SPSC rings (spsc.h): misses to verify, and events to log/act on.
 */
#ifndef RG_MSG_H
#define RG_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "shm.h"

/* A recipient the table did not know: rcptgated verifies it. */
struct msg_miss {
	uint64_t key_hi, key_lo;	/* khash128 of addr, as the table keys it */
	uint64_t ts_ns;			/* CLOCK_REALTIME */
	uint16_t len;			/* bytes of addr */
	uint16_t _pad0;
	uint32_t _pad1;
	char addr[RG_ADDR_MAX];		/* canonical local@domain, not NUL-terminated */
	uint8_t _reserved[320 - 32 - RG_ADDR_MAX];
};
_Static_assert(sizeof(struct msg_miss) == 320, "msg_miss size");
_Static_assert(offsetof(struct msg_miss, addr) == 32, "msg_miss addr offset");

enum msg_event_type {
	MSG_EV_REJECT = 1,	/* RCPT answered 550 5.1.1 by the data plane */
	MSG_EV_DEFER = 2,	/* RCPT answered 450 (miss, defer policy) */
	MSG_EV_HARVEST = 3,	/* source over the invalid-recipient threshold */
	MSG_EV_FAILOPEN = 4,	/* the data plane stopped parsing a session (code:
				 * enum msg_failopen); its bytes pass unchecked */
	MSG_EV_WARN = 5,	/* DT_F_WARN: forwarded; code and count (the MSG_EV_REJECT or
				 * MSG_EV_DEFER it stands for) say what it would have been */
};

/* Why a session was turned to plain forwarding (MSG_EV_FAILOPEN's code). */
enum msg_failopen {
	MSG_FO_LINE = 1,	/* a command line over line_max */
	MSG_FO_QUEUE = 2,	/* the reply queue or edit list was full */
	MSG_FO_BDAT = 3,	/* BDAT of unknown length, or with capabilities unseen */
	MSG_FO_PIN = 4,		/* no busy block to keep the session's bytes */
	MSG_FO_FIN = 5,		/* the client closed with a partial command line */
};

/* One event: who, what, and the session's identity as Postfix logs it. */
struct msg_event {
	uint16_t type;		/* enum msg_event_type */
	uint16_t code;		/* SMTP reply code sent: 550, 450, 421 */
	uint8_t family;		/* 4 or 6 */
	uint8_t prefix_len;	/* MSG_EV_HARVEST: the prefix that tripped (32, 24, 64) */
	uint16_t _pad0;
	uint64_t ts_ns;		/* CLOCK_REALTIME */
	uint8_t client_ip[16];	/* IPv4 in the first 4 bytes */
	uint8_t server_ip[16];
	uint16_t client_port, server_port;
	uint16_t helo_len, from_len, rcpt_len;
	uint16_t _pad1;
	uint32_t count;		/* MSG_EV_HARVEST: invalid recipients in the window */
	char helo[256];		/* as the client sent it, not NUL-terminated */
	char from[RG_PATH_MAX];	/* MAIL FROM address without brackets */
	char rcpt[RG_ADDR_MAX];	/* canonical recipient */
	uint8_t _reserved[1024 - 64 - 256 - RG_PATH_MAX - RG_ADDR_MAX];
};
_Static_assert(sizeof(struct msg_event) == 1024, "msg_event size");
_Static_assert(offsetof(struct msg_event, helo) == 64, "msg_event helo offset");

#endif
