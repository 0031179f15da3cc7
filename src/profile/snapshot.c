/* src/profile/snapshot.c -- the profile store's snapshot codec, and the
 * per-profile codec it shares with the merge blob (merge.c: u8 version |
 * one profile).
 *
 * Format (all integers little-endian; docs/internals/profile.md has the table):
 *   u8 version (8, or 7 when no profile has a timeline; 6 .. 1 still decode)
 *   | u64 count | count x profile
 *   | u64 nsupp | nsupp x (u32 len | id | i64 at_us)       -- version 4 on: deleted ids
 *   profile: u32 key_len | key | u8 flags | i64 first_us | i64 last_us
 *            | u32 counts[6] | u32 limited
 *            | u16 n_ids | n_ids x (u8 indexed | u32 len | id)
 *            | u16 n_evs | n_evs x (u32 count | u32 len | name)
 *            | u32 traits_len | traits: a tset, entries of
 *                 u32 klen | u32 vlen | i64 set_us | key | 0 | value (JSON text)
 *                 (memory keeps a compact form with shared key ids: tset.c
 *                 converts both ways, so ids never leave their store)
 *            | u32 groups_len | groups: u32 gid_len | u32 tset_len | gid | tset
 *            | u32 tags_len | tags (the in-memory tags blob, as it is)   -- version 2 on
 *            | u32 computed_len | computed                              -- version 3 on
 *            | u32 consent_len | consent (a tset, as traits)            -- version 5 on
 *            | u32 idents_len | idents (identifiers, refusal notes)    -- version 7 on
 *            | u32 tl_len | timeline (the in-memory blob, as it is)     -- version 8 on
 *   computed: entries of u64 definition id | u32 len | payload (computed.c)
 *
 * Version 2 (before computed traits) is version 3 without the computed field:
 * its profiles decode with no computed values. Version 1 (before tags) is
 * version 2 without the tags field: no tags either. Version 4 added the
 * suppressions, 5 consent, 6 windows as their non-empty buckets (before: a
 * dense ring, converted on load), 7 identifiers and refusal notes (older
 * profiles decode with none), 8 the timeline (timeline.c; older profiles
 * decode with an empty one). encode writes PROF_CODEC_VERSION when some
 * profile has a timeline, else version 7 (the same bytes without the
 * tl_len fields), which the release before version 8 still reads.
 *
 * Invariants:
 *  (1) decode trusts nothing: every length is checked against the bytes left
 *      before it is used, every trait value must parse as one strict JSON
 *      value, and a failure leaves the store empty (prof__clear) with err
 *      saying "profile snapshot: <what> at byte N" (where "byte N"; a merge
 *      blob: "profile merge: ..." and where "merge+N").
 *  (2) "indexed" is whether by_anon points this id at this profile, so the
 *      first-owner rule (profile.c invariant 2) survives a round trip even
 *      though profiles are written in hash order, not creation order.
 *  (3) encode then decode gives the same prof_get_json for every id.
 *  (4) Tags decode as profile.c invariant (8) has them (distinct, 1..255
 *      bytes, no NUL), but their number is not checked against max_tags: the
 *      limit may have been lowered since (prof_update copes).
 *  (5) Computed values are keyed by their definition's id (a hash of name,
 *      kind, event, property, window and buckets): values of a definition the
 *      store does not have (removed or changed since) are dropped, so
 *      invariant (3) holds for stores with the same definitions.
 *  (6) A timeline is checked whole (timeline.c parse): its count, kinds,
 *      every length and varint against the bytes left, times never
 *      increasing along the list, and each name index against the event
 *      names of the same profile (decoded before it).
 */
#include "profile_int.h"

#include <stdio.h>
#include <stdlib.h>

