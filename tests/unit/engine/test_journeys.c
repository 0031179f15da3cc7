/* tests/unit/engine/test_journeys.c -- journeys in the engine with a virtual
 * clock: publishing through the log, an event entering a person, a wait fired
 * by a clock record the committer writes when the virtual time reaches it,
 * and the same intents after a clean restart (snapshot) and after a crash
 * (log replay alone). The committer is the only reader of the clock, so
 * moving the virtual clock is how a test moves time; a test then waits (with
 * a deadline) for the committer to notice, never for a fixed time. */
#include <time.h>
#include <json-c/json.h>

#include "engine/fixture.h"

static const char CART[] =
    "id: cart\n"
    "entry: { event: Cart Updated }\n"
    "reentry: always\n"
    "nodes:\n"
    "  wait_order:\n"
    "    wait: { event: Order Completed, timeout: 1h }\n"
    "    next: done\n"
    "    on_timeout: remind\n"
    "  remind:\n"
    "    send: { channel: email, template: cart_reminder }\n"
    "  done:\n"
    "    exit: ordered\n";

/* Publishes text as journey "cart": returns rc, *json owned (or NULL). */
static int publish(eng *e, const char *text, char **json)
{
    eng_journey_req req = { "publish", "cart", text, strlen(text), "test", true, false, false };
    return journey_change(e, &req, json);
}

/* eng_journey_enter, waited for: returns rc, *json owned (or NULL). */
static int enter(eng *e, const char *journey, const char *who, char **json)
{
    waiter w;
    waiter_init(&w);
    eng_journey_enter(e, journey, who, on_json, &w);
    int rc;
    *json = waiter_take(&w, &rc);
    return rc;
}

static char *intents(eng *e, const char *who)
{
    waiter w;
    waiter_init(&w);
    eng_intents_get(e, who, 100, on_json, &w);
    return waiter_take(&w, NULL);
}

static size_t count_in(const char *json)
{
    json_object *a = json_tokener_parse(json ? json : "[]");
    size_t n = a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
    json_object_put(a);
    return n;
}

/* Waits, up to 5 s of real time, for `who` to have n intents. Returns them (owned). */
static char *await_intents(eng *e, const char *who, size_t n)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += 5;
    for (;;) {
        char *j = intents(e, who);
        if (count_in(j) >= n) return j;
        free(j);
        struct timespec now, pause = { 0, 2 * 1000 * 1000 };
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec > deadline.tv_nsec))
            fail_msg("no %zu intent(s) for %s within 5 s", n, who);
        nanosleep(&pause, NULL);   /* yields to the committer; the deadline, not this, bounds the test */
    }
}

static char *intent_field(const char *json, size_t i, const char *key)
{
    json_object *a = json_tokener_parse(json), *o = json_object_array_get_idx(a, i), *v;
    char *s = o && json_object_object_get_ex(o, key, &v) ? jd_xstrdup(json_object_get_string(v)) : NULL;
    json_object_put(a);
    return s;
}

static int setup(void **state)
{
    return fixture_setup(state, "/tmp/jd-journeys-XXXXXX", true);
}

static void test_publish_enter_wait_fire(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    char *pub = NULL;
    assert_int_equal(publish(e, CART, &pub), JD_OK);
    assert_non_null(strstr(pub, "\"version\":1"));
    free(pub);
    /* unchanged text: no new version */
    assert_int_equal(publish(e, CART, &pub), JD_OK);
    assert_non_null(strstr(pub, "\"version\":1"));
    free(pub);

    assert_int_equal(track(e, "u1", "Cart Updated", "m1", T0), JD_OK);
    assert_int_equal(track(e, "u2", "Cart Updated", "m2", T0), JD_OK);
    assert_int_equal(track(e, "u2", "Order Completed", "m3", T0 + 10 * (int64_t)JD_MIN), JD_OK);
    char *w1 = where(e, "u1"), *w2 = where(e, "u2");
    assert_non_null(strstr(w1, "\"waiting_for\":\"event:Order Completed\""));
    assert_non_null(strstr(w1, "\"timer_at\":\"2026-01-01T01:00:00.000Z\""));
    assert_non_null(strstr(w2, "\"last_end\":\"finished\""));
    free(w1);
    free(w2);

    /* A minute before the deadline nothing fires, whatever the committer does. */
    jd_vclock_set(&f->vc, (uint64_t)(T0 + 59 * (int64_t)JD_MIN));
    char *none = intents(e, "u1");
    assert_int_equal(count_in(none), 0);
    free(none);
    /* At the deadline the committer writes a clock record and the wait fires. */
    jd_vclock_set(&f->vc, (uint64_t)(T0 + (int64_t)JD_HOUR));
    char *got = await_intents(e, "u1", 1);
    char *node = intent_field(got, 0, "node"), *at = intent_field(got, 0, "at");
    assert_string_equal(node, "remind");
    assert_string_equal(at, "2026-01-01T01:00:00.000Z");
    free(node);
    free(at);
    free(got);
    char *u2 = intents(e, "u2");
    assert_int_equal(count_in(u2), 0);   /* ordered in time: no reminder */
    free(u2);
    eng_stats s;
    eng_get_stats(e, &s);
    assert_true(s.ticks >= 1);
    assert_int_equal(s.instances, 0);
    eng_close(e);
}

