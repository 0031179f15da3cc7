/* tests/unit/profile/test_computed.c -- computed traits: the `computed:`
 * definitions parser and its errors, values over all time and over sliding
 * windows (on explicit times: no clock), out-of-order events, the snapshot
 * codec with definitions that change between encode and decode.
 * Invariant numbers refer to src/profile/computed.c and snapshot.c. */
#include "journeyd/config.h"
#include "journeyd/limits.h"
#include "journeyd/profile.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#define T0 INT64_C(1767225600000000)   /* 2026-01-01T00:00:00Z, a UTC midnight */
#define SEC INT64_C(1000000)
#define DAY (86400 * SEC)

static jd_str S(const char *s) { return s ? (jd_str){ s, (uint32_t)strlen(s) } : (jd_str){ NULL, 0 }; }

/* Parses `computed:` from a YAML text; returns the rc, fills *out and err. */
static int parse(const char *yaml, prof_computed_defs **out, jd_err *err)
{
    jd_yaml_doc *doc = NULL;
    const jd_yaml_node *root = NULL;
    *out = NULL;
    int rc = jd_yaml_parse("t.yaml", yaml, strlen(yaml), &doc, &root, err);
    if (rc == JD_OK) rc = prof_computed_parse(jd_yaml_get(root, "computed"), "t.yaml", out, err);
    jd_yaml_free(doc);
    return rc;
}

static prof_computed_defs *defs_of(const char *yaml)
{
    prof_computed_defs *d = NULL;
    jd_err err;
    jd_err_clear(&err);
    int rc = parse(yaml, &d, &err);
    if (rc != JD_OK) fail_msg("%s: %s", err.where, err.msg);
    assert_non_null(d);
    return d;
}

static prof_store *store_with(const prof_computed_defs *d)
{
    prof_limits l;
    prof_limits_default(&l);
    l.computed = d;
    return prof_store_create(&l);
}

/* A track event `name` of user `uid` at ts with properties `props` (JSON). */
static void track(prof_store *s, const char *uid, int64_t ts, const char *name, const char *props)
{
    char json[4096];
    snprintf(json, sizeof json, "{\"type\":\"track\",\"event\":\"%s\",\"properties\":%s}", name,
             props ? props : "{}");
    ingest_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = INGEST_TRACK;
    ev.timestamp_us = ev.received_us = ts;
    ev.user_id = S(uid);
    ev.message_id = S("m");
    ev.event = S(name);
    ev.json = S(json);
    jd_err err;
    jd_err_clear(&err);
    int rc = prof_apply(s, &ev, &err);
    if (rc != JD_OK) fail_msg("prof_apply: %s", err.msg);
}

