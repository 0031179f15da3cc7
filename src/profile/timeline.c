/* src/profile/timeline.c -- each profile's timeline: its latest N events and
 * messages (N = prof_limits.timeline, the setting profiles.timeline), for
 * GET /v1/profiles/{id}. docs/internals/profile.md ("Timeline") has the
 * format with the bytes it costs.
 *
 * The store holds ten million profiles, so the timeline is one small blob
 * per profile (prof.tl, NULL while empty), about 4 bytes a track entry:
 *
 *   u8 n (1..JD_MAX_TIMELINE) | n x entry, newest first
 *   entry: u8 head | time | [uv index] | [u8 len | name] | [message: u8 len | channel | u8 len | template]
 *     head: bits 0-2 kind: 0 track, 1 identify, 2 page, 3 screen, 4 group,
 *             5 alias (ingest_type order), 6 message
 *           bit 3 the name is inline (1..64 bytes follow, after the u8 len)
 *           bits 4-7 when not inline: 0 no name; 1..14 the name is event
 *             name index v - 1 of the profile's vec; 15 a uv index follows
 *     time: the first entry: zigzag uv64 of its time in milliseconds; the
 *           others: uv64 of (the entry before's time - this one's), >= 0
 *   (uv = LEB128 varint, no overlong forms; times are kept to the millisecond,
 *   which is what the JSON shows)
 *
 * A track event whose name the profile counts (profile.c count_event_name)
 * points at that name: its index in the head byte instead of the name. Ten
 * track events seconds apart take 1 (n) + 7 (head, time) + 9 x 3 (head, a
 * 2-byte delta) = 35 bytes, a 48-byte malloc chunk.
 *
 * Invariants:
 *  (1) Entries are ordered by time, newest first; equal times: the one
 *      recorded later first (ties by arrival, which is log order, so replay
 *      agrees). A merge puts the survivor's first on equal times.
 *  (2) A blob holds 1..JD_MAX_TIMELINE entries; recording and merging keep
 *      at most lim.timeline (the oldest go; an entry older than all of a
 *      full timeline is not recorded). A decoded blob keeps its entries even
 *      when lim.timeline was lowered since (the snapshot is not rewritten on
 *      load): the next recording or merge trims it, and the JSON shows at
 *      most lim.timeline. lim.timeline 0 records nothing and shows nothing.
 *  (3) An index points at an event name of the same profile's vec (names are
 *      never removed or reordered: merges keep the survivor's first, and
 *      re-point the loser's entries by name), and only for a track entry
 *      whose name is at most TL_NAME_MAX bytes.
 *  (4) Names, channels and templates are 0..TL_NAME_MAX bytes, cut at a
 *      UTF-8 character boundary.
 *  (5) The allocation is always prof__alloc_size(len) - 8 bytes (the whole
 *      malloc chunk len asks for), so heap counts prof__alloc_size(len)
 *      (profile.c invariant 6) and a rewrite that needs the same chunk is
 *      done in place, with no malloc: the common case once a timeline is full.
 *  (6) Recording reads no clock: an event's time is its timestamp_us, a
 *      message's the record's time.
 */
#include "profile_int.h"

#include <stdlib.h>

#define TL_NAME_MAX   64u
#define TL_MESSAGE    6u
#define TL_KINDS      7u
#define TL_INLINE     0x08u
#define TL_IDX_EXT    15u
#define TL_MS_LIMIT   (INT64_MAX / 1000)

static const char *const kind_names[TL_KINDS] = {
    "track", "identify", "page", "screen", "group", "alias", "message",
};

typedef struct tl_ent {
    int64_t ms;
    unsigned kind;
    int32_t idx;                      /* event name index, -1 when inline or none */
    const uint8_t *name, *chan, *tmpl;   /* inline bytes (borrowed) */
    uint32_t nl, cl, tl;
} tl_ent;

/* ---- varints with bounds (the blob may come from disk) ---- */

static bool uv64_get(const uint8_t *p, size_t n, size_t *off, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0, k = 0; *off < n && k < 10; shift += 7, k++) {
        uint8_t b = p[(*off)++];
        if (shift == 63 && b > 1) return false;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (k > 0 && b == 0) return false;   /* overlong */
            *v = r;
            return true;
        }
    }
    return false;
}

static void uv64_put(jd_buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) { t[n++] = (uint8_t)(v | 0x80); v >>= 7; }
    t[n++] = (uint8_t)v;
    jd_buf_add(b, t, n);
}

