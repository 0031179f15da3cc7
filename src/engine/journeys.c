/*
** src/engine/journeys.c -- journeys inside the shards: applying journey,
** entry and clock records, the intents each partition produced, and the
** journey reads and changes of include/journeyd/engine.h.
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
    if (!e->o.recent_intents) return;
    intent_rec *r = &p->intents[p->nintents++ % e->o.recent_intents];
    free(r->person);
    *r = (intent_rec){ it->id, it->instance, it->lsn, it->at_us, 0, it->journey, it->node, it->version,
                       jd_xstrndup(it->key.p, it->key.n) };
    if (p->durable_ns) r->delay_us = (int64_t)(jd_monotonic_ns() - p->durable_ns) / 1000;
}

void eng__journeys_init(eng *e)
{
    e->regs = jd_xcalloc(e->nshards, sizeof *e->regs);
    e->next_due = jd_xcalloc(e->nshards, sizeof *e->next_due);
    e->backlog = jd_xcalloc(e->nshards, sizeof *e->backlog);
    e->sh_instances = jd_xcalloc(e->nshards, sizeof *e->sh_instances);
    e->sh_timers = jd_xcalloc(e->nshards, sizeof *e->sh_timers);
    for (uint32_t s = 0; s < e->nshards; s++) {
        e->regs[s] = jrn_reg_create(NULL);
        atomic_store(&e->next_due[s], UINT64_MAX);
    }
    for (uint32_t p = 0; p < e->nparts; p++) {
        eng_part *part = &e->parts[p];
        jrn_host_out out = { part, on_intent, NULL, NULL };
        part->host = jrn_host_create(e->regs[eng__shard_of(e, p)], part->profiles, 0, &out);
        if (e->o.recent_intents) part->intents = jd_xcalloc(e->o.recent_intents, sizeof *part->intents);
    }
}

void eng__journeys_release(eng *e)
{
    if (!e->regs) return;
    for (uint32_t p = 0; p < e->nparts; p++) {
        eng_part *part = &e->parts[p];
        jrn_host_destroy(part->host);
        for (uint32_t i = 0; part->intents && i < e->o.recent_intents; i++) free(part->intents[i].person);
        free(part->intents);
    }
    for (uint32_t s = 0; s < e->nshards; s++) jrn_reg_destroy(e->regs[s]);
    free(e->regs);
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
static json_object *body_json(const rec_hdr *h, jd_err *err)
{
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, (const char *)(h + 1), (int)h->len);
    json_tokener_free(tok);
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        jd_err_set(err, JD_ECORRUPT, "", "record %llu is not a JSON object", (unsigned long long)h->lsn);
        return NULL;
    }
    return o;
}

static const char *jstr(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int64_t jint(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

int eng__apply_journey(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng *e = sh->e;
    json_object *o = body_json(h, err);
    if (!o) return JD_ECORRUPT;
    int rc;
    jrn_ctl c = { 0 };
    const char *op = jstr(o, "op");
    if (!op || jrn_op_parse(op, &c.op) != JD_OK) {
        rc = jd_err_set(err, JD_ECORRUPT, "op", "journey record %llu has no known op", (unsigned long long)h->lsn);
        goto out;
    }
    c.id = jstr(o, "id");
    c.text = jstr(o, "text");
    c.text_len = c.text ? strlen(c.text) : 0;
    c.source = jstr(o, "source");
    int64_t at = jint(o, "at");
    const jrn_journey *j = NULL;
    jrn_status was = 0;
    /* Refusals are the same on every shard and every replay (invariant 1). */
    rc = jrn_reg_apply(e->regs[sh->id], &c, at, &j, &was, err);
    if (rc != JD_OK) goto out;
    for (uint32_t p = sh->id; p < e->nparts; p += e->nshards)
        if (h->lsn > e->parts[p].snap_lsn) jrn_host_journey_changed(e->parts[p].host, j, was, at, h->lsn);
out:
    json_object_put(o);
    return rc;
}

