/*
 * tb.c — the engine test bed (see tb.h).  Single-threaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "dtable.h"
#include "khash.h"
#include "pkt.h"
#include "rtable.h"
#include "tb.h"

#define TB_PORT_CLIENT_SIDE 0u
#define TB_PORT_SERVER_SIDE 1u

static void ep_err(struct tb_ep *ep, const char *msg, uint32_t a, uint32_t b)
{
	if (!ep->err[0])
		snprintf(ep->err, sizeof(ep->err), "%s: %s (%u, %u)",
			 ep->is_server ? "server" : "client", msg, a, b);
}

void tb_init(struct tb *t, int family, int vlan, int use_ts)
{
	struct shm_params p;
	char err[256];
	static unsigned seqno;

	memset(t, 0, sizeof(*t));
	t->family = family;
	t->vlan = vlan;
	t->use_ts = use_ts;
	t->mss = 1460;
	t->now_ns = 1000000000ull;
	t->rx_csum = ENGINE_RXCSUM_UNKNOWN;
	snprintf(t->path, sizeof(t->path), "/dev/shm/rg-test-dp-%d-%u", (int)getpid(), seqno++);
	shm_params_default(&p);
	p.max_lcores = 2;
	p.rtable_init_log2 = 8;
	p.rtable_max_log2 = 10;
	p.miss_slots = 64;
	p.event_slots = 64;
	unlink(t->path);
	if (shm_create(t->path, &p, &t->map, err, sizeof(err)) == 0) {
		const struct shm_hdr *h = shm_hdr(&t->map);
		uint8_t *region = (uint8_t *)shm_lcore_at(&t->map, 0);
		t->have_shm = 1;
		t->lc = shm_lcore_at(&t->map, 0);
		t->miss = (struct spsc_hdr *)(region + h->miss_ring_off);
		t->events = (struct spsc_hdr *)(region + h->event_ring_off);
		rtable_reader_init(&t->rd, &t->map, NULL);
	} else {
		fprintf(stderr, "tb: shm_create: %s\n", err);
		t->lc = calloc(1, sizeof(*t->lc));
	}
	engine_conf_default(&t->conf);
	t->conf.max_flows = 64;
	t->conf.busy_blocks = 16;
	t->conf.seg_blocks = 64;
	tb_reset(t);
}

static void ep_setup(struct tb *t);

static void tb_engine_shm(struct tb *t, struct engine_shm *es)
{
	es->map = t->have_shm ? &t->map : NULL;
	es->reader = t->have_shm ? &t->rd : NULL;
	es->stats = t->lc;
	es->miss_ring = t->miss;
	es->event_ring = t->events;
}

int tb_adopt(struct tb *t, void *mem, size_t len, char *why, size_t whylen)
{
	struct engine_shm es;
	struct engine *e;
	int rc;
	tb_engine_shm(t, &es);
	rc = engine_adopt(mem, len, &t->conf, &es, &e, why, whylen);
	if (rc == 0) {
		t->e = e;
		t->emem = mem;
		t->elen = len;
	}
	return rc;
}

void tb_reset(struct tb *t)
{
	struct engine_shm es;
	if (t->e)
		engine_destroy(t->e);
	t->e = NULL;
	memset(&t->cli, 0, sizeof(t->cli));
	memset(&t->srv, 0, sizeof(t->srv));
	t->q_n = t->q_head = 0;
	t->filter = NULL;
	t->engine_drops = t->engine_fwd = t->engine_out = t->bad_frames = 0;
	memset(t->lc->ctr, 0, sizeof(t->lc->ctr));
	if (t->have_shm) {
		t->miss->tail = t->miss->head;
		t->events->tail = t->events->head;
	}
	tb_engine_shm(t, &es);
	if (t->emem) {
		if (engine_init(t->emem, t->elen, &t->conf, &es, &t->e) != 0) {
			fprintf(stderr, "tb: engine_init failed\n");
			abort();
		}
	} else if (engine_create(&t->conf, &es, &t->e) != 0) {
		fprintf(stderr, "tb: engine_create failed\n");
		abort();
	}
	ep_setup(t);
}

void tb_next_conn(struct tb *t, uint16_t cport)
{
	memset(&t->cli, 0, sizeof(t->cli));
	memset(&t->srv, 0, sizeof(t->srv));
	t->q_n = t->q_head = 0;
	ep_setup(t);
	t->cli.port = cport;
	t->cli.isn += (uint32_t)cport * 7919u;
	t->srv.isn += (uint32_t)cport * 104729u;
}

static void ep_setup(struct tb *t)
{
	t->cli.is_server = 0;
	memcpy(t->cli.mac, "\x02\x00\x00\x00\x00\x01", 6);
	t->cli.port = 40001;
	t->cli.isn = 0xffffff80u; /* wraps during the session */
	t->cli.auto_ack = 1;
	t->srv.is_server = 1;
	memcpy(t->srv.mac, "\x02\x00\x00\x00\x00\x02", 6);
	t->srv.port = 25;
	t->srv.isn = 0xffffffa0u;
	t->srv.auto_ack = 1;
	if (t->family == 4) {
		memcpy(t->cli.ip, "\xc6\x12\x00\x01", 4); /* 198.18.0.1 */
		memcpy(t->srv.ip, "\xc6\x13\x00\x02", 4); /* 198.19.0.2 */
	} else {
		memcpy(t->cli.ip, "\x20\x01\x00\x02\x00\x00\x00\x01\0\0\0\0\0\0\0\x01", 16);
		memcpy(t->srv.ip, "\x20\x01\x00\x02\x00\x00\x00\x02\0\0\0\0\0\0\0\x02", 16);
	}
	t->cli.tsval = 1000;
	t->srv.tsval = 5000;
}

