/*
 * test_engine.c — the engine end to end on synthetic frames: a model client
 * and a model SMTP server talk through engine_rx(); each checks every frame
 * it gets (checksums, addresses, bytes never changing on retransmission, ACKs
 * and SACKs within what was sent), and each test checks the two byte streams
 * and the counters.  Table-driven where the same session runs many ways.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dtable.h"
#include "msg.h"
#include "pkt.h"
#include "spsc.h"
#include "engine_int.h"
#include "tb.h"

#define GREETING "220 mx.test ESMTP\r\n"
#define EHLO_REPLY                                                                         \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-STARTTLS\r\n250-CHUNKING\r\n" \
	"250 8BITMIME\r\n"
#define R550(a) "550 5.1.1 <" a ">: Recipient address rejected: User unknown\r\n"
#define R450(a) "450 4.7.1 <" a ">: Recipient address rejected: verification in progress\r\n"
#define R554 "554 5.5.1 Error: no valid recipients\r\n"
#define OK_MAIL "250 2.1.0 Ok\r\n"
#define OK_RCPT "250 2.1.5 Ok\r\n"
#define GO_DATA "354 End data with <CR><LF>.<CR><LF>\r\n"
#define QUEUED "250 2.0.0 Ok: queued as 4XYZ\r\n"

static struct tb T;

static void preload(struct tb *t)
{
	tb_domain(t, "example.com", DT_MODE_CALLOUT, DT_MISS_PASS, 0, 0);
	tb_domain(t, "defer.test", DT_MODE_CALLOUT, DT_MISS_DEFER, 0, 0);
	tb_domain(t, "closed.test", DT_MODE_LIST, DT_MISS_PASS, 0, 0);
	tb_domain(t, "partial.test", DT_MODE_LIST, DT_MISS_PASS, DT_F_LIST_PARTIAL, 0);
	tb_domain(t, "harvest.test", DT_MODE_CALLOUT, DT_MISS_PASS, 0, 3);
	tb_verdict(t, "good@example.com", 1);
	tb_verdict(t, "bad1@example.com", 0);
	tb_verdict(t, "bad2@example.com", 0);
	tb_verdict(t, "bad3@example.com", 0);
	tb_verdict(t, "ok@closed.test", 1);
	tb_verdict(t, "ok@partial.test", 1);
	for (int i = 0; i < 5; i++) {
		char a[64];
		snprintf(a, sizeof(a), "h%d@harvest.test", i);
		tb_verdict(t, a, 0);
	}
}

static void setup4(void)
{
	tb_init(&T, 4, 0, 1);
	cr_assert(T.have_shm, "the shared-memory file could not be created");
	preload(&T);
}

static void teardown(void)
{
	tb_fini(&T);
}

static void no_errors(const struct tb *t)
{
	char m[600];
	cr_assert(!tb_errors(t, m, sizeof(m)), "%s", m);
}

/* Both ends have had everything they sent acknowledged. */
static void all_acked(const struct tb *t)
{
	char m[200];
	cr_assert(!tb_unacked(t, m, sizeof(m)), "%s", m);
}

static void ehlo(struct tb *t)
{
	tb_open(t);
	tb_send(t, &t->cli, "EHLO client.test\r\n", 18);
	tb_pump(t);
}

/* ---- the pipelined transcript, cut every possible way ---- */

static const char PIPE[] = "MAIL FROM:<s@sender.test>\r\n"
			   "RCPT TO:<good@example.com>\r\n"
			   "RCPT TO:<bad1@example.com>\r\n"
			   "RCPT TO:<bad2@example.com>\r\n"
			   "RCPT TO:<Good@Example.COM>\r\n"
			   "RCPT TO:<bad3@example.com>\r\n"
			   "DATA\r\n";
static const char PIPE_SRV[] = "EHLO client.test\r\n"
			       "MAIL FROM:<s@sender.test>\r\n"
			       "RCPT TO:<good@example.com>\r\n"
			       "RCPT TO:<Good@Example.COM>\r\n"
			       "DATA\r\n"
			       "Subject: t\r\n\r\nRCPT TO:<bad1@example.com>\r\n..x\r\n.\r\n"
			       "QUIT\r\n";
static const char PIPE_CLI[] = GREETING EHLO_REPLY OK_MAIL OK_RCPT R550("bad1@example.com")
	R550("bad2@example.com") OK_RCPT R550("bad3@example.com") GO_DATA QUEUED
	"221 2.0.0 Bye\r\n";
static const char BODY[] = "Subject: t\r\n\r\nRCPT TO:<bad1@example.com>\r\n..x\r\n.\r\n";

static void run_pipe(struct tb *t, const uint32_t *cuts, unsigned n)
{
	ehlo(t);
	tb_send_split(t, PIPE, sizeof(PIPE) - 1, cuts, n);
	tb_pump(t);
	tb_send(t, &t->cli, BODY, sizeof(BODY) - 1);
	tb_pump(t);
	tb_send(t, &t->cli, "QUIT\r\n", 6);
	tb_pump(t);
	no_errors(t);
	cr_assert_str_eq(tb_rx_str(&t->srv), PIPE_SRV);
	cr_assert_str_eq(tb_rx_str(&t->cli), PIPE_CLI);
	all_acked(t);
	cr_assert_eq(tb_stat(t, STAT_RCPT_REJECTED), 3);
	cr_assert_eq(tb_stat(t, STAT_RCPT_VALID), 2);
}

TestSuite(engine, .init = setup4, .fini = teardown, .timeout = 120);

Test(engine, pipelined_one_segment)
{
	run_pipe(&T, NULL, 0);
}

Test(engine, pipelined_every_split_point)
{
	for (uint32_t cut = 1; cut < sizeof(PIPE) - 1; cut++) {
		tb_reset(&T);
		run_pipe(&T, &cut, 1);
	}
}

Test(engine, pipelined_one_byte_segments)
{
	uint32_t cuts[sizeof(PIPE)];
	for (uint32_t i = 0; i < sizeof(PIPE) - 1; i++)
		cuts[i] = i + 1;
	run_pipe(&T, cuts, sizeof(PIPE) - 2);
}

Test(engine, pipelined_every_pair_of_split_points_sampled)
{
	/* every split point combined with a second one 1..7 bytes later */
	for (uint32_t a = 1; a < sizeof(PIPE) - 1; a += 3)
		for (uint32_t d = 1; d < 8; d += 2) {
			uint32_t cuts[2] = {a, a + d};
			tb_reset(&T);
			run_pipe(&T, cuts, 2);
		}
}

/* ---- retransmission, reordering, overlap ---- */

Test(engine, retransmission_after_edit_is_edited_the_same)
{
	ehlo(&T);
	uint32_t base = T.cli.tx_len;
	tb_send(&T, &T.cli, PIPE, sizeof(PIPE) - 1);
	tb_pump(&T);
	/* the same bytes again, whole and in pieces that start inside removed lines */
	tb_resend(&T, &T.cli, base, sizeof(PIPE) - 1);
	tb_resend(&T, &T.cli, base + 60, 40);
	tb_resend(&T, &T.cli, base + 90, 50);
	tb_pump(&T);
	tb_send(&T, &T.cli, BODY, sizeof(BODY) - 1);
	tb_send(&T, &T.cli, "QUIT\r\n", 6);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_str_eq(tb_rx_str(&T.srv), PIPE_SRV);
	cr_assert_str_eq(tb_rx_str(&T.cli), PIPE_CLI);
	cr_assert_gt(tb_stat(&T, STAT_RETRANS), 0);
	all_acked(&T);
}

Test(engine, retransmission_before_the_server_acked)
{
	struct tb_drop c = {.dir_to_server = 1, .from_engine = 1, .count = 1, .data_only = 1};
	ehlo(&T);
	uint32_t base = T.cli.tx_len;
	T.filter = tb_drop_filter;
	T.filter_arg = &c;
	/* the edited segment is lost after the engine: the client resends it */
	tb_send(&T, &T.cli, PIPE, sizeof(PIPE) - 1);
	tb_pump(&T);
	cr_assert_eq(T.srv.rx_len, 18, "the lost segment never reached the server");
	tb_resend(&T, &T.cli, base, sizeof(PIPE) - 1);
	tb_pump(&T);
	tb_send(&T, &T.cli, BODY, sizeof(BODY) - 1);
	tb_send(&T, &T.cli, "QUIT\r\n", 6);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_str_eq(tb_rx_str(&T.srv), PIPE_SRV);
	cr_assert_str_eq(tb_rx_str(&T.cli), PIPE_CLI);
	all_acked(&T);
}

