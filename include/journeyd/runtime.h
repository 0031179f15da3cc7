/* include/journeyd/runtime.h -- journeys at run time (part of the journey
 * module): the registry of journeys and their versions, and the host that
 * keeps one partition's instances and moves them on events and time.
 *
 * Owns:
 *  - jrn_reg: every journey's status (draft, active, paused, archived), its
 *    draft and its immutable published versions (compiled jrn_docs), changed
 *    only by jrn_reg_apply with a control record from the log. Each shard keeps
 *    its own copy, so every copy is the same function of the log.
 *  - jrn_host: one partition's journey state: per person and journey the live
 *    instance(s) and the re-entry history, a timer wheel for their waits, and
 *    per-version counters. It runs the state machine of instance.h, builds the
 *    expression activation (event, profile, journey, now), applies update
 *    nodes to the partition's profiles and hands intents to its owner.
 * Time is an argument everywhere; the host never reads a clock.
 * Threading: a registry and the hosts that use it belong to one shard thread.
 * Not here: the log and its records (engine), delivering intents (delivery),
 * segments (a hook: entry kinds segment_enter/segment_exit never match yet).
 */
#ifndef JOURNEYD_RUNTIME_H
#define JOURNEYD_RUNTIME_H

#include "journeyd/base.h"
#include "journeyd/ingest.h"
#include "journeyd/instance.h"
#include "journeyd/journey.h"
#include "journeyd/profile.h"

struct json_object;

/* ---- the registry -------------------------------------------------------- */

typedef enum { JRN_DRAFT = 1, JRN_ACTIVE, JRN_PAUSED, JRN_ARCHIVED } jrn_status;
const char *jrn_status_name(jrn_status s);

typedef struct jrn_reg jrn_reg;

typedef struct jrn_version {
    uint32_t number;            /* 1, 2, ... */
    jrn_doc *doc;               /* owned, immutable */
    char    *text;              /* the source as published (owned) */
    int64_t  published_us;
    bool     keeps_entry;       /* the document reads journey.entry: instances keep their entry event */
    /* The event names an instance of this version reacts to (goal, exit
     * rules, resumes, event waits): others skip it. listens_all when an
     * exit rule is a condition alone (checked on every event). */
    const char **listens;       /* borrowed from doc */
    uint32_t     nlistens;
    bool         listens_all;
} jrn_version;
/* Does an instance of v react to an event with this name? */
bool jrn_version_listens(const jrn_version *v, jd_str name);

typedef struct jrn_journey {
    char        *id;
    uint32_t     index;         /* stable position in the registry */
    jrn_status   status;
    char        *source;        /* "api" or the file it was published from */
    char        *draft;         /* unpublished text, or NULL */
    int64_t      created_us, updated_us;
    jrn_version **versions;     /* versions[i]->number == i + 1 */
    uint32_t     nversions;
} jrn_journey;

/* A segment (audience): a condition over the profile; a person is a member
 * while it is true. Defined by a document (src/journey/segment.c). */
typedef struct jrn_segment {
    char      *id, *name, *text;
    uint32_t   bit;             /* the person's membership bit, 0..JRN_MAX_SEGMENTS-1 */
    uint32_t   version;         /* 1, 2, ...: redefinitions re-evaluate everyone */
    expr_prog *when;
    bool       uses_now;        /* time alone can flip it: the host times the flip */
    int64_t    updated_us;
} jrn_segment;
#define JRN_MAX_SEGMENTS 64
/* Parses a segment document (YAML or JSON: id, name, description, when); every
 * problem at once in diags. JD_OK: *out owned (jrn_segment_destroy). */
int  jrn_segment_parse(const char *name, const char *text, size_t n, jrn_segment **out, jrn_diags *diags);
void jrn_segment_destroy(jrn_segment *s);

/* Control operations, as carried by a journey record in the log. SEGMENT
 * defines or redefines a segment (text: its document). */
typedef enum { JRN_OP_DRAFT = 1, JRN_OP_PUBLISH, JRN_OP_PAUSE, JRN_OP_RESUME, JRN_OP_ARCHIVE, JRN_OP_SEGMENT } jrn_op;
int jrn_op_parse(const char *s, jrn_op *out);
const char *jrn_op_name(jrn_op op);

typedef struct jrn_ctl {
    jrn_op      op;
    const char *id;
    const char *text;           /* DRAFT, and PUBLISH of a document given inline (else the draft) */
    size_t      text_len;
    const char *source;         /* "api" or a file name; NULL: "api" */
} jrn_ctl;

