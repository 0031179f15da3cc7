/* src/api/profiles.c -- GET /v1/profiles/{userId or anonymousId} (admin token).
 * A read is a message to the owning shard (eng_profile_get); the reply is sent
 * from the shard thread. */
#include "api_int.h"

#include <stdlib.h>

static void on_profile(void *ctx, int rc, const char *json, size_t n)
{
    http_req *r = ctx;
    if (rc == JD_OK) http_reply(r, 200, "application/json", json, n);
    else http_reply_error(r, 404, "no profile with this userId or anonymousId", NULL);
}

void api__profile_get(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admin_ok(a, r)) {
        api__refuse(a, r, R_UNAUTHORIZED, 401, "missing or unknown admin token (Authorization: Bearer)", NULL);
        return;
    }
    if (!api__enter(a)) {
        api__refuse(a, r, R_UNAVAILABLE, 503, "journeyd is shutting down", NULL);
        return;
    }
    http_defer(r);
    eng_profile_get(a->e, http_req_path_tail(r), on_profile, r);
    api__leave(a);
}
