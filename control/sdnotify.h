/*
 * sdnotify.h — rcptgated's reports to its service manager (systemd's
 * Type=notify protocol through libsystemd's sd_notify): READY once the
 * daemon serves, RELOADING/READY around a reload, STOPPING on the way out,
 * STATUS lines, and WATCHDOG pings sent by a timer of the event loop, so a
 * loop that stops turning stops pinging and systemd restarts the daemon.
 * Without NOTIFY_SOCKET (not started by systemd) every call is a no-op;
 * built without libsystemd (meson found none) likewise.
 * Thread: main thread only.
 */
#ifndef RG_SDNOTIFY_H
#define RG_SDNOTIFY_H

/* Start the watchdog pings when the service manager asked for them
 * (WATCHDOG_USEC): a loop timer at half the interval.  0 or -errno. */
int sdnotify_watchdog_start(void);
/* Stop the pings (daemon teardown). */
void sdnotify_watchdog_stop(void);

/* READY=1 with a STATUS line (printf-like). */
void sdnotify_ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* RELOADING=1: a reload started; sdnotify_ready() when it is done. */
void sdnotify_reloading(void);
/* STOPPING=1. */
void sdnotify_stopping(void);

#endif
