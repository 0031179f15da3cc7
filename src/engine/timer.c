/*
** src/engine/timer.c -- the timer wheel: millions of pending deadlines per
** shard, O(1) tw_arm and tw_cancel, fired in exact (when_us, arm order) by
** tw_advance. The contract is include/journeyd/timer.h; the long form of this
** comment, with measured figures, is docs/internals/timer.md.
**
** Layout. Time is bucketed in ticks of 1 ms (tick = when_us / 1000). There are
** LEVELS = 6 levels of 256 slots, so a tick is 6 groups of 8 bits (2^48 ms,
** 8,900 years) above which lies the overflow list. An entry is placed by the
** highest 8-bit group in which its tick differs from the cursor `cur` (as in
** William Ahern's timeout.c, rather than by distance as in Linux):
**
**     level L = highest group where tick(when) ^ cur != 0,  slot = group L of tick
**
** so slot (L, s) holds the ticks that share cur's groups above L and have s in
** group L. The slot must be revisited exactly when cur reaches its first tick
** ("slot start"); then its entries are placed again relative to the new cur,
** which puts each one on a lower level or in the due list (cascading).
** A tick <= cur goes to the due list; a tick in a later 2^48 ms block (after
** the year 10889 for the epoch-aligned block now in use) goes to the overflow
** list, which is looked at only when cur crosses into a new block.
** Why 256 slots rather than 64: cascading is where the time goes (a cache
** miss per entry moved, while its slot is larger than the caches), and with
** 8-bit groups a 30-day wait moves 4 times before it fires instead of 6;
** docs/internals/timer.md has the measurements.
**
** Advancing. tw_advance(target) repeats: if the due list is not empty, fire its
** least (when_us, _seq) entry if when_us <= target, else stop; if it is empty,
** find the earliest slot start with the occupancy bitmaps (the lowest set bit
** of the lowest non-empty level, no stepping through empty ticks), move
** cur there and cascade that one slot; stop when that start is past target.
** The due list therefore only ever holds the entries of one tick (plus
** deadlines armed in the past), and it is sorted lazily: appends keep it
** sorted unless they land before the tail, which clears due_sorted and the next
** pop sorts it (merge sort). This is pop-the-minimum semantics, the same as a
** heap: an entry armed by a callback for a time <= target fires in the same
** call, at its place in the order.
**
** Firing. The entry is unlinked and disarmed, the wheel's time is moved to
** max(now, when_us), and only then is the callback called. The loop keeps no
** pointer across a callback (it re-reads the due head each time), so a
** callback may arm, cancel or free any entry, itself included.
**
** Invariants:
**  (1) Outside tw_advance, cur == now_us / 1000; inside, now_us / 1000 <= cur
**      <= target / 1000.
**  (2) An armed entry is in exactly one list: due (tick <= cur), slot (L, s)
**      (tick > cur, L and s as above), or overflow (tick >> 48 > cur >> 48).
**      Unarmed <=> _next == NULL (a zeroed entry is unarmed).
**  (3) bit s of bitmap[L] is set <=> slot (L, s) is not empty; every set bit
**      is above cur's group L (earlier slots of the level were cascaded).
**  (4) Level L's slot starts are all below level L+1's, so the lowest set bit
**      of the lowest non-empty level is the earliest slot start, and the
**      overflow entries are later than every slot entry.
**  (5) due_sorted => the due list is in (when_us, _seq) order.
**  (6) next_valid => next_cache is the least armed when_us (UINT64_MAX if none).
**  (6b) lower <= the least armed when_us, always: arming lowers it, removing
**      leaves it (still a bound), an exact computation sets it. O(1) to keep.
**  (7) Nothing here reads a clock or a random source: the firing sequence is a
**      function of the calls alone.
*/
#include "journeyd/timer.h"

#include <stdlib.h>

enum {
    LEVEL_BITS = 8, SLOTS = 1 << LEVEL_BITS, LEVELS = 6,
    TOP_SHIFT = LEVEL_BITS * LEVELS,   /* 48: an overflow block is 2^48 ms */
    WORDS = SLOTS / 64,                /* bitmap words per level */
};
#define TICK_US 1000u

struct tw_wheel {
    uint64_t   now_us;
    uint64_t   cur;                  /* the tick cursor, (1) */
    uint64_t   seq;                  /* next arm order */
    size_t     count;
    uint64_t   next_cache;           /* (6) */
    bool       next_valid;
    uint64_t   lower;            /* (6b) */
    bool       due_sorted;           /* (5) */
    bool       firing;               /* inside tw_advance: no re-entry */
    tw_fire_fn fire;
    void      *ctx;
    uint64_t   bitmap[LEVELS][WORDS];  /* (3) */
    tw_entry   due, ovf;               /* list sentinels */
    tw_entry   slots[LEVELS * SLOTS];  /* sentinels: 48 KiB, the wheel's whole memory */
};

static inline uint64_t tick_of(uint64_t us) { return us / TICK_US; }

