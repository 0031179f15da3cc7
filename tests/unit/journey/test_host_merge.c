/* tests/unit/journey/test_host_merge.c -- moving a person's journey state
 * between partitions (jrn_host_extract, jrn_host_merge_in in
 * include/journeyd/runtime.h; src/journey/host_merge.c). Two worlds, A and B,
 * each a registry + prof_store + host as a shard has them (journey/world.h),
 * get the same control records (registries are the same function of the
 * log); person L on A is merged into person S on B, on a virtual clock.
 * Numbers in comments, like "merge (2)", are the invariants at the top of
 * host_merge.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "journeyd/base.h"
#include "journeyd/ingest.h"
#include "journeyd/journey.h"
#include "journeyd/profile.h"
#include "journeyd/runtime.h"

#include "journey/world.h"

/* The same control record on both worlds, as two shards apply it. */
static void control2(world *a, world *b, jrn_op op, const char *id, const char *text, int64_t at)
{
    assert_int_equal(control(a, op, id, text, at), JD_OK);
    assert_int_equal(control(b, op, id, text, at), JD_OK);
}

/* The host's whole state as bytes: equal bytes, equal state. */
static void host_bytes(const world *w, jd_buf *b)
{
    jd_buf_init(b, 1u << 24);
    assert_int_equal(jrn_host_encode(w->h, b), JD_OK);
}

/* Merge L (on a) into S (on b) at `at`, as the engine does: extract on a,
 * b's clock to the merge record's time, merge_in there. */
static void merge(world *a, const char *l, world *b, const char *s, int64_t at)
{
    jd_buf blob;
    jd_buf_init(&blob, 1u << 20);
    assert_int_equal(jrn_host_extract(a->h, l, strlen(l), &blob), JD_OK);
    assert_true(blob.len > 0);
    advance(b, at);
    jd_err err;
    jd_err_clear(&err);
    int rc = jrn_host_merge_in(b->h, s, strlen(s), blob.data, blob.len, ++b->lsn, &err);
    if (rc != JD_OK) fprintf(stderr, "merge_in: %s at %s\n", err.msg, err.where);
    assert_int_equal(rc, JD_OK);
    jd_buf_release(&blob);
}

/* ---- documents ------------------------------------------------------------------ */

static char *doc_wait(char *buf, size_t cap, const char *id, const char *wait, const char *extra)
{
    snprintf(buf, cap,
             "id: %s\n"
             "entry: { event: Go }\n"
             "%s"
             "nodes:\n"
             "  w:\n"
             "    wait: %s\n"
             "    next: s\n"
             "  s:\n"
             "    send: { channel: email, template: t }\n",
             id, extra ? extra : "reentry: always\n", wait);
    return buf;
}

/* ---- tests ------------------------------------------------------------------------ */

/* A waiting person moves from A to B: the wait fires on B at its deadline,
 * once, under the survivor's key, with the intent id A would have made
 * (merge (3)); A fires nothing and counts no exit (merge (1)). */
