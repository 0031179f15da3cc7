/* tests/unit/journey/test_host.c -- the journey runtime (include/journeyd/runtime.h):
 * the registry (src/journey/registry.c) and one partition's host
 * (src/journey/host.c, host_codec.c) driven the way a shard drives them, with
 * a real prof_store and a virtual clock: every time is an int64 the test
 * passes in, every record gets the next lsn. The host's callbacks are recorded
 * in arrays to assert on (the world of journey/world.h). No sleeps. Numbers
 * in comments, like "host (3)", are the invariants at the top of host.c.
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
#include "journeyd/expr.h"
#include "journeyd/ingest.h"
#include "journeyd/journey.h"
#include "journeyd/profile.h"
#include "journeyd/runtime.h"

#include "journey/world.h"

/* The index of `node` in version `version` of journey `id`. */
static uint32_t node_index(const world *w, const char *id, uint32_t version, const char *node)
{
    const jrn_journey *j = jrn_reg_find(w->reg, id);
    assert_non_null(j);
    const jrn_node *n = jrn_doc_node(j->versions[version - 1]->doc, node);
    assert_non_null(n);
    return n->index;
}

/* ---- documents ------------------------------------------------------------------ */

static const char *const doc_send =
    "id: hello\n"
    "entry: { event: Go }\n"
    "nodes:\n"
    "  hi:\n"
    "    send: { channel: email, template: hi }\n";

static const char *const doc_cart =
    "id: cart\n"
    "entry: { event: Cart Updated, when: \"event.properties.cart_value > 0.0\" }\n"
    "nodes:\n"
    "  grace:\n"
    "    wait: { event: Order Completed, timeout: 1h }\n"
    "    next: done\n"
    "    on_timeout: remind\n"
    "  done:\n"
    "    exit: { reason: ordered }\n"
    "  remind:\n"
    "    send: { channel: email, template: cart_reminder }\n";

static char *doc_wait(char *buf, size_t cap, const char *id, const char *wait, const char *node)
{
    snprintf(buf, cap,
             "id: %s\n"
             "entry: { event: Go }\n"
             "reentry: always\n"
             "nodes:\n"
             "  w:\n"
             "    wait: %s\n"
             "    next: %s\n"
             "  %s:\n"
             "    send: { channel: email, template: t }\n",
             id, wait, node, node);
    return buf;
}

/* ---- the registry ---------------------------------------------------------------- */

static int check(const jrn_reg *r, jrn_op op, const char *id, const char *text, jd_err *err)
{
    jrn_ctl c = { op, id, text, text ? strlen(text) : 0, NULL };
    jd_err_clear(err);
    return jrn_reg_check(r, &c, NULL, err);
}

static int apply(jrn_reg *r, jrn_op op, const char *id, const char *text, int64_t at, jd_err *err)
{
    jrn_ctl c = { op, id, text, text ? strlen(text) : 0, NULL };
    const jrn_journey *j = NULL;
    jrn_status was = 0;
    jd_err_clear(err);
    return jrn_reg_apply(r, &c, at, &j, &was, err);
}

static void test_registry_lifecycle(void **state)
{
    (void)state;
    jrn_reg *r = jrn_reg_create(NULL);
    jd_err err;
    const int64_t t = T0;

    assert_int_equal(apply(r, JRN_OP_DRAFT, "hello", doc_send, t, &err), JD_OK);
    const jrn_journey *j = jrn_reg_find(r, "hello");
    assert_non_null(j);
    assert_int_equal(j->status, JRN_DRAFT);
    assert_null(jrn_reg_live(j));
    json_object *o = jrn_reg_json(r, j, false);
    assert_string_equal(field(o, "source"), "api");   /* ctl source NULL: "api" */
    assert_string_equal(field(o, "status"), "draft");
    json_object_put(o);

    assert_int_equal(apply(r, JRN_OP_PUBLISH, "hello", NULL, t + 1, &err), JD_OK);   /* the draft */
    assert_int_equal(j->status, JRN_ACTIVE);
    assert_int_equal(j->nversions, 1);
    assert_int_equal(jrn_reg_live(j)->number, 1);
    assert_int_equal(jrn_reg_live(j)->published_us, t + 1);
    assert_null(j->draft);

    /* nothing to publish: the draft went into version 1 */
    assert_int_equal(check(r, JRN_OP_PUBLISH, "hello", NULL, &err), JD_EBUSY);
    assert_non_null(strstr(err.msg, "no draft"));

    assert_int_equal(apply(r, JRN_OP_PUBLISH, "hello", doc_send, t + 2, &err), JD_OK);   /* inline */
    assert_int_equal(j->nversions, 2);
    assert_int_equal(jrn_reg_live(j)->number, 2);
    assert_int_equal(j->versions[0]->number, 1);

    assert_int_equal(apply(r, JRN_OP_RESUME, "hello", NULL, t, &err), JD_EBUSY);
    assert_non_null(strstr(err.msg, "not paused"));
    assert_int_equal(apply(r, JRN_OP_PAUSE, "hello", NULL, t + 3, &err), JD_OK);
    assert_int_equal(j->status, JRN_PAUSED);
    assert_int_equal(apply(r, JRN_OP_PAUSE, "hello", NULL, t + 3, &err), JD_EBUSY);
    assert_int_equal(apply(r, JRN_OP_RESUME, "hello", NULL, t + 4, &err), JD_OK);
    assert_int_equal(j->status, JRN_ACTIVE);
    assert_int_equal(j->updated_us, t + 4);

    /* unknown ids */
    assert_int_equal(check(r, JRN_OP_PAUSE, "nope", NULL, &err), JD_ENOTFOUND);
    assert_int_equal(check(r, JRN_OP_RESUME, "nope", NULL, &err), JD_ENOTFOUND);
    assert_int_equal(check(r, JRN_OP_ARCHIVE, "nope", NULL, &err), JD_ENOTFOUND);
    assert_int_equal(check(r, JRN_OP_PUBLISH, "nope", NULL, &err), JD_ENOTFOUND);
    assert_int_equal(check(r, JRN_OP_PAUSE, "", NULL, &err), JD_EINVAL);

    /* the document's id must be the journey's */
    assert_int_equal(apply(r, JRN_OP_PUBLISH, "other", doc_send, t, &err), JD_EINVAL);
    assert_non_null(strstr(err.msg, "'hello'"));
    assert_null(jrn_reg_find(r, "other"));   /* on failure nothing changes */
    assert_int_equal(jrn_reg_count(r), 1);

    /* a document that does not compile: every problem in diags */
    jrn_diags diags = { 0 };
    jrn_ctl bad = { JRN_OP_DRAFT, "hello", "id: hello\nentry: { event: Go }\nnodes: {}\n", 40, NULL };
    bad.text_len = strlen(bad.text);
    jd_err_clear(&err);
    assert_int_equal(jrn_reg_check(r, &bad, &diags, &err), JD_EINVAL);
    assert_true(diags.n > 0);
    jrn_diags_release(&diags);
    assert_int_equal(j->nversions, 2);

    assert_int_equal(apply(r, JRN_OP_ARCHIVE, "hello", NULL, t + 5, &err), JD_OK);
    assert_int_equal(j->status, JRN_ARCHIVED);
    /* archived is final */
    assert_int_equal(apply(r, JRN_OP_PUBLISH, "hello", doc_send, t, &err), JD_EBUSY);
    assert_non_null(strstr(err.msg, "archived"));
    assert_int_equal(apply(r, JRN_OP_RESUME, "hello", NULL, t, &err), JD_EBUSY);
    assert_int_equal(apply(r, JRN_OP_DRAFT, "hello", doc_send, t, &err), JD_EBUSY);
    assert_int_equal(apply(r, JRN_OP_ARCHIVE, "hello", NULL, t, &err), JD_EBUSY);
    assert_int_equal(j->nversions, 2);

    jrn_op op;
    assert_int_equal(jrn_op_parse("resume", &op), JD_OK);
    assert_int_equal(op, JRN_OP_RESUME);
    assert_int_equal(jrn_op_parse("delete", &op), JD_EINVAL);
    assert_string_equal(jrn_status_name(JRN_PAUSED), "paused");
    jrn_reg_destroy(r);
}

