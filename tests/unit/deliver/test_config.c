/* tests/unit/deliver/test_config.c -- `channels:` in the configuration
 * (src/deliver/config.c): a full map into dlv_channel_cfg rows, defaults,
 * secrets from the environment, each error with its exact file:line:col and
 * key path, and the hook in jd_config_load_file (a later file replaces). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "journeyd/config.h"
#include "journeyd/deliver.h"

/* Parses `channels:` of a YAML text. */
static int parse(const char *yaml, dlv_channels **out, jd_err *err)
{
    jd_yaml_doc *doc = NULL;
    const jd_yaml_node *root = NULL;
    *out = NULL;
    jd_err_clear(err);
    int rc = jd_yaml_parse("t.yaml", yaml, strlen(yaml), &doc, &root, err);
    if (rc == JD_OK) rc = dlv_channels_parse(root ? jd_yaml_get(root, "channels") : NULL, "t.yaml", out, err);
    jd_yaml_free(doc);
    return rc;
}

static const char full_yaml[] =
    "channels:\n"
    "  email:\n"
    "    kind: email\n"
    "    url: smtp://smtp.example.com:587\n"
    "    tls: optional\n"
    "    user: mailer\n"
    "    password: \"p4ss\"\n"
    "    from: \"Acme <news@acme.example>\"\n"
    "    envelope_from: bounces@acme.example\n"
    "    message_id_domain: mail.acme.example\n"
    "    ca_file: /etc/journeyd/relay-ca.pem\n"
    "    timeout: 60s\n"
    "    connect_timeout: 500ms\n"
    "    rate: 50\n"
    "    burst: 100\n"
    "    max_in_flight: 8\n"
    "    max_queued: 100000\n"
    "    retry:\n"
    "      max_attempts: 5\n"
    "      backoff: 2s\n"
    "      max_backoff: 10m\n"
    "      max_retry_after: 1h\n"
    "  sms:\n"
    "    kind: sms\n"
    "    url: https://api.twilio.com\n"
    "    user: AC123\n"
    "    password: tok\n"
    "    from: \"+15005550006\"\n"
    "    rate: 0.5\n"
    "  push:\n"
    "    kind: push\n"
    "    url: https://fcm.googleapis.com\n"
    "    project: demo-app\n"
    "    token: ya29.x\n"
    "  slack-sales:\n"
    "    kind: slack\n"
    "    url: https://hooks.slack.com/services/T000/B000/XXXX\n"
    "  crm:\n"
    "    kind: webhook\n"
    "    url: https://crm.example.com/hooks/journeyd\n"
    "    secret: whsec_1\n"
    "    timeout: 5s\n"
    "    tls: none\n";

static void test_full_map(void **state)
{
    (void)state;
    dlv_channels *cs = NULL;
    jd_err err;
    int rc = parse(full_yaml, &cs, &err);
    if (rc != JD_OK) fail_msg("%s: %s", err.where, err.msg);
    size_t n = 0;
    const dlv_channel_cfg *v = dlv_channels_list(cs, &n);
    assert_int_equal(n, 5);
    /* file order */
    assert_string_equal(v[0].name, "email");
    assert_string_equal(v[1].name, "sms");
    assert_string_equal(v[2].name, "push");
    assert_string_equal(v[3].name, "slack-sales");
    assert_string_equal(v[4].name, "crm");

    const dlv_channel_cfg *e = &v[0];
    assert_int_equal(e->kind, DLV_EMAIL);
    assert_string_equal(e->url, "smtp://smtp.example.com:587");
    assert_int_equal(e->tls, DLV_TLS_OPTIONAL);
    assert_string_equal(e->user, "mailer");
    assert_string_equal(e->password, "p4ss");
    assert_string_equal(e->from, "Acme <news@acme.example>");
    assert_string_equal(e->envelope_from, "bounces@acme.example");
    assert_string_equal(e->message_id_domain, "mail.acme.example");
    assert_string_equal(e->ca_file, "/etc/journeyd/relay-ca.pem");
    assert_null(e->token);
    assert_null(e->secret);
    assert_int_equal(e->timeout_us, 60 * JD_SEC);
    assert_int_equal(e->connect_timeout_us, 500000);
    assert_true(e->rate_per_s == 50.0);
    assert_int_equal(e->burst, 100);
    assert_int_equal(e->max_in_flight, 8);
    assert_int_equal(e->max_queued, 100000);
    assert_int_equal(e->retry.max_attempts, 5);
    assert_int_equal(e->retry.backoff_base_us, 2 * JD_SEC);
    assert_int_equal(e->retry.backoff_max_us, 10 * JD_MIN);
    assert_int_equal(e->retry.retry_after_max_us, JD_HOUR);

    assert_int_equal(v[1].kind, DLV_SMS);
    assert_string_equal(v[1].user, "AC123");
    assert_string_equal(v[1].password, "tok");
    assert_string_equal(v[1].from, "+15005550006");
    assert_true(v[1].rate_per_s == 0.5);
    assert_int_equal(v[2].kind, DLV_PUSH);
    assert_string_equal(v[2].project, "demo-app");
    assert_string_equal(v[2].token, "ya29.x");
    assert_int_equal(v[3].kind, DLV_SLACK);
    assert_string_equal(v[3].url, "https://hooks.slack.com/services/T000/B000/XXXX");
    assert_int_equal(v[4].kind, DLV_WEBHOOK);
    assert_string_equal(v[4].secret, "whsec_1");
    assert_int_equal(v[4].timeout_us, 5 * JD_SEC);
    assert_int_equal(v[4].tls, DLV_TLS_NONE);

    assert_ptr_equal(dlv_channels_find(cs, "crm"), &v[4]);
    assert_null(dlv_channels_find(cs, "CRM"));
    assert_null(dlv_channels_find(cs, "in_app"));

    dlv_channels_destroy(cs);
}

