/* src/template/date.c -- the `date` filter: Liquid's input rules and Ruby's strftime.
 *
 * Invariants:
 *  (1) Inputs (Liquid's Utils.to_date): "now" and "today" (any case) are the
 *      render's time, tpl_render_opts.now_us, never the wall clock (without it
 *      they are an error); an integer or a string of digits is Unix seconds;
 *      RFC 3339 / ISO 8601 text is parsed keeping its offset, as Ruby's
 *      Time.parse does; anything else is returned unchanged, as is any input
 *      when the format is empty.
 *  (2) Times without an offset are UTC (a Ruby server's local zone; journeyd
 *      has no local zone).
 *  (3) Unknown directives are copied as they are (Ruby does the same).
 */
#include <stdio.h>
#include <stdlib.h>

#include "tpl_int.h"

static const char *const months[] = { "January", "February", "March", "April", "May", "June", "July",
                                      "August", "September", "October", "November", "December" };
static const char *const days[] = { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" };

static int digits(const char *s, size_t n, size_t *i, int count, int *out)
{
    int v = 0;
    for (int k = 0; k < count; k++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9') return 0;
        v = v * 10 + (s[(*i)++] - '0');
    }
    *out = v;
    return 1;
}

bool tpl__parse_time(const char *s, size_t n, int64_t *secs, int32_t *usec, int32_t *off_s, bool *utc)
{
    size_t i = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0, us = 0, off = 0;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    if (!digits(s, n, &i, 4, &y) || i >= n || s[i++] != '-' || !digits(s, n, &i, 2, &mo) || i >= n || s[i++] != '-' ||
        !digits(s, n, &i, 2, &d))
        return false;
    bool zone_utc = true;
    if (i < n) {
        if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return false;
        i++;
        if (!digits(s, n, &i, 2, &h) || i >= n || s[i++] != ':' || !digits(s, n, &i, 2, &mi)) return false;
        if (i < n && s[i] == ':') {
            i++;
            if (!digits(s, n, &i, 2, &sec)) return false;
            if (i < n && (s[i] == '.' || s[i] == ',')) {
                i++;
                int nd = 0;
                while (i < n && s[i] >= '0' && s[i] <= '9') {
                    if (nd < 6) us = us * 10 + (s[i] - '0');
                    nd++;
                    i++;
                }
                if (nd == 0) return false;
                for (; nd < 6; nd++) us *= 10;
            }
        }
        while (i < n && s[i] == ' ') i++;
        if (i < n) {
            if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) i++;
            else if (n - i == 3 && memcmp(s + i, "UTC", 3) == 0) i += 3;
            else if (s[i] == '+' || s[i] == '-') {
                int sign = s[i++] == '-' ? -1 : 1, oh, om = 0;
                if (!digits(s, n, &i, 2, &oh)) return false;
                if (i < n && s[i] == ':') i++;
                if (i < n && !digits(s, n, &i, 2, &om)) return false;
                if (oh > 23 || om > 59) return false;
                off = sign * (oh * 3600 + om * 60);
                zone_utc = false;
            } else return false;
            if (i != n) return false;
        }
    }
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60) return false;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return false;
    int64_t day = jd_days_from_civil(y, (unsigned)mo, (unsigned)d);
    *secs = day * 86400 + h * 3600 + mi * 60 + sec - off;
    *usec = us;
    *off_s = off;
    *utc = zone_utc;
    return true;
}

typedef struct tm_parts {
    int64_t y, epoch;
    int mon, mday, yday, wday, hour, min, sec, usec, off;
    bool utc;
} tm_parts;

static void breakdown(int64_t secs, int32_t usec, int32_t off, bool utc, tm_parts *t)
{
    int64_t local = secs + off;
    int64_t dd = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    int64_t sod = local - dd * 86400;
    unsigned m, d;
    jd_civil_from_days(dd, &t->y, &m, &d);
    t->mon = (int)m;
    t->mday = (int)d;
    t->yday = (int)(dd - jd_days_from_civil(t->y, 1, 1)) + 1;
    t->wday = (int)(((dd + 4) % 7 + 7) % 7);
    t->hour = (int)(sod / 3600);
    t->min = (int)(sod / 60 % 60);
    t->sec = (int)(sod % 60);
    t->usec = usec;
    t->off = off;
    t->utc = utc;
    t->epoch = secs;
}

static int year_len(int64_t y) { return ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0) ? 366 : 365; }