#define SNAP_VERSION    PROF_CODEC_VERSION   /* 8: the timeline */
#define SNAP_VERSION_V7 PROF_CODEC_VERSION_NO_TL   /* no timeline field */
#define SNAP_VERSION_V6 6   /* no idents field */
#define SNAP_VERSION_V5 5   /* windows as dense rings of B buckets */
#define SNAP_VERSION_V4 4   /* no consent field */
#define SNAP_VERSION_V3 3   /* no suppressions either */
#define SNAP_VERSION_V2 2   /* no computed field */
#define SNAP_VERSION_V1 1   /* no tags field either */
/* The smallest profile: key_len + 1-byte key + flags + times + counts +
 * limited + n_ids + n_evs + traits_len + groups_len (+ tags_len from v2,
 * + computed_len from v3). */
#define SNAP_MIN_PROFILE_V1 62u
#define SNAP_MIN_PROFILE_V2 66u
#define SNAP_MIN_PROFILE    70u

static void put32(jd_buf *b, uint32_t v) { uint8_t t[4]; prof__wr32(t, v); jd_buf_add(b, t, 4); }
static void put16(jd_buf *b, uint16_t v) { uint8_t t[2]; prof__wr16(t, v); jd_buf_add(b, t, 2); }
static void put64(jd_buf *b, int64_t v) { uint8_t t[8]; prof__wr64(t, v); jd_buf_add(b, t, 8); }

void prof__encode_one(const prof_store *s, const prof *p, uint8_t version, jd_buf *b)
{
    JD_ASSERT(version == SNAP_VERSION || (version == SNAP_VERSION_V7 && !p->tl));
    put32(b, p->key_len);
    jd_buf_add(b, p->key, p->key_len);
    uint8_t f = (uint8_t)p->flags;
    jd_buf_add(b, &f, 1);
    put64(b, p->first_us);
    put64(b, p->last_us);
    for (int i = 0; i < PROF_NTYPES; i++) put32(b, p->counts[i]);
    put32(b, p->limited);

    const uint8_t *v = p->vec, *q = v ? v + 4 : NULL;
    unsigned n_ids = v ? prof__rd16(v) : 0, n_evs = v ? prof__rd16(v + 2) : 0;
    put16(b, (uint16_t)n_ids);
    for (unsigned i = 0; i < n_ids; i++) {
        uint32_t n;
        q += prof__uv_get(q, &n);
        uint8_t indexed = jd_map_get(s->by_anon, (const char *)q, n) == p;
        jd_buf_add(b, &indexed, 1);
        put32(b, n);
        jd_buf_add(b, q, n);
        q += n;
    }
    put16(b, (uint16_t)n_evs);
    for (unsigned i = 0; i < n_evs; i++) {
        uint32_t n, c = prof__rd32(q);
        q += 4;
        q += prof__uv_get(q, &n);
        put32(b, c);
        put32(b, n);
        jd_buf_add(b, q, n);
        q += n;
    }
    const struct prof_rich *r = p->rich;
    put32(b, r ? (uint32_t)prof__tset_disk_size(s, r->traits, r->traits_len) : 0);
    if (r) prof__tset_disk(s, r->traits, r->traits_len, b);
    put32(b, r ? (uint32_t)prof__groups_disk_size(s, r->groups, r->groups_len) : 0);
    if (r) prof__groups_disk(s, r->groups, r->groups_len, b);
    put32(b, r ? r->tags_len : 0);
    if (r) jd_buf_add(b, r->tags, r->tags_len);
    prof__computed_encode(s, p, b);
    put32(b, r ? (uint32_t)prof__tset_disk_size(s, r->consent, r->consent_len) : 0);
    if (r) prof__tset_disk(s, r->consent, r->consent_len, b);
    put32(b, r ? r->idents_len : 0);
    if (r) jd_buf_add(b, r->idents, r->idents_len);
    if (version >= SNAP_VERSION) {
        size_t tn = prof__tl_size(p->tl);
        put32(b, (uint32_t)tn);
        jd_buf_add(b, p->tl, tn);
    }
}

