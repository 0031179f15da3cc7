/* tests/unit/profile/test_timeline.c -- each profile's timeline of its latest
 * events and messages (src/profile/timeline.c): order and bound, N = 0,
 * out-of-order times, long names, messages, merges, the snapshot (version 8,
 * and 7 without timelines) and the bytes it costs. Invariant numbers refer to
 * src/profile/timeline.c. */
#include "journeyd/profile.h"
#include "journeyd/limits.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define T0 INT64_C(1767225600000000)   /* 2026-01-01T00:00:00Z */
#define SEC INT64_C(1000000)

static jd_str S(const char *s) { return s ? (jd_str){ s, (uint32_t)strlen(s) } : (jd_str){ NULL, 0 }; }

static prof_store *store_n(uint32_t n)
{
    prof_limits l;
    prof_limits_default(&l);
    l.timeline = n;
    return prof_store_create(&l);
}

static void ev(prof_store *s, ingest_type t, const char *uid, const char *aid, int64_t ts, const char *name)
{
    ingest_event e;
    memset(&e, 0, sizeof e);
    e.type = t;
    e.timestamp_us = e.received_us = ts;
    e.user_id = S(uid);
    e.anonymous_id = S(aid);
    e.message_id = S("m");
    e.json = S(t == INGEST_IDENTIFY ? "{\"traits\":{\"plan\":\"pro\"}}" : t == INGEST_GROUP ? "{\"traits\":{}}" : "{}");
    if (t == INGEST_GROUP) e.group_id = S(name);
    else e.event = S(name);
    jd_err err;
    assert_int_equal(prof_apply(s, &e, &err), JD_OK);
}

static void track(prof_store *s, const char *uid, int64_t ts, const char *name)
{
    ev(s, INGEST_TRACK, uid, NULL, ts, name);
}

static char *get(const prof_store *s, const char *id)
{
    jd_buf b;
    jd_buf_init(&b, 1 << 20);
    assert_int_equal(prof_get_json(s, id, strlen(id), &b), JD_OK);
    return jd_buf_detach(&b, NULL);
}

/* The "timeline":[...] part of id's JSON ("" when absent), owned. */
static char *timeline(const prof_store *s, const char *id)
{
    char *j = get(s, id), *t = strstr(j, ",\"timeline\":"), *out;
    if (!t) {
        free(j);
        return strdup("");
    }
    out = strdup(t + 1);
    out[strlen(out) - 1] = 0;   /* the profile's closing brace: timeline is last */
    free(j);
    return out;
}

static void expect_timeline(const prof_store *s, const char *id, const char *want)
{
    char *t = timeline(s, id);
    if (strcmp(t, want) != 0) fprintf(stderr, "want %s\n got  %s\n", want, t);
    assert_string_equal(t, want);
    free(t);
}

#define E(sec, type, name) "{\"at\":\"2026-01-01T00:00:" sec ".000Z\",\"type\":\"" type "\",\"name\":\"" name "\"}"

static void test_order_and_bound(void **state)
{
    (void)state;
    prof_store *s = store_n(4);
    ev(s, INGEST_IDENTIFY, "u1", "a1", T0 + 1 * SEC, NULL);
    track(s, "u1", T0 + 2 * SEC, "Signed Up");
    ev(s, INGEST_PAGE, "u1", NULL, T0 + 3 * SEC, "Pricing");
    expect_timeline(s, "u1",
                    "\"timeline\":[" E("03", "page", "Pricing") "," E("02", "track", "Signed Up") ","
                    "{\"at\":\"2026-01-01T00:00:01.000Z\",\"type\":\"identify\"}]");
    ev(s, INGEST_SCREEN, "u1", NULL, T0 + 4 * SEC, NULL);   /* no name */
    ev(s, INGEST_GROUP, "u1", NULL, T0 + 5 * SEC, "acme");
    ev(s, INGEST_ALIAS, "u1", NULL, T0 + 6 * SEC, NULL);
    /* the bound: the 4 newest, the identify and the first track are gone (2) */
    expect_timeline(s, "u1",
                    "\"timeline\":[{\"at\":\"2026-01-01T00:00:06.000Z\",\"type\":\"alias\"},"
                    E("05", "group", "acme") ",{\"at\":\"2026-01-01T00:00:04.000Z\",\"type\":\"screen\"},"
                    E("03", "page", "Pricing") "]");
    /* the anonymousId finds the same profile, with the same timeline */
    expect_timeline(s, "a1",
                    "\"timeline\":[{\"at\":\"2026-01-01T00:00:06.000Z\",\"type\":\"alias\"},"
                    E("05", "group", "acme") ",{\"at\":\"2026-01-01T00:00:04.000Z\",\"type\":\"screen\"},"
                    E("03", "page", "Pricing") "]");
    prof_store_destroy(s);
}

