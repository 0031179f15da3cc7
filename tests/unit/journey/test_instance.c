/* tests/unit/journey/test_instance.c -- the journey instance state machine
 * (src/journey/instance.c) on a virtual clock. The test host implements jrn_io
 * with a real timer wheel (its fire callback calls jrn_on_timer), a trait map
 * (json-c), and conditions evaluated with expr_eval_bool over an activation of
 * event, profile, journey and now. Every callback is recorded (arrays to assert
 * on, and a text log compared byte for byte between two runs). No sleeps.
 * Run from the repository root (the example journeys are read from journeys/).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "journeyd/base.h"
#include "journeyd/expr.h"
#include "journeyd/instance.h"
#include "journeyd/journey.h"
#include "journeyd/timer.h"

#define WORLD_CLOCK_ONLY   /* ts(), DAY, HOUR, MIN, T0: this file has its own host */
#include "journey/world.h"

/* ---- the test host ---------------------------------------------------------- */

#define MAXI 4
#define MAXREC 256

typedef struct intent_rec { uint32_t node; uint64_t id; int64_t at; } intent_rec;
typedef struct trans_rec { uint32_t from, to; jrn_edge edge; uint32_t arm; int64_t at; } trans_rec;

typedef struct host {
    jrn_io io;
    tw_wheel *w;
    const jrn_doc *doc;
    jrn_instance inst[MAXI];
    json_object *traits;
    expr_scratch *scratch;
    jd_buf log;
    int64_t now;
    intent_rec intents[MAXREC]; size_t nintents;       /* counted past MAXREC, recorded up to it */
    trans_rec trans[MAXREC];    size_t ntrans;
    size_t nexits, nupdates, narms, ncancels;
    jrn_end why; int64_t exit_at; bool exit_err; jd_err err;
    char variant[65];
    const char *member;   /* the one segment the person is in (NULL: none) */
    char evjson[2048];
} host;

static void h_fire(tw_wheel *w, tw_entry *e, void *ctx)
{
    host *h = ctx;
    jrn_instance *in = (jrn_instance *)((char *)e - offsetof(jrn_instance, timer));
    jrn_on_timer(h->doc, in, (int64_t)tw_now(w), &h->io);
}

static int idx(host *h, const jrn_instance *in) { return (int)(in - h->inst); }

