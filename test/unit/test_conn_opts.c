/*
 * Connection options (src/opts.c): pure logic. What a raw connection may
 * ask for, what its defaults resolve to, and the READ depths it offers.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "zcrdma.h"
#include "opts.h"

static struct zc_conn_opts raw_opts(void)
{
	struct zc_conn_opts o;

	zc_conn_opts_init(&o);
	o.raw = 1;
	return o;
}

START_TEST(test_defaults_are_valid_in_both_modes)
{
	struct zc_conn_opts o;

	zc_conn_opts_init(&o);
	ck_assert_int_eq(zc__conn_opts_check(&o, ZC_PRIV_REQ_MAX, "connect request"), 0);
	o = raw_opts();
	ck_assert_int_eq(zc__conn_opts_check(&o, ZC_PRIV_REQ_MAX, "connect request"), 0);
}
END_TEST

START_TEST(test_private_data_is_bounded_by_the_message_it_goes_in)
{
	static const char bytes[256];
	struct zc_conn_opts o = raw_opts();

	o.private_data = bytes;
	o.private_data_len = ZC_PRIV_REQ_MAX;
	ck_assert_int_eq(zc__conn_opts_check(&o, ZC_PRIV_REQ_MAX, "connect request"), 0);
	o.private_data_len = ZC_PRIV_REQ_MAX + 1;
	ck_assert_int_eq(zc__conn_opts_check(&o, ZC_PRIV_REQ_MAX, "connect request"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(zc_last_error(), "57 bytes of private data"));
	ck_assert_ptr_nonnull(strstr(zc_last_error(), "at most 56"));
	/* a reply carries more */
	ck_assert_int_eq(zc__conn_opts_check(&o, ZC_PRIV_REP_MAX, "reply"), 0);
	o.private_data_len = ZC_PRIV_REP_MAX + 1;
	ck_assert_int_eq(zc__conn_opts_check(&o, ZC_PRIV_REP_MAX, "reply"), -EINVAL);
	/* a length without bytes */
	o.private_data = NULL;
	o.private_data_len = 4;
	ck_assert_int_eq(zc__conn_opts_check(&o, ZC_PRIV_REP_MAX, "reply"), -EINVAL);
	o.private_data_len = 0;
	ck_assert_int_eq(zc__conn_opts_check(&o, ZC_PRIV_REP_MAX, "reply"), 0);
}
END_TEST

START_TEST(test_private_data_is_refused_on_a_zcrdma_connection)
{
	static const char bytes[8];
	struct zc_conn_opts o;

	zc_conn_opts_init(&o);
	o.private_data = bytes;
	o.private_data_len = sizeof(bytes);
	ck_assert_int_eq(zc__conn_opts_check(&o, ZC_PRIV_REQ_MAX, "connect request"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(zc_last_error(), "raw"));
}
END_TEST

START_TEST(test_raw_ranges)
{
	static const struct {
		int rnr_retry, initiator_depth, responder_resources;
		uint32_t send_depth, recv_depth;
	} bad[] = {{8, -1, -1, 0, 0},  {-2, -1, -1, 0, 0}, {-1, 256, -1, 0, 0},     {-1, -2, -1, 0, 0},
		   {-1, -1, 300, 0, 0}, {-1, -1, -2, 0, 0}, {-1, -1, -1, 16385, 0}, {-1, -1, -1, 0, 16385}};
	struct zc_conn_opts o;
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = raw_opts();
		o.rnr_retry = bad[i].rnr_retry;
		o.initiator_depth = bad[i].initiator_depth;
		o.responder_resources = bad[i].responder_resources;
		o.raw_send_depth = bad[i].send_depth;
		o.raw_recv_depth = bad[i].recv_depth;
		ck_assert_msg(zc__conn_opts_check(&o, 56, "x") == -EINVAL, "bad raw options %u were taken", i);
	}
	/* zcrdma's own knobs do not apply to a raw connection */
	o = raw_opts();
	o.credits = 0;
	o.send_depth = 1;
	ck_assert_int_eq(zc__conn_opts_check(&o, 56, "x"), 0);
}
END_TEST

START_TEST(test_defaults_resolve_per_mode)
{
	struct zc_conn_opts o;

	zc_conn_opts_init(&o);
	zc__conn_opts_resolve(&o);
	ck_assert_int_eq(o.rnr_retry, 0); /* credits: any RNR is an error */
	o = raw_opts();
	zc__conn_opts_resolve(&o);
	ck_assert_int_eq(o.rnr_retry, 7);
	ck_assert_uint_eq(o.raw_send_depth, ZC__RAW_DEPTH);
	ck_assert_uint_eq(o.raw_recv_depth, ZC__RAW_DEPTH);
	o = raw_opts();
	o.rnr_retry = 3;
	o.raw_recv_depth = 16;
	zc__conn_opts_resolve(&o);
	ck_assert_int_eq(o.rnr_retry, 3);
	ck_assert_uint_eq(o.raw_recv_depth, 16);
}
END_TEST

START_TEST(test_read_depths_never_exceed_device_byte_or_offer)
{
	ck_assert_uint_eq(zc__raw_read_depth(128, -1, false, 0), 128);
	ck_assert_uint_eq(zc__raw_read_depth(1000, -1, false, 0), 255);
	ck_assert_uint_eq(zc__raw_read_depth(128, 16, false, 0), 16);
	ck_assert_uint_eq(zc__raw_read_depth(8, 16, false, 0), 8);
	ck_assert_uint_eq(zc__raw_read_depth(128, 0, false, 0), 0);
	/* accepting: the requester's offer bounds it */
	ck_assert_uint_eq(zc__raw_read_depth(128, -1, true, 4), 4);
	ck_assert_uint_eq(zc__raw_read_depth(128, 2, true, 4), 2);
	ck_assert_uint_eq(zc__raw_read_depth(128, -1, true, 0), 0);
}
END_TEST

int main(void)
{
	const TTest *tests[] = {test_defaults_are_valid_in_both_modes,
				test_private_data_is_bounded_by_the_message_it_goes_in,
				test_private_data_is_refused_on_a_zcrdma_connection,
				test_raw_ranges,
				test_defaults_resolve_per_mode,
				test_read_depths_never_exceed_device_byte_or_offer};
	Suite *s = suite_create("conn_opts");
	TCase *t = tcase_create("conn_opts");
	SRunner *sr;
	unsigned i;
	int failed;

	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		tcase_add_test(t, tests[i]);
	suite_add_tcase(s, t);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
