/*
** src/journey/host.c -- one partition's journey instances (jrn_host in
** include/journeyd/runtime.h): who is where, their waits in a timer wheel, the
** expression activation, update nodes, counters. The snapshot codec is in
** host_codec.c; moving a person to another partition (identity merges) is in
** host_merge.c.
**
** Layout (docs/internals/instance.md has the byte counts):
**   people: key -> jh_person { pj[]: one jh_pj per journey the person was in }
**   jh_pj:  re-entry history and the list of live jh_inst (usually 0 or 1)
**   jh_inst: the jrn_instance (its timer embedded) + back-pointer and flags
**
** A turn is one input for one person: an event, a fired timer, an API entry.
** The activation's values are built lazily once per turn: the event JSON is
** parsed when an expression first reads `event`, the profile view when one
** first reads `profile` (and again after an update node changed it).
**
** Invariants:
**  (1) A live instance is in exactly one pj->live list; an instance that
**      reaches EXITED is unlinked and freed by the host right after the
**      jrn_* call that ended it returns (never inside a callback).
**  (2) At most one live instance per (person, journey) unless the live
**      version's document says concurrent: true.
**  (3) An instance is entered by a record only if the record's lsn is above
**      the pj's last_entry_lsn: one record never enters a person twice.
**  (4) A condition that fails at run time (a missing key, a type error) is
**      false; the failure is counted in the version's condition_errors with
**      its message (docs/journeys.md, "errors").
**  (5) Waits of a paused journey that come due are held (INST_HELD) and run,
**      in deadline order, when the journey resumes.
**  (6) Segment membership is re-evaluated in the turn whenever the profile
**      may have changed: before an event reaches the person's instances, and
**      at the end of a turn in which an update node ran (up to
**      JH_MAX_SEGMENT_ROUNDS times: each round's changes may run more update
**      nodes). So a segment change caused by another journey reaches exit
**      rules, waits and segment entries in the turn that caused it, and
**      replay gives the same result.
*/
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "journeyd/limits.h"
#include "journeyd/runtime.h"
#include "journeyd/timer.h"
#include "host_int.h"

/* ---- people and instances -------------------------------------------------- */

static jh_inst *inst_of(jrn_instance *in) { return (jh_inst *)(void *)((char *)in - offsetof(jh_inst, in)); }

static uint32_t key_hash(const char *key, size_t kn) { return (uint32_t)jd_hash64(key, kn); }

jh_person *jh__person(const jrn_host *h, const char *key, size_t kn)
{
    if (!h->people.cap) return NULL;
    uint32_t hash = key_hash(key, kn), mask = h->people.cap - 1;
    for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
        jh_person *p = h->people.slots[i];
        if (!p) return NULL;
        if (p->hash == hash && p->key_len == kn && memcmp(p->key, key, kn) == 0) return p;
    }
}

static void people_insert(jh_people *t, jh_person *p)
{
    uint32_t mask = t->cap - 1, i = p->hash & mask;
    while (t->slots[i]) i = (i + 1) & mask;
    t->slots[i] = p;
}

jh_person *jh__person_add(jrn_host *h, const char *key, size_t kn)
{
    jh_person *p = jh__person(h, key, kn);
    if (p) return p;
    jh_people *t = &h->people;
    if ((uint64_t)(t->len + 1) * 8 > (uint64_t)t->cap * 7) {   /* at most 7/8 full */
        jh_people old = *t;
        t->cap = old.cap ? old.cap * 2 : 64;
        t->slots = jd_xcalloc(t->cap, sizeof *t->slots);
        for (uint32_t i = 0; i < old.cap; i++)
            if (old.slots[i]) people_insert(t, old.slots[i]);
        free(old.slots);
    }
    p = jd_xcalloc(1, sizeof *p + kn + 1);
    p->key_len = (uint32_t)kn;
    p->hash = key_hash(key, kn);
    memcpy(p->key, key, kn);
    people_insert(t, p);
    t->len++;
    return p;
}

/* Backward shift: linear probing has no tombstones. */
void jh__person_remove(jrn_host *h, jh_person *p)
{
    jh_people *t = &h->people;
    uint32_t mask = t->cap - 1, i = p->hash & mask;
    while (t->slots[i] != p) i = (i + 1) & mask;
    t->slots[i] = NULL;
    for (uint32_t j = i;;) {
        j = (j + 1) & mask;
        jh_person *q = t->slots[j];
        if (!q) break;
        uint32_t k = q->hash & mask;
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays) continue;
        t->slots[i] = q;
        t->slots[j] = NULL;
        i = j;
    }
    t->len--;
    free(p->pj);
    free(p);
}

/* The entry events kept for versions that read journey.entry. */
typedef struct jh_entry { uint64_t id; char json[]; } jh_entry;

void jh__entry_keep(jrn_host *h, jh_inst *x, jd_str json)
{
    jh_entry *e = jd_xmalloc(sizeof *e + json.n + 1);
    e->id = x->in.id;
    memcpy(e->json, json.p, json.n);
    e->json[json.n] = 0;
    free(jd_map_put(h->entries, (const char *)&e->id, sizeof e->id, e));
    x->flags |= JH_ENTRY;
}

