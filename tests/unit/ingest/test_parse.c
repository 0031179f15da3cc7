/* tests/unit/ingest/test_parse.c -- ingest_parse: what the golden cases cannot say.
 *
 * The golden files (test_cases.c) fix the normalized JSON and the error text of
 * ordinary bodies. Here: the ingest_msg fields themselves, microsecond skew
 * arithmetic, the size and count limits (bodies too long for a .case line),
 * bytes a text file cannot hold (NUL, invalid UTF-8), line and column across
 * newlines, and the all-or-nothing contract.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "journeyd/base.h"
#include "journeyd/ingest.h"
#include "journeyd/limits.h"

static int64_t ts(const char *s)
{
    int64_t us = 0;
    assert_int_equal(jd_time_parse(s, strlen(s), &us), JD_OK);
    return us;
}

static void gen_id(void *self, char out[37])
{
    int *n = self;
    snprintf(out, 37, "gen-%d", ++*n);
}

static void assert_str(jd_str s, const char *want)
{
    if (!want) {
        assert_int_equal(s.n, 0);
        return;
    }
    assert_int_equal(s.n, strlen(want));
    assert_memory_equal(s.p, want, s.n);
    assert_int_equal(s.p[s.n], '\0');   /* views are NUL-terminated */
}

typedef struct result {
    int rc;
    ingest_batch *b;
    jd_err err;
    int ids;
} result;

static result parse_with(const ingest_limits *lim, ingest_route route, const char *body, size_t n)
{
    result r = { 0 };
    r.b = (ingest_batch *)&r;   /* must be reset to NULL on failure */
    r.rc = ingest_parse(lim, route, body, n, ts("2026-01-01T00:00:00Z"), gen_id, &r.ids, &r.b, &r.err);
    if (r.rc != JD_OK) assert_null(r.b);
    return r;
}

static result parse(ingest_route route, const char *body)
{
    ingest_limits lim;
    ingest_limits_default(&lim);
    return parse_with(&lim, route, body, strlen(body));
}

static void assert_fails(result r, int code, const char *msg, const char *where)
{
    assert_int_equal(r.rc, code);
    assert_string_equal(r.err.msg, msg);
    assert_string_equal(r.err.where, where);
}

static void test_type_names(void **state)
{
    (void)state;
    ingest_type t;
    for (int i = INGEST_TRACK; i < INGEST_TYPE_COUNT_; i++) {
        assert_int_equal(ingest_type_parse(ingest_type_name((ingest_type)i), &t), JD_OK);
        assert_int_equal(t, i);
    }
    assert_string_equal(ingest_type_name(INGEST_GROUP), "group");
    assert_string_equal(ingest_type_name(0), "?");
    assert_string_equal(ingest_type_name(INGEST_TYPE_COUNT_), "?");
    assert_int_equal(ingest_type_parse("Track", &t), JD_EINVAL);
    assert_int_equal(ingest_type_parse("", &t), JD_EINVAL);
    ingest_limits l;
    ingest_limits_default(&l);
    assert_int_equal(l.max_message_bytes, 32768);
    assert_int_equal(l.max_batch_bytes, 512000);
    assert_int_equal(l.max_batch_messages, JD_DEF_MAX_BATCH_MESSAGES);
    assert_int_equal(l.max_json_depth, 64);
}

