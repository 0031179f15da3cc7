/* src/deliver/config.c -- the configuration's `channels:` map into
 * dlv_channel_cfg rows (docs/delivery.md, "Configuration").
 *
 *   channels:
 *     NAME:                       [a-z0-9_-]{1,64}
 *       kind: email|sms|push|slack|webhook
 *       url, user, password, token, project, secret, from, envelope_from,
 *       message_id_domain, ca_file:        text
 *       password_env, token_env, secret_env: an environment variable's name
 *       tls: required|optional|none        timeout, connect_timeout: durations
 *       rate: number  burst, max_in_flight, max_queued: whole numbers
 *       retry: { max_attempts, backoff, max_backoff, max_retry_after }
 *
 * One table (`keys`) lists every key with its parser and its field, so an
 * unknown key is an error naming the file, line and column.
 *
 * Invariants:
 *  (1) Every error's where is "FILE:LINE:COL" of a node of the file and its
 *      message starts with the key path ("channels.sms.user: ...").
 *  (2) A parsed channel passed dlv__chan_init, the check dlv_create makes,
 *      so dlv_create cannot refuse what this accepted.
 *  (3) The environment is read here only, once per *_env key; its value is
 *      copied (a later setenv changes nothing).
 *  (4) Strings in the rows are owned by the dlv_channels object.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver_int.h"
#include "journeyd/config.h"

#define NAME_MAX_LEN 64
#define MSEC (JD_SEC / 1000)

struct dlv_channels {
    dlv_channel_cfg *v;     /* strings owned: (4) */
    size_t n;
};

static int bad(jd_err *err, const char *file, const jd_yaml_node *at, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bad(jd_err *err, const char *file, const jd_yaml_node *at, int code, const char *fmt, ...)
{
    char where[160], msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(where, sizeof where, "%s:%u:%u", file, at->line, at->col);
    return jd_err_set(err, code, where, "%s", msg);
}

static void free_cfg(dlv_channel_cfg *c)
{
    const char *s[] = { c->name, c->url, c->user, c->password, c->token, c->project,
                        c->secret, c->from, c->envelope_from, c->message_id_domain, c->ca_file };
    for (size_t i = 0; i < JD_ARRAY_LEN(s); i++) free((char *)s[i]);
}

void dlv_channels_destroy(dlv_channels *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) free_cfg(&c->v[i]);
    free(c->v);
    free(c);
}

const dlv_channel_cfg *dlv_channels_list(const dlv_channels *c, size_t *n)
{
    *n = c ? c->n : 0;
    return c && c->n ? c->v : NULL;
}

const dlv_channel_cfg *dlv_channels_find(const dlv_channels *c, const char *name)
{
    for (size_t i = 0; c && i < c->n; i++)
        if (strcmp(c->v[i].name, name) == 0) return &c->v[i];
    return NULL;
}

/* ---- one key ------------------------------------------------------------ */

typedef enum { K_STR, K_ENV, K_TLS, K_DUR, K_RATE, K_U32, K_RETRY } ktype;

/* What parse_key knows of the channel being read. */
struct ctx {
    const char *file;
    const char *name;          /* the channel's */
    const char *prefix;        /* "channels.NAME" or "channels.NAME.retry" */
    dlv_channel_cfg *c;
    jd_err *err;
};

typedef struct key {
    const char *key;
    ktype       type;
    size_t      off;           /* field in dlv_channel_cfg; K_ENV: the field it fills */
    uint64_t    min, max;      /* K_DUR (us), K_U32 */
} key;

