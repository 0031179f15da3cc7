/* src/http/server.c -- the HTTP server adapter over libmicrohttpd (MHD).
 *
 * MHD runs its own threads (one poll thread, or a pool of http.threads of
 * them) and calls on_access() several times per request: once when the
 * headers are in, once per body chunk, and once more when the body is
 * complete (and again after a suspended connection is resumed). This file
 * turns that into one handler call per request with the whole body, and lets
 * the handler answer later from any thread (group commit acknowledges a batch
 * only after its fsync). docs/internals/http.md has the long version.
 *
 * Request states (r->state, guarded by r->mu from HANDLING on):
 *
 *   RECEIVING -> REJECTED   [on_access, body chunk]  body passed its ceiling;
 *                                                    the rest is discarded
 *   RECEIVING -> HANDLING   [on_access, final call]  body complete, handler runs
 *   HANDLING  -> SENT       [on_access]              handler returned and a reply
 *                                                    was stored (by it or by
 *                                                    another thread meanwhile)
 *   HANDLING  -> SUSPENDED  [on_access]              handler deferred, no reply yet:
 *                                                    MHD_suspend_connection
 *   SUSPENDED -> SENT       [on_access, resumed]     http_reply stored the reply
 *                                                    and resumed the connection
 *   REJECTED  -> SENT       [on_access, final call]  the stored error is queued
 *   *         -> GONE       [on_completed]           MHD is done with the connection
 *
 * Invariants:
 *  (1) MHD_queue_response is called only on an MHD thread, inside on_access,
 *      at a point MHD allows it (first call or final call, never with upload
 *      data). http_reply never queues: it stores r->resp.
 *  (2) MHD_resume_connection is called only by http_reply, only for a request
 *      in SUSPENDED, and at most once (r->replied). A reply that arrives while
 *      the handler is still running never resumes anything: on_access finds it
 *      when the handler returns.
 *  (3) The connection is suspended while holding r->mu, and http_reply reads
 *      the state under r->mu, so "SUSPENDED" always means MHD has been told.
 *      http_reply calls MHD_resume_connection after dropping r->mu; that is
 *      safe because a suspended connection is never processed or freed by MHD
 *      until resumed (short of MHD_stop_daemon, which (5) forbids).
 *  (4) A request is reference-counted: one reference for MHD (dropped in
 *      on_completed) and one for a deferral (dropped at the end of
 *      http_reply). A client that vanishes while its request is deferred
 *      therefore cannot free memory the replying thread still uses.
 *  (5) srv->suspended counts deferred requests whose http_reply has not
 *      returned; http_server_destroy requires it to be zero (MHD panics when
 *      stopped with a suspended connection).
 *  (6) Every body byte kept is bounded: raw bytes by the route's max_body (or
 *      by max_inflated for gzip), inflated bytes by min(max_body, max_inflated).
 *      After a 413 at most DISCARD_MAX more bytes are read and dropped; then
 *      the connection is closed.
 */
#include "journeyd/http.h"
#include "journeyd/limits.h"
#include "http_int.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MEMORY_LIMIT   (32u * 1024)    /* per-connection MHD pool: headers + I/O. Small on purpose:
                                          * libmicrohttpd 0.9.75 zeroes the whole pool between requests
                                          * (128 KiB cost ~10 us a request); bodies go to our own buffer. */
#define ERR_BODY_MAX   1024u           /* an error body we build ourselves */
#define REPLY_HDRS_MAX (16u * 1024)    /* http_reply_header bytes per reply */
#define INFLATED_KEY   "limits.max_inflated_bytes"
#define DISCARD_MAX    (1u << 20)      /* body bytes read and dropped after a 413 */

enum req_state { RS_RECEIVING, RS_REJECTED, RS_HANDLING, RS_SUSPENDED, RS_SENT, RS_GONE };

struct http_server {
    struct MHD_Daemon *d;
    const http_route  *routes;
    size_t             nroutes;
    void              *ctx;
    uint32_t           max_inflated;
    uint16_t           port;
    MHD_socket         quiesced_fd;   /* returned by MHD_quiesce_daemon, closed at destroy */
    atomic_uint        suspended;     /* (5) */
};

