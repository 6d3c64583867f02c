/*
 * test_adopt.c — the engine's state outliving its process (engine_adopt):
 * a child process runs the engine in a state file and the model client and
 * server in memory shared with the parent, and is killed (SIGKILL) at a
 * chosen point of the conversation; the parent maps the same file at another
 * address, takes the state over and the conversation goes on, byte-exact.
 * Then what happens when the state cannot be taken over: a layout that
 * differs is refused with what differs and its flows with offsets are reset
 * on both sides with the sequence numbers each end expects; a flow the old
 * process was updating when it died is reset too; no state at all is said.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "dtable.h"
#include "engine_int.h"
#include "tb.h"

#define GREETING "220 mx.test ESMTP\r\n"
#define EHLO_REPLY                                                                         \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-STARTTLS\r\n250-CHUNKING\r\n" \
	"250 8BITMIME\r\n"
#define R550(a) "550 5.1.1 <" a ">: Recipient address rejected: User unknown\r\n"
#define OK_MAIL "250 2.1.0 Ok\r\n"
#define OK_RCPT "250 2.1.5 Ok\r\n"
#define GO_DATA "354 End data with <CR><LF>.<CR><LF>\r\n"
#define QUEUED "250 2.0.0 Ok: queued as 4XYZ\r\n"

/* the conversation: everything after EHLO, cut where the old process dies */
static const char CONV[] = "MAIL FROM:<s@sender.test>\r\n"
			   "RCPT TO:<good@example.com>\r\n"
			   "RCPT TO:<bad1@example.com>\r\n"
			   "RCPT TO:<bad2@example.com>\r\n"
			   "RCPT TO:<Good@Example.COM>\r\n"
			   "DATA\r\n";
static const char BODY[] = "Subject: t\r\n\r\nRCPT TO:<bad1@example.com>\r\n..x\r\n.\r\n";
static const char CONV_SRV[] = "EHLO client.test\r\n"
			       "MAIL FROM:<s@sender.test>\r\n"
			       "RCPT TO:<good@example.com>\r\n"
			       "RCPT TO:<Good@Example.COM>\r\n"
			       "DATA\r\n"
			       "Subject: t\r\n\r\nRCPT TO:<bad1@example.com>\r\n..x\r\n.\r\n"
			       "QUIT\r\n";
static const char CONV_CLI[] = GREETING EHLO_REPLY OK_MAIL OK_RCPT R550("bad1@example.com")
	R550("bad2@example.com") OK_RCPT GO_DATA QUEUED "221 2.0.0 Bye\r\n";

/* Shared with the child: the test bed (endpoints, queue) and where the
 * child mapped the state. */
struct shared {
	struct tb t;
	void *child_at;
};
static struct shared *S;
static int state_fd = -1;
static size_t state_len;

static void preload(struct tb *t)
{
	tb_domain(t, "example.com", DT_MODE_CALLOUT, DT_MISS_PASS, 0, 0);
	tb_verdict(t, "good@example.com", 1);
	tb_verdict(t, "bad1@example.com", 0);
	tb_verdict(t, "bad2@example.com", 0);
}

static void setup(void)
{
	S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(S != MAP_FAILED);
	tb_init(&S->t, 4, 0, 1);
	cr_assert(S->t.have_shm, "the shared-memory file could not be created");
	preload(&S->t);
	state_len = (engine_mem_size(&S->t.conf) + 63u) & ~(size_t)63u;
	state_fd = memfd_create("rg-engine-state", 0);
	cr_assert(state_fd >= 0);
	cr_assert(ftruncate(state_fd, (off_t)state_len) == 0);
}

static void teardown(void)
{
	if (!S->t.emem)
		engine_destroy(S->t.e); /* tb_init's own, never replaced */
	S->t.emem = NULL; /* otherwise the engine lives in the file: not freed */
	S->t.e = NULL;
	tb_fini(&S->t);
	close(state_fd);
	munmap(S, sizeof(*S));
}

static void *map_state(void)
{
	void *m = mmap(NULL, state_len, PROT_READ | PROT_WRITE, MAP_SHARED, state_fd, 0);
	cr_assert(m != MAP_FAILED);
	return m;
}

