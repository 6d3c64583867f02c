/*
 * callout.c — the callout engine (see callout.h): domain queues, the SMTP
 * client session state machine, reply parsing, rate limits, circuit
 * breaker, accept-all probes.
 *
 * The reply parser is resumable over a bounded receive buffer: bytes are
 * appended, complete lines are consumed, a partial line waits for more, and
 * a line over CALLOUT_LINE_MAX ends the session (counted).  Any split of the
 * server's bytes into reads gives the same result.  Multi-line replies
 * ("250-...") are joined; the code must agree on every line.
 * Thread: main thread only.
 */
#include "callout.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "classify.h"
#include "core.h"
#include "dtable.h"
#include "khash.h"
#include "log.h"
#include "text.h"

enum pend_state { P_QUEUED = 1, P_INFLIGHT, P_HOLD };

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
	/* reply being parsed */
	char rbuf[CALLOUT_RBUF];
	size_t rlen;
	uint16_t rcode;
	unsigned rlines;
	char rtext[CALLOUT_TEXT_MAX];
	size_t rtext_len;
	char rfirst[256];		/* first line, for reports */
	bool saw_pipelining, saw_smtputf8;	/* EHLO keywords seen */
	uint16_t greet5xx;			/* a destination refused us at greeting */
	char greet5xx_text[256];
	bool smtputf8;				/* the server takes UTF-8 addresses */
	bool saw_starttls;			/* EHLO offered STARTTLS */
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

#define HASH_INIT 1024u

static struct {
	struct callout_hooks hooks;
	struct callout_dom *doms;
	struct callout_dom *kick;	/* domains with work to schedule */
	struct callout_pend **tab;
	size_t tab_size, tab_count;
	uint8_t hkey[16];
	struct callout_pend *hold_head, *hold_tail;
	struct sess *sessions;
	struct sess *graveyard;		/* closed sessions, freed by callout_tick */
	uint32_t nsessions, nqueued, ninflight;
	uint32_t queue_max;
	uint32_t dns_timeout_ms, mx_min_ttl;	/* from the configuration */
	uint64_t last_sweep_ms;
	uint64_t st[CALLOUT_ST__COUNT];
	char hostname[256];
	SSL_CTX *ssl_ctx;		/* STARTTLS on callouts; NULL = unavailable */
	struct sockaddr_storage own[CALLOUT_OWN_MAX];	/* this host's addresses */
	unsigned nown;
	bool inited;
} co;

static const char *const stat_names[] = {
#define CALLOUT_NAME(id, name, help) name,
	CALLOUT_STATS_LIST(CALLOUT_NAME)
#undef CALLOUT_NAME
};
static const char *const stat_helps[] = {
#define CALLOUT_HELP(id, name, help) help,
	CALLOUT_STATS_LIST(CALLOUT_HELP)
#undef CALLOUT_HELP
};

uint64_t callout_stat(enum callout_stat s)
{
	return s < CALLOUT_ST__COUNT ? co.st[s] : 0;
}
const char *callout_stat_name(enum callout_stat s)
{
	return s < CALLOUT_ST__COUNT ? stat_names[s] : "?";
}
const char *callout_stat_help(enum callout_stat s)
{
	return s < CALLOUT_ST__COUNT ? stat_helps[s] : "";
}
uint32_t callout_nqueued(void)
{
	return co.nqueued;
}
uint32_t callout_ninflight(void)
{
	return co.ninflight;
}
uint32_t callout_nsessions(void)
{
	return co.nsessions;
}

#define ST(x) (co.st[CALLOUT_ST_##x]++)

/* ---- the pending-address hash (keyed SipHash: addresses come from the net) */

static uint64_t addr_hash(const char *a, size_t n)
{
	return khash64(co.hkey, a, n);
}

static struct callout_pend *hash_find(const char *a, size_t n, uint64_t h)
{
	for (struct callout_pend *p = co.tab[h & (co.tab_size - 1)]; p; p = p->hnext)
		if (p->hash == h && p->len == n && !memcmp(p->addr, a, n))
			return p;
	return NULL;
}

static void hash_grow(void)
{
	size_t nsize = co.tab_size * 2;
	struct callout_pend **nt = calloc(nsize, sizeof(*nt));
	if (!nt)
		return; /* keep the longer chains */
	for (size_t i = 0; i < co.tab_size; i++) {
		struct callout_pend *p = co.tab[i];
		while (p) {
			struct callout_pend *nx = p->hnext;
			p->hnext = nt[p->hash & (nsize - 1)];
			nt[p->hash & (nsize - 1)] = p;
			p = nx;
		}
	}
	free(co.tab);
	co.tab = nt;
	co.tab_size = nsize;
}

static void hash_add(struct callout_pend *p)
{
	if (co.tab_count >= co.tab_size)
		hash_grow();
	struct callout_pend **b = &co.tab[p->hash & (co.tab_size - 1)];
	p->hnext = *b;
	*b = p;
	p->hashed = true;
	co.tab_count++;
}

static void hash_del(struct callout_pend *p)
{
	if (!p->hashed)
		return;
	struct callout_pend **b = &co.tab[p->hash & (co.tab_size - 1)];
	while (*b && *b != p)
		b = &(*b)->hnext;
	if (*b)
		*b = p->hnext;
	p->hashed = false;
	co.tab_count--;
}

/* ---- domains */

struct callout_dom *callout_domain(const char *name)
{
	for (struct callout_dom *d = co.doms; d; d = d->next)
		if (d->configured && !strcmp(d->cfg.name, name))
			return d;
	return NULL;
}

static struct callout_dom *find_any(const char *name)
{
	for (struct callout_dom *d = co.doms; d; d = d->next)
		if (!strcmp(d->cfg.name, name))
			return d;
	return NULL;
}

static void kick_add(struct callout_dom *d)
{
	if (d->in_kick)
		return;
	d->in_kick = true;
	d->kick_next = co.kick;
	co.kick = d;
}

static void notify(struct callout_dom *d)
{
	if (co.hooks.domain_changed)
		co.hooks.domain_changed(d, co.hooks.arg);
}

bool callout_failing_open(const struct callout_dom *d, uint64_t now_ms)
{
	return (d->breaker_until_ms && now_ms < d->breaker_until_ms) ||
	       (d->unverifiable_until_ms && now_ms < d->unverifiable_until_ms);
}

static void set_health(struct callout_dom *d, int h)
{
	if (d->health != h) {
		d->health = h;
		notify(d);
	}
}

/* ---- finishing an address */

static void pend_free(struct callout_pend *p)
{
	free(p);
}

static void hold_add(struct callout_pend *p, uint64_t until)
{
	p->state = P_HOLD;
	p->hold_until_ms = until;
	p->qnext = NULL;
	if (co.hold_tail)
		co.hold_tail->qnext = p;
	else
		co.hold_head = p;
	co.hold_tail = p;
}

static void finish(struct callout_pend *p, int verdict, uint16_t code, const char *enh,
		   const char *reply, const char *dest, const struct sess *s)
{
	struct callout_dom *d = p->dom;
	uint64_t now = daemon_now_ms();
	if (verdict == CORE_V_VALID && d->accept_all && !(p->flags & CALLOUT_F_PROBE))
		verdict = CORE_V_ACCEPT_ALL;
	if (!(p->flags & CALLOUT_F_PROBE)) {
		d->callouts++;
		switch (verdict) {
		case CORE_V_VALID:
		case CORE_V_ACCEPT_ALL:
			d->valid++;
			ST(VALID);
			break;
		case CORE_V_INVALID:
			d->invalid++;
			ST(INVALID);
			break;
		case CORE_V_UNVERIFIABLE:
			d->unverifiable++;
			ST(UNVERIFIABLE);
			break;
		default:
			d->tempfail++;
			ST(TEMPFAIL);
			break;
		}
	}
	struct callout_result r = {
		.addr = p->addr,
		.len = p->len,
		.domain = d->cfg.name,
		.verdict = verdict,
		.code = code,
		.enh = enh ? enh : "",
		.reply = reply ? reply : "",
		.dest = dest ? dest : "",
		.flags = p->flags,
		.waiters = p->waiters,
		.backup = s && s->tgt.backup,
		.transcript = (s && s->verify) ? s->tbuf : NULL,
		.transcript_len = (s && s->verify) ? s->tlen : 0,
		.elapsed_ms = now - p->queued_ms,
	};
	p->waiters = NULL;
	if (p->state == P_INFLIGHT)
		co.ninflight--;
	bool hold = p->hashed && (verdict == CORE_V_TEMPFAIL || verdict == CORE_V_UNVERIFIABLE) &&
		    d->cfg.ttl_tempfail > 0;
	if (hold)
		hold_add(p, now + (uint64_t)d->cfg.ttl_tempfail * 1000u);
	else
		hash_del(p);
	if (co.hooks.result)
		co.hooks.result(&r, co.hooks.arg);
	if (!hold)
		pend_free(p);
}

