/* src/log/log.c -- the record log: group commit, segment roll, replay, trim.
 *
 * Appends are encoded into an in-memory group (l->gbuf); log_sync() writes the
 * group to the current segment and fdatasync()s it. segment.c owns the byte
 * format and recovery; docs/internals/log.md is the tour.
 *
 *   file of the current segment:
 *   | header | synced records ... | written, not synced | (group in memory)
 *   0        32               durable_off           written_off
 *
 * Invariants:
 *  (1) durable_off <= written_off == the fd's file offset; bytes up to
 *      durable_off hold exactly the records 1..durable_lsn of this segment
 *      (plus the header, which a new segment has from birth).
 *  (2) next_lsn - 1 == durable_lsn + records in [durable_off, written_off)
 *      + records in gbuf. log_discard_group() and a failed sync restore
 *      next_lsn = durable_lsn + 1 and written_off = durable_off (ftruncate),
 *      so lsns of a refused group are reused and never reach the disk twice.
 *  (3) A new segment is started only when the durable tail ends a transaction
 *      (durable_txn_end) and the current segment holds a record, so a segment
 *      never splits a transaction and two segments never share a name.
 *  (4) Once an fsync fails, l->failed stays set: after fsyncgate (2018) a later
 *      fsync may succeed without the lost pages ever reaching the disk.
 *  (5) gbuf stays below JD_DEF_GROUP_MAX_BYTES or one record, whichever is
 *      larger: log_append() writes the group out (no fsync) before it would
 *      grow past that.
 *  (6) Replay reads only [0, durable size) of each segment, mapped at call
 *      time, and stops at the durable_lsn of that moment.
 *
 * States: OK -> GROUP_FAILED [write_group: early write failed] -> OK
 * [log_sync / log_discard_group: truncate back]; OK -> FAILED [log_sync:
 * fsync error], final until restart.
 */
#include "log_int.h"

#include "journeyd/limits.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static ssize_t real_write(void *self, int fd, const void *p, size_t n)
{
    (void)self;
    return write(fd, p, n);
}

static int real_fdatasync(void *self, int fd)
{
    (void)self;
    return fdatasync(fd);
}

static const log_io real_io = { real_write, real_fdatasync, NULL };

static const char *cur_path(const log_store *l) { return l->segs[l->nsegs - 1].path; }

int log_open(log_store **out, const char *dir, const log_opts *o, log_recovery *rec, jd_err *err)
{
    int rc = JD_EIO;
    log_recovery scratch;
    log_store *l = jd_xcalloc(1, sizeof *l);

    *out = NULL;
    if (!rec) rec = &scratch;
    memset(rec, 0, sizeof *rec);
    l->fd = -1;
    l->dir = jd_xstrdup(dir);
    l->segment_bytes = o && o->segment_bytes ? o->segment_bytes : JD_DEF_SEGMENT_BYTES;
    l->io = o && o->io ? *o->io : real_io;

    rc = jd_mkdir_p(dir, err);
    if (rc != JD_OK) goto out;
    rc = log__recover(l, rec, err);
    if (rc != JD_OK) goto out;
    *out = l;
    l = NULL;
out:
    if (l) log_close(l);
    return rc;
}

void log_close(log_store *l)
{
    if (!l) return;
    if (l->fd >= 0) close(l->fd);
    for (size_t i = 0; i < l->nsegs; i++) free(l->segs[i].path);
    free(l->segs);
    free(l->gbuf);
    free(l->dir);
    free(l);
}

/* Marks the log failed (4) and says so in err. */
static int fail(log_store *l, jd_err *err, const char *what)
{
    int saved = errno;
    l->failed = true;
    jd_error("log: %s %s: %s; the log is now failed, restart journeyd",
             what, cur_path(l), strerror(saved));
    errno = saved;
    return jd_err_errno(err, cur_path(l), "%s %s", what, cur_path(l));
}

/* Writes the group out without fsync, rolling to a new segment first when one
 * is due (3). On failure the group is doomed: its bytes are dropped now (the
 * caller learns it at log_sync) and the file is cut back there. */
static int write_group(log_store *l)
{
    if (l->glen == 0) return JD_OK;
    if (l->need_roll && log__seg_start(l, l->durable_lsn + 1, &l->group_err) != JD_OK) {
        l->group_failed = true;
        l->glen = 0;
        return JD_EIO;
    }
    if (log__write_all(l, l->fd, l->gbuf, l->glen) != 0) {
        jd_err_errno(&l->group_err, cur_path(l), "cannot write log segment %s", cur_path(l));
        l->group_failed = true;
        l->glen = 0;
        return JD_EIO;
    }
    l->written_off += l->glen;
    l->glen = 0;
    return JD_OK;
}

