/* tests/unit/journey/test_doc.c -- jrn_doc_parse: what a good document compiles
 * to, the canonical JSON round trip, the environment (channels, templates), the
 * positions of expression errors, and the ceilings. The exact wording of each
 * diagnostic is fixed by the golden files (test_cases.c). Run from the repository root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "journeyd/base.h"
#include "journeyd/journey.h"

/* Parses text; returns the doc (or NULL) and leaves the formatted diagnostics in *diag_text (owned). */
static jrn_doc *parse_env(const char *text, const jrn_env *env, char **diag_text)
{
    jrn_diags diags = { 0 };
    jrn_doc *doc = NULL;
    int rc = jrn_doc_parse("t.yaml", text, strlen(text), env, &doc, &diags);
    jd_buf b;
    jd_buf_init(&b, 1u << 22);
    jrn_diags_format(&diags, &b);
    assert_true((rc == JD_OK) == (doc != NULL));
    assert_true((rc == JD_OK) == (diags.n == 0));
    jrn_diags_release(&diags);
    if (diag_text)
        *diag_text = jd_buf_detach(&b, NULL);
    else
        jd_buf_release(&b);
    return doc;
}

static jrn_doc *parse_ok(const char *text)
{
    char *d = NULL;
    jrn_doc *doc = parse_env(text, NULL, &d);
    if (!doc) fprintf(stderr, "%s", d ? d : "");
    free(d);
    assert_non_null(doc);
    return doc;
}

/* The diagnostics for text, as `journeyd validate` prints them. Owned. */
static char *parse_bad(const char *text)
{
    char *d = NULL;
    jrn_doc *doc = parse_env(text, NULL, &d);
    assert_null(doc);
    assert_non_null(d);
    return d;
}

static void assert_diags(const char *text, const char *expected)
{
    char *d = parse_bad(text);
    if (strcmp(d, expected) != 0) fprintf(stderr, "--- expected\n%s--- got\n%s", expected, d);
    assert_string_equal(d, expected);
    free(d);
}

static char *read_example(const char *path)
{
    char *text = NULL;
    size_t n = 0;
    jd_err err;
    assert_int_equal(jd_read_file(path, 1u << 20, &text, &n, &err), JD_OK);
    return text;
}

static void test_cart_example_compiles(void **state)
{
    (void)state;
    char *text = read_example("journeys/cart-abandonment.yaml");
    jrn_doc *d = parse_ok(text);
    assert_string_equal(d->id, "cart-abandonment");
    assert_int_equal(d->entry.kind, JRN_ENTRY_EVENT);
    assert_string_equal(d->entry.event, "Cart Updated");
    assert_non_null(d->entry.when);
    assert_int_equal(d->reentry, JRN_REENTRY_COOLDOWN);
    assert_true(d->cooldown_us == 7 * JD_DAY);
    assert_false(d->allow_concurrent);
    assert_true(d->goal.present);
    assert_string_equal(d->goal.event, "Order Completed");
    assert_true(d->goal.within_us == 7 * JD_DAY);
    assert_int_equal(d->nexits, 1);
    assert_int_equal(d->exits[0].action, JRN_EXIT_END);
    assert_null(d->exits[0].event);
    assert_non_null(d->exits[0].when);

    const jrn_node *g = &d->nodes[d->start];
    assert_string_equal(g->id, "grace_period");
    assert_int_equal(g->kind, JRN_WAIT);
    assert_int_equal(g->u.wait.kind, JRN_WAIT_EVENT);
    assert_string_equal(g->u.wait.event, "Order Completed");
    assert_true(g->u.wait.timeout_us == JD_HOUR);
    assert_string_equal(d->nodes[g->next].id, "completed");
    assert_string_equal(d->nodes[g->u.wait.timeout_next].id, "reminder_test");

    const jrn_node *s = jrn_doc_node(d, "reminder_test");
    assert_non_null(s);
    assert_int_equal(s->kind, JRN_SPLIT);
    assert_int_equal(s->u.split.nvariants, 3);
    assert_int_equal(s->u.split.total_weight, 100);
    assert_true(s->u.split.variants[2].control);
    assert_string_equal(s->u.split.variants[2].name, "holdout");
    assert_int_equal(s->u.split.variants[2].next, JRN_NONE);
    assert_string_equal(d->nodes[s->u.split.variants[0].next].id, "reminder_email");

    const jrn_node *m = jrn_doc_node(d, "next_morning");
    assert_int_equal(m->u.wait.kind, JRN_WAIT_UNTIL);
    assert_int_equal(m->u.wait.hour, 9);
    assert_int_equal(m->u.wait.minute, 30);
    assert_int_equal(m->u.wait.weekdays, 0);
    assert_string_equal(m->u.wait.zone_trait, "timezone");
    assert_string_equal(m->u.wait.default_zone, "America/New_York");

    const jrn_node *b = jrn_doc_node(d, "sms_ok");
    assert_int_equal(b->kind, JRN_BRANCH);
    assert_int_equal(b->u.branch.narms, 1);
    assert_string_equal(d->nodes[b->u.branch.else_next].id, "reminder_email");

    const jrn_node *last = jrn_doc_node(d, "last_reminder");
    assert_int_equal(last->next, JRN_NONE);   /* no next: the journey ends after it */
    assert_string_equal(last->u.send.channel, "email");
    assert_string_equal(last->u.send.category, "marketing");
    assert_null(jrn_doc_node(d, "nope"));
    for (uint32_t i = 0; i < d->nnodes; i++) assert_int_equal(d->nodes[i].index, i);
    jrn_doc_destroy(d);
    free(text);
}

