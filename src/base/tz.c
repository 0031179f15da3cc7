/* src/base/tz.c -- IANA time zones through ICU (the tz.h contract).
 *
 * ICU answers one question here: the UTC offset (DST included) in force in a
 * zone at an instant. Calendar fields are then computed from UTC + offset
 * with proleptic Gregorian arithmetic, so results match Go and cel-go for
 * every year 1..9999 (ICU's own calendar switches to Julian before 1582).
 *
 * Invariants:
 *  (1) A zone is "UTC"/"Z", a fixed offset ([+-]HH:MM, [+-]HHMM, [+-]HH, or
 *      HH:MM meaning east of UTC, as the CEL conformance tests use), or a
 *      system IANA id that ICU knows (canonical or alias: "US/Central");
 *      anything else is "unknown time zone 'X'".
 *  (2) Each thread keeps at most TZ_CACHE open UCalendars, reused round
 *      robin, freed when the thread exits (a pthread key destructor); no
 *      state is shared between threads.
 *  (3) jd_tz_next_local resolves a wall-clock time by trying the offsets in
 *      force a day before and a day after it: a time valid under both
 *      (fall-back overlap) takes the earlier instant; valid under neither
 *      (spring-forward gap) takes the transition instant, found by bisection.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/ucal.h>
#include <unicode/ustring.h>

#include "journeyd/tz.h"

#define TZ_CACHE 8
#define TZ_NAME_MAX 64

typedef struct tz_ent { char name[TZ_NAME_MAX]; UCalendar *cal; } tz_ent;
typedef struct tz_cache { tz_ent e[TZ_CACHE]; unsigned next; } tz_cache;

typedef struct tz_zone { bool fixed; int32_t offset_s; UCalendar *cal; } tz_zone;

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t cache_key;
static __thread tz_cache *tls_cache;

static void cache_free(void *p)
{
    tz_cache *c = p;
    if (!c) return;
    for (int i = 0; i < TZ_CACHE; i++)
        if (c->e[i].cal) ucal_close(c->e[i].cal);
    free(c);
}

static void make_key(void) { pthread_key_create(&cache_key, cache_free); }

static tz_cache *cache_get(void)
{
    if (!tls_cache) {
        pthread_once(&key_once, make_key);
        tls_cache = jd_xcalloc(1, sizeof *tls_cache);
        pthread_setspecific(cache_key, tls_cache);
    }
    return tls_cache;
}

static int two(const char *s) { return (s[0] - '0') * 10 + (s[1] - '0'); }
static bool dig(char ch) { return ch >= '0' && ch <= '9'; }

/* Fixed offsets and UTC (invariant 1). */
static bool parse_fixed(const char *z, int32_t *off)
{
    size_t n = strlen(z);
    if (strcmp(z, "UTC") == 0 || strcmp(z, "Z") == 0) {
        *off = 0;
        return true;
    }
    int sign = 1;
    const char *p = z;
    if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        n--;
    } else if (n != 5) {
        return false;   /* an unsigned offset only as HH:MM */
    }
    int h, m = 0;
    if (n == 5 && dig(p[0]) && dig(p[1]) && p[2] == ':' && dig(p[3]) && dig(p[4])) {
        h = two(p);
        m = two(p + 3);
    } else if (n == 4 && dig(p[0]) && dig(p[1]) && dig(p[2]) && dig(p[3])) {
        h = two(p);
        m = two(p + 2);
    } else if (n == 2 && dig(p[0]) && dig(p[1])) {
        h = two(p);
    } else {
        return false;
    }
    if (h > 23 || m > 59) return false;
    *off = sign * (h * 3600 + m * 60);
    return true;
}