static void logf_(host *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(host *h, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    assert_int_equal(jd_buf_adds(&h->log, line), JD_OK);
}

/* The activation: event (the message JSON), profile {traits}, journey, now. */
static json_object *vars_for(host *h, const jrn_instance *in, const ingest_event *ev, int64_t now)
{
    json_object *v = json_object_new_object(), *prof = json_object_new_object();
    char t[JD_TIME_TEXT];
    if (ev && ev->json.n) {
        json_object *e = json_tokener_parse(ev->json.p);
        assert_non_null(e);
        json_object_object_add(v, "event", e);
    }
    json_object_object_add(prof, "traits", json_object_get(h->traits));
    json_object_object_add(v, "profile", prof);
    if (in) {
        json_object *j = json_object_new_object();
        jd_time_format(in->entered_us, t);
        json_object_object_add(j, "entered_at", json_object_new_string(t));
        json_object_object_add(j, "seconds_in_journey", json_object_new_int64((now - in->entered_us) / (int64_t)JD_SEC));
        json_object_object_add(j, "variant", json_object_new_string(h->variant));
        json_object_object_add(v, "journey", j);
    }
    jd_time_format(now, t);
    json_object_object_add(v, "now", json_object_new_string(t));   /* declared timestamp: parsed */
    return v;
}

static int h_eval(void *self, const jrn_instance *in, const expr_prog *p, const ingest_event *ev,
                  int64_t now, bool *out, jd_err *err)
{
    host *h = self;
    json_object *vars = vars_for(h, in, ev, now);
    expr_activation a;
    expr_activation_json(&a, vars);
    expr_scratch_reset(h->scratch);
    int rc = expr_eval_bool(p, &a, h->scratch, out, err);
    json_object_put(vars);
    logf_(h, "eval %d '%s' -> %s\n", in ? idx(h, in) : -1, expr_prog_source(p), rc ? "error" : *out ? "true" : "false");
    return rc;
}

static const char *h_trait(void *self, const char *key)
{
    host *h = self;
    json_object *v;
    if (!json_object_object_get_ex(h->traits, key, &v) || !json_object_is_type(v, json_type_string)) return NULL;
    return json_object_get_string(v);
}

static void h_arm(void *self, jrn_instance *in, int64_t when)
{
    host *h = self;
    h->narms++;
    tw_arm(h->w, &in->timer, (uint64_t)when);
    logf_(h, "arm %d %lld\n", idx(h, in), (long long)when);
}

static void h_cancel(void *self, jrn_instance *in)
{
    host *h = self;
    h->ncancels++;
    tw_cancel(h->w, &in->timer);
    logf_(h, "cancel %d\n", idx(h, in));
}

static void h_intent(void *self, const jrn_instance *in, const jrn_node *node, uint64_t id, int64_t now)
{
    host *h = self;
    if (h->nintents < MAXREC) h->intents[h->nintents] = (intent_rec){ node->index, id, now };
    h->nintents++;
    logf_(h, "intent %d %s %016llx %lld\n", idx(h, in), node->id, (unsigned long long)id, (long long)now);
}

/* Applies `set` and `unset` to the traits (tags are only logged). */
static void h_update(void *self, const jrn_instance *in, const jrn_node *node, int64_t now)
{
    host *h = self;
    h->nupdates++;
    logf_(h, "update %d %s %lld\n", idx(h, in), node->id, (long long)now);
    for (uint32_t i = 0; i < node->u.update.nops; i++) {
        const jrn_trait_op *op = &node->u.update.ops[i];
        if (op->unset) { json_object_object_del(h->traits, op->key); continue; }
        json_object *vars = vars_for(h, in, NULL, now), *val = NULL;
        expr_activation a;
        expr_val v;
        jd_err err;
        expr_activation_json(&a, vars);
        expr_scratch_reset(h->scratch);
        assert_int_equal(expr_eval(op->value, &a, h->scratch, &v, &err), JD_OK);
        if (v.kind == EXPR_BOOL) val = json_object_new_boolean(v.v.b);
        else if (v.kind == EXPR_INT) val = json_object_new_int64(v.v.i);
        else if (v.kind == EXPR_DOUBLE) val = json_object_new_double(v.v.d);
        else if (v.kind == EXPR_STRING) val = json_object_new_string_len(v.v.s.p, (int)v.v.s.n);
        json_object_put(vars);
        assert_non_null(val);
        json_object_object_add(h->traits, op->key, val);
    }
}

static void h_transition(void *self, const jrn_instance *in, uint32_t from, uint32_t to,
                         jrn_edge edge, uint32_t arm, int64_t now)
{
    host *h = self;
    if (h->ntrans < MAXREC) h->trans[h->ntrans] = (trans_rec){ from, to, edge, arm, now };
    h->ntrans++;
    if (edge == JRN_EDGE_SPLIT_VARIANT)
        snprintf(h->variant, sizeof h->variant, "%s", h->doc->nodes[from].u.split.variants[arm].name);
    logf_(h, "transition %d %s -> %s edge %d arm %u %lld\n", idx(h, in),
          from == JRN_NONE ? "-" : h->doc->nodes[from].id, to == JRN_NONE ? "-" : h->doc->nodes[to].id,
          (int)edge, arm, (long long)now);
}

static void h_exit(void *self, const jrn_instance *in, jrn_end why, const jd_err *err, int64_t now)
{
    host *h = self;
    h->nexits++;
    h->why = why;
    h->exit_at = now;
    h->exit_err = err != NULL;
    if (err) h->err = *err;
    logf_(h, "exit %d why %d at %lld err %s\n", idx(h, in), (int)why, (long long)now, err ? err->msg : "-");
}

static bool h_in_segment(void *self, const jrn_instance *in, const char *id)
{
    host *h = self;
    logf_(h, "in_segment %d %s\n", idx(h, in), id);
    return h->member && strcmp(h->member, id) == 0;
}

static void host_init(host *h, const jrn_doc *doc, int64_t start)
{
    memset(h, 0, sizeof *h);
    h->io = (jrn_io){ h, h_eval, h_trait, h_arm, h_cancel, h_intent, h_update, h_transition, h_exit, h_in_segment };
    h->w = tw_create((uint64_t)start, h_fire, h);
    h->doc = doc;
    h->traits = json_object_new_object();
    /* The examples' condition-only exit rule reads profile.traits.unsubscribed,
     * an error when the trait is absent (test_missing_trait_in_exit_rule). */
    json_object_object_add(h->traits, "unsubscribed", json_object_new_boolean(0));
    h->scratch = expr_scratch_create(1u << 16);
    jd_buf_init(&h->log, 1u << 26);
    h->now = start;
}

static void host_release(host *h)
{
    tw_destroy(h->w);
    json_object_put(h->traits);
    expr_scratch_destroy(h->scratch);
    jd_buf_release(&h->log);
}

static void set_trait_json(host *h, const char *key, const char *json)
{
    json_object_object_add(h->traits, key, json_tokener_parse(json));
}

static void advance(host *h, int64_t t)
{
    tw_advance(h->w, (uint64_t)t);
    h->now = t;
}

/* A track event (props: JSON text or NULL), valid until the next make_event. */
static ingest_event make_event(host *h, ingest_type type, const char *name, const char *props, int64_t at)
{
    int n = snprintf(h->evjson, sizeof h->evjson, "{\"type\":\"%s\",\"event\":\"%s\",\"userId\":\"u1\",\"properties\":%s}",
                     type == INGEST_TRACK ? "track" : "page", name, props ? props : "{}");
    assert_true(n > 0 && (size_t)n < sizeof h->evjson);
    ingest_event ev = { .type = type, .timestamp_us = at, .received_us = at,
                        .user_id = JD_STR_LIT("u1"), .json = { h->evjson, (uint32_t)n } };
    ev.event = (jd_str){ name, (uint32_t)strlen(name) };
    return ev;
}

/* The shard's order: timers due at or before the record's time fire first. */
static void send_event(host *h, int i, const char *name, const char *props, int64_t at)
{
    advance(h, at);
    ingest_event ev = make_event(h, INGEST_TRACK, name, props, at);
    jrn_on_event(h->doc, &h->inst[i], &ev, at, &h->io);
}

static void enter(host *h, int i, const char *key, uint64_t seq, const char *name, const char *props, int64_t at)
{
    advance(h, at);
    if (!name) { jrn_enter(h->doc, 1, &h->inst[i], (jd_str){ key, (uint32_t)strlen(key) }, seq, NULL, at, &h->io); return; }
    ingest_event ev = make_event(h, INGEST_TRACK, name, props, at);
    jrn_enter(h->doc, 1, &h->inst[i], (jd_str){ key, (uint32_t)strlen(key) }, seq, &ev, at, &h->io);
}

static uint32_t node_of(const jrn_doc *d, const char *id)
{
    const jrn_node *n = jrn_doc_node(d, id);
    assert_non_null(n);
    return n->index;
}

static void assert_intent(const host *h, size_t k, const char *node, int64_t at)
{
    assert_true(k < h->nintents);
    if (strcmp(h->doc->nodes[h->intents[k].node].id, node) != 0 || h->intents[k].at != at) {
        char t[JD_TIME_TEXT];
        jd_time_format(h->intents[k].at, t);
        fprintf(stderr, "intent %zu: got %s at %s, want %s\n", k, h->doc->nodes[h->intents[k].node].id, t, node);
    }
    assert_string_equal(h->doc->nodes[h->intents[k].node].id, node);
    assert_int_equal(h->intents[k].at, at);
}

/* ---- documents --------------------------------------------------------------- */

static jrn_doc *parse_doc(const char *name, const char *text)
{
    jrn_diags diags = { 0 };
    jrn_doc *doc = NULL;
    int rc = jrn_doc_parse(name, text, strlen(text), NULL, &doc, &diags);
    if (rc != JD_OK) {
        jd_buf b;
        jd_buf_init(&b, 1u << 20);
        jrn_diags_format(&diags, &b);
        fprintf(stderr, "%s", b.data ? b.data : "");
        jd_buf_release(&b);
    }
    jrn_diags_release(&diags);
    assert_int_equal(rc, JD_OK);
    return doc;
}

static jrn_doc *load_example(const char *path)
{
    char *text = NULL;
    size_t n = 0;
    jd_err err;
    assert_int_equal(jd_read_file(path, 1u << 20, &text, &n, &err), JD_OK);
    jrn_doc *d = parse_doc(path, text);
    free(text);
    return d;
}

/* ---- waits ------------------------------------------------------------------- */

static const char *const doc_wait3d =
    "id: wait3d\n"
    "entry: { event: Go }\n"
    "nodes:\n"
    "  w:\n"
    "    wait: 3d\n"
    "    next: s\n"
    "  s:\n"
    "    send: { channel: email, template: hi }\n";

static void test_wait_duration_fires_exactly(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_wait3d);
    host h;
    char buf[64];
    host_init(&h, d, T0);
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    jrn_instance *in = &h.inst[0];
    assert_int_equal(in->state, JRN_ST_WAITING);
    assert_int_equal(in->node, node_of(d, "w"));
    assert_true(tw_armed(&in->timer));
    assert_int_equal(in->timer.when_us, T0 + 3 * DAY);
    assert_string_equal(jrn_instance_waiting_for(d, in, buf, sizeof buf), "timer");
    assert_int_equal(h.ntrans, 1);
    assert_int_equal(h.trans[0].from, JRN_NONE);
    assert_int_equal(h.trans[0].to, node_of(d, "w"));

    advance(&h, T0 + 3 * DAY - 1);          /* one microsecond early: nothing */
    assert_int_equal(h.nintents, 0);
    assert_int_equal(in->state, JRN_ST_WAITING);

    advance(&h, T0 + 3 * DAY);
    assert_int_equal(h.nintents, 1);
    assert_intent(&h, 0, "s", T0 + 3 * DAY);
    assert_int_equal(h.nexits, 1);
    assert_int_equal(h.why, JRN_END_FINISHED);
    assert_int_equal(in->state, JRN_ST_EXITED);
    assert_int_equal(h.ntrans, 3);
    assert_int_equal(h.trans[1].edge, JRN_EDGE_WAIT_DONE);
    assert_int_equal(h.trans[2].to, JRN_NONE);
    assert_string_equal(jrn_instance_waiting_for(d, in, buf, sizeof buf), "");

    jrn_on_timer(d, in, T0 + 4 * DAY, &h.io);   /* a stale timer: ignored */
    assert_int_equal(h.nexits, 1);
    host_release(&h);
    jrn_doc_destroy(d);
}

