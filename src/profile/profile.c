/* src/profile/profile.c -- the profiles of one partition: apply events, answer
 * lookups. The snapshot codec is in snapshot.c, computed traits (their
 * definitions and values) in computed.c, identity merges, identifiers and
 * refusal notes in merge.c, the trait sets' compact form and the store's
 * shared trait key names in tset.c, the index by key in index.c;
 * docs/internals/profile.md has
 * the memory layout with byte offsets, the merge rules and the sizes measured.
 *
 * The store is sized for ten million profiles a process, so a profile is one
 * allocation of 72 bytes plus its key, and everything that most profiles never
 * have (anonymousIds beyond the key, event names, traits, groups, the
 * timeline of timeline.c) hangs off
 * pointers that stay NULL until needed. No json_object outlives a call: traits
 * are kept as serialized JSON text (tset.c) and parsed only when an identify, group or
 * update brings new ones, or when prof_view builds the expression language's
 * view of one profile.
 *
 * Invariants:
 *  (1) by_key (index.c) holds every profile once and reads its key from
 *      prof.key, which never moves (a profile is never reallocated).
 *  (2) by_anon maps an anonymousId to the first profile that recorded it,
 *      unless that id is some profile's key when it is recorded (lookup tries
 *      by_key first, so such an entry could never be reached). Its key bytes
 *      point into the owner's vec; prof__vec_replace re-points them before it
 *      frees an old vec, so no slot ever holds freed bytes.
 *  (3) A profile's anonymousIds are distinct; their number (the key counting
 *      as one when PROF_F_KEY_ANON) never passes lim.max_anonymous_ids, event
 *      names never pass lim.max_event_names, groups never pass lim.max_groups.
 *  (4) Each trait set (the profile's and each group's) serializes to at most
 *      lim.max_traits_bytes, counting tombstones as "key":null; an update that
 *      would pass it is dropped whole and counted in `limited`.
 *  (5) A trait entry's set_us only grows: a value (or a null removing it) is
 *      taken only from an event whose timestamp_us >= set_us. Equal times: the
 *      later applied wins, which is log order, so replay agrees.
 *  (6) heap equals the sum of prof__alloc_size over every allocation reachable
 *      from the profiles; prof_store_bytes adds by_key's two arrays as they
 *      are and by_anon's slots as its length implies. The store's shared
 *      trait key names (tset.c, bounded) are not counted.
 *  (7) apply and update read no clock and no randomness: the store is a
 *      function of the events and updates applied, in order.
 *  (8) A profile's tags are distinct, each 1..PROF_MAX_TAG_BYTES bytes with
 *      no NUL, kept in the order added; an update never leaves more than
 *      lim.max_tags of them unless the profile already had more (a lowered
 *      limit), in which case it cannot add any.
 *  (9) prof_update is all or nothing: every op is checked and the new blobs
 *      are built aside before the profile changes.
 * (10) Only track events change computed values (computed.c has their own
 *      invariants), and reading them takes the time as an argument:
 *      prof_view and prof_get_json read windows at the profile's last_us.
 * (11) A deleted profile's key and anonymousIds are in `suppressed` until an
 *      identify carrying one of them arrives (prof_suppresses); the caller
 *      applies no other event whose key or anonymousId is suppressed.
 * (12) A profile with no event counted (one a merge created without a blob)
 *      takes firstSeen and lastSeen from its first event; merges (merge.c)
 *      keep (2), (3), (4), (6) and (8) with their own invariants.
 * (13) Every applied event, after its other effects, is recorded on the
 *      profile's timeline (timeline.c, when lim.timeline > 0), pointing at
 *      its counted name when it has one; journeys' messages are recorded by
 *      prof_timeline_message. Neither reads a clock.
 */
#include "profile_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const type_names[PROF_NTYPES] = {
    "track", "identify", "page", "screen", "group", "alias",
};

void prof_limits_default(prof_limits *l)
{
    l->max_traits_bytes = JD_DEF_MAX_TRAITS_BYTES;
    l->max_anonymous_ids = JD_DEF_MAX_ANON_IDS;
    l->max_event_names = JD_DEF_MAX_EVENT_NAMES;
    l->max_groups = JD_DEF_MAX_GROUPS;
    l->max_tags = JD_DEF_MAX_TAGS;
    l->timeline = 0;
    l->computed = NULL;
    l->consent = NULL;
}

prof_store *prof_store_create(const prof_limits *lim)
{
    prof_store *s = jd_xcalloc(1, sizeof *s);
    if (lim) s->lim = *lim;
    else prof_limits_default(&s->lim);
    /* The vec keeps its counts in u16s: a larger configured limit is clamped. */
    if (s->lim.max_anonymous_ids > PROF_VEC_MAX) s->lim.max_anonymous_ids = PROF_VEC_MAX;
    if (s->lim.max_event_names > PROF_VEC_MAX) s->lim.max_event_names = PROF_VEC_MAX;
    if (s->lim.timeline > JD_MAX_TIMELINE) s->lim.timeline = JD_MAX_TIMELINE;
    prof__index_init(&s->by_key);
    s->by_anon = jd_map_create(0);
    s->suppressed = jd_map_create(0);
    s->tok = json_tokener_new_ex(JD_DEF_MAX_JSON_DEPTH + 8);
    if (!s->tok) abort();   /* json-c's allocation failed: the OOM policy */
    json_tokener_set_flags(s->tok, JSON_TOKENER_STRICT);
    jd_buf_init(&s->scratch, SIZE_MAX);
    return s;
}

void prof__free(prof *p)
{
    if (!p) return;
    free(p->vec);
    free(p->tl);
    if (p->rich) {
        free(p->rich->traits);
        free(p->rich->groups);
        free(p->rich->tags);
        free(p->rich->computed);
        free(p->rich->consent);
        free(p->rich->idents);
        free(p->rich);
    }
    free(p);
}

static void free_suppressed(jd_map *m)
{
    size_t pos = 0;
    void *v;
    while (jd_map_next(m, &pos, NULL, NULL, &v)) free(v);
    jd_map_destroy(m);
}

void prof__clear(prof_store *s)
{
    size_t pos = 0;
    prof *p;
    while ((p = prof__index_next(&s->by_key, &pos))) prof__free(p);
    prof__index_release(&s->by_key);
    jd_map_destroy(s->by_anon);
    free_suppressed(s->suppressed);
    s->by_anon = jd_map_create(0);
    s->suppressed = jd_map_create(0);
    s->heap = 0;
}

void prof_store_destroy(prof_store *s)
{
    if (!s) return;
    size_t pos = 0;
    prof *p;
    while ((p = prof__index_next(&s->by_key, &pos))) prof__free(p);
    prof__index_release(&s->by_key);
    prof__keys_release(&s->keys);
    jd_map_destroy(s->by_anon);
    free_suppressed(s->suppressed);
    json_tokener_free(s->tok);
    jd_buf_release(&s->scratch);
    free(s);
}

