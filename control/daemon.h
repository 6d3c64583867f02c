/*
 * daemon.h — rcptgated's life cycle (start-up, the event loop, shut-down),
 * for main.c and for tests that drive the loop themselves.  The API the
 * other modules use is in core.h.
 * Thread: main thread only.
 */
#ifndef RG_DAEMON_H
#define RG_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

struct daemon_opts {
	const char *config_path;
	bool log_stderr;	/* force logging to stderr too */
	const struct core_service *services;	/* started in order (services.h) */
	unsigned nservices;
};

/* Only the event loop (epoll, timers): enough for the callout engine alone.
 * 0 or -errno. */
int daemon_loop_init(void);
void daemon_loop_fini(void);

/* One turn: wait up to timeout_ms for events, run callbacks and due timers,
 * then the core's per-turn work (rings, callouts, publishing).
 * Returns the number of fd events handled, or -errno. */
int daemon_loop_once(int timeout_ms);

/* Full start-up: config, logging, loop, store, shared memory, table rebuild,
 * lists, callouts, modules.  0 or -errno with err saying why. */
int daemon_init(const struct daemon_opts *o, char *err, size_t errlen);

/* Run until SIGTERM/SIGINT or daemon_stop().  Returns 0. */
int daemon_run(void);
void daemon_stop(void);

/* Tear everything down (store committed, modules stopped). */
void daemon_fini(void);

#endif
