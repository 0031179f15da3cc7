/* tests/unit/deliver/peer.h -- what the delivery tests share: a local HTTP
 * provider (libmicrohttpd, one thread a connection) that records every request
 * and answers from a plan, a collector of dlv results, a free port, and
 * starting/stopping a child process by its PID. Header-only: the Makefile
 * builds each C file under tests/unit/MOD/ as its own program. */
#ifndef DELIVER_TEST_PEER_H
#define DELIVER_TEST_PEER_H

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journeyd/deliver.h"

#define PEER_MAX_REQ 512

typedef struct preq {
    char     method[8];
    char     url[256];
    char     auth[512];      /* Authorization */
    char     idem[64];       /* Idempotency-Key */
    char     ts[32];         /* X-Journeyd-Timestamp */
    char     sig[128];       /* X-Journeyd-Signature */
    char     ctype[128];     /* Content-Type */
    char    *body;           /* NUL-terminated, owned */
    size_t   n;
    uint64_t at_ns;          /* monotonic arrival */
} preq;

typedef struct peer {
    struct MHD_Daemon *d;
    uint16_t port;
    char base[64];           /* "http://127.0.0.1:PORT" */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    preq reqs[PEER_MAX_REQ];
    size_t nreq;
    /* the plan: request i gets plan[i] while i < nplan, else status_after */
    int plan[64];
    size_t nplan;
    int status_after;
    const char *ok_body;      /* body of a 2xx */
    const char *err_body;     /* body of anything else */
    const char *retry_after;  /* sent with 429 and 503 */
    unsigned delay_ms;        /* before answering */
    unsigned concurrent, max_concurrent;
} peer;

typedef struct conn_state { char *buf; size_t n; } conn_state;

static inline void copy_hdr(struct MHD_Connection *c, const char *name, char *out, size_t n)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(out, n, "%s", v ? v : "");
}

static inline enum MHD_Result peer_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                   const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    peer *p = cls;
    conn_state *st = *con_cls;
    if (!st) {
        st = calloc(1, sizeof *st);
        *con_cls = st;
        return MHD_YES;
    }
    if (*upload_size) {
        st->buf = realloc(st->buf, st->n + *upload_size + 1);
        memcpy(st->buf + st->n, upload, *upload_size);
        st->n += *upload_size;
        st->buf[st->n] = 0;
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&p->mu);
    size_t idx = p->nreq;
    if (idx < PEER_MAX_REQ) {
        preq *r = &p->reqs[idx];
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->url, sizeof r->url, "%s", url);
        copy_hdr(c, "Authorization", r->auth, sizeof r->auth);
        copy_hdr(c, "Idempotency-Key", r->idem, sizeof r->idem);
        copy_hdr(c, "X-Journeyd-Timestamp", r->ts, sizeof r->ts);
        copy_hdr(c, "X-Journeyd-Signature", r->sig, sizeof r->sig);
        copy_hdr(c, "Content-Type", r->ctype, sizeof r->ctype);
        r->body = st->buf ? st->buf : calloc(1, 1);
        r->n = st->n;
        st->buf = NULL;
        r->at_ns = jd_monotonic_ns();
        p->nreq++;
    }
    int status = idx < p->nplan ? p->plan[idx] : p->status_after;
    unsigned delay = p->delay_ms;
    if (++p->concurrent > p->max_concurrent) p->max_concurrent = p->concurrent;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (delay) {
        struct timespec ts = { delay / 1000, (long)(delay % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    const char *body = status >= 200 && status < 300 ? (p->ok_body ? p->ok_body : "ok")
                                                      : (p->err_body ? p->err_body : "{\"error\":\"planned\"}");
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if ((status == 429 || status == 503) && p->retry_after) MHD_add_response_header(resp, "Retry-After", p->retry_after);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    pthread_mutex_lock(&p->mu);
    p->concurrent--;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static inline void peer_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    conn_state *st = *con_cls;
    if (st) { free(st->buf); free(st); }
    *con_cls = NULL;
}

/* A port nothing listens on now (bound, read, closed). */
static inline uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &l) != 0) abort();
    close(fd);
    return ntohs(a.sin_port);
}