static void test_churn_example_pauses_on_tickets(void **state)
{
    (void)state;
    char *text = read_example("journeys/churn-prevention.yaml");
    jrn_doc *d = parse_ok(text);
    assert_int_equal(d->entry.kind, JRN_ENTRY_SEGMENT_ENTER);
    assert_string_equal(d->entry.segment, "churn-risk");
    assert_int_equal(d->exits[0].action, JRN_EXIT_PAUSE);
    assert_string_equal(d->exits[0].event, "Ticket Opened");
    assert_string_equal(d->exits[0].resume_event, "Ticket Closed");
    const jrn_node *w = jrn_doc_node(d, "check_in");
    assert_int_equal(w->u.wait.weekdays, (1 << 2) | (1 << 3) | (1 << 4));   /* tue, wed, thu */
    const jrn_node *u = jrn_doc_node(d, "flag");
    assert_int_equal(u->kind, JRN_UPDATE);
    assert_int_equal(u->u.update.nops, 2);
    assert_int_equal(u->u.update.nadd, 1);
    assert_string_equal(u->u.update.add_tags[0], "churn-risk");
    jrn_doc_destroy(d);
    free(text);
}

static void test_defaults(void **state)
{
    (void)state;
    jrn_doc *d = parse_ok("id: x\nentry: { event: A }\nnodes:\n  first:\n    wait: { until: '07:05' }\n"
                          "    next: second\n  second:\n    exit:\n");
    assert_int_equal(d->reentry, JRN_REENTRY_NEVER);
    assert_false(d->allow_concurrent);
    assert_false(d->goal.present);
    assert_int_equal(d->nexits, 0);
    assert_int_equal(d->start, 0);   /* the first node */
    assert_string_equal(d->source_name, "t.yaml");
    assert_string_equal(d->nodes[0].u.wait.zone_trait, "timezone");
    assert_string_equal(d->nodes[0].u.wait.default_zone, "UTC");
    assert_int_equal(d->nodes[0].u.wait.hour, 7);
    assert_int_equal(d->nodes[0].u.wait.minute, 5);
    assert_int_equal(d->nodes[1].kind, JRN_EXIT);
    assert_null(d->nodes[1].u.exit.reason);
    assert_int_equal(d->nodes[1].line, 7);
    assert_int_equal(d->nodes[1].col, 3);
    jrn_doc_destroy(d);
}

/* to_json gives the input's shape: parsing it back gives the same JSON. */
static void round_trip(const char *path)
{
    char *text = read_example(path);
    jrn_doc *d = parse_ok(text);
    jd_buf a, b;
    jd_buf_init(&a, 1u << 20);
    jd_buf_init(&b, 1u << 20);
    assert_int_equal(jrn_doc_to_json(d, &a), JD_OK);
    jrn_doc *d2 = parse_ok(a.data);
    assert_int_equal(jrn_doc_to_json(d2, &b), JD_OK);
    assert_string_equal(a.data, b.data);
    assert_int_equal(d2->nnodes, d->nnodes);
    assert_int_equal(d2->start, d->start);
    jrn_doc_destroy(d2);
    jrn_doc_destroy(d);
    jd_buf_release(&a);
    jd_buf_release(&b);
    free(text);
}

