/* src/template/filters.c -- Liquid's standard filters, one function a row of
 * filters[] (sorted by name), with Shopify's Ruby semantics.
 *
 * Invariants:
 *  (1) Arithmetic follows Liquid's Utils.to_number: strings like "3.5" are
 *      floats, other strings go through Ruby's to_i ("12abc" is 12, "abc" 0),
 *      nil and booleans are 0. Integer op integer stays integer (divided_by
 *      floors, as Ruby's Integer#/); with a float on either side Liquid uses
 *      BigDecimal, so 0.1 + 0.2 is 0.3: we compute on the shortest decimal
 *      text of each double, exactly while it fits in 128 bits, then read the
 *      decimal result back as a double (Ruby's to_f).
 *  (2) Division or modulo by zero and integer overflow are render errors, at
 *      the filter's line:col (Ruby's lax mode would print "Liquid error").
 *  (3) String filters count characters, not bytes (truncate, slice, size);
 *      upcase/downcase/capitalize map code points with ICU's simple mappings.
 *  (4) Results are carved from the render's scratch; inputs are never changed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unicode/uchar.h>
#include <unicode/utf8.h>

#include "tpl_int.h"

#define POS f->line, f->col
#define TO_S(v, p, n) do { int rc_ = tpl__to_s(r, (v), &(p), &(n), POS); if (rc_ != JD_OK) return rc_; } while (0)

static char *mk(rctx *r, const xfilter *f, size_t n) { return tpl__scratch(r, n + 1, POS); }

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == 0; }

/* ---- numbers ------------------------------------------------------------------ */

static tv to_number(const tv *v)
{
    switch (v->k) {
    case TV_INT:
    case TV_FLOAT: return *v;
    case TV_STR: {
        const char *p = v->u.s.p, *e = p + v->u.s.n;
        while (p < e && is_space(*p)) p++;
        while (e > p && is_space(e[-1])) e--;
        const char *q = p;
        if (q < e && *q == '-') q++;
        const char *d0 = q;
        while (q < e && *q >= '0' && *q <= '9') q++;
        char buf[64];
        size_t n = (size_t)(e - p) < sizeof buf - 1 ? (size_t)(e - p) : sizeof buf - 1;
        memcpy(buf, p, n);
        buf[n] = 0;
        if (q > d0 && q + 1 < e && *q == '.') {
            const char *f0 = ++q;
            while (q < e && *q >= '0' && *q <= '9') q++;
            if (q == e && q > f0) return tv_float(strtod(buf, NULL));
        }
        /* Ruby's String#to_i: optional sign, digits, stop at the first other byte */
        return tv_int(strtoll(buf, NULL, 10));
    }
    default: return tv_int(0);
    }
}

static double dbl(const tv *v) { return v->k == TV_INT ? (double)v->u.i : v->u.d; }

/* Liquid's Utils.to_integer for arguments: integers, floats (truncated),
 * strings holding an integer; anything else is "invalid integer". */
static int to_integer(rctx *r, const xfilter *f, const tv *v, int64_t *out)
{
    if (v->k == TV_INT) { *out = v->u.i; return JD_OK; }
    if (v->k == TV_FLOAT && isfinite(v->u.d) && fabs(v->u.d) < 9e18) { *out = (int64_t)v->u.d; return JD_OK; }
    if (v->k == TV_STR) {
        char buf[32];
        const char *p = v->u.s.p, *e = p + v->u.s.n;
        while (p < e && is_space(*p)) p++;
        while (e > p && is_space(e[-1])) e--;
        size_t n = (size_t)(e - p);
        if (n && n < sizeof buf) {
            memcpy(buf, p, n);
            buf[n] = 0;
            char *end;
            long long x = strtoll(buf, &end, 10);
            if (*end == 0 && (buf[0] == '-' || buf[0] == '+' || (buf[0] >= '0' && buf[0] <= '9'))) { *out = x; return JD_OK; }
        }
    }
    return tpl__fail(r, POS, JD_EINVAL, "filter '%s': invalid integer", f->def->name);
}

/* Exact decimals: value = m / 10^s. */
typedef struct dec { __int128 m; int s; } dec;

static const __int128 P10_36 = (__int128)1000000000000000000 * 1000000000000000000;

static bool to_dec(const tv *v, dec *out)
{
    if (v->k == TV_INT) { out->m = v->u.i; out->s = 0; return true; }
    double d = v->u.d;
    if (!isfinite(d)) return false;
    if (d == 0) { out->m = 0; out->s = 0; return true; }
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, d);
        if (strtod(e, NULL) == d) break;
    }
    __int128 m = 0;
    int nd = 0;
    const char *q = e;
    bool neg = *q == '-';
    if (neg) q++;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') { m = m * 10 + (*q - '0'); nd++; }
    int x = atoi(q + 1);
    int s = (nd - 1) - x;
    if (s > 30 || s < -18) return false;
    for (; s < 0; s++) m *= 10;
    out->m = neg ? -m : m;
    out->s = s;
    return true;
}

static __int128 p10(int k) { __int128 v = 1; while (k-- > 0) v *= 10; return v; }

