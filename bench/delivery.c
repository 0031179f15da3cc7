/* bench/delivery.c -- delivery transport throughput (issue 'Delivery').
 *
 * (a) webhooks/s: N signed webhook messages through dlv (one channel,
 *     max_in_flight 64) to a local receiver in a child process
 *     (libmicrohttpd, one epoll thread, answers 200), against the reference:
 *     raw curl multi POSTs of the same body with 64 handles on reused
 *     connections, no dlv machinery (no queue, no HMAC, no classification).
 *     The receiver's own count (a counter in shared memory) is the truth: a
 *     run ends when it has seen N requests. Target: 20,000/s.
 * (b) latency at a light load: BENCH_LAT_N messages submitted at BENCH_LAT_RATE/s;
 *     p50/p99 of dlv_result.elapsed_us (submit -> the receiver's 200 back).
 * (c) emails/s: N_SMTP messages (text + HTML, ~2 KB) through dlv (max_in_flight
 *     8) to a minimal SMTP sink in C in a child process (a thread a
 *     connection; EHLO/MAIL/RCPT/DATA/RSET/QUIT; counts messages at the
 *     final "."), against raw curl multi SMTP sends of the same bytes.
 * Each figure is the median of BENCH_RUNS (3) runs; ratios are dlv/reference.
 * Knobs: BENCH_N (100000), BENCH_SMTP_N (10000), BENCH_RUNS, BENCH_LAT_N (2000),
 * BENCH_LAT_RATE (1000).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include "bench.h"
#include "journeyd/deliver.h"

static uint64_t *counter;   /* shared with the receiver child */

/* ---- receivers (child processes) ------------------------------------------- */

static enum MHD_Result on_req(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    static struct MHD_Response *ok;
    if (!*con_cls) { *con_cls = (void *)1; return MHD_YES; }
    if (*upload_size) { *upload_size = 0; return MHD_YES; }
    if (!ok) ok = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
    __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
    return MHD_queue_response(c, 200, ok);
}

static int listen_any(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 1024) || getsockname(fd, (struct sockaddr *)&a, &l)) {
        perror("listen");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static pid_t http_receiver(uint16_t *port)
{
    int fd = listen_any(port);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD, 0, NULL, NULL, on_req, NULL,
                                                MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, 1000u,
                                                MHD_OPTION_END);
        if (!d) _exit(1);
        for (;;) pause();
    }
    close(fd);
    return pid;
}

typedef struct sconn { int fd; char buf[65536]; size_t len, off; } sconn;

static int sline(sconn *s, char *out, size_t n)   /* one line without CRLF; -1 at EOF */
{
    for (;;) {
        char *nl = memchr(s->buf + s->off, '\n', s->len - s->off);
        if (nl) {
            size_t k = (size_t)(nl - (s->buf + s->off));
            size_t c = k < n - 1 ? k : n - 1;
            memcpy(out, s->buf + s->off, c);
            out[c] = 0;
            if (c && out[c - 1] == '\r') out[c - 1] = 0;
            s->off += k + 1;
            return 0;
        }
        memmove(s->buf, s->buf + s->off, s->len - s->off);
        s->len -= s->off;
        s->off = 0;
        ssize_t r = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
        if (r <= 0) return -1;
        s->len += (size_t)r;
    }
}

static void say(int fd, const char *s)
{
    if (write(fd, s, strlen(s)) < 0) { /* the client went away */ }
}

static void *smtp_conn(void *arg)
{
    sconn *s = arg;
    char line[1024];
    say(s->fd, "220 sink ESMTP\r\n");
    while (sline(s, line, sizeof line) == 0) {
        if (!strncasecmp(line, "EHLO", 4)) say(s->fd, "250-sink\r\n250 8BITMIME\r\n");
        else if (!strncasecmp(line, "DATA", 4)) {
            say(s->fd, "354 go on\r\n");
            while (sline(s, line, sizeof line) == 0 && strcmp(line, ".") != 0) {}
            __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
            say(s->fd, "250 2.0.0 Ok: queued\r\n");
        } else if (!strncasecmp(line, "QUIT", 4)) { say(s->fd, "221 bye\r\n"); break; }
        else say(s->fd, "250 OK\r\n");
    }
    close(s->fd);
    free(s);
    return NULL;
}

