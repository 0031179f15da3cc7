/*
** src/journey/registry.c -- journeys and their versions (jrn_reg in
** include/journeyd/runtime.h).
**
** A journey's life, each transition naming the control op that makes it:
**
**   (none)   -> DRAFT     [DRAFT]     a document stored, nothing published
**   (none),
**   DRAFT,
**   ACTIVE,
**   PAUSED   -> ACTIVE    [PUBLISH]   a new immutable version (the draft, or inline text)
**   ACTIVE   -> PAUSED    [PAUSE]     no entries, waits held (the host does that)
**   PAUSED   -> ACTIVE    [RESUME]
**   any      -> ARCHIVED  [ARCHIVE]   final: instances end, nothing more accepted
**   any but
**   ARCHIVED -> same      [DRAFT]     the draft replaced; versions untouched
**
** Invariants:
**  (1) A version never changes once published; instances point at it by number.
**  (2) jrn_reg_apply is a pure function of (registry, ctl, now): every shard's
**      copy applies the same log records and ends up the same.
**  (3) entries[] lists, per entry event name, the ACTIVE journeys whose newest
**      version enters on it; rebuilt after every change (changes are rare).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "journeyd/runtime.h"
#include "journey_int.h"

/* Journeys entered by one event name. Each journey whose entry condition has
 * a guard on `event` (expr_prog_guards: `event.a.b == "x"` in its top-level
 * conjunction) is filed under that path and value; the others are `always`
 * candidates. An event then needs one lookup per distinct path. */
typedef struct guard_vals { char *value; uint32_t *v; size_t n; } guard_vals;
typedef struct guard_path {
    const char *path[EXPR_GUARD_MAX_PATH];   /* borrowed from the version's program */
    uint32_t    npath;
    jd_map     *by_value;                    /* value -> guard_vals (key: its value) */
} guard_path;
typedef struct entry_list {
    char       *name;
    uint32_t   *v;      size_t n;            /* every journey, registry order */
    uint32_t   *always; size_t nalways;      /* without a guard */
    guard_path *g;      size_t ng;
} entry_list;

struct jrn_reg {
    const jrn_env *env;
    jrn_journey  **j;
    uint32_t       n, cap;
    jd_map        *by_id;          /* id -> jrn_journey (key: j->id) */
    jd_map        *entries;        /* event name -> entry_list (key: list->name) */
    jrn_segment  **segs;           /* by bit */
    uint32_t       nsegs;
    const jrn_segment *last_seg;   /* set by a SEGMENT op */
};

static const char *const status_names[] = { "", "draft", "active", "paused", "archived" };
static const char *const op_names[] = { "", "draft", "publish", "pause", "resume", "archive", "segment" };

const char *jrn_status_name(jrn_status s) { return (unsigned)s <= JRN_ARCHIVED ? status_names[s] : "unknown"; }
const char *jrn_op_name(jrn_op op) { return (unsigned)op <= JRN_OP_SEGMENT ? op_names[op] : "unknown"; }

int jrn_op_parse(const char *s, jrn_op *out)
{
    for (int i = JRN_OP_DRAFT; i <= JRN_OP_SEGMENT; i++)
        if (strcmp(s, op_names[i]) == 0) { *out = (jrn_op)i; return JD_OK; }
    return JD_EINVAL;
}

jrn_reg *jrn_reg_create(const jrn_env *env)
{
    jrn_reg *r = jd_xcalloc(1, sizeof *r);
    r->env = env ? env : jrn_env_default();
    r->by_id = jd_map_create(16);
    r->entries = jd_map_create(16);
    return r;
}

static void free_entries(jrn_reg *r)
{
    size_t pos = 0;
    const char *k;
    size_t kn;
    void *v;
    while (jd_map_next(r->entries, &pos, &k, &kn, &v)) {
        entry_list *l = v;
        for (size_t i = 0; i < l->ng; i++) {
            size_t p2 = 0;
            while (jd_map_next(l->g[i].by_value, &p2, &k, &kn, &v)) {
                guard_vals *gv = v;
                free(gv->value);
                free(gv->v);
                free(gv);
            }
            jd_map_destroy(l->g[i].by_value);
        }
        free(l->g);
        free(l->always);
        free(l->name);
        free(l->v);
        free(l);
    }
    jd_map_destroy(r->entries);
}