static bool dec_align(dec *a, dec *b)
{
    while (a->s < b->s) { if (a->m > P10_36 / 10 || a->m < -P10_36 / 10) return false; a->m *= 10; a->s++; }
    while (b->s < a->s) { if (b->m > P10_36 / 10 || b->m < -P10_36 / 10) return false; b->m *= 10; b->s++; }
    return true;
}

static double dec_double(dec v)
{
    char digits[48];
    int n = 0;
    __int128 m = v.m < 0 ? -v.m : v.m;
    do { digits[n++] = (char)('0' + (int)(m % 10)); m /= 10; } while (m);
    char text[64];
    int o = 0;
    if (v.m < 0) text[o++] = '-';
    while (n) text[o++] = digits[--n];
    o += snprintf(text + o, sizeof text - (size_t)o, "e%d", -v.s);
    return strtod(text, NULL);
}

static int arith(rctx *r, const xfilter *f, const tv *in, const tv *arg, char op, tv *out)
{
    tv a = to_number(in), b = to_number(arg);
    if (a.k == TV_INT && b.k == TV_INT) {
        int64_t x = a.u.i, y = b.u.i, z = 0;
        bool ovf = false;
        switch (op) {
        case '+': ovf = __builtin_add_overflow(x, y, &z); break;
        case '-': ovf = __builtin_sub_overflow(x, y, &z); break;
        case '*': ovf = __builtin_mul_overflow(x, y, &z); break;
        case '/':
        case '%':
            if (y == 0) return tpl__fail(r, POS, JD_EINVAL, "divided by 0");
            if (x == INT64_MIN && y == -1) { ovf = true; break; }
            z = op == '/' ? x / y : x % y;
            /* Ruby floors: -7 / 2 is -4 and -7 % 2 is 1 */
            if (op == '/' && (x % y != 0) && ((x < 0) != (y < 0))) z--;
            if (op == '%' && z != 0 && ((z < 0) != (y < 0))) z += y;
            break;
        }
        if (ovf) return tpl__fail(r, POS, JD_EINVAL, "integer overflow in '%s'", f->def->name);
        *out = tv_int(z);
        return JD_OK;
    }
    double x = dbl(&a), y = dbl(&b);
    if ((op == '/' || op == '%') && y == 0) return tpl__fail(r, POS, JD_EINVAL, "divided by 0");
    dec p, q;
    if (op != '/' && to_dec(&a, &p) && to_dec(&b, &q)) {
        dec z = { 0, 0 };
        bool ok = true;
        if (op == '*') {
            ok = p.s + q.s <= 60 && (p.m < ((__int128)1 << 62) && p.m > -((__int128)1 << 62)) &&
                 (q.m < ((__int128)1 << 62) && q.m > -((__int128)1 << 62));
            z.m = p.m * q.m;
            z.s = p.s + q.s;
        } else if ((ok = dec_align(&p, &q))) {
            z.s = p.s;
            if (op == '+') z.m = p.m + q.m;
            else if (op == '-') z.m = p.m - q.m;
            else {
                z.m = p.m % q.m;
                if (z.m != 0 && ((z.m < 0) != (q.m < 0))) z.m += q.m;
            }
        }
        if (ok) { *out = tv_float(dec_double(z)); return JD_OK; }
    }
    double z;
    switch (op) {
    case '+': z = x + y; break;
    case '-': z = x - y; break;
    case '*': z = x * y; break;
    case '/': z = x / y; break;
    default: z = x - y * floor(x / y); break;
    }
    *out = tv_float(z);
    return JD_OK;
}

static int f_plus(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)kw; return arith(r, f, in, &a[0], '+', out); }
static int f_minus(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)kw; return arith(r, f, in, &a[0], '-', out); }
static int f_times(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)kw; return arith(r, f, in, &a[0], '*', out); }
static int f_divided_by(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)kw; return arith(r, f, in, &a[0], '/', out); }
static int f_modulo(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)kw; return arith(r, f, in, &a[0], '%', out); }

/* Half away from zero, as BigDecimal's default ROUND_HALF_UP. */
static int f_round(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)kw;
    tv x = to_number(in);
    int64_t nd = 0;
    if (f->nargs) {
        tv n = to_number(&a[0]);
        nd = n.k == TV_INT ? n.u.i : (int64_t)n.u.d;
    }
    if (x.k == TV_INT && nd >= 0) { *out = x; return JD_OK; }
    dec d;
    if (nd > 30 || nd < -18 || !to_dec(&x, &d)) {
        double v = x.k == TV_INT ? (double)x.u.i : x.u.d;
        *out = nd == 0 && isfinite(v) && fabs(v) < 9e18 ? tv_int((int64_t)round(v)) : tv_float(v);
        return JD_OK;
    }
    if (d.s > nd) {
        __int128 q = p10((int)(d.s - nd)), m = d.m < 0 ? -d.m : d.m;
        m = (m + q / 2) / q;
        d.m = d.m < 0 ? -m : m;
        d.s = (int)nd;
    }
    if (nd <= 0) {
        __int128 m = d.m;
        for (int s = d.s; s < 0; s++) m *= 10;
        if (m > INT64_MAX || m < INT64_MIN) return tpl__fail(r, POS, JD_EINVAL, "integer overflow in 'round'");
        *out = tv_int((int64_t)m);
        return JD_OK;
    }
    *out = tv_float(dec_double(d));
    return JD_OK;
}

