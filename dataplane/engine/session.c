/*
 * session.c — the SMTP side of a tracked flow (see session.h): byte-driven
 * state machines over the client's commands and the server's replies, the
 * verb dispatch table's actions, the RCPT decision (addr.h normalise ->
 * dtable.h domain -> khash.h key -> rtable.h verdict; misses to the miss
 * ring, answers to the event ring) and the RFC 2920 reply queue.
 * No allocation, no str* on packet bytes (memchr/memmem only).
 * Runs on the engine's lcore.
 */
#include <errno.h>
#include <string.h>

#include "addr.h"
#include "dtable.h"
#include "khash.h"
#include "msg.h"
#include "rtable.h"
#include "session.h"
#include "smtp.h"
#include "spsc.h"

#define REPLY_550_A "550 5.1.1 <"
#define REPLY_550_B ">: Recipient address rejected: User unknown\r\n"
#define REPLY_450U_A "450 4.1.1 <"	/* DT_F_REJECT_450, then REPLY_550_B */
#define REPLY_450_A "450 4.7.1 <"
#define REPLY_450_B ">: Recipient address rejected: verification in progress\r\n"
#define REPLY_421 "421 4.7.0 Too many invalid recipients\r\n"
#define REPLY_554 "554 5.5.1 Error: no valid recipients\r\n"


/* ---- the reply queue (RFC 2920 order) ---- */

unsigned session_q_len(const struct engine *e, const struct flow *f)
{
	return f->busy != FLOW_NONE ? flow_busy(&e->ft, f)->q_n : f->q_n;
}

struct flow_qent session_q_head(const struct engine *e, const struct flow *f)
{
	struct flow_qent q = {Q_FWD, 0, 0};
	if (f->busy != FLOW_NONE) {
		const struct flow_busy *b = flow_busy(&e->ft, f);
		if (b->q_n)
			q = flow_q(&e->ft, f)[b->q_head];
	} else if (f->q_n) {
		q.kind = f->q_inl[f->q_head];
	}
	return q;
}

static void session_q_pop(struct engine *e, struct flow *f)
{
	if (f->busy != FLOW_NONE) {
		struct flow_busy *b = flow_busy(&e->ft, f);
		if (b->q_n) {
			b->q_head = (uint16_t)((b->q_head + 1u) % e->c.cmd_max);
			b->q_n--;
		}
	} else if (f->q_n) {
		f->q_head = (uint8_t)((f->q_head + 1u) % FLOW_INLINE_Q);
		f->q_n--;
	}
}

int session_q_push(struct engine *e, struct flow *f, uint8_t kind, uint16_t len)
{
	if (f->busy == FLOW_NONE) {
		if (f->q_n < FLOW_INLINE_Q && kind < Q_INJ) {
			f->q_inl[(f->q_head + f->q_n) % FLOW_INLINE_Q] = kind;
			f->q_n++;
			return 0;
		}
		if (flow_busy_get(&e->ft, f) != 0)
			return -ENOSPC;
	}
	struct flow_busy *b = flow_busy(&e->ft, f);
	if (b->q_n >= e->c.cmd_max)
		return -ENOSPC;
	struct flow_qent *q = &flow_q(&e->ft, f)[(b->q_head + b->q_n) % e->c.cmd_max];
	q->kind = kind;
	q->_pad0 = 0;
	q->len = len;
	b->q_n++;
	return 0;
}

/* ---- injected reply text (a ring in the busy block) ---- */

static void text_append(struct engine *e, struct flow *f, const uint8_t *t, uint32_t n)
{
	struct flow_busy *b = flow_busy(&e->ft, f);
	uint8_t *ring = flow_text(&e->ft, f);
	uint32_t cap = e->ft.text_max, at = (b->t_head + b->t_len) % cap;
	uint32_t first = n < cap - at ? n : cap - at;
	memcpy(ring + at, t, first);
	memcpy(ring, t + first, n - first);
	b->t_len += n;
	b->t_pend += n;
}

/* Copy n bytes at offset off of the live text into dst. */
void session_text_copy(const struct engine *e, const struct flow *f, uint32_t off, uint32_t n,
		      uint8_t *dst)
{
	const struct flow_busy *b = flow_busy(&e->ft, f);
	const uint8_t *ring = flow_text(&e->ft, f);
	uint32_t cap = e->ft.text_max, at = (b->t_head + off) % cap;
	uint32_t first = n < cap - at ? n : cap - at;
	memcpy(dst, ring + at, first);
	memcpy(dst + first, ring, n - first);
}

