/* src/api/ingest.c -- POST /v1/{track,identify,page,screen,group,alias,batch,import},
 * and POST /v1/consent (an identify made from a consent change).
 *
 * The edge where the wall clock is read: receivedAt is stamped here and goes
 * into the log with the event (DESIGN.md: time is an input).
 *
 *   authenticate -> ingest_parse -> eng_txn_add_event* -> http_defer ->
 *   eng_submit -> (committer: fsync) -> on_committed -> http_reply 200
 */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

static const struct { const char *path; ingest_route route; } ingest_routes[] = {
    { "/v1/track", INGEST_ROUTE_TRACK },   { "/v1/identify", INGEST_ROUTE_IDENTIFY },
    { "/v1/page", INGEST_ROUTE_PAGE },     { "/v1/screen", INGEST_ROUTE_SCREEN },
    { "/v1/group", INGEST_ROUTE_GROUP },   { "/v1/alias", INGEST_ROUTE_ALIAS },
    { "/v1/batch", INGEST_ROUTE_BATCH },   { "/v1/import", INGEST_ROUTE_BATCH },
};

static bool key_ok(const api_ctx *a, const char *k, size_t n)
{
    bool ok = false;
    for (uint32_t i = 0; i < a->cfg->n_write_keys; i++)
        ok |= jd_secret_eq(k, n, a->cfg->write_keys[i], strlen(a->cfg->write_keys[i]));
    return ok;
}

typedef struct pending { http_req *r; api_ctx *a; size_t n; } pending;

/* Committer thread: the transaction is durable (or was refused). */
static void on_committed(void *ctx, int status, const jd_err *err, uint64_t lsn)
{
    pending *p = ctx;
    if (status == JD_OK) {
        atomic_fetch_add_explicit(&p->a->requests_ok, 1, memory_order_relaxed);
        http_reply(p->r, 200, "application/json", "{\"success\":true}", 16);
    } else {
        api__refuse(p->a, p->r, R_UNAVAILABLE, 503, err && err->msg[0] ? err->msg : "the log is unavailable", NULL);
    }
    free(p);
}

bool api__submit_batch(api_ctx *a, http_req *r, ingest_batch *b, eng_done_fn done, void *ctx)
{
    if (!api__enter(a)) {
        ingest_batch_destroy(b);
        api__refuse(a, r, R_UNAVAILABLE, 503, "journeyd is shutting down", NULL);
        return false;
    }
    eng_txn *t = eng_txn_create();
    for (size_t i = 0; i < b->n; i++) eng_txn_add_event(t, a->e, &b->msgs[i]);
    ingest_batch_destroy(b);
    http_defer(r);                       /* before submit: the reply may come at once */
    eng_submit(a->e, t, done, ctx);
    api__leave(a);
    return true;
}

/* Takes b: answered when the log made it durable (on_committed). */
static void submit(api_ctx *a, http_req *r, ingest_batch *b)
{
    pending *p = jd_xmalloc(sizeof *p);
    *p = (pending){ r, a, b->n };
    if (!api__submit_batch(a, r, b, on_committed, p)) free(p);
}

void api__ingest(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    ingest_route route = INGEST_ROUTE_BATCH;
    const char *path = http_req_path(r);
    for (size_t i = 0; i < JD_ARRAY_LEN(ingest_routes); i++)
        if (strcmp(path, ingest_routes[i].path) == 0) route = ingest_routes[i].route;

    const char *user = http_req_basic_user(r);
    bool authed = user && key_ok(a, user, strlen(user));
    if (!authed && route != INGEST_ROUTE_BATCH) {
        api__refuse(a, r, R_UNAUTHORIZED, 401, user ? "unknown write key" : "missing write key (HTTP Basic user name)", NULL);
        return;
    }
    size_t n;
    const char *body = http_req_body(r, &n);
    atomic_fetch_add_explicit(&a->bytes_in, n, memory_order_relaxed);
    int64_t received_us = (int64_t)jd_clock_now(eng_clock(a->e));   /* the edge: the engine's clock */
    ingest_batch *b = NULL;
    jd_err err;
    jd_err_clear(&err);
    int rc = ingest_parse(&a->lim, route, body, n, received_us, NULL, NULL, &b, &err);
    if (!authed) {
        /* A batch may carry its key in the body, as Segment's batch API allows. */
        authed = rc == JD_OK && b->write_key.n && key_ok(a, b->write_key.p, b->write_key.n);
        if (!authed) {
            ingest_batch_destroy(b);
            api__refuse(a, r, R_UNAUTHORIZED, 401, user ? "unknown write key" : "missing write key (HTTP Basic user name or writeKey)", NULL);
            return;
        }
    }
    if (rc != JD_OK) {
        bool limit = rc == JD_ELIMIT;
        api__refuse(a, r, limit ? R_TOO_LARGE : R_INVALID, limit ? 413 : 400, err.msg, err.where);
        return;
    }
    if (b->n == 0) {
        ingest_batch_destroy(b);
        http_reply(r, 200, "application/json", "{\"success\":true}", 16);
        return;
    }
    submit(a, r, b);
}

