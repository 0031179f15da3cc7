/* include/journeyd/ingest.h -- the Segment HTTP Tracking API, as data.
 *
 * Owns: parsing a request body (one message or a batch), validating it against
 * the Segment spec, normalizing it (receivedAt, clock-skew-corrected timestamp,
 * messageId), the binary event record that goes into the log and the zero-copy
 * view the shards read back, and the messageId deduplication window.
 * Threading: ingest_parse and the record codec are pure (no globals, no clock:
 * received time and the id source are arguments) and may run on any thread.
 * An ingest_dedupe belongs to one thread (the committer).
 * Not here: HTTP, authentication of the header, the log, profiles. docs/api.md
 * is the user-facing description of what is accepted.
 */
#ifndef JOURNEYD_INGEST_H
#define JOURNEYD_INGEST_H

#include "journeyd/base.h"

typedef enum {
    INGEST_TRACK = 1, INGEST_IDENTIFY, INGEST_PAGE, INGEST_SCREEN, INGEST_GROUP, INGEST_ALIAS,
    INGEST_TYPE_COUNT_            /* one past the last; not a type */
} ingest_type;

/* What a route accepts: one message of a given type, or a batch ({"batch":[...]}) */
typedef enum {
    INGEST_ROUTE_TRACK = INGEST_TRACK, INGEST_ROUTE_IDENTIFY, INGEST_ROUTE_PAGE,
    INGEST_ROUTE_SCREEN, INGEST_ROUTE_GROUP, INGEST_ROUTE_ALIAS,
    INGEST_ROUTE_BATCH
} ingest_route;

const char *ingest_type_name(ingest_type t);           /* "track", ... ; "?" if out of range */
int ingest_type_parse(const char *s, ingest_type *out); /* JD_EINVAL if unknown */

typedef struct ingest_limits {
    uint32_t max_message_bytes;    /* limits.max_message_bytes (default 32 KB) */
    uint32_t max_batch_bytes;      /* limits.max_batch_bytes (default 500 KB) */
    uint32_t max_batch_messages;   /* limits.max_batch_messages */
    uint32_t max_json_depth;       /* limits.max_json_depth */
} ingest_limits;
void ingest_limits_default(ingest_limits *l);

/* Produces a fresh messageId when a message has none (an edge: the id is then
 * recorded in the log, so replay never draws again). NULL means jd_uuid4. */
typedef void (*ingest_id_fn)(void *self, char out[37]);

/* One normalized message. Strings are NUL-terminated and owned by the batch. */
typedef struct ingest_msg {
    ingest_type type;
    jd_str user_id, anonymous_id;   /* userId numbers become their decimal text */
    jd_str event;                   /* track: the event; page/screen: name (may be absent) */
    jd_str group_id;                /* group */
    jd_str previous_id;             /* alias */
    jd_str message_id;              /* given or generated */
    int64_t timestamp_us;           /* corrected for clock skew (see docs/api.md) */
    int64_t received_us;
    jd_str json;                    /* the whole normalized message, compact JSON */
} ingest_msg;

typedef struct ingest_batch {
    size_t      n;
    ingest_msg *msgs;
    jd_str      write_key;          /* "writeKey" from the body, if any */
    void       *_owner;             /* private */
} ingest_batch;

/* Parses and normalizes a request body for `route`. received_us is the
 * server's receive time (the caller read the clock: this function does not).
 * On JD_OK returns owned *out (ingest_batch_destroy). On error nothing is
 * returned and err says what and where:
 *   JD_EINVAL  "invalid JSON at byte 17 (line 1, column 18): ..."; where ""
 *              "userId or anonymousId is required";   where "batch[3].userId"
 *              "expected object, got string";          where "batch[3].traits"
 *   JD_ELIMIT  "message is 40213 bytes, over the 32768-byte limit (limits.max_message_bytes)"
 * A batch is all or nothing: one bad message refuses the whole request. */
int ingest_parse(const ingest_limits *lim, ingest_route route,
                 const char *body, size_t n, int64_t received_us,
                 ingest_id_fn gen_id, void *gen_self,
                 ingest_batch **out, jd_err *err);
void ingest_batch_destroy(ingest_batch *b);

/* ---- the event record (log record body, type ENG_REC_EVENT) -------------
 * A little-endian fixed header then the strings; docs/internals/log.md has the
 * table. Decoding is zero-copy and checks every length against n: the bytes
 * came from disk, so they are input (STYLE practice 10). */

typedef struct ingest_event {   /* a view; valid while the record body is */
    ingest_type type;
    int64_t timestamp_us, received_us;
    jd_str user_id, anonymous_id, event, group_id, previous_id, message_id;
    jd_str json;
} ingest_event;

/* Appends the record body for msg to out. JD_ELIMIT if out's ceiling is hit. */
int ingest_event_encode(const ingest_msg *msg, jd_buf *out);
/* JD_ECORRUPT if the bytes are not a well-formed event record. */
int ingest_event_decode(const void *body, size_t n, ingest_event *out, jd_err *err);

/* ---- deduplication by messageId ----------------------------------------
 * Remembers 64-bit hashes of messageIds for `window_us` of received time, and
 * at most max_entries of them (the oldest go first when full; counted in
 * evicted_early, exported as a metric). Memory: 16 bytes an entry plus the
 * index, allocated up front. */

typedef struct ingest_dedupe ingest_dedupe;

uint64_t ingest_dedupe_key(jd_str message_id);   /* hash of the id */
ingest_dedupe *ingest_dedupe_create(uint64_t window_us, size_t max_entries);
void ingest_dedupe_destroy(ingest_dedupe *d);
/* True if key was seen within the window before now_us; otherwise records it
 * (at now_us) and returns false. now_us need not be monotonic. */
bool ingest_dedupe_seen(ingest_dedupe *d, uint64_t key, int64_t now_us);
/* Forgets the n most recently recorded keys (a group that failed to commit). */
void ingest_dedupe_undo(ingest_dedupe *d, size_t n);
size_t   ingest_dedupe_count(const ingest_dedupe *d);
uint64_t ingest_dedupe_evicted_early(const ingest_dedupe *d);
/* Snapshot codec: appends the live entries (oldest first) / restores them. */
int ingest_dedupe_encode(const ingest_dedupe *d, jd_buf *out);
int ingest_dedupe_decode(ingest_dedupe *d, const void *p, size_t n, jd_err *err);

#endif
