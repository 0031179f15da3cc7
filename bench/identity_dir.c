/* bench/identity_dir.c -- the identity directory alone (src/profile/identity.c),
 * on one thread: bytes per person and idn_resolve calls per second.
 *
 * Build and run (from the repository root):
 *   make build/bench/identity_dir && build/bench/identity_dir
 * Knobs (environment): BENCH_N (people, 1000000), BENCH_RUNS (3; figures are
 * medians; every run is a fresh child process, so an RSS delta does not profit
 * from memory the allocator kept from an earlier run).
 *
 * A person is the event {userId "user-%08zu", email "person%zu@example.com",
 * anonymousId "3f2a9c1e-anon-%08zu"} (identity.identifiers: [email]): resolving
 * it the first time merges the anonymousId into the userId and links the email,
 * so the directory holds three identifiers for them (the userId as the key).
 *   build    N first events, in order: resolves/s; then bytes per person, as
 *            the RSS delta / N and as idn_bytes / N (the directory's estimate);
 *   again    N more events of the same people, in a shuffled order (every
 *            identifier known, nothing changes: the committer's common case):
 *            resolves/s.
 * The reference, measured in the same way in its own child: one jd_map holding
 * the same 3N identifiers (keys borrowed from the pre-built strings, so the map
 * pays for its slots only, the directory for its strings too): RSS delta / N,
 * and people/s for its 3 jd_map_put (build) and 3 jd_map_get (again).
 * Ratios printed are directory / jd_map. The strings are formatted before the
 * clock and the RSS baseline.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/identity.h"
#include "bench.h"

#define RUNS_MAX 9
enum { F_ENTRIES, F_BYTES, F_RSS, F_BUILD, F_AGAIN, NF };

typedef struct people {
    size_t n;
    char  *buf;          /* 3 strings a person, NUL-separated */
    size_t *off;         /* 3n offsets into buf */
    uint8_t *len;        /* 3n lengths */
    size_t *order;       /* a permutation of 0..n-1 for the second pass */
} people;

static void people_make(people *p, size_t n)
{
    p->n = n;
    p->buf = jd_xmalloc(n * 72);
    p->off = jd_xmalloc(3 * n * sizeof *p->off);
    p->len = jd_xmalloc(3 * n);
    p->order = jd_xmalloc(n * sizeof *p->order);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        int k[3];
        k[0] = snprintf(p->buf + at, 24, "user-%08zu", i);
        p->off[3 * i] = at, at += (size_t)k[0] + 1;
        k[1] = snprintf(p->buf + at, 32, "person%zu@example.com", i);
        p->off[3 * i + 1] = at, at += (size_t)k[1] + 1;
        k[2] = snprintf(p->buf + at, 32, "3f2a9c1e-anon-%08zu", i);
        p->off[3 * i + 2] = at, at += (size_t)k[2] + 1;
        for (int j = 0; j < 3; j++) p->len[3 * i + (size_t)j] = (uint8_t)k[j];
        p->order[i] = i;
    }
    uint64_t seed = 42;
    for (size_t i = n - 1; i > 0; i--) {   /* Fisher-Yates */
        size_t j = (size_t)(splitmix64(&seed) % (i + 1)), t = p->order[i];
        p->order[i] = p->order[j];
        p->order[j] = t;
    }
}

static jd_str str_of(const people *p, size_t i, int j)
{
    return (jd_str){ p->buf + p->off[3 * i + (size_t)j], p->len[3 * i + (size_t)j] };
}

static void resolve_person(idn_dir *d, const people *p, size_t i, uint32_t email)
{
    idn_id ids[3] = { { IDN_USER, str_of(p, i, 0) }, { email, str_of(p, i, 1) }, { IDN_ANON, str_of(p, i, 2) } };
    idn_plan pl;
    idn_resolve(d, ids, 3, &pl);
}

