/*
 * csession.c — the callout client's SMTP session (see callout_int.h), a
 * state machine as OpenSMTPD's mta_session.c is one: response() reads a
 * complete reply and picks the next state, enter_state() sends what that
 * state sends and arms its timer.  Nothing else writes a command.
 *
 * Replies go through the parser both planes share (common/smtpreply.h),
 * fed line by line from a bounded receive buffer that holds the line being
 * read: a line over CALLOUT_LINE_MAX, a reply over CALLOUT_REPLY_LINES_MAX
 * lines, a malformed line or a multi-line reply whose codes differ ends the
 * session (counted).  Any split of the server's bytes into reads gives the
 * same result.
 *
 * Connections go to the destinations of a round in order (the best MX
 * preference first, rotated, backups after); a destination that does not
 * greet passes the session to the next.  STARTTLS per the domain's tls
 * setting.  Thread: main thread only.
 */
#include "callout_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "classify.h"
#include "core.h"
#include "log.h"
#include "smtpreply.h"
#include "text.h"

static struct callout_co *const co = &callout_co;

static void tls_step(struct sess *s);
static int send_rcpt(struct sess *s, unsigned i);
static const char *probe_sender(const struct callout_dom *d, char *buf, size_t n);

/* ---- output */

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

/*
 * Enter state st: send what it sends and arm its timer.  The one place a
 * command is written: a reply (response()) or the timer moves the session
 * on.  A write that fails ends the session: closed when it was ending
 * anyway (RSET, QUIT), else failed.
 */
void enter_state(struct sess *s, enum sess_state st)
{
	struct callout_dom *d = s->dom;
	const char *helo = d->cfg.helo_name[0] ? d->cfg.helo_name : co->hostname;
	int r = 0;
	s->state = st;
	switch (st) {
	case S_GREETING:
		arm(s, d->cfg.greeting_timeout_ms);
		set_events(s);
		return;
	case S_EHLO:
		r = cmd(s, "EHLO ", helo, "");
		break;
	case S_HELO:
		r = cmd(s, "HELO ", helo, "");
		break;
	case S_STARTTLS:
		r = cmd(s, "STARTTLS", "", "");
		break;
	case S_MAIL: {
		/* the RCPTs go along when the server pipelines */
		char sender[RG_ADDR_MAX + 16];
		r = cmd(s, "MAIL FROM:<", probe_sender(d, sender, sizeof(sender)),
			s->tx_utf8 ? "> SMTPUTF8" : ">");
		if (!r && s->pipelining) {
			for (unsigned i = 0; i < s->ntx && !r; i++)
				r = send_rcpt(s, i);
			s->nsent = s->ntx;
		}
		break;
	}
	case S_RCPT:
		/* one at a time unless pipelined (then all went with MAIL) */
		if (!s->pipelining && s->nsent < s->ntx)
			r = send_rcpt(s, s->nsent++);
		break;
	case S_SWALLOW:
		break;
	case S_RSET:
		r = cmd(s, "RSET", "", "");
		break;
	case S_QUIT:
		r = cmd(s, "QUIT", "", "");
		break;
	case S_CONNECT:
	case S_TLS:
		return; /* connect_next() and tls_start() drive these */
	}
	arm(s, d->cfg.command_timeout_ms);
	if (!r)
		r = flush_out(s);
	if (!r)
		return;
	if (st == S_QUIT || st == S_RSET)
		sess_close(s, true);
	else
		sess_fail(s, CORE_V_TEMPFAIL, 0, "write failed");
}

/* End the session politely; a connection that cannot take QUIT is closed. */
void send_quit(struct sess *s)
{
	enter_state(s, S_QUIT);
}

/* Destinations of the best MX preference (all of an explicit list). */
/* ---- destinations */

unsigned primaries(const struct callout_dom *d)
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
	for (unsigned i = 0; i < co->nown; i++) {
		if (co->own[i].ss_family != sa->ss_family)
			continue;
		if (sa->ss_family == AF_INET &&
		    !memcmp(&((const struct sockaddr_in *)sa)->sin_addr,
			    &((const struct sockaddr_in *)&co->own[i])->sin_addr, 4))
			return true;
		if (sa->ss_family == AF_INET6 &&
		    !memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr,
			    &((const struct sockaddr_in6 *)&co->own[i])->sin6_addr, 16))
			return true;
	}
	return false;
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

/* After a good EHLO in plain text: send STARTTLS when offered and wanted
 * (returns true: the session goes on from its reply), refuse to go on
 * without it when required (true: the session ended), or false: go on in
 * plain text. */
/* ---- STARTTLS */

static bool tls_begin(struct sess *s, bool offered)
{
	struct callout_dom *d = s->dom;
	uint64_t now = daemon_now_ms();
	if (d->cfg.tls == CONFIG_TLS_OFF)
		return false;
	if (offered && co->ssl_ctx &&
	    (d->cfg.tls == CONFIG_TLS_REQUIRED || now >= d->tls_skip_until_ms)) {
		enter_state(s, S_STARTTLS);
		return true;
	}
	if (d->cfg.tls != CONFIG_TLS_REQUIRED)
		return false;
	char why[120];
	snprintf(why, sizeof(why), "%.60s does not offer STARTTLS (tls = required)%s", s->dest,
		 co->ssl_ctx ? "" : ": no TLS context");
	snprintf(d->last_error, sizeof(d->last_error), "%s", why);
	log_kind(LOG_K_CALLOUT, LOG_WARNING, "callout: %s: %s", d->cfg.name, why);
	fail_tx(s, CORE_V_UNVERIFIABLE, 0, "", why);
	if (!s->verify)
		mark_unverifiable(d, 0, why);
	send_quit(s);
	return true;
}

