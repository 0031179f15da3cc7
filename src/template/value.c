/* src/template/value.c -- what a Liquid value is during a render: json-c views,
 * Ruby's to_s and ==, lookups (hash keys, array indexes, size/first/last) and
 * the output buffer with its limit and HTML escaping.
 *
 * Invariants:
 *  (1) Only nil and false are falsy (Liquid): "", 0 and [] are true.
 *  (2) to_s follows Ruby: nil "", floats as Float#to_s ("3.0", "1.0e+20"),
 *      arrays concatenated (as Liquid outputs them), hashes as JSON text
 *      (Ruby would print {"a"=>1}; JSON is what a message author can use).
 *  (3) Every byte a render writes goes through tpl__add, which enforces
 *      max_output and names the limit.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tpl_int.h"

int tpl__fail(rctx *r, uint32_t line, uint32_t col, int code, const char *fmt, ...)
{
    if (!r->err) return code;
    r->err->code = code;
    snprintf(r->err->where, sizeof r->err->where, "%s:%u:%u", r->t->name, line, col);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err->msg, sizeof r->err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void *tpl__scratch(rctx *r, size_t n, uint32_t line, uint32_t col)
{
    void *p = tpl__alloc(r->scratch, n ? n : 1);
    if (!p)
        tpl__fail(r, line, col, JD_ELIMIT, "render needs more than %zu bytes of scratch memory (template.max_scratch)",
                  r->scratch->max);
    return p;
}

tv tpl__from_json(struct json_object *j)
{
    tv v = tv_nil();
    switch (json_object_get_type(j)) {
    case json_type_null: break;
    case json_type_boolean: v = tv_bool(json_object_get_boolean(j)); break;
    case json_type_int: v = tv_int(json_object_get_int64(j)); break;
    case json_type_double: v = tv_float(json_object_get_double(j)); break;
    case json_type_string: v = tv_str(json_object_get_string(j), (size_t)json_object_get_string_len(j)); break;
    case json_type_array:
    case json_type_object: v.k = TV_JSON; v.u.j = j; break;
    }
    return v;
}

bool tpl__truthy(const tv *v)
{
    return !(v->k == TV_NIL || v->k == TV_UNSET || (v->k == TV_BOOL && !v->u.b));
}

bool tpl__is_list(const tv *v)
{
    return v->k == TV_LIST || v->k == TV_RANGE || (v->k == TV_JSON && json_object_is_type(v->u.j, json_type_array));
}

size_t tpl__list_len(const tv *v)
{
    switch (v->k) {
    case TV_LIST: return v->u.l.n;
    case TV_RANGE: return v->u.r.hi >= v->u.r.lo ? (size_t)(v->u.r.hi - v->u.r.lo) + 1 : 0;
    case TV_JSON: return json_object_is_type(v->u.j, json_type_array) ? json_object_array_length(v->u.j) : 0;
    default: return 0;
    }
}

tv tpl__list_at(const tv *v, size_t i)
{
    switch (v->k) {
    case TV_LIST: return v->u.l.items[i];
    case TV_RANGE: return tv_int(v->u.r.lo + (int64_t)i);
    default: return tpl__from_json(json_object_array_get_idx(v->u.j, i));
    }
}

size_t tpl__utf8_len(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)p[i] & 0xC0) != 0x80;
    return c;
}

/* Ruby's Float#to_s: the shortest text that reads back as d, in fixed
 * notation for 1e-4 <= |d| < 1e16, else "m.mmme+XX". */
size_t tpl__fmt_float(double d, char *buf)
{
    if (isnan(d)) return (size_t)snprintf(buf, 32, "NaN");
    if (isinf(d)) return (size_t)snprintf(buf, 32, d < 0 ? "-Infinity" : "Infinity");
    if (d == 0) return (size_t)snprintf(buf, 32, signbit(d) ? "-0.0" : "0.0");
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, d);
        if (strtod(e, NULL) == d) break;
    }
    /* e: [-]D[.DDD]e[+-]XX */
    char digits[24];
    size_t nd = 0;
    const char *q = e;
    bool neg = *q == '-';
    if (neg) q++;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    int x = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    size_t o = 0;
    if (neg) buf[o++] = '-';
    if (x >= -4 && x < 16) {
        if (x < 0) {
            buf[o++] = '0';
            buf[o++] = '.';
            for (int z = 0; z < -x - 1; z++) buf[o++] = '0';
            for (size_t i = 0; i < nd; i++) buf[o++] = digits[i];
        } else {
            for (int i = 0; i <= x; i++) buf[o++] = (size_t)i < nd ? digits[i] : '0';
            buf[o++] = '.';
            if ((size_t)x + 1 < nd)
                for (size_t i = (size_t)x + 1; i < nd; i++) buf[o++] = digits[i];
            else
                buf[o++] = '0';
        }
        buf[o] = 0;
        return o;
    }
    buf[o++] = digits[0];
    buf[o++] = '.';
    if (nd > 1) for (size_t i = 1; i < nd; i++) buf[o++] = digits[i];
    else buf[o++] = '0';
    o += (size_t)snprintf(buf + o, 16, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
    return o;
}