void jrn_reg_destroy(jrn_reg *r)
{
    if (!r) return;
    for (uint32_t i = 0; i < r->n; i++) {
        jrn_journey *j = r->j[i];
        for (uint32_t k = 0; k < j->nversions; k++) {
            jrn_doc_destroy(j->versions[k]->doc);
            free(j->versions[k]->listens);
            free(j->versions[k]->text);
            free(j->versions[k]);
        }
        free(j->versions);
        free(j->id);
        free(j->source);
        free(j->draft);
        free(j);
    }
    free(r->j);
    for (uint32_t i = 0; i < r->nsegs; i++) jrn_segment_destroy(r->segs[i]);
    free(r->segs);
    jd_map_destroy(r->by_id);
    free_entries(r);
    free(r);
}

size_t jrn_reg_count(const jrn_reg *r) { return r->n; }
const jrn_journey *jrn_reg_at(const jrn_reg *r, uint32_t i) { return i < r->n ? r->j[i] : NULL; }
const jrn_journey *jrn_reg_find(const jrn_reg *r, const char *id) { return jd_map_get(r->by_id, id, strlen(id)); }
const jrn_version *jrn_reg_live(const jrn_journey *j) { return j->nversions ? j->versions[j->nversions - 1] : NULL; }

const uint32_t *jrn_reg_entries_for(const jrn_reg *r, jd_str name, size_t *n)
{
    entry_list *l = name.n ? jd_map_get(r->entries, name.p, name.n) : NULL;
    *n = l ? l->n : 0;
    return l ? l->v : NULL;
}

static void push_u32(uint32_t **v, size_t *n, uint32_t x)
{
    *v = jd_xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = x;
}

/* Files journey i of list l under its first guard on `event`. */
static void index_journey(entry_list *l, uint32_t i, const expr_prog *when)
{
    expr_guard gs[8];
    size_t ng = expr_prog_guards(when, gs, JD_ARRAY_LEN(gs)), k;
    for (k = 0; k < ng && strcmp(gs[k].var, "event") != 0; k++) {}
    if (k == ng) { push_u32(&l->always, &l->nalways, i); return; }
    const expr_guard *g = &gs[k];
    guard_path *gp = NULL;
    for (size_t m = 0; m < l->ng && !gp; m++) {
        guard_path *c = &l->g[m];
        bool same = c->npath == g->npath;
        for (uint32_t d = 0; same && d < g->npath; d++) same = strcmp(c->path[d], g->path[d]) == 0;
        if (same) gp = c;
    }
    if (!gp) {
        l->g = jd_xrealloc(l->g, (l->ng + 1) * sizeof *l->g);
        gp = &l->g[l->ng++];
        memset(gp, 0, sizeof *gp);
        gp->npath = g->npath;
        memcpy(gp->path, g->path, sizeof gp->path);
        gp->by_value = jd_map_create(8);
    }
    guard_vals *gv = jd_map_get(gp->by_value, g->value, g->value_len);
    if (!gv) {
        gv = jd_xcalloc(1, sizeof *gv);
        gv->value = jd_xstrndup(g->value, g->value_len);
        jd_map_put(gp->by_value, gv->value, g->value_len, gv);
    }
    push_u32(&gv->v, &gv->n, i);
}

/* Invariant (3). */
static void rebuild_entries(jrn_reg *r)
{
    free_entries(r);
    r->entries = jd_map_create(16);
    for (uint32_t i = 0; i < r->n; i++) {
        const jrn_journey *j = r->j[i];
        const jrn_version *v = jrn_reg_live(j);
        if (j->status != JRN_ACTIVE || !v || v->doc->entry.kind != JRN_ENTRY_EVENT || !v->doc->entry.event) continue;
        const char *name = v->doc->entry.event;
        entry_list *l = jd_map_get(r->entries, name, strlen(name));
        if (!l) {
            l = jd_xcalloc(1, sizeof *l);
            l->name = jd_xstrdup(name);
            jd_map_put(r->entries, l->name, strlen(l->name), l);
        }
        push_u32(&l->v, &l->n, i);
        index_journey(l, i, v->doc->entry.when);
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

size_t jrn_reg_candidates(const jrn_reg *r, jd_str name, const struct json_object *event, uint32_t *out, size_t cap)
{
    entry_list *l = name.n ? jd_map_get(r->entries, name.p, name.n) : NULL;
    size_t n = 0;
    if (!l) return 0;
    JD_ASSERT(cap >= l->n);
    if (!event) {   /* no event to look into: every journey is a candidate */
        memcpy(out, l->v, l->n * sizeof *out);
        return l->n;
    }
    if (l->nalways) memcpy(out, l->always, l->nalways * sizeof *out);   /* NULL when none */
    n = l->nalways;
    for (size_t i = 0; i < l->ng; i++) {
        json_object *o = (json_object *)event;
        for (uint32_t d = 0; o && d < l->g[i].npath; d++)
            if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, l->g[i].path[d], &o)) o = NULL;
        if (!o || !json_object_is_type(o, json_type_string)) continue;
        guard_vals *gv = jd_map_get(l->g[i].by_value, json_object_get_string(o), (size_t)json_object_get_string_len(o));
        if (!gv) continue;
        memcpy(out + n, gv->v, gv->n * sizeof *out);
        n += gv->n;
    }
    if (l->ng) qsort(out, n, sizeof *out, cmp_u32);   /* registry order, as without the index */
    return n;
}

