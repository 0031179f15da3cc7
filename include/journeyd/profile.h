/* include/journeyd/profile.h -- the profiles of one partition.
 *
 * Owns: one prof_store per partition, holding every profile whose key routes
 * there: identities, traits (merged by identify, later wins per key, with the
 * time each key was last set), group memberships with their traits, event
 * counts per type and per event name, first and last seen.
 * Applying an event is a pure function of the store and the event: no clock,
 * no randomness, so replaying the log rebuilds the same store.
 * Threading: a prof_store belongs to the shard thread that owns its partition.
 * Not here (issue 'Profiles'): the identity directory and cross-partition
 * merges, computed traits, consent, segments. Until then the profile key is the
 * userId when present, else the anonymousId, and alias records previousId as
 * one more identity of the userId's profile.
 */
#ifndef JOURNEYD_PROFILE_H
#define JOURNEYD_PROFILE_H

#include "journeyd/base.h"
#include "journeyd/ingest.h"

typedef struct prof_store prof_store;

typedef struct prof_limits {
    uint32_t max_traits_bytes;    /* profiles.max_traits_bytes: traits JSON per profile */
    uint32_t max_anonymous_ids;   /* profiles.max_anonymous_ids */
    uint32_t max_event_names;     /* distinct event names counted per profile */
    uint32_t max_groups;          /* groups per profile */
} prof_limits;
void prof_limits_default(prof_limits *l);

prof_store *prof_store_create(const prof_limits *lim);
void prof_store_destroy(prof_store *s);

/* The profile key an event belongs to: userId if present, else anonymousId. */
jd_str prof_event_key(const ingest_event *ev);

/* Applies one event to the profile `key` routes to (created on first event).
 * Deterministic. An update that would pass a limit is not applied in part: the
 * profile keeps its old value and counts it under "limited" in its JSON (the
 * event itself is still counted). Returns JD_OK; JD_EINVAL only if the
 * record's JSON is unreadable (a bug upstream: ingest wrote it). */
int prof_apply(prof_store *s, const ingest_event *ev, jd_err *err);

/* Appends the profile whose key, userId or anonymousId is `id` as a JSON object
 * to out (shape in docs/api.md). JD_ENOTFOUND if no profile in this store has it. */
int prof_get_json(const prof_store *s, const char *id, size_t id_len, jd_buf *out);

size_t prof_store_count(const prof_store *s);
/* Bytes held by the store's profiles (an estimate, for metrics and benchmarks). */
size_t prof_store_bytes(const prof_store *s);

/* Snapshot codec. encode appends a self-describing blob; decode fills an empty
 * store and returns JD_ECORRUPT (with where = byte offset) on bad bytes. */
int prof_store_encode(const prof_store *s, jd_buf *out);
int prof_store_decode(prof_store *s, const void *p, size_t n, jd_err *err);

#endif
