/* tests/unit/log/test_log.c -- the record log: round trips, segment roll, torn
 * tails, corruption, injected ENOSPC and fsync errors, trim, discard.
 * Each test gets its own mkdtemp directory (setup/teardown) and removes it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journeyd/limits.h"
#include "journeyd/log.h"

#define REC_BYTES(len) (32u + (((len) + 7u) & ~7u))
#define SEG_HDR 32u

/* ---- fixtures and file helpers ------------------------------------------ */

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/jdlog-test-XXXXXX");
    if (!mkdtemp(f->dir)) { free(f); return -1; }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void seg_path(char *out, size_t n, const char *dir, uint64_t lsn)
{
    snprintf(out, n, "%s/seg-%020llu.log", dir, (unsigned long long)lsn);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void file_truncate(const char *path, uint64_t size)
{
    assert_int_equal(truncate(path, (off_t)size), 0);
}

static void file_flip(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

static void file_append(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static int count_segments(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "seg-", 4) == 0) n++;
    closedir(d);
    return n;
}

/* ---- a replay collector -------------------------------------------------- */

typedef struct got {
    size_t   n;
    uint64_t lsn[4096];
    uint16_t type[4096], partition[4096];
    uint32_t flags[4096], len[4096];
    uint64_t sum[4096];   /* cheap body fingerprint */
} got;

static uint64_t fingerprint(const void *p, uint32_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h ^ n;
}

static int collect(void *ctx, const log_rec *r)
{
    got *g = ctx;
    if (g->n >= 4096) return -100;
    g->lsn[g->n] = r->lsn;
    g->type[g->n] = r->type;
    g->partition[g->n] = r->partition;
    g->flags[g->n] = r->flags;
    g->len[g->n] = r->len;
    g->sum[g->n] = fingerprint(r->body, r->len);
    g->n++;
    return 0;
}

static got *replay_all(log_store *l, uint64_t from)
{
    got *g = calloc(1, sizeof *g);
    jd_err err;
    jd_err_clear(&err);
    int rc = log_replay(l, from, collect, g, &err);
    if (rc != JD_OK) fail_msg("replay: %d %s: %s", rc, err.where, err.msg);
    return g;
}

static log_store *open_log(const char *dir, const log_opts *o, log_recovery *rec)
{
    log_store *l = NULL;
    jd_err err;
    jd_err_clear(&err);
    int rc = log_open(&l, dir, o, rec, &err);
    if (rc != JD_OK) fail_msg("log_open: %d %s: %s", rc, err.where, err.msg);
    return l;
}

static void sync_ok(log_store *l)
{
    jd_err err;
    jd_err_clear(&err);
    int rc = log_sync(l, &err);
    if (rc != JD_OK) fail_msg("log_sync: %d %s: %s", rc, err.where, err.msg);
}

/* Appends one single-record transaction with body "rec-<i>". */
static uint64_t put_txn(log_store *l, unsigned i)
{
    char body[32];
    int n = snprintf(body, sizeof body, "rec-%u", i);
    uint64_t lsn = 0;
    assert_int_equal(log_append(l, 1, (uint16_t)(i % 7), LOG_F_TXN_END, body, (uint32_t)n, &lsn), JD_OK);
    return lsn;
}

/* ---- fault injection ----------------------------------------------------- */

typedef struct faults {
    int    write_errno;        /* 0: writes succeed */
    size_t write_budget;       /* bytes let through before write_errno hits */
    int    fsync_errno;
    int    fsyncs;
} faults;

static ssize_t fault_write(void *self, int fd, const void *p, size_t n)
{
    faults *f = self;
    if (f->write_errno) {
        if (f->write_budget == 0) { errno = f->write_errno; return -1; }
        if (n > f->write_budget) n = f->write_budget;   /* a short write first */
        f->write_budget -= n;
    }
    return write(fd, p, n);
}

static int fault_fdatasync(void *self, int fd)
{
    faults *f = self;
    f->fsyncs++;
    if (f->fsync_errno) { errno = f->fsync_errno; return -1; }
    return fdatasync(fd);
}

/* ---- tests --------------------------------------------------------------- */

static void test_roundtrip_sizes(void **state)
{
    fixture *f = *state;
    static const uint32_t sizes[] = { 0, 1, 7, 8, 9, 15, 16, 100, 1024 * 1024 };
    log_store *l = open_log(f->dir, NULL, NULL);
    unsigned char *body = malloc(1024 * 1024);
    for (size_t i = 0; i < 1024 * 1024; i++) body[i] = (unsigned char)(i * 31 + 7);

    for (size_t i = 0; i < JD_ARRAY_LEN(sizes); i++) {
        uint64_t lsn = 0;
        uint32_t flags = (i % 2 ? LOG_F_TXN_END : 0) | (uint32_t)(i << 4);
        if (i + 1 == JD_ARRAY_LEN(sizes)) flags |= LOG_F_TXN_END;
        assert_int_equal(log_append(l, (uint16_t)(100 + i), (uint16_t)(4095 - i), flags,
                                    sizes[i] ? body : NULL, sizes[i], &lsn), JD_OK);
        assert_int_equal(lsn, i + 1);
    }
    /* not durable yet: replay sees nothing */
    got *g = replay_all(l, 1);
    assert_int_equal(g->n, 0);
    assert_int_equal(log_durable_lsn(l), 0);
    free(g);

    sync_ok(l);
    assert_int_equal(log_durable_lsn(l), JD_ARRAY_LEN(sizes));
    uint64_t expect_bytes = SEG_HDR;
    for (size_t i = 0; i < JD_ARRAY_LEN(sizes); i++) expect_bytes += REC_BYTES(sizes[i]);
    assert_int_equal(log_bytes(l), expect_bytes);

    g = replay_all(l, 1);
    assert_int_equal(g->n, JD_ARRAY_LEN(sizes));
    for (size_t i = 0; i < g->n; i++) {
        uint32_t flags = (i % 2 ? LOG_F_TXN_END : 0) | (uint32_t)(i << 4);
        if (i + 1 == JD_ARRAY_LEN(sizes)) flags |= LOG_F_TXN_END;
        assert_int_equal(g->lsn[i], i + 1);
        assert_int_equal(g->type[i], 100 + i);
        assert_int_equal(g->partition[i], 4095 - i);
        assert_int_equal(g->flags[i], flags);
        assert_int_equal(g->len[i], sizes[i]);
        assert_int_equal(g->sum[i], fingerprint(body, sizes[i]));
    }
    free(g);
    log_close(l);

    /* and the same after reopening */
    log_recovery rec;
    l = open_log(f->dir, NULL, &rec);
    assert_int_equal(rec.records, JD_ARRAY_LEN(sizes));
    assert_int_equal(rec.truncated_bytes, 0);
    g = replay_all(l, 1);
    assert_int_equal(g->n, JD_ARRAY_LEN(sizes));
    assert_int_equal(g->sum[JD_ARRAY_LEN(sizes) - 1], fingerprint(body, 1024 * 1024));
    free(g);
    log_close(l);
    free(body);
}

static void test_reopen_continues_lsn(void **state)
{
    fixture *f = *state;
    log_recovery rec;
    log_store *l = open_log(f->dir, NULL, &rec);
    assert_int_equal(rec.next_lsn, 1);
    assert_int_equal(rec.first_lsn, 0);
    assert_int_equal(rec.segments, 1);
    for (unsigned i = 1; i <= 3; i++) assert_int_equal(put_txn(l, i), i);
    sync_ok(l);
    log_close(l);

    l = open_log(f->dir, NULL, &rec);
    assert_int_equal(rec.next_lsn, 4);
    assert_int_equal(rec.first_lsn, 1);
    assert_int_equal(rec.records, 3);
    assert_int_equal(rec.truncated_bytes, 0);
    assert_string_equal(rec.torn_at, "");
    assert_int_equal(log_next_lsn(l), 4);
    assert_int_equal(log_durable_lsn(l), 3);
    assert_int_equal(put_txn(l, 4), 4);
    sync_ok(l);
    got *g = replay_all(l, 1);
    assert_int_equal(g->n, 4);
    assert_int_equal(g->lsn[3], 4);
    assert_int_equal(g->sum[3], fingerprint("rec-4", 5));
    free(g);
    log_close(l);
}

static void test_segment_roll_and_replay(void **state)
{
    fixture *f = *state;
    log_opts o = { .segment_bytes = 256 };
    log_store *l = open_log(f->dir, &o, NULL);
    char body[50];
    memset(body, 'x', sizeof body);
    /* 20 transactions of two records: each 2 * 88 bytes */
    for (unsigned t = 0; t < 20; t++) {
        assert_int_equal(log_append(l, 1, 0, 0, body, sizeof body, NULL), JD_OK);
        assert_int_equal(log_append(l, 2, 0, LOG_F_TXN_END, body, sizeof body, NULL), JD_OK);
        sync_ok(l);
    }
    int segs = count_segments(f->dir);
    assert_true(segs >= 5);
    /* never split a transaction: every segment starts at an odd lsn */
    for (uint64_t lsn = 2; lsn <= 40; lsn += 2) {
        char p[256];
        seg_path(p, sizeof p, f->dir, lsn);
        assert_int_equal(access(p, F_OK), -1);
    }
    got *g = replay_all(l, 1);
    assert_int_equal(g->n, 40);
    for (size_t i = 0; i < 40; i++) assert_int_equal(g->lsn[i], i + 1);
    free(g);
    g = replay_all(l, 17);
    assert_int_equal(g->n, 24);
    assert_int_equal(g->lsn[0], 17);
    assert_int_equal(g->lsn[23], 40);
    free(g);
    g = replay_all(l, 41);
    assert_int_equal(g->n, 0);
    free(g);

    /* an unfinished transaction holds the roll back, even past segment_bytes
     * (the first sync may still roll: the last segment was due) */
    assert_int_equal(log_append(l, 1, 0, 0, body, sizeof body, NULL), JD_OK);
    sync_ok(l);
    int before = count_segments(f->dir);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(log_append(l, 1, 0, 0, body, sizeof body, NULL), JD_OK);
        sync_ok(l);
    }
    assert_int_equal(count_segments(f->dir), before);
    assert_int_equal(log_append(l, 1, 0, LOG_F_TXN_END, body, sizeof body, NULL), JD_OK);
    sync_ok(l);
    assert_int_equal(put_txn(l, 99), 47);
    sync_ok(l);
    assert_int_equal(count_segments(f->dir), before + 1);
    log_close(l);

    log_recovery rec;
    l = open_log(f->dir, &o, &rec);
    assert_int_equal(rec.segments, (uint32_t)before + 1);
    assert_int_equal(rec.records, 47);
    assert_int_equal(rec.next_lsn, 48);
    assert_int_equal(rec.truncated_bytes, 0);
    g = replay_all(l, 30);
    assert_int_equal(g->n, 18);
    assert_int_equal(g->lsn[17], 47);
    free(g);
    log_close(l);
}

