/* src/api/track.c -- the feedback loop's routes: opens, clicks and
 * unsubscribes from signed links, and delivery receipts from providers, all
 * recorded as events in the log (docs/delivery.md "Feedback loop").
 *
 *   GET  /t/o/TOKEN        1x1 GIF; "Email Opened"
 *   GET  /t/c/TOKEN        302 to the target sealed in the token; "Email Link Clicked"
 *   GET  /t/u/TOKEN        a page with a button (GET never unsubscribes: link
 *                          scanners fetch every URL of a message)
 *   POST /t/u/TOKEN        RFC 8058 one-click: consent refused for
 *                          channel/category (source "unsubscribe") and "Unsubscribed"
 *   POST /v1/webhooks/CH   a receipt signed with channel CH's secret:
 *                          "Email Delivered" / "Email Bounced" / "Email Complained";
 *                          a hard bounce or a complaint refuses consent for CH
 *
 * No write key or admin token: a link's token is its own authentication
 * (dlv_link_verify), a receipt's HMAC is. Every record goes through
 * ingest_parse and the log like any event, consent the same way as POST
 * /v1/consent (an identify with traits.consent), so journeys wait on these
 * events and replay sees them. The clock read here is the edge: receivedAt,
 * the receipt timestamp check, links.max_age.
 */
#include "api_int.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECEIPT_SKEW_S 300LL   /* seconds a receipt's X-Journeyd-Timestamp may be from now */

/* GIF89a, 1x1, one transparent pixel. */
static const unsigned char pixel_gif[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
};

void api_set_links(api_ctx *a, const dlv_links *l) { a->links = l; }

/* ---- recording -------------------------------------------------------------- */

typedef enum { DONE_PIXEL, DONE_REDIRECT, DONE_UNSUB, DONE_JSON } done_kind;

typedef struct tpend {
    http_req *r;
    api_ctx  *a;
    done_kind kind;
    char     *location;   /* DONE_REDIRECT */
} tpend;

static const char unsub_done_html[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">"
    "<title>Unsubscribed</title></head><body><p>You are unsubscribed.</p></body></html>\n";

/* Committer thread. An open or a click answers the same whether or not the
 * log took it: the reader must see the image and reach the page; an
 * unsubscribe or a receipt says so only once it is durable. */
static void on_recorded(void *ctx, int status, const jd_err *err, uint64_t lsn)
{
    tpend *p = ctx;
    (void)lsn;
    if (status != JD_OK && (p->kind == DONE_PIXEL || p->kind == DONE_REDIRECT))
        jd_warn("tracking: an event was not recorded (%s)", err && err->msg[0] ? err->msg : "the log is unavailable");
    switch (p->kind) {
    case DONE_PIXEL:
        http_reply_header(p->r, "Cache-Control", "no-store, max-age=0");
        http_reply(p->r, 200, "image/gif", (const char *)pixel_gif, sizeof pixel_gif);
        break;
    case DONE_REDIRECT:
        http_reply_header(p->r, "Location", p->location);
        http_reply_header(p->r, "Cache-Control", "no-store");
        http_reply_header(p->r, "Referrer-Policy", "no-referrer");
        http_reply(p->r, 302, "text/plain; charset=utf-8", "", 0);
        break;
    case DONE_UNSUB:
    case DONE_JSON:
        if (status != JD_OK) {
            api__refuse(p->a, p->r, R_UNAVAILABLE, 503, err && err->msg[0] ? err->msg : "the log is unavailable", NULL);
            break;
        }
        atomic_fetch_add_explicit(&p->a->requests_ok, 1, memory_order_relaxed);
        if (p->kind == DONE_UNSUB) http_reply(p->r, 200, "text/html; charset=utf-8", unsub_done_html, sizeof unsub_done_html - 1);
        else http_reply(p->r, 200, "application/json", "{\"success\":true}", 16);
        break;
    }
    free(p->location);
    free(p);
}

/* Takes batch (a json array of Segment messages): parsed, then one
 * transaction; r is answered by on_recorded. */
static void record(api_ctx *a, http_req *r, json_object *batch, done_kind kind, const char *location)
{
    json_object *body = json_object_new_object();
    json_object_object_add(body, "batch", batch);
    const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    int64_t received_us = (int64_t)jd_clock_now(eng_clock(a->e));   /* the edge: the engine's clock */
    ingest_batch *b = NULL;
    jd_err err;
    jd_err_clear(&err);
    int rc = ingest_parse(&a->lim, INGEST_ROUTE_BATCH, text, strlen(text), received_us, NULL, NULL, &b, &err);
    json_object_put(body);
    if (rc != JD_OK) {   /* a key or a name over a limit: ours to report, not the reader's */
        http_reply_error(r, rc == JD_ELIMIT ? 413 : 400, err.msg, err.where);
        return;
    }
    tpend *p = jd_xcalloc(1, sizeof *p);
    *p = (tpend){ r, a, kind, location ? jd_xstrdup(location) : NULL };
    if (!api__submit_batch(a, r, b, on_recorded, p)) {
        free(p->location);
        free(p);
    }
}

static json_object *jstr(jd_str s) { return json_object_new_string_len(s.p, (int)s.n); }

/* A Segment message for the person a link names. */
static json_object *person_msg(const char *type, jd_str key, bool is_user)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "type", json_object_new_string(type));
    json_object_object_add(m, is_user ? "userId" : "anonymousId", jstr(key));
    return m;
}

