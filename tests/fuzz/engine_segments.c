/*
 * engine_segments.c — libFuzzer harness: arbitrary TCP segments in both
 * directions of a few flows through engine_rx() and engine_timer(), with
 * tiny limits (flows, line length, out-of-order queue, blocks, injected
 * bytes, retransmissions), so every limit path is reached.
 *
 * The input is a header (configuration choices) and then a sequence of
 * operations, each naming a flow (one of FZ_FLOWS 4-tuples), a direction and
 * what to send: SYN (with an MSS the input picks, up to 8960), SYN-ACK, ACK,
 * SACK, data, FIN, RST, a clock advance with engine_timer(), a segment with a
 * corrupted checksum, a header-mangled frame.  Sequence and acknowledgment
 * numbers are offsets from what the harness tracks for the flow (the highest
 * byte each side sent, the highest the engine delivered to each side), so
 * in-window and near-window cases are reached, not just random numbers.
 * Payloads are pieces of a small dictionary of SMTP commands and replies
 * plus raw bytes.
 *
 * Frames are handed to the engine in exactly sized heap buffers (headroom
 * and tailroom chosen by the input, tailroom often 0) and transmit buffers
 * are separate heap blocks of ENGINE_OUT_BUF_MIN bytes, so ASan sees any
 * access past them.
 *
 * The output contract checked on every frame the engine forwards or emits:
 * - at most the link's MTU (1500, or 576 as the input says; the engine's
 *   conf.mtu) of IP: a 1514-byte Ethernet frame plus the VLAN tags;
 * - a well-formed TCP frame with a good IPv4 header checksum and a good TCP
 *   checksum (after the emulated checksum offload when the input turns
 *   tx_csum_offload on);
 * - no more payload than the receiving endpoint announced as its MSS, or
 *   than the sender put into the segment being forwarded;
 * - a frame that arrived with a bad checksum is forwarded byte for byte
 *   untouched or dropped, never "repaired".
 *
 * To look past a finding already reported, an exploration run may set
 * RG_FUZZ_SKIP to a comma-separated list of the checks named above:
 * "untouched", "mtu", "mss"; "ipcsum" gives mangled IPv4 frames a good header
 * checksum (crashes/engine_segments/bad-ipv4-header-checksum-rewritten
 * otherwise dominates); "fin" sends every FIN at the sender's next
 * sequence number (crashes/engine_segments/held-line-then-fin-below-forwarded
 * otherwise dominates).  scripts/fuzz passes it through; the fuzz suite never
 * sets it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtable.h"
#include "engine.h"
#include "fuzz_check.h"
#include "pkt.h"
#include "tb.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_FLOWS 3u
static unsigned fz_mtu;	/* IP bytes per frame on the harness's link: 1500 or 576 */
#define FZ_MTU fz_mtu
#define FZ_OUT 8u		/* ENGINE_OUT_MIN transmit buffers per call */
#define PORT_OUTSIDE 0u		/* the client's side */
#define PORT_INSIDE 1u		/* the server's side */

static struct tb T;
static uint8_t *txmem[FZ_OUT];
static int skip_untouched, skip_mtu, skip_mss, skip_fin, skip_ipcsum, trace;

struct fz_flow {
	struct tb_ep *cli, *srv;
	uint32_t c_isn, s_isn;
	uint32_t c_nxt, s_nxt;		/* next byte each side would send */
	uint32_t c_rcv, s_rcv;		/* highest byte the engine delivered to each side */
	uint16_t c_mss, s_mss;		/* largest announced in the SYNs on this
					 * 4-tuple; 0: none */
	uint8_t c_nomss, s_nomss;	/* a SYN without the option: no check */
};

static struct tb_ep eps[2 * FZ_FLOWS];
static struct fz_flow fl[FZ_FLOWS];

/* ---- input reader ---- */

struct rd {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct rd *r)
{
	if (!r->n)
		return 0;
	r->n--;
	return *r->p++;
}

static uint16_t u16(struct rd *r)
{
	return (uint16_t)(u8(r) << 8 | u8(r));
}

static uint32_t u32(struct rd *r)
{
	return (uint32_t)u16(r) << 16 | u16(r);
}