static void test_wait_moves_to_other_host(void **state)
{
    (void)state;
    char d[512];
    world a, b, c;
    world_init(&a, T0);
    world_init(&b, T0);
    world_init(&c, T0);   /* A without the merge: the intent id it would make */
    control2(&a, &b, JRN_OP_PUBLISH, "w", doc_wait(d, sizeof d, "w", "1d", NULL), T0);
    assert_int_equal(control(&c, JRN_OP_PUBLISH, "w", d, T0), JD_OK);
    track(&a, "L", "Go", NULL, T0 + MIN);
    track(&c, "L", "Go", NULL, T0 + MIN);
    c.lsn = a.lsn;
    track(&b, "S", "Other", NULL, T0);   /* S is known on B, not in the journey */
    advance(&a, T0 + HOUR);
    assert_int_equal(jrn_host_timers(a.h), 1);

    merge(&a, "L", &b, "S", T0 + HOUR);
    assert_int_equal(jrn_host_instances(a.h), 0);
    assert_int_equal(jrn_host_timers(a.h), 0);
    assert_null(person(&a, "L"));
    jrn_vstats sa = stats_or_zero(&a, "w", 1), sb = stats_or_zero(&b, "w", 1);
    assert_int_equal(sa.entered, 1);
    assert_int_equal(sa.active, 0);
    for (int k = 0; k < JRN_END_COUNT_; k++) assert_int_equal(sa.exits[k], 0);
    assert_int_equal(a.nexits, 0);
    assert_int_equal(sb.entered, 0);   /* entered where the entry happened */
    assert_int_equal(sb.active, 1);
    assert_int_equal(jrn_host_instances(b.h), 1);
    assert_int_equal(jrn_host_timers(b.h), 1);
    assert_int_equal(jrn_host_next_due(b.h), (uint64_t)(T0 + MIN + DAY));
    json_object *p = person(&b, "S");
    assert_int_equal(json_object_array_length(p), 1);
    assert_string_equal(field(json_object_array_get_idx(p, 0), "state"), "waiting");
    json_object_put(p);

    advance(&b, T0 + MIN + DAY - 1);
    assert_int_equal(b.nintents, 0);   /* not earlier */
    advance(&b, T0 + MIN + DAY);
    advance(&c, T0 + MIN + DAY);
    assert_int_equal(b.nintents, 1);
    assert_intent(&b, 0, "S", "s", T0 + MIN + DAY);
    assert_int_equal(c.nintents, 1);
    assert_int_equal(b.intents[0].id, c.intents[0].id);
    advance(&a, T0 + 3 * DAY);
    advance(&b, T0 + 3 * DAY);
    assert_int_equal(a.nintents, 0);
    assert_int_equal(b.nintents, 1);   /* not twice */
    sb = stats_or_zero(&b, "w", 1);
    assert_int_equal(sb.active, 0);
    assert_int_equal(sb.exits[JRN_END_FINISHED], 1);
    assert_int_equal(jrn_host_instances(b.h), 0);
    world_release(&a);
    world_release(&b);
    world_release(&c);
}

/* A deadline that passed before the merge (B's clock is ahead) fires at B's
 * next advance, once, and nothing asserts. */
static void test_past_deadline_fires_at_next_advance(void **state)
{
    (void)state;
    char d[512];
    world a, b;
    world_init(&a, T0);
    world_init(&b, T0);
    control2(&a, &b, JRN_OP_PUBLISH, "w", doc_wait(d, sizeof d, "w", "1h", NULL), T0);
    track(&a, "L", "Go", NULL, T0);
    merge(&a, "L", &b, "S", T0 + 2 * HOUR);   /* due at T0+1h; A never got there */
    assert_int_equal(b.nintents, 0);
    assert_true(jrn_host_next_due(b.h) <= (uint64_t)(T0 + 2 * HOUR));   /* the engine writes a clock record */
    advance(&b, T0 + 2 * HOUR + 1);
    assert_int_equal(b.nintents, 1);
    assert_string_equal(b.intents[0].key, "S");
    assert_true(b.intents[0].at >= T0 + HOUR && b.intents[0].at <= T0 + 2 * HOUR + 1);
    advance(&b, T0 + DAY);
    assert_int_equal(b.nintents, 1);
    assert_int_equal(jrn_host_timers(b.h), 0);
    world_release(&a);
    world_release(&b);
}

/* merge (2): both in the same journey: the side that entered first goes on,
 * the other ends "merged", counted on B and reported. Both directions. */
