/* fuzz/expr_compile.c -- libFuzzer harness for the expression language.
 *
 * Input: arbitrary bytes, compiled as a CEL expression with the journeyd
 * declarations (event, profile, journey: maps; now: a timestamp). Every
 * refusal must fill jd_err with a message and a LINE:COL. Every program that
 * compiles is evaluated against one fixed activation and must give a value
 * that formats, or an error with a message and a LINE:COL; then once more
 * through expr_eval_bool. Never a crash, a leak, a hang (the cost budget and
 * the 256 KiB scratch bound each evaluation) or undefined behaviour.
 * Corpus: fuzz/corpus/expr_compile/.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/base.h"
#include "journeyd/expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

static const char vars_json[] =
    "{\"event\":{\"name\":\"Order Completed\",\"properties\":{\"total\":120.5,\"count\":3,"
    "\"coupon\":\"SUMMER10\",\"items\":[{\"sku\":\"A1\",\"price\":60.0},{\"sku\":\"B2\",\"price\":10}],"
    "\"tags\":[\"a\",\"b\"],\"nothing\":null,\"big\":18446744073709551615}},"
    "\"profile\":{\"traits\":{\"country\":\"FR\",\"age\":41,\"signup_at\":\"2026-01-02T03:04:05Z\"},"
    "\"tags\":[\"vip\"],\"consent\":{\"email\":true}},"
    "\"journey\":{\"variant\":\"B\",\"time_in_journey_s\":3600,\"entry_event\":{\"event\":\"signup\"}},"
    "\"now\":\"2026-03-29T12:00:00Z\",\"segment:vip\":true}";

static bool where_ok(const jd_err *e)
{
    unsigned line = 0, col = 0;
    char extra;
    return e->msg[0] && sscanf(e->where, "%u:%u%c", &line, &col, &extra) == 2 && line >= 1 && col >= 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct json_object *vars;
    static expr_decls *decls;
    static expr_scratch *scratch;
    if (!vars) {
        vars = json_tokener_parse(vars_json);
        decls = expr_decls_journeyd();
        scratch = expr_scratch_create(256 * 1024);
    }
    expr_prog *p = NULL;
    jd_err err;
    jd_err_clear(&err);
    if (expr_compile((const char *)data, size, decls, &p, &err) != JD_OK) {
        CHECK(p == NULL);
        CHECK(where_ok(&err));
        return 0;
    }
    expr_activation a;
    expr_activation_json(&a, vars);
    a.default_tz = (size & 1) ? "Europe/Paris" : NULL;
    expr_val v;
    expr_scratch_reset(scratch);
    jd_err_clear(&err);
    if (expr_eval(p, &a, scratch, &v, &err) == JD_OK) {
        jd_buf b;
        jd_buf_init(&b, 1 << 20);
        int rc = expr_val_format(&v, &b);
        CHECK(rc == JD_OK || rc == JD_ELIMIT);
        jd_buf_release(&b);
    } else {
        CHECK(where_ok(&err));
    }
    bool out;
    expr_scratch_reset(scratch);
    jd_err_clear(&err);
    if (expr_eval_bool(p, &a, scratch, &out, &err) != JD_OK) CHECK(where_ok(&err));
    expr_prog_destroy(p);
    return 0;
}