/* ---- checking and applying control operations ---------------------------- */

static bool segment_exists(const void *self, const char *id)
{
    return jrn_reg_segment_find(self, id) != NULL;
}

/* Compiles text; the document's own id must be ctl->id. A version to publish
 * must also name only segments that exist in its exit rules, waits and goal
 * (a draft may name one defined later). Segments are never removed, and a
 * snapshot decodes them before the journeys, so a version that compiled
 * once still does on replay. */
static int compile(const jrn_reg *r, const jrn_ctl *c, const char *text, size_t n, jrn_doc **out,
                   jrn_diags *diags, jd_err *err)
{
    jrn_diags scratch = { 0 };
    jrn_diags *d = diags ? diags : &scratch;
    jrn_env env = *r->env;
    if (c->op == JRN_OP_PUBLISH) {
        env.segment_exists = segment_exists;
        env.seg_self = r;
    }
    int rc = jrn_doc_parse(c->source ? c->source : "api", text, n, &env, out, d);
    if (rc == JD_OK && strcmp((*out)->id, c->id) != 0) {
        jd_err_set(err, JD_EINVAL, "id", "the document's id is '%s', not '%s'", (*out)->id, c->id);
        jrn_doc_destroy(*out);
        *out = NULL;
        rc = JD_EINVAL;
    } else if (rc != JD_OK) {
        jd_err_set(err, JD_EINVAL, "", "the document has %zu error(s)%s%s", d->n, d->n ? ": " : "",
                   d->n ? d->v[0].msg : "");
    }
    jrn_diags_release(&scratch);
    return rc;
}

size_t jrn_reg_segments(const jrn_reg *r) { return r->nsegs; }
const jrn_segment *jrn_reg_segment_at(const jrn_reg *r, uint32_t i) { return i < r->nsegs ? r->segs[i] : NULL; }
const jrn_segment *jrn_reg_last_segment(const jrn_reg *r) { return r->last_seg; }

const jrn_segment *jrn_reg_segment_find(const jrn_reg *r, const char *id)
{
    for (uint32_t i = 0; i < r->nsegs; i++)
        if (strcmp(r->segs[i]->id, id) == 0) return r->segs[i];
    return NULL;
}

size_t jrn_reg_segment_entries(const jrn_reg *r, const char *segment, bool enter, uint32_t *out, size_t cap)
{
    size_t n = 0;
    jrn_entry_kind want = enter ? JRN_ENTRY_SEGMENT_ENTER : JRN_ENTRY_SEGMENT_EXIT;
    for (uint32_t i = 0; i < r->n && n < cap; i++) {
        const jrn_version *v = jrn_reg_live(r->j[i]);
        if (r->j[i]->status == JRN_ACTIVE && v && v->doc->entry.kind == want && v->doc->entry.segment &&
            strcmp(v->doc->entry.segment, segment) == 0)
            out[n++] = i;
    }
    return n;
}

