/* tests/unit/profile/test_profile.c -- prof_apply, prof_update, prof_get_json,
 * prof_view and the snapshot codec. Events are built by hand: an ingest_event is a plain view.
 * Invariant numbers refer to src/profile/profile.c and snapshot.c. */
#include "journeyd/profile.h"
#include "journeyd/limits.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#define T0 INT64_C(1767225600000000)   /* 2026-01-01T00:00:00Z */
#define SEC INT64_C(1000000)

static jd_str S(const char *s) { return s ? (jd_str){ s, (uint32_t)strlen(s) } : (jd_str){ NULL, 0 }; }

static ingest_event ev_of(ingest_type t, const char *uid, const char *aid, int64_t ts, const char *json)
{
    ingest_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = t;
    ev.timestamp_us = ts;
    ev.received_us = ts;
    ev.user_id = S(uid);
    ev.anonymous_id = S(aid);
    ev.message_id = S("m");
    ev.json = S(json);
    return ev;
}

static void apply(prof_store *s, const ingest_event *ev)
{
    jd_err err;
    jd_err_clear(&err);
    int rc = prof_apply(s, ev, &err);
    if (rc != JD_OK) fprintf(stderr, "prof_apply: %s\n", err.msg);
    assert_int_equal(rc, JD_OK);
}

static void identify(prof_store *s, const char *uid, const char *aid, int64_t ts, const char *traits)
{
    char json[4096];
    snprintf(json, sizeof json, "{\"type\":\"identify\",\"traits\":%s}", traits);
    ingest_event ev = ev_of(INGEST_IDENTIFY, uid, aid, ts, json);
    apply(s, &ev);
}

static void track(prof_store *s, const char *uid, const char *aid, int64_t ts, const char *name)
{
    ingest_event ev = ev_of(INGEST_TRACK, uid, aid, ts, "{}");
    ev.event = S(name);
    apply(s, &ev);
}

static void group(prof_store *s, const char *uid, const char *gid, int64_t ts, const char *traits)
{
    char json[4096];
    snprintf(json, sizeof json, "{\"type\":\"group\",\"traits\":%s}", traits);
    ingest_event ev = ev_of(INGEST_GROUP, uid, NULL, ts, json);
    ev.group_id = S(gid);
    apply(s, &ev);
}

/* The profile's JSON (owned), or NULL if not found. */
static char *get(const prof_store *s, const char *id)
{
    jd_buf b;
    jd_buf_init(&b, 1 << 20);
    int rc = prof_get_json(s, id, strlen(id), &b);
    if (rc != JD_OK) {
        assert_int_equal(rc, JD_ENOTFOUND);
        jd_buf_release(&b);
        return NULL;
    }
    return jd_buf_detach(&b, NULL);
}

/* Asserts that the JSON of id contains `part`. */
static void expect_has(const prof_store *s, const char *id, const char *part)
{
    char *j = get(s, id);
    assert_non_null(j);
    if (!strstr(j, part)) fprintf(stderr, "want %s\n  in %s\n", part, j);
    assert_non_null(strstr(j, part));
    free(j);
}

static prof_store *store_default(void)
{
    prof_limits l;
    prof_limits_default(&l);
    return prof_store_create(&l);
}

static void test_identify_exact_json(void **state)
{
    (void)state;
    prof_store *s = store_default();
    identify(s, "u1", "a1", T0, "{\"email\":\"a@b.c\",\"plan\":\"pro\"}");
    track(s, "u1", "a1", T0 + 1 * SEC, "Signed Up");
    track(s, "u1", "a1", T0 + 2 * SEC, "Signed Up");
    track(s, "u1", NULL, T0 + 3 * SEC, "Viewed");
    ingest_event pg = ev_of(INGEST_PAGE, "u1", NULL, T0 + 4 * SEC, "{}");
    apply(s, &pg);
    char *j = get(s, "u1");
    assert_string_equal(j,
        "{\"key\":\"u1\",\"userId\":\"u1\",\"anonymousIds\":[\"a1\"],"
        "\"traits\":{\"email\":\"a@b.c\",\"plan\":\"pro\"},"
        "\"traitTimes\":{\"email\":\"2026-01-01T00:00:00.000Z\",\"plan\":\"2026-01-01T00:00:00.000Z\"},"
        "\"tags\":[],\"consent\":{},\"groups\":{},"
        "\"counts\":{\"total\":5,\"track\":3,\"identify\":1,\"page\":1,\"screen\":0,\"group\":0,\"alias\":0},"
        "\"events\":{\"Signed Up\":2,\"Viewed\":1},"
        "\"computed\":{},\"firstSeen\":\"2026-01-01T00:00:00.000Z\",\"lastSeen\":\"2026-01-01T00:00:04.000Z\","
        "\"limited\":0}");
    free(j);
    assert_int_equal(prof_store_count(s), 1);
    prof_store_destroy(s);
}

static void test_anonymous_profile_json(void **state)
{
    (void)state;
    prof_store *s = store_default();
    track(s, NULL, "anon-1", T0, "Opened");
    char *j = get(s, "anon-1");
    assert_string_equal(j,
        "{\"key\":\"anon-1\",\"userId\":null,\"anonymousIds\":[\"anon-1\"],\"traits\":{},\"traitTimes\":{},"
        "\"tags\":[],\"consent\":{},\"groups\":{},\"counts\":{\"total\":1,\"track\":1,\"identify\":0,\"page\":0,\"screen\":0,"
        "\"group\":0,\"alias\":0},\"events\":{\"Opened\":1},\"computed\":{},\"firstSeen\":\"2026-01-01T00:00:00.000Z\","
        "\"lastSeen\":\"2026-01-01T00:00:00.000Z\",\"limited\":0}");
    free(j);
    prof_store_destroy(s);
}

static void test_later_wins_older_does_not_clobber(void **state)
{
    (void)state;
    prof_store *s = store_default();
    identify(s, "u1", NULL, T0 + 10 * SEC, "{\"plan\":\"pro\",\"n\":1}");
    /* Older: plan must stay; email is new so it is taken (nothing newer set it). */
    identify(s, "u1", NULL, T0, "{\"plan\":\"free\",\"email\":\"x@y.z\"}");
    expect_has(s, "u1", "\"traits\":{\"plan\":\"pro\",\"n\":1,\"email\":\"x@y.z\"}");
    expect_has(s, "u1", "\"traitTimes\":{\"plan\":\"2026-01-01T00:00:10.000Z\","
                        "\"n\":\"2026-01-01T00:00:10.000Z\",\"email\":\"2026-01-01T00:00:00.000Z\"}");
    /* Newer wins, equal time wins too (log order). */
    identify(s, "u1", NULL, T0 + 20 * SEC, "{\"plan\":\"enterprise\",\"nested\":{\"a\":[1,2.50,null]}}");
    identify(s, "u1", NULL, T0 + 10 * SEC, "{\"n\":2}");
    expect_has(s, "u1", "\"traits\":{\"plan\":\"enterprise\",\"n\":2,\"email\":\"x@y.z\","
                        "\"nested\":{\"a\":[1,2.50,null]}}");
    prof_store_destroy(s);
}

static void test_null_removes_trait(void **state)
{
    (void)state;
    prof_store *s = store_default();
    identify(s, "u1", NULL, T0, "{\"email\":\"a@b.c\",\"plan\":\"pro\"}");
    identify(s, "u1", NULL, T0 + 2 * SEC, "{\"email\":null}");
    expect_has(s, "u1", "\"traits\":{\"plan\":\"pro\"},\"traitTimes\":{\"plan\":\"2026-01-01T00:00:00.000Z\"}");
    /* An older event must not bring it back (the tombstone keeps its time). */
    identify(s, "u1", NULL, T0 + 1 * SEC, "{\"email\":\"old@b.c\"}");
    expect_has(s, "u1", "\"traits\":{\"plan\":\"pro\"}");
    /* An older null does not remove a newer value. */
    identify(s, "u1", NULL, T0 - SEC, "{\"plan\":null}");
    expect_has(s, "u1", "\"traits\":{\"plan\":\"pro\"}");
    identify(s, "u1", NULL, T0 + 3 * SEC, "{\"email\":\"new@b.c\"}");
    expect_has(s, "u1", "\"traits\":{\"email\":\"new@b.c\",\"plan\":\"pro\"}");
    prof_store_destroy(s);
}