static void assert_entries(const jrn_reg *r, const char *event, const char *want)
{
    size_t n = 0;
    const uint32_t *v = jrn_reg_entries_for(r, (jd_str){ event, (uint32_t)strlen(event) }, &n);
    char got[256] = "";
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(got);
        snprintf(got + len, sizeof got - len, "%s%s", i ? "," : "", jrn_reg_at(r, v[i])->id);
    }
    assert_string_equal(got, want);
}

static void test_registry_entries_for(void **state)
{
    (void)state;
    char a[512], b[512], c[512];
    jrn_reg *r = jrn_reg_create(NULL);
    jd_err err;
    assert_int_equal(apply(r, JRN_OP_PUBLISH, "a", doc_wait(a, sizeof a, "a", "1h", "s"), T0, &err), JD_OK);
    assert_int_equal(apply(r, JRN_OP_PUBLISH, "b", doc_wait(b, sizeof b, "b", "1h", "s"), T0, &err), JD_OK);
    assert_int_equal(apply(r, JRN_OP_DRAFT, "c", doc_wait(c, sizeof c, "c", "1h", "s"), T0, &err), JD_OK);
    assert_int_equal(apply(r, JRN_OP_PUBLISH, "hello", doc_send, T0, &err), JD_OK);
    assert_entries(r, "Go", "a,b,hello");
    assert_entries(r, "Stop", "");
    assert_int_equal(apply(r, JRN_OP_PAUSE, "a", NULL, T0, &err), JD_OK);
    assert_entries(r, "Go", "b,hello");
    assert_int_equal(apply(r, JRN_OP_ARCHIVE, "b", NULL, T0, &err), JD_OK);
    assert_entries(r, "Go", "hello");
    assert_int_equal(apply(r, JRN_OP_RESUME, "a", NULL, T0, &err), JD_OK);
    assert_entries(r, "Go", "a,hello");
    assert_int_equal(apply(r, JRN_OP_PUBLISH, "c", NULL, T0, &err), JD_OK);   /* the draft goes live */
    assert_entries(r, "Go", "a,c,hello");
    /* a new version with another entry event moves the journey */
    assert_int_equal(apply(r, JRN_OP_PUBLISH, "hello", "id: hello\nentry: { event: Wave }\nnodes:\n  x:\n    exit: {}\n", T0,
                           &err), JD_OK);
    assert_entries(r, "Go", "a,c");
    assert_entries(r, "Wave", "hello");
    jrn_reg_destroy(r);
}

static void test_registry_codec(void **state)
{
    (void)state;
    char a[512];
    jrn_reg *r = jrn_reg_create(NULL), *r2 = jrn_reg_create(NULL);
    jd_err err;
    jrn_ctl c = { JRN_OP_PUBLISH, "cart", doc_cart, strlen(doc_cart), "journeys/cart.yaml" };
    const jrn_journey *j;
    jrn_status was;
    assert_int_equal(jrn_reg_apply(r, &c, T0, &j, &was, &err), JD_OK);
    assert_int_equal(apply(r, JRN_OP_PUBLISH, "cart", doc_cart, T0 + HOUR, &err), JD_OK);
    assert_int_equal(apply(r, JRN_OP_PAUSE, "cart", NULL, T0 + 2 * HOUR, &err), JD_OK);
    assert_int_equal(apply(r, JRN_OP_DRAFT, "cart", doc_cart, T0 + 3 * HOUR, &err), JD_OK);
    assert_int_equal(apply(r, JRN_OP_DRAFT, "a", doc_wait(a, sizeof a, "a", "1h", "s"), T0, &err), JD_OK);
    assert_int_equal(apply(r, JRN_OP_PUBLISH, "hello", doc_send, T0, &err), JD_OK);
    assert_int_equal(apply(r, JRN_OP_ARCHIVE, "hello", NULL, T0 + DAY, &err), JD_OK);
    assert_int_equal(apply(r, JRN_OP_PUBLISH, "a", doc_wait(a, sizeof a, "a", "2h", "s"), T0, &err), JD_OK);

    jd_buf b1, b2;
    jd_buf_init(&b1, 1u << 24);
    jd_buf_init(&b2, 1u << 24);
    assert_int_equal(jrn_reg_encode(r, &b1), JD_OK);
    assert_int_equal(jrn_reg_decode(r2, b1.data, b1.len, &err), JD_OK);
    assert_int_equal(jrn_reg_count(r2), jrn_reg_count(r));
    for (uint32_t i = 0; i < jrn_reg_count(r); i++) {
        const jrn_journey *x = jrn_reg_at(r, i), *y = jrn_reg_at(r2, i);
        assert_string_equal(x->id, y->id);
        assert_int_equal(y->index, i);
        assert_int_equal(x->status, y->status);
        assert_int_equal(x->nversions, y->nversions);
        assert_int_equal(x->created_us, y->created_us);
        assert_int_equal(x->updated_us, y->updated_us);
        assert_string_equal(x->source ? x->source : "(none)", y->source ? y->source : "(none)");
        assert_string_equal(x->draft ? x->draft : "(none)", y->draft ? y->draft : "(none)");
        for (uint32_t k = 0; k < x->nversions; k++) {
            assert_int_equal(y->versions[k]->number, k + 1);
            assert_string_equal(x->versions[k]->text, y->versions[k]->text);
            assert_int_equal(x->versions[k]->published_us, y->versions[k]->published_us);
            assert_int_equal(x->versions[k]->doc->nnodes, y->versions[k]->doc->nnodes);
        }
    }
    assert_int_equal(jrn_reg_find(r2, "cart")->status, JRN_PAUSED);
    assert_int_equal(jrn_reg_find(r2, "cart")->nversions, 2);
    assert_string_equal(jrn_reg_find(r2, "cart")->source, "journeys/cart.yaml");
    assert_int_equal(jrn_reg_find(r2, "hello")->status, JRN_ARCHIVED);
    assert_entries(r2, "Go", "a");
    assert_entries(r2, "Cart Updated", "");
    /* the same bytes again */
    assert_int_equal(jrn_reg_encode(r2, &b2), JD_OK);
    assert_int_equal(b1.len, b2.len);
    assert_memory_equal(b1.data, b2.data, b1.len);
    /* disk is input */
    jrn_reg *r3 = jrn_reg_create(NULL);
    assert_int_equal(jrn_reg_decode(r3, "{}", 2, &err), JD_ECORRUPT);
    jrn_reg_destroy(r3);
    jd_buf_release(&b1);
    jd_buf_release(&b2);
    jrn_reg_destroy(r);
    jrn_reg_destroy(r2);
}

/* ---- the host: entries ------------------------------------------------------------ */

static void test_entry_condition(void **state)
{
    (void)state;
    world w;
    world_init(&w, T0);
    publish(&w, "cart", doc_cart, T0);
    track(&w, "a", "Cart Updated", "{\"cart_value\":0.0}", T0 + MIN);   /* when is false */
    track(&w, "b", "Cart Updated", "{\"cart_value\":5.0}", T0 + MIN);
    track(&w, "c", "Page Viewed", "{\"cart_value\":5.0}", T0 + MIN);    /* another event */
    assert_int_equal(jrn_host_instances(w.h), 1);
    assert_int_equal(jrn_host_timers(w.h), 1);
    assert_int_equal(stats(&w, "cart", 1)->entered, 1);
    assert_int_equal(stats(&w, "cart", 1)->active, 1);
    json_object *p = person(&w, "a");
    assert_null(p);   /* never entered: the host has no record of a */
    world_release(&w);
}

static void test_reentry(void **state)
{
    (void)state;
    static const char *const fmt =
        "id: %s\nentry: { event: Go }\n%s\nnodes:\n  s:\n    send: { channel: email, template: t }\n";
    char never[256], always[256], cool[256];
    snprintf(never, sizeof never, fmt, "never", "reentry: never");
    snprintf(always, sizeof always, fmt, "always", "reentry: always");
    snprintf(cool, sizeof cool, fmt, "cool", "reentry: cooldown\ncooldown: 1h");
    world w;
    world_init(&w, T0);
    publish(&w, "never", never, T0);
    publish(&w, "always", always, T0);
    publish(&w, "cool", cool, T0);
    track(&w, "a", "Go", NULL, T0);
    track(&w, "a", "Go", NULL, T0 + 30 * MIN);
    track(&w, "a", "Go", NULL, T0 + HOUR - 1);
    track(&w, "a", "Go", NULL, T0 + HOUR);
    assert_int_equal(stats(&w, "never", 1)->entered, 1);
    assert_int_equal(stats(&w, "always", 1)->entered, 4);
    assert_int_equal(stats(&w, "cool", 1)->entered, 2);   /* T0 and T0+1h, not 1 us earlier */
    assert_int_equal(stats(&w, "cool", 1)->exits[JRN_END_FINISHED], 2);
    assert_int_equal(w.nintents, 7);
    assert_int_equal(jrn_host_instances(w.h), 0);

    /* while in the journey (concurrent: false) even `always` does not enter again */
    char wait[512];
    publish(&w, "waiting", doc_wait(wait, sizeof wait, "waiting", "1d", "s"), T0 + HOUR);
    track(&w, "a", "Go", NULL, T0 + 2 * HOUR);
    track(&w, "a", "Go", NULL, T0 + 3 * HOUR);
    assert_int_equal(stats(&w, "waiting", 1)->entered, 1);
    assert_int_equal(jrn_host_instances(w.h), 1);
    world_release(&w);
}

