/* Last error message. */
#include "perf_err.h"

#include <stdarg.h>
#include <stdio.h>

static char msg[PERF_ERR_LEN];

int perf_err(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return code > 0 ? -code : code;
}

char *perf_errbuf(void)
{
	return msg;
}

const char *perf_errmsg(void)
{
	return msg[0] ? msg : "unknown error";
}
