/* src/api/journeys.c -- the journeys admin API and GET /v1/intents (admin token).
 *
 *   GET  /v1/journeys                      list (eng_journeys_get, no documents)
 *   POST /v1/journeys                      create a draft (201; 409 if the id exists)
 *   GET  /v1/journeys/{id}                 one journey with every version's document
 *   PUT  /v1/journeys/{id}                 create or replace the draft
 *   GET  /v1/journeys/{id}/versions        just the "versions" array of the above
 *   POST /v1/journeys/{id}/publish         the draft, or the document in the body
 *   POST /v1/journeys/{id}/pause|resume|archive
 *   POST /v1/journeys/{id}/enter           {"userId":..} or {"anonymousId":..}
 *   GET  /v1/intents?userId=&limit=        the newest intents
 *   (GET /v1/profiles/{id}/journeys is in profiles.c and answers through here.)
 *
 * Every engine call is deferred: the handler validates what it can, then
 * http_defer + the eng_* call; the engine's callback (a committer or shard
 * thread) answers through on_json, which maps the engine's rc to a status with
 * one table. docs/api.md "Journeys" is the user-facing contract.
 *
 * Refusals counted in journeyd_events_refused_total are only the 401s and
 * 503s (as for profiles): a bad journey document is not a refused event.
 *
 * Invariants:
 *  (1) A document is parsed here (jrn_doc_parse, name "api") before it goes to
 *      the engine: a bad document is answered 400 with every diagnostic without
 *      touching the log, and the id of POST /v1/journeys comes from it. The
 *      engine checks again against the registry (the state may have changed).
 *  (2) A deferred request is answered exactly once, by on_json, which also
 *      frees the pending struct (and the ids it owns: the engine may keep
 *      pointers to them until it calls back).
 */
#include "api_int.h"
#include "journeyd/journey.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INTENTS_LIMIT_DEFAULT 100u
#define INTENTS_LIMIT_MAX     1000u
#define DIAGS_JSON_MAX        (256u * 1024)   /* at most ~100 diagnostics of < 400 bytes */

/* ---- engine rc -> HTTP status: the one table ---------------------------- */

static const struct { int rc; int status; } status_map[] = {
    { JD_OK, 200 },          /* 201 for a create: the caller's ok_status */
    { JD_ENOTFOUND, 404 },
    { JD_EBUSY, 409 },
    { JD_EINVAL, 400 },
    { JD_EIO, 503 },
    { JD_ELIMIT, 413 },
};

static int status_of(int rc, int ok_status)
{
    if (rc == JD_OK) return ok_status;
    for (size_t i = 0; i < JD_ARRAY_LEN(status_map); i++)
        if (status_map[i].rc == rc) return status_map[i].status;
    return 500;
}

/* ---- deferred replies (2) ----------------------------------------------- */

struct api_pending {
    http_req *r;
    int       ok_status;       /* 200, or 201 for POST /v1/journeys */
    bool      versions_only;   /* GET .../versions: answer the "versions" array */
    char     *missing;         /* the 404 message when the engine gives none (owned) */
    char     *id;              /* ids handed to the engine (owned) */
};

api_pending *api__pending(http_req *r, int ok_status, const char *missing)
{
    api_pending *p = jd_xcalloc(1, sizeof *p);
    p->r = r;
    p->ok_status = ok_status;
    p->missing = jd_xstrdup(missing);
    return p;
}

static void pending_destroy(api_pending *p)
{
    free(p->missing);
    free(p->id);
    free(p);
}

/* The "versions" member of one journey's JSON, as its own document. */
static void reply_versions(http_req *r, const char *json, size_t n)
{
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, json, (int)n);
    json_object *v = NULL;
    if (o && json_object_object_get_ex(o, "versions", &v) && json_object_is_type(v, json_type_array)) {
        size_t len = 0;
        const char *s = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        http_reply(r, 200, "application/json", s, len);
    } else {
        http_reply_error(r, 500, "the engine's journey has no versions array", NULL);
    }
    json_object_put(o);
    json_tokener_free(tok);
}

void api__on_json(void *ctx, int rc, const jd_err *err, const char *json, size_t n)
{
    api_pending *p = ctx;
    int status = status_of(rc, p->ok_status);
    if (rc == JD_OK && p->versions_only) {
        reply_versions(p->r, json, n);
    } else if (json && n) {
        http_reply(p->r, status, "application/json", json, n);
    } else {
        const char *msg = err && err->msg[0] ? err->msg : rc == JD_ENOTFOUND ? p->missing : jd_strerror(rc);
        http_reply_error(p->r, status, msg, err ? err->where : NULL);
    }
    pending_destroy(p);
}

