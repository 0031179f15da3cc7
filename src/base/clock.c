/* src/base/clock.c -- real and virtual clocks, RFC 3339 time text, durations, sizes.
 * The real clock is read only by edges (DESIGN.md: time is an input). */
#include "journeyd/base.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static uint64_t real_now(void *self)
{
    (void)self;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * JD_SEC + (uint64_t)ts.tv_nsec / 1000;
}

const jd_clock jd_clock_real = { real_now, NULL };

uint64_t jd_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t vnow(void *self) { return ((jd_vclock *)self)->_now_us; }

void jd_vclock_init(jd_vclock *vc, uint64_t start_us)
{
    vc->clock.now_us = vnow;
    vc->clock.self = vc;
    vc->_now_us = start_us;
}
void jd_vclock_set(jd_vclock *vc, uint64_t now_us) { vc->_now_us = now_us; }
void jd_vclock_advance(jd_vclock *vc, uint64_t delta_us) { vc->_now_us += delta_us; }

static uint64_t travel_now(void *self)
{
    jd_travel_clock *tc = self;
    return real_now(NULL) + (uint64_t)__atomic_load_n(&tc->_offset_us, __ATOMIC_RELAXED);
}

void jd_travel_init(jd_travel_clock *tc)
{
    tc->clock.now_us = travel_now;
    tc->clock.self = tc;
    tc->_offset_us = 0;
}

int64_t jd_travel_advance(jd_travel_clock *tc, uint64_t by_us)
{
    return __atomic_add_fetch(&tc->_offset_us, (int64_t)by_us, __ATOMIC_RELAXED);
}

int64_t jd_travel_offset(const jd_travel_clock *tc) { return __atomic_load_n(&tc->_offset_us, __ATOMIC_RELAXED); }



static int digits(const char *s, size_t n, size_t at, size_t count, int *out)
{
    if (at + count > n) return -1;
    int v = 0;
    for (size_t i = 0; i < count; i++) {
        if (!isdigit((unsigned char)s[at + i])) return -1;
        v = v * 10 + (s[at + i] - '0');
    }
    *out = v;
    return 0;
}

int64_t jd_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void jd_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int jd_time_parse(const char *s, size_t n, int64_t *out_us)
{
    static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y, mo, d, h, mi, sec;
    if (digits(s, n, 0, 4, &y) || n < 19 || s[4] != '-' || digits(s, n, 5, 2, &mo) ||
        s[7] != '-' || digits(s, n, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s, n, 11, 2, &h) || s[13] != ':' || digits(s, n, 14, 2, &mi) || s[16] != ':' ||
        digits(s, n, 17, 2, &sec))
        return JD_EINVAL;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || (unsigned)d > mdays[mo - 1] || h > 23 ||
        mi > 59 || sec > 60)
        return JD_EINVAL;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap) return JD_EINVAL;
    if (sec == 60) sec = 59;   /* a leap second is read as the second before it */
    size_t i = 19;
    int64_t frac_us = 0;
    if (i < n && s[i] == '.') {
        i++;
        size_t start = i;
        int64_t scale = 100000;
        while (i < n && isdigit((unsigned char)s[i])) {
            frac_us += (s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start) return JD_EINVAL;
    }
    int64_t off_s = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        int sign = s[i] == '-' ? -1 : 1;
        if (digits(s, n, i + 1, 2, &oh)) return JD_EINVAL;
        size_t j = i + 3;
        if (j < n && s[j] == ':') j++;
        if (digits(s, n, j, 2, &om) || oh > 23 || om > 59) return JD_EINVAL;
        off_s = sign * (oh * 3600 + om * 60);
        i = j + 2;
    } else {
        return JD_EINVAL;   /* RFC 3339 requires an offset */
    }
    if (i != n) return JD_EINVAL;
    int64_t days = jd_days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - off_s;
    *out_us = secs * (int64_t)JD_SEC + frac_us;
    return JD_OK;
}

size_t jd_time_format(int64_t us, char out[JD_TIME_TEXT])
{
    int64_t secs = us >= 0 ? us / (int64_t)JD_SEC : -((-us + (int64_t)JD_SEC - 1) / (int64_t)JD_SEC);
    int64_t rem_us = us - secs * (int64_t)JD_SEC;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    jd_civil_from_days(days, &y, &m, &d);
    int n = snprintf(out, JD_TIME_TEXT, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", (int)y, m, d,
                     (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (int)(rem_us / 1000));
    return n < 0 ? 0 : (size_t)n;
}

int jd_duration_parse(const char *s, uint64_t *out_us)
{
    static const struct { const char *unit; uint64_t us; } units[] = {
        { "ms", 1000 }, { "us", 1 }, { "s", JD_SEC }, { "m", JD_MIN }, { "h", JD_HOUR },
        { "d", JD_DAY }, { "w", 7 * JD_DAY },
    };
    uint64_t total = 0;
    const char *p = s;
    if (!*p) return JD_EINVAL;
    while (*p) {
        if (!isdigit((unsigned char)*p)) return JD_EINVAL;
        uint64_t v = 0;
        while (isdigit((unsigned char)*p)) {
            if (v > UINT64_MAX / 10) return JD_EINVAL;
            v = v * 10 + (uint64_t)(*p++ - '0');
        }
        size_t ul = 0;
        while (isalpha((unsigned char)p[ul])) ul++;
        bool found = false;
        for (size_t i = 0; i < JD_ARRAY_LEN(units); i++) {
            if (strlen(units[i].unit) == ul && strncmp(p, units[i].unit, ul) == 0) {
                if (v > UINT64_MAX / units[i].us) return JD_EINVAL;
                total += v * units[i].us;
                found = true;
                break;
            }
        }
        if (!found) return JD_EINVAL;
        p += ul;
    }
    *out_us = total;
    return JD_OK;
}

int jd_size_parse(const char *s, uint64_t *out)
{
    static const struct { const char *unit; uint64_t mult; } units[] = {
        { "", 1 }, { "B", 1 }, { "KB", 1000 }, { "MB", 1000000 }, { "GB", 1000000000 },
        { "KiB", 1024 }, { "MiB", 1024 * 1024 }, { "GiB", 1024ull * 1024 * 1024 },
    };
    const char *p = s;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*p)) return JD_EINVAL;
    while (isdigit((unsigned char)*p)) {
        if (v > UINT64_MAX / 10) return JD_EINVAL;
        v = v * 10 + (uint64_t)(*p++ - '0');
    }
    while (*p == ' ') p++;
    for (size_t i = 0; i < JD_ARRAY_LEN(units); i++) {
        if (strcmp(p, units[i].unit) == 0) {
            if (v > UINT64_MAX / units[i].mult) return JD_EINVAL;
            *out = v * units[i].mult;
            return JD_OK;
        }
    }
    return JD_EINVAL;
}
