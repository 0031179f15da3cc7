/* include/journeyd/deliver.h -- delivery transport: rendered messages out to
 * providers over SMTP and HTTP, with retries, rate limits and idempotency keys.
 *
 * Owns: one delivery thread per dlv object driving libcurl's multi interface
 * (many sends in flight, connections kept and reused), the channel table
 * (email over SMTP, Twilio-style SMS, FCM-v1-style push, Slack incoming
 * webhooks, signed JSON webhooks), per-channel token-bucket rate limits,
 * concurrency limits, bounded queues, retries with exponential backoff and full
 * jitter (honouring Retry-After), and the result of every message it accepted.
 *
 * Threading: dlv_submit, dlv_room and dlv_channel_stats may be called from any
 * thread. on_result runs on the delivery thread (keep it short: queue a record
 * and return). dlv_create and dlv_destroy belong to one owning thread, and
 * on_unsent runs on the thread that calls dlv_destroy.
 *
 * Time: this module is an edge (DESIGN.md "time is an input"). The delivery
 * thread reads the monotonic clock for its timers (backoff, rate limits,
 * timeouts, grace) and the wall clock (dlv_opts.wall, default jd_clock_real) for
 * what providers see and what results report: the email Date header, the
 * webhook X-Journeyd-Timestamp, Retry-After dates, not_before_us, and the
 * result's accepted_us/done_us. Jitter comes from a PRNG seeded by
 * dlv_opts.seed, so a test can make it repeat. The engine records what comes
 * back (dlv_result) in the log; nothing here is replayed.
 *
 * Guarantee: every message dlv_submit accepts (JD_OK) comes back exactly once,
 * either as a result (on_result: SENT, FAILED or DEAD) or, at dlv_destroy, as
 * an unsent message (on_unsent) with its attempts and not_before_us updated so
 * the engine can submit it again after a restart. A message may reach a
 * provider more than once (a reply lost in flight, an attempt cut off at
 * shutdown); every attempt carries the same idempotency key (Idempotency-Key
 * header, the email's Message-ID), derived from the intent id only.
 *
 * Not here: templates (messages arrive rendered; the separate section at the
 * end of this header loads and renders them), consent, caps, quiet hours,
 * arbitration, the outbox's durability and dead-letter list (the engine keeps
 * them in the log), in-app inbox and tasks. docs/delivery.md has the YAML
 * shape of `channels:`, what each provider receives, and the defaults.
 */
#ifndef JOURNEYD_DELIVER_H
#define JOURNEYD_DELIVER_H

#include "journeyd/base.h"

typedef enum dlv_kind {
    DLV_EMAIL = 0,   /* SMTP through libcurl: STARTTLS, AUTH, multipart/alternative */
    DLV_SMS,         /* Twilio Messages API: form POST, Basic auth */
    DLV_PUSH,        /* FCM HTTP v1: messages:send, bearer token */
    DLV_SLACK,       /* Slack incoming webhook: JSON {text, blocks} */
    DLV_WEBHOOK,     /* JSON POST signed with HMAC-SHA256 */
    DLV__KINDS
} dlv_kind;

/* "email", "sms", "push", "slack", "webhook"; NULL past the table. */
const char *dlv_kind_name(dlv_kind k);
/* JD_OK and *out set, or JD_EINVAL for an unknown name. */
int dlv_kind_parse(const char *name, dlv_kind *out);

typedef enum dlv_tls {
    DLV_TLS_DEFAULT = 0,  /* email: STARTTLS required; smtps:// URLs are TLS from the start */
    DLV_TLS_REQUIRED,     /* STARTTLS must succeed, or the attempt fails (permanently) */
    DLV_TLS_OPTIONAL,     /* STARTTLS when the server offers it, else plain */
    DLV_TLS_NONE,         /* never (local relays, tests) */
} dlv_tls;

/* Retries. Zero fields take the defaults (in parentheses). */
typedef struct dlv_retry {
    uint32_t max_attempts;        /* tries in all, the first included (8) */
    uint64_t backoff_base_us;     /* ceiling of the first backoff (1 s) */
    uint64_t backoff_max_us;      /* ceiling of any backoff (10 min) */
    uint64_t retry_after_max_us;  /* a provider's Retry-After is honoured up to this (1 h) */
} dlv_retry;

/* One configured channel (`channels.NAME` in the config, docs/delivery.md).
 * Strings are borrowed by dlv_create (copied). Zero numeric fields take the
 * defaults in parentheses; a channel-kind default applies where two are given
 * (email / HTTP channels). */
