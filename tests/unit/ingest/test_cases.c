/* tests/unit/ingest/test_cases.c -- the golden files in tests/cases/ingest (every .case file).
 *
 * Format (jq style), blocks separated by blank lines; '#' lines are comments:
 *     <route>                 track|identify|page|screen|group|alias|batch
 *     <body>                  one line of JSON
 *     <message>...            the normalized JSON of each message, one a line
 * or, for a refused body:
 *     %%FAIL
 *     <route>
 *     <body>
 *     error: <msg> at <where> (or "error: <msg>" when where is empty)
 * Every case runs with the default limits, received time 2026-01-01T00:00:00.000Z
 * and messageIds "gen-1", "gen-2", ... (the counter restarts for each case).
 * Each message is also encoded as an event record and decoded back.
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

#include "journeyd/base.h"
#include "journeyd/ingest.h"

#define CASE_DIR "tests/cases/ingest"

static void gen_id(void *self, char out[37])
{
    int *n = self;
    snprintf(out, 37, "gen-%d", ++*n);
}

static const struct { const char *name; ingest_route route; } routes[] = {
    { "track", INGEST_ROUTE_TRACK }, { "identify", INGEST_ROUTE_IDENTIFY },
    { "page", INGEST_ROUTE_PAGE },   { "screen", INGEST_ROUTE_SCREEN },
    { "group", INGEST_ROUTE_GROUP }, { "alias", INGEST_ROUTE_ALIAS },
    { "batch", INGEST_ROUTE_BATCH },
};

static int route_of(const char *s, ingest_route *out)
{
    for (size_t i = 0; i < JD_ARRAY_LEN(routes); i++) {
        if (strcmp(s, routes[i].name) == 0) {
            *out = routes[i].route;
            return 0;
        }
    }
    return -1;
}

static bool record_round_trip(const ingest_msg *m)
{
    jd_buf b;
    ingest_event ev;
    jd_buf_init(&b, 1 << 20);
    bool ok = ingest_event_encode(m, &b) == JD_OK && ingest_event_decode(b.data, b.len, &ev, NULL) == JD_OK &&
              ev.type == m->type && ev.timestamp_us == m->timestamp_us &&
              ev.received_us == m->received_us && jd_str_eq(ev.json, m->json.p, m->json.n) &&
              jd_str_eq(ev.message_id, m->message_id.p, m->message_id.n) &&
              jd_str_eq(ev.user_id, m->user_id.p, m->user_id.n);
    jd_buf_release(&b);
    return ok;
}

/* Runs one block (lines[0..n)); returns 0 if it passes, else prints why. */
static int run_block(const char *file, int line0, char **lines, size_t n, int64_t rx)
{
    const ingest_limits *lim;
    ingest_limits defaults;
    ingest_limits_default(&defaults);
    lim = &defaults;
    bool fail = strcmp(lines[0], "%%FAIL") == 0;
    size_t i = fail ? 1 : 0;
    ingest_route route;
    if (n < i + 2 || route_of(lines[i], &route) != 0) {
        fprintf(stderr, "%s:%d: malformed case (want route, body, expected)\n", file, line0);
        return 1;
    }
    const char *body = lines[i + 1];
    char **want = lines + i + 2;
    size_t nwant = n - i - 2;
    int counter = 0, bad = 0;
    ingest_batch *b = NULL;
    jd_err err = { 0 };
    int rc = ingest_parse(lim, route, body, strlen(body), rx, gen_id, &counter, &b, &err);
    if (fail) {
        char got[512];
        if (rc == JD_OK) {
            snprintf(got, sizeof got, "(accepted, %zu messages)", b->n);
        } else if (err.where[0]) {
            snprintf(got, sizeof got, "error: %s at %s", err.msg, err.where);
        } else {
            snprintf(got, sizeof got, "error: %s", err.msg);
        }
        if (nwant != 1 || strcmp(got, want[0]) != 0) {
            fprintf(stderr, "%s:%d: want\n  %s\ngot\n  %s\n", file, line0, nwant ? want[0] : "(nothing)", got);
            bad = 1;
        }
    } else if (rc != JD_OK) {
        fprintf(stderr, "%s:%d: refused: %s at %s\n", file, line0, err.msg, err.where);
        bad = 1;
    } else {
        if (b->n != nwant) {
            fprintf(stderr, "%s:%d: want %zu messages, got %zu\n", file, line0, nwant, b->n);
            bad = 1;
        }
        for (size_t k = 0; k < b->n && k < nwant; k++) {
            if (strcmp(b->msgs[k].json.p, want[k]) != 0 || strlen(want[k]) != b->msgs[k].json.n) {
                fprintf(stderr, "%s:%d: message %zu: want\n  %s\ngot\n  %s\n", file, line0, k, want[k],
                        b->msgs[k].json.p);
                bad = 1;
            }
            if (!record_round_trip(&b->msgs[k])) {
                fprintf(stderr, "%s:%d: message %zu: record round trip differs\n", file, line0, k);
                bad = 1;
            }
        }
    }
    ingest_batch_destroy(b);
    return bad;
}

/* Splits a file into blocks and runs each; counts cases and failures. */
static void run_file(const char *path, int *cases, int *failures)
{
    char *text = NULL;
    size_t len = 0;
    jd_err err;
    assert_int_equal(jd_read_file(path, 4u << 20, &text, &len, &err), JD_OK);
    char **lines = calloc(len + 1, sizeof *lines);
    int *linenos = calloc(len + 1, sizeof *linenos);
    size_t n = 0;
    int lineno = 0;
    int64_t rx = 0;
    assert_int_equal(jd_time_parse("2026-01-01T00:00:00.000Z", 24, &rx), JD_OK);
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
            *failures += run_block(path, linenos[0], lines, n, rx);
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
    for (int i = 0; i < nfiles; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", CASE_DIR, names[i]->d_name);
        run_file(path, &cases, &failures);
        free(names[i]);
    }
    free(names);
    fprintf(stderr, "ingest cases: %d run, %d failed\n", cases, failures);
    assert_true(cases >= 25);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
