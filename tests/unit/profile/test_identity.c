/* tests/unit/profile/test_identity.c -- the identity directory: where an
 * event lands, which profiles merge, what the limits refuse, declared
 * identifiers, forgetting, and that replaying recorded
 * decisions rebuilds the same directory. Invariant numbers refer to
 * src/profile/identity.c. */
#include "journeyd/identity.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static jd_str S(const char *s) { return (jd_str){ s, (uint32_t)strlen(s) }; }
static char *const declared[] = { "email", "phone" };
enum { EMAIL = IDN_DECLARED, PHONE };

static idn_dir *mk(uint32_t users, uint32_t anons)
{
    idn_opts o = { .max_user_ids = users, .max_anonymous_ids = anons, .max_per_identifier = 1,
                   .ndeclared = 2, .declared = declared };
    return idn_create(&o);
}

/* An event's identifiers in priority order: userId, email, anonymousId. */
static void ev(idn_dir *d, const char *user, const char *email, const char *anon, idn_plan *p)
{
    idn_id ids[4];
    size_t n = 0;
    if (user) ids[n++] = (idn_id){ IDN_USER, S(user) };
    if (email) ids[n++] = (idn_id){ EMAIL, S(email) };
    if (anon) ids[n++] = (idn_id){ IDN_ANON, S(anon) };
    idn_resolve(d, ids, n, p);
}

static void assert_key(const idn_dir *d, const char *id, const char *want)
{
    jd_str k = idn_lookup(d, id, strlen(id), NULL);
    char got[300];
    snprintf(got, sizeof got, "%.*s", (int)k.n, k.p);
    assert_string_equal(got, want);
}

static bool same(jd_str a, const char *b) { return jd_str_eq(a, b, strlen(b)); }

static void test_alone_needs_no_entry(void **state)
{
    (void)state;
    idn_dir *d = mk(1, 100);
    idn_plan p;
    ev(d, NULL, NULL, "a1", &p);
    assert_true(same(p.key, "a1"));
    assert_false(p.key_is_user);
    assert_int_equal(p.nmoves, 0);
    ev(d, "u1", NULL, NULL, &p);
    assert_true(same(p.key, "u1"));
    assert_true(p.key_is_user);
    assert_int_equal(idn_entries(d), 0);   /* nothing linked: nothing held */
    idn_destroy(d);
}

static void test_signup_merges_anonymous_into_user(void **state)
{
    (void)state;
    idn_dir *d = mk(1, 100);
    idn_plan p;
    ev(d, NULL, NULL, "a1", &p);                 /* browsing */
    ev(d, "u1", NULL, "a1", &p);                 /* signup: identify with both */
    assert_true(same(p.key, "u1"));
    assert_int_equal(p.nmoves, 1);
    assert_true(same(p.moves[0].from, "a1"));
    assert_false(p.moves[0].from_is_user);
    assert_key(d, "a1", "u1");                   /* later events with only a1 land on u1 */
    ev(d, NULL, NULL, "a1", &p);
    assert_true(same(p.key, "u1"));
    assert_true(p.key_is_user);
    assert_int_equal(p.nmoves, 0);
    ev(d, "u1", NULL, "a1", &p);                 /* again: nothing to do */
    assert_int_equal(p.nmoves, 0);
    idn_destroy(d);
}

static void test_second_userid_is_refused(void **state)
{
    (void)state;
    idn_dir *d = mk(1, 100);
    idn_plan p;
    ev(d, "u1", NULL, "shared-device", &p);
    ev(d, "u2", NULL, "shared-device", &p);      /* someone else logs in on that device */
    assert_true(same(p.key, "u2"));              /* the event goes to the userId's profile */
    assert_int_equal(p.nmoves, 0);
    assert_int_equal(p.nrefused, 1);
    assert_true(p.refused[0].is_key);
    assert_true(same(p.refused[0].other, "u1"));
    assert_non_null(strstr(p.refused[0].reason, "identity.max_user_ids (1)"));
    assert_true(p.anon_refused);
    assert_key(d, "shared-device", "u1");       /* the device stays where it was */
    idn_destroy(d);
}

