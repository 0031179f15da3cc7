/* include/journeyd/engine.h -- partitions, the committer, shard threads, snapshots.
 *
 * Owns the write path after parsing: a write transaction (the records of one
 * request) goes to the committer thread, which drops duplicate messageIds,
 * appends to the log, fsyncs once for every transaction that arrived meanwhile
 * (group commit), then hands each record to the shard that owns its partition
 * and completes the transactions. Shards own the partitions' state (profiles
 * now; journeys, segments and timers later) and answer reads sent as messages.
 * Snapshots are a consistent cut at one lsn (docs/architecture.md).
 * Threading: eng_submit and eng_profile_get may be called from any thread;
 * their callbacks run on the committer or a shard thread and must not block.
 * Not here: parsing (ingest), HTTP (http, api), what an event does to a
 * profile (profile).
 */
#ifndef JOURNEYD_ENGINE_H
#define JOURNEYD_ENGINE_H

#include "journeyd/base.h"
#include "journeyd/deliver.h"
#include "journeyd/identity.h"
#include "journeyd/journey.h"
#include "journeyd/ingest.h"
#include "journeyd/log.h"
#include "journeyd/profile.h"

/* Record types in the log. A new kind of record is a new row here and in
 * shard.c's apply table. TICK, JOURNEY and DELETE go to every partition
 * (ENG_PART_ALL); docs/internals/log.md has their bodies. EVENT is an event
 * from before identity resolution (read, no longer written); ROUTED is an
 * event with the profile key the directory chose; MOVE_OUT/MOVE_IN merge one
 * profile into another (src/engine/route.c); REFUSED notes a refused merge. */
enum { ENG_REC_EVENT = 1, ENG_REC_TICK, ENG_REC_JOURNEY, ENG_REC_ENTER, ENG_REC_DELETE,
       ENG_REC_ROUTED, ENG_REC_MOVE_OUT, ENG_REC_MOVE_IN, ENG_REC_REFUSED, ENG_REC_RESULT, ENG_REC_RETRY,
       ENG_REC_TASK /* a task claimed or completed (src/engine/tasks.c) */ };
#define ENG_PART_ALL 0xffffu

typedef struct eng eng;   /* opaque */

typedef struct eng_opts {
    const char *data_dir;
    uint32_t    partitions;       /* power of two; fixed for a data folder */
    uint32_t    shards;           /* 0: one per core */
    uint32_t    max_pending;      /* transactions queued for the log before JD_EBUSY */
    uint64_t    max_backlog;      /* engine.max_backlog: records a shard may have waiting before the
                                     committer stops taking requests (0: 200,000) */
    uint64_t    snapshot_every;   /* records between automatic snapshots */
    uint64_t    dedupe_window_us;
    uint64_t    dedupe_max_entries;
    log_opts    log;
    prof_limits prof;
    idn_opts    identity;         /* identity.*: limits and declared identifiers (names borrowed) */
    const dlv_templates *templates;        /* templates.dir, borrowed (read-only); NULL: sends are skipped */
    const dlv_channel_cfg *channels;       /* channels:, borrowed; what send nodes may name */
    const dlv_guards *guards;              /* guardrails:, borrowed; NULL: none */
    size_t      nchannels;
    const dlv_links *links;       /* links.*: signs tracking links in templates, borrowed; NULL: none */
    uint64_t    tick_us;          /* engine.tick: least time between clock records while waits are due */
    uint32_t    recent_intents;   /* journeys.recent_intents: intents kept per partition for GET /v1/intents */
    const jd_clock *clock;        /* the edge that stamps clock records; NULL: jd_clock_real */
    uint32_t    tasks_max_open;   /* tasks.max_open: open tasks per partition (0: JD_DEF_TASKS_MAX_OPEN) */
} eng_opts;

/* What the engine found at start: for the "recovered ..." log line. */
typedef struct eng_recovery {
    log_recovery log;
    uint64_t snapshot_lsn;        /* 0: no snapshot */
    uint64_t replayed;            /* records applied after the snapshot */
    uint64_t profiles;
    double   seconds;
} eng_recovery;

/* Opens the data folder, loads the newest snapshot, replays the log after it
 * and starts the threads. Returns when state equals what it was before the
 * last stop. Returns owned *out (eng_close). rec may be NULL. */
