/* src/http/http_int.h -- private to src/http/: helpers shared by server.c and gzip.c. */
#ifndef JOURNEYD_HTTP_INT_H
#define JOURNEYD_HTTP_INT_H

#include "journeyd/base.h"

/* Inflates a gzip body (one or more members, RFC 1952) into out, which must be
 * empty; out's ceiling (jd_buf max) bounds the inflated size. Returns JD_OK,
 * JD_ELIMIT when the output would pass the ceiling (decoding stops there: a
 * gzip bomb costs at most the ceiling), or JD_EINVAL for a corrupt or
 * truncated stream with zlib's reason in msg. Pure; any thread. */
int http__gunzip(const void *in, size_t n, jd_buf *out, char *msg, size_t msgn);

/* Decodes standard base64 (RFC 4648, padding optional, no whitespace) into
 * out, NUL-terminated. Returns the decoded length, or -1 on a bad character
 * or when outn is too small. Pure. */
long http__b64_decode(const char *in, size_t n, char *out, size_t outn);

#endif
