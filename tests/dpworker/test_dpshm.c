/*
 * test_dpshm.c — rcptgate-dp's attachment to the shared-memory file
 * (dpshm.c): files of another ABI, of the wrong shape or with too few lcore
 * regions are refused at once with what differs; an absent, not-ready or
 * retired file is waited for with one message per distinct reason; a file
 * that appears later is attached; a replacement is attached as a new
 * generation beside the old map.  Files are made with common/shm.h's
 * shm_create() and then damaged through the writer's mapping.
 * Main test thread plus, in two tests, one thread that creates the file or
 * sets the quit flag.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dpshm.h"
#include "shm.h"

/* The file this test made, removed after it whatever its outcome. */
static char t_made[128];

static void t_cleanup(void)
{
	if (t_made[0])
		unlink(t_made);
	t_made[0] = 0;
}

TestSuite(dpshm, .fini = t_cleanup);

static void t_path(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "/dev/shm/rg-dpw-%s-%d", tag, (int)getpid());
	snprintf(t_made, sizeof(t_made), "%s", buf);
}

static void t_create(const char *path, uint32_t lcores, struct shm_map *m)
{
	struct shm_params p;
	char err[256];

	shm_params_default(&p);
	p.max_lcores = lcores;
	p.dtable_slots = 64;
	p.rtable_init_log2 = 4;
	p.rtable_max_log2 = 6;
	p.miss_slots = 64;
	p.event_slots = 64;
	cr_assert_eq(shm_create(path, &p, m, err, sizeof(err)), 0, "shm_create: %s", err);
}

/* stderr of the code under test goes to a file; returns what was written. */
struct t_err {
	int saved;
	char path[128];
	char text[4096];
};