static void run_dir(void *arg, double *fig)
{
    size_t n = *(size_t *)arg;
    people p;
    people_make(&p, n);
    char *const declared[] = { "email" };
    idn_opts o = { .max_user_ids = 1, .max_anonymous_ids = 100, .max_per_identifier = 1, .ndeclared = 1,
                   .declared = declared };
    long rss0 = rss_bytes();
    idn_dir *d = idn_create(&o);
    uint32_t email = idn_kind(d, "email", 5);
    uint64_t t0 = jd_monotonic_ns();
    for (size_t i = 0; i < n; i++) resolve_person(d, &p, i, email);
    double build = secs(t0);
    long rss1 = rss_bytes();
    t0 = jd_monotonic_ns();
    for (size_t i = 0; i < n; i++) resolve_person(d, &p, p.order[i], email);
    double again = secs(t0);
    jd_str k = idn_lookup(d, str_of(&p, n / 2, 2).p, str_of(&p, n / 2, 2).n, NULL);
    if (!jd_str_eq(k, str_of(&p, n / 2, 0).p, str_of(&p, n / 2, 0).n)) {
        fprintf(stderr, "identity_dir: the anonymousId of person %zu does not resolve to their userId\n", n / 2);
        exit(1);
    }
    fig[F_ENTRIES] = (double)idn_entries(d);
    fig[F_BYTES] = (double)idn_bytes(d) / (double)n;
    fig[F_RSS] = (double)(rss1 - rss0) / (double)n;
    fig[F_BUILD] = (double)n / build;
    fig[F_AGAIN] = (double)n / again;
    idn_destroy(d);
}

static void run_map(void *arg, double *fig)
{
    size_t n = *(size_t *)arg;
    people p;
    people_make(&p, n);
    long rss0 = rss_bytes();
    jd_map *m = jd_map_create(0);
    uint64_t t0 = jd_monotonic_ns();
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < 3; j++) jd_map_put(m, str_of(&p, i, j).p, str_of(&p, i, j).n, p.buf);
    double build = secs(t0);
    long rss1 = rss_bytes();
    size_t hits = 0;
    t0 = jd_monotonic_ns();
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < 3; j++) hits += jd_map_get(m, str_of(&p, p.order[i], j).p, str_of(&p, p.order[i], j).n) != NULL;
    double again = secs(t0);
    if (hits != 3 * n) {
        fprintf(stderr, "identity_dir: jd_map found %zu of %zu\n", hits, 3 * n);
        exit(1);
    }
    fig[F_ENTRIES] = (double)jd_map_len(m);
    fig[F_BYTES] = 0;
    fig[F_RSS] = (double)(rss1 - rss0) / (double)n;
    fig[F_BUILD] = (double)n / build;
    fig[F_AGAIN] = (double)n / again;
    jd_map_destroy(m);
}

int main(void)
{
    size_t n = env_size("BENCH_N", 1000000), runs = env_size("BENCH_RUNS", 3);
    if (n < 2) n = 2;
    if (runs < 1) runs = 1;
    if (runs > RUNS_MAX) runs = RUNS_MAX;
    double dir[NF][RUNS_MAX], map[NF][RUNS_MAX], fig[NF];
    for (size_t r = 0; r < runs; r++) {
        run_in_child(run_dir, &n, fig, NF, "identity_dir: directory run");
        for (int f = 0; f < NF; f++) dir[f][r] = fig[f];
        printf("run %zu  directory: %.0f B/person (RSS), %.1f (idn_bytes), build %.0f/s, again %.0f/s\n", r + 1,
               dir[F_RSS][r], dir[F_BYTES][r], dir[F_BUILD][r], dir[F_AGAIN][r]);
        run_in_child(run_map, &n, fig, NF, "identity_dir: jd_map run");
        for (int f = 0; f < NF; f++) map[f][r] = fig[f];
        printf("run %zu  jd_map:    %.0f B/person (RSS), build %.0f/s, again %.0f/s\n", r + 1, map[F_RSS][r],
               map[F_BUILD][r], map[F_AGAIN][r]);
    }
    double md[NF], mm[NF];
    for (int f = 0; f < NF; f++) md[f] = median(dir[f], (int)runs), mm[f] = median(map[f], (int)runs);
    printf("identity directory, %zu people {userId, email, anonymousId}, medians of %zu runs:\n", n, runs);
    printf("  entries                 %.0f (%.2f a person)\n", md[F_ENTRIES], md[F_ENTRIES] / (double)n);
    printf("  bytes/person, RSS delta %.1f   (jd_map of the 3 identifiers, slots only: %.1f; ratio %.2fx)\n",
           md[F_RSS], mm[F_RSS], md[F_RSS] / mm[F_RSS]);
    printf("  bytes/person, idn_bytes %.1f\n", md[F_BYTES]);
    printf("  build: resolves/s       %.0f   (jd_map, 3 puts a person: %.0f people/s; ratio %.2fx)\n", md[F_BUILD],
           mm[F_BUILD], md[F_BUILD] / mm[F_BUILD]);
    printf("  again: resolves/s       %.0f   (jd_map, 3 gets a person: %.0f people/s; ratio %.2fx)\n", md[F_AGAIN],
           mm[F_AGAIN], md[F_AGAIN] / mm[F_AGAIN]);
    return 0;
}
