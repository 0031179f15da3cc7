/*
** src/engine/committer.c -- opening the engine, and the committer thread: the one
** writer of the log.
**
** A request's records travel as one eng_txn:
**
**   QUEUED    -> STAGED     [stage]         duplicates dropped, records appended
**   STAGED    -> DURABLE    [commit_group]  one log_sync for every staged txn
**   STAGED    -> REFUSED    [commit_group]  the log refused: group discarded, dedupe undone
**   DURABLE   -> (freed)    [commit_group]  records handed to shards, then done(JD_OK)
**
** Invariants:
**  (1) A txn's done() runs after log_sync() covered all of its records, or with
**      an error when none of them is kept (log_sync truncates a failed group).
**  (2) Records reach each shard in lsn order (one committer, FIFO queues), and a
**      txn's records are dispatched before its done(), so a read sent after the
**      acknowledgement is answered after the write is applied (read-your-writes).
**  (3) Every dedupe insert of a refused group is undone, so a retry is accepted.
**  (4) The records of a txn are contiguous in the log and the last one carries
**      LOG_F_TXN_END: recovery keeps a batch whole or drops it whole.
*/
#include "engine_int.h"
#include "journeyd/limits.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const double fsync_bounds[FSYNC_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1e300,
};

/* ---- transactions ------------------------------------------------------- */

eng_txn *eng_txn_create(void)
{
    eng_txn *t = jd_xcalloc(1, sizeof *t);
    jd_buf_init(&t->recs, SIZE_MAX);
    return t;
}

void eng_txn_destroy(eng_txn *t)
{
    if (!t) return;
    jd_buf_release(&t->recs);
    free(t);
}

size_t eng_txn_count(const eng_txn *t) { return t->n; }


/* The declared identifiers (identity.identifiers) an identify carries in its
 * traits, as u8 kind | u8 len | id entries. Read here, on the request's
 * thread, so the committer never parses JSON for them. An email is compared
 * in lower case; values that are not strings or numbers, or longer than
 * IDN_MAX_ID_BYTES, are not identifiers. */
static uint8_t declared_ids(const eng *e, const ingest_msg *m, jd_buf *out)
{
    const idn_opts *io = &e->o.identity;
    if (m->type != INGEST_IDENTIFY || io->ndeclared == 0 || !m->json.n) return 0;
    json_object *root = json_tokener_parse(m->json.p), *traits, *v;
    uint8_t n = 0;
    if (!root || !json_object_object_get_ex(root, "traits", &traits)) goto out;
    for (uint32_t k = 0; k < io->ndeclared && n < IDN_MAX_EVENT_IDS - 3; k++) {
        if (!json_object_object_get_ex(traits, io->declared[k], &v)) continue;
        if (!json_object_is_type(v, json_type_string) && !json_object_is_type(v, json_type_int)) continue;
        const char *s = json_object_get_string(v);
        while (*s == ' ' || *s == '\t') s++;
        size_t len = strlen(s);
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
        if (len == 0 || len > IDN_MAX_ID_BYTES) continue;
        uint8_t h[2] = { (uint8_t)(IDN_DECLARED + k), (uint8_t)len };
        jd_buf_add(out, h, 2);
        size_t at = out->len;
        jd_buf_add(out, s, len);
        if (strcmp(io->declared[k], "email") == 0)
            for (size_t i = 0; i < len; i++)
                if (out->data[at + i] >= 'A' && out->data[at + i] <= 'Z') out->data[at + i] += 'a' - 'A';
        n++;
    }
out:
    json_object_put(root);
    return n;
}

void eng_txn_add_event(eng_txn *t, const eng *e, const ingest_msg *m)
{
    static const char zeros[8];
    /* Encoded in place after its header: no temporary buffer per event. The
     * partition is the committer's to choose (route.c). */
    size_t at = t->recs.len;
    rec_hdr h = { 0, ingest_dedupe_key(m->message_id), m->received_us, 0, 0, ENG_REC_EVENT_RAW, 0, 0 };
    jd_buf_add(&t->recs, &h, sizeof h);
    size_t pre = t->recs.len;
    uint8_t zero = 0;
    jd_buf_add(&t->recs, &zero, 1);
    t->recs.data[pre] = (char)declared_ids(e, m, &t->recs);
    size_t plen = t->recs.len - pre;
    jd_buf_add(&t->recs, zeros, REC_ALIGN(plen) - plen);
    ingest_event_encode(m, &t->recs);
    size_t len = t->recs.len - at - sizeof h;
    JD_ASSERT(len <= JD_MAX_RECORD_BYTES);   /* ingest limits keep messages far below it */
    jd_buf_add(&t->recs, zeros, REC_ALIGN(len) - len);
    ((rec_hdr *)(t->recs.data + at))->len = (uint32_t)len;
    t->n++;
    t->route = true;
}