/* The "computed" object of prof_view_at(now) as JSON text (owned). */
static char *computed_at(prof_store *s, const char *key, int64_t now)
{
    json_object *v = prof_view_at(s, key, strlen(key), now), *c = NULL;
    assert_non_null(v);
    assert_true(json_object_object_get_ex(v, "computed", &c));
    char *t = jd_xstrdup(json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(v);
    return t;
}

static void expect_at(prof_store *s, const char *key, int64_t now, const char *want)
{
    char *got = computed_at(s, key, now);
    if (strcmp(got, want) != 0) fail_msg("at %lld:\n  got  %s\n  want %s", (long long)now, got, want);
    free(got);
}

/* The "computed" part of prof_get_json (owned). */
static char *json_computed(const prof_store *s, const char *id)
{
    jd_buf b;
    jd_buf_init(&b, 1 << 20);
    assert_int_equal(prof_get_json(s, id, strlen(id), &b), JD_OK);
    char *c = strstr(b.data, "\"computed\":");
    char *e = strstr(b.data, ",\"firstSeen\"");
    assert_non_null(c);
    assert_non_null(e);
    char *t = jd_xstrndup(c + 11, (size_t)(e - c - 11));
    jd_buf_release(&b);
    return t;
}

static char *encode(const prof_store *s, size_t *n)
{
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    assert_int_equal(prof_store_encode(s, &b), JD_OK);
    return jd_buf_detach(&b, n);
}

/* ---- all time ----------------------------------------------------------- */

static const char *ALL_TIME =
    "computed:\n"
    "  logins:      { count: Logged In }\n"
    "  spend_total: { sum: Order Completed, property: total }\n"
    "  min_order:   { min: Order Completed, property: total }\n"
    "  max_cart:    { max: Cart Updated, property: cart.value }\n"
    "  last_plan:   { last: Plan Changed, property: plan }\n"
    "  first_order: { first_seen: Order Completed }\n"
    "  last_login:  { last_seen: Logged In }\n";

static void test_all_time(void **state)
{
    (void)state;
    prof_computed_defs *d = defs_of(ALL_TIME);
    assert_int_equal(prof_computed_count(d), 7);
    prof_store *s = store_with(d);
    track(s, "u1", T0, "Signed Up", NULL);
    /* Nothing yet: count and sum are 0, the others absent. */
    expect_at(s, "u1", T0, "{\"logins\":0,\"spend_total\":0}");

    track(s, "u1", T0 + 1 * SEC, "Logged In", NULL);
    track(s, "u1", T0 + 2 * SEC, "Logged In", NULL);
    track(s, "u1", T0 + 3 * SEC, "Order Completed", "{\"total\":19.99}");
    track(s, "u1", T0 + 4 * SEC, "Order Completed", "{\"total\":40}");
    track(s, "u1", T0 + 5 * SEC, "Order Completed", "{\"total\":5}");
    track(s, "u1", T0 + 6 * SEC, "Cart Updated", "{\"cart\":{\"value\":12}}");
    track(s, "u1", T0 + 7 * SEC, "Cart Updated", "{\"cart\":{\"value\":7.5}}");
    track(s, "u1", T0 + 8 * SEC, "Plan Changed", "{\"plan\":\"pro\"}");
    track(s, "u1", T0 + 9 * SEC, "Plan Changed", "{\"plan\":{\"name\":\"team\",\"seats\":5}}");
    char *j = json_computed(s, "u1");
    assert_string_equal(j, "{\"logins\":2,\"spend_total\":64.99,\"min_order\":5,\"max_cart\":12,"
                           "\"last_plan\":{\"name\":\"team\",\"seats\":5},"
                           "\"first_order\":\"2026-01-01T00:00:03.000Z\",\"last_login\":\"2026-01-01T00:00:02.000Z\"}");
    free(j);

    /* Typed values in the expression view. */
    json_object *v = prof_view(s, "u1", 2), *c, *x;
    assert_true(json_object_object_get_ex(v, "computed", &c));
    assert_true(json_object_object_get_ex(c, "logins", &x) && json_object_is_type(x, json_type_int));
    assert_int_equal(json_object_get_int64(x), 2);
    assert_true(json_object_object_get_ex(c, "spend_total", &x) && json_object_is_type(x, json_type_double));
    assert_true(json_object_get_double(x) > 64.98 && json_object_get_double(x) < 65.0);
    assert_true(json_object_object_get_ex(c, "last_plan", &x) && json_object_is_type(x, json_type_object));
    assert_true(json_object_object_get_ex(c, "first_order", &x) && json_object_is_type(x, json_type_string));
    json_object_put(v);

    /* Other events and other profiles are not counted. */
    track(s, "u2", T0, "Logged In", NULL);
    track(s, "u1", T0 + 10 * SEC, "Logged Out", NULL);
    j = json_computed(s, "u1");
    assert_non_null(strstr(j, "\"logins\":2,"));
    free(j);
    j = json_computed(s, "u2");
    assert_string_equal(j, "{\"logins\":1,\"spend_total\":0,\"last_login\":\"2026-01-01T00:00:00.000Z\"}");
    free(j);
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
}

/* (3): only JSON numbers count for sum/min/max; (4): null or missing keeps the last value. */
static void test_non_numeric_ignored(void **state)
{
    (void)state;
    prof_computed_defs *d = defs_of(ALL_TIME);
    prof_store *s = store_with(d);
    static const char *const junk[] = {
        "{\"total\":\"12\"}", "{\"total\":true}", "{\"total\":null}", "{\"total\":{\"a\":1}}", "{\"total\":[1]}", "{}",
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(junk); i++) track(s, "u1", T0, "Order Completed", junk[i]);
    /* The events still count for first_seen, which reads no property. */
    expect_at(s, "u1", T0, "{\"logins\":0,\"spend_total\":0,\"first_order\":\"2026-01-01T00:00:00.000Z\"}");
    track(s, "u1", T0, "Order Completed", "{\"total\":-2.5}");
    expect_at(s, "u1", T0, "{\"logins\":0,\"spend_total\":-2.5,\"min_order\":-2.5,"
                           "\"first_order\":\"2026-01-01T00:00:00.000Z\"}");
    /* A sum that would overflow a double keeps its old value. */
    track(s, "u1", T0, "Order Completed", "{\"total\":1.7e308}");
    track(s, "u1", T0, "Order Completed", "{\"total\":1.7e308}");
    char *j = json_computed(s, "u1");
    assert_non_null(strstr(j, "\"spend_total\":1.7e+308,"));
    free(j);

    track(s, "u1", T0, "Plan Changed", "{\"plan\":\"pro\"}");
    track(s, "u1", T0 + SEC, "Plan Changed", "{\"plan\":null}");
    track(s, "u1", T0 + SEC, "Plan Changed", "{}");
    j = json_computed(s, "u1");
    assert_non_null(strstr(j, "\"last_plan\":\"pro\""));
    free(j);
    /* A last value over JD_MAX_COMPUTED_VALUE_BYTES is refused and counted in limited. */
    char big[JD_MAX_COMPUTED_VALUE_BYTES + 64];
    memset(big, 'x', sizeof big);
    memcpy(big, "{\"plan\":\"", 9);
    memcpy(big + sizeof big - 3, "\"}", 3);
    track(s, "u1", T0 + 2 * SEC, "Plan Changed", big);
    j = json_computed(s, "u1");
    assert_non_null(strstr(j, "\"last_plan\":\"pro\""));
    free(j);
    jd_buf b;
    jd_buf_init(&b, 1 << 20);
    assert_int_equal(prof_get_json(s, "u1", 2, &b), JD_OK);
    assert_non_null(strstr(b.data, "\"limited\":1}"));
    jd_buf_release(&b);
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
}

static void test_out_of_order_all_time(void **state)
{
    (void)state;
    prof_computed_defs *d = defs_of(ALL_TIME);
    prof_store *s = store_with(d);
    track(s, "u1", T0 + 10 * SEC, "Plan Changed", "{\"plan\":\"new\"}");
    track(s, "u1", T0 + 5 * SEC, "Plan Changed", "{\"plan\":\"old\"}");   /* late: does not clobber */
    track(s, "u1", T0 + 10 * SEC, "Logged In", NULL);
    track(s, "u1", T0 + 5 * SEC, "Logged In", NULL);
    track(s, "u1", T0 + 9 * SEC, "Order Completed", "{\"total\":1}");
    track(s, "u1", T0 + 2 * SEC, "Order Completed", "{\"total\":1}");   /* earlier: first_seen moves back */
    char *j = json_computed(s, "u1");
    assert_string_equal(j, "{\"logins\":2,\"spend_total\":2,\"min_order\":1,\"last_plan\":\"new\","
                           "\"first_order\":\"2026-01-01T00:00:02.000Z\",\"last_login\":\"2026-01-01T00:00:10.000Z\"}");
    free(j);
    /* Equal times: the later applied wins (log order). */
    track(s, "u1", T0 + 10 * SEC, "Plan Changed", "{\"plan\":\"same-time\"}");
    j = json_computed(s, "u1");
    assert_non_null(strstr(j, "\"last_plan\":\"same-time\""));
    free(j);
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
}

/* ---- windows ------------------------------------------------------------ */

static const char *WINDOWED =
    "computed:\n"
    "  logins_7d:  { count: Logged In, window: 7d }\n"
    "  spend_7d:   { sum: Order Completed, property: total, window: 7d }\n"
    "  max_7d:     { max: Order Completed, property: total, window: 7d }\n"
    "  first_7d:   { first_seen: Logged In, window: 7d }\n"
    "  last_7d:    { last_seen: Logged In, window: 7d }\n"
    "  plan_7d:    { last: Plan Changed, property: plan, window: 7d }\n";

/* Events at t, t+3d and t+8d: the window at t+8d excludes the first. */
static void test_window_7d(void **state)
{
    (void)state;
    prof_computed_defs *d = defs_of(WINDOWED);
    prof_store *s = store_with(d);
    int64_t t = T0 + 12 * 3600 * SEC;   /* noon: away from bucket edges */
    track(s, "u1", t, "Logged In", NULL);
    track(s, "u1", t, "Order Completed", "{\"total\":100}");
    track(s, "u1", t, "Plan Changed", "{\"plan\":\"pro\"}");
    track(s, "u1", t + 3 * DAY, "Logged In", NULL);
    track(s, "u1", t + 3 * DAY, "Order Completed", "{\"total\":10}");
    expect_at(s, "u1", t + 3 * DAY,
              "{\"logins_7d\":2,\"spend_7d\":110,\"max_7d\":100,\"first_7d\":\"2026-01-01T12:00:00.000Z\","
              "\"last_7d\":\"2026-01-04T12:00:00.000Z\",\"plan_7d\":\"pro\"}");
    track(s, "u1", t + 8 * DAY, "Logged In", NULL);
    /* prof_view reads as of the profile's last event: t + 8d. */
    json_object *v = prof_view(s, "u1", 2), *c, *x;
    assert_true(json_object_object_get_ex(v, "computed", &c));
    assert_true(json_object_object_get_ex(c, "logins_7d", &x));
    assert_int_equal(json_object_get_int64(x), 2);
    assert_false(json_object_object_get_ex(c, "plan_7d", &x));   /* set 8 days ago: has() is false */
    json_object_put(v);
    expect_at(s, "u1", t + 8 * DAY,
              "{\"logins_7d\":2,\"spend_7d\":10,\"max_7d\":10,\"first_7d\":\"2026-01-04T12:00:00.000Z\","
              "\"last_7d\":\"2026-01-09T12:00:00.000Z\"}");
    /* Read at an earlier now: later buckets are not counted, and the buckets
     * the t + 8d event pushed out of every window from then on are gone (6). */
    expect_at(s, "u1", t + 3 * DAY,
              "{\"logins_7d\":1,\"spend_7d\":110,\"max_7d\":100,\"first_7d\":\"2026-01-04T12:00:00.000Z\","
              "\"plan_7d\":\"pro\"}");   /* only logins had an event at t + 8d */
    /* Later, everything has left the window: 0 and absent. */
    expect_at(s, "u1", t + 16 * DAY, "{\"logins_7d\":0,\"spend_7d\":0}");
    char *j = json_computed(s, "u1");   /* GET reads as of lastSeen too */
    assert_string_equal(j, "{\"logins_7d\":2,\"spend_7d\":10,\"max_7d\":10,\"first_7d\":\"2026-01-04T12:00:00.000Z\","
                           "\"last_7d\":\"2026-01-09T12:00:00.000Z\"}");
    free(j);
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
}

/* (6) with buckets: 7 over 7d (w = 1 day, on UTC midnights): the window at
 * now counts the buckets kn-6 .. kn, between 6 and 7 days. */
static void test_bucket_boundaries(void **state)
{
    (void)state;
    prof_computed_defs *d = defs_of("computed:\n  n: { count: E, window: 7d, buckets: 7 }\n");
    prof_store *s = store_with(d);
    track(s, "u1", T0 - 1, "E", NULL);   /* the last microsecond of the day before */
    track(s, "u1", T0, "E", NULL);       /* the first of T0's day */
    expect_at(s, "u1", T0, "{\"n\":2}");
    expect_at(s, "u1", T0 + 6 * DAY - 1, "{\"n\":2}");   /* kn = day 5: days -1..5 */
    expect_at(s, "u1", T0 + 6 * DAY, "{\"n\":1}");       /* kn = day 6: days 0..6 */
    expect_at(s, "u1", T0 + 7 * DAY - 1, "{\"n\":1}");
    expect_at(s, "u1", T0 + 7 * DAY, "{\"n\":0}");       /* never longer than the window */
    expect_at(s, "u1", T0 - 2, "{\"n\":1}");             /* before T0's bucket: T0 is in the future */
    /* The same slot reused seven days later: the old bucket is replaced. */
    track(s, "u1", T0 + 7 * DAY, "E", NULL);
    expect_at(s, "u1", T0 + 7 * DAY, "{\"n\":1}");
    expect_at(s, "u1", T0 + 6 * DAY, "{\"n\":0}");       /* day 0's count was overwritten (6) */
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
}

/* (6): a late event in a bucket still kept counts; one older than its slot's
 * bucket does not. */
static void test_window_out_of_order(void **state)
{
    (void)state;
    prof_computed_defs *d = defs_of("computed:\n  n: { count: E, window: 7d, buckets: 7 }\n"
                                    "  s: { sum: E, property: v, window: 7d, buckets: 7 }\n");
    prof_store *s = store_with(d);
    track(s, "u1", T0 + 8 * DAY, "E", "{\"v\":1}");
    track(s, "u1", T0 + 5 * DAY, "E", "{\"v\":10}");    /* late, in the window: counted */
    track(s, "u1", T0 + 1 * DAY, "E", "{\"v\":100}");   /* same slot as day 8, older: dropped */
    track(s, "u1", T0 + 8 * DAY + SEC, "E", "{\"v\":1000}");
    expect_at(s, "u1", T0 + 8 * DAY, "{\"n\":3,\"s\":1011}");
    expect_at(s, "u1", T0 + 5 * DAY, "{\"n\":1,\"s\":10}");
    /* Applying the same events in time order gives the same values at t+8d. */
    prof_store *o = store_with(d);
    track(o, "u1", T0 + 5 * DAY, "E", "{\"v\":10}");
    track(o, "u1", T0 + 8 * DAY, "E", "{\"v\":1}");
    track(o, "u1", T0 + 8 * DAY + SEC, "E", "{\"v\":1000}");
    expect_at(o, "u1", T0 + 8 * DAY, "{\"n\":3,\"s\":1011}");
    prof_store_destroy(o);
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
}

/* An unreadable track record with a property-reading definition changes nothing. */
static void test_unreadable_json(void **state)
{
    (void)state;
    prof_computed_defs *d = defs_of(ALL_TIME);
    prof_store *s = store_with(d);
    track(s, "u1", T0, "Order Completed", "{\"total\":1}");
    ingest_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = INGEST_TRACK;
    ev.timestamp_us = T0;
    ev.user_id = S("u1");
    ev.event = S("Order Completed");
    ev.json = S("{\"properties\":");
    jd_err err;
    assert_int_equal(prof_apply(s, &ev, &err), JD_EINVAL);
    char *j = json_computed(s, "u1");
    assert_non_null(strstr(j, "\"spend_total\":1,"));
    free(j);
    /* A definition without a property does not need the JSON. */
    ev.event = S("Logged In");
    assert_int_equal(prof_apply(s, &ev, &err), JD_OK);
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
}

/* ---- snapshot ----------------------------------------------------------- */

static void fill(prof_store *s)
{
    track(s, "u1", T0, "Logged In", NULL);
    track(s, "u1", T0 + DAY, "Logged In", NULL);
    track(s, "u1", T0 + DAY, "Order Completed", "{\"total\":3.25}");
    track(s, "u1", T0 + 2 * DAY, "Plan Changed", "{\"plan\":\"pro\"}");
    track(s, "u1", T0 + 2 * DAY, "Cart Updated", "{\"cart\":{\"value\":9}}");
    track(s, "u2", T0, "Logged In", NULL);
    track(s, "u3", T0, "Nothing", NULL);
}

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "%s%s", ALL_TIME, WINDOWED + strlen("computed:\n"));
    prof_computed_defs *d = defs_of(yaml);
    assert_int_equal(prof_computed_count(d), 13);
    prof_store *s = store_with(d);
    fill(s);
    size_t n;
    char *blob = encode(s, &n);
    prof_store *r = store_with(d);
    jd_err err;
    assert_int_equal(prof_store_decode(r, blob, n, &err), JD_OK);
    assert_int_equal(prof_store_bytes(r), prof_store_bytes(s));
    static const char *const ids[] = { "u1", "u2", "u3" };
    for (size_t i = 0; i < 3; i++) {
        char *a = json_computed(s, ids[i]), *b = json_computed(r, ids[i]);
        assert_string_equal(a, b);
        free(a);
        free(b);
        a = computed_at(s, ids[i], T0 + 3 * DAY);
        b = computed_at(r, ids[i], T0 + 3 * DAY);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    char *j = json_computed(r, "u1");
    assert_non_null(strstr(j, "\"logins\":2,\"spend_total\":3.25,"));
    assert_non_null(strstr(j, "\"logins_7d\":2,"));
    free(j);
    /* Later events land the same on both. */
    track(s, "u1", T0 + 3 * DAY, "Logged In", NULL);
    track(r, "u1", T0 + 3 * DAY, "Logged In", NULL);
    char *a = json_computed(s, "u1"), *b = json_computed(r, "u1");
    assert_string_equal(a, b);
    free(a);
    free(b);
    /* Encoding again gives the same bytes (one profile per store for a
     * stable order). */
    prof_store *one = store_with(d), *two = store_with(d);
    fill(one);
    size_t n1, n2;
    char *b1 = encode(one, &n1);
    assert_int_equal(prof_store_decode(two, b1, n1, &err), JD_OK);
    char *b2 = encode(two, &n2);
    assert_int_equal(n1, n2);
    prof_store_destroy(one);
    prof_store_destroy(two);
    free(b1);
    free(b2);
    free(blob);
    prof_store_destroy(r);
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
}

