/* src/ingest/ingest_int.h -- private to src/ingest/: what parse.c hands normalize.c.
 *
 * parse.c reads the body (strict JSON, limits, the batch envelope) and owns the
 * json_object tree; normalize.c checks and rewrites one message object in place
 * and fills an ingest_msg whose strings point into that tree.
 */
#ifndef JOURNEYD_INGEST_INT_H
#define JOURNEYD_INGEST_INT_H

#include <json-c/json.h>

#include "journeyd/ingest.h"

/* What every message of one request shares. Borrowed for the call. */
typedef struct ingest__ctx {
    int64_t       received_us;
    ingest_id_fn  gen_id;          /* NULL: jd_uuid4 */
    void         *gen_self;
    json_object  *batch_context;   /* batch-level "context", or NULL */
    json_object  *batch_integrations;
    bool          has_batch_sent_at;
    int64_t       batch_sent_at_us;
    /* normalize.c's: texts of whole seconds formatted, direct-mapped by the
     * second. A request's messages share a few seconds (received, sent, the
     * client's), and snprintf costs more than the rest of the time handling. */
    struct { int64_t sec; char text[JD_TIME_TEXT]; } tc[8];
} ingest__ctx;

/* Checks msg (a JSON object) against the rules for `type`, rewrites it in place
 * (ids as strings, messageId, receivedAt, timestamp, originalTimestamp, sentAt,
 * batch context) and fills *out except json. `where` is the path prefix for
 * errors: "" for a single message, "batch[3]" in a batch. Pure (ctx is written
 * only as a cache). */
int ingest__normalize(json_object *msg, ingest_type type, ingest__ctx *ctx,
                      const char *where, ingest_msg *out, jd_err *err);

/* "expected object, got string": the JSON name of a value's type ("null" for NULL). */
const char *ingest__json_type_name(const json_object *v);

/* Joins an error path: ("batch[3]", "traits") -> "batch[3].traits"; ("", "traits") -> "traits". */
void ingest__path(char out[96], const char *prefix, const char *field);

/* Reads an RFC 3339 timestamp field; JD_EINVAL at prefix.key otherwise. */
int ingest__time_field(json_object *v, const char *prefix, const char *key, int64_t *out_us,
                       jd_err *err);

/* The range jd_time_format writes and jd_time_parse reads back: years 1970..9999. */
#define INGEST__TIME_MAX_US INT64_C(253402300799999999)

#endif