typedef struct dlv_channel_cfg {
    const char *name;             /* unique; what dlv_msg.channel names */
    dlv_kind    kind;
    /* Where: email "smtp://host:587" or "smtps://host:465"; sms and push the
     * API base ("https://api.twilio.com", "https://fcm.googleapis.com");
     * slack and webhook the URL posted to (a message's `to` may override it). */
    const char *url;
    const char *user;             /* email: AUTH user; sms: Account SID */
    const char *password;         /* email: AUTH password; sms: Auth Token */
    const char *token;            /* push: OAuth 2 bearer token */
    const char *project;          /* push: Firebase project id */
    const char *secret;           /* webhook: HMAC-SHA256 key (required) */
    const char *from;             /* email: default From; sms: default From number */
    const char *envelope_from;    /* email: MAIL FROM (bounces); default: From's address */
    const char *message_id_domain;/* email: Message-ID's right side; default: From's domain */
    dlv_tls     tls;              /* email only */
    const char *ca_file;          /* extra trusted CA (PEM), e.g. a private relay; NULL: system */
    uint64_t    timeout_us;       /* one attempt, end to end (email 60 s, HTTP 10 s) */
    uint64_t    connect_timeout_us; /* (5 s) */
    double      rate_per_s;       /* token bucket refill; 0: no rate limit */
    uint32_t    burst;            /* bucket size (1 if a rate is set) */
    uint32_t    max_in_flight;    /* concurrent attempts (email 8, HTTP 64) */
    uint32_t    max_queued;       /* accepted and not finished, in flight included (100000) */
    dlv_retry   retry;
} dlv_channel_cfg;

/* A rendered message. Every string is owned by the message (malloc'd; NULL
 * when absent) and freed by dlv_msg_destroy; set them with jd_xstrdup. Only
 * the block of its kind is read. */
typedef struct dlv_msg {
    uint64_t intent_id;       /* the idempotency key: the same on every try and after restarts */
    dlv_kind kind;            /* must match the channel's kind */
    char    *channel;         /* a configured channel name */
    char    *to;              /* email address; E.164 number; device token; slack/webhook: URL override */
    uint32_t attempts;        /* tries already made (0 when new; after a restart: from the log) */
    uint64_t not_before_us;   /* wall clock, us since the epoch; 0: now (a retry due after a restart) */
    void    *user;            /* the caller's; never touched */
    struct {
        char *from;           /* "Name <a@b.c>" or "a@b.c"; NULL: the channel's */
        char *reply_to;
        char *subject;        /* UTF-8; RFC 2047-encoded when not plain ASCII */
        char *text;           /* text/plain part (UTF-8) */
        char *html;           /* text/html part (UTF-8); at least one of text, html */
        char *unsubscribe_url;    /* https one-click link: List-Unsubscribe + List-Unsubscribe-Post */
        char *unsubscribe_mailto; /* "mailto:unsub@b.c?subject=x" */
    } email;
    struct { char *from, *body; } sms;                 /* from NULL: the channel's */
    struct { char *title, *body, *data_json; } push;  /* data_json: a JSON object */
    struct { char *text, *blocks_json; } slack;       /* blocks_json: a JSON array */
    struct { char *body_json; } webhook;              /* sent as is */
} dlv_msg;

/* Returns owned (dlv_msg_destroy): zeroed, with channel and to copied (to may
 * be NULL). */
dlv_msg *dlv_msg_create(uint64_t intent_id, dlv_kind kind, const char *channel, const char *to);
void     dlv_msg_destroy(dlv_msg *m);   /* frees every string and m; NULL is fine */

typedef enum dlv_outcome {
    DLV_SENT = 0,        /* the provider accepted it */
    DLV_FAILED,          /* permanent: a 4xx other than 408/429, SMTP 5xx, an invalid message */
    DLV_DEAD,            /* transient errors until retry.max_attempts */
} dlv_outcome;
const char *dlv_outcome_name(dlv_outcome o);   /* "sent", "failed", "dead" */