static const char *const doc_until =
    "id: until\n"
    "entry: { event: Go }\n"
    "nodes:\n"
    "  w:\n"
    "    wait: { until: \"09:00\", days: [mon, tue, wed, thu, fri], zone_trait: timezone, default_zone: America/New_York }\n"
    "    next: s\n"
    "  s:\n"
    "    send: { channel: email, template: hi }\n";

static void run_until(const jrn_doc *d, const char *zone_json, int64_t enter_at, int64_t want)
{
    host h;
    host_init(&h, d, enter_at);
    if (zone_json) set_trait_json(&h, "timezone", zone_json);
    enter(&h, 0, "u1", 1, "Go", NULL, enter_at);
    assert_true(tw_armed(&h.inst[0].timer));
    assert_int_equal(h.inst[0].timer.when_us, want);
    advance(&h, want - 1);
    assert_int_equal(h.nintents, 0);
    advance(&h, want);
    assert_int_equal(h.nintents, 1);
    assert_intent(&h, 0, "s", want);
    host_release(&h);
}

static void test_wait_until_local_across_dst(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_until);
    /* Friday 10:00 CET -> Monday 09:00 CEST (DST began Sunday 2026-03-29) = 07:00 UTC */
    run_until(d, "\"Europe/Paris\"", ts("2026-03-27T09:00:00Z"), ts("2026-03-30T07:00:00Z"));
    /* an invalid zone trait, a non-text one, and none: the default zone (05:00 EDT -> 09:00 EDT the same Friday) */
    run_until(d, "\"Mars/Olympus\"", ts("2026-03-27T09:00:00Z"), ts("2026-03-27T13:00:00Z"));
    run_until(d, "42", ts("2026-03-27T09:00:00Z"), ts("2026-03-27T13:00:00Z"));
    run_until(d, NULL, ts("2026-03-27T09:00:00Z"), ts("2026-03-27T13:00:00Z"));
    jrn_doc_destroy(d);
}

static const char *const doc_race =
    "id: race\n"
    "entry: { event: Go }\n"
    "nodes:\n"
    "  w:\n"
    "    wait: { event: Order Completed, when: \"event.properties.total > 0.0\", timeout: 1h }\n"
    "    next: thanks\n"
    "    on_timeout: remind\n"
    "  thanks:\n"
    "    send: { channel: email, template: thanks }\n"
    "  remind:\n"
    "    send: { channel: email, template: remind }\n"
    "    next: later\n"
    "  later:\n"
    "    wait: 1d\n";

static void test_wait_event_before_timeout(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_race);
    host h;
    char buf[64];
    host_init(&h, d, T0);
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    jrn_instance *in = &h.inst[0];
    assert_string_equal(jrn_instance_waiting_for(d, in, buf, sizeof buf), "event:Order Completed");
    assert_int_equal(in->timer.when_us, T0 + HOUR);
    send_event(&h, 0, "Order Completed", "{\"total\":0.0}", T0 + 10 * MIN);   /* its when is false */
    send_event(&h, 0, "Something Else", NULL, T0 + 20 * MIN);
    assert_int_equal(in->state, JRN_ST_WAITING);
    assert_int_equal(h.ntrans, 1);
    send_event(&h, 0, "Order Completed", "{\"total\":12.5}", T0 + HOUR - 1);  /* one microsecond before the timeout */
    assert_int_equal(h.nintents, 1);
    assert_intent(&h, 0, "thanks", T0 + HOUR - 1);
    assert_int_equal(h.trans[1].edge, JRN_EDGE_WAIT_EVENT);
    assert_false(tw_armed(&in->timer));
    assert_int_equal(h.ncancels, 1);                  /* once */
    assert_int_equal(h.why, JRN_END_FINISHED);
    advance(&h, T0 + 2 * HOUR);
    assert_int_equal(h.nintents, 1);
    assert_int_equal(h.nexits, 1);
    host_release(&h);
    jrn_doc_destroy(d);
}

static void test_wait_event_after_timeout(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_race);
    host h;
    host_init(&h, d, T0);
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    jrn_instance *in = &h.inst[0];
    advance(&h, T0 + HOUR);
    assert_int_equal(h.nintents, 1);
    assert_intent(&h, 0, "remind", T0 + HOUR);
    assert_int_equal(h.trans[1].edge, JRN_EDGE_WAIT_TIMEOUT);
    assert_int_equal(in->node, node_of(d, "later"));
    size_t ntrans = h.ntrans;
    send_event(&h, 0, "Order Completed", "{\"total\":12.5}", T0 + HOUR + 1);   /* too late for the wait */
    assert_int_equal(h.ntrans, ntrans);
    assert_int_equal(h.nintents, 1);
    assert_int_equal(in->state, JRN_ST_WAITING);
    assert_int_equal(in->node, node_of(d, "later"));
    assert_int_equal(in->timer.when_us, T0 + HOUR + DAY);
    advance(&h, T0 + 2 * DAY);                        /* `later` has no next: the end */
    assert_int_equal(h.why, JRN_END_FINISHED);
    assert_int_equal(h.ncancels, 0);                  /* a fired timer is not cancelled */
    assert_int_equal(h.trans[h.ntrans - 1].to, JRN_NONE);
    host_release(&h);
    jrn_doc_destroy(d);
}

/* ---- segment changes ---------------------------------------------------------- */

static const char *const doc_seg =
    "id: seg\n"
    "entry: { event: Go }\n"
    "exits:\n"
    "  - segment_exit: customers\n"
    "nodes:\n"
    "  w:\n"
    "    wait: { segment_enter: pro, when: \"event.segment == 'pro' && event.event == 'segment_enter'\", timeout: 1d }\n"
    "    next: welcome\n"
    "    on_timeout: nudge\n"
    "  welcome:\n"
    "    send: { channel: email, template: welcome_pro }\n"
    "  nudge:\n"
    "    send: { channel: email, template: try_pro }\n"
    "    next: later\n"
    "  later: { wait: 30d }\n";

/* A wait on segment_enter: the join comes in time (next), or not (on_timeout);
 * a tracked event with the same name as a segment event is not one; a join
 * of another segment is not this one. */
static void test_segment_wait(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_seg);
    host h;
    char buf[64], name[JRN_SEGMENT_EVENT_MAX];
    host_init(&h, d, T0);
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    jrn_instance *in = &h.inst[0];
    assert_string_equal(jrn_instance_waiting_for(d, in, buf, sizeof buf), "segment_enter:pro");
    assert_int_equal(in->timer.when_us, T0 + DAY);
    send_event(&h, 0, jrn_segment_event_name(name, "pro", true), NULL, T0 + MIN);   /* a track event: never a segment change */
    advance(&h, T0 + 2 * MIN);
    jrn_on_segment(d, in, "vip", true, T0 + 2 * MIN, &h.io);      /* another segment */
    jrn_on_segment(d, in, "pro", false, T0 + 2 * MIN, &h.io);     /* leaving, not joining */
    assert_int_equal(in->state, JRN_ST_WAITING);
    assert_int_equal(h.nintents, 0);
    advance(&h, T0 + HOUR);
    jrn_on_segment(d, in, "pro", true, T0 + HOUR, &h.io);
    assert_int_equal(h.nintents, 1);
    assert_intent(&h, 0, "welcome", T0 + HOUR);
    assert_int_equal(h.trans[1].edge, JRN_EDGE_WAIT_EVENT);
    assert_int_equal(h.ncancels, 1);
    assert_int_equal(h.why, JRN_END_FINISHED);

    /* no join within a day: on_timeout */
    enter(&h, 1, "u2", 2, "Go", NULL, T0 + 2 * DAY);
    advance(&h, T0 + 3 * DAY);
    assert_int_equal(h.nintents, 2);
    assert_intent(&h, 1, "nudge", T0 + 3 * DAY);
    /* ... and an exit rule on segment_exit ends it while it waits */
    jrn_on_segment(d, &h.inst[1], "customers", true, T0 + 3 * DAY + 1, &h.io);   /* joining: not the rule */
    assert_int_equal(h.inst[1].state, JRN_ST_WAITING);
    jrn_on_segment(d, &h.inst[1], "customers", false, T0 + 4 * DAY, &h.io);
    assert_int_equal(h.inst[1].state, JRN_ST_EXITED);
    assert_int_equal(h.why, JRN_END_EXIT_RULE);
    assert_int_equal(h.exit_at, T0 + 4 * DAY);
    assert_false(tw_armed(&h.inst[1].timer));
    host_release(&h);
    jrn_doc_destroy(d);
}