int  eng_open(eng **out, const eng_opts *o, eng_recovery *rec, jd_err *err);
/* Drains queued transactions, fsyncs, writes a snapshot, stops threads. */
void eng_close(eng *e);
uint32_t eng_shards(const eng *e);
/* The clock the engine stamps time with (eng_opts.clock): the ingest edge
 * stamps receivedAt with the same one, so events and ticks agree. */
const jd_clock *eng_clock(const eng *e);
/* Delivery (src/engine/outbox.c): send intents are rendered in the shards
 * from the first record on and kept in each partition's outbox; attaching a
 * dlv (after eng_open, so after replay) submits what waits, and every later
 * intent at once. Results come back through the log (RESULT records), so
 * what has no result after a restart is sent again with the same intent id.
 * Pass eng__outbox_on_result / eng__outbox_on_unsent as the dlv's callbacks
 * (eng_dlv_callbacks). Detach (d = NULL) before dlv_destroy: it returns once
 * no shard can still be handing the old one a message. */
void eng_set_delivery(eng *e, dlv *d);
/* The journey environment of a configuration: the default channel names and
 * the configured ones, and, for a configured channel, templates that must
 * exist. `journeyd serve` checks journeys.dir with it before the engine opens;
 * the engine's registries use the same. Borrows ch and tpls. */
typedef struct eng_env {
    jrn_env env;
    const char **names;
    const dlv_channel_cfg *ch;
    size_t nch;
    const dlv_templates *tpls;
} eng_env;
void eng_env_init(eng_env *x, const dlv_channel_cfg *ch, size_t nch, const dlv_templates *tpls);
void eng_env_release(eng_env *x);
/* The engine's own (read-only after eng_open: any thread). */
const jrn_env *eng_journey_env(const eng *e);

/* Fills o's on_result, on_unsent and ctx for this engine. */
void eng_dlv_callbacks(eng *e, dlv_opts *o);

/* Wakes the committer to look at its clock now (after the clock jumped,
 * clock.travel): due waits fire without waiting for its next wake-up. */
void eng_wake(eng *e);

/* ---- writes ------------------------------------------------------------- */

typedef struct eng_txn eng_txn;   /* opaque: the records of one request */

/* status: JD_OK (durable; lsn is the transaction's last record), JD_EIO (the
 * log refused: err says why), JD_EBUSY (shutting down). Runs on the committer
 * thread. */
typedef void (*eng_done_fn)(void *ctx, int status, const jd_err *err, uint64_t lsn);

eng_txn *eng_txn_create(void);
/* Encodes msg as an event record (borrows msg). */
void eng_txn_add_event(eng_txn *t, const eng *e, const ingest_msg *msg);
size_t eng_txn_count(const eng_txn *t);
void eng_txn_destroy(eng_txn *t);   /* only for a transaction never submitted */
/* Takes t. done is called exactly once: at once with JD_EBUSY when more than
 * max_pending transactions wait (err names engine.max_pending) or the engine is
 * closing, else after the log made t durable (or refused it). */
void eng_submit(eng *e, eng_txn *t, eng_done_fn done, void *ctx);

/* ---- reads (messages to shards) ----------------------------------------- */

/* rc JD_OK with the profile's JSON (valid during the call), or JD_ENOTFOUND.
 * Runs on a shard thread. */
typedef void (*eng_read_fn)(void *ctx, int rc, const char *json, size_t n);
void eng_profile_get(eng *e, const char *id, eng_read_fn done, void *ctx);

/* Deletes the person whose userId or anonymousId is id, through the log (a
 * DELETE record every partition applies): the profile goes, their ids are
 * suppressed (a later event is not applied unless it is an identify), their
 * journey instances end as "deleted", their segment memberships and intents
 * in GET /v1/intents go. rc JD_OK json {"deleted":id}; JD_ENOTFOUND; JD_EIO. */
typedef void (*eng_json_fn)(void *ctx, int rc, const jd_err *err, const char *json, size_t n);
void eng_profile_delete(eng *e, const char *id, eng_json_fn done, void *ctx);

/* ---- journeys (src/engine/journeys.c) -------------------------------------
 * Changes go through the log as ENG_REC_JOURNEY records (every shard's
 * registry applies them in log order); reads are messages to shards. Every
 * callback runs once, on a committer or shard thread, with JSON valid during
 * the call. */