static pid_t smtp_receiver(uint16_t *port)
{
    int fd = listen_any(port);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        for (;;) {
            int c = accept(fd, NULL, NULL);
            if (c < 0) continue;
            sconn *s = calloc(1, sizeof *s);
            s->fd = c;
            pthread_t t;
            pthread_create(&t, NULL, smtp_conn, s);
            pthread_detach(t);
        }
    }
    close(fd);
    return pid;
}

static void stop_child(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static void wait_count(uint64_t n)
{
    while (__atomic_load_n(counter, __ATOMIC_RELAXED) < n) {
        struct timespec ts = { 0, 200000 };
        nanosleep(&ts, NULL);
    }
}

/* ---- dlv runs ------------------------------------------------------------------ */

typedef struct res_ctx { uint64_t n, sent; uint64_t *lat; size_t nlat, cap; } res_ctx;

static void on_res(const dlv_result *r, void *ctx)
{
    res_ctx *c = ctx;
    if (r->outcome == DLV_SENT) c->sent++;
    if (c->lat && c->nlat < c->cap) c->lat[c->nlat++] = r->elapsed_us;
    __atomic_add_fetch(&c->n, 1, __ATOMIC_RELEASE);
}

static const char BODY[] = "{\"type\":\"journey.message\",\"journey\":\"welcome\",\"version\":3,"
                           "\"userId\":\"user-000123\",\"node\":\"send_webhook\",\"traits\":"
                           "{\"email\":\"ada@example.org\",\"plan\":\"pro\"}}";

static dlv *make_dlv(dlv_channel_cfg *ch, res_ctx *rc)
{
    dlv_opts o = { .channels = ch, .nchannels = 1, .on_result = on_res, .ctx = rc, .seed = 1 };
    dlv *d = NULL;
    jd_err err;
    if (dlv_create(&d, &o, &err) != JD_OK) { fprintf(stderr, "dlv_create: %s: %s\n", err.where, err.msg); exit(1); }
    return d;
}

static double dlv_webhooks(uint16_t port, size_t n)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/in", port);
    dlv_channel_cfg ch = { .name = "hook", .kind = DLV_WEBHOOK, .url = url, .secret = "bench-secret",
                           .max_in_flight = 64, .max_queued = (uint32_t)n + 1 };
    res_ctx rc = { 0 };
    dlv *d = make_dlv(&ch, &rc);
    __atomic_store_n(counter, 0, __ATOMIC_RELAXED);
    uint64_t t0 = jd_monotonic_ns();
    for (size_t i = 0; i < n; i++) {
        dlv_msg *m = dlv_msg_create(i + 1, DLV_WEBHOOK, "hook", NULL);
        m->webhook.body_json = jd_xstrdup(BODY);
        if (dlv_submit(d, m, NULL) != JD_OK) abort();
    }
    wait_count(n);
    double s = secs(t0);
    while (__atomic_load_n(&rc.n, __ATOMIC_ACQUIRE) < n) wait_count(n);
    dlv_destroy(d, JD_SEC);
    if (rc.sent != n || __atomic_load_n(counter, __ATOMIC_RELAXED) != n) {
        fprintf(stderr, "webhooks: sent %" PRIu64 " received %" PRIu64 " of %zu\n", rc.sent, *counter, n);
        exit(1);
    }
    return (double)n / s;
}

static int u64cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void dlv_latency(uint16_t port, size_t n, double rate, double *p50, double *p99)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/in", port);
    dlv_channel_cfg ch = { .name = "hook", .kind = DLV_WEBHOOK, .url = url, .secret = "bench-secret" };
    res_ctx rc = { .lat = calloc(n, sizeof(uint64_t)), .cap = n };
    dlv *d = make_dlv(&ch, &rc);
    uint64_t t0 = jd_monotonic_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t due = t0 + (uint64_t)((double)i / rate * 1e9);
        for (uint64_t now; (now = jd_monotonic_ns()) < due;) {
            struct timespec ts = { 0, (long)(due - now) };
            nanosleep(&ts, NULL);
        }
        dlv_msg *m = dlv_msg_create(i + 1, DLV_WEBHOOK, "hook", NULL);
        m->webhook.body_json = jd_xstrdup(BODY);
        if (dlv_submit(d, m, NULL) != JD_OK) abort();
    }
    while (__atomic_load_n(&rc.n, __ATOMIC_ACQUIRE) < n) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    dlv_destroy(d, JD_SEC);
    qsort(rc.lat, rc.nlat, sizeof *rc.lat, u64cmp);
    *p50 = (double)rc.lat[rc.nlat / 2];
    *p99 = (double)rc.lat[rc.nlat * 99 / 100];
    free(rc.lat);
}