jd_str prof_event_key(const ingest_event *ev)
{
    return ev->user_id.n > 0 ? ev->user_id : ev->anonymous_id;
}

size_t prof__alloc_size(size_t n)
{
    if (n == 0) return 0;
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return c < 32 ? 32 : c;
}

/* ---- the profile and its vec ------------------------------------------ */

prof *prof__new(const char *key, size_t kn, unsigned flags)
{
    JD_ASSERT(kn > 0 && kn < (1u << 30));
    prof *p = jd_xcalloc(1, sizeof *p + kn + 1);
    memcpy(p->key, key, kn);
    p->key_len = (uint32_t)kn;
    p->flags = flags & PROF_F_ALL;
    return p;
}

void prof__adopt(prof_store *s, prof *p)
{
    prof__index_put(&s->by_key, p);
    s->heap += prof__bytes(p);
}

prof *prof__insert(prof_store *s, const char *key, size_t kn, unsigned flags)
{
    prof *p = prof__new(key, kn, flags);
    prof__adopt(s, p);
    return p;
}

static const uint8_t *vec_ids_end(const uint8_t *v)
{
    const uint8_t *q = v + 4;
    for (unsigned i = prof__rd16(v); i > 0; i--) {
        uint32_t n;
        q += prof__uv_get(q, &n);
        q += n;
    }
    return q;
}

static const uint8_t *vec_evs_end(const uint8_t *v)
{
    const uint8_t *q = vec_ids_end(v);
    for (unsigned i = prof__rd16(v + 2); i > 0; i--) {
        uint32_t n;
        q += 4;
        q += prof__uv_get(q, &n);
        q += n;
    }
    return q;
}

size_t prof__vec_size(const uint8_t *vec) { return vec ? (size_t)(vec_evs_end(vec) - vec) : 0; }
size_t prof__vec_ids_size(const uint8_t *vec) { return vec ? (size_t)(vec_ids_end(vec) - vec) : 0; }

void prof__index_anon(prof_store *s, prof *p, const char *id, size_t n)
{
    if (prof__index_get(&s->by_key, id, n) || jd_map_get(s->by_anon, id, n)) return;
    jd_map_put(s->by_anon, id, n, p);
}

void prof__vec_replace(prof_store *s, prof *p, uint8_t *nv)
{
    uint8_t *old = p->vec;
    s->heap -= prof__alloc_size(prof__vec_size(old));
    s->heap += prof__alloc_size(prof__vec_size(nv));
    p->vec = nv;
    /* (2): while `old` is still alive, point every slot this profile owns at
     * the same id's bytes in nv (jd_map_put on a present key swaps the key). */
    if (old && nv) {
        const uint8_t *q = nv + 4;
        for (unsigned i = prof__rd16(nv); i > 0; i--) {
            uint32_t n;
            q += prof__uv_get(q, &n);
            if (jd_map_get(s->by_anon, (const char *)q, n) == p)
                jd_map_put(s->by_anon, (const char *)q, n, p);
            q += n;
        }
    }
    free(old);
}

static bool vec_has_id(const uint8_t *v, const char *id, size_t n)
{
    if (!v) return false;
    const uint8_t *q = v + 4;
    for (unsigned i = prof__rd16(v); i > 0; i--) {
        uint32_t len;
        q += prof__uv_get(q, &len);
        if (len == n && memcmp(q, id, n) == 0) return true;
        q += len;
    }
    return false;
}

/* Returns a new vec: v (may be NULL) with `extra` bytes of room opened at
 * offset `at`, counts unchanged. */
static uint8_t *vec_open(const uint8_t *v, size_t at, size_t extra)
{
    size_t size = v ? prof__vec_size(v) : 4;
    uint8_t *nv = jd_xmalloc(size + extra);
    if (v) {
        memcpy(nv, v, at);
        memcpy(nv + at + extra, v + at, size - at);
    } else {
        memset(nv, 0, 4);
    }
    return nv;
}

/* Records an anonymousId (or alias previousId) of p. */
static void add_anon_id(prof_store *s, prof *p, jd_str id)
{
    if (id.n == 0) return;
    bool key_anon = p->flags & PROF_F_KEY_ANON;
    if (key_anon && jd_str_eq(id, p->key, p->key_len)) return;
    if (vec_has_id(p->vec, id.p, id.n)) return;
    unsigned n_ids = p->vec ? prof__rd16(p->vec) : 0;
    if (n_ids + (key_anon ? 1u : 0u) >= s->lim.max_anonymous_ids) {   /* (3) */
        p->limited++;
        return;
    }
    size_t at = p->vec ? (size_t)(vec_ids_end(p->vec) - p->vec) : 4;
    size_t extra = prof__uv_len(id.n) + id.n;
    uint8_t *nv = vec_open(p->vec, at, extra);
    size_t w = prof__uv_put(nv + at, id.n);
    memcpy(nv + at + w, id.p, id.n);
    prof__wr16(nv, (uint16_t)(n_ids + 1));
    prof__vec_replace(s, p, nv);
    prof__index_anon(s, p, (const char *)nv + at + w, id.n);
}

/* Counts a track event's name; returns its index among p's names, -1 when
 * it is not counted (no name, or past max_event_names). */
static int count_event_name(prof_store *s, prof *p, jd_str name)
{
    if (name.n == 0) return -1;
    unsigned n_evs = 0;
    if (p->vec) {
        n_evs = prof__rd16(p->vec + 2);
        uint8_t *q = (uint8_t *)vec_ids_end(p->vec);
        for (unsigned i = 0; i < n_evs; i++) {
            uint32_t len;
            size_t w = prof__uv_get(q + 4, &len);
            if (len == name.n && memcmp(q + 4 + w, name.p, len) == 0) {
                uint32_t c = prof__rd32(q);
                if (c < UINT32_MAX) prof__wr32(q, c + 1);
                return (int)i;
            }
            q += 4 + w + len;
        }
    }
    if (n_evs >= s->lim.max_event_names) {   /* (3) */
        p->limited++;
        return -1;
    }
    size_t at = prof__vec_size(p->vec);
    if (!at) at = 4;
    uint8_t *nv = vec_open(p->vec, at, 4 + prof__uv_len(name.n) + name.n);
    prof__wr32(nv + at, 1);
    size_t w = prof__uv_put(nv + at + 4, name.n);
    memcpy(nv + at + 4 + w, name.p, name.n);
    prof__wr16(nv + 2, (uint16_t)(n_evs + 1));
    prof__vec_replace(s, p, nv);
    return (int)n_evs;
}

/* ---- traits ------------------------------------------------------------ */

static size_t rich_blob_bytes(const struct prof_rich *r)
{
    return prof__alloc_size(r->traits_len) + prof__alloc_size(r->groups_len) +
           prof__alloc_size(r->tags_len) + prof__alloc_size(r->computed_len) + prof__alloc_size(r->consent_len) +
           prof__alloc_size(r->idents_len);
}

