/*
 * smtpdest.h — a scripted SMTP destination for the control-plane tests: a
 * child process on a loopback port that serves one session, advertises
 * PIPELINING and answers every RCPT with the reply it is given.
 */
#ifndef RG_TEST_SMTPDEST_H
#define RG_TEST_SMTPDEST_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

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

#endif
