/*
 * fleet.c — the fleet service (fleet.h): Redis through hiredis's
 * asynchronous client, plugged into rcptgated's event loop by hiredis's
 * adapter hooks (addRead/delRead/addWrite/delWrite/cleanup turn into
 * loop_add_fd/loop_mod_fd/loop_del_fd), so no call here ever waits for Redis.
 *
 * Two connections: "cmd" for keys, locks and the stream's appends, "stream"
 * for the blocking XREAD that applies the other nodes' verdicts (a blocked
 * read would hold every command queued behind it).  Keys, under the prefix:
 *
 *   v:<hex key>   one verdict, SET with the verdict's own expiry (EXAT);
 *                 before it, the address's callout lock ("L <node>",
 *                 SET NX PX callout_lock), which the verdict replaces
 *   l:<hex key>   the lock of a refresh (a verdict is there, due again)
 *   stream        the update stream, XADD MAXLEN ~ stream_max: one entry
 *                 per shared batch, an "r" field per verdict
 *
 * <hex key> is the table's keyed hash of the canonical address under the
 * fleet's shared secret: fixed-length keys that only the fleet can compute.
 * The address itself travels inside the value (the store is keyed by it).
 *
 * The gate (an address about to be queued for a callout): SET v:<key>
 * "L <node>" NX PX GET, one command: a live verdict found there is applied
 * and answers it; the key free, the lock is taken: this node calls out and
 * shares the verdict, which replaces the lock (a lock whose callout gave no
 * verdict is left to expire: deleting it would let a node whose look just
 * missed call out again); another node's lock there, it waits for the
 * verdict on the stream, at most callout_wait, then calls out alone.  A
 * verdict due for refresh takes the lock of its own, l:<key>.  Every failure (Redis down, an error reply) lets the
 * callout go at once, counted "uncoordinated".  Both steps are one script,
 * run once per loop turn for every address the turn gated (up to
 * FLEET_BATCH_MAX per call); the verdicts a turn learned are shared the same
 * way (key + stream entry each, one call), so Redis is asked per turn, not
 * per address.
 *
 * Harvest (harvest_limit > 0): every rejection the data plane reports is
 * counted per source prefix (IPv4 /32 and /24, IPv6 /64, as the data plane
 * counts), added to Redis every FLEET_HARVEST_FLUSH_MS (h:<window>:<prefix>,
 * INCRBY + PEXPIRE in one script that also reads the previous window); the
 * fleet's sum over a sliding window reaching harvest_limit blocks the prefix
 * on every node.  A block, decided here (this sum, or the data plane's own
 * harvest report) or by hand (rcptctl block/unblock), goes on the stream;
 * b:<prefix> (SET NX PX block_ttl) makes one node announce a harvest block;
 * every block also lives in its b: key until it ends, so a node that
 * resynchronises from the keys (new, or away longer than the stream
 * remembers) enters the blocks decided before it came.
 * Each node enters it in its XDP blocklist through the xdp module (harvest
 * blocks with its backoff and allowlist, manual ones as given).
 *
 * Budgets: dest_conn_rate and dest_rcpt_rate of a domain hold for the fleet
 * as a whole: one token bucket per domain and kind in Redis (r:<domain>,
 * a script run by EVALSHA: refill by Redis's clock, take what is there up
 * to what was asked).  A node asks for a tenth of a second's worth at a
 * time and keeps at most two such batches, so Redis is asked about ten times
 * a second per busy domain, not per RCPT.  Redis down: each node refills
 * its own bucket (single-box rates, per node).  dest_max_conns: a semaphore
 * per domain (s:<domain>, a sorted set of leases scored by their expiry),
 * one slot taken per session wanted beyond those held, leases renewed every
 * FLEET_SLOT_RENEW_MS while held, slots beyond the sessions open given back
 * after FLEET_SLOT_IDLE_MS without waiting addresses; a node that dies
 * leaves its slots to expire (FLEET_SLOT_LEASE_MS).
 *
 * A restart resumes from the stream position saved next to the store
 * (FLEET_POS_FILE, written once a second with the id read a second earlier,
 * whose verdicts the store has committed since; a lost or stale file only
 * means a resynchronisation from the keys).
 *
 * Down and back: the first failure is logged once; reconnects back off from
 * FLEET_BACKOFF_MIN_MS doubling to reconnect_max; verdicts learned meanwhile
 * wait in an outbox (FLEET_OUTBOX_MAX, the newest per address, the rest
 * counted as dropped) and are written when Redis is back; the stream
 * connection resumes from its last id, or resynchronises from the keys
 * (SCAN + MGET) when it has none yet or the stream was trimmed past it.
 * Thread: main thread only.
 */
#include "fleet.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "khash.h"
#include "log.h"
#include "loop.h"
#include "rtable.h"
#include "ttl.h"
#include "xdp.h"

#define FLEET_STATS_LIST(X)                                                             \
	X(CONNECTS, "connects", "Redis connections established")                        \
	X(CONNECT_FAILS, "connect_failures", "Redis connection attempts that failed")   \
	X(DISCONNECTS, "disconnects", "Redis connections lost")                         \
	X(OUTAGES, "outages", "times Redis became unreachable (logged once each)")      \
	X(TIMEOUTS, "timeouts", "Redis replies not received within redis_timeout")      \
	X(ERRORS, "error_replies", "Redis error replies")                               \
	X(PUBLISHED, "published", "verdicts written to Redis (key + stream)")           \
	X(DELETES_SENT, "deletes_published", "removals by hand written to Redis")       \
	X(OUTBOX_DROPPED, "outbox_dropped", "verdicts not kept for Redis: outbox full") \
	X(APPLIED, "applied", "verdicts from the fleet applied to the store and table") \
	X(APPLY_KEPT, "apply_kept", "fleet verdicts not applied: a newer or manual one is kept") \
	X(APPLY_SKIPPED, "apply_skipped", "fleet verdicts for domains not managed here") \
	X(APPLY_BAD, "apply_bad", "malformed fleet records skipped")                    \
	X(DELETES, "deletes_applied", "removals from the fleet applied")                \
	X(GATED, "gate_asked", "callouts looked up in Redis first")                     \
	X(GATE_HITS, "gate_hits", "callouts saved: the verdict was in Redis")           \
	X(GATE_FULL, "gate_full", "callouts not coordinated: FLEET_GATES_MAX waiting")  \
	X(LOCKS, "locks_taken", "callout locks taken (this node calls out)")            \
	X(LOCK_WAITS, "lock_waits", "callouts left to the node holding the lock")       \
	X(LOCK_SERVED, "lock_wait_served", "waits answered by the other node's verdict") \
	X(LOCK_TIMEOUTS, "lock_timeouts", "waits over callout_wait: called out alone")  \
	X(UNCOORDINATED, "uncoordinated", "callouts made without the fleet (Redis down or failing)") \
	X(STREAM_READS, "stream_reads", "XREAD replies")                                \
	X(RESYNCS, "resyncs", "full resynchronisations from the keys")                  \
	X(RESYNC_KEYS, "resync_keys", "keys read by resynchronisations")                \
	X(POS_ERRORS, "position_errors", "stream positions that could not be saved next to the store")                \
	X(REJECTS_COUNTED, "harvest_counted", "rejections counted for the fleet's harvest sums") \
	X(HARVEST_DROPPED, "harvest_dropped", "rejections not counted: FLEET_HARVEST_SLOTS full or Redis down") \
	X(HARVEST_BLOCKS, "harvest_blocks", "harvest blocks this node announced to the fleet") \
	X(BLOCKS_SHARED, "blocks_shared", "blocks and unblocks by hand written to the stream") \
	X(BLOCKS_UNSHARED, "blocks_unshared", "blocks by hand not shared: Redis down")  \
	X(BLOCKS_APPLIED, "blocks_applied", "blocks from the fleet entered here")       \
	X(UNBLOCKS_APPLIED, "unblocks_applied", "unblocks from the fleet applied here")  \
	X(BUDGET_ASKS, "budget_asks", "rate tokens asked of the fleet's shared buckets") \
	X(BUDGET_CONN, "budget_conn_tokens", "connection tokens granted by the shared buckets") \
	X(BUDGET_RCPT, "budget_rcpt_tokens", "RCPT tokens granted by the shared buckets")  \
	X(BUDGET_EMPTY, "budget_empty", "asks answered with no token: the fleet's rate used up") \
	X(SLOTS_TAKEN, "slots_taken", "session slots taken from the fleet's dest_max_conns")  \
	X(SLOTS_FULL, "slots_full", "session slots refused: the fleet's dest_max_conns in use") \
	X(SLOTS_RELEASED, "slots_released", "session slots given back")

enum fleet_stat {
#define FS_ENUM(id, name, help) FS_##id,
	FLEET_STATS_LIST(FS_ENUM)
#undef FS_ENUM
	FS__COUNT
};
static const char *const fs_names[] = {
#define FS_NAME(id, name, help) name,
	FLEET_STATS_LIST(FS_NAME)
#undef FS_NAME
};
static const char *const fs_helps[] = {
#define FS_HELP(id, name, help) help,
	FLEET_STATS_LIST(FS_HELP)
#undef FS_HELP
};

/* ---------------------------------------------------------------------- */
/* state */

enum conn_state { C_DOWN = 0, C_CONNECTING, C_AUTH, C_READY };
enum sync_state { SY_IDLE = 0, SY_PROBE, SY_SCAN, SY_READ };

struct fconn {
	const char *name;
	redisAsyncContext *ac;
	int fd;
	uint32_t events;		/* what hiredis wants */
	uint32_t epoll_events;		/* what the loop watches */
	bool registered;
	enum conn_state state;
	uint64_t retry_at_ms;		/* next connect attempt while down */
	uint64_t backoff_ms;
	uint64_t wait_since_ms;		/* oldest unanswered command, 0 = none */
	uint32_t outstanding;
	uint64_t gen;			/* bumps at each new context */
};

enum gate_state { G_GET = 1, G_LOCK, G_WAIT, G_HOLD, G_DONE };

struct gate {
	struct gate *next;		/* hash chain */
	struct gate *wnext, *wprev;	/* its deadline list (G_WAIT or G_HOLD) */
	uint64_t h;
	uint64_t deadline_ms;
	uint32_t inflight;		/* commands whose reply names this gate */
	uint8_t state;
	bool in_wait;
	uint8_t wlist;			/* which deadline list: WL_WAIT, WL_HOLD */
	uint16_t len;
	char key[40];			/* hex of the table key */
	char addr[RG_ADDR_MAX + 1];
};

struct outbox_ent {
	bool del;
	uint16_t len;
	char addr[RG_ADDR_MAX + 1];
	struct store_rec rec;
};