/* ---- shared steps -------------------------------------------------------- */

bool api__admitted(api_ctx *a, http_req *r)
{
    if (api__admin_ok(a, r)) return true;
    api__refuse(a, r, R_UNAUTHORIZED, 401, "missing or unknown admin token (Authorization: Bearer)", NULL);
    return false;
}

/* Enters the engine and defers r: NULL when stopping (r was answered 503).
 * The caller makes one eng_* call with api__on_json and p, then api__leave. */
api_pending *api__begin(api_ctx *a, http_req *r, int ok_status, const char *missing)
{
    if (!api__enter(a)) {
        api__refuse(a, r, R_UNAVAILABLE, 503, "journeyd is shutting down", NULL);
        return NULL;
    }
    http_defer(r);
    return api__pending(r, ok_status, missing);
}

static char *journey_missing(const char *id) { return jd_strfmt("no journey '%s'", id); }

/* Journey documents are YAML or JSON: a Content-Type, when sent, must say so.
 * (curl -d sends application/x-www-form-urlencoded and strips newlines, which
 * breaks YAML: refusing it tells the user to use --data-binary.) */
static const char *const doc_types[] = {
    "application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/plain",
};

bool api__doc_type_ok(http_req *r)
{
    const char *ct = http_req_header(r, "Content-Type");
    if (!ct) return true;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
    for (size_t i = 0; i < JD_ARRAY_LEN(doc_types); i++)
        if (strlen(doc_types[i]) == n && strncasecmp(ct, doc_types[i], n) == 0) return true;
    char *msg = jd_strfmt("unsupported content type %.*s for a journey document (expected application/json, "
                          "application/yaml, application/x-yaml, text/yaml or text/plain)", (int)n, ct);
    http_reply_error(r, 415, msg, NULL);
    free(msg);
    return false;
}

/* {"error":"...","errors":[{"where","node","message"},...]}: the shape the
 * engine uses for JD_EINVAL, so a client reads one format. */
void api__reply_diags(http_req *r, const jrn_diags *d)
{
    jd_buf b;
    jd_buf_init(&b, DIAGS_JSON_MAX);
    /* The message is the registry's (jrn_reg_check): "the document has N error(s): <first>". */
    char *msg = jd_strfmt("the document has %zu error(s)%s%s", d->n, d->n ? ": " : "", d->n ? d->v[0].msg : "");
    jd_buf_adds(&b, "{\"error\":");
    jd_buf_add_json_str(&b, msg, strlen(msg));
    jd_buf_adds(&b, ",\"errors\":[");
    free(msg);
    for (size_t i = 0; i < d->n; i++) {
        const jrn_diag *g = &d->v[i];
        size_t mark = b.len;
        int rc = jd_buf_adds(&b, i ? ",{\"where\":" : "{\"where\":");
        rc |= jd_buf_add_json_str(&b, g->where, strlen(g->where));
        rc |= jd_buf_adds(&b, ",\"node\":");
        rc |= jd_buf_add_json_str(&b, g->node, strlen(g->node));
        rc |= jd_buf_adds(&b, ",\"message\":");
        rc |= jd_buf_add_json_str(&b, g->msg, strlen(g->msg));
        rc |= jd_buf_adds(&b, "}");
        if (rc != JD_OK) {             /* cannot happen within JRN's 100 diagnostics; stay valid JSON */
            b.data[b.len = mark] = '\0';
            break;
        }
    }
    jd_buf_adds(&b, "]}");
    http_reply(r, 400, "application/json", b.data, b.len);
    jd_buf_release(&b);
}

/* Parses the body as a journey document (1). NULL when r was answered (415 or
 * 400 with the diagnostics); else returns owned (jrn_doc_destroy). */
static jrn_doc *parse_doc(api_ctx *a, http_req *r, const char *body, size_t n)
{
    if (!api__doc_type_ok(r)) return NULL;
    jrn_doc *doc = NULL;
    jrn_diags diags = { 0 };
    if (jrn_doc_parse("api", body, n, eng_journey_env(a->e), &doc, &diags) != JD_OK) {
        api__reply_diags(r, &diags);
        doc = NULL;
    }
    jrn_diags_release(&diags);
    return doc;
}

/* 400 unless the document's id is the path's. */
static bool id_matches(http_req *r, const jrn_doc *doc, const char *id)
{
    if (strcmp(doc->id, id) == 0) return true;
    char *msg = jd_strfmt("the document's id is '%s', not '%s' (the path's)", doc->id, id);
    http_reply_error(r, 400, msg, "id");
    free(msg);
    return false;
}

