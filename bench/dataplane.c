/*
 * dataplane.c — `rcptgate-bench dataplane`: the worker loop's cost per packet
 * against testpmd-style io-forwarding, and invalid RCPTs answered per second.
 *
 * Two net_ring ports stand for the outside and inside ports.  A simulator on
 * the same thread plays both TCP endpoints of many SMTP sessions (handshake,
 * banner, EHLO, MAIL plus pipelined RCPTs, a given share of them (95% by
 * default) to addresses the table holds as invalid, DATA and a body when a
 * recipient was accepted, QUIT, FIN), reacting to exactly what the worker
 * forwarded and injected, and checks every session's replies.  Only the time inside
 * worker_poll() is measured.  Every frame the worker received is recorded;
 * the same frames are then replayed through (a) rte_eth_rx_burst/tx_burst
 * between the ports (testpmd's io forwarding) and (b) worker_poll() with no
 * SMTP port configured (pass-through: classify and bridge).
 *
 * Runs on the calling thread (EAL main lcore), linked with the same worker
 * library rcptgate-dp runs: the benchmark measures that code.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_tcp.h>

#if __has_include("engine.h")
#define RG_HAVE_ENGINE 1
#include "engine.h"
#endif


#include "bench.h"
#include "dpconf.h"
#include "dpshm.h"
#include "port.h"
#include "wengine.h"
#include "worker.h"
#include "dtable.h"
#include "rtable.h"
#include "shm.h"

#define BD_SERVER_IP 0xC6120101u /* 198.18.1.1 */
#define BD_CLIENT_NET 0xC6138000u /* 198.19.128.0/17 */
#define BD_MSS 1460u
#define BD_LINE 1100u
#define BD_OUTQ 64u
#define BD_FEED 32u
#define BD_VALID_USERS 1000u
#define BD_INVALID_USERS 100000u
#define BD_TRACE_MAX (1u << 20)
#define BD_STALL_POLLS 200000u
#define BD_REPLAYS 7u		/* replays of the trace per mode; the median is reported */

struct bd_opts {
	int json;
	int per_reply;		/* server writes one segment per reply (else per batch) */
	unsigned sessions, concurrency, rcpts, invalid_pct, body;
	unsigned max_flows;	/* engine flow table per worker */
};

enum bd_cstate { C_SYN, C_BANNER, C_EHLO, C_RCPTS, C_DATA, C_BODY, C_QUIT, C_FIN, C_DONE };

struct bd_ep {
	uint32_t snd_nxt, rcv_nxt;
	uint16_t ll;		/* partial line length */
	char line[BD_LINE];
};

struct bd_sess {
	uint16_t sbuf_len;	/* server replies batched while one segment is read */
	char sbuf[1024];
	uint32_t idx;
	uint8_t cstate, active, srv_data, srv_fin;
	uint16_t expect, got, n550, n250, nvalid, ninvalid;
	struct bd_ep c, s;
};

struct bd_frame {
	uint32_t off;
	uint16_t len;
	uint8_t port;
};

struct bd {
	struct bd_opts o;
	struct worker_ctx x;
	struct worker *w;
	struct dpconf conf;
	struct dpshm shm;
	struct rte_ring *ring[2];	/* net_ring ports' rings (RX == TX per port) */
	struct bd_sess *sess;
	unsigned started, finished;
	/* frames built by the simulator, waiting to be fed (per port) */
	struct rte_mbuf *pend[2][8192];
	unsigned pend_head[2], pend_n[2];
	/* results */
	uint64_t errors, stray, n550, n250, rcpt_invalid, rcpt_valid;
	uint64_t poll_cycles, poll_frames;
	/* trace of every frame fed to the worker */
	uint8_t *trace;
	size_t trace_len, trace_cap;
	struct bd_frame *frames;
	unsigned n_frames;
	uint32_t max_flows_seen;
	size_t flow_bytes;
};

static int bd_debug;

/* ---- frames ---- */

static const struct rte_ether_addr bd_mac_c = {{0x02, 0, 0, 0, 0, 0x02}};
static const struct rte_ether_addr bd_mac_s = {{0x02, 0, 0, 0, 0, 0x03}};

static uint32_t bd_client_ip(uint32_t idx)
{
	return BD_CLIENT_NET | (idx >> 14);
}

static uint16_t bd_client_port(uint32_t idx)
{
	return (uint16_t)(10000u + (idx & 0x3fffu));
}

