/*
 * zc_perf output: perftest's header block and result table (same columns,
 * units and number formats) plus CPU columns, and the --csv / --json files.
 */
#ifndef ZC_PERF_REPORT_H
#define ZC_PERF_REPORT_H

#include <stdio.h>

#include "perf_test.h"

void perf_report_header(FILE *f, const struct perf_ctx *ctx);
void perf_report_table_head(FILE *f, const struct perf_opts *o);
void perf_report_row(FILE *f, const struct perf_opts *o, const struct perf_result *r);
void perf_report_line(FILE *f);

/* Appends one row (and the column names first if the file is new or empty). */
int perf_report_csv(const char *path, const struct perf_ctx *ctx, const struct perf_result *r);

/* Writes the whole run: settings and one object per size. */
int perf_report_json(const char *path, const struct perf_ctx *ctx, const struct perf_result *r, int n);

#endif