size_t prof__bytes(const prof *p)
{
    size_t n = prof__alloc_size(sizeof *p + p->key_len + 1) + prof__alloc_size(prof__vec_size(p->vec)) +
               prof__alloc_size(prof__tl_size(p->tl));
    if (p->rich) n += prof__alloc_size(sizeof *p->rich) + rich_blob_bytes(p->rich);
    return n;
}

void prof__rich_set(prof_store *s, prof *p, const struct prof_rich *nr)
{
    JD_ASSERT(!nr->traits == !nr->traits_len && !nr->groups == !nr->groups_len &&
              !nr->tags == !nr->tags_len && !nr->computed == !nr->computed_len && !nr->consent == !nr->consent_len &&
              !nr->idents == !nr->idents_len);
    struct prof_rich *r = p->rich;
    if (r) {
        s->heap -= rich_blob_bytes(r);
        if (r->traits != nr->traits) free(r->traits);
        if (r->groups != nr->groups) free(r->groups);
        if (r->tags != nr->tags) free(r->tags);
        if (r->computed != nr->computed) free(r->computed);
        if (r->consent != nr->consent) free(r->consent);
        if (r->idents != nr->idents) free(r->idents);
    }
    if (!nr->traits_len && !nr->groups_len && !nr->tags_len && !nr->computed_len && !nr->consent_len &&
        !nr->idents_len) {
        if (r) s->heap -= prof__alloc_size(sizeof *r);
        free(r);
        p->rich = NULL;
        return;
    }
    if (!r) {
        r = p->rich = jd_xmalloc(sizeof *r);
        s->heap += prof__alloc_size(sizeof *r);
    }
    *r = *nr;
    s->heap += rich_blob_bytes(r);
}

json_object *prof__parse_value(prof_store *s, const void *t, size_t n, bool *ok)
{
    *ok = false;
    if (n > INT32_MAX - 2) return NULL;
    jd_buf *b = &s->scratch;
    jd_buf_reset(b);
    jd_buf_add(b, "[", 1);
    jd_buf_add(b, t, n);
    jd_buf_add(b, "]", 1);
    json_tokener_reset(s->tok);
    json_object *a = json_tokener_parse_ex(s->tok, b->data, (int)b->len);
    *ok = a && json_tokener_get_error(s->tok) == json_tokener_success &&
          json_tokener_get_parse_end(s->tok) == b->len &&
          json_object_is_type(a, json_type_array) && json_object_array_length(a) == 1;
    json_object *v = *ok ? json_object_get(json_object_array_get_idx(a, 0)) : NULL;
    json_object_put(a);
    return v;
}

/* Bytes jd_buf_add_json_str writes for s (quotes included). */
static size_t json_str_len(const char *s, size_t n)
{
    size_t len = 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t') len += 2;
        else if (c < 0x20) len += 6;
        else len += 1;
    }
    return len;
}

/* The size (4) is about: the traits object as prof_get_json writes it, plus
 * each tombstone as if it were "key":null. */
size_t prof__tset_json_size(const prof_store *s, const uint8_t *t, size_t n)
{
    size_t size = 2, entries = 0;
    prof_titer it;
    prof_tent e;
    prof__titer_init(&it, t, n);
    for (; prof__tset_next(s, &it, &e); entries++) {
        uint32_t vl = prof__tent_json_len(&e);
        size += json_str_len(e.k, e.kl) + 1 + (vl ? vl : 4);
    }
    return size + (entries ? entries - 1 : 0);
}

