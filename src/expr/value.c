/* src/expr/value.c -- values: JSON views, native lists and maps, equality,
 * ordering, and CEL literal text.
 *
 * Invariants:
 *  (1) A JSON object/array is never converted as a whole: a map/list value
 *      without VF_NATIVE is a view of a json-c object, and a field or element
 *      becomes an expr_val only when read (expr__from_json).
 *  (2) Every string/bytes value is followed by a NUL byte in memory (json-c's
 *      strings, the program's pool and arena results all are), so a key can
 *      be handed to json-c as a C string; a key with an embedded NUL is never
 *      a JSON key.
 *  (3) Equality is total and heterogeneous (langdef.md "Equality"): values of
 *      different types are unequal, except numbers, which compare across
 *      int/uint/double: int with uint exactly, an integer with a double as
 *      doubles (the conformance tests' rule); NaN equals nothing.
 *  (4) Output is deterministic: maps print in insertion order (JSON order
 *      for views, literal order for native maps).
 */
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>

#include "expr_int.h"

static const char *const kind_names[EXPR_KIND_COUNT_ + 1] = {
    [EXPR_DYN] = "dyn", [EXPR_NULL] = "null_type", [EXPR_BOOL] = "bool", [EXPR_INT] = "int",
    [EXPR_UINT] = "uint", [EXPR_DOUBLE] = "double", [EXPR_STRING] = "string", [EXPR_BYTES] = "bytes",
    [EXPR_LIST] = "list", [EXPR_MAP] = "map", [EXPR_TIMESTAMP] = "timestamp", [EXPR_DURATION] = "duration",
    [EXPR_TYPE] = "type", [EXPR_KIND_COUNT_] = "error",
};

const char *expr_kind_name(expr_kind k)
{
    return (unsigned)k <= EXPR_KIND_COUNT_ ? kind_names[k] : "?";
}

const char *expr__type_name(const expr_val *v) { return expr_kind_name(v->kind); }

void expr__from_json(const struct json_object *cj, expr_val *out)
{
    struct json_object *j = (struct json_object *)cj;   /* json-c's getters are not const */
    memset(out, 0, sizeof *out);
    switch (json_object_get_type(j)) {
    case json_type_null:
        out->kind = EXPR_NULL;
        break;
    case json_type_boolean:
        out->kind = EXPR_BOOL;
        out->v.b = json_object_get_boolean(j);
        break;
    case json_type_int: {
        /* json-c keeps integers past INT64_MAX as uint64; CEL has uint for them. */
        int64_t i = json_object_get_int64(j);
        uint64_t u;
        if (i == INT64_MAX && (u = json_object_get_uint64(j)) > (uint64_t)INT64_MAX) {
            out->kind = EXPR_UINT;
            out->v.u = u;
        } else {
            out->kind = EXPR_INT;
            out->v.i = i;
        }
        break;
    }
    case json_type_double:
        out->kind = EXPR_DOUBLE;
        out->v.d = json_object_get_double(j);
        break;
    case json_type_string:
        out->kind = EXPR_STRING;
        out->v.s.p = json_object_get_string(j);
        out->v.s.n = (size_t)json_object_get_string_len(j);
        break;
    case json_type_array:
        out->kind = EXPR_LIST;
        out->v.json = j;
        break;
    case json_type_object:
        out->kind = EXPR_MAP;
        out->v.json = j;
        break;
    }
}

size_t expr__list_len(const expr_val *l)
{
    if (l->_flags & VF_NATIVE) return ((const expr__list *)l->v.native)->n;
    return json_object_array_length(l->v.json);
}

void expr__list_at(const expr_val *l, size_t i, expr_val *out)
{
    if (l->_flags & VF_NATIVE) {
        *out = ((const expr__list *)l->v.native)->v[i];
        return;
    }
    expr__from_json(json_object_array_get_idx(l->v.json, i), out);
}

size_t expr__map_len(const expr_val *m)
{
    if (m->_flags & VF_NATIVE) return ((const expr__map *)m->v.native)->n;
    return (size_t)json_object_object_length((struct json_object *)m->v.json);
}

static bool is_key_kind(expr_kind k)
{
    return k == EXPR_STRING || k == EXPR_INT || k == EXPR_UINT || k == EXPR_BOOL || k == EXPR_DOUBLE;
}

int expr__map_get_name(const expr_val *m, const char *k, size_t kn, expr_val *out)
{
    if (m->_flags & VF_NATIVE) return expr__map_get_str(m, k, kn, out);
    struct json_object *child;
    if (!json_object_object_get_ex((struct json_object *)m->v.json, k, &child)) return 0;
    expr__from_json(child, out);
    return 1;
}

