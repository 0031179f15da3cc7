/* src/journey/simulate.c -- `journeyd simulate --journey FILE --events FILE`:
 * replays recorded Segment events (NDJSON) through one journey on a virtual
 * clock and prints what each person would have received, when, and the funnel.
 *
 * The run is the server's runtime, not a model of it: a jrn_reg with the one
 * journey published, a prof_store and one jrn_host (include/journeyd/runtime.h).
 * This file reads lines, feeds the host and turns its callbacks and counters
 * into the report.
 *
 * Invariants:
 *  (1) Per message, the shard's order: jrn_host_advance fires the waits due at
 *      or before its timestamp, prof_apply applies it to the profile, then
 *      jrn_host_event shows it to the person's instances and checks entry. The
 *      record's lsn is its line number (> 0, increasing). No wall clock, no
 *      randomness: the output is a function of the inputs (message ids are
 *      "sim-<line>").
 *  (2) Events must be in non-decreasing timestamp order; a line out of order
 *      or one ingest refuses stops the run with exit status 1 naming the line.
 *  (3) The simulation keeps no journey state of its own: per-node "entered" and
 *      the journey's exits come from jrn_host_stats; per-node exits, "converted"
 *      (the nodes a person visited, from the transition callback) and the
 *      people section come from the host's callbacks.
 *  (4) Every line is normalized by ingest_parse with received time = its sentAt
 *      (else its timestamp), so clock-skew correction keeps the recorded
 *      timestamp; a line without a timestamp is refused.
 */
#include "journeyd/journey_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "journeyd/base.h"
#include "journeyd/ingest.h"
#include "journeyd/journey.h"
#include "journeyd/profile.h"
#include "journeyd/runtime.h"
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
#define SIM_MAX_ERRORS 10          /* instances ended in error shown (all are counted) */

typedef struct person {
    char *key;
    int64_t last_entered_us;     /* INT64_MIN: never */
    uint32_t live;               /* live instances (several with concurrent: true) */
    uint8_t *visited;            /* nnodes flags: nodes the live instance(s) reached */
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
    uint64_t exits[JRN_END_COUNT_];   /* instances that ended at the node, by reason */
    uint64_t goal;                    /* instances that reached it and converted */
} node_stats;

typedef struct sim {
    const jrn_doc *doc;          /* version 1 of the journey, owned by the registry */
    jd_map *people;
    person **plist; size_t npeople, pcap;
    intent_rec *intents; size_t nintents, icap;
    node_stats *stats;
    uint64_t events;
    char *errors[SIM_MAX_ERRORS]; size_t nerrors;   /* the first instances ended in error, as text */
} sim;

static person *person_get(sim *s, jd_str key)
{
    person *p = jd_map_get(s->people, key.p, key.n);
    if (p) return p;
    p = jd_xcalloc(1, sizeof *p);
    p->key = jd_xstrndup(key.p, key.n);
    p->last_entered_us = INT64_MIN;
    p->visited = jd_xcalloc(s->doc->nnodes ? s->doc->nnodes : 1, 1);
    jd_map_put(s->people, p->key, key.n, p);
    if (s->npeople == s->pcap) {
        s->pcap = s->pcap ? s->pcap * 2 : 64;
        s->plist = jd_xrealloc(s->plist, s->pcap * sizeof *s->plist);
    }
    s->plist[s->npeople++] = p;
    return p;
}

/* ---- the host's callbacks ------------------------------------------------- */

static void out_intent(void *self, const jrn_intent *it)
{
    sim *s = self;
    if (s->nintents == s->icap) {
        s->icap = s->icap ? s->icap * 2 : 64;
        s->intents = jd_xrealloc(s->intents, s->icap * sizeof *s->intents);
    }
    s->intents[s->nintents] = (intent_rec){ it->at_us, s->nintents, it->id, person_get(s, it->key), it->node->index };
    s->nintents++;
}