/* Definitions keyed by a hash of name, kind, event, property and window:
 * unchanged ones keep their values (even when reordered), changed or
 * removed ones are dropped, new ones start empty (not back-filled). */
static void test_definitions_changed(void **state)
{
    (void)state;
    prof_computed_defs *before = defs_of("computed:\n"
                                         "  logins:    { count: Logged In }\n"
                                         "  spend:     { sum: Order Completed, property: total }\n"
                                         "  last_plan: { last: Plan Changed, property: plan }\n"
                                         "  renamed:   { count: Logged In }\n");
    prof_computed_defs *after = defs_of("computed:\n"
                                        "  fresh:     { count: Logged In }\n"
                                        "  spend:     { sum: Order Completed, property: total, window: 30d }\n"
                                        "  logins:    { count: Logged In }\n"
                                        "  new_name:  { count: Logged In }\n");
    prof_store *s = store_with(before);
    track(s, "u1", T0, "Logged In", NULL);
    track(s, "u1", T0, "Logged In", NULL);
    track(s, "u1", T0, "Order Completed", "{\"total\":5}");
    track(s, "u1", T0, "Plan Changed", "{\"plan\":\"pro\"}");
    size_t n;
    char *blob = encode(s, &n);
    prof_store *r = store_with(after);
    jd_err err;
    assert_int_equal(prof_store_decode(r, blob, n, &err), JD_OK);
    char *j = json_computed(r, "u1");
    assert_string_equal(j, "{\"fresh\":0,\"spend\":0,\"logins\":2,\"new_name\":0}");
    free(j);
    /* The dropped values no longer cost memory. */
    assert_true(prof_store_bytes(r) < prof_store_bytes(s));
    track(r, "u1", T0 + SEC, "Logged In", NULL);
    track(r, "u1", T0 + SEC, "Order Completed", "{\"total\":1}");
    j = json_computed(r, "u1");
    assert_string_equal(j, "{\"fresh\":1,\"spend\":1,\"logins\":3,\"new_name\":1}");
    free(j);
    /* No definitions at all: every value dropped, the rest of the profile kept. */
    prof_store *none = store_with(NULL);
    assert_int_equal(prof_store_decode(none, blob, n, &err), JD_OK);
    assert_int_equal(prof_store_count(none), 1);
    j = json_computed(none, "u1");
    assert_string_equal(j, "{}");
    free(j);
    prof_store_destroy(none);
    free(blob);
    prof_store_destroy(r);
    prof_store_destroy(s);
    prof_computed_defs_destroy(before);
    prof_computed_defs_destroy(after);
}

