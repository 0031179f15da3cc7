/* src/base/buf.c -- bounded growable buffers (curl's dynbuf with a ceiling). */
#include "journeyd/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jd_buf_init(jd_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static int reserve(jd_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra) return JD_ELIMIT;
    size_t need = b->len + extra + 1;   /* +1: keep it NUL-terminated */
    if (need <= b->cap) return JD_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    b->data = jd_xrealloc(b->data, cap);
    b->cap = cap;
    return JD_OK;
}

int jd_buf_add(jd_buf *b, const void *p, size_t n)
{
    if (reserve(b, n) != JD_OK) return JD_ELIMIT;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return JD_OK;
}

int jd_buf_adds(jd_buf *b, const char *s) { return jd_buf_add(b, s, strlen(s)); }

int jd_buf_addf(jd_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return JD_EINVAL;
    if ((size_t)n < sizeof small) return jd_buf_add(b, small, (size_t)n);
    if (reserve(b, (size_t)n) != JD_OK) return JD_ELIMIT;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return JD_OK;
}

int jd_buf_add_json_str(jd_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (jd_buf_add(b, "\"", 1) != JD_OK) return JD_ELIMIT;
    size_t run = 0;   /* bytes copied as they are, flushed in one add */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t en = 0;
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; en = 2; }
        else if (c == '\n') { memcpy(esc, "\\n", 2); en = 2; }
        else if (c == '\r') { memcpy(esc, "\\r", 2); en = 2; }
        else if (c == '\t') { memcpy(esc, "\\t", 2); en = 2; }
        else if (c < 0x20) {
            memcpy(esc, "\\u00", 4); esc[4] = hex[c >> 4]; esc[5] = hex[c & 15]; en = 6;
        }
        if (!en) { run++; continue; }
        if (jd_buf_add(b, s + i - run, run) != JD_OK || jd_buf_add(b, esc, en) != JD_OK)
            return JD_ELIMIT;
        run = 0;
    }
    if (jd_buf_add(b, s + n - run, run) != JD_OK) return JD_ELIMIT;
    return jd_buf_add(b, "\"", 1);
}

void jd_buf_reset(jd_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void jd_buf_release(jd_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *jd_buf_detach(jd_buf *b, size_t *len)
{
    char *p = b->data ? b->data : jd_xstrdup("");
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
