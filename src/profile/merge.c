/* src/profile/merge.c -- identity merges: a profile leaves one partition's
 * store as a blob (prof_extract) and is folded into another profile
 * (prof_merge_in); identifiers beyond the key and anonymousIds
 * (prof_add_identifier); refused merges kept visible (prof_note_refused).
 * The identity directory (the committer) decides who merges into whom; this
 * file only applies its decisions. docs/internals/profile.md ("Merges") has
 * the rules with examples.
 *
 * A merge folds the loser L into the survivor S:
 *   counts, limited       add (saturating)        firstSeen, lastSeen   min, max
 *   anonymousIds          S's, then `from` (an anonymous loser's key), then
 *                         L's; past max_anonymous_ids dropped (limited)
 *   event names           counts add; new names past max_event_names dropped (limited)
 *   traits, consent       per key the later set_us wins (tombstones too),
 *                         equal times S's; a result past max_traits_bytes
 *                         keeps S's set whole (limited + 1)
 *   groups                per groupId the same; new groups past max_groups dropped
 *   tags                  S's, then L's new ones; past max_tags dropped (limited)
 *   computed values       computed.c (prof__computed_merge)
 *   identifiers           S's, then `from` (a userId loser), then L's; past
 *                         PROF_MAX_IDENTIFIERS dropped (limited)
 *   refusal notes         both, by time, the latest PROF_MAX_REFUSALS
 *   timeline              both, by time (S's first on equal times), the
 *                         newest lim.timeline (timeline.c prof__tl_merge)
 *
 * Invariants:
 *  (1) prof_merge_in is all or nothing: the blob is decoded (and checked as
 *      a snapshot's bytes are: it is input) and every new blob is built
 *      aside before the survivor changes; after that nothing can fail.
 *  (2) A merge reads no clock: the result is a function of the two
 *      profiles, so replaying the merge record rebuilds it.
 *  (3) The idents blob holds its identifiers first, distinct (kind, value),
 *      at most PROF_MAX_IDENTIFIERS, then at most PROF_MAX_REFUSALS notes in
 *      ascending at_us (equal times: the order noted). A userId profile never
 *      lists its own key as a "userId" identifier.
 *  (4) New anonymousIds go through profile.c's rules: by_anon keeps its first
 *      owner (profile.c (2)), and heap stays exact (profile.c (6)): every
 *      blob is an exact allocation handed to prof__rich_set / prof__vec_replace.
 */
#include "profile_int.h"

#include <stdio.h>
#include <stdlib.h>

enum { U_SAME, U_CHANGED, U_OVER };

static uint32_t add_sat(uint32_t a, uint32_t b) { return a > UINT32_MAX - b ? UINT32_MAX : a + b; }

/* An exact copy of b's bytes (NULL when empty): heap counts the length. */
static uint8_t *buf_blob(const jd_buf *b, uint32_t *len)
{
    JD_ASSERT(b->len <= UINT32_MAX);
    *len = (uint32_t)b->len;
    return b->len ? memcpy(jd_xmalloc(b->len), b->data, b->len) : NULL;
}

/* ---- the idents blob: identifiers and refusal notes (invariant 3) -------- */

typedef struct ident {
    unsigned type;                /* PROF_ID_ENTRY or PROF_NOTE_ENTRY */
    size_t size;                  /* bytes of the whole entry */
    const char *kind, *value;     /* identifier */
    uint32_t kind_len, value_len;
    const char *other, *reason;   /* note */
    uint32_t other_len, reason_len;
    int64_t at_us;
} ident;

/* Reads the entry at q (a trusted, checked blob). */
static ident ident_at(const uint8_t *q)
{
    ident e = { 0 };
    e.type = q[0];
    if (e.type == PROF_ID_ENTRY) {
        e.kind_len = q[1];
        e.value_len = q[2];
        e.kind = (const char *)q + PROF_ID_HDR;
        e.value = e.kind + e.kind_len;
        e.size = PROF_ID_HDR + e.kind_len + e.value_len;
    } else {
        e.reason_len = q[1];
        e.other_len = prof__rd16(q + 2);
        e.at_us = prof__rd64(q + 4);
        e.other = (const char *)q + PROF_NOTE_HDR;
        e.reason = e.other + e.other_len;
        e.size = PROF_NOTE_HDR + e.other_len + e.reason_len;
    }
    return e;
}

/* Walks the entries of (t, n) with e at offset i. */
#define IDENTS_EACH(e, i, t, n) \
    for (size_t i = 0; (t) && i < (n) && ((e) = ident_at((t) + i), 1); i += (e).size)

static void put_ident(jd_buf *b, const char *kind, size_t kl, const char *value, size_t vl)
{
    uint8_t h[PROF_ID_HDR] = { PROF_ID_ENTRY, (uint8_t)kl, (uint8_t)vl };
    jd_buf_add(b, h, sizeof h);
    jd_buf_add(b, kind, kl);
    jd_buf_add(b, value, vl);
}

