/* include/journeyd/profile.h -- the profiles of one partition.
 *
 * Owns: one prof_store per partition, holding every profile whose key routes
 * there: identities (the key, anonymousIds, declared identifiers such as
 * email), traits (merged by identify, later wins per key, with the time each
 * key was last set), tags (a set of short labels, in the order added), group
 * memberships with their traits, consent per channel/topic, computed traits,
 * event counts per type and per event name, first and last seen, and notes
 * of merges the identity directory refused, and a timeline of the latest
 * events and journey messages (profiles.timeline). It applies merges (prof_extract
 * on the loser's store, prof_merge_in on the survivor's) and deletions with
 * their suppressions.
 * Applying an event, an update or a merge is a pure function of the store
 * and its input: no clock, no randomness, so replaying the log rebuilds the
 * same store.
 * Threading: a prof_store belongs to the shard thread that owns its partition.
 * Not here: deciding who is who (the identity directory, in the committer,
 * decides which profiles merge and enforces the per-kind identifier limits),
 * segments. Computed traits are not back-filled from history: a definition
 * starts empty when it first appears. The profile key is the userId when
 * present, else the anonymousId; alias records previousId as one more
 * anonymousId of the userId's profile.
 */
#ifndef JOURNEYD_PROFILE_H
#define JOURNEYD_PROFILE_H

#include "journeyd/base.h"
#include "journeyd/config.h"
#include "journeyd/ingest.h"

typedef struct prof_store prof_store;

/* ---- computed trait definitions ------------------------------------------
 * Parsed once from the configuration's `computed:` map, read-only afterwards,
 * and shared (borrowed) by every partition's store: any thread may read them.
 * docs/operations.md ("Computed traits") is the user-facing description. */
typedef struct prof_computed_defs prof_computed_defs;

/* Parses the value of `computed:` (a map of NAME: { KIND: Event, property:,
 * window:, buckets: }; an empty value means none). `file` names the document
 * in errors. Returns owned *out (prof_computed_defs_destroy; NULL when there
 * are no definitions). JD_EINVAL with err->where "<file>:<line>:<col>" of the
 * offending node and a message that starts with the key
 * ("computed.logins_7d.window: ..."); JD_ELIMIT past JD_MAX_COMPUTED
 * definitions. Borrows map for the call. Pure. */
int  prof_computed_parse(const jd_yaml_node *map, const char *file, prof_computed_defs **out, jd_err *err);
void prof_computed_defs_destroy(prof_computed_defs *d);
/* Number of definitions (0 for NULL). */
uint32_t prof_computed_count(const prof_computed_defs *d);

typedef struct prof_limits {
    uint32_t max_traits_bytes;    /* profiles.max_traits_bytes: traits JSON per profile */
    uint32_t max_anonymous_ids;   /* profiles.max_anonymous_ids */
    uint32_t max_event_names;     /* distinct event names counted per profile */
    uint32_t max_groups;          /* groups per profile */
    uint32_t max_tags;            /* profiles.max_tags: tags per profile */
    uint32_t timeline;            /* profiles.timeline: latest events and messages kept
                                     per profile, 0 (none) .. JD_MAX_TIMELINE (clamped) */
    const prof_computed_defs *computed;   /* computed: borrowed, must outlive the
                                             store (jd_config owns it); NULL: none */
    const jd_consent_cfg *consent;        /* consent.exempt, consent.opt_out: borrowed, must
                                             outlive the store (jd_config owns it); NULL:
                                             nothing exempt, every channel opt-in */
} prof_limits;
/* Fills l with the defaults of include/journeyd/limits.h, but no computed
 * traits, no consent policy (NULL) and no timeline (timeline 0: the server's default, JD_DEF_TIMELINE,
 * comes from the configuration's profiles.timeline). */
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
 * to out (shape in docs/api.md; "identifiers", "mergesRefused" and "timeline"
 * appear only when the profile has some; "timeline" newest first, at most
 * lim.timeline entries, never with lim.timeline 0). Windowed computed traits are read as of the
 * profile's lastSeen. JD_ENOTFOUND if no profile in this store has it. */
int prof_get_json(const prof_store *s, const char *id, size_t id_len, jd_buf *out);

/* ---- the timeline (src/profile/timeline.c) ---------------------------------
 * Each profile keeps its latest lim.timeline events (recorded by prof_apply,
 * at the event's timestamp) and messages (journeys' send and task intents),
 * ordered by time, newest first; equal times: the one recorded later first.
 * Times are kept to the millisecond; a name (track: the event; page, screen:
 * the name if any; group: the groupId; message: "<journey>/<node>"), a
 * channel and a template are cut to 64 bytes at a UTF-8 character boundary.
 * Merges keep the newest lim.timeline of both; a deletion drops it. */

