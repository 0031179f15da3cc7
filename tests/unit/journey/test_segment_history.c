/* tests/unit/journey/test_segment_history.c -- a segment's size over time in
 * one partition (src/journey/host_segments.c, invariants (4) and (5);
 * include/journeyd/runtime.h, jrn_host_segment_history): the size at hour and
 * day boundaries, kept in bounded rings, through a snapshot and back. The
 * host is driven as a shard drives it (journey/world.h), on a virtual
 * clock: every time is an int64 the test passes in. No sleeps.
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
#include "journeyd/journey.h"
#include "journeyd/profile.h"
#include "journeyd/runtime.h"

#define T0 ts("2026-03-02T22:30:00Z")   /* 90 minutes before a day boundary */
#include "journey/world.h"

/* A segment `id` whose members are the profiles `when` is true for. */
static void define(world *w, const char *id, const char *when, int64_t at)
{
    char text[256];
    snprintf(text, sizeof text, "id: %s\nwhen: %s\n", id, when);
    assert_int_equal(control(w, JRN_OP_SEGMENT, id, text, at), JD_OK);
}

static void pro(world *w, const char *key, int64_t at) { identify(w, key, "{\"plan\":\"pro\"}", at); }
static void free_(world *w, const char *key, int64_t at) { identify(w, key, "{\"plan\":\"free\"}", at); }

#define PRO_WHEN "has(profile.traits.plan) && profile.traits.plan == 'pro'"

static jrn_seg_points points(const world *w, const char *id, bool daily)
{
    const jrn_segment *s = jrn_reg_segment_find(w->reg, id);
    assert_non_null(s);
    jrn_seg_points p;
    memset(&p, 0, sizeof p);
    assert_int_equal(jrn_host_segment_history(w->h, s->bit, daily, &p), JD_OK);
    return p;
}

/* The points as "HH:MM=size ..." (hour) or "MM-DD=size ..." (day), oldest
 * first: one string to compare, readable when it differs. */
static const char *show(const jrn_seg_points *p, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (uint32_t i = 0; i < p->n && n < cap; i++) {
        char t[JD_TIME_TEXT];
        jd_time_format((p->last - (int64_t)p->n + 1 + i) * p->step_us, t);
        n += (size_t)snprintf(buf + n, cap - n, "%s%.*s=%u", i ? " " : "", 5, p->step_us == HOUR ? t + 11 : t + 5,
                              p->size[i]);
    }
    return buf;
}

static void assert_points(const world *w, const char *id, bool daily, const char *want)
{
    char buf[4096];
    jrn_seg_points p = points(w, id, daily);
    assert_string_equal(show(&p, buf, sizeof buf), want);
}

/* Invariant (4): the kept counts equal a pass over the members. */
static void count_member(void *ctx, jd_str key) { (void)key; ++*(size_t *)ctx; }
static void assert_counts(const world *w)
{
    for (uint32_t b = 0; b < jrn_reg_segments(w->reg); b++) {
        size_t n = 0;
        jrn_host_segment_members(w->h, b, count_member, &n);
        assert_int_equal(jrn_host_segment_size(w->h, b), n);
    }
}

/* ---- tests --------------------------------------------------------------------- */

/* A point is the size just before the clock reached the boundary: a record
 * at the boundary itself comes after it; hours without records get the size
 * unchanged; nothing before the segment's definition. */
