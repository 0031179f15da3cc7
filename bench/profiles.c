// bench/profiles.c -- profiles (src/profile/) on one thread, virtual time:
// memory per profile with traits and computed traits, and identify throughput.
//
// Build and run (from the repository root):
//   make build/bench/profiles
//   build/bench/profiles                  # N = 10,000,000 asked (lowered to fit BENCH_MEM_GB)
//   BENCH_N=200000 build/bench/profiles   # a quick look (or: build/bench/profiles 200000)
// Knobs (environment): BENCH_N (profiles for (a); argv[1] wins), BENCH_M (identifies for (b),
// 1000000), BENCH_RUNS (3: every figure printed is the median of that many runs), BENCH_MEM_GB
// (10: the most RSS a run of (a) may take), BENCH_A_SECONDS (150: the time all runs of (a) may
// take); N is lowered to fit both, and the output says so.

/*
 * (a) N people spread over 64 prof_stores (as over partitions, by a hash of
 *     the userId), 5 computed traits defined (from YAML through
 *     prof_computed_parse: a windowed count, an all-time sum, a windowed max,
 *     a last, a last_seen). Each person gets one identify with 10 traits of
 *     realistic sizes (email, name, plan, company, country, city, signup_at,
 *     age, score, newsletter: ~290 bytes of traits JSON), then one of each of
 *     the 4 track events the computed traits read, with the properties they
 *     read. 20-byte userIds. RSS (/proc/self/statm) before and after gives
 *     bytes per profile; prof_store_bytes / N is the stores' own estimate.
 *     Each run is a fresh child process (the RSS delta must not profit from
 *     memory the allocator kept from the run before). Side figure: events/s
 *     applied, the JSON text of each record written by snprintf included.
 *     Target (issue 'Profiles'): under 6 GiB for 10M profiles with 10 traits
 *     and 5 computed traits.
 *     Before the runs, a pilot child applies 200,000 people: if N x its bytes
 *     per profile would pass BENCH_MEM_GB, or the runs at its events/s (less
 *     a third: larger stores miss the caches more) would pass
 *     BENCH_A_SECONDS, N is lowered to the largest that fits (in steps of
 *     100,000) and the figure for 10M is extrapolated. A second pilot, with
 *     no computed definitions, shows what the 10 traits alone cost.
 *     The stores keep the default timeline (profiles.timeline 10); three more
 *     pilots show what it costs: (a)'s events with timeline 0, and 10 track
 *     events a person (a minute apart, the 4 names above in turn) with
 *     timeline 0 and 10.
 * (b) One prof_store, the same computed traits, P = 100,000 people. Records
 *     are written before the clock starts (two versions of each person's
 *     identify: a few traits change between them). Timed: the P first
 *     identifies (they create the profiles), then M identifies (10 traits
 *     each) updating them, then, as references in the same run, M track
 *     events 'Order Completed' (a computed sum reads properties.total: the
 *     record is parsed) and M track events 'Page Viewed' (no computed trait
 *     reads it: the JSON is not parsed). Identifies with merges go through
 *     the engine (the identity directory, MOVE records between shards), so
 *     bench/identity.c measures them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include <json-c/json.h>

#include "journeyd/config.h"
#include "journeyd/limits.h"
#include "journeyd/profile.h"
#include "bench.h"

#define RUNS_MAX  9
#define T0        (INT64_C(1767225600) * (int64_t)JD_SEC)   /* 2026-01-01T00:00:00Z */
#define NSTORES   64u
#define PILOT_N   200000u
#define PEOPLE_B  100000u
#define GIB       (1024.0 * 1024.0 * 1024.0)

static const char COMPUTED_YAML[] =
    "computed:\n"
    "  logins_7d: { count: Logged In, window: 7d }\n"
    "  spend: { sum: Order Completed, property: total }\n"
    "  max_cart: { max: Cart Updated, property: value, window: 30d }\n"
    "  last_plan: { last: Plan Changed, property: plan }\n"
    "  last_login: { last_seen: Logged In }\n";

static const char *FIRST[] = { "alice", "bruno", "chloe", "david", "emma", "farid", "giulia", "hugo",
                               "ines", "jules", "karim", "lea", "marco", "nina", "oscar", "paula" };
static const char *LAST[] = { "martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand",
                              "leroy", "moreau", "simon", "laurent", "lefebvre", "michel", "garcia", "david" };