/* Records a message on the timeline of the profile keyed `key` (by_key only,
 * not anonymousIds): at_us is the time of the record that caused it (never a
 * clock read), name "<journey>/<node>" (NUL-terminated), channel and
 * template_name the send node's (NULL or "" for none, e.g. a task).
 * JD_ENOTFOUND (nothing recorded) when no profile has that key; JD_OK
 * otherwise, also when lim.timeline is 0 (nothing recorded). Borrows every
 * argument for the call. Deterministic; owning shard thread only. */
int prof_timeline_message(prof_store *s, const char *key, size_t kn, int64_t at_us, const char *name,
                          const char *channel, const char *template_name);

/* ---- updates from journeys ---------------------------------------------- */

#define PROF_MAX_TAG_BYTES 255   /* fixed: a tag is 1..255 bytes, no NUL */

typedef enum { PROF_OP_SET = 1, PROF_OP_UNSET, PROF_OP_TAG, PROF_OP_UNTAG } prof_op_kind;

typedef struct prof_op {
    prof_op_kind kind;
    const char *name;       /* trait key or tag; NUL-terminated; borrowed */
    const char *json;       /* SET: the value as compact JSON text (not NULL); borrowed */
    size_t json_len;
} prof_op;

/* Applies ops in order to the profile whose key is `key` at time ts, as one
 * update: a trait SET/UNSET follows the same later-wins-per-key rule (with
 * traitTimes) as identify, UNSET is like identify with null (a SET whose text
 * is `null` is an UNSET); TAG adds a tag if absent (at the end), UNTAG removes
 * it if present. Later ops on the same trait key win within one call.
 * All or nothing: on any error nothing is applied. Errors, in this order:
 *   JD_ENOTFOUND  no profile has that key (by_key only, not anonymousIds)
 *   JD_EINVAL     an op is malformed: unknown kind, NULL name, empty tag, or a
 *                 SET value that is not exactly one strict JSON value;
 *                 err->where is "ops[i]"
 *   JD_ELIMIT     a tag longer than PROF_MAX_TAG_BYTES (where "ops[i]"), or the
 *                 result would pass max_traits_bytes or max_tags: where is
 *                 "profiles.max_traits_bytes" or "profiles.max_tags" (a
 *                 result over max_tags that gains no tag is accepted, so that
 *                 removals work after the limit was lowered)
 * Unlike prof_apply, a refused update is not counted in "limited": the caller
 * is told. Touches no counts and not firstSeen/lastSeen. Deterministic (no
 * clock); ops and key are borrowed for the call. Owning shard thread only. */
int prof_update(prof_store *s, const char *key, size_t key_len,
                const prof_op *ops, size_t n, int64_t ts, jd_err *err);

/* The profile as the expression language sees it (variable `profile`):
 *   {"userId":..,"anonymousIds":[..],"traits":{...},"tags":[..],
 *    "groups":{"<groupId>":{<traits>}},"first_seen":"RFC3339","last_seen":"RFC3339",
 *    "events":{"<event name>":count},"computed":{"<name>":value},
 *    "identifiers":{"<kind>":["v",..]}}
 * (userId omitted when the key is not a userId; an anonymous key leads
 * anonymousIds, as in prof_get_json; identifiers only when there are some). Looks up by profile key only.
 * computed: every definition's value as of now_us (windows count the buckets
 * that overlap the window ending at now_us; see docs/internals/profile.md):
 * count an int (0 when none), sum a double (0 when none), min/max doubles,
 * last the property's JSON value, first_seen/last_seen RFC 3339 strings;
 * min, max, last, first_seen and last_seen are left out of the map when
 * there is no value (so `has(profile.computed.x)` tells). now_us is an input,
 * never a clock read: pass the time of the record being processed.
 * Returns owned: a new json_object the caller frees with json_object_put, or
 * NULL when no profile has that key. Built straight from the stored blobs
 * (one parse per trait value with the store's tokener), so s is not const:
 * owning shard thread only. */
struct json_object;
struct json_object *prof_view_at(prof_store *s, const char *key, size_t key_len, int64_t now_us);
/* prof_view_at with now_us = the profile's lastSeen (its latest event time). */
struct json_object *prof_view(prof_store *s, const char *key, size_t key_len);

