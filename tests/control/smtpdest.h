/*
 * smtpdest.h — a scripted SMTP destination for the control-plane tests: a
 * child process on a loopback port that serves one session, advertises
 * PIPELINING and answers every RCPT with the reply it is given.
 *
 * sdest_*: the same destination as a thread that serves any number of
 * sessions one after the other, with a scripted banner, RCPT replies chosen
 * by rules (the first rule whose text occurs in the RCPT line), an optional
 * "too many recipients" limit per transaction, and counters the test reads:
 * sessions, RCPTs, RCPTs per rule.
 */
#ifndef RG_TEST_SMTPDEST_H
#define RG_TEST_SMTPDEST_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <stdbool.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/ssl.h>

/* Start it; *port gets its port. rcpt_reply ends in CRLF. */
static inline pid_t smtp_dest(unsigned *port, const char *rcpt_reply)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sl = sizeof(sin);
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
	pid_t pid;

	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(lfd, 4), 0);
	getsockname(lfd, (struct sockaddr *)&sin, &sl);
	*port = ntohs(sin.sin_port);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char line[1024];
		FILE *in, *out;
		int fd;

		alarm(20);
		fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			_exit(1);
		in = fdopen(fd, "r");
		out = fdopen(dup(fd), "w");
		fputs("220 dest.example.test ESMTP\r\n", out);
		fflush(out);
		while (fgets(line, sizeof(line), in)) {
			if (!strncasecmp(line, "EHLO", 4))
				fputs("250-dest.example.test\r\n250 PIPELINING\r\n", out);
			else if (!strncasecmp(line, "MAIL", 4))
				fputs("250 2.1.0 Ok\r\n", out);
			else if (!strncasecmp(line, "RCPT", 4))
				fputs(rcpt_reply, out);
			else if (!strncasecmp(line, "RSET", 4))
				fputs("250 2.0.0 Ok\r\n", out);
			else if (!strncasecmp(line, "QUIT", 4)) {
				fputs("221 2.0.0 Bye\r\n", out);
				fflush(out);
				break;
			} else
				fputs("502 5.5.2 Error: command not recognized\r\n", out);
			fflush(out);
		}
		_exit(0);
	}
	close(lfd);
	return pid;
}

#define SDEST_RULES 8

struct sdest_rule {
	const char *match;	/* occurs in the RCPT line */
	const char *reply;	/* CRLF-terminated, may be multi-line */
};

struct sdest {
	/* script (set before sdest_start) */
	const char *banner;		/* NULL = "220 dest.example.test ESMTP" */
	const char *ehlo;		/* NULL = PIPELINING advertised */
	struct sdest_rule rule[SDEST_RULES];
	const char *rcpt_default;	/* NULL = "250 2.1.5 Ok" */
	unsigned tx_limit;		/* > 0: RCPTs past this many per transaction: 452 4.5.3 */
	unsigned tx_limit_sessions;	/* tx_limit in the first N sessions only (0 = all) */
	const char *ip;			/* NULL = 127.0.0.1 */
	unsigned banner_delay_ms;	/* greet this late */
	SSL_CTX *tls;			/* offer STARTTLS with this server context */
	bool tls_required;		/* MAIL before STARTTLS: 530 5.7.0 */
	bool refuse_null_sender;	/* MAIL FROM:<>: 550 5.7.1 (as many servers do) */
	unsigned want_port;		/* 0 = any free port */
	/* state */
	int lfd;
	unsigned port;
	pthread_t thr;
	/* counters (read with __atomic_load_n) */
	unsigned sessions, rcpts, hits[SDEST_RULES], too_many;
	char mail[256];			/* the last MAIL command (read after sdest_stop) */
	unsigned tls_sessions;		/* sessions that completed STARTTLS */
	char peer[64];			/* the last client's address */
};

static inline int sdest_send(SSL *ssl, int fd, const char *r)
{
	if (ssl)
		return SSL_write(ssl, r, (int)strlen(r)) > 0 ? 0 : -1;
	return send(fd, r, strlen(r), MSG_NOSIGNAL) < 0 ? -1 : 0;
}