static inline bool before(const tw_entry *a, const tw_entry *b)
{
    return a->when_us < b->when_us || (a->when_us == b->when_us && a->_seq < b->_seq);
}

static void list_init(tw_entry *s) { s->_next = s->_prev = s; }
static bool list_empty(const tw_entry *s) { return s->_next == s; }

static void link_tail(tw_entry *s, tw_entry *e)
{
    e->_prev = s->_prev;
    e->_next = s;
    s->_prev->_next = e;
    s->_prev = e;
}

/* Unlinks and disarms e. When e was the last entry of a slot, both of its
 * neighbours are that slot's sentinel, which names the bitmap bit to clear:
 * this is how cancel stays O(1) without storing the slot in the entry. */
static void unlink_entry(tw_wheel *w, tw_entry *e)
{
    tw_entry *n = e->_next, *p = e->_prev;
    p->_next = n;
    n->_prev = p;
    if (n == p && n != &w->due && n != &w->ovf) {
        size_t i = (size_t)(n - w->slots);
        w->bitmap[i / SLOTS][i % SLOTS / 64] &= ~(UINT64_C(1) << (i % 64));
    }
    e->_next = e->_prev = NULL;
}

/* Links e (when_us and _seq set, not linked) where (2) says it belongs. */
static void place(tw_wheel *w, tw_entry *e)
{
    uint64_t t = tick_of(e->when_us);
    if (t <= w->cur) {
        if (list_empty(&w->due)) w->due_sorted = true;
        else if (before(e, w->due._prev)) w->due_sorted = false;
        link_tail(&w->due, e);
        return;
    }
    unsigned L = (unsigned)(63 - __builtin_clzll(t ^ w->cur)) / LEVEL_BITS;
    if (L >= LEVELS) {
        link_tail(&w->ovf, e);
        return;
    }
    unsigned s = (unsigned)(t >> (L * LEVEL_BITS)) & (SLOTS - 1);
    link_tail(&w->slots[L * SLOTS + s], e);
    w->bitmap[L][s / 64] |= UINT64_C(1) << (s % 64);
}

/* ---- sorting the due list: bottom-up merge sort on the _next chain ------ */

static tw_entry *merge(tw_entry *a, tw_entry *b)
{
    tw_entry head, *t = &head;
    while (a && b) {
        if (before(b, a)) { t->_next = b; b = b->_next; }
        else              { t->_next = a; a = a->_next; }
        t = t->_next;
    }
    t->_next = a ? a : b;
    return head._next;
}

static void sort_due(tw_wheel *w)
{
    tw_entry *bins[64] = { 0 };   /* bins[i]: a sorted run of 2^i entries (or NULL) */
    tw_entry *e = w->due._next, *next, *all = NULL;
    w->due._prev->_next = NULL;
    for (; e; e = next) {
        next = e->_next;
        e->_next = NULL;
        unsigned i = 0;
        for (; bins[i]; i++) {
            e = merge(bins[i], e);
            bins[i] = NULL;
        }
        bins[i] = e;
    }
    for (unsigned i = 0; i < 64; i++)
        if (bins[i]) all = merge(bins[i], all);
    list_init(&w->due);
    for (e = all; e; e = next) {   /* rebuild _prev and the ring */
        next = e->_next;
        link_tail(&w->due, e);
    }
    w->due_sorted = true;
}

/* ---- cascading ---------------------------------------------------------- */

/* Places every entry of list s again relative to the (moved) cursor. Walking
 * a long slot is one cache miss per entry, each waiting for the one before
 * (its _next); walking from both ends at once keeps two misses in flight and
 * nearly halves the time. Entries that go back to s itself (overflow in a
 * later block) are linked anew and are not revisited: the walk follows the
 * pointers read before each entry was placed. */
static void cascade(tw_wheel *w, tw_entry *s)
{
    tw_entry *a = s->_next, *b = s->_prev;
    list_init(s);
    if (a == s) return;
    for (;;) {
        if (a == b) {
            place(w, a);
            return;
        }
        tw_entry *an = a->_next, *bp = b->_prev;
        place(w, a);
        place(w, b);
        if (an == b) return;
        a = an;
        b = bp;
    }
}

/* The lowest occupied slot of level L, or -1. */
static int lowest_slot(const tw_wheel *w, unsigned L)
{
    for (unsigned k = 0; k < WORDS; k++)
        if (w->bitmap[L][k]) return (int)(k * 64 + (unsigned)__builtin_ctzll(w->bitmap[L][k]));
    return -1;
}

/* Moves cur to the earliest slot start <= end and cascades that slot; false
 * when there is none (then cur may jump to end: no slot is crossed). */
