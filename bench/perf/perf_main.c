/*
 * zc_perf: perftest-style benchmark. Parses the options, opens the session,
 * and drives the chosen test size by size (see perf_test.h for the steps).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "perf_err.h"
#include "perf_lib.h"
#include "perf_report.h"
#include "perf_session.h"
#include "perf_time.h"

#define PERF_VERSION "0.1"

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void cpu_now(double *user, double *sys)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	*user = tv_s(ru.ru_utime);
	*sys = tv_s(ru.ru_stime);
}

static void msg_from_result(struct perf_msg *m, const struct perf_result *r)
{
	m->size = r->size;
	m->iters = r->iters;
	m->bytes = r->bytes;
	m->seconds = r->seconds;
	m->bw_peak = r->bw.bw_peak;
	m->bw_avg = r->bw.bw_avg;
	m->msg_rate = r->bw.msg_rate;
	m->lat[0] = r->lat.min;
	m->lat[1] = r->lat.max;
	m->lat[2] = r->lat.typical;
	m->lat[3] = r->lat.avg;
	m->lat[4] = r->lat.stdev;
	m->lat[5] = r->lat.p99;
	m->lat[6] = r->lat.p999;
	m->flags = (r->peak_valid ? PERF_MSG_PEAK_VALID : 0) | (r->has_lat ? PERF_MSG_HAS_LAT : 0);
}

static void result_from_msg(struct perf_result *r, const struct perf_msg *m)
{
	r->iters = m->iters;
	r->bytes = m->bytes;
	r->seconds = m->seconds;
	r->bw.bw_peak = m->bw_peak;
	r->bw.bw_avg = m->bw_avg;
	r->bw.msg_rate = m->msg_rate;
	r->lat.min = m->lat[0];
	r->lat.max = m->lat[1];
	r->lat.typical = m->lat[2];
	r->lat.avg = m->lat[3];
	r->lat.stdev = m->lat[4];
	r->lat.p99 = m->lat[5];
	r->lat.p999 = m->lat[6];
	r->peak_valid = !!(m->flags & PERF_MSG_PEAK_VALID);
	r->has_lat = !!(m->flags & PERF_MSG_HAS_LAT);
}

/* Client: report the run, check, learn the server's verdict. */
static int client_finish(struct perf_ctx *ctx, uint32_t seq, uint64_t size, struct perf_result *r)
{
	const struct perf_test *t = ctx->test;
	struct perf_msg m;
	int rc, vrc = 0;

	memset(&m, 0, sizeof(m));
	m.type = PERF_MSG_DONE;
	m.seq = seq;
	msg_from_result(&m, r);
	m.cpu_user = r->cpu_user;
	m.cpu_sys = r->cpu_sys;
	m.regs = r->regs;
	m.reg_s = r->reg_s;
	rc = perf_ctrl_send(&ctx->ctrl, &m);
	if (rc)
		return rc;
	if (ctx->o->verify && t->check)
		vrc = t->check(ctx, size);
	if (vrc) {
		perf_ctrl_abort(&ctx->ctrl, vrc, perf_errmsg());
		return vrc;
	}
	rc = perf_ctrl_expect(&ctx->ctrl, PERF_MSG_ACK, seq, &m, PERF_CTRL_MS);
	if (rc)
		return rc;
	if (m.status)
		return perf_err(m.status, "server: %s", m.text);
	r->has_peer_cpu = 1;
	r->peer_cpu_user = m.cpu_user;
	r->peer_cpu_sys = m.cpu_sys;
	r->peer_regs = m.regs;
	r->peer_reg_s = m.reg_s;
	return 0;
}

