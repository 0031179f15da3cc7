/*
** src/engine/shard.c -- shard threads: each owns the partitions p with
** p % nshards == id and is the only thread that touches their state.
**
** A shard sleeps on its queue and handles messages in arrival order through
** the `handlers` table (batch of records, read, snapshot, barrier).
**
** Invariants:
**  (1) A partition's records are applied in lsn order, each exactly once per
**      process life (the committer dispatches each durable record once).
**  (2) Applying a record is a function of the record and the partition state:
**      no clock, no randomness (DESIGN.md).
**  (3) A read is answered from the state after every record dispatched before it.
*/
#include "engine_int.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

uint32_t eng__shard_of(const eng *e, uint32_t partition) { return partition % e->nshards; }

uint32_t eng__partition_of(const eng *e, const char *key, size_t n)
{
    return (uint32_t)(jd_hash64(key, n) & (e->nparts - 1));
}

shard_batch *eng__batch_create(void)
{
    shard_batch *b = jd_xcalloc(1, sizeof *b);
    b->m.kind = SM_BATCH;
    jd_buf_init(&b->recs, SIZE_MAX);
    return b;
}

void eng__batch_add(shard_batch *b, uint64_t lsn, uint16_t type, uint16_t partition, const void *body, uint32_t len)
{
    static const char zeros[8];
    rec_hdr h = { lsn, 0, 0, len, partition, type, 0, 0 };
    jd_buf_add(&b->recs, &h, sizeof h);
    jd_buf_add(&b->recs, body, len);
    jd_buf_add(&b->recs, zeros, REC_ALIGN(len) - len);
    b->n++;
}

void eng__shard_push(eng *e, uint32_t s, shard_msg *m)
{
    JD_ASSERT(s < e->nshards);
    if (m->kind == SM_BATCH) atomic_fetch_add_explicit(&e->backlog[s], ((shard_batch *)m)->n, memory_order_relaxed);
    bool ok = jd_queue_push(&e->shards[s].q, &m->node);
    JD_ASSERT(ok);   /* shard queues close only after the committer stopped */
    (void)ok;
}

/* ---- record application: one row per record type ----------------------- */

typedef int (*apply_fn)(eng_shard *sh, const rec_hdr *h, jd_err *err);

/* An event: time moves to its receipt first (due waits fire on the profile as
 * it was), then the profile, then the person's journeys. */
static int apply_event(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng_part *p = &sh->e->parts[h->partition];
    ingest_event ev;
    int rc = ingest_event_decode(h + 1, h->len, &ev, err);
    if (rc != JD_OK) return rc;
    jrn_host_advance(p->host, ev.received_us, h->lsn);
    if (prof_suppresses(p->profiles, &ev)) {   /* a deleted person's late event */
        atomic_fetch_add_explicit(&sh->e->st_suppressed, 1, memory_order_relaxed);
        return JD_OK;
    }
    rc = prof_apply(p->profiles, &ev, err);
    jrn_host_event(p->host, &ev, h->lsn, ev.received_us);
    return rc;
}

static const struct { uint16_t type; apply_fn apply; } appliers[] = {
    { ENG_REC_EVENT, apply_event },
    { ENG_REC_TICK, eng__apply_tick },
    { ENG_REC_JOURNEY, eng__apply_journey },
    { ENG_REC_ENTER, eng__apply_enter },
    { ENG_REC_DELETE, eng__apply_delete },
    { ENG_REC_ROUTED, eng__apply_routed },
    { ENG_REC_MOVE_OUT, eng__apply_move_out },
    { ENG_REC_MOVE_IN, eng__apply_move_in },
    { ENG_REC_REFUSED, eng__apply_refused },
    { ENG_REC_RESULT, eng__apply_result },
    { ENG_REC_RETRY, eng__apply_retry },
    { ENG_REC_TASK, eng__apply_task },
};

