/*
 * listen.h — accepting connections for every socket service (the control
 * socket, the policy service): accept4() non-blocking and close-on-exec, and
 * when the process is out of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) the listener is taken out of the event loop for LISTEN_PAUSE_MS
 * instead of waking the level-triggered loop again and again for a
 * connection it cannot take.  The connection waits in the kernel's backlog
 * and is accepted when the pause ends.  Pauses are counted (listen_pauses).
 * Thread: main thread only.
 */
#ifndef RG_LISTEN_H
#define RG_LISTEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define LISTEN_PAUSE_MS 100u

struct listen_state {
	int fd;			/* the listening socket, registered EPOLLIN */
	uint64_t timer;		/* the pause's end, 0 = not paused */
};

/* Accept one connection: its descriptor, or -1 (nothing to accept, an error,
 * or out of descriptors: then the listener pauses). */
int listen_accept(struct listen_state *ls, struct sockaddr *sa, socklen_t *salen);

/* Before closing ls->fd: cancel a pause in progress. */
void listen_forget(struct listen_state *ls);

uint64_t listen_pauses(void);

#endif
