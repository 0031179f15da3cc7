/* src/api/tasks.c -- the human task queue (admin token); docs/api.md "Tasks".
 *
 *   GET  /v1/tasks?queue=Q[&status=open|claimed|done][&limit=N]   newest first
 *   GET  /v1/tasks/{id}
 *   POST /v1/tasks/{id}/claim      {"assignee":"ann"}
 *   POST /v1/tasks/{id}/complete   {"outcome":"won","note":"...","assignee":"ann"}
 *
 * What is checked here needs no state: the query and the body (400 naming
 * the field). The engine answers the rest (404, 409) and replies after the
 * TASK record applied (src/engine/tasks.c). The edge reads the engine clock
 * once per change, as ingest does: it is the record's time.
 */
#include "api_int.h"
#include "journeyd/limits.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_MAX 64   /* a task node's queue: [A-Za-z0-9_-]{1,64} (docs/journeys.md 5.5) */

static bool queue_ok(const char *q)
{
    size_t n = 0;
    for (; q[n]; n++) {
        char c = q[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return n >= 1 && n <= QUEUE_MAX;
}

void api__tasks_list(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    const char *queue = http_req_query(r, "queue"), *status = http_req_query(r, "status");
    uint32_t limit;
    if (!queue || !*queue) {
        http_reply_error(r, 400, "queue is required (GET /v1/tasks?queue=sales)", "queue");
        return;
    }
    if (!queue_ok(queue)) {
        http_reply_error(r, 400, "queue must be 1 to 64 letters, digits, '_' or '-'", "queue");
        return;
    }
    if (status && strcmp(status, "open") && strcmp(status, "claimed") && strcmp(status, "done")) {
        http_reply_error(r, 400, "status must be open, claimed or done", "status");
        return;
    }
    if (!api__limit(r, &limit)) return;
    api_pending *p = api__begin(a, r, 200, "no tasks");
    if (!p) return;
    eng_tasks_list(a->e, queue, status, limit, api__on_json, p);
    api__leave(a);
}

void api__task_get(http_req *r, void *ctx)
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
    api_pending *p = api__begin(a, r, 200, "no such task");
    if (p) {
        eng_task_get(a->e, id, api__on_json, p);
        api__leave(a);
    }
    free(id);
}

/* A string member: absent (NULL, true), or a string of 1..max bytes (set,
 * true); anything else answers r 400 naming k and returns false. */
static bool member(http_req *r, json_object *o, const char *k, size_t max, bool required, const char **out)
{
    json_object *v;
    *out = NULL;
    if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null)) {
        if (!required) return true;
        char *msg = jd_strfmt("%s is required", k);
        http_reply_error(r, 400, msg, k);
        free(msg);
        return false;
    }
    bool str = json_object_is_type(v, json_type_string);
    size_t n = str ? (size_t)json_object_get_string_len(v) : 0;
    if (str && n == 0 && !required) return true;   /* "" is absent, as in ingest */
    if (n == 0 || n > max) {
        char *msg = jd_strfmt("%s must be a string of 1 to %zu bytes", k, max);
        http_reply_error(r, 400, msg, k);
        free(msg);
        return false;
    }
    *out = json_object_get_string(v);
    return true;
}

void api__task_post(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    const char *action;
    char *id = api__split_tail(r, &action);
    if (!id) return;
    bool complete = strcmp(action, "complete") == 0;
    if (!complete && strcmp(action, "claim") != 0) {
        api__no_route(r);
        free(id);
        return;
    }
    size_t n;
    const char *body = http_req_body(r, &n);
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, body, (int)n);
    size_t end = o ? json_tokener_get_parse_end(tok) : 0;
    while (end < n && (body[end] == ' ' || body[end] == '\t' || body[end] == '\r' || body[end] == '\n')) end++;
    bool parsed = o && json_tokener_get_error(tok) == json_tokener_success && end == n &&
                  json_object_is_type(o, json_type_object);
    json_tokener_free(tok);
    eng_task_req q = { .id = id, .op = complete ? "complete" : "claim" };
    if (!parsed) {
        http_reply_error(r, 400, complete ? "expected a JSON object {\"outcome\": \"...\"}"
                                          : "expected a JSON object {\"assignee\": \"...\"}", NULL);
        goto out;
    }
    if (!member(r, o, "assignee", JD_TASK_MAX_FIELD, !complete, &q.assignee)) goto out;
    if (complete && (!member(r, o, "outcome", JD_TASK_MAX_FIELD, true, &q.outcome) ||
                     !member(r, o, "note", JD_TASK_MAX_NOTE, false, &q.note)))
        goto out;
    q.at_us = (int64_t)jd_clock_now(eng_clock(a->e));   /* the edge: the record's time */
    api_pending *p = api__begin(a, r, 200, "no such task");
    if (p) {
        eng_task_change(a->e, &q, api__on_json, p);   /* copies what it keeps */
        api__leave(a);
    }
out:
    json_object_put(o);
    free(id);
}
