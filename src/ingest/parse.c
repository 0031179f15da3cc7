/* src/ingest/parse.c -- a request body in, normalized Segment messages out.
 *
 * The path of one body, each step refusing the whole request on failure:
 *   size check on the raw bytes   [ingest_parse]   before any parsing work
 *   strict JSON, depth-limited    [read_json]      json-c, then strict_scan
 *   route envelope                [parse_single] / [parse_batch]
 *   per message                   [ingest__normalize, normalize.c]
 *   serialize once                [finish_msg]     compact JSON, size check
 *
 * Invariants:
 *  (1) The body is parsed once into one json_object tree; messages are edited
 *      in place and each is serialized once. The batch owns the tree, and every
 *      jd_str in its messages (ids, event, the JSON text, the write key) points
 *      into it: a message costs no copies beyond json-c's own nodes.
 *  (2) All or nothing: on any error nothing is returned and the tree is freed.
 *  (3) Strict JSON means RFC 8259. json-c 0.16's JSON_TOKENER_STRICT still lets
 *      through NaN, Infinity, single-quoted keys, "1.", "-01" and raw control
 *      characters in strings; strict_scan() refuses those after json-c has
 *      accepted the text (so its error positions win for everything else).
 *      UTF-8 is validated (JSON_TOKENER_VALIDATE_UTF8).
 *  (4) Duplicate keys: the last one wins (json-c replaces the value; the key
 *      keeps its first position).
 * Pure: the clock and the id source are arguments.
 */
#include "ingest_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/limits.h"

#define JSON_OUT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
/* json-c keeps a parse stack of this many frames, and freeing and printing a
 * tree recurse: a configured depth is clamped to it. */
#define DEPTH_CEILING 1024u

/* The batch, its messages and the tree, freed together by ingest_batch_destroy. */
typedef struct owner {
    ingest_batch pub;
    json_object *root;
    json_object *write_key;   /* a reference held on the body's writeKey string */
} owner;

static const char *const type_names[INGEST_TYPE_COUNT_] = {
    [INGEST_TRACK] = "track", [INGEST_IDENTIFY] = "identify", [INGEST_PAGE] = "page",
    [INGEST_SCREEN] = "screen", [INGEST_GROUP] = "group", [INGEST_ALIAS] = "alias",
};

const char *ingest_type_name(ingest_type t)
{
    return t >= INGEST_TRACK && t < INGEST_TYPE_COUNT_ ? type_names[t] : "?";
}

int ingest_type_parse(const char *s, ingest_type *out)
{
    for (int t = INGEST_TRACK; t < INGEST_TYPE_COUNT_; t++) {
        if (strcmp(s, type_names[t]) == 0) {
            *out = (ingest_type)t;
            return JD_OK;
        }
    }
    return JD_EINVAL;
}

void ingest_limits_default(ingest_limits *l)
{
    l->max_message_bytes = JD_DEF_MAX_MESSAGE_BYTES;
    l->max_batch_bytes = JD_DEF_MAX_BATCH_BYTES;
    l->max_batch_messages = JD_DEF_MAX_BATCH_MESSAGES;
    l->max_json_depth = JD_DEF_MAX_JSON_DEPTH;
}

/* ---- strict JSON ------------------------------------------------------- */

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* RFC 8259 number at s[i]: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
 * Returns the index after it, or sets *bad to the offending index. */
static size_t scan_number(const char *s, size_t n, size_t i, size_t *bad)
{
    if (s[i] == '-') i++;
    if (i >= n || !is_digit(s[i])) goto fail;
    if (s[i] == '0') {
        if (++i < n && is_digit(s[i])) goto fail;
    } else {
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && s[i] == '.') {
        if (++i >= n || !is_digit(s[i])) goto fail;
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        if (++i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !is_digit(s[i])) goto fail;
        while (i < n && is_digit(s[i])) i++;
    }
    return i;
fail:
    *bad = i;
    return 0;
}

/* (3) Runs over text json-c accepted, so strings are closed and escapes valid.
 * Returns false with *at and *why set at the first thing RFC 8259 refuses, or
 * with *why NULL when objects and arrays nest deeper than max_depth (json-c's
 * own depth counts a scalar inside the innermost container as a level). */