static struct rte_mbuf *bd_build(struct bd *b, const struct bd_sess *s, int from_client,
				 uint8_t flags, const char *data, uint16_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(b->x.pool);
	struct rte_ether_hdr *eh;
	struct rte_ipv4_hdr *ih;
	struct rte_tcp_hdr *th;
	const struct bd_ep *ep = from_client ? &s->c : &s->s;
	int syn = (flags & RTE_TCP_SYN_FLAG) != 0;
	uint16_t opt = syn ? 4 : 0; /* SYNs carry MSS 1460, as every real stack's do */
	uint16_t tot = (uint16_t)(sizeof(*eh) + sizeof(*ih) + sizeof(*th) + opt + len);

	if (!m)
		return NULL;
	eh = (struct rte_ether_hdr *)rte_pktmbuf_append(m, tot);
	ih = (struct rte_ipv4_hdr *)(eh + 1);
	th = (struct rte_tcp_hdr *)(ih + 1);
	eh->src_addr = from_client ? bd_mac_c : bd_mac_s;
	eh->dst_addr = from_client ? bd_mac_s : bd_mac_c;
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memset(ih, 0, sizeof(*ih));
	ih->version_ihl = 0x45;
	ih->total_length = rte_cpu_to_be_16((uint16_t)(tot - sizeof(*eh)));
	ih->time_to_live = 64;
	ih->next_proto_id = IPPROTO_TCP;
	ih->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ih->src_addr = rte_cpu_to_be_32(from_client ? bd_client_ip(s->idx) : BD_SERVER_IP);
	ih->dst_addr = rte_cpu_to_be_32(from_client ? BD_SERVER_IP : bd_client_ip(s->idx));
	ih->hdr_checksum = rte_ipv4_cksum(ih);
	memset(th, 0, sizeof(*th));
	th->src_port = rte_cpu_to_be_16(from_client ? bd_client_port(s->idx) : 25);
	th->dst_port = rte_cpu_to_be_16(from_client ? 25 : bd_client_port(s->idx));
	th->sent_seq = rte_cpu_to_be_32(ep->snd_nxt);
	th->recv_ack = rte_cpu_to_be_32((flags & RTE_TCP_SYN_FLAG) && !(flags & RTE_TCP_ACK_FLAG)
						? 0
						: ep->rcv_nxt);
	th->data_off = (uint8_t)((5 + opt / 4) << 4);
	th->tcp_flags = flags;
	th->rx_win = rte_cpu_to_be_16(65535);
	if (syn) {
		uint8_t *o = (uint8_t *)(th + 1);
		o[0] = 2;
		o[1] = 4;
		o[2] = BD_MSS >> 8;
		o[3] = BD_MSS & 0xff;
	}
	if (len)
		memcpy((uint8_t *)(th + 1) + opt, data, len);
	th->cksum = rte_ipv4_udptcp_cksum(ih, th);
	return m;
}

static void bd_queue(struct bd *b, unsigned port, struct rte_mbuf *m)
{
	unsigned cap = sizeof(b->pend[0]) / sizeof(b->pend[0][0]);
	if (!m) {
		b->errors++;
		return;
	}
	if (b->pend_n[port] == cap) {
		rte_pktmbuf_free(m);
		b->errors++;
		return;
	}
	b->pend[port][(b->pend_head[port] + b->pend_n[port]) % cap] = m;
	b->pend_n[port]++;
}

/* Send data from one endpoint, split at the MSS, each with ACK|PSH. */
static void bd_send(struct bd *b, struct bd_sess *s, int from_client, const char *data,
		    size_t len)
{
	struct bd_ep *ep = from_client ? &s->c : &s->s;
	do {
		uint16_t n = (uint16_t)(len > BD_MSS ? BD_MSS : len);
		uint8_t fl = RTE_TCP_ACK_FLAG | (n ? RTE_TCP_PSH_FLAG : 0);
		bd_queue(b, from_client ? 0 : 1, bd_build(b, s, from_client, fl, data, n));
		ep->snd_nxt += n;
		data += n;
		len -= n;
	} while (len);
}

/* The server's replies: batched per received segment, as Postfix's smtpd
 * does (it flushes at the end of a pipeline group), or one segment each. */
static void bd_reply(struct bd *b, struct bd_sess *s, const char *r, size_t len)
{
	if (b->o.per_reply || s->sbuf_len + len > sizeof(s->sbuf)) {
		bd_send(b, s, 0, r, len);
		return;
	}
	memcpy(s->sbuf + s->sbuf_len, r, len);
	s->sbuf_len = (uint16_t)(s->sbuf_len + len);
}

static void bd_reply_flush(struct bd *b, struct bd_sess *s)
{
	if (s->sbuf_len) {
		bd_send(b, s, 0, s->sbuf, s->sbuf_len);
		s->sbuf_len = 0;
	}
}

#define bd_reply_lit(b, s, lit) bd_reply(b, s, lit, sizeof(lit) - 1)

static void bd_send_flags(struct bd *b, struct bd_sess *s, int from_client, uint8_t fl)
{
	struct bd_ep *ep = from_client ? &s->c : &s->s;
	bd_queue(b, from_client ? 0 : 1, bd_build(b, s, from_client, fl, NULL, 0));
	if (fl & (RTE_TCP_SYN_FLAG | RTE_TCP_FIN_FLAG))
		ep->snd_nxt++;
}

#define bd_send_lit(b, s, fc, lit) bd_send(b, s, fc, lit, sizeof(lit) - 1)

/* ---- the two SMTP endpoints ---- */

static int bd_rcpt_invalid(const struct bd *b, const struct bd_sess *s, unsigned j)
{
	return ((s->idx * b->o.rcpts + j) % 100u) < b->o.invalid_pct;
}