static void on_result(const dlv_result *r, void *ctx) { (void)r; (void)ctx; }

static void test_defaults_and_dlv_create(void **state)
{
    (void)state;
    dlv_channels *cs = NULL;
    jd_err err;
    int rc = parse("channels:\n  hook:\n    kind: webhook\n    url: http://127.0.0.1:9/x\n    secret: s\n", &cs, &err);
    if (rc != JD_OK) fail_msg("%s: %s", err.where, err.msg);
    size_t n = 0;
    const dlv_channel_cfg *v = dlv_channels_list(cs, &n);
    assert_int_equal(n, 1);
    /* zero: the transport's defaults (docs/delivery.md "Defaults") */
    assert_int_equal(v[0].tls, DLV_TLS_DEFAULT);
    assert_int_equal(v[0].timeout_us, 0);
    assert_int_equal(v[0].connect_timeout_us, 0);
    assert_true(v[0].rate_per_s == 0);
    assert_int_equal(v[0].burst, 0);
    assert_int_equal(v[0].max_in_flight, 0);
    assert_int_equal(v[0].max_queued, 0);
    assert_int_equal(v[0].retry.max_attempts, 0);
    assert_null(v[0].user);
    assert_null(v[0].from);
    dlv_opts o = { .channels = v, .nchannels = n, .on_result = on_result };
    dlv *d = NULL;
    assert_int_equal(dlv_create(&d, &o, &err), JD_OK);
    assert_int_equal(dlv_room(d, "hook"), 100000);   /* the default max_queued */
    dlv_destroy(d, 0);
    dlv_channels_destroy(cs);
}

static void test_none(void **state)
{
    (void)state;
    const char *texts[] = { "data: x\n", "channels:\n", "channels: ~\n", "channels: {}\n" };
    for (size_t i = 0; i < JD_ARRAY_LEN(texts); i++) {
        dlv_channels *cs = (dlv_channels *)1;
        jd_err err;
        assert_int_equal(parse(texts[i], &cs, &err), JD_OK);
        assert_null(cs);
        size_t n = 7;
        assert_null(dlv_channels_list(cs, &n));
        assert_int_equal(n, 0);
        assert_null(dlv_channels_find(cs, "email"));
    }
    dlv_channels_destroy(NULL);
}

static void test_env_secrets(void **state)
{
    (void)state;
    setenv("JD_TEST_SMTP_PW", "from-env", 1);
    setenv("JD_TEST_WH", "whsec_env", 1);
    setenv("JD_TEST_TOK", "ya29.env", 1);
    dlv_channels *cs = NULL;
    jd_err err;
    int rc = parse("channels:\n"
                   "  email:\n    kind: email\n    url: smtps://h:465\n    from: a@b.c\n    user: u\n    password_env: JD_TEST_SMTP_PW\n"
                   "  crm:\n    kind: webhook\n    url: https://x.example\n    secret_env: JD_TEST_WH\n"
                   "  push:\n    kind: push\n    url: https://fcm.example\n    project: p\n    token_env: JD_TEST_TOK\n",
                   &cs, &err);
    if (rc != JD_OK) fail_msg("%s: %s", err.where, err.msg);
    /* read once, at parse time: later changes are not seen (invariant (3)) */
    setenv("JD_TEST_SMTP_PW", "changed", 1);
    assert_string_equal(dlv_channels_find(cs, "email")->password, "from-env");
    assert_string_equal(dlv_channels_find(cs, "crm")->secret, "whsec_env");
    assert_string_equal(dlv_channels_find(cs, "push")->token, "ya29.env");
    dlv_channels_destroy(cs);
    unsetenv("JD_TEST_SMTP_PW");
    unsetenv("JD_TEST_WH");
    unsetenv("JD_TEST_TOK");
}

