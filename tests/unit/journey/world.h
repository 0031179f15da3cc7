/* tests/unit/journey/world.h -- what the journey runtime tests share: a
 * virtual clock and a "world", one partition's registry + prof_store + host
 * driven the way a shard drives them (include/journeyd/runtime.h).
 *
 *   time     ts("2026-...Z"), DAY, HOUR, MIN, T0 (a Monday, 15:00 UTC; a file
 *            may #define its own T0 before the include)
 *   world    world_init / world_init_consent / world_release; every record
 *            gets the next lsn (w->lsn); the host's intents and exits are
 *            recorded in w->intents and w->exits (MAXREC each) to assert on
 *   records  control / publish (registry, then host), feed / track / identify
 *            (clock, then profile, then host), advance (clock only)
 *   reading  stats (asserts the counters exist), stats_or_zero, assert_intent,
 *            person / field (the person's journeys as JSON), encode_all /
 *            decode_all / restore (a snapshot into a fresh world)
 *
 * Several worlds may live side by side (test_host_merge.c has two partitions).
 * A file that tests below the host (test_instance.c) defines WORLD_CLOCK_ONLY
 * first and gets the time part alone.
 * Header-only (static inline functions): the Makefile builds each test file
 * alone, with -Itests/unit, so include it as "journey/world.h". No sleeps:
 * every time is an int64 the test passes in.
 */
#ifndef JOURNEYD_TEST_JOURNEY_WORLD_H
#define JOURNEYD_TEST_JOURNEY_WORLD_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "journeyd/base.h"

/* ---- time ------------------------------------------------------------------ */

static inline int64_t ts(const char *s)
{
    int64_t us = 0;
    assert_int_equal(jd_time_parse(s, strlen(s), &us), JD_OK);
    return us;
}

#define DAY  ((int64_t)JD_DAY)
#define HOUR ((int64_t)JD_HOUR)
#define MIN  ((int64_t)JD_MIN)
#ifndef T0
#define T0   ts("2026-03-02T15:00:00Z")   /* a Monday */
#endif

#ifndef WORLD_CLOCK_ONLY

#include <json-c/json.h>

#include "journeyd/ingest.h"
#include "journeyd/journey.h"
#include "journeyd/profile.h"
#include "journeyd/runtime.h"

/* ---- the world: registry + profiles + host, and what the host reported -------- */

#define MAXREC 64

typedef struct intent_rec {
    uint64_t id, lsn;
    char journey[32], node[32], key[32];
    uint32_t version;
    int64_t at;
} intent_rec;

typedef struct exit_rec {
    char journey[32], key[32], node[32];   /* node: the last one, "-" if none */
    jrn_end why;
    int64_t at;
} exit_rec;

typedef struct world {
    jrn_reg *reg;
    prof_store *profiles;
    jrn_host *h;
    uint64_t lsn;
    intent_rec intents[MAXREC]; size_t nintents;
    exit_rec exits[MAXREC];     size_t nexits;
    char json[4096];
} world;

static inline void copy(char *dst, size_t cap, const char *p, size_t n)
{
    snprintf(dst, cap, "%.*s", (int)n, p);
}

static inline void on_intent(void *self, const jrn_intent *it)
{
    world *w = self;
    assert_true(w->nintents < MAXREC);
    intent_rec *r = &w->intents[w->nintents++];
    r->id = it->id;
    r->lsn = it->lsn;
    r->version = it->version;
    r->at = it->at_us;
    copy(r->journey, sizeof r->journey, it->journey->id, strlen(it->journey->id));
    copy(r->node, sizeof r->node, it->node->id, strlen(it->node->id));
    copy(r->key, sizeof r->key, it->key.p, it->key.n);
}

