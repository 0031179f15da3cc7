/* src/base/logging.c -- diagnostic lines on stderr: "<time> <level> <message>".
 * Reading the wall clock here is allowed: these lines are not state. One
 * fprintf per line keeps lines from different threads whole (stdio locks). */
#include "journeyd/base.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static jd_log_level min_level = JD_LOG_INFO;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void jd_log_set_level(jd_log_level lvl) { min_level = lvl; }

int jd_log_parse_level(const char *s, jd_log_level *out)
{
    for (size_t i = 0; i < JD_ARRAY_LEN(level_names); i++)
        if (strcasecmp(s, level_names[i]) == 0) { *out = (jd_log_level)i; return JD_OK; }
    return JD_EINVAL;
}

void jd_logf(jd_log_level lvl, const char *fmt, ...)
{
    if (lvl < min_level) return;
    char ts[JD_TIME_TEXT], line[1024];
    jd_time_format((int64_t)jd_clock_now(&jd_clock_real), ts);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %-5s %s\n", ts, level_names[lvl], line);
}