/* Arriving at a wait for a change that already holds goes on at once (it
 * would never come); its `when` sees the change as its event. */
static void test_segment_wait_already_member(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_seg);
    host h;
    host_init(&h, d, T0);
    h.member = "pro";
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    assert_int_equal(h.nintents, 1);
    assert_intent(&h, 0, "welcome", T0);
    assert_int_equal(h.trans[1].edge, JRN_EDGE_WAIT_EVENT);
    assert_int_equal(h.narms, 0);
    assert_int_equal(h.inst[0].state, JRN_ST_EXITED);
    assert_non_null(strstr(h.log.data, "in_segment 0 pro"));
    host_release(&h);
    jrn_doc_destroy(d);
    /* segment_exit when not a member: at once too; a member waits */
    d = parse_doc("t.yaml", "id: s\nentry: { event: Go }\nnodes:\n  w:\n    wait: { segment_exit: pro }\n    next: s\n"
                            "  s: { send: { channel: email, template: t } }\n");
    host_init(&h, d, T0);
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    assert_int_equal(h.nintents, 1);
    h.member = "pro";
    enter(&h, 1, "u2", 2, "Go", NULL, T0 + 1);
    assert_int_equal(h.nintents, 1);
    assert_int_equal(h.inst[1].state, JRN_ST_WAITING);
    assert_false(tw_armed(&h.inst[1].timer));   /* no timeout: waits as long as it takes */
    jrn_on_segment(d, &h.inst[1], "pro", false, T0 + 30 * DAY, &h.io);
    assert_int_equal(h.nintents, 2);
    assert_intent(&h, 1, "s", T0 + 30 * DAY);
    host_release(&h);
    jrn_doc_destroy(d);
}

/* ---- entry and re-entry ----------------------------------------------------- */

static void test_entry_matches(void **state)
{
    (void)state;
    jrn_doc *cart = load_example("journeys/cart-abandonment.yaml");
    jrn_doc *churn = load_example("journeys/churn-prevention.yaml");
    host h;
    bool ok = true;
    jd_err err;
    host_init(&h, cart, T0);
    ingest_event ev = make_event(&h, INGEST_TRACK, "Cart Updated", "{\"cart_value\":50.0}", T0);
    assert_int_equal(jrn_entry_matches(cart, &ev, T0, &h.io, &ok, &err), JD_OK);
    assert_true(ok);
    ev = make_event(&h, INGEST_TRACK, "Cart Updated", "{\"cart_value\":0.0}", T0);
    assert_int_equal(jrn_entry_matches(cart, &ev, T0, &h.io, &ok, &err), JD_OK);
    assert_false(ok);
    ev = make_event(&h, INGEST_TRACK, "Order Completed", "{\"cart_value\":50.0}", T0);
    assert_int_equal(jrn_entry_matches(cart, &ev, T0, &h.io, &ok, &err), JD_OK);
    assert_false(ok);
    ev = make_event(&h, INGEST_PAGE, "Cart Updated", "{\"cart_value\":50.0}", T0);   /* only track events */
    assert_int_equal(jrn_entry_matches(cart, &ev, T0, &h.io, &ok, &err), JD_OK);
    assert_false(ok);
    ev = make_event(&h, INGEST_TRACK, "Cart Updated", "{}", T0);   /* no such key: an error */
    assert_int_not_equal(jrn_entry_matches(cart, &ev, T0, &h.io, &ok, &err), JD_OK);
    ev = make_event(&h, INGEST_TRACK, "Cart Updated", "{\"cart_value\":50.0}", T0);
    ok = true;
    assert_int_equal(jrn_entry_matches(churn, &ev, T0, &h.io, &ok, &err), JD_OK);   /* segment entry */
    assert_false(ok);
    host_release(&h);
    jrn_doc_destroy(cart);
    jrn_doc_destroy(churn);
}

static void test_reentry(void **state)
{
    (void)state;
    const int64_t never = INT64_MIN;
    jrn_doc *dn = parse_doc("n.yaml", "id: n\nentry: { event: Go }\nnodes:\n  s: { send: { channel: email, template: x } }\n");
    jrn_doc *da = parse_doc("a.yaml", "id: a\nentry: { event: Go }\nreentry: always\nnodes:\n  s: { send: { channel: email, template: x } }\n");
    jrn_doc *dc = parse_doc("c.yaml", "id: c\nentry: { event: Go }\nreentry: always\nconcurrent: true\n"
                                      "nodes:\n  s: { send: { channel: email, template: x } }\n");
    jrn_doc *dk = parse_doc("k.yaml", "id: k\nentry: { event: Go }\nreentry: cooldown\ncooldown: 7d\n"
                                      "nodes:\n  s: { send: { channel: email, template: x } }\n");
    assert_true(jrn_reentry_allows(dn, false, never, T0));
    assert_false(jrn_reentry_allows(dn, false, T0, T0 + 400 * DAY));
    assert_true(jrn_reentry_allows(da, false, T0, T0 + 1));
    assert_false(jrn_reentry_allows(da, true, T0, T0 + 1));      /* not while in the journey */
    assert_true(jrn_reentry_allows(dc, true, T0, T0 + 1));       /* unless concurrent */
    assert_true(jrn_reentry_allows(dk, false, never, T0));
    assert_false(jrn_reentry_allows(dk, false, T0, T0 + 7 * DAY - 1));
    assert_true(jrn_reentry_allows(dk, false, T0, T0 + 7 * DAY));
    assert_false(jrn_reentry_allows(dk, true, T0, T0 + 8 * DAY));
    assert_false(jrn_reentry_allows(dk, false, T0, T0 - 1));     /* out of order */
    jrn_doc_destroy(dn);
    jrn_doc_destroy(da);
    jrn_doc_destroy(dc);
    jrn_doc_destroy(dk);
}

/* ---- exit rules, pause, goal ----------------------------------------------- */

static const char *const doc_rules =
    "id: rules\n"
    "entry: { event: Go }\n"
    "exits:\n"
    "  - event: Ticket Opened\n"
    "    action: pause\n"
    "    resume_on: Ticket Closed\n"
    "  - event: Stop\n"
    "  - when: profile.traits.unsubscribed == true\n"
    "goal:\n"
    "  event: Buy\n"
    "  when: event.properties.total > 0.0\n"
    "  within: 2d\n"
    "nodes:\n"
    "  w:\n"
    "    wait: 3d\n"
    "    next: s\n"
    "  s:\n"
    "    send: { channel: email, template: hi }\n";