#define F(f) offsetof(dlv_channel_cfg, f)
static const key keys[] = {
    { "url",               K_STR, F(url), 0, 0 },
    { "user",              K_STR, F(user), 0, 0 },
    { "password",          K_STR, F(password), 0, 0 },
    { "password_env",      K_ENV, F(password), 0, 0 },
    { "token",             K_STR, F(token), 0, 0 },
    { "token_env",         K_ENV, F(token), 0, 0 },
    { "project",           K_STR, F(project), 0, 0 },
    { "secret",            K_STR, F(secret), 0, 0 },
    { "secret_env",        K_ENV, F(secret), 0, 0 },
    { "from",              K_STR, F(from), 0, 0 },
    { "envelope_from",     K_STR, F(envelope_from), 0, 0 },
    { "message_id_domain", K_STR, F(message_id_domain), 0, 0 },
    { "ca_file",           K_STR, F(ca_file), 0, 0 },
    { "tls",               K_TLS, F(tls), 0, 0 },
    { "timeout",           K_DUR, F(timeout_us), MSEC, JD_HOUR },
    { "connect_timeout",   K_DUR, F(connect_timeout_us), MSEC, JD_HOUR },
    { "rate",              K_RATE, F(rate_per_s), 0, 0 },
    { "burst",             K_U32, F(burst), 1, 1000000 },
    { "max_in_flight",     K_U32, F(max_in_flight), 1, 10000 },
    { "max_queued",        K_U32, F(max_queued), 1, 100000000 },
    { "retry",             K_RETRY, 0, 0, 0 },
};
static const key retry_keys[] = {
    { "max_attempts",    K_U32, F(retry.max_attempts), 1, 1000 },
    { "backoff",         K_DUR, F(retry.backoff_base_us), MSEC, 7 * JD_DAY },
    { "max_backoff",     K_DUR, F(retry.backoff_max_us), MSEC, 7 * JD_DAY },
    { "max_retry_after", K_DUR, F(retry.retry_after_max_us), JD_SEC, 7 * JD_DAY },
};
#undef F

static const char *scalar_text(const jd_yaml_node *v) { return v->kind == JD_YAML_SCALAR ? v->text : "(not a single value)"; }

static bool env_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || (s[0] >= '0' && s[0] <= '9')) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static int parse_map(struct ctx *x, const jd_yaml_node *map, const key *tab, size_t ntab, const jd_yaml_node **seen);

