/* src/journey/simulate.c -- `journeyd simulate --journey FILE --events FILE`:
 * replays recorded Segment events (NDJSON) through one journey on a virtual
 * clock and prints what each person would have received, when, and the funnel.
 *
 * Invariants:
 *  (1) A single-threaded host, like a shard: for each event, timers due at or
 *      before its timestamp fire first (tw_advance), then the profile store
 *      applies it, then the person's live instance sees it, then entry is
 *      checked. No wall clock, no randomness: the output is a function of the
 *      inputs (message ids are "sim-<line>", entry_seq is the line number).
 *  (2) Events must be in non-decreasing timestamp order; a line out of order
 *      or one ingest refuses stops the run with exit status 1 naming the line.
 *  (3) One instance per person at most (a journey with concurrent: true still
 *      gets one; the skipped entries are counted).
 *  (4) Update nodes set/unset traits in a per-person overlay read over the
 *      profile's traits; tags are not modelled.
 *  (5) Every line is normalized by ingest_parse with received time = its sentAt
 *      (else its timestamp), so clock-skew correction keeps the recorded
 *      timestamp; a line without a timestamp is refused.
 */
#include "journeyd/journey_cli.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "journeyd/base.h"
#include "journeyd/expr.h"
#include "journeyd/ingest.h"
#include "journeyd/instance.h"
#include "journeyd/journey.h"
#include "journeyd/profile.h"
#include "journeyd/timer.h"
#include "journey_int.h"

static const char simulate_help[] =
    "usage: journeyd simulate --journey FILE --events FILE.ndjson [--until TIME] [--json]\n\n"
    "Replays recorded events (one Segment message per line, in timestamp order)\n"
    "through a journey on a virtual clock and prints every message or task each\n"
    "person would have received, when, and the per-node funnel.\n\n"
    "options:\n"
    "  --journey FILE   the journey document (YAML or JSON)\n"
    "  --events FILE    NDJSON events; \"-\" reads stdin\n"
    "  --until TIME     RFC 3339 time to run the clock to after the last event\n"
    "                   (default: the last event + 30 days)\n"
    "  --json           one JSON object instead of text\n"
    "  -h, --help       this help\n"
    "Exit status: 0 done, 1 bad journey or event line, 2 usage.\n";

#define SIM_MAX_LINE_BYTES (1u << 20)
#define SIM_MAX_ERRORS 10          /* run-time errors shown (all are counted) */

typedef struct person {
    char *key;
    jrn_instance in;             /* embedded: its timer is in the wheel while waiting */
    bool live;
    int64_t last_entered_us;     /* INT64_MIN: never */
    uint32_t last_node;          /* node of the live instance, for exit attribution */
    uint8_t *visited;            /* nnodes flags for the live instance */
    json_object *overlay;        /* traits set (value) or unset (null) by update nodes */
    uint8_t end;                 /* jrn_end of the last instance that ended, 0 none */
    char variant[65];            /* split variant of the last instance, "" none */
} person;

typedef struct intent_rec {
    int64_t at;
    uint64_t seq, id;
    const person *p;
    uint32_t node;
} intent_rec;

typedef struct node_stats {
    uint64_t entered;            /* instances that reached the node */
    uint64_t exits[JRN_END_ERROR + 1];
    uint64_t goal;               /* instances that reached it and converted */
} node_stats;

typedef struct sim {
    jrn_io io;
    const jrn_doc *doc;
    tw_wheel *w;
    prof_store *profiles;
    jd_map *people;
    person **plist; size_t npeople, pcap;
    person *cur;                 /* the person the current callback concerns */
    expr_scratch *scratch;
    json_object *traits;         /* merged traits of cur (rebuilt per call) */
    intent_rec *intents; size_t nintents, icap;
    node_stats *stats;
    uint64_t events, instances, entry_errors, skipped_concurrent, runtime_errors;
    uint64_t exits[JRN_END_ERROR + 1];
    char *errors[SIM_MAX_ERRORS]; size_t nerrors;   /* the first run-time errors, as text */
} sim;