/* ---- POST /v1/consent (admin token) ------------------------------------------
 * {"userId" | "anonymousId": "...", "consent": {"email/marketing": false, ...},
 *  "source": "preference-center"} becomes an identify carrying traits.consent
 * and context.consent.source, through the same parse and log as any event
 * (so consent changes are durable, ordered with events and replayed). */
void api__consent(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    size_t n;
    const char *body = http_req_body(r, &n);
    json_tokener *tok = json_tokener_new();
    json_object *in = json_tokener_parse_ex(tok, body, (int)n), *c = NULL, *v;
    bool parsed = in && json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    const char *bad = NULL, *at = NULL;
    if (!parsed || !json_object_is_type(in, json_type_object)) bad = "the body is not a JSON object";
    else if (!json_object_object_get_ex(in, "consent", &c) || !json_object_is_type(c, json_type_object) ||
             json_object_object_length(c) == 0)
        bad = "consent must be a non-empty object of \"channel\" or \"channel/topic\": true, false or null", at = "consent";
    else {
        json_object_object_foreach(c, k, val) {
            if (!*k || strlen(k) > 128 || (val && !json_object_is_type(val, json_type_boolean))) {
                bad = "each consent value is true, false or null, under a key of 1 to 128 bytes";
                at = "consent";
            }
        }
    }
    if (!bad && (!json_object_object_get_ex(in, "source", &v) || !v)) json_object_object_add(in, "source", json_object_new_string("api"));
    else if (!bad && !json_object_is_type(v, json_type_string)) bad = "source must be a string", at = "source";
    if (bad) {
        http_reply_error(r, 400, bad, at);
        json_object_put(in);
        return;
    }
    /* The identify (ingest_parse checks the ids like any identify). */
    json_object *msg = json_object_new_object(), *traits = json_object_new_object(), *cx = json_object_new_object(),
                *cs = json_object_new_object();
    json_object_object_add(msg, "type", json_object_new_string("identify"));
    if (json_object_object_get_ex(in, "userId", &v)) json_object_object_add(msg, "userId", json_object_get(v));
    if (json_object_object_get_ex(in, "anonymousId", &v)) json_object_object_add(msg, "anonymousId", json_object_get(v));
    json_object_object_add(traits, "consent", json_object_get(c));
    json_object_object_add(msg, "traits", traits);
    json_object_object_get_ex(in, "source", &v);
    json_object_object_add(cs, "source", json_object_get(v));
    json_object_object_add(cx, "consent", cs);
    json_object_object_add(msg, "context", cx);
    const char *text = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
    int64_t received_us = (int64_t)jd_clock_now(eng_clock(a->e));   /* the edge: the engine's clock */
    ingest_batch *b = NULL;
    jd_err err;
    jd_err_clear(&err);
    int rc = ingest_parse(&a->lim, INGEST_ROUTE_IDENTIFY, text, strlen(text), received_us, NULL, NULL, &b, &err);
    json_object_put(msg);
    json_object_put(in);
    if (rc != JD_OK) {
        http_reply_error(r, rc == JD_ELIMIT ? 413 : 400, err.msg, err.where);
        return;
    }
    submit(a, r, b);
}
