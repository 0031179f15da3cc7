/* src/api/segments.c -- the segments admin API (admin token).
 *
 *   GET  /v1/segments                       every segment with its size
 *   POST /v1/segments                       define one (201; 409 if the id exists)
 *   GET  /v1/segments/{id}                  one, with its size
 *   PUT  /v1/segments/{id}                  define or redefine (members re-evaluated)
 *   GET  /v1/segments/{id}/members?after=&limit=   profile keys in byte order, paginated
 *   GET  /v1/segments/{id}/history?granularity=hour|day&from=&to=   size at each
 *                                           hour or day boundary, oldest first
 *   (GET /v1/profiles/{id}/segments is in profiles.c and answers through here.)
 *
 * A definition is a segment document (YAML or JSON: id, name, description,
 * when), parsed here first so a bad one gets 400 with every error without
 * touching the log; then it goes through the log like a journey change
 * (eng_journey_change, op "segment"). docs/api.md "Segments" is the contract.
 */
#include "api_int.h"
#include "journeyd/runtime.h"

#include <stdlib.h>
#include <string.h>

/* Parses the body as a segment document: NULL when r was answered. */
static jrn_segment *parse_segment(http_req *r, const char *body, size_t n)
{
    if (!api__doc_type_ok(r)) return NULL;
    jrn_segment *s = NULL;
    jrn_diags d = { 0 };
    if (jrn_segment_parse("api", body, n, &s, &d) != JD_OK) api__reply_diags(r, &d);
    jrn_diags_release(&d);
    return s;
}

static void define(api_ctx *a, http_req *r, const char *id, const char *body, size_t n, bool create, int ok_status)
{
    char *missing = jd_strfmt("no segment '%s'", id);
    api_pending *p = api__begin(a, r, ok_status, missing);
    free(missing);
    if (!p) return;
    eng_journey_req q = { .op = "segment", .id = id, .text = body, .text_len = n, .source = "api",
                          .create_only = create };
    eng_journey_change(a->e, &q, api__on_json, p);   /* copies what it keeps */
    api__leave(a);
}

void api__segments_list(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    api_pending *p = api__begin(a, r, 200, "no segments");
    if (!p) return;
    eng_segments_get(a->e, NULL, api__on_json, p);
    api__leave(a);
}

void api__segment_create(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    size_t n;
    const char *body = http_req_body(r, &n);
    jrn_segment *s = parse_segment(r, body, n);
    if (!s) return;
    define(a, r, s->id, body, n, true, 201);
    jrn_segment_destroy(s);
}

void api__segment_put(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    const char *action;
    char *id = api__split_tail(r, &action);
    if (!id) return;
    size_t n;
    const char *body = http_req_body(r, &n);
    jrn_segment *s = NULL;
    if (*action) api__no_route(r);
    else if ((s = parse_segment(r, body, n)) && strcmp(s->id, id) != 0) {
        char *msg = jd_strfmt("the document's id is '%s', not '%s' (the path's)", s->id, id);
        http_reply_error(r, 400, msg, "id");
        free(msg);
    } else if (s) {
        define(a, r, id, body, n, false, 200);
    }
    jrn_segment_destroy(s);
    free(id);
}

/* A query time: absent leaves *out; false when present and not RFC 3339. */
static bool query_time(http_req *r, const char *key, int64_t *out)
{
    const char *v = http_req_query(r, key);
    return !v || jd_time_parse(v, strlen(v), out) == JD_OK;
}

/* The history query; false when r was answered with a 400 naming the
 * parameter. */
static bool history_query(http_req *r, bool *daily, int64_t *from, int64_t *to)
{
    const char *g = http_req_query(r, "granularity");
    *from = INT64_MIN;
    *to = INT64_MAX;
    if (g && strcmp(g, "hour") != 0 && strcmp(g, "day") != 0) {
        http_reply_error(r, 400, "granularity must be hour or day", "granularity");
        return false;
    }
    *daily = g && strcmp(g, "day") == 0;
    if (!query_time(r, "from", from)) {
        http_reply_error(r, 400, "from must be an RFC 3339 time like 2026-03-02T15:00:00Z", "from");
        return false;
    }
    if (!query_time(r, "to", to)) {
        http_reply_error(r, 400, "to must be an RFC 3339 time like 2026-03-02T15:00:00Z", "to");
        return false;
    }
    if (*from > *to) {
        http_reply_error(r, 400, "from is after to", "from");
        return false;
    }
    return true;
}

void api__segment_get(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    const char *action;
    char *id = api__split_tail(r, &action);
    if (!id) return;
    uint32_t limit = 0;
    bool members = strcmp(action, "members") == 0, history = strcmp(action, "history") == 0, daily = false;
    int64_t from = 0, to = 0;
    if (*action && !members && !history) {
        api__no_route(r);
    } else if (members && !api__limit(r, &limit)) {   /* answered 400 */
    } else if (!history || history_query(r, &daily, &from, &to)) {
        char *missing = jd_strfmt("no segment '%s'", id);
        api_pending *p = api__begin(a, r, 200, missing);
        free(missing);
        if (p) {
            if (members) eng_segment_members(a->e, id, http_req_query(r, "after"), limit, api__on_json, p);
            else if (history) eng_segment_history(a->e, id, daily, from, to, api__on_json, p);
            else eng_segments_get(a->e, id, api__on_json, p);
            api__leave(a);
        }
    }
    free(id);
}