static bool strict_scan(const char *s, size_t n, unsigned max_depth, size_t *at, const char **why)
{
    size_t i = 0;
    unsigned depth = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] == '\\') { i++; continue; }
                if ((unsigned char)s[i] < 0x20) {
                    *at = i;
                    *why = "invalid string sequence";
                    return false;
                }
            }
            i++;
        } else if (c == '-' || is_digit(c)) {
            size_t bad = 0, end = scan_number(s, n, i, &bad);
            if (end == 0) {
                *at = bad;
                *why = "number expected";
                return false;
            }
            i = end;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth) {
                *at = i;
                *why = NULL;
                return false;
            }
            i++;
        } else if (c == '}' || c == ']') {
            depth--;
            i++;
        } else if (c == '\'' || c == 'N' || c == 'I') {   /* 'key', NaN, Infinity */
            *at = i;
            *why = "unexpected character";
            return false;
        } else {
            i++;
        }
    }
    return true;
}

static int json_error(const char *s, size_t n, size_t at, const char *why, jd_err *err)
{
    size_t line = 1, line_start = 0;
    for (size_t k = 0; k < at && k < n; k++) {
        if (s[k] == '\n') {
            line++;
            line_start = k + 1;
        }
    }
    return jd_err_set(err, JD_EINVAL, "", "invalid JSON at byte %zu (line %zu, column %zu): %s", at,
                      line, at - line_start + 1, why);
}

static int too_deep(unsigned depth, jd_err *err)
{
    return jd_err_set(err, JD_ELIMIT, "", "JSON nested deeper than %u levels (limits.max_json_depth)", depth);
}

static int read_json(const ingest_limits *lim, const char *body, size_t n, json_object **out,
                     jd_err *err)
{
    int rc = JD_EINVAL;
    json_object *v = NULL;
    const char *why = NULL;
    unsigned depth = lim->max_json_depth ? lim->max_json_depth : 1;
    if (depth > DEPTH_CEILING) depth = DEPTH_CEILING;
    /* + 1: json-c counts a value inside the innermost container as a level */
    json_tokener *tok = json_tokener_new_ex((int)depth + 1);
    if (!tok) {   /* json-c returns NULL only when malloc fails: the OOM policy */
        fprintf(stderr, "journeyd: out of memory (json_tokener_new_ex)\n");
        abort();
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);

    v = json_tokener_parse_ex(tok, body, (int)n);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t at = json_tokener_get_parse_end(tok);
    if (je == json_tokener_continue) {
        /* The end of input: a bare number can only end here (json-c's idiom is
         * to pass the terminating NUL). */
        v = json_tokener_parse_ex(tok, "", 1);
        je = json_tokener_get_error(tok);
        at = n;
    }
    if (je == json_tokener_error_depth) {
        rc = too_deep(depth, err);
        goto out;
    }
    if (je != json_tokener_success) {
        /* json-c takes a NUL byte for the end of the text and reports the byte
         * after it: name the NUL instead. */
        const char *nul = memchr(body, '\0', JD_MIN_OF(n, at + 1));
        if (nul) at = (size_t)(nul - body);
        rc = json_error(body, n, at, nul ? "unexpected character" : json_tokener_error_desc(je), err);
        goto out;
    }
    while (at < n && is_ws(body[at])) at++;
    if (at < n) {   /* json-c stops at a NUL byte as if the text ended there */
        rc = json_error(body, n, at, "unexpected character", err);
        goto out;
    }
    if (!strict_scan(body, n, depth, &at, &why)) {
        rc = why ? json_error(body, n, at, why, err) : too_deep(depth, err);
        goto out;
    }
    *out = v;
    v = NULL;
    rc = JD_OK;
out:
    json_object_put(v);
    json_tokener_free(tok);
    return rc;
}

/* ---- envelopes ----------------------------------------------------------- */

static owner *owner_create(json_object *root, size_t n)
{
    owner *o = jd_xcalloc(1, sizeof *o + n * sizeof(ingest_msg));
    o->pub.n = n;
    o->pub.msgs = (ingest_msg *)(o + 1);
    o->pub._owner = o;
    o->root = root;
    return o;
}

void ingest_batch_destroy(ingest_batch *b)
{
    if (!b) return;
    owner *o = b->_owner;
    json_object_put(o->write_key);
    json_object_put(o->root);
    free(o);
}