const char *jh__entry(const jrn_host *h, const jh_inst *x)
{
    if (!(x->flags & JH_ENTRY)) return NULL;
    jh_entry *e = jd_map_get(h->entries, (const char *)&x->in.id, sizeof x->in.id);
    return e ? e->json : NULL;
}

jh_pj *jh__pj(jh_person *p, uint32_t journey, bool add)
{
    for (uint16_t i = 0; i < p->n; i++)
        if (p->pj[i].journey == journey) return &p->pj[i];
    if (!add) return NULL;
    if (p->n == p->cap) {
        p->cap = p->cap ? (uint16_t)(p->cap * 2) : 1;
        p->pj = jd_xrealloc(p->pj, p->cap * sizeof *p->pj);
    }
    jh_pj *pj = &p->pj[p->n++];
    memset(pj, 0, sizeof *pj);
    pj->journey = journey;
    pj->last_entered_us = INT64_MIN;
    return pj;
}

const jrn_version *jh__version(const jrn_host *h, uint32_t journey, uint32_t version)
{
    const jrn_journey *j = jrn_reg_at(h->reg, journey);
    return j && version >= 1 && version <= j->nversions ? j->versions[version - 1] : NULL;
}

static const jrn_doc *doc_of(const jrn_host *h, const jh_inst *x)
{
    return jh__version(h, x->journey, x->in.version)->doc;
}

jrn_vstats *jh__stats(jrn_host *h, uint32_t journey, uint32_t version)
{
    if (journey >= h->nstats) {
        uint32_t n = journey + 8;
        h->stats = jd_xrealloc(h->stats, n * sizeof *h->stats);
        h->nstats_v = jd_xrealloc(h->nstats_v, n * sizeof *h->nstats_v);
        for (uint32_t i = h->nstats; i < n; i++) { h->stats[i] = NULL; h->nstats_v[i] = 0; }
        h->nstats = n;
    }
    if (version > h->nstats_v[journey]) {
        h->stats[journey] = jd_xrealloc(h->stats[journey], version * sizeof *h->stats[journey]);
        for (uint32_t v = h->nstats_v[journey]; v < version; v++) h->stats[journey][v] = NULL;
        h->nstats_v[journey] = version;
    }
    jrn_vstats **slot = &h->stats[journey][version - 1];
    if (!*slot) {
        const jrn_version *ver = jh__version(h, journey, version);
        *slot = jd_xcalloc(1, sizeof **slot);
        (*slot)->nnodes = ver ? ver->doc->nnodes : 0;
        (*slot)->node_entered = jd_xcalloc((*slot)->nnodes ? (*slot)->nnodes : 1, sizeof(uint64_t));
    }
    return *slot;
}

const jrn_vstats *jrn_host_stats(const jrn_host *h, uint32_t journey, uint32_t version)
{
    if (journey >= h->nstats || version < 1 || version > h->nstats_v[journey]) return NULL;
    return h->stats[journey][version - 1];
}

jh_inst *jh__inst_new(jrn_host *h, jh_person *p, jh_pj *pj)
{
    jh_inst *x = jd_xcalloc(1, sizeof *x);
    x->p = p;
    x->journey = pj->journey;
    x->split_node = JH_NO_SPLIT;
    x->next = pj->live;
    pj->live = x;
    h->live++;
    return x;
}

/* Invariant (1). */
void jh__inst_free(jrn_host *h, jh_inst *x)
{
    jh_pj *pj = jh__pj(x->p, x->journey, false);
    JD_ASSERT(pj);
    for (jh_inst **pp = &pj->live; *pp; pp = &(*pp)->next)
        if (*pp == x) { *pp = x->next; break; }
    tw_cancel(h->w, &x->in.timer);
    if (x->flags & JH_ENTRY) free(jd_map_del(h->entries, (const char *)&x->in.id, sizeof x->in.id));
    free(x);
    h->live--;
}

static void reap(jrn_host *h, jh_inst *x)
{
    if (x->in.state == JRN_ST_EXITED) jh__inst_free(h, x);
}

/* ---- the turn and the activation ------------------------------------------ */

void jh__turn_begin(jrn_host *h, jh_person *p, jd_str key, const ingest_event *ev)
{
    h->t.p = p;
    h->t.key = key;
    h->t.ev = ev;
}

/* After an update node changed the person's profile: every live instance of
 * theirs whose version has a condition-only exit rule checks it now, not at
 * the person's next event. Run at the end of the turn, when no caller is
 * walking the person's instance lists. Exit rules only end or pause, so this
 * cannot change the profile again. */
static void recheck_exits(jrn_host *h)
{
    jh_person *p = h->t.p;
    h->t.changed = false;
    size_t n = 0, k = 0;
    for (uint16_t i = 0; i < p->n; i++)
        for (jh_inst *x = p->pj[i].live; x; x = x->next) n++;
    if (!n) return;
    jh_inst **v = jd_xmalloc(n * sizeof *v);
    for (uint16_t i = 0; i < p->n; i++)
        for (jh_inst *x = p->pj[i].live; x; x = x->next) v[k++] = x;
    for (size_t i = 0; i < n; i++) {
        const jrn_version *ver = jh__version(h, v[i]->journey, v[i]->in.version);
        if (!ver->listens_all || jrn_reg_at(h->reg, v[i]->journey)->status != JRN_ACTIVE) continue;
        jrn_on_profile_change(ver->doc, &v[i]->in, h->now, &h->io);
        reap(h, v[i]);
    }
    free(v);
}

