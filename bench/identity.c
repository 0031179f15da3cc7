// bench/identity.c -- identify throughput with merges, through the engine in one process:
// the committer's identity directory, the log (fsync per group), MOVE_OUT/MOVE_IN between shards,
// the profile and journey stores. No HTTP: the request bodies are parsed before the clock starts
// (parsing runs on the HTTP threads in the server, in parallel, and bench/ingest.sh measures it).
//
// Build and run (from the repository root):
//   make build/bench/identity && build/bench/identity
// Knobs (environment): BENCH_P (people, 200000), BENCH_RUNS (3; figures are medians),
// BENCH_SHARDS (shard threads, 4), BENCH_DIR (where the data folders go, /tmp).
//
// Each run opens a fresh engine (64 partitions, identity.identifiers: [email]) and:
//   setup   P anonymous people browse: one page call each (anonymousId a-i), not timed;
//   merges  P identifies {userId u-i, anonymousId a-i, traits: email, name, plan}: each one merges
//           the anonymous profile a-i (in its partition) into the new user u-i (in another, 63
//           times in 64) and links the email. Timed.
//   plain   the reference, same run: P identifies of new users with the same traits and no
//           anonymousId (no merge, one profile created each). Timed.
// Requests carry 100 messages (an SDK batch); up to 256 are in flight. After the run, the
// engine's merge counter must be P and a sample of users must hold their anonymous page view.
// Target (issue 'Profiles'): 100,000 identifies with merges per second.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/engine.h"
#include "bench.h"

#define PER_TXN   100
#define INFLIGHT  256
#define T0_S      1767225600   /* 2026-01-01T00:00:00Z */

typedef struct flight {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int             out, failed;
} flight;

static void on_done(void *ctx, int status, const jd_err *err, uint64_t lsn)
{
    flight *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->out--;
    if (status != JD_OK) f->failed++;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    (void)err;
    (void)lsn;
}

