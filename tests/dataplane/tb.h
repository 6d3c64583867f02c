/*
 * tb.h — a test bed for the engine: synthetic Ethernet/IPv4/IPv6/TCP frames
 * with correct checksums, and two model TCP endpoints (a client and an SMTP
 * server) that exchange them through engine_rx().  Each endpoint checks what
 * it receives: checksums, addresses, that no byte it already has arrives
 * different, that no ACK covers bytes never sent; the server answers the
 * commands it receives like a small SMTP server.  Single-threaded.
 */
#ifndef RG_TB_H
#define RG_TB_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "rtable.h"
#include "shm.h"

#define TB_STREAM_MAX (1u << 18)
#define TB_QUEUE_MAX 512u
#define TB_FRAME_MAX 4096u
#define TB_HEADROOM 128u
#define TB_OOO_MAX 64u

struct tb_seg {
	uint32_t seq;
	uint16_t len;
	uint8_t fin;
	uint8_t data[TB_FRAME_MAX];
};

struct tb_ep {
	int is_server;
	uint8_t mac[6];
	uint8_t ip[16];
	uint16_t port;
	uint32_t isn;		/* own initial sequence number */
	uint32_t snd_nxt;	/* next own byte (sequence) */
	uint32_t snd_una;	/* highest ACK received */
	uint32_t peer_isn;
	uint32_t rcv_nxt;	/* next peer byte expected (as the endpoint sees it) */
	uint32_t tsval;
	uint8_t tx[TB_STREAM_MAX];	/* everything sent, from isn+1 */
	uint32_t tx_len;
	uint8_t rx[TB_STREAM_MAX];	/* everything received in order */
	uint32_t rx_len;
	struct tb_seg ooo[TB_OOO_MAX];
	unsigned n_ooo;
	int fin_rcvd, rst_rcvd, fin_sent;
	uint32_t rst_seq;	/* sequence number of the last RST received */
	unsigned frames_rcvd, data_frames_rcvd;
	uint32_t dup_bytes;	/* payload bytes received that it already had */
	uint16_t max_seg;	/* largest payload received in one segment */
	int auto_ack;		/* send a pure ACK for new data */
	uint32_t max_sack_r;	/* right edge of the last SACK received, 0 none */
	unsigned sacks_rcvd;
	/* server model */
	uint32_t parsed;	/* rx bytes processed by the SMTP model */
	int mode;		/* 0 commands, 1 body, 2 bdat chunk, 3 tls */
	uint32_t bdat_left;
	int bdat_last;
	int pipelining_off;
	int refuse_tls;		/* answer STARTTLS 454 */
	int no_auth;		/* answer AUTH 503 (no SASL), as Postfix without it */
	int chunking_off;	/* CHUNKING not announced: BDAT is an unknown command */
	uint32_t ts_recent;	/* PAWS: newest TSval accepted from the peer */
	/* segments a real TCP receiver discards (RFC 9293, RFC 7323): counted */
	unsigned csum_drops, noack_drops, paws_drops;
	uint16_t max_frame;	/* largest frame received */
	uint32_t max_win_edge;	/* furthest ack + window received (no scaling) */
	char err[512];
};

/* A frame on the wire between the engine and an endpoint. */
struct tb_frame {
	uint16_t len;
	uint8_t to_server;
	uint8_t buf[TB_FRAME_MAX];
};

/* Return 0 to lose the frame, 1 to pass it, 2 to pass it twice. */
typedef int (*tb_filter_fn)(void *arg, const struct tb_frame *fr, int from_engine);

struct tb {
	struct engine *e;
	struct engine_conf conf;
	struct shm_map map;
	struct rtable_reader rd;
	struct shm_lcore *lc;
	struct spsc_hdr *miss, *events;
	char path[128];
	int have_shm;
	int family;		/* 4 or 6 */
	int vlan;		/* number of 802.1Q tags (0..2) */
	int use_ts;
	uint16_t mss;		/* announced by both ends; segment size they send */
	uint16_t send_mss;	/* if set: segment size they send (their own link's
				 * limit) while announcing mss */
	int no_mss_opt;		/* SYNs carry no MSS option (the peer assumes 536) */
	int srv_per_reply;	/* the server sends each reply in its own segment */
	uint64_t now_ns;
	struct tb_ep cli, srv;
	struct tb_frame q[TB_QUEUE_MAX];
	unsigned q_head, q_n;
	tb_filter_fn filter;	/* return 0 to drop a frame (loss), 1 to pass */
	void *filter_arg;
	unsigned engine_drops, engine_fwd, engine_out;
	unsigned bad_frames;
	uint8_t rx_csum;	/* what the "port" tells the engine */
	uint16_t tx_cap;	/* bytes of each transmit buffer lent to the engine
				 * (0: TB_FRAME_MAX) */
	unsigned corrupted;	/* frames the test corrupted on purpose */
	void *emem;		/* set: the engine lives here (engine_init), e.g. a
				 * state file another process takes over */
	size_t elen;
};