/* eng_json_fn (above) rc: JD_OK (json: the journey after the change, as
 * eng_journeys_get gives it), JD_ENOTFOUND, JD_EBUSY (a state conflict: err
 * says which), JD_EINVAL (json: {"error":..,"errors":[{"where","node",
 * "message"}...]} listing every problem of the document), JD_EIO (the log
 * refused). */

typedef struct eng_journey_req {
    const char *op;            /* "draft", "publish", "pause", "resume", "archive"; "segment" defines a segment */
    const char *id;
    const char *text;          /* draft/publish: the document (YAML or JSON); NULL: publish the draft */
    size_t      text_len;
    const char *source;        /* "api" or the file name */
    bool        if_changed;    /* publish: JD_OK without a new version when the newest one has this text */
    bool        create_only;   /* draft: JD_EBUSY if the journey exists (POST /v1/journeys) */
    bool        must_exist;    /* draft: JD_ENOTFOUND if it does not (PUT /v1/journeys/{id}) */
} eng_journey_req;
/* Copies what it needs from req. */
void eng_journey_change(eng *e, const eng_journey_req *req, eng_json_fn done, void *ctx);

/* One journey (id) or all (id NULL) as JSON with live counters summed over
 * every partition: see docs/api.md "Journeys". with_docs adds each version's
 * document and text. JD_ENOTFOUND for an unknown id. */
void eng_journeys_get(eng *e, const char *id, bool with_docs, eng_json_fn done, void *ctx);

/* Enters profile `profile_id` (its key: a userId, else an anonymousId) into
 * journey id through the log. JD_OK json {"entered":true,"journey":..,
 * "instance":{...}}; JD_ENOTFOUND; JD_EBUSY when the journey is not active
 * or the re-entry policy refuses (err says which). */
void eng_journey_enter(eng *e, const char *id, const char *profile_id, eng_json_fn done, void *ctx);

/* Segments (defined with eng_journey_change op "segment", text: the segment
 * document): one (id) or all (NULL) as JSON {id, name, version, when,
 * updated_at, size} with size summed over every partition; JD_ENOTFOUND. */
void eng_segments_get(eng *e, const char *id, eng_json_fn done, void *ctx);
/* Members of segment id, by profile key in byte order after `after` (NULL:
 * from the start), at most limit: {"members":[...],"next":key|null}. */
void eng_segment_members(eng *e, const char *id, const char *after, uint32_t limit, eng_json_fn done, void *ctx);
/* Size over time of segment id, summed over every partition (runtime.h,
 * jrn_host_segment_history; docs/segments.md "Size over time"): hour or day
 * (daily) boundaries with from_us <= at <= to_us, oldest first, as
 * {"id":..,"granularity":"hour"|"day","points":[{"at":RFC3339,"size":n}]}.
 * A partition whose clock has not reached a boundary yet counts its current
 * size there. JD_ENOTFOUND for an unknown segment. Reads no clock. */
void eng_segment_history(eng *e, const char *id, bool daily, int64_t from_us, int64_t to_us, eng_json_fn done,
                         void *ctx);
/* Profiles whose trait `trait` equals value (prof_store_find_trait), at most
 * limit, from every partition: JSON array of profile keys (any order). */
void eng_profiles_find(eng *e, const char *trait, const char *value, uint32_t limit, eng_json_fn done, void *ctx);

/* The segments a person is in: JSON array of ids (home partition). */
void eng_profile_segments(eng *e, const char *profile_id, eng_json_fn done, void *ctx);

/* Where a person is in journeys: JSON array (jrn_host_person_json);
 * JD_ENOTFOUND if never in one. */
void eng_profile_journeys(eng *e, const char *profile_id, eng_json_fn done, void *ctx);

/* The newest intents (send and task) produced, newest first, at most limit:
 * of one person (profile_id) or of everyone (NULL). JSON array of {id,
 * instance, journey, version, node, kind, channel, template, category,
 * queue, person, at, lsn, delay_us}; delay_us is the time from the record
 * being durable to the intent, measured on this machine (an observation,
 * never state). */
void eng_intents_get(eng *e, const char *profile_id, uint32_t limit, eng_json_fn done, void *ctx);