static const char *PLAN[] = { "free", "starter", "pro", "team", "enterprise" };
static const char *COMPANY[] = { "Acme Corporation", "Globex", "Initech Software", "Umbrella Labs",
                                 "Hooli", "Stark Industries", "Wayne Enterprises", "Soylent" };
static const char *COUNTRY[] = { "FR", "DE", "US", "GB", "ES", "IT", "NL", "BR" };
static const char *CITY[] = { "Paris", "Berlin", "San Francisco", "London", "Madrid", "Milan", "Amsterdam",
                              "Sao Paulo" };

static void die(const char *what, const jd_err *err)
{
    fprintf(stderr, "profiles: %s: %s%s%s\n", what, err->where, err->where[0] ? ": " : "", err->msg);
    exit(1);
}

/* The computed definitions, parsed from COMPUTED_YAML as the config does. */
static prof_computed_defs *computed_defs(void)
{
    jd_yaml_doc *doc;
    const jd_yaml_node *root;
    prof_computed_defs *defs = NULL;
    jd_err err;
    jd_err_clear(&err);
    if (jd_yaml_parse("bench", COMPUTED_YAML, sizeof COMPUTED_YAML - 1, &doc, &root, &err) != JD_OK)
        die("yaml", &err);
    if (prof_computed_parse(jd_yaml_get(root, "computed"), "bench", &defs, &err) != JD_OK) die("computed", &err);
    jd_yaml_free(doc);
    if (prof_computed_count(defs) != 5) {
        fprintf(stderr, "profiles: %u computed definitions, expected 5\n", prof_computed_count(defs));
        exit(1);
    }
    return defs;
}

static int user_id(char *out, size_t cap, size_t i)   /* 20 bytes: usr_ + 16 hex digits */
{
    uint64_t s = i;
    return snprintf(out, cap, "usr_%016llx", (unsigned long long)splitmix64(&s));
}

/* The identify record of person i (version v: plan, score, age and city move
 * between versions), ~290 bytes of traits in a ~390-byte record. */