/* What came of one message. Every pointer is valid for the callback only. */
typedef struct dlv_result {
    uint64_t    intent_id;
    dlv_outcome outcome;
    uint32_t    attempts;       /* in all, msg->attempts at submit included; 0: never tried (invalid) */
    int         status;         /* last HTTP status or SMTP reply code; 0: none (connect error) */
    const char *provider_id;    /* SENT: Twilio sid, FCM name, SMTP "queued as"; NULL if none */
    const char *error;          /* "" when SENT; else the last error: "HTTP 503: <body excerpt>",
                                   "SMTP 550: <reply>", "curl: <error>", "invalid message: ..." */
    uint64_t    accepted_us;    /* wall clock when dlv_submit took it */
    uint64_t    done_us;        /* wall clock now */
    uint64_t    elapsed_us;     /* monotonic, accepted -> now (waits and retries included) */
    uint64_t    last_attempt_us;/* duration of the last attempt */
    const dlv_msg *msg;         /* the message as submitted (borrowed) */
} dlv_result;

typedef void (*dlv_result_fn)(const dlv_result *r, void *ctx);
/* Takes msg: a message accepted but not finished at dlv_destroy, never
 * resulted. msg->attempts counts the tries made (an attempt cut off in flight
 * included: it may have reached the provider); msg->not_before_us is when its
 * next try was due (0: at once). Submit it again after the restart. */
typedef void (*dlv_unsent_fn)(dlv_msg *msg, void *ctx);

typedef struct dlv_opts {
    const dlv_channel_cfg *channels;   /* borrowed for dlv_create */
    size_t          nchannels;
    dlv_result_fn   on_result;         /* required */
    dlv_unsent_fn   on_unsent;         /* NULL: unsent messages are destroyed */
    void           *ctx;               /* passed to both */
    uint64_t        seed;              /* jitter PRNG seed; 0: drawn with jd_random_bytes */
    const jd_clock *wall;              /* NULL: jd_clock_real; must outlive the dlv */
    const char     *user_agent;        /* NULL: "journeyd" */
} dlv_opts;

typedef struct dlv dlv;   /* opaque */

/* Checks the channels (each error names the channel and field, as
 * "channels.sms.user: account SID required"), starts the delivery thread.
 * JD_OK: *out is owned (dlv_destroy). JD_EINVAL: err says what. Main thread. */
int dlv_create(dlv **out, const dlv_opts *o, jd_err *err);

/* Queues msg for delivery. Any thread; never blocks on I/O.
 *  JD_OK      takes msg: its result comes through on_result (or on_unsent).
 *             An unknown channel, a kind mismatch or an invalid message (CR/LF
 *             in a header, no recipient, bad JSON) is accepted and results in
 *             FAILED with attempts 0, so the engine records every intent the same way.
 *  JD_ELIMIT  the channel has max_queued messages unfinished: msg is NOT taken.
 *             Backpressure: keep the message (it is durable in the log) and
 *             submit it again later; dlv_room says when there is space.
 *  JD_EBUSY   dlv_destroy has begun: msg is NOT taken.
 * err (may be NULL) names the limit: "channel 'email' has 100000 messages
 * queued (channels.email.max_queued)". */
int dlv_submit(dlv *d, dlv_msg *msg, jd_err *err);

/* How many more messages the channel takes now (max_queued - unfinished);
 * 0 for an unknown channel. Any thread; a snapshot. */
size_t dlv_room(dlv *d, const char *channel);

typedef struct dlv_stats {
    uint64_t accepted, sent, failed, dead, retries, refused_full;
    uint64_t unfinished;   /* queued, waiting, in flight */
    uint64_t in_flight;
} dlv_stats;
/* Counters of one channel (relaxed atomics, for /metrics). JD_ENOTFOUND for
 * an unknown name. Any thread. */
int dlv_channel_stats(dlv *d, const char *channel, dlv_stats *out);

/* Stops taking messages (dlv_submit gives JD_EBUSY), starts no new attempt,
 * lets attempts in flight finish for up to grace_us (their results are
 * reported; one that fails transiently goes to on_unsent), then cuts off the
 * rest and joins the thread. Every message still unfinished goes to on_unsent
 * on this thread. No other thread may be inside dlv_submit once this returns;
 * d is freed. NULL is fine. */
void dlv_destroy(dlv *d, uint64_t grace_us);

/* ==== Configuration and content (src/deliver/config.c, content.c) ==========
 *
 * Separate from the transport above: these two files turn the configuration's
 * `channels:` map into dlv_channel_cfg rows, and a folder of message
 * templates into dlv_msg contents. Both are read once at start and are
 * read-only afterwards (any thread may read or render). Neither sends,
 * reads the clock or keeps state between calls. docs/delivery.md has the
 * YAML shapes ("Configuration", "Message templates").
 */