static void test_counts_per_type_and_name(void **state)
{
    (void)state;
    prof_store *s = store_default();
    static const ingest_type types[] = { INGEST_TRACK, INGEST_IDENTIFY, INGEST_PAGE, INGEST_PAGE,
                                         INGEST_SCREEN, INGEST_GROUP, INGEST_ALIAS, INGEST_SCREEN,
                                         INGEST_SCREEN };
    for (size_t i = 0; i < JD_ARRAY_LEN(types); i++) {
        ingest_event ev = ev_of(types[i], "u1", NULL, T0, "{}");
        ev.event = S(types[i] == INGEST_TRACK ? "A" : "PageName");
        ev.group_id = S("g");
        ev.previous_id = S("p");
        apply(s, &ev);
    }
    track(s, "u1", NULL, T0, "B");
    track(s, "u1", NULL, T0, "A");
    track(s, "u1", NULL, T0, "A");
    expect_has(s, "u1", "\"counts\":{\"total\":12,\"track\":4,\"identify\":1,\"page\":2,\"screen\":3,"
                        "\"group\":1,\"alias\":1},\"events\":{\"A\":3,\"B\":1}");
    prof_store_destroy(s);
}

static void test_first_last_seen(void **state)
{
    (void)state;
    prof_store *s = store_default();
    track(s, "u1", NULL, T0 + 5 * SEC, "x");
    track(s, "u1", NULL, T0 + 2 * SEC, "x");
    track(s, "u1", NULL, T0 + 9 * SEC, "x");
    track(s, "u1", NULL, T0 + 7 * SEC, "x");
    expect_has(s, "u1", "\"computed\":{},\"firstSeen\":\"2026-01-01T00:00:02.000Z\",\"lastSeen\":\"2026-01-01T00:00:09.000Z\"");
    prof_store_destroy(s);
}

static void test_lookup_by_anonymous_id(void **state)
{
    (void)state;
    prof_store *s = store_default();
    track(s, "u1", "a1", T0, "x");
    track(s, "u1", "a2", T0, "x");
    track(s, "u2", "a2", T0, "x");   /* a2 stays with u1, its first owner */
    track(s, "u2", "a3", T0, "x");
    expect_has(s, "a1", "\"key\":\"u1\"");
    expect_has(s, "a2", "\"key\":\"u1\"");
    expect_has(s, "a3", "\"key\":\"u2\"");
    expect_has(s, "u2", "\"anonymousIds\":[\"a2\",\"a3\"]");
    expect_has(s, "u1", "\"anonymousIds\":[\"a1\",\"a2\"]");
    /* Repeats are not added twice. */
    track(s, "u1", "a1", T0, "x");
    expect_has(s, "u1", "\"anonymousIds\":[\"a1\",\"a2\"]");
    /* A key wins over an anonymousId. */
    track(s, NULL, "a1", T0, "y");
    expect_has(s, "a1", "\"key\":\"a1\",\"userId\":null");
    /* Growing u1's vec (a new event name) must keep the index valid (2). */
    for (int i = 0; i < 50; i++) {
        char name[16];
        snprintf(name, sizeof name, "e%d", i);
        track(s, "u1", NULL, T0, name);
    }
    expect_has(s, "a2", "\"key\":\"u1\"");
    assert_null(get(s, "nobody"));
    assert_null(get(s, "u"));
    prof_store_destroy(s);
}

static void test_unknown_id_not_found(void **state)
{
    (void)state;
    prof_store *s = store_default();
    jd_buf b;
    jd_buf_init(&b, 1024);
    assert_int_equal(prof_get_json(s, "x", 1, &b), JD_ENOTFOUND);
    track(s, "u1", NULL, T0, "x");
    assert_int_equal(prof_get_json(s, "x", 1, &b), JD_ENOTFOUND);
    assert_int_equal(b.len, 0);
    /* Ceiling: out unchanged on JD_ELIMIT. */
    jd_buf small;
    jd_buf_init(&small, 10);
    assert_int_equal(prof_get_json(s, "u1", 2, &small), JD_ELIMIT);
    assert_int_equal(small.len, 0);
    jd_buf_release(&small);
    jd_buf_release(&b);
    prof_store_destroy(s);
}

static void test_alias_adds_previous_id(void **state)
{
    (void)state;
    prof_store *s = store_default();
    ingest_event ev = ev_of(INGEST_ALIAS, "u1", NULL, T0, "{}");
    ev.previous_id = S("old-anon");
    apply(s, &ev);
    expect_has(s, "old-anon", "\"key\":\"u1\",\"userId\":\"u1\",\"anonymousIds\":[\"old-anon\"]");
    expect_has(s, "u1", "\"alias\":1");
    prof_store_destroy(s);
}

static void test_group_traits(void **state)
{
    (void)state;
    prof_store *s = store_default();
    group(s, "u1", "g1", T0, "{\"name\":\"Acme\",\"size\":10}");
    group(s, "u1", "g2", T0, "{\"name\":\"Beta\"}");
    group(s, "u1", "g1", T0 + SEC, "{\"size\":20,\"tier\":\"gold\"}");
    group(s, "u1", "g1", T0 - SEC, "{\"name\":\"Old\"}");
    group(s, "u1", "g3", T0, "{}");
    expect_has(s, "u1", "\"traits\":{},\"traitTimes\":{},\"tags\":[],\"consent\":{},\"groups\":{"
                        "\"g1\":{\"traits\":{\"name\":\"Acme\",\"size\":20,\"tier\":\"gold\"}},"
                        "\"g2\":{\"traits\":{\"name\":\"Beta\"}},\"g3\":{\"traits\":{}}}");
    expect_has(s, "u1", "\"group\":5");
    prof_store_destroy(s);
}

static void test_limits(void **state)
{
    (void)state;
    prof_limits l;
    prof_limits_default(&l);
    l.max_traits_bytes = 40;
    l.max_anonymous_ids = 2;
    l.max_event_names = 2;
    l.max_groups = 1;
    prof_store *s = prof_store_create(&l);
    identify(s, "u1", "a1", T0, "{\"plan\":\"pro\"}");                     /* {"plan":"pro"}: 14 */
    identify(s, "u1", NULL, T0 + SEC, "{\"plan\":\"free\",\"bio\":\"0123456789012345678901\"}");
    expect_has(s, "u1", "\"traits\":{\"plan\":\"pro\"},\"traitTimes\":{\"plan\":\"2026-01-01T00:00:00.000Z\"}");
    expect_has(s, "u1", "\"limited\":1");
    track(s, "u1", "a2", T0, "A");
    track(s, "u1", "a3", T0, "B");   /* a3: past 2 ids */
    expect_has(s, "u1", "\"anonymousIds\":[\"a1\",\"a2\"]");
    assert_null(get(s, "a3"));
    expect_has(s, "u1", "\"limited\":2");
    track(s, "u1", NULL, T0, "C");   /* past 2 names */
    track(s, "u1", NULL, T0, "A");
    expect_has(s, "u1", "\"counts\":{\"total\":6,\"track\":4,");
    expect_has(s, "u1", "\"events\":{\"A\":2,\"B\":1}");
    expect_has(s, "u1", "\"limited\":3");
    group(s, "u1", "g1", T0, "{\"n\":1}");
    group(s, "u1", "g2", T0, "{\"n\":2}");   /* past 1 group */
    group(s, "u1", "g1", T0, "{\"n\":\"012345678901234567890123456789012345\"}");   /* past 40 bytes */
    expect_has(s, "u1", "\"groups\":{\"g1\":{\"traits\":{\"n\":1}}}");
    expect_has(s, "u1", "\"limited\":5");
    /* An anonymous key counts as one of its ids. */
    track(s, NULL, "k1", T0, "A");
    ingest_event al = ev_of(INGEST_ALIAS, NULL, "k1", T0, "{}");
    al.previous_id = S("p1");
    apply(s, &al);
    al.previous_id = S("p2");
    apply(s, &al);
    expect_has(s, "k1", "\"anonymousIds\":[\"k1\",\"p1\"]");
    expect_has(s, "k1", "\"limited\":1");
    prof_store_destroy(s);
}