/* Writes n single-record transactions, closes, and returns the segment path. */
static void write_txns(const char *dir, unsigned n, char *path, size_t pn)
{
    log_store *l = open_log(dir, NULL, NULL);
    for (unsigned i = 1; i <= n; i++) put_txn(l, i);
    sync_ok(l);
    log_close(l);
    seg_path(path, pn, dir, 1);
}

static void check_after_repair(const char *dir, uint64_t expect_next)
{
    log_store *l = open_log(dir, NULL, NULL);
    assert_int_equal(log_next_lsn(l), expect_next);
    assert_int_equal(put_txn(l, 1000), expect_next);
    sync_ok(l);
    got *g = replay_all(l, 1);
    assert_int_equal(g->n, expect_next);
    for (size_t i = 0; i < g->n; i++) assert_int_equal(g->lsn[i], i + 1);
    assert_int_equal(g->sum[g->n - 1], fingerprint("rec-1000", 8));
    free(g);
    log_close(l);
}

static void test_torn_tail_mid_record(void **state)
{
    fixture *f = *state;
    char path[256], at[300];
    write_txns(f->dir, 5, path, sizeof path);
    uint64_t size = file_size(path);
    uint64_t rec5 = size - REC_BYTES(5);     /* "rec-5" is 5 bytes */
    file_truncate(path, size - 5);     /* header whole, body short */

    log_recovery rec;
    log_store *l = open_log(f->dir, NULL, &rec);
    assert_int_equal(rec.records, 4);
    assert_int_equal(rec.next_lsn, 5);
    assert_int_equal(rec.truncated_bytes, REC_BYTES(5) - 5);
    assert_int_equal(rec.dropped_records, 0);
    snprintf(at, sizeof at, "seg-00000000000000000001.log at byte %llu: short record body",
             (unsigned long long)rec5);
    if (!strstr(rec.torn_at, at)) fail_msg("torn_at '%s' lacks '%s'", rec.torn_at, at);
    assert_int_equal(file_size(path), rec5);
    log_close(l);
    check_after_repair(f->dir, 5);
}