static void test_both_in_journey_first_entered_wins(void **state)
{
    (void)state;
    char d[512];
    assert_string_equal(jrn_end_name(JRN_END_MERGED), "merged");
    for (int survivor_first = 0; survivor_first < 2; survivor_first++) {
        world a, b;
        world_init(&a, T0);
        world_init(&b, T0);
        control2(&a, &b, JRN_OP_PUBLISH, "w", doc_wait(d, sizeof d, "w", "1d", NULL), T0);
        int64_t tl = survivor_first ? T0 + HOUR : T0, ts_ = survivor_first ? T0 : T0 + HOUR;
        track(&a, "L", "Go", NULL, tl);
        track(&b, "S", "Go", NULL, ts_);
        advance(&a, T0 + 2 * HOUR);
        json_object *pl = person(&a, "L"), *ps = person(&b, "S");
        char first[17];   /* the instance id of the side that entered first */
        snprintf(first, sizeof first, "%s",
                 field(json_object_array_get_idx(survivor_first ? ps : pl, 0), "instance"));
        json_object_put(pl);
        json_object_put(ps);
        merge(&a, "L", &b, "S", T0 + 2 * HOUR);
        ps = person(&b, "S");
        assert_int_equal(json_object_array_length(ps), 1);
        assert_string_equal(field(json_object_array_get_idx(ps, 0), "instance"), first);
        json_object_put(ps);
        assert_int_equal(jrn_host_instances(b.h), 1);
        assert_int_equal(jrn_host_timers(b.h), 1);
        assert_int_equal(b.nexits, 1);
        assert_int_equal(b.exits[0].why, JRN_END_MERGED);
        assert_string_equal(b.exits[0].key, "S");
        assert_string_equal(b.exits[0].journey, "w");
        assert_int_equal(b.exits[0].at, T0 + 2 * HOUR);
        jrn_vstats sb = stats_or_zero(&b, "w", 1);
        assert_int_equal(sb.exits[JRN_END_MERGED], 1);
        assert_int_equal(sb.entered, 1);
        assert_int_equal(sb.active, 1);
        assert_int_equal(a.nexits, 0);
        /* the survivor's wait is the one that went on */
        advance(&b, T0 + 3 * DAY);
        assert_int_equal(b.nintents, 1);
        assert_intent(&b, 0, "S", "s", (survivor_first ? ts_ : tl) + DAY);
        world_release(&a);
        world_release(&b);
    }
}

/* The loser only in journey X, the survivor only in Y: both go on. */
static void test_disjoint_journeys_both_continue(void **state)
{
    (void)state;
    char dx[512], dy[512];
    world a, b;
    world_init(&a, T0);
    world_init(&b, T0);
    control2(&a, &b, JRN_OP_PUBLISH, "x", doc_wait(dx, sizeof dx, "x", "1d", NULL), T0);
    snprintf(dy, sizeof dy, "id: y\nentry: { event: Hi }\nnodes:\n  w: { wait: 2d, next: s }\n"
                            "  s: { send: { channel: email, template: y } }\n");
    control2(&a, &b, JRN_OP_PUBLISH, "y", dy, T0);
    track(&a, "L", "Go", NULL, T0);
    track(&b, "S", "Hi", NULL, T0 + MIN);
    merge(&a, "L", &b, "S", T0 + HOUR);
    assert_int_equal(jrn_host_instances(b.h), 2);
    assert_int_equal(jrn_host_timers(b.h), 2);
    assert_int_equal(b.nexits, 0);
    assert_int_equal(stats_or_zero(&b, "x", 1).active, 1);
    assert_int_equal(stats_or_zero(&b, "y", 1).active, 1);
    advance(&b, T0 + 5 * DAY);
    assert_int_equal(b.nintents, 2);
    assert_intent(&b, 0, "S", "s", T0 + DAY);
    assert_string_equal(b.intents[0].journey, "x");
    assert_intent(&b, 1, "S", "s", T0 + MIN + 2 * DAY);
    assert_string_equal(b.intents[1].journey, "y");
    for (int k = 0; k < JRN_END_COUNT_; k++)
        if (k != JRN_END_FINISHED)
            assert_int_equal(stats_or_zero(&b, "x", 1).exits[k] + stats_or_zero(&b, "y", 1).exits[k], 0);
    world_release(&a);
    world_release(&b);
}

/* History moves: a person who went through a `reentry: never` journey as L
 * cannot go through it again as S; a cool-down counts from L's entry. */
