/* src/profile/profile_int.h -- private to src/profile/: the in-memory layout
 * that profile.c (apply, JSON) and snapshot.c (codec) share.
 *
 * docs/internals/profile.md draws these layouts with byte offsets. In short:
 *   prof        fixed 48 bytes + 3 pointers + the key inline (one allocation),
 *               found by key through the store's prof_index (index.c)
 *   vec         anonymousIds and per-name event counts (one allocation, NULL
 *               while both are empty)
 *   prof_rich   traits, groups, tags, computed trait values, consent, and
 *               identifiers with refusal notes (NULL until an identify,
 *               group, update, computed trait's event or merge brings any)
 *   tl          the timeline (timeline.c), NULL while empty
 * Every multi-byte integer inside a blob is little-endian, so the snapshot
 * writes blobs as they are.
 */
#ifndef JOURNEYD_PROFILE_INT_H
#define JOURNEYD_PROFILE_INT_H

#include "journeyd/limits.h"
#include "journeyd/profile.h"

#include <json-c/json.h>
#include <string.h>

#define PROF_NTYPES 6            /* track .. alias, in ingest_type order */
#define PROF_VEC_MAX 0xffffu     /* vec counts are u16: limits are clamped to it */

enum {
    PROF_F_USER = 1,       /* the key is the userId */
    PROF_F_KEY_ANON = 2,   /* the key is an anonymousId (shown first in anonymousIds) */
    PROF_F_ALL = 3,
};

/* Traits, groups, tags, computed values, consent and identities: rare, so
 * kept out of the fixed part.
 * traits: a "tset" blob (tset.c has its entries: a shared key id or the key,
 *   the value's compact JSON text, string quotes left out, and set_us as a
 *   delta); a tombstone (removed by null at set_us) has no value.
 * groups: entries of
 *     u32 gid_len | u32 tset_len | gid[gid_len] | tset[tset_len]
 * tags: entries of, in the order added (distinct, 1..PROF_MAX_TAG_BYTES, no NUL)
 *     u32 len | i64 set_us | tag[len]        set_us: when it was added
 * computed: entries of (computed.c has the payloads; one per definition at most)
 *     u8 def (index in the store's definitions) | u32 len | payload[len]
 * idents: identifiers (in the order added), then refusal notes (oldest first):
 *     u8 1 | u8 kind_len | u8 value_len | kind | value                 (PROF_ID_HDR)
 *     u8 2 | u8 reason_len | u16 other_len | i64 at_us | other | reason  (PROF_NOTE_HDR)
 *   (merge.c; one blob for both so that the struct stays 72 bytes, an
 *   80-byte malloc chunk: a seventh pointer would make it 96)            */
struct prof_rich {
    uint8_t *traits, *groups, *tags, *computed, *consent, *idents;   /* NULL when the length is 0 */
    uint32_t traits_len, groups_len, tags_len, computed_len, consent_len, idents_len;
};
/* consent: a tset (like traits) keyed "channel/topic" whose values are
 * {"granted":bool,"source":"..."}; later wins per key, null removes. */

/* vec: u16 n_ids | u16 n_evs | n_ids x (uv len | bytes) | n_evs x (u32 count | uv len | bytes)
 * (uv = LEB128 varint, one byte for lengths under 128). */
typedef struct prof {
    int64_t  first_us, last_us;
    uint32_t counts[PROF_NTYPES];
    uint32_t limited;
    uint32_t key_len : 30;
    uint32_t flags : 2;
    uint8_t *vec;
    struct prof_rich *rich;
    uint8_t *tl;                /* the timeline (timeline.c), NULL while empty */
    char     key[];             /* key_len bytes, then a NUL */
} prof;

/* The shared trait key names of a store (tset.c): id -> name, name -> id.
 * Grows only, at most JD_MAX_SHARED_KEYS names of at most
 * JD_MAX_SHARED_KEY_BYTES; not counted in heap (a store's fixed cost, like
 * its tokener). */