/* Each route fills the fields its type has, and only those. */
static void test_msg_fields(void **state)
{
    (void)state;
    static const struct {
        ingest_route route;
        const char *body;
        const char *user, *anon, *event, *group, *prev;
    } cases[] = {
        { INGEST_ROUTE_TRACK, "{\"userId\":\"u1\",\"anonymousId\":\"a1\",\"event\":\"Signed Up\",\"groupId\":\"g\"}",
          "u1", "a1", "Signed Up", NULL, NULL },
        { INGEST_ROUTE_IDENTIFY, "{\"userId\":7,\"event\":\"ignored\"}", "7", NULL, NULL, NULL, NULL },
        { INGEST_ROUTE_PAGE, "{\"anonymousId\":\"a1\",\"name\":\"Home\"}", NULL, "a1", "Home", NULL, NULL },
        { INGEST_ROUTE_SCREEN, "{\"anonymousId\":\"a1\"}", NULL, "a1", NULL, NULL, NULL },
        { INGEST_ROUTE_GROUP, "{\"userId\":\"u1\",\"groupId\":-3}", "u1", NULL, NULL, "-3", NULL },
        { INGEST_ROUTE_ALIAS, "{\"userId\":\"u1\",\"previousId\":\"a1\"}", "u1", NULL, NULL, NULL, "a1" },
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(cases); i++) {
        result r = parse(cases[i].route, cases[i].body);
        assert_int_equal(r.rc, JD_OK);
        assert_int_equal(r.b->n, 1);
        const ingest_msg *m = &r.b->msgs[0];
        assert_int_equal(m->type, (ingest_type)cases[i].route);
        assert_str(m->user_id, cases[i].user);
        assert_str(m->anonymous_id, cases[i].anon);
        assert_str(m->event, cases[i].event);
        assert_str(m->group_id, cases[i].group);
        assert_str(m->previous_id, cases[i].prev);
        assert_str(m->message_id, "gen-1");
        assert_int_equal(m->received_us, ts("2026-01-01T00:00:00Z"));
        assert_int_equal(m->timestamp_us, m->received_us);
        assert_int_equal(m->json.p[m->json.n], '\0');
        assert_int_equal(strlen(m->json.p), m->json.n);
        assert_int_equal(r.b->write_key.n, 0);
        ingest_batch_destroy(r.b);
    }
}

/* timestamp = receivedAt - (sentAt - timestamp), to the microsecond. */
static void test_skew_arithmetic(void **state)
{
    (void)state;
    /* the device clock is 5 minutes fast; the event is 2.5 s older than the send */
    result r = parse(INGEST_ROUTE_TRACK,
                     "{\"userId\":\"u\",\"event\":\"e\",\"timestamp\":\"2026-01-01T00:04:57.500Z\","
                     "\"sentAt\":\"2026-01-01T00:05:00Z\"}");
    assert_int_equal(r.rc, JD_OK);
    const ingest_msg *m = &r.b->msgs[0];
    assert_int_equal(m->timestamp_us, ts("2026-01-01T00:00:00Z") - 2500000);
    assert_non_null(strstr(m->json.p, "\"timestamp\":\"2025-12-31T23:59:57.500Z\""));
    assert_non_null(strstr(m->json.p, "\"originalTimestamp\":\"2026-01-01T00:04:57.500Z\""));
    assert_non_null(strstr(m->json.p, "\"sentAt\":\"2026-01-01T00:05:00.000Z\""));
    ingest_batch_destroy(r.b);

    /* microseconds survive in timestamp_us (the JSON text has milliseconds) */
    r = parse(INGEST_ROUTE_TRACK, "{\"userId\":\"u\",\"event\":\"e\",\"timestamp\":\"2025-01-01T00:00:00.000123Z\"}");
    assert_int_equal(r.rc, JD_OK);
    assert_int_equal(r.b->msgs[0].timestamp_us, ts("2025-01-01T00:00:00Z") + 123);
    ingest_batch_destroy(r.b);

    /* batch-level sentAt against each message's own timestamp */
    r = parse(INGEST_ROUTE_BATCH,
              "{\"sentAt\":\"2026-01-01T01:00:00Z\",\"batch\":["
              "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"a\",\"timestamp\":\"2026-01-01T00:59:00Z\"},"
              "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"b\",\"timestamp\":\"2026-01-01T00:58:00Z\","
              "\"sentAt\":\"2026-01-01T00:58:30Z\"},"
              "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"c\"}]}");
    assert_int_equal(r.rc, JD_OK);
    assert_int_equal(r.b->n, 3);
    assert_int_equal(r.b->msgs[0].timestamp_us, ts("2025-12-31T23:59:00Z"));
    assert_int_equal(r.b->msgs[1].timestamp_us, ts("2025-12-31T23:59:30Z"));
    assert_int_equal(r.b->msgs[2].timestamp_us, ts("2026-01-01T00:00:00Z"));
    assert_str(r.b->msgs[1].message_id, "gen-2");
    ingest_batch_destroy(r.b);
}