int prof_store_encode(const prof_store *s, jd_buf *out)
{
    /* Built aside: on JD_ELIMIT out is left as it was. */
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    uint8_t ver = SNAP_VERSION_V7;
    size_t pos = 0;
    const prof *p;
    while (ver == SNAP_VERSION_V7 && (p = prof__index_next(&s->by_key, &pos)))
        if (p->tl) ver = SNAP_VERSION;
    jd_buf_add(&b, &ver, 1);
    put64(&b, (int64_t)s->by_key.len);
    pos = 0;
    while ((p = prof__index_next(&s->by_key, &pos))) prof__encode_one(s, p, ver, &b);
    put64(&b, (int64_t)jd_map_len(s->suppressed));
    pos = 0;
    void *v;
    while (jd_map_next(s->suppressed, &pos, NULL, NULL, &v)) {
        const prof_supp *e = v;
        put32(&b, e->len);
        jd_buf_add(&b, e->id, e->len);
        put64(&b, e->at_us);
    }
    int rc = jd_buf_add(out, b.data, b.len);
    jd_buf_release(&b);
    return rc;
}

/* ---- decode ------------------------------------------------------------ */

typedef prof_reader reader;

int prof__corrupt(reader *r, size_t at, const char *what)
{
    char where[32];
    snprintf(where, sizeof where, "%s%zu", r->where, at);
    return jd_err_set(r->err, JD_ECORRUPT, where, "%s: %s at byte %zu", r->name, what, at);
}

/* Takes k bytes; JD_ECORRUPT "truncated <what>" if fewer are left. */
static int take(reader *r, size_t k, const char *what, const uint8_t **out)
{
    if (k > r->n - r->off) {
        char m[96];
        snprintf(m, sizeof m, "truncated %s", what);
        return prof__corrupt(r, r->off, m);
    }
    *out = r->p + r->off;
    r->off += k;
    return JD_OK;
}

static int get8(reader *r, const char *what, uint8_t *v)
{
    const uint8_t *q = NULL;
    int rc = take(r, 1, what, &q);
    if (rc == JD_OK) *v = *q;
    return rc;
}
static int get16(reader *r, const char *what, uint16_t *v)
{
    const uint8_t *q = NULL;
    int rc = take(r, 2, what, &q);
    if (rc == JD_OK) *v = prof__rd16(q);
    return rc;
}
static int get32(reader *r, const char *what, uint32_t *v)
{
    const uint8_t *q = NULL;
    int rc = take(r, 4, what, &q);
    if (rc == JD_OK) *v = prof__rd32(q);
    return rc;
}
static int get64(reader *r, const char *what, int64_t *v)
{
    const uint8_t *q = NULL;
    int rc = take(r, 8, what, &q);
    if (rc == JD_OK) *v = prof__rd64(q);
    return rc;
}

/* True if v is exactly one strict JSON value (what tset_merge stores). */
static bool json_value_ok(prof_store *s, const uint8_t *v, uint32_t n)
{
    bool ok = false;
    json_object_put(prof__parse_value(s, v, n, &ok));
    return ok;
}

/* Checks a tset of n bytes starting at snapshot offset base. */
static int check_tset(prof_store *s, reader *r, const uint8_t *t, size_t n, size_t base)
{
    for (size_t i = 0; i < n;) {
        if (n - i < PROF_TSET_HDR) return prof__corrupt(r, base + i, "truncated trait header");
        uint64_t kl = prof__rd32(t + i), vl = prof__rd32(t + i + 4);
        const uint8_t *k = t + i + PROF_TSET_HDR;
        if (kl + 1 + vl > n - i - PROF_TSET_HDR) return prof__corrupt(r, base + i, "trait length past its set");
        if (k[kl] != 0 || memchr(k, 0, kl)) return prof__corrupt(r, base + i, "bad trait key");
        if (n > INT32_MAX - 2 || (vl && !json_value_ok(s, k + kl + 1, (uint32_t)vl)))
            return prof__corrupt(r, base + i + PROF_TSET_HDR + kl + 1, "bad trait value");
        i += PROF_TSET_HDR + kl + 1 + vl;
    }
    return JD_OK;
}