/* Answer every queued address of d at once (breaker open, unverifiable,
 * no destination). */
static void drain_queue(struct callout_dom *d, int verdict, const char *why)
{
	while (d->qhead) {
		struct callout_pend *p = d->qhead;
		d->qhead = p->qnext;
		if (!d->qhead)
			d->qtail = NULL;
		d->nqueued--;
		co.nqueued--;
		p->state = P_INFLIGHT;
		co.ninflight++;
		finish(p, verdict, 0, "", why, "", NULL);
	}
	d->reserved = 0;
}

/* ---- submission */

static int domain_of(const char *addr, size_t len, char *dom)
{
	size_t at = len;
	while (at > 0 && addr[at - 1] != '@')
		at--;
	if (at == 0 || len - at > RG_DOMAIN_MAX || len - at == 0)
		return -EINVAL;
	memcpy(dom, addr + at, len - at);
	dom[len - at] = 0;
	return 0;
}

static struct callout_pend *pend_new(struct callout_dom *d, const char *addr, size_t len,
				     unsigned flags)
{
	struct callout_pend *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	memcpy(p->addr, addr, len);
	p->addr[len] = 0;
	p->len = (uint16_t)len;
	p->dom = d;
	p->flags = (uint8_t)flags;
	p->queued_ms = daemon_now_ms();
	return p;
}

static void enqueue(struct callout_dom *d, struct callout_pend *p, bool front)
{
	p->state = P_QUEUED;
	if (front) {
		p->qnext = d->qhead;
		d->qhead = p;
		if (!d->qtail)
			d->qtail = p;
	} else {
		p->qnext = NULL;
		if (d->qtail)
			d->qtail->qnext = p;
		else
			d->qhead = p;
		d->qtail = p;
	}
	d->nqueued++;
	co.nqueued++;
	kick_add(d);
}

static int start_verify(struct callout_dom *d, struct callout_pend *p);

int callout_submit(const char *addr, size_t len, unsigned flags, struct callout_waiter *w)
{
	char dname[RG_DOMAIN_MAX + 1];
	if (len == 0 || len > RG_ADDR_MAX || domain_of(addr, len, dname))
		return -EINVAL;
	struct callout_dom *d = callout_domain(dname);
	if (!d)
		return -ENOENT;
	uint64_t now = daemon_now_ms();
	ST(SUBMITTED);
	if (flags & CALLOUT_F_VERIFY) {
		struct callout_pend *p = pend_new(d, addr, len, flags);
		if (!p)
			return -ENOMEM;
		p->waiters = w;
		if (w)
			w->next = NULL;
		int r = start_verify(d, p);
		if (r) {
			pend_free(p);
			return r;
		}
		return 0;
	}
	uint64_t h = addr_hash(addr, len);
	struct callout_pend *p = hash_find(addr, len, h);
	if (p && p->state == P_HOLD) {
		if (now < p->hold_until_ms) {
			ST(HELD);
			return -EAGAIN;
		}
		/* expired hold: reuse the record (it stays on the hold list until
		 * the sweep, which skips non-hold entries) */
		hash_del(p);
		p->state = 0;
		p = NULL;
	}
	if (p) {
		if (w) {
			w->next = p->waiters;
			p->waiters = w;
		}
		ST(JOINED);
		return 1;
	}
	if (callout_failing_open(d, now)) {
		ST(FAILING_OPEN);
		return -EHOSTDOWN;
	}
	if (co.nqueued >= co.queue_max || d->nqueued >= d->cfg.queue_max) {
		ST(QUEUE_FULL);
		return -ENOSPC;
	}
	p = pend_new(d, addr, len, flags);
	if (!p)
		return -ENOMEM;
	p->hash = h;
	p->waiters = w;
	if (w)
		w->next = NULL;
	hash_add(p);
	enqueue(d, p, false);
	return 0;
}

bool callout_pending(const char *addr, size_t len)
{
	if (!co.tab)
		return false;
	struct callout_pend *p = hash_find(addr, len, addr_hash(addr, len));
	return p && p->state != P_HOLD;
}

/* ---- sessions: output */

static int wreserve(struct sess *s, size_t more)
{
	if (s->wlen + more <= s->wcap)
		return 0;
	if (s->woff) {
		memmove(s->wbuf, s->wbuf + s->woff, s->wlen - s->woff);
		s->wlen -= s->woff;
		s->woff = 0;
		if (s->wlen + more <= s->wcap)
			return 0;
	}
	size_t ncap = s->wcap ? s->wcap : 1024;
	while (ncap < s->wlen + more)
		ncap *= 2;
	char *nb = realloc(s->wbuf, ncap);
	if (!nb)
		return -ENOMEM;
	s->wbuf = nb;
	s->wcap = ncap;
	return 0;
}

static void transcript(struct sess *s, const char *who, const char *line, size_t n)
{
	if (!s->verify || !s->tbuf)
		return;
	/* a destination's text goes to an operator's terminal: cleaned */
	char safe[TEXT_CLEAN_MAX(CALLOUT_LINE_MAX)];
	size_t sl = text_clean(safe, sizeof(safe), line, n, 0);
	size_t room = CALLOUT_TRANSCRIPT_MAX - 1 - s->tlen;
	size_t need = strlen(who) + sl + 1;
	if (need > room) {
		if (!s->tcut)
			ST(TRANSCRIPT_CUT);
		s->tcut = true;
		return;
	}
	memcpy(s->tbuf + s->tlen, who, strlen(who));
	s->tlen += strlen(who);
	memcpy(s->tbuf + s->tlen, safe, sl);
	s->tlen += sl;
	s->tbuf[s->tlen++] = '\n';
	s->tbuf[s->tlen] = 0;
}

/* Queue one command line a b c + CRLF (parts concatenated, no formatting). */
static int cmd(struct sess *s, const char *a, const char *b, const char *c)
{
	char line[RG_PATH_MAX + 64];
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	if (la + lb + lc + 2 > sizeof(line))
		return -EINVAL;
	memcpy(line, a, la);
	memcpy(line + la, b, lb);
	memcpy(line + la + lb, c, lc);
	size_t n = la + lb + lc;
	transcript(s, "C: ", line, n);
	if (wreserve(s, n + 2))
		return -ENOMEM;
	memcpy(s->wbuf + s->wlen, line, n);
	s->wlen += n;
	s->wbuf[s->wlen++] = '\r';
	s->wbuf[s->wlen++] = '\n';
	return 0;
}

static void sess_close(struct sess *s, bool ok);

static void set_events(struct sess *s)
{
	bool out = s->woff < s->wlen || s->state == S_CONNECT ||
		   (s->state == S_TLS && s->tls_want_write);
	if (out != s->want_out) {
		daemon_mod_fd(s->fd, EPOLLIN | (out ? EPOLLOUT : 0));
		s->want_out = out;
	}
}

static int flush_out(struct sess *s)
{
	while (s->woff < s->wlen) {
		ssize_t n;
		if (s->tls_on) {
			int w = SSL_write(s->ssl, s->wbuf + s->woff, (int)(s->wlen - s->woff));
			if (w <= 0) {
				int e = SSL_get_error(s->ssl, w);
				ERR_clear_error();
				if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
					break;
				return -EIO;
			}
			n = w;
		} else {
			n = send(s->fd, s->wbuf + s->woff, s->wlen - s->woff, MSG_NOSIGNAL);
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -errno;
		}
		s->woff += (size_t)n;
	}
	if (s->woff == s->wlen)
		s->woff = s->wlen = 0;
	set_events(s);
	return 0;
}

static void arm(struct sess *s, uint32_t ms)
{
	s->deadline_ms = daemon_now_ms() + ms;
}

/* End the session politely; a connection that cannot take QUIT is closed. */
static void send_quit(struct sess *s)
{
	s->state = S_QUIT;
	cmd(s, "QUIT", "", "");
	arm(s, s->dom->cfg.command_timeout_ms);
	if (flush_out(s))
		sess_close(s, false);
}

/* ---- sessions: failure paths */

static void fail_tx(struct sess *s, int verdict, uint16_t code, const char *enh, const char *why)
{
	for (unsigned i = s->next_reply; i < s->ntx; i++) {
		struct callout_pend *p = s->tx[i];
		if (!p)
			continue;
		s->tx[i] = NULL;
		if ((p->flags & CALLOUT_F_PROBE)) {
			s->dom->aa_inflight = false;
			if (verdict == CORE_V_UNVERIFIABLE)
				s->dom->aa_known = true; /* it refused: not accept-all */
		}
		finish(p, verdict, code, enh, why, s->dest, s);
	}
	s->ntx = s->next_reply = 0;
}