static double dlv_emails(uint16_t port, size_t n)
{
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%u", port);
    dlv_channel_cfg ch = { .name = "email", .kind = DLV_EMAIL, .url = url, .from = "Acme <news@acme.example>",
                           .tls = DLV_TLS_NONE, .max_in_flight = 8, .max_queued = (uint32_t)n + 1 };
    res_ctx rc = { 0 };
    dlv *d = make_dlv(&ch, &rc);
    __atomic_store_n(counter, 0, __ATOMIC_RELAXED);
    uint64_t t0 = jd_monotonic_ns();
    for (size_t i = 0; i < n; i++) {
        dlv_msg *m = dlv_msg_create(i + 1, DLV_EMAIL, "email", "ada@example.org");
        m->email.subject = jd_xstrdup("Welcome to Acme, Zoë");
        m->email.text = jd_xstrdup("Hello Zoë,\n\nthanks for signing up. Your plan: pro.\n\n-- Acme\n");
        m->email.html = jd_xstrdup("<html><body><p>Hello <b>Zoë</b>,</p><p>thanks for signing up. Your plan: "
                                   "<i>pro</i>.</p><p>-- Acme</p></body></html>\n");
        m->email.unsubscribe_url = jd_xstrdup("https://acme.example/u/1234567890abcdef");
        if (dlv_submit(d, m, NULL) != JD_OK) abort();
    }
    wait_count(n);
    double s = secs(t0);
    while (__atomic_load_n(&rc.n, __ATOMIC_ACQUIRE) < n) wait_count(n);
    dlv_destroy(d, JD_SEC);
    if (rc.sent != n) { fprintf(stderr, "emails: sent %" PRIu64 " of %zu\n", rc.sent, n); exit(1); }
    return (double)n / s;
}

/* ---- references: raw curl multi ------------------------------------------------- */

typedef struct raw_email { const char *data; size_t len, off; } raw_email;

static size_t raw_read(char *buf, size_t size, size_t nitems, void *arg)
{
    raw_email *r = arg;
    size_t k = JD_MIN_OF(size * nitems, r->len - r->off);
    memcpy(buf, r->data + r->off, k);
    r->off += k;
    return k;
}

static size_t sink(char *p, size_t s, size_t n, void *u) { return s * n; }

static double raw_curl(const char *url, size_t n, int conc, bool smtp, const char *email)
{
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)conc + 4);
    CURL *h[64];
    raw_email re[64];
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:");
    struct curl_slist *rcpt = curl_slist_append(NULL, "ada@example.org");
    __atomic_store_n(counter, 0, __ATOMIC_RELAXED);
    size_t started = 0, done = 0;
    uint64_t t0 = jd_monotonic_ns();
    for (int i = 0; i < conc; i++) {
        h[i] = curl_easy_init();
        curl_easy_setopt(h[i], CURLOPT_URL, url);
        curl_easy_setopt(h[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h[i], CURLOPT_PRIVATE, (char *)&re[i]);
        if (smtp) {
            curl_easy_setopt(h[i], CURLOPT_MAIL_FROM, "<news@acme.example>");
            curl_easy_setopt(h[i], CURLOPT_MAIL_RCPT, rcpt);
            curl_easy_setopt(h[i], CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h[i], CURLOPT_READFUNCTION, raw_read);
            curl_easy_setopt(h[i], CURLOPT_READDATA, &re[i]);
            re[i] = (raw_email){ email, strlen(email), 0 };
        } else {
            curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, BODY);
            curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, hdr);
            curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, sink);
        }
        if (started < n) { curl_multi_add_handle(m, h[i]); started++; }
    }
    while (done < n) {
        int running, left;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *e = msg->easy_handle;
            if (msg->data.result != CURLE_OK) { fprintf(stderr, "raw: %s\n", curl_easy_strerror(msg->data.result)); exit(1); }
            done++;
            curl_multi_remove_handle(m, e);
            if (started < n) {
                if (smtp) {
                    raw_email *r;
                    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
                    r->off = 0;
                }
                curl_multi_add_handle(m, e);
                started++;
            }
        }
        if (done < n) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    wait_count(n);
    double s = secs(t0);
    for (int i = 0; i < conc; i++) curl_easy_cleanup(h[i]);
    curl_slist_free_all(hdr);
    curl_slist_free_all(rcpt);
    curl_multi_cleanup(m);
    return (double)n / s;
}