/* ISO 8601 week number and week-based year: the week of its Thursday. */
static int iso_week(const tm_parts *t, int64_t *year)
{
    int wd = (t->wday + 6) % 7;   /* Monday 0 */
    int thu = t->yday - wd + 3;
    *year = t->y;
    if (thu < 1) { *year = t->y - 1; thu += year_len(*year); }
    else if (thu > year_len(t->y)) { thu -= year_len(t->y); *year = t->y + 1; }
    return (thu - 1) / 7 + 1;
}

typedef struct obuf { char *s; size_t n, cap; } obuf;

static void put(obuf *o, const char *p, size_t n)
{
    if (o->n + n > o->cap) n = o->cap - o->n;
    memcpy(o->s + o->n, p, n);
    o->n += n;
}

static void put_num(obuf *o, int64_t v, int width, char pad, char flag, int fw)
{
    char buf[48];
    if (flag == '-') width = 0;
    else if (flag == '_') pad = ' ';
    else if (flag == '0') pad = '0';
    if (fw > 0) width = fw;
    bool neg = v < 0;
    uint64_t u = neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    int len = snprintf(buf, sizeof buf, "%llu", (unsigned long long)u);
    int total = len + (neg ? 1 : 0);
    if (neg && pad == '0') put(o, "-", 1);
    for (int i = total; i < width; i++) put(o, &pad, 1);
    if (neg && pad != '0') put(o, "-", 1);
    put(o, buf, (size_t)len);
}

static void put_str(obuf *o, const char *s, size_t n, char flag, bool upper, int fw)
{
    for (int i = (int)n; i < fw; i++) put(o, flag == '0' ? "0" : " ", 1);
    if (!upper && flag != '^' && flag != '#') { put(o, s, n); return; }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 32);
        else if (flag == '#' && c >= 'A' && c <= 'Z') c = (char)(c + 32);
        put(o, &c, 1);
    }
}