/* A SEGMENT op: the document parses, names ctl->id, and fits the limit. */
static int check_segment(const jrn_reg *r, const jrn_ctl *c, jrn_diags *diags, jrn_segment **out, jd_err *err)
{
    jrn_diags scratch = { 0 };
    jrn_diags *d = diags ? diags : &scratch;
    jrn_segment *s = NULL;
    int rc = JD_OK;
    if (!c->text) {
        rc = jd_err_set(err, JD_EINVAL, "document", "a segment document is required");
    } else if (jrn_segment_parse(c->source ? c->source : "api", c->text, c->text_len, &s, d) != JD_OK) {
        rc = jd_err_set(err, JD_EINVAL, "", "the segment has %zu error(s)%s%s", d->n, d->n ? ": " : "", d->n ? d->v[0].msg : "");
    } else if (strcmp(s->id, c->id) != 0) {
        rc = jd_err_set(err, JD_EINVAL, "id", "the document's id is '%s', not '%s'", s->id, c->id);
    } else if (!jrn_reg_segment_find(r, c->id) && r->nsegs >= JRN_MAX_SEGMENTS) {
        rc = jd_err_set(err, JD_ELIMIT, "segments", "at most %d segments (JRN_MAX_SEGMENTS)", JRN_MAX_SEGMENTS);
    }
    if (rc != JD_OK || !out) jrn_segment_destroy(s);
    else *out = s;
    jrn_diags_release(&scratch);
    return rc;
}

int jrn_reg_check(const jrn_reg *r, const jrn_ctl *c, jrn_diags *diags, jd_err *err)
{
    if (c->op == JRN_OP_SEGMENT) {
        if (!c->id || !c->id[0]) return jd_err_set(err, JD_EINVAL, "id", "a segment id is required");
        return check_segment(r, c, diags, NULL, err);
    }
    const jrn_journey *j = c->id ? jrn_reg_find(r, c->id) : NULL;
    if (!c->id || !c->id[0]) return jd_err_set(err, JD_EINVAL, "id", "a journey id is required");
    if (j && j->status == JRN_ARCHIVED)
        return jd_err_set(err, JD_EBUSY, "status", "journey '%s' is archived", c->id);
    switch (c->op) {
    case JRN_OP_DRAFT:
    case JRN_OP_PUBLISH: {
        const char *text = c->text;
        size_t n = c->text_len;
        if (c->op == JRN_OP_PUBLISH && !text) {
            if (!j) return jd_err_set(err, JD_ENOTFOUND, "id", "no journey '%s'", c->id);
            if (!j->draft) return jd_err_set(err, JD_EBUSY, "draft", "journey '%s' has no draft to publish", c->id);
            text = j->draft;
            n = strlen(text);
        }
        if (!text) return jd_err_set(err, JD_EINVAL, "document", "a document is required");
        jrn_doc *doc = NULL;
        int rc = compile(r, c, text, n, &doc, diags, err);
        jrn_doc_destroy(doc);
        return rc;
    }
    case JRN_OP_PAUSE:
        if (!j) return jd_err_set(err, JD_ENOTFOUND, "id", "no journey '%s'", c->id);
        if (j->status != JRN_ACTIVE)
            return jd_err_set(err, JD_EBUSY, "status", "journey '%s' is %s, not active", c->id, jrn_status_name(j->status));
        return JD_OK;
    case JRN_OP_RESUME:
        if (!j) return jd_err_set(err, JD_ENOTFOUND, "id", "no journey '%s'", c->id);
        if (j->status != JRN_PAUSED)
            return jd_err_set(err, JD_EBUSY, "status", "journey '%s' is %s, not paused", c->id, jrn_status_name(j->status));
        return JD_OK;
    case JRN_OP_ARCHIVE:
        if (!j) return jd_err_set(err, JD_ENOTFOUND, "id", "no journey '%s'", c->id);
        return JD_OK;
    case JRN_OP_SEGMENT: break;   /* handled above */
    }
    return jd_err_set(err, JD_EINVAL, "op", "unknown operation");
}

static bool mentions_entry(const char *text)
{
    return strstr(text, "journey.entry") != NULL;
}

static jrn_journey *journey_new(jrn_reg *r, const char *id, int64_t now)
{
    jrn_journey *j = jd_xcalloc(1, sizeof *j);
    j->id = jd_xstrdup(id);
    j->index = r->n;
    j->status = JRN_DRAFT;
    j->created_us = now;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->j = jd_xrealloc(r->j, r->cap * sizeof *r->j);
    }
    r->j[r->n++] = j;
    jd_map_put(r->by_id, j->id, strlen(j->id), j);
    return j;
}