Test(engine, segment_lost_before_the_engine_is_parsed_when_resent)
{
	struct tb_drop c = {.dir_to_server = 1, .from_engine = 0, .count = 1, .data_only = 1};
	ehlo(&T);
	uint32_t base = T.cli.tx_len;
	T.filter = tb_drop_filter;
	T.filter_arg = &c;
	tb_send(&T, &T.cli, PIPE, sizeof(PIPE) - 1);
	tb_pump(&T);
	tb_resend(&T, &T.cli, base, sizeof(PIPE) - 1);
	tb_pump(&T);
	tb_send(&T, &T.cli, BODY, sizeof(BODY) - 1);
	tb_send(&T, &T.cli, "QUIT\r\n", 6);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_str_eq(tb_rx_str(&T.srv), PIPE_SRV);
	cr_assert_str_eq(tb_rx_str(&T.cli), PIPE_CLI);
}

struct reorder_case {
	const char *name;
	uint32_t order[6][2]; /* (offset, len) within PIPE, sent in this order */
	unsigned n;
};

static const struct reorder_case reorder_cases[] = {
	{"second half first", {{100, 73}, {0, 100}}, 2},
	{"three pieces backwards", {{120, 53}, {60, 60}, {0, 60}}, 3},
	{"middle first, then overlapping", {{50, 60}, {0, 80}, {70, 103}}, 3},
	{"duplicate out of order", {{100, 73}, {100, 73}, {0, 100}}, 3},
	{"one byte gap filled last", {{1, 172}, {0, 1}}, 2},
};

Test(engine, reordering_table)
{
	for (unsigned k = 0; k < sizeof(reorder_cases) / sizeof(reorder_cases[0]); k++) {
		const struct reorder_case *rc = &reorder_cases[k];
		tb_reset(&T);
		ehlo(&T);
		uint32_t base = T.cli.tx_len;
		cr_assert_eq(sizeof(PIPE) - 1, 173, "the cases assume 173 bytes");
		tb_stage(&T, &T.cli, PIPE, sizeof(PIPE) - 1);
		for (unsigned i = 0; i < rc->n; i++) {
			tb_resend(&T, &T.cli, base + rc->order[i][0], rc->order[i][1]);
			tb_pump(&T);
		}
		tb_send(&T, &T.cli, BODY, sizeof(BODY) - 1);
		tb_send(&T, &T.cli, "QUIT\r\n", 6);
		tb_pump(&T);
		cr_assert_str_empty(T.cli.err, "%s: %s", rc->name, T.cli.err);
		cr_assert_str_empty(T.srv.err, "%s: %s", rc->name, T.srv.err);
		cr_assert_str_eq(tb_rx_str(&T.srv), PIPE_SRV, "%s", rc->name);
		cr_assert_str_eq(tb_rx_str(&T.cli), PIPE_CLI, "%s", rc->name);
	}
}

Test(engine, overlapping_retransmission_with_other_bytes_changes_nothing)
{
	ehlo(&T);
	uint32_t base = T.cli.tx_len;
	tb_send(&T, &T.cli, PIPE, sizeof(PIPE) - 1);
	tb_pump(&T);
	/* "bad1" (removed) resent as "good", and "good" (forwarded) as "bad2" */
	const char *p1 = strstr(PIPE, "bad1"), *p2 = strstr(PIPE, "<good");
	tb_resend_other(&T, &T.cli, base + (uint32_t)(p1 - PIPE), "good", 4);
	tb_resend_other(&T, &T.cli, base + (uint32_t)(p2 - PIPE) + 1, "bad2", 4);
	tb_pump(&T);
	tb_send(&T, &T.cli, BODY, sizeof(BODY) - 1);
	tb_send(&T, &T.cli, "QUIT\r\n", 6);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_str_eq(tb_rx_str(&T.srv), PIPE_SRV);
	cr_assert_str_eq(tb_rx_str(&T.cli), PIPE_CLI);
	cr_assert_eq(tb_stat(&T, STAT_RCPT_REJECTED), 3);
}

Test(engine, server_retransmits_a_reply_that_carried_injections)
{
	struct tb_drop c = {.dir_to_server = 0, .from_engine = 1, .count = 1, .data_only = 1};
	ehlo(&T);
	uint32_t sbase = T.srv.tx_len;
	T.filter = tb_drop_filter;
	T.filter_arg = &c;
	tb_send(&T, &T.cli, PIPE, sizeof(PIPE) - 1);
	tb_pump(&T);
	cr_assert_eq(T.cli.rx_len, sizeof(GREETING EHLO_REPLY) - 1, "reply segment was lost");
	tb_resend(&T, &T.srv, sbase, T.srv.tx_len - sbase);
	tb_pump(&T);
	tb_send(&T, &T.cli, BODY, sizeof(BODY) - 1);
	tb_send(&T, &T.cli, "QUIT\r\n", 6);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_str_eq(tb_rx_str(&T.cli), PIPE_CLI);
	all_acked(&T);
}

Test(engine, sack_blocks_are_translated)
{
	ehlo(&T);
	tb_send(&T, &T.cli, PIPE, sizeof(PIPE) - 1);
	tb_pump(&T);
	/* the client SACKs the tail of what it got (after the injected 550s) */
	uint32_t r = T.cli.rcv_nxt, blk[2][2] = {{r - 10, r}, {r - 40, r - 20}};
	tb_send_sack(&T, &T.cli, blk, 2);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_gt(T.srv.sacks_rcvd, 0);
	cr_assert_eq(T.srv.max_sack_r, T.srv.snd_nxt - 20, "right edge in the server's numbers");
	cr_assert_str_empty(T.cli.err, "%s", T.cli.err);
}

Test(engine, sack_block_inside_injected_text_is_removed)
{
	ehlo(&T);
	T.cli.auto_ack = 0; /* keep the injected replies unacknowledged */
	tb_send(&T, &T.cli, PIPE, sizeof(PIPE) - 1);
	tb_pump(&T);
	const char *cli = tb_rx_str(&T.cli);
	uint32_t at = (uint32_t)(strstr(cli, "550 5.1.1 <bad1") - cli);
	uint32_t v0 = T.cli.peer_isn + 1 + at, keep = T.cli.rcv_nxt;
	uint32_t inj[1][2] = {{v0 + 2, v0 + 20}}, tail[1][2] = {{keep - 10, keep}};
	unsigned before = T.srv.sacks_rcvd;
	T.cli.rcv_nxt = v0; /* ACK up to the first injected reply only */
	tb_send_sack(&T, &T.cli, inj, 1);
	tb_pump(&T);
	cr_assert_eq(T.srv.sacks_rcvd, before, "the empty block was removed");
	tb_send_sack(&T, &T.cli, tail, 1);
	tb_pump(&T);
	cr_assert_eq(T.srv.sacks_rcvd, before + 1);
	cr_assert_eq(T.srv.max_sack_r, T.srv.snd_nxt, "right edge in the server's numbers");
	T.cli.rcv_nxt = keep;
	tb_send_ack(&T, &T.cli);
	tb_pump(&T);
	no_errors(&T);
	all_acked(&T);
}

/* ---- sessions ---- */

struct sess_case {
	const char *name;
	const char *steps[8]; /* client sends, one step at a time (pump between) */
	const char *srv;      /* what the server must have received */
	const char *cli;      /* what the client must have received */
	enum stats_id stat;   /* a counter that must have moved */
};

