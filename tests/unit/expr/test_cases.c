/* tests/unit/expr/test_cases.c -- the golden files in tests/cases/expr (every .case file).
 *
 * Format (jq style), blocks separated by blank lines; '#' lines are comments:
 *     <expression>            one line of CEL
 *     <variables>             one line of JSON: an object whose keys are variables
 *     <value>                 the result in CEL literal syntax (expr_val_format)
 * or, for an expression that must fail (to compile or to evaluate):
 *     %%FAIL
 *     <expression>
 *     <variables>
 *     error: <msg> at LINE:COL
 * Variables are declared as `journeyd eval` declares them: every key that is
 * an identifier is dyn, except `now`, a timestamp. So each block can be
 * replayed by hand: journeyd eval '<expression>' --vars <(echo '<variables>').
 * Run from the repository root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <dirent.h>
#include <json-c/json.h>

#include "journeyd/base.h"
#include "journeyd/expr.h"

#define CASE_DIR "tests/cases/expr"

/* Runs one block; returns 0 if it passes, else prints why. */
static int run_block(const char *file, int line0, char **lines, size_t n, expr_scratch *scratch)
{
    bool fail = strcmp(lines[0], "%%FAIL") == 0;
    size_t i = fail ? 1 : 0;
    if (n != i + 3) {
        fprintf(stderr, "%s:%d: malformed case (want expression, variables, expected)\n", file, line0);
        return 1;
    }
    const char *src = lines[i], *want = lines[i + 2];
    struct json_object *vars = json_tokener_parse(lines[i + 1]);
    if (!vars || !json_object_is_type(vars, json_type_object)) {
        fprintf(stderr, "%s:%d: variables are not a JSON object\n", file, line0);
        json_object_put(vars);
        return 1;
    }
    expr_decls *d = expr_decls_json(vars);
    char got[1024];
    expr_prog *p = NULL;
    jd_err err = { 0 };
    jd_buf out;
    jd_buf_init(&out, 1 << 20);
    if (expr_compile(src, strlen(src), d, &p, &err) != JD_OK) {
        snprintf(got, sizeof got, "error: %s at %s", err.msg, err.where);
    } else {
        expr_activation a;
        expr_activation_json(&a, vars);
        expr_val v;
        expr_scratch_reset(scratch);
        if (expr_eval(p, &a, scratch, &v, &err) != JD_OK) {
            snprintf(got, sizeof got, "error: %s at %s", err.msg, err.where);
        } else {
            expr_val_format(&v, &out);
            snprintf(got, sizeof got, "%s", out.data ? out.data : "");
        }
    }
    int bad = 0;
    if (strcmp(got, want) != 0 || (fail != (strncmp(got, "error: ", 7) == 0))) {
        fprintf(stderr, "%s:%d: %s\n  want %s\n  got  %s\n", file, line0, src, want, got);
        bad = 1;
    }
    jd_buf_release(&out);
    expr_prog_destroy(p);
    expr_decls_destroy(d);
    json_object_put(vars);
    return bad;
}

static void run_file(const char *path, int *cases, int *failures, expr_scratch *scratch)
{
    char *text = NULL;
    size_t len = 0;
    jd_err err;
    assert_int_equal(jd_read_file(path, 4u << 20, &text, &len, &err), JD_OK);
    char **lines = calloc(len + 1, sizeof *lines);
    int *linenos = calloc(len + 1, sizeof *linenos);
    size_t n = 0;
    int lineno = 0;
    char *p = text;
    for (;;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        lineno++;
        bool blank = *p == '\0';
        if (!blank && *p != '#') {
            linenos[n] = lineno;
            lines[n++] = p;
        }
        if ((blank || !nl) && n > 0) {
            (*cases)++;
            *failures += run_block(path, linenos[0], lines, n, scratch);
            n = 0;
        }
        if (!nl) break;
        p = nl + 1;
    }
    free(lines);
    free(linenos);
    free(text);
}

static int is_case(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 5 && strcmp(e->d_name + n - 5, ".case") == 0;
}

static void test_golden_cases(void **state)
{
    (void)state;
    struct dirent **names = NULL;
    int nfiles = scandir(CASE_DIR, &names, is_case, alphasort);
    assert_true(nfiles > 0);
    int cases = 0, failures = 0;
    expr_scratch *scratch = expr_scratch_create(1 << 20);
    for (int i = 0; i < nfiles; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", CASE_DIR, names[i]->d_name);
        run_file(path, &cases, &failures, scratch);
        free(names[i]);
    }
    free(names);
    expr_scratch_destroy(scratch);
    fprintf(stderr, "expr cases: %d run, %d failed\n", cases, failures);
    assert_true(cases >= 250);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
