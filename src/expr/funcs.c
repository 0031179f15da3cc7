/* src/expr/funcs.c -- the function table: every function and operator, its
 * overloads (signatures for the checker, implementations for the evaluator),
 * and the arithmetic, comparison, indexing and conversion implementations.
 *
 * Invariants:
 *  (1) One row per overload, as langdef.md's "List of Standard Definitions"
 *      lists them; the checker picks rows by static types, the evaluator
 *      re-checks the row against the runtime kinds (expr__dispatch) so a
 *      wrongly typed binding can never reach an implementation.
 *  (2) Integer arithmetic never wraps: overflow is the error "integer
 *      overflow" / "unsigned integer overflow" (langdef.md "Overflow").
 *  (3) Conversions out of range are the error "range error" (conformance
 *      tests' wording), parse failures "cannot convert ...".
 *  (4) journeyd's additions are rows with `ext` set, so docs and tests can
 *      list them (docs/expressions.md "Extensions").
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "expr_int.h"

#define D  EXPR_DYN
#define NU EXPR_NULL
#define BO EXPR_BOOL
#define I  EXPR_INT
#define U  EXPR_UINT
#define F  EXPR_DOUBLE
#define S  EXPR_STRING
#define B  EXPR_BYTES
#define L  EXPR_LIST
#define M  EXPR_MAP
#define TS EXPR_TIMESTAMP
#define DU EXPR_DURATION
#define TY EXPR_TYPE
#define G1(a0, r, f) { S_GLOBAL, 1, { a0, 0, 0 }, r, R_FIXED, f }
#define G2(a0, a1, r, f) { S_GLOBAL, 2, { a0, a1, 0 }, r, R_FIXED, f }
#define END { 0, 0, { 0, 0, 0 }, 0, 0, NULL }

#define IMPL(name) static void name(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out)

static inline void set_int(expr_val *o, int64_t v) { memset(o, 0, sizeof *o); o->kind = EXPR_INT; o->v.i = v; }
static inline void set_uint(expr_val *o, uint64_t v) { memset(o, 0, sizeof *o); o->kind = EXPR_UINT; o->v.u = v; }
static inline void set_dbl(expr_val *o, double v) { memset(o, 0, sizeof *o); o->kind = EXPR_DOUBLE; o->v.d = v; }
static inline void set_bool(expr_val *o, bool v) { memset(o, 0, sizeof *o); o->kind = EXPR_BOOL; o->v.b = v; }

/* ---- arithmetic (invariant 2) ------------------------------------------- */

#define OVF_I "integer overflow"
#define OVF_U "unsigned integer overflow"

IMPL(add_int) { int64_t r; if (__builtin_add_overflow(a[0].v.i, a[1].v.i, &r)) return expr__fail(c, n, out, OVF_I); set_int(out, r); }
IMPL(sub_int) { int64_t r; if (__builtin_sub_overflow(a[0].v.i, a[1].v.i, &r)) return expr__fail(c, n, out, OVF_I); set_int(out, r); }
IMPL(mul_int) { int64_t r; if (__builtin_mul_overflow(a[0].v.i, a[1].v.i, &r)) return expr__fail(c, n, out, OVF_I); set_int(out, r); }
IMPL(add_uint) { uint64_t r; if (__builtin_add_overflow(a[0].v.u, a[1].v.u, &r)) return expr__fail(c, n, out, OVF_U); set_uint(out, r); }
IMPL(sub_uint) { uint64_t r; if (__builtin_sub_overflow(a[0].v.u, a[1].v.u, &r)) return expr__fail(c, n, out, OVF_U); set_uint(out, r); }
IMPL(mul_uint) { uint64_t r; if (__builtin_mul_overflow(a[0].v.u, a[1].v.u, &r)) return expr__fail(c, n, out, OVF_U); set_uint(out, r); }
IMPL(add_dbl) { (void)c; (void)n; set_dbl(out, a[0].v.d + a[1].v.d); }
IMPL(sub_dbl) { (void)c; (void)n; set_dbl(out, a[0].v.d - a[1].v.d); }
IMPL(mul_dbl) { (void)c; (void)n; set_dbl(out, a[0].v.d * a[1].v.d); }
IMPL(div_dbl) { (void)c; (void)n; set_dbl(out, a[0].v.d / a[1].v.d); }   /* IEEE: 1.0/0.0 is +Inf */

