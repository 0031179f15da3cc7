/* include/journeyd/log.h -- the durable record log.
 *
 * The log is the system of record (DESIGN.md: state is a function of the log).
 * One log per node holds the records of every partition, each tagged with its
 * partition and a log sequence number (lsn, dense, starting at 1); a partition's
 * records are the subsequence with its tag, so per-partition order is log order.
 * Records are grouped into transactions: the last record of a transaction has
 * LOG_F_TXN_END, and recovery never exposes a transaction without its end, so a
 * batch of events is stored whole or not at all.
 *
 * A record may be acknowledged to a client only after log_sync() returned JD_OK
 * for a call made after its log_append() (group commit: many appends, one fsync).
 *
 * Threading: a log_store belongs to the thread that opened it (the committer).
 * Not here: what record bodies mean. The log stores bytes. docs/internals/log.md
 * has the byte layout.
 */
#ifndef JOURNEYD_LOG_H
#define JOURNEYD_LOG_H

#include "journeyd/base.h"

typedef struct log_store log_store;   /* opaque */

#define LOG_F_TXN_END 0x1u

/* Where the log does its I/O; tests replace it to inject ENOSPC or EIO.
 * NULL in log_opts means the real system calls. */
typedef struct log_io {
    ssize_t (*write)(void *self, int fd, const void *p, size_t n);
    int     (*fdatasync)(void *self, int fd);
    void    *self;
} log_io;

typedef struct log_opts {
    uint64_t segment_bytes;    /* roll to a new segment file past this (log.segment_bytes) */
    const log_io *io;          /* NULL: real I/O */
} log_opts;

/* A record as read back. body is valid only during the callback. */
typedef struct log_rec {
    uint64_t    lsn;
    uint16_t    type;
    uint16_t    partition;
    uint32_t    flags;
    const void *body;
    uint32_t    len;
} log_rec;

/* What log_open() found and repaired. */
typedef struct log_recovery {
    uint64_t first_lsn;        /* oldest lsn still on disk (0: empty log) */
    uint64_t next_lsn;         /* the lsn the next append gets */
    uint64_t records;          /* valid records found */
    uint32_t segments;
    uint64_t truncated_bytes;  /* torn tail removed (0: clean) */
    uint64_t dropped_records;  /* whole records dropped with it (an unfinished transaction) */
    char     torn_at[160];     /* "data/log/seg-...log at byte 1234: record checksum mismatch" */
} log_recovery;

/* Opens or creates the log in dir (created if missing). Scans every segment:
 * a bad record (short, bad length, checksum mismatch, lsn gap) in the LAST
 * segment is a torn tail: the file is truncated back to the end of the last
 * complete transaction and *rec says where and how much. The same in an earlier
 * segment is JD_ECORRUPT with err->where "<file> at byte N" (the operator
 * decides; journeyd does not throw data away in the middle of the log).
 * Returns owned *out (log_close). rec may be NULL. */
int log_open(log_store **out, const char *dir, const log_opts *o,
             log_recovery *rec, jd_err *err);

/* Adds a record to the current group and sets *lsn (may be NULL). Not durable
 * until log_sync(). May write() (not fsync) when the group buffer is large.
 * JD_ELIMIT if len > JD_MAX_RECORD_BYTES; JD_EIO if the log has failed (see
 * log_sync). The body is copied. */
int log_append(log_store *l, uint16_t type, uint16_t partition, uint32_t flags,
               const void *body, uint32_t len, uint64_t *lsn);

/* Writes the group and fsyncs it (segment file, and the directory when a new
 * segment was created). JD_OK: every record appended so far is durable.
 * On a write error (ENOSPC, EFBIG, EDQUOT) the group is discarded: the file is
 * truncated back to the last durable byte and the lsns are reused; returns
 * JD_EIO with the reason, and later groups may succeed once space is back.
 * On an fsync error the page cache can no longer be trusted (the 2018
 * "fsyncgate" lesson), so the log becomes failed: this and every later
 * append/sync returns JD_EIO until restart, and log_failed() is true. */
int log_sync(log_store *l, jd_err *err);

/* Drops the records appended since the last successful log_sync() without
 * writing them (the committer uses it to refuse a group it cannot take). */
void log_discard_group(log_store *l);

uint64_t log_next_lsn(const log_store *l);    /* the lsn the next append gets */
uint64_t log_durable_lsn(const log_store *l); /* highest lsn made durable (0: none) */
bool     log_failed(const log_store *l);
uint64_t log_bytes(const log_store *l);       /* bytes on disk in all segments */

/* Calls fn for every durable record with lsn >= from_lsn, in order, stopping
 * early (and returning fn's value) when fn returns non-zero. Reads segment
 * files (mmap), so it may be called while appends go on in the same thread;
 * records appended but not yet synced are not visited. */
int log_replay(log_store *l, uint64_t from_lsn,
               int (*fn)(void *ctx, const log_rec *r), void *ctx, jd_err *err);

/* Deletes whole segment files all of whose records have lsn < before_lsn
 * (never the segment being written). Returns the number of files removed
 * (>= 0) or an error. */
int log_trim(log_store *l, uint64_t before_lsn, jd_err *err);

/* Closes files. Does not sync: call log_sync() first for a clean shutdown. */
void log_close(log_store *l);

#endif
