/* src/expr/timefn.c -- timestamps and durations: text, arithmetic, the
 * calendar accessors with time zones, and journeyd's time extensions.
 *
 * Invariants:
 *  (1) A timestamp is microseconds since the Unix epoch, within CEL's range
 *      0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z; a duration is
 *      microseconds within protobuf's +-315576000000 s. Every operation that
 *      could leave a range is the error "timestamp out of range" or
 *      "duration out of range" (the conformance tests look for "range").
 *      Text with finer digits (nanoseconds) is truncated to microseconds.
 *  (2) The RFC 3339 parser is local because base's jd_time_parse stops at
 *      1970 and CEL timestamps start at year 1. Calendar arithmetic is
 *      proleptic Gregorian (Howard Hinnant's days_from_civil), as Go's and
 *      therefore cel-go's.
 *  (3) Accessors without a zone use the activation's default_tz, else UTC
 *      (CEL says UTC; default_tz is journeyd's documented addition);
 *      zones are IANA names or fixed offsets, resolved through tz.h.
 *  (4) timestamp - timestamp also fails past +-(2^63-1) ns, as cel-go (Go's
 *      time.Duration) and the conformance tests do.
 */
#include <stdlib.h>

#include "expr_int.h"
#include "journeyd/tz.h"

#define US_PER_S INT64_C(1000000)
#define TS_MIN_US (EXPR_TS_MIN_S * US_PER_S)
#define TS_MAX_US (EXPR_TS_MAX_S * US_PER_S + 999999)
#define DUR_MAX_US (EXPR_DUR_MAX_S * US_PER_S)

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

/* ---- text --------------------------------------------------------------- */

static int digits(const char *s, size_t n, size_t *pos, int count, int *out)
{
    int v = 0;
    for (int i = 0; i < count; i++) {
        if (*pos >= n || s[*pos] < '0' || s[*pos] > '9') return -1;
        v = v * 10 + (s[(*pos)++] - '0');
    }
    *out = v;
    return 0;
}

/* Returns 0, -1 (not RFC 3339), or -2 (well-formed but out of range). */
int expr__ts_parse(const char *s, size_t n, int64_t *us)
{
    size_t p = 0, ys = 0;
    int64_t year = 0;
    int mon, day, hh, mm, ss, oh = 0, om = 0;
    while (p < n && s[p] >= '0' && s[p] <= '9' && ys < 6) {
        year = year * 10 + (s[p++] - '0');
        ys++;
    }
    if (ys < 4 || p >= n || s[p++] != '-' || digits(s, n, &p, 2, &mon) || p >= n || s[p++] != '-' ||
        digits(s, n, &p, 2, &day) || p >= n || (s[p] != 'T' && s[p] != 't') || (++p, digits(s, n, &p, 2, &hh)) ||
        p >= n || s[p++] != ':' || digits(s, n, &p, 2, &mm) || p >= n || s[p++] != ':' || digits(s, n, &p, 2, &ss))
        return -1;
    int64_t frac = 0;
    if (p < n && s[p] == '.') {
        p++;
        int nd = 0;
        while (p < n && s[p] >= '0' && s[p] <= '9') {
            if (nd < 6) frac = frac * 10 + (s[p] - '0');
            nd++;
            p++;
        }
        if (nd == 0 || nd > 9) return -1;
        for (; nd < 6; nd++) frac *= 10;
    }
    int sign = 0;
    if (p < n && (s[p] == 'Z' || s[p] == 'z')) {
        p++;
    } else if (p < n && (s[p] == '+' || s[p] == '-')) {
        sign = s[p++] == '+' ? 1 : -1;
        if (digits(s, n, &p, 2, &oh) || p >= n || s[p++] != ':' || digits(s, n, &p, 2, &om) || oh > 23 || om > 59)
            return -1;
    } else {
        return -1;
    }
    if (p != n || mon < 1 || mon > 12 || day < 1 || hh > 23 || mm > 59 || ss > 59) return -1;
    static const unsigned char mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > mdays[mon - 1] || (mon == 2 && day == 29 && !leap)) return -1;
    int64_t secs = jd_days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 + hh * 3600 + mm * 60 + ss -
                   sign * (oh * 3600 + om * 60);
    if (year < 1 || secs < EXPR_TS_MIN_S || secs > EXPR_TS_MAX_S) return -2;
    *us = secs * US_PER_S + frac;
    return 0;
}