IMPL(div_int)
{
    if (a[1].v.i == 0) return expr__fail(c, n, out, "division by zero");
    if (a[0].v.i == INT64_MIN && a[1].v.i == -1) return expr__fail(c, n, out, OVF_I);
    set_int(out, a[0].v.i / a[1].v.i);
}
IMPL(mod_int)
{
    if (a[1].v.i == 0) return expr__fail(c, n, out, "modulus by zero");
    if (a[0].v.i == INT64_MIN && a[1].v.i == -1) return expr__fail(c, n, out, OVF_I);
    set_int(out, a[0].v.i % a[1].v.i);
}
IMPL(div_uint)
{
    if (a[1].v.u == 0) return expr__fail(c, n, out, "division by zero");
    set_uint(out, a[0].v.u / a[1].v.u);
}
IMPL(mod_uint)
{
    if (a[1].v.u == 0) return expr__fail(c, n, out, "modulus by zero");
    set_uint(out, a[0].v.u % a[1].v.u);
}
IMPL(neg_int)
{
    if (a[0].v.i == INT64_MIN) return expr__fail(c, n, out, OVF_I);
    set_int(out, -a[0].v.i);
}
IMPL(neg_dbl) { (void)c; (void)n; set_dbl(out, -a[0].v.d); }
IMPL(not_bool) { (void)c; (void)n; set_bool(out, !a[0].v.b); }

/* Concatenation allocates the result in the scratch arena. */
IMPL(add_str)
{
    size_t len = a[0].v.s.n + a[1].v.s.n;
    if (!expr__charge(c, n, len / 64, out)) return;
    char *p = expr__alloc(c, len + 1);
    if (!p) return expr__fail(c, n, out, "out of scratch memory");
    memcpy(p, a[0].v.s.p, a[0].v.s.n);
    memcpy(p + a[0].v.s.n, a[1].v.s.p, a[1].v.s.n);
    p[len] = '\0';
    memset(out, 0, sizeof *out);
    out->kind = a[0].kind;
    out->v.s.p = p;
    out->v.s.n = len;
}

IMPL(add_list)
{
    size_t n0 = expr__list_len(&a[0]), n1 = expr__list_len(&a[1]);
    if (!expr__charge(c, n, (n0 + n1) / 8, out)) return;
    if (n0 + n1 > UINT32_MAX / 2) return expr__fail(c, n, out, "list too long");
    if (!expr__list_new(c, (uint32_t)(n0 + n1), out)) return expr__fail(c, n, out, "out of scratch memory");
    expr__list *l = (expr__list *)out->v.native;
    for (size_t i = 0; i < n0; i++) expr__list_at(&a[0], i, &l->v[l->n++]);
    for (size_t i = 0; i < n1; i++) expr__list_at(&a[1], i, &l->v[l->n++]);
}

/* ---- equality and ordering --------------------------------------------- */

IMPL(eq) { (void)c; (void)n; set_bool(out, expr__equal(&a[0], &a[1])); }
IMPL(ne) { (void)c; (void)n; set_bool(out, !expr__equal(&a[0], &a[1])); }

