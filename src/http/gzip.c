/* src/http/gzip.c -- bounded gzip inflation for request bodies, and base64.
 *
 * The body arrives compressed and whole (server.c bounds the compressed
 * bytes); this file inflates it into a jd_buf whose ceiling is the smaller of
 * the route's max_body and http_opts.max_inflated.
 *
 * Invariants:
 *  (1) Never more than out->max bytes are written: output is produced in
 *      slices of at most 16 KiB and each slice goes through jd_buf_add, whose
 *      JD_ELIMIT stops decoding at once (a 10 GB bomb costs one ceiling).
 *  (2) A stream is valid only if every member ends with Z_STREAM_END and no
 *      bytes follow the last member; anything else is JD_EINVAL.
 */
#include "http_int.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

int http__gunzip(const void *in, size_t n, jd_buf *out, char *msg, size_t msgn)
{
    int rc = JD_EINVAL, zrc = Z_OK;
    unsigned char slice[16384];
    z_stream z;
    bool live = false;

    memset(&z, 0, sizeof z);
    if (n > UINT32_MAX) { snprintf(msg, msgn, "body too large for zlib"); goto out; }
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        snprintf(msg, msgn, "%s", z.msg ? z.msg : "inflateInit2 failed");
        goto out;
    }
    live = true;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    for (;;) {
        z.next_out = slice;
        z.avail_out = sizeof slice;
        zrc = inflate(&z, Z_NO_FLUSH);
        size_t got = sizeof slice - z.avail_out;
        if (got && jd_buf_add(out, slice, got) != JD_OK) { rc = JD_ELIMIT; goto out; }  /* (1) */
        if (zrc == Z_STREAM_END) {
            if (z.avail_in == 0) break;
            inflateReset(&z);                 /* another gzip member follows */
            continue;
        }
        if (zrc == Z_OK) continue;
        if (zrc == Z_BUF_ERROR && z.avail_in == 0)
            snprintf(msg, msgn, "unexpected end of stream");
        else
            snprintf(msg, msgn, "%s", z.msg ? z.msg : zError(zrc));
        goto out;                             /* (2) */
    }
    rc = JD_OK;
out:
    if (live) inflateEnd(&z);
    return rc;
}

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

long http__b64_decode(const char *in, size_t n, char *out, size_t outn)
{
    while (n > 0 && in[n - 1] == '=') n--;
    if (n % 4 == 1) return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)in[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= outn) return -1;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    if (outn == 0) return -1;
    out[o] = '\0';
    return (long)o;
}
