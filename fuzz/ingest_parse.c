/* fuzz/ingest_parse.c -- libFuzzer harness for ingest_parse and the record codec.
 *
 * Input: the first byte picks the route (track .. batch), the rest is the body.
 * For every accepted body each message must: have a messageId, a timestamp in
 * 1970..9999, NUL-terminated views, compact JSON that is a valid object, and
 * survive ingest_event_encode -> ingest_event_decode field for field.
 * Refusals must fill jd_err with a message. Corpus: fuzz/corpus/ingest_parse/.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/base.h"
#include "journeyd/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

static void gen_id(void *self, char out[37])
{
    unsigned *n = self;
    snprintf(out, 37, "gen-%u", ++*n);
}

static bool same(jd_str a, jd_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static void check_view(jd_str s)
{
    if (s.n) CHECK(s.p && s.p[s.n] == '\0');
}

static void check_msg(const ingest_msg *m)
{
    CHECK(m->type >= INGEST_TRACK && m->type < INGEST_TYPE_COUNT_);
    CHECK(m->message_id.n > 0);
    CHECK(m->user_id.n > 0 || m->anonymous_id.n > 0);
    CHECK(m->timestamp_us >= 0 && m->timestamp_us <= INT64_C(253402300799999999));
    check_view(m->user_id);
    check_view(m->anonymous_id);
    check_view(m->event);
    check_view(m->group_id);
    check_view(m->previous_id);
    check_view(m->message_id);
    check_view(m->json);
    CHECK(strlen(m->json.p) == m->json.n);   /* control characters are escaped */

    json_object *o = json_tokener_parse(m->json.p);
    CHECK(json_object_is_type(o, json_type_object));
    json_object_put(o);

    jd_buf b;
    jd_buf_init(&b, 64u << 20);
    CHECK(ingest_event_encode(m, &b) == JD_OK);
    ingest_event ev;
    jd_err err;
    CHECK(ingest_event_decode(b.data, b.len, &ev, &err) == JD_OK);
    CHECK(ev.type == m->type && ev.timestamp_us == m->timestamp_us && ev.received_us == m->received_us);
    CHECK(same(ev.user_id, m->user_id) && same(ev.anonymous_id, m->anonymous_id));
    CHECK(same(ev.event, m->event) && same(ev.group_id, m->group_id));
    CHECK(same(ev.previous_id, m->previous_id) && same(ev.message_id, m->message_id));
    CHECK(same(ev.json, m->json));
    jd_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_batch_messages = 64;   /* keeps runs fast; the count check still fires */
    ingest_route route = (ingest_route)(INGEST_ROUTE_TRACK + data[0] % 7);
    unsigned ids = 0;
    ingest_batch *b = NULL;
    jd_err err = { 0 };
    int rc = ingest_parse(&lim, route, (const char *)data + 1, size - 1, INT64_C(1767225600000000), gen_id,
                          &ids, &b, &err);
    if (rc != JD_OK) {
        CHECK(b == NULL && err.code == rc && err.msg[0] != '\0');
        CHECK(rc == JD_EINVAL || rc == JD_ELIMIT);
        return 0;
    }
    CHECK(route == INGEST_ROUTE_BATCH || b->n == 1);
    for (size_t i = 0; i < b->n; i++) check_msg(&b->msgs[i]);
    check_view(b->write_key);
    ingest_batch_destroy(b);
    return 0;
}