static const struct sess_case sess_cases[] = {
	{"all-invalid transaction, pipelined DATA answered 554",
	 {"MAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@example.com>\r\nRCPT TO:<bad2@example.com>\r\nDATA\r\n",
	  "RSET\r\n", "QUIT\r\n"},
	 "EHLO client.test\r\nMAIL FROM:<s@x.test>\r\nRSET\r\nQUIT\r\n",
	 GREETING EHLO_REPLY OK_MAIL R550("bad1@example.com") R550("bad2@example.com") R554
		 "250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n",
	 STAT_DATA_REFUSED},
	{"all-invalid transaction, one command at a time",
	 {"MAIL FROM:<s@x.test>\r\n", "RCPT TO:<bad1@example.com>\r\n", "DATA\r\n", "QUIT\r\n"},
	 "EHLO client.test\r\nMAIL FROM:<s@x.test>\r\nQUIT\r\n",
	 GREETING EHLO_REPLY OK_MAIL R550("bad1@example.com") R554 "221 2.0.0 Bye\r\n",
	 STAT_INJECTED},
	{"BDAT with no valid recipient: chunk swallowed",
	 {"MAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@example.com>\r\nBDAT 13\r\nRCPT TO:<x>\r\nBDAT 3 LAST\r\nabc",
	  "QUIT\r\n"},
	 "EHLO client.test\r\nMAIL FROM:<s@x.test>\r\nQUIT\r\n",
	 GREETING EHLO_REPLY OK_MAIL R550("bad1@example.com") R554 R554 "221 2.0.0 Bye\r\n",
	 STAT_DATA_REFUSED},
	{"BDAT chunks pass unparsed",
	 {"MAIL FROM:<s@x.test>\r\nRCPT TO:<good@example.com>\r\nBDAT 28\r\nRCPT TO:<bad1@example.com>\r\n",
	  "BDAT 0 LAST\r\n", "QUIT\r\n"},
	 "EHLO client.test\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<good@example.com>\r\nBDAT 28\r\n"
	 "RCPT TO:<bad1@example.com>\r\nBDAT 0 LAST\r\nQUIT\r\n",
	 GREETING EHLO_REPLY OK_MAIL OK_RCPT "250 2.0.0 Ok: chunk\r\n250 2.0.0 Ok: queued\r\n"
					     "221 2.0.0 Bye\r\n",
	 STAT_RCPT_VALID},
	{"STARTTLS: the flow turns opaque",
	 {"STARTTLS\r\n", "\x16\x03\x01RCPT TO:<bad1@example.com>\r\n"},
	 "EHLO client.test\r\nSTARTTLS\r\n\x16\x03\x01RCPT TO:<bad1@example.com>\r\n",
	 GREETING EHLO_REPLY "220 2.0.0 Ready to start TLS\r\n",
	 STAT_STARTTLS},
	{"AUTH exchange is not parsed",
	 {"AUTH LOGIN\r\n", "RCPT TO:<bad1@example.com>\r\n",
	  "MAIL FROM:<s@x.test>\r\nRCPT TO:<bad2@example.com>\r\n", "QUIT\r\n"},
	 "EHLO client.test\r\nAUTH LOGIN\r\nRCPT TO:<bad1@example.com>\r\nMAIL FROM:<s@x.test>\r\nQUIT\r\n",
	 GREETING EHLO_REPLY "334 VXNlcm5hbWU6\r\n235 2.7.0 Authentication successful\r\n" OK_MAIL
		 R550("bad2@example.com") "221 2.0.0 Bye\r\n",
	 STAT_RCPT_REJECTED},
	{"bare LF ends a command line",
	 {"MAIL FROM:<s@x.test>\nRCPT TO:<bad1@example.com>\nQUIT\n"},
	 "EHLO client.test\r\nMAIL FROM:<s@x.test>\nQUIT\n",
	 GREETING EHLO_REPLY OK_MAIL R550("bad1@example.com") "221 2.0.0 Bye\r\n",
	 STAT_BARE_LF},
	{"NUL in a command: forwarded undecided",
	 {"MAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@exam\0ple.com>\r\n", "QUIT\r\n"},
	 NULL, NULL, STAT_NUL_BYTES},
	{"defer policy answers 450 and queues a miss",
	 {"MAIL FROM:<s@x.test>\r\nRCPT TO:<who@defer.test>\r\nRCPT TO:<good@example.com>\r\n",
	  "QUIT\r\n"},
	 "EHLO client.test\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<good@example.com>\r\nQUIT\r\n",
	 GREETING EHLO_REPLY OK_MAIL R450("who@defer.test") OK_RCPT "221 2.0.0 Bye\r\n",
	 STAT_MISS_ENQ},
	{"closed list: unlisted is invalid, listed passes, other domains pass",
	 {"MAIL FROM:<s@x.test>\r\nRCPT TO:<no@closed.test>\r\nRCPT TO:<ok@closed.test>\r\n"
	  "RCPT TO:<any@elsewhere.test>\r\nRCPT TO:<new@example.com>\r\n",
	  "QUIT\r\n"},
	 "EHLO client.test\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<ok@closed.test>\r\n"
	 "RCPT TO:<any@elsewhere.test>\r\nRCPT TO:<new@example.com>\r\nQUIT\r\n",
	 GREETING EHLO_REPLY OK_MAIL R550("no@closed.test") OK_RCPT OK_RCPT OK_RCPT
		 "221 2.0.0 Bye\r\n",
	 STAT_RCPT_UNMANAGED},
	{"closed list not published whole: a miss passes (the destination decides)",
	 {"MAIL FROM:<s@x.test>\r\nRCPT TO:<no@partial.test>\r\nRCPT TO:<ok@partial.test>\r\n",
	  "QUIT\r\n"},
	 "EHLO client.test\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<no@partial.test>\r\n"
	 "RCPT TO:<ok@partial.test>\r\nQUIT\r\n",
	 GREETING EHLO_REPLY OK_MAIL OK_RCPT OK_RCPT "221 2.0.0 Bye\r\n",
	 STAT_RCPT_MISS},
	{"answer right after a multi-line reply",
	 {"RSET\r\nEHLO again.test\r\nRCPT TO:<bad1@example.com>\r\nEHLO third.test\r\n"
	  "RCPT TO:<bad2@example.com>\r\n",
	  "QUIT\r\n"},
	 "EHLO client.test\r\nRSET\r\nEHLO again.test\r\nEHLO third.test\r\nQUIT\r\n",
	 GREETING EHLO_REPLY "250 2.0.0 Ok\r\n" EHLO_REPLY R550("bad1@example.com") EHLO_REPLY
		 R550("bad2@example.com") "221 2.0.0 Bye\r\n",
	 STAT_RCPT_REJECTED},
	{"AUTH with an initial response, then a transaction",
	 {"AUTH PLAIN AHVzZXIAcGFzcw==\r\n", "RCPT TO:<bad1@example.com>\r\n",
	  "MAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@example.com>\r\nRCPT TO:<good@example.com>\r\n",
	  "QUIT\r\n"},
	 "EHLO client.test\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\nRCPT TO:<bad1@example.com>\r\n"
	 "MAIL FROM:<s@x.test>\r\nRCPT TO:<good@example.com>\r\nQUIT\r\n",
	 GREETING EHLO_REPLY "334 VXNlcm5hbWU6\r\n235 2.7.0 Authentication successful\r\n" OK_MAIL
		 R550("bad1@example.com") OK_RCPT "221 2.0.0 Bye\r\n",
	 STAT_RCPT_VALID},
	{"body sent before the 354: held until it, then read as the body",
	 {"MAIL FROM:<s@x.test>\r\nRCPT TO:<good@example.com>\r\nDATA\r\nRCPT TO:<bad1@example.com>\r\n.\r\n",
	  "RCPT TO:<bad2@example.com>\r\n"},
	 "EHLO client.test\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<good@example.com>\r\nDATA\r\n"
	 "RCPT TO:<bad1@example.com>\r\n.\r\n",
	 GREETING EHLO_REPLY OK_MAIL OK_RCPT GO_DATA QUEUED R550("bad2@example.com"),
	 STAT_HELD_ACKED},
	{"RSET and a second transaction",
	 {"MAIL FROM:<a@x.test>\r\nRCPT TO:<bad1@example.com>\r\nRSET\r\n"
	  "MAIL FROM:<b@x.test>\r\nRCPT TO:<good@example.com>\r\nDATA\r\n",
	  ".\r\n", "QUIT\r\n"},
	 "EHLO client.test\r\nMAIL FROM:<a@x.test>\r\nRSET\r\nMAIL FROM:<b@x.test>\r\n"
	 "RCPT TO:<good@example.com>\r\nDATA\r\n.\r\nQUIT\r\n",
	 GREETING EHLO_REPLY OK_MAIL R550("bad1@example.com") "250 2.0.0 Ok\r\n" OK_MAIL OK_RCPT
		 GO_DATA QUEUED "221 2.0.0 Bye\r\n",
	 STAT_RCPT_REJECTED},
};

static void run_sess(const struct sess_case *sc)
{
	ehlo(&T);
	for (unsigned i = 0; i < 8 && sc->steps[i]; i++) {
		size_t n = strlen(sc->steps[i]);
		if (strstr(sc->name, "NUL") && i == 0)
			n = 52; /* the step holds a NUL */
		tb_send(&T, &T.cli, sc->steps[i], (uint32_t)n);
		tb_pump(&T);
	}
	cr_assert_str_empty(T.cli.err, "%s: %s", sc->name, T.cli.err);
	cr_assert_str_empty(T.srv.err, "%s: %s", sc->name, T.srv.err);
	if (sc->srv)
		cr_assert_str_eq(tb_rx_str(&T.srv), sc->srv, "%s", sc->name);
	if (sc->cli)
		cr_assert_str_eq(tb_rx_str(&T.cli), sc->cli, "%s", sc->name);
	cr_assert_gt(tb_stat(&T, sc->stat), 0, "%s: counter did not move", sc->name);
	all_acked(&T);
}