static json_object *link_event(const dlv_link *lk, const char *name, const char *message_id)
{
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)lk->intent_id);
    json_object *m = person_msg("track", lk->key, lk->key_is_user), *pr = json_object_new_object();
    json_object_object_add(m, "event", json_object_new_string(name));
    json_object_object_add(pr, "message_id", json_object_new_string(hex));
    json_object_object_add(pr, "journey", jstr(lk->journey));
    json_object_object_add(pr, "node", jstr(lk->node));
    json_object_object_add(pr, "channel", jstr(lk->channel));
    json_object_object_add(pr, "category", jstr(lk->category));
    if (lk->target.n) json_object_object_add(pr, "url", jstr(lk->target));
    json_object_object_add(m, "properties", pr);
    if (message_id) json_object_object_add(m, "messageId", json_object_new_string(message_id));
    return m;
}

/* The identify POST /v1/consent would write: traits.consent {key: false},
 * context.consent.source. */
static json_object *consent_refusal(jd_str key, bool is_user, const char *what, const char *source, const char *message_id)
{
    json_object *m = person_msg("identify", key, is_user), *tr = json_object_new_object(), *c = json_object_new_object(),
                *cx = json_object_new_object(), *cs = json_object_new_object();
    json_object_object_add(c, what, json_object_new_boolean(0));
    json_object_object_add(tr, "consent", c);
    json_object_object_add(m, "traits", tr);
    json_object_object_add(cs, "source", json_object_new_string(source));
    json_object_object_add(cx, "consent", cs);
    json_object_object_add(m, "context", cx);
    json_object_object_add(m, "messageId", json_object_new_string(message_id));
    return m;
}

/* ---- links --------------------------------------------------------------------- */

/* The token of r's path, checked for kind k: JD_OK with *lk pointing into
 * scratch, else r is answered (404 unknown or tampered, 410 expired). */
static int link_of(api_ctx *a, http_req *r, dlv_link_kind k, dlv_link *lk, void *scratch, size_t cap)
{
    if (!a->links) {
        http_reply_error(r, 404, "tracking links are not configured", NULL);
        return JD_ENOTFOUND;
    }
    jd_err err;
    jd_err_clear(&err);
    int64_t now_us = (int64_t)jd_clock_now(eng_clock(a->e));
    int rc = dlv_link_verify(a->links, k, http_req_path_tail(r), now_us, lk, scratch, cap, &err);
    if (rc == JD_OK) return JD_OK;
    api__refuse(a, r, R_INVALID, rc == JD_ELIMIT ? 410 : 404, err.msg, "token");
    return rc;
}

#define SCRATCH 8192

void api__track_open(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    dlv_link lk;
    char scratch[SCRATCH];
    if (link_of(a, r, DLV_LINK_OPEN, &lk, scratch, sizeof scratch) != JD_OK) return;
    json_object *batch = json_object_new_array();
    json_object_array_add(batch, link_event(&lk, "Email Opened", NULL));   /* every open counts: no messageId */
    record(a, r, batch, DONE_PIXEL, NULL);
}

