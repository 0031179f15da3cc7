/* src/deliver/channels.c -- the channel table: what each provider receives and
 * how its answer is read.
 *
 * One row per dlv_kind (STYLE 15): defaults, a config check, a message check,
 * the request builder, and the provider id reader. Classification is shared:
 *
 *   curl connect/DNS/timeout/send/recv errors ........ transient
 *   HTTP 2xx .......................................... sent
 *   HTTP 408, 429, 5xx ................................ transient (Retry-After honoured)
 *   HTTP other 4xx (and 3xx: redirects are not followed) permanent
 *   SMTP 4xx reply .................................... transient
 *   SMTP 5xx reply, AUTH refused, STARTTLS refused .... permanent
 *
 * Invariants:
 *  (1) Every HTTP request carries "Idempotency-Key: <16 hex digits of the
 *      intent id>", identical on every attempt; every email carries the
 *      Message-ID <hex@domain> (mime.c (4)).
 *  (2) A message check failure is permanent and happens before any byte is
 *      sent; a transfer is never started for a message that fails it.
 *  (3) Only this file knows provider URLs and field names.
 */
#include <ctype.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "deliver_int.h"

typedef struct kind_ops {
    const char *name;
    bool        smtp;
    int  (*check_cfg)(dlv__chan *c, jd_err *err);
    int  (*check_msg)(const dlv__chan *c, const dlv_msg *m, char *why, size_t n);
    int  (*build)(dlv__xfer *x, const dlv__chan *c, const dlv_msg *m, uint64_t now_us, char *why, size_t n);
    void (*provider_id)(dlv__xfer *x);
} kind_ops;

static const kind_ops *ops_of(dlv_kind k);

static int cfg_err(jd_err *err, const dlv__chan *c, const char *field, const char *msg)
{
    char where[96];
    snprintf(where, sizeof where, "channels.%s.%s", c->cfg.name, field);
    return jd_err_set(err, JD_EINVAL, where, "%s", msg);
}

static bool is_http_url(const char *u)
{
    return u && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0) && !dlv__has_ctl(u);
}

static void hex_id(uint64_t id, char out[17]) { snprintf(out, 17, "%016" PRIx64, id); }

static bool json_kind(const char *s, enum json_type want)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, s, (int)strlen(s));
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
              tok->char_offset == (int)strlen(s) && json_object_is_type(o, want);
    json_object_put(o);
    json_tokener_free(tok);
    return ok;
}

static int add_header(dlv__xfer *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_header(dlv__xfer *x, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof line) return -1;
    x->headers = curl_slist_append(x->headers, line);
    if (!x->headers) abort();   /* OOM policy (STYLE part D) */
    return 0;
}

/* What every HTTP channel sends: JSON or form body, the idempotency key, no Expect. */
static void http_common(dlv__xfer *x, const char *url, const char *ctype, uint64_t intent_id)
{
    char hex[17];
    hex_id(intent_id, hex);
    add_header(x, "Content-Type: %s", ctype);
    add_header(x, "Idempotency-Key: %s", hex);
    add_header(x, "Expect:");
    curl_easy_setopt(x->easy, CURLOPT_URL, url);
    curl_easy_setopt(x->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body.data);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
}

/* ---- email (SMTP) -------------------------------------------------------- */

static int email_cfg(dlv__chan *c, jd_err *err)
{
    const char *u = c->cfg.url;
    if (!u || (strncasecmp(u, "smtp://", 7) != 0 && strncasecmp(u, "smtps://", 8) != 0))
        return cfg_err(err, c, "url", "expected smtp://host:port or smtps://host:port");
    if (!c->cfg.from || dlv__addr_spec(c->cfg.from, c->from_addr, sizeof c->from_addr) != 0)
        return cfg_err(err, c, "from", "a sender address is required (\"Name <a@b.c>\" or \"a@b.c\")");
    if (c->cfg.envelope_from && dlv__addr_spec(c->cfg.envelope_from, c->from_addr, sizeof c->from_addr) != 0)
        return cfg_err(err, c, "envelope_from", "not an address");
    if (!!c->cfg.user != !!c->cfg.password) return cfg_err(err, c, "password", "user and password go together");
    return JD_OK;
}