/* One error case: YAML text, where, message. */
static void expect_err(const char *yaml, int code, const char *where, const char *msg)
{
    dlv_channels *cs = NULL;
    jd_err err;
    int rc = parse(yaml, &cs, &err);
    assert_null(cs);
    if (rc != code || strcmp(err.where, where) != 0 || strcmp(err.msg, msg) != 0)
        fail_msg("for:\n%s\ngot rc %d %s: %s\nwant rc %d %s: %s", yaml, rc, err.where, err.msg, code, where, msg);
}

#define HOOK "channels:\n  crm:\n    kind: webhook\n    url: https://x.example\n    secret: s\n"

static void test_errors(void **state)
{
    (void)state;
    unsetenv("JD_TEST_UNSET");
    expect_err("channels: [email]\n", JD_EINVAL, "t.yaml:1:11",
               "channels: expected a map of channels, like email: { kind: email, url: ... }");
    expect_err("channels:\n  Email:\n    kind: email\n", JD_EINVAL, "t.yaml:2:3",
               "channels.Email: a channel name is 1 to 64 of a-z, 0-9, _ or -");
    expect_err("channels:\n  crm: webhook\n", JD_EINVAL, "t.yaml:2:8",
               "channels.crm: expected a map like { kind: email, url: smtp://host:587, ... }");
    expect_err("channels:\n  crm:\n    url: https://x\n", JD_EINVAL, "t.yaml:2:3",
               "channels.crm: needs a kind (email, sms, push, slack or webhook)");
    expect_err("channels:\n  crm:\n    kind: fax\n", JD_EINVAL, "t.yaml:3:11",
               "channels.crm.kind: expected email, sms, push, slack or webhook, got 'fax'");
    expect_err(HOOK "    urll: x\n", JD_EINVAL, "t.yaml:6:5",
               "channels.crm.urll: unknown key (docs/delivery.md lists a channel's keys)");
    expect_err(HOOK "    timeout: 10 parsecs\n", JD_EINVAL, "t.yaml:6:14",
               "channels.crm.timeout: expected a duration like 10s, 500ms or 10m, got '10 parsecs'");
    expect_err(HOOK "    timeout: 2h\n", JD_EINVAL, "t.yaml:6:14", "channels.crm.timeout: 2h is out of range 1ms..1h");
    expect_err(HOOK "    tls: maybe\n", JD_EINVAL, "t.yaml:6:10",
               "channels.crm.tls: expected required, optional or none, got 'maybe'");
    expect_err(HOOK "    rate: 0\n", JD_EINVAL, "t.yaml:6:11",
               "channels.crm.rate: expected sends per second, a number above 0 and at most 1000000, got '0'");
    expect_err(HOOK "    rate: -3\n", JD_EINVAL, "t.yaml:6:11",
               "channels.crm.rate: expected sends per second, a number above 0 and at most 1000000, got '-3'");
    expect_err(HOOK "    burst: lots\n", JD_EINVAL, "t.yaml:6:12", "channels.crm.burst: expected a whole number, got 'lots'");
    expect_err(HOOK "    max_in_flight: 0\n", JD_EINVAL, "t.yaml:6:20", "channels.crm.max_in_flight: 0 is out of range 1..10000");
    /* the YAML reader refuses a key given twice */
    expect_err(HOOK "    url: https://y.example\n", JD_EINVAL, "t.yaml:6:5", "duplicate key 'url'");
    expect_err(HOOK "    user: [a, b]\n", JD_EINVAL, "t.yaml:6:11", "channels.crm.user: expected a single value");
    expect_err(HOOK "    from: ''\n", JD_EINVAL, "t.yaml:6:11", "channels.crm.from: must not be empty");
    expect_err(HOOK "    retry: 3\n", JD_EINVAL, "t.yaml:6:12",
               "channels.crm.retry: expected a map like { max_attempts: 8, backoff: 1s }");
    expect_err(HOOK "    retry:\n      max_attempts: 3\n      jitter: full\n", JD_EINVAL, "t.yaml:8:7",
               "channels.crm.retry.jitter: unknown key (known: max_attempts, backoff, max_backoff, max_retry_after)");
    expect_err(HOOK "    retry: { backoff: soon }\n", JD_EINVAL, "t.yaml:6:23",
               "channels.crm.retry.backoff: expected a duration like 10s, 500ms or 10m, got 'soon'");
    expect_err(HOOK "    retry: { max_attempts: 0 }\n", JD_EINVAL, "t.yaml:6:28",
               "channels.crm.retry.max_attempts: 0 is out of range 1..1000");
    /* environment */
    expect_err("channels:\n  crm:\n    kind: webhook\n    url: https://x.example\n    secret_env: JD_TEST_UNSET\n", JD_EINVAL,
               "t.yaml:5:17", "channels.crm.secret_env: environment variable JD_TEST_UNSET is not set");
    expect_err("channels:\n  crm:\n    kind: webhook\n    url: https://x.example\n    secret_env: not a name\n", JD_EINVAL,
               "t.yaml:5:17", "channels.crm.secret_env: expected an environment variable name, got 'not a name'");
    setenv("JD_TEST_SET", "v", 1);
    expect_err(HOOK "    secret_env: JD_TEST_SET\n", JD_EINVAL, "t.yaml:6:5",
               "channels.crm.secret_env: the secret is also given in the file");
    unsetenv("JD_TEST_SET");
    /* the transport's checks (dlv__chan_init), pointed at the value, or at the channel when absent */
    expect_err("channels:\n  crm:\n    kind: webhook\n    url: https://x.example\n", JD_EINVAL, "t.yaml:2:3",
               "channels.crm.secret: a signing secret is required");
    expect_err("channels:\n  crm:\n    kind: webhook\n    url: ftp://x.example\n    secret: s\n", JD_EINVAL, "t.yaml:4:10",
               "channels.crm.url: expected an http(s) URL");
    expect_err("channels:\n  sms:\n    kind: sms\n    url: https://api.twilio.com\n    password: t\n", JD_EINVAL, "t.yaml:2:3",
               "channels.sms.user: the Account SID is required");
    expect_err("channels:\n  email:\n    kind: email\n    url: smtp://h:25\n    from: not an address\n", JD_EINVAL,
               "t.yaml:5:11", "channels.email.from: a sender address is required (\"Name <a@b.c>\" or \"a@b.c\")");
    expect_err("channels:\n  email:\n    kind: email\n    url: smtp://h:25\n    from: a@b.c\n    user: u\n", JD_EINVAL,
               "t.yaml:2:3", "channels.email.password: user and password go together");
    expect_err(HOOK "  crm:\n    kind: slack\n", JD_EINVAL, "t.yaml:6:3", "duplicate key 'crm'");
}