static inline void on_exit_(void *self, const jrn_journey *j, uint32_t version, jd_str key, uint32_t last_node,
                            jrn_end why, const jd_err *err, int64_t now)
{
    world *w = self;
    assert_true(w->nexits < MAXREC);
    exit_rec *r = &w->exits[w->nexits++];
    /* a merge may end an instance of a version this registry lacks */
    const jrn_doc *doc = version >= 1 && version <= j->nversions ? j->versions[version - 1]->doc : NULL;
    const char *node = doc && last_node < doc->nnodes ? doc->nodes[last_node].id : "-";
    copy(r->journey, sizeof r->journey, j->id, strlen(j->id));
    copy(r->key, sizeof r->key, key.p, key.n);
    copy(r->node, sizeof r->node, node, strlen(node));
    r->why = why;
    r->at = now;
    (void)err;
}

/* consent: the store's consent policy (borrowed; NULL: none). */
static inline void world_init_consent(world *w, int64_t start, const jd_consent_cfg *consent)
{
    memset(w, 0, sizeof *w);
    prof_limits pl;
    prof_limits_default(&pl);
    pl.consent = consent;
    w->reg = jrn_reg_create(NULL);
    w->profiles = prof_store_create(&pl);
    jrn_host_out out = { .self = w, .intent = on_intent, .exit = on_exit_ };
    w->h = jrn_host_create(w->reg, w->profiles, start, &out);
}

static inline void world_init(world *w, int64_t start) { world_init_consent(w, start, NULL); }

static inline void world_release(world *w)
{
    jrn_host_destroy(w->h);
    prof_store_destroy(w->profiles);
    jrn_reg_destroy(w->reg);
}

/* ---- records ------------------------------------------------------------------- */

/* A control record through the registry, then the host told, as a shard does. */
static inline int control(world *w, jrn_op op, const char *id, const char *text, int64_t at)
{
    jrn_ctl c = { op, id, text, text ? strlen(text) : 0, "test" };
    const jrn_journey *j = NULL;
    jrn_status was = 0;
    jd_err err;
    jd_err_clear(&err);
    int rc = jrn_reg_apply(w->reg, &c, at, &j, &was, &err);
    if (rc != JD_OK) return rc;
    if (jrn_reg_last_segment(w->reg)) jrn_host_segment_changed(w->h, jrn_reg_last_segment(w->reg), at, ++w->lsn);
    else jrn_host_journey_changed(w->h, j, was, at, ++w->lsn);
    return JD_OK;
}

static inline void publish(world *w, const char *id, const char *text, int64_t at)
{
    int rc = control(w, JRN_OP_PUBLISH, id, text, at);
    assert_int_equal(rc, JD_OK);
}

/* One record: the clock first (due waits fire), then the profile, then the host. */
static inline void feed(world *w, ingest_type type, const char *key, const char *name, const char *json, int64_t at)
{
    uint64_t lsn = ++w->lsn;
    ingest_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.timestamp_us = ev.received_us = at;
    ev.user_id = (jd_str){ key, (uint32_t)strlen(key) };
    ev.message_id = JD_STR_LIT("m");
    if (name) ev.event = (jd_str){ name, (uint32_t)strlen(name) };
    ev.json = (jd_str){ json, (uint32_t)strlen(json) };
    jd_err err;
    jd_err_clear(&err);
    jrn_host_advance(w->h, at, lsn);
    assert_int_equal(prof_apply(w->profiles, &ev, &err), JD_OK);
    jrn_host_event(w->h, &ev, lsn, at);
}

/* props, traits: JSON text (props may be NULL: {}). */
static inline void track(world *w, const char *key, const char *name, const char *props, int64_t at)
{
    snprintf(w->json, sizeof w->json, "{\"type\":\"track\",\"userId\":\"%s\",\"event\":\"%s\",\"properties\":%s}", key,
             name, props ? props : "{}");
    feed(w, INGEST_TRACK, key, name, w->json, at);
}

static inline void identify(world *w, const char *key, const char *traits, int64_t at)
{
    snprintf(w->json, sizeof w->json, "{\"type\":\"identify\",\"userId\":\"%s\",\"traits\":%s}", key, traits);
    feed(w, INGEST_IDENTIFY, key, NULL, w->json, at);
}

static inline void advance(world *w, int64_t at) { jrn_host_advance(w->h, at, ++w->lsn); }

