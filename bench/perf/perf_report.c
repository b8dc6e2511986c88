/* Header, table, CSV and JSON. */
#include "perf_report.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "perf_err.h"
#include "perf_time.h"

#define RESULT_LINE "---------------------------------------------------------------------------------------\n"

void perf_report_line(FILE *f)
{
	fputs(RESULT_LINE, f);
}

static const char *mode_name(const struct perf_opts *o)
{
	return o->lat ? "lat" : "bw";
}

void perf_report_header(FILE *f, const struct perf_ctx *ctx)
{
	const struct perf_opts *o = ctx->o;
	const struct perf_devinfo *d = &ctx->dev;
	char iters[48], mtu[16];

	if (o->duration)
		snprintf(iters, sizeof(iters), "%d s (duration)", o->duration);
	else
		snprintf(iters, sizeof(iters), "%llu", (unsigned long long)o->iters);
	fputs(RESULT_LINE, f);
	fprintf(f, "                    %s %s Test (zc_perf, %s)\n", ctx->test->title, o->lat ? "Latency" : "BW",
		ctx->test->library ? "zcrdma library" : "raw verbs");
	fprintf(f, " Role            : %-14s  Device         : %s\n", ctx->is_server ? "server" : "client", d->name);
	fprintf(f, " Number of qps   : %-14d  Transport type : RC via rdma_cm%s\n", o->qps,
		o->rdma_cm ? " (-R)" : "");
	fprintf(f, " TX depth        : %-14d  RX depth       : %d\n", o->tx_depth, ctx->rx_depth);
	if (ctx->test->library)
		fprintf(f, " CQ Moderation   : %-14s  Completions    : %s\n", "library",
			o->busy_poll_us < 0 ? "busy poll" : o->events ? "sleep on the event fd (-e)" : "spin, then sleep");
	else
		fprintf(f, " CQ Moderation   : %-14d  Completions    : %s\n",
			perf_opts_cq_mod(o, o->all ? 2 : o->size), o->events ? "events (-e)" : "busy poll");
	snprintf(mtu, sizeof(mtu), "%d[B]", d->mtu);
	fprintf(f, " Mtu             : %-14s  Link type      : %s\n", mtu, d->link ? d->link : "?");
	fprintf(f, " GID index       : %-14d  Max inline data: %d[B]\n", d->gid_index, ctx->inline_size);
	fprintf(f, " Iterations      : %-14s  Verify payload : %s\n", iters, o->verify ? "ON" : "OFF");
	fprintf(f, " Local address   : %-22s  Clock: %s\n", d->local,
		perf_clock_tsc ? "TSC (clocksource is slow)" : "clock_gettime");
	fprintf(f, " Remote address  : %s\n", d->remote);
	if (ctx->test->header)
		ctx->test->header(ctx, f);
	fputs(RESULT_LINE, f);
}

void perf_report_table_head(FILE *f, const struct perf_opts *o)
{
	if (o->lat && o->duration)
		fprintf(f, " %-7s %-18s %-14s %-14s %-15s %-15s\n", "#bytes", "#iterations", "t_avg[usec]",
			"tps average", "CPU usr[s/GB]", "CPU sys[s/GB]");
	else if (o->lat)
		fprintf(f, " %-7s %-11s    %-14s %-12s %-18s %-14s %-15s %-22s %-24s %-15s %-15s\n", "#bytes",
			"#iterations", "t_min[usec]", "t_max[usec]", "t_typical[usec]", "t_avg[usec]", "t_stdev[usec]",
			"99% percentile[usec]", "99.9% percentile[usec]", "CPU usr[s/GB]", "CPU sys[s/GB]");
	else
		fprintf(f, " %-10s %-14s %-18s %-20s %-15s %-15s %-15s\n", "#bytes", "#iterations",
			o->report_gbits ? "BW peak[Gb/sec]" : "BW peak[MB/sec]",
			o->report_gbits ? "BW average[Gb/sec]" : "BW average[MB/sec]", "MsgRate[Mpps]", "CPU usr[s/GB]",
			"CPU sys[s/GB]");
}

static double bw_unit(const struct perf_opts *o, double bytes_per_s)
{
	return o->report_gbits ? perf_to_gbits(bytes_per_s) : perf_to_mbytes(bytes_per_s);
}

