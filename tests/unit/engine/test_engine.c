/* tests/unit/engine/test_engine.c -- the write path in one process, with the real
 * ingest parser, log, shards and profiles: acknowledgement after fsync, reads
 * after writes, dedupe, restart from snapshot, recovery from the log alone (a
 * crash), a refused group on a failing disk, back-pressure, periodic snapshots. */
#include <errno.h>
#include <unistd.h>

#include "engine/fixture.h"

/* Parses a batch body and submits it as one transaction; returns the status. */
static int submit(eng *e, const char *body)
{
    return submit_body(e, INGEST_ROUTE_BATCH, body, T0);
}

/* Returns the profile JSON (owned) or NULL. */
static char *get(eng *e, const char *id)
{
    waiter w;
    waiter_init(&w);
    eng_profile_get(e, id, on_read, &w);
    return waiter_take(&w, NULL);
}

static char *track_batch(int first, int n, const char *user)
{
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    jd_buf_adds(&b, "{\"batch\":[");
    for (int i = 0; i < n; i++)
        jd_buf_addf(&b, "%s{\"type\":\"track\",\"event\":\"Viewed\",\"userId\":\"%s%d\",\"messageId\":\"m-%d\"}",
                    i ? "," : "", user, user[0] ? 0 : first + i, first + i);
    jd_buf_adds(&b, "]}");
    return jd_buf_detach(&b, NULL);
}

static int setup(void **state)
{
    return fixture_setup(state, "/tmp/jd-engine-XXXXXX", false);
}

static void test_ack_then_read_your_write(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    assert_int_equal(submit(e, "{\"batch\":[{\"type\":\"identify\",\"userId\":\"u1\",\"anonymousId\":\"a1\","
                               "\"traits\":{\"plan\":\"pro\"},\"messageId\":\"i1\"},"
                               "{\"type\":\"track\",\"userId\":\"u1\",\"event\":\"Signed Up\",\"messageId\":\"t1\"}]}"),
                     JD_OK);
    char *json = get(e, "u1");
    assert_non_null(json);
    assert_non_null(strstr(json, "\"plan\":\"pro\""));
    assert_non_null(strstr(json, "\"Signed Up\":1"));
    assert_non_null(strstr(json, "\"total\":2"));
    free(json);
    json = get(e, "a1");   /* the anonymousId finds the same profile (fan-out read) */
    assert_non_null(json);
    assert_non_null(strstr(json, "\"userId\":\"u1\""));
    free(json);
    assert_null(get(e, "nobody"));
    eng_stats s;
    eng_get_stats(e, &s);
    assert_int_equal(s.events_accepted, 2);
    assert_int_equal(s.durable_lsn, 4);   /* the identify merged a1 into u1: MOVE_OUT, MOVE_IN */
    assert_int_equal(s.merges, 1);
    eng_close(e);
}

/* Anonymous browsing on many devices (spread over partitions), then signup,
 * then events with only the old anonymousId: one profile per person, the
 * same after a crash (log alone) and after a clean restart (snapshot). */
static char *person_batch(int i, const char *phase)
{
    if (strcmp(phase, "browse") == 0)
        return jd_strfmt("{\"batch\":[{\"type\":\"track\",\"event\":\"Viewed\",\"anonymousId\":\"anon-%d\",\"messageId\":\"v1-%d\"},"
                         "{\"type\":\"track\",\"event\":\"Viewed\",\"anonymousId\":\"anon-%d\",\"messageId\":\"v2-%d\"}]}", i, i, i, i);
    if (strcmp(phase, "signup") == 0)
        return jd_strfmt("{\"batch\":[{\"type\":\"identify\",\"userId\":\"user-%d\",\"anonymousId\":\"anon-%d\","
                         "\"traits\":{\"plan\":\"pro\"},\"messageId\":\"s-%d\"}]}", i, i, i);
    return jd_strfmt("{\"batch\":[{\"type\":\"track\",\"event\":\"Bought\",\"anonymousId\":\"anon-%d\",\"messageId\":\"b-%d\"}]}", i, i);
}

