/* tests/unit/profile/test_merge.c -- identity merges: prof_extract,
 * prof_merge_in (every merge rule, on explicit times), identifiers, refusal
 * notes, their JSON, and their snapshot (version 7; version 6 still decodes).
 * Invariant numbers refer to src/profile/merge.c and profile.c. */
#include "journeyd/config.h"
#include "journeyd/limits.h"
#include "journeyd/profile.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#define T0 INT64_C(1767225600000000)   /* 2026-01-01T00:00:00Z, a UTC midnight */
#define SEC INT64_C(1000000)
#define DAY (86400 * SEC)

static jd_str S(const char *s) { return s ? (jd_str){ s, (uint32_t)strlen(s) } : (jd_str){ NULL, 0 }; }

static ingest_event ev_of(ingest_type t, const char *uid, const char *aid, int64_t ts, const char *json)
{
    ingest_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = t;
    ev.timestamp_us = ev.received_us = ts;
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
    if (rc != JD_OK) fail_msg("prof_apply: %s", err.msg);
}

static void identify(prof_store *s, const char *uid, const char *aid, int64_t ts, const char *traits)
{
    char json[4096];
    snprintf(json, sizeof json, "{\"type\":\"identify\",\"traits\":%s}", traits);
    ingest_event ev = ev_of(INGEST_IDENTIFY, uid, aid, ts, json);
    apply(s, &ev);
}

