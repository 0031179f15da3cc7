/* bench/expr.c -- nanoseconds per evaluation of typical journey conditions.
 *
 * Each condition is compiled once with the journeyd declarations and then
 * evaluated in a loop against one event/profile held as json-c objects (as
 * a shard holds them), with a resolver that hands out the objects by name.
 * The reference is the same work written by hand in C with
 * json_object_object_get_ex, measured in the same run; the ratio is
 * expr / hand-written. It also counts malloc/calloc/realloc calls made from
 * journeyd's code during the timed evaluations (linked with --wrap): the
 * expression language promises none.
 * Not part of `make test`. Build (release flags, from the repository root):
 *
 *   make build/bench/expr   (or by hand:)
 *   cc -std=gnu17 -O2 -D_GNU_SOURCE -Iinclude -I/usr/include/json-c \
 *      bench/expr.c src/base/?*.c src/expr/?*.c -o build/bench_expr \
 *      -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc \
 *      -ljson-c -lxxhash -lssl -lcrypto -lyaml -lpcre2-8 -licui18n -licuuc -licudata -lpthread -lm
 *
 * Usage: build/bench_expr [seconds per case, default 1]
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/base.h"
#include "journeyd/expr.h"

/* ---- allocation counter (--wrap) ---------------------------------------- */

static unsigned long allocs;
static int counting;
void *__real_malloc(size_t n);
void *__real_calloc(size_t c, size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t c, size_t n);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n) { allocs += counting; return __real_malloc(n); }
void *__wrap_calloc(size_t c, size_t n) { allocs += counting; return __real_calloc(c, n); }
void *__wrap_realloc(void *p, size_t n) { allocs += counting; return __real_realloc(p, n); }

/* ---- the data a shard would hold ------------------------------------------- */

static const char event_json[] =
    "{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"u123\",\"timestamp\":\"2026-03-29T10:00:00Z\","
    "\"properties\":{\"order_id\":\"o-981\",\"total\":120.5,\"currency\":\"EUR\",\"coupon\":\"SUMMER10\","
    "\"items\":[{\"sku\":\"A1\",\"price\":20.0,\"qty\":1},{\"sku\":\"B7\",\"price\":35.5,\"qty\":2},"
    "{\"sku\":\"C3\",\"price\":65.0,\"qty\":1}]}}";
static const char profile_json[] =
    "{\"traits\":{\"country\":\"FR\",\"plan\":\"pro\",\"age\":41,\"email\":\"a@example.com\"},"
    "\"tags\":[\"vip\",\"beta\"],\"consent\":{\"email\":true}}";

typedef struct bench_vars { struct json_object *event, *profile; } bench_vars;

static int resolve(void *self, const char *name, expr_val *out)
{
    bench_vars *b = self;
    struct json_object *j = strcmp(name, "event") == 0 ? b->event : strcmp(name, "profile") == 0 ? b->profile : NULL;
    if (!j) return JD_ENOTFOUND;
    memset(out, 0, sizeof *out);
    out->kind = EXPR_MAP;
    out->v.json = j;
    return JD_OK;
}

/* ---- the hand-written references -------------------------------------------- */

static struct json_object *get(struct json_object *o, const char *k)
{
    struct json_object *c = NULL;
    return json_object_object_get_ex(o, k, &c) ? c : NULL;
}

static bool ref_total_country(const bench_vars *v)
{
    struct json_object *t = get(get(v->event, "properties"), "total");
    struct json_object *c = get(get(v->profile, "traits"), "country");
    return t && c && json_object_get_double(t) > 100.0 && json_object_get_string_len(c) == 2 &&
           memcmp(json_object_get_string(c), "FR", 2) == 0;
}

static bool ref_coupon(const bench_vars *v)
{
    struct json_object *c = get(get(v->event, "properties"), "coupon");
    return c && json_object_is_type(c, json_type_string) && json_object_get_string_len(c) >= 6 &&
           memcmp(json_object_get_string(c), "SUMMER", 6) == 0;
}

static bool ref_items(const bench_vars *v)
{
    struct json_object *items = get(get(v->event, "properties"), "items");
    size_t n = items ? json_object_array_length(items) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *p = get(json_object_array_get_idx(items, i), "price");
        if (p && json_object_get_double(p) > 50.0) return true;
    }
    return false;
}

static const struct bench_case {
    const char *src;
    bool (*ref)(const bench_vars *);
} cases[] = {
    { "event.properties.total > 100.0 && profile.traits.country == \"FR\"", ref_total_country },
    { "has(event.properties.coupon) && event.properties.coupon.startsWith(\"SUMMER\")", ref_coupon },
    { "event.properties.items.exists(i, i.price > 50.0)", ref_items },
};

static double now_ns(void) { return (double)jd_monotonic_ns(); }

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    bench_vars vars = { json_tokener_parse(event_json), json_tokener_parse(profile_json) };
    expr_decls *d = expr_decls_journeyd();
    expr_scratch *s = expr_scratch_create(64 * 1024);
    expr_activation act = { resolve, &vars, NULL };
    printf("%-78s %10s %10s %7s %7s\n", "condition", "expr ns", "C ns", "ratio", "mallocs");
    for (size_t k = 0; k < JD_ARRAY_LEN(cases); k++) {
        expr_prog *p = NULL;
        jd_err err;
        if (expr_compile(cases[k].src, strlen(cases[k].src), d, &p, &err) != JD_OK) {
            fprintf(stderr, "compile %s: %s at %s\n", cases[k].src, err.msg, err.where);
            return 1;
        }
        bool want = cases[k].ref(&vars), got = false;
        if (expr_eval_bool(p, &act, s, &got, &err) != JD_OK || got != want) {
            fprintf(stderr, "%s: wrong result\n", cases[k].src);
            return 1;
        }
        /* calibrate, then time both loops for about `seconds` each */
        unsigned long iters = 1000, i;
        double t0 = now_ns();
        for (i = 0; i < iters; i++) expr_eval_bool(p, &act, s, &got, &err);
        double per = (now_ns() - t0) / (double)iters;
        iters = (unsigned long)(seconds * 1e9 / (per > 1 ? per : 1)) + 1;
        allocs = 0;
        counting = 1;
        unsigned long trues = 0;
        t0 = now_ns();
        for (i = 0; i < iters; i++) {
            expr_eval_bool(p, &act, s, &got, &err);
            trues += got;
        }
        double expr_ns = (now_ns() - t0) / (double)iters;
        counting = 0;
        t0 = now_ns();
        for (i = 0; i < iters; i++) trues += cases[k].ref(&vars);
        double ref_ns = (now_ns() - t0) / (double)iters;
        if (trues != (want ? 2 * iters : 0)) fprintf(stderr, "inconsistent results\n");
        printf("%-78s %10.1f %10.1f %7.2f %7lu\n", cases[k].src, expr_ns, ref_ns, expr_ns / ref_ns, allocs);
        expr_prog_destroy(p);
    }
    expr_scratch_destroy(s);
    expr_decls_destroy(d);
    json_object_put(vars.event);
    json_object_put(vars.profile);
    return 0;
}