static void test_exit_rule_cancels_timer(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_rules);
    host h;
    host_init(&h, d, T0);
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    send_event(&h, 0, "Unrelated", NULL, T0 + HOUR);
    assert_int_equal(h.nexits, 0);
    assert_true(tw_armed(&h.inst[0].timer));
    send_event(&h, 0, "Stop", NULL, T0 + 2 * HOUR);
    assert_int_equal(h.nexits, 1);
    assert_int_equal(h.why, JRN_END_EXIT_RULE);
    assert_false(tw_armed(&h.inst[0].timer));
    assert_int_equal(tw_count(h.w), 0);
    advance(&h, T0 + 10 * DAY);
    assert_int_equal(h.nintents, 0);
    assert_int_equal(h.nexits, 1);
    send_event(&h, 0, "Stop", NULL, T0 + 11 * DAY);   /* exited: nothing */
    assert_int_equal(h.nexits, 1);

    /* a condition-only rule: on a profile change, and on any event */
    enter(&h, 1, "u2", 2, "Go", NULL, T0 + 11 * DAY);
    jrn_on_profile_change(d, &h.inst[1], T0 + 11 * DAY + 1, &h.io);
    assert_int_equal(h.nexits, 1);
    set_trait_json(&h, "unsubscribed", "true");
    jrn_on_profile_change(d, &h.inst[1], T0 + 11 * DAY + 2, &h.io);
    assert_int_equal(h.nexits, 2);
    assert_int_equal(h.why, JRN_END_EXIT_RULE);
    assert_int_equal(tw_count(h.w), 0);
    enter(&h, 2, "u3", 3, "Go", NULL, T0 + 12 * DAY);
    send_event(&h, 2, "Anything", NULL, T0 + 12 * DAY + 1);
    assert_int_equal(h.nexits, 3);
    assert_int_equal(h.inst[2].end, JRN_END_EXIT_RULE);
    host_release(&h);
    jrn_doc_destroy(d);
}

static void test_pause_keeps_time_left(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_rules);
    host h;
    char buf[64];
    host_init(&h, d, T0);
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    jrn_instance *in = &h.inst[0];
    send_event(&h, 0, "Ticket Opened", NULL, T0 + DAY);
    assert_int_equal(in->state, JRN_ST_PAUSED);
    assert_false(tw_armed(&in->timer));
    assert_int_equal(in->paused_left_us, 2 * DAY);
    assert_int_equal(in->paused_rule, 0);
    assert_string_equal(jrn_instance_waiting_for(d, in, buf, sizeof buf), "resume:Ticket Closed");
    advance(&h, T0 + 4 * DAY);                                   /* the wait was due at T0+3d: held */
    assert_int_equal(h.nintents, 0);
    size_t ntrans = h.ntrans;
    jrn_on_timer(d, in, T0 + 4 * DAY, &h.io);                    /* a stale fire while paused: ignored */
    assert_int_equal(h.ntrans, ntrans);
    assert_int_equal(in->state, JRN_ST_PAUSED);
    send_event(&h, 0, "Ticket Opened", NULL, T0 + 4 * DAY);     /* already paused */
    send_event(&h, 0, "Other", NULL, T0 + 4 * DAY + 1);
    assert_int_equal(in->state, JRN_ST_PAUSED);
    assert_int_equal(in->paused_left_us, 2 * DAY);
    send_event(&h, 0, "Ticket Closed", NULL, T0 + 5 * DAY);
    assert_int_equal(in->state, JRN_ST_WAITING);
    assert_int_equal(in->paused_rule, JRN_NONE);
    assert_true(tw_armed(&in->timer));
    assert_int_equal(in->timer.when_us, T0 + 7 * DAY);
    advance(&h, T0 + 7 * DAY - 1);
    assert_int_equal(h.nintents, 0);
    advance(&h, T0 + 7 * DAY);
    assert_int_equal(h.nintents, 1);
    assert_intent(&h, 0, "s", T0 + 7 * DAY);
    assert_int_equal(h.why, JRN_END_FINISHED);

    /* paused, then the goal (within its window) and an end rule still apply */
    enter(&h, 1, "u2", 2, "Go", NULL, T0 + 7 * DAY);
    send_event(&h, 1, "Ticket Opened", NULL, T0 + 7 * DAY + HOUR);
    send_event(&h, 1, "Buy", "{\"total\":3.0}", T0 + 7 * DAY + 2 * HOUR);
    assert_int_equal(h.inst[1].end, JRN_END_GOAL);
    enter(&h, 2, "u3", 3, "Go", NULL, T0 + 8 * DAY);
    send_event(&h, 2, "Ticket Opened", NULL, T0 + 8 * DAY + HOUR);
    send_event(&h, 2, "Stop", NULL, T0 + 8 * DAY + 2 * HOUR);
    assert_int_equal(h.inst[2].end, JRN_END_EXIT_RULE);
    assert_int_equal(tw_count(h.w), 0);
    host_release(&h);
    jrn_doc_destroy(d);
}

static void test_goal(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_rules);
    host h;
    host_init(&h, d, T0);
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    send_event(&h, 0, "Buy", "{\"total\":0.0}", T0 + DAY);      /* its when is false */
    assert_int_equal(h.nexits, 0);
    send_event(&h, 0, "Buy", "{\"total\":9.5}", T0 + 2 * DAY);  /* the window's last instant */
    assert_int_equal(h.nexits, 1);
    assert_int_equal(h.why, JRN_END_GOAL);
    assert_false(tw_armed(&h.inst[0].timer));
    assert_int_equal(h.ncancels, 1);

    enter(&h, 1, "u2", 2, "Go", NULL, T0 + 2 * DAY);
    send_event(&h, 1, "Buy", "{\"total\":9.5}", T0 + 4 * DAY + 1);   /* past the window: nothing */
    assert_int_equal(h.nexits, 1);
    assert_int_equal(h.inst[1].state, JRN_ST_WAITING);
    advance(&h, T0 + 5 * DAY);
    assert_int_equal(h.nexits, 2);
    assert_int_equal(h.why, JRN_END_FINISHED);
    assert_intent(&h, 0, "s", T0 + 5 * DAY);
    host_release(&h);
    jrn_doc_destroy(d);
}

/* One event, several meanings: the goal before the exit rules; a pause on an
 * event wait without a timeout holds no time; the resuming event is then seen
 * by the wait it resumed. */
static const char *const doc_order =
    "id: order\n"
    "entry: { event: Go }\n"
    "exits:\n"
    "  - event: Done\n"
    "  - event: Hold\n"
    "    action: pause\n"
    "    resume_on: Go On\n"
    "goal: { event: Done }\n"
    "nodes:\n"
    "  w:\n"
    "    wait: { event: Go On }\n"
    "    next: s\n"
    "  s:\n"
    "    send: { channel: email, template: hi }\n";