static void track(prof_store *s, const char *uid, const char *aid, int64_t ts, const char *name, const char *props)
{
    char json[4096];
    snprintf(json, sizeof json, "{\"type\":\"track\",\"properties\":%s}", props ? props : "{}");
    ingest_event ev = ev_of(INGEST_TRACK, uid, aid, ts, json);
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

static void tag(prof_store *s, const char *key, const char *t, int64_t ts)
{
    prof_op op = { PROF_OP_TAG, t, NULL, 0 };
    jd_err err;
    assert_int_equal(prof_update(s, key, strlen(key), &op, 1, ts, &err), JD_OK);
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

static void expect_has(const prof_store *s, const char *id, const char *part)
{
    char *j = get(s, id);
    if (!j) fail_msg("%s: not found", id);
    if (!strstr(j, part)) fail_msg("want %s\n  in %s", part, j);
    free(j);
}

static void expect_lacks(const prof_store *s, const char *id, const char *part)
{
    char *j = get(s, id);
    assert_non_null(j);
    if (strstr(j, part)) fail_msg("did not want %s\n  in %s", part, j);
    free(j);
}

static prof_store *store_lim(const prof_limits *l)
{
    if (l) return prof_store_create(l);
    prof_limits d;
    prof_limits_default(&d);
    return prof_store_create(&d);
}

/* Extracts key from `from_store` into a blob (owned, *n its length). */
static char *extract(prof_store *s, const char *key, size_t *n)
{
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    assert_int_equal(prof_extract(s, key, strlen(key), &b), JD_OK);
    return jd_buf_detach(&b, n);
}

static void merge_ok(prof_store *s, const char *key, bool key_user, const char *from, bool from_user, const char *blob,
                     size_t n)
{
    jd_err err;
    jd_err_clear(&err);
    int rc = prof_merge_in(s, key, strlen(key), key_user, from, strlen(from), from_user, blob, n, &err);
    if (rc != JD_OK) fail_msg("prof_merge_in: %d %s: %s", rc, err.where, err.msg);
}

/* Moves profile `loser` of ls into `survivor` of ss (a userId key). */
static void move(prof_store *ls, const char *loser, bool loser_user, prof_store *ss, const char *survivor)
{
    size_t n;
    char *blob = extract(ls, loser, &n);
    merge_ok(ss, survivor, true, loser, loser_user, blob, n);
    free(blob);
}

/* Invariant (6): the running heap estimate equals what a fresh decode of the
 * store's snapshot computes from scratch. */
static void expect_heap_exact(const prof_store *s, const prof_limits *l)
{
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    assert_int_equal(prof_store_encode(s, &b), JD_OK);
    prof_store *d = store_lim(l);
    jd_err err;
    assert_int_equal(prof_store_decode(d, b.data, b.len, &err), JD_OK);
    assert_int_equal(prof_store_bytes(d), prof_store_bytes(s));
    prof_store_destroy(d);
    jd_buf_release(&b);
}

/* ---- extract ------------------------------------------------------------- */

static void test_extract_removes_and_returns(void **state)
{
    (void)state;
    prof_store *s = store_lim(NULL);
    size_t empty = prof_store_bytes(s);
    identify(s, "u1", "a1", T0, "{\"plan\":\"pro\"}");
    track(s, "u2", NULL, T0, "E", NULL);
    jd_buf out;
    jd_buf_init(&out, SIZE_MAX);
    jd_buf_add(&out, "xy", 2);   /* appended to */
    assert_int_equal(prof_extract(s, "a1", 2, &out), JD_ENOTFOUND);   /* an anonymousId is not a key */
    assert_int_equal(out.len, 2);
    assert_int_equal(prof_extract(s, "u1", 2, &out), JD_OK);
    assert_true(out.len > 2 + 60);
    assert_int_equal((uint8_t)out.data[2], 7);   /* the format version */
    assert_int_equal(prof_store_count(s), 1);
    char *j = get(s, "u1");
    assert_null(j);
    j = get(s, "a1");   /* its anonymousId went with it */
    assert_null(j);
    assert_int_equal(prof_suppressed_count(s), 0);   /* not a deletion */
    size_t len = out.len;
    assert_int_equal(prof_extract(s, "u1", 2, &out), JD_ENOTFOUND);
    assert_int_equal(out.len, len);
    /* out's ceiling: JD_ELIMIT and the profile stays */
    jd_buf small;
    jd_buf_init(&small, 8);
    assert_int_equal(prof_extract(s, "u2", 2, &small), JD_ELIMIT);
    assert_int_equal(small.len, 0);
    assert_int_equal(prof_store_count(s), 1);
    assert_int_equal(prof_extract(s, "u2", 2, &out), JD_OK);
    assert_int_equal(prof_store_bytes(s), empty);   /* (6): every byte accounted for */
    jd_buf_release(&small);
    jd_buf_release(&out);
    prof_store_destroy(s);
}

/* The blob, merged into an empty store under the loser's own key, gives the
 * same profile back (the extract is lossless). */
static void test_merge_into_absent_creates(void **state)
{
    (void)state;
    prof_store *a = store_lim(NULL), *b = store_lim(NULL);
    identify(a, "u1", "a1", T0, "{\"plan\":\"pro\",\"n\":2}");
    track(a, "u1", "a2", T0 + SEC, "Signed Up", NULL);
    group(a, "u1", "g1", T0, "{\"name\":\"Acme\"}");
    tag(a, "u1", "vip", T0);
    char *before = get(a, "u1");
    size_t n;
    char *blob = extract(a, "u1", &n);
    merge_ok(b, "u9", true, "u1", true, blob, n);
    char *after = get(b, "u9");
    /* Everything but the key, plus the loser's key as a userId identifier. */
    const char *want_tail = strstr(before, ",\"anonymousIds\"");
    char want[4096];
    snprintf(want, sizeof want, "{\"key\":\"u9\",\"userId\":\"u9\",\"anonymousIds\":[\"a1\",\"a2\"],"
             "\"identifiers\":{\"userId\":[\"u1\"]}%s", strstr(want_tail, ",\"traits\""));
    assert_string_equal(after, want);
    char *by_anon = get(b, "a2");
    assert_string_equal(by_anon, after);   /* indexed (profile.c (2)) */
    expect_heap_exact(b, NULL);
    free(by_anon);
    free(after);
    free(before);
    free(blob);
    prof_store_destroy(a);
    prof_store_destroy(b);
}

/* n == 0: the other side had no profile. The survivor is created with only
 * `from`; its first event sets firstSeen and lastSeen. */
static void test_merge_without_blob(void **state)
{
    (void)state;
    prof_store *s = store_lim(NULL);
    merge_ok(s, "u1", true, "anon-9", false, NULL, 0);
    expect_has(s, "u1", "\"anonymousIds\":[\"anon-9\"]");
    char *j = get(s, "anon-9");
    assert_non_null(j);
    assert_non_null(strstr(j, "\"key\":\"u1\""));
    free(j);
    track(s, "u1", NULL, T0 + 5 * SEC, "E", NULL);
    expect_has(s, "u1", "\"firstSeen\":\"2026-01-01T00:00:05.000Z\",\"lastSeen\":\"2026-01-01T00:00:05.000Z\"");
    /* an anonymous survivor: its key leads, not repeated */
    merge_ok(s, "anon-1", false, "anon-1b", false, NULL, 0);
    expect_has(s, "anon-1", "\"userId\":null,\"anonymousIds\":[\"anon-1\",\"anon-1b\"]");
    expect_heap_exact(s, NULL);
    prof_store_destroy(s);
}

static void test_merge_bad_args(void **state)
{
    (void)state;
    prof_store *s = store_lim(NULL);
    identify(s, "u1", NULL, T0, "{}");
    identify(s, "u2", NULL, T0, "{}");
    size_t n;
    char *blob = extract(s, "u2", &n);
    jd_err err;
    assert_int_equal(prof_merge_in(s, "u1", 2, true, "u1", 2, true, NULL, 0, &err), JD_EINVAL);
    assert_string_equal(err.where, "from");
    assert_int_equal(prof_merge_in(s, "u1", 2, true, "u3", 2, true, blob, n, &err), JD_EINVAL);   /* blob is u2 */
    assert_string_equal(err.where, "from");
    assert_int_equal(prof_merge_in(s, "", 0, true, "u2", 2, true, blob, n, &err), JD_EINVAL);
    char longid[300];
    memset(longid, 'x', sizeof longid);
    assert_int_equal(prof_merge_in(s, "u1", 2, true, longid, sizeof longid, true, NULL, 0, &err), JD_EINVAL);
    expect_lacks(s, "u1", "identifiers");
    assert_int_equal(prof_store_count(s), 1);
    free(blob);
    prof_store_destroy(s);
}

/* ---- the merge rules ------------------------------------------------------ */

static void test_merge_counts_and_seen(void **state)
{
    (void)state;
    prof_limits l;
    prof_limits_default(&l);
    l.max_event_names = 2;
    prof_store *s = store_lim(&l), *o = store_lim(&l);
    track(s, "u1", NULL, T0 + 10 * SEC, "A", NULL);
    track(s, "u1", NULL, T0 + 20 * SEC, "B", NULL);
    ingest_event pg = ev_of(INGEST_PAGE, "u1", NULL, T0 + 15 * SEC, "{}");
    apply(s, &pg);
    track(o, "u2", NULL, T0 + 5 * SEC, "B", NULL);
    track(o, "u2", NULL, T0 + 30 * SEC, "B", NULL);
    track(o, "u2", NULL, T0 + 12 * SEC, "C", NULL);   /* a third name in s: dropped, limited */
    identify(o, "u2", NULL, T0 + 6 * SEC, "{}");
    move(o, "u2", true, s, "u1");
    expect_has(s, "u1", "\"counts\":{\"total\":7,\"track\":5,\"identify\":1,\"page\":1,\"screen\":0,\"group\":0,"
                        "\"alias\":0},\"events\":{\"A\":1,\"B\":3}");
    expect_has(s, "u1", "\"firstSeen\":\"2026-01-01T00:00:05.000Z\",\"lastSeen\":\"2026-01-01T00:00:30.000Z\","
                        "\"limited\":1");
    /* limited adds: the loser's own 1 (a name past its limit) + 1 more here */
    prof_store *p = store_lim(&l);
    track(p, "u3", NULL, T0, "X", NULL);
    track(p, "u3", NULL, T0, "Y", NULL);
    track(p, "u3", NULL, T0, "Z", NULL);   /* limited 1 in p */
    move(p, "u3", true, s, "u1");         /* X and Y are new past 2 names: 2 more */
    expect_has(s, "u1", "\"limited\":4");
    /* the survivor's times stay when the loser's are inside them */
    expect_has(s, "u1", "\"firstSeen\":\"2026-01-01T00:00:00.000Z\",\"lastSeen\":\"2026-01-01T00:00:30.000Z\"");
    expect_heap_exact(s, &l);
    prof_store_destroy(p);
    prof_store_destroy(o);
    prof_store_destroy(s);
}

static void test_merge_traits_later_wins(void **state)
{
    (void)state;
    prof_store *s = store_lim(NULL), *o = store_lim(NULL);
    identify(s, "u1", NULL, T0, "{\"email\":\"s@x\",\"x\":1}");
    identify(s, "u1", NULL, T0 + 10 * SEC, "{\"plan\":\"pro\"}");
    identify(s, "u1", NULL, T0 + 7 * SEC, "{\"t\":\"s\",\"gone\":null}");
    identify(o, "u2", NULL, T0 + 5 * SEC, "{\"plan\":\"free\"}");          /* older: s keeps pro */
    identify(o, "u2", NULL, T0 + 20 * SEC, "{\"email\":\"l@x\",\"x\":null}");   /* newer: l's email, x removed */
    identify(o, "u2", NULL, T0 + 7 * SEC, "{\"t\":\"l\",\"city\":\"Oslo\",\"gone\":\"back\"}");   /* t: a tie */
    move(o, "u2", true, s, "u1");
    /* gone: s's tombstone (7s) against o's value (7s): a tie, the survivor's
     * tombstone wins; city is new. */
    expect_has(s, "u1", "\"traits\":{\"email\":\"l@x\",\"plan\":\"pro\",\"t\":\"s\",\"city\":\"Oslo\"},"
                        "\"traitTimes\":{\"email\":\"2026-01-01T00:00:20.000Z\",\"plan\":\"2026-01-01T00:00:10.000Z\","
                        "\"t\":\"2026-01-01T00:00:07.000Z\",\"city\":\"2026-01-01T00:00:07.000Z\"}");
    /* the tombstone for x (20s) keeps an older identify from bringing it back */
    identify(s, "u1", NULL, T0 + 15 * SEC, "{\"x\":2}");
    expect_lacks(s, "u1", "\"x\":");
    identify(s, "u1", NULL, T0 + 21 * SEC, "{\"x\":3}");
    expect_has(s, "u1", "\"x\":3");
    expect_heap_exact(s, NULL);
    prof_store_destroy(o);
    prof_store_destroy(s);
}

static void test_merge_traits_over_limit(void **state)
{
    (void)state;
    prof_limits l;
    prof_limits_default(&l);
    l.max_traits_bytes = 40;
    prof_store *s = store_lim(&l), *o = store_lim(&l);
    identify(s, "u1", NULL, T0, "{\"a\":\"1234567890\"}");            /* 18 bytes as JSON */
    identify(o, "u2", NULL, T0, "{\"b\":\"12345678901234567890\"}");  /* 28: each fits, both do not */
    tag(o, "u2", "t", T0);
    move(o, "u2", true, s, "u1");
    expect_has(s, "u1", "\"traits\":{\"a\":\"1234567890\"}");
    expect_has(s, "u1", "\"tags\":[\"t\"]");   /* the rest of the merge still happened */
    expect_has(s, "u1", "\"limited\":1");
    expect_heap_exact(s, &l);
    prof_store_destroy(o);
    prof_store_destroy(s);
}

static void test_merge_tags(void **state)
{
    (void)state;
    prof_limits l;
    prof_limits_default(&l);
    l.max_tags = 3;
    prof_store *s = store_lim(&l), *o = store_lim(&l);
    identify(s, "u1", NULL, T0, "{}");
    tag(s, "u1", "a", T0);
    tag(s, "u1", "b", T0);
    identify(o, "u2", NULL, T0, "{}");
    tag(o, "u2", "b", T0);
    tag(o, "u2", "c", T0);
    tag(o, "u2", "d", T0);
    move(o, "u2", true, s, "u1");
    expect_has(s, "u1", "\"tags\":[\"a\",\"b\",\"c\"]");
    expect_has(s, "u1", "\"limited\":1");   /* d */
    expect_heap_exact(s, &l);
    prof_store_destroy(o);
    prof_store_destroy(s);
}

/* Both profiles in one store (the same partition): after the merge every
 * anonymousId of the loser finds the survivor. */
static void test_merge_anonymous_ids(void **state)
{
    (void)state;
    prof_limits l;
    prof_limits_default(&l);
    l.max_anonymous_ids = 3;
    prof_store *s = store_lim(&l);
    track(s, "u1", "a1", T0, "E", NULL);
    track(s, "u2", "a2", T0, "E", NULL);
    track(s, "u2", "a3", T0, "E", NULL);
    track(s, "u2", "a1", T0, "E", NULL);   /* a1 is owned by u1 */
    track(s, "u2", "a4", T0, "E", NULL);
    move(s, "u2", true, s, "u1");
    assert_int_equal(prof_store_count(s), 1);
    expect_has(s, "u1", "\"anonymousIds\":[\"a1\",\"a2\",\"a3\"],\"identifiers\":{\"userId\":[\"u2\"]}");
    expect_has(s, "u1", "\"limited\":1");   /* a4: past 3 */
    static const char *ids[] = { "a1", "a2", "a3" };
    for (size_t i = 0; i < 3; i++) {
        char *j = get(s, ids[i]);
        assert_non_null(j);
        assert_non_null(strstr(j, "\"key\":\"u1\""));
        free(j);
    }
    char *j = get(s, "a4");
    assert_null(j);
    expect_heap_exact(s, &l);
    prof_store_destroy(s);
}

/* `from` an anonymousId: it joins anonymousIds (and by_anon); an anonymous
 * loser's ids come with it. `from` a userId: an identifier, not an id. */
static void test_merge_from_kinds(void **state)
{
    (void)state;
    prof_store *s = store_lim(NULL), *o = store_lim(NULL);
    track(s, "u1", "a1", T0, "E", NULL);
    track(o, NULL, "anon-x", T0, "E", NULL);
    ingest_event al = ev_of(INGEST_ALIAS, NULL, "anon-x", T0, "{}");
    al.previous_id = S("prev");
    apply(o, &al);
    move(o, "anon-x", false, s, "u1");
    expect_has(s, "u1", "\"anonymousIds\":[\"a1\",\"anon-x\",\"prev\"],\"traits\"");   /* no identifiers */
    char *j = get(s, "anon-x");
    assert_non_null(j);
    assert_non_null(strstr(j, "\"key\":\"u1\""));
    free(j);
    track(o, "u7", NULL, T0, "E", NULL);
    move(o, "u7", true, s, "u1");
    expect_has(s, "u1", "\"anonymousIds\":[\"a1\",\"anon-x\",\"prev\"],\"identifiers\":{\"userId\":[\"u7\"]}");
    j = get(s, "u7");
    assert_null(j);   /* an identifier is not looked up as an id */
    json_object *v = prof_view(s, "u1", 2), *ids, *uid;
    assert_true(json_object_object_get_ex(v, "identifiers", &ids));
    assert_true(json_object_object_get_ex(ids, "userId", &uid));
    assert_string_equal(json_object_get_string(json_object_array_get_idx(uid, 0)), "u7");
    json_object_put(v);
    expect_heap_exact(s, NULL);
    prof_store_destroy(o);
    prof_store_destroy(s);
}

static void test_merge_groups(void **state)
{
    (void)state;
    prof_limits l;
    prof_limits_default(&l);
    l.max_groups = 2;
    prof_store *s = store_lim(&l), *o = store_lim(&l);
    group(s, "u1", "g1", T0, "{\"name\":\"A\",\"tier\":1}");
    group(s, "u1", "g0", T0, "{}");
    group(o, "u2", "g1", T0 + SEC, "{\"name\":\"B\",\"size\":3}");
    group(o, "u2", "g1", T0 - SEC, "{\"tier\":9}");   /* older than s's tier */
    group(o, "u2", "g2", T0, "{\"x\":1}");            /* a third group: dropped */
    move(o, "u2", true, s, "u1");
    expect_has(s, "u1", "\"groups\":{\"g1\":{\"traits\":{\"name\":\"B\",\"tier\":1,\"size\":3}},"
                        "\"g0\":{\"traits\":{}}}");
    expect_has(s, "u1", "\"limited\":1");
    expect_heap_exact(s, &l);
    prof_store_destroy(o);
    prof_store_destroy(s);
}

static void test_merge_consent(void **state)
{
    (void)state;
    prof_store *s = store_lim(NULL), *o = store_lim(NULL);
    ingest_event e1 = ev_of(INGEST_IDENTIFY, "u1", NULL, T0 + 2 * SEC,
                            "{\"type\":\"identify\",\"traits\":{\"consent\":{\"email/marketing\":true}}}");
    apply(s, &e1);
    ingest_event e2 = ev_of(INGEST_IDENTIFY, "u2", NULL, T0 + SEC,
                            "{\"type\":\"identify\",\"traits\":{\"consent\":{\"email/marketing\":false,\"sms\":true}}}");
    apply(o, &e2);
    ingest_event e3 = ev_of(INGEST_IDENTIFY, "u2", NULL, T0 + 3 * SEC,
                            "{\"type\":\"identify\",\"traits\":{\"consent\":{\"push\":false}}}");
    apply(o, &e3);
    move(o, "u2", true, s, "u1");
    expect_has(s, "u1", "\"consent\":{"
                        "\"email/marketing\":{\"granted\":true,\"source\":\"identify\",\"at\":\"2026-01-01T00:00:02.000Z\"},"
                        "\"sms\":{\"granted\":true,\"source\":\"identify\",\"at\":\"2026-01-01T00:00:01.000Z\"},"
                        "\"push\":{\"granted\":false,\"source\":\"identify\",\"at\":\"2026-01-01T00:00:03.000Z\"}}");
    prof_store_destroy(o);
    prof_store_destroy(s);
}

/* ---- computed traits ------------------------------------------------------ */

static prof_computed_defs *defs_of(const char *yaml)
{
    jd_yaml_doc *doc = NULL;
    const jd_yaml_node *root = NULL;
    prof_computed_defs *d = NULL;
    jd_err err;
    jd_err_clear(&err);
    int rc = jd_yaml_parse("t.yaml", yaml, strlen(yaml), &doc, &root, &err);
    if (rc == JD_OK) rc = prof_computed_parse(jd_yaml_get(root, "computed"), "t.yaml", &d, &err);
    jd_yaml_free(doc);
    if (rc != JD_OK) fail_msg("%s: %s", err.where, err.msg);
    return d;
}

static void expect_computed(prof_store *s, const char *key, int64_t now, const char *want)
{
    json_object *v = prof_view_at(s, key, strlen(key), now), *c = NULL;
    assert_non_null(v);
    assert_true(json_object_object_get_ex(v, "computed", &c));
    const char *got = json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (strcmp(got, want) != 0) fail_msg("at %lld:\n  got  %s\n  want %s", (long long)now, got, want);
    json_object_put(v);
}

static void test_merge_computed_all_time(void **state)
{
    (void)state;
    prof_computed_defs *d = defs_of("computed:\n"
                                    "  n:  { count: E }\n"
                                    "  s:  { sum: E, property: v }\n"
                                    "  lo: { min: E, property: v }\n"
                                    "  hi: { max: E, property: v }\n"
                                    "  la: { last: E, property: v }\n"
                                    "  fs: { first_seen: E }\n"
                                    "  ls: { last_seen: E }\n"
                                    "  only_l: { count: F }\n");
    prof_limits l;
    prof_limits_default(&l);
    l.computed = d;
    prof_store *s = store_lim(&l), *o = store_lim(&l);
    track(s, "u1", NULL, T0 + 10 * SEC, "E", "{\"v\":5}");
    track(s, "u1", NULL, T0 + 20 * SEC, "E", "{\"v\":1}");
    track(o, "u2", NULL, T0 + 5 * SEC, "E", "{\"v\":7}");
    track(o, "u2", NULL, T0 + 30 * SEC, "E", "{\"v\":3.5}");
    track(o, "u2", NULL, T0 + 1 * SEC, "F", NULL);
    move(o, "u2", true, s, "u1");
    expect_computed(s, "u1", T0 + 30 * SEC,
                    "{\"n\":4,\"s\":16.5,\"lo\":1,\"hi\":7,\"la\":3.5,\"fs\":\"2026-01-01T00:00:05.000Z\","
                    "\"ls\":\"2026-01-01T00:00:30.000Z\",\"only_l\":1}");
    /* last: the later value wins whichever side it is on */
    prof_store *p = store_lim(&l);
    track(p, "u3", NULL, T0 + 25 * SEC, "E", "{\"v\":\"older\"}");
    move(p, "u3", true, s, "u1");
    expect_computed(s, "u1", T0 + 30 * SEC,
                    "{\"n\":5,\"s\":16.5,\"lo\":1,\"hi\":7,\"la\":3.5,\"fs\":\"2026-01-01T00:00:05.000Z\","
                    "\"ls\":\"2026-01-01T00:00:30.000Z\",\"only_l\":1}");
    expect_heap_exact(s, &l);
    prof_store_destroy(p);
    prof_store_destroy(o);
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
}

/* Windows of 4 days in 4 buckets of a day: buckets merge by their time, and
 * only the newest 4 (within B of the newest) stay. */
static void test_merge_computed_windowed(void **state)
{
    (void)state;
    prof_computed_defs *d = defs_of("computed:\n"
                                    "  w:  { count: E, window: 4d, buckets: 4 }\n"
                                    "  ws: { sum: E, property: v, window: 4d, buckets: 4 }\n"
                                    "  wf: { first_seen: E, window: 4d, buckets: 4 }\n"
                                    "  wl: { last_seen: E, window: 4d }\n");
    prof_limits l;
    prof_limits_default(&l);
    l.computed = d;
    prof_store *s = store_lim(&l), *o = store_lim(&l);
    track(s, "u1", NULL, T0 + 0 * DAY + SEC, "E", "{\"v\":1}");
    track(s, "u1", NULL, T0 + 2 * DAY + 5 * SEC, "E", "{\"v\":2}");
    track(o, "u2", NULL, T0 + 2 * DAY + 3 * SEC, "E", "{\"v\":4}");
    track(o, "u2", NULL, T0 + 5 * DAY, "E", "{\"v\":8}");
    /* before: s alone at day 3 counts days 0 and 2 */
    expect_computed(s, "u1", T0 + 3 * DAY, "{\"w\":2,\"ws\":3,\"wf\":\"2026-01-01T00:00:01.000Z\","
                                            "\"wl\":\"2026-01-03T00:00:05.000Z\"}");
    move(o, "u2", true, s, "u1");
    /* day 5 is the newest: day 0 (5 - 4 or older) is gone; day 2 holds both sides */
    expect_computed(s, "u1", T0 + 5 * DAY, "{\"w\":3,\"ws\":14,\"wf\":\"2026-01-03T00:00:03.000Z\","
                                            "\"wl\":\"2026-01-06T00:00:00.000Z\"}");
    /* at day 3: day 2 only; the latest event (day 5) is after the window */
    expect_computed(s, "u1", T0 + 3 * DAY, "{\"w\":2,\"ws\":6,\"wf\":\"2026-01-03T00:00:03.000Z\"}");
    expect_computed(s, "u1", T0 + 9 * DAY, "{\"w\":0,\"ws\":0}");
    /* the merged payload is well formed: a snapshot of it decodes */
    expect_heap_exact(s, &l);
    prof_store_destroy(o);
    prof_store_destroy(s);
    prof_computed_defs_destroy(d);
}

/* ---- identifiers and refusal notes --------------------------------------- */

static int add_id(prof_store *s, const char *key, const char *kind, const char *v)
{
    return prof_add_identifier(s, key, strlen(key), kind, v, strlen(v));
}

static void test_identifiers(void **state)
{
    (void)state;
    prof_store *s = store_lim(NULL);
    size_t empty = prof_store_bytes(s);
    assert_int_equal(add_id(s, "u1", "email", "a@x"), JD_ENOTFOUND);
    identify(s, "u1", NULL, T0, "{}");
    size_t one = prof_store_bytes(s);
    assert_int_equal(add_id(s, "u1", "email", "a@x"), JD_OK);
    assert_int_equal(add_id(s, "u1", "phone", "+4712345678"), JD_OK);
    assert_int_equal(add_id(s, "u1", "email", "b@x"), JD_OK);
    assert_int_equal(add_id(s, "u1", "email", "a@x"), JD_OK);   /* present: unchanged */
    assert_int_equal(add_id(s, "u1", "userId", "u1"), JD_OK);   /* its own key: not listed */
    expect_has(s, "u1", "\"anonymousIds\":[],\"identifiers\":{\"email\":[\"a@x\",\"b@x\"],\"phone\":[\"+4712345678\"]},");
    /* bad kinds and values */
    assert_int_equal(add_id(s, "u1", "", "v"), JD_EINVAL);
    assert_int_equal(add_id(s, "u1", "e-mail", "v"), JD_EINVAL);
    assert_int_equal(add_id(s, "u1", "abcdefghijklmnopqrstuvwxyz012345", "v"), JD_EINVAL);   /* 32 bytes */
    assert_int_equal(add_id(s, "u1", "abcdefghijklmnopqrstuvwxyz01234", "v"), JD_OK);        /* 31 */
    assert_int_equal(add_id(s, "u1", "email", ""), JD_EINVAL);
    char big[257];
    memset(big, 'v', 256);
    big[256] = 0;
    assert_int_equal(add_id(s, "u1", "email", big), JD_EINVAL);
    big[255] = 0;
    assert_int_equal(add_id(s, "u1", "email", big), JD_OK);
    /* the memory bound: 32 a profile */
    for (int i = 0; i < 40; i++) {
        char v[16];
        snprintf(v, sizeof v, "p%d", i);
        int rc = add_id(s, "u1", "phone", v);
        assert_int_equal(rc, i < 32 - 5 ? JD_OK : JD_ELIMIT);   /* 5 listed so far */
    }
    /* the view: profile.identifiers.email */
    json_object *view = prof_view(s, "u1", 2), *ids, *email;
    assert_true(json_object_object_get_ex(view, "identifiers", &ids));
    assert_true(json_object_object_get_ex(ids, "email", &email));
    assert_int_equal(json_object_array_length(email), 3);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(email, 1)), "b@x");
    json_object_put(view);
    /* remove */
    assert_int_equal(prof_remove_identifier(s, "u1", 2, "email", "b@x", 3), JD_OK);
    assert_int_equal(prof_remove_identifier(s, "u1", 2, "email", "b@x", 3), JD_OK);   /* absent: fine */
    assert_int_equal(prof_remove_identifier(s, "u9", 2, "email", "b@x", 3), JD_ENOTFOUND);
    expect_has(s, "u1", "\"identifiers\":{\"email\":[\"a@x\",");
    expect_lacks(s, "u1", "b@x");
    assert_int_equal(add_id(s, "u1", "phone", "again"), JD_OK);   /* room again */
    expect_heap_exact(s, NULL);
    /* removing them all frees the rich part: the heap is back */
    json_object *v2 = prof_view(s, "u1", 2), *all;
    assert_true(json_object_object_get_ex(v2, "identifiers", &all));
    json_object_object_foreach(all, kind, arr) {
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
            const char *val = json_object_get_string(json_object_array_get_idx(arr, i));
            assert_int_equal(prof_remove_identifier(s, "u1", 2, kind, val, strlen(val)), JD_OK);
        }
    }
    json_object_put(v2);
    assert_int_equal(prof_store_bytes(s), one);
    expect_lacks(s, "u1", "identifiers");
    assert_true(one > empty);
    prof_store_destroy(s);
}