static void test_entry_guard(void **state)
{
    (void)state;
    world w;
    world_init(&w, T0);
    publish(&w, "always", "id: always\nentry: { event: Go }\nreentry: always\nnodes:\n  s:\n    exit: {}\n", T0);
    publish(&w, "byapi",
            "id: byapi\nentry: { api: true }\nreentry: always\nconcurrent: true\nnodes:\n  s:\n    wait: 1h\n", T0);
    /* host (3): the same record twice (a replay) enters once */
    snprintf(w.json, sizeof w.json, "{\"type\":\"track\",\"userId\":\"a\",\"event\":\"Go\",\"properties\":{}}");
    ingest_event ev = { .type = INGEST_TRACK, .timestamp_us = T0, .received_us = T0, .user_id = JD_STR_LIT("a"),
                        .event = JD_STR_LIT("Go"), .message_id = JD_STR_LIT("m1"),
                        .json = { w.json, (uint32_t)strlen(w.json) } };
    jd_err err;
    jd_err_clear(&err);
    assert_int_equal(prof_apply(w.profiles, &ev, &err), JD_OK);
    jrn_host_event(w.h, &ev, 10, T0);
    jrn_host_event(w.h, &ev, 10, T0);
    assert_int_equal(stats(&w, "always", 1)->entered, 1);
    jrn_host_event(w.h, &ev, 11, T0);   /* the next record does (reentry: always) */
    assert_int_equal(stats(&w, "always", 1)->entered, 2);
    w.lsn = 20;
    /* through the API too, even with concurrent: true */
    assert_int_equal(jrn_host_enter(w.h, "byapi", JD_STR_LIT("a"), 21, T0, &err), JD_OK);
    assert_int_equal(jrn_host_enter(w.h, "byapi", JD_STR_LIT("a"), 21, T0, &err), JD_EBUSY);
    assert_int_equal(jrn_host_enter(w.h, "byapi", JD_STR_LIT("a"), 22, T0, &err), JD_OK);
    assert_int_equal(stats(&w, "byapi", 1)->entered, 2);
    assert_int_equal(jrn_host_enter(w.h, "nope", JD_STR_LIT("a"), 23, T0, &err), JD_ENOTFOUND);
    assert_int_equal(control(&w, JRN_OP_PAUSE, "byapi", NULL, T0), JD_OK);
    assert_int_equal(jrn_host_enter(w.h, "byapi", JD_STR_LIT("a"), 24, T0, &err), JD_EBUSY);
    assert_non_null(strstr(err.msg, "paused"));
    assert_int_equal(jrn_host_instances(w.h), 2);
    world_release(&w);
}

static void test_version_pinning(void **state)
{
    (void)state;
    char v1[512], v2[512];
    world w;
    world_init(&w, T0);
    publish(&w, "pin", doc_wait(v1, sizeof v1, "pin", "1d", "old_mail"), T0);
    track(&w, "a", "Go", NULL, T0 + MIN);
    publish(&w, "pin", doc_wait(v2, sizeof v2, "pin", "2d", "new_mail"), T0 + HOUR);
    track(&w, "b", "Go", NULL, T0 + 2 * HOUR);
    json_object *p = person(&w, "a");
    assert_int_equal(json_object_array_length(p), 1);
    assert_string_equal(field(json_object_array_get_idx(p, 0), "version"), "1");
    json_object_put(p);
    /* a (version 1) gets version 1's node and time; b version 2's */
    advance(&w, T0 + 3 * DAY);
    assert_int_equal(w.nintents, 2);
    assert_intent(&w, 0, "a", "old_mail", T0 + MIN + DAY);
    assert_int_equal(w.intents[0].version, 1);
    assert_intent(&w, 1, "b", "new_mail", T0 + 2 * HOUR + 2 * DAY);
    assert_int_equal(w.intents[1].version, 2);
    assert_int_equal(stats(&w, "pin", 1)->entered, 1);
    assert_int_equal(stats(&w, "pin", 2)->entered, 1);
    world_release(&w);
}

/* ---- the host: time ------------------------------------------------------------ */

static void test_cart_wait_event_or_timeout(void **state)
{
    (void)state;
    world w;
    world_init(&w, T0);
    publish(&w, "cart", doc_cart, T0);
    track(&w, "buyer", "Cart Updated", "{\"cart_value\":50.0}", T0);
    track(&w, "shopper", "Cart Updated", "{\"cart_value\":50.0}", T0 + MIN);
    track(&w, "buyer", "Order Completed", "{\"total\":50.0}", T0 + 20 * MIN);
    assert_int_equal(w.nexits, 1);
    assert_string_equal(w.exits[0].key, "buyer");
    assert_string_equal(w.exits[0].node, "done");
    assert_int_equal(w.exits[0].why, JRN_END_FINISHED);
    advance(&w, T0 + 2 * HOUR);
    assert_int_equal(w.nintents, 1);
    assert_intent(&w, 0, "shopper", "remind", T0 + MIN + HOUR);
    assert_string_equal(w.intents[0].journey, "cart");
    const jrn_vstats *st = stats(&w, "cart", 1);
    assert_int_equal(st->entered, 2);
    assert_int_equal(st->active, 0);
    assert_int_equal(st->exits[JRN_END_FINISHED], 2);
    assert_int_equal(st->node_entered[node_index(&w, "cart", 1, "grace")], 2);
    assert_int_equal(st->node_entered[node_index(&w, "cart", 1, "done")], 1);
    assert_int_equal(st->node_entered[node_index(&w, "cart", 1, "remind")], 1);
    /* an Order Completed after the timeout changes nothing */
    track(&w, "shopper", "Order Completed", "{\"total\":50.0}", T0 + 3 * HOUR);
    assert_int_equal(w.nexits, 2);
    world_release(&w);
}

static void test_wait_fires_at_deadline(void **state)
{
    (void)state;
    char d[512];
    world w;
    world_init(&w, T0);
    publish(&w, "w3d", doc_wait(d, sizeof d, "w3d", "3d", "s"), T0);
    track(&w, "a", "Go", NULL, T0 + 5);
    const int64_t due = T0 + 5 + 3 * DAY;
    advance(&w, due - 1);
    assert_int_equal(w.nintents, 0);
    assert_int_equal(jrn_host_timers(w.h), 1);
    assert_int_equal(jrn_host_now(w.h), due - 1);
    advance(&w, due);
    assert_int_equal(w.nintents, 1);
    assert_intent(&w, 0, "a", "s", due);
    assert_int_equal(jrn_host_timers(w.h), 0);
    assert_int_equal(jrn_host_instances(w.h), 0);
    /* the clock never goes back */
    advance(&w, T0);
    assert_int_equal(jrn_host_now(w.h), due);
    world_release(&w);
}

/* ---- the host: profiles and conditions -------------------------------------------- */

static const char *const doc_update =
    "id: upd\n"
    "entry: { event: Go }\n"
    "nodes:\n"
    "  mark:\n"
    "    update:\n"
    "      set: { level: \"2\", plan: \"'pro'\" }\n"
    "      add_tags: [vip]\n"
    "    next: route\n"
    "  route:\n"
    "    branch:\n"
    "      - { when: \"profile.traits.level == 2 && 'vip' in profile.tags\", next: yes_mail }\n"
    "      - { else: no_mail }\n"
    "  yes_mail:\n"
    "    send: { channel: email, template: yes }\n"
    "  no_mail:\n"
    "    send: { channel: email, template: no }\n";

