/* src/engine/engine_int.h -- private to src/engine/. */
#ifndef JOURNEYD_ENGINE_INT_H
#define JOURNEYD_ENGINE_INT_H

#include "journeyd/engine.h"
#include "journeyd/runtime.h"

#include <stdatomic.h>

typedef struct eng_shard eng_shard;
typedef struct eng_part eng_part;

/* One record inside a transaction or a shard batch buffer; body follows,
 * padded to 8 bytes. */
typedef struct rec_hdr {
    uint64_t lsn;          /* set by the committer */
    uint64_t dedupe_key;   /* 0: not deduplicated */
    int64_t  received_us;
    uint32_t len;
    uint16_t partition;
    uint16_t type;
    uint32_t dup;          /* committer: dropped as a duplicate */
    uint32_t _pad;
} rec_hdr;

#define REC_ALIGN(n) (((n) + 7u) & ~(size_t)7u)
#define REC_NEXT(h) ((rec_hdr *)((char *)((h) + 1) + REC_ALIGN((h)->len)))

/* An event as a request carries it, before routing: never written to the log
 * (route.c turns it into ENG_REC_ROUTED). Body: u8 ndecl | ndecl x (u8 kind |
 * u8 len | id) | zeros to 8 | the event record. */
#define ENG_REC_EVENT_RAW 0x8001u

struct eng_txn {
    jd_qnode    node;      /* in the committer queue */
    jd_buf      recs;      /* rec_hdr + body, repeated */
    uint32_t    n;
    bool        route;     /* has records route.c must see (events, enters, deletes) */
    eng_done_fn done;
    void       *ctx;
    void      (*call)(eng *e, void *arg);   /* a committer call (no records): eng__committer_call */
    void       *call_arg;
};

/* A ROUTED record's body, decoded (views into it). */
typedef struct eng_routed {
    jd_str   key;
    bool     key_is_user, anon_refused;
    uint32_t nattach;
    struct { jd_str kind, v; } attach[IDN_MAX_EVENT_IDS];   /* declared identifiers linked to key */
    ingest_event ev;
} eng_routed;
int eng__routed_decode(const void *body, size_t n, eng_routed *out, jd_err *err);

/* A MOVE_OUT or MOVE_IN body (both the same), decoded. */
typedef struct eng_move {
    jd_str  from, to;
    bool    from_is_user, to_is_user;
    int64_t at_us;
} eng_move;
int eng__move_decode(const void *body, size_t n, eng_move *m);

/* route.c (committer thread) */
void eng__route_txn(eng *e, eng_txn *t);                 /* resolve and rewrite, at stage */
void eng__route_replay_rec(eng *e, uint16_t type, const void *body, uint32_t len);
void eng__route_rebuild(eng *e);                          /* after a refused group */
/* Links every identity a store's profiles hold (start, rebuild). */
void eng__route_link_store(eng *e, const prof_store *s);
/* Resolves id through the directory on the committer thread, in order with
 * the writes, then calls fn there with the key (owned by fn). */
typedef void (*eng_resolved_fn)(eng *e, char *key, void *arg);
void eng__resolve(eng *e, const char *id, eng_resolved_fn fn, void *arg);
/* committer.c: runs fn(e, arg) on the committer thread after what is queued;
 * false (fn not called) when the engine is closing. */
bool eng__committer_call(eng *e, void (*fn)(eng *e, void *arg), void *arg);

/* moves.c (shard threads): the state of a merged profile on its way. */
typedef struct move_msg {
    jd_qnode node;
    uint64_t lsn;          /* of the MOVE_OUT: the MOVE_IN is lsn + 1 */
    jd_buf   prof, host;   /* prof_extract and jrn_host_extract blobs (empty: nothing there) */
    struct move_msg *next_stash;
} move_msg;
int eng__apply_routed(eng_shard *sh, const rec_hdr *h, jd_err *err);
int eng__apply_move_out(eng_shard *sh, const rec_hdr *h, jd_err *err);
int eng__apply_move_in(eng_shard *sh, const rec_hdr *h, jd_err *err);
int eng__apply_refused(eng_shard *sh, const rec_hdr *h, jd_err *err);