static person *person_of(const jrn_instance *in)
{
    return (person *)(void *)((char *)in - offsetof(person, in));
}

/* profile.traits for sim->cur: the store's traits with the overlay on top. */
static json_object *build_traits(sim *s)
{
    json_object *t = NULL;
    if (s->cur) {
        jd_buf b;
        jd_buf_init(&b, (size_t)1 << 24);
        if (prof_get_json(s->profiles, s->cur->key, strlen(s->cur->key), &b) == JD_OK && b.data) {
            json_object *prof = json_tokener_parse(b.data), *tr;
            if (prof && json_object_object_get_ex(prof, "traits", &tr) && json_object_is_type(tr, json_type_object))
                json_object_deep_copy(tr, &t, NULL);
            json_object_put(prof);
        }
        jd_buf_release(&b);
    }
    if (!t) t = json_object_new_object();
    if (s->cur && s->cur->overlay) {
        json_object_object_foreach(s->cur->overlay, k, v) {
            if (v) json_object_object_add(t, k, json_object_get(v));
            else json_object_object_del(t, k);
        }
    }
    json_object_put(s->traits);
    s->traits = t;
    return t;
}

/* The activation: event (the message JSON), profile {traits}, journey, now. */
static json_object *vars_for(sim *s, const jrn_instance *in, const ingest_event *ev, int64_t now)
{
    json_object *v = json_object_new_object(), *prof = json_object_new_object();
    char t[JD_TIME_TEXT];
    if (ev && ev->json.n) {
        json_object *e = json_tokener_parse(ev->json.p);
        if (e) json_object_object_add(v, "event", e);
    }
    json_object_object_add(prof, "traits", json_object_get(build_traits(s)));
    json_object_object_add(v, "profile", prof);
    if (in) {
        json_object *j = json_object_new_object();
        jd_time_format(in->entered_us, t);
        json_object_object_add(j, "entered_at", json_object_new_string(t));
        json_object_object_add(j, "seconds_in_journey", json_object_new_int64((now - in->entered_us) / (int64_t)JD_SEC));
        json_object_object_add(j, "variant", json_object_new_string(person_of(in)->variant));
        json_object_object_add(v, "journey", j);
    }
    jd_time_format(now, t);
    json_object_object_add(v, "now", json_object_new_string(t));
    return v;
}

static int h_eval(void *self, const jrn_instance *in, const expr_prog *p, const ingest_event *ev,
                  int64_t now, bool *out, jd_err *err)
{
    sim *s = self;
    json_object *vars = vars_for(s, in, ev, now);
    expr_activation a;
    expr_activation_json(&a, vars);
    expr_scratch_reset(s->scratch);
    int rc = expr_eval_bool(p, &a, s->scratch, out, err);
    json_object_put(vars);
    return rc;
}

static const char *h_trait(void *self, const char *key)
{
    sim *s = self;
    json_object *v;
    if (!json_object_object_get_ex(build_traits(s), key, &v) || !json_object_is_type(v, json_type_string)) return NULL;
    return json_object_get_string(v);
}

static void h_arm(void *self, jrn_instance *in, int64_t when)
{
    sim *s = self;
    tw_arm(s->w, &in->timer, (uint64_t)when);
}

static void h_cancel(void *self, jrn_instance *in)
{
    sim *s = self;
    tw_cancel(s->w, &in->timer);
}

static void h_intent(void *self, const jrn_instance *in, const jrn_node *node, uint64_t id, int64_t now)
{
    sim *s = self;
    if (s->nintents == s->icap) {
        s->icap = s->icap ? s->icap * 2 : 64;
        s->intents = jd_xrealloc(s->intents, s->icap * sizeof *s->intents);
    }
    s->intents[s->nintents] = (intent_rec){ now, s->nintents, id, person_of(in), node->index };
    s->nintents++;
}