void eng__txn_add(eng_txn *t, uint16_t type, uint16_t partition, const void *body, uint32_t len)
{
    static const char zeros[8];
    rec_hdr h = { 0, 0, 0, len, partition, type, 0, 0 };
    jd_buf_add(&t->recs, &h, sizeof h);
    jd_buf_add(&t->recs, body, len);
    jd_buf_add(&t->recs, zeros, REC_ALIGN(len) - len);
    t->n++;
    if (type == ENG_REC_DELETE || type == ENG_REC_ENTER) t->route = true;
}

bool eng__committer_call(eng *e, void (*fn)(eng *e, void *arg), void *arg)
{
    eng_txn *t = eng_txn_create();
    t->call = fn;
    t->call_arg = arg;
    if (jd_queue_push(&e->cq, &t->node)) return true;
    eng_txn_destroy(t);
    return false;
}

void eng_submit(eng *e, eng_txn *t, eng_done_fn done, void *ctx)
{
    t->done = done;
    t->ctx = ctx;
    jd_err err;
    if (atomic_load(&e->closing)) {
        jd_err_set(&err, JD_EBUSY, "", "journeyd is shutting down");
        goto refuse;
    }
    if (atomic_load_explicit(&e->st_pending, memory_order_relaxed) >= e->o.max_pending) {
        jd_err_set(&err, JD_EBUSY, "", "more than %u requests are waiting for the log (engine.max_pending)",
                   e->o.max_pending);
        goto refuse;
    }
    atomic_fetch_add_explicit(&e->st_pending, 1, memory_order_relaxed);
    if (jd_queue_push(&e->cq, &t->node)) return;
    atomic_fetch_sub_explicit(&e->st_pending, 1, memory_order_relaxed);
    jd_err_set(&err, JD_EBUSY, "", "journeyd is shutting down");
refuse:
    done(ctx, JD_EBUSY, &err, 0);
    eng_txn_destroy(t);
}

/* ---- the committer ------------------------------------------------------ */

typedef struct group {
    eng_txn **txns;
    size_t    n, cap;
    size_t    dedupe_inserts;
    uint64_t  dups;               /* records dropped as duplicates */
    int       rc;                 /* first append error */
    jd_err    err;
} group;

static void stage(eng *e, group *g, eng_txn *t)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->txns = jd_xrealloc(g->txns, g->cap * sizeof *g->txns);
    }
    g->txns[g->n++] = t;
    if (g->rc != JD_OK) return;
    rec_hdr *h = (rec_hdr *)t->recs.data, *last = NULL;
    for (uint32_t i = 0; i < t->n; i++, h = REC_NEXT(h)) {
        if (h->dedupe_key && ingest_dedupe_seen(e->dedupe, h->dedupe_key, h->received_us)) {
            h->dup = 1;
            g->dups++;
            continue;
        }
        if (h->dedupe_key) g->dedupe_inserts++;
    }
    /* Duplicates are known: route the rest (identity, merges). */
    eng__route_txn(e, t);
    h = (rec_hdr *)t->recs.data;
    for (uint32_t i = 0; i < t->n; i++, h = REC_NEXT(h))
        if (!h->dup) last = h;
    h = (rec_hdr *)t->recs.data;
    for (uint32_t i = 0; i < t->n; i++, h = REC_NEXT(h)) {
        if (h->dup) continue;
        int rc = log_append(e->log, h->type, h->partition, h == last ? LOG_F_TXN_END : 0, h + 1, h->len, &h->lsn);
        if (rc != JD_OK) {
            g->rc = rc;
            jd_err_set(&g->err, rc, "", "%s", rc == JD_ELIMIT ? "record too large for the log" : "the log refused the write");
            return;
        }
    }
}

