/* tests/unit/base/test_base.c -- time text, durations, sizes, bounded buffers, the map, the queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "journeyd/base.h"

static int64_t ts(const char *s)
{
    int64_t us = 0;
    assert_int_equal(jd_time_parse(s, strlen(s), &us), JD_OK);
    return us;
}

static void test_time_parse_format(void **state)
{
    (void)state;
    char out[JD_TIME_TEXT];
    assert_int_equal(ts("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(ts("2026-11-23T12:00:00Z"), INT64_C(1795435200) * 1000000);
    /* offsets move the instant, fractions keep microseconds */
    assert_int_equal(ts("2026-11-23T13:30:00+01:30"), ts("2026-11-23T12:00:00Z"));
    assert_int_equal(ts("2026-11-23T12:00:00.123456Z") - ts("2026-11-23T12:00:00Z"), 123456);
    assert_int_equal(ts("2024-02-29T00:00:00-05:00"), ts("2024-02-29T05:00:00Z"));
    jd_time_format(ts("2026-03-29T01:02:03.004Z"), out);
    assert_string_equal(out, "2026-03-29T01:02:03.004Z");
    jd_time_format(ts("2000-12-31T23:59:59.999+00:00"), out);
    assert_string_equal(out, "2000-12-31T23:59:59.999Z");
    int64_t us;
    static const char *bad[] = { "2026-11-23", "2026-11-23T12:00:00", "2026-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23T12:00:00.Z",
        "2026-11-23T12:00:00Zjunk", "1969-12-31T23:59:59Z", "2026-11-23T12:00:00+2:00" };
    for (size_t i = 0; i < JD_ARRAY_LEN(bad); i++)
        assert_int_equal(jd_time_parse(bad[i], strlen(bad[i]), &us), JD_EINVAL);
}

static void test_durations_and_sizes(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(jd_duration_parse("24h", &v), JD_OK);
    assert_int_equal(v, 24 * JD_HOUR);
    assert_int_equal(jd_duration_parse("1h30m", &v), JD_OK);
    assert_int_equal(v, 90 * JD_MIN);
    assert_int_equal(jd_duration_parse("500ms", &v), JD_OK);
    assert_int_equal(v, 500000);
    assert_int_equal(jd_duration_parse("7d", &v), JD_OK);
    assert_int_equal(v, 7 * JD_DAY);
    assert_int_equal(jd_duration_parse("", &v), JD_EINVAL);
    assert_int_equal(jd_duration_parse("10", &v), JD_EINVAL);
    assert_int_equal(jd_duration_parse("10 parsecs", &v), JD_EINVAL);
    assert_int_equal(jd_size_parse("32KB", &v), JD_OK);
    assert_int_equal(v, 32000);
    assert_int_equal(jd_size_parse("500KiB", &v), JD_OK);
    assert_int_equal(v, 512000);
    assert_int_equal(jd_size_parse("1048576", &v), JD_OK);
    assert_int_equal(v, 1048576);
    assert_int_equal(jd_size_parse("12XB", &v), JD_EINVAL);
}

static void test_buf_ceiling_and_json(void **state)
{
    (void)state;
    jd_buf b;
    jd_buf_init(&b, 8);
    assert_int_equal(jd_buf_adds(&b, "12345678"), JD_OK);
    assert_int_equal(jd_buf_adds(&b, "9"), JD_ELIMIT);
    assert_int_equal(b.len, 8);   /* nothing half-added */
    assert_string_equal(b.data, "12345678");
    jd_buf_release(&b);

    jd_buf_init(&b, 1024);
    const char in[] = "a\"b\\c\n\x01\xc3\xa9";
    assert_int_equal(jd_buf_add_json_str(&b, in, sizeof in - 1), JD_OK);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"");
    jd_buf_reset(&b);
    assert_int_equal(jd_buf_addf(&b, "%0300d", 7), JD_OK);   /* past the small stack path */
    assert_int_equal(b.len, 300);
    jd_buf_release(&b);
}

