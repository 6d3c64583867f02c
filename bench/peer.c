/*
 * peer.c — `rcptgate-bench peer`: runs bench/peer.sh, which builds the testbed
 * (namespaces, a destination Postfix, rcptgated, rcptgate-dp, dpdk-testpmd)
 * and drives it with this binary's `smtpload` subcommand.  Orchestrating
 * namespaces and Postfix instances is shell work; the measuring is done here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

int bench_peer(int argc, char **argv)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		fprintf(stderr, "peer: cannot find this binary: %s\n", strerror(errno));
		return 1;
	}
	self[n] = 0;
	bench_print_machine(stdout, argc, argv);
	fflush(stdout);
	setenv("RG_BENCH", self, 1);
	setenv("RG_SRC", RG_SRC_DIR, 0);
	setenv("RG_BUILD", RG_BUILD_DIR, 0);
	char script[4200];
	snprintf(script, sizeof(script), "%s/bench/peer.sh", getenv("RG_SRC"));
	char **args = calloc((size_t)argc + 2, sizeof(char *));
	args[0] = "bash";
	args[1] = script;
	for (int i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	execv("/bin/bash", args);
	fprintf(stderr, "peer: cannot run %s: %s\n", script, strerror(errno));
	return 1;
}