struct json_object;                 /* json-c */
typedef struct jd_yaml_node jd_yaml_node;   /* include/journeyd/config.h */

#define DLV_MAX_CHANNELS  64        /* channels in `channels:` */
#define DLV_MAX_TEMPLATES 10000     /* template files in templates.dir */

typedef struct dlv_channels dlv_channels;   /* opaque, immutable once parsed */

/* Parses the configuration's `channels:` map (map: its value node; NULL or
 * an empty value: no channels). `file` names the config in errors.
 * Every channel is checked as dlv_create will check it (required fields per
 * kind, URLs), so a bad channel stops start-up with its position.
 * `*_env` keys (password_env, secret_env, token_env) read the environment
 * here, once (getenv).
 * JD_OK: *out is owned (dlv_channels_destroy), or NULL when there are none.
 * JD_EINVAL / JD_ELIMIT: err->where is "FILE:LINE:COL" of the offending key
 * or value and err->msg starts with its key path:
 * "channels.sms.user: the Account SID is required". Main thread (getenv). */
int  dlv_channels_parse(const jd_yaml_node *map, const char *file, dlv_channels **out, jd_err *err);
/* The channels in file order; *n set (0 and NULL for c NULL). Valid until
 * dlv_channels_destroy; pass them to dlv_opts.channels. Any thread. */
const dlv_channel_cfg *dlv_channels_list(const dlv_channels *c, size_t *n);
/* The channel called name, or NULL. Any thread. */
const dlv_channel_cfg *dlv_channels_find(const dlv_channels *c, const char *name);
void dlv_channels_destroy(dlv_channels *c);   /* NULL is fine */

typedef struct dlv_templates dlv_templates;   /* opaque: a loaded folder */
typedef struct dlv_template  dlv_template;    /* opaque: one compiled template */

/* Loads every *.yaml / *.yml file of dir (one template each, in name order)
 * and compiles its fields (tpl_compile). A missing folder is none (JD_OK,
 * an empty set). JD_OK: *out is owned (dlv_templates_destroy).
 * JD_EINVAL / JD_ELIMIT / JD_EIO: *out is NULL and err holds the first error,
 * err->where "templates/welcome.yaml:LINE:COL" pointing into the YAML file
 * (inside a block scalar, at the template's own line and column).
 * Main thread (start-up). */
int dlv_templates_load(const char *dir, dlv_templates **out, jd_err *err);
/* As dlv_templates_load, and when diags is not NULL every error is appended
 * to it, one line each: "WHERE: error: MSG\n" (each file's first error,
 * then duplicate ids), the way `journeyd validate` lists journeys' errors. */
int dlv_templates_load_all(const char *dir, dlv_templates **out, jd_buf *diags, jd_err *err);
/* By id (what a send node's `template:` names), or NULL. s may be NULL. */
const dlv_template *dlv_templates_find(const dlv_templates *s, const char *id);
size_t   dlv_templates_count(const dlv_templates *s);           /* 0 for NULL */
/* The i-th template in load order (i < count), for listings. */
const dlv_template *dlv_templates_at(const dlv_templates *s, size_t i);
dlv_kind dlv_template_kind(const dlv_template *t);
const char *dlv_template_id(const dlv_template *t);
const char *dlv_template_path(const dlv_template *t);         /* "templates/welcome.yaml" */
void dlv_templates_destroy(dlv_templates *s);                  /* NULL is fine */

/* Renders t into m: m->to (only when m->to is NULL) and the block of t's
 * kind (m->email / sms / push / slack / webhook; strings owned by m).
 * vars: a JSON object (borrowed) whose keys are the names templates use:
 * profile, event, journey, message (docs/delivery.md). now_us is what
 * `date: "now"` prints: the time of the record that produced the message,
 * never the wall clock. Fields named html are rendered with HTML escaping.
 * JD_OK: m filled. On failure m is left as it was and:
 *  JD_EINVAL  m->kind is not t's kind; a template runtime error; the
 *             recipient rendered empty ("no recipient: profile.traits.email
 *             is empty": the engine records the send as skipped); a webhook
 *             body or slack blocks that are not valid JSON (msg names the
 *             template and field);
 *  JD_ELIMIT  a render limit (template.max_output, ...), named in msg.
 * err->where is "FILE:LINE:COL" of the failing place in the template file.
 * Pure and thread-safe: templates are read-only; each call makes its own
 * tpl_scratch (one per call, reused across the message's fields). */