/* One change through the log (eng_journey_change). req->id must be p-owned or outlive the call. */
static void change(api_ctx *a, http_req *r, const eng_journey_req *req, int ok_status)
{
    char *missing = journey_missing(req->id);
    api_pending *p = api__begin(a, r, ok_status, missing);
    free(missing);
    if (!p) return;
    p->id = jd_xstrdup(req->id);
    eng_journey_req q = *req;
    q.id = p->id;
    eng_journey_change(a->e, &q, api__on_json, p);
    api__leave(a);
}

/* ---- /v1/journeys --------------------------------------------------------- */

void api__journeys_list(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    api_pending *p = api__begin(a, r, 200, "no journeys");
    if (!p) return;
    eng_journeys_get(a->e, NULL, false, api__on_json, p);
    api__leave(a);
}

void api__journey_create(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    size_t n;
    const char *body = http_req_body(r, &n);
    jrn_doc *doc = parse_doc(a, r, body, n);
    if (!doc) return;
    eng_journey_req q = { .op = "draft", .id = doc->id, .text = body, .text_len = n,
                          .source = "api", .create_only = true };
    change(a, r, &q, 201);
    jrn_doc_destroy(doc);
}

/* ---- /v1/journeys/{id}[/action] -------------------------------------------- */

/* Splits the tail "id" or "id/action"; returns owned id (free), *action the
 * rest ("" when none), or NULL (r answered 404) when the tail has more parts. */
char *api__split_tail(http_req *r, const char **action)
{
    const char *tail = http_req_path_tail(r);
    const char *slash = strchr(tail, '/');
    *action = slash ? slash + 1 : "";
    if (slash == tail || strchr(*action, '/') || (slash && !slash[1])) {
        char *msg = jd_strfmt("no route for %s", http_req_path(r));
        http_reply_error(r, 404, msg, NULL);
        free(msg);
        return NULL;
    }
    return slash ? jd_xstrndup(tail, (size_t)(slash - tail)) : jd_xstrdup(tail);
}

void api__no_route(http_req *r)
{
    char *msg = jd_strfmt("no route for %s %s", http_req_method(r), http_req_path(r));
    http_reply_error(r, 404, msg, NULL);
    free(msg);
}

static void journey_get(api_ctx *a, http_req *r, const char *id, bool versions_only)
{
    char *missing = journey_missing(id);
    api_pending *p = api__begin(a, r, 200, missing);
    free(missing);
    if (!p) return;
    p->versions_only = versions_only;
    p->id = jd_xstrdup(id);
    eng_journeys_get(a->e, p->id, true, api__on_json, p);
    api__leave(a);
}

void api__journey_get(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    const char *action;
    char *id = api__split_tail(r, &action);
    if (!id) return;
    if (!action[0]) journey_get(a, r, id, false);
    else if (strcmp(action, "versions") == 0) journey_get(a, r, id, true);
    else api__no_route(r);
    free(id);
}

void api__journey_put(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    const char *action;
    char *id = api__split_tail(r, &action);
    if (!id) return;
    if (action[0]) {
        api__no_route(r);
        free(id);
        return;
    }
    size_t n;
    const char *body = http_req_body(r, &n);
    jrn_doc *doc = parse_doc(a, r, body, n);
    if (doc && id_matches(r, doc, id)) {
        eng_journey_req q = { .op = "draft", .id = id, .text = body, .text_len = n, .source = "api" };
        change(a, r, &q, 200);
    }
    jrn_doc_destroy(doc);
    free(id);
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return false;
    return true;
}

/* An empty body publishes the draft; a document publishes itself (1). */
static void do_publish(api_ctx *a, http_req *r, const char *id, const char *op)
{
    size_t n;
    const char *body = http_req_body(r, &n);
    eng_journey_req q = { .op = op, .id = id, .source = "api" };
    if (blank(body, n)) {
        change(a, r, &q, 200);
        return;
    }
    jrn_doc *doc = parse_doc(a, r, body, n);
    if (doc && id_matches(r, doc, id)) {
        q.text = body;
        q.text_len = n;
        change(a, r, &q, 200);
    }
    jrn_doc_destroy(doc);
}

static void do_status(api_ctx *a, http_req *r, const char *id, const char *op)
{
    eng_journey_req q = { .op = op, .id = id, .source = "api" };
    change(a, r, &q, 200);
}