static void test_off(void **state)
{
    (void)state;
    prof_store *s = store_n(0), *t = store_n(0);
    track(s, "u1", T0, "E");
    size_t bytes = prof_store_bytes(s);
    assert_int_equal(prof_timeline_message(s, "u1", 2, T0, "j/n", "email", "welcome"), JD_OK);
    track(s, "u1", T0 + SEC, "E");
    assert_int_equal(prof_store_bytes(s), bytes);   /* nothing recorded */
    expect_timeline(s, "u1", "");
    char *j = get(s, "u1");
    assert_null(strstr(j, "timeline"));
    free(j);
    /* the limit is clamped to JD_MAX_TIMELINE */
    prof_store_destroy(t);
    t = store_n(1000);
    for (int i = 0; i < 150; i++) track(t, "u1", T0 + i * SEC, "E");
    j = get(t, "u1");
    int n = 0;
    for (const char *q = j; (q = strstr(q, "\"type\":")); q++) n++;
    assert_int_equal(n, JD_MAX_TIMELINE);
    free(j);
    prof_store_destroy(t);
    prof_store_destroy(s);
}

/* (1): ordered by time, newest first; equal times: the later recorded first;
 * an event older than all of a full timeline is not recorded. */
static void test_out_of_order(void **state)
{
    (void)state;
    prof_store *s = store_n(4);
    track(s, "u1", T0 + 5 * SEC, "A");
    track(s, "u1", T0 + 3 * SEC, "B");
    track(s, "u1", T0 + 4 * SEC, "C");
    track(s, "u1", T0 + 4 * SEC, "D");
    expect_timeline(s, "u1",
                    "\"timeline\":[" E("05", "track", "A") "," E("04", "track", "D") "," E("04", "track", "C") ","
                    E("03", "track", "B") "]");
    track(s, "u1", T0 + 1 * SEC, "Old");   /* full, older than all: dropped */
    track(s, "u1", T0 + 3 * SEC + 500000, "Mid");   /* in the middle: B goes */
    expect_timeline(s, "u1",
                    "\"timeline\":[" E("05", "track", "A") "," E("04", "track", "D") "," E("04", "track", "C") ","
                    "{\"at\":\"2026-01-01T00:00:03.500Z\",\"type\":\"track\",\"name\":\"Mid\"}]");
    /* times before 1970 keep their order too (milliseconds rounded down) */
    prof_store *t = store_n(3);
    track(t, "u2", -1500, "neg");
    track(t, "u2", 0, "zero");
    expect_timeline(t, "u2",
                    "\"timeline\":[{\"at\":\"1970-01-01T00:00:00.000Z\",\"type\":\"track\",\"name\":\"zero\"},"
                    "{\"at\":\"1969-12-31T23:59:59.998Z\",\"type\":\"track\",\"name\":\"neg\"}]");
    prof_store_destroy(t);
    prof_store_destroy(s);
}