/* The per-request cache of formatted seconds gives jd_time_format's text,
 * including seconds that share a cache slot and millisecond edges. */
static void test_time_text(void **state)
{
    (void)state;
    jd_buf body;
    jd_buf_init(&body, 1 << 20);
    jd_buf_adds(&body, "{\"batch\":[");
    int64_t want[300];
    uint64_t rng = 42;
    for (int i = 0; i < 300; i++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        int64_t base = ts("2026-01-01T00:00:00Z") + (int64_t)(i % 3) * 8 * (int64_t)JD_SEC;  /* one slot */
        want[i] = i % 5 == 0 ? (int64_t)(rng >> 8) % ts("9999-12-31T23:59:59Z")
                             : base + (int64_t)(rng >> 40) % 2000000;
        char text[JD_TIME_TEXT];
        jd_time_format(want[i], text);
        jd_buf_addf(&body, "%s{\"type\":\"track\",\"userId\":\"u\",\"event\":\"e\",\"timestamp\":\"%.19s.%06dZ\"}",
                    i ? "," : "", text, (int)(want[i] % 1000000));
    }
    jd_buf_adds(&body, "]}");
    ingest_limits lim;
    ingest_limits_default(&lim);
    result r = parse_with(&lim, INGEST_ROUTE_BATCH, body.data, body.len);
    assert_int_equal(r.rc, JD_OK);
    for (int i = 0; i < 300; i++) {
        char text[JD_TIME_TEXT], field[64];
        jd_time_format(want[i], text);
        snprintf(field, sizeof field, "\"timestamp\":\"%s\"", text);
        assert_non_null(strstr(r.b->msgs[i].json.p, field));
        assert_int_equal(r.b->msgs[i].timestamp_us, want[i]);
    }
    ingest_batch_destroy(r.b);
    jd_buf_release(&body);
}

static void test_write_key(void **state)
{
    (void)state;
    result r = parse(INGEST_ROUTE_BATCH, "{\"writeKey\":\"wk_1\",\"batch\":[{\"type\":\"identify\",\"userId\":\"u\"}]}");
    assert_int_equal(r.rc, JD_OK);
    assert_str(r.b->write_key, "wk_1");
    assert_null(strstr(r.b->msgs[0].json.p, "wk_1"));
    ingest_batch_destroy(r.b);

    r = parse(INGEST_ROUTE_IDENTIFY, "{\"writeKey\":\"wk_2\",\"userId\":\"u\"}");
    assert_int_equal(r.rc, JD_OK);
    assert_str(r.b->write_key, "wk_2");
    assert_null(strstr(r.b->msgs[0].json.p, "writeKey"));
    ingest_batch_destroy(r.b);
}

static void id_from_uuid(void **state)
{
    (void)state;
    ingest_limits lim;
    ingest_limits_default(&lim);
    ingest_batch *b = NULL;
    jd_err err;
    const char *body = "{\"userId\":\"u\"}";
    assert_int_equal(ingest_parse(&lim, INGEST_ROUTE_IDENTIFY, body, strlen(body), 0, NULL, NULL, &b, &err),
                     JD_OK);
    assert_int_equal(b->msgs[0].message_id.n, 36);
    assert_int_equal(b->msgs[0].message_id.p[14], '4');   /* version 4 */
    assert_int_equal(b->msgs[0].timestamp_us, 0);
    assert_non_null(strstr(b->msgs[0].json.p, "\"receivedAt\":\"1970-01-01T00:00:00.000Z\""));
    ingest_batch_destroy(b);
}

