/* src/api/routes.c -- the route table and what every handler shares:
 * authentication, refusals, and the stop protocol.
 *
 * Stop protocol (api_stop): set `stopping`, then wait until `inside` is 0.
 * A handler increments `inside` before looking at `stopping` (api__enter), so
 * once api_stop returns no handler can reach the engine again and eng_close may
 * free it; requests still arriving on open keep-alive connections get a 503.
 */
#include "api_int.h"
#include "journeyd/limits.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const api__refused_names[R_COUNT] = {
    [R_INVALID] = "invalid", [R_UNAUTHORIZED] = "unauthorized", [R_TOO_LARGE] = "too_large",
    [R_UNAVAILABLE] = "unavailable",
};

/* The Segment routes differ only in what they accept; their body limit is
 * filled in from the configuration in api_create; a row with its own max_body
 * keeps it. */
static const http_route route_template[] = {
    { "POST", "/v1/track",    api__ingest, 0, "limits.max_message_bytes" },
    { "POST", "/v1/identify", api__ingest, 0, "limits.max_message_bytes" },
    { "POST", "/v1/page",     api__ingest, 0, "limits.max_message_bytes" },
    { "POST", "/v1/screen",   api__ingest, 0, "limits.max_message_bytes" },
    { "POST", "/v1/group",    api__ingest, 0, "limits.max_message_bytes" },
    { "POST", "/v1/alias",    api__ingest, 0, "limits.max_message_bytes" },
    { "POST", "/v1/batch",    api__ingest, 0, "limits.max_batch_bytes" },
    { "POST", "/v1/import",   api__ingest, 0, "limits.max_batch_bytes" },
    { "GET",  "/v1/profiles/*", api__profile_get, 0, NULL },   /* also {id}/journeys, {id}/segments */
    { "DELETE", "/v1/profiles/*", api__profile_delete, 0, NULL },
    { "GET",  "/v1/profiles",   api__profiles_find, 0, NULL },
    { "POST", "/v1/consent",    api__consent, 0, "limits.max_message_bytes" },
    { "GET",  "/v1/journeys",   api__journeys_list, 0, NULL },
    { "GET",  "/v1/segments",   api__segments_list, 0, NULL },
    { "POST", "/v1/segments",   api__segment_create, API_MAX_DOC_BYTES, API_MAX_DOC_KEY },
    { "GET",  "/v1/segments/*", api__segment_get, 0, NULL },    /* {id}, {id}/members */
    { "PUT",  "/v1/segments/*", api__segment_put, API_MAX_DOC_BYTES, API_MAX_DOC_KEY },
    { "POST", "/v1/journeys",   api__journey_create, API_MAX_DOC_BYTES, API_MAX_DOC_KEY },
    { "GET",  "/v1/journeys/*", api__journey_get, 0, NULL },    /* {id}, {id}/versions */
    { "PUT",  "/v1/journeys/*", api__journey_put, API_MAX_DOC_BYTES, API_MAX_DOC_KEY },
    { "POST", "/v1/journeys/*", api__journey_post, API_MAX_DOC_BYTES, API_MAX_DOC_KEY },  /* publish, pause, ... */
    { "GET",  "/v1/intents",    api__intents_get, 0, NULL },
    { "GET",  "/v1/deliveries", api__deliveries_list, 0, NULL },
    { "GET",  "/v1/deliveries/*", api__delivery_get, 0, NULL },     /* {id} */
    { "POST", "/v1/deliveries/*", api__delivery_post, 0, "limits.max_message_bytes" },  /* {id}/retry */
    { "GET",  "/v1/clock",      api__clock_get, 0, NULL },
    { "POST", "/v1/clock",      api__clock_post, 0, "limits.max_message_bytes" },
    { "GET",  "/t/o/*",       api__track_open, 0, NULL },          /* tracking links: the token is the auth */
    { "GET",  "/t/c/*",       api__track_click, 0, NULL },
    { "GET",  "/t/u/*",       api__track_unsub_page, 0, NULL },
    { "POST", "/t/u/*",       api__track_unsub, 4096, "List-Unsubscribe=One-Click (RFC 8058), fixed" },
    { "POST", "/v1/webhooks/*", api__provider_webhook, 0, "limits.max_message_bytes" },   /* provider receipts */
    { "GET",  "/v1/tasks",      api__tasks_list, 0, NULL },        /* the human task queue (tasks.c) */
    { "GET",  "/v1/tasks/*",    api__task_get, 0, NULL },
    { "POST", "/v1/tasks/*",    api__task_post, 0, "limits.max_message_bytes" },   /* {id}/claim, {id}/complete */
    { "GET",  "/healthz",     api__healthz, 0, NULL },
    { "GET",  "/metrics",     api__metrics, 0, NULL },
};

void api_set_travel(api_ctx *a, jd_travel_clock *tc) { a->travel = tc; }

api_ctx *api_create(const jd_config *cfg, eng *e)
{
    api_ctx *a = jd_xcalloc(1, sizeof *a);
    a->cfg = cfg;
    a->e = e;
    ingest_limits_default(&a->lim);
    a->lim.max_message_bytes = cfg->max_message_bytes;
    a->lim.max_batch_bytes = cfg->max_batch_bytes;
    a->lim.max_batch_messages = cfg->max_batch_messages;
    a->lim.max_json_depth = cfg->max_json_depth;
    a->nroutes = JD_ARRAY_LEN(route_template);
    a->routes = jd_xcalloc(a->nroutes, sizeof *a->routes);
    memcpy(a->routes, route_template, sizeof route_template);
    for (size_t i = 0; i < a->nroutes; i++) {
        http_route *r = &a->routes[i];
        if (r->max_body) continue;     /* a fixed ceiling (journey documents) */
        if (!r->max_body_key) r->max_body = 64 * 1024;
        else if (strcmp(r->max_body_key, "limits.max_batch_bytes") == 0) r->max_body = cfg->max_batch_bytes;
        else r->max_body = cfg->max_message_bytes;
    }
    return a;
}

void api_destroy(api_ctx *a)
{
    if (!a) return;
    free(a->routes);
    free(a);
}

const http_route *api_routes(api_ctx *a, size_t *n)
{
    *n = a->nroutes;
    return a->routes;
}

bool api__enter(api_ctx *a)
{
    atomic_fetch_add(&a->inside, 1);
    if (!atomic_load(&a->stopping)) return true;
    atomic_fetch_sub(&a->inside, 1);
    return false;
}

void api__leave(api_ctx *a) { atomic_fetch_sub(&a->inside, 1); }

void api_stop(api_ctx *a)
{
    atomic_store(&a->stopping, true);
    while (atomic_load(&a->inside) > 0) {
        struct timespec ts = { 0, 1000000 };   /* handlers leave within microseconds */
        nanosleep(&ts, NULL);
    }
}

bool api__admin_ok(api_ctx *a, http_req *r)
{
    const char *tok = http_req_bearer(r);
    if (!tok) return false;
    size_t n = strlen(tok);
    bool ok = false;
    /* Compare with every token, constant time each: timing tells nothing. */
    for (uint32_t i = 0; i < a->cfg->n_admin_tokens; i++)
        ok |= jd_secret_eq(tok, n, a->cfg->admin_tokens[i], strlen(a->cfg->admin_tokens[i]));
    return ok;
}

void api__refuse(api_ctx *a, http_req *r, int reason, int status, const char *msg, const char *at)
{
    atomic_fetch_add_explicit(&a->refused[reason], 1, memory_order_relaxed);
    http_reply_error(r, status, msg, at);
}