static void test_event_order(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_order);
    host h;
    host_init(&h, d, T0);
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    assert_int_equal(h.narms, 0);                    /* no timeout: no timer */
    jrn_on_timer(d, &h.inst[0], T0 + 1, &h.io);      /* stale: the wait has no timer */
    assert_int_equal(h.ntrans, 1);
    assert_int_equal(h.inst[0].state, JRN_ST_WAITING);
    send_event(&h, 0, "Done", NULL, T0 + HOUR);
    assert_int_equal(h.why, JRN_END_GOAL);           /* not JRN_END_EXIT_RULE */
    assert_int_equal(h.ncancels, 0);

    enter(&h, 1, "u2", 2, "Go", NULL, T0 + DAY);
    send_event(&h, 1, "Hold", NULL, T0 + DAY + 1);
    assert_int_equal(h.inst[1].state, JRN_ST_PAUSED);
    assert_int_equal(h.inst[1].paused_left_us, -1);
    assert_int_equal(h.ncancels, 0);
    send_event(&h, 1, "Go On", NULL, T0 + 2 * DAY);
    assert_int_equal(h.narms, 0);
    assert_int_equal(h.nintents, 1);
    assert_intent(&h, 0, "s", T0 + 2 * DAY);
    assert_int_equal(h.inst[1].end, JRN_END_FINISHED);
    host_release(&h);
    jrn_doc_destroy(d);
}

/* ---- branch, split, intents ---------------------------------------------------- */

static const char *const doc_branch =
    "id: br\n"
    "entry: { event: Go }\n"
    "nodes:\n"
    "  route:\n"
    "    branch:\n"
    "      - { when: \"profile.traits.plan == 'enterprise'\", next: a }\n"
    "      - { when: \"profile.traits.company_size >= 50\", next: b }\n"
    "      - { else: c }\n"
    "  a: { send: { channel: email, template: a } }\n"
    "  b: { send: { channel: email, template: b } }\n"
    "  c: { send: { channel: email, template: c } }\n";

static void branch_case(const jrn_doc *d, const char *plan, int size, const char *want, uint32_t arm, jrn_edge edge)
{
    host h;
    char v[64];
    host_init(&h, d, T0);
    snprintf(v, sizeof v, "\"%s\"", plan);
    set_trait_json(&h, "plan", v);
    snprintf(v, sizeof v, "%d", size);
    set_trait_json(&h, "company_size", v);
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    assert_int_equal(h.nintents, 1);
    assert_intent(&h, 0, want, T0);
    assert_int_equal(h.trans[1].edge, edge);
    assert_int_equal(h.trans[1].arm, arm);
    assert_int_equal(h.why, JRN_END_FINISHED);
    host_release(&h);
}

static void test_branch(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_branch);
    branch_case(d, "enterprise", 100, "a", 0, JRN_EDGE_BRANCH_ARM);   /* both true: the first arm */
    branch_case(d, "pro", 100, "b", 1, JRN_EDGE_BRANCH_ARM);
    branch_case(d, "pro", 5, "c", 2, JRN_EDGE_BRANCH_ELSE);
    jrn_doc_destroy(d);

    /* no else: the journey ends for the rest */
    d = parse_doc("t.yaml", "id: br2\nentry: { event: Go }\nnodes:\n  route:\n    branch:\n"
                            "      - { when: \"profile.traits.plan == 'x'\", next: a }\n"
                            "  a: { send: { channel: email, template: a } }\n");
    host h;
    host_init(&h, d, T0);
    set_trait_json(&h, "plan", "\"y\"");
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    assert_int_equal(h.nintents, 0);
    assert_int_equal(h.ntrans, 2);
    assert_int_equal(h.trans[1].to, JRN_NONE);
    assert_int_equal(h.trans[1].edge, JRN_EDGE_BRANCH_ELSE);
    assert_int_equal(h.why, JRN_END_FINISHED);
    host_release(&h);
    jrn_doc_destroy(d);
}

static void test_expression_error_ends_instance(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_branch);
    host h;
    host_init(&h, d, T0);
    set_trait_json(&h, "plan", "\"pro\"");           /* no company_size: "no such key" at run time */
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    assert_int_equal(h.nexits, 1);
    assert_int_equal(h.why, JRN_END_ERROR);
    assert_true(h.exit_err);
    assert_int_not_equal(h.err.code, JD_OK);
    assert_true(h.err.msg[0] != '\0');
    assert_int_equal(h.nintents, 0);
    assert_int_equal(h.inst[0].state, JRN_ST_EXITED);
    host_release(&h);
    jrn_doc_destroy(d);

    /* in an event wait's condition, while waiting: the timer is cancelled */
    d = parse_doc("t.yaml", doc_race);
    host_init(&h, d, T0);
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    send_event(&h, 0, "Order Completed", "{\"total\":\"ten\"}", T0 + MIN);
    assert_int_equal(h.why, JRN_END_ERROR);
    assert_true(h.exit_err);
    assert_int_equal(tw_count(h.w), 0);
    host_release(&h);
    jrn_doc_destroy(d);
}

/* A condition-only exit rule is evaluated on every event: a missing trait is a
 * "no such key" error, and errors end the instance (see the report). */
static void test_missing_trait_in_exit_rule(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_rules);
    host h;
    host_init(&h, d, T0);
    json_object_object_del(h.traits, "unsubscribed");
    enter(&h, 0, "u1", 1, "Go", NULL, T0);
    send_event(&h, 0, "Unrelated", NULL, T0 + HOUR);
    assert_int_equal(h.why, JRN_END_ERROR);
    assert_true(h.exit_err);
    assert_int_equal(tw_count(h.w), 0);
    host_release(&h);
    jrn_doc_destroy(d);
}

static const char *const doc_split =
    "id: sp\n"
    "entry: { event: Go }\n"
    "nodes:\n"
    "  test:\n"
    "    split:\n"
    "      - { variant: A, weight: 45, next: a }\n"
    "      - { variant: B, weight: 45, next: b }\n"
    "      - { variant: holdout, weight: 10, control: true }\n"
    "  a: { send: { channel: email, template: a } }\n"
    "  b: { send: { channel: email, template: b } }\n";

static void test_split_distribution(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_split);
    host h;
    size_t count[4] = { 0 }, control = 0;
    char key[32];
    host_init(&h, d, T0);
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "person-%d", i);
        enter(&h, 0, key, (uint64_t)i + 1, "Go", NULL, T0);
        assert_true(h.inst[0].variant >= 1 && h.inst[0].variant <= 3);
        count[h.inst[0].variant]++;
        if (h.inst[0].end == JRN_END_CONTROL) control++;
        assert_int_equal(h.inst[0].state, JRN_ST_EXITED);
    }
    assert_in_range(count[1], 4300, 4700);
    assert_in_range(count[2], 4300, 4700);
    assert_in_range(count[3], 800, 1200);
    assert_int_equal(control, count[3]);
    assert_int_equal(h.nintents, count[1] + count[2]);

    /* the same instance always draws the same variant; another version may not */
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "person-%d", i);
        enter(&h, 0, key, (uint64_t)i + 1, "Go", NULL, T0);
        enter(&h, 1, key, (uint64_t)i + 1, "Go", NULL, T0 + DAY);   /* time is not part of it */
        assert_int_equal(h.inst[0].id, h.inst[1].id);
        assert_int_equal(h.inst[0].variant, h.inst[1].variant);
    }
    jrn_enter(d, 1, &h.inst[0], JD_STR_LIT("person-0"), 1, NULL, T0, &h.io);
    jrn_enter(d, 2, &h.inst[1], JD_STR_LIT("person-0"), 1, NULL, T0, &h.io);
    assert_int_not_equal(h.inst[0].id, h.inst[1].id);
    host_release(&h);
    jrn_doc_destroy(d);
}

