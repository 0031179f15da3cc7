/* src/log/segment.c -- the on-disk format of the record log and its recovery.
 *
 * A log is a directory of segment files seg-<first lsn, 20 digits>.log, each a
 * 32-byte header followed by 8-byte-aligned records (docs/internals/log.md).
 *
 * Invariants (log.c keeps them while writing; recovery checks them on reading):
 *  (1) lsns are dense: the records of all segments, in file-name order, carry
 *      first_lsn, first_lsn + 1, ... with no gap, also across segment files.
 *  (2) A segment's header first_lsn equals the number in its file name and the
 *      lsn following the previous segment's last record.
 *  (3) Only the last segment is ever written to, so only it can end torn: a
 *      failed check there is a crash in mid-write, anywhere else it is damage.
 *  (4) Segments are rolled only at a transaction boundary, so each one starts
 *      with the first record of a transaction and recovery can cut the last
 *      segment back to its last LOG_F_TXN_END without looking further back.
 *  (5) After log__recover() the last segment ends at a LOG_F_TXN_END record (or
 *      right after its header) and that truncation is durable.
 *
 * Recovery, per segment in order:
 *   header bad    last and (not the only one or no room for records): torn,
 *                 recreated; otherwise JD_ECORRUPT
 *   record bad    last segment: torn tail, cut back to the last TXN_END;
 *                 otherwise JD_ECORRUPT "<file> at byte N"
 *   clean EOF     last segment: still cut back to the last TXN_END (an
 *                 unfinished transaction is dropped whole)
 */
#include "log_int.h"

#include "journeyd/limits.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- little-endian codec ------------------------------------------------ */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

void log__seg_hdr_encode(uint8_t out[LOG__SEG_HDR], uint64_t first_lsn)
{
    memcpy(out, LOG__SEG_MAGIC, 8);
    put32(out + 8, LOG__SEG_VERSION);
    put32(out + 12, 0);
    put64(out + 16, first_lsn);
    put64(out + 24, jd_hash64(out, 24));
}

bool log__seg_hdr_decode(const uint8_t *p, uint64_t n, uint64_t *first_lsn, char *why, size_t whyn)
{
    if (n < LOG__SEG_HDR) {
        snprintf(why, whyn, "short segment header (%" PRIu64 " bytes)", n);
        return false;
    }
    if (memcmp(p, LOG__SEG_MAGIC, 8) != 0) {
        snprintf(why, whyn, "not a log segment (bad magic)");
        return false;
    }
    if (jd_hash64(p, 24) != get64(p + 24)) {
        snprintf(why, whyn, "segment header checksum mismatch");
        return false;
    }
    uint32_t version = get32(p + 8);
    if (version != LOG__SEG_VERSION) {
        snprintf(why, whyn, "unsupported segment version %" PRIu32, version);
        return false;
    }
    uint64_t first = get64(p + 16);
    if (first == 0 || first > LOG__MAX_FIRST_LSN) {
        snprintf(why, whyn, "segment first lsn %" PRIu64 " out of range", first);
        return false;
    }
    *first_lsn = first;
    return true;
}

void log__rec_encode(uint8_t *out, uint64_t lsn, uint16_t type, uint16_t partition,
                     uint32_t flags, const void *body, uint32_t len)
{
    uint64_t total = log__rec_bytes(len);
    put64(out + 8, lsn);
    put32(out + 16, len);
    put16(out + 20, type);
    put16(out + 22, partition);
    put32(out + 24, flags);
    put32(out + 28, 0);
    if (len) memcpy(out + LOG__REC_HDR, body, len);
    memset(out + LOG__REC_HDR + len, 0, (size_t)(total - LOG__REC_HDR - len));
    /* Header fields and body are contiguous here and on disk: one hash call. */
    put64(out, jd_hash64(out + 8, LOG__REC_HDR - 8 + (size_t)len));
}