int eng__apply_enter(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng_part *p = &sh->e->parts[h->partition];
    json_object *o = body_json(h, err);
    if (!o) return JD_ECORRUPT;
    const char *journey = jstr(o, "journey"), *key = jstr(o, "key");
    enter_result *res = &p->enters[h->lsn % ENTER_RESULTS];
    res->lsn = h->lsn;
    jd_err_clear(&res->err);
    res->rc = journey && key ? jrn_host_enter(p->host, journey, (jd_str){ key, (uint32_t)strlen(key) }, h->lsn,
                                              jint(o, "at"), &res->err)
                             : jd_err_set(&res->err, JD_ECORRUPT, "", "entry record without journey or key");
    json_object_put(o);
    (void)err;
    return JD_OK;   /* a refused entry is an answer, not a failure to apply */
}

/* ---- fan-out reads ----------------------------------------------------------- */

/* Adds src's numbers into dst, recursively; strings fill in where dst has none. */
static void sum_into(json_object *dst, json_object *src)
{
    json_object_object_foreach(src, k, v) {
        json_object *d;
        if (!json_object_object_get_ex(dst, k, &d)) {
            json_object_object_add(dst, k, json_object_get(v));
        } else if (json_object_is_type(v, json_type_int) && json_object_is_type(d, json_type_int)) {
            json_object_object_add(dst, k, json_object_new_int64(json_object_get_int64(d) + json_object_get_int64(v)));
        } else if (json_object_is_type(v, json_type_object) && json_object_is_type(d, json_type_object)) {
            sum_into(d, v);
        } else if (json_object_is_type(v, json_type_string) && json_object_get_string_len(d) == 0) {
            json_object_object_add(dst, k, json_object_get(v));
        }
    }
}

/* One version's counters in one partition, as JSON (node counts by node id). */
static json_object *vstats_json(const jrn_vstats *st, const jrn_doc *doc)
{
    json_object *o = json_object_new_object(), *x = json_object_new_object(), *nodes = json_object_new_object();
    json_object_object_add(o, "entered", json_object_new_int64((int64_t)st->entered));
    json_object_object_add(o, "active", json_object_new_int64((int64_t)st->active));
    for (int k = JRN_END_FINISHED; k < JRN_END_COUNT_; k++)
        json_object_object_add(x, jrn_end_name((jrn_end)k), json_object_new_int64((int64_t)st->exits[k]));
    json_object_object_add(o, "exits", x);
    json_object_object_add(o, "converted", json_object_new_int64((int64_t)st->exits[JRN_END_GOAL]));
    json_object_object_add(o, "condition_errors", json_object_new_int64((int64_t)st->condition_errors));
    json_object_object_add(o, "last_error", json_object_new_string(st->last_error));
    for (uint32_t i = 0; i < st->nnodes && i < doc->nnodes; i++)
        json_object_object_add(nodes, doc->nodes[i].id, json_object_new_int64((int64_t)st->node_entered[i]));
    json_object_object_add(o, "nodes", nodes);
    return o;
}

typedef struct jget_job {
    pthread_mutex_t mu;
    uint32_t        pending;
    char           *id;
    bool            with_docs;
    json_object    *def;           /* shard 0: the definitions */
    json_object    *stats;         /* {"<id>": {"<version>": {...}}} summed */
    eng_json_fn     done;
    void           *ctx;
} jget_job;

static json_object *empty_stats(void)
{
    json_object *o = json_object_new_object(), *x = json_object_new_object();
    json_object_object_add(o, "entered", json_object_new_int64(0));
    json_object_object_add(o, "active", json_object_new_int64(0));
    for (int k = JRN_END_FINISHED; k < JRN_END_COUNT_; k++)
        json_object_object_add(x, jrn_end_name((jrn_end)k), json_object_new_int64(0));
    json_object_object_add(o, "exits", x);
    json_object_object_add(o, "converted", json_object_new_int64(0));
    json_object_object_add(o, "condition_errors", json_object_new_int64(0));
    json_object_object_add(o, "last_error", json_object_new_string(""));
    return o;
}

