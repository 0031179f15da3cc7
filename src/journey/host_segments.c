/*
** src/journey/host_segments.c -- segment membership in one partition:
** re-evaluated in every turn of a person, and, for conditions that change with
** time alone ("no login for 3 days"), at the moment they flip, through a
** timer wheel of their own (h->wseg), never by polling.
**
** State: people who are in at least one segment, or have a flip pending, have
** a jh_seg (bits + pending flips) in h->segs, keyed by profile key; nobody
** else costs anything.
**
** Invariants:
**  (1) jh__segs_update is the only place bits change; every change it makes
**      runs the journeys entered on segment_enter / segment_exit of that
**      segment in the same turn, and marks the turn changed so condition-only
**      exit rules (in_segment(...)) are checked at its end.
**  (2) A segment whose condition reads `now` has at most one flip armed per
**      person: the first millisecond tick after the turn at which its value
**      would change (found by probing, or confirmed from the last flip's
**      distance with two evaluations), or a re-check at the probe horizon
**      when none is found. Conditions are pure and the answer is canonical,
**      so replay (with or without a snapshot between) arms the same flips.
**  (3) Probes see the profile as it is in the turn; a condition true only
**      for a window shorter than the probe step it falls in can be missed
**      until the person's next turn (docs/journeys.md, segments).
**  (4) h->seg_size[b] is the number of people with bit b. Bits change only
**      through set_bits (from jh__segs_update, jh__segs_forget and
**      jh__segs_decode_one), which keeps the counts.
**  (5) Size over time (docs/segments.md): every hour boundary with index <=
**      h->hist_hour (and day boundary <= h->hist_day) is in the rings of
**      every segment defined before it; the boundaries after those, up to
**      the host's clock, are not written yet and equal the current size.
**      That holds because sizes change only in set_bits, which first writes
**      every boundary up to the change's time with the sizes as they were
**      (record_upto). So a boundary costs nothing until the first change
**      after it (then one pass over the defined segments, however many
**      boundaries passed), a record that changes no membership costs nothing,
**      and a point is exact: the size after every record before the boundary.
**  (6) Every change jh__segs_update makes reaches the person's live
**      instances of active journeys in the same turn, before the entries it
**      runs (jrn_on_segment: exit rules, the goal and waits written
**      segment_enter / segment_exit). A time-only flip is a turn of its own
**      (seg_fire), at its instant. An update node that changes the profile
**      gets the segments re-evaluated at the end of its turn (host.c
**      invariant (6)).
*/
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "host_int.h"

#define JH_FLIP_PRECISION_US 1000                 /* 1 ms */
#define JH_FLIP_FIRST_US     (int64_t)JD_SEC       /* first probe: 1 s later */
#define JH_FLIP_HORIZON_US   (400 * (int64_t)JD_DAY)

typedef struct jh_flip {
    tw_entry        timer;
    struct jh_seg  *st;
    struct jh_flip *next;
    int64_t         hint;      /* the last flip's distance from its turn (a search hint, not state) */
    uint32_t        bit;
} jh_flip;

struct jh_seg {
    uint64_t  bits;            /* only set_bits writes it: invariant (4) */
    jh_flip  *flips;
    uint32_t  key_len;
    char      key[];
};

/* One segment's size history: 1048 bytes. Ring slot k % capacity holds the
 * point at boundary k (an index since the epoch) for the newest `capacity`
 * boundaries written; boundaries before first_* predate the segment. */
struct jh_hist {
    int64_t  first_hour, first_day;
    uint32_t hour[JRN_SEG_HOURS];
    uint32_t day[JRN_SEG_DAYS];
};
_Static_assert(JRN_SEG_HOURS >= JRN_SEG_DAYS, "jrn_seg_points.size holds either ring");

#define HOUR_US ((int64_t)JD_HOUR)
#define DAY_US  ((int64_t)JD_DAY)

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && a < 0); }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static size_t ring_slot(int64_t k, uint32_t cap) { return (size_t)(((k % cap) + cap) % cap); }
static uint32_t clamp32(uint64_t v) { return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v; }

