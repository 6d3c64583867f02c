/*
 * test_hostile.c — the engine against hostile and odd-but-legal peers: each
 * test is one way a remote host could crash the data plane, slip a refused
 * recipient past it, or hang a legitimate session (DESIGN.md, the stream
 * editor's rules "see what the receiver sees", "pin what was decided",
 * "never stall a sender", "fail clean").  The model endpoints of tb.c drop
 * what a real TCP receiver drops (bad checksum, no ACK bit, PAWS), so a test
 * sees exactly what the server would have accepted.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dtable.h"
#include "engine_int.h"
#include "msg.h"
#include "pkt.h"
#include "spsc.h"
#include "tb.h"

static struct tb T;

static void setup(void)
{
	tb_init(&T, 4, 0, 1);
	cr_assert(T.have_shm, "the shared-memory file could not be created");
	tb_domain(&T, "example.com", DT_MODE_CALLOUT, DT_MISS_PASS, 0, 0);
	tb_verdict(&T, "good@example.com", 1);
	tb_verdict(&T, "bad1@example.com", 0);
	tb_verdict(&T, "bad2@example.com", 0);
}

static void teardown(void)
{
	tb_fini(&T);
}

TestSuite(hostile, .init = setup, .fini = teardown, .timeout = 60);

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

static void ehlo(struct tb *t)
{
	tb_open(t);
	tb_send(t, &t->cli, "EHLO client.test\r\n", 18);
	tb_pump(t);
	tb_send(t, &t->cli, "MAIL FROM:<s@sender.test>\r\n", 27);
	tb_pump(t);
}

/* The server never saw a command naming addr. */
static void never_reached(const struct tb *t, const char *addr)
{
	cr_assert_null(memmem(t->srv.rx, t->srv.rx_len, addr, strlen(addr)),
		       "%s reached the server: [%s]", addr, tb_rx_str(&t->srv));
}

/* What the server received is a prefix of what the client sent, with only
 * whole refused lines taken out: here, simply no byte the client never sent. */
static void server_rx_is_clients(const struct tb *t)
{
	for (uint32_t i = 0; i < t->srv.rx_len; i++)
		cr_assert(memchr(t->cli.tx, t->srv.rx[i], t->cli.tx_len) != NULL,
			  "byte %u (0x%02x) at the server was never sent by the client", i,
			  t->srv.rx[i]);
}

/* A client frame with raw fields, built at the client's view of the stream. */
static uint16_t cli_frame(uint8_t *buf, uint32_t seq, uint8_t flags, const char *pay,
			  uint16_t len)
{
	T.cli.tsval++;
	return tb_build(&T, &T.cli, &T.srv, buf, seq, T.cli.rcv_nxt, flags, (const uint8_t *)pay,
			len, NULL, 0);
}

/* ---- 1: one packet must not crash the worker ---- */

static void bare_fin_below_forwarded(uint32_t gap)
{
	uint8_t buf[TB_FRAME_MAX];
	ehlo(&T);
	tb_send(&T, &T.cli, "RCPT TO:<goo", 12); /* a partial line: held */
	tb_pump(&T);
	/* a bare FIN far below what was already forwarded */
	uint16_t n = cli_frame(buf, T.cli.snd_nxt - 12 - gap, PKT_TH_ACK | PKT_TH_FIN, NULL, 0);
	tb_inject(&T, &T.cli, buf, n);
	tb_pump(&T);
	tb_send(&T, &T.cli, "d@example.com>\r\n", 16);
	tb_pump(&T);
	no_errors(&T);
	server_rx_is_clients(&T);
	cr_assert_str_eq(tb_rx_str(&T.srv), "EHLO client.test\r\nMAIL FROM:<s@sender.test>\r\n"
					    "RCPT TO:<good@example.com>\r\n");
}

Test(hostile, bare_fin_a_little_below_forwarded_bytes)
{
	bare_fin_below_forwarded(20);
}

Test(hostile, bare_fin_2g_below_forwarded_bytes)
{
	bare_fin_below_forwarded(0x7ffffff0u);
}