static const char *const doc_loop =
    "id: loop\n"
    "entry: { event: Go }\n"
    "nodes:\n"
    "  w:\n"
    "    wait: { event: Ping, timeout: 1d }\n"
    "    next: s\n"
    "    on_timeout: s\n"
    "  s:\n"
    "    send: { channel: email, template: ping }\n"
    "    next: w\n";

static void loop_run(host *h, const jrn_doc *d)
{
    host_init(h, d, T0);
    enter(h, 0, "u1", 77, "Go", NULL, T0);
    send_event(h, 0, "Ping", NULL, T0 + HOUR);
    send_event(h, 0, "Ping", NULL, T0 + 2 * HOUR);
    send_event(h, 0, "Ping", NULL, T0 + 3 * HOUR);
    advance(h, T0 + 3 * HOUR + DAY);   /* the timeout: a fourth visit */
}

static void test_intent_ids(void **state)
{
    (void)state;
    jrn_doc *d = parse_doc("t.yaml", doc_loop);
    host a, b;
    loop_run(&a, d);
    loop_run(&b, d);
    assert_int_equal(a.nintents, 4);
    assert_int_equal(b.nintents, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(a.intents[i].id, b.intents[i].id);          /* stable across runs */
        for (size_t j = 0; j < i; j++) assert_int_not_equal(a.intents[i].id, a.intents[j].id);   /* distinct per visit */
    }
    assert_intent(&a, 3, "s", T0 + 3 * HOUR + DAY);
    assert_string_equal(a.log.data, b.log.data);
    host_release(&a);
    host_release(&b);
    jrn_doc_destroy(d);
}

/* A graph validation would refuse (a loop without a wait): the budget stops it. */
static void test_step_budget(void **state)
{
    (void)state;
    jrn_node nodes[2];
    jrn_doc d;
    memset(nodes, 0, sizeof nodes);
    memset(&d, 0, sizeof d);
    char id[] = "spin", na[] = "a", nb[] = "b", ch[] = "email", tp[] = "t";
    for (uint32_t i = 0; i < 2; i++) {
        nodes[i].kind = JRN_SEND;
        nodes[i].index = i;
        nodes[i].next = 1 - i;
        nodes[i].u.send.channel = ch;
        nodes[i].u.send.template_name = tp;
    }
    nodes[0].id = na;
    nodes[1].id = nb;
    d.id = id;
    d.nodes = nodes;
    d.nnodes = 2;
    d.start = 0;
    host h;
    host_init(&h, &d, T0);
    enter(&h, 0, "u1", 1, NULL, NULL, T0);
    assert_int_equal(h.nintents, JRN_MAX_STEPS_PER_TURN);
    assert_int_equal(h.nexits, 1);
    assert_int_equal(h.why, JRN_END_ERROR);
    assert_non_null(strstr(h.err.msg, "step budget exceeded"));
    host_release(&h);
}

/* ---- the example journeys -------------------------------------------------- */

/* The cart journey up to its split, for person `key`: the variant drawn (1..3). */
static int cart_variant(const jrn_doc *d, const char *key)
{
    host h;
    host_init(&h, d, T0);
    enter(&h, 0, key, 1, "Cart Updated", "{\"cart_value\":80.0}", T0);
    advance(&h, T0 + HOUR);
    int v = h.inst[0].variant;
    host_release(&h);
    return v;
}

static void find_cart_keys(const jrn_doc *d, char keys[4][32])
{
    int found = 0;
    memset(keys, 0, 4 * 32);
    for (int i = 0; found != 0xe && i < 1000; i++) {
        char k[32];
        snprintf(k, sizeof k, "shopper-%d", i);
        int v = cart_variant(d, k);
        if (!(found & (1 << v))) { found |= 1 << v; snprintf(keys[v], 32, "%s", k); }
    }
    assert_int_equal(found, 0xe);
}

static void test_cart_example(void **state)
{
    (void)state;
    jrn_doc *d = load_example("journeys/cart-abandonment.yaml");
    char keys[4][32];
    host h;
    find_cart_keys(d, keys);

    /* variant A: email after the hour; a day later the next 09:30 in Paris; a discount */
    host_init(&h, d, T0);
    set_trait_json(&h, "timezone", "\"Europe/Paris\"");
    set_trait_json(&h, "last_cart_value", "150.0");
    enter(&h, 0, keys[1], 1, "Cart Updated", "{\"cart_value\":150.0}", T0);
    advance(&h, T0 + HOUR - 1);
    assert_int_equal(h.nintents, 0);
    advance(&h, T0 + HOUR);
    assert_string_equal(h.variant, "A");
    assert_intent(&h, 0, "reminder_email", T0 + HOUR);
    advance(&h, ts("2026-03-10T00:00:00Z"));
    assert_int_equal(h.nintents, 2);
    /* 2026-03-03T16:00Z the day's wait ends; 09:30 CET on the 4th is 08:30Z */
    assert_intent(&h, 1, "discount_email", ts("2026-03-04T08:30:00Z"));
    assert_int_equal(h.nupdates, 1);
    json_object *tag;
    assert_true(json_object_object_get_ex(h.traits, "last_discount_offered_at", &tag));
    assert_int_equal(h.why, JRN_END_FINISHED);
    host_release(&h);

    /* variant B with SMS consent: an SMS; an order later converts (the goal) */
    host_init(&h, d, T0);
    set_trait_json(&h, "phone", "\"+33600000000\"");
    set_trait_json(&h, "sms_opt_in", "true");
    enter(&h, 0, keys[2], 1, "Cart Updated", "{\"cart_value\":40.0}", T0);
    advance(&h, T0 + HOUR);
    assert_string_equal(h.variant, "B");
    assert_intent(&h, 0, "reminder_sms", T0 + HOUR);
    send_event(&h, 0, "Order Completed", "{\"total\":40.0}", T0 + 5 * HOUR);
    assert_int_equal(h.why, JRN_END_GOAL);
    assert_int_equal(tw_count(h.w), 0);
    host_release(&h);

    /* variant B without a phone: the email instead */
    host_init(&h, d, T0);
    enter(&h, 0, keys[2], 1, "Cart Updated", "{\"cart_value\":40.0}", T0);
    advance(&h, T0 + HOUR);
    assert_intent(&h, 0, "reminder_email", T0 + HOUR);
    host_release(&h);

    /* the holdout: nothing is sent */
    host_init(&h, d, T0);
    enter(&h, 0, keys[3], 1, "Cart Updated", "{\"cart_value\":40.0}", T0);
    advance(&h, T0 + 8 * DAY);
    assert_int_equal(h.nintents, 0);
    assert_int_equal(h.why, JRN_END_CONTROL);
    assert_int_equal(h.exit_at, T0 + HOUR);
    host_release(&h);

    /* ordered within the hour: converted, no message */
    host_init(&h, d, T0);
    enter(&h, 0, keys[1], 1, "Cart Updated", "{\"cart_value\":40.0}", T0);
    send_event(&h, 0, "Order Completed", "{\"total\":40.0}", T0 + 30 * MIN);
    assert_int_equal(h.why, JRN_END_GOAL);
    advance(&h, T0 + 3 * DAY);
    assert_int_equal(h.nintents, 0);
    host_release(&h);

    /* a zero-total order is no conversion, but the wait takes it: the `completed` exit */
    host_init(&h, d, T0);
    enter(&h, 0, keys[1], 1, "Cart Updated", "{\"cart_value\":40.0}", T0);
    send_event(&h, 0, "Order Completed", "{\"total\":0.0}", T0 + 30 * MIN);
    assert_int_equal(h.why, JRN_END_FINISHED);
    assert_int_equal(h.inst[0].node, node_of(d, "completed"));
    assert_int_equal(h.nintents, 0);
    host_release(&h);

    /* unsubscribed while waiting */
    host_init(&h, d, T0);
    enter(&h, 0, keys[1], 1, "Cart Updated", "{\"cart_value\":40.0}", T0);
    set_trait_json(&h, "unsubscribed", "true");
    jrn_on_profile_change(d, &h.inst[0], T0 + MIN, &h.io);
    assert_int_equal(h.why, JRN_END_EXIT_RULE);
    assert_int_equal(tw_count(h.w), 0);
    host_release(&h);
    jrn_doc_destroy(d);
}