/* Boundaries from..to (inclusive) all get v; only the newest cap matter. */
static void ring_fill(uint32_t *ring, uint32_t cap, int64_t from, int64_t to, uint32_t v)
{
    if (from < to - (int64_t)cap + 1) from = to - (int64_t)cap + 1;
    for (int64_t k = from; k <= to; k++) ring[ring_slot(k, cap)] = v;
}

/* Invariant (5): writes every boundary up to `at` not yet written, with the
 * sizes as they are now (before the change at `at`, which comes after a
 * point at the same instant). One compare when no boundary passed. */
static void record_upto(jrn_host *h, int64_t at)
{
    if (at < h->hist_next_us) return;
    int64_t hour = floor_div(at, HOUR_US), day = floor_div(at, DAY_US);
    for (uint32_t b = 0; b < JRN_MAX_SEGMENTS; b++) {
        jh_hist *x = h->hist[b];
        if (!x) continue;
        uint32_t v = clamp32(h->seg_size[b]);
        ring_fill(x->hour, JRN_SEG_HOURS, max64(h->hist_hour + 1, x->first_hour), hour, v);
        ring_fill(x->day, JRN_SEG_DAYS, max64(h->hist_day + 1, x->first_day), day, v);
    }
    h->hist_hour = hour;
    h->hist_day = day;
    h->hist_next_us = hour < INT64_MAX / HOUR_US - 1 ? (hour + 1) * HOUR_US : INT64_MAX;
}

/* Invariant (4). at: the change's time (INT64_MIN: a snapshot being read,
 * nothing to write). */
static void set_bits(jrn_host *h, jh_seg *st, uint64_t neu, int64_t at)
{
    uint64_t old = st->bits;
    if (old == neu) return;
    record_upto(h, at);
    for (uint64_t d = old & ~neu; d; d &= d - 1) h->seg_size[__builtin_ctzll(d)]--;
    for (uint64_t d = neu & ~old; d; d &= d - 1) h->seg_size[__builtin_ctzll(d)]++;
    st->bits = neu;
}

/* An empty history for bit: its first points are the boundaries after the
 * host's clock. */
static void hist_new(jrn_host *h, uint32_t bit)
{
    if (!h->hist[bit]) h->hist[bit] = jd_xmalloc(sizeof *h->hist[bit]);
    jh_hist *x = h->hist[bit];
    memset(x, 0, sizeof *x);
    x->first_hour = floor_div(h->now, HOUR_US) + 1;
    x->first_day = floor_div(h->now, DAY_US) + 1;
}

/* Forgets every history; the clock is `now`; every segment of the registry
 * starts an empty one. */
static void hist_reset(jrn_host *h, int64_t now)
{
    for (uint32_t b = 0; b < JRN_MAX_SEGMENTS; b++) {
        free(h->hist[b]);
        h->hist[b] = NULL;
    }
    h->hist_hour = floor_div(now, HOUR_US);
    h->hist_day = floor_div(now, DAY_US);
    h->hist_next_us = h->hist_hour < INT64_MAX / HOUR_US - 1 ? (h->hist_hour + 1) * HOUR_US : INT64_MAX;
    for (uint32_t b = 0; b < jrn_reg_segments(h->reg) && b < JRN_MAX_SEGMENTS; b++) hist_new(h, b);
}

static jh_seg *seg_state(const jrn_host *h, jd_str key) { return jd_map_get(h->segs, key.p, key.n); }
static void flip_clear(jrn_host *h, jh_seg *st, uint32_t bit);

static jh_seg *seg_state_add(jrn_host *h, jd_str key)
{
    jh_seg *st = seg_state(h, key);
    if (st) return st;
    st = jd_xcalloc(1, sizeof *st + key.n + 1);
    st->key_len = key.n;
    memcpy(st->key, key.p, key.n);
    jd_map_put(h->segs, st->key, key.n, st);
    return st;
}

