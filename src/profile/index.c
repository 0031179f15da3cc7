/* src/profile/index.c -- the store's profiles by key: open addressing with
 * linear probing over profile pointers.
 *
 * A jd_map slot holds a key pointer, its length, its hash and a value (32
 * bytes); here a slot is the profile pointer alone (8 bytes) plus one tag
 * byte, since the key is in the profile (prof.key, which never moves). The
 * tag (0x80 | 7 bits of the hash) spares most probes a visit to a profile
 * whose key differs. This is the shape of src/journey/host_int.h's
 * jh_people, without the hash in the item: a profile stays 72 bytes.
 *
 * Invariants:
 *  (1) cap is 0 or a power of two (16 at least), len < cap * 3 / 4, and
 *      cap is 0 when len is 0.
 *  (2) Every profile sits in the first free-or-its slot probing from its
 *      hash: deletion shifts later entries of the run back (no tombstones),
 *      so a lookup stops at the first free slot.
 *  (3) The table halves when a deletion leaves it less than 1/8 full, and is
 *      freed when empty: prof__index_bytes is what the store holds now, and
 *      an emptied store is back to 0 (profile.c (6)). The gap between 3/4
 *      and 1/8 keeps a store that inserts and deletes at one size from
 *      rehashing on every call.
 */
#include "profile_int.h"

#include <stdlib.h>

static uint64_t key_hash(const char *k, size_t n) { return jd_hash64(k, n); }
static uint8_t tag_of(uint64_t h) { return (uint8_t)(0x80 | (h >> 57)); }

void prof__index_init(prof_index *x) { memset(x, 0, sizeof *x); }

void prof__index_release(prof_index *x)
{
    free(x->slot);
    free(x->tag);
    memset(x, 0, sizeof *x);
}

size_t prof__index_bytes(const prof_index *x)
{
    return x->cap ? prof__alloc_size((size_t)x->cap * sizeof *x->slot) + prof__alloc_size(x->cap) : 0;
}

prof *prof__index_get(const prof_index *x, const char *key, size_t kn)
{
    if (!x->len) return NULL;
    uint64_t h = key_hash(key, kn);
    uint8_t tg = tag_of(h);
    for (size_t m = x->cap - 1, i = (size_t)h & m;; i = (i + 1) & m) {
        if (!x->tag[i]) return NULL;
        prof *p = x->slot[i];
        if (x->tag[i] == tg && p->key_len == kn && memcmp(p->key, key, kn) == 0) return p;
    }
}

static void place(prof_index *x, prof *p, uint64_t h)
{
    size_t m = x->cap - 1, i = (size_t)h & m;
    while (x->tag[i]) i = (i + 1) & m;
    x->slot[i] = p;
    x->tag[i] = tag_of(h);
}

static void resize(prof_index *x, uint32_t cap)
{
    prof_index old = *x;
    x->cap = cap;
    x->slot = cap ? jd_xcalloc(cap, sizeof *x->slot) : NULL;
    x->tag = cap ? jd_xcalloc(cap, 1) : NULL;
    for (uint32_t i = 0; i < old.cap; i++)
        if (old.tag[i]) place(x, old.slot[i], key_hash(old.slot[i]->key, old.slot[i]->key_len));
    free(old.slot);
    free(old.tag);
}

void prof__index_put(prof_index *x, prof *p)
{
    if ((size_t)(x->len + 1) * 4 >= (size_t)x->cap * 3) {   /* (1) */
        JD_ASSERT(x->cap < (1u << 31));
        resize(x, x->cap ? x->cap * 2 : 16);
    }
    JD_ASSERT(!prof__index_get(x, p->key, p->key_len));
    place(x, p, key_hash(p->key, p->key_len));
    x->len++;
}

void prof__index_del(prof_index *x, const prof *p)
{
    size_t m = x->cap - 1, i = (size_t)key_hash(p->key, p->key_len) & m;
    while (x->slot[i] != p) {
        JD_ASSERT(x->tag[i]);
        i = (i + 1) & m;
    }
    /* (2): backward shift. An entry at j may move to the hole at i when its
     * home slot is not in the cyclic range (i, j]. */
    for (size_t j = (i + 1) & m; x->tag[j]; j = (j + 1) & m) {
        size_t home = (size_t)key_hash(x->slot[j]->key, x->slot[j]->key_len) & m;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays) continue;
        x->slot[i] = x->slot[j];
        x->tag[i] = x->tag[j];
        i = j;
    }
    x->slot[i] = NULL;
    x->tag[i] = 0;
    x->len--;
    if (x->len == 0) resize(x, 0);   /* (3) */
    else if (x->cap > 16 && (size_t)x->len * 8 < x->cap) resize(x, x->cap / 2);
}