static inline void peer_init(peer *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->status_after = 200;
}

/* Starts listening on port (0: any free one). Returns 0 or -1. */
static inline int peer_start(peer *p, uint16_t port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    p->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, port,
                            NULL, NULL, peer_access, p, MHD_OPTION_SOCK_ADDR, &a, MHD_OPTION_NOTIFY_COMPLETED,
                            peer_done, p, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_END);
    if (!p->d) return -1;
    p->port = MHD_get_daemon_info(p->d, MHD_DAEMON_INFO_BIND_PORT)->port;
    snprintf(p->base, sizeof p->base, "http://127.0.0.1:%u", p->port);
    return 0;
}

static inline void peer_stop(peer *p)
{
    if (p->d) MHD_stop_daemon(p->d);
    p->d = NULL;
    for (size_t i = 0; i < p->nreq; i++) free(p->reqs[i].body);
    p->nreq = 0;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

/* Waits until the peer has n requests; returns how many it has. */
static inline size_t peer_wait(peer *p, size_t n, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&p->mu);
    while (p->nreq < n)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) break;
    size_t got = p->nreq;
    pthread_mutex_unlock(&p->mu);
    return got;
}

/* Requests carrying this Idempotency-Key. */
static inline size_t peer_count_key(peer *p, const char *key)
{
    size_t k = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->nreq; i++) k += strcmp(p->reqs[i].idem, key) == 0;
    pthread_mutex_unlock(&p->mu);
    return k;
}

/* ---- results ----------------------------------------------------------------- */

typedef struct got_result {
    uint64_t    intent_id;
    dlv_outcome outcome;
    uint32_t    attempts;
    int         status;
    char        provider_id[128];
    char        error[400];
    uint64_t    at_ns;
    uint64_t    elapsed_us;
} got_result;

typedef struct results {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    got_result r[PEER_MAX_REQ];
    size_t n;
    dlv_msg *unsent[PEER_MAX_REQ];   /* taken by on_unsent */
    size_t nunsent;
} results;

static inline void results_init(results *rs)
{
    memset(rs, 0, sizeof *rs);
    pthread_mutex_init(&rs->mu, NULL);
    pthread_cond_init(&rs->cv, NULL);
}

static inline void results_release(results *rs)
{
    for (size_t i = 0; i < rs->nunsent; i++) dlv_msg_destroy(rs->unsent[i]);
    pthread_mutex_destroy(&rs->mu);
    pthread_cond_destroy(&rs->cv);
}

static inline void on_result(const dlv_result *r, void *ctx)
{
    results *rs = ctx;
    pthread_mutex_lock(&rs->mu);
    if (rs->n < PEER_MAX_REQ) {
        got_result *g = &rs->r[rs->n++];
        g->intent_id = r->intent_id;
        g->outcome = r->outcome;
        g->attempts = r->attempts;
        g->status = r->status;
        snprintf(g->provider_id, sizeof g->provider_id, "%s", r->provider_id ? r->provider_id : "");
        snprintf(g->error, sizeof g->error, "%s", r->error);
        g->at_ns = jd_monotonic_ns();
        g->elapsed_us = r->elapsed_us;
    }
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
}

static inline void on_unsent(dlv_msg *m, void *ctx)
{
    results *rs = ctx;
    if (rs->nunsent < PEER_MAX_REQ) rs->unsent[rs->nunsent++] = m;
    else dlv_msg_destroy(m);
}

static inline size_t results_wait(results *rs, size_t n, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&rs->mu);
    while (rs->n < n)
        if (pthread_cond_timedwait(&rs->cv, &rs->mu, &ts) == ETIMEDOUT) break;
    size_t got = rs->n;
    pthread_mutex_unlock(&rs->mu);
    return got;
}

static inline const got_result *result_of(results *rs, uint64_t id)
{
    for (size_t i = 0; i < rs->n; i++)
        if (rs->r[i].intent_id == id) return &rs->r[i];
    return NULL;
}

static inline void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

#endif
