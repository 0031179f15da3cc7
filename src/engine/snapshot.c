/*
** src/engine/snapshot.c -- consistent snapshots at one lsn, and loading them.
**
** Layout under <data>/snapshot/:
**   CURRENT              "<lsn>\n": the snapshot to load (written last, atomically)
**   snap-<lsn>/p-NNNN    one file per partition (its profiles)
**   snap-<lsn>/dedupe    the messageId window
**   tmp-<lsn>/           a snapshot being written; ignored and removed at start
**
** How a cut is taken without stopping ingest: right after dispatching every
** record up to lsn X, the committer copies the dedupe window (its own state)
** into the job and pushes SM_SNAPSHOT to every shard. Queues are FIFO, so each
** shard writes its partitions exactly as of X; shard 0 also writes the dedupe
** copy, so no file is written or fsynced on the acknowledging thread but the
** few of the seal. When the last shard is done, the committer
** renames tmp-X to snap-X, writes CURRENT, removes older snapshots and trims
** log segments wholly below X.
**
** Invariants:
**  (1) CURRENT only ever names a complete, fsynced snapshot directory.
**  (2) Every file carries a header with its partition, lsn and an XXH3 checksum
**      of the payload; loading checks them all (disk is input).
*/
#include "engine_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Format 4 added the tasks: partition files hold u64 profile bytes |
 * profiles | u64 journey-state bytes | journey state | u64 outbox bytes |
 * the outbox (JSON, outbox.c) | the tasks (JSON, tasks.c). Format 3 (the
 * same up to the journey state, then the outbox as the rest), format 2 (u64
 * profile bytes | profiles | journey state; a "journeys" file holds the
 * registry) and format 1 (profiles only) still load. */
#define SNAP_MAGIC "JDSNAP04"
#define SNAP_MAGIC_V3 "JDSNAP03"
#define SNAP_MAGIC_V2 "JDSNAP02"
#define SNAP_MAGIC_V1 "JDSNAP01"

typedef struct snap_hdr {
    char     magic[8];
    uint64_t lsn;
    uint64_t len;          /* payload bytes */
    uint64_t check;        /* XXH3-64 of the payload */
    uint32_t partition;    /* UINT32_MAX for the dedupe file */
    uint32_t reserved;
} snap_hdr;

static int write_snap_file(const char *path, uint64_t lsn, uint32_t partition, const jd_buf *payload, jd_err *err)
{
    snap_hdr h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, SNAP_MAGIC, 8);
    h.lsn = lsn;
    h.len = payload->len;
    h.check = jd_hash64(payload->data ? payload->data : "", payload->len);
    h.partition = partition;
    jd_buf file;
    jd_buf_init(&file, SIZE_MAX);
    jd_buf_add(&file, &h, sizeof h);
    jd_buf_add(&file, payload->data ? payload->data : "", payload->len);
    int rc = jd_write_file_atomic(path, file.data, file.len, err);
    jd_buf_release(&file);
    return rc;
}

static int read_snap_file(const char *path, uint64_t lsn, uint32_t partition, char **data, const char **payload,
                          size_t *len, int *format, jd_err *err)
{
    size_t n;
    int rc = jd_read_file(path, SIZE_MAX / 2, data, &n, err);
    if (rc != JD_OK) return rc == JD_ENOTFOUND ? jd_err_set(err, JD_ECORRUPT, path, "snapshot file is missing") : rc;
    snap_hdr h;
    if (n < sizeof h) return jd_err_set(err, JD_ECORRUPT, path, "snapshot file is truncated");
    memcpy(&h, *data, sizeof h);
    if (memcmp(h.magic, SNAP_MAGIC, 8) == 0) *format = 4;
    else if (memcmp(h.magic, SNAP_MAGIC_V3, 8) == 0) *format = 3;
    else if (memcmp(h.magic, SNAP_MAGIC_V2, 8) == 0) *format = 2;
    else if (memcmp(h.magic, SNAP_MAGIC_V1, 8) == 0) *format = 1;
    else return jd_err_set(err, JD_ECORRUPT, path, "not a snapshot file");
    if (h.lsn != lsn || h.partition != partition)
        return jd_err_set(err, JD_ECORRUPT, path, "snapshot file belongs to lsn %llu partition %u",
                          (unsigned long long)h.lsn, h.partition);
    if (h.len != n - sizeof h) return jd_err_set(err, JD_ECORRUPT, path, "snapshot file is truncated");
    if (jd_hash64(*data + sizeof h, h.len) != h.check)
        return jd_err_set(err, JD_ECORRUPT, path, "snapshot checksum mismatch");
    *payload = *data + sizeof h;
    *len = h.len;
    return JD_OK;
}

