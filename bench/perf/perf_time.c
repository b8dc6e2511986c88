/* Watchdog and stop flag. */
#include "perf_time.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t perf_stop_flag;
int perf_clock_tsc;
double perf_tsc_ns;
uint64_t perf_tsc_base;
uint64_t perf_ns_base;

#if defined(__x86_64__) || defined(__i386__)
/* ns per tick over a short sleep, or 0 if the TSC does not advance. */
static double tsc_rate(void)
{
	struct timespec nap = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
	uint64_t n0 = perf_clock_ns(), c0 = __rdtsc(), n1, c1;

	nanosleep(&nap, NULL);
	n1 = perf_clock_ns();
	c1 = __rdtsc();
	return c1 > c0 ? (double)(n1 - n0) / (double)(c1 - c0) : 0;
}

void perf_clock_init(void)
{
	uint64_t t0 = perf_clock_ns(), t1;
	double a, b;
	int i;

	for (i = 0; i < 256; i++)
		(void)perf_clock_ns();
	t1 = perf_clock_ns();
	if ((t1 - t0) / 257 < 200)
		return; /* vDSO: cheap and exact enough */
	a = tsc_rate();
	b = tsc_rate();
	/* Two calibrations that disagree by > 2%: the TSC is not steady here. */
	if (a <= 0 || b <= 0 || a / b > 1.02 || b / a > 1.02)
		return;
	perf_tsc_ns = (a + b) / 2;
	perf_ns_base = perf_clock_ns();
	perf_tsc_base = __rdtsc();
	perf_clock_tsc = 1;
}
#else
void perf_clock_init(void)
{
}
#endif

static volatile sig_atomic_t hard_grace_s;

static void on_alarm(int sig)
{
	static const char msg[] = "zc_perf: watchdog expired: the peer stopped answering\n";
	static const char stuck[] = "zc_perf: watchdog: still stuck (inside a blocking library call?); exiting\n";
	ssize_t rc;

	(void)sig;
	if (perf_stop_flag == PERF_STOP_WATCHDOG && hard_grace_s) {
		rc = write(STDERR_FILENO, stuck, sizeof(stuck) - 1);
		(void)rc;
		_exit(124);
	}
	perf_stop_flag = PERF_STOP_WATCHDOG;
	rc = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)rc;
	if (hard_grace_s)
		alarm((unsigned int)hard_grace_s);
}

void perf_watchdog_hard(unsigned int grace_s)
{
	hard_grace_s = (sig_atomic_t)grace_s;
}

static void on_signal(int sig)
{
	(void)sig;
	perf_stop_flag = PERF_STOP_SIGNAL;
}

int perf_stopped(void)
{
	switch (perf_stop_flag) {
	case 0: return 0;
	case PERF_STOP_WATCHDOG: return -ETIMEDOUT;
	default: return -EINTR;
	}
}

void perf_signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking poll() must return EINTR so its loop sees the flag. */
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

void perf_watchdog_arm(unsigned int seconds)
{
	alarm(seconds);
}

unsigned int perf_watchdog_budget(uint64_t size, uint64_t iters, int qps, int duration)
{
	/* Floors far below soft-RoCE under emulation: 1 MB/s and 5 ms per message. */
	double s = 60;

	if (duration)
		s += 2.0 * duration;
	else
		s += (double)iters * (double)qps * ((double)size / 1e6 + 0.005);
	return s > 86400 * 7 ? 86400 * 7 : (unsigned int)s;
}