static void h_update(void *self, const jrn_instance *in, const jrn_node *node, int64_t now)
{
    sim *s = self;
    person *p = person_of(in);
    if (!p->overlay) p->overlay = json_object_new_object();
    for (uint32_t i = 0; i < node->u.update.nops; i++) {
        const jrn_trait_op *op = &node->u.update.ops[i];
        if (op->unset) { json_object_object_add(p->overlay, op->key, NULL); continue; }
        json_object *vars = vars_for(s, in, NULL, now), *val = NULL;
        expr_activation a;
        expr_val v;
        jd_err err;
        expr_activation_json(&a, vars);
        expr_scratch_reset(s->scratch);
        if (expr_eval(op->value, &a, s->scratch, &v, &err) == JD_OK) {
            if (v.kind == EXPR_BOOL) val = json_object_new_boolean(v.v.b);
            else if (v.kind == EXPR_INT) val = json_object_new_int64(v.v.i);
            else if (v.kind == EXPR_DOUBLE) val = json_object_new_double(v.v.d);
            else if (v.kind == EXPR_STRING) val = json_object_new_string_len(v.v.s.p, (int)v.v.s.n);
        } else {
            s->runtime_errors++;
        }
        json_object_put(vars);
        if (val) json_object_object_add(p->overlay, op->key, val);
    }
}

static void h_transition(void *self, const jrn_instance *in, uint32_t from, uint32_t to,
                         jrn_edge edge, uint32_t arm, int64_t now)
{
    sim *s = self;
    person *p = person_of(in);
    if (edge == JRN_EDGE_SPLIT_VARIANT && from != JRN_NONE)
        snprintf(p->variant, sizeof p->variant, "%s", s->doc->nodes[from].u.split.variants[arm].name);
    if (to == JRN_NONE) return;
    p->last_node = to;
    if (!p->visited[to]) {
        p->visited[to] = 1;
        s->stats[to].entered++;
    }
}

static void h_exit(void *self, const jrn_instance *in, jrn_end why, const jd_err *err, int64_t now)
{
    sim *s = self;
    person *p = person_of(in);
    unsigned w = (unsigned)why <= JRN_END_ERROR ? (unsigned)why : JRN_END_ERROR;
    tw_cancel(s->w, &p->in.timer);
    p->live = false;
    p->end = (uint8_t)w;
    s->exits[w]++;
    if (p->last_node != JRN_NONE) s->stats[p->last_node].exits[w]++;
    if (err && s->nerrors < SIM_MAX_ERRORS) {
        char t[JD_TIME_TEXT];
        jd_time_format(now, t);
        s->errors[s->nerrors++] = jd_strfmt("%s  %s  %s: %s%s%s", t, p->key,
                                            p->last_node != JRN_NONE ? s->doc->nodes[p->last_node].id : "(entry)",
                                            err->msg, err->where[0] ? " at " : "", err->where);
    }
    if (why == JRN_END_GOAL)
        for (uint32_t i = 0; i < s->doc->nnodes; i++)
            if (p->visited[i]) s->stats[i].goal++;
}

static void h_fire(tw_wheel *w, tw_entry *e, void *ctx)
{
    sim *s = ctx;
    jrn_instance *in = (jrn_instance *)(void *)((char *)e - offsetof(jrn_instance, timer));
    s->cur = person_of(in);
    jrn_on_timer(s->doc, in, (int64_t)tw_now(w), &s->io);
    s->cur = NULL;
}