/* Puts "stats" on a journey object and on each of its versions. */
static void attach_stats(json_object *jo, json_object *all)
{
    json_object *idv, *vs, *mine = NULL;
    if (!json_object_object_get_ex(jo, "id", &idv)) return;
    json_object_object_get_ex(all, json_object_get_string(idv), &mine);
    json_object *total = empty_stats();
    if (json_object_object_get_ex(jo, "versions", &vs))
        for (size_t i = 0; i < json_object_array_length(vs); i++) {
            json_object *v = json_object_array_get_idx(vs, i), *num, *st = NULL;
            char key[16];
            json_object_object_get_ex(v, "version", &num);
            snprintf(key, sizeof key, "%lld", (long long)json_object_get_int64(num));
            json_object *vst = empty_stats();
            json_object_object_add(vst, "nodes", json_object_new_object());
            if (mine && json_object_object_get_ex(mine, key, &st)) sum_into(vst, st);
            json_object *copy = empty_stats();
            json_object *nodes;
            sum_into(copy, vst);
            if (json_object_object_get_ex(copy, "nodes", &nodes)) json_object_object_del(copy, "nodes");
            sum_into(total, copy);
            json_object_put(copy);
            json_object_object_add(v, "stats", vst);
        }
    json_object_object_add(jo, "stats", total);
}