static void test_unreadable_json(void **state)
{
    (void)state;
    prof_store *s = store_default();
    identify(s, "u1", NULL, T0, "{\"a\":1}");
    char *before = get(s, "u1");
    jd_err err;
    ingest_event ev = ev_of(INGEST_IDENTIFY, "u1", NULL, T0 + SEC, "{\"traits\":{\"a\":");
    assert_int_equal(prof_apply(s, &ev, &err), JD_EINVAL);
    assert_non_null(strstr(err.msg, "unreadable event json"));
    ev = ev_of(INGEST_IDENTIFY, NULL, NULL, T0, "{}");
    assert_int_equal(prof_apply(s, &ev, &err), JD_EINVAL);
    char *after = get(s, "u1");
    assert_string_equal(before, after);
    free(before);
    free(after);
    prof_store_destroy(s);
}

/* ---- prof_update ------------------------------------------------------- */

static prof_op op_set(const char *k, const char *json) { return (prof_op){ PROF_OP_SET, k, json, strlen(json) }; }
static prof_op op_unset(const char *k) { return (prof_op){ PROF_OP_UNSET, k, NULL, 0 }; }
static prof_op op_tag(const char *t) { return (prof_op){ PROF_OP_TAG, t, NULL, 0 }; }
static prof_op op_untag(const char *t) { return (prof_op){ PROF_OP_UNTAG, t, NULL, 0 }; }

static int update(prof_store *s, const char *key, const prof_op *ops, size_t n, int64_t ts, jd_err *err)
{
    jd_err_clear(err);
    return prof_update(s, key, strlen(key), ops, n, ts, err);
}

static void update_ok(prof_store *s, const char *key, const prof_op *ops, size_t n, int64_t ts)
{
    jd_err err;
    int rc = update(s, key, ops, n, ts, &err);
    if (rc != JD_OK) fprintf(stderr, "prof_update: %s at %s\n", err.msg, err.where);
    assert_int_equal(rc, JD_OK);
}

static void test_update_traits_later_wins(void **state)
{
    (void)state;
    prof_store *s = store_default();
    identify(s, "u1", NULL, T0 + 10 * SEC, "{\"plan\":\"pro\"}");
    /* Older SET loses on a key set later; a new key is taken (with its time). */
    prof_op a[] = { op_set("plan", "\"free\""), op_set("score", "1.50") };
    update_ok(s, "u1", a, 2, T0);
    expect_has(s, "u1", "\"traits\":{\"plan\":\"pro\",\"score\":1.50},"
                        "\"traitTimes\":{\"plan\":\"2026-01-01T00:00:10.000Z\",\"score\":\"2026-01-01T00:00:00.000Z\"}");
    /* Newer SET wins, equal time wins (applied later); a later op on the same
     * key in one call wins over an earlier one. */
    prof_op b[] = { op_set("plan", "\"max\""), op_set("nested", "{\"a\":[1, true ,null]}"), op_set("plan", "\"team\"") };
    update_ok(s, "u1", b, 3, T0 + 10 * SEC);
    expect_has(s, "u1", "\"traits\":{\"plan\":\"team\",\"score\":1.50,\"nested\":{\"a\":[1,true,null]}},"
                        "\"traitTimes\":{\"plan\":\"2026-01-01T00:00:10.000Z\"");
    /* UNSET is identify with null: removes under the time rule and leaves a
     * tombstone an older SET cannot get past. */
    prof_op c[] = { op_unset("score") };
    update_ok(s, "u1", c, 1, T0 - SEC);   /* older than score's T0: ignored */
    expect_has(s, "u1", "\"score\":1.50");
    update_ok(s, "u1", c, 1, T0 + 20 * SEC);
    expect_has(s, "u1", "\"traits\":{\"plan\":\"team\",\"nested\":{\"a\":[1,true,null]}}");
    prof_op d[] = { op_set("score", "7") };
    update_ok(s, "u1", d, 1, T0 + 19 * SEC);
    expect_has(s, "u1", "\"traits\":{\"plan\":\"team\",\"nested\":{\"a\":[1,true,null]}}");
    update_ok(s, "u1", d, 1, T0 + 21 * SEC);
    expect_has(s, "u1", "\"traits\":{\"plan\":\"team\",\"score\":7,\"nested\"");
    /* A SET of null is an UNSET; identify and update share one rule set. */
    prof_op e[] = { op_set("plan", "null") };
    update_ok(s, "u1", e, 1, T0 + 30 * SEC);
    identify(s, "u1", NULL, T0 + 29 * SEC, "{\"plan\":\"late\"}");
    expect_has(s, "u1", "\"traits\":{\"score\":7,\"nested\"");
    /* Updates are not events: no counts, no firstSeen/lastSeen, no limited. */
    expect_has(s, "u1", "\"counts\":{\"total\":2,\"track\":0,\"identify\":2,");
    expect_has(s, "u1", "\"lastSeen\":\"2026-01-01T00:00:29.000Z\",\"limited\":0}");
    prof_store_destroy(s);
}

static void test_update_tags(void **state)
{
    (void)state;
    prof_store *s = store_default();
    track(s, NULL, "anon-1", T0, "Opened");
    size_t bytes0 = prof_store_bytes(s);
    prof_op a[] = { op_tag("vip"), op_tag("beta"), op_tag("vip") };
    update_ok(s, "anon-1", a, 3, T0 + SEC);
    char *j = get(s, "anon-1");
    assert_string_equal(j,
        "{\"key\":\"anon-1\",\"userId\":null,\"anonymousIds\":[\"anon-1\"],\"traits\":{},\"traitTimes\":{},"
        "\"tags\":[\"vip\",\"beta\"],\"consent\":{},\"groups\":{},\"counts\":{\"total\":1,\"track\":1,\"identify\":0,\"page\":0,"
        "\"screen\":0,\"group\":0,\"alias\":0},\"events\":{\"Opened\":1},\"computed\":{},\"firstSeen\":\"2026-01-01T00:00:00.000Z\","
        "\"lastSeen\":\"2026-01-01T00:00:00.000Z\",\"limited\":0}");
    free(j);
    /* Tags are counted in prof_store_bytes: a rich part and one blob. */
    assert_true(prof_store_bytes(s) > bytes0);
    prof_op b[] = { op_untag("vip"), op_untag("never"), op_tag("a\"b") };
    update_ok(s, "anon-1", b, 3, T0 + 2 * SEC);
    expect_has(s, "anon-1", "\"tags\":[\"beta\",\"a\\\"b\"]");
    prof_op c[] = { op_tag("vip"), op_untag("beta") };
    update_ok(s, "anon-1", c, 2, T0 + 3 * SEC);
    expect_has(s, "anon-1", "\"tags\":[\"a\\\"b\",\"vip\"]");
    /* Removing every tag frees the rich part: bytes back where they were. */
    prof_op d[] = { op_untag("vip"), op_untag("a\"b") };
    update_ok(s, "anon-1", d, 2, T0 + 4 * SEC);
    expect_has(s, "anon-1", "\"tags\":[]");
    assert_int_equal(prof_store_bytes(s), bytes0);
    /* A tag of exactly 255 bytes is fine; tag then untag in one call nets out. */
    char t255[256];
    memset(t255, 'x', 255);
    t255[255] = 0;
    prof_op e[] = { op_tag(t255), op_tag("tmp"), op_untag("tmp") };
    update_ok(s, "anon-1", e, 3, T0);
    char *j2 = get(s, "anon-1");
    assert_non_null(strstr(j2, t255));
    assert_null(strstr(j2, "tmp"));
    free(j2);
    /* No ops: nothing changes. */
    update_ok(s, "anon-1", NULL, 0, T0);
    prof_store_destroy(s);
}