bool log__rec_decode(const uint8_t *p, uint64_t n, uint64_t off, uint64_t expect_lsn,
                     struct log__rec *r, char *why, size_t whyn)
{
    uint64_t left = n - off;
    if (left < LOG__REC_HDR) {
        snprintf(why, whyn, "short record header (%" PRIu64 " bytes left)", left);
        return false;
    }
    const uint8_t *h = p + off;
    r->check = get64(h);
    r->lsn = get64(h + 8);
    r->len = get32(h + 16);
    r->type = get16(h + 20);
    r->partition = get16(h + 22);
    r->flags = get32(h + 24);
    r->reserved = get32(h + 28);
    if (r->len > JD_MAX_RECORD_BYTES) {
        snprintf(why, whyn, "record length %" PRIu32 " exceeds the limit of %u bytes",
                 r->len, JD_MAX_RECORD_BYTES);
        return false;
    }
    if (left < log__rec_bytes(r->len)) {
        snprintf(why, whyn, "short record body (%" PRIu64 " bytes needed, %" PRIu64 " left)",
                 log__rec_bytes(r->len), left);
        return false;
    }
    if (jd_hash64(h + 8, LOG__REC_HDR - 8 + (size_t)r->len) != r->check) {
        snprintf(why, whyn, "record checksum mismatch");
        return false;
    }
    if (r->lsn != expect_lsn) {
        snprintf(why, whyn, "lsn gap: expected %" PRIu64 ", found %" PRIu64, expect_lsn, r->lsn);
        return false;
    }
    if (r->reserved != 0) {   /* checksummed, so a writer put it there: not ours */
        snprintf(why, whyn, "record reserved field is %" PRIu32 ", not 0", r->reserved);
        return false;
    }
    return true;
}

/* ---- segment files ------------------------------------------------------ */

char *log__seg_path(const char *dir, uint64_t first_lsn)
{
    return jd_strfmt("%s/seg-%020" PRIu64 ".log", dir, first_lsn);
}

