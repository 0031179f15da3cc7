/* include/journeyd/base.h -- the ground every module stands on.
 *
 * Owns: error codes and jd_err, the out-of-memory policy (jd_x* abort), bounded
 * buffers, diagnostic logging, clocks (real and virtual), time text (RFC 3339),
 * hashing, the MPSC queue threads talk through, and small file-system helpers.
 * Threading: everything here is safe from any thread; a jd_buf or jd_vclock
 * belongs to its creator; jd_queue is the one object meant to be shared.
 * Not here: anything that knows about events, profiles or journeys.
 */
#ifndef JOURNEYD_BASE_H
#define JOURNEYD_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

/* ---- errors ------------------------------------------------------------ */

enum {
    JD_OK = 0,
    JD_EINVAL = -1,    /* input is wrong: jd_err says what and where */
    JD_EIO = -2,       /* the OS refused (write, fsync, open) */
    JD_ECORRUPT = -3,  /* bytes read back from disk fail a check */
    JD_ELIMIT = -4,    /* a configured ceiling was hit: the message names it */
    JD_ENOTFOUND = -5,
    JD_EBUSY = -6,     /* try again later (queue full, shutting down) */
    JD_EAUTH = -7,     /* missing or wrong credentials */
};

typedef struct jd_err {
    int  code;
    char where[96];    /* "journeys/welcome.yaml:14:9", "batch[3].properties" */
    char msg[192];     /* lowercase, problem first, no full stop */
} jd_err;