static void test_merge_identifiers(void **state)
{
    (void)state;
    prof_store *s = store_lim(NULL), *o = store_lim(NULL);
    identify(s, "u1", NULL, T0, "{}");
    identify(o, "u2", NULL, T0, "{}");
    assert_int_equal(add_id(s, "u1", "email", "a@x"), JD_OK);
    assert_int_equal(add_id(o, "u2", "email", "b@x"), JD_OK);
    assert_int_equal(add_id(o, "u2", "phone", "p1"), JD_OK);
    assert_int_equal(add_id(o, "u2", "email", "a@x"), JD_OK);   /* both have it */
    assert_int_equal(add_id(o, "u2", "userId", "u1"), JD_OK);   /* the survivor's own key */
    move(o, "u2", true, s, "u1");
    expect_has(s, "u1", "\"identifiers\":{\"email\":[\"a@x\",\"b@x\"],\"userId\":[\"u2\"],\"phone\":[\"p1\"]},");
    /* past 32: dropped and counted */
    prof_store *p = store_lim(NULL);
    identify(p, "u3", NULL, T0, "{}");
    for (int i = 0; i < 32; i++) {
        char v[16];
        snprintf(v, sizeof v, "x%d", i);
        assert_int_equal(add_id(p, "u3", "email", v), JD_OK);
    }
    move(p, "u3", true, s, "u1");   /* 4 listed + userId u3 + 32: 5 dropped */
    expect_has(s, "u1", "\"limited\":5");
    expect_has(s, "u1", "\"userId\":[\"u2\",\"u3\"]");
    expect_heap_exact(s, NULL);
    prof_store_destroy(p);
    prof_store_destroy(o);
    prof_store_destroy(s);
}

