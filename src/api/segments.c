/* src/api/segments.c -- the segments admin API (admin token).
 *
 *   GET  /v1/segments                       every segment with its size
 *   POST /v1/segments                       define one (201; 409 if the id exists)
 *   GET  /v1/segments/{id}                  one, with its size
 *   PUT  /v1/segments/{id}                  define or redefine (members re-evaluated)
 *   GET  /v1/segments/{id}/members?after=&limit=   profile keys in byte order, paginated
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

void api__segment_get(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    const char *action;
    char *id = api__split_tail(r, &action);
    if (!id) return;
    uint32_t limit;
    if (*action && strcmp(action, "members") != 0) {
        api__no_route(r);
    } else if (*action && !api__parse_limit(http_req_query(r, "limit"), &limit)) {
        http_reply_error(r, 400, "limit must be a whole number from 1 to 1000", "limit");
    } else {
        char *missing = jd_strfmt("no segment '%s'", id);
        api_pending *p = api__begin(a, r, 200, missing);
        free(missing);
        if (p) {
            if (*action) eng_segment_members(a->e, id, http_req_query(r, "after"), limit, api__on_json, p);
            else eng_segments_get(a->e, id, api__on_json, p);
            api__leave(a);
        }
    }
    free(id);
}