/* ---- 2: decisions only on bytes the server keeps; decided bytes pinned ---- */

/* The first copy of "RCPT TO:<good...>" never reaches the server's stream
 * (how, the caller says); the client then resends that range as
 * "RCPT TO:<bad1...>" (same length). */
static void resend_other_bytes(void (*first)(void), int first_decided)
{
	static const char good[] = "RCPT TO:<good@example.com>\r\n";
	static const char bad[] = "RCPT TO:<bad1@example.com>\r\n";
	ehlo(&T);
	uint32_t off = T.cli.tx_len;
	tb_stage(&T, &T.cli, good, 28);
	first();
	tb_pump(&T);
	T.filter = NULL;
	tb_resend_other(&T, &T.cli, off, bad, 28);
	tb_pump(&T);
	tb_recover(&T, 8);
	never_reached(&T, "bad1@");
	if (first_decided) /* the engine saw the first copy as the server would */
		cr_assert_not_null(strstr(tb_rx_str(&T.srv), "RCPT TO:<good@example.com>\r\n"),
				   "the decided bytes never reached the server: [%s]",
				   tb_rx_str(&T.srv));
	else /* the server never kept the first copy: the second is what counts */
		cr_assert_not_null(strstr(tb_rx_str(&T.cli), "550 5.1.1 <bad1@example.com>"),
				   "the resent RCPT was not answered: [%s]", tb_rx_str(&T.cli));
	all_acked(&T);
}

static struct tb_drop lose_after;

static void first_lost_after_the_filter(void)
{
	lose_after = (struct tb_drop){.dir_to_server = 1, .from_engine = 1, .count = 1,
				       .data_only = 1};
	T.filter = tb_drop_filter;
	T.filter_arg = &lose_after;
	tb_resend(&T, &T.cli, T.cli.tx_len - 28, 28);
}

static void first_without_ack_bit(void)
{
	uint8_t buf[TB_FRAME_MAX];
	uint16_t n = cli_frame(buf, T.cli.snd_nxt - 28, PKT_TH_PSH,
			       (const char *)T.cli.tx + T.cli.tx_len - 28, 28);
	tb_inject(&T, &T.cli, buf, n);
}

static void first_with_bad_checksum(void)
{
	uint8_t buf[TB_FRAME_MAX];
	uint16_t n = cli_frame(buf, T.cli.snd_nxt - 28, PKT_TH_ACK | PKT_TH_PSH,
			       (const char *)T.cli.tx + T.cli.tx_len - 28, 28);
	buf[n - 5] ^= 0x01;
	T.corrupted++;
	tb_inject(&T, &T.cli, buf, n);
}

static void first_with_stale_timestamp(void)
{
	uint8_t buf[TB_FRAME_MAX];
	uint32_t keep = T.cli.tsval;
	T.cli.tsval = keep - 1000; /* older than what the server has seen */
	uint16_t n = tb_build(&T, &T.cli, &T.srv, buf, T.cli.snd_nxt - 28, T.cli.rcv_nxt,
			      PKT_TH_ACK | PKT_TH_PSH, T.cli.tx + T.cli.tx_len - 28, 28, NULL, 0);
	T.cli.tsval = keep;
	tb_inject(&T, &T.cli, buf, n);
}


Test(hostile, resend_with_other_bytes_after_loss_behind_the_filter)
{
	resend_other_bytes(first_lost_after_the_filter, 1);
}

Test(hostile, resend_with_other_bytes_after_a_segment_without_ack_bit)
{
	resend_other_bytes(first_without_ack_bit, 0);
}

Test(hostile, resend_with_other_bytes_after_a_bad_checksum)
{
	resend_other_bytes(first_with_bad_checksum, 0);
	no_errors(&T);
}

Test(hostile, resend_with_other_bytes_after_a_stale_timestamp)
{
	resend_other_bytes(first_with_stale_timestamp, 0);
}

/* ---- 3, 4: modes follow the server's answers ---- */