static int int_of_double(rctx *r, const xfilter *f, double v, tv *out)
{
    if (!isfinite(v) || fabs(v) >= 9.2e18) return tpl__fail(r, POS, JD_EINVAL, "integer overflow in '%s'", f->def->name);
    *out = tv_int((int64_t)v);
    return JD_OK;
}

static int f_ceil(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)a; (void)kw;
    tv x = to_number(in);
    if (x.k == TV_INT) { *out = x; return JD_OK; }
    return int_of_double(r, f, ceil(x.u.d), out);
}

static int f_floor(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)a; (void)kw;
    tv x = to_number(in);
    if (x.k == TV_INT) { *out = x; return JD_OK; }
    return int_of_double(r, f, floor(x.u.d), out);
}

static int f_abs(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)a; (void)kw;
    tv x = to_number(in);
    if (x.k == TV_INT) {
        if (x.u.i == INT64_MIN) return tpl__fail(r, POS, JD_EINVAL, "integer overflow in 'abs'");
        *out = tv_int(x.u.i < 0 ? -x.u.i : x.u.i);
    } else {
        *out = tv_float(fabs(x.u.d));
    }
    return JD_OK;
}

static int minmax(const tv *in, const tv *arg, bool least, tv *out)
{
    tv x = to_number(in), y = to_number(arg);
    bool take = least ? dbl(&y) > dbl(&x) : dbl(&y) < dbl(&x);
    *out = take ? y : x;
    return JD_OK;
}
static int f_at_least(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)r; (void)f; (void)kw; return minmax(in, &a[0], true, out); }
static int f_at_most(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)r; (void)f; (void)kw; return minmax(in, &a[0], false, out); }

/* ---- strings ---------------------------------------------------------------------- */

typedef enum { CASE_UP, CASE_DOWN, CASE_CAP } case_mode;

static int change_case(rctx *r, const xfilter *f, const tv *in, case_mode mode, tv *out)
{
    const char *p;
    size_t n;
    TO_S(in, p, n);
    char *s = mk(r, f, 2 * n + 4);
    if (!s) return JD_ELIMIT;
    size_t o = 0;
    int32_t i = 0, len = (int32_t)(n > INT32_MAX ? INT32_MAX : n);
    bool first = true;
    while (i < len) {
        int32_t at = i;
        UChar32 c;
        U8_NEXT(p, i, len, c);
        if (c < 0) {   /* not UTF-8: copy the bytes as they are */
            memcpy(s + o, p + at, (size_t)(i - at));
            o += (size_t)(i - at);
            first = false;
            continue;
        }
        UChar32 m = mode == CASE_UP || (mode == CASE_CAP && first) ? u_toupper(c) : u_tolower(c);
        first = false;
        UBool err = 0;
        int32_t w = (int32_t)o;
        U8_APPEND((uint8_t *)s, w, (int32_t)(2 * n + 4), m, err);
        if (err) return tpl__fail(r, POS, JD_EINVAL, "filter '%s': cannot encode a character", f->def->name);
        o = (size_t)w;
    }
    s[o] = 0;
    *out = tv_str(s, o);
    return JD_OK;
}

static int f_upcase(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)a; (void)kw; return change_case(r, f, in, CASE_UP, out); }
static int f_downcase(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)a; (void)kw; return change_case(r, f, in, CASE_DOWN, out); }
static int f_capitalize(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)a; (void)kw; return change_case(r, f, in, CASE_CAP, out); }

static int escape_html(rctx *r, const xfilter *f, const tv *in, bool once, tv *out)
{
    if (in->k == TV_NIL) { *out = tv_nil(); return JD_OK; }
    const char *p;
    size_t n;
    TO_S(in, p, n);
    char *s = mk(r, f, 6 * n);
    if (!s) return JD_ELIMIT;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (p[i]) {
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        case '&':
            rep = "&amp;";
            if (once) {   /* leave &name; and &#123; alone */
                size_t j = i + 1;
                if (j < n && p[j] == '#') { j++; while (j < n && p[j] >= '0' && p[j] <= '9') j++; if (j == i + 2) j = n; }
                else { while (j < n && ((p[j] | 0x20) >= 'a' && (p[j] | 0x20) <= 'z')) j++; if (j == i + 1) j = n; }
                if (j < n && p[j] == ';') rep = NULL;
            }
            break;
        }
        if (rep) { size_t k = strlen(rep); memcpy(s + o, rep, k); o += k; }
        else s[o++] = p[i];
    }
    s[o] = 0;
    *out = tv_str(s, o);
    out->safe = 1;
    return JD_OK;
}

static int f_escape(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)a; (void)kw; return escape_html(r, f, in, false, out); }
static int f_escape_once(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)a; (void)kw; return escape_html(r, f, in, true, out); }

/* CGI.escape: letters, digits and _.-~ stay; space is '+'; the rest %XX. */
static int f_url_encode(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)a; (void)kw;
    if (in->k == TV_NIL) { *out = tv_nil(); return JD_OK; }
    const char *p;
    size_t n;
    TO_S(in, p, n);
    char *s = mk(r, f, 3 * n);
    if (!s) return JD_ELIMIT;
    size_t o = 0;
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-' || c == '~')
            s[o++] = (char)c;
        else if (c == ' ')
            s[o++] = '+';
        else { s[o++] = '%'; s[o++] = hex[c >> 4]; s[o++] = hex[c & 15]; }
    }
    s[o] = 0;
    *out = tv_str(s, o);
    return JD_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
    return -1;
}

