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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
