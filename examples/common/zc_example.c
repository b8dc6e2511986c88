/* Messages of the example programs (zc_example.h). */
#include "zc_example.h"

#include <stdio.h>
#include <stdlib.h>

#include <zcrdma.h>

void zc_ex_vwarn(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", zc_ex_prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void zc_ex_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	zc_ex_vwarn(fmt, ap);
	va_end(ap);
}

void zc_ex_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	zc_ex_vwarn(fmt, ap);
	va_end(ap);
	exit(1);
}

const char *zc_ex_why(int rc)
{
	static __thread char buf[768];
	const char *d = zc_last_error();

	snprintf(buf, sizeof(buf), d && *d ? "%s (%s)" : "%s", zc_strerror(rc), d);
	return buf;
}