static void jget_finish(jget_job *j)
{
    if (!j->def) {
        jd_err err;
        jd_err_set(&err, JD_ENOTFOUND, "id", "no journey '%s'", j->id ? j->id : "");
        j->done(j->ctx, JD_ENOTFOUND, &err, NULL, 0);
    } else {
        if (json_object_is_type(j->def, json_type_array))
            for (size_t i = 0; i < json_object_array_length(j->def); i++)
                attach_stats(json_object_array_get_idx(j->def, i), j->stats);
        else
            attach_stats(j->def, j->stats);
        const char *s = json_object_to_json_string_ext(j->def, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        j->done(j->ctx, JD_OK, NULL, s, strlen(s));
    }
    json_object_put(j->def);
    json_object_put(j->stats);
    pthread_mutex_destroy(&j->mu);
    free(j->id);
    free(j);
}

static void jget_shard(eng_shard *sh, void *arg)
{
    jget_job *j = arg;
    eng *e = sh->e;
    const jrn_reg *reg = e->regs[sh->id];
    const jrn_journey *one = j->id ? jrn_reg_find(reg, j->id) : NULL;
    json_object *st = json_object_new_object();
    for (uint32_t ji = 0; ji < jrn_reg_count(reg); ji++) {
        const jrn_journey *jr = jrn_reg_at(reg, ji);
        if (j->id && jr != one) continue;
        json_object *per = json_object_new_object();
        for (uint32_t v = 1; v <= jr->nversions; v++) {
            json_object *sum = NULL;
            for (uint32_t p = sh->id; p < e->nparts; p += e->nshards) {
                const jrn_vstats *vs = jrn_host_stats(e->parts[p].host, ji, v);
                if (!vs) continue;
                json_object *x = vstats_json(vs, jr->versions[v - 1]->doc);
                if (!sum) sum = x;
                else { sum_into(sum, x); json_object_put(x); }
            }
            char key[16];
            snprintf(key, sizeof key, "%u", v);
            if (sum) json_object_object_add(per, key, sum);
        }
        json_object_object_add(st, jr->id, per);
    }
    json_object *def = NULL;
    if (sh->id == 0 && (!j->id || one)) def = jrn_reg_json(reg, one, j->with_docs);
    pthread_mutex_lock(&j->mu);
    if (def) j->def = def;
    sum_into(j->stats, st);
    bool last = --j->pending == 0;
    pthread_mutex_unlock(&j->mu);
    json_object_put(st);
    if (last) jget_finish(j);
}

void eng_journeys_get(eng *e, const char *id, bool with_docs, eng_json_fn done, void *ctx)
{
    jget_job *j = jd_xcalloc(1, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    j->pending = e->nshards;
    j->id = id ? jd_xstrdup(id) : NULL;
    j->with_docs = with_docs;
    j->stats = json_object_new_object();
    j->done = done;
    j->ctx = ctx;
    for (uint32_t s = 0; s < e->nshards; s++) eng__call(e, s, jget_shard, j);
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

static void reply_err(eng_json_fn done, void *ctx, int rc, const jd_err *err, const jrn_diags *d)
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
    if (status != JD_OK) reply_err(j->done, j->ctx, status, err, NULL);
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
    if (j->create_only && cur) rc = jd_err_set(&err, JD_EBUSY, "id", "journey '%s' already exists", j->id);
    else if (j->must_exist && !cur) rc = jd_err_set(&err, JD_ENOTFOUND, "id", "no journey '%s'", j->id);
    if (rc == JD_OK && j->if_changed && cur && jrn_reg_live(cur) && j->text &&
        strcmp(jrn_reg_live(cur)->text, j->text) == 0 && cur->status != JRN_ARCHIVED) {
        eng_journeys_get(e, j->id, false, j->done, j->ctx);   /* unchanged: nothing to write */
        change_free(j);
        return;
    }
    if (rc == JD_OK) rc = jrn_reg_check(reg, &j->c, &d, &err);
    if (rc != JD_OK) {
        reply_err(j->done, j->ctx, rc, &err, rc == JD_EINVAL ? &d : NULL);
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
        reply_err(done, ctx, JD_EINVAL, &err, NULL);
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
        reply_err(j->done, j->ctx, JD_EBUSY, &err, NULL);
    } else if (r->rc != JD_OK) {
        reply_err(j->done, j->ctx, r->rc, &r->err, NULL);
    } else {
        jd_buf b;
        jd_buf_init(&b, SIZE_MAX);
        jrn_host_person_json(p->host, j->key, strlen(j->key), &b);
        json_object *o = json_object_new_object(), *all = b.data ? json_tokener_parse(b.data) : NULL, *inst = NULL;
        for (size_t i = 0; all && i < json_object_array_length(all); i++) {
            json_object *x = json_object_array_get_idx(all, i);
            const char *jid = jstr(x, "journey");
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
        reply_err(j->done, j->ctx, status, err, NULL);
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
        reply_err(j->done, j->ctx, rc, &err, NULL);
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

void eng_journey_enter(eng *e, const char *id, const char *profile_id, eng_json_fn done, void *ctx)
{
    enter_job *j = jd_xcalloc(1, sizeof *j);
    j->e = e;
    j->id = jd_xstrdup(id);
    j->key = jd_xstrdup(profile_id);
    j->partition = eng__partition_of(e, j->key, strlen(j->key));
    j->done = done;
    j->ctx = ctx;
    eng__call(e, 0, enter_check, j);
}

/* ---- a person's journeys, and intents ----------------------------------------- */

typedef struct person_job {
    char       *key;
    uint32_t    partition, limit;
    eng_json_fn done;
    void       *ctx;
    /* intents of everyone: one array per shard, merged by the last */
    pthread_mutex_t mu;
    uint32_t    pending;
    json_object *all;
} person_job;

static void person_read(eng_shard *sh, void *arg)
{
    person_job *j = arg;
    eng_part *p = &sh->e->parts[j->partition];
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    if (jrn_host_person_json(p->host, j->key, strlen(j->key), &b) == JD_OK) {
        j->done(j->ctx, JD_OK, NULL, b.data, b.len);
    } else {
        jd_err err;
        jd_err_set(&err, JD_ENOTFOUND, "id", "'%s' has never been in a journey", j->key);
        reply_err(j->done, j->ctx, JD_ENOTFOUND, &err, NULL);
    }
    jd_buf_release(&b);
    free(j->key);
    free(j);
}

void eng_profile_journeys(eng *e, const char *profile_id, eng_json_fn done, void *ctx)
{
    person_job *j = jd_xcalloc(1, sizeof *j);
    j->key = jd_xstrdup(profile_id);
    j->partition = eng__partition_of(e, j->key, strlen(j->key));
    j->done = done;
    j->ctx = ctx;
    eng__call(e, eng__shard_of(e, j->partition), person_read, j);
}

static json_object *intent_json(const intent_rec *r)
{
    static const char *const kinds[] = { [JRN_SEND] = "send", [JRN_TASK] = "task" };
    char hex[17], t[JD_TIME_TEXT];
    json_object *o = json_object_new_object();
    const jrn_node *n = r->node;
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->id);
    json_object_object_add(o, "id", json_object_new_string(hex));
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->instance);
    json_object_object_add(o, "instance", json_object_new_string(hex));
    json_object_object_add(o, "journey", json_object_new_string(r->journey->id));
    json_object_object_add(o, "version", json_object_new_int64(r->version));
    json_object_object_add(o, "node", json_object_new_string(n->id));
    json_object_object_add(o, "kind", json_object_new_string(
        (n->kind == JRN_SEND || n->kind == JRN_TASK) ? kinds[n->kind] : "other"));
    if (n->kind == JRN_SEND) {
        json_object_object_add(o, "channel", json_object_new_string(n->u.send.channel));
        json_object_object_add(o, "template", json_object_new_string(n->u.send.template_name));
        if (n->u.send.category) json_object_object_add(o, "category", json_object_new_string(n->u.send.category));
    } else if (n->kind == JRN_TASK) {
        if (n->u.task.queue) json_object_object_add(o, "queue", json_object_new_string(n->u.task.queue));
        if (n->u.task.title) json_object_object_add(o, "title", json_object_new_string(n->u.task.title));
    }
    json_object_object_add(o, "person", json_object_new_string(r->person));
    jd_time_format(r->at_us, t);
    json_object_object_add(o, "at", json_object_new_string(t));
    json_object_object_add(o, "at_us", json_object_new_int64(r->at_us));
    json_object_object_add(o, "lsn", json_object_new_int64((int64_t)r->lsn));
    json_object_object_add(o, "delay_us", json_object_new_int64(r->delay_us));
    return o;
}

/* Newest first: by lsn, then production order within a record. */
static int cmp_intent_json(const void *a, const void *b)
{
    json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b;
    int64_t lx = jint(x, "lsn"), ly = jint(y, "lsn");
    if (lx != ly) return lx > ly ? -1 : 1;
    int64_t sx = jint(x, "_seq"), sy = jint(y, "_seq");
    return sx > sy ? -1 : sx < sy;
}

/* Appends the partition's newest intents (of key, or all) to arr. */
static void collect(const eng *e, const eng_part *p, const char *key, uint32_t limit, json_object *arr)
{
    uint64_t cap = e->o.recent_intents, have = p->nintents < cap ? p->nintents : cap;
    uint32_t got = 0;
    for (uint64_t i = 0; i < have && got < limit; i++) {
        uint64_t seq = p->nintents - 1 - i;
        const intent_rec *r = &p->intents[seq % cap];
        if (key && strcmp(r->person, key) != 0) continue;
        json_object *o = intent_json(r);
        json_object_object_add(o, "_seq", json_object_new_int64((int64_t)seq));
        json_object_array_add(arr, o);
        got++;
    }
}

static void intents_finish(person_job *j)
{
    size_t n = json_object_array_length(j->all);
    json_object_array_sort(j->all, cmp_intent_json);
    json_object *out = json_object_new_array();
    for (size_t i = 0; i < n && i < j->limit; i++) {
        json_object *o = json_object_array_get_idx(j->all, i);
        json_object_object_del(o, "_seq");
        json_object_array_add(out, json_object_get(o));
    }
    const char *s = json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    j->done(j->ctx, JD_OK, NULL, s, strlen(s));
    json_object_put(out);
    json_object_put(j->all);
    pthread_mutex_destroy(&j->mu);
    free(j->key);
    free(j);
}

static void intents_shard(eng_shard *sh, void *arg)
{
    person_job *j = arg;
    eng *e = sh->e;
    json_object *mine = json_object_new_array();
    if (j->key) collect(e, &e->parts[j->partition], j->key, j->limit, mine);
    else
        for (uint32_t p = sh->id; p < e->nparts; p += e->nshards) collect(e, &e->parts[p], NULL, j->limit, mine);
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < json_object_array_length(mine); i++)
        json_object_array_add(j->all, json_object_get(json_object_array_get_idx(mine, i)));
    bool last = --j->pending == 0;
    pthread_mutex_unlock(&j->mu);
    json_object_put(mine);
    if (last) intents_finish(j);
}

void eng_intents_get(eng *e, const char *profile_id, uint32_t limit, eng_json_fn done, void *ctx)
{
    person_job *j = jd_xcalloc(1, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    j->key = profile_id ? jd_xstrdup(profile_id) : NULL;
    j->limit = limit ? limit : 100;
    j->done = done;
    j->ctx = ctx;
    j->all = json_object_new_array();
    if (j->key) {
        j->partition = eng__partition_of(e, j->key, strlen(j->key));
        j->pending = 1;
        eng__call(e, eng__shard_of(e, j->partition), intents_shard, j);
    } else {
        j->pending = e->nshards;
        for (uint32_t s = 0; s < e->nshards; s++) eng__call(e, s, intents_shard, j);
    }
}