/* The person's id from {"userId":..} or {"anonymousId":..} (string or integer,
 * as the tracking API takes them); returns owned, or NULL with r answered 400. */
static char *enter_person(http_req *r)
{
    size_t n;
    const char *body = http_req_body(r, &n);
    char *out = NULL;
    const char *bad = NULL, *at = NULL;
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, body, (int)n);
    size_t end = o ? json_tokener_get_parse_end(tok) : 0;
    while (end < n && (body[end] == ' ' || body[end] == '\t' || body[end] == '\r' || body[end] == '\n')) end++;
    if (!o || json_tokener_get_error(tok) != json_tokener_success || end != n ||
        !json_object_is_type(o, json_type_object)) {
        bad = "expected a JSON object {\"userId\": \"...\"} or {\"anonymousId\": \"...\"}";
        goto out;
    }
    static const char *const keys[] = { "userId", "anonymousId" };   /* userId wins, as profile keys do */
    for (size_t i = 0; i < JD_ARRAY_LEN(keys) && !out && !bad; i++) {
        json_object *v;
        if (!json_object_object_get_ex(o, keys[i], &v) || json_object_is_type(v, json_type_null)) continue;
        if (json_object_is_type(v, json_type_string)) {
            if (json_object_get_string_len(v) == 0) continue;   /* "" is absent, as in ingest */
            out = jd_xstrdup(json_object_get_string(v));
        } else if (json_object_is_type(v, json_type_int)) {
            out = jd_strfmt("%lld", (long long)json_object_get_int64(v));
        } else {
            bad = "expected string or integer";
            at = keys[i];
        }
    }
    if (!out && !bad) bad = "userId or anonymousId is required";
out:
    if (bad) http_reply_error(r, 400, bad, at);
    json_object_put(o);
    json_tokener_free(tok);
    return out;
}

static void do_enter(api_ctx *a, http_req *r, const char *id, const char *op)
{
    char *person = enter_person(r);
    if (!person) return;
    char *missing = journey_missing(id);
    api_pending *p = api__begin(a, r, 200, missing);
    free(missing);
    if (!p) {
        free(person);
        return;
    }
    /* Both ids live in one allocation owned by p: "journey\0person". */
    size_t jn = strlen(id), pn = strlen(person);
    p->id = jd_xmalloc(jn + pn + 2);
    memcpy(p->id, id, jn + 1);
    memcpy(p->id + jn + 1, person, pn + 1);
    free(person);
    eng_journey_enter(a->e, p->id, p->id + jn + 1, api__on_json, p);
    api__leave(a);
}

static const struct journey_action {
    const char *name;
    void (*run)(api_ctx *a, http_req *r, const char *id, const char *op);
} post_actions[] = {
    { "publish", do_publish },
    { "pause",   do_status },
    { "resume",  do_status },
    { "archive", do_status },
    { "enter",   do_enter },
};

void api__journey_post(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    const char *action;
    char *id = api__split_tail(r, &action);
    if (!id) return;
    const struct journey_action *act = NULL;
    for (size_t i = 0; i < JD_ARRAY_LEN(post_actions) && !act; i++)
        if (strcmp(action, post_actions[i].name) == 0) act = &post_actions[i];
    if (act) act->run(a, r, id, act->name);
    else api__no_route(r);
    free(id);
}

/* ---- /v1/intents ----------------------------------------------------------- */

/* limit: digits only, 1..INTENTS_LIMIT_MAX; false when out of range or not a number. */
static bool parse_limit(const char *s, uint32_t *out)
{
    if (!s) {
        *out = INTENTS_LIMIT_DEFAULT;
        return true;
    }
    uint32_t v = 0;
    if (!*s) return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        v = v * 10 + (uint32_t)(*s - '0');
        if (v > INTENTS_LIMIT_MAX) return false;
    }
    *out = v;
    return v >= 1;
}

bool api__limit(http_req *r, uint32_t *out)
{
    if (parse_limit(http_req_query(r, "limit"), out)) return true;
    http_reply_error(r, 400, "limit must be a whole number from 1 to 1000", "limit");
    return false;
}

void api__intents_get(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    uint32_t limit;
    if (!api__limit(r, &limit)) return;
    const char *person = http_req_query(r, "userId");
    if (!person || !*person) person = http_req_query(r, "anonymousId");
    if (person && !*person) person = NULL;
    api_pending *p = api__begin(a, r, 200, "no intents");
    if (!p) return;
    p->id = person ? jd_xstrdup(person) : NULL;
    eng_intents_get(a->e, p->id, limit, api__on_json, p);
    api__leave(a);
}
