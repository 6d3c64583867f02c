/*
 * loop.h — rcptgated's event loop: a leaf every other module uses (the
 * callout engine, the control socket, the policy service, the resolver, XDP,
 * the core) and that calls nobody by name: fds and timers call back what
 * registered them, and the turn hooks (the core's per-turn work) run after
 * each wake-up in the order they were registered.
 * Thread: main thread only.
 */
#ifndef RG_LOOP_H
#define RG_LOOP_H

#include <stdint.h>

#define LOOP_MAX_TURN_HOOKS 4u

/* events are EPOLLIN / EPOLLOUT / ...; the callback gets what epoll reported. */
typedef void (*loop_fd_cb)(int fd, uint32_t events, void *arg);
typedef void (*loop_timer_cb)(void *arg);

/* 0 or -errno (an already initialised loop is kept). */
int loop_init(void);
/* Closes the epoll instance, forgets fds, timers and turn hooks. */
void loop_fini(void);

/* One wake-up: wait up to timeout_ms (less when a timer is due), run the fd
 * callbacks, the due timers, then the turn hooks.  Returns the number of fd
 * events handled, or -errno. */
int loop_once(int timeout_ms);

/* cb(arg) after every wake-up.  0 or -ENOSPC (LOOP_MAX_TURN_HOOKS). */
int loop_on_turn(loop_timer_cb cb, void *arg);

/* Register fd (level-triggered).  0 or -errno. */
int loop_add_fd(int fd, uint32_t events, loop_fd_cb cb, void *arg);
/* Change the events watched for fd.  0 or -errno. */
int loop_mod_fd(int fd, uint32_t events);
/* Unregister fd (call before close()).  0 or -errno. */
int loop_del_fd(int fd);

/* A timer firing after delay_ms, then every interval_ms when interval_ms > 0.
 * Returns an id > 0, or 0 when out of memory. */
uint64_t loop_timer_add(uint64_t delay_ms, uint64_t interval_ms, loop_timer_cb cb, void *arg);
/* Cancel a timer (a no-op for an id that already fired or is unknown). */
void loop_timer_cancel(uint64_t id);

/* CLOCK_MONOTONIC milliseconds, as the loop saw it at this wake-up. */
uint64_t loop_now_ms(void);
/* CLOCK_REALTIME seconds, same wake-up. */
uint64_t loop_wall_s(void);

/* The names the modules use (a test may stub them: tests/bpf/test_xdp.c). */

typedef loop_fd_cb daemon_fd_cb;
typedef loop_timer_cb daemon_timer_cb;

/* Register fd with the loop (level-triggered).  0 or -errno. */
int daemon_add_fd(int fd, uint32_t events, daemon_fd_cb cb, void *arg);
/* Change the events watched for fd.  0 or -errno. */
int daemon_mod_fd(int fd, uint32_t events);
/* Unregister fd (call before close()).  0 or -errno. */
int daemon_del_fd(int fd);

/* A timer firing after delay_ms, then every interval_ms when interval_ms > 0.
 * Returns an id > 0, or 0 when out of memory. */
uint64_t daemon_timer_add(uint64_t delay_ms, uint64_t interval_ms, daemon_timer_cb cb,
			  void *arg);
/* Cancel a timer (a no-op for an id that already fired or is unknown). */
void daemon_timer_cancel(uint64_t id);

/* CLOCK_MONOTONIC milliseconds, as the loop saw it at the start of this turn. */
uint64_t daemon_now_ms(void);
/* CLOCK_REALTIME seconds, same turn. */
uint64_t daemon_wall_s(void);

#endif