void perf_report_row(FILE *f, const struct perf_opts *o, const struct perf_result *r)
{
	double usr = perf_cpu_per_gb(r->cpu_user, r->bytes), sys = perf_cpu_per_gb(r->cpu_sys, r->bytes);

	if (o->lat && o->duration)
		fprintf(f, " %-7llu %-18llu %-14.2f %-14.2f %-15.3f %-15.3f\n", (unsigned long long)r->size,
			(unsigned long long)r->iters, r->lat.avg, r->bw.msg_rate, usr, sys);
	else if (o->lat)
		fprintf(f, " %-7llu %-11llu    %-14.2f %-12.2f %-18.2f %-14.2f %-15.2f %-22.2f %-24.2f %-15.3f %-15.3f\n",
			(unsigned long long)r->size, (unsigned long long)r->iters, r->lat.min, r->lat.max,
			r->lat.typical, r->lat.avg, r->lat.stdev, r->lat.p99, r->lat.p999, usr, sys);
	else
		fprintf(f, " %-10llu %-14llu %-18.2f %-20.2f %-15.6f %-15.3f %-15.3f\n", (unsigned long long)r->size,
			(unsigned long long)r->iters, r->peak_valid ? bw_unit(o, r->bw.bw_peak) : 0.0,
			bw_unit(o, r->bw.bw_avg), r->bw.msg_rate / 1e6, usr, sys);
	fflush(f);
}

static const char csv_head[] =
	"test,mode,role,bytes,iterations,bw_peak_gbps,bw_avg_gbps,msg_rate_mpps,t_min_us,t_max_us,t_typical_us,"
	"t_avg_us,t_stdev_us,t_p99_us,t_p999_us,cpu_user_s_per_gb,cpu_sys_s_per_gb,peer_cpu_user_s_per_gb,"
	"peer_cpu_sys_s_per_gb\n";

int perf_report_csv(const char *path, const struct perf_ctx *ctx, const struct perf_result *r)
{
	const struct perf_opts *o = ctx->o;
	struct stat st;
	int fresh = stat(path, &st) != 0 || st.st_size == 0;
	FILE *f = fopen(path, "a");

	if (!f)
		return perf_err(errno, "--csv %s: %s", path, strerror(errno));
	if (fresh)
		fputs(csv_head, f);
	fprintf(f, "%s,%s,%s,%llu,%llu,", ctx->test->name, mode_name(o), ctx->is_server ? "server" : "client",
		(unsigned long long)r->size, (unsigned long long)r->iters);
	if (o->lat)
		fprintf(f, ",,%.6f,", r->bw.msg_rate / 1e6);
	else
		fprintf(f, "%.4f,%.4f,%.6f,", r->peak_valid ? perf_to_gbits(r->bw.bw_peak) : 0.0,
			perf_to_gbits(r->bw.bw_avg), r->bw.msg_rate / 1e6);
	if (r->has_lat)
		fprintf(f, "%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,", r->lat.min, r->lat.max, r->lat.typical, r->lat.avg,
			r->lat.stdev, r->lat.p99, r->lat.p999);
	else
		fputs(",,,,,,,", f);
	fprintf(f, "%.4f,%.4f,", perf_cpu_per_gb(r->cpu_user, r->bytes), perf_cpu_per_gb(r->cpu_sys, r->bytes));
	if (r->has_peer_cpu)
		fprintf(f, "%.4f,%.4f\n", perf_cpu_per_gb(r->peer_cpu_user, r->bytes),
			perf_cpu_per_gb(r->peer_cpu_sys, r->bytes));
	else
		fputs(",\n", f);
	if (fclose(f))
		return perf_err(errno, "--csv %s: %s", path, strerror(errno));
	return 0;
}

