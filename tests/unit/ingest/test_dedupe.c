/* tests/unit/ingest/test_dedupe.c -- the messageId window (src/ingest/dedupe.c).
 *
 * Behaviour first (duplicates, expiry, eviction, undo, snapshots, time going
 * backwards), then a long random run against a plain model with heavy hash
 * collisions, which is what exercises the index's backward-shift deletion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "journeyd/base.h"
#include "journeyd/ingest.h"

#define T0 INT64_C(1767225600000000)

static uint64_t key(const char *id) { return ingest_dedupe_key((jd_str){ id, (uint32_t)strlen(id) }); }

static void test_key(void **state)
{
    (void)state;
    assert_int_equal(key("m-1"), key("m-1"));
    assert_int_not_equal(key("m-1"), key("m-2"));
    assert_int_equal(key("m-1"), jd_hash64("m-1", 3));
    assert_int_not_equal(ingest_dedupe_key((jd_str){ NULL, 0 }), 0);
}

static void test_duplicate_within_window(void **state)
{
    (void)state;
    ingest_dedupe *d = ingest_dedupe_create(60 * JD_SEC, 100);
    assert_false(ingest_dedupe_seen(d, key("a"), T0));
    assert_true(ingest_dedupe_seen(d, key("a"), T0 + 1));
    assert_true(ingest_dedupe_seen(d, key("a"), T0 + 60 * (int64_t)JD_SEC));   /* the edge is inside */
    assert_false(ingest_dedupe_seen(d, key("b"), T0 + 2));
    assert_int_equal(ingest_dedupe_count(d), 2);
    assert_int_equal(ingest_dedupe_evicted_early(d), 0);
    ingest_dedupe_destroy(d);
}

static void test_expiry(void **state)
{
    (void)state;
    ingest_dedupe *d = ingest_dedupe_create(60 * JD_SEC, 100);
    assert_false(ingest_dedupe_seen(d, key("a"), T0));
    assert_false(ingest_dedupe_seen(d, key("b"), T0 + 30 * (int64_t)JD_SEC));
    /* a minute and a microsecond later, "a" is forgotten, "b" is not */
    int64_t later = T0 + 60 * (int64_t)JD_SEC + 1;
    assert_false(ingest_dedupe_seen(d, key("a"), later));
    assert_true(ingest_dedupe_seen(d, key("b"), later));
    assert_int_equal(ingest_dedupe_count(d), 2);   /* the new "a" and "b" */
    /* far later, everything has gone */
    assert_false(ingest_dedupe_seen(d, key("c"), T0 + 10 * (int64_t)JD_MIN));
    assert_int_equal(ingest_dedupe_count(d), 1);
    assert_int_equal(ingest_dedupe_evicted_early(d), 0);
    ingest_dedupe_destroy(d);
}

static void test_eviction_when_full(void **state)
{
    (void)state;
    ingest_dedupe *d = ingest_dedupe_create(JD_DAY, 3);
    char id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "m-%d", i);
        assert_false(ingest_dedupe_seen(d, key(id), T0 + i));
    }
    assert_int_equal(ingest_dedupe_count(d), 3);
    assert_int_equal(ingest_dedupe_evicted_early(d), 2);
    /* the two oldest went first: m-0 and m-1 are new again (evicting m-2, m-3) */
    assert_true(ingest_dedupe_seen(d, key("m-4"), T0 + 10));
    assert_false(ingest_dedupe_seen(d, key("m-0"), T0 + 10));
    assert_int_equal(ingest_dedupe_evicted_early(d), 3);
    assert_true(ingest_dedupe_seen(d, key("m-3"), T0 + 10));
    assert_false(ingest_dedupe_seen(d, key("m-2"), T0 + 10));
    assert_int_equal(ingest_dedupe_evicted_early(d), 4);
    ingest_dedupe_destroy(d);
}

static void test_undo(void **state)
{
    (void)state;
    ingest_dedupe *d = ingest_dedupe_create(JD_DAY, 10);
    assert_false(ingest_dedupe_seen(d, key("kept"), T0));
    /* a group of three whose commit failed */
    assert_false(ingest_dedupe_seen(d, key("g1"), T0 + 1));
    assert_false(ingest_dedupe_seen(d, key("g2"), T0 + 2));
    assert_true(ingest_dedupe_seen(d, key("g1"), T0 + 3));   /* a duplicate records nothing */
    assert_false(ingest_dedupe_seen(d, key("g3"), T0 + 4));
    ingest_dedupe_undo(d, 3);
    assert_int_equal(ingest_dedupe_count(d), 1);
    /* the retry of the same group is not a duplicate */
    assert_false(ingest_dedupe_seen(d, key("g1"), T0 + 5));
    assert_false(ingest_dedupe_seen(d, key("g2"), T0 + 6));
    assert_true(ingest_dedupe_seen(d, key("kept"), T0 + 7));
    ingest_dedupe_undo(d, 100);   /* more than there are */
    assert_int_equal(ingest_dedupe_count(d), 0);
    assert_false(ingest_dedupe_seen(d, key("kept"), T0 + 8));
    ingest_dedupe_destroy(d);

    /* undo counts recorded keys, not the dead slot a stale entry leaves */
    d = ingest_dedupe_create(JD_SEC, 10);
    assert_false(ingest_dedupe_seen(d, key("a"), T0 + 10 * (int64_t)JD_SEC));
    assert_false(ingest_dedupe_seen(d, key("x"), T0));   /* recorded, already stale */
    assert_false(ingest_dedupe_seen(d, key("x"), T0));   /* kills it, records again */
    assert_int_equal(ingest_dedupe_count(d), 2);
    ingest_dedupe_undo(d, 2);
    assert_int_equal(ingest_dedupe_count(d), 0);
    assert_false(ingest_dedupe_seen(d, key("a"), T0 + 10 * (int64_t)JD_SEC));
    ingest_dedupe_destroy(d);
}