static int f_url_decode(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)a; (void)kw;
    if (in->k == TV_NIL) { *out = tv_nil(); return JD_OK; }
    const char *p;
    size_t n;
    TO_S(in, p, n);
    char *s = mk(r, f, n);
    if (!s) return JD_ELIMIT;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '+') s[o++] = ' ';
        else if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
            s[o++] = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
            i += 2;
        } else s[o++] = p[i];
    }
    s[o] = 0;
    *out = tv_str(s, o);
    return JD_OK;
}

/* Byte offset of the k-th character (or n). */
static size_t char_off(const char *p, size_t n, size_t k)
{
    size_t i = 0;
    for (; i < n; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80) { if (k == 0) return i; k--; }
    return n;
}

static int concat3(rctx *r, const xfilter *f, const char *a, size_t an, const char *b, size_t bn, tv *out)
{
    char *s = mk(r, f, an + bn);
    if (!s) return JD_ELIMIT;
    memcpy(s, a, an);
    memcpy(s + an, b, bn);
    s[an + bn] = 0;
    *out = tv_str(s, an + bn);
    return JD_OK;
}

static int f_truncate(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)kw;
    if (in->k == TV_NIL) { *out = tv_nil(); return JD_OK; }
    const char *p, *t = "...";
    size_t n, tn = 3;
    int64_t len = 50;
    TO_S(in, p, n);
    if (f->nargs >= 1) { int rc = to_integer(r, f, &a[0], &len); if (rc != JD_OK) return rc; }
    if (f->nargs >= 2) TO_S(&a[1], t, tn);
    int64_t l = len - (int64_t)tpl__utf8_len(t, tn);
    if (l < 0) l = 0;
    if ((int64_t)tpl__utf8_len(p, n) <= len) { *out = *in; if (in->k != TV_STR) *out = tv_str(p, n); return JD_OK; }
    return concat3(r, f, p, char_off(p, n, (size_t)l), t, tn, out);
}

static int f_truncatewords(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)kw;
    if (in->k == TV_NIL) { *out = tv_nil(); return JD_OK; }
    const char *p, *t = "...";
    size_t n, tn = 3;
    int64_t words = 15;
    TO_S(in, p, n);
    if (f->nargs >= 1) { int rc = to_integer(r, f, &a[0], &words); if (rc != JD_OK) return rc; }
    if (f->nargs >= 2) TO_S(&a[1], t, tn);
    if (words <= 0) words = 1;
    /* words separated by whitespace runs, joined back with one space */
    size_t i = 0, cnt = 0;
    while (i < n && is_space(p[i]) && p[i]) i++;
    size_t need = 0, scan = i;
    while (scan < n && cnt < (size_t)words) {
        while (scan < n && !(is_space(p[scan]) && p[scan])) scan++;
        cnt++;
        while (scan < n && is_space(p[scan]) && p[scan]) scan++;
    }
    if (scan >= n) { *out = tv_str(p, n); return JD_OK; }
    need = scan - i + tn;
    char *s = mk(r, f, need);
    if (!s) return JD_ELIMIT;
    size_t o = 0;
    bool sep = false;
    for (size_t k = i; k < scan; k++) {
        if (is_space(p[k]) && p[k]) { sep = true; continue; }
        if (sep && o) s[o++] = ' ';
        sep = false;
        s[o++] = p[k];
    }
    memcpy(s + o, t, tn);
    o += tn;
    s[o] = 0;
    *out = tv_str(s, o);
    return JD_OK;
}

static int f_append(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)kw;
    const char *p, *q;
    size_t n, m;
    TO_S(in, p, n);
    TO_S(&a[0], q, m);
    return concat3(r, f, p, n, q, m, out);
}

static int f_prepend(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)kw;
    const char *p, *q;
    size_t n, m;
    TO_S(in, p, n);
    TO_S(&a[0], q, m);
    return concat3(r, f, q, m, p, n, out);
}

/* gsub/sub with a plain string; an empty pattern matches between characters. */
static int replace_impl(rctx *r, const xfilter *f, const tv *in, const tv *pat, const tv *rep, bool all, tv *out)
{
    const char *p, *q, *w = "";
    size_t n, m, wn = 0;
    TO_S(in, p, n);
    TO_S(pat, q, m);
    if (rep) TO_S(rep, w, wn);
    size_t hits = 0;
    if (m == 0) hits = all ? tpl__utf8_len(p, n) + 1 : 1;
    else
        for (const char *x = p; (x = memmem(x, n - (size_t)(x - p), q, m)); x += m) { hits++; if (!all) break; }
    if (hits == 0) { *out = tv_str(p, n); return JD_OK; }
    char *s = mk(r, f, n + hits * wn);
    if (!s) return JD_ELIMIT;
    size_t o = 0, i = 0, done = 0;
    if (m == 0) {
        for (;;) {
            memcpy(s + o, w, wn); o += wn; done++;
            if (i >= n || done == hits) break;
            size_t j = i + 1;
            while (j < n && ((unsigned char)p[j] & 0xC0) == 0x80) j++;
            memcpy(s + o, p + i, j - i); o += j - i; i = j;
        }
    } else {
        while (done < hits) {
            const char *x = memmem(p + i, n - i, q, m);
            size_t at = (size_t)(x - p);
            memcpy(s + o, p + i, at - i); o += at - i;
            memcpy(s + o, w, wn); o += wn;
            i = at + m;
            done++;
        }
    }
    memcpy(s + o, p + i, n - i);
    o += n - i;
    s[o] = 0;
    *out = tv_str(s, o);
    return JD_OK;
}