void jh__turn_end(jrn_host *h)
{
    /* An update node changed the profile: segments are re-evaluated in this
     * turn, so a membership it changes reaches exit rules, waits and entries
     * now (invariant (6)). */
    for (int round = 0; h->t.updated && h->t.key.n && round < JH_MAX_SEGMENT_ROUNDS; round++) {
        h->t.updated = false;
        jh__segs_update(h, h->t.key, h->now, h->lsn);
        if (!h->t.p) h->t.p = jh__person(h, h->t.key.p, h->t.key.n);
    }
    if (h->t.changed && h->t.p) recheck_exits(h);
    json_object_put(h->t.evj);
    json_object_put(h->t.prof);
    json_object_put(h->t.jobj);
    memset(&h->t, 0, sizeof h->t);
}

static json_object *event_json(jrn_host *h)
{
    if (!h->t.evj_done && h->t.ev && h->t.ev->json.n) {
        json_tokener_reset(h->tok);
        h->t.evj = json_tokener_parse_ex(h->tok, h->t.ev->json.p, (int)h->t.ev->json.n);
    }
    h->t.evj_done = true;
    return h->t.evj;
}

static json_object *profile_json(jrn_host *h)
{
    if (!h->t.prof) {
        if (h->t.key.n) h->t.prof = prof_view_at(h->profiles, h->t.key.p, h->t.key.n, h->t.now);
        if (!h->t.prof) {   /* entered through the API before any event: an empty profile */
            h->t.prof = json_object_new_object();
            json_object_object_add(h->t.prof, "traits", json_object_new_object());
            json_object_object_add(h->t.prof, "tags", json_object_new_array());
        }
    }
    return h->t.prof;
}

static json_object *journey_json(jrn_host *h, const jh_inst *x)
{
    char t[JD_TIME_TEXT];
    const jrn_doc *doc = doc_of(h, x);
    json_object *j = json_object_new_object();
    json_object_object_add(j, "id", json_object_new_string(doc->id));
    json_object_object_add(j, "version", json_object_new_int64(x->in.version));
    jd_time_format(x->in.entered_us, t);
    json_object_object_add(j, "entered_at", json_object_new_string(t));
    json_object_object_add(j, "seconds_in_journey", json_object_new_int64((h->t.now - x->in.entered_us) / (int64_t)JD_SEC));
    const char *variant = "";
    if (x->split_node < doc->nnodes && x->in.variant && x->in.variant <= doc->nodes[x->split_node].u.split.nvariants)
        variant = doc->nodes[x->split_node].u.split.variants[x->in.variant - 1].name;
    json_object_object_add(j, "variant", json_object_new_string(variant));
    const char *entry = jh__entry(h, x);
    if (entry) {
        json_object *e = json_tokener_parse(entry);
        if (e) json_object_object_add(j, "entry", e);
    }
    json_object_put(h->t.jobj);
    h->t.jobj = j;
    return j;
}

int jh__resolve(void *self, const char *name, expr_val *out)
{
    jrn_host *h = self;
    json_object *o = NULL;
    if (strcmp(name, "now") == 0) {
        memset(out, 0, sizeof *out);
        out->kind = EXPR_TIMESTAMP;
        out->v.i = h->t.now;
        return JD_OK;
    }
    if (strncmp(name, "segment:", 8) == 0) {   /* in_segment("id") */
        const jrn_segment *sg = jrn_reg_segment_find(h->reg, name + 8);
        if (!sg) return JD_ENOTFOUND;
        memset(out, 0, sizeof *out);
        out->kind = EXPR_BOOL;
        out->v.b = jh__seg_member(h, h->t.key, sg->bit);
        return JD_OK;
    }
    if (strncmp(name, "consent:", 8) == 0) {   /* consented(channel[, topic]) */
        char ch[JD_MAX_CONSENT_NAME_BYTES + 1];
        const char *c = name + 8, *slash = strchr(c, '/');
        size_t cn = slash ? (size_t)(slash - c) : strlen(c);
        if (!cn || cn >= sizeof ch) return JD_ENOTFOUND;   /* consented() checked it: not reached */
        memcpy(ch, c, cn);
        ch[cn] = 0;
        memset(out, 0, sizeof *out);
        out->kind = EXPR_BOOL;
        out->v.b = prof_consent_allows(h->profiles, h->t.key.p, h->t.key.n, ch, slash ? slash + 1 : NULL, NULL, 0);
        return JD_OK;
    }
    if (strcmp(name, "event") == 0) o = event_json(h);
    else if (strcmp(name, "profile") == 0) o = profile_json(h);
    else if (strcmp(name, "journey") == 0 && h->t.in) o = journey_json(h, inst_of((jrn_instance *)h->t.in));
    if (!o) return JD_ENOTFOUND;   /* segments arrive with issue 'Profiles': in_segment() is an error until then */
    expr_val_from_json(o, out);
    return JD_OK;
}