static void test_torn_tail_short_header(void **state)
{
    fixture *f = *state;
    char path[256];
    write_txns(f->dir, 3, path, sizeof path);
    uint64_t size = file_size(path);
    file_truncate(path, size - REC_BYTES(5) + 20);   /* 20 bytes of the last header */
    log_recovery rec;
    log_store *l = open_log(f->dir, NULL, &rec);
    assert_int_equal(rec.truncated_bytes, 20);
    assert_non_null(strstr(rec.torn_at, "short record header"));
    log_close(l);
    check_after_repair(f->dir, 3);
}

static void test_garbage_after_last_record(void **state)
{
    fixture *f = *state;
    char path[256];
    write_txns(f->dir, 4, path, sizeof path);
    uint64_t size = file_size(path);
    unsigned char junk[100];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 37 + 11);
    file_append(path, junk, sizeof junk);

    log_recovery rec;
    log_store *l = open_log(f->dir, NULL, &rec);
    assert_int_equal(rec.records, 4);
    assert_int_equal(rec.truncated_bytes, 100);
    assert_int_equal(file_size(path), size);
    char at[64];
    snprintf(at, sizeof at, "at byte %llu:", (unsigned long long)size);
    assert_non_null(strstr(rec.torn_at, at));
    log_close(l);

    /* zeros (a file system extending the file at a crash) are torn too */
    char zeros[64] = { 0 };
    file_append(path, zeros, sizeof zeros);
    l = open_log(f->dir, NULL, &rec);
    assert_int_equal(rec.truncated_bytes, 64);
    assert_non_null(strstr(rec.torn_at, "checksum mismatch"));
    log_close(l);
    check_after_repair(f->dir, 5);
}