/* Restores (2): forgets every record since the last successful sync. */
static void drop_group(log_store *l)
{
    if (!l->failed && (l->written_off > l->durable_off || l->group_failed)) {
        /* A failed write may have left part of its bytes: cut by offset, not
         * by what we believe was written. If we cannot, later records would
         * land after garbage that recovery stops at, so give up (4). */
        if (ftruncate(l->fd, (off_t)l->durable_off) != 0 ||
            lseek(l->fd, (off_t)l->durable_off, SEEK_SET) < 0)
            fail(l, NULL, "cannot truncate back");
        l->written_off = l->durable_off;
    }
    l->glen = 0;
    l->group_failed = false;
    l->next_lsn = l->durable_lsn + 1;
    l->tail_txn_end = l->durable_txn_end;
}

int log_append(log_store *l, uint16_t type, uint16_t partition, uint32_t flags,
               const void *body, uint32_t len, uint64_t *lsn)
{
    if (l->failed || l->group_failed) return JD_EIO;
    if (len > JD_MAX_RECORD_BYTES) return JD_ELIMIT;
    size_t need = (size_t)log__rec_bytes(len);
    if (l->glen > 0 && l->glen + need > JD_DEF_GROUP_MAX_BYTES && write_group(l) != JD_OK)
        return JD_EIO;   /* (5) */
    if (l->glen + need > l->gcap) {
        size_t cap = l->gcap ? l->gcap : 64 * 1024;
        while (cap < l->glen + need) cap *= 2;
        l->gbuf = jd_xrealloc(l->gbuf, cap);
        l->gcap = cap;
    }
    log__rec_encode(l->gbuf + l->glen, l->next_lsn, type, partition, flags, body, len);
    l->glen += need;
    l->tail_txn_end = (flags & LOG_F_TXN_END) != 0;
    if (lsn) *lsn = l->next_lsn;
    l->next_lsn++;
    return JD_OK;
}

int log_sync(log_store *l, jd_err *err)
{
    if (l->failed)
        return jd_err_set(err, JD_EIO, cur_path(l), "log failed after an fsync error; restart journeyd");
    if (!l->group_failed) write_group(l);
    if (l->group_failed) {
        if (err) *err = l->group_err;
        jd_warn("log: group of lsn %" PRIu64 "..%" PRIu64 " discarded: %s",
                l->durable_lsn + 1, l->next_lsn - 1, l->group_err.msg);
        drop_group(l);
        return JD_EIO;
    }
    if (l->next_lsn - 1 == l->durable_lsn && !l->seg_unsynced) return JD_OK;

    if (l->io.fdatasync(l->io.self, l->fd) != 0) return fail(l, err, "cannot fsync log segment");
    if (l->seg_unsynced) {
        /* The new file's name must be durable before its records are acked. */
        if (jd_fsync_dir(l->dir, err) != JD_OK) {
            l->failed = true;
            jd_error("log: cannot fsync directory %s; the log is now failed, restart journeyd", l->dir);
            return JD_EIO;
        }
        l->seg_unsynced = false;
    }
    l->durable_off = l->written_off;
    l->durable_lsn = l->next_lsn - 1;
    l->durable_txn_end = l->tail_txn_end;
    if (l->durable_off >= l->segment_bytes && l->durable_txn_end &&
        l->durable_lsn >= l->segs[l->nsegs - 1].first_lsn)
        l->need_roll = true;   /* (3) */
    return JD_OK;
}

void log_discard_group(log_store *l) { drop_group(l); }

uint64_t log_next_lsn(const log_store *l) { return l->next_lsn; }
uint64_t log_durable_lsn(const log_store *l) { return l->durable_lsn; }
bool     log_failed(const log_store *l) { return l->failed; }
uint64_t log_bytes(const log_store *l) { return l->closed_bytes + l->written_off; }

/* ---- replay ------------------------------------------------------------- */

/* The segment holding lsn: the last one starting at or before it (or the first). */
static size_t find_seg(const log_store *l, uint64_t lsn)
{
    size_t lo = 0, hi = l->nsegs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->segs[mid].first_lsn <= lsn) lo = mid; else hi = mid;
    }
    return lo;
}

static int replay_corrupt(jd_err *err, const char *path, uint64_t off, const char *why)
{
    char where[sizeof ((jd_err *)0)->where];
    snprintf(where, sizeof where, "%s at byte %" PRIu64, path, off);
    jd_error("log: corrupt record during replay: %s: %s", where, why);
    return jd_err_set(err, JD_ECORRUPT, where, "%s", why);
}