static int f_replace(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)kw; return replace_impl(r, f, in, &a[0], f->nargs > 1 ? &a[1] : NULL, true, out); }
static int f_replace_first(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)kw; return replace_impl(r, f, in, &a[0], f->nargs > 1 ? &a[1] : NULL, false, out); }
static int f_remove(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)kw; return replace_impl(r, f, in, &a[0], NULL, true, out); }
static int f_remove_first(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)kw; return replace_impl(r, f, in, &a[0], NULL, false, out); }

static int strip_impl(rctx *r, const xfilter *f, const tv *in, bool left, bool right, tv *out)
{
    const char *p;
    size_t n;
    TO_S(in, p, n);
    size_t b = 0, e = n;
    if (left) while (b < e && is_space(p[b])) b++;
    if (right) while (e > b && is_space(p[e - 1])) e--;
    *out = tv_str(p + b, e - b);
    return JD_OK;
}
static int f_strip(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)a; (void)kw; return strip_impl(r, f, in, true, true, out); }
static int f_lstrip(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)a; (void)kw; return strip_impl(r, f, in, true, false, out); }
static int f_rstrip(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)a; (void)kw; return strip_impl(r, f, in, false, true, out); }

static bool ci_prefix(const char *p, size_t n, const char *w)
{
    size_t k = strlen(w);
    if (n < k) return false;
    for (size_t i = 0; i < k; i++)
        if ((p[i] | 0x20) != w[i]) return false;
    return true;
}

static const char *ci_find(const char *p, size_t n, const char *w)
{
    for (size_t i = 0; i < n; i++)
        if (ci_prefix(p + i, n - i, w)) return p + i;
    return NULL;
}

/* Removes <script>..</script>, <style>..</style>, <!-- .. --> and <...> (Liquid's regexes). */
static int f_strip_html(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)a; (void)kw;
    const char *p;
    size_t n;
    TO_S(in, p, n);
    char *s = mk(r, f, n);
    if (!s) return JD_ELIMIT;
    size_t o = 0, i = 0;
    while (i < n) {
        const char *end = NULL;
        size_t skip = 0;
        if (p[i] == '<') {
            if (ci_prefix(p + i, n - i, "<script")) { end = ci_find(p + i, n - i, "</script>"); skip = 9; }
            else if (ci_prefix(p + i, n - i, "<style")) { end = ci_find(p + i, n - i, "</style>"); skip = 8; }
            else if (ci_prefix(p + i, n - i, "<!--")) { end = ci_find(p + i + 4, n - i - 4, "-->"); skip = 3; }
            else { end = memchr(p + i + 1, '>', n - i - 1); skip = 1; }
        }
        if (end) { i = (size_t)(end - p) + skip; continue; }
        s[o++] = p[i++];
    }
    s[o] = 0;
    *out = tv_str(s, o);
    return JD_OK;
}

static int newlines(rctx *r, const xfilter *f, const tv *in, const char *rep, tv *out)
{
    const char *p;
    size_t n;
    TO_S(in, p, n);
    size_t rn = strlen(rep);
    char *s = mk(r, f, n * (rn + 1));
    if (!s) return JD_ELIMIT;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') i++;
        if (p[i] == '\n') { memcpy(s + o, rep, rn); o += rn; }
        else s[o++] = p[i];
    }
    s[o] = 0;
    *out = tv_str(s, o);
    return JD_OK;
}

static int f_strip_newlines(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)a; (void)kw; return newlines(r, f, in, "", out); }

/* In an HTML render the text is escaped first, so the <br /> survive. */
static int f_newline_to_br(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)a; (void)kw;
    tv src = *in;
    if (r->o->html && !in->safe) {
        int rc = escape_html(r, f, in, false, &src);
        if (rc != JD_OK) return rc;
        if (src.k == TV_NIL) src = tv_str("", 0);
    }
    int rc = newlines(r, f, &src, "<br />\n", out);
    out->safe = r->o->html;
    return rc;
}

/* ---- lists -------------------------------------------------------------------------- */

static int mklist(rctx *r, const xfilter *f, size_t n, tv **items)
{
    *items = tpl__scratch(r, (n ? n : 1) * sizeof **items, POS);
    return *items ? JD_OK : JD_ELIMIT;
}

static tv listv(const tv *items, size_t n)
{
    tv v = tv_nil();
    v.k = TV_LIST;
    v.u.l.items = items;
    v.u.l.n = n;
    return v;
}

/* Ruby's String#split with a string: " " splits on whitespace runs and drops
 * leading blanks; "" splits characters; trailing empty strings are dropped. */
