/* perftest-compatible statistics (pure code, unit-tested). */
#include "perf_stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int perf_bw_exact(const uint64_t *tposted, const uint64_t *tcompleted, uint64_t n, uint64_t size,
		  struct perf_bw *out)
{
	double best = 0, total;
	uint64_t i, k, nc = 0, *done;

	memset(out, 0, sizeof(*out));
	if (n == 0 || tcompleted[n - 1] <= tposted[0])
		return -EINVAL;
	total = (double)(tcompleted[n - 1] - tposted[0]) / 1e9;
	out->bw_avg = (double)size * (double)n / total;
	out->msg_rate = (double)n / total;
	/* Only indices with a completion count: with CQ moderation most have none. */
	done = malloc(n * sizeof(*done));
	if (!done)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		if (tcompleted[i])
			done[nc++] = i;
	/* Best per-request time over every (post i, completion j >= i) pair. */
	for (i = 0, k = 0; i < n; i++) {
		uint64_t c;

		while (k < nc && done[k] < i)
			k++;
		for (c = k; c < nc; c++) {
			uint64_t j = done[c];
			double per;

			if (tcompleted[j] <= tposted[i])
				continue;
			per = (double)(tcompleted[j] - tposted[i]) / (double)(j - i + 1);
			if (best == 0 || per < best)
				best = per;
		}
	}
	free(done);
	out->bw_peak = best > 0 ? (double)size * 1e9 / best : 0;
	return 0;
}

void perf_window_init(struct perf_window *w, uint64_t window, uint64_t t0_ns)
{
	memset(w, 0, sizeof(*w));
	w->window = window ? window : 1;
	w->start_ns = t0_ns;
}

void perf_window_update(struct perf_window *w, uint64_t now_ns, uint64_t completed)
{
	uint64_t n = completed - w->start_n;
	double rate;

	if (n < w->window || now_ns <= w->start_ns)
		return;
	rate = (double)n * 1e9 / (double)(now_ns - w->start_ns);
	if (rate > w->best)
		w->best = rate;
	w->start_ns = now_ns;
	w->start_n = completed;
}

double perf_window_peak(const struct perf_window *w, uint64_t size)
{
	return w->best * (double)size;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int perf_lat_compute(uint64_t *samples, size_t m, int rtt_factor, struct perf_lat *out)
{
	double div = 1000.0 * (rtt_factor > 0 ? rtt_factor : 1), sum = 0, var = 0;
	size_t k, i, i99, i999;

	memset(out, 0, sizeof(*out));
	if (!samples || m <= PERF_LAT_TAIL)
		return -EINVAL;
	qsort(samples, m, sizeof(*samples), cmp_u64);
	k = m - PERF_LAT_TAIL;
	/* perftest's get_median on the k kept samples. */
	if ((k - 1) % 2)
		out->typical = ((double)samples[k / 2] + (double)samples[k / 2 - 1]) / 2 / div;
	else
		out->typical = (double)samples[k / 2] / div;
	for (i = 0; i < k; i++)
		sum += (double)samples[i] / div;
	out->avg = sum / (double)k;
	for (i = 0; i < k; i++) {
		double d = (double)samples[i] / div - out->avg;

		var += d * d;
	}
	out->stdev = sqrt(var / (double)k);
	i99 = (size_t)ceil((double)k * 0.99);
	i999 = (size_t)ceil((double)k * 0.999);
	/* k < m, so index k and both percentiles stay inside the array. */
	out->min = (double)samples[0] / div;
	out->max = (double)samples[k] / div;
	out->p99 = (double)samples[i99 < m ? i99 : m - 1] / div;
	out->p999 = (double)samples[i999 < m ? i999 : m - 1] / div;
	out->samples = k;
	return 0;
}

double perf_cpu_per_gb(double cpu_s, uint64_t bytes)
{
	return bytes ? cpu_s / ((double)bytes / 1e9) : 0;
}

double perf_to_mbytes(double bytes_per_s)
{
	return bytes_per_s / (double)(1 << 20);
}

double perf_to_gbits(double bytes_per_s)
{
	return bytes_per_s * 8 / 1e9;
}
