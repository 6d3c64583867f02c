/*
 * flow.c — the engine's per-lcore flow table and block pools (see flow.h).
 * Runs on the owning worker lcore; flow_table_init() in the main thread.
 */
#include <errno.h>
#include <string.h>

#include "flow.h"

#define ALIGN64(x) (((x) + 63u) & ~(size_t)63u)

static uint32_t pow2_ceil(uint32_t v)
{
	uint32_t p = 1;
	while (p < v && p < (1u << 31))
		p <<= 1;
	return p;
}

struct layout {
	size_t flows, buckets, busy, seg, total;
	size_t busy_size, off_pin, off_q, off_pts_c, off_pts_s, off_text;
	uint32_t nb;
	uint16_t pts_max;
};

static void layout(struct layout *l, uint32_t max_flows, uint32_t busy_blocks,
		   uint32_t seg_blocks, uint32_t pin_max, uint16_t cmd_max, uint32_t text_max)
{
	size_t o = ALIGN64(sizeof(struct flow_busy));
	l->nb = pow2_ceil(max_flows);
	l->pts_max = (uint16_t)(cmd_max + 8u);
	l->off_pin = o;
	o = ALIGN64(o + pin_max);
	l->off_q = o;
	o = ALIGN64(o + (size_t)cmd_max * sizeof(struct flow_qent));
	l->off_pts_c = o;
	o = ALIGN64(o + (size_t)l->pts_max * sizeof(struct tcpedit_pt));
	l->off_pts_s = o;
	o = ALIGN64(o + (size_t)l->pts_max * sizeof(struct tcpedit_pt));
	l->off_text = o;
	o = ALIGN64(o + text_max);
	l->busy_size = o;
	l->flows = ALIGN64((size_t)max_flows * sizeof(struct flow));
	l->buckets = ALIGN64((size_t)l->nb * sizeof(uint32_t));
	l->busy = (size_t)busy_blocks * l->busy_size;
	l->seg = (size_t)seg_blocks * FLOW_SEG_SIZE;
	l->total = l->flows + l->buckets + l->busy + l->seg;
}

size_t flow_mem_size(uint32_t max_flows, uint32_t busy_blocks, uint32_t seg_blocks,
		     uint32_t pin_max, uint16_t cmd_max, uint32_t text_max)
{
	struct layout l;
	layout(&l, max_flows, busy_blocks, seg_blocks, pin_max, cmd_max, text_max);
	return l.total;
}

/* The table's pointers into mem; everything else in it is indices. */
void flow_table_relink(struct flow_table *t, void *mem)
{
	struct layout l;
	uint8_t *m = mem;

	layout(&l, t->max, t->busy_total, t->seg_total, t->pin_max, t->cmd_max, t->text_max);
	t->flows = (struct flow *)m;
	t->buckets = (uint32_t *)(m + l.flows);
	t->busy_mem = m + l.flows + l.buckets;
	t->seg_mem = t->busy_mem + l.busy;
}

void flow_table_init(struct flow_table *t, void *mem, uint32_t max_flows, uint32_t busy_blocks,
		     uint32_t seg_blocks, uint32_t pin_max, uint16_t cmd_max, uint32_t text_max,
		     uint32_t seed)
{
	struct layout l;

	layout(&l, max_flows, busy_blocks, seg_blocks, pin_max, cmd_max, text_max);
	memset(t, 0, sizeof(*t));
	t->max = max_flows;
	t->busy_total = busy_blocks;
	t->seg_total = seg_blocks;
	t->pin_max = pin_max;
	t->cmd_max = cmd_max;
	t->text_max = text_max;
	flow_table_relink(t, mem);
	t->mask = l.nb - 1;
	t->max = max_flows;
	t->seed = seed;
	memset(t->flows, 0, l.flows);
	for (uint32_t i = 0; i < max_flows; i++)
		t->flows[i].next = i + 1 < max_flows ? i + 1 : FLOW_NONE;
	t->free_head = max_flows ? 0 : FLOW_NONE;
	for (uint32_t i = 0; i < l.nb; i++)
		t->buckets[i] = FLOW_NONE;

	t->busy_size = l.busy_size;
	t->busy_total = busy_blocks;
	t->off_pin = l.off_pin;
	t->off_q = l.off_q;
	t->off_pts_c = l.off_pts_c;
	t->off_pts_s = l.off_pts_s;
	t->off_text = l.off_text;
	t->pin_max = pin_max;
	t->cmd_max = cmd_max;
	t->pts_max = l.pts_max;
	t->text_max = text_max;
	for (uint32_t i = 0; i < busy_blocks; i++) {
		struct flow_busy *b = (struct flow_busy *)(t->busy_mem + (size_t)i * l.busy_size);
		b->next_free = i + 1 < busy_blocks ? i + 1 : FLOW_NONE;
	}
	t->busy_free = busy_blocks ? 0 : FLOW_NONE;

	t->seg_total = seg_blocks;
	for (uint32_t i = 0; i < seg_blocks; i++)
		flow_seg(t, i)->next = i + 1 < seg_blocks ? i + 1 : FLOW_NONE;
	t->seg_free = seg_blocks ? 0 : FLOW_NONE;
}