static int check_groups(prof_store *s, reader *r, const uint8_t *g, size_t n, size_t base)
{
    for (size_t i = 0; i < n;) {
        if (n - i < PROF_GRP_HDR) return prof__corrupt(r, base + i, "truncated group header");
        uint64_t gl = prof__rd32(g + i), tl = prof__rd32(g + i + 4);
        if (gl == 0) return prof__corrupt(r, base + i, "empty groupId");
        if (gl + tl > n - i - PROF_GRP_HDR) return prof__corrupt(r, base + i, "group length past its set");
        size_t at = i + PROF_GRP_HDR + gl;
        int rc = check_tset(s, r, g + at, tl, base + at);
        if (rc != JD_OK) return rc;
        i = at + tl;
    }
    return JD_OK;
}

/* Checks a tags blob of n bytes at snapshot offset base (invariant 4). A map
 * finds duplicates: a blob may hold up to n / 13 tags. */
static int check_tags(reader *r, const uint8_t *t, size_t n, size_t base)
{
    jd_map *seen = n ? jd_map_create(16) : NULL;
    int rc = JD_OK;
    for (size_t i = 0; i < n;) {
        if (n - i < PROF_TAG_HDR) { rc = prof__corrupt(r, base + i, "truncated tag header"); break; }
        uint32_t tl = prof__rd32(t + i);
        const char *tag = (const char *)t + i + PROF_TAG_HDR;
        if (tl == 0 || tl > PROF_MAX_TAG_BYTES) { rc = prof__corrupt(r, base + i, "bad tag length"); break; }
        if (tl > n - i - PROF_TAG_HDR) { rc = prof__corrupt(r, base + i, "tag length past its set"); break; }
        if (memchr(tag, 0, tl)) { rc = prof__corrupt(r, base + i, "bad tag"); break; }
        if (jd_map_put(seen, tag, tl, (void *)tag)) { rc = prof__corrupt(r, base + i, "duplicate tag"); break; }
        i += PROF_TAG_HDR + tl;
    }
    jd_map_destroy(seen);
    return rc;
}

/* Reads the ids and event names into a new vec (*out; NULL if both empty). */
static int decode_vec(prof_store *s, reader *r, const prof *p, uint8_t **out, jd_buf *idx)
{
    uint16_t n_ids, n_evs;
    jd_buf *b = &s->scratch;
    jd_buf_reset(b);
    jd_buf_reset(idx);
    uint8_t hdr[4] = { 0 };
    jd_buf_add(b, hdr, 4);
    int rc = get16(r, "anonymousId count", &n_ids);
    if (rc != JD_OK) return rc;
    for (unsigned i = 0; i < n_ids; i++) {
        uint8_t indexed;
        uint32_t n;
        const uint8_t *id = NULL;
        size_t at = r->off;
        if ((rc = get8(r, "anonymousId flag", &indexed)) || (rc = get32(r, "anonymousId length", &n)) ||
            (rc = take(r, n, "anonymousId", &id)))
            return rc;
        if (indexed > 1) return prof__corrupt(r, at, "bad anonymousId flag");
        if (n == 0 || n >= (1u << 30)) return prof__corrupt(r, at, "bad anonymousId length");
        if (((p->flags & PROF_F_KEY_ANON) && n == p->key_len && memcmp(id, p->key, n) == 0))
            return prof__corrupt(r, at, "duplicate anonymousId");
        /* Distinct ids (profile.c invariant 3): n_ids is at most 65535 and
         * each takes 5 bytes here, so the scan is bounded by the input. */
        const uint8_t *q = (const uint8_t *)b->data + 4;
        for (unsigned j = 0; j < i; j++) {
            uint32_t len;
            q += prof__uv_get(q, &len);
            if (len == n && memcmp(q, id, n) == 0) return prof__corrupt(r, at, "duplicate anonymousId");
            q += len;
        }
        uint8_t uv[5];
        jd_buf_add(b, uv, prof__uv_put(uv, n));
        jd_buf_add(b, id, n);
        jd_buf_add(idx, &indexed, 1);
    }
    prof__wr16((uint8_t *)b->data, n_ids);
    if ((rc = get16(r, "event name count", &n_evs))) return rc;
    for (unsigned i = 0; i < n_evs; i++) {
        uint32_t c, n;
        const uint8_t *name = NULL;
        size_t at = r->off;
        if ((rc = get32(r, "event count", &c)) || (rc = get32(r, "event name length", &n)) ||
            (rc = take(r, n, "event name", &name)))
            return rc;
        if (n == 0 || n >= (1u << 30)) return prof__corrupt(r, at, "bad event name length");
        uint8_t t[4 + 5];
        prof__wr32(t, c);
        jd_buf_add(b, t, 4 + prof__uv_put(t + 4, n));
        jd_buf_add(b, name, n);
    }
    prof__wr16((uint8_t *)b->data + 2, n_evs);
    *out = NULL;
    if (n_ids || n_evs) {
        *out = jd_xmalloc(b->len);
        memcpy(*out, b->data, b->len);
    }
    return JD_OK;
}

