/* tests/unit/journey/test_cases.c -- the golden files in tests/cases/journey.
 *
 * Every good-*.yaml must validate. Every bad-*.yaml must be refused with exactly
 * the lines of its sibling bad-*.expected (what `journeyd validate` prints on
 * stderr: "<file>:<line>:<col>: node '<id>': <message>"), the file named by its
 * path from the repository root. Run from the repository root.
 * To add a case: write bad-x.yaml, run `journeyd validate tests/cases/journey/bad-x.yaml
 * 2>tests/cases/journey/bad-x.expected`, and read the result before committing it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <dirent.h>

#include "journeyd/base.h"
#include "journeyd/journey.h"

#define CASE_DIR "tests/cases/journey"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char *slurp(const char *path, size_t *n)
{
    char *text = NULL;
    jd_err err;
    if (jd_read_file(path, 1u << 20, &text, n, &err) != JD_OK) return NULL;
    return text;
}

/* Returns 0 if the case passes, else prints why. */
static int run_case(const char *file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", CASE_DIR, file);
    size_t n = 0;
    char *text = slurp(path, &n);
    if (!text) {
        fprintf(stderr, "%s: cannot read\n", path);
        return 1;
    }
    bool good = strncmp(file, "good-", 5) == 0;
    jrn_diags diags = { 0 };
    jrn_doc *doc = NULL;
    int rc = jrn_doc_parse(path, text, n, NULL, &doc, &diags);
    jd_buf got;
    jd_buf_init(&got, 1u << 20);
    jrn_diags_format(&diags, &got);
    int fails = 0;
    if (good) {
        if (rc != JD_OK || !doc || diags.n) {
            fprintf(stderr, "%s: expected to validate, got:\n%s", path, got.data ? got.data : "");
            fails = 1;
        }
    } else {
        char exp_path[512];
        snprintf(exp_path, sizeof exp_path, "%.*s.expected", (int)(strlen(path) - 5), path);
        size_t en = 0;
        char *expected = slurp(exp_path, &en);
        if (!expected) {
            fprintf(stderr, "%s: missing %s\n", path, exp_path);
            fails = 1;
        } else if (rc != JD_EINVAL || doc || strcmp(expected, got.data ? got.data : "") != 0) {
            fprintf(stderr, "%s: rc %d\n--- expected\n%s--- got\n%s", path, rc, expected, got.data ? got.data : "");
            fails = 1;
        }
        free(expected);
    }
    jd_buf_release(&got);
    jrn_doc_destroy(doc);
    jrn_diags_release(&diags);
    free(text);
    return fails;
}

static void test_golden_cases(void **state)
{
    (void)state;
    DIR *dir = opendir(CASE_DIR);
    assert_non_null(dir);
    char **names = NULL;
    size_t n = 0, good = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0) continue;
        names = jd_xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = jd_xstrdup(e->d_name);
    }
    closedir(dir);
    qsort(names, n, sizeof *names, cmp_str);
    int fails = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(names[i], "good-", 5) == 0) good++;
        else if (strncmp(names[i], "bad-", 4) == 0) bad++;
        else continue;
        fails += run_case(names[i]);
        free(names[i]);
    }
    free(names);
    assert_true(good >= 3);
    assert_true(bad >= 15);
    assert_int_equal(fails, 0);
}

/* The shipped examples are part of the contract too: they must stay valid. */
static void test_examples_validate(void **state)
{
    (void)state;
    static const char *const files[] = {
        "journeys/onboarding-trial.yaml", "journeys/cart-abandonment.yaml", "journeys/churn-prevention.yaml",
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(files); i++) {
        size_t n = 0;
        char *text = slurp(files[i], &n);
        assert_non_null(text);
        jrn_diags diags = { 0 };
        jrn_doc *doc = NULL;
        int rc = jrn_doc_parse(files[i], text, n, NULL, &doc, &diags);
        if (rc != JD_OK) {
            jd_buf b;
            jd_buf_init(&b, 1u << 20);
            jrn_diags_format(&diags, &b);
            fprintf(stderr, "%s", b.data ? b.data : "");
            jd_buf_release(&b);
        }
        assert_int_equal(rc, JD_OK);
        jrn_doc_destroy(doc);
        jrn_diags_release(&diags);
        free(text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_cases),
        cmocka_unit_test(test_examples_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
