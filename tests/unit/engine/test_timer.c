/* tests/unit/engine/test_timer.c -- the timer wheel (src/engine/timer.c):
 * exact firing times and order, cancel and re-arm, callbacks that re-arm,
 * cancel and free, jumps over decades and the overflow, tw_next_deadline,
 * tw_count, and a differential test against a sorted-array reference over
 * 200,000 random operations (including operations made by callbacks).
 * Numbers in comments such as "(2)" are timer.c's invariants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "journeyd/timer.h"

#define T0   (UINT64_C(1767225600) * JD_SEC + 123)   /* 2026-01-01T00:00:00.000123Z */
#define MS   UINT64_C(1000)
#define YEAR (365 * JD_DAY)

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}
static uint64_t rnd(uint64_t *s, uint64_t n) { return n ? splitmix64(s) % n : 0; }

/* ---- a recorder: every fire appends (id, when, tw_now at the call) ------ */

typedef struct rec {
    size_t    n, cap;
    int      *ids;
    uint64_t *whens, *nows;
} rec;

typedef struct item item;
typedef void (*on_fire_fn)(tw_wheel *w, item *it, rec *r);
struct item {
    tw_entry   e;
    int        id;
    on_fire_fn on_fire;   /* optional behaviour after recording */
    item      *other;
    uint64_t   period;
    int        left;
};

static void rec_free(rec *r)
{
    free(r->ids);
    free(r->whens);
    free(r->nows);
    memset(r, 0, sizeof *r);
}

static void fire_cb(tw_wheel *w, tw_entry *e, void *ctx)
{
    item *it = (item *)((char *)e - offsetof(item, e));
    rec *r = ctx;
    assert_false(tw_armed(e));   /* disarmed before the call */
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->ids = jd_xrealloc(r->ids, r->cap * sizeof *r->ids);
        r->whens = jd_xrealloc(r->whens, r->cap * sizeof *r->whens);
        r->nows = jd_xrealloc(r->nows, r->cap * sizeof *r->nows);
    }
    r->ids[r->n] = it->id;
    r->whens[r->n] = e->when_us;
    r->nows[r->n] = tw_now(w);
    r->n++;
    if (it->on_fire) it->on_fire(w, it, r);
}

/* Expected order: sort (when, arm index). */
typedef struct exp_row { uint64_t when; size_t arm; int id; } exp_row;

static int exp_cmp(const void *a, const void *b)
{
    const exp_row *x = a, *y = b;
    if (x->when != y->when) return x->when < y->when ? -1 : 1;
    return x->arm < y->arm ? -1 : x->arm > y->arm;
}

static void check_order(const rec *r, size_t from, exp_row *rows, size_t n)
{
    qsort(rows, n, sizeof *rows, exp_cmp);
    assert_int_equal(r->n - from, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r->ids[from + i], rows[i].id);
        assert_int_equal(r->whens[from + i], rows[i].when);
    }
}

/* ---- exact times -------------------------------------------------------- */

static void test_fires_exactly_at_when(void **state)
{
    (void)state;
    rec r = { 0 };
    tw_wheel *w = tw_create(T0, fire_cb, &r);
    /* one in the middle of a millisecond, one on a millisecond's first µs,
     * one on its last, one far enough to sit on a high level */
    static const uint64_t offs[] = { 5 * JD_SEC + 123, 7 * JD_SEC - 123 + 1000, 9 * JD_SEC + 999 - 123,
                                     3 * JD_DAY + 17 };
    item it[4] = { 0 };
    for (int i = 0; i < 4; i++) {
        it[i].id = i;
        tw_arm(w, &it[i].e, T0 + offs[i]);
        assert_int_equal(it[i].e.when_us, T0 + offs[i]);
    }
    assert_int_equal(tw_count(w), 4);
    for (int i = 0; i < 4; i++) {
        uint64_t when = T0 + offs[i];
        assert_int_equal(tw_advance(w, when - 1), 0);
        assert_true(tw_armed(&it[i].e));
        assert_int_equal(tw_now(w), when - 1);
        assert_int_equal(tw_next_deadline(w), when);
        assert_int_equal(tw_advance(w, when), 1);
        assert_false(tw_armed(&it[i].e));
        assert_int_equal(r.ids[r.n - 1], i);
        assert_int_equal(r.nows[r.n - 1], when);   /* the wheel's time is the deadline */
        assert_int_equal(tw_count(w), (size_t)(3 - i));
    }
    assert_int_equal(tw_advance(w, T0 + 10 * JD_DAY), 0);
    assert_int_equal(tw_next_deadline(w), UINT64_MAX);
    tw_destroy(w);
    rec_free(&r);
}

