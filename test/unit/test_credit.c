/*
 * Credit accounting and the shared receive-slot budget (src/credit.c): pure
 * logic. The last test is the proof of docs/protocol.md section 4 run as a
 * model: many connections into one pool, messages in flight both ways, and
 * at every step the slots messages can occupy never exceed the slots the
 * pool promised (and so posted): RNR cannot happen.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "zcrdma.h"
#include "credit.h"

static struct zc__rx_budget big = {.soft_max = 1u << 20, .hard_max = 1u << 20};

/* A connection with credits `max` both ways whose peer granted `edge`. */
static void open_conn(struct zc__credit *c, struct zc__rx_budget *b, uint32_t max, uint32_t edge)
{
	ck_assert_int_eq(zc__credit_open(c, b, max), 0);
	zc__credit_peer_params(c, max);
	if (edge > ZC__CREDIT_FIRST_WINDOW)
		ck_assert_int_eq(zc__credit_on_ack(c, 0, edge), 0);
}

START_TEST(test_credits_run_out_and_come_back_with_acks)
{
	struct zc__credit c;
	int i;

	open_conn(&c, &big, 64, 4);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(zc__credit_take(&c), 0);
	ck_assert_int_eq(zc__credit_take(&c), -EAGAIN);
	/* three released, window 4 beyond them: the edge is 7 */
	ck_assert_int_eq(zc__credit_on_ack(&c, 3, 4), 0);
	ck_assert_uint_eq(zc__credit_avail(&c), 3);
	/* an old header again is harmless */
	ck_assert_int_eq(zc__credit_on_ack(&c, 3, 4), 0);
	ck_assert_uint_eq(zc__credit_avail(&c), 3);
	zc__credit_close(&c);
	ck_assert_uint_eq(big.reserved, 0);
}
END_TEST

START_TEST(test_out_is_bounded_by_our_own_credits_too)
{
	struct zc__credit c;
	int i;

	open_conn(&c, &big, 2, 100);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(zc__credit_take(&c), 0);
	ck_assert_int_eq(zc__credit_take(&c), -EAGAIN);
	zc__credit_close(&c);
}
END_TEST

START_TEST(test_bad_acks_and_edges_are_protocol_errors)
{
	struct zc__credit c;

	open_conn(&c, &big, 64, 4);
	zc__credit_take(&c);
	ck_assert_int_eq(zc__credit_on_ack(&c, 2, 4), -ZC_EPEERPROTO);
	ck_assert_int_eq(zc__credit_on_ack(&c, 1, 4), 0);
	/* going backwards looks like a huge release: also rejected */
	ck_assert_int_eq(zc__credit_on_ack(&c, 0, 10), -ZC_EPEERPROTO);
	/* the edge (ack + window) may not move back */
	ck_assert_int_eq(zc__credit_on_ack(&c, 1, 3), -ZC_EPEERPROTO);
	ck_assert_int_eq(zc__credit_on_ack(&c, 1, 5), 0);
	zc__credit_close(&c);
}
END_TEST

START_TEST(test_data_beyond_the_grant_is_a_protocol_error)
{
	struct zc__credit c;
	uint32_t ack;
	uint16_t win;

	open_conn(&c, &big, 64, 4);
	ck_assert_uint_eq(c.granted, ZC__CREDIT_FIRST_WINDOW);
	ck_assert_int_eq(zc__credit_on_data(&c), 0);
	ck_assert_int_eq(zc__credit_on_data(&c), -ZC_EPEERPROTO);
	/* consumed while the peer was blocked: the window grows to 2 */
	zc__credit_release(&c);
	zc__credit_advertise(&c, &ack, &win);
	ck_assert_uint_eq(ack, 1);
	ck_assert_uint_eq(win, 2);
	ck_assert_int_eq(zc__credit_on_data(&c), 0);
	ck_assert_int_eq(zc__credit_on_data(&c), 0);
	ck_assert_int_eq(zc__credit_on_data(&c), -ZC_EPEERPROTO);
	zc__credit_close(&c);
	ck_assert_uint_eq(big.reserved, 0);
}
END_TEST

START_TEST(test_counters_wrap_around)
{
	struct zc__credit c;

	open_conn(&c, &big, 64, 0);
	c.sent = c.peer_acked = c.edge = UINT32_MAX;
	ck_assert_int_eq(zc__credit_on_ack(&c, UINT32_MAX, 2), 0);
	ck_assert_int_eq(zc__credit_take(&c), 0);
	ck_assert_int_eq(zc__credit_take(&c), 0);
	ck_assert_int_eq(zc__credit_take(&c), -EAGAIN);
	ck_assert_int_eq(zc__credit_on_ack(&c, 1, 2), 0);
	ck_assert_uint_eq(zc__credit_avail(&c), 2);
	zc__credit_close(&c);
}
END_TEST

