#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "zcrdma.h"
#include "error.h"

START_TEST(test_version_is_semver)
{
	int a, b, c;

	ck_assert_int_eq(sscanf(zc_version(), "%d.%d.%d", &a, &b, &c), 3);
}
END_TEST

START_TEST(test_strerror_memlock_names_the_fix)
{
	ck_assert_ptr_nonnull(strstr(zc_strerror(-ZC_EMEMLOCK), "ulimit -l"));
	ck_assert_str_eq(zc_strerror(-ZC_EMEMLOCK), zc_strerror(ZC_EMEMLOCK));
}
END_TEST

START_TEST(test_strerror_covers_every_library_code)
{
	int e;

	for (e = ZC_ERRNO_BASE + 1; e < ZC_ERRNO_MAX; e++)
		ck_assert_str_ne(zc_strerror(-e), "unknown error");
}
END_TEST

START_TEST(test_strerror_unknown_code)
{
	ck_assert_str_eq(zc_strerror(-123456), "unknown error");
	ck_assert_str_eq(zc_strerror(0), "unknown error");
}
END_TEST

START_TEST(test_strerror_other_errno_has_text)
{
	/* not in the library's table: the C library's description */
	ck_assert_str_ne(zc_strerror(-ESHUTDOWN), "unknown error");
	ck_assert_str_eq(zc_strerror(-ESHUTDOWN), zc_strerror(ESHUTDOWN));
}
END_TEST

START_TEST(test_err_records_detail_and_negates)
{
	ck_assert_int_eq(zc__err(EINVAL, "port %d out of range", 70000), -EINVAL);
	ck_assert_str_eq(zc_last_error(), "port 70000 out of range");
	ck_assert_int_eq(zc__err(-ENOMEM, "x"), -ENOMEM);
}
END_TEST

START_TEST(test_progress_failure_keeps_callers_detail)
{
	ck_assert_int_eq(zc__err(-EMSGSIZE, "the caller's own failure"), -EMSGSIZE);
	zc__err_progress_begin();
	ck_assert_int_eq(zc__err(-ECONNRESET, "another connection's peer vanished"), -ECONNRESET);
	ck_assert_str_eq(zc__err_detail(), "another connection's peer vanished");
	zc__err_progress_begin(); /* progress nests (a CM event reaps the CQ) */
	zc__err(-EPROTO, "nested");
	zc__err_progress_end();
	zc__err_progress_end();
	ck_assert_str_eq(zc_last_error(), "the caller's own failure");
	ck_assert_str_eq(zc__err_detail(), "the caller's own failure");
}
END_TEST

static int logged_level;
static char logged[64];

static void log_sink(void *arg, int level, const char *msg)
{
	*(int *)arg += 1;
	logged_level = level;
	snprintf(logged, sizeof(logged), "%s", msg);
}

START_TEST(test_log_is_silent_by_default_and_filters_by_level)
{
	struct zc_ctx_opts o;
	int calls = 0;

	zc_ctx_opts_init(&o);
	zc__log(&o, ZC_LOG_ERR, "nobody listens"); /* no callback: nothing, no crash */
	ck_assert_int_eq(o.log_level, ZC_LOG_WARN);
	o.log_fn = log_sink;
	o.log_arg = &calls;
	zc__log(&o, ZC_LOG_INFO, "too verbose for WARN");
	ck_assert_int_eq(calls, 0);
	zc__log(&o, ZC_LOG_WARN, "window %d", 7);
	ck_assert_int_eq(calls, 1);
	ck_assert_int_eq(logged_level, ZC_LOG_WARN);
	ck_assert_str_eq(logged, "window 7");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("error");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_version_is_semver);
	tcase_add_test(tc, test_strerror_memlock_names_the_fix);
	tcase_add_test(tc, test_strerror_covers_every_library_code);
	tcase_add_test(tc, test_strerror_unknown_code);
	tcase_add_test(tc, test_strerror_other_errno_has_text);
	tcase_add_test(tc, test_err_records_detail_and_negates);
	tcase_add_test(tc, test_progress_failure_keeps_callers_detail);
	tcase_add_test(tc, test_log_is_silent_by_default_and_filters_by_level);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