/* ---- order within one millisecond and ties ------------------------------ */

static void test_order_same_ms_and_ties(void **state)
{
    (void)state;
    enum { N = 3000 };
    rec r = { 0 };
    uint64_t seed = 42;
    uint64_t base = (T0 / MS + 1000) * MS;   /* a millisecond's first µs, 1 s ahead */
    tw_wheel *w = tw_create(T0, fire_cb, &r);
    item *it = jd_xcalloc(N, sizeof *it);
    exp_row *rows = jd_xcalloc(N, sizeof *rows);
    for (int i = 0; i < N; i++) {
        /* 2000 spread over one ms (many collide), 500 on one µs, 500 in the next ms */
        uint64_t when = i < 2000 ? base + rnd(&seed, 1000) : i < 2500 ? base + 500 : base + MS + rnd(&seed, 3);
        it[i].id = i;
        tw_arm(w, &it[i].e, when);
        rows[i] = (exp_row){ when, (size_t)i, i };
    }
    /* in three steps that cut the millisecond: the rest must stay due */
    size_t a = tw_advance(w, base + 499);
    assert_int_equal(a, r.n);
    tw_advance(w, base + 500);
    tw_advance(w, base + MS + 1);
    assert_int_equal(tw_next_deadline(w), base + MS + 2);
    tw_advance(w, base + 2 * MS);
    assert_true(a > 0 && a < N);
    check_order(&r, 0, rows, N);
    for (size_t i = 1; i < r.n; i++) assert_true(r.whens[i - 1] <= r.whens[i]);
    assert_int_equal(tw_count(w), 0);
    free(rows);
    free(it);
    tw_destroy(w);
    rec_free(&r);
}

/* ---- cancel, re-arm, arming in the past --------------------------------- */

static void test_cancel_before_due(void **state)
{
    (void)state;
    rec r = { 0 };
    tw_wheel *w = tw_create(T0, fire_cb, &r);
    item it[4] = { { .id = 0 }, { .id = 1 }, { .id = 2 }, { .id = 3 } };
    tw_cancel(w, &it[3].e);                   /* zeroed: a no-op */
    tw_arm(w, &it[0].e, T0 + 10 * MS);
    tw_arm(w, &it[1].e, T0 + 10 * MS);       /* same slot as 0: cancel must not clear its bit */
    tw_arm(w, &it[2].e, T0 + 20 * JD_DAY);
    tw_cancel(w, &it[0].e);
    tw_cancel(w, &it[0].e);                   /* twice: still a no-op */
    tw_cancel(w, &it[2].e);                   /* alone in its slot */
    assert_false(tw_armed(&it[0].e));
    assert_int_equal(tw_count(w), 1);
    assert_int_equal(tw_advance(w, T0 + 30 * JD_DAY), 1);
    assert_int_equal(r.ids[0], 1);
    tw_cancel(w, &it[1].e);                   /* already fired: a no-op */
    assert_int_equal(tw_count(w), 0);
    tw_destroy(w);
    rec_free(&r);
}