/* (4): names over 64 bytes are cut at 64, at a character boundary. */
static void test_long_names(void **state)
{
    (void)state;
    prof_store *s = store_n(10);
    char n70[71], n63e[66], want[512];
    memset(n70, 'x', 70);
    n70[70] = 0;
    memset(n63e, 'y', 63);
    memcpy(n63e + 63, "\xc3\xa9", 3);   /* 63 + a 2-byte character = 65 bytes: cut before it */
    track(s, "u1", T0, n70);
    ev(s, INGEST_PAGE, "u1", NULL, T0 + SEC, n63e);
    prof_timeline_message(s, "u1", 2, T0 + 2 * SEC, n70, n70, "t");
    snprintf(want, sizeof want,
             "\"timeline\":[{\"at\":\"2026-01-01T00:00:02.000Z\",\"type\":\"message\",\"name\":\"%.64s\","
             "\"channel\":\"%.64s\",\"template\":\"t\"},"
             "{\"at\":\"2026-01-01T00:00:01.000Z\",\"type\":\"page\",\"name\":\"%.63s\"},"
             "{\"at\":\"2026-01-01T00:00:00.000Z\",\"type\":\"track\",\"name\":\"%.64s\"}]",
             n70, n70, n63e, n70);
    expect_timeline(s, "u1", want);
    /* the events count keeps the whole name */
    char *j = get(s, "u1");
    assert_non_null(strstr(j, n70));
    free(j);
    prof_store_destroy(s);
}

static void test_messages(void **state)
{
    (void)state;
    prof_store *s = store_n(10);
    /* no profile: nothing happens, nothing is created */
    assert_int_equal(prof_timeline_message(s, "u1", 2, T0, "onboarding/welcome", "email", "welcome"),
                     JD_ENOTFOUND);
    assert_int_equal(prof_store_count(s), 0);
    ev(s, INGEST_TRACK, "u1", "a1", T0, "Signed Up");
    /* by key only: an anonymousId is not a key */
    assert_int_equal(prof_timeline_message(s, "a1", 2, T0, "x/y", NULL, NULL), JD_ENOTFOUND);
    assert_int_equal(prof_timeline_message(s, "u1", 2, T0 + SEC, "onboarding/welcome", "email", "welcome"), JD_OK);
    assert_int_equal(prof_timeline_message(s, "u1", 2, T0 + 2 * SEC, "onboarding/call", NULL, ""), JD_OK);   /* a task */
    expect_timeline(s, "u1",
                    "\"timeline\":[{\"at\":\"2026-01-01T00:00:02.000Z\",\"type\":\"message\",\"name\":\"onboarding/call\"},"
                    "{\"at\":\"2026-01-01T00:00:01.000Z\",\"type\":\"message\",\"name\":\"onboarding/welcome\","
                    "\"channel\":\"email\",\"template\":\"welcome\"}," E("00", "track", "Signed Up") "]");
    prof_store_destroy(s);
}

/* Round trip through a snapshot: same JSON and bytes. Returns the blob. */
static char *roundtrip(const prof_store *s, uint32_t n, size_t *len, const char *id)
{
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    assert_int_equal(prof_store_encode(s, &b), JD_OK);
    prof_store *d = store_n(n);
    jd_err err;
    assert_int_equal(prof_store_decode(d, b.data, b.len, &err), JD_OK);
    assert_int_equal(prof_store_bytes(d), prof_store_bytes(s));
    if (id) {
        char *x = get(s, id), *y = get(d, id);
        assert_string_equal(x, y);
        free(x);
        free(y);
    }
    prof_store_destroy(d);
    return jd_buf_detach(&b, len);
}