static char *filled(size_t n, const char *head, const char *tail)
{
    size_t hn = strlen(head), tn = strlen(tail);
    assert_true(n >= hn + tn);
    char *p = malloc(n + 1);
    memcpy(p, head, hn);
    memset(p + hn, 'x', n - hn - tn);
    memcpy(p + n - tn, tail, tn);
    p[n] = '\0';
    return p;
}

/* The raw size is checked before parsing: even invalid JSON gets the size error. */
static void test_size_limits(void **state)
{
    (void)state;
    ingest_limits lim;
    ingest_limits_default(&lim);
    char *body = filled(32768, "{\"userId\":\"u\",\"event\":\"", "\"}");
    result r = parse_with(&lim, INGEST_ROUTE_TRACK, body, strlen(body));
    assert_int_equal(r.rc, JD_OK);   /* exactly at the limit */
    ingest_batch_destroy(r.b);
    free(body);

    body = filled(32769, "{\"userId\":\"u\",\"event\":\"", "\"}");
    r = parse_with(&lim, INGEST_ROUTE_TRACK, body, strlen(body));
    assert_fails(r, JD_ELIMIT, "message is 32769 bytes, over the 32768-byte limit (limits.max_message_bytes)", "");
    free(body);

    body = filled(40213, "not json", "");
    r = parse_with(&lim, INGEST_ROUTE_PAGE, body, strlen(body));
    assert_fails(r, JD_ELIMIT, "message is 40213 bytes, over the 32768-byte limit (limits.max_message_bytes)", "");
    r = parse_with(&lim, INGEST_ROUTE_BATCH, body, strlen(body));
    assert_int_equal(r.rc, JD_EINVAL);   /* a batch may be that long */
    free(body);

    body = filled(512001, "[", "");
    r = parse_with(&lim, INGEST_ROUTE_BATCH, body, strlen(body));
    assert_fails(r, JD_ELIMIT, "batch is 512001 bytes, over the 512000-byte limit (limits.max_batch_bytes)", "");
    free(body);
}

/* In a batch, each message's normalized JSON is held to max_message_bytes. */
static void test_batch_message_size(void **state)
{
    (void)state;
    ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_message_bytes = 200;
    /* 60 bytes as sent; about 190 once messageId, receivedAt and timestamp are added */
    const char *ok = "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"e\",\"messageId\":\"m\"}]}";
    result r = parse_with(&lim, INGEST_ROUTE_BATCH, ok, strlen(ok));
    assert_int_equal(r.rc, JD_OK);
    size_t n = r.b->msgs[0].json.n;
    assert_true(n <= 200);
    ingest_batch_destroy(r.b);
    lim.max_message_bytes = (uint32_t)n - 1;
    char want[160];
    snprintf(want, sizeof want, "message is %zu bytes, over the %zu-byte limit (limits.max_message_bytes)", n, n - 1);
    r = parse_with(&lim, INGEST_ROUTE_BATCH, ok, strlen(ok));
    assert_fails(r, JD_ELIMIT, want, "batch[0]");
}

static void test_batch_count_limit(void **state)
{
    (void)state;
    ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_batch_messages = 3;
    const char *three = "{\"batch\":[{\"type\":\"identify\",\"userId\":\"a\"},{\"type\":\"identify\",\"userId\":\"b\"},"
                        "{\"type\":\"identify\",\"userId\":\"c\"}]}";
    const char *four = "{\"batch\":[{},{},{},{}]}";
    result r = parse_with(&lim, INGEST_ROUTE_BATCH, three, strlen(three));
    assert_int_equal(r.rc, JD_OK);
    assert_int_equal(r.b->n, 3);
    assert_str(r.b->msgs[2].user_id, "c");
    assert_str(r.b->msgs[2].message_id, "gen-3");
    ingest_batch_destroy(r.b);
    r = parse_with(&lim, INGEST_ROUTE_BATCH, four, strlen(four));
    assert_fails(r, JD_ELIMIT, "batch has 4 messages, over the 3-message limit (limits.max_batch_messages)", "batch");

    r = parse(INGEST_ROUTE_BATCH, "{\"batch\":[]}");
    assert_int_equal(r.rc, JD_OK);
    assert_int_equal(r.b->n, 0);
    ingest_batch_destroy(r.b);
}