static void test_json_round_trip(void **state)
{
    (void)state;
    round_trip("journeys/cart-abandonment.yaml");
    round_trip("journeys/onboarding-trial.yaml");
    round_trip("journeys/churn-prevention.yaml");
    round_trip("tests/cases/journey/good-loops.yaml");
    round_trip("tests/cases/journey/good-json.yaml");
}

static void test_json_shape(void **state)
{
    (void)state;
    jrn_doc *d = parse_ok("id: j\nentry: { api: true }\nnodes:\n  w:\n    wait: 90m\n    next: s\n"
                          "  s:\n    send: { channel: sms, template: t }\n");
    jd_buf b;
    jd_buf_init(&b, 1u << 16);
    assert_int_equal(jrn_doc_to_json(d, &b), JD_OK);
    assert_string_equal(b.data,
                        "{\"id\":\"j\",\"entry\":{\"api\":true},\"reentry\":\"never\",\"concurrent\":false,"
                        "\"start\":\"w\",\"nodes\":{\"w\":{\"wait\":\"1h30m\",\"next\":\"s\"},"
                        "\"s\":{\"send\":{\"channel\":\"sms\",\"template\":\"t\",\"category\":\"marketing\"}}}}");
    jd_buf small;
    jd_buf_init(&small, 10);
    assert_int_equal(jrn_doc_to_json(d, &small), JD_ELIMIT);
    assert_int_equal(small.len, 0);
    jd_buf_release(&small);
    jd_buf_release(&b);
    jrn_doc_destroy(d);
}

/* Exit rules, waits and the goal on segment changes: stored as segment event
 * names, written back in the same shape, checked against the segments the
 * environment knows, and every problem at once. */
static bool only_pro(const void *self, const char *id)
{
    int *calls = (int *)self;
    ++*calls;
    return strcmp(id, "pro") == 0;
}