static int parse_key(struct ctx *x, const key *k, const jd_yaml_node *kn, const jd_yaml_node **seen)
{
    const jd_yaml_node *v = kn->value;
    char *base = (char *)x->c;
    const char *file = x->file, *p = x->prefix, *kk = k->key;
    jd_err *err = x->err;
    if (k->type == K_RETRY) {
        if (v->kind != JD_YAML_MAP)
            return bad(err, file, v, JD_EINVAL, "%s.retry: expected a map like { max_attempts: 8, backoff: 1s }", p);
        char rp[128];
        snprintf(rp, sizeof rp, "%s.retry", p);
        struct ctx rx = *x;
        rx.prefix = rp;
        const jd_yaml_node *rseen[JD_ARRAY_LEN(retry_keys)] = { 0 };
        return parse_map(&rx, v, retry_keys, JD_ARRAY_LEN(retry_keys), rseen);
    }
    if (v->kind != JD_YAML_SCALAR) return bad(err, file, v, JD_EINVAL, "%s.%s: expected a single value", p, kk);
    const char *t = v->text;
    switch (k->type) {
    case K_STR: {
        if (!*t) return bad(err, file, v, JD_EINVAL, "%s.%s: must not be empty", p, kk);
        char **f = (char **)(base + k->off);
        if (*f) return bad(err, file, kn, JD_EINVAL, "%s.%s: given twice (also as %s_env)", p, kk, kk);
        *f = jd_xstrdup(t);
        return JD_OK;
    }
    case K_ENV: {
        char **f = (char **)(base + k->off);
        if (!env_name_ok(t))
            return bad(err, file, v, JD_EINVAL, "%s.%s: expected an environment variable name, got '%.64s'", p, kk, t);
        if (*f) return bad(err, file, kn, JD_EINVAL, "%s.%s: the secret is also given in the file", p, kk);
        const char *e = getenv(t);   /* (3) */
        if (!e || !*e) return bad(err, file, v, JD_EINVAL, "%s.%s: environment variable %s is not set", p, kk, t);
        *f = jd_xstrdup(e);
        return JD_OK;
    }
    case K_TLS: {
        static const struct { const char *name; dlv_tls v; } tls[] = {
            { "required", DLV_TLS_REQUIRED }, { "optional", DLV_TLS_OPTIONAL }, { "none", DLV_TLS_NONE } };
        for (size_t i = 0; i < JD_ARRAY_LEN(tls); i++)
            if (strcmp(t, tls[i].name) == 0) { *(dlv_tls *)(base + k->off) = tls[i].v; return JD_OK; }
        return bad(err, file, v, JD_EINVAL, "%s.tls: expected required, optional or none, got '%.64s'", p, t);
    }
    case K_DUR: {
        uint64_t us = 0;
        if (jd_duration_parse(t, &us) != JD_OK)
            return bad(err, file, v, JD_EINVAL, "%s.%s: expected a duration like 10s, 500ms or 10m, got '%.64s'", p, kk, t);
        if (us < k->min || us > k->max)
            return bad(err, file, v, JD_EINVAL, "%s.%s: %s is out of range %s", p, kk, t,
                       k->max == JD_HOUR ? "1ms..1h" : k->min == JD_SEC ? "1s..7d" : "1ms..7d");
        *(uint64_t *)(base + k->off) = us;
        return JD_OK;
    }
    case K_RATE: {
        char *end = NULL;
        double r = (t[0] >= '0' && t[0] <= '9') ? strtod(t, &end) : -1;
        if (!end || *end || !(r > 0 && r <= 1e6))
            return bad(err, file, v, JD_EINVAL, "%s.rate: expected sends per second, a number above 0 and at most 1000000, got '%.64s'",
                       p, t);
        *(double *)(base + k->off) = r;
        return JD_OK;
    }
    case K_U32: {
        char *end = NULL;
        unsigned long long n = (t[0] >= '0' && t[0] <= '9') ? strtoull(t, &end, 10) : 0;
        if (!end || *end)
            return bad(err, file, v, JD_EINVAL, "%s.%s: expected a whole number, got '%.64s'", p, kk, t);
        if (n < k->min || n > k->max)
            return bad(err, file, v, JD_EINVAL, "%s.%s: %llu is out of range %llu..%llu", p, kk, n,
                       (unsigned long long)k->min, (unsigned long long)k->max);
        *(uint32_t *)(base + k->off) = (uint32_t)n;
        return JD_OK;
    }
    case K_RETRY: break;
    }
    (void)seen;
    return JD_OK;
}

/* Reads the keys of map against tab; seen[i] records where tab[i] was, so a
 * key given twice is an error. `kind` is handled by the caller. */
static int parse_map(struct ctx *x, const jd_yaml_node *map, const key *tab, size_t ntab, const jd_yaml_node **seen)
{
    for (const jd_yaml_node *kn = map->child; kn; kn = kn->next) {
        if (tab == keys && strcmp(kn->text, "kind") == 0) continue;
        size_t i = 0;
        while (i < ntab && strcmp(tab[i].key, kn->text) != 0) i++;
        if (i == ntab) {
            return bad(x->err, x->file, kn, JD_EINVAL, "%s.%.64s: unknown key (%s)", x->prefix, kn->text,
                       tab == keys ? "docs/delivery.md lists a channel's keys"
                                   : "known: max_attempts, backoff, max_backoff, max_retry_after");
        }
        if (seen[i]) return bad(x->err, x->file, kn, JD_EINVAL, "%s.%s: given twice", x->prefix, kn->text);
        seen[i] = kn;
        int rc = parse_key(x, &tab[i], kn, seen);
        if (rc != JD_OK) return rc;
    }
    return JD_OK;
}

static bool name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > NAME_MAX_LEN) return false;
    for (size_t i = 0; i < len; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '_' || n[i] == '-')) return false;
    return true;
}

/* The node an error of dlv__chan_init about `field` points at: the key's
 * value if it was written, else the channel's name. */