/* outbox.c: send intents, results, the outbox in snapshots */
void eng__outbox_init(eng_part *p);
void eng__outbox_release(eng_part *p);
void eng__outbox_intent(eng_part *p, const jrn_intent *it);
void eng__outbox_flush(eng_part *p);
int  eng__apply_result(eng_shard *sh, const rec_hdr *h, jd_err *err);
int  eng__apply_retry(eng_shard *sh, const rec_hdr *h, jd_err *err);
void eng__outbox_on_result(const dlv_result *r, void *ctx);
void eng__outbox_on_unsent(dlv_msg *m, void *ctx);
void eng__outbox_encode(const eng_part *p, jd_buf *out);
int  eng__outbox_decode(eng_part *p, const char *s, size_t n, jd_err *err);
void eng__moves_release(eng_shard *sh);

/* tasks.c: task intents, TASK records, the tasks in snapshots */
void eng__tasks_init(eng_part *p);
void eng__tasks_release(eng_part *p);
void eng__tasks_intent(eng_part *p, const jrn_intent *it);
void eng__tasks_forget(eng_part *p, const char *key);
int  eng__apply_task(eng_shard *sh, const rec_hdr *h, jd_err *err);
void eng__tasks_encode(const eng_part *p, jd_buf *out);
int  eng__tasks_decode(eng_part *p, const char *s, size_t n, jd_err *err);

/* Messages to a shard: a table in shard.c maps kind -> handler. */
enum { SM_BATCH, SM_READ, SM_SNAPSHOT, SM_BARRIER, SM_CALL, SM_KIND_COUNT };

typedef struct shard_msg {
    jd_qnode node;
    int      kind;
} shard_msg;

typedef struct shard_batch {      /* SM_BATCH: records in lsn order */
    shard_msg m;
    jd_buf    recs;
    uint32_t  n;
    uint64_t  durable_ns;          /* jd_monotonic_ns when the log made them durable (0: replay) */
} shard_batch;

typedef struct eng_shard eng_shard;
typedef struct shard_call {        /* SM_CALL: run fn on the shard thread (reads, checks) */
    shard_msg m;
    void    (*fn)(eng_shard *sh, void *arg);
    void     *arg;
} shard_call;

/* A countdown that one thread waits on or polls (snapshot parts, barriers). */
typedef struct countdown {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    uint32_t        pending;
    int             rc;
    jd_err          err;
} countdown;
void eng__countdown_init(countdown *c, uint32_t n);
void eng__countdown_release(countdown *c);
void eng__countdown_done(countdown *c, int rc, const jd_err *err);
int  eng__countdown_wait(countdown *c, jd_err *err);
bool eng__countdown_finished(countdown *c);

typedef struct snap_job {          /* one snapshot in flight */
    uint64_t  lsn;
    char     *tmp_dir;             /* data/snapshot/tmp-<lsn> */
    jd_buf    dedupe;              /* the committer's window at the cut; written by shard 0 */
    countdown cd;
} snap_job;

typedef struct shard_snap {        /* SM_SNAPSHOT */
    shard_msg  m;
    snap_job  *job;
} shard_snap;

typedef struct shard_barrier {     /* SM_BARRIER */
    shard_msg  m;
    countdown *cd;
} shard_barrier;

/* An intent kept for GET /v1/intents (journeys.c). Strings point into the
 * shard's registry (versions are never freed) except person (owned). */
typedef struct intent_rec {
    uint64_t id, instance, lsn;
    int64_t  at_us, delay_us;
    const jrn_journey *journey;
    const jrn_node *node;
    uint32_t version;
    char    *person;
} intent_rec;

/* The outcome of an API entry record, for the request that sent it. */
typedef struct enter_result { uint64_t lsn; int rc; jd_err err; } enter_result;
#define ENTER_RESULTS 8

#define ENG_DEAD_LETTERS 256      /* dead letters kept per partition (GET /v1/deliveries) */
typedef struct ob_entry ob_entry; /* outbox.c */

