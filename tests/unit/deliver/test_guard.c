/* tests/unit/deliver/test_guard.c -- `guardrails:` (src/deliver/guard.c):
 * caps and quiet hours parsed with their defaults and exact error positions,
 * and quiet windows in a person's zone, across midnight and across a DST
 * change, on explicit times (no clock). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "journeyd/config.h"
#include "journeyd/deliver.h"

static int parse(const char *yaml, dlv_guards **out, jd_err *err)
{
    jd_yaml_doc *doc = NULL;
    const jd_yaml_node *root = NULL;
    *out = NULL;
    jd_err_clear(err);
    int rc = jd_yaml_parse("g.yaml", yaml, strlen(yaml), &doc, &root, err);
    if (rc == JD_OK) rc = dlv_guards_parse(root ? jd_yaml_get(root, "guardrails") : NULL, "g.yaml", out, err);
    jd_yaml_free(doc);
    return rc;
}

static int64_t ts(const char *s)
{
    int64_t us = 0;
    assert_int_equal(jd_time_parse(s, strlen(s), &us), JD_OK);
    return us;
}

static void test_parse_caps_and_quiet_hours(void **state)
{
    (void)state;
    dlv_guards *g;
    jd_err err;
    assert_int_equal(parse("guardrails:\n"
                           "  caps:\n"
                           "    - { channel: email, category: marketing, max: 3, per: 7d }\n"
                           "    - { journey: cart-abandonment, max: 1, per: 12h }\n"
                           "  quiet_hours:\n"
                           "    - { channel: sms, from: \"21:00\", to: \"08:00\" }\n"
                           "    - { from: \"13:00\", to: \"14:00\", zone_trait: tz, default_zone: Europe/Paris }\n",
                           &g, &err), JD_OK);
    assert_int_equal(g->ncaps, 2);
    assert_string_equal(g->caps[0].channel, "email");
    assert_string_equal(g->caps[0].category, "marketing");
    assert_string_equal(g->caps[0].journey, "*");
    assert_int_equal(g->caps[0].max, 3);
    assert_int_equal(g->caps[0].per_us, 7 * JD_DAY);
    assert_string_equal(g->caps[1].channel, "*");
    assert_string_equal(g->caps[1].journey, "cart-abandonment");
    assert_int_equal(g->caps[1].per_us, 12 * JD_HOUR);
    assert_int_equal(g->nquiet, 2);
    assert_int_equal(g->quiet[0].from_min, 21 * 60);
    assert_int_equal(g->quiet[0].to_min, 8 * 60);
    assert_string_equal(g->quiet[0].zone_trait, "timezone");
    assert_string_equal(g->quiet[0].default_zone, "UTC");
    assert_string_equal(g->quiet[1].channel, "*");
    assert_string_equal(g->quiet[1].zone_trait, "tz");
    assert_string_equal(g->quiet[1].default_zone, "Europe/Paris");
    assert_true(dlv_guard_match("*", "sms"));
    assert_true(dlv_guard_match("sms", "sms"));
    assert_false(dlv_guard_match("sms", "email"));
    dlv_guards_destroy(g);
    assert_int_equal(parse("other: 1\n", &g, &err), JD_OK);
    assert_null(g);
}

static void expect_error(const char *yaml, const char *where, const char *msg)
{
    dlv_guards *g;
    jd_err err;
    assert_int_equal(parse(yaml, &g, &err), JD_EINVAL);
    assert_null(g);
    assert_string_equal(err.where, where);
    if (!strstr(err.msg, msg)) fail_msg("'%s' does not contain '%s'", err.msg, msg);
}

static void test_errors_name_key_and_position(void **state)
{
    (void)state;
    expect_error("guardrails:\n  caps:\n    - { channel: email, max: 0, per: 7d }\n", "g.yaml:3:30",
                 "guardrails.caps[0].max: expected a whole number");
    expect_error("guardrails:\n  caps:\n    - { max: 3, per: soon }\n", "g.yaml:3:22", "guardrails.caps[0].per: expected a duration");
    expect_error("guardrails:\n  caps:\n    - { max: 3, per: 1d, chanel: sms }\n", "g.yaml:3:26",
                 "guardrails.caps[0].chanel: unknown key");
    expect_error("guardrails:\n  caps:\n    - { channel: E-mail, max: 3, per: 1d }\n", "g.yaml:3:18",
                 "guardrails.caps[0].channel: expected a name");
    expect_error("guardrails:\n  quiet_hours:\n    - { from: \"25:00\", to: \"08:00\" }\n", "g.yaml:3:15",
                 "guardrails.quiet_hours[0].from: expected a local time HH:MM");
    expect_error("guardrails:\n  quiet_hours:\n    - { from: \"08:00\", to: \"08:00\" }\n", "g.yaml:3:7",
                 "guardrails.quiet_hours[0]: from and to are the same time");
    expect_error("guardrails:\n  quiet_hours:\n    - { from: \"21:00\", to: \"08:00\", default_zone: Mars/Base }\n",
                 "g.yaml:3:51", "guardrails.quiet_hours[0].default_zone: expected an IANA time zone");
    expect_error("guardrails:\n  caps: 3\n", "g.yaml:2:9", "guardrails.caps: expected a list");
    expect_error("guardrails:\n  limits: []\n", "g.yaml:2:3", "guardrails.limits: unknown key");
}

/* 21:00-08:00 in the person's zone: held until 08:00 there, across midnight;
 * outside the window nothing is held. */