static const char *const dict[] = {
	"EHLO c.test\r\n", "HELO c.test\r\n", "MAIL FROM:<s@x.test>\r\n",
	"RCPT TO:<good@example.com>\r\n", "RCPT TO:<bad1@example.com>\r\n",
	"RCPT TO:<bad2@example.com>\r\n", "RCPT TO:<nobody@closed.test>\r\n",
	"RCPT TO:<ok@closed.test>\r\n", "RCPT TO:<h1@harvest.test>\r\n",
	"RCPT TO:<x@defer.test>\r\n", "RCPT TO:<new@elsewhere.test>\r\n", "DATA\r\n",
	"BDAT 7\r\n", "BDAT 0 LAST\r\n", "BDAT 3 LAST\r\n", "RSET\r\n", "QUIT\r\n",
	"STARTTLS\r\n", "AUTH PLAIN\r\n", "AUTH LOGIN dXNlcg==\r\n", "NOOP\r\n", ".\r\n",
	"..\r\n", "\r\n", "\r", "\n", "RCPT", " TO:", "<bad1@example.com>", " ", "\t",
	"rcpt to:<BAD2@EXAMPLE.COM> SIZE=10\r\n",
	"220 mx.test ESMTP\r\n", "250-mx.test\r\n", "250-PIPELINING\r\n", "250-CHUNKING\r\n",
	"250-STARTTLS\r\n", "250 8BITMIME\r\n", "250 2.1.5 Ok\r\n", "250 2.1.0 Ok\r\n",
	"354 go ahead\r\n", "334 VXNlcm5hbWU6\r\n", "235 2.7.0 ok\r\n", "503 5.5.1 no\r\n",
	"550 5.1.1 no\r\n", "450 4.7.1 later\r\n", "221 2.0.0 Bye\r\n", "421 4.7.0 bye\r\n",
	"220 2.0.0 Ready to start TLS\r\n", "250 2.0.0 Ok: queued\r\n",
	("a body line that is long enough to matter for small limits, padded out to "
	 "more than a hundred bytes of text without an end\r\n"),
};
#define N_DICT (sizeof(dict) / sizeof(dict[0]))

/* ---- frames through the engine ---- */

static void nic_offload(uint8_t *b, uint16_t len, uint16_t flags)
{
	struct pkt p;
	if (pkt_parse(&p, b, len) != PKT_TCP)
		return;
	if (flags & ENGINE_TX_IPV4)
		pkt_ip_csum(&p);
	if (flags & ENGINE_TX_TCP_CKSUM) {
		uint8_t *th = b + p.tcp_off;
		uint32_t s = pkt_get16(th + 16);
		th[16] = th[17] = 0;
		s = pkt_csum_add(s, th, (size_t)(p.ip_end - p.tcp_off));
		pkt_put16(th + 16, (uint16_t)~pkt_csum_fold(s));
	}
}

static struct fz_flow *flow_of(const struct pkt *p)
{
	for (unsigned i = 0; i < FZ_FLOWS; i++) {
		uint16_t cp = fl[i].cli->port;
		if ((p->sport == cp && p->dport == 25) || (p->dport == cp && p->sport == 25))
			return &fl[i];
	}
	return NULL;
}

static int after(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}

/* Internet checksum (RFC 1071) written here, not the engine's pkt_csum_*:
 * the contract is checked independently of the code under test. */
static uint32_t sum16(uint32_t s, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)b[i] << 8 | b[i + 1];
	if (n & 1)
		s += (uint32_t)b[n - 1] << 8;
	return s;
}

static int sum_ok(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffffu) + (s >> 16);
	return s == 0xffffu;
}

/* 1 when p's IPv4 header checksum (if any) is good. */
static int ip_csum_ok(const struct pkt *p)
{
	const uint8_t *ip = p->frame + p->ip_off;
	return p->family != 4 || sum_ok(sum16(0, ip, (size_t)(ip[0] & 0x0f) * 4u));
}

/* 1 when p's TCP checksum is good. */
static int tcp_csum_ok(const struct pkt *p)
{
	unsigned alen = p->family == 4 ? 4u : 16u, tlen = (unsigned)(p->ip_end - p->tcp_off);
	uint32_t s = sum16(0, p->saddr, alen);
	s = sum16(s, p->daddr, alen);
	s += 6u + tlen;
	return sum_ok(sum16(s, p->frame + p->tcp_off, tlen));
}