static void test_update_all_or_nothing(void **state)
{
    (void)state;
    prof_limits l;
    prof_limits_default(&l);
    assert_int_equal(l.max_tags, JD_DEF_MAX_TAGS);
    l.max_traits_bytes = 40;
    l.max_tags = 2;
    prof_store *s = prof_store_create(&l);
    identify(s, "u1", NULL, T0, "{\"plan\":\"pro\"}");
    char *before = get(s, "u1");
    size_t bytes = prof_store_bytes(s);
    jd_err err;

    /* Past max_tags: the valid SET and the first tags are not applied either. */
    prof_op a[] = { op_set("x", "1"), op_tag("a"), op_tag("b"), op_tag("c") };
    assert_int_equal(update(s, "u1", a, 4, T0 + SEC, &err), JD_ELIMIT);
    assert_string_equal(err.where, "profiles.max_tags");
    assert_string_equal(err.msg, "profile would have 3 tags, more than 2");
    /* Past max_traits_bytes: the tag is not applied either. */
    prof_op b[] = { op_tag("a"), op_set("bio", "\"0123456789012345678901234567890\"") };
    assert_int_equal(update(s, "u1", b, 2, T0 + SEC, &err), JD_ELIMIT);
    assert_string_equal(err.where, "profiles.max_traits_bytes");
    /* A tag longer than 255 bytes, named by its op. */
    char t256[257];
    memset(t256, 'y', 256);
    t256[256] = 0;
    prof_op c[] = { op_tag("a"), op_tag(t256) };
    assert_int_equal(update(s, "u1", c, 2, T0 + SEC, &err), JD_ELIMIT);
    assert_string_equal(err.where, "ops[1]");
    assert_string_equal(err.msg, "tag is 256 bytes, longer than 255");
    /* Malformed ops: JD_EINVAL naming the op. */
    static const char *bad_json[] = { "{", "1 2", "", "'a'", "[1,]", "tru", "\"x", "01" };
    for (size_t i = 0; i < JD_ARRAY_LEN(bad_json); i++) {
        prof_op d[] = { op_tag("a"), op_set("y", "2"), op_set("z", bad_json[i]) };
        assert_int_equal(update(s, "u1", d, 3, T0 + SEC, &err), JD_EINVAL);
        assert_string_equal(err.where, "ops[2]");
        assert_non_null(strstr(err.msg, "value of trait \"z\" is not one JSON value"));
    }
    prof_op e[] = { { PROF_OP_SET, "k", NULL, 0 } };   /* SET without text */
    assert_int_equal(update(s, "u1", e, 1, T0 + SEC, &err), JD_EINVAL);
    assert_string_equal(err.where, "ops[0]");
    prof_op f[] = { op_tag("a"), op_tag("") };
    assert_int_equal(update(s, "u1", f, 2, T0 + SEC, &err), JD_EINVAL);
    assert_string_equal(err.where, "ops[1]");
    assert_string_equal(err.msg, "empty tag");
    prof_op g[] = { op_tag("a"), { (prof_op_kind)9, "k", NULL, 0 } };
    assert_int_equal(update(s, "u1", g, 2, T0 + SEC, &err), JD_EINVAL);
    assert_string_equal(err.msg, "unknown op kind 9");
    prof_op h[] = { { PROF_OP_TAG, NULL, NULL, 0 } };
    assert_int_equal(update(s, "u1", h, 1, T0 + SEC, &err), JD_EINVAL);

    /* Nothing above changed anything, not even "limited". */
    char *after = get(s, "u1");
    assert_string_equal(before, after);
    free(after);
    assert_int_equal(prof_store_bytes(s), bytes);

    /* The limit is on the result: 3 tags on the way, 2 at the end, is fine. */
    prof_op i[] = { op_tag("a"), op_tag("b"), op_untag("a"), op_tag("c"), op_set("x", "1") };
    update_ok(s, "u1", i, 5, T0 + SEC);
    expect_has(s, "u1", "\"traits\":{\"plan\":\"pro\",\"x\":1}");
    expect_has(s, "u1", "\"tags\":[\"b\",\"c\"]");
    /* At the limit: a duplicate TAG is not growth; a new one is refused. */
    prof_op k[] = { op_tag("b") };
    update_ok(s, "u1", k, 1, T0 + SEC);
    prof_op m[] = { op_tag("d") };
    assert_int_equal(update(s, "u1", m, 1, T0 + SEC, &err), JD_ELIMIT);
    free(before);
    prof_store_destroy(s);

    /* A lowered limit: a profile over it can still lose tags, not gain any. */
    l.max_tags = 3;
    s = prof_store_create(&l);
    track(s, "u1", NULL, T0, "x");
    prof_op n3[] = { op_tag("a"), op_tag("b"), op_tag("c") };
    update_ok(s, "u1", n3, 3, T0);
    size_t blob_n;
    jd_buf b3;
    jd_buf_init(&b3, SIZE_MAX);
    assert_int_equal(prof_store_encode(s, &b3), JD_OK);
    prof_store_destroy(s);
    l.max_tags = 1;
    s = prof_store_create(&l);
    blob_n = b3.len;
    assert_int_equal(prof_store_decode(s, b3.data, blob_n, &err), JD_OK);   /* not checked on decode */
    jd_buf_release(&b3);
    prof_op n4[] = { op_untag("a"), op_tag("z") };
    assert_int_equal(update(s, "u1", n4, 2, T0, &err), JD_ELIMIT);
    prof_op n5[] = { op_untag("a") };
    update_ok(s, "u1", n5, 1, T0);
    expect_has(s, "u1", "\"tags\":[\"b\",\"c\"]");
    prof_store_destroy(s);
}

static void test_update_not_found(void **state)
{
    (void)state;
    prof_store *s = store_default();
    jd_err err;
    prof_op a[] = { op_tag("vip") };
    assert_int_equal(update(s, "u1", a, 1, T0, &err), JD_ENOTFOUND);
    track(s, "u1", "a1", T0, "x");
    /* By key only: an anonymousId of u1, or a prefix of its key, is not a key. */
    assert_int_equal(update(s, "a1", a, 1, T0, &err), JD_ENOTFOUND);
    assert_int_equal(prof_update(s, "u1", 1, a, 1, T0, &err), JD_ENOTFOUND);
    assert_int_equal(prof_update(s, "u1", 0, a, 1, T0, &err), JD_ENOTFOUND);
    assert_null(get(s, "vip"));
    expect_has(s, "u1", "\"tags\":[]");
    update_ok(s, "u1", a, 1, T0);
    expect_has(s, "a1", "\"tags\":[\"vip\"]");
    prof_store_destroy(s);
}

/* ---- prof_view --------------------------------------------------------- */

static char *view_text(prof_store *s, const char *key)
{
    json_object *v = prof_view(s, key, strlen(key));
    if (!v) return NULL;
    char *t = jd_xstrdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(v);
    return t;
}