static int email_msg(const dlv__chan *c, const dlv_msg *m, char *why, size_t n)
{
    char a[256];
    if (!m->to || dlv__addr_spec(m->to, a, sizeof a) != 0 || strcmp(a, m->to) != 0) {
        snprintf(why, n, "recipient is not an email address");
        return -1;
    }
    const char *from = m->email.from ? m->email.from : c->cfg.from;
    if (dlv__addr_spec(from, a, sizeof a) != 0) { snprintf(why, n, "bad From address"); return -1; }
    for (const char *p = a; *p; p++)
        if ((unsigned char)*p >= 0x80) { snprintf(why, n, "non-ASCII addresses are not supported"); return -1; }
    for (const char *p = m->to; *p; p++)
        if ((unsigned char)*p >= 0x80) { snprintf(why, n, "non-ASCII addresses are not supported"); return -1; }
    const char *hdrs[] = { m->email.from, m->email.reply_to, m->email.subject, m->email.unsubscribe_url,
                           m->email.unsubscribe_mailto };
    for (size_t i = 0; i < JD_ARRAY_LEN(hdrs); i++)
        if (hdrs[i] && dlv__has_ctl(hdrs[i])) { snprintf(why, n, "control character in a header"); return -1; }
    if (m->email.reply_to && dlv__addr_spec(m->email.reply_to, a, sizeof a) != 0) {
        snprintf(why, n, "bad Reply-To address");
        return -1;
    }
    if (m->email.unsubscribe_url && strncasecmp(m->email.unsubscribe_url, "https://", 8) != 0 &&
        strncasecmp(m->email.unsubscribe_url, "http://", 7) != 0) {
        snprintf(why, n, "unsubscribe_url must be http(s)");
        return -1;
    }
    if (m->email.unsubscribe_mailto && strncasecmp(m->email.unsubscribe_mailto, "mailto:", 7) != 0) {
        snprintf(why, n, "unsubscribe_mailto must start with mailto:");
        return -1;
    }
    if (!m->email.text && !m->email.html) { snprintf(why, n, "no text or html part"); return -1; }
    return 0;
}

static size_t smtp_read(char *buf, size_t size, size_t nitems, void *arg)
{
    dlv__xfer *x = arg;
    size_t left = x->body.len - x->sent, k = size * nitems < left ? size * nitems : left;
    memcpy(buf, x->body.data + x->sent, k);
    x->sent += k;
    return k;
}

static int email_build(dlv__xfer *x, const dlv__chan *c, const dlv_msg *m, uint64_t now_us, char *why, size_t n)
{
    if (dlv__email_build(c, m, now_us, &x->body, why, n) != 0) return JD_EINVAL;
    char env[256];
    if (dlv__addr_spec(c->cfg.envelope_from ? c->cfg.envelope_from : (m->email.from ? m->email.from : c->cfg.from),
                       env, sizeof env) != 0) {
        snprintf(why, n, "bad envelope sender");
        return JD_EINVAL;
    }
    char from[260];
    snprintf(from, sizeof from, "<%s>", env);
    x->rcpt = curl_slist_append(NULL, m->to);
    if (!x->rcpt) abort();
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, c->cfg.url);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, x->rcpt);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, smtp_read);
    curl_easy_setopt(e, CURLOPT_READDATA, x);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->body.len);
    if (strncasecmp(c->cfg.url, "smtp://", 7) == 0) {
        long lvl = c->cfg.tls == DLV_TLS_NONE ? CURLUSESSL_NONE
                 : c->cfg.tls == DLV_TLS_OPTIONAL ? CURLUSESSL_TRY : CURLUSESSL_ALL;
        curl_easy_setopt(e, CURLOPT_USE_SSL, lvl);
    }
    if (c->cfg.user) {
        curl_easy_setopt(e, CURLOPT_USERNAME, c->cfg.user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, c->cfg.password);
    }
    return JD_OK;
}

static void email_id(dlv__xfer *x)
{
    if (x->smtp_queued[0]) snprintf(x->job->provider_id, sizeof x->job->provider_id, "%s", x->smtp_queued);
}

/* ---- SMS (Twilio Messages API) ------------------------------------------- */

