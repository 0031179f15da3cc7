/* src/ingest/normalize.c -- one Segment message: check it, then rewrite it in place.
 *
 * parse.c has already read the JSON and knows the message's type; this file
 * applies the Segment rules to one message object. docs/api.md ("Normalization")
 * is the user-facing copy of these rules; keep the two in step.
 *
 * Rules:
 *  (1) fields[] says, per key, what the value must be and for which types. A
 *      JSON null is the key absent, and the key is removed from the output.
 *  (2) userId, anonymousId, groupId and previousId are strings or integers; an
 *      integer is written back as its decimal text (a string). An empty id is
 *      absent (removed).
 *  (3) Identity: alias needs userId; every other type needs userId or
 *      anonymousId. Then the per-type required fields (track: event, group:
 *      groupId, alias: previousId).
 *  (4) Batch-level context and integrations fill in the keys a message lacks.
 *  (5) messageId: the given non-empty string, or one drawn from the generator.
 *  (6) Time (Segment's clock-skew correction): receivedAt = the server's time.
 *      The client's time is timestamp, else originalTimestamp. With a client
 *      time and sentAt: originalTimestamp = client time and timestamp =
 *      receivedAt - (sentAt - client time). With a client time only: timestamp
 *      = client time. With neither: timestamp = receivedAt. A corrected time
 *      outside 1970..9999 falls back to receivedAt. Times are written back as
 *      jd_time_format text (UTC, milliseconds, Z); sentAt is kept, reformatted.
 *  (7) writeKey is removed: it is a credential and must not reach the log.
 *
 * Invariant: every jd_str this file puts in an ingest_msg points at a string
 * object inside msg, so it lives exactly as long as the tree (owned by the
 * batch). Nothing here allocates except json-c nodes for rewritten values.
 */
#include "ingest_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TS_TIMESTAMP, TS_SENT_AT, TS_ORIGINAL, TS_COUNT_ };

typedef struct state {
    ingest_msg *msg;
    bool        has_time[TS_COUNT_];
    int64_t     time_us[TS_COUNT_];
} state;

struct field_rule;
typedef int (*check_fn)(json_object *msg, const struct field_rule *r, json_object *v,
                        const char *where, state *st, jd_err *err);

typedef struct field_rule {
    const char *key;
    check_fn    check;
    uint8_t     types;      /* bit (1 << type): the rule applies to these types */
    uint8_t     required;   /* bit (1 << type): these types need a non-empty value */
    int         slot;       /* jd_str offset in ingest_msg, time slot, or -1 */
    const char *missing;    /* the error when required and absent */
} field_rule;

#define BIT(t) (1u << (t))
#define ALL_TYPES (BIT(INGEST_TRACK) | BIT(INGEST_IDENTIFY) | BIT(INGEST_PAGE) | \
                   BIT(INGEST_SCREEN) | BIT(INGEST_GROUP) | BIT(INGEST_ALIAS))
#define STR_SLOT(f) ((int)offsetof(ingest_msg, f))

const char *ingest__json_type_name(const json_object *v)
{
    static const char *const names[] = {
        [json_type_null] = "null",     [json_type_boolean] = "boolean",
        [json_type_double] = "number", [json_type_int] = "number",
        [json_type_object] = "object", [json_type_array] = "array",
        [json_type_string] = "string",
    };
    unsigned t = (unsigned)json_object_get_type(v);
    return t < JD_ARRAY_LEN(names) && names[t] ? names[t] : "?";
}

void ingest__path(char out[96], const char *prefix, const char *field)
{
    snprintf(out, 96, "%s%s%s", prefix, *prefix && *field ? "." : "", field);
}

static int type_error(const char *where, const char *key, const char *want, json_object *v,
                      jd_err *err)
{
    char path[96];
    ingest__path(path, where, key);
    return jd_err_set(err, JD_EINVAL, path, "expected %s, got %s", want,
                      ingest__json_type_name(v));
}

/* json-c returns NULL when malloc fails; journeyd's policy is to abort (STYLE part D). */
static json_object *must(json_object *o)
{
    if (!o) {
        fprintf(stderr, "journeyd: out of memory (json-c)\n");
        abort();
    }
    return o;
}

static json_object *new_string(const char *s, size_t n) { return must(json_object_new_string_len(s, (int)n)); }

static jd_str str_of(json_object *s)
{
    return (jd_str){ json_object_get_string(s), (uint32_t)json_object_get_string_len(s) };
}

static void set_str(state *st, int slot, json_object *s)
{
    if (slot >= 0) *(jd_str *)((char *)st->msg + slot) = str_of(s);
}