static void test_view(void **state)
{
    (void)state;
    prof_store *s = store_default();
    identify(s, "u1", "a1", T0, "{\"email\":\"a@b.c\",\"n\":1.50,\"big\":12345678901234567890,\"neg\":-3,"
                                "\"q\":\"\\\"\\n\",\"o\":{\"x\":[1,{\"y\":null}]},\"t\":true,\"gone\":1}");
    identify(s, "u1", NULL, T0 + SEC, "{\"gone\":null}");
    group(s, "u1", "g1", T0, "{\"name\":\"Acme\",\"size\":10}");
    group(s, "u1", "g2", T0, "{}");
    track(s, "u1", "a2", T0 + 5 * SEC, "Signed Up");
    track(s, "u1", NULL, T0 + 2 * SEC, "Signed Up");
    track(s, "u1", NULL, T0 + 3 * SEC, "Viewed");
    prof_op ops[] = { op_tag("vip"), op_tag("beta") };
    update_ok(s, "u1", ops, 2, T0);
    char *v = view_text(s, "u1");
    assert_string_equal(v,
        "{\"userId\":\"u1\",\"anonymousIds\":[\"a1\",\"a2\"],"
        "\"traits\":{\"email\":\"a@b.c\",\"n\":1.50,\"big\":12345678901234567890,\"neg\":-3,"
        "\"q\":\"\\\"\\n\",\"o\":{\"x\":[1,{\"y\":null}]},\"t\":true},"
        "\"tags\":[\"vip\",\"beta\"],\"consent\":{},"
        "\"groups\":{\"g1\":{\"name\":\"Acme\",\"size\":10},\"g2\":{}},"
        "\"first_seen\":\"2026-01-01T00:00:00.000Z\",\"last_seen\":\"2026-01-01T00:00:05.000Z\","
        "\"events\":{\"Signed Up\":2,\"Viewed\":1},\"computed\":{}}");
    free(v);
    /* Values are typed, not text: what expressions compare. */
    json_object *o = prof_view(s, "u1", 2), *t, *x;
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "traits", &t));
    assert_true(json_object_object_get_ex(t, "n", &x) && json_object_is_type(x, json_type_double));
    assert_true(json_object_get_double(x) == 1.5);
    assert_true(json_object_object_get_ex(t, "neg", &x) && json_object_get_int64(x) == -3);
    assert_true(json_object_object_get_ex(t, "t", &x) && json_object_get_boolean(x));
    assert_true(json_object_object_get_ex(o, "events", &t));
    assert_true(json_object_object_get_ex(t, "Signed Up", &x) && json_object_get_int64(x) == 2);
    json_object_put(o);

    /* Anonymous key: no userId, the key leads anonymousIds; empty parts are empty. */
    track(s, NULL, "anon-1", T0, "Opened");
    v = view_text(s, "anon-1");
    assert_string_equal(v,
        "{\"anonymousIds\":[\"anon-1\"],\"traits\":{},\"tags\":[],\"consent\":{},\"groups\":{},"
        "\"first_seen\":\"2026-01-01T00:00:00.000Z\",\"last_seen\":\"2026-01-01T00:00:00.000Z\","
        "\"events\":{\"Opened\":1},\"computed\":{}}");
    free(v);
    /* By key only. */
    assert_null(prof_view(s, "a1", 2));
    assert_null(prof_view(s, "nobody", 6));
    prof_store_destroy(s);
}

/* ---- snapshot ---------------------------------------------------------- */

static prof_store *store_rich(void)
{
    prof_store *s = store_default();
    identify(s, "u1", "a1", T0, "{\"email\":\"a@b.c\",\"plan\":\"pro\",\"n\":1.50,\"q\":\"\\\"\\n\"}");
    identify(s, "u1", "a2", T0 + SEC, "{\"email\":null}");
    track(s, "u1", "a1", T0, "Signed Up");
    track(s, "u2", "a2", T0, "Signed Up");   /* a2 owned by u1, also seen by u2 (2) */
    track(s, NULL, "anon-only", T0 - SEC, "Opened");
    group(s, "u2", "g1", T0, "{\"name\":\"Acme\"}");
    group(s, "u2", "g2", T0, "{}");
    ingest_event al = ev_of(INGEST_ALIAS, "u3", NULL, T0, "{}");
    al.previous_id = S("prev");
    apply(s, &al);
    for (int i = 0; i < 300; i++) {
        char id[32];
        snprintf(id, sizeof id, "user-%04d", i);
        track(s, id, NULL, T0 + i, i % 3 ? "A" : "B");
    }
    prof_op t1[] = { op_tag("vip"), op_tag("beta"), op_tag("gone"), op_untag("gone") };
    update_ok(s, "u1", t1, 4, T0 + 2 * SEC);
    prof_op t2[] = { op_tag("solo") };   /* tags only: no traits, no groups */
    update_ok(s, "anon-only", t2, 1, T0);
    update_ok(s, "u2", t2, 1, T0);    /* tags next to groups */
    return s;
}

static char *encode(const prof_store *s, size_t *n)
{
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    assert_int_equal(prof_store_encode(s, &b), JD_OK);
    return jd_buf_detach(&b, n);
}

