/* tests/unit/profile/test_consent.c -- prof_consent_allows (src/profile/consent.c):
 * each rule of include/journeyd/profile.h in turn, with the reason it gives,
 * and the consent.exempt / consent.opt_out settings (src/base/config.c) that
 * feed it, with errors that name the key. "rule N" below is that list. */
#include "journeyd/config.h"
#include "journeyd/limits.h"
#include "journeyd/profile.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define T0 INT64_C(1767225600000000)   /* 2026-01-01T00:00:00Z */
#define SEC INT64_C(1000000)

static jd_str S(const char *s) { return s ? (jd_str){ s, (uint32_t)strlen(s) } : (jd_str){ NULL, 0 }; }

/* An identify of uid at ts carrying traits.consent = consent (JSON), with an
 * optional context.consent.source. */
static void consent(prof_store *s, const char *uid, int64_t ts, const char *consent_json, const char *source)
{
    char json[2048];
    if (source)
        snprintf(json, sizeof json, "{\"type\":\"identify\",\"traits\":{\"consent\":%s},\"context\":{\"consent\":{\"source\":\"%s\"}}}",
                 consent_json, source);
    else snprintf(json, sizeof json, "{\"type\":\"identify\",\"traits\":{\"consent\":%s}}", consent_json);
    ingest_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = INGEST_IDENTIFY;
    ev.timestamp_us = ev.received_us = ts;
    ev.user_id = S(uid);
    ev.message_id = S("m");
    ev.json = S(json);
    jd_err err;
    jd_err_clear(&err);
    assert_int_equal(prof_apply(s, &ev, &err), JD_OK);
}

/* Asserts the decision and the reason. */
static void expect(const prof_store *s, const char *uid, const char *channel, const char *topic, bool allowed,
                   const char *why_want)
{
    char why[256];
    bool got = prof_consent_allows(s, uid, strlen(uid), channel, topic, why, sizeof why);
    if (got != allowed || strcmp(why, why_want) != 0)
        fprintf(stderr, "%s %s/%s: got %d \"%s\", want %d \"%s\"\n", uid, channel, topic ? topic : "", got, why, allowed, why_want);
    assert_int_equal(got, allowed);
    assert_string_equal(why, why_want);
}

static prof_store *store_with(const jd_consent_cfg *pol)
{
    prof_limits l;
    prof_limits_default(&l);
    l.consent = pol;
    return prof_store_create(&l);
}

/* rule 5 with no policy: opt-in everywhere; a person never seen is a person
 * with no entries; rules 3 and 4 each alone. */
static void test_default_opt_in_and_single_entries(void **state)
{
    (void)state;
    prof_store *s = store_with(NULL);
    expect(s, "nobody", "email", "marketing", false, "no consent for email/marketing");
    expect(s, "nobody", "email", NULL, false, "no consent for email");
    consent(s, "u1", T0, "{\"email/marketing\":true}", "signup-form");
    expect(s, "u1", "email", "marketing", true, "email/marketing granted by signup-form at 2026-01-01T00:00:00.000Z");
    expect(s, "u1", "email", "news", false, "no consent for email/news");   /* another topic */
    expect(s, "u1", "email", NULL, false, "no consent for email");          /* a topic grant is not the channel */
    expect(s, "u1", "sms", "marketing", false, "no consent for sms/marketing");
    consent(s, "u2", T0, "{\"sms\":true}", NULL);
    expect(s, "u2", "sms", "alerts", true, "sms granted by identify at 2026-01-01T00:00:00.000Z");   /* rule 4 */
    expect(s, "u2", "sms", "", true, "sms granted by identify at 2026-01-01T00:00:00.000Z");         /* "" = channel */
    /* a later refusal of the same key replaces the grant; null removes it */
    consent(s, "u1", T0 + 60 * SEC, "{\"email/marketing\":false}", "preference-center");
    expect(s, "u1", "email", "marketing", false, "email/marketing refused by preference-center at 2026-01-01T00:01:00.000Z");
    consent(s, "u1", T0 + 30 * SEC, "{\"email/marketing\":true}", "late");   /* older: loses (tset later-wins) */
    expect(s, "u1", "email", "marketing", false, "email/marketing refused by preference-center at 2026-01-01T00:01:00.000Z");
    consent(s, "u1", T0 + 90 * SEC, "{\"email/marketing\":null}", NULL);
    expect(s, "u1", "email", "marketing", false, "no consent for email/marketing");
    /* a bad channel is refused, never looked up */
    expect(s, "u2", "", NULL, false, "invalid channel");
    expect(s, "u2", "sms/alerts", NULL, false, "invalid channel");
    assert_false(prof_consent_allows(s, "u2", 2, NULL, NULL, NULL, 0));   /* why may be NULL */
    assert_true(prof_consent_allows(s, "u2", 2, "sms", NULL, NULL, 0));
    char tiny[8];
    assert_true(prof_consent_allows(s, "u2", 2, "sms", NULL, tiny, sizeof tiny));
    assert_string_equal(tiny, "sms gra");   /* cut to whycap, NUL-terminated */
    prof_store_destroy(s);
}