static void test_checksum_flip_in_last_record(void **state)
{
    fixture *f = *state;
    char path[256];
    write_txns(f->dir, 6, path, sizeof path);
    uint64_t size = file_size(path);
    file_flip(path, size - REC_BYTES(5) + 32 + 2);   /* a body byte of lsn 6 */
    log_recovery rec;
    log_store *l = open_log(f->dir, NULL, &rec);
    assert_int_equal(rec.records, 5);
    assert_int_equal(rec.truncated_bytes, REC_BYTES(5));
    assert_non_null(strstr(rec.torn_at, "record checksum mismatch"));
    log_close(l);
    check_after_repair(f->dir, 6);
}

static void test_unfinished_txn_torn(void **state)
{
    fixture *f = *state;
    char path[256];
    log_store *l = open_log(f->dir, NULL, NULL);
    put_txn(l, 1);                                                   /* lsn 1, ends */
    assert_int_equal(log_append(l, 1, 0, 0, "aaaaaaaa", 8, NULL), JD_OK);   /* 2 */
    assert_int_equal(log_append(l, 1, 0, 0, "bbbbbbbb", 8, NULL), JD_OK);   /* 3 */
    assert_int_equal(log_append(l, 1, 0, LOG_F_TXN_END, "cccccccc", 8, NULL), JD_OK); /* 4 */
    sync_ok(l);
    log_close(l);
    seg_path(path, sizeof path, f->dir, 1);
    uint64_t size = file_size(path);
    file_truncate(path, size - 3);    /* tear lsn 4: the transaction 2..4 goes */

    log_recovery rec;
    l = open_log(f->dir, NULL, &rec);
    assert_int_equal(rec.records, 1);
    assert_int_equal(rec.dropped_records, 2);
    assert_int_equal(rec.truncated_bytes, 3 * REC_BYTES(8) - 3);
    assert_int_equal(rec.next_lsn, 2);
    assert_int_equal(file_size(path), SEG_HDR + REC_BYTES(5));
    log_close(l);
    check_after_repair(f->dir, 2);
}

