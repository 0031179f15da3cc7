/* tests/unit/engine/fixture.h -- what the engine tests share: a waiter that
 * turns the engine's callbacks into a blocking call, submitting a parsed body,
 * the reads every file makes, and a fixture that owns a temporary data folder.
 *
 *   time     T0 (2026-01-01T00:00:00Z)
 *   waiter   waiter_init / waiter_release / waiter_wait; callbacks on_done
 *            (eng_submit), on_json (eng_json_fn), on_read (eng_read_fn);
 *            waiter_take waits, releases and hands back the JSON (owned)
 *   writes   submit_body (one transaction from a Segment body), track
 *   calls    journey_change (eng_journey_change, waited for)
 *   reads    where (the person's journeys)
 *   fixture  fixture_setup (real or virtual clock) / fixture_teardown, which
 *            also removes the "-copy" and "-b" folders a test makes beside it
 *
 * Header-only (static inline functions): the Makefile builds each test file
 * alone, with -Itests/unit, so include it as "engine/fixture.h".
 */
#ifndef JOURNEYD_TEST_ENGINE_FIXTURE_H
#define JOURNEYD_TEST_ENGINE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "journeyd/engine.h"

static const int64_t T0 = INT64_C(1767225600000000);   /* 2026-01-01T00:00:00Z */

/* ---- waiter: one engine call answered on another thread ------------------------ */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int             done, rc;
    uint64_t        lsn;
    char           *json;   /* owned */
} waiter;

static inline void waiter_init(waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static inline void waiter_release(waiter *w)
{
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->json);
}

static inline void waiter_wait(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* Waits, releases w and returns its JSON (owned, NULL if none); *rc its status. */
static inline char *waiter_take(waiter *w, int *rc)
{
    waiter_wait(w);
    char *json = w->json;
    w->json = NULL;
    if (rc) *rc = w->rc;
    waiter_release(w);
    return json;
}

static inline void waiter_signal(waiter *w, int rc, uint64_t lsn, char *json)
{
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->lsn = lsn;
    w->json = json;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static inline void on_json(void *ctx, int rc, const jd_err *err, const char *json, size_t n)
{
    (void)err;
    waiter_signal(ctx, rc, 0, json ? jd_xstrndup(json, n) : NULL);
}

static inline void on_done(void *ctx, int status, const jd_err *err, uint64_t lsn)
{
    (void)err;
    waiter_signal(ctx, status, lsn, NULL);
}

static inline void on_read(void *ctx, int rc, const char *json, size_t n)
{
    waiter_signal(ctx, rc, 0, rc == JD_OK ? jd_xstrndup(json, n) : NULL);
}

/* ---- writes and reads ------------------------------------------------------------ */

/* Submits t and waits for its acknowledgement; returns the status. */
static inline int submit_txn(eng *e, eng_txn *t)
{
    waiter w;
    waiter_init(&w);
    eng_submit(e, t, on_done, &w);
    int rc;
    free(waiter_take(&w, &rc));
    return rc;
}

/* Parses body (received at `at`) and submits its messages as one transaction;
 * returns the status. A parse error fails the test. */
static inline int submit_body(eng *e, ingest_route route, const char *body, int64_t at)
{
    ingest_limits lim;
    ingest_limits_default(&lim);
    ingest_batch *b = NULL;
    jd_err err;
    int rc = ingest_parse(&lim, route, body, strlen(body), at, NULL, NULL, &b, &err);
    if (rc != JD_OK) fail_msg("parse: %s at %s", err.msg, err.where);
    eng_txn *t = eng_txn_create();
    for (size_t i = 0; i < b->n; i++) eng_txn_add_event(t, e, &b->msgs[i]);
    ingest_batch_destroy(b);
    return submit_txn(e, t);
}

static inline int track(eng *e, const char *user, const char *event, const char *msg_id, int64_t at)
{
    char *body = jd_strfmt("{\"userId\":\"%s\",\"event\":\"%s\",\"messageId\":\"%s\"}", user, event, msg_id);
    int rc = submit_body(e, INGEST_ROUTE_TRACK, body, at);
    free(body);
    return rc;
}

/* eng_journey_change, waited for: returns the status; *json the answer
 * (owned, may be NULL) when json is not NULL, else it is dropped. */
static inline int journey_change(eng *e, const eng_journey_req *req, char **json)
{
    waiter w;
    waiter_init(&w);
    eng_journey_change(e, req, on_json, &w);
    int rc;
    char *j = waiter_take(&w, &rc);
    if (json) *json = j;
    else free(j);
    return rc;
}

/* The person's journeys (owned), or NULL. */
static inline char *where(eng *e, const char *who)
{
    waiter w;
    waiter_init(&w);
    eng_profile_journeys(e, who, on_json, &w);
    return waiter_take(&w, NULL);
}

/* ---- fixture: a data folder per test ---------------------------------------------- */

typedef struct fixture {
    char      dir[64];
    jd_vclock vc;        /* with a virtual clock only */
    eng_opts  o;
} fixture;

/* tmpl is mkdtemp's ("/tmp/jd-x-XXXXXX"). With virtual, the engine reads
 * f->vc (set to T0), ticks every ms and keeps 64 recent intents. */
static inline int fixture_setup(void **state, const char *tmpl, bool virtual)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s", tmpl);
    if (!mkdtemp(f->dir)) return -1;
    f->o = (eng_opts){ .data_dir = f->dir, .partitions = 8, .shards = 2, .max_pending = 1000,
                       .snapshot_every = 1000000, .dedupe_window_us = 24 * JD_HOUR, .dedupe_max_entries = 4096,
                       .log = { .segment_bytes = 1 << 20 } };
    if (virtual) {
        jd_vclock_init(&f->vc, (uint64_t)T0);
        f->o.tick_us = 1000;
        f->o.recent_intents = 64;
        f->o.clock = &f->vc.clock;
    }
    prof_limits_default(&f->o.prof);
    *state = f;
    return 0;
}

static inline int fixture_teardown(void **state)
{
    fixture *f = *state;
    char *cmd = jd_strfmt("rm -rf %s %s-copy %s-b", f->dir, f->dir, f->dir);
    int rc = system(cmd);
    free(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

#endif
