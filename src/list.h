/* Internal: a circular, intrusive doubly linked list (the kernel's shape). */
#ifndef ZC_LIST_H
#define ZC_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct zc_list {
	struct zc_list *next, *prev;
};

#define zc_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define zc_list_first(head, type, member) zc_container_of((head)->next, type, member)

/* A head, or a node that is on no list (removing it again is harmless). */
static inline void zc_list_init(struct zc_list *n)
{
	n->next = n->prev = n;
}

static inline bool zc_list_empty(const struct zc_list *head)
{
	return head->next == head;
}

static inline void zc_list_add(struct zc_list *head, struct zc_list *n)
{
	n->next = head->next;
	n->prev = head;
	head->next->prev = n;
	head->next = n;
}

static inline void zc_list_del(struct zc_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	zc_list_init(n);
}

#endif