Test(hostile, auth_refused_then_pipelined_commands_are_parsed)
{
	static const char cmds[] = "AUTH PLAIN AHVAcGFzcw==\r\nMAIL FROM:<s@sender.test>\r\n"
				   "RCPT TO:<bad1@example.com>\r\nRCPT TO:<good@example.com>\r\n";
	T.srv.no_auth = 1;
	tb_open(&T);
	tb_send(&T, &T.cli, "EHLO client.test\r\n", 18);
	tb_pump(&T);
	tb_send(&T, &T.cli, cmds, sizeof(cmds) - 1);
	tb_pump(&T);
	tb_recover(&T, 8);
	no_errors(&T);
	never_reached(&T, "bad1@");
	cr_assert_not_null(strstr(tb_rx_str(&T.cli),
				  "503 5.5.1 Error: authentication not enabled\r\n"
				  "250 2.1.0 Ok\r\n"
				  "550 5.1.1 <bad1@example.com>: Recipient address rejected: "
				  "User unknown\r\n"
				  "250 2.1.5 Ok\r\n"),
			   "replies out of order: [%s]", tb_rx_str(&T.cli));
	all_acked(&T);
}

Test(hostile, auth_accepted_exchange_is_not_parsed)
{
	static const char cmds[] = "AUTH LOGIN\r\n";
	tb_open(&T);
	tb_send(&T, &T.cli, "EHLO client.test\r\n", 18);
	tb_pump(&T);
	tb_send(&T, &T.cli, cmds, sizeof(cmds) - 1);
	tb_pump(&T);
	/* the SASL response happens to look like a command */
	tb_send(&T, &T.cli, "RCPT TO:<bad1@example.com>\r\n", 28);
	tb_pump(&T);
	tb_send(&T, &T.cli, "MAIL FROM:<s@sender.test>\r\nRCPT TO:<bad2@example.com>\r\n", 55);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_not_null(strstr(tb_rx_str(&T.srv), "RCPT TO:<bad1@example.com>"),
			   "the SASL line must pass untouched");
	never_reached(&T, "bad2@");
	all_acked(&T);
}

Test(hostile, bdat_without_chunking_is_a_command)
{
	static const char cmds[] = "BDAT 28\r\nRCPT TO:<bad1@example.com>\r\n";
	T.srv.chunking_off = 1;
	ehlo(&T);
	tb_send(&T, &T.cli, cmds, sizeof(cmds) - 1);
	tb_pump(&T);
	no_errors(&T);
	never_reached(&T, "bad1@");
	all_acked(&T);
}

/* ---- 5: spellings the server accepts ---- */

Test(hostile, whitespace_spellings_are_recognised)
{
	static const char *const lines[] = {
		" RCPT TO:<bad1@example.com>\r\n",   "RCPT\tTO:<bad1@example.com>\r\n",
		"RCPT TO:\t<bad1@example.com>\r\n",  "RCPT TO:<bad1@example.com>\t\r\n",
		"\t rcpt  to: <bad1@example.com> \r\n", "RCPT TO:<bad1@example.com>\r\r\n",
	};
	for (unsigned i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		tb_next_conn(&T, (uint16_t)(41000 + i));
		ehlo(&T);
		tb_send(&T, &T.cli, lines[i], (uint32_t)strlen(lines[i]));
		tb_pump(&T);
		no_errors(&T);
		cr_assert_null(memmem(T.srv.rx, T.srv.rx_len, "bad1@", 5),
			       "spelling %u [%s] reached the server", i, lines[i]);
		all_acked(&T);
	}
}

/* ---- 6: a sender waiting for held bytes is never stalled ---- */

Test(hostile, held_partial_line_is_acknowledged)
{
	ehlo(&T);
	tb_send(&T, &T.cli, "RCPT TO:<go", 11);
	tb_pump(&T);
	cr_assert_eq(T.cli.snd_una, T.cli.snd_nxt,
		     "held bytes not acknowledged: a sender with a full window stalls");
	tb_send(&T, &T.cli, "od@example.com>\r\n", 17);
	tb_pump(&T);
	no_errors(&T);
	cr_assert_not_null(strstr(tb_rx_str(&T.srv), "RCPT TO:<good@example.com>\r\n"));
	all_acked(&T);
}