void api__track_click(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    dlv_link lk;
    char scratch[SCRATCH];
    if (link_of(a, r, DLV_LINK_CLICK, &lk, scratch, sizeof scratch) != JD_OK) return;
    /* Only the sealed target is ever redirected to: a `to` from the query is
     * never used, and one that differs from the signed one is refused (a
     * tampered link should not silently look like it worked). */
    const char *to = http_req_query(r, "to");
    if (!lk.target.n) {
        api__refuse(a, r, R_INVALID, 400, "this click link carries no signed target (write {{ message.click_url }}?to={{ url | url_encode }})", "to");
        return;
    }
    if (to && (strlen(to) != lk.target.n || memcmp(to, lk.target.p, lk.target.n) != 0)) {
        api__refuse(a, r, R_INVALID, 400, "to is not the link's signed target", "to");
        return;
    }
    char *location = jd_xstrndup(lk.target.p, lk.target.n);
    json_object *batch = json_object_new_array();
    json_object_array_add(batch, link_event(&lk, "Email Link Clicked", NULL));
    record(a, r, batch, DONE_REDIRECT, location);
    free(location);
}

/* Token characters are base64url: safe to echo into the page as they are. */
void api__track_unsub_page(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    dlv_link lk;
    char scratch[SCRATCH];
    if (link_of(a, r, DLV_LINK_UNSUB, &lk, scratch, sizeof scratch) != JD_OK) return;
    jd_buf b;
    jd_buf_init(&b, 64 * 1024);
    jd_buf_adds(&b, "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">"
                    "<title>Unsubscribe</title></head><body><form method=\"post\" action=\"/t/u/");
    jd_buf_adds(&b, http_req_path_tail(r));
    jd_buf_adds(&b, "\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
                    "<p>Stop receiving these messages?</p><button type=\"submit\">Unsubscribe</button></form></body></html>\n");
    http_reply_header(r, "Cache-Control", "no-store");
    http_reply(r, 200, "text/html; charset=utf-8", b.data, b.len);
    jd_buf_release(&b);
}

void api__track_unsub(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    dlv_link lk;
    char scratch[SCRATCH];
    if (link_of(a, r, DLV_LINK_UNSUB, &lk, scratch, sizeof scratch) != JD_OK) return;
    char what[2 * DLV_LINK_MAX_FIELD + 2], mid[48];
    snprintf(what, sizeof what, "%.*s/%.*s", (int)lk.channel.n, lk.channel.p, (int)lk.category.n, lk.category.p);
    /* One unsubscribe per message: a provider retrying the POST within
     * dedupe.window records it once. */
    snprintf(mid, sizeof mid, "unsub-%016llx", (unsigned long long)lk.intent_id);
    json_object *batch = json_object_new_array();
    json_object_array_add(batch, consent_refusal(lk.key, lk.key_is_user, what, "unsubscribe", mid));
    snprintf(mid, sizeof mid, "unsub-ev-%016llx", (unsigned long long)lk.intent_id);
    json_object_array_add(batch, link_event(&lk, "Unsubscribed", mid));
    record(a, r, batch, DONE_UNSUB, NULL);
}

/* ---- provider receipts ------------------------------------------------------------ */

/* X-Journeyd-Signature over X-Journeyd-Timestamp and the body, the scheme
 * journeyd's own webhooks use (dlv_webhook_signature), with a fresh timestamp. */
static bool receipt_signed(api_ctx *a, http_req *r, const char *secret, const char *body, size_t n)
{
    const char *ts = http_req_header(r, "X-Journeyd-Timestamp"), *sig = http_req_header(r, "X-Journeyd-Signature");
    if (!ts || !sig) return false;
    char *end;
    long long t = strtoll(ts, &end, 10);
    if (!*ts || *end || t <= 0) return false;
    int64_t now_s = (int64_t)(jd_clock_now(eng_clock(a->e)) / JD_SEC);
    if (t > now_s + RECEIPT_SKEW_S || t < now_s - RECEIPT_SKEW_S) return false;   /* no replays */
    return dlv_webhook_signature_ok(secret, ts, body, n, sig);
}

static const struct { const char *event, *name, *source; } receipts[] = {
    { "delivered", "Email Delivered", NULL },
    { "bounced", "Email Bounced", "bounce" },         /* hard bounces only suppress */
    { "complained", "Email Complained", "complaint" },
};

