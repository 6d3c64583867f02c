/*
 * test_loop.c — the event loop as a leaf: fd callbacks, an fd closed and
 * re-opened inside a batch does not get the old fd's event, timers (one-shot,
 * repeating, cancelled), turn hooks after every wake-up and their limit.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop.h"

static int reads, turns, fired, repeats;
static int pa[2], pb[2];

static void on_read(int fd, uint32_t ev, void *arg)
{
	char c;
	(void)ev;
	(void)arg;
	if (read(fd, &c, 1) == 1)
		reads++;
}

/* closes pb's read end and re-opens a pipe that may take its number */
static void closer(int fd, uint32_t ev, void *arg)
{
	char c;
	(void)ev;
	(void)arg;
	if (read(fd, &c, 1) == 1)
		reads++;
	loop_del_fd(pb[0]);
	close(pb[0]);
	close(pb[1]);
	cr_assert_eq(pipe(pb), 0);
	cr_assert_eq(loop_add_fd(pb[0], EPOLLIN, on_read, NULL), 0);
}

static void on_turn(void *arg)
{
	(void)arg;
	turns++;
}

static void on_timer(void *arg)
{
	(void)arg;
	fired++;
}

static void on_repeat(void *arg)
{
	(void)arg;
	repeats++;
}


Test(loop, fds_timers_and_turn_hooks)
{
	cr_assert_eq(loop_init(), 0);
	cr_assert_eq(loop_on_turn(on_turn, NULL), 0);
	cr_assert_eq(pipe(pa), 0);
	cr_assert_eq(pipe(pb), 0);
	cr_assert_eq(loop_add_fd(pa[0], EPOLLIN, closer, NULL), 0);
	cr_assert_eq(loop_add_fd(pb[0], EPOLLIN, on_read, NULL), 0);
	cr_assert_eq(loop_add_fd(pa[0], EPOLLIN, closer, NULL), -EEXIST);
	/* both readable in one batch: the first callback replaces the second fd */
	cr_assert_eq(write(pa[1], "x", 1), 1);
	cr_assert_eq(write(pb[1], "y", 1), 1);
	loop_once(100);
	cr_assert_eq(reads, 1, "the replaced fd's stale event was skipped (%d reads)", reads);
	cr_assert_eq(turns, 1, "the turn hook ran after the wake-up");
	/* timers */
	uint64_t t0 = loop_now_ms();
	uint64_t once = loop_timer_add(30, 0, on_timer, NULL);
	uint64_t rep = loop_timer_add(10, 10, on_repeat, NULL);
	uint64_t gone = loop_timer_add(10, 0, on_timer, NULL);
	cr_assert(once && rep && gone);
	loop_timer_cancel(gone);
	while (loop_now_ms() - t0 < 120)
		loop_once(200); /* the timers bound the wait */
	cr_assert_eq(fired, 1, "one-shot fired once, the cancelled one never");
	cr_assert_geq(repeats, 5, "repeating timer: %d", repeats);
	cr_assert_gt(turns, 5);
	loop_timer_cancel(rep);
	/* hooks are bounded */
	for (unsigned i = 1; i < LOOP_MAX_TURN_HOOKS; i++)
		cr_assert_eq(loop_on_turn(on_turn, NULL), 0);
	cr_assert_eq(loop_on_turn(on_turn, NULL), -ENOSPC);
	loop_fini();
	close(pa[0]);
	close(pa[1]);
	close(pb[0]);
	close(pb[1]);
}