void tb_stage(struct tb *t, struct tb_ep *ep, const void *data, uint32_t len)
{
	(void)t;
	memcpy(ep->tx + ep->tx_len, data, len);
	ep->tx_len += len;
	ep->snd_nxt += len;
}

void tb_open(struct tb *t)
{
	tb_handshake(t);
	tb_send(t, &t->srv, "220 mx.test ESMTP\r\n", 19);
	tb_pump(t);
}

void tb_fini(struct tb *t)
{
	engine_destroy(t->e);
	if (t->have_shm) {
		shm_detach(&t->map);
		unlink(t->path);
	} else {
		free(t->lc);
	}
}

void tb_domain(struct tb *t, const char *dom, uint8_t mode, uint8_t miss, uint16_t flags,
	       uint32_t harvest)
{
	struct rg_key128 k;
	struct dtable_info di = {mode, miss, (uint16_t)(flags | DT_F_USED), harvest};
	if (!t->have_shm)
		return;
	dtable_key(&t->map, dom, strlen(dom), &k);
	dtable_put(&t->map, &k, &di);
}

void tb_verdict(struct tb *t, const char *addr, int valid)
{
	struct rtable_writer w;
	struct rg_key128 k;
	struct rtable_val v = {0};
	char canon[RG_ADDR_MAX];
	int n;
	if (!t->have_shm)
		return;
	n = addr_normalize(addr, strlen(addr), false, canon, sizeof(canon));
	if (n <= 0)
		abort();
	khash128(shm_hdr(&t->map)->hash_key, canon, (size_t)n, &k);
	v.verdict = valid ? RT_VALID : RT_INVALID;
	v.source = RT_SRC_MANUAL;
	rtable_writer_init(&w, &t->map);
	rtable_put(&w, &k, &v);
}

uint64_t tb_stat(const struct tb *t, enum stats_id id)
{
	return stats_read(t->lc, id);
}

/* ---- frames ---- */

static uint32_t csum_add(uint32_t s, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)b[i] << 8 | b[i + 1];
	if (n & 1)
		s += (uint32_t)b[n - 1] << 8;
	return s;
}