void session_text_free(struct engine *e, struct flow *f, uint32_t n)
{
	struct flow_busy *b;
	if (!n)
		return;
	b = flow_busy(&e->ft, f);
	b->t_head = (b->t_head + n) % e->ft.text_max;
	b->t_len -= n;
}

/* ---- events and misses ---- */

static void fill_event(struct engine *e, const struct flow *f, struct msg_event *ev,
		       uint16_t type, uint16_t code)
{
	memset(ev, 0, offsetof(struct msg_event, helo));
	ev->type = type;
	ev->code = code;
	ev->family = f->family;
	ev->ts_ns = (uint64_t)((int64_t)e->now_ns + e->rt_off);
	memcpy(ev->client_ip, f->c_ip, 16);
	memcpy(ev->server_ip, f->s_ip, 16);
	ev->client_port = f->c_port;
	ev->server_port = f->s_port;
	ev->helo_len = f->helo_len;
	memcpy(ev->helo, f->helo, f->helo_len);
	ev->from_len = f->from_len;
	memcpy(ev->from, f->from, f->from_len);
}

static void post_event(struct engine *e, const struct flow *f, uint16_t type, uint16_t code,
		       const char *rcpt, size_t rcpt_len, uint8_t prefix, uint32_t count)
{
	struct msg_event *ev;
	if (!e->s.event_ring) {
		st(e, STAT_EVENT_RING_FULL);
		return;
	}
	ev = spsc_reserve(e->s.event_ring);
	if (!ev) {
		st(e, STAT_EVENT_RING_FULL);
		return;
	}
	fill_event(e, f, ev, type, code);
	ev->rcpt_len = (uint16_t)rcpt_len;
	if (rcpt_len)
		memcpy(ev->rcpt, rcpt, rcpt_len);
	ev->prefix_len = prefix;
	ev->count = count;
	spsc_commit(e->s.event_ring);
	st(e, STAT_EVENT_ENQ);
}

static void post_miss(struct engine *e, const struct rg_key128 *k, const char *addr, size_t n)
{
	struct msg_miss *m;
	if (!e->s.miss_ring) {
		st(e, STAT_MISS_RING_FULL);
		return;
	}
	m = spsc_reserve(e->s.miss_ring);
	if (!m) {
		st(e, STAT_MISS_RING_FULL);
		return;
	}
	m->key_hi = k->hi;
	m->key_lo = k->lo;
	m->ts_ns = (uint64_t)((int64_t)e->now_ns + e->rt_off);
	m->len = (uint16_t)n;
	memcpy(m->addr, addr, n);
	spsc_commit(e->s.miss_ring);
	st(e, STAT_MISS_ENQ);
}

/* ---- the client command state machine ---- */

static void txn_reset(struct flow *f)
{
	f->txn_fwd = 0;
	f->txn_ref = 0;
}

/* Turn the client stream opaque: nothing more is parsed or edited; the
 * server stream follows once the replies queued so far are placed. */
void session_failopen(struct engine *e, struct flow *f, unsigned cause)
{
	static const enum stats_id by_cause[] = {
		[MSG_FO_LINE] = STAT_LINE_TOO_LONG, [MSG_FO_QUEUE] = STAT_FAILOPEN_QUEUE,
		[MSG_FO_BDAT] = STAT_FAILOPEN_BDAT, [MSG_FO_PIN] = STAT_PIN_NOSPACE,
		[MSG_FO_FIN] = STAT_FAILOPEN_FIN,
	};
	if (f->cmode == CM_OPAQUE)
		return;
	f->cmode = CM_OPAQUE;
	st(e, STAT_FAILOPEN);
	if (cause < sizeof(by_cause) / sizeof(by_cause[0]) && cause != MSG_FO_LINE)
		st(e, by_cause[cause]); /* line_too_long counts where the line is seen */
	post_event(e, f, MSG_EV_FAILOPEN, (uint16_t)cause, NULL, 0, 0, 0);
}