Test(hostile, one_byte_segments_complete)
{
	static const char s[] = "RCPT TO:<good@example.com>\r\nRCPT TO:<bad1@example.com>\r\n";
	ehlo(&T);
	for (unsigned i = 0; i < sizeof(s) - 1; i++) {
		tb_send(&T, &T.cli, s + i, 1);
		tb_pump(&T);
		cr_assert_eq(T.cli.snd_una, T.cli.snd_nxt, "byte %u not acknowledged", i);
	}
	no_errors(&T);
	never_reached(&T, "bad1@");
	cr_assert_not_null(strstr(tb_rx_str(&T.srv), "RCPT TO:<good@example.com>\r\n"));
	all_acked(&T);
}

Test(hostile, acknowledged_held_bytes_lost_behind_the_filter_are_resent)
{
	struct tb_drop c = {.dir_to_server = 1, .from_engine = 1, .count = 1, .data_only = 1};
	ehlo(&T);
	tb_send(&T, &T.cli, "RCPT TO:<go", 11);
	tb_pump(&T);
	T.filter = tb_drop_filter;
	T.filter_arg = &c;
	tb_send(&T, &T.cli, "od@example.com>\r\n", 17); /* the completed line is lost */
	tb_pump(&T);
	T.filter = NULL;
	cr_assert_eq(tb_recover(&T, 12), 0, "not everything was acknowledged");
	no_errors(&T);
	cr_assert_str_eq(tb_rx_str(&T.srv), "EHLO client.test\r\nMAIL FROM:<s@sender.test>\r\n"
					    "RCPT TO:<good@example.com>\r\n");
}

/* ---- 7: a new connection on an old 4-tuple ---- */

Test(hostile, port_reuse_with_a_new_isn_starts_a_new_flow)
{
	ehlo(&T);
	tb_send(&T, &T.cli, "RCPT TO:<bad1@example.com>\r\n", 28);
	tb_pump(&T); /* offsets in force; then the client vanishes */
	tb_next_conn(&T, 40001); /* same ports, new ISNs, same engine */
	T.cli.isn += 0x10000000u;
	ehlo(&T);
	tb_send(&T, &T.cli, "RCPT TO:<bad2@example.com>\r\nRCPT TO:<good@example.com>\r\n", 56);
	tb_pump(&T);
	no_errors(&T);
	never_reached(&T, "bad2@");
	cr_assert_str_eq(tb_rx_str(&T.srv), "EHLO client.test\r\nMAIL FROM:<s@sender.test>\r\n"
					    "RCPT TO:<good@example.com>\r\n");
	all_acked(&T);
}

/* ---- 8: a bad checksum changes nothing ---- */

Test(hostile, corrupted_ack_does_not_collapse_an_unacknowledged_answer)
{
	struct tb_drop c = {.dir_to_server = 0, .from_engine = 1, .count = 1, .data_only = 1};
	uint8_t buf[TB_FRAME_MAX];
	ehlo(&T);
	T.filter = tb_drop_filter;
	T.filter_arg = &c;
	tb_send(&T, &T.cli, "RCPT TO:<bad1@example.com>\r\n", 28); /* its 550 is lost */
	tb_pump(&T);
	T.filter = NULL;
	/* an ACK covering the 550, corrupted on the way */
	T.cli.tsval++;
	uint16_t n = tb_build(&T, &T.cli, &T.srv, buf, T.cli.snd_nxt, T.cli.rcv_nxt + 200,
			      PKT_TH_ACK, NULL, 0, NULL, 0);
	buf[n - 1] ^= 0x40;
	T.corrupted++;
	tb_inject(&T, &T.cli, buf, n);
	tb_pump(&T);
	tb_recover(&T, 8);
	no_errors(&T);
	cr_assert_not_null(strstr(tb_rx_str(&T.cli), "550 5.1.1 <bad1@example.com>"),
			   "the 550 was never resent: [%s]", tb_rx_str(&T.cli));
}

