/*
 * Clock and the stop flag every wait loop checks, so that no wait in zc_perf
 * is unbounded: a watchdog alarm (sized per run from -n/-D) or SIGINT/SIGTERM
 * sets the flag, busy loops see it on their next turn and blocking waits are
 * interrupted (EINTR) or time out in short slices.
 */
#ifndef ZC_PERF_TIME_H
#define ZC_PERF_TIME_H

#include <signal.h>
#include <stdint.h>
#include <time.h>

#define PERF_STOP_WATCHDOG 1
#define PERF_STOP_SIGNAL 2

extern volatile sig_atomic_t perf_stop_flag;

/* Set by perf_clock_init: read the TSC instead of clock_gettime. */
extern int perf_clock_tsc;
extern double perf_tsc_ns;     /* ns per TSC tick */
extern uint64_t perf_tsc_base; /* TSC at calibration */
extern uint64_t perf_ns_base;  /* CLOCK_MONOTONIC ns at calibration */

static inline uint64_t perf_clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static inline uint64_t perf_now_ns(void)
{
	if (perf_clock_tsc)
		return perf_ns_base + (uint64_t)((double)(__rdtsc() - perf_tsc_base) * perf_tsc_ns);
	return perf_clock_ns();
}
#else
static inline uint64_t perf_now_ns(void)
{
	return perf_clock_ns();
}
#endif

/*
 * Picks the clock the loops timestamp with. clock_gettime is used where it is
 * cheap (vDSO on a TSC clocksource); where the kernel reads a slow device
 * (HPET, as in an emulated guest: microseconds and a syscall per call, which
 * would show up in every latency sample) the TSC is read directly, calibrated
 * against CLOCK_MONOTONIC, as perftest always does.
 */
void perf_clock_init(void);

/* 0 while running, else -ETIMEDOUT (watchdog) or -EINTR (signal). */
int perf_stopped(void);

void perf_signals_install(void);

/* (Re)arms the watchdog for seconds from now; 0 disarms. */
void perf_watchdog_arm(unsigned int seconds);

/*
 * For tests whose waits happen inside blocking library calls, which never see
 * the stop flag: once the watchdog has expired, give the run grace_s more
 * seconds to notice, then exit the process (status 124) with a message.
 * 0 (the default) never exits.
 */
void perf_watchdog_hard(unsigned int grace_s);

/* Seconds a run may take before it is declared hung: generous, from -n/-D. */
unsigned int perf_watchdog_budget(uint64_t size, uint64_t iters, int qps, int duration);

#endif
