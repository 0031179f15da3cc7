/* bench/bench.h -- what every micro-benchmark in bench/ shares: a seeded
 * PRNG, the resident set, timing, medians, knobs from the environment.
 * Header-only (static functions): each benchmark is one .c file the Makefile
 * builds alone. Benchmarks may read clocks; the product may not. */
#ifndef JOURNEYD_BENCH_H
#define JOURNEYD_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>

#include "journeyd/base.h"

static inline uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Resident set from /proc/self/statm (second field, pages), or -1. */
static inline long rss_bytes(void)
{
    long size = 0, res = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
    fclose(f);
    return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

static inline double secs(uint64_t t0) { return (double)(jd_monotonic_ns() - t0) / 1e9; }

static inline int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v and returns its median. */
static inline double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, dcmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static inline size_t env_size(const char *name, size_t def)
{
    const char *s = getenv(name);
    return s && *s ? (size_t)strtoull(s, NULL, 10) : def;
}

/* Runs fn(arg, fig) in a fresh child process and copies its nfig figures
 * back: a run's RSS delta must not profit from memory the allocator kept
 * from an earlier one. Exits the benchmark if the child fails. */
static inline void run_in_child(void (*fn)(void *arg, double *fig), void *arg, double *fig, size_t nfig,
                                const char *what)
{
    int fd[2];
    if (pipe(fd) != 0) { perror("pipe"); exit(1); }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) {
        close(fd[0]);
        fn(arg, fig);
        ssize_t w = write(fd[1], fig, nfig * sizeof *fig);
        _exit(w == (ssize_t)(nfig * sizeof *fig) ? 0 : 1);
    }
    close(fd[1]);
    size_t got = 0;
    while (got < nfig * sizeof *fig) {
        ssize_t r = read(fd[0], (char *)fig + got, nfig * sizeof *fig - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (got != nfig * sizeof *fig || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "%s failed (status %d)\n", what, st);
        exit(1);
    }
}

#endif