/* Can the flow record one more removal answered by n bytes of text? */
static int can_answer(struct engine *e, struct flow *f, uint32_t n)
{
	const struct flow_busy *b;
	if (f->busy == FLOW_NONE && flow_busy_get(&e->ft, f) != 0)
		return 0;
	b = flow_busy(&e->ft, f);
	return b->q_n < e->c.cmd_max && f->c2s.n + 1u < e->ft.pts_max &&
	       f->s2c.n + b->q_n + 1u < e->ft.pts_max && b->t_len + n <= e->ft.text_max;
}

/* Remove client bytes [pos, pos+len) and queue the answer text. */
static void answer(struct engine *e, struct flow *f, uint32_t pos, uint32_t len,
		   const uint8_t *text, uint32_t n, uint8_t kind)
{
	tcpedit_add(&f->c2s, flow_pts(&e->ft, f, 0), e->ft.pts_max, pos, len, 0);
	text_append(e, f, text, n);
	session_q_push(e, f, kind, (uint16_t)n);
}

/* Remove client bytes without an answer (swallowed BDAT chunks, the rest of a
 * harvesting session). */
static int swallow(struct engine *e, struct flow *f, uint32_t pos, uint32_t len)
{
	if (f->busy == FLOW_NONE && flow_busy_get(&e->ft, f) != 0)
		return -ENOSPC;
	return tcpedit_add(&f->c2s, flow_pts(&e->ft, f, 0), e->ft.pts_max, pos, len, 0);
}

static uint32_t reply_text(uint8_t *out, const char *a, const struct addr_parsed *ad,
			   const char *b)
{
	size_t la = strlen(a), lb = strlen(b), n = 0;
	memcpy(out, a, la);
	n = la;
	memcpy(out + n, ad->local, ad->local_len);
	n += ad->local_len;
	if (ad->domain_len) {
		out[n++] = '@';
		memcpy(out + n, ad->domain, ad->domain_len);
		n += ad->domain_len;
	}
	memcpy(out + n, b, lb);
	return (uint32_t)(n + lb);
}

enum rcpt_decision { RD_FORWARD, RD_REJECT, RD_DEFER };

/* Decide one RCPT: forward, or answer it (returns the decision). */
static enum rcpt_decision rcpt_decide(struct engine *e, const uint8_t *arg,
				      size_t arg_len, struct addr_parsed *ad, char *canon,
				      int *canon_len, uint32_t *hthreshold, uint16_t *dflags)
{
	struct dtable_info di;
	struct rg_key128 k;
	struct rtable_val v;
	char dom[RG_DOMAIN_MAX + 1];
	int dl, cl;
	const struct shm_hdr *h;
	uint64_t gave_up;

	if (addr_parse_path((const char *)arg, arg_len, ad) != ADDR_OK ||
	    (ad->flags & ADDR_F_NULL)) {
		st(e, STAT_RCPT_BADADDR);
		return RD_FORWARD;
	}
	if (!e->s.map || (ad->flags & ADDR_F_POSTMASTER) || !ad->domain_len) {
		st(e, STAT_RCPT_UNMANAGED);
		return RD_FORWARD;
	}
	h = shm_hdr(e->s.map);
	dl = addr_domain_lower(ad, dom, sizeof(dom));
	if (dl <= 0) {
		st(e, STAT_RCPT_BADADDR);
		return RD_FORWARD;
	}
	dtable_key(e->s.map, dom, (size_t)dl, &k);
	if (!dtable_lookup(e->s.map, &k, &di)) {
		st(e, STAT_RCPT_UNMANAGED);
		return RD_FORWARD;
	}
	*dflags = di.flags;
	if (di.flags & DT_F_ACCEPT_ALL) {
		st(e, STAT_RCPT_ACCEPT_ALL);
		return RD_FORWARD;
	}
	cl = addr_canonical(ad, (di.flags & DT_F_CASE_SENSITIVE) != 0, canon, RG_ADDR_MAX);
	if (cl <= 0) {
		st(e, STAT_RCPT_BADADDR);
		return RD_FORWARD;
	}
	*canon_len = cl;
	*hthreshold = di.harvest_threshold ? di.harvest_threshold : e->c.harvest_threshold;
	khash128(h->hash_key, canon, (size_t)cl, &k);
	gave_up = e->s.reader ? e->s.reader->gave_up : 0;
	if (e->s.reader && rtable_lookup(e->s.reader, &k, &v) &&
	    rtable_val_live(&v, (uint64_t)(((int64_t)e->now_ns + e->rt_off) / 1000000000ll))) {
		if (v.verdict == RT_VALID) {
			st(e, STAT_RCPT_VALID);
			return RD_FORWARD;
		}
		if (v.verdict == RT_INVALID)
			return RD_REJECT;
	}
	st(e, STAT_RCPT_MISS);
	if (di.mode == DT_MODE_LIST) {
		/* closed list: unlisted means invalid, unless the list is not
		 * published whole or the table was too busy to answer: then
		 * the destination decides */
		if ((di.flags & DT_F_LIST_PARTIAL) || (e->s.reader && e->s.reader->gave_up != gave_up))
			return RD_FORWARD;
		return RD_REJECT;
	}
	post_miss(e, &k, canon, (size_t)cl);
	if (di.miss_policy == DT_MISS_DEFER && !(di.flags & DT_F_FAILOPEN))
		return RD_DEFER;
	return RD_FORWARD;
}

