// bench/journeys.c -- the journey host (src/journey/host.c) on one thread, in
// virtual time: memory per active instance, timers fired per second with N
// pending waits, and entry conditions evaluated per event.
//
// Build and run (from the repository root):
//   make build/bench/journeys
//   build/bench/journeys                 # N = 10,000,000: about 2 minutes, about 4 GB
//   BENCH_N=1000000 build/bench/journeys # a quick look (or: build/bench/journeys 1000000)
// Knobs (environment): BENCH_N (instances for (a); argv[1] wins), BENCH_M (events for (b),
// 200000), BENCH_RUNS (3: every figure printed is the median of that many runs).

/*
 * (a) One journey: entry on 'Signed Up', `wait: 1h`, then a send node. N
 *     people enter it at t0 through jrn_host_event (one track event each,
 *     no prof_apply: this is the journey state alone; a profile is ~195 bytes
 *     more per person, docs/performance.md). RSS (/proc/self/statm) before and
 *     after the entries gives bytes per instance; jrn_host_bytes is the host's
 *     own estimate. Then one jrn_host_advance to t0 + 1h fires the N waits:
 *     each runs its instance to the send node (an intent through the host's
 *     out callback, counted) and ends it. Reference in the same run: the bare
 *     timer wheel with N entries at the same deadline, one tw_advance.
 *     Targets (issue 3): >= 1,000,000 fires/s with 10M pending; < 200 bytes
 *     per active instance.
 * (b) 100 journeys all entered on 'Viewed Product', each with a condition
 *     `event.properties.price > <k>.0 && event.properties.category == "c<k%7>"`
 *     (so about 7 % of them match an event), then `wait: 1d` and a send. M
 *     track events (people u0..u9999 in turn, price and category from a fixed-
 *     seed PRNG, 1 ms of virtual time apart) go through prof_apply then
 *     jrn_host_event, as a shard applies a record. Reference in the same run:
 *     the same loop with no journey published. Conditions evaluated = events x
 *     the journeys the event names (every entry condition is evaluated, also
 *     for people already in: the re-entry check comes after the condition).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journeyd/runtime.h"
#include "journeyd/timer.h"
#include "bench.h"

#define RUNS_MAX 9
#define T0       (INT64_C(1767225600) * (int64_t)JD_SEC)   /* 2026-01-01T00:00:00Z */
#define PEOPLE_B 10000u
#define NJ_B     100u

static void publish(jrn_reg *r, const char *id, const char *text)
{
    jrn_ctl c = { JRN_OP_PUBLISH, id, text, strlen(text), "bench" };
    const jrn_journey *changed;
    jrn_status was;
    jd_err err;
    jd_err_clear(&err);
    if (jrn_reg_apply(r, &c, T0, &changed, &was, &err) != JD_OK) {
        fprintf(stderr, "journeys: cannot publish %s: %s%s%s\n", id, err.where, err.where[0] ? ": " : "", err.msg);
        exit(1);
    }
}

typedef struct counter { size_t intents; } counter;

static void on_intent(void *self, const jrn_intent *it)
{
    (void)it;
    ((counter *)self)->intents++;
}

/* ---- (a) instances and their waits ------------------------------------- */

static const char WAIT_DOC[] =
    "id: bench-wait\n"
    "entry:\n"
    "  event: Signed Up\n"
    "nodes:\n"
    "  pause:\n"
    "    wait: 1h\n"
    "    next: hello\n"
    "  hello:\n"
    "    send: { channel: email, template: welcome }\n";

enum { A_ENTER, A_BYTES, A_HBYTES, A_FIRE, A_WHEEL, A_RSS_MB, NA };

static void on_wheel_fire(tw_wheel *w, tw_entry *e, void *ctx)
{
    (void)w;
    (void)e;
    (*(size_t *)ctx)++;
}