/* Rules 2 and 3: the topic entry wins over the channel entry either way,
 * except a channel refusal newer than a topic grant. */
static void test_topic_over_channel_and_unsubscribe_all(void **state)
{
    (void)state;
    prof_store *s = store_with(NULL);
    /* channel refused, then one topic granted (a preference center's resubscribe): the topic goes */
    consent(s, "a", T0, "{\"email\":false}", "unsubscribe-link");
    consent(s, "a", T0 + SEC, "{\"email/news\":true}", "preference-center");
    expect(s, "a", "email", "news", true, "email/news granted by preference-center at 2026-01-01T00:00:01.000Z");
    expect(s, "a", "email", "marketing", false, "email refused by unsubscribe-link at 2026-01-01T00:00:00.000Z");
    /* one call with both at the same time: "all email off except news" */
    consent(s, "b", T0, "{\"email\":false,\"email/news\":true}", NULL);
    expect(s, "b", "email", "news", true, "email/news granted by identify at 2026-01-01T00:00:00.000Z");
    /* topic granted, then unsubscribe from all email: refused, with both times */
    consent(s, "c", T0, "{\"email/news\":true}", "signup-form");
    consent(s, "c", T0 + 60 * SEC, "{\"email\":false}", "unsubscribe-link");
    expect(s, "c", "email", "news", false,
           "email refused by unsubscribe-link at 2026-01-01T00:01:00.000Z (after email/news was granted at "
           "2026-01-01T00:00:00.000Z)");
    /* topic refused, then the channel granted later (a login flow resending it): still refused */
    consent(s, "d", T0, "{\"email/marketing\":false}", "preference-center");
    consent(s, "d", T0 + 3600 * SEC, "{\"email\":true}", "login");
    expect(s, "d", "email", "marketing", false, "email/marketing refused by preference-center at 2026-01-01T00:00:00.000Z");
    expect(s, "d", "email", "news", true, "email granted by login at 2026-01-01T01:00:00.000Z");
    /* channel granted, topic refused later: refused; and the topic granted again later: allowed */
    consent(s, "e", T0, "{\"email\":true}", NULL);
    consent(s, "e", T0 + SEC, "{\"email/marketing\":false}", NULL);
    expect(s, "e", "email", "marketing", false, "email/marketing refused by identify at 2026-01-01T00:00:01.000Z");
    consent(s, "e", T0 + 2 * SEC, "{\"email/marketing\":true}", NULL);
    expect(s, "e", "email", "marketing", true, "email/marketing granted by identify at 2026-01-01T00:00:02.000Z");
    /* a channel refusal newer than a topic refusal: refused either way, the topic's reason */
    consent(s, "f", T0, "{\"email/marketing\":false}", NULL);
    consent(s, "f", T0 + SEC, "{\"email\":false}", NULL);
    expect(s, "f", "email", "marketing", false, "email/marketing refused by identify at 2026-01-01T00:00:00.000Z");
    /* the decision survives a snapshot (the entries' times included) */
    jd_buf snap;
    jd_buf_init(&snap, 1 << 20);
    assert_int_equal(prof_store_encode(s, &snap), JD_OK);
    prof_store *d = store_with(NULL);
    jd_err err;
    assert_int_equal(prof_store_decode(d, snap.data, snap.len, &err), JD_OK);
    expect(d, "c", "email", "news", false,
           "email refused by unsubscribe-link at 2026-01-01T00:01:00.000Z (after email/news was granted at "
           "2026-01-01T00:00:00.000Z)");
    expect(d, "a", "email", "news", true, "email/news granted by preference-center at 2026-01-01T00:00:01.000Z");
    jd_buf_release(&snap);
    prof_store_destroy(d);
    prof_store_destroy(s);
}

/* Rule 1 (exempt topics ignore every entry, channel refusals included) and
 * rule 5 with consent.opt_out. */
static void test_exempt_and_opt_out(void **state)
{
    (void)state;
    char *exempt[] = { "transactional", "security" }, *opt_out[] = { "email" };
    jd_consent_cfg pol = { exempt, 2, opt_out, 1 };
    prof_store *s = store_with(&pol);
    expect(s, "nobody", "sms", "transactional", true, "exempt topic transactional");
    consent(s, "u1", T0, "{\"email\":false,\"sms\":false,\"email/security\":false}", "unsubscribe-link");
    expect(s, "u1", "email", "transactional", true, "exempt topic transactional");
    expect(s, "u1", "sms", "security", true, "exempt topic security");
    expect(s, "u1", "email", "marketing", false, "email refused by unsubscribe-link at 2026-01-01T00:00:00.000Z");
    expect(s, "u1", "email", NULL, false, "email refused by unsubscribe-link at 2026-01-01T00:00:00.000Z");
    expect(s, "u1", "email", "Transactional", false, "email refused by unsubscribe-link at 2026-01-01T00:00:00.000Z");
    /* opt-out channel: no entry allows; an opt-in channel does not */
    expect(s, "u2", "email", "marketing", true, "email is opt-out: no refusal of email/marketing");
    expect(s, "u2", "email", NULL, true, "email is opt-out: no refusal of email");
    expect(s, "u2", "sms", "marketing", false, "no consent for sms/marketing");
    expect(s, "u2", "push", "transactional", true, "exempt topic transactional");
    /* an entry still decides on an opt-out channel */
    consent(s, "u2", T0, "{\"email/marketing\":false}", NULL);
    expect(s, "u2", "email", "marketing", false, "email/marketing refused by identify at 2026-01-01T00:00:00.000Z");
    expect(s, "u2", "email", "news", true, "email is opt-out: no refusal of email/news");
    prof_store_destroy(s);
}