/*
 * The argument as servers read it, in the form addr_parse_path() takes:
 * whitespace between parameters made single spaces, and a bare address
 * (Postfix accepts "RCPT TO:user@domain" unless strict_rfc821_envelopes)
 * put in brackets.  A bare token with anything but atoms, dots and "@" is
 * left as it is: the parser refuses it and the RCPT is forwarded (counted).
 * Returns the length written to out (at most ENGINE_LINE_MAX_MAX + 2).
 */
static size_t rcpt_arg_normalise(const uint8_t *a, size_t n, uint8_t *out)
{
	size_t i = 0, o = 0, tok = 0;
	if (n && a[0] != '<') {
		while (tok < n && a[tok] != ' ' && a[tok] != '\t')
			tok++;
		for (size_t k = 0; k < tok; k++)
			if (memchr("<>()\",;:\\[]", a[k], 11))
				return memcpy(out, a, n), n;
		out[o++] = '<';
		memcpy(out + o, a, tok);
		o += tok;
		out[o++] = '>';
		i = tok;
	}
	for (; i < n; i++)
		out[o++] = a[i] == '\t' ? ' ' : a[i];
	return o;
}

/* One RCPT line [pos, pos+len) whose argument is raw_arg. */
static void on_rcpt(struct engine *e, struct flow *f, uint32_t pos, uint32_t len,
		    const uint8_t *raw_arg, size_t raw_len)
{
	uint8_t buf[ENGINE_LINE_MAX_MAX + 2];
	const uint8_t *arg = raw_arg;
	size_t arg_len = raw_len;
	if (raw_len && (raw_arg[0] != '<' || memchr(raw_arg, '\t', raw_len))) {
		arg_len = rcpt_arg_normalise(raw_arg, raw_len, buf);
		arg = buf;
	}
	struct addr_parsed ad;
	char canon[RG_ADDR_MAX];
	uint8_t text[ENGINE_REPLY_MAX];
	int canon_len = 0;
	uint32_t n, thr = 0, count = 0;
	unsigned tripped = 0;
	uint16_t dflags = 0;
	enum rcpt_decision d;

	st(e, STAT_RCPT);
	if (f->txn_fwd + f->txn_ref >= e->c.rcpt_max) {
		st(e, STAT_RCPT_LIMIT);
		d = RD_FORWARD;
	} else {
		d = rcpt_decide(e, arg, arg_len, &ad, canon, &canon_len, &thr, &dflags);
	}
	if (d != RD_FORWARD && (dflags & DT_F_WARN)) {
		/* dry run (action = warn): forwarded, reported as what it would have been */
		post_event(e, f, MSG_EV_WARN,
			   d == RD_REJECT && !(dflags & DT_F_REJECT_450) ? 550 : 450, canon,
			   (size_t)canon_len, 0, d == RD_REJECT ? MSG_EV_REJECT : MSG_EV_DEFER);
		d = RD_FORWARD;
	}
	if (d != RD_FORWARD) {
		if (d == RD_REJECT) {
			tripped = harvest_note(&e->hv, f->family, f->c_ip, e->now_ms, thr, &count);
			if (tripped)
				n = (uint32_t)(sizeof(REPLY_421) - 1);
			else
				n = reply_text(text, (dflags & DT_F_REJECT_450) ? REPLY_450U_A
										 : REPLY_550_A,
					       &ad, REPLY_550_B);
		} else {
			n = reply_text(text, REPLY_450_A, &ad, REPLY_450_B);
		}
		if (!can_answer(e, f, n)) {
			st(e, STAT_EDIT_NOSPACE);
			d = RD_FORWARD;
		}
	}
	if (d == RD_FORWARD) {
		f->txn_fwd++;
		st(e, STAT_RCPT_FORWARDED);
		if (session_q_push(e, f, Q_RCPT, 0) != 0)
			session_failopen(e, f, MSG_FO_QUEUE);
		return;
	}
	f->txn_ref++;
	if (tripped) {
		answer(e, f, pos, len, (const uint8_t *)REPLY_421, n, Q_INJ_CLOSE);
		f->flags |= FLOW_F_HARVEST;
		f->cmode = CM_SWALLOW;
		st(e, STAT_HARVEST_CLOSED);
		st(e, STAT_RCPT_REJECTED);
		post_event(e, f, MSG_EV_HARVEST, 421, canon, (size_t)canon_len, (uint8_t)tripped,
			   count);
		return;
	}
	answer(e, f, pos, len, text, n, Q_INJ);
	if (d == RD_REJECT) {
		st(e, STAT_RCPT_REJECTED);
		post_event(e, f, MSG_EV_REJECT, (dflags & DT_F_REJECT_450) ? 450 : 550, canon,
			   (size_t)canon_len, 0, 0);
	} else {
		st(e, STAT_RCPT_DEFERRED);
		post_event(e, f, MSG_EV_DEFER, 450, canon, (size_t)canon_len, 0, 0);
	}
}