static void test_more_userids_when_allowed(void **state)
{
    (void)state;
    idn_dir *d = mk(2, 100);
    idn_plan p;
    ev(d, "u1", NULL, "dev", &p);
    ev(d, "u2", NULL, "dev", &p);
    assert_int_equal(p.nrefused, 0);
    assert_int_equal(p.nmoves, 1);
    assert_true(same(p.moves[0].from, "u1"));
    assert_true(p.moves[0].from_is_user);
    assert_key(d, "u1", "u2");
    assert_key(d, "dev", "u2");                  /* invariant (1): links re-pointed */
    idn_destroy(d);
}

static void test_anonymous_limit(void **state)
{
    (void)state;
    idn_dir *d = mk(1, 2);                       /* a profile may hold 2 anonymousIds */
    idn_plan p;
    ev(d, "u1", NULL, "a1", &p);
    ev(d, "u1", NULL, "a2", &p);
    assert_int_equal(p.nmoves, 1);
    ev(d, "u1", NULL, "a3", &p);                 /* a third device: over profiles.max_anonymous_ids (2) */
    assert_int_equal(p.nmoves, 0);
    assert_int_equal(p.nrefused, 1);
    assert_non_null(strstr(p.refused[0].reason, "profiles.max_anonymous_ids (2)"));
    assert_key(d, "a3", "a3");
    idn_destroy(d);
}

static void test_declared_identifier_links_and_merges(void **state)
{
    (void)state;
    idn_dir *d = mk(1, 100);
    idn_plan p;
    ev(d, NULL, "ann@example.com", "laptop", &p);   /* newsletter form, anonymous */
    assert_true(same(p.key, "laptop"));
    assert_int_equal(p.nattach, 1);
    assert_int_equal(p.attach[0].kind, EMAIL);
    assert_key(d, "ann@example.com", "laptop");
    ev(d, NULL, "ann@example.com", "phone-app", &p);  /* the same email on another device */
    assert_true(same(p.key, "laptop"));              /* the email outranks the anonymousId */
    assert_int_equal(p.nmoves, 1);
    assert_true(same(p.moves[0].from, "phone-app"));
    ev(d, "ann", "ann@example.com", NULL, &p);       /* signup */
    assert_true(same(p.key, "ann"));
    assert_int_equal(p.nmoves, 1);
    assert_true(same(p.moves[0].from, "laptop"));
    assert_key(d, "phone-app", "ann");
    assert_key(d, "laptop", "ann");
    assert_key(d, "ann@example.com", "ann");
    ev(d, "ann", "other@example.com", NULL, &p);     /* a second email: over identity.max_per_identifier (1) */
    assert_int_equal(p.nattach, 0);
    assert_int_equal(p.nrefused, 1);
    assert_false(p.refused[0].is_key);
    assert_non_null(strstr(p.refused[0].reason, "identity.max_per_identifier (1)"));
    assert_key(d, "other@example.com", "other@example.com");   /* not held */
    idn_destroy(d);
}

static void test_email_of_another_user_is_refused(void **state)
{
    (void)state;
    idn_dir *d = mk(1, 100);
    idn_plan p;
    ev(d, "u1", "x@example.com", NULL, &p);
    ev(d, "u2", "x@example.com", NULL, &p);
    assert_true(same(p.key, "u2"));
    assert_int_equal(p.nmoves, 0);
    assert_int_equal(p.nrefused, 1);
    assert_true(same(p.refused[0].other, "u1"));
    assert_key(d, "x@example.com", "u1");
    idn_destroy(d);
}

static void test_forget(void **state)
{
    (void)state;
    idn_dir *d = mk(1, 100);
    idn_plan p;
    ev(d, "u1", "x@example.com", "a1", &p);
    assert_int_equal(idn_entries(d), 3);    /* u1's head, the email, a1 */
    idn_forget(d, "a1", 2);                 /* any identifier forgets the person */
    assert_int_equal(idn_entries(d), 0);
    assert_key(d, "a1", "a1");
    assert_key(d, "x@example.com", "x@example.com");
    idn_destroy(d);
}

static void collect(void *ctx, uint32_t kind, jd_str v)
{
    char *out = ctx;
    char one[300];
    snprintf(one, sizeof one, "%u:%.*s,", kind, (int)v.n, v.p);
    strcat(out, one);
}

