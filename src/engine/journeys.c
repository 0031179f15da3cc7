/*
** src/engine/journeys.c -- journeys inside the shards: applying journey,
** entry and clock records, the intents each partition produced, and the
** journey changes and API entries of include/journeyd/engine.h (the reads
** are in journeys_read.c).
**
** Every shard keeps a registry (e->regs[shard]); every partition a jrn_host
** over its profiles and its shard's registry. A JOURNEY record reaches every
** shard (ENG_PART_ALL), which applies it to its registry and tells its hosts;
** a TICK record moves every host's clock; ENTER goes to the person's
** partition. A change request runs in three hops, each a message:
**
**   caller -> shard 0: check against the registry    [change_check]
**          -> committer: the record made durable      [change_committed]
**          -> every shard: the journey read back      [eng_journeys_get]
**
** Invariants:
**  (1) Registries change only in eng__apply_journey, in log order, the same
**      way on every shard (jrn_reg_apply is pure).
**  (2) A reply is sent after the record was applied everywhere: the read is
**      queued behind it on every shard (FIFO queues, dispatch before done).
**  (3) Intents are observations kept in a bounded ring per partition
**      (journeys.recent_intents); delivery (issue 'Delivery') will make them
**      durable outputs. Their delay_us reads the monotonic clock: never state.
**  (4) Every intent is also recorded on its person's profile timeline
**      (prof_timeline_message) at the time of the record that caused it, so
**      replaying the log rebuilds the timelines (state = f(log)).
*/
#include "engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

/* ---- hosts, intents, counts ----------------------------------------------- */

static void on_intent(void *self, const jrn_intent *it)
{
    eng_part *p = self;
    eng *e = p->e;
    atomic_fetch_add_explicit(&e->st_intents, 1, memory_order_relaxed);
    /* (4): the message on the person's timeline, at the record's time. This
     * partition's shard owns the profile; a person with no profile (an API
     * entry) gets nothing. */
    char name[160];
    const jrn_node *n = it->node;
    bool send = n->kind == JRN_SEND;
    snprintf(name, sizeof name, "%s/%s", it->journey->id, n->id);
    prof_timeline_message(p->profiles, it->key.p, it->key.n, it->at_us, name, send ? n->u.send.channel : NULL,
                          send ? n->u.send.template_name : NULL);
    eng__outbox_intent(p, it);
    eng__tasks_intent(p, it);
    if (!e->o.recent_intents) return;
    intent_rec *r = &p->intents[p->nintents++ % e->o.recent_intents];
    free(r->person);
    *r = (intent_rec){ it->id, it->instance, it->lsn, it->at_us, 0, it->journey, it->node, it->version,
                       jd_xstrndup(it->key.p, it->key.n) };
    if (p->durable_ns) r->delay_us = (int64_t)(jd_monotonic_ns() - p->durable_ns) / 1000;
}

/* What a send node may name: the default channel names and the configured
 * ones; once a channel is configured its template must exist (a journey that
 * could send it must not fail at the first send), while sends on a channel
 * that is not configured are skipped at run time whatever they name. */
static bool template_exists(void *self, const char *channel, const char *name)
{
    eng_env *x = self;
    for (size_t i = 0; i < x->nch; i++)
        if (strcmp(x->ch[i].name, channel) == 0) return dlv_templates_find(x->tpls, name) != NULL;
    return true;
}

void eng_env_init(eng_env *x, const dlv_channel_cfg *ch, size_t nch, const dlv_templates *tpls)
{
    static const char *const defaults[] = { "email", "sms", "push", "webhook", "slack", "in_app" };
    size_t n = JD_ARRAY_LEN(defaults);
    x->ch = ch;
    x->nch = nch;
    x->tpls = tpls;
    x->names = jd_xcalloc(n + nch, sizeof *x->names);
    memcpy(x->names, defaults, sizeof defaults);
    for (size_t i = 0; i < nch; i++) {
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++) dup = strcmp(x->names[k], ch[i].name) == 0;
        if (!dup) x->names[n++] = ch[i].name;
    }
    x->env = *jrn_env_default();
    x->env.channels = x->names;
    x->env.nchannels = n;
    x->env.template_exists = template_exists;
    x->env.self = x;
}

void eng_env_release(eng_env *x) { free(x->names); }

const jrn_env *eng_journey_env(const eng *e) { return &e->env.env; }