static void seg_state_drop_if_empty(jrn_host *h, jh_seg *st)
{
    if (st->bits || st->flips) return;
    jd_map_del(h->segs, st->key, st->key_len);
    free(st);
}

void jh__segs_forget(jrn_host *h, jd_str key)
{
    jh_seg *st = seg_state(h, key);
    if (!st) return;
    while (st->flips) flip_clear(h, st, st->flips->bit);
    set_bits(h, st, 0, h->now);
    seg_state_drop_if_empty(h, st);
}

bool jh__segs_known(const jrn_host *h, jd_str key)
{
    return key.n && seg_state(h, key) != NULL;   /* a jh_seg exists only with bits or flips */
}

bool jh__seg_member(const jrn_host *h, jd_str key, uint32_t bit)
{
    jh_seg *st = key.n ? seg_state(h, key) : NULL;
    return st && (st->bits >> bit & 1);
}

static bool eval_at(jrn_host *h, const jrn_segment *s, int64_t at)
{
    expr_activation a = { jh__resolve, h, NULL };
    bool out = false;
    jd_err e;
    jd_err_clear(&e);
    h->t.in = NULL;
    h->t.now = at;
    expr_scratch_reset(h->scratch);
    if (expr_eval_bool(s->when, &a, h->scratch, &out, &e) != JD_OK) {
        h->seg_errors++;
        out = false;
    }
    return out;
}

/* Invariant (2): the first millisecond tick (a multiple of 1 ms since the
 * epoch) after now at which s's value is not cur. Canonical: the same answer
 * whichever way it is found, so a restored host arms the same flips. */
static int64_t next_flip(jrn_host *h, const jrn_segment *s, int64_t now, bool cur, int64_t hint)
{
    const int64_t ms = JH_FLIP_PRECISION_US;
    /* The hint (the last flip's distance): people's flips usually keep their
     * distance ("3 days after the last event"), and then two checks do. */
    if (hint > 0) {
        int64_t t = (now + hint + ms - 1) / ms * ms;
        if (t - ms > now && eval_at(h, s, t) != cur && eval_at(h, s, t - ms) == cur) return t;
    }
    int64_t lo = now, hi = 0;
    for (int64_t d = JH_FLIP_FIRST_US; d <= JH_FLIP_HORIZON_US; d *= 2) {
        if (eval_at(h, s, now + d) != cur) { hi = now + d; break; }
        lo = now + d;
    }
    if (!hi) return now + JH_FLIP_HORIZON_US;   /* nothing within the horizon: look again then */
    int64_t lo_t = lo / ms, hi_t = (hi + ms - 1) / ms;   /* ticks: value at lo_t is cur, at hi_t is not */
    while (hi_t - lo_t > 1) {
        int64_t mid = lo_t + (hi_t - lo_t) / 2;
        if (eval_at(h, s, mid * ms) != cur) hi_t = mid;
        else lo_t = mid;
    }
    return hi_t * ms;
}

static jh_flip **flip_slot(jh_seg *st, uint32_t bit)
{
    jh_flip **pp = &st->flips;
    while (*pp && (*pp)->bit != bit) pp = &(*pp)->next;
    return pp;
}

static void flip_set(jrn_host *h, jh_seg *st, uint32_t bit, int64_t when, int64_t hint)
{
    jh_flip **pp = flip_slot(st, bit);
    if (!*pp) {
        *pp = jd_xcalloc(1, sizeof **pp);
        (*pp)->st = st;
        (*pp)->bit = bit;
    }
    (*pp)->hint = hint;
    tw_arm(h->wseg, &(*pp)->timer, when < 0 ? 0 : (uint64_t)when);
}

static void flip_clear(jrn_host *h, jh_seg *st, uint32_t bit)
{
    jh_flip **pp = flip_slot(st, bit), *f = *pp;
    if (!f) return;
    *pp = f->next;
    tw_cancel(h->wseg, &f->timer);
    free(f);
}