static void strftime_rb(obuf *o, const char *f, size_t fn, const tm_parts *t, int depth)
{
    for (size_t i = 0; i < fn; i++) {
        if (f[i] != '%' || i + 1 >= fn) { put(o, f + i, 1); continue; }
        size_t start = i++;
        char flag = 0;
        while (i < fn && strchr("-_0^#", f[i]) && f[i]) flag = f[i++];
        int fw = 0;
        while (i < fn && f[i] >= '0' && f[i] <= '9' && fw < 100) fw = fw * 10 + (f[i++] - '0');
        if (fw > 64) fw = 64;
        bool colon = false;
        if (i < fn && f[i] == ':') { colon = true; i++; }
        if (i >= fn) { put(o, f + start, fn - start); return; }
        char c = f[i];
        int h12 = t->hour % 12 == 0 ? 12 : t->hour % 12;
        const char *sub = NULL;
        switch (c) {
        case 'Y': put_num(o, t->y, 0, '0', flag, fw); break;
        case 'C': put_num(o, t->y / 100, 2, '0', flag, fw); break;
        case 'y': put_num(o, t->y % 100, 2, '0', flag, fw); break;
        case 'm': put_num(o, t->mon, 2, '0', flag, fw); break;
        case 'd': put_num(o, t->mday, 2, '0', flag, fw); break;
        case 'e': put_num(o, t->mday, 2, ' ', flag, fw); break;
        case 'j': put_num(o, t->yday, 3, '0', flag, fw); break;
        case 'H': put_num(o, t->hour, 2, '0', flag, fw); break;
        case 'k': put_num(o, t->hour, 2, ' ', flag, fw); break;
        case 'I': put_num(o, h12, 2, '0', flag, fw); break;
        case 'l': put_num(o, h12, 2, ' ', flag, fw); break;
        case 'M': put_num(o, t->min, 2, '0', flag, fw); break;
        case 'S': put_num(o, t->sec, 2, '0', flag, fw); break;
        case 'L': put_num(o, t->usec / 1000, 3, '0', 0, 0); break;
        case 'N': {
            char ns[16];
            snprintf(ns, sizeof ns, "%06d000", t->usec);
            put(o, ns, (size_t)(fw > 0 && fw < 9 ? fw : 9));
            break;
        }
        case 'u': put_num(o, t->wday == 0 ? 7 : t->wday, 1, '0', flag, fw); break;
        case 'w': put_num(o, t->wday, 1, '0', flag, fw); break;
        case 's': put_num(o, t->epoch, 1, '0', flag, fw); break;
        case 'U': put_num(o, (t->yday - 1 - t->wday + 7) / 7, 2, '0', flag, fw); break;
        case 'W': put_num(o, (t->yday - 1 - (t->wday + 6) % 7 + 7) / 7, 2, '0', flag, fw); break;
        case 'V': { int64_t gy; put_num(o, iso_week(t, &gy), 2, '0', flag, fw); break; }
        case 'G': { int64_t gy; iso_week(t, &gy); put_num(o, gy, 0, '0', flag, fw); break; }
        case 'g': { int64_t gy; iso_week(t, &gy); put_num(o, gy % 100, 2, '0', flag, fw); break; }
        case 'B': put_str(o, months[t->mon - 1], strlen(months[t->mon - 1]), flag, false, fw); break;
        case 'b':
        case 'h': put_str(o, months[t->mon - 1], 3, flag, false, fw); break;
        case 'A': put_str(o, days[t->wday], strlen(days[t->wday]), flag, false, fw); break;
        case 'a': put_str(o, days[t->wday], 3, flag, false, fw); break;
        case 'p': put_str(o, t->hour < 12 ? "AM" : "PM", 2, flag == '#' ? 0 : flag, false, fw);
                  if (flag == '#') { o->n -= 2; put(o, t->hour < 12 ? "am" : "pm", 2); }
                  break;
        case 'P': put_str(o, t->hour < 12 ? "am" : "pm", 2, flag, false, fw); break;
        case 'Z': if (t->utc) put_str(o, "UTC", 3, flag, false, fw); break;
        case 'z': {
            int a = t->off < 0 ? -t->off : t->off;
            char z[16];
            snprintf(z, sizeof z, colon ? "%c%02d:%02d" : "%c%02d%02d", t->off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
            put(o, z, strlen(z));
            break;
        }
        case 'n': put(o, "\n", 1); break;
        case 't': put(o, "\t", 1); break;
        case '%': put(o, "%", 1); break;
        case 'c': sub = "%a %b %e %H:%M:%S %Y"; break;
        case 'D': case 'x': sub = "%m/%d/%y"; break;
        case 'F': sub = "%Y-%m-%d"; break;
        case 'T': case 'X': sub = "%H:%M:%S"; break;
        case 'R': sub = "%H:%M"; break;
        case 'r': sub = "%I:%M:%S %p"; break;
        case 'v': sub = "%e-%^b-%4Y"; break;
        case '+': sub = "%a %b %e %H:%M:%S %Z %Y"; break;
        default: put(o, f + start, i + 1 - start); break;
        }
        if (sub && depth == 0) strftime_rb(o, sub, strlen(sub), t, 1);
    }
}

static bool lower_eq(const char *p, size_t n, const char *w)
{
    if (strlen(w) != n) return false;
    for (size_t i = 0; i < n; i++)
        if ((p[i] | 0x20) != w[i]) return false;
    return true;
}

int tpl__date(rctx *r, const xfilter *f, const tv *in, const tv *fmt, tv *out)
{
    const char *fp;
    size_t fn;
    int rc = tpl__to_s(r, fmt, &fp, &fn, f->line, f->col);
    if (rc != JD_OK) return rc;
    *out = *in;
    if (fn == 0) return JD_OK;
    int64_t secs;
    int32_t usec = 0, off = 0;
    bool utc = true;
    if (in->k == TV_INT) {
        secs = in->u.i;
    } else if (in->k == TV_STR && in->u.s.n) {
        const char *s = in->u.s.p;
        size_t n = in->u.s.n, k = 0;
        while (k < n && s[k] >= '0' && s[k] <= '9') k++;
        if (lower_eq(s, n, "now") || lower_eq(s, n, "today")) {
            if (!r->o->has_now)
                return tpl__fail(r, f->line, f->col, JD_EINVAL,
                                 "date: \"%.*s\" needs the render time (tpl_render_opts.now_us, render --now)", (int)n, s);
            int64_t us = r->o->now_us;
            secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
            usec = (int32_t)(us - secs * 1000000);
        } else if (k == n && n < 19) {
            secs = strtoll(s, NULL, 10);
        } else if (!tpl__parse_time(s, n, &secs, &usec, &off, &utc)) {
            return JD_OK;   /* Ruby returns what it cannot read as a date */
        }
    } else {
        return JD_OK;
    }
    /* years outside 0..9999 are not something a message prints */
    if (secs < -62167219200LL || secs > 253402300799LL) return JD_OK;
    tm_parts t;
    breakdown(secs, usec, off, utc, &t);
    size_t cap = fn * 72 + 16;
    char *buf = tpl__scratch(r, cap + 1, f->line, f->col);
    if (!buf) return JD_ELIMIT;
    obuf o = { buf, 0, cap };
    strftime_rb(&o, fp, fn, &t, 0);
    buf[o.n] = 0;
    *out = tv_str(buf, o.n);
    return JD_OK;
}