jrn_reg *jrn_reg_create(const jrn_env *env);   /* env NULL: jrn_env_default() */
void jrn_reg_destroy(jrn_reg *r);
size_t jrn_reg_count(const jrn_reg *r);
const jrn_journey *jrn_reg_at(const jrn_reg *r, uint32_t index);
const jrn_journey *jrn_reg_find(const jrn_reg *r, const char *id);
/* The version a new entry gets (the newest), or NULL if none is published. */
const jrn_version *jrn_reg_live(const jrn_journey *j);

/* Would ctl succeed now? JD_OK, or the reason: JD_ENOTFOUND (no such journey),
 * JD_EEXIST-like conflicts as JD_EBUSY ("journey 'x' is archived", "nothing to
 * publish", "already paused"), JD_EINVAL (the document does not compile; diags
 * gets every problem when not NULL). Pure. */
int jrn_reg_check(const jrn_reg *r, const jrn_ctl *ctl, jrn_diags *diags, jd_err *err);
/* Applies ctl at time now (same checks as jrn_reg_check; on failure nothing
 * changes). *changed gets the journey touched, and *was its status before. */
int jrn_reg_apply(jrn_reg *r, const jrn_ctl *ctl, int64_t now_us, const jrn_journey **changed,
                  jrn_status *was, jd_err *err);
/* After a SEGMENT op: the segment defined (else NULL). */
const jrn_segment *jrn_reg_last_segment(const jrn_reg *r);

size_t jrn_reg_segments(const jrn_reg *r);
const jrn_segment *jrn_reg_segment_at(const jrn_reg *r, uint32_t i);   /* i == its bit */
const jrn_segment *jrn_reg_segment_find(const jrn_reg *r, const char *id);
/* Active journeys entered when a person enters (enter true) or leaves a segment. */
size_t jrn_reg_segment_entries(const jrn_reg *r, const char *segment, bool enter, uint32_t *out, size_t cap);

/* Journeys an event named `name` may enter (active, newest version's entry
 * event is `name`), in registry order. */
const uint32_t *jrn_reg_entries_for(const jrn_reg *r, jd_str name, size_t *n);
/* The same, less the journeys whose entry condition cannot be true for this
 * event (the parsed event JSON): a condition with a guard `event.a.b == "x"`
 * (expr_prog_guards) is skipped unless the event has "x" there. out must
 * hold as many as jrn_reg_entries_for gives; returns how many, registry order.
 * event NULL: all of them. */
size_t jrn_reg_candidates(const jrn_reg *r, jd_str name, const struct json_object *event, uint32_t *out, size_t cap);

/* Snapshot codec: JSON text of every journey with its draft and versions. */
int jrn_reg_encode(const jrn_reg *r, jd_buf *out);
int jrn_reg_decode(jrn_reg *r, const char *text, size_t n, jd_err *err);

/* The definitions as JSON (one journey, or all when j is NULL): id, status,
 * source, times, draft, versions (number, published, document when
 * with_docs). Returns a new object the caller owns. */
struct json_object *jrn_reg_json(const jrn_reg *r, const jrn_journey *j, bool with_docs);

/* ---- the host ------------------------------------------------------------ */

typedef struct jrn_host jrn_host;

/* A send or task node was reached. Pointers are valid during the call only. */
typedef struct jrn_intent {
    uint64_t       id;            /* deterministic: the provider's idempotency key */
    uint64_t       instance;
    const jrn_journey *journey;
    uint32_t       version;
    const jrn_node *node;
    jd_str         key;           /* the person */
    int64_t        at_us;         /* the time of the record that caused it */
    uint64_t       lsn;           /* that record */
    /* The turn's own views, borrowed for the callback (json_object_get to keep
     * one): the event of the turn, else the kept entry event, else NULL (a
     * wait that fired); and the person as expressions see them at at_us. A
     * message template's `event` and `profile` are these, built once a turn. */
    struct json_object *event, *profile;
} jrn_intent;

typedef struct jrn_host_out {
    void *self;
    void (*intent)(void *self, const jrn_intent *it);
    /* An instance ended (after the host's counters were updated); may be NULL. */
    void (*exit)(void *self, const jrn_journey *j, uint32_t version, jd_str key, uint32_t last_node,
                 jrn_end why, const jd_err *err, int64_t now_us);
    /* An instance moved from node `from` (JRN_NONE on entry) to `to` (JRN_NONE
     * when it leaves the graph) by `edge`; arm is the branch arm or split
     * variant index (instance.h, jrn_io.transition). May be NULL. */
    void (*transition)(void *self, const jrn_journey *j, uint32_t version, jd_str key, uint32_t from, uint32_t to,
                       jrn_edge edge, uint32_t arm, int64_t now_us);
} jrn_host_out;