/* A version 2 snapshot (before computed traits) still decodes. */
static void test_snapshot_v2_decodes(void **state)
{
    (void)state;
    prof_computed_defs *d = defs_of(ALL_TIME);
    prof_store *s = store_with(NULL);
    track(s, "u1", T0, "Logged In", NULL);
    size_t n;
    char *blob = encode(s, &n);
    assert_int_equal(blob[0], 7);
    /* computed_len 0, consent_len 0, identities_len 0, then the suppression count 0 (version 7) */
    assert_int_equal(memcmp(blob + n - 20, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20), 0);
    blob[0] = 2;   /* version 2 is version 7 without computed_len, consent_len, identities_len and the suppressions */
    prof_store *r = store_with(d);
    jd_err err;
    assert_int_equal(prof_store_decode(r, blob, n - 20, &err), JD_OK);
    char *j = json_computed(r, "u1");
    assert_string_equal(j, "{\"logins\":0,\"spend_total\":0}");   /* not back-filled */
    free(j);
    prof_store_destroy(r);
    r = store_with(d);
    assert_int_equal(prof_store_decode(r, blob, n - 16, &err), JD_ECORRUPT);   /* v2 with 4 extra bytes */
    assert_non_null(strstr(err.msg, "trailing bytes"));
    free(blob);
    prof_store_destroy(r);
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
}

