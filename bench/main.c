/*
 * main.c — rcptgate-bench: dispatches to the subcommand named first.
 * Subcommands whose source was not built are reported as such.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

struct subcmd {
	const char *name;
	int (*run)(int, char **);
	const char *what;
};

static const struct subcmd subcmds[] = {
#ifdef BENCH_HAVE_TABLE
	{"table", bench_table, "recipient table lookups/s vs DPDK rte_hash"},
#endif
#ifdef BENCH_HAVE_DATAPLANE
	{"dataplane", bench_dataplane, "worker loop cost per packet vs io-forward"},
#endif
#ifdef BENCH_HAVE_CALLOUT
	{"callout", bench_callout, "callout verifications/s against smtp-sink"},
#endif
#ifdef BENCH_HAVE_SMTPLOAD
	{"smtpload", bench_smtpload, "SMTP load generator (sessions x pipelined RCPTs)"},
#endif
#ifdef BENCH_HAVE_LIST
	{"list", bench_list, "closed list of N addresses: load/s, reload time, bytes/address"},
#endif
#ifdef BENCH_HAVE_FLEET
	{"fleet", bench_fleet, "1-3 rcptgated sharing Redis: callouts/address, propagation, miss path"},
#endif
#ifdef BENCH_HAVE_PEER
	{"peer", bench_peer, "RCPT answers/s: rcptgate inline vs a Postfix front line"},
#endif
};

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bench_spawn(char *const argv[], int out_fd)
{
	pid_t p = fork();
	if (p == 0) {
		if (out_fd >= 0) {
			dup2(out_fd, 1);
			dup2(out_fd, 2);
		}
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		execvp(argv[0], argv);
		_exit(127);
	}
	return p;
}

void bench_stop(int pid, unsigned wait_ms)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (unsigned i = 0; i < wait_ms / 20u; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(20000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void bench_print_machine(FILE *out, int argc, char **argv)
{
	char line[256], model[256] = "unknown";
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if (strncmp(line, "model name", 10) == 0) {
				char *p = strchr(line, ':');
				if (p) {
					snprintf(model, sizeof(model), "%s", p + 2);
					model[strcspn(model, "\n")] = 0;
				}
				break;
			}
		}
		fclose(f);
	}
	fprintf(out, "machine: %s, %ld cores online\ncommand:", model,
		sysconf(_SC_NPROCESSORS_ONLN));
	for (int i = 0; i < argc; i++)
		fprintf(out, " %s", argv[i]);
	fprintf(out, "\n");
}

static int usage(FILE *out)
{
	fprintf(out, "usage: rcptgate-bench SUBCOMMAND [--json] [options]\n\nsubcommands:\n");
	for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
		fprintf(out, "  %-10s %s\n", subcmds[i].name, subcmds[i].what);
	fprintf(out, "\nEach prints a table and, with --json, one JSON object as its last line.\n");
	return out == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return usage(stdout);
	for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
		if (!strcmp(argv[1], subcmds[i].name))
			return subcmds[i].run(argc - 1, argv + 1);
	fprintf(stderr, "rcptgate-bench: unknown subcommand '%s'\n", argv[1]);
	return usage(stderr);
}