static int csums_ok(const struct pkt *p)
{
	return ip_csum_ok(p) && tcp_csum_ok(p);
}

static void track(const struct pkt *p)
{
	struct fz_flow *f = flow_of(p);
	if (f && (p->pay_len || (p->flags & PKT_TH_FIN))) {
		int to_client = p->dport == f->cli->port;
		uint32_t end = p->seq + p->pay_len + ((p->flags & PKT_TH_FIN) ? 1u : 0u);
		uint32_t *rcv = to_client ? &f->c_rcv : &f->s_rcv;
		if (after(end, *rcv))
			*rcv = end;
	}
}

/*
 * Check one frame leaving the engine.  in/in_len: the frame handed to the
 * engine when this is it being forwarded (else NULL); in_bad: it carried a
 * bad checksum; in_pay: its payload bytes.
 */
static void check_out(const char *what, uint8_t *b, uint16_t len, uint16_t tx_flags,
		      const uint8_t *in, uint16_t in_len, int in_bad, uint16_t in_pay)
{
	struct pkt p;
	struct fz_flow *f;
	unsigned max_frame = 14u + 4u * (unsigned)T.vlan + FZ_MTU;
	int to_client;
	uint16_t rmss;

	if (in && in_len == len && memcmp(in, b, len) == 0) {
		/* forwarded untouched: whatever came in may go out */
		if (!in_bad && pkt_parse(&p, b, len) == PKT_TCP)
			track(&p);
		return;
	}
	if (in_bad && !skip_untouched) {
		unsigned d = 0;
		while (d < len && d < in_len && in[d] == b[d])
			d++;
		if (trace)
			for (unsigned i = 0; i < len || i < in_len; i++)
				if (i >= len || i >= in_len || in[i] != b[i])
					fprintf(stderr, "  byte %u: %02x -> %02x\n", i,
						i < in_len ? in[i] : 0u, i < len ? b[i] : 0u);
		FZ_CHECK(0, "%s: a frame with a bad checksum was changed (%u -> %u bytes, first "
			    "difference at byte %u), not forwarded untouched", what, in_len, len, d);
	}
	FZ_CHECK(len <= max_frame || skip_mtu, "%s: %u-byte frame, link MTU allows %u", what, len,
		 max_frame);
	if (in_bad)
		return; /* (skipped) */
	if (T.conf.tx_csum_offload)
		nic_offload(b, len, tx_flags);
	FZ_CHECK(pkt_parse(&p, b, len) == PKT_TCP, "%s: %u-byte frame is not TCP", what, len);
	FZ_CHECK(csums_ok(&p),
		 "%s: bad checksum (IPv%u, seq %u, flags %02x, %u bytes of payload; %u bytes "
		 "in; tx_csum_offload %u, tx_flags %x)", what, p.family, p.seq, p.flags,
		 p.pay_len, in_len, T.conf.tx_csum_offload, tx_flags);
	FZ_CHECK(p.ip_end - p.ip_off <= (int)FZ_MTU || skip_mtu, "%s: %d IP bytes > MTU", what,
		 p.ip_end - p.ip_off);
	track(&p);
	if (trace) {
		fprintf(stderr, "  %s: %u>%u seq %u flags %02x %u bytes ", what, p.sport, p.dport,
			p.seq, p.flags, p.pay_len);
		for (unsigned i = 0; i < p.pay_len && i < 48; i++) {
			uint8_t c = b[p.pay_off + i];
			fputc(c >= 0x20 && c < 0x7f ? c : '.', stderr);
		}
		fputc('\n', stderr);
	}
	f = flow_of(&p);
	if (!f)
		return;
	to_client = p.dport == f->cli->port;
	rmss = to_client ? f->c_mss : f->s_mss;
	if (to_client ? f->c_nomss : f->s_nomss)
		rmss = 0;
	if (rmss && p.pay_len > rmss && !skip_mss)
		FZ_CHECK(in && p.pay_len <= in_pay,
			 "%s: %u bytes of payload to the %s, which announced MSS %u", what,
			 p.pay_len, to_client ? "client" : "server", rmss);
}