/* The same run with a restart in the middle of the wait -- clean (snapshot)
 * or a crash (copy of the data folder before close: log replay alone) --
 * produces the same intent id at the same time. */
static void run_with_restart(fixture *f, int how, char **id_out)
{
    eng *e;
    jd_err err;
    eng_opts o = f->o;
    jd_vclock_set(&f->vc, (uint64_t)T0);
    assert_int_equal(eng_open(&e, &o, NULL, &err), JD_OK);
    assert_int_equal(publish(e, CART, NULL), JD_OK);
    assert_int_equal(track(e, "u9", "Cart Updated", "m9", T0 + 5 * (int64_t)JD_SEC), JD_OK);
    if (how == 2) {
        char *cmd = jd_strfmt("cp -r %s %s-copy", o.data_dir, o.data_dir);
        assert_int_equal(system(cmd), 0);
        free(cmd);
        eng_close(e);
        o.data_dir = jd_strfmt("%s-copy", f->dir);
    } else if (how == 1) {
        eng_close(e);
    }
    if (how) {
        eng_recovery rec;
        assert_int_equal(eng_open(&e, &o, &rec, &err), JD_OK);
        assert_int_equal(rec.snapshot_lsn != 0, how == 1);
        char *w = where(e, "u9");
        assert_non_null(strstr(w, "\"timer_at\":\"2026-01-01T01:00:05.000Z\""));
        free(w);
    }
    jd_vclock_set(&f->vc, (uint64_t)(T0 + (int64_t)JD_HOUR + 5 * (int64_t)JD_SEC));
    char *got = await_intents(e, "u9", 1);
    assert_int_equal(count_in(got), 1);
    *id_out = intent_field(got, 0, "id");
    char *at = intent_field(got, 0, "at");
    assert_string_equal(at, "2026-01-01T01:00:05.000Z");
    free(at);
    free(got);
    eng_close(e);
    if (how == 2) free((char *)o.data_dir);
}

static void test_restart_mid_wait_same_intent(void **state)
{
    fixture *f = *state;
    char *ids[3];
    char *base = f->dir + strlen(f->dir);
    (void)base;
    for (int how = 0; how < 3; how++) {
        char *cmd = jd_strfmt("rm -rf %s/* %s-copy", f->dir, f->dir);
        assert_int_equal(system(cmd), 0);
        free(cmd);
        run_with_restart(f, how, &ids[how]);
    }
    assert_string_equal(ids[0], ids[1]);
    assert_string_equal(ids[0], ids[2]);
    for (int i = 0; i < 3; i++) free(ids[i]);
}

static void test_enter_through_api_and_reentry(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    const char *doc = "id: vip\nentry: { api: true }\nnodes:\n  hi:\n    send: { channel: email, template: vip }\n";
    char *j = NULL;
    eng_journey_req req = { "publish", "vip", doc, strlen(doc), "test", false, false, false };
    assert_int_equal(journey_change(e, &req, NULL), JD_OK);

    assert_int_equal(enter(e, "vip", "alice", &j), JD_OK);
    assert_non_null(strstr(j, "\"entered\":true"));
    free(j);
    char *got = intents(e, "alice");
    assert_int_equal(count_in(got), 1);
    free(got);
    /* reentry: never (the default) refuses a second time, with the reason */
    assert_int_equal(enter(e, "vip", "alice", &j), JD_EBUSY);
    assert_non_null(strstr(j, "re-entry"));
    free(j);
    /* unknown journey */
    assert_int_equal(enter(e, "nope", "alice", &j), JD_ENOTFOUND);
    free(j);
    /* pause: entering is refused; archive is final */
    eng_journey_req p = { "pause", "vip", NULL, 0, NULL, false, false, false };
    assert_int_equal(journey_change(e, &p, &j), JD_OK);
    assert_non_null(strstr(j, "\"status\":\"paused\""));
    free(j);
    assert_int_equal(enter(e, "vip", "bob", &j), JD_EBUSY);
    free(j);
    eng_journey_req a = { "archive", "vip", NULL, 0, NULL, false, false, false };
    assert_int_equal(journey_change(e, &a, NULL), JD_OK);
    eng_journey_req r = { "resume", "vip", NULL, 0, NULL, false, false, false };
    assert_int_equal(journey_change(e, &r, &j), JD_EBUSY);
    assert_non_null(strstr(j, "archived"));
    free(j);
    eng_close(e);
}