static int note(prof_store *s, const char *key, const char *other, int64_t at)
{
    return prof_note_refused(s, key, strlen(key), other, strlen(other), "a second userId past identity.limits.userId (1)",
                             at);
}

static void test_note_refused(void **state)
{
    (void)state;
    prof_store *s = store_lim(NULL);
    assert_int_equal(note(s, "u1", "u2", T0), JD_ENOTFOUND);
    identify(s, "u1", NULL, T0, "{}");
    expect_lacks(s, "u1", "mergesRefused");
    /* ten notes, out of order: the latest eight, by time */
    static const int secs[] = { 5, 1, 9, 3, 7, 2, 10, 4, 8, 6 };
    for (size_t i = 0; i < JD_ARRAY_LEN(secs); i++) {
        char other[16];
        snprintf(other, sizeof other, "u%d", 100 + secs[i]);
        assert_int_equal(note(s, "u1", other, T0 + secs[i] * SEC), JD_OK);
    }
    char *j = get(s, "u1");
    char *m = strstr(j, ",\"mergesRefused\":[");
    assert_non_null(m);
    for (int k = 3; k <= 10; k++) {
        char want[128];
        snprintf(want, sizeof want,
                 "{\"with\":\"u%d\",\"reason\":\"a second userId past identity.limits.userId (1)\","
                 "\"at\":\"2026-01-01T00:00:%02d.000Z\"}%s", 100 + k, k, k < 10 ? "," : "]}");
        if (strncmp(m + 18, want, strlen(want)) != 0) fail_msg("note %d: want %s\n  at %s", k, want, m + 18);
        m += strlen(want);
    }
    free(j);
    expect_lacks(s, "u1", "u101");
    expect_lacks(s, "u1", "u102");
    /* an older note than all eight is dropped at once */
    assert_int_equal(note(s, "u1", "u100", T0), JD_OK);
    expect_lacks(s, "u1", "u100");
    assert_int_equal(prof_note_refused(s, "u1", 2, "", 0, "r", T0), JD_EINVAL);
    assert_int_equal(prof_note_refused(s, "u1", 2, "x", 1, "", T0), JD_EINVAL);
    /* notes and identifiers live side by side; merged notes are sorted by time */
    assert_int_equal(add_id(s, "u1", "email", "a@x"), JD_OK);
    prof_store *o = store_lim(NULL);
    identify(o, "u2", NULL, T0, "{}");
    assert_int_equal(note(o, "u2", "u200", T0 + 20 * SEC), JD_OK);
    assert_int_equal(note(o, "u2", "u199", T0 + 2 * SEC), JD_OK);   /* older than the eight: dropped */
    move(o, "u2", true, s, "u1");
    j = get(s, "u1");
    assert_non_null(strstr(j, "\"identifiers\":{\"email\":[\"a@x\"],\"userId\":[\"u2\"]}"));
    assert_null(strstr(j, "u103"));   /* the oldest of the eight went for u200 */
    assert_null(strstr(j, "u199"));
    char *a = strstr(j, "u104"), *b = strstr(j, "u110"), *c = strstr(j, "u200");
    assert_non_null(a);
    assert_true(a < b && b < c);
    free(j);
    expect_heap_exact(s, NULL);
    prof_store_destroy(o);
    prof_store_destroy(s);
}

