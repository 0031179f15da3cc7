/* tests/unit/expr/test_expr.c -- the expr.h contract beyond the golden cases:
 * positions on several lines, the limits (source, cost, scratch), the
 * activation (resolve once, absent variables, declared kinds, default_tz),
 * expr_eval_bool, the journeyd declarations, and many threads on one program. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "journeyd/base.h"
#include "journeyd/expr.h"

static expr_prog *compile_ok(const char *src, const expr_decls *d)
{
    expr_prog *p = NULL;
    jd_err err = { 0 };
    int rc = expr_compile(src, strlen(src), d, &p, &err);
    if (rc != JD_OK) fprintf(stderr, "compile %s: %s at %s\n", src, err.msg, err.where);
    assert_int_equal(rc, JD_OK);
    return p;
}

static void compile_err(const char *src, const expr_decls *d, const char *where, const char *msg)
{
    expr_prog *p = NULL;
    jd_err err = { 0 };
    assert_int_equal(expr_compile(src, strlen(src), d, &p, &err), JD_EINVAL);
    assert_null(p);
    assert_string_equal(err.where, where);
    assert_string_equal(err.msg, msg);
}

/* A resolver over a JSON object that counts its calls. */
typedef struct counting { struct json_object *vars; int calls; } counting;
static int count_resolve(void *self, const char *name, expr_val *out)
{
    counting *c = self;
    c->calls++;
    expr_activation a;
    expr_activation_json(&a, c->vars);
    return a.resolve(a.self, name, out);
}

static void test_positions_on_several_lines(void **state)
{
    (void)state;
    expr_decls *d = expr_decls_journeyd();
    compile_err("1 +\n  2 *\n    \"x\"", d, "2:5", "found no matching overload for '_*_' applied to '(int, string)'");
    compile_err("event.a &&\r\n  evnt.b", d, "2:3", "undeclared reference to 'evnt'");
    compile_err("// leading comment\n  (1 + ", d, "2:8", "Syntax error: mismatched input '<EOF>' expecting an expression");
    compile_err("'h\u00e9llo' + 1", d, "1:9", "found no matching overload for '_+_' applied to '(string, int)'");
    compile_err("event[1]", d, "1:6", "found no matching overload for '_[_]' applied to '(map(string, dyn), int)'");
    compile_err("now + 1", d, "1:5", "found no matching overload for '_+_' applied to '(timestamp, int)'");
    expr_decls_destroy(d);
}

static void test_limits_at_compile_time(void **state)
{
    (void)state;
    size_t n = 16385;
    char *src = malloc(n + 1);
    memset(src, ' ', n);
    src[0] = '1';
    src[n] = '\0';
    compile_err(src, NULL, "1:1", "expression is longer than 16384 bytes (expr.max_source)");
    src[n - 1] = '\0';   /* 16384 bytes are fine */
    expr_prog_destroy(compile_ok(src, NULL));
    free(src);
    compile_err("\"\xff\"", NULL, "1:1", "Syntax error: the expression is not valid UTF-8");
    /* 32 terms in a row must work (langdef.md), 63 operators too */
    char chain[512] = "1";
    for (int i = 0; i < 63; i++) strcat(chain, " + 1");
    expr_prog_destroy(compile_ok(chain, NULL));
}

static const char *eval_err(const expr_prog *p, const expr_activation *a, expr_scratch *s, jd_err *err)
{
    expr_val v;
    assert_int_not_equal(expr_eval(p, a, s, &v, err), JD_OK);
    return err->msg;
}

static void test_cost_budget_stops_runaway(void **state)
{
    (void)state;
    expr_scratch *s = expr_scratch_create(1 << 20);
    expr_activation a;
    expr_activation_json(&a, NULL);
    const char *srcs[] = {
        "[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, "
        "[1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, true)))))",
        /* the error is fatal: || true does not absorb it */
        "[1,2,3,4,5,6,7,8,9,10].exists(a, [1,2,3,4,5,6,7,8,9,10].exists(b, [1,2,3,4,5,6,7,8,9,10].exists(c, "
        "[1,2,3,4,5,6,7,8,9,10].exists(d, [1,2,3,4,5,6,7,8,9,10].exists(e, false))))) || true",
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(srcs); i++) {
        expr_prog *p = compile_ok(srcs[i], NULL);
        jd_err err;
        expr_scratch_reset(s);
        assert_string_equal(eval_err(p, &a, s, &err), "evaluation cost exceeded 100000 (expr.max_cost)");
        expr_prog_destroy(p);
    }
    expr_scratch_destroy(s);
}

