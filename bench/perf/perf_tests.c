/* The test table: one line per test; each test lives in its own file. */
#include <string.h>

#include "perf_test.h"

extern const struct perf_test perf_test_write;
extern const struct perf_test perf_test_read;
extern const struct perf_test perf_test_send;
extern const struct perf_test perf_test_stream;
extern const struct perf_test perf_test_msg;
extern const struct perf_test perf_test_zc;
extern const struct perf_test perf_test_rma;
extern const struct perf_test perf_test_rma_read;

const struct perf_test *const perf_tests[] = {
	&perf_test_write,
	&perf_test_read,
	&perf_test_send,
	&perf_test_stream,
	&perf_test_msg,
	&perf_test_zc,
	&perf_test_rma,
	&perf_test_rma_read,
	NULL,
};

const struct perf_test *perf_test_find(const char *name)
{
	int i;

	for (i = 0; perf_tests[i]; i++)
		if (strcmp(perf_tests[i]->name, name) == 0)
			return perf_tests[i];
	return NULL;
}