/* A key that must be a string when present (null: absent). */
static int opt_string(json_object *obj, const char *key, json_object **out, jd_err *err)
{
    json_object *v = NULL;
    *out = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || !v) return JD_OK;
    if (!json_object_is_type(v, json_type_string))
        return jd_err_set(err, JD_EINVAL, key, "expected string, got %s", ingest__json_type_name(v));
    *out = v;
    return JD_OK;
}

static int opt_object(json_object *obj, const char *key, json_object **out, jd_err *err)
{
    json_object *v = NULL;
    *out = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || !v) return JD_OK;
    if (!json_object_is_type(v, json_type_object))
        return jd_err_set(err, JD_EINVAL, key, "expected object, got %s", ingest__json_type_name(v));
    *out = v;
    return JD_OK;
}

/* Serializes a normalized message once; the text stays in msg's own print buffer. */
static int finish_msg(json_object *msg, ingest_msg *m, size_t max, const char *where, jd_err *err)
{
    size_t len = 0;
    const char *text = json_object_to_json_string_length(msg, JSON_OUT_FLAGS, &len);
    if (!text) {   /* only when malloc fails: the OOM policy */
        fprintf(stderr, "journeyd: out of memory (json_object_to_json_string)\n");
        abort();
    }
    if (len > max)
        return jd_err_set(err, JD_ELIMIT, where,
                          "message is %zu bytes, over the %zu-byte limit (limits.max_message_bytes)",
                          len, max);
    m->json = (jd_str){ text, (uint32_t)len };
    return JD_OK;
}

static int parse_single(ingest_type type, owner *o,
                        ingest__ctx *ctx, jd_err *err)
{
    int rc = JD_EINVAL;
    json_object *msg = o->root, *t = NULL, *wk = NULL;
    const char *name = ingest_type_name(type);

    if (json_object_object_get_ex(msg, "type", &t) && t) {
        if (!json_object_is_type(t, json_type_string)) {
            rc = jd_err_set(err, rc, "type", "expected string, got %s", ingest__json_type_name(t));
            goto out;
        }
        if (strlen(name) != (size_t)json_object_get_string_len(t) ||
            strcmp(name, json_object_get_string(t)) != 0) {
            rc = jd_err_set(err, rc, "type", "expected type \"%s\", got \"%.40s\"", name,
                            json_object_get_string(t));
            goto out;
        }
    }
    rc = opt_string(msg, "writeKey", &wk, err);
    if (rc != JD_OK) goto out;
    if (wk) {   /* normalize drops writeKey from the message: keep the string alive */
        o->write_key = json_object_get(wk);
        o->pub.write_key = (jd_str){ json_object_get_string(wk), (uint32_t)json_object_get_string_len(wk) };
    }
    rc = ingest__normalize(msg, type, ctx, "", &o->pub.msgs[0], err);
    if (rc != JD_OK) goto out;
    /* The raw body was within max_message_bytes; the added fields are not held against it. */
    rc = finish_msg(msg, &o->pub.msgs[0], SIZE_MAX, "", err);
out:
    return rc;
}

static int batch_msg_type(json_object *el, const char *where, ingest_type *type, jd_err *err)
{
    json_object *t = NULL;
    char path[96];
    ingest__path(path, where, "type");
    if (!json_object_object_get_ex(el, "type", &t) || !t)
        return jd_err_set(err, JD_EINVAL, path, "type is required");
    if (!json_object_is_type(t, json_type_string))
        return jd_err_set(err, JD_EINVAL, path, "expected string, got %s", ingest__json_type_name(t));
    if ((size_t)json_object_get_string_len(t) != strlen(json_object_get_string(t)) ||
        ingest_type_parse(json_object_get_string(t), type) != JD_OK)
        return jd_err_set(err, JD_EINVAL, path, "unknown type \"%.40s\"", json_object_get_string(t));
    return JD_OK;
}

/* "batch[17]", without snprintf: it runs for every message. */
static void batch_where(char out[96], size_t i)
{
    char digits[24];
    size_t n = 0;
    do digits[n++] = (char)('0' + i % 10); while ((i /= 10) != 0);
    memcpy(out, "batch[", 6);
    for (size_t k = 0; k < n; k++) out[6 + k] = digits[n - 1 - k];
    out[6 + n] = ']';
    out[7 + n] = '\0';
}

