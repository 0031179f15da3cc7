/* bench/ingest_parse.c -- events/s through ingest_parse + ingest_event_encode.
 *
 * One 100-event batch of ~300-byte track events (the shape analytics.js and the
 * server SDKs send), parsed, normalized and encoded as log records in a loop on
 * one thread. Not part of `make test`. Build with release flags: -O2, the
 * sources of src/base and src/ingest, and -ljson-c -lxxhash -lssl -lcrypto
 * -lyaml -lpthread -lm (see the comment at the end of this file).
 * Usage: bench_ingest [seconds]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/base.h"
#include "journeyd/ingest.h"

#define EVENTS 100

static void gen_id(void *self, char out[37])
{
    unsigned long *n = self;
    snprintf(out, 37, "bench-%lu", ++*n);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    jd_buf body;
    jd_buf_init(&body, 1 << 20);
    jd_buf_adds(&body, "{\"writeKey\":\"wk_bench\",\"sentAt\":\"2026-01-01T00:00:01.000Z\",\"batch\":[");
    for (int i = 0; i < EVENTS; i++) {
        jd_buf_addf(&body,
                    "%s{\"type\":\"track\",\"userId\":\"user-%06d\",\"anonymousId\":\"6f1c2a9e-4b1d-4c1e-9a55-%012d\","
                    "\"event\":\"Order Completed\",\"messageId\":\"msg-%08d\",\"timestamp\":\"2026-01-01T00:00:00.%03dZ\","
                    "\"properties\":{\"order_id\":\"o-%d\",\"total\":%d.99,\"currency\":\"EUR\",\"coupon\":null},"
                    "\"context\":{\"ip\":\"203.0.113.7\",\"library\":{\"name\":\"analytics-node\",\"version\":\"6.2.0\"}}}",
                    i ? "," : "", i, i, i, i % 1000, i, i);
    }
    jd_buf_adds(&body, "]}");
    ingest_limits lim;
    ingest_limits_default(&lim);
    jd_buf rec;
    jd_buf_init(&rec, 64u << 20);
    unsigned long ids = 0, events = 0, bytes = 0;
    uint64_t t0 = jd_monotonic_ns(), t1 = t0;
    while ((double)(t1 - t0) < seconds * 1e9) {
        for (int k = 0; k < 50; k++) {
            ingest_batch *b = NULL;
            jd_err err;
            if (ingest_parse(&lim, INGEST_ROUTE_BATCH, body.data, body.len, INT64_C(1767225600000000), gen_id,
                             &ids, &b, &err) != JD_OK) {
                fprintf(stderr, "bench: %s at %s\n", err.msg, err.where);
                return 1;
            }
            jd_buf_reset(&rec);
            for (size_t i = 0; i < b->n; i++) ingest_event_encode(&b->msgs[i], &rec);
            events += b->n;
            bytes += body.len;
            ingest_batch_destroy(b);
        }
        t1 = jd_monotonic_ns();
    }
    double s = (double)(t1 - t0) / 1e9;
    printf("ingest_parse: %d-event batches of %zu bytes (%zu bytes/event)\n", EVENTS, body.len, body.len / EVENTS);
    printf("ingest_parse: %.0f events/s, %.1f MB/s of JSON, one thread\n", (double)events / s, (double)bytes / s / 1e6);
    jd_buf_release(&body);
    jd_buf_release(&rec);
    return 0;
}

/* cc -std=gnu17 -O2 -D_GNU_SOURCE -Iinclude src/base/[a-z]*.c src/ingest/[a-z]*.c bench/ingest_parse.c
 *    -o /tmp/bench_ingest -ljson-c -lxxhash -lssl -lcrypto -lyaml -lpthread -lm */
