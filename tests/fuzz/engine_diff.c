/*
 * engine_diff.c — libFuzzer differential harness: well-formed SMTP sessions
 * through the engine between the test bed's model client and model server
 * (tests/dataplane/tb.c), with the network misbehaving as the input says.
 *
 * The input decides the frame format (IPv4/IPv6, VLAN tags, timestamps, MSS,
 * a server that sends each reply in its own segment, what the port says of
 * checksums), the session (groups of pipelined commands drawn from a
 * vocabulary of MAIL, RCPT of valid, refused and unmanaged recipients (the
 * refused ones also in the odd spellings a server accepts), RSET,
 * NOOP, a DATA with a body of awkward lines), how each group is cut into
 * segments, the order those segments are sent in (reordering), which are
 * sent twice, spoofed RSTs far outside the window (which TCP ignores), and,
 * frame by frame on both sides of the engine, whether the wire passes, loses
 * or duplicates it.  Losses are bounded per session
 * (FZ_LOSS_MAX, below the engine's retx_max) so that a correct engine always
 * completes the session; after the last command the wire heals and both
 * ends recover (tb_recover) until everything is acknowledged.
 *
 * The data plane is also restarted at points the input chooses (up to
 * FZ_RESTART_MAX per session, between two frames): the engine's state block
 * is copied to another address, the old one is poisoned, and a fresh engine
 * takes the copy over (engine_adopt), as a restarted rcptgate-dp takes over
 * its state file.  A restart must change nothing below.
 *
 * Asserted at the end of every session:
 * - the server received exactly the client's bytes minus the refused RCPT
 *   lines (and minus a DATA the engine refused with 554 because no
 *   recipient was left);
 * - the client received exactly the server's bytes plus the engine's
 *   answers, each in the place of the command it answers;
 * - both ends had everything they sent acknowledged, saw no bad checksum,
 *   no byte changing on retransmission, no ACK or SACK beyond what was
 *   sent, no segment larger than the MSS they announced (the test bed's
 *   own checks, tb_unacked() and tb_errors());
 * - nothing failed open.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtable.h"
#include "engine.h"
#include "fuzz_check.h"
#include "tb.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_RESTART_MAX 8u /* data-plane restarts per session */
#define FZ_LOSS_MAX 6u	   /* frames lost per session (engine retx_max is 8) */
#define FZ_GROUPS_MAX 12u
#define FZ_CMDS_MAX 24u
#define FZ_SEGS_MAX 24u
#define FZ_BODY_MAX 20u

#define GREETING "220 mx.test ESMTP\r\n"
#define EHLO_REPLY                                                                         \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-STARTTLS\r\n250-CHUNKING\r\n" \
	"250 8BITMIME\r\n"
#define R550(a) "550 5.1.1 <" a ">: Recipient address rejected: User unknown\r\n"
#define R554 "554 5.5.1 Error: no valid recipients\r\n"
#define OK_MAIL "250 2.1.0 Ok\r\n"
#define OK_RCPT "250 2.1.5 Ok\r\n"
#define GO_DATA "354 End data with <CR><LF>.<CR><LF>\r\n"
#define QUEUED "250 2.0.0 Ok: queued as 4XYZ\r\n"

static struct tb T;

/* ---- input reader ---- */

struct rd {
	const uint8_t *p;
	size_t n;
};

static struct rd R;

static uint8_t u8(void)
{
	if (!R.n)
		return 0;
	R.n--;
	return *R.p++;
}

/* ---- the session ---- */

enum kind { K_RESET, K_FWD, K_REF, K_OTHER };

struct vocab {
	const char *cmd, *srv, *reply;
	enum kind kind;
};