static person *person_get(sim *s, jd_str key)
{
    person *p = jd_map_get(s->people, key.p, key.n);
    if (p) return p;
    p = jd_xcalloc(1, sizeof *p);
    p->key = jd_xstrndup(key.p, key.n);
    p->last_entered_us = INT64_MIN;
    p->last_node = JRN_NONE;
    p->visited = jd_xcalloc(s->doc->nnodes ? s->doc->nnodes : 1, 1);
    jd_map_put(s->people, p->key, key.n, p);
    if (s->npeople == s->pcap) {
        s->pcap = s->pcap ? s->pcap * 2 : 64;
        s->plist = jd_xrealloc(s->plist, s->pcap * sizeof *s->plist);
    }
    s->plist[s->npeople++] = p;
    return p;
}

/* One event through the host (invariant 1). */
static void sim_event(sim *s, const ingest_event *ev, uint64_t line)
{
    int64_t now = ev->timestamp_us;
    jd_err err;
    tw_advance(s->w, (uint64_t)now);
    prof_apply(s->profiles, ev, &err);
    jd_str key = prof_event_key(ev);
    if (!key.n) return;
    person *p = person_get(s, key);
    s->cur = p;
    if (p->live) jrn_on_event(s->doc, &p->in, ev, now, &s->io);
    bool match = false;
    jd_err_clear(&err);
    if (jrn_entry_matches(s->doc, ev, now, &s->io, &match, &err) != JD_OK) {
        s->entry_errors++;
        match = false;
    }
    if (match && jrn_reentry_allows(s->doc, p->live, p->last_entered_us, now)) {
        if (p->live) {
            s->skipped_concurrent++;
        } else {
            memset(&p->in, 0, sizeof p->in);
            memset(p->visited, 0, s->doc->nnodes ? s->doc->nnodes : 1);
            p->variant[0] = 0;
            p->last_node = JRN_NONE;
            p->live = true;
            p->last_entered_us = now;
            s->instances++;
            jrn_enter(s->doc, 1, &p->in, key, line, ev, now, &s->io);
        }
    }
    s->cur = NULL;
}

