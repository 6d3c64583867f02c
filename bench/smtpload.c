/*
 * smtpload.c — the SMTP load generator (smtpload.h).  One thread, one epoll
 * loop, a fixed array of session slots; each session is a small state
 * machine driven by complete replies.  Used inside the client namespace of a
 * testbed by `rcptgate-bench peer`, or on its own as `rcptgate-bench smtpload`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "smtpload.h"

#define LOAD_MAX_RCPTS 1000u
#define LOAD_IN_MAX 8192u	/* reply bytes buffered per session */
#define LOAD_OUT_MAX (LOAD_MAX_RCPTS * 80u + 1024u)
#define LOAD_LAT_SAMPLES 200000u

enum st { S_FREE, S_CONNECTING, S_BANNER, S_EHLO, S_MAIL, S_RCPT, S_DATA, S_BODY, S_RSET,
	  S_QUIT };

struct sess {
	enum st st;
	int fd;
	int pipelining;		/* server offered it and we use it */
	int harvest;		/* this session sends only invalid recipients */
	unsigned n_rcpts;	/* recipients per transaction in this session */
	unsigned msg;		/* transactions done */
	unsigned rcpt_next;	/* next RCPT to send (non-pipelined) */
	unsigned replies_due;	/* RCPT replies still expected */
	unsigned rcpt_idx;	/* index of the next RCPT reply */
	unsigned accepted;	/* RCPTs accepted in this transaction */
	uint64_t t_mail;	/* when MAIL was sent */
	uint64_t t_last;	/* last activity */
	uint8_t valid[LOAD_MAX_RCPTS];
	char rcpt[LOAD_MAX_RCPTS][48];
	char in[LOAD_IN_MAX];
	size_t in_len;
	char *out;
	size_t out_len, out_off;
};

struct load {
	const struct smtpload_cfg *c;
	struct smtpload_result *r;
	struct sess *s;
	int ep;
	unsigned started, live;
	uint64_t rnd;
	double *lat;
	unsigned nlat;
	uint64_t lat_seen;
	struct sockaddr_storage sa;
	socklen_t salen;
};

static uint64_t xrand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

void smtpload_cfg_default(struct smtpload_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->server = "127.0.0.1";
	c->port = 25;
	c->concurrency = 50;
	c->sessions = 500;
	c->messages = 1;
	c->rcpts = 20;
	c->invalid_share = 0.9;
	c->valid_users = 100;
	c->domain = "example.test";
	c->pipelining = 1;
	c->legit_rcpts = 2;
	c->timeout_ms = 10000;
	c->seed = 0x9e3779b97f4a7c15ull;
}

__attribute__((format(printf, 2, 3))) static void fail_note(struct load *l, const char *fmt,
								 ...)
{
	if (l->r->first_error[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->r->first_error, sizeof(l->r->first_error), fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 2, 3))) static void queue_out(struct sess *s, const char *fmt,
								 ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(s->out + s->out_len, LOAD_OUT_MAX - s->out_len, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < LOAD_OUT_MAX - s->out_len)
		s->out_len += (size_t)n;
}

static int flush_out(struct load *l, struct sess *s)
{
	while (s->out_off < s->out_len) {
		ssize_t n = send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN) {
				struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT,
							 .data.ptr = s};
				epoll_ctl(l->ep, EPOLL_CTL_MOD, s->fd, &ev);
				return 0;
			}
			return -errno;
		}
		s->out_off += (size_t)n;
	}
	s->out_len = s->out_off = 0;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
	epoll_ctl(l->ep, EPOLL_CTL_MOD, s->fd, &ev);
	return 0;
}

