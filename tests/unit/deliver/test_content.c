/* tests/unit/deliver/test_content.c -- message templates (src/deliver/content.c):
 * a folder of every kind loaded and rendered to exact text (HTML escaping in
 * html only, push data as a JSON object, webhook JSON checked), errors with
 * their file:line:col (inside block scalars too), every error of a folder
 * listed, the empty recipient, `date: "now"` from the caller. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "journeyd/deliver.h"

static char dir[64];

static void put(const char *d, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", d, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void rm_dir(const char *d)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
}

static const char vars_json[] =
    "{\"profile\":{\"traits\":{\"first_name\":\"Ada <3\",\"email\":\"ada@example.com\",\"phone\":\"+15005550006\","
    "\"push_token\":\"tok1\"}},"
    "\"event\":{\"properties\":{\"total\":120,\"sku\":\"A-1\"}},"
    "\"journey\":{\"name\":\"Cart\"},"
    "\"message\":{\"id\":\"00ab\",\"unsubscribe_url\":\"https://u.example/x\"}}";

#define NOW_US INT64_C(1774787696000000)   /* 2026-03-29T12:34:56Z */

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/jd-tpl-XXXXXX");
    assert_non_null(mkdtemp(dir));
    put(dir, "welcome.yaml",
        "id: welcome\n"
        "kind: email\n"
        "subject: \"Welcome, {{ profile.traits.first_name | default: 'there' }}\"\n"
        "text: |\n"
        "  Hi {{ profile.traits.first_name }},\n"
        "  your cart: {{ event.properties.total }} ({{ journey.name }})\n"
        "html: |\n"
        "  <p>Hi {{ profile.traits.first_name }}, <a href=\"{{ message.unsubscribe_url }}\">unsubscribe</a></p>\n"
        "reply_to: help@acme.example\n"
        "from: \"Acme <news@acme.example>\"\n");
    put(dir, "cart_sms.yml",
        "id: cart_sms\nkind: sms\nbody: |\n  Your cart ({{ event.properties.sku }}) is waiting, {{ profile.traits.first_name }}\n");
    put(dir, "push.yaml",
        "id: nudge\n"
        "kind: push\n"
        "title: Come back\n"
        "body: \"{{ profile.traits.first_name }}, one click\"\n"
        "data:\n"
        "  url: \"https://app.example/c/{{ event.properties.sku }}\"\n"
        "  total: \"{{ event.properties.total }}\"\n");
    put(dir, "slack.yaml",
        "id: sales_ping\n"
        "kind: slack\n"
        "text: \"New cart: {{ event.properties.total }}\"\n"
        "blocks: '[{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":\"{{ profile.traits.first_name }}\"}}]'\n");
    put(dir, "hook.yaml",
        "id: crm_sync\n"
        "kind: webhook\n"
        "to: \"{{ profile.traits.hook_url }}\"\n"
        "body: |\n"
        "  {\"email\": \"{{ profile.traits.email }}\", \"total\": {{ event.properties.total }},\n"
        "   \"at\": \"{{ 'now' | date: '%Y-%m-%dT%H:%M:%SZ' }}\", \"name\": \"{{ profile.traits.first_name }}\"}\n");
    put(dir, "README.md", "not a template\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_dir(dir);
    return 0;
}

static dlv_templates *load_ok(void)
{
    dlv_templates *s = NULL;
    jd_err err;
    jd_err_clear(&err);
    int rc = dlv_templates_load(dir, &s, &err);
    if (rc != JD_OK) fail_msg("%s: %s", err.where, err.msg);
    return s;
}

static struct json_object *vars(void)
{
    struct json_object *v = json_tokener_parse(vars_json);
    assert_non_null(v);
    return v;
}

