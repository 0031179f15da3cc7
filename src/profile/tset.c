/* src/profile/tset.c -- trait sets ("tsets": a profile's traits and consent,
 * each group's traits) in their compact in-memory form, and the store's
 * shared trait key names.
 *
 * Most profiles of a store have the same few trait keys ("email", "plan"),
 * so a key is kept once per store, in prof_keys, and an entry names it by a
 * 2-byte id; set_us is a delta from the entry before it, in the coarsest
 * unit that keeps it exact; a string value is kept without its two quotes.
 * profile_int.h draws the entry. The snapshot and the merge blob keep the
 * self-describing form they always had (prof__tset_disk, prof__tset_from_disk),
 * so ids never leave the store that gave them.
 *
 * Invariants:
 *  (1) An entry is written only by prof__tset_put and read only by
 *      prof__tset_next: the same entries give the same bytes, so comparing
 *      two tsets of one store with memcmp compares their contents.
 *  (2) Shared names are never freed or renumbered while the store lives: an
 *      id in any tset of the store stays valid. They are bounded: at most
 *      JD_MAX_SHARED_KEYS names of at most JD_MAX_SHARED_KEY_BYTES (a key
 *      past either is kept in the entry, PROF_KID_OWN), so hostile trait
 *      keys cost a store at most ~0.5 MiB.
 *  (3) The id width is fixed (2 bytes) so that an entry's size does not
 *      depend on the order names were shared in: a store decoded from
 *      another's snapshot has the same heap (snapshot.c (3)) while neither
 *      table is full.
 *  (4) A value is stored with str set exactly when its JSON text starts and
 *      ends with a quote (a JSON string, nothing around it): the JSON text
 *      is rebuilt byte for byte.
 */
#include "profile_int.h"

#include <stdlib.h>

_Static_assert(JD_MAX_SHARED_KEYS < PROF_KID_OWN, "shared key ids fit below PROF_KID_OWN");
_Static_assert(JD_MAX_SHARED_KEY_BYTES <= UINT8_MAX, "shared key lengths fit a byte");

static const uint64_t unit_us[3] = { 1, 1000, 1000000 };

void prof__keys_release(prof_keys *k)
{
    for (uint32_t i = 0; i < k->n; i++) free(k->name[i]);
    free(k->name);
    free(k->len);
    jd_map_destroy(k->ids);
    memset(k, 0, sizeof *k);
}

uint16_t prof__key_id(prof_store *s, const char *k, size_t kl)
{
    prof_keys *t = &s->keys;
    if (kl > JD_MAX_SHARED_KEY_BYTES) return PROF_KID_OWN;
    if (!t->ids) t->ids = jd_map_create(64);
    void *v = jd_map_get(t->ids, k, kl);
    if (v) return (uint16_t)((uintptr_t)v - 1);
    if (t->n >= JD_MAX_SHARED_KEYS) return PROF_KID_OWN;   /* (2) */
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->name = jd_xrealloc(t->name, t->cap * sizeof *t->name);
        t->len = jd_xrealloc(t->len, t->cap * sizeof *t->len);
    }
    char *name = jd_xmalloc(kl + 1);
    memcpy(name, k, kl);
    name[kl] = 0;
    t->name[t->n] = name;
    t->len[t->n] = (uint8_t)kl;
    jd_map_put(t->ids, name, kl, (void *)(uintptr_t)(t->n + 1));
    return (uint16_t)t->n++;
}

bool prof__tset_next(const prof_store *s, prof_titer *it, prof_tent *e)
{
    if (!it->q || it->q >= it->end) return false;
    const uint8_t *q = it->q;
    uint64_t h, zz;
    e->kid = prof__rd16(q);
    q += 2;
    q += prof__uv64_get(q, &h);
    q += prof__uv64_get(q, &zz);
    e->vl = (uint32_t)(h >> 3);
    e->str = (h >> 2) & 1;
    int64_t d = (int64_t)((zz >> 1) ^ (0 - (zz & 1)));
    it->at = (int64_t)((uint64_t)it->at + (uint64_t)d * unit_us[h & 3]);
    e->at = it->at;
    if (e->kid == PROF_KID_OWN) {
        uint32_t kl;
        q += prof__uv_get(q, &kl);
        e->k = (const char *)q;
        e->kl = kl;
        q += kl + 1;
    } else {
        JD_ASSERT(e->kid < s->keys.n);
        e->k = s->keys.name[e->kid];
        e->kl = s->keys.len[e->kid];
    }
    e->v = (const char *)q;
    it->q = q + e->vl;
    return true;
}

void prof__tset_put(jd_buf *b, int64_t *prev, const prof_tent *e)
{
    uint8_t h[2 + 10 + 10 + 5];
    /* the delta wraps like the reader's sum: any two int64 times work */
    int64_t d = (int64_t)((uint64_t)e->at - (uint64_t)*prev);
    unsigned u = d % 1000000 == 0 ? 2 : d % 1000 == 0 ? 1 : 0;
    d /= (int64_t)unit_us[u];
    uint64_t zz = ((uint64_t)d << 1) ^ (uint64_t)(d >> 63);
    prof__wr16(h, e->kid);
    size_t n = 2;
    n += prof__uv64_put(h + n, (uint64_t)e->vl << 3 | (e->str ? 4u : 0u) | u);
    n += prof__uv64_put(h + n, zz);
    if (e->kid == PROF_KID_OWN) n += prof__uv_put(h + n, e->kl);
    jd_buf_add(b, h, n);
    if (e->kid == PROF_KID_OWN) {
        jd_buf_add(b, e->k, e->kl);
        jd_buf_add(b, "", 1);
    }
    jd_buf_add(b, e->v, e->vl);
    *prev = e->at;
}