static void out_transition(void *self, const jrn_journey *j, uint32_t version, jd_str key, uint32_t from, uint32_t to,
                          jrn_edge edge, uint32_t arm, int64_t now)
{
    sim *s = self;
    person *p = person_get(s, key);
    if (from == JRN_NONE) {   /* an entry */
        if (!p->live) memset(p->visited, 0, s->doc->nnodes ? s->doc->nnodes : 1);
        p->live++;
        p->last_entered_us = now;
        p->variant[0] = 0;
    }
    if (edge == JRN_EDGE_SPLIT_VARIANT && from != JRN_NONE && arm < s->doc->nodes[from].u.split.nvariants)
        snprintf(p->variant, sizeof p->variant, "%s", s->doc->nodes[from].u.split.variants[arm].name);
    if (to != JRN_NONE && to < s->doc->nnodes) p->visited[to] = 1;
}

static void out_exit(void *self, const jrn_journey *j, uint32_t version, jd_str key, uint32_t last_node, jrn_end why,
                    const jd_err *err, int64_t now)
{
    sim *s = self;
    person *p = person_get(s, key);
    if (p->live) p->live--;
    p->end = (uint8_t)why;
    if (last_node < s->doc->nnodes) s->stats[last_node].exits[why]++;
    if (why == JRN_END_GOAL)
        for (uint32_t i = 0; i < s->doc->nnodes; i++)
            if (p->visited[i]) s->stats[i].goal++;
    if (err && s->nerrors < SIM_MAX_ERRORS) {
        char t[JD_TIME_TEXT];
        jd_time_format(now, t);
        s->errors[s->nerrors++] = jd_strfmt("%s  %s  %s: %s%s%s", t, p->key,
                                            last_node < s->doc->nnodes ? s->doc->nodes[last_node].id : "(entry)",
                                            err->msg, err->where[0] ? " at " : "", err->where);
    }
}

/* ---- the report ------------------------------------------------------------ */

static int cmp_intent(const void *a, const void *b)
{
    const intent_rec *x = a, *y = b;
    if (x->at != y->at) return x->at < y->at ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

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

static const char *end_name(unsigned why) { return why ? jrn_end_name((jrn_end)why) : ""; }

static void print_text(const sim *s, const jrn_vstats *st, uint64_t nentered_people)
{
    char t[JD_TIME_TEXT], what[256];
    printf("journey %s: %llu events read, %llu people entered (%llu instances)\n", s->doc->id,
           (unsigned long long)s->events, (unsigned long long)nentered_people, (unsigned long long)st->entered);
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
        const node_stats *ns = &s->stats[i];
        uint64_t entered = i < st->nnodes ? st->node_entered[i] : 0;
        printf("%-24s %8llu %8llu %8llu %9llu %8llu %8llu %10llu %6.1f%%\n", s->doc->nodes[i].id,
               (unsigned long long)entered, (unsigned long long)ns->exits[JRN_END_FINISHED],
               (unsigned long long)ns->exits[JRN_END_GOAL], (unsigned long long)ns->exits[JRN_END_EXIT_RULE],
               (unsigned long long)ns->exits[JRN_END_CONTROL], (unsigned long long)ns->exits[JRN_END_ERROR],
               (unsigned long long)ns->goal, 100.0 * rate(ns->goal, entered));
    }
    printf("%-24s %8llu %8llu %8llu %9llu %8llu %8llu %10llu %6.1f%%\n", "(journey)",
           (unsigned long long)st->entered, (unsigned long long)st->exits[JRN_END_FINISHED],
           (unsigned long long)st->exits[JRN_END_GOAL], (unsigned long long)st->exits[JRN_END_EXIT_RULE],
           (unsigned long long)st->exits[JRN_END_CONTROL], (unsigned long long)st->exits[JRN_END_ERROR],
           (unsigned long long)st->exits[JRN_END_GOAL], 100.0 * rate(st->exits[JRN_END_GOAL], st->entered));
    if (s->nerrors) {
        printf("\nerrors (first %zu of %llu):\n", s->nerrors, (unsigned long long)st->exits[JRN_END_ERROR]);
        for (size_t i = 0; i < s->nerrors; i++) printf("%s\n", s->errors[i]);
    }
    if (st->condition_errors)
        printf("\nnotes: %llu condition errors (each counted as false); last: %s\n",
               (unsigned long long)st->condition_errors, st->last_error);
}

