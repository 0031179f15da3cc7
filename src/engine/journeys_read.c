/*
** src/engine/journeys_read.c -- journey reads, each a message to the shards
** that own the answer: the journeys with their counters summed over every
** partition (eng_journeys_get), where a person is (eng_profile_journeys), the
** intents ring (eng_intents_get), and segments: sizes, members and size over
** time (eng_segment_history). Writes are in journeys.c.
**
** Invariants:
**  (1) A fan-out read's job is shared by the shards it went to under its
**      mutex; the last one to finish answers and frees it. eng__fanout is
**      that job for reads whose shares are JSON arrays to concatenate; the
**      segment sizes and histories keep their own (their shares are counts
**      and per-partition slots, not arrays).
**  (2) json-c objects built on one shard are handed to the finisher through
**      that mutex; none is touched by two threads at once.
*/
#include "engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

/* ---- fan-out reads ----------------------------------------------------------- */

typedef struct fanout {
    pthread_mutex_t mu;
    uint32_t        pending;
    json_object    *all;
    void          (*part)(eng_shard *sh, void *arg, json_object *mine);
    void          (*finish)(void *arg, json_object *all);
    void           *arg;
} fanout;

static void fanout_shard(eng_shard *sh, void *arg)
{
    fanout *f = arg;
    json_object *mine = json_object_new_array();
    f->part(sh, f->arg, mine);
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < json_object_array_length(mine); i++)
        json_object_array_add(f->all, json_object_get(json_object_array_get_idx(mine, i)));
    bool last = --f->pending == 0;
    pthread_mutex_unlock(&f->mu);
    json_object_put(mine);
    if (!last) return;
    f->finish(f->arg, f->all);
    json_object_put(f->all);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void eng__fanout(eng *e, void (*part)(eng_shard *sh, void *arg, json_object *mine),
                 void (*finish)(void *arg, json_object *all), void *arg)
{
    fanout *f = jd_xcalloc(1, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->pending = e->nshards;
    f->all = json_object_new_array();
    f->part = part;
    f->finish = finish;
    f->arg = arg;
    for (uint32_t s = 0; s < e->nshards; s++) eng__call(e, s, fanout_shard, f);
}

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
    char           *id;
    bool            with_docs;
    json_object    *def;           /* shard 0: the definitions */
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

/* all: each shard's {"<id>": {"<version>": {...}}}, summed here in the order they came. */
static void jget_finish(void *arg, json_object *all)
{
    jget_job *j = arg;
    json_object *stats = json_object_new_object();
    for (size_t i = 0; i < json_object_array_length(all); i++) sum_into(stats, json_object_array_get_idx(all, i));
    if (!j->def) {
        jd_err err;
        jd_err_set(&err, JD_ENOTFOUND, "id", "no journey '%s'", j->id ? j->id : "");
        j->done(j->ctx, JD_ENOTFOUND, &err, NULL, 0);
    } else {
        if (json_object_is_type(j->def, json_type_array))
            for (size_t i = 0; i < json_object_array_length(j->def); i++)
                attach_stats(json_object_array_get_idx(j->def, i), stats);
        else
            attach_stats(j->def, stats);
        const char *s = json_object_to_json_string_ext(j->def, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        j->done(j->ctx, JD_OK, NULL, s, strlen(s));
    }
    json_object_put(j->def);
    json_object_put(stats);
    free(j->id);
    free(j);
}

static void jget_shard(eng_shard *sh, void *arg, json_object *mine)
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
    if (sh->id == 0 && (!j->id || one)) j->def = jrn_reg_json(reg, one, j->with_docs);
    json_object_array_add(mine, st);
}

void eng_journeys_get(eng *e, const char *id, bool with_docs, eng_json_fn done, void *ctx)
{
    jget_job *j = jd_xcalloc(1, sizeof *j);
    j->id = id ? jd_xstrdup(id) : NULL;
    j->with_docs = with_docs;
    j->done = done;
    j->ctx = ctx;
    eng__fanout(e, jget_shard, jget_finish, j);
}

/* ---- a person's journeys, and intents ----------------------------------------- */

typedef struct person_job {
    char       *key;
    uint32_t    partition, limit;
    void      (*then)(eng_shard *sh, void *arg);   /* after the key is resolved */
    eng_json_fn done;
    void       *ctx;
} person_job;

/* The person's key as the identity directory has it (route.c), then the read
 * on the shard that owns it. */
static void person_resolved(eng *e, char *key, void *arg)
{
    person_job *j = arg;
    free(j->key);
    j->key = key;
    j->partition = eng__partition_of(e, j->key, strlen(j->key));
    eng__call(e, eng__shard_of(e, j->partition), j->then, j);
}


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
        eng__reply_err(j->done, j->ctx, JD_ENOTFOUND, &err, NULL);
    }
    jd_buf_release(&b);
    free(j->key);
    free(j);
}