static void test_unfinished_txn_clean_eof(void **state)
{
    fixture *f = *state;
    log_store *l = open_log(f->dir, NULL, NULL);
    put_txn(l, 1);
    put_txn(l, 2);
    assert_int_equal(log_append(l, 1, 0, 0, "a", 1, NULL), JD_OK);
    assert_int_equal(log_append(l, 1, 0, 0, "b", 1, NULL), JD_OK);
    sync_ok(l);   /* durable, but the transaction never ended */
    log_close(l);

    log_recovery rec;
    l = open_log(f->dir, NULL, &rec);
    assert_int_equal(rec.records, 2);
    assert_int_equal(rec.dropped_records, 2);
    assert_int_equal(rec.truncated_bytes, 2 * REC_BYTES(1));
    assert_non_null(strstr(rec.torn_at, "transaction without its end record"));
    log_close(l);
    check_after_repair(f->dir, 3);
}

static void test_corrupt_earlier_segment(void **state)
{
    fixture *f = *state;
    log_opts o = { .segment_bytes = 128 };
    log_store *l = open_log(f->dir, &o, NULL);
    for (unsigned i = 1; i <= 12; i++) { put_txn(l, i); sync_ok(l); }
    log_close(l);
    assert_true(count_segments(f->dir) >= 3);

    char path[256];
    seg_path(path, sizeof path, f->dir, 1);
    /* segment 1 holds lsns 1..3 (32 + 3 * 40 >= 128): flip lsn 2's body */
    uint64_t off = SEG_HDR + REC_BYTES(5);
    file_flip(path, off + 32 + 1);
    l = NULL;
    jd_err err;
    jd_err_clear(&err);
    assert_int_equal(log_open(&l, f->dir, &o, NULL, &err), JD_ECORRUPT);
    assert_null(l);
    char where[300];
    snprintf(where, sizeof where, "%s at byte %llu", path, (unsigned long long)off);
    assert_string_equal(err.where, where);
    assert_string_equal(err.msg, "record checksum mismatch");
    file_flip(path, off + 32 + 1);   /* repair */

    /* a truncated earlier segment is corruption too, not a torn tail */
    uint64_t size = file_size(path);
    file_truncate(path, size - 4);
    assert_int_equal(log_open(&l, f->dir, &o, NULL, &err), JD_ECORRUPT);
    assert_non_null(strstr(err.msg, "short record body"));
    assert_non_null(strstr(err.where, "seg-00000000000000000001.log at byte"));
    file_truncate(path, 0);
    assert_int_equal(log_open(&l, f->dir, &o, NULL, &err), JD_ECORRUPT);
    assert_non_null(strstr(err.where, "seg-00000000000000000001.log at byte 0"));
}