static void test_segment_refs(void **state)
{
    (void)state;
    static const char text[] =
        "id: s\nentry: { event: Go }\n"
        "exits:\n  - segment_exit: pro\n  - segment_enter: pro\n    when: \"event.segment == 'pro'\"\n    action: pause\n    resume_on: Back\n"
        "goal: { segment_enter: pro, within: 7d }\n"
        "nodes:\n  w:\n    wait: { segment_enter: pro, timeout: 1d }\n    next: s\n    on_timeout: s\n"
        "  s: { send: { channel: email, template: t } }\n";
    jrn_doc *d = parse_ok(text);
    char name[JRN_SEGMENT_EVENT_MAX];
    bool enter = false;
    assert_string_equal(d->exits[0].event, jrn_segment_event_name(name, "pro", false));
    assert_string_equal(jrn_segment_event_parse(d->exits[0].event, &enter), "pro");
    assert_false(enter);
    assert_string_equal(jrn_segment_event_parse(d->exits[1].event, &enter), "pro");
    assert_true(enter);
    assert_string_equal(d->goal.event, jrn_segment_event_name(name, "pro", true));
    assert_int_equal(d->nodes[0].u.wait.kind, JRN_WAIT_EVENT);
    assert_string_equal(d->nodes[0].u.wait.event, name);
    assert_null(jrn_segment_event_parse("Order Completed", &enter));
    jd_buf b;
    jd_buf_init(&b, 1u << 16);
    assert_int_equal(jrn_doc_to_json(d, &b), JD_OK);
    assert_non_null(strstr(b.data, "\"exits\":[{\"segment_exit\":\"pro\",\"action\":\"end\"},{\"segment_enter\":\"pro\",\"when\":"));
    assert_non_null(strstr(b.data, "\"goal\":{\"segment_enter\":\"pro\",\"within\":\"7d\"}"));
    assert_non_null(strstr(b.data, "\"w\":{\"wait\":{\"segment_enter\":\"pro\",\"timeout\":\"1d\"},\"on_timeout\":\"s\",\"next\":\"s\"}"));
    jrn_doc *again = parse_ok(b.data);   /* the canonical JSON parses back to the same */
    jd_buf b2;
    jd_buf_init(&b2, 1u << 16);
    assert_int_equal(jrn_doc_to_json(again, &b2), JD_OK);
    assert_string_equal(b.data, b2.data);
    jd_buf_release(&b2);
    jd_buf_release(&b);
    jrn_doc_destroy(again);
    jrn_doc_destroy(d);

    /* with an environment that knows the segments: unknown ones are errors, all at once */
    int calls = 0;
    jrn_env env = *jrn_env_default();
    env.segment_exists = only_pro;
    env.seg_self = &calls;
    char *diag = NULL;
    jrn_doc *ok = parse_env(text, &env, &diag);
    assert_non_null(ok);
    assert_int_equal(calls, 4);
    jrn_doc_destroy(ok);
    free(diag);
    assert_null(parse_env("id: s\nentry: { segment_enter: vip }\nexits:\n  - segment_exit: vip\n"
                          "goal: { segment_enter: gold }\nnodes:\n  w:\n    wait: { segment_exit: pro }\n",
                          &env, &diag));
    assert_string_equal(diag, "t.yaml:4:19: unknown segment 'vip' in 'segment_exit' (define the segment first)\n"
                              "t.yaml:5:24: unknown segment 'gold' in 'segment_enter' (define the segment first)\n");
    free(diag);

    /* shapes */
    assert_diags("id: s\nentry: { event: Go }\nexits:\n  - { event: A, segment_exit: pro }\n"
                 "nodes:\n  w:\n    wait: { event: B, segment_enter: pro, until: \"09:00\" }\n",
                 "t.yaml:4:31: an exit rule takes one of event, segment_enter or segment_exit, not both 'event' and 'segment_exit'\n"
                 "t.yaml:7:38: node 'w': a wait takes one of event, segment_enter or segment_exit, not both 'event' and 'segment_enter'\n"
                 "t.yaml:7:50: node 'w': a wait takes 'event' (or a segment) or 'until', not both\n");
    assert_diags("id: s\nentry: { event: Go }\nexits:\n  - segment_enter: not a segment\n"
                 "goal: { within: 1d }\nnodes:\n  w: { wait: { event: \"\\x01segment_enter:pro\" } }\n",
                 "t.yaml:4:20: bad segment_enter 'not a segment': use 1 to 64 letters, digits, '_' or '-'\n"
                 "t.yaml:5:7: 'goal' needs 'event' (the conversion event), 'segment_enter' or 'segment_exit'\n"
                 "t.yaml:7:23: node 'w': 'event' cannot start with the byte 0x01 (it marks segment changes)\n");
    /* a segment wait goes on at once when the change already holds: its next
     * edge does not break a loop, its on_timeout edge does */
    assert_diags("id: s\nentry: { event: Go }\nnodes:\n  w:\n    wait: { segment_enter: pro, timeout: 1d }\n"
                 "    next: s\n    on_timeout: w\n  s:\n    send: { channel: email, template: t }\n    next: w\n",
                 "t.yaml:10:11: node 's': cycle without a wait: w -> s -> w (a segment wait goes on at once when already "
                 "true; put another wait in the loop)\n");
    jrn_doc_destroy(parse_ok("id: s\nentry: { event: Go }\nnodes:\n  w:\n    wait: { segment_exit: pro, timeout: 1d }\n"
                             "    next: x\n    on_timeout: s\n  s:\n    send: { channel: email, template: t }\n    next: w\n"
                             "  x: { exit: }\n"));
}

static bool only_welcome(void *self, const char *channel, const char *name)
{
    int *calls = self;
    ++*calls;
    return strcmp(channel, "email") == 0 && strcmp(name, "welcome") == 0;
}

