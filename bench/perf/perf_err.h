/*
 * The one error message zc_perf prints when something fails: the code that
 * fails describes it, main prints it. Runtime code only (the pure parsers
 * return their message through an err argument instead).
 */
#ifndef ZC_PERF_ERR_H
#define ZC_PERF_ERR_H

#include <stddef.h>

#define PERF_ERR_LEN 320

/* Records the message and returns code as a negative errno. */
int perf_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The buffer functions taking (err, errlen) may write into directly. */
char *perf_errbuf(void);

const char *perf_errmsg(void);

#endif