static const char *json_text(json_object *v, uint32_t *len)
{
    size_t n = 0;
    const char *t = json_object_to_json_string_length(
        v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    *len = (uint32_t)n;
    return t;
}

enum { MERGE_SAME, MERGE_CHANGED, MERGE_OVER };

/* Merges the object `in` into the tset (old, old_len) at time ts under the
 * rules (4) and (5). On MERGE_CHANGED *out is a new owned tset (NULL when it
 * came out empty). Existing keys keep their place; new keys follow, in the
 * order the event has them. */
static int tset_merge(prof_store *s, const uint8_t *old, uint32_t old_len, json_object *in,
                      int64_t ts, uint8_t **out, uint32_t *out_len)
{
    jd_buf *b = &s->scratch;
    jd_buf_reset(b);
    jd_map *seen = old_len ? jd_map_create(16) : NULL;
    int64_t prev = PROF_TSET_EPOCH;
    prof_titer it;
    prof_tent e;
    prof__titer_init(&it, old, old_len);
    while (prof__tset_next(s, &it, &e)) {
        jd_map_put(seen, e.k, e.kl, (void *)e.k);
        json_object *nv;
        /* A key holding a NUL cannot come from json-c: leave it alone. */
        if (strlen(e.k) == e.kl && json_object_object_get_ex(in, e.k, &nv) && ts >= e.at) {   /* (5) */
            uint32_t nl = 0;
            const char *nt = nv ? json_text(nv, &nl) : "";
            prof__tent_set_value(&e, nt, nl);
            e.at = ts;
        }
        prof__tset_put(b, &prev, &e);
    }
    json_object_object_foreach(in, key, val) {
        size_t kl = strlen(key);
        if (seen && jd_map_get(seen, key, kl)) continue;
        JD_ASSERT(kl < (1u << 30));
        uint32_t vl = 0;
        const char *vt = val ? json_text(val, &vl) : "";
        /* A null for a key never set still leaves a tombstone: an older
         * event arriving later must not set it (5). */
        e.kid = prof__key_id(s, key, kl);
        e.k = key;
        e.kl = (uint32_t)kl;
        e.at = ts;
        prof__tent_set_value(&e, vt, vl);
        prof__tset_put(b, &prev, &e);
    }
    jd_map_destroy(seen);
    if (b->len == old_len && (old_len == 0 || memcmp(b->data, old, old_len) == 0))
        return MERGE_SAME;
    if (b->len > UINT32_MAX || prof__tset_json_size(s, (const uint8_t *)b->data, b->len) > s->lim.max_traits_bytes)
        return MERGE_OVER;
    *out_len = (uint32_t)b->len;
    *out = b->len ? jd_xmalloc(b->len) : NULL;
    if (b->len) memcpy(*out, b->data, b->len);
    return MERGE_CHANGED;
}

static void apply_traits(prof_store *s, prof *p, json_object *traits, int64_t ts)
{
    struct prof_rich nr = prof__rich_get(p);
    uint8_t *nt = NULL;
    uint32_t nl = 0;
    int rc = tset_merge(s, nr.traits, nr.traits_len, traits, ts, &nt, &nl);
    if (rc == MERGE_OVER) p->limited++;
    if (rc != MERGE_CHANGED) return;
    nr.traits = nt;
    nr.traits_len = nl;
    prof__rich_set(s, p, &nr);
}

/* traits.consent of an identify: {"email/marketing": true, "sms": false,
 * "push/news": null} -> the consent tset, with the source of the change
 * (context.consent.source, else "identify"). Keys are "channel" or
 * "channel/topic"; values other than true/false/null are ignored. The key
 * is taken out of traits (it is not a trait). */
static void apply_consent(prof_store *s, prof *p, json_object *root, json_object *traits, int64_t ts)
{
    json_object *c, *ctx, *cs, *src;
    if (!json_object_object_get_ex(traits, "consent", &c)) return;
    if (json_object_is_type(c, json_type_object)) {
        const char *source = "identify";
        if (json_object_object_get_ex(root, "context", &ctx) && json_object_object_get_ex(ctx, "consent", &cs) &&
            json_object_object_get_ex(cs, "source", &src) && json_object_is_type(src, json_type_string))
            source = json_object_get_string(src);
        json_object *in = json_object_new_object();
        json_object_object_foreach(c, key, val) {
            if (!*key || strlen(key) > 128) continue;
            if (!val) { json_object_object_add(in, key, NULL); continue; }
            if (!json_object_is_type(val, json_type_boolean)) continue;
            json_object *e = json_object_new_object();
            json_object_object_add(e, "granted", json_object_new_boolean(json_object_get_boolean(val)));
            json_object_object_add(e, "source", json_object_new_string(source));
            json_object_object_add(in, key, e);
        }
        struct prof_rich nr = prof__rich_get(p);
        uint8_t *nt = NULL;
        uint32_t nl = 0;
        int rc = json_object_object_length(in) ? tset_merge(s, nr.consent, nr.consent_len, in, ts, &nt, &nl) : MERGE_SAME;
        if (rc == MERGE_OVER) p->limited++;
        if (rc == MERGE_CHANGED) {
            nr.consent = nt;
            nr.consent_len = nl;
            prof__rich_set(s, p, &nr);
        }
        json_object_put(in);
    }
    json_object_object_del(traits, "consent");
}

static void apply_group(prof_store *s, prof *p, jd_str gid, json_object *traits, int64_t ts)
{
    const struct prof_rich *r = p->rich;
    const uint8_t *g = r ? r->groups : NULL, *end = g ? g + r->groups_len : NULL;
    const uint8_t *hit = NULL;
    unsigned n_groups = 0;
    for (const uint8_t *q = g; q < end; n_groups++) {
        uint32_t gl = prof__rd32(q), tl = prof__rd32(q + 4);
        if (gl == gid.n && memcmp(q + PROF_GRP_HDR, gid.p, gl) == 0) hit = q;
        q += PROF_GRP_HDR + gl + tl;
    }
    if (!hit && n_groups >= s->lim.max_groups) {   /* (3) */
        p->limited++;
        return;
    }
    const uint8_t *ot = hit ? hit + PROF_GRP_HDR + gid.n : NULL;
    uint32_t ol = hit ? prof__rd32(hit + 4) : 0;
    uint8_t *nt = NULL;
    uint32_t nl = 0;
    int rc = traits ? tset_merge(s, ot, ol, traits, ts, &nt, &nl) : MERGE_SAME;
    if (rc == MERGE_OVER) { p->limited++; return; }
    if (rc == MERGE_SAME && hit) return;
    if (rc == MERGE_SAME) { nt = NULL; nl = 0; }   /* a new group without traits */

    /* Rebuild the groups blob with the one entry replaced or appended. */
    size_t old_len = r ? r->groups_len : 0;
    size_t new_len = old_len - (hit ? ol : 0) + nl + (hit ? 0 : PROF_GRP_HDR + gid.n);
    JD_ASSERT(new_len <= UINT32_MAX);
    uint8_t *ng = jd_xmalloc(new_len), *w = ng;
    if (hit) {
        size_t before = (size_t)(hit - g), entry = PROF_GRP_HDR + gid.n + ol;
        memcpy(w, g, before + PROF_GRP_HDR + gid.n);
        prof__wr32(w + before + 4, nl);
        w += before + PROF_GRP_HDR + gid.n;
        if (nl) memcpy(w, nt, nl);
        w += nl;
        memcpy(w, hit + entry, (size_t)(end - (hit + entry)));
    } else {
        if (old_len) memcpy(w, g, old_len);
        w += old_len;
        prof__wr32(w, gid.n);
        prof__wr32(w + 4, nl);
        memcpy(w + PROF_GRP_HDR, gid.p, gid.n);
        if (nl) memcpy(w + PROF_GRP_HDR + gid.n, nt, nl);
    }
    free(nt);
    struct prof_rich nr = prof__rich_get(p);
    nr.groups = ng;
    nr.groups_len = (uint32_t)new_len;
    prof__rich_set(s, p, &nr);
}

/* ---- apply ------------------------------------------------------------- */

/* Parses the record's JSON and finds its `field` object ("traits" or
 * "properties"; NULL if none). *root is owned by the caller (json_object_put). */
static int read_object(prof_store *s, const ingest_event *ev, const char *field, json_object **root,
                       json_object **traits, jd_err *err)
{
    *root = NULL;
    *traits = NULL;
    if (ev->json.n == 0) return JD_OK;
    json_tokener_reset(s->tok);
    json_object *o = json_tokener_parse_ex(s->tok, ev->json.p, (int)ev->json.n);
    enum json_tokener_error e = json_tokener_get_error(s->tok);
    if (!o || e != json_tokener_success || json_tokener_get_parse_end(s->tok) != ev->json.n ||
        !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return jd_err_set(err, JD_EINVAL, "profile", "unreadable event json: %s",
                          e == json_tokener_success ? "not one object" : json_tokener_error_desc(e));
    }
    json_object *t;
    if (json_object_object_get_ex(o, field, &t) && json_object_is_type(t, json_type_object))
        *traits = t;
    *root = o;
    return JD_OK;
}

int prof_apply(prof_store *s, const ingest_event *ev, jd_err *err)
{
    jd_str key = prof_event_key(ev);
    if (key.n == 0 || key.n >= (1u << 30))
        return jd_err_set(err, JD_EINVAL, "profile", "event has no userId or anonymousId");
    if (ev->type < INGEST_TRACK || ev->type >= INGEST_TYPE_COUNT_)
        return jd_err_set(err, JD_EINVAL, "profile", "unknown event type %d", (int)ev->type);

    /* Parse before touching the profile: an unreadable record changes nothing.
     * A track event's JSON is parsed only when a computed trait reads one of
     * its properties. */
    json_object *root = NULL, *traits = NULL;
    uint64_t ct_mask = 0;
    if (ev->type == INGEST_IDENTIFY || ev->type == INGEST_GROUP) {
        int rc = read_object(s, ev, "traits", &root, &traits, err);
        if (rc != JD_OK) return rc;
    } else if (ev->type == INGEST_TRACK && s->lim.computed) {
        ct_mask = prof__computed_mask(s->lim.computed, ev->event);
        if (ct_mask && prof__computed_needs_props(s->lim.computed, ct_mask)) {
            int rc = read_object(s, ev, "properties", &root, &traits, err);
            if (rc != JD_OK) return rc;
        }
    }

    prof *p = prof__index_get(&s->by_key, key.p, key.n);
    if (!p) p = prof__insert(s, key.p, key.n, ev->user_id.n ? PROF_F_USER : PROF_F_KEY_ANON);
    if (!prof__seen(p)) p->first_us = p->last_us = ev->timestamp_us;   /* also one a merge created */
    uint32_t *c = &p->counts[ev->type - INGEST_TRACK];
    if (*c < UINT32_MAX) (*c)++;
    if (ev->timestamp_us < p->first_us) p->first_us = ev->timestamp_us;
    if (ev->timestamp_us > p->last_us) p->last_us = ev->timestamp_us;

    add_anon_id(s, p, ev->anonymous_id);
    int name_idx = -1;
    switch (ev->type) {
    case INGEST_TRACK:
        name_idx = count_event_name(s, p, ev->event);
        if (ct_mask) prof__computed_apply(s, p, ct_mask, traits, ev->timestamp_us);
        break;
    case INGEST_ALIAS:    add_anon_id(s, p, ev->previous_id); break;
    case INGEST_IDENTIFY:
        if (traits) apply_consent(s, p, root, traits, ev->timestamp_us);
        if (traits) apply_traits(s, p, traits, ev->timestamp_us);
        break;
    case INGEST_GROUP:
        if (ev->group_id.n) apply_group(s, p, ev->group_id, traits, ev->timestamp_us);
        break;
    default: break;
    }
    prof__tl_event(s, p, ev, name_idx);   /* (13) */
    json_object_put(root);
    return JD_OK;
}

/* ---- deletion and suppression (invariant 11) ----------------------------- */

void prof__suppress(prof_store *s, const char *id, size_t n, int64_t at_us)
{
    prof_supp *e = jd_xmalloc(sizeof *e + n + 1);
    e->at_us = at_us;
    e->len = (uint32_t)n;
    memcpy(e->id, id, n);
    e->id[n] = 0;
    free(jd_map_del(s->suppressed, id, n));
    jd_map_put(s->suppressed, e->id, n, e);
}

int prof_delete(prof_store *s, const char *id, size_t n, int64_t at_us, char *key_out, size_t cap)
{
    prof *p = prof__index_get(&s->by_key, id, n);
    if (!p) p = jd_map_get(s->by_anon, id, n);
    if (!p) return JD_ENOTFOUND;
    if (cap) snprintf(key_out, cap, "%.*s", (int)p->key_len, p->key);
    /* Every id of the person is suppressed (and unindexed by prof__remove). */
    prof__suppress(s, p->key, p->key_len, at_us);
    if (p->vec) {
        const uint8_t *q = p->vec + 4;
        for (unsigned i = prof__rd16(p->vec); i > 0; i--) {
            uint32_t len;
            q += prof__uv_get(q, &len);
            prof__suppress(s, (const char *)q, len, at_us);
            q += len;
        }
    }
    prof__remove(s, p);
    return JD_OK;
}

void prof__remove(prof_store *s, prof *p)
{
    /* (2): the slots that point here go. Another profile listing the same id
     * is not indexed in its place: that would take a scan of the store. */
    if (p->vec) {
        const uint8_t *q = p->vec + 4;
        for (unsigned i = prof__rd16(p->vec); i > 0; i--) {
            uint32_t len;
            q += prof__uv_get(q, &len);
            if (jd_map_get(s->by_anon, (const char *)q, len) == p) jd_map_del(s->by_anon, (const char *)q, len);
            q += len;
        }
    }
    prof__index_del(&s->by_key, p);
    s->heap -= prof__bytes(p);
    prof__free(p);
}

bool prof_is_key(const prof_store *s, const char *id, size_t n) { return prof__index_get(&s->by_key, id, n) != NULL; }

void prof_suppress(prof_store *s, const char *id, size_t n, int64_t at_us)
{
    if (n && n < (1u << 30)) prof__suppress(s, id, n, at_us);
}

static bool lift(prof_store *s, jd_str id)
{
    prof_supp *e = id.n ? jd_map_del(s->suppressed, id.p, id.n) : NULL;
    free(e);
    return e != NULL;
}

bool prof_suppresses(prof_store *s, const ingest_event *ev)
{
    if (!jd_map_len(s->suppressed)) return false;
    jd_str key = prof_event_key(ev);
    bool hit = (key.n && jd_map_get(s->suppressed, key.p, key.n)) ||
               (ev->anonymous_id.n && jd_map_get(s->suppressed, ev->anonymous_id.p, ev->anonymous_id.n));
    if (!hit || ev->type != INGEST_IDENTIFY) return hit;
    lift(s, key);   /* they came back on purpose: a new profile from here on */
    lift(s, ev->anonymous_id);
    return false;
}

size_t prof_suppressed_count(const prof_store *s) { return jd_map_len(s->suppressed); }

/* ---- update (journeys' update nodes) ----------------------------------- */

/* Offset of the entry for tag (t, n) in a tags blob of len bytes, or -1. */
static ptrdiff_t tag_find(const uint8_t *g, size_t len, const char *t, size_t n)
{
    for (size_t i = 0; i < len;) {
        uint32_t tl = prof__rd32(g + i);
        if (tl == n && memcmp(g + i + PROF_TAG_HDR, t, n) == 0) return (ptrdiff_t)i;
        i += PROF_TAG_HDR + tl;
    }
    return -1;
}

static size_t tag_count(const uint8_t *g, size_t len)
{
    size_t k = 0;
    for (size_t i = 0; i < len; k++) i += PROF_TAG_HDR + prof__rd32(g + i);
    return k;
}

/* True if the tags blob (w, len) holds a tag that (old, old_len) does not. */
static bool tags_gained(const uint8_t *w, size_t len, const uint8_t *old, size_t old_len)
{
    for (size_t i = 0; i < len;) {
        uint32_t tl = prof__rd32(w + i);
        if (tag_find(old, old_len, (const char *)w + i + PROF_TAG_HDR, tl) < 0) return true;
        i += PROF_TAG_HDR + tl;
    }
    return false;
}

/* Checks every op (nothing changes yet). Gathers the SET/UNSET ops into *in,
 * an identify-like traits object (NULL if none; owned by the caller), so the
 * trait merge is tset_merge's, once. Sets *tag_room to the bytes TAG ops can
 * add at most. */
static int check_ops(prof_store *s, const prof_op *ops, size_t n, json_object **in,
                     size_t *tag_room, jd_err *err)
{
    char where[32];
    *in = NULL;
    *tag_room = 0;
    for (size_t i = 0; i < n; i++) {
        const prof_op *op = &ops[i];
        snprintf(where, sizeof where, "ops[%zu]", i);
        if (!op->name) return jd_err_set(err, JD_EINVAL, where, "op has no name");
        size_t nl = strlen(op->name);
        switch (op->kind) {
        case PROF_OP_SET:
        case PROF_OP_UNSET: {
            json_object *v = NULL;
            if (op->kind == PROF_OP_SET) {
                bool ok = false;
                if (op->json) v = prof__parse_value(s, op->json, op->json_len, &ok);
                if (!ok)
                    return jd_err_set(err, JD_EINVAL, where, "value of trait \"%.*s\" is not one JSON value",
                                      (int)(nl > 64 ? 64 : nl), op->name);
            }
            if (!*in) *in = json_object_new_object();
            json_object_object_add(*in, op->name, v);   /* a later op on the key replaces it */
            break;
        }
        case PROF_OP_TAG:
        case PROF_OP_UNTAG:
            if (nl == 0) return jd_err_set(err, JD_EINVAL, where, "empty tag");
            if (nl > PROF_MAX_TAG_BYTES)
                return jd_err_set(err, JD_ELIMIT, where, "tag is %zu bytes, longer than %u", nl,
                                  (unsigned)PROF_MAX_TAG_BYTES);
            if (op->kind == PROF_OP_TAG) *tag_room += PROF_TAG_HDR + nl;
            break;
        default:
            return jd_err_set(err, JD_EINVAL, where, "unknown op kind %d", (int)op->kind);
        }
    }
    return JD_OK;
}

/* Applies the TAG/UNTAG ops to a copy of the tags blob (old, old_len). On
 * JD_OK, *out is the new blob (owned; NULL when empty) if *changed. */
static int merge_tags(prof_store *s, const uint8_t *old, uint32_t old_len, const prof_op *ops,
                      size_t n, size_t room, int64_t ts, uint8_t **out, uint32_t *out_len,
                      bool *changed, jd_err *err)
{
    *out = NULL;
    *out_len = 0;
    *changed = false;
    size_t cap = old_len + room, len = old_len;
    if (cap == 0) return JD_OK;
    uint8_t *w = jd_xmalloc(cap);
    if (old_len) memcpy(w, old, old_len);
    size_t count = tag_count(old, old_len);
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind != PROF_OP_TAG && ops[i].kind != PROF_OP_UNTAG) continue;
        size_t tl = strlen(ops[i].name);
        ptrdiff_t at = tag_find(w, len, ops[i].name, tl);
        if (ops[i].kind == PROF_OP_TAG && at < 0) {
            prof__wr32(w + len, (uint32_t)tl);
            prof__wr64(w + len + 4, ts);
            memcpy(w + len + PROF_TAG_HDR, ops[i].name, tl);
            len += PROF_TAG_HDR + tl;
            count++;
        } else if (ops[i].kind == PROF_OP_UNTAG && at >= 0) {
            size_t e = PROF_TAG_HDR + tl, a = (size_t)at;
            memmove(w + a, w + a + e, len - a - e);
            len -= e;
            count--;
        }
    }
    /* (8): a result over the limit is refused only if it gained a tag, so
     * that an update removing tags still works on a profile over a lowered
     * limit. The scan is quadratic but runs only on the refusal path. */
    if (count > s->lim.max_tags && tags_gained(w, len, old, old_len)) {
        free(w);
        return jd_err_set(err, JD_ELIMIT, "profiles.max_tags", "profile would have %zu tags, more than %u",
                          count, (unsigned)s->lim.max_tags);
    }
    if (len == old_len && (len == 0 || memcmp(w, old, len) == 0)) {
        free(w);
        return JD_OK;
    }
    JD_ASSERT(len <= UINT32_MAX);
    *changed = true;
    *out_len = (uint32_t)len;
    if (len == 0) free(w);
    else *out = len == cap ? w : jd_xrealloc(w, len);   /* the blob's size is what heap counts */
    return JD_OK;
}