START_TEST(test_credit_update_due_after_half_or_when_the_peer_is_blocked)
{
	struct zc__credit c;
	uint32_t ack;
	uint16_t win;
	int i;

	open_conn(&c, &big, 64, 0);
	c.window = 64;
	zc__credit_advertise(&c, &ack, &win);
	ck_assert_uint_eq(win, 64);
	ck_assert(!zc__credit_update_due(&c));
	zc__credit_on_data(&c);
	zc__credit_release(&c);
	ck_assert(!zc__credit_update_due(&c)); /* rides on our next header */
	for (i = 0; i < 63; i++)
		zc__credit_on_data(&c);
	/* the peer is blocked, but we still hold its data: no CREDIT per release */
	for (i = 0; i < 30; i++) {
		zc__credit_release(&c);
		ck_assert(!zc__credit_update_due(&c));
	}
	zc__credit_release(&c);
	ck_assert(zc__credit_update_due(&c)); /* half of 64 */
	zc__credit_advertise(&c, &ack, &win);
	ck_assert(!zc__credit_update_due(&c));
	zc__credit_close(&c);

	/* the first window: blocked at once; it hears back when we consumed it */
	open_conn(&c, &big, 64, 0);
	zc__credit_on_data(&c);
	ck_assert(!zc__credit_update_due(&c));
	zc__credit_release(&c);
	ck_assert(zc__credit_update_due(&c));
	ck_assert_uint_eq(zc__credit_unadvertised(&c), 1);
	zc__credit_close(&c);
}
END_TEST

/* One side of a ping-pong: the peer's message arrives, is consumed, and
 * this side answers; a CREDIT goes first only when update_due says so.
 * Returns 1 if a CREDIT was sent. */
static int pingpong_turn(struct zc__credit *me, struct zc__credit *peer)
{
	uint32_t ack;
	uint16_t win;
	int credit = 0;

	ck_assert_int_eq(zc__credit_on_data(me), 0);
	zc__credit_release(me);
	if (zc__credit_update_due(me)) {
		zc__credit_advertise(me, &ack, &win);
		ck_assert_int_eq(zc__credit_on_ack(peer, ack, win), 0);
		credit = 1;
	}
	ck_assert_int_eq(zc__credit_take(me), 0);
	zc__credit_advertise(me, &ack, &win);
	ck_assert_int_eq(zc__credit_on_ack(peer, ack, win), 0);
	return credit;
}

START_TEST(test_pingpong_sends_no_credit_messages_once_the_window_opened)
{
	struct zc__credit a, b;
	uint32_t ack;
	uint16_t win;
	int i, credits = 0;

	open_conn(&a, &big, 64, 0);
	open_conn(&b, &big, 64, 0);
	ck_assert_int_eq(zc__credit_take(&a), 0); /* a's first request */
	zc__credit_advertise(&a, &ack, &win);
	ck_assert_int_eq(zc__credit_on_ack(&b, ack, win), 0);
	for (i = 0; i < 1000; i++) {
		credits += pingpong_turn(&b, &a);
		credits += pingpong_turn(&a, &b);
	}
	/* The first message used the whole first window of each side. */
	ck_assert_int_le(credits, 2);
	zc__credit_close(&a);
	zc__credit_close(&b);
	ck_assert_uint_eq(big.reserved, 0);
}
END_TEST

/* Liveness: a sender that sends whenever it may, a receiver that consumes
 * at random and sends CREDIT only when update_due says so, messages
 * delivered in random order of the two directions. The sender must never
 * be left blocked with nothing in flight and nothing left to consume:
 * nothing would ever wake it. Both orders of the credits options. */
static void run_liveness(uint32_t sender_max, uint32_t receiver_max)
{
	struct zc__credit s, r;
	uint32_t ctl_ack[4096];
	uint16_t ctl_win[4096];
	unsigned in_flight = 0, held = 0, ctl_head = 0, ctl_count = 0, delivered = 0;
	unsigned long step;

	ck_assert_int_eq(zc__credit_open(&s, &big, sender_max), 0);
	ck_assert_int_eq(zc__credit_open(&r, &big, receiver_max), 0);
	zc__credit_peer_params(&s, receiver_max);
	zc__credit_peer_params(&r, sender_max);
	for (step = 0; step < 200000; step++) {
		int due_check = 0;

		switch (rand() % 4) {
		case 0:
			if (zc__credit_take(&s) == 0)
				in_flight++;
			break;
		case 1:
			if (in_flight) {
				in_flight--;
				ck_assert_int_eq(zc__credit_on_data(&r), 0);
				held++;
				due_check = 1; /* progress runs after every completion */
			}
			break;
		case 2:
			if (held && rand() % 3 == 0) {
				held--;
				delivered++;
				zc__credit_release(&r);
				due_check = 1;
			}
			break;
		default:
			if (ctl_count) {
				unsigned i = ctl_head++ % 4096;

				ctl_count--;
				ck_assert_int_eq(zc__credit_on_ack(&s, ctl_ack[i], ctl_win[i]), 0);
			}
		}
		if (due_check && zc__credit_update_due(&r)) {
			unsigned i = (ctl_head + ctl_count++) % 4096;

			ck_assert_uint_lt(ctl_count, 4096);
			zc__credit_advertise(&r, &ctl_ack[i], &ctl_win[i]);
		}
		if (!zc__credit_avail(&s) && !in_flight && !held && !ctl_count)
			ck_abort_msg("sender %u/receiver %u stuck at step %lu: sent %u, edge %u, acked %u", sender_max,
				     receiver_max, step, s.sent, s.edge, s.peer_acked);
	}
	ck_assert_uint_gt(delivered, 1000);
	zc__credit_close(&s);
	zc__credit_close(&r);
}