/* Counters of one version in one partition. */
typedef struct jrn_vstats {
    uint64_t entered, active, exits[JRN_END_COUNT_], condition_errors;
    uint64_t *node_entered;       /* per node: instances that reached it */
    uint32_t nnodes;
    char     last_error[192];     /* the newest condition error, "" none */
} jrn_vstats;

/* Borrows reg and profiles (they outlive the host). now_us: the host's clock. */
jrn_host *jrn_host_create(const jrn_reg *reg, prof_store *profiles, int64_t now_us, const jrn_host_out *out);
void jrn_host_destroy(jrn_host *h);

/* Moves the host's clock to now_us (never back) and fires due waits. Call it
 * with a record's time before applying the record to the profiles. */
void jrn_host_advance(jrn_host *h, int64_t now_us, uint64_t lsn);
/* An event (already applied to the profiles) at now_us, from record lsn: live
 * instances of the person see it, then entries are checked. */
void jrn_host_event(jrn_host *h, const ingest_event *ev, uint64_t lsn, int64_t now_us);
/* An entry through the API. JD_ENOTFOUND (no such journey), JD_EBUSY (not
 * active, or the re-entry policy refuses: err says which). */
int  jrn_host_enter(jrn_host *h, const char *journey_id, jd_str key, uint64_t lsn, int64_t now_us, jd_err *err);
/* The registry changed journey j (status was `was`): pausing holds its waits,
 * resuming fires what came due meanwhile, archiving ends its instances. */
void jrn_host_journey_changed(jrn_host *h, const jrn_journey *j, jrn_status was, int64_t now_us, uint64_t lsn);

/* The person was deleted: their instances end with JRN_END_DELETED (counted),
 * and their history, segment memberships and pending flips are forgotten. */
void jrn_host_forget(jrn_host *h, const char *key, size_t kn, int64_t now_us, uint64_t lsn);

/* Identity merges (docs/journeys.md, "Merged people"): the engine calls
 * jrn_host_extract(L) on the host of the merged-away person L, then, after
 * advancing the survivor's host to the merge record's time,
 * jrn_host_merge_in(S, blob) there (the same host or another: the blob names
 * journeys by id and version, never by registry index).
 *
 * Removes everything the host holds for person key and appends it to out as a
 * self-contained blob: live instances (their full jrn_instance state, wait
 * deadlines, the HELD flag, split node, kept entry event JSON) and the re-entry
 * history per journey (last end, last entered time, last entry lsn). Timers
 * are cancelled. Segment memberships and pending flips are dropped, shrinking
 * the sizes, WITHOUT running segment_exit journeys (the person did not leave
 * a segment: they merged; the survivor is re-evaluated at its next turn). The
 * versions' `active` counters go down with the instances; no exit is counted.
 * JD_ENOTFOUND (out untouched) when the host knows nothing of key; JD_ELIMIT
 * when out's ceiling is hit (out back to its length, the host unchanged).
 * Owning shard thread only; deterministic. */
int jrn_host_extract(jrn_host *h, const char *key, size_t kn, jd_buf *out);

/* Adopts a jrn_host_extract blob (borrowed) for person key at record lsn
 * (n == 0: nothing). The host's clock is not moved. Per journey:
 *  - one side has live instances: they all continue under key (ids kept, so
 *    intent ids stay the same; waits keep their deadlines, one already past
 *    fires at the next jrn_host_advance; a held wait of a paused journey
 *    stays held, runs at resume);
 *  - both sides do: the side whose earliest live instance entered first
 *    keeps its instances (a tie: key's own), the other side's end with
 *    JRN_END_MERGED, counted and reported through out.exit like other ends;
 *  - history: last entered is the later of the two, with its last end; the
 *    last entry lsn is the larger, the blob's capped at `lsn` (another
 *    partition's lsns count another log, and invariant (3) of host.c must
 *    not refuse this log's next records); the ends above then set last end
 *    as any end does. Re-entry rules ("once", cool-downs) see the result.
 * Instances of a journey version the registry does not have are dropped and
 * counted (jrn_host_merge_errors); those of an archived journey end
 * JRN_END_ARCHIVED. All or nothing: the blob is decoded and checked fully
 * before the host changes; JD_ECORRUPT with err->where "merge+<offset>" on bad
 * bytes, JD_EINVAL on an empty key. Owning shard thread only; deterministic. */