static void wait_below(flight *f, int n)
{
    pthread_mutex_lock(&f->mu);
    while (f->out > n) pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

/* The request bodies of one phase, parsed: one ingest_batch per request. */
static ingest_batch **prepare(size_t p, const char *phase)
{
    size_t nb = (p + PER_TXN - 1) / PER_TXN;
    ingest_batch **bs = calloc(nb, sizeof *bs);
    ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_batch_messages = PER_TXN;
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    for (size_t k = 0; k < nb; k++) {
        jd_buf_reset(&b);
        jd_buf_adds(&b, "{\"batch\":[");
        for (size_t i = k * PER_TXN; i < p && i < (k + 1) * PER_TXN; i++) {
            if (i > k * PER_TXN) jd_buf_adds(&b, ",");
            if (strcmp(phase, "setup") == 0)
                jd_buf_addf(&b, "{\"type\":\"page\",\"anonymousId\":\"a-%08zu\",\"name\":\"Pricing\","
                                "\"messageId\":\"p-%zu\",\"timestamp\":\"2026-01-01T00:00:00Z\"}", i, i);
            else if (phase[0] == 'm')
                jd_buf_addf(&b, "{\"type\":\"identify\",\"userId\":\"u-%08zu\",\"anonymousId\":\"a-%08zu\","
                                "\"messageId\":\"m-%zu\",\"timestamp\":\"2026-01-01T00:00:01Z\",\"traits\":{\"email\":\"Person%zu@Example.com\","
                                "\"name\":\"Person %zu\",\"plan\":\"trial\"}}", i, i, i, i, i);
            else
                jd_buf_addf(&b, "{\"type\":\"identify\",\"userId\":\"v-%08zu\",\"messageId\":\"n-%zu\","
                                "\"timestamp\":\"2026-01-01T00:00:01Z\",\"traits\":{\"email\":\"Other%zu@Example.com\",\"name\":\"Other %zu\","
                                "\"plan\":\"trial\"}}", i, i, i, i);
        }
        jd_buf_adds(&b, "]}");
        jd_err err;
        if (ingest_parse(&lim, INGEST_ROUTE_BATCH, b.data, b.len, (int64_t)T0_S * (int64_t)JD_SEC, NULL, NULL, &bs[k], &err) != JD_OK) {
            fprintf(stderr, "identity: cannot parse a %s body: %s at %s\n", phase, err.msg, err.where);
            exit(1);
        }
    }
    jd_buf_release(&b);
    return bs;
}

/* Submits every request of a phase, at most INFLIGHT at a time; returns seconds. */
static double submit_all(eng *e, ingest_batch **bs, size_t p)
{
    size_t nb = (p + PER_TXN - 1) / PER_TXN;
    flight f = { .out = 0 };
    pthread_mutex_init(&f.mu, NULL);
    pthread_cond_init(&f.cv, NULL);
    uint64_t t = jd_monotonic_ns();
    for (size_t k = 0; k < nb; k++) {
        eng_txn *tx = eng_txn_create();
        for (size_t i = 0; i < bs[k]->n; i++) eng_txn_add_event(tx, e, &bs[k]->msgs[i]);
        wait_below(&f, INFLIGHT - 1);
        pthread_mutex_lock(&f.mu);
        f.out++;
        pthread_mutex_unlock(&f.mu);
        eng_submit(e, tx, on_done, &f);
    }
    wait_below(&f, 0);
    double s = secs(t);
    if (f.failed) { fprintf(stderr, "identity: %d requests failed\n", f.failed); exit(1); }
    pthread_mutex_destroy(&f.mu);
    pthread_cond_destroy(&f.cv);
    return s;
}

typedef struct readw { pthread_mutex_t mu; pthread_cond_t cv; int done; char *json; } readw;
static void on_read(void *ctx, int rc, const char *json, size_t n)
{
    readw *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->json = rc == JD_OK ? jd_xstrndup(json, n) : NULL;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static char *get(eng *e, const char *id)
{
    readw w = { .done = 0 };
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    eng_profile_get(e, id, on_read, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return w.json;
}

static void destroy_all(ingest_batch **bs, size_t p)
{
    for (size_t k = 0; k < (p + PER_TXN - 1) / PER_TXN; k++) ingest_batch_destroy(bs[k]);
    free(bs);
}

int main(void)
{
    size_t p = env_size("BENCH_P", 200000), runs = env_size("BENCH_RUNS", 3);
    uint32_t shards = (uint32_t)env_size("BENCH_SHARDS", 4);
    const char *base = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp";
    if (runs < 1) runs = 1;
    if (runs > 9) runs = 9;
    double merges[9], plain[9];
    char *const declared[] = { "email" };
    printf("identity: %zu people, requests of %d, %u shards, 64 partitions, data in %s, %zu runs\n",
           p, PER_TXN, shards, base, runs);
    for (size_t r = 0; r < runs; r++) {
        char dir[256];
        snprintf(dir, sizeof dir, "%s/jd-bench-identity-XXXXXX", base);
        if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
        eng_opts o = { .data_dir = dir, .partitions = 64, .shards = shards, .max_pending = 100000,
                       .snapshot_every = UINT64_MAX / 2, .dedupe_window_us = 24 * JD_HOUR,
                       .dedupe_max_entries = 1u << 22, .log = { .segment_bytes = 256u << 20 } };
        prof_limits_default(&o.prof);
        o.identity = (idn_opts){ .max_user_ids = 1, .max_anonymous_ids = 100, .max_per_identifier = 1,
                                 .ndeclared = 1, .declared = declared };
        eng *e;
        jd_err err;
        if (eng_open(&e, &o, NULL, &err) != JD_OK) { fprintf(stderr, "identity: %s\n", err.msg); return 1; }
        ingest_batch **setup = prepare(p, "setup"), **m = prepare(p, "merges"), **pl = prepare(p, "plain");
        submit_all(e, setup, p);
        merges[r] = (double)p / submit_all(e, m, p);
        plain[r] = (double)p / submit_all(e, pl, p);
        eng_stats s;
        eng_get_stats(e, &s);
        if (s.merges != p) { fprintf(stderr, "identity: %llu merges, expected %zu\n", (unsigned long long)s.merges, p); return 1; }
        for (size_t i = 0; i < p; i += p / 7 + 1) {   /* a sample: the browsing moved with the person */
            char id[32];
            snprintf(id, sizeof id, "a-%08zu", i);
            char *j = get(e, id);
            if (!j || !strstr(j, "\"page\":1") || !strstr(j, "\"identify\":1")) {
                fprintf(stderr, "identity: %s resolved to %s\n", id, j ? j : "nothing");
                return 1;
            }
            free(j);
        }
        printf("  run %zu: %.0f identifies/s with merges, %.0f/s without (reference), ratio %.2f\n",
               r + 1, merges[r], plain[r], merges[r] / plain[r]);
        eng_close(e);
        destroy_all(setup, p);
        destroy_all(m, p);
        destroy_all(pl, p);
        char *cmd = jd_strfmt("rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "identity: cannot remove %s\n", dir);
        free(cmd);
    }
    double ratio[9];
    for (size_t r = 0; r < runs; r++) ratio[r] = merges[r] / plain[r];
    printf("identify with merges: %.0f/s (median of %zu; target 100,000/s)\n", median(merges, (int)runs), runs);
    printf("identify without merges (reference): %.0f/s; with/without: %.2fx (median ratio)\n",
           median(plain, (int)runs), median(ratio, (int)runs));
    return 0;
}