/* Visits records [from, upto] of one segment's first `size` bytes. Sets *next
 * past the last record visited. The map is private to this call (6), so fn may
 * append, sync or roll meanwhile. */
static int replay_seg(const char *path, uint64_t first_lsn, uint64_t size, uint64_t from,
                      uint64_t upto, int (*fn)(void *ctx, const log_rec *r), void *ctx,
                      uint64_t *next, jd_err *err)
{
    int rc = JD_EIO, fd = -1;
    uint8_t *map = NULL;
    struct stat st;
    char why[128];
    uint64_t hdr_lsn = 0, off = LOG__SEG_HDR, expect = first_lsn;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { jd_err_errno(err, path, "cannot open log segment %s", path); goto out; }
    if (fstat(fd, &st) != 0) { jd_err_errno(err, path, "cannot stat log segment %s", path); goto out; }
    if ((uint64_t)st.st_size < size) {   /* mapping past EOF would SIGBUS */
        snprintf(why, sizeof why, "segment is %" PRIu64 " bytes, %" PRIu64 " were synced",
                 (uint64_t)st.st_size, size);
        rc = replay_corrupt(err, path, (uint64_t)st.st_size, why);
        goto out;
    }
    map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        map = NULL;
        jd_err_errno(err, path, "cannot map log segment %s", path);
        goto out;
    }
    /* Bytes read back are input (STYLE 10): check them again, cheaply. */
    if (!log__seg_hdr_decode(map, size, &hdr_lsn, why, sizeof why) || hdr_lsn != first_lsn) {
        if (hdr_lsn && hdr_lsn != first_lsn) snprintf(why, sizeof why, "segment header lsn changed");
        rc = replay_corrupt(err, path, 0, why);
        goto out;
    }
    rc = JD_OK;
    while (off < size && expect <= upto) {
        struct log__rec r;
        if (!log__rec_decode(map, size, off, expect, &r, why, sizeof why)) {
            rc = replay_corrupt(err, path, off, why);
            goto out;
        }
        if (r.lsn >= from) {
            log_rec out = { .lsn = r.lsn, .type = r.type, .partition = r.partition,
                            .flags = r.flags, .body = map + off + LOG__REC_HDR, .len = r.len };
            *next = r.lsn + 1;
            rc = fn(ctx, &out);
            if (rc != 0) goto out;
        }
        off += log__rec_bytes(r.len);
        expect++;
    }
out:
    if (map) munmap(map, (size_t)size);
    if (fd >= 0) close(fd);
    return rc;
}

int log_replay(log_store *l, uint64_t from_lsn, int (*fn)(void *ctx, const log_rec *r),
               void *ctx, jd_err *err)
{
    const uint64_t upto = l->durable_lsn;   /* (6) */
    uint64_t cur = from_lsn ? from_lsn : 1;

    while (cur <= upto) {
        /* Look the segment up again each time: fn may have rolled or trimmed. */
        size_t i = find_seg(l, cur);
        const struct log__seg *s = &l->segs[i];
        if (cur < s->first_lsn) cur = s->first_lsn;   /* older ones were trimmed */
        if (cur > upto) break;
        uint64_t size = i + 1 == l->nsegs ? l->durable_off : s->size;
        char *path = jd_xstrdup(s->path);
        uint64_t next = cur;
        int rc = replay_seg(path, s->first_lsn, size, cur, upto, fn, ctx, &next, err);
        free(path);
        if (rc != 0) return rc;
        if (next == cur) break;   /* nothing durable left here (an empty last segment) */
        cur = next;
    }
    return JD_OK;
}

/* ---- trim --------------------------------------------------------------- */

int log_trim(log_store *l, uint64_t before_lsn, jd_err *err)
{
    int rc = JD_OK;
    size_t k = 0;

    /* Segment k's last lsn is segs[k + 1].first_lsn - 1; the current one stays. */
    while (k + 1 < l->nsegs && l->segs[k + 1].first_lsn - 1 < before_lsn) {
        if (unlink(l->segs[k].path) != 0 && errno != ENOENT) {
            rc = jd_err_errno(err, l->segs[k].path, "cannot remove log segment %s", l->segs[k].path);
            break;
        }
        l->closed_bytes -= l->segs[k].size;
        free(l->segs[k].path);
        k++;
    }
    if (k == 0) return rc;
    memmove(l->segs, l->segs + k, (l->nsegs - k) * sizeof *l->segs);
    l->nsegs -= k;
    jd_info("log: trimmed %zu segments before lsn %" PRIu64, k, before_lsn);
    if (rc == JD_OK) rc = jd_fsync_dir(l->dir, err);
    return rc == JD_OK ? (int)k : rc;
}
