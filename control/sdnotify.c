/*
 * sdnotify.c — see sdnotify.h.  The protocol itself (a datagram to the
 * socket NOTIFY_SOCKET names, abstract or not, with credentials) is
 * libsystemd's sd_notify(); this file decides when to say what.
 * Thread: main thread only.
 */
#include "sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "loop.h"

#ifdef RG_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static uint64_t wd_timer;

static void notify(const char *msg)
{
#ifdef RG_HAVE_SYSTEMD
	sd_notify(0, msg);
#else
	(void)msg;
#endif
}

static void watchdog_ping(void *arg)
{
	(void)arg;
	notify("WATCHDOG=1");
}

int sdnotify_watchdog_start(void)
{
#ifdef RG_HAVE_SYSTEMD
	uint64_t usec = 0;
	/* > 0: asked, for this pid (WATCHDOG_PID, when set, names us) */
	if (sd_watchdog_enabled(0, &usec) <= 0 || !usec)
		return 0;
	uint64_t every_ms = usec / 2000u;
	if (!every_ms)
		every_ms = 1;
	watchdog_ping(NULL);
	wd_timer = loop_timer_add(every_ms, every_ms, watchdog_ping, NULL);
	return wd_timer ? 0 : -ENOMEM;
#else
	return 0;
#endif
}

void sdnotify_watchdog_stop(void)
{
	if (wd_timer)
		loop_timer_cancel(wd_timer);
	wd_timer = 0;
}

void sdnotify_ready(const char *fmt, ...)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "READY=1\nSTATUS=");
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(msg))
		vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	notify(msg);
}

void sdnotify_reloading(void)
{
	notify("RELOADING=1\nSTATUS=reloading the configuration");
}

void sdnotify_stopping(void)
{
	notify("STOPPING=1\nSTATUS=stopping");
}