static void observe_fsync(eng *e, uint64_t ns)
{
    double s = (double)ns / 1e9;
    for (size_t i = 0; i < FSYNC_BUCKETS; i++)
        if (s <= fsync_bounds[i]) { atomic_fetch_add_explicit(&e->fsync_buckets[i], 1, memory_order_relaxed); break; }
    atomic_fetch_add_explicit(&e->fsync_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->fsync_sum_ns, ns, memory_order_relaxed);
}

/* Hands durable records to their shards: one batch message per shard. */
/* Adds a record to its shard's batch, or to every shard's (ENG_PART_ALL). */
static void batch_record(eng *e, shard_batch **b, uint64_t lsn, uint16_t type, uint16_t partition,
                         const void *body, uint32_t len, uint64_t durable_ns)
{
    uint32_t first = partition == ENG_PART_ALL ? 0 : eng__shard_of(e, partition);
    uint32_t last = partition == ENG_PART_ALL ? e->nshards - 1 : first;
    for (uint32_t s = first; s <= last; s++) {
        if (!b[s]) {
            b[s] = eng__batch_create();
            b[s]->durable_ns = durable_ns;
        }
        eng__batch_add(b[s], lsn, type, partition, body, len);
    }
}

/* Returns the events dispatched; *records gets every record. */
static uint64_t dispatch(eng *e, eng_txn **txns, size_t n, uint64_t *records)
{
    shard_batch **b = jd_xcalloc(e->nshards, sizeof *b);
    uint64_t count = 0, now = jd_monotonic_ns();
    *records = 0;
    for (size_t i = 0; i < n; i++) {
        rec_hdr *h = (rec_hdr *)txns[i]->recs.data;
        for (uint32_t j = 0; j < txns[i]->n; j++, h = REC_NEXT(h)) {
            if (h->dup) continue;
            batch_record(e, b, h->lsn, h->type, h->partition, h + 1, h->len, now);
            if (h->type == ENG_REC_ROUTED) count++;
            (*records)++;
        }
    }
    for (uint32_t s = 0; s < e->nshards; s++)
        if (b[s]) eng__shard_push(e, s, &b[s]->m);
    free(b);
    return count;
}

static void commit_group(eng *e, group *g)
{
    if (g->n == 0) return;
    int rc = g->rc;
    if (rc == JD_OK) {
        uint64_t t0 = jd_monotonic_ns();
        rc = log_sync(e->log, &g->err);
        observe_fsync(e, jd_monotonic_ns() - t0);
        atomic_fetch_add_explicit(&e->st_fsyncs, 1, memory_order_relaxed);
    } else {
        log_discard_group(e->log);
    }
    if (rc == JD_OK) {
        uint64_t records, n = dispatch(e, g->txns, g->n, &records);
        atomic_fetch_add_explicit(&e->st_accepted, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->st_duplicate, g->dups, memory_order_relaxed);
        e->since_snapshot += records;   /* clock records too: the log must be trimmed even without events */
    } else {
        ingest_dedupe_undo(e->dedupe, g->dedupe_inserts);          /* invariant (3) */
        eng__route_rebuild(e);                                      /* route.c invariant (2) */
        atomic_fetch_add_explicit(&e->st_refused_io, g->n, memory_order_relaxed);
        jd_error("log: refused %zu request(s): %s", g->n, g->err.msg);
    }
    atomic_store_explicit(&e->st_durable_lsn, log_durable_lsn(e->log), memory_order_relaxed);
    atomic_store_explicit(&e->st_log_bytes, log_bytes(e->log), memory_order_relaxed);
    atomic_store_explicit(&e->st_log_failed, log_failed(e->log), memory_order_relaxed);
    atomic_store_explicit(&e->st_dedupe_entries, ingest_dedupe_count(e->dedupe), memory_order_relaxed);
    atomic_store_explicit(&e->st_dedupe_evicted, ingest_dedupe_evicted_early(e->dedupe), memory_order_relaxed);
    for (size_t i = 0; i < g->n; i++) {
        eng_txn *t = g->txns[i];
        uint64_t lsn = 0;
        rec_hdr *h = (rec_hdr *)t->recs.data;
        for (uint32_t j = 0; j < t->n; j++, h = REC_NEXT(h))
            if (!h->dup) lsn = h->lsn;
        if (t->done) t->done(t->ctx, rc == JD_OK ? JD_OK : JD_EIO, rc == JD_OK ? NULL : &g->err, lsn);
        eng_txn_destroy(t);
    }
    atomic_fetch_sub_explicit(&e->st_pending, g->n, memory_order_relaxed);
    g->n = 0;
    g->dedupe_inserts = 0;
    g->dups = 0;
    g->rc = JD_OK;
    jd_err_clear(&g->err);
}