static void test_merge_keeps_newest(void **state)
{
    (void)state;
    prof_store *ls = store_n(4), *ss = store_n(4);
    /* survivor u1: A at 1, B at 3, C at 5; loser anonymous a1: L at 2, B at 4, M at 6 and a message at 5 */
    track(ss, "u1", T0 + 1 * SEC, "A");
    track(ss, "u1", T0 + 3 * SEC, "B");
    track(ss, "u1", T0 + 5 * SEC, "C");
    ev(ls, INGEST_TRACK, NULL, "a1", T0 + 2 * SEC, "L");
    ev(ls, INGEST_TRACK, NULL, "a1", T0 + 4 * SEC, "B");
    ev(ls, INGEST_TRACK, NULL, "a1", T0 + 6 * SEC, "M");
    prof_timeline_message(ls, "a1", 2, T0 + 5 * SEC, "j/n", "sms", "hi");
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    assert_int_equal(prof_extract(ls, "a1", 2, &b), JD_OK);
    assert_int_equal((uint8_t)b.data[0], 8);   /* a loser with a timeline: version 8 */
    jd_err err;
    assert_int_equal(prof_merge_in(ss, "u1", 2, true, "a1", 2, false, b.data, b.len, &err), JD_OK);
    /* newest 4 of both; at 5 the survivor's C first (1) */
    expect_timeline(ss, "u1",
                    "\"timeline\":[" E("06", "track", "M") "," E("05", "track", "C") ","
                    "{\"at\":\"2026-01-01T00:00:05.000Z\",\"type\":\"message\",\"name\":\"j/n\",\"channel\":\"sms\","
                    "\"template\":\"hi\"}," E("04", "track", "B") "]");
    /* heap exact, and the merged names survive a snapshot (indexes re-pointed: 3) */
    size_t n;
    free(roundtrip(ss, 4, &n, "u1"));
    /* a merge into an absent survivor, from a loser without a timeline (version 7) */
    prof_store *z = store_n(0), *t = store_n(4);
    track(z, "u9", T0, "Z");
    jd_buf_reset(&b);
    assert_int_equal(prof_extract(z, "u9", 2, &b), JD_OK);
    assert_int_equal((uint8_t)b.data[0], 7);
    assert_int_equal(prof_merge_in(t, "u8", 2, true, "u9", 2, true, b.data, b.len, &err), JD_OK);
    expect_timeline(t, "u8", "");
    track(t, "u8", T0 + SEC, "Z");
    expect_timeline(t, "u8", "\"timeline\":[" E("01", "track", "Z") "]");
    jd_buf_release(&b);
    prof_store_destroy(t);
    prof_store_destroy(z);
    prof_store_destroy(ls);
    prof_store_destroy(ss);
}

static void fill(prof_store *s)
{
    ev(s, INGEST_IDENTIFY, "u1", "a1", T0, NULL);
    track(s, "u1", T0 + 1 * SEC, "Signed Up");
    for (int i = 0; i < 20; i++) {   /* 16+ distinct names: indexes past 14 use the long form */
        char n[16];
        snprintf(n, sizeof n, "E%d", i);
        track(s, "u1", T0 + (2 + i) * SEC, n);
    }
    prof_timeline_message(s, "u1", 2, T0 + 30 * SEC, "onboarding/welcome", "email", "welcome");
    ev(s, INGEST_GROUP, "u2", NULL, T0, "acme");
    track(s, "u3", T0, "Only");
}

static void test_snapshot(void **state)
{
    (void)state;
    prof_store *s = store_n(10);
    fill(s);
    size_t n;
    char *blob = roundtrip(s, 10, &n, "u1");
    assert_int_equal((uint8_t)blob[0], 8);
    free(roundtrip(s, 10, &n, "u2"));
    /* every truncation is refused, and leaves the store empty */
    for (size_t k = 0; k < n; k++) {
        prof_store *d = store_n(10);
        jd_err err;
        assert_int_equal(prof_store_decode(d, blob, k, &err), JD_ECORRUPT);
        assert_int_equal(prof_store_count(d), 0);
        prof_store_destroy(d);
    }
    /* every single-bit flip is refused or decodes to a store that round trips */
    for (size_t k = 1; k < n; k++)
        for (int bit = 0; bit < 8; bit++) {
            blob[k] ^= (char)(1 << bit);
            prof_store *d = store_n(10);
            jd_err err;
            int rc = prof_store_decode(d, blob, n, &err);
            assert_true(rc == JD_OK || rc == JD_ECORRUPT);
            if (rc == JD_OK) {
                size_t m;
                free(roundtrip(d, 10, &m, NULL));
            }
            prof_store_destroy(d);
            blob[k] ^= (char)(1 << bit);
        }
    free(blob);
    prof_store_destroy(s);
}

/* A version 7 snapshot (a store with no timeline) decodes with empty ones,
 * which then fill; a timeline whose name index points past the names is refused. */