static void test_points_at_boundaries(void **state)
{
    (void)state;
    world w;
    world_init(&w, T0);
    define(&w, "pro", PRO_WHEN, T0);                      /* 22:30: points from 23:00 */
    assert_points(&w, "pro", false, "");
    pro(&w, "a", T0 + 10 * MIN);                          /* 22:40 a in */
    pro(&w, "b", T0 + 40 * MIN);                          /* 23:10 b in: 23:00 had a */
    assert_points(&w, "pro", false, "23:00=1");
    free_(&w, "a", ts("2026-03-02T23:59:59.999Z"));       /* a out */
    pro(&w, "c", ts("2026-03-03T00:00:00Z"));             /* c in AT the boundary: after the point */
    assert_points(&w, "pro", false, "23:00=1 00:00=1");
    assert_points(&w, "pro", true, "03-03=1");
    assert_int_equal(jrn_host_segment_size(w.h, 0), 2);
    advance(&w, ts("2026-03-03T03:30:00Z"));              /* three hours, no records */
    assert_points(&w, "pro", false, "23:00=1 00:00=1 01:00=2 02:00=2 03:00=2");
    jrn_seg_points p = points(&w, "pro", false);
    assert_int_equal(p.current, 2);
    assert_int_equal(p.last * HOUR, ts("2026-03-03T03:00:00Z"));
    /* a record that changes nothing writes nothing; the next change writes
     * every boundary since with the size before it */
    pro(&w, "c", ts("2026-03-03T04:10:00Z"));
    free_(&w, "b", ts("2026-03-03T06:00:00Z"));
    free_(&w, "c", ts("2026-03-03T06:20:00Z"));
    assert_points(&w, "pro", false, "23:00=1 00:00=1 01:00=2 02:00=2 03:00=2 04:00=2 05:00=2 06:00=2");
    advance(&w, ts("2026-03-05T00:00:00Z"));
    assert_points(&w, "pro", true, "03-03=1 03-04=0 03-05=0");
    assert_counts(&w);
    world_release(&w);
}

/* Gaps longer than a ring: the ring keeps the newest JRN_SEG_HOURS hourly
 * and JRN_SEG_DAYS daily points, oldest first, and a gap is filled. */
static void test_ring_bound(void **state)
{
    (void)state;
    world w;
    int64_t t = ts("2026-01-01T00:30:00Z");
    world_init(&w, t);
    define(&w, "pro", PRO_WHEN, t);
    pro(&w, "a", t + MIN);
    advance(&w, t + 200 * HOUR);                  /* 200 boundaries: 01:00 .. +200 h */
    jrn_seg_points p = points(&w, "pro", false);
    assert_int_equal(p.n, JRN_SEG_HOURS);
    assert_int_equal(p.last * HOUR, ts("2026-01-09T08:00:00Z"));
    for (uint32_t i = 0; i < p.n; i++) assert_int_equal(p.size[i], 1);
    pro(&w, "b", t + 200 * HOUR + MIN);           /* now 2 */
    advance(&w, t + 250 * HOUR);                  /* 50 more boundaries */
    p = points(&w, "pro", false);
    assert_int_equal(p.n, JRN_SEG_HOURS);
    for (uint32_t i = 0; i < p.n; i++) assert_int_equal(p.size[i], i < JRN_SEG_HOURS - 50 ? 1 : 2);
    free_(&w, "a", t + 250 * HOUR + MIN);         /* written: 50 twos, then ones again */
    pro(&w, "a", t + 260 * HOUR + MIN);           /* 10 ones */
    p = points(&w, "pro", false);
    for (uint32_t i = 0; i < p.n; i++)
        assert_int_equal(p.size[i], i < JRN_SEG_HOURS - 60 ? 1 : i < JRN_SEG_HOURS - 10 ? 2 : 1);
    /* days: more than JRN_SEG_DAYS of them */
    advance(&w, t + 120 * DAY);
    p = points(&w, "pro", true);
    assert_int_equal(p.n, JRN_SEG_DAYS);
    assert_int_equal(p.last * DAY, ts("2026-05-01T00:00:00Z"));
    for (uint32_t i = 0; i < p.n; i++) assert_int_equal(p.size[i], 2);
    p = points(&w, "pro", false);
    assert_int_equal(p.n, JRN_SEG_HOURS);
    assert_int_equal(p.last * HOUR, ts("2026-05-01T00:00:00Z"));
    world_release(&w);
}

/* A segment defined later has no points before its definition; a
 * redefinition keeps its points and sizes continue; leaving by deletion
 * counts. */