static void test_bad_last_segment_header(void **state)
{
    fixture *f = *state;
    log_opts o = { .segment_bytes = 100 };
    log_store *l = open_log(f->dir, &o, NULL);
    put_txn(l, 1);
    put_txn(l, 2);
    sync_ok(l);            /* 32 + 80 >= 100: next write rolls */
    log_close(l);
    char p3[256];
    seg_path(p3, sizeof p3, f->dir, 3);

    /* crash right after create: empty file */
    file_append(p3, "", 0);
    log_recovery rec;
    l = open_log(f->dir, &o, &rec);
    assert_int_equal(rec.next_lsn, 3);
    assert_int_equal(rec.segments, 2);
    assert_non_null(strstr(rec.torn_at, "seg-00000000000000000003.log at byte 0"));
    assert_int_equal(file_size(p3), SEG_HDR);
    log_close(l);
    unlink(p3);

    /* a half-written header */
    file_append(p3, "JDLOG\0\0\1\1\0\0\0", 12);
    l = open_log(f->dir, &o, &rec);
    assert_int_equal(rec.truncated_bytes, 12);
    assert_non_null(strstr(rec.torn_at, "short segment header"));
    assert_int_equal(put_txn(l, 3), 3);
    sync_ok(l);
    log_close(l);
    l = open_log(f->dir, &o, &rec);
    assert_int_equal(rec.records, 3);
    assert_int_equal(rec.truncated_bytes, 0);
    log_close(l);
}

static void test_enospc_on_write(void **state)
{
    fixture *f = *state;
    faults fl = { 0 };
    log_io io = { fault_write, fault_fdatasync, &fl };
    log_opts o = { .io = &io };
    log_store *l = open_log(f->dir, &o, NULL);
    put_txn(l, 1);
    put_txn(l, 2);
    sync_ok(l);
    char path[256];
    seg_path(path, sizeof path, f->dir, 1);
    uint64_t durable = file_size(path);

    fl.write_errno = ENOSPC;
    fl.write_budget = 50;   /* part of the group reaches the file first */
    for (unsigned i = 3; i <= 5; i++) put_txn(l, i);
    jd_err err;
    jd_err_clear(&err);
    assert_int_equal(log_sync(l, &err), JD_EIO);
    assert_non_null(strstr(err.msg, "No space left on device"));
    assert_non_null(strstr(err.msg, "seg-00000000000000000001.log"));
    assert_false(log_failed(l));
    assert_int_equal(file_size(path), durable);
    assert_int_equal(log_next_lsn(l), 3);
    assert_int_equal(log_durable_lsn(l), 2);
    assert_int_equal(log_bytes(l), durable);

    fl.write_errno = 0;   /* space is back */
    assert_int_equal(put_txn(l, 1000), 3);   /* the lsn is reused */
    sync_ok(l);
    got *g = replay_all(l, 1);
    assert_int_equal(g->n, 3);
    assert_int_equal(g->sum[1], fingerprint("rec-2", 5));
    assert_int_equal(g->sum[2], fingerprint("rec-1000", 8));
    free(g);
    log_close(l);
    check_after_repair(f->dir, 4);
}