int expr__format_ts(int64_t us, char *out, size_t cap)
{
    int64_t secs = floor_div(us, US_PER_S), frac = us - secs * US_PER_S;
    int64_t days = floor_div(secs, 86400), sod = secs - days * 86400, y;
    unsigned m, d;
    jd_civil_from_days(days, &y, &m, &d);
    int len = snprintf(out, cap, "%04lld-%02u-%02uT%02d:%02d:%02d", (long long)y, m, d, (int)(sod / 3600),
                       (int)(sod / 60 % 60), (int)(sod % 60));
    if (frac && len > 0 && (size_t)len < cap) {
        char f[8];
        snprintf(f, sizeof f, "%06lld", (long long)frac);
        for (int i = 5; i > 0 && f[i] == '0'; i--) f[i] = '\0';
        len += snprintf(out + len, cap - (size_t)len, ".%s", f);
    }
    if (len > 0 && (size_t)len < cap) len += snprintf(out + len, cap - (size_t)len, "Z");
    return len;
}

int expr__format_dur(int64_t us, char *out, size_t cap)
{
    uint64_t a = us < 0 ? 0 - (uint64_t)us : (uint64_t)us;
    int len = snprintf(out, cap, "%s%llu", us < 0 ? "-" : "", (unsigned long long)(a / 1000000));
    if (a % 1000000 && len > 0 && (size_t)len < cap) {
        char f[8];
        snprintf(f, sizeof f, "%06llu", (unsigned long long)(a % 1000000));
        for (int i = 5; i > 0 && f[i] == '0'; i--) f[i] = '\0';
        len += snprintf(out + len, cap - (size_t)len, ".%s", f);
    }
    if (len > 0 && (size_t)len < cap) len += snprintf(out + len, cap - (size_t)len, "s");
    return len;
}

/* Go's time.ParseDuration syntax: [-+]? (number unit)+ or "0"; units h m s
 * ms us µs μs ns. Returns 0, -1 (malformed), -2 (out of range). */