static void listen_to(jrn_version *v, const char *name)
{
    if (!name) return;
    for (uint32_t i = 0; i < v->nlistens; i++)
        if (strcmp(v->listens[i], name) == 0) return;
    v->listens = jd_xrealloc(v->listens, (v->nlistens + 1) * sizeof *v->listens);
    v->listens[v->nlistens++] = name;
}

/* What jrn_on_event looks at, gathered once per version. */
static void gather_listens(jrn_version *v)
{
    const jrn_doc *d = v->doc;
    if (d->goal.present) listen_to(v, d->goal.event);
    for (uint32_t i = 0; i < d->nexits; i++) {
        if (!d->exits[i].event) v->listens_all = true;
        listen_to(v, d->exits[i].event);
        listen_to(v, d->exits[i].resume_event);
    }
    for (uint32_t i = 0; i < d->nnodes; i++)
        if (d->nodes[i].kind == JRN_WAIT && d->nodes[i].u.wait.kind == JRN_WAIT_EVENT) listen_to(v, d->nodes[i].u.wait.event);
}

bool jrn_version_listens(const jrn_version *v, jd_str name)
{
    if (v->listens_all) return true;
    for (uint32_t i = 0; i < v->nlistens; i++)
        if (jd_str_eq(name, v->listens[i], strlen(v->listens[i]))) return true;
    return false;
}

static void add_version(jrn_journey *j, jrn_doc *doc, const char *text, size_t n, int64_t now)
{
    jrn_version *v = jd_xcalloc(1, sizeof *v);
    v->number = j->nversions + 1;
    v->doc = doc;
    v->text = jd_xstrndup(text, n);
    v->published_us = now;
    v->keeps_entry = mentions_entry(v->text);
    gather_listens(v);
    j->versions = jd_xrealloc(j->versions, (j->nversions + 1) * sizeof *j->versions);
    j->versions[j->nversions++] = v;
}

/* Defines or redefines a segment; a redefinition keeps its bit. */
static int apply_segment(jrn_reg *r, const jrn_ctl *c, int64_t now, jd_err *err)
{
    jrn_segment *s = NULL;
    int rc = check_segment(r, c, NULL, &s, err);
    if (rc != JD_OK) return rc;
    jrn_segment *old = (jrn_segment *)jrn_reg_segment_find(r, c->id);
    s->updated_us = now;
    if (old) {
        s->bit = old->bit;
        s->version = old->version + 1;
        r->segs[old->bit] = s;
        jrn_segment_destroy(old);
    } else {
        s->bit = r->nsegs;
        s->version = 1;
        r->segs = jd_xrealloc(r->segs, (r->nsegs + 1) * sizeof *r->segs);
        r->segs[r->nsegs++] = s;
    }
    r->last_seg = s;
    return JD_OK;
}

int jrn_reg_apply(jrn_reg *r, const jrn_ctl *c, int64_t now, const jrn_journey **changed, jrn_status *was,
                  jd_err *err)
{
    r->last_seg = NULL;
    if (c->op == JRN_OP_SEGMENT) {
        *changed = NULL;
        *was = 0;
        return apply_segment(r, c, now, err);
    }
    int rc = jrn_reg_check(r, c, NULL, err);
    if (rc != JD_OK) return rc;
    jrn_journey *j = (jrn_journey *)jrn_reg_find(r, c->id);
    *was = j ? j->status : 0;
    if (!j) j = journey_new(r, c->id, now);
    if (c->source) {
        free(j->source);
        j->source = jd_xstrdup(c->source);
    }
    switch (c->op) {
    case JRN_OP_DRAFT:
        free(j->draft);
        j->draft = jd_xstrndup(c->text, c->text_len);
        break;
    case JRN_OP_PUBLISH: {
        const char *text = c->text ? c->text : j->draft;
        size_t n = c->text ? c->text_len : strlen(j->draft);
        jrn_doc *doc = NULL;
        rc = compile(r, c, text, n, &doc, NULL, err);
        JD_ASSERT(rc == JD_OK);   /* jrn_reg_check compiled the same text */
        add_version(j, doc, text, n, now);
        free(j->draft);
        j->draft = NULL;
        j->status = JRN_ACTIVE;
        break;
    }
    case JRN_OP_PAUSE: j->status = JRN_PAUSED; break;
    case JRN_OP_RESUME: j->status = JRN_ACTIVE; break;
    case JRN_OP_ARCHIVE: j->status = JRN_ARCHIVED; break;
    case JRN_OP_SEGMENT: break;   /* apply_segment */
    }
    j->updated_us = now;
    rebuild_entries(r);
    *changed = j;
    return JD_OK;
}