/* ---- all or nothing -------------------------------------------------------- */

static prof_store *store_loser(const prof_limits *l)
{
    prof_store *o = store_lim(l);
    identify(o, "u2", "a2", T0, "{\"plan\":\"pro\",\"n\":1.5}");
    track(o, "u2", "a3", T0 + SEC, "E", "{\"v\":2}");
    group(o, "u2", "g", T0, "{\"x\":1}");
    tag(o, "u2", "vip", T0);
    ingest_event c = ev_of(INGEST_IDENTIFY, "u2", NULL, T0, "{\"type\":\"identify\",\"traits\":{\"consent\":{\"sms\":true}}}");
    apply(o, &c);
    assert_int_equal(add_id(o, "u2", "email", "b@x"), JD_OK);
    assert_int_equal(note(o, "u2", "u5", T0), JD_OK);
    return o;
}

/* A truncated or corrupt blob changes nothing: every truncation is refused
 * with where "merge+<offset>", and the survivor's JSON and the heap stay. */
static void test_merge_corrupt_blob_changes_nothing(void **state)
{
    (void)state;
    prof_computed_defs *d = defs_of("computed:\n  n: { count: E, window: 7d }\n  s: { sum: E, property: v }\n");
    prof_limits l;
    prof_limits_default(&l);
    l.computed = d;
    prof_store *o = store_loser(&l), *s = store_lim(&l);
    identify(s, "u1", "a1", T0, "{\"plan\":\"free\"}");
    size_t n;
    char *blob = extract(o, "u2", &n);
    char *before = get(s, "u1");
    size_t bytes = prof_store_bytes(s);
    jd_err err;
    for (size_t cut = 1; cut < n; cut++) {
        char *part = jd_xmalloc(cut);   /* exactly cut bytes: ASan sees a read past them */
        memcpy(part, blob, cut);
        jd_err_clear(&err);
        int rc = prof_merge_in(s, "u1", 2, true, "u2", 2, true, part, cut, &err);
        if (rc != JD_ECORRUPT) fail_msg("cut %zu: rc %d", cut, rc);
        assert_int_equal(strncmp(err.where, "merge+", 6), 0);
        assert_non_null(strstr(err.msg, "profile merge: "));
        free(part);
        char *now = get(s, "u1");
        assert_string_equal(now, before);
        free(now);
        assert_int_equal(prof_store_bytes(s), bytes);
        assert_int_equal(prof_store_count(s), 1);
    }
    /* named exactly: the key length made huge; a bad version; trailing bytes */
    char *bad = jd_xmalloc(n + 1);
    memcpy(bad, blob, n);
    bad[4] = (char)0x7f;
    assert_int_equal(prof_merge_in(s, "u1", 2, true, "u2", 2, true, bad, n, &err), JD_ECORRUPT);
    assert_string_equal(err.msg, "profile merge: truncated key at byte 5");
    assert_string_equal(err.where, "merge+5");
    memcpy(bad, blob, n);
    bad[0] = 9;   /* the first version after PROF_CODEC_VERSION (8: the timeline) */
    assert_int_equal(prof_merge_in(s, "u1", 2, true, "u2", 2, true, bad, n, &err), JD_ECORRUPT);
    assert_string_equal(err.where, "merge+0");
    memcpy(bad, blob, n);
    bad[n] = 0;
    assert_int_equal(prof_merge_in(s, "u1", 2, true, "u2", 2, true, bad, n + 1, &err), JD_ECORRUPT);
    assert_non_null(strstr(err.msg, "trailing bytes"));
    /* every bit flipped: refused (nothing changed) or merged into a copy */
    for (size_t i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, blob, n);
            bad[i] ^= (char)(1 << bit);
            prof_store *t = store_lim(&l);
            identify(t, "u1", "a1", T0, "{\"plan\":\"free\"}");
            size_t tb = prof_store_bytes(t);
            int rc = prof_merge_in(t, "u1", 2, true, "u2", 2, true, bad, n, &err);
            assert_true(rc == JD_OK || rc == JD_ECORRUPT || rc == JD_EINVAL);   /* EINVAL: the key's bytes */
            if (rc != JD_OK) assert_int_equal(prof_store_bytes(t), tb);
            else expect_heap_exact(t, &l);
            prof_store_destroy(t);
        }
    /* and the good blob still merges */
    merge_ok(s, "u1", true, "u2", true, blob, n);
    expect_has(s, "u1", "\"identifiers\":{\"userId\":[\"u2\"],\"email\":[\"b@x\"]}");
    expect_has(s, "u1", "\"mergesRefused\":[{\"with\":\"u5\"");
    free(bad);
    free(before);
    free(blob);
    prof_store_destroy(s);
    prof_store_destroy(o);
    prof_computed_defs_destroy(d);
}