static int sms_cfg(dlv__chan *c, jd_err *err)
{
    if (!is_http_url(c->cfg.url)) return cfg_err(err, c, "url", "expected the API base, e.g. https://api.twilio.com");
    if (!c->cfg.user || !*c->cfg.user) return cfg_err(err, c, "user", "the Account SID is required");
    if (!c->cfg.password) return cfg_err(err, c, "password", "the Auth Token is required");
    char *esc = curl_easy_escape(NULL, c->cfg.user, 0);
    size_t ul = strlen(c->cfg.url);
    c->api_url = jd_strfmt("%.*s/2010-04-01/Accounts/%s/Messages.json", (int)(ul && c->cfg.url[ul - 1] == '/' ? ul - 1 : ul),
                           c->cfg.url, esc);
    curl_free(esc);
    return JD_OK;
}

static int sms_msg(const dlv__chan *c, const dlv_msg *m, char *why, size_t n)
{
    if (!m->to || !*m->to) { snprintf(why, n, "no recipient number"); return -1; }
    if (!m->sms.from && !c->cfg.from) { snprintf(why, n, "no From number (message or channel)"); return -1; }
    if (!m->sms.body || !*m->sms.body) { snprintf(why, n, "empty SMS body"); return -1; }
    return 0;
}

static int add_form(jd_buf *b, const char *k, const char *v)
{
    char *esc = curl_easy_escape(NULL, v, 0);
    if (!esc) abort();
    int rc = jd_buf_addf(b, "%s%s=%s", b->len ? "&" : "", k, esc);
    curl_free(esc);
    return rc;
}