struct http_req {
    pthread_mutex_t    mu;
    atomic_int         refs;          /* (4) */
    enum req_state     state;
    bool               deferred;      /* http_defer was called */
    bool               replied;       /* http_reply was called (under mu) */
    bool               gzip;
    struct MHD_Connection *conn;      /* NULL once GONE */
    struct MHD_Response   *resp;      /* stored reply, not yet queued */
    unsigned           status;
    http_server       *srv;
    const http_route  *route;
    const char        *method, *path, *tail;   /* in MHD's connection pool */
    char              *basic_user;    /* owned */
    const char        *bearer;        /* in MHD's pool */
    jd_buf             raw;           /* the body as received */
    jd_buf             inflated;      /* the body after gunzip */
    size_t             discarded;     /* REJECTED: bytes thrown away */
    size_t             discard_allow; /* REJECTED: bytes that may still be read and dropped */
    jd_buf             hdrs;          /* reply headers: "name\0value\0"... */
};

/* ---- request lifetime --------------------------------------------------- */

static http_req *req_create(http_server *s, struct MHD_Connection *c,
                            const char *method, const char *url)
{
    http_req *r = jd_xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->refs, 1);          /* MHD's reference (4) */
    r->state = RS_RECEIVING;
    r->conn = c;
    r->srv = s;
    r->method = method;
    r->path = url;
    r->tail = "";
    jd_buf_init(&r->raw, 0);
    jd_buf_init(&r->inflated, 0);
    jd_buf_init(&r->hdrs, REPLY_HDRS_MAX);
    return r;
}

static void req_unref(http_req *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1) return;
    if (r->resp) MHD_destroy_response(r->resp);
    jd_buf_release(&r->raw);
    jd_buf_release(&r->inflated);
    jd_buf_release(&r->hdrs);
    free(r->basic_user);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- routing: the table is the index of what we serve ------------------- */

static bool path_matches(const http_route *rt, const char *url, const char **tail)
{
    size_t n = strlen(rt->path);
    if (n >= 2 && rt->path[n - 2] == '/' && rt->path[n - 1] == '*') {
        if (strncmp(url, rt->path, n - 1) != 0 || url[n - 1] == '\0') return false;
        *tail = url + n - 1;           /* MHD has already URL-decoded url */
        return true;
    }
    *tail = "";
    return strcmp(url, rt->path) == 0;
}

/* Returns the row for method+url, or NULL with allow filled with the methods
 * that do match the path ("" when no row matches it at all). */
static const http_route *route_find(const http_server *s, const char *method,
                                    const char *url, const char **tail, jd_buf *allow)
{
    for (size_t i = 0; i < s->nroutes; i++) {
        const http_route *rt = &s->routes[i];
        const char *t;
        if (!path_matches(rt, url, &t)) continue;
        if (strcmp(rt->method, method) == 0) { *tail = t; return rt; }
        bool seen = false;             /* rows may repeat a method: list it once */
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(s->routes[j].method, rt->method) == 0 &&
                   path_matches(&s->routes[j], url, &t);
        if (!seen) jd_buf_addf(allow, "%s%s", allow->len ? ", " : "", rt->method);
    }
    return NULL;
}

/* ---- request headers ---------------------------------------------------- */

static bool starts_with_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static void parse_authorization(http_req *r)
{
    const char *a = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (!a) return;
    if (starts_with_ci(a, "Bearer ")) {
        a += 7;
        while (*a == ' ') a++;
        if (*a) r->bearer = a;
    } else if (starts_with_ci(a, "Basic ")) {
        a += 6;
        while (*a == ' ') a++;
        size_t n = strcspn(a, " ");
        char *dec = jd_xmalloc(n + 1);     /* decoded is always shorter */
        long dn = http__b64_decode(a, n, dec, n + 1);
        char *colon = dn >= 0 ? memchr(dec, ':', (size_t)dn) : NULL;
        if (colon) {                       /* the password is ignored, as Segment does */
            *colon = '\0';
            r->basic_user = dec;
            dec = NULL;
        }
        free(dec);
    }
}