/* The four orderings share one comparison; NaN makes every ordering false. */
static void order(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out, int want_lt, int want_eq,
                  int want_gt)
{
    int cmp;
    if (expr__compare(&a[0], &a[1], &cmp) != 0) return expr__no_overload(c, n, a, 2, out);
    set_bool(out, cmp == -1 ? want_lt : cmp == 0 ? want_eq : cmp == 1 ? want_gt : 0);
}
IMPL(lt) { order(c, n, a, out, 1, 0, 0); }
IMPL(le) { order(c, n, a, out, 1, 1, 0); }
IMPL(gt) { order(c, n, a, out, 0, 0, 1); }
IMPL(ge) { order(c, n, a, out, 0, 1, 1); }

/* ---- indexing and membership ------------------------------------------- */

static void index_list(expr__ctx *c, const expr_node *n, const expr_val *l, uint64_t i, bool neg, expr_val *out)
{
    size_t len = expr__list_len(l);
    if (neg || i >= len)
        return expr__fail(c, n, out, "index out of range: %s%llu (list size %zu)", neg ? "-" : "",
                          (unsigned long long)i, len);
    expr__list_at(l, (size_t)i, out);
}
IMPL(index_list_int) { index_list(c, n, &a[0], a[1].v.i < 0 ? 0 - (uint64_t)a[1].v.i : (uint64_t)a[1].v.i, a[1].v.i < 0, out); }
IMPL(index_list_uint) { index_list(c, n, &a[0], a[1].v.u, false, out); }
IMPL(index_list_dbl)
{
    /* The spec lets a double index a list when it is a whole number. */
    double d = a[1].v.d;
    if (d != trunc(d) || !(fabs(d) < 0x1p63)) return expr__fail(c, n, out, "index out of range: %g", d);
    index_list(c, n, &a[0], d < 0 ? (uint64_t)-d : (uint64_t)d, d < 0, out);
}

IMPL(index_map)
{
    int rc = expr__map_get(&a[0], &a[1], out);
    if (rc == 1) return;
    if (rc < 0) return expr__fail(c, n, out, "unsupported key type '%s'", expr__type_name(&a[1]));
    if (a[1].kind == EXPR_STRING && !memchr(a[1].v.s.p, '\0', a[1].v.s.n))
        return expr__fail(c, n, out, "no such key: %.*s", (int)(a[1].v.s.n > 100 ? 100 : a[1].v.s.n), a[1].v.s.p);
    jd_buf b;
    jd_buf_init(&b, 160);
    expr_val_format(&a[1], &b);
    expr__fail(c, n, out, "no such key: %s", b.data ? b.data : "");
    jd_buf_release(&b);
}

IMPL(in_list)
{
    size_t len = expr__list_len(&a[1]);
    if (!expr__charge(c, n, len / 8, out)) return;
    for (size_t i = 0; i < len; i++) {
        expr_val e;
        expr__list_at(&a[1], i, &e);
        if (expr__equal(&a[0], &e)) return set_bool(out, true);
    }
    set_bool(out, false);
}
IMPL(in_map)
{
    expr_val v;
    if (!expr__charge(c, n, expr__map_len(&a[1]) / 8, out)) return;
    set_bool(out, expr__map_get(&a[1], &a[0], &v) == 1);
}

/* ---- conversions (invariant 3) ----------------------------------------- */

IMPL(identity) { (void)c; (void)n; *out = a[0]; }
IMPL(type_of)
{
    (void)c; (void)n;
    memset(out, 0, sizeof *out);
    out->kind = EXPR_TYPE;
    out->v.type = a[0].kind;
}

/* strtoll/strtoull want a C string without surrounding junk; values are
 * NUL-terminated (value.c invariant 2) but may hold one inside. */
static bool parse_num_text(const expr_val *s, int base_kind, expr_val *out)
{
    const char *p = s->v.s.p;
    size_t len = s->v.s.n;
    if (len == 0 || len > 64 || memchr(p, '\0', len) || p[0] == ' ' || p[0] == '\t' || p[0] == '+')
        return false;
    char *end;
    errno = 0;
    if (base_kind == EXPR_INT) {
        long long v = strtoll(p, &end, 10);
        if (errno || end != p + len) return false;
        set_int(out, v);
    } else if (base_kind == EXPR_UINT) {
        if (p[0] == '-') return false;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || end != p + len) return false;
        set_uint(out, v);
    } else {
        double d = strtod(p, &end);
        if (end != p + len || (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))) return false;
        set_dbl(out, d);   /* overflow gives +-Inf, as Go's ParseFloat with its range error ignored */
    }
    return true;
}