static void tls_start(struct sess *s)
{
	s->ssl = SSL_new(co->ssl_ctx);
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
		enter_state(s, S_EHLO);
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

/* The destination did not greet (4xx/5xx banner, timeout, closed): the
 * session moves on to the next destination of the round (Postfix's
 * smtp_skip_5xx_greeting, Exim's next host).  Only when every destination
 * failed is the round over: unverifiable if one of them refused us with a
 * 5xx, else temporary (a breaker failure). */
void round_over(struct sess *s, const char *why)
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

void greeting_failed(struct sess *s, const char *why)
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
	const char *me = s->dom->cfg.helo_name[0] ? s->dom->cfg.helo_name : co->hostname;
	size_t n = strcspn(s->rtext, " \t"), m = strlen(me);
	return n == m && !strncasecmp(s->rtext, me, n);
}

/* A complete reply is in s->rcode/renh/rtext: decide, then enter the next
 * state (enter_state() does the sending). */
static void response(struct sess *s)
{
	struct callout_dom *d = s->dom;
	const char *enh = s->renh;
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
			enter_state(s, S_EHLO);
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
			enter_state(s, S_HELO);
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
			enter_state(s, S_RCPT);
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
				enter_state(s, S_SWALLOW);
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

/* Feed the received bytes to the reply parser, line by line: a line goes
 * to the transcript (and the first to rfirst) whole.  Returns 0, or -1 when
 * the session ended. */
static int parse_lines(struct sess *s)
{
	while (s->rfed < s->rlen) {
		enum smtp_reply_ev ev;
		if (smtp_reply_idle(&s->rp))
			smtp_reply_text_reset(&s->rt); /* a new reply: rtext was the last */
		s->rfed += smtp_reply_step(&s->rp, (const uint8_t *)s->rbuf + s->rfed,
					   s->rlen - s->rfed, &s->rt, &ev);
		if (ev == SMTP_REPLY_MORE) {
			if (s->rp.len > CALLOUT_LINE_MAX) {
				ST(LINE_TOO_LONG);
				sess_fail(s, CORE_V_TEMPFAIL, 0, "reply line too long");
				return -1;
			}
			break;
		}
		size_t n = s->rfed - 1; /* the line without its CRLF */
		if (n && s->rbuf[n - 1] == '\r')
			n--;
		if (s->rp.max_line > CALLOUT_LINE_MAX) {
			ST(LINE_TOO_LONG);
			sess_fail(s, CORE_V_TEMPFAIL, 0, "reply line too long");
			return -1;
		}
		transcript(s, "S: ", s->rbuf, n);
		if (s->rp.flags & SMTP_REPLY_BAD) {
			ST(PROTO_ERRORS);
			sess_fail(s, CORE_V_TEMPFAIL, 0, "malformed reply");
			return -1;
		}
		if (s->rp.flags & SMTP_REPLY_MIXED) {
			ST(PROTO_ERRORS);
			sess_fail(s, CORE_V_TEMPFAIL, 0, "inconsistent multi-line reply");
			return -1;
		}
		if (s->rp.lines > CALLOUT_REPLY_LINES_MAX) {
			ST(PROTO_ERRORS);
			sess_fail(s, CORE_V_TEMPFAIL, 0, "reply with too many lines");
			return -1;
		}
		if (s->rp.lines == 1) /* kept for logs, the store and rcptctl: cleaned */
			text_clean(s->rfirst, sizeof(s->rfirst), s->rbuf, n, 0);
		memmove(s->rbuf, s->rbuf + s->rfed, s->rlen - s->rfed);
		s->rlen -= s->rfed;
		s->rfed = 0;
		if (ev == SMTP_REPLY_LINE)
			continue;
		s->rcode = s->rp.code;
		memcpy(s->renh, s->rp.enh, sizeof(s->renh));
		s->rtext_len = s->rt.len;
		s->saw_pipelining = s->rp.caps & SMTP_CAP_PIPELINING;
		s->saw_smtputf8 = s->rp.caps & SMTP_CAP_SMTPUTF8;
		s->saw_starttls = s->rp.caps & SMTP_CAP_STARTTLS;
		smtp_reply_reset(&s->rp);
		/* response() may close the session (its memory stays valid until
		 * the next tick) */
		response(s);
		if (s->dead)
			return -1;
		if (s->state == S_CONNECT || s->state == S_TLS)
			return 0; /* on to the next destination, or TLS: the rest is dropped */
	}
	return 0;
}

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
	enter_state(s, S_GREETING);
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

int connect_next(struct sess *s)
{
	struct callout_dom *d = s->dom;
	if (s->fd >= 0) {
		daemon_del_fd(s->fd);
		close(s->fd);
		s->fd = -1;
	}
	s->rlen = s->rfed = 0;
	smtp_reply_reset(&s->rp);
	s->rt = (struct smtp_reply_text){.buf = s->rtext, .cap = sizeof(s->rtext)};
	smtp_reply_text_reset(&s->rt);
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
