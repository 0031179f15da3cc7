/* src/base/err.c -- jd_err, the OOM policy, and jd_strfmt. */
#include "journeyd/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void fill(jd_err *err, int code, const char *where, const char *fmt, va_list ap)
{
    err->code = code;
    snprintf(err->where, sizeof err->where, "%s", where ? where : "");
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

int jd_err_set(jd_err *err, int code, const char *where, const char *fmt, ...)
{
    if (!err) return code;
    va_list ap;
    va_start(ap, fmt);
    fill(err, code, where, fmt, ap);
    va_end(ap);
    return code;
}

int jd_err_errno(jd_err *err, const char *where, const char *fmt, ...)
{
    int saved = errno;
    if (!err) return JD_EIO;
    va_list ap;
    va_start(ap, fmt);
    fill(err, JD_EIO, where, fmt, ap);
    va_end(ap);
    size_t used = strlen(err->msg);
    snprintf(err->msg + used, sizeof err->msg - used, ": %s", strerror(saved));
    errno = saved;
    return JD_EIO;
}

void jd_err_clear(jd_err *err)
{
    if (!err) return;
    err->code = JD_OK;
    err->where[0] = '\0';
    err->msg[0] = '\0';
}

const char *jd_strerror(int code)
{
    static const char *const names[] = {
        [0] = "ok", [1] = "invalid input", [2] = "i/o error", [3] = "corrupt data",
        [4] = "limit reached", [5] = "not found", [6] = "busy", [7] = "not authorized",
    };
    int i = -code;
    return (i >= 0 && (size_t)i < JD_ARRAY_LEN(names)) ? names[i] : "unknown error";
}

static void oom(size_t n)
{
    fprintf(stderr, "journeyd: out of memory allocating %zu bytes\n", n);
    abort();
}

void *jd_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *jd_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size);
    return p;
}

void *jd_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *jd_xstrdup(const char *s) { return jd_xstrndup(s, strlen(s)); }

char *jd_xstrndup(const char *s, size_t n)
{
    char *p = jd_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *jd_strfmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = jd_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void *jd_xmap_zero(size_t n)
{
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) oom(n);
    return p;
}

void jd_unmap_zero(void *p, size_t n)
{
    if (p) munmap(p, n ? n : 1);
}