static void test_reentry_history_carries_over(void **state)
{
    (void)state;
    static const char once[] = "id: once\nentry: { event: Go }\nnodes:\n  s: { send: { channel: email, template: t } }\n";
    static const char cool[] =
        "id: cool\nentry: { event: Go }\nreentry: cooldown\ncooldown: 1d\nnodes:\n  s: { send: { channel: email, template: c } }\n";
    world a, b;
    world_init(&a, T0);
    world_init(&b, T0);
    control2(&a, &b, JRN_OP_PUBLISH, "once", once, T0);
    control2(&a, &b, JRN_OP_PUBLISH, "cool", cool, T0);
    track(&a, "L", "Go", NULL, T0);
    assert_int_equal(a.nintents, 2);
    assert_int_equal(jrn_host_instances(a.h), 0);   /* history only */
    merge(&a, "L", &b, "S", T0 + HOUR);
    assert_null(person(&a, "L"));
    json_object *p = person(&b, "S");
    assert_non_null(p);
    assert_int_equal(json_object_array_length(p), 2);
    assert_string_equal(field(json_object_array_get_idx(p, 0), "state"), "exited");
    assert_string_equal(field(json_object_array_get_idx(p, 0), "last_end"), "finished");
    json_object_put(p);
    track(&b, "S", "Go", NULL, T0 + 2 * HOUR);
    assert_int_equal(b.nintents, 0);   /* neither: once is once, the cool-down runs from T0 */
    track(&b, "S", "Go", NULL, T0 + DAY);
    assert_int_equal(b.nintents, 1);
    assert_string_equal(b.intents[0].journey, "cool");
    assert_int_equal(stats_or_zero(&b, "once", 1).entered, 0);
    world_release(&a);
    world_release(&b);
}

/* Paused journey: a held wait stays held on B and runs at B's resume. */
static void test_held_wait_stays_held(void **state)
{
    (void)state;
    char d[512];
    world a, b;
    world_init(&a, T0);
    world_init(&b, T0);
    control2(&a, &b, JRN_OP_PUBLISH, "p", doc_wait(d, sizeof d, "p", "1h", NULL), T0);
    track(&a, "L", "Go", NULL, T0);
    control2(&a, &b, JRN_OP_PAUSE, "p", NULL, T0 + 10 * MIN);
    advance(&a, T0 + 2 * HOUR);   /* came due: held */
    assert_int_equal(jrn_host_timers(a.h), 0);
    merge(&a, "L", &b, "S", T0 + 2 * HOUR);
    json_object *p = person(&b, "S");
    assert_string_equal(field(json_object_array_get_idx(p, 0), "state"), "held");
    json_object_put(p);
    assert_int_equal(jrn_host_timers(b.h), 0);
    advance(&b, T0 + 3 * HOUR);
    assert_int_equal(b.nintents, 0);
    assert_int_equal(control(&b, JRN_OP_RESUME, "p", NULL, T0 + 4 * HOUR), JD_OK);
    assert_int_equal(b.nintents, 1);
    assert_intent(&b, 0, "S", "s", T0 + 4 * HOUR);
    assert_int_equal(jrn_host_instances(b.h), 0);
    assert_int_equal(control(&a, JRN_OP_RESUME, "p", NULL, T0 + 4 * HOUR), JD_OK);
    assert_int_equal(a.nintents, 0);
    world_release(&a);
    world_release(&b);
}

/* Segments: L's memberships leave A's sizes without running segment_exit;
 * S on B is not a member until its own next turn says so. */
static void test_segments_dropped_without_exit(void **state)
{
    (void)state;
    static const char seg[] = "id: pro\nwhen: has(profile.traits.plan) && profile.traits.plan == 'pro'\n";
    static const char winback[] =
        "id: winback\nentry: { segment_exit: pro }\nnodes:\n  m: { send: { channel: email, template: miss_you } }\n";
    world a, b;
    world_init(&a, T0);
    world_init(&b, T0);
    control2(&a, &b, JRN_OP_SEGMENT, "pro", seg, T0);
    control2(&a, &b, JRN_OP_PUBLISH, "winback", winback, T0);
    identify(&a, "L", "{\"plan\":\"pro\"}", T0);
    identify(&a, "K", "{\"plan\":\"pro\"}", T0);
    assert_int_equal(jrn_host_segment_size(a.h, 0), 2);
    merge(&a, "L", &b, "S", T0 + MIN);   /* L is known to A's host by segments alone */
    assert_int_equal(jrn_host_segment_size(a.h, 0), 1);
    assert_int_equal(jrn_host_segments_of(a.h, "L", 1), 0);
    assert_int_equal(a.nintents, 0);     /* no winback */
    assert_int_equal(jrn_host_instances(a.h), 0);
    assert_int_equal(jrn_host_segment_size(b.h, 0), 0);
    assert_int_equal(b.nintents, 0);
    jd_buf blob;
    jd_buf_init(&blob, 1024);
    assert_int_equal(jrn_host_extract(a.h, "L", 1, &blob), JD_ENOTFOUND);   /* gone entirely */
    jd_buf_release(&blob);
    world_release(&a);
    world_release(&b);
}