/* ---- snapshot ---------------------------------------------------------- */

static char *encode(const prof_store *s, size_t *n)
{
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    assert_int_equal(prof_store_encode(s, &b), JD_OK);
    return jd_buf_detach(&b, n);
}

static void test_snapshot_identities_round_trip(void **state)
{
    (void)state;
    prof_store *s = store_loser(NULL);
    assert_int_equal(add_id(s, "u2", "userId", "u9"), JD_OK);
    size_t n;
    char *blob = encode(s, &n);
    assert_int_equal(blob[0], 7);
    prof_store *d = store_lim(NULL);
    jd_err err;
    assert_int_equal(prof_store_decode(d, blob, n, &err), JD_OK);
    char *a = get(s, "u2"), *b = get(d, "u2");
    assert_string_equal(a, b);
    assert_non_null(strstr(b, "\"identifiers\":{\"email\":[\"b@x\"],\"userId\":[\"u9\"]}"));
    assert_non_null(strstr(b, "\"mergesRefused\":[{\"with\":\"u5\""));
    assert_int_equal(prof_store_bytes(d), prof_store_bytes(s));
    free(a);
    free(b);
    /* the identities blob is checked: a duplicate identifier, a bad kind */
    char *q = memmem(blob, n, "\x01\x06\x02userIdu9", 11);
    assert_non_null(q);
    char *bad = jd_xmalloc(n);
    static const struct { size_t off; char v; const char *msg; } cases[] = {
        { 3, '-', "bad identifier kind" },
        { 0, 3, "bad identity entry" },
        { 2, 0, "bad identifier value" },
        { 2, 100, "identifier length past its set" },
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(cases); i++) {
        prof_store *e = store_lim(NULL);
        memcpy(bad, blob, n);
        bad[(q - blob) + cases[i].off] = cases[i].v;
        assert_int_equal(prof_store_decode(e, bad, n, &err), JD_ECORRUPT);
        if (!strstr(err.msg, cases[i].msg)) fail_msg("case %zu: %s", i, err.msg);
        assert_int_equal(prof_store_count(e), 0);
        prof_store_destroy(e);
    }
    /* email b@x -> userId-like duplicate: make the second entry equal the first */
    char *first = memmem(blob, n, "\x01\x05\x03" "emailb@x", 11);
    assert_non_null(first);
    memcpy(bad, blob, n);
    memcpy(bad + (q - blob), "\x01\x05\x02" "emailb@", 10);   /* a 2-byte "b@": distinct */
    prof_store *e = store_lim(NULL);
    int rc = prof_store_decode(e, bad, n, &err);
    assert_int_equal(rc, JD_ECORRUPT);   /* 1 byte left over: not an entry */
    prof_store_destroy(e);
    free(bad);
    free(blob);
    prof_store_destroy(d);
    prof_store_destroy(s);
}