static int sms_build(dlv__xfer *x, const dlv__chan *c, const dlv_msg *m, uint64_t now_us, char *why, size_t n)
{
    if (add_form(&x->body, "To", m->to) || add_form(&x->body, "From", m->sms.from ? m->sms.from : c->cfg.from) ||
        add_form(&x->body, "Body", m->sms.body)) {
        snprintf(why, n, "message exceeds %zu bytes", x->body.max);
        return JD_EINVAL;
    }
    http_common(x, c->api_url, "application/x-www-form-urlencoded", m->intent_id);
    curl_easy_setopt(x->easy, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(x->easy, CURLOPT_USERNAME, c->cfg.user);
    curl_easy_setopt(x->easy, CURLOPT_PASSWORD, c->cfg.password);
    return JD_OK;
}

static void json_id(dlv__xfer *x, const char *key)
{
    struct json_object *o = json_tokener_parse(x->resp.data ? x->resp.data : ""), *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        snprintf(x->job->provider_id, sizeof x->job->provider_id, "%s", json_object_get_string(v));
    json_object_put(o);
}
static void sms_id(dlv__xfer *x) { json_id(x, "sid"); }

/* ---- push (FCM HTTP v1) -------------------------------------------------- */

static int push_cfg(dlv__chan *c, jd_err *err)
{
    if (!is_http_url(c->cfg.url)) return cfg_err(err, c, "url", "expected the API base, e.g. https://fcm.googleapis.com");
    if (!c->cfg.project || !*c->cfg.project || dlv__has_ctl(c->cfg.project) || strchr(c->cfg.project, '/'))
        return cfg_err(err, c, "project", "the Firebase project id is required");
    if (!c->cfg.token || !*c->cfg.token || dlv__has_ctl(c->cfg.token))
        return cfg_err(err, c, "token", "an OAuth 2 bearer token is required");
    size_t ul = strlen(c->cfg.url);
    c->api_url = jd_strfmt("%.*s/v1/projects/%s/messages:send", (int)(c->cfg.url[ul - 1] == '/' ? ul - 1 : ul),
                           c->cfg.url, c->cfg.project);
    c->auth_header = jd_strfmt("Authorization: Bearer %s", c->cfg.token);
    return JD_OK;
}

static int push_msg(const dlv__chan *c, const dlv_msg *m, char *why, size_t n)
{
    if (!m->to || !*m->to) { snprintf(why, n, "no device token"); return -1; }
    if (!m->push.title && !m->push.body && !m->push.data_json) { snprintf(why, n, "empty push"); return -1; }
    if (m->push.data_json && !json_kind(m->push.data_json, json_type_object)) {
        snprintf(why, n, "push data is not a JSON object");
        return -1;
    }
    return 0;
}

static int push_build(dlv__xfer *x, const dlv__chan *c, const dlv_msg *m, uint64_t now_us, char *why, size_t n)
{
    jd_buf *b = &x->body;
    int rc = jd_buf_adds(b, "{\"message\":{\"token\":");
    rc |= jd_buf_add_json_str(b, m->to, strlen(m->to));
    if (m->push.title || m->push.body) {
        rc |= jd_buf_adds(b, ",\"notification\":{");
        if (m->push.title) {
            rc |= jd_buf_adds(b, "\"title\":");
            rc |= jd_buf_add_json_str(b, m->push.title, strlen(m->push.title));
        }
        if (m->push.body) {
            rc |= jd_buf_adds(b, m->push.title ? ",\"body\":" : "\"body\":");
            rc |= jd_buf_add_json_str(b, m->push.body, strlen(m->push.body));
        }
        rc |= jd_buf_adds(b, "}");
    }
    if (m->push.data_json) {
        /* FCM's data is a map of strings: other values go as their JSON text */
        struct json_object *o = json_tokener_parse(m->push.data_json);
        rc |= jd_buf_adds(b, ",\"data\":{");
        bool first = true;
        json_object_object_foreach(o, k, v) {
            const char *s = json_object_is_type(v, json_type_string)
                                ? json_object_get_string(v)
                                : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
            if (!first) rc |= jd_buf_adds(b, ",");
            rc |= jd_buf_add_json_str(b, k, strlen(k));
            rc |= jd_buf_adds(b, ":");
            rc |= jd_buf_add_json_str(b, s, strlen(s));
            first = false;
        }
        json_object_put(o);
        rc |= jd_buf_adds(b, "}");
    }
    rc |= jd_buf_adds(b, "}}");
    if (rc) { snprintf(why, n, "message exceeds %zu bytes", b->max); return JD_EINVAL; }
    http_common(x, c->api_url, "application/json; charset=UTF-8", m->intent_id);
    x->headers = curl_slist_append(x->headers, c->auth_header);
    return JD_OK;
}

static void push_id(dlv__xfer *x) { json_id(x, "name"); }

/* ---- Slack incoming webhook ---------------------------------------------- */

static int url_cfg(dlv__chan *c, jd_err *err)
{
    if (c->cfg.url && !is_http_url(c->cfg.url)) return cfg_err(err, c, "url", "expected an http(s) URL");
    if (c->cfg.kind == DLV_WEBHOOK) {
        if (!c->cfg.secret || !*c->cfg.secret) return cfg_err(err, c, "secret", "a signing secret is required");
        c->signer = dlv_signer_create(c->cfg.secret);
    }
    return JD_OK;
}

static int url_msg(const dlv__chan *c, const dlv_msg *m, char *why, size_t n)
{
    if (m->to && !is_http_url(m->to)) { snprintf(why, n, "recipient is not an http(s) URL"); return -1; }
    if (!m->to && !c->cfg.url) { snprintf(why, n, "no URL (message or channel)"); return -1; }
    return 0;
}

static int slack_msg(const dlv__chan *c, const dlv_msg *m, char *why, size_t n)
{
    if (url_msg(c, m, why, n)) return -1;
    if (!m->slack.text && !m->slack.blocks_json) { snprintf(why, n, "no text or blocks"); return -1; }
    if (m->slack.blocks_json && !json_kind(m->slack.blocks_json, json_type_array)) {
        snprintf(why, n, "slack blocks are not a JSON array");
        return -1;
    }
    return 0;
}

static int slack_build(dlv__xfer *x, const dlv__chan *c, const dlv_msg *m, uint64_t now_us, char *why, size_t n)
{
    jd_buf *b = &x->body;
    int rc = jd_buf_adds(b, "{");
    if (m->slack.text) {
        rc |= jd_buf_adds(b, "\"text\":");
        rc |= jd_buf_add_json_str(b, m->slack.text, strlen(m->slack.text));
    }
    if (m->slack.blocks_json) {
        rc |= jd_buf_adds(b, m->slack.text ? ",\"blocks\":" : "\"blocks\":");
        rc |= jd_buf_adds(b, m->slack.blocks_json);
    }
    rc |= jd_buf_adds(b, "}");
    if (rc) { snprintf(why, n, "message exceeds %zu bytes", b->max); return JD_EINVAL; }
    http_common(x, m->to ? m->to : c->cfg.url, "application/json; charset=UTF-8", m->intent_id);
    return JD_OK;
}

/* ---- signed webhook ------------------------------------------------------ */

static int webhook_msg(const dlv__chan *c, const dlv_msg *m, char *why, size_t n)
{
    if (url_msg(c, m, why, n)) return -1;
    if (!m->webhook.body_json) { snprintf(why, n, "no webhook body"); return -1; }
    return 0;
}

static int webhook_build(dlv__xfer *x, const dlv__chan *c, const dlv_msg *m, uint64_t now_us, char *why, size_t n)
{
    if (jd_buf_adds(&x->body, m->webhook.body_json)) {
        snprintf(why, n, "message exceeds %zu bytes", x->body.max);
        return JD_EINVAL;
    }
    /* signature over "<timestamp>.<body>" (the Stripe scheme): a receiver
     * checks it and refuses stale timestamps, so a captured request cannot
     * be replayed later */
    char ts[24], sig[DLV_SIGNATURE_SIZE];
    snprintf(ts, sizeof ts, "%" PRIu64, now_us / JD_SEC);
    dlv_signer_sign(c->signer, ts, x->body.data, x->body.len, sig);
    http_common(x, m->to ? m->to : c->cfg.url, "application/json", m->intent_id);
    add_header(x, "X-Journeyd-Timestamp: %s", ts);
    add_header(x, "X-Journeyd-Signature: %s", sig);
    return JD_OK;
}

static void no_id(dlv__xfer *x) { (void)x; }

/* ---- the table ------------------------------------------------------------ */

static const kind_ops kinds[DLV__KINDS] = {
    [DLV_EMAIL]   = { "email",   true,  email_cfg, email_msg,   email_build,   email_id },
    [DLV_SMS]     = { "sms",     false, sms_cfg,   sms_msg,     sms_build,     sms_id },
    [DLV_PUSH]    = { "push",    false, push_cfg,  push_msg,    push_build,    push_id },
    [DLV_SLACK]   = { "slack",   false, url_cfg,   slack_msg,   slack_build,   no_id },
    [DLV_WEBHOOK] = { "webhook", false, url_cfg,   webhook_msg, webhook_build, no_id },
};

static const kind_ops *ops_of(dlv_kind k) { return (unsigned)k < DLV__KINDS ? &kinds[k] : NULL; }

const char *dlv_kind_name(dlv_kind k) { return ops_of(k) ? kinds[k].name : NULL; }

int dlv_kind_parse(const char *name, dlv_kind *out)
{
    for (int k = 0; k < DLV__KINDS; k++)
        if (strcmp(kinds[k].name, name) == 0) { *out = (dlv_kind)k; return JD_OK; }
    return JD_EINVAL;
}

static char *dup_or_null(const char *s) { return s ? jd_xstrdup(s) : NULL; }

int dlv__chan_init(dlv__chan *c, const dlv_channel_cfg *cfg, jd_err *err)
{
    memset(c, 0, sizeof *c);
    c->cfg = *cfg;
    const char *nm = cfg->name ? cfg->name : "";
    c->cfg.name = jd_xstrdup(nm);
    c->cfg.url = dup_or_null(cfg->url);
    c->cfg.user = dup_or_null(cfg->user);
    c->cfg.password = dup_or_null(cfg->password);
    c->cfg.token = dup_or_null(cfg->token);
    c->cfg.project = dup_or_null(cfg->project);
    c->cfg.secret = dup_or_null(cfg->secret);
    c->cfg.from = dup_or_null(cfg->from);
    c->cfg.envelope_from = dup_or_null(cfg->envelope_from);
    c->cfg.message_id_domain = dup_or_null(cfg->message_id_domain);
    c->cfg.ca_file = dup_or_null(cfg->ca_file);
    if (!*nm || dlv__has_ctl(nm)) return cfg_err(err, c, "name", "a channel needs a name");
    const kind_ops *k = ops_of(cfg->kind);
    if (!k) return cfg_err(err, c, "kind", "unknown kind (email, sms, push, slack, webhook)");
    if (c->cfg.message_id_domain && (dlv__has_ctl(c->cfg.message_id_domain) || strpbrk(c->cfg.message_id_domain, "<>@ ")))
        return cfg_err(err, c, "message_id_domain", "not a domain");
    if (c->cfg.from && dlv__has_ctl(c->cfg.from)) return cfg_err(err, c, "from", "control character");
    /* defaults (docs/delivery.md) */
    dlv_channel_cfg *f = &c->cfg;
    if (!f->timeout_us) f->timeout_us = k->smtp ? 60 * JD_SEC : 10 * JD_SEC;
    if (!f->connect_timeout_us) f->connect_timeout_us = 5 * JD_SEC;
    if (f->rate_per_s < 0) return cfg_err(err, c, "rate", "must not be negative");
    if (f->rate_per_s > 0 && f->burst == 0) f->burst = 1;
    if (!f->max_in_flight) f->max_in_flight = k->smtp ? 8 : 64;
    if (!f->max_queued) f->max_queued = 100000;
    if (!f->retry.max_attempts) f->retry.max_attempts = 8;
    if (!f->retry.backoff_base_us) f->retry.backoff_base_us = JD_SEC;
    if (!f->retry.backoff_max_us) f->retry.backoff_max_us = 10 * JD_MIN;
    if (!f->retry.retry_after_max_us) f->retry.retry_after_max_us = JD_HOUR;
    if (f->retry.backoff_max_us < f->retry.backoff_base_us) f->retry.backoff_max_us = f->retry.backoff_base_us;
    c->tokens = f->burst;
    return k->check_cfg(c, err);
}

void dlv__chan_release(dlv__chan *c)
{
    const char *s[] = { c->cfg.name, c->cfg.url, c->cfg.user, c->cfg.password, c->cfg.token, c->cfg.project,
                        c->cfg.secret, c->cfg.from, c->cfg.envelope_from, c->cfg.message_id_domain, c->cfg.ca_file };
    for (size_t i = 0; i < JD_ARRAY_LEN(s); i++) free((char *)s[i]);
    free(c->api_url);
    free(c->auth_header);
    dlv_signer_destroy(c->signer);
}

int dlv__msg_check(const dlv__chan *c, const dlv_msg *m, char *why, size_t n)
{
    if (m->kind != c->cfg.kind) {
        snprintf(why, n, "message kind %s does not match channel '%s' (%s)",
                 dlv_kind_name(m->kind) ? dlv_kind_name(m->kind) : "?", c->cfg.name, kinds[c->cfg.kind].name);
        return -1;
    }
    if (m->to && dlv__has_ctl(m->to)) { snprintf(why, n, "control character in the recipient"); return -1; }
    return kinds[c->cfg.kind].check_msg(c, m, why, n);
}

/* ---- one attempt ---------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    dlv__xfer *x = arg;
    size_t n = size * nmemb, room = x->resp.max - x->resp.len;
    jd_buf_add(&x->resp, p, n < room ? n : room);   /* the rest is dropped, not an error */
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    dlv__xfer *x = arg;
    size_t n = size * nmemb, k = n;
    while (k > 0 && (p[k - 1] == '\r' || p[k - 1] == '\n')) k--;
    if (x->job->ch->cfg.kind == DLV_EMAIL) {
        /* curl passes SMTP reply lines to the header callback; keep the
         * last refusal (a QUIT's "221 Bye" may follow it) */
        if (k >= 3 && (p[0] == '4' || p[0] == '5')) snprintf(x->smtp_reply, sizeof x->smtp_reply, "%.*s", (int)k, p);
        const char *q = memmem(p, k, "queued as ", 10);
        if (q && k > 3 && p[0] == '2') {
            q += 10;
            size_t ql = (size_t)(p + k - q);
            while (ql > 0 && (q[ql - 1] == ' ' || q[ql - 1] == ')')) ql--;
            snprintf(x->smtp_queued, sizeof x->smtp_queued, "%.*s", (int)ql, q);
        }
    } else if (k > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
        const char *v = p + 12;
        while (v < p + k && (*v == ' ' || *v == '\t')) v++;
        snprintf(x->retry_after, sizeof x->retry_after, "%.*s", (int)(p + k - v), v);
    } else if (k > 5 && strncmp(p, "HTTP/", 5) == 0) {
        x->retry_after[0] = '\0';   /* a new response (after 100 Continue) */
    }
    return n;
}