static const char *ids_all[] = { "u1", "u2", "u3", "a1", "a2", "anon-only", "prev", "user-0000", "user-0299" };
static const char *keys_all[] = { "u1", "u2", "u3", "anon-only", "user-0000", "user-0299" };

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    prof_store *s = store_rich();
    size_t n;
    char *blob = encode(s, &n);
    prof_store *d = store_default();
    jd_err err;
    assert_int_equal(prof_store_decode(d, blob, n, &err), JD_OK);
    assert_int_equal(prof_store_count(d), prof_store_count(s));
    assert_int_equal(prof_store_bytes(d), prof_store_bytes(s));
    for (size_t i = 0; i < JD_ARRAY_LEN(ids_all); i++) {
        char *a = get(s, ids_all[i]), *b = get(d, ids_all[i]);
        assert_non_null(a);
        assert_non_null(b);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    expect_has(d, "u1", "\"tags\":[\"vip\",\"beta\"],\"consent\":{},\"groups\"");
    expect_has(d, "anon-only", "\"traits\":{},\"traitTimes\":{},\"tags\":[\"solo\"],\"consent\":{},\"groups\":{}");
    expect_has(d, "u2", "\"tags\":[\"solo\"],\"consent\":{},\"groups\":{\"g1\"");
    for (size_t i = 0; i < JD_ARRAY_LEN(keys_all); i++) {
        char *a = view_text(s, keys_all[i]), *b = view_text(d, keys_all[i]);
        assert_non_null(a);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    /* Every profile, through a third generation: bytes must be identical. */
    size_t n2;
    char *blob2 = encode(d, &n2);
    assert_int_equal(n, n2);
    /* The decoded store keeps applying the same way (tags keep their order). */
    identify(d, "u1", NULL, T0 + 5 * SEC, "{\"plan\":\"max\"}");
    identify(s, "u1", NULL, T0 + 5 * SEC, "{\"plan\":\"max\"}");
    prof_op more[] = { op_untag("vip"), op_tag("new"), op_tag("beta") };
    update_ok(d, "u1", more, 3, T0 + 6 * SEC);
    update_ok(s, "u1", more, 3, T0 + 6 * SEC);
    expect_has(d, "u1", "\"tags\":[\"beta\",\"new\"]");
    char *a = get(s, "u1"), *b = get(d, "u1");
    assert_string_equal(a, b);
    free(a);
    free(b);
    /* decode into a non-empty store is refused. */
    assert_int_equal(prof_store_decode(d, blob, n, &err), JD_EINVAL);
    free(blob);
    free(blob2);
    prof_store_destroy(d);
    prof_store_destroy(s);
}

static bool count_hit(void *ctx, const char *key, size_t kn)
{
    (void)key;
    (void)kn;
    (*(int *)ctx)++;
    return true;
}

/* Traits are kept compactly (src/profile/tset.c): shared key ids, string
 * values without their quotes, set_us as deltas. None of it may show: the
 * JSON is the same text as it was given, times stay exact to the µs in any
 * order, keys past the shared table (too long, or too many) work the same,
 * and a snapshot or a merge blob carries keys as text between stores whose
 * tables differ. */
static void test_compact_traits(void **state)
{
    (void)state;
    prof_store *s = store_default();
    char longkey[80];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    char traits[1024];
    snprintf(traits, sizeof traits,
             "{\"q\":\"a\\\"b\\\\c\\n\\u0001/é\",\"e\":\"\",\"n\":-1.5e3,\"t\":true,\"o\":{\"x\":[1,\"y\"]},"
             "\"a\":[],\"\":\"empty key\",\"%s\":\"long\",\"gone\":null}", longkey);
    identify(s, "u1", NULL, T0 + 123457, traits);              /* µs */
    identify(s, "u1", NULL, T0 - 5 * SEC + 7000, "{\"early\":1,\"q\":\"old\"}");   /* ms, earlier */
    identify(s, "u1", NULL, T0 + 9 * SEC, "{\"t\":false}");    /* s */
    char *j = get(s, "u1");
    assert_non_null(j);
    char want[1024];
    snprintf(want, sizeof want,
             "\"traits\":{\"q\":\"a\\\"b\\\\c\\n\\u0001/é\",\"e\":\"\",\"n\":-1.5e3,\"t\":false,"
             "\"o\":{\"x\":[1,\"y\"]},\"a\":[],\"\":\"empty key\",\"%s\":\"long\",\"early\":1},"
             "\"traitTimes\":{\"q\":\"2026-01-01T00:00:00.123Z\",\"e\":\"2026-01-01T00:00:00.123Z\","
             "\"n\":\"2026-01-01T00:00:00.123Z\",\"t\":\"2026-01-01T00:00:09.000Z\","
             "\"o\":\"2026-01-01T00:00:00.123Z\",\"a\":\"2026-01-01T00:00:00.123Z\","
             "\"\":\"2026-01-01T00:00:00.123Z\",\"%s\":\"2026-01-01T00:00:00.123Z\","
             "\"early\":\"2025-12-31T23:59:55.007Z\"}", longkey, longkey);
    if (!strstr(j, want)) fprintf(stderr, "want %s\n  in %s\n", want, j);
    assert_non_null(strstr(j, want));
    free(j);
    /* set_us is exact to the µs: 1 µs older loses, the same time wins (5) */
    identify(s, "u1", NULL, T0 + 123456, "{\"e\":\"older\"}");
    expect_has(s, "u1", "\"e\":\"\",");
    identify(s, "u1", NULL, T0 + 123457, "{\"n\":2}");
    expect_has(s, "u1", "\"n\":2,");
    /* the search compares a string's text without its quotes */
    int hits = 0;
    prof_store_find_trait(s, "e", "", count_hit, &hits);
    prof_store_find_trait(s, "early", "1", count_hit, &hits);
    prof_store_find_trait(s, "q", "old", count_hit, &hits);   /* older: not taken */
    assert_int_equal(hits, 2);

    /* More names than the shared table holds: the rest stay in each profile. */
    for (int i = 0; i < JD_MAX_SHARED_KEYS / 40 + 2; i++) {
        char uid[16], t[2048];
        size_t w = (size_t)snprintf(t, sizeof t, "{");
        for (int k = 0; k < 50; k++)
            w += (size_t)snprintf(t + w, sizeof t - w, "%s\"k%d_%d\":%d", k ? "," : "", i, k, k);
        snprintf(t + w, sizeof t - w, "}");
        snprintf(uid, sizeof uid, "m%d", i);
        identify(s, uid, NULL, T0, t);
    }
    expect_has(s, "m0", "\"traits\":{\"k0_0\":0,\"k0_1\":1,");
    expect_has(s, "m103", "\"k103_48\":48,\"k103_49\":49}");

    /* A snapshot into a store whose table already holds other names, in
     * another order, gives the same JSON. */
    prof_store *d = store_default();
    identify(d, "other", NULL, T0, "{\"zz\":1,\"early\":2,\"t\":3}");
    size_t n;
    char *blob = encode(s, &n);
    prof_store *e = store_default();
    jd_err err;
    assert_int_equal(prof_store_decode(e, blob, n, &err), JD_OK);
    const char *ids[] = { "u1", "m0", "m103" };
    for (size_t i = 0; i < JD_ARRAY_LEN(ids); i++) {
        char *a = get(s, ids[i]), *b = get(e, ids[i]);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    /* a merge blob, into d (whose ids differ): later wins per key as ever */
    char *a = get(s, "u1");
    jd_buf x;
    jd_buf_init(&x, SIZE_MAX);
    assert_int_equal(prof_extract(s, "u1", 2, &x), JD_OK);
    identify(d, "u9", NULL, T0 + 10 * SEC, "{\"t\":\"newer\",\"zz\":0}");
    assert_int_equal(prof_merge_in(d, "u9", 2, true, "u1", 2, true, x.data, x.len, &err), JD_OK);
    expect_has(d, "u9", "\"traits\":{\"t\":\"newer\",\"zz\":0,\"q\":\"a\\\"b\\\\c\\n\\u0001/é\",\"e\":\"\",");
    free(a);
    jd_buf_release(&x);
    free(blob);
    prof_store_destroy(e);
    prof_store_destroy(d);
    prof_store_destroy(s);
}

static void test_snapshot_empty(void **state)
{
    (void)state;
    prof_store *s = store_default();
    size_t n;
    char *blob = encode(s, &n);
    assert_int_equal(n, 17);   /* version, profile count, suppression count */
    prof_store *d = store_default();
    assert_int_equal(prof_store_decode(d, blob, n, NULL), JD_OK);
    assert_int_equal(prof_store_count(d), 0);
    free(blob);
    prof_store_destroy(d);
    prof_store_destroy(s);
}

static void test_snapshot_truncated(void **state)
{
    (void)state;
    prof_store *s = store_rich();
    size_t n;
    char *blob = encode(s, &n);
    prof_store *d = store_default();
    for (size_t cut = 0; cut < n; cut++) {
        /* A copy of exactly `cut` bytes, so ASan sees any read past it. */
        char *part = jd_xmalloc(cut ? cut : 1);
        memcpy(part, blob, cut);
        jd_err err;
        jd_err_clear(&err);
        int rc = prof_store_decode(d, part, cut, &err);
        assert_int_equal(rc, JD_ECORRUPT);
        assert_non_null(strstr(err.msg, "profile snapshot: "));
        assert_non_null(strstr(err.msg, " at byte "));
        assert_int_equal(strncmp(err.where, "byte ", 5), 0);
        assert_int_equal(prof_store_count(d), 0);
        free(part);
    }
    free(blob);
    prof_store_destroy(d);
    prof_store_destroy(s);
}

static void test_snapshot_flipped(void **state)
{
    (void)state;
    prof_store *s = store_default();
    identify(s, "u1", "a1", T0, "{\"k\":\"v\"}");
    group(s, "u1", "g", T0, "{\"x\":1}");
    track(s, "u1", NULL, T0, "E");
    prof_op tg[] = { op_tag("t1"), op_tag("t2") };
    update_ok(s, "u1", tg, 2, T0);
    size_t n;
    char *blob = encode(s, &n);
    prof_store *d = store_default();
    jd_err err;
    /* The key length (byte 9) made huge: named exactly. */
    char *bad = jd_xmalloc(n);
    memcpy(bad, blob, n);
    bad[12] = (char)0x7f;
    assert_int_equal(prof_store_decode(d, bad, n, &err), JD_ECORRUPT);
    assert_string_equal(err.msg, "profile snapshot: truncated key at byte 13");
    assert_string_equal(err.where, "byte 13");
    /* Every byte flipped in turn: never a crash or leak; a change to any
     * length field (they are all checked) must be caught. */
    int rejected = 0;
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, blob, n);
            bad[i] ^= (char)(1 << bit);
            int rc = prof_store_decode(d, bad, n, &err);
            assert_true(rc == JD_OK || rc == JD_ECORRUPT);
            if (rc == JD_ECORRUPT) { rejected++; assert_int_equal(prof_store_count(d), 0); }
            if (rc == JD_OK) {   /* a flip in a count, time or name: still well formed */
                assert_int_equal(prof_store_count(d), 1);
                prof_store_destroy(d);
                d = store_default();
            }
        }
    }
    assert_true(rejected > 0);
    /* Specific length fields: the first anonymousId length (after 9+4+2+1+16+28 = 60, +2 count, +1 flag). */
    size_t len_at = 9 + 4 + 2 + 1 + 16 + 28 + 2 + 1;
    for (uint32_t v = 0; v < 8; v++) {
        if (v == 2) continue;   /* the right length */
        memcpy(bad, blob, n);
        bad[len_at] = (char)v;
        assert_int_equal(prof_store_decode(d, bad, n, &err), JD_ECORRUPT);
    }
    /* The tags blob (2 x (12 + 2) bytes, before the 4-byte computed, consent
     * and identities lengths 0 and the 8-byte suppression count 0) with bad
     * entries. */
    assert_int_equal(memcmp(blob + n - 20, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20), 0);
    size_t tags_at = n - 20 - 28;
    assert_int_equal(memcmp(blob + tags_at - 4, "\x1c\0\0\0\x02\0\0\0", 8), 0);
    static const struct { size_t off; char v; const char *msg; } tag_bad[] = {
        { 0, 0, "bad tag length" },                 /* first tag: length 0 */
        { 1, 1, "bad tag length" },                 /* 258 > 255 */
        { 0, 17, "tag length past its set" },       /* 16 bytes are left after the header */
        { 13, 0, "bad tag" },                       /* "t\0" */
        { 27, '1', "duplicate tag" },               /* t2 -> t1 */
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(tag_bad); i++) {
        memcpy(bad, blob, n);
        bad[tags_at + tag_bad[i].off] = tag_bad[i].v;
        assert_int_equal(prof_store_decode(d, bad, n, &err), JD_ECORRUPT);
        if (!strstr(err.msg, tag_bad[i].msg)) fprintf(stderr, "case %zu: %s\n", i, err.msg);
        assert_non_null(strstr(err.msg, tag_bad[i].msg));
        assert_int_equal(prof_store_count(d), 0);
    }
    /* Wrong version, trailing bytes, duplicate key. */
    memcpy(bad, blob, n);
    bad[0] = 9;   /* the first version after PROF_CODEC_VERSION (8: the timeline) */
    assert_int_equal(prof_store_decode(d, bad, n, &err), JD_ECORRUPT);
    assert_string_equal(err.msg, "profile snapshot: unknown version at byte 0");
    char *longer = jd_xmalloc(n + 1);
    memcpy(longer, blob, n);
    longer[n] = 0;
    assert_int_equal(prof_store_decode(d, longer, n + 1, &err), JD_ECORRUPT);
    assert_non_null(strstr(err.msg, "trailing bytes"));
    free(longer);
    free(bad);
    free(blob);
    prof_store_destroy(d);
    prof_store_destroy(s);
}

