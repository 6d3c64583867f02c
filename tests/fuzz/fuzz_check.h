/*
 * fuzz_check.h — the harnesses' assertion: a failed check prints what
 * differs and aborts, which libFuzzer reports as a crash and saves the input
 * as a reproducer.
 */
#ifndef RG_FUZZ_CHECK_H
#define RG_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FZ_CHECK(cond, ...)                                                      \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "CHECK failed at %s:%d: %s: ", __FILE__, \
				__LINE__, #cond);                                \
			fprintf(stderr, __VA_ARGS__);                            \
			fputc('\n', stderr);                                     \
			abort();                                                 \
		}                                                                \
	} while (0)

#endif