static int cmp_intent(const void *a, const void *b)
{
    const intent_rec *x = a, *y = b;
    if (x->at != y->at) return x->at < y->at ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static const char *const end_names[] = { "", "finished", "goal", "exit_rule", "control", "error" };

static void intent_what(const jrn_node *n, char *out, size_t cap)
{
    if (n->kind == JRN_SEND)
        snprintf(out, cap, "send %s/%s", n->u.send.channel, n->u.send.template_name);
    else if (n->kind == JRN_TASK)
        snprintf(out, cap, "task %s", n->u.task.queue ? n->u.task.queue : "");
    else
        snprintf(out, cap, "%s", n->id);
}

static double rate(uint64_t a, uint64_t b) { return b ? (double)a / (double)b : 0.0; }

static void print_text(const sim *s, uint64_t nentered_people)
{
    char t[JD_TIME_TEXT], what[256];
    printf("journey %s: %llu events read, %llu people entered (%llu instances)\n", s->doc->id,
           (unsigned long long)s->events, (unsigned long long)nentered_people, (unsigned long long)s->instances);
    printf("\nintents (%zu):\n", s->nintents);
    for (size_t i = 0; i < s->nintents; i++) {
        const intent_rec *r = &s->intents[i];
        const jrn_node *n = &s->doc->nodes[r->node];
        jd_time_format(r->at, t);
        intent_what(n, what, sizeof what);
        printf("%s  %s  %s  %s  (intent %016llx)\n", t, r->p->key, n->id, what, (unsigned long long)r->id);
    }
    printf("\nfunnel:\n%-24s %8s %8s %8s %9s %8s %8s %10s %7s\n", "node", "entered", "finished", "goal",
           "exit_rule", "control", "error", "converted", "rate");
    for (uint32_t i = 0; i < s->doc->nnodes; i++) {
        const node_stats *st = &s->stats[i];
        printf("%-24s %8llu %8llu %8llu %9llu %8llu %8llu %10llu %6.1f%%\n", s->doc->nodes[i].id,
               (unsigned long long)st->entered, (unsigned long long)st->exits[JRN_END_FINISHED],
               (unsigned long long)st->exits[JRN_END_GOAL], (unsigned long long)st->exits[JRN_END_EXIT_RULE],
               (unsigned long long)st->exits[JRN_END_CONTROL], (unsigned long long)st->exits[JRN_END_ERROR],
               (unsigned long long)st->goal, 100.0 * rate(st->goal, st->entered));
    }
    printf("%-24s %8llu %8llu %8llu %9llu %8llu %8llu %10llu %6.1f%%\n", "(journey)",
           (unsigned long long)s->instances, (unsigned long long)s->exits[JRN_END_FINISHED],
           (unsigned long long)s->exits[JRN_END_GOAL], (unsigned long long)s->exits[JRN_END_EXIT_RULE],
           (unsigned long long)s->exits[JRN_END_CONTROL], (unsigned long long)s->exits[JRN_END_ERROR],
           (unsigned long long)s->exits[JRN_END_GOAL], 100.0 * rate(s->exits[JRN_END_GOAL], s->instances));
    if (s->nerrors) {
        printf("\nerrors (first %zu of %llu):\n", s->nerrors, (unsigned long long)s->exits[JRN_END_ERROR]);
        for (size_t i = 0; i < s->nerrors; i++) printf("%s\n", s->errors[i]);
    }
    if (s->entry_errors || s->skipped_concurrent || s->runtime_errors)
        printf("\nnotes: %llu entry condition errors, %llu concurrent entries skipped, %llu update errors\n",
               (unsigned long long)s->entry_errors, (unsigned long long)s->skipped_concurrent,
               (unsigned long long)s->runtime_errors);
}

static json_object *exits_json(const uint64_t *exits)
{
    json_object *o = json_object_new_object();
    for (int k = JRN_END_FINISHED; k <= JRN_END_ERROR; k++)
        json_object_object_add(o, end_names[k], json_object_new_int64((int64_t)exits[k]));
    return o;
}

static void print_json(const sim *s, uint64_t nentered_people)
{
    char t[JD_TIME_TEXT], what[256], hex[17];
    json_object *o = json_object_new_object(), *arr = json_object_new_array(), *fun = json_object_new_array();
    json_object_object_add(o, "journey", json_object_new_string(s->doc->id));
    json_object_object_add(o, "events", json_object_new_int64((int64_t)s->events));
    json_object_object_add(o, "people_entered", json_object_new_int64((int64_t)nentered_people));
    json_object_object_add(o, "instances", json_object_new_int64((int64_t)s->instances));
    for (size_t i = 0; i < s->nintents; i++) {
        const intent_rec *r = &s->intents[i];
        const jrn_node *n = &s->doc->nodes[r->node];
        json_object *x = json_object_new_object();
        jd_time_format(r->at, t);
        intent_what(n, what, sizeof what);
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->id);
        json_object_object_add(x, "at", json_object_new_string(t));
        json_object_object_add(x, "person", json_object_new_string(r->p->key));
        json_object_object_add(x, "node", json_object_new_string(n->id));
        json_object_object_add(x, "what", json_object_new_string(what));
        if (n->kind == JRN_SEND) {
            json_object_object_add(x, "channel", json_object_new_string(n->u.send.channel));
            json_object_object_add(x, "template", json_object_new_string(n->u.send.template_name));
        } else if (n->kind == JRN_TASK && n->u.task.queue) {
            json_object_object_add(x, "queue", json_object_new_string(n->u.task.queue));
        }
        json_object_object_add(x, "intent", json_object_new_string(hex));
        json_object_array_add(arr, x);
    }
    json_object_object_add(o, "intents", arr);
    for (uint32_t i = 0; i < s->doc->nnodes; i++) {
        const node_stats *st = &s->stats[i];
        json_object *x = json_object_new_object();
        json_object_object_add(x, "node", json_object_new_string(s->doc->nodes[i].id));
        json_object_object_add(x, "entered", json_object_new_int64((int64_t)st->entered));
        json_object_object_add(x, "exits", exits_json(st->exits));
        json_object_object_add(x, "converted", json_object_new_int64((int64_t)st->goal));
        json_object_object_add(x, "rate", json_object_new_double(rate(st->goal, st->entered)));
        json_object_array_add(fun, x);
    }
    json_object_object_add(o, "funnel", fun);
    json_object *ppl = json_object_new_array();
    for (size_t i = 0; i < s->npeople; i++) {
        const person *p = s->plist[i];
        if (p->last_entered_us == INT64_MIN) continue;
        json_object *x = json_object_new_object();
        jd_time_format(p->last_entered_us, t);
        json_object_object_add(x, "person", json_object_new_string(p->key));
        json_object_object_add(x, "last_entered", json_object_new_string(t));
        json_object_object_add(x, "variant", json_object_new_string(p->variant));
        json_object_object_add(x, "end", json_object_new_string(p->live ? "waiting" : end_names[p->end]));
        json_object_array_add(ppl, x);
    }
    json_object_object_add(o, "people", ppl);
    json_object_object_add(o, "exits", exits_json(s->exits));
    json_object_object_add(o, "converted", json_object_new_int64((int64_t)s->exits[JRN_END_GOAL]));
    json_object_object_add(o, "conversion_rate", json_object_new_double(rate(s->exits[JRN_END_GOAL], s->instances)));
    json_object *errs = json_object_new_array();
    for (size_t i = 0; i < s->nerrors; i++) json_object_array_add(errs, json_object_new_string(s->errors[i]));
    json_object_object_add(o, "errors", errs);
    json_object_object_add(o, "entry_errors", json_object_new_int64((int64_t)s->entry_errors));
    json_object_object_add(o, "concurrent_skipped", json_object_new_int64((int64_t)s->skipped_concurrent));
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
}

