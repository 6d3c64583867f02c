/*
 * list.c — reading static recipient lists into sorted key sets, and the
 * difference between two of them (see list.h).
 * Thread: rcptgated's main thread.
 *
 * The keys are spread uniformly (keyed SipHash), so they are sorted by an
 * LSD radix sort on the high word (4 passes of 16 bits) and equal high words,
 * in practice only duplicates, are ordered by the low word afterwards: about
 * ten times faster than qsort() on 10M keys, which matters for a reload.
 */
#include "list.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "shm.h"

#define LIST_BAD_LOGGED 5u	/* bad lines logged per read; all are counted */
#define LIST_READ_CHUNK (1u << 20)

static inline int key_cmp(const struct rg_key128 *a, const struct rg_key128 *b)
{
	if (a->hi != b->hi)
		return a->hi < b->hi ? -1 : 1;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return 0;
}

size_t list_keys_sort(struct list_keys *l)
{
	size_t n = l->n;
	if (n < 2)
		return 0;
	struct rg_key128 *tmp = malloc(n * sizeof(*tmp));
	struct rg_key128 *a = l->k, *b = tmp;
	if (tmp) {
		static size_t cnt[1u << 16];
		for (unsigned pass = 0; pass < 4; pass++) {
			unsigned sh = pass * 16;
			memset(cnt, 0, sizeof(cnt));
			for (size_t i = 0; i < n; i++)
				cnt[(a[i].hi >> sh) & 0xffff]++;
			size_t sum = 0;
			for (size_t d = 0; d < (1u << 16); d++) {
				size_t c = cnt[d];
				cnt[d] = sum;
				sum += c;
			}
			for (size_t i = 0; i < n; i++)
				b[cnt[(a[i].hi >> sh) & 0xffff]++] = a[i];
			struct rg_key128 *t = a;
			a = b;
			b = t;
		}
		/* after an even number of passes the result is back in l->k */
		free(tmp);
		/* runs of equal hi: order by lo (insertion sort; runs are tiny) */
		for (size_t i = 1; i < n; i++) {
			if (a[i].hi != a[i - 1].hi || a[i].lo >= a[i - 1].lo)
				continue;
			struct rg_key128 x = a[i];
			size_t j = i;
			while (j && a[j - 1].hi == x.hi && a[j - 1].lo > x.lo) {
				a[j] = a[j - 1];
				j--;
			}
			a[j] = x;
		}
	} else {
		qsort(a, n, sizeof(*a), (int (*)(const void *, const void *))key_cmp);
	}
	size_t w = 1;
	for (size_t i = 1; i < n; i++)
		if (key_cmp(&a[i], &a[w - 1]))
			a[w++] = a[i];
	l->n = w;
	return n - w;
}

bool list_contains(const struct list_keys *l, const struct rg_key128 *k)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(&l->k[mid], k);
		if (!c)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

void list_keys_free(struct list_keys *l)
{
	free(l->k);
	l->k = NULL;
	l->n = 0;
}

uint64_t list_diff(const struct list_keys *from, const struct list_keys *to, list_key_fn add,
		   list_key_fn del, void *arg)
{
	uint64_t failed = 0;
	size_t i = 0, j = 0;
	while (i < from->n) {
		int c = j < to->n ? key_cmp(&from->k[i], &to->k[j]) : -1;
		if (c > 0) {
			j++;
		} else if (c == 0) {
			i++;
			j++;
		} else {
			del(&from->k[i++], arg);
		}
	}
	i = j = 0;
	while (j < to->n) {
		int c = i < from->n ? key_cmp(&from->k[i], &to->k[j]) : 1;
		if (c < 0) {
			i++;
		} else if (c == 0) {
			i++;
			j++;
		} else {
			failed += add(&to->k[j++], arg) != 0;
		}
	}
	return failed;
}

/* ---- reading ---- */

struct reader {
	const struct list_source *src;
	const char *what;	/* file name or command, for messages */
	const uint8_t *hash_key;
	struct list_keys keys;
	size_t cap;
	struct list_read_stats st;
	char line[LIST_LINE_MAX + 1];
	size_t len;
	bool overlong;
	int err;		/* -errno once fatal */
	char *errbuf;
	size_t errlen;
};

static void bad_line(struct reader *r, const char *why, const char *s, size_t n)
{
	if (r->st.bad++ < LIST_BAD_LOGGED)
		log_msg(LOG_WARNING, "%s:%llu: %s '%.*s'", r->what, (unsigned long long)r->st.lines,
			why, (int)(n > 80 ? 80 : n), s);
}

static void take_line(struct reader *r, char *s, size_t n)
{
	r->st.lines++;
	if (r->overlong) {
		bad_line(r, "line too long:", s, n);
		return;
	}
	while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	if (!n || *s == '#')
		return;
	/* the first field: the address; a Postfix map's value follows */
	size_t f = 0;
	while (f < n && s[f] != ' ' && s[f] != '\t')
		f++;
	if (s[0] == '@') {
		bad_line(r, "a whole domain is not a recipient:", s, f);
		return;
	}
	char canon[RG_ADDR_MAX + 1];
	int len = addr_normalize(s, f, r->src->case_sensitive, canon, RG_ADDR_MAX);
	const char *at = len > 0 ? memrchr(canon, '@', (size_t)len) : NULL;
	if (len <= 0 || !at) {
		bad_line(r, "not an address:", s, f);
		return;
	}
	size_t dl = (size_t)len - (size_t)(at + 1 - canon);
	if (dl != strlen(r->src->domain) || memcmp(at + 1, r->src->domain, dl)) {
		r->st.other++;
		return;
	}
	if (r->keys.n == LIST_MAX_ADDRESSES) {
		snprintf(r->errbuf, r->errlen, "%s:%llu: more than %u addresses", r->what,
			 (unsigned long long)r->st.lines, LIST_MAX_ADDRESSES);
		r->err = -EFBIG;
		return;
	}
	if (r->keys.n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 4096;
		struct rg_key128 *nk = realloc(r->keys.k, nc * sizeof(*nk));
		if (!nk) {
			snprintf(r->errbuf, r->errlen, "%s: out of memory at line %llu", r->what,
				 (unsigned long long)r->st.lines);
			r->err = -ENOMEM;
			return;
		}
		r->keys.k = nk;
		r->cap = nc;
	}
	khash128(r->hash_key, canon, (size_t)len, &r->keys.k[r->keys.n++]);
}

