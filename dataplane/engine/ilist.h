/*
 * ilist.h — doubly linked lists threaded through an array by index: one
 * helper for every list of flows the engine keeps (retransmissions due,
 * ended flows lingering).  Links are indices, never pointers, so a table of
 * them is position-independent.  An element's link sits at a fixed offset in
 * a fixed-size array element; membership is tracked by the caller.
 * Runs on the owning lcore; no locking.
 */
#ifndef RG_ENGINE_ILIST_H
#define RG_ENGINE_ILIST_H

#include <stddef.h>
#include <stdint.h>

#define ILIST_NONE UINT32_MAX

struct ilink {
	uint32_t next, prev;
};

struct ilist {
	uint32_t head, tail;	/* oldest first */
	void *base;		/* the array */
	uint32_t stride;	/* bytes per element */
	uint32_t off;		/* offset of the struct ilink in an element */
};

static inline void ilist_init(struct ilist *l, void *base, size_t stride, size_t off)
{
	l->head = l->tail = ILIST_NONE;
	l->base = base;
	l->stride = (uint32_t)stride;
	l->off = (uint32_t)off;
}

static inline struct ilink *ilist_link(const struct ilist *l, uint32_t i)
{
	return (struct ilink *)((uint8_t *)l->base + (size_t)i * l->stride + l->off);
}

static inline void ilist_append(struct ilist *l, uint32_t i)
{
	struct ilink *k = ilist_link(l, i);
	k->next = ILIST_NONE;
	k->prev = l->tail;
	if (l->tail != ILIST_NONE)
		ilist_link(l, l->tail)->next = i;
	else
		l->head = i;
	l->tail = i;
}

static inline void ilist_remove(struct ilist *l, uint32_t i)
{
	struct ilink *k = ilist_link(l, i);
	if (k->prev != ILIST_NONE)
		ilist_link(l, k->prev)->next = k->next;
	else
		l->head = k->next;
	if (k->next != ILIST_NONE)
		ilist_link(l, k->next)->prev = k->prev;
	else
		l->tail = k->prev;
	k->next = k->prev = ILIST_NONE;
}

#endif