/* ---- clock records --------------------------------------------------------
 * Time reaches the shards as TICK records: the committer is the edge that
 * reads the clock (e->clock) and writes what it read into the log, so replay
 * fires the same waits at the same times. A tick is written only when some
 * shard has a wait due (next_due) and at most every engine.tick; with traffic
 * it rides in the group being committed (no extra fsync). */

static uint64_t earliest_due(eng *e)
{
    uint64_t due = UINT64_MAX;
    for (uint32_t s = 0; s < e->nshards; s++) {
        uint64_t d = atomic_load_explicit(&e->next_due[s], memory_order_relaxed);
        if (d < due) due = d;
    }
    return due;
}

static void maybe_tick(eng *e, group *g)
{
    uint64_t now = jd_clock_now(e->clock);
    if (now < earliest_due(e) || now < e->last_tick_us + e->o.tick_us) return;
    if (log_failed(e->log)) return;
    e->last_tick_us = now;
    uint8_t body[8];
    for (int i = 0; i < 8; i++) body[i] = (uint8_t)(now >> (8 * i));
    eng_txn *t = eng_txn_create();
    eng__txn_add(t, ENG_REC_TICK, ENG_PART_ALL, body, sizeof body);
    atomic_fetch_add_explicit(&e->st_pending, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->st_ticks, 1, memory_order_relaxed);
    stage(e, g, t);   /* done is NULL: nobody waits for a tick */
}

/* How long the committer may sleep: until the next due wait (at least
 * engine.tick), at most 200 ms, 50 ms while a snapshot is being written. */
static int wait_ms(eng *e)
{
    int ms = e->snap ? 50 : 200;
    uint64_t due = earliest_due(e), now = jd_clock_now(e->clock);
    if (due != UINT64_MAX) {
        uint64_t at = JD_MIN_OF(due, UINT64_MAX - e->o.tick_us);
        if (at < e->last_tick_us + e->o.tick_us) at = e->last_tick_us + e->o.tick_us;
        uint64_t d = at > now ? (at - now + 999) / 1000 : 0;
        if (d < (uint64_t)ms) ms = (int)d;
    }
    return ms;
}

static void *committer_main(void *arg)
{
    eng *e = arg;
    group g = { 0 };
    for (;;) {
        /* While a shard is max_backlog records behind, requests wait in the
         * queue (and past engine.max_pending get 503): memory stays bounded. */
        eng__backlog_wait(e);
        /* Waking at least every 200 ms lets a finished snapshot be sealed without traffic. */
        jd_qnode *list = jd_queue_pop_all(&e->cq, wait_ms(e));
        for (jd_qnode *n = list, *next; n; n = next) {
            next = n->next;
            eng_txn *t = (eng_txn *)n;
            if (t->call) {   /* a read that needs the directory: in order with the writes */
                t->call(e, t->call_arg);
                eng_txn_destroy(t);
                continue;
            }
            stage(e, &g, t);
        }
        if (!jd_queue_closed(&e->cq)) maybe_tick(e, &g);
        commit_group(e, &g);
        eng__snapshot_poll(e, false);
        if (!e->snap && e->since_snapshot >= e->o.snapshot_every) eng__snapshot_begin(e);
        if (!list && jd_queue_closed(&e->cq)) break;
    }
    free(g.txns);
    return NULL;
}

/* ---- open, replay, close ------------------------------------------------ */

typedef struct replay_ctx {
    eng          *e;
    shard_batch **batches;
    uint64_t      applied;
    jd_err       *err;
} replay_ctx;