static bool name_chars_ok(const char *z)
{
    size_t n = strlen(z);
    if (n == 0 || n >= TZ_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = z[i];
        if (!(dig(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '/' || ch == '_' ||
              ch == '-' || ch == '+'))
            return false;
    }
    return true;
}

static UCalendar *open_iana(const char *z)
{
    UChar id[TZ_NAME_MAX], canon[TZ_NAME_MAX * 2];
    UErrorCode st = U_ZERO_ERROR;
    UBool is_system = 0;
    u_charsToUChars(z, id, (int32_t)strlen(z) + 1);
    ucal_getCanonicalTimeZoneID(id, -1, canon, (int32_t)JD_ARRAY_LEN(canon), &is_system, &st);
    if (U_FAILURE(st) || !is_system) return NULL;
    st = U_ZERO_ERROR;
    UCalendar *cal = ucal_open(id, -1, "en_US_POSIX", UCAL_GREGORIAN, &st);
    if (U_FAILURE(st)) {
        if (cal) ucal_close(cal);
        return NULL;
    }
    return cal;
}

static int zone_get(const char *z, tz_zone *out, jd_err *err)
{
    memset(out, 0, sizeof *out);
    if (z && parse_fixed(z, &out->offset_s)) {
        out->fixed = true;
        return JD_OK;
    }
    if (z && name_chars_ok(z)) {
        tz_cache *c = cache_get();
        for (int i = 0; i < TZ_CACHE; i++) {
            if (c->e[i].cal && strcmp(c->e[i].name, z) == 0) {
                out->cal = c->e[i].cal;
                return JD_OK;
            }
        }
        UCalendar *cal = open_iana(z);
        if (cal) {
            tz_ent *e = &c->e[c->next++ % TZ_CACHE];
            if (e->cal) ucal_close(e->cal);
            snprintf(e->name, sizeof e->name, "%s", z);
            e->cal = cal;
            out->cal = cal;
            return JD_OK;
        }
    }
    return jd_err_set(err, JD_EINVAL, NULL, "unknown time zone '%.60s'", z ? z : "");
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

static int32_t offset_at(const tz_zone *z, int64_t utc_us)
{
    if (z->fixed) return z->offset_s;
    UErrorCode st = U_ZERO_ERROR;
    ucal_setMillis(z->cal, (UDate)floor_div(utc_us, 1000), &st);
    int32_t ms = ucal_get(z->cal, UCAL_ZONE_OFFSET, &st);
    ms += ucal_get(z->cal, UCAL_DST_OFFSET, &st);
    return U_FAILURE(st) ? 0 : ms / 1000;
}

bool jd_tz_valid(const char *zone)
{
    tz_zone z;
    return zone_get(zone, &z, NULL) == JD_OK;
}

static void fields(int64_t local_us, int32_t off, jd_local *out)
{
    int64_t secs = floor_div(local_us, 1000000), us = local_us - secs * 1000000;
    int64_t days = floor_div(secs, 86400), sod = secs - days * 86400, y;
    unsigned m, d;
    jd_civil_from_days(days, &y, &m, &d);
    out->year = (int)y;
    out->month = (int)m;
    out->day = (int)d;
    out->hour = (int)(sod / 3600);
    out->minute = (int)(sod / 60 % 60);
    out->second = (int)(sod % 60);
    out->millis = (int)(us / 1000);
    out->weekday = (int)(((days % 7) + 11) % 7);   /* 1970-01-01 was a Thursday (4) */
    out->yday = (int)(days - jd_days_from_civil(y, 1, 1));
    out->offset_s = off;
}

int jd_tz_to_local(const char *zone, int64_t utc_us, jd_local *out, jd_err *err)
{
    tz_zone z;
    int rc = zone_get(zone, &z, err);
    if (rc != JD_OK) return rc;
    int32_t off = offset_at(&z, utc_us);
    fields(utc_us + (int64_t)off * 1000000, off, out);
    return JD_OK;
}

/* The UTC instant for a local wall-clock time (invariant 3). */
static int64_t resolve_wall(const tz_zone *z, int64_t wall_us)
{
    const int64_t day = INT64_C(86400000000);
    int32_t o1 = offset_at(z, wall_us - day), o2 = offset_at(z, wall_us + day);
    int64_t u1 = wall_us - (int64_t)o1 * 1000000, u2 = wall_us - (int64_t)o2 * 1000000;
    bool v1 = offset_at(z, u1) == o1, v2 = offset_at(z, u2) == o2;
    if (v1 && v2) return u1 < u2 ? u1 : u2;
    if (v1) return u1;
    if (v2) return u2;
    /* A gap: the transition lies between the two candidates. */
    int64_t lo = u1 < u2 ? u1 : u2, hi = u1 < u2 ? u2 : u1;
    while (hi - lo > 1000000) {
        int64_t mid = lo + (hi - lo) / 2;
        if (offset_at(z, mid) == o1) lo = mid;
        else hi = mid;
    }
    return floor_div(hi, 1000000) * 1000000;
}

int jd_tz_next_local(const char *zone, int64_t after_us, int hour, int minute, uint8_t weekday_mask,
                     int64_t *out_us, jd_err *err)
{
    if (hour < 0 || hour > 23 || minute < 0 || minute > 59)
        return jd_err_set(err, JD_EINVAL, NULL, "invalid local time %02d:%02d", hour, minute);
    tz_zone z;
    int rc = zone_get(zone, &z, err);
    if (rc != JD_OK) return rc;
    int32_t off = offset_at(&z, after_us);
    int64_t day0 = floor_div(floor_div(after_us + (int64_t)off * 1000000, 1000000), 86400);
    for (int64_t d = day0 - 1; d <= day0 + 9; d++) {
        int wd = (int)(((d % 7) + 11) % 7);
        if (weekday_mask && !(weekday_mask & (1u << wd))) continue;
        int64_t wall = (d * 86400 + hour * 3600 + minute * 60) * INT64_C(1000000);
        int64_t u = resolve_wall(&z, wall);
        if (u > after_us) {
            *out_us = u;
            return JD_OK;
        }
    }
    return jd_err_set(err, JD_EINVAL, NULL, "no weekday in mask 0x%02x", weekday_mask);
}

const char *jd_tz_data_version(void)
{
    UErrorCode st = U_ZERO_ERROR;
    const char *v = ucal_getTZDataVersion(&st);
    return U_FAILURE(st) || !v ? "unknown" : v;
}