static void test_load(void **state)
{
    (void)state;
    dlv_templates *s = load_ok();
    assert_int_equal(dlv_templates_count(s), 5);
    /* name order: cart_sms.yml, hook.yaml, push.yaml, slack.yaml, welcome.yaml */
    assert_string_equal(dlv_template_id(dlv_templates_at(s, 0)), "cart_sms");
    assert_string_equal(dlv_template_id(dlv_templates_at(s, 4)), "welcome");
    assert_null(dlv_templates_at(s, 5));
    char want[128];
    snprintf(want, sizeof want, "%s/welcome.yaml", dir);
    assert_string_equal(dlv_template_path(dlv_templates_find(s, "welcome")), want);
    assert_int_equal(dlv_template_kind(dlv_templates_find(s, "welcome")), DLV_EMAIL);
    assert_int_equal(dlv_template_kind(dlv_templates_find(s, "cart_sms")), DLV_SMS);
    assert_int_equal(dlv_template_kind(dlv_templates_find(s, "nudge")), DLV_PUSH);
    assert_int_equal(dlv_template_kind(dlv_templates_find(s, "sales_ping")), DLV_SLACK);
    assert_int_equal(dlv_template_kind(dlv_templates_find(s, "crm_sync")), DLV_WEBHOOK);
    assert_null(dlv_templates_find(s, "Welcome"));
    assert_null(dlv_templates_find(NULL, "welcome"));
    assert_int_equal(dlv_templates_count(NULL), 0);
    dlv_templates_destroy(s);

    /* a missing folder is none */
    s = NULL;
    jd_err err;
    assert_int_equal(dlv_templates_load("/nonexistent/templates", &s, &err), JD_OK);
    assert_int_equal(dlv_templates_count(s), 0);
    assert_null(dlv_templates_find(s, "welcome"));
    dlv_templates_destroy(s);
}

static void test_render_email(void **state)
{
    (void)state;
    dlv_templates *s = load_ok();
    struct json_object *v = vars();
    dlv_msg *m = dlv_msg_create(1, DLV_EMAIL, "email", NULL);
    jd_err err;
    int rc = dlv_render(dlv_templates_find(s, "welcome"), v, NOW_US, m, &err);
    if (rc != JD_OK) fail_msg("%s: %s", err.where, err.msg);
    assert_string_equal(m->to, "ada@example.com");
    assert_string_equal(m->email.subject, "Welcome, Ada <3");                     /* not escaped */
    assert_string_equal(m->email.text, "Hi Ada <3,\nyour cart: 120 (Cart)\n");    /* not escaped */
    assert_string_equal(m->email.html,
                        "<p>Hi Ada &lt;3, <a href=\"https://u.example/x\">unsubscribe</a></p>\n");   /* escaped */
    assert_string_equal(m->email.reply_to, "help@acme.example");
    assert_string_equal(m->email.from, "Acme <news@acme.example>");
    dlv_msg_destroy(m);

    /* a recipient already set is kept */
    m = dlv_msg_create(2, DLV_EMAIL, "email", "ops@acme.example");
    assert_int_equal(dlv_render(dlv_templates_find(s, "welcome"), v, NOW_US, m, &err), JD_OK);
    assert_string_equal(m->to, "ops@acme.example");
    dlv_msg_destroy(m);
    json_object_put(v);
    dlv_templates_destroy(s);
}

static void test_render_other_kinds(void **state)
{
    (void)state;
    dlv_templates *s = load_ok();
    struct json_object *v = vars();
    jd_err err;

    dlv_msg *m = dlv_msg_create(1, DLV_SMS, "sms", NULL);
    assert_int_equal(dlv_render(dlv_templates_find(s, "cart_sms"), v, NOW_US, m, &err), JD_OK);
    assert_string_equal(m->to, "+15005550006");
    assert_string_equal(m->sms.body, "Your cart (A-1) is waiting, Ada <3");   /* trimmed: no final newline */
    assert_null(m->sms.from);
    dlv_msg_destroy(m);

    m = dlv_msg_create(2, DLV_PUSH, "push", NULL);
    assert_int_equal(dlv_render(dlv_templates_find(s, "nudge"), v, NOW_US, m, &err), JD_OK);
    assert_string_equal(m->to, "tok1");
    assert_string_equal(m->push.title, "Come back");
    assert_string_equal(m->push.body, "Ada <3, one click");
    assert_string_equal(m->push.data_json, "{\"url\":\"https://app.example/c/A-1\",\"total\":\"120\"}");
    dlv_msg_destroy(m);

    m = dlv_msg_create(3, DLV_SLACK, "slack", NULL);
    assert_int_equal(dlv_render(dlv_templates_find(s, "sales_ping"), v, NOW_US, m, &err), JD_OK);
    assert_null(m->to);   /* the channel's URL */
    assert_string_equal(m->slack.text, "New cart: 120");
    assert_string_equal(m->slack.blocks_json,
                        "[{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":\"Ada <3\"}}]");
    dlv_msg_destroy(m);

    /* webhook: `to` renders empty (no hook_url trait): the channel's URL; date "now" is now_us */
    m = dlv_msg_create(4, DLV_WEBHOOK, "crm", NULL);
    int rc = dlv_render(dlv_templates_find(s, "crm_sync"), v, NOW_US, m, &err);
    if (rc != JD_OK) fail_msg("%s: %s", err.where, err.msg);
    assert_null(m->to);
    assert_string_equal(m->webhook.body_json,
                        "{\"email\": \"ada@example.com\", \"total\": 120,\n"
                        " \"at\": \"2026-03-29T12:34:56Z\", \"name\": \"Ada <3\"}");
    dlv_msg_destroy(m);

    /* ... and its override when the trait is there */
    struct json_object *tr = json_object_object_get(json_object_object_get(v, "profile"), "traits");
    json_object_object_add(tr, "hook_url", json_object_new_string("https://crm.example/h"));
    m = dlv_msg_create(5, DLV_WEBHOOK, "crm", NULL);
    assert_int_equal(dlv_render(dlv_templates_find(s, "crm_sync"), v, NOW_US, m, &err), JD_OK);
    assert_string_equal(m->to, "https://crm.example/h");
    dlv_msg_destroy(m);
    json_object_put(v);
    dlv_templates_destroy(s);
}