/* Finds the computed section of a one-profile blob: it is last before
 * consent_len and the suppressions (pass n without those 12 bytes). */
static size_t computed_at_off(const char *blob, size_t n, uint32_t len)
{
    uint32_t l = (uint32_t)(uint8_t)blob[n - len - 4] | (uint32_t)(uint8_t)blob[n - len - 3] << 8;
    assert_int_equal(l, len);
    return n - len;
}

static void test_snapshot_corrupt_computed(void **state)
{
    (void)state;
    prof_computed_defs *d = defs_of("computed:\n"
                                    "  n: { count: E, window: 7d, buckets: 2 }\n"
                                    "  s: { sum: E, property: v }\n");
    prof_store *s = store_with(d);
    track(s, "u1", T0, "E", "{\"v\":2}");
    size_t n;
    char *blob = encode(s, &n);
    /* n: 12 + 1 x 16 bytes (only the bucket that holds the event); s: 12 + 8 bytes. */
    size_t at = computed_at_off(blob, n - 16, 28 + 20);   /* before consent_len, identities_len and the suppressions */
    char *bad = jd_xmalloc(n);
    prof_store *r = store_with(d);
    jd_err err;
    static const struct { size_t off; uint8_t v; const char *msg; } cases[] = {
        { 8, 17, "bad computed value length" },        /* n's length 16 -> 17: not whole buckets */
        { 8, 0xff, "computed length past its set" },
        { 12, 0, "bad computed bucket" },              /* the bucket's k becomes "empty" */
        { 28 + 12 + 6, 0xf8, "bad computed number" },  /* s: the double becomes NaN / inf */
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(cases); i++) {
        memcpy(bad, blob, n);
        if (cases[i].off == 12) { memset(bad + at + 12, 0, 8); bad[at + 12 + 7] = (char)0x80; }
        else if (cases[i].off == 28 + 12 + 6) { bad[at + 28 + 12 + 6] = (char)0xf8; bad[at + 28 + 12 + 7] = 0x7f; }
        else bad[at + cases[i].off] = (char)cases[i].v;
        assert_int_equal(prof_store_decode(r, bad, n, &err), JD_ECORRUPT);
        if (!strstr(err.msg, cases[i].msg)) fail_msg("case %zu: %s", i, err.msg);
        assert_int_equal(prof_store_count(r), 0);
    }
    /* Both entries with the same id: a duplicate. */
    memcpy(bad, blob, n);
    memcpy(bad + at + 28, bad + at, 8);
    memcpy(bad + at + 28 + 8, "\x08\0\0\0", 4);
    assert_int_equal(prof_store_decode(r, bad, n, &err), JD_ECORRUPT);
    assert_non_null(strstr(err.msg, "duplicate computed value"));
    /* Every bit flipped: never a crash or a leak; refused or well formed. */
    for (size_t i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, blob, n);
            bad[i] ^= (char)(1 << bit);
            int rc = prof_store_decode(r, bad, n, &err);
            assert_true(rc == JD_OK || rc == JD_ECORRUPT);
            if (rc == JD_OK) {
                json_object_put(prof_view_at(r, "u1", 2, T0));
                prof_store_destroy(r);
                r = store_with(d);
            }
        }
    free(bad);
    free(blob);
    prof_store_destroy(r);
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
}

