/* tests/unit/expr/test_tz.c -- include/journeyd/tz.h (src/base/tz.c): zones,
 * local fields across DST, "next 09:00 in the person's zone" through gaps and
 * overlaps, and the per-thread calendar cache (freed at thread exit: LSan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "journeyd/base.h"
#include "journeyd/tz.h"

static int64_t ts(const char *s)
{
    int64_t us = 0;
    assert_int_equal(jd_time_parse(s, strlen(s), &us), JD_OK);
    return us;
}

static void test_zone_names(void **state)
{
    (void)state;
    static const char *good[] = { "UTC", "Z", "Europe/Paris", "America/New_York", "US/Central", "Asia/Kathmandu",
                                  "+02:00", "-05:30", "-0530", "+09", "02:00", "-00:00" };
    static const char *bad[] = { "", "Nowhere/City", "+25:00", "+2:00", "../../etc/passwd", "Europe/Paris ",
                                 "0200", "+02:60" };
    for (size_t i = 0; i < JD_ARRAY_LEN(good); i++) assert_true(jd_tz_valid(good[i]));
    for (size_t i = 0; i < JD_ARRAY_LEN(bad); i++) assert_false(jd_tz_valid(bad[i]));
    jd_local L;
    jd_err err;
    assert_int_equal(jd_tz_to_local("Mars/Base", 0, &L, &err), JD_EINVAL);
    assert_string_equal(err.msg, "unknown time zone 'Mars/Base'");
    assert_true(strlen(jd_tz_data_version()) >= 4);
}

static void test_local_fields_across_dst(void **state)
{
    (void)state;
    jd_local L;
    jd_err err;
    assert_int_equal(jd_tz_to_local("Europe/Paris", ts("2026-03-29T00:59:59.250Z"), &L, &err), JD_OK);
    assert_int_equal(L.hour, 1);
    assert_int_equal(L.minute, 59);
    assert_int_equal(L.millis, 250);
    assert_int_equal(L.offset_s, 3600);
    assert_int_equal(L.weekday, 0);   /* a Sunday */
    assert_int_equal(L.yday, 87);
    assert_int_equal(jd_tz_to_local("Europe/Paris", ts("2026-03-29T01:00:00Z"), &L, &err), JD_OK);
    assert_int_equal(L.hour, 3);
    assert_int_equal(L.offset_s, 7200);
    assert_int_equal(jd_tz_to_local("America/New_York", ts("2026-01-01T03:00:00Z"), &L, &err), JD_OK);
    assert_int_equal(L.year, 2025);
    assert_int_equal(L.month, 12);
    assert_int_equal(L.day, 31);
    assert_int_equal(L.hour, 22);
    assert_int_equal(L.offset_s, -5 * 3600);
    assert_int_equal(jd_tz_to_local("-02:30", ts("2009-02-13T02:00:00Z"), &L, &err), JD_OK);
    assert_int_equal(L.day, 12);
    assert_int_equal(L.hour, 23);
    assert_int_equal(L.minute, 30);
    /* before 1970 and before the Gregorian switch: proleptic Gregorian */
    assert_int_equal(jd_tz_to_local("UTC", INT64_C(-62135596800) * 1000000, &L, &err), JD_OK);
    assert_int_equal(L.year, 1);
    assert_int_equal(L.weekday, 1);
}

static void test_next_local_time(void **state)
{
    (void)state;
    int64_t out;
    jd_err err;
    /* "wait until 09:00 Europe/Paris" on the day DST starts */
    assert_int_equal(jd_tz_next_local("Europe/Paris", ts("2026-03-28T12:00:00Z"), 9, 0, 0, &out, &err), JD_OK);
    assert_int_equal(out, ts("2026-03-29T07:00:00Z"));
    /* strictly after: at 09:00 exactly, the next one is tomorrow's */
    assert_int_equal(jd_tz_next_local("Europe/Paris", ts("2026-03-29T07:00:00Z"), 9, 0, 0, &out, &err), JD_OK);
    assert_int_equal(out, ts("2026-03-30T07:00:00Z"));
    /* 02:30 does not exist that night: the first instant after the gap */
    assert_int_equal(jd_tz_next_local("Europe/Paris", ts("2026-03-28T12:00:00Z"), 2, 30, 0, &out, &err), JD_OK);
    assert_int_equal(out, ts("2026-03-29T01:00:00Z"));
    /* 02:30 happens twice when DST ends: the first occurrence (CEST) */
    assert_int_equal(jd_tz_next_local("Europe/Paris", ts("2026-10-24T12:00:00Z"), 2, 30, 0, &out, &err), JD_OK);
    assert_int_equal(out, ts("2026-10-25T00:30:00Z"));
    /* weekday mask: the next Monday (bit 1) 09:00 in New York from a Saturday */
    assert_int_equal(jd_tz_next_local("America/New_York", ts("2026-03-07T15:00:00Z"), 9, 0, 1u << 1, &out, &err),
                     JD_OK);
    assert_int_equal(out, ts("2026-03-09T13:00:00Z"));   /* EDT since Sunday */
    assert_int_equal(jd_tz_next_local("+05:30", ts("2026-01-01T00:00:00Z"), 9, 0, 0, &out, &err), JD_OK);
    assert_int_equal(out, ts("2026-01-01T03:30:00Z"));
    assert_int_equal(jd_tz_next_local("UTC", 0, 24, 0, 0, &out, &err), JD_EINVAL);
    assert_int_equal(jd_tz_next_local("Nowhere", 0, 9, 0, 0, &out, &err), JD_EINVAL);
}

static void *thread_main(void *arg)
{
    jd_local L;
    (void)arg;
    /* more zones than the cache holds, from a thread that then exits */
    static const char *zones[] = { "Europe/Paris", "Europe/London", "Asia/Tokyo", "America/Chicago",
                                   "Australia/Sydney", "Africa/Cairo", "America/Sao_Paulo", "Asia/Kolkata",
                                   "Pacific/Auckland", "Europe/Berlin" };
    for (int r = 0; r < 3; r++)
        for (size_t i = 0; i < JD_ARRAY_LEN(zones); i++)
            if (jd_tz_to_local(zones[i], 0, &L, NULL) != JD_OK) return (void *)1;
    return NULL;
}

static void test_cache_per_thread(void **state)
{
    (void)state;
    pthread_t th[3];
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, thread_main, NULL);
    for (int i = 0; i < 3; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        assert_null(rc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zone_names),
        cmocka_unit_test(test_local_fields_across_dst),
        cmocka_unit_test(test_next_local_time),
        cmocka_unit_test(test_cache_per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
