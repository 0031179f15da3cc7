/* include/journeyd/api.h -- the HTTP routes: JSON in, module calls, JSON out.
 *
 * Owns: the route table, authentication (write keys for ingest, admin tokens
 * for everything else), status codes and error bodies (docs/api.md), the
 * Prometheus exposition of /metrics, and an orderly stop of request handling.
 * Threading: handlers run on HTTP threads; replies to deferred requests are sent
 * from the committer or shard threads that finish them.
 * Not here: parsing Segment messages (ingest), storing them (engine).
 */
#ifndef JOURNEYD_API_H
#define JOURNEYD_API_H

#include "journeyd/base.h"
#include "journeyd/config.h"
#include "journeyd/engine.h"
#include "journeyd/http.h"

typedef struct api_ctx api_ctx;

/* Borrows cfg and e for its whole life. Returns owned (api_destroy). */
api_ctx *api_create(const jd_config *cfg, eng *e);
void     api_destroy(api_ctx *a);
/* Turns on POST /v1/clock (clock.travel): tc is the engine's clock, borrowed
 * for a's life. Without it the route answers 409 naming clock.travel. */
void     api_set_travel(api_ctx *a, jd_travel_clock *tc);
/* The tracking links GET/POST /t/... verify (borrowed; must outlive a).
 * Without it those routes answer 404. */
void     api_set_links(api_ctx *a, const dlv_links *l);
/* The route table (owned by a; valid until api_destroy). Pass `a` as the
 * server's handler context. */
const http_route *api_routes(api_ctx *a, size_t *n);
/* From here on every request is answered 503 without touching the engine;
 * returns once no handler is still inside the engine (call before eng_close). */
void     api_stop(api_ctx *a);

#endif