/* ---- JSON: definitions, and the snapshot ----------------------------------- */

static json_object *time_json(int64_t us)
{
    char t[JD_TIME_TEXT];
    if (!us) return NULL;
    jd_time_format(us, t);
    return json_object_new_string(t);
}

static json_object *journey_json(const jrn_journey *j, bool with_docs)
{
    json_object *o = json_object_new_object(), *vs = json_object_new_array();
    const jrn_version *live = jrn_reg_live(j);
    json_object_object_add(o, "id", json_object_new_string(j->id));
    json_object_object_add(o, "name", json_object_new_string(live && live->doc->name ? live->doc->name : j->id));
    json_object_object_add(o, "status", json_object_new_string(jrn_status_name(j->status)));
    json_object_object_add(o, "version", json_object_new_int64(live ? live->number : 0));
    json_object_object_add(o, "source", json_object_new_string(j->source ? j->source : "api"));
    json_object_object_add(o, "created_at", time_json(j->created_us));
    json_object_object_add(o, "updated_at", time_json(j->updated_us));
    json_object_object_add(o, "has_draft", json_object_new_boolean(j->draft != NULL));
    if (with_docs && j->draft) json_object_object_add(o, "draft", json_object_new_string(j->draft));
    for (uint32_t i = 0; i < j->nversions; i++) {
        const jrn_version *v = j->versions[i];
        json_object *x = json_object_new_object();
        json_object_object_add(x, "version", json_object_new_int64(v->number));
        json_object_object_add(x, "published_at", time_json(v->published_us));
        json_object_object_add(x, "nodes", json_object_new_int64(v->doc->nnodes));
        if (with_docs) {
            jd_buf b;
            jd_buf_init(&b, SIZE_MAX);
            jrn_doc_to_json(v->doc, &b);
            json_object *d = b.data ? json_tokener_parse(b.data) : NULL;
            json_object_object_add(x, "document", d);
            json_object_object_add(x, "text", json_object_new_string(v->text));
            jd_buf_release(&b);
        }
        json_object_array_add(vs, x);
    }
    json_object_object_add(o, "versions", vs);
    return o;
}

json_object *jrn_reg_json(const jrn_reg *r, const jrn_journey *j, bool with_docs)
{
    if (j) return journey_json(j, with_docs);
    json_object *a = json_object_new_array();
    for (uint32_t i = 0; i < r->n; i++) json_object_array_add(a, journey_json(r->j[i], with_docs));
    return a;
}

int jrn_reg_encode(const jrn_reg *r, jd_buf *out)
{
    json_object *a = json_object_new_array();
    for (uint32_t i = 0; i < r->n; i++) {
        const jrn_journey *j = r->j[i];
        json_object *o = json_object_new_object(), *vs = json_object_new_array();
        json_object_object_add(o, "id", json_object_new_string(j->id));
        json_object_object_add(o, "status", json_object_new_int(j->status));
        json_object_object_add(o, "source", j->source ? json_object_new_string(j->source) : NULL);
        json_object_object_add(o, "draft", j->draft ? json_object_new_string(j->draft) : NULL);
        json_object_object_add(o, "created", json_object_new_int64(j->created_us));
        json_object_object_add(o, "updated", json_object_new_int64(j->updated_us));
        for (uint32_t k = 0; k < j->nversions; k++) {
            json_object *v = json_object_new_object();
            json_object_object_add(v, "text", json_object_new_string(j->versions[k]->text));
            json_object_object_add(v, "published", json_object_new_int64(j->versions[k]->published_us));
            json_object_array_add(vs, v);
        }
        json_object_object_add(o, "versions", vs);
        json_object_array_add(a, o);
    }
    json_object *top = json_object_new_object(), *sa = json_object_new_array();
    json_object_object_add(top, "journeys", a);
    for (uint32_t i = 0; i < r->nsegs; i++) {   /* in bit order: decoding gives the same bits */
        json_object *o = json_object_new_object();
        json_object_object_add(o, "text", json_object_new_string(r->segs[i]->text));
        json_object_object_add(o, "version", json_object_new_int64(r->segs[i]->version));
        json_object_object_add(o, "updated", json_object_new_int64(r->segs[i]->updated_us));
        json_object_array_add(sa, o);
    }
    json_object_object_add(top, "segments", sa);
    int rc = jd_buf_adds(out, json_object_to_json_string_ext(top, JSON_C_TO_STRING_PLAIN));
    json_object_put(top);
    return rc;
}