static void test_update_node(void **state)
{
    (void)state;
    world w;
    world_init(&w, T0);
    publish(&w, "upd", doc_update, T0);
    identify(&w, "a", "{\"name\":\"Ana\"}", T0);
    track(&w, "a", "Go", NULL, T0 + MIN);
    assert_int_equal(w.nintents, 1);
    assert_intent(&w, 0, "a", "yes_mail", T0 + MIN);
    json_object *v = prof_view(w.profiles, "a", 1), *tr, *x, *tags;
    assert_non_null(v);
    assert_true(json_object_object_get_ex(v, "traits", &tr));
    assert_true(json_object_object_get_ex(tr, "level", &x));
    assert_int_equal(json_object_get_int64(x), 2);
    assert_true(json_object_object_get_ex(tr, "plan", &x));
    assert_string_equal(json_object_get_string(x), "pro");
    assert_true(json_object_object_get_ex(tr, "name", &x));   /* identify's traits stay */
    assert_true(json_object_object_get_ex(v, "tags", &tags));
    assert_int_equal(json_object_array_length(tags), 1);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(tags, 0)), "vip");
    json_object_put(v);
    assert_int_equal(stats(&w, "upd", 1)->condition_errors, 0);
    world_release(&w);
}

static void test_condition_error_is_false(void **state)
{
    (void)state;
    world w;
    world_init(&w, T0);
    publish(&w, "plan",
            "id: plan\nentry: { event: Go }\nnodes:\n"
            "  route:\n    branch:\n"
            "      - { when: \"profile.traits.plan == 'pro'\", next: pro }\n"
            "      - { else: basic }\n"
            "  pro:\n    send: { channel: email, template: pro }\n"
            "  basic:\n    send: { channel: email, template: basic }\n",
            T0);
    identify(&w, "b", "{\"plan\":\"pro\"}", T0);
    track(&w, "a", "Go", NULL, T0 + MIN);   /* no plan trait: an error, false */
    track(&w, "b", "Go", NULL, T0 + MIN);
    assert_int_equal(w.nintents, 2);
    assert_intent(&w, 0, "a", "basic", T0 + MIN);
    assert_intent(&w, 1, "b", "pro", T0 + MIN);
    const jrn_vstats *st = stats(&w, "plan", 1);
    assert_int_equal(st->condition_errors, 1);
    assert_non_null(strstr(st->last_error, "plan"));
    assert_int_equal(st->exits[JRN_END_ERROR], 0);   /* host (4): it does not end the instance */
    assert_int_equal(st->exits[JRN_END_FINISHED], 2);
    world_release(&w);
}

/* ---- the host: pause, resume, archive ------------------------------------------- */

static void test_pause_holds_resume_fires(void **state)
{
    (void)state;
    char d[512];
    world w;
    world_init(&w, T0);
    publish(&w, "p", doc_wait(d, sizeof d, "p", "1h", "s"), T0);
    track(&w, "a", "Go", NULL, T0);
    track(&w, "b", "Go", NULL, T0 + 20 * MIN);
    assert_int_equal(control(&w, JRN_OP_PAUSE, "p", NULL, T0 + 30 * MIN), JD_OK);
    advance(&w, T0 + 2 * HOUR);             /* a and b came due at T0+1h and T0+1h20: held */
    assert_int_equal(w.nintents, 0);
    track(&w, "c", "Go", NULL, T0 + 2 * HOUR + 1);   /* no entries while paused */
    assert_int_equal(stats(&w, "p", 1)->entered, 2);
    json_object *p = person(&w, "a");
    assert_string_equal(field(json_object_array_get_idx(p, 0), "state"), "held");
    json_object_put(p);
    assert_int_equal(control(&w, JRN_OP_RESUME, "p", NULL, T0 + 3 * HOUR), JD_OK);
    assert_int_equal(w.nintents, 2);        /* a and b were both due: they run at resume time */
    assert_intent(&w, 0, "a", "s", T0 + 3 * HOUR);
    assert_intent(&w, 1, "b", "s", T0 + 3 * HOUR);
    assert_int_equal(jrn_host_instances(w.h), 0);
    world_release(&w);
}

static void test_pause_then_resume_before_due(void **state)
{
    (void)state;
    char d[512];
    world w;
    world_init(&w, T0);
    publish(&w, "p", doc_wait(d, sizeof d, "p", "1h", "s"), T0);
    track(&w, "a", "Go", NULL, T0);
    assert_int_equal(control(&w, JRN_OP_PAUSE, "p", NULL, T0 + 10 * MIN), JD_OK);
    assert_int_equal(control(&w, JRN_OP_RESUME, "p", NULL, T0 + 20 * MIN), JD_OK);
    assert_int_equal(w.nintents, 0);
    advance(&w, T0 + HOUR);                 /* its own deadline, unchanged */
    assert_int_equal(w.nintents, 1);
    assert_intent(&w, 0, "a", "s", T0 + HOUR);
    world_release(&w);
}

static void test_archive_ends_instances(void **state)
{
    (void)state;
    char d[512];
    world w;
    world_init(&w, T0);
    publish(&w, "arch", doc_wait(d, sizeof d, "arch", "1h", "s"), T0);
    track(&w, "a", "Go", NULL, T0);
    track(&w, "b", "Go", NULL, T0 + MIN);
    assert_int_equal(control(&w, JRN_OP_ARCHIVE, "arch", NULL, T0 + 10 * MIN), JD_OK);
    assert_int_equal(w.nexits, 2);
    for (size_t i = 0; i < w.nexits; i++) {
        assert_int_equal(w.exits[i].why, JRN_END_ARCHIVED);
        assert_int_equal(w.exits[i].at, T0 + 10 * MIN);
        assert_string_equal(w.exits[i].node, "w");
    }
    assert_int_equal(jrn_host_instances(w.h), 0);
    assert_int_equal(jrn_host_timers(w.h), 0);
    advance(&w, T0 + DAY);
    assert_int_equal(w.nintents, 0);
    assert_int_equal(stats(&w, "arch", 1)->exits[JRN_END_ARCHIVED], 2);
    assert_int_equal(stats(&w, "arch", 1)->active, 0);
    json_object *p = person(&w, "a");
    assert_string_equal(field(json_object_array_get_idx(p, 0), "last_end"), "archived");
    json_object_put(p);
    world_release(&w);
}

/* ---- the host: where a person is ------------------------------------------------ */

static void test_person_json(void **state)
{
    (void)state;
    world w;
    world_init(&w, T0);
    publish(&w, "cart", doc_cart, T0);
    publish(&w, "hello", doc_send, T0);
    track(&w, "a", "Cart Updated", "{\"cart_value\":5.0}", T0 + MIN);
    track(&w, "a", "Go", NULL, T0 + 2 * MIN);
    json_object *p = person(&w, "a");
    assert_non_null(p);
    assert_int_equal(json_object_array_length(p), 2);
    json_object *c = NULL, *h = NULL;
    for (size_t i = 0; i < 2; i++) {
        json_object *o = json_object_array_get_idx(p, i);
        if (strcmp(field(o, "journey"), "cart") == 0) c = o;
        else h = o;
    }
    assert_non_null(c);
    assert_non_null(h);
    char t[JD_TIME_TEXT];
    assert_string_equal(field(c, "version"), "1");
    assert_string_equal(field(c, "state"), "waiting");
    assert_string_equal(field(c, "node"), "grace");
    assert_string_equal(field(c, "waiting_for"), "event:Order Completed");
    jd_time_format(T0 + MIN + HOUR, t);
    assert_string_equal(field(c, "timer_at"), t);
    jd_time_format(T0 + MIN, t);
    assert_string_equal(field(c, "entered_at"), t);
    assert_string_equal(field(c, "since"), t);
    assert_int_equal(strlen(field(c, "instance")), 16);
    /* hello ran to its end: history only */
    assert_string_equal(field(h, "journey"), "hello");
    assert_string_equal(field(h, "state"), "exited");
    assert_string_equal(field(h, "last_end"), "finished");
    jd_time_format(T0 + 2 * MIN, t);
    assert_string_equal(field(h, "last_entered_at"), t);
    json_object_put(p);
    assert_null(person(&w, "nobody"));
    world_release(&w);
}

/* ---- the host: snapshot ---------------------------------------------------------- */