static int identify_json(char *out, size_t cap, const char *uid, size_t i, unsigned v, int64_t at)
{
    uint64_t s = i * 4 + v;
    uint64_t r = splitmix64(&s), r2 = splitmix64(&s);
    const char *f = FIRST[r & 15], *l = LAST[(r >> 4) & 15];
    int64_t signup = 1600000000 + (int64_t)(r2 % 160000000);   /* 2020-09 .. 2025-12 */
    time_t st = (time_t)signup;
    struct tm tm;
    gmtime_r(&st, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return snprintf(out, cap,
                    "{\"type\":\"identify\",\"userId\":\"%s\",\"messageId\":\"m-%zu-%u\",\"timestamp\":%lld,"
                    "\"traits\":{\"email\":\"%s.%s%u@%s.example.com\",\"name\":\"%c%s %c%s\",\"plan\":\"%s\","
                    "\"company\":\"%s\",\"country\":\"%s\",\"city\":\"%s\",\"signup_at\":\"%s\",\"age\":%u,"
                    "\"score\":%u.%02u,\"newsletter\":%s}}",
                    uid, i, v, (long long)(at / (int64_t)JD_SEC), f, l, (unsigned)(r >> 8) % 10000,
                    COMPANY[(r >> 20) & 7][0] == 'A' ? "acme" : "mail", f[0] - 32, f + 1, l[0] - 32, l + 1,
                    PLAN[(r >> 24) % 5], COMPANY[(r >> 28) & 7], COUNTRY[(r >> 32) & 7], CITY[(r >> 36) & 7], when,
                    18 + (unsigned)(r >> 40) % 60, (unsigned)(r >> 48) % 100, (unsigned)(r2 >> 40) % 100,
                    (r >> 63) ? "true" : "false");
}

/* Track event k (0..3) of person i: the 4 events the computed traits read. */
static const char *TRACK_NAME[4] = { "Logged In", "Order Completed", "Cart Updated", "Plan Changed" };

static int track_json(char *out, size_t cap, const char *uid, size_t i, unsigned k, int64_t at)
{
    char props[96];
    switch (k) {
    case 0: snprintf(props, sizeof props, "{\"method\":\"password\"}"); break;
    case 1: snprintf(props, sizeof props, "{\"order_id\":\"o-%zu\",\"total\":%zu.%02zu,\"currency\":\"EUR\"}", i,
                     10 + i % 190, i % 100); break;
    case 2: snprintf(props, sizeof props, "{\"value\":%zu.%02zu,\"items\":%zu}", 5 + i % 95, (i * 7) % 100,
                     1 + i % 6); break;
    default: snprintf(props, sizeof props, "{\"plan\":\"%s\",\"previous\":\"free\"}", PLAN[i % 5]); break;
    }
    return snprintf(out, cap,
                    "{\"type\":\"track\",\"userId\":\"%s\",\"messageId\":\"m-%zu-t%u\",\"timestamp\":%lld,"
                    "\"event\":\"%s\",\"properties\":%s}",
                    uid, i, k, (long long)(at / (int64_t)JD_SEC), TRACK_NAME[k], props);
}

static void apply(prof_store *s, ingest_type type, const char *uid, int ul, const char *event, const char *json,
                  int jl, int64_t at)
{
    ingest_event ev = { .type = type, .timestamp_us = at, .received_us = at, .user_id = { uid, (uint32_t)ul },
                        .event = event ? (jd_str){ event, (uint32_t)strlen(event) } : (jd_str){ 0 },
                        .message_id = JD_STR_LIT("m"), .json = { json, (uint32_t)jl } };
    jd_err err;
    if (prof_apply(s, &ev, &err) != JD_OK) die("prof_apply", &err);
}

/* ---- (a) memory per profile --------------------------------------------- */

enum { A_BYTES, A_EST, A_EVS, A_RSS_MB, NA };

static void run_a(size_t n, bool computed, uint32_t timeline, unsigned tracks, double fig[NA])
{
    prof_computed_defs *defs = computed ? computed_defs() : NULL;
    prof_limits lim;
    prof_limits_default(&lim);
    lim.computed = defs;
    lim.timeline = timeline;   /* profiles.timeline */
    prof_store *st[NSTORES];
    for (unsigned k = 0; k < NSTORES; k++) st[k] = prof_store_create(&lim);
    char uid[32], json[1024];
    long rss0 = rss_bytes();
    uint64_t t = jd_monotonic_ns();
    for (size_t i = 0; i < n; i++) {
        int ul = user_id(uid, sizeof uid, i);
        prof_store *s = st[jd_hash64(uid, (size_t)ul) % NSTORES];
        /* the person's events: over the last day before T0 + 1 day, a minute apart */
        int64_t at = T0 + (int64_t)(i % 86400) * (int64_t)JD_SEC;
        int jl = identify_json(json, sizeof json, uid, i, 0, at);
        apply(s, INGEST_IDENTIFY, uid, ul, NULL, json, jl, at);
        for (unsigned k = 0; k < tracks; k++) {
            at += (int64_t)JD_MIN;
            jl = track_json(json, sizeof json, uid, i, k % 4, at);
            apply(s, INGEST_TRACK, uid, ul, TRACK_NAME[k % 4], json, jl, at);
        }
    }
    double el = secs(t);
    long rss1 = rss_bytes();
    size_t count = 0, est = 0;
    for (unsigned k = 0; k < NSTORES; k++) count += prof_store_count(st[k]), est += prof_store_bytes(st[k]);
    if (count != n) {
        fprintf(stderr, "profiles: %zu profiles after %zu people\n", count, n);
        exit(1);
    }
    /* a check that the computed traits hold what was fed to them */
    user_id(uid, sizeof uid, n - 1);
    prof_store *s = st[jd_hash64(uid, strlen(uid)) % NSTORES];
    struct json_object *v = prof_view(s, uid, strlen(uid));
    const char *vt = v ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN) : "";
    if (computed && (!strstr(vt, tracks == 4 ? "\"logins_7d\":1" : "\"logins_7d\":") || !strstr(vt, "\"max_cart\":") || !strstr(vt, "\"last_plan\":") ||
        !strstr(vt, "\"last_login\":") || !strstr(vt, "\"spend\":"))) {
        fprintf(stderr, "profiles: unexpected view of the last profile: %s\n", vt);
        exit(1);
    }
    json_object_put(v);
    fig[A_BYTES] = (double)(rss1 - rss0) / (double)n;
    fig[A_EST] = (double)est / (double)n;
    fig[A_EVS] = (double)(n * (1 + tracks)) / el;
    fig[A_RSS_MB] = (double)rss1 / (1 << 20);
    /* not destroyed: the run is a child process that exits next */
}

