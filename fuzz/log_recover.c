/* fuzz/log_recover.c -- libFuzzer driver for log recovery (log_open) and replay.
 *
 * Input: byte 0 chooses the layout, the rest is file content.
 *   bit 0 = 0  one segment, seg-00000000000000000001.log = the rest
 *   bit 0 = 1  two segments: bytes 1-2 (LE) give the split point; the first
 *              part is seg-...1.log, the second is named by the first_lsn of
 *              its own header (so a well-formed second segment is reachable)
 *   bit 1      reseal: recompute the header and record checksums of each file
 *              before writing it, so mutations reach the checks behind them
 *              (lengths, lsn order, transactions) instead of dying on a hash
 *   bits 2-7   segment_bytes = 64 + 16 * (bits) for the appends that follow
 * Beyond "no crash, no leak, no UB", it checks what recovery promises: replay
 * visits dense lsns, and once log_open succeeded, appending, syncing and
 * reopening finds exactly what was written with nothing torn.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journeyd/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

static ssize_t io_write(void *self, int fd, const void *p, size_t n) { (void)self; return write(fd, p, n); }
static int io_nosync(void *self, int fd) { (void)self; (void)fd; return 0; }   /* speed: nothing crashes here */
static const log_io fast_io = { io_write, io_nosync, NULL };

struct seen { uint64_t n, last, sum; };

static int visit(void *ctx, const log_rec *r)
{
    struct seen *s = ctx;
    CHECK(s->n == 0 || r->lsn == s->last + 1);
    const uint8_t *b = r->body;
    for (uint32_t i = 0; i < r->len; i++) s->sum += b[i];   /* touch every byte */
    s->last = r->lsn;
    s->n++;
    return 0;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Walks the file as recovery would and rewrites every checksum. */
static void reseal(uint8_t *p, size_t n)
{
    if (n < 32) return;
    put64(p + 24, jd_hash64(p, 24));
    size_t off = 32;
    while (n - off >= 32) {
        uint32_t len = (uint32_t)(p[off + 16] | p[off + 17] << 8 | p[off + 18] << 16 |
                                  (uint32_t)p[off + 19] << 24);
        uint64_t total = 32 + (((uint64_t)len + 7) & ~UINT64_C(7));
        if (total > n - off) return;
        put64(p + off, jd_hash64(p + off + 8, 24 + (size_t)len));
        off += (size_t)total;
    }
}

static void put_file(const char *dir, uint64_t lsn, const uint8_t *src, size_t n, bool seal)
{
    char path[128];
    uint8_t *p = malloc(n ? n : 1);
    if (n) memcpy(p, src, n);
    if (seal) reseal(p, n);
    snprintf(path, sizeof path, "%s/seg-%020llu.log", dir, (unsigned long long)lsn);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        if (n && write(fd, p, n) != (ssize_t)n) { /* the test is then about a shorter file */ }
        close(fd);
    }
    free(p);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    jd_log_set_level((jd_log_level)(JD_LOG_ERROR + 1));   /* quiet: one line per input is noise */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    char dir[] = "/tmp/jdlog-fuzz-XXXXXX";
    if (!mkdtemp(dir)) return 0;

    uint8_t mode = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (mode & 1) {
        size_t split = 0;
        if (n >= 2) {
            split = (size_t)(p[0] | (p[1] << 8));
            p += 2;
            n -= 2;
        }
        if (split > n) split = n;
        put_file(dir, 1, p, split, mode & 2);
        uint64_t lsn = 2;
        if (n - split >= 24) {
            const uint8_t *h = p + split + 16;
            lsn = get64(h);
            if (lsn < 2 || lsn > (UINT64_C(1) << 62)) lsn = 2;
        }
        put_file(dir, lsn, p + split, n - split, mode & 2);
    } else {
        put_file(dir, 1, p, n, mode & 2);
    }

    log_opts o = { .segment_bytes = 64 + 16u * (mode >> 2), .io = &fast_io };
    log_store *l = NULL;
    log_recovery rec;
    jd_err err;
    if (log_open(&l, dir, &o, &rec, &err) == JD_OK) {
        struct seen s = { 0 };
        CHECK(log_replay(l, 1, visit, &s, &err) == JD_OK);
        CHECK(s.n == rec.records);
        CHECK(log_next_lsn(l) == rec.next_lsn);
        CHECK(s.n == 0 || s.last + 1 == rec.next_lsn);

        uint64_t a = 0, b = 0;
        CHECK(log_append(l, 7, 3, 0, data, (uint32_t)(size > 100 ? 100 : size), &a) == JD_OK);
        CHECK(log_append(l, 7, 3, LOG_F_TXN_END, "end", 3, &b) == JD_OK);
        CHECK(a == rec.next_lsn && b == a + 1);
        CHECK(log_sync(l, &err) == JD_OK);
        struct seen s2 = { 0 };
        CHECK(log_replay(l, a, visit, &s2, &err) == JD_OK);
        CHECK(s2.n == 2 && s2.last == b);
        log_close(l);

        log_recovery rec2;
        l = NULL;
        CHECK(log_open(&l, dir, &o, &rec2, &err) == JD_OK);
        CHECK(rec2.truncated_bytes == 0 && rec2.dropped_records == 0);
        CHECK(rec2.next_lsn == b + 1);
        CHECK(rec2.records == rec.records + 2);
        log_close(l);
    } else {
        CHECK(l == NULL);
        CHECK(err.code == JD_ECORRUPT || err.code == JD_EIO);
    }
    remove_dir(dir);
    return 0;
}