static json_object *exits_json(const uint64_t *exits)
{
    json_object *o = json_object_new_object();
    for (int k = JRN_END_FINISHED; k <= JRN_END_ERROR; k++)
        json_object_object_add(o, jrn_end_name((jrn_end)k), json_object_new_int64((int64_t)exits[k]));
    return o;
}

static json_object *intent_json(const sim *s, const intent_rec *r)
{
    char t[JD_TIME_TEXT], what[256], hex[17];
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
    return x;
}

static void print_json(const sim *s, const jrn_vstats *st, uint64_t nentered_people)
{
    char t[JD_TIME_TEXT];
    json_object *o = json_object_new_object(), *arr = json_object_new_array(), *fun = json_object_new_array();
    json_object_object_add(o, "journey", json_object_new_string(s->doc->id));
    json_object_object_add(o, "events", json_object_new_int64((int64_t)s->events));
    json_object_object_add(o, "people_entered", json_object_new_int64((int64_t)nentered_people));
    json_object_object_add(o, "instances", json_object_new_int64((int64_t)st->entered));
    for (size_t i = 0; i < s->nintents; i++) json_object_array_add(arr, intent_json(s, &s->intents[i]));
    json_object_object_add(o, "intents", arr);
    for (uint32_t i = 0; i < s->doc->nnodes; i++) {
        const node_stats *ns = &s->stats[i];
        uint64_t entered = i < st->nnodes ? st->node_entered[i] : 0;
        json_object *x = json_object_new_object();
        json_object_object_add(x, "node", json_object_new_string(s->doc->nodes[i].id));
        json_object_object_add(x, "entered", json_object_new_int64((int64_t)entered));
        json_object_object_add(x, "exits", exits_json(ns->exits));
        json_object_object_add(x, "converted", json_object_new_int64((int64_t)ns->goal));
        json_object_object_add(x, "rate", json_object_new_double(rate(ns->goal, entered)));
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
        json_object_object_add(x, "end", json_object_new_string(p->live ? "waiting" : end_name(p->end)));
        json_object_array_add(ppl, x);
    }
    json_object_object_add(o, "people", ppl);
    json_object_object_add(o, "exits", exits_json(st->exits));
    json_object_object_add(o, "converted", json_object_new_int64((int64_t)st->exits[JRN_END_GOAL]));
    json_object_object_add(o, "conversion_rate", json_object_new_double(rate(st->exits[JRN_END_GOAL], st->entered)));
    json_object *errs = json_object_new_array();
    for (size_t i = 0; i < s->nerrors; i++) json_object_array_add(errs, json_object_new_string(s->errors[i]));
    json_object_object_add(o, "errors", errs);
    json_object_object_add(o, "condition_errors", json_object_new_int64((int64_t)st->condition_errors));
    json_object_object_add(o, "last_condition_error", json_object_new_string(st->last_error));
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
}

/* ---- input ----------------------------------------------------------------- */

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

/* Publishes the journey at `path` as version 1 of a fresh registry. Returns 0,
 * or 1 after printing the diagnostics (as `journeyd validate` does). */
static int publish(const char *path, jrn_reg *reg)
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
    /* Parsed here only for its diagnostics and its id; the registry compiles its own copy. */
    jrn_doc *doc = NULL;
    jrn_diags diags = { 0 };
    rc = jrn_doc_parse(path, text, n, NULL, &doc, &diags);
    if (rc != JD_OK) {
        jd_buf out;
        jd_buf_init(&out, (size_t)1 << 26);
        jrn_diags_format(&diags, &out);
        fputs(out.data ? out.data : "", stderr);
        jd_buf_release(&out);
    } else {
        /* No segments are evaluated here (no one is a member of any): the
         * ones the document names are defined as never true, so it
         * publishes, and segment rules, waits and goals see no change. */
        for (uint32_t i = 0; i <= doc->nexits + doc->nnodes; i++) {
            const char *name = i < doc->nexits ? doc->exits[i].event
                               : i == doc->nexits ? doc->goal.event
                               : doc->nodes[i - doc->nexits - 1].kind == JRN_WAIT ? doc->nodes[i - doc->nexits - 1].u.wait.event
                                                                                  : NULL;
            bool enter;
            const char *seg = jrn_segment_event_parse(name, &enter);
            if (!seg || jrn_reg_segment_find(reg, seg)) continue;
            char *def = jd_strfmt("id: %s\nwhen: false\n", seg);
            jrn_ctl sc = { JRN_OP_SEGMENT, seg, def, strlen(def), path };
            const jrn_journey *none = NULL;
            jrn_status was0;
            jrn_reg_apply(reg, &sc, 0, &none, &was0, &err);   /* an id that parsed as one: cannot fail */
            free(def);
        }
        jrn_ctl ctl = { JRN_OP_PUBLISH, doc->id, text, n, path };
        const jrn_journey *j = NULL;
        jrn_status was;
        rc = jrn_reg_apply(reg, &ctl, 0, &j, &was, &err);
        if (rc != JD_OK) fprintf(stderr, "%s: %s\n", path, err.msg);
    }
    jrn_diags_release(&diags);
    jrn_doc_destroy(doc);
    free(text);
    return rc == JD_OK ? 0 : 1;
}