static void test_extract_unknown_key(void **state)
{
    (void)state;
    char d[512];
    world a;
    world_init(&a, T0);
    assert_int_equal(control(&a, JRN_OP_PUBLISH, "w", doc_wait(d, sizeof d, "w", "1d", NULL), T0), JD_OK);
    track(&a, "K", "Go", NULL, T0);
    jd_buf out;
    jd_buf_init(&out, 1024);
    assert_int_equal(jd_buf_adds(&out, "xyz"), JD_OK);
    assert_int_equal(jrn_host_extract(a.h, "nobody", 6, &out), JD_ENOTFOUND);
    assert_int_equal(jrn_host_extract(a.h, "", 0, &out), JD_ENOTFOUND);
    assert_int_equal(out.len, 3);
    assert_string_equal(out.data, "xyz");
    /* a ceiling too small: nothing written, nothing removed */
    jd_buf small;
    jd_buf_init(&small, 8);
    assert_int_equal(jrn_host_extract(a.h, "K", 1, &small), JD_ELIMIT);
    assert_int_equal(small.len, 0);
    assert_int_equal(jrn_host_instances(a.h), 1);
    jd_buf_release(&small);
    /* an empty blob is nothing */
    jd_err err;
    jd_err_clear(&err);
    assert_int_equal(jrn_host_merge_in(a.h, "K", 1, "", 0, ++a.lsn, &err), JD_OK);
    assert_int_equal(jrn_host_instances(a.h), 1);
    jd_buf_release(&out);
    world_release(&a);
}

/* A version that reads journey.entry (its entry event moves with the instance). */
static const char doc_entry[] =
    "id: big\n"
    "entry: { event: Cart Updated }\n"
    "reentry: always\n"
    "nodes:\n"
    "  later: { wait: 1d, next: how_big }\n"
    "  how_big:\n"
    "    branch:\n"
    "      - { when: \"journey.entry.properties.total >= 100.0\", next: discount }\n"
    "      - { else: plain }\n"
    "  discount: { send: { channel: email, template: discount } }\n"
    "  plain: { send: { channel: email, template: reminder } }\n";

/* merge (4): every truncation, a flipped magic, a bad node, trailing bytes:
 * JD_ECORRUPT at "merge+<offset>" and B's state byte for byte as before. */