static void put_note(jd_buf *b, const char *other, size_t ol, const char *reason, size_t rl, int64_t at_us)
{
    uint8_t h[PROF_NOTE_HDR] = { PROF_NOTE_ENTRY, (uint8_t)rl };
    prof__wr16(h + 2, (uint16_t)ol);
    prof__wr64(h + 4, at_us);
    jd_buf_add(b, h, sizeof h);
    jd_buf_add(b, other, ol);
    jd_buf_add(b, reason, rl);
}

static bool kind_ok(const char *k, size_t n)
{
    if (n == 0 || n > PROF_MAX_KIND_BYTES) return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

static bool ident_is(const ident *e, const char *kind, size_t kl, const char *value, size_t vl)
{
    return e->type == PROF_ID_ENTRY && e->kind_len == kl && e->value_len == vl && memcmp(e->kind, kind, kl) == 0 &&
           memcmp(e->value, value, vl) == 0;
}

/* Is (kind, value) already one of p's identities as far as (3) goes: listed,
 * or the userId that is p's key? */
static bool has_ident(const uint8_t *t, size_t n, const char *key, size_t kn, unsigned flags, const char *kind,
                      size_t kl, const char *value, size_t vl)
{
    if ((flags & PROF_F_USER) && kl == 6 && memcmp(kind, "userId", 6) == 0 && vl == kn && memcmp(value, key, kn) == 0)
        return true;
    ident e;
    IDENTS_EACH(e, i_, t, n)
        if (ident_is(&e, kind, kl, value, vl)) return true;
    return false;
}

const char *prof__idents_check(const uint8_t *t, size_t n, size_t *bad)
{
    unsigned ids = 0, notes = 0;
    int64_t last = INT64_MIN;
    for (size_t i = 0; i < n;) {
        *bad = i;
        const uint8_t *q = t + i;
        if (q[0] == PROF_ID_ENTRY) {
            if (n - i < PROF_ID_HDR) return "truncated identifier";
            if (notes) return "identifier after a refusal note";
            if ((size_t)q[1] + q[2] > n - i - PROF_ID_HDR) return "identifier length past its set";
            if (!kind_ok((const char *)q + PROF_ID_HDR, q[1])) return "bad identifier kind";
            if (q[2] == 0) return "bad identifier value";
            ident e = ident_at(q);
            if (has_ident(t, i, "", 0, 0, e.kind, e.kind_len, e.value, e.value_len)) return "duplicate identifier";
            if (++ids > PROF_MAX_IDENTIFIERS) return "too many identifiers";
        } else if (q[0] == PROF_NOTE_ENTRY) {
            if (n - i < PROF_NOTE_HDR) return "truncated refusal note";
            uint32_t ol = prof__rd16(q + 2);
            if (q[1] == 0 || ol == 0 || ol > PROF_MAX_NOTE_OTHER) return "bad refusal note length";
            if ((size_t)ol + q[1] > n - i - PROF_NOTE_HDR) return "refusal note length past its set";
            int64_t at = prof__rd64(q + 4);
            if (at < last) return "refusal notes out of order";
            last = at;
            if (++notes > PROF_MAX_REFUSALS) return "too many refusal notes";
        } else {
            return "bad identity entry";
        }
        i += ident_at(q).size;
    }
    return NULL;
}

/* Bytes of the identifiers part (they come first: invariant 3). */
static size_t idents_ids_len(const uint8_t *t, size_t n)
{
    size_t k = 0;
    ident e;
    IDENTS_EACH(e, i_, t, n) {
        if (e.type != PROF_ID_ENTRY) break;
        k += e.size;
    }
    return k;
}

static unsigned idents_count(const uint8_t *t, size_t n, unsigned type)
{
    unsigned k = 0;
    ident e;
    IDENTS_EACH(e, i_, t, n) k += e.type == type;
    return k;
}

/* True if an identifier before `before` bytes has this kind. */
static bool kind_seen(const uint8_t *t, size_t before, const ident *x)
{
    ident e;
    IDENTS_EACH(e, i_, t, before)
        if (e.kind_len == x->kind_len && memcmp(e.kind, x->kind, x->kind_len) == 0) return true;
    return false;
}

int prof__idents_json(const prof *p, jd_buf *b, bool notes)
{
    const struct prof_rich *r = p->rich;
    const uint8_t *t = r ? r->idents : NULL;
    size_t n = r ? r->idents_len : 0, ids = idents_ids_len(t, n);
    int rc = 0;
    ident e, f;
    if (!notes && ids) {   /* "identifiers":{"email":["a@x","b@x"],"phone":[...]}: kinds in first-added order */
        rc |= jd_buf_adds(b, ",\"identifiers\":{");
        bool first = true;
        IDENTS_EACH(e, i_, t, ids) {
            if (kind_seen(t, i_, &e)) continue;
            rc |= jd_buf_adds(b, first ? "" : ",") | jd_buf_add_json_str(b, e.kind, e.kind_len) | jd_buf_adds(b, ":[");
            first = false;
            bool fv = true;
            IDENTS_EACH(f, j, t, ids) {
                if (f.kind_len != e.kind_len || memcmp(f.kind, e.kind, e.kind_len) != 0) continue;
                rc |= jd_buf_adds(b, fv ? "" : ",") | jd_buf_add_json_str(b, f.value, f.value_len);
                fv = false;
            }
            rc |= jd_buf_adds(b, "]");
        }
        rc |= jd_buf_adds(b, "}");
    }
    if (notes && n > ids) {   /* "mergesRefused":[{"with":..,"reason":..,"at":..}], oldest first */
        rc |= jd_buf_adds(b, ",\"mergesRefused\":[");
        IDENTS_EACH(e, i_, t + ids, n - ids) {
            char at[JD_TIME_TEXT];
            size_t al = jd_time_format(e.at_us, at);
            rc |= jd_buf_adds(b, i_ ? ",{\"with\":" : "{\"with\":") | jd_buf_add_json_str(b, e.other, e.other_len);
            rc |= jd_buf_adds(b, ",\"reason\":") | jd_buf_add_json_str(b, e.reason, e.reason_len);
            rc |= jd_buf_adds(b, ",\"at\":\"") | jd_buf_add(b, at, al) | jd_buf_adds(b, "\"}");
        }
        rc |= jd_buf_adds(b, "]");
    }
    return rc;
}

json_object *prof__idents_view(const prof *p)
{
    const struct prof_rich *r = p->rich;
    const uint8_t *t = r ? r->idents : NULL;
    size_t ids = idents_ids_len(t, r ? r->idents_len : 0);
    if (!ids) return NULL;
    json_object *o = json_object_new_object();
    ident e;
    IDENTS_EACH(e, i_, t, ids) {
        char k[PROF_MAX_KIND_BYTES + 1];
        memcpy(k, e.kind, e.kind_len);
        k[e.kind_len] = 0;
        json_object *a = NULL;
        if (!json_object_object_get_ex(o, k, &a)) {
            a = json_object_new_array();
            json_object_object_add(o, k, a);
        }
        json_object_array_add(a, json_object_new_string_len(e.value, (int)e.value_len));
    }
    return o;
}

/* Makes (b's bytes) p's idents blob. */
static void set_idents(prof_store *s, prof *p, const jd_buf *b)
{
    struct prof_rich nr = prof__rich_get(p);
    nr.idents = buf_blob(b, &nr.idents_len);
    prof__rich_set(s, p, &nr);
}

int prof_add_identifier(prof_store *s, const char *key, size_t kn, const char *kind, const char *value, size_t vn)
{
    prof *p = kn ? prof__index_get(&s->by_key, key, kn) : NULL;
    if (!p) return JD_ENOTFOUND;
    size_t kl = kind ? strlen(kind) : 0;
    if (!kind_ok(kind, kl) || !value || vn == 0 || vn > PROF_MAX_ID_VALUE) return JD_EINVAL;
    const struct prof_rich *r = p->rich;
    const uint8_t *t = r ? r->idents : NULL;
    size_t n = r ? r->idents_len : 0, ids = idents_ids_len(t, n);
    if (has_ident(t, ids, p->key, p->key_len, p->flags, kind, kl, value, vn)) return JD_OK;
    if (idents_count(t, ids, PROF_ID_ENTRY) >= PROF_MAX_IDENTIFIERS) return JD_ELIMIT;
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    jd_buf_add(&b, t, ids);   /* at the end of the identifiers, before the notes (3) */
    put_ident(&b, kind, kl, value, vn);
    jd_buf_add(&b, t ? t + ids : NULL, n - ids);
    set_idents(s, p, &b);
    jd_buf_release(&b);
    return JD_OK;
}

int prof_remove_identifier(prof_store *s, const char *key, size_t kn, const char *kind, const char *value, size_t vn)
{
    prof *p = kn ? prof__index_get(&s->by_key, key, kn) : NULL;
    if (!p) return JD_ENOTFOUND;
    size_t kl = kind ? strlen(kind) : 0;
    if (!kind_ok(kind, kl) || !value || vn == 0 || vn > PROF_MAX_ID_VALUE) return JD_EINVAL;
    const struct prof_rich *r = p->rich;
    const uint8_t *t = r ? r->idents : NULL;
    size_t n = r ? r->idents_len : 0;
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    bool hit = false;
    ident e;
    IDENTS_EACH(e, i_, t, n) {
        if (ident_is(&e, kind, kl, value, vn)) hit = true;
        else jd_buf_add(&b, t + i_, e.size);
    }
    if (hit) set_idents(s, p, &b);
    jd_buf_release(&b);
    return JD_OK;
}

/* Appends to b the notes of two time-ordered lists (a first on equal times),
 * only the latest PROF_MAX_REFUSALS of them (3). */
static void merge_notes(jd_buf *b, const uint8_t *a, size_t an, const uint8_t *c, size_t cn)
{
    unsigned total = idents_count(a, an, PROF_NOTE_ENTRY) + idents_count(c, cn, PROF_NOTE_ENTRY);
    unsigned skip = total > PROF_MAX_REFUSALS ? total - PROF_MAX_REFUSALS : 0;
    size_t i = 0, j = 0;
    while (i < an || j < cn) {
        ident x = i < an ? ident_at(a + i) : (ident){ 0 }, y = j < cn ? ident_at(c + j) : (ident){ 0 };
        bool take_a = j >= cn || (i < an && x.at_us <= y.at_us);
        const uint8_t *q = take_a ? a + i : c + j;
        size_t size = take_a ? x.size : y.size;
        if (take_a) i += size;
        else j += size;
        if (skip) { skip--; continue; }   /* the oldest go */
        jd_buf_add(b, q, size);
    }
}

int prof_note_refused(prof_store *s, const char *key, size_t kn, const char *other, size_t on, const char *reason,
                      int64_t at_us)
{
    prof *p = kn ? prof__index_get(&s->by_key, key, kn) : NULL;
    if (!p) return JD_ENOTFOUND;
    size_t rl = reason ? strlen(reason) : 0;
    if (!other || on == 0 || on > PROF_MAX_NOTE_OTHER || rl == 0 || rl > PROF_MAX_NOTE_REASON) return JD_EINVAL;
    const struct prof_rich *r = p->rich;
    const uint8_t *t = r ? r->idents : NULL;
    size_t n = r ? r->idents_len : 0, ids = idents_ids_len(t, n);
    jd_buf one, b;
    jd_buf_init(&one, SIZE_MAX);
    jd_buf_init(&b, SIZE_MAX);
    put_note(&one, other, on, reason, rl, at_us);
    jd_buf_add(&b, t, ids);
    merge_notes(&b, t ? t + ids : NULL, n - ids, (const uint8_t *)one.data, one.len);
    set_idents(s, p, &b);
    jd_buf_release(&one);
    jd_buf_release(&b);
    return JD_OK;
}

/* ---- extract ------------------------------------------------------------- */

int prof_extract(prof_store *s, const char *key, size_t kn, jd_buf *out)
{
    prof *p = kn ? prof__index_get(&s->by_key, key, kn) : NULL;
    if (!p) return JD_ENOTFOUND;
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    uint8_t ver = p->tl ? PROF_CODEC_VERSION : PROF_CODEC_VERSION_NO_TL;   /* as a snapshot's */
    jd_buf_add(&b, &ver, 1);
    prof__encode_one(s, p, ver, &b);
    int rc = jd_buf_add(out, b.data, b.len);   /* JD_ELIMIT: out unchanged, the profile stays */
    jd_buf_release(&b);
    if (rc == JD_OK) prof__remove(s, p);
    return rc;
}

/* ---- merge_in: each part built aside (invariant 1) ------------------------ */

/* Decodes a merge blob into a detached profile (*out, owned). */
static int decode_blob(prof_store *s, const uint8_t *blob, size_t n, prof **out, jd_err *err)
{
    prof_reader r = { blob, n, 0, err, 0, "profile merge", "merge+" };
    jd_buf idx;
    jd_buf_init(&idx, SIZE_MAX);
    size_t key_at = 0;
    int rc;
    *out = NULL;
    if (blob[0] < 1 || blob[0] > PROF_CODEC_VERSION) {
        rc = prof__corrupt(&r, 0, "unknown version");
        goto out;
    }
    r.version = blob[0];
    r.off = 1;
    s->computed_ring = r.version <= 5;   /* snapshot.c: windows were dense rings */
    rc = prof__decode_one(s, &r, out, &idx, &key_at);
    s->computed_ring = false;
    if (rc == JD_OK && r.off != n) {
        rc = prof__corrupt(&r, r.off, "trailing bytes");
        prof__free(*out);
        *out = NULL;
    }
out:
    jd_buf_release(&idx);
    return rc;
}

typedef struct vec_parts {
    jd_buf ids, evs;     /* ids: n x (uv len | bytes); evs: n x (u32 count | uv len | bytes) */
    unsigned n_ids, n_evs;
    jd_map *seen;        /* id or name -> its bytes (borrowed from the vecs) */
} vec_parts;

static void add_id(const prof_store *s, vec_parts *v, const char *skey, size_t skn, bool key_anon, const char *id,
                   size_t n, uint32_t *limited)
{
    if (n == 0 || (key_anon && n == skn && memcmp(id, skey, n) == 0) || jd_map_get(v->seen, id, n)) return;
    if (v->n_ids + (key_anon ? 1u : 0u) >= s->lim.max_anonymous_ids) {   /* profile.c (3), as add_anon_id */
        *limited = add_sat(*limited, 1);
        return;
    }
    uint8_t uv[5];
    jd_buf_add(&v->ids, uv, prof__uv_put(uv, (uint32_t)n));
    jd_buf_add(&v->ids, id, n);
    jd_map_put(v->seen, id, n, (void *)id);
    v->n_ids++;
}

static void add_ids_of(const prof_store *s, vec_parts *v, const uint8_t *vec, const char *skey, size_t skn,
                       bool key_anon, uint32_t *limited)
{
    const uint8_t *q = vec ? vec + 4 : NULL;
    for (unsigned i = vec ? prof__rd16(vec) : 0; i > 0; i--) {
        uint32_t n;
        q += prof__uv_get(q, &n);
        add_id(s, v, skey, skn, key_anon, (const char *)q, n, limited);
        q += n;
    }
}

/* Adds the event names of vec: counts of a name already there add up. The
 * map's value is the name's offset in evs, plus one. */
static void add_evs_of(const prof_store *s, vec_parts *v, const uint8_t *vec, uint32_t *limited)
{
    if (!vec) return;
    const uint8_t *q = vec + prof__vec_ids_size(vec);
    for (unsigned i = prof__rd16(vec + 2); i > 0; i--) {
        uint32_t c = prof__rd32(q), n;
        size_t w = prof__uv_get(q + 4, &n);
        const char *name = (const char *)q + 4 + w;
        uintptr_t at = (uintptr_t)jd_map_get(v->seen, name, n);
        if (at) {
            uint8_t *cp = (uint8_t *)v->evs.data + at - 1;
            prof__wr32(cp, add_sat(prof__rd32(cp), c));
        } else if (v->n_evs >= s->lim.max_event_names) {   /* profile.c (3) */
            *limited = add_sat(*limited, 1);
        } else {
            jd_map_put(v->seen, name, n, (void *)(uintptr_t)(v->evs.len + 1));
            uint8_t t[4 + 5];
            prof__wr32(t, c);
            jd_buf_add(&v->evs, t, 4 + prof__uv_put(t + 4, n));
            jd_buf_add(&v->evs, name, n);
            v->n_evs++;
        }
        q += 4 + w + n;
    }
}

/* The merged vec (owned, exact; NULL when empty): S's ids, then `from` when
 * it is an anonymousId, then L's; S's event names, then L's new ones. */
static uint8_t *merge_vec(const prof_store *s, const prof *sp, const char *skey, size_t skn, unsigned sflags,
                          const prof *lp, const char *from, size_t fn, bool from_is_user, uint32_t *limited)
{
    vec_parts v = { .n_ids = 0 };
    jd_buf_init(&v.ids, SIZE_MAX);
    jd_buf_init(&v.evs, SIZE_MAX);
    v.seen = jd_map_create(16);
    bool key_anon = sflags & PROF_F_KEY_ANON;
    add_ids_of(s, &v, sp ? sp->vec : NULL, skey, skn, key_anon, limited);
    if (!from_is_user) add_id(s, &v, skey, skn, key_anon, from, fn, limited);
    if (lp && (lp->flags & PROF_F_KEY_ANON)) add_id(s, &v, skey, skn, key_anon, lp->key, lp->key_len, limited);
    add_ids_of(s, &v, lp ? lp->vec : NULL, skey, skn, key_anon, limited);
    jd_map_destroy(v.seen);
    v.seen = jd_map_create(16);   /* names now: an id and a name may be the same bytes */
    add_evs_of(s, &v, sp ? sp->vec : NULL, limited);
    add_evs_of(s, &v, lp ? lp->vec : NULL, limited);
    uint8_t *nv = NULL;
    if (v.n_ids || v.n_evs) {
        nv = jd_xmalloc(4 + v.ids.len + v.evs.len);
        prof__wr16(nv, (uint16_t)v.n_ids);
        prof__wr16(nv + 2, (uint16_t)v.n_evs);
        if (v.ids.len) memcpy(nv + 4, v.ids.data, v.ids.len);
        if (v.evs.len) memcpy(nv + 4 + v.ids.len, v.evs.data, v.evs.len);
    }
    jd_map_destroy(v.seen);
    jd_buf_release(&v.ids);
    jd_buf_release(&v.evs);
    return nv;
}

/* Merges tset (lt, ll) into (st, sl): per key the entry with the later
 * set_us, equal times st's; st's keys keep their place, lt's new keys
 * follow in lt's order. U_CHANGED: *out is new (owned, exact; NULL when
 * empty). U_OVER: it would pass max_traits_bytes (profile.c (4)). Both
 * tsets are this store's (tset.c): entries are copied with their key ids. */
static int tset_union(const prof_store *s, const uint8_t *st, uint32_t sl, const uint8_t *lt, uint32_t ll,
                      uint8_t **out, uint32_t *out_len)
{
    if (ll == 0) return U_SAME;
    prof_titer it;
    prof_tent e;
    size_t n = 0, cap = 8;
    prof_tent *le = jd_xmalloc(cap * sizeof *le);
    jd_map *lk = jd_map_create(16);   /* key -> 1 + index in le; deleted once taken */
    prof__titer_init(&it, lt, ll);
    while (prof__tset_next(s, &it, &e)) {
        if (n == cap) le = jd_xrealloc(le, (cap *= 2) * sizeof *le);
        le[n] = e;
        jd_map_put(lk, e.k, e.kl, (void *)(uintptr_t)(n + 1));
        n++;
    }
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    int64_t prev = PROF_TSET_EPOCH;
    prof__titer_init(&it, st, sl);
    while (prof__tset_next(s, &it, &e)) {
        uintptr_t li = (uintptr_t)jd_map_del(lk, e.k, e.kl);
        prof__tset_put(&b, &prev, li && le[li - 1].at > e.at ? &le[li - 1] : &e);
    }
    for (size_t i = 0; i < n; i++)
        if (jd_map_get(lk, le[i].k, le[i].kl)) prof__tset_put(&b, &prev, &le[i]);
    jd_map_destroy(lk);
    free(le);
    int rc = U_CHANGED;
    if (b.len == sl && (sl == 0 || memcmp(b.data, st, sl) == 0)) rc = U_SAME;
    else if (b.len > UINT32_MAX || prof__tset_json_size(s, (const uint8_t *)b.data, b.len) > s->lim.max_traits_bytes)
        rc = U_OVER;
    else *out = buf_blob(&b, out_len);
    jd_buf_release(&b);
    return rc;
}

/* Merges a tset field: on U_OVER S's set stays and limited counts 1. */
static void merge_tset(const prof_store *s, uint8_t **sb, uint32_t *sl, const uint8_t *lb, uint32_t ll,
                       uint32_t *limited)
{
    uint8_t *nt = NULL;
    uint32_t nl = 0;
    int rc = tset_union(s, *sb, *sl, lb, ll, &nt, &nl);
    if (rc == U_OVER) *limited = add_sat(*limited, 1);
    if (rc != U_CHANGED) return;
    *sb = nt;
    *sl = nl;
}

static size_t group_entry(const uint8_t *q) { return PROF_GRP_HDR + prof__rd32(q) + prof__rd32(q + 4); }

/* Groups: per groupId the tset merge; S's groups keep their place, L's new
 * ones follow, past max_groups dropped. Returns the new blob (owned) or the
 * survivor's pointer when nothing changed. */
static uint8_t *merge_groups(const prof_store *s, uint8_t *sg, uint32_t sl, const uint8_t *lg, uint32_t ll,
                             uint32_t *out_len, uint32_t *limited)
{
    *out_len = sl;
    if (ll == 0) return sg;
    jd_map *lk = jd_map_create(16);
    for (uint32_t i = 0; i < ll; i += (uint32_t)group_entry(lg + i))
        jd_map_put(lk, (const char *)lg + i + PROF_GRP_HDR, prof__rd32(lg + i), (void *)(lg + i));
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    unsigned n_groups = 0;
    for (int pass = 0; pass < 2; pass++) {
        const uint8_t *blob = pass ? lg : sg;
        uint32_t len = pass ? ll : sl;
        for (uint32_t i = 0; i < len; i += (uint32_t)group_entry(blob + i)) {
            const uint8_t *e = blob + i;
            uint32_t gl = prof__rd32(e);
            const char *gid = (const char *)e + PROF_GRP_HDR;
            const uint8_t *l = pass ? e : jd_map_get(lk, gid, gl);
            if (pass && !jd_map_get(lk, gid, gl)) continue;   /* merged in the first pass */
            if (l) jd_map_del(lk, gid, gl);
            if (pass && n_groups >= s->lim.max_groups) {   /* profile.c (3) */
                *limited = add_sat(*limited, 1);
                continue;
            }
            uint8_t *t = pass ? NULL : (uint8_t *)e + PROF_GRP_HDR + gl;
            uint32_t tl = pass ? 0 : prof__rd32(e + 4);
            uint8_t *nt = t;
            uint32_t ntl = tl;
            if (l) merge_tset(s, &nt, &ntl, l + PROF_GRP_HDR + gl, prof__rd32(l + 4), limited);
            uint8_t h[PROF_GRP_HDR];
            prof__wr32(h, gl);
            prof__wr32(h + 4, ntl);
            jd_buf_add(&b, h, sizeof h);
            jd_buf_add(&b, gid, gl);
            jd_buf_add(&b, nt, ntl);
            if (nt != t) free(nt);
            n_groups++;
        }
    }
    jd_map_destroy(lk);
    uint8_t *ng = sg;
    if (b.len != sl || (sl && memcmp(b.data, sg, sl) != 0)) ng = buf_blob(&b, out_len);
    jd_buf_release(&b);
    return ng;
}

/* Tags: S's, then L's new ones (each with its own set_us), past max_tags
 * dropped. Returns the new blob (owned) or sg when nothing changed. */
static uint8_t *merge_tags(const prof_store *s, uint8_t *sg, uint32_t sl, const uint8_t *lg, uint32_t ll,
                           uint32_t *out_len, uint32_t *limited)
{
    *out_len = sl;
    if (ll == 0) return sg;
    jd_map *seen = jd_map_create(16);
    size_t count = 0;
    for (uint32_t i = 0; i < sl; i += PROF_TAG_HDR + prof__rd32(sg + i), count++)
        jd_map_put(seen, (const char *)sg + i + PROF_TAG_HDR, prof__rd32(sg + i), sg + i);
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    jd_buf_add(&b, sg, sl);
    for (uint32_t i = 0; i < ll; i += PROF_TAG_HDR + prof__rd32(lg + i)) {
        uint32_t tl = prof__rd32(lg + i);
        if (jd_map_get(seen, (const char *)lg + i + PROF_TAG_HDR, tl)) continue;
        if (count >= s->lim.max_tags) {   /* profile.c (8) */
            *limited = add_sat(*limited, 1);
            continue;
        }
        jd_map_put(seen, (const char *)lg + i + PROF_TAG_HDR, tl, (void *)(lg + i));
        jd_buf_add(&b, lg + i, PROF_TAG_HDR + tl);
        count++;
    }
    jd_map_destroy(seen);
    uint8_t *ng = b.len != sl ? buf_blob(&b, out_len) : sg;
    jd_buf_release(&b);
    return ng;
}

/* Identifiers: S's, then `from` when it is a userId, then L's; past
 * PROF_MAX_IDENTIFIERS dropped; notes: both, by time, the latest kept (3). */
static uint8_t *merge_idents(const prof *sp, const char *skey, size_t skn, unsigned sflags, const prof *lp,
                             const char *from, size_t fn, bool from_is_user, uint32_t *out_len, uint32_t *limited)
{
    const struct prof_rich *sr = sp ? sp->rich : NULL, *lr = lp ? lp->rich : NULL;
    const uint8_t *st = sr ? sr->idents : NULL, *lt = lr ? lr->idents : NULL;
    size_t sn = sr ? sr->idents_len : 0, ln = lr ? lr->idents_len : 0;
    size_t sids = idents_ids_len(st, sn), lids = idents_ids_len(lt, ln);
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    jd_buf_add(&b, st, sids);
    unsigned count = idents_count(st, sids, PROF_ID_ENTRY);
    jd_buf one;
    jd_buf_init(&one, SIZE_MAX);
    if (from_is_user) put_ident(&one, "userId", 6, from, fn);
    for (int pass = 0; pass < 2; pass++) {
        const uint8_t *t = pass ? lt : (const uint8_t *)one.data;
        size_t n = pass ? lids : one.len;
        ident e;
        IDENTS_EACH(e, i_, t, n) {
            if (has_ident((const uint8_t *)b.data, b.len, skey, skn, sflags, e.kind, e.kind_len, e.value, e.value_len))
                continue;
            if (count >= PROF_MAX_IDENTIFIERS) {
                *limited = add_sat(*limited, 1);
                continue;
            }
            jd_buf_add(&b, t + i_, e.size);
            count++;
        }
    }
    merge_notes(&b, st ? st + sids : NULL, sn - sids, lt ? lt + lids : NULL, ln - lids);
    uint8_t *out = buf_blob(&b, out_len);
    jd_buf_release(&one);
    jd_buf_release(&b);
    return out;
}

int prof_merge_in(prof_store *s, const char *key, size_t kn, bool key_is_user, const char *from, size_t fn,
                  bool from_is_user, const void *blob, size_t n, jd_err *err)
{
    if (kn == 0 || kn >= (1u << 30)) return jd_err_set(err, JD_EINVAL, "key", "bad profile key length %zu", kn);
    if (fn == 0 || fn >= (1u << 30)) return jd_err_set(err, JD_EINVAL, "from", "bad merged key length %zu", fn);
    if (fn == kn && memcmp(from, key, kn) == 0)
        return jd_err_set(err, JD_EINVAL, "from", "a profile cannot merge into itself");
    if (from_is_user && fn > PROF_MAX_ID_VALUE)
        return jd_err_set(err, JD_EINVAL, "from", "userId of %zu bytes is longer than an identifier (%u)", fn,
                          (unsigned)PROF_MAX_ID_VALUE);
    prof *lp = NULL;
    int rc = n ? decode_blob(s, blob, n, &lp, err) : JD_OK;
    if (rc != JD_OK) return rc;
    if (lp && (lp->key_len != fn || memcmp(lp->key, from, fn) != 0)) {
        prof__free(lp);
        return jd_err_set(err, JD_EINVAL, "from", "the blob is another profile than from");
    }

    /* Everything built aside (1); the survivor may not exist yet. */
    prof *sp = prof__index_get(&s->by_key, key, kn);
    unsigned sflags = sp ? sp->flags : key_is_user ? PROF_F_USER : PROF_F_KEY_ANON;
    uint32_t limited = 0;
    uint8_t *nv = merge_vec(s, sp, key, kn, sflags, lp, from, fn, from_is_user, &limited);
    struct prof_rich nr = sp ? prof__rich_get(sp) : (struct prof_rich){ 0 };
    struct prof_rich lr = lp ? prof__rich_get(lp) : (struct prof_rich){ 0 };
    merge_tset(s, &nr.traits, &nr.traits_len, lr.traits, lr.traits_len, &limited);
    merge_tset(s, &nr.consent, &nr.consent_len, lr.consent, lr.consent_len, &limited);
    nr.groups = merge_groups(s, nr.groups, nr.groups_len, lr.groups, lr.groups_len, &nr.groups_len, &limited);
    nr.tags = merge_tags(s, nr.tags, nr.tags_len, lr.tags, lr.tags_len, &nr.tags_len, &limited);
    if (lr.computed_len)
        nr.computed = prof__computed_merge(s, nr.computed, nr.computed_len, lr.computed, lr.computed_len,
                                           &nr.computed_len);
    nr.idents = merge_idents(sp, key, kn, sflags, lp, from, fn, from_is_user, &nr.idents_len, &limited);
    uint32_t tln = 0;
    uint8_t *ntl = prof__tl_merge(s, sp, lp, nv, &tln);   /* names indexed against the merged vec */

    /* (1): from here on nothing fails. */
    if (!sp) sp = prof__insert(s, key, kn, sflags);
    if (lp) {
        if (!prof__seen(sp)) {
            sp->first_us = lp->first_us;
            sp->last_us = lp->last_us;
        } else if (prof__seen(lp)) {
            if (lp->first_us < sp->first_us) sp->first_us = lp->first_us;
            if (lp->last_us > sp->last_us) sp->last_us = lp->last_us;
        }
        for (int i = 0; i < PROF_NTYPES; i++) sp->counts[i] = add_sat(sp->counts[i], lp->counts[i]);
        sp->limited = add_sat(sp->limited, lp->limited);
    }
    sp->limited = add_sat(sp->limited, limited);
    unsigned old_ids = sp->vec ? prof__rd16(sp->vec) : 0;
    prof__vec_replace(s, sp, nv);
    const uint8_t *q = nv ? nv + 4 : NULL;   /* the new ids into by_anon, first owner wins (4) */
    for (unsigned i = 0, m = nv ? prof__rd16(nv) : 0; i < m; i++) {
        uint32_t len;
        q += prof__uv_get(q, &len);
        if (i >= old_ids) prof__index_anon(s, sp, (const char *)q, len);
        q += len;
    }
    prof__rich_set(s, sp, &nr);
    s->heap -= prof__alloc_size(prof__tl_size(sp->tl));
    free(sp->tl);
    sp->tl = ntl;
    s->heap += prof__alloc_size(tln);
    prof__free(lp);
    return JD_OK;
}

/* ---- every identity, for rebuilding the identity directory --------------- */

void prof_store_each_identity(const prof_store *s, prof_identity_fn fn, void *ctx)
{
    size_t pos = 0;
    const prof *p;
    while ((p = prof__index_next(&s->by_key, &pos))) {
        jd_str key = { p->key, p->key_len };
        bool user = p->flags & PROF_F_USER;
        if (p->vec) {   /* anonymousIds: u16 n_ids | u16 n_evs | n_ids x (uv len | bytes) */
            const uint8_t *q = p->vec + 4;
            for (unsigned i = prof__rd16(p->vec); i > 0; i--) {
                uint32_t len;
                q += prof__uv_get(q, &len);
                if (!jd_str_eq(key, (const char *)q, len)) fn(ctx, key, user, "anonymousId", (jd_str){ (const char *)q, len });
                q += len;
            }
        }
        const uint8_t *t = p->rich ? p->rich->idents : NULL;
        size_t n = p->rich ? p->rich->idents_len : 0;
        ident e;
        IDENTS_EACH(e, i_, t, n) {
            if (e.type != PROF_ID_ENTRY) break;   /* the notes follow the identifiers */
            char kind[256];
            snprintf(kind, sizeof kind, "%.*s", (int)e.kind_len, e.kind);
            fn(ctx, key, user, kind, (jd_str){ e.value, e.value_len });
        }
    }
}
