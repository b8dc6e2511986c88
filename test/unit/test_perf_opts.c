/*
 * zc_perf's pure code: option parsing (defaults, every flag, bad values,
 * conflicts), the hello that makes both sides agree, and the perftest-style
 * statistics. No RDMA device needed.
 */
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "perf_opts.h"
#include "perf_stats.h"
#include "perf_wire.h"

static struct perf_opts o;
static char err[256];

/* Parses a NULL-terminated list of arguments (argv[0] is added). */
static int parse(const char *first, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	const char *a;

	argv[argc++] = (char *)"zc_perf";
	va_start(ap, first);
	for (a = first; a && argc < 63; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	return perf_opts_parse(argc, argv, &o, err, sizeof(err));
}

#define ck_err(substr)                                                                  \
	do {                                                                            \
		ck_assert_msg(strstr(err, substr) != NULL, "error '%s' lacks '%s'", err, substr); \
	} while (0)

START_TEST(test_defaults_bw_server)
{
	ck_assert_int_eq(parse(NULL), 0);
	ck_assert_str_eq(o.test, "write");
	ck_assert_ptr_null(o.server);
	ck_assert_ptr_null(o.bind);
	ck_assert_ptr_null(o.dev);
	ck_assert_int_eq(o.lat, 0);
	ck_assert_uint_eq(o.size, 65536);
	ck_assert_uint_eq(o.iters, 1000);
	ck_assert_int_eq(o.port, 18515);
	ck_assert_int_eq(o.ib_port, 1);
	ck_assert_int_eq(o.gid_index, -1);
	ck_assert_int_eq(o.qps, 1);
	ck_assert_int_eq(o.tx_depth, 128);
	ck_assert_int_eq(o.rx_depth, 512);
	ck_assert_int_eq(o.cq_mod, 100);
	ck_assert_int_eq(o.inline_size, 0);
	ck_assert_int_eq(o.duration, 0);
	ck_assert_int_eq(o.all | o.verify | o.events | o.report_gbits | o.rdma_cm, 0);
	ck_assert_ptr_null(o.json);
	ck_assert_ptr_null(o.csv);
	ck_assert_int_eq(o.wait_s, PERF_DEF_WAIT_S);
	ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(test_defaults_lat_client)
{
	ck_assert_int_eq(parse("--lat", "192.168.77.2", NULL), 0);
	ck_assert_str_eq(o.server, "192.168.77.2");
	ck_assert_int_eq(o.lat, 1);
	ck_assert_uint_eq(o.size, 2);
	ck_assert_uint_eq(o.iters, 1000);
	ck_assert_int_eq(o.tx_depth, 1);
	ck_assert_int_eq(o.cq_mod, 1); /* clamped to the tx depth */
	ck_assert_int_eq(o.wait_s, 0); /* a client tries once unless told to wait */
}
END_TEST

START_TEST(test_every_flag)
{
	ck_assert_int_eq(parse("-d", "rxe0", "-i", "2", "-x", "3", "-s", "4096", "-n", "500", "-p", "18600", "-q",
			       "4", "-I", "64", "-R", "--report_gbits", "-t", "64", "-r", "256", "-Q", "8", "-b",
			       "192.168.77.1", "-e", "--test=send", "--verify", "--json", "out.json", "--csv=out.csv",
			       "--wait", "7", "10.0.0.1", NULL),
			 0);
	ck_assert_str_eq(o.dev, "rxe0");
	ck_assert_int_eq(o.ib_port, 2);
	ck_assert_int_eq(o.ib_port_set, 1);
	ck_assert_int_eq(o.gid_index, 3);
	ck_assert_uint_eq(o.size, 4096);
	ck_assert_uint_eq(o.iters, 500);
	ck_assert_int_eq(o.port, 18600);
	ck_assert_int_eq(o.qps, 4);
	ck_assert_int_eq(o.inline_size, 64);
	ck_assert_int_eq(o.rdma_cm, 1);
	ck_assert_int_eq(o.report_gbits, 1);
	ck_assert_int_eq(o.tx_depth, 64);
	ck_assert_int_eq(o.rx_depth, 256);
	ck_assert_int_eq(o.cq_mod, 8);
	ck_assert_str_eq(o.bind, "192.168.77.1");
	ck_assert_int_eq(o.events, 1);
	ck_assert_str_eq(o.test, "send");
	ck_assert_int_eq(o.verify, 1);
	ck_assert_str_eq(o.json, "out.json");
	ck_assert_str_eq(o.csv, "out.csv");
	ck_assert_int_eq(o.wait_s, 7);
	ck_assert_str_eq(o.server, "10.0.0.1");
}
END_TEST

START_TEST(test_long_spellings)
{
	ck_assert_int_eq(parse("--ib-dev=rxe1", "--ib-port", "1", "--gid-index=1", "--size=1K", "--iters", "10",
			       "--port=1", "--qp=2", "--inline_size=0", "--rdma_cm", "--tx-depth=4", "--rx-depth=5",
			       "--cq-mod=2", "--bind=::1", "--events", "--test", "read", "--bw", NULL),
			 0);
	ck_assert_str_eq(o.dev, "rxe1");
	ck_assert_uint_eq(o.size, 1024);
	ck_assert_uint_eq(o.iters, 10);
	ck_assert_int_eq(o.qps, 2);
	ck_assert_int_eq(o.tx_depth, 4);
	ck_assert_int_eq(o.rx_depth, 5);
	ck_assert_int_eq(o.cq_mod, 2);
	ck_assert_str_eq(o.bind, "::1");
	ck_assert_str_eq(o.test, "read");
}
END_TEST

START_TEST(test_attached_and_bundled_short_options)
{
	ck_assert_int_eq(parse("-s64K", "-n5", "-aR", NULL), -EINVAL); /* -a and -s conflict */
	ck_assert_int_eq(parse("-n5", "-aRe", "-t2", NULL), 0);
	ck_assert_uint_eq(o.iters, 5);
	ck_assert_int_eq(o.all, 1);
	ck_assert_int_eq(o.rdma_cm, 1);
	ck_assert_int_eq(o.events, 1);
	ck_assert_int_eq(o.tx_depth, 2);
	ck_assert_int_eq(parse("-eq3", NULL), 0); /* a value-taking flag ends a bundle */
	ck_assert_int_eq(o.events, 1);
	ck_assert_int_eq(o.qps, 3);
}
END_TEST

START_TEST(test_size_suffixes)
{
	ck_assert_int_eq(parse("-s", "64K", NULL), 0);
	ck_assert_uint_eq(o.size, 65536);
	ck_assert_int_eq(parse("-s", "8M", NULL), 0);
	ck_assert_uint_eq(o.size, 8u << 20);
	ck_assert_int_eq(parse("-s", "1g", NULL), 0);
	ck_assert_uint_eq(o.size, 1u << 30);
	ck_assert_int_eq(parse("-s", "1", NULL), 0);
	ck_assert_uint_eq(o.size, 1);
}
END_TEST

START_TEST(test_bad_values)
{
	static const struct {
		const char *flag, *val, *msg;
	} cases[] = {
		{"-s", "0", "at least 1 byte"},
		{"-s", "4x", "not a size"},
		{"-s", "2G", "at most 1G"},
		{"-s", "-1", "not a size"},
		{"-s", "K", "not a size"},
		{"-n", "4", "out of range (5..100000000)"},
		{"-n", "100000001", "out of range"},
		{"-n", "ten", "not a whole number"},
		{"-n", "12abc", "not a whole number"},
		{"-n", "99999999999999999999999", "not a whole number"},
		{"-p", "0", "out of range"},
		{"-p", "65536", "out of range"},
		{"-q", "0", "out of range"},
		{"-t", "0", "out of range"},
		{"-t", "15001", "out of range"},
		{"-r", "0", "out of range"},
		{"-Q", "1025", "out of range"},
		{"-I", "1025", "out of range"},
		{"-i", "0", "out of range"},
		{"-x", "256", "out of range"},
		{"-D", "0", "out of range"},
		{"-d", "", "empty device"},
		{"-b", "", "empty address"},
		{"--json", "", "empty file name"},
		{"--wait", "-3", "not a whole number"},
		{"--test", "", "1..15 characters"},
		{"--test", "Write", "not a test name"},
		{"--test", "a_very_long_test_name", "1..15 characters"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(parse(cases[i].flag, cases[i].val, NULL) == -EINVAL, "%s %s accepted", cases[i].flag,
			      cases[i].val);
		ck_assert_msg(strstr(err, cases[i].msg) != NULL, "%s %s: '%s' lacks '%s'", cases[i].flag, cases[i].val,
			      err, cases[i].msg);
		ck_assert_msg(strncmp(err, cases[i].flag, strlen(cases[i].flag)) == 0, "'%s' does not name %s", err,
			      cases[i].flag);
	}
}
END_TEST

START_TEST(test_usage_errors)
{
	ck_assert_int_eq(parse("--frobnicate", NULL), -EINVAL);
	ck_err("unknown option '--frobnicate'");
	ck_assert_int_eq(parse("-z", NULL), -EINVAL);
	ck_err("unknown option '-z'");
	ck_assert_int_eq(parse("-s", NULL), -EINVAL);
	ck_err("-s needs a value");
	ck_assert_int_eq(parse("--size", NULL), -EINVAL);
	ck_err("--size needs a value");
	ck_assert_int_eq(parse("--lat=1", NULL), -EINVAL);
	ck_err("--lat takes no value");
	ck_assert_int_eq(parse("a", "b", NULL), -EINVAL);
	ck_err("only one SERVER");
	ck_assert_int_eq(parse("", NULL), -EINVAL);
	ck_err("empty server address");
}
END_TEST

START_TEST(test_conflicts)
{
	ck_assert_int_eq(parse("-n", "10", "-D", "5", NULL), -EINVAL);
	ck_err("-n and -D conflict");
	ck_assert_int_eq(parse("-a", "-s", "4096", NULL), -EINVAL);
	ck_err("-a and -s conflict");
	ck_assert_int_eq(parse("-a", "-D", "5", NULL), -EINVAL);
	ck_err("-a and -D conflict");
	ck_assert_int_eq(parse("-D", "5", "-e", NULL), -EINVAL);
	ck_err("-D and -e conflict");
	ck_assert_int_eq(parse("--lat", "-q", "2", NULL), -EINVAL);
	ck_err("bandwidth tests only");
	/* The order of the flags does not matter. */
	ck_assert_int_eq(parse("-q", "2", "--lat", NULL), -EINVAL);
}
END_TEST

/* -q N with the library tests: N connections from one context (bandwidth of stream, msg, zc). */
START_TEST(test_lib_qps)
{
	static const char *const multi[] = {"stream", "msg", "zc"};
	size_t i;

	for (i = 0; i < sizeof(multi) / sizeof(multi[0]); i++) {
		ck_assert_int_eq(parse("--test", multi[i], "-q", "4", "--verify", NULL), 0);
		ck_assert_int_eq(o.qps, 4);
		ck_assert_int_eq(perf_opts_check_lib(&o, err, sizeof(err)), 0);
		ck_assert_int_eq(parse("--test", multi[i], "-q", "1024", "-s", "64", NULL), 0);
		ck_assert_int_eq(perf_opts_check_lib(&o, err, sizeof(err)), 0);
		/* Iterations stay per connection, as perftest's -n is per QP. */
		ck_assert_uint_eq(o.iters, PERF_DEF_ITERS);
		ck_assert_int_eq(parse("--test", multi[i], "-q", "1025", NULL), -EINVAL);
		ck_err("out of range (1..1024)");
		ck_assert_int_eq(parse("--test", multi[i], "-q", "2", "--lat", NULL), -EINVAL);
		ck_err("bandwidth tests only");
	}
	ck_assert_int_eq(parse("--test", "zc", "-q", "8", "--copy", "-s", "4096", NULL), 0);
	ck_assert_int_eq(perf_opts_check_lib(&o, err, sizeof(err)), 0);
	/* rma and rma_read: one connection and its export. */
	ck_assert_int_eq(parse("--test", "rma", "-q", "1", NULL), 0);
	ck_assert_int_eq(perf_opts_check_lib(&o, err, sizeof(err)), 0);
	ck_assert_int_eq(parse("--test", "rma_read", "-q", "2", NULL), 0);
	ck_assert_int_eq(perf_opts_check_lib(&o, err, sizeof(err)), -EINVAL);
	ck_err("-q 2: rma_read runs one connection");
	/* The other refusals of the library tests. */
	ck_assert_int_eq(parse("--test", "zc", "-D", "5", NULL), 0);
	ck_assert_int_eq(perf_opts_check_lib(&o, err, sizeof(err)), -EINVAL);
	ck_err("no duration mode");
	ck_assert_int_eq(parse("--test", "msg", "-I", "64", NULL), 0);
	ck_assert_int_eq(perf_opts_check_lib(&o, err, sizeof(err)), -EINVAL);
	ck_err("-I:");
	ck_assert_int_eq(parse("--test", "stream", "-Q", "4", NULL), 0);
	ck_assert_int_eq(perf_opts_check_lib(&o, err, sizeof(err)), -EINVAL);
	ck_err("-Q:");
	ck_assert_int_eq(parse("--test", "rma", "--copy", NULL), 0);
	ck_assert_int_eq(perf_opts_check_lib(&o, err, sizeof(err)), -EINVAL);
	ck_err("no copy path");
	ck_assert_int_eq(parse("--test", "zc", "--copy", "-s", "2M", NULL), 0);
	ck_assert_int_eq(perf_opts_check_lib(&o, err, sizeof(err)), -EINVAL);
	ck_err("beyond the copy path");
}
END_TEST

START_TEST(test_help_version_and_double_dash)
{
	ck_assert_int_eq(parse("-h", "-n", "10", "-D", "3", NULL), 0); /* help wins over conflicts */
	ck_assert_int_eq(o.help, 1);
	ck_assert_int_eq(parse("--version", NULL), 0);
	ck_assert_int_eq(o.version, 1);
	ck_assert_int_eq(parse("--", "-weird-host", NULL), 0);
	ck_assert_str_eq(o.server, "-weird-host");
	ck_assert_int_eq(parse("--lat", "--bw", NULL), 0); /* last one wins */
	ck_assert_int_eq(o.lat, 0);
}
END_TEST

START_TEST(test_duration_mode)
{
	ck_assert_int_eq(parse("-D", "3", "-t", "4", NULL), 0);
	ck_assert_int_eq(o.duration, 3);
	ck_assert_int_eq(o.tx_depth, 4);
	/* Depths are not clamped to -n in duration mode. */
	ck_assert_int_eq(parse("-D", "3", NULL), 0);
	ck_assert_int_eq(o.tx_depth, 128);
	ck_assert_int_eq(o.rx_depth, 512);
}
END_TEST

START_TEST(test_clamps_like_perftest)
{
	ck_assert_int_eq(parse("-n", "50", NULL), 0);
	ck_assert_int_eq(o.tx_depth, 50);
	ck_assert_int_eq(o.rx_depth, 50);
	ck_assert_int_eq(o.cq_mod, 50);
	ck_assert_int_eq(parse("-t", "16", "-Q", "64", NULL), 0);
	ck_assert_int_eq(o.cq_mod, 16);
}
END_TEST

START_TEST(test_sizes_and_cq_mod)
{
	uint64_t sizes[PERF_MAX_SIZES];
	int n;

	ck_assert_int_eq(parse("-s", "4097", NULL), 0);
	n = perf_opts_sizes(&o, sizes, PERF_MAX_SIZES);
	ck_assert_int_eq(n, 1);
	ck_assert_uint_eq(sizes[0], 4097);
	ck_assert_uint_eq(perf_opts_max_size(&o), 4097);

	ck_assert_int_eq(parse("-a", NULL), 0);
	n = perf_opts_sizes(&o, sizes, PERF_MAX_SIZES);
	ck_assert_int_eq(n, 23);
	ck_assert_uint_eq(sizes[0], 2);
	ck_assert_uint_eq(sizes[22], 8u << 20);
	ck_assert_uint_eq(perf_opts_max_size(&o), 8u << 20);
	ck_assert_int_eq(perf_opts_sizes(&o, sizes, 3), 3);
	/* -a keeps moderation on at every size, as perftest's RUN_ALL does. */
	ck_assert_int_eq(perf_opts_cq_mod(&o, 1 << 20), 100);

	ck_assert_int_eq(parse(NULL), 0);
	ck_assert_int_eq(perf_opts_cq_mod(&o, 8192), 100);
	ck_assert_int_eq(perf_opts_cq_mod(&o, 8193), 1);
	ck_assert_int_eq(parse("-Q", "10", NULL), 0);
	ck_assert_int_eq(perf_opts_cq_mod(&o, 65536), 10);
	ck_assert_int_eq(parse("-e", NULL), 0);
	ck_assert_int_eq(perf_opts_cq_mod(&o, 65536), 100);
}
END_TEST

START_TEST(test_hello_agreement)
{
	struct perf_opts a, b;
	struct perf_hello ha, hb, dec;
	char *argv_a[] = {"zc_perf", "--test=send", "-s", "4096", "-n", "200", "-t", "16", NULL};
	char *argv_b[] = {"zc_perf", "--test=send", "-s", "4096", "-n", "200", "-e", "-d", "rxe1", "x", NULL};

	ck_assert_int_eq(perf_opts_parse(8, argv_a, &a, err, sizeof(err)), 0);
	ck_assert_int_eq(perf_opts_parse(10, argv_b, &b, err, sizeof(err)), 0);
	perf_hello_from_opts(&a, &ha);
	perf_hello_from_opts(&b, &hb);
	ck_assert_uint_le(sizeof(ha), PERF_CONNECT_PDATA_MAX);
	/* Local choices (depths, events, device) do not have to agree. */
	ck_assert_int_eq(perf_hello_compare(&ha, &hb, "client", err, sizeof(err)), 0);
	ck_assert_int_eq(perf_hello_decode(&hb, sizeof(hb), &dec, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&dec, &hb, sizeof(dec)), 0);

	b.size = 65536;
	perf_hello_from_opts(&b, &hb);
	ck_assert_int_eq(perf_hello_compare(&ha, &hb, "client", err, sizeof(err)), -EINVAL);
	ck_err("-s differs: 4096 here, 65536 on the client");

	b = a;
	snprintf(b.test, sizeof(b.test), "write");
	perf_hello_from_opts(&b, &hb);
	ck_assert_int_eq(perf_hello_compare(&ha, &hb, "server", err, sizeof(err)), -EINVAL);
	ck_err("--test differs: send here, write on the server");

	b = a;
	b.lat = 1;
	perf_hello_from_opts(&b, &hb);
	ck_assert_int_eq(perf_hello_compare(&ha, &hb, "server", err, sizeof(err)), -EINVAL);
	ck_err("--lat differs: off here, on on the server");

	b = a;
	b.verify = 1;
	perf_hello_from_opts(&b, &hb);
	ck_assert_int_eq(perf_hello_compare(&ha, &hb, "server", err, sizeof(err)), -EINVAL);
	ck_err("--verify differs");

	b = a;
	b.iters = 300;
	perf_hello_from_opts(&b, &hb);
	ck_assert_int_eq(perf_hello_compare(&ha, &hb, "server", err, sizeof(err)), -EINVAL);
	ck_err("-n differs: 200 here, 300 on the server");

	b = a;
	b.qps = 2;
	perf_hello_from_opts(&b, &hb);
	ck_assert_int_eq(perf_hello_compare(&ha, &hb, "server", err, sizeof(err)), -EINVAL);
	ck_err("-q differs");

	b = a;
	b.duration = 4;
	perf_hello_from_opts(&b, &hb);
	ck_assert_int_eq(perf_hello_compare(&ha, &hb, "server", err, sizeof(err)), -EINVAL);
	ck_err("-D differs");
}
END_TEST

START_TEST(test_hello_decode_rejects_strangers)
{
	struct perf_hello h, dec;
	uint32_t junk[14] = {0xdeadbeef};

	ck_assert_int_eq(perf_hello_decode(NULL, 0, &dec, err, sizeof(err)), -EPROTO);
	ck_err("no zc_perf parameters");
	ck_assert_int_eq(perf_hello_decode(junk, sizeof(junk), &dec, err, sizeof(err)), -EPROTO);
	ck_err("bad magic");
	perf_opts_defaults(&o);
	perf_hello_from_opts(&o, &h);
	h.hdr.version = 99;
	ck_assert_int_eq(perf_hello_decode(&h, sizeof(h), &dec, err, sizeof(err)), -EPROTO);
	ck_err("protocol 99");
	perf_hello_from_opts(&o, &h);
	ck_assert_int_eq(perf_hello_decode(&h, sizeof(h) - 1, &dec, err, sizeof(err)), -EPROTO);
}
END_TEST

START_TEST(test_reject_text)
{
	struct perf_reject r;
	char out[PERF_REJECT_TEXT];
	char junk[32] = "not a zc_perf reject";

	perf_reject_make(&r, "-s differs: 1 here, 2 on the server");
	ck_assert_ptr_nonnull(perf_reject_text(&r, sizeof(r), out, sizeof(out)));
	ck_assert_str_eq(out, "-s differs: 1 here, 2 on the server");
	ck_assert_ptr_null(perf_reject_text(junk, sizeof(junk), out, sizeof(out)));
	ck_assert_ptr_null(perf_reject_text(NULL, 0, out, sizeof(out)));
}
END_TEST

START_TEST(test_bw_exact_matches_perftest)
{
	/* 4 requests of 1000 B posted 1 us apart, completions (cq_mod 2) at 3 us and 10 us. */
	uint64_t tp[4] = {1000, 2000, 3000, 4000}, tc[4] = {0, 3000, 0, 10000};
	struct perf_bw bw;

	ck_assert_int_eq(perf_bw_exact(tp, tc, 4, 1000, &bw), 0);
	/* average: 4 * 1000 B in 9 us */
	ck_assert_double_eq_tol(bw.bw_avg, 4000 / 9e-6, 1);
	ck_assert_double_eq_tol(bw.msg_rate, 4 / 9e-6, 1e-3);
	/* best pair: posted at 2 us, done at 3 us, one request: 1000 B/us */
	ck_assert_double_eq_tol(bw.bw_peak, 1000 / 1e-6, 1);
	tc[3] = 500;
	ck_assert_int_eq(perf_bw_exact(tp, tc, 4, 1000, &bw), -EINVAL);
}
END_TEST

START_TEST(test_window_peak)
{
	struct perf_window w;

	perf_window_init(&w, 10, 0);
	perf_window_update(&w, 5000, 5);   /* window not full yet */
	ck_assert_double_eq(perf_window_peak(&w, 100), 0);
	perf_window_update(&w, 10000, 10); /* 10 in 10 us */
	perf_window_update(&w, 15000, 20); /* 10 in 5 us: best */
	perf_window_update(&w, 35000, 30); /* 10 in 20 us */
	ck_assert_double_eq_tol(perf_window_peak(&w, 100), 100 * 2e6, 1);
}
END_TEST

START_TEST(test_lat_like_perftest)
{
	uint64_t s[12];
	struct perf_lat l;
	int i;

	/* 10 us .. 120 us shuffled: the two largest (110, 120) are dropped. */
	for (i = 0; i < 12; i++)
		s[i] = (uint64_t)(((i * 5) % 12) + 1) * 10000;
	ck_assert_int_eq(perf_lat_compute(s, 12, 2, &l), 0);
	ck_assert_uint_eq(l.samples, 10);
	ck_assert_double_eq_tol(l.min, 5.0, 1e-9);       /* 10 us round trip / 2 */
	ck_assert_double_eq_tol(l.typical, 27.5, 1e-9);  /* median of 10..100: 55 / 2 */
	ck_assert_double_eq_tol(l.avg, 27.5, 1e-9);
	ck_assert_double_eq_tol(l.max, 55.0, 1e-9);      /* s[k]: 110 / 2, as perftest */
	ck_assert_double_eq_tol(l.p99, 55.0, 1e-9);      /* s[ceil(9.9)] */
	ck_assert_double_eq_tol(l.stdev, 14.3614, 1e-3); /* population stdev of 5..50 step 5 */

	for (i = 0; i < 5; i++)
		s[i] = 1000;
	ck_assert_int_eq(perf_lat_compute(s, 5, 1, &l), 0);
	ck_assert_double_eq_tol(l.typical, 1.0, 1e-9);   /* odd count: middle one */
	ck_assert_double_eq_tol(l.stdev, 0, 1e-9);
	ck_assert_int_eq(perf_lat_compute(s, 2, 1, &l), -EINVAL);
}
END_TEST

START_TEST(test_cpu_and_units)
{
	ck_assert_double_eq_tol(perf_cpu_per_gb(0.5, 2000000000ull), 0.25, 1e-12);
	ck_assert_double_eq(perf_cpu_per_gb(1, 0), 0);
	ck_assert_double_eq_tol(perf_to_mbytes(1048576), 1, 1e-12);
	ck_assert_double_eq_tol(perf_to_gbits(125000000), 1, 1e-12);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("perf_opts");
	TCase *opts = tcase_create("options"), *wire = tcase_create("wire"), *stats = tcase_create("stats");
	SRunner *sr;
	int failed;

	tcase_add_test(opts, test_defaults_bw_server);
	tcase_add_test(opts, test_defaults_lat_client);
	tcase_add_test(opts, test_every_flag);
	tcase_add_test(opts, test_long_spellings);
	tcase_add_test(opts, test_attached_and_bundled_short_options);
	tcase_add_test(opts, test_size_suffixes);
	tcase_add_test(opts, test_bad_values);
	tcase_add_test(opts, test_usage_errors);
	tcase_add_test(opts, test_conflicts);
	tcase_add_test(opts, test_lib_qps);
	tcase_add_test(opts, test_help_version_and_double_dash);
	tcase_add_test(opts, test_duration_mode);
	tcase_add_test(opts, test_clamps_like_perftest);
	tcase_add_test(opts, test_sizes_and_cq_mod);
	tcase_add_test(wire, test_hello_agreement);
	tcase_add_test(wire, test_hello_decode_rejects_strangers);
	tcase_add_test(wire, test_reject_text);
	tcase_add_test(stats, test_bw_exact_matches_perftest);
	tcase_add_test(stats, test_window_peak);
	tcase_add_test(stats, test_lat_like_perftest);
	tcase_add_test(stats, test_cpu_and_units);
	suite_add_tcase(s, opts);
	suite_add_tcase(s, wire);
	suite_add_tcase(s, stats);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