static void test_corrupt_blob_changes_nothing(void **state)
{
    (void)state;
    char d[512];
    world a, b;
    world_init(&a, T0);
    world_init(&b, T0);
    control2(&a, &b, JRN_OP_PUBLISH, "w", doc_wait(d, sizeof d, "w", "1d", NULL), T0);
    control2(&a, &b, JRN_OP_PUBLISH, "big", doc_entry, T0);
    track(&a, "L", "Go", NULL, T0);
    track(&a, "L", "Cart Updated", "{\"total\":250.0}", T0 + MIN);
    track(&b, "S", "Cart Updated", "{\"total\":5.0}", T0 + 2 * MIN);
    advance(&b, T0 + HOUR);
    jd_buf blob;
    jd_buf_init(&blob, 1u << 20);
    assert_int_equal(jrn_host_extract(a.h, "L", 1, &blob), JD_OK);
    jd_buf before, after;
    host_bytes(&b, &before);
    jd_err err;
    char *bytes = jd_xmalloc(blob.len + 1);
    for (size_t n = 1; n < blob.len; n++) {
        memcpy(bytes, blob.data, n);
        jd_err_clear(&err);
        assert_int_equal(jrn_host_merge_in(b.h, "S", 1, bytes, n, ++b.lsn, &err), JD_ECORRUPT);
        assert_int_equal(strncmp(err.where, "merge+", 6), 0);
    }
    memcpy(bytes, blob.data, blob.len);
    bytes[blob.len] = 0;
    assert_int_equal(jrn_host_merge_in(b.h, "S", 1, bytes, blob.len + 1, ++b.lsn, &err), JD_ECORRUPT);
    assert_non_null(strstr(err.msg, "trailing"));
    bytes[0] = 'X';
    assert_int_equal(jrn_host_merge_in(b.h, "S", 1, bytes, blob.len, ++b.lsn, &err), JD_ECORRUPT);
    assert_string_equal(err.where, "merge+4");
    /* the second instance's node index (u32 after id, 3 times, paused_rule,
     * version): the blob's last instance is big's, its node at a fixed offset
     * from the end: entry str, when, split, flags, end, state, variant, steps, node */
    memcpy(bytes, blob.data, blob.len);
    size_t entry_len = strlen("{\"type\":\"track\",\"userId\":\"L\",\"event\":\"Cart Updated\",\"properties\":{\"total\":250.0}}");
    size_t node_at = blob.len - (4 + entry_len) - 8 - 2 - 3 - 2 - 4 - 4;
    uint32_t node;
    memcpy(&node, bytes + node_at, 4);
    assert_int_equal(node, 0);   /* `later`: the layout is as described */
    bytes[node_at] = 77;
    assert_int_equal(jrn_host_merge_in(b.h, "S", 1, bytes, blob.len, ++b.lsn, &err), JD_ECORRUPT);
    assert_non_null(strstr(err.msg, "impossible node"));
    host_bytes(&b, &after);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.data, after.data, before.len);
    assert_int_equal(b.nexits, 0);

    /* and the whole blob works: L's kept entry event decides at the branch */
    assert_int_equal(jrn_host_merge_in(b.h, "S", 1, blob.data, blob.len, ++b.lsn, &err), JD_OK);
    assert_int_equal(b.nexits, 1);   /* big: L entered first, S's own instance ended merged */
    assert_int_equal(b.exits[0].why, JRN_END_MERGED);
    assert_int_equal(jrn_host_instances(b.h), 2);
    advance(&b, T0 + 3 * DAY);
    assert_int_equal(b.nintents, 2);
    assert_string_equal(b.intents[0].node, "s");
    assert_string_equal(b.intents[1].node, "discount");
    assert_string_equal(b.intents[1].key, "S");
    assert_int_equal(stats_or_zero(&b, "big", 1).condition_errors, 0);
    free(bytes);
    jd_buf_release(&before);
    jd_buf_release(&after);
    jd_buf_release(&blob);
    world_release(&a);
    world_release(&b);
}

/* A == B: two keys of one host merge; ids stay unique, counters exact. */
static void test_merge_on_same_host(void **state)
{
    (void)state;
    char d[512], e[512];
    world a;
    world_init(&a, T0);
    assert_int_equal(control(&a, JRN_OP_PUBLISH, "w", doc_wait(d, sizeof d, "w", "1d", NULL), T0), JD_OK);
    assert_int_equal(control(&a, JRN_OP_PUBLISH, "v", doc_wait(e, sizeof e, "v", "2d", NULL), T0), JD_OK);
    track(&a, "L", "Go", NULL, T0);            /* L in w and v */
    track(&a, "S", "Go", NULL, T0 + HOUR);     /* S too, later */
    assert_int_equal(jrn_host_instances(a.h), 4);
    merge(&a, "L", &a, "S", T0 + 2 * HOUR);
    assert_null(person(&a, "L"));
    assert_int_equal(jrn_host_instances(a.h), 2);
    assert_int_equal(jrn_host_timers(a.h), 2);
    assert_int_equal(a.nexits, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(a.exits[i].why, JRN_END_MERGED);
        assert_string_equal(a.exits[i].key, "S");
    }
    jrn_vstats sw = stats_or_zero(&a, "w", 1);
    assert_int_equal(sw.entered, 2);
    assert_int_equal(sw.active, 1);
    assert_int_equal(sw.exits[JRN_END_MERGED], 1);
    advance(&a, T0 + 5 * DAY);
    assert_int_equal(a.nintents, 2);   /* L's waits (entered first), under S */
    assert_intent(&a, 0, "S", "s", T0 + DAY);
    assert_intent(&a, 1, "S", "s", T0 + 2 * DAY);
    assert_true(a.intents[0].id != a.intents[1].id);
    assert_int_equal(stats_or_zero(&a, "w", 1).active, 0);
    assert_int_equal(stats_or_zero(&a, "v", 1).active, 0);
    world_release(&a);
}

