/* tests/unit/http/test_http.c -- the HTTP adapter, driven by libcurl.
 *
 * Each test gets its own server on port 0 (setup/teardown) and a worker
 * thread that answers deferred requests. Waits are on conditions, never on
 * sleeps, except test_defer_reply_after_50ms which is about a late reply.
 * Numbers in comments refer to the invariants at the top of src/http/server.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "journeyd/http.h"

/* ---- the worker that answers deferred requests -------------------------- */

enum { MODE_NOW, MODE_NOW_WAIT, MODE_LATER, MODE_BATCH };

typedef struct job {
    jd_qnode node;
    http_req *r;
    int mode;
    bool done;              /* MODE_NOW_WAIT: set under fx.mu once replied */
} job;

typedef struct fixture {
    http_server *srv;
    char base[64];
    jd_queue q;
    pthread_t worker;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t batch_target;    /* MODE_BATCH: reply once this many are held */
    size_t batch_held;      /* read under mu by the test */
    unsigned handled;       /* handler calls, under mu */
} fixture;

static void reply_job(job *j)
{
    const char *i = http_req_query(j->r, "i");   /* valid until the reply (contract) */
    char body[64];
    int n = snprintf(body, sizeof body, "ok %s", i ? i : "-");
    http_reply_header(j->r, "X-Deferred", "yes");
    http_reply(j->r, 200, "text/plain", body, (size_t)n);
}

static void *worker_main(void *arg)
{
    fixture *fx = arg;
    job *held[512];
    size_t nheld = 0;
    for (;;) {
        jd_qnode *n = jd_queue_pop_all(&fx->q, -1);
        if (!n) {
            if (jd_queue_closed(&fx->q)) break;
            continue;
        }
        while (n) {
            job *j = (job *)n;
            n = n->next;
            if (j->mode == MODE_LATER) {
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                nanosleep(&ts, NULL);
            }
            if (j->mode == MODE_BATCH) {
                JD_ASSERT(nheld < JD_ARRAY_LEN(held));   /* not cmocka: another thread */
                held[nheld++] = j;
                pthread_mutex_lock(&fx->mu);
                fx->batch_held = nheld;
                size_t target = fx->batch_target;
                pthread_mutex_unlock(&fx->mu);
                if (nheld < target) continue;
                /* all of them are in flight at once: now answer them all */
                for (size_t k = 0; k < nheld; k++) { reply_job(held[k]); free(held[k]); }
                nheld = 0;
                continue;
            }
            reply_job(j);
            if (j->mode == MODE_NOW_WAIT) {
                pthread_mutex_lock(&fx->mu);
                j->done = true;          /* the handler frees j */
                pthread_cond_broadcast(&fx->cv);
                pthread_mutex_unlock(&fx->mu);
            } else {
                free(j);
            }
        }
    }
    JD_ASSERT(nheld == 0);
    return NULL;
}

/* ---- handlers ------------------------------------------------------------ */

static void count_call(fixture *fx)
{
    pthread_mutex_lock(&fx->mu);
    fx->handled++;
    pthread_mutex_unlock(&fx->mu);
}

static void h_echo(http_req *r, void *ctx)
{
    count_call(ctx);
    size_t n;
    const char *b = http_req_body(r, &n);
    assert_int_equal(b[n], '\0');
    http_reply(r, 200, "application/octet-stream", b, n);
}

static void h_tail(http_req *r, void *ctx)
{
    const char *t = http_req_path_tail(r);
    http_reply(r, 200, "text/plain", t, strlen(t));
}

static const char *or_null(const char *s) { return s ? s : "(null)"; }

static void h_info(http_req *r, void *ctx)
{
    char *s = jd_strfmt("method=%s path=%s user=%s bearer=%s a=%s b=%s flag=%s zz=%s x=%s",
                        http_req_method(r), http_req_path(r), or_null(http_req_basic_user(r)),
                        or_null(http_req_bearer(r)), or_null(http_req_query(r, "a")),
                        or_null(http_req_query(r, "b")), or_null(http_req_query(r, "flag")),
                        or_null(http_req_query(r, "zz")), or_null(http_req_header(r, "x-test")));
    http_reply_header(r, "X-Info", "1");
    http_reply(r, 200, "text/plain", s, strlen(s));
    free(s);
}