Test(hostile, corrupted_out_of_order_segment_is_not_laundered)
{
	uint8_t buf[TB_FRAME_MAX];
	ehlo(&T);
	uint32_t off = T.cli.tx_len;
	tb_stage(&T, &T.cli, "RCPT TO:<good@example.com>\r\nRCPT TO:<good@example.com>\r\n", 56);
	/* the second half arrives first, corrupted */
	T.cli.tsval++;
	uint16_t n = tb_build(&T, &T.cli, &T.srv, buf, T.cli.isn + 1 + off + 28, T.cli.rcv_nxt,
			      PKT_TH_ACK | PKT_TH_PSH, T.cli.tx + off + 28, 28, NULL, 0);
	buf[n - 10] = 'X';
	T.corrupted++;
	tb_inject(&T, &T.cli, buf, n);
	tb_pump(&T);
	tb_resend(&T, &T.cli, off, 28);
	tb_pump(&T);
	tb_recover(&T, 8);
	no_errors(&T);
	cr_assert_null(memmem(T.srv.rx, T.srv.rx_len, "X", 1), "corrupted byte delivered: [%s]",
		       tb_rx_str(&T.srv));
	all_acked(&T);
}

/* ---- 9: RFC 5961 ---- */

Test(hostile, rst_outside_the_window_does_not_end_the_flow)
{
	uint8_t buf[TB_FRAME_MAX];
	ehlo(&T);
	tb_send(&T, &T.cli, "RCPT TO:<bad1@example.com>\r\n", 28);
	tb_pump(&T); /* offsets in force */
	uint16_t n = cli_frame(buf, T.cli.snd_nxt + 1000000u, PKT_TH_RST, NULL, 0);
	tb_inject(&T, &T.cli, buf, n);
	T.srv.rst_rcvd = 0; /* a real server ignores it (RFC 5961 3.2) */
	tb_pump(&T);
	T.srv.rst_rcvd = 0;
	tb_tick(&T, 5000);
	tb_send(&T, &T.cli, "RCPT TO:<good@example.com>\r\nRCPT TO:<bad2@example.com>\r\n", 56);
	tb_pump(&T);
	no_errors(&T);
	never_reached(&T, "bad2@");
	cr_assert_not_null(strstr(tb_rx_str(&T.cli), "550 5.1.1 <bad2@example.com>"));
	all_acked(&T);
}

/* ---- 10: frames fit the path ---- */

Test(hostile, frames_fit_the_mtu_whatever_the_client_announces)
{
	T.mss = 8960;	   /* announced by both ends */
	T.send_mss = 1460; /* what their own 1500-byte links let them send */
	T.tx_cap = 2048;
	tb_reset(&T);
	ehlo(&T);
	char big[8000];
	size_t k = 0;
	while (k + 28 < sizeof(big)) {
		memcpy(big + k, "RCPT TO:<bad1@example.com>\r\n", 28);
		k += 28;
	}
	tb_send(&T, &T.cli, big, (uint32_t)k);
	tb_pump(&T);
	tb_recover(&T, 8);
	no_errors(&T);
	cr_assert_leq(T.cli.max_frame, 1514, "frame of %u bytes toward the client",
		      T.cli.max_frame);
	cr_assert_leq(T.srv.max_frame, 1514, "frame of %u bytes toward the server",
		      T.srv.max_frame);
	cr_assert_eq(tb_stat(&T, STAT_OUT_FULL), 0);
	all_acked(&T);
}

/* ---- 11: fail clean ---- */

Test(hostile, answer_given_up_resets_both_ends)
{
	struct tb_drop c = {.dir_to_server = 0, .from_engine = 1, .count = 1000, .data_only = 1};
	ehlo(&T);
	T.filter = tb_drop_filter;
	T.filter_arg = &c;
	tb_send(&T, &T.cli, "RCPT TO:<bad1@example.com>\r\n", 28);
	tb_pump(&T);
	for (int i = 0; i < 40; i++)
		tb_tick(&T, 10000);
	cr_assert_eq(tb_stat(&T, STAT_INJECT_GIVEUP), 1);
	cr_assert(T.srv.rst_rcvd, "the server was not reset");
	cr_assert(T.cli.rst_rcvd, "the client was not reset");
	cr_assert_geq(tb_stat(&T, STAT_FLOWS_RESET), 1);
}