static void test_quiet_window_across_midnight_in_the_persons_zone(void **state)
{
    (void)state;
    dlv_quiet q = { .channel = "sms", .from_min = 21 * 60, .to_min = 8 * 60, .zone_trait = "timezone", .default_zone = "UTC" };
    int64_t until;
    /* 2026-03-02 23:30 in New York (UTC-5) is 04:30Z on the 3rd: held until 08:00 New York = 13:00Z */
    assert_int_equal(dlv_quiet_until(&q, "America/New_York", ts("2026-03-03T04:30:00Z"), &until), JD_OK);
    assert_int_equal(until, ts("2026-03-03T13:00:00Z"));
    /* 02:00 New York, after midnight, same night: the same end */
    assert_int_equal(dlv_quiet_until(&q, "America/New_York", ts("2026-03-03T07:00:00Z"), &until), JD_OK);
    assert_int_equal(until, ts("2026-03-03T13:00:00Z"));
    /* 12:00 New York: not quiet */
    assert_int_equal(dlv_quiet_until(&q, "America/New_York", ts("2026-03-03T17:00:00Z"), &until), JD_OK);
    assert_int_equal(until, 0);
    /* exactly 08:00 is open again; exactly 21:00 is quiet */
    assert_int_equal(dlv_quiet_until(&q, "America/New_York", ts("2026-03-03T13:00:00Z"), &until), JD_OK);
    assert_int_equal(until, 0);
    assert_int_equal(dlv_quiet_until(&q, "America/New_York", ts("2026-03-04T02:00:00Z"), &until), JD_OK);
    assert_int_equal(until, ts("2026-03-04T13:00:00Z"));
    /* no zone, or not a zone: the default (UTC) */
    assert_int_equal(dlv_quiet_until(&q, NULL, ts("2026-03-03T04:30:00Z"), &until), JD_OK);
    assert_int_equal(until, ts("2026-03-03T08:00:00Z"));
    assert_int_equal(dlv_quiet_until(&q, "Nowhere/Land", ts("2026-03-03T22:00:00Z"), &until), JD_OK);
    assert_int_equal(until, ts("2026-03-04T08:00:00Z"));
}

/* The night the clocks move (New York, 2026-03-08: 02:00 -> 03:00): the
 * window still ends at 08:00 local, which is now UTC-4. */
static void test_quiet_window_across_dst(void **state)
{
    (void)state;
    dlv_quiet q = { .channel = "*", .from_min = 21 * 60, .to_min = 8 * 60, .zone_trait = "timezone", .default_zone = "UTC" };
    int64_t until;
    assert_int_equal(dlv_quiet_until(&q, "America/New_York", ts("2026-03-08T04:00:00Z"), &until), JD_OK);   /* 23:00 EST */
    assert_int_equal(until, ts("2026-03-08T12:00:00Z"));   /* 08:00 EDT */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_caps_and_quiet_hours),
        cmocka_unit_test(test_errors_name_key_and_position),
        cmocka_unit_test(test_quiet_window_across_midnight_in_the_persons_zone),
        cmocka_unit_test(test_quiet_window_across_dst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