static const char *const doc_split =
    "id: ab\n"
    "entry: { event: Go }\n"
    "reentry: always\n"
    "nodes:\n"
    "  w:\n"
    "    wait: { event: Bought, timeout: 2h }\n"
    "    next: thanks\n"
    "    on_timeout: test\n"
    "  thanks:\n"
    "    send: { channel: email, template: thanks }\n"
    "  test:\n"
    "    split:\n"
    "      - { variant: A, weight: 50, next: mail_a }\n"
    "      - { variant: B, weight: 50, next: mail_b }\n"
    "  mail_a:\n"
    "    send: { channel: email, template: a }\n"
    "    next: later\n"
    "  mail_b:\n"
    "    send: { channel: email, template: b }\n"
    "    next: later\n"
    "  later:\n"
    "    wait: 1d\n"
    "    next: route\n"
    "  route:\n"
    "    branch:\n"
    "      - { when: \"has(profile.traits.vip) && profile.traits.vip == true\", next: vip_mail }\n"
    "      - { else: last_mail }\n"
    "  vip_mail:\n"
    "    send: { channel: email, template: vip }\n"
    "  last_mail:\n"
    "    send: { channel: email, template: last }\n";

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    char d[512];
    world w1, w2;
    world_init(&w1, T0);
    publish(&w1, "ab", doc_split, T0);
    publish(&w1, "slow", doc_wait(d, sizeof d, "slow", "3d", "s"), T0);
    assert_int_equal(control(&w1, JRN_OP_PAUSE, "slow", NULL, T0), JD_OK);
    assert_int_equal(control(&w1, JRN_OP_RESUME, "slow", NULL, T0), JD_OK);
    char key[16];
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof key, "p%d", i);
        if (i % 3 == 0) identify(&w1, key, "{\"vip\":true}", T0 + i * MIN);
        track(&w1, key, "Go", NULL, T0 + i * MIN);
    }
    track(&w1, "p1", "Bought", NULL, T0 + 30 * MIN);
    advance(&w1, T0 + 3 * HOUR);   /* the split ran: some wait a day after mail_a or mail_b */
    const size_t before = w1.nintents;
    assert_true(before >= 7);
    assert_int_equal(jrn_host_instances(w1.h), 15);   /* 7 in ab's `later`, 8 in slow */

    /* the snapshot: registry, profiles, host; decoded into a fresh world */
    jd_buf rb, pb, hb;
    encode_all(&w1, &rb, &pb, &hb);
    assert_int_equal(decode_all(&w2, &rb, &pb, hb.data, hb.len, w1.lsn), JD_OK);
    assert_int_equal(jrn_host_now(w2.h), T0 + 3 * HOUR);
    assert_int_equal(jrn_host_instances(w2.h), jrn_host_instances(w1.h));
    assert_int_equal(jrn_host_timers(w2.h), jrn_host_timers(w1.h));
    const jrn_vstats *s1 = stats(&w1, "ab", 1), *s2 = stats(&w2, "ab", 1);
    assert_int_equal(s1->entered, s2->entered);
    assert_int_equal(s1->active, s2->active);
    assert_memory_equal(s1->node_entered, s2->node_entered, s1->nnodes * sizeof *s1->node_entered);
    json_object *p1 = person(&w1, "p3"), *p2 = person(&w2, "p3");
    assert_string_equal(json_object_to_json_string(p1), json_object_to_json_string(p2));
    json_object_put(p1);
    json_object_put(p2);

    /* then the same future on both: the same intents, with the same ids */
    w1.lsn = w2.lsn = 1000;
    advance(&w1, T0 + 5 * DAY);
    advance(&w2, T0 + 5 * DAY);
    const size_t after = w1.nintents - before;
    assert_int_equal(after, 15);
    assert_int_equal(w2.nintents, after);
    for (size_t i = 0; i < after; i++) {
        const intent_rec *a = &w1.intents[before + i], *b = &w2.intents[i];
        assert_int_equal(a->id, b->id);
        assert_string_equal(a->key, b->key);
        assert_string_equal(a->node, b->node);
        assert_string_equal(a->journey, b->journey);
        assert_int_equal(a->at, b->at);
        assert_int_equal(a->lsn, b->lsn);
    }
    size_t vip = 0;
    for (size_t i = 0; i < w2.nintents; i++) vip += strcmp(w2.intents[i].node, "vip_mail") == 0;
    assert_int_equal(vip, 3);   /* p0, p3, p6: conditions read the restored profiles */
    assert_int_equal(jrn_host_instances(w2.h), 0);

    /* disk is input */
    jd_err err;
    jd_err_clear(&err);
    jrn_host *h3 = jrn_host_create(w2.reg, w2.profiles, 0, NULL);
    assert_int_equal(jrn_host_decode(h3, hb.data, hb.len - 1, &err), JD_ECORRUPT);
    jrn_host_destroy(h3);
    jd_buf_release(&rb);
    jd_buf_release(&pb);
    jd_buf_release(&hb);
    world_release(&w1);
    world_release(&w2);
}

/* The entry index is sound: a journey left out of jrn_reg_candidates has an
 * entry condition that is not true for that event (checked by evaluating it),
 * and one whose guard matches is never left out. */
static void test_entry_index_is_sound(void **state)
{
    (void)state;
    world w;
    world_init(&w, T0);
    static const char *const conds[] = {
        "event.properties.category == 'c%d'",
        "event.properties.price > %d.0 && event.properties.category == 'c%d'",
        "'c%d' == event.properties.kind.name",
        "event.properties.price > %d.0",
        "event.properties.category == 'c%d' || event.properties.price > 50.0",
        "has(event.properties.category) && event.properties.category == 'c%d' && profile.traits.plan == 'pro'",
    };
    char doc[512], id[16];
    for (int k = 0; k < 36; k++) {
        char cond[200];
        snprintf(cond, sizeof cond, conds[k % 6], k % 5, k % 5);
        snprintf(id, sizeof id, "j%d", k);
        snprintf(doc, sizeof doc, "id: %s\nentry:\n  event: Viewed\n  when: \"%s\"\nnodes:\n  s: { send: { channel: email, template: t } }\n",
                 id, cond);
        publish(&w, id, doc, T0);
    }
    size_t all = 0;
    const uint32_t *every = jrn_reg_entries_for(w.reg, JD_STR_LIT("Viewed"), &all);
    assert_int_equal(all, 36);
    uint32_t cand[64];
    expr_scratch *sc = expr_scratch_create(1 << 16);
    uint64_t seed = 7, skipped = 0;
    for (int e = 0; e < 400; e++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        char ev[256];
        int c = (int)(seed >> 33) % 7, price = (int)(seed >> 40) % 100;
        if (e % 10 == 0) snprintf(ev, sizeof ev, "{\"event\":{\"properties\":{\"price\":%d.0}}}", price);
        else if (e % 10 == 1) snprintf(ev, sizeof ev, "{\"event\":{\"properties\":{\"category\":%d}}}", c);
        else snprintf(ev, sizeof ev, "{\"event\":{\"properties\":{\"category\":\"c%d\",\"price\":%d.0,\"kind\":{\"name\":\"c%d\"}}},"
                      "\"profile\":{\"traits\":{\"plan\":\"pro\"}}}", c, price, (c + 1) % 7);
        json_object *vars = json_tokener_parse(ev), *evj;
        assert_true(json_object_object_get_ex(vars, "event", &evj));
        size_t n = jrn_reg_candidates(w.reg, JD_STR_LIT("Viewed"), evj, cand, 64);
        for (size_t i = 1; i < n; i++) assert_true(cand[i - 1] < cand[i]);   /* registry order */
        for (size_t i = 0; i < all; i++) {
            bool in = false;
            for (size_t m = 0; m < n; m++) in |= cand[m] == every[i];
            if (in) continue;
            skipped++;
            const jrn_doc *doc2 = jrn_reg_live(jrn_reg_at(w.reg, every[i]))->doc;
            expr_activation a;
            expr_activation_json(&a, vars);
            bool out = false;
            jd_err err;
            expr_scratch_reset(sc);
            if (expr_eval_bool(doc2->entry.when, &a, sc, &out, &err) == JD_OK) assert_false(out);
        }
        json_object_put(vars);
    }
    assert_true(skipped > 1000);   /* the index did skip work */
    assert_int_equal(jrn_reg_candidates(w.reg, JD_STR_LIT("Viewed"), NULL, cand, 64), 36);
    expr_scratch_destroy(sc);
    world_release(&w);
}