static void keep_arg(char *dst, uint8_t *dlen, size_t max, const uint8_t *a, size_t n)
{
	while (n && (a[0] == ' '))
		a++, n--;
	if (n > max)
		n = max;
	memcpy(dst, a, n);
	*dlen = (uint8_t)n;
}

/* One whole command line [pos, pos+len) (len includes the line end). */
/* One command line as the handlers see it. */
struct cmd_ctx {
	const struct smtp_cmd *c;
	const uint8_t *line;
	size_t n;		/* without the line end */
	uint32_t pos, len;	/* stream position and length with the line end */
};

#define CMD_DONE (-1)	/* the handler queued (or answered) the command itself */

/* Handlers return the reply-queue kind to record, or CMD_DONE. */
typedef int (*cmd_fn)(struct engine *e, struct flow *f, const struct cmd_ctx *x);

static int cmd_hello(struct engine *e, struct flow *f, const struct cmd_ctx *x)
{
	(void)e;
	keep_arg(f->helo, &f->helo_len, FLOW_HELO_MAX, x->line + x->c->arg_off, x->c->arg_len);
	txn_reset(f);
	return x->c->verb == SMTP_V_EHLO ? Q_EHLO : Q_HELO;
}

static int cmd_mail(struct engine *e, struct flow *f, const struct cmd_ctx *x)
{
	struct addr_parsed ad;
	(void)e;
	txn_reset(f);
	f->from_len = 0;
	if (!x->c->bad && addr_parse_path((const char *)x->line + x->c->arg_off, x->c->arg_len,
					  &ad) == ADDR_OK) {
		size_t k = ad.local_len < FLOW_FROM_MAX ? ad.local_len : FLOW_FROM_MAX;
		memcpy(f->from, ad.local, k);
		if (ad.domain_len && k < FLOW_FROM_MAX)
			f->from[k++] = '@';
		for (size_t i = 0; i < ad.domain_len && k < FLOW_FROM_MAX; i++)
			f->from[k++] = ad.domain[i];
		f->from_len = (uint8_t)k;
	}
	return Q_FWD;
}

static int cmd_rcpt(struct engine *e, struct flow *f, const struct cmd_ctx *x)
{
	if (x->c->bad)
		return Q_FWD; /* the server answers a malformed RCPT itself */
	on_rcpt(e, f, x->pos, x->len, x->line + x->c->arg_off, x->c->arg_len);
	return CMD_DONE;
}

/* DATA or BDAT in a transaction whose every recipient the engine refused:
 * the engine answers it (RFC 5321 3.3: 554, the client then sends no data). */
static int refuse_no_rcpt(struct engine *e, struct flow *f, const struct cmd_ctx *x)
{
	if (f->txn_fwd != 0 || f->txn_ref == 0 || !can_answer(e, f, sizeof(REPLY_554) - 1))
		return 0;
	answer(e, f, x->pos, x->len, (const uint8_t *)REPLY_554, sizeof(REPLY_554) - 1, Q_INJ);
	st(e, STAT_DATA_REFUSED);
	return 1;
}