/* (2) a string or an integer; integers become their decimal text. */
static int check_id(json_object *msg, const field_rule *r, json_object *v, const char *where,
                    state *st, jd_err *err)
{
    if (json_object_is_type(v, json_type_int)) {
        char text[24];
        int64_t i = json_object_get_int64(v);
        int len = i == INT64_MAX ? snprintf(text, sizeof text, "%" PRIu64, json_object_get_uint64(v))
                                 : snprintf(text, sizeof text, "%" PRId64, i);
        v = new_string(text, (size_t)len);
        json_object_object_add(msg, r->key, v);   /* replaces in place: the key keeps its position */
    } else if (!json_object_is_type(v, json_type_string)) {
        return type_error(where, r->key, "string", v, err);
    }
    if (json_object_get_string_len(v) == 0) {
        json_object_object_del(msg, r->key);
        return JD_OK;
    }
    set_str(st, r->slot, v);
    return JD_OK;
}

static int check_string(json_object *msg, const field_rule *r, json_object *v, const char *where,
                        state *st, jd_err *err)
{
    if (!json_object_is_type(v, json_type_string)) return type_error(where, r->key, "string", v, err);
    set_str(st, r->slot, v);
    return JD_OK;
}

static int check_object(json_object *msg, const field_rule *r, json_object *v, const char *where,
                        state *st, jd_err *err)
{
    if (!json_object_is_type(v, json_type_object)) return type_error(where, r->key, "object", v, err);
    return JD_OK;
}

int ingest__time_field(json_object *v, const char *prefix, const char *key, int64_t *out_us,
                       jd_err *err)
{
    int64_t us;
    if (!json_object_is_type(v, json_type_string) ||
        jd_time_parse(json_object_get_string(v), (size_t)json_object_get_string_len(v), &us) != JD_OK ||
        us < 0 || us > INGEST__TIME_MAX_US) {
        char path[96];
        ingest__path(path, prefix, key);
        return jd_err_set(err, JD_EINVAL, path, "expected an RFC 3339 timestamp");
    }
    *out_us = us;
    return JD_OK;
}

static int check_time(json_object *msg, const field_rule *r, json_object *v, const char *where,
                      state *st, jd_err *err)
{
    int rc = ingest__time_field(v, where, r->key, &st->time_us[r->slot], err);
    if (rc == JD_OK) st->has_time[r->slot] = true;
    return rc;
}

static int drop(json_object *msg, const field_rule *r, json_object *v, const char *where,
                state *st, jd_err *err)
{
    json_object_object_del(msg, r->key);
    return JD_OK;
}

/* (1) Table order is check order, so it fixes which error a bad message gets first. */
static const field_rule fields[] = {
    { "userId",            check_id,     ALL_TYPES, 0, STR_SLOT(user_id), NULL },
    { "anonymousId",       check_id,     ALL_TYPES, 0, STR_SLOT(anonymous_id), NULL },
    { "event",             check_string, BIT(INGEST_TRACK), BIT(INGEST_TRACK), STR_SLOT(event),
      "event is required" },
    { "name",              check_string, BIT(INGEST_PAGE) | BIT(INGEST_SCREEN), 0, STR_SLOT(event), NULL },
    { "category",          check_string, BIT(INGEST_PAGE) | BIT(INGEST_SCREEN), 0, -1, NULL },
    { "groupId",           check_id,     BIT(INGEST_GROUP), BIT(INGEST_GROUP), STR_SLOT(group_id),
      "groupId is required" },
    { "previousId",        check_id,     BIT(INGEST_ALIAS), BIT(INGEST_ALIAS), STR_SLOT(previous_id),
      "previousId is required" },
    { "messageId",         check_string, ALL_TYPES, 0, STR_SLOT(message_id), NULL },
    { "traits",            check_object, ALL_TYPES, 0, -1, NULL },
    { "properties",        check_object, ALL_TYPES, 0, -1, NULL },
    { "context",           check_object, ALL_TYPES, 0, -1, NULL },
    { "integrations",      check_object, ALL_TYPES, 0, -1, NULL },
    { "timestamp",         check_time,   ALL_TYPES, 0, TS_TIMESTAMP, NULL },
    { "sentAt",            check_time,   ALL_TYPES, 0, TS_SENT_AT, NULL },
    { "originalTimestamp", check_time,   ALL_TYPES, 0, TS_ORIGINAL, NULL },
    { "writeKey",          drop,         ALL_TYPES, 0, -1, NULL },
};

/* (4) Copies the keys of `defaults` that the message's own `key` object lacks.
 * The values are shared (reference-counted) with the batch, never modified. */
static void merge_defaults(json_object *msg, const char *key, json_object *defaults)
{
    if (!defaults || json_object_object_length(defaults) == 0) return;
    json_object *mine = NULL;
    if (!json_object_object_get_ex(msg, key, &mine) || !mine) {
        mine = must(json_object_new_object());
        json_object_object_add(msg, key, mine);
    }
    json_object_object_foreach(defaults, k, v) {
        if (json_object_object_get_ex(mine, k, NULL)) continue;
        /* k lives in the batch's tree, which outlives this message's serialization
         * and is freed with it: no copy of the key is needed. */
        json_object_object_add_ex(mine, k, json_object_get(v),
                                  JSON_C_OBJECT_ADD_KEY_IS_NEW | JSON_C_OBJECT_KEY_IS_CONSTANT);
    }
}

/* jd_time_format's text, from a per-request cache of the whole second: only
 * the milliseconds ("...:SS.mmmZ", bytes 20..22) change within a second. */