static int f_split(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)kw;
    const char *p, *q;
    size_t n, m;
    TO_S(in, p, n);
    TO_S(&a[0], q, m);
    bool awk = m == 1 && q[0] == ' ';
    tv *items;
    int rc = mklist(r, f, n + 1, &items);
    if (rc != JD_OK) return rc;
    size_t k = 0, i = 0;
    if (awk) {
        while (i < n) {
            while (i < n && is_space(p[i]) && p[i]) i++;
            if (i >= n) break;
            size_t b = i;
            while (i < n && !(is_space(p[i]) && p[i])) i++;
            items[k++] = tv_str(p + b, i - b);
        }
    } else if (m == 0) {
        while (i < n) {
            size_t b = i++;
            while (i < n && ((unsigned char)p[i] & 0xC0) == 0x80) i++;
            items[k++] = tv_str(p + b, i - b);
        }
    } else if (n) {
        for (;;) {
            const char *x = memmem(p + i, n - i, q, m);
            if (!x) { items[k++] = tv_str(p + i, n - i); break; }
            items[k++] = tv_str(p + i, (size_t)(x - p) - i);
            i = (size_t)(x - p) + m;
        }
        while (k && items[k - 1].u.s.n == 0) k--;
    }
    *out = listv(items, k);
    return JD_OK;
}

static int f_join(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)kw;
    const char *g = " ";
    size_t gn = 1;
    if (f->nargs) TO_S(&a[0], g, gn);
    if (!tpl__is_list(in)) {
        if (in->k == TV_NIL) { *out = tv_str("", 0); return JD_OK; }
        const char *p;
        size_t n;
        TO_S(in, p, n);
        *out = tv_str(p, n);
        return JD_OK;
    }
    size_t len = tpl__list_len(in), total = 0;
    const char **ps;
    size_t *ns;
    if (!(ps = tpl__scratch(r, (len + 1) * sizeof *ps, POS)) || !(ns = tpl__scratch(r, (len + 1) * sizeof *ns, POS)))
        return JD_ELIMIT;
    for (size_t i = 0; i < len; i++) {
        tv x = tpl__list_at(in, i);
        TO_S(&x, ps[i], ns[i]);
        total += ns[i] + (i ? gn : 0);
    }
    char *s = mk(r, f, total);
    if (!s) return JD_ELIMIT;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (i) { memcpy(s + o, g, gn); o += gn; }
        memcpy(s + o, ps[i], ns[i]);
        o += ns[i];
    }
    s[o] = 0;
    *out = tv_str(s, o);
    return JD_OK;
}

static int f_first(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)r; (void)f; (void)a; (void)kw;
    *out = tpl__is_list(in) && tpl__list_len(in) ? tpl__list_at(in, 0) : tv_nil();
    return JD_OK;
}

static int f_last(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)r; (void)f; (void)a; (void)kw;
    size_t n = tpl__is_list(in) ? tpl__list_len(in) : 0;
    *out = n ? tpl__list_at(in, n - 1) : tv_nil();
    return JD_OK;
}

/* Ruby's #size: characters of a string, elements, pairs; Integer#size is 8 (bytes). */
static int f_size(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)r; (void)f; (void)a; (void)kw;
    if (in->k == TV_STR) *out = tv_int((int64_t)tpl__utf8_len(in->u.s.p, in->u.s.n));
    else if (tpl__is_list(in)) *out = tv_int((int64_t)tpl__list_len(in));
    else if (in->k == TV_JSON) *out = tv_int((int64_t)json_object_object_length(in->u.j));
    else if (in->k == TV_INT) *out = tv_int(8);
    else *out = tv_int(0);
    return JD_OK;
}

/* Array(input) in a fresh list the filter may rework in place: a list's
 * items, nil as [], anything else as [input]. */
static int array_of(rctx *r, const xfilter *f, const tv *in, tv **items, size_t *n)
{
    bool list = tpl__is_list(in);
    *n = list ? tpl__list_len(in) : in->k == TV_NIL ? 0 : 1;
    int rc = mklist(r, f, *n, items);
    for (size_t i = 0; rc == JD_OK && i < *n; i++) (*items)[i] = list ? tpl__list_at(in, i) : *in;
    return rc;
}

static int f_reverse(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)a; (void)kw;
    size_t n;
    tv *items;
    int rc = array_of(r, f, in, &items, &n);
    if (rc != JD_OK) return rc;
    for (size_t i = 0; i < n / 2; i++) {
        tv t = items[i];
        items[i] = items[n - 1 - i];
        items[n - 1 - i] = t;
    }
    *out = listv(items, n);
    return JD_OK;
}

static int f_compact(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)a; (void)kw;
    size_t n, k = 0;
    tv *items;
    int rc = array_of(r, f, in, &items, &n);
    if (rc != JD_OK) return rc;
    for (size_t i = 0; i < n; i++)
        if (items[i].k != TV_NIL) items[k++] = items[i];
    *out = listv(items, k);
    return JD_OK;
}

static int f_uniq(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)a; (void)kw;
    size_t n, k = 0;
    tv *items;
    int rc = array_of(r, f, in, &items, &n);
    if (rc != JD_OK) return rc;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++) seen = tpl__equal(&items[j], &items[i]);
        if (!seen) items[k++] = items[i];
    }
    *out = listv(items, k);
    return JD_OK;
}