/* ---- reading ------------------------------------------------------------------- */

/* Counters of (journey, version); asserts the host has them. */
static inline const jrn_vstats *stats(const world *w, const char *id, uint32_t version)
{
    const jrn_journey *j = jrn_reg_find(w->reg, id);
    assert_non_null(j);
    const jrn_vstats *st = jrn_host_stats(w->h, j->index, version);
    assert_non_null(st);
    return st;
}

/* Counters of (journey, version); zeros when the host has none yet. */
static inline jrn_vstats stats_or_zero(const world *w, const char *id, uint32_t version)
{
    const jrn_journey *j = jrn_reg_find(w->reg, id);
    assert_non_null(j);
    const jrn_vstats *st = jrn_host_stats(w->h, j->index, version);
    jrn_vstats z;
    memset(&z, 0, sizeof z);
    return st ? *st : z;
}

static inline void assert_intent(const world *w, size_t k, const char *key, const char *node, int64_t at)
{
    assert_true(k < w->nintents);
    const intent_rec *r = &w->intents[k];
    if (strcmp(r->key, key) != 0 || strcmp(r->node, node) != 0 || r->at != at) {
        char t[JD_TIME_TEXT];
        jd_time_format(r->at, t);
        fprintf(stderr, "intent %zu: got %s %s at %s, want %s %s\n", k, r->key, r->node, t, key, node);
    }
    assert_string_equal(r->key, key);
    assert_string_equal(r->node, node);
    assert_int_equal(r->at, at);
}

/* The person's journeys as JSON (owned), or NULL when the host never saw them. */
static inline json_object *person(const world *w, const char *key)
{
    jd_buf b;
    jd_buf_init(&b, 1u << 20);
    int rc = jrn_host_person_json(w->h, key, strlen(key), &b);
    json_object *o = rc == JD_OK ? json_tokener_parse(b.data) : NULL;
    if (rc == JD_OK) assert_non_null(o);
    jd_buf_release(&b);
    return o;
}

static inline const char *field(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

/* ---- snapshots ----------------------------------------------------------------- */

/* Encodes w's registry, profiles and host into rb, pb, hb (the caller
 * releases them). */
static inline void encode_all(const world *w, jd_buf *rb, jd_buf *pb, jd_buf *hb)
{
    jd_buf_init(rb, 1u << 24);
    jd_buf_init(pb, 1u << 24);
    jd_buf_init(hb, 1u << 24);
    assert_int_equal(jrn_reg_encode(w->reg, rb), JD_OK);
    assert_int_equal(prof_store_encode(w->profiles, pb), JD_OK);
    assert_int_equal(jrn_host_encode(w->h, hb), JD_OK);
}

/* A fresh w2 (released by the caller, also on failure) from registry and
 * profile bytes that must decode and host bytes that may not: returns
 * jrn_host_decode's code. */
static inline int decode_all(world *w2, const jd_buf *rb, const jd_buf *pb, const void *host, size_t n, uint64_t lsn)
{
    jd_err err;
    jd_err_clear(&err);
    world_init(w2, 0);
    assert_int_equal(jrn_reg_decode(w2->reg, rb->data, rb->len, &err), JD_OK);
    assert_int_equal(prof_store_decode(w2->profiles, pb->data, pb->len, &err), JD_OK);
    w2->lsn = lsn;
    return jrn_host_decode(w2->h, host, n, &err);
}

/* w through a snapshot into a fresh w2, as a restart does. */
static inline void restore(const world *w, world *w2)
{
    jd_buf rb, pb, hb;
    encode_all(w, &rb, &pb, &hb);
    assert_int_equal(decode_all(w2, &rb, &pb, hb.data, hb.len, w->lsn), JD_OK);
    jd_buf_release(&rb);
    jd_buf_release(&pb);
    jd_buf_release(&hb);
}

#endif /* WORLD_CLOCK_ONLY */
#endif /* JOURNEYD_TEST_JOURNEY_WORLD_H */