/* Server: wait for the client's result (the watchdog bounds it), check, answer. */
static int server_finish(struct perf_ctx *ctx, uint32_t seq, uint64_t size, struct perf_result *r, double u0,
			 double s0)
{
	const struct perf_test *t = ctx->test;
	struct perf_msg m;
	double u1, s1;
	int rc, vrc = 0;

	if (ctx->peer_done) {
		m = ctx->done;
		m.text[sizeof(m.text) - 1] = '\0';
		if (m.seq != seq)
			return perf_err(EPROTO, "control: DONE #%u for size #%u", m.seq, seq);
	} else {
		rc = perf_ctrl_expect(&ctx->ctrl, PERF_MSG_DONE, seq, &m, -1);
		if (rc)
			return rc;
	}
	cpu_now(&u1, &s1);
	result_from_msg(r, &m);
	r->cpu_user = u1 - u0;
	r->cpu_sys = s1 - s0;
	r->has_peer_cpu = 1;
	r->peer_cpu_user = m.cpu_user;
	r->peer_cpu_sys = m.cpu_sys;
	r->peer_regs = m.regs;
	r->peer_reg_s = m.reg_s;
	if (ctx->o->verify && t->check)
		vrc = t->check(ctx, size);
	memset(&m, 0, sizeof(m));
	m.type = PERF_MSG_ACK;
	m.seq = seq;
	m.status = (int16_t)vrc;
	m.cpu_user = r->cpu_user;
	m.cpu_sys = r->cpu_sys;
	m.regs = r->regs;
	m.reg_s = r->reg_s;
	if (vrc)
		snprintf(m.text, sizeof(m.text), "%s", perf_errmsg());
	rc = perf_ctrl_send(&ctx->ctrl, &m);
	return vrc ? vrc : rc;
}

static int run_size(struct perf_ctx *ctx, uint32_t seq, uint64_t size, struct perf_result *r)
{
	const struct perf_opts *o = ctx->o;
	const struct perf_test *t = ctx->test;
	double u0, s0, u1, s1;
	uint64_t calls, ns;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	r->size = size;
	perf_watchdog_arm(perf_watchdog_budget(size, o->iters, o->qps, o->duration));
	if (t->prepare)
		rc = t->prepare(ctx, size);
	if (rc) {
		perf_ctrl_abort(&ctx->ctrl, rc, perf_errmsg());
		return rc;
	}
	rc = perf_ctrl_barrier(&ctx->ctrl, seq);
	if (rc)
		return rc;
	ctx->peer_done = 0;
	cpu_now(&u0, &s0);
	rc = o->lat ? t->run_lat(ctx, size, r) : t->run_bw(ctx, size, r);
	if (rc) {
		perf_ctrl_abort(&ctx->ctrl, rc, perf_errmsg());
		return rc;
	}
	if (perf_lib_reg_delta(ctx, size, &calls, &ns)) {
		r->has_reg = 1;
		r->regs = calls;
		r->reg_s = (double)ns / 1e9;
	}
	if (ctx->is_server)
		return server_finish(ctx, seq, size, r, u0, s0);
	cpu_now(&u1, &s1);
	r->cpu_user = u1 - u0;
	r->cpu_sys = s1 - s0;
	return client_finish(ctx, seq, size, r);
}

static int run_all(struct perf_ctx *ctx, struct perf_result *res, int *nres)
{
	const struct perf_opts *o = ctx->o;
	uint64_t sizes[PERF_MAX_SIZES];
	int n = perf_opts_sizes(o, sizes, PERF_MAX_SIZES), i, rc;

	perf_report_table_head(stdout, o);
	for (i = 0; i < n; i++) {
		struct perf_result *r = &res[*nres];
		char why[160];

		/* Both sides skip alike: the decision rests on agreed options. */
		if (ctx->test->skip && ctx->test->skip(ctx, sizes[i], why, sizeof(why))) {
			printf(" %-10llu not run: %s\n", (unsigned long long)sizes[i], why);
			continue;
		}
		if (o->all && !ctx->is_server)
			fprintf(stderr, "zc_perf: [%d/%d] %llu bytes\n", i + 1, n, (unsigned long long)sizes[i]);
		rc = run_size(ctx, (uint32_t)i, sizes[i], r);
		if (rc)
			return rc;
		(*nres)++;
		perf_report_row(stdout, o, r);
		if (o->csv && (rc = perf_report_csv(o->csv, ctx, r)))
			return rc;
	}
	perf_report_line(stdout);
	if (ctx->test->footer)
		ctx->test->footer(ctx, stdout);
	return 0;
}

