/*
 * addr.h — RCPT/MAIL path parsing and normalisation to the canonical key text
 * (RFC 5321 4.1.2, 4.5.3.1; RFC 6531 for SMTPUTF8).
 *
 * addr_parse_path() takes what follows "RCPT TO:" / "MAIL FROM:" on the command
 * line (optional spaces, "<path>", then optional ESMTP parameters, which are
 * ignored) and yields the local part and domain.  addr_canonical() then builds
 * "local@domain": the domain lowercased (ASCII only), the local part lowercased
 * unless the domain is case-sensitive, a quoted local part unquoted when its
 * content is a valid dot-atom, otherwise kept quoted with only the necessary
 * backslashes.  Bytes >= 0x80 (SMTPUTF8) are kept as they are.
 * Malformed input is an error, never a guess.  No allocation, no str* on input.
 * Any thread; pure functions over caller buffers.
 *
 * Input and limits:
 * - buf is the command argument without the line terminator; it need not be
 *   NUL-terminated.  Leading spaces are skipped; a CR, LF, TAB, NUL or other
 *   control character anywhere is ADDR_E_CTRL.
 * - Limits (shm.h): RG_LOCAL_MAX octets of local part as written (quotes
 *   included), RG_DOMAIN_MAX octets of domain as written, 63 octets per ASCII
 *   label (RFC 1035), RG_PATH_MAX octets of path including "<" and ">".
 *   The local and domain limits are checked as each part ends, the path
 *   limit at the closing ">" (so a 256-octet domain is ADDR_E_DOMAIN_TOOLONG,
 *   while a 253-octet one in "<a@...>" is ADDR_E_TOOLONG).
 * - A source route "@a,@b:" is syntax-checked and dropped (ADDR_F_ROUTE).
 * - "<postmaster>" (any case, unquoted, no route) sets ADDR_F_POSTMASTER with
 *   an empty domain; any other mailbox without "@" is ADDR_E_NOAT.
 * - Bytes >= 0x80 must be well-formed UTF-8; they are kept, never case-folded.
 *   U-labels are not converted to A-labels (no IDNA in a libc-only library):
 *   "bücher.example" and "xn--bcher-kva.example" give different keys.
 * - An empty quoted local part ("") is refused.  Address literals: IPv4 and
 *   "IPv6:" only (no other tag is registered); lowercased like any domain,
 *   not otherwise rewritten.
 * - After the path: nothing, or one or more spaces then esmtp-params
 *   (keyword ["=" value]) separated by spaces; anything else is ADDR_E_PARAM.
 * - The canonical form of a canonical form is itself (idempotent), and its
 *   length never exceeds the raw local part + 1 + the raw domain.
 */
#ifndef RG_ADDR_H
#define RG_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm.h"

enum addr_err {
	ADDR_OK = 0,
	ADDR_E_EMPTY = -1,	  /* nothing after the colon */
	ADDR_E_NOBRACKET = -2,	  /* path not enclosed in <> */
	ADDR_E_TOOLONG = -3,	  /* path over RG_PATH_MAX octets */
	ADDR_E_LOCAL_TOOLONG = -4,/* local part over RG_LOCAL_MAX */
	ADDR_E_DOMAIN_TOOLONG = -5,
	ADDR_E_LOCAL = -6,	  /* bad local part syntax */
	ADDR_E_DOMAIN = -7,	  /* bad domain / address literal syntax */
	ADDR_E_ROUTE = -8,	  /* bad source route */
	ADDR_E_NOAT = -9,	  /* no '@' and not <postmaster> */
	ADDR_E_CTRL = -10,	  /* control character or NUL */
	ADDR_E_PARAM = -11,	  /* garbage where ESMTP parameters belong */
	ADDR_E_NOSPACE = -12,	  /* output buffer too small */
};

enum addr_flags {
	ADDR_F_NULL = 1u << 0,	     /* "<>" (valid for MAIL FROM only) */
	ADDR_F_POSTMASTER = 1u << 1, /* "<postmaster>" without a domain */
	ADDR_F_QUOTED = 1u << 2,     /* local part was a quoted string */
	ADDR_F_UTF8 = 1u << 3,	     /* bytes >= 0x80 present */
	ADDR_F_LITERAL = 1u << 4,    /* domain is an address literal [..] */
	ADDR_F_ROUTE = 1u << 5,	     /* a source route was dropped */
};

/* Result of parsing; points into the caller's input buffer. */
struct addr_parsed {
	const char *local;	/* raw local part as written (quotes included) */
	size_t local_len;
	const char *domain;	/* raw domain as written */
	size_t domain_len;
	size_t path_len;	/* bytes consumed by "<...>" incl. brackets */
	unsigned flags;		/* enum addr_flags */
};

/* Parse "[ ]*<path>[ params]" from buf[0..len).  Returns ADDR_OK or an error;
 * on error *out is zeroed.  "<>" gives ADDR_F_NULL with empty parts. */
int addr_parse_path(const char *buf, size_t len, struct addr_parsed *out);

/* Lowercase (ASCII) domain into out; returns its length or an error. */
int addr_domain_lower(const struct addr_parsed *a, char *out, size_t outlen);

/* Canonical "local@domain" into out (no NUL added); returns its length or an
 * error.  <postmaster> yields "postmaster" (RFC 5321 4.5.1: case-insensitive),
 * "<>" the empty string (length 0).  a must come from addr_parse_path(); an
 * output of RG_ADDR_MAX bytes is always enough. */
int addr_canonical(const struct addr_parsed *a, bool case_sensitive, char *out,
		   size_t outlen);

/* Convenience for control-plane input (rcptctl, lists, policy service): a bare
 * "local@domain" or "<...>" string to canonical form, domain case rule given.
 * Spaces around it are allowed, nothing else (no parameters, no route in the
 * bare form); a bare address must fit in RG_PATH_MAX once bracketed.  A bare
 * "postmaster" is accepted like "<postmaster>", so that every canonical
 * output normalises to itself. */
int addr_normalize(const char *in, size_t len, bool case_sensitive, char *out,
		   size_t outlen);

const char *addr_strerror(int err);

#endif