static void breaker_failure(struct callout_dom *d, const char *why)
{
	uint64_t now = daemon_now_ms();
	snprintf(d->last_error, sizeof(d->last_error), "%s", why);
	d->failures++;
	ST(SESSIONS_FAILED);
	if (d->failures >= d->cfg.breaker_failures) {
		bool was_open = d->breaker_until_ms && now < d->breaker_until_ms;
		d->breaker_until_ms = now + (uint64_t)d->cfg.breaker_open_s * 1000u;
		d->breaker_until_s = daemon_wall_s() + d->cfg.breaker_open_s;
		if (!was_open) {
			ST(BREAKER_OPENED);
			log_msg(LOG_WARNING,
				"callout: %s: circuit breaker open for %us after %u failed sessions "
				"(%s): failing open",
				d->cfg.name, d->cfg.breaker_open_s, d->failures, why);
		}
		d->health = CORE_H_DOWN;
		notify(d);
		drain_queue(d, CORE_V_TEMPFAIL, "destination down (circuit breaker open)");
	} else {
		set_health(d, CORE_H_DEGRADED);
	}
}

static void mark_unverifiable(struct callout_dom *d, uint16_t code, const char *reply)
{
	uint64_t now = daemon_now_ms();
	d->unverifiable_until_ms = now + (uint64_t)d->cfg.ttl_unverifiable * 1000u;
	d->unverifiable_until_s = daemon_wall_s() + d->cfg.ttl_unverifiable;
	snprintf(d->last_error, sizeof(d->last_error), "refused callouts: %.100s", reply);
	log_msg(LOG_WARNING, "callout: %s: destination refuses callouts (%u %s): failing open for %us",
		d->cfg.name, code, reply, d->cfg.ttl_unverifiable);
	d->health = CORE_H_UNVERIFIABLE;
	notify(d);
	drain_queue(d, CORE_V_UNVERIFIABLE, reply);
}

static void sess_success(struct sess *s)
{
	struct callout_dom *d = s->dom;
	bool was = d->failures > 0 || d->breaker_until_ms;
	d->failures = 0;
	if (d->breaker_until_ms) {
		d->breaker_until_ms = 0;
		d->breaker_until_s = 0;
		log_msg(LOG_NOTICE, "callout: %s: destination answers again; circuit breaker closed",
			d->cfg.name);
	}
	d->last_error[0] = 0;
	if (d->health != CORE_H_UNVERIFIABLE || !callout_failing_open(d, daemon_now_ms()))
		d->health = CORE_H_OK;
	if (was)
		notify(d);
	else
		set_health(d, d->health);
}

static int connect_next(struct sess *s);

/* Destinations of the best MX preference (all of an explicit list). */
static unsigned primaries(const struct callout_dom *d)
{
	unsigned np = 0;
	while (np < d->dest.n && !d->dest.t[np].backup)
		np++;
	return np ? np : d->dest.n;
}

/* Whether sa is an address of one of this host's (non-loopback)
 * interfaces, as read at the last configure. */
static bool own_address(const struct sockaddr_storage *sa)
{
	for (unsigned i = 0; i < co.nown; i++) {
		if (co.own[i].ss_family != sa->ss_family)
			continue;
		if (sa->ss_family == AF_INET &&
		    !memcmp(&((const struct sockaddr_in *)sa)->sin_addr,
			    &((const struct sockaddr_in *)&co.own[i])->sin_addr, 4))
			return true;
		if (sa->ss_family == AF_INET6 &&
		    !memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr,
			    &((const struct sockaddr_in6 *)&co.own[i])->sin6_addr, 16))
			return true;
	}
	return false;
}

static void read_own_addresses(void)
{
	struct ifaddrs *ifa = NULL;
	co.nown = 0;
	if (getifaddrs(&ifa))
		return;
	for (struct ifaddrs *i = ifa; i && co.nown < CALLOUT_OWN_MAX; i = i->ifa_next) {
		if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK) ||
		    (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
			continue;
		memset(&co.own[co.nown], 0, sizeof(co.own[0]));
		memcpy(&co.own[co.nown++], i->ifa_addr,
		       i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
							 : sizeof(struct sockaddr_in6));
	}
	freeifaddrs(ifa);
}

/* The session ended without finishing its work. */
static void sess_fail(struct sess *s, int verdict, uint16_t code, const char *why)
{
	struct callout_dom *d = s->dom;
	if (!s->ehlo_ok && !s->verify)
		breaker_failure(d, why);
	else if (!s->ehlo_ok)
		snprintf(d->last_error, sizeof(d->last_error), "%s", why);
	fail_tx(s, verdict, code, "", why);
	/* addresses reserved for this session are answered too, or a dead
	 * destination would be retried at once for them (until the breaker) */
	while (s->reserved && d->qhead) {
		struct callout_pend *p = d->qhead;
		d->qhead = p->qnext;
		if (!d->qhead)
			d->qtail = NULL;
		d->nqueued--;
		co.nqueued--;
		d->reserved -= d->reserved ? 1 : 0;
		s->reserved--;
		p->state = P_INFLIGHT;
		co.ninflight++;
		finish(p, verdict, code, "", why, s->dest, NULL);
	}
	sess_close(s, false);
}

/* ---- transactions */

static void random_local(char *out, size_t n)
{
	uint8_t r[8];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		uint64_t t = daemon_now_ms() ^ (uint64_t)getpid() << 32;
		memcpy(r, &t, sizeof(r));
	}
	snprintf(out, n, "rg-probe-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4],
		 r[5], r[6], r[7]);
}

static bool is_utf8_addr(const char *a)
{
	for (; *a; a++)
		if ((unsigned char)*a >= 0x80)
			return true;
	return false;
}

static bool probe_due(const struct callout_dom *d, uint64_t now)
{
	if (!d->cfg.accept_all_probe || d->aa_inflight)
		return false;
	return !d->aa_checked_ms || now - d->aa_checked_ms >= (uint64_t)d->cfg.accept_all_interval * 1000u;
}

static void refill(struct callout_dom *d, uint64_t now)
{
	if (!d->tokens_ms) {
		d->conn_tokens = d->cfg.dest_conn_rate;
		d->rcpt_tokens = d->cfg.dest_rcpt_rate > d->cfg.batch ? d->cfg.dest_rcpt_rate : d->cfg.batch;
		d->tokens_ms = now;
		return;
	}
	double dt = (double)(now - d->tokens_ms) / 1000.0;
	d->tokens_ms = now;
	double cmax = d->cfg.dest_conn_rate;
	double rmax = d->cfg.dest_rcpt_rate > d->cfg.batch ? d->cfg.dest_rcpt_rate : d->cfg.batch;
	d->conn_tokens += dt * d->cfg.dest_conn_rate;
	if (d->conn_tokens > cmax)
		d->conn_tokens = cmax;
	d->rcpt_tokens += dt * d->cfg.dest_rcpt_rate;
	if (d->rcpt_tokens > rmax)
		d->rcpt_tokens = rmax;
}

static int send_rcpt(struct sess *s, unsigned i)
{
	ST(RCPT_SENT);
	return cmd(s, "RCPT TO:<", s->tx[i]->addr, ">");
}

/* The probe's sender: mail_from, its local part suffixed "-N" with N
 * changing every mail_from_rotate seconds (Postfix's
 * address_verify_sender_ttl: a destination that learns the sender cannot
 * whitelist or blacklist it for long). */
static const char *probe_sender(const struct callout_dom *d, char *buf, size_t n)
{
	const char *mf = d->cfg.mail_from, *at = strrchr(mf, '@');
	if (!d->cfg.mail_from_rotate || !at)
		return mf;
	snprintf(buf, n, "%.*s-%llu%s", (int)(at - mf), mf,
		 (unsigned long long)(daemon_wall_s() / d->cfg.mail_from_rotate), at);
	return buf;
}