static void test_rearm_moves(void **state)
{
    (void)state;
    rec r = { 0 };
    tw_wheel *w = tw_create(T0, fire_cb, &r);
    item a = { .id = 0 }, b = { .id = 1 };
    tw_arm(w, &a.e, T0 + JD_SEC);
    tw_arm(w, &a.e, T0 + 2 * JD_SEC);         /* later */
    assert_int_equal(tw_count(w), 1);
    assert_int_equal(tw_next_deadline(w), T0 + 2 * JD_SEC);
    assert_int_equal(tw_advance(w, T0 + JD_SEC), 0);
    tw_arm(w, &a.e, T0 + JD_SEC + 5);         /* earlier again, within the next ms */
    assert_int_equal(tw_next_deadline(w), T0 + JD_SEC + 5);
    assert_int_equal(tw_advance(w, T0 + 2 * JD_SEC), 1);
    assert_int_equal(r.whens[0], T0 + JD_SEC + 5);
    /* a re-arm takes a new arm order: b then a at the same time */
    tw_arm(w, &a.e, T0 + 3 * JD_SEC);
    tw_arm(w, &b.e, T0 + 3 * JD_SEC);
    tw_arm(w, &a.e, T0 + 3 * JD_SEC);
    assert_int_equal(tw_advance(w, T0 + 3 * JD_SEC), 2);
    assert_int_equal(r.ids[1], 1);
    assert_int_equal(r.ids[2], 0);
    tw_destroy(w);
    rec_free(&r);
}

static void test_past_fires_next_advance(void **state)
{
    (void)state;
    rec r = { 0 };
    tw_wheel *w = tw_create(T0, fire_cb, &r);
    item it[4] = { { .id = 0 }, { .id = 1 }, { .id = 2 }, { .id = 3 } };
    tw_arm(w, &it[0].e, T0);                  /* now */
    tw_arm(w, &it[1].e, T0 - 5 * JD_SEC);
    tw_arm(w, &it[2].e, 0);                   /* the epoch */
    tw_arm(w, &it[3].e, T0 + 1);              /* same ms, not due */
    assert_int_equal(tw_next_deadline(w), 0);
    /* an earlier time is ignored, but the due entries fire */
    assert_int_equal(tw_advance(w, T0 - JD_DAY), 3);
    assert_int_equal(tw_now(w), T0);
    assert_int_equal(r.ids[0], 2);
    assert_int_equal(r.ids[1], 1);
    assert_int_equal(r.ids[2], 0);
    assert_int_equal(r.nows[0], T0);          /* time never goes back */
    assert_true(tw_armed(&it[3].e));
    assert_int_equal(tw_next_deadline(w), T0 + 1);
    assert_int_equal(tw_advance(w, T0 + 1), 1);
    tw_destroy(w);
    rec_free(&r);
}

/* ---- callbacks ---------------------------------------------------------- */

static void periodic(tw_wheel *w, item *it, rec *r)
{
    assert_int_equal(tw_now(w), it->e.when_us);
    if (--it->left > 0) tw_arm(w, &it->e, tw_now(w) + it->period);
}

static void test_periodic_rearm(void **state)
{
    (void)state;
    rec r = { 0 };
    tw_wheel *w = tw_create(T0, fire_cb, &r);
    item p = { .id = 7, .on_fire = periodic, .period = 250 * MS + 1, .left = 1000 };
    item q = { .id = 8 };
    tw_arm(w, &p.e, T0 + 1);
    tw_arm(w, &q.e, T0 + 1 + 100 * (250 * MS + 1));   /* ties with p's 101st: armed earlier */
    /* one call fires all 1000 periods, in place between the others */
    assert_int_equal(tw_advance(w, T0 + JD_DAY), 1001);
    for (int i = 0; i < 1001; i++) {
        int k = i <= 100 ? i : i - 1;
        if (i == 100) {
            assert_int_equal(r.ids[i], 8);
            continue;
        }
        assert_int_equal(r.ids[i], 7);
        assert_int_equal(r.whens[i], T0 + 1 + (uint64_t)k * (250 * MS + 1));
    }
    assert_false(tw_armed(&p.e));
    tw_destroy(w);
    rec_free(&r);
}

