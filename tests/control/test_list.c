/*
 * test_list.c — static recipient lists: the formats operators have (one
 * address per line, Postfix map lines, comments, CRLF), a list_command's
 * output and its failures, errors naming the file / command, the key set
 * (sort, membership) and the difference a reload applies.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "list.h"

static const uint8_t hkey[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static char path[256];

static void write_file(const char *text)
{
	snprintf(path, sizeof(path), "%s/list-%d.txt", getenv("RG_TEST_TMP") ? getenv("RG_TEST_TMP") : "/tmp",
		 (int)getpid());
	FILE *f = fopen(path, "w");
	cr_assert(f);
	fputs(text, f);
	fclose(f);
}

static struct rg_key128 key_of(const char *canon)
{
	struct rg_key128 k;
	khash128(hkey, canon, strlen(canon), &k);
	return k;
}

static void teardown(void)
{
	if (path[0])
		unlink(path);
}

TestSuite(list, .fini = teardown);

struct fmt_case {
	const char *name;
	const char *text;
	bool case_sensitive;
	const char *in[6];	/* canonical addresses that must be listed */
	const char *out[4];	/* and some that must not */
	size_t n;		/* addresses kept */
	uint64_t bad, other, dups;
};

static const struct fmt_case fmt_cases[] = {
	{"one address per line, comments, blank lines, CRLF",
	 "# mailboxes\n\nalice@ex.test\r\n  bob@ex.test  \n\t# indented comment\ncarol@ex.test",
	 false, {"alice@ex.test", "bob@ex.test", "carol@ex.test"}, {"dave@ex.test"}, 3, 0, 0, 0},
	{"Postfix map lines: address then anything",
	 "alice@ex.test OK\nbob@ex.test\t\tx\n# c\ncarol@ex.test   relay:[mx.ex.test]\n",
	 false, {"alice@ex.test", "bob@ex.test", "carol@ex.test"}, {"OK@ex.test"}, 3, 0, 0, 0},
	{"case folded unless case_sensitive, duplicates merged",
	 "Alice@EX.test\nalice@ex.test\n<alice@ex.test>\n", false, {"alice@ex.test"},
	 {"Alice@ex.test"}, 1, 0, 0, 2},
	{"case_sensitive keeps local parts as written",
	 "Alice@EX.test\nalice@ex.test\n", true, {"Alice@ex.test", "alice@ex.test"}, {NULL}, 2, 0,
	 0, 0},
	{"other domains skipped, bad lines counted",
	 "a@ex.test\nb@other.test\nnot an address\n@ex.test OK\nx@@ex.test\nc@ex.test\n", false,
	 {"a@ex.test", "c@ex.test"}, {"b@other.test"}, 2, 3, 1, 0},
};

Test(list, formats)
{
	for (size_t i = 0; i < sizeof(fmt_cases) / sizeof(fmt_cases[0]); i++) {
		const struct fmt_case *c = &fmt_cases[i];
		write_file(c->text);
		struct list_source src = {.domain = "ex.test", .file = path,
					  .case_sensitive = c->case_sensitive};
		struct list_keys l = {0};
		struct list_read_stats st;
		char err[256] = "";
		cr_assert_eq(list_read(&src, hkey, &l, &st, err, sizeof(err)), 0, "%s: %s", c->name,
			     err);
		cr_expect_eq(l.n, c->n, "%s: %zu addresses", c->name, l.n);
		cr_expect_eq(st.bad, c->bad, "%s: bad %llu", c->name, (unsigned long long)st.bad);
		cr_expect_eq(st.other, c->other, "%s: other", c->name);
		cr_expect_eq(st.dups, c->dups, "%s: dups", c->name);
		for (int j = 0; j < 6 && c->in[j]; j++) {
			struct rg_key128 k = key_of(c->in[j]);
			cr_expect(list_contains(&l, &k), "%s: %s not listed", c->name, c->in[j]);
		}
		for (int j = 0; j < 4 && c->out[j]; j++) {
			struct rg_key128 k = key_of(c->out[j]);
			cr_expect_not(list_contains(&l, &k), "%s: %s listed", c->name, c->out[j]);
		}
		list_keys_free(&l);
	}
}