static void sim_release(sim *s)
{
    for (size_t i = 0; i < s->npeople; i++) {
        free(s->plist[i]->key);
        free(s->plist[i]->visited);
        free(s->plist[i]);
    }
    free(s->plist);
    for (size_t i = 0; i < s->nerrors; i++) free(s->errors[i]);
    if (s->people) jd_map_destroy(s->people);
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

    int status = 1;
    sim s;
    memset(&s, 0, sizeof s);
    jrn_host *h = NULL;
    prof_store *profiles = NULL;
    FILE *f = NULL;
    char *buf = NULL;
    size_t cap = 0;
    jrn_reg *reg = jrn_reg_create(NULL);
    if (publish(journey, reg) != 0) goto out;
    const jrn_journey *j = jrn_reg_at(reg, 0);
    s.doc = jrn_reg_live(j)->doc;
    s.people = jd_map_create(64);
    s.stats = jd_xcalloc(s.doc->nnodes ? s.doc->nnodes : 1, sizeof *s.stats);
    prof_limits pl;
    prof_limits_default(&pl);
    profiles = prof_store_create(&pl);
    const jrn_host_out hout = { .self = &s, .intent = out_intent, .exit = out_exit, .transition = out_transition };

    f = strcmp(events, "-") == 0 ? stdin : fopen(events, "r");
    const char *fname = strcmp(events, "-") == 0 ? "<stdin>" : events;
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
            ingest_event ev = { .type = m->type, .timestamp_us = m->timestamp_us, .received_us = m->received_us,
                                .user_id = m->user_id, .anonymous_id = m->anonymous_id, .event = m->event,
                                .group_id = m->group_id, .previous_id = m->previous_id,
                                .message_id = m->message_id, .json = m->json };
            jd_err err;
            jd_err_clear(&err);
            s.events++;
            if (!h) h = jrn_host_create(reg, profiles, ev.timestamp_us, &hout);
            jrn_host_advance(h, ev.timestamp_us, line);   /* invariant (1) */
            prof_apply(profiles, &ev, &err);
            jrn_host_event(h, &ev, line, ev.timestamp_us);
        }
        ingest_batch_destroy(b);
    }
    if (ferror(f)) {
        fprintf(stderr, "%s: read error: %s\n", fname, strerror(errno));
        goto out;
    }
    if (h) {
        if (!until_s) until = last + (int64_t)(30 * JD_DAY);
        jrn_host_advance(h, until, line + 1);
    }
    if (s.nintents) qsort(s.intents, s.nintents, sizeof *s.intents, cmp_intent);
    uint64_t entered = 0;
    for (size_t i = 0; i < s.npeople; i++) entered += s.plist[i]->last_entered_us != INT64_MIN;
    static const jrn_vstats none;
    const jrn_vstats *st = h ? jrn_host_stats(h, j->index, 1) : NULL;
    if (!st) st = &none;
    if (json) print_json(&s, st, entered);
    else print_text(&s, st, entered);
    status = 0;
out:
    if (f && f != stdin) fclose(f);
    free(buf);
    jrn_host_destroy(h);
    prof_store_destroy(profiles);
    sim_release(&s);
    jrn_reg_destroy(reg);
    return status;
}