static void cancel_other(tw_wheel *w, item *it, rec *r) { tw_cancel(w, &it->other->e); }

static void arm_other_now(tw_wheel *w, item *it, rec *r)
{
    tw_arm(w, &it->other->e, tw_now(w) + it->period);
}

static void test_cancel_sibling_same_advance(void **state)
{
    (void)state;
    rec r = { 0 };
    tw_wheel *w = tw_create(T0, fire_cb, &r);
    item it[6] = { 0 };
    for (int i = 0; i < 6; i++) it[i].id = i;
    /* 0 cancels 1 (same µs, armed later), 2 cancels 3 (same ms, later µs),
     * 4 cancels 5 (an hour later: still on a high level) */
    it[0].on_fire = cancel_other; it[0].other = &it[1];
    it[2].on_fire = cancel_other; it[2].other = &it[3];
    it[4].on_fire = cancel_other; it[4].other = &it[5];
    tw_arm(w, &it[0].e, T0 + JD_SEC);
    tw_arm(w, &it[1].e, T0 + JD_SEC);
    tw_arm(w, &it[3].e, T0 + 2 * JD_SEC + 900);
    tw_arm(w, &it[2].e, T0 + 2 * JD_SEC + 10);
    tw_arm(w, &it[5].e, T0 + JD_HOUR + 3 * JD_SEC);
    tw_arm(w, &it[4].e, T0 + 3 * JD_SEC);
    assert_int_equal(tw_advance(w, T0 + 2 * JD_HOUR), 3);
    assert_int_equal(r.ids[0], 0);
    assert_int_equal(r.ids[1], 2);
    assert_int_equal(r.ids[2], 4);
    assert_int_equal(tw_count(w), 0);
    assert_int_equal(tw_next_deadline(w), UINT64_MAX);
    tw_destroy(w);
    rec_free(&r);
}

static void test_callback_arms_into_same_call(void **state)
{
    (void)state;
    rec r = { 0 };
    tw_wheel *w = tw_create(T0, fire_cb, &r);
    item it[5] = { 0 };
    for (int i = 0; i < 5; i++) it[i].id = i;
    /* 0 (at +10 ms) arms 3 at +15 ms: before 1 (+20 ms), in the same call;
     * 1 arms 4 at its own time: after 2, which shares it and was armed earlier */
    it[0].on_fire = arm_other_now; it[0].other = &it[3]; it[0].period = 5 * MS;
    it[1].on_fire = arm_other_now; it[1].other = &it[4]; it[1].period = 0;
    tw_arm(w, &it[0].e, T0 + 10 * MS);
    tw_arm(w, &it[1].e, T0 + 20 * MS);
    tw_arm(w, &it[2].e, T0 + 20 * MS);
    assert_int_equal(tw_advance(w, T0 + 20 * MS), 5);
    static const int order[] = { 0, 3, 1, 2, 4 };
    for (int i = 0; i < 5; i++) assert_int_equal(r.ids[i], order[i]);
    tw_destroy(w);
    rec_free(&r);
}

static void free_self(tw_wheel *w, item *it, rec *r)
{
    if (it->other) {   /* a sibling: cancel first, it is the owner's to free */
        tw_cancel(w, &it->other->e);
        free(it->other);
    }
    free(it);
}

static void test_callback_frees(void **state)
{
    (void)state;
    rec r = { 0 };
    tw_wheel *w = tw_create(T0, fire_cb, &r);
    item *a = jd_xcalloc(1, sizeof *a), *b = jd_xcalloc(1, sizeof *b), *c = jd_xcalloc(1, sizeof *c);
    a->id = 0; a->on_fire = free_self; a->other = b;   /* frees itself and b, due in the same ms */
    b->id = 1; b->on_fire = free_self;
    c->id = 2; c->on_fire = free_self;
    tw_arm(w, &a->e, T0 + JD_MIN);
    tw_arm(w, &b->e, T0 + JD_MIN + 1);
    tw_arm(w, &c->e, T0 + JD_MIN + 1);
    assert_int_equal(tw_advance(w, T0 + JD_HOUR), 2);
    assert_int_equal(r.ids[0], 0);
    assert_int_equal(r.ids[1], 2);
    assert_int_equal(tw_count(w), 0);
    tw_destroy(w);
    rec_free(&r);
}