static void defer_with(http_req *r, fixture *fx, int mode)
{
    job *j = jd_xcalloc(1, sizeof *j);
    j->r = r;
    j->mode = mode;
    http_defer(r);
    assert_true(jd_queue_push(&fx->q, &j->node));
    if (mode == MODE_NOW_WAIT) {
        /* the reply lands while this handler is still running: (2) */
        pthread_mutex_lock(&fx->mu);
        while (!j->done) pthread_cond_wait(&fx->cv, &fx->mu);
        pthread_mutex_unlock(&fx->mu);
        free(j);
    } else if (mode == MODE_NOW && (rand() & 1)) {
        sched_yield();                 /* widen the race both ways */
    }
}

static void h_defer_now(http_req *r, void *ctx) { defer_with(r, ctx, MODE_NOW); }
static void h_defer_now_wait(http_req *r, void *ctx) { defer_with(r, ctx, MODE_NOW_WAIT); }
static void h_defer_later(http_req *r, void *ctx) { defer_with(r, ctx, MODE_LATER); }
static void h_defer_batch(http_req *r, void *ctx) { defer_with(r, ctx, MODE_BATCH); }

static const http_route routes[] = {
    { "POST", "/v1/track",      h_echo,           1000,        "limits.max_message_bytes" },
    { "PUT",  "/v1/track",      h_echo,           1000,        "limits.max_message_bytes" },
    { "POST", "/v1/big",        h_echo,           1024 * 1024, "limits.max_batch_bytes" },
    { "GET",  "/v1/profiles/*", h_tail,           0,           "x" },
    { "GET",  "/v1/info",       h_info,           0,           "x" },
    { "GET",  "/v1/defer/now",  h_defer_now,      0,           "x" },
    { "GET",  "/v1/defer/wait", h_defer_now_wait, 0,           "x" },
    { "GET",  "/v1/defer/later", h_defer_later,   0,           "x" },
    { "GET",  "/v1/defer/batch", h_defer_batch,   0,           "x" },
};

#define MAX_INFLATED (256u * 1024)

static int start_server(fixture *fx, const char *host, const char *url_host)
{
    jd_err err;
    http_opts o = { .host = host, .port = 0, .threads = 2, .max_connections = 1024,
                    .connection_timeout_s = 30, .max_inflated = MAX_INFLATED };
    int rc = http_server_create(&fx->srv, &o, routes, JD_ARRAY_LEN(routes), fx, &err);
    if (rc != JD_OK) return rc;
    snprintf(fx->base, sizeof fx->base, "http://%s:%u", url_host,
             (unsigned)http_server_port(fx->srv));
    return JD_OK;
}

static int setup(void **state)
{
    fixture *fx = jd_xcalloc(1, sizeof *fx);
    pthread_mutex_init(&fx->mu, NULL);
    pthread_cond_init(&fx->cv, NULL);
    jd_queue_init(&fx->q);
    assert_int_equal(pthread_create(&fx->worker, NULL, worker_main, fx), 0);
    assert_int_equal(start_server(fx, "127.0.0.1", "127.0.0.1"), JD_OK);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    /* Join the replier first: only once every http_reply has returned may
     * destroy stop MHD (5). A client holding its answer is not enough: the
     * replier may still be inside http_reply, just after the resume. */
    jd_queue_close(&fx->q);
    pthread_join(fx->worker, NULL);
    if (fx->srv) http_server_destroy(fx->srv);
    jd_queue_release(&fx->q);
    pthread_cond_destroy(&fx->cv);
    pthread_mutex_destroy(&fx->mu);
    free(fx);
    return 0;
}

/* ---- a small client ----------------------------------------------------- */

typedef struct resp {
    long status;
    jd_buf body, hdrs;
    long connects;          /* CURLINFO_NUM_CONNECTS: new connections for this transfer */
} resp;

static size_t on_write(char *p, size_t sz, size_t n, void *ud)
{
    jd_buf_add(ud, p, sz * n);
    return sz * n;
}