static uint64_t zz(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static int64_t unzz(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

/* Milliseconds, rounded down (so that a time before 1970 stays in order). */
static int64_t ms_of(int64_t us) { return us / 1000 - (us % 1000 < 0); }

/* The length of (p, n) cut to TL_NAME_MAX bytes at a character boundary (4). */
static uint32_t cut(const char *p, size_t n)
{
    if (!p) return 0;
    if (n <= TL_NAME_MAX) return (uint32_t)n;
    size_t k = TL_NAME_MAX;
    while (k > 0 && ((unsigned char)p[k] & 0xc0) == 0x80) k--;   /* p[k] continues a character */
    return (uint32_t)k;
}

/* ---- parse and check ---- */

/* Reads the blob (t, n) into e (room for JD_MAX_TIMELINE). n_evs: the event
 * names of the profile's vec. NULL if good (*count set), else what is wrong
 * with *bad its offset. In-memory blobs are good by construction. */
static const char *parse(const uint8_t *t, size_t n, unsigned n_evs, tl_ent *e, unsigned *count, size_t *bad)
{
    size_t off = 0;
    *bad = 0;
    *count = 0;
    if (n == 0) return NULL;
    unsigned k = t[off++];
    if (k == 0 || k > JD_MAX_TIMELINE) return "bad timeline count";
    for (unsigned i = 0; i < k; i++) {
        tl_ent *x = &e[i];
        memset(x, 0, sizeof *x);
        *bad = off;
        if (off >= n) return "truncated timeline entry";
        uint8_t h = t[off++];
        unsigned v = h >> 4;
        x->kind = h & 7u;
        x->idx = -1;
        if (x->kind >= TL_KINDS) return "bad timeline kind";
        uint64_t u;
        if (!uv64_get(t, n, &off, &u)) return "bad timeline time";
        if (i == 0) {
            x->ms = unzz(u);
            if (x->ms > TL_MS_LIMIT || x->ms < -TL_MS_LIMIT) return "bad timeline time";
        } else {
            if (u > (uint64_t)TL_MS_LIMIT || e[i - 1].ms - (int64_t)u < -TL_MS_LIMIT) return "bad timeline time";
            x->ms = e[i - 1].ms - (int64_t)u;
        }
        if (h & TL_INLINE) {
            if (v != 0) return "bad timeline entry head";
            if (off >= n) return "truncated timeline name";
            x->nl = t[off++];
            if (x->nl == 0 || x->nl > TL_NAME_MAX) return "bad timeline name length";
            if (x->nl > n - off) return "truncated timeline name";
            x->name = t + off;
            off += x->nl;
        } else if (v) {
            if (x->kind != 0) return "timeline index on an entry that is not a track";
            if (v == TL_IDX_EXT) {
                if (!uv64_get(t, n, &off, &u) || u < TL_IDX_EXT - 1) return "bad timeline name index";
            } else {
                u = v - 1;
            }
            if (u >= n_evs) return "timeline name index past the event names";
            x->idx = (int32_t)u;
        }
        if (x->kind == TL_MESSAGE) {
            for (int f = 0; f < 2; f++) {
                if (off >= n) return "truncated timeline message";
                uint32_t l = t[off++];
                if (l > TL_NAME_MAX) return "bad timeline message field length";
                if (l > n - off) return "truncated timeline message";
                if (f == 0) { x->chan = t + off; x->cl = l; }
                else { x->tmpl = t + off; x->tl = l; }
                off += l;
            }
        }
    }
    *bad = off;
    if (off != n) return "trailing timeline bytes";
    *count = k;
    return NULL;
}

static unsigned vec_n_evs(const uint8_t *vec) { return vec ? prof__rd16(vec + 2) : 0; }

/* The in-memory blob of p, parsed (it is good: assert). */
static unsigned parse_own(const prof *p, tl_ent *e)
{
    unsigned k = 0;
    size_t bad;
    const char *what = parse(p->tl, prof__tl_size(p->tl), vec_n_evs(p->vec), e, &k, &bad);
    JD_ASSERT(what == NULL);
    (void)what;
    return k;
}

size_t prof__tl_size(const uint8_t *t)
{
    if (!t) return 0;
    size_t off = 1;
    for (unsigned i = t[0]; i > 0; i--) {
        uint8_t h = t[off++];
        while (t[off++] & 0x80) {}
        if (h & TL_INLINE) off += 1u + t[off];
        else if ((h >> 4) == TL_IDX_EXT) while (t[off++] & 0x80) {}
        if ((h & 7u) == TL_MESSAGE) {
            off += 1u + t[off];
            off += 1u + t[off];
        }
    }
    return off;
}

const char *prof__tl_check(const uint8_t *t, size_t n, const uint8_t *vec, size_t *bad)
{
    tl_ent e[JD_MAX_TIMELINE];
    unsigned k;
    return parse(t, n, vec_n_evs(vec), e, &k, bad);
}

/* ---- encode ---- */

static void encode(jd_buf *b, const tl_ent *e, unsigned k)
{
    jd_buf_reset(b);
    if (k == 0) return;
    uint8_t n = (uint8_t)k;
    jd_buf_add(b, &n, 1);
    for (unsigned i = 0; i < k; i++) {
        const tl_ent *x = &e[i];
        uint8_t h = (uint8_t)x->kind;
        if (x->idx >= 0) h |= (uint8_t)((x->idx < (int32_t)TL_IDX_EXT - 1 ? (unsigned)x->idx + 1 : TL_IDX_EXT) << 4);
        else if (x->nl) h |= TL_INLINE;
        jd_buf_add(b, &h, 1);
        JD_ASSERT(i == 0 || x->ms <= e[i - 1].ms);   /* (1) */
        uv64_put(b, i == 0 ? zz(x->ms) : (uint64_t)(e[i - 1].ms - x->ms));
        if (x->idx >= (int32_t)TL_IDX_EXT - 1) uv64_put(b, (uint64_t)x->idx);
        if (x->idx < 0 && x->nl) {
            uint8_t l = (uint8_t)x->nl;
            jd_buf_add(b, &l, 1);
            jd_buf_add(b, x->name, x->nl);
        }
        if (x->kind == TL_MESSAGE) {
            uint8_t l = (uint8_t)x->cl;
            jd_buf_add(b, &l, 1);
            jd_buf_add(b, x->chan, x->cl);
            l = (uint8_t)x->tl;
            jd_buf_add(b, &l, 1);
            jd_buf_add(b, x->tmpl, x->tl);
        }
    }
}

uint8_t *prof__tl_blob(const void *b, size_t n)
{
    if (n == 0) return NULL;
    uint8_t *t = jd_xmalloc(prof__alloc_size(n) - 8);   /* (5) */
    memcpy(t, b, n);
    return t;
}

/* Makes b's bytes p's timeline: in place when the chunk is the same (5). */
static void set_blob(prof_store *s, prof *p, const jd_buf *b)
{
    size_t old = prof__tl_size(p->tl);
    if (old && b->len && prof__alloc_size(old) == prof__alloc_size(b->len)) {
        memcpy(p->tl, b->data, b->len);
        return;
    }
    s->heap -= prof__alloc_size(old);
    free(p->tl);
    p->tl = prof__tl_blob(b->data, b->len);
    s->heap += prof__alloc_size(b->len);
}

/* ---- recording ---- */

/* Inserts x into p's timeline by (1) and (2). */
static void record(prof_store *s, prof *p, const tl_ent *x)
{
    unsigned cap = s->lim.timeline;
    if (cap == 0) return;
    tl_ent e[JD_MAX_TIMELINE + 1];
    unsigned k = parse_own(p, e), i = 0;
    while (i < k && e[i].ms > x->ms) i++;   /* before the first entry not newer: ties by arrival (1) */
    if (i >= cap) return;                    /* older than a full timeline */
    memmove(&e[i + 1], &e[i], (k - i) * sizeof *e);
    e[i] = *x;
    k = k + 1 > cap ? cap : k + 1;
    /* e borrows p->tl's bytes: built in scratch before p->tl changes */
    encode(&s->scratch, e, k);
    set_blob(s, p, &s->scratch);
}

void prof__tl_event(prof_store *s, prof *p, const ingest_event *ev, int name_idx)
{
    if (s->lim.timeline == 0) return;
    tl_ent x = { .ms = ms_of(ev->timestamp_us), .kind = (unsigned)(ev->type - INGEST_TRACK), .idx = -1 };
    jd_str name = { 0 };
    switch (ev->type) {
    case INGEST_TRACK: case INGEST_PAGE: case INGEST_SCREEN: name = ev->event; break;
    case INGEST_GROUP: name = ev->group_id; break;
    default: break;
    }
    if (ev->type == INGEST_TRACK && name_idx >= 0 && name.n <= TL_NAME_MAX) {
        x.idx = name_idx;
    } else {
        x.name = (const uint8_t *)name.p;
        x.nl = cut(name.p, name.n);
    }
    record(s, p, &x);
}

int prof_timeline_message(prof_store *s, const char *key, size_t kn, int64_t at_us, const char *name,
                          const char *channel, const char *template_name)
{
    prof *p = kn ? prof__index_get(&s->by_key, key, kn) : NULL;
    if (!p) return JD_ENOTFOUND;
    tl_ent x = { .ms = ms_of(at_us), .kind = TL_MESSAGE, .idx = -1 };
    x.name = (const uint8_t *)name;
    x.nl = cut(name, name ? strlen(name) : 0);
    x.chan = (const uint8_t *)channel;
    x.cl = cut(channel, channel ? strlen(channel) : 0);
    x.tmpl = (const uint8_t *)template_name;
    x.tl = cut(template_name, template_name ? strlen(template_name) : 0);
    record(s, p, &x);
    return JD_OK;
}

/* ---- merge ---- */

/* The event name index idx of vec (bytes and length). */
static const uint8_t *vec_name(const uint8_t *vec, int32_t idx, uint32_t *len)
{
    const uint8_t *q = vec + prof__vec_ids_size(vec);
    for (int32_t i = 0;; i++) {
        uint32_t n;
        size_t w = prof__uv_get(q + 4, &n);
        if (i == idx) { *len = n; return q + 4 + w; }
        q += 4 + w + n;
    }
}

/* The index of name (p, n) among vec's event names, -1 if absent. */
static int32_t vec_find(const uint8_t *vec, const uint8_t *p, uint32_t n)
{
    if (!vec) return -1;
    const uint8_t *q = vec + prof__vec_ids_size(vec);
    for (int32_t i = 0, m = prof__rd16(vec + 2); i < m; i++) {
        uint32_t len;
        size_t w = prof__uv_get(q + 4, &len);
        if (len == n && memcmp(q + 4 + w, p, n) == 0) return i;
        q += 4 + w + len;
    }
    return -1;
}

/* Turns p's entries into ones whose names are inline bytes (borrowed from
 * p's blobs), so that they can be re-pointed at another vec. */
static void resolve(const prof *p, tl_ent *e, unsigned k)
{
    for (unsigned i = 0; i < k; i++)
        if (e[i].idx >= 0) {
            e[i].name = vec_name(p->vec, e[i].idx, &e[i].nl);
            e[i].idx = -1;
        }
}

uint8_t *prof__tl_merge(const prof_store *s, const prof *sp, const prof *lp, const uint8_t *nv, uint32_t *len)
{
    tl_ent a[JD_MAX_TIMELINE], c[JD_MAX_TIMELINE], m[JD_MAX_TIMELINE];
    unsigned an = sp ? parse_own(sp, a) : 0, cn = lp ? parse_own(lp, c) : 0, k = 0;
    unsigned cap = s->lim.timeline;   /* (2) */
    *len = 0;
    if ((cn == 0 && an == 0) || cap == 0) return NULL;
    resolve(sp, a, an);
    resolve(lp, c, cn);
    for (unsigned i = 0, j = 0; k < cap && (i < an || j < cn); k++) {
        bool take_a = j >= cn || (i < an && a[i].ms >= c[j].ms);   /* (1): S's first on equal times */
        m[k] = take_a ? a[i++] : c[j++];
    }
    for (unsigned i = 0; i < k; i++)   /* (3): counted names by their index in the merged vec */
        if (m[i].kind == 0 && m[i].nl) m[i].idx = vec_find(nv, m[i].name, m[i].nl);
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    encode(&b, m, k);
    *len = (uint32_t)b.len;
    uint8_t *t = prof__tl_blob(b.data, b.len);
    jd_buf_release(&b);
    return t;
}

/* ---- JSON ---- */

int prof__tl_json(const prof_store *s, const prof *p, jd_buf *b)
{
    if (!p->tl || s->lim.timeline == 0) return 0;
    tl_ent e[JD_MAX_TIMELINE];
    unsigned k = parse_own(p, e);
    if (k > s->lim.timeline) k = s->lim.timeline;   /* (2) */
    int rc = jd_buf_adds(b, ",\"timeline\":[");
    for (unsigned i = 0; i < k; i++) {
        const tl_ent *x = &e[i];
        char at[JD_TIME_TEXT];
        size_t al = jd_time_format(x->ms * 1000, at);
        rc |= jd_buf_adds(b, i ? ",{\"at\":\"" : "{\"at\":\"") | jd_buf_add(b, at, al);
        rc |= jd_buf_adds(b, "\",\"type\":\"") | jd_buf_adds(b, kind_names[x->kind]) | jd_buf_adds(b, "\"");
        const uint8_t *name = x->name;
        uint32_t nl = x->nl;
        if (x->idx >= 0) name = vec_name(p->vec, x->idx, &nl);
        if (nl) rc |= jd_buf_adds(b, ",\"name\":") | jd_buf_add_json_str(b, (const char *)name, nl);
        if (x->cl) rc |= jd_buf_adds(b, ",\"channel\":") | jd_buf_add_json_str(b, (const char *)x->chan, x->cl);
        if (x->tl) rc |= jd_buf_adds(b, ",\"template\":") | jd_buf_add_json_str(b, (const char *)x->tmpl, x->tl);
        rc |= jd_buf_adds(b, "}");
    }
    return rc | jd_buf_adds(b, "]");
}