static void gen_id(void *self, char out[37])
{
    snprintf(out, 37, "sim-%llu", (unsigned long long)*(const uint64_t *)self);
}

/* Parses one NDJSON line into *out (owned). Returns 0, or 1 after printing
 * "<file>:<line>: <message> at <path>". */
static int parse_line(const char *file, uint64_t line, const char *text, size_t n, ingest_batch **out)
{
    ingest_limits lim;
    jd_err err;
    jd_err_clear(&err);
    ingest_limits_default(&lim);
    int64_t rx = 0;
    ingest_route route = INGEST_ROUTE_TRACK;
    json_object *j = json_tokener_parse(text), *v;
    /* Received time = sentAt if given, else timestamp: skew correction
     * (timestamp = received - (sentAt - timestamp)) then keeps the client's
     * own timestamp. */
    int64_t sent = 0;
    if (j && json_object_object_get_ex(j, "timestamp", &v) && json_object_is_type(v, json_type_string)) {
        const char *ts = json_object_get_string(v);
        if (jd_time_parse(ts, strlen(ts), &rx) != JD_OK) rx = 0;
    }
    if (rx && j && json_object_object_get_ex(j, "sentAt", &v) && json_object_is_type(v, json_type_string)) {
        const char *ts = json_object_get_string(v);
        if (jd_time_parse(ts, strlen(ts), &sent) == JD_OK) rx = sent;
    }
    bool wrap = j != NULL;   /* bad JSON: any single route reports it with the line's own offsets */
    ingest_type ty;
    if (j && json_object_object_get_ex(j, "type", &v) && json_object_is_type(v, json_type_string) &&
        ingest_type_parse(json_object_get_string(v), &ty) == JD_OK) {
        route = (ingest_route)ty;
        wrap = false;
    }
    json_object_put(j);
    int rc;
    if (!wrap) {
        rc = ingest_parse(&lim, route, text, n, rx, gen_id, &line, out, &err);
    } else {
        /* No or unknown type: let ingest's batch route say what is wrong. */
        char *b = jd_strfmt("{\"batch\":[%s]}", text);
        rc = ingest_parse(&lim, INGEST_ROUTE_BATCH, b, strlen(b), rx, gen_id, &line, out, &err);
        free(b);
        if (rc == JD_OK) { ingest_batch_destroy(*out); *out = NULL; }
        if (rc == JD_OK) rc = jd_err_set(&err, JD_EINVAL, "type", "unknown message type");
        if (strncmp(err.where, "batch[0]", 8) == 0) {
            const char *rest = err.where + 8;
            if (*rest == '.') rest++;
            memmove(err.where, rest, strlen(rest) + 1);
        }
    }
    if (rc == JD_OK && rx == 0) {
        ingest_batch_destroy(*out);
        *out = NULL;
        rc = jd_err_set(&err, JD_EINVAL, "timestamp", "timestamp is required to replay an event");
    }
    if (rc != JD_OK) {
        if (err.where[0]) fprintf(stderr, "%s:%llu: %s at %s\n", file, (unsigned long long)line, err.msg, err.where);
        else fprintf(stderr, "%s:%llu: %s\n", file, (unsigned long long)line, err.msg);
        return 1;
    }
    return 0;
}