static struct {
	bool on;
	/* settings (copied from the config) */
	char redis[CONFIG_PATH_MAX];
	char user[64];
	char password[256];
	char prefix[32];
	char node[64];
	char lockval[72];		/* "L <node>": a callout lock in a v: key */
	uint8_t secret[16];
	uint32_t stream_max, lock_ms, wait_ms, timeout_ms, backoff_max_ms;
	uint32_t harvest_limit, harvest_window_ms, block_ttl;
	/* rejections per source prefix since the last flush */
	struct hcount {
		struct xdp_prefix p;
		uint32_t n;
	} *hc;
	uint32_t nhc;
	uint64_t hc_flushed_ms;
	/* shared rate budgets, one per domain asked about */
	struct fbudget {
		struct fbudget *next;
		uint64_t h;
		double conn, rcpt;	/* granted, not handed to the callout engine yet */
		bool inflight;
		uint64_t retry_ms;
		/* session slots of the fleet's semaphore held by this node */
		uint32_t held, next_slot;
		uint32_t *slots;		/* their ids, held of them */
		bool slot_inflight;
		uint64_t slot_retry_ms, idle_ms, renewed_ms;
		uint32_t last_sessions;	/* the domain's sessions at the last call */
		bool last_waiting;	/* ... and whether addresses waited */
		char name[RG_DOMAIN_MAX + 1];
	} **btab;
	char budget_sha[41], harvest_sha[41], gate_sha[41], share_sha[41], slot_sha[41];
	/* what this loop turn asks and shares, sent as one script call each */
	struct gate *gbatch[FLEET_BATCH_MAX];
	unsigned ngbatch;
	struct sbatch_ent {
		char vkey[96];
		char val[FLEET_REC_MAX];
		char exat[24];
		size_t vlen;
		uint16_t len;
		char addr[RG_ADDR_MAX + 1];
		struct store_rec rec;
	} *sbatch;
	unsigned nsbatch;
	/* Redis */
	struct fconn cmd, stream;
	uint64_t timer;
	bool down_logged;
	uint64_t down_since_ms, down_since_s;
	/* the stream */
	char last_id[48];		/* "" = never read: resync from the keys */
	/* the stream position kept next to the store, for a restart */
	char pos_path[CONFIG_PATH_MAX + 32];
	char pos_written[48];		/* what the file says */
	char pos_pending[48];		/* last_id a second ago: committed since */
	uint64_t pos_ms;
	char resync_id[48];		/* stream end taken before a resync */
	char scan_cursor[32];
	bool scan_blocks;		/* the resync's second pass: the b: keys */
	enum sync_state sync;
	uint64_t lag_ms, last_sync_s;
	/* gates */
	struct gate **tab;
	size_t tab_size, ngates;
	/* gates with a deadline, one list per kind (G_WAIT: callout_wait,
	 * G_HOLD: callout_lock): each in deadline order, as every entry of a
	 * list waits as long; the timer looks at their heads only */
	struct gate *whead[2], *wtail[2];
	uint8_t hkey[16];		/* the gate hash's own key */
	/* verdicts waiting for Redis */
	struct outbox_ent *outbox;
	size_t nout;
	uint64_t st[FS__COUNT];
} fl = {.cmd = {.name = "commands", .fd = -1}, .stream = {.name = "stream", .fd = -1}};

#define FS(x) (fl.st[FS_##x]++)

static void conn_start(struct fconn *c);
static void scripts_load(void);
static void slots_forget(void);
static void pos_tick(uint64_t now);
static void conn_drop(struct fconn *c, const char *why);
static void stream_sync(void);
static void outbox_flush(void);
static void share_flush(void);
static void gate_flush(void);
static void apply_block(const redisReply *op, const redisReply *pf, const redisReply *m,
			const redisReply *t, const redisReply *c);

/* ---------------------------------------------------------------------- */
/* the secret and the encoding */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int fleet_secret_read(const char *path, uint8_t key[16], char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "[fleet] secret_file %s: %s", path, strerror(e));
		return -e;
	}
	char line[128];
	bool got = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	size_t n = got ? strcspn(line, "\r\n") : 0;
	while (n && isspace((unsigned char)line[n - 1]))
		n--;
	int bad = n != 32;
	for (size_t i = 0; !bad && i < 16; i++) {
		int hi = hexval((unsigned char)line[2 * i]), lo = hexval((unsigned char)line[2 * i + 1]);
		if (hi < 0 || lo < 0)
			bad = 1;
		else
			key[i] = (uint8_t)(hi << 4 | lo);
	}
	memset(line, 0, sizeof(line));
	if (bad) {
		snprintf(err, errlen, "[fleet] secret_file %s: the first line must be 32 hex digits "
			 "(e.g. from: od -An -tx1 -N16 /dev/urandom | tr -d ' \\n')", path);
		return -EINVAL;
	}
	return 0;
}

int fleet_rec_encode(const char *addr, size_t len, const struct store_rec *r, char *out)
{
	int n = snprintf(out, FLEET_REC_MAX, "1 %u %u %u %" PRIu64 " %" PRIu64 " %" PRIu64 " %u ",
			 r->verdict, r->source, r->flags, r->updated, r->refresh_at, r->expiry,
			 r->code);
	if (n < 0 || (size_t)n + len >= FLEET_REC_MAX || len > RG_ADDR_MAX)
		return -ENAMETOOLONG;
	memcpy(out + n, addr, len);
	out[n + len] = 0;
	return n + (int)len;
}

/* One unsigned field followed by a space; advances *p. */
static int field(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;
	uint64_t n = 0;
	if (s >= end || !isdigit((unsigned char)*s))
		return -1;
	while (s < end && isdigit((unsigned char)*s)) {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*s++ - '0');
	}
	if (s >= end || *s != ' ')
		return -1;
	*p = s + 1;
	*v = n;
	return 0;
}

int fleet_rec_decode(const char *s, size_t n, char *addr, size_t *len, struct store_rec *r)
{
	const char *p = s, *end = s + n;
	uint64_t v[8];
	for (int i = 0; i < 8; i++)
		if (field(&p, end, &v[i]))
			return -EINVAL;
	size_t al = (size_t)(end - p);
	if (v[0] != 1 || (v[1] != RT_VALID && v[1] != RT_INVALID) || v[2] > 255 || v[3] > 255 ||
	    v[7] > 999 || al == 0 || al > RG_ADDR_MAX || memchr(p, 0, al) || !memchr(p, '@', al))
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->version = STORE_REC_VERSION;
	r->verdict = (uint8_t)v[1];
	r->source = (uint8_t)v[2];
	r->flags = (uint8_t)v[3];
	r->updated = v[4];
	r->refresh_at = v[5];
	r->expiry = v[6];
	r->code = (uint16_t)v[7];
	memcpy(addr, p, al);
	addr[al] = 0;
	*len = al;
	return 0;
}

/* "<prefix>v:<32 hex>" */
static void key_hex(const char *addr, size_t len, char out[40])
{
	static const char hx[] = "0123456789abcdef";
	struct rg_key128 k;
	khash128(fl.secret, addr, len, &k);
	/* as "%016" PRIx64 "%016" PRIx64 would write it, once per gated or
	 * shared address: no printf on that path */
	for (int i = 0; i < 16; i++) {
		out[i] = hx[(k.hi >> (60 - 4 * i)) & 15u];
		out[16 + i] = hx[(k.lo >> (60 - 4 * i)) & 15u];
	}
	out[32] = 0;
}

/* "<prefix>v:<hex>" into out (96 bytes; the prefix is at most 31). */
static void vkey_make(const char *hex, char out[96])
{
	size_t pl = strlen(fl.prefix);
	memcpy(out, fl.prefix, pl);
	out[pl] = 'v';
	out[pl + 1] = ':';
	memcpy(out + pl + 2, hex, 33);
}

/* ---------------------------------------------------------------------- */
/* the scripts (loaded at every connection, run by EVALSHA: one round trip
 * and one command where there would be two) */

/* The gate, for the addresses of one loop turn at once: one command per
 * address, SET v:<key> "L <node>" NX PX lock GET, the verdict's own key
 * holding the callout lock until the verdict replaces it: per address the
 * value when a verdict is there, 2 the lock was free and is now ours, 0
 * another node holds it (flat: one reply object per address).  (One key and one call per address where a GET and a
 * lock key of its own took two of each.)  KEYS: n v: keys; ARGV: the lock
 * value, lock ms. */
static const char fleet_gate_lua[] =
	"local out = {} "
	"for i = 1, #KEYS do "
	"  local v = redis.call('SET', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2], 'GET') "
	"  if not v then out[i] = 2 "
	"  elseif string.byte(v, 1) == 76 then out[i] = 0 "
	"  else out[i] = v end "
	"end "
	"return out";

/* Sharing the verdicts of one loop turn: each key with its expiry (0 =
 * none), then one stream entry carrying them all (an "r" field each: one
 * XADD per turn, not per verdict, and the other nodes read one entry).
 * KEYS: n v: keys, then the stream; ARGV: stream MAXLEN, node, then per
 * verdict its value and expiry (unix s). */
static const char fleet_share_lua[] =
	"local n = #KEYS - 1 "
	"local rs = {} "
	"for i = 1, n do "
	"  local val = ARGV[1 + 2 * i] "
	"  local ex = ARGV[2 + 2 * i] "
	"  if ex ~= '0' then redis.call('SET', KEYS[i], val, 'EXAT', ex) "
	"  else redis.call('SET', KEYS[i], val) end "
	"  rs[2 * i - 1] = 'r' "
	"  rs[2 * i] = val "
	"end "
	"redis.call('XADD', KEYS[n + 1], 'MAXLEN', '~', ARGV[1], '*', 'n', ARGV[2], 'o', 'v', "
	"           unpack(rs)) "
	"return n";

/* ---------------------------------------------------------------------- */
/* hiredis's event hooks on the loop */

static void on_fd(int fd, uint32_t events, void *arg);

static void ev_register(struct fconn *c)
{
	if (c->fd < 0)
		return;
	/* hiredis asks for write interest at every command: tell epoll only
	 * what changes */
	if (!c->registered) {
		if (loop_add_fd(c->fd, c->events, on_fd, c) == 0) {
			c->registered = true;
			c->epoll_events = c->events;
		}
	} else if (c->events != c->epoll_events && loop_mod_fd(c->fd, c->events) == 0) {
		c->epoll_events = c->events;
	}
}

static void ev_add_read(void *p)
{
	struct fconn *c = p;
	c->events |= EPOLLIN;
	ev_register(c);
}

static void ev_del_read(void *p)
{
	struct fconn *c = p;
	c->events &= ~(uint32_t)EPOLLIN;
	ev_register(c);
}

static void ev_add_write(void *p)
{
	struct fconn *c = p;
	c->events |= EPOLLOUT;
	ev_register(c);
}

static void ev_del_write(void *p)
{
	struct fconn *c = p;
	c->events &= ~(uint32_t)EPOLLOUT;
	ev_register(c);
}

static void ev_cleanup(void *p)
{
	struct fconn *c = p;
	if (c->registered && c->fd >= 0)
		loop_del_fd(c->fd);
	c->registered = false;
	c->events = 0;
	c->fd = -1;
}

static void on_fd(int fd, uint32_t events, void *arg)
{
	(void)fd;
	struct fconn *c = arg;
	uint64_t gen = c->gen;
	if (!c->ac)
		return;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		redisAsyncHandleRead(c->ac);
	/* the read may have freed the context (a disconnect) */
	if (c->ac && c->gen == gen && (events & EPOLLOUT))
		redisAsyncHandleWrite(c->ac);
}

/* ---------------------------------------------------------------------- */
/* connections */

static bool up(void)
{
	return fl.cmd.state == C_READY && fl.stream.state == C_READY;
}

static void went_down(const char *why)
{
	if (fl.down_since_ms)
		return;
	fl.down_since_ms = loop_now_ms();
	fl.down_since_s = loop_wall_s();
	FS(OUTAGES);
	/* once per outage, not per request */
	log_msg(LOG_WARNING, "fleet: Redis %s unreachable (%s): going on alone (own table and "
		"store, callouts uncoordinated) and reconnecting", fl.redis, why);
}

static void came_up(void)
{
	if (!up())
		return;
	if (fl.down_since_ms) {
		log_msg(LOG_NOTICE, "fleet: Redis %s back after %llu s: resynchronising", fl.redis,
			(unsigned long long)((loop_now_ms() - fl.down_since_ms) / 1000u));
		fl.down_since_ms = 0;
		fl.down_since_s = 0;
	} else {
		log_msg(LOG_INFO, "fleet: node %s connected to Redis %s", fl.node, fl.redis);
	}
	slots_forget();
	outbox_flush();
}

/* The next attempt: from FLEET_BACKOFF_MIN_MS, doubling up to reconnect_max
 * (a success resets it, on_auth). */
static void conn_backoff(struct fconn *c)
{
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : FLEET_BACKOFF_MIN_MS;
	if (c->backoff_ms > fl.backoff_max_ms)
		c->backoff_ms = fl.backoff_max_ms;
	c->retry_at_ms = loop_now_ms() + c->backoff_ms;
}

static void conn_sent(struct fconn *c)
{
	if (!c->outstanding++)
		c->wait_since_ms = loop_now_ms();
}