/* ---- replies ------------------------------------------------------------ */

/* 413 naming the ceiling that was hit and its config key (STYLE practice 7). */
static void reply_too_big(http_req *r, const char *what, uint64_t limit, const char *key)
{
    char msg[192];
    snprintf(msg, sizeof msg, "%s exceeds %llu bytes (%s)", what,
             (unsigned long long)limit, key);
    http_reply_error(r, 413, msg, NULL);
}

/* The ceiling on raw and inflated bytes for r's route (6); *key and *inflated
 * describe the one that binds, for the 413 message. */
static uint64_t inflated_limit(const http_req *r, const char **key, bool *by_inflated)
{
    uint32_t mb = r->route->max_body, mi = r->srv->max_inflated;
    *by_inflated = mi < mb;
    *key = *by_inflated ? INFLATED_KEY : (r->route->max_body_key ? r->route->max_body_key : "max_body");
    return *by_inflated ? mi : mb;
}

static void raw_limit_error(http_req *r)
{
    if (r->gzip)                       /* compressed bytes are bounded by max_inflated */
        reply_too_big(r, "gzip body", r->srv->max_inflated, INFLATED_KEY);
    else
        reply_too_big(r, "request body", r->route->max_body,
                      r->route->max_body_key ? r->route->max_body_key : "max_body");
}

/* Takes the stored reply (under r->mu) and queues it (1). */
static enum MHD_Result queue_stored(http_req *r, struct MHD_Connection *c)
{
    pthread_mutex_lock(&r->mu);
    struct MHD_Response *resp = r->resp;
    unsigned status = r->status;
    r->resp = NULL;
    r->state = RS_SENT;
    pthread_mutex_unlock(&r->mu);
    JD_ASSERT(resp != NULL);
    enum MHD_Result ok = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);        /* MHD holds its own reference */
    return ok;
}

/* ---- the MHD callbacks -------------------------------------------------- */

/* Encodings we accept, by Content-Encoding value: a table, not a ladder. */
static const struct { const char *name; bool gzip; } encodings[] = {
    { "identity", false }, { "gzip", true }, { "x-gzip", true },
};

/* First call: headers are in, no body yet. Routes, checks the encoding and
 * Content-Length, and queues an error at once if one is due. */
static enum MHD_Result on_headers(http_server *s, http_req *r, struct MHD_Connection *c)
{
    jd_buf allow;
    jd_buf_init(&allow, 1024);
    const char *tail = "";
    r->route = route_find(s, r->method, r->path, &tail, &allow);
    r->tail = tail;
    if (!r->route && allow.len == 0) {
        char *msg = jd_strfmt("no route for %s", r->path);
        http_reply_error(r, 404, msg, NULL);
        free(msg);
    } else if (!r->route) {
        char *msg = jd_strfmt("method %s not allowed on %s", r->method, r->path);
        http_reply_header(r, "Allow", allow.data);
        http_reply_error(r, 405, msg, NULL);
        free(msg);
    }
    jd_buf_release(&allow);
    if (r->resp) return queue_stored(r, c);

    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    if (enc) {
        size_t i = 0;
        while (i < JD_ARRAY_LEN(encodings) && strcasecmp(enc, encodings[i].name) != 0) i++;
        if (i == JD_ARRAY_LEN(encodings)) {
            char *msg = jd_strfmt("unsupported content encoding %s", enc);
            http_reply_error(r, 415, msg, NULL);
            free(msg);
            return queue_stored(r, c);
        }
        r->gzip = encodings[i].gzip;
    }
    const char *key;
    bool by_inflated;
    uint64_t lim_inflated = inflated_limit(r, &key, &by_inflated);
    uint64_t lim_raw = r->gzip ? s->max_inflated : r->route->max_body;
    jd_buf_init(&r->raw, lim_raw);
    jd_buf_init(&r->inflated, lim_inflated);