/* Fills err (if not NULL) and returns code, so callers can `return jd_err_set(...)`. */
int jd_err_set(jd_err *err, int code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* As jd_err_set with ": strerror(errno)" appended; code is JD_EIO. */
int jd_err_errno(jd_err *err, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void jd_err_clear(jd_err *err);
const char *jd_strerror(int code);   /* "invalid input", "limit reached", ... */

/* ---- memory: one policy, allocation failure aborts (STYLE part D) ------- */

void *jd_xmalloc(size_t n);
void *jd_xcalloc(size_t count, size_t size);
void *jd_xrealloc(void *p, size_t n);
char *jd_xstrdup(const char *s);
char *jd_xstrndup(const char *s, size_t n);
/* Large zeroed tables that fill slowly (the dedupe window): pages come from the
 * OS already zero and cost memory only once touched, where calloc in an
 * allocator may clear them up front. Aborts on failure; free with jd_unmap_zero. */
void *jd_xmap_zero(size_t n);
void  jd_unmap_zero(void *p, size_t n);
/* Returns owned, freed with free(). */
char *jd_strfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- bounded buffer ---------------------------------------------------- */

typedef struct jd_buf {
    char  *data;       /* read-only; NUL-terminated after every add */
    size_t len;        /* read-only */
    size_t cap;        /* _private: allocated bytes */
    size_t max;        /* read-only: ceiling given at init */
} jd_buf;

void jd_buf_init(jd_buf *b, size_t max);
/* JD_ELIMIT when len + n would pass max; nothing is added then. */
int  jd_buf_add(jd_buf *b, const void *p, size_t n);
int  jd_buf_addf(jd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int  jd_buf_adds(jd_buf *b, const char *s);
/* Appends s as a JSON string literal (quotes and escapes). */
int  jd_buf_add_json_str(jd_buf *b, const char *s, size_t n);
void jd_buf_reset(jd_buf *b);
void jd_buf_release(jd_buf *b);
/* Hands the bytes to the caller: returns owned (free()), leaves b empty. */
char *jd_buf_detach(jd_buf *b, size_t *len);

/* ---- diagnostic logging (stderr, one line an event; `log_` is the record log) */

typedef enum { JD_LOG_DEBUG, JD_LOG_INFO, JD_LOG_WARN, JD_LOG_ERROR } jd_log_level;
void jd_log_set_level(jd_log_level lvl);
int  jd_log_parse_level(const char *s, jd_log_level *out);
void jd_logf(jd_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define jd_debug(...) jd_logf(JD_LOG_DEBUG, __VA_ARGS__)
#define jd_info(...)  jd_logf(JD_LOG_INFO, __VA_ARGS__)
#define jd_warn(...)  jd_logf(JD_LOG_WARN, __VA_ARGS__)
#define jd_error(...) jd_logf(JD_LOG_ERROR, __VA_ARGS__)

/* ---- clocks: time is an input (DESIGN.md) --------------------------------
 * Only edges (ingest stamping receivedAt, the tick source) read the real clock;
 * everything else gets time from records. Microseconds since the Unix epoch. */

typedef struct jd_clock {
    uint64_t (*now_us)(void *self);
    void *self;
} jd_clock;

extern const jd_clock jd_clock_real;   /* CLOCK_REALTIME */
static inline uint64_t jd_clock_now(const jd_clock *c) { return c->now_us(c->self); }
uint64_t jd_monotonic_ns(void);        /* for measuring durations only */

typedef struct jd_vclock {
    jd_clock clock;     /* public: pass &vc.clock */
    uint64_t _now_us;
} jd_vclock;
void jd_vclock_init(jd_vclock *vc, uint64_t start_us);
void jd_vclock_set(jd_vclock *vc, uint64_t now_us);
void jd_vclock_advance(jd_vclock *vc, uint64_t delta_us);

/* The real clock plus an offset that only grows (`clock.travel`,
 * docs/operations.md): a staging server or an end-to-end test jumps forward
 * in time ("three days later") without waiting. The offset is the one value
 * the clock's readers (the edges) share across threads: read and grown
 * atomically. Owned by whoever starts the server; it must outlive readers. */
typedef struct jd_travel_clock {
    jd_clock clock;     /* public: pass &tc.clock */
    int64_t  _offset_us;
} jd_travel_clock;
void jd_travel_init(jd_travel_clock *tc);
/* Moves the clock forward by by_us; returns the new offset. */
int64_t jd_travel_advance(jd_travel_clock *tc, uint64_t by_us);
int64_t jd_travel_offset(const jd_travel_clock *tc);

#define JD_SEC  UINT64_C(1000000)
#define JD_MIN  (60 * JD_SEC)
#define JD_HOUR (60 * JD_MIN)
#define JD_DAY  (24 * JD_HOUR)

/* RFC 3339 / ISO 8601 with an offset or Z, fractional seconds optional.
 * JD_EINVAL on anything else. Years 1970..9999. */
int  jd_time_parse(const char *s, size_t n, int64_t *out_us);
/* Writes "2026-11-23T12:00:00.123Z" (millisecond precision, UTC), returns length. */
#define JD_TIME_TEXT 32
size_t jd_time_format(int64_t us, char out[JD_TIME_TEXT]);

/* The proleptic Gregorian calendar (Howard Hinnant's algorithms): days since
 * 1970-01-01 for a civil date, and back. Any year; month 1..12. Pure. */
int64_t jd_days_from_civil(int64_t y, unsigned m, unsigned d);
void    jd_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/* Durations in config: "24h", "90s", "500ms", "7d", "1h30m". */
int  jd_duration_parse(const char *s, uint64_t *out_us);
/* Sizes in config: "32KB", "500KiB", "64MB", "1048576". KB=1000, KiB=1024. */
int  jd_size_parse(const char *s, uint64_t *out);

/* ---- hashing and randomness -------------------------------------------- */

uint64_t jd_hash64(const void *p, size_t n);               /* XXH3-64 */
uint64_t jd_hash64_seed(const void *p, size_t n, uint64_t seed);
/* Cryptographic random bytes (OpenSSL). An edge function: callers record
 * what they draw into the log. Aborts if the OS has no entropy. */
void jd_random_bytes(void *out, size_t n);
/* A random RFC 4122 version 4 UUID, lowercase, 36 chars + NUL. */
void jd_uuid4(char out[37]);
/* Constant-time equality for secrets. */
bool jd_secret_eq(const char *a, size_t an, const char *b, size_t bn);

/* ---- MPSC queue: the only thing threads share --------------------------- */

typedef struct jd_qnode { struct jd_qnode *next; } jd_qnode;   /* embed in items */

typedef struct jd_queue {
    pthread_mutex_t _mu;
    pthread_cond_t  _cv;
    jd_qnode *_head, *_tail;
    size_t    _len;
    bool      _closed;
} jd_queue;

void jd_queue_init(jd_queue *q);
void jd_queue_release(jd_queue *q);
/* Any thread. Returns false (and does not take n) once the queue is closed. */
bool jd_queue_push(jd_queue *q, jd_qnode *n);
/* Consumer only. Takes everything queued, in FIFO order, as a NULL-terminated
 * list; waits up to timeout_ms (-1 forever, 0 no wait). NULL on timeout or
 * when closed and empty (check jd_queue_closed). */
jd_qnode *jd_queue_pop_all(jd_queue *q, int timeout_ms);
void   jd_queue_close(jd_queue *q);
bool   jd_queue_closed(jd_queue *q);
size_t jd_queue_len(jd_queue *q);   /* a snapshot, for metrics */

/* ---- string views and a string-keyed map ------------------------------- */

typedef struct jd_str { const char *p; uint32_t n; } jd_str;   /* n == 0: absent */
#define JD_STR_LIT(s) ((jd_str){ (s), (uint32_t)(sizeof(s) - 1) })
static inline bool jd_str_eq(jd_str a, const char *p, size_t n)
{
    return a.n == n && (n == 0 || __builtin_memcmp(a.p, p, n) == 0);
}

/* Open addressing, linear probing, backward-shift deletion. Keys are borrowed:
 * the value must own them (or outlive the entry), as in redis's dict with
 * shared keys. Not thread-safe: it belongs to one thread. */
typedef struct jd_map jd_map;
jd_map *jd_map_create(size_t hint);
void    jd_map_destroy(jd_map *m);          /* does not free values */
void   *jd_map_get(const jd_map *m, const char *k, size_t kn);
/* Inserts or replaces; returns the previous value or NULL. */
void   *jd_map_put(jd_map *m, const char *k, size_t kn, void *v);
void   *jd_map_del(jd_map *m, const char *k, size_t kn);   /* returns the value removed */
size_t  jd_map_len(const jd_map *m);
/* Iteration: *pos starts at 0; returns false at the end. Do not modify during it. */
bool    jd_map_next(const jd_map *m, size_t *pos, const char **k, size_t *kn, void **v);

/* ---- files ------------------------------------------------------------- */

int jd_mkdir_p(const char *path, jd_err *err);
int jd_fsync_dir(const char *dir, jd_err *err);
/* Writes a whole file durably: tmp file, fsync, rename, fsync dir. */
int jd_write_file_atomic(const char *path, const void *data, size_t n, jd_err *err);
/* Reads a whole file, returns owned (free()), NUL-terminated; JD_ENOTFOUND if absent;
 * JD_ELIMIT past max bytes. */
int jd_read_file(const char *path, size_t max, char **out, size_t *len, jd_err *err);

#define JD_ASSERT(c) assert(c)
#define JD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define JD_MIN_OF(a, b) ((a) < (b) ? (a) : (b))

#include <assert.h>

#endif
