// bench/timers.c -- the timer wheel (src/engine/timer.c) with 10,000,000
// pending waits, against a binary heap doing the same inserts and pops.
//
// Build and run (from the repository root; line comments, because the glob
// in the build line would open a comment inside a block comment):
//   cc -O2 -std=gnu17 -D_GNU_SOURCE -Iinclude bench/timers.c src/engine/timer.c src/base/*.c -o build/bench_timers -lxxhash -lssl -lcrypto -lyaml -ljson-c -licui18n -licuuc -licudata -lpthread -lm
//   build/bench_timers            # about a minute, about 0.5 GB of memory

/*
 * Each run: arm N entries with deadlines spread uniformly over 30 days from a
 * fixed start (splitmix64, fixed seed: every run and every machine sees the
 * same deadlines); cancel 1,000,000 random ones and arm them again (so N are
 * pending); advance in 1 s steps until all fired; then arm N again and fire
 * them with one 30-day tw_advance. The reference is an array binary heap of
 * 16-byte (when, seq) values, the most favourable form for a heap (no
 * pointers to chase, no cancel support), fed the same deadlines.
 * Three runs; every figure printed is the median of its three values.
 * Targets (issue 3): >= 1,000,000 fires/s with 10M pending; RSS per active
 * journey instance < 200 bytes, of which the embedded tw_entry is 32.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/timer.h"

#define N        10000000u
#define NCANCEL  1000000u
#define RUNS     3
#define T0       (UINT64_C(1767225600) * JD_SEC)   /* 2026-01-01T00:00:00Z */
#define SPAN     (30 * JD_DAY)
#define STEP     JD_SEC

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static long rss_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static double secs(uint64_t t0) { return (double)(jd_monotonic_ns() - t0) / 1e9; }

/* ---- the fire callback: counts, and checks the order as it goes -------- */

typedef struct fire_ctx { size_t fired; uint64_t last; size_t out_of_order; } fire_ctx;

static void on_fire(tw_wheel *w, tw_entry *e, void *ctx)
{
    (void)w;
    fire_ctx *c = ctx;
    c->fired++;
    if (e->when_us < c->last) c->out_of_order++;
    c->last = e->when_us;
}

/* ---- the reference: a binary min-heap of (when, seq) ------------------- */

typedef struct hitem { uint64_t when, seq; } hitem;

static inline bool hless(hitem a, hitem b) { return a.when < b.when || (a.when == b.when && a.seq < b.seq); }