static const char *str_of(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int64_t int_of(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

int jrn_reg_decode(jrn_reg *r, const char *text, size_t n, jd_err *err)
{
    int rc = JD_OK;
    json_tokener *tok = json_tokener_new();
    json_object *top = json_tokener_parse_ex(tok, text, (int)n), *a = NULL, *sa = NULL;
    json_tokener_free(tok);
    if (!top || !json_object_is_type(top, json_type_object) || !json_object_object_get_ex(top, "journeys", &a) ||
        !json_object_is_type(a, json_type_array) || !json_object_object_get_ex(top, "segments", &sa) ||
        !json_object_is_type(sa, json_type_array)) {
        rc = jd_err_set(err, JD_ECORRUPT, "journeys", "the journey registry is not {\"journeys\":[...],\"segments\":[...]}");
        goto out;
    }
    for (size_t i = 0; i < json_object_array_length(sa); i++) {
        json_object *o = json_object_array_get_idx(sa, i);
        const char *t = str_of(o, "text");
        jrn_segment *sg = NULL;
        jrn_diags d = { 0 };
        if (!t || jrn_segment_parse("journeys", t, strlen(t), &sg, &d) != JD_OK || r->nsegs >= JRN_MAX_SEGMENTS ||
            jrn_reg_segment_find(r, sg->id)) {
            rc = jd_err_set(err, JD_ECORRUPT, "journeys", "segment %zu no longer parses or repeats an id%s%s", i,
                            d.n ? ": " : "", d.n ? d.v[0].msg : "");
            jrn_segment_destroy(sg);
            jrn_diags_release(&d);
            goto out;
        }
        sg->bit = r->nsegs;
        sg->version = (uint32_t)int_of(o, "version");
        sg->updated_us = int_of(o, "updated");
        r->segs = jd_xrealloc(r->segs, (r->nsegs + 1) * sizeof *r->segs);
        r->segs[r->nsegs++] = sg;
    }
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        json_object *o = json_object_array_get_idx(a, i), *vs;
        const char *id = str_of(o, "id");
        if (!id || jrn_reg_find(r, id)) {
            rc = jd_err_set(err, JD_ECORRUPT, "journeys", "journey %zu has no id or a repeated one", i);
            goto out;
        }
        jrn_journey *j = journey_new(r, id, int_of(o, "created"));
        j->status = (jrn_status)int_of(o, "status");
        j->updated_us = int_of(o, "updated");
        const char *s = str_of(o, "source"), *d = str_of(o, "draft");
        j->source = s ? jd_xstrdup(s) : NULL;
        j->draft = d ? jd_xstrdup(d) : NULL;
        if (j->status < JRN_DRAFT || j->status > JRN_ARCHIVED) {
            rc = jd_err_set(err, JD_ECORRUPT, "journeys", "journey '%s' has an unknown status", id);
            goto out;
        }
        if (!json_object_object_get_ex(o, "versions", &vs) || !json_object_is_type(vs, json_type_array)) continue;
        for (size_t k = 0; k < json_object_array_length(vs); k++) {
            json_object *v = json_object_array_get_idx(vs, k);
            const char *t = str_of(v, "text");
            jrn_doc *doc = NULL;
            jrn_ctl c = { JRN_OP_PUBLISH, id, t, t ? strlen(t) : 0, j->source };
            jd_err why;
            jd_err_clear(&why);
            if (!t || compile(r, &c, t, strlen(t), &doc, NULL, &why) != JD_OK) {
                /* A version that compiled when published must compile now; if a
                 * newer journeyd refuses it, say so rather than drop people. */
                rc = jd_err_set(err, JD_ECORRUPT, "journeys", "journey '%s' version %zu no longer compiles: %s", id,
                                k + 1, why.msg);
                goto out;
            }
            add_version(j, doc, t, strlen(t), int_of(v, "published"));
        }
    }
    rebuild_entries(r);
out:
    json_object_put(top);
    return rc;
}
