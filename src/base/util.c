/* src/base/util.c -- hashing, randomness (an edge), secrets, the MPSC queue, files. */
#include "journeyd/base.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

uint64_t jd_hash64(const void *p, size_t n) { return XXH3_64bits(p, n); }
uint64_t jd_hash64_seed(const void *p, size_t n, uint64_t seed) { return XXH3_64bits_withSeed(p, n, seed); }

void jd_random_bytes(void *out, size_t n)
{
    if (RAND_bytes(out, (int)n) != 1) {
        fprintf(stderr, "journeyd: no random bytes available\n");
        abort();
    }
}

void jd_uuid4(char out[37])
{
    unsigned char r[16];
    jd_random_bytes(r, sizeof r);
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
             r[13], r[14], r[15]);
}

bool jd_secret_eq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn) return false;
    return CRYPTO_memcmp(a, b, an) == 0;
}

/* ---- queue -------------------------------------------------------------- */

void jd_queue_init(jd_queue *q)
{
    pthread_mutex_init(&q->_mu, NULL);
    pthread_cond_init(&q->_cv, NULL);
    q->_head = q->_tail = NULL;
    q->_len = 0;
    q->_closed = false;
}

void jd_queue_release(jd_queue *q)
{
    pthread_mutex_destroy(&q->_mu);
    pthread_cond_destroy(&q->_cv);
}

bool jd_queue_push(jd_queue *q, jd_qnode *n)
{
    n->next = NULL;
    pthread_mutex_lock(&q->_mu);
    if (q->_closed) {
        pthread_mutex_unlock(&q->_mu);
        return false;
    }
    bool was_empty = q->_head == NULL;
    if (q->_tail) q->_tail->next = n; else q->_head = n;
    q->_tail = n;
    q->_len++;
    pthread_mutex_unlock(&q->_mu);
    /* Only an empty->non-empty change can have a sleeping consumer. */
    if (was_empty) pthread_cond_signal(&q->_cv);
    return true;
}

jd_qnode *jd_queue_pop_all(jd_queue *q, int timeout_ms)
{
    pthread_mutex_lock(&q->_mu);
    if (!q->_head && !q->_closed && timeout_ms != 0) {
        if (timeout_ms < 0) {
            while (!q->_head && !q->_closed) pthread_cond_wait(&q->_cv, &q->_mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += timeout_ms / 1000;
            ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            while (!q->_head && !q->_closed)
                if (pthread_cond_timedwait(&q->_cv, &q->_mu, &ts) == ETIMEDOUT) break;
        }
    }
    jd_qnode *all = q->_head;
    q->_head = q->_tail = NULL;
    q->_len = 0;
    pthread_mutex_unlock(&q->_mu);
    return all;
}

void jd_queue_close(jd_queue *q)
{
    pthread_mutex_lock(&q->_mu);
    q->_closed = true;
    pthread_mutex_unlock(&q->_mu);
    pthread_cond_broadcast(&q->_cv);
}

bool jd_queue_closed(jd_queue *q)
{
    pthread_mutex_lock(&q->_mu);
    bool c = q->_closed;
    pthread_mutex_unlock(&q->_mu);
    return c;
}

size_t jd_queue_len(jd_queue *q)
{
    pthread_mutex_lock(&q->_mu);
    size_t n = q->_len;
    pthread_mutex_unlock(&q->_mu);
    return n;
}

/* ---- files -------------------------------------------------------------- */

int jd_mkdir_p(const char *path, jd_err *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return jd_err_set(err, JD_EINVAL, path, "path too long");
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return jd_err_errno(err, tmp, "cannot create directory");
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return jd_err_errno(err, tmp, "cannot create directory");
    return JD_OK;
}

int jd_fsync_dir(const char *dir, jd_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return jd_err_errno(err, dir, "cannot open directory");
    int rc = fsync(fd) == 0 ? JD_OK : jd_err_errno(err, dir, "cannot fsync directory");
    close(fd);
    return rc;
}

int jd_write_file_atomic(const char *path, const void *data, size_t n, jd_err *err)
{
    int rc = JD_EIO, fd = -1;
    char *tmp = jd_strfmt("%s.tmp", path);
    char *dir = jd_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0'; else { free(dir); dir = jd_xstrdup("."); }

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { jd_err_errno(err, tmp, "cannot create file"); goto out; }
    const char *p = data;
    size_t left = n;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            jd_err_errno(err, tmp, "cannot write");
            goto out;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) { jd_err_errno(err, tmp, "cannot fsync"); goto out; }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) { jd_err_errno(err, path, "cannot rename into place"); goto out; }
    rc = jd_fsync_dir(dir, err);
out:
    if (fd >= 0) close(fd);
    if (rc != JD_OK) unlink(tmp);
    free(tmp);
    free(dir);
    return rc;
}

int jd_read_file(const char *path, size_t max, char **out, size_t *len, jd_err *err)
{
    int rc = JD_EIO;
    jd_buf b;
    jd_buf_init(&b, max);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) { rc = jd_err_set(err, JD_ENOTFOUND, path, "no such file"); goto out; }
        jd_err_errno(err, path, "cannot open");
        goto out;
    }
    char chunk[65536];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0) {
            if (errno == EINTR) continue;
            jd_err_errno(err, path, "cannot read");
            goto out;
        }
        if (r == 0) break;
        if (jd_buf_add(&b, chunk, (size_t)r) != JD_OK) {
            rc = jd_err_set(err, JD_ELIMIT, path, "file is larger than %zu bytes", max);
            goto out;
        }
    }
    if (!b.data) jd_buf_add(&b, "", 0);
    *out = jd_buf_detach(&b, len);
    rc = JD_OK;
out:
    if (fd >= 0) close(fd);
    jd_buf_release(&b);
    return rc;
}