/* Take a batch from the queue and send MAIL (+ RCPTs when pipelining). */
static void tx_start(struct sess *s)
{
	struct callout_dom *d = s->dom;
	uint64_t now = daemon_now_ms();
	if (s->reserved) {
		d->reserved -= s->reserved < d->reserved ? s->reserved : d->reserved;
		s->reserved = 0;
	}
	s->next_reply = s->nsent = s->swallow = 0;
	if (!s->verify)
		s->ntx = 0;
	if (!s->verify) {
		refill(d, now);
		uint32_t limit = d->cfg.batch;
		if (d->rcpt_limit && d->rcpt_limit < limit)
			limit = d->rcpt_limit;
		uint32_t left = d->cfg.session_max_rcpts > s->rcpts_total ?
					d->cfg.session_max_rcpts - s->rcpts_total : 0;
		if (left < limit)
			limit = left;
		if (d->rcpt_tokens < limit)
			limit = (uint32_t)d->rcpt_tokens;
		if (limit > s->cap)
			limit = s->cap;
		if (((limit && d->nqueued) || (s->probe_only && !s->transactions)) &&
		    probe_due(d, now) && s->cap > 0) {
			char local[40], a[RG_ADDR_MAX + 1];
			random_local(local, sizeof(local));
			int n = snprintf(a, sizeof(a), "%s@%s", local, d->cfg.name);
			struct callout_pend *p = n > 0 && (size_t)n < sizeof(a) ?
							 pend_new(d, a, (size_t)n, CALLOUT_F_PROBE) : NULL;
			if (p) {
				p->state = P_INFLIGHT;
				co.ninflight++;
				s->tx[s->ntx++] = p;
				d->aa_inflight = true;
				ST(PROBES);
			}
		}
		unsigned want = limit + s->ntx; /* the probe, if any, comes on top */
		while (s->ntx < want && s->ntx < s->cap && d->qhead) {
			struct callout_pend *p = d->qhead;
			d->qhead = p->qnext;
			if (!d->qhead)
				d->qtail = NULL;
			d->nqueued--;
			co.nqueued--;
			p->state = P_INFLIGHT;
			co.ninflight++;
			s->tx[s->ntx++] = p;
		}
		d->rcpt_tokens -= s->ntx;
		if (s->ntx == 1 && (s->tx[0]->flags & CALLOUT_F_PROBE) && !s->probe_only) {
			/* nothing else to check after all: the probe waits */
			struct callout_pend *p = s->tx[0];
			d->aa_inflight = false;
			co.ninflight--;
			pend_free(p);
			s->ntx = 0;
		}
	}
	if (s->ntx == 0) {
		send_quit(s);
		return;
	}
	/* RFC 6531: UTF-8 addresses only to a server that says SMTPUTF8, and
	 * then with the SMTPUTF8 parameter; elsewhere they cannot be asked */
	bool utf8 = false;
	for (unsigned i = 0; i < s->ntx; i++) {
		if (!is_utf8_addr(s->tx[i]->addr))
			continue;
		if (s->smtputf8) {
			utf8 = true;
			continue;
		}
		struct callout_pend *p = s->tx[i];
		memmove(&s->tx[i], &s->tx[i + 1], (s->ntx - i - 1) * sizeof(s->tx[0]));
		s->ntx--;
		i--;
		if (p->flags & CALLOUT_F_PROBE)
			d->aa_inflight = false;
		finish(p, CORE_V_UNVERIFIABLE, 0, "", "destination does not offer SMTPUTF8", s->dest,
		       s);
	}
	if (s->ntx == 0) {
		send_quit(s);
		return;
	}
	s->tx_asked = s->ntx;
	s->tx_retried = 0;
	ST(TRANSACTIONS);
	if (s->transactions++)
		ST(RSET_REUSE);
	s->rcpts_total += s->ntx;
	s->state = S_MAIL;
	char sender[RG_ADDR_MAX + 16];
	int r = cmd(s, "MAIL FROM:<", probe_sender(d, sender, sizeof(sender)),
		    utf8 ? "> SMTPUTF8" : ">");
	if (!r && s->pipelining) {
		for (unsigned i = 0; i < s->ntx && !r; i++)
			r = send_rcpt(s, i);
		s->nsent = s->ntx;
	}
	arm(s, d->cfg.command_timeout_ms);
	if (r || flush_out(s)) {
		sess_fail(s, CORE_V_TEMPFAIL, 0, "write failed");
		return;
	}
}

/* Put the addresses refused as "too many" back at the head of the queue, in
 * their original order. */
static void requeue_retries(struct sess *s)
{
	struct callout_dom *d = s->dom;
	if (!s->retry_head)
		return;
	unsigned n = 0;
	for (struct callout_pend *p = s->retry_head; p; p = p->qnext) {
		p->state = P_QUEUED;
		n++;
	}
	s->retry_tail->qnext = d->qhead;
	d->qhead = s->retry_head;
	if (!d->qtail)
		d->qtail = s->retry_tail;
	d->nqueued += n;
	co.nqueued += n;
	s->retry_head = s->retry_tail = NULL;
	kick_add(d);
}

static void tx_done(struct sess *s)
{
	struct callout_dom *d = s->dom;
	/* a transaction that took the whole learned limit without a "too many"
	 * doubles it, until the configured batch is back */
	if (!s->verify && d->rcpt_limit && !s->tx_retried && s->tx_asked >= d->rcpt_limit) {
		d->rcpt_limit *= 2;
		if (d->rcpt_limit >= d->cfg.batch)
			d->rcpt_limit = 0;
	}
	requeue_retries(s);
	s->ntx = s->next_reply = 0;
	if (!s->verify && d->nqueued && !callout_failing_open(d, daemon_now_ms()) &&
	    s->rcpts_total < d->cfg.session_max_rcpts) {
		s->state = S_RSET;
		cmd(s, "RSET", "", "");
	} else {
		s->state = S_QUIT;
		cmd(s, "QUIT", "", "");
	}
	arm(s, d->cfg.command_timeout_ms);
	if (flush_out(s))
		sess_close(s, true);
}

/* ---- replies */

static int result_of(enum classify_result c)
{
	switch (c) {
	case CL_OK:
		return CORE_V_VALID;
	case CL_INVALID:
		return CORE_V_INVALID;
	case CL_UNVERIFIABLE:
		return CORE_V_UNVERIFIABLE;
	default:
		return CORE_V_TEMPFAIL;
	}
}

static void probe_result(struct sess *s, struct callout_pend *p, int verdict)
{
	struct callout_dom *d = s->dom;
	d->aa_inflight = false;
	if (verdict == CORE_V_TEMPFAIL)
		return;
	bool was = d->accept_all, known = d->aa_known;
	d->accept_all = verdict == CORE_V_VALID;
	d->aa_known = true;
	d->aa_checked_ms = daemon_now_ms();
	d->aa_checked_s = daemon_wall_s();
	if (was != d->accept_all || !known) {
		if (d->accept_all || was)
			log_msg(LOG_NOTICE, "callout: %s: destination %s any local part (probe %s)",
				d->cfg.name, d->accept_all ? "accepts" : "no longer accepts", p->addr);
		notify(d);
	}
}

static void on_rcpt_reply(struct sess *s, const char *enh)
{
	struct callout_dom *d = s->dom;
	unsigned i = s->next_reply++;
	struct callout_pend *p = s->tx[i];
	s->tx[i] = NULL;
	enum classify_result c = classify_reply(CL_RCPT, s->rcode, enh, s->rtext, s->rtext_len,
					       (const char(*)[12])d->cfg.invalid_codes,
					       d->cfg.ninvalid_codes);
	if (c == CL_RETRY && !(p->flags & (CALLOUT_F_PROBE | CALLOUT_F_VERIFY)) &&
	    p->retries >= CALLOUT_RETRY_MAX) {
		/* refused as "too many" even in new transactions: a destination
		 * that says so of one address must not hold the queue forever */
		ST(RETRY_LIMIT);
		s->tx_retried++;
		finish(p, CORE_V_TEMPFAIL, s->rcode, enh, s->rfirst, s->dest, s);
	} else if (c == CL_RETRY && !(p->flags & (CALLOUT_F_PROBE | CALLOUT_F_VERIFY))) {
		ST(RETRY_452);
		p->retries++;
		s->tx_retried++;
		unsigned accepted = i;
		if (accepted == 0)
			accepted = 1;
		if (!d->rcpt_limit || accepted < d->rcpt_limit)
			d->rcpt_limit = accepted;
		co.ninflight--;
		p->qnext = NULL;
		if (s->retry_tail)
			s->retry_tail->qnext = p;
		else
			s->retry_head = p;
		s->retry_tail = p;
	} else {
		int v = result_of(c);
		if ((p->flags & CALLOUT_F_PROBE) && s->tgt.backup)
			d->aa_inflight = false; /* a backup MX accepts anything: no news */
		else if (p->flags & CALLOUT_F_PROBE)
			probe_result(s, p, v);
		finish(p, v, s->rcode, enh, s->rfirst, s->dest, s);
	}
	if (s->rcode == 421) {
		sess_fail(s, CORE_V_TEMPFAIL, 421, s->rfirst);
		return;
	}
	if (!s->pipelining && s->next_reply < s->ntx) {
		send_rcpt(s, s->next_reply);
		s->nsent++;
		arm(s, d->cfg.command_timeout_ms);
		if (flush_out(s))
			sess_fail(s, CORE_V_TEMPFAIL, 0, "write failed");
		return;
	}
	if (s->next_reply >= s->ntx)
		tx_done(s);
	else
		arm(s, d->cfg.command_timeout_ms);
}

/* An EHLO keyword line: kw, then the end or a space (case-insensitive). */
static bool has_keyword(const char *t, size_t n, const char *kw)
{
	size_t m = strlen(kw);
	if (n < m)
		return false;
	for (size_t i = 0; i < m; i++) {
		char c = t[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 32);
		if (c != kw[i])
			return false;
	}
	return n == m || t[m] == ' ';
}