static int replay_rec(void *arg, const log_rec *r)
{
    replay_ctx *rc = arg;
    eng *e = rc->e;
    if (r->partition >= e->nparts && r->partition != ENG_PART_ALL)
        return jd_err_set(rc->err, JD_ECORRUPT, e->log_dir, "record %llu names partition %u of %u",
                          (unsigned long long)r->lsn, r->partition, e->nparts);
    if (r->lsn > e->snap_loaded_lsn) eng__route_replay_rec(e, r->type, r->body, r->len);
    if (r->lsn <= (r->partition == ENG_PART_ALL ? e->snap_loaded_lsn : e->parts[r->partition].snap_lsn)) return 0;
    ingest_event ev;
    eng_routed rt;
    jd_err err;
    if (r->type == ENG_REC_EVENT && ingest_event_decode(r->body, r->len, &ev, &err) == JD_OK)
        ingest_dedupe_seen(e->dedupe, ingest_dedupe_key(ev.message_id), ev.received_us);
    if (r->type == ENG_REC_ROUTED && eng__routed_decode(r->body, r->len, &rt, &err) == JD_OK)
        ingest_dedupe_seen(e->dedupe, ingest_dedupe_key(rt.ev.message_id), rt.ev.received_us);
    batch_record(e, rc->batches, r->lsn, r->type, r->partition, r->body, r->len, 0);
    if (r->type == ENG_REC_MOVE_OUT) {
        /* Its MOVE_IN's shard will wait for what this one sends: hand it over
         * now, before a backlog wait could hold it back (a deadlock). */
        uint32_t s = eng__shard_of(e, r->partition);
        eng__shard_push(e, s, &rc->batches[s]->m);
        rc->batches[s] = NULL;
    }
    for (uint32_t s = 0; s < e->nshards; s++)
        if (rc->batches[s] && rc->batches[s]->n >= 4096) {
            eng__shard_push(e, s, &rc->batches[s]->m);
            rc->batches[s] = NULL;
            eng__backlog_wait(e);   /* replay of a long log must not hold it all in memory */
        }
    rc->applied++;
    return 0;
}

static int check_meta(eng *e, jd_err *err)
{
    char *path = jd_strfmt("%s/engine.meta", e->data_dir), *text = NULL;
    size_t n;
    int rc = jd_read_file(path, 4096, &text, &n, err);
    if (rc == JD_ENOTFOUND) {
        char line[64];
        int len = snprintf(line, sizeof line, "partitions %u\n", e->nparts);
        rc = jd_write_file_atomic(path, line, (size_t)len, err);
        goto out;
    }
    if (rc != JD_OK) goto out;
    unsigned parts = 0;
    if (sscanf(text, "partitions %u", &parts) != 1) {
        rc = jd_err_set(err, JD_ECORRUPT, path, "unreadable engine metadata");
        goto out;
    }
    if (parts != e->nparts)
        rc = jd_err_set(err, JD_EINVAL, "engine.partitions",
                        "engine.partitions is %u but %s was created with %u; partitions are fixed per data folder",
                        e->nparts, e->data_dir, parts);
out:
    free(text);
    free(path);
    return rc;
}