static void check_person(eng *e, int i)
{
    char user[32], anon[32];
    snprintf(user, sizeof user, "user-%d", i);
    snprintf(anon, sizeof anon, "anon-%d", i);
    char *a = get(e, user), *b = get(e, anon);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);                       /* either id finds the one profile */
    assert_non_null(strstr(a, "\"track\":3"));       /* two views before signup, one purchase after */
    assert_non_null(strstr(a, "\"Bought\":1"));
    assert_non_null(strstr(a, "\"plan\":\"pro\""));
    char want[64];
    snprintf(want, sizeof want, "\"anonymousIds\":[\"%s\"]", anon);
    assert_non_null(strstr(a, want));
    free(a);
    free(b);
}

static void test_merge_across_partitions_and_restarts(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    enum { N = 40 };
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    static const char *const phases[] = { "browse", "signup", "buy" };
    for (size_t ph = 0; ph < 3; ph++)
        for (int i = 0; i < N; i++) {
            char *b = person_batch(i, phases[ph]);
            assert_int_equal(submit(e, b), JD_OK);
            free(b);
        }
    for (int i = 0; i < N; i++) check_person(e, i);
    eng_stats s;
    eng_get_stats(e, &s);
    assert_int_equal(s.merges, N);
    char copy[80];
    snprintf(copy, sizeof copy, "%s-copy", f->dir);
    char *cmd = jd_strfmt("cp -r %s %s", f->dir, copy);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    eng_close(e);   /* writes a snapshot */

    eng_opts o = f->o;
    o.data_dir = copy;   /* the crash: the log alone */
    assert_int_equal(eng_open(&e, &o, NULL, &err), JD_OK);
    for (int i = 0; i < N; i++) check_person(e, i);
    char *b = person_batch(N + 1, "buy");   /* routing still knows nobody else */
    assert_int_equal(submit(e, b), JD_OK);
    free(b);
    eng_close(e);
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);   /* the snapshot */
    for (int i = 0; i < N; i++) check_person(e, i);
    eng_close(e);
    cmd = jd_strfmt("rm -rf %s", copy);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

/* A second userId on one device: refused by identity.max_user_ids, and
 * shown on both profiles. */
static void test_refused_merge_is_visible(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    assert_int_equal(submit(e, "{\"batch\":[{\"type\":\"identify\",\"userId\":\"u1\",\"anonymousId\":\"dev\",\"messageId\":\"r1\"},"
                               "{\"type\":\"identify\",\"userId\":\"u2\",\"anonymousId\":\"dev\",\"messageId\":\"r2\"}]}"),
                     JD_OK);
    char *u1 = get(e, "u1"), *u2 = get(e, "u2"), *dev = get(e, "dev");
    assert_non_null(strstr(u2, "\"mergesRefused\":[{\"with\":\"u1\""));
    assert_non_null(strstr(u2, "identity.max_user_ids (1)"));
    assert_non_null(strstr(u1, "\"mergesRefused\":[{\"with\":\"u2\""));
    assert_string_equal(dev, u1);                     /* the device stays with the first user */
    assert_null(strstr(u2, "\"dev\""));               /* and is not listed on the second */
    eng_stats s;
    eng_get_stats(e, &s);
    assert_int_equal(s.merges_refused, 1);
    free(u1);
    free(u2);
    free(dev);
    eng_close(e);
}

static void test_duplicates_dropped_and_remembered_across_restart(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    char *b = track_batch(0, 1, "dup");
    assert_int_equal(submit(e, b), JD_OK);
    assert_int_equal(submit(e, b), JD_OK);          /* acknowledged, not applied */
    char *json = get(e, "dup0");
    assert_non_null(strstr(json, "\"track\":1"));
    free(json);
    eng_stats s;
    eng_get_stats(e, &s);
    assert_int_equal(s.events_duplicate, 1);
    eng_close(e);                                   /* snapshot holds the dedupe window */
    eng_recovery rec;
    assert_int_equal(eng_open(&e, &f->o, &rec, &err), JD_OK);
    assert_int_equal(rec.snapshot_lsn, 1);
    assert_int_equal(rec.replayed, 0);
    assert_int_equal(submit(e, b), JD_OK);
    json = get(e, "dup0");
    assert_non_null(strstr(json, "\"track\":1"));
    free(json);
    eng_close(e);
    free(b);
}

/* A crash: the data folder copied while the engine runs holds the log but no
 * snapshot; opening the copy must replay the log to the same state. */
