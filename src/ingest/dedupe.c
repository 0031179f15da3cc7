/* src/ingest/dedupe.c -- which messageIds were seen in the last `window` of received time.
 *
 * Two structures over one set of entries, all allocated in create:
 *   ring   entries (key, time) in the order they were recorded; head is the
 *          oldest. Expiry pops from the head, eviction (full) pops from the
 *          head, undo pops from the tail.
 *   index  open addressing, linear probing, backward-shift deletion: key ->
 *          ring slot (stored as slot + 1; 0 is an empty cell). Sized to a power
 *          of two >= 2 * capacity, so the load stays <= 0.5.
 *
 * Invariants:
 *  (1) A ring slot is live (key != 0) iff exactly one index cell names it, and
 *      no two live slots hold the same key. Key 0 marks a dead slot, which is
 *      why ingest_dedupe_key never returns 0 (and seen() maps 0 to 1).
 *  (2) Expiry compares against max_now - window, max_now being the largest
 *      now seen so far: time need not be monotonic, and the ring is in
 *      insertion order, not time order. So a live entry past the head may be
 *      stale; seen() checks the entry's own time and, if stale, kills the slot
 *      (dead until it reaches the head) and records the key afresh.
 *  (3) live <= used <= cap; used counts live and dead slots from head.
 */
#include "journeyd/ingest.h"

#include <stdlib.h>
#include <string.h>

#define SNAP_VERSION 1
#define SNAP_HEADER  9    /* u8 version, u64 count */
#define SNAP_ENTRY   16   /* u64 key, i64 time_us */
#define MAX_CAP      (UINT32_C(1) << 31)   /* slot + 1 fits the u32 index cells */

typedef struct entry {
    uint64_t key;       /* 0: dead slot */
    int64_t  time_us;
} entry;

struct ingest_dedupe {
    int64_t   window_us;
    size_t    cap, head, used, live;
    entry    *ring;
    uint32_t *index;
    size_t    mask;
    int64_t   max_now;
    bool      any_now;
    uint64_t  evicted_early;
};

uint64_t ingest_dedupe_key(jd_str message_id)
{
    uint64_t h = jd_hash64(message_id.p, message_id.n);
    return h ? h : 1;
}

ingest_dedupe *ingest_dedupe_create(uint64_t window_us, size_t max_entries)
{
    ingest_dedupe *d = jd_xcalloc(1, sizeof *d);
    d->window_us = window_us > INT64_MAX ? INT64_MAX : (int64_t)window_us;
    d->cap = max_entries < 1 ? 1 : max_entries > MAX_CAP ? MAX_CAP : max_entries;
    size_t size = 2;
    while (size < 2 * d->cap) size *= 2;
    d->mask = size - 1;
    /* Mapped, not calloc'ed: an 8M-entry window would otherwise be cleared
     * (0.6 s and 128 MiB resident) at every start. */
    d->ring = jd_xmap_zero(d->cap * sizeof *d->ring);
    d->index = jd_xmap_zero((d->mask + 1) * sizeof *d->index);
    return d;
}

void ingest_dedupe_destroy(ingest_dedupe *d)
{
    if (!d) return;
    jd_unmap_zero(d->ring, d->cap * sizeof *d->ring);
    jd_unmap_zero(d->index, (d->mask + 1) * sizeof *d->index);
    free(d);
}

static size_t find(const ingest_dedupe *d, uint64_t key)
{
    for (size_t i = key & d->mask;; i = (i + 1) & d->mask) {
        uint32_t c = d->index[i];
        if (c == 0) return SIZE_MAX;
        if (d->ring[c - 1].key == key) return i;
    }
}

/* Backward-shift deletion: no tombstones, so probes stay short. */
static void index_del(ingest_dedupe *d, size_t i)
{
    for (;;) {
        d->index[i] = 0;
        size_t j = i;
        for (;;) {
            j = (j + 1) & d->mask;
            uint32_t c = d->index[j];
            if (c == 0) return;
            size_t home = d->ring[c - 1].key & d->mask;
            /* The cell at j may fill the hole at i unless its home lies in (i, j]. */
            bool home_between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!home_between) break;
        }
        d->index[i] = d->index[j];
        i = j;
    }
}

static void index_put(ingest_dedupe *d, uint64_t key, size_t slot)
{
    size_t i = key & d->mask;
    while (d->index[i]) i = (i + 1) & d->mask;
    d->index[i] = (uint32_t)(slot + 1);
}

/* Makes a live slot dead (1). */
static void kill_slot(ingest_dedupe *d, size_t slot)
{
    size_t i = find(d, d->ring[slot].key);
    JD_ASSERT(i != SIZE_MAX && d->index[i] == slot + 1);
    index_del(d, i);
    d->ring[slot].key = 0;
    d->live--;
}