static void test_non_monotonic_now(void **state)
{
    (void)state;
    int64_t w = 60 * (int64_t)JD_SEC;
    ingest_dedupe *d = ingest_dedupe_create((uint64_t)w, 100);
    assert_false(ingest_dedupe_seen(d, key("late"), T0 + 10 * w));   /* clock jumps ahead */
    assert_false(ingest_dedupe_seen(d, key("old"), T0));              /* then back */
    /* the window ends at the newest now seen, not at this call's: "old" at T0
     * is already out of it, so it is new again even a microsecond later */
    assert_false(ingest_dedupe_seen(d, key("old"), T0 + 1));
    /* time going back does not expire anything newer */
    assert_true(ingest_dedupe_seen(d, key("late"), T0 + 1));
    /* "old" was recorded at T0, already older than max_now - window: it sits
     * behind a live head, yet must not count as seen */
    assert_false(ingest_dedupe_seen(d, key("old"), T0 + 10 * w));
    assert_true(ingest_dedupe_seen(d, key("old"), T0 + 10 * w + 1));
    /* expiry uses the largest now seen so far */
    assert_false(ingest_dedupe_seen(d, key("x"), T0 + 10 * w + 2));
    assert_false(ingest_dedupe_seen(d, key("late"), T0 + 11 * w + 1));
    assert_true(ingest_dedupe_seen(d, key("x"), T0 + 11 * w + 1));
    ingest_dedupe_destroy(d);
}

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    ingest_dedupe *d = ingest_dedupe_create(JD_HOUR, 100);
    char id[16];
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "m-%d", i);
        assert_false(ingest_dedupe_seen(d, key(id), T0 + i));
    }
    ingest_dedupe_undo(d, 5);   /* m-15..m-19 gone */
    jd_buf b;
    jd_buf_init(&b, 1 << 20);
    assert_int_equal(ingest_dedupe_encode(d, &b), JD_OK);
    assert_int_equal(b.len, 9 + 15 * 16);
    assert_int_equal((unsigned char)b.data[0], 1);

    ingest_dedupe *r = ingest_dedupe_create(JD_HOUR, 100);
    assert_false(ingest_dedupe_seen(r, key("stale"), T0));   /* replaced by the snapshot */
    jd_err err;
    assert_int_equal(ingest_dedupe_decode(r, b.data, b.len, &err), JD_OK);
    assert_int_equal(ingest_dedupe_count(r), 15);
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "m-%d", i);
        assert_int_equal(ingest_dedupe_seen(r, key(id), T0 + 100), i < 15);
    }
    assert_false(ingest_dedupe_seen(r, key("stale"), T0 + 100));
    /* the times came back too: an hour after m-0 it expires, m-14 does not yet */
    assert_false(ingest_dedupe_seen(r, key("m-0"), T0 + (int64_t)JD_HOUR + 1));
    assert_true(ingest_dedupe_seen(r, key("m-14"), T0 + (int64_t)JD_HOUR + 1));

    /* a smaller dedupe keeps the newest entries */
    ingest_dedupe *small = ingest_dedupe_create(JD_HOUR, 4);
    assert_int_equal(ingest_dedupe_decode(small, b.data, b.len, &err), JD_OK);
    assert_int_equal(ingest_dedupe_count(small), 4);
    assert_true(ingest_dedupe_seen(small, key("m-14"), T0 + 100));
    assert_true(ingest_dedupe_seen(small, key("m-11"), T0 + 100));
    assert_false(ingest_dedupe_seen(small, key("m-10"), T0 + 100));

    jd_buf_release(&b);
    ingest_dedupe_destroy(small);
    ingest_dedupe_destroy(r);
    ingest_dedupe_destroy(d);
}