int expr__map_get_str(const expr_val *m, const char *k, size_t kn, expr_val *out)
{
    if (m->_flags & VF_NATIVE) {
        const expr__map *nm = m->v.native;
        for (uint32_t i = 0; i < nm->n; i++) {
            const expr_val *key = &nm->kv[2 * i];
            if (key->kind == EXPR_STRING && key->v.s.n == kn && memcmp(key->v.s.p, k, kn) == 0) {
                *out = nm->kv[2 * i + 1];
                return 1;
            }
        }
        return 0;
    }
    if (memchr(k, '\0', kn)) return 0;   /* invariant 2 */
    struct json_object *child;
    if (!json_object_object_get_ex((struct json_object *)m->v.json, k, &child)) return 0;
    expr__from_json(child, out);
    return 1;
}

int expr__map_get(const expr_val *m, const expr_val *key, expr_val *out)
{
    if (!is_key_kind(key->kind)) return -1;
    if (key->kind == EXPR_STRING) return expr__map_get_str(m, key->v.s.p, key->v.s.n, out);
    if (!(m->_flags & VF_NATIVE)) return 0;   /* JSON objects only have string keys */
    const expr__map *nm = m->v.native;
    for (uint32_t i = 0; i < nm->n; i++) {
        if (expr__equal(&nm->kv[2 * i], key)) {
            *out = nm->kv[2 * i + 1];
            return 1;
        }
    }
    return 0;
}

bool expr__map_next(const expr_val *m, expr__mapit *it, expr_val *key, expr_val *val)
{
    if (m->_flags & VF_NATIVE) {
        const expr__map *nm = m->v.native;
        if (it->i >= nm->n) return false;
        *key = nm->kv[2 * it->i];
        if (val) *val = nm->kv[2 * it->i + 1];
        it->i++;
        return true;
    }
    const struct lh_entry *e = it->i == 0 ? json_object_get_object((struct json_object *)m->v.json)->head
                                          : it->e;
    if (!e) return false;
    const char *k = (const char *)lh_entry_k(e);
    memset(key, 0, sizeof *key);
    key->kind = EXPR_STRING;
    key->v.s.p = k;
    key->v.s.n = strlen(k);
    if (val) expr__from_json((const struct json_object *)lh_entry_v(e), val);
    it->e = e->next;
    it->i++;
    return true;
}

/* ---- numbers across types (invariant 3) -------------------------------- */

static bool is_num(expr_kind k) { return k == EXPR_INT || k == EXPR_UINT || k == EXPR_DOUBLE; }

/* An integer against a double compares as doubles, as cel-go and the
 * conformance tests do (dyn(9223372036854775807) < 9223372036854775808.0 is
 * false: the int rounds to 2^63). */
static int cmp_d_d(double x, double d)
{
    if (isnan(x) || isnan(d)) return 2;
    return x < d ? -1 : x > d;
}
static int cmp_i_d(int64_t i, double d) { return cmp_d_d((double)i, d); }
static int cmp_u_d(uint64_t u, double d) { return cmp_d_d((double)u, d); }

static int cmp_num(const expr_val *a, const expr_val *b)
{
    switch (a->kind * 16 + b->kind) {
    case EXPR_INT * 16 + EXPR_INT: return a->v.i < b->v.i ? -1 : a->v.i > b->v.i;
    case EXPR_UINT * 16 + EXPR_UINT: return a->v.u < b->v.u ? -1 : a->v.u > b->v.u;
    case EXPR_DOUBLE * 16 + EXPR_DOUBLE:
        if (isnan(a->v.d) || isnan(b->v.d)) return 2;
        return a->v.d < b->v.d ? -1 : a->v.d > b->v.d;
    case EXPR_INT * 16 + EXPR_UINT:
        return a->v.i < 0 ? -1 : (uint64_t)a->v.i < b->v.u ? -1 : (uint64_t)a->v.i > b->v.u;
    case EXPR_UINT * 16 + EXPR_INT:
        return b->v.i < 0 ? 1 : a->v.u < (uint64_t)b->v.i ? -1 : a->v.u > (uint64_t)b->v.i;
    case EXPR_INT * 16 + EXPR_DOUBLE: return cmp_i_d(a->v.i, b->v.d);
    case EXPR_UINT * 16 + EXPR_DOUBLE: return cmp_u_d(a->v.u, b->v.d);
    case EXPR_DOUBLE * 16 + EXPR_INT: { int r = cmp_i_d(b->v.i, a->v.d); return r == 2 ? 2 : -r; }
    case EXPR_DOUBLE * 16 + EXPR_UINT: { int r = cmp_u_d(b->v.u, a->v.d); return r == 2 ? 2 : -r; }
    }
    return 2;
}

