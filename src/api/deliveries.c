/* src/api/deliveries.c -- the outbox and the dead letters (admin token):
 *   GET  /v1/deliveries?status=pending|dead[&limit=N]   newest first
 *   GET  /v1/deliveries/{id}                           one message by intent id (hex)
 *   POST /v1/deliveries/{id}/retry                     a dead letter goes out again, same id
 * Reads and the retry are messages to the shards and a record through the log
 * (src/engine/outbox.c); docs/api.md "Deliveries". */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

bool api__intent_id_ok(const char *id)
{
    if (strlen(id) != 16) return false;
    for (const char *c = id; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return false;
    return true;
}

void api__deliveries_list(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    uint32_t limit;
    if (!api__limit(r, &limit)) return;
    const char *status = http_req_query(r, "status");
    if (status && strcmp(status, "pending") != 0 && strcmp(status, "dead") != 0) {
        http_reply_error(r, 400, "status must be pending or dead", "status");
        return;
    }
    api_pending *p = api__begin(a, r, 200, "no deliveries");
    if (!p) return;
    eng_deliveries_get(a->e, NULL, status && strcmp(status, "dead") == 0, limit, api__on_json, p);
    api__leave(a);
}

static char *take_id(http_req *r, const char **action)
{
    char *id = api__split_tail(r, action);
    if (id && !api__intent_id_ok(id)) {
        http_reply_error(r, 400, "a message id is the intent id: 16 lowercase hex digits", "id");
        free(id);
        return NULL;
    }
    return id;
}

void api__delivery_get(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    const char *action;
    char *id = take_id(r, &action);
    if (!id) return;
    if (*action) {
        free(id);
        api__no_route(r);
        return;
    }
    api_pending *p = api__begin(a, r, 200, "no such message");
    if (p) {
        eng_deliveries_get(a->e, id, false, 1, api__on_json, p);
        api__leave(a);
    }
    free(id);
}

void api__delivery_post(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    const char *action;
    char *id = take_id(r, &action);
    if (!id) return;
    if (strcmp(action, "retry") != 0) {
        free(id);
        api__no_route(r);
        return;
    }
    api_pending *p = api__begin(a, r, 200, "no such message");
    if (p) {
        eng_delivery_retry(a->e, id, api__on_json, p);
        api__leave(a);
    }
    free(id);
}