static void test_env_channels_and_templates(void **state)
{
    (void)state;
    static const char *const channels[] = { "email", "whatsapp" };
    int calls = 0;
    jrn_env env = { .channels = channels, .nchannels = 2, .template_exists = only_welcome, .self = &calls };
    const char *text = "id: e\nentry: { event: A }\nnodes:\n"
                       "  a:\n    send: { channel: email, template: welcome }\n    next: b\n"
                       "  b:\n    send: { channel: whatsapp, template: welcome }\n    next: c\n"
                       "  c:\n    send: { channel: sms, template: welcome }\n";
    char *d = NULL;
    assert_null(parse_env(text, &env, &d));
    assert_string_equal(d, "t.yaml:8:42: node 'b': unknown template 'welcome' for channel 'whatsapp'\n"
                           "t.yaml:11:22: node 'c': unknown channel 'sms' (known: email, whatsapp)\n");
    assert_int_equal(calls, 2);   /* not asked about an unknown channel */
    free(d);
    /* The default environment accepts any template and knows sms (not whatsapp). */
    jrn_doc *doc = parse_env("id: e\nentry: { event: A }\nnodes:\n  c:\n    send: { channel: sms, template: any }\n", NULL, NULL);
    assert_non_null(doc);
    jrn_doc_destroy(doc);
}

static void test_expression_positions(void **state)
{
    (void)state;
    /* plain, double-quoted, single-quoted with '' escapes, literal block, folded plain */
    assert_diags("id: p\nentry:\n  event: A\n  when: evnt.x == 1\nnodes:\n  a: { exit: }\n",
                 "t.yaml:4:9: in 'when': undeclared reference to 'evnt'\n");
    assert_diags("id: p\nentry:\n  event: A\n  when: \"1 == 1 && evnt.x\"\nnodes:\n  a: { exit: }\n",
                 "t.yaml:4:20: in 'when': undeclared reference to 'evnt'\n");
    assert_diags("id: p\nentry:\n  event: A\n  when: 'event.a == ''x'' && evnt'\nnodes:\n  a: { exit: }\n",
                 "t.yaml:4:30: in 'when': undeclared reference to 'evnt'\n");
    assert_diags("id: p\nentry:\n  event: A\n  when: |\n    event.a == 1 &&\n      evnt.b\nnodes:\n  a: { exit: }\n",
                 "t.yaml:6:7: in 'when': undeclared reference to 'evnt'\n");
    assert_diags("id: p\nentry:\n  event: A\n  when: event.a == 1 &&\n     evnt.b\nnodes:\n  a: { exit: }\n",
                 "t.yaml:5:6: in 'when': undeclared reference to 'evnt'\n");
    /* non-ASCII before the error: columns count characters, as libyaml does */
    assert_diags("id: p\nentry:\n  event: A\n  when: \"'é' == 'é' && evnt\"\nnodes:\n  a: { exit: }\n",
                 "t.yaml:4:24: in 'when': undeclared reference to 'evnt'\n");
}

static void test_too_many_nodes(void **state)
{
    (void)state;
    jd_buf b;
    jd_buf_init(&b, 1u << 20);
    jd_buf_adds(&b, "id: big\nentry: { api: true }\nnodes:\n");
    for (int i = 0; i < 501; i++) jd_buf_addf(&b, "  n%d: { wait: 1d, next: n%d }\n", i, i + 1 < 501 ? i + 1 : 0);
    char *d = parse_bad(b.data);
    assert_string_equal(d, "t.yaml:4:3: too many nodes: 501 (at most 500)\n");
    free(d);
    /* 500 is fine: a ring of waits */
    jd_buf_reset(&b);
    jd_buf_adds(&b, "id: big\nentry: { api: true }\nnodes:\n");
    for (int i = 0; i < 500; i++) jd_buf_addf(&b, "  n%d: { wait: 1d, next: n%d }\n", i, i + 1 < 500 ? i + 1 : 0);
    jrn_doc *doc = parse_ok(b.data);
    assert_int_equal(doc->nnodes, 500);
    jrn_doc_destroy(doc);
    jd_buf_release(&b);
}

static void test_long_busy_cycle(void **state)
{
    (void)state;
    jd_buf b;
    jd_buf_init(&b, 1u << 20);
    jd_buf_adds(&b, "id: ring\nentry: { api: true }\nnodes:\n");
    for (int i = 0; i < 400; i++)
        jd_buf_addf(&b, "  a_rather_long_node_name_%d: { update: { add_tags: [t] }, next: a_rather_long_node_name_%d }\n", i,
                    (i + 1) % 400);
    char *d = parse_bad(b.data);
    assert_non_null(strstr(d, "t.yaml:403:"));
    assert_non_null(strstr(d, "cycle without a wait: a_rather_long_node_name_0 -> a_rather_long_node_name_1 -> "));
    assert_non_null(strstr(d, " ... (put a wait node in the loop)\n"));
    size_t lines = 0;
    for (const char *p = d; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 1);   /* one cycle, reported once */
    free(d);
    jd_buf_release(&b);
}

