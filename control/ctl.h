/*
 * ctl.h — rcptgated's control socket: a Unix stream socket (mode 0660) that
 * speaks ctlproto.h to rcptctl and answers each verb through core.h.
 *
 * Who may talk: the peer's credentials (SO_PEERCRED) give it a role.  Root,
 * and uids or groups in control_admins (control_uids is its older name), may
 * use every verb; those in control_readers only the read-only ones (status,
 * stats, lookup, domains, blocks): any other verb is answered "denied" and
 * the connection stays.  A group matches the peer's primary group or, for a
 * uid with a passwd entry, its supplementary groups.  Anyone else gets a
 * "denied" answer and is disconnected.  Refusals are logged rate-limited.
 * Limits (each enforced and counted, see ctl_stats_foreach()):
 *   CTL_CONN_MAX connections in all, control_max_clients per uid;
 *   one request in flight per connection, its frame bounded by
 *   CTLPROTO_REQ_MAX; answers bounded by CTLPROTO_RESP_MAX;
 *   a connection idle for CTL_IDLE_MS, or one that has not finished sending
 *   its request by then, is closed.
 * A frame that is malformed, of another protocol version or oversized gets
 * one error answer, then the connection is closed.
 *
 * Thread: rcptgated's main (event-loop) thread only.  ctl_start(),
 * ctl_reload() and ctl_stop() are declared in core.h.
 */
#ifndef RG_CTL_H
#define RG_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core.h"

#define CTL_CONN_MAX 64u		/* connections at once, all uids */
#define CTL_IDLE_MS 30000u		/* idle or incomplete request: closed */
#define CTL_BACKLOG 16
#define CTL_SOCKET_MODE 0660
#define CTL_DEF_MAX_PER_UID 8u		/* when control_max_clients is 0 */

/* Counters (group "ctl"). */
#define CTL_STATS_LIST(X)                                                        \
	X(ACCEPTED, "accepted", "connections accepted and admitted")             \
	X(DENIED, "denied", "connections refused: uid not allowed")              \
	X(VERB_DENIED, "verb_denied", "state-changing verbs refused to a reader") \
	X(BUSY, "busy", "connections refused: too many (per uid or in all)")     \
	X(REQUESTS, "requests", "requests answered")                             \
	X(BADREQ, "badreq", "malformed requests (connection closed)")           \
	X(VERSION, "version", "requests of another protocol version (closed)")   \
	X(TOOBIG, "toobig", "requests over CTLPROTO_REQ_MAX (closed)")          \
	X(ANSWER_TOOBIG, "answer_toobig", "answers over CTLPROTO_RESP_MAX")      \
	X(IDLE_CLOSED, "idle_closed", "connections closed for idling")           \
	X(IO_ERRORS, "io_errors", "connections lost on a read/write error")      \
	X(VERIFY_CANCELLED, "verify_cancelled", "verify callers gone before the answer")

enum ctl_stat_id {
#define CTL_STAT_ENUM(id, name, help) CTL_ST_##id,
	CTL_STATS_LIST(CTL_STAT_ENUM)
#undef CTL_STAT_ENUM
	CTL_ST__COUNT
};

/* Counters for `rcptctl stats`. */
void ctl_stats_foreach(core_stat_fn fn, void *arg);

/* One counter (tests). */
uint64_t ctl_stat(enum ctl_stat_id id);

/* Connections open now (tests). */
unsigned ctl_conns_open(void);

enum ctl_role { CTL_ROLE_NONE = 0, CTL_ROLE_READER, CTL_ROLE_ADMIN };

/* The role of a peer with uid and primary gid under cfg (root: admin). */
enum ctl_role ctl_role(const struct config *cfg, uid_t uid, gid_t gid);

/* Whether the verb only reads (allowed to readers). */
bool ctl_verb_readonly(unsigned verb);

#endif
