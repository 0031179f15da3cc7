/* tests/unit/ingest/test_record.c -- the event record codec (src/ingest/record.c).
 *
 * Round trips (parsed and hand-built messages), the exact layout of the header,
 * and refusal of every malformed record: each truncation, trailing bytes, bad
 * version, bad type, a missing NUL, a length past the end, and the ceiling.
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

static jd_str S(const char *s) { return (jd_str){ s, (uint32_t)strlen(s) }; }

static ingest_msg sample(void)
{
    ingest_msg m = {
        .type = INGEST_GROUP,
        .user_id = S("u-1"),
        .anonymous_id = S("anon-\xc3\xa9"),
        .event = { NULL, 0 },
        .group_id = S("g-42"),
        .previous_id = { NULL, 0 },
        .message_id = S("m-1"),
        .timestamp_us = -1,          /* any i64 survives the codec */
        .received_us = INT64_C(1767225600000000),
        .json = S("{\"type\":\"group\"}"),
    };
    return m;
}

static void assert_same(jd_str view, jd_str want)
{
    assert_int_equal(view.n, want.n);
    if (want.n) assert_memory_equal(view.p, want.p, want.n);
    assert_non_null(view.p);
    assert_int_equal(view.p[view.n], '\0');
}

static void check_round_trip(const ingest_msg *m)
{
    jd_buf b;
    jd_buf_init(&b, 1 << 20);
    assert_int_equal(ingest_event_encode(m, &b), JD_OK);
    ingest_event ev;
    jd_err err;
    assert_int_equal(ingest_event_decode(b.data, b.len, &ev, &err), JD_OK);
    assert_int_equal(ev.type, m->type);
    assert_int_equal(ev.timestamp_us, m->timestamp_us);
    assert_int_equal(ev.received_us, m->received_us);
    assert_same(ev.user_id, m->user_id);
    assert_same(ev.anonymous_id, m->anonymous_id);
    assert_same(ev.event, m->event);
    assert_same(ev.group_id, m->group_id);
    assert_same(ev.previous_id, m->previous_id);
    assert_same(ev.message_id, m->message_id);
    assert_same(ev.json, m->json);
    /* zero-copy: the views point into the record */
    assert_true(ev.json.p > b.data && ev.json.p < b.data + b.len);
    jd_buf_release(&b);
}

static void test_round_trip(void **state)
{
    (void)state;
    ingest_msg m = sample();
    check_round_trip(&m);

    ingest_limits lim;
    ingest_limits_default(&lim);
    const char *body = "{\"batch\":[{\"type\":\"track\",\"userId\":1,\"event\":\"Order\",\"properties\":{\"v\":1}},"
                       "{\"type\":\"alias\",\"userId\":\"u\",\"previousId\":\"p\",\"messageId\":\"x\"},"
                       "{\"type\":\"page\",\"anonymousId\":\"a\",\"name\":\"Home\"}]}";
    ingest_batch *batch = NULL;
    jd_err err;
    assert_int_equal(ingest_parse(&lim, INGEST_ROUTE_BATCH, body, strlen(body), INT64_C(1767225600000000),
                                  NULL, NULL, &batch, &err), JD_OK);
    for (size_t i = 0; i < batch->n; i++) check_round_trip(&batch->msgs[i]);
    ingest_batch_destroy(batch);
}

/* The layout docs/internals/log.md promises, byte for byte. */
static void test_layout(void **state)
{
    (void)state;
    ingest_msg m = { .type = INGEST_TRACK, .timestamp_us = 0x0102030405060708, .received_us = 9,
                     .user_id = S("u"), .event = S("ev"), .message_id = S("m"), .json = S("{}") };
    jd_buf b;
    jd_buf_init(&b, 1024);
    assert_int_equal(ingest_event_encode(&m, &b), JD_OK);
    static const unsigned char want[] = {
        1, 1, 0, 0,                              /* version, type, reserved */
        8, 7, 6, 5, 4, 3, 2, 1,                  /* timestamp_us, little-endian */
        9, 0, 0, 0, 0, 0, 0, 0,                  /* received_us */
        1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,      /* user_id, anonymous_id, event */
        0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,      /* group_id, previous_id, message_id */
        2, 0, 0, 0,                              /* json */
        'u', 0, 0, 'e', 'v', 0, 0, 0, 'm', 0, '{', '}', 0,
    };
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    jd_buf_release(&b);
}