/* A reply: the next one is waited for from now on (or none is). */
static void conn_got(struct fconn *c)
{
	if (!c->outstanding)
		return; /* a context given up: its callbacks run with NULL */
	if (!--c->outstanding)
		c->wait_since_ms = 0;
	else
		c->wait_since_ms = loop_now_ms();
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fconn *c = priv;
	redisReply *r = reply;
	(void)ac;
	conn_got(c);
	if (!r)
		return; /* context going away */
	if (r->type == REDIS_REPLY_ERROR) {
		FS(ERRORS);
		char why[160];
		snprintf(why, sizeof(why), "AUTH refused: %.120s", r->str);
		conn_drop(c, why);
		return;
	}
	c->state = C_READY;
	c->backoff_ms = 0;
	FS(CONNECTS);
	if (c == &fl.cmd)
		scripts_load();
	if (c == &fl.stream)
		stream_sync();
	came_up();
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct fconn *c = ac->data;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback */
		FS(CONNECT_FAILS);
		char why[160];
		snprintf(why, sizeof(why), "connect: %.120s", ac->errstr);
		c->ac = NULL;
		c->gen++;
		c->state = C_DOWN;
		c->outstanding = 0;
		c->wait_since_ms = 0;
		conn_backoff(c);
		went_down(why);
	}
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct fconn *c = ac->data;
	(void)status;
	if (c->ac != ac)
		return;
	FS(DISCONNECTS);
	c->ac = NULL;
	c->gen++;
	c->state = C_DOWN;
	c->outstanding = 0;
	c->wait_since_ms = 0;
	conn_backoff(c);
	if (c == &fl.stream)
		fl.sync = SY_IDLE;
	went_down(ac->errstr[0] ? ac->errstr : "connection closed");
}

/* Split "host:port" / "[v6]:port"; a Unix path starts with '/'.  Names are
 * refused: hiredis would resolve them with a blocking lookup. */
static int parse_redis(const char *s, char *host, size_t hl, int *port, char *err, size_t errlen)
{
	if (s[0] == '/') {
		snprintf(host, hl, "%s", s);
		*port = 0;
		return 0;
	}
	const char *colon = strrchr(s, ':');
	const char *h = s, *he = colon;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':') {
			snprintf(err, errlen, "[fleet] redis '%s': expected [IPv6]:port", s);
			return -EINVAL;
		}
		h = s + 1;
		he = rb;
		colon = rb + 1;
	}
	char *end;
	long p = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || !colon[1] || *end || p < 1 || p > 65535 || (size_t)(he - h) >= hl) {
		snprintf(err, errlen, "[fleet] redis '%s': expected host:port or a Unix socket path", s);
		return -EINVAL;
	}
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = 0;
	unsigned char buf[16];
	if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1) {
		snprintf(err, errlen, "[fleet] redis '%s': give an IP address, not a name", s);
		return -EINVAL;
	}
	*port = (int)p;
	return 0;
}

static void conn_start(struct fconn *c)
{
	char host[CONFIG_PATH_MAX], err[160];
	int port;
	if (parse_redis(fl.redis, host, sizeof(host), &port, err, sizeof(err)))
		return; /* checked at start and reload */
	redisAsyncContext *ac = port ? redisAsyncConnect(host, port) : redisAsyncConnectUnix(host);
	c->gen++;
	if (!ac || ac->err) {
		FS(CONNECT_FAILS);
		char why[160];
		snprintf(why, sizeof(why), "connect: %.120s", ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		conn_backoff(c);
		went_down(why);
		return;
	}
	c->ac = ac;
	c->fd = ac->c.fd;
	c->events = 0;
	c->registered = false;
	c->state = C_CONNECTING;
	c->outstanding = 0;
	c->wait_since_ms = 0;
	ac->data = c;
	ac->ev.data = c;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* the first command makes hiredis watch the socket: the connect is
	 * complete when it can be written */
	c->state = C_AUTH;
	int r;
	if (fl.password[0] && fl.user[0])
		r = redisAsyncCommand(ac, on_auth, c, "AUTH %s %s", fl.user, fl.password);
	else if (fl.password[0])
		r = redisAsyncCommand(ac, on_auth, c, "AUTH %s", fl.password);
	else
		r = redisAsyncCommand(ac, on_auth, c, "PING");
	if (r == REDIS_OK)
		conn_sent(c);
}

/* Give up a connection now (timeout, refused AUTH): hiredis calls every
 * pending reply callback with NULL, so what waited on it goes on alone. */
static void conn_drop(struct fconn *c, const char *why)
{
	if (!c->ac)
		return;
	went_down(why);
	redisAsyncContext *ac = c->ac;
	c->ac = NULL;
	c->gen++;
	c->state = C_DOWN;
	c->outstanding = 0;
	c->wait_since_ms = 0;
	conn_backoff(c);
	if (c == &fl.stream)
		fl.sync = SY_IDLE;
	redisAsyncFree(ac);
}

/* Send on cmd; false when it is not up (the caller goes on alone). */
static bool cmd_argv(redisCallbackFn *fn, void *priv, int argc, const char **argv,
		     const size_t *lens)
{
	if (fl.cmd.state != C_READY || !fl.cmd.ac)
		return false;
	if (redisAsyncCommandArgv(fl.cmd.ac, fn, priv, argc, argv, lens) != REDIS_OK)
		return false;
	conn_sent(&fl.cmd);
	return true;
}

/* ---------------------------------------------------------------------- */
/* sharing what this node learned */

static void on_write_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	(void)priv;
	redisReply *r = reply;
	conn_got(&fl.cmd);
	if (r && r->type == REDIS_REPLY_ERROR) {
		FS(ERRORS);
		log_kind(LOG_K_GENERAL, LOG_ERR, "fleet: Redis refused a write: %.200s", r->str);
	}
}

static void outbox_put(const char *addr, size_t len, const struct store_rec *rec, bool del)
{
	/* the newest per address: a later verdict replaces an earlier one */
	for (size_t i = fl.nout; i-- > 0 && i + 64 >= fl.nout;)
		if (fl.outbox[i].len == len && !memcmp(fl.outbox[i].addr, addr, len)) {
			fl.outbox[i].del = del;
			if (rec)
				fl.outbox[i].rec = *rec;
			return;
		}
	if (fl.nout >= FLEET_OUTBOX_MAX) {
		FS(OUTBOX_DROPPED);
		return;
	}
	if (!fl.outbox && !(fl.outbox = calloc(FLEET_OUTBOX_MAX, sizeof(*fl.outbox)))) {
		FS(OUTBOX_DROPPED);
		return;
	}
	struct outbox_ent *e = &fl.outbox[fl.nout++];
	e->del = del;
	e->len = (uint16_t)len;
	memcpy(e->addr, addr, len);
	e->addr[len] = 0;
	if (rec)
		e->rec = *rec;
}

static bool share(const char *addr, size_t len, const struct store_rec *rec)
{
	char hex[40], vkey[96], val[FLEET_REC_MAX], exat[24], maxlen[16], skey[64];
	int n = fleet_rec_encode(addr, len, rec, val);
	if (n < 0)
		return true; /* cannot be carried: nothing to retry */
	key_hex(addr, len, hex);
	snprintf(vkey, sizeof(vkey), "%sv:%s", fl.prefix, hex);
	snprintf(skey, sizeof(skey), "%sstream", fl.prefix);
	snprintf(exat, sizeof(exat), "%" PRIu64, rec->expiry);
	snprintf(maxlen, sizeof(maxlen), "%u", fl.stream_max);
	const char *argv[] = {"EVALSHA", fl.share_sha, "2", vkey, skey, maxlen, fl.node, val, exat};
	size_t lens[] = {7, 40, 1, strlen(vkey), strlen(skey), strlen(maxlen), strlen(fl.node),
			 (size_t)n, strlen(exat)};
	if (!cmd_argv(on_write_reply, NULL, 9, argv, lens))
		return false;
	FS(PUBLISHED);
	return true;
}

static bool share_del(const char *addr, size_t len)
{
	char hex[40], vkey[96], maxlen[16], skey[64];
	key_hex(addr, len, hex);
	snprintf(vkey, sizeof(vkey), "%sv:%s", fl.prefix, hex);
	snprintf(skey, sizeof(skey), "%sstream", fl.prefix);
	snprintf(maxlen, sizeof(maxlen), "%u", fl.stream_max);
	const char *del[] = {"DEL", vkey};
	size_t dl[] = {3, strlen(vkey)};
	const char *xadd[] = {"XADD", skey, "MAXLEN", "~", maxlen, "*", "n", fl.node, "o", "d",
			      "a", addr};
	size_t xl[] = {4, strlen(skey), 6, 1, strlen(maxlen), 1, 1, strlen(fl.node), 1, 1, 1, len};
	if (!cmd_argv(on_write_reply, NULL, 2, del, dl) || !cmd_argv(on_write_reply, NULL, 12, xadd, xl))
		return false;
	FS(DELETES_SENT);
	return true;
}

static void outbox_flush(void)
{
	size_t i = 0;
	for (; i < fl.nout && up(); i++) {
		struct outbox_ent *e = &fl.outbox[i];
		if (!(e->del ? share_del(e->addr, e->len) : share(e->addr, e->len, &e->rec)))
			break;
	}
	if (i && fl.nout > i) /* the outbox is allocated on first use */
		memmove(fl.outbox, fl.outbox + i, (fl.nout - i) * sizeof(*fl.outbox));
	fl.nout -= i;
}

static struct gate *gate_find(const char *addr, size_t len);
static void gate_release(struct gate *g);

static void hook_learned(const char *addr, size_t len, const struct store_rec *rec, void *arg)
{
	(void)arg;
	if (rec->verdict != RT_VALID && rec->verdict != RT_INVALID)
		return;
	struct gate *g = gate_find(addr, len);
	char hex[40];
	if (g)
		memcpy(hex, g->key, sizeof(hex)); /* computed at the gate */
	if (g && g->state == G_HOLD)
		gate_release(g); /* the lock is left to expire (see the header) */
	if (!up() || !fl.sbatch) {
		outbox_put(addr, len, rec, false);
		return;
	}
	struct sbatch_ent *e = &fl.sbatch[fl.nsbatch];
	int n = fleet_rec_encode(addr, len, rec, e->val);
	if (n < 0)
		return; /* cannot be carried */
	if (!g)
		key_hex(addr, len, hex);
	vkey_make(hex, e->vkey);
	snprintf(e->exat, sizeof(e->exat), "%" PRIu64, rec->expiry);
	e->vlen = (size_t)n;
	e->len = (uint16_t)len;
	memcpy(e->addr, addr, len);
	e->addr[len] = 0;
	e->rec = *rec;
	if (++fl.nsbatch == FLEET_BATCH_MAX)
		share_flush();
}

/* The turn's verdicts to Redis in one call; kept for later when it fails. */
static void share_flush(void)
{
	unsigned n = fl.nsbatch;
	if (!n)
		return;
	fl.nsbatch = 0;
	char skey[64], maxlen[16], nk[16];
	snprintf(skey, sizeof(skey), "%sstream", fl.prefix);
	snprintf(maxlen, sizeof(maxlen), "%u", fl.stream_max);
	snprintf(nk, sizeof(nk), "%u", n + 1);
	int argc = 3 + (int)n + 1 + 2 + 2 * (int)n;
	const char **argv = calloc((size_t)argc, sizeof(*argv));
	size_t *lens = calloc((size_t)argc, sizeof(*lens));
	bool ok = false;
	if (argv && lens) {
		int k = 0;
		argv[k++] = "EVALSHA";
		argv[k++] = fl.share_sha;
		argv[k++] = nk;
		for (unsigned i = 0; i < n; i++)
			argv[k++] = fl.sbatch[i].vkey;
		argv[k++] = skey;
		argv[k++] = maxlen;
		argv[k++] = fl.node;
		for (unsigned i = 0; i < n; i++) {
			argv[k] = fl.sbatch[i].val;
			lens[k++] = fl.sbatch[i].vlen;
			argv[k++] = fl.sbatch[i].exat;
		}
		for (int i = 0; i < argc; i++)
			if (!lens[i])
				lens[i] = strlen(argv[i]);
		ok = cmd_argv(on_write_reply, NULL, argc, argv, lens);
	}
	free(argv);
	free(lens);
	if (ok) {
		fl.st[FS_PUBLISHED] += n;
		return;
	}
	for (unsigned i = 0; i < n; i++)
		outbox_put(fl.sbatch[i].addr, fl.sbatch[i].len, &fl.sbatch[i].rec, false);
}