/* Symmetric in the two endpoints, seeded per engine so peers cannot aim
 * collisions at one chain without knowing the seed. */
static uint32_t flow_hash(const struct flow_table *t, uint8_t family, const uint8_t *a,
			  const uint8_t *b, uint16_t pa, uint16_t pb)
{
	unsigned alen = family == 4 ? 4u : 16u;
	uint32_t ha = t->seed, hb = t->seed; /* one function for both ends */
	for (unsigned i = 0; i < alen; i += 4) {
		uint32_t wa, wb;
		memcpy(&wa, a + i, 4);
		memcpy(&wb, b + i, 4);
		ha = (ha ^ wa) * 0x9e3779b1u;
		ha ^= ha >> 16;
		hb = (hb ^ wb) * 0x9e3779b1u;
		hb ^= hb >> 16;
	}
	ha = (ha ^ pa) * 0xcc9e2d51u;
	hb = (hb ^ pb) * 0xcc9e2d51u;
	ha ^= ha >> 15;
	hb ^= hb >> 15;
	/* symmetric combination of the two endpoint hashes */
	uint32_t h = (ha + hb) ^ ((ha ^ hb) * 0x1b873593u) ^ t->seed;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	return h ^ (h >> 16);
}

static int same(const struct flow *f, uint8_t family, const uint8_t *a, const uint8_t *b,
		uint16_t pa, uint16_t pb)
{
	unsigned alen = family == 4 ? 4u : 16u;
	return f->family == family && f->c_port == pa && f->s_port == pb &&
	       memcmp(f->c_ip, a, alen) == 0 && memcmp(f->s_ip, b, alen) == 0;
}

struct flow *flow_lookup(struct flow_table *t, uint8_t family, const uint8_t *saddr,
			 const uint8_t *daddr, uint16_t sport, uint16_t dport, int *c2s)
{
	uint32_t h = flow_hash(t, family, saddr, daddr, sport, dport) & t->mask;
	for (uint32_t i = t->buckets[h], n = 0; i != FLOW_NONE && n < FLOW_CHAIN_MAX;
	     i = t->flows[i].next, n++) {
		struct flow *f = &t->flows[i];
		if (same(f, family, saddr, daddr, sport, dport)) {
			*c2s = 1;
			return f;
		}
		if (same(f, family, daddr, saddr, dport, sport)) {
			*c2s = 0;
			return f;
		}
	}
	return NULL;
}

struct flow *flow_insert(struct flow_table *t, uint8_t family, const uint8_t *caddr,
			 const uint8_t *saddr, uint16_t cport, uint16_t sport)
{
	uint32_t h = flow_hash(t, family, caddr, saddr, cport, sport) & t->mask, n = 0, i;
	struct flow *f;
	unsigned alen = family == 4 ? 4u : 16u;

	for (i = t->buckets[h]; i != FLOW_NONE; i = t->flows[i].next)
		if (++n >= FLOW_CHAIN_MAX)
			return NULL;
	if (t->free_head == FLOW_NONE)
		return NULL;
	i = t->free_head;
	f = &t->flows[i];
	t->free_head = f->next;
	memset(f, 0, sizeof(*f));
	f->family = family;
	memcpy(f->c_ip, caddr, alen);
	memcpy(f->s_ip, saddr, alen);
	f->c_port = cport;
	f->s_port = sport;
	f->busy = FLOW_NONE;
	f->retx.next = f->retx.prev = ILIST_NONE;
	f->end.next = f->end.prev = ILIST_NONE;
	f->state = FS_SYN;
	f->next = t->buckets[h];
	t->buckets[h] = i;
	t->used++;
	return f;
}

static void seg_list_free(struct flow_table *t, uint32_t head)
{
	while (head != FLOW_NONE) {
		uint32_t nx = flow_seg(t, head)->next;
		flow_seg_put(t, head);
		head = nx;
	}
}

void flow_remove(struct flow_table *t, struct flow *f)
{
	uint32_t idx = flow_index(t, f);
	uint32_t h = flow_hash(t, f->family, f->c_ip, f->s_ip, f->c_port, f->s_port) & t->mask;
	uint32_t *pp = &t->buckets[h];

	while (*pp != FLOW_NONE && *pp != idx)
		pp = &t->flows[*pp].next;
	if (*pp == idx)
		*pp = f->next;
	if (f->busy != FLOW_NONE)
		flow_busy_put(t, f);
	f->state = FS_FREE;
	f->next = t->free_head;
	t->free_head = idx;
	t->used--;
}