static void test_every_truncation_is_corrupt(void **state)
{
    (void)state;
    ingest_msg m = sample();
    jd_buf b;
    jd_buf_init(&b, 1 << 20);
    assert_int_equal(ingest_event_encode(&m, &b), JD_OK);
    ingest_event ev;
    jd_err err;
    for (size_t n = 0; n < b.len; n++) {
        /* a private copy of exactly n bytes, so ASan sees any read past n */
        char *p = malloc(n ? n : 1);
        memcpy(p, b.data, n);
        err.code = 0;
        assert_int_equal(ingest_event_decode(p, n, &ev, &err), JD_ECORRUPT);
        assert_int_equal(err.code, JD_ECORRUPT);
        assert_true(strlen(err.msg) > 0);
        free(p);
    }
    /* one byte too many is refused as well */
    jd_buf_add(&b, "x", 1);
    assert_int_equal(ingest_event_decode(b.data, b.len, &ev, &err), JD_ECORRUPT);
    assert_string_equal(err.msg, "event record has 1 trailing bytes");
    jd_buf_release(&b);
}

static void test_bad_headers(void **state)
{
    (void)state;
    ingest_msg m = sample();
    jd_buf b;
    jd_buf_init(&b, 1 << 20);
    assert_int_equal(ingest_event_encode(&m, &b), JD_OK);
    char *p = b.data;
    ingest_event ev;
    jd_err err;
    const char saved_version = p[0];

    p[0] = 2;
    assert_int_equal(ingest_event_decode(p, b.len, &ev, &err), JD_ECORRUPT);
    assert_string_equal(err.msg, "event record version 2 is not supported (want 1)");
    p[0] = 0;
    assert_int_equal(ingest_event_decode(p, b.len, &ev, &err), JD_ECORRUPT);
    p[0] = saved_version;

    p[1] = 0;
    assert_int_equal(ingest_event_decode(p, b.len, &ev, &err), JD_ECORRUPT);
    assert_string_equal(err.msg, "event record has unknown type 0");
    p[1] = INGEST_TYPE_COUNT_;
    assert_int_equal(ingest_event_decode(p, b.len, &ev, &err), JD_ECORRUPT);
    p[1] = INGEST_GROUP;

    /* user_id's length overflowing the record (0xffffffff: no wrap-around) */
    p[20] = p[21] = p[22] = p[23] = (char)0xff;
    assert_int_equal(ingest_event_decode(p, b.len, &ev, &err), JD_ECORRUPT);
    assert_non_null(strstr(err.msg, "user_id"));
    p[20] = 3;
    p[21] = p[22] = p[23] = 0;
    assert_int_equal(ingest_event_decode(p, b.len, &ev, &err), JD_OK);

    /* lengths that still add up but move a NUL */
    p[20] = 2;   /* user_id 2 bytes: "u-" then '1' where the NUL should be */
    p[24] += 1;  /* anonymous_id one longer keeps the total */
    assert_int_equal(ingest_event_decode(p, b.len, &ev, &err), JD_ECORRUPT);
    assert_string_equal(err.msg, "event record field user_id is not NUL-terminated");
    jd_buf_release(&b);
}

static void test_ceiling(void **state)
{
    (void)state;
    ingest_msg m = sample();
    jd_buf b;
    jd_buf_init(&b, 1 << 20);
    assert_int_equal(ingest_event_encode(&m, &b), JD_OK);
    size_t need = b.len;
    jd_buf_release(&b);

    jd_buf_init(&b, need + 10);
    assert_int_equal(jd_buf_add(&b, "0123456789!", 11), JD_OK);   /* 1 byte short now */
    assert_int_equal(ingest_event_encode(&m, &b), JD_ELIMIT);
    assert_int_equal(b.len, 11);                                 /* left untouched */
    jd_buf_reset(&b);
    assert_int_equal(ingest_event_encode(&m, &b), JD_OK);        /* exactly fits */
    assert_int_equal(b.len, need);
    jd_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_every_truncation_is_corrupt),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_ceiling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