int tpl__add(rctx *r, const char *p, size_t n, uint32_t line, uint32_t col)
{
    if (n == 0) return JD_OK;
    if (r->out->len - r->out_start + n > r->max_output || jd_buf_add(r->out, p, n) != JD_OK)
        return tpl__fail(r, line, col, JD_ELIMIT, "output exceeds %zu bytes (template.max_output)",
                         r->max_output < r->out->max ? r->max_output : r->out->max);
    return JD_OK;
}

int tpl__add_escaped(rctx *r, const char *p, size_t n, uint32_t line, uint32_t col)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep;
        switch (p[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        int rc = tpl__add(r, p + run, i - run, line, col);
        if (rc == JD_OK) rc = tpl__add(r, rep, strlen(rep), line, col);
        if (rc != JD_OK) return rc;
        run = i + 1;
    }
    return tpl__add(r, p + run, n - run, line, col);
}

/* JSON text of a hash (to_s of an object), written straight to out. */
static int emit_json(rctx *r, struct json_object *j, bool escape, uint32_t line, uint32_t col)
{
    /* json-c keeps the text in the object: rendering a hash is not allocation-free */
    const char *s = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    return escape ? tpl__add_escaped(r, s, strlen(s), line, col) : tpl__add(r, s, strlen(s), line, col);
}

int tpl__emit(rctx *r, const tv *v, bool escape, uint32_t line, uint32_t col)
{
    char num[40];
    size_t n;
    escape = escape && !v->safe;
    switch (v->k) {
    case TV_UNSET:
    case TV_NIL:
    case TV_EMPTY:
    case TV_BLANK:
    case TV_LOOP:
        return JD_OK;
    case TV_BOOL: return tpl__add(r, v->u.b ? "true" : "false", v->u.b ? 4 : 5, line, col);
    case TV_INT:
        n = (size_t)snprintf(num, sizeof num, "%lld", (long long)v->u.i);
        return tpl__add(r, num, n, line, col);
    case TV_FLOAT:
        n = tpl__fmt_float(v->u.d, num);
        return tpl__add(r, num, n, line, col);
    case TV_STR:
        return escape ? tpl__add_escaped(r, v->u.s.p, v->u.s.n, line, col) : tpl__add(r, v->u.s.p, v->u.s.n, line, col);
    case TV_RANGE:
        n = (size_t)snprintf(num, sizeof num, "%lld..%lld", (long long)v->u.r.lo, (long long)v->u.r.hi);
        return tpl__add(r, num, n, line, col);
    case TV_JSON:
        if (!json_object_is_type(v->u.j, json_type_array)) return emit_json(r, v->u.j, escape, line, col);
        /* arrays concatenate their elements */
        __attribute__((fallthrough));
    case TV_LIST: {
        size_t len = tpl__list_len(v);
        for (size_t i = 0; i < len; i++) {
            tv x = tpl__list_at(v, i);
            x.safe = v->safe;
            int rc = tpl__emit(r, &x, escape, line, col);
            if (rc != JD_OK) return rc;
        }
        return JD_OK;
    }
    }
    return JD_OK;
}

int tpl__to_s(rctx *r, const tv *v, const char **p, size_t *n, uint32_t line, uint32_t col)
{
    if (v->k == TV_STR) {
        *p = v->u.s.p;
        *n = v->u.s.n;
        return JD_OK;
    }
    if (v->k == TV_NIL || v->k == TV_UNSET || v->k == TV_EMPTY || v->k == TV_BLANK || v->k == TV_LOOP) {
        *p = "";
        *n = 0;
        return JD_OK;
    }
    /* Render into the output buffer, then move the bytes to the scratch. */
    size_t start = r->out->len;
    int rc = tpl__emit(r, v, false, line, col);
    if (rc != JD_OK) return rc;
    size_t len = r->out->len - start;
    char *s = tpl__scratch(r, len + 1, line, col);
    if (!s) return JD_ELIMIT;
    memcpy(s, r->out->data + start, len);
    s[len] = 0;
    r->out->len = start;
    r->out->data[start] = 0;
    *p = s;
    *n = len;
    return JD_OK;
}

static bool is_num(const tv *v) { return v->k == TV_INT || v->k == TV_FLOAT; }

/* Ruby ==: 1 == 1.0, arrays by element, hashes by content; `empty` and
 * `blank` ask the other side (Liquid's MethodLiteral). */
