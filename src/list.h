/* Internal: a circular, intrusive doubly linked list (the kernel's shape). */
#ifndef ZC_LIST_H
#define ZC_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zc__list {
	struct zc__list *next, *prev;
};

#define zc__container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define zc__list_first(head, type, member) zc__container_of((head)->next, type, member)

/* A head, or a node that is on no list (removing it again is harmless). */
static inline void zc__list_init(struct zc__list *n)
{
	n->next = n->prev = n;
}

static inline bool zc__list_empty(const struct zc__list *head)
{
	return head->next == head;
}

static inline void zc__list_add(struct zc__list *head, struct zc__list *n)
{
	n->next = head->next;
	n->prev = head;
	head->next->prev = n;
	head->next = n;
}

/* Appends n (a FIFO: first in, first out of zc__list_first). */
static inline void zc__list_add_tail(struct zc__list *head, struct zc__list *n)
{
	zc__list_add(head->prev, n);
}

/* Whether n is on a list (nodes are initialised, and re-initialised when removed). */
static inline bool zc__list_linked(const struct zc__list *n)
{
	return n->next != n;
}

static inline void zc__list_del(struct zc__list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	zc__list_init(n);
}

/* Inserts n into a list kept in ascending key order, after the nodes of
 * equal key, searching from the tail: O(1) when keys come in order (a
 * timer list whose deadlines are all now + the same period). */
static inline void zc__list_insert_sorted(struct zc__list *head, struct zc__list *n,
					  int64_t (*key)(const struct zc__list *node))
{
	struct zc__list *pos;
	int64_t k = key(n);

	for (pos = head->prev; pos != head && key(pos) > k; pos = pos->prev)
		;
	zc__list_add(pos, n);
}

/* Moves every node of from, in order, to the front of to; from ends empty. */
static inline void zc__list_splice_front(struct zc__list *from, struct zc__list *to)
{
	if (zc__list_empty(from))
		return;
	from->prev->next = to->next;
	to->next->prev = from->prev;
	to->next = from->next;
	from->next->prev = to;
	zc__list_init(from);
}

#endif