static const char *jget(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

void api__provider_webhook(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    const char *channel = http_req_path_tail(r);
    const dlv_channel_cfg *ch = a->cfg->channels ? dlv_channels_find(a->cfg->channels, channel) : NULL;
    if (!ch) {
        http_reply_error(r, 404, "no such channel (channels:)", NULL);
        return;
    }
    if (!ch->secret || !*ch->secret) {
        http_reply_error(r, 404, "this channel has no secret: receipts need channels.NAME.secret", NULL);
        return;
    }
    size_t n;
    const char *body = http_req_body(r, &n);
    if (!receipt_signed(a, r, ch->secret, body, n)) {
        api__refuse(a, r, R_UNAUTHORIZED, 401,
                    "missing, stale or wrong signature (X-Journeyd-Timestamp, X-Journeyd-Signature: sha256=HMAC of \"<timestamp>.<body>\")",
                    NULL);
        return;
    }
    json_tokener *tok = json_tokener_new();
    json_object *in = json_tokener_parse_ex(tok, body, (int)n);
    bool parsed = in && json_tokener_get_error(tok) == json_tokener_success && json_object_is_type(in, json_type_object);
    json_tokener_free(tok);
    const char *bad = NULL, *at = NULL;
    const char *id = parsed ? jget(in, "message_id") : NULL, *ev = parsed ? jget(in, "event") : NULL;
    const char *reason = parsed ? jget(in, "reason") : NULL, *btype = parsed ? jget(in, "bounce_type") : NULL;
    const char *uid = parsed ? jget(in, "userId") : NULL, *aid = parsed ? jget(in, "anonymousId") : NULL;
    size_t which = JD_ARRAY_LEN(receipts);
    for (size_t i = 0; ev && i < JD_ARRAY_LEN(receipts); i++)
        if (strcmp(ev, receipts[i].event) == 0) which = i;
    if (!parsed) bad = "the body is not a JSON object";
    else if (!id || !api__intent_id_ok(id)) bad = "message_id must be the message's id: 16 lowercase hex digits", at = "message_id";
    else if (which == JD_ARRAY_LEN(receipts)) bad = "event must be delivered, bounced or complained", at = "event";
    else if (!uid && !aid) bad = "userId or anonymousId (the person the message was for) is required", at = "userId";
    else if (btype && strcmp(btype, "hard") != 0 && strcmp(btype, "soft") != 0) bad = "bounce_type must be hard or soft", at = "bounce_type";
    if (bad) {
        api__refuse(a, r, R_INVALID, 400, bad, at);
        json_object_put(in);
        return;
    }
    char mid[80];
    json_object *batch = json_object_new_array(), *m = json_object_new_object(), *pr = json_object_new_object();
    json_object_object_add(m, "type", json_object_new_string("track"));
    if (uid) json_object_object_add(m, "userId", json_object_new_string(uid));
    if (aid) json_object_object_add(m, "anonymousId", json_object_new_string(aid));
    json_object_object_add(m, "event", json_object_new_string(receipts[which].name));
    json_object_object_add(pr, "message_id", json_object_new_string(id));
    json_object_object_add(pr, "channel", json_object_new_string(channel));
    if (reason) json_object_object_add(pr, "reason", json_object_new_string(reason));
    if (which == 1) json_object_object_add(pr, "bounce_type", json_object_new_string(btype ? btype : "hard"));
    json_object_object_add(m, "properties", pr);
    /* A provider retrying the same receipt records it once (dedupe.window). */
    snprintf(mid, sizeof mid, "rcpt-%s-%s", receipts[which].event, id);
    json_object_object_add(m, "messageId", json_object_new_string(mid));
    json_object_array_add(batch, m);
    if (receipts[which].source && !(btype && strcmp(btype, "soft") == 0)) {   /* suppress the address */
        snprintf(mid, sizeof mid, "rcpt-consent-%s-%s", receipts[which].event, id);
        jd_str key = { uid ? uid : aid, (uint32_t)strlen(uid ? uid : aid) };
        json_object_array_add(batch, consent_refusal(key, uid != NULL, channel, receipts[which].source, mid));
    }
    json_object_put(in);
    record(a, r, batch, DONE_JSON, NULL);
}