typedef struct reader { const char *p; size_t left, step; } reader;

static size_t on_read(char *out, size_t sz, size_t n, void *ud)
{
    reader *rd = ud;
    size_t k = JD_MIN_OF(JD_MIN_OF(sz * n, rd->left), rd->step);
    memcpy(out, rd->p, k);
    rd->p += k;
    rd->left -= k;
    return k;
}

static void resp_release(resp *r)
{
    jd_buf_release(&r->body);
    jd_buf_release(&r->hdrs);
}

/* chunked: send the body with Transfer-Encoding: chunked (no Content-Length). */
static CURLcode request_on(CURL *h, const fixture *fx, const char *method, const char *path,
                           const void *body, size_t n, const char *const *headers,
                           bool chunked, resp *out)
{
    char url[512];
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    reader rd = { body, n, 1000 };
    snprintf(url, sizeof url, "%s%s", fx->base, path);
    for (size_t i = 0; headers && headers[i]; i++) hl = curl_slist_append(hl, headers[i]);
    if (chunked) hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
    memset(out, 0, sizeof *out);
    jd_buf_init(&out->body, 64u << 20);
    jd_buf_init(&out->hdrs, 1u << 20);
    curl_easy_reset(h);                /* keeps the connection cache */
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &out->hdrs);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    if (chunked) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &rd);
    } else if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &out->connects);
    curl_slist_free_all(hl);
    return rc;
}

static CURLcode request(const fixture *fx, const char *method, const char *path,
                        const void *body, size_t n, const char *const *headers, resp *out)
{
    CURL *h = curl_easy_init();
    CURLcode rc = request_on(h, fx, method, path, body, n, headers, false, out);
    curl_easy_cleanup(h);
    return rc;
}

static bool has_header(const resp *r, const char *line)
{
    return r->hdrs.data && strcasestr(r->hdrs.data, line) != NULL;
}

static void gzip_bytes(const void *in, size_t n, jd_buf *out)
{
    z_stream z;
    unsigned char slice[16384];
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    int zrc;
    do {
        z.next_out = slice;
        z.avail_out = sizeof slice;
        zrc = deflate(&z, Z_FINISH);
        assert_int_equal(jd_buf_add(out, slice, sizeof slice - z.avail_out), JD_OK);
    } while (zrc == Z_OK);
    assert_int_equal(zrc, Z_STREAM_END);
    deflateEnd(&z);
}

/* ---- tests: routing ----------------------------------------------------- */

