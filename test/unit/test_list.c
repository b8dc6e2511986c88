/* The intrusive list's operations behind the event ready list and the
 * keepalive timer list: pure logic. */
#include <check.h>
#include <stdint.h>

#include "list.h"

struct item {
	struct zc__list node;
	int64_t key;
};

static int64_t key_of(const struct zc__list *n)
{
	return zc__container_of(n, struct item, node)->key;
}

/* The keys of the list, in order, into out; returns how many. */
static int keys(const struct zc__list *head, int64_t *out, int max)
{
	const struct zc__list *n;
	int i = 0;

	for (n = head->next; n != head && i < max; n = n->next)
		out[i++] = key_of(n);
	return i;
}

START_TEST(test_add_tail_is_fifo_and_linked_tracks_membership)
{
	struct zc__list head;
	struct item a = {.key = 1}, b = {.key = 2};
	int64_t k[4];

	zc__list_init(&head);
	zc__list_init(&a.node);
	zc__list_init(&b.node);
	ck_assert(!zc__list_linked(&a.node));
	zc__list_add_tail(&head, &a.node);
	zc__list_add_tail(&head, &b.node);
	ck_assert(zc__list_linked(&a.node));
	ck_assert_int_eq(keys(&head, k, 4), 2);
	ck_assert_int_eq(k[0], 1);
	ck_assert_int_eq(k[1], 2);
	zc__list_del(&a.node);
	ck_assert(!zc__list_linked(&a.node));
	zc__list_del(&a.node); /* removing twice is harmless */
	ck_assert_int_eq(keys(&head, k, 4), 1);
	ck_assert_int_eq(k[0], 2);
}
END_TEST

START_TEST(test_splice_front_keeps_order_and_empties_the_source)
{
	struct zc__list from, to;
	struct item it[5] = {{.key = 1}, {.key = 2}, {.key = 3}, {.key = 4}, {.key = 5}};
	int64_t k[8];
	int i;

	zc__list_init(&from);
	zc__list_init(&to);
	zc__list_splice_front(&from, &to); /* empty: nothing happens */
	ck_assert(zc__list_empty(&to));
	for (i = 0; i < 3; i++)
		zc__list_add_tail(&from, &it[i].node);
	for (i = 3; i < 5; i++)
		zc__list_add_tail(&to, &it[i].node);
	zc__list_splice_front(&from, &to);
	ck_assert(zc__list_empty(&from));
	ck_assert_int_eq(keys(&to, k, 8), 5);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(k[i], i + 1);
	/* into an empty list: the whole list moves */
	zc__list_splice_front(&to, &from);
	ck_assert(zc__list_empty(&to));
	ck_assert_int_eq(keys(&from, k, 8), 5);
	ck_assert_int_eq(k[4], 5);
}
END_TEST

START_TEST(test_insert_sorted_orders_by_key_and_keeps_equal_keys_fifo)
{
	struct zc__list head;
	struct item it[6] = {{.key = 30}, {.key = 10}, {.key = 20}, {.key = 20}, {.key = 40}, {.key = 5}};
	int64_t k[8];
	int i;

	zc__list_init(&head);
	for (i = 0; i < 6; i++)
		zc__list_insert_sorted(&head, &it[i].node, key_of);
	ck_assert_int_eq(keys(&head, k, 8), 6);
	ck_assert_int_eq(k[0], 5);
	ck_assert_int_eq(k[1], 10);
	ck_assert_int_eq(k[2], 20);
	ck_assert_int_eq(k[3], 20);
	ck_assert_int_eq(k[4], 30);
	ck_assert_int_eq(k[5], 40);
	/* equal keys: first inserted first out */
	ck_assert_ptr_eq(head.next->next->next, &it[2].node);
	ck_assert_ptr_eq(head.next->next->next->next, &it[3].node);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("list");
	TCase *tc = tcase_create("list");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_add_tail_is_fifo_and_linked_tracks_membership);
	tcase_add_test(tc, test_splice_front_keeps_order_and_empties_the_source);
	tcase_add_test(tc, test_insert_sorted_orders_by_key_and_keeps_equal_keys_fifo);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