static int cmd_data(struct engine *e, struct flow *f, const struct cmd_ctx *x)
{
	if (refuse_no_rcpt(e, f, x))
		return CMD_DONE;
	f->cmode = CM_DATA_WAIT;
	return Q_DATA;
}

static int cmd_bdat(struct engine *e, struct flow *f, const struct cmd_ctx *x)
{
	if ((f->flags2 & FLOW_F2_EHLO) && !(f->flags & FLOW_F_CHUNKING))
		/* not offered: the server answers it as an unknown command and
		 * reads what follows as commands, and so does the engine */
		return Q_FWD;
	if (x->c->bad || !(f->flags2 & FLOW_F2_EHLO)) {
		/* a chunk of unknown length, or a session whose capabilities the
		 * engine did not see (HELO): it cannot tell how the server reads
		 * what follows, so nothing after it is parsed (counted) */
		if (session_q_push(e, f, Q_FWD, 0) != 0)
			session_failopen(e, f, MSG_FO_QUEUE);
		session_failopen(e, f, MSG_FO_BDAT);
		return CMD_DONE;
	}
	f->bdat_left = x->c->bdat_size;
	if (refuse_no_rcpt(e, f, x)) {
		f->cmode = f->bdat_left ? CM_BDAT_EAT : CM_CMD;
		return CMD_DONE;
	}
	f->cmode = f->bdat_left ? CM_BDAT : CM_CMD;
	return Q_BDAT;
}

static int cmd_rset(struct engine *e, struct flow *f, const struct cmd_ctx *x)
{
	(void)e;
	(void)x;
	txn_reset(f);
	return Q_FWD;
}

static int cmd_starttls(struct engine *e, struct flow *f, const struct cmd_ctx *x)
{
	(void)e;
	(void)x;
	f->cmode = CM_TLS_WAIT;
	return Q_STARTTLS;
}

static int cmd_auth(struct engine *e, struct flow *f, const struct cmd_ctx *x)
{
	/* what follows is held until the server answers: a 334 makes the next
	 * line a SASL response (never parsed, never logged), anything else
	 * leaves it a command (RFC 4954 4) */
	(void)e;
	(void)x;
	f->cmode = CM_AUTH_WAIT;
	return Q_AUTH;
}

/* What each verb does; verbs not listed are forwarded and their reply awaited. */
static const cmd_fn cmd_table[SMTP_V__COUNT] = {
	[SMTP_V_HELO] = cmd_hello,	 [SMTP_V_EHLO] = cmd_hello, [SMTP_V_MAIL] = cmd_mail,
	[SMTP_V_RCPT] = cmd_rcpt,	 [SMTP_V_DATA] = cmd_data,  [SMTP_V_BDAT] = cmd_bdat,
	[SMTP_V_RSET] = cmd_rset,	 [SMTP_V_STARTTLS] = cmd_starttls,
	[SMTP_V_AUTH] = cmd_auth,
};

/* One whole command line [pos, pos+len) (len includes the line end). */
static void on_line(struct engine *e, struct flow *f, const uint8_t *line, uint32_t pos,
		    uint32_t len)
{
	struct smtp_cmd c;
	struct cmd_ctx x = {&c, line, len, pos, len};
	int kind = Q_FWD;

	if (x.n && line[x.n - 1] == '\n')
		x.n--;
	if (x.n && line[x.n - 1] == '\r')
		x.n--;
	else
		st(e, STAT_BARE_LF);
	st(e, STAT_CMDS);
	if (memchr(line, 0, x.n)) {
		/* NUL is no command a server accepts: forward, decide nothing */
		st(e, STAT_NUL_BYTES);
	} else {
		smtp_cmd_parse(line, x.n, &c);
		if (cmd_table[c.verb])
			kind = cmd_table[c.verb](e, f, &x);
	}
	if (kind != CMD_DONE && session_q_push(e, f, (uint8_t)kind, 0) != 0)
		session_failopen(e, f, MSG_FO_QUEUE);
}

/* End-of-body matcher states. */
enum { BS_BOL = 0, BS_MID, BS_DOT, BS_DOTCR };

/* One byte of the end-of-body matcher; 1 when it completes CRLF.CRLF (or a
 * bare-LF "." line, as Postfix accepts). */