/* ---- decades in one call, the overflow -------------------------------- */

static void test_large_jump(void **state)
{
    (void)state;
    enum { NPOW = 48 * 5, NRND = 20000, NFAR = 5, N = NPOW + NRND + NFAR };
    rec r = { 0 };
    uint64_t seed = 7;
    tw_wheel *w = tw_create(T0, fire_cb, &r);
    item *it = jd_xcalloc(N, sizeof *it);
    exp_row *rows = jd_xcalloc(N, sizeof *rows);
    size_t n = 0, due = 0;
    uint64_t horizon = T0 + 40 * YEAR;
    /* every level's slots near the cursor and their edges: 2^k ms, +-1 ms, +-1 µs */
    for (int k = 0; k < 48; k++) {
        static const int64_t d[] = { 0, -1000, 1000, -1, 1 };
        for (int j = 0; j < 5; j++) {
            uint64_t when = T0 + (UINT64_C(1) << k) * MS + (uint64_t)d[j];
            it[n].id = (int)n;
            tw_arm(w, &it[n].e, when);
            if (when <= horizon) rows[due++] = (exp_row){ when, n, (int)n };
            n++;
        }
    }
    for (int i = 0; i < NRND; i++, n++) {   /* random over 40 years, some ties */
        uint64_t when = i % 10 == 9 ? it[n - 1].e.when_us : T0 + rnd(&seed, 40 * YEAR);
        it[n].id = (int)n;
        tw_arm(w, &it[n].e, when);
        rows[due++] = (exp_row){ when, n, (int)n };
    }
    /* not yet: past the horizon, and in the overflow (the first 2^48 ms block
     * ends in the year 10889) up to the end of time */
    static const uint64_t far[NFAR - 1] = { 40 * YEAR + 1, 150 * YEAR, 9000 * YEAR, 20000 * YEAR };
    for (int i = 0; i < NFAR; i++, n++) {
        it[n].id = (int)n;
        tw_arm(w, &it[n].e, i < NFAR - 1 ? T0 + far[i] : UINT64_MAX);
    }
    assert_int_equal(tw_count(w), n);
    assert_int_equal(tw_next_deadline(w), T0);   /* 2^0 ms - 1000 µs */

    assert_int_equal(tw_advance(w, horizon), due);
    check_order(&r, 0, rows, due);
    assert_int_equal(tw_next_deadline(w), T0 + 40 * YEAR + 1);
    assert_int_equal(tw_count(w), n - due);

    size_t from = r.n, m = 0;
    for (size_t i = 0; i < n; i++)
        if (tw_armed(&it[i].e)) rows[m++] = (exp_row){ it[i].e.when_us, i, (int)i };
    assert_int_equal(m, n - due);
    assert_int_equal(tw_advance(w, UINT64_MAX), m);
    check_order(&r, from, rows, m);
    assert_int_equal(tw_count(w), 0);
    assert_int_equal(tw_now(w), UINT64_MAX);
    assert_int_equal(tw_next_deadline(w), UINT64_MAX);
    free(rows);
    free(it);
    tw_destroy(w);
    rec_free(&r);
}