static void check_outs(const char *what, struct engine_txbuf *tx, unsigned n)
{
	FZ_CHECK(n <= FZ_OUT, "%s: %u frames written into %u buffers", what, n, FZ_OUT);
	for (unsigned i = 0; i < n; i++) {
		if (!tx[i].len)
			continue;
		FZ_CHECK(tx[i].data == txmem[i] && tx[i].len <= ENGINE_OUT_BUF_MIN,
			 "%s: buffer %u: %u bytes", what, i, tx[i].len);
		FZ_CHECK(tx[i].port == PORT_OUTSIDE || tx[i].port == PORT_INSIDE,
			 "%s: frame on port %u", what, tx[i].port);
		check_out(what, tx[i].data, tx[i].len, tx[i].tx_flags, NULL, 0, 0, 0);
	}
}

static void out_init(struct engine_txbuf *tx, struct engine_out *out)
{
	for (unsigned i = 0; i < FZ_OUT; i++) {
		memset(&tx[i], 0, sizeof(tx[i]));
		tx[i].data = txmem[i];
		tx[i].cap = ENGINE_OUT_BUF_MIN;
	}
	out->buf = tx;
	out->cap = FZ_OUT;
	out->n = 0;
}

/* Hand a frame to the engine as port to_server ? outside : inside gives it. */
static void rx(const uint8_t *frame, uint16_t len, int to_server, uint8_t rx_csum,
	       uint16_t headroom, uint16_t tailroom)
{
	int bad = 0;
	struct engine_txbuf tx[FZ_OUT];
	struct engine_out out;
	struct engine_frame fr;
	struct pkt p;
	uint16_t in_pay = 0;
	uint8_t *room = malloc((size_t)headroom + len + tailroom);
	uint8_t *copy = malloc(len);
	enum engine_verdict v;

	FZ_CHECK(room && copy, "malloc");
	memcpy(room + headroom, frame, len);
	memcpy(copy, frame, len);
	if (pkt_parse(&p, copy, len) == PKT_TCP) {
		in_pay = p.pay_len;
		bad = !csums_ok(&p);
		if (trace && bad)
			fprintf(stderr, "  in: bad %s checksum\n",
				ip_csum_ok(&p) ? "TCP" : "IPv4 header");
	}
	memset(&fr, 0, sizeof(fr));
	fr.data = room + headroom;
	fr.len = len;
	fr.headroom = headroom;
	fr.tailroom = tailroom;
	fr.rx_port = to_server ? PORT_OUTSIDE : PORT_INSIDE;
	fr.peer_port = to_server ? PORT_INSIDE : PORT_OUTSIDE;
	fr.outside = (uint8_t)to_server;
	fr.rx_csum = rx_csum;
	out_init(tx, &out);
	v = engine_rx(T.e, &fr, T.now_ns, &out);
	FZ_CHECK(v == ENGINE_FORWARD || v == ENGINE_DROP, "verdict %d", (int)v);
	if (v == ENGINE_FORWARD) {
		FZ_CHECK(fr.data >= room && fr.data + fr.len <= room + headroom + len + tailroom,
			 "forwarded frame outside its buffer");
		check_out("forwarded", fr.data, fr.len, fr.tx_flags, copy, len, bad, in_pay);
	}
	check_outs("emitted", tx, out.n);
	free(copy);
	free(room);
}

static void tick(uint32_t ms)
{
	struct engine_txbuf tx[FZ_OUT];
	struct engine_out out;
	unsigned n;
	T.now_ns += (uint64_t)ms * 1000000u;
	out_init(tx, &out);
	n = engine_timer(T.e, T.now_ns, &out);
	FZ_CHECK(n == out.n, "engine_timer returned %u, out.n %u", n, out.n);
	check_outs("timer", tx, out.n);
}

/* ---- operations ---- */

static const uint16_t mss_choice[8] = {0, 88, 536, 1220, 1460, 1460, 8960, 65495};