/* One run of (a) in a fresh child process. */
typedef struct a_args { size_t n; bool computed; uint32_t timeline; unsigned tracks; } a_args;
static void run_a_entry(void *arg, double *fig)
{
    a_args *a = arg;
    run_a(a->n, a->computed, a->timeline, a->tracks, fig);
}

/* (a) as described above: 4 track events, the default timeline of 10. */
static void run_a_child_ex(size_t n, bool computed, uint32_t timeline, unsigned tracks, double fig[NA])
{
    a_args a = { n, computed, timeline, tracks };
    run_in_child(run_a_entry, &a, fig, NA, "profiles: run of (a)");
}

static void run_a_child(size_t n, bool computed, double fig[NA])
{
    a_args a = { n, computed, JD_DEF_TIMELINE, 4 };
    run_in_child(run_a_entry, &a, fig, NA, "profiles: run of (a)");
}

/* ---- (b) identify throughput -------------------------------------------- */

typedef struct rec { int ul, jl; char uid[24]; char *json; } rec;

enum { B_CREATE, B_IDENT, B_ORDER, B_PAGE, NB };

static void run_b(size_t m, double fig[NB])
{
    prof_computed_defs *defs = computed_defs();
    prof_limits lim;
    prof_limits_default(&lim);
    lim.computed = defs;
    prof_store *s = prof_store_create(&lim);
    /* records written before the clock starts: 2 identify versions, an order, a page view */
    rec *r = calloc(PEOPLE_B * 4u, sizeof *r);
    if (!r) abort();
    char json[1024];
    for (size_t i = 0; i < PEOPLE_B; i++) {
        for (unsigned k = 0; k < 4; k++) {
            rec *x = &r[i * 4 + k];
            x->ul = user_id(x->uid, sizeof x->uid, i);
            if (k < 2) x->jl = identify_json(json, sizeof json, x->uid, i, k, T0);
            else if (k == 2) x->jl = track_json(json, sizeof json, x->uid, i, 1, T0);
            else x->jl = snprintf(json, sizeof json,
                                  "{\"type\":\"track\",\"userId\":\"%s\",\"messageId\":\"m-%zu-p\",\"timestamp\":%lld,"
                                  "\"event\":\"Page Viewed\",\"properties\":{\"path\":\"/pricing\",\"referrer\":"
                                  "\"https://www.google.com/\",\"title\":\"Pricing\"}}",
                                  x->uid, i, (long long)(T0 / (int64_t)JD_SEC));
            x->json = malloc((size_t)x->jl + 1);
            if (!x->json) abort();
            memcpy(x->json, json, (size_t)x->jl + 1);
        }
    }
    uint64_t t = jd_monotonic_ns();
    for (size_t i = 0; i < PEOPLE_B; i++) {
        rec *x = &r[i * 4];
        apply(s, INGEST_IDENTIFY, x->uid, x->ul, NULL, x->json, x->jl, T0);
    }
    fig[B_CREATE] = PEOPLE_B / secs(t);
    /* updates: person i % P, versions alternating by round, a millisecond apart */
    t = jd_monotonic_ns();
    for (size_t i = 0; i < m; i++) {
        size_t round = i / PEOPLE_B + 1;
        rec *x = &r[(i % PEOPLE_B) * 4 + (round & 1)];
        apply(s, INGEST_IDENTIFY, x->uid, x->ul, NULL, x->json, x->jl, T0 + (int64_t)(i + 1) * 1000);
    }
    fig[B_IDENT] = (double)m / secs(t);
    int64_t t1 = T0 + (int64_t)(m + 1) * 1000;
    t = jd_monotonic_ns();
    for (size_t i = 0; i < m; i++) {
        rec *x = &r[(i % PEOPLE_B) * 4 + 2];
        apply(s, INGEST_TRACK, x->uid, x->ul, "Order Completed", x->json, x->jl, t1 + (int64_t)i * 1000);
    }
    fig[B_ORDER] = (double)m / secs(t);
    t1 += (int64_t)(m + 1) * 1000;
    t = jd_monotonic_ns();
    for (size_t i = 0; i < m; i++) {
        rec *x = &r[(i % PEOPLE_B) * 4 + 3];
        apply(s, INGEST_TRACK, x->uid, x->ul, "Page Viewed", x->json, x->jl, t1 + (int64_t)i * 1000);
    }
    fig[B_PAGE] = (double)m / secs(t);
    if (prof_store_count(s) != PEOPLE_B) {
        fprintf(stderr, "profiles: %zu profiles in (b), expected %u\n", prof_store_count(s), PEOPLE_B);
        exit(1);
    }
    for (size_t i = 0; i < PEOPLE_B * 4u; i++) free(r[i].json);
    free(r);
    prof_store_destroy(s);
    prof_computed_defs_destroy(defs);
}