/* Shared memory preloaded with domains and verdicts. */
void tb_init(struct tb *t, int family, int vlan, int use_ts);
void tb_fini(struct tb *t);

/* Manage a domain (DT_MODE_*, DT_MISS_*, DT_F_*), set a verdict. */
void tb_domain(struct tb *t, const char *dom, uint8_t mode, uint8_t miss, uint16_t flags,
	       uint32_t harvest);
void tb_verdict(struct tb *t, const char *addr, int valid);

/* Build a frame from one endpoint's point of view (checksums correct). */
uint16_t tb_build(const struct tb *t, const struct tb_ep *from, const struct tb_ep *to,
		  uint8_t *buf, uint32_t seq, uint32_t ack, uint8_t flags, const uint8_t *pay,
		  uint16_t len, const uint32_t (*sack)[2], unsigned n_sack);

/* A fresh engine and fresh endpoints; the shared memory stays. */
void tb_reset(struct tb *t);

/* Take over the engine state at mem (engine_adopt) with t's configuration
 * and shared memory; 0, or the engine_adopt() error with why. */
int tb_adopt(struct tb *t, void *mem, size_t len, char *why, size_t whylen);

/* Fresh endpoints for a new connection from client port cport (other ISNs),
 * through the same engine: its flow table and counters stay. */
void tb_next_conn(struct tb *t, uint16_t cport);

/* Append bytes to what an endpoint has sent, without transmitting them
 * (then tb_resend() ranges of them in any order). */
void tb_stage(struct tb *t, struct tb_ep *ep, const void *data, uint32_t len);

/* Three-way handshake through the engine, then the server's greeting. */
void tb_open(struct tb *t);

/* Three-way handshake through the engine. */
void tb_handshake(struct tb *t);

/* An endpoint sends (and remembers) new stream bytes as one segment; or
 * resends [off, off+len) of what it sent (offsets from its first byte). */
void tb_send(struct tb *t, struct tb_ep *ep, const void *data, uint32_t len);
void tb_resend(struct tb *t, struct tb_ep *ep, uint32_t off, uint32_t len);
/* A resend with other bytes in place of the original ones. */
void tb_resend_other(struct tb *t, struct tb_ep *ep, uint32_t off, const void *data,
		     uint32_t len);
void tb_send_ack(struct tb *t, struct tb_ep *ep);
void tb_send_sack(struct tb *t, struct tb_ep *ep, const uint32_t (*sack)[2], unsigned n);
void tb_send_fin(struct tb *t, struct tb_ep *ep);
void tb_send_rst(struct tb *t, struct tb_ep *ep);
void tb_resend_fin(struct tb *t, struct tb_ep *ep); /* after tb_send_fin() */

/* Send the client's bytes cut into segments at the given offsets. */
void tb_send_split(struct tb *t, const char *data, uint32_t len, const uint32_t *cuts,
		   unsigned n_cuts);

/* Deliver queued frames until none is left (endpoints react). */
void tb_pump(struct tb *t);

/* Loss recovery as TCP would do it, bounded: advance the clock (the engine
 * retransmits what it injected), each endpoint resends what is not yet
 * acknowledged; until both are fully acknowledged or rounds run out.
 * Returns 0 when everything was acknowledged. */
int tb_recover(struct tb *t, unsigned rounds);

/* Advance the clock and run the engine's timers. */
void tb_tick(struct tb *t, uint32_t ms);

/* Stream contents as strings (for assertions). */
const char *tb_rx_str(const struct tb_ep *ep);

/* Hand a raw frame (built with tb_build(), maybe corrupted) from an
 * endpoint to the engine, as if that endpoint had sent it. */
void tb_inject(struct tb *t, const struct tb_ep *from, uint8_t *frame, uint16_t len);

/* Loss of chosen frames: a filter (tb_drop_filter) with this as its arg. */
struct tb_drop {
	int dir_to_server;	/* which direction to drop in */
	int from_engine;	/* drop after the engine (1) or before it (0) */
	int skip;		/* frames of that direction to let through first */
	int count;		/* frames to drop */
	int data_only;		/* only frames with payload */
};
int tb_drop_filter(void *arg, const struct tb_frame *fr, int from_engine);

/* The contract checks every test makes, as text for its assertion: 0 when
 * it holds, else 1 and what broke in msg.  tb_errors: no endpoint saw a
 * wrong frame, no frame with a bad checksum reached one but those the test
 * corrupted on purpose (t->corrupted).  tb_unacked: both ends had all they
 * sent acknowledged. */
int tb_errors(const struct tb *t, char *msg, size_t len);
int tb_unacked(const struct tb *t, char *msg, size_t len);

/* Frames the engine emitted or forwarded (any direction), for counters. */
uint64_t tb_stat(const struct tb *t, enum stats_id id);

#endif