Test(engine, sessions_table)
{
	for (unsigned k = 0; k < sizeof(sess_cases) / sizeof(sess_cases[0]); k++) {
		tb_reset(&T);
		run_sess(&sess_cases[k]);
	}
}

Test(engine, nul_line_reaches_the_server_intact)
{
	static const char step[] = "MAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@exam\0ple.com>\r\n";
	ehlo(&T);
	tb_send(&T, &T.cli, step, sizeof(step) - 1);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_eq(T.srv.rx_len, 18 + sizeof(step) - 1);
	cr_assert(memcmp(T.srv.rx + 18, step, sizeof(step) - 1) == 0);
}

Test(engine, over_long_line_fails_open)
{
	char line[3000];
	memcpy(line, "NOOP ", 5);
	memset(line + 5, 'x', sizeof(line) - 7);
	line[sizeof(line) - 2] = '\r';
	line[sizeof(line) - 1] = '\n';
	ehlo(&T);
	tb_send(&T, &T.cli, line, sizeof(line));
	tb_pump(&T);
	tb_send(&T, &T.cli, "RCPT TO:<bad1@example.com>\r\n", 28);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_eq(T.srv.rx_len, 18 + sizeof(line) + 28, "everything forwarded");
	cr_assert_eq(tb_stat(&T, STAT_LINE_TOO_LONG), 1);
	cr_assert_eq(tb_stat(&T, STAT_FAILOPEN), 1);
	cr_assert_eq(tb_stat(&T, STAT_RCPT_REJECTED), 0);
}

Test(engine, lone_injected_reply_is_retransmitted_until_acked)
{
	struct tb_drop c = {.dir_to_server = 0, .from_engine = 1, .count = 1, .data_only = 1};
	ehlo(&T);
	tb_send(&T, &T.cli, "MAIL FROM:<s@x.test>\r\n", 22);
	tb_pump(&T);
	T.filter = tb_drop_filter;
	T.filter_arg = &c;
	tb_send(&T, &T.cli, "RCPT TO:<bad1@example.com>\r\n", 28);
	tb_pump(&T);
	cr_assert_eq(tb_stat(&T, STAT_INJECTED), 1);
	cr_assert(strstr(tb_rx_str(&T.cli), "550") == NULL, "the injected reply was lost");
	tb_tick(&T, 300);
	no_errors(&T);
	cr_assert_eq(tb_stat(&T, STAT_INJECT_RETX), 1);
	cr_assert_str_eq(tb_rx_str(&T.cli), GREETING EHLO_REPLY OK_MAIL R550("bad1@example.com"));
	all_acked(&T);
	/* acknowledged now: nothing more is sent */
	tb_tick(&T, 2000);
	cr_assert_eq(tb_stat(&T, STAT_INJECT_RETX), 1);
}

Test(engine, client_resending_a_removed_command_gets_an_ack)
{
	ehlo(&T);
	tb_send(&T, &T.cli, "MAIL FROM:<s@x.test>\r\n", 22);
	tb_pump(&T);
	uint32_t off = T.cli.tx_len;
	tb_send(&T, &T.cli, "RCPT TO:<bad1@example.com>\r\n", 28);
	tb_pump(&T);
	T.cli.snd_una = T.cli.isn + 1 + off; /* as if the ACK had been lost */
	tb_resend(&T, &T.cli, off, 28);
	tb_pump(&T);
	no_errors(&T);
	all_acked(&T);
	cr_assert_str_eq(tb_rx_str(&T.cli), GREETING EHLO_REPLY OK_MAIL R550("bad1@example.com"));
}

Test(engine, harvest_threshold_closes_the_session)
{
	ehlo(&T);
	tb_send(&T, &T.cli,
		"MAIL FROM:<s@x.test>\r\nRCPT TO:<h0@harvest.test>\r\nRCPT TO:<h1@harvest.test>\r\n"
		"RCPT TO:<h2@harvest.test>\r\nRCPT TO:<h3@harvest.test>\r\n",
		104);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_str_eq(tb_rx_str(&T.cli), GREETING EHLO_REPLY OK_MAIL R550("h0@harvest.test")
			 R550("h1@harvest.test") "421 4.7.0 Too many invalid recipients\r\n");
	cr_assert_str_eq(tb_rx_str(&T.srv), "EHLO client.test\r\nMAIL FROM:<s@x.test>\r\n");
	cr_assert(T.srv.rst_rcvd, "the server side was reset");
	cr_assert(T.cli.fin_rcvd, "the client got a FIN after the 421");
	cr_assert_eq(tb_stat(&T, STAT_HARVEST_CLOSED), 1);
}

Test(engine, events_carry_the_rejection)
{
	ehlo(&T);
	tb_send(&T, &T.cli, "MAIL FROM:<Sender@X.test>\r\nRCPT TO:<BAD1@example.com>\r\n", 55);
	tb_pump(&T);
	const struct msg_event *ev = spsc_peek(T.events);
	cr_assert_not_null(ev);
	cr_assert_eq(ev->type, MSG_EV_REJECT);
	cr_assert_eq(ev->code, 550);
	cr_assert_eq(ev->family, 4);
	cr_assert_eq(ev->client_port, 40001);
	cr_assert(ev->rcpt_len == 16 && memcmp(ev->rcpt, "bad1@example.com", 16) == 0);
	cr_assert(ev->helo_len == 11 && memcmp(ev->helo, "client.test", 11) == 0);
	cr_assert(ev->from_len == 13 && memcmp(ev->from, "Sender@X.test", 13) == 0);
}

Test(engine, bad_checksum_is_forwarded_untouched_not_parsed)
{
	ehlo(&T);
	uint8_t buf[TB_FRAME_MAX];
	const char *cmd = "RCPT TO:<bad1@example.com>\r\n";
	uint16_t n = tb_build(&T, &T.cli, &T.srv, buf, T.cli.snd_nxt, T.cli.rcv_nxt,
			      PKT_TH_ACK | PKT_TH_PSH, (const uint8_t *)cmd, 28, NULL, 0);
	buf[n - 3] ^= 0x20; /* corrupt a payload byte */
	uint8_t copy[TB_FRAME_MAX];
	memcpy(copy, buf, n);
	struct engine_frame fr = {.data = buf, .len = n, .tailroom = 100, .outside = 1};
	struct engine_txbuf txb[8];
	struct engine_out out = {txb, 0, 0};
	/* no offsets yet: the server drops it itself; nothing is repaired */
	cr_assert_eq(engine_rx(T.e, &fr, T.now_ns, &out), ENGINE_FORWARD);
	cr_assert(fr.len == n && memcmp(buf, copy, n) == 0, "the frame was changed");
	cr_assert_eq(tb_stat(&T, STAT_BAD_CSUM), 1);
	cr_assert_eq(tb_stat(&T, STAT_RCPT), 0);
}

Test(engine, flow_state_is_small)
{
	struct engine_info ei;
	engine_info(T.e, &ei);
	cr_assert_leq(ei.flow_bytes, 512, "%zu bytes per idle flow", ei.flow_bytes);
	/* after a session with rejections, the flow holds no busy block */
	run_pipe(&T, NULL, 0);
	engine_info(T.e, &ei);
	cr_assert_eq(ei.busy_used, 0);
}

/* ---- IPv6 and VLAN ---- */

struct l2l3_case {
	const char *name;
	int family, vlan, ts;
};

static const struct l2l3_case l2l3_cases[] = {
	{"IPv6", 6, 0, 1},
	{"IPv4 802.1Q", 4, 1, 1},
	{"IPv6 QinQ", 6, 2, 0},
	{"IPv4 no timestamps", 4, 0, 0},
};

Test(engine_l2l3, variants_table, .timeout = 120)
{
	for (unsigned k = 0; k < sizeof(l2l3_cases) / sizeof(l2l3_cases[0]); k++) {
		const struct l2l3_case *c = &l2l3_cases[k];
		tb_init(&T, c->family, c->vlan, c->ts);
		preload(&T);
		for (uint32_t cut = 1; cut < sizeof(PIPE) - 1; cut += 7) {
			tb_reset(&T);
			run_pipe(&T, &cut, 1);
		}
		tb_fini(&T);
	}
}

/* ---- checksum offload, flow table limits, untracked traffic ---- */

Test(engine, checksum_offload_flags_instead_of_software)
{
	T.conf.tx_csum_offload = 1;
	tb_reset(&T);
	run_pipe(&T, NULL, 0);
	cr_assert_eq(tb_stat(&T, STAT_CSUM_SW), 0, "no checksum computed in software");
}