static int cmp_bytes(const expr_val *a, const expr_val *b)
{
    size_t n = a->v.s.n < b->v.s.n ? a->v.s.n : b->v.s.n;
    int r = n ? memcmp(a->v.s.p, b->v.s.p, n) : 0;
    if (r) return r < 0 ? -1 : 1;
    return a->v.s.n < b->v.s.n ? -1 : a->v.s.n > b->v.s.n;
}

int expr__compare(const expr_val *a, const expr_val *b, int *cmp)
{
    if (is_num(a->kind) && is_num(b->kind)) {
        *cmp = cmp_num(a, b);
        return 0;
    }
    if (a->kind != b->kind) return -1;
    switch (a->kind) {
    case EXPR_BOOL: *cmp = (int)a->v.b - (int)b->v.b; return 0;
    case EXPR_STRING:   /* UTF-8 byte order is code point order */
    case EXPR_BYTES: *cmp = cmp_bytes(a, b); return 0;
    case EXPR_TIMESTAMP:
    case EXPR_DURATION: *cmp = a->v.i < b->v.i ? -1 : a->v.i > b->v.i; return 0;
    default: return -1;
    }
}

bool expr__equal(const expr_val *a, const expr_val *b)
{
    if (is_num(a->kind) && is_num(b->kind)) return cmp_num(a, b) == 0;
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case EXPR_NULL: return true;
    case EXPR_BOOL: return a->v.b == b->v.b;
    case EXPR_STRING:
    case EXPR_BYTES: return a->v.s.n == b->v.s.n && (a->v.s.n == 0 || memcmp(a->v.s.p, b->v.s.p, a->v.s.n) == 0);
    case EXPR_TIMESTAMP:
    case EXPR_DURATION: return a->v.i == b->v.i;
    case EXPR_TYPE: return a->v.type == b->v.type;
    case EXPR_LIST: {
        size_t n = expr__list_len(a);
        if (n != expr__list_len(b)) return false;
        for (size_t i = 0; i < n; i++) {
            expr_val x, y;
            expr__list_at(a, i, &x);
            expr__list_at(b, i, &y);
            if (!expr__equal(&x, &y)) return false;
        }
        return true;
    }
    case EXPR_MAP: {
        if (expr__map_len(a) != expr__map_len(b)) return false;
        expr__mapit it = { 0, NULL };
        expr_val k, v, w;
        while (expr__map_next(a, &it, &k, &v)) {
            if (expr__map_get(b, &k, &w) != 1 || !expr__equal(&v, &w)) return false;
        }
        return true;
    }
    default: return false;
    }
}

/* ---- UTF-8 ------------------------------------------------------------------ */

bool expr__utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        unsigned c = *p;
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) { p++; continue; }
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return false;
        if ((size_t)(e - p) < len) return false;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        p += len;
    }
    return true;
}

size_t expr__utf8_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
    return c;
}

/* ---- text ------------------------------------------------------------------- */

/* Go's %g for a float64, which is what cel-go's string(double) gives: the
 * shortest digits that round-trip, in exponent form when the decimal exponent
 * is < -4 or >= 6 ("1e+06", "123456", "0.0001", "1e-05"). Returns the length. */
int expr__format_double(double d, char *out, size_t cap)
{
    if (isnan(d)) return snprintf(out, cap, "NaN");
    if (isinf(d)) return snprintf(out, cap, d > 0 ? "+Inf" : "-Inf");
    char e[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, d);
        if (strtod(e, NULL) == d) break;
    }
    /* e: [-]D[.DDD]e[+-]XX */
    char digits[24];
    size_t nd = 0;
    const char *p = e;
    bool neg = false;
    if (*p == '-') { neg = true; p++; }
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    size_t o = 0;
#define PUT(ch) do { if (o + 1 < cap) out[o] = (ch); o++; } while (0)
    if (neg) PUT('-');
    if (exp < -4 || exp >= 6) {
        PUT(digits[0]);
        if (nd > 1) {
            PUT('.');
            for (size_t i = 1; i < nd; i++) PUT(digits[i]);
        }
        char ex[16];
        snprintf(ex, sizeof ex, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        for (char *q = ex; *q; q++) PUT(*q);
    } else if (exp < 0) {
        PUT('0');
        PUT('.');
        for (int i = -1; i > exp; i--) PUT('0');
        for (size_t i = 0; i < nd; i++) PUT(digits[i]);
    } else {
        for (int i = 0; i <= exp || (size_t)i < nd; i++) {
            if (i == exp + 1) PUT('.');
            PUT((size_t)i < nd ? digits[i] : '0');
        }
    }
#undef PUT
    if (cap) out[o < cap ? o : cap - 1] = '\0';
    return (int)o;
}