static void cannot_convert(expr__ctx *c, const expr_node *n, const expr_val *s, const char *to, expr_val *out)
{
    expr__fail(c, n, out, "cannot convert '%.*s' to %s", (int)(s->v.s.n > 64 ? 64 : s->v.s.n), s->v.s.p, to);
}

IMPL(int_of_uint) { if (a[0].v.u > (uint64_t)INT64_MAX) return expr__fail(c, n, out, "range error"); set_int(out, (int64_t)a[0].v.u); }
IMPL(int_of_dbl)
{
    double d = a[0].v.d;   /* -2^63 itself is refused, as cel-go and the conformance tests do */
    if (!(d > -0x1p63 && d < 0x1p63)) return expr__fail(c, n, out, "range error");
    set_int(out, (int64_t)d);
}
IMPL(int_of_str) { if (!parse_num_text(&a[0], EXPR_INT, out)) cannot_convert(c, n, &a[0], "int", out); }
IMPL(uint_of_int) { if (a[0].v.i < 0) return expr__fail(c, n, out, "range error"); set_uint(out, (uint64_t)a[0].v.i); }
IMPL(uint_of_dbl)
{
    double d = a[0].v.d;
    if (!(d > -1.0 && d < 0x1p64)) return expr__fail(c, n, out, "range error");
    set_uint(out, (uint64_t)d);
}
IMPL(uint_of_str) { if (!parse_num_text(&a[0], EXPR_UINT, out)) cannot_convert(c, n, &a[0], "uint", out); }
IMPL(dbl_of_int) { (void)c; (void)n; set_dbl(out, (double)a[0].v.i); }
IMPL(dbl_of_uint) { (void)c; (void)n; set_dbl(out, (double)a[0].v.u); }
IMPL(dbl_of_str) { if (!parse_num_text(&a[0], EXPR_DOUBLE, out)) cannot_convert(c, n, &a[0], "double", out); }

/* bool(string): the spellings Go's strconv.ParseBool accepts, as cel-go. */
IMPL(bool_of_str)
{
    static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True" };
    static const char *const f[] = { "0", "f", "F", "FALSE", "false", "False" };
    for (size_t i = 0; i < JD_ARRAY_LEN(t); i++) {
        if (strlen(t[i]) == a[0].v.s.n && memcmp(t[i], a[0].v.s.p, a[0].v.s.n) == 0) return set_bool(out, true);
        if (strlen(f[i]) == a[0].v.s.n && memcmp(f[i], a[0].v.s.p, a[0].v.s.n) == 0) return set_bool(out, false);
    }
    cannot_convert(c, n, &a[0], "bool", out);
}

/* ---- the table ------------------------------------------------------------ */