static void test_map_put_get_del(void **state)
{
    (void)state;
    enum { N = 20000 };
    jd_map *m = jd_map_create(0);
    char **keys = calloc(N, sizeof *keys);
    for (int i = 0; i < N; i++) {
        keys[i] = jd_strfmt("key-%d", i);
        assert_null(jd_map_put(m, keys[i], strlen(keys[i]), keys[i]));
    }
    assert_int_equal(jd_map_len(m), N);
    /* delete every third key: the rest must stay reachable (backward shift) */
    for (int i = 0; i < N; i += 3)
        assert_ptr_equal(jd_map_del(m, keys[i], strlen(keys[i])), keys[i]);
    for (int i = 0; i < N; i++) {
        void *v = jd_map_get(m, keys[i], strlen(keys[i]));
        if (i % 3 == 0) assert_null(v); else assert_ptr_equal(v, keys[i]);
    }
    size_t pos = 0, seen = 0;
    const char *k; size_t kn; void *v;
    while (jd_map_next(m, &pos, &k, &kn, &v)) { assert_ptr_equal(k, v); seen++; }
    assert_int_equal(seen, jd_map_len(m));
    for (int i = 0; i < N; i++) free(keys[i]);
    free(keys);
    jd_map_destroy(m);
}

typedef struct item { jd_qnode node; int v; } item;
typedef struct producer { jd_queue *q; item *items; int n; } producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (int i = 0; i < p->n; i++) assert_true(jd_queue_push(p->q, &p->items[i].node));
    return NULL;
}

static void test_queue_fifo_per_producer(void **state)
{
    (void)state;
    enum { N = 50000 };
    jd_queue q;
    jd_queue_init(&q);
    item *a = calloc(N, sizeof *a), *b = calloc(N, sizeof *b);
    for (int i = 0; i < N; i++) { a[i].v = i; b[i].v = N + i; }
    producer pa = { &q, a, N }, pb = { &q, b, N };
    pthread_t ta, tb;
    pthread_create(&ta, NULL, produce, &pa);
    pthread_create(&tb, NULL, produce, &pb);
    int got = 0, last_a = -1, last_b = N - 1;
    while (got < 2 * N) {
        for (jd_qnode *n = jd_queue_pop_all(&q, 1000); n; n = n->next) {
            item *it = (item *)n;
            if (it->v < N) { assert_int_equal(it->v, last_a + 1); last_a = it->v; }
            else { assert_int_equal(it->v, last_b + 1); last_b = it->v; }
            got++;
        }
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    jd_queue_close(&q);
    item extra;
    assert_false(jd_queue_push(&q, &extra.node));
    assert_null(jd_queue_pop_all(&q, -1));   /* closed and empty: returns at once */
    jd_queue_release(&q);
    free(a);
    free(b);
}

static void test_errors_and_files(void **state)
{
    (void)state;
    jd_err err;
    assert_int_equal(jd_err_set(&err, JD_ELIMIT, "batch[2]", "over %d", 5), JD_ELIMIT);
    assert_string_equal(err.where, "batch[2]");
    assert_string_equal(err.msg, "over 5");
    assert_string_equal(jd_strerror(JD_ENOTFOUND), "not found");

    char dir[] = "/tmp/jd-base-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = jd_strfmt("%s/a/b/c.txt", dir);
    char *sub = jd_strfmt("%s/a/b", dir);
    assert_int_equal(jd_mkdir_p(sub, &err), JD_OK);
    assert_int_equal(jd_write_file_atomic(path, "hello", 5, &err), JD_OK);
    char *data; size_t n;
    assert_int_equal(jd_read_file(path, 100, &data, &n, &err), JD_OK);
    assert_int_equal(n, 5);
    assert_string_equal(data, "hello");
    free(data);
    assert_int_equal(jd_read_file(path, 3, &data, &n, &err), JD_ELIMIT);
    char *missing = jd_strfmt("%s/nope", dir);
    assert_int_equal(jd_read_file(missing, 3, &data, &n, &err), JD_ENOTFOUND);
    char *cmd = jd_strfmt("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd); free(missing); free(path); free(sub);
}

static void test_uuid_and_secrets(void **state)
{
    (void)state;
    char a[37], b[37];
    jd_uuid4(a);
    jd_uuid4(b);
    assert_int_equal(strlen(a), 36);
    assert_int_equal(a[14], '4');
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_string_not_equal(a, b);
    assert_true(jd_secret_eq("abc", 3, "abc", 3));
    assert_false(jd_secret_eq("abc", 3, "abd", 3));
    assert_false(jd_secret_eq("abc", 3, "abcd", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_parse_format),
        cmocka_unit_test(test_durations_and_sizes),
        cmocka_unit_test(test_buf_ceiling_and_json),
        cmocka_unit_test(test_map_put_get_del),
        cmocka_unit_test(test_queue_fifo_per_producer),
        cmocka_unit_test(test_errors_and_files),
        cmocka_unit_test(test_uuid_and_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