static void test_enospc_on_early_write(void **state)
{
    fixture *f = *state;
    faults fl = { 0 };
    log_io io = { fault_write, fault_fdatasync, &fl };
    log_opts o = { .io = &io };
    log_store *l = open_log(f->dir, &o, NULL);
    char path[256];
    seg_path(path, sizeof path, f->dir, 1);
    const uint32_t mib = 1024 * 1024;
    char *body = calloc(1, mib);
    unsigned n = JD_DEF_GROUP_MAX_BYTES / mib + 2;

    /* a group bigger than the group ceiling is written early, not synced */
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(log_append(l, 1, 0, i + 1 == n ? LOG_F_TXN_END : 0, body, mib, NULL), JD_OK);
    assert_true(file_size(path) > SEG_HDR);
    assert_int_equal(log_durable_lsn(l), 0);
    got *g = replay_all(l, 1);
    assert_int_equal(g->n, 0);
    free(g);
    sync_ok(l);
    assert_int_equal(log_durable_lsn(l), n);
    uint64_t durable = file_size(path);
    assert_int_equal(durable, SEG_HDR + (uint64_t)n * REC_BYTES(mib));

    /* the early write fails: that append, later ones and the sync say so */
    fl.write_errno = EDQUOT;
    fl.write_budget = 4096;
    int rc = JD_OK;
    unsigned i;
    for (i = 0; i < n && rc == JD_OK; i++) rc = log_append(l, 1, 0, 0, body, mib, NULL);
    assert_int_equal(rc, JD_EIO);
    assert_int_equal(log_append(l, 1, 0, 0, "x", 1, NULL), JD_EIO);
    jd_err err;
    jd_err_clear(&err);
    assert_int_equal(log_sync(l, &err), JD_EIO);
    assert_non_null(strstr(err.msg, strerror(EDQUOT)));
    assert_int_equal(file_size(path), durable);
    assert_false(log_failed(l));
    fl.write_errno = 0;
    assert_int_equal(put_txn(l, 7), n + 1);
    sync_ok(l);
    g = replay_all(l, 1);
    assert_int_equal(g->n, n + 1);
    free(g);
    log_close(l);
    free(body);
}

static void test_fsync_error_is_sticky(void **state)
{
    fixture *f = *state;
    faults fl = { 0 };
    log_io io = { fault_write, fault_fdatasync, &fl };
    log_opts o = { .io = &io };
    log_store *l = open_log(f->dir, &o, NULL);
    put_txn(l, 1);
    sync_ok(l);

    fl.fsync_errno = EIO;
    put_txn(l, 2);
    jd_err err;
    jd_err_clear(&err);
    assert_int_equal(log_sync(l, &err), JD_EIO);
    assert_non_null(strstr(err.msg, "cannot fsync"));
    assert_non_null(strstr(err.msg, strerror(EIO)));
    assert_true(log_failed(l));
    assert_int_equal(log_durable_lsn(l), 1);

    fl.fsync_errno = 0;   /* a retry must not be trusted */
    int fsyncs = fl.fsyncs;
    assert_int_equal(log_append(l, 1, 0, LOG_F_TXN_END, "x", 1, NULL), JD_EIO);
    jd_err_clear(&err);
    assert_int_equal(log_sync(l, &err), JD_EIO);
    assert_non_null(strstr(err.msg, "restart journeyd"));
    assert_int_equal(fl.fsyncs, fsyncs);
    assert_true(log_failed(l));
    log_discard_group(l);
    assert_true(log_failed(l));
    log_close(l);
}

static void test_trim_removes_old_segments(void **state)
{
    fixture *f = *state;
    log_opts o = { .segment_bytes = 100 };   /* two 40-byte records a segment */
    log_store *l = open_log(f->dir, &o, NULL);
    for (unsigned i = 1; i <= 10; i++) { put_txn(l, i); sync_ok(l); }
    /* segments: 1-2, 3-4, 5-6, 7-8, 9-10 (current) */
    assert_int_equal(count_segments(f->dir), 5);
    uint64_t bytes = log_bytes(l);
    jd_err err;
    assert_int_equal(log_trim(l, 1, &err), 0);
    assert_int_equal(log_trim(l, 2, &err), 0);    /* lsn 2 is still needed */
    assert_int_equal(log_trim(l, 3, &err), 1);    /* 1-2 go */
    assert_int_equal(log_bytes(l), bytes - (SEG_HDR + 2 * REC_BYTES(5)));
    assert_int_equal(log_trim(l, 6, &err), 1);    /* 3-4 go, 5-6 stays */
    assert_int_equal(count_segments(f->dir), 3);
    char p[256];
    seg_path(p, sizeof p, f->dir, 5);
    assert_int_equal(access(p, F_OK), 0);
    got *g = replay_all(l, 1);
    assert_int_equal(g->n, 6);
    assert_int_equal(g->lsn[0], 5);
    free(g);
    /* never the current segment, however far */
    assert_int_equal(log_trim(l, 1000, &err), 2);
    assert_int_equal(count_segments(f->dir), 1);
    assert_int_equal(put_txn(l, 11), 11);
    sync_ok(l);
    log_close(l);

    log_recovery rec;
    l = open_log(f->dir, &o, &rec);
    assert_int_equal(rec.first_lsn, 9);
    assert_int_equal(rec.records, 3);
    assert_int_equal(rec.next_lsn, 12);
    g = replay_all(l, 2);
    assert_int_equal(g->n, 3);
    assert_int_equal(g->lsn[0], 9);
    free(g);
    log_close(l);
}

