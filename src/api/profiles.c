/* src/api/profiles.c -- GET /v1/profiles/{userId or anonymousId},
 * GET /v1/profiles/{id}/journeys and GET /v1/profiles/{id}/segments (admin token).
 * A read is a message to the owning shard (eng_profile_get,
 * eng_profile_journeys); the reply is sent from the shard thread.
 *
 * The route is a prefix route and its tail is URL-decoded, so an id that itself
 * ends in "/journeys" (sent as "%2Fjourneys") reads as the journeys of the id
 * before it: ids of that shape cannot be looked up here. */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

#define JOURNEYS_SUFFIX "/journeys"
#define SEGMENTS_SUFFIX "/segments"

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t sn = strlen(suffix);
    return n > sn && strcmp(s + n - sn, suffix) == 0;
}

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
    const char *tail = http_req_path_tail(r);
    size_t n = strlen(tail);
    bool journeys = ends_with(tail, n, JOURNEYS_SUFFIX), segments = ends_with(tail, n, SEGMENTS_SUFFIX);
    if (!api__enter(a)) {
        api__refuse(a, r, R_UNAVAILABLE, 503, "journeyd is shutting down", NULL);
        return;
    }
    http_defer(r);
    if (journeys) {
        /* The id is copied before the call: the reply (and with it `tail`) may
         * be gone as soon as the engine has the message. */
        char *id = jd_xstrndup(tail, n - strlen(JOURNEYS_SUFFIX));
        api_pending *p = api__pending(r, 200, "no journey history for this userId or anonymousId");
        eng_profile_journeys(a->e, id, api__on_json, p);
        free(id);
    } else if (segments) {
        char *id = jd_xstrndup(tail, n - strlen(SEGMENTS_SUFFIX));
        eng_profile_segments(a->e, id, api__on_json, api__pending(r, 200, "no profile"));
        free(id);
    } else {
        eng_profile_get(a->e, tail, on_profile, r);
    }
    api__leave(a);
}

/* DELETE /v1/profiles/{userId or anonymousId}: the person goes, through the
 * log (eng_profile_delete); docs/api.md says what is kept and why. */
void api__profile_delete(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    api_pending *p = api__begin(a, r, 200, "no profile with this userId or anonymousId");
    if (!p) return;
    char *id = jd_xstrdup(http_req_path_tail(r));   /* copied: see api__profile_get */
    eng_profile_delete(a->e, id, api__on_json, p);
    free(id);
    api__leave(a);
}

/* GET /v1/profiles?trait=email&value=ana@example.com[&limit=N]: the keys of
 * the profiles whose trait has that value (a scan of every partition). */
void api__profiles_find(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    const char *trait = http_req_query(r, "trait"), *value = http_req_query(r, "value");
    uint32_t limit;
    if (!trait || !*trait || !value) {
        http_reply_error(r, 400, "trait and value are required (GET /v1/profiles?trait=email&value=...)", trait && *trait ? "value" : "trait");
        return;
    }
    if (!api__limit(r, &limit)) return;
    api_pending *p = api__begin(a, r, 200, "no profiles");
    if (!p) return;
    eng_profiles_find(a->e, trait, value, limit, api__on_json, p);
    api__leave(a);
}
