/*
 * fuzz_addr.c — libFuzzer harness for the RFC 5321 path parser and the
 * canonical form (common/addr.c).
 *
 * Input: the first byte picks the case rule and the entry point, the rest
 * is the argument of "RCPT TO:" as it would arrive (not NUL-terminated,
 * exactly sized, so any read past it is an ASan report).
 * Checks, beyond memory safety and undefined behaviour, what addr.h states:
 * - an error zeroes the result; a success points inside the input, with
 *   path_len within the input and RG_PATH_MAX;
 * - the canonical form fits RG_ADDR_MAX and is never longer than the raw
 *   local part + 1 + the raw domain;
 * - the canonical form of a canonical form is itself (addr_normalize);
 * - addr_normalize() of any input either fails or gives a form that
 *   normalises to itself.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void idempotent(const char *canon, int n, bool cs)
{
	char again[RG_ADDR_MAX];
	int m;
	if (n == 0)
		return; /* "<>" */
	m = addr_normalize(canon, (size_t)n, cs, again, sizeof(again));
	FZ_CHECK(m == n && memcmp(again, canon, (size_t)n) == 0,
		 "canonical form not a fixed point (cs=%d): \"%.*s\" -> %d \"%.*s\"", cs, n,
		 canon, m, m > 0 ? m : 0, again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addr_parsed a;
	char canon[RG_ADDR_MAX];
	const char *in;
	size_t len;
	bool cs;
	int rc, n;

	if (size < 1)
		return 0;
	cs = data[0] & 1;
	in = (const char *)data + 1;
	len = size - 1;

	if (data[0] & 2) {
		/* control-plane entry point */
		n = addr_normalize(in, len, cs, canon, sizeof(canon));
		FZ_CHECK(n <= (int)sizeof(canon), "addr_normalize: %d bytes", n);
		if (n > 0)
			idempotent(canon, n, cs);
		(void)addr_strerror(n < 0 ? n : 0);
		return 0;
	}

	rc = addr_parse_path(in, len, &a);
	(void)addr_strerror(rc);
	if (rc != ADDR_OK) {
		static const struct addr_parsed zero;
		FZ_CHECK(rc < 0, "addr_parse_path: %d", rc);
		FZ_CHECK(memcmp(&a, &zero, sizeof(a)) == 0, "error %d left a result", rc);
		return 0;
	}
	FZ_CHECK(a.path_len <= len && a.path_len <= RG_PATH_MAX, "path_len %zu of %zu",
		 a.path_len, len);
	if (a.local_len)
		FZ_CHECK(a.local >= in && a.local + a.local_len <= in + len,
			 "local part outside the input");
	if (a.domain_len)
		FZ_CHECK(a.domain >= in && a.domain + a.domain_len <= in + len,
			 "domain outside the input");
	FZ_CHECK(a.local_len <= RG_LOCAL_MAX && a.domain_len <= RG_DOMAIN_MAX,
		 "parts %zu/%zu over the limits", a.local_len, a.domain_len);

	n = addr_canonical(&a, cs, canon, sizeof(canon));
	FZ_CHECK(n >= 0, "addr_canonical failed (%d) on a parsed path", n);
	FZ_CHECK((size_t)n <= a.local_len + 1 + a.domain_len,
		 "canonical %d bytes > local %zu + 1 + domain %zu", n, a.local_len,
		 a.domain_len);
	idempotent(canon, n, cs);

	n = addr_domain_lower(&a, canon, sizeof(canon));
	FZ_CHECK(n >= 0 && (size_t)n == a.domain_len, "addr_domain_lower: %d of %zu", n,
		 a.domain_len);

	/* a too-small output buffer is an error, never an overflow */
	{
		char *tiny = malloc(8);
		if (tiny) {
			n = addr_canonical(&a, cs, tiny, 8);
			FZ_CHECK(n <= 8, "addr_canonical wrote %d into 8", n);
			free(tiny);
		}
	}
	return 0;
}