static void test_snapshot_corrupt(void **state)
{
    (void)state;
    ingest_dedupe *d = ingest_dedupe_create(JD_HOUR, 10);
    assert_false(ingest_dedupe_seen(d, key("a"), T0));
    assert_false(ingest_dedupe_seen(d, key("b"), T0));
    jd_buf b;
    jd_buf_init(&b, 1 << 20);
    assert_int_equal(ingest_dedupe_encode(d, &b), JD_OK);
    ingest_dedupe *r = ingest_dedupe_create(JD_HOUR, 10);
    assert_false(ingest_dedupe_seen(r, key("z"), T0));
    jd_err err;
    for (size_t n = 0; n < b.len; n++) {
        char *p = malloc(n ? n : 1);
        memcpy(p, b.data, n);
        assert_int_equal(ingest_dedupe_decode(r, p, n, &err), JD_ECORRUPT);
        free(p);
    }
    jd_buf_add(&b, "", 1);
    assert_int_equal(ingest_dedupe_decode(r, b.data, b.len, &err), JD_ECORRUPT);
    b.len--;
    b.data[0] = 9;
    assert_int_equal(ingest_dedupe_decode(r, b.data, b.len, &err), JD_ECORRUPT);
    assert_string_equal(err.msg, "dedupe snapshot version 9 is not supported (want 1)");
    b.data[0] = 1;
    memset(b.data + 1, 0xff, 8);   /* a count whose byte size overflows */
    assert_int_equal(ingest_dedupe_decode(r, b.data, b.len, &err), JD_ECORRUPT);
    b.data[1] = 2;
    memset(b.data + 2, 0, 7);
    memset(b.data + 9, 0, 8);      /* first key 0 */
    assert_int_equal(ingest_dedupe_decode(r, b.data, b.len, &err), JD_ECORRUPT);
    assert_string_equal(err.msg, "dedupe snapshot entry 0 has key 0");
    assert_int_equal(ingest_dedupe_count(r), 1);   /* refused snapshots change nothing */
    assert_true(ingest_dedupe_seen(r, key("z"), T0));
    jd_buf_release(&b);

    jd_buf_init(&b, 10);   /* the ceiling: header fits, entries do not */
    assert_int_equal(ingest_dedupe_encode(d, &b), JD_ELIMIT);
    assert_int_equal(b.len, 0);
    jd_buf_release(&b);
    ingest_dedupe_destroy(r);
    ingest_dedupe_destroy(d);
}

/* ---- random run against a model ------------------------------------------
 * The model keeps the same ring (insertion order, dead marks, head expiry,
 * eviction) but finds keys by linear search, so any disagreement is the hash
 * index. Keys are small integers: with a 16-cell index they collide a lot. */

typedef struct model {
    uint64_t key[8];
    int64_t  t[8];
    size_t   head, used, cap;
    int64_t  max_now;
    bool     any;
} model;

static bool model_seen(model *m, int64_t window, uint64_t k, int64_t now)
{
    if (!m->any || now > m->max_now) m->max_now = now;
    m->any = true;
    int64_t limit = m->max_now - window;
    while (m->used && (m->key[m->head] == 0 || m->t[m->head] < limit)) {
        m->head = (m->head + 1) % m->cap;
        m->used--;
    }
    for (size_t i = 0; i < m->used; i++) {
        size_t s = (m->head + i) % m->cap;
        if (m->key[s] != k) continue;
        if (m->t[s] >= limit) return true;
        m->key[s] = 0;
    }
    if (m->used == m->cap) {
        m->head = (m->head + 1) % m->cap;
        m->used--;
    }
    size_t s = (m->head + m->used++) % m->cap;
    m->key[s] = k;
    m->t[s] = now;
    return false;
}

static void model_undo(model *m, size_t n)
{
    while (n && m->used) {
        size_t s = (m->head + m->used - 1) % m->cap;
        if (m->key[s]) n--;
        m->used--;
    }
}

static size_t model_count(const model *m)
{
    size_t c = 0;
    for (size_t i = 0; i < m->used; i++) c += m->key[(m->head + i) % m->cap] != 0;
    return c;
}

static void test_random_against_model(void **state)
{
    (void)state;
    const int64_t window = 50;
    ingest_dedupe *d = ingest_dedupe_create((uint64_t)window, 8);
    model m = { .cap = 8 };
    uint64_t rng = 0x9e3779b97f4a7c15u;
    int64_t now = 1000;
    for (int step = 0; step < 200000; step++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        unsigned r = (unsigned)(rng >> 32);
        if (r % 50 == 0) {
            size_t n = r / 50 % 4;
            ingest_dedupe_undo(d, n);
            model_undo(&m, n);
        } else {
            now += (int64_t)(r % 7) - 2;   /* mostly forward, sometimes back, */
            if (r % 97 == 0) now -= 3 * window;   /* now and then past the window */
            uint64_t k = 1 + (r >> 8) % 24;
            bool want = model_seen(&m, window, k, now);
            assert_int_equal(ingest_dedupe_seen(d, k, now), want);
        }
        assert_int_equal(ingest_dedupe_count(d), model_count(&m));
    }
    ingest_dedupe_destroy(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_duplicate_within_window),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_eviction_when_full),
        cmocka_unit_test(test_undo),
        cmocka_unit_test(test_non_monotonic_now),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_snapshot_corrupt),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