static uint16_t payload(struct rd *r, uint8_t *buf, uint16_t cap)
{
	uint16_t n = 0;
	unsigned pieces = 1 + u8(r) % 8;
	for (unsigned i = 0; i < pieces && r->n; i++) {
		uint8_t c = u8(r);
		if (c < 0xc0) {
			const char *w = dict[c % N_DICT];
			size_t l = strlen(w);
			if (n + l > cap)
				break;
			memcpy(buf + n, w, l);
			n = (uint16_t)(n + l);
		} else {
			unsigned k = (c & 0x3fu) + 1;
			for (unsigned j = 0; j < k && n < cap; j++)
				buf[n++] = u8(r);
		}
	}
	return n;
}

static void op(struct rd *r)
{
	static uint8_t pay[2048], frame[TB_FRAME_MAX];
	uint8_t o = u8(r), x = u8(r);
	struct fz_flow *f = &fl[(o >> 4) % FZ_FLOWS];
	int to_server = !(x & 1);
	struct tb_ep *from = to_server ? f->cli : f->srv, *to = to_server ? f->srv : f->cli;
	uint32_t *nxt = to_server ? &f->c_nxt : &f->s_nxt;
	uint32_t ack_base = to_server ? f->c_rcv : f->s_rcv;
	uint8_t flags = PKT_TH_ACK, rx_csum = (x >> 1) & 1 ? ENGINE_RXCSUM_GOOD : 0;
	uint16_t headroom = (x & 4) ? 128 : 0, tailroom = (x & 8) ? 0 : (uint16_t)(u8(r) * 8);
	uint32_t seq = *nxt + (uint32_t)(int32_t)(int8_t)u8(r);
	uint32_t ack = ack_base - (x & 0x10 ? (uint32_t)(u8(r) % 64) : 0);
	uint32_t sack[2][2];
	unsigned n_sack = 0;
	uint16_t len = 0, rmss = to_server ? f->s_mss : f->c_mss, cap;
	/* (the smallest announced would be safer for a sender, but a SYN
	 * announcing a smaller one may come later: a real TCP keeps the first) */
	int bad = 0;

	/* what a sender may put in one segment: the peer's MSS and our MTU */
	cap = (uint16_t)(FZ_MTU - (T.family == 4 ? 20 : 40) - 20 - 12);
	if (rmss && rmss < cap)
		cap = rmss;
	if (x & 0x20)
		flags |= PKT_TH_PSH;
	switch (o & 0x0f) {
	case 0: { /* SYN from the client, or SYN-ACK from the server */
		/* a SYN sent again may announce another MSS: the check then
		 * allows the largest announced (whichever the engine kept) */
		uint16_t m = mss_choice[u8(r) % 8], *mine = to_server ? &f->c_mss : &f->s_mss;
		if (!m)
			*(to_server ? &f->c_nomss : &f->s_nomss) = 1;
		else if (m > *mine)
			*mine = m;
		if (to_server) {
			seq = f->c_isn;
			flags = PKT_TH_SYN;
			ack = 0;
		} else {
			seq = f->s_isn;
			flags = PKT_TH_SYN | PKT_TH_ACK;
			ack = f->c_isn + 1;
		}
		T.mss = m;
		T.no_mss_opt = m == 0;
		break;
	}
	case 1: /* a new connection on the same 4-tuple: new ISNs */
		f->c_isn += 0x10000000u + u16(r);
		f->s_isn += 0x20000000u + u16(r);
		f->c_nxt = f->c_isn + 1;
		f->s_nxt = f->s_isn + 1;
		f->c_rcv = f->s_isn + 1;
		f->s_rcv = f->c_isn + 1;
		/* the MSS records stay: until the server answers the new SYN the
		 * engine still holds the old connection (a stray SYN-ACK without
		 * that SYN changes nothing), so any MSS announced on this 4-tuple
		 * may be the one in force */
		return;
	case 2: /* pure ACK, possibly with SACK blocks */
		seq = *nxt;
		if (x & 0x40) {
			n_sack = 1 + (x >> 7);
			for (unsigned i = 0; i < n_sack; i++) {
				sack[i][0] = ack_base + (uint32_t)(int32_t)(int16_t)u16(r);
				sack[i][1] = sack[i][0] + u8(r);
			}
		}
		break;
	case 3: case 4: case 5: case 6: case 7: case 8: /* data */
		len = payload(r, pay, cap);
		break;
	case 9: /* FIN, maybe with data */
		flags |= PKT_TH_FIN;
		if (x & 0x40)
			len = payload(r, pay, cap);
		break;
	case 10: /* RST, near or far from the window */
		flags = (uint8_t)(PKT_TH_RST | ((x & 0x40) ? PKT_TH_ACK : 0));
		if (x & 0x80)
			seq = u32(r);
		break;
	case 11: /* time passes */
		tick((uint32_t)u8(r) * ((x & 0x40) ? 1000u : 10u));
		return;
	case 12: /* data with a corrupted checksum (the port may or may not say so) */
		len = payload(r, pay, cap);
		bad = 1;
		rx_csum = (x & 0x40) ? ENGINE_RXCSUM_BAD : ENGINE_RXCSUM_UNKNOWN;
		break;
	case 13: /* data without the ACK flag, or with odd flags */
		len = payload(r, pay, cap);
		flags = (uint8_t)(u8(r) & 0x3f & ~PKT_TH_SYN);
		break;
	case 14: /* data far from the window */
		len = payload(r, pay, cap);
		seq = u32(r);
		break;
	case 15: { /* a frame with mangled header bytes */
		uint16_t n;
		len = payload(r, pay, cap);
		n = tb_build(&T, from, to, frame, seq, ack, flags, pay, len, NULL, 0);
		for (unsigned i = 0, k = 1 + u8(r) % 4; i < k; i++) {
			uint16_t at = (uint16_t)(u8(r) % 80);
			if (at < n) {
				uint8_t v = u8(r);
				if (trace)
					fprintf(stderr, "  mangle byte %u: %02x -> %02x\n", at,
						frame[at], v);
				frame[at] = v;
			}
		}
		if (skip_ipcsum) {
			struct pkt q;
			if (pkt_parse(&q, frame, n) == PKT_TCP && q.family == 4)
				pkt_ip_csum(&q);
		}
		if (trace)
			fprintf(stderr, "op 15 flow %ld %s mangled frame of %u bytes\n",
				(long)(f - fl), to_server ? "c>s" : "s>c", n);
		rx(frame, n, to_server, 0, headroom, tailroom);
		return;
	}
	}
	if (skip_fin && (flags & PKT_TH_FIN))
		seq = *nxt;
	{
		uint16_t n = tb_build(&T, from, to, frame, seq, ack, flags, pay, len,
				      n_sack ? (const uint32_t(*)[2])sack : NULL, n_sack);
		if (bad) {
			unsigned at = n - 1 - (len ? u8(r) % len : 0u);
			frame[at] ^= (uint8_t)(1u + u8(r) % 255u);
		}
		if ((o & 0x0f) == 13 && (x & 0x80))
			from->tsval -= 3; /* and a stale timestamp */
		else
			from->tsval++;
		if (trace)
			fprintf(stderr, "op %2u flow %ld %s seq %+d ack %+d flags %02x len %u%s "
				"rx_csum %u tailroom %u\n", o & 0x0fu, (long)(f - fl),
				to_server ? "c>s" : "s>c", (int)(seq - *nxt), (int)(ack - ack_base),
				flags, len, bad ? " BADCSUM" : "", rx_csum, tailroom);
		rx(frame, n, to_server, rx_csum, headroom, tailroom);
	}
	if (!bad && (flags & PKT_TH_SYN))
		*nxt = seq + 1;
	else if (!bad && after(seq + len + ((flags & PKT_TH_FIN) ? 1u : 0u), *nxt))
		*nxt = seq + len + ((flags & PKT_TH_FIN) ? 1u : 0u);
}