/* Removes a directory's files and the directory (snapshot dirs are flat). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *p = jd_strfmt("%s/%s", dir, de->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

/* ---- taking a snapshot --------------------------------------------------- */

void eng__snapshot_write_parts(eng *e, uint32_t shard, snap_job *job)
{
    jd_err err;
    int rc = JD_OK;
    jd_buf buf;
    jd_buf_init(&buf, SIZE_MAX);
    if (shard == 0) {
        /* The committer's part: writing (and fsyncing) it here keeps that I/O
         * off the thread that acknowledges requests. */
        char *path = jd_strfmt("%s/dedupe", job->tmp_dir);
        rc = write_snap_file(path, job->lsn, UINT32_MAX, &job->dedupe, &err);
        free(path);
        jd_buf_release(&job->dedupe);
        /* Every shard's registry is the same; shard 0's is written. */
        jrn_reg_encode(e->regs[0], &buf);
        path = jd_strfmt("%s/journeys", job->tmp_dir);
        if (rc == JD_OK) rc = write_snap_file(path, job->lsn, UINT32_MAX - 1, &buf, &err);
        free(path);
    }
    for (uint32_t p = shard; p < e->nparts && rc == JD_OK; p += e->nshards) {
        jd_buf_reset(&buf);
        uint64_t zero = 0;
        jd_buf_add(&buf, &zero, sizeof zero);
        prof_store_encode(e->parts[p].profiles, &buf);
        uint64_t plen = buf.len - sizeof zero;
        memcpy(buf.data, &plen, sizeof plen);   /* little-endian hosts only, like the rest of the format */
        size_t hat = buf.len;
        jd_buf_add(&buf, &zero, sizeof zero);
        jrn_host_encode(e->parts[p].host, &buf);
        uint64_t hlen = buf.len - hat - sizeof zero;
        memcpy(buf.data + hat, &hlen, sizeof hlen);
        size_t oat = buf.len;
        jd_buf_add(&buf, &zero, sizeof zero);
        eng__outbox_encode(&e->parts[p], &buf);
        uint64_t olen = buf.len - oat - sizeof zero;
        memcpy(buf.data + oat, &olen, sizeof olen);
        eng__tasks_encode(&e->parts[p], &buf);
        char *path = jd_strfmt("%s/p-%04u", job->tmp_dir, p);
        rc = write_snap_file(path, job->lsn, p, &buf, &err);
        free(path);
    }
    jd_buf_release(&buf);
    eng__countdown_done(&job->cd, rc, rc == JD_OK ? NULL : &err);
}

void eng__snapshot_begin(eng *e)
{
    JD_ASSERT(!e->snap);
    uint64_t lsn = log_durable_lsn(e->log);
    if (lsn == 0) return;
    jd_err err;
    snap_job *job = jd_xcalloc(1, sizeof *job);
    job->lsn = lsn;
    job->tmp_dir = jd_strfmt("%s/tmp-%llu", e->snap_dir, (unsigned long long)lsn);
    remove_dir(job->tmp_dir);
    if (jd_mkdir_p(job->tmp_dir, &err) != JD_OK) goto fail;
    /* The committer's own part, at the same cut: copied now (a memory copy),
     * written by shard 0 (eng__snapshot_write_parts). */
    jd_buf_init(&job->dedupe, SIZE_MAX);
    ingest_dedupe_encode(e->dedupe, &job->dedupe);
    atomic_store_explicit(&e->st_idn_links, idn_entries(e->dir), memory_order_relaxed);
    eng__countdown_init(&job->cd, e->nshards);
    for (uint32_t s = 0; s < e->nshards; s++) {
        shard_snap *m = jd_xcalloc(1, sizeof *m);
        m->m.kind = SM_SNAPSHOT;
        m->job = job;
        eng__shard_push(e, s, &m->m);
    }
    e->snap = job;
    e->since_snapshot = 0;
    return;
fail:
    jd_error("snapshot at lsn %llu failed: %s%s%s", (unsigned long long)lsn, err.msg, err.where[0] ? " at " : "", err.where);
    remove_dir(job->tmp_dir);
    free(job->tmp_dir);
    free(job);
    e->since_snapshot = 0;   /* retry after another snapshot_every records */
}