static const expr__ovl ovl_not[] = { G1(BO, BO, not_bool), END };
static const expr__ovl ovl_neg[] = { G1(I, I, neg_int), G1(F, F, neg_dbl), G1(DU, DU, expr__neg_dur), END };
static const expr__ovl ovl_add[] = {
    G2(I, I, I, add_int), G2(U, U, U, add_uint), G2(F, F, F, add_dbl), G2(S, S, S, add_str),
    G2(B, B, B, add_str), { S_GLOBAL, 2, { L, L, 0 }, L, R_LISTJOIN, add_list },
    G2(TS, DU, TS, expr__add_ts_dur), G2(DU, TS, TS, expr__add_dur_ts), G2(DU, DU, DU, expr__add_dur_dur), END,
};
static const expr__ovl ovl_sub[] = {
    G2(I, I, I, sub_int), G2(U, U, U, sub_uint), G2(F, F, F, sub_dbl),
    G2(TS, TS, DU, expr__sub_ts_ts), G2(TS, DU, TS, expr__sub_ts_dur), G2(DU, DU, DU, expr__sub_dur_dur), END,
};
static const expr__ovl ovl_mul[] = { G2(I, I, I, mul_int), G2(U, U, U, mul_uint), G2(F, F, F, mul_dbl), END };
static const expr__ovl ovl_div[] = { G2(I, I, I, div_int), G2(U, U, U, div_uint), G2(F, F, F, div_dbl), END };
static const expr__ovl ovl_mod[] = { G2(I, I, I, mod_int), G2(U, U, U, mod_uint), END };
/* Equality is (A, A) -> bool; the checker compares the two types itself. */
static const expr__ovl ovl_eq[] = { G2(D, D, BO, eq), END };
static const expr__ovl ovl_ne[] = { G2(D, D, BO, ne), END };
/* Orderings: same-type pairs, and across int/uint/double (langdef.md's
 * heterogeneous numeric comparison). */
#define ORD(f) \
    G2(BO, BO, BO, f), G2(I, I, BO, f), G2(U, U, BO, f), G2(F, F, BO, f), G2(S, S, BO, f), G2(B, B, BO, f), \
    G2(TS, TS, BO, f), G2(DU, DU, BO, f), G2(I, U, BO, f), G2(I, F, BO, f), G2(U, I, BO, f), G2(U, F, BO, f), \
    G2(F, I, BO, f), G2(F, U, BO, f), END
static const expr__ovl ovl_lt[] = { ORD(lt) };
static const expr__ovl ovl_le[] = { ORD(le) };
static const expr__ovl ovl_gt[] = { ORD(gt) };
static const expr__ovl ovl_ge[] = { ORD(ge) };
static const expr__ovl ovl_index[] = {
    { S_GLOBAL, 2, { L, I, 0 }, D, R_ELEM0, index_list_int }, { S_GLOBAL, 2, { L, U, 0 }, D, R_ELEM0, index_list_uint },
    { S_GLOBAL, 2, { L, F, 0 }, D, R_ELEM0, index_list_dbl }, { S_GLOBAL, 2, { M, D, 0 }, D, R_ELEM0, index_map }, END,
};
static const expr__ovl ovl_in[] = { G2(D, L, BO, in_list), G2(D, M, BO, in_map), END };
static const expr__ovl ovl_int[] = {
    G1(I, I, identity), G1(U, I, int_of_uint), G1(F, I, int_of_dbl), G1(S, I, int_of_str),
    G1(TS, I, expr__int_of_ts), END,
};
static const expr__ovl ovl_uint[] = { G1(U, U, identity), G1(I, U, uint_of_int), G1(F, U, uint_of_dbl), G1(S, U, uint_of_str), END };
static const expr__ovl ovl_double[] = { G1(F, F, identity), G1(I, F, dbl_of_int), G1(U, F, dbl_of_uint), G1(S, F, dbl_of_str), END };
static const expr__ovl ovl_bool[] = { G1(BO, BO, identity), G1(S, BO, bool_of_str), END };
static const expr__ovl ovl_dyn[] = { G1(D, D, identity), END };
static const expr__ovl ovl_type[] = { G1(D, TY, type_of), END };

