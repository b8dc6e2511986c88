/* Internal: a circular, intrusive doubly linked list (the kernel's shape). */
#ifndef ZC_LIST_H
#define ZC_LIST_H

#include <stdbool.h>
#include <stddef.h>

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

static inline void zc__list_del(struct zc__list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	zc__list_init(n);
}

#endif