int jrn_host_merge_in(jrn_host *h, const char *key, size_t kn, const void *blob, size_t n, uint64_t lsn, jd_err *err);
/* Merged-in instances dropped because the registry lacked their version. */
uint64_t jrn_host_merge_errors(const jrn_host *h);

/* A segment was defined or redefined (registry op SEGMENT): everyone the host
 * knows is re-evaluated now. */
void jrn_host_segment_changed(jrn_host *h, const jrn_segment *s, int64_t now_us, uint64_t lsn);
/* Members of the segment with this bit in this partition; sizes: every
 * segment's at once (out[bit], JRN_MAX_SEGMENTS of them), one pass. */
size_t jrn_host_segment_size(const jrn_host *h, uint32_t bit);
void   jrn_host_segment_sizes(const jrn_host *h, uint64_t out[JRN_MAX_SEGMENTS]);
void   jrn_host_segment_members(const jrn_host *h, uint32_t bit, void (*fn)(void *ctx, jd_str key), void *ctx);
/* The person's membership bits (bit i: jrn_reg_segment_at(reg, i)). */
uint64_t jrn_host_segments_of(const jrn_host *h, const char *key, size_t kn);

/* Size over time (docs/segments.md, "Size over time"). Per segment, the host
 * keeps the partition's size at the last JRN_SEG_HOURS hour boundaries and
 * the last JRN_SEG_DAYS day boundaries (00:00 UTC), in rings: a point at
 * boundary B is the size just before the host's clock reached B (the state
 * after every record before B; a record at B itself comes after the point).
 * Points begin at the first boundary after the segment's definition; a
 * redefinition keeps them. Ring entries are u32 (a partition's size
 * saturates at UINT32_MAX there, far beyond a partition's profiles).
 * Memory: 16 + 4 x (JRN_SEG_HOURS + JRN_SEG_DAYS) = 1048 bytes per defined
 * segment, plus 1048 bytes per host: at most 68,120 bytes per partition. */
#define JRN_SEG_HOURS 168   /* a week of hourly points */
#define JRN_SEG_DAYS  90    /* a quarter of daily points */

typedef struct jrn_seg_points {
    int64_t  step_us;           /* JD_HOUR or JD_DAY */
    int64_t  last;              /* the newest boundary the host's clock has reached, as an index: at last * step_us */
    uint32_t n;                 /* points held: the boundaries last - n + 1 .. last (0: none yet) */
    uint64_t current;           /* the size now: what every boundary after `last` will get, unless a record comes first */
    uint32_t size[JRN_SEG_HOURS];   /* size[i]: the point at boundary last - n + 1 + i (oldest first) */
} jrn_seg_points;
/* The points of the segment with this bit (daily: day boundaries, else hour
 * boundaries) into *out. JD_ENOTFOUND when the host keeps no history for bit
 * (no such segment). Pure, O(points): no clock (the host's own is `now`). */
int jrn_host_segment_history(const jrn_host *h, uint32_t bit, bool daily, jrn_seg_points *out);

/* Where a person is: a JSON array of {journey, version, instance, state, node,
 * since, entered_at, waiting_for, timer_at, variant} for live instances and
 * {journey, state: "exited", last_entered_at, last_end} history, appended to out. JD_ENOTFOUND if
 * the person was never in a journey of this partition. */
int  jrn_host_person_json(const jrn_host *h, const char *key, size_t kn, jd_buf *out);
/* Counters of (journey, version), or NULL when nothing happened there yet. */
const jrn_vstats *jrn_host_stats(const jrn_host *h, uint32_t journey, uint32_t version);
size_t jrn_host_instances(const jrn_host *h);    /* live */
size_t jrn_host_timers(const jrn_host *h);       /* armed waits */
int64_t jrn_host_now(const jrn_host *h);
/* The earliest armed wait (us), or UINT64_MAX: the engine writes a clock
 * record only when one is due. */
uint64_t jrn_host_next_due(jrn_host *h);
/* Bytes held by instances and people (an estimate, for benchmarks). */
size_t jrn_host_bytes(const jrn_host *h);

/* Snapshot codec (the registry must be decoded first: instances name their
 * journey by id). decode fills a host that has seen nothing yet. */
int  jrn_host_encode(const jrn_host *h, jd_buf *out);
int  jrn_host_decode(jrn_host *h, const void *p, size_t n, jd_err *err);

#endif