int dlv_render(const dlv_template *t, struct json_object *vars, int64_t now_us, dlv_msg *m, jd_err *err);

/* ==== Webhook signatures (src/deliver/sign.c) ==============================
 *
 * One scheme, both ways: journeyd's signed webhooks carry it (channels.c) and
 * provider receipts (POST /v1/webhooks/CH, src/api/track.c) must carry it.
 *   X-Journeyd-Timestamp: <unix seconds>
 *   X-Journeyd-Signature: sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>
 * (the Stripe scheme: the receiver refuses stale timestamps, so a captured
 * request cannot be replayed later). Pure; any thread.
 */

#define DLV_SIGNATURE_SIZE 72   /* "sha256=" + 64 hex digits + NUL */

/* A secret's two keyed SHA-256 states (RFC 2104), computed once: signing then
 * costs two context copies and the hashing of the body, where OpenSSL 3's
 * HMAC() fetches and sets up per call. Returns owned (dlv_signer_destroy);
 * secret is borrowed. */
typedef struct dlv_signer dlv_signer;
dlv_signer *dlv_signer_create(const char *secret);
void        dlv_signer_destroy(dlv_signer *s);   /* NULL is fine */
/* Writes the X-Journeyd-Signature value for timestamp ts and body (n bytes). */
void dlv_signer_sign(const dlv_signer *s, const char *ts, const void *body, size_t n, char out[DLV_SIGNATURE_SIZE]);
/* As dlv_signer_sign, for one secret once. */
void dlv_webhook_signature(const char *secret, const char *ts, const void *body, size_t n, char out[DLV_SIGNATURE_SIZE]);
/* Is sig (a header value, NULL: no) the signature of ts and body under
 * secret? Compares in constant time. */
bool dlv_webhook_signature_ok(const char *secret, const char *ts, const void *body, size_t n, const char *sig);

/* ==== Signed tracking links (src/deliver/links.c) ==========================
 *
 * The feedback loop's links (docs/delivery.md "Feedback loop"): an open
 * pixel, click redirects and one-click unsubscribes that journeyd serves
 * itself (GET/POST /t/{o,c,u}/TOKEN, src/api/track.c). A token carries its
 * own payload (the intent, the person, where the message came from, and for
 * a sealed click its target), so the server keeps no state per link; it is
 * base64url(payload || mac), mac = HMAC-SHA256(links.secret, "jdl1" || kind
 * || payload) truncated to 16 bytes. The kind is inside the MAC, so an open
 * token is no unsubscribe token. Verification compares in constant time.
 * Read-only after dlv_links_create: any thread. No clock: the issue time is
 * the intent's record time (replay makes the same links), and the caller
 * passes "now" to verify.
 * Not here: recording what a link reports (the API turns it into events).
 */

typedef enum dlv_link_kind {
    DLV_LINK_OPEN = 'o',     /* GET /t/o/TOKEN: a 1x1 GIF, "Email Opened" */
    DLV_LINK_CLICK = 'c',    /* GET /t/c/TOKEN: 302 to the sealed target, "Email Link Clicked" */
    DLV_LINK_UNSUB = 'u',    /* GET (a page) / POST (RFC 8058 one-click) /t/u/TOKEN */
} dlv_link_kind;

#define DLV_LINK_MAX_FIELD  255u    /* bytes of each string of a link but the target */
#define DLV_LINK_MAX_TARGET 2048u   /* bytes of a click's target URL */

/* What a link says. Strings are not NUL-terminated: (p, n) views, borrowed
 * from the caller (dlv_link_url) or pointing into the caller's scratch
 * (dlv_link_verify). */
typedef struct dlv_link {
    uint64_t intent_id;
    int64_t  at_us;            /* issue time: the intent's record time (kept in seconds) */
    bool     key_is_user;      /* key is a userId (else an anonymousId) */
    jd_str   key, journey, node, channel, category;
    jd_str   target;           /* clicks: the sealed target URL; n 0: none */
} dlv_link;

typedef struct dlv_links dlv_links;   /* opaque, read-only once created */

/* secret: the HMAC key (borrowed, copied; at least 16 bytes); base_url: what
 * links start with, "https://t.example.com" (a trailing slash is dropped);
 * max_age_us: links older than this are refused (0: never).
 * JD_OK: *out owned (dlv_links_destroy). JD_EINVAL: err names links.secret
 * or links.base_url. */