static void test_depth_limit(void **state)
{
    (void)state;
    ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_json_depth = 3;
    const char *ok = "{\"userId\":\"u\",\"event\":\"e\",\"p\":{\"q\":[1]}}";
    const char *deep = "{\"userId\":\"u\",\"event\":\"e\",\"p\":{\"q\":[[1]]}}";
    result r = parse_with(&lim, INGEST_ROUTE_TRACK, ok, strlen(ok));
    assert_int_equal(r.rc, JD_OK);
    ingest_batch_destroy(r.b);
    r = parse_with(&lim, INGEST_ROUTE_TRACK, deep, strlen(deep));
    assert_fails(r, JD_ELIMIT, "JSON nested deeper than 3 levels (limits.max_json_depth)", "");
    /* empty containers count as levels too */
    const char *empty = "{\"userId\":\"u\",\"event\":\"e\",\"p\":{\"q\":[[]]}}";
    r = parse_with(&lim, INGEST_ROUTE_TRACK, empty, strlen(empty));
    assert_fails(r, JD_ELIMIT, "JSON nested deeper than 3 levels (limits.max_json_depth)", "");
    /* a batch's envelope counts: {"batch":[{...}]} is 3 levels before the message's own */
    const char *batch = "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"e\",\"p\":{}}]}";
    r = parse_with(&lim, INGEST_ROUTE_BATCH, batch, strlen(batch));
    assert_fails(r, JD_ELIMIT, "JSON nested deeper than 3 levels (limits.max_json_depth)", "");
    /* 64 levels with a value innermost pass the default limit */
    ingest_limits_default(&lim);
    char body[256];
    int k = snprintf(body, sizeof body, "{\"userId\":\"u\",\"event\":\"e\",\"p\":");
    for (int i = 0; i < 63; i++) body[k++] = '[';
    body[k++] = '1';
    for (int i = 0; i < 63; i++) body[k++] = ']';
    body[k++] = '}';
    r = parse_with(&lim, INGEST_ROUTE_TRACK, body, (size_t)k);
    assert_int_equal(r.rc, JD_OK);
    ingest_batch_destroy(r.b);
}

/* Bytes and layouts a one-line .case file cannot hold. */
static void test_json_errors(void **state)
{
    (void)state;
    ingest_limits lim;
    ingest_limits_default(&lim);
    static const struct {
        const char *body;
        size_t n;
        const char *msg;
    } cases[] = {
        { "{\n  \"userId\": \"u\",\n  \"event\": tru\n}", 0,
          "invalid JSON at byte 33 (line 3, column 15): boolean expected" },
        { "{\"userId\":\"u\",\"event\":\"e\"}\0", 27,
          "invalid JSON at byte 26 (line 1, column 27): unexpected character" },
        { "{\"userId\":\"u\",\"event\":\"a\0b\"}", 28,
          "invalid JSON at byte 24 (line 1, column 25): unexpected character" },
        { "{\"userId\":\"u\",\"event\":\"\xff\"}", 0,
          "invalid JSON at byte 23 (line 1, column 24): invalid utf-8 string" },
        { "\xef\xbb\xbf{}", 0, "invalid JSON at byte 0 (line 1, column 1): invalid utf-8 string" },
        { "", 0, "invalid JSON at byte 0 (line 1, column 1): unexpected end of data" },
        { " \r\n\t", 0, "invalid JSON at byte 4 (line 2, column 2): unexpected end of data" },
        { "{\"event\":\"e\",\n\"userId\":\"line\nbreak\"}", 0,
          "invalid JSON at byte 28 (line 2, column 15): invalid string sequence" },
        { "{\"userId\":\0\"u\"}", 14, "invalid JSON at byte 10 (line 1, column 11): unexpected character" },
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(cases); i++) {
        size_t n = cases[i].n ? cases[i].n : strlen(cases[i].body);
        result r = parse_with(&lim, INGEST_ROUTE_TRACK, cases[i].body, n);
        assert_fails(r, JD_EINVAL, cases[i].msg, "");
    }
    /* multi-byte UTF-8 is fine, and whitespace may surround the object */
    const char *ok = " \n{\"userId\":\"\xc3\xa9\xe2\x98\x95\xf0\x9f\x98\x80\",\"event\":\"e\"}\r\n ";
    result r = parse_with(&lim, INGEST_ROUTE_TRACK, ok, strlen(ok));
    assert_int_equal(r.rc, JD_OK);
    assert_str(r.b->msgs[0].user_id, "\xc3\xa9\xe2\x98\x95\xf0\x9f\x98\x80");
    ingest_batch_destroy(r.b);
    /* the body need not be NUL-terminated: only n bytes are read */
    char buf[64];
    const char *body = "{\"userId\":\"u\",\"event\":\"e\"}";
    memcpy(buf, body, strlen(body));
    memset(buf + strlen(body), '}', sizeof buf - strlen(body));
    r = parse_with(&lim, INGEST_ROUTE_TRACK, buf, strlen(body));
    assert_int_equal(r.rc, JD_OK);
    ingest_batch_destroy(r.b);
}