static void heap_push(hitem *h, size_t *n, hitem x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static hitem heap_pop(hitem *h, size_t *n)
{
    hitem top = h[0], x = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && hless(h[c + 1], h[c])) c++;
        if (!hless(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = x;
    return top;
}

/* ---- one run ----------------------------------------------------------- */

enum { ARM, CANCEL, FIRE_STEPS, FIRE_JUMP, BYTES, RSS_MB, HEAP_PUSH, HEAP_POP, NFIG };

static void run(double fig[NFIG])
{
    uint64_t seed = 1, t;
    fire_ctx c = { 0 };
    long rss0 = rss_kb();   /* before the entries: bytes per entry counts them */
    tw_entry *e = malloc(N * sizeof *e);
    if (!e) abort();
    memset(e, 0, N * sizeof *e);   /* the owners' memory exists already: time the wheel, not page faults */
    tw_wheel *w = tw_create(T0, on_fire, &c);

    t = jd_monotonic_ns();
    for (size_t i = 0; i < N; i++) tw_arm(w, &e[i], T0 + 1 + splitmix64(&seed) % SPAN);
    fig[ARM] = N / secs(t);
    long rss1 = rss_kb();
    fig[BYTES] = (double)(rss1 - rss0) * 1024 / N;
    fig[RSS_MB] = (double)rss1 / 1024;

    uint64_t cseed = 2;
    size_t *pick = malloc(NCANCEL * sizeof *pick);
    if (!pick) abort();
    for (size_t i = 0; i < NCANCEL; i++) pick[i] = splitmix64(&cseed) % N;
    t = jd_monotonic_ns();
    for (size_t i = 0; i < NCANCEL; i++) tw_cancel(w, &e[pick[i]]);
    fig[CANCEL] = NCANCEL / secs(t);
    for (size_t i = 0; i < NCANCEL; i++)
        if (!tw_armed(&e[pick[i]])) tw_arm(w, &e[pick[i]], T0 + 1 + splitmix64(&seed) % SPAN);
    free(pick);
    if (tw_count(w) != N) { fprintf(stderr, "count %zu, want %u\n", tw_count(w), N); exit(1); }

    t = jd_monotonic_ns();
    for (uint64_t now = T0 + STEP; now < T0 + SPAN + 2 * STEP; now += STEP) tw_advance(w, now);
    fig[FIRE_STEPS] = c.fired / secs(t);
    if (c.fired != N || c.out_of_order || tw_count(w)) {
        fprintf(stderr, "fired %zu (want %u), %zu out of order\n", c.fired, N, c.out_of_order);
        exit(1);
    }

    /* the same again, fired by one jump of 30 days */
    uint64_t start = tw_now(w);
    for (size_t i = 0; i < N; i++) tw_arm(w, &e[i], start + 1 + splitmix64(&seed) % SPAN);
    c = (fire_ctx){ 0 };
    t = jd_monotonic_ns();
    tw_advance(w, start + SPAN);
    fig[FIRE_JUMP] = c.fired / secs(t);
    if (c.fired != N || c.out_of_order) { fprintf(stderr, "jump fired %zu\n", c.fired); exit(1); }
    tw_destroy(w);
    free(e);

    /* the heap, fed the same deadlines as the first arm loop */
    hitem *h = malloc(N * sizeof *h);
    if (!h) abort();
    memset(h, 0, N * sizeof *h);
    size_t n = 0;
    uint64_t hs = 1, last = 0, bad = 0;
    t = jd_monotonic_ns();
    for (size_t i = 0; i < N; i++) heap_push(h, &n, (hitem){ T0 + 1 + splitmix64(&hs) % SPAN, i });
    fig[HEAP_PUSH] = N / secs(t);
    t = jd_monotonic_ns();
    while (n) {
        hitem x = heap_pop(h, &n);
        bad += x.when < last;
        last = x.when;
    }
    fig[HEAP_POP] = N / secs(t);
    free(h);
    if (bad) { fprintf(stderr, "heap out of order\n"); exit(1); }
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    double all[NFIG][RUNS], med[NFIG];
    for (int r = 0; r < RUNS; r++) {
        double fig[NFIG];
        run(fig);
        for (int k = 0; k < NFIG; k++) all[k][r] = fig[k];
        fprintf(stderr, "run %d: arm %.0f/s, cancel %.0f/s, fire %.0f/s (steps) %.0f/s (jump)\n",
                r + 1, fig[ARM], fig[CANCEL], fig[FIRE_STEPS], fig[FIRE_JUMP]);
    }
    for (int k = 0; k < NFIG; k++) {
        qsort(all[k], RUNS, sizeof(double), dcmp);
        med[k] = all[k][RUNS / 2];
    }
    printf("timer wheel, %u pending over 30 days, median of %d runs\n", N, RUNS);
    printf("  arm                  %12.0f /s\n", med[ARM]);
    printf("  cancel (1M random)   %12.0f /s\n", med[CANCEL]);
    printf("  fire, 1 s steps      %12.0f /s   target >= 1000000 /s with 10M pending: %s\n",
           med[FIRE_STEPS], med[FIRE_STEPS] >= 1e6 ? "met" : "MISSED");
    printf("  fire, one 30 d jump  %12.0f /s\n", med[FIRE_JUMP]);
    printf("  RSS with 10M armed   %12.0f MB\n", med[RSS_MB]);
    printf("  bytes per entry      %12.1f      (sizeof tw_entry = %zu; budget per journey instance < 200)\n",
           med[BYTES], sizeof(tw_entry));
    printf("binary heap of 16-byte (when, seq), same deadlines\n");
    printf("  push                 %12.0f /s   wheel/heap arm  %.2fx\n", med[HEAP_PUSH], med[ARM] / med[HEAP_PUSH]);
    printf("  pop                  %12.0f /s   wheel/heap fire %.2fx (1 s steps), %.2fx (jump)\n",
           med[HEAP_POP], med[FIRE_STEPS] / med[HEAP_POP], med[FIRE_JUMP] / med[HEAP_POP]);
    return 0;
}