json_object *eng__intent_vars(const jrn_intent *it)
{
    json_object *v = json_object_new_object(), *j = json_object_new_object();
    json_object_object_add(v, "profile", json_object_get(it->profile));
    json_object_object_add(v, "event", json_object_get(it->event));
    json_object_object_add(j, "id", json_object_new_string(it->journey->id));
    json_object_object_add(j, "version", json_object_new_int64(it->version));
    json_object_object_add(j, "node", json_object_new_string(it->node->id));
    json_object_object_add(v, "journey", j);
    return v;
}

void eng__journeys_init(eng *e)
{
    eng_env_init(&e->env, e->o.channels, e->o.nchannels, e->o.templates);
    e->regs = jd_xcalloc(e->nshards, sizeof *e->regs);
    e->next_due = jd_xcalloc(e->nshards, sizeof *e->next_due);
    e->backlog = jd_xcalloc(e->nshards, sizeof *e->backlog);
    e->sh_instances = jd_xcalloc(e->nshards, sizeof *e->sh_instances);
    e->sh_timers = jd_xcalloc(e->nshards, sizeof *e->sh_timers);
    for (uint32_t s = 0; s < e->nshards; s++) {
        e->regs[s] = jrn_reg_create(&e->env.env);
        atomic_store(&e->next_due[s], UINT64_MAX);
    }
    for (uint32_t p = 0; p < e->nparts; p++) {
        eng_part *part = &e->parts[p];
        jrn_host_out out = { part, on_intent, NULL, NULL };
        part->host = jrn_host_create(e->regs[eng__shard_of(e, p)], part->profiles, 0, &out);
        if (e->o.recent_intents) part->intents = jd_xcalloc(e->o.recent_intents, sizeof *part->intents);
        eng__outbox_init(part);
        eng__tasks_init(part);
    }
}

void eng__journeys_release(eng *e)
{
    if (!e->regs) return;
    for (uint32_t p = 0; p < e->nparts; p++) {
        eng_part *part = &e->parts[p];
        jrn_host_destroy(part->host);
        eng__outbox_release(part);
        eng__tasks_release(part);
        for (uint32_t i = 0; part->intents && i < e->o.recent_intents; i++) free(part->intents[i].person);
        free(part->intents);
    }
    for (uint32_t s = 0; s < e->nshards; s++) jrn_reg_destroy(e->regs[s]);
    free(e->regs);
    eng_env_release(&e->env);
    free((void *)e->next_due);
    free((void *)e->backlog);
    free((void *)e->sh_instances);
    free((void *)e->sh_timers);
    e->regs = NULL;
}

void eng__journeys_publish(eng_shard *sh)
{
    eng *e = sh->e;
    uint64_t due = UINT64_MAX, inst = 0, timers = 0;
    for (uint32_t p = sh->id; p < e->nparts; p += e->nshards) {
        uint64_t d = jrn_host_next_due(e->parts[p].host);
        if (d < due) due = d;
        inst += jrn_host_instances(e->parts[p].host);
        timers += jrn_host_timers(e->parts[p].host);
    }
    atomic_store_explicit(&e->next_due[sh->id], due, memory_order_relaxed);
    atomic_store_explicit(&e->sh_instances[sh->id], inst, memory_order_relaxed);
    atomic_store_explicit(&e->sh_timers[sh->id], timers, memory_order_relaxed);
}

/* ---- applying records ------------------------------------------------------ */

static int64_t rd_i64(const void *p)
{
    const uint8_t *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return (int64_t)v;
}

int eng__apply_tick(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng *e = sh->e;
    if (h->len != 8) return jd_err_set(err, JD_ECORRUPT, "", "a clock record of %u bytes", h->len);
    int64_t now = rd_i64(h + 1);
    for (uint32_t p = sh->id; p < e->nparts; p += e->nshards)
        if (h->lsn > e->parts[p].snap_lsn) jrn_host_advance(e->parts[p].host, now, h->lsn);
    return JD_OK;
}

/* A record body as JSON: journey and entry records are rare and small. */
json_object *eng__json_n(const void *p, size_t n)
{
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, p, (int)n);
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success && json_object_is_type(o, json_type_object);
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

json_object *eng__body_json(const rec_hdr *h, jd_err *err)
{
    json_object *o = eng__json_n(h + 1, h->len);
    if (!o) jd_err_set(err, JD_ECORRUPT, "", "record %llu is not a JSON object", (unsigned long long)h->lsn);
    return o;
}