/* Little-endian writers for hand-made snapshot blobs. */
static void le(jd_buf *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        jd_buf_add(b, &c, 1);
    }
}

/* A version 1 snapshot (before tags), written byte by byte as that format
 * was: one user profile with an anonymousId, an event name, one trait and one
 * group. It must decode, with no tags. */
static void test_snapshot_v1_decodes(void **state)
{
    (void)state;
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    le(&b, 1, 1);                                    /* version 1 */
    le(&b, 1, 8);                                    /* count */
    le(&b, 2, 4); jd_buf_add(&b, "u1", 2);           /* key */
    le(&b, 1, 1);                                    /* flags: userId */
    le(&b, (uint64_t)T0, 8);
    le(&b, (uint64_t)(T0 + 2 * SEC), 8);
    int counts[6] = { 2, 1, 0, 0, 1, 0 };
    for (int i = 0; i < 6; i++) le(&b, (uint64_t)counts[i], 4);
    le(&b, 0, 4);                                    /* limited */
    le(&b, 1, 2); le(&b, 1, 1); le(&b, 2, 4); jd_buf_add(&b, "a1", 2);   /* ids */
    le(&b, 1, 2); le(&b, 2, 4); le(&b, 6, 4); jd_buf_add(&b, "Signed", 6);   /* events */
    le(&b, 16 + 4 + 1 + 5, 4);                       /* traits: "plan" -> "pro" */
    le(&b, 4, 4); le(&b, 5, 4); le(&b, (uint64_t)T0, 8); jd_buf_add(&b, "plan\0\"pro\"", 10);
    le(&b, 8 + 1 + 0, 4);                            /* groups: g without traits */
    le(&b, 1, 4); le(&b, 0, 4); jd_buf_add(&b, "g", 1);
    size_t n = b.len;
    assert_int_equal(n, 9 + 51 + 9 + 16 + 30 + 13);   /* header, fixed part, ids, events, traits, groups */

    prof_store *d = store_default();
    jd_err err;
    jd_err_clear(&err);
    int rc = prof_store_decode(d, b.data, n, &err);
    if (rc != JD_OK) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, JD_OK);
    char *j = get(d, "a1");
    assert_string_equal(j,
        "{\"key\":\"u1\",\"userId\":\"u1\",\"anonymousIds\":[\"a1\"],\"traits\":{\"plan\":\"pro\"},"
        "\"traitTimes\":{\"plan\":\"2026-01-01T00:00:00.000Z\"},\"tags\":[],\"consent\":{},\"groups\":{\"g\":{\"traits\":{}}},"
        "\"counts\":{\"total\":4,\"track\":2,\"identify\":1,\"page\":0,\"screen\":0,\"group\":1,\"alias\":0},"
        "\"events\":{\"Signed\":2},\"computed\":{},\"firstSeen\":\"2026-01-01T00:00:00.000Z\","
        "\"lastSeen\":\"2026-01-01T00:00:02.000Z\",\"limited\":0}");
    free(j);
    /* Re-encoded, it is version 7: the same plus zero tags, computed,
     * consent and identities lengths, and a zero suppression count. */
    size_t n2;
    char *v2 = encode(d, &n2);
    assert_int_equal(n2, n + 24);
    assert_int_equal(v2[0], 7);
    assert_int_equal(memcmp(v2 + 1, b.data + 1, n - 1), 0);
    assert_int_equal(memcmp(v2 + n, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 24), 0);
    /* The same bytes read as version 2 lack the tags length. */
    prof_store *e = store_default();
    b.data[0] = 2;
    assert_int_equal(prof_store_decode(e, b.data, n, &err), JD_ECORRUPT);
    assert_string_equal(err.msg, "profile snapshot: truncated tags length at byte 128");
    /* And a decoded v1 profile takes tags like any other. */
    prof_op t[] = { op_tag("vip") };
    update_ok(d, "u1", t, 1, T0);
    expect_has(d, "u1", "\"tags\":[\"vip\"]");
    free(v2);
    jd_buf_release(&b);
    prof_store_destroy(e);
    prof_store_destroy(d);
}

static void test_snapshot_bad_trait_value(void **state)
{
    (void)state;
    prof_store *s = store_default();
    identify(s, "u1", NULL, T0, "{\"k\":\"vv\"}");
    size_t n;
    char *blob = encode(s, &n);
    char *q = memmem(blob, n, "\"vv\"", 4);
    assert_non_null(q);
    q[3] = 'x';   /* "vvx: no closing quote */
    prof_store *d = store_default();
    jd_err err;
    assert_int_equal(prof_store_decode(d, blob, n, &err), JD_ECORRUPT);
    assert_non_null(strstr(err.msg, "bad trait value"));
    q[3] = '"';
    assert_int_equal(prof_store_decode(d, blob, n, &err), JD_OK);
    prof_store_destroy(d);
    d = store_default();
    /* The key's NUL terminator (just before the value) overwritten. */
    q[-1] = 'x';
    assert_int_equal(prof_store_decode(d, blob, n, &err), JD_ECORRUPT);
    assert_non_null(strstr(err.msg, "bad trait key"));
    free(blob);
    prof_store_destroy(d);
    prof_store_destroy(s);
}

/* ---- memory ------------------------------------------------------------ */

static void test_bytes_per_minimal_profile(void **state)
{
    (void)state;
    prof_store *s = store_default();
    size_t empty = prof_store_bytes(s);
    enum { N = 100000 };
    char id[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "user-%015d", i);   /* 20 bytes */
        track(s, id, NULL, T0 + i, "Signed Up");
        if (i % 2) track(s, id, NULL, T0 + i, "Signed Up");
    }
    double per = (double)(prof_store_bytes(s) - empty) / N;
    printf("# prof_store_bytes: %.1f bytes per minimal profile (%d profiles)\n", per, N);
    assert_true(per < 200);
    assert_true(per > 100);   /* honest: a 20-byte key and a map slot are in it */
    prof_store_destroy(s);
}

/* Deletion: the profile goes, its ids are suppressed (no event recreates the
 * person) until an identify brings them back; suppressions survive a
 * snapshot; the heap estimate returns to what it was. */