static int f_map(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)kw;
    size_t n;
    tv *items;
    int rc = array_of(r, f, in, &items, &n);
    if (rc != JD_OK) return rc;
    const char *p;
    size_t pn;
    TO_S(&a[0], p, pn);
    tv key = tv_str(p, pn);
    for (size_t i = 0; i < n; i++) items[i] = items[i].k == TV_JSON ? tpl__lookup(r, &items[i], &key) : tv_nil();
    *out = listv(items, n);
    return JD_OK;
}

/* slice: characters of a string or elements of a list, from offset (negative
 * from the end), length 1 by default. */
static int f_slice(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)kw;
    int64_t off, len = 1;
    int rc = to_integer(r, f, &a[0], &off);
    if (rc == JD_OK && f->nargs > 1) rc = to_integer(r, f, &a[1], &len);
    if (rc != JD_OK) return rc;
    bool list = tpl__is_list(in);
    const char *p = NULL;
    size_t n;
    if (list) n = tpl__list_len(in);
    else { TO_S(in, p, n); n = tpl__utf8_len(p, n); }
    if (off < 0) off += (int64_t)n;
    if (off < 0 || off > (int64_t)n || len < 0) { *out = list ? listv(NULL, 0) : tv_str("", 0); return JD_OK; }
    int64_t end = len > (int64_t)n - off ? (int64_t)n : off + len;
    if (list) {
        tv *items;
        if ((rc = mklist(r, f, (size_t)(end - off), &items)) != JD_OK) return rc;
        for (int64_t i = off; i < end; i++) items[i - off] = tpl__list_at(in, (size_t)i);
        *out = listv(items, (size_t)(end - off));
        return JD_OK;
    }
    size_t bytes = in->k == TV_STR ? in->u.s.n : strlen(p);
    size_t b = char_off(p, bytes, (size_t)off), e = char_off(p, bytes, (size_t)end);
    *out = tv_str(p + b, e - b);
    return JD_OK;
}

/* ---- default, date ------------------------------------------------------------------ */

static int f_default(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)r;
    bool allow_false = kw && tpl__truthy(kw);
    bool use = allow_false ? (in->k == TV_NIL) : !tpl__truthy(in);
    if (!use) {
        if (in->k == TV_STR) use = in->u.s.n == 0;
        else if (tpl__is_list(in)) use = tpl__list_len(in) == 0;
        else if (in->k == TV_JSON) use = json_object_object_length(in->u.j) == 0;
    }
    *out = !use ? *in : f->nargs ? a[0] : tv_str("", 0);
    return JD_OK;
}

static int f_date(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out)
{
    (void)kw;
    tv fmt = f->nargs ? a[0] : tv_nil();
    return tpl__date(r, f, in, &fmt, out);
}

/* ---- money ----------------------------------------------------------------------------
 * Shopify's money filters: the input is an amount in the currency's minor unit
 * (cents for USD, yen for JPY), rounded half away from zero to a whole number;
 * the optional argument is an ISO 4217 code (default: tpl_render_opts.currency).
 * Thousands are separated by ',' and decimals by '.' in every currency. */

static const struct currency { const char *code, *symbol; int digits; } currencies[] = {
    { "AUD", "$", 2 }, { "BRL", "R$", 2 }, { "CAD", "$", 2 }, { "CHF", "CHF ", 2 }, { "CNY", "¥", 2 },
    { "DKK", "kr ", 2 }, { "EUR", "€", 2 }, { "GBP", "£", 2 }, { "HKD", "$", 2 }, { "INR", "₹", 2 },
    { "JPY", "¥", 0 }, { "KRW", "₩", 0 }, { "MXN", "$", 2 }, { "NOK", "kr ", 2 }, { "NZD", "$", 2 },
    { "PLN", "zł ", 2 }, { "SEK", "kr ", 2 }, { "SGD", "$", 2 }, { "USD", "$", 2 }, { "ZAR", "R", 2 },
};

typedef enum { M_PLAIN, M_WITH_CURRENCY, M_WITHOUT_CURRENCY, M_NO_TRAILING } money_mode;