static void json_result(FILE *f, const struct perf_opts *o, const struct perf_result *r)
{
	fprintf(f, "    {\"bytes\": %llu, \"iterations\": %llu, \"seconds\": %.6f, \"bytes_moved\": %llu",
		(unsigned long long)r->size, (unsigned long long)r->iters, r->seconds, (unsigned long long)r->bytes);
	if (!o->lat)
		fprintf(f, ", \"bw_peak_gbps\": %.4f, \"bw_avg_gbps\": %.4f, \"bw_peak_MBps\": %.2f, \"bw_avg_MBps\": %.2f",
			r->peak_valid ? perf_to_gbits(r->bw.bw_peak) : 0.0, perf_to_gbits(r->bw.bw_avg),
			r->peak_valid ? perf_to_mbytes(r->bw.bw_peak) : 0.0, perf_to_mbytes(r->bw.bw_avg));
	fprintf(f, ", \"msg_rate_mpps\": %.6f", r->bw.msg_rate / 1e6);
	if (r->has_lat && !o->duration)
		fprintf(f,
			", \"t_min_us\": %.3f, \"t_max_us\": %.3f, \"t_typical_us\": %.3f, \"t_avg_us\": %.3f, "
			"\"t_stdev_us\": %.3f, \"t_p99_us\": %.3f, \"t_p999_us\": %.3f",
			r->lat.min, r->lat.max, r->lat.typical, r->lat.avg, r->lat.stdev, r->lat.p99, r->lat.p999);
	else if (r->has_lat)
		fprintf(f, ", \"t_avg_us\": %.3f", r->lat.avg);
	fprintf(f, ", \"cpu_user_s\": %.6f, \"cpu_sys_s\": %.6f, \"cpu_user_s_per_gb\": %.4f, \"cpu_sys_s_per_gb\": %.4f",
		r->cpu_user, r->cpu_sys, perf_cpu_per_gb(r->cpu_user, r->bytes), perf_cpu_per_gb(r->cpu_sys, r->bytes));
	if (r->has_peer_cpu)
		fprintf(f, ", \"peer_cpu_user_s_per_gb\": %.4f, \"peer_cpu_sys_s_per_gb\": %.4f",
			perf_cpu_per_gb(r->peer_cpu_user, r->bytes), perf_cpu_per_gb(r->peer_cpu_sys, r->bytes));
	if (r->has_reg)
		fprintf(f, ", \"reg_calls\": %llu, \"reg_s\": %.6f, \"peer_reg_calls\": %llu, \"peer_reg_s\": %.6f",
			(unsigned long long)r->regs, r->reg_s, (unsigned long long)r->peer_regs, r->peer_reg_s);
	fputc('}', f);
}

/* Device and test names are [A-Za-z0-9_] in practice; escape anyway. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s >= 0x20)
			fputc(*s, f);
	}
	fputc('"', f);
}

int perf_report_json(const char *path, const struct perf_ctx *ctx, const struct perf_result *r, int n)
{
	const struct perf_opts *o = ctx->o;
	FILE *f = fopen(path, "w");
	int i;

	if (!f)
		return perf_err(errno, "--json %s: %s", path, strerror(errno));
	fputs("{\n  \"tool\": \"zc_perf\", \"test\": ", f);
	json_str(f, ctx->test->name);
	fprintf(f, ", \"mode\": \"%s\", \"role\": \"%s\",\n  \"device\": ", mode_name(o),
		ctx->is_server ? "server" : "client");
	json_str(f, ctx->dev.name);
	fprintf(f, ", \"ib_port\": %d, \"mtu\": %d, \"gid_index\": %d,\n", ctx->dev.port, ctx->dev.mtu,
		ctx->dev.gid_index);
	if (ctx->test->library)
		fprintf(f, "  \"library\": true, \"copy\": %s, \"registration\": \"%s\", \"busy_poll_us\": %d,\n",
			o->copy ? "true" : "false", o->fresh_reg ? "rcache_fresh" : o->rcache ? "rcache" : "zc_mr_reg",
			o->busy_poll_us);
	fprintf(f,
		"  \"qps\": %d, \"tx_depth\": %d, \"rx_depth\": %d, \"cq_mod\": %d, \"inline\": %d, \"events\": %s, "
		"\"verify\": %s, \"iterations\": %llu, \"duration_s\": %d,\n  \"results\": [\n",
		o->qps, o->tx_depth, ctx->rx_depth, perf_opts_cq_mod(o, o->all ? 2 : o->size), ctx->inline_size,
		o->events ? "true" : "false", o->verify ? "true" : "false",
		(unsigned long long)(o->duration ? 0 : o->iters), o->duration);
	for (i = 0; i < n; i++) {
		json_result(f, o, &r[i]);
		fputs(i + 1 < n ? ",\n" : "\n", f);
	}
	fputs("  ]\n}\n", f);
	if (fclose(f))
		return perf_err(errno, "--json %s: %s", path, strerror(errno));
	return 0;
}
