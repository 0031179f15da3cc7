/* src/api/api_int.h -- private to src/api/. */
#ifndef JOURNEYD_API_INT_H
#define JOURNEYD_API_INT_H

#include "journeyd/api.h"
#include "journeyd/ingest.h"

#include <stdatomic.h>

/* Why a request was refused: the label of journeyd_events_refused_total. */
enum { R_INVALID, R_UNAUTHORIZED, R_TOO_LARGE, R_UNAVAILABLE, R_COUNT };
extern const char *const api__refused_names[R_COUNT];

struct api_ctx {
    const jd_config *cfg;
    eng             *e;
    http_route      *routes;
    size_t           nroutes;
    ingest_limits    lim;
    atomic_bool      stopping;
    atomic_int       inside;               /* handlers currently using the engine */
    atomic_uint_fast64_t refused[R_COUNT];
    atomic_uint_fast64_t requests_ok, bytes_in;
    jd_travel_clock *travel;               /* clock.travel: the clock POST /v1/clock moves; NULL off */
    const dlv_links *links;                /* tracking links (track.c); NULL: /t/ answers 404 */
};

/* Enter/leave the engine: false means stopping (reply 503 and return). */
bool api__enter(api_ctx *a);
void api__leave(api_ctx *a);
bool api__admin_ok(api_ctx *a, http_req *r);
void api__refuse(api_ctx *a, http_req *r, int reason, int status, const char *msg, const char *at);

/* Shared by journeys.c and segments.c (journeys.c). */
struct jrn_diags;
typedef struct api_pending api_pending;
bool api__admitted(api_ctx *a, http_req *r);                       /* else answered 401 */
api_pending *api__begin(api_ctx *a, http_req *r, int ok_status, const char *missing);   /* NULL: answered 503 */
bool api__doc_type_ok(http_req *r);                                 /* else answered 415 */
void api__reply_diags(http_req *r, const struct jrn_diags *d);      /* 400 with every error */
char *api__split_tail(http_req *r, const char **action);            /* "id[/action]"; NULL: answered 404 */
void api__no_route(http_req *r);
/* ?limit=: 1..1000, default 100; false when bad (r was answered 400 naming limit). */
bool api__limit(http_req *r, uint32_t *out);
/* Takes b: its messages become one transaction, r deferred until done(ctx)
 * runs (after the log made it durable, or refused it). false when stopping:
 * r was answered 503 and done will not run (the caller frees ctx). */
bool api__submit_batch(api_ctx *a, http_req *r, ingest_batch *b, eng_done_fn done, void *ctx);
bool api__intent_id_ok(const char *id);   /* an intent id as the API writes it: 16 lowercase hex digits (deliveries.c) */

/* Handlers, one file per family. */
void api__segments_list(http_req *r, void *ctx);
void api__segment_create(http_req *r, void *ctx);
void api__segment_put(http_req *r, void *ctx);
void api__segment_get(http_req *r, void *ctx);
void api__ingest(http_req *r, void *ctx);
void api__profile_get(http_req *r, void *ctx);
void api__profile_delete(http_req *r, void *ctx);
void api__profiles_find(http_req *r, void *ctx);
void api__consent(http_req *r, void *ctx);
void api__healthz(http_req *r, void *ctx);
void api__clock_get(http_req *r, void *ctx);
void api__clock_post(http_req *r, void *ctx);
void api__metrics(http_req *r, void *ctx);
void api__journeys_list(http_req *r, void *ctx);     /* journeys.c */
void api__journey_create(http_req *r, void *ctx);
void api__journey_get(http_req *r, void *ctx);
void api__journey_put(http_req *r, void *ctx);
void api__journey_post(http_req *r, void *ctx);
void api__intents_get(http_req *r, void *ctx);
void api__tasks_list(http_req *r, void *ctx);        /* tasks.c */
void api__task_get(http_req *r, void *ctx);
void api__task_post(http_req *r, void *ctx);
void api__track_open(http_req *r, void *ctx);        /* track.c */
void api__track_click(http_req *r, void *ctx);
void api__track_unsub_page(http_req *r, void *ctx);
void api__track_unsub(http_req *r, void *ctx);
void api__provider_webhook(http_req *r, void *ctx);
void api__deliveries_list(http_req *r, void *ctx);   /* deliveries.c */
void api__delivery_get(http_req *r, void *ctx);
void api__delivery_post(http_req *r, void *ctx);

/* One journey document per request: the same ceiling as JRN_MAX_DOC_BYTES
 * (src/journey/journey_int.h, what `journeyd validate` reads), named in the 413. */
#define API_MAX_DOC_BYTES (1u << 20)
#define API_MAX_DOC_KEY   "JRN_MAX_DOC_BYTES, fixed"

/* A deferred engine read or change (journeys.c): api__pending makes one for r
 * (answered with ok_status on JD_OK, `missing` is the 404 message when the
 * engine gives none); api__on_json is the eng_json_fn that answers r with the
 * status of the engine's rc (one table) and frees the pending. */
api_pending *api__pending(http_req *r, int ok_status, const char *missing);
void api__on_json(void *ctx, int rc, const jd_err *err, const char *json, size_t n);

#endif