/* Invariant (6): the person's live instances see the change of segment s,
 * in the order they see an event. Collected first: an instance that ends is
 * freed (reaped) right after its call. */
static void deliver_change(jrn_host *h, jd_str key, const jrn_segment *s, bool entered, int64_t now)
{
    jh_person *p = jh__person(h, key.p, key.n);
    if (!p) return;
    char name[JRN_SEGMENT_EVENT_MAX];
    jd_str nm = { jrn_segment_event_name(name, s->id, entered), 0 };
    nm.n = (uint32_t)strlen(name);
    size_t n = 0, k = 0;
    for (uint16_t i = 0; i < p->n; i++)
        for (jh_inst *x = p->pj[i].live; x; x = x->next) n++;
    if (!n) return;
    jh_inst **v = jd_xmalloc(n * sizeof *v);
    for (uint16_t i = 0; i < p->n; i++) {
        if (jrn_reg_at(h->reg, p->pj[i].journey)->status != JRN_ACTIVE) continue;   /* paused: not seen */
        for (jh_inst *x = p->pj[i].live; x; x = x->next)
            if (jrn_version_listens(jh__version(h, x->journey, x->in.version), nm)) v[k++] = x;
    }
    for (size_t i = 0; i < k; i++) {
        jrn_on_segment(jh__version(h, v[i]->journey, v[i]->in.version)->doc, &v[i]->in, s->id, entered, now, &h->io);
        if (v[i]->in.state == JRN_ST_EXITED) jh__inst_free(h, v[i]);
    }
    free(v);
}

void jh__segs_update(jrn_host *h, jd_str key, int64_t now, uint64_t lsn)
{
    size_t n = jrn_reg_segments(h->reg);
    if (!n || !key.n) return;
    jh_seg *st = seg_state(h, key);
    uint64_t old = st ? st->bits : 0, neu = 0;
    for (uint32_t i = 0; i < n; i++) {
        const jrn_segment *s = jrn_reg_segment_at(h->reg, i);
        bool v = eval_at(h, s, now);
        if (v) neu |= UINT64_C(1) << i;
        if (s->uses_now) {
            jh_flip *old_flip = st ? *flip_slot(st, i) : NULL;
            int64_t when = next_flip(h, s, now, v, old_flip ? old_flip->hint : 0);
            if (!st) st = seg_state_add(h, key);
            flip_set(h, st, i, when, when - now);
        } else if (st) {
            flip_clear(h, st, i);   /* redefined without `now` */
        }
    }
    h->t.now = now;
    if (neu && !st) st = seg_state_add(h, key);
    if (st) set_bits(h, st, neu, now);
    uint64_t diff = old ^ neu;
    if (diff) h->t.changed = true;
    /* Invariant (6) first: instances that were live before the change; then
     * entries, so an instance entered by a change does not also see it. */
    for (uint32_t i = 0; diff && i < n; i++)
        if (diff >> i & 1) deliver_change(h, key, jrn_reg_segment_at(h->reg, i), neu >> i & 1, now);
    /* Invariant (1): the journeys on these segments, in segment then registry order. */
    for (uint32_t i = 0; diff && i < n; i++) {
        if (!(diff >> i & 1)) continue;
        const jrn_segment *s = jrn_reg_segment_at(h->reg, i);
        uint32_t js[64];
        size_t nj = jrn_reg_segment_entries(h->reg, s->id, neu >> i & 1, js, JD_ARRAY_LEN(js));
        for (size_t k = 0; k < nj; k++) {
            jd_err err;
            jh__try_enter(h, jrn_reg_at(h->reg, js[k]), key, lsn, NULL, &err);
        }
    }
    if (st) seg_state_drop_if_empty(h, st);
}

