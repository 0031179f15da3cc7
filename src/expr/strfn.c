/* src/expr/strfn.c -- string and bytes functions, conversions to string and
 * bytes, and matches() through PCRE2.
 *
 * Invariants:
 *  (1) size() of a string counts code points (langdef.md), of bytes octets.
 *  (2) matches() follows RE2 as closely as PCRE2 allows: UTF-8 mode, '$'
 *      only at the very end (RE2's default), \C refused, a substring match
 *      unless anchored. PCRE2 accepts more than RE2 (backreferences,
 *      lookaround): those work here and are listed in docs/expressions.md.
 *      Because PCRE2 backtracks, every match runs under a match limit and a
 *      heap limit; hitting one is an error, never a hang.
 *  (3) A literal pattern is compiled and JIT-compiled once, at expr_compile
 *      (compile.c); a pattern computed at run time is compiled into the
 *      scratch arena (the scratch's PCRE2 contexts allocate there), so a
 *      program keeps no per-evaluation cache and no unbounded memory.
 */
#include <stdlib.h>

#include "expr_int.h"

#define S  EXPR_STRING
#define B  EXPR_BYTES
#define I  EXPR_INT
#define BO EXPR_BOOL
#define IMPL(name) static void name(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out)
#define END { 0, 0, { 0, 0, 0 }, 0, 0, NULL }

static void set_int(expr_val *o, int64_t v) { memset(o, 0, sizeof *o); o->kind = EXPR_INT; o->v.i = v; }
static void set_bool(expr_val *o, bool v) { memset(o, 0, sizeof *o); o->kind = EXPR_BOOL; o->v.b = v; }

/* A string or bytes value with its text copied into the arena. */
static void make_text(expr__ctx *c, const expr_node *n, const char *s, size_t len, expr_kind k, expr_val *out)
{
    char *p = expr__alloc(c, len + 1);
    if (!p) return expr__fail(c, n, out, "out of scratch memory");
    memcpy(p, s, len);
    p[len] = '\0';
    memset(out, 0, sizeof *out);
    out->kind = k;
    out->v.s.p = p;
    out->v.s.n = len;
}

IMPL(size_str) { (void)c; (void)n; set_int(out, (int64_t)expr__utf8_count(a[0].v.s.p, a[0].v.s.n)); }
IMPL(size_bytes) { (void)c; (void)n; set_int(out, (int64_t)a[0].v.s.n); }
IMPL(size_list) { (void)c; (void)n; set_int(out, (int64_t)expr__list_len(&a[0])); }
IMPL(size_map) { (void)c; (void)n; set_int(out, (int64_t)expr__map_len(&a[0])); }

IMPL(contains)
{
    if (!expr__charge(c, n, a[0].v.s.n / 64, out)) return;
    set_bool(out, a[1].v.s.n == 0 || memmem(a[0].v.s.p, a[0].v.s.n, a[1].v.s.p, a[1].v.s.n) != NULL);
}
IMPL(starts)
{
    (void)c; (void)n;
    set_bool(out, a[1].v.s.n <= a[0].v.s.n && memcmp(a[0].v.s.p, a[1].v.s.p, a[1].v.s.n) == 0);
}
IMPL(ends)
{
    (void)c; (void)n;
    set_bool(out, a[1].v.s.n <= a[0].v.s.n &&
                  memcmp(a[0].v.s.p + a[0].v.s.n - a[1].v.s.n, a[1].v.s.p, a[1].v.s.n) == 0);
}

static void ascii_case(expr__ctx *c, const expr_node *n, const expr_val *s, bool upper, expr_val *out)
{
    make_text(c, n, s->v.s.p, s->v.s.n, EXPR_STRING, out);
    if (out->kind != EXPR_STRING) return;
    char *p = (char *)out->v.s.p;
    for (size_t i = 0; i < out->v.s.n; i++) {
        if (upper && p[i] >= 'a' && p[i] <= 'z') p[i] = (char)(p[i] - 32);
        if (!upper && p[i] >= 'A' && p[i] <= 'Z') p[i] = (char)(p[i] + 32);
    }
}
IMPL(lower) { ascii_case(c, n, &a[0], false, out); }
IMPL(upper) { ascii_case(c, n, &a[0], true, out); }

/* ---- regular expressions (invariants 2, 3) ------------------------------- */

pcre2_code *expr__re_compile(const char *pat, size_t n, pcre2_compile_context *cc, char *msg, size_t cap)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, n, PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C,
                                   &code, &off, cc);
    if (!re) {
        PCRE2_UCHAR buf[128];
        pcre2_get_error_message(code, buf, sizeof buf);
        snprintf(msg, cap, "invalid regular expression '%.*s': %.100s at offset %zu", (int)(n > 40 ? 40 : n), pat,
                 (const char *)buf, (size_t)off);
    }
    return re;
}