/* The destination did not greet (4xx/5xx banner, timeout, closed): the
 * session moves on to the next destination of the round (Postfix's
 * smtp_skip_5xx_greeting, Exim's next host).  Only when every destination
 * failed is the round over: unverifiable if one of them refused us with a
 * 5xx, else temporary (a breaker failure). */
/* ---- STARTTLS */

/* After a good EHLO in plain text: send STARTTLS when offered and wanted
 * (returns true: the session goes on from its reply), refuse to go on
 * without it when required (true: the session ended), or false: go on in
 * plain text. */
static bool tls_begin(struct sess *s, bool offered)
{
	struct callout_dom *d = s->dom;
	uint64_t now = daemon_now_ms();
	if (d->cfg.tls == CONFIG_TLS_OFF)
		return false;
	if (offered && co.ssl_ctx &&
	    (d->cfg.tls == CONFIG_TLS_REQUIRED || now >= d->tls_skip_until_ms)) {
		s->state = S_STARTTLS;
		cmd(s, "STARTTLS", "", "");
		arm(s, d->cfg.command_timeout_ms);
		if (flush_out(s))
			sess_fail(s, CORE_V_TEMPFAIL, 0, "write failed");
		return true;
	}
	if (d->cfg.tls != CONFIG_TLS_REQUIRED)
		return false;
	char why[120];
	snprintf(why, sizeof(why), "%.60s does not offer STARTTLS (tls = required)%s", s->dest,
		 co.ssl_ctx ? "" : ": no TLS context");
	snprintf(d->last_error, sizeof(d->last_error), "%s", why);
	log_kind(LOG_K_CALLOUT, LOG_WARNING, "callout: %s: %s", d->cfg.name, why);
	fail_tx(s, CORE_V_UNVERIFIABLE, 0, "", why);
	if (!s->verify)
		mark_unverifiable(d, 0, why);
	send_quit(s);
	return true;
}

static void tls_step(struct sess *s);

static void tls_start(struct sess *s)
{
	s->ssl = SSL_new(co.ssl_ctx);
	if (!s->ssl || !SSL_set_fd(s->ssl, s->fd)) {
		sess_fail(s, CORE_V_TEMPFAIL, 0, "TLS: out of memory");
		return;
	}
	/* SNI for a destination named by host name (not an address literal) */
	struct in6_addr a6;
	struct in_addr a4;
	if (inet_pton(AF_INET, s->tgt.host, &a4) != 1 && inet_pton(AF_INET6, s->tgt.host, &a6) != 1)
		SSL_set_tlsext_host_name(s->ssl, s->tgt.host);
	s->state = S_TLS;
	arm(s, s->dom->cfg.command_timeout_ms);
	tls_step(s);
}

/* Drive the handshake; when it is done, EHLO again (RFC 3207 4.2). */
static void tls_step(struct sess *s)
{
	struct callout_dom *d = s->dom;
	int r = SSL_connect(s->ssl);
	if (r == 1) {
		char line[160];
		s->tls_on = true;
		s->tls_want_write = false;
		ST(TLS);
		snprintf(line, sizeof(line), "TLS %s %s", SSL_get_version(s->ssl),
			 SSL_get_cipher_name(s->ssl));
		transcript(s, "-- ", line, strlen(line));
		s->state = S_EHLO;
		cmd(s, "EHLO ", d->cfg.helo_name[0] ? d->cfg.helo_name : co.hostname, "");
		arm(s, d->cfg.command_timeout_ms);
		if (flush_out(s))
			sess_fail(s, CORE_V_TEMPFAIL, 0, "write failed");
		return;
	}
	int e = SSL_get_error(s->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		s->tls_want_write = e == SSL_ERROR_WANT_WRITE;
		set_events(s);
		return;
	}
	char why[200], err[120] = "";
	ERR_error_string_n(ERR_get_error(), err, sizeof(err));
	ERR_clear_error();
	snprintf(why, sizeof(why), "TLS handshake with %.60s failed: %s", s->dest,
		 err[0] ? err : "connection closed");
	ST(TLS_FAILED);
	if (d->cfg.tls == CONFIG_TLS_MAY)
		d->tls_skip_until_ms = daemon_now_ms() + CALLOUT_TLS_SKIP_MS;
	log_kind(LOG_K_CALLOUT, LOG_WARNING, "callout: %s: %s%s", d->cfg.name, why,
		 d->cfg.tls == CONFIG_TLS_MAY ? ": plain text for a while" : "");
	sess_fail(s, CORE_V_TEMPFAIL, 0, why);
}

static void round_over(struct sess *s, const char *why)
{
	struct callout_dom *d = s->dom;
	if (s->greet5xx) {
		s->ehlo_ok = true; /* the hosts answer: not a breaker failure */
		fail_tx(s, CORE_V_UNVERIFIABLE, s->greet5xx, "", s->greet5xx_text);
		if (!s->verify)
			mark_unverifiable(d, s->greet5xx, s->greet5xx_text);
		sess_close(s, false);
		return;
	}
	sess_fail(s, CORE_V_TEMPFAIL, s->rcode, why);
}

static void greeting_failed(struct sess *s, const char *why)
{
	struct callout_dom *d = s->dom;
	char prev[192];
	snprintf(prev, sizeof(prev), "%s", s->dest);
	if (connect_next(s) == 0) {
		ST(GREETING_NEXT);
		log_kind(LOG_K_CALLOUT, LOG_NOTICE, "callout: %s: %s did not greet (%s): trying %s",
			 d->cfg.name, prev, why, s->dest);
		return;
	}
	round_over(s, why);
}

/* Whether a 220 greeting names this host (its first word is our EHLO
 * name): the destination is ourselves, or a box that forwards to us. */
static bool greets_as_us(const struct sess *s)
{
	const char *me = s->dom->cfg.helo_name[0] ? s->dom->cfg.helo_name : co.hostname;
	size_t n = strcspn(s->rtext, " \t"), m = strlen(me);
	return n == m && !strncasecmp(s->rtext, me, n);
}