static void raw_syn(struct tb *t, uint16_t cport)
{
	struct tb_ep c = t->cli;
	uint8_t buf[TB_FRAME_MAX];
	struct engine_txbuf txb[4];
	struct engine_out out = {txb, 0, 0};
	c.port = cport;
	uint16_t n = tb_build(t, &c, &t->srv, buf, 1000, 0, PKT_TH_SYN, NULL, 0, NULL, 0);
	struct engine_frame fr = {.data = buf, .len = n, .outside = 1, .peer_port = 1};
	cr_assert_eq(engine_rx(t->e, &fr, t->now_ns, &out), ENGINE_FORWARD);
}

Test(engine, full_table_evicts_only_flows_without_offsets)
{
	struct engine_info ei;
	ehlo(&T);
	tb_send(&T, &T.cli, "MAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@example.com>\r\n", 50);
	tb_pump(&T);
	for (uint16_t p = 0; p < 200; p++)
		raw_syn(&T, (uint16_t)(50000 + p));
	engine_info(T.e, &ei);
	cr_assert_eq(ei.flows, ei.max_flows);
	cr_assert_gt(tb_stat(&T, STAT_FLOWS_EVICTED), 0);
	/* the session with an edit behind it kept its state */
	tb_send(&T, &T.cli, "QUIT\r\n", 6);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_str_eq(tb_rx_str(&T.cli), GREETING EHLO_REPLY OK_MAIL R550("bad1@example.com")
			 "221 2.0.0 Bye\r\n");
	all_acked(&T);
	cr_assert_eq(tb_stat(&T, STAT_FLOWS_MIDSTREAM), 0);
}

Test(engine, idle_flows_expire_and_later_segments_pass_untouched)
{
	struct engine_info ei;
	ehlo(&T);
	tb_tick(&T, T.conf.idle_timeout_ms + 1000);
	engine_info(T.e, &ei);
	cr_assert_eq(ei.flows, 0);
	cr_assert_eq(tb_stat(&T, STAT_FLOWS_EXPIRED), 1);
	/* no offsets were in force: the session goes on, unfiltered */
	tb_send(&T, &T.cli, "MAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@example.com>\r\n", 50);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_gt(tb_stat(&T, STAT_FLOWS_MIDSTREAM), 0);
	cr_assert_eq(tb_stat(&T, STAT_RCPT), 0);
}

Test(engine, flows_opened_from_inside_are_not_tracked)
{
	struct tb_ep c = T.cli;
	uint8_t buf[TB_FRAME_MAX];
	struct engine_info ei;
	uint16_t n = tb_build(&T, &c, &T.srv, buf, 1000, 0, PKT_TH_SYN, NULL, 0, NULL, 0);
	struct engine_frame fr = {.data = buf, .len = n, .outside = 0};
	cr_assert_eq(engine_rx(T.e, &fr, T.now_ns, NULL), ENGINE_FORWARD);
	engine_info(T.e, &ei);
	cr_assert_eq(ei.flows, 0);
}

struct passthru_case {
	const char *name;
	uint16_t dport;
	uint8_t ipproto;
	uint16_t frag;
	enum stats_id stat; /* STAT__COUNT: none */
};

static const struct passthru_case passthru_cases[] = {
	{"TCP to another port", 80, 6, 0, STAT__COUNT},
	{"UDP to port 25", 25, 17, 0, STAT__COUNT},
	{"IPv4 fragment to port 25", 25, 6, 0x2000, STAT_FRAGMENTS},
};

Test(engine, other_traffic_is_forwarded_byte_identical)
{
	for (unsigned k = 0; k < sizeof(passthru_cases) / sizeof(passthru_cases[0]); k++) {
		const struct passthru_case *c = &passthru_cases[k];
		struct tb_ep d = T.srv;
		uint8_t buf[TB_FRAME_MAX], copy[TB_FRAME_MAX];
		d.port = c->dport;
		uint16_t n = tb_build(&T, &T.cli, &d, buf, 1, 2, PKT_TH_ACK, (const uint8_t *)"RCPT TO:<bad1@example.com>\r\n", 28, NULL, 0);
		buf[14 + 9] = c->ipproto;
		pkt_put16(buf + 14 + 6, c->frag);
		memcpy(copy, buf, n);
		struct engine_frame fr = {.data = buf, .len = n, .outside = 1};
		cr_assert_eq(engine_rx(T.e, &fr, T.now_ns, NULL), ENGINE_FORWARD, "%s", c->name);
		cr_assert_eq(fr.len, n, "%s", c->name);
		cr_assert(memcmp(buf, copy, n) == 0, "%s: frame changed", c->name);
		if (c->stat != STAT__COUNT)
			cr_assert_gt(tb_stat(&T, c->stat), 0, "%s: counter", c->name);
	}
}

/* ---- random pipelines, random cuts, loss and duplication ---- */

struct vocab {
	const char *cmd, *srv, *reply;
};

static const struct vocab vocab[] = {
	{"MAIL FROM:<s@x.test>\r\n", "MAIL FROM:<s@x.test>\r\n", OK_MAIL},
	{"RCPT TO:<good@example.com>\r\n", "RCPT TO:<good@example.com>\r\n", OK_RCPT},
	{"RCPT TO:<bad1@example.com>\r\n", "", R550("bad1@example.com")},
	{"RCPT TO:<bad2@example.com>\r\n", "", R550("bad2@example.com")},
	{"RSET\r\n", "RSET\r\n", "250 2.0.0 Ok\r\n"},
	{"NOOP\r\n", "NOOP\r\n", "502 5.5.2 Error: command not recognized\r\n"},
	{"RCPT TO:<new@elsewhere.test>\r\n", "RCPT TO:<new@elsewhere.test>\r\n", OK_RCPT},
};

struct lossy {
	uint32_t rng;
	unsigned drop_pm, dup_pm; /* per mille */
	unsigned dropped, duped;
};

