// bench/segments.c -- segment membership re-evaluation in one partition's host,
// one thread, virtual time: 50 segments defined, every event of a person
// re-evaluates all 50 for them (src/journey/host_segments.c).
//
// Build and run (from the repository root):
//   make build/bench/segments && build/bench/segments
// Knobs (environment): BENCH_M (events, 200000), BENCH_RUNS (3; medians).
//
// Three configurations, the same events (identify with plan p0..p4 and a score
// 0..99, and track 'Logged In', people u0..u9999, 1 s of virtual time apart):
//   static: 50 segments over traits (`profile.traits.plan == "p<k%5>" &&
//           profile.traits.score >= <k>`), so each event costs 50 evaluations;
//   timed:  45 of those and 5 that read now (`days_since(timestamp(
//           profile.last_seen)) >= <k>`): each of those also probes for its
//           next flip (up to ~60 evaluations);
//   none:   no segment (the reference: prof_apply + the host's event turn).
// Target (issue 'Profiles'): >= 1,000,000 re-evaluations a second with 50
// segments (one re-evaluation = one segment for one person).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/runtime.h"
#include "bench.h"

#define RUNS_MAX 9
#define T0       (INT64_C(1767225600) * (int64_t)JD_SEC)
#define PEOPLE   10000u
#define NSEG     50u

static void define(jrn_reg *r, unsigned k, bool timed)
{
    char id[32], text[256];
    snprintf(id, sizeof id, "s%u", k);
    if (timed)
        snprintf(text, sizeof text, "id: %s\nwhen: days_since(timestamp(profile.last_seen)) >= %u\n", id, 1 + k % 20);
    else
        snprintf(text, sizeof text,
                 "id: %s\nwhen: has(profile.traits.plan) && profile.traits.plan == 'p%u' && profile.traits.score >= %u\n",
                 id, k % 5, k);
    jrn_ctl c = { JRN_OP_SEGMENT, id, text, strlen(text), "bench" };
    const jrn_journey *j;
    jrn_status was;
    jd_err err;
    if (jrn_reg_apply(r, &c, T0, &j, &was, &err) != JD_OK) {
        fprintf(stderr, "segments: %s\n", err.msg);
        exit(1);
    }
}

/* Events per second through prof_apply + jrn_host_event with nseg segments,
 * ntimed of them reading now. */
static double run(size_t m, unsigned nseg, unsigned ntimed, size_t *members)
{
    jrn_reg *reg = jrn_reg_create(NULL);
    for (unsigned k = 0; k < nseg; k++) define(reg, k, k >= nseg - ntimed);
    prof_store *ps = prof_store_create(NULL);
    jrn_host *h = jrn_host_create(reg, ps, T0, NULL);
    uint64_t seed = 42;
    char json[256], user[16];
    uint64_t t0 = jd_monotonic_ns();
    for (size_t i = 0; i < m; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned u = (unsigned)(i % PEOPLE), plan = (unsigned)(seed >> 33) % 5, score = (unsigned)(seed >> 40) % 100;
        int len = snprintf(user, sizeof user, "u%u", u);
        bool ident = i % 2 == 0;
        int jl = ident ? snprintf(json, sizeof json, "{\"type\":\"identify\",\"userId\":\"%s\",\"traits\":{\"plan\":\"p%u\",\"score\":%u}}",
                                  user, plan, score)
                       : snprintf(json, sizeof json, "{\"type\":\"track\",\"userId\":\"%s\",\"event\":\"Logged In\"}", user);
        int64_t at = T0 + (int64_t)i * (int64_t)JD_SEC;
        ingest_event ev = { .type = ident ? INGEST_IDENTIFY : INGEST_TRACK, .timestamp_us = at, .received_us = at,
                            .user_id = { user, (uint32_t)len }, .event = ident ? (jd_str){ 0 } : JD_STR_LIT("Logged In"),
                            .message_id = JD_STR_LIT("m"), .json = { json, (uint32_t)jl } };
        jd_err err;
        jrn_host_advance(h, at, i + 1);
        prof_apply(ps, &ev, &err);
        jrn_host_event(h, &ev, i + 1, at);
    }
    double s = secs(t0);
    *members = 0;
    for (unsigned b = 0; b < nseg; b++) *members += jrn_host_segment_size(h, b);
    jrn_host_destroy(h);
    prof_store_destroy(ps);
    jrn_reg_destroy(reg);
    return (double)m / s;
}

int main(void)
{
    size_t m = env_size("BENCH_M", 200000);
    int runs = (int)env_size("BENCH_RUNS", 3);
    if (runs < 1) runs = 1;
    if (runs > RUNS_MAX) runs = RUNS_MAX;
    double st[RUNS_MAX], tm[RUNS_MAX], no[RUNS_MAX];
    size_t mem_s = 0, mem_t = 0, mem_n = 0;
    for (int r = 0; r < runs; r++) {
        st[r] = run(m, NSEG, 0, &mem_s);
        tm[r] = run(m, NSEG, 5, &mem_t);
        no[r] = run(m, 0, 0, &mem_n);
        fprintf(stderr, "run %d: static %.0f ev/s, timed %.0f ev/s, none %.0f ev/s\n", r + 1, st[r], tm[r], no[r]);
    }
    double s = median(st, runs), t = median(tm, runs), n = median(no, runs);
    printf("segments: %zu events (identify + track), %u people, median of %d runs\n", m, PEOPLE, runs);
    printf("  50 segments over traits      %10.0f events/s  = %10.0f re-evaluations/s   target >= 1000000: %s\n", s,
           s * NSEG, s * NSEG >= 1e6 ? "met" : "MISSED");
    printf("    (%.0f ns a re-evaluation, the profile view built once per event included; %zu memberships at the end)\n",
           1e9 / (s * NSEG), mem_s);
    printf("  45 over traits + 5 timed     %10.0f events/s  = %10.0f re-evaluations/s (each timed one also probes its next flip)\n",
           t, t * NSEG);
    printf("  reference: no segments       %10.0f events/s  ratio %.2fx (static), %.2fx (timed)\n", n, s / n, t / n);
    return 0;
}
