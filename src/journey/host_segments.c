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
    uint64_t  bits;
    jh_flip  *flips;
    uint32_t  key_len;
    char      key[];
};

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
    st->bits = 0;
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
    if (st) st->bits = neu;
    uint64_t diff = old ^ neu;
    if (diff) h->t.changed = true;
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
}

void jh__segs_reset_clock(jrn_host *h, int64_t now)
{
    tw_destroy(h->wseg);
    h->wseg = tw_create(now < 0 ? 0 : (uint64_t)now, seg_fire, h);
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
    (void)s;
}

void jrn_host_segment_sizes(const jrn_host *h, uint64_t out[JRN_MAX_SEGMENTS])
{
    size_t pos = 0, kn;
    const char *k;
    void *v;
    memset(out, 0, JRN_MAX_SEGMENTS * sizeof *out);
    while (jd_map_next(h->segs, &pos, &k, &kn, &v))
        for (uint64_t bits = ((jh_seg *)v)->bits; bits; bits &= bits - 1) out[__builtin_ctzll(bits)]++;
}

size_t jrn_host_segment_size(const jrn_host *h, uint32_t bit)
{
    uint64_t sizes[JRN_MAX_SEGMENTS];
    jrn_host_segment_sizes(h, sizes);
    return bit < JRN_MAX_SEGMENTS ? sizes[bit] : 0;
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
    st->bits = bits;
    for (uint32_t i = 0; i < nf; i++) {
        if (fbits[i] >= nsegs || *flip_slot(st, fbits[i])) return JD_ECORRUPT;
        flip_set(h, st, fbits[i], (int64_t)fwhen[i], 0);
    }
    return JD_OK;
}