int dlv__xfer_prepare(dlv__xfer *x, const char *user_agent, uint64_t now_us, char *why, size_t n)
{
    dlv__job *j = x->job;
    const dlv__chan *c = j->ch;
    CURL *e = x->easy;   /* used by this channel only: the same options are set every time (dlv.c) */
    jd_buf_reset(&x->body);
    jd_buf_reset(&x->resp);
    x->sent = 0;
    x->errbuf[0] = x->retry_after[0] = x->smtp_reply[0] = x->smtp_queued[0] = '\0';
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(c->cfg.timeout_us / 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->cfg.connect_timeout_us / 1000));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_USERAGENT, user_agent);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https,smtp,smtps");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (c->cfg.ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, c->cfg.ca_file);
    int rc = kinds[c->cfg.kind].build(x, c, j->msg, now_us, why, n);
    if (rc != JD_OK) return rc;
    if (x->headers) curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    return JD_OK;
}

static bool transient_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_PROXY: case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT: case CURLE_SEND_ERROR: case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: case CURLE_SSL_CONNECT_ERROR: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
    case CURLE_AGAIN: case CURLE_WEIRD_SERVER_REPLY: case CURLE_READ_ERROR:
        return true;
    default:
        return false;
    }
}

/* Copies at most DLV__EXCERPT bytes of the reply, control bytes as spaces. */
static void excerpt(const jd_buf *b, char *out, size_t n)
{
    size_t k = b->len < DLV__EXCERPT ? b->len : DLV__EXCERPT, o = 0;
    for (size_t i = 0; i < k && o + 1 < n; i++) out[o++] = (unsigned char)b->data[i] < 0x20 ? ' ' : b->data[i];
    out[o] = '\0';
}

