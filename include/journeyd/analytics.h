/* include/journeyd/analytics.h -- measuring: for now the Prometheus text exposition.
 *
 * Owns: writing metric families in the Prometheus text format 0.0.4 (HELP and
 * TYPE once per family, label values escaped, histograms with cumulative
 * buckets, _sum and _count). Later: per-node journey counters, funnels,
 * experiment statistics (issue 'Journey analytics').
 * Threading: pure functions over a caller's buffer.
 * Not here: where the numbers come from.
 */
#ifndef JOURNEYD_ANALYTICS_H
#define JOURNEYD_ANALYTICS_H

#include "journeyd/base.h"

/* "# HELP name help\n# TYPE name type\n" */
void anl_prom_family(jd_buf *out, const char *name, const char *type, const char *help);
/* name{label="value"} v -- label may be NULL for no labels. */
void anl_prom_sample(jd_buf *out, const char *name, const char *label, const char *value, double v);
/* A whole histogram family: bounds[i] are upper bounds (the last may be +Inf,
 * written as such when >= 1e300), cum[i] cumulative counts. */
void anl_prom_histogram(jd_buf *out, const char *name, const char *help, const double *bounds,
                        const uint64_t *cum, size_t n, uint64_t count, double sum);

#endif