/* The plans, recorded as route.c records them, rebuild the same directory. */
static void test_replay_of_decisions_equals_resolving(void **state)
{
    (void)state;
    idn_dir *live = mk(1, 100), *replay = mk(1, 100);
    const char *evs[][3] = {
        { NULL, NULL, "a1" }, { NULL, "e@x", "a2" }, { "u1", NULL, "a1" }, { NULL, "e@x", "a3" },
        { "u2", NULL, "a3" }, { "u1", "e@x", NULL }, { "u3", NULL, "a4" }, { NULL, NULL, "a4" },
    };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
        idn_plan p;
        ev(live, evs[i][0], evs[i][1], evs[i][2], &p);
        for (uint32_t m = 0; m < p.nmoves; m++)
            idn_apply_move(replay, p.moves[m].from, p.moves[m].from_is_user, p.key, p.key_is_user);
        for (uint32_t a = 0; a < p.nattach; a++)
            idn_apply_attach(replay, p.key, p.key_is_user, p.attach[a].kind, p.attach[a].v);
    }
    const char *ids[] = { "a1", "a2", "a3", "a4", "e@x", "u1", "u2", "u3" };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        jd_str a = idn_lookup(live, ids[i], strlen(ids[i]), NULL), b = idn_lookup(replay, ids[i], strlen(ids[i]), NULL);
        assert_int_equal(a.n, b.n);
        assert_memory_equal(a.p, b.p, a.n);
    }
    assert_key(live, "a2", "u2");            /* a2 (with e@x and a3) went to u2; u2 into u1 was refused */
    assert_key(live, "e@x", "u2");
    char l[1000] = "", r[1000] = "";
    idn_each(live, "u1", 2, collect, l);
    idn_each(replay, "u1", 2, collect, r);
    assert_string_equal(l, r);
    idn_destroy(live);
    idn_destroy(replay);
}

/* A merge of a profile with links: the merged links, then the merged key,
 * follow the survivor's own links (invariants (1), (2)); the plan's strings
 * are intact although the survivor's block moved (7). */
static void test_merge_keeps_link_order_and_plan_strings(void **state)
{
    (void)state;
    idn_dir *d = mk(2, 100);
    idn_plan p;
    ev(d, "u1", NULL, "a1", &p);
    ev(d, "u1", NULL, "a2", &p);
    ev(d, "u2", NULL, "a3", &p);
    ev(d, "u2", NULL, "a1", &p);                 /* a1 is u1's: u1 merges into u2 */
    assert_true(same(p.key, "u2"));
    assert_int_equal(p.nmoves, 1);
    assert_true(same(p.moves[0].from, "u1"));
    char l[200] = "";
    idn_each(d, "a2", 2, collect, l);            /* any identifier names the profile */
    assert_string_equal(l, "1:a3,1:a1,1:a2,0:u1,");
    assert_int_equal(idn_entries(d), 5);
    idn_destroy(d);

    d = mk(1, 100);
    ev(d, NULL, "e1", "a2", &p);                 /* a2: [a2, e1] */
    ev(d, "u1", NULL, "a1", &p);                 /* u1: [u1, a1] */
    ev(d, "u1", "e1", NULL, &p);                 /* e1 finds a2: a2 merges into u1 */
    assert_true(same(p.key, "u1"));
    assert_true(p.key_is_user);
    assert_int_equal(p.nmoves, 1);
    assert_true(same(p.moves[0].from, "a2"));
    assert_false(p.moves[0].from_is_user);
    l[0] = 0;
    idn_each(d, "u1", 2, collect, l);
    assert_string_equal(l, "1:a1,2:e1,1:a2,");
    assert_key(d, "e1", "u1");
    idn_destroy(d);
}

/* A move that is ignored (from is linked elsewhere) leaves no empty profile
 * behind (invariant (3)). */
static void test_ignored_move_adds_nothing(void **state)
{
    (void)state;
    idn_dir *d = mk(1, 100);
    idn_apply_move(d, S("a1"), false, S("u1"), true);
    assert_int_equal(idn_entries(d), 2);
    idn_apply_move(d, S("a1"), false, S("u2"), true);   /* warns: a1 is u1's */
    assert_int_equal(idn_entries(d), 2);
    assert_key(d, "a1", "u1");
    assert_key(d, "u2", "u2");
    idn_apply_move(d, S("u1"), true, S("a1"), false);   /* a1 is one of u1's links: nothing to do */
    assert_key(d, "u1", "u1");
    assert_int_equal(idn_entries(d), 2);
    idn_destroy(d);
}

