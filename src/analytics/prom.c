/* src/analytics/prom.c -- the Prometheus text exposition format, written by hand
 * because no C library for it is packaged in Debian (DEPENDENCIES.md). */
#include "journeyd/analytics.h"

#include <math.h>
#include <stdio.h>

void anl_prom_family(jd_buf *out, const char *name, const char *type, const char *help)
{
    jd_buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void add_number(jd_buf *out, double v)
{
    if (isinf(v)) jd_buf_adds(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15) jd_buf_addf(out, "%.0f", v);
    else jd_buf_addf(out, "%.9g", v);
}

void anl_prom_sample(jd_buf *out, const char *name, const char *label, const char *value, double v)
{
    jd_buf_adds(out, name);
    if (label) {
        jd_buf_addf(out, "{%s=\"", label);
        for (const char *p = value; *p; p++) {   /* label values escape \ " and newline */
            if (*p == '\\' || *p == '"') jd_buf_addf(out, "\\%c", *p);
            else if (*p == '\n') jd_buf_adds(out, "\\n");
            else jd_buf_add(out, p, 1);
        }
        jd_buf_adds(out, "\"}");
    }
    jd_buf_adds(out, " ");
    add_number(out, v);
    jd_buf_adds(out, "\n");
}

void anl_prom_histogram(jd_buf *out, const char *name, const char *help, const double *bounds,
                        const uint64_t *cum, size_t n, uint64_t count, double sum)
{
    anl_prom_family(out, name, "histogram", help);
    char bucket[128];
    snprintf(bucket, sizeof bucket, "%s_bucket", name);
    for (size_t i = 0; i < n; i++) {
        char le[32];
        if (bounds[i] >= 1e300) snprintf(le, sizeof le, "+Inf");
        else snprintf(le, sizeof le, "%g", bounds[i]);
        anl_prom_sample(out, bucket, "le", le, (double)cum[i]);
    }
    char s[128];
    snprintf(s, sizeof s, "%s_sum", name);
    anl_prom_sample(out, s, NULL, NULL, sum);
    snprintf(s, sizeof s, "%s_count", name);
    anl_prom_sample(out, s, NULL, NULL, (double)count);
}