Test(hostile, idle_expiry_with_offsets_resets_both_ends)
{
	ehlo(&T);
	tb_send(&T, &T.cli, "RCPT TO:<bad1@example.com>\r\n", 28);
	tb_pump(&T);
	for (int i = 0; i < 200; i++)
		tb_tick(&T, 10000); /* well past the idle timeout */
	cr_assert(T.srv.rst_rcvd, "the server was not reset");
	cr_assert(T.cli.rst_rcvd, "the client was not reset");
	cr_assert_geq(tb_stat(&T, STAT_FLOWS_RESET), 1);
}

/* ---- deliberate fail-open is counted per cause and reported ---- */

Test(hostile, over_long_line_fail_open_is_reported_with_the_client)
{
	char line[1200];
	ehlo(&T);
	memset(line, 'x', sizeof(line));
	tb_send(&T, &T.cli, line, sizeof(line)); /* no line end within line_max */
	tb_pump(&T);
	no_errors(&T);
	cr_assert_eq(tb_stat(&T, STAT_FAILOPEN), 1);
	cr_assert_eq(tb_stat(&T, STAT_LINE_TOO_LONG), 1);
	const struct msg_event *ev = spsc_peek(T.events);
	cr_assert_not_null(ev, "no event reported");
	cr_assert_eq(ev->type, MSG_EV_FAILOPEN);
	cr_assert_eq(ev->code, MSG_FO_LINE);
	cr_assert_eq(ev->client_port, 40001);
	cr_assert(memcmp(ev->client_ip, T.cli.ip, 4) == 0);
	cr_assert_eq(T.srv.rx_len, 18 + 27 + sizeof(line), "the bytes were not forwarded");
	all_acked(&T);
}

/* ---- the pin ring bounds what a client may have in flight ---- */

Test(hostile, client_window_is_clamped_to_the_pin_ring)
{
	T.conf.pin_max = 4096;
	tb_reset(&T);
	ehlo(&T);
	uint32_t una = T.cli.snd_una;
	cr_assert_leq(T.cli.max_win_edge - una, 4096, "the client may send %u bytes",
		      T.cli.max_win_edge - una);
	/* a client ignoring the window: what does not fit is dropped, counted,
	 * and comes again by retransmission */
	static char big[9000];
	size_t k = 0;
	while (k + 28 <= sizeof(big)) {
		memcpy(big + k, (k / 28) % 2 ? "RCPT TO:<bad1@example.com>\r\n"
					      : "RCPT TO:<good@example.com>\r\n", 28);
		k += 28;
	}
	tb_send(&T, &T.cli, big, (uint32_t)k);
	tb_pump(&T);
	cr_assert_gt(tb_stat(&T, STAT_PIN_OVERRUN), 0);
	cr_assert_eq(tb_recover(&T, 40), 0, "not everything was acknowledged");
	no_errors(&T);
	never_reached(&T, "bad1@");
	all_acked(&T);
}

Test(hostile, bad_ipv4_header_checksum_is_never_repaired)
{
	uint8_t buf[TB_FRAME_MAX];
	ehlo(&T);
	/* a client RCPT whose IPv4 header is corrupted (TTL): the TCP checksum
	 * is right, the receiver's IP layer drops it all the same */
	T.cli.tsval++;
	uint16_t n = tb_build(&T, &T.cli, &T.srv, buf, T.cli.snd_nxt, T.cli.rcv_nxt,
			      PKT_TH_ACK | PKT_TH_PSH, (const uint8_t *)"RCPT TO:<bad1@example.com>\r\n",
			      28, NULL, 0);
	buf[14 + 8] = 0; /* TTL */
	T.corrupted++;
	tb_inject(&T, &T.cli, buf, n);
	tb_pump(&T);
	cr_assert_eq(tb_stat(&T, STAT_BAD_CSUM), 1);
	cr_assert_eq(tb_stat(&T, STAT_RCPT), 0, "a datagram the server drops was parsed");
	/* then the real thing */
	tb_send(&T, &T.cli, "RCPT TO:<bad2@example.com>\r\n", 28);
	tb_pump(&T);
	no_errors(&T);
	never_reached(&T, "bad2@");
	all_acked(&T);
}