/* ---- consent (src/profile/consent.c) -------------------------------------
 * The one decision "may this person get a message of this topic on this
 * channel", for journeys (the CEL function consented()) and delivery alike.
 * docs/api.md ("Consent") is the user-facing statement of the rules; in
 * order, the first that applies decides:
 *   1. topic is in lim.consent->exempt               -> allowed, whatever the
 *      profile says (transactional mail reaches people who unsubscribed)
 *   2. a channel-level refusal ("email": false) newer than a topic-level grant
 *      ("email/news": true)                           -> refused (unsubscribe-all
 *      after subscribing to one topic)
 *   3. the topic-level entry "channel/topic"          -> its granted flag
 *   4. the channel-level entry "channel"              -> its granted flag
 *   5. no entry: channel in lim.consent->opt_out      -> allowed, else refused
 * Removed entries (null) count as absent; so does an entry whose value is
 * not {"granted":bool,...}. A key no profile has is a person with no entries.
 *
 * channel: NUL-terminated, 1..JD_MAX_CONSENT_NAME_BYTES bytes, no '/'; topic:
 * NUL-terminated, NULL or "" for the channel as a whole (rules 1-3 skipped).
 * A bad channel is refused ("invalid channel"). Writes the reason, one line,
 * NUL-terminated and cut to whycap, to why unless it is NULL or whycap is 0:
 *   "exempt topic transactional"
 *   "email/marketing granted by preference-center at 2026-03-02T15:00:00.000Z"
 *   "email refused by api at ... (after email/news was granted at ...)"
 *   "no consent for email/marketing"  /  "email is opt-out: no refusal of email/marketing"
 * Reads the store only (no clock, no allocation), so it is deterministic for
 * a given store and policy. Owning shard thread only (like every read). */
bool prof_consent_allows(const prof_store *s, const char *key, size_t kn, const char *channel, const char *topic,
                         char *why, size_t whycap);

/* ---- deletion and suppression ------------------------------------------
 * A deleted profile is gone from the store; its key and anonymousIds are kept
 * as suppressions so a late event does not recreate the person. An identify
 * carrying a suppressed id brings them back (a new profile): the rule for
 * people who return on purpose. Both are deterministic (time is an argument). */

/* Deletes the profile whose key, userId or anonymousId is id, and suppresses
 * its key and anonymousIds from at_us. Writes the deleted profile's key to
 * key_out (NUL-terminated, truncated to cap). JD_ENOTFOUND if none. */
int  prof_delete(prof_store *s, const char *id, size_t n, int64_t at_us, char *key_out, size_t cap);
/* Is there a profile whose key is exactly id (not only an anonymousId of one)? */
bool prof_is_key(const prof_store *s, const char *id, size_t n);
/* Suppresses id in this store (the partition that events for id route to,
 * when the deleted profile lived in another one). */
void prof_suppress(prof_store *s, const char *id, size_t n, int64_t at_us);
/* Is this event's person deleted (its key or its anonymousId suppressed)? An
 * identify lifts the suppression of both (and is then applied normally), so
 * call this before prof_apply: true means do not apply the event at all. */
bool prof_suppresses(prof_store *s, const ingest_event *ev);
size_t prof_suppressed_count(const prof_store *s);

/* Calls fn for every identity a profile holds besides its key: each
 * anonymousId (kind "anonymousId") and each identifier (its kind: a declared
 * one, or "userId" for further userIds), with the profile's key and whether
 * that key is a userId. Any order; the store must not change meanwhile. The
 * identity directory is rebuilt from this at start (src/engine/route.c). */
typedef void (*prof_identity_fn)(void *ctx, jd_str key, bool key_is_user, const char *kind, jd_str id);
void prof_store_each_identity(const prof_store *s, prof_identity_fn fn, void *ctx);

size_t prof_store_count(const prof_store *s);
/* Search (the console's "find a person"): calls fn with the key of every
 * profile whose trait `trait` is the string `value`, or a number or boolean
 * written as `value` ("42", "true"), until fn returns false. Scans the store:
 * O(profiles). */
void prof_store_find_trait(const prof_store *s, const char *trait, const char *value,
                           bool (*fn)(void *ctx, const char *key, size_t kn), void *ctx);
/* Calls fn with every profile key (any order; do not change the store meanwhile). */
void prof_store_each_key(const prof_store *s, void (*fn)(void *ctx, const char *key, size_t kn), void *ctx);
/* Bytes held by the store's profiles (an estimate, for metrics and benchmarks). */
size_t prof_store_bytes(const prof_store *s);

/* Snapshot codec. encode appends a self-describing blob (format version 8;
 * version 7 when no profile has a timeline, so that the release before can
 * read it); decode fills an empty store from versions 8 down to 1 (7: no
 * timelines; 6: no identifiers
 * or refusal notes; 5: windows as dense rings, converted; 4: no consent; 3:
 * no suppressions; 2: no computed values; 1: no tags) and returns
 * JD_ECORRUPT (where "byte N", the message names what) on bad bytes, leaving
 * the store empty. Computed values are keyed by a hash of their definition:
 * values whose definition is no longer in the store's prof_limits.computed
 * (removed or changed) are dropped, and new definitions start empty. */