/* An exact copy of m's bytes (NULL when empty), m then emptied. */
static uint8_t *mem_blob(jd_buf *m, uint32_t *len)
{
    JD_ASSERT(m->len <= UINT32_MAX);
    *len = (uint32_t)m->len;
    uint8_t *t = m->len ? memcpy(jd_xmalloc(m->len), m->data, m->len) : NULL;
    jd_buf_reset(m);
    return t;
}

/* Reads the rich part's fields (as far as r's version has them) into nr:
 * owned blobs on JD_OK, nothing allocated on error. */
static int decode_rich(prof_store *s, reader *r, struct prof_rich *nr)
{
    uint32_t tl, gl, xl = 0, ol = 0, il = 0;
    const uint8_t *t = NULL, *g = NULL, *x = NULL, *o = NULL, *id = NULL;
    uint8_t *cv = NULL;
    uint32_t cvl = 0;
    size_t at;
    int rc;
    memset(nr, 0, sizeof *nr);
    if ((rc = get32(r, "traits length", &tl))) return rc;
    at = r->off;
    if ((rc = take(r, tl, "traits", &t)) || (rc = check_tset(s, r, t, tl, at))) return rc;
    if ((rc = get32(r, "groups length", &gl))) return rc;
    at = r->off;
    if ((rc = take(r, gl, "groups", &g)) || (rc = check_groups(s, r, g, gl, at))) return rc;
    if (r->version >= 2) {
        if ((rc = get32(r, "tags length", &xl))) return rc;
        at = r->off;
        if ((rc = take(r, xl, "tags", &x)) || (rc = check_tags(r, x, xl, at))) return rc;
    }
    if (r->version >= 3) {   /* (5) */
        uint32_t cl;
        const uint8_t *c = NULL;
        size_t bad = 0;
        const char *what = NULL;
        if ((rc = get32(r, "computed length", &cl))) return rc;
        at = r->off;
        if ((rc = take(r, cl, "computed", &c))) return rc;
        if (prof__computed_decode(s, c, cl, &cv, &cvl, &bad, &what) != JD_OK) return prof__corrupt(r, at + bad, what);
    }
    if (r->version >= 5) {
        if ((rc = get32(r, "consent length", &ol))) goto out;
        at = r->off;
        if ((rc = take(r, ol, "consent", &o)) || (rc = check_tset(s, r, o, ol, at))) goto out;
    }
    if (r->version >= 7) {
        size_t bad = 0;
        const char *what;
        if ((rc = get32(r, "identities length", &il))) goto out;
        at = r->off;
        if ((rc = take(r, il, "identities", &id))) goto out;
        if ((what = prof__idents_check(id, il, &bad))) { rc = prof__corrupt(r, at + bad, what); goto out; }
    }
    /* every check passed: the tsets take their in-memory form (tset.c) */
    jd_buf m;
    jd_buf_init(&m, SIZE_MAX);
    prof__tset_from_disk(s, t, tl, &m);
    nr->traits = mem_blob(&m, &nr->traits_len);
    prof__groups_from_disk(s, g, gl, &m);
    nr->groups = mem_blob(&m, &nr->groups_len);
    prof__tset_from_disk(s, o, ol, &m);
    nr->consent = mem_blob(&m, &nr->consent_len);
    jd_buf_release(&m);
    nr->tags = xl ? memcpy(jd_xmalloc(xl), x, xl) : NULL;
    nr->computed = cv;
    nr->idents = il ? memcpy(jd_xmalloc(il), id, il) : NULL;
    cv = NULL;
    nr->tags_len = xl;
    nr->computed_len = cvl;
    nr->idents_len = il;
out:
    free(cv);
    return rc;
}