    /* A declared length over the ceiling: answering at once makes MHD close
     * the socket while the client is still writing, and a client then sees a
     * reset (EPIPE) instead of the 413. So a body within DISCARD_MAX of the
     * ceiling is read and dropped like an undeclared one (the 413 goes out at
     * its end and the connection stays open); only a larger one is refused
     * before reading a byte (and before "100 Continue"). */
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    uint64_t declared = cl ? strtoull(cl, NULL, 10) : 0;
    if (cl && declared > lim_raw) {
        raw_limit_error(r);
        if (declared - lim_raw > DISCARD_MAX) return queue_stored(r, c);
        r->state = RS_REJECTED;
        r->discarded = 0;
        r->discard_allow = (size_t)declared;   /* the whole declared body, at most ceiling + DISCARD_MAX */
        jd_buf_release(&r->raw);
        return MHD_YES;
    }
    parse_authorization(r);
    return MHD_YES;
}

static enum MHD_Result on_chunk(http_req *r, const char *data, size_t *n)
{
    size_t got = *n;
    *n = 0;                            /* always consumed: kept or discarded */
    if (r->state == RS_REJECTED) {
        /* MHD cannot queue a reply during the upload: the 413 waits for the
         * end of the body. Past DISCARD_MAX more bytes, close instead. */
        r->discarded += got;
        if (r->discarded <= r->discard_allow) return MHD_YES;
        jd_warn("http: closing connection: %s %s body still coming %zu bytes past its ceiling",
                r->method, r->path, r->discarded);
        return MHD_NO;
    }
    if (jd_buf_add(&r->raw, data, got) != JD_OK) {
        raw_limit_error(r);
        r->discarded = got;
        r->discard_allow = DISCARD_MAX;
        r->state = RS_REJECTED;
        jd_buf_release(&r->raw);
    }
    return MHD_YES;
}

/* Final call with the whole body: inflate it, run the handler, then queue the
 * reply or suspend the connection. */
static enum MHD_Result on_body_complete(http_server *s, http_req *r, struct MHD_Connection *c)
{
    if (r->gzip) {
        char zmsg[128] = "";
        int rc = http__gunzip(r->raw.data ? r->raw.data : "", r->raw.len, &r->inflated,
                              zmsg, sizeof zmsg);
        jd_buf_release(&r->raw);
        if (rc == JD_ELIMIT) {
            const char *key;
            bool by_inflated;
            uint64_t lim = inflated_limit(r, &key, &by_inflated);
            reply_too_big(r, by_inflated ? "gzip body once inflated" : "request body", lim, key);
            return queue_stored(r, c);
        }
        if (rc != JD_OK) {
            char *msg = jd_strfmt("invalid gzip body: %s", zmsg);
            http_reply_error(r, 400, msg, NULL);
            free(msg);
            return queue_stored(r, c);
        }
    }
    pthread_mutex_lock(&r->mu);
    r->state = RS_HANDLING;
    pthread_mutex_unlock(&r->mu);

    r->route->handle(r, s->ctx);

    pthread_mutex_lock(&r->mu);
    if (!r->resp && r->deferred) {
        r->state = RS_SUSPENDED;
        MHD_suspend_connection(c);     /* under r->mu: (3) */
        pthread_mutex_unlock(&r->mu);
        return MHD_YES;
    }
    bool replied = r->resp != NULL;
    pthread_mutex_unlock(&r->mu);
    if (!replied) {
        jd_error("http: handler for %s %s returned without replying", r->method, r->path);
        http_reply_error(r, 500, "handler did not reply", NULL);
    }
    return queue_stored(r, c);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = req_create(s, c, method, url);
        *con_cls = r;
        return on_headers(s, r, c);
    }
    if (*upload_data_size) return on_chunk(r, upload_data, upload_data_size);
    /* Final call, or the call after a resume. SUSPENDED and REJECTED hold a
     * stored reply; only RECEIVING still has work to do. */
    if (r->state == RS_RECEIVING) return on_body_complete(s, r, c);
    return queue_stored(r, c);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    pthread_mutex_lock(&r->mu);
    r->state = RS_GONE;
    r->conn = NULL;
    pthread_mutex_unlock(&r->mu);
    req_unref(r);                      /* MHD's reference (4) */
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    jd_warn("http: mhd: %s", line);
}