static const struct vocab vocab[] = {
	{"MAIL FROM:<s@x.test>\r\n", "MAIL FROM:<s@x.test>\r\n", OK_MAIL, K_RESET},
	{"RCPT TO:<good@example.com>\r\n", "RCPT TO:<good@example.com>\r\n", OK_RCPT, K_FWD},
	{"RCPT TO:<Good@Example.COM>\r\n", "RCPT TO:<Good@Example.COM>\r\n", OK_RCPT, K_FWD},
	{"RCPT TO:<bad1@example.com>\r\n", "", R550("bad1@example.com"), K_REF},
	{"RCPT TO:<bad2@example.com>\r\n", "", R550("bad2@example.com"), K_REF},
	{"RCPT TO:<no@closed.test>\r\n", "", R550("no@closed.test"), K_REF},
	{"RCPT TO:<ok@closed.test>\r\n", "RCPT TO:<ok@closed.test>\r\n", OK_RCPT, K_FWD},
	{"RCPT TO:<new@elsewhere.test>\r\n", "RCPT TO:<new@elsewhere.test>\r\n", OK_RCPT, K_FWD},
	/* spellings Postfix's smtpd accepts (any whitespace, leading spaces,
	 * case): refused all the same */
	{"RCPT\tTO:<bad1@example.com>\r\n", "", R550("bad1@example.com"), K_REF},
	{" RCPT TO:<bad2@example.com>\r\n", "", R550("bad2@example.com"), K_REF},
	{"rcpt to:\t<no@closed.test>\r\n", "", R550("no@closed.test"), K_REF},
	{"RCPT TO:<bad1@example.com>\t\r\n", "", R550("bad1@example.com"), K_REF},
	{"RSET\r\n", "RSET\r\n", "250 2.0.0 Ok\r\n", K_RESET},
	{"NOOP\r\n", "NOOP\r\n", "502 5.5.2 Error: command not recognized\r\n", K_OTHER},
};
#define N_VOCAB (sizeof(vocab) / sizeof(vocab[0]))

static const char *const body_lines[] = {
	"Subject: hello\r\n",
	"\r\n",
	"..leading dot, stuffed\r\n",
	"RCPT TO:<bad1@example.com>\r\n",
	"a longer line of body text that says nothing at all, padded out to be long\r\n",
	".\tnot the end\r\n",
	"..\r\n",
	"x\r\n",
	"DATA\r\n",
};
#define N_BODY (sizeof(body_lines) / sizeof(body_lines[0]))

static int trace;    /* RG_FUZZ_TRACE set: say what each burst does */
static int skip_rst; /* RG_FUZZ_SKIP contains "rst": no spoofed RSTs
			* (exploration past a known finding; never in the suite) */

static char exp_srv[TB_STREAM_MAX], exp_cli[TB_STREAM_MAX], burst[16384];
static size_t es, ec;
static unsigned lost;

static void expect(const char *srv, const char *cli)
{
	size_t sl = strlen(srv), cl = strlen(cli);
	FZ_CHECK(es + sl < sizeof(exp_srv) && ec + cl < sizeof(exp_cli), "session too long");
	memcpy(exp_srv + es, srv, sl + 1);
	es += sl;
	memcpy(exp_cli + ec, cli, cl + 1);
	ec += cl;
}

/* The engine's state block, and a second one a restart moves it to. */
static uint8_t *ebuf[2];
static size_t elen;
static unsigned ecur, restarts;

/* The data plane restarts: its state, at another address, taken over. */
static void restart(void)
{
	char why[256];
	unsigned nx = ecur ^ 1u;
	memcpy(ebuf[nx], ebuf[ecur], elen);
	memset(ebuf[ecur], 0xa5, elen); /* nothing may still point into it */
	ecur = nx;
	T.e = NULL;
	FZ_CHECK(tb_adopt(&T, ebuf[ecur], elen, why, sizeof(why)) == 0, "adopt: %s", why);
	restarts++;
	if (trace)
		fprintf(stderr, "data plane restarted (%u)\n", restarts);
}

/* The wire, frame by frame: pass, lose (within the budget) or duplicate;
 * between two frames the data plane may restart. */
static int wire(void *arg, const struct tb_frame *fr, int from_engine)
{
	uint8_t b = u8();
	(void)arg;
	(void)fr;
	(void)from_engine;
	if (b >= 0xd0 && b < 0xd8 && restarts < FZ_RESTART_MAX)
		restart();
	if (b >= 0xf0 && lost < FZ_LOSS_MAX) {
		lost++;
		return 0;
	}
	if (b >= 0xe0 && b < 0xf0)
		return 2;
	return 1;
}

/* Send burst[0..bl) as the client: staged, cut into segments where the
 * input says, sent in the input's order, some twice; then the wire works. */