static uint16_t csum_fin(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

uint16_t tb_build(const struct tb *t, const struct tb_ep *from, const struct tb_ep *to,
		  uint8_t *b, uint32_t seq, uint32_t ack, uint8_t flags, const uint8_t *pay,
		  uint16_t len, const uint32_t (*sack)[2], unsigned n_sack)
{
	unsigned l2 = 14 + 4u * (unsigned)t->vlan, l3 = t->family == 4 ? 20 : 40, opt = 0;
	uint8_t *ip, *th, *o;
	unsigned alen = t->family == 4 ? 4 : 16;
	uint32_t s;

	memcpy(b, to->mac, 6);
	memcpy(b + 6, from->mac, 6);
	for (int v = 0; v < t->vlan; v++) {
		pkt_put16(b + 12 + 4 * v, v == 0 && t->vlan == 2 ? 0x88a8 : 0x8100);
		pkt_put16(b + 14 + 4 * v, (uint16_t)(100 + v));
	}
	pkt_put16(b + 12 + 4 * t->vlan, t->family == 4 ? 0x0800 : 0x86dd);
	ip = b + l2;
	th = ip + l3;
	o = th + 20;
	if (flags & PKT_TH_SYN) {
		if (!t->no_mss_opt) {
			o[opt++] = 2;
			o[opt++] = 4;
			pkt_put16(o + opt, t->mss);
			opt += 2;
		}
		o[opt++] = 1;
		o[opt++] = 1;
		o[opt++] = 4; /* SACK permitted */
		o[opt++] = 2;
	}
	if (t->use_ts) {
		o[opt++] = 1;
		o[opt++] = 1;
		o[opt++] = 8;
		o[opt++] = 10;
		pkt_put32(o + opt, from->tsval);
		pkt_put32(o + opt + 4, to->tsval);
		opt += 8;
	}
	if (n_sack) {
		o[opt++] = 1;
		o[opt++] = 1;
		o[opt++] = 5;
		o[opt++] = (uint8_t)(2 + 8 * n_sack);
		for (unsigned i = 0; i < n_sack; i++) {
			pkt_put32(o + opt, sack[i][0]);
			pkt_put32(o + opt + 4, sack[i][1]);
			opt += 8;
		}
	}
	while (opt % 4)
		o[opt++] = 1;
	if (len)
		memcpy(th + 20 + opt, pay, len);
	if (t->family == 4) {
		ip[0] = 0x45;
		ip[1] = 0;
		pkt_put16(ip + 2, (uint16_t)(20 + 20 + opt + len));
		pkt_put16(ip + 4, 0x1234);
		pkt_put16(ip + 6, 0x4000);
		ip[8] = 64;
		ip[9] = 6;
		ip[10] = ip[11] = 0;
		memcpy(ip + 12, from->ip, 4);
		memcpy(ip + 16, to->ip, 4);
		pkt_put16(ip + 10, csum_fin(csum_add(0, ip, 20)));
	} else {
		pkt_put32(ip, 0x60000000u);
		pkt_put16(ip + 4, (uint16_t)(20 + opt + len));
		ip[6] = 6;
		ip[7] = 64;
		memcpy(ip + 8, from->ip, 16);
		memcpy(ip + 24, to->ip, 16);
	}
	pkt_put16(th, from->port);
	pkt_put16(th + 2, to->port);
	pkt_put32(th + 4, seq);
	pkt_put32(th + 8, ack);
	th[12] = (uint8_t)(((20 + opt) / 4) << 4);
	th[13] = flags;
	pkt_put16(th + 14, 29200);
	th[16] = th[17] = 0;
	th[18] = th[19] = 0;
	s = csum_add(0, from->ip, alen);
	s = csum_add(s, to->ip, alen);
	s += 6 + 20 + opt + len;
	s = csum_add(s, th, 20 + opt + len);
	pkt_put16(th + 16, csum_fin(s));
	return (uint16_t)(l2 + l3 + 20 + opt + len);
}

/* ---- the wire ---- */

static void enqueue(struct tb *t, const uint8_t *b, uint16_t len, int to_server)
{
	struct tb_frame *f;
	if (t->q_n == TB_QUEUE_MAX) {
		fprintf(stderr, "tb: queue overflow\n");
		abort();
	}
	f = &t->q[(t->q_head + t->q_n) % TB_QUEUE_MAX];
	memcpy(f->buf, b, len);
	f->len = len;
	f->to_server = (uint8_t)to_server;
	t->q_n++;
}

/* What a port with checksum offload does with the flags the engine set. */
static void nic_offload(uint8_t *b, uint16_t len, uint16_t flags)
{
	struct pkt p;
	if (pkt_parse(&p, b, len) != PKT_TCP)
		return;
	if (flags & ENGINE_TX_IPV4)
		pkt_ip_csum(&p);
	if (flags & ENGINE_TX_TCP_CKSUM) {
		/* the field holds the pseudo-header sum: sum the segment over it */
		uint8_t *th = b + p.tcp_off;
		uint32_t s = pkt_get16(th + 16);
		th[16] = th[17] = 0;
		s = pkt_csum_add(s, th, (size_t)(p.ip_end - p.tcp_off));
		pkt_put16(th + 16, (uint16_t)~pkt_csum_fold(s));
	}
}

static void transmit_once(struct tb *t, const struct tb_ep *from, const uint8_t *frame,
			  uint16_t len);

/* A frame leaves an endpoint: through the engine, onto the queue. */
static void transmit(struct tb *t, const struct tb_ep *from, uint8_t *frame, uint16_t len)
{
	struct tb_frame probe;
	int to_server = !from->is_server;


	probe.len = len;
	probe.to_server = (uint8_t)to_server;
	memcpy(probe.buf, frame, len);
	int pass = t->filter ? t->filter(t->filter_arg, &probe, 0) : 1;
	if (!pass)
		return; /* lost before the engine */
	if (pass == 2)
		transmit_once(t, from, frame, len); /* duplicated on the wire */
	transmit_once(t, from, frame, len);
}

static void transmit_once(struct tb *t, const struct tb_ep *from, const uint8_t *frame,
			  uint16_t len)
{
	static uint8_t room[TB_HEADROOM + TB_FRAME_MAX + 1024];
	static uint8_t txmem[16][TB_FRAME_MAX];
	struct engine_txbuf txb[16];
	struct engine_out out = {txb, 16, 0};
	struct engine_frame fr;
	int to_server = !from->is_server;
	enum engine_verdict v;

	for (int i = 0; i < 16; i++) {
		txb[i].data = txmem[i];
		txb[i].cap = t->tx_cap ? t->tx_cap : TB_FRAME_MAX;
	}
	memcpy(room + TB_HEADROOM, frame, len);
	memset(&fr, 0, sizeof(fr));
	fr.data = room + TB_HEADROOM;
	fr.len = len;
	fr.headroom = TB_HEADROOM;
	fr.tailroom = (uint16_t)(sizeof(room) - TB_HEADROOM - len);
	if (fr.tailroom > TB_FRAME_MAX - len)
		fr.tailroom = (uint16_t)(TB_FRAME_MAX - len);
	fr.rx_port = to_server ? TB_PORT_CLIENT_SIDE : TB_PORT_SERVER_SIDE;
	fr.peer_port = to_server ? TB_PORT_SERVER_SIDE : TB_PORT_CLIENT_SIDE;
	fr.outside = (uint8_t)to_server;
	fr.rx_csum = t->rx_csum;
	v = engine_rx(t->e, &fr, t->now_ns, &out);
	if (v == ENGINE_FORWARD && fr.tx_flags)
		nic_offload(fr.data, fr.len, fr.tx_flags);
	for (unsigned i = 0; i < out.n; i++)
		if (txb[i].len && txb[i].tx_flags)
			nic_offload(txb[i].data, txb[i].len, txb[i].tx_flags);
	if (v == ENGINE_FORWARD) {
		t->engine_fwd++;
		enqueue(t, fr.data, fr.len, to_server);
	} else {
		t->engine_drops++;
	}
	for (unsigned i = 0; i < out.n; i++) {
		if (!txb[i].len)
			continue;
		t->engine_out++;
		enqueue(t, txb[i].data, txb[i].len, txb[i].port == TB_PORT_SERVER_SIDE);
	}
}

static void ep_send_raw(struct tb *t, struct tb_ep *ep, uint32_t seq, uint8_t flags,
			const uint8_t *pay, uint16_t len, const uint32_t (*sack)[2], unsigned ns)
{
	uint8_t buf[TB_FRAME_MAX];
	struct tb_ep *peer = ep->is_server ? &t->cli : &t->srv;
	uint16_t n;
	ep->tsval++;
	n = tb_build(t, ep, peer, buf, seq, ep->rcv_nxt, flags, pay, len, sack, ns);
	transmit(t, ep, buf, n);
}

void tb_inject(struct tb *t, const struct tb_ep *from, uint8_t *frame, uint16_t len)
{
	transmit(t, from, frame, len);
}

void tb_send(struct tb *t, struct tb_ep *ep, const void *data, uint32_t len)
{
	const uint8_t *d = data;
	while (len) {
		uint16_t m = t->send_mss ? t->send_mss : t->mss;
		uint16_t n = (uint16_t)(len > m ? m : len);
		memcpy(ep->tx + ep->tx_len, d, n);
		ep->tx_len += n;
		ep_send_raw(t, ep, ep->snd_nxt, PKT_TH_ACK | PKT_TH_PSH, d, n, NULL, 0);
		ep->snd_nxt += n;
		d += n;
		len -= n;
	}
}

void tb_resend(struct tb *t, struct tb_ep *ep, uint32_t off, uint32_t len)
{
	ep_send_raw(t, ep, ep->isn + 1 + off, PKT_TH_ACK | PKT_TH_PSH, ep->tx + off, (uint16_t)len,
		    NULL, 0);
}

void tb_resend_other(struct tb *t, struct tb_ep *ep, uint32_t off, const void *data,
		     uint32_t len)
{
	ep_send_raw(t, ep, ep->isn + 1 + off, PKT_TH_ACK | PKT_TH_PSH, data, (uint16_t)len, NULL,
		    0);
}

void tb_send_ack(struct tb *t, struct tb_ep *ep)
{
	ep_send_raw(t, ep, ep->snd_nxt, PKT_TH_ACK, NULL, 0, NULL, 0);
}

void tb_send_sack(struct tb *t, struct tb_ep *ep, const uint32_t (*sack)[2], unsigned n)
{
	ep_send_raw(t, ep, ep->snd_nxt, PKT_TH_ACK, NULL, 0, sack, n);
}

void tb_send_fin(struct tb *t, struct tb_ep *ep)
{
	ep_send_raw(t, ep, ep->snd_nxt, PKT_TH_ACK | PKT_TH_FIN, NULL, 0, NULL, 0);
	ep->snd_nxt++;
	ep->fin_sent = 1;
}

void tb_resend_fin(struct tb *t, struct tb_ep *ep)
{
	ep_send_raw(t, ep, ep->snd_nxt - 1, PKT_TH_ACK | PKT_TH_FIN, NULL, 0, NULL, 0);
}

void tb_send_rst(struct tb *t, struct tb_ep *ep)
{
	ep_send_raw(t, ep, ep->snd_nxt, PKT_TH_RST | PKT_TH_ACK, NULL, 0, NULL, 0);
}

void tb_send_split(struct tb *t, const char *data, uint32_t len, const uint32_t *cuts,
		   unsigned n_cuts)
{
	uint32_t at = 0;
	for (unsigned i = 0; i <= n_cuts; i++) {
		uint32_t end = i < n_cuts ? cuts[i] : len;
		if (end > len)
			end = len;
		if (end > at)
			tb_send(t, &t->cli, data + at, end - at);
		at = end;
	}
}

void tb_handshake(struct tb *t)
{
	uint8_t buf[TB_FRAME_MAX];
	uint16_t n;

	t->cli.snd_nxt = t->cli.isn;
	n = tb_build(t, &t->cli, &t->srv, buf, t->cli.isn, 0, PKT_TH_SYN, NULL, 0, NULL, 0);
	transmit(t, &t->cli, buf, n);
	t->cli.snd_nxt = t->cli.snd_una = t->cli.isn + 1;
	t->srv.peer_isn = t->cli.isn;
	t->srv.rcv_nxt = t->cli.isn + 1;
	tb_pump(t);
	n = tb_build(t, &t->srv, &t->cli, buf, t->srv.isn, t->srv.rcv_nxt,
		     PKT_TH_SYN | PKT_TH_ACK, NULL, 0, NULL, 0);
	t->q_n = 0; /* the SYN queued for the server is consumed above */
	transmit(t, &t->srv, buf, n);
	t->srv.snd_nxt = t->srv.snd_una = t->srv.isn + 1;
	t->cli.peer_isn = t->srv.isn;
	t->cli.rcv_nxt = t->srv.isn + 1;
	t->q_n = 0;
	tb_send_ack(t, &t->cli);
	t->q_n = 0;
}

/* ---- the endpoints ---- */

static void server_reply(struct tb *t, struct tb_ep *s, const char *r)
{
	(void)t;
	size_t n = strlen(r);
	memcpy(s->tx + s->tx_len, r, n);
	s->tx_len += (uint32_t)n;
}

static int ci_prefix(const uint8_t *l, uint32_t n, const char *w)
{
	size_t k = strlen(w);
	if (n < k)
		return 0;
	for (size_t i = 0; i < k; i++) {
		uint8_t c = l[i];
		if (c >= 'a' && c <= 'z')
			c = (uint8_t)(c - 32);
		if (c != (uint8_t)w[i])
			return 0;
	}
	return 1;
}

/* The SMTP model: answer every complete command received; returns bytes of
 * replies queued. */
static uint32_t server_model(struct tb *t, struct tb_ep *s)
{
	uint32_t before = s->tx_len;
	while (s->parsed < s->rx_len) {
		uint8_t *b = s->rx + s->parsed;
		uint32_t avail = s->rx_len - s->parsed;
		if (s->mode == 3) {
			s->parsed = s->rx_len;
			break;
		}
		if (s->mode == 2) {
			uint32_t n = avail < s->bdat_left ? avail : s->bdat_left;
			s->parsed += n;
			s->bdat_left -= n;
			if (!s->bdat_left) {
				s->mode = 0;
				server_reply(t, s, s->bdat_last ? "250 2.0.0 Ok: queued\r\n"
								: "250 2.0.0 Ok: chunk\r\n");
			}
			continue;
		}
		uint8_t *lf = memchr(b, '\n', avail);
		if (!lf)
			break;
		uint32_t n = (uint32_t)(lf - b) + 1;
		s->parsed += n;
		if (s->mode == 1) {
			if ((n == 3 && b[0] == '.' && b[1] == '\r') || (n == 2 && b[0] == '.')) {
				s->mode = 0;
				server_reply(t, s, "250 2.0.0 Ok: queued as 4XYZ\r\n");
			}
			continue;
		}
		if (s->mode == 4) {
			server_reply(t, s, "235 2.7.0 Authentication successful\r\n");
			s->mode = 0;
		} else if (ci_prefix(b, n, "EHLO"))
			server_reply(t, s, s->pipelining_off
						   ? "250-mx.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
						   : s->chunking_off
						   ? "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
						   : "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"
						     "250-STARTTLS\r\n250-CHUNKING\r\n250 8BITMIME\r\n");
		else if (ci_prefix(b, n, "HELO"))
			server_reply(t, s, "250 mx.test\r\n");
		else if (ci_prefix(b, n, "MAIL FROM:"))
			server_reply(t, s, "250 2.1.0 Ok\r\n");
		else if (ci_prefix(b, n, "RCPT TO:"))
			server_reply(t, s, "250 2.1.5 Ok\r\n");
		else if (ci_prefix(b, n, "DATA")) {
			server_reply(t, s, "354 End data with <CR><LF>.<CR><LF>\r\n");
			s->mode = 1;
		} else if (ci_prefix(b, n, "BDAT ") && s->chunking_off) {
			server_reply(t, s, "502 5.5.2 Error: command not recognized\r\n");
		} else if (ci_prefix(b, n, "BDAT ")) {
			s->bdat_left = (uint32_t)strtoul((const char *)b + 5, NULL, 10);
			s->bdat_last = memmem(b, n, "LAST", 4) != NULL;
			s->mode = 2;
			if (!s->bdat_left) {
				s->mode = 0;
				server_reply(t, s, "250 2.0.0 Ok: queued\r\n");
			}
		} else if (ci_prefix(b, n, "RSET"))
			server_reply(t, s, "250 2.0.0 Ok\r\n");
		else if (ci_prefix(b, n, "QUIT"))
			server_reply(t, s, "221 2.0.0 Bye\r\n");
		else if (ci_prefix(b, n, "STARTTLS") && s->refuse_tls)
			server_reply(t, s, "454 4.7.0 TLS not available\r\n");
		else if (ci_prefix(b, n, "STARTTLS")) {
			server_reply(t, s, "220 2.0.0 Ready to start TLS\r\n");
			s->mode = 3;
		} else if (ci_prefix(b, n, "AUTH") && s->no_auth) {
			server_reply(t, s, "503 5.5.1 Error: authentication not enabled\r\n");
		} else if (ci_prefix(b, n, "AUTH")) {
			server_reply(t, s, "334 VXNlcm5hbWU6\r\n");
			s->mode = 4;
		} else
			server_reply(t, s, "502 5.5.2 Error: command not recognized\r\n");
	}
	return s->tx_len - before;
}

/* Bytes of the first whole reply in b[0..n) (its last line has a space after
 * the code), or n when no reply ends there. */
static uint32_t reply_len(const uint8_t *b, uint32_t n)
{
	uint32_t i = 0;
	while (i < n) {
		const uint8_t *lf = memchr(b + i, '\n', n - i);
		uint32_t end;
		if (!lf)
			return n;
		end = (uint32_t)(lf - b) + 1;
		if (end - i < 4 || b[i + 3] != '-')
			return end;
		i = end;
	}
	return n;
}

static void ep_take_ooo(struct tb_ep *ep)
{
	int again = 1;
	while (again) {
		again = 0;
		for (unsigned i = 0; i < ep->n_ooo; i++) {
			struct tb_seg *g = &ep->ooo[i];
			int32_t d = (int32_t)(g->seq - ep->rcv_nxt);
			if (d > 0)
				continue;
			if ((int32_t)(g->seq + g->len - ep->rcv_nxt) > 0) {
				uint32_t skip = (uint32_t)-d;
				memcpy(ep->rx + ep->rx_len, g->data + skip, g->len - skip);
				ep->rx_len += g->len - skip;
				ep->rcv_nxt += g->len - skip;
			}
			if (g->fin && ep->rcv_nxt == g->seq + g->len) {
				ep->fin_rcvd = 1;
				ep->rcv_nxt++;
			}
			ep->ooo[i] = ep->ooo[--ep->n_ooo];
			again = 1;
			break;
		}
	}
}

static void deliver(struct tb *t, struct tb_frame *fr)
{
	struct tb_ep *ep = fr->to_server ? &t->srv : &t->cli;
	struct tb_ep *peer = fr->to_server ? &t->cli : &t->srv;
	struct pkt p;
	uint32_t new_bytes = 0;
	unsigned alen = t->family == 4 ? 4 : 16;

	if (pkt_parse(&p, fr->buf, fr->len) != PKT_TCP) {
		ep_err(ep, "unparseable frame", fr->len, 0);
		t->bad_frames++;
		return;
	}
	ep->frames_rcvd++;
	if (p.family == 4) {
		uint8_t *ip = fr->buf + p.ip_off;
		if (csum_fin(csum_add(0, ip, 20)) != 0) {
			ep->csum_drops++; /* IP drops it; the test says if one was expected */
			return;
		}
	}
	if (fr->len > ep->max_frame)
		ep->max_frame = fr->len;
	if (!pkt_tcp_csum_ok(&p)) {
		/* TCP drops it; the test says whether one was expected */
		ep->csum_drops++;
		return;
	}
	if (memcmp(p.saddr, peer->ip, alen) || memcmp(p.daddr, ep->ip, alen) ||
	    p.sport != peer->port || p.dport != ep->port)
		ep_err(ep, "wrong addresses", p.sport, p.dport);
	if (memcmp(fr->buf, ep->mac, 6) || memcmp(fr->buf + 6, peer->mac, 6))
		ep_err(ep, "wrong MACs", 0, 0);
	if (p.n_vlan != t->vlan)
		ep_err(ep, "VLAN tags lost", p.n_vlan, (uint32_t)t->vlan);
	if (p.flags & PKT_TH_RST) {
		ep->rst_rcvd = 1;
		ep->rst_seq = p.seq;
		return;
	}
	if (!(p.flags & (PKT_TH_ACK | PKT_TH_SYN))) {
		ep->noack_drops++; /* RFC 9293 3.10.7.4: no ACK bit, drop */
		return;
	}
	if (p.has_ts && t->use_ts) {
		uint32_t tsv = pkt_get32(fr->buf + p.ts_off);
		if (ep->ts_recent && (int32_t)(tsv - ep->ts_recent) < 0) {
			ep->paws_drops++; /* RFC 7323 5.3: PAWS */
			if (ep->auto_ack)
				tb_send_ack(t, ep);
			return;
		}
		ep->ts_recent = tsv;
	}
	if ((p.flags & PKT_TH_ACK) && (!ep->max_win_edge ||
				       (int32_t)(p.ack + p.win - ep->max_win_edge) > 0))
		ep->max_win_edge = p.ack + p.win;
	if (p.flags & PKT_TH_ACK) {
		uint32_t lim = ep->snd_nxt;
		if ((int32_t)(p.ack - lim) > 0)
			ep_err(ep, "ACK beyond what was sent", p.ack - ep->isn, lim - ep->isn);
		if ((int32_t)(p.ack - ep->snd_una) > 0)
			ep->snd_una = p.ack;
	}
	if (p.sack_n) {
		ep->sacks_rcvd++;
		for (unsigned i = 0; i < p.sack_n; i++) {
			uint32_t l = pkt_get32(fr->buf + p.sack_off + 2 + 8 * i);
			uint32_t r = pkt_get32(fr->buf + p.sack_off + 6 + 8 * i);
			if ((int32_t)(r - ep->snd_nxt) > 0 || (int32_t)(l - r) >= 0)
				ep_err(ep, "SACK block outside what was sent", l - ep->isn,
				       r - ep->isn);
			ep->max_sack_r = r;
		}
	}
	if (p.pay_len) {
		const uint8_t *d = fr->buf + p.pay_off;
		int32_t rel = (int32_t)(p.seq - ep->rcv_nxt);
		uint16_t mss = t->no_mss_opt ? (t->family == 4 ? 536 : 1220) : t->mss;
		ep->data_frames_rcvd++;
		if (p.pay_len > ep->max_seg)
			ep->max_seg = p.pay_len;
		if (p.pay_len > mss)
			ep_err(ep, "segment larger than the announced MSS", p.pay_len, mss);
		/* bytes below rcv_nxt must match what was received */
		for (uint32_t i = 0; i < p.pay_len; i++) {
			int32_t pos = rel + (int32_t)i; /* relative to rcv_nxt */
			if (pos < 0)
				ep->dup_bytes++;
			if (pos < 0 && (int64_t)ep->rx_len + pos >= 0 &&
			    ep->rx[ep->rx_len + pos] != d[i]) {
				ep_err(ep, "a byte changed on retransmission", p.seq - ep->peer_isn,
				       i);
				break;
			}
		}
		if (rel > 0) {
			if (ep->n_ooo < TB_OOO_MAX) {
				struct tb_seg *g = &ep->ooo[ep->n_ooo++];
				g->seq = p.seq;
				g->len = p.pay_len;
				g->fin = (p.flags & PKT_TH_FIN) != 0;
				memcpy(g->data, d, p.pay_len);
			}
		} else if ((int32_t)(p.seq + p.pay_len - ep->rcv_nxt) > 0) {
			uint32_t skip = (uint32_t)-rel;
			memcpy(ep->rx + ep->rx_len, d + skip, p.pay_len - skip);
			ep->rx_len += p.pay_len - skip;
			ep->rcv_nxt += p.pay_len - skip;
			new_bytes = p.pay_len - skip;
		}
	}
	if ((p.flags & PKT_TH_FIN) && p.seq + p.pay_len == ep->rcv_nxt && !ep->fin_rcvd) {
		ep->fin_rcvd = 1;
		ep->rcv_nxt++;
		new_bytes++;
	}
	{
		uint32_t before = ep->rcv_nxt;
		ep_take_ooo(ep);
		new_bytes += ep->rcv_nxt - before;
	}
	if (!new_bytes) {
		/* a duplicate or out-of-order segment: TCP answers with an ACK */
		if ((p.pay_len || (p.flags & PKT_TH_FIN)) && ep->auto_ack)
			tb_send_ack(t, ep);
		return;
	}
	if (ep->is_server) {
		uint32_t off = ep->tx_len, n = server_model(t, ep);
		if (n) {
			while (n) {
				uint16_t m = t->send_mss ? t->send_mss : t->mss;
				uint16_t k = (uint16_t)(n > m ? m : n);
				if (t->srv_per_reply)
					k = (uint16_t)reply_len(ep->tx + off, k);
				ep_send_raw(t, ep, ep->snd_nxt, PKT_TH_ACK | PKT_TH_PSH,
					    ep->tx + off, k, NULL, 0);
				ep->snd_nxt += k;
				off += k;
				n -= k;
			}
			return;
		}
	}
	if (ep->auto_ack)
		tb_send_ack(t, ep);
}

void tb_pump(struct tb *t)
{
	unsigned guard = 0;
	while (t->q_n && guard++ < 100000) {
		struct tb_frame fr = t->q[t->q_head];
		t->q_head = (t->q_head + 1) % TB_QUEUE_MAX;
		t->q_n--;
		int v = t->filter ? t->filter(t->filter_arg, &fr, 1) : 1;
		if (!v)
			continue;
		deliver(t, &fr);
		if (v == 2)
			deliver(t, &fr);
	}
}

int tb_recover(struct tb *t, unsigned rounds)
{
	for (unsigned r = 0; r < rounds; r++) {
		int idle = 1;
		tb_tick(t, 250);
		for (int k = 0; k < 2; k++) {
			struct tb_ep *ep = k ? &t->srv : &t->cli;
			uint32_t una = ep->snd_una, end = ep->isn + 1 + ep->tx_len;
			if ((int32_t)(end - una) <= 0)
				continue;
			idle = 0;
			for (uint32_t at = una; (int32_t)(end - at) > 0;) {
				uint32_t m = t->send_mss ? t->send_mss : t->mss;
				uint32_t n = end - at > m ? m : end - at;
				tb_resend(t, ep, at - ep->isn - 1, n);
				at += n;
			}
			tb_pump(t);
		}
		if (idle)
			return 0;
	}
	return -1;
}

void tb_tick(struct tb *t, uint32_t ms)
{
	static uint8_t txmem[16][TB_FRAME_MAX];
	struct engine_txbuf txb[16];
	struct engine_out out = {txb, 16, 0};
	t->now_ns += (uint64_t)ms * 1000000u;
	for (int i = 0; i < 16; i++) {
		txb[i].data = txmem[i];
		txb[i].cap = TB_FRAME_MAX;
	}
	engine_timer(t->e, t->now_ns, &out);
	for (unsigned i = 0; i < out.n; i++)
		if (txb[i].len && txb[i].tx_flags)
			nic_offload(txb[i].data, txb[i].len, txb[i].tx_flags);
	for (unsigned i = 0; i < out.n; i++)
		if (txb[i].len)
			enqueue(t, txb[i].data, txb[i].len, txb[i].port == TB_PORT_SERVER_SIDE);
	tb_pump(t);
}

const char *tb_rx_str(const struct tb_ep *ep)
{
	static char buf[2][TB_STREAM_MAX + 1];
	char *b = buf[ep->is_server];
	memcpy(b, ep->rx, ep->rx_len);
	b[ep->rx_len] = 0;
	return b;
}

int tb_drop_filter(void *arg, const struct tb_frame *fr, int from_engine)
{
	struct tb_drop *c = arg;
	struct pkt p;
	if (fr->to_server != c->dir_to_server || from_engine != c->from_engine)
		return 1;
	if (c->data_only && (pkt_parse(&p, (uint8_t *)fr->buf, fr->len) != PKT_TCP || !p.pay_len))
		return 1;
	if (c->skip > 0) {
		c->skip--;
		return 1;
	}
	if (c->count > 0) {
		c->count--;
		return 0;
	}
	return 1;
}

int tb_errors(const struct tb *t, char *msg, size_t len)
{
	unsigned bad = t->cli.csum_drops + t->srv.csum_drops;
	if (t->cli.err[0] || t->srv.err[0]) {
		snprintf(msg, len, "%s", t->cli.err[0] ? t->cli.err : t->srv.err);
		return 1;
	}
	if (t->bad_frames) {
		snprintf(msg, len, "%u unparseable frames", t->bad_frames);
		return 1;
	}
	/* corrupted frames are dropped or forwarded untouched, never repaired,
	 * and the engine never sends a bad checksum of its own */
	if (bad > t->corrupted) {
		snprintf(msg, len, "%u frames with a bad checksum reached an endpoint, %u corrupted "
			 "on purpose", bad, t->corrupted);
		return 1;
	}
	return 0;
}

int tb_unacked(const struct tb *t, char *msg, size_t len)
{
	for (int k = 0; k < 2; k++) {
		const struct tb_ep *ep = k ? &t->srv : &t->cli;
		if (ep->snd_una != ep->snd_nxt) {
			snprintf(msg, len, "%s: %u of %u bytes acknowledged",
				 k ? "server" : "client", ep->snd_una - ep->isn,
				 ep->snd_nxt - ep->isn);
			return 1;
		}
	}
	return 0;
}