/* An instance of a version B's registry does not have is dropped and counted;
 * the rest of the blob is adopted. */
static void test_unknown_version_dropped(void **state)
{
    (void)state;
    char d1[512], d2[512], x[512];
    world a, b;
    world_init(&a, T0);
    world_init(&b, T0);
    control2(&a, &b, JRN_OP_PUBLISH, "w", doc_wait(d1, sizeof d1, "w", "1d", NULL), T0);
    control2(&a, &b, JRN_OP_PUBLISH, "x", doc_wait(x, sizeof x, "x", "1d", NULL), T0);
    assert_int_equal(control(&a, JRN_OP_PUBLISH, "w", doc_wait(d2, sizeof d2, "w", "2d", NULL), T0), JD_OK);
    track(&a, "L", "Go", NULL, T0);   /* w version 2 (A only) and x */
    merge(&a, "L", &b, "S", T0 + HOUR);
    assert_int_equal(jrn_host_merge_errors(b.h), 1);
    assert_int_equal(jrn_host_instances(b.h), 1);
    assert_int_equal(stats_or_zero(&b, "x", 1).active, 1);
    assert_int_equal(stats_or_zero(&b, "w", 1).active, 0);
    world_release(&a);
    world_release(&b);
}

/* B after a merge still round-trips through its snapshot, and the restored
 * host makes the same intents with the same ids. */
static void test_snapshot_after_merge(void **state)
{
    (void)state;
    char d[512];
    world a, b, b2;
    world_init(&a, T0);
    world_init(&b, T0);
    control2(&a, &b, JRN_OP_PUBLISH, "w", doc_wait(d, sizeof d, "w", "1d", NULL), T0);
    control2(&a, &b, JRN_OP_PUBLISH, "big", doc_entry, T0);
    track(&a, "L", "Go", NULL, T0);
    track(&a, "L", "Cart Updated", "{\"total\":250.0}", T0);
    track(&b, "S", "Go", NULL, T0 + MIN);
    merge(&a, "L", &b, "S", T0 + HOUR);
    restore(&b, &b2);
    assert_int_equal(jrn_host_instances(b2.h), jrn_host_instances(b.h));
    assert_int_equal(jrn_host_timers(b2.h), jrn_host_timers(b.h));
    jrn_vstats s1 = stats_or_zero(&b, "w", 1), s2 = stats_or_zero(&b2, "w", 1);
    assert_int_equal(s1.exits[JRN_END_MERGED], 1);
    assert_memory_equal(s1.exits, s2.exits, sizeof s1.exits);
    assert_int_equal(s1.active, s2.active);
    json_object *p1 = person(&b, "S"), *p2 = person(&b2, "S");
    assert_string_equal(json_object_to_json_string(p1), json_object_to_json_string(p2));
    json_object_put(p1);
    json_object_put(p2);
    advance(&b, T0 + 3 * DAY);
    advance(&b2, T0 + 3 * DAY);
    assert_int_equal(b.nintents, 2);
    assert_int_equal(b2.nintents, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(b.intents[i].id, b2.intents[i].id);
        assert_string_equal(b.intents[i].node, b2.intents[i].node);
    }
    world_release(&a);
    world_release(&b);
    world_release(&b2);
}

/* A snapshot written before JRN_END_MERGED (format 2: 8 exit counters, no
 * count) still decodes. Made from a format 3 one by dropping the count and the
 * last counter of each version. */