/* A condition-only exit rule is checked in the same turn as another
 * journey's update node that makes it true, not at the person's next event. */
static void test_exit_rule_after_update_node(void **state)
{
    (void)state;
    world w;
    world_init(&w, T0);
    publish(&w, "nurture",
            "id: nurture\nentry: { event: Signed Up }\n"
            "exits:\n  - when: \"has(profile.traits.vip) && profile.traits.vip == true\"\n"
            "nodes:\n  w: { wait: 3d, next: m }\n  m: { send: { channel: email, template: nurture } }\n", T0);
    publish(&w, "promote",
            "id: promote\nentry: { event: Upgraded }\n"
            "nodes:\n  u: { update: { set: { vip: \"true\" } } }\n", T0);
    track(&w, "a", "Signed Up", NULL, T0);
    assert_int_equal(jrn_host_instances(w.h), 1);
    track(&w, "a", "Upgraded", NULL, T0 + MIN);
    assert_int_equal(jrn_host_instances(w.h), 0);   /* nurture ended in that turn */
    assert_int_equal(stats(&w, "nurture", 1)->exits[JRN_END_EXIT_RULE], 1);
    advance(&w, T0 + 4 * DAY);
    assert_int_equal(w.nintents, 0);
    world_release(&w);
}

/* A version that reads journey.entry keeps the entry event per instance (and
 * only then), across a snapshot too: a big cart gets the discount mail a day
 * later, a small one the plain reminder. */
static const char doc_entry[] =
    "id: big\n"
    "entry: { event: Cart Updated }\n"
    "nodes:\n"
    "  later: { wait: 1d, next: how_big }\n"
    "  how_big:\n"
    "    branch:\n"
    "      - { when: \"journey.entry.properties.total >= 100.0\", next: discount }\n"
    "      - { else: plain }\n"
    "  discount: { send: { channel: email, template: discount } }\n"
    "  plain: { send: { channel: email, template: reminder } }\n";

static void test_entry_event_kept(void **state)
{
    (void)state;
    world w, w2;
    world_init(&w, T0);
    publish(&w, "big", doc_entry, T0);
    track(&w, "a", "Cart Updated", "{\"total\":250.0}", T0);
    track(&w, "b", "Cart Updated", "{\"total\":20.0}", T0);
    assert_int_equal(jrn_host_instances(w.h), 2);
    restore(&w, &w2);
    advance(&w2, T0 + DAY);
    assert_int_equal(w2.nintents, 2);
    for (size_t i = 0; i < 2; i++)
        assert_string_equal(w2.intents[i].node, strcmp(w2.intents[i].key, "a") == 0 ? "discount" : "plain");
    assert_int_equal(stats(&w2, "big", 1)->condition_errors, 0);
    world_release(&w2);
    /* a version that does not mention journey.entry keeps nothing: the same
     * branch written against `event` has no event at a timer, so it errs (false) */
    char d[512];
    publish(&w, "slow", doc_wait(d, sizeof d, "slow", "1h", "s"), T0);
    track(&w, "c", "Go", NULL, T0 + MIN);
    assert_true(jrn_host_bytes(w.h) > 0);
    world_release(&w);
}

/* consented() in a branch and in a segment: answered through the host's
 * resolver by prof_consent_allows for the person of the turn, so it follows
 * identify traits.consent as it changes (src/profile/consent.c has the rules). */
static const char *const doc_consent =
    "id: promo\n"
    "entry: { event: Go }\n"
    "reentry: always\n"
    "nodes:\n"
    "  route:\n"
    "    branch:\n"
    "      - { when: \"consented('email', 'marketing')\", next: promo_mail }\n"
    "      - { when: \"consented('email', 'transactional')\", next: receipt }\n"
    "      - { else: none }\n"
    "  promo_mail:\n"
    "    send: { channel: email, template: promo }\n"
    "  receipt:\n"
    "    send: { channel: email, template: receipt }\n"
    "  none:\n"
    "    exit: { reason: no_consent }\n";

static void test_consented_branch(void **state)
{
    (void)state;
    char *exempt[] = { "transactional" };
    jd_consent_cfg pol = { exempt, 1, NULL, 0 };
    world w;
    world_init_consent(&w, T0, &pol);
    publish(&w, "promo", doc_consent, T0);
    assert_int_equal(control(&w, JRN_OP_SEGMENT, "reachable", "id: reachable\nwhen: consented('email', 'marketing')\n", T0), JD_OK);
    track(&w, "a", "Go", NULL, T0);   /* no consent: only the exempt topic */
    assert_int_equal(w.nintents, 1);
    assert_intent(&w, 0, "a", "receipt", T0);
    assert_int_equal(jrn_host_segments_of(w.h, "a", 1), 0);
    identify(&w, "a", "{\"consent\":{\"email/marketing\":true}}", T0 + MIN);
    assert_int_equal(jrn_host_segments_of(w.h, "a", 1), 1);   /* the segment follows the grant */
    track(&w, "a", "Go", NULL, T0 + 2 * MIN);
    assert_int_equal(w.nintents, 2);
    assert_intent(&w, 1, "a", "promo_mail", T0 + 2 * MIN);
    /* unsubscribe from all email, after the topic grant: marketing stops, the receipt still goes */
    identify(&w, "a", "{\"consent\":{\"email\":false}}", T0 + 3 * MIN);
    assert_int_equal(jrn_host_segments_of(w.h, "a", 1), 0);
    track(&w, "a", "Go", NULL, T0 + 4 * MIN);
    assert_int_equal(w.nintents, 3);
    assert_intent(&w, 2, "a", "receipt", T0 + 4 * MIN);
    assert_int_equal(stats(&w, "promo", 1)->condition_errors, 0);
    world_release(&w);

    /* no policy: nothing exempt, so a person without consent gets nothing */
    world_init(&w, T0);
    publish(&w, "promo", doc_consent, T0);
    track(&w, "b", "Go", NULL, T0);
    assert_int_equal(w.nintents, 0);
    assert_int_equal(stats(&w, "promo", 1)->exits[JRN_END_FINISHED], 1);
    assert_int_equal(stats(&w, "promo", 1)->condition_errors, 0);
    world_release(&w);
}

/* Segments: membership follows the profile; entering and leaving run the
 * journeys entered on segment_enter / segment_exit; in_segment() reads it. */
static void test_segments_enter_leave(void **state)
{
    (void)state;
    world w;
    world_init(&w, T0);
    assert_int_equal(control(&w, JRN_OP_SEGMENT, "pro", "id: pro\nwhen: has(profile.traits.plan) && profile.traits.plan == 'pro'\n", T0), JD_OK);
    publish(&w, "welcome-pro", "id: welcome-pro\nentry: { segment_enter: pro }\nnodes:\n  m: { send: { channel: email, template: pro } }\n", T0);
    publish(&w, "winback", "id: winback\nentry: { segment_exit: pro }\nnodes:\n  m: { send: { channel: email, template: miss_you } }\n", T0);
    publish(&w, "upsell",
            "id: upsell\nentry: { event: Viewed Pricing }\nexits:\n  - when: in_segment('pro')\n"
            "nodes:\n  w: { wait: 1d, next: m }\n  m: { send: { channel: email, template: upsell } }\n", T0);
    track(&w, "a", "Viewed Pricing", NULL, T0);
    assert_int_equal(jrn_host_instances(w.h), 1);
    identify(&w, "a", "{\"plan\":\"pro\"}", T0 + MIN);
    assert_int_equal(jrn_host_segments_of(w.h, "a", 1), 1);
    assert_int_equal(jrn_host_segment_size(w.h, 0), 1);
    assert_int_equal(w.nintents, 1);
    assert_intent(&w, 0, "a", "m", T0 + MIN);
    assert_string_equal(w.intents[0].journey, "welcome-pro");
    assert_int_equal(jrn_host_instances(w.h), 0);   /* upsell ended: in_segment('pro') became true */
    assert_int_equal(stats(&w, "upsell", 1)->exits[JRN_END_EXIT_RULE], 1);
    identify(&w, "a", "{\"plan\":\"free\"}", T0 + 2 * MIN);
    assert_int_equal(jrn_host_segments_of(w.h, "a", 1), 0);
    assert_int_equal(jrn_host_segment_size(w.h, 0), 0);
    assert_int_equal(w.nintents, 2);
    assert_string_equal(w.intents[1].journey, "winback");
    /* a redefinition re-evaluates the people the host knows at once */
    assert_int_equal(control(&w, JRN_OP_SEGMENT, "pro", "id: pro\nwhen: has(profile.traits.plan)\n", T0 + 3 * MIN), JD_OK);
    assert_int_equal(jrn_host_segments_of(w.h, "a", 1), 1);
    /* a bad document: every error at once, nothing defined */
    static const char bad_text[] = "id: x\nwhen: profile.traits.(\nextra: 1\n";
    jrn_ctl bad = { JRN_OP_SEGMENT, "x", bad_text, sizeof bad_text - 1, "test" };
    jrn_diags d = { 0 };
    jd_err err;
    assert_int_equal(jrn_reg_check(w.reg, &bad, &d, &err), JD_EINVAL);
    assert_int_equal(d.n, 2);   /* the unknown field and the expression, at once */
    jrn_diags_release(&d);
    world_release(&w);
}