static inline void sdest_session(struct sdest *d, int fd)
{
	char line[1100];
	size_t len = 0;
	unsigned tx_rcpts = 0;
	SSL *ssl = NULL;
	char ehlo_tls[256];
	unsigned sess = __atomic_add_fetch(&d->sessions, 1, __ATOMIC_SEQ_CST);
	bool limit = d->tx_limit && (!d->tx_limit_sessions || sess <= d->tx_limit_sessions);
	const char *banner = d->banner ? d->banner : "220 dest.example.test ESMTP\r\n";

	if (d->banner_delay_ms)
		usleep(d->banner_delay_ms * 1000u);
	if (send(fd, banner, strlen(banner), MSG_NOSIGNAL) < 0)
		return;
	for (;;) {
		char c;
		if (ssl ? SSL_read(ssl, &c, 1) != 1 : recv(fd, &c, 1, 0) != 1)
			break;
		if (c != '\n') {
			if (len < sizeof(line) - 1)
				line[len++] = c;
			continue;
		}
		line[len] = 0;
		len = 0;
		const char *r = "502 5.5.2 Error: command not recognized\r\n";
		if (!strncasecmp(line, "EHLO", 4) && d->tls && !ssl) {
			snprintf(ehlo_tls, sizeof(ehlo_tls), "250-dest.example.test\r\n250-STARTTLS\r\n"
				 "250 PIPELINING\r\n");
			r = ehlo_tls;
		} else if (!strncasecmp(line, "EHLO", 4))
			r = d->ehlo ? d->ehlo : "250-dest.example.test\r\n250 PIPELINING\r\n";
		else if (!strncasecmp(line, "STARTTLS", 8) && d->tls && !ssl) {
			if (sdest_send(NULL, fd, "220 2.0.0 Ready to start TLS\r\n"))
				break;
			ssl = SSL_new(d->tls);
			SSL_set_fd(ssl, fd);
			if (SSL_accept(ssl) != 1)
				break;
			__atomic_add_fetch(&d->tls_sessions, 1, __ATOMIC_SEQ_CST);
			continue;
		} else if (!strncasecmp(line, "MAIL", 4) && d->tls_required && !ssl)
			r = "530 5.7.0 Must issue a STARTTLS command first\r\n";
		else if (!strncasecmp(line, "MAIL FROM:<>", 12) && d->refuse_null_sender)
			r = "550 5.7.1 <>: Sender address rejected: null sender not accepted\r\n";
		else if (!strncasecmp(line, "HELO", 4))
			r = "250 dest.example.test\r\n";
		else if (!strncasecmp(line, "MAIL", 4)) {
			snprintf(d->mail, sizeof(d->mail), "%.*s", (int)strcspn(line, "\r"), line);
			tx_rcpts = 0;
			r = "250 2.1.0 Ok\r\n";
		} else if (!strncasecmp(line, "RSET", 4)) {
			tx_rcpts = 0;
			r = "250 2.0.0 Ok\r\n";
		} else if (!strncasecmp(line, "QUIT", 4)) {
			sdest_send(ssl, fd, "221 2.0.0 Bye\r\n");
			break;
		} else if (!strncasecmp(line, "RCPT", 4)) {
			__atomic_add_fetch(&d->rcpts, 1, __ATOMIC_SEQ_CST);
			r = d->rcpt_default ? d->rcpt_default : "250 2.1.5 Ok\r\n";
			for (unsigned i = 0; i < SDEST_RULES && d->rule[i].match; i++)
				if (strstr(line, d->rule[i].match)) {
					__atomic_add_fetch(&d->hits[i], 1, __ATOMIC_SEQ_CST);
					r = d->rule[i].reply;
					break;
				}
			if (limit && ++tx_rcpts > d->tx_limit) {
				__atomic_add_fetch(&d->too_many, 1, __ATOMIC_SEQ_CST);
				r = "452 4.5.3 Error: too many recipients\r\n";
			}
		}
		if (sdest_send(ssl, fd, r))
			break;
	}
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
}

/* A server context with a throw-away self-signed certificate (openssl req
 * into dir). */
static inline SSL_CTX *sdest_tls_ctx(const char *dir)
{
	char cmd[1000], crt[300], key[300];
	snprintf(crt, sizeof(crt), "%s/dest.crt", dir);
	snprintf(key, sizeof(key), "%s/dest.key", dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=dest.example.test "
		 "-keyout '%s' -out '%s' 2>/dev/null", key, crt);
	cr_assert_eq(system(cmd), 0, "openssl req");
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	cr_assert_not_null(ctx);
	cr_assert_eq(SSL_CTX_use_certificate_file(ctx, crt, SSL_FILETYPE_PEM), 1);
	cr_assert_eq(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
	return ctx;
}

static inline void *sdest_main(void *arg)
{
	struct sdest *d = arg;
	for (;;) {
		struct sockaddr_in6 peer;
		socklen_t pl = sizeof(peer);
		int fd = accept(d->lfd, (struct sockaddr *)&peer, &pl);
		if (fd < 0)
			return NULL;
		if (peer.sin6_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, d->peer,
				  sizeof(d->peer));
		sdest_session(d, fd);
		close(fd);
	}
}

/* Start the thread; d->port gets the port. */
static inline void sdest_start(struct sdest *d)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001),
				  .sin_port = htons((uint16_t)d->want_port)};
	socklen_t sl = sizeof(sin);
	int one = 1;

	if (d->ip)
		cr_assert_eq(inet_pton(AF_INET, d->ip, &sin.sin_addr), 1);
	d->lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(d->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert_eq(bind(d->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(d->lfd, 16), 0);
	getsockname(d->lfd, (struct sockaddr *)&sin, &sl);
	d->port = ntohs(sin.sin_port);
	cr_assert_eq(pthread_create(&d->thr, NULL, sdest_main, d), 0);
}

/* Stop accepting; returns once the thread is gone (the client side must
 * have closed its sessions first). */
static inline void sdest_stop(struct sdest *d)
{
	shutdown(d->lfd, SHUT_RDWR);
	close(d->lfd);
	pthread_join(d->thr, NULL);
}

#endif