int main(int argc, char **argv)
{
    size_t asked = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : env_size("BENCH_N", 10000000);
    size_t m = env_size("BENCH_M", 1000000);
    int runs = (int)env_size("BENCH_RUNS", 3);
    double mem_gb = (double)env_size("BENCH_MEM_GB", 10);
    double a_secs = (double)env_size("BENCH_A_SECONDS", 150);
    if (runs < 1) runs = 1;
    if (runs > RUNS_MAX) runs = RUNS_MAX;
    if (asked < 1000) asked = 1000;
    if (m < PEOPLE_B) m = PEOPLE_B;

    /* the pilot: bytes per profile, to keep a run within BENCH_MEM_GB */
    size_t n = asked;
    double pilot[NA] = { 0 }, bare[NA] = { 0 };
    bool by_mem = false, by_time = false;
    run_a_child(PILOT_N, false, bare);
    run_a_child(PILOT_N, true, pilot);
    /* the timeline's cost: the same pilot with profiles.timeline 0, and a
     * pilot of 10 track events a person (a minute apart), timeline 0 and 10 */
    double tl0[NA] = { 0 }, tl10_0[NA] = { 0 }, tl10_10[NA] = { 0 };
    run_a_child_ex(PILOT_N, true, 0, 4, tl0);
    run_a_child_ex(PILOT_N, true, 0, 10, tl10_0);
    run_a_child_ex(PILOT_N, true, JD_DEF_TIMELINE, 10, tl10_10);
    if (asked > PILOT_N) {
        /* a margin of 10 %: the maps' slot arrays grow by doubling, and the base RSS */
        double fit_mem = mem_gb * GIB / (pilot[A_BYTES] * 1.10);
        double fit_time = a_secs * pilot[A_EVS] / 1.5 / 5 / runs;
        if ((double)n > fit_mem) n = (size_t)(fit_mem / 100000) * 100000, by_mem = true;
        if ((double)n > fit_time) n = (size_t)(fit_time / 100000) * 100000, by_time = true;
        if (n < PILOT_N) n = PILOT_N;
    }
    fprintf(stderr, "pilot, %u profiles: %.1f B/profile (RSS), %.1f B (prof_store_bytes), %.0f events/s; N %zu\n",
            PILOT_N, pilot[A_BYTES], pilot[A_EST], pilot[A_EVS], n);

    double all[NA][RUNS_MAX], med[NA];
    for (int r = 0; r < runs; r++) {
        double fig[NA];
        run_a_child(n, true, fig);
        for (int k = 0; k < NA; k++) all[k][r] = fig[k];
        fprintf(stderr, "(a) run %d: %.1f B/profile (RSS), %.1f B (prof_store_bytes), %.0f events/s, RSS %.0f MB\n",
                r + 1, fig[A_BYTES], fig[A_EST], fig[A_EVS], fig[A_RSS_MB]);
    }
    for (int k = 0; k < NA; k++) med[k] = median(all[k], runs);
    printf("(a) %zu profiles, 10 traits + 5 computed traits each, over %u prof_stores (by hash of the userId);\n"
           "    per person 1 identify + 4 track events, 20-byte userIds; median of %d runs, each a fresh child\n",
           n, NSTORES, runs);
    if (n < asked)
        printf("    N lowered from %zu, the largest that fits (pilot of %u profiles: %.0f B/profile, %.0f events/s):\n"
               "      memory: %zu would need ~%.1f GiB a run, BENCH_MEM_GB=%.0f%s\n"
               "      time: %d runs of %zu would take ~%.0f s, BENCH_A_SECONDS=%.0f%s\n"
               "    so the 10M figure below is extrapolated from N\n",
               asked, PILOT_N, pilot[A_BYTES], pilot[A_EVS], asked, (double)asked * pilot[A_BYTES] / GIB, mem_gb,
               by_mem ? " (too much)" : "", runs, asked, (double)asked * 5 * runs / pilot[A_EVS], a_secs,
               by_time ? " (too long)" : "");
    printf("  bytes per profile (RSS delta / N)  %10.1f B\n", med[A_BYTES]);
    printf("    prof_store_bytes / N             %10.1f B   (the stores' own estimate)\n", med[A_EST]);
    printf("  RSS after the events               %10.0f MB\n", med[A_RSS_MB]);
    double at10m = med[A_BYTES] * 1e7 / GIB;
    printf("  10,000,000 profiles                %10.2f GiB %s  target < 6 GiB: %s\n", at10m,
           n >= 10000000 ? "(measured)" : "(extrapolated: RSS delta / N x 10M)", at10m < 6 ? "met" : "MISSED");
    printf("  pilot, %u profiles, the same events with no computed definitions: %.1f B/profile (RSS),\n"
           "    %.1f B (prof_store_bytes); with the 5 computed traits at that N: %.1f B (RSS), %.1f B (estimate)\n"
           "    (the 10 traits' share; a minimal profile is ~195 B, docs/performance.md; each windowed\n"
           "     count/max holds 32 buckets x 16 B = 512 B, docs/operations.md)\n",
           PILOT_N, bare[A_BYTES], bare[A_EST], pilot[A_BYTES], pilot[A_EST]);
    printf("  timeline (profiles.timeline %u, the default), pilots of %u profiles, with minus without:\n"
           "    the events of (a) (5 entries)      %6.1f B/profile (RSS), %6.1f B (prof_store_bytes)\n"
           "    10 track events a person (10)     %6.1f B/profile (RSS), %6.1f B (prof_store_bytes)\n"
           "    (plus the 8-byte pointer in every profile, in both: +16 B for a 20-byte key's chunk)\n",
           JD_DEF_TIMELINE, PILOT_N, pilot[A_BYTES] - tl0[A_BYTES], pilot[A_EST] - tl0[A_EST],
           tl10_10[A_BYTES] - tl10_0[A_BYTES], tl10_10[A_EST] - tl10_0[A_EST]);
    printf("  events applied (side figure)       %10.0f /s  (prof_apply, 5 per person, JSON written by snprintf\n"
           "                                                  in the loop; profiles created as they come)\n",
           med[A_EVS]);
    fflush(stdout);

    double b[NB][RUNS_MAX], bm[NB];
    for (int r = 0; r < runs; r++) {
        double fig[NB];
        run_b(m, fig);
        for (int k = 0; k < NB; k++) b[k][r] = fig[k];
        fprintf(stderr, "(b) run %d: create %.0f/s, identify %.0f/s, track (computed) %.0f/s, track (plain) %.0f/s\n",
                r + 1, fig[B_CREATE], fig[B_IDENT], fig[B_ORDER], fig[B_PAGE]);
    }
    for (int k = 0; k < NB; k++) bm[k] = median(b[k], runs);
    printf("(b) one prof_store, 5 computed traits defined, %u people; prof_apply on one thread, records\n"
           "    written before the clock starts; median of %d runs\n", PEOPLE_B, runs);
    printf("  identifies/s, 10 traits, updates   %10.0f /s  (%zu identifies; plan, score, age, city change\n"
           "                                                  every other one)\n", bm[B_IDENT], m);
    printf("  identifies/s, first (creates)      %10.0f /s  (%u identifies)\n", bm[B_CREATE], PEOPLE_B);
    printf("  reference: track 'Order Completed' %10.0f /s  (a computed sum reads properties.total: parsed)\n",
           bm[B_ORDER]);
    printf("  reference: track 'Page Viewed'     %10.0f /s  (no computed trait reads it: not parsed)\n", bm[B_PAGE]);
    printf("  identify / track ratio             %10.2fx (Order Completed), %.2fx (Page Viewed)\n",
           bm[B_IDENT] / bm[B_ORDER], bm[B_IDENT] / bm[B_PAGE]);
    printf("  identifies with merges: see build/bench/identity (they go through the engine)\n");
    return 0;
}