static void test_scratch_ceiling(void **state)
{
    (void)state;
    expr_scratch *s = expr_scratch_create(4096);
    expr_activation a;
    expr_activation_json(&a, NULL);
    expr_prog *p = compile_ok("[1,2,3,4,5,6,7,8].map(x, [1,2,3,4,5,6,7,8].map(y, [x, y, 'some text']))", NULL);
    jd_err err;
    assert_string_equal(eval_err(p, &a, s, &err),
                        "evaluation needs more than 4096 bytes of scratch memory (expr.max_scratch)");
    /* after a reset the same scratch serves a small evaluation */
    expr_scratch_reset(s);
    expr_prog *q = compile_ok("[1, 2].map(x, x * 2) == [2, 4]", NULL);
    bool b = false;
    assert_int_equal(expr_eval_bool(q, &a, s, &b, &err), JD_OK);
    assert_true(b);
    expr_prog_destroy(p);
    expr_prog_destroy(q);
    expr_scratch_destroy(s);
}

static void test_activation(void **state)
{
    (void)state;
    expr_decls *d = expr_decls_journeyd();
    expr_scratch *s = expr_scratch_create(1 << 16);
    counting c = { json_tokener_parse("{\"event\":{\"name\":\"x\",\"n\":3},\"profile\":\"oops\"}"), 0 };
    expr_activation a = { count_resolve, &c, NULL };
    jd_err err;
    bool b;
    /* resolved once per evaluation however often it is named */
    expr_prog *p = compile_ok("event.name == 'x' && event.n == 3 && has(event.name)", d);
    assert_int_equal(expr_eval_bool(p, &a, s, &b, &err), JD_OK);
    assert_true(b);
    assert_int_equal(c.calls, 1);
    expr_prog_destroy(p);
    /* an absent variable: has() is false, a select is "no such key" */
    p = compile_ok("has(journey.variant)", d);
    assert_int_equal(expr_eval_bool(p, &a, s, &b, &err), JD_OK);
    assert_false(b);
    expr_prog_destroy(p);
    p = compile_ok("journey.variant == 'A'", d);
    assert_int_equal(expr_eval_bool(p, &a, s, &b, &err), JD_EINVAL);
    assert_string_equal(err.msg, "no such key: journey");
    assert_string_equal(err.where, "1:1");
    expr_prog_destroy(p);
    /* a value of the wrong kind for its declaration */
    p = compile_ok("profile.traits.x == 1", d);
    assert_int_equal(expr_eval_bool(p, &a, s, &b, &err), JD_EINVAL);
    assert_string_equal(err.msg, "variable 'profile' is string, declared map");
    expr_prog_destroy(p);
    /* expr_eval_bool wants a bool and gives the scratch back */
    p = compile_ok("event.n + 1", d);
    assert_int_equal(expr_prog_kind(p), EXPR_INT);   /* only int + int can take an int */
    assert_string_equal(expr_prog_source(p), "event.n + 1");
    assert_int_equal(expr_eval_bool(p, &a, s, &b, &err), JD_EINVAL);
    assert_string_equal(err.msg, "condition is int, want bool");
    expr_prog_destroy(p);
    p = compile_ok("[1, 2, 3].map(x, string(x)).size() == 3", d);
    assert_int_equal(expr_prog_kind(p), EXPR_BOOL);
    for (int i = 0; i < 1000; i++) assert_int_equal(expr_eval_bool(p, &a, s, &b, &err), JD_OK);
    expr_prog_destroy(p);
    json_object_put(c.vars);
    expr_scratch_destroy(s);
    expr_decls_destroy(d);
}

static void test_default_time_zone(void **state)
{
    (void)state;
    expr_decls *d = expr_decls_journeyd();
    expr_scratch *s = expr_scratch_create(1 << 16);
    struct json_object *vars = json_tokener_parse("{\"now\":\"2026-03-29T07:30:00Z\"}");
    expr_activation a;
    expr_activation_json(&a, vars);
    expr_prog *p = compile_ok("now.getHours()", d);
    expr_val v;
    jd_err err;
    assert_int_equal(expr_eval(p, &a, s, &v, &err), JD_OK);
    assert_int_equal(v.kind, EXPR_INT);
    assert_int_equal(v.v.i, 7);            /* CEL's default: UTC */
    a.default_tz = "Europe/Paris";
    assert_int_equal(expr_eval(p, &a, s, &v, &err), JD_OK);
    assert_int_equal(v.v.i, 9);            /* CEST, the day DST starts */
    a.default_tz = "Nowhere/Town";
    assert_int_equal(expr_eval(p, &a, s, &v, &err), JD_EINVAL);
    assert_string_equal(err.msg, "unknown time zone 'Nowhere/Town'");
    expr_prog_destroy(p);
    json_object_put(vars);
    expr_scratch_destroy(s);
    expr_decls_destroy(d);
}