/* ---- the settings ---------------------------------------------------------------- */

static int load(jd_config *c, const char *text, jd_err *err)
{
    char path[] = "/tmp/jd-consent-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    jd_err_clear(err);
    int rc = jd_config_load_file(c, path, err);
    unlink(path);
    return rc;
}

static void test_settings(void **state)
{
    (void)state;
    jd_config c;
    jd_err err;
    jd_config_init(&c);
    assert_int_equal(c.consent.n_exempt, 0);   /* default: nothing exempt, opt-in everywhere */
    assert_int_equal(c.consent.n_opt_out, 0);
    assert_int_equal(load(&c, "consent:\n  exempt: [transactional, security]\n  opt_out: email\n", &err), JD_OK);
    assert_int_equal(c.consent.n_exempt, 2);
    assert_string_equal(c.consent.exempt[1], "security");
    assert_int_equal(c.consent.n_opt_out, 1);
    assert_string_equal(c.consent.opt_out[0], "email");
    assert_int_equal(jd_config_set(&c, "consent.exempt", "password-reset_2", "--consent.exempt", &err), JD_OK);
    assert_int_equal(c.consent.n_exempt, 3);
    assert_int_equal(jd_config_check(&c, &err), JD_OK);
    jd_config_release(&c);

    /* each error names the file position and the key */
    static const struct { const char *text, *msg; int rc; } bad[] = {
        { "consent:\n  exempt: [transactional, Security]\n", "consent.exempt: 'Security' is not a name of 1..64 bytes of a-z, 0-9, _ or -", JD_EINVAL },
        { "consent:\n  exempt: [\"a/b\"]\n", "consent.exempt: 'a/b' is not a name of 1..64 bytes of a-z, 0-9, _ or -", JD_EINVAL },
        { "consent:\n  exempt: [\"\"]\n", "consent.exempt: '' is not a name of 1..64 bytes of a-z, 0-9, _ or -", JD_EINVAL },
        { "consent:\n  opt_out: [email, email]\n", "consent.opt_out: lists 'email' twice", JD_EINVAL },
        { "consent:\n  exempt: { a: 1 }\n", "consent.exempt: expected a list", JD_EINVAL },
        { "consent:\n  default: opt_out\n", "unknown setting 'consent.default'", JD_EINVAL },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jd_config_init(&c);
        assert_int_equal(load(&c, bad[i].text, &err), bad[i].rc);
        assert_string_equal(err.msg, bad[i].msg);
        assert_non_null(strstr(err.where, ":2:"));   /* line 2 of the file */
        jd_config_release(&c);
    }
    /* 65 bytes, and a 17th entry */
    char text[4096], name[80];
    memset(name, 'a', 65);
    name[65] = 0;
    snprintf(text, sizeof text, "consent:\n  exempt: [%s]\n", name);
    jd_config_init(&c);
    assert_int_equal(load(&c, text, &err), JD_EINVAL);
    assert_non_null(strstr(err.msg, "consent.exempt: 'aaaa"));
    jd_config_release(&c);
    name[64] = 0;   /* 64 bytes: fine */
    snprintf(text, sizeof text, "consent:\n  exempt: [%s]\n", name);
    jd_config_init(&c);
    assert_int_equal(load(&c, text, &err), JD_OK);
    jd_config_release(&c);
    size_t n = (size_t)snprintf(text, sizeof text, "consent:\n  exempt:\n");
    for (int i = 0; i < JD_MAX_CONSENT_NAMES + 1; i++) n += (size_t)snprintf(text + n, sizeof text - n, "    - t%d\n", i);
    jd_config_init(&c);
    assert_int_equal(load(&c, text, &err), JD_ELIMIT);
    assert_string_equal(err.msg, "consent.exempt: more than 16 entries");
    assert_non_null(strstr(err.where, ":19:"));   /* the 17th entry's line */
    jd_config_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_opt_in_and_single_entries),
        cmocka_unit_test(test_topic_over_channel_and_unsubscribe_all),
        cmocka_unit_test(test_exempt_and_opt_out),
        cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