void prof__tent_set_value(prof_tent *e, const char *t, uint32_t n)
{
    e->str = n >= 2 && t[0] == '"' && t[n - 1] == '"';   /* (4) */
    e->v = e->str ? t + 1 : t;
    e->vl = e->str ? n - 2 : n;
}

int prof__tent_json(jd_buf *b, const prof_tent *e, bool cut_last)
{
    if (!e->str) return jd_buf_add(b, e->v, e->vl - (cut_last && e->vl ? 1 : 0));
    int rc = jd_buf_add(b, "\"", 1) | jd_buf_add(b, e->v, e->vl);
    return cut_last ? rc : rc | jd_buf_add(b, "\"", 1);
}

json_object *prof__tent_object(prof_store *s, const prof_tent *e)
{
    if (!e->str) return prof__stored_value(s, e->v, e->vl);
    jd_buf *b = &s->scratch;   /* a string parses where it lies: scratch is not reused */
    jd_buf_reset(b);
    prof__tent_json(b, e, false);
    return prof__stored_value(s, b->data, (uint32_t)b->len);
}

/* ---- the snapshot's form --------------------------------------------------- */

size_t prof__tset_disk_size(const prof_store *s, const uint8_t *t, size_t n)
{
    size_t size = 0;
    prof_titer it;
    prof_tent e;
    prof__titer_init(&it, t, n);
    while (prof__tset_next(s, &it, &e)) size += PROF_TSET_HDR + e.kl + 1 + prof__tent_json_len(&e);
    return size;
}

void prof__tset_disk(const prof_store *s, const uint8_t *t, size_t n, jd_buf *b)
{
    prof_titer it;
    prof_tent e;
    prof__titer_init(&it, t, n);
    while (prof__tset_next(s, &it, &e)) {
        uint8_t h[PROF_TSET_HDR];
        prof__wr32(h, e.kl);
        prof__wr32(h + 4, prof__tent_json_len(&e));
        prof__wr64(h + 8, e.at);
        jd_buf_add(b, h, sizeof h);
        jd_buf_add(b, e.k, e.kl);
        jd_buf_add(b, "", 1);
        prof__tent_json(b, &e, false);
    }
}

void prof__tset_from_disk(prof_store *s, const uint8_t *t, size_t n, jd_buf *b)
{
    int64_t prev = PROF_TSET_EPOCH;
    for (size_t i = 0; i < n;) {
        prof_tent e;
        e.kl = prof__rd32(t + i);
        uint32_t vl = prof__rd32(t + i + 4);
        e.at = prof__rd64(t + i + 8);
        e.k = (const char *)t + i + PROF_TSET_HDR;
        e.kid = prof__key_id(s, e.k, e.kl);
        prof__tent_set_value(&e, e.k + e.kl + 1, vl);
        prof__tset_put(b, &prev, &e);
        i += PROF_TSET_HDR + e.kl + 1 + vl;
    }
}

size_t prof__groups_disk_size(const prof_store *s, const uint8_t *g, size_t n)
{
    size_t size = 0;
    for (size_t i = 0; i < n;) {
        uint32_t gl = prof__rd32(g + i), tl = prof__rd32(g + i + 4);
        size += PROF_GRP_HDR + gl + prof__tset_disk_size(s, g + i + PROF_GRP_HDR + gl, tl);
        i += PROF_GRP_HDR + gl + tl;
    }
    return size;
}

void prof__groups_disk(const prof_store *s, const uint8_t *g, size_t n, jd_buf *b)
{
    for (size_t i = 0; i < n;) {
        uint32_t gl = prof__rd32(g + i), tl = prof__rd32(g + i + 4);
        const uint8_t *t = g + i + PROF_GRP_HDR + gl;
        uint8_t h[PROF_GRP_HDR];
        prof__wr32(h, gl);
        prof__wr32(h + 4, (uint32_t)prof__tset_disk_size(s, t, tl));
        jd_buf_add(b, h, sizeof h);
        jd_buf_add(b, g + i + PROF_GRP_HDR, gl);
        prof__tset_disk(s, t, tl, b);
        i += PROF_GRP_HDR + gl + tl;
    }
}

void prof__groups_from_disk(prof_store *s, const uint8_t *g, size_t n, jd_buf *b)
{
    jd_buf t;
    jd_buf_init(&t, SIZE_MAX);
    for (size_t i = 0; i < n;) {
        uint32_t gl = prof__rd32(g + i), tl = prof__rd32(g + i + 4);
        jd_buf_reset(&t);
        prof__tset_from_disk(s, g + i + PROF_GRP_HDR + gl, tl, &t);
        uint8_t h[PROF_GRP_HDR];
        prof__wr32(h, gl);
        prof__wr32(h + 4, (uint32_t)t.len);
        jd_buf_add(b, h, sizeof h);
        jd_buf_add(b, g + i + PROF_GRP_HDR, gl);
        jd_buf_add(b, t.data, t.len);
        i += PROF_GRP_HDR + gl + tl;
    }
    jd_buf_release(&t);
}