static bool next_event(tw_wheel *w, uint64_t end)
{
    for (unsigned L = 0; L < LEVELS; L++) {
        int s = lowest_slot(w, L);
        if (s < 0) continue;
        unsigned sh = L * LEVEL_BITS;
        uint64_t start = (w->cur >> (sh + LEVEL_BITS) << (sh + LEVEL_BITS)) | ((uint64_t)s << sh);
        JD_ASSERT(start > w->cur);   /* (3) */
        if (start > end) return false;
        w->cur = start;
        w->bitmap[L][s / 64] &= ~(UINT64_C(1) << (s % 64));
        cascade(w, &w->slots[L * SLOTS + (unsigned)s]);
        return true;
    }
    /* The levels are empty: only the overflow is left, and by (2) it can be
     * due only once end is in a later 2^48 ms block than cur. */
    if (list_empty(&w->ovf) || end >> TOP_SHIFT == w->cur >> TOP_SHIFT) return false;
    uint64_t start = UINT64_MAX;
    for (tw_entry *e = w->ovf._next; e != &w->ovf; e = e->_next) {
        uint64_t b = tick_of(e->when_us) >> TOP_SHIFT << TOP_SHIFT;
        if (b < start) start = b;
    }
    if (start > end) return false;
    w->cur = start;
    cascade(w, &w->ovf);
    return true;
}

/* ---- the contract ------------------------------------------------------- */

tw_wheel *tw_create(uint64_t now_us, tw_fire_fn fire, void *ctx)
{
    tw_wheel *w = jd_xcalloc(1, sizeof *w);
    w->now_us = now_us;
    w->cur = tick_of(now_us);
    w->next_cache = UINT64_MAX;
    w->next_valid = true;
    w->lower = UINT64_MAX;
    w->due_sorted = true;
    w->fire = fire;
    w->ctx = ctx;
    list_init(&w->due);
    list_init(&w->ovf);
    for (size_t i = 0; i < JD_ARRAY_LEN(w->slots); i++) list_init(&w->slots[i]);
    return w;
}

void tw_destroy(tw_wheel *w)
{
    /* Armed entries are left as they are: their owners may have freed them. */
    free(w);
}

void tw_arm(tw_wheel *w, tw_entry *e, uint64_t when_us)
{
    tw_cancel(w, e);
    e->when_us = when_us;
    e->_seq = w->seq++;
    place(w, e);
    w->count++;
    if (w->next_valid && when_us < w->next_cache) w->next_cache = when_us;
    if (when_us < w->lower) w->lower = when_us;
}

void tw_cancel(tw_wheel *w, tw_entry *e)
{
    if (!e->_next) return;
    unlink_entry(w, e);
    w->count--;
    if (w->next_valid && e->when_us == w->next_cache) w->next_valid = false;
}

bool tw_armed(const tw_entry *e) { return e->_next != NULL; }

size_t tw_advance(tw_wheel *w, uint64_t now_us)
{
    JD_ASSERT(!w->firing);   /* a callback must not advance its own wheel */
    uint64_t target = now_us > w->now_us ? now_us : w->now_us;
    uint64_t end = tick_of(target);
    size_t fired = 0;

    w->firing = true;
    for (;;) {
        tw_entry *e = w->due._next;
        if (e == &w->due) {
            if (!next_event(w, end)) break;
            continue;
        }
        if (!w->due_sorted) {
            sort_due(w);
            e = w->due._next;
        }
        /* Later in target's own millisecond: stays due, and by (1) cur == end. */
        if (e->when_us > target) break;
        unlink_entry(w, e);
        w->count--;
        w->next_valid = false;   /* e was the minimum */
        if (e->when_us > w->now_us) w->now_us = e->when_us;
        fired++;
        w->fire(w, e, w->ctx);   /* may arm, cancel or free anything: re-read due */
    }
    JD_ASSERT(w->cur <= end);
    w->cur = end;
    w->now_us = target;
    w->firing = false;
    return fired;
}

uint64_t tw_now(const tw_wheel *w) { return w->now_us; }

size_t tw_count(const tw_wheel *w) { return w->count; }

uint64_t tw_next_deadline(tw_wheel *w)
{
    if (w->next_valid) return w->next_cache;
    uint64_t m = UINT64_MAX;
    const tw_entry *s = &w->ovf;
    if (!list_empty(&w->due)) {
        /* due ticks are <= cur < any slot tick, (2) */
        if (!w->due_sorted) sort_due(w);
        m = w->due._next->when_us;
        goto out;
    }
    for (unsigned L = 0; L < LEVELS; L++) {
        int i = lowest_slot(w, L);
        if (i >= 0) {   /* (4): the earliest slot holds the minimum */
            s = &w->slots[L * SLOTS + (unsigned)i];
            break;
        }
    }
    /* One slot (or the overflow) is scanned: O(its length), then cached. */
    for (const tw_entry *e = s->_next; e != s; e = e->_next)
        if (e->when_us < m) m = e->when_us;
out:
    w->next_cache = m;
    w->next_valid = true;
    w->lower = m;
    return m;
}

uint64_t tw_next_deadline_bound(const tw_wheel *w) { return w->next_valid ? w->next_cache : w->lower; }