/* A version 6 snapshot (before identities): version 7 without the u32
 * idents_len after consent. It decodes with none. */
static void test_snapshot_v6_decodes(void **state)
{
    (void)state;
    prof_store *s = store_lim(NULL);
    identify(s, "u1", "a1", T0, "{\"plan\":\"pro\"}");
    tag(s, "u1", "vip", T0);
    size_t n;
    char *blob = encode(s, &n);
    /* one profile: ... consent_len | idents_len 0 | nsupp 0 */
    assert_int_equal(memcmp(blob + n - 12, "\0\0\0\0\0\0\0\0\0\0\0\0", 12), 0);
    memmove(blob + n - 12, blob + n - 8, 8);
    blob[0] = 6;
    prof_store *d = store_lim(NULL);
    jd_err err;
    jd_err_clear(&err);
    int rc = prof_store_decode(d, blob, n - 4, &err);
    if (rc != JD_OK) fail_msg("%s", err.msg);
    char *a = get(s, "u1"), *b = get(d, "u1");
    assert_string_equal(a, b);
    free(a);
    free(b);
    /* the same bytes read as version 7 lack the idents length */
    prof_store *e = store_lim(NULL);
    blob[0] = 7;
    assert_int_equal(prof_store_decode(e, blob, n - 4, &err), JD_ECORRUPT);
    /* and a decoded v6 profile takes identifiers */
    assert_int_equal(add_id(d, "u1", "email", "a@x"), JD_OK);
    expect_has(d, "u1", "\"identifiers\":{\"email\":[\"a@x\"]}");
    free(blob);
    prof_store_destroy(e);
    prof_store_destroy(d);
    prof_store_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extract_removes_and_returns),
        cmocka_unit_test(test_merge_into_absent_creates),
        cmocka_unit_test(test_merge_without_blob),
        cmocka_unit_test(test_merge_bad_args),
        cmocka_unit_test(test_merge_counts_and_seen),
        cmocka_unit_test(test_merge_traits_later_wins),
        cmocka_unit_test(test_merge_traits_over_limit),
        cmocka_unit_test(test_merge_tags),
        cmocka_unit_test(test_merge_anonymous_ids),
        cmocka_unit_test(test_merge_from_kinds),
        cmocka_unit_test(test_merge_groups),
        cmocka_unit_test(test_merge_consent),
        cmocka_unit_test(test_merge_computed_all_time),
        cmocka_unit_test(test_merge_computed_windowed),
        cmocka_unit_test(test_identifiers),
        cmocka_unit_test(test_merge_identifiers),
        cmocka_unit_test(test_note_refused),
        cmocka_unit_test(test_merge_corrupt_blob_changes_nothing),
        cmocka_unit_test(test_snapshot_identities_round_trip),
        cmocka_unit_test(test_snapshot_v6_decodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