static const jd_yaml_node *field_node(const jd_yaml_node *chan, const jd_yaml_node *const *seen, const char *field)
{
    for (size_t i = 0; i < JD_ARRAY_LEN(keys); i++) {
        if (!seen[i]) continue;
        size_t fl = strlen(field);
        /* password_env counts as password */
        if (strcmp(keys[i].key, field) == 0 || (strncmp(keys[i].key, field, fl) == 0 && strcmp(keys[i].key + fl, "_env") == 0))
            return seen[i]->value;
    }
    return chan;
}

static int parse_channel(const jd_yaml_node *kn, const char *file, dlv_channel_cfg *c, jd_err *err)
{
    const char *name = kn->text;
    const jd_yaml_node *v = kn->value;
    if (!name_ok(name))
        return bad(err, file, kn, JD_EINVAL, "channels.%.64s: a channel name is 1 to 64 of a-z, 0-9, _ or -", name);
    c->name = jd_xstrdup(name);
    char prefix[96];
    snprintf(prefix, sizeof prefix, "channels.%s", name);
    if (v->kind != JD_YAML_MAP)
        return bad(err, file, v, JD_EINVAL, "%s: expected a map like { kind: email, url: smtp://host:587, ... }", prefix);
    const jd_yaml_node *kv = jd_yaml_get(v, "kind");
    if (!kv) return bad(err, file, kn, JD_EINVAL, "%s: needs a kind (email, sms, push, slack or webhook)", prefix);
    if (kv->kind != JD_YAML_SCALAR || dlv_kind_parse(kv->text, &c->kind) != JD_OK)
        return bad(err, file, kv, JD_EINVAL, "%s.kind: expected email, sms, push, slack or webhook, got '%.64s'", prefix,
                   scalar_text(kv));
    struct ctx x = { file, name, prefix, c, err };
    const jd_yaml_node *seen[JD_ARRAY_LEN(keys)] = { 0 };
    int rc = parse_map(&x, v, keys, JD_ARRAY_LEN(keys), seen);
    if (rc != JD_OK) return rc;
    /* (2): the transport's own checks, mapped back onto the file */
    dlv__chan ch;
    jd_err cerr;
    jd_err_clear(&cerr);
    rc = dlv__chan_init(&ch, c, &cerr);
    dlv__chan_release(&ch);
    if (rc != JD_OK) {
        const char *dot = strrchr(cerr.where, '.');
        const char *field = dot ? dot + 1 : "";
        return bad(err, file, field_node(kn, seen, field), rc, "%s: %s", cerr.where, cerr.msg);
    }
    return JD_OK;
}

int dlv_channels_parse(const jd_yaml_node *map, const char *file, dlv_channels **out, jd_err *err)
{
    *out = NULL;
    if (!map || (map->kind == JD_YAML_SCALAR && !map->quoted &&
                 (!*map->text || strcmp(map->text, "~") == 0 || strcmp(map->text, "null") == 0)))
        return JD_OK;   /* `channels:` with nothing under it */
    if (map->kind != JD_YAML_MAP)
        return bad(err, file, map, JD_EINVAL, "channels: expected a map of channels, like email: { kind: email, url: ... }");
    dlv_channels *cs = jd_xcalloc(1, sizeof *cs);
    int rc = JD_OK;
    for (const jd_yaml_node *k = map->child; k; k = k->next) {
        if (cs->n == DLV_MAX_CHANNELS) {
            rc = bad(err, file, k, JD_ELIMIT, "channels: more than %d channels", DLV_MAX_CHANNELS);
            goto out;
        }
        if (dlv_channels_find(cs, k->text)) {
            rc = bad(err, file, k, JD_EINVAL, "channels.%.64s: defined twice", k->text);
            goto out;
        }
        cs->v = jd_xrealloc(cs->v, (cs->n + 1) * sizeof *cs->v);
        memset(&cs->v[cs->n], 0, sizeof cs->v[cs->n]);
        rc = parse_channel(k, file, &cs->v[cs->n], err);
        cs->n++;   /* counted even on error, so that destroy frees its strings */
        if (rc != JD_OK) goto out;
    }
out:
    if (rc != JD_OK || cs->n == 0) {
        dlv_channels_destroy(cs);
        cs = NULL;
    }
    *out = cs;
    return rc;
}