static void sess_end(struct load *l, struct sess *s, int ok)
{
	if (s->fd >= 0) {
		epoll_ctl(l->ep, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
	}
	s->fd = -1;
	s->st = S_FREE;
	l->live--;
	if (ok)
		l->r->sessions_ok++;
	else
		l->r->sessions_failed++;
}

static void sess_start(struct load *l, struct sess *s)
{
	l->started++;
	l->live++;
	s->harvest = 0;
	s->n_rcpts = l->c->rcpts;
	if (l->c->invalid_by_session) {
		/* P(attack session) so that invalid_share of the RCPTs are invalid */
		double f = l->c->invalid_share, m = l->c->rcpts, g = l->c->legit_rcpts;
		double p = f >= 1 ? 1 : f * g / (f * g + (1 - f) * m);
		/* exactly that share of the sessions, spread evenly: every run and
		 * every compared target gets the same mix */
		uint64_t k = l->started - 1;
		s->harvest = (uint64_t)((double)(k + 1) * p) > (uint64_t)((double)k * p);
		if (!s->harvest)
			s->n_rcpts = l->c->legit_rcpts;
	}
	s->msg = 0;
	s->in_len = 0;
	s->out_len = s->out_off = 0;
	s->fd = socket(l->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		fail_note(l, "socket: %s", strerror(errno));
		s->st = S_CONNECTING;
		sess_end(l, s, 0);
		return;
	}
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, (struct sockaddr *)&l->sa, l->salen) != 0 && errno != EINPROGRESS) {
		fail_note(l, "connect: %s", strerror(errno));
		sess_end(l, s, 0);
		return;
	}
	s->st = S_CONNECTING;
	s->t_last = bench_now_ns();
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
	epoll_ctl(l->ep, EPOLL_CTL_ADD, s->fd, &ev);
}

static void send_mail(struct load *l, struct sess *s)
{
	const struct smtpload_cfg *c = l->c;
	s->accepted = 0;
	s->rcpt_idx = 0;
	s->rcpt_next = 0;
	for (unsigned i = 0; i < s->n_rcpts; i++) {
		int invalid = c->invalid_by_session
				      ? s->harvest
				      : (double)(xrand(&l->rnd) % 1000000) / 1e6 < c->invalid_share;
		s->valid[i] = (uint8_t)!invalid;
		if (invalid)
			snprintf(s->rcpt[i], sizeof(s->rcpt[i]), "nx%012llx",
				 (unsigned long long)(xrand(&l->rnd) & 0xffffffffffffull));
		else
			snprintf(s->rcpt[i], sizeof(s->rcpt[i]), "user%u",
				 (unsigned)(xrand(&l->rnd) % c->valid_users));
	}
	queue_out(s, "MAIL FROM:<%s>\r\n", "load@client.test");
	s->t_mail = bench_now_ns();
	if (s->pipelining) {
		for (unsigned i = 0; i < s->n_rcpts; i++)
			queue_out(s, "RCPT TO:<%s@%s>\r\n", s->rcpt[i], c->domain);
		s->rcpt_next = s->n_rcpts;
	}
	s->replies_due = s->n_rcpts;
	s->st = S_MAIL;
}

static void send_rcpt(struct load *l, struct sess *s)
{
	unsigned i = s->rcpt_next++;
	queue_out(s, "RCPT TO:<%s@%s>\r\n", s->rcpt[i], l->c->domain);
}

static void next_txn_or_quit(struct load *l, struct sess *s)
{
	s->msg++;
	if (s->msg < l->c->messages) {
		send_mail(l, s);
	} else {
		queue_out(s, "%s", "QUIT\r\n");
		s->st = S_QUIT;
	}
}

static void lat_add(struct load *l, double ms)
{
	l->lat_seen++;
	if (l->nlat < LOAD_LAT_SAMPLES)
		l->lat[l->nlat++] = ms;
	else {
		uint64_t j = xrand(&l->rnd) % l->lat_seen;
		if (j < LOAD_LAT_SAMPLES)
			l->lat[j] = ms;
	}
}