/* Forgetting frees. A directory that keeps 500 people while people come and
 * go does not grow: freed blocks are reused by size. When the newcomers'
 * identifiers are longer than the leavers' (blocks no free list can serve),
 * compaction keeps it within a few pages (invariant (8); without it, it
 * would grow by half a page a round, to ~30 pages). An emptied directory
 * holds nothing (invariant (6)). */
static void test_churn_is_bounded_and_forget_frees(void **state)
{
    (void)state;
    idn_dir *d = mk(1, 100);
    idn_plan p;
    char u[64], e[64], a[300];
    size_t early = 0, most = 0;
    for (size_t round = 0; round < 90; round++) {
        size_t pad = round < 30 ? 0 : 3 * (round - 30);   /* from round 30, each round's anonymousIds are longer */
        for (size_t i = round * 500; i < round * 500 + 500; i++) {
            snprintf(u, sizeof u, "user-%06zu", i);
            snprintf(e, sizeof e, "p%06zu@%.*s.example.com", i, (int)(i % 23), "abcdefghijklmnopqrstuvw");
            int k = snprintf(a, sizeof a, "anon-%06zu-", i);
            memset(a + k, 'x', (i % 7) * 5 + pad);   /* blocks of many sizes */
            a[(size_t)k + (i % 7) * 5 + pad] = 0;
            ev(d, u, e, a, &p);
        }
        if (round) {
            for (size_t i = (round - 1) * 500; i < round * 500; i++) {   /* the previous round leaves */
                if (i % 2) snprintf(u, sizeof u, "user-%06zu", i);
                else snprintf(u, sizeof u, "p%06zu@%.*s.example.com", i, (int)(i % 23), "abcdefghijklmnopqrstuvw");
                idn_forget(d, u, strlen(u));
            }
        }
        assert_int_equal(idn_entries(d), 1500);
        size_t bytes = idn_bytes(d);
        if (round < 5) early = bytes > early ? bytes : early;
        else if (round < 30) assert_true(bytes <= early);
        most = bytes > most ? bytes : most;
    }
    assert_true(most <= 8 * 256 * 1024);
    assert_key(d, "user-044999", "user-044999");
    assert_key(d, "p044999@abcdefghijk.example.com", "user-044999");
    for (size_t i = 44500; i < 45000; i++) {
        snprintf(u, sizeof u, "user-%06zu", i);
        idn_forget(d, u, strlen(u));
    }
    assert_int_equal(idn_entries(d), 0);
    assert_int_equal(idn_bytes(d), 0);
    assert_key(d, "user-044999", "user-044999");
    idn_destroy(d);
}

/* A profile of 2,000 anonymousIds of 200 bytes, linked one by one: its block
 * goes through every size up to a page (256 KiB, about 1,290 of them), then
 * a link is refused with a warning and the directory stays whole. */
static void test_large_profile(void **state)
{
    (void)state;
    idn_dir *d = mk(1, 5000);
    idn_plan p;
    char a[300];
    for (size_t i = 0; i < 2000; i++) {
        snprintf(a, sizeof a, "%04zu-", i);
        memset(a + 5, 'a' + (char)(i % 26), 195);
        a[200] = 0;
        ev(d, "u1", NULL, a, &p);
        if (i < 1000) {
            assert_int_equal(p.nmoves, 1);
            assert_true(same(p.moves[0].from, a));
        }
        assert_true(same(p.key, "u1"));
    }
    size_t held = idn_entries(d) - 1;   /* u1 is the key */
    assert_true(held >= 1000 && held < 2000);   /* 202 bytes an entry */
    for (size_t i = 0; i < 2000; i++) {
        snprintf(a, sizeof a, "%04zu-", i);
        memset(a + 5, 'a' + (char)(i % 26), 195);
        a[200] = 0;
        assert_key(d, a, i < held ? "u1" : a);
    }
    idn_forget(d, "u1", 2);
    assert_int_equal(idn_entries(d), 0);
    assert_int_equal(idn_bytes(d), 0);
    idn_destroy(d);
}