static void test_overflow_block_edge(void **state)
{
    (void)state;
    /* start 3 s before the end of the first 2^48 ms block (timer.c's overflow) */
    uint64_t edge = (UINT64_C(1) << 48) * MS, start = edge - 3 * JD_SEC;
    rec r = { 0 };
    tw_wheel *w = tw_create(start, fire_cb, &r);
    item it[5] = { 0 };
    static const uint64_t at[] = { 1 * JD_SEC, 3 * JD_SEC - 1, 3 * JD_SEC, 3 * JD_SEC + 256 * MS, 9000 * YEAR };
    for (int i = 4; i >= 0; i--) {   /* armed latest first */
        it[i].id = i;
        tw_arm(w, &it[i].e, start + at[i]);
    }
    assert_int_equal(tw_next_deadline(w), start + JD_SEC);
    for (uint64_t t = start; t <= edge + JD_SEC; t += 100 * MS) tw_advance(w, t);
    assert_int_equal(r.n, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(r.ids[i], i);
    assert_int_equal(tw_next_deadline(w), start + 9000 * YEAR);
    assert_int_equal(tw_advance(w, start + 9000 * YEAR - 1), 0);
    assert_int_equal(tw_advance(w, start + 9000 * YEAR), 1);
    tw_destroy(w);
    rec_free(&r);
}

/* ---- tw_next_deadline and tw_count ------------------------------------- */

static void test_next_deadline_and_count(void **state)
{
    (void)state;
    rec r = { 0 };
    tw_wheel *w = tw_create(T0, fire_cb, &r);
    item it[5] = { 0 };
    assert_int_equal(tw_next_deadline(w), UINT64_MAX);
    assert_int_equal(tw_count(w), 0);
    tw_arm(w, &it[0].e, T0 + 3 * JD_DAY);
    assert_int_equal(tw_next_deadline(w), T0 + 3 * JD_DAY);
    tw_arm(w, &it[1].e, T0 + 2 * JD_DAY + 5);
    tw_arm(w, &it[2].e, T0 + 9000 * YEAR);      /* overflow */
    assert_int_equal(tw_next_deadline(w), T0 + 2 * JD_DAY + 5);
    assert_int_equal(tw_count(w), 3);
    tw_arm(w, &it[1].e, T0 + 2 * JD_DAY + 5);   /* re-arm: counted once */
    assert_int_equal(tw_count(w), 3);
    tw_cancel(w, &it[1].e);                     /* the minimum goes: recomputed */
    assert_int_equal(tw_next_deadline(w), T0 + 3 * JD_DAY);
    assert_int_equal(tw_count(w), 2);
    tw_arm(w, &it[3].e, T0 + 500);
    tw_arm(w, &it[4].e, T0 + 100);              /* due list, out of order */
    assert_int_equal(tw_next_deadline(w), T0 + 100);
    assert_int_equal(tw_advance(w, T0 + 100), 1);
    assert_int_equal(tw_next_deadline(w), T0 + 500);
    assert_int_equal(tw_advance(w, T0 + 4 * JD_DAY), 2);
    assert_int_equal(tw_next_deadline(w), T0 + 9000 * YEAR);  /* only the overflow */
    assert_int_equal(tw_count(w), 1);
    tw_cancel(w, &it[2].e);
    assert_int_equal(tw_next_deadline(w), UINT64_MAX);
    assert_int_equal(tw_count(w), 0);
    tw_arm(w, &it[2].e, T0 + 9000 * YEAR);      /* destroy forgets armed entries */
    tw_destroy(w);
    rec_free(&r);
}

/* ---- differential: the wheel against a sorted-array reference ------------
 * The reference is "pop the least (when, arm order) while it is <= target".
 * It runs in lockstep: every fire is checked against it at once, and
 * callbacks make random arms and cancels on both. */

enum { POOL = 600 };
typedef struct ditem { tw_entry e; int id; } ditem;
typedef struct diff {
    tw_wheel *w;
    ditem     items[POOL];
    bool      armed[POOL];
    uint64_t  when[POOL], seq[POOL];
    uint64_t  next_seq, rng, target, vnow, hash;
    size_t    count, fired, total;
} diff;

static int ref_min(const diff *d)
{
    int m = -1;
    for (int i = 0; i < POOL; i++)
        if (d->armed[i] && (m < 0 || d->when[i] < d->when[m] || (d->when[i] == d->when[m] && d->seq[i] < d->seq[m])))
            m = i;
    return m;
}

static void d_arm(diff *d, int id, uint64_t when)
{
    tw_arm(d->w, &d->items[id].e, when);
    if (!d->armed[id]) d->count++;
    d->armed[id] = true;
    d->when[id] = when;
    d->seq[id] = d->next_seq++;
}

static void d_cancel(diff *d, int id)
{
    tw_cancel(d->w, &d->items[id].e);
    if (d->armed[id]) d->count--;
    d->armed[id] = false;
}

static uint64_t gen_time(diff *d, uint64_t now)
{
    uint64_t *s = &d->rng, r = rnd(s, 100);
    if (r < 25) return now + rnd(s, 2000);
    if (r < 45) return now + rnd(s, 10 * JD_SEC);
    if (r < 58) return now + rnd(s, 30 * JD_DAY);
    if (r < 65) return now - JD_MIN_OF(now, rnd(s, 5 * JD_SEC));
    if (r < 70) return now;
    if (r < 78) {   /* a tie with some armed entry */
        int id = (int)rnd(s, POOL);
        return d->armed[id] ? d->when[id] : now;
    }
    if (r < 80) return now + rnd(s, 200 * YEAR);
    if (r < 81) return now + rnd(s, 12000 * YEAR);   /* often in the overflow */
    if (r < 90) return now + rnd(s, 64 * MS);
    return now + (UINT64_C(1) << rnd(s, 48)) * MS + rnd(s, 3) * MS - MS + rnd(s, 3) - 1;   /* slot edges */
}

static void diff_fire(tw_wheel *w, tw_entry *e, void *ctx)
{
    diff *d = ctx;
    int id = ((ditem *)((char *)e - offsetof(ditem, e)))->id;
    assert_int_equal(ref_min(d), id);
    assert_true(d->when[id] <= d->target);
    assert_int_equal(e->when_us, d->when[id]);
    assert_false(tw_armed(e));
    d->armed[id] = false;
    d->count--;
    if (d->when[id] > d->vnow) d->vnow = d->when[id];
    assert_int_equal(tw_now(w), d->vnow);
    d->fired++;
    d->hash = (d->hash ^ (uint64_t)id ^ (e->when_us << 10)) * UINT64_C(0x100000001B3);
    uint64_t r = rnd(&d->rng, 100);
    if (r < 20) d_arm(d, id, gen_time(d, tw_now(w)));
    else if (r < 30) d_arm(d, (int)rnd(&d->rng, POOL), gen_time(d, tw_now(w)));
    else if (r < 40) d_cancel(d, (int)rnd(&d->rng, POOL));
    if (r % 7 == 0) {
        int m = ref_min(d);
        assert_int_equal(tw_next_deadline(w), m < 0 ? UINT64_MAX : d->when[m]);
    }
}

static void diff_run(uint64_t seed, size_t ops, uint64_t *hash, size_t *total)
{
    diff *d = jd_xcalloc(1, sizeof *d);
    d->rng = seed;
    d->vnow = T0;
    d->w = tw_create(T0, diff_fire, d);
    for (int i = 0; i < POOL; i++) d->items[i].id = i;
    for (size_t op = 0; op < ops; op++) {
        uint64_t *s = &d->rng, r = rnd(s, 100), now = tw_now(d->w);
        int id = (int)rnd(s, POOL);
        if (r < 45) {
            d_arm(d, id, gen_time(d, now));
        } else if (r < 58) {
            d_cancel(d, id);
        } else if (r < 90) {
            uint64_t k = rnd(s, 1000), t;
            if (k < 400) t = now + rnd(s, 1500);
            else if (k < 650) t = now + rnd(s, JD_MIN);
            else if (k < 750) t = now + rnd(s, 40 * JD_DAY);
            else if (k < 820) { int m = ref_min(d); t = m < 0 ? now : d->when[m]; }
            else if (k < 880) t = now;
            else if (k < 930) t = now - JD_MIN_OF(now, rnd(s, JD_SEC));   /* ignored */
            else if (k < 997) t = now + (rnd(s, UINT64_C(1) << rnd(s, 31)) + 1) * MS;
            else t = now + rnd(s, 1000 * YEAR);   /* crosses 2^48 ms blocks */
            d->target = t > now ? t : now;
            d->fired = 0;
            size_t n = tw_advance(d->w, t);
            assert_int_equal(n, d->fired);
            d->total += n;
            assert_int_equal(tw_now(d->w), d->target);
            d->vnow = d->target;
            int m = ref_min(d);   /* nothing due is left behind */
            assert_true(m < 0 || d->when[m] > d->target);
            assert_int_equal(tw_next_deadline(d->w), m < 0 ? UINT64_MAX : d->when[m]);
        } else if (r < 95) {
            int m = ref_min(d);
            assert_int_equal(tw_next_deadline(d->w), m < 0 ? UINT64_MAX : d->when[m]);
        } else {
            assert_int_equal(tw_armed(&d->items[id].e), d->armed[id]);
        }
        assert_int_equal(tw_count(d->w), d->count);
    }
    *hash = d->hash;
    *total = d->total;
    tw_destroy(d->w);
    free(d);
}

static void test_differential_random(void **state)
{
    (void)state;
    uint64_t h1, h2;
    size_t n1, n2;
    diff_run(UINT64_C(0x5eed), 200000, &h1, &n1);
    assert_true(n1 > 50000);   /* the mix really fires */
    /* deterministic: the same calls give the same firing sequence */
    diff_run(UINT64_C(0x5eed), 200000, &h2, &n2);
    assert_int_equal(n1, n2);
    assert_int_equal(h1, h2);
}

/* (6b): the O(1) bound is never after the earliest armed deadline, whatever
 * mix of arms, re-arms of the earliest, cancels and advances came before; and
 * it is exact right after tw_next_deadline. */
static void test_next_deadline_bound(void **state)
{
    (void)state;
    rec r = { 0 };
    tw_wheel *w = tw_create(1000, fire_cb, &r);
    enum { N = 500 };
    item *it = calloc(N, sizeof *it);
    uint64_t seed = 3, now = 1000;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned k = (unsigned)(seed >> 33) % N, op = (unsigned)(seed >> 20) % 10;
        if (op < 6) tw_arm(w, &it[k].e, now + 1 + (seed >> 40) % (7 * 24 * 3600 * 1000000ull));
        else if (op < 9) tw_cancel(w, &it[k].e);
        else tw_advance(w, now += (seed >> 44) % 3600000000ull);
        uint64_t min = UINT64_MAX;
        for (int i = 0; i < N; i++)
            if (tw_armed(&it[i].e) && it[i].e.when_us < min) min = it[i].e.when_us;
        assert_true(tw_next_deadline_bound(w) <= min);
        if (step % 97 == 0) {
            assert_int_equal(tw_next_deadline(w), min);
            assert_int_equal(tw_next_deadline_bound(w), min);
        }
    }
    tw_destroy(w);
    free(it);
    rec_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fires_exactly_at_when),
        cmocka_unit_test(test_order_same_ms_and_ties),
        cmocka_unit_test(test_cancel_before_due),
        cmocka_unit_test(test_rearm_moves),
        cmocka_unit_test(test_past_fires_next_advance),
        cmocka_unit_test(test_periodic_rearm),
        cmocka_unit_test(test_cancel_sibling_same_advance),
        cmocka_unit_test(test_callback_arms_into_same_call),
        cmocka_unit_test(test_callback_frees),
        cmocka_unit_test(test_large_jump),
        cmocka_unit_test(test_overflow_block_edge),
        cmocka_unit_test(test_next_deadline_and_count),
        cmocka_unit_test(test_differential_random),
        cmocka_unit_test(test_next_deadline_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