/* GET /v1/deliveries: the messages waiting or sending (dead false) or the
 * dead letters (dead true), newest first, at most limit; with id, that one
 * message (JD_ENOTFOUND when neither has it). json: an array, or one object
 * with "status" (waiting, sending, failed, dead) and "partition". */
void eng_deliveries_get(eng *e, const char *id, bool dead, uint32_t limit, eng_json_fn done, void *ctx);
/* POST /v1/deliveries/{id}/retry: a dead letter goes out again with the same
 * intent id, through a RETRY record (JD_EBUSY when it is not a dead letter). */
void eng_delivery_retry(eng *e, const char *id, eng_json_fn done, void *ctx);

/* ---- human tasks (src/engine/tasks.c) -------------------------------------
 * A task node's intent becomes an open task in the partition that owns the
 * person, in the same turn; claims and completions are ENG_REC_TASK records
 * (replies after they applied); a completion also writes a track event
 * `Task Completed` for the person. Ids are "<partition>-<16 hex digits of the
 * intent id>". eng_json_fn rc: JD_OK (json: the task, docs/api.md "Tasks"),
 * JD_ENOTFOUND (an unknown or malformed id), JD_EBUSY (claimed by someone
 * else, being completed, or done: err says which), JD_EINVAL (a missing
 * field: err->where names it), JD_EIO (the log refused). */
typedef struct eng_task_req {
    const char *id;
    const char *op;               /* "claim" or "complete" */
    const char *assignee;         /* claim: required; complete: optional (refused if another claimed it) */
    const char *outcome, *note;   /* complete: outcome required, note optional */
    int64_t     at_us;            /* the edge's clock (eng_clock): the record's time */
} eng_task_req;
/* Copies what it needs from req. */
void eng_task_change(eng *e, const eng_task_req *req, eng_json_fn done, void *ctx);
void eng_task_get(eng *e, const char *id, eng_json_fn done, void *ctx);
/* Tasks of queue, of one status ("open", "claimed", "done"; NULL: any),
 * newest first, at most limit: {"queue":..,"tasks":[...]} from every shard. */
void eng_tasks_list(eng *e, const char *queue, const char *status, uint32_t limit, eng_json_fn done, void *ctx);

/* ---- observation --------------------------------------------------------- */

typedef struct eng_stats {
    uint64_t events_accepted;     /* made durable and handed to shards */
    uint64_t events_duplicate;    /* dropped by messageId dedupe */
    uint64_t txns_refused_io;     /* groups the log refused */
    uint64_t fsyncs;
    uint64_t log_bytes;
    uint64_t durable_lsn;
    uint64_t dedupe_entries, dedupe_evicted_early;
    uint64_t snapshots, snapshot_lsn;
    bool     log_failed;
    uint32_t shards;
    uint64_t pending_txns;
    uint64_t ticks;               /* clock records written */
    uint64_t suppressed;          /* events not applied: their person was deleted */
    uint64_t deleted;             /* profiles deleted */
    uint64_t backlog_waits;       /* times the committer waited for a shard to catch up */
    uint64_t intents;             /* send and task intents produced */
    uint64_t instances, timers;   /* live journey instances and armed waits, all shards */
    uint64_t merges;              /* profiles merged into another (identity resolution) */
    uint64_t merges_refused;      /* merges and identifiers the identity limits refused */
    uint64_t identity_links;      /* identifiers the directory holds (read at the last snapshot) */
    uint64_t dlv_queued;          /* send intents rendered into an outbox */
    uint64_t dlv_skipped;         /* send intents not sent: consent, no channel/template, render error */
    uint64_t dlv_sent, dlv_failed, dlv_dead;   /* results recorded */
    uint64_t tasks_dropped;       /* task intents dropped: tasks.max_open reached in their partition */
} eng_stats;
void eng_get_stats(const eng *e, eng_stats *out);
/* Per-shard queue depth (records and reads waiting). */
size_t eng_shard_queue_depth(const eng *e, uint32_t shard);
/* fsync latency histogram: bucket upper bounds in seconds and cumulative
 * counts, for the Prometheus exposition. Returns the number of buckets. */
size_t eng_fsync_histogram(const eng *e, const double **bounds, uint64_t *counts,
                           size_t max, uint64_t *count, double *sum_s);

#endif
