/* fuzz/profile_snapshot.c -- libFuzzer driver for prof_store_decode.
 *
 * Raw bytes go to the decoder of a fresh store. It must never crash, leak or
 * read out of bounds; when it accepts the bytes, encoding the store and
 * decoding that again must succeed with the same profile count and bytes
 * (snapshot.c invariant 3), and encoding the second store must give a blob of
 * the same length. Both snapshot versions are fed: corpus files anonymous,
 * empty, groups_alias and user_traits are version 1 (before tags), tags is
 * version 2; encode always writes version 2.
 */
#include "journeyd/profile.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    prof_store *s = prof_store_create(NULL);
    jd_err err;
    if (prof_store_decode(s, data, size, &err) != JD_OK) {
        if (prof_store_count(s) != 0) abort();   /* a refused snapshot leaves it empty */
        prof_store_destroy(s);
        return 0;
    }
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    if (prof_store_encode(s, &b) != JD_OK) abort();
    prof_store *d = prof_store_create(NULL);
    if (prof_store_decode(d, b.data, b.len, &err) != JD_OK) abort();
    if (prof_store_count(d) != prof_store_count(s)) abort();
    if (prof_store_bytes(d) != prof_store_bytes(s)) abort();
    jd_buf b2;
    jd_buf_init(&b2, SIZE_MAX);
    if (prof_store_encode(d, &b2) != JD_OK || b2.len != b.len) abort();
    jd_buf_release(&b2);
    jd_buf_release(&b);
    prof_store_destroy(d);
    prof_store_destroy(s);
    return 0;
}