static void test_snapshot_format_2_still_decodes(void **state)
{
    (void)state;
    char d[512];
    world a, a2;
    world_init(&a, T0);
    assert_int_equal(control(&a, JRN_OP_PUBLISH, "w", doc_wait(d, sizeof d, "w", "1h", NULL), T0), JD_OK);
    track(&a, "K", "Go", NULL, T0);
    track(&a, "J", "Go", NULL, T0);
    advance(&a, T0 + 2 * HOUR);
    track(&a, "K", "Go", NULL, T0 + 3 * HOUR);
    jd_buf hb, old;
    host_bytes(&a, &hb);
    jd_buf_init(&old, 1u << 24);
    const uint8_t *p = (const uint8_t *)hb.data;
    size_t at = 0;
#define RD32(o) ((uint32_t)p[o] | (uint32_t)p[(o) + 1] << 8 | (uint32_t)p[(o) + 2] << 16 | (uint32_t)p[(o) + 3] << 24)
    assert_int_equal(RD32(4), 4);   /* format 4 ends with size histories: u32 0 here (no segments) */
    jd_buf_add(&old, p, 4);
    jd_buf_add(&old, "\x02\0\0\0", 4);
    jd_buf_add(&old, p + 8, 12);   /* now, nstats */
    uint32_t nstats = RD32(16);
    assert_int_equal(nstats, 1);
    at = 20;
    uint32_t idn = RD32(at);
    size_t head = 4 + idn + 4 + 8 + 8;   /* id, version, entered, active */
    jd_buf_add(&old, p + at, head);
    at += head;
    assert_int_equal(p[at], JRN_END_COUNT_);
    at += 1;
    jd_buf_add(&old, p + at, 8 * 8);     /* exits 0..7 */
    for (int k = 8; k < JRN_END_COUNT_; k++) assert_int_equal(RD32(at + 8 * (size_t)k), 0);
    at += 8 * (size_t)JRN_END_COUNT_;
    assert_int_equal(RD32(hb.len - 4), 0);
    jd_buf_add(&old, p + at, hb.len - at - 4);
#undef RD32
    restore(&a, &a2);   /* a registry and profiles to decode into */
    jrn_host *h = jrn_host_create(a2.reg, a2.profiles, 0, NULL);
    jd_err err;
    jd_err_clear(&err);
    assert_int_equal(jrn_host_decode(h, old.data, old.len, &err), JD_OK);
    const jrn_vstats *st = jrn_host_stats(h, jrn_reg_find(a2.reg, "w")->index, 1);
    assert_non_null(st);
    assert_int_equal(st->entered, 3);
    assert_int_equal(st->active, 1);
    assert_int_equal(st->exits[JRN_END_FINISHED], 2);
    assert_int_equal(st->exits[JRN_END_MERGED], 0);
    assert_int_equal(jrn_host_instances(h), 1);
    assert_int_equal(jrn_host_timers(h), 1);
    /* a format 3 snapshot with too many counters is corrupt, not an overrun */
    hb.data[20 + 4 + idn + 4 + 8 + 8] = (char)(JRN_END_COUNT_ + 1);
    jrn_host *h2 = jrn_host_create(a2.reg, a2.profiles, 0, NULL);
    assert_int_equal(jrn_host_decode(h2, hb.data, hb.len, &err), JD_ECORRUPT);
    jrn_host_destroy(h2);
    jrn_host_destroy(h);
    jd_buf_release(&hb);
    jd_buf_release(&old);
    world_release(&a);
    world_release(&a2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_moves_to_other_host),
        cmocka_unit_test(test_past_deadline_fires_at_next_advance),
        cmocka_unit_test(test_both_in_journey_first_entered_wins),
        cmocka_unit_test(test_disjoint_journeys_both_continue),
        cmocka_unit_test(test_reentry_history_carries_over),
        cmocka_unit_test(test_held_wait_stays_held),
        cmocka_unit_test(test_segments_dropped_without_exit),
        cmocka_unit_test(test_extract_unknown_key),
        cmocka_unit_test(test_corrupt_blob_changes_nothing),
        cmocka_unit_test(test_merge_on_same_host),
        cmocka_unit_test(test_unknown_version_dropped),
        cmocka_unit_test(test_snapshot_after_merge),
        cmocka_unit_test(test_snapshot_format_2_still_decodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