static void note_error(jrn_host *h, const jd_err *err)
{
    jrn_vstats *st = jh__stats(h, h->t.journey, h->t.version);
    st->condition_errors++;
    snprintf(st->last_error, sizeof st->last_error, "%.150s%s%.32s", err->msg, err->where[0] ? " at " : "", err->where);
}

/* Invariant (4): an error is false, counted. */
static int h_eval(void *self, const jrn_instance *in, const expr_prog *p, const ingest_event *ev, int64_t now,
                  bool *out, jd_err *err)
{
    jrn_host *h = self;
    expr_activation a = { jh__resolve, h, NULL };
    h->t.in = in;
    h->t.now = now;
    if (in) { h->t.journey = inst_of((jrn_instance *)in)->journey; h->t.version = in->version; }
    /* A segment change is an event of its own inside the turn (jrn_on_segment,
     * or a segment wait that already holds): `event` is that one, for this
     * evaluation only. */
    const ingest_event *turn_ev = h->t.ev;
    json_object *turn_evj = h->t.evj;
    bool turn_done = h->t.evj_done, swap = ev && ev != turn_ev && ev->type == JRN_EV_SEGMENT;
    if (swap) {
        h->t.ev = ev;
        h->t.evj = NULL;
        h->t.evj_done = false;
    }
    expr_scratch_reset(h->scratch);
    jd_err e;
    jd_err_clear(&e);
    if (expr_eval_bool(p, &a, h->scratch, out, &e) != JD_OK) {
        note_error(h, &e);
        *out = false;
    }
    if (swap) {
        json_object_put(h->t.evj);
        h->t.ev = turn_ev;
        h->t.evj = turn_evj;
        h->t.evj_done = turn_done;
    }
    (void)err;
    return JD_OK;
}

static bool h_in_segment(void *self, const jrn_instance *in, const char *id)
{
    const jrn_host *h = self;
    const jh_inst *x = inst_of((jrn_instance *)in);
    const jrn_segment *sg = jrn_reg_segment_find(h->reg, id);
    return sg && jh__seg_member(h, (jd_str){ x->p->key, x->p->key_len }, sg->bit);
}