/* A complete reply is in s->rcode/rtext. */
static void on_reply(struct sess *s)
{
	struct callout_dom *d = s->dom;
	char enh[CLASSIFY_ENH_MAX];
	classify_enhanced(s->rcode, s->rtext, s->rtext_len, enh);
	unsigned cls = s->rcode / 100;
	enum classify_result c;
	switch (s->state) {
	case S_GREETING:
		c = classify_reply(CL_GREETING, s->rcode, enh, s->rtext, s->rtext_len, NULL, 0);
		if (c == CL_OK && greets_as_us(s)) {
			ST(LOOPS);
			log_kind(LOG_K_CALLOUT, LOG_WARNING,
				 "callout: %s: %s greets as this host (%s): mail loop, not asked",
				 d->cfg.name, s->dest, s->rfirst);
			if (!s->greet5xx) {
				s->greet5xx = 554;
				snprintf(s->greet5xx_text, sizeof(s->greet5xx_text),
					 "mail loop: %.60s greets as this host", s->dest);
			}
			greeting_failed(s, "greets as this host");
			return;
		}
		if (c == CL_OK) {
			s->state = S_EHLO;
			cmd(s, "EHLO ", d->cfg.helo_name[0] ? d->cfg.helo_name : co.hostname, "");
			arm(s, d->cfg.command_timeout_ms);
			if (flush_out(s))
				sess_fail(s, CORE_V_TEMPFAIL, 0, "write failed");
			return;
		}
		if (c == CL_UNVERIFIABLE && !s->greet5xx) {
			s->greet5xx = s->rcode;
			snprintf(s->greet5xx_text, sizeof(s->greet5xx_text), "%s", s->rfirst);
		}
		greeting_failed(s, s->rfirst);
		return;
	case S_EHLO:
		if (cls == 5) {
			s->state = S_HELO;
			cmd(s, "HELO ", d->cfg.helo_name[0] ? d->cfg.helo_name : co.hostname, "");
			arm(s, d->cfg.command_timeout_ms);
			if (flush_out(s))
				sess_fail(s, CORE_V_TEMPFAIL, 0, "write failed");
			return;
		}
		/* fall through */
	case S_HELO:
		c = classify_reply(s->state == S_EHLO ? CL_EHLO : CL_HELO, s->rcode, enh, s->rtext,
				   s->rtext_len, NULL, 0);
		if (c == CL_OK) {
			s->pipelining = s->state == S_EHLO && s->saw_pipelining;
			s->smtputf8 = s->state == S_EHLO && s->saw_smtputf8;
			s->ehlo_ok = true;
			if (!s->verify)
				sess_success(s);
			if (!s->tls_on && tls_begin(s, s->state == S_EHLO && s->saw_starttls))
				return; /* STARTTLS sent, or the session ended */
			tx_start(s);
			return;
		}
		if (c == CL_UNVERIFIABLE) {
			s->ehlo_ok = true;
			fail_tx(s, CORE_V_UNVERIFIABLE, s->rcode, enh, s->rfirst);
			if (!s->verify)
				mark_unverifiable(d, s->rcode, s->rfirst);
			sess_close(s, false);
			return;
		}
		sess_fail(s, CORE_V_TEMPFAIL, s->rcode, s->rfirst);
		return;
	case S_MAIL:
		c = classify_reply(CL_MAIL, s->rcode, enh, s->rtext, s->rtext_len, NULL, 0);
		if (c == CL_OK) {
			s->state = S_RCPT;
			if (!s->pipelining) {
				send_rcpt(s, 0);
				s->nsent = 1;
				if (flush_out(s)) {
					sess_fail(s, CORE_V_TEMPFAIL, 0, "write failed");
					return;
				}
			}
			arm(s, d->cfg.command_timeout_ms);
			return;
		}
		{
			unsigned sent = s->pipelining ? s->ntx : 0;
			int v = c == CL_UNVERIFIABLE ? CORE_V_UNVERIFIABLE : CORE_V_TEMPFAIL;
			char why[256];
			snprintf(why, sizeof(why), "%s", s->rfirst);
			fail_tx(s, v, s->rcode, enh, why);
			if (v == CORE_V_UNVERIFIABLE && !s->verify)
				mark_unverifiable(d, s->rcode, why);
			if (s->rcode == 421) {
				sess_close(s, false);
				return;
			}
			if (sent) {
				s->swallow = sent;
				s->state = S_SWALLOW;
				arm(s, d->cfg.command_timeout_ms);
				return;
			}
			send_quit(s);
		}
		return;
	case S_RCPT:
		on_rcpt_reply(s, enh);
		return;
	case S_STARTTLS:
		if (cls == 2) {
			/* anything the server sent after its 220 came before TLS: a
			 * response injection (CVE-2011-0411 style), dropped */
			s->rlen = 0;
			tls_start(s);
			return;
		}
		if (d->cfg.tls == CONFIG_TLS_REQUIRED) {
			sess_fail(s, CORE_V_TEMPFAIL, s->rcode, s->rfirst);
			return;
		}
		tx_start(s); /* may: go on in plain text */
		return;
	case S_TLS:
		break;
	case S_SWALLOW:
		if (--s->swallow == 0 || s->rcode == 421) {
			if (s->rcode == 421) {
				sess_close(s, false);
				return;
			}
			send_quit(s);
		}
		return;
	case S_RSET:
		if (cls == 2) {
			tx_start(s);
			return;
		}
		sess_close(s, true);
		return;
	case S_QUIT:
		sess_close(s, true);
		return;
	case S_CONNECT:
		break;
	}
	sess_fail(s, CORE_V_TEMPFAIL, s->rcode, "unexpected reply");
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Parse complete lines in rbuf.  Returns 0, or -1 when the session ended. */
static int parse_lines(struct sess *s)
{
	size_t off = 0;
	while (off < s->rlen) {
		char *line = s->rbuf + off;
		char *nl = memchr(line, '\n', s->rlen - off);
		if (!nl) {
			if (s->rlen - off > CALLOUT_LINE_MAX) {
				ST(LINE_TOO_LONG);
				sess_fail(s, CORE_V_TEMPFAIL, 0, "reply line too long");
				return -1;
			}
			break;
		}
		size_t n = (size_t)(nl - line);
		off += n + 1;
		if (n && line[n - 1] == '\r')
			n--;
		if (n > CALLOUT_LINE_MAX) {
			ST(LINE_TOO_LONG);
			sess_fail(s, CORE_V_TEMPFAIL, 0, "reply line too long");
			return -1;
		}
		transcript(s, "S: ", line, n);
		if (n < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]) ||
		    (n > 3 && line[3] != ' ' && line[3] != '-') || line[0] < '1' || line[0] > '5') {
			ST(PROTO_ERRORS);
			sess_fail(s, CORE_V_TEMPFAIL, 0, "malformed reply");
			return -1;
		}
		uint16_t code = (uint16_t)((line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0'));
		bool more = n > 3 && line[3] == '-';
		const char *text = n > 4 ? line + 4 : "";
		size_t tlen = n > 4 ? n - 4 : 0;
		if (s->rlines == 0) {
			s->rcode = code;
			s->rtext_len = 0;
			s->saw_pipelining = false;
			s->saw_smtputf8 = false;
			s->saw_starttls = false;
			/* kept for logs, the store and rcptctl: cleaned once here */
			text_clean(s->rfirst, sizeof(s->rfirst), line, n, 0);
		} else if (code != s->rcode) {
			ST(PROTO_ERRORS);
			sess_fail(s, CORE_V_TEMPFAIL, 0, "inconsistent multi-line reply");
			return -1;
		}
		if (++s->rlines > CALLOUT_REPLY_LINES_MAX) {
			ST(PROTO_ERRORS);
			sess_fail(s, CORE_V_TEMPFAIL, 0, "reply with too many lines");
			return -1;
		}
		if (s->state == S_EHLO && s->rlines > 1) {
			if (has_keyword(text, tlen, "PIPELINING"))
				s->saw_pipelining = true;
			else if (has_keyword(text, tlen, "SMTPUTF8"))
				s->saw_smtputf8 = true;
			else if (has_keyword(text, tlen, "STARTTLS"))
				s->saw_starttls = true;
		}
		if (s->rtext_len && s->rtext_len < sizeof(s->rtext) - 1)
			s->rtext[s->rtext_len++] = ' ';
		size_t room = sizeof(s->rtext) - 1 - s->rtext_len;
		size_t c = tlen < room ? tlen : room;
		memcpy(s->rtext + s->rtext_len, text, c);
		s->rtext_len += c;
		s->rtext[s->rtext_len] = 0;
		if (more)
			continue;
		s->rlines = 0;
		/* consume the parsed bytes first: on_reply may close the session
		 * (its memory stays valid until the next tick) */
		memmove(s->rbuf, s->rbuf + off, s->rlen - off);
		s->rlen -= off;
		off = 0;
		on_reply(s);
		if (s->dead)
			return -1;
		if (s->state == S_CONNECT || s->state == S_TLS)
			return 0; /* on to the next destination, or TLS: the rest is dropped */
	}
	if (off) {
		memmove(s->rbuf, s->rbuf + off, s->rlen - off);
		s->rlen -= off;
	}
	return 0;
}

/* ---- sessions: I/O */

static void on_connected(struct sess *s)
{
	int err = 0;
	socklen_t el = sizeof(err);
	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
		ST(CONNECT_FAILED);
		s->dom->connect_failures++;
		char why[192];
		snprintf(why, sizeof(why), "connect to %s: %s", s->dest, strerror(err ? err : errno));
		if (connect_next(s) == 0)
			return;
		round_over(s, why);
		return;
	}
	s->state = S_GREETING;
	arm(s, s->dom->cfg.greeting_timeout_ms);
	set_events(s);
}

static void on_io(int fd, uint32_t events, void *arg)
{
	struct sess *s = arg;
	if (s->dead)
		return;
	if (s->state == S_CONNECT) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			on_connected(s);
		return;
	}
	if (s->state == S_TLS) {
		tls_step(s);
		return;
	}
	if (events & EPOLLOUT) {
		if (flush_out(s)) {
			sess_fail(s, CORE_V_TEMPFAIL, 0, "write failed");
			return;
		}
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		for (int rounds = 0; rounds < 16; rounds++) {
			if (s->rlen == sizeof(s->rbuf)) {
				ST(LINE_TOO_LONG);
				sess_fail(s, CORE_V_TEMPFAIL, 0, "reply line too long");
				return;
			}
			ssize_t n;
			if (s->tls_on) {
				int r = SSL_read(s->ssl, s->rbuf + s->rlen,
						 (int)(sizeof(s->rbuf) - s->rlen));
				int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, r);
				ERR_clear_error();
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return;
				if (e == SSL_ERROR_NONE) {
					n = r;
				} else if (e == SSL_ERROR_ZERO_RETURN) {
					n = 0;
				} else {
					n = -1;
					errno = e == SSL_ERROR_SYSCALL && errno ? errno : EPROTO;
					if (errno == EAGAIN)
						errno = EPROTO;
				}
			} else {
				n = recv(s->fd, s->rbuf + s->rlen, sizeof(s->rbuf) - s->rlen, 0);
			}
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				char why[128];
				snprintf(why, sizeof(why), "read: %s", strerror(errno));
				sess_fail(s, CORE_V_TEMPFAIL, 0, why);
				return;
			}
			if (n == 0) {
				if (s->state == S_QUIT)
					sess_close(s, true);
				else if (s->state == S_GREETING)
					greeting_failed(s, "connection closed before the greeting");
				else
					sess_fail(s, CORE_V_TEMPFAIL, 0, "connection closed by server");
				return;
			}
			s->rlen += (size_t)n;
			if (parse_lines(s) || s->fd != fd || s->state == S_CONNECT ||
			    s->state == S_TLS)
				return; /* ended, moved on, or TLS starts */
		}
	}
}

