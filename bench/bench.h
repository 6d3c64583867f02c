/*
 * bench.h — subcommands of rcptgate-bench and the helpers they share.
 * Each subcommand prints a readable table and, as its last line, one JSON
 * object (with --json) that scripts read.
 */
#ifndef RG_BENCH_H
#define RG_BENCH_H

#include <stdint.h>
#include <stdio.h>

int bench_table(int argc, char **argv);
int bench_dataplane(int argc, char **argv);
int bench_callout(int argc, char **argv);
int bench_peer(int argc, char **argv);
int bench_smtpload(int argc, char **argv);
int bench_list(int argc, char **argv);
int bench_fleet(int argc, char **argv);

/* CLOCK_MONOTONIC in ns. */
uint64_t bench_now_ns(void);
/* A child running argv (PATH searched), stdout and stderr to out_fd (-1:
 * inherited), stdin from /dev/null; -1 when fork failed. */
int bench_spawn(char *const argv[], int out_fd);
/* SIGTERM, then SIGKILL after wait_ms; reaped either way (pid <= 0: nothing). */
void bench_stop(int pid, unsigned wait_ms);
/* qsort comparator of uint64_t. */
int bench_cmp_u64(const void *a, const void *b);

/* "model name" of the first CPU and the online core count, for reports. */
void bench_print_machine(FILE *out, int argc, char **argv);

#endif