/* One complete reply (code, and whether PIPELINING appeared in it). */
static int on_reply(struct load *l, struct sess *s, int code, int has_pipelining)
{
	struct smtpload_result *r = l->r;
	switch (s->st) {
	case S_BANNER:
		if (code != 220)
			return -1;
		queue_out(s, "EHLO %s\r\n", "client.test");
		s->st = S_EHLO;
		return 0;
	case S_EHLO:
		if (code != 250)
			return -1;
		s->pipelining = l->c->pipelining && has_pipelining;
		send_mail(l, s);
		return 0;
	case S_MAIL:
		if (code / 100 != 2)
			return -1;
		s->st = S_RCPT;
		if (!s->pipelining)
			send_rcpt(l, s);
		return 0;
	case S_RCPT: {
		unsigned i = s->rcpt_idx++;
		r->rcpt_sent++;
		if (s->valid[i])
			r->rcpt_valid_sent++;
		if (code / 100 == 2) {
			r->rcpt_2xx++;
			s->accepted++;
			if (s->valid[i])
				r->rcpt_valid_2xx++;
		} else if (code / 100 == 4) {
			r->rcpt_4xx++;
		} else {
			r->rcpt_5xx++;
			if (!s->valid[i])
				r->rcpt_invalid_5xx++;
		}
		if (--s->replies_due) {
			if (!s->pipelining)
				send_rcpt(l, s);
			return 0;
		}
		lat_add(l, (double)(bench_now_ns() - s->t_mail) / 1e6);
		r->messages_sent++;
		if (s->accepted) {
			queue_out(s, "%s", "DATA\r\n");
			s->st = S_DATA;
		} else {
			queue_out(s, "%s", "RSET\r\n");
			s->st = S_RSET;
		}
		return 0;
	}
	case S_DATA:
		if (code != 354)
			return -1;
		queue_out(s, "%s", "From: <load@client.test>\r\nSubject: load\r\n\r\n"
				   "rcptgate load generator message\r\n.\r\n");
		s->st = S_BODY;
		return 0;
	case S_BODY:
		if (code / 100 == 2)
			r->messages_accepted++;
		next_txn_or_quit(l, s);
		return 0;
	case S_RSET:
		if (code / 100 != 2)
			return -1;
		next_txn_or_quit(l, s);
		return 0;
	case S_QUIT:
		return 1;
	default:
		return -1;
	}
}

/* Parse complete replies out of s->in; returns <0 on failure, 1 when done. */
static int parse_replies(struct load *l, struct sess *s)
{
	size_t start = 0, pos = 0;
	int has_pipe = 0;
	while (pos < s->in_len) {
		char *nl = memchr(s->in + pos, '\n', s->in_len - pos);
		if (!nl)
			break;
		size_t len = (size_t)(nl - (s->in + pos));
		char *line = s->in + pos;
		if (len >= 4 && !memcmp(line + 4, "PIPELINING", 10 < len - 4 ? 10 : len - 4))
			has_pipe = 1;
		if (len < 3) {
			fail_note(l, "short reply line");
			return -1;
		}
		int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		pos += len + 1;
		if (len > 3 && line[3] == '-')
			continue;
		int rc = on_reply(l, s, code, has_pipe);
		has_pipe = 0;
		start = pos;
		if (rc < 0) {
			char msg[64];
			snprintf(msg, sizeof(msg), "%.*s", (int)(len < 60 ? len : 60), line);
			fail_note(l, "unexpected reply: %s", msg);
			return -1;
		}
		if (rc == 1)
			return 1;
	}
	/* keep an unfinished reply (all lines since the last complete one) */
	memmove(s->in, s->in + start, s->in_len - start);
	s->in_len -= start;
	if (s->in_len == LOAD_IN_MAX) {
		fail_note(l, "reply over %u bytes", LOAD_IN_MAX);
		return -1;
	}
	return 0;
}