/* A flip came due: the person's turn at that time. */
static void seg_fire(tw_wheel *w, tw_entry *e, void *ctx)
{
    jrn_host *h = ctx;
    jh_flip *f = (jh_flip *)(void *)((char *)e - offsetof(jh_flip, timer));
    jh_seg *st = f->st;
    char *key = jd_xstrndup(st->key, st->key_len);   /* st may go in the update */
    jd_str k = { key, st->key_len };
    flip_clear(h, st, f->bit);
    jh__turn_begin(h, jh__person(h, key, k.n), k, NULL);
    jh__segs_update(h, k, (int64_t)tw_now(w), h->lsn);
    jh__turn_end(h);
    free(key);
}

void jh__segs_init(jrn_host *h, int64_t now)
{
    h->segs = jd_map_create(16);
    h->wseg = tw_create(now < 0 ? 0 : (uint64_t)now, seg_fire, h);
    hist_reset(h, now);
}

void jh__segs_reset_clock(jrn_host *h, int64_t now)
{
    tw_destroy(h->wseg);
    h->wseg = tw_create(now < 0 ? 0 : (uint64_t)now, seg_fire, h);
    memset(h->seg_size, 0, sizeof h->seg_size);   /* the host is empty (decode) */
    hist_reset(h, now);
}

void jh__segs_release(jrn_host *h)
{
    size_t pos = 0, kn;
    const char *k;
    void *v;
    while (jd_map_next(h->segs, &pos, &k, &kn, &v)) {
        jh_seg *st = v;
        for (jh_flip *f = st->flips, *next; f; f = next) {
            next = f->next;
            free(f);
        }
        free(st);
    }
    jd_map_destroy(h->segs);
    tw_destroy(h->wseg);
    for (uint32_t b = 0; b < JRN_MAX_SEGMENTS; b++) free(h->hist[b]);
}

typedef struct key_list { char **v; size_t n, cap; } key_list;

static void add_key(void *ctx, const char *key, size_t kn)
{
    key_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->v = jd_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = jd_xstrndup(key, kn);
}

void jrn_host_segment_changed(jrn_host *h, const jrn_segment *s, int64_t now, uint64_t lsn)
{
    jrn_host_advance(h, now, lsn);
    h->lsn = lsn;
    /* A new segment (version 1) starts an empty history, its first point the
     * next boundary; a redefinition keeps its points (sizes continue). */
    if (s->bit < JRN_MAX_SEGMENTS && (s->version == 1 || !h->hist[s->bit])) hist_new(h, s->bit);
    /* Every profile of the partition is re-evaluated now, so a new segment's
     * size is right at once. (Keys are copied first: a segment entry may add
     * people to the host while we go.) */
    key_list l = { 0 };
    prof_store_each_key(h->profiles, add_key, &l);
    for (size_t i = 0; i < l.n; i++) {
        jd_str key = { l.v[i], (uint32_t)strlen(l.v[i]) };
        jh__turn_begin(h, jh__person(h, key.p, key.n), key, NULL);
        jh__segs_update(h, key, h->now, lsn);
        jh__turn_end(h);
        free(l.v[i]);
    }
    free(l.v);
}

void jrn_host_segment_sizes(const jrn_host *h, uint64_t out[JRN_MAX_SEGMENTS])
{
    memcpy(out, h->seg_size, JRN_MAX_SEGMENTS * sizeof *out);   /* invariant (4) */
}

size_t jrn_host_segment_size(const jrn_host *h, uint32_t bit)
{
    return bit < JRN_MAX_SEGMENTS ? (size_t)h->seg_size[bit] : 0;
}