static void on_batch(eng_shard *sh, shard_msg *m)
{
    shard_batch *b = (shard_batch *)m;
    rec_hdr *h = (rec_hdr *)b->recs.data;
    for (uint32_t i = 0; i < b->n; i++, h = REC_NEXT(h)) {
        apply_fn fn = NULL;
        for (size_t k = 0; k < JD_ARRAY_LEN(appliers); k++)
            if (appliers[k].type == h->type) fn = appliers[k].apply;
        if (h->partition != ENG_PART_ALL) sh->e->parts[h->partition].durable_ns = b->durable_ns;
        else
            for (uint32_t p = sh->id; p < sh->e->nparts; p += sh->e->nshards) sh->e->parts[p].durable_ns = b->durable_ns;
        jd_err err;
        jd_err_clear(&err);
        /* The record is durable; a record we cannot apply is logged and skipped
         * (the same on every replay), never allowed to stop the shard. */
        if (!fn) jd_warn("shard %u: skipping record %llu of unknown type %u", sh->id, (unsigned long long)h->lsn, h->type);
        else if (fn(sh, h, &err) != JD_OK)
            jd_warn("shard %u: record %llu not applied: %s", sh->id, (unsigned long long)h->lsn, err.msg);
    }
    eng__journeys_publish(sh);
    eng *e = sh->e;
    for (uint32_t p = sh->id; p < e->nparts; p += e->nshards) eng__outbox_flush(&e->parts[p]);   /* a full channel's leftovers */
    uint64_t left = atomic_fetch_sub(&e->backlog[sh->id], b->n) - b->n;   /* seq_cst: see eng__backlog_wait */
    if (left <= e->o.max_backlog && atomic_load(&e->bl_waiting)) {
        pthread_mutex_lock(&e->bl_mu);
        pthread_cond_broadcast(&e->bl_cv);
        pthread_mutex_unlock(&e->bl_mu);
    }
    jd_buf_release(&b->recs);
    free(b);
}

/* ---- back-pressure: the log may not run ahead of the shards without bound -- */

static bool backlog_full(eng *e)
{
    for (uint32_t s = 0; s < e->nshards; s++)
        if (atomic_load(&e->backlog[s]) > e->o.max_backlog) return true;
    return false;
}

void eng__backlog_wait(eng *e)
{
    if (!backlog_full(e)) return;
    atomic_fetch_add_explicit(&e->st_backlog_waits, 1, memory_order_relaxed);
    pthread_mutex_lock(&e->bl_mu);
    /* No lost wake-up: this store and the shard's decrement are seq_cst, so
     * either the check below sees the decrement or the shard sees bl_waiting
     * and broadcasts under the mutex, which it can only take once we wait. */
    atomic_store(&e->bl_waiting, true);
    while (backlog_full(e)) pthread_cond_wait(&e->bl_cv, &e->bl_mu);
    atomic_store(&e->bl_waiting, false);
    pthread_mutex_unlock(&e->bl_mu);
}

/* ---- reads: the home shard first, then every shard ------------------------ */

typedef struct read_job {
    pthread_mutex_t mu;
    uint32_t        pending;
    bool            answered;
    char           *id;
    size_t          id_len;
    eng_read_fn     done;
    void           *ctx;
} read_job;

typedef struct shard_read {
    shard_msg m;
    read_job *job;
    int       phase;      /* 1: home partition only; 2: every partition of this shard */
} shard_read;

static void read_job_free(read_job *j)
{
    pthread_mutex_destroy(&j->mu);
    free(j->id);
    free(j);
}

static void send_read(eng *e, uint32_t s, read_job *j, int phase)
{
    shard_read *r = jd_xcalloc(1, sizeof *r);
    r->m.kind = SM_READ;
    r->job = j;
    r->phase = phase;
    eng__shard_push(e, s, &r->m);
}

/* The profile key the identity directory has for the id asked (route.c). */
static void get_resolved(eng *e, char *key, void *arg)
{
    read_job *j = arg;
    free(j->id);
    j->id = key;
    j->id_len = strlen(key);
    send_read(e, eng__shard_of(e, eng__partition_of(e, j->id, j->id_len)), j, 1);
}