int eng_open(eng **out, const eng_opts *o, eng_recovery *rec, jd_err *err)
{
    int rc = JD_EINVAL;
    uint64_t t0 = jd_monotonic_ns();
    eng_recovery scratch;
    if (!rec) rec = &scratch;
    memset(rec, 0, sizeof *rec);
    eng *e = jd_xcalloc(1, sizeof *e);
    e->o = *o;
    e->nparts = o->partitions;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    e->nshards = o->shards ? o->shards : (uint32_t)(cores > 0 ? cores : 1);
    if (e->nshards > e->nparts) e->nshards = e->nparts;
    e->data_dir = jd_xstrdup(o->data_dir);
    e->log_dir = jd_strfmt("%s/log", o->data_dir);
    e->snap_dir = jd_strfmt("%s/snapshot", o->data_dir);
    jd_queue_init(&e->cq);
    e->clock = o->clock ? o->clock : &jd_clock_real;
    if (!e->o.tick_us) e->o.tick_us = 10 * 1000;
    if (!e->o.max_backlog) e->o.max_backlog = 200000;
    pthread_mutex_init(&e->bl_mu, NULL);
    pthread_cond_init(&e->bl_cv, NULL);
    e->parts = jd_xcalloc(e->nparts, sizeof *e->parts);
    for (uint32_t p = 0; p < e->nparts; p++) {
        e->parts[p].e = e;
        e->parts[p].index = p;
        e->parts[p].profiles = prof_store_create(&o->prof);
    }
    eng__journeys_init(e);
    e->dedupe = ingest_dedupe_create(o->dedupe_window_us, o->dedupe_max_entries);
    e->dir = idn_create(&o->identity);

    if ((rc = jd_mkdir_p(e->log_dir, err)) || (rc = jd_mkdir_p(e->snap_dir, err))) goto fail;
    if ((rc = check_meta(e, err)) != JD_OK) goto fail;
    if ((rc = log_open(&e->log, e->log_dir, &o->log, &rec->log, err)) != JD_OK) goto fail;
    if ((rc = eng__snapshot_load(e, &rec->snapshot_lsn, err)) != JD_OK) goto fail;
    e->snap_loaded_lsn = rec->snapshot_lsn;
    if (log_next_lsn(e->log) <= rec->snapshot_lsn) {
        rc = jd_err_set(err, JD_ECORRUPT, e->log_dir, "the log ends at lsn %llu but the snapshot covers up to %llu",
                        (unsigned long long)log_next_lsn(e->log) - 1, (unsigned long long)rec->snapshot_lsn);
        goto fail;
    }
    if (rec->log.first_lsn > rec->snapshot_lsn + 1) {
        rc = jd_err_set(err, JD_ECORRUPT, e->log_dir, "the log starts at lsn %llu, after the snapshot's %llu: records are missing",
                        (unsigned long long)rec->log.first_lsn, (unsigned long long)rec->snapshot_lsn);
        goto fail;
    }
    if ((rc = eng__shards_start(e, err)) != JD_OK) goto fail;

    replay_ctx rctx = { e, jd_xcalloc(e->nshards, sizeof(shard_batch *)), 0, err };
    rc = log_replay(e->log, rec->snapshot_lsn + 1, replay_rec, &rctx, err);
    for (uint32_t s = 0; s < e->nshards; s++)
        if (rctx.batches[s]) eng__shard_push(e, s, &rctx.batches[s]->m);
    free(rctx.batches);
    eng__shards_barrier(e);   /* state now equals the log */
    if (rc != JD_OK) goto fail;
    rec->replayed = rctx.applied;
    e->since_snapshot = rctx.applied;
    for (uint32_t p = 0; p < e->nparts; p++) rec->profiles += prof_store_count(e->parts[p].profiles);
    atomic_store(&e->st_durable_lsn, log_durable_lsn(e->log));
    atomic_store(&e->st_log_bytes, log_bytes(e->log));
    atomic_store(&e->st_snapshot_lsn, rec->snapshot_lsn);

    if (pthread_create(&e->committer, NULL, committer_main, e) != 0) {
        rc = jd_err_errno(err, "", "cannot start the committer thread");
        goto fail;
    }
    e->committer_running = true;
    rec->seconds = (double)(jd_monotonic_ns() - t0) / 1e9;
    *out = e;
    return JD_OK;
fail:
    eng_close(e);
    return rc;
}

void eng_close(eng *e)
{
    if (!e) return;
    atomic_store(&e->closing, true);
    jd_queue_close(&e->cq);
    if (e->committer_running) {
        pthread_join(e->committer, NULL);   /* drained every queued txn */
        eng__snapshot_poll(e, true);
        if (e->since_snapshot > 0 && !log_failed(e->log)) {
            eng__snapshot_begin(e);
            eng__snapshot_poll(e, true);
        }
    }
    eng__shards_stop(e);
    if (e->log) log_close(e->log);
    ingest_dedupe_destroy(e->dedupe);
    idn_destroy(e->dir);
    eng__journeys_release(e);
    if (e->parts)
        for (uint32_t p = 0; p < e->nparts; p++) prof_store_destroy(e->parts[p].profiles);
    free(e->parts);
    jd_queue_release(&e->cq);
    pthread_mutex_destroy(&e->bl_mu);
    pthread_cond_destroy(&e->bl_cv);
    free(e->data_dir);
    free(e->log_dir);
    free(e->snap_dir);
    free(e);
}

uint32_t eng_shards(const eng *e) { return e->nshards; }
const jd_clock *eng_clock(const eng *e) { return e->clock; }