static int body_step(struct flow *f, uint8_t c)
{
	switch (f->body_st) {
	case BS_BOL:
		f->body_st = c == '.' ? BS_DOT : c == '\n' ? BS_BOL : BS_MID;
		return 0;
	case BS_DOT:
		if (c == '\n')
			return 1;
		f->body_st = c == '\r' ? BS_DOTCR : BS_MID;
		return 0;
	case BS_DOTCR:
		if (c == '\n')
			return 1;
		f->body_st = BS_MID;
		return 0;
	default:
		f->body_st = c == '\n' ? BS_BOL : BS_MID;
		return 0;
	}
}

/*
 * Scan body bytes b[0..n); returns bytes up to and including the end line,
 * or n when the body goes on.  Only a line starting with '.' can end the
 * body, so the scan jumps from one "\n." to the next (memmem), and looks at
 * single bytes only around those and at the segment's edges.
 */
static uint32_t body_scan(struct flow *f, const uint8_t *b, uint32_t n, int *end)
{
	uint32_t i = 0;
	*end = 0;
	for (;;) {
		/* bytes whose meaning depends on the carried state */
		while (i < n && f->body_st != BS_MID) {
			if (body_step(f, b[i++])) {
				*end = 1;
				return i;
			}
		}
		if (i >= n)
			return n;
		const uint8_t *hit = memmem(b + i, n - i, "\n.", 2);
		if (!hit) {
			f->body_st = b[n - 1] == '\n' ? BS_BOL : BS_MID;
			return n;
		}
		i = (uint32_t)(hit - b) + 2;
		f->body_st = BS_DOT;
	}
}

/*
 * Parse client bytes [c_fwd, to) that lie in src (src[0] is sequence
 * src_seq).  Advances c_fwd over what is decided; a trailing partial command
 * line stays undecided (the caller holds it).  flush: a FIN follows, so a
 * partial line goes out as it is.
 */
void session_c_consume(struct engine *e, struct flow *f, const uint8_t *src, uint32_t src_seq,
		      uint32_t to, int flush)
{
	while (seq_lt(f->c_fwd, to)) {
		const uint8_t *b = src + (f->c_fwd - src_seq);
		uint32_t avail = to - f->c_fwd, n;
		int end;

		switch (f->cmode) {
		case CM_CMD: {
			const uint8_t *lf = memchr(b, '\n', avail);
			if (!lf) {
				if (avail > e->c.line_max) {
					st(e, STAT_LINE_TOO_LONG);
					session_failopen(e, f, MSG_FO_LINE);
					break;
				}
				if (flush) {
					session_failopen(e, f, MSG_FO_FIN);
					break;
				}
				return; /* partial line: held */
			}
			n = (uint32_t)(lf - b) + 1;
			if (n > e->c.line_max) {
				st(e, STAT_LINE_TOO_LONG);
				session_failopen(e, f, MSG_FO_LINE);
				break;
			}
			on_line(e, f, b, f->c_fwd, n);
			f->c_fwd += n;
			break;
		}
		case CM_BODY:
			n = body_scan(f, b, avail, &end);
			f->c_fwd += n;
			if (end) {
				f->cmode = CM_CMD;
				txn_reset(f);
				if (session_q_push(e, f, Q_DOT, 0) != 0)
					session_failopen(e, f, MSG_FO_QUEUE);
			}
			break;
		case CM_BDAT:
		case CM_BDAT_EAT:
			n = avail < f->bdat_left ? avail : f->bdat_left;
			if (f->cmode == CM_BDAT_EAT && swallow(e, f, f->c_fwd, n) != 0) {
				/* cannot remove it: let the server see it */
				session_failopen(e, f, MSG_FO_QUEUE);
				break;
			}
			f->c_fwd += n;
			f->bdat_left -= n;
			if (!f->bdat_left)
				f->cmode = CM_CMD;
			break;
		case CM_SWALLOW:
			if (swallow(e, f, f->c_fwd, avail) != 0) {
				session_failopen(e, f, MSG_FO_QUEUE);
				break;
			}
			f->c_fwd = to;
			break;
		case CM_DATA_WAIT:
		case CM_TLS_WAIT:
		case CM_AUTH_WAIT:
			/* bytes before the reply that says what they are: held (and
			 * acknowledged by the engine) until it comes */
			return;
		case CM_AUTH: {
			/* one SASL response line passes unparsed; then its reply */
			const uint8_t *lf = memchr(b, '\n', avail);
			if (!lf) {
				f->c_fwd = to;
				break;
			}
			f->c_fwd += (uint32_t)(lf - b) + 1;
			f->cmode = CM_AUTH_WAIT;
			break;
		}
		case CM_OPAQUE:
		default:
			f->c_fwd = to;
			break;
		}
	}
}