START_TEST(test_a_blocked_sender_always_hears_back)
{
	srand(777);
	run_liveness(64, 64);
	run_liveness(3, 64);
	run_liveness(64, 3);
	run_liveness(1, 1);
	run_liveness(4096, 16);
}
END_TEST

START_TEST(test_budget_mandatory_and_discretionary)
{
	struct zc__rx_budget b = {.soft_max = 10, .hard_max = 20};

	ck_assert_int_eq(zc__budget_reserve(&b, 8, false), 8);
	ck_assert_int_eq(zc__budget_reserve(&b, 8, false), 2); /* up to the soft limit */
	ck_assert_int_eq(zc__budget_reserve(&b, 1, false), 0);
	ck_assert(!zc__budget_pressed(&b));
	ck_assert_int_eq(zc__budget_reserve(&b, 10, true), 10); /* the minimum goes past it */
	ck_assert(zc__budget_pressed(&b));
	ck_assert_int_eq(zc__budget_reserve(&b, 1, true), -ENOBUFS);
	zc__budget_release(&b, 20);
	ck_assert_uint_eq(b.reserved, 0);
}
END_TEST

START_TEST(test_windows_grow_when_blocked_and_shrink_under_pressure)
{
	struct zc__rx_budget b = {.soft_max = 12, .hard_max = 100};
	struct zc__credit c, d;
	uint32_t ack;
	uint16_t win;
	int i;

	open_conn(&c, &b, 8, 0);
	for (i = 0; i < 20; i++) { /* a peer that always uses everything */
		while (c.recvd != c.granted)
			zc__credit_on_data(&c);
		zc__credit_release(&c);
		zc__credit_advertise(&c, &ack, &win);
	}
	ck_assert_uint_eq(c.window, 8); /* capped by max */
	/* 8 granted, 2 promised by open, 2 held: a second connection's
	 * minimum still fits, and pushes the pool past its soft limit */
	open_conn(&d, &b, 8, 0);
	for (i = 0; i < 3; i++)
		zc__credit_on_data(&d);
	(void)d;
	b.soft_max = 4;
	for (i = 0; i < 20; i++) {
		while (c.recvd != c.granted)
			zc__credit_on_data(&c);
		zc__credit_release(&c);
		zc__credit_advertise(&c, &ack, &win);
	}
	ck_assert_uint_eq(c.window, 1); /* shrunk to the minimum, never below */
	ck_assert_uint_eq(c.granted - c.released, 1);
	zc__credit_close(&c);
	zc__credit_close(&d);
	ck_assert_uint_eq(b.reserved, 0);
}
END_TEST

/* ---- the proof as a model ---------------------------------------------- */

#define NCONN 8
#define QMAX 4096

struct msg {
	bool data;
	uint32_t ack;
	uint16_t window;
};

struct fifo {
	struct msg m[QMAX];
	unsigned head, count;
};

static void push(struct fifo *f, struct msg m)
{
	ck_assert_uint_lt(f->count, QMAX);
	f->m[(f->head + f->count++) % QMAX] = m;
}

static struct msg pop(struct fifo *f)
{
	struct msg m = f->m[f->head];

	f->head = (f->head + 1) % QMAX;
	f->count--;
	return m;
}

static struct msg header(struct zc__credit *c, bool data)
{
	struct msg m = {.data = data};

	zc__credit_advertise(c, &m.ack, &m.window);
	return m;
}