static void test_bad_document_lists_every_error(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    const char *bad = "id: bad\nentry: { event: X }\nnodes:\n  a:\n    send: { channel: emial, template: t }\n    next: zz\n";
    char *j = NULL;
    eng_journey_req req = { "draft", "bad", bad, strlen(bad), "api", false, true, false };
    assert_int_equal(journey_change(e, &req, &j), JD_EINVAL);
    json_object *o = json_tokener_parse(j), *errs;
    assert_true(json_object_object_get_ex(o, "errors", &errs));
    assert_true(json_object_array_length(errs) >= 2);   /* the channel and the missing node */
    json_object_put(o);
    free(j);
    /* nothing was stored */
    waiter w;
    waiter_init(&w);
    eng_journeys_get(e, "bad", false, on_json, &w);
    waiter_wait(&w);
    assert_int_equal(w.rc, JD_ENOTFOUND);
    waiter_release(&w);
    eng_close(e);
}

/* A segment that time alone flips, in the engine: "no login for 3 days" is
 * entered 3 days after the last login on the committer's (virtual) clock,
 * and its journey's intent carries that time. */
static void test_segment_flips_on_the_clock(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    const char *seg = "id: inactive-3d\nwhen: days_since(timestamp(profile.last_seen)) >= 3\n";
    const char *jdoc = "id: winback\nentry: { segment_enter: inactive-3d }\nnodes:\n  m: { send: { channel: email, template: miss_you } }\n";
    char *j = NULL;
    eng_journey_req rs = { "segment", "inactive-3d", seg, strlen(seg), "test", false, false, false };
    assert_int_equal(journey_change(e, &rs, &j), JD_OK);
    assert_non_null(strstr(j, "\"timed\":true"));
    free(j);
    eng_journey_req rj = { "publish", "winback", jdoc, strlen(jdoc), "test", false, false, false };
    assert_int_equal(journey_change(e, &rj, NULL), JD_OK);
    assert_int_equal(track(e, "sam", "Logged In", "s1", T0), JD_OK);
    jd_vclock_set(&f->vc, (uint64_t)(T0 + 3 * (int64_t)JD_DAY - 10 * (int64_t)JD_SEC));
    char *none = intents(e, "sam");
    assert_int_equal(count_in(none), 0);
    free(none);
    jd_vclock_set(&f->vc, (uint64_t)(T0 + 3 * (int64_t)JD_DAY + 5 * (int64_t)JD_MIN));
    char *got = await_intents(e, "sam", 1);
    char *at = intent_field(got, 0, "at"), *journey = intent_field(got, 0, "journey");
    assert_string_equal(journey, "winback");
    assert_string_equal(at, "2026-01-04T00:00:00.000Z");   /* the flip's time, not the clock record's */
    free(at);
    free(journey);
    free(got);
    waiter w;
    waiter_init(&w);
    eng_segments_get(e, "inactive-3d", on_json, &w);
    waiter_wait(&w);
    assert_non_null(strstr(w.json, "\"size\":1"));
    waiter_release(&w);
    eng_close(e);
}

/* Size over time, read through the engine (a fan-out over 8 partitions on 2
 * shards): a point is the size at the boundary summed over partitions; a
 * partition whose clock has not reached a boundary counts its current size. */
static char *history(eng *e, const char *id, bool daily, int64_t from, int64_t to, int *rc)
{
    waiter w;
    waiter_init(&w);
    eng_segment_history(e, id, daily, from, to, on_json, &w);
    return waiter_take(&w, rc);
}

static void test_segment_history(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    int rc;
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    const char *seg = "id: active\nwhen: days_since(timestamp(profile.last_seen)) < 3\n";
    eng_journey_req rs = { "segment", "active", seg, strlen(seg), "test", false, false, false };
    assert_int_equal(journey_change(e, &rs, NULL), JD_OK);   /* at T0, 00:00: points from 01:00 */
    jd_vclock_set(&f->vc, (uint64_t)(T0 + 10 * (int64_t)JD_MIN));
    assert_int_equal(track(e, "ana", "Logged In", "h1", T0 + 10 * (int64_t)JD_MIN), JD_OK);
    jd_vclock_set(&f->vc, (uint64_t)(T0 + 130 * (int64_t)JD_MIN));
    assert_int_equal(track(e, "bo", "Logged In", "h2", T0 + 130 * (int64_t)JD_MIN), JD_OK);
    char *j = history(e, "active", false, INT64_MIN, INT64_MAX, &rc);
    assert_int_equal(rc, JD_OK);
    assert_string_equal(j, "{\"id\":\"active\",\"granularity\":\"hour\",\"points\":["
                           "{\"at\":\"2026-01-01T01:00:00.000Z\",\"size\":1},"
                           "{\"at\":\"2026-01-01T02:00:00.000Z\",\"size\":1}]}");
    free(j);
    j = history(e, "active", false, T0 + 90 * (int64_t)JD_MIN, INT64_MAX, &rc);
    assert_non_null(strstr(j, "\"points\":[{\"at\":\"2026-01-01T02:00:00.000Z\",\"size\":1}]"));
    free(j);
    j = history(e, "active", true, INT64_MIN, INT64_MAX, &rc);   /* the first day boundary is 01-02 */
    assert_string_equal(j, "{\"id\":\"active\",\"granularity\":\"day\",\"points\":[]}");
    free(j);
    j = history(e, "nope", false, INT64_MIN, INT64_MAX, &rc);
    assert_int_equal(rc, JD_ENOTFOUND);
    free(j);
    eng_close(e);
}

