/*
 * callout.c — the callout engine's scheduling (see callout.h): the
 * pending-address hash, domain queues and holds, per-destination rate
 * limits and concurrency, the circuit breaker, accept-all probes, batching
 * addresses into transactions and their verdicts.  The SMTP client session
 * itself is csession.c (callout_int.h says what the two share).
 * Thread: main thread only.
 */
#include "callout.h"
#include "callout_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "classify.h"
#include "core.h"
#include "dtable.h"
#include "khash.h"
#include "log.h"
#include "smtpreply.h"
#include "text.h"

#define HASH_INIT 1024u

struct callout_co callout_co;
static struct callout_co *const co = &callout_co;

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
	return s < CALLOUT_ST__COUNT ? co->st[s] : 0;
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
	return co->nqueued;
}
uint32_t callout_ninflight(void)
{
	return co->ninflight;
}
uint32_t callout_nsessions(void)
{
	return co->nsessions;
}
uint32_t callout_ngated(void)
{
	return co->ngated;
}

/* ---- the pending-address hash (keyed SipHash: addresses come from the net) */

static uint64_t addr_hash(const char *a, size_t n)
{
	return khash64(co->hkey, a, n);
}

static struct callout_pend *hash_find(const char *a, size_t n, uint64_t h)
{
	for (struct callout_pend *p = co->tab[h & (co->tab_size - 1)]; p; p = p->hnext)
		if (p->hash == h && p->len == n && !memcmp(p->addr, a, n))
			return p;
	return NULL;
}

static void hash_grow(void)
{
	size_t nsize = co->tab_size * 2;
	struct callout_pend **nt = calloc(nsize, sizeof(*nt));
	if (!nt)
		return; /* keep the longer chains */
	for (size_t i = 0; i < co->tab_size; i++) {
		struct callout_pend *p = co->tab[i];
		while (p) {
			struct callout_pend *nx = p->hnext;
			p->hnext = nt[p->hash & (nsize - 1)];
			nt[p->hash & (nsize - 1)] = p;
			p = nx;
		}
	}
	free(co->tab);
	co->tab = nt;
	co->tab_size = nsize;
}

static void hash_add(struct callout_pend *p)
{
	if (co->tab_count >= co->tab_size)
		hash_grow();
	struct callout_pend **b = &co->tab[p->hash & (co->tab_size - 1)];
	p->hnext = *b;
	*b = p;
	p->hashed = true;
	co->tab_count++;
}

static void hash_del(struct callout_pend *p)
{
	if (!p->hashed)
		return;
	struct callout_pend **b = &co->tab[p->hash & (co->tab_size - 1)];
	while (*b && *b != p)
		b = &(*b)->hnext;
	if (*b)
		*b = p->hnext;
	p->hashed = false;
	co->tab_count--;
}

/* ---- domains */

struct callout_dom *callout_domain(const char *name)
{
	for (struct callout_dom *d = co->doms; d; d = d->next)
		if (d->configured && !strcmp(d->cfg.name, name))
			return d;
	return NULL;
}

static struct callout_dom *find_any(const char *name)
{
	for (struct callout_dom *d = co->doms; d; d = d->next)
		if (!strcmp(d->cfg.name, name))
			return d;
	return NULL;
}

static void kick_add(struct callout_dom *d)
{
	if (d->in_kick)
		return;
	d->in_kick = true;
	d->kick_next = co->kick;
	co->kick = d;
}

static void notify(struct callout_dom *d)
{
	if (co->hooks.domain_changed)
		co->hooks.domain_changed(d, co->hooks.arg);
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
	if (co->hold_tail)
		co->hold_tail->qnext = p;
	else
		co->hold_head = p;
	co->hold_tail = p;
}