void eng_profile_journeys(eng *e, const char *profile_id, eng_json_fn done, void *ctx)
{
    person_job *j = jd_xcalloc(1, sizeof *j);
    j->key = jd_xstrdup(profile_id);
    j->done = done;
    j->ctx = ctx;
    j->then = person_read;
    eng__resolve(e, profile_id, person_resolved, j);
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
    int64_t lx = eng__jint(x, "lsn"), ly = eng__jint(y, "lsn");
    if (lx != ly) return lx > ly ? -1 : 1;
    int64_t sx = eng__jint(x, "_seq"), sy = eng__jint(y, "_seq");
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
        if (!r->person || (key && strcmp(r->person, key) != 0)) continue;   /* NULL: the person was deleted */
        json_object *o = intent_json(r);
        json_object_object_add(o, "_seq", json_object_new_int64((int64_t)seq));
        json_object_array_add(arr, o);
        got++;
    }
}

/* all: the intents collected (borrowed); answers and frees the job. */
static void intents_finish(void *arg, json_object *all)
{
    person_job *j = arg;
    size_t n = json_object_array_length(all);
    json_object_array_sort(all, cmp_intent_json);
    json_object *out = json_object_new_array();
    for (size_t i = 0; i < n && i < j->limit; i++) {
        json_object *o = json_object_array_get_idx(all, i);
        json_object_object_del(o, "_seq");
        json_object_array_add(out, json_object_get(o));
    }
    const char *s = json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    j->done(j->ctx, JD_OK, NULL, s, strlen(s));
    json_object_put(out);
    free(j->key);
    free(j);
}

/* One person's intents: their partition alone, on its shard. */
static void intents_person(eng_shard *sh, void *arg)
{
    person_job *j = arg;
    json_object *mine = json_object_new_array();
    collect(sh->e, &sh->e->parts[j->partition], j->key, j->limit, mine);
    intents_finish(j, mine);
    json_object_put(mine);
}

/* Everyone's intents: this shard's share. */
static void intents_shard(eng_shard *sh, void *arg, json_object *mine)
{
    person_job *j = arg;
    eng *e = sh->e;
    for (uint32_t p = sh->id; p < e->nparts; p += e->nshards) collect(e, &e->parts[p], NULL, j->limit, mine);
}

void eng_intents_get(eng *e, const char *profile_id, uint32_t limit, eng_json_fn done, void *ctx)
{
    person_job *j = jd_xcalloc(1, sizeof *j);
    j->key = profile_id ? jd_xstrdup(profile_id) : NULL;
    j->limit = limit ? limit : 100;
    j->done = done;
    j->ctx = ctx;
    if (j->key) {
        j->then = intents_person;
        eng__resolve(e, profile_id, person_resolved, j);
    } else {
        eng__fanout(e, intents_shard, intents_finish, j);
    }
}

/* ---- segments ----------------------------------------------------------------- */