int prof_store_encode(const prof_store *s, jd_buf *out);
int prof_store_decode(prof_store *s, const void *p, size_t n, jd_err *err);

/* ---- identity merges (src/profile/merge.c) --------------------------------
 * The identity directory decides that profile L (the loser) merges into S
 * (the survivor), possibly in another partition: the engine calls
 * prof_extract on L's store, then prof_merge_in on S's store with the blob.
 * Both stores must have the same prof_limits (the same computed
 * definitions). docs/internals/profile.md ("Merges") has the rules. */

/* Removes the profile whose key is exactly key (not an anonymousId lookup)
 * and appends its whole state to out as a self-contained blob (u8 format
 * version, then the snapshot's per-profile encoding): the blob may be kept
 * (in a log record) and merged later, by any later version. The key is not
 * suppressed, and by_anon slots that pointed at the profile go (another
 * profile listing the same anonymousId is not indexed in its place).
 * JD_ENOTFOUND if no profile has that key; JD_ELIMIT if out's ceiling is hit.
 * On either, out and the store are unchanged. Owning shard thread only. */
int prof_extract(prof_store *s, const char *key, size_t kn, jd_buf *out);

/* Merges a prof_extract blob (n == 0: the other side had no profile) into
 * the profile keyed `key`, creating it when absent (a userId key when
 * key_is_user, else an anonymousId key; with no blob it has seen no event:
 * firstSeen and lastSeen come from its first event). `from` (the loser's
 * key) becomes one of this profile's identities: an anonymousId when
 * !from_is_user (the same rule and max_anonymous_ids limit as prof_apply),
 * else an identifier of kind "userId" (as prof_add_identifier). The loser's
 * own anonymousIds, identifiers and refusal notes are added too, and its
 * data merged (counts add, traits later-wins, ...); what a limit drops is
 * counted in "limited". All or nothing: the blob is fully decoded and checked
 * (it is input) before anything changes. Errors:
 *   JD_EINVAL    empty or too long key or from, from equal to key, a userId
 *                from longer than 255 bytes, or a blob of another profile
 *                than from (where "key" or "from")
 *   JD_ECORRUPT  bad bytes: where "merge+<byte offset>", the message names
 *                what ("profile merge: truncated key at byte 5")
 * Deterministic (no clock). key, from and blob are borrowed for the call.
 * Owning shard thread only. */
int prof_merge_in(prof_store *s, const char *key, size_t kn, bool key_is_user,
                  const char *from, size_t fn, bool from_is_user,
                  const void *blob, size_t n, jd_err *err);

/* Identifiers beyond the key and anonymousIds: declared ones (kind "email",
 * "phone", ... from the configuration) and further userIds (kind "userId",
 * when a configuration allows more than one). kind is NUL-terminated, 1..31
 * bytes of [a-zA-Z0-9_]; value is 1..255 bytes. Adds (kind, value) if not
 * present (a userId profile's own key counts as its "userId"), after the
 * others: they are listed in the order added. Errors, in this order:
 * JD_ENOTFOUND no profile keyed key (by_key only); JD_EINVAL bad kind or
 * value; JD_ELIMIT past PROF_MAX_IDENTIFIERS per profile (report it as
 * "profiles.identifiers": there is no jd_err here). The directory enforces
 * the configured per-kind limits; this is only a memory bound. Deterministic;
 * owning shard thread only. */
#define PROF_MAX_IDENTIFIERS 32
int prof_add_identifier(prof_store *s, const char *key, size_t kn, const char *kind,
                        const char *value, size_t vn);
/* Removes (kind, value) if present (JD_OK either way). JD_ENOTFOUND if no
 * profile keyed key; JD_EINVAL bad kind or value. */
int prof_remove_identifier(prof_store *s, const char *key, size_t kn, const char *kind,
                           const char *value, size_t vn);

/* A merge the directory refused (for example a second userId past
 * identity.limits.userId): recorded on the profile so that it is visible in
 * its JSON ("mergesRefused"), never silently applied. Notes are kept in time
 * order (equal times: the order noted); only the latest PROF_MAX_REFUSALS
 * stay, the oldest go. other: the other profile's key or the refused
 * identifier, 1..1024 bytes; reason: a NUL-terminated sentence naming the
 * limit, 1..255 bytes; at_us: the record's time (never a clock read).
 * JD_ENOTFOUND if no profile keyed key; JD_EINVAL bad other or reason. */
#define PROF_MAX_REFUSALS 8
int prof_note_refused(prof_store *s, const char *key, size_t kn, const char *other, size_t on,
                      const char *reason, int64_t at_us);

#endif