/* A segment that time alone flips ("no activity for 3 days") is entered at
 * that moment, through the host's flip wheel, and kept across a snapshot. */
static void test_segment_flips_in_time(void **state)
{
    (void)state;
    world w, w2;
    world_init(&w, T0);
    assert_int_equal(control(&w, JRN_OP_SEGMENT, "inactive",
                             "id: inactive\nwhen: days_since(timestamp(profile.last_seen)) >= 3\n", T0), JD_OK);
    publish(&w, "nudge", "id: nudge\nentry: { segment_enter: inactive }\nreentry: always\n"
                         "nodes:\n  m: { send: { channel: email, template: we_miss_you } }\n", T0);
    track(&w, "a", "Logged In", NULL, T0 + HOUR);
    assert_int_equal(jrn_host_segments_of(w.h, "a", 1), 0);
    assert_true(jrn_host_next_due(w.h) >= (uint64_t)(T0 + HOUR + 3 * DAY));
    assert_true(jrn_host_next_due(w.h) <= (uint64_t)(T0 + HOUR + 3 * DAY + 1000));
    advance(&w, T0 + HOUR + 3 * DAY - 1);   /* 1 us before: still out */
    assert_int_equal(jrn_host_segments_of(w.h, "a", 1), 0);
    restore(&w, &w2);                         /* the pending flip survives a snapshot */
    advance(&w2, T0 + HOUR + 3 * DAY + 1000);
    assert_int_equal(jrn_host_segments_of(w2.h, "a", 1), 1);
    assert_int_equal(w2.nintents, 1);
    assert_string_equal(w2.intents[0].node, "m");
    /* activity takes them out again; the next flip is 3 days after it */
    track(&w2, "a", "Logged In", NULL, T0 + 5 * DAY);
    assert_int_equal(jrn_host_segments_of(w2.h, "a", 1), 0);
    advance(&w2, T0 + 8 * DAY + 1000);
    assert_int_equal(jrn_host_segments_of(w2.h, "a", 1), 1);
    assert_int_equal(w2.nintents, 2);
    world_release(&w2);
    world_release(&w);
}

/* Exit rules on segment changes end the instance at the moment of the change:
 * a trait change (an identify), time alone (a flip of a `now` segment), and
 * another journey's update node in the same turn (host (6)). */
static const char seg_pro[] = "id: pro\nwhen: has(profile.traits.plan) && profile.traits.plan == 'pro'\n";
static const char seg_idle[] = "id: idle\nwhen: days_since(timestamp(profile.last_seen)) >= 3\n";

static void test_segment_exit_rules(void **state)
{
    (void)state;
    world w;
    world_init(&w, T0);
    assert_int_equal(control(&w, JRN_OP_SEGMENT, "pro", seg_pro, T0), JD_OK);
    assert_int_equal(control(&w, JRN_OP_SEGMENT, "idle", seg_idle, T0), JD_OK);
    publish(&w, "pro-tips", "id: pro-tips\nentry: { event: Go }\nreentry: always\nexits:\n  - segment_exit: pro\n"
                            "nodes:\n  w: { wait: 30d, next: m }\n  m: { send: { channel: email, template: tip } }\n", T0);
    publish(&w, "engaged", "id: engaged\nentry: { event: Start }\nexits:\n  - segment_enter: idle\n"
                           "nodes:\n  w: { wait: 30d, next: m }\n  m: { send: { channel: email, template: tip } }\n", T0);
    publish(&w, "cancel", "id: cancel\nentry: { event: Cancel }\nnodes:\n  u: { update: { set: { plan: \"'free'\" } } }\n", T0);

    /* a trait change: the identify that makes them leave ends it in its turn */
    identify(&w, "a", "{\"plan\":\"pro\"}", T0);
    track(&w, "a", "Go", NULL, T0 + MIN);
    assert_int_equal(jrn_host_instances(w.h), 1);
    identify(&w, "a", "{\"plan\":\"free\"}", T0 + HOUR);
    assert_int_equal(jrn_host_instances(w.h), 0);
    assert_int_equal(w.nexits, 1);
    assert_string_equal(w.exits[0].journey, "pro-tips");
    assert_int_equal(w.exits[0].why, JRN_END_EXIT_RULE);
    assert_int_equal(w.exits[0].at, T0 + HOUR);
    assert_string_equal(w.exits[0].node, "w");

    /* time alone: 3 days without activity, exactly when the flip is due */
    int64_t t1 = T0 + 2 * HOUR;
    track(&w, "b", "Start", NULL, t1);
    assert_int_equal(jrn_host_instances(w.h), 1);
    advance(&w, t1 + 3 * DAY - 1);   /* 1 us before: still active */
    assert_int_equal(jrn_host_instances(w.h), 1);
    advance(&w, t1 + 4 * DAY);
    assert_int_equal(jrn_host_instances(w.h), 0);
    assert_int_equal(w.nexits, 2);
    assert_string_equal(w.exits[1].journey, "engaged");
    assert_int_equal(w.exits[1].why, JRN_END_EXIT_RULE);
    /* at the flip (to the millisecond), not at the record that moved the clock */
    assert_true(w.exits[1].at >= t1 + 3 * DAY && w.exits[1].at <= t1 + 3 * DAY + 1000);
    assert_int_equal(w.nintents, 0);

    /* another journey's update node: `cancel` sets plan free; pro-tips ends in that turn */
    int64_t t2 = T0 + 10 * DAY;
    identify(&w, "c", "{\"plan\":\"pro\"}", t2);
    track(&w, "c", "Go", NULL, t2 + MIN);
    assert_int_equal(jrn_host_segments_of(w.h, "c", 1), 1);
    track(&w, "c", "Cancel", NULL, t2 + HOUR);
    assert_int_equal(jrn_host_segments_of(w.h, "c", 1), 0);   /* re-evaluated after the update node */
    assert_int_equal(w.nexits, 4);                               /* cancel finished, then pro-tips ended */
    assert_string_equal(w.exits[3].journey, "pro-tips");
    assert_string_equal(w.exits[3].key, "c");
    assert_int_equal(w.exits[3].why, JRN_END_EXIT_RULE);
    assert_int_equal(w.exits[3].at, t2 + HOUR);
    assert_int_equal(stats(&w, "pro-tips", 1)->exits[JRN_END_EXIT_RULE], 2);
    world_release(&w);
}

/* A wait on segment_enter: the join in time continues on `next`, none on
 * `on_timeout`; a member on arrival continues at once; a waiting instance
 * keeps its wait across a snapshot. Publishing refuses an unknown segment. */