typedef struct tally { size_t n; const char *want; bool found; } tally;

static void count_link(void *ctx, uint32_t kind, jd_str v)
{
    tally *t = ctx;
    t->n++;
    if (jd_str_eq(v, t->want, strlen(t->want))) t->found = true;
    (void)kind;
}

/* Random events and deletions over a pool of 90 identifiers: after each step
 * every identifier resolves to a key that resolves to itself and lists it
 * (1), (2), and the entries add up; the recorded decisions replayed into a
 * second directory give the same one (4). Exercises moving blocks, free
 * lists, tombstones and rehashes. */
static void test_random_events_keep_the_invariants(void **state)
{
    (void)state;
    idn_opts o = { .max_user_ids = 3, .max_anonymous_ids = 6, .max_per_identifier = 2, .ndeclared = 2,
                   .declared = declared };
    idn_dir *d = idn_create(&o), *replay = idn_create(&o);
    char pool[90][40];
    for (int i = 0; i < 90; i++)
        snprintf(pool[i], sizeof pool[i], i < 30 ? "u%d" : i < 60 ? "anon-%d-xxxxxxxxxxxx" : "mail%d@example.org", i);
    uint64_t seed = 7;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        uint64_t r = seed >> 16;
        if (r % 40 == 0) {
            const char *x = pool[(r >> 8) % 90];
            idn_forget(d, x, strlen(x));
            idn_forget(replay, x, strlen(x));
        } else {
            const char *u = r & 2 ? pool[(r >> 8) % 30] : NULL, *e = r & 4 ? pool[60 + (r >> 16) % 30] : NULL;
            const char *a = !u || r & 8 ? pool[30 + (r >> 24) % 30] : NULL;
            idn_plan p;
            ev(d, u, e, a, &p);
            for (uint32_t m = 0; m < p.nmoves; m++)
                idn_apply_move(replay, p.moves[m].from, p.moves[m].from_is_user, p.key, p.key_is_user);
            for (uint32_t k = 0; k < p.nattach; k++)
                idn_apply_attach(replay, p.key, p.key_is_user, p.attach[k].kind, p.attach[k].v);
        }
        if (step % 97 && step != 19999) continue;
        size_t total = 0;
        for (int i = 0; i < 90; i++) {
            jd_str k = idn_lookup(d, pool[i], strlen(pool[i]), NULL), k2 = idn_lookup(replay, pool[i], strlen(pool[i]), NULL);
            assert_int_equal(k.n, k2.n);
            assert_memory_equal(k.p, k2.p, k.n);
            jd_str kk = idn_lookup(d, k.p, k.n, NULL);
            assert_int_equal(kk.n, k.n);
            assert_memory_equal(kk.p, k.p, k.n);
            tally t = { 0, pool[i], false };
            idn_each(d, k.p, k.n, count_link, &t);
            if (!jd_str_eq(k, pool[i], strlen(pool[i]))) assert_true(t.found);
            else if (t.n) total += 1 + t.n;   /* a key with links: count its profile once */
        }
        assert_int_equal(idn_entries(d), total);
        assert_int_equal(idn_entries(replay), total);
    }
    idn_destroy(d);
    idn_destroy(replay);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alone_needs_no_entry),
        cmocka_unit_test(test_signup_merges_anonymous_into_user),
        cmocka_unit_test(test_second_userid_is_refused),
        cmocka_unit_test(test_more_userids_when_allowed),
        cmocka_unit_test(test_anonymous_limit),
        cmocka_unit_test(test_declared_identifier_links_and_merges),
        cmocka_unit_test(test_email_of_another_user_is_refused),
        cmocka_unit_test(test_forget),
        cmocka_unit_test(test_replay_of_decisions_equals_resolving),
        cmocka_unit_test(test_merge_keeps_link_order_and_plan_strings),
        cmocka_unit_test(test_ignored_move_adds_nothing),
        cmocka_unit_test(test_churn_is_bounded_and_forget_frees),
        cmocka_unit_test(test_large_profile),
        cmocka_unit_test(test_random_events_keep_the_invariants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