static void test_delete_and_suppress(void **state)
{
    (void)state;
    prof_store *s = prof_store_create(NULL);
    size_t empty = prof_store_bytes(s);
    identify(s, "u1", "a1", 1000, "{\"email\":\"u1@example.com\"}");
    track(s, "u1", "a2", 2000, "Viewed");
    identify(s, "u2", NULL, 3000, "{}");
    char key[64];
    assert_int_equal(prof_delete(s, "a2", 2, 5000, key, sizeof key), JD_OK);   /* by an anonymousId */
    assert_string_equal(key, "u1");
    assert_int_equal(prof_delete(s, "u1", 2, 5000, key, sizeof key), JD_ENOTFOUND);
    assert_int_equal(prof_store_count(s), 1);
    assert_int_equal(prof_suppressed_count(s), 3);   /* u1, a1, a2 */
    jd_buf b;
    jd_buf_init(&b, 1 << 20);
    assert_int_equal(prof_get_json(s, "a1", 2, &b), JD_ENOTFOUND);
    /* late events: by the key, by an old anonymousId, a page: all suppressed */
    ingest_event e1 = ev_of(INGEST_TRACK, "u1", NULL, 6000, "{}"), e2 = ev_of(INGEST_TRACK, NULL, "a1", 6000, "{}");
    ingest_event e3 = ev_of(INGEST_PAGE, "u9", "a2", 6000, "{}");
    assert_true(prof_suppresses(s, &e1));
    assert_true(prof_suppresses(s, &e2));
    assert_true(prof_suppresses(s, &e3));
    ingest_event other = ev_of(INGEST_TRACK, "u2", NULL, 6000, "{}");
    assert_false(prof_suppresses(s, &other));
    /* the snapshot keeps the suppressions */
    jd_buf snap;
    jd_buf_init(&snap, 1 << 20);
    assert_int_equal(prof_store_encode(s, &snap), JD_OK);
    prof_store *d = prof_store_create(NULL);
    jd_err err;
    assert_int_equal(prof_store_decode(d, snap.data, snap.len, &err), JD_OK);
    assert_int_equal(prof_suppressed_count(d), 3);
    assert_true(prof_suppresses(d, &e2));
    /* an identify with the key brings the person back, as a new profile */
    ingest_event back = ev_of(INGEST_IDENTIFY, "u1", "a1", 7000, "{\"type\":\"identify\",\"traits\":{}}");
    assert_false(prof_suppresses(d, &back));
    apply(d, &back);
    assert_int_equal(prof_suppressed_count(d), 1);   /* a2 stays suppressed */
    jd_buf_reset(&b);
    assert_int_equal(prof_get_json(d, "u1", 2, &b), JD_OK);
    assert_null(strstr(b.data, "u1@example.com"));   /* nothing of the deleted profile */
    /* and the heap estimate of a store that deleted everything is the empty one's */
    assert_int_equal(prof_delete(s, "u2", 2, 8000, key, sizeof key), JD_OK);
    assert_int_equal(prof_store_bytes(s), empty);
    jd_buf_release(&b);
    jd_buf_release(&snap);
    prof_store_destroy(d);
    prof_store_destroy(s);
}

/* Consent through identify traits.consent: per channel/topic, with its
 * source and time, later wins, null removes, not a trait; in the view as
 * booleans; kept by snapshots. */
static void test_consent(void **state)
{
    (void)state;
    prof_store *s = prof_store_create(NULL);
    char json[512];
    snprintf(json, sizeof json, "{\"type\":\"identify\",\"traits\":{\"plan\":\"pro\",\"consent\":"
             "{\"email/marketing\":true,\"sms\":false,\"push\":\"yes\"}},"
             "\"context\":{\"consent\":{\"source\":\"preference-center\"}}}");
    ingest_event e1 = ev_of(INGEST_IDENTIFY, "u1", NULL, 2000, json);
    apply(s, &e1);
    /* an older change loses; a newer null removes */
    ingest_event e2 = ev_of(INGEST_IDENTIFY, "u1", NULL, 1000,
                            "{\"type\":\"identify\",\"traits\":{\"consent\":{\"email/marketing\":false}}}");
    apply(s, &e2);
    ingest_event e3 = ev_of(INGEST_IDENTIFY, "u1", NULL, 3000,
                            "{\"type\":\"identify\",\"traits\":{\"consent\":{\"sms\":null}}}");
    apply(s, &e3);
    expect_has(s, "u1", "\"traits\":{\"plan\":\"pro\"}");   /* consent is not a trait */
    expect_has(s, "u1", "\"consent\":{\"email/marketing\":{\"granted\":true,\"source\":\"preference-center\","
                        "\"at\":\"1970-01-01T00:00:00.002Z\"}}");
    json_object *v = prof_view(s, "u1", 2), *c, *g;
    assert_true(json_object_object_get_ex(v, "consent", &c));
    assert_true(json_object_object_get_ex(c, "email/marketing", &g));
    assert_true(json_object_get_boolean(g));
    assert_false(json_object_object_get_ex(c, "sms", &g));    /* removed */
    assert_false(json_object_object_get_ex(c, "push", &g));   /* not a boolean: ignored */
    json_object_put(v);
    jd_buf snap;
    jd_buf_init(&snap, 1 << 20);
    assert_int_equal(prof_store_encode(s, &snap), JD_OK);
    prof_store *d = prof_store_create(NULL);
    jd_err err;
    assert_int_equal(prof_store_decode(d, snap.data, snap.len, &err), JD_OK);
    expect_has(d, "u1", "\"consent\":{\"email/marketing\":{\"granted\":true,\"source\":\"preference-center\"");
    jd_buf_release(&snap);
    prof_store_destroy(d);
    prof_store_destroy(s);
}

static bool collect_key(void *ctx, const char *key, size_t kn)
{
    jd_buf *b = ctx;
    jd_buf_add(b, key, kn);
    jd_buf_add(b, ";", 1);
    return true;
}

/* Search by trait value: strings by their text, numbers and booleans as
 * written; a string "30" is not the number 30's match and vice versa. */
static void test_find_trait(void **state)
{
    (void)state;
    prof_store *s = prof_store_create(NULL);
    identify(s, "u1", NULL, 1000, "{\"email\":\"ana@example.com\",\"age\":30,\"code\":\"30\"}");
    identify(s, "u2", NULL, 1000, "{\"email\":\"bob@example.com\",\"age\":31,\"vip\":true}");
    jd_buf b;
    jd_buf_init(&b, 1 << 16);
    prof_store_find_trait(s, "email", "bob@example.com", collect_key, &b);
    assert_string_equal(b.data, "u2;");
    jd_buf_reset(&b);
    prof_store_find_trait(s, "age", "30", collect_key, &b);
    assert_string_equal(b.data, "u1;");
    jd_buf_reset(&b);
    prof_store_find_trait(s, "code", "30", collect_key, &b);   /* the string "30" */
    assert_string_equal(b.data, "u1;");
    jd_buf_reset(&b);
    prof_store_find_trait(s, "vip", "true", collect_key, &b);
    assert_string_equal(b.data, "u2;");
    jd_buf_reset(&b);
    prof_store_find_trait(s, "email", "nobody@example.com", collect_key, &b);
    assert_int_equal(b.len, 0);
    jd_buf_release(&b);
    prof_store_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identify_exact_json),
        cmocka_unit_test(test_anonymous_profile_json),
        cmocka_unit_test(test_later_wins_older_does_not_clobber),
        cmocka_unit_test(test_null_removes_trait),
        cmocka_unit_test(test_counts_per_type_and_name),
        cmocka_unit_test(test_first_last_seen),
        cmocka_unit_test(test_lookup_by_anonymous_id),
        cmocka_unit_test(test_unknown_id_not_found),
        cmocka_unit_test(test_alias_adds_previous_id),
        cmocka_unit_test(test_group_traits),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_unreadable_json),
        cmocka_unit_test(test_update_traits_later_wins),
        cmocka_unit_test(test_update_tags),
        cmocka_unit_test(test_update_all_or_nothing),
        cmocka_unit_test(test_update_not_found),
        cmocka_unit_test(test_view),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_compact_traits),
        cmocka_unit_test(test_delete_and_suppress),
        cmocka_unit_test(test_consent),
        cmocka_unit_test(test_find_trait),
        cmocka_unit_test(test_snapshot_empty),
        cmocka_unit_test(test_snapshot_truncated),
        cmocka_unit_test(test_snapshot_flipped),
        cmocka_unit_test(test_snapshot_v1_decodes),
        cmocka_unit_test(test_snapshot_bad_trait_value),
        cmocka_unit_test(test_bytes_per_minimal_profile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