static void finish(struct callout_pend *p, int verdict, uint16_t code, const char *enh,
		   const char *reply, const char *dest, const struct sess *s)
{
	struct callout_dom *d = p->dom;
	uint64_t now = daemon_now_ms();
	if (verdict == CORE_V_VALID && d->accept_all && !(p->flags & CALLOUT_F_PROBE))
		verdict = CORE_V_ACCEPT_ALL;
	if (!(p->flags & (CALLOUT_F_PROBE | CALLOUT_F_FLEET))) {
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
		co->ninflight--;
	bool hold = p->hashed && (verdict == CORE_V_TEMPFAIL || verdict == CORE_V_UNVERIFIABLE) &&
		    d->cfg.ttl_tempfail > 0;
	if (hold)
		hold_add(p, now + (uint64_t)d->cfg.ttl_tempfail * 1000u);
	else
		hash_del(p);
	if (co->hooks.result)
		co->hooks.result(&r, co->hooks.arg);
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
		co->nqueued--;
		p->state = P_INFLIGHT;
		co->ninflight++;
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
	co->nqueued++;
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
	if (co->nqueued + co->ngated >= co->queue_max || d->nqueued >= d->cfg.queue_max) {
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
	if (co->hooks.gate && co->hooks.gate(p->addr, len, co->hooks.arg)) {
		p->state = P_GATE;
		co->ngated++;
		return 0;
	}
	enqueue(d, p, false);
	return 0;
}

static struct callout_pend *gated(const char *addr, size_t len)
{
	if (!co->tab || len == 0 || len > RG_ADDR_MAX)
		return NULL;
	struct callout_pend *p = hash_find(addr, len, addr_hash(addr, len));
	return p && p->state == P_GATE ? p : NULL;
}

int callout_gate_open(const char *addr, size_t len)
{
	struct callout_pend *p = gated(addr, len);
	if (!p)
		return -ENOENT;
	co->ngated--;
	enqueue(p->dom, p, false);
	return 0;
}

int callout_gate_answer(const char *addr, size_t len, int verdict)
{
	struct callout_pend *p = gated(addr, len);
	if (!p)
		return -ENOENT;
	co->ngated--;
	p->state = P_INFLIGHT;
	co->ninflight++;
	p->flags |= CALLOUT_F_FLEET;
	finish(p, verdict, 0, "", "answered by the fleet", "", NULL);
	return 0;
}

bool callout_pending(const char *addr, size_t len)
{
	if (!co->tab)
		return false;
	struct callout_pend *p = hash_find(addr, len, addr_hash(addr, len));
	return p && p->state != P_HOLD;
}

/* ---- sessions: failure paths */

void fail_tx(struct sess *s, int verdict, uint16_t code, const char *enh, const char *why)
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

void mark_unverifiable(struct callout_dom *d, uint16_t code, const char *reply)
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

void sess_success(struct sess *s)
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


static void read_own_addresses(void)
{
	struct ifaddrs *ifa = NULL;
	co->nown = 0;
	if (getifaddrs(&ifa))
		return;
	for (struct ifaddrs *i = ifa; i && co->nown < CALLOUT_OWN_MAX; i = i->ifa_next) {
		if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK) ||
		    (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
			continue;
		memset(&co->own[co->nown], 0, sizeof(co->own[0]));
		memcpy(&co->own[co->nown++], i->ifa_addr,
		       i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
							 : sizeof(struct sockaddr_in6));
	}
	freeifaddrs(ifa);
}

/* The session ended without finishing its work. */
void sess_fail(struct sess *s, int verdict, uint16_t code, const char *why)
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
		co->nqueued--;
		d->reserved -= d->reserved ? 1 : 0;
		s->reserved--;
		p->state = P_INFLIGHT;
		co->ninflight++;
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

static void refill(struct callout_dom *d, uint64_t now, uint32_t *max_conns)
{
	*max_conns = d->cfg.dest_max_conns;
	if (co->hooks.budget &&
	    co->hooks.budget(d, &d->conn_tokens, &d->rcpt_tokens, max_conns, co->hooks.arg)) {
		d->tokens_ms = now; /* back to local refill: from now, no burst */
		return;
	}
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

/* Take a batch from the queue and send MAIL (+ RCPTs when pipelining). */
void tx_start(struct sess *s)
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
		uint32_t max_conns;
		refill(d, now, &max_conns);
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
				co->ninflight++;
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
			co->nqueued--;
			p->state = P_INFLIGHT;
			co->ninflight++;
			s->tx[s->ntx++] = p;
		}
		d->rcpt_tokens -= s->ntx;
		if (s->ntx == 1 && (s->tx[0]->flags & CALLOUT_F_PROBE) && !s->probe_only) {
			/* nothing else to check after all: the probe waits */
			struct callout_pend *p = s->tx[0];
			d->aa_inflight = false;
			co->ninflight--;
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
	s->tx_utf8 = utf8;
	enter_state(s, S_MAIL);
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
	co->nqueued += n;
	s->retry_head = s->retry_tail = NULL;
	kick_add(d);
}

void tx_done(struct sess *s)
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
	    s->rcpts_total < d->cfg.session_max_rcpts)
		enter_state(s, S_RSET);
	else
		enter_state(s, S_QUIT);
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

void on_rcpt_reply(struct sess *s, const char *enh)
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
		co->ninflight--;
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
	if (s->next_reply >= s->ntx)
		tx_done(s);
	else
		enter_state(s, S_RCPT); /* the next RCPT, or the next pipelined reply */
}