/* In a child: a fresh engine in the state file, then run(), then SIGKILL
 * (no clean-up of any kind, as after kill -9).  The parent waits. */
static void in_killed_child(void (*run)(struct tb *t, const void *arg), const void *arg)
{
	int st = 0;
	/* the parent's engine (tb_init's, or one adopted before) is no longer
	 * used: S is shared, so the child's t->e = NULL below would lose it */
	engine_destroy(S->t.e);
	S->t.e = NULL;
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct tb *t = &S->t;
		void *m = map_state();
		memset(m, 0, state_len);
		S->child_at = m;
		t->e = NULL;
		t->emem = m;
		t->elen = state_len;
		tb_reset(t);
		run(t, arg);
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	cr_assert(waitpid(pid, &st, 0) == pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the child did not die killed");
	S->t.e = NULL;
}

/* The parent: the same file at another address, taken over. */
static void *adopt_elsewhere(int expect_rc, char *why, size_t whylen)
{
	void *hole = mmap(S->child_at, state_len, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	void *m = map_state();
	cr_assert(m != S->child_at, "the state must be mapped elsewhere");
	cr_assert_eq(tb_adopt(&S->t, m, state_len, why, whylen), expect_rc, "%s", why);
	if (hole != MAP_FAILED)
		munmap(hole, state_len);
	return m;
}

static void no_errors(const struct tb *t)
{
	char m[600];
	cr_assert(!tb_errors(t, m, sizeof(m)), "%s", m);
}

static void all_acked(const struct tb *t)
{
	char m[200];
	cr_assert(!tb_unacked(t, m, sizeof(m)), "%s", m);
}

static void first_part(struct tb *t, const void *arg)
{
	uint32_t cut = *(const uint32_t *)arg;
	tb_open(t);
	tb_send(t, &t->cli, "EHLO client.test\r\n", 18);
	tb_pump(t);
	if (cut)
		tb_send(t, &t->cli, CONV, cut);
	tb_pump(t);
}

static void rest(struct tb *t, uint32_t cut)
{
	if (cut < sizeof(CONV) - 1)
		tb_send(t, &t->cli, CONV + cut, (uint32_t)(sizeof(CONV) - 1 - cut));
	tb_pump(t);
	tb_send(t, &t->cli, BODY, sizeof(BODY) - 1);
	tb_pump(t);
	tb_send(t, &t->cli, "QUIT\r\n", 6);
	tb_pump(t);
	tb_recover(t, 20);
}

TestSuite(adopt, .init = setup, .fini = teardown, .timeout = 240);

/* Killed after every byte of the conversation in turn (held partial lines,
 * answers in flight, edits in force): the adopter goes on byte-exact. */
Test(adopt, conversation_goes_on_in_another_process)
{
	char why[256];
	for (uint32_t cut = 0; cut < sizeof(CONV) - 1; cut++) {
		in_killed_child(first_part, &cut);
		void *m = adopt_elsewhere(0, why, sizeof(why));
		struct tb *t = &S->t;
		cr_assert_eq(tb_stat(t, STAT_FLOWS_ADOPTED), 1, "cut %u", cut);
		rest(t, cut);
		no_errors(t);
		cr_assert_str_eq(tb_rx_str(&t->srv), CONV_SRV, "cut %u", cut);
		cr_assert_str_eq(tb_rx_str(&t->cli), CONV_CLI, "cut %u", cut);
		all_acked(t);
		cr_assert(!t->cli.rst_rcvd && !t->srv.rst_rcvd, "cut %u: a reset", cut);
		cr_assert_eq(tb_stat(t, STAT_FLOWS_ADOPT_RESET), 0);
		cr_assert_eq(tb_stat(t, STAT_RCPT_REJECTED), 2, "cut %u", cut);
		munmap(m, state_len);
		t->e = NULL;
		t->emem = NULL;
	}
}

/* Killed while an answer injected on its own was lost: the adopter's timer
 * resends it. */
static void lost_answer(struct tb *t, const void *arg)
{
	static struct tb_drop d;
	(void)arg;
	tb_open(t);
	tb_send(t, &t->cli, "EHLO client.test\r\n", 18);
	tb_pump(t);
	tb_send(t, &t->cli, "MAIL FROM:<s@sender.test>\r\n", 27);
	tb_pump(t);
	d = (struct tb_drop){.dir_to_server = 0, .from_engine = 1, .count = 1, .data_only = 1};
	t->filter = tb_drop_filter;
	t->filter_arg = &d;
	tb_send(t, &t->cli, "RCPT TO:<bad1@example.com>\r\n", 28);
	tb_pump(t);
	t->filter = NULL;
}

Test(adopt, lost_answer_resent_by_the_adopter)
{
	char why[256];
	struct tb *t = &S->t;
	in_killed_child(lost_answer, NULL);
	cr_assert_str_eq(tb_rx_str(&t->cli), GREETING EHLO_REPLY OK_MAIL);
	adopt_elsewhere(0, why, sizeof(why));
	tb_recover(t, 10);
	cr_assert_str_eq(tb_rx_str(&t->cli),
			 GREETING EHLO_REPLY OK_MAIL R550("bad1@example.com"));
	cr_assert_geq(tb_stat(t, STAT_INJECT_RETX), 1);
	no_errors(t);
	all_acked(t);
}

/* Another layout: refused naming what differs; the flow with offsets is
 * reset on both sides, each RST at the sequence number its end expects. */
Test(adopt, mismatch_refused_flows_reset)
{
	char why[256];
	struct tb *t = &S->t;
	uint32_t cut = sizeof(CONV) - 1;
	void *old, *fresh;
	in_killed_child(first_part, &cut);
	t->conf.max_flows = 128;
	old = adopt_elsewhere(-EPROTO, why, sizeof(why));
	cr_assert(strstr(why, "max_flows: the state has 64, this engine 128"), "%s", why);
	fresh = aligned_alloc(64, (engine_mem_size(&t->conf) + 63u) & ~(size_t)63u);
	t->emem = fresh;
	t->elen = engine_mem_size(&t->conf);
	{
		struct tb_ep c = t->cli, s = t->srv; /* tb_reset forgets the endpoints */
		tb_reset(t);
		t->cli = c;
		t->srv = s;
	}
	cr_assert_eq(engine_import_resets(t->e, old, state_len, why, sizeof(why)), 1, "%s", why);
	tb_tick(t, 1);
	tb_pump(t);
	cr_assert(t->cli.rst_rcvd && t->srv.rst_rcvd, "both ends reset");
	cr_assert_eq(t->cli.rst_seq, t->cli.rcv_nxt, "the client's RST at what it expects");
	cr_assert_eq(t->srv.rst_seq, t->srv.rcv_nxt, "the server's RST at what it expects");
	cr_assert_eq(tb_stat(t, STAT_FLOWS_ADOPT_RESET), 1);
	cr_assert_eq(tb_stat(t, STAT_FLOWS_RESET), 1);
	no_errors(t);
	/* a segment of it after that meets no flow: forwarded untracked, and
	 * the endpoints, reset, are gone */
	t->e = NULL;
	t->emem = NULL;
	free(fresh);
	munmap(old, state_len);
}

/* Same layout, but the flow was being updated when the process died. */
static void torn(struct tb *t, const void *arg)
{
	uint32_t cut = sizeof(CONV) - 1;
	struct engine_state_hdr *h = t->emem;
	(void)arg;
	first_part(t, &cut);
	h->in_call = 1;
	h->cur_flow = 0; /* the only flow: slot 0 */
	if (((struct engine *)t->emem)->ft.flows[0].state == 0)
		_exit(5);
}

Test(adopt, torn_flow_reset_on_its_next_segment)
{
	char why[256];
	struct tb *t = &S->t;
	in_killed_child(torn, NULL);
	adopt_elsewhere(0, why, sizeof(why));
	cr_assert_eq(tb_stat(t, STAT_FLOWS_ADOPTED), 1);
	tb_send(t, &t->cli, BODY, sizeof(BODY) - 1);
	tb_pump(t);
	cr_assert(t->cli.rst_rcvd && t->srv.rst_rcvd, "both ends reset");
	cr_assert_eq(t->cli.rst_seq, t->cli.rcv_nxt);
	cr_assert_eq(t->srv.rst_seq, t->srv.rcv_nxt);
	cr_assert_eq(tb_stat(t, STAT_FLOWS_ADOPT_RESET), 1);
	cr_assert(strstr(tb_rx_str(&t->srv), "Subject") == NULL, "no byte passed untranslated");
}

Test(adopt, no_state_said)
{
	char why[256];
	struct tb *t = &S->t;
	void *m = map_state();
	memset(m, 0, state_len);
	cr_assert_eq(tb_adopt(t, m, state_len, why, sizeof(why)), -ENOENT);
	cr_assert_str_eq(why, "no engine state");
	cr_assert_eq(engine_state_size(m, state_len), 0);
	munmap(m, state_len);
}

/* The hold set: a flow enters it once established, leaves it when
 * forgotten; changes not yet taken survive the process, and the adopter
 * lists the whole set again for a hold map that starts empty. */
static void held(struct tb *t, const void *arg)
{
	uint32_t cut = sizeof(CONV) - 1;
	struct engine_hold h[4];
	(void)arg;
	(void)h;
	engine_hold_enable(t->e, 1);
	tb_open(t);
	tb_send(t, &t->cli, "EHLO client.test\r\n", 18);
	tb_send(t, &t->cli, CONV, cut);
	tb_pump(t);
}

Test(adopt, hold_set_follows_offsets_and_survives)
{
	char why[256];
	struct tb *t = &S->t;
	struct engine_hold h[4];
	uint32_t cur = 0;
	in_killed_child(held, NULL);
	adopt_elsewhere(0, why, sizeof(why));
	/* the change the old process queued and nobody applied */
	cr_assert_eq(engine_hold_changes(t->e, h, 4), 1);
	cr_assert_eq(h[0].add, 1);
	cr_assert_eq(h[0].family, 4);
	cr_assert_eq(h[0].c_port, t->cli.port);
	cr_assert_eq(h[0].s_port, t->srv.port);
	cr_assert(!memcmp(h[0].c_ip, t->cli.ip, 4) && !memcmp(h[0].s_ip, t->srv.ip, 4));
	cr_assert_eq(engine_hold_changes(t->e, h, 4), 0);
	cr_assert_eq(engine_hold_all(t->e, &cur, h, 4), 1, "the set listed again");
	cr_assert_eq(engine_hold_all(t->e, &cur, h, 4), 0);
	/* the session ends: it leaves the set once forgotten (after the linger) */
	engine_hold_enable(t->e, 1);
	rest(t, sizeof(CONV) - 1);
	tb_send_fin(t, &t->cli);
	tb_send_fin(t, &t->srv);
	tb_pump(t);
	tb_tick(t, 3000);
	tb_tick(t, 10);
	cr_assert_eq(engine_hold_changes(t->e, h, 4), 1);
	cr_assert_eq(h[0].add, 0, "left the set");
	cur = 0;
	cr_assert_eq(engine_hold_all(t->e, &cur, h, 4), 0);
}

/* A flow whose busy block the dead process left out of range: reset, not
 * read through a wild index. */
static void wild_block(struct tb *t, const void *arg)
{
	uint32_t cut = 70; /* in a RCPT line: held bytes, a busy block */
	struct engine *e = t->emem;
	(void)arg;
	first_part(t, &cut);
	if (e->ft.flows[0].busy == UINT32_MAX)
		_exit(5); /* no busy block: the parent says the child did not die killed */
	e->ft.flows[0].busy = 0x7fffffffu;
}

Test(adopt, wild_block_index_reset)
{
	char why[256];
	struct tb *t = &S->t;
	in_killed_child(wild_block, NULL);
	adopt_elsewhere(0, why, sizeof(why));
	tb_tick(t, 1);
	tb_pump(t);
	cr_assert(t->cli.rst_rcvd && t->srv.rst_rcvd, "both ends reset");
	cr_assert_eq(t->cli.rst_seq, t->cli.rcv_nxt);
	cr_assert_eq(t->srv.rst_seq, t->srv.rcv_nxt);
	cr_assert_eq(tb_stat(t, STAT_FLOWS_ADOPT_RESET), 1);
	no_errors(t);
}