/* Deleting a person: the profile and their journey state go, their intents
 * leave GET /v1/intents, a late event (even by an anonymousId routed to
 * another partition) recreates nothing, an identify brings them back; and
 * all of it holds after a restart. */
/* A read from every shard: everything acknowledged before has been applied. */
static void sync_all(eng *e)
{
    waiter w;
    waiter_init(&w);
    eng_journeys_get(e, NULL, false, on_json, &w);
    free(waiter_take(&w, NULL));
}

static void test_delete_person(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    assert_int_equal(publish(e, CART, NULL), JD_OK);
    char *body = jd_strfmt("{\"userId\":\"dora\",\"anonymousId\":\"dev-1\",\"event\":\"Cart Updated\",\"messageId\":\"d1\"}");
    ingest_limits lim;
    ingest_limits_default(&lim);
    ingest_batch *b = NULL;
    assert_int_equal(ingest_parse(&lim, INGEST_ROUTE_TRACK, body, strlen(body), T0, NULL, NULL, &b, &err), JD_OK);
    free(body);
    eng_txn *t = eng_txn_create();
    eng_txn_add_event(t, e, &b->msgs[0]);
    ingest_batch_destroy(b);
    submit_txn(e, t);
    waiter w;
    char *in = where(e, "dora");
    assert_non_null(strstr(in, "\"waiting_for\""));
    free(in);

    waiter_init(&w);
    eng_profile_delete(e, "dev-1", on_json, &w);   /* by the anonymousId */
    waiter_wait(&w);
    assert_int_equal(w.rc, JD_OK);
    waiter_release(&w);
    waiter_init(&w);
    eng_profile_journeys(e, "dora", on_json, &w);
    waiter_wait(&w);
    assert_int_equal(w.rc, JD_ENOTFOUND);   /* history forgotten too */
    waiter_release(&w);
    waiter_init(&w);
    eng_journeys_get(e, "cart", false, on_json, &w);
    waiter_wait(&w);
    assert_non_null(strstr(w.json, "\"deleted\":1"));   /* counted as an exit reason */
    waiter_release(&w);
    /* late events: by the key and by the old anonymousId alone */
    assert_int_equal(track(e, "dora", "Cart Updated", "d2", T0 + 1), JD_OK);
    char *late = jd_strfmt("{\"anonymousId\":\"dev-1\",\"event\":\"Cart Updated\",\"messageId\":\"d3\"}");
    assert_int_equal(ingest_parse(&lim, INGEST_ROUTE_TRACK, late, strlen(late), T0 + 2, NULL, NULL, &b, &err), JD_OK);
    free(late);
    t = eng_txn_create();
    eng_txn_add_event(t, e, &b->msgs[0]);
    ingest_batch_destroy(b);
    submit_txn(e, t);
    sync_all(e);
    eng_stats s;
    eng_get_stats(e, &s);
    assert_int_equal(s.deleted, 1);
    assert_int_equal(s.suppressed, 2);
    assert_int_equal(s.instances, 0);
    eng_close(e);

    /* after a restart (snapshot): still suppressed until an identify */
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    assert_int_equal(track(e, "dora", "Cart Updated", "d4", T0 + 3), JD_OK);
    sync_all(e);
    eng_get_stats(e, &s);
    assert_int_equal(s.suppressed, 1);
    waiter_init(&w);
    eng_profile_delete(e, "dora", on_json, &w);
    waiter_wait(&w);
    assert_int_equal(w.rc, JD_ENOTFOUND);
    waiter_release(&w);
    eng_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_enter_wait_fire, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_restart_mid_wait_same_intent, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_enter_through_api_and_reentry, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_document_lists_every_error, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_segment_flips_on_the_clock, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_segment_history, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_delete_person, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