const expr__fn expr__fns[] = {
    { "!_", ovl_not, NULL },
    { "-_", ovl_neg, NULL },
    { "_+_", ovl_add, NULL },
    { "_-_", ovl_sub, NULL },
    { "_*_", ovl_mul, NULL },
    { "_/_", ovl_div, NULL },
    { "_%_", ovl_mod, NULL },
    { "_==_", ovl_eq, NULL },
    { "_!=_", ovl_ne, NULL },
    { "_<_", ovl_lt, NULL },
    { "_<=_", ovl_le, NULL },
    { "_>_", ovl_gt, NULL },
    { "_>=_", ovl_ge, NULL },
    { "_[_]", ovl_index, NULL },
    { "@in", ovl_in, NULL },
    { "size", expr__ovl_size, NULL },
    { "contains", expr__ovl_contains, NULL },
    { "startsWith", expr__ovl_starts, NULL },
    { "endsWith", expr__ovl_ends, NULL },
    { "matches", expr__ovl_matches, NULL },
    { "lowerAscii", expr__ovl_lower, "from cel-go's strings extension" },
    { "upperAscii", expr__ovl_upper, "from cel-go's strings extension" },
    { "int", ovl_int, NULL },
    { "uint", ovl_uint, NULL },
    { "double", ovl_double, NULL },
    { "string", expr__ovl_string, NULL },
    { "bytes", expr__ovl_bytes, NULL },
    { "bool", ovl_bool, NULL },
    { "dyn", ovl_dyn, NULL },
    { "type", ovl_type, NULL },
    { "timestamp", expr__ovl_timestamp, NULL },
    { "duration", expr__ovl_duration, NULL },
    { "getFullYear", expr__ovl_full_year, NULL },
    { "getMonth", expr__ovl_month, NULL },
    { "getDate", expr__ovl_date, NULL },
    { "getDayOfMonth", expr__ovl_day_of_month, NULL },
    { "getDayOfWeek", expr__ovl_day_of_week, NULL },
    { "getDayOfYear", expr__ovl_day_of_year, NULL },
    { "getHours", expr__ovl_hours, NULL },
    { "getMinutes", expr__ovl_minutes, NULL },
    { "getSeconds", expr__ovl_seconds, NULL },
    { "getMilliseconds", expr__ovl_millis, NULL },
    { "days_since", expr__ovl_days_since, "journeyd: whole days from a timestamp to `now`" },
    { "local_hour", expr__ovl_local_hour, "journeyd: the hour (0-23) of a timestamp in a time zone" },
    { "in_segment", expr__ovl_in_segment, "journeyd: segment membership through the activation" },
    { "consented", expr__ovl_consented, "journeyd: may the person get this channel (and topic), through the activation" },
};
const size_t expr__nfns = JD_ARRAY_LEN(expr__fns);

int expr__fn_find(const char *name, size_t n)
{
    for (size_t i = 0; i < expr__nfns; i++)
        if (strlen(expr__fns[i].name) == n && memcmp(expr__fns[i].name, name, n) == 0) return (int)i;
    return -1;
}

int expr__fn_id(const char *name)
{
    int id = expr__fn_find(name, strlen(name));
    JD_ASSERT(id >= 0);
    return id;
}

static bool row_fits(const expr__ovl *o, const expr_node *n, const expr_val *args, unsigned nargs)
{
    if (o->nargs != nargs || !(o->style & ((n->flags & NF_RECV) ? S_RECV : S_GLOBAL))) return false;
    for (unsigned i = 0; i < nargs; i++)
        if (!expr__kind_fits(o->arg[i], args[i].kind)) return false;
    return true;
}

const expr__ovl *expr__dispatch(const expr__fn *f, const expr_node *n, const expr_val *args, unsigned nargs)
{
    if (n->ovl >= 0 && row_fits(&f->ovl[n->ovl], n, args, nargs)) return &f->ovl[n->ovl];
    /* Only the rows the checker found possible; a binding of the wrong kind
     * at run time fails them all, and then no other row can fit either
     * unless the declared kinds lied, so fall back to every row. */
    for (uint32_t m = n->cand; m; m &= m - 1) {
        const expr__ovl *o = &f->ovl[__builtin_ctz(m)];
        if (row_fits(o, n, args, nargs)) return o;
    }
    for (const expr__ovl *o = f->ovl; o->impl; o++)
        if (row_fits(o, n, args, nargs)) return o;
    return NULL;
}
