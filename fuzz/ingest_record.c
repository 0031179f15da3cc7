/* fuzz/ingest_record.c -- libFuzzer harness for ingest_event_decode on raw bytes.
 *
 * The bytes stand for a log record read back from disk. Decode must never read
 * outside them; when it accepts, every view lies inside the input and ends in
 * a NUL, and encoding the decoded event gives the input back byte for byte
 * (but for the reserved header field, which is written as 0). Corpus:
 * fuzz/corpus/ingest_record/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/base.h"
#include "journeyd/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

static void check_view(jd_str s, const uint8_t *data, size_t size)
{
    CHECK(s.p != NULL);
    CHECK((const uint8_t *)s.p >= data && (const uint8_t *)s.p + s.n < data + size);
    CHECK(s.p[s.n] == '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy of exactly size bytes, so ASan sees any read past the end */
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    ingest_event ev;
    jd_err err = { 0 };
    int rc = ingest_event_decode(copy, size, &ev, &err);
    if (rc != JD_OK) {
        CHECK(rc == JD_ECORRUPT && err.code == JD_ECORRUPT && err.msg[0] != '\0');
        free(copy);
        return 0;
    }
    const jd_str *views[] = { &ev.user_id, &ev.anonymous_id, &ev.event, &ev.group_id,
                              &ev.previous_id, &ev.message_id, &ev.json };
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) check_view(*views[i], copy, size);

    ingest_msg m = { .type = ev.type, .user_id = ev.user_id, .anonymous_id = ev.anonymous_id,
                     .event = ev.event, .group_id = ev.group_id, .previous_id = ev.previous_id,
                     .message_id = ev.message_id, .timestamp_us = ev.timestamp_us,
                     .received_us = ev.received_us, .json = ev.json };
    jd_buf b;
    jd_buf_init(&b, size + 1);
    CHECK(ingest_event_encode(&m, &b) == JD_OK);
    CHECK(b.len == size);
    copy[2] = copy[3] = 0;
    CHECK(memcmp(b.data, copy, size) == 0);
    jd_buf_release(&b);
    free(copy);
    return 0;
}