static void hook_deleted(const char *addr, size_t len, void *arg)
{
	(void)arg;
	if (!up() || !share_del(addr, len))
		outbox_put(addr, len, NULL, true);
}

/* ---------------------------------------------------------------------- */
/* the gate: one callout per address per fleet */

static uint64_t gate_hash(const char *addr, size_t len)
{
	return khash64(fl.hkey, addr, len);
}

static struct gate *gate_find(const char *addr, size_t len)
{
	if (!fl.tab)
		return NULL;
	uint64_t h = gate_hash(addr, len);
	for (struct gate *g = fl.tab[h & (fl.tab_size - 1)]; g; g = g->next)
		if (g->h == h && g->len == len && !memcmp(g->addr, addr, len))
			return g;
	return NULL;
}

enum { WL_WAIT = 0, WL_HOLD = 1 };

static void wait_del(struct gate *g)
{
	if (!g->in_wait)
		return;
	unsigned l = g->wlist;
	if (g->wprev)
		g->wprev->wnext = g->wnext;
	else
		fl.whead[l] = g->wnext;
	if (g->wnext)
		g->wnext->wprev = g->wprev;
	else
		fl.wtail[l] = g->wprev;
	g->in_wait = false;
}

/* To the tail of its list (G_WAIT or G_HOLD). */
static void wait_add(struct gate *g, uint64_t deadline)
{
	unsigned l = g->state == G_HOLD ? WL_HOLD : WL_WAIT;
	wait_del(g);
	g->deadline_ms = deadline;
	g->wlist = (uint8_t)l;
	g->wnext = NULL;
	g->wprev = fl.wtail[l];
	if (fl.wtail[l])
		fl.wtail[l]->wnext = g;
	else
		fl.whead[l] = g;
	fl.wtail[l] = g;
	g->in_wait = true;
}

/* Done with an address: out of the hash now, freed when no reply names it. */
static void gate_release(struct gate *g)
{
	wait_del(g);
	if (g->state != G_DONE) {
		struct gate **b = &fl.tab[g->h & (fl.tab_size - 1)];
		while (*b && *b != g)
			b = &(*b)->next;
		if (*b)
			*b = g->next;
		fl.ngates--;
		g->state = G_DONE;
	}
	if (!g->inflight)
		free(g);
}

/* A reply arrived for g: true when g still waits for it. */
static bool gate_reply(struct gate *g)
{
	conn_got(&fl.cmd);
	g->inflight--;
	if (g->state == G_DONE) {
		if (!g->inflight)
			free(g);
		return false;
	}
	return true;
}

static void gate_go(struct gate *g, bool coordinated)
{
	if (!coordinated)
		FS(UNCOORDINATED);
	char a[RG_ADDR_MAX + 1];
	size_t len = g->len;
	memcpy(a, g->addr, len + 1);
	if (coordinated && g->state == G_LOCK) {
		/* the lock is ours until the verdict is shared (or it expires) */
		g->state = G_HOLD;
		wait_add(g, loop_now_ms() + fl.lock_ms);
	} else {
		gate_release(g);
	}
	core_fleet_go(a, len);
}

static void on_lock(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct gate *g = priv;
	redisReply *r = reply;
	if (!gate_reply(g))
		return;
	if (!r || r->type == REDIS_REPLY_ERROR) {
		if (r)
			FS(ERRORS);
		gate_go(g, false);
		return;
	}
	if (r->type == REDIS_REPLY_STATUS) {
		FS(LOCKS);
		gate_go(g, true);
		return;
	}
	/* nil: another node calls out; its verdict comes on the stream */
	FS(LOCK_WAITS);
	g->state = G_WAIT;
	wait_add(g, loop_now_ms() + fl.wait_ms);
}

/* One address's answer from the gate script (NULL: none, go alone). */
static void gate_result(struct gate *g, const redisReply *r)
{
	g->inflight--;
	if (g->state == G_DONE) {
		if (!g->inflight)
			free(g);
		return;
	}
	if (!r || (r->type != REDIS_REPLY_INTEGER && r->type != REDIS_REPLY_STRING)) {
		if (r) {
			FS(ERRORS);
			if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8))
				scripts_load();
		}
		gate_go(g, false);
		return;
	}
	if (r->type == REDIS_REPLY_INTEGER && r->integer == 2) {
		FS(LOCKS);
		g->state = G_LOCK;
		gate_go(g, true);
		return;
	}
	if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
		FS(LOCK_WAITS);
		g->state = G_WAIT;
		wait_add(g, loop_now_ms() + fl.wait_ms);
		return;
	}
	if (r->type == REDIS_REPLY_STRING) {
		const redisReply *v = r;
		char a[RG_ADDR_MAX + 1];
		size_t al;
		struct store_rec rec;
		if (fleet_rec_decode(v->str, v->len, a, &al, &rec) == 0 && al == g->len &&
		    !memcmp(a, g->addr, al) && ttl_live(&rec, loop_wall_s()) &&
		    !ttl_refresh_due(&rec, loop_wall_s())) {
			FS(GATE_HITS);
			gate_release(g);
			int rc = core_fleet_apply(a, al, &rec);
			if (rc == 0)
				FS(APPLIED);
			else
				core_fleet_go(a, al); /* not taken here: call out */
			return;
		}
	}
	char lkey[96];
	snprintf(lkey, sizeof(lkey), "%sl:%s", fl.prefix, g->key);
	char px[16];
	snprintf(px, sizeof(px), "%u", fl.lock_ms);
	const char *argv[] = {"SET", lkey, fl.node, "NX", "PX", px};
	size_t lens[] = {3, strlen(lkey), strlen(fl.node), 2, 2, strlen(px)};
	g->state = G_LOCK;
	if (!cmd_argv(on_lock, g, 6, argv, lens)) {
		gate_go(g, false);
		return;
	}
	g->inflight++;
}

struct gbatch {
	unsigned n;
	struct gate *g[];
};

static void on_gate_batch(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct gbatch *b = priv;
	redisReply *r = reply;
	conn_got(&fl.cmd);
	bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == b->n;
	if (r && !ok) {
		FS(ERRORS);
		if (r->type == REDIS_REPLY_ERROR) {
			log_kind(LOG_K_GENERAL, LOG_ERR, "fleet: gate refused: %.200s", r->str);
			if (!strncmp(r->str, "NOSCRIPT", 8))
				scripts_load();
		}
	}
	for (unsigned i = 0; i < b->n; i++)
		gate_result(b->g[i], ok ? r->element[i] : NULL);
	free(b);
}

/* The turn's gates to Redis in one call. */
static void gate_flush(void)
{
	unsigned n = fl.ngbatch;
	if (!n)
		return;
	fl.ngbatch = 0;
	struct gbatch *b = malloc(sizeof(*b) + n * sizeof(b->g[0]));
	char (*keys)[96] = calloc((size_t)n, 96);
	int argc = 3 + (int)n + 2;
	const char **argv = calloc((size_t)argc, sizeof(*argv));
	size_t *lens = calloc((size_t)argc, sizeof(*lens));
	char nk[16], px[16];
	bool ok = false;
	if (b && keys && argv && lens) {
		b->n = n;
		memcpy(b->g, fl.gbatch, n * sizeof(b->g[0]));
		snprintf(nk, sizeof(nk), "%u", n);
		snprintf(px, sizeof(px), "%u", fl.lock_ms);
		int k = 0;
		argv[k++] = "EVALSHA";
		argv[k++] = fl.gate_sha;
		argv[k++] = nk;
		for (unsigned i = 0; i < n; i++) {
			vkey_make(fl.gbatch[i]->key, keys[i]);
			argv[k++] = keys[i];
		}
		argv[k++] = fl.lockval;
		argv[k++] = px;
		for (int i = 0; i < argc; i++)
			lens[i] = strlen(argv[i]);
		ok = cmd_argv(on_gate_batch, b, argc, argv, lens);
	}
	free(keys);
	free(argv);
	free(lens);
	if (ok)
		return;
	free(b);
	for (unsigned i = 0; i < n; i++)
		gate_result(fl.gbatch[i], NULL);
}

static bool hook_gate(const char *addr, size_t len, void *arg)
{
	(void)arg;
	if (!up()) {
		FS(UNCOORDINATED);
		return false;
	}
	struct gate *g = gate_find(addr, len);
	if (g) {
		/* still holding the lock from an earlier round: call out */
		gate_release(g);
	}
	if (fl.ngates >= FLEET_GATES_MAX) {
		FS(GATE_FULL);
		FS(UNCOORDINATED);
		return false;
	}
	if (fl.ngates >= fl.tab_size) {
		size_t ns = fl.tab_size ? fl.tab_size * 2 : 1024;
		struct gate **nt = calloc(ns, sizeof(*nt));
		if (!nt) {
			FS(UNCOORDINATED);
			return false;
		}
		for (size_t i = 0; i < fl.tab_size; i++)
			for (struct gate *x = fl.tab[i], *nx; x; x = nx) {
				nx = x->next;
				x->next = nt[x->h & (ns - 1)];
				nt[x->h & (ns - 1)] = x;
			}
		free(fl.tab);
		fl.tab = nt;
		fl.tab_size = ns;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		FS(UNCOORDINATED);
		return false;
	}
	g->h = gate_hash(addr, len);
	g->len = (uint16_t)len;
	memcpy(g->addr, addr, len);
	g->addr[len] = 0;
	key_hex(addr, len, g->key);
	/* asked with the rest of this turn's (gate_flush, at the turn's end) */
	g->inflight = 1;
	fl.gbatch[fl.ngbatch++] = g;
	g->state = G_GET;
	struct gate **b = &fl.tab[g->h & (fl.tab_size - 1)];
	g->next = *b;
	*b = g;
	fl.ngates++;
	FS(GATED);
	if (fl.ngbatch == FLEET_BATCH_MAX)
		gate_flush();
	return true;
}

/* ---------------------------------------------------------------------- */
/* applying the stream */

static void apply_rec(const char *s, size_t n)
{
	char a[RG_ADDR_MAX + 1];
	size_t al;
	struct store_rec rec;
	if (fleet_rec_decode(s, n, a, &al, &rec)) {
		FS(APPLY_BAD);
		return;
	}
	struct gate *g = gate_find(a, al);
	bool waited = g && g->state == G_WAIT;
	int r = core_fleet_apply(a, al, &rec);
	if (r == 0)
		FS(APPLIED);
	else if (r == -ENOENT)
		FS(APPLY_SKIPPED);
	else if (r == -EEXIST)
		FS(APPLY_KEPT);
	else
		FS(APPLY_BAD);
	if (g && g->state != G_HOLD) {
		/* answered (core_fleet_apply opened the gate with the verdict) */
		if (waited && r == 0)
			FS(LOCK_SERVED);
		gate_release(g);
		if (r != 0)
			core_fleet_go(a, al);
	}
}

static int id_cmp(const char *a, const char *b)
{
	unsigned long long am = 0, as = 0, bm = 0, bs = 0;
	sscanf(a, "%llu-%llu", &am, &as);
	sscanf(b, "%llu-%llu", &bm, &bs);
	return am < bm ? -1 : am > bm ? 1 : as < bs ? -1 : as > bs ? 1 : 0;
}

static void stream_read(void);

static bool stream_cmd(redisCallbackFn *fn, int argc, const char **argv, const size_t *lens)
{
	struct fconn *c = &fl.stream;
	if (c->state != C_READY || !c->ac)
		return false;
	if (redisAsyncCommandArgv(c->ac, fn, NULL, argc, argv, lens) != REDIS_OK)
		return false;
	conn_sent(c);
	return true;
}