int prof_update(prof_store *s, const char *key, size_t key_len, const prof_op *ops, size_t n,
                int64_t ts, jd_err *err)
{
    prof *p = key_len ? prof__index_get(&s->by_key, key, key_len) : NULL;
    if (!p) return jd_err_set(err, JD_ENOTFOUND, "profile", "no profile with this key");
    json_object *in = NULL;
    uint8_t *nt = NULL, *ng = NULL;
    uint32_t ntl = 0, ngl = 0;
    size_t room = 0;
    bool tags_changed = false;
    struct prof_rich nr = prof__rich_get(p);
    int merge = MERGE_SAME;

    int rc = check_ops(s, ops, n, &in, &room, err);
    if (rc != JD_OK) goto out;
    if (in) merge = tset_merge(s, nr.traits, nr.traits_len, in, ts, &nt, &ntl);
    if (merge == MERGE_OVER) {
        rc = jd_err_set(err, JD_ELIMIT, "profiles.max_traits_bytes", "traits would pass %u bytes",
                        (unsigned)s->lim.max_traits_bytes);
        goto out;
    }
    rc = merge_tags(s, nr.tags, nr.tags_len, ops, n, room, ts, &ng, &ngl, &tags_changed, err);
    if (rc != JD_OK) goto out;

    /* (9): from here on nothing can fail. */
    if (merge == MERGE_CHANGED) { nr.traits = nt; nr.traits_len = ntl; nt = NULL; }
    if (tags_changed) { nr.tags = ng; nr.tags_len = ngl; ng = NULL; }
    if (merge == MERGE_CHANGED || tags_changed) prof__rich_set(s, p, &nr);
out:
    json_object_put(in);
    free(nt);
    free(ng);
    return rc;
}