IMPL(matches)
{
    const pcre2_code *re;
    char msg[192];
    if (!expr__charge(c, n, 1 + a[0].v.s.n / 64 + a[1].v.s.n, out)) return;
    if (n->re >= 0) {
        re = c->p->re[n->re];
    } else {
        re = expr__re_compile(a[1].v.s.p, a[1].v.s.n, c->s->cctx, msg, sizeof msg);
        if (!re) return expr__fail(c, n, out, "%s", msg);
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, c->s->gctx);
    if (!md) return expr__fail(c, n, out, "out of scratch memory");
    int rc = pcre2_match(re, (PCRE2_SPTR)a[0].v.s.p, a[0].v.s.n, 0, 0, md, c->s->mctx);
    if (rc >= 0) return set_bool(out, true);
    if (rc == PCRE2_ERROR_NOMATCH) return set_bool(out, false);
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT)
        return expr__fail(c, n, out, "regular expression match limit exceeded (expr.max_cost)");
    PCRE2_UCHAR buf[120];
    pcre2_get_error_message(rc, buf, sizeof buf);
    expr__fail(c, n, out, "matches() failed: %s", (const char *)buf);
}

/* ---- conversions to string and bytes ------------------------------------ */

IMPL(str_identity) { (void)c; (void)n; *out = a[0]; }
IMPL(str_of_int)
{
    char t[32];
    int len = snprintf(t, sizeof t, "%lld", (long long)a[0].v.i);
    make_text(c, n, t, (size_t)len, EXPR_STRING, out);
}
IMPL(str_of_uint)
{
    char t[32];
    int len = snprintf(t, sizeof t, "%llu", (unsigned long long)a[0].v.u);
    make_text(c, n, t, (size_t)len, EXPR_STRING, out);
}
IMPL(str_of_dbl)
{
    char t[48];
    int len = expr__format_double(a[0].v.d, t, sizeof t);
    make_text(c, n, t, (size_t)len, EXPR_STRING, out);
}
IMPL(str_of_bool)
{
    const char *t = a[0].v.b ? "true" : "false";
    make_text(c, n, t, strlen(t), EXPR_STRING, out);
}
IMPL(str_of_bytes)
{
    if (!expr__utf8_valid(a[0].v.s.p, a[0].v.s.n)) return expr__fail(c, n, out, "invalid UTF-8 in bytes");
    *out = a[0];
    out->kind = EXPR_STRING;
}
IMPL(str_of_ts)
{
    char t[48];
    int len = expr__format_ts(a[0].v.i, t, sizeof t);
    make_text(c, n, t, (size_t)len, EXPR_STRING, out);
}
IMPL(str_of_dur)
{
    char t[48];
    int len = expr__format_dur(a[0].v.i, t, sizeof t);
    make_text(c, n, t, (size_t)len, EXPR_STRING, out);
}
IMPL(bytes_of_str) { (void)c; (void)n; *out = a[0]; out->kind = EXPR_BYTES; }

#define G1(a0, r, f) { S_GLOBAL, 1, { a0, 0, 0 }, r, R_FIXED, f }
#define R1(a0, r, f) { S_RECV, 1, { a0, 0, 0 }, r, R_FIXED, f }
#define R2(a0, a1, r, f) { S_RECV, 2, { a0, a1, 0 }, r, R_FIXED, f }

const expr__ovl expr__ovl_size[] = {
    { S_BOTH, 1, { S, 0, 0 }, I, R_FIXED, size_str }, { S_BOTH, 1, { B, 0, 0 }, I, R_FIXED, size_bytes },
    { S_BOTH, 1, { EXPR_LIST, 0, 0 }, I, R_FIXED, size_list }, { S_BOTH, 1, { EXPR_MAP, 0, 0 }, I, R_FIXED, size_map },
    END,
};
const expr__ovl expr__ovl_contains[] = { R2(S, S, BO, contains), END };
const expr__ovl expr__ovl_starts[] = { R2(S, S, BO, starts), END };
const expr__ovl expr__ovl_ends[] = { R2(S, S, BO, ends), END };
const expr__ovl expr__ovl_matches[] = { { S_BOTH, 2, { S, S, 0 }, BO, R_FIXED, matches }, END };
const expr__ovl expr__ovl_lower[] = { R1(S, S, lower), END };
const expr__ovl expr__ovl_upper[] = { R1(S, S, upper), END };
const expr__ovl expr__ovl_string[] = {
    G1(S, S, str_identity), G1(I, S, str_of_int), G1(EXPR_UINT, S, str_of_uint), G1(EXPR_DOUBLE, S, str_of_dbl),
    G1(B, S, str_of_bytes), G1(BO, S, str_of_bool), G1(EXPR_TIMESTAMP, S, str_of_ts),
    G1(EXPR_DURATION, S, str_of_dur), END,
};
const expr__ovl expr__ovl_bytes[] = { G1(B, B, str_identity), G1(S, B, bytes_of_str), END };