static void on_event(struct load *l, struct sess *s, uint32_t ev)
{
	s->t_last = bench_now_ns();
	if (s->st == S_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			fail_note(l, "connect: %s", strerror(err));
			sess_end(l, s, 0);
			return;
		}
		s->st = S_BANNER;
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = s};
		epoll_ctl(l->ep, EPOLL_CTL_MOD, s->fd, &e);
		if (!(ev & EPOLLIN))
			return;
	}
	if (ev & EPOLLIN) {
		ssize_t n = recv(s->fd, s->in + s->in_len, LOAD_IN_MAX - s->in_len, 0);
		if (n <= 0) {
			if (n < 0 && errno == EAGAIN)
				return;
			fail_note(l, "connection closed in state %s", n == 0 ? "(eof)" : strerror(errno));
			sess_end(l, s, 0);
			return;
		}
		s->in_len += (size_t)n;
		int rc = parse_replies(l, s);
		if (rc != 0) {
			sess_end(l, s, rc > 0);
			return;
		}
	}
	if (flush_out(l, s) < 0) {
		fail_note(l, "send: %s", strerror(errno));
		sess_end(l, s, 0);
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int smtpload_run(const struct smtpload_cfg *c, struct smtpload_result *r)
{
	struct load l = {.c = c, .r = r, .rnd = c->seed ? c->seed : 1};
	memset(r, 0, sizeof(*r));
	if (c->rcpts < 1 || c->rcpts > LOAD_MAX_RCPTS || c->concurrency < 1 || !c->valid_users ||
	    (c->invalid_by_session && (c->legit_rcpts < 1 || c->legit_rcpts > LOAD_MAX_RCPTS)))
		return -EINVAL;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&l.sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&l.sa;
	if (inet_pton(AF_INET, c->server, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(c->port);
		l.salen = sizeof(*s4);
	} else if (inet_pton(AF_INET6, c->server, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(c->port);
		l.salen = sizeof(*s6);
	} else {
		return -EINVAL;
	}
	l.ep = epoll_create1(EPOLL_CLOEXEC);
	l.s = calloc(c->concurrency, sizeof(*l.s));
	l.lat = calloc(LOAD_LAT_SAMPLES, sizeof(double));
	char *outs = calloc(c->concurrency, LOAD_OUT_MAX);
	if (l.ep < 0 || !l.s || !l.lat || !outs)
		return -ENOMEM;
	for (unsigned i = 0; i < c->concurrency; i++) {
		l.s[i].fd = -1;
		l.s[i].out = outs + (size_t)i * LOAD_OUT_MAX;
	}
	uint64_t t0 = bench_now_ns();
	for (unsigned i = 0; i < c->concurrency && l.started < c->sessions; i++)
		sess_start(&l, &l.s[i]);
	struct epoll_event evs[256];
	uint64_t last_scan = t0;
	while (l.live > 0) {
		int n = epoll_wait(l.ep, evs, 256, 50);
		for (int i = 0; i < n; i++)
			on_event(&l, evs[i].data.ptr, evs[i].events);
		uint64_t now = bench_now_ns();
		if (now - last_scan > 50000000ull) {
			last_scan = now;
			for (unsigned i = 0; i < c->concurrency; i++)
				if (l.s[i].st != S_FREE &&
				    now - l.s[i].t_last > (uint64_t)c->timeout_ms * 1000000ull) {
					fail_note(&l, "timeout waiting for a reply");
					sess_end(&l, &l.s[i], 0);
				}
		}
		for (unsigned i = 0; i < c->concurrency && l.started < c->sessions; i++)
			if (l.s[i].st == S_FREE)
				sess_start(&l, &l.s[i]);
	}
	r->seconds = (double)(bench_now_ns() - t0) / 1e9;
	if (l.nlat) {
		qsort(l.lat, l.nlat, sizeof(double), cmp_d);
		r->p50_ms = l.lat[l.nlat / 2];
		r->p99_ms = l.lat[(size_t)(l.nlat * 0.99)];
	}
	close(l.ep);
	free(l.s);
	free(l.lat);
	free(outs);
	return 0;
}

void smtpload_print(FILE *out, const struct smtpload_result *r);
void smtpload_print(FILE *out, const struct smtpload_result *r)
{
	fprintf(out,
		"%.2f s: %llu RCPT answered (%.0f/s): %llu 2xx, %llu 4xx, %llu 5xx; "
		"valid accepted %llu/%llu, invalid refused %llu/%llu; %llu messages "
		"(%llu accepted); sessions %llu ok, %llu failed; txn p50 %.2f ms p99 %.2f ms%s%s\n",
		r->seconds, (unsigned long long)r->rcpt_sent, r->rcpt_sent / r->seconds,
		(unsigned long long)r->rcpt_2xx, (unsigned long long)r->rcpt_4xx,
		(unsigned long long)r->rcpt_5xx, (unsigned long long)r->rcpt_valid_2xx,
		(unsigned long long)r->rcpt_valid_sent, (unsigned long long)r->rcpt_invalid_5xx,
		(unsigned long long)(r->rcpt_sent - r->rcpt_valid_sent),
		(unsigned long long)r->messages_sent, (unsigned long long)r->messages_accepted,
		(unsigned long long)r->sessions_ok, (unsigned long long)r->sessions_failed,
		r->p50_ms, r->p99_ms, r->first_error[0] ? "; first error: " : "",
		r->first_error);
}

/* rcptgate-bench smtpload: the generator on its own. */
int bench_smtpload(int argc, char **argv)
{
	struct smtpload_cfg c;
	smtpload_cfg_default(&c);
	int json = 0;
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"server", required_argument, NULL, 'S'},
		{"port", required_argument, NULL, 'p'},
		{"concurrency", required_argument, NULL, 'c'},
		{"sessions", required_argument, NULL, 's'},
		{"messages", required_argument, NULL, 'm'},
		{"rcpts", required_argument, NULL, 'r'},
		{"invalid-share", required_argument, NULL, 'i'},
		{"valid-users", required_argument, NULL, 'v'},
		{"domain", required_argument, NULL, 'd'},
		{"no-pipelining", no_argument, NULL, 'P'},
		{"invalid-by-session", no_argument, NULL, 'B'},
		{"legit-rcpts", required_argument, NULL, 'L'},
		{"timeout-ms", required_argument, NULL, 't'},
		{NULL, 0, NULL, 0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'j': json = 1; break;
		case 'S': c.server = optarg; break;
		case 'p': c.port = (uint16_t)atoi(optarg); break;
		case 'c': c.concurrency = (unsigned)atoi(optarg); break;
		case 's': c.sessions = (unsigned)atoi(optarg); break;
		case 'm': c.messages = (unsigned)atoi(optarg); break;
		case 'r': c.rcpts = (unsigned)atoi(optarg); break;
		case 'i': c.invalid_share = atof(optarg); break;
		case 'v': c.valid_users = (unsigned)atoi(optarg); break;
		case 'd': c.domain = optarg; break;
		case 'P': c.pipelining = 0; break;
		case 'B': c.invalid_by_session = 1; break;
		case 'L': c.legit_rcpts = (unsigned)atoi(optarg); break;
		case 't': c.timeout_ms = (unsigned)atoi(optarg); break;
		default:
			fprintf(stderr, "usage: rcptgate-bench smtpload --server IP [--port P] "
					"[--concurrency C] [--sessions S] [--messages M] [--rcpts R] "
					"[--invalid-share F] [--valid-users N] [--domain D] "
					"[--no-pipelining] [--invalid-by-session [--legit-rcpts N]] [--json]\n");
			return 2;
		}
	}
	struct smtpload_result r;
	int rc = smtpload_run(&c, &r);
	if (rc) {
		fprintf(stderr, "smtpload: %s\n", strerror(-rc));
		return 1;
	}
	smtpload_print(stdout, &r);
	if (json)
		printf("{\"bench\":\"smtpload\",\"rcpt_per_s\":%.1f,\"rcpt_sent\":%llu,"
		       "\"rcpt_2xx\":%llu,\"rcpt_4xx\":%llu,\"rcpt_5xx\":%llu,"
		       "\"sessions_ok\":%llu,\"sessions_failed\":%llu,\"seconds\":%.3f,"
		       "\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n",
		       r.rcpt_sent / r.seconds, (unsigned long long)r.rcpt_sent,
		       (unsigned long long)r.rcpt_2xx, (unsigned long long)r.rcpt_4xx,
		       (unsigned long long)r.rcpt_5xx, (unsigned long long)r.sessions_ok,
		       (unsigned long long)r.sessions_failed, r.seconds, r.p50_ms, r.p99_ms);
	return r.sessions_failed ? 1 : 0;
}