static int money(rctx *r, const xfilter *f, const tv *in, const tv *a, money_mode mode, tv *out)
{
    if (in->k == TV_NIL) { *out = tv_nil(); return JD_OK; }
    const char *code = r->currency;
    size_t cn = strlen(code);
    if (f->nargs) TO_S(&a[0], code, cn);
    struct currency cur = { NULL, "", 2 };
    for (size_t i = 0; i < JD_ARRAY_LEN(currencies); i++)
        if (cn == 3 && memcmp(currencies[i].code, code, 3) == 0) cur = currencies[i];
    tv x = to_number(in);
    int64_t minor;
    if (x.k == TV_INT) minor = x.u.i;
    else {
        if (!isfinite(x.u.d) || fabs(x.u.d) >= 9e18) return tpl__fail(r, POS, JD_EINVAL, "integer overflow in '%s'", f->def->name);
        minor = (int64_t)round(x.u.d);
    }
    if (minor == INT64_MIN) return tpl__fail(r, POS, JD_EINVAL, "integer overflow in '%s'", f->def->name);
    bool neg = minor < 0;
    uint64_t m = (uint64_t)(neg ? -minor : minor), div = cur.digits == 2 ? 100 : 1;
    uint64_t major = m / div, frac = m % div;
    char digits[32], grouped[48], text[128];
    int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)major), o = 0;
    for (int i = 0; i < nd; i++) {
        if (i && (nd - i) % 3 == 0) grouped[o++] = ',';
        grouped[o++] = digits[i];
    }
    grouped[o] = 0;
    char fracs[8] = "";
    if (cur.digits == 2 && !(mode == M_NO_TRAILING && frac == 0)) snprintf(fracs, sizeof fracs, ".%02llu", (unsigned long long)frac);
    const char *sym = mode == M_WITHOUT_CURRENCY ? "" : cur.symbol;
    bool suffix = mode == M_WITH_CURRENCY || (!cur.code && mode != M_WITHOUT_CURRENCY);
    int len = snprintf(text, sizeof text, "%s%s%s%s%s%.*s", neg ? "-" : "", sym, grouped, fracs, suffix ? " " : "",
                       suffix ? (int)(cn > 8 ? 8 : cn) : 0, code);
    char *s = mk(r, f, (size_t)len);
    if (!s) return JD_ELIMIT;
    memcpy(s, text, (size_t)len + 1);
    *out = tv_str(s, (size_t)len);
    return JD_OK;
}

static int f_money(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)kw; return money(r, f, in, a, M_PLAIN, out); }
static int f_money_with_currency(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)kw; return money(r, f, in, a, M_WITH_CURRENCY, out); }
static int f_money_without_currency(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)kw; return money(r, f, in, a, M_WITHOUT_CURRENCY, out); }
static int f_money_without_trailing_zeros(rctx *r, const xfilter *f, const tv *in, const tv *a, const tv *kw, tv *out) { (void)kw; return money(r, f, in, a, M_NO_TRAILING, out); }

/* ---- the table ------------------------------------------------------------------------ */

static const tpl_filter filters[] = {
    { "abs",              0, 0, NULL, f_abs },
    { "append",           1, 1, NULL, f_append },
    { "at_least",         1, 1, NULL, f_at_least },
    { "at_most",          1, 1, NULL, f_at_most },
    { "capitalize",       0, 0, NULL, f_capitalize },
    { "ceil",             0, 0, NULL, f_ceil },
    { "compact",          0, 0, NULL, f_compact },
    { "date",             1, 1, NULL, f_date },
    { "default",          0, 1, "allow_false", f_default },
    { "divided_by",       1, 1, NULL, f_divided_by },
    { "downcase",         0, 0, NULL, f_downcase },
    { "escape",           0, 0, NULL, f_escape },
    { "escape_once",      0, 0, NULL, f_escape_once },
    { "first",            0, 0, NULL, f_first },
    { "floor",            0, 0, NULL, f_floor },
    { "join",             0, 1, NULL, f_join },
    { "last",             0, 0, NULL, f_last },
    { "lstrip",           0, 0, NULL, f_lstrip },
    { "map",              1, 1, NULL, f_map },
    { "minus",            1, 1, NULL, f_minus },
    { "modulo",           1, 1, NULL, f_modulo },
    { "money",            0, 1, NULL, f_money },
    { "money_with_currency", 0, 1, NULL, f_money_with_currency },
    { "money_without_currency", 0, 1, NULL, f_money_without_currency },
    { "money_without_trailing_zeros", 0, 1, NULL, f_money_without_trailing_zeros },
    { "newline_to_br",    0, 0, NULL, f_newline_to_br },
    { "plus",             1, 1, NULL, f_plus },
    { "prepend",          1, 1, NULL, f_prepend },
    { "remove",           1, 1, NULL, f_remove },
    { "remove_first",     1, 1, NULL, f_remove_first },
    { "replace",          1, 2, NULL, f_replace },
    { "replace_first",    1, 2, NULL, f_replace_first },
    { "reverse",          0, 0, NULL, f_reverse },
    { "round",            0, 1, NULL, f_round },
    { "rstrip",           0, 0, NULL, f_rstrip },
    { "size",             0, 0, NULL, f_size },
    { "slice",            1, 2, NULL, f_slice },
    { "split",            1, 1, NULL, f_split },
    { "strip",            0, 0, NULL, f_strip },
    { "strip_html",       0, 0, NULL, f_strip_html },
    { "strip_newlines",   0, 0, NULL, f_strip_newlines },
    { "times",            1, 1, NULL, f_times },
    { "truncate",         0, 2, NULL, f_truncate },
    { "truncatewords",    0, 2, NULL, f_truncatewords },
    { "uniq",             0, 0, NULL, f_uniq },
    { "upcase",           0, 0, NULL, f_upcase },
    { "url_decode",       0, 0, NULL, f_url_decode },
    { "url_encode",       0, 0, NULL, f_url_encode },
};

const tpl_filter *tpl__filter_find(const char *name, size_t n)
{
    size_t lo = 0, hi = JD_ARRAY_LEN(filters);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strncmp(filters[mid].name, name, n);
        if (c == 0 && filters[mid].name[n] != 0) c = 1;
        if (c == 0) return &filters[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}