START_TEST(test_model_slots_in_use_never_exceed_slots_promised)
{
	/* R: one receiver whose connections share a pool; S[k]: its peers,
	 * each with a pool of its own. Both directions carry data. */
	static struct fifo to_r[NCONN], to_s[NCONN];
	struct zc__rx_budget pool = {.soft_max = 24, .hard_max = 1000}, peer_pool[NCONN];
	struct zc__credit r[NCONN], s[NCONN];
	unsigned held_r[NCONN] = {0}, held_s[NCONN] = {0}, max_used = 0, max_window = 0;
	unsigned long step;
	int k;

	srand(12345);
	for (k = 0; k < NCONN; k++) {
		peer_pool[k] = (struct zc__rx_budget){.soft_max = 1000, .hard_max = 1000};
		ck_assert_int_eq(zc__credit_open(&r[k], &pool, 16), 0);
		ck_assert_int_eq(zc__credit_open(&s[k], &peer_pool[k], 16), 0);
		zc__credit_peer_params(&r[k], 16);
		zc__credit_peer_params(&s[k], 16);
	}
	for (step = 0; step < 400000; step++) {
		unsigned used = 0;
		struct msg m;

		k = rand() % NCONN;
		/* connection 0 floods: it sends whenever it can */
		switch (k == 0 && rand() % 2 ? 0 : rand() % 6) {
		case 0: /* S sends data */
			if (zc__credit_take(&s[k]) == 0)
				push(&to_r[k], header(&s[k], true));
			break;
		case 1: /* R sends data */
			if (zc__credit_take(&r[k]) == 0)
				push(&to_s[k], header(&r[k], true));
			break;
		case 2: /* a message lands at R */
			if (!to_r[k].count)
				break;
			m = pop(&to_r[k]);
			ck_assert_int_eq(zc__credit_on_ack(&r[k], m.ack, m.window), 0);
			if (m.data) {
				ck_assert_int_eq(zc__credit_on_data(&r[k]), 0);
				held_r[k]++;
			}
			break;
		case 3: /* a message lands at S */
			if (!to_s[k].count)
				break;
			m = pop(&to_s[k]);
			ck_assert_int_eq(zc__credit_on_ack(&s[k], m.ack, m.window), 0);
			if (m.data) {
				ck_assert_int_eq(zc__credit_on_data(&s[k]), 0);
				held_s[k]++;
			}
			break;
		case 4: /* R consumes; a CREDIT when due */
			if (!held_r[k] || (k == 0 && rand() % 4)) /* the flooder's reader is slow */
				break;
			held_r[k]--;
			zc__credit_release(&r[k]);
			if (zc__credit_update_due(&r[k]))
				push(&to_s[k], header(&r[k], false));
			break;
		case 5: /* S consumes: a FIN or CREDIT, always a new ack */
			if (!held_s[k])
				break;
			held_s[k]--;
			zc__credit_release(&s[k]);
			if (rand() % 2 || zc__credit_update_due(&s[k]))
				push(&to_r[k], header(&s[k], false));
			break;
		}
		/* Every message on its way to R lands in a slot, and every held
		 * one keeps its slot: that is never more than promised. */
		for (k = 0; k < NCONN; k++) {
			used += to_r[k].count + held_r[k];
			ck_assert_uint_ge(r[k].granted - r[k].released, r[k].min_window);
			if (r[k].window > max_window)
				max_window = r[k].window;
		}
		ck_assert_uint_le(used, pool.reserved);
		ck_assert_uint_le(pool.reserved, pool.hard_max);
		if (used > max_used)
			max_used = used;
	}
	/* the model went where it matters: near the limit, windows grown */
	ck_assert_uint_gt(max_used, pool.soft_max / 2);
	ck_assert_uint_gt(max_window, 1);
	for (k = 0; k < NCONN; k++) {
		zc__credit_close(&r[k]);
		zc__credit_close(&s[k]);
		ck_assert_uint_eq(peer_pool[k].reserved, 0);
	}
	ck_assert_uint_eq(pool.reserved, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("credit");
	TCase *t = tcase_create("credit");
	SRunner *sr;
	int failed;

	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_credits_run_out_and_come_back_with_acks);
	tcase_add_test(t, test_out_is_bounded_by_our_own_credits_too);
	tcase_add_test(t, test_bad_acks_and_edges_are_protocol_errors);
	tcase_add_test(t, test_data_beyond_the_grant_is_a_protocol_error);
	tcase_add_test(t, test_counters_wrap_around);
	tcase_add_test(t, test_credit_update_due_after_half_or_when_the_peer_is_blocked);
	tcase_add_test(t, test_pingpong_sends_no_credit_messages_once_the_window_opened);
	tcase_add_test(t, test_a_blocked_sender_always_hears_back);
	tcase_add_test(t, test_budget_mandatory_and_discretionary);
	tcase_add_test(t, test_windows_grow_when_blocked_and_shrink_under_pressure);
	tcase_add_test(t, test_model_slots_in_use_never_exceed_slots_promised);
	suite_add_tcase(s, t);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
