/* tests/unit/engine/test_tasks.c -- the human task queue in the engine on a
 * virtual clock (src/engine/tasks.c): a task node makes an open task with its
 * title rendered; claims and completions through TASK records (409s as
 * JD_EBUSY); the completion's `Task Completed` event moves the journey on;
 * the same tasks, byte for byte, after a clean restart (snapshot, format 4)
 * and from the log alone (no snapshot). */
#include <json-c/json.h>

#include "engine/fixture.h"

static const char TRIAL[] =
    "id: trial\n"
    "entry: { event: Trial Started }\n"
    "nodes:\n"
    "  call:\n"
    "    task: { queue: sales, title: \"Call {{ profile.traits.name | default: 'them' }} ({{ journey.id }})\" }\n"
    "    next: outcome\n"
    "  outcome:\n"
    "    wait: { event: Task Completed, when: \"event.properties.outcome == 'won'\" }\n"
    "    next: won\n"
    "  won:\n"
    "    exit: won\n";

static int publish(eng *e)
{
    eng_journey_req req = { "publish", "trial", TRIAL, strlen(TRIAL), "test", true, false, false };
    return journey_change(e, &req, NULL);
}

/* One task call: returns rc, *json owned. */
static int task_call(eng *e, const char *op, const char *id, const char *assignee, const char *outcome, int64_t at,
                     char **json)
{
    waiter w;
    waiter_init(&w);
    if (!op) {
        eng_task_get(e, id, on_json, &w);
    } else {
        eng_task_req q = { id, op, assignee, outcome, outcome ? "a note" : NULL, at };
        eng_task_change(e, &q, on_json, &w);
    }
    int rc;
    *json = waiter_take(&w, &rc);
    return rc;
}

static char *list(eng *e, const char *status)
{
    waiter w;
    waiter_init(&w);
    eng_tasks_list(e, "sales", status, 100, on_json, &w);
    return waiter_take(&w, NULL);
}

/* The id of the first task in a list answer (owned). */
static char *first_id(const char *json)
{
    json_object *o = json_tokener_parse(json), *a, *v;
    char *s = NULL;
    if (o && json_object_object_get_ex(o, "tasks", &a) && json_object_array_length(a) &&
        json_object_object_get_ex(json_object_array_get_idx(a, 0), "id", &v))
        s = jd_xstrdup(json_object_get_string(v));
    json_object_put(o);
    return s;
}

static int setup(void **state)
{
    return fixture_setup(state, "/tmp/jd-tasks-XXXXXX", true);
}

static void test_task_life(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    char *j = NULL;
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    assert_int_equal(publish(e), JD_OK);
    assert_int_equal(track(e, "u1", "Trial Started", "m1", T0), JD_OK);
    char *all = list(e, NULL), *id = first_id(all);
    assert_non_null(id);
    assert_non_null(strstr(all, "\"title\":\"Call them (trial)\""));
    assert_non_null(strstr(all, "\"status\":\"open\",\"person\":\"u1\",\"journey\":\"trial\",\"version\":1,\"node\":\"call\","
                                "\"created_at\":\"2026-01-01T00:00:00.000Z\""));
    free(all);

    assert_int_equal(task_call(e, "claim", id, "ann", NULL, T0 + JD_MIN, &j), JD_OK);
    assert_non_null(strstr(j, "\"claimed_at\":\"2026-01-01T00:01:00.000Z\""));
    free(j);
    assert_int_equal(task_call(e, "claim", id, "bob", NULL, T0 + 2 * JD_MIN, &j), JD_EBUSY);
    assert_non_null(strstr(j, "is claimed by 'ann'"));
    free(j);
    /* not won: the wait's condition is false, the person stays */
    assert_int_equal(task_call(e, "complete", id, NULL, "lost", T0 + JD_HOUR, &j), JD_OK);
    assert_non_null(strstr(j, "\"status\":\"done\""));
    assert_non_null(strstr(j, "\"completed_at\":\"2026-01-01T01:00:00.000Z\""));
    free(j);
    assert_int_equal(task_call(e, "complete", id, NULL, "won", T0 + JD_HOUR, &j), JD_EBUSY);
    free(j);
    char *w1 = where(e, "u1");
    assert_non_null(strstr(w1, "\"waiting_for\":\"event:Task Completed\""));
    free(w1);

    /* a second person, whose task is won: the wait lets them through */
    assert_int_equal(track(e, "u2", "Trial Started", "m2", T0 + 2 * JD_HOUR), JD_OK);
    char *open = list(e, "open"), *id2 = first_id(open);
    free(open);
    assert_non_null(id2);
    assert_int_equal(task_call(e, "complete", id2, "cy", "won", T0 + 3 * JD_HOUR, &j), JD_OK);
    free(j);
    char *w2 = where(e, "u2");
    assert_non_null(strstr(w2, "\"state\":\"exited\""));   /* won: the wait let them through to the exit */
    free(w2);
    /* unknown and malformed ids */
    assert_int_equal(task_call(e, NULL, "0-0000000000000001", NULL, NULL, 0, &j), JD_ENOTFOUND);
    free(j);
    assert_int_equal(task_call(e, NULL, "8-0000000000000001", NULL, NULL, 0, &j), JD_ENOTFOUND);   /* 8 partitions */
    free(j);
    assert_int_equal(task_call(e, "claim", "x", "ann", NULL, 0, &j), JD_ENOTFOUND);
    free(j);
    assert_int_equal(task_call(e, "claim", id, NULL, NULL, 0, &j), JD_EINVAL);
    free(j);
    char *before = list(e, NULL);
    eng_close(e);

    /* clean restart: the snapshot holds them */
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    char *after = list(e, NULL);
    assert_string_equal(after, before);
    free(after);
    eng_close(e);
    /* from the log alone */
    char *cmd = jd_strfmt("rm -rf %s/snapshot", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    eng_recovery rec;
    assert_int_equal(eng_open(&e, &f->o, &rec, &err), JD_OK);
    assert_int_equal(rec.snapshot_lsn, 0);
    after = list(e, NULL);
    assert_string_equal(after, before);
    free(after);
    free(before);
    eng_close(e);
    free(id);
    free(id2);
}

static void test_max_open(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    f->o.partitions = 1;
    f->o.tasks_max_open = 2;
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    assert_int_equal(publish(e), JD_OK);
    assert_int_equal(track(e, "a", "Trial Started", "m1", T0), JD_OK);
    assert_int_equal(track(e, "b", "Trial Started", "m2", T0), JD_OK);
    assert_int_equal(track(e, "c", "Trial Started", "m3", T0), JD_OK);
    char *all = list(e, NULL);
    json_object *o = json_tokener_parse(all), *a;
    assert_true(json_object_object_get_ex(o, "tasks", &a));
    assert_int_equal(json_object_array_length(a), 2);
    json_object_put(o);
    free(all);
    eng_stats s;
    eng_get_stats(e, &s);
    assert_int_equal(s.tasks_dropped, 1);
    eng_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_task_life, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_max_open, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
