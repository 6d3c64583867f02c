/*
 * loop.c — the event loop (see loop.h): one epoll instance, level-triggered
 * fds with a generation each (a callback that closes and re-opens an fd in
 * the middle of a batch does not get the old fd's events), timers in a
 * small array (few: housekeeping, sweeps, waits), a clock read once per
 * wake-up, and the turn hooks run after the fds and timers.
 * Written by hand rather than with libevent: the whole of it is this page,
 * it needs no allocation per event, and the generation check above is what
 * the callout engine relies on when it reconnects inside a callback.
 * Thread: main thread only.
 */
#include "loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 256

struct turn_hook {
	loop_timer_cb cb;
	void *arg;
};



struct fd_slot {
	loop_fd_cb cb;
	void *arg;
	uint32_t gen;
	bool used;
};

struct timer {
	uint64_t id, when, interval;
	loop_timer_cb cb;
	void *arg;
	bool active;
};

static struct {
	int epfd;
	struct fd_slot *fds;
	size_t nfds;
	uint32_t fd_gen;
	struct timer *timers;
	size_t ntimers, timers_cap;
	uint64_t next_timer_id;
	uint64_t now_ms, wall_s;
	bool loop_ready;
	struct turn_hook turn[LOOP_MAX_TURN_HOOKS];
	unsigned nturn;
} lp = {.epfd = -1};

/* ---------------------------------------------------------------------- */
/* clocks */

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void clock_update(void)
{
	lp.now_ms = mono_ms();
	lp.wall_s = (uint64_t)time(NULL);
}

uint64_t loop_now_ms(void)
{
	if (!lp.now_ms)
		clock_update();
	return lp.now_ms;
}

uint64_t loop_wall_s(void)
{
	if (!lp.wall_s)
		clock_update();
	return lp.wall_s;
}

/* ---------------------------------------------------------------------- */
/* fds */

int loop_add_fd(int fd, uint32_t events, loop_fd_cb cb, void *arg)
{
	if (fd < 0 || !cb)
		return -EINVAL;
	if (lp.epfd < 0)
		return -ENOTCONN;
	if ((size_t)fd >= lp.nfds) {
		size_t n = lp.nfds ? lp.nfds : 64;
		while (n <= (size_t)fd)
			n *= 2;
		struct fd_slot *ns = realloc(lp.fds, n * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		memset(ns + lp.nfds, 0, (n - lp.nfds) * sizeof(*ns));
		lp.fds = ns;
		lp.nfds = n;
	}
	if (lp.fds[fd].used)
		return -EEXIST;
	uint32_t gen = ++lp.fd_gen;
	struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)gen << 32 | (uint32_t)fd};
	if (epoll_ctl(lp.epfd, EPOLL_CTL_ADD, fd, &ev))
		return -errno;
	lp.fds[fd] = (struct fd_slot){.cb = cb, .arg = arg, .gen = gen, .used = true};
	return 0;
}

int loop_mod_fd(int fd, uint32_t events)
{
	if (fd < 0 || (size_t)fd >= lp.nfds || !lp.fds[fd].used)
		return -ENOENT;
	struct epoll_event ev = {.events = events,
				 .data.u64 = (uint64_t)lp.fds[fd].gen << 32 | (uint32_t)fd};
	return epoll_ctl(lp.epfd, EPOLL_CTL_MOD, fd, &ev) ? -errno : 0;
}