int  dlv_links_create(dlv_links **out, const char *secret, const char *base_url, uint64_t max_age_us, jd_err *err);
void dlv_links_destroy(dlv_links *l);            /* NULL is fine */
const char *dlv_links_base(const dlv_links *l);  /* without a trailing slash */

/* Returns owned (free): "<base>/t/<kind>/<token>", or NULL when a field is
 * longer than DLV_LINK_MAX_FIELD (or the target than DLV_LINK_MAX_TARGET,
 * or not an http(s) URL). Pure. */
char *dlv_link_url(const dlv_links *l, dlv_link_kind k, const dlv_link *in);

/* Checks a token (the URL path's last part) of kind k. JD_OK: *out filled,
 * its strings pointing into scratch (cap >= strlen(token) is enough).
 * JD_EINVAL: malformed, wrong kind, tampered or signed with another secret;
 * JD_ELIMIT: older than max_age (now_us - at_us). err->msg says which.
 * Constant time in the MAC comparison. Pure. */
int dlv_link_verify(const dlv_links *l, dlv_link_kind k, const char *token, int64_t now_us, dlv_link *out,
                    void *scratch, size_t cap, jd_err *err);

/* Adds message.unsubscribe_url, message.open_pixel_url and message.click_url
 * (strings) to `message` (a json object) for the link `in`; nothing when l is
 * NULL or a field is too long. Pure. */
void dlv_links_vars(const dlv_links *l, const dlv_link *in, struct json_object *message);

/* After dlv_render: every "<click_url>?to=<url-encoded target>" in m's
 * bodies (a click_url of m's own intent) becomes a sealed click link whose
 * token carries the target; an email without unsubscribe_url takes vars'
 * message.unsubscribe_url (List-Unsubscribe). A target that is not an
 * absolute http(s) URL is left unsealed (GET answers 400). Nothing when l is
 * NULL. Pure; allocates m's new strings. */
void dlv_links_apply(const dlv_links *l, struct json_object *vars, dlv_msg *m);

/* ---- guardrails (`guardrails:` in the configuration; guard.c) --------------
 * Frequency caps and quiet hours. Parsed here; applied by the shard that owns
 * the person when a send intent is produced (src/engine/outbox.c), so the
 * decision is a function of the log. Categories listed in consent.exempt
 * (transactional) are neither capped nor held. docs/delivery.md "Guardrails". */

#define DLV_GUARD_NAME       64   /* channel, category, journey names */
#define DLV_GUARD_MAX_RULES  32   /* caps, and quiet-hour windows */
#define DLV_GUARD_MAX_SENDS  64   /* a cap's max; also the sends remembered per person */

typedef struct dlv_cap {           /* at most max messages per `per`, for the sends that match */
    char     channel[DLV_GUARD_NAME + 1], category[DLV_GUARD_NAME + 1], journey[DLV_GUARD_NAME + 1];   /* "*": any */
    uint32_t max;
    uint64_t per_us;
} dlv_cap;

typedef struct dlv_quiet {         /* no message on channel between from and to, local time */
    char channel[DLV_GUARD_NAME + 1];
    int  from_min, to_min;         /* minutes after local midnight; from > to crosses midnight */
    char zone_trait[DLV_GUARD_NAME + 1];     /* the profile trait holding the person's zone (timezone) */
    char default_zone[DLV_GUARD_NAME + 1];   /* when the trait is missing or not a zone (UTC) */
} dlv_quiet;

typedef struct dlv_guards {
    dlv_cap   caps[DLV_GUARD_MAX_RULES];
    size_t    ncaps;
    dlv_quiet quiet[DLV_GUARD_MAX_RULES];
    size_t    nquiet;
} dlv_guards;

/* Parses `guardrails:` ({caps: [...], quiet_hours: [...]}; NULL or empty:
 * none, *out NULL). JD_EINVAL with err->where "FILE:LINE:COL" and a message
 * starting with the key path ("guardrails.caps[1].per: ..."). */
int  dlv_guards_parse(const jd_yaml_node *map, const char *file, dlv_guards **out, jd_err *err);
void dlv_guards_destroy(dlv_guards *g);
/* Does a rule's name ("*" or a name) match value? */
bool dlv_guard_match(const char *rule, const char *value);
/* When at_us falls inside q's window in zone (NULL or not a zone:
 * q->default_zone), *until_us is the instant the window ends (the message is
 * held until then); else 0. Pure (ICU's zone data). */
int  dlv_quiet_until(const dlv_quiet *q, const char *zone, int64_t at_us, int64_t *until_us);

#endif