static int load_doc(const char *path, jrn_doc **doc)
{
    char *text = NULL;
    size_t n = 0;
    jd_err err;
    jd_err_clear(&err);
    int rc = jd_read_file(path, JRN_MAX_DOC_BYTES, &text, &n, &err);
    if (rc != JD_OK) {
        fprintf(stderr, "%s: %s\n", path, rc == JD_ENOTFOUND ? "no such file" : err.msg[0] ? err.msg : jd_strerror(rc));
        return 1;
    }
    jrn_diags diags = { 0 };
    rc = jrn_doc_parse(path, text, n, NULL, doc, &diags);
    if (rc != JD_OK) {
        jd_buf out;
        jd_buf_init(&out, (size_t)1 << 26);
        jrn_diags_format(&diags, &out);
        fputs(out.data ? out.data : "", stderr);
        jd_buf_release(&out);
    }
    jrn_diags_release(&diags);
    free(text);
    return rc == JD_OK ? 0 : 1;
}

static void sim_release(sim *s)
{
    for (size_t i = 0; i < s->npeople; i++) {
        free(s->plist[i]->key);
        free(s->plist[i]->visited);
        json_object_put(s->plist[i]->overlay);
        free(s->plist[i]);
    }
    free(s->plist);
    for (size_t i = 0; i < s->nerrors; i++) free(s->errors[i]);
    if (s->people) jd_map_destroy(s->people);
    if (s->w) tw_destroy(s->w);
    if (s->profiles) prof_store_destroy(s->profiles);
    if (s->scratch) expr_scratch_destroy(s->scratch);
    json_object_put(s->traits);
    free(s->intents);
    free(s->stats);
}

static int usage(const char *msg, const char *arg)
{
    fprintf(stderr, "journeyd simulate: %s%s%s%s\n%s", msg, arg ? " '" : "", arg ? arg : "", arg ? "'" : "", simulate_help);
    return 2;
}