static void test_old_version(void **state)
{
    (void)state;
    prof_store *s = store_n(0);
    fill(s);
    size_t n;
    char *blob = roundtrip(s, 0, &n, "u1");
    assert_int_equal((uint8_t)blob[0], 7);
    prof_store *d = store_n(10);
    jd_err err;
    assert_int_equal(prof_store_decode(d, blob, n, &err), JD_OK);
    expect_timeline(d, "u1", "");
    track(d, "u1", T0 + 40 * SEC, "E3");
    expect_timeline(d, "u1", "\"timeline\":[" E("40", "track", "E3") "]");
    free(blob);
    prof_store_destroy(d);
    prof_store_destroy(s);

    /* a one-profile store: the timeline is the blob's last bytes before the
     * suppression count (u64 0); its one entry is an indexed track */
    s = store_n(10);
    track(s, "u1", T0, "Only");
    blob = roundtrip(s, 10, &n, "u1");
    size_t tl = n - 8 - 8;   /* u8 n | head | 6-byte zigzag ms | then the suppression count */
    assert_int_equal((uint8_t)blob[tl - 4], 8);   /* tl_len */
    assert_int_equal((uint8_t)blob[tl], 1);       /* n */
    assert_int_equal((uint8_t)blob[tl + 1], 0x10); /* track, index 0 */
    blob[tl + 1] = 0x20;                           /* index 1: there is one name */
    d = store_n(10);
    assert_int_equal(prof_store_decode(d, blob, n, &err), JD_ECORRUPT);
    assert_non_null(strstr(err.msg, "timeline name index past the event names"));
    blob[tl + 1] = 0x07;                           /* kind 7 */
    assert_int_equal(prof_store_decode(d, blob, n, &err), JD_ECORRUPT);
    assert_non_null(strstr(err.msg, "bad timeline kind"));
    blob[tl + 1] = 0x10;
    blob[tl] = 0;                                  /* n 0 with bytes */
    assert_int_equal(prof_store_decode(d, blob, n, &err), JD_ECORRUPT);
    blob[tl] = (char)(JD_MAX_TIMELINE + 1);
    assert_int_equal(prof_store_decode(d, blob, n, &err), JD_ECORRUPT);
    assert_non_null(strstr(err.msg, "bad timeline count"));
    blob[tl] = 1;
    assert_int_equal(prof_store_decode(d, blob, n, &err), JD_OK);
    free(blob);
    prof_store_destroy(d);
    prof_store_destroy(s);
}

/* prof_store_bytes: 10 track entries seconds apart with counted names cost
 * one 48-byte chunk (35 bytes: 1 + 7 + 9 x 3), and once full the timeline
 * is rewritten in place (5). The prof struct's pointer is in both. */
static void test_bytes(void **state)
{
    (void)state;
    prof_store *off = store_n(0), *on = store_n(10);
    static const char *names[] = { "Page Viewed", "Product Viewed", "Added to Cart", "Order Completed" };
    for (int i = 0; i < 10; i++) {
        track(off, "user-000000000000001", T0 + i * 3 * SEC, names[i % 4]);
        track(on, "user-000000000000001", T0 + i * 3 * SEC, names[i % 4]);
    }
    assert_int_equal(prof_store_bytes(on) - prof_store_bytes(off), 48);
    size_t full = prof_store_bytes(on);
    for (int i = 10; i < 30; i++) track(on, "user-000000000000001", T0 + i * 3 * SEC, names[i % 4]);
    assert_int_equal(prof_store_bytes(on), full);
    /* deletion drops it with the profile */
    prof_store *e = store_n(10);
    size_t empty = prof_store_bytes(e);
    prof_store_destroy(e);
    char key[64];
    assert_int_equal(prof_delete(on, "user-000000000000001", 20, T0, key, sizeof key), JD_OK);
    assert_int_equal(prof_store_bytes(on), empty);
    prof_store_destroy(on);
    prof_store_destroy(off);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_bound),
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_long_names),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_merge_keeps_newest),
        cmocka_unit_test(test_snapshot),
        cmocka_unit_test(test_old_version),
        cmocka_unit_test(test_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