/* consented(channel[, topic]) asks the activation for "consent:<channel>[/<topic>]"
 * (the host answers it with prof_consent_allows, tests/unit/journey/test_host.c;
 * `journeyd eval` from its vars, as here). */
static void test_consented(void **state)
{
    (void)state;
    expr_decls *d = expr_decls_journeyd();
    expr_scratch *s = expr_scratch_create(1 << 16);
    counting c = { json_tokener_parse("{\"consent:email/marketing\":true,\"consent:sms\":false,\"consent:push/x\":\"yes\"}"), 0 };
    expr_activation a = { count_resolve, &c, NULL };
    static const struct { const char *src; bool want; } ok[] = {
        { "consented('email', 'marketing')", true },
        { "consented('sms')", false },
        { "consented('email', 'marketing') && !consented('sms')", true },
        { "[\"marketing\"].all(t, consented(\"email\", t))", true },
    };
    jd_err err;
    for (size_t i = 0; i < JD_ARRAY_LEN(ok); i++) {
        expr_prog *p = compile_ok(ok[i].src, d);
        assert_int_equal(expr_prog_kind(p), EXPR_BOOL);
        bool b = !ok[i].want;
        assert_int_equal(expr_eval_bool(p, &a, s, &b, &err), JD_OK);
        assert_int_equal(b, ok[i].want);
        expr_prog_destroy(p);
    }
    static const struct { const char *src, *msg; } bad[] = {
        { "consented('email', 'news')", "consented() needs the variable 'consent:email/news'" },
        { "consented('push', 'x')", "'consent:push/x' resolved to string, want bool" },
        { "consented('email/marketing')", "invalid channel 'email/marketing': 1 to 64 bytes, no '/'" },
        { "consented('', 'x')", "invalid channel '': 1 to 64 bytes, no '/'" },
        { "consented('email', '')", "invalid topic: 1 to 128 bytes" },
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(bad); i++) {
        expr_prog *p = compile_ok(bad[i].src, d);
        c.calls = 0;
        assert_string_equal(eval_err(p, &a, s, &err), bad[i].msg);
        assert_int_equal(c.calls, i < 2 ? 1 : 0);   /* a bad argument is never asked for */
        expr_prog_destroy(p);
    }
    compile_err("consented(1)", d, "1:1", "found no matching overload for 'consented' applied to '(int)'");
    compile_err("consented('email', 'a', 'b')", d, "1:1",
                "found no matching overload for 'consented' applied to '(string, string, string)'");
    json_object_put(c.vars);
    expr_scratch_destroy(s);
    expr_decls_destroy(d);
}

static void test_decls_and_kinds(void **state)
{
    (void)state;
    expr_decls *d = expr_decls_create();
    expr_decls_var(d, "n", EXPR_INT, EXPR_DYN);
    expr_decls_var(d, "tags", EXPR_LIST, EXPR_STRING);
    expr_decls_var(d, "n", EXPR_DOUBLE, EXPR_DYN);   /* redeclaring replaces */
    expr_prog *p = compile_ok("n * 2.0", d);
    assert_int_equal(expr_prog_kind(p), EXPR_DOUBLE);
    expr_prog_destroy(p);
    p = compile_ok("tags[0]", d);
    assert_int_equal(expr_prog_kind(p), EXPR_STRING);
    expr_prog_destroy(p);
    compile_err("tags[0] + 1", d, "1:9", "found no matching overload for '_+_' applied to '(string, int)'");
    compile_err("n + 1", d, "1:3", "found no matching overload for '_+_' applied to '(double, int)'");
    assert_string_equal(expr_kind_name(EXPR_TIMESTAMP), "timestamp");
    assert_string_equal(expr_kind_name(EXPR_MAP), "map");
    expr_decls_destroy(d);
}