int log__write_all(log_store *l, int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = l->io.write(l->io.self, fd, b, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {   /* write(2) never does this for n > 0; do not spin */
            errno = EIO;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static void segs_push(log_store *l, uint64_t first_lsn, uint64_t size, char *path)
{
    if (l->nsegs == l->segs_cap) {
        l->segs_cap = l->segs_cap ? 2 * l->segs_cap : 8;
        l->segs = jd_xrealloc(l->segs, l->segs_cap * sizeof *l->segs);
    }
    l->segs[l->nsegs++] = (struct log__seg){ .first_lsn = first_lsn, .size = size, .path = path };
}

int log__seg_start(log_store *l, uint64_t first_lsn, jd_err *err)
{
    int rc = JD_EIO, fd = -1;
    char *path = log__seg_path(l->dir, first_lsn);
    uint8_t hdr[LOG__SEG_HDR];

    /* O_TRUNC, not O_EXCL: a file with this name can only be left over from a
     * roll whose group failed, and holds no synced record (its lsn is > durable). */
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        jd_err_errno(err, path, "cannot create log segment %s", path);
        goto out;
    }
    log__seg_hdr_encode(hdr, first_lsn);
    if (log__write_all(l, fd, hdr, sizeof hdr) != 0) {
        jd_err_errno(err, path, "cannot write log segment header %s", path);
        goto out;
    }
    if (l->fd >= 0) {
        l->segs[l->nsegs - 1].size = l->durable_off;
        l->closed_bytes += l->durable_off;
        close(l->fd);
    }
    segs_push(l, first_lsn, LOG__SEG_HDR, path);
    path = NULL;
    l->fd = fd;
    fd = -1;
    l->durable_off = l->written_off = LOG__SEG_HDR;
    l->seg_unsynced = true;
    l->need_roll = false;
    rc = JD_OK;
out:
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    free(path);
    return rc;
}

int log__seg_sync_now(log_store *l, jd_err *err)
{
    const char *path = l->segs[l->nsegs - 1].path;
    if (l->io.fdatasync(l->io.self, l->fd) != 0)
        return jd_err_errno(err, path, "cannot fsync log segment %s", path);
    int rc = jd_fsync_dir(l->dir, err);
    if (rc == JD_OK) l->seg_unsynced = false;
    return rc;
}

/* ---- recovery ----------------------------------------------------------- */

/* JD_ECORRUPT with where "<path> at byte N" (the operator's starting point). */
static int corrupt_at(jd_err *err, const char *path, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int corrupt_at(jd_err *err, const char *path, uint64_t off, const char *fmt, ...)
{
    char where[sizeof ((jd_err *)0)->where], msg[sizeof ((jd_err *)0)->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(where, sizeof where, "%s at byte %" PRIu64, path, off);
    jd_error("log: corrupt segment: %s: %s", where, msg);
    return jd_err_set(err, JD_ECORRUPT, where, "%s", msg);
}

struct seg_name { uint64_t lsn; char *path; };

static int cmp_seg_name(const void *a, const void *b)
{
    uint64_t x = ((const struct seg_name *)a)->lsn, y = ((const struct seg_name *)b)->lsn;
    return x < y ? -1 : x > y;
}

static bool parse_seg_name(const char *name, uint64_t *lsn)
{
    if (strlen(name) != LOG__SEG_NAME_LEN || memcmp(name, "seg-", 4) != 0 ||
        memcmp(name + 24, ".log", 4) != 0)
        return false;
    uint64_t v = 0;
    for (int i = 4; i < 24; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        unsigned d = (unsigned)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *lsn = v;
    return true;
}

static int list_segments(const char *dir, struct seg_name **out, size_t *n, jd_err *err)
{
    DIR *d = opendir(dir);
    if (!d) return jd_err_errno(err, dir, "cannot open log directory %s", dir);
    struct seg_name *v = NULL;
    size_t len = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t lsn;
        if (!parse_seg_name(e->d_name, &lsn)) {
            if (strncmp(e->d_name, "seg-", 4) == 0)
                jd_warn("log: ignoring %s/%s: not a segment file name", dir, e->d_name);
            continue;
        }
        if (len == cap) {
            cap = cap ? 2 * cap : 16;
            v = jd_xrealloc(v, cap * sizeof *v);
        }
        v[len].lsn = lsn;
        v[len].path = jd_strfmt("%s/%s", dir, e->d_name);
        len++;
    }
    closedir(d);
    if (len) qsort(v, len, sizeof *v, cmp_seg_name);
    *out = v;
    *n = len;
    return JD_OK;
}

/* What scanning one segment found. */
struct scan {
    uint64_t first_lsn;
    uint64_t next_lsn;      /* after the last good record */
    uint64_t records;       /* good records */
    uint64_t bad_off;       /* where the first bad record starts (valid if bad) */
    bool     bad;
    char     why[128];
    uint64_t cut_off;       /* end of the last TXN_END record (or the header) */
    uint64_t cut_lsn;       /* next lsn at cut_off */
    uint64_t cut_records;   /* good records before cut_off */
};

static void scan_records(const uint8_t *p, uint64_t size, uint64_t first_lsn, struct scan *s)
{
    uint64_t off = LOG__SEG_HDR, expect = first_lsn;
    s->first_lsn = first_lsn;
    s->records = s->cut_records = 0;
    s->cut_off = LOG__SEG_HDR;
    s->cut_lsn = first_lsn;
    s->bad = false;
    while (off < size) {
        struct log__rec r;
        if (!log__rec_decode(p, size, off, expect, &r, s->why, sizeof s->why)) {
            s->bad = true;
            s->bad_off = off;
            break;
        }
        off += log__rec_bytes(r.len);
        expect++;
        s->records++;
        if (r.flags & LOG_F_TXN_END) {
            s->cut_off = off;
            s->cut_lsn = expect;
            s->cut_records = s->records;
        }
    }
    s->next_lsn = expect;
}

/* Truncates the current segment (l->fd) to `to` bytes, durably. */
static int truncate_tail(log_store *l, const char *path, uint64_t to, jd_err *err)
{
    if (ftruncate(l->fd, (off_t)to) != 0)
        return jd_err_errno(err, path, "cannot truncate torn tail of %s", path);
    if (fsync(l->fd) != 0)
        return jd_err_errno(err, path, "cannot fsync %s after truncating its torn tail", path);
    return JD_OK;
}

int log__recover(log_store *l, log_recovery *rec, jd_err *err)
{
    int rc = JD_EIO, fd = -1;
    struct seg_name *names = NULL;
    size_t n = 0, i;
    uint8_t *map = NULL;
    uint64_t map_len = 0, expect = 0, total = 0;

    rc = list_segments(l->dir, &names, &n, err);
    if (rc != JD_OK) goto out;
    rc = JD_EIO;

    for (i = 0; i < n; i++) {
        const char *path = names[i].path;
        bool last = i + 1 == n;
        struct stat st;
        char why[128];
        uint64_t first = 0;

        fd = open(path, (last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
        if (fd < 0) { jd_err_errno(err, path, "cannot open log segment %s", path); goto out; }
        if (fstat(fd, &st) != 0) { jd_err_errno(err, path, "cannot stat log segment %s", path); goto out; }
        uint64_t size = (uint64_t)st.st_size;
        if (size > 0) {
            map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (map == MAP_FAILED) {
                map = NULL;
                jd_err_errno(err, path, "cannot map log segment %s", path);
                goto out;
            }
            map_len = size;
        }

        if (!log__seg_hdr_decode(map, size, &first, why, sizeof why)) {
            /* (3): a header is written once, just before the segment's first
             * group, so a bad one in the last file is a crash during creation
             * when nothing else can be in it: past a valid earlier segment, or
             * no room for a record. Anything else may hold acknowledged data. */
            if (!last || (i == 0 && size > LOG__SEG_HDR)) {
                rc = corrupt_at(err, path, 0, "%s", why);
                goto out;
            }
            uint64_t lsn = i > 0 ? expect : (names[i].lsn ? names[i].lsn : 1);
            if (lsn > LOG__MAX_FIRST_LSN) lsn = 1;
            rec->truncated_bytes += size;
            snprintf(rec->torn_at, sizeof rec->torn_at, "%s at byte 0: %s", path, why);
            jd_warn("log: torn tail: %s at byte 0: %s; recreating the segment (%" PRIu64 " bytes removed)",
                    path, why, size);
            if (map) { munmap(map, (size_t)map_len); map = NULL; }
            close(fd);
            fd = -1;
            if (unlink(path) != 0) { jd_err_errno(err, path, "cannot remove torn segment %s", path); goto out; }
            rc = log__seg_start(l, lsn, err);
            if (rc != JD_OK) goto out;
            rc = log__seg_sync_now(l, err);
            if (rc != JD_OK) goto out;
            rc = JD_EIO;
            expect = lsn;
            break;
        }
        /* (2) A valid checksum means a writer meant these numbers: no torn write
         * produces this, so it is corruption even in the last segment. */
        if (first != names[i].lsn || (i > 0 && first != expect)) {
            if (first != names[i].lsn)
                rc = corrupt_at(err, path, 16, "segment header says first lsn %" PRIu64
                                ", its file name says %" PRIu64, first, names[i].lsn);
            else
                rc = corrupt_at(err, path, 16, "lsn gap between segments: expected first lsn %"
                                PRIu64 ", found %" PRIu64, expect, first);
            goto out;
        }

        struct scan s;
        scan_records(map, size, first, &s);
        if (s.bad && !last) {
            rc = corrupt_at(err, path, s.bad_off, "%s", s.why);
            goto out;
        }
        if (map) { munmap(map, (size_t)map_len); map = NULL; }

        if (last) {
            l->fd = fd;   /* truncate_tail and appends use it */
            fd = -1;
            if (s.cut_off < size) {   /* (5) */
                rec->truncated_bytes += size - s.cut_off;
                rec->dropped_records += s.records - s.cut_records;
                if (s.bad)
                    snprintf(rec->torn_at, sizeof rec->torn_at, "%s at byte %" PRIu64 ": %s",
                             path, s.bad_off, s.why);
                else
                    snprintf(rec->torn_at, sizeof rec->torn_at,
                             "%s at byte %" PRIu64 ": transaction without its end record",
                             path, s.cut_off);
                jd_warn("log: torn tail truncated: %s (%" PRIu64 " bytes, %" PRIu64
                        " records of an unfinished transaction dropped)",
                        rec->torn_at, size - s.cut_off, s.records - s.cut_records);
                rc = truncate_tail(l, path, s.cut_off, err);
                if (rc != JD_OK) goto out;
                rc = JD_EIO;
                size = s.cut_off;
            }
            s.records = s.cut_records;
            s.next_lsn = s.cut_lsn;
            if (lseek(l->fd, (off_t)size, SEEK_SET) < 0) {
                jd_err_errno(err, path, "cannot seek in log segment %s", path);
                goto out;
            }
            l->durable_off = l->written_off = size;
        } else {
            close(fd);
            fd = -1;
            l->closed_bytes += size;
        }
        segs_push(l, first, size, names[i].path);
        names[i].path = NULL;
        total += s.records;
        expect = s.next_lsn;
    }

    if (l->fd < 0) {   /* an empty directory: a torn last segment set l->fd above */
        rc = log__seg_start(l, 1, err);
        if (rc != JD_OK) goto out;
        rc = log__seg_sync_now(l, err);
        if (rc != JD_OK) goto out;
        expect = 1;
    }

    l->next_lsn = expect;
    l->durable_lsn = expect - 1;
    l->tail_txn_end = l->durable_txn_end = true;   /* (5) */
    {
        const struct log__seg *cur = &l->segs[l->nsegs - 1];
        l->need_roll = l->durable_off >= l->segment_bytes && l->durable_lsn >= cur->first_lsn;
    }
    rec->next_lsn = l->next_lsn;
    rec->records = total;
    rec->segments = (uint32_t)l->nsegs;
    rec->first_lsn = l->durable_lsn >= l->segs[0].first_lsn ? l->segs[0].first_lsn : 0;
    jd_info("log: recovered %" PRIu64 " records in %u segments from %s (next lsn %" PRIu64 ")",
            total, rec->segments, l->dir, l->next_lsn);
    rc = JD_OK;
out:
    if (map) munmap(map, (size_t)map_len);
    if (fd >= 0) close(fd);
    for (i = 0; i < n; i++) free(names[i].path);
    free(names);
    return rc;
}