bool tpl__equal(const tv *a, const tv *b)
{
    if (a->k == TV_EMPTY || a->k == TV_BLANK) { const tv *t = a; a = b; b = t; }
    if (b->k == TV_EMPTY || b->k == TV_BLANK) {
        if (a->k == b->k) return true;
        switch (a->k) {
        case TV_STR:
            if (b->k == TV_EMPTY) return a->u.s.n == 0;
            for (size_t i = 0; i < a->u.s.n; i++)
                if (!strchr(" \t\r\n\f\v", a->u.s.p[i]) || !a->u.s.p[i]) return false;
            return true;
        case TV_JSON:
            if (json_object_is_type(a->u.j, json_type_object)) return json_object_object_length(a->u.j) == 0;
            return json_object_array_length(a->u.j) == 0;
        case TV_LIST:
        case TV_RANGE: return tpl__list_len(a) == 0;
        case TV_NIL: return b->k == TV_BLANK;
        case TV_BOOL: return b->k == TV_BLANK && !a->u.b;
        default: return false;
        }
    }
    if (is_num(a) && is_num(b)) {
        if (a->k == TV_INT && b->k == TV_INT) return a->u.i == b->u.i;
        double x = a->k == TV_INT ? (double)a->u.i : a->u.d, y = b->k == TV_INT ? (double)b->u.i : b->u.d;
        return x == y;
    }
    if ((a->k == TV_NIL || a->k == TV_UNSET) && (b->k == TV_NIL || b->k == TV_UNSET)) return true;
    if (a->k == TV_BOOL && b->k == TV_BOOL) return a->u.b == b->u.b;
    if (a->k == TV_STR && b->k == TV_STR) return a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
    if (tpl__is_list(a) && tpl__is_list(b)) {
        size_t n = tpl__list_len(a);
        if (n != tpl__list_len(b)) return false;
        for (size_t i = 0; i < n; i++) {
            tv x = tpl__list_at(a, i), y = tpl__list_at(b, i);
            if (!tpl__equal(&x, &y)) return false;
        }
        return true;
    }
    if (a->k == TV_JSON && b->k == TV_JSON) return json_object_equal(a->u.j, b->u.j);
    return false;
}

static tv loop_field(const rloop *l, const char *k, size_t n)
{
#define IS(w) (n == sizeof(w) - 1 && memcmp(k, w, n) == 0)
    if (IS("index")) return tv_int(l->index0 + 1);
    if (IS("index0")) return tv_int(l->index0);
    if (IS("rindex")) return tv_int(l->length - l->index0);
    if (IS("rindex0")) return tv_int(l->length - l->index0 - 1);
    if (IS("first")) return tv_bool(l->index0 == 0);
    if (IS("last")) return tv_bool(l->index0 == l->length - 1);
    if (IS("length")) return tv_int(l->length);
    if (IS("parentloop") && l->parent) { tv v = tv_nil(); v.k = TV_LOOP; v.u.loop = l->parent; return v; }
#undef IS
    return tv_nil();
}

tv tpl__lookup(rctx *r, const tv *v, const tv *key)
{
    (void)r;
    const char *k = key->k == TV_STR ? key->u.s.p : NULL;
    size_t kn = key->k == TV_STR ? key->u.s.n : 0;
#define CMD(w) (k && kn == sizeof(w) - 1 && memcmp(k, w, kn) == 0)
    if (v->k == TV_LOOP) return k ? loop_field(v->u.loop, k, kn) : tv_nil();
    if (v->k == TV_JSON && json_object_is_type(v->u.j, json_type_object)) {
        if (k) {
            /* json-c keys are NUL-terminated: a key with a NUL byte never matches */
            char small[128];
            char *z = kn < sizeof small ? small : NULL;
            if (z && !memchr(k, 0, kn)) {
                memcpy(z, k, kn);
                z[kn] = 0;
                struct json_object *x;
                if (json_object_object_get_ex(v->u.j, z, &x)) return tpl__from_json(x);
            } else if (!z) {
                /* long keys: walk the object */
                json_object_object_foreach(v->u.j, ok, ov)
                    if (strlen(ok) == kn && memcmp(ok, k, kn) == 0) return tpl__from_json(ov);
            }
        }
        if (CMD("size")) return tv_int((int64_t)json_object_object_length(v->u.j));
        return tv_nil();
    }
    if (tpl__is_list(v)) {
        size_t n = tpl__list_len(v);
        if (key->k == TV_INT) {
            int64_t i = key->u.i;
            if (i < 0) i += (int64_t)n;
            if (i < 0 || (uint64_t)i >= n) return tv_nil();
            return tpl__list_at(v, (size_t)i);
        }
        if (CMD("size")) return tv_int((int64_t)n);
        if (CMD("first")) return n ? tpl__list_at(v, 0) : tv_nil();
        if (CMD("last")) return n ? tpl__list_at(v, n - 1) : tv_nil();
        return tv_nil();
    }
    if (v->k == TV_STR && CMD("size")) return tv_int((int64_t)tpl__utf8_len(v->u.s.p, v->u.s.n));
#undef CMD
    return tv_nil();
}