static void seal(eng *e, snap_job *job)
{
    jd_err err;
    int rc = eng__countdown_wait(&job->cd, &err);
    char *final = jd_strfmt("%s/snap-%llu", e->snap_dir, (unsigned long long)job->lsn);
    if (rc == JD_OK && (rc = jd_fsync_dir(job->tmp_dir, &err)) == JD_OK) {
        remove_dir(final);
        if (rename(job->tmp_dir, final) != 0) rc = jd_err_errno(&err, final, "cannot rename snapshot into place");
    }
    if (rc == JD_OK) rc = jd_fsync_dir(e->snap_dir, &err);
    if (rc == JD_OK) {
        char line[32];
        int n = snprintf(line, sizeof line, "%llu\n", (unsigned long long)job->lsn);
        char *cur = jd_strfmt("%s/CURRENT", e->snap_dir);
        rc = jd_write_file_atomic(cur, line, (size_t)n, &err);
        free(cur);
    }
    if (rc == JD_OK) {
        /* Older snapshots and stray temporary folders go; so do log segments
         * that lie wholly below the new cut. */
        DIR *d = opendir(e->snap_dir);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (strncmp(de->d_name, "snap-", 5) && strncmp(de->d_name, "tmp-", 4)) continue;
            char *p = jd_strfmt("%s/%s", e->snap_dir, de->d_name);
            if (strcmp(p, final) != 0) remove_dir(p);
            free(p);
        }
        if (d) closedir(d);
        int trimmed = log_trim(e->log, job->lsn + 1, &err);
        atomic_fetch_add(&e->st_snapshots, 1);
        atomic_store(&e->st_snapshot_lsn, job->lsn);
        jd_info("snapshot written at lsn %llu%s", (unsigned long long)job->lsn,
                trimmed > 0 ? ", old log segments removed" : "");
    } else {
        jd_error("snapshot at lsn %llu failed: %s%s%s", (unsigned long long)job->lsn, err.msg,
                 err.where[0] ? " at " : "", err.where);
        remove_dir(job->tmp_dir);
    }
    free(final);
    eng__countdown_release(&job->cd);
    free(job->tmp_dir);
    free(job);
}

void eng__snapshot_poll(eng *e, bool wait)
{
    snap_job *job = e->snap;
    if (!job) return;
    if (!wait && !eng__countdown_finished(&job->cd)) return;
    e->snap = NULL;
    seal(e, job);
}

/* ---- loading ------------------------------------------------------------- */

/* After a refused group (route.c invariant 2): the profiles of snapshot lsn,
 * decoded one partition at a time into a scratch store, give the directory
 * as it was at lsn. Rare (a full disk), so simplicity wins over speed. */
int eng__snapshot_load_directory(eng *e, uint64_t lsn, jd_err *err)
{
    int rc = JD_OK;
    for (uint32_t p = 0; p < e->nparts && rc == JD_OK; p++) {
        char *path = jd_strfmt("%s/snap-%llu/p-%04u", e->snap_dir, (unsigned long long)lsn, p), *data = NULL;
        const char *payload;
        size_t len;
        int format = 0;
        rc = read_snap_file(path, lsn, p, &data, &payload, &len, &format, err);
        prof_store *s = prof_store_create(&e->o.prof);
        uint64_t plen = len;
        if (rc == JD_OK && format >= 2) {
            if (len >= sizeof plen) memcpy(&plen, payload, sizeof plen);
            if (len < sizeof plen || plen > len - sizeof plen)
                rc = jd_err_set(err, JD_ECORRUPT, path, "profile length past the file");
            payload += sizeof plen;
        }
        if (rc == JD_OK) rc = prof_store_decode(s, payload, (size_t)plen, err);
        if (rc == JD_OK) eng__route_link_store(e, s);
        prof_store_destroy(s);
        free(data);
        free(path);
    }
    atomic_store_explicit(&e->st_idn_links, idn_entries(e->dir), memory_order_relaxed);
    return rc;
}