int prof__decode_one(prof_store *s, reader *r, prof **out, jd_buf *idx, size_t *key_at)
{
    uint32_t kn = 0;
    const uint8_t *key = NULL;
    size_t at = *key_at = r->off;
    prof *p = NULL;
    int rc;
    *out = NULL;
    if ((rc = get32(r, "key length", &kn)) || (rc = take(r, kn, "key", &key))) return rc;
    if (kn == 0 || kn >= (1u << 30)) return prof__corrupt(r, at, "bad key length");
    uint8_t flags;
    at = r->off;
    if ((rc = get8(r, "flags", &flags))) return rc;
    if (flags != PROF_F_USER && flags != PROF_F_KEY_ANON) return prof__corrupt(r, at, "bad flags");

    int64_t first, last;
    uint32_t counts[PROF_NTYPES], limited;
    if ((rc = get64(r, "firstSeen", &first)) || (rc = get64(r, "lastSeen", &last))) return rc;
    for (int i = 0; i < PROF_NTYPES; i++)
        if ((rc = get32(r, "count", &counts[i]))) return rc;
    if ((rc = get32(r, "limited", &limited))) return rc;

    /* Detached: the caller adopts it into a store, or merges and frees it. */
    p = prof__new((const char *)key, kn, flags);
    p->first_us = first;
    p->last_us = last;
    memcpy(p->counts, counts, sizeof counts);
    p->limited = limited;
    if ((rc = decode_vec(s, r, p, &p->vec, idx))) goto out;
    struct prof_rich nr;
    if ((rc = decode_rich(s, r, &nr))) goto out;
    if (nr.traits_len || nr.groups_len || nr.tags_len || nr.computed_len || nr.consent_len || nr.idents_len) {
        p->rich = jd_xmalloc(sizeof *p->rich);
        *p->rich = nr;
    }
    if (r->version >= SNAP_VERSION) {   /* (6); on error p (with its rich part) is freed */
        uint32_t tn;
        const uint8_t *t = NULL;
        size_t bad = 0;
        const char *what;
        if ((rc = get32(r, "timeline length", &tn))) goto out;
        at = r->off;
        if ((rc = take(r, tn, "timeline", &t))) goto out;
        if ((what = prof__tl_check(t, tn, p->vec, &bad))) { rc = prof__corrupt(r, at + bad, what); goto out; }
        p->tl = prof__tl_blob(t, tn);
    }
    *out = p;
    p = NULL;
out:
    prof__free(p);
    return rc;
}

/* Decodes one profile of a snapshot into s: adopts it and restores its
 * by_anon slots (2). */