static int parse_batch(const ingest_limits *lim, json_object *root, ingest__ctx *ctx, owner **out,
                       jd_err *err)
{
    int rc = JD_EINVAL;
    owner *o = NULL;
    json_object *arr = NULL, *sent = NULL, *wk = NULL;

    if (!json_object_object_get_ex(root, "batch", &arr) || !arr) {
        rc = jd_err_set(err, rc, "batch", "batch is required");
        goto out;
    }
    if (!json_object_is_type(arr, json_type_array)) {
        rc = jd_err_set(err, rc, "batch", "expected array, got %s", ingest__json_type_name(arr));
        goto out;
    }
    size_t n = json_object_array_length(arr);
    if (n > lim->max_batch_messages) {
        rc = jd_err_set(err, JD_ELIMIT, "batch",
                        "batch has %zu messages, over the %u-message limit (limits.max_batch_messages)",
                        n, lim->max_batch_messages);
        goto out;
    }
    if ((rc = opt_object(root, "context", &ctx->batch_context, err)) != JD_OK ||
        (rc = opt_object(root, "integrations", &ctx->batch_integrations, err)) != JD_OK ||
        (rc = opt_string(root, "writeKey", &wk, err)) != JD_OK)
        goto out;
    if (json_object_object_get_ex(root, "sentAt", &sent) && sent) {
        rc = ingest__time_field(sent, "", "sentAt", &ctx->batch_sent_at_us, err);
        if (rc != JD_OK) goto out;
        ctx->has_batch_sent_at = true;
    }

    o = owner_create(root, n);
    if (wk) o->pub.write_key = (jd_str){ json_object_get_string(wk), (uint32_t)json_object_get_string_len(wk) };
    for (size_t i = 0; i < n; i++) {
        json_object *el = json_object_array_get_idx(arr, i);
        char where[96];
        ingest_type type = INGEST_TRACK;
        batch_where(where, i);
        if (!json_object_is_type(el, json_type_object)) {
            rc = jd_err_set(err, JD_EINVAL, where, "expected object, got %s", ingest__json_type_name(el));
            goto out;
        }
        if ((rc = batch_msg_type(el, where, &type, err)) != JD_OK ||
            (rc = ingest__normalize(el, type, ctx, where, &o->pub.msgs[i], err)) != JD_OK ||
            (rc = finish_msg(el, &o->pub.msgs[i], lim->max_message_bytes, where, err)) != JD_OK)
            goto out;
    }
    *out = o;
    o = NULL;
    rc = JD_OK;
out:
    if (o) {
        o->root = NULL;   /* the caller still owns root on failure */
        ingest_batch_destroy(&o->pub);
    }
    return rc;
}

int ingest_parse(const ingest_limits *lim, ingest_route route, const char *body, size_t n,
                 int64_t received_us, ingest_id_fn gen_id, void *gen_self, ingest_batch **out,
                 jd_err *err)
{
    int rc = JD_EINVAL;
    json_object *root = NULL;
    owner *o = NULL;
    ingest__ctx ctx = { .received_us = received_us, .gen_id = gen_id, .gen_self = gen_self };
    bool batch = route == INGEST_ROUTE_BATCH;

    *out = NULL;
    if (route < INGEST_ROUTE_TRACK || route > INGEST_ROUTE_BATCH) {
        rc = jd_err_set(err, JD_EINVAL, "", "unknown route %d", (int)route);
        goto out;
    }
    size_t max = batch ? lim->max_batch_bytes : lim->max_message_bytes;
    if (n > max || n > INT_MAX - 1) {   /* json-c takes an int length */
        rc = jd_err_set(err, JD_ELIMIT, "", "%s is %zu bytes, over the %zu-byte limit (limits.%s)",
                        batch ? "batch" : "message", n, max,
                        batch ? "max_batch_bytes" : "max_message_bytes");
        goto out;
    }
    rc = read_json(lim, body, n, &root, err);
    if (rc != JD_OK) goto out;
    if (!json_object_is_type(root, json_type_object)) {
        rc = jd_err_set(err, JD_EINVAL, "", "expected a JSON object, got %s", ingest__json_type_name(root));
        goto out;
    }
    if (batch) {
        rc = parse_batch(lim, root, &ctx, &o, err);
    } else {
        o = owner_create(root, 1);
        rc = parse_single((ingest_type)route, o, &ctx, err);
    }
    if (rc != JD_OK) goto out;
    root = NULL;   /* o owns it */
    *out = &o->pub;
    o = NULL;
out:
    if (o) {
        o->root = NULL;
        ingest_batch_destroy(&o->pub);
    }
    json_object_put(root);
    return rc;
}
