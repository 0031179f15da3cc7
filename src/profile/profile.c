/* src/profile/profile.c -- the profiles of one partition: apply events, answer
 * lookups. The snapshot codec is in snapshot.c; docs/internals/profile.md has
 * the memory layout with byte offsets, the merge rules and the sizes measured.
 *
 * The store is sized for ten million profiles a process, so a profile is one
 * allocation of 64 bytes plus its key, and everything that most profiles never
 * have (anonymousIds beyond the key, event names, traits, groups) hangs off
 * pointers that stay NULL until needed. No json_object outlives a call: traits
 * are kept as serialized JSON text and parsed only when an identify or group
 * brings new ones.
 *
 * Invariants:
 *  (1) by_key maps every profile's key to it and borrows the key bytes from
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
 *      from the profiles (the estimate prof_store_bytes reports).
 *  (7) apply reads no clock and no randomness: the store is a function of the
 *      events applied, in order.
 */
#include "profile_int.h"

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
}

prof_store *prof_store_create(const prof_limits *lim)
{
    prof_store *s = jd_xcalloc(1, sizeof *s);
    if (lim) s->lim = *lim;
    else prof_limits_default(&s->lim);
    /* The vec keeps its counts in u16s: a larger configured limit is clamped. */
    if (s->lim.max_anonymous_ids > PROF_VEC_MAX) s->lim.max_anonymous_ids = PROF_VEC_MAX;
    if (s->lim.max_event_names > PROF_VEC_MAX) s->lim.max_event_names = PROF_VEC_MAX;
    s->by_key = jd_map_create(0);
    s->by_anon = jd_map_create(0);
    s->tok = json_tokener_new_ex(JD_DEF_MAX_JSON_DEPTH + 8);
    if (!s->tok) abort();   /* json-c's allocation failed: the OOM policy */
    json_tokener_set_flags(s->tok, JSON_TOKENER_STRICT);
    jd_buf_init(&s->scratch, SIZE_MAX);
    return s;
}

static void prof_free(prof *p)
{
    free(p->vec);
    if (p->rich) {
        free(p->rich->traits);
        free(p->rich->groups);
        free(p->rich);
    }
    free(p);
}

void prof__clear(prof_store *s)
{
    size_t pos = 0;
    void *v;
    while (jd_map_next(s->by_key, &pos, NULL, NULL, &v)) prof_free(v);
    jd_map_destroy(s->by_key);
    jd_map_destroy(s->by_anon);
    s->by_key = jd_map_create(0);
    s->by_anon = jd_map_create(0);
    s->heap = 0;
}