/* Split a chunk into lines (a line may span chunks). */
static void feed(struct reader *r, const char *buf, size_t n)
{
	while (n && !r->err) {
		const char *nl = memchr(buf, '\n', n);
		size_t take = nl ? (size_t)(nl - buf) : n;
		if (r->len + take > LIST_LINE_MAX) {
			r->overlong = true;
			size_t room = LIST_LINE_MAX - r->len;
			memcpy(r->line + r->len, buf, room);
			r->len = LIST_LINE_MAX;
		} else {
			memcpy(r->line + r->len, buf, take);
			r->len += take;
		}
		if (!nl)
			return;
		take_line(r, r->line, r->len);
		r->len = 0;
		r->overlong = false;
		buf += take + 1;
		n -= take + 1;
	}
}

static void feed_end(struct reader *r)
{
	if (r->len && !r->err)
		take_line(r, r->line, r->len);
	r->len = 0;
}

static uint64_t mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* Read fd to its end (or until deadline_s, 0 = none). 0, -errno, -ETIMEDOUT. */
static int drain(struct reader *r, int fd, uint64_t deadline_s)
{
	char *buf = malloc(LIST_READ_CHUNK);
	if (!buf)
		return -ENOMEM;
	int rc = 0;
	while (!r->err) {
		if (deadline_s) {
			uint64_t now = mono_s();
			if (now >= deadline_s) {
				rc = -ETIMEDOUT;
				break;
			}
			struct pollfd p = {.fd = fd, .events = POLLIN};
			int pr = poll(&p, 1, (int)((deadline_s - now) * 1000));
			if (pr < 0 && errno == EINTR)
				continue;
			if (pr == 0)
				continue;
		}
		ssize_t got = read(fd, buf, LIST_READ_CHUNK);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = -errno;
			break;
		}
		if (got == 0)
			break;
		feed(r, buf, (size_t)got);
	}
	free(buf);
	if (!rc)
		feed_end(r);
	return rc;
}

static int read_file(struct reader *r)
{
	int fd = open(r->src->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(r->errbuf, r->errlen, "list %s: %s", r->src->file, strerror(e));
		return -e;
	}
	int rc = drain(r, fd, 0);
	close(fd);
	if (rc && !r->err)
		snprintf(r->errbuf, r->errlen, "list %s: line %llu: %s", r->src->file,
			 (unsigned long long)r->st.lines + 1, strerror(-rc));
	return r->err ? r->err : rc;
}

static int read_command(struct reader *r)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		int e = errno;
		snprintf(r->errbuf, r->errlen, "list_command '%s': pipe: %s", r->src->command,
			 strerror(e));
		return -e;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		snprintf(r->errbuf, r->errlen, "list_command '%s': fork: %s", r->src->command,
			 strerror(e));
		return -e;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(p[1], 1) < 0)
			_exit(126);
		closefrom(3);
		/* rcptgated blocks the signals its loop reads: not the command */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", r->src->command, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	int rc = drain(r, p[0], mono_s() + LIST_COMMAND_TIMEOUT_S);
	close(p[0]);
	if (rc || r->err)
		kill(pid, SIGKILL);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (r->err)
		return r->err;
	if (rc == -ETIMEDOUT) {
		snprintf(r->errbuf, r->errlen, "list_command '%s': no end after %u s; killed",
			 r->src->command, LIST_COMMAND_TIMEOUT_S);
		return rc;
	}
	if (rc) {
		snprintf(r->errbuf, r->errlen, "list_command '%s': reading its output: %s",
			 r->src->command, strerror(-rc));
		return rc;
	}
	if (WIFSIGNALED(st)) {
		snprintf(r->errbuf, r->errlen, "list_command '%s': killed by signal %d",
			 r->src->command, WTERMSIG(st));
		return -ECHILD;
	}
	if (WEXITSTATUS(st)) {
		snprintf(r->errbuf, r->errlen, "list_command '%s': exit status %d",
			 r->src->command, WEXITSTATUS(st));
		return -ECHILD;
	}
	return 0;
}

int list_read(const struct list_source *src, const uint8_t hash_key[16], struct list_keys *out,
	      struct list_read_stats *st, char *err, size_t errlen)
{
	struct reader *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r->src = src;
	r->hash_key = hash_key;
	r->errbuf = err;
	r->errlen = errlen;
	bool file = src->file && src->file[0];
	r->what = file ? src->file : src->command;
	int rc;
	if (file)
		rc = read_file(r);
	else if (src->command && src->command[0])
		rc = read_command(r);
	else {
		snprintf(err, errlen, "%s: no list file or command", src->domain);
		rc = -EINVAL;
	}
	if (!rc) {
		r->st.dups = list_keys_sort(&r->keys);
		if (r->keys.n && r->keys.n < r->cap) {
			struct rg_key128 *k = realloc(r->keys.k, r->keys.n * sizeof(*k));
			if (k)
				r->keys.k = k;
		}
		list_keys_free(out);
		*out = r->keys;
	} else {
		list_keys_free(&r->keys);
	}
	if (st)
		*st = r->st;
	free(r);
	return rc;
}