static void t_err_begin(struct t_err *e)
{
	int fd;

	snprintf(e->path, sizeof(e->path), "/tmp/rg-dpw-stderr-%d", (int)getpid());
	fflush(stderr);
	e->saved = dup(2);
	fd = open(e->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	dup2(fd, 2);
	close(fd);
}

static const char *t_err_end(struct t_err *e)
{
	FILE *f;
	size_t n;

	fflush(stderr);
	dup2(e->saved, 2);
	close(e->saved);
	f = fopen(e->path, "r");
	cr_assert_not_null(f);
	n = fread(e->text, 1, sizeof(e->text) - 1, f);
	e->text[n] = 0;
	fclose(f);
	unlink(e->path);
	return e->text;
}

static unsigned t_count(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

struct t_later {
	char path[128];
	unsigned delay_ms;
	volatile int *quit;	/* set instead of creating when non-NULL */
	volatile int stop;	/* the test is done: return without acting */
};

static void *t_later_main(void *arg);

/* ---- files refused at once ---- */

enum t_damage {
	DMG_NONE,
	DMG_ABI,	/* abi_version + 1 */
	DMG_MAGIC,
	DMG_LCORE_SIZE,	/* sz_lcore + 8 */
	DMG_HDR_SIZE,
	DMG_TOTAL_SIZE,	/* header says a different size */
	DMG_TRUNCATE,	/* file shorter than a header */
	DMG_OFFSETS,	/* rw_off moved */
};

struct refuse_case {
	char name[48];
	int damage;		/* enum t_damage */
	unsigned file_lcores, need_lcores;
	char msg[160];		/* after "cannot attach: PATH: " */
	char also[64];		/* further substring, when set */
};

static const struct refuse_case refuse_cases[] = {
	{"abi version", DMG_ABI, 4, 2, "abi version 2, expected 1"},
	{"magic", DMG_MAGIC, 4, 2, "bad magic: not an rcptgate shared-memory file"},
	{"lcore struct size", DMG_LCORE_SIZE, 4, 2, "struct shm_lcore size"},
	{"header size", DMG_HDR_SIZE, 4, 2, "struct shm_hdr size 4095, expected 4096"},
	{"total size", DMG_TOTAL_SIZE, 4, 2, "file is ", "bytes, header says"},
	{"shorter than a header", DMG_TRUNCATE, 4, 2, "file is 100 bytes, smaller than a header"},
	{"region offsets", DMG_OFFSETS, 4, 2, "region offsets differ from this build's layout"},
	{"too few lcore regions", DMG_NONE, 4, 8, "has 4 lcore regions, rcptgate-dp runs 8 workers"},
	{"one lcore region short", DMG_NONE, 2, 3, "has 2 lcore regions, rcptgate-dp runs 3 workers"},
};

ParameterizedTestParameters(dpshm, refused)
{
	return cr_make_param_array(struct refuse_case, refuse_cases,
				   sizeof(refuse_cases) / sizeof(refuse_cases[0]));
}

ParameterizedTest(const struct refuse_case *k, dpshm, refused)
{
	struct shm_map w;
	struct shm_hdr *h;
	struct dpshm s;
	struct t_err e;
	char path[128], want[512];
	volatile int quit = 0;
	struct t_later l = {.delay_ms = 1500, .quit = &quit};
	pthread_t th;
	const char *out;
	int rc;

	t_path(path, sizeof(path), "refuse");
	t_create(path, k->file_lcores, &w);
	h = shm_hdr(&w);
	switch (k->damage) {
	case DMG_ABI:
		h->abi_version = SHM_ABI_VERSION + 1;
		break;
	case DMG_MAGIC:
		memcpy(h->magic, "RCPTGONE", 8);
		break;
	case DMG_LCORE_SIZE:
		h->sz_lcore += 8;
		break;
	case DMG_HDR_SIZE:
		h->hdr_size -= 1;
		break;
	case DMG_TOTAL_SIZE:
		h->total_size += SHM_PAGE;
		break;
	case DMG_TRUNCATE:
		cr_assert_eq(truncate(path, 100), 0);
		break;
	case DMG_OFFSETS:
		h->rw_off += SHM_PAGE;
		break;
	default:
		break;
	}
	if (k->damage != DMG_TRUNCATE)
		shm_detach(&w);
	dpshm_init(&s, k->need_lcores);
	/* a refused file must not be retried: the quit flag after 1.5 s only
	 * ends a wait that should not have started */
	cr_assert_eq(pthread_create(&th, NULL, t_later_main, &l), 0);
	t_err_begin(&e);
	rc = dpshm_attach_wait(&s, path, 1, &quit);
	out = t_err_end(&e);
	l.stop = 1;
	pthread_join(th, NULL);
	cr_expect_eq(rc, -EPROTO, "%s: returned %d; stderr: %s", k->name, rc, out);
	snprintf(want, sizeof(want), "rcptgate-dp: cannot attach: %s: %s", path, k->msg);
	cr_expect(strstr(out, want), "%s: stderr '%s' lacks '%s'", k->name, out, want);
	if (k->also[0])
		cr_expect(strstr(out, k->also), "%s: stderr '%s' lacks '%s'", k->name, out, k->also);
	cr_expect(!strstr(out, "waiting"), "%s: a refused file is waited for: %s", k->name, out);
	cr_expect_eq(dpshm_gen(&s), 0, "%s: generation bumped", k->name);
	cr_expect_null(dpshm_cur(&s)->base, "%s: map kept", k->name);
	dpshm_fini(&s);
	if (k->damage == DMG_TRUNCATE)
		shm_detach(&w);
	unlink(path);
}

/* ---- files waited for ---- */

enum t_wait { W_ABSENT, W_NOT_READY, W_RETIRED };

struct wait_case {
	char name[32];
	int what;
	char msg[96];
};

static const struct wait_case wait_cases[] = {
	{"absent", W_ABSENT, "No such file or directory"},
	{"not ready", W_NOT_READY, "not ready yet"},
	{"retired", W_RETIRED, "retired; a newer file replaced it"},
};

ParameterizedTestParameters(dpshm, waits)
{
	return cr_make_param_array(struct wait_case, wait_cases,
				   sizeof(wait_cases) / sizeof(wait_cases[0]));
}

ParameterizedTest(const struct wait_case *k, dpshm, waits)
{
	struct shm_map w;
	struct dpshm s;
	struct t_err e;
	char path[128], want[512];
	volatile int quit = 1;	/* one attempt, then give up */
	const char *out;
	int rc;

	t_path(path, sizeof(path), "wait");
	unlink(path);
	if (k->what != W_ABSENT) {
		t_create(path, 4, &w);
		__atomic_store_n(&shm_hdr(&w)->state,
				 k->what == W_RETIRED ? SHM_STATE_RETIRED : SHM_STATE_INIT,
				 __ATOMIC_RELEASE);
		shm_detach(&w);
	}
	dpshm_init(&s, 2);
	t_err_begin(&e);
	rc = dpshm_attach_wait(&s, path, 3, &quit);
	out = t_err_end(&e);
	cr_expect_eq(rc, -EINTR, "%s: returned %d; stderr: %s", k->name, rc, out);
	snprintf(want, sizeof(want), "rcptgate-dp: waiting for rcptgated: %s: %s; retrying every 3s",
		 path, k->msg);
	cr_expect(strstr(out, want), "%s: stderr '%s' lacks '%s'", k->name, out, want);
	cr_expect_eq(dpshm_gen(&s), 0);
	dpshm_fini(&s);
	unlink(path);
}

static void *t_later_main(void *arg)
{
	struct t_later *l = arg;
	struct timespec ts = {0, 10 * 1000000L};
	struct shm_map m;

	for (unsigned t = 0; t < l->delay_ms; t += 10) {
		if (l->stop)
			return NULL;
		nanosleep(&ts, NULL);
	}
	if (l->quit) {
		*l->quit = 1;
		return NULL;
	}
	t_create(l->path, 4, &m);
	shm_detach(&m);
	return NULL;
}

static double t_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(dpshm, file_appears_later)
{
	struct t_later l = {.delay_ms = 300};
	struct dpshm s;
	struct t_err e;
	pthread_t th;
	volatile int quit = 0;
	const char *out;
	double t0, dt;
	int rc;

	t_path(l.path, sizeof(l.path), "later");
	unlink(l.path);
	dpshm_init(&s, 4);
	t0 = t_now();
	cr_assert_eq(pthread_create(&th, NULL, t_later_main, &l), 0);
	t_err_begin(&e);
	rc = dpshm_attach_wait(&s, l.path, 1, &quit);
	out = t_err_end(&e);
	dt = t_now() - t0;
	pthread_join(th, NULL);
	cr_expect_eq(rc, 0, "returned %d; stderr: %s", rc, out);
	cr_expect_eq(t_count(out, "waiting for rcptgated"), 1, "stderr: %s", out);
	cr_expect(strstr(out, "attached"), "stderr: %s", out);
	cr_expect(dt >= 0.3 && dt < 2.5, "attached after %.2f s (retry every 1 s)", dt);
	cr_expect_eq(dpshm_gen(&s), 1);
	cr_expect_not_null(dpshm_cur(&s)->base);
	cr_expect_geq(shm_hdr(dpshm_cur(&s))->max_lcores, 4);
	cr_expect(!dpshm_retired(&s));
	dpshm_fini(&s);
	unlink(l.path);
}

Test(dpshm, one_message_while_the_reason_stays)
{
	struct t_later l = {.delay_ms = 2300};
	struct dpshm s;
	struct t_err e;
	pthread_t th;
	volatile int quit = 0;
	const char *out;
	int rc;

	t_path(l.path, sizeof(l.path), "quiet");
	unlink(l.path);
	l.quit = &quit;
	dpshm_init(&s, 1);
	cr_assert_eq(pthread_create(&th, NULL, t_later_main, &l), 0);
	t_err_begin(&e);
	rc = dpshm_attach_wait(&s, l.path, 1, &quit); /* three attempts */
	out = t_err_end(&e);
	pthread_join(th, NULL);
	cr_expect_eq(rc, -EINTR, "returned %d", rc);
	cr_expect_eq(t_count(out, "waiting for rcptgated"), 1, "stderr: %s", out);
	dpshm_fini(&s);
}

Test(dpshm, replacement_is_a_new_generation)
{
	struct shm_map w1, w2;
	struct dpshm s;
	struct t_err e;
	char path[128];
	volatile int quit = 0;
	const char *out;
	uint8_t *first;

	t_path(path, sizeof(path), "replace");
	unlink(path);
	t_create(path, 4, &w1);
	dpshm_init(&s, 4);
	t_err_begin(&e);
	cr_assert_eq(dpshm_attach_wait(&s, path, 1, &quit), 0);
	out = t_err_end(&e);
	cr_expect(strstr(out, "attached"), "stderr: %s", out);
	cr_expect_eq(dpshm_gen(&s), 1);
	cr_expect(!dpshm_retired(&s));
	first = dpshm_cur(&s)->base;

	/* rcptgated re-creates the file: the old one says RETIRED */
	t_create(path, 4, &w2);
	cr_expect(dpshm_retired(&s), "old file not seen as retired");
	t_err_begin(&e);
	cr_assert_eq(dpshm_attach_wait(&s, path, 1, &quit), 0);
	t_err_end(&e);
	cr_expect_eq(dpshm_gen(&s), 2);
	cr_expect_neq(dpshm_cur(&s)->base, first, "still on the old map");
	cr_expect(!dpshm_retired(&s));
	cr_expect_eq(s.map[s.cur ^ 1u].base, first, "old map dropped before the workers acked");
	/* the new map is the file rcptgated now writes */
	cr_expect_eq(memcmp(shm_hdr(dpshm_cur(&s))->hash_key, shm_hdr(&w2)->hash_key,
			    SHM_HASH_KEY_LEN),
		     0);
	dpshm_drop_old(&s);
	cr_expect_null(s.map[s.cur ^ 1u].base);
	cr_expect_not_null(dpshm_cur(&s)->base);
	dpshm_fini(&s);
	shm_detach(&w1);
	shm_detach(&w2);
	unlink(path);
}
