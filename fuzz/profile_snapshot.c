/* fuzz/profile_snapshot.c -- libFuzzer driver for prof_store_decode.
 *
 * Raw bytes go to the decoder of a fresh store. It must never crash, leak or
 * read out of bounds; when it accepts the bytes, encoding the store and
 * decoding that again must succeed with the same profile count and bytes
 * (snapshot.c invariant 3), and encoding the second store must give a blob of
 * the same length. Every snapshot version is fed: corpus files anonymous,
 * empty, groups_alias and user_traits are version 1 (before tags), tags is
 * version 2, computed is version 3 with computed values; compact_traits is
 * version 7 with what the in-memory trait sets (src/profile/tset.c) store
 * specially: an unshared long key, an empty key, escaped and empty strings,
 * a tombstone, consent, and set_us in us, ms and before the tset epoch. The stores carry the computed trait definitions below
 * (the seed's values are keyed by their ids), so the computed payload
 * checks are reached.
 */
#include "journeyd/profile.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char DEFS[] =
    "computed:\n"
    "  n:    { count: E }\n"
    "  n7:   { count: E, window: 7d, buckets: 4 }\n"
    "  s:    { sum: E, property: v }\n"
    "  mx7:  { max: E, property: v, window: 7d, buckets: 2 }\n"
    "  last: { last: E, property: v }\n"
    "  f7:   { first_seen: E, window: 7d, buckets: 2 }\n"
    "  l7:   { last_seen: E, window: 7d }\n";

static const prof_computed_defs *defs(void)
{
    static prof_computed_defs *d;   /* built once, kept for the process */
    if (!d) {
        jd_yaml_doc *doc = NULL;
        const jd_yaml_node *root = NULL;
        jd_err err;
        if (jd_yaml_parse("defs", DEFS, strlen(DEFS), &doc, &root, &err) != JD_OK ||
            prof_computed_parse(jd_yaml_get(root, "computed"), "defs", &d, &err) != JD_OK)
            abort();
        jd_yaml_free(doc);
    }
    return d;
}

static prof_store *store(void)
{
    prof_limits l;
    prof_limits_default(&l);
    l.computed = defs();
    return prof_store_create(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    prof_store *s = store();
    jd_err err;
    if (prof_store_decode(s, data, size, &err) != JD_OK) {
        if (prof_store_count(s) != 0) abort();   /* a refused snapshot leaves it empty */
        prof_store_destroy(s);
        return 0;
    }
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    if (prof_store_encode(s, &b) != JD_OK) abort();
    prof_store *d = store();
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