int jrn_host_segment_history(const jrn_host *h, uint32_t bit, bool daily, jrn_seg_points *out)
{
    const jh_hist *x = bit < JRN_MAX_SEGMENTS ? h->hist[bit] : NULL;
    if (!x) return JD_ENOTFOUND;
    int64_t step = daily ? DAY_US : HOUR_US;
    uint32_t cap = daily ? JRN_SEG_DAYS : JRN_SEG_HOURS;
    const uint32_t *ring = daily ? x->day : x->hour;
    int64_t written = daily ? h->hist_day : h->hist_hour, first = daily ? x->first_day : x->first_hour;
    int64_t last = max64(floor_div(h->now, step), written);
    int64_t from = max64(first, last - (int64_t)cap + 1);
    out->step_us = step;
    out->last = last;
    out->current = h->seg_size[bit];
    out->n = from <= last ? (uint32_t)(last - from + 1) : 0;
    /* Invariant (5): boundaries not written yet have the current size. */
    for (int64_t k = from; k <= last; k++)
        out->size[k - from] = k <= written ? ring[ring_slot(k, cap)] : clamp32(h->seg_size[bit]);
    return JD_OK;
}

void jrn_host_segment_members(const jrn_host *h, uint32_t bit, void (*fn)(void *ctx, jd_str key), void *ctx)
{
    size_t pos = 0, kn;
    const char *k;
    void *v;
    while (jd_map_next(h->segs, &pos, &k, &kn, &v))
        if (((jh_seg *)v)->bits >> bit & 1) fn(ctx, (jd_str){ k, (uint32_t)kn });
}

uint64_t jrn_host_segments_of(const jrn_host *h, const char *key, size_t kn)
{
    jh_seg *st = seg_state(h, (jd_str){ key, (uint32_t)kn });
    return st ? st->bits : 0;
}

/* ---- snapshot: u32 n x { str key | u64 bits | u32 nflips x { u32 bit | u64 when } } */

void jh__segs_encode(const jrn_host *h, jd_buf *b, void (*w32)(jd_buf *, uint32_t), void (*w64)(jd_buf *, uint64_t))
{
    size_t pos = 0, kn;
    const char *k;
    void *v;
    w32(b, (uint32_t)jd_map_len(h->segs));
    while (jd_map_next(h->segs, &pos, &k, &kn, &v)) {
        const jh_seg *st = v;
        uint32_t nf = 0;
        for (const jh_flip *f = st->flips; f; f = f->next) nf++;
        w32(b, st->key_len);
        jd_buf_add(b, st->key, st->key_len);
        w64(b, st->bits);
        w32(b, nf);
        for (const jh_flip *f = st->flips; f; f = f->next) {
            w32(b, f->bit);
            w64(b, f->timer.when_us);
        }
    }
}

int jh__segs_decode_one(jrn_host *h, jd_str key, uint64_t bits, const uint32_t *fbits, const uint64_t *fwhen, uint32_t nf)
{
    size_t nsegs = jrn_reg_segments(h->reg);
    if (!key.n || seg_state(h, key)) return JD_ECORRUPT;
    if (nsegs < 64 && bits >> nsegs) return JD_ECORRUPT;
    jh_seg *st = seg_state_add(h, key);
    set_bits(h, st, bits, INT64_MIN);
    for (uint32_t i = 0; i < nf; i++) {
        if (fbits[i] >= nsegs || *flip_slot(st, fbits[i])) return JD_ECORRUPT;
        flip_set(h, st, fbits[i], (int64_t)fwhen[i], 0);
    }
    return JD_OK;
}

/* ---- snapshot: size history (layout in host_codec.c) -------------------------- */

void jh__hist_encode(const jrn_host *h, jd_buf *b)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < JRN_MAX_SEGMENTS; i++) n += h->hist[i] && jrn_reg_segment_at(h->reg, i);
    jh__w_u32(b, n);
    jrn_seg_points pt;
    for (uint32_t i = 0; i < JRN_MAX_SEGMENTS; i++) {
        const jrn_segment *s = jrn_reg_segment_at(h->reg, i);
        if (!h->hist[i] || !s) continue;
        jh__w_u32(b, (uint32_t)strlen(s->id));
        jd_buf_add(b, s->id, strlen(s->id));
        jh__w_u64(b, (uint64_t)h->hist[i]->first_hour);
        jh__w_u64(b, (uint64_t)h->hist[i]->first_day);
        for (int daily = 0; daily < 2; daily++) {   /* materialized: invariant (5) */
            jrn_host_segment_history(h, i, daily, &pt);
            jh__w_u32(b, pt.n);
            for (uint32_t k = 0; k < pt.n; k++) jh__w_u32(b, pt.size[k]);
        }
    }
}