static void run_a(size_t n, double fig[NA])
{
    jrn_reg *reg = jrn_reg_create(NULL);
    publish(reg, "bench-wait", WAIT_DOC);
    prof_limits lim;
    prof_limits_default(&lim);
    prof_store *ps = prof_store_create(&lim);
    counter c = { 0 };
    jrn_host_out out = { &c, on_intent, NULL, NULL };
    jrn_host *h = jrn_host_create(reg, ps, T0, &out);

    char uid[32], json[160];
    ingest_event ev = { .type = INGEST_TRACK, .timestamp_us = T0, .received_us = T0,
                        .event = JD_STR_LIT("Signed Up") };
    long rss0 = rss_bytes();
    uint64_t t = jd_monotonic_ns();
    for (size_t i = 0; i < n; i++) {
        int un = snprintf(uid, sizeof uid, "u%zu", i);
        int jn = snprintf(json, sizeof json, "{\"type\":\"track\",\"event\":\"Signed Up\",\"userId\":\"%s\"}", uid);
        ev.user_id = (jd_str){ uid, (uint32_t)un };
        ev.json = (jd_str){ json, (uint32_t)jn };
        jrn_host_event(h, &ev, i + 1, T0);
    }
    fig[A_ENTER] = (double)n / secs(t);
    long rss1 = rss_bytes();
    if (jrn_host_instances(h) != n || jrn_host_timers(h) != n) {
        fprintf(stderr, "journeys: %zu instances, %zu timers after %zu entries\n", jrn_host_instances(h),
                jrn_host_timers(h), n);
        exit(1);
    }
    fig[A_BYTES] = (double)(rss1 - rss0) / (double)n;
    fig[A_HBYTES] = (double)jrn_host_bytes(h) / (double)n;
    fig[A_RSS_MB] = (double)rss1 / (1 << 20);

    t = jd_monotonic_ns();
    jrn_host_advance(h, T0 + 3600 * (int64_t)JD_SEC, n + 1);
    fig[A_FIRE] = (double)c.intents / secs(t);
    if (c.intents != n || jrn_host_instances(h) != 0 || jrn_host_timers(h) != 0) {
        fprintf(stderr, "journeys: %zu intents, %zu instances left after firing %zu waits\n", c.intents,
                jrn_host_instances(h), n);
        exit(1);
    }
    /* not destroyed: the run is a child process that exits next (10M frees would only cost time) */

    /* the reference: the bare wheel, N entries at the same deadline */
    tw_entry *e = malloc(n * sizeof *e);
    if (!e) abort();
    memset(e, 0, n * sizeof *e);
    size_t fired = 0;
    tw_wheel *w = tw_create((uint64_t)T0, on_wheel_fire, &fired);
    for (size_t i = 0; i < n; i++) tw_arm(w, &e[i], (uint64_t)T0 + 3600 * JD_SEC);
    t = jd_monotonic_ns();
    tw_advance(w, (uint64_t)T0 + 3600 * JD_SEC);
    fig[A_WHEEL] = (double)fired / secs(t);
    if (fired != n) { fprintf(stderr, "journeys: wheel fired %zu of %zu\n", fired, n); exit(1); }
    tw_destroy(w);
    free(e);
}

/* One run of (a) in a fresh child process: the RSS delta must not profit from
 * memory the allocator kept from an earlier run. */
static void run_a_entry(void *arg, double *fig) { run_a(*(size_t *)arg, fig); }

static void run_a_child(size_t n, double fig[NA])
{
    run_in_child(run_a_entry, &n, fig, NA, "journeys: run of (a)");
}

/* ---- (b) entry conditions ------------------------------------------------ */

typedef struct b_out { double ev_per_s; size_t live, entered, errors, ncond, intents; } b_out;

/* waits: each journey is `wait: 1d` then a send (instances stay live and see
 * the person's later events); else a send alone (instances end at entry). */
