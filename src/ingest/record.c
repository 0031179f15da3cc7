/* src/ingest/record.c -- the event record: the log body of one normalized message.
 *
 * Layout (little-endian, no padding; docs/internals/log.md has the table):
 *
 *   off size
 *    0   1   version (1)
 *    1   1   type (ingest_type)
 *    2   2   reserved, written 0, ignored on read
 *    4   8   timestamp_us (i64)
 *   12   8   received_us (i64)
 *   20  28   lengths (u32 each): user_id, anonymous_id, event, group_id,
 *            previous_id, message_id, json
 *   48   ..  the seven strings in that order, each followed by one NUL
 *
 * Invariants:
 *  (1) A record is exactly 48 + sum(length + 1) bytes; decode refuses any other
 *      size, so every truncation and any trailing garbage is JD_ECORRUPT.
 *  (2) Each string is followed by a NUL, so decoded views are C strings too.
 *  (3) Decoding copies nothing: the views point into the caller's bytes, which
 *      are input (STYLE practice 10) and are checked before any view is made.
 */
#include "journeyd/ingest.h"

#include <string.h>

#define REC_VERSION 1
#define REC_HEADER  48
#define REC_FIELDS  7

/* The seven strings, in record order, as offsets into ingest_msg / ingest_event. */
static const struct rec_field {
    const char *name;
    size_t msg_off, ev_off;
} rec_fields[REC_FIELDS] = {
    { "user_id",      offsetof(ingest_msg, user_id),      offsetof(ingest_event, user_id) },
    { "anonymous_id", offsetof(ingest_msg, anonymous_id), offsetof(ingest_event, anonymous_id) },
    { "event",        offsetof(ingest_msg, event),        offsetof(ingest_event, event) },
    { "group_id",     offsetof(ingest_msg, group_id),     offsetof(ingest_event, group_id) },
    { "previous_id",  offsetof(ingest_msg, previous_id),  offsetof(ingest_event, previous_id) },
    { "message_id",   offsetof(ingest_msg, message_id),   offsetof(ingest_event, message_id) },
    { "json",         offsetof(ingest_msg, json),         offsetof(ingest_event, json) },
};

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

int ingest_event_encode(const ingest_msg *msg, jd_buf *out)
{
    unsigned char hdr[REC_HEADER] = { REC_VERSION, (unsigned char)msg->type, 0, 0 };
    const jd_str *s[REC_FIELDS];
    uint64_t total = REC_HEADER;
    put_u64(hdr + 4, (uint64_t)msg->timestamp_us);
    put_u64(hdr + 12, (uint64_t)msg->received_us);
    for (int i = 0; i < REC_FIELDS; i++) {
        s[i] = (const jd_str *)((const char *)msg + rec_fields[i].msg_off);
        put_u32(hdr + 20 + 4 * i, s[i]->n);
        total += (uint64_t)s[i]->n + 1;
    }
    /* Check the ceiling once so a refused record leaves out untouched. */
    if (total > out->max || out->len > out->max - total) return JD_ELIMIT;
    jd_buf_add(out, hdr, sizeof hdr);
    for (int i = 0; i < REC_FIELDS; i++) {
        jd_buf_add(out, s[i]->p, s[i]->n);
        jd_buf_add(out, "", 1);
    }
    return JD_OK;
}

int ingest_event_decode(const void *body, size_t n, ingest_event *out, jd_err *err)
{
    const unsigned char *p = body;
    if (n < REC_HEADER)
        return jd_err_set(err, JD_ECORRUPT, "", "event record is %zu bytes, shorter than its %d-byte header",
                          n, REC_HEADER);
    if (p[0] != REC_VERSION)
        return jd_err_set(err, JD_ECORRUPT, "", "event record version %u is not supported (want %d)",
                          p[0], REC_VERSION);
    if (p[1] < INGEST_TRACK || p[1] >= INGEST_TYPE_COUNT_)
        return jd_err_set(err, JD_ECORRUPT, "", "event record has unknown type %u", p[1]);

    ingest_event ev = { .type = (ingest_type)p[1] };
    ev.timestamp_us = (int64_t)get_u64(p + 4);
    ev.received_us = (int64_t)get_u64(p + 12);
    uint64_t off = REC_HEADER;
    for (int i = 0; i < REC_FIELDS; i++) {
        uint32_t len = get_u32(p + 20 + 4 * i);
        if ((uint64_t)len + 1 > n - off)
            return jd_err_set(err, JD_ECORRUPT, "",
                              "event record field %s (%u bytes at offset %llu) runs past its end (%zu bytes)",
                              rec_fields[i].name, len, (unsigned long long)off, n);
        if (p[off + len] != '\0')
            return jd_err_set(err, JD_ECORRUPT, "", "event record field %s is not NUL-terminated",
                              rec_fields[i].name);
        *(jd_str *)((char *)&ev + rec_fields[i].ev_off) = (jd_str){ (const char *)p + off, len };
        off += (uint64_t)len + 1;
    }
    if (off != n)
        return jd_err_set(err, JD_ECORRUPT, "", "event record has %llu trailing bytes",
                          (unsigned long long)(n - off));
    *out = ev;
    return JD_OK;
}