int loop_del_fd(int fd)
{
	if (fd < 0 || (size_t)fd >= lp.nfds || !lp.fds[fd].used)
		return -ENOENT;
	epoll_ctl(lp.epfd, EPOLL_CTL_DEL, fd, NULL);
	lp.fds[fd].used = false;
	lp.fds[fd].gen = 0;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* timers */

uint64_t loop_timer_add(uint64_t delay_ms, uint64_t interval_ms, loop_timer_cb cb, void *arg)
{
	if (!cb)
		return 0;
	size_t slot = lp.ntimers;
	for (size_t i = 0; i < lp.ntimers; i++)
		if (!lp.timers[i].active) {
			slot = i;
			break;
		}
	if (slot == lp.ntimers) {
		if (lp.ntimers == lp.timers_cap) {
			size_t n = lp.timers_cap ? lp.timers_cap * 2 : 16;
			struct timer *nt = realloc(lp.timers, n * sizeof(*nt));
			if (!nt)
				return 0;
			lp.timers = nt;
			lp.timers_cap = n;
		}
		lp.ntimers++;
	}
	uint64_t id = ++lp.next_timer_id;
	lp.timers[slot] = (struct timer){.id = id, .when = loop_now_ms() + delay_ms,
					 .interval = interval_ms, .cb = cb, .arg = arg,
					 .active = true};
	return id;
}

void loop_timer_cancel(uint64_t id)
{
	for (size_t i = 0; i < lp.ntimers; i++)
		if (lp.timers[i].active && lp.timers[i].id == id) {
			lp.timers[i].active = false;
			return;
		}
}

static void run_timers(void)
{
	uint64_t now = lp.now_ms;
	size_t n = lp.ntimers; /* timers added by callbacks wait for the next turn */
	for (size_t i = 0; i < n; i++) {
		struct timer *t = &lp.timers[i];
		if (!t->active || t->when > now)
			continue;
		loop_timer_cb cb = t->cb;
		void *arg = t->arg;
		if (t->interval)
			t->when = now + t->interval;
		else
			t->active = false;
		cb(arg);
		/* the array may have moved */
	}
	while (lp.ntimers && !lp.timers[lp.ntimers - 1].active)
		lp.ntimers--;
}

static int next_timeout(int max_ms)
{
	uint64_t now = loop_now_ms();
	int t = max_ms;
	for (size_t i = 0; i < lp.ntimers; i++) {
		if (!lp.timers[i].active)
			continue;
		int64_t d = (int64_t)lp.timers[i].when - (int64_t)now;
		if (d < 0)
			d = 0;
		if (t < 0 || d < t)
			t = (int)d;
	}
	return t;
}

/* ---------------------------------------------------------------------- */
/* the loop */

int loop_init(void)
{
	if (lp.loop_ready)
		return 0;
	lp.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (lp.epfd < 0)
		return -errno;
	lp.loop_ready = true;
	clock_update();
	return 0;
}

void loop_fini(void)
{
	if (lp.epfd >= 0)
		close(lp.epfd);
	lp.epfd = -1;
	free(lp.fds);
	lp.fds = NULL;
	lp.nfds = 0;
	free(lp.timers);
	lp.timers = NULL;
	lp.ntimers = lp.timers_cap = 0;
	lp.nturn = 0;
	lp.loop_ready = false;
}

int loop_on_turn(loop_timer_cb cb, void *arg)
{
	if (!cb || lp.nturn == LOOP_MAX_TURN_HOOKS)
		return -ENOSPC;
	lp.turn[lp.nturn++] = (struct turn_hook){.cb = cb, .arg = arg};
	return 0;
}

int loop_once(int timeout_ms)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	clock_update();
	int tmo = next_timeout(timeout_ms);
	int n = epoll_wait(lp.epfd, evs, LOOP_MAX_EVENTS, tmo);
	if (n < 0) {
		if (errno != EINTR)
			return -errno;
		n = 0;
	}
	clock_update();
	for (int i = 0; i < n; i++) {
		int fd = (int)(uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		/* skip fds closed (or re-used) by an earlier callback of this batch */
		if ((size_t)fd >= lp.nfds || !lp.fds[fd].used || lp.fds[fd].gen != gen)
			continue;
		lp.fds[fd].cb(fd, evs[i].events, lp.fds[fd].arg);
	}
	run_timers();
	for (unsigned i = 0; i < lp.nturn; i++)
		lp.turn[i].cb(lp.turn[i].arg);
	return n;
}


/* ---------------------------------------------------------------------- */
/* the names the modules use (core.h) */

int daemon_add_fd(int fd, uint32_t events, loop_fd_cb cb, void *arg)
{
	return loop_add_fd(fd, events, cb, arg);
}

int daemon_mod_fd(int fd, uint32_t events)
{
	return loop_mod_fd(fd, events);
}

int daemon_del_fd(int fd)
{
	return loop_del_fd(fd);
}

uint64_t daemon_timer_add(uint64_t delay_ms, uint64_t interval_ms, loop_timer_cb cb, void *arg)
{
	return loop_timer_add(delay_ms, interval_ms, cb, arg);
}

void daemon_timer_cancel(uint64_t id)
{
	loop_timer_cancel(id);
}

uint64_t daemon_now_ms(void)
{
	return loop_now_ms();
}

uint64_t daemon_wall_s(void)
{
	return loop_wall_s();
}