/* ---- reading ----------------------------------------------------------- */

static int add_time(jd_buf *b, int64_t us)
{
    char t[JD_TIME_TEXT];
    size_t n = jd_time_format(us, t);
    return jd_buf_add(b, "\"", 1) | jd_buf_add(b, t, n) | jd_buf_add(b, "\"", 1);
}

/* Writes the trait set as {"k":v,...}, or with times {"k":"<time>",...};
 * tombstones are left out of both. */
static int add_tset(const prof_store *s, jd_buf *b, const uint8_t *t, size_t n, bool times)
{
    int rc = jd_buf_add(b, "{", 1);
    bool first = true;
    prof_titer it;
    prof_tent e;
    prof__titer_init(&it, t, n);
    while (prof__tset_next(s, &it, &e)) {
        if (prof__tent_json_len(&e)) {
            if (!first) rc |= jd_buf_add(b, ",", 1);
            first = false;
            rc |= jd_buf_add_json_str(b, e.k, e.kl) | jd_buf_add(b, ":", 1);
            rc |= times ? add_time(b, e.at) : prof__tent_json(b, &e, false);
        }
    }
    return rc | jd_buf_add(b, "}", 1);
}

static int write_json(const prof_store *s, const prof *p, jd_buf *b)
{
    int rc = jd_buf_adds(b, "{\"key\":") | jd_buf_add_json_str(b, p->key, p->key_len);
    rc |= jd_buf_adds(b, ",\"userId\":");
    rc |= (p->flags & PROF_F_USER) ? jd_buf_add_json_str(b, p->key, p->key_len) : jd_buf_adds(b, "null");

    rc |= jd_buf_adds(b, ",\"anonymousIds\":[");
    bool first = true;
    if (p->flags & PROF_F_KEY_ANON) {
        rc |= jd_buf_add_json_str(b, p->key, p->key_len);
        first = false;
    }
    const uint8_t *q = p->vec ? p->vec + 4 : NULL;
    for (unsigned i = p->vec ? prof__rd16(p->vec) : 0; i > 0; i--) {
        uint32_t n;
        q += prof__uv_get(q, &n);
        if (!first) rc |= jd_buf_add(b, ",", 1);
        first = false;
        rc |= jd_buf_add_json_str(b, (const char *)q, n);
        q += n;
    }

    rc |= jd_buf_adds(b, "]") | prof__idents_json(p, b, false);

    const struct prof_rich *r = p->rich;
    rc |= jd_buf_adds(b, ",\"traits\":") | add_tset(s, b, r ? r->traits : NULL, r ? r->traits_len : 0, false);
    rc |= jd_buf_adds(b, ",\"traitTimes\":") | add_tset(s, b, r ? r->traits : NULL, r ? r->traits_len : 0, true);

    rc |= jd_buf_adds(b, ",\"tags\":[");
    const uint8_t *t = r ? r->tags : NULL, *tend = t ? t + r->tags_len : NULL;
    for (first = true; t < tend; first = false) {
        uint32_t tl = prof__rd32(t);
        if (!first) rc |= jd_buf_add(b, ",", 1);
        rc |= jd_buf_add_json_str(b, (const char *)t + PROF_TAG_HDR, tl);
        t += PROF_TAG_HDR + tl;
    }
    rc |= jd_buf_add(b, "]", 1);

    /* consent: {"email/marketing":{"granted":true,"source":"identify","at":"..."}} */
    rc |= jd_buf_adds(b, ",\"consent\":{");
    first = true;
    prof_titer it;
    prof_tent e;
    prof__titer_init(&it, r ? r->consent : NULL, r ? r->consent_len : 0);
    while (prof__tset_next(s, &it, &e)) {
        if (prof__tent_json_len(&e) > 1) {   /* a value object "{...}": written without its "}", then the time */
            if (!first) rc |= jd_buf_add(b, ",", 1);
            first = false;
            rc |= jd_buf_add_json_str(b, e.k, e.kl) | jd_buf_add(b, ":", 1) | prof__tent_json(b, &e, true);
            rc |= jd_buf_adds(b, ",\"at\":") | add_time(b, e.at) | jd_buf_add(b, "}", 1);
        }
    }
    rc |= jd_buf_add(b, "}", 1);

    rc |= jd_buf_adds(b, ",\"groups\":{");
    const uint8_t *g = r ? r->groups : NULL, *gend = g ? g + r->groups_len : NULL;
    for (first = true; g < gend; first = false) {
        uint32_t gl = prof__rd32(g), tl = prof__rd32(g + 4);
        const uint8_t *gid = g + PROF_GRP_HDR;
        if (!first) rc |= jd_buf_add(b, ",", 1);
        rc |= jd_buf_add_json_str(b, (const char *)gid, gl) | jd_buf_adds(b, ":{\"traits\":");
        rc |= add_tset(s, b, gid + gl, tl, false) | jd_buf_add(b, "}", 1);
        g = gid + gl + tl;
    }

    uint64_t total = 0;
    for (int i = 0; i < PROF_NTYPES; i++) total += p->counts[i];
    rc |= jd_buf_addf(b, "},\"counts\":{\"total\":%llu", (unsigned long long)total);
    for (int i = 0; i < PROF_NTYPES; i++)
        rc |= jd_buf_addf(b, ",\"%s\":%u", type_names[i], (unsigned)p->counts[i]);

    rc |= jd_buf_adds(b, "},\"events\":{");
    if (p->vec) {
        q = vec_ids_end(p->vec);
        for (unsigned i = prof__rd16(p->vec + 2), j = 0; j < i; j++) {
            uint32_t cnt = prof__rd32(q), n;
            q += 4;
            q += prof__uv_get(q, &n);
            if (j) rc |= jd_buf_add(b, ",", 1);
            rc |= jd_buf_add_json_str(b, (const char *)q, n) | jd_buf_addf(b, ":%u", (unsigned)cnt);
            q += n;
        }
    }
    rc |= jd_buf_adds(b, "},\"computed\":") | prof__computed_json(s, p, p->last_us, b);
    rc |= jd_buf_adds(b, ",\"firstSeen\":") | add_time(b, p->first_us);
    rc |= jd_buf_adds(b, ",\"lastSeen\":") | add_time(b, p->last_us);
    rc |= jd_buf_addf(b, ",\"limited\":%u", (unsigned)p->limited);
    rc |= prof__idents_json(p, b, true) | prof__tl_json(s, p, b) | jd_buf_add(b, "}", 1);
    return rc ? JD_ELIMIT : JD_OK;
}

