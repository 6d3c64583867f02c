/*
 * ctlproto.h — the wire protocol of rcptgated's control socket, shared by the
 * server (ctl.c, rcptgated's main thread) and the client (rcptctl).
 *
 * Every message is one frame: a fixed 12-byte header, then a payload.
 *
 *   off size field
 *   0   2    magic    'R' 'G'
 *   2   1    version  CTLPROTO_VERSION; any other value is refused first
 *   3   1    kind     'Q' request, 'A' answer
 *   4   2    code     request: enum ctlproto_verb; answer: enum ctlproto_status
 *   6   2    flags    0 (reserved; anything else is refused)
 *   8   4    length   payload octets (network byte order, as is code)
 *
 * A request payload is a sequence of "key=value\0" arguments; the keys each
 * verb accepts, which are required and how each value is checked are in one
 * table (ctlproto.c).  At most CTLPROTO_REQ_MAX octets, CTLPROTO_ARGS_MAX
 * arguments, CTLPROTO_VAL_MAX octets per value, no key twice.
 * An answer payload is one JSON object (UTF-8, no NUL), at most
 * CTLPROTO_RESP_MAX octets: what `rcptctl --json` prints as it is.
 * Error answers are {"status":"<name>","error":"<message>"}.
 *
 * The frame checker is resumable: fed the bytes received so far, it says
 * "need more", "a frame of N octets is complete" or why the input is refused,
 * and it refuses as early as the header allows (a wrong version or an
 * oversized length is refused before any payload is read).
 * Pure functions over caller buffers; any thread.
 */
#ifndef RG_CTLPROTO_H
#define RG_CTLPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTLPROTO_VERSION 1u
#define CTLPROTO_HDR_LEN 12u
#define CTLPROTO_REQ_MAX 2048u		/* request payload octets */
#define CTLPROTO_RESP_MAX (8u << 20)	/* answer payload octets */
#define CTLPROTO_ARGS_MAX 8u		/* arguments per request */
#define CTLPROTO_KEY_MAX 16u		/* octets of a key */
#define CTLPROTO_VAL_MAX 512u		/* octets of a value */
#define CTLPROTO_TTL_MAX (10u * 365u * 86400u) /* seconds; 10 years */

#define CTLPROTO_KIND_REQ 'Q'
#define CTLPROTO_KIND_ANS 'A'

/* Verbs; values are on the wire: append only. */
#define CTLPROTO_VERBS(X)                                                   \
	X(STATUS, 1, "status", "daemon state, shared memory, data plane")   \
	X(STATS, 2, "stats", "counters of both planes")                     \
	X(LOOKUP, 3, "lookup", "the table's verdict for an address")        \
	X(VERIFY, 4, "verify", "callout now; SMTP transcript and verdict")  \
	X(SET, 5, "set", "set a verdict by hand")                           \
	X(DEL, 6, "del", "forget an address")                               \
	X(FLUSH, 7, "flush", "forget a domain's verdicts, or all")          \
	X(DOMAINS, 8, "domains", "managed domains and their state")        \
	X(RELOAD, 9, "reload", "re-read the configuration")                 \
	X(BLOCK, 10, "block", "drop a source prefix in XDP")                \
	X(UNBLOCK, 11, "unblock", "remove a source prefix from the blocklist") \
	X(BLOCKS, 12, "blocks", "list the blocklist")                       \
	X(TOP, 13, "top", "the domains and client prefixes most refused")

enum ctlproto_verb {
	CTLV_NONE = 0,
#define CTLPROTO_VERB_ENUM(id, val, name, help) CTLV_##id = val,
	CTLPROTO_VERBS(CTLPROTO_VERB_ENUM)
#undef CTLPROTO_VERB_ENUM
	CTLV__MAX
};

/* Answer status; values are on the wire: append only. */
#define CTLPROTO_STATUSES(X)                                                  \
	X(OK, 0, "ok")                /* done; payload is the result */       \
	X(NOTFOUND, 1, "notfound")    /* the address/prefix is not known */  \
	X(BADREQ, 2, "badrequest")    /* malformed request; connection closed */ \
	X(VERSION, 3, "version")      /* protocol version mismatch; closed */ \
	X(DENIED, 4, "denied")        /* caller's uid not allowed; closed */  \
	X(BUSY, 5, "busy")            /* too many connections; closed */      \
	X(FAILED, 6, "failed")        /* the daemon could not do it */        \
	X(UNAVAILABLE, 7, "unavailable") /* feature not running (e.g. XDP) */ \
	X(TOOBIG, 8, "toobig")        /* request over the size limit; closed */

enum ctlproto_status {
#define CTLPROTO_STATUS_ENUM(id, val, name) CTLS_##id = val,
	CTLPROTO_STATUSES(CTLPROTO_STATUS_ENUM)
#undef CTLPROTO_STATUS_ENUM
	CTLS__MAX
};

/* Argument keys. */
enum ctlproto_key {
	CTLK_ADDR = 0,	/* "addr": an address, local@domain or <...> */
	CTLK_VERDICT,	/* "verdict": valid | invalid */
	CTLK_TTL,	/* "ttl": seconds, 1..CTLPROTO_TTL_MAX */
	CTLK_DOMAIN,	/* "domain": a domain name */
	CTLK_ALL,	/* "all": 1 */
	CTLK_PREFIX,	/* "prefix": IPv4/IPv6 address, optional /len */
	CTLK__MAX
};