/* prof_store_bytes counts the computed blob (and the rich part holding it). */
static void test_bytes(void **state)
{
    (void)state;
    prof_computed_defs *d = defs_of("computed:\n  n: { count: E, window: 7d }\n  c: { count: E }\n");
    prof_store *s = store_with(d);
    track(s, "u1", T0, "Other", NULL);
    size_t before = prof_store_bytes(s);
    track(s, "u1", T0, "E", NULL);
    size_t after = prof_store_bytes(s);
    /* rich (80: five blobs) + blob of (5 + 1 x 16: the one bucket with an
     * event) + (5 + 8) = 34 bytes -> 48 */
    assert_int_equal(after - before, 80 + 48);
    track(s, "u1", T0 + SEC, "E", NULL);   /* (5): in place */
    assert_int_equal(prof_store_bytes(s), after);
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
}

/* ---- the parser --------------------------------------------------------- */

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct { const char *yaml; const char *where; const char *msg; int rc; } cases[] = {
        { "computed: [a]\n", "t.yaml:1:11", "computed: expected a map of definitions", JD_EINVAL },
        { "computed:\n  x: 3\n", "t.yaml:2:6", "computed.x: expected a map like", JD_EINVAL },
        { "computed:\n  1x: { count: E }\n", "t.yaml:2:3", "computed.1x: a name is 1 to 64 letters", JD_EINVAL },
        { "computed:\n  a-b: { count: E }\n", "t.yaml:2:3", "computed.a-b: a name is", JD_EINVAL },
        { "computed:\n  x: { window: 7d }\n", "t.yaml:2:3", "computed.x: needs one of count, sum", JD_EINVAL },
        { "computed:\n  x: { count: E, sum: F }\n", "t.yaml:2:18", "computed.x: both count and sum", JD_EINVAL },
        { "computed:\n  x: { count: E, color: red }\n", "t.yaml:2:18", "computed.x: unknown key 'color'", JD_EINVAL },
        { "computed:\n  x: { count: '' }\n", "t.yaml:2:15", "computed.x.count: expected an event name", JD_EINVAL },
        { "computed:\n  x: { count: [E] }\n", "t.yaml:2:15", "computed.x.count: expected an event name", JD_EINVAL },
        { "computed:\n  x: { sum: E }\n", "t.yaml:2:8", "computed.x: sum needs a property", JD_EINVAL },
        { "computed:\n  x: { count: E, property: v }\n", "t.yaml:2:18", "computed.x.property: count takes no property", JD_EINVAL },
        { "computed:\n  x: { max: E, property: a..b }\n", "t.yaml:2:26", "computed.x.property: expected a dotted path", JD_EINVAL },
        { "computed:\n  x:\n    count: E\n    window: soon\n", "t.yaml:4:13",
          "computed.x.window: expected a duration like 7d, 24h or 30m, got 'soon'", JD_EINVAL },
        { "computed:\n  x: { count: E, window: 30s }\n", "t.yaml:2:26", "computed.x.window: 30s is out of range 1m..3650d", JD_EINVAL },
        { "computed:\n  x: { count: E, buckets: 7 }\n", "t.yaml:2:18", "computed.x.buckets: only a window has buckets", JD_EINVAL },
        { "computed:\n  x: { count: E, window: 7d, buckets: 65 }\n", "t.yaml:2:39",
          "computed.x.buckets: expected a whole number 2..64, got '65'", JD_EINVAL },
        { "computed:\n  x: { count: E, window: 7d, buckets: 1 }\n", "t.yaml:2:39", "computed.x.buckets: expected a whole number", JD_EINVAL },
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(cases); i++) {
        prof_computed_defs *d = NULL;
        jd_err err;
        jd_err_clear(&err);
        int rc = parse(cases[i].yaml, &d, &err);
        if (rc != cases[i].rc || strcmp(err.where, cases[i].where) != 0 || strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)) != 0)
            fail_msg("case %zu: got %d '%s: %s', want '%s: %s...'", i, rc, err.where, err.msg, cases[i].where, cases[i].msg);
        assert_null(d);
    }
    /* At most JD_MAX_COMPUTED definitions. */
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    jd_buf_adds(&b, "computed:\n");
    for (int i = 0; i <= JD_MAX_COMPUTED; i++) jd_buf_addf(&b, "  c%d: { count: E%d }\n", i, i % 3);
    prof_computed_defs *d = NULL;
    jd_err err;
    assert_int_equal(parse(b.data, &d, &err), JD_ELIMIT);
    assert_string_equal(err.where, "t.yaml:66:3");
    assert_string_equal(err.msg, "computed: more than 64 definitions");
    /* 64 are fine, and each event name finds its own. */
    b.data[strstr(b.data, "  c64:") - b.data] = 0;
    assert_int_equal(parse(b.data, &d, &err), JD_OK);
    assert_int_equal(prof_computed_count(d), 64);
    prof_store *s = store_with(d);
    track(s, "u1", T0, "E1", NULL);
    char *j = json_computed(s, "u1");
    assert_non_null(strstr(j, "\"c0\":0,\"c1\":1,\"c2\":0,"));
    assert_non_null(strstr(j, "\"c63\":0}"));
    free(j);
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
    jd_buf_release(&b);
    /* Empty: no definitions. */
    assert_int_equal(parse("computed:\n", &d, &err), JD_OK);
    assert_null(d);
    assert_int_equal(parse("other: 1\n", &d, &err), JD_OK);
    assert_null(d);
}