static void bd_client_reply(struct bd *b, struct bd_sess *s, unsigned code)
{
	char buf[64 + 64 * 40];
	int n = 0;

	switch (s->cstate) {
	case C_BANNER:
		if (code != 220)
			b->errors++;
		bd_send_lit(b, s, 1, "EHLO client.example\r\n");
		s->cstate = C_EHLO;
		break;
	case C_EHLO:
		n = snprintf(buf, sizeof(buf), "MAIL FROM:<sender@client.example>\r\n");
		for (unsigned j = 0; j < b->o.rcpts; j++) {
			unsigned a = s->idx * b->o.rcpts + j;
			if (bd_rcpt_invalid(b, s, j)) {
				n += snprintf(buf + n, sizeof(buf) - (size_t)n,
					      "RCPT TO:<x%u@example.test>\r\n", a % BD_INVALID_USERS);
				s->ninvalid++;
			} else {
				n += snprintf(buf + n, sizeof(buf) - (size_t)n,
					      "RCPT TO:<u%u@example.test>\r\n", a % BD_VALID_USERS);
				s->nvalid++;
			}
		}
		s->expect = (uint16_t)(1 + b->o.rcpts);
		s->got = 0;
		bd_send(b, s, 1, buf, (size_t)n);
		s->cstate = C_RCPTS;
		break;
	case C_RCPTS:
		s->got++;
		if (code == 550)
			s->n550++;
		else if (code == 250)
			s->n250++;
		if (s->got < s->expect)
			break;
		b->n550 += s->n550;
		b->n250 += s->n250;
		b->rcpt_invalid += s->ninvalid;
		b->rcpt_valid += s->nvalid;
		if (s->n550 != s->ninvalid || s->n250 != 1u + s->nvalid)
			b->errors++;
		if (s->nvalid) {
			bd_send_lit(b, s, 1, "DATA\r\n");
			s->cstate = C_DATA;
		} else {
			bd_send_lit(b, s, 1, "QUIT\r\n");
			s->cstate = C_QUIT;
		}
		break;
	case C_DATA: {
		static char body[65536];
		size_t bl = 0;
		if (code != 354) {
			b->errors++;
			bd_send_lit(b, s, 1, "QUIT\r\n");
			s->cstate = C_QUIT;
			break;
		}
		bl = (size_t)snprintf(body, sizeof(body), "Subject: bench %u\r\n\r\n", s->idx);
		while (bl + 80 < b->o.body && bl + 80 < sizeof(body) - 8) {
			memset(body + bl, 'a' + (int)(bl % 26), 70);
			memcpy(body + bl + 70, "\r\n", 2);
			bl += 72;
		}
		memcpy(body + bl, ".\r\n", 3);
		bl += 3;
		bd_send(b, s, 1, body, bl);
		s->cstate = C_BODY;
		break;
	}
	case C_BODY:
		if (code != 250)
			b->errors++;
		bd_send_lit(b, s, 1, "QUIT\r\n");
		s->cstate = C_QUIT;
		break;
	case C_QUIT:
		if (code != 221)
			b->errors++;
		bd_send_flags(b, s, 1, RTE_TCP_FIN_FLAG | RTE_TCP_ACK_FLAG);
		s->cstate = C_FIN;
		break;
	default:
		b->errors++;
	}
}

/* A complete line arrived at an endpoint. */