static int connect_next(struct sess *s)
{
	struct callout_dom *d = s->dom;
	if (s->fd >= 0) {
		daemon_del_fd(s->fd);
		close(s->fd);
		s->fd = -1;
	}
	s->rlen = 0;
	s->rlines = 0;
	s->wlen = s->woff = 0;
	if (s->ssl) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	s->tls_on = false;
next_target:
	if (d->dest.n == 0 || s->tries >= d->dest.n)
		return -EHOSTUNREACH;
	/* the best-preference hosts first, rotated; backups only after them */
	unsigned np = primaries(d);
	s->target = s->tries < np ? (d->dest_cursor + s->tries) % np : s->tries;
	s->tries++;
	s->tgt = d->dest.t[s->target];
	char ip[INET6_ADDRSTRLEN] = "?";
	if (s->tgt.sa.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&s->tgt.sa)->sin_addr, ip, sizeof(ip));
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&s->tgt.sa)->sin6_addr, ip, sizeof(ip));
	snprintf(s->dest, sizeof(s->dest), "%.60s[%s]:%u", s->tgt.host, ip, s->tgt.port);
	if (s->tgt.from_mx && own_address(&s->tgt.sa)) {
		/* the domain's MX is this box (an edge's MX is the edge): asking it
		 * would ask ourselves */
		ST(LOOPS);
		log_kind(LOG_K_CALLOUT, LOG_WARNING,
			 "callout: %s: MX host %s is an address of this host: mail loop, not asked",
			 d->cfg.name, s->dest);
		if (!s->greet5xx) {
			s->greet5xx = 554;
			snprintf(s->greet5xx_text, sizeof(s->greet5xx_text),
				 "mail loop: MX host %.60s[%s] is this host", s->tgt.host, ip);
		}
		goto next_target;
	}
	snprintf(d->dest_last, sizeof(d->dest_last), "%s", s->dest);
	int fd = socket(s->tgt.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* source_address: the one of the destination's family, if configured */
	const struct sockaddr *src = NULL;
	socklen_t srclen = 0;
	if (s->tgt.sa.ss_family == AF_INET && d->cfg.source4.sin_family) {
		src = (const struct sockaddr *)&d->cfg.source4;
		srclen = sizeof(d->cfg.source4);
	} else if (s->tgt.sa.ss_family == AF_INET6 && d->cfg.source6.sin6_family) {
		src = (const struct sockaddr *)&d->cfg.source6;
		srclen = sizeof(d->cfg.source6);
	}
	if (src && bind(fd, src, srclen)) {
		int e = errno;
		close(fd);
		ST(CONNECT_FAILED);
		d->connect_failures++;
		snprintf(d->last_error, sizeof(d->last_error), "source_address: bind: %s",
			 strerror(e));
		return connect_next(s) == 0 ? 0 : -e;
	}
	if (connect(fd, (struct sockaddr *)&s->tgt.sa, s->tgt.salen) && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		ST(CONNECT_FAILED);
		d->connect_failures++;
		return connect_next(s) == 0 ? 0 : -e;
	}
	s->fd = fd;
	s->state = S_CONNECT;
	s->want_out = true;
	if (daemon_add_fd(fd, EPOLLIN | EPOLLOUT, on_io, s)) {
		close(fd);
		s->fd = -1;
		return -ENOMEM;
	}
	arm(s, d->cfg.connect_timeout_ms);
	return 0;
}

static struct sess *sess_new(struct callout_dom *d, bool verify)
{
	struct sess *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->fd = -1;
	s->dom = d;
	s->verify = verify;
	s->cap = verify ? 1 : d->cfg.batch + 1;
	s->tx = calloc(s->cap, sizeof(*s->tx));
	if (verify) {
		s->tbuf = malloc(CALLOUT_TRANSCRIPT_MAX);
		if (s->tbuf)
			s->tbuf[0] = 0;
	}
	if (!s->tx || (verify && !s->tbuf)) {
		free(s->tx);
		free(s->tbuf);
		free(s);
		return NULL;
	}
	s->started_ms = daemon_now_ms();
	s->end_ms = s->started_ms + d->cfg.session_timeout_ms;
	s->next = co.sessions;
	if (co.sessions)
		co.sessions->prev = s;
	co.sessions = s;
	co.nsessions++;
	d->sessions_open++;
	d->sessions++;
	ST(SESSIONS);
	return s;
}

static void sess_close(struct sess *s, bool ok)
{
	struct callout_dom *d = s->dom;
	(void)ok;
	if (s->dead)
		return;
	requeue_retries(s);
	fail_tx(s, CORE_V_TEMPFAIL, 0, "", "session ended");
	if (s->ssl) {
		SSL_free(s->ssl);
		s->ssl = NULL;
		s->tls_on = false;
	}
	if (s->fd >= 0) {
		daemon_del_fd(s->fd);
		close(s->fd);
	}
	if (s->reserved) {
		d->reserved -= s->reserved < d->reserved ? s->reserved : d->reserved;
		s->reserved = 0;
	}
	if (s->trial)
		d->trial = false;
	if (s->prev)
		s->prev->next = s->next;
	else
		co.sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	co.nsessions--;
	d->sessions_open--;
	s->dead = true;
	s->fd = -1;
	s->next = co.graveyard;
	co.graveyard = s;
	if (d->nqueued)
		kick_add(d);
}

static void bury(void)
{
	while (co.graveyard) {
		struct sess *s = co.graveyard;
		co.graveyard = s->next;
		free(s->tx);
		free(s->wbuf);
		free(s->tbuf);
		free(s);
	}
}

/* ---- destinations */

static void on_dns(const struct dns_answer *a, void *arg)
{
	struct callout_dom *d = arg;
	uint64_t now = daemon_now_ms();
	d->resolving = false;
	d->dest = *a;
	if (a->err) {
		ST(DNS_FAILURES);
		d->dest_ok = false;
		d->dest_expiry_ms = now + 30000u; /* negative answers: retry in 30 s */
		snprintf(d->last_error, sizeof(d->last_error), "%.120s", a->errmsg);
		log_kind(LOG_K_CALLOUT, LOG_WARNING, "callout: %s: no destination: %s", d->cfg.name,
			 a->errmsg);
		drain_queue(d, a->null_mx ? CORE_V_UNVERIFIABLE : CORE_V_TEMPFAIL, a->errmsg);
		/* waiting verify sessions */
		for (struct sess *s = co.sessions, *nx; s; s = nx) {
			nx = s->next;
			if (s->dom == d && s->fd < 0)
				sess_fail(s, CORE_V_TEMPFAIL, 0, a->errmsg);
		}
		return;
	}
	d->dest_ok = true;
	uint32_t ttl = a->ttl;
	if (ttl < co.mx_min_ttl)
		ttl = co.mx_min_ttl;
	d->dest_expiry_ms = now + (uint64_t)ttl * 1000u;
	d->dest_cursor = 0;
	/* verify sessions waiting for the answer */
	for (struct sess *s = co.sessions, *nx; s; s = nx) {
		nx = s->next;
		if (s->dom == d && s->fd < 0 && s->verify && connect_next(s))
			sess_fail(s, CORE_V_TEMPFAIL, 0, "cannot connect");
	}
	kick_add(d);
}

static bool dest_ready(struct callout_dom *d, uint64_t now)
{
	if (d->dest_expiry_ms && now < d->dest_expiry_ms)
		return d->dest_ok;
	if (!d->resolving) {
		uint32_t tmo = co.dns_timeout_ms;
		int r = dns_resolve(d->cfg.name, d->cfg.dest, d->cfg.ndest, d->cfg.mx_port, tmo, on_dns,
				    d);
		if (r == 0)
			d->resolving = true;
		else if (r == -EAGAIN)
			ST(DNS_QUEUE_FULL);
	}
	/* an expired but good answer is used while the new one comes */
	return d->dest_ok && d->dest.n > 0;
}

static int start_verify(struct callout_dom *d, struct callout_pend *p)
{
	struct sess *s = sess_new(d, true);
	if (!s)
		return -ENOMEM;
	p->state = P_INFLIGHT;
	co.ninflight++;
	s->tx[0] = p;
	s->ntx = 1;
	if (dest_ready(d, daemon_now_ms())) {
		if (connect_next(s)) {
			s->tx[0] = NULL;
			s->ntx = 0;
			co.ninflight--;
			sess_close(s, false);
			return -EHOSTUNREACH;
		}
	} else {
		/* waits for the DNS answer (on_dns connects it); timeout applies */
		s->deadline_ms = daemon_now_ms() + d->cfg.connect_timeout_ms +
				 co.dns_timeout_ms;
	}
	return 0;
}

/* ---- scheduling */