int eng__snapshot_load(eng *e, uint64_t *lsn_out, jd_err *err)
{
    int rc = JD_OK;
    char *cur = jd_strfmt("%s/CURRENT", e->snap_dir), *text = NULL, *dir = NULL, *data = NULL;
    size_t n;
    *lsn_out = 0;
    /* Half-written snapshots from a crash are never loaded. */
    DIR *d = opendir(e->snap_dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strncmp(de->d_name, "tmp-", 4)) continue;
        char *p = jd_strfmt("%s/%s", e->snap_dir, de->d_name);
        remove_dir(p);
        free(p);
    }
    if (d) closedir(d);

    rc = jd_read_file(cur, 64, &text, &n, err);
    if (rc == JD_ENOTFOUND) { rc = JD_OK; goto out; }
    if (rc != JD_OK) goto out;
    char *end;
    unsigned long long lsn = strtoull(text, &end, 10);
    if (end == text || (*end && *end != '\n')) { rc = jd_err_set(err, JD_ECORRUPT, cur, "unreadable CURRENT"); goto out; }
    dir = jd_strfmt("%s/snap-%llu", e->snap_dir, lsn);

    const char *payload;
    size_t len;
    int format = 0, jformat = 0;
    char *path = jd_strfmt("%s/dedupe", dir);
    rc = read_snap_file(path, lsn, UINT32_MAX, &data, &payload, &len, &format, err);
    if (rc == JD_OK) rc = ingest_dedupe_decode(e->dedupe, payload, len, err);
    free(path);
    free(data);
    data = NULL;
    if (rc != JD_OK) goto out;
    if (format >= 2) {
        path = jd_strfmt("%s/journeys", dir);
        rc = read_snap_file(path, lsn, UINT32_MAX - 1, &data, &payload, &len, &jformat, err);
        for (uint32_t s = 0; s < e->nshards && rc == JD_OK; s++) rc = jrn_reg_decode(e->regs[s], payload, len, err);
        if (rc != JD_OK && !err->where[0]) snprintf(err->where, sizeof err->where, "%s", path);
        free(path);
        free(data);
        data = NULL;
        if (rc != JD_OK) goto out;
    }
    for (uint32_t p = 0; p < e->nparts; p++) {
        path = jd_strfmt("%s/p-%04u", dir, p);
        rc = read_snap_file(path, lsn, p, &data, &payload, &len, &format, err);
        if (rc == JD_OK && format == 1) {
            rc = prof_store_decode(e->parts[p].profiles, payload, len, err);
        } else if (rc == JD_OK) {
            uint64_t plen = 0;
            if (len >= sizeof plen) memcpy(&plen, payload, sizeof plen);
            if (len < sizeof plen || plen > len - sizeof plen)
                rc = jd_err_set(err, JD_ECORRUPT, "", "profile length %llu past the file", (unsigned long long)plen);
            if (rc == JD_OK) rc = prof_store_decode(e->parts[p].profiles, payload + 8, (size_t)plen, err);
            const char *rest = payload + 8 + plen;
            size_t rlen = len - 8 - (size_t)plen, hlen = rlen;
            if (rc == JD_OK && format >= 3) {   /* u64 host bytes | host | outbox */
                uint64_t h64 = 0;
                if (rlen >= sizeof h64) memcpy(&h64, rest, sizeof h64);
                if (rlen < sizeof h64 || h64 > rlen - sizeof h64)
                    rc = jd_err_set(err, JD_ECORRUPT, "", "journey state length %llu past the file", (unsigned long long)h64);
                rest += sizeof h64;
                rlen -= sizeof h64;
                hlen = (size_t)h64;
            }
            if (rc == JD_OK) rc = jrn_host_decode(e->parts[p].host, rest, hlen, err);
            const char *ob = rest + hlen;
            size_t olen = rlen - hlen, tlen = 0;
            if (rc == JD_OK && format >= 4) {   /* u64 outbox bytes | outbox | tasks */
                uint64_t o64 = 0;
                if (olen >= sizeof o64) memcpy(&o64, ob, sizeof o64);
                if (olen < sizeof o64 || o64 > olen - sizeof o64)
                    rc = jd_err_set(err, JD_ECORRUPT, "", "outbox length %llu past the file", (unsigned long long)o64);
                else {
                    ob += sizeof o64;
                    tlen = olen - sizeof o64 - (size_t)o64;
                    olen = (size_t)o64;
                }
            }
            if (rc == JD_OK && format >= 3) rc = eng__outbox_decode(&e->parts[p], ob, olen, err);
            if (rc == JD_OK && format >= 4) rc = eng__tasks_decode(&e->parts[p], ob + olen, tlen, err);
        }
        if (rc != JD_OK && !err->where[0]) snprintf(err->where, sizeof err->where, "%s", path);
        free(path);
        free(data);
        data = NULL;
        if (rc != JD_OK) goto out;
        e->parts[p].snap_lsn = lsn;
    }
    for (uint32_t p = 0; p < e->nparts; p++) eng__route_link_store(e, e->parts[p].profiles);   /* route.c (4) */
    atomic_store_explicit(&e->st_idn_links, idn_entries(e->dir), memory_order_relaxed);
    *lsn_out = lsn;
out:
    free(cur);
    free(text);
    free(dir);
    return rc;
}