const char *eng__jstr(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

int64_t eng__jint(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

int eng__apply_journey(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng *e = sh->e;
    json_object *o = eng__body_json(h, err);
    if (!o) return JD_ECORRUPT;
    int rc;
    jrn_ctl c = { 0 };
    const char *op = eng__jstr(o, "op");
    if (!op || jrn_op_parse(op, &c.op) != JD_OK) {
        rc = jd_err_set(err, JD_ECORRUPT, "op", "journey record %llu has no known op", (unsigned long long)h->lsn);
        goto out;
    }
    c.id = eng__jstr(o, "id");
    c.text = eng__jstr(o, "text");
    c.text_len = c.text ? strlen(c.text) : 0;
    c.source = eng__jstr(o, "source");
    int64_t at = eng__jint(o, "at");
    const jrn_journey *j = NULL;
    jrn_status was = 0;
    /* Refusals are the same on every shard and every replay (invariant 1). */
    rc = jrn_reg_apply(e->regs[sh->id], &c, at, &j, &was, err);
    if (rc != JD_OK) goto out;
    const jrn_segment *seg = jrn_reg_last_segment(e->regs[sh->id]);
    for (uint32_t p = sh->id; p < e->nparts; p += e->nshards) {
        if (h->lsn <= e->parts[p].snap_lsn) continue;
        if (seg) jrn_host_segment_changed(e->parts[p].host, seg, at, h->lsn);
        else jrn_host_journey_changed(e->parts[p].host, j, was, at, h->lsn);
    }
out:
    json_object_put(o);
    return rc;
}

int eng__apply_enter(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng_part *p = &sh->e->parts[h->partition];
    json_object *o = eng__body_json(h, err);
    if (!o) return JD_ECORRUPT;
    const char *journey = eng__jstr(o, "journey"), *key = eng__jstr(o, "key");
    enter_result *res = &p->enters[h->lsn % ENTER_RESULTS];
    res->lsn = h->lsn;
    jd_err_clear(&res->err);
    res->rc = journey && key ? jrn_host_enter(p->host, journey, (jd_str){ key, (uint32_t)strlen(key) }, h->lsn,
                                              eng__jint(o, "at"), &res->err)
                             : jd_err_set(&res->err, JD_ECORRUPT, "", "entry record without journey or key");
    json_object_put(o);
    (void)err;
    return JD_OK;   /* a refused entry is an answer, not a failure to apply */
}

/* ---- changes ----------------------------------------------------------------- */

typedef struct change_job {
    eng        *e;
    jrn_ctl     c;
    char       *id, *text, *source;
    bool        if_changed, create_only, must_exist;
    eng_json_fn done;
    void       *ctx;
} change_job;

static void change_free(change_job *j)
{
    free(j->id);
    free(j->text);
    free(j->source);
    free(j);
}

void eng__reply_err(eng_json_fn done, void *ctx, int rc, const jd_err *err, const jrn_diags *d)
{
    json_object *o = json_object_new_object(), *a = json_object_new_array();
    json_object_object_add(o, "error", json_object_new_string(err->msg));
    if (err->where[0]) json_object_object_add(o, "at", json_object_new_string(err->where));
    for (size_t i = 0; d && i < d->n; i++) {
        json_object *x = json_object_new_object();
        json_object_object_add(x, "where", json_object_new_string(d->v[i].where));
        json_object_object_add(x, "node", json_object_new_string(d->v[i].node));
        json_object_object_add(x, "message", json_object_new_string(d->v[i].msg));
        json_object_array_add(a, x);
    }
    if (d) json_object_object_add(o, "errors", a);
    else json_object_put(a);
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    done(ctx, rc, err, s, strlen(s));
    json_object_put(o);
}

static void change_committed(void *ctx, int status, const jd_err *err, uint64_t lsn)
{
    change_job *j = ctx;
    if (status != JD_OK) eng__reply_err(j->done, j->ctx, status, err, NULL);
    else if (j->c.op == JRN_OP_SEGMENT) eng_segments_get(j->e, j->id, j->done, j->ctx);
    else eng_journeys_get(j->e, j->id, false, j->done, j->ctx);
    change_free(j);
}

static void change_check(eng_shard *sh, void *arg)
{
    change_job *j = arg;
    eng *e = sh->e;
    const jrn_reg *reg = e->regs[sh->id];
    const jrn_journey *cur = jrn_reg_find(reg, j->id);
    jrn_diags d = { 0 };
    jd_err err;
    jd_err_clear(&err);
    int rc = JD_OK;
    bool seg = j->c.op == JRN_OP_SEGMENT, exists = seg ? jrn_reg_segment_find(reg, j->id) != NULL : cur != NULL;
    const char *what = seg ? "segment" : "journey";
    if (j->create_only && exists) rc = jd_err_set(&err, JD_EBUSY, "id", "%s '%s' already exists", what, j->id);
    else if (j->must_exist && !exists) rc = jd_err_set(&err, JD_ENOTFOUND, "id", "no %s '%s'", what, j->id);
    if (rc == JD_OK && j->if_changed && cur && jrn_reg_live(cur) && j->text &&
        strcmp(jrn_reg_live(cur)->text, j->text) == 0 && cur->status != JRN_ARCHIVED) {
        eng_journeys_get(e, j->id, false, j->done, j->ctx);   /* unchanged: nothing to write */
        change_free(j);
        return;
    }
    const jrn_segment *cs = j->c.op == JRN_OP_SEGMENT ? jrn_reg_segment_find(reg, j->id) : NULL;
    if (rc == JD_OK && j->if_changed && cs && j->text && strcmp(cs->text, j->text) == 0) {
        eng_segments_get(e, j->id, j->done, j->ctx);
        change_free(j);
        return;
    }
    if (rc == JD_OK) rc = jrn_reg_check(reg, &j->c, &d, &err);
    if (rc != JD_OK) {
        eng__reply_err(j->done, j->ctx, rc, &err, rc == JD_EINVAL ? &d : NULL);
        jrn_diags_release(&d);
        change_free(j);
        return;
    }
    jrn_diags_release(&d);
    /* The record: what every shard's registry will apply (invariant 1). */
    json_object *o = json_object_new_object();
    json_object_object_add(o, "op", json_object_new_string(jrn_op_name(j->c.op)));
    json_object_object_add(o, "id", json_object_new_string(j->id));
    if (j->text) json_object_object_add(o, "text", json_object_new_string(j->text));
    if (j->source) json_object_object_add(o, "source", json_object_new_string(j->source));
    json_object_object_add(o, "at", json_object_new_int64((int64_t)jd_clock_now(e->clock)));
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    eng_txn *t = eng_txn_create();
    eng__txn_add(t, ENG_REC_JOURNEY, ENG_PART_ALL, s, (uint32_t)strlen(s));
    json_object_put(o);
    eng_submit(e, t, change_committed, j);
}

void eng_journey_change(eng *e, const eng_journey_req *req, eng_json_fn done, void *ctx)
{
    change_job *j = jd_xcalloc(1, sizeof *j);
    jd_err err;
    j->e = e;
    j->done = done;
    j->ctx = ctx;
    j->id = jd_xstrdup(req->id ? req->id : "");
    j->text = req->text ? jd_xstrndup(req->text, req->text_len) : NULL;
    j->source = req->source ? jd_xstrdup(req->source) : NULL;
    j->if_changed = req->if_changed;
    j->create_only = req->create_only;
    j->must_exist = req->must_exist;
    if (!req->op || jrn_op_parse(req->op, &j->c.op) != JD_OK) {
        jd_err_set(&err, JD_EINVAL, "op", "unknown journey operation '%s'", req->op ? req->op : "");
        eng__reply_err(done, ctx, JD_EINVAL, &err, NULL);
        change_free(j);
        return;
    }
    j->c.id = j->id;
    j->c.text = j->text;
    j->c.text_len = j->text ? strlen(j->text) : 0;
    j->c.source = j->source;
    eng__call(e, 0, change_check, j);
}

/* ---- entering through the API ------------------------------------------------ */

typedef struct enter_job {
    eng        *e;
    char       *id, *key;
    uint32_t    partition;
    uint64_t    lsn;
    eng_json_fn done;
    void       *ctx;
} enter_job;

static void enter_free(enter_job *j)
{
    free(j->id);
    free(j->key);
    free(j);
}

static void enter_result_read(eng_shard *sh, void *arg)
{
    enter_job *j = arg;
    eng_part *p = &sh->e->parts[j->partition];
    const enter_result *r = &p->enters[j->lsn % ENTER_RESULTS];
    jd_err err;
    if (r->lsn != j->lsn) {
        jd_err_set(&err, JD_EBUSY, "", "the entry was applied but its result was overwritten; see GET /v1/profiles/%s/journeys", j->key);
        eng__reply_err(j->done, j->ctx, JD_EBUSY, &err, NULL);
    } else if (r->rc != JD_OK) {
        eng__reply_err(j->done, j->ctx, r->rc, &r->err, NULL);
    } else {
        jd_buf b;
        jd_buf_init(&b, SIZE_MAX);
        jrn_host_person_json(p->host, j->key, strlen(j->key), &b);
        json_object *o = json_object_new_object(), *all = b.data ? json_tokener_parse(b.data) : NULL, *inst = NULL;
        for (size_t i = 0; all && i < json_object_array_length(all); i++) {
            json_object *x = json_object_array_get_idx(all, i);
            const char *jid = eng__jstr(x, "journey");
            if (jid && strcmp(jid, j->id) == 0) inst = x;
        }
        json_object_object_add(o, "entered", json_object_new_boolean(1));
        json_object_object_add(o, "journey", json_object_new_string(j->id));
        json_object_object_add(o, "key", json_object_new_string(j->key));
        if (inst) json_object_object_add(o, "instance", json_object_get(inst));
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        j->done(j->ctx, JD_OK, NULL, s, strlen(s));
        json_object_put(o);
        json_object_put(all);
        jd_buf_release(&b);
    }
    enter_free(j);
}

static void enter_committed(void *ctx, int status, const jd_err *err, uint64_t lsn)
{
    enter_job *j = ctx;
    if (status != JD_OK) {
        eng__reply_err(j->done, j->ctx, status, err, NULL);
        enter_free(j);
        return;
    }
    j->lsn = lsn;
    eng__call(j->e, eng__shard_of(j->e, j->partition), enter_result_read, j);
}

static void enter_check(eng_shard *sh, void *arg)
{
    enter_job *j = arg;
    eng *e = sh->e;
    const jrn_journey *jr = jrn_reg_find(e->regs[sh->id], j->id);
    jd_err err;
    int rc = JD_OK;
    if (!jr) rc = jd_err_set(&err, JD_ENOTFOUND, "id", "no journey '%s'", j->id);
    else if (jr->status != JRN_ACTIVE)
        rc = jd_err_set(&err, JD_EBUSY, "status", "journey '%s' is %s, not active", j->id, jrn_status_name(jr->status));
    if (rc != JD_OK) {
        eng__reply_err(j->done, j->ctx, rc, &err, NULL);
        enter_free(j);
        return;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "journey", json_object_new_string(j->id));
    json_object_object_add(o, "key", json_object_new_string(j->key));
    json_object_object_add(o, "at", json_object_new_int64((int64_t)jd_clock_now(e->clock)));
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    eng_txn *t = eng_txn_create();
    eng__txn_add(t, ENG_REC_ENTER, (uint16_t)j->partition, s, (uint32_t)strlen(s));
    json_object_put(o);
    eng_submit(e, t, enter_committed, j);
}

static void enter_resolved(eng *e, char *key, void *arg)
{
    enter_job *j = arg;
    j->key = key;
    j->partition = eng__partition_of(e, j->key, strlen(j->key));
    eng__call(e, 0, enter_check, j);
}

void eng_journey_enter(eng *e, const char *id, const char *profile_id, eng_json_fn done, void *ctx)
{
    enter_job *j = jd_xcalloc(1, sizeof *j);
    j->e = e;
    j->id = jd_xstrdup(id);
    j->done = done;
    j->ctx = ctx;
    eng__resolve(e, profile_id, enter_resolved, j);
}

/* ---- deleting a person ----------------------------------------------------------- */

static void purge_intents(eng *e, eng_part *part, const char *key)
{
    for (uint64_t i = 0; i < e->o.recent_intents && i < part->nintents; i++) {
        intent_rec *r = &part->intents[i];
        if (r->person && strcmp(r->person, key) == 0) { free(r->person); r->person = NULL; }
    }
}

/* A DELETE record reaches every partition: the one(s) holding the person
 * delete and forget; their intents leave the ring (they name the person). */
int eng__apply_delete(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng *e = sh->e;
    json_object *o = eng__body_json(h, err);
    if (!o) return JD_ECORRUPT;
    const char *id = eng__jstr(o, "id");
    int64_t at = eng__jint(o, "at");
    json_object *ids = NULL;
    json_object_object_get_ex(o, "ids", &ids);
    /* First the profile asked for (in the partition that holds it), then, for
     * every id the person had, where its events are routed: a profile keyed
     * by it (their anonymous browsing before sign-up) goes too, and the id is
     * suppressed. Two passes, so the first counts the deletion. */
    for (uint32_t p = sh->id; id && p < e->nparts; p += e->nshards) {
        eng_part *part = &e->parts[p];
        char key[1024];
        if (h->lsn <= part->snap_lsn || prof_delete(part->profiles, id, strlen(id), at, key, sizeof key) != JD_OK)
            continue;
        atomic_fetch_add_explicit(&e->st_deleted, 1, memory_order_relaxed);
        jrn_host_forget(part->host, key, strlen(key), at, h->lsn);
        purge_intents(e, part, key);
        eng__tasks_forget(part, key);
    }
    size_t nids = ids && json_object_is_type(ids, json_type_array) ? json_object_array_length(ids) : 0;
    for (uint32_t p = sh->id; id && p < e->nparts; p += e->nshards) {
        eng_part *part = &e->parts[p];
        if (h->lsn <= part->snap_lsn) continue;
        for (size_t i = 0; i < nids; i++) {
            json_object *x = json_object_array_get_idx(ids, i);
            if (!json_object_is_type(x, json_type_string)) continue;
            const char *xs = json_object_get_string(x);
            size_t xn = (size_t)json_object_get_string_len(x);
            if (!xn || eng__partition_of(e, xs, xn) != p) continue;
            char k2[1024];
            if (prof_is_key(part->profiles, xs, xn) && prof_delete(part->profiles, xs, xn, at, k2, sizeof k2) == JD_OK) {
                jrn_host_forget(part->host, k2, strlen(k2), at, h->lsn);
                purge_intents(e, part, k2);
                eng__tasks_forget(part, k2);
            }
            prof_suppress(part->profiles, xs, xn, at);
        }
    }
    json_object_put(o);
    return JD_OK;
}

typedef struct delete_job {
    eng        *e;
    char       *id;
    eng_json_fn done;
    void       *ctx;
} delete_job;

static void delete_free(delete_job *j)
{
    free(j->id);
    free(j);
}

static void delete_committed(void *ctx, int status, const jd_err *err, uint64_t lsn)
{
    delete_job *j = ctx;
    if (status != JD_OK) {
        eng__reply_err(j->done, j->ctx, status, err, NULL);
    } else {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "deleted", json_object_new_string(j->id));
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        j->done(j->ctx, JD_OK, NULL, s, strlen(s));
        json_object_put(o);
    }
    delete_free(j);
}

/* The profile exists (read first): record the deletion. */
static void delete_found(void *ctx, int rc, const char *json, size_t n)
{
    delete_job *j = ctx;
    if (rc != JD_OK) {
        jd_err err;
        jd_err_set(&err, JD_ENOTFOUND, "id", "no profile with this userId or anonymousId");
        eng__reply_err(j->done, j->ctx, JD_ENOTFOUND, &err, NULL);
        delete_free(j);
        return;
    }
    /* The person's ids as they are now: each partition suppresses the ones
     * routed to it (the profile's own partition also deletes it). */
    json_object *o = json_object_new_object(), *ids = json_object_new_array(), *prof = json_tokener_parse(json), *v;
    /* The id asked may be any identifier (an email): the record names the key. */
    if (prof && json_object_object_get_ex(prof, "key", &v)) {
        json_object_array_add(ids, json_object_get(v));
        json_object_object_add(o, "id", json_object_get(v));
    } else {
        json_object_object_add(o, "id", json_object_new_string(j->id));
    }
    if (prof && json_object_object_get_ex(prof, "anonymousIds", &v) && json_object_is_type(v, json_type_array))
        for (size_t i = 0; i < json_object_array_length(v); i++)
            json_object_array_add(ids, json_object_get(json_object_array_get_idx(v, i)));
    json_object_put(prof);
    json_object_object_add(o, "ids", ids);
    json_object_object_add(o, "at", json_object_new_int64((int64_t)jd_clock_now(j->e->clock)));
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    eng_txn *t = eng_txn_create();
    eng__txn_add(t, ENG_REC_DELETE, ENG_PART_ALL, s, (uint32_t)strlen(s));
    json_object_put(o);
    eng_submit(j->e, t, delete_committed, j);
    (void)n;
}

void eng_profile_delete(eng *e, const char *id, eng_json_fn done, void *ctx)
{
    delete_job *j = jd_xcalloc(1, sizeof *j);
    j->e = e;
    j->id = jd_xstrdup(id);
    j->done = done;
    j->ctx = ctx;
    eng_profile_get(e, j->id, delete_found, j);
}
