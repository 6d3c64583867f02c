/*
 * log.c — syslog output with per-kind rate limiting and the Postfix-shaped
 * rendering of data-plane rejection events.
 *
 * Rejections are logged the way Postfix's smtpd logs them so that fail2ban's
 * postfix filter and pflogsumm read them unchanged; the client's host name is
 * "unknown" (the data plane does no reverse lookups), exactly as Postfix
 * writes it for a client without a name.
 * Thread: main thread only.
 */
#include "log.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "text.h"

static struct {
	bool to_stderr;
	uint32_t rate;
	char ident[64];
	struct {
		uint64_t window_ms;	/* start of the current second */
		uint32_t used;		/* lines written in it */
		uint64_t dropped;	/* suppressed in it */
		uint64_t total_dropped;
	} k[LOG_K__COUNT];
} lg = {.rate = 200};

static const char *const kind_names[LOG_K__COUNT] = {"general", "reject", "callout",
						      "harvest", "client"};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void log_init(const char *ident, int facility, bool to_stderr, uint32_t rate)
{
	snprintf(lg.ident, sizeof(lg.ident), "%s", ident);
	openlog(lg.ident, LOG_PID | LOG_NDELAY, facility);
	lg.to_stderr = to_stderr;
	lg.rate = rate ? rate : 1;
}

void log_reconfigure(const char *ident, int facility, bool to_stderr, uint32_t rate)
{
	closelog();
	log_init(ident, facility, to_stderr, rate);
}

void log_close(void)
{
	closelog();
}

/* Every line is cleaned as a whole (text.h): whatever a message quotes (a
 * destination's reply, an address, a HELO name), one call is one line and
 * nothing in it drives a terminal. */
static void vout(int prio, const char *fmt, va_list ap)
{
	char line[2048], safe[TEXT_CLEAN_MAX(2048)];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	size_t len = n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	text_clean(safe, sizeof(safe), line, len, 0);
	syslog(prio, "%s", safe);
	if (lg.to_stderr)
		fprintf(stderr, "%s: %s\n", lg.ident[0] ? lg.ident : "rcptgated", safe);
}

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vout(prio, fmt, ap);
	va_end(ap);
}

static void flush_kind(enum log_kind k)
{
	if (lg.k[k].dropped) {
		log_msg(LOG_NOTICE, "%llu similar %s messages suppressed (log_rate %u/s)",
			(unsigned long long)lg.k[k].dropped, kind_names[k], lg.rate);
		lg.k[k].dropped = 0;
	}
}

bool log_kind(enum log_kind k, int prio, const char *fmt, ...)
{
	if (k != LOG_K_GENERAL) {
		uint64_t now = mono_ms();
		if (now - lg.k[k].window_ms >= 1000) {
			flush_kind(k);
			lg.k[k].window_ms = now;
			lg.k[k].used = 0;
		}
		if (lg.k[k].used >= lg.rate) {
			lg.k[k].dropped++;
			lg.k[k].total_dropped++;
			return false;
		}
		lg.k[k].used++;
	}
	va_list ap;
	va_start(ap, fmt);
	vout(prio, fmt, ap);
	va_end(ap);
	return true;
}

void log_tick(uint64_t now_ms)
{
	for (int k = 0; k < LOG_K__COUNT; k++)
		if (lg.k[k].dropped && now_ms - lg.k[k].window_ms >= 1000) {
			flush_kind((enum log_kind)k);
			lg.k[k].window_ms = now_ms;
			lg.k[k].used = 0;
		}
}

uint64_t log_suppressed(enum log_kind k)
{
	return lg.k[k].total_dropped;
}

/* Copy n bytes of untrusted text, replacing anything unprintable (and the
 * characters that would break the log line's structure) with '?'. */
static void clean(char *dst, size_t dstlen, const char *src, size_t n)
{
	size_t i;
	if (dstlen == 0)
		return;
	for (i = 0; i < n && i + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c < 0x20 || c == 0x7f || c == '<' || c == '>') ? '?' : (char)c;
	}
	dst[i] = 0;
}

static void fmt_ip(const uint8_t *ip, int family, char *out, size_t len)
{
	if (family == 6)
		inet_ntop(AF_INET6, ip, out, (socklen_t)len);
	else
		inet_ntop(AF_INET, ip, out, (socklen_t)len);
}

int log_format_event(const struct msg_event *ev, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN], helo[257], from[RG_PATH_MAX + 1], rcpt[RG_ADDR_MAX + 1];
	fmt_ip(ev->client_ip, ev->family, ip, sizeof(ip));
	clean(helo, sizeof(helo), ev->helo, ev->helo_len < sizeof(ev->helo) ? ev->helo_len : sizeof(ev->helo));
	clean(from, sizeof(from), ev->from, ev->from_len < sizeof(ev->from) ? ev->from_len : sizeof(ev->from));
	clean(rcpt, sizeof(rcpt), ev->rcpt, ev->rcpt_len < sizeof(ev->rcpt) ? ev->rcpt_len : sizeof(ev->rcpt));
	/* Postfix's "helo=<...>" field is left out when no HELO was seen */
	char helo_field[272] = "";
	if (helo[0])
		snprintf(helo_field, sizeof(helo_field), " helo=<%s>", helo);
	/* a warning (action = warn) is the refusal it stands for, logged the
	 * way Postfix's warn_if_reject logs one */
	unsigned type = ev->type == MSG_EV_WARN ? ev->count : ev->type;
	const char *what = ev->type == MSG_EV_WARN ? "reject_warning" : "reject";
	switch (type) {
	case MSG_EV_REJECT: {
		unsigned code = ev->code ? ev->code : 550;
		return snprintf(buf, len,
				"NOQUEUE: %s: RCPT from unknown[%s]: %u %s <%s>: Recipient "
				"address rejected: User unknown; from=<%s> to=<%s> proto=ESMTP%s",
				what, ip, code, code / 100 == 4 ? "4.1.1" : "5.1.1", rcpt, from, rcpt,
				helo_field);
	}
	case MSG_EV_DEFER:
		return snprintf(buf, len,
				"NOQUEUE: %s: RCPT from unknown[%s]: %u 4.7.1 <%s>: Recipient "
				"address rejected: verification in progress; from=<%s> to=<%s> "
				"proto=ESMTP%s",
				what, ip, ev->code ? ev->code : 450, rcpt, from, rcpt, helo_field);
	case MSG_EV_HARVEST:
		return snprintf(buf, len,
				"harvest: client unknown[%s] prefix %s/%u: %u invalid recipients; "
				"session closed 421",
				ip, ip, ev->prefix_len, ev->count);
	case MSG_EV_FAILOPEN: {
		static const char *const why[] = {
			"?", "command line too long", "reply queue full", "BDAT not trackable",
			"no room to keep the session", "partial line at close",
		};
		unsigned c = ev->code < sizeof(why) / sizeof(why[0]) ? ev->code : 0;
		return snprintf(buf, len,
				"failopen: client unknown[%s]:%u: %s; session forwarded unchecked",
				ip, ev->client_port, why[c]);
	}
	default:
		return snprintf(buf, len, "event type %u from [%s]", ev->type, ip);
	}
}

void log_event(const struct msg_event *ev)
{
	char line[1200];
	log_format_event(ev, line, sizeof(line));
	enum log_kind k = ev->type == MSG_EV_HARVEST ? LOG_K_HARVEST : LOG_K_REJECT;
	log_kind(k, ev->type == MSG_EV_HARVEST ? LOG_WARNING : LOG_INFO, "%s", line);
}