static void put_time(json_object *msg, const char *key, int64_t us, ingest__ctx *ctx)
{
    char text[JD_TIME_TEXT];
    size_t n = 24;
    if (us < 0 || us > INGEST__TIME_MAX_US) {
        n = jd_time_format(us, text);
    } else {
        int64_t sec = us / (int64_t)JD_SEC;
        size_t slot = (size_t)sec % JD_ARRAY_LEN(ctx->tc);
        if (ctx->tc[slot].sec != sec + 1) {   /* + 1: a zeroed slot is empty */
            jd_time_format(sec * (int64_t)JD_SEC, ctx->tc[slot].text);
            ctx->tc[slot].sec = sec + 1;
        }
        int ms = (int)(us % (int64_t)JD_SEC / 1000);
        memcpy(text, ctx->tc[slot].text, n + 1);
        text[20] = (char)('0' + ms / 100);
        text[21] = (char)('0' + ms / 10 % 10);
        text[22] = (char)('0' + ms % 10);
    }
    json_object_object_add(msg, key, new_string(text, n));
}

/* (6) */
static void normalize_time(json_object *msg, ingest__ctx *ctx, state *st)
{
    int64_t rx = ctx->received_us;
    bool has_sent = st->has_time[TS_SENT_AT];
    int64_t sent = st->time_us[TS_SENT_AT];
    if (!has_sent && ctx->has_batch_sent_at) {
        has_sent = true;
        sent = ctx->batch_sent_at_us;
    }
    int slot = st->has_time[TS_TIMESTAMP] ? TS_TIMESTAMP : st->has_time[TS_ORIGINAL] ? TS_ORIGINAL : -1;
    int64_t ts = rx, original = 0;
    bool has_original = false;
    if (slot >= 0) {
        int64_t client = st->time_us[slot];
        ts = client;
        if (has_sent) {
            int64_t skew;
            if (__builtin_sub_overflow(sent, client, &skew) || __builtin_sub_overflow(rx, skew, &ts))
                ts = rx;
            original = client;
            has_original = true;
        } else if (st->has_time[TS_ORIGINAL]) {
            original = st->time_us[TS_ORIGINAL];
            has_original = true;
        }
        if (ts < 0 || ts > INGEST__TIME_MAX_US) ts = rx;
    }
    st->msg->timestamp_us = ts;
    st->msg->received_us = rx;
    put_time(msg, "receivedAt", rx, ctx);
    put_time(msg, "timestamp", ts, ctx);
    if (has_original) put_time(msg, "originalTimestamp", original, ctx);
    if (has_sent) put_time(msg, "sentAt", sent, ctx);
}

int ingest__normalize(json_object *msg, ingest_type type, ingest__ctx *ctx,
                      const char *where, ingest_msg *out, jd_err *err)
{
    int rc = JD_EINVAL;
    state st = { .msg = out };
    memset(out, 0, sizeof *out);
    out->type = type;

    json_object *v = NULL;
    if (!json_object_object_get_ex(msg, "type", &v) || !v)
        json_object_object_add(msg, "type", must(json_object_new_string(ingest_type_name(type))));

    for (size_t i = 0; i < JD_ARRAY_LEN(fields); i++) {
        const field_rule *r = &fields[i];
        if (!(r->types & BIT(type)) || !json_object_object_get_ex(msg, r->key, &v)) continue;
        if (!v) {
            json_object_object_del(msg, r->key);
            continue;
        }
        rc = r->check(msg, r, v, where, &st, err);
        if (rc != JD_OK) goto out;
    }

    /* (3) */
    /* A missing id is reported at the field, like every other missing field. */
    rc = JD_EINVAL;
    if ((type == INGEST_ALIAS && out->user_id.n == 0) || (out->user_id.n == 0 && out->anonymous_id.n == 0)) {
        char path[96];
        ingest__path(path, where, "userId");
        jd_err_set(err, rc, path, "%s", type == INGEST_ALIAS ? "userId is required" : "userId or anonymousId is required");
        goto out;
    }
    for (size_t i = 0; i < JD_ARRAY_LEN(fields); i++) {
        const field_rule *r = &fields[i];
        if (!(r->required & BIT(type)) || ((jd_str *)((char *)out + r->slot))->n != 0) continue;
        char path[96];
        ingest__path(path, where, r->key);
        jd_err_set(err, rc, path, "%s", r->missing);
        goto out;
    }

    merge_defaults(msg, "context", ctx->batch_context);
    merge_defaults(msg, "integrations", ctx->batch_integrations);

    /* (5) */
    if (out->message_id.n == 0) {
        char id[37] = "";
        if (ctx->gen_id) ctx->gen_id(ctx->gen_self, id);
        else jd_uuid4(id);
        id[36] = '\0';
        json_object *s = new_string(id, strlen(id));
        json_object_object_add(msg, "messageId", s);
        out->message_id = str_of(s);
    }

    normalize_time(msg, ctx, &st);
    rc = JD_OK;
out:
    return rc;
}