typedef struct seg_job {
    pthread_mutex_t mu;
    uint32_t        pending;
    char           *id, *after;
    uint32_t        limit;
    json_object    *def;            /* shard 0: definitions */
    uint64_t        size[JRN_MAX_SEGMENTS];
    eng_json_fn     done;
    void           *ctx;
} seg_job;

static json_object *segment_json(const jrn_segment *s)
{
    char t[JD_TIME_TEXT];
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(s->id));
    json_object_object_add(o, "name", json_object_new_string(s->name));
    json_object_object_add(o, "version", json_object_new_int64(s->version));
    json_object_object_add(o, "when", json_object_new_string(expr_prog_source(s->when)));
    json_object_object_add(o, "timed", json_object_new_boolean(s->uses_now));
    jd_time_format(s->updated_us, t);
    json_object_object_add(o, "updated_at", json_object_new_string(t));
    return o;
}

static void seg_job_free(seg_job *j)
{
    json_object_put(j->def);
    pthread_mutex_destroy(&j->mu);
    free(j->id);
    free(j->after);
    free(j);
}

static void seg_reply_missing(seg_job *j)
{
    jd_err err;
    jd_err_set(&err, JD_ENOTFOUND, "id", "no segment '%s'", j->id ? j->id : "");
    eng__reply_err(j->done, j->ctx, JD_ENOTFOUND, &err, NULL);
}

