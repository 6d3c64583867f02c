/*
 * main.c — rcptgated: parse the command line, start the daemon, run its
 * loop, tear down.  Everything else lives in daemon.c and the modules.
 * Thread: the main thread (the only one besides the resolver helper).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "sdnotify.h"
#include "services.h"

#define DEFAULT_CONFIG "/etc/rcptgate/rcptgated.conf"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: rcptgated [-c FILE] [-t] [-e] [--defaults]\n"
		"  -c, --config FILE  configuration (default " DEFAULT_CONFIG ")\n"
		"  -t, --test         check the configuration and exit (0 = good)\n"
		"  -e, --stderr       log to stderr as well as syslog\n"
		"      --defaults     print every configuration key with its default\n"
		"      --man-keys     the same as man(7) markup (rcptgated.conf(5) is built from it)\n"
		"  -h, --help         this text\n"
		"Runs in the foreground; SIGHUP reloads the configuration, SIGTERM stops.\n"
		"Under systemd (Type=notify) it reports READY, RELOADING, STOPPING and\n"
		"pings the watchdog (WatchdogSec) from its event loop.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 't'},
		{"stderr", no_argument, NULL, 'e'},	  {"defaults", no_argument, NULL, 'D'},
		{"help", no_argument, NULL, 'h'},	  {"man-keys", no_argument, NULL, 'M'},
		{NULL, 0, NULL, 0},
	};
	struct daemon_opts o = {.config_path = DEFAULT_CONFIG, .services = rcptgated_services,
				.nservices = RCPTGATED_NSERVICES};
	int test = 0, c;
	while ((c = getopt_long(argc, argv, "c:teh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o.config_path = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'e':
			o.log_stderr = true;
			break;
		case 'D':
			config_print_defaults(stdout);
			return 0;
		case 'M':
			config_print_man(stdout);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	char err[512] = "";
	if (test) {
		struct config cfg;
		if (config_load(o.config_path, &cfg, err, sizeof(err))) {
			fprintf(stderr, "rcptgated: %s\n", err);
			return 1;
		}
		printf("%s: ok, %u domains\n", o.config_path, cfg.ndom);
		config_free(&cfg);
		return 0;
	}
	int rc = 0;
	if (daemon_init(&o, err, sizeof(err))) {
		fprintf(stderr, "rcptgated: %s\n", err);
		rc = 1;
	} else if (sdnotify_watchdog_start()) {
		fprintf(stderr, "rcptgated: watchdog timer: out of memory\n");
		rc = 1;
	} else {
		/* serving from here on: systemd's Type=notify waits for this */
		sdnotify_ready("running");
		if (daemon_run())
			rc = 1;
		sdnotify_stopping();
	}
	sdnotify_watchdog_stop();
	daemon_fini();
	return rc;
}