static void on_xread(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	(void)priv;
	redisReply *r = reply;
	conn_got(&fl.stream);
	if (!r)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		FS(ERRORS);
		conn_drop(&fl.stream, "XREAD refused");
		return;
	}
	FS(STREAM_READS);
	fl.last_sync_s = loop_wall_s();
	size_t nlen = strlen(fl.node);
	/* [[stream, [[id, [field, value, ...]], ...]]] or nil on timeout */
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
	    r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
		redisReply *ents = r->element[0]->element[1];
		for (size_t i = 0; ents->type == REDIS_REPLY_ARRAY && i < ents->elements; i++) {
			redisReply *e = ents->element[i];
			if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
			    e->element[0]->type != REDIS_REPLY_STRING)
				continue;
			snprintf(fl.last_id, sizeof(fl.last_id), "%s", e->element[0]->str);
			redisReply *f = e->element[1];
			unsigned long long ms = strtoull(fl.last_id, NULL, 10);
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
			fl.lag_ms = now_ms > ms ? now_ms - ms : 0;
			if (f->type != REDIS_REPLY_ARRAY) {
				FS(APPLY_BAD);
				continue;
			}
			/* every node writes "n" first: our own entries are skipped
			 * before anything else is looked at */
			if (f->elements >= 2 && f->element[0]->type == REDIS_REPLY_STRING &&
			    f->element[0]->len == 1 && f->element[0]->str[0] == 'n' &&
			    f->element[1]->type == REDIS_REPLY_STRING &&
			    f->element[1]->len == nlen &&
			    !memcmp(f->element[1]->str, fl.node, nlen))
				continue; /* our own */
			const redisReply *node = NULL, *op = NULL, *addr = NULL;
			const redisReply *pf = NULL, *man = NULL, *ttl = NULL, *cnt = NULL;
			unsigned nrec = 0;
			for (size_t k = 0; k + 1 < f->elements; k += 2) {
				const redisReply *fk = f->element[k], *fv = f->element[k + 1];
				if (fk->type != REDIS_REPLY_STRING || fv->type != REDIS_REPLY_STRING ||
				    fk->len != 1)
					continue;
				if (fk->str[0] == 'n')
					node = fv;
				else if (fk->str[0] == 'o')
					op = fv;
				else if (fk->str[0] == 'r')
					nrec++;
				else if (fk->str[0] == 'a')
					addr = fv;
				else if (fk->str[0] == 'p')
					pf = fv;
				else if (fk->str[0] == 'm')
					man = fv;
				else if (fk->str[0] == 't')
					ttl = fv;
				else if (fk->str[0] == 'c')
					cnt = fv;
			}
			if (node && node->len == nlen && !memcmp(node->str, fl.node, nlen))
				continue; /* our own */
			if (op && op->len == 1 && op->str[0] == 'v' && nrec) {
				/* one or more verdicts, an "r" field each */
				for (size_t k = 0; k + 1 < f->elements; k += 2) {
					const redisReply *fk = f->element[k], *fv = f->element[k + 1];
					if (fk->type == REDIS_REPLY_STRING && fk->len == 1 &&
					    fk->str[0] == 'r' && fv->type == REDIS_REPLY_STRING)
						apply_rec(fv->str, fv->len);
				}
			} else if (op && op->len == 1 && op->str[0] == 'd' && addr) {
				if (core_fleet_del(addr->str, addr->len) == 0)
					FS(DELETES);
			} else if (op && op->len == 1 && (op->str[0] == 'b' || op->str[0] == 'u')) {
				apply_block(op, pf, man, ttl, cnt);
			} else {
				FS(APPLY_BAD);
			}
		}
	}
	stream_read();
}

static void stream_read(void)
{
	char skey[64], cnt[16], blk[16];
	snprintf(skey, sizeof(skey), "%sstream", fl.prefix);
	snprintf(cnt, sizeof(cnt), "%u", FLEET_XREAD_COUNT);
	snprintf(blk, sizeof(blk), "%u", FLEET_XREAD_BLOCK_MS);
	const char *argv[] = {"XREAD", "COUNT", cnt, "BLOCK", blk, "STREAMS", skey, fl.last_id};
	size_t lens[] = {5, 5, strlen(cnt), 5, strlen(blk), 7, strlen(skey), strlen(fl.last_id)};
	fl.sync = SY_READ;
	if (!stream_cmd(on_xread, 8, argv, lens))
		fl.sync = SY_IDLE;
}

static void scan_step(void);
static void apply_block_key(const char *s, size_t n);

/* One SCAN step's keys are in: the next step, or the stream. */
static void scan_next(void)
{
	if (!strcmp(fl.scan_cursor, "0") && !fl.scan_blocks) {
		/* the verdicts are in: the blocks next (a new scan from cursor 0) */
		fl.scan_blocks = true;
		scan_step();
		return;
	}
	if (!strcmp(fl.scan_cursor, "0")) {
		/* the keys are in: the stream from where it ended before the scan */
		fl.scan_blocks = false;
		snprintf(fl.last_id, sizeof(fl.last_id), "%s", fl.resync_id);
		log_msg(LOG_INFO, "fleet: resynchronised from the keys; following the stream from %s",
			fl.last_id);
		stream_read();
		return;
	}
	scan_step();
}

static void on_mget(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	(void)priv;
	redisReply *r = reply;
	conn_got(&fl.stream);
	if (!r)
		return;
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		redisReply *v = r->element[i];
		if (v->type != REDIS_REPLY_STRING)
			continue; /* expired between SCAN and MGET */
		if (fl.scan_blocks) {
			FS(RESYNC_KEYS);
			apply_block_key(v->str, v->len);
			continue;
		}
		if (v->len && v->str[0] == 'L')
			continue; /* a callout lock, no verdict yet */
		FS(RESYNC_KEYS);
		apply_rec(v->str, v->len);
	}
	scan_next();
}

static void on_scan(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	(void)priv;
	redisReply *r = reply;
	conn_got(&fl.stream);
	if (!r)
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
		FS(ERRORS);
		conn_drop(&fl.stream, "SCAN failed");
		return;
	}
	snprintf(fl.scan_cursor, sizeof(fl.scan_cursor), "%s", r->element[0]->str);
	redisReply *keys = r->element[1];
	if (!keys->elements) {
		scan_next();
		return;
	}
	const char **argv = calloc(keys->elements + 1, sizeof(*argv));
	size_t *lens = calloc(keys->elements + 1, sizeof(*lens));
	if (!argv || !lens) {
		free(argv);
		free(lens);
		conn_drop(&fl.stream, "out of memory");
		return;
	}
	argv[0] = "MGET";
	lens[0] = 4;
	for (size_t i = 0; i < keys->elements; i++) {
		argv[i + 1] = keys->element[i]->str;
		lens[i + 1] = keys->element[i]->len;
	}
	if (!stream_cmd(on_mget, (int)keys->elements + 1, argv, lens))
		fl.sync = SY_IDLE;
	free(argv);
	free(lens);
}

static void scan_step(void)
{
	char pat[96], cnt[16];
	snprintf(pat, sizeof(pat), fl.scan_blocks ? "%sb:*" : "%sv:*", fl.prefix);
	snprintf(cnt, sizeof(cnt), "%u", FLEET_SCAN_COUNT);
	const char *argv[] = {"SCAN", fl.scan_cursor, "MATCH", pat, "COUNT", cnt};
	size_t lens[] = {4, strlen(fl.scan_cursor), 5, strlen(pat), 5, strlen(cnt)};
	fl.sync = SY_SCAN;
	if (!stream_cmd(on_scan, 6, argv, lens))
		fl.sync = SY_IDLE;
}

/* The stream's first and last ids: resume from last_id, or resync. */
static void on_probe(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	(void)priv;
	redisReply *r = reply;
	conn_got(&fl.stream);
	if (!r)
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
		FS(ERRORS);
		conn_drop(&fl.stream, "stream probe failed");
		return;
	}
	/* MULTI/EXEC: [XRANGE - + COUNT 1, XREVRANGE + - COUNT 1] */
	char first[48] = "", last[48] = "0-0";
	redisReply *f = r->element[0], *l = r->element[1];
	if (f->type == REDIS_REPLY_ARRAY && f->elements == 1 && f->element[0]->elements == 2)
		snprintf(first, sizeof(first), "%s", f->element[0]->element[0]->str);
	if (l->type == REDIS_REPLY_ARRAY && l->elements == 1 && l->element[0]->elements == 2)
		snprintf(last, sizeof(last), "%s", l->element[0]->element[0]->str);
	if (fl.last_id[0] && (!first[0] || id_cmp(first, fl.last_id) <= 0)) {
		stream_read(); /* nothing trimmed past us */
		return;
	}
	/* new, or away longer than the stream remembers: from the keys */
	FS(RESYNCS);
	snprintf(fl.resync_id, sizeof(fl.resync_id), "%s", last);
	snprintf(fl.scan_cursor, sizeof(fl.scan_cursor), "0");
	fl.scan_blocks = false;
	scan_step();
}

static void on_multi(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	(void)priv;
	(void)reply;
	conn_got(&fl.stream);
}

static void stream_sync(void)
{
	char skey[64];
	snprintf(skey, sizeof(skey), "%sstream", fl.prefix);
	const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
	size_t ml[] = {5}, el[] = {4};
	const char *xr[] = {"XRANGE", skey, "-", "+", "COUNT", "1"};
	const char *xrr[] = {"XREVRANGE", skey, "+", "-", "COUNT", "1"};
	size_t xl[] = {6, strlen(skey), 1, 1, 5, 1}, xrl[] = {9, strlen(skey), 1, 1, 5, 1};
	fl.sync = SY_PROBE;
	if (!stream_cmd(on_multi, 1, multi, ml) || !stream_cmd(on_multi, 6, xr, xl) ||
	    !stream_cmd(on_multi, 6, xrr, xrl) || !stream_cmd(on_probe, 1, exec, el))
		conn_drop(&fl.stream, "cannot send");
}

/* ---------------------------------------------------------------------- */
/* harvest sums and blocks */