bool dlv__retry_after_parse(const char *v, uint64_t now_us, uint64_t *delay_us)
{
    while (*v == ' ') v++;
    if (isdigit((unsigned char)*v)) {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        while (*end == ' ') end++;
        if (*end) return false;
        *delay_us = s > UINT64_MAX / JD_SEC ? UINT64_MAX : s * JD_SEC;
        return true;
    }
    /* IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 5.6.7) */
    static const char mons[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char wd[4], mon[4], zone[4];
    unsigned d, y, hh, mm, ss;
    if (sscanf(v, "%3s %u %3s %u %u:%u:%u %3s", wd, &d, mon, &y, &hh, &mm, &ss, zone) != 8) return false;
    const char *mp = strstr(mons, mon);
    if (!mp || (mp - mons) % 3 || strcmp(zone, "GMT") != 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 ||
        y < 1970)
        return false;
    int64_t t = (jd_days_from_civil(y, (unsigned)((mp - mons) / 3 + 1), d) * 86400 + hh * 3600 + mm * 60 + ss);
    int64_t delta = t * (int64_t)JD_SEC - (int64_t)now_us;
    *delay_us = delta > 0 ? (uint64_t)delta : 0;
    return true;
}

int dlv__xfer_classify(dlv__xfer *x, CURLcode cc, uint64_t now_us, uint64_t *retry_after_us)
{
    dlv__job *j = x->job;
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    j->status = (int)code;
    *retry_after_us = 0;
    j->error[0] = '\0';
    if (kinds[j->ch->cfg.kind].smtp) {
        if (cc == CURLE_OK) {
            kinds[j->ch->cfg.kind].provider_id(x);
            return DLV__OK;
        }
        if (code >= 400 && code < 600) {
            snprintf(j->error, sizeof j->error, "SMTP %ld: %s", code, x->smtp_reply[0] ? x->smtp_reply : x->errbuf);
            return code < 500 ? DLV__TRANSIENT : DLV__PERMANENT;
        }
        snprintf(j->error, sizeof j->error, "curl: %s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
        if (cc == CURLE_LOGIN_DENIED || cc == CURLE_USE_SSL_FAILED) return DLV__PERMANENT;
        return transient_curl(cc) ? DLV__TRANSIENT : DLV__PERMANENT;
    }
    if (cc != CURLE_OK) {
        snprintf(j->error, sizeof j->error, "curl: %s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
        return transient_curl(cc) ? DLV__TRANSIENT : DLV__PERMANENT;
    }
    if (code >= 200 && code < 300) {
        kinds[j->ch->cfg.kind].provider_id(x);
        return DLV__OK;
    }
    char ex[DLV__EXCERPT + 1];
    excerpt(&x->resp, ex, sizeof ex);
    snprintf(j->error, sizeof j->error, "HTTP %ld: %s", code, ex);
    if (code == 408 || code == 429 || code >= 500) {
        if (x->retry_after[0]) dlv__retry_after_parse(x->retry_after, now_us, retry_after_us);
        return DLV__TRANSIENT;
    }
    return DLV__PERMANENT;
}