/* ---- sessions: life cycle */

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
	s->next = co->sessions;
	if (co->sessions)
		co->sessions->prev = s;
	co->sessions = s;
	co->nsessions++;
	d->sessions_open++;
	d->sessions++;
	ST(SESSIONS);
	return s;
}

void sess_close(struct sess *s, bool ok)
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
		co->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	co->nsessions--;
	d->sessions_open--;
	if (co->hooks.budget) {
		/* a shared budget hears of the end (the session's slot may go back) */
		uint32_t max_conns;
		refill(d, daemon_now_ms(), &max_conns);
	}
	s->dead = true;
	s->fd = -1;
	s->next = co->graveyard;
	co->graveyard = s;
	if (d->nqueued)
		kick_add(d);
}

static void bury(void)
{
	while (co->graveyard) {
		struct sess *s = co->graveyard;
		co->graveyard = s->next;
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
		for (struct sess *s = co->sessions, *nx; s; s = nx) {
			nx = s->next;
			if (s->dom == d && s->fd < 0)
				sess_fail(s, CORE_V_TEMPFAIL, 0, a->errmsg);
		}
		return;
	}
	d->dest_ok = true;
	uint32_t ttl = a->ttl;
	if (ttl < co->mx_min_ttl)
		ttl = co->mx_min_ttl;
	d->dest_expiry_ms = now + (uint64_t)ttl * 1000u;
	d->dest_cursor = 0;
	/* verify sessions waiting for the answer */
	for (struct sess *s = co->sessions, *nx; s; s = nx) {
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
		uint32_t tmo = co->dns_timeout_ms;
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
	co->ninflight++;
	s->tx[0] = p;
	s->ntx = 1;
	if (dest_ready(d, daemon_now_ms())) {
		if (connect_next(s)) {
			s->tx[0] = NULL;
			s->ntx = 0;
			co->ninflight--;
			sess_close(s, false);
			return -EHOSTUNREACH;
		}
	} else {
		/* waits for the DNS answer (on_dns connects it); timeout applies */
		s->deadline_ms = daemon_now_ms() + d->cfg.connect_timeout_ms +
				 co->dns_timeout_ms;
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
	uint32_t max_conns;
	refill(d, now, &max_conns);
	if (co->nsessions >= CALLOUT_MAX_SESSIONS && d->nqueued > d->reserved && !d->sessions_open)
		ST(SESSIONS_LIMIT);
	while (d->nqueued > d->reserved && d->sessions_open < max_conns &&
	       co->nsessions < CALLOUT_MAX_SESSIONS && d->conn_tokens >= 1.0 && d->rcpt_tokens >= 1.0) {
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
	for (struct sess *s = co->sessions, *nx; s; s = nx) {
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
	while (co->hold_head && (co->hold_head->hold_until_ms <= now || co->hold_head->state != P_HOLD)) {
		struct callout_pend *p = co->hold_head;
		co->hold_head = p->qnext;
		if (!co->hold_head)
			co->hold_tail = NULL;
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
	if (!co->inited)
		return;
	bury();
	struct callout_dom *list = co->kick;
	co->kick = NULL;
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
	if (now - co->last_sweep_ms >= 20) {
		co->last_sweep_ms = now;
		timeouts(now);
		sweep_holds(now);
		/* an accept-all domain sends no misses, so no session would ever
		 * notice its catch-all going away: re-probe it on schedule */
		for (struct callout_dom *d = co->doms; d; d = d->next) {
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
		for (struct callout_dom *d = co->doms; d; d = d->next) {
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
	if (co->inited)
		return 0;
	co->hooks = *h;
	co->tab_size = HASH_INIT;
	co->tab = calloc(co->tab_size, sizeof(*co->tab));
	if (!co->tab)
		return -ENOMEM;
	if (khash_new_key(co->hkey))
		memset(co->hkey, 0x5a, sizeof(co->hkey));
	if (gethostname(co->hostname, sizeof(co->hostname) - 1) || !co->hostname[0])
		snprintf(co->hostname, sizeof(co->hostname), "localhost");
	co->queue_max = 200000;
	co->dns_timeout_ms = 5000;
	/* a TLS write to a closed connection must not kill the process */
	signal(SIGPIPE, SIG_IGN);
	co->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (co->ssl_ctx) {
		/* encryption only (Postfix's "may"/"encrypt"): no CA store decides
		 * whether an internal server may be asked */
		SSL_CTX_set_verify(co->ssl_ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_mode(co->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
						     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	} else {
		log_msg(LOG_ERR, "callout: no TLS context: STARTTLS unavailable");
	}
	co->inited = true;
	return 0;
}

int callout_configure(const struct config *cfg)
{
	co->queue_max = cfg->queue_max;
	co->dns_timeout_ms = cfg->dns_timeout_ms;
	co->mx_min_ttl = cfg->mx_min_ttl;
	read_own_addresses();
	for (struct callout_dom *d = co->doms; d; d = d->next)
		d->configured = false;
	for (unsigned i = 0; i < cfg->ndom; i++) {
		const struct config_dom *c = &cfg->dom[i];
		struct callout_dom *d = find_any(c->name);
		if (!d) {
			d = calloc(1, sizeof(*d));
			if (!d)
				return -ENOMEM;
			d->next = co->doms;
			co->doms = d;
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
	for (struct callout_dom *d = co->doms; d; d = d->next)
		if (!d->configured && d->nqueued)
			kick_add(d);
	return 0;
}

void callout_shutdown(void)
{
	while (co->sessions)
		sess_fail(co->sessions, CORE_V_TEMPFAIL, 0, "shutting down");
	for (struct callout_dom *d = co->doms; d; d = d->next)
		drain_queue(d, CORE_V_TEMPFAIL, "shutting down");
	for (size_t i = 0; co->ngated && i < co->tab_size; i++)
		for (struct callout_pend *p = co->tab[i], *nx; p; p = nx) {
			nx = p->hnext;
			if (p->state == P_GATE) {
				co->ngated--;
				p->state = P_INFLIGHT;
				co->ninflight++;
				finish(p, CORE_V_TEMPFAIL, 0, "", "shutting down", "", NULL);
			}
		}
	sweep_holds(UINT64_MAX);
	bury();
	while (co->doms) {
		struct callout_dom *d = co->doms;
		co->doms = d->next;
		free(d);
	}
	free(co->tab);
	if (co->ssl_ctx)
		SSL_CTX_free(co->ssl_ctx);
	memset(co, 0, sizeof(*co));
}