static void test_define_later_and_redefine(void **state)
{
    (void)state;
    world w;
    world_init(&w, T0);
    define(&w, "pro", PRO_WHEN, T0);
    pro(&w, "a", T0 + MIN);
    pro(&w, "b", T0 + 2 * MIN);
    define(&w, "any", "has(profile.traits.plan)", ts("2026-03-03T01:15:00Z"));   /* 23:00, 00:00, 01:00 passed */
    advance(&w, ts("2026-03-03T03:00:00Z"));
    assert_points(&w, "pro", false, "23:00=2 00:00=2 01:00=2 02:00=2 03:00=2");
    assert_points(&w, "any", false, "02:00=2 03:00=2");   /* everyone was evaluated at its definition */
    assert_points(&w, "any", true, "");
    /* a redefinition: the same id, a new condition; the history goes on */
    define(&w, "pro", "has(profile.traits.plan) && profile.traits.plan == 'gold'", ts("2026-03-03T03:30:00Z"));
    pro(&w, "c", ts("2026-03-03T03:40:00Z"));
    identify(&w, "c", "{\"plan\":\"gold\"}", ts("2026-03-03T04:40:00Z"));
    jrn_host_forget(w.h, "a", 1, ts("2026-03-03T05:10:00Z"), ++w.lsn);   /* a deleted: "any" goes down */
    advance(&w, ts("2026-03-03T06:00:00Z"));
    assert_points(&w, "pro", false, "23:00=2 00:00=2 01:00=2 02:00=2 03:00=2 04:00=0 05:00=1 06:00=1");
    assert_points(&w, "any", false, "02:00=2 03:00=2 04:00=3 05:00=3 06:00=2");
    assert_counts(&w);
    world_release(&w);
}

/* Through a snapshot: the same points, and the same points afterwards for
 * the same future, as a host that never stopped. */
static void test_snapshot_round_trip(void **state)
{
    (void)state;
    world w, w2;
    world_init(&w, T0);
    define(&w, "pro", PRO_WHEN, T0);
    pro(&w, "a", T0 + MIN);
    define(&w, "any", "has(profile.traits.plan)", T0 + 2 * HOUR);
    pro(&w, "b", T0 + 3 * HOUR);
    advance(&w, T0 + 5 * HOUR + 10 * MIN);   /* boundaries pending (not written yet) */
    restore(&w, &w2);
    char b1[4096], b2[4096];
    for (int daily = 0; daily < 2; daily++)
        for (const char *id = "pro"; id; id = strcmp(id, "pro") == 0 ? "any" : NULL) {
            jrn_seg_points p1 = points(&w, id, daily), p2 = points(&w2, id, daily);
            assert_string_equal(show(&p1, b1, sizeof b1), show(&p2, b2, sizeof b2));
            assert_int_equal(p1.last, p2.last);
            assert_int_equal(p1.current, p2.current);
        }
    assert_int_equal(jrn_host_segment_size(w2.h, 0), 2);
    /* the same future on both */
    world *ws[2] = { &w, &w2 };
    for (int i = 0; i < 2; i++) {
        free_(ws[i], "a", T0 + 6 * HOUR);
        pro(ws[i], "c", T0 + 30 * HOUR);
        advance(ws[i], T0 + 3 * DAY);
    }
    for (int daily = 0; daily < 2; daily++) {
        jrn_seg_points p1 = points(&w, "pro", daily), p2 = points(&w2, "pro", daily);
        assert_string_equal(show(&p1, b1, sizeof b1), show(&p2, b2, sizeof b2));
    }
    assert_points(&w2, "pro", true, "03-03=1 03-04=1 03-05=2");
    world_release(&w2);
    world_release(&w);
}

/* The host's bytes with the history section cut off and the format set back
 * to 3 (the format before histories): what an older journeyd wrote. */
static size_t hist_section_bytes(const world *w)
{
    size_t n = 4;
    for (uint32_t b = 0; b < jrn_reg_segments(w->reg); b++) {
        jrn_seg_points ph, pd;
        assert_int_equal(jrn_host_segment_history(w->h, b, false, &ph), JD_OK);
        assert_int_equal(jrn_host_segment_history(w->h, b, true, &pd), JD_OK);
        n += 4 + strlen(jrn_reg_segment_at(w->reg, b)->id) + 16 + 4 + 4 * (size_t)ph.n + 4 + 4 * (size_t)pd.n;
    }
    return n;
}

