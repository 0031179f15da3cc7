/* src/log/log_int.h -- private to src/log/: the log_store layout and the byte
 * codec shared by segment.c (format, recovery) and log.c (append, sync, replay).
 * docs/internals/log.md has the byte tables; the numbers below must match it.
 */
#ifndef JOURNEYD_LOG_INT_H
#define JOURNEYD_LOG_INT_H

#include "journeyd/log.h"

#include <sys/types.h>

#define LOG__SEG_MAGIC     "JDLOG\0\0\1"   /* 8 bytes, no terminator counted */
#define LOG__SEG_VERSION   1u
#define LOG__SEG_HDR       32u             /* segment header bytes */
#define LOG__REC_HDR       32u             /* record header bytes */
#define LOG__SEG_NAME_LEN  28u             /* "seg-" + 20 digits + ".log" */
/* Highest first_lsn a segment header may carry: keeps lsn + 1 from wrapping
 * however many records follow. */
#define LOG__MAX_FIRST_LSN (UINT64_C(1) << 62)

struct log__seg {
    uint64_t first_lsn;
    uint64_t size;         /* durable bytes; for the current segment see log_store.durable_off */
    char    *path;         /* owned */
};

/* A decoded record header. */
struct log__rec {
    uint64_t check;
    uint64_t lsn;
    uint32_t len;
    uint16_t type;
    uint16_t partition;
    uint32_t flags;
    uint32_t reserved;
};

struct log_store {
    char    *dir;                  /* owned */
    uint64_t segment_bytes;
    log_io   io;                   /* copy of opts->io, or the real calls */

    struct log__seg *segs;         /* oldest first; the last one is current */
    size_t   nsegs, segs_cap;
    uint64_t closed_bytes;         /* sum of sizes of every segment but the current */

    int      fd;                   /* current segment, O_RDWR, file offset == written_off */
    uint64_t durable_off;          /* truncate-back point: end of the last synced record
                                      (the header, for a segment created since then) */
    uint64_t written_off;          /* bytes successfully written (>= durable_off) */

    uint64_t next_lsn;             /* lsn the next append gets */
    uint64_t durable_lsn;          /* highest synced lsn (0: none) */
    bool     tail_txn_end;         /* the last appended record had LOG_F_TXN_END */
    bool     durable_txn_end;      /* ... and the last synced one */
    bool     need_roll;            /* start a new segment before writing the next group */
    bool     seg_unsynced;         /* current segment created since the last sync: fsync dir too */
    bool     failed;               /* sticky: an fsync failed */

    bool     group_failed;         /* an early write of the current group failed */
    jd_err   group_err;            /* ... and why: log_sync reports it */

    uint8_t *gbuf;                 /* the group: encoded records not yet written */
    size_t   glen, gcap;
};

/* ---- codec (segment.c) ---- */
static inline uint64_t log__rec_bytes(uint32_t len)
{
    return LOG__REC_HDR + (((uint64_t)len + 7) & ~UINT64_C(7));
}
void log__seg_hdr_encode(uint8_t out[LOG__SEG_HDR], uint64_t first_lsn);
/* Checks the header at p (n bytes in the file); false with *why on a bad one. */
bool log__seg_hdr_decode(const uint8_t *p, uint64_t n, uint64_t *first_lsn,
                         char *why, size_t whyn);
/* Writes log__rec_bytes(len) bytes at out. */
void log__rec_encode(uint8_t *out, uint64_t lsn, uint16_t type, uint16_t partition,
                     uint32_t flags, const void *body, uint32_t len);
/* Checks the record at p[off] of an n-byte image: room, length limit, checksum,
 * lsn == expect_lsn. false with *why on the first failing check. */
bool log__rec_decode(const uint8_t *p, uint64_t n, uint64_t off, uint64_t expect_lsn,
                     struct log__rec *r, char *why, size_t whyn);

/* ---- segment files (segment.c) ---- */
char *log__seg_path(const char *dir, uint64_t first_lsn);   /* returns owned */
/* Writes all n bytes through l->io (EINTR and short writes retried); -1 and errno on failure. */
int  log__write_all(log_store *l, int fd, const void *p, size_t n);
/* Creates segment first_lsn with its header and makes it current (closing the
 * previous one). Not synced: sets seg_unsynced. */
int  log__seg_start(log_store *l, uint64_t first_lsn, jd_err *err);
/* Makes the current segment and the directory durable (used at open). */
int  log__seg_sync_now(log_store *l, jd_err *err);
/* Scans the directory, repairs a torn tail, fills l and *rec. */
int  log__recover(log_store *l, log_recovery *rec, jd_err *err);

#endif
