/* fuzz/template_parse.c -- libFuzzer harness for Liquid templates.
 *
 * Input: arbitrary bytes, compiled as a template named "fuzz". Every refusal
 * must fill jd_err with a message and a "fuzz:LINE:COL" position. Every
 * template that compiles is rendered twice against one fixed vars object (once
 * as text, once as an HTML body, with a render time for "now" and small limits
 * so loops and output stay cheap); a render either succeeds or fails with a
 * message and a position, and on failure leaves the output buffer as it was.
 * Never a crash, a leak, a hang or undefined behaviour.
 * Corpus: fuzz/corpus/template_parse/.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/base.h"
#include "journeyd/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

static const char vars_json[] =
    "{\"profile\":{\"first_name\":\"ada\",\"age\":36,\"score\":0.75,\"vip\":true,\"churned\":false,\"nick\":null,"
    "\"tags\":[\"vip\",\"beta\"],\"address\":{\"zip\":\"8001\"},\"bio\":\"<b>Tom & 'Jerry'</b>\","
    "\"signup_at\":\"2026-03-01T08:05:09Z\",\"big\":9223372036854775807},"
    "\"event\":{\"name\":\"Order Completed\",\"total\":120.5,\"count\":3,"
    "\"items\":[{\"sku\":\"A1\",\"price\":20},{\"sku\":\"B7\",\"price\":65.5}]},"
    "\"journey\":{\"name\":\"welcome\",\"variant\":\"B\"},\"message\":{\"url\":\"https://example.com/?a=1\"}}";

static bool where_ok(const jd_err *e)
{
    unsigned line = 0, col = 0;
    char extra;
    return e->msg[0] && sscanf(e->where, "fuzz:%u:%u%c", &line, &col, &extra) == 2 && line >= 1 && col >= 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct json_object *vars;
    static tpl_scratch *scratch;
    if (!vars) {
        vars = json_tokener_parse(vars_json);
        scratch = tpl_scratch_create(1 << 20);
    }
    tpl *t = NULL;
    jd_err err;
    jd_err_clear(&err);
    if (tpl_compile("fuzz", (const char *)data, size, NULL, &t, &err) != JD_OK) {
        CHECK(t == NULL);
        CHECK(where_ok(&err));
        return 0;
    }
    jd_buf out;
    jd_buf_init(&out, 1 << 20);
    for (int html = 0; html < 2; html++) {
        tpl_render_opts o = { .html = html, .has_now = true, .now_us = INT64_C(1774787696000000),
                              .max_output = 64 * 1024, .max_iterations = 2000, .scratch = scratch };
        jd_buf_adds(&out, "#");
        size_t before = out.len;
        jd_err_clear(&err);
        if (tpl_render(t, vars, &o, &out, &err) != JD_OK) {
            CHECK(where_ok(&err));
            CHECK(out.len == before);
        }
        jd_buf_reset(&out);
    }
    jd_buf_release(&out);
    tpl_destroy(t);
    return 0;
}