/* ---- the server --------------------------------------------------------- */

int http_server_create(http_server **out, const http_opts *o,
                       const http_route *routes, size_t nroutes, void *ctx, jd_err *err)
{
    int rc = JD_EINVAL;
    http_server *s = NULL;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr *sa = NULL;
    /* poll(), not epoll: with epoll (edge-triggered) libmicrohttpd 0.9.75 can
     * miss the next request that arrived on a keep-alive connection while it
     * was suspended, after MHD_resume_connection; the connection then hangs
     * until some other socket event. Seen about once in 40 one-second wrk runs
     * of 128 connections; none with poll in 120 (docs/internals/http.md). */
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    const char *host = o->host && *o->host ? o->host : "0.0.0.0";

    *out = NULL;
    memset(&sin, 0, sizeof sin);
    memset(&sin6, 0, sizeof sin6);
    if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons(o->port);
        sa = (struct sockaddr *)&sin;
    } else if (inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(o->port);
        sa = (struct sockaddr *)&sin6;
        /* "::" serves IPv4 too; a specific IPv6 address only itself */
        flags |= IN6_IS_ADDR_UNSPECIFIED(&sin6.sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    } else {
        jd_err_set(err, JD_EINVAL, "http.host", "not an IPv4 or IPv6 address: %s", host);
        goto out;
    }

    s = jd_xcalloc(1, sizeof *s);
    s->routes = routes;
    s->nroutes = nroutes;
    s->ctx = ctx;
    s->max_inflated = o->max_inflated;
    s->quiesced_fd = MHD_INVALID_SOCKET;
    atomic_init(&s->suspended, 0);

    struct MHD_OptionItem opts[] = {
        { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL },
        { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s },
        { MHD_OPTION_SOCK_ADDR, 0, sa },
        { MHD_OPTION_CONNECTION_LIMIT, o->max_connections ? o->max_connections : JD_DEF_MAX_CONNECTIONS, NULL },
        { MHD_OPTION_CONNECTION_TIMEOUT, o->connection_timeout_s, NULL },
        { MHD_OPTION_CONNECTION_MEMORY_LIMIT, MEMORY_LIMIT, NULL },
        { o->threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, o->threads, NULL },
        { MHD_OPTION_END, 0, NULL },
    };
    s->d = MHD_start_daemon(flags, o->port, NULL, NULL, on_access, s,
                            MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!s->d) {
        rc = jd_err_errno(err, "http.port", "cannot listen on %s port %u", host, (unsigned)o->port);
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : o->port;
    jd_info("http: listening on %s port %u (%u threads)", host, (unsigned)s->port,
            o->threads > 1 ? o->threads : 1u);
    *out = s;
    s = NULL;
    rc = JD_OK;
out:
    free(s);
    return rc;
}

uint16_t http_server_port(const http_server *s) { return s->port; }

void http_server_quiesce(http_server *s)
{
    if (s->quiesced_fd != MHD_INVALID_SOCKET) return;
    s->quiesced_fd = MHD_quiesce_daemon(s->d);
    /* MHD stops polling the socket but it stays open (and listening) until
     * destroy, so the kernel would still complete handshakes into the
     * backlog and leave those clients hanging. Shutting it down makes new
     * connections fail at once; the descriptor itself stays valid. */
    if (s->quiesced_fd != MHD_INVALID_SOCKET) shutdown(s->quiesced_fd, SHUT_RDWR);
}

void http_server_destroy(http_server *s)
{
    if (!s) return;
    unsigned pending = atomic_load(&s->suspended);
    if (pending) jd_error("http: destroying the server with %u deferred requests unanswered", pending);
    JD_ASSERT(pending == 0);           /* (5): MHD would panic */
    MHD_stop_daemon(s->d);
    /* MHD says: close the quiesced socket only after MHD_stop_daemon */
    if (s->quiesced_fd != MHD_INVALID_SOCKET) close(s->quiesced_fd);
    free(s);
}

/* ---- the request accessors ---------------------------------------------- */

const char *http_req_method(const http_req *r) { return r->method; }
const char *http_req_path(const http_req *r) { return r->path; }
const char *http_req_path_tail(const http_req *r) { return r->tail; }
const char *http_req_basic_user(const http_req *r) { return r->basic_user; }
const char *http_req_bearer(const http_req *r) { return r->bearer; }

const char *http_req_header(const http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_req_query(const http_req *r, const char *key)
{
    const char *v = NULL;
    /* A bare "?flag" has no value: report it as present and empty. */
    if (MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, key, strlen(key),
                                      &v, NULL) != MHD_YES)
        return NULL;
    return v ? v : "";
}

const char *http_req_body(const http_req *r, size_t *n)
{
    const jd_buf *b = r->gzip ? &r->inflated : &r->raw;
    *n = b->len;
    return b->data ? b->data : "";
}

/* ---- answering ---------------------------------------------------------- */

void http_reply_header(http_req *r, const char *name, const char *value)
{
    if (jd_buf_add(&r->hdrs, name, strlen(name) + 1) != JD_OK ||
        jd_buf_add(&r->hdrs, value, strlen(value) + 1) != JD_OK)
        jd_warn("http: reply header %s dropped: over %u bytes of headers", name,
                REPLY_HDRS_MAX);
}

void http_defer(http_req *r)
{
    JD_ASSERT(!r->deferred);
    r->deferred = true;
    atomic_fetch_add(&r->refs, 1);     /* the deferral's reference (4) */
    atomic_fetch_add(&r->srv->suspended, 1);
}

void http_reply(http_req *r, int status, const char *content_type,
                const char *body, size_t n)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(n, (void *)(n ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (!resp) { jd_error("http: out of memory creating a response"); abort(); }
    if (content_type) MHD_add_response_header(resp, "Content-Type", content_type);
    for (size_t off = 0; off < r->hdrs.len;) {
        const char *k = r->hdrs.data + off;
        const char *v = k + strlen(k) + 1;
        if (MHD_add_response_header(resp, k, v) != MHD_YES)
            jd_warn("http: reply header %s refused", k);
        off = (size_t)(v + strlen(v) + 1 - r->hdrs.data);
    }
    jd_buf_release(&r->hdrs);

    http_server *s = r->srv;           /* read before r may be released below */
    bool deferred = r->deferred;
    pthread_mutex_lock(&r->mu);
    JD_ASSERT(!r->replied);
    r->replied = true;
    bool wake = r->state == RS_SUSPENDED;
    bool keep = r->state != RS_SENT && r->state != RS_GONE;
    struct MHD_Connection *c = r->conn;
    if (keep) { r->resp = resp; r->status = (unsigned)status; resp = NULL; }
    pthread_mutex_unlock(&r->mu);
    if (resp) MHD_destroy_response(resp);   /* nobody left to send it to */
    if (wake) MHD_resume_connection(c);     /* (2), (3) */
    if (deferred) {
        atomic_fetch_sub(&s->suspended, 1);  /* (5): after the resume */
        req_unref(r);
    }
}

void http_reply_error(http_req *r, int status, const char *msg, const char *at)
{
    jd_buf b;
    jd_buf_init(&b, ERR_BODY_MAX);
    /* An overlong message is cut rather than lost: the status still tells. */
    size_t mn = JD_MIN_OF(strlen(msg), ERR_BODY_MAX / 2);
    jd_buf_adds(&b, "{\"error\":");
    jd_buf_add_json_str(&b, msg, mn);
    if (at && *at) {
        jd_buf_adds(&b, ",\"at\":");
        jd_buf_add_json_str(&b, at, JD_MIN_OF(strlen(at), ERR_BODY_MAX / 4));
    }
    jd_buf_adds(&b, "}");
    http_reply(r, status, "application/json", b.data, b.len);
    jd_buf_release(&b);
}