static void pop_head(ingest_dedupe *d)
{
    if (d->ring[d->head].key) kill_slot(d, d->head);
    d->head = (d->head + 1) % d->cap;
    d->used--;
}

static int64_t limit_of(const ingest_dedupe *d)
{
    int64_t limit;
    return __builtin_sub_overflow(d->max_now, d->window_us, &limit) ? INT64_MIN : limit;
}

static void expire(ingest_dedupe *d)
{
    int64_t limit = limit_of(d);
    while (d->used && (d->ring[d->head].key == 0 || d->ring[d->head].time_us < limit)) pop_head(d);
}

static void record(ingest_dedupe *d, uint64_t key, int64_t t)
{
    if (d->used == d->cap) {
        if (d->ring[d->head].key) d->evicted_early++;
        pop_head(d);
    }
    size_t slot = (d->head + d->used) % d->cap;
    d->ring[slot] = (entry){ key, t };
    d->used++;
    d->live++;
    index_put(d, key, slot);
}

static void see_time(ingest_dedupe *d, int64_t now_us)
{
    if (!d->any_now || now_us > d->max_now) d->max_now = now_us;
    d->any_now = true;
}

bool ingest_dedupe_seen(ingest_dedupe *d, uint64_t key, int64_t now_us)
{
    if (key == 0) key = 1;
    see_time(d, now_us);
    expire(d);
    size_t i = find(d, key);
    if (i != SIZE_MAX) {
        size_t slot = d->index[i] - 1;
        if (d->ring[slot].time_us >= limit_of(d)) return true;
        kill_slot(d, slot);   /* stale behind a newer head (2) */
    }
    record(d, key, now_us);
    return false;
}

void ingest_dedupe_undo(ingest_dedupe *d, size_t n)
{
    while (n && d->used) {
        size_t slot = (d->head + d->used - 1) % d->cap;
        if (d->ring[slot].key) {
            kill_slot(d, slot);
            n--;
        }
        d->used--;
    }
}

size_t ingest_dedupe_count(const ingest_dedupe *d) { return d->live; }
uint64_t ingest_dedupe_evicted_early(const ingest_dedupe *d) { return d->evicted_early; }

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

int ingest_dedupe_encode(const ingest_dedupe *d, jd_buf *out)
{
    uint64_t total = SNAP_HEADER + (uint64_t)d->live * SNAP_ENTRY;
    if (total > out->max || out->len > out->max - total) return JD_ELIMIT;
    unsigned char hdr[SNAP_HEADER] = { SNAP_VERSION };
    put_u64(hdr + 1, d->live);
    jd_buf_add(out, hdr, sizeof hdr);
    for (size_t k = 0; k < d->used; k++) {
        const entry *e = &d->ring[(d->head + k) % d->cap];
        if (!e->key) continue;
        unsigned char b[SNAP_ENTRY];
        put_u64(b, e->key);
        put_u64(b + 8, (uint64_t)e->time_us);
        jd_buf_add(out, b, sizeof b);
    }
    return JD_OK;
}

int ingest_dedupe_decode(ingest_dedupe *d, const void *p, size_t n, jd_err *err)
{
    const unsigned char *b = p;
    if (n < SNAP_HEADER)
        return jd_err_set(err, JD_ECORRUPT, "", "dedupe snapshot is %zu bytes, shorter than its header", n);
    if (b[0] != SNAP_VERSION)
        return jd_err_set(err, JD_ECORRUPT, "", "dedupe snapshot version %u is not supported (want %d)",
                          b[0], SNAP_VERSION);
    uint64_t count = get_u64(b + 1);
    if (count > (n - SNAP_HEADER) / SNAP_ENTRY || (n - SNAP_HEADER) != count * SNAP_ENTRY)
        return jd_err_set(err, JD_ECORRUPT, "", "dedupe snapshot is %zu bytes, wrong for %llu entries",
                          n, (unsigned long long)count);
    for (uint64_t k = 0; k < count; k++)
        if (get_u64(b + SNAP_HEADER + k * SNAP_ENTRY) == 0)
            return jd_err_set(err, JD_ECORRUPT, "", "dedupe snapshot entry %llu has key 0",
                              (unsigned long long)k);

    while (d->used) pop_head(d);
    d->head = 0;
    /* A smaller max_entries than when written keeps the newest entries. */
    uint64_t skip = count > d->cap ? count - d->cap : 0;
    for (uint64_t k = skip; k < count; k++) {
        const unsigned char *e = b + SNAP_HEADER + k * SNAP_ENTRY;
        uint64_t key = get_u64(e);
        int64_t t = (int64_t)get_u64(e + 8);
        see_time(d, t);
        if (find(d, key) == SIZE_MAX) record(d, key, t);
    }
    return JD_OK;
}