static int decode_into(prof_store *s, reader *r, jd_buf *idx)
{
    prof *p = NULL;
    size_t at = 0;
    int rc = prof__decode_one(s, r, &p, idx, &at);
    if (rc != JD_OK) return rc;
    if (prof__index_get(&s->by_key, p->key, p->key_len)) {
        prof__free(p);
        return prof__corrupt(r, at, "duplicate key");
    }
    prof__adopt(s, p);
    const uint8_t *q = p->vec ? p->vec + 4 : NULL;
    for (unsigned i = 0, n_ids = p->vec ? prof__rd16(p->vec) : 0; i < n_ids; i++) {
        uint32_t n;
        q += prof__uv_get(q, &n);
        if (idx->data[i]) {
            if (jd_map_get(s->by_anon, (const char *)q, n))
                return prof__corrupt(r, at, "anonymousId owned twice");   /* prof__clear frees p */
            jd_map_put(s->by_anon, (const char *)q, n, p);
        }
        q += n;
    }
    return JD_OK;
}

int prof_store_decode(prof_store *s, const void *data, size_t n, jd_err *err)
{
    if (s->by_key.len != 0)
        return jd_err_set(err, JD_EINVAL, "", "profile snapshot: store is not empty");
    reader r = { data, n, 0, err, 0, "profile snapshot", "byte " };
    uint8_t ver = 0;
    int64_t count = 0;
    jd_buf idx;
    jd_buf_init(&idx, SIZE_MAX);
    int rc = get8(&r, "version", &ver);
    if (rc) goto out;
    if (ver < SNAP_VERSION_V1 || ver > SNAP_VERSION) {
        rc = prof__corrupt(&r, 0, "unknown version");
        goto out;
    }
    r.version = ver;
    if ((rc = get64(&r, "count", &count))) goto out;
    /* A count past what the bytes left could hold is a lie. */
    size_t min = ver == SNAP_VERSION_V1 ? SNAP_MIN_PROFILE_V1 : ver == SNAP_VERSION_V2 ? SNAP_MIN_PROFILE_V2
                                                                                   : SNAP_MIN_PROFILE;
    if (count < 0 || (uint64_t)count > (n - r.off) / min) {
        rc = prof__corrupt(&r, 1, "count past the end");
        goto out;
    }
    s->computed_ring = ver <= SNAP_VERSION_V5;
    for (int64_t i = 0; i < count; i++)
        if ((rc = decode_into(s, &r, &idx))) goto out;
    if (ver >= SNAP_VERSION_V4) {
        int64_t nsupp = 0;
        if ((rc = get64(&r, "suppression count", &nsupp))) goto out;
        if (nsupp < 0 || (uint64_t)nsupp > (n - r.off) / 13) {   /* each at least 4 + 1 + 8 bytes */
            rc = prof__corrupt(&r, r.off, "suppression count past the end");
            goto out;
        }
        for (int64_t i = 0; i < nsupp; i++) {
            uint32_t len = 0;
            const uint8_t *id;
            int64_t at = 0;
            if ((rc = get32(&r, "suppressed id length", &len))) goto out;
            if (len == 0 || len >= (1u << 30)) { rc = prof__corrupt(&r, r.off, "bad suppressed id length"); goto out; }
            if ((rc = take(&r, len, "suppressed id", &id))) goto out;
            if ((rc = get64(&r, "suppression time", &at))) goto out;
            if (jd_map_get(s->suppressed, (const char *)id, len)) { rc = prof__corrupt(&r, r.off, "repeated suppressed id"); goto out; }
            prof__suppress(s, (const char *)id, len, at);
        }
    }
    if (r.off != n) rc = prof__corrupt(&r, r.off, "trailing bytes");
out:
    s->computed_ring = false;
    jd_buf_release(&idx);
    if (rc != JD_OK) prof__clear(s);
    return rc;
}