static void test_port_zero_gives_real_port(void **state)
{
    fixture *fx = *state;
    assert_true(http_server_port(fx->srv) != 0);
    resp r;
    assert_int_equal(request(fx, "GET", "/v1/info", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    resp_release(&r);
}

static void test_exact_route(void **state)
{
    fixture *fx = *state;
    resp r;
    assert_int_equal(request(fx, "POST", "/v1/track", "hello", 5, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "hello");
    assert_true(has_header(&r, "Content-Type: application/octet-stream"));
    resp_release(&r);
    assert_int_equal(request(fx, "PUT", "/v1/track", "x", 1, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    resp_release(&r);
}

static void test_prefix_route_tail(void **state)
{
    fixture *fx = *state;
    static const struct { const char *path; const char *tail; } rows[] = {
        { "/v1/profiles/abc", "abc" },
        { "/v1/profiles/user%2042", "user 42" },      /* URL-decoded */
        { "/v1/profiles/a%2Fb", "a/b" },
        { "/v1/profiles/a/b", "a/b" },                /* slashes allowed */
        { "/v1/profiles/x?q=1", "x" },                /* query not in the tail */
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(rows); i++) {
        resp r;
        assert_int_equal(request(fx, "GET", rows[i].path, NULL, 0, NULL, &r), CURLE_OK);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.data, rows[i].tail);
        resp_release(&r);
    }
    resp r;   /* the rest must be non-empty */
    assert_int_equal(request(fx, "GET", "/v1/profiles/", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 404);
    resp_release(&r);
}

static void test_404_no_route(void **state)
{
    fixture *fx = *state;
    resp r;
    assert_int_equal(request(fx, "GET", "/nope", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body.data, "{\"error\":\"no route for /nope\"}");
    assert_true(has_header(&r, "Content-Type: application/json"));
    resp_release(&r);
    /* a POST with a body to nowhere: refused before the body is read */
    assert_int_equal(request(fx, "POST", "/v1/nope", "abc", 3, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 404);
    resp_release(&r);
}

static void test_405_with_allow(void **state)
{
    fixture *fx = *state;
    resp r;
    assert_int_equal(request(fx, "GET", "/v1/track", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.body.data, "{\"error\":\"method GET not allowed on /v1/track\"}");
    assert_true(has_header(&r, "Allow: POST, PUT\r\n"));
    resp_release(&r);
    assert_int_equal(request(fx, "DELETE", "/v1/profiles/a", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 405);
    assert_true(has_header(&r, "Allow: GET\r\n"));
    resp_release(&r);
}

/* ---- tests: bodies ------------------------------------------------------ */

static void test_413_declared_length(void **state)
{
    fixture *fx = *state;
    char *big = jd_xmalloc(5000);
    memset(big, 'a', 5000);
    resp r;
    assert_int_equal(request(fx, "POST", "/v1/track", big, 5000, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 413);
    assert_string_equal(r.body.data,
        "{\"error\":\"request body exceeds 1000 bytes (limits.max_message_bytes)\"}");
    resp_release(&r);
    /* exactly at the ceiling is fine */
    assert_int_equal(request(fx, "POST", "/v1/track", big, 1000, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 1000);
    resp_release(&r);
    pthread_mutex_lock(&fx->mu);
    assert_int_equal(fx->handled, 1);    /* the handler never saw the big one */
    pthread_mutex_unlock(&fx->mu);
    free(big);
}

static void test_413_chunked_mid_upload(void **state)
{
    fixture *fx = *state;
    char *big = jd_xmalloc(20000);
    memset(big, 'b', 20000);
    CURL *h = curl_easy_init();
    resp r;
    assert_int_equal(request_on(h, fx, "POST", "/v1/track", big, 20000, NULL, true, &r), CURLE_OK);
    assert_int_equal(r.status, 413);
    assert_string_equal(r.body.data,
        "{\"error\":\"request body exceeds 1000 bytes (limits.max_message_bytes)\"}");
    resp_release(&r);
    /* a chunked body under the ceiling passes, on the same handle */
    assert_int_equal(request_on(h, fx, "POST", "/v1/track", big, 999, NULL, true, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 999);
    resp_release(&r);
    curl_easy_cleanup(h);
    free(big);
}

static void test_endless_upload_is_cut_off(void **state)
{
    /* Past the ceiling plus 1 MiB of discarding, the connection is closed
     * without an answer instead of reading on. */
    fixture *fx = *state;
    size_t n = 4u << 20;
    char *big = jd_xmalloc(n);
    memset(big, 'e', n);
    CURL *h = curl_easy_init();
    resp r;
    assert_int_not_equal(request_on(h, fx, "POST", "/v1/track", big, n, NULL, true, &r), CURLE_OK);
    resp_release(&r);
    curl_easy_cleanup(h);
    free(big);
    assert_int_equal(request(fx, "GET", "/v1/info", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    resp_release(&r);
}

static void test_gzip_inflated(void **state)
{
    fixture *fx = *state;
    static const char *const hdr[] = { "Content-Encoding: gzip", NULL };
    static const char *const xhdr[] = { "Content-Encoding: X-GZIP", NULL };
    const char *msg = "{\"type\":\"track\",\"event\":\"Signed Up\"}";
    jd_buf z;
    jd_buf_init(&z, 1u << 20);
    gzip_bytes(msg, strlen(msg), &z);
    resp r;
    assert_int_equal(request(fx, "POST", "/v1/track", z.data, z.len, hdr, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, msg);
    resp_release(&r);
    assert_int_equal(request(fx, "POST", "/v1/track", z.data, z.len, xhdr, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, msg);
    resp_release(&r);
    /* two gzip members concatenated are one body */
    jd_buf two;
    jd_buf_init(&two, 1u << 20);
    jd_buf_add(&two, z.data, z.len);
    jd_buf_add(&two, z.data, z.len);
    assert_int_equal(request(fx, "POST", "/v1/track", two.data, two.len, hdr, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 2 * strlen(msg));
    resp_release(&r);
    jd_buf_release(&two);
    jd_buf_release(&z);
}

static void test_gzip_corrupt_is_400(void **state)
{
    fixture *fx = *state;
    static const char *const hdr[] = { "Content-Encoding: gzip", NULL };
    resp r;
    assert_int_equal(request(fx, "POST", "/v1/track", "not gzip at all", 15, hdr, &r), CURLE_OK);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body.data, "{\"error\":\"invalid gzip body: "));
    resp_release(&r);

    jd_buf z;   /* a truncated stream */
    jd_buf_init(&z, 1u << 20);
    gzip_bytes("hello hello hello", 17, &z);
    assert_int_equal(request(fx, "POST", "/v1/track", z.data, z.len - 6, hdr, &r), CURLE_OK);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body.data, "{\"error\":\"invalid gzip body: unexpected end of stream\"}");
    resp_release(&r);
    jd_buf_release(&z);
}

static void test_gzip_over_max_body_is_413(void **state)
{
    fixture *fx = *state;
    static const char *const hdr[] = { "Content-Encoding: gzip", NULL };
    char plain[5000];
    memset(plain, 'c', sizeof plain);
    jd_buf z;
    jd_buf_init(&z, 1u << 20);
    gzip_bytes(plain, sizeof plain, &z);
    assert_true(z.len < 1000);    /* small on the wire, too big inflated */
    resp r;
    assert_int_equal(request(fx, "POST", "/v1/track", z.data, z.len, hdr, &r), CURLE_OK);
    assert_int_equal(r.status, 413);
    assert_string_equal(r.body.data,
        "{\"error\":\"request body exceeds 1000 bytes (limits.max_message_bytes)\"}");
    resp_release(&r);
    jd_buf_release(&z);
}

static void test_gzip_bomb_is_413(void **state)
{
    fixture *fx = *state;
    static const char *const hdr[] = { "Content-Encoding: gzip", NULL };
    size_t n = 64u << 20;                 /* 64 MiB of zeros, ~64 KiB on the wire */
    char *zeros = jd_xcalloc(1, n);
    jd_buf z;
    jd_buf_init(&z, 1u << 20);
    gzip_bytes(zeros, n, &z);
    free(zeros);
    assert_true(z.len < MAX_INFLATED);
    resp r;   /* /v1/big allows 1 MiB, max_inflated (256 KiB) binds */
    assert_int_equal(request(fx, "POST", "/v1/big", z.data, z.len, hdr, &r), CURLE_OK);
    assert_int_equal(r.status, 413);
    assert_string_equal(r.body.data,
        "{\"error\":\"gzip body once inflated exceeds 262144 bytes (limits.max_inflated_bytes)\"}");
    resp_release(&r);
    jd_buf_release(&z);

    /* the compressed bytes are bounded too: 300 KB that does not compress */
    unsigned char *noise = jd_xmalloc(300000);
    jd_random_bytes(noise, 300000);
    jd_buf_init(&z, 1u << 20);
    gzip_bytes(noise, 300000, &z);
    free(noise);
    assert_int_equal(request(fx, "POST", "/v1/big", z.data, z.len, hdr, &r), CURLE_OK);
    assert_int_equal(r.status, 413);
    assert_string_equal(r.body.data,
        "{\"error\":\"gzip body exceeds 262144 bytes (limits.max_inflated_bytes)\"}");
    resp_release(&r);
    jd_buf_release(&z);
}

static void test_unknown_encoding_is_415(void **state)
{
    fixture *fx = *state;
    static const char *const hdr[] = { "Content-Encoding: br", NULL };
    resp r;
    assert_int_equal(request(fx, "POST", "/v1/track", "x", 1, hdr, &r), CURLE_OK);
    assert_int_equal(r.status, 415);
    assert_string_equal(r.body.data, "{\"error\":\"unsupported content encoding br\"}");
    resp_release(&r);
}

/* ---- tests: request accessors ------------------------------------------- */

static void test_basic_bearer_query_header(void **state)
{
    fixture *fx = *state;
    /* base64("writekey:") and base64("user:pa:ss") */
    static const char *const basic[] = { "Authorization: Basic d3JpdGVrZXk6", "X-Test: hi", NULL };
    static const char *const basic2[] = { "Authorization: basic dXNlcjpwYTpzcw==", NULL };
    static const char *const bearer[] = { "Authorization: Bearer abc.def-ghi", NULL };
    static const char *const junk[] = { "Authorization: Basic !!!", NULL };
    resp r;
    assert_int_equal(request(fx, "GET", "/v1/info?a=1&b=x%20y&flag", NULL, 0, basic, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "method=GET path=/v1/info user=writekey bearer=(null) "
                                     "a=1 b=x y flag= zz=(null) x=hi");
    assert_true(has_header(&r, "X-Info: 1"));
    resp_release(&r);
    assert_int_equal(request(fx, "GET", "/v1/info", NULL, 0, basic2, &r), CURLE_OK);
    assert_non_null(strstr(r.body.data, "user=user bearer=(null)"));
    resp_release(&r);
    assert_int_equal(request(fx, "GET", "/v1/info", NULL, 0, bearer, &r), CURLE_OK);
    assert_non_null(strstr(r.body.data, "user=(null) bearer=abc.def-ghi "));
    resp_release(&r);
    assert_int_equal(request(fx, "GET", "/v1/info", NULL, 0, junk, &r), CURLE_OK);
    assert_non_null(strstr(r.body.data, "user=(null) bearer=(null) "));
    resp_release(&r);
}

/* ---- tests: keep-alive and deferred replies ----------------------------- */

static void test_keepalive_100_requests(void **state)
{
    fixture *fx = *state;
    static const char *const paths[] = { "/v1/info", "/v1/defer/now", "/v1/defer/wait" };
    CURL *h = curl_easy_init();
    for (int i = 0; i < 100; i++) {
        resp r;
        assert_int_equal(request_on(h, fx, "GET", paths[i % 3], NULL, 0, NULL, false, &r), CURLE_OK);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.connects, i == 0 ? 1 : 0);   /* one connection for all */
        resp_release(&r);
    }
    curl_easy_cleanup(h);
}

static void test_defer_reply_after_50ms(void **state)
{
    fixture *fx = *state;
    CURL *h = curl_easy_init();
    for (int i = 0; i < 3; i++) {
        resp r;
        uint64_t t0 = jd_monotonic_ns();
        assert_int_equal(request_on(h, fx, "GET", "/v1/defer/later?i=7", NULL, 0, NULL, false, &r),
                         CURLE_OK);
        assert_true(jd_monotonic_ns() - t0 >= 50u * 1000 * 1000);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.data, "ok 7");
        assert_true(has_header(&r, "X-Deferred: yes"));
        assert_true(has_header(&r, "Content-Type: text/plain"));
        assert_int_equal(r.connects, i == 0 ? 1 : 0);
        resp_release(&r);
    }
    curl_easy_cleanup(h);
}

static void test_defer_reply_before_handler_returns(void **state)
{
    fixture *fx = *state;
    CURL *h = curl_easy_init();
    for (int i = 0; i < 2000; i++) {
        /* even: reply strictly before the handler returns; odd: a free race */
        const char *path = (i & 1) ? "/v1/defer/now?i=%d" : "/v1/defer/wait?i=%d";
        char p[64], want[32];
        snprintf(p, sizeof p, path, i);
        snprintf(want, sizeof want, "ok %d", i);
        resp r;
        assert_int_equal(request_on(h, fx, "GET", p, NULL, 0, NULL, false, &r), CURLE_OK);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.data, want);
        resp_release(&r);
    }
    curl_easy_cleanup(h);
}

static void test_200_concurrent_deferred(void **state)
{
    enum { N = 200 };
    fixture *fx = *state;
    pthread_mutex_lock(&fx->mu);
    fx->batch_target = N;               /* the worker answers only once all N wait */
    pthread_mutex_unlock(&fx->mu);
    CURLM *m = curl_multi_init();
    CURL *hs[N];
    jd_buf bodies[N];
    char urls[N][96];
    for (int i = 0; i < N; i++) {
        snprintf(urls[i], sizeof urls[i], "%s/v1/defer/batch?i=%d", fx->base, i);
        jd_buf_init(&bodies[i], 1024);
        hs[i] = curl_easy_init();
        curl_easy_setopt(hs[i], CURLOPT_URL, urls[i]);
        curl_easy_setopt(hs[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(hs[i], CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(hs[i], CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(hs[i], CURLOPT_WRITEDATA, &bodies[i]);
        curl_multi_add_handle(m, hs[i]);
    }
    int running = 1;
    while (running) {
        assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
        if (running) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    int done = 0, msgs;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &msgs))) {
        assert_int_equal(msg->msg, CURLMSG_DONE);
        assert_int_equal(msg->data.result, CURLE_OK);
        done++;
    }
    assert_int_equal(done, N);
    for (int i = 0; i < N; i++) {
        long st = 0;
        char want[32];
        curl_easy_getinfo(hs[i], CURLINFO_RESPONSE_CODE, &st);
        assert_int_equal(st, 200);
        snprintf(want, sizeof want, "ok %d", i);
        assert_string_equal(bodies[i].data, want);
        curl_multi_remove_handle(m, hs[i]);
        curl_easy_cleanup(hs[i]);
        jd_buf_release(&bodies[i]);
    }
    curl_multi_cleanup(m);
}

/* ---- tests: listening and shutdown -------------------------------------- */

static void test_ipv6_loopback(void **state)
{
    fixture *fx = *state;
    http_server_destroy(fx->srv);
    fx->srv = NULL;
    if (start_server(fx, "::1", "[::1]") != JD_OK) skip();   /* no IPv6 here */
    resp r;
    assert_int_equal(request(fx, "GET", "/v1/profiles/six", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "six");
    resp_release(&r);
}

static void test_bad_host_is_einval(void **state)
{
    jd_err err;
    http_server *s = NULL;
    http_opts o = { .host = "localhost:80", .port = 0, .threads = 1, .max_inflated = 1 };
    assert_int_equal(http_server_create(&s, &o, routes, 1, NULL, &err), JD_EINVAL);
    assert_null(s);
    assert_string_equal(err.where, "http.host");
}

static void test_quiesce_refuses_new_connections(void **state)
{
    fixture *fx = *state;
    CURL *h = curl_easy_init();
    resp r;
    assert_int_equal(request_on(h, fx, "GET", "/v1/info", NULL, 0, NULL, false, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    resp_release(&r);
    http_server_quiesce(fx->srv);
    /* the connection already open is still served */
    assert_int_equal(request_on(h, fx, "GET", "/v1/defer/now?i=1", NULL, 0, NULL, false, &r),
                     CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.connects, 0);
    resp_release(&r);
    curl_easy_cleanup(h);
    /* a new one is refused */
    assert_int_equal(request(fx, "GET", "/v1/info", NULL, 0, NULL, &r), CURLE_COULDNT_CONNECT);
    resp_release(&r);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    jd_log_set_level(JD_LOG_WARN);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_port_zero_gives_real_port),
        T(test_exact_route),
        T(test_prefix_route_tail),
        T(test_404_no_route),
        T(test_405_with_allow),
        T(test_413_declared_length),
        T(test_413_chunked_mid_upload),
        T(test_endless_upload_is_cut_off),
        T(test_gzip_inflated),
        T(test_gzip_corrupt_is_400),
        T(test_gzip_over_max_body_is_413),
        T(test_gzip_bomb_is_413),
        T(test_unknown_encoding_is_415),
        T(test_basic_bearer_query_header),
        T(test_keepalive_100_requests),
        T(test_defer_reply_after_50ms),
        T(test_defer_reply_before_handler_returns),
        T(test_200_concurrent_deferred),
        T(test_ipv6_loopback),
        cmocka_unit_test(test_bad_host_is_einval),
        T(test_quiesce_refuses_new_connections),
    };
#undef T
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