static void bd_line(struct bd *b, struct bd_sess *s, int at_client, const char *l, size_t n)
{
	if (bd_debug)
		fprintf(stderr, "%s %u st%u: %.*s", at_client ? "C<-" : "S<-", s->idx, s->cstate,
			(int)(n > 80 ? 80 : n), l);
	if (at_client) {
		unsigned code;
		if (n < 4 || l[0] < '0' || l[0] > '9') {
			b->errors++;
			return;
		}
		code = (unsigned)(l[0] - '0') * 100 + (unsigned)(l[1] - '0') * 10 +
		       (unsigned)(l[2] - '0');
		if (l[3] == '-')
			return; /* continuation of a multi-line reply */
		bd_client_reply(b, s, code);
		return;
	}
	if (s->srv_data) {
		if (n == 3 && l[0] == '.') {
			s->srv_data = 0;
			bd_reply_lit(b, s, "250 2.0.0 Ok: queued\r\n");
		}
		return;
	}
	if (n >= 4 && !strncasecmp(l, "EHLO", 4))
		bd_reply_lit(b, s, "250-sim.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
	else if (n >= 4 && !strncasecmp(l, "MAIL", 4))
		bd_reply_lit(b, s, "250 2.1.0 Ok\r\n");
	else if (n >= 4 && !strncasecmp(l, "RCPT", 4)) {
		if (n > 10 && l[9] == 'x')
			b->errors++; /* an invalid recipient reached the server */
		bd_reply_lit(b, s, "250 2.1.5 Ok\r\n");
	} else if (n >= 4 && !strncasecmp(l, "DATA", 4)) {
		s->srv_data = 1;
		bd_reply_lit(b, s, "354 End data with <CR><LF>.<CR><LF>\r\n");
	} else if (n >= 4 && !strncasecmp(l, "QUIT", 4))
		bd_reply_lit(b, s, "221 2.0.0 Bye\r\n");
	else
		bd_reply_lit(b, s, "502 5.5.2 Error\r\n");
}

/* Bytes of a stream arrived in order at an endpoint: split into lines. */
static void bd_deliver(struct bd *b, struct bd_sess *s, int at_client, const uint8_t *p,
		       size_t n)
{
	struct bd_ep *ep = at_client ? &s->c : &s->s;
	for (size_t i = 0; i < n; i++) {
		if (ep->ll < BD_LINE)
			ep->line[ep->ll++] = (char)p[i];
		if (p[i] == '\n') {
			bd_line(b, s, at_client, ep->line, ep->ll);
			ep->ll = 0;
		}
	}
}

/* One frame the worker transmitted toward an endpoint. */
static void bd_receive(struct bd *b, struct rte_mbuf *m, int at_client)
{
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
	const uint8_t *end = p + rte_pktmbuf_data_len(m);
	const struct rte_ipv4_hdr *ih = (const void *)(p + sizeof(struct rte_ether_hdr));
	const struct rte_tcp_hdr *th;
	struct bd_sess *s;
	struct bd_ep *ep;
	uint32_t cip, seq, idx;
	uint16_t cport;
	size_t hl, len;

	if ((const uint8_t *)(ih + 1) > end || ih->next_proto_id != IPPROTO_TCP) {
		b->stray++;
		return;
	}
	th = (const void *)((const uint8_t *)ih + (ih->version_ihl & 15) * 4);
	if ((const uint8_t *)(th + 1) > end) {
		b->stray++;
		return;
	}
	hl = (size_t)((th->data_off >> 4) * 4);
	cip = rte_be_to_cpu_32(at_client ? ih->dst_addr : ih->src_addr);
	cport = rte_be_to_cpu_16(at_client ? th->dst_port : th->src_port);
	idx = ((cip & 0x7fffu) << 14) | ((uint32_t)(cport - 10000u) & 0x3fffu);
	s = &b->sess[idx % b->o.concurrency];
	if (!s->active || s->idx != idx || (uint8_t *)th + hl > end) {
		/* the last ACK of a session already closed, or a frame the
		 * simulator does not know */
		b->stray++;
		return;
	}
	ep = at_client ? &s->c : &s->s;
	len = (size_t)(end - ((const uint8_t *)th + hl));
	len = RTE_MIN(len, (size_t)(rte_be_to_cpu_16(ih->total_length) -
				    (ih->version_ihl & 15) * 4 - hl));
	seq = rte_be_to_cpu_32(th->sent_seq);
	if (bd_debug)
		fprintf(stderr, "%s %u frame seq %u ack %u flags %02x len %zu (rcv_nxt %u)\n",
			at_client ? "C<=" : "S<=", idx, seq, rte_be_to_cpu_32(th->recv_ack),
			th->tcp_flags, len, ep->rcv_nxt);
	if (th->tcp_flags & RTE_TCP_SYN_FLAG) {
		if (at_client) {
			s->c.rcv_nxt = seq + 1;
			bd_send_flags(b, s, 1, RTE_TCP_ACK_FLAG);
			s->cstate = C_BANNER;
		} else {
			s->s.rcv_nxt = seq + 1;
			bd_send_flags(b, s, 0, RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG);
		}
		return;
	}
	if (!at_client && s->s.snd_nxt == 1000001u && !(th->tcp_flags & RTE_TCP_FIN_FLAG) &&
	    len == 0) {
		/* handshake complete: the banner */
		bd_send_lit(b, s, 0, "220 sim.example ESMTP\r\n");
		return;
	}
	if (len) {
		if (seq == ep->rcv_nxt) {
			ep->rcv_nxt += (uint32_t)len;
			bd_deliver(b, s, at_client, (const uint8_t *)th + hl, len);
			if (!at_client)
				bd_reply_flush(b, s);
		}
		/* acknowledge what we have (duplicates and gaps included) */
		bd_send_flags(b, s, at_client, RTE_TCP_ACK_FLAG);
	}
	if ((th->tcp_flags & RTE_TCP_FIN_FLAG) && seq + len == ep->rcv_nxt) {
		ep->rcv_nxt++;
		if (at_client) {
			bd_send_flags(b, s, 1, RTE_TCP_ACK_FLAG);
			s->cstate = C_DONE;
			s->active = 0;
			b->finished++;
		} else {
			bd_send_flags(b, s, 0, RTE_TCP_FIN_FLAG | RTE_TCP_ACK_FLAG);
		}
	}
}

static void bd_start(struct bd *b, uint32_t idx)
{
	struct bd_sess *s = &b->sess[idx % b->o.concurrency];
	memset(s, 0, sizeof(*s));
	s->idx = idx;
	s->active = 1;
	s->c.snd_nxt = 5000000u + idx;
	s->s.snd_nxt = 1000000u;
	s->cstate = C_SYN;
	bd_send_flags(b, s, 1, RTE_TCP_SYN_FLAG);
	b->started++;
}

static void bd_record(struct bd *b, unsigned port, const struct rte_mbuf *m)
{
	uint16_t len = rte_pktmbuf_data_len(m);
	if (b->n_frames >= BD_TRACE_MAX || b->trace_len + len > b->trace_cap)
		return;
	b->frames[b->n_frames++] = (struct bd_frame){(uint32_t)b->trace_len, len, (uint8_t)port};
	memcpy(b->trace + b->trace_len, rte_pktmbuf_mtod(m, const void *), len);
	b->trace_len += len;
}

/* Feed up to one burst per port, poll the worker once (timed), collect output. */
static unsigned bd_step(struct bd *b)
{
	unsigned cap = sizeof(b->pend[0]) / sizeof(b->pend[0][0]), fed = 0, got = 0;
	void *out[1024];
	uint64_t t0, t1;

	for (unsigned port = 0; port < 2; port++) {
		unsigned n = RTE_MIN(b->pend_n[port], BD_FEED);
		for (unsigned i = 0; i < n; i++) {
			struct rte_mbuf *m = b->pend[port][b->pend_head[port]];
			bd_record(b, port, m);
			if (rte_ring_enqueue(b->ring[port], m) != 0) {
				rte_pktmbuf_free(m);
				b->errors++;
			}
			b->pend_head[port] = (b->pend_head[port] + 1) % cap;
			b->pend_n[port]--;
			fed++;
		}
	}
	t0 = rte_rdtsc_precise();
	worker_poll(&b->x, b->w, worker_now_ns());
	t1 = rte_rdtsc_precise();
	b->poll_cycles += t1 - t0;
	b->poll_frames += fed;
	for (unsigned port = 0; port < 2; port++) {
		unsigned n = rte_ring_dequeue_burst(b->ring[port], out, 1024, NULL);
		for (unsigned i = 0; i < n; i++) {
			bd_receive(b, out[i], port == 0);
			rte_pktmbuf_free(out[i]);
		}
		got += n;
	}
	return fed + got;
}

static int bd_run_smtp(struct bd *b)
{
	unsigned idle = 0;
	uint32_t next = 0;

	while (b->finished < b->o.sessions && idle < BD_STALL_POLLS) {
		while (next < b->o.sessions && b->started - b->finished < b->o.concurrency &&
		       !b->sess[next % b->o.concurrency].active)
			bd_start(b, next++);
		if (bd_step(b) == 0)
			idle++;
		else
			idle = 0;
#ifdef RG_HAVE_ENGINE
		if (b->w->eng) {
			struct engine_info ei;
			engine_info(wengine_engine(b->w), &ei);
			if (ei.flows > b->max_flows_seen)
				b->max_flows_seen = ei.flows;
			b->flow_bytes = ei.flow_bytes;
		}
#endif
	}
	return b->finished == b->o.sessions ? 0 : -ETIMEDOUT;
}

/* ---- replays of the recorded frames ---- */

static int bd_load_burst(struct bd *b, unsigned *pos, struct rte_mbuf **mb, unsigned *nb)
{
	nb[0] = nb[1] = 0;
	while (*pos < b->n_frames) {
		const struct bd_frame *f = &b->frames[*pos];
		struct rte_mbuf *m;
		if (nb[f->port] == BD_FEED)
			break;
		m = rte_pktmbuf_alloc(b->x.pool);
		if (!m)
			return -ENOMEM;
		memcpy(rte_pktmbuf_append(m, f->len), b->trace + f->off, f->len);
		mb[f->port * BD_FEED + nb[f->port]++] = m;
		(*pos)++;
	}
	return 0;
}

static void bd_drain(struct bd *b)
{
	void *out[1024];
	for (unsigned port = 0; port < 2; port++) {
		unsigned n;
		while ((n = rte_ring_dequeue_burst(b->ring[port], out, 1024, NULL)) > 0)
			rte_pktmbuf_free_bulk((struct rte_mbuf **)out, n);
	}
}

/* mode 0: io-forward (testpmd's io: no frame byte read); mode 1: worker
 * pass-through; mode 2: testpmd's macswap forwarding (reads and writes each
 * frame's Ethernet header, the least any forwarder that looks at a frame
 * does). Returns ns per frame. */
static double bd_replay(struct bd *b, int mode, unsigned rounds)
{
	struct rte_mbuf *mb[2 * BD_FEED], *rx[BD_FEED];
	uint64_t cycles = 0, frames = 0;
	unsigned nb[2];

	for (unsigned r = 0; r < rounds; r++) {
		unsigned pos = 0;
		while (pos < b->n_frames) {
			uint64_t t0, t1;
			if (bd_load_burst(b, &pos, mb, nb) < 0)
				return -1;
			for (unsigned port = 0; port < 2; port++)
				rte_ring_enqueue_bulk(b->ring[port], (void **)&mb[port * BD_FEED],
						      nb[port], NULL);
			t0 = rte_rdtsc_precise();
			if (mode == 0 || mode == 2) {
				for (unsigned port = 0; port < 2; port++) {
					uint16_t n = rte_eth_rx_burst(b->x.ports[port].port_id, 0, rx,
								      BD_FEED);
					for (uint16_t k = 0; mode == 2 && k < n; k++) {
						struct rte_ether_hdr *eh =
							rte_pktmbuf_mtod(rx[k], struct rte_ether_hdr *);
						struct rte_ether_addr t = eh->dst_addr;
						eh->dst_addr = eh->src_addr;
						eh->src_addr = t;
					}
					uint16_t s = rte_eth_tx_burst(b->x.ports[port ^ 1].port_id, 0,
								      rx, n);
					if (s < n)
						rte_pktmbuf_free_bulk(&rx[s], n - s);
				}
			} else {
				worker_poll(&b->x, b->w, worker_now_ns());
			}
			t1 = rte_rdtsc_precise();
			cycles += t1 - t0;
			frames += nb[0] + nb[1];
			bd_drain(b);
		}
	}
	return frames ? (double)cycles * 1e9 / (double)rte_get_tsc_hz() / (double)frames : 0;
}

static int bd_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Cost of one loop iteration that finds nothing to do (fixed overhead). */
static double bd_idle_poll(struct bd *b)
{
	const unsigned n = 100000;
	uint64_t t0 = rte_rdtsc_precise();
	for (unsigned i = 0; i < n; i++)
		worker_poll(&b->x, b->w, worker_now_ns());
	return (double)(rte_rdtsc_precise() - t0) * 1e9 / (double)rte_get_tsc_hz() / n;
}

/* ---- set-up ---- */

static int bd_table(const char *path)
{
	struct shm_params p;
	struct shm_map m;
	struct rtable_writer wr;
	struct dtable_info di = {.mode = DT_MODE_CALLOUT, .miss_policy = DT_MISS_PASS};
	struct rg_key128 k;
	char err[256], a[64];
	int rc;

	shm_params_default(&p);
	p.max_lcores = 2;
	p.rtable_max_log2 = 20;
	memset(&m, 0, sizeof(m));
	rc = shm_create(path, &p, &m, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "bench dataplane: %s\n", err);
		return rc;
	}
	dtable_key(&m, "example.test", 12, &k);
	dtable_put(&m, &k, &di);
	rtable_writer_init(&wr, &m);
	for (unsigned i = 0; i < BD_VALID_USERS + BD_INVALID_USERS; i++) {
		int n = i < BD_VALID_USERS
				? snprintf(a, sizeof(a), "u%u@example.test", i)
				: snprintf(a, sizeof(a), "x%u@example.test", i - BD_VALID_USERS);
		struct rtable_val v = {.verdict = i < BD_VALID_USERS ? RT_VALID : RT_INVALID,
				       .source = RT_SRC_MANUAL, .flags = RT_F_PINNED};
		khash128(shm_hdr(&m)->hash_key, a, (size_t)n, &k);
		rc = rtable_put(&wr, &k, &v);
		while (rtable_maintain(&wr, 1u << 16, worker_now_ns()))
			;
		if (rc) {
			fprintf(stderr, "bench dataplane: table put: %s\n", strerror(-rc));
			break;
		}
	}
	shm_detach(&m);
	return rc;
}