static void expect_render_err(const dlv_template *t, struct json_object *v, dlv_kind k, const char *where_suffix,
                              const char *msg)
{
    dlv_msg *m = dlv_msg_create(9, k, "x", NULL);
    jd_err err;
    jd_err_clear(&err);
    int rc = dlv_render(t, v, NOW_US, m, &err);
    char where[160];
    snprintf(where, sizeof where, "%s/%s", dir, where_suffix);
    if (rc != JD_EINVAL || strcmp(err.where, where) != 0 || strcmp(err.msg, msg) != 0)
        fail_msg("got rc %d %s: %s\nwant %s: %s", rc, err.where, err.msg, where, msg);
    /* m is unchanged on failure (invariant (2)) */
    assert_null(m->to);
    assert_null(m->email.subject);
    assert_null(m->webhook.body_json);
    dlv_msg_destroy(m);
}

static void test_render_errors(void **state)
{
    (void)state;
    dlv_templates *s = load_ok();
    struct json_object *v = json_tokener_parse(
        "{\"profile\":{\"traits\":{\"first_name\":\"Ada \\\"the\\\" Countess\"}},\"event\":{\"properties\":{\"total\":1}}}");
    /* no email trait: skipped by the engine */
    expect_render_err(dlv_templates_find(s, "welcome"), v, DLV_EMAIL, "welcome.yaml:1:1",
                      "no recipient: profile.traits.email is empty");
    expect_render_err(dlv_templates_find(s, "cart_sms"), v, DLV_SMS, "cart_sms.yml:1:1",
                      "no recipient: profile.traits.phone is empty");
    /* a quote in a trait breaks the webhook's JSON: named, with the field's position */
    expect_render_err(dlv_templates_find(s, "crm_sync"), v, DLV_WEBHOOK, "hook.yaml:4:7",
                      "template 'crm_sync' body: rendered text is not valid JSON (object value separator ',' expected at byte 71)");
    /* the wrong kind of message */
    expect_render_err(dlv_templates_find(s, "welcome"), v, DLV_SMS, "welcome.yaml:1:1",
                      "template 'welcome' is for email, the message is sms");
    json_object_put(v);
    dlv_templates_destroy(s);

    /* runtime errors of a template point into the file, inside the block */
    char d2[64];
    snprintf(d2, sizeof d2, "/tmp/jd-tpl2-XXXXXX");
    assert_non_null(mkdtemp(d2));
    put(d2, "div.yaml",
        "id: div\nkind: sms\nbody: |\n  first\n  total/0: {{ event.properties.total | divided_by: 0 }}\n");
    put(d2, "blocks.yaml", "id: blk\nkind: slack\nblocks: '{\"not\": \"an array\"}'\n");
    put(d2, "nowless.yaml", "id: when\nkind: slack\ntext: \"at {{ 'now' | date: '%Y' }}\"\n");
    dlv_templates *s2 = NULL;
    jd_err err;
    assert_int_equal(dlv_templates_load(d2, &s2, &err), JD_OK);
    v = json_tokener_parse("{\"profile\":{\"traits\":{\"phone\":\"+1555\"}},\"event\":{\"properties\":{\"total\":3}}}");
    dlv_msg *m = dlv_msg_create(1, DLV_SMS, "sms", NULL);
    assert_int_equal(dlv_render(dlv_templates_find(s2, "div"), v, NOW_US, m, &err), JD_EINVAL);
    char want[128];
    snprintf(want, sizeof want, "%s/div.yaml:5:40", d2);
    assert_string_equal(err.where, want);
    assert_string_equal(err.msg, "template 'div' body: divided by 0");
    dlv_msg_destroy(m);
    m = dlv_msg_create(2, DLV_SLACK, "slack", NULL);
    assert_int_equal(dlv_render(dlv_templates_find(s2, "blk"), v, NOW_US, m, &err), JD_EINVAL);
    assert_string_equal(err.msg, "template 'blk' blocks: rendered JSON is not an array");
    dlv_msg_destroy(m);
    /* now_us is the only time: a different record time, a different text */
    m = dlv_msg_create(3, DLV_SLACK, "slack", NULL);
    assert_int_equal(dlv_render(dlv_templates_find(s2, "when"), v, INT64_C(946684800000000), m, &err), JD_OK);
    assert_string_equal(m->slack.text, "at 2000");
    dlv_msg_destroy(m);
    json_object_put(v);
    dlv_templates_destroy(s2);
    rm_dir(d2);
}