/* One bad message refuses the batch, wherever it is; err names the first. */
static void test_all_or_nothing(void **state)
{
    (void)state;
    result r = parse(INGEST_ROUTE_BATCH,
                     "{\"batch\":[{\"type\":\"identify\",\"userId\":\"u\"},{\"type\":\"identify\",\"userId\":\"u\"},"
                     "{\"type\":\"alias\",\"userId\":\"u\"},{\"type\":\"identify\"}]}");
    assert_fails(r, JD_EINVAL, "previousId is required", "batch[2].previousId");
    /* a batch that shared its context with messages before the failure leaks nothing */
    r = parse(INGEST_ROUTE_BATCH,
              "{\"context\":{\"ip\":\"1.2.3.4\",\"library\":{\"name\":\"x\"}},\"integrations\":{\"All\":false},"
              "\"batch\":[{\"type\":\"identify\",\"userId\":\"u\"},{\"type\":\"track\",\"userId\":\"u\"}]}");
    assert_fails(r, JD_EINVAL, "event is required", "batch[1].event");
}

/* Shared batch context stays shared, not copied, and survives destroy order. */
static void test_batch_context_shared(void **state)
{
    (void)state;
    result r = parse(INGEST_ROUTE_BATCH,
                     "{\"context\":{\"library\":{\"name\":\"lib\",\"version\":\"2\"}},\"batch\":["
                     "{\"type\":\"identify\",\"userId\":\"a\"},{\"type\":\"identify\",\"userId\":\"b\","
                     "\"context\":{\"library\":{\"name\":\"own\"}}}]}");
    assert_int_equal(r.rc, JD_OK);
    assert_non_null(strstr(r.b->msgs[0].json.p, "\"context\":{\"library\":{\"name\":\"lib\",\"version\":\"2\"}}"));
    assert_non_null(strstr(r.b->msgs[1].json.p, "\"context\":{\"library\":{\"name\":\"own\"}}"));
    ingest_batch_destroy(r.b);
}

static void test_bad_route(void **state)
{
    (void)state;
    ingest_limits lim;
    ingest_limits_default(&lim);
    result r = parse_with(&lim, (ingest_route)0, "{}", 2);
    assert_int_equal(r.rc, JD_EINVAL);
    r = parse_with(&lim, (ingest_route)(INGEST_ROUTE_BATCH + 1), "{}", 2);
    assert_int_equal(r.rc, JD_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_msg_fields),
        cmocka_unit_test(test_skew_arithmetic),
        cmocka_unit_test(test_time_text),
        cmocka_unit_test(test_write_key),
        cmocka_unit_test(id_from_uuid),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_batch_message_size),
        cmocka_unit_test(test_batch_count_limit),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_all_or_nothing),
        cmocka_unit_test(test_batch_context_shared),
        cmocka_unit_test(test_bad_route),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
