/* include/journeyd/identity.h -- the identity directory: which profile an
 * identifier belongs to.
 *
 * Owns: for every identifier that is not its own profile's key (an
 * anonymousId merged into a userId's profile, an email, a second userId), the
 * key of the profile it belongs to, and for each such profile the list of
 * those identifiers. An identifier the directory does not hold is its own key:
 * a userId or an anonymousId seen alone needs no entry, so the directory holds
 * only links, not every person.
 * Decides, for the identifiers one event carries, which profile the event lands
 * on, which profiles merge into it and which merges or identifiers the limits
 * refuse (idn_resolve). Every change is also available as a plain operation
 * (idn_apply_move, idn_apply_attach, idn_forget) so that replaying the log
 * rebuilds the directory from recorded decisions, never by deciding again
 * under a configuration that may have changed.
 * Identifiers of every kind share one namespace: an email equal to some
 * userId would resolve to the email's profile (docs/identity.md).
 * Threading: an idn_dir belongs to one thread (the committer: the routing edge).
 * Pure: no clock, no randomness.
 */
#ifndef JOURNEYD_IDENTITY_H
#define JOURNEYD_IDENTITY_H

#include "journeyd/base.h"

typedef struct idn_dir idn_dir;

/* Kinds 0 and 1 are fixed; declared kinds (identity.identifiers) follow in
 * configuration order. The directory also learns kinds it meets only in
 * recorded decisions (a kind since removed from the configuration). */
enum { IDN_USER = 0, IDN_ANON = 1, IDN_DECLARED = 2 };
#define IDN_MAX_KINDS 16
#define IDN_MAX_EVENT_IDS 8        /* identifiers one event may carry */
#define IDN_MAX_KIND_BYTES 31
#define IDN_MAX_ID_BYTES 255       /* longer declared values are not identifiers */

typedef struct idn_opts {
    uint32_t max_user_ids;          /* identity.max_user_ids */
    uint32_t max_anonymous_ids;     /* profiles.max_anonymous_ids */
    uint32_t max_per_identifier;    /* identity.max_per_identifier: each declared kind */
    uint32_t ndeclared;             /* at most IDN_MAX_KINDS - 2 */
    char *const *declared;          /* kind names, borrowed for the call to idn_create */
} idn_opts;

typedef struct idn_id {
    uint32_t kind;                  /* IDN_USER, IDN_ANON or a declared kind */
    jd_str   v;
} idn_id;

typedef struct idn_refusal {
    jd_str other;                   /* the other profile's key, or the refused identifier */
    bool   is_key;                  /* other is a profile (it is told too) */
    char   reason[200];             /* names the limit, e.g. "... identity.max_user_ids (1)" */
} idn_refusal;

/* What idn_resolve decided for one event. Strings point into the ids passed
 * or into the directory, and stay valid until the next call that changes it. */
typedef struct idn_plan {
    jd_str   key;                   /* the profile the event lands on */
    bool     key_is_user;
    bool     anon_refused;          /* the event's anonymousId stays with another profile */
    uint32_t nmoves;                /* profiles merged into key, in order */
    struct { jd_str from; bool from_is_user; } moves[IDN_MAX_EVENT_IDS];
    uint32_t nattach;               /* declared identifiers newly linked to key */
    idn_id   attach[IDN_MAX_EVENT_IDS];
    uint32_t nrefused;              /* merges and identifiers the limits refused */
    idn_refusal refused[IDN_MAX_EVENT_IDS];
} idn_plan;

/* Returns owned (idn_destroy). Kind names are copied. */
idn_dir *idn_create(const idn_opts *o);
void idn_destroy(idn_dir *d);

/* The kind number of a name ("userId", "anonymousId", a declared one), adding
 * it when new; UINT32_MAX when the table is full or the name is not
 * 1..IDN_MAX_KIND_BYTES of [A-Za-z0-9_]. */
uint32_t idn_kind(idn_dir *d, const char *name, size_t n);
const char *idn_kind_name(const idn_dir *d, uint32_t kind);
uint32_t idn_declared_count(const idn_dir *d);   /* kinds from the configuration */

/* Decides and applies. ids are in priority order: the userId, then declared
 * identifiers in configuration order, then the anonymousId, then an alias's
 * previousId (treated as an anonymousId unless the directory knows better).
 * The event lands on the profile of the first identifier that resolves;
 * every other profile found is merged into it unless the sum of identifiers
 * of some kind would pass its limit, and unlinked declared identifiers are
 * linked to it within their limit. n >= 1, n <= IDN_MAX_EVENT_IDS, and the
 * first userId or anonymousId must be non-empty. */
void idn_resolve(idn_dir *d, const idn_id *ids, size_t n, idn_plan *plan);

/* The key of the profile id belongs to (itself when the directory does not
 * hold it); *is_user says whether that key is a userId (unknown keys: false). */
jd_str idn_lookup(const idn_dir *d, const char *id, size_t n, bool *is_user);

/* Recorded decisions (replay applies them as they were made). */
void idn_apply_move(idn_dir *d, jd_str from, bool from_is_user, jd_str to, bool to_is_user);
void idn_apply_attach(idn_dir *d, jd_str key, bool key_is_user, uint32_t kind, jd_str v);
/* A deleted profile: id (any of its identifiers) and every identifier linked
 * with it leave the directory. */
void idn_forget(idn_dir *d, const char *id, size_t n);

/* Calls fn for every identifier linked to key (not the key itself). */
void idn_each(const idn_dir *d, const char *key, size_t n,
              void (*fn)(void *ctx, uint32_t kind, jd_str v), void *ctx);

size_t idn_entries(const idn_dir *d);   /* identifiers held */
size_t idn_bytes(const idn_dir *d);     /* an estimate of its heap */

/* Not in snapshots: the engine rebuilds it from the identities the profiles
 * hold (prof_store_each_identity), which are the same links. */

#endif