static void send_burst(unsigned bl)
{
	uint32_t base = T.cli.tx_len, cut[FZ_SEGS_MAX + 1], order[FZ_SEGS_MAX];
	unsigned nseg = 1 + u8() % FZ_SEGS_MAX, n = 0;
	uint8_t how = u8();

	if (!bl)
		return;
	if ((how & 8) && !skip_rst) {
		/* a spoofed RST far outside the window (RFC 5961 3.2: ignored by
		 * the server's TCP, so it must change nothing here either) */
		struct tb_ep *ep = (how & 16) ? &T.srv : &T.cli;
		uint32_t keep = ep->snd_nxt;
		if (trace)
			fprintf(stderr, "spoofed RST from the %s, far outside the window\n",
				ep == &T.cli ? "client" : "server");
		ep->snd_nxt += 0x40000000u + (uint32_t)u8() * 4096u;
		tb_send_rst(&T, ep);
		ep->snd_nxt = keep;
		tb_pump(&T);
		/* if it was forwarded, the peer's TCP drops it: forget it */
		T.cli.rst_rcvd = T.srv.rst_rcvd = 0;
	}
	tb_stage(&T, &T.cli, burst, bl);
	if (trace)
		fprintf(stderr, "burst of %u bytes, %u segments%s%s%s: %.*s\n", bl, nseg,
			(how & 1) ? ", reordered" : "", (how & 2) ? ", some twice" : "",
			(how & 4) ? ", delivered as sent" : "", (int)(bl > 60 ? 60 : bl), burst);
	/* segment boundaries: nseg - 1 random cuts, sorted, deduplicated */
	cut[n++] = 0;
	for (unsigned i = 1; i < nseg; i++) {
		uint32_t c = 1 + (uint32_t)(u8() << 8 | u8()) % (bl > 1 ? bl - 1 : 1);
		unsigned j = n;
		while (j > 1 && cut[j - 1] > c) {
			cut[j] = cut[j - 1];
			j--;
		}
		if (cut[j - 1] != c) {
			cut[j] = c;
			n++;
		} else {
			memmove(cut + j, cut + j + 1, (n - j) * sizeof(cut[0]));
		}
	}
	cut[n] = bl;
	for (unsigned i = 0; i < n; i++) {
		order[i] = i;
		FZ_CHECK(cut[i + 1] > cut[i], "empty segment");
	}
	if (how & 1) /* reorder: Fisher-Yates driven by the input */
		for (unsigned i = n - 1; i > 0; i--) {
			unsigned j = u8() % (i + 1);
			uint32_t x = order[i];
			order[i] = order[j];
			order[j] = x;
		}
	for (unsigned k = 0; k < n; k++) {
		unsigned i = order[k];
		uint32_t off = cut[i], len = cut[i + 1] - cut[i];
		int twice = (how & 2) && (u8() & 7) == 0;
		while (len) { /* a segment must fit the MSS: split it further */
			uint32_t m = len > T.mss ? T.mss : len;
			tb_resend(&T, &T.cli, base + off, m);
			if (twice)
				tb_resend(&T, &T.cli, base + off, m);
			off += m;
			len -= m;
		}
		if (how & 4)
			tb_pump(&T); /* deliver as they go, not all at the end */
	}
	tb_pump(&T);
	tb_recover(&T, 40);
}