static void run_b(size_t m, unsigned njourneys, bool waits, b_out *o)
{
    jrn_reg *reg = jrn_reg_create(NULL);
    char doc[512], id[32];
    for (unsigned k = 0; k < njourneys; k++) {
        snprintf(id, sizeof id, "viewed-%u", k);
        snprintf(doc, sizeof doc,
                 "id: %s\n"
                 "entry:\n"
                 "  event: Viewed Product\n"
                 "  when: 'event.properties.price > %u.0 && event.properties.category == \"c%u\"'\n"
                 "nodes:\n"
                 "%s"
                 "  hello:\n"
                 "    send: { channel: email, template: product_%u }\n",
                 id, k, k % 7, waits ? "  later:\n    wait: 1d\n    next: hello\n" : "", k);
        publish(reg, id, doc);
    }
    size_t nl;
    jrn_reg_entries_for(reg, JD_STR_LIT("Viewed Product"), &nl);
    o->ncond = nl;
    prof_limits lim;
    prof_limits_default(&lim);
    prof_store *ps = prof_store_create(&lim);
    counter c = { 0 };
    jrn_host_out out = { &c, on_intent, NULL, NULL };
    jrn_host *h = jrn_host_create(reg, ps, T0, &out);

    /* the events are made before the clock starts: time the host, not snprintf */
    typedef struct bev { char uid[16], mid[24]; char json[360]; uint32_t un, mn, jn; } bev;
    bev *evs = malloc(m * sizeof *evs);
    if (!evs) abort();
    uint64_t seed = 42;
    for (size_t i = 0; i < m; i++) {
        bev *b = &evs[i];
        uint64_t r = splitmix64(&seed);
        unsigned cents = (unsigned)(r % 10000), cat = (unsigned)((r >> 32) % 7);
        b->un = (uint32_t)snprintf(b->uid, sizeof b->uid, "u%zu", i % PEOPLE_B);
        b->mn = (uint32_t)snprintf(b->mid, sizeof b->mid, "m-%zu", i);
        b->jn = (uint32_t)snprintf(b->json, sizeof b->json,
            "{\"type\":\"track\",\"event\":\"Viewed Product\",\"userId\":\"%s\",\"messageId\":\"%s\","
            "\"properties\":{\"product_id\":\"sku-%zu\",\"price\":%u.%02u,\"currency\":\"EUR\",\"category\":\"c%u\"},"
            "\"context\":{\"ip\":\"203.0.113.7\"},\"timestamp\":\"2026-01-01T00:00:00.000Z\"}",
            b->uid, b->mid, i % 997, cents / 100, cents % 100, cat);
    }
    jd_err err;
    uint64_t t = jd_monotonic_ns();
    for (size_t i = 0; i < m; i++) {
        const bev *b = &evs[i];
        int64_t now = T0 + (int64_t)i * 1000;   /* 1 ms apart */
        ingest_event ev = { .type = INGEST_TRACK, .timestamp_us = now, .received_us = now,
                            .user_id = { b->uid, b->un }, .message_id = { b->mid, b->mn },
                            .event = JD_STR_LIT("Viewed Product"), .json = { b->json, b->jn } };
        jrn_host_advance(h, now, i + 1);
        if (prof_apply(ps, &ev, &err) != JD_OK) { fprintf(stderr, "journeys: prof_apply: %s\n", err.msg); exit(1); }
        jrn_host_event(h, &ev, i + 1, now);
    }
    o->ev_per_s = (double)m / secs(t);
    o->live = jrn_host_instances(h);
    o->intents = c.intents;
    o->entered = o->errors = 0;
    for (unsigned k = 0; k < njourneys; k++) {
        const jrn_vstats *st = jrn_host_stats(h, k, 1);
        if (st) { o->errors += st->condition_errors; o->entered += st->entered; }
    }
    free(evs);
    jrn_host_destroy(h);
    prof_store_destroy(ps);
    jrn_reg_destroy(reg);
}