static void wall_ms_now(uint64_t *ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	*ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A block's key b:<prefix>, for the nodes that resynchronise from the keys
 * (new, or away longer than the stream remembers): "node manual expiry_ms
 * count prefix", expiry_ms 0 = until unblocked; the key expires with the
 * block. */
#define BLOCK_VAL_MAX (64 + 3 * 24 + XDP_PREFIX_STRLEN)
static void block_val(char *out, bool manual, uint32_t ttl_s, uint32_t count, const char *prefix)
{
	uint64_t now;
	wall_ms_now(&now);
	snprintf(out, BLOCK_VAL_MAX, "%s %d %" PRIu64 " %u %s", fl.node, manual ? 1 : 0,
		 ttl_s ? now + (uint64_t)ttl_s * 1000u : 0, count, prefix);
}

static void harvest_here(const struct xdp_prefix *p, uint32_t count);

/* A b: key read by a resynchronisation: the block entered here. */
static void apply_block_key(const char *s, size_t n)
{
	char v[BLOCK_VAL_MAX], node[64], prefix[XDP_PREFIX_STRLEN + 1], err[200] = "";
	int manual;
	unsigned long long expiry;
	unsigned count;
	struct xdp_prefix p;
	if (n >= sizeof(v)) {
		FS(APPLY_BAD);
		return;
	}
	memcpy(v, s, n);
	v[n] = 0;
	_Static_assert(XDP_PREFIX_STRLEN == 64, "the width below");
	if (sscanf(v, "%63s %d %llu %u %64s", node, &manual, &expiry,
		   &count, prefix) != 5 ||
	    xdp_prefix_parse(prefix, &p)) {
		FS(APPLY_BAD);
		return;
	}
	uint64_t now;
	wall_ms_now(&now);
	if (expiry && expiry <= now)
		return; /* ended meanwhile */
	if (!manual) {
		FS(BLOCKS_APPLIED);
		harvest_here(&p, count);
		return;
	}
	uint32_t ttl = expiry ? (uint32_t)((expiry - now + 999u) / 1000u) : 0;
	if (xdp_block(prefix, ttl, err, sizeof(err)) == 0)
		FS(BLOCKS_APPLIED);
	else
		log_msg(LOG_WARNING, "fleet: block of %s from the fleet not applied: %s", prefix, err);
}

/* A block for the stream: o=b (p prefix, m manual, t ttl, c count) or o=u. */
static bool stream_block(const char *op, const char *prefix, bool manual, uint32_t ttl,
			 uint32_t count)
{
	char skey[64], maxlen[16], t[16], c[16];
	snprintf(skey, sizeof(skey), "%sstream", fl.prefix);
	snprintf(maxlen, sizeof(maxlen), "%u", fl.stream_max);
	snprintf(t, sizeof(t), "%u", ttl);
	snprintf(c, sizeof(c), "%u", count);
	const char *argv[] = {"XADD", skey, "MAXLEN", "~", maxlen, "*", "n", fl.node, "o", op,
			      "p", prefix, "m", manual ? "1" : "0", "t", t, "c", c};
	size_t lens[18];
	for (int i = 0; i < 18; i++)
		lens[i] = strlen(argv[i]);
	return cmd_argv(on_write_reply, NULL, 18, argv, lens);
}

/* The xdp module's harvest hook, as if the data plane had reported it. */
static void harvest_here(const struct xdp_prefix *p, uint32_t count)
{
	struct msg_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = MSG_EV_HARVEST;
	ev.family = p->family;
	ev.prefix_len = p->len;
	memcpy(ev.client_ip, p->addr, sizeof(p->addr));
	ev.count = count;
	core_fleet_harvest(&ev);
}

struct announce {
	struct xdp_prefix p;
	uint32_t count;
	bool here;		/* block it here too once announced */
};

static void on_announce(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct announce *a = priv;
	redisReply *r = reply;
	conn_got(&fl.cmd);
	if (r && r->type == REDIS_REPLY_STATUS) {
		/* first to see it: the fleet hears it from this node */
		char buf[XDP_PREFIX_STRLEN];
		xdp_prefix_format(&a->p, buf, sizeof(buf));
		FS(HARVEST_BLOCKS);
		stream_block("b", buf, false, fl.block_ttl, a->count);
		log_msg(LOG_NOTICE, "fleet: harvest from %s: %u invalid recipients over the fleet: "
			"blocked on every node", buf, a->count);
		if (a->here)
			harvest_here(&a->p, a->count);
	} else if (r && r->type == REDIS_REPLY_ERROR) {
		FS(ERRORS);
	}
	free(a);
}

/* One node announces a harvest block (b:<prefix> SET NX PX block_ttl). */
static void announce(const struct xdp_prefix *p, uint32_t count, bool here)
{
	struct announce *a = calloc(1, sizeof(*a));
	if (!a)
		return;
	a->p = *p;
	a->count = count;
	a->here = here;
	char buf[XDP_PREFIX_STRLEN], bkey[128], px[24], val[BLOCK_VAL_MAX];
	xdp_prefix_format(p, buf, sizeof(buf));
	snprintf(bkey, sizeof(bkey), "%sb:%s", fl.prefix, buf);
	snprintf(px, sizeof(px), "%" PRIu64, (uint64_t)fl.block_ttl * 1000u);
	block_val(val, false, fl.block_ttl, count, buf);
	const char *argv[] = {"SET", bkey, val, "NX", "PX", px};
	size_t lens[] = {3, strlen(bkey), strlen(val), 2, 2, strlen(px)};
	if (!cmd_argv(on_announce, a, 6, argv, lens)) {
		free(a);
		if (here)
			harvest_here(p, count); /* Redis down: this node still blocks */
	}
}

/* INCRBY this window's counter, keep it two windows, read the previous one. */
static const char fleet_harvest_lua[] =
	"local c = redis.call('INCRBY', KEYS[1], ARGV[1]) "
	"redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
	"local p = redis.call('GET', KEYS[2]) "
	"return {c, tonumber(p or '0')}";

struct hsum {
	struct xdp_prefix p;
	double frac;		/* of the current window gone when sent */
};

static void on_hsum(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct hsum *h = priv;
	redisReply *r = reply;
	conn_got(&fl.cmd);
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_INTEGER) {
		/* sliding window: the previous one weighted by what is left of it */
		double est = (double)r->element[0]->integer +
			     (double)r->element[1]->integer * (1.0 - h->frac);
		if (fl.harvest_limit && est >= (double)fl.harvest_limit)
			announce(&h->p, (uint32_t)est, true);
	} else if (r && r->type == REDIS_REPLY_ERROR) {
		FS(ERRORS);
		log_kind(LOG_K_GENERAL, LOG_ERR, "fleet: harvest sum refused: %.200s", r->str);
	}
	free(h);
}

static void harvest_flush(void)
{
	if (!fl.nhc)
		return;
	uint64_t now;
	wall_ms_now(&now);
	uint64_t win = now / fl.harvest_window_ms;
	double frac = (double)(now % fl.harvest_window_ms) / (double)fl.harvest_window_ms;
	char px[24];
	snprintf(px, sizeof(px), "%" PRIu64, (uint64_t)fl.harvest_window_ms * 2u);
	for (uint32_t i = 0; i < FLEET_HARVEST_SLOTS && fl.nhc; i++) {
		struct hcount *c = &fl.hc[i];
		if (!c->n)
			continue;
		char buf[XDP_PREFIX_STRLEN], k1[128], k2[128], n[16];
		xdp_prefix_format(&c->p, buf, sizeof(buf));
		snprintf(k1, sizeof(k1), "%sh:%" PRIu64 ":%s", fl.prefix, win, buf);
		snprintf(k2, sizeof(k2), "%sh:%" PRIu64 ":%s", fl.prefix, win - 1, buf);
		snprintf(n, sizeof(n), "%u", c->n);
		struct hsum *h = calloc(1, sizeof(*h));
		const char *argv[] = {"EVALSHA", fl.harvest_sha, "2", k1, k2, n, px};
		size_t lens[] = {7, 40, 1, strlen(k1), strlen(k2), strlen(n), strlen(px)};
		if (h) {
			h->p = c->p;
			h->frac = frac;
		}
		if (!h || !cmd_argv(on_hsum, h, 7, argv, lens)) {
			free(h);
			fl.st[FS_HARVEST_DROPPED] += c->n;
		}
		c->n = 0;
		fl.nhc--;
	}
	fl.nhc = 0;
}

static void harvest_count(uint8_t family, const uint8_t *ip, unsigned plen)
{
	struct xdp_prefix p;
	if (xdp_prefix_make(family, ip, plen, &p))
		return;
	uint64_t h = khash64(fl.hkey, &p, sizeof(p));
	for (uint32_t k = 0; k < 8; k++) {
		struct hcount *c = &fl.hc[(h + k) & (FLEET_HARVEST_SLOTS - 1)];
		if (c->n && memcmp(&c->p, &p, sizeof(p)))
			continue;
		if (!c->n) {
			c->p = p;
			fl.nhc++;
		}
		c->n++;
		FS(REJECTS_COUNTED);
		return;
	}
	FS(HARVEST_DROPPED);
}

static void hook_event(const struct msg_event *ev, void *arg)
{
	(void)arg;
	if (ev->family != 4 && ev->family != 6)
		return;
	if (ev->type == MSG_EV_HARVEST) {
		/* the data plane's own verdict: blocked here already; tell the fleet */
		struct xdp_prefix p;
		unsigned len = ev->prefix_len ? ev->prefix_len : (ev->family == 4 ? 32 : 128);
		if (up() && !xdp_prefix_make(ev->family, ev->client_ip, len, &p))
			announce(&p, ev->count, false);
		return;
	}
	if (ev->type != MSG_EV_REJECT || !fl.harvest_limit || !fl.hc)
		return;
	if (!up()) {
		FS(HARVEST_DROPPED);
		return;
	}
	if (ev->family == 4) {
		harvest_count(4, ev->client_ip, 32);
		harvest_count(4, ev->client_ip, 24);
	} else {
		harvest_count(6, ev->client_ip, 64);
	}
}

static bool hook_block(const char *prefix, uint32_t ttl_s, void *arg)
{
	(void)arg;
	char bkey[128], px[24], val[BLOCK_VAL_MAX];
	snprintf(bkey, sizeof(bkey), "%sb:%s", fl.prefix, prefix);
	snprintf(px, sizeof(px), "%" PRIu64, (uint64_t)ttl_s * 1000u);
	block_val(val, true, ttl_s, 0, prefix);
	const char *argv[] = {"SET", bkey, val, "PX", px};
	size_t lens[] = {3, strlen(bkey), strlen(val), 2, strlen(px)};
	if (!up() || !cmd_argv(on_write_reply, NULL, ttl_s ? 5 : 3, argv, lens) ||
	    !stream_block("b", prefix, true, ttl_s, 0)) {
		FS(BLOCKS_UNSHARED);
		log_msg(LOG_WARNING, "fleet: block of %s not shared: Redis unreachable", prefix);
		return false;
	}
	FS(BLOCKS_SHARED);
	return true;
}

static bool hook_unblock(const char *prefix, void *arg)
{
	(void)arg;
	char bkey[128];
	snprintf(bkey, sizeof(bkey), "%sb:%s", fl.prefix, prefix);
	const char *argv[] = {"DEL", bkey};
	size_t lens[] = {3, strlen(bkey)};
	if (!up() || !cmd_argv(on_write_reply, NULL, 2, argv, lens) ||
	    !stream_block("u", prefix, true, 0, 0)) {
		FS(BLOCKS_UNSHARED);
		log_msg(LOG_WARNING, "fleet: unblock of %s not shared: Redis unreachable", prefix);
		return false;
	}
	FS(BLOCKS_SHARED);
	return true;
}

/* A block or unblock from the stream. */
static void apply_block(const redisReply *op, const redisReply *pf, const redisReply *m,
			const redisReply *t, const redisReply *c)
{
	struct xdp_prefix p;
	char err[200] = "";
	if (!pf || xdp_prefix_parse(pf->str, &p)) {
		FS(APPLY_BAD);
		return;
	}
	if (op->str[0] == 'u') {
		if (xdp_unblock(pf->str, err, sizeof(err)) == 0)
			FS(UNBLOCKS_APPLIED);
		return;
	}
	if (m && m->str[0] == '1') {
		uint32_t ttl = t ? (uint32_t)strtoul(t->str, NULL, 10) : 0;
		int r = xdp_block(pf->str, ttl, err, sizeof(err));
		if (r == 0)
			FS(BLOCKS_APPLIED);
		else
			log_msg(LOG_WARNING, "fleet: block of %s from the fleet not applied: %s",
				pf->str, err);
		return;
	}
	FS(BLOCKS_APPLIED);
	harvest_here(&p, c ? (uint32_t)strtoul(c->str, NULL, 10) : 0);
}

/* ---------------------------------------------------------------------- */
/* shared rate budgets */

/* Two token buckets (connections, RCPTs) of one domain, by Redis's clock.
 * KEYS: the buckets; ARGV: per bucket rate/s, burst, tokens wanted. */
static const char fleet_budget_lua[] =
	"local tm = redis.call('TIME') "
	"local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000) "
	"local out = {} "
	"for i = 1, 2 do "
	"  local rate = tonumber(ARGV[3 * i - 2]) "
	"  local burst = tonumber(ARGV[3 * i - 1]) "
	"  local want = tonumber(ARGV[3 * i]) "
	"  local v = redis.call('HMGET', KEYS[i], 't', 'ts') "
	"  local t = tonumber(v[1]) "
	"  local ts = tonumber(v[2]) "
	"  if not t then t = burst ts = now end "
	"  if now > ts then t = math.min(burst, t + (now - ts) * rate / 1000) ts = now end "
	"  local got = math.min(want, math.floor(t)) "
	"  t = t - got "
	"  redis.call('HSET', KEYS[i], 't', tostring(t), 'ts', ts) "
	"  redis.call('PEXPIRE', KEYS[i], math.ceil(burst * 1000 / rate) + 60000) "
	"  out[i] = got "
	"end "
	"return out";

#define FLEET_BUDGET_BUCKETS 1024u
#define FLEET_BUDGET_RETRY_MS 20u	/* an empty bucket is asked again after */
#define FLEET_SLOT_LEASE_MS 5000u	/* a session slot's lease */
#define FLEET_SLOT_RENEW_MS 1000u	/* renewed this often while in use */
#define FLEET_SLOT_IDLE_MS 100u		/* a slot not needed this long is given back */