static int bd_setup(struct bd *b, const char *shm_path, char *err, size_t errlen)
{
	static struct port ports[2];
	static struct worker workers[1] __rte_cache_aligned;
	int rc;

	memset(&b->conf, 0, sizeof(b->conf));
	b->conf.smtp_ports[0] = 25;
	b->conf.n_smtp_ports = 1;
	b->conf.burst = BD_FEED;
	b->conf.rx_desc = DPCONF_DEF_RX_DESC;
	b->conf.tx_desc = DPCONF_DEF_TX_DESC;
	b->conf.max_flows = b->o.max_flows;
	b->conf.idle_s = DPCONF_DEF_IDLE_S;
#ifndef RG_HAVE_ENGINE
	b->conf.no_engine = 1;
#endif
	b->x.conf = &b->conf;
	b->x.pool = rte_pktmbuf_pool_create("bd_mbufs", 65535, 256, 0,
					    RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	if (!b->x.pool) {
		snprintf(err, errlen, "mbuf pool: %s", rte_strerror(rte_errno));
		return -ENOMEM;
	}
	b->x.ports = ports;
	b->x.n_ports = 2;
	b->x.workers = workers;
	b->x.n_workers = 1;
	workers[0].idx = 0;
	workers[0].lcore_id = rte_lcore_id();
	for (unsigned i = 0; i < 2; i++) {
		char name[RTE_RING_NAMESIZE];
		ports[i].outside = (uint8_t)(i == 0);
		ports[i].peer = (uint16_t)(i ^ 1);
		rc = port_setup(&ports[i], (uint16_t)i, 1, 0, 0, 0, b->conf.rx_desc,
				b->conf.tx_desc, b->x.pool, err, errlen);
		if (rc)
			return rc;
		snprintf(name, sizeof(name), "ETH_RXTX0_net_ring%u", i);
		b->ring[i] = rte_ring_lookup(name);
		if (!b->ring[i]) {
			snprintf(err, errlen, "ring %s not found", name);
			return -ENOENT;
		}
	}
	rc = worker_plan(&b->x, err, errlen);
	if (rc)
		return rc;
	dpshm_init(&b->shm, 1);
	rc = dpshm_attach_wait(&b->shm, shm_path, 1, &b->x.quit);
	if (rc) {
		snprintf(err, errlen, "attach %s failed", shm_path);
		return rc;
	}
	b->x.shm = &b->shm;
	b->w = &workers[0];
	rc = worker_online(&b->x, b->w);
	if (rc)
		snprintf(err, errlen, "worker online: %s", strerror(-rc));
	return rc;
}

static void bd_usage(void)
{
	fprintf(stderr,
		"usage: rcptgate-bench dataplane [--json] [--sessions N] [--concurrency N]\n"
		"       [--rcpts N] [--invalid-pct P] [--body BYTES] [--server-per-reply]\n"
		"       [--max-flows N]\n"
		"RG_BENCH_DEBUG=1 prints every frame and line the simulated ends receive.\n");
}

static int bd_opts(struct bd_opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{"json", no_argument, NULL, 'j'},	  {"sessions", required_argument, NULL, 's'},
		{"concurrency", required_argument, NULL, 'c'},
		{"rcpts", required_argument, NULL, 'r'},
		{"invalid-pct", required_argument, NULL, 'i'},
		{"body", required_argument, NULL, 'b'},
		{"server-per-reply", no_argument, NULL, 'p'},
		{"max-flows", required_argument, NULL, 'f'}, {NULL, 0, NULL, 0},
	};
	int c;

	*o = (struct bd_opts){.sessions = 20000, .concurrency = 256, .rcpts = 20,
			      .invalid_pct = 95, .body = 4000, .max_flows = DPCONF_DEF_MAX_FLOWS};
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'j': o->json = 1; break;
		case 's': o->sessions = (unsigned)atoi(optarg); break;
		case 'c': o->concurrency = (unsigned)atoi(optarg); break;
		case 'r': o->rcpts = (unsigned)atoi(optarg); break;
		case 'i': o->invalid_pct = (unsigned)atoi(optarg); break;
		case 'b': o->body = (unsigned)atoi(optarg); break;
		case 'p': o->per_reply = 1; break;
		case 'f': o->max_flows = (unsigned)atoi(optarg); break;
		default: bd_usage(); return -EINVAL;
		}
	}
	if (o->sessions == 0 || o->concurrency == 0 || o->concurrency > 8192 ||
	    o->rcpts == 0 || o->rcpts > 64 || o->invalid_pct > 100 || o->body > 60000 ||
	    o->max_flows < 64 || o->max_flows > (1u << 24)) {
		bd_usage();
		return -EINVAL;
	}
	return 0;
}

