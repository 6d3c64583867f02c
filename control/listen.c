/*
 * listen.c — see listen.h.
 * Thread: main thread only.
 */
#include "listen.h"

#include <errno.h>
#include <sys/epoll.h>

#include "daemon.h"
#include "log.h"

static uint64_t pauses;

static void resume(void *arg)
{
	struct listen_state *ls = arg;
	ls->timer = 0;
	daemon_mod_fd(ls->fd, EPOLLIN);
}

int listen_accept(struct listen_state *ls, struct sockaddr *sa, socklen_t *salen)
{
	int fd = accept4(ls->fd, sa, salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0 || ls->timer)
		return fd;
	if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
		int e = errno;
		ls->timer = daemon_timer_add(LISTEN_PAUSE_MS, 0, resume, ls);
		if (ls->timer) {
			daemon_mod_fd(ls->fd, 0);
			pauses++;
			log_kind(LOG_K_CLIENT, LOG_WARNING,
				 "accept: %s: not accepting for %u ms", e == EMFILE ? "out of descriptors"
				 : e == ENFILE ? "system out of descriptors" : "out of memory",
				 LISTEN_PAUSE_MS);
		}
	}
	return -1;
}

void listen_forget(struct listen_state *ls)
{
	if (ls->timer)
		daemon_timer_cancel(ls->timer);
	ls->timer = 0;
}

uint64_t listen_pauses(void)
{
	return pauses;
}