static void test_old_format_decodes_empty(void **state)
{
    (void)state;
    world w, w2;
    world_init(&w, T0);
    define(&w, "pro", PRO_WHEN, T0);
    pro(&w, "a", T0 + MIN);
    advance(&w, T0 + 4 * HOUR);
    jd_buf rb, pb, hb;
    encode_all(&w, &rb, &pb, &hb);
    size_t cut = hist_section_bytes(&w);
    assert_true(cut < hb.len);
    uint8_t *old = malloc(hb.len);
    memcpy(old, hb.data, hb.len);
    old[4] = 3;   /* u32 format after "JRNH" */
    assert_int_equal(decode_all(&w2, &rb, &pb, old, hb.len - cut, w.lsn), JD_OK);
    assert_int_equal(jrn_host_segment_size(w2.h, 0), 1);      /* memberships are kept */
    assert_points(&w2, "pro", false, "");                    /* the history starts empty ... */
    advance(&w2, T0 + 6 * HOUR);
    assert_points(&w2, "pro", false, "03:00=1 04:00=1");     /* ... at the next boundary */
    world_release(&w2);
    /* format 3 bytes that still carry a section are trailing bytes */
    assert_int_equal(decode_all(&w2, &rb, &pb, old, hb.len, w.lsn), JD_ECORRUPT);
    world_release(&w2);
    free(old);
    jd_buf_release(&rb);
    jd_buf_release(&pb);
    jd_buf_release(&hb);
    world_release(&w);
}

/* Disk is input: every cut of the history section, and lengths that the
 * bytes cannot hold, are refused. */
static void test_corrupt_history_refused(void **state)
{
    (void)state;
    world w, w2;
    world_init(&w, T0);
    define(&w, "pro", PRO_WHEN, T0);
    pro(&w, "a", T0 + MIN);
    advance(&w, T0 + 30 * HOUR);
    jd_buf rb, pb, hb;
    encode_all(&w, &rb, &pb, &hb);
    size_t sect = hist_section_bytes(&w), start = hb.len - sect;
    for (size_t n = start; n < hb.len; n++) {
        assert_int_equal(decode_all(&w2, &rb, &pb, hb.data, n, w.lsn), JD_ECORRUPT);
        world_release(&w2);
    }
    uint8_t *bad = malloc(hb.len);
    /* nhist beyond JRN_MAX_SEGMENTS */
    memcpy(bad, hb.data, hb.len);
    bad[start + 3] = 0x7f;
    assert_int_equal(decode_all(&w2, &rb, &pb, bad, hb.len, w.lsn), JD_ECORRUPT);
    world_release(&w2);
    /* the hourly count: u32 after nhist, id (4 + 3), first_hour, first_day */
    size_t nh_at = start + 4 + 4 + 3 + 16;
    memcpy(bad, hb.data, hb.len);
    bad[nh_at + 3] = 0xff;   /* ~4 billion points */
    assert_int_equal(decode_all(&w2, &rb, &pb, bad, hb.len, w.lsn), JD_ECORRUPT);
    world_release(&w2);
    /* first_hour after the host's clock */
    memcpy(bad, hb.data, hb.len);
    bad[start + 4 + 4 + 3 + 6] = 0x10;
    assert_int_equal(decode_all(&w2, &rb, &pb, bad, hb.len, w.lsn), JD_ECORRUPT);
    world_release(&w2);
    /* the whole thing decodes */
    assert_int_equal(decode_all(&w2, &rb, &pb, hb.data, hb.len, w.lsn), JD_OK);
    world_release(&w2);
    free(bad);
    jd_buf_release(&rb);
    jd_buf_release(&pb);
    jd_buf_release(&hb);
    world_release(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_points_at_boundaries),
        cmocka_unit_test(test_ring_bound),
        cmocka_unit_test(test_define_later_and_redefine),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_old_format_decodes_empty),
        cmocka_unit_test(test_corrupt_history_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