static void test_segment_waits(void **state)
{
    (void)state;
    world w, w2;
    world_init(&w, T0);
    assert_int_equal(control(&w, JRN_OP_SEGMENT, "pro", seg_pro, T0), JD_OK);
    publish(&w, "upgrade", "id: upgrade\nentry: { event: Go }\nnodes:\n"
                           "  w:\n    wait: { segment_enter: pro, timeout: 2d }\n    next: welcome\n    on_timeout: nudge\n"
                           "  welcome: { send: { channel: email, template: welcome_pro } }\n"
                           "  nudge: { send: { channel: email, template: try_pro } }\n", T0);
    track(&w, "a", "Go", NULL, T0);
    track(&w, "b", "Go", NULL, T0);
    json_object *o = person(&w, "a");
    assert_string_equal(field(json_object_array_get_idx(o, 0), "waiting_for"), "segment_enter:pro");
    json_object_put(o);
    identify(&w, "a", "{\"plan\":\"pro\"}", T0 + HOUR);
    assert_int_equal(w.nintents, 1);
    assert_intent(&w, 0, "a", "welcome", T0 + HOUR);
    identify(&w, "b", "{\"plan\":\"basic\"}", T0 + HOUR);   /* a profile change that joins nothing */
    advance(&w, T0 + 3 * DAY);
    assert_int_equal(w.nintents, 2);
    assert_intent(&w, 1, "b", "nudge", T0 + 2 * DAY);
    /* already a member when the wait is reached: on at once */
    identify(&w, "c", "{\"plan\":\"pro\"}", T0 + 3 * DAY);
    track(&w, "c", "Go", NULL, T0 + 3 * DAY + MIN);
    assert_int_equal(w.nintents, 3);
    assert_intent(&w, 2, "c", "welcome", T0 + 3 * DAY + MIN);
    /* snapshot: a waiting instance joins after the restore, the same as without it */
    track(&w, "d", "Go", NULL, T0 + 4 * DAY);
    restore(&w, &w2);
    identify(&w, "d", "{\"plan\":\"pro\"}", T0 + 4 * DAY + HOUR);
    identify(&w2, "d", "{\"plan\":\"pro\"}", T0 + 4 * DAY + HOUR);
    assert_int_equal(w.nintents, 4);
    assert_int_equal(w2.nintents, 1);
    assert_intent(&w2, 0, "d", "welcome", T0 + 4 * DAY + HOUR);
    assert_int_equal(w.intents[3].id, w2.intents[0].id);
    assert_int_equal(jrn_host_timers(w2.h), 0);   /* the timeout went with the wait */
    world_release(&w2);

    /* publish-time check: every unknown segment at once, with its position */
    static const char bad[] = "id: bad\nentry: { event: Go }\nexits:\n  - segment_exit: vip\n"
                              "nodes:\n  w: { wait: { segment_enter: gold, timeout: 1d }, next: s, on_timeout: s }\n"
                              "  s: { send: { channel: email, template: t } }\n";
    jrn_ctl c = { JRN_OP_PUBLISH, "bad", bad, sizeof bad - 1, "bad.yaml" };
    jrn_diags d = { 0 };
    jd_err err;
    assert_int_equal(jrn_reg_check(w.reg, &c, &d, &err), JD_EINVAL);
    jd_buf b;
    jd_buf_init(&b, 1u << 16);
    jrn_diags_format(&d, &b);
    assert_string_equal(b.data, "bad.yaml:4:19: unknown segment 'vip' in 'segment_exit' (define the segment first)\n"
                                "bad.yaml:6:31: node 'w': unknown segment 'gold' in 'segment_enter' (define the segment first)\n");
    jd_buf_release(&b);
    jrn_diags_release(&d);
    assert_int_equal(control(&w, JRN_OP_PUBLISH, "bad", bad, T0 + 5 * DAY), JD_EINVAL);
    /* a draft may name a segment defined later */
    assert_int_equal(control(&w, JRN_OP_DRAFT, "bad", bad, T0 + 5 * DAY), JD_OK);
    world_release(&w);
}

/* host (5) across a snapshot: a wait held by a pause still runs at resume. */
static void test_snapshot_keeps_held_waits(void **state)
{
    (void)state;
    char d[512];
    world w1, w2;
    world_init(&w1, T0);
    publish(&w1, "p", doc_wait(d, sizeof d, "p", "1h", "s"), T0);
    static const char *const who[] = { "a", "b", "c", "d", "e", "f" };
    for (int i = 0; i < 6; i++) track(&w1, who[i], "Go", NULL, T0 + i);
    assert_int_equal(control(&w1, JRN_OP_PAUSE, "p", NULL, T0 + MIN), JD_OK);
    advance(&w1, T0 + 2 * HOUR);
    restore(&w1, &w2);
    assert_int_equal(control(&w1, JRN_OP_RESUME, "p", NULL, T0 + 3 * HOUR), JD_OK);
    assert_int_equal(control(&w2, JRN_OP_RESUME, "p", NULL, T0 + 3 * HOUR), JD_OK);
    assert_int_equal(w1.nintents, 6);
    assert_int_equal(w2.nintents, 6);
    /* held waits run in deadline order, before and after the snapshot */
    for (size_t i = 0; i < 6; i++) {
        assert_intent(&w1, i, who[i], "s", T0 + 3 * HOUR);
        assert_intent(&w2, i, who[i], "s", T0 + 3 * HOUR);
        assert_int_equal(w1.intents[i].id, w2.intents[i].id);
    }
    world_release(&w1);
    world_release(&w2);
}

/* Concurrent instances of one person see an event in the same order before
 * and after a snapshot (replay and restore must agree on the order of intents). */
static void test_snapshot_keeps_instance_order(void **state)
{
    (void)state;
    world w1, w2;
    world_init(&w1, T0);
    publish(&w1, "multi",
            "id: multi\nentry: { event: Go }\nreentry: always\nconcurrent: true\nnodes:\n"
            "  w:\n    wait: { event: Ping, timeout: 1d }\n    next: s\n    on_timeout: s\n"
            "  s:\n    send: { channel: email, template: t }\n",
            T0);
    for (int i = 0; i < 3; i++) track(&w1, "a", "Go", NULL, T0 + i * MIN);
    assert_int_equal(jrn_host_instances(w1.h), 3);
    restore(&w1, &w2);
    track(&w1, "a", "Ping", NULL, T0 + HOUR);
    track(&w2, "a", "Ping", NULL, T0 + HOUR);
    assert_int_equal(w1.nintents, 3);
    assert_int_equal(w2.nintents, 3);
    for (size_t i = 0; i < 3; i++) assert_int_equal(w1.intents[i].id, w2.intents[i].id);
    world_release(&w1);
    world_release(&w2);
}

/* A condition-only exit rule is checked on the person's events: an identify
 * that sets the trait ends the instance. */
static void test_exit_rule_on_identify(void **state)
{
    (void)state;
    world w;
    world_init(&w, T0);
    publish(&w, "x",
            "id: x\nentry: { event: Go }\n"
            "exits:\n  - when: has(profile.traits.unsubscribed) && profile.traits.unsubscribed == true\n"
            "nodes:\n  w:\n    wait: 1d\n    next: s\n  s:\n    send: { channel: email, template: t }\n",
            T0);
    track(&w, "a", "Go", NULL, T0);
    track(&w, "b", "Go", NULL, T0);
    identify(&w, "a", "{\"unsubscribed\":true}", T0 + HOUR);
    identify(&w, "b", "{\"unsubscribed\":false}", T0 + HOUR);
    assert_int_equal(w.nexits, 1);
    assert_string_equal(w.exits[0].key, "a");
    assert_int_equal(w.exits[0].why, JRN_END_EXIT_RULE);
    advance(&w, T0 + 2 * DAY);
    assert_int_equal(w.nintents, 1);
    assert_intent(&w, 0, "b", "s", T0 + DAY);
    world_release(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_lifecycle),
        cmocka_unit_test(test_registry_entries_for),
        cmocka_unit_test(test_registry_codec),
        cmocka_unit_test(test_entry_condition),
        cmocka_unit_test(test_reentry),
        cmocka_unit_test(test_entry_guard),
        cmocka_unit_test(test_version_pinning),
        cmocka_unit_test(test_cart_wait_event_or_timeout),
        cmocka_unit_test(test_wait_fires_at_deadline),
        cmocka_unit_test(test_update_node),
        cmocka_unit_test(test_condition_error_is_false),
        cmocka_unit_test(test_pause_holds_resume_fires),
        cmocka_unit_test(test_pause_then_resume_before_due),
        cmocka_unit_test(test_archive_ends_instances),
        cmocka_unit_test(test_person_json),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_entry_event_kept),
        cmocka_unit_test(test_entry_index_is_sound),
        cmocka_unit_test(test_exit_rule_after_update_node),
        cmocka_unit_test(test_segments_enter_leave),
        cmocka_unit_test(test_segment_flips_in_time),
        cmocka_unit_test(test_segment_exit_rules),
        cmocka_unit_test(test_segment_waits),
        cmocka_unit_test(test_snapshot_keeps_held_waits),
        cmocka_unit_test(test_snapshot_keeps_instance_order),
        cmocka_unit_test(test_exit_rule_on_identify),
        cmocka_unit_test(test_consented_branch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