/* One ring from the bytes: n points ending at boundary `last`, the oldest
 * not before *first. The reader was checked to hold them. */
static const char *ring_read(jh_rd *r, uint32_t *ring, uint32_t cap, int64_t last, int64_t *first, uint32_t n)
{
    if (*first > last + 1) return "size history starts after the host's clock";
    uint64_t span = *first <= last ? (uint64_t)last - (uint64_t)*first + 1 : 0;   /* first is input: no overflow */
    if (n > span) return "more size points than boundaries";
    for (uint32_t k = 0; k < n; k++) {
        uint32_t v = jh__r_u32(r);
        int64_t at = last - (int64_t)n + 1 + k;
        if (at > last - (int64_t)cap) ring[ring_slot(at, cap)] = v;   /* only the newest cap are kept */
    }
    int64_t oldest = last - (int64_t)JD_MIN_OF(n, cap) + 1;
    if (oldest > *first) *first = oldest;   /* nothing older is held */
    return NULL;
}

int jh__hist_decode(jrn_host *h, jh_rd *r, bool has_section, const char **why)
{
    if (!has_section) return JD_OK;   /* an older snapshot: histories start empty (hist_reset) */
    uint32_t n = jh__r_u32(r);
    uint64_t seen = 0;
    if (r->bad) { *why = "truncated"; return JD_ECORRUPT; }
    if (n > JRN_MAX_SEGMENTS) { *why = "more size histories than segments"; return JD_ECORRUPT; }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idn = jh__r_u32(r);
        const uint8_t *idp = jh__take(r, idn);
        int64_t fh = (int64_t)jh__r_u64(r), fd = (int64_t)jh__r_u64(r);
        uint32_t nh = jh__r_u32(r);
        const uint8_t *hp = r->bad || nh > (size_t)(r->end - r->p) / 4 ? NULL : r->p;
        if (!hp) { *why = "truncated size history"; r->bad = true; return JD_ECORRUPT; }
        jh_rd hr = { hp, hp + (size_t)nh * 4, hp, false };
        r->p += (size_t)nh * 4;
        uint32_t nd = jh__r_u32(r);
        const uint8_t *dp = r->bad || nd > (size_t)(r->end - r->p) / 4 ? NULL : r->p;
        if (!dp) { *why = "truncated size history"; r->bad = true; return JD_ECORRUPT; }
        jh_rd dr = { dp, dp + (size_t)nd * 4, dp, false };
        r->p += (size_t)nd * 4;
        char id[128];
        if (!idn || idn >= sizeof id || memchr(idp, 0, idn)) { *why = "size history of a bad segment id"; return JD_ECORRUPT; }
        memcpy(id, idp, idn);
        id[idn] = 0;
        const jrn_segment *s = jrn_reg_segment_find(h->reg, id);
        if (!s || s->bit >= JRN_MAX_SEGMENTS) continue;   /* the segment is gone: so is its history */
        if (seen >> s->bit & 1) { *why = "a segment's size history appears twice"; return JD_ECORRUPT; }
        seen |= UINT64_C(1) << s->bit;
        jh_hist *x = h->hist[s->bit];   /* hist_reset made an empty one */
        x->first_hour = fh;
        x->first_day = fd;
        if ((*why = ring_read(&hr, x->hour, JRN_SEG_HOURS, h->hist_hour, &x->first_hour, nh)) ||
            (*why = ring_read(&dr, x->day, JRN_SEG_DAYS, h->hist_day, &x->first_day, nd)))
            return JD_ECORRUPT;
    }
    return JD_OK;
}