static void test_format(void **state)
{
    (void)state;
    static const struct { const char *src, *want; } cases[] = {
        { "1.0", "1.0" }, { "-0.0", "-0.0" }, { "1e100", "1e+100" }, { "0.1 + 0.2", "0.30000000000000004" },
        { "123456.0", "123456.0" }, { "1234567.0", "1.234567e+06" }, { "0.0001", "0.0001" },
        { "0.00001", "1e-05" }, { "'\\x01\\u00e9'", "\"\\x01\u00e9\"" }, { "b'\\x00\\xfe'", "b\"\\x00\\xfe\"" },
        { "{'k': [1u, null, {}]}", "{\"k\": [1u, null, {}]}" }, { "duration('-1.5s')", "duration(\"-1.5s\")" },
        { "timestamp('1969-12-31T23:59:59.25Z')", "timestamp(\"1969-12-31T23:59:59.25Z\")" },
        { "[int, type, null_type]", "[int, type, null_type]" },
        /* no activation at all: accessors fall back to UTC */
        { "timestamp('2026-03-29T07:30:00Z').getHours()", "7" },
    };
    expr_scratch *s = expr_scratch_create(1 << 16);
    for (size_t i = 0; i < JD_ARRAY_LEN(cases); i++) {
        expr_prog *p = compile_ok(cases[i].src, NULL);
        expr_val v;
        jd_err err;
        jd_buf b;
        jd_buf_init(&b, 1024);
        assert_int_equal(expr_eval(p, NULL, s, &v, &err), JD_OK);
        assert_int_equal(expr_val_format(&v, &b), JD_OK);
        assert_string_equal(b.data, cases[i].want);
        jd_buf_release(&b);
        expr_prog_destroy(p);
    }
    expr_scratch_destroy(s);
}

/* One program, many threads, each with its own scratch (expr.h "Threading"). */
typedef struct thr { const expr_prog *p; struct json_object *vars; int trues; } thr;
static void *worker(void *arg)
{
    thr *t = arg;
    expr_scratch *s = expr_scratch_create(1 << 16);
    expr_activation a;
    expr_activation_json(&a, t->vars);
    jd_err err;
    for (int i = 0; i < 2000; i++) {
        bool b = false;
        if (expr_eval_bool(t->p, &a, s, &b, &err) == JD_OK && b) t->trues++;
    }
    expr_scratch_destroy(s);
    return NULL;
}

static void test_threads_share_a_program(void **state)
{
    (void)state;
    expr_decls *d = expr_decls_journeyd();
    expr_prog *p = compile_ok("event.items.exists(i, i.sku.matches('^A[0-9]+$')) && "
                              "now.getHours('America/New_York') == 8", d);
    struct json_object *vars = json_tokener_parse(
        "{\"event\":{\"items\":[{\"sku\":\"B1\"},{\"sku\":\"A42\"}]},\"now\":\"2026-07-01T12:00:00Z\"}");
    pthread_t th[4];
    thr t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (thr){ p, vars, 0 };
        pthread_create(&th[i], NULL, worker, &t[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].trues, 2000);
    }
    json_object_put(vars);
    expr_prog_destroy(p);
    expr_decls_destroy(d);
}

/* Guards: equalities in the top-level conjunction only, either side, paths
 * from a variable; has(), ||, ! and non-string literals are not guards. */
static void test_guards(void **state)
{
    (void)state;
    expr_decls *d = expr_decls_journeyd();
    expr_guard g[8];
    expr_prog *p = compile_ok("event.properties.price > 5.0 && \"c3\" == event.properties.category && "
                              "profile.traits.plan == 'pro'", d);
    size_t n = expr_prog_guards(p, g, 8);
    assert_int_equal(n, 2);
    assert_string_equal(g[0].var, "event");
    assert_int_equal(g[0].npath, 2);
    assert_string_equal(g[0].path[0], "properties");
    assert_string_equal(g[0].path[1], "category");
    assert_int_equal(g[0].value_len, 2);
    assert_memory_equal(g[0].value, "c3", 2);
    assert_string_equal(g[1].var, "profile");
    assert_string_equal(g[1].path[1], "plan");
    assert_int_equal(expr_prog_guards(p, g, 1), 1);   /* max is respected */
    expr_prog_destroy(p);
    static const char *const none[] = {
        "event.properties.category == 'a' || event.properties.price > 1.0",
        "!(event.properties.category == 'a')",
        "has(event.properties.category) == true",
        "event.properties.count == 3",
        "event.properties.category != 'a'",
        "true",
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(none); i++) {
        p = compile_ok(none[i], d);
        assert_int_equal(expr_prog_guards(p, g, 8), 0);
        expr_prog_destroy(p);
    }
    expr_decls_destroy(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positions_on_several_lines),
        cmocka_unit_test(test_limits_at_compile_time),
        cmocka_unit_test(test_cost_budget_stops_runaway),
        cmocka_unit_test(test_scratch_ceiling),
        cmocka_unit_test(test_activation),
        cmocka_unit_test(test_default_time_zone),
        cmocka_unit_test(test_consented),
        cmocka_unit_test(test_decls_and_kinds),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_threads_share_a_program),
        cmocka_unit_test(test_guards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
