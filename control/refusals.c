/*
 * refusals.c — see refusals.h.  Linear tables: 128 slots, each with the
 * key's 64-bit FNV-1a hash compared before the key itself.
 * Thread: main thread only.
 */
#include "refusals.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	uint64_t h;
	struct refusals_entry e;
};

static struct {
	struct slot t[2][REFUSALS_SLOTS];
	unsigned n[2];
	uint64_t total;
} rf;

static uint64_t fnv1a(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void count(enum refusals_kind k, const char *key, size_t len)
{
	if (len >= REFUSALS_KEY_MAX)
		len = REFUSALS_KEY_MAX - 1;
	uint64_t h = fnv1a(key, len);
	struct slot *t = rf.t[k];
	unsigned min = 0;
	for (unsigned i = 0; i < rf.n[k]; i++) {
		if (t[i].h == h && !strncmp(t[i].e.key, key, len) && !t[i].e.key[len]) {
			t[i].e.count++;
			return;
		}
		if (t[i].e.count < t[min].e.count)
			min = i;
	}
	struct slot *s;
	uint64_t base = 0;
	if (rf.n[k] < REFUSALS_SLOTS) {
		s = &t[rf.n[k]++];
	} else {
		s = &t[min]; /* space-saving: the least counted key makes room */
		base = s->e.count;
	}
	s->h = h;
	memcpy(s->e.key, key, len);
	s->e.key[len] = 0;
	s->e.count = base + 1;
	s->e.error = base;
}

void refusals_note(const struct msg_event *ev)
{
	if (ev->type != MSG_EV_REJECT)
		return;
	rf.total++;
	size_t rl = ev->rcpt_len < sizeof(ev->rcpt) ? ev->rcpt_len : sizeof(ev->rcpt);
	const char *at = memchr(ev->rcpt, '@', rl);
	if (at && at + 1 < ev->rcpt + rl)
		count(REFUSALS_DOMAIN, at + 1, (size_t)(ev->rcpt + rl - at - 1));
	char buf[INET6_ADDRSTRLEN + 8];
	uint8_t a[16] = {0};
	if (ev->family == 6) {
		memcpy(a, ev->client_ip, 8); /* /64 */
		inet_ntop(AF_INET6, a, buf, INET6_ADDRSTRLEN);
		strcat(buf, "/64");
	} else {
		memcpy(a, ev->client_ip, 3); /* /24 */
		inet_ntop(AF_INET, a, buf, INET6_ADDRSTRLEN);
		strcat(buf, "/24");
	}
	count(REFUSALS_PREFIX, buf, strlen(buf));
}

static int by_count(const void *a, const void *b)
{
	const struct refusals_entry *x = a, *y = b;
	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return strcmp(x->key, y->key);
}

unsigned refusals_top(enum refusals_kind kind, struct refusals_entry *out, unsigned n)
{
	static struct refusals_entry all[REFUSALS_SLOTS];
	unsigned m = rf.n[kind];
	for (unsigned i = 0; i < m; i++)
		all[i] = rf.t[kind][i].e;
	qsort(all, m, sizeof(all[0]), by_count);
	if (n > m)
		n = m;
	memcpy(out, all, n * sizeof(*out));
	return n;
}

uint64_t refusals_total(void)
{
	return rf.total;
}