/* Why a frame or request is refused (negative); 0 = fine. */
enum ctlproto_err {
	CTLP_OK = 0,
	CTLP_E_MAGIC = -1,	/* not a frame of this protocol */
	CTLP_E_VERSION = -2,	/* protocol version differs */
	CTLP_E_KIND = -3,	/* request where an answer belongs or the reverse */
	CTLP_E_FLAGS = -4,	/* reserved flags set */
	CTLP_E_TOOBIG = -5,	/* payload length over the limit */
	CTLP_E_VERB = -6,	/* unknown verb / status code */
	CTLP_E_SYNTAX = -7,	/* argument not "key=value\0" */
	CTLP_E_KEY = -8,	/* key unknown or not taken by this verb */
	CTLP_E_DUP = -9,	/* key given twice */
	CTLP_E_MISSING = -10,	/* required key absent */
	CTLP_E_VALUE = -11,	/* value empty, too long or malformed */
	CTLP_E_TOOMANY = -12,	/* more than CTLPROTO_ARGS_MAX arguments */
	CTLP_E_NOSPACE = -13,	/* caller's output buffer too small */
	CTLP_E_PAYLOAD = -14,	/* answer payload not a JSON object text */
};

struct ctlproto_hdr {
	uint8_t version;
	uint8_t kind;
	uint16_t code;
	uint16_t flags;
	uint32_t len;
};

/* A decoded request; values point into the caller's payload buffer and are
 * NUL-terminated there. */
struct ctlproto_req {
	enum ctlproto_verb verb;
	const char *arg[CTLK__MAX];	/* NULL when absent */
	uint32_t ttl;			/* parsed CTLK_TTL, 0 when absent */
};

/*
 * Looks at the first have octets of a stream that should start with a frame
 * of the given kind; max is the payload limit for that kind.  Returns the
 * whole frame's length when it is complete, 0 when more octets are needed,
 * or a negative enum ctlproto_err as soon as the octets seen are refused.
 * *hdr is filled once the header is complete (also on CTLP_E_TOOBIG etc.,
 * when the header could be read).
 */
long ctlproto_frame_check(const uint8_t *buf, size_t have, uint8_t kind, uint32_t max,
			  struct ctlproto_hdr *hdr);

/* Writes a header for a payload of len octets into out[CTLPROTO_HDR_LEN]. */
void ctlproto_hdr_write(uint8_t *out, uint8_t kind, uint16_t code, uint32_t len);

/*
 * Encodes a request frame: verb, then n "key", "value" pairs.  Checks them
 * as the server will (so rcptctl refuses bad input itself, exit code 2).
 * Returns the frame length, or a negative enum ctlproto_err.
 */
struct ctlproto_kv {
	enum ctlproto_key key;
	const char *val;
};
long ctlproto_req_encode(uint8_t *out, size_t outlen, enum ctlproto_verb verb,
			 const struct ctlproto_kv *kv, unsigned n, const char **where);

/*
 * Decodes and validates a request payload (the octets after the header)
 * for the verb in hdr.code (hdr.len octets).  Values are NUL-terminated on
 * the wire, so req->arg[] point into payload unchanged.  An address value
 * must normalise (addr_normalize), a prefix parse, a TTL be in range.
 * Returns 0 or a negative enum ctlproto_err; *where (may be NULL) is set to
 * the offending key's name when there is one.
 */
int ctlproto_req_decode(const struct ctlproto_hdr *hdr, const uint8_t *payload,
			struct ctlproto_req *req, const char **where);

/*
 * Checks an answer payload as far as the framing promises: printable JSON
 * object text without NUL.  Returns 0 or CTLP_E_PAYLOAD.
 */
int ctlproto_ans_check(const uint8_t *payload, uint32_t len);

/* Names: verb and key names as on the command line; status names as in the
 * JSON "status" member; error texts for messages. */
const char *ctlproto_verb_name(enum ctlproto_verb v);
const char *ctlproto_verb_help(enum ctlproto_verb v);
enum ctlproto_verb ctlproto_verb_by_name(const char *name);
const char *ctlproto_key_name(enum ctlproto_key k);
const char *ctlproto_status_name(unsigned status);
const char *ctlproto_strerror(int err);

/* Parses "198.18.0.0/15", "2001:2::/48" or a bare address (full length).
 * Host bits beyond the prefix must be zero.  family is AF_INET or AF_INET6;
 * addr holds 4 or 16 octets.  Returns 0 or CTLP_E_VALUE. */
int ctlproto_parse_prefix(const char *s, int *family, uint8_t addr[16], unsigned *plen);

/* Parses a duration: digits with an optional unit s, m, h, d, w;
 * 1..CTLPROTO_TTL_MAX seconds.  Returns 0 or CTLP_E_VALUE. */
int ctlproto_parse_ttl(const char *s, uint32_t *secs);

/*
 * Appends s as a JSON string (quoted, escaped) at out+*pos, never past
 * outlen (keeps room for a NUL).  Returns 0 or CTLP_E_NOSPACE.  For error
 * answers and for anyone building answers by hand.
 */
int ctlproto_json_str(char *out, size_t outlen, size_t *pos, const char *s, size_t len);

/* Builds an error answer frame {"status":..,"error":..} into out; returns the
 * frame length or CTLP_E_NOSPACE. */
long ctlproto_err_answer(uint8_t *out, size_t outlen, enum ctlproto_status st,
			 const char *msg);

#endif