static void test_diagnostics_capped(void **state)
{
    (void)state;
    jd_buf b;
    jd_buf_init(&b, 1u << 20);
    jd_buf_adds(&b, "id: noisy\nentry: { api: true }\n");
    for (int i = 0; i < 130; i++) jd_buf_addf(&b, "junk%d: 1\n", i);
    jd_buf_adds(&b, "nodes:\n  a: { exit: }\n");
    jrn_diags diags = { 0 };
    jrn_doc *doc = NULL;
    assert_int_equal(jrn_doc_parse("t.yaml", b.data, b.len, NULL, &doc, &diags), JD_EINVAL);
    assert_int_equal(diags.n, 101);
    assert_string_equal(diags.v[0].where, "t.yaml:3:1");
    assert_string_equal(diags.v[100].where, "t.yaml");
    assert_string_equal(diags.v[100].msg, "too many errors: 30 more not shown");
    jrn_diags_release(&diags);
    jd_buf_release(&b);
}

static void test_diags_accumulate_across_files(void **state)
{
    (void)state;
    jrn_diags diags = { 0 };
    jrn_doc *doc = NULL;
    const char *bad1 = "id: X\nentry: { api: true }\nnodes: { a: { exit: } }\n";
    const char *bad2 = "nodes: { a: { wait: 1d, next: a } }\nid: y\n";
    assert_int_equal(jrn_doc_parse("one.yaml", bad1, strlen(bad1), NULL, &doc, &diags), JD_EINVAL);
    assert_int_equal(jrn_doc_parse("two.yaml", bad2, strlen(bad2), NULL, &doc, &diags), JD_EINVAL);
    jd_buf b;
    jd_buf_init(&b, 1u << 16);
    jrn_diags_format(&diags, &b);
    assert_string_equal(b.data,
                        "one.yaml:1:5: bad journey id 'X': use 1 to 64 lowercase letters, digits, '-' or '_'\n"
                        "two.yaml:1:1: missing 'entry' (how people enter: event, segment_enter, segment_exit or api)\n");
    jd_buf_release(&b);
    jrn_diags_release(&diags);
    assert_null(diags.v);
}

static void test_edge_inputs(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "", "   \n", "# only a comment\n", "null", "[]", "{}", "42", "\"text\"", "id: x\n---\nid: y\n",
        "a: &x 1\nb: *x\n", "{\"id\": \"x\", \"entry\": {\"api\": true}, \"nodes\": {\"a\": {\"exit\": {}}}",
        "id: x\nentry: { api: true }\nnodes:\n  a: { wait: { event: E, timeout: 1h }, on_timeout: [x] }\n",
        "id: x\nentry: { api: true }\nnodes:\n  a:\n    branch:\n      - 1\n      - { else: }\n",
        "id: x\nentry: { api: true }\nnodes:\n  a:\n    split:\n      - x\n      - { variant: [1] }\n",
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(inputs); i++) {
        char *d = parse_bad(inputs[i]);
        assert_true(strlen(d) > 0);
        for (char *line = d; *line;) {   /* every line is "t.yaml:L:C: ..." with L, C >= 1 */
            unsigned l = 0, c = 0;
            assert_int_equal(sscanf(line, "t.yaml:%u:%u:", &l, &c), 2);
            assert_true(l >= 1 && c >= 1);
            line = strchr(line, '\n') + 1;
        }
        free(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cart_example_compiles),
        cmocka_unit_test(test_churn_example_pauses_on_tickets),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_shape),
        cmocka_unit_test(test_segment_refs),
        cmocka_unit_test(test_env_channels_and_templates),
        cmocka_unit_test(test_expression_positions),
        cmocka_unit_test(test_too_many_nodes),
        cmocka_unit_test(test_long_busy_cycle),
        cmocka_unit_test(test_diagnostics_capped),
        cmocka_unit_test(test_diags_accumulate_across_files),
        cmocka_unit_test(test_edge_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