int prof_get_json(const prof_store *s, const char *id, size_t id_len, jd_buf *out)
{
    const prof *p = prof__index_get(&s->by_key, id, id_len);
    if (!p) p = jd_map_get(s->by_anon, id, id_len);
    if (!p) return JD_ENOTFOUND;
    /* Built aside so that out is unchanged when its ceiling is hit. */
    jd_buf b;
    jd_buf_init(&b, out->max > out->len ? out->max - out->len : 0);
    int rc = write_json(s, p, &b);
    if (rc == JD_OK) rc = jd_buf_add(out, b.data, b.len);
    jd_buf_release(&b);
    return rc;
}

/* ---- the expression language's view ------------------------------------ */

/* Adds v under a literal key that o does not have yet (json-c neither copies
 * nor looks it up). */
static void add_lit(json_object *o, const char *k, json_object *v)
{
    json_object_object_add_ex(o, k, v, JSON_C_OBJECT_ADD_KEY_IS_NEW | JSON_C_OBJECT_ADD_CONSTANT_KEY);
}

/* A NUL-terminated copy of (p, n) in scratch: json-c wants C-string keys.
 * Valid until the next use of scratch. */
static const char *scratch_cstr(prof_store *s, const void *p, size_t n)
{
    jd_buf_reset(&s->scratch);
    jd_buf_add(&s->scratch, p, n);   /* jd_buf NUL-terminates */
    return s->scratch.data;
}

/* A stored trait value (checked when stored: json-c's own output, or by the
 * snapshot decoder) as a json_object; NULL for null. json-c only knows that a
 * bare number or literal (true, false, null) has ended when it sees the next
 * byte, so those get a space after them (in scratch); strings, objects and
 * arrays end on their own and are parsed where they lie. */