typedef struct eng_part {
    eng        *e;
    uint32_t    index;
    prof_store *profiles;          /* owned; touched only by the owning shard */
    jrn_host   *host;              /* owned; its journey instances */
    uint64_t    snap_lsn;          /* records <= this are in the loaded snapshot */
    intent_rec *intents;           /* ring of e->o.recent_intents */
    uint64_t    nintents;          /* produced so far (ring position) */
    enter_result enters[ENTER_RESULTS];
    uint64_t    durable_ns;        /* of the batch being applied */
    jd_map     *outbox;            /* 8-byte intent id -> ob_entry: rendered, no result yet (outbox.c) */
    ob_entry   *dead[ENG_DEAD_LETTERS];   /* ring of failed and dead messages */
    uint64_t    ndead;
    uint32_t    unsubmitted;       /* outbox entries the delivery thread has not taken */
    jd_map     *sends;             /* person key -> ob_hist: recent sends, for caps (outbox.c) */
    struct eng_tasks *tasks;       /* the human task queue's tasks (tasks.c) */
} eng_part;

struct eng_shard {
    eng       *e;
    uint32_t   id;
    pthread_t  th;
    jd_queue   q;
    jd_queue   moves;      /* move_msg from other shards (moves.c) */
    move_msg  *stash;      /* arrived, not yet asked for */
};

#define FSYNC_BUCKETS 14

struct eng {
    eng_opts     o;
    char        *data_dir, *log_dir, *snap_dir;
    log_store   *log;              /* committer thread only (and eng_open before it starts) */
    ingest_dedupe *dedupe;         /* committer thread only */
    idn_dir     *dir;              /* the identity directory: committer thread only (route.c) */
    _Atomic(dlv *) dlv;            /* the delivery transport, once attached (outbox.c) */
    eng_part    *parts;
    uint32_t     nparts, nshards;
    jrn_reg    **regs;             /* one registry per shard, touched only by it */
    eng_env      env;              /* the registries' environment: channels, templates (journeys.c) */
    uint64_t     snap_loaded_lsn;  /* the snapshot eng_open loaded (0 none) */
    const jd_clock *clock;         /* stamps clock records: the committer is the edge */
    uint64_t     last_tick_us;     /* committer */
    _Atomic uint64_t *next_due;    /* per shard: earliest armed wait (UINT64_MAX none) */
    _Atomic uint64_t *backlog;     /* per shard: records dispatched, not yet applied */
    pthread_mutex_t   bl_mu;       /* the committer waits on bl_cv while a backlog is full */
    pthread_cond_t    bl_cv;
    atomic_bool       bl_waiting;
    atomic_uint_fast64_t st_backlog_waits;
    atomic_uint_fast64_t *sh_instances, *sh_timers;   /* per shard, for stats */
    eng_shard   *shards;
    jd_queue     cq;               /* committer input */
    pthread_t    committer;
    bool         committer_running;
    atomic_bool  closing;
    uint64_t     since_snapshot;   /* committer: records since the last snapshot */
    snap_job    *snap;             /* committer: the snapshot in flight, or NULL */
    /* statistics, written by one thread, read by any (relaxed atomics) */
    atomic_uint_fast64_t st_accepted, st_duplicate, st_refused_io, st_fsyncs, st_pending;
    atomic_uint_fast64_t st_durable_lsn, st_log_bytes, st_dedupe_entries, st_dedupe_evicted;
    atomic_uint_fast64_t st_merges, st_merges_refused, st_idn_links;
    atomic_uint_fast64_t st_dlv_queued, st_dlv_skipped, st_dlv_outcomes[3], st_dlv_retried, st_dlv_capped, st_dlv_held;
    atomic_uint_fast64_t st_tasks_dropped;
    atomic_uint_fast64_t st_snapshots, st_snapshot_lsn, st_ticks, st_intents, st_suppressed, st_deleted;
    atomic_bool          st_log_failed;
    atomic_uint_fast64_t fsync_buckets[FSYNC_BUCKETS], fsync_count, fsync_sum_ns;
};

/* shard.c: blocks the calling thread (committer, or eng_open's replay) while
 * some shard has more than max_backlog records waiting. Shards never wait on
 * the committer, so the wait always ends. */