static void schedule(struct callout_dom *d, uint64_t now)
{
	if (!d->nqueued)
		return;
	if (!d->configured) {
		drain_queue(d, CORE_V_TEMPFAIL, "domain removed from the configuration");
		return;
	}
	if (d->unverifiable_until_ms && now < d->unverifiable_until_ms) {
		drain_queue(d, CORE_V_UNVERIFIABLE, "destination refuses callouts");
		return;
	}
	bool half_open = false;
	if (d->breaker_until_ms) {
		if (now < d->breaker_until_ms) {
			drain_queue(d, CORE_V_TEMPFAIL, "destination down (circuit breaker open)");
			return;
		}
		half_open = true;
	}
	if (!dest_ready(d, now)) {
		/* a recent lookup failed: answer now rather than let them wait */
		if (!d->resolving && d->dest_expiry_ms && now < d->dest_expiry_ms)
			drain_queue(d, CORE_V_TEMPFAIL, d->last_error[0] ? d->last_error :
									   "no destination");
		return;
	}
	refill(d, now);
	if (co.nsessions >= CALLOUT_MAX_SESSIONS && d->nqueued > d->reserved && !d->sessions_open)
		ST(SESSIONS_LIMIT);
	while (d->nqueued > d->reserved && d->sessions_open < d->cfg.dest_max_conns &&
	       co.nsessions < CALLOUT_MAX_SESSIONS && d->conn_tokens >= 1.0 && d->rcpt_tokens >= 1.0) {
		if (half_open && (d->trial || d->sessions_open))
			break;
		struct sess *s = sess_new(d, false);
		if (!s)
			break;
		d->conn_tokens -= 1.0;
		uint32_t want = d->nqueued - d->reserved;
		s->reserved = want < d->cfg.batch ? want : d->cfg.batch;
		d->reserved += s->reserved;
		if (half_open) {
			s->trial = true;
			d->trial = true;
		}
		d->dest_cursor = (d->dest_cursor + (d->failures ? 1 : 0)) % primaries(d);
		if (connect_next(s)) {
			char why[160];
			snprintf(why, sizeof(why), "cannot connect to any destination of %.100s", d->cfg.name);
			round_over(s, why);
			break;
		}
	}
}

static void timeouts(uint64_t now)
{
	for (struct sess *s = co.sessions, *nx; s; s = nx) {
		nx = s->next;
		if (now < s->deadline_ms && now < s->end_ms)
			continue;
		ST(TIMEOUTS);
		char why[160];
		const char *what = s->state == S_CONNECT ? "connect" :
				   s->state == S_GREETING ? "greeting" : "reply";
		snprintf(why, sizeof(why), "timeout waiting for %s from %.120s", what,
			 s->dest[0] ? s->dest : s->dom->cfg.name);
		if (s->state == S_CONNECT && s->fd >= 0) {
			ST(CONNECT_FAILED);
			s->dom->connect_failures++;
			if (now < s->end_ms && connect_next(s) == 0)
				continue;
		}
		if (s->state == S_GREETING && now < s->end_ms) {
			greeting_failed(s, why);
			continue;
		}
		if (s->state == S_QUIT) {
			sess_close(s, true);
			continue;
		}
		sess_fail(s, CORE_V_TEMPFAIL, 0, why);
	}
}

static void sweep_holds(uint64_t now)
{
	while (co.hold_head && (co.hold_head->hold_until_ms <= now || co.hold_head->state != P_HOLD)) {
		struct callout_pend *p = co.hold_head;
		co.hold_head = p->qnext;
		if (!co.hold_head)
			co.hold_tail = NULL;
		if (p->state == P_HOLD) {
			hash_del(p);
			pend_free(p);
		} else if (p->state == 0) {
			pend_free(p); /* an expired hold already unhashed by submit */
		}
	}
}

void callout_tick(uint64_t now)
{
	if (!co.inited)
		return;
	bury();
	struct callout_dom *list = co.kick;
	co.kick = NULL;
	while (list) {
		struct callout_dom *d = list;
		list = d->kick_next;
		d->in_kick = false;
		schedule(d, now);
		/* still work and room: look again next turn (rate tokens refill) */
		if (d->nqueued > d->reserved && d->sessions_open < d->cfg.dest_max_conns &&
		    d->configured && !callout_failing_open(d, now) && d->dest_ok)
			kick_add(d);
	}
	if (now - co.last_sweep_ms >= 20) {
		co.last_sweep_ms = now;
		timeouts(now);
		sweep_holds(now);
		/* an accept-all domain sends no misses, so no session would ever
		 * notice its catch-all going away: re-probe it on schedule */
		for (struct callout_dom *d = co.doms; d; d = d->next) {
			if (!d->configured || !d->accept_all || d->sessions_open || d->nqueued ||
			    !probe_due(d, now) || callout_failing_open(d, now) || !dest_ready(d, now))
				continue;
			struct sess *s = sess_new(d, false);
			if (!s)
				break;
			s->probe_only = true;
			if (connect_next(s))
				sess_fail(s, CORE_V_TEMPFAIL, 0, "cannot connect for the accept-all probe");
		}
		/* breaker or unverifiable hold ending: republish the domain */
		for (struct callout_dom *d = co.doms; d; d = d->next) {
			if (d->breaker_until_ms && now >= d->breaker_until_ms && d->health == CORE_H_DOWN) {
				d->health = CORE_H_DEGRADED; /* half-open: next miss tries */
				notify(d);
			}
			if (d->unverifiable_until_ms && now >= d->unverifiable_until_ms) {
				d->unverifiable_until_ms = 0;
				d->unverifiable_until_s = 0;
				d->health = CORE_H_UNKNOWN;
				notify(d);
			}
		}
	}
}

/* ---- set-up */

int callout_init(const struct callout_hooks *h)
{
	if (co.inited)
		return 0;
	co.hooks = *h;
	co.tab_size = HASH_INIT;
	co.tab = calloc(co.tab_size, sizeof(*co.tab));
	if (!co.tab)
		return -ENOMEM;
	if (khash_new_key(co.hkey))
		memset(co.hkey, 0x5a, sizeof(co.hkey));
	if (gethostname(co.hostname, sizeof(co.hostname) - 1) || !co.hostname[0])
		snprintf(co.hostname, sizeof(co.hostname), "localhost");
	co.queue_max = 200000;
	co.dns_timeout_ms = 5000;
	/* a TLS write to a closed connection must not kill the process */
	signal(SIGPIPE, SIG_IGN);
	co.ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (co.ssl_ctx) {
		/* encryption only (Postfix's "may"/"encrypt"): no CA store decides
		 * whether an internal server may be asked */
		SSL_CTX_set_verify(co.ssl_ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_mode(co.ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
						     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	} else {
		log_msg(LOG_ERR, "callout: no TLS context: STARTTLS unavailable");
	}
	co.inited = true;
	return 0;
}

int callout_configure(const struct config *cfg)
{
	co.queue_max = cfg->queue_max;
	co.dns_timeout_ms = cfg->dns_timeout_ms;
	co.mx_min_ttl = cfg->mx_min_ttl;
	read_own_addresses();
	for (struct callout_dom *d = co.doms; d; d = d->next)
		d->configured = false;
	for (unsigned i = 0; i < cfg->ndom; i++) {
		const struct config_dom *c = &cfg->dom[i];
		struct callout_dom *d = find_any(c->name);
		if (!d) {
			d = calloc(1, sizeof(*d));
			if (!d)
				return -ENOMEM;
			d->next = co.doms;
			co.doms = d;
		} else {
			bool dest_changed = d->cfg.ndest != c->ndest ||
					    memcmp(d->cfg.dest, c->dest, sizeof(c->dest)) ||
					    d->cfg.mx_port != c->mx_port;
			if (dest_changed) {
				d->dest_expiry_ms = 0; /* re-resolve */
				d->dest_ok = false;
				d->failures = 0;
				d->breaker_until_ms = 0;
				d->breaker_until_s = 0;
				d->unverifiable_until_ms = 0;
				d->unverifiable_until_s = 0;
				d->health = CORE_H_UNKNOWN;
			}
			if (c->batch != d->cfg.batch)
				d->rcpt_limit = 0;
		}
		d->cfg = *c;
		d->configured = true;
		if (d->nqueued)
			kick_add(d);
	}
	for (struct callout_dom *d = co.doms; d; d = d->next)
		if (!d->configured && d->nqueued)
			kick_add(d);
	return 0;
}

void callout_shutdown(void)
{
	while (co.sessions)
		sess_fail(co.sessions, CORE_V_TEMPFAIL, 0, "shutting down");
	for (struct callout_dom *d = co.doms; d; d = d->next)
		drain_queue(d, CORE_V_TEMPFAIL, "shutting down");
	sweep_holds(UINT64_MAX);
	bury();
	while (co.doms) {
		struct callout_dom *d = co.doms;
		co.doms = d->next;
		free(d);
	}
	free(co.tab);
	if (co.ssl_ctx)
		SSL_CTX_free(co.ssl_ctx);
	memset(&co, 0, sizeof(co));
}