int expr__dur_parse(const char *s, size_t n, int64_t *us)
{
    static const struct { const char *u; int64_t ns; } units[] = {
        { "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 }, { "\xce\xbcs", 1000 }, { "ms", 1000000 },
        { "s", 1000000000 }, { "m", INT64_C(60000000000) }, { "h", INT64_C(3600000000000) },
    };
    size_t p = 0;
    bool neg = false;
    if (p < n && (s[p] == '-' || s[p] == '+')) neg = s[p++] == '-';
    if (p == n) return -1;
    if (n - p == 1 && s[p] == '0') {
        *us = 0;
        return 0;
    }
    __int128 total = 0;
    const __int128 limit = (__int128)DUR_MAX_US * 1000;
    while (p < n) {
        __int128 whole = 0, frac = 0, scale = 1;
        size_t d0 = p;
        while (p < n && s[p] >= '0' && s[p] <= '9') {
            whole = whole * 10 + (s[p++] - '0');
            if (whole > limit) return -2;
        }
        bool any = p > d0;
        if (p < n && s[p] == '.') {
            p++;
            while (p < n && s[p] >= '0' && s[p] <= '9') {
                if (scale < INT64_C(1000000000000000000)) {
                    frac = frac * 10 + (s[p] - '0');
                    scale *= 10;
                }
                p++;
                any = true;
            }
        }
        if (!any) return -1;
        int64_t unit = 0;
        size_t ulen = 0;
        for (size_t i = 0; i < JD_ARRAY_LEN(units); i++) {
            size_t l = strlen(units[i].u);
            if (l > ulen && p + l <= n && memcmp(s + p, units[i].u, l) == 0) {
                unit = units[i].ns;
                ulen = l;
            }
        }
        if (!unit) return -1;
        p += ulen;
        total += whole * unit + frac * unit / scale;
        if (total > limit) return -2;
    }
    int64_t v = (int64_t)(total / 1000);
    *us = neg ? -v : v;
    return 0;
}

/* ---- conversions and arithmetic -------------------------------------------- */

#define IMPL(name) static void name(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out)

static void set_ts(expr__ctx *c, const expr_node *n, int64_t us, bool overflow, expr_val *out)
{
    if (overflow || us < TS_MIN_US || us > TS_MAX_US) return expr__fail(c, n, out, "timestamp out of range");
    memset(out, 0, sizeof *out);
    out->kind = EXPR_TIMESTAMP;
    out->v.i = us;
}

static void set_dur(expr__ctx *c, const expr_node *n, int64_t us, bool overflow, expr_val *out)
{
    if (overflow || us < -DUR_MAX_US || us > DUR_MAX_US) return expr__fail(c, n, out, "duration out of range");
    memset(out, 0, sizeof *out);
    out->kind = EXPR_DURATION;
    out->v.i = us;
}

static void set_int(expr_val *o, int64_t v) { memset(o, 0, sizeof *o); o->kind = EXPR_INT; o->v.i = v; }

void expr__add_ts_dur(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out)
{
    int64_t r;
    bool o = __builtin_add_overflow(a[0].v.i, a[1].v.i, &r);
    set_ts(c, n, r, o, out);
}
void expr__add_dur_ts(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out)
{
    int64_t r;
    bool o = __builtin_add_overflow(a[0].v.i, a[1].v.i, &r);
    set_ts(c, n, r, o, out);
}
void expr__add_dur_dur(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out)
{
    int64_t r;
    bool o = __builtin_add_overflow(a[0].v.i, a[1].v.i, &r);
    set_dur(c, n, r, o, out);
}
void expr__sub_ts_ts(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out)
{
    int64_t r;
    bool o = __builtin_sub_overflow(a[0].v.i, a[1].v.i, &r);
    const int64_t go_max_us = INT64_MAX / 1000;   /* invariant 4 */
    set_dur(c, n, r, o || r > go_max_us || r < -go_max_us, out);
}
void expr__sub_ts_dur(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out)
{
    int64_t r;
    bool o = __builtin_sub_overflow(a[0].v.i, a[1].v.i, &r);
    set_ts(c, n, r, o, out);
}
void expr__sub_dur_dur(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out)
{
    int64_t r;
    bool o = __builtin_sub_overflow(a[0].v.i, a[1].v.i, &r);
    set_dur(c, n, r, o, out);
}
void expr__neg_dur(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out)
{
    set_dur(c, n, -a[0].v.i, false, out);
}
void expr__int_of_ts(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out)
{
    (void)c; (void)n;
    set_int(out, floor_div(a[0].v.i, US_PER_S));   /* Go's Unix(): seconds, rounded down */
}

IMPL(ts_of_str)
{
    int64_t us;
    int rc = expr__ts_parse(a[0].v.s.p, a[0].v.s.n, &us);
    if (rc == -2) return expr__fail(c, n, out, "timestamp out of range");
    if (rc) return expr__fail(c, n, out, "cannot parse timestamp '%.*s' (want RFC 3339)",
                              (int)(a[0].v.s.n > 48 ? 48 : a[0].v.s.n), a[0].v.s.p);
    set_ts(c, n, us, false, out);
}
IMPL(ts_of_int)
{
    int64_t us;
    bool o = __builtin_mul_overflow(a[0].v.i, US_PER_S, &us);
    set_ts(c, n, us, o, out);
}
IMPL(dur_of_str)
{
    int64_t us;
    int rc = expr__dur_parse(a[0].v.s.p, a[0].v.s.n, &us);
    if (rc == -2) return expr__fail(c, n, out, "duration out of range");
    if (rc) return expr__fail(c, n, out, "cannot parse duration '%.*s'", (int)(a[0].v.s.n > 48 ? 48 : a[0].v.s.n),
                              a[0].v.s.p);
    set_dur(c, n, us, false, out);
}
IMPL(identity) { (void)c; (void)n; *out = a[0]; }

/* ---- calendar accessors (invariant 3) -------------------------------------- */

static bool local_of(expr__ctx *c, const expr_node *n, const expr_val *a, unsigned nargs, jd_local *L,
                     expr_val *out)
{
    const char *zone = c->a && c->a->default_tz ? c->a->default_tz : "UTC";
    if (nargs == 2) {
        zone = a[1].v.s.p;
        if (memchr(zone, '\0', a[1].v.s.n)) {
            expr__fail(c, n, out, "unknown time zone '%.*s'", (int)a[1].v.s.n, zone);
            return false;
        }
    }
    jd_err e;
    if (jd_tz_to_local(zone, a[0].v.i, L, &e) != JD_OK) {
        expr__fail(c, n, out, "%s", e.msg);
        return false;
    }
    return true;
}

enum { F_YEAR, F_MONTH, F_DATE, F_DOM, F_DOW, F_DOY, F_HOURS, F_MINUTES, F_SECONDS, F_MILLIS };

static void ts_field(expr__ctx *c, const expr_node *n, const expr_val *a, int field, expr_val *out)
{
    jd_local L;
    if (!local_of(c, n, a, n->n, &L, out)) return;
    const int v[] = { [F_YEAR] = L.year, [F_MONTH] = L.month - 1, [F_DATE] = L.day, [F_DOM] = L.day - 1,
                      [F_DOW] = L.weekday, [F_DOY] = L.yday, [F_HOURS] = L.hour, [F_MINUTES] = L.minute,
                      [F_SECONDS] = L.second, [F_MILLIS] = L.millis };
    set_int(out, v[field]);
}

IMPL(get_year) { ts_field(c, n, a, F_YEAR, out); }
IMPL(get_month) { ts_field(c, n, a, F_MONTH, out); }
IMPL(get_date) { ts_field(c, n, a, F_DATE, out); }
IMPL(get_dom) { ts_field(c, n, a, F_DOM, out); }
IMPL(get_dow) { ts_field(c, n, a, F_DOW, out); }
IMPL(get_doy) { ts_field(c, n, a, F_DOY, out); }
IMPL(get_hours) { ts_field(c, n, a, F_HOURS, out); }
IMPL(get_minutes) { ts_field(c, n, a, F_MINUTES, out); }
IMPL(get_seconds) { ts_field(c, n, a, F_SECONDS, out); }
IMPL(get_millis) { ts_field(c, n, a, F_MILLIS, out); }
/* On durations: whole hours/minutes/seconds in total, and the millisecond
 * component (0-999), as langdef.md and the conformance tests define them. */
IMPL(dur_hours) { (void)c; (void)n; set_int(out, a[0].v.i / (3600 * US_PER_S)); }
IMPL(dur_minutes) { (void)c; (void)n; set_int(out, a[0].v.i / (60 * US_PER_S)); }
IMPL(dur_seconds) { (void)c; (void)n; set_int(out, a[0].v.i / US_PER_S); }
IMPL(dur_millis) { (void)c; (void)n; set_int(out, a[0].v.i % US_PER_S / 1000); }

/* ---- journeyd's extensions -------------------------------------------------- */

/* Reads a variable straight from the activation (it need not appear in the
 * program), converting RFC 3339 text to a timestamp. */
static bool activation_ts(expr__ctx *c, const char *name, int64_t *us)
{
    expr_val v;
    if (!c->a || !c->a->resolve || c->a->resolve(c->a->self, name, &v) != JD_OK) return false;
    if (v.kind == EXPR_TIMESTAMP) {
        *us = v.v.i;
        return true;
    }
    return v.kind == EXPR_STRING && expr__ts_parse(v.v.s.p, v.v.s.n, us) == 0;
}

IMPL(days_since)
{
    int64_t now;
    if (!activation_ts(c, "now", &now)) return expr__fail(c, n, out, "days_since() needs the variable 'now'");
    int64_t diff;
    if (__builtin_sub_overflow(now, a[0].v.i, &diff)) return expr__fail(c, n, out, "duration out of range");
    set_int(out, diff / (86400 * US_PER_S));   /* whole days, truncated toward zero */
}

IMPL(local_hour)
{
    jd_local L;
    if (!local_of(c, n, a, 2, &L, out)) return;
    set_int(out, L.hour);
}

IMPL(in_segment)
{
    char name[256];
    if (a[0].v.s.n > sizeof name - 9 || memchr(a[0].v.s.p, '\0', a[0].v.s.n))
        return expr__fail(c, n, out, "invalid segment id");
    snprintf(name, sizeof name, "segment:%.*s", (int)a[0].v.s.n, a[0].v.s.p);
    expr_val v;
    if (!c->a || !c->a->resolve || c->a->resolve(c->a->self, name, &v) != JD_OK)
        return expr__fail(c, n, out, "no such segment '%.*s'", (int)a[0].v.s.n, a[0].v.s.p);
    if (v.kind != EXPR_BOOL) return expr__fail(c, n, out, "segment '%.*s' resolved to %s, want bool",
                                               (int)a[0].v.s.n, a[0].v.s.p, expr__type_name(&v));
    *out = v;
}

/* consented(channel[, topic]): asks the activation for "consent:<channel>" or
 * "consent:<channel>/<topic>" (the host answers with prof_consent_allows,
 * `journeyd eval` from its vars). The channel may not contain '/', so the
 * resolver can split the name at the first one. */
IMPL(consented)
{
    char name[320];
    const expr_val *ch = &a[0], *tp = n->n > 1 ? &a[1] : NULL;
    if (!ch->v.s.n || ch->v.s.n > 64 || memchr(ch->v.s.p, '/', ch->v.s.n) || memchr(ch->v.s.p, '\0', ch->v.s.n))
        return expr__fail(c, n, out, "invalid channel '%.*s': 1 to 64 bytes, no '/'", (int)(ch->v.s.n > 64 ? 64 : ch->v.s.n), ch->v.s.p);
    if (tp && (!tp->v.s.n || tp->v.s.n > 128 || memchr(tp->v.s.p, '\0', tp->v.s.n)))
        return expr__fail(c, n, out, "invalid topic: 1 to 128 bytes");
    if (tp) snprintf(name, sizeof name, "consent:%.*s/%.*s", (int)ch->v.s.n, ch->v.s.p, (int)tp->v.s.n, tp->v.s.p);
    else snprintf(name, sizeof name, "consent:%.*s", (int)ch->v.s.n, ch->v.s.p);
    expr_val v;
    if (!c->a || !c->a->resolve || c->a->resolve(c->a->self, name, &v) != JD_OK)
        return expr__fail(c, n, out, "consented() needs the variable '%s'", name);
    if (v.kind != EXPR_BOOL) return expr__fail(c, n, out, "'%s' resolved to %s, want bool", name, expr__type_name(&v));
    *out = v;
}

#define G1(a0, r, f) { S_GLOBAL, 1, { a0, 0, 0 }, r, R_FIXED, f }
#define ACCESSOR(name, f) \
    const expr__ovl name[] = { { S_RECV, 1, { EXPR_TIMESTAMP, 0, 0 }, EXPR_INT, R_FIXED, f }, \
                               { S_RECV, 2, { EXPR_TIMESTAMP, EXPR_STRING, 0 }, EXPR_INT, R_FIXED, f },
#define END { 0, 0, { 0, 0, 0 }, 0, 0, NULL }
#define DUR_ACCESSOR(f) { S_RECV, 1, { EXPR_DURATION, 0, 0 }, EXPR_INT, R_FIXED, f },

const expr__ovl expr__ovl_timestamp[] = {
    G1(EXPR_STRING, EXPR_TIMESTAMP, ts_of_str), G1(EXPR_TIMESTAMP, EXPR_TIMESTAMP, identity),
    G1(EXPR_INT, EXPR_TIMESTAMP, ts_of_int), END,
};
const expr__ovl expr__ovl_duration[] = {
    G1(EXPR_STRING, EXPR_DURATION, dur_of_str), G1(EXPR_DURATION, EXPR_DURATION, identity), END,
};
ACCESSOR(expr__ovl_full_year, get_year) END };
ACCESSOR(expr__ovl_month, get_month) END };
ACCESSOR(expr__ovl_date, get_date) END };
ACCESSOR(expr__ovl_day_of_month, get_dom) END };
ACCESSOR(expr__ovl_day_of_week, get_dow) END };
ACCESSOR(expr__ovl_day_of_year, get_doy) END };
ACCESSOR(expr__ovl_hours, get_hours) DUR_ACCESSOR(dur_hours) END };
ACCESSOR(expr__ovl_minutes, get_minutes) DUR_ACCESSOR(dur_minutes) END };
ACCESSOR(expr__ovl_seconds, get_seconds) DUR_ACCESSOR(dur_seconds) END };
ACCESSOR(expr__ovl_millis, get_millis) DUR_ACCESSOR(dur_millis) END };
const expr__ovl expr__ovl_days_since[] = { G1(EXPR_TIMESTAMP, EXPR_INT, days_since), END };
const expr__ovl expr__ovl_local_hour[] = {
    { S_GLOBAL, 2, { EXPR_TIMESTAMP, EXPR_STRING, 0 }, EXPR_INT, R_FIXED, local_hour }, END,
};
const expr__ovl expr__ovl_in_segment[] = { G1(EXPR_STRING, EXPR_BOOL, in_segment), END };
const expr__ovl expr__ovl_consented[] = {
    G1(EXPR_STRING, EXPR_BOOL, consented),
    { S_GLOBAL, 2, { EXPR_STRING, EXPR_STRING, 0 }, EXPR_BOOL, R_FIXED, consented }, END,
};