json_object *prof__stored_value(prof_store *s, const char *v, uint32_t vl)
{
    const char *t = v;
    size_t n = vl;
    if (v[0] != '"' && v[0] != '{' && v[0] != '[') {
        jd_buf_reset(&s->scratch);
        jd_buf_add(&s->scratch, v, vl);
        jd_buf_add(&s->scratch, " ", 1);
        t = s->scratch.data;
        n = s->scratch.len;
    }
    JD_ASSERT(n <= INT32_MAX);
    json_tokener_reset(s->tok);
    return json_tokener_parse_ex(s->tok, t, (int)n);
}

static json_object *view_tset(prof_store *s, const uint8_t *t, size_t n)
{
    json_object *o = json_object_new_object();
    prof_titer it;
    prof_tent e;
    prof__titer_init(&it, t, n);
    while (prof__tset_next(s, &it, &e))   /* e.k ends in its NUL, and is not in scratch */
        if (prof__tent_json_len(&e)) json_object_object_add(o, e.k, prof__tent_object(s, &e));
    return o;
}

static json_object *view_time(int64_t us)
{
    char t[JD_TIME_TEXT];
    size_t n = jd_time_format(us, t);
    return json_object_new_string_len(t, (int)n);
}

struct json_object *prof_view(prof_store *s, const char *key, size_t key_len)
{
    const prof *p = prof__index_get(&s->by_key, key, key_len);
    return p ? prof_view_at(s, key, key_len, p->last_us) : NULL;
}

struct json_object *prof_view_at(prof_store *s, const char *key, size_t key_len, int64_t now_us)
{
    const prof *p = prof__index_get(&s->by_key, key, key_len);
    if (!p) return NULL;
    json_object *o = json_object_new_object();
    if (p->flags & PROF_F_USER) add_lit(o, "userId", json_object_new_string_len(p->key, (int)p->key_len));

    unsigned n_ids = p->vec ? prof__rd16(p->vec) : 0;
    json_object *ids = json_object_new_array_ext((int)n_ids + 1);
    if (p->flags & PROF_F_KEY_ANON) json_object_array_add(ids, json_object_new_string_len(p->key, (int)p->key_len));
    const uint8_t *q = p->vec ? p->vec + 4 : NULL;
    for (unsigned i = n_ids; i > 0; i--) {
        uint32_t n;
        q += prof__uv_get(q, &n);
        json_object_array_add(ids, json_object_new_string_len((const char *)q, (int)n));
        q += n;
    }
    add_lit(o, "anonymousIds", ids);
    json_object *idents = prof__idents_view(p);
    if (idents) add_lit(o, "identifiers", idents);

    const struct prof_rich *r = p->rich;
    add_lit(o, "traits", view_tset(s, r ? r->traits : NULL, r ? r->traits_len : 0));

    json_object *tags = json_object_new_array();
    for (const uint8_t *t = r ? r->tags : NULL, *end = t ? t + r->tags_len : NULL; t < end;) {
        uint32_t tl = prof__rd32(t);
        json_object_array_add(tags, json_object_new_string_len((const char *)t + PROF_TAG_HDR, (int)tl));
        t += PROF_TAG_HDR + tl;
    }
    add_lit(o, "tags", tags);

    /* consent for expressions: {"email/marketing": true} (the granted flag) */
    json_object *consent = json_object_new_object(), *all = view_tset(s, r ? r->consent : NULL, r ? r->consent_len : 0);
    json_object_object_foreach(all, ck, cv) {
        json_object *g;
        if (cv && json_object_object_get_ex(cv, "granted", &g)) json_object_object_add(consent, ck, json_object_get(g));
    }
    json_object_put(all);
    add_lit(o, "consent", consent);

    json_object *groups = json_object_new_object();
    for (const uint8_t *g = r ? r->groups : NULL, *end = g ? g + r->groups_len : NULL; g < end;) {
        uint32_t gl = prof__rd32(g), tl = prof__rd32(g + 4);
        const uint8_t *gid = g + PROF_GRP_HDR;
        json_object *gt = view_tset(s, gid + gl, tl);   /* before scratch holds the key */
        json_object_object_add(groups, scratch_cstr(s, gid, gl), gt);
        g = gid + gl + tl;
    }
    add_lit(o, "groups", groups);
    add_lit(o, "first_seen", view_time(p->first_us));
    add_lit(o, "last_seen", view_time(p->last_us));

    json_object *evs = json_object_new_object();
    if (p->vec) {
        q = vec_ids_end(p->vec);
        for (unsigned i = prof__rd16(p->vec + 2); i > 0; i--) {
            uint32_t cnt = prof__rd32(q), n;
            q += 4;
            q += prof__uv_get(q, &n);
            json_object_object_add(evs, scratch_cstr(s, q, n), json_object_new_int64(cnt));
            q += n;
        }
    }
    add_lit(o, "events", evs);
    add_lit(o, "computed", prof__computed_view(s, p, now_us));
    return o;
}

size_t prof_store_count(const prof_store *s) { return s->by_key.len; }

void prof_store_find_trait(const prof_store *s, const char *trait, const char *value,
                           bool (*fn)(void *ctx, const char *key, size_t kn), void *ctx)
{
    /* The stored value is compact JSON text: a string matches as its JSON
     * literal, a number or boolean as written. */
    jd_buf lit;
    jd_buf_init(&lit, SIZE_MAX);
    jd_buf_add_json_str(&lit, value, strlen(value));
    size_t tl = strlen(trait), vl = strlen(value), pos = 0;
    const prof *p;
    while ((p = prof__index_next(&s->by_key, &pos))) {
        const struct prof_rich *r = p->rich;
        prof_titer it;
        prof_tent e;
        prof__titer_init(&it, r ? r->traits : NULL, r ? r->traits_len : 0);
        while (prof__tset_next(s, &it, &e)) {
            if (e.kl != tl || memcmp(e.k, trait, tl) != 0) continue;
            /* a string is kept without its quotes, which lit has */
            if (e.str ? e.vl == lit.len - 2 && memcmp(e.v, lit.data + 1, e.vl) == 0
                      : e.vl && e.vl == vl && memcmp(e.v, value, vl) == 0 && e.v[0] != '"') {
                if (!fn(ctx, p->key, p->key_len)) goto out;
                break;
            }
        }
    }
out:
    jd_buf_release(&lit);
}

void prof_store_each_key(const prof_store *s, void (*fn)(void *ctx, const char *key, size_t kn), void *ctx)
{
    size_t pos = 0;
    const prof *p;
    while ((p = prof__index_next(&s->by_key, &pos))) fn(ctx, p->key, p->key_len);
}

/* Slot bytes of a jd_map holding len entries: it doubles from 16 slots of
 * 32 bytes whenever it would pass 7/8 full (by_anon: an estimate after
 * deletions, since a jd_map does not shrink). */
static size_t map_bytes(size_t len)
{
    size_t cap = 16;
    while (cap * 7 / 8 < len) cap *= 2;
    return prof__alloc_size(cap * 32);
}

size_t prof_store_bytes(const prof_store *s)
{
    return s->heap + prof__index_bytes(&s->by_key) + map_bytes(jd_map_len(s->by_anon));
}