/* The fields tb_build() reads: addresses, port, timestamp. */
static void ep_addr(struct tb_ep *d, const struct tb_ep *s)
{
	d->is_server = s->is_server;
	memcpy(d->mac, s->mac, sizeof(d->mac));
	memcpy(d->ip, s->ip, sizeof(d->ip));
	d->port = s->port;
	d->tsval = s->tsval;
}

static void preload(struct tb *t)
{
	tb_domain(t, "example.com", DT_MODE_CALLOUT, DT_MISS_PASS, 0, 0);
	tb_domain(t, "defer.test", DT_MODE_CALLOUT, DT_MISS_DEFER, 0, 0);
	tb_domain(t, "closed.test", DT_MODE_LIST, DT_MISS_PASS, 0, 0);
	tb_domain(t, "harvest.test", DT_MODE_CALLOUT, DT_MISS_PASS, 0, 3);
	tb_verdict(t, "good@example.com", 1);
	tb_verdict(t, "bad1@example.com", 0);
	tb_verdict(t, "bad2@example.com", 0);
	tb_verdict(t, "ok@closed.test", 1);
	tb_verdict(t, "h1@harvest.test", 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *skip = getenv("RG_FUZZ_SKIP");
	if (skip) {
		skip_untouched = strstr(skip, "untouched") != NULL;
		skip_mtu = strstr(skip, "mtu") != NULL;
		skip_mss = strstr(skip, "mss") != NULL;
		skip_fin = strstr(skip, "fin") != NULL;
		skip_ipcsum = strstr(skip, "ipcsum") != NULL;
		fprintf(stderr, "engine_segments: RG_FUZZ_SKIP=%s: checks skipped\n", skip);
	}
	trace = getenv("RG_FUZZ_TRACE") != NULL;
	tb_init(&T, 4, 0, 1);
	if (!T.have_shm) {
		fprintf(stderr, "engine_segments: no shared memory (/dev/shm)\n");
		abort();
	}
	preload(&T);
	for (unsigned i = 0; i < FZ_OUT; i++) {
		txmem[i] = malloc(ENGINE_OUT_BUF_MIN);
		if (!txmem[i])
			abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r = {data, size};
	uint8_t h0 = u8(&r), h1 = u8(&r);
	unsigned ops = 0;

	/* tiny limits; which of them, and the frame format, from the header */
	engine_conf_default(&T.conf);
	T.conf.max_flows = 1 + h0 % 3;
	T.conf.busy_blocks = h0 & 0x04 ? 1 : 3;
	T.conf.seg_blocks = h0 & 0x08 ? 1 : 4;
	T.conf.ooo_max = h0 & 0x10 ? 1 : 3;
	T.conf.line_max = h0 & 0x20 ? 64 : 200;
	T.conf.cmd_max = 8;
	T.conf.rcpt_max = 4;
	T.conf.inject_max = 2 * (RG_ADDR_MAX + 96u);
	T.conf.retx_max = 2;
	T.conf.retx_initial_ms = 10;
	T.conf.idle_timeout_ms = 5000;
	T.conf.handshake_timeout_ms = 1000;
	T.conf.harvest_threshold = 2;
	T.conf.harvest_slots = 4;
	T.conf.tx_csum_offload = (h0 >> 6) & 1;
	T.conf.pin_max = 4096;
	fz_mtu = (h0 & 0x80) ? 576u : 1500u;
	T.conf.mtu = (uint16_t)fz_mtu;
	T.family = h1 & 1 ? 6 : 4;
	T.vlan = (h1 >> 1) % 3;
	T.use_ts = (h1 >> 3) & 1;
	T.now_ns = 1000000000ull;
	tb_reset(&T); /* a fresh engine with this configuration */

	for (unsigned i = 0; i < FZ_FLOWS; i++) {
		struct fz_flow *f = &fl[i];
		memset(f, 0, sizeof(*f));
		f->cli = &eps[2 * i];
		f->srv = &eps[2 * i + 1];
		ep_addr(f->cli, &T.cli);
		ep_addr(f->srv, &T.srv);
		/* flows 0 and 1 share the client's address; flow 2 another one */
		f->cli->port = (uint16_t)(40001 + i);
		if (i == 2)
			f->cli->ip[T.family == 4 ? 3 : 15] ^= 0x10;
		f->c_isn = 0xffffff00u + 0x01000193u * i * (h1 >> 4);
		f->s_isn = 0x7fffff00u + 0x0100019fu * i;
		f->c_nxt = f->c_isn + 1;
		f->s_nxt = f->s_isn + 1;
		f->c_rcv = f->s_isn + 1;
		f->s_rcv = f->c_isn + 1;
	}
	while (r.n && ops++ < 400)
		op(&r);
	tick(1);
	return 0;
}