static const char *h_trait(void *self, const char *key)
{
    jrn_host *h = self;
    json_object *tr, *v;
    if (!json_object_object_get_ex(profile_json(h), "traits", &tr) || !json_object_object_get_ex(tr, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static void h_arm(void *self, jrn_instance *in, int64_t when)
{
    jrn_host *h = self;
    tw_arm(h->w, &in->timer, when < 0 ? 0 : (uint64_t)when);
}

static void h_cancel(void *self, jrn_instance *in)
{
    jrn_host *h = self;
    tw_cancel(h->w, &in->timer);
}

static void h_intent(void *self, const jrn_instance *in, const jrn_node *node, uint64_t id, int64_t now)
{
    jrn_host *h = self;
    jh_inst *x = inst_of((jrn_instance *)in);
    if (!h->out.intent) return;
    h->t.now = now;   /* as h_eval: the views are of the turn's time */
    jrn_intent it = { id, in->id, jrn_reg_at(h->reg, x->journey), in->version, node,
                      { x->p->key, x->p->key_len }, now, h->lsn, event_json(h), profile_json(h) };
    json_object *entry = NULL;
    const char *kept;
    if (!it.event && (kept = jh__entry(h, x)) != NULL) {
        json_tokener_reset(h->tok);
        it.event = entry = json_tokener_parse_ex(h->tok, kept, (int)strlen(kept));
    }
    h->out.intent(h->out.self, &it);
    json_object_put(entry);
}

/* A value computed by an update node, as JSON text for prof_update. */
static char *value_json(const expr_val *v)
{
    json_object *o = NULL;
    switch (v->kind) {
    case EXPR_NULL: return NULL;
    case EXPR_BOOL: o = json_object_new_boolean(v->v.b); break;
    case EXPR_INT: o = json_object_new_int64(v->v.i); break;
    case EXPR_UINT: o = json_object_new_uint64(v->v.u); break;
    case EXPR_DOUBLE: o = json_object_new_double(v->v.d); break;
    case EXPR_STRING: o = json_object_new_string_len(v->v.s.p, (int)v->v.s.n); break;
    case EXPR_TIMESTAMP: {
        char t[JD_TIME_TEXT];
        jd_time_format(v->v.i, t);
        o = json_object_new_string(t);
        break;
    }
    default:
        if ((v->kind == EXPR_MAP || v->kind == EXPR_LIST) && v->v.json)
            return jd_xstrdup(json_object_to_json_string_ext((json_object *)v->v.json, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        return NULL;
    }
    char *s = jd_xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return s;
}

static void h_update(void *self, const jrn_instance *in, const jrn_node *node, int64_t now)
{
    jrn_host *h = self;
    jh_inst *x = inst_of((jrn_instance *)in);
    uint32_t n = node->u.update.nops + node->u.update.nadd + node->u.update.nremove, k = 0;
    prof_op *ops = jd_xcalloc(n ? n : 1, sizeof *ops);
    char **texts = jd_xcalloc(n ? n : 1, sizeof *texts);
    expr_activation a = { jh__resolve, h, NULL };
    h->t.in = in;
    h->t.now = now;
    h->t.journey = x->journey;
    h->t.version = in->version;
    for (uint32_t i = 0; i < node->u.update.nops; i++) {
        const jrn_trait_op *op = &node->u.update.ops[i];
        if (op->unset) { ops[k++] = (prof_op){ PROF_OP_UNSET, op->key, NULL, 0 }; continue; }
        expr_val v;
        jd_err e;
        jd_err_clear(&e);
        expr_scratch_reset(h->scratch);
        if (expr_eval(op->value, &a, h->scratch, &v, &e) != JD_OK) { note_error(h, &e); continue; }
        char *txt = value_json(&v);
        if (!txt) { ops[k++] = (prof_op){ PROF_OP_UNSET, op->key, NULL, 0 }; continue; }
        texts[i] = txt;
        ops[k++] = (prof_op){ PROF_OP_SET, op->key, txt, strlen(txt) };
    }
    for (uint32_t i = 0; i < node->u.update.nadd; i++)
        ops[k++] = (prof_op){ PROF_OP_TAG, node->u.update.add_tags[i], NULL, 0 };
    for (uint32_t i = 0; i < node->u.update.nremove; i++)
        ops[k++] = (prof_op){ PROF_OP_UNTAG, node->u.update.remove_tags[i], NULL, 0 };
    jd_err e;
    jd_err_clear(&e);
    if (k && prof_update(h->profiles, x->p->key, x->p->key_len, ops, k, now, &e) != JD_OK) {
        if (e.code != JD_ENOTFOUND) note_error(h, &e);
    }
    json_object_put(h->t.prof);   /* the view is stale now */
    h->t.prof = NULL;
    h->t.changed = true;
    h->t.updated = true;
    for (uint32_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(ops);
}

static void h_transition(void *self, const jrn_instance *in, uint32_t from, uint32_t to, jrn_edge edge, uint32_t arm,
                         int64_t now)
{
    jrn_host *h = self;
    jh_inst *x = inst_of((jrn_instance *)in);
    if (h->out.transition)
        h->out.transition(h->out.self, jrn_reg_at(h->reg, x->journey), in->version, (jd_str){ x->p->key, x->p->key_len },
                          from, to, edge, arm, now);
    if (edge == JRN_EDGE_SPLIT_VARIANT && from != JRN_NONE) x->split_node = (uint16_t)from;
    if (to == JRN_NONE) return;
    jrn_vstats *st = jh__stats(h, x->journey, in->version);
    if (to < st->nnodes) st->node_entered[to]++;
}

static void h_exit(void *self, const jrn_instance *in, jrn_end why, const jd_err *err, int64_t now)
{
    jrn_host *h = self;
    jh_inst *x = inst_of((jrn_instance *)in);
    jrn_vstats *st = jh__stats(h, x->journey, in->version);
    unsigned w = (unsigned)why < JRN_END_COUNT_ ? (unsigned)why : JRN_END_ERROR;
    st->exits[w]++;
    if (st->active) st->active--;
    if (err) snprintf(st->last_error, sizeof st->last_error, "%.180s", err->msg);
    jh_pj *pj = jh__pj(x->p, x->journey, false);
    if (pj) pj->last_end = (uint8_t)w;
    if (h->out.exit)
        h->out.exit(h->out.self, jrn_reg_at(h->reg, x->journey), in->version, (jd_str){ x->p->key, x->p->key_len },
                    in->node, (jrn_end)w, err, now);
}

/* ---- time ------------------------------------------------------------------ */

static void h_fire(tw_wheel *w, tw_entry *e, void *ctx)
{
    jrn_host *h = ctx;
    jh_inst *x = inst_of((jrn_instance *)(void *)((char *)e - offsetof(jrn_instance, timer)));
    const jrn_journey *j = jrn_reg_at(h->reg, x->journey);
    if (j->status == JRN_PAUSED) {   /* invariant (5) */
        x->flags |= JH_HELD;
        return;
    }
    jh__turn_begin(h, x->p, (jd_str){ x->p->key, x->p->key_len }, NULL);
    jrn_on_timer(doc_of(h, x), &x->in, (int64_t)tw_now(w), &h->io);
    reap(h, x);
    jh__turn_end(h);
}

void jrn_host_advance(jrn_host *h, int64_t now, uint64_t lsn)
{
    if (now <= h->now) return;
    h->lsn = lsn;
    /* Waits and segment flips in time order (ties: waits first), so a flip
     * that ends an instance comes before a later wait of it; the host's clock
     * is each deadline in turn, so what they cause happens at that time. */
    for (;;) {
        /* The O(1) bounds first: usually nothing is due and no slot is scanned. */
        if (tw_next_deadline_bound(h->w) > (uint64_t)now && tw_next_deadline_bound(h->wseg) > (uint64_t)now) break;
        uint64_t a = tw_next_deadline(h->w), b = tw_next_deadline(h->wseg), next = a < b ? a : b;
        if (next > (uint64_t)now) break;
        if ((int64_t)next > h->now) h->now = (int64_t)next;
        tw_advance(h->w, next);
        tw_advance(h->wseg, next);
    }
    h->now = now;
    tw_advance(h->w, (uint64_t)now);
    tw_advance(h->wseg, (uint64_t)now);
}

int64_t jrn_host_now(const jrn_host *h) { return h->now; }
uint64_t jrn_host_next_due(jrn_host *h)
{
    /* The bound is exact unless the earliest entry went; only a bound already
     * passed (stale: nothing fired at it) is worth a scan. */
    uint64_t a = tw_next_deadline_bound(h->w), b = tw_next_deadline_bound(h->wseg);
    if (a <= (uint64_t)h->now) a = tw_next_deadline(h->w);
    if (b <= (uint64_t)h->now) b = tw_next_deadline(h->wseg);
    return a < b ? a : b;
}

/* ---- create, destroy ------------------------------------------------------- */

jrn_host *jrn_host_create(const jrn_reg *reg, prof_store *profiles, int64_t now, const jrn_host_out *out)
{
    jrn_host *h = jd_xcalloc(1, sizeof *h);
    h->reg = reg;
    h->profiles = profiles;
    if (out) h->out = *out;
    h->now = now;
    h->w = tw_create(now < 0 ? 0 : (uint64_t)now, h_fire, h);
    h->entries = jd_map_create(16);
    jh__segs_init(h, now);
    h->scratch = expr_scratch_create((size_t)1 << 20);
    h->tok = json_tokener_new();
    h->io = (jrn_io){ h, h_eval, h_trait, h_arm, h_cancel, h_intent, h_update, h_transition, h_exit, h_in_segment };
    return h;
}

void jh__reset_clock(jrn_host *h, int64_t now)
{
    tw_destroy(h->w);
    h->now = now;
    h->w = tw_create(now < 0 ? 0 : (uint64_t)now, h_fire, h);
    jh__segs_reset_clock(h, now);
}

void jrn_host_destroy(jrn_host *h)
{
    if (!h) return;
    jh_person *p;
    JH_FOREACH_PERSON(h, p) {
        for (uint16_t i = 0; i < p->n; i++)
            for (jh_inst *x = p->pj[i].live, *next; x; x = next) {
                next = x->next;
                free(x);
            }
        free(p->pj);
        free(p);
    }
    free(h->people.slots);
    size_t pos = 0, kn;
    const char *k;
    void *v;
    while (jd_map_next(h->entries, &pos, &k, &kn, &v)) free(v);
    jd_map_destroy(h->entries);
    for (uint32_t j = 0; j < h->nstats; j++) {
        for (uint32_t v2 = 0; v2 < h->nstats_v[j]; v2++)
            if (h->stats[j][v2]) { free(h->stats[j][v2]->node_entered); free(h->stats[j][v2]); }
        free(h->stats[j]);
    }
    free(h->stats);
    free(h->nstats_v);
    free(h->cand);
    jh__segs_release(h);
    tw_destroy(h->w);
    expr_scratch_destroy(h->scratch);
    json_tokener_free(h->tok);
    free(h);
}

size_t jrn_host_instances(const jrn_host *h) { return h->live; }
size_t jrn_host_timers(const jrn_host *h) { return tw_count(h->w); }
size_t jrn_host_bytes(const jrn_host *h)
{
    size_t bytes = (size_t)h->people.cap * sizeof *h->people.slots;
    jh_person *p;
    JH_FOREACH_PERSON(h, p) {
        bytes += sizeof *p + p->key_len + 1 + (size_t)p->cap * sizeof *p->pj;
        for (uint16_t i = 0; i < p->n; i++)
            for (const jh_inst *x = p->pj[i].live; x; x = x->next) {
                const char *e = jh__entry(h, x);
                bytes += sizeof *x + (e ? sizeof(jh_entry) + strlen(e) + 1 : 0);
            }
    }
    return bytes;
}

/* ---- entries and events ---------------------------------------------------- */

/* Enters key into journey j's newest version if the re-entry policy and the
 * entry guard (invariant 3) allow. */
int jh__try_enter(jrn_host *h, const jrn_journey *j, jd_str key, uint64_t lsn, const ingest_event *ev, jd_err *err)
{
    const jrn_version *v = jrn_reg_live(j);
    jh_person *p = jh__person_add(h, key.p, key.n);
    jh_pj *pj = jh__pj(p, j->index, true);
    if (lsn <= pj->last_entry_lsn)
        return jd_err_set(err, JD_EBUSY, "", "record %llu already entered this person", (unsigned long long)lsn);
    if (!jrn_reentry_allows(v->doc, pj->live != NULL, pj->last_entered_us, h->now))
        return jd_err_set(err, JD_EBUSY, "reentry", "the re-entry policy of journey '%s' does not allow entering again yet",
                          j->id);
    pj->last_entered_us = h->now;
    pj->last_entry_lsn = lsn;
    jh_inst *x = jh__inst_new(h, p, pj);
    x->in.id = 0;   /* set by jrn_enter; the entry is keyed by it, so kept right after */
    jrn_vstats *st = jh__stats(h, j->index, v->number);
    st->entered++;
    st->active++;
    h->t.p = p;
    /* The entry event must be readable from the first node on: jrn_enter
     * computes the id, then runs; so the id is computed here the same way. */
    if (v->keeps_entry && ev && ev->json.n) {
        x->in.id = jrn_instance_id(v->doc, v->number, (jd_str){ p->key, p->key_len }, lsn);
        jh__entry_keep(h, x, ev->json);
    }
    jrn_enter(v->doc, v->number, &x->in, (jd_str){ p->key, p->key_len }, lsn, ev, h->now, &h->io);
    reap(h, x);
    return JD_OK;
}

void jrn_host_event(jrn_host *h, const ingest_event *ev, uint64_t lsn, int64_t now)
{
    jrn_host_advance(h, now, lsn);
    h->lsn = lsn;
    jd_str key = prof_event_key(ev);
    if (!key.n) return;
    jh_person *p = jh__person(h, key.p, key.n);
    jh__turn_begin(h, p, key, ev);
    /* Segments first, so in_segment() below sees this event's effect. */
    jh__segs_update(h, key, h->now, lsn);
    p = h->t.p ? h->t.p : jh__person(h, key.p, key.n);   /* a segment entry may have made the person */
    h->t.p = p;
    h->t.now = h->now;
    /* Live instances first: an event that enters must not also move the new instance. */
    for (uint16_t i = 0; p && i < p->n; i++) {
        const jrn_journey *j = jrn_reg_at(h->reg, p->pj[i].journey);
        if (j->status != JRN_ACTIVE) continue;   /* paused: events are not seen (docs/journeys.md) */
        for (jh_inst *x = p->pj[i].live, *next; x; x = next) {
            next = x->next;
            if (x == p->pj[i].live && p->pj[i].last_entry_lsn == lsn) continue;   /* entered by this turn's segment change */
            const jrn_version *v = jh__version(h, x->journey, x->in.version);
            if (!jrn_version_listens(v, ev->event)) continue;   /* nothing in it reacts to this event */
            jrn_on_event(v->doc, &x->in, ev, h->now, &h->io);
            reap(h, x);
        }
    }
    if (ev->type == INGEST_TRACK) {
        size_t all;
        jrn_reg_entries_for(h->reg, ev->event, &all);
        if (all > h->ncand) {
            h->cand = jd_xrealloc(h->cand, all * sizeof *h->cand);
            h->ncand = all;
        }
        /* Journeys whose guard the event fails are not evaluated (their
         * condition is false or an error whatever the rest says). */
        size_t n = all ? jrn_reg_candidates(h->reg, ev->event, event_json(h), h->cand, h->ncand) : 0;
        for (size_t i = 0; i < n; i++) {
            const jrn_journey *j = jrn_reg_at(h->reg, h->cand[i]);
            const jrn_version *v = jrn_reg_live(j);
            bool match = false;
            jd_err err;
            h->t.journey = j->index;
            h->t.version = v->number;
            if (jrn_entry_matches(v->doc, ev, h->now, &h->io, &match, &err) != JD_OK || !match) continue;
            jh__try_enter(h, j, key, lsn, ev, &err);
        }
    }
    jh__turn_end(h);
}

int jrn_host_enter(jrn_host *h, const char *journey_id, jd_str key, uint64_t lsn, int64_t now, jd_err *err)
{
    jrn_host_advance(h, now, lsn);
    h->lsn = lsn;
    const jrn_journey *j = jrn_reg_find(h->reg, journey_id);
    if (!j) return jd_err_set(err, JD_ENOTFOUND, "journey", "no journey '%s'", journey_id);
    if (j->status != JRN_ACTIVE || !jrn_reg_live(j))
        return jd_err_set(err, JD_EBUSY, "status", "journey '%s' is %s", journey_id, jrn_status_name(j->status));
    jh__turn_begin(h, jh__person(h, key.p, key.n), key, NULL);
    h->t.now = h->now;
    int rc = jh__try_enter(h, j, key, lsn, NULL, err);
    jh__turn_end(h);
    return rc;
}

/* ---- journey status changes -------------------------------------------------- */

static int cmp_held(const void *a, const void *b)
{
    const jh_inst *x = *(jh_inst *const *)a, *y = *(jh_inst *const *)b;
    if (x->in.timer.when_us != y->in.timer.when_us) return x->in.timer.when_us < y->in.timer.when_us ? -1 : 1;
    return x->in.id < y->in.id ? -1 : x->in.id > y->in.id;
}

/* Every live instance of journey j, in a deterministic order (deadline, id). */
static jh_inst **instances_of(jrn_host *h, uint32_t journey, bool held_only, size_t *n)
{
    jh_inst **v = NULL;
    size_t cnt = 0, cap = 0;
    jh_person *p;
    JH_FOREACH_PERSON(h, p) {
        jh_pj *pj = jh__pj(p, journey, false);
        for (jh_inst *x = pj ? pj->live : NULL; x; x = x->next) {
            if (held_only && !(x->flags & JH_HELD)) continue;
            if (cnt == cap) { cap = cap ? cap * 2 : 64; v = jd_xrealloc(v, cap * sizeof *v); }
            v[cnt++] = x;
        }
    }
    if (cnt) qsort(v, cnt, sizeof *v, cmp_held);
    *n = cnt;
    return v;
}

void jrn_host_forget(jrn_host *h, const char *key, size_t kn, int64_t now, uint64_t lsn)
{
    jrn_host_advance(h, now, lsn);
    h->lsn = lsn;
    jd_str k = { key, (uint32_t)kn };
    jh_person *p = jh__person(h, key, kn);
    for (uint16_t i = 0; p && i < p->n; i++)
        while (p->pj[i].live) {
            jh_inst *x = p->pj[i].live;
            jh__turn_begin(h, p, k, NULL);
            jrn_abort(doc_of(h, x), &x->in, JRN_END_DELETED, h->now, &h->io);
            x->in.state = JRN_ST_EXITED;   /* also one that was between states */
            reap(h, x);
            h->t.changed = false;          /* nothing left to re-check */
            jh__turn_end(h);
        }
    if (p) jh__person_remove(h, p);
    jh__segs_forget(h, k);
}

void jrn_host_journey_changed(jrn_host *h, const jrn_journey *j, jrn_status was, int64_t now, uint64_t lsn)
{
    jrn_host_advance(h, now, lsn);
    h->lsn = lsn;
    size_t n = 0;
    jh_inst **v = NULL;
    if (j->status == JRN_ACTIVE && was == JRN_PAUSED) {
        v = instances_of(h, j->index, true, &n);
        for (size_t i = 0; i < n; i++) {
            jh_inst *x = v[i];
            x->flags &= (uint8_t)~JH_HELD;
            jh__turn_begin(h, x->p, (jd_str){ x->p->key, x->p->key_len }, NULL);
            jrn_on_timer(doc_of(h, x), &x->in, h->now, &h->io);
            reap(h, x);
            jh__turn_end(h);
        }
    } else if (j->status == JRN_ARCHIVED) {
        v = instances_of(h, j->index, false, &n);
        for (size_t i = 0; i < n; i++) {
            jh_inst *x = v[i];
            jh__turn_begin(h, x->p, (jd_str){ x->p->key, x->p->key_len }, NULL);
            jrn_abort(doc_of(h, x), &x->in, JRN_END_ARCHIVED, h->now, &h->io);
            if (x->in.state != JRN_ST_EXITED) {   /* between steps it is never ACTIVE; defensive */
                x->in.state = JRN_ST_EXITED;
            }
            reap(h, x);
            jh__turn_end(h);
        }
    }
    free(v);
}

/* ---- where a person is --------------------------------------------------------- */

static const char *const state_names[] = { "", "active", "waiting", "paused", "exited" };

int jrn_host_person_json(const jrn_host *h, const char *key, size_t kn, jd_buf *out)
{
    jh_person *p = jh__person(h, key, kn);
    if (!p) return JD_ENOTFOUND;
    char t[JD_TIME_TEXT], wf[256];
    json_object *a = json_object_new_array();
    for (uint16_t i = 0; i < p->n; i++) {
        const jh_pj *pj = &p->pj[i];
        const jrn_journey *j = jrn_reg_at(h->reg, pj->journey);
        if (!pj->live) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "journey", json_object_new_string(j->id));
            json_object_object_add(o, "state", json_object_new_string("exited"));
            jd_time_format(pj->last_entered_us, t);
            json_object_object_add(o, "last_entered_at", json_object_new_string(t));
            json_object_object_add(o, "last_end", json_object_new_string(pj->last_end ? jrn_end_name(pj->last_end) : ""));
            json_object_array_add(a, o);
        }
        for (const jh_inst *x = pj->live; x; x = x->next) {
            const jrn_doc *doc = doc_of(h, x);
            json_object *o = json_object_new_object();
            char hex[17];
            json_object_object_add(o, "journey", json_object_new_string(j->id));
            json_object_object_add(o, "version", json_object_new_int64(x->in.version));
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)x->in.id);
            json_object_object_add(o, "instance", json_object_new_string(hex));
            json_object_object_add(o, "state", json_object_new_string(
                j->status == JRN_PAUSED ? "held" : x->in.state <= JRN_ST_EXITED ? state_names[x->in.state] : ""));
            json_object_object_add(o, "node", json_object_new_string(x->in.node < doc->nnodes ? doc->nodes[x->in.node].id : ""));
            jd_time_format(x->in.node_since_us, t);
            json_object_object_add(o, "since", json_object_new_string(t));
            jd_time_format(x->in.entered_us, t);
            json_object_object_add(o, "entered_at", json_object_new_string(t));
            json_object_object_add(o, "waiting_for", json_object_new_string(jrn_instance_waiting_for(doc, &x->in, wf, sizeof wf)));
            if (tw_armed(&x->in.timer)) {
                jd_time_format((int64_t)x->in.timer.when_us, t);
                json_object_object_add(o, "timer_at", json_object_new_string(t));
            }
            if (x->split_node < doc->nnodes && x->in.variant && x->in.variant <= doc->nodes[x->split_node].u.split.nvariants)
                json_object_object_add(o, "variant", json_object_new_string(
                    doc->nodes[x->split_node].u.split.variants[x->in.variant - 1].name));
            json_object_array_add(a, o);
        }
    }
    int rc = jd_buf_adds(out, json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(a);
    return rc;
}