/* A session slot: expired leases dropped, then one more if under the limit.
 * KEYS: the set; ARGV: limit, member, lease ms.  1 taken, 0 full. */
static const char fleet_slot_lua[] =
	"local tm = redis.call('TIME') "
	"local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000) "
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "
	"if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end "
	"redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2]) "
	"redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2) "
	"return 1";

static void sha1_hex(const char *s, char out[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_Digest(s, strlen(s), md, &n, EVP_sha1(), NULL);
	for (unsigned i = 0; i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Load the scripts on every new connection (a restarted Redis has none);
 * EVALSHA afterwards runs them by their digest. */
static void scripts_load(void)
{
	const char *scripts[] = {fleet_budget_lua, fleet_harvest_lua, fleet_gate_lua,
				 fleet_share_lua, fleet_slot_lua};
	for (int i = 0; i < 5; i++) {
		const char *argv[] = {"SCRIPT", "LOAD", scripts[i]};
		size_t lens[] = {6, 4, strlen(scripts[i])};
		cmd_argv(on_write_reply, NULL, 3, argv, lens);
	}
}

static void on_budget(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct fbudget *b = priv;
	redisReply *r = reply;
	conn_got(&fl.cmd);
	b->inflight = false;
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_INTEGER) {
		b->conn += (double)r->element[0]->integer;
		b->rcpt += (double)r->element[1]->integer;
		fl.st[FS_BUDGET_CONN] += (uint64_t)r->element[0]->integer;
		fl.st[FS_BUDGET_RCPT] += (uint64_t)r->element[1]->integer;
		if (!r->element[0]->integer && !r->element[1]->integer) {
			FS(BUDGET_EMPTY);
			b->retry_ms = loop_now_ms() + FLEET_BUDGET_RETRY_MS;
		}
		return;
	}
	if (r && r->type == REDIS_REPLY_ERROR) {
		FS(ERRORS);
		log_kind(LOG_K_GENERAL, LOG_ERR, "fleet: shared budget refused: %.200s", r->str);
		if (!strncmp(r->str, "NOSCRIPT", 8))
			scripts_load();
	}
	b->retry_ms = loop_now_ms() + FLEET_BUDGET_RETRY_MS;
}

static struct fbudget *budget_of(const char *domain)
{
	size_t len = strlen(domain);
	uint64_t h = khash64(fl.hkey, domain, len);
	struct fbudget **head = &fl.btab[h & (FLEET_BUDGET_BUCKETS - 1)];
	for (struct fbudget *b = *head; b; b = b->next)
		if (b->h == h && !strcmp(b->name, domain))
			return b;
	struct fbudget *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->h = h;
	snprintf(b->name, sizeof(b->name), "%s", domain);
	b->next = *head;
	*head = b;
	return b;
}

static void slot_member(uint32_t id, char *out, size_t n)
{
	snprintf(out, n, "%s/%u", fl.node, id);
}

static void slot_key(const struct fbudget *b, char *out, size_t n)
{
	snprintf(out, n, "%ss:%s", fl.prefix, b->name);
}

static void on_slot(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct fbudget *b = priv;
	redisReply *r = reply;
	conn_got(&fl.cmd);
	b->slot_inflight = false;
	if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
		uint32_t *ns = realloc(b->slots, (b->held + 1) * sizeof(*ns));
		if (ns) {
			b->slots = ns;
			b->slots[b->held++] = b->next_slot++;
			FS(SLOTS_TAKEN);
			return;
		}
	} else if (r && r->type == REDIS_REPLY_INTEGER) {
		FS(SLOTS_FULL);
	} else if (r && r->type == REDIS_REPLY_ERROR) {
		FS(ERRORS);
		log_kind(LOG_K_GENERAL, LOG_ERR, "fleet: session slot refused: %.200s", r->str);
	}
	b->slot_retry_ms = loop_now_ms() + FLEET_BUDGET_RETRY_MS;
}

/* Give back the last slot held (ZREM). */
static void slot_release(struct fbudget *b)
{
	char key[RG_DOMAIN_MAX + 64], mem[96];
	slot_key(b, key, sizeof(key));
	slot_member(b->slots[b->held - 1], mem, sizeof(mem));
	const char *argv[] = {"ZREM", key, mem};
	size_t lens[] = {4, strlen(key), strlen(mem)};
	cmd_argv(on_write_reply, NULL, 3, argv, lens);
	b->held--;
	FS(SLOTS_RELEASED);
}

/* Renew every lease held (ZADD XX: a lease already expired stays gone). */
static void slot_renew(struct fbudget *b, uint64_t now)
{
	char key[RG_DOMAIN_MAX + 64], score[24], (*mem)[96] = calloc(b->held, 96);
	const char **argv = calloc(3 + 2 * (size_t)b->held, sizeof(*argv));
	size_t *lens = calloc(3 + 2 * (size_t)b->held, sizeof(*lens));
	struct timespec ts;
	if (!mem || !argv || !lens)
		goto out;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(score, sizeof(score), "%" PRIu64,
		 (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u + FLEET_SLOT_LEASE_MS);
	slot_key(b, key, sizeof(key));
	argv[0] = "ZADD";
	argv[1] = key;
	argv[2] = "XX";
	for (uint32_t i = 0; i < b->held; i++) {
		slot_member(b->slots[i], mem[i], 96);
		argv[3 + 2 * i] = score;
		argv[4 + 2 * i] = mem[i];
	}
	for (size_t i = 0; i < 3 + 2 * (size_t)b->held; i++)
		lens[i] = strlen(argv[i]);
	cmd_argv(on_write_reply, NULL, 3 + 2 * (int)b->held, argv, lens);
	b->renewed_ms = now;
out:
	free(mem);
	free(argv);
	free(lens);
}

/* Every tick: slots beyond the sessions open given back once not needed
 * for FLEET_SLOT_IDLE_MS (the callout engine reports every session's end),
 * the leases of the others renewed. */
static void slots_tick(uint64_t now)
{
	if (!fl.btab || !up())
		return;
	for (size_t i = 0; i < FLEET_BUDGET_BUCKETS; i++)
		for (struct fbudget *b = fl.btab[i]; b; b = b->next) {
			if (!b->held)
				continue;
			if (!b->last_waiting && b->held > b->last_sessions) {
				if (!b->idle_ms) {
					b->idle_ms = now;
				} else if (now - b->idle_ms >= FLEET_SLOT_IDLE_MS) {
					while (b->held > b->last_sessions)
						slot_release(b);
					b->idle_ms = 0;
				}
			} else {
				b->idle_ms = 0;
			}
			if (b->held && now - b->renewed_ms >= FLEET_SLOT_RENEW_MS)
				slot_renew(b, now);
		}
}

/* Redis came back: the slots held were in the Redis that went away (or
 * have expired meanwhile): start again from none. */
static void slots_forget(void)
{
	for (size_t i = 0; fl.btab && i < FLEET_BUDGET_BUCKETS; i++)
		for (struct fbudget *b = fl.btab[i]; b; b = b->next)
			b->held = 0;
}

static bool hook_budget(struct core_budget *cb, void *arg)
{
	(void)arg;
	if (!up() || !fl.btab)
		return false;
	struct fbudget *b = budget_of(cb->domain);
	if (!b)
		return false;
	uint64_t now = loop_now_ms();
	b->last_sessions = cb->sessions_open;
	b->last_waiting = cb->waiting;
	/* sessions: as many as slots held; one more asked for while addresses
	 * wait and every slot is in use; one given back when not needed */
	if (cb->waiting && cb->sessions_open >= b->held && b->held < cb->max_conns &&
	    !b->slot_inflight && now >= b->slot_retry_ms) {
		char key[RG_DOMAIN_MAX + 64], mem[96], lim[16], lease[16];
		slot_key(b, key, sizeof(key));
		slot_member(b->next_slot, mem, sizeof(mem));
		snprintf(lim, sizeof(lim), "%u", cb->max_conns);
		snprintf(lease, sizeof(lease), "%u", FLEET_SLOT_LEASE_MS);
		const char *argv[] = {"EVALSHA", fl.slot_sha, "1", key, lim, mem, lease};
		size_t lens[] = {7, 40, 1, strlen(key), strlen(lim), strlen(mem), strlen(lease)};
		if (cmd_argv(on_slot, b, 7, argv, lens)) {
			b->slot_inflight = true;
			if (!b->held)
				b->renewed_ms = now;
		}
	}
	*cb->allowed_conns = b->held < cb->max_conns ? b->held : cb->max_conns;
	const char *domain = cb->domain;
	uint32_t conn_rate = cb->conn_rate, rcpt_rate = cb->rcpt_rate, rcpt_burst = cb->rcpt_burst;
	double *conn = cb->conn, *rcpt = cb->rcpt;
	/* a tenth of a second's worth per ask; at most two asks' worth held */
	uint32_t want_c = conn_rate / 10 ? conn_rate / 10 : 1;
	uint32_t want_r = rcpt_rate / 10 ? rcpt_rate / 10 : 1;
	*conn += b->conn;
	*rcpt += b->rcpt;
	b->conn = b->rcpt = 0;
	if (*conn > 2.0 * want_c)
		*conn = 2.0 * want_c;
	if (*rcpt > 2.0 * want_r)
		*rcpt = 2.0 * want_r;
	if (b->inflight || now < b->retry_ms || (*conn >= want_c && *rcpt >= want_r))
		return true;
	char ck[RG_DOMAIN_MAX + 64], rk[RG_DOMAIN_MAX + 64], a[6][16];
	snprintf(ck, sizeof(ck), "%sr:%s:conn", fl.prefix, domain);
	snprintf(rk, sizeof(rk), "%sr:%s:rcpt", fl.prefix, domain);
	snprintf(a[0], 16, "%u", conn_rate);
	snprintf(a[1], 16, "%u", conn_rate);
	snprintf(a[2], 16, "%u", *conn >= want_c ? 0u : want_c);
	snprintf(a[3], 16, "%u", rcpt_rate);
	snprintf(a[4], 16, "%u", rcpt_burst);
	snprintf(a[5], 16, "%u", *rcpt >= want_r ? 0u : want_r);
	const char *argv[] = {"EVALSHA", fl.budget_sha, "2", ck, rk,
			      a[0], a[1], a[2], a[3], a[4], a[5]};
	size_t lens[11] = {7, 40, 1, strlen(ck), strlen(rk)};
	for (int i = 0; i < 6; i++)
		lens[5 + i] = strlen(a[i]);
	if (!cmd_argv(on_budget, b, 11, argv, lens))
		return false;
	b->inflight = true;
	FS(BUDGET_ASKS);
	return true;
}

/* ---------------------------------------------------------------------- */
/* timer: reconnects, reply timeouts, waits over */

static void tick(void *arg)
{
	(void)arg;
	uint64_t now = loop_now_ms();
	struct fconn *cs[] = {&fl.cmd, &fl.stream};
	for (int i = 0; i < 2; i++) {
		struct fconn *c = cs[i];
		if (c->state == C_DOWN && now >= c->retry_at_ms)
			conn_start(c);
		/* a blocking XREAD answers within its BLOCK time */
		uint64_t allow = fl.timeout_ms + (c == &fl.stream && fl.sync == SY_READ ?
							   FLEET_XREAD_BLOCK_MS : 0);
		if (c->ac && c->wait_since_ms && now - c->wait_since_ms > allow) {
			FS(TIMEOUTS);
			conn_drop(c, "no reply within redis_timeout");
		}
	}
	/* (a reload that shortens callout_wait or callout_lock delays the
	 * newer entries' ends until the older ones' at most) */
	struct gate *g;
	while ((g = fl.whead[WL_WAIT]) && now >= g->deadline_ms) {
		FS(LOCK_TIMEOUTS);
		gate_go(g, true);
	}
	while ((g = fl.whead[WL_HOLD]) && now >= g->deadline_ms)
		gate_release(g); /* a held lock expired without a verdict */
	if (up() && fl.nout)
		outbox_flush();
	slots_tick(now);
	pos_tick(now);
	if (fl.nhc && now - fl.hc_flushed_ms >= FLEET_HARVEST_FLUSH_MS) {
		fl.hc_flushed_ms = now;
		harvest_flush();
	}
}

/* After every loop turn (after the core's): what the turn asked and learned
 * goes to Redis, one script call each. */
static void fleet_turn(void *arg)
{
	(void)arg;
	if (!fl.on)
		return;
	gate_flush();
	share_flush();
}

/* ---------------------------------------------------------------------- */
/* the stream position across restarts */

static bool id_valid(const char *s)
{
	size_t d = strspn(s, "0123456789");
	return d > 0 && s[d] == '-' && strspn(s + d + 1, "0123456789") > 0 &&
	       s[d + 1 + strspn(s + d + 1, "0123456789")] == 0;
}

static void pos_load(void)
{
	FILE *f = fopen(fl.pos_path, "r");
	if (!f)
		return;
	char pfx[64] = "", id[64] = "";
	bool ok = fgets(pfx, sizeof(pfx), f) && fgets(id, sizeof(id), f);
	fclose(f);
	pfx[strcspn(pfx, "\n")] = 0;
	id[strcspn(id, "\n")] = 0;
	if (!ok || strcmp(pfx, fl.prefix) || !id_valid(id) || strlen(id) >= sizeof(fl.last_id)) {
		log_msg(LOG_NOTICE, "fleet: %s not used (another key prefix, or unreadable): "
			"resynchronising from the keys", fl.pos_path);
		return;
	}
	snprintf(fl.last_id, sizeof(fl.last_id), "%s", id);
	snprintf(fl.pos_written, sizeof(fl.pos_written), "%s", id);
	log_msg(LOG_INFO, "fleet: resuming the stream after %s", id);
}

/* Atomic (write + rename); not synced: a lost file costs a resync only. */
static void pos_save(const char *id)
{
	if (!fl.pos_path[0] || !id[0] || !strcmp(id, fl.pos_written))
		return;
	char tmp[sizeof(fl.pos_path) + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", fl.pos_path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		FS(POS_ERRORS);
		return;
	}
	fprintf(f, "%s\n%s\n", fl.prefix, id);
	if (fclose(f) || rename(tmp, fl.pos_path)) {
		FS(POS_ERRORS);
		unlink(tmp);
		return;
	}
	snprintf(fl.pos_written, sizeof(fl.pos_written), "%s", id);
}

static void pos_tick(uint64_t now)
{
	if (now - fl.pos_ms < 1000u)
		return;
	fl.pos_ms = now;
	pos_save(fl.pos_pending);
	snprintf(fl.pos_pending, sizeof(fl.pos_pending), "%s", fl.last_id);
}

/* ---------------------------------------------------------------------- */
/* status, stats */

static void hook_status(struct core_fleet_status *o, void *arg)
{
	(void)arg;
	o->enabled = true;
	o->connected = up();
	snprintf(o->node, sizeof(o->node), "%s", fl.node);
	snprintf(o->redis, sizeof(o->redis), "%s", fl.redis);
	o->down_since_s = fl.down_since_s;
	o->stream_lag_ms = fl.lag_ms;
	o->last_sync_s = fl.last_sync_s;
	o->applied = fl.st[FS_APPLIED];
	o->published = fl.st[FS_PUBLISHED];
	o->lock_waits = fl.st[FS_LOCK_WAITS];
	o->uncoordinated = fl.st[FS_UNCOORDINATED];
	o->outbox = fl.nout;
}

void fleet_stats_foreach(core_stat_fn fn, void *arg)
{
	if (!fl.on)
		return;
	fn("fleet", "connected", up(), "1 while both Redis connections are up", arg);
	for (int i = 0; i < FS__COUNT; i++)
		fn("fleet", fs_names[i], fl.st[i], fs_helps[i], arg);
	fn("fleet", "stream_lag_ms", fl.lag_ms, "age of the last stream entry when applied", arg);
	fn("fleet", "last_sync_s", fl.last_sync_s, "realtime of the last stream read", arg);
	fn("fleet", "gates", fl.ngates, "addresses at the gate now", arg);
	fn("fleet", "outbox", fl.nout, "verdicts waiting for Redis", arg);
}

/* ---------------------------------------------------------------------- */
/* start, reload, stop */

static int settings(const struct config *cfg, char *err, size_t errlen)
{
	char host[CONFIG_PATH_MAX];
	int port;
	int r = parse_redis(cfg->fleet_redis, host, sizeof(host), &port, err, errlen);
	if (r)
		return r;
	char pw[256] = "";
	if (cfg->fleet_password_file[0]) {
		FILE *f = fopen(cfg->fleet_password_file, "r");
		if (!f) {
			int e = errno;
			snprintf(err, errlen, "[fleet] redis_password_file %s: %s",
				 cfg->fleet_password_file, strerror(e));
			return -e;
		}
		if (!fgets(pw, sizeof(pw), f))
			pw[0] = 0;
		fclose(f);
		pw[strcspn(pw, "\r\n")] = 0;
		if (!pw[0]) {
			snprintf(err, errlen, "[fleet] redis_password_file %s: empty",
				 cfg->fleet_password_file);
			return -EINVAL;
		}
	}
	uint8_t secret[16];
	if ((r = fleet_secret_read(cfg->fleet_secret_file, secret, err, errlen)))
		return r;
	if (fl.on && memcmp(secret, fl.secret, sizeof(secret)))
		log_msg(LOG_WARNING, "fleet: secret_file changed: the new secret takes effect at the "
			"next restart (docs/fleet.md: rolling the secret)");
	if (!fl.on)
		memcpy(fl.secret, secret, sizeof(secret));
	bool same = fl.on && !strcmp(fl.redis, cfg->fleet_redis) && !strcmp(fl.user, cfg->fleet_user) &&
		    !strcmp(fl.password, pw) && !strcmp(fl.prefix, cfg->fleet_prefix);
	snprintf(fl.redis, sizeof(fl.redis), "%s", cfg->fleet_redis);
	snprintf(fl.user, sizeof(fl.user), "%s", cfg->fleet_user);
	memcpy(fl.password, pw, sizeof(pw));
	memset(pw, 0, sizeof(pw));
	if (strcmp(fl.prefix, cfg->fleet_prefix)) {
		snprintf(fl.prefix, sizeof(fl.prefix), "%s", cfg->fleet_prefix);
		fl.last_id[0] = 0; /* another key space: resync from its keys */
	}
	if (cfg->fleet_node[0]) {
		snprintf(fl.node, sizeof(fl.node), "%s", cfg->fleet_node);
	} else {
		char hn[64] = "";
		gethostname(hn, sizeof(hn) - 1);
		snprintf(fl.node, sizeof(fl.node), "%s", hn[0] ? hn : "rcptgated");
	}
	snprintf(fl.lockval, sizeof(fl.lockval), "L %s", fl.node);
	fl.stream_max = cfg->fleet_stream_max;
	fl.lock_ms = cfg->fleet_lock_ms;
	fl.wait_ms = cfg->fleet_wait_ms;
	fl.timeout_ms = cfg->fleet_connect_timeout_ms;
	fl.backoff_max_ms = cfg->fleet_reconnect_max_ms;
	fl.harvest_limit = cfg->fleet_harvest_limit;
	fl.harvest_window_ms = cfg->fleet_harvest_window_ms;
	fl.block_ttl = cfg->block_ttl;
	if (fl.harvest_limit && !fl.hc && !(fl.hc = calloc(FLEET_HARVEST_SLOTS, sizeof(*fl.hc)))) {
		snprintf(err, errlen, "fleet: out of memory");
		return -ENOMEM;
	}
	return same ? 0 : 1;
}

int fleet_start(const struct config *cfg, char *err, size_t errlen)
{
	if (!cfg->fleet_redis[0])
		return 0;
	int r = settings(cfg, err, errlen);
	if (r < 0)
		return r;
	snprintf(fl.pos_path, sizeof(fl.pos_path), "%s/" FLEET_POS_FILE, cfg->store_path);
	pos_load();
	sha1_hex(fleet_budget_lua, fl.budget_sha);
	sha1_hex(fleet_harvest_lua, fl.harvest_sha);
	sha1_hex(fleet_gate_lua, fl.gate_sha);
	sha1_hex(fleet_share_lua, fl.share_sha);
	sha1_hex(fleet_slot_lua, fl.slot_sha);
	fl.btab = calloc(FLEET_BUDGET_BUCKETS, sizeof(*fl.btab));
	fl.sbatch = calloc(FLEET_BATCH_MAX, sizeof(*fl.sbatch));
	if (!fl.btab || !fl.sbatch || loop_on_turn(fleet_turn, NULL)) {
		snprintf(err, errlen, "fleet: out of memory");
		return -ENOMEM;
	}
	if (khash_new_key(fl.hkey)) {
		snprintf(err, errlen, "fleet: getrandom failed");
		return -EIO;
	}
	fl.timer = loop_timer_add(20, 20, tick, NULL);
	if (!fl.timer) {
		snprintf(err, errlen, "fleet: out of memory");
		return -ENOMEM;
	}
	static const struct core_fleet_hooks hooks = {
		.learned = hook_learned,
		.deleted = hook_deleted,
		.gate = hook_gate,
		.status = hook_status,
		.event = hook_event,
		.block = hook_block,
		.unblock = hook_unblock,
		.budget = hook_budget,
	};
	core_set_fleet_hooks(&hooks);
	fl.on = true;
	conn_start(&fl.cmd);
	conn_start(&fl.stream);
	log_msg(LOG_INFO, "fleet: node %s, Redis %s, key prefix %s", fl.node, fl.redis, fl.prefix);
	return 0;
}

int fleet_reload(const struct config *cfg, char *err, size_t errlen)
{
	if (!fl.on) {
		if (cfg->fleet_redis[0])
			log_msg(LOG_WARNING, "fleet: [fleet] added: it takes effect at the next restart "
				"(the table's hash secret changes)");
		return 0;
	}
	if (!cfg->fleet_redis[0]) {
		log_msg(LOG_WARNING, "fleet: [fleet] removed: it takes effect at the next restart");
		return 0;
	}
	int r = settings(cfg, err, errlen);
	if (r < 0)
		return r;
	if (r == 1) {
		conn_drop(&fl.cmd, "reconfigured");
		conn_drop(&fl.stream, "reconfigured");
		fl.cmd.retry_at_ms = fl.stream.retry_at_ms = 0;
		fl.down_since_ms = 0; /* not an outage */
		fl.down_since_s = 0;
	}
	return 0;
}

void fleet_stop(void)
{
	if (!fl.on)
		return;
	/* the loop has stopped after a turn: what was applied is committed */
	pos_save(fl.last_id);
	core_set_fleet_hooks(NULL);
	loop_timer_cancel(fl.timer);
	fl.on = false;
	/* pending replies are called with NULL: gates let their callouts go */
	if (fl.cmd.ac) {
		redisAsyncContext *ac = fl.cmd.ac;
		fl.cmd.ac = NULL;
		fl.cmd.gen++;
		redisAsyncFree(ac);
	}
	if (fl.stream.ac) {
		redisAsyncContext *ac = fl.stream.ac;
		fl.stream.ac = NULL;
		fl.stream.gen++;
		redisAsyncFree(ac);
	}
	for (size_t i = 0; i < fl.tab_size; i++)
		while (fl.tab[i]) {
			struct gate *g = fl.tab[i];
			fl.tab[i] = g->next;
			free(g);
		}
	free(fl.tab);
	free(fl.outbox);
	free(fl.hc);
	for (size_t i = 0; fl.btab && i < FLEET_BUDGET_BUCKETS; i++)
		while (fl.btab[i]) {
			struct fbudget *b = fl.btab[i];
			fl.btab[i] = b->next;
			free(b->slots);
			free(b);
		}
	free(fl.btab);
	free(fl.sbatch);
	memset(fl.password, 0, sizeof(fl.password));
	memset(&fl, 0, sizeof(fl));
	fl.cmd.name = "commands";
	fl.cmd.fd = -1;
	fl.stream.name = "stream";
	fl.stream.fd = -1;
}