Test(hostile, reordered_segments_with_older_timestamps_are_accepted)
{
	/* two segments sent one after the other arrive swapped: the second
	 * (newer timestamp) first.  PAWS's TS.Recent moves only with in-order
	 * segments (RFC 7323 4.3), so the first is still acceptable. */
	uint8_t buf[TB_FRAME_MAX];
	static const char a[] = "RCPT TO:<good@example.com>\r\n", b[] = "RCPT TO:<bad1@example.com>\r\n";
	ehlo(&T);
	uint32_t off = T.cli.tx_len;
	tb_stage(&T, &T.cli, a, 28);
	tb_stage(&T, &T.cli, b, 28);
	uint32_t ts = T.cli.tsval;
	T.cli.tsval = ts + 2;
	uint16_t n = tb_build(&T, &T.cli, &T.srv, buf, T.cli.isn + 1 + off + 28, T.cli.rcv_nxt,
			      PKT_TH_ACK | PKT_TH_PSH, (const uint8_t *)b, 28, NULL, 0);
	tb_inject(&T, &T.cli, buf, n);
	tb_pump(&T);
	T.cli.tsval = ts + 1;
	n = tb_build(&T, &T.cli, &T.srv, buf, T.cli.isn + 1 + off, T.cli.rcv_nxt,
		     PKT_TH_ACK | PKT_TH_PSH, (const uint8_t *)a, 28, NULL, 0);
	tb_inject(&T, &T.cli, buf, n);
	T.cli.tsval = ts + 2;
	tb_pump(&T);
	no_errors(&T);
	cr_assert_eq(tb_stat(&T, STAT_SEG_UNACCEPTABLE), 0);
	never_reached(&T, "bad1@");
	cr_assert_not_null(strstr(tb_rx_str(&T.srv), "RCPT TO:<good@example.com>\r\n"));
	all_acked(&T);
}

Test(hostile, bytes_held_before_a_starttls_220_pass_once_it_comes)
{
	/* a client that does not wait for the 220: what it sent meanwhile is
	 * held, then passes as the opaque stream it has become */
	ehlo(&T);
	tb_send(&T, &T.cli, "STARTTLS\r\n\x16\x03\x01\x00\x05hello", 20);
	tb_pump(&T);
	tb_send(&T, &T.cli, "\x16\x03\x03more", 7);
	tb_pump(&T);
	cr_assert_eq(tb_recover(&T, 8), 0, "not everything was acknowledged");
	no_errors(&T);
	cr_assert_eq(T.srv.rx_len, 18 + 27 + 27, "%u bytes reached the server", T.srv.rx_len);
	cr_assert(memcmp(T.srv.rx + 45 + 10, "\x16\x03\x01\x00\x05hello\x16\x03\x03more", 17) == 0);
}

Test(hostile, rst_after_the_fin_is_plausible)
{
	/* a client that sent its FIN resets at FIN+1 (closing without reading
	 * the reply): that RST is in the window, not an attack */
	uint8_t buf[TB_FRAME_MAX];
	ehlo(&T);
	tb_send(&T, &T.cli, "RCPT TO:<bad1@example.com>\r\nQUIT\r\n", 34);
	tb_pump(&T);
	tb_send_fin(&T, &T.cli);
	tb_pump(&T);
	uint16_t n = cli_frame(buf, T.cli.snd_nxt, PKT_TH_RST | PKT_TH_ACK, NULL, 0);
	tb_inject(&T, &T.cli, buf, n);
	tb_pump(&T);
	cr_assert_eq(tb_stat(&T, STAT_RST_IGNORED), 0);
	cr_assert(T.srv.rst_rcvd, "the RST did not reach the server");
}