static uint32_t rnd(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static int lossy_filter(void *arg, const struct tb_frame *fr, int from_engine)
{
	struct lossy *l = arg;
	unsigned r = rnd(&l->rng) % 1000;
	(void)fr;
	(void)from_engine;
	if (r < l->drop_pm) {
		l->dropped++;
		return 0;
	}
	if (r < l->drop_pm + l->dup_pm) {
		l->duped++;
		return 2;
	}
	return 1;
}

static char exp_srv[TB_STREAM_MAX], exp_cli[TB_STREAM_MAX], burst[16384];

static const char *const body_lines[] = {
	"Subject: hello\r\n", "\r\n", "..leading dot, stuffed\r\n", "RCPT TO:<bad1@example.com>\r\n",
	"a longer line of body text that says nothing at all, padded out to be long\r\n",
	".\tnot the end\r\n", "..\r\n", "x\r\n",
};

struct gen {
	uint32_t rs;
	size_t es, ec;
	unsigned fwd, ref; /* RCPTs forwarded / refused in the transaction */
};

static void expect(struct gen *g, const char *srv, const char *cli)
{
	size_t sl = strlen(srv), cl = strlen(cli);
	memcpy(exp_srv + g->es, srv, sl + 1);
	g->es += sl;
	memcpy(exp_cli + g->ec, cli, cl + 1);
	g->ec += cl;
}

static void send_burst(struct gen *g, unsigned bl)
{
	unsigned ncut = rnd(&g->rs) % 6;
	uint32_t cuts[6];
	for (unsigned i = 0; i < ncut; i++)
		cuts[i] = 1 + rnd(&g->rs) % (bl > 1 ? bl - 1 : 1);
	for (unsigned i = 1; i < ncut; i++) /* cuts must grow */
		for (unsigned j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
			uint32_t x = cuts[j];
			cuts[j] = cuts[j - 1];
			cuts[j - 1] = x;
		}
	tb_send_split(&T, burst, bl, cuts, ncut);
	tb_pump(&T);
	tb_recover(&T, 40);
}

static void random_sessions(unsigned sessions, unsigned drop_pm, unsigned dup_pm, uint32_t seed)
{
	struct lossy l = {seed, drop_pm, dup_pm, 0, 0};
	struct gen g = {seed ^ 0x5bd1e995u, 0, 0, 0, 0};
	unsigned bodies = 0, refused_data = 0;
	for (unsigned n = 0; n < sessions; n++) {
		tb_reset(&T);
		ehlo(&T);
		exp_srv[0] = exp_cli[0] = 0;
		g.es = g.ec = 0;
		g.fwd = g.ref = 0;
		expect(&g, "EHLO client.test\r\n", GREETING EHLO_REPLY);
		T.filter = lossy_filter;
		T.filter_arg = &l;
		unsigned groups = 1 + rnd(&g.rs) % 4;
		for (unsigned gi = 0; gi < groups; gi++) {
			unsigned k = 1 + rnd(&g.rs) % 40, bl = 0;
			for (unsigned i = 0; i < k; i++) {
				unsigned w = rnd(&g.rs) % (sizeof(vocab) / sizeof(vocab[0]));
				const struct vocab *v = &vocab[w];
				memcpy(burst + bl, v->cmd, strlen(v->cmd));
				bl += (unsigned)strlen(v->cmd);
				expect(&g, v->srv, v->reply);
				if (w == 0 || w == 4)
					g.fwd = g.ref = 0;
				else if (w == 1 || w == 6)
					g.fwd++;
				else if (w == 2 || w == 3)
					g.ref++;
			}
			if (rnd(&g.rs) % 3 == 0) {
				/* DATA ends the group; the body follows the 354 */
				memcpy(burst + bl, "DATA\r\n", 6);
				bl += 6;
				if (g.fwd == 0 && g.ref > 0) {
					expect(&g, "", R554);
					refused_data++;
					send_burst(&g, bl);
					continue;
				}
				expect(&g, "DATA\r\n", GO_DATA);
				send_burst(&g, bl);
				bl = 0;
				for (unsigned i = 0, nl = rnd(&g.rs) % 30; i < nl; i++) {
					const char *ln = body_lines[rnd(&g.rs) % (sizeof(body_lines) /
										   sizeof(body_lines[0]))];
					memcpy(burst + bl, ln, strlen(ln));
					bl += (unsigned)strlen(ln);
					expect(&g, ln, "");
				}
				memcpy(burst + bl, ".\r\n", 3);
				bl += 3;
				expect(&g, ".\r\n", QUEUED);
				g.fwd = g.ref = 0;
				bodies++;
			}
			send_burst(&g, bl);
		}
		tb_send(&T, &T.cli, "QUIT\r\n", 6);
		tb_pump(&T);
		expect(&g, "QUIT\r\n", "221 2.0.0 Bye\r\n");
		T.filter = NULL;
		cr_assert_eq(tb_recover(&T, 60), 0, "session %u: not everything acknowledged", n);
		cr_assert_str_empty(T.cli.err, "session %u: %s", n, T.cli.err);
		cr_assert_str_empty(T.srv.err, "session %u: %s", n, T.srv.err);
		cr_assert_str_eq(tb_rx_str(&T.srv), exp_srv, "session %u", n);
		cr_assert_str_eq(tb_rx_str(&T.cli), exp_cli, "session %u", n);
		cr_assert_eq(tb_stat(&T, STAT_FAILOPEN), 0, "session %u", n);
		if (!drop_pm && !dup_pm)
			cr_assert_eq(T.cli.dup_bytes, 0, "session %u: %u bytes reached the client twice",
				     n, T.cli.dup_bytes);
	}
	if (drop_pm)
		cr_assert_gt(l.dropped, 0);
	cr_assert_gt(bodies, 0);
	cr_assert_gt(refused_data, 0);
}

Test(engine, random_pipelines_no_loss)
{
	random_sessions(300, 0, 0, 1);
}

Test(engine, random_pipelines_3pct_loss_1pct_duplication)
{
	random_sessions(300, 30, 10, 7);
}

Test(engine, random_pipelines_heavy_loss)
{
	random_sessions(100, 150, 50, 11);
}

Test(engine, random_pipelines_per_reply_server_no_loss)
{
	T.srv_per_reply = 1;
	random_sessions(300, 0, 0, 13);
}

Test(engine, random_pipelines_per_reply_server_mss_536_loss)
{
	T.srv_per_reply = 1;
	T.mss = 536;
	T.no_mss_opt = 1;
	random_sessions(200, 30, 10, 17);
}

/* ---- many answers at once ---- */

static unsigned count_of(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static unsigned build_rcpts(char *b, unsigned n_bad, int tail_good)
{
	unsigned l = (unsigned)sprintf(b, "MAIL FROM:<s@x.test>\r\n");
	for (unsigned i = 0; i < n_bad; i++)
		l += (unsigned)sprintf(b + l, "RCPT TO:<bad%u@example.com>\r\n", 1 + i % 3);
	if (tail_good)
		l += (unsigned)sprintf(b + l, "RCPT TO:<good@example.com>\r\n");
	return l;
}

Test(engine, answers_larger_than_a_segment_are_cut_to_the_mss)
{
	ehlo(&T);
	unsigned l = build_rcpts(burst, 60, 1);
	tb_send(&T, &T.cli, burst, l);
	tb_pump(&T);
	no_errors(&T);
	all_acked(&T);
	const char *cli = tb_rx_str(&T.cli);
	cr_assert_eq(count_of(cli, "550 5.1.1"), 60);
	cr_assert(strstr(cli, OK_MAIL R550("bad1@example.com")) != NULL, "order kept");
	cr_assert(strstr(cli, R550("bad3@example.com") OK_RCPT) != NULL, "order kept");
	cr_assert_str_eq(tb_rx_str(&T.srv),
			 "EHLO client.test\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<good@example.com>\r\n");
}

Test(engine, alone_answers_larger_than_a_segment)
{
	ehlo(&T);
	tb_send(&T, &T.cli, "MAIL FROM:<s@x.test>\r\n", 22);
	tb_pump(&T);
	unsigned l = build_rcpts(burst, 50, 0);
	/* without the MAIL line: every answer goes out on its own */
	tb_send(&T, &T.cli, burst + 22, l - 22);
	tb_pump(&T);
	no_errors(&T);
	all_acked(&T);
	cr_assert_eq(count_of(tb_rx_str(&T.cli), "550 5.1.1"), 50);
	cr_assert_gt(tb_stat(&T, STAT_INJECTED), 0);
}

Test(engine, over_the_answer_limits_commands_are_forwarded)
{
	ehlo(&T);
	unsigned l = build_rcpts(burst, 300, 0);
	tb_send(&T, &T.cli, burst, l);
	tb_pump(&T);
	no_errors(&T);
	all_acked(&T);
	const char *cli = tb_rx_str(&T.cli), *srv = tb_rx_str(&T.srv);
	unsigned rej = count_of(cli, "550 5.1.1"), fwd = count_of(srv, "RCPT TO:");
	cr_assert_eq(rej, tb_stat(&T, STAT_RCPT_REJECTED));
	cr_assert_gt(rej, 0);
	cr_assert_eq(rej + fwd, 300, "every RCPT either answered or forwarded");
	cr_assert_eq(count_of(cli, OK_RCPT), fwd, "the server answered what it got");
	cr_assert_gt(tb_stat(&T, STAT_EDIT_NOSPACE) + tb_stat(&T, STAT_FAILOPEN), 0);
}

/* ---- the end of the body, cut every way ---- */

Test(engine, body_end_found_at_every_split)
{
	static const char body[] = "Subject: x\r\n\r\n.\tx\r\n..\r\nline\n.\r\n";
	static const char after[] = "MAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@example.com>\r\n";
	for (uint32_t cut = 1; cut < sizeof(body) - 1; cut++) {
		tb_reset(&T);
		ehlo(&T);
		tb_send(&T, &T.cli, "MAIL FROM:<s@x.test>\r\nRCPT TO:<good@example.com>\r\nDATA\r\n",
			56);
		tb_pump(&T);
		tb_send_split(&T, body, sizeof(body) - 1, &cut, 1);
		tb_pump(&T);
		tb_send(&T, &T.cli, after, sizeof(after) - 1);
		tb_pump(&T);
		no_errors(&T);
		cr_assert(strstr(tb_rx_str(&T.cli), QUEUED OK_MAIL R550("bad1@example.com")) != NULL,
			  "cut %u: body end seen, the next command parsed", cut);
	}
}

Test(engine, lone_answer_retransmission_gives_up_after_the_limit)
{
	struct tb_drop c = {.dir_to_server = 0, .from_engine = 1, .count = 1000, .data_only = 1};
	ehlo(&T);
	tb_send(&T, &T.cli, "MAIL FROM:<s@x.test>\r\n", 22);
	tb_pump(&T);
	T.filter = tb_drop_filter;
	T.filter_arg = &c;
	tb_send(&T, &T.cli, "RCPT TO:<bad1@example.com>\r\n", 28);
	tb_pump(&T);
	for (int i = 0; i < 40; i++)
		tb_tick(&T, 10000);
	cr_assert_eq(tb_stat(&T, STAT_INJECT_RETX), T.conf.retx_max);
	cr_assert_eq(tb_stat(&T, STAT_INJECT_GIVEUP), 1);
}

Test(engine, fin_both_ways_after_edits)
{
	ehlo(&T);
	tb_send(&T, &T.cli, "MAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@example.com>\r\nQUIT\r\n", 56);
	tb_pump(&T);
	tb_send_fin(&T, &T.srv);
	tb_pump(&T);
	tb_send_fin(&T, &T.cli);
	tb_pump(&T);
	no_errors(&T);
	cr_assert(T.cli.fin_rcvd, "the server's FIN reached the client in sequence");
	cr_assert(T.srv.fin_rcvd, "the client's FIN reached the server in sequence");
	all_acked(&T);
	cr_assert_eq(tb_stat(&T, STAT_FLOWS_CLOSED), 1);
}

Test(engine, client_fin_with_a_partial_line_held)
{
	ehlo(&T);
	tb_send(&T, &T.cli, "MAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@exa", 39);
	tb_pump(&T);
	tb_send_fin(&T, &T.cli);
	tb_pump(&T);
	no_errors(&T);
	cr_assert(T.srv.fin_rcvd, "FIN delivered after the held bytes");
	cr_assert_str_eq(tb_rx_str(&T.srv),
			 "EHLO client.test\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@exa");
	all_acked(&T);
}

/* ---- garbage: random segments into a live flow never crash it ---- */

Test(engine, random_segments_and_garbage_bytes)
{
	static const char *const words[] = {
		"RCPT TO:<bad1@example.com>\r\n", "MAIL FROM:<a@b>\r\n", "DATA\r\n", ".\r\n",
		"BDAT 7\r\n", "BDAT 3 LAST\r\n", "STARTTLS\r\n", "AUTH x\r\n", "\r\n", "\n", "\0",
		"RCPT TO:<", "250 ok\r\n", "354 go\r\n", "220 tls\r\n", "334 x\r\n", "250-x\r\n",
	};
	uint32_t rs = 12345;
	uint8_t pay[1500], buf[TB_FRAME_MAX + 512];
	struct engine_txbuf txb[8];
	static uint8_t txm[8][2048];
	for (int i = 0; i < 8; i++) {
		txb[i].data = txm[i];
		txb[i].cap = sizeof(txm[i]);
	}
	ehlo(&T);
	for (int round = 0; round < 200000; round++) {
		int to_srv = rnd(&rs) & 1;
		struct tb_ep *from = to_srv ? &T.cli : &T.srv, *to = to_srv ? &T.srv : &T.cli;
		unsigned len = 0, nw = rnd(&rs) % 6;
		for (unsigned i = 0; i < nw; i++) {
			const char *w = words[rnd(&rs) % (sizeof(words) / sizeof(words[0]))];
			size_t wl = w[0] ? strlen(w) : 1;
			memcpy(pay + len, w, wl);
			len += (unsigned)wl;
		}
		if (rnd(&rs) % 4 == 0)
			for (unsigned i = rnd(&rs) % 200; i && len < sizeof(pay); i--)
				pay[len++] = (uint8_t)rnd(&rs);
		/* sequence near what is expected, sometimes anywhere */
		uint32_t seq = from->snd_nxt + (rnd(&rs) % 64) - 32;
		if (rnd(&rs) % 16 == 0)
			seq = rnd(&rs) << 8;
		uint32_t ack = to->snd_nxt + (rnd(&rs) % 64) - 32;
		uint8_t flags = (uint8_t)(PKT_TH_ACK | (rnd(&rs) % 8 == 0 ? rnd(&rs) & 0x3f : 0));
		uint16_t n = tb_build(&T, from, to, buf, seq, ack, flags, pay, (uint16_t)len, NULL, 0);
		if (rnd(&rs) % 8 == 0)
			n = (uint16_t)(rnd(&rs) % (n + 1)); /* truncated */
		if (rnd(&rs) % 32 == 0)
			buf[rnd(&rs) % (n ? n : 1)] ^= (uint8_t)rnd(&rs); /* a flipped byte */
		struct engine_frame fr = {.data = buf, .len = n, .tailroom = 512, .outside = (uint8_t)to_srv,
					  .rx_port = (uint16_t)!to_srv, .peer_port = (uint16_t)to_srv,
					  .rx_csum = (uint8_t)(rnd(&rs) % 2)};
		struct engine_out out = {txb, 8, 0};
		engine_rx(T.e, &fr, T.now_ns, &out);
		cr_assert_leq(fr.len, n + 512);
		for (unsigned i = 0; i < out.n; i++)
			cr_assert_leq(txb[i].len, txb[i].cap);
		if (round % 1000 == 0) {
			T.now_ns += 50000000ull;
			out.n = 0;
			engine_timer(T.e, T.now_ns, &out);
		}
		from->snd_nxt += len / 2;
	}
	struct engine_info ei;
	engine_info(T.e, &ei);
	cr_assert_leq(ei.busy_used, ei.busy_total);
}

Test(engine, starttls_refused_parsing_goes_on)
{
	ehlo(&T);
	T.srv.refuse_tls = 1;
	tb_send(&T, &T.cli, "STARTTLS\r\n", 10);
	tb_pump(&T);
	tb_send(&T, &T.cli, "MAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@example.com>\r\n", 50);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_str_eq(tb_rx_str(&T.cli), GREETING EHLO_REPLY "454 4.7.0 TLS not available\r\n"
			 OK_MAIL R550("bad1@example.com"));
	cr_assert_eq(tb_stat(&T, STAT_STARTTLS), 0);
	all_acked(&T);
}

/* ---- servers that write each reply in its own segment ---- */

struct per_reply_case {
	const char *name;
	uint16_t mss;		/* segment size both ends use */
	int no_mss_opt;		/* SYNs without an MSS option: 536 assumed */
};

static const struct per_reply_case per_reply_cases[] = {
	{"MSS 1460", 1460, 0},
	{"SYN without MSS option (536)", 536, 1},
};

/* MAIL, 15 refused RCPTs, 5 accepted ones in one burst; *want gets what the
 * client must read, in RFC 2920 order. */
static unsigned build_refused_then_valid(char *b, char *want)
{
	unsigned l = (unsigned)sprintf(b, "MAIL FROM:<s@x.test>\r\n");
	unsigned w = (unsigned)sprintf(want, "%s%s%s", GREETING, EHLO_REPLY, OK_MAIL);
	for (unsigned i = 0; i < 15; i++) {
		char a[32];
		snprintf(a, sizeof(a), "bad%u@example.com", 1 + i % 3);
		l += (unsigned)sprintf(b + l, "RCPT TO:<%s>\r\n", a);
		w += (unsigned)sprintf(want + w, "550 5.1.1 <%s>: Recipient address rejected: "
						 "User unknown\r\n", a);
	}
	for (unsigned i = 0; i < 5; i++) {
		l += (unsigned)sprintf(b + l, "RCPT TO:<good@example.com>\r\n");
		w += (unsigned)sprintf(want + w, OK_RCPT);
	}
	return l;
}

static void per_reply_setup(struct tb *t, const struct per_reply_case *pc)
{
	tb_reset(t);
	t->mss = pc->mss;
	t->no_mss_opt = pc->no_mss_opt;
	t->srv_per_reply = 1;
}

/* The injected answers reach the client once, each byte once, in order. */
Test(engine, per_reply_server_refused_then_valid_every_split_point)
{
	static char want[8192];
	unsigned l = build_refused_then_valid(burst, want);
	for (unsigned k = 0; k < sizeof(per_reply_cases) / sizeof(per_reply_cases[0]); k++) {
		const struct per_reply_case *pc = &per_reply_cases[k];
		for (uint32_t cut = 0; cut < l; cut++) {
			per_reply_setup(&T, pc);
			ehlo(&T);
			tb_send_split(&T, burst, l, &cut, cut ? 1 : 0);
			tb_pump(&T);
			cr_assert_str_empty(T.cli.err, "%s, cut %u: %s", pc->name, cut, T.cli.err);
			cr_assert_str_empty(T.srv.err, "%s, cut %u: %s", pc->name, cut, T.srv.err);
			cr_assert_str_eq(tb_rx_str(&T.cli), want, "%s, cut %u", pc->name, cut);
			cr_assert_eq(T.cli.dup_bytes, 0, "%s, cut %u: %u bytes reached the client twice",
				     pc->name, cut, T.cli.dup_bytes);
			all_acked(&T);
			cr_assert_eq(tb_stat(&T, STAT_RCPT_REJECTED), 15, "%s, cut %u", pc->name, cut);
		}
	}
}

Test(engine, per_reply_server_interleaved_pipeline_every_split_point)
{
	for (unsigned k = 0; k < sizeof(per_reply_cases) / sizeof(per_reply_cases[0]); k++) {
		const struct per_reply_case *pc = &per_reply_cases[k];
		for (uint32_t cut = 1; cut < sizeof(PIPE) - 1; cut++) {
			per_reply_setup(&T, pc);
			run_pipe(&T, &cut, 1);
			cr_assert_eq(T.cli.dup_bytes, 0, "%s, cut %u: %u bytes reached the client twice",
				     pc->name, cut, T.cli.dup_bytes);
		}
	}
}

/* The segment that carried the answers is lost on its way to the client:
 * the server's retransmission carries them again, at the same place. */
Test(engine, per_reply_server_lost_segment_with_answers)
{
	static char want[8192];
	unsigned l = build_refused_then_valid(burst, want);
	for (unsigned k = 0; k < sizeof(per_reply_cases) / sizeof(per_reply_cases[0]); k++) {
		const struct per_reply_case *pc = &per_reply_cases[k];
		for (int skip = 0; skip < 3; skip++) {
			struct tb_drop c = {.dir_to_server = 0, .from_engine = 1, .skip = skip,
					     .count = 1, .data_only = 1};
			per_reply_setup(&T, pc);
			ehlo(&T);
			T.filter = tb_drop_filter;
			T.filter_arg = &c;
			tb_send(&T, &T.cli, burst, l);
			tb_pump(&T);
			cr_assert_eq(tb_recover(&T, 20), 0, "%s, skip %d: not recovered", pc->name,
				     skip);
			no_errors(&T);
			cr_assert_str_eq(tb_rx_str(&T.cli), want, "%s, skip %d", pc->name, skip);
		}
	}
}

/* ---- flow churn: many more sessions than flow slots ---- */

struct churn_case {
	const char *name;
	unsigned sessions;
	uint32_t gap_ms;	/* clock advance between sessions */
	int rst;		/* the client resets instead of closing */
	int evicts;		/* 1: the table fills with ended flows, reclaimed */
};

static const struct churn_case churn_cases[] = {
	{"FIN both ways, back to back", 500, 1, 0, 1},
	{"FIN both ways, 300 ms apart", 300, 300, 0, 0},
	{"client reset after QUIT", 500, 1, 1, 1},
	{"client reset after QUIT, 300 ms apart", 300, 300, 1, 0},
};

static void churn_session(struct tb *t, uint16_t cport, int rst)
{
	static const char cmds[] = "MAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@example.com>\r\n"
				   "RCPT TO:<good@example.com>\r\nQUIT\r\n";
	tb_next_conn(t, cport);
	tb_open(t);
	tb_send(t, &t->cli, "EHLO client.test\r\n", 18);
	tb_pump(t);
	tb_send(t, &t->cli, cmds, sizeof(cmds) - 1);
	tb_pump(t);
	if (rst) {
		tb_send_rst(t, &t->cli);
	} else {
		tb_send_fin(t, &t->srv);
		tb_pump(t);
		tb_send_fin(t, &t->cli);
	}
	tb_pump(t);
}

Test(engine, churn_of_many_more_sessions_than_flows_all_filtered)
{
	for (unsigned k = 0; k < sizeof(churn_cases) / sizeof(churn_cases[0]); k++) {
		const struct churn_case *c = &churn_cases[k];
		struct engine_info ei;
		tb_reset(&T);
		for (unsigned i = 0; i < c->sessions; i++) {
			churn_session(&T, (uint16_t)(20000 + i), c->rst);
			no_errors(&T);
			cr_assert_str_eq(tb_rx_str(&T.cli), GREETING EHLO_REPLY OK_MAIL
					 R550("bad1@example.com") OK_RCPT "221 2.0.0 Bye\r\n",
					 "%s: session %u", c->name, i);
			cr_assert_str_eq(tb_rx_str(&T.srv), "EHLO client.test\r\nMAIL FROM:<s@x.test>\r\n"
					 "RCPT TO:<good@example.com>\r\nQUIT\r\n",
					 "%s: session %u", c->name, i);
			if (!c->rst) {
				cr_assert(T.cli.fin_rcvd && T.srv.fin_rcvd, "%s: session %u", c->name, i);
				all_acked(&T);
			}
			tb_tick(&T, c->gap_ms);
		}
		engine_info(T.e, &ei);
		cr_assert_gt(c->sessions, 4 * ei.max_flows);
		cr_assert_leq(ei.flows, ei.max_flows);
		cr_assert_eq(tb_stat(&T, STAT_FLOWS_NEW), c->sessions, "%s", c->name);
		cr_assert_eq(tb_stat(&T, STAT_RCPT_REJECTED), c->sessions, "%s", c->name);
		cr_assert_eq(tb_stat(&T, STAT_FLOWS_CLOSED), c->sessions, "%s", c->name);
		cr_assert_eq(tb_stat(&T, STAT_FLOWS_FULL), 0, "%s", c->name);
		cr_assert_eq(tb_stat(&T, STAT_FLOWS_MIDSTREAM), 0, "%s", c->name);
		if (c->evicts)
			cr_assert_gt(tb_stat(&T, STAT_FLOWS_EVICTED), 0, "%s", c->name);
		else
			cr_assert_eq(tb_stat(&T, STAT_FLOWS_EVICTED), 0, "%s", c->name);
		/* what lingers for late retransmissions goes without new SYNs too */
		for (unsigned n = 0; n < 2 * ei.max_flows / 64 + 4; n++)
			tb_tick(&T, 1000);
		engine_info(T.e, &ei);
		cr_assert_eq(ei.flows, 0, "%s: %u flows left", c->name, ei.flows);
		cr_assert_eq(tb_stat(&T, STAT_FLOWS_EXPIRED), 0, "%s", c->name);
	}
}

Test(engine, ended_flow_without_offsets_is_freed_at_once)
{
	struct engine_info ei;
	ehlo(&T);
	tb_send(&T, &T.cli, "MAIL FROM:<s@x.test>\r\nRCPT TO:<good@example.com>\r\nQUIT\r\n", 56);
	tb_pump(&T);
	tb_send_fin(&T, &T.srv);
	tb_pump(&T);
	engine_info(T.e, &ei);
	cr_assert_eq(ei.flows, 1, "one FIN: the flow stays");
	tb_send_fin(&T, &T.cli);
	tb_pump(&T);
	no_errors(&T);
	all_acked(&T);
	engine_info(T.e, &ei);
	cr_assert_eq(ei.flows, 0, "both FINs acknowledged, no offsets: freed");
	cr_assert_eq(tb_stat(&T, STAT_FLOWS_CLOSED), 1);
}

Test(engine, ended_flow_with_offsets_translates_a_late_fin)
{
	struct engine_info ei;
	ehlo(&T);
	tb_send(&T, &T.cli, "MAIL FROM:<s@x.test>\r\nRCPT TO:<bad1@example.com>\r\nQUIT\r\n", 56);
	tb_pump(&T);
	tb_send_fin(&T, &T.srv);
	tb_pump(&T);
	tb_send_fin(&T, &T.cli);
	tb_pump(&T);
	all_acked(&T);
	engine_info(T.e, &ei);
	cr_assert_eq(ei.flows, 1, "offsets in force: the flow lingers");
	/* the client's last ACK was lost: the server resends its FIN, the
	 * client answers, both through the lingering translation */
	tb_tick(&T, ENGINE_LINGER_MS / 2);
	tb_resend_fin(&T, &T.srv);
	tb_pump(&T);
	no_errors(&T);
	all_acked(&T);
	tb_tick(&T, ENGINE_LINGER_MS);
	engine_info(T.e, &ei);
	cr_assert_eq(ei.flows, 0, "freed after the linger");
	cr_assert_eq(tb_stat(&T, STAT_FLOWS_EXPIRED), 0);
}

Test(engine, reset_during_the_handshake_frees_the_flow)
{
	struct engine_info ei;
	uint8_t buf[TB_FRAME_MAX];
	uint16_t n;
	tb_handshake(&T);
	engine_info(T.e, &ei);
	cr_assert_eq(ei.flows, 1);
	tb_reset(&T);
	/* SYN, then the server refuses it */
	n = tb_build(&T, &T.cli, &T.srv, buf, T.cli.isn, 0, PKT_TH_SYN, NULL, 0, NULL, 0);
	struct engine_frame fr = {.data = buf, .len = n, .outside = 1, .peer_port = 1};
	cr_assert_eq(engine_rx(T.e, &fr, T.now_ns, NULL), ENGINE_FORWARD);
	engine_info(T.e, &ei);
	cr_assert_eq(ei.flows, 1);
	n = tb_build(&T, &T.srv, &T.cli, buf, 0, T.cli.isn + 1, PKT_TH_RST | PKT_TH_ACK, NULL, 0,
		     NULL, 0);
	struct engine_frame rf = {.data = buf, .len = n, .outside = 0, .peer_port = 0};
	cr_assert_eq(engine_rx(T.e, &rf, T.now_ns, NULL), ENGINE_FORWARD);
	engine_info(T.e, &ei);
	cr_assert_eq(ei.flows, 0, "a refused connection leaves nothing behind");
}