static void test_load_errors(void **state)
{
    (void)state;
    char d[64];
    snprintf(d, sizeof d, "/tmp/jd-tpl3-XXXXXX");
    assert_non_null(mkdtemp(d));
    /* bad Liquid inside a block scalar: the file's line and column */
    put(d, "a_liquid.yaml",
        "id: bad_liquid\nkind: email\nsubject: Hi\ntext: |\n  line one\n  Hello {{ profile.traits.first_name | upcas }}\n");
    /* ... inside a one-line quoted scalar */
    put(d, "b_inline.yaml", "id: b_inline\nkind: email\ntext: x\nsubject: \"Hi {{ name | nope }}\"\n");
    /* ... inside a folded scalar: the field's position and the template's own */
    put(d, "c_folded.yaml", "id: c_folded\nkind: sms\nbody: >\n  Hi\n  {{ x | nope }}\n");
    put(d, "d_field.yaml", "id: d_field\nkind: sms\nbody: hi\nsubject: no\n");
    put(d, "e_subject.yaml", "id: e_subject\nkind: email\ntext: hi\n");
    put(d, "f_kind.yaml", "id: f_kind\nkind: fax\nbody: hi\n");
    put(d, "g_dup.yaml", "kind: sms\nbody: hi\nid: bad_liquid2\n");
    put(d, "h_dup.yaml", "kind: sms\nbody: hi\nid: bad_liquid2\n");
    put(d, "i_noid.yaml", "kind: sms\nbody: hi\n");
    put(d, "j_webhook.yaml", "id: j\nkind: webhook\nto: https://x\n");
    put(d, "k_data.yaml", "id: k\nkind: push\ndata: [a]\n");
    put(d, "l_empty.yaml", "id: l\nkind: sms\nbody: ''\n");
    put(d, "m_yaml.yaml", "id: m\nkind: sms\n  body: x\n");
    put(d, "n_any.yaml", "id: n\nkind: slack\nto: https://x\n");
    put(d, "o_unclosed.yaml", "id: o\nkind: email\nsubject: hi\nhtml: |\n  <p>\n    {% if x %}\n  </p>\n");
    dlv_templates *s = (dlv_templates *)1;
    jd_err err;
    jd_buf diags;
    jd_buf_init(&diags, SIZE_MAX);
    int rc = dlv_templates_load_all(d, &s, &diags, &err);
    assert_int_equal(rc, JD_EINVAL);
    assert_null(s);
    char want[4096];
#define D "%1$s/"
    snprintf(want, sizeof want,
             D "a_liquid.yaml:6:40: error: text: unknown filter 'upcas'\n"
             D "b_inline.yaml:4:24: error: subject: unknown filter 'nope'\n"
             D "c_folded.yaml:3:7: error: body (at 1:11 of the template): unknown filter 'nope'\n"
             D "d_field.yaml:4:1: error: subject: unknown field for an sms template (id, kind, to, from, body)\n"
             D "e_subject.yaml:1:1: error: subject: required in an email template\n"
             D "f_kind.yaml:2:7: error: kind: expected email, sms, push, slack or webhook, got 'fax'\n"
             D "h_dup.yaml:3:5: error: id: 'bad_liquid2' is also the id of " D "g_dup.yaml\n"
             D "i_noid.yaml:1:1: error: id: required (what send nodes name: template: ID)\n"
             D "j_webhook.yaml:1:1: error: body: required in a webhook template\n"
             D "k_data.yaml:3:7: error: data: expected a map of KEY: template, like { url: \"https://...\" }\n"
             D "l_empty.yaml:3:7: error: body: must not be empty\n"
             D "m_yaml.yaml:3:7: error: mapping values are not allowed in this context\n"
             D "n_any.yaml:1:1: error: text or blocks: a slack template needs at least one of them\n"
             D "o_unclosed.yaml:8:3: error: html: expected 'endif' to close 'if' opened at 6:5\n",
             d);
#undef D
    if (strcmp(diags.data, want) != 0) {
        fprintf(stderr, "got:\n%s\nwant:\n%s", diags.data, want);
        fail();
    }
    /* err is the first */
    char w1[128];
    snprintf(w1, sizeof w1, "%s/a_liquid.yaml:6:40", d);
    assert_string_equal(err.where, w1);
    assert_string_equal(err.msg, "text: unknown filter 'upcas'");
    jd_buf_release(&diags);
    rm_dir(d);
}