void prof_store_destroy(prof_store *s)
{
    if (!s) return;
    size_t pos = 0;
    void *v;
    while (jd_map_next(s->by_key, &pos, NULL, NULL, &v)) prof_free(v);
    jd_map_destroy(s->by_key);
    jd_map_destroy(s->by_anon);
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

prof *prof__insert(prof_store *s, const char *key, size_t kn, unsigned flags)
{
    JD_ASSERT(kn > 0 && kn < (1u << 30));
    prof *p = jd_xcalloc(1, sizeof *p + kn + 1);
    memcpy(p->key, key, kn);
    p->key_len = (uint32_t)kn;
    p->flags = flags & PROF_F_ALL;
    void *prev = jd_map_put(s->by_key, p->key, kn, p);
    JD_ASSERT(prev == NULL);
    (void)prev;
    s->heap += prof__alloc_size(sizeof *p + kn + 1);
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

void prof__index_anon(prof_store *s, prof *p, const char *id, size_t n)
{
    if (jd_map_get(s->by_key, id, n) || jd_map_get(s->by_anon, id, n)) return;
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

static void count_event_name(prof_store *s, prof *p, jd_str name)
{
    if (name.n == 0) return;
    unsigned n_evs = 0;
    if (p->vec) {
        n_evs = prof__rd16(p->vec + 2);
        uint8_t *q = (uint8_t *)vec_ids_end(p->vec);
        for (unsigned i = n_evs; i > 0; i--) {
            uint32_t len;
            size_t w = prof__uv_get(q + 4, &len);
            if (len == name.n && memcmp(q + 4 + w, name.p, len) == 0) {
                uint32_t c = prof__rd32(q);
                if (c < UINT32_MAX) prof__wr32(q, c + 1);
                return;
            }
            q += 4 + w + len;
        }
    }
    if (n_evs >= s->lim.max_event_names) {   /* (3) */
        p->limited++;
        return;
    }
    size_t at = prof__vec_size(p->vec);
    if (!at) at = 4;
    uint8_t *nv = vec_open(p->vec, at, 4 + prof__uv_len(name.n) + name.n);
    prof__wr32(nv + at, 1);
    size_t w = prof__uv_put(nv + at + 4, name.n);
    memcpy(nv + at + 4 + w, name.p, name.n);
    prof__wr16(nv + 2, (uint16_t)(n_evs + 1));
    prof__vec_replace(s, p, nv);
}

/* ---- traits ------------------------------------------------------------ */

void prof__rich_set(prof_store *s, prof *p, uint8_t *traits, uint32_t traits_len,
                    uint8_t *groups, uint32_t groups_len)
{
    struct prof_rich *r = p->rich;
    if (r) {
        s->heap -= prof__alloc_size(r->traits_len) + prof__alloc_size(r->groups_len);
        if (r->traits != traits) free(r->traits);
        if (r->groups != groups) free(r->groups);
    }
    if (!traits_len && !groups_len) {
        if (r) s->heap -= prof__alloc_size(sizeof *r);
        free(traits);
        free(groups);
        free(r);
        p->rich = NULL;
        return;
    }
    if (!r) {
        r = p->rich = jd_xmalloc(sizeof *r);
        s->heap += prof__alloc_size(sizeof *r);
    }
    r->traits = traits_len ? traits : (free(traits), NULL);
    r->groups = groups_len ? groups : (free(groups), NULL);
    r->traits_len = traits_len;
    r->groups_len = groups_len;
    s->heap += prof__alloc_size(traits_len) + prof__alloc_size(groups_len);
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
static size_t tset_json_size(const uint8_t *t, size_t n)
{
    size_t size = 2, entries = 0;
    for (const uint8_t *q = t, *end = t ? t + n : NULL; q < end; entries++) {
        uint32_t kl = prof__rd32(q), vl = prof__rd32(q + 4);
        const uint8_t *k = q + PROF_TSET_HDR;
        size += json_str_len((const char *)k, kl) + 1 + (vl ? vl : 4);
        q = k + kl + 1 + vl;
    }
    return size + (entries ? entries - 1 : 0);
}

static void tset_emit(jd_buf *b, const char *k, uint32_t kl, const char *v, uint32_t vl, int64_t us)
{
    uint8_t hdr[PROF_TSET_HDR];
    prof__wr32(hdr, kl);
    prof__wr32(hdr + 4, vl);
    prof__wr64(hdr + 8, us);
    jd_buf_add(b, hdr, sizeof hdr);
    jd_buf_add(b, k, kl);
    jd_buf_add(b, "", 1);
    jd_buf_add(b, v, vl);
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
    for (const uint8_t *q = old, *end = old ? old + old_len : NULL; q < end;) {
        uint32_t kl = prof__rd32(q), vl = prof__rd32(q + 4);
        int64_t at = prof__rd64(q + 8);
        const char *k = (const char *)q + PROF_TSET_HDR;
        const char *v = k + kl + 1;
        jd_map_put(seen, k, kl, (void *)k);
        json_object *nv;
        /* A key holding a NUL cannot come from json-c: leave it alone. */
        if (strlen(k) == kl && json_object_object_get_ex(in, k, &nv) && ts >= at) {   /* (5) */
            uint32_t nl = 0;
            const char *nt = nv ? json_text(nv, &nl) : "";
            tset_emit(b, k, kl, nt, nl, ts);
        } else {
            tset_emit(b, k, kl, v, vl, at);
        }
        q = (const uint8_t *)v + vl;
    }
    json_object_object_foreach(in, key, val) {
        size_t kl = strlen(key);
        if (seen && jd_map_get(seen, key, kl)) continue;
        uint32_t vl = 0;
        const char *vt = val ? json_text(val, &vl) : "";
        /* A null for a key never set still leaves a tombstone: an older
         * event arriving later must not set it (5). */
        tset_emit(b, key, (uint32_t)kl, vt, vl, ts);
    }
    jd_map_destroy(seen);
    if (b->len == old_len && (old_len == 0 || memcmp(b->data, old, old_len) == 0))
        return MERGE_SAME;
    if (b->len > UINT32_MAX || tset_json_size((const uint8_t *)b->data, b->len) > s->lim.max_traits_bytes)
        return MERGE_OVER;
    *out_len = (uint32_t)b->len;
    *out = b->len ? jd_xmalloc(b->len) : NULL;
    if (b->len) memcpy(*out, b->data, b->len);
    return MERGE_CHANGED;
}

static void apply_traits(prof_store *s, prof *p, json_object *traits, int64_t ts)
{
    const struct prof_rich *r = p->rich;
    uint8_t *nt = NULL;
    uint32_t nl = 0;
    int rc = tset_merge(s, r ? r->traits : NULL, r ? r->traits_len : 0, traits, ts, &nt, &nl);
    if (rc == MERGE_OVER) p->limited++;
    if (rc != MERGE_CHANGED) return;
    prof__rich_set(s, p, nt, nl, r ? r->groups : NULL, r ? r->groups_len : 0);
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
    prof__rich_set(s, p, r ? r->traits : NULL, r ? r->traits_len : 0, ng, (uint32_t)new_len);
}

/* ---- apply ------------------------------------------------------------- */

/* Parses the record's JSON and finds its "traits" object (NULL if none).
 * *root is owned by the caller (json_object_put). */
static int read_traits(prof_store *s, const ingest_event *ev, json_object **root,
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
    if (json_object_object_get_ex(o, "traits", &t) && json_object_is_type(t, json_type_object))
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

    /* Parse before touching the profile: an unreadable record changes nothing. */
    json_object *root = NULL, *traits = NULL;
    if (ev->type == INGEST_IDENTIFY || ev->type == INGEST_GROUP) {
        int rc = read_traits(s, ev, &root, &traits, err);
        if (rc != JD_OK) return rc;
    }

    prof *p = jd_map_get(s->by_key, key.p, key.n);
    if (!p) {
        p = prof__insert(s, key.p, key.n, ev->user_id.n ? PROF_F_USER : PROF_F_KEY_ANON);
        p->first_us = p->last_us = ev->timestamp_us;
    }
    uint32_t *c = &p->counts[ev->type - INGEST_TRACK];
    if (*c < UINT32_MAX) (*c)++;
    if (ev->timestamp_us < p->first_us) p->first_us = ev->timestamp_us;
    if (ev->timestamp_us > p->last_us) p->last_us = ev->timestamp_us;

    add_anon_id(s, p, ev->anonymous_id);
    switch (ev->type) {
    case INGEST_TRACK:    count_event_name(s, p, ev->event); break;
    case INGEST_ALIAS:    add_anon_id(s, p, ev->previous_id); break;
    case INGEST_IDENTIFY: if (traits) apply_traits(s, p, traits, ev->timestamp_us); break;
    case INGEST_GROUP:
        if (ev->group_id.n) apply_group(s, p, ev->group_id, traits, ev->timestamp_us);
        break;
    default: break;
    }
    json_object_put(root);
    return JD_OK;
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
static int add_tset(jd_buf *b, const uint8_t *t, size_t n, bool times)
{
    int rc = jd_buf_add(b, "{", 1);
    bool first = true;
    for (const uint8_t *q = t, *end = t ? t + n : NULL; q < end;) {
        uint32_t kl = prof__rd32(q), vl = prof__rd32(q + 4);
        const char *k = (const char *)q + PROF_TSET_HDR, *v = k + kl + 1;
        if (vl) {
            if (!first) rc |= jd_buf_add(b, ",", 1);
            first = false;
            rc |= jd_buf_add_json_str(b, k, kl) | jd_buf_add(b, ":", 1);
            rc |= times ? add_time(b, prof__rd64(q + 8)) : jd_buf_add(b, v, vl);
        }
        q = (const uint8_t *)v + vl;
    }
    return rc | jd_buf_add(b, "}", 1);
}

static int write_json(const prof *p, jd_buf *b)
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

    const struct prof_rich *r = p->rich;
    rc |= jd_buf_adds(b, "],\"traits\":") | add_tset(b, r ? r->traits : NULL, r ? r->traits_len : 0, false);
    rc |= jd_buf_adds(b, ",\"traitTimes\":") | add_tset(b, r ? r->traits : NULL, r ? r->traits_len : 0, true);

    rc |= jd_buf_adds(b, ",\"groups\":{");
    const uint8_t *g = r ? r->groups : NULL, *gend = g ? g + r->groups_len : NULL;
    for (first = true; g < gend; first = false) {
        uint32_t gl = prof__rd32(g), tl = prof__rd32(g + 4);
        const uint8_t *gid = g + PROF_GRP_HDR;
        if (!first) rc |= jd_buf_add(b, ",", 1);
        rc |= jd_buf_add_json_str(b, (const char *)gid, gl) | jd_buf_adds(b, ":{\"traits\":");
        rc |= add_tset(b, gid + gl, tl, false) | jd_buf_add(b, "}", 1);
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
    rc |= jd_buf_adds(b, "},\"firstSeen\":") | add_time(b, p->first_us);
    rc |= jd_buf_adds(b, ",\"lastSeen\":") | add_time(b, p->last_us);
    rc |= jd_buf_addf(b, ",\"limited\":%u}", (unsigned)p->limited);
    return rc ? JD_ELIMIT : JD_OK;
}

int prof_get_json(const prof_store *s, const char *id, size_t id_len, jd_buf *out)
{
    const prof *p = jd_map_get(s->by_key, id, id_len);
    if (!p) p = jd_map_get(s->by_anon, id, id_len);
    if (!p) return JD_ENOTFOUND;
    /* Built aside so that out is unchanged when its ceiling is hit. */
    jd_buf b;
    jd_buf_init(&b, out->max > out->len ? out->max - out->len : 0);
    int rc = write_json(p, &b);
    if (rc == JD_OK) rc = jd_buf_add(out, b.data, b.len);
    jd_buf_release(&b);
    return rc;
}

size_t prof_store_count(const prof_store *s) { return jd_map_len(s->by_key); }

/* Slot bytes of a jd_map holding len entries: it doubles from 16 slots of
 * 32 bytes whenever it would pass 7/8 full, and this store never deletes. */
static size_t map_bytes(size_t len)
{
    size_t cap = 16;
    while (cap * 7 / 8 < len) cap *= 2;
    return prof__alloc_size(cap * 32);
}

size_t prof_store_bytes(const prof_store *s)
{
    return s->heap + map_bytes(jd_map_len(s->by_key)) + map_bytes(jd_map_len(s->by_anon));
}