static void list_tests(FILE *f)
{
	int i;

	fprintf(f, "\nTests (--test=NAME):\n");
	for (i = 0; perf_tests[i]; i++)
		fprintf(f, "  %-8s %s\n", perf_tests[i]->name, perf_tests[i]->about);
}

int main(int argc, char **argv)
{
	static struct perf_result res[PERF_MAX_SIZES];
	struct perf_opts o;
	struct perf_ctx ctx;
	char err[256];
	int rc, nres = 0, set_up = 0;

	/* Lines in order with stderr's when both go to one log file. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (perf_opts_parse(argc, argv, &o, err, sizeof(err))) {
		fprintf(stderr, "zc_perf: %s\n", err);
		return 2;
	}
	if (o.help) {
		perf_opts_usage(stdout, "zc_perf");
		list_tests(stdout);
		return 0;
	}
	if (o.version) {
		printf("zc_perf %s (perftest-compatible options)\n", PERF_VERSION);
		return 0;
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.o = &o;
	ctx.is_server = o.server == NULL;
	ctx.max_size = perf_opts_max_size(&o);
	ctx.test = perf_test_find(o.test);
	if (!ctx.test) {
		fprintf(stderr, "zc_perf: --test=%s: no such test\n", o.test);
		list_tests(stderr);
		return 2;
	}
	if (ctx.test->validate && ctx.test->validate(&o, err, sizeof(err))) {
		fprintf(stderr, "zc_perf: %s\n", err);
		return 2;
	}
	if (!ctx.test->library && (o.copy || o.rcache || o.busy_poll_set || o.no_memhooks)) {
		fprintf(stderr, "zc_perf: %s: only the library tests (stream, msg, zc, rma, rma_read) take it\n",
			o.copy ? "--copy" : o.fresh_reg ? "--no-rcache-reuse" : o.rcache ? "--rcache"
			: o.no_memhooks ? "--no-memhooks" : "--busy-poll-us");
		return 2;
	}
	if (o.lat ? !ctx.test->run_lat : !ctx.test->run_bw) {
		fprintf(stderr, "zc_perf: --test=%s has no %s mode\n", o.test, o.lat ? "latency" : "bandwidth");
		return 2;
	}
	perf_signals_install();
	perf_clock_init();
	/* Setup waits are bounded on their own; this catches anything else
	 * (except a server told to wait for a client forever). */
	if (o.wait_s || !ctx.is_server)
		perf_watchdog_arm((unsigned int)o.wait_s + 120);
	rc = perf_session_open(&ctx);
	if (!rc) {
		set_up = 1;
		rc = ctx.test->setup(&ctx);
		if (rc)
			perf_ctrl_abort(&ctx.ctrl, rc, perf_errmsg());
	}
	if (!rc) {
		perf_report_header(stdout, &ctx);
		rc = run_all(&ctx, res, &nres);
	}
	perf_watchdog_arm(0);
	if (rc)
		fprintf(stderr, "zc_perf: %s\n", perf_errmsg());
	if (o.json && nres) {
		int jrc = perf_report_json(o.json, &ctx, res, nres);

		if (jrc) {
			fprintf(stderr, "zc_perf: %s\n", perf_errmsg());
			rc = rc ? rc : jrc;
		}
	}
	ctx.failed = rc != 0;
	if (set_up && ctx.test->teardown)
		ctx.test->teardown(&ctx);
	perf_session_close(&ctx);
	return rc ? 1 : 0;
}