/* templates/ has every template the example journeys' send nodes name, of
 * their channel's kind (in_app: a webhook to the app's inbox). Run from the
 * repository's root, as tools/run-tests does. */
static void test_examples(void **state)
{
    (void)state;
    static const struct { const char *id; dlv_kind kind; } want[] = {
        { "trial_welcome", DLV_EMAIL }, { "tip_invite_teammates", DLV_EMAIL },
        { "nudge_pick_up_where_you_left", DLV_EMAIL }, { "nudge_one_click_login", DLV_PUSH },
        { "tip_reports_video", DLV_EMAIL }, { "nudge_whats_blocking_you", DLV_EMAIL },
        { "trial_ending_offer_extension", DLV_EMAIL }, { "cart_reminder_a", DLV_EMAIL },
        { "cart_reminder_b", DLV_SMS }, { "cart_discount_10", DLV_EMAIL }, { "cart_last_reminder", DLV_EMAIL },
        { "churn_check_in", DLV_EMAIL }, { "churn_tip_saved_reports", DLV_EMAIL },
        { "churn_save_offer_20", DLV_EMAIL }, { "churn_feedback_survey", DLV_WEBHOOK },
    };
    if (access("templates/trial_welcome.yaml", R_OK) != 0) skip();
    dlv_templates *s = NULL;
    jd_err err;
    int rc = dlv_templates_load("templates", &s, &err);
    if (rc != JD_OK) fail_msg("%s: %s", err.where, err.msg);
    assert_int_equal(dlv_templates_count(s), JD_ARRAY_LEN(want));
    struct json_object *v = json_tokener_parse(
        "{\"profile\":{\"userId\":\"u1\",\"traits\":{\"first_name\":\"Ada\",\"email\":\"ada@example.com\","
        "\"phone\":\"+15005550006\",\"push_token\":\"tok\",\"plan\":\"pro\"}},"
        "\"event\":{\"properties\":{\"cart_value\":129.5}},\"journey\":{\"id\":\"j\"},\"message\":{\"id\":\"00ab\"}}");
    for (size_t i = 0; i < JD_ARRAY_LEN(want); i++) {
        const dlv_template *t = dlv_templates_find(s, want[i].id);
        if (!t) fail_msg("templates/ has no '%s'", want[i].id);
        assert_int_equal(dlv_template_kind(t), want[i].kind);
        dlv_msg *m = dlv_msg_create(i, want[i].kind, "c", NULL);
        rc = dlv_render(t, v, NOW_US, m, &err);
        if (rc != JD_OK) fail_msg("%s: %s", err.where, err.msg);
        dlv_msg_destroy(m);
    }
    dlv_msg *m = dlv_msg_create(1, DLV_EMAIL, "email", NULL);
    assert_int_equal(dlv_render(dlv_templates_find(s, "cart_reminder_a"), v, NOW_US, m, &err), JD_OK);
    assert_non_null(strstr(m->email.text, "Your cart ($129.50) is saved"));
    dlv_msg_destroy(m);
    json_object_put(v);
    dlv_templates_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_render_email),
        cmocka_unit_test(test_render_other_kinds),
        cmocka_unit_test(test_render_errors),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_examples),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