static void test_recovery_from_log_alone(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    for (int i = 0; i < 20; i++) {
        char *b = track_batch(i * 50, 50, "");
        assert_int_equal(submit(e, b), JD_OK);
        free(b);
    }
    char *before = get(e, "777");
    assert_non_null(before);
    char copy[80];
    snprintf(copy, sizeof copy, "%s-copy", f->dir);
    char *cmd = jd_strfmt("cp -r %s %s", f->dir, copy);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    eng_close(e);

    eng_opts o = f->o;
    o.data_dir = copy;
    eng_recovery rec;
    assert_int_equal(eng_open(&e, &o, &rec, &err), JD_OK);
    assert_int_equal(rec.snapshot_lsn, 0);
    assert_int_equal(rec.replayed, 1000);
    assert_int_equal(rec.profiles, 1000);
    char *after = get(e, "777");
    assert_string_equal(before, after);
    /* every messageId is remembered after replay */
    char *b = track_batch(777, 1, "");
    assert_int_equal(submit(e, b), JD_OK);
    free(b);
    eng_stats s;
    eng_get_stats(e, &s);
    assert_int_equal(s.events_duplicate, 1);
    eng_close(e);
    free(before);
    free(after);
    cmd = jd_strfmt("rm -rf %s", copy);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

/* A disk that fails writes on demand. */
typedef struct faulty { int fail_writes; } faulty;
static ssize_t faulty_write(void *self, int fd, const void *p, size_t n)
{
    faulty *fl = self;
    if (fl->fail_writes) { errno = ENOSPC; return -1; }
    return write(fd, p, n);
}
static int faulty_sync(void *self, int fd) { (void)self; return fdatasync(fd); }

static void test_disk_full_refuses_then_recovers(void **state)
{
    fixture *f = *state;
    faulty fl = { 0 };
    log_io io = { faulty_write, faulty_sync, &fl };
    eng_opts o = f->o;
    o.log.io = &io;
    eng *e;
    jd_err err;
    assert_int_equal(eng_open(&e, &o, NULL, &err), JD_OK);
    char *good = track_batch(0, 3, ""), *bad = track_batch(100, 3, "");
    assert_int_equal(submit(e, good), JD_OK);
    fl.fail_writes = 1;
    assert_int_equal(submit(e, bad), JD_EIO);        /* refused: nothing stored */
    assert_int_equal(submit(e, "{\"batch\":[{\"type\":\"identify\",\"userId\":\"ux\",\"anonymousId\":\"0\"}]}"), JD_EIO);
    char *json = get(e, "0");                        /* reads still served, and the refused */
    assert_non_null(json);                           /* merge was undone in the directory too */
    assert_null(strstr(json, "ux"));
    free(json);
    assert_null(get(e, "100"));
    fl.fail_writes = 0;
    assert_int_equal(submit(e, bad), JD_OK);         /* dedupe was undone: the retry is taken */
    json = get(e, "101");
    assert_non_null(strstr(json, "\"track\":1"));
    free(json);
    eng_stats s;
    eng_get_stats(e, &s);
    assert_int_equal(s.durable_lsn, 6);              /* the refused group's lsns were reused */
    assert_int_equal(s.txns_refused_io, 2);
    assert_false(s.log_failed);
    eng_close(e);
    free(good);
    free(bad);
}

static void test_periodic_snapshot_trims_log(void **state)
{
    fixture *f = *state;
    eng_opts o = f->o;
    o.snapshot_every = 200;
    o.log.segment_bytes = 8192;
    eng *e;
    jd_err err;
    assert_int_equal(eng_open(&e, &o, NULL, &err), JD_OK);
    for (int i = 0; i < 30; i++) {
        char *b = track_batch(i * 20, 20, "");
        assert_int_equal(submit(e, b), JD_OK);
        free(b);
    }
    /* Snapshots complete asynchronously; nudge the committer until one is sealed. */
    eng_stats s;
    for (int tries = 0; tries < 500; tries++) {
        eng_get_stats(e, &s);
        if (s.snapshots > 0) break;
        usleep(10000);
    }
    assert_true(s.snapshots > 0);
    assert_true(s.snapshot_lsn >= 200);
    char *before = get(e, "599");
    eng_close(e);
    eng_recovery rec;
    assert_int_equal(eng_open(&e, &o, &rec, &err), JD_OK);
    assert_true(rec.log.first_lsn > 1);              /* old segments were removed */
    assert_int_equal(rec.profiles, 600);
    char *after = get(e, "599");
    assert_string_equal(before, after);
    eng_close(e);
    free(before);
    free(after);
}

static void test_partitions_fixed_per_data_folder(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    assert_int_equal(eng_open(&e, &f->o, NULL, &err), JD_OK);
    eng_close(e);
    eng_opts o = f->o;
    o.partitions = 16;
    assert_int_equal(eng_open(&e, &o, NULL, &err), JD_EINVAL);
    assert_non_null(strstr(err.msg, "engine.partitions is 16"));
    o = f->o;
    o.shards = 3;                                    /* shards may change between runs */
    assert_int_equal(eng_open(&e, &o, NULL, &err), JD_OK);
    eng_close(e);
}

/* An fsync that waits at a gate, so a transaction can be held in flight. */
typedef struct gate { pthread_mutex_t mu; pthread_cond_t cv; int open, entered; } gate;
static ssize_t gate_write(void *self, int fd, const void *p, size_t n) { (void)self; return write(fd, p, n); }
static int gate_sync(void *self, int fd)
{
    gate *g = self;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return fdatasync(fd);
}

static void test_backpressure_when_pending_is_full(void **state)
{
    fixture *f = *state;
    gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0 };
    log_io io = { gate_write, gate_sync, &g };
    eng_opts o = f->o;
    o.max_pending = 1;
    o.log.io = &io;
    eng *e;
    jd_err err;
    assert_int_equal(eng_open(&e, &o, NULL, &err), JD_OK);
    g.open = 0;   /* (recovery may fsync; close the gate only now) */

    ingest_limits lim;
    ingest_limits_default(&lim);
    ingest_batch *b;
    const char *body = "{\"batch\":[{\"type\":\"track\",\"event\":\"E\",\"userId\":\"held\"}]}";
    assert_int_equal(ingest_parse(&lim, INGEST_ROUTE_BATCH, body, strlen(body), T0, NULL, NULL, &b, &err), JD_OK);
    eng_txn *t1 = eng_txn_create(), *t2 = eng_txn_create();
    eng_txn_add_event(t1, e, &b->msgs[0]);
    eng_txn_add_event(t2, e, &b->msgs[0]);
    ingest_batch_destroy(b);
    waiter w1, w2;
    waiter_init(&w1);
    waiter_init(&w2);
    eng_submit(e, t1, on_done, &w1);
    pthread_mutex_lock(&g.mu);
    while (!g.entered) pthread_cond_wait(&g.cv, &g.mu);   /* t1 is inside fsync */
    pthread_mutex_unlock(&g.mu);
    eng_submit(e, t2, on_done, &w2);                      /* refused at once */
    assert_int_equal(w2.done, 1);
    assert_int_equal(w2.rc, JD_EBUSY);
    assert_int_equal(w1.done, 0);                         /* not acknowledged before fsync */
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    waiter_wait(&w1);
    assert_int_equal(w1.rc, JD_OK);
    waiter_release(&w1);
    waiter_release(&w2);
    eng_close(e);
}

/* A shard may not fall further behind than max_backlog records: the
 * committer holds requests meanwhile, and everything still gets applied. */
static void test_backlog_holds_requests(void **state)
{
    fixture *f = *state;
    eng *e;
    jd_err err;
    eng_opts o = f->o;
    o.max_backlog = 1;   /* every batch makes the committer wait for the shards */
    assert_int_equal(eng_open(&e, &o, NULL, &err), JD_OK);
    for (int i = 0; i < 30; i++) {
        char *b = track_batch(i * 20, 20, "");
        assert_int_equal(submit(e, b), JD_OK);
        free(b);
    }
    char *p = get(e, "599");
    assert_non_null(p);
    free(p);
    eng_stats s;
    eng_get_stats(e, &s);
    assert_int_equal(s.events_accepted, 600);
    assert_true(s.backlog_waits > 0);
    eng_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ack_then_read_your_write, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_merge_across_partitions_and_restarts, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_refused_merge_is_visible, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_dropped_and_remembered_across_restart, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_recovery_from_log_alone, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_refuses_then_recovers, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_periodic_snapshot_trims_log, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_partitions_fixed_per_data_folder, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_when_pending_is_full, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_backlog_holds_requests, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