typedef struct prof_keys {
    uint32_t n, cap;
    char   **name;        /* n NUL-terminated names, owned; name[id] */
    uint8_t *len;         /* len[id]: name[id]'s length (at most JD_MAX_SHARED_KEY_BYTES) */
    jd_map  *ids;         /* name bytes (borrowed from name[]) -> (void *)(id + 1) */
} prof_keys;

/* The profiles by key (index.c): open addressing with linear probing over
 * profile pointers, 8 bytes a slot plus one byte of hash; the key bytes are
 * read from the profile itself. */
typedef struct prof_index {
    prof   **slot;        /* cap slots, NULL when free */
    uint8_t *tag;         /* cap bytes: 0x80 | 7 bits of the key's hash when used, 0 when free */
    uint32_t cap, len;    /* cap: 0 or a power of two; len < cap * 3 / 4 */
} prof_index;

struct prof_store {
    prof_limits lim;
    prof_index by_key;    /* key -> prof (key bytes: prof.key) */
    prof_keys keys;       /* shared trait key names (tset.c) */
    jd_map *by_anon;      /* anonymousId -> first prof that recorded it (bytes: its vec) */
    size_t  heap;         /* estimated heap bytes of all profiles (prof__alloc_size) */
    json_tokener *tok;    /* reused: the store belongs to one thread */
    jd_buf  scratch;      /* reused for building blobs */
    jd_map *suppressed;   /* id -> prof_supp: deleted ids (key and anonymousIds), profile.c (11) */
    bool    computed_ring;   /* decoding a snapshot before version 6: windows are dense rings */
};

/* A deleted person's id: events for it are not applied until an identify
 * brings them back (profile.c invariant 11). */
typedef struct prof_supp {
    int64_t  at_us;       /* when the deletion was recorded */
    uint32_t len;
    char     id[];        /* the map's key bytes */
} prof_supp;
/* Records a suppression (replacing one for the same id). */
void prof__suppress(prof_store *s, const char *id, size_t n, int64_t at_us);

/* ---- little-endian and varint helpers (blobs are trusted in memory) ---- */

static inline uint32_t prof__rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void prof__wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint16_t prof__rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline void prof__wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline int64_t prof__rd64(const uint8_t *p)
{
    return (int64_t)((uint64_t)prof__rd32(p) | (uint64_t)prof__rd32(p + 4) << 32);
}
static inline void prof__wr64(uint8_t *p, int64_t v)
{
    prof__wr32(p, (uint32_t)(uint64_t)v);
    prof__wr32(p + 4, (uint32_t)((uint64_t)v >> 32));
}

static inline size_t prof__uv_len(uint32_t v)
{
    size_t n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}