void eng__backlog_wait(eng *e);

/* committer.c: appends a record (body copied) to a transaction. */
void eng__txn_add(eng_txn *t, uint16_t type, uint16_t partition, const void *body, uint32_t len);

/* shard.c */
int  eng__shards_start(eng *e, jd_err *err);
void eng__shards_stop(eng *e);
void eng__shard_push(eng *e, uint32_t shard, shard_msg *m);
uint32_t eng__shard_of(const eng *e, uint32_t partition);
/* A new empty batch buffer, and appending one record to it. */
shard_batch *eng__batch_create(void);
void eng__batch_add(shard_batch *b, uint64_t lsn, uint16_t type, uint16_t partition, const void *body, uint32_t len);
/* Sends a barrier to every shard and waits until each has applied what came before it. */
void eng__shards_barrier(eng *e);
/* Runs fn(shard, arg) on shard s's thread after what is queued there. */
void eng__call(eng *e, uint32_t s, void (*fn)(eng_shard *sh, void *arg), void *arg);
/* journeys_read.c: a read answered by every shard. part(sh, arg, mine) runs
 * on each shard's thread and appends its share to mine (borrowed); the shares
 * are merged, in the order the shards finish, into one array, and the last
 * shard calls finish(arg, all) with it (borrowed: freed after finish returns;
 * finish owns arg). What a part writes into arg before it returns is visible
 * to finish: the merge's mutex orders it. */
struct json_object;
void eng__fanout(eng *e, void (*part)(eng_shard *sh, void *arg, struct json_object *mine),
                 void (*finish)(void *arg, struct json_object *all), void *arg);
uint32_t eng__partition_of(const eng *e, const char *key, size_t n);

/* journeys.c: the runtime's side of the shards */
void eng__journeys_init(eng *e);         /* registries and hosts (before a snapshot loads) */
void eng__journeys_release(eng *e);
int  eng__apply_journey(eng_shard *sh, const rec_hdr *h, jd_err *err);
int  eng__apply_enter(eng_shard *sh, const rec_hdr *h, jd_err *err);
int  eng__apply_tick(eng_shard *sh, const rec_hdr *h, jd_err *err);
int  eng__apply_delete(eng_shard *sh, const rec_hdr *h, jd_err *err);
/* After a batch: publish the shard's next due wait and its counts. */
void eng__journeys_publish(eng_shard *sh);
/* Small JSON helpers shared with journeys_read.c: a string or integer member
 * (NULL / 0 when absent), and an error reply {"error","at"?,"errors"?[...]}. */
struct json_object;
/* A JSON object from n bytes (record bodies are not NUL-terminated), NULL if
 * they are not one; a record's body the same way, with err naming its lsn. */
struct json_object *eng__json_n(const void *p, size_t n);
struct json_object *eng__body_json(const rec_hdr *h, jd_err *err);
/* What a message template or a task title sees of an intent: {"profile",
 * "event", "journey":{id,version,node}}, from the turn's own views (owned:
 * json_object_put; the caller adds "message" or "task"). */
struct json_object *eng__intent_vars(const jrn_intent *it);
const char *eng__jstr(struct json_object *o, const char *k);
int64_t eng__jint(struct json_object *o, const char *k);
void eng__reply_err(eng_json_fn done, void *ctx, int rc, const jd_err *err, const jrn_diags *d);

/* snapshot.c */
int  eng__snapshot_load(eng *e, uint64_t *lsn, jd_err *err);
/* Fills e->dir (empty) from the identities of snapshot lsn's profiles. */
int  eng__snapshot_load_directory(eng *e, uint64_t lsn, jd_err *err);
/* Starts a snapshot at the committer's current durable lsn (committer thread). */
void eng__snapshot_begin(eng *e);
/* Finishes the snapshot in flight if every shard has written its part;
 * with wait, blocks until they have. Committer thread. */
void eng__snapshot_poll(eng *e, bool wait);
/* Shard side: writes the partitions this shard owns. */
void eng__snapshot_write_parts(eng *e, uint32_t shard, snap_job *job);

#endif