int main(void)
{
    size_t n = env_size("BENCH_N", 100000), nsmtp = env_size("BENCH_SMTP_N", 10000);
    int runs = (int)env_size("BENCH_RUNS", 3);
    size_t lat_n = env_size("BENCH_LAT_N", 2000);
    double lat_rate = (double)env_size("BENCH_LAT_RATE", 1000);
    if (runs < 1 || runs > 15) runs = 3;
    counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    uint16_t hport;
    pid_t hpid = http_receiver(&hport);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/in", hport);
    double a[15], b[15];
    for (int r = 0; r < runs; r++) {
        a[r] = dlv_webhooks(hport, n);
        b[r] = raw_curl(url, n, 64, false, NULL);
        printf("  run %d: dlv %.0f webhooks/s, raw curl multi %.0f/s\n", r + 1, a[r], b[r]);
    }
    double ma = median(a, runs), mb = median(b, runs);
    printf("(a) webhooks: %.0f/s through dlv (receiver's count, %zu a run, median of %d), raw curl multi %.0f/s: "
           "ratio %.2f (target 20,000/s)\n", ma, n, runs, mb, ma / mb);
    double p50s[15], p99s[15];
    for (int r = 0; r < runs; r++) dlv_latency(hport, lat_n, lat_rate, &p50s[r], &p99s[r]);
    printf("(b) webhook latency at %.0f/s (%zu messages, submit -> 200 received): p50 %.0f us, p99 %.0f us "
           "(medians of %d)\n", lat_rate, lat_n, median(p50s, runs), median(p99s, runs), runs);
    stop_child(hpid);

    uint16_t sport;
    pid_t spid = smtp_receiver(&sport);
    snprintf(url, sizeof url, "smtp://127.0.0.1:%u", sport);
    /* the reference sends the bytes dlv builds for the same message */
    const char *email =
        "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nFrom: Acme <news@acme.example>\r\nTo: ada@example.org\r\n"
        "Subject: =?UTF-8?B?V2VsY29tZSB0byBBY21lLCBab8Or?=\r\nMessage-ID: <0000000000000001@acme.example>\r\n"
        "MIME-Version: 1.0\r\nList-Unsubscribe: <https://acme.example/u/1234567890abcdef>\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        "Content-Type: multipart/alternative;\r\n boundary=\"=_jd_0000000000000001\"\r\n\r\n"
        "--=_jd_0000000000000001\r\nContent-Type: text/plain; charset=UTF-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\nHello Zo=C3=AB,\r\n\r\nthanks for signing up. Your plan: pro.\r\n"
        "\r\n-- Acme\r\n\r\n--=_jd_0000000000000001\r\nContent-Type: text/html; charset=UTF-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n<html><body><p>Hello <b>Zo=C3=AB</b>,</p><p>thanks for s=\r\n"
        "igning up. Your plan: <i>pro</i>.</p><p>-- Acme</p></body></html>\r\n\r\n--=_jd_0000000000000001--\r\n";
    for (int r = 0; r < runs; r++) {
        a[r] = dlv_emails(sport, nsmtp);
        b[r] = raw_curl(url, nsmtp, 8, true, email);
        printf("  run %d: dlv %.0f emails/s, raw curl multi %.0f/s\n", r + 1, a[r], b[r]);
    }
    ma = median(a, runs);
    mb = median(b, runs);
    printf("(c) emails over SMTP: %.0f/s through dlv (%zu a run, 8 connections, median of %d), raw curl multi "
           "%.0f/s: ratio %.2f\n", ma, nsmtp, runs, mb, ma / mb);
    stop_child(spid);
    return 0;
}
