/* include/journeyd/http.h -- the HTTP server adapter (libmicrohttpd).
 *
 * Owns: listening, HTTP/1.1 keep-alive, reading a request body into a bounded
 * buffer, inflating gzip bodies (Content-Encoding: gzip) within a ceiling,
 * routing by method and path through a table, deferred replies (a handler may
 * answer later from another thread: the connection is suspended meanwhile),
 * and Server-Sent Events later. Errors it produces itself (404, 405, 413, 400
 * for a bad gzip body) use the JSON error body of docs/api.md.
 * Threading: handlers run on the server's threads (http.threads of them);
 * http_reply may be called from any thread, exactly once per request.
 * Not here: authentication decisions, JSON, business logic (src/api/).
 */
#ifndef JOURNEYD_HTTP_H
#define JOURNEYD_HTTP_H

#include "journeyd/base.h"

typedef struct http_server http_server;   /* opaque */
typedef struct http_req http_req;         /* opaque: one request */

typedef void (*http_handler)(http_req *r, void *ctx);

/* One row of the route table. A path whose last segment is a lone star ("/v1/profiles/" + "*") matches any non-empty
 * rest (http_req_path_tail returns it, URL-decoded). Several rows may share a
 * path with different methods: a path that matches with another method only
 * gets 405 with an Allow header. */
typedef struct http_route {
    const char  *method;       /* "GET", "POST", ... */
    const char  *path;         /* "/v1/track"; a prefix route ends in a star */
    http_handler handle;
    uint32_t     max_body;     /* bytes of body accepted, after inflating */
    const char  *max_body_key; /* config key named in the 413 message */
} http_route;

typedef struct http_opts {
    const char *host;          /* "127.0.0.1", "0.0.0.0", "::" */
    uint16_t    port;          /* 0: pick a free port (http_server_port tells) */
    uint32_t    threads;       /* http.threads */
    uint32_t    max_connections;
    uint32_t    connection_timeout_s;
    uint32_t    max_inflated;  /* ceiling for a gzip body once inflated */
} http_opts;

/* Starts listening and serving. routes is borrowed for the server's life.
 * ctx is passed to every handler. Returns owned *out (http_server_destroy). */
int  http_server_create(http_server **out, const http_opts *o,
                        const http_route *routes, size_t nroutes, void *ctx, jd_err *err);
uint16_t http_server_port(const http_server *s);
/* Stops accepting new connections (in-flight requests may still complete). */
void http_server_quiesce(http_server *s);
/* Stops the server; every deferred request must have been replied to. */
void http_server_destroy(http_server *s);

/* ---- the request: all strings valid until the reply is sent ------------- */
const char *http_req_method(const http_req *r);
const char *http_req_path(const http_req *r);
const char *http_req_path_tail(const http_req *r);           /* for prefix (star) routes */
const char *http_req_header(const http_req *r, const char *name);  /* NULL if absent */
const char *http_req_query(const http_req *r, const char *key);    /* NULL if absent */
/* The body, inflated if it was gzip; NUL-terminated (not counted in *n). */
const char *http_req_body(const http_req *r, size_t *n);
/* The user name of an "Authorization: Basic" header, or NULL. */
const char *http_req_basic_user(const http_req *r);
/* The token of an "Authorization: Bearer" header, or NULL. */
const char *http_req_bearer(const http_req *r);

/* ---- answering ---------------------------------------------------------- */
/* Sends the reply (body copied). From the handler, or later from any thread
 * after http_defer(). Exactly once per request. */
void http_reply(http_req *r, int status, const char *content_type,
                const char *body, size_t n);
/* {"error":"<msg>"} or {"error":"<msg>","at":"<at>"} (at may be NULL/""). */
void http_reply_error(http_req *r, int status, const char *msg, const char *at);
/* Adds a response header to the coming reply (before http_reply). */
void http_reply_header(http_req *r, const char *name, const char *value);
/* Called by a handler that will reply later; the connection waits, suspended.
 * Must be called from the handler, before it returns. */
void http_defer(http_req *r);

#endif