static void session(void)
{
	unsigned groups = 1 + u8() % FZ_GROUPS_MAX, fwd = 0, ref = 0;

	tb_open(&T);
	tb_send(&T, &T.cli, "EHLO client.test\r\n", 18);
	tb_pump(&T);
	es = ec = 0;
	exp_srv[0] = exp_cli[0] = 0;
	expect("EHLO client.test\r\n", GREETING EHLO_REPLY);
	T.filter = wire;

	for (unsigned g = 0; g < groups && R.n; g++) {
		unsigned k = 1 + u8() % FZ_CMDS_MAX, bl = 0;
		for (unsigned i = 0; i < k; i++) {
			const struct vocab *v = &vocab[u8() % N_VOCAB];
			memcpy(burst + bl, v->cmd, strlen(v->cmd));
			bl += (unsigned)strlen(v->cmd);
			expect(v->srv, v->reply);
			if (v->kind == K_RESET)
				fwd = ref = 0;
			else if (v->kind == K_FWD)
				fwd++;
			else if (v->kind == K_REF)
				ref++;
		}
		if (u8() & 1) {
			/* DATA ends the group; the body follows the 354 */
			memcpy(burst + bl, "DATA\r\n", 6);
			bl += 6;
			if (fwd == 0 && ref > 0) {
				expect("", R554); /* the engine refuses it: nothing left */
				send_burst(bl);
				continue;
			}
			expect("DATA\r\n", GO_DATA);
			send_burst(bl);
			bl = 0;
			for (unsigned i = 0, nl = u8() % FZ_BODY_MAX; i < nl; i++) {
				const char *ln = body_lines[u8() % N_BODY];
				memcpy(burst + bl, ln, strlen(ln));
				bl += (unsigned)strlen(ln);
				expect(ln, "");
			}
			memcpy(burst + bl, ".\r\n", 3);
			bl += 3;
			expect(".\r\n", QUEUED);
			fwd = ref = 0;
		}
		send_burst(bl);
	}
	tb_send(&T, &T.cli, "QUIT\r\n", 6);
	tb_pump(&T);
	expect("QUIT\r\n", "221 2.0.0 Bye\r\n");
	T.filter = NULL; /* the wire heals: both ends must now recover */
	{
		char msg[600];
		int left = tb_recover(&T, 60);
		FZ_CHECK(!tb_unacked(&T, msg, sizeof(msg)) && left == 0,
			 "not everything acknowledged: %s", msg);
		/* the test bed's contract: no wrong frame, no bad checksum */
		FZ_CHECK(!tb_errors(&T, msg, sizeof(msg)), "%s", msg);
	}
	FZ_CHECK(!T.cli.rst_rcvd && !T.srv.rst_rcvd, "a reset reached the %s",
		 T.cli.rst_rcvd ? "client" : "server");
	if (strcmp(tb_rx_str(&T.srv), exp_srv) || strcmp(tb_rx_str(&T.cli), exp_cli))
		fprintf(stderr, "engine: flows_closed %llu flows_expired %llu failopen %llu "
			"edit_nospace %llu inject_giveup %llu ooo_limit %llu\n",
			(unsigned long long)tb_stat(&T, STAT_FLOWS_CLOSED),
			(unsigned long long)tb_stat(&T, STAT_FLOWS_EXPIRED),
			(unsigned long long)tb_stat(&T, STAT_FAILOPEN),
			(unsigned long long)tb_stat(&T, STAT_EDIT_NOSPACE),
			(unsigned long long)tb_stat(&T, STAT_INJECT_GIVEUP),
			(unsigned long long)tb_stat(&T, STAT_OOO_LIMIT));
	FZ_CHECK(strcmp(tb_rx_str(&T.srv), exp_srv) == 0,
		 "the server received:\n%s\nexpected:\n%s", tb_rx_str(&T.srv), exp_srv);
	FZ_CHECK(strcmp(tb_rx_str(&T.cli), exp_cli) == 0,
		 "the client received:\n%s\nexpected:\n%s", tb_rx_str(&T.cli), exp_cli);
	FZ_CHECK(tb_stat(&T, STAT_FAILOPEN) == 0, "a flow failed open");
	FZ_CHECK(tb_stat(&T, STAT_FLOWS_ADOPT_RESET) == 0, "a flow was reset at a restart");
	if (trace)
		fprintf(stderr, "session ok: %zu bytes to the server, %zu to the client, %u lost\n",
			es, ec, lost);
}

static void preload(struct tb *t)
{
	tb_domain(t, "example.com", DT_MODE_CALLOUT, DT_MISS_PASS, 0, 0);
	tb_domain(t, "closed.test", DT_MODE_LIST, DT_MISS_PASS, 0, 0);
	tb_verdict(t, "good@example.com", 1);
	tb_verdict(t, "bad1@example.com", 0);
	tb_verdict(t, "bad2@example.com", 0);
	tb_verdict(t, "ok@closed.test", 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	trace = getenv("RG_FUZZ_TRACE") != NULL;
	skip_rst = getenv("RG_FUZZ_SKIP") && strstr(getenv("RG_FUZZ_SKIP"), "rst");
	tb_init(&T, 4, 0, 1);
	elen = (engine_mem_size(&T.conf) + 63u) & ~(size_t)63u;
	ebuf[0] = aligned_alloc(64, elen);
	ebuf[1] = aligned_alloc(64, elen);
	if (!ebuf[0] || !ebuf[1])
		abort();
	T.emem = ebuf[0];
	T.elen = elen;
	if (!T.have_shm) {
		fprintf(stderr, "engine_diff: no shared memory (/dev/shm)\n");
		abort();
	}
	preload(&T);
	return 0;
}

static const uint16_t mss_choice[4] = {1460, 536, 1220, 88};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t h;

	R.p = data;
	R.n = size;
	h = u8();
	T.family = h & 1 ? 6 : 4;
	T.use_ts = (h >> 1) & 1;
	T.vlan = ((h >> 2) & 3) % 3;
	T.srv_per_reply = (h >> 4) & 1;
	T.mss = mss_choice[(h >> 5) & 3];
	T.no_mss_opt = T.mss == 536 && T.family == 4;
	T.rx_csum = (h & 0x80) ? ENGINE_RXCSUM_GOOD : ENGINE_RXCSUM_UNKNOWN;
	T.now_ns = 1000000000ull;
	lost = 0;
	restarts = 0;
	T.emem = ebuf[ecur];
	T.elen = elen;
	tb_reset(&T);
	session();
	return 0;
}