int main(int argc, char **argv)
{
    size_t n = env_size("BENCH_N", 10000000);
    if (argc > 1) n = (size_t)strtoull(argv[1], NULL, 10);
    size_t m = env_size("BENCH_M", 200000);
    int runs = (int)env_size("BENCH_RUNS", 3);
    if (runs < 1) runs = 1;
    if (runs > RUNS_MAX) runs = RUNS_MAX;
    if (n < 1 || m < 1) { fprintf(stderr, "journeys: BENCH_N and BENCH_M must be >= 1\n"); return 2; }

    /* (a) */
    double all[NA][RUNS_MAX], med[NA];
    for (int r = 0; r < runs; r++) {
        double fig[NA];
        run_a_child(n, fig);
        for (int k = 0; k < NA; k++) all[k][r] = fig[k];
        fprintf(stderr, "(a) run %d: enter %.0f/s, %.1f B/instance (RSS), %.1f B (host estimate), fire %.0f/s, wheel %.0f/s\n",
                r + 1, fig[A_ENTER], fig[A_BYTES], fig[A_HBYTES], fig[A_FIRE], fig[A_WHEEL]);
    }
    for (int k = 0; k < NA; k++) med[k] = median(all[k], runs);
    printf("(a) one journey (entry 'Signed Up', wait 1h, send), %zu people entered at t0, median of %d runs\n", n, runs);
    printf("  entries through jrn_host_event %12.0f /s\n", med[A_ENTER]);
    printf("  RSS after the entries         %12.0f MB\n", med[A_RSS_MB]);
    printf("  bytes per active instance     %12.1f      (RSS delta / N)   target < 200: %s\n", med[A_BYTES],
           med[A_BYTES] < 200 ? "met" : "MISSED");
    printf("    jrn_host_bytes / N          %12.1f      (the host's estimate; sizeof jrn_instance %zu)\n",
           med[A_HBYTES], sizeof(jrn_instance));
    printf("    (journey state only: each person's profile is ~195 bytes more, docs/performance.md)\n");
    printf("  waits fired, one advance of 1h %11.0f /s   (each: the instance runs to its send node, one intent)\n",
           med[A_FIRE]);
    printf("                                              target >= 1000000 /s with %zu pending: %s\n", n,
           med[A_FIRE] >= 1e6 ? "met" : "MISSED");
    printf("  reference: bare wheel, same N %12.0f /s   host/wheel %.2fx\n", med[A_WHEEL], med[A_FIRE] / med[A_WHEEL]);
    fflush(stdout);

    /* (b): alternate the reference and the measured loops so drift hits all of them */
    double ev0[RUNS_MAX], evw[RUNS_MAX], evs[RUNS_MAX];
    b_out o0, ow, os;
    for (int r = 0; r < runs; r++) {
        run_b(m, 0, false, &o0);
        run_b(m, NJ_B, true, &ow);
        run_b(m, NJ_B, false, &os);
        ev0[r] = o0.ev_per_s, evw[r] = ow.ev_per_s, evs[r] = os.ev_per_s;
        fprintf(stderr, "(b) run %d: 0 journeys %.0f events/s; %u journeys %.0f events/s (wait+send), %.0f (send only)\n",
                r + 1, ev0[r], NJ_B, evw[r], evs[r]);
    }
    double m0 = median(ev0, runs), mw = median(evw, runs), ms = median(evs, runs);
    printf("(b) %u journeys entered on 'Viewed Product', each with its own condition; %zu events, %u people;\n"
           "    prof_apply + jrn_host_event per event, median of %d runs\n", NJ_B, m, PEOPLE_B, runs);
    printf("  events/s, %u journeys        %12.0f /s   (%zu entry conditions an event; journeys: wait 1d, send)\n", NJ_B,
           mw, ow.ncond);
    printf("  conditions evaluated/s        %12.0f /s   (%.0f ns an event, %.0f ns a condition if they took it all)\n",
           mw * (double)ow.ncond, 1e9 / mw, 1e9 / mw / (double)ow.ncond);
    printf("    entries %zu, instances live at the end %zu (%.1f a person, each sees the person's later events)\n",
           ow.entered, ow.live, (double)ow.live / PEOPLE_B);
    printf("  same, journeys = a send alone %12.0f /s   (%zu entries, none stay live: the conditions without live instances)\n",
           ms, os.entered);
    printf("  reference: 0 journeys         %12.0f /s   ratio %.3fx (wait+send), %.3fx (send only)\n", m0, mw / m0, ms / m0);
    printf("  condition errors %zu (must be 0)\n", ow.errors + os.errors);
    return ow.errors + os.errors ? 1 : 0;
}