static void test_limit(void **state)
{
    (void)state;
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    jd_buf_adds(&b, "channels:\n");
    for (int i = 0; i <= DLV_MAX_CHANNELS; i++) jd_buf_addf(&b, "  s%d: { kind: slack }\n", i);
    dlv_channels *cs = NULL;
    jd_err err;
    assert_int_equal(parse(b.data, &cs, &err), JD_ELIMIT);
    assert_null(cs);
    assert_string_equal(err.where, "t.yaml:66:3");
    assert_string_equal(err.msg, "channels: more than 64 channels");
    jd_buf_release(&b);
}

static char *write_tmp(const char *text)
{
    char *path = jd_xstrdup("/tmp/jd-chan-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_config_hook(void **state)
{
    (void)state;
    jd_config c;
    jd_config_init(&c);
    assert_null(c.channels);
    assert_string_equal(c.templates_dir, "templates");
    jd_err err;
    char *p1 = write_tmp("templates:\n  dir: /srv/templates\n" HOOK), *p2 = write_tmp("channels:\n  ops: { kind: slack }\n");
    assert_int_equal(jd_config_load_file(&c, p1, &err), JD_OK);
    assert_string_equal(c.templates_dir, "/srv/templates");
    assert_non_null(dlv_channels_find(c.channels, "crm"));
    /* a later file replaces the channels */
    assert_int_equal(jd_config_load_file(&c, p2, &err), JD_OK);
    assert_null(dlv_channels_find(c.channels, "crm"));
    assert_int_equal(dlv_channels_find(c.channels, "ops")->kind, DLV_SLACK);
    assert_int_equal(jd_config_set(&c, "templates.dir", "t2", "--set", &err), JD_OK);
    assert_string_equal(c.templates_dir, "t2");
    jd_config_release(&c);

    /* an error names the config file */
    char *p3 = write_tmp("data: d\nchannels:\n  crm: { kind: webhook }\n");
    jd_config_init(&c);
    assert_int_equal(jd_config_load_file(&c, p3, &err), JD_EINVAL);
    char want[128];
    snprintf(want, sizeof want, "%s:3:3", p3);
    assert_string_equal(err.where, want);
    assert_string_equal(err.msg, "channels.crm.secret: a signing secret is required");
    jd_config_release(&c);

    jd_buf b;
    jd_buf_init(&b, 1 << 16);
    jd_config_describe(&b);
    assert_non_null(strstr(b.data, "  channels "));
    assert_non_null(strstr(b.data, "  templates.dir "));
    jd_buf_release(&b);
    unlink(p1);
    unlink(p2);
    unlink(p3);
    free(p1);
    free(p2);
    free(p3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_map),
        cmocka_unit_test(test_defaults_and_dlv_create),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_env_secrets),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_config_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