static void onboarding_run(host *h, const jrn_doc *d)
{
    host_init(h, d, T0);
    set_trait_json(h, "company_size", "80");
    set_trait_json(h, "name", "\"Ada\"");
    set_trait_json(h, "company", "\"Acme\"");
    enter(h, 0, "ada", 1, "Trial Started", "{\"plan\":\"trial\"}", T0);
    send_event(h, 0, "Logged In", NULL, ts("2026-03-05T12:00:00Z"));
    send_event(h, 0, "Feature Activated", "{\"feature\":\"billing\"}", ts("2026-03-06T12:00:00Z"));  /* not a goal feature */
    advance(h, ts("2026-03-20T00:00:00Z"));
}

static void test_onboarding_example(void **state)
{
    (void)state;
    jrn_doc *d = load_example("journeys/onboarding-trial.yaml");
    host h, again;
    onboarding_run(&h, d);
    /* day 1 ends at 10:00 EST exactly, so "10:00" means the next day's */
    assert_int_equal(h.nintents, 7);
    assert_intent(&h, 0, "welcome", T0);
    assert_intent(&h, 1, "tip_invite", ts("2026-03-04T15:00:00Z"));
    assert_intent(&h, 2, "tip_video", ts("2026-03-05T12:00:00Z"));
    assert_intent(&h, 3, "sales_follow_up", ts("2026-03-05T12:00:00Z"));
    assert_intent(&h, 4, "nudge_2", ts("2026-03-08T12:00:00Z"));
    assert_intent(&h, 5, "nudge_2", ts("2026-03-11T12:00:00Z"));
    assert_intent(&h, 6, "last_call", ts("2026-03-14T12:00:00Z"));
    assert_int_not_equal(h.intents[4].id, h.intents[5].id);
    assert_int_equal(h.why, JRN_END_FINISHED);
    assert_int_equal(h.inst[0].node, node_of(d, "quiet"));

    /* determinism: the same inputs, the same callbacks, byte for byte */
    onboarding_run(&again, d);
    assert_true(h.log.len > 1000);
    assert_string_equal(h.log.data, again.log.data);
    host_release(&again);
    host_release(&h);

    /* the goal feature within 14 days converts; a paid subscription exits */
    host_init(&h, d, T0);
    set_trait_json(&h, "company_size", "3");
    enter(&h, 0, "bob", 1, "Trial Started", "{\"plan\":\"trial\"}", T0);
    send_event(&h, 0, "Feature Activated", "{\"feature\":\"reports\"}", T0 + 2 * DAY);
    assert_int_equal(h.why, JRN_END_GOAL);
    enter(&h, 1, "bob", 2, "Trial Started", "{\"plan\":\"trial\"}", T0 + 3 * DAY);
    send_event(&h, 1, "Subscription Started", NULL, T0 + 4 * DAY);
    assert_int_equal(h.inst[1].end, JRN_END_EXIT_RULE);
    assert_int_equal(tw_count(h.w), 0);
    host_release(&h);
    jrn_doc_destroy(d);
}

static void test_churn_example(void **state)
{
    (void)state;
    jrn_doc *d = load_example("journeys/churn-prevention.yaml");
    host h;

    /* enterprise: a task for customer success and a flag */
    host_init(&h, d, T0);
    set_trait_json(&h, "plan", "\"enterprise\"");
    set_trait_json(&h, "company", "\"Acme\"");
    enter(&h, 0, "acme", 1, NULL, NULL, T0);   /* a segment entry: no event */
    assert_int_equal(h.nintents, 1);
    assert_intent(&h, 0, "csm_task", T0);
    assert_int_equal(h.nupdates, 1);
    assert_int_equal(h.why, JRN_END_FINISHED);
    host_release(&h);

    /* pro: Tuesday 10:00 UTC check-in; a ticket pauses the 5-day wait for 3 days */
    host_init(&h, d, T0);
    set_trait_json(&h, "plan", "\"pro\"");
    enter(&h, 0, "pat", 1, NULL, NULL, T0);
    advance(&h, ts("2026-03-03T10:00:00Z"));
    assert_intent(&h, 0, "check_in_email", ts("2026-03-03T10:00:00Z"));
    send_event(&h, 0, "Ticket Opened", NULL, ts("2026-03-04T10:00:00Z"));     /* 4 days left */
    assert_int_equal(h.inst[0].state, JRN_ST_PAUSED);
    send_event(&h, 0, "Logged In", "{\"session_minutes\":2}", ts("2026-03-05T10:00:00Z"));   /* held */
    assert_int_equal(h.inst[0].node, node_of(d, "came_back"));
    assert_int_equal(h.ntrans, 4);
    send_event(&h, 0, "Ticket Closed", NULL, ts("2026-03-07T10:00:00Z"));
    assert_int_equal(h.inst[0].timer.when_us, ts("2026-03-11T10:00:00Z"));
    advance(&h, ts("2026-04-01T00:00:00Z"));
    assert_int_equal(h.nintents, 3);
    assert_intent(&h, 1, "tip", ts("2026-03-11T10:00:00Z"));
    assert_intent(&h, 2, "save_offer", ts("2026-03-18T10:00:00Z"));
    assert_int_equal(h.why, JRN_END_FINISHED);
    host_release(&h);

    /* a real session converts */
    host_init(&h, d, T0);
    set_trait_json(&h, "plan", "\"pro\"");
    enter(&h, 0, "sam", 1, NULL, NULL, T0);
    send_event(&h, 0, "Logged In", "{\"session_minutes\":15}", ts("2026-03-04T10:00:00Z"));
    assert_int_equal(h.why, JRN_END_GOAL);
    host_release(&h);
    jrn_doc_destroy(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_duration_fires_exactly),
        cmocka_unit_test(test_wait_until_local_across_dst),
        cmocka_unit_test(test_wait_event_before_timeout),
        cmocka_unit_test(test_wait_event_after_timeout),
        cmocka_unit_test(test_segment_wait),
        cmocka_unit_test(test_segment_wait_already_member),
        cmocka_unit_test(test_entry_matches),
        cmocka_unit_test(test_reentry),
        cmocka_unit_test(test_exit_rule_cancels_timer),
        cmocka_unit_test(test_pause_keeps_time_left),
        cmocka_unit_test(test_goal),
        cmocka_unit_test(test_event_order),
        cmocka_unit_test(test_branch),
        cmocka_unit_test(test_expression_error_ends_instance),
        cmocka_unit_test(test_missing_trait_in_exit_rule),
        cmocka_unit_test(test_split_distribution),
        cmocka_unit_test(test_intent_ids),
        cmocka_unit_test(test_step_budget),
        cmocka_unit_test(test_cart_example),
        cmocka_unit_test(test_onboarding_example),
        cmocka_unit_test(test_churn_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