static void segs_finish(seg_job *j)
{
    if (!j->def) {
        seg_reply_missing(j);
    } else {
        json_object *arr = json_object_is_type(j->def, json_type_array) ? j->def : NULL;
        size_t n = arr ? json_object_array_length(arr) : 1;
        for (size_t i = 0; i < n; i++) {
            json_object *o = arr ? json_object_array_get_idx(arr, i) : j->def, *bit;
            json_object_object_get_ex(o, "_bit", &bit);
            uint32_t b = (uint32_t)json_object_get_int64(bit);
            json_object_object_add(o, "size", json_object_new_int64((int64_t)j->size[b % JRN_MAX_SEGMENTS]));
            json_object_object_del(o, "_bit");
        }
        const char *s = json_object_to_json_string_ext(j->def, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        j->done(j->ctx, JD_OK, NULL, s, strlen(s));
    }
    seg_job_free(j);
}

static void segs_shard(eng_shard *sh, void *arg)
{
    seg_job *j = arg;
    eng *e = sh->e;
    const jrn_reg *reg = e->regs[sh->id];
    uint64_t size[JRN_MAX_SEGMENTS] = { 0 }, part[JRN_MAX_SEGMENTS];
    for (uint32_t p = sh->id; p < e->nparts; p += e->nshards) {
        jrn_host_segment_sizes(e->parts[p].host, part);
        for (uint32_t b = 0; b < JRN_MAX_SEGMENTS; b++) size[b] += part[b];
    }
    json_object *def = NULL;
    if (sh->id == 0) {
        const jrn_segment *one = j->id ? jrn_reg_segment_find(reg, j->id) : NULL;
        if (!j->id) def = json_object_new_array();
        for (uint32_t b = 0; b < jrn_reg_segments(reg); b++) {
            const jrn_segment *s = jrn_reg_segment_at(reg, b);
            if (j->id && s != one) continue;
            json_object *o = segment_json(s);
            json_object_object_add(o, "_bit", json_object_new_int64(b));
            if (def) json_object_array_add(def, o);
            else def = o;
        }
    }
    pthread_mutex_lock(&j->mu);
    if (def) j->def = def;
    for (uint32_t b = 0; b < JRN_MAX_SEGMENTS; b++) j->size[b] += size[b];
    bool last = --j->pending == 0;
    pthread_mutex_unlock(&j->mu);
    if (last) segs_finish(j);
}

static seg_job *seg_job_new(eng *e, const char *id, eng_json_fn done, void *ctx)
{
    seg_job *j = jd_xcalloc(1, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    j->pending = e->nshards;
    j->id = id ? jd_xstrdup(id) : NULL;
    j->done = done;
    j->ctx = ctx;
    return j;
}

void eng_segments_get(eng *e, const char *id, eng_json_fn done, void *ctx)
{
    seg_job *j = seg_job_new(e, id, done, ctx);
    for (uint32_t s = 0; s < e->nshards; s++) eng__call(e, s, segs_shard, j);
}

typedef struct member_acc { json_object *arr; const char *after; } member_acc;

static void add_member(void *ctx, jd_str key)
{
    member_acc *m = ctx;
    size_t an = m->after ? strlen(m->after) : 0;
    if (m->after) {   /* keys after the cursor, in byte order */
        int c = memcmp(key.p, m->after, key.n < an ? key.n : an);
        if (c < 0 || (c == 0 && key.n <= an)) return;
    }
    json_object_array_add(m->arr, json_object_new_string_len(key.p, (int)key.n));
}

static int cmp_key(const void *a, const void *b)
{
    json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b;
    size_t xn = (size_t)json_object_get_string_len(x), yn = (size_t)json_object_get_string_len(y);
    int c = memcmp(json_object_get_string(x), json_object_get_string(y), xn < yn ? xn : yn);
    return c ? c : (xn > yn) - (xn < yn);
}

/* all: the keys gathered from every shard (borrowed). */
static void members_finish(void *arg, json_object *all)
{
    seg_job *j = arg;
    if (!j->def) {
        seg_reply_missing(j);
        seg_job_free(j);
        return;
    }
    json_object_array_sort(all, cmp_key);
    json_object *out = json_object_new_object(), *arr = json_object_new_array();
    size_t n = json_object_array_length(all);
    for (size_t i = 0; i < n && i < j->limit; i++)
        json_object_array_add(arr, json_object_get(json_object_array_get_idx(all, i)));
    json_object_object_add(out, "members", arr);
    json_object_object_add(out, "next", n > j->limit ? json_object_get(json_object_array_get_idx(arr, j->limit - 1)) : NULL);
    const char *s = json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    j->done(j->ctx, JD_OK, NULL, s, strlen(s));
    json_object_put(out);
    seg_job_free(j);
}

static void members_shard(eng_shard *sh, void *arg, json_object *mine)
{
    seg_job *j = arg;
    eng *e = sh->e;
    const jrn_segment *s = jrn_reg_segment_find(e->regs[sh->id], j->id);
    if (s) {
        member_acc m = { mine, j->after };
        for (uint32_t p = sh->id; p < e->nparts; p += e->nshards) jrn_host_segment_members(e->parts[p].host, s->bit, add_member, &m);
        /* keep only this shard's first `limit` keys: the merged first page is among them */
        json_object_array_sort(mine, cmp_key);
        while (json_object_array_length(mine) > j->limit + 1)
            json_object_array_del_idx(mine, json_object_array_length(mine) - 1, 1);
    }
    if (sh->id == 0 && s) j->def = json_object_new_boolean(1);
}

void eng_segment_members(eng *e, const char *id, const char *after, uint32_t limit, eng_json_fn done, void *ctx)
{
    seg_job *j = seg_job_new(e, id, done, ctx);
    j->after = after && after[0] ? jd_xstrdup(after) : NULL;
    j->limit = limit ? limit : 100;
    eng__fanout(e, members_shard, members_finish, j);
}

/* Size over time: every shard copies its partitions' points into the job (a
 * partition's slot is written by its own shard only; the mutex orders them
 * before the finisher), the last one sums them. */
typedef struct hist_job {
    pthread_mutex_t mu;
    uint32_t        pending;
    char           *id;
    bool            daily, found;
    int64_t         from_us, to_us;
    jrn_seg_points *pts;            /* [nparts] */
    bool           *have;           /* [nparts]: the partition keeps a history of the segment */
    uint32_t        nparts;
    eng_json_fn     done;
    void           *ctx;
} hist_job;

static void hist_job_free(hist_job *j)
{
    pthread_mutex_destroy(&j->mu);
    free(j->pts);
    free(j->have);
    free(j->id);
    free(j);
}

/* Boundary k's point summed: a partition that has it gives it, one whose
 * clock is behind k gives its current size (nothing changed there since),
 * one whose points start after k gives 0 (the segment did not exist yet).
 * *present: at least one partition has a point at k. */
static uint64_t hist_sum_at(const hist_job *j, int64_t k, bool *present)
{
    uint64_t sum = 0;
    *present = false;
    for (uint32_t p = 0; p < j->nparts; p++) {
        const jrn_seg_points *pt = &j->pts[p];
        if (!j->have[p]) continue;
        int64_t oldest = pt->last - (int64_t)pt->n + 1;
        if (pt->n && k >= oldest && k <= pt->last) {
            sum += pt->size[k - oldest];
            *present = true;
        } else if (k > pt->last) {
            sum += pt->current;
        }
    }
    return sum;
}

static void hist_finish(hist_job *j)
{
    if (!j->found) {
        jd_err err;
        jd_err_set(&err, JD_ENOTFOUND, "id", "no segment '%s'", j->id);
        eng__reply_err(j->done, j->ctx, JD_ENOTFOUND, &err, NULL);
        hist_job_free(j);
        return;
    }
    /* The window: the newest boundary any partition has reached, back as far
     * as one ring reaches (older points fell off every ring). */
    int64_t last = INT64_MIN, oldest = INT64_MAX, step = j->daily ? (int64_t)JD_DAY : (int64_t)JD_HOUR;
    uint32_t cap = j->daily ? JRN_SEG_DAYS : JRN_SEG_HOURS;
    for (uint32_t p = 0; p < j->nparts; p++) {
        if (!j->have[p] || !j->pts[p].n) continue;
        if (j->pts[p].last > last) last = j->pts[p].last;
        if (j->pts[p].last - (int64_t)j->pts[p].n + 1 < oldest) oldest = j->pts[p].last - (int64_t)j->pts[p].n + 1;
    }
    json_object *out = json_object_new_object(), *arr = json_object_new_array();
    json_object_object_add(out, "id", json_object_new_string(j->id));
    json_object_object_add(out, "granularity", json_object_new_string(j->daily ? "day" : "hour"));
    if (last != INT64_MIN && oldest < last - (int64_t)cap + 1) oldest = last - (int64_t)cap + 1;
    for (int64_t k = oldest; last != INT64_MIN && k <= last; k++) {
        int64_t at = k * step;
        if (at < j->from_us || at > j->to_us) continue;
        bool present;
        uint64_t size = hist_sum_at(j, k, &present);
        if (!present) continue;
        char t[JD_TIME_TEXT];
        jd_time_format(at, t);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "at", json_object_new_string(t));
        json_object_object_add(o, "size", json_object_new_int64((int64_t)size));
        json_object_array_add(arr, o);
    }
    json_object_object_add(out, "points", arr);
    const char *s = json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    j->done(j->ctx, JD_OK, NULL, s, strlen(s));
    json_object_put(out);
    hist_job_free(j);
}

static void hist_shard(eng_shard *sh, void *arg)
{
    hist_job *j = arg;
    eng *e = sh->e;
    const jrn_segment *s = jrn_reg_segment_find(e->regs[sh->id], j->id);
    for (uint32_t p = sh->id; s && p < e->nparts; p += e->nshards)
        j->have[p] = jrn_host_segment_history(e->parts[p].host, s->bit, j->daily, &j->pts[p]) == JD_OK;
    pthread_mutex_lock(&j->mu);
    if (sh->id == 0 && s) j->found = true;
    bool last = --j->pending == 0;
    pthread_mutex_unlock(&j->mu);
    if (last) hist_finish(j);
}

void eng_segment_history(eng *e, const char *id, bool daily, int64_t from_us, int64_t to_us, eng_json_fn done,
                         void *ctx)
{
    hist_job *j = jd_xcalloc(1, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    j->pending = e->nshards;
    j->id = jd_xstrdup(id);
    j->daily = daily;
    j->from_us = from_us;
    j->to_us = to_us;
    j->nparts = e->nparts;
    j->pts = jd_xcalloc(e->nparts, sizeof *j->pts);
    j->have = jd_xcalloc(e->nparts, sizeof *j->have);
    j->done = done;
    j->ctx = ctx;
    for (uint32_t s = 0; s < e->nshards; s++) eng__call(e, s, hist_shard, j);
}

static void person_segments(eng_shard *sh, void *arg)
{
    person_job *j = arg;
    eng *e = sh->e;
    const jrn_reg *reg = e->regs[sh->id];
    uint64_t bits = jrn_host_segments_of(e->parts[j->partition].host, j->key, strlen(j->key));
    json_object *a = json_object_new_array();
    for (uint32_t b = 0; b < jrn_reg_segments(reg); b++)
        if (bits >> b & 1) json_object_array_add(a, json_object_new_string(jrn_reg_segment_at(reg, b)->id));
    const char *s = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN);
    j->done(j->ctx, JD_OK, NULL, s, strlen(s));
    json_object_put(a);
    free(j->key);
    free(j);
}

void eng_profile_segments(eng *e, const char *profile_id, eng_json_fn done, void *ctx)
{
    person_job *j = jd_xcalloc(1, sizeof *j);
    j->key = jd_xstrdup(profile_id);
    j->done = done;
    j->ctx = ctx;
    j->then = person_segments;
    eng__resolve(e, profile_id, person_resolved, j);
}

/* ---- search by trait ---------------------------------------------------------- */

typedef struct find_job {
    uint32_t        limit;
    char           *trait, *value;
    eng_json_fn     done;
    void           *ctx;
} find_job;

typedef struct find_acc { json_object *arr; uint32_t limit; } find_acc;

static bool found_key(void *ctx, const char *key, size_t kn)
{
    find_acc *a = ctx;
    json_object_array_add(a->arr, json_object_new_string_len(key, (int)kn));
    return json_object_array_length(a->arr) < a->limit;
}

static void find_shard(eng_shard *sh, void *arg, json_object *mine)
{
    find_job *j = arg;
    eng *e = sh->e;
    find_acc a = { mine, j->limit };
    for (uint32_t p = sh->id; p < e->nparts && json_object_array_length(a.arr) < j->limit; p += e->nshards)
        prof_store_find_trait(e->parts[p].profiles, j->trait, j->value, found_key, &a);
}

/* all: every shard's keys, in the order the shards finished; the first
 * `limit` of them are the answer. */
static void find_finish(void *arg, json_object *all)
{
    find_job *j = arg;
    size_t n = json_object_array_length(all);
    if (n > j->limit) json_object_array_del_idx(all, j->limit, n - j->limit);
    json_object_array_sort(all, cmp_key);   /* a stable answer */
    const char *s = json_object_to_json_string_ext(all, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    j->done(j->ctx, JD_OK, NULL, s, strlen(s));
    free(j->trait);
    free(j->value);
    free(j);
}

void eng_profiles_find(eng *e, const char *trait, const char *value, uint32_t limit, eng_json_fn done, void *ctx)
{
    find_job *j = jd_xcalloc(1, sizeof *j);
    j->limit = limit ? limit : 100;
    j->trait = jd_xstrdup(trait);
    j->value = jd_xstrdup(value);
    j->done = done;
    j->ctx = ctx;
    eng__fanout(e, find_shard, find_finish, j);
}