int flow_busy_get(struct flow_table *t, struct flow *f)
{
	struct flow_busy *b;
	struct flow_qent *q;
	uint32_t i = t->busy_free;

	if (f->busy != FLOW_NONE)
		return 0;
	if (i == FLOW_NONE)
		return -ENOSPC;
	b = (struct flow_busy *)(t->busy_mem + (size_t)i * t->busy_size);
	t->busy_free = b->next_free;
	t->busy_used++;
	memset(b, 0, sizeof(*b));
	b->ooo_head[0] = b->ooo_head[1] = FLOW_NONE;
	f->busy = i;
	/* the inline queue moves into the block */
	q = flow_q(t, f);
	for (unsigned k = 0; k < f->q_n; k++) {
		q[k].kind = f->q_inl[(f->q_head + k) % FLOW_INLINE_Q];
		q[k]._pad0 = 0;
		q[k].len = 0;
	}
	b->q_head = 0;
	b->q_n = f->q_n;
	f->q_head = f->q_n = 0;
	return 0;
}

void flow_busy_put(struct flow_table *t, struct flow *f)
{
	struct flow_busy *b = flow_busy(t, f);
	struct flow_qent *q = flow_q(t, f);

	seg_list_free(t, b->ooo_head[0]);
	seg_list_free(t, b->ooo_head[1]);
	/* forwarded commands still awaiting replies move back inline (the
	 * caller only releases a block when at most FLOW_INLINE_Q remain) */
	f->q_head = 0;
	f->q_n = 0;
	for (unsigned k = 0; k < b->q_n && k < FLOW_INLINE_Q; k++)
		f->q_inl[f->q_n++] = q[(b->q_head + k) % t->cmd_max].kind;
	b->next_free = t->busy_free;
	t->busy_free = f->busy;
	t->busy_used--;
	f->busy = FLOW_NONE;
}

uint32_t flow_seg_get(struct flow_table *t)
{
	uint32_t i = t->seg_free;
	if (i == FLOW_NONE)
		return FLOW_NONE;
	t->seg_free = flow_seg(t, i)->next;
	t->seg_used++;
	return i;
}

void flow_seg_put(struct flow_table *t, uint32_t idx)
{
	flow_seg(t, idx)->next = t->seg_free;
	t->seg_free = idx;
	t->seg_used--;
}

/*
 * After a take-over (engine_adopt): the hash chains, the free lists and the
 * block counts are derived again from the flows themselves, so a process
 * that died between two stores of a list update leaves nothing dangling.
 * A flow whose busy block is out of range or claimed twice loses it, its
 * edit lists with it, and is marked FLOW_F2_DOOMED (the caller resets it on
 * both sides); a segment chain that is is cut (TCP resends those segments).
 * mark: t->busy_total + t->seg_total bytes of scratch.  Returns flows kept.
 */
uint32_t flow_table_rebuild(struct flow_table *t, uint8_t *mark)
{
	uint8_t *bmark = mark, *smark = mark + t->busy_total;
	uint32_t kept = 0;

	memset(mark, 0, (size_t)t->busy_total + t->seg_total);
	for (uint32_t i = 0; i <= t->mask; i++)
		t->buckets[i] = FLOW_NONE;
	t->free_head = FLOW_NONE;
	t->busy_used = t->seg_used = 0;
	for (uint32_t i = t->max; i-- > 0;) {
		struct flow *f = &t->flows[i];
		int broken = 0;
		if (f->state == FS_FREE || f->state > FS_CLOSING ||
		    (f->family != 4 && f->family != 6)) {
			f->state = FS_FREE;
			f->next = t->free_head;
			t->free_head = i;
			continue;
		}
		if (f->busy != FLOW_NONE) {
			if (f->busy >= t->busy_total || bmark[f->busy]) {
				f->busy = FLOW_NONE;
				broken = 1;
			} else {
				struct flow_busy *b = flow_busy(t, f);
				bmark[f->busy] = 1;
				t->busy_used++;
				for (int d = 0; d < 2; d++) {
					uint32_t *pp = &b->ooo_head[d];
					uint8_t n = 0;
					while (*pp != FLOW_NONE) {
						if (*pp >= t->seg_total || smark[*pp] ||
						    n >= b->ooo_n[d]) {
							*pp = FLOW_NONE; /* cut: TCP resends */
							break;
						}
						smark[*pp] = 1;
						t->seg_used++;
						n++;
						pp = &flow_seg(t, *pp)->next;
					}
					b->ooo_n[d] = n;
				}
			}
		}
		if (broken) {
			f->c2s.n = f->s2c.n = 0; /* their points were in the block */
			f->q_n = 0;
			f->flags2 |= FLOW_F2_DOOMED;
		}
		{
			uint32_t h = flow_hash(t, f->family, f->c_ip, f->s_ip, f->c_port,
					       f->s_port) & t->mask;
			f->next = t->buckets[h];
			t->buckets[h] = i;
		}
		kept++;
	}
	t->used = kept;
	t->busy_free = FLOW_NONE;
	for (uint32_t i = t->busy_total; i-- > 0;)
		if (!bmark[i]) {
			((struct flow_busy *)(t->busy_mem + (size_t)i * t->busy_size))->next_free =
				t->busy_free;
			t->busy_free = i;
		}
	t->seg_free = FLOW_NONE;
	for (uint32_t i = t->seg_total; i-- > 0;)
		if (!smark[i]) {
			flow_seg(t, i)->next = t->seg_free;
			t->seg_free = i;
		}
	return kept;
}