static void test_discard_group(void **state)
{
    fixture *f = *state;
    log_store *l = open_log(f->dir, NULL, NULL);
    put_txn(l, 1);
    put_txn(l, 2);
    sync_ok(l);
    put_txn(l, 3);
    put_txn(l, 4);
    assert_int_equal(log_next_lsn(l), 5);
    log_discard_group(l);
    assert_int_equal(log_next_lsn(l), 3);
    assert_int_equal(log_durable_lsn(l), 2);
    sync_ok(l);   /* nothing to write */
    assert_int_equal(put_txn(l, 30), 3);
    sync_ok(l);
    got *g = replay_all(l, 1);
    assert_int_equal(g->n, 3);
    assert_int_equal(g->sum[2], fingerprint("rec-30", 6));
    free(g);
    log_close(l);
    log_recovery rec;
    l = open_log(f->dir, NULL, &rec);
    assert_int_equal(rec.records, 3);
    log_close(l);
}

static void test_record_limit(void **state)
{
    fixture *f = *state;
    log_store *l = open_log(f->dir, NULL, NULL);
    char b = 0;
    assert_int_equal(log_append(l, 1, 0, LOG_F_TXN_END, &b, JD_MAX_RECORD_BYTES + 1, NULL), JD_ELIMIT);
    assert_int_equal(log_next_lsn(l), 1);
    log_close(l);
}

typedef struct appender {
    log_store *l;
    int        seen;
} appender;

static int append_while_replaying(void *ctx, const log_rec *r)
{
    appender *a = ctx;
    a->seen++;
    /* appending and syncing (with rolls) mid-replay must not disturb it */
    put_txn(a->l, 500 + (unsigned)r->lsn);
    sync_ok(a->l);
    return r->lsn == 100 ? 42 : 0;
}

static void test_replay_while_appending(void **state)
{
    fixture *f = *state;
    log_opts o = { .segment_bytes = 200 };
    log_store *l = open_log(f->dir, &o, NULL);
    for (unsigned i = 1; i <= 6; i++) { put_txn(l, i); sync_ok(l); }
    put_txn(l, 7);   /* not durable: not visited */
    appender a = { l, 0 };
    jd_err err;
    assert_int_equal(log_replay(l, 1, append_while_replaying, &a, &err), JD_OK);
    assert_int_equal(a.seen, 6);
    assert_int_equal(log_durable_lsn(l), 13);
    /* the stop value comes back */
    a.seen = 0;
    assert_int_equal(log_replay(l, 95, append_while_replaying, &a, &err), 0);
    a.seen = 0;
    for (unsigned i = 0; i < 100; i++) { put_txn(l, i); sync_ok(l); }
    assert_int_equal(log_replay(l, 98, append_while_replaying, &a, &err), 42);
    assert_int_equal(a.seen, 3);
    log_close(l);
}

int main(void)
{
    jd_log_set_level(JD_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_continues_lsn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_roll_and_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_mid_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_short_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_after_last_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checksum_flip_in_last_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unfinished_txn_torn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unfinished_txn_clean_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_earlier_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_last_segment_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enospc_on_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enospc_on_early_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_error_is_sticky, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_removes_old_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_while_appending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