static inline size_t prof__uv_put(uint8_t *p, uint32_t v)
{
    size_t n = 0;
    while (v >= 0x80) { p[n++] = (uint8_t)(v | 0x80); v >>= 7; }
    p[n++] = (uint8_t)v;
    return n;
}
static inline size_t prof__uv_get(const uint8_t *p, uint32_t *v)
{
    uint32_t r = 0;
    size_t n = 0;
    for (unsigned shift = 0;; shift += 7) {
        uint8_t b = p[n++];
        r |= (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    *v = r;
    return n;
}

static inline size_t prof__uv64_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) { p[n++] = (uint8_t)(v | 0x80); v >>= 7; }
    p[n++] = (uint8_t)v;
    return n;
}
static inline size_t prof__uv64_get(const uint8_t *p, uint64_t *v)
{
    uint64_t r = 0;
    size_t n = 0;
    for (unsigned shift = 0;; shift += 7) {
        uint8_t b = p[n++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    *v = r;
    return n;
}

#define PROF_TSET_HDR 16u   /* the snapshot's tset entry: klen, vlen, set_us */
#define PROF_GRP_HDR  8u    /* gid_len, tset_len */
#define PROF_TAG_HDR  12u   /* len, set_us */
#define PROF_ID_HDR   3u    /* type, kind_len, value_len */
#define PROF_NOTE_HDR 12u   /* type, reason_len, other_len, at_us */
#define PROF_ID_ENTRY   1u
#define PROF_NOTE_ENTRY 2u
#define PROF_MAX_KIND_BYTES   31u
#define PROF_MAX_ID_VALUE     255u
#define PROF_MAX_NOTE_OTHER   1024u   /* a key or identifier a refusal names */
#define PROF_MAX_NOTE_REASON  255u

/* ---- the profile index (index.c) ---- */

void  prof__index_init(prof_index *x);
void  prof__index_release(prof_index *x);
prof *prof__index_get(const prof_index *x, const char *key, size_t kn);
/* Adds p (its key not present). */
void  prof__index_put(prof_index *x, prof *p);
/* Removes p (present). */
void  prof__index_del(prof_index *x, const prof *p);
/* Slot bytes, as heap counts them. */
size_t prof__index_bytes(const prof_index *x);
/* Every profile, in slot order: for (size_t i = 0; (p = prof__index_next(x, &i));) */
static inline prof *prof__index_next(const prof_index *x, size_t *pos)
{
    while (*pos < x->cap) {
        prof *p = x->slot[(*pos)++];
        if (p) return p;
    }
    return NULL;
}

/* ---- trait sets (tset.c) ----
 * A tset in memory is a list of entries, in the order keys were first set:
 *     u16 kid | uv64 vhdr | uv64 dt | [uv klen | key | 0 when kid is PROF_KID_OWN] | value
 *   kid   the key's id among the store's shared names (prof_keys), or
 *         PROF_KID_OWN when the key follows in the entry
 *   vhdr  value length << 3 | string << 2 | unit: string 1 when the value is a
 *         JSON string kept without its two quotes (the escapes stay);
 *         length 0 with string 0 is a tombstone
 *   dt    zigzag(delta / unit's µs) as uv64, delta = set_us minus the
 *         previous entry's set_us (the first entry's: PROF_TSET_EPOCH), unit
 *         0 µs, 1 ms, 2 s (the coarsest that divides delta)
 * The snapshot and the merge blob keep the old self-describing form
 * (u32 klen | u32 vlen | i64 set_us | key | 0 | value, the JSON text whole):
 * prof__tset_disk writes it, prof__tset_from_disk reads it back. */
#define PROF_KID_OWN    0xffffu
#define PROF_TSET_EPOCH (INT64_C(1735689600) * 1000000)   /* 2025-01-01T00:00:00Z */

typedef struct prof_tent {
    uint16_t    kid;
    const char *k;        /* the key, NUL-terminated (kl bytes before the NUL) */
    uint32_t    kl;
    const char *v;        /* the value's JSON text, without its quotes when str */
    uint32_t    vl;
    bool        str;
    int64_t     at;       /* set_us */
} prof_tent;

typedef struct prof_titer {
    const uint8_t *q, *end;
    int64_t at;           /* the last entry's set_us */
} prof_titer;

static inline void prof__titer_init(prof_titer *it, const uint8_t *t, size_t n)
{
    it->q = t;
    it->end = t ? t + n : NULL;
    it->at = PROF_TSET_EPOCH;
}
/* Reads the next entry of a trusted tset into e; false at the end. */
bool prof__tset_next(const prof_store *s, prof_titer *it, prof_tent *e);
/* Appends e (kid, k/kl when PROF_KID_OWN, v, vl, str, at) to a tset being
 * built in b; *prev is the last entry's set_us (PROF_TSET_EPOCH to start). */
void prof__tset_put(jd_buf *b, int64_t *prev, const prof_tent *e);
/* The shared id of key (k, kl) (NUL-free), sharing it when there is room;
 * PROF_KID_OWN when it is not shared. */
uint16_t prof__key_id(prof_store *s, const char *k, size_t kl);
/* Fills e's value from JSON text (t, n) (n 0: a tombstone). */
void prof__tent_set_value(prof_tent *e, const char *t, uint32_t n);
/* The value's JSON text length (0 for a tombstone). */
static inline uint32_t prof__tent_json_len(const prof_tent *e) { return e->vl + (e->str ? 2u : 0u); }
/* Appends the value's JSON text (less its last byte when cut_last). */
int prof__tent_json(jd_buf *b, const prof_tent *e, bool cut_last);
/* The value as a new json_object (owned; NULL for null). Clobbers scratch. */
json_object *prof__tent_object(prof_store *s, const prof_tent *e);
/* Appends the snapshot form of the tset (t, n); its length. */
size_t prof__tset_disk_size(const prof_store *s, const uint8_t *t, size_t n);
void   prof__tset_disk(const prof_store *s, const uint8_t *t, size_t n, jd_buf *b);
/* Appends the in-memory form of a checked snapshot tset (t, n) to b. */
void   prof__tset_from_disk(prof_store *s, const uint8_t *t, size_t n, jd_buf *b);
/* The same for a groups blob: each group's tset converted, its length fixed. */
size_t prof__groups_disk_size(const prof_store *s, const uint8_t *g, size_t n);
void   prof__groups_disk(const prof_store *s, const uint8_t *g, size_t n, jd_buf *b);
void   prof__groups_from_disk(prof_store *s, const uint8_t *g, size_t n, jd_buf *b);
void   prof__keys_release(prof_keys *k);

/* ---- computed trait definitions (computed.c) ---- */

typedef enum {
    PROF_CT_COUNT = 1, PROF_CT_SUM, PROF_CT_MIN, PROF_CT_MAX, PROF_CT_LAST,
    PROF_CT_FIRST_SEEN, PROF_CT_LAST_SEEN,
    PROF_CT_KIND_END_
} prof_ct_kind;

struct prof_cdef {
    char    *name, *event, *property;   /* owned; property NULL when the kind takes none */
    uint32_t event_len;
    prof_ct_kind kind;
    bool     bucketed;                  /* windowed count/sum/min/max/first_seen */
    uint32_t buckets;                   /* windowed: B; 0 all time */
    uint64_t window_us, width_us;       /* windowed: W and W / B; 0 all time */
    uint64_t id;                        /* hash of name, kind, event, property, window, buckets */
};

struct prof_computed_defs {
    uint32_t n;
    struct prof_cdef d[JD_MAX_COMPUTED];
    uint64_t masks[JD_MAX_COMPUTED];    /* by_event's values: bit i = definition i */
    jd_map  *by_event;                  /* event name -> &masks[j] (key bytes: a def's event) */
};

/* The definitions counting event name `ev` as a bit mask (0: none). */
uint64_t prof__computed_mask(const prof_computed_defs *d, jd_str ev);
/* True if one of the definitions in mask reads a property. */
bool prof__computed_needs_props(const prof_computed_defs *d, uint64_t mask);
/* Applies one track event at ts to p's computed values for the definitions
 * in mask. props is the event's "properties" object (NULL if none). */
void prof__computed_apply(prof_store *s, prof *p, uint64_t mask, json_object *props, int64_t ts);
/* Appends {"name":value,...} as prof_get_json writes it, as of now_us. */
int prof__computed_json(const prof_store *s, const prof *p, int64_t now_us, jd_buf *b);
/* The same as a new json_object (owned), for prof_view_at. */
json_object *prof__computed_view(prof_store *s, const prof *p, int64_t now_us);
/* Snapshot form: u32 len | entries of (u64 definition id | u32 len | payload). */
void prof__computed_encode(const prof_store *s, const prof *p, jd_buf *b);
/* Turns a snapshot section (n bytes) into p's in-memory blob for s's
 * definitions, dropping values of unknown definitions. On JD_OK *out is owned
 * (NULL when empty). On JD_ECORRUPT *bad is the offset in src and *what says
 * what was wrong; nothing is allocated. */
int prof__computed_decode(prof_store *s, const uint8_t *src, size_t n, uint8_t **out, uint32_t *out_len,
                          size_t *bad, const char **what);
/* Merges the loser's in-memory computed blob (lb, ll: the same store's
 * definitions) into the survivor's (sb, sl) by the rules of merge.c. Returns
 * owned the new blob (NULL when empty; its exact length in *out_len). Pure. */
uint8_t *prof__computed_merge(const prof_store *s, const uint8_t *sb, uint32_t sl, const uint8_t *lb, uint32_t ll,
                              uint32_t *out_len);

/* ---- shared between profile.c and snapshot.c ---- */

/* What malloc(n) really takes (glibc chunks: 8 bytes of header, 16-byte
 * granules, 32 minimum). An estimate: mimalloc's classes are close. */
size_t prof__alloc_size(size_t n);
size_t prof__vec_size(const uint8_t *vec);
/* Creates an empty profile under key (not present yet) and indexes it. */
prof *prof__insert(prof_store *s, const char *key, size_t kn, unsigned flags);
/* A new profile that belongs to no store yet (a decoded one, before
 * prof__adopt; or a merge's loser). Free with prof__free. */
prof *prof__new(const char *key, size_t kn, unsigned flags);
void prof__free(prof *p);
/* Puts a detached profile (key not present) into by_key and adds its bytes
 * to heap. Its anonymousIds are not indexed: the caller does (2). */
void prof__adopt(prof_store *s, prof *p);
/* Heap bytes of p and everything it owns (invariant 6's terms). */
size_t prof__bytes(const prof *p);
/* Takes p out of the store (by_key, its by_anon slots, heap) and frees it. */
void prof__remove(prof_store *s, prof *p);
/* Bytes of a vec's ids part (4-byte header included) and the whole vec. */
size_t prof__vec_ids_size(const uint8_t *vec);
/* Drops every profile: the store is empty again (decode's error path). */
void prof__clear(prof_store *s);
/* Replaces p's vec with `nv` (owned, or NULL) and re-points the anonymousId
 * index at the new bytes; frees the old vec. */
void prof__vec_replace(prof_store *s, prof *p, uint8_t *nv);
/* Records id (bytes inside p's vec) in by_anon unless it is a key or owned (2). */
void prof__index_anon(prof_store *s, prof *p, const char *id, size_t n);
/* Makes nr p's rich part. Each blob in nr is either p's current one (kept) or
 * a new owned one (taken; the current one is freed); NULL when its length is
 * 0. Frees p->rich when all four are empty. Keeps heap exact (invariant 6). */
void prof__rich_set(prof_store *s, prof *p, const struct prof_rich *nr);
/* Parses t (n bytes) as exactly one strict JSON value, using the store's
 * tokener and scratch (so scratch is clobbered). Sets *ok; returns owned the
 * value (json_object_put), NULL for a JSON null or when !*ok. Wrapped in
 * [...] so that json-c sees where a bare number ends. */
json_object *prof__parse_value(prof_store *s, const void *t, size_t n, bool *ok);
/* A stored JSON value (one strict value, checked when stored) as a new
 * json_object; NULL for null. Clobbers scratch. */
json_object *prof__stored_value(prof_store *s, const char *v, uint32_t vl);
/* The JSON size a tset counts against max_traits_bytes (profile.c (4)). */
size_t prof__tset_json_size(const prof_store *s, const uint8_t *t, size_t n);
/* Appends to b, as prof_get_json writes them: ,"identifiers":{...} when
 * !notes, ,"mergesRefused":[...] when notes; nothing when p has none. A
 * jd_buf error code (non-zero) when b's ceiling is hit. merge.c. */
int prof__idents_json(const prof *p, jd_buf *b, bool notes);
/* {"kind":["v",...]} as a new json_object (owned), NULL when none. merge.c. */
json_object *prof__idents_view(const prof *p);

/* ---- the per-profile codec (snapshot.c), shared by the store snapshot and
 * the merge blob (merge.c) ---- */

/* The per-profile format's version: a snapshot's first byte, and a merge
 * blob's (snapshot.c lists what each version added). */
#define PROF_CODEC_VERSION 8
/* What encode writes when no profile it writes has a timeline: a store (or a
 * merge blob) without one stays readable by the release before version 8. */
#define PROF_CODEC_VERSION_NO_TL 7

typedef struct prof_reader {
    const uint8_t *p;
    size_t n, off;
    jd_err *err;
    uint8_t version;      /* of the blob being read */
    const char *name;     /* "profile snapshot" or "profile merge" (messages) */
    const char *where;    /* "byte " or "merge+": err->where is where + offset */
} prof_reader;

/* Appends p in the snapshot's per-profile form of `version`:
 * PROF_CODEC_VERSION, or PROF_CODEC_VERSION_NO_TL when p has no timeline. */
void prof__encode_one(const prof_store *s, const prof *p, uint8_t version, jd_buf *b);
/* Reads one profile at r into a new detached profile (*out, owned: add it
 * with prof__adopt or free it with prof__free). idx gets one byte per
 * anonymousId: its "indexed" flag. *key_at is the offset of the key length.
 * On JD_ECORRUPT nothing is allocated and err says where. */
int prof__decode_one(prof_store *s, prof_reader *r, prof **out, jd_buf *idx, size_t *key_at);
/* Fills err for bad bytes at offset `at` of r's blob. */
int prof__corrupt(prof_reader *r, size_t at, const char *what);
/* Checks an idents blob (merge.c): NULL if good, else what is wrong, with
 * *bad its offset in t. */
const char *prof__idents_check(const uint8_t *t, size_t n, size_t *bad);

/* ---- the timeline (timeline.c) ---- */

/* Bytes of a trusted timeline blob (0 for NULL). */
size_t prof__tl_size(const uint8_t *t);
/* A new timeline allocation holding (b, n) (NULL when n is 0): always the
 * whole malloc chunk n asks for, so that heap counts prof__alloc_size(n). */
uint8_t *prof__tl_blob(const void *b, size_t n);
/* Checks a timeline blob read from disk against the profile's vec (its
 * event name indexes): NULL if good, else what is wrong, *bad its offset. */
const char *prof__tl_check(const uint8_t *t, size_t n, const uint8_t *vec, size_t *bad);
/* Records ev on p's timeline (lim.timeline 0: nothing). name_idx: the
 * index of a track event's name among p's counted names, -1 if not counted. */
void prof__tl_event(prof_store *s, prof *p, const ingest_event *ev, int name_idx);
/* The merged timeline of survivor sp (may be NULL) and loser lp (may be
 * NULL), newest lim.timeline by time (S's first on equal times), names
 * indexed against nv, the merged vec. Returns owned (NULL when empty;
 * *len its length). Pure. */
uint8_t *prof__tl_merge(const prof_store *s, const prof *sp, const prof *lp, const uint8_t *nv, uint32_t *len);
/* Appends ,"timeline":[...] (nothing when empty or lim.timeline is 0). A
 * jd_buf error code when b's ceiling is hit. */
int prof__tl_json(const prof_store *s, const prof *p, jd_buf *b);

/* Has p seen an event? A profile a merge created may have none yet: its
 * first event sets firstSeen and lastSeen. */
static inline bool prof__seen(const prof *p)
{
    for (int i = 0; i < PROF_NTYPES; i++)
        if (p->counts[i]) return true;
    return false;
}

/* p's rich part by value (all empty when p->rich is NULL). */
static inline struct prof_rich prof__rich_get(const prof *p)
{
    struct prof_rich r = { 0 };
    if (p->rich) r = *p->rich;
    return r;
}

#endif