int expr__format_ts(int64_t us, char *out, size_t cap);   /* timefn.c */

static int add_quoted(jd_buf *b, const char *s, size_t n, bool bytes)
{
    int rc = jd_buf_adds(b, bytes ? "b\"" : "\"");
    for (size_t i = 0; i < n && rc == JD_OK; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"': rc = jd_buf_adds(b, "\\\""); break;
        case '\\': rc = jd_buf_adds(b, "\\\\"); break;
        case '\n': rc = jd_buf_adds(b, "\\n"); break;
        case '\r': rc = jd_buf_adds(b, "\\r"); break;
        case '\t': rc = jd_buf_adds(b, "\\t"); break;
        default:
            if (ch < 0x20 || ch == 0x7F || (bytes && ch >= 0x80)) rc = jd_buf_addf(b, "\\x%02x", ch);
            else rc = jd_buf_add(b, &s[i], 1);
        }
    }
    return rc == JD_OK ? jd_buf_adds(b, "\"") : rc;
}

static const char *type_value_name(expr_kind k)
{
    if (k == EXPR_TIMESTAMP) return "google.protobuf.Timestamp";
    if (k == EXPR_DURATION) return "google.protobuf.Duration";
    return expr_kind_name(k);
}

int expr_val_format(const expr_val *v, jd_buf *out)
{
    char t[64];
    switch (v->kind) {
    case EXPR_NULL: return jd_buf_adds(out, "null");
    case EXPR_BOOL: return jd_buf_adds(out, v->v.b ? "true" : "false");
    case EXPR_INT: return jd_buf_addf(out, "%lld", (long long)v->v.i);
    case EXPR_UINT: return jd_buf_addf(out, "%lluu", (unsigned long long)v->v.u);
    case EXPR_DOUBLE:
        if (isnan(v->v.d)) return jd_buf_adds(out, "double(\"NaN\")");
        if (isinf(v->v.d)) return jd_buf_adds(out, v->v.d > 0 ? "double(\"Infinity\")" : "double(\"-Infinity\")");
        expr__format_double(v->v.d, t, sizeof t);
        /* a double literal needs '.' or an exponent */
        return jd_buf_addf(out, "%s%s", t, strpbrk(t, ".e") ? "" : ".0");
    case EXPR_STRING:
    case EXPR_BYTES: return add_quoted(out, v->v.s.p, v->v.s.n, v->kind == EXPR_BYTES);
    case EXPR_TIMESTAMP:
        expr__format_ts(v->v.i, t, sizeof t);
        return jd_buf_addf(out, "timestamp(\"%s\")", t);
    case EXPR_DURATION:
        expr__format_dur(v->v.i, t, sizeof t);
        return jd_buf_addf(out, "duration(\"%s\")", t);
    case EXPR_TYPE: return jd_buf_adds(out, type_value_name(v->v.type));
    case EXPR_LIST: {
        int rc = jd_buf_adds(out, "[");
        size_t n = expr__list_len(v);
        for (size_t i = 0; i < n && rc == JD_OK; i++) {
            expr_val e;
            expr__list_at(v, i, &e);
            if (i) rc = jd_buf_adds(out, ", ");
            if (rc == JD_OK) rc = expr_val_format(&e, out);
        }
        return rc == JD_OK ? jd_buf_adds(out, "]") : rc;
    }
    case EXPR_MAP: {
        int rc = jd_buf_adds(out, "{");
        expr__mapit it = { 0, NULL };
        expr_val k, e;
        bool first = true;
        while (rc == JD_OK && expr__map_next(v, &it, &k, &e)) {
            if (!first) rc = jd_buf_adds(out, ", ");
            first = false;
            if (rc == JD_OK) rc = expr_val_format(&k, out);
            if (rc == JD_OK) rc = jd_buf_adds(out, ": ");
            if (rc == JD_OK) rc = expr_val_format(&e, out);
        }
        return rc == JD_OK ? jd_buf_adds(out, "}") : rc;
    }
    default: return jd_buf_adds(out, "<error>");
    }
}