void eng_profile_get(eng *e, const char *id, eng_read_fn done, void *ctx)
{
    read_job *j = jd_xcalloc(1, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    j->id_len = strlen(id);
    j->id = jd_xstrndup(id, j->id_len);
    j->done = done;
    j->ctx = ctx;
    j->pending = 1;
    eng__resolve(e, id, get_resolved, j);
}

/* The person's segments and journeys, spliced into the profile JSON in out
 * (GET /v1/profiles/{id} shows the whole person in one read: they live in the
 * same partition, on this thread). */
static void add_person_state(eng_shard *sh, eng_part *part, jd_buf *out)
{
    json_object *o = json_tokener_parse(out->data), *k;
    const char *key = o && json_object_object_get_ex(o, "key", &k) ? json_object_get_string(k) : NULL;
    if (!key || out->len < 2 || out->data[out->len - 1] != '}') goto out;
    size_t kn = strlen(key);
    out->len--;   /* reopen the object */
    jd_buf_adds(out, ",\"segments\":[");
    uint64_t bits = jrn_host_segments_of(part->host, key, kn);
    const jrn_reg *reg = sh->e->regs[sh->id];
    for (uint32_t b = 0, n = 0; b < 64; b++) {
        if (!(bits >> b & 1)) continue;
        const jrn_segment *sg = jrn_reg_segment_at(reg, b);
        if (!sg) continue;
        if (n++) jd_buf_adds(out, ",");
        jd_buf_add_json_str(out, sg->id, strlen(sg->id));
    }
    jd_buf_adds(out, "],\"journeys\":");
    if (jrn_host_person_json(part->host, key, kn, out) != JD_OK) jd_buf_adds(out, "[]");
    jd_buf_adds(out, "}");
out:
    json_object_put(o);
}

static void on_read(eng_shard *sh, shard_msg *m)
{
    shard_read *r = (shard_read *)m;
    read_job *j = r->job;
    eng *e = sh->e;
    jd_buf out;
    jd_buf_init(&out, SIZE_MAX);
    bool found = false;
    if (r->phase == 1) {
        uint32_t home = eng__partition_of(e, j->id, j->id_len);
        found = prof_get_json(e->parts[home].profiles, j->id, j->id_len, &out) == JD_OK;
        if (found) add_person_state(sh, &e->parts[home], &out);
    } else {
        for (uint32_t p = sh->id; p < e->nparts && !found; p += e->nshards)
            if ((found = prof_get_json(e->parts[p].profiles, j->id, j->id_len, &out) == JD_OK))
                add_person_state(sh, &e->parts[p], &out);
    }
    if (r->phase == 1 && !found) {
        /* An anonymousId may live on a userId's profile in another partition. */
        j->pending = e->nshards;
        for (uint32_t s = 0; s < e->nshards; s++) send_read(e, s, j, 2);
        goto out;
    }
    pthread_mutex_lock(&j->mu);
    bool answer = found && !j->answered;
    if (answer) j->answered = true;
    bool last = --j->pending == 0;
    pthread_mutex_unlock(&j->mu);
    if (answer) j->done(j->ctx, JD_OK, out.data, out.len);
    if (last) {
        if (!j->answered) j->done(j->ctx, JD_ENOTFOUND, NULL, 0);
        read_job_free(j);
    }
out:
    jd_buf_release(&out);
    free(r);
}

/* ---- snapshots and barriers -------------------------------------------- */

static void on_snapshot(eng_shard *sh, shard_msg *m)
{
    shard_snap *s = (shard_snap *)m;
    eng__snapshot_write_parts(sh->e, sh->id, s->job);
    free(s);
}

static void on_barrier(eng_shard *sh, shard_msg *m)
{
    shard_barrier *b = (shard_barrier *)m;
    eng__journeys_publish(sh);   /* after a snapshot load there was no batch to do it */
    eng__countdown_done(b->cd, JD_OK, NULL);
    free(b);
}

static void on_call(eng_shard *sh, shard_msg *m)
{
    shard_call *c = (shard_call *)m;
    c->fn(sh, c->arg);
    free(c);
}

void eng__call(eng *e, uint32_t s, void (*fn)(eng_shard *sh, void *arg), void *arg)
{
    shard_call *c = jd_xcalloc(1, sizeof *c);
    c->m.kind = SM_CALL;
    c->fn = fn;
    c->arg = arg;
    eng__shard_push(e, s, &c->m);
}

static void (*const handlers[SM_KIND_COUNT])(eng_shard *, shard_msg *) = {
    [SM_BATCH] = on_batch, [SM_READ] = on_read, [SM_SNAPSHOT] = on_snapshot, [SM_BARRIER] = on_barrier,
    [SM_CALL] = on_call,
};

static void *shard_main(void *arg)
{
    eng_shard *sh = arg;
    for (;;) {
        jd_qnode *list = jd_queue_pop_all(&sh->q, -1);
        if (!list) break;   /* closed and drained */
        for (jd_qnode *n = list, *next; n; n = next) {
            next = n->next;
            shard_msg *m = (shard_msg *)n;
            handlers[m->kind](sh, m);
        }
    }
    return NULL;
}

int eng__shards_start(eng *e, jd_err *err)
{
    e->shards = jd_xcalloc(e->nshards, sizeof *e->shards);
    for (uint32_t s = 0; s < e->nshards; s++) {
        eng_shard *sh = &e->shards[s];
        sh->e = e;
        sh->id = s;
        jd_queue_init(&sh->q);
        jd_queue_init(&sh->moves);
    }
    for (uint32_t s = 0; s < e->nshards; s++) {
        if (pthread_create(&e->shards[s].th, NULL, shard_main, &e->shards[s]) != 0) {
            for (uint32_t k = 0; k < s; k++) {
                jd_queue_close(&e->shards[k].q);
                pthread_join(e->shards[k].th, NULL);
            }
            for (uint32_t k = 0; k < e->nshards; k++) {
                jd_queue_release(&e->shards[k].q);
                jd_queue_release(&e->shards[k].moves);
            }
            free(e->shards);
            e->shards = NULL;
            return jd_err_errno(err, "", "cannot start shard thread %u", s);
        }
    }
    return JD_OK;
}

void eng__shards_stop(eng *e)
{
    if (!e->shards) return;
    for (uint32_t s = 0; s < e->nshards; s++) jd_queue_close(&e->shards[s].q);
    for (uint32_t s = 0; s < e->nshards; s++) pthread_join(e->shards[s].th, NULL);
    for (uint32_t s = 0; s < e->nshards; s++) {   /* moves cross shards: release after all stopped */
        eng__moves_release(&e->shards[s]);
        jd_queue_release(&e->shards[s].q);
        jd_queue_release(&e->shards[s].moves);
    }
    free(e->shards);
    e->shards = NULL;
}

void eng__shards_barrier(eng *e)
{
    countdown cd;
    eng__countdown_init(&cd, e->nshards);
    for (uint32_t s = 0; s < e->nshards; s++) {
        shard_barrier *b = jd_xcalloc(1, sizeof *b);
        b->m.kind = SM_BARRIER;
        b->cd = &cd;
        eng__shard_push(e, s, &b->m);
    }
    eng__countdown_wait(&cd, NULL);
    eng__countdown_release(&cd);
}

size_t eng_shard_queue_depth(const eng *e, uint32_t s)
{
    if (s >= e->nshards || !e->shards) return 0;
    return jd_queue_len(&e->shards[s].q);
}

/* ---- countdown ---------------------------------------------------------- */

void eng__countdown_init(countdown *c, uint32_t n)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->pending = n;
    c->rc = JD_OK;
    jd_err_clear(&c->err);
}

void eng__countdown_release(countdown *c)
{
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

void eng__countdown_done(countdown *c, int rc, const jd_err *err)
{
    pthread_mutex_lock(&c->mu);
    if (rc != JD_OK && c->rc == JD_OK) {
        c->rc = rc;
        if (err) c->err = *err;
    }
    if (--c->pending == 0) pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int eng__countdown_wait(countdown *c, jd_err *err)
{
    pthread_mutex_lock(&c->mu);
    while (c->pending) pthread_cond_wait(&c->cv, &c->mu);
    int rc = c->rc;
    if (rc != JD_OK && err) *err = c->err;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

bool eng__countdown_finished(countdown *c)
{
    pthread_mutex_lock(&c->mu);
    bool f = c->pending == 0;
    pthread_mutex_unlock(&c->mu);
    return f;
}