/* ---- the server reply state machine ---- */

/* Place the injected replies now at the queue's head at server position pos.
 * Returns the inserted bytes. */
uint32_t session_place(struct engine *e, struct flow *f, uint32_t pos, int *close)
{
	uint32_t total = 0;
	while (session_q_len(e, f)) {
		struct flow_qent q = session_q_head(e, f);
		struct flow_busy *b;
		if (q.kind != Q_INJ && q.kind != Q_INJ_CLOSE)
			break;
		b = flow_busy(&e->ft, f);
		if (tcpedit_add(&f->s2c, flow_pts(&e->ft, f, 1), e->ft.pts_max, pos, 0, q.len) != 0)
			break; /* cannot happen: can_answer() reserved the point */
		b->t_pend -= q.len;
		total += q.len;
		session_q_pop(e, f);
		if (q.kind == Q_INJ_CLOSE) {
			*close = 1;
			break;
		}
	}
	return total;
}

static void on_reply(struct engine *e, struct flow *f)
{
	struct flow_qent q;
	if (f->rp.flags & SMTP_REPLY_BAD)
		st(e, STAT_REPLY_MALFORMED);
	if (!session_q_len(e, f))
		return; /* unsolicited (a 421 shutdown, say) */
	q = session_q_head(e, f);
	switch (q.kind) {
	case Q_EHLO:
		if (f->rp.code / 100 == 2) {
			f->flags2 |= FLOW_F2_EHLO;
			f->flags &= (uint8_t)~(FLOW_F_PIPELINING | FLOW_F_CHUNKING);
			if (f->rp.caps & SMTP_CAP_PIPELINING)
				f->flags |= FLOW_F_PIPELINING;
			if (f->rp.caps & SMTP_CAP_CHUNKING)
				f->flags |= FLOW_F_CHUNKING;
		}
		break;
	case Q_DATA:
		if (f->cmode == CM_DATA_WAIT) {
			f->cmode = f->rp.code == 354 ? CM_BODY : CM_CMD;
			f->body_st = BS_BOL;
		}
		break;
	case Q_STARTTLS:
		if (f->cmode == CM_TLS_WAIT) {
			if (f->rp.code / 100 == 2) {
				f->cmode = CM_OPAQUE;
				f->flags |= FLOW_F_S_OPAQUE;
				st(e, STAT_STARTTLS);
			} else {
				f->cmode = CM_CMD;
			}
		}
		break;
	case Q_AUTH:
		if (f->rp.code == 334) {
			/* the exchange goes on: AUTH stays at the head */
			if (f->cmode == CM_AUTH_WAIT)
				f->cmode = CM_AUTH;
			return;
		}
		if (f->cmode == CM_AUTH || f->cmode == CM_AUTH_WAIT)
			f->cmode = CM_CMD;
		break;
	default:
		break;
	}
	session_q_pop(e, f);
}

/* Parse server bytes [s_fwd, to) from b (b[0] is s_fwd). Returns 1 when a
 * harvest 421 was placed (the session is to be closed). */
int session_s_consume(struct engine *e, struct flow *f, const uint8_t *b, uint32_t to,
		     uint32_t *ins)
{
	int close = 0;
	while (seq_lt(f->s_fwd, to) && !(f->flags & FLOW_F_S_OPAQUE)) {
		int done;
		size_t n = smtp_reply_scan(&f->rp, b, to - f->s_fwd, &done);
		b += n;
		f->s_fwd += (uint32_t)n;
		if (!done)
			break;
		on_reply(e, f);
		smtp_reply_reset(&f->rp);
		if (f->busy != FLOW_NONE)
			*ins += session_place(e, f, f->s_fwd, &close);
		if (close)
			return 1;
		if (f->cmode == CM_OPAQUE && !session_q_len(e, f))
			f->flags |= FLOW_F_S_OPAQUE;
	}
	if (f->flags & FLOW_F_S_OPAQUE)
		f->s_fwd = to;
	return 0;
}