Test(list, overlong_line_is_bad_not_fatal)
{
	size_t n = LIST_LINE_MAX + 100;
	char *text = malloc(n + 64);
	memset(text, 'a', n);
	strcpy(text + n, "@ex.test\nz@ex.test\n");
	write_file(text);
	free(text);
	struct list_source src = {.domain = "ex.test", .file = path};
	struct list_keys l = {0};
	struct list_read_stats st;
	char err[256];
	cr_assert_eq(list_read(&src, hkey, &l, &st, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(l.n, 1);
	cr_expect_eq(st.bad, 1);
	cr_expect_eq(st.lines, 2);
	list_keys_free(&l);
}

Test(list, unreadable_file_named_and_list_kept)
{
	struct list_source src = {.domain = "ex.test", .file = "/nonexistent/rg-list.txt"};
	struct list_keys l = {0};
	write_file("keep@ex.test\n");
	struct list_source ok = {.domain = "ex.test", .file = path};
	char err[256] = "";
	cr_assert_eq(list_read(&ok, hkey, &l, NULL, err, sizeof(err)), 0);
	cr_assert_eq(list_read(&src, hkey, &l, NULL, err, sizeof(err)), -ENOENT);
	cr_expect(strstr(err, "/nonexistent/rg-list.txt"), "error names the file: %s", err);
	cr_expect_eq(l.n, 1, "a failed read leaves the old list");
	list_keys_free(&l);
}

struct cmd_case {
	const char *name;
	const char *cmd;
	int rc;
	size_t n;
	const char *msg; /* substring of the error */
};

static const struct cmd_case cmd_cases[] = {
	{"output is the list", "printf 'a@ex.test\\nb@ex.test OK\\n# c\\nc@other.test\\n'", 0, 2,
	 NULL},
	{"empty output is an empty list", "true", 0, 0, NULL},
	{"exit status is an error, named", "echo a@ex.test; exit 3", -ECHILD, 0, "exit status 3"},
	{"a signal is an error, named", "echo a@ex.test; kill -TERM $$", -ECHILD, 0, "signal 15"},
	{"a missing program", "/nonexistent/export-users", -ECHILD, 0, "exit status 127"},
};

Test(list, command)
{
	/* as in rcptgated, whose loop reads these through a signalfd */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGHUP);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		const struct cmd_case *c = &cmd_cases[i];
		struct list_source src = {.domain = "ex.test", .command = c->cmd};
		struct list_keys l = {0};
		char err[256] = "";
		int rc = list_read(&src, hkey, &l, NULL, err, sizeof(err));
		cr_expect_eq(rc, c->rc, "%s: rc %d (%s)", c->name, rc, err);
		cr_expect_eq(l.n, c->n, "%s: %zu", c->name, l.n);
		if (c->msg) {
			cr_expect(strstr(err, c->msg), "%s: '%s'", c->name, err);
			cr_expect(strstr(err, c->cmd), "%s: the command is named: '%s'", c->name, err);
		}
		list_keys_free(&l);
	}
}

static int cmp_key(const void *a, const void *b)
{
	const struct rg_key128 *x = a, *y = b;
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The radix sort agrees with qsort, including equal high words. */
Test(list, sort_matches_qsort)
{
	const size_t n = 200000;
	struct list_keys l = {malloc(n * sizeof(struct rg_key128)), n};
	struct rg_key128 *ref = malloc(n * sizeof(*ref));
	uint64_t s = 88172645463325252ull;
	for (size_t i = 0; i < n; i++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		l.k[i].hi = (i % 7 == 0) ? 42 : s; /* many equal high words */
		l.k[i].lo = s * 31 + (i % 5 == 0 ? 0 : i);
		if (i % 11 == 0 && i)
			l.k[i] = l.k[i - 1]; /* duplicates */
	}
	memcpy(ref, l.k, n * sizeof(*ref));
	qsort(ref, n, sizeof(*ref), cmp_key);
	size_t u = 1;
	for (size_t i = 1; i < n; i++)
		if (cmp_key(&ref[i], &ref[u - 1]))
			ref[u++] = ref[i];
	size_t dups = list_keys_sort(&l);
	cr_assert_eq(l.n, u);
	cr_expect_eq(dups, n - u);
	cr_assert_eq(memcmp(l.k, ref, u * sizeof(*ref)), 0);
	free(ref);
	list_keys_free(&l);
}

struct diff_ctx {
	struct list_keys *table; /* a model of the recipient table: membership */
	unsigned adds, dels, fail_every;
	bool absent_seen;	 /* a key of both lists was ever missing */
	const struct list_keys *both;
};

static int d_add(const struct rg_key128 *k, void *arg)
{
	struct diff_ctx *c = arg;
	c->adds++;
	return c->fail_every && c->adds % c->fail_every == 0 ? -ENOSPC : 0;
	(void)k;
}

static int d_del(const struct rg_key128 *k, void *arg)
{
	struct diff_ctx *c = arg;
	c->dels++;
	cr_assert_not(list_contains(c->both, k), "a key of the new list deleted");
	return 0;
}

Test(list, diff_adds_then_deletes_only_the_difference)
{
	write_file("a@ex.test\nb@ex.test\nc@ex.test\nd@ex.test\n");
	struct list_source src = {.domain = "ex.test", .file = path};
	struct list_keys old = {0}, now = {0};
	char err[256];
	cr_assert_eq(list_read(&src, hkey, &old, NULL, err, sizeof(err)), 0);
	write_file("b@ex.test\nc@ex.test\ne@ex.test\nf@ex.test\ng@ex.test\n");
	cr_assert_eq(list_read(&src, hkey, &now, NULL, err, sizeof(err)), 0);
	struct diff_ctx c = {.both = &now};
	cr_expect_eq(list_diff(&old, &now, d_add, d_del, &c), 0);
	cr_expect_eq(c.adds, 3, "e f g");
	cr_expect_eq(c.dels, 2, "a d");
	struct diff_ctx f = {.both = &now, .fail_every = 2};
	cr_expect_eq(list_diff(&old, &now, d_add, d_del, &f), 1, "failed adds are counted");
	struct list_keys empty = {0};
	struct diff_ctx all = {.both = &now};
	cr_expect_eq(list_diff(&empty, &now, d_add, d_del, &all), 0);
	cr_expect_eq(all.adds, 5);
	cr_expect_eq(all.dels, 0);
	list_keys_free(&old);
	list_keys_free(&now);
}