static void nothing(eng *e, void *arg) { (void)e; (void)arg; }
void eng_wake(eng *e) { eng__committer_call(e, nothing, NULL); }

void eng_get_stats(const eng *e, eng_stats *s)
{
    eng *m = (eng *)e;   /* atomics need non-const */
    s->events_accepted = atomic_load_explicit(&m->st_accepted, memory_order_relaxed);
    s->events_duplicate = atomic_load_explicit(&m->st_duplicate, memory_order_relaxed);
    s->txns_refused_io = atomic_load_explicit(&m->st_refused_io, memory_order_relaxed);
    s->fsyncs = atomic_load_explicit(&m->st_fsyncs, memory_order_relaxed);
    s->log_bytes = atomic_load_explicit(&m->st_log_bytes, memory_order_relaxed);
    s->durable_lsn = atomic_load_explicit(&m->st_durable_lsn, memory_order_relaxed);
    s->dedupe_entries = atomic_load_explicit(&m->st_dedupe_entries, memory_order_relaxed);
    s->dedupe_evicted_early = atomic_load_explicit(&m->st_dedupe_evicted, memory_order_relaxed);
    s->snapshots = atomic_load_explicit(&m->st_snapshots, memory_order_relaxed);
    s->snapshot_lsn = atomic_load_explicit(&m->st_snapshot_lsn, memory_order_relaxed);
    s->log_failed = atomic_load_explicit(&m->st_log_failed, memory_order_relaxed);
    s->shards = e->nshards;
    s->pending_txns = atomic_load_explicit(&m->st_pending, memory_order_relaxed);
    s->ticks = atomic_load_explicit(&m->st_ticks, memory_order_relaxed);
    s->suppressed = atomic_load_explicit(&m->st_suppressed, memory_order_relaxed);
    s->deleted = atomic_load_explicit(&m->st_deleted, memory_order_relaxed);
    s->backlog_waits = atomic_load_explicit(&m->st_backlog_waits, memory_order_relaxed);
    s->intents = atomic_load_explicit(&m->st_intents, memory_order_relaxed);
    s->merges = atomic_load_explicit(&m->st_merges, memory_order_relaxed);
    s->merges_refused = atomic_load_explicit(&m->st_merges_refused, memory_order_relaxed);
    s->identity_links = atomic_load_explicit(&m->st_idn_links, memory_order_relaxed);
    s->dlv_queued = atomic_load_explicit(&m->st_dlv_queued, memory_order_relaxed);
    s->dlv_skipped = atomic_load_explicit(&m->st_dlv_skipped, memory_order_relaxed);
    s->dlv_sent = atomic_load_explicit(&m->st_dlv_outcomes[DLV_SENT], memory_order_relaxed);
    s->dlv_failed = atomic_load_explicit(&m->st_dlv_outcomes[DLV_FAILED], memory_order_relaxed);
    s->dlv_dead = atomic_load_explicit(&m->st_dlv_outcomes[DLV_DEAD], memory_order_relaxed);
    s->tasks_dropped = atomic_load_explicit(&m->st_tasks_dropped, memory_order_relaxed);
    s->instances = s->timers = 0;
    for (uint32_t k = 0; m->sh_instances && k < e->nshards; k++) {
        s->instances += atomic_load_explicit(&m->sh_instances[k], memory_order_relaxed);
        s->timers += atomic_load_explicit(&m->sh_timers[k], memory_order_relaxed);
    }
}

size_t eng_fsync_histogram(const eng *e, const double **bounds, uint64_t *counts, size_t max,
                           uint64_t *count, double *sum_s)
{
    eng *m = (eng *)e;
    *bounds = fsync_bounds;
    uint64_t cum = 0;
    size_t n = JD_MIN_OF(max, (size_t)FSYNC_BUCKETS);
    for (size_t i = 0; i < n; i++) {
        cum += atomic_load_explicit(&m->fsync_buckets[i], memory_order_relaxed);
        counts[i] = cum;
    }
    *count = atomic_load_explicit(&m->fsync_count, memory_order_relaxed);
    *sum_s = (double)atomic_load_explicit(&m->fsync_sum_ns, memory_order_relaxed) / 1e9;
    return n;
}
