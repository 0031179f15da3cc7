/* src/base/map.c -- string-keyed hash map: open addressing, linear probing,
 * backward-shift deletion (no tombstones, so lookups stay short after churn).
 *
 * Invariants:
 *  (1) cap is a power of two and len <= cap * 7 / 8 after every put.
 *  (2) Every entry sits at or after its home slot (hash & mask), with no empty
 *      slot between home and it (what backward-shift deletion preserves).
 * Keys are borrowed: the value owns them (profile.h, for example, keys by the
 * profile's own key string). */
#include "journeyd/base.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
    uint64_t    hash;    /* 0: empty (a real hash of 0 is stored as 1) */
    const char *k;
    size_t      kn;
    void       *v;
} slot;

struct jd_map {
    slot  *slots;
    size_t cap, len;
};

static uint64_t hkey(const char *k, size_t kn)
{
    uint64_t h = jd_hash64(k, kn);
    return h ? h : 1;
}

jd_map *jd_map_create(size_t hint)
{
    jd_map *m = jd_xcalloc(1, sizeof *m);
    size_t cap = 16;
    while (cap * 7 / 8 < hint) cap *= 2;
    m->slots = jd_xcalloc(cap, sizeof(slot));
    m->cap = cap;
    return m;
}

void jd_map_destroy(jd_map *m)
{
    if (!m) return;
    free(m->slots);
    free(m);
}

static size_t find(const jd_map *m, uint64_t h, const char *k, size_t kn, bool *found)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const slot *s = &m->slots[i];
        if (s->hash == 0) { *found = false; return i; }
        if (s->hash == h && s->kn == kn && memcmp(s->k, k, kn) == 0) { *found = true; return i; }
    }
}

void *jd_map_get(const jd_map *m, const char *k, size_t kn)
{
    bool found;
    size_t i = find(m, hkey(k, kn), k, kn, &found);
    return found ? m->slots[i].v : NULL;
}

static void grow(jd_map *m)
{
    slot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->slots = jd_xcalloc(m->cap, sizeof(slot));
    size_t mask = m->cap - 1;
    for (size_t j = 0; j < oldcap; j++) {
        if (!old[j].hash) continue;
        size_t i = old[j].hash & mask;
        while (m->slots[i].hash) i = (i + 1) & mask;
        m->slots[i] = old[j];
    }
    free(old);
}

void *jd_map_put(jd_map *m, const char *k, size_t kn, void *v)
{
    uint64_t h = hkey(k, kn);
    bool found;
    size_t i = find(m, h, k, kn, &found);
    if (found) {
        void *prev = m->slots[i].v;
        m->slots[i].v = v;
        m->slots[i].k = k;   /* the new value may own a new copy of the key */
        return prev;
    }
    if ((m->len + 1) > m->cap * 7 / 8) {
        grow(m);
        i = find(m, h, k, kn, &found);
    }
    m->slots[i] = (slot){ h, k, kn, v };
    m->len++;
    return NULL;
}

void *jd_map_del(jd_map *m, const char *k, size_t kn)
{
    bool found;
    size_t i = find(m, hkey(k, kn), k, kn, &found);
    if (!found) return NULL;
    void *v = m->slots[i].v;
    size_t mask = m->cap - 1;
    /* Backward shift: pull later entries of the run into the hole when their
     * home slot is not between the hole and them (invariant 2). */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].hash; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole] = (slot){ 0 };
    m->len--;
    return v;
}

size_t jd_map_len(const jd_map *m) { return m->len; }

bool jd_map_next(const jd_map *m, size_t *pos, const char **k, size_t *kn, void **v)
{
    while (*pos < m->cap) {
        const slot *s = &m->slots[(*pos)++];
        if (!s->hash) continue;
        if (k) *k = s->k;
        if (kn) *kn = s->kn;
        if (v) *v = s->v;
        return true;
    }
    return false;
}