/* The config file wiring: `computed:` lands in jd_config, errors name the file. */
static void test_config_file(void **state)
{
    (void)state;
    char path[] = "/tmp/jd-computed-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "engine:\n  shards: 2\ncomputed:\n  logins_7d: { count: Logged In, window: 7d }\n"
                       "  spend_total: { sum: Order Completed, property: total }\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    jd_config c;
    jd_config_init(&c);
    jd_err err;
    assert_int_equal(jd_config_load_file(&c, path, &err), JD_OK);
    assert_int_equal(prof_computed_count(c.computed), 2);
    assert_int_equal(c.shards, 2);
    jd_config_release(&c);

    fd = open(path, O_WRONLY | O_TRUNC);
    text = "computed:\n  logins_7d: { count: Logged In, window: a week }\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    jd_config_init(&c);
    assert_int_equal(jd_config_load_file(&c, path, &err), JD_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "%s:2:42", path);
    assert_string_equal(err.where, want);
    assert_string_equal(err.msg, "computed.logins_7d.window: expected a duration like 7d, 24h or 30m, got 'a week'");
    assert_null(c.computed);
    jd_config_release(&c);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_time),
        cmocka_unit_test(test_non_numeric_ignored),
        cmocka_unit_test(test_out_of_order_all_time),
        cmocka_unit_test(test_window_7d),
        cmocka_unit_test(test_bucket_boundaries),
        cmocka_unit_test(test_window_out_of_order),
        cmocka_unit_test(test_unreadable_json),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_definitions_changed),
        cmocka_unit_test(test_snapshot_v2_decodes),
        cmocka_unit_test(test_snapshot_corrupt_computed),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_config_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
