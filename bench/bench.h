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

/* "model name" of the first CPU and the online core count, for reports. */
void bench_print_machine(FILE *out, int argc, char **argv);

#endif