int jrn_cli_simulate(int argc, char **argv)
{
    const char *journey = NULL, *events = NULL, *until_s = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { fputs(simulate_help, stdout); return 0; }
        if (strcmp(a, "--json") == 0) { json = true; continue; }
        const char **dst = strcmp(a, "--journey") == 0 ? &journey : strcmp(a, "--events") == 0 ? &events
                         : strcmp(a, "--until") == 0 ? &until_s : NULL;
        if (!dst) return usage("unknown option", a);
        if (i + 1 >= argc) return usage("missing value for", a);
        *dst = argv[++i];
    }
    if (!journey) return usage("--journey is required", NULL);
    if (!events) return usage("--events is required", NULL);
    int64_t until = 0;
    if (until_s && jd_time_parse(until_s, strlen(until_s), &until) != JD_OK)
        return usage("--until is not an RFC 3339 time:", until_s);

    jrn_doc *doc = NULL;
    if (load_doc(journey, &doc) != 0) return 1;

    int status = 1;
    sim s;
    memset(&s, 0, sizeof s);
    s.io = (jrn_io){ &s, h_eval, h_trait, h_arm, h_cancel, h_intent, h_update, h_transition, h_exit };
    s.doc = doc;
    prof_limits pl;
    prof_limits_default(&pl);
    s.profiles = prof_store_create(&pl);
    s.people = jd_map_create(64);
    s.scratch = expr_scratch_create((size_t)1 << 20);
    s.stats = jd_xcalloc(doc->nnodes ? doc->nnodes : 1, sizeof *s.stats);

    FILE *f = strcmp(events, "-") == 0 ? stdin : fopen(events, "r");
    const char *fname = strcmp(events, "-") == 0 ? "<stdin>" : events;
    char *buf = NULL;
    size_t cap = 0;
    if (!f) {
        fprintf(stderr, "%s: cannot open: %s\n", events, strerror(errno));
        goto out;
    }
    int64_t last = INT64_MIN;
    uint64_t line = 0;
    ssize_t len;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        line++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
            buf[--len] = 0;
        size_t sp = strspn(buf, " \t");
        if ((size_t)len == sp) continue;                     /* blank line */
        if ((size_t)len > SIM_MAX_LINE_BYTES) {
            fprintf(stderr, "%s:%llu: line is %zd bytes, over the %u-byte limit\n", fname, (unsigned long long)line,
                    len, SIM_MAX_LINE_BYTES);
            goto out;
        }
        ingest_batch *b = NULL;
        if (parse_line(fname, line, buf, (size_t)len, &b) != 0) goto out;
        for (size_t k = 0; k < b->n; k++) {
            const ingest_msg *m = &b->msgs[k];
            if (m->timestamp_us < last) {
                char t1[JD_TIME_TEXT], t2[JD_TIME_TEXT];
                jd_time_format(m->timestamp_us, t1);
                jd_time_format(last, t2);
                fprintf(stderr, "%s:%llu: event at %s is before the previous event (%s): events must be in time order at timestamp\n",
                        fname, (unsigned long long)line, t1, t2);
                ingest_batch_destroy(b);
                goto out;
            }
            last = m->timestamp_us;
            if (!s.w) s.w = tw_create((uint64_t)m->timestamp_us, h_fire, &s);
            ingest_event ev = { .type = m->type, .timestamp_us = m->timestamp_us, .received_us = m->received_us,
                                .user_id = m->user_id, .anonymous_id = m->anonymous_id, .event = m->event,
                                .group_id = m->group_id, .previous_id = m->previous_id,
                                .message_id = m->message_id, .json = m->json };
            s.events++;
            sim_event(&s, &ev, line);
        }
        ingest_batch_destroy(b);
    }
    if (ferror(f)) {
        fprintf(stderr, "%s: read error: %s\n", fname, strerror(errno));
        goto out;
    }
    if (s.w) {
        if (!until_s) until = last + (int64_t)(30 * JD_DAY);
        tw_advance(s.w, (uint64_t)until);
    }
    if (s.nintents) qsort(s.intents, s.nintents, sizeof *s.intents, cmp_intent);
    uint64_t entered = 0;
    for (size_t i = 0; i < s.npeople; i++) entered += s.plist[i]->last_entered_us != INT64_MIN;
    if (json) print_json(&s, entered);
    else print_text(&s, entered);
    status = 0;
out:
    if (f && f != stdin) fclose(f);
    free(buf);
    sim_release(&s);
    jrn_doc_destroy(doc);
    return status;
}