int bench_dataplane(int argc, char **argv)
{
	static struct bd b;
	char shm_path[64], prefix[32], err[256];
	char *eal[] = {argv[0], "-l", "0", "--no-pci", "--no-huge", "-m", "1024",
		       "--file-prefix", prefix, "--vdev", "net_ring0", "--vdev", "net_ring1",
		       "--log-level", "lib.eal:error", NULL};
	double iofwd, pass, macswap, idle, smtp_ns, secs, io_r[BD_REPLAYS], pass_r[BD_REPLAYS],
		mac_r[BD_REPLAYS];
	int rc, ret = 1;

	if (bd_opts(&b.o, argc, argv) < 0)
		return 2;
	bd_debug = getenv("RG_BENCH_DEBUG") != NULL;
	snprintf(prefix, sizeof(prefix), "rgbench%d", (int)getpid());
	snprintf(shm_path, sizeof(shm_path), "/dev/shm/rgbench-%d", (int)getpid());
	rc = rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal);
	if (rc < 0) {
		fprintf(stderr, "bench dataplane: EAL init: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	b.sess = calloc(b.o.concurrency, sizeof(*b.sess));
	b.trace_cap = 256u << 20;
	b.trace = malloc(b.trace_cap);
	b.frames = calloc(BD_TRACE_MAX, sizeof(*b.frames));
	if (!b.sess || !b.trace || !b.frames) {
		fprintf(stderr, "bench dataplane: out of memory\n");
		goto out;
	}
	if (bd_table(shm_path) != 0)
		goto out;
	if (bd_setup(&b, shm_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench dataplane: %s\n", err);
		goto out;
	}
	bench_print_machine(stdout, argc, argv);
	rc = bd_run_smtp(&b);
	if (rc)
		fprintf(stderr, "bench dataplane: stalled after %u of %u sessions\n", b.finished,
			b.o.sessions);
	secs = (double)b.poll_cycles / (double)rte_get_tsc_hz();
	smtp_ns = b.poll_frames ? secs * 1e9 / (double)b.poll_frames : 0;
	/* alternate the two so that a noisy neighbour hurts both alike */
	for (unsigned r = 0; r < BD_REPLAYS; r++) {
		io_r[r] = bd_replay(&b, 0, 1);
		b.conf.smtp_ports[0] = 2525; /* nothing is SMTP now: classify and bridge */
		pass_r[r] = bd_replay(&b, 1, 1);
		b.conf.smtp_ports[0] = 25;
		mac_r[r] = bd_replay(&b, 2, 1);
	}
	idle = bd_idle_poll(&b);
	qsort(io_r, BD_REPLAYS, sizeof(double), bd_cmp);
	qsort(pass_r, BD_REPLAYS, sizeof(double), bd_cmp);
	qsort(mac_r, BD_REPLAYS, sizeof(double), bd_cmp);
	macswap = mac_r[BD_REPLAYS / 2];
	iofwd = io_r[BD_REPLAYS / 2];
	pass = pass_r[BD_REPLAYS / 2];

	printf("sessions %u (concurrency %u), %u RCPTs each, %u%% invalid, body %u bytes, "
	       "server replies %s\n",
	       b.o.sessions, b.o.concurrency, b.o.rcpts, b.o.invalid_pct, b.o.body,
	       b.o.per_reply ? "one segment each" : "batched per segment read");
	printf("engine: %s\n", b.w->eng ? "on" : "off (built without engine/)");
	printf("%-34s %12s\n", "figure", "value");
	printf("%-34s %12.1f   (min %.1f, max %.1f over %u replays)\n", "io-forward ns/frame",
	       iofwd, io_r[0], io_r[BD_REPLAYS - 1], BD_REPLAYS);
	printf("%-34s %12.1f   (min %.1f, max %.1f)\n", "pass-through ns/frame", pass, pass_r[0],
	       pass_r[BD_REPLAYS - 1]);
	printf("%-34s %12.2f\n", "pass-through / io-forward", iofwd > 0 ? pass / iofwd : 0);
	printf("%-34s %12.1f   (min %.1f, max %.1f)\n", "macswap-forward ns/frame", macswap,
	       mac_r[0], mac_r[BD_REPLAYS - 1]);
	printf("%-34s %12.2f\n", "pass-through / macswap", macswap > 0 ? pass / macswap : 0);
	printf("%-34s %12.1f\n", "idle loop iteration ns", idle);
	printf("%-34s %12.1f\n", "SMTP ns/frame (worker loop)", smtp_ns);
	printf("%-34s %12u\n", "frames through the worker", (unsigned)b.poll_frames);
	printf("%-34s %12.0f\n", "invalid RCPTs answered /s (1 core)",
	       secs > 0 ? (double)b.n550 / secs : 0);
	printf("%-34s %12llu / %llu\n", "RCPTs answered 550 / invalid sent",
	       (unsigned long long)b.n550, (unsigned long long)b.rcpt_invalid);
	printf("%-34s %12llu\n", "session errors", (unsigned long long)b.errors);
	printf("%-34s %12llu\n", "frames to closed sessions", (unsigned long long)b.stray);
	printf("%-34s %12u\n", "flows tracked (peak)", b.max_flows_seen);
	printf("%-34s %12zu\n", "bytes per idle flow", b.flow_bytes);
	if (b.o.json)
		printf("{\"iofwd_ns_per_pkt\":%.2f,\"passthrough_ns_per_pkt\":%.2f,"
		       "\"iofwd_ns_min\":%.2f,\"passthrough_ns_min\":%.2f,"
		       "\"passthrough_ratio\":%.3f,\"macswap_ns_per_pkt\":%.2f,"
		       "\"passthrough_macswap_ratio\":%.3f,\"idle_poll_ns\":%.1f,\"smtp_ns_per_pkt\":%.2f,"
		       "\"rcpt_shortcircuit_per_s\":%.0f,\"flows\":%u,\"bytes_per_flow\":%zu,"
		       "\"sessions\":%u,\"sessions_done\":%u,\"rcpts_per_session\":%u,"
		       "\"invalid_pct\":%u,\"rcpt_rejected\":%llu,\"rcpt_invalid_sent\":%llu,"
		       "\"errors\":%llu,\"engine\":%s}\n",
		       iofwd, pass, io_r[0], pass_r[0], iofwd > 0 ? pass / iofwd : 0, macswap,
		       macswap > 0 ? pass / macswap : 0, idle, smtp_ns,
		       secs > 0 ? (double)b.n550 / secs : 0, b.max_flows_seen, b.flow_bytes,
		       b.o.sessions, b.finished, b.o.rcpts, b.o.invalid_pct,
		       (unsigned long long)b.n550, (unsigned long long)b.rcpt_invalid,
		       (unsigned long long)b.errors, b.w->eng ? "true" : "false");
	ret = (rc == 0 && b.errors == 0) ? 0 : 1;
out:
	unlink(shm_path);
	free(b.sess);
	free(b.trace);
	free(b.frames);
	rte_eal_cleanup();
	return ret;
}
