/*
 * Bandwidth, latency and CPU figures from raw timestamps, with perftest's
 * definitions so zc_perf's numbers can be put next to ib_*_bw / ib_*_lat.
 * Pure code; times are nanoseconds from a monotonic clock.
 */
#ifndef ZC_PERF_STATS_H
#define ZC_PERF_STATS_H

#include <stddef.h>
#include <stdint.h>

/* perftest measures the peak only up to this many work requests. */
#define PERF_PEAK_EXACT_MAX 20000

struct perf_bw {
	double bw_avg;   /* bytes/s */
	double bw_peak;  /* bytes/s, 0 if not measured */
	double msg_rate; /* messages/s */
};

/*
 * perftest's print_report_bw: n work requests of size bytes, posted at
 * tposted[i]; tcompleted[j] is set where a completion covering requests up to
 * j was seen (0 elsewhere; the last entry is always set).
 *   average = size * n / (tcompleted[n-1] - tposted[0])
 *   peak    = size / min over i <= j, tcompleted[j] set, of
 *             (tcompleted[j] - tposted[i]) / (j - i + 1)
 * i.e. the best rate of any run of consecutive requests from a post to a
 * completion. O(n * completions): the caller keeps n <= PERF_PEAK_EXACT_MAX.
 * Returns 0, -EINVAL (no time elapsed) or -ENOMEM.
 */
int perf_bw_exact(const uint64_t *tposted, const uint64_t *tcompleted, uint64_t n, uint64_t size,
		  struct perf_bw *out);

/*
 * Past PERF_PEAK_EXACT_MAX requests and in duration mode the peak comes from
 * windows instead: consecutive, non-overlapping spans that each complete at
 * least `window` requests; the peak is the best span's rate. Cheap enough to
 * update on every completion, needs no per-request memory.
 */
struct perf_window {
	uint64_t window;   /* requests per span */
	uint64_t start_ns; /* span start time */
	uint64_t start_n;  /* requests completed at span start */
	double best;       /* best requests per second so far */
};

void perf_window_init(struct perf_window *w, uint64_t window, uint64_t t0_ns);
void perf_window_update(struct perf_window *w, uint64_t now_ns, uint64_t completed);

/* The window peak in bytes/s (0 if no span finished). */
double perf_window_peak(const struct perf_window *w, uint64_t size);

struct perf_lat {
	double min, max, typical, avg, stdev, p99, p999; /* usec */
	uint64_t samples;                               /* after dropping the tail */
};

/* perftest ignores this many of the largest samples as outliers. */
#define PERF_LAT_TAIL 2

/*
 * perftest's print_report_lat on samples (ns; sorted in place). rtt_factor 2
 * halves round trips (send, write ping-pong), 1 keeps them (read). With m
 * samples sorted and k = m - PERF_LAT_TAIL kept: min = s[0], typical = median
 * of the k kept, avg and stdev over the k kept, max = s[k] and the
 * percentiles s[ceil(k * 0.99)], s[ceil(k * 0.999)] index like perftest (so
 * max is the largest sample below the two dropped). Needs m > PERF_LAT_TAIL.
 */
int perf_lat_compute(uint64_t *samples, size_t m, int rtt_factor, struct perf_lat *out);

/* CPU seconds spent per 10^9 bytes moved (0 when nothing moved). */
double perf_cpu_per_gb(double cpu_s, uint64_t bytes);

/* Unit conversions for output, perftest's: MB = 2^20 bytes, Gb = 10^9 bits. */
double perf_to_mbytes(double bytes_per_s);
double perf_to_gbits(double bytes_per_s);

#endif
