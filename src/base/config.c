/* src/base/config.c -- journeyd's settings: defaults, then the YAML file, then flags.
 *
 * One table (`settings`) lists every key with its parser, its field and a line
 * of help; loading a file walks the YAML tree against it, so an unknown key is
 * an error that names the file, line and column, never a silent no-op.
 * Two sections are not in the table: `computed:` is a map of trait
 * definitions whose meaning is the profile module's, so its tree goes to
 * prof_computed_parse; `channels:` is the delivery channels, whose tree goes
 * to dlv_channels_parse (the only calls from here into modules).
 */
#include "journeyd/config.h"
#include "journeyd/deliver.h"
#include "journeyd/limits.h"
#include "journeyd/profile.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { T_STR, T_U32, T_U64, T_DURATION_US, T_DURATION_S, T_SIZE32, T_SIZE64, T_LISTEN,
               T_STRLIST, T_NAMELIST, T_LOGLEVEL } vtype;

typedef struct setting {
    const char *key;
    vtype       type;
    size_t      off;        /* field offset in jd_config */
    size_t      count_off;  /* T_STRLIST, T_NAMELIST: offset of its uint32_t count */
    uint64_t    min, max;   /* numbers: allowed range (inclusive); T_NAMELIST: max entries */
    const char *help;
} setting;

#define F(f) offsetof(jd_config, f)
static const setting settings[] = {
    { "data",        T_STR,      F(data_dir), 0, 0, 0, "folder for the log and snapshots" },
    { "listen",      T_LISTEN,   0, 0, 0, 0, "HOST:PORT to serve HTTP on (port 0: any free port)" },
    { "log_level",   T_LOGLEVEL, F(log_level), 0, 0, 0, "debug, info, warn or error" },
    { "write_keys",  T_STRLIST,  F(write_keys), F(n_write_keys), 0, 0, "Segment write keys accepted (HTTP Basic user name)" },
    { "admin_tokens", T_STRLIST, F(admin_tokens), F(n_admin_tokens), 0, 0, "tokens for the admin API (Authorization: Bearer)" },
    { "journeys.dir", T_STR,     F(journeys_dir), 0, 0, 0, "folder of journey documents loaded at start" },
    { "segments.dir", T_STR,     F(segments_dir), 0, 0, 0, "folder of segment documents defined at start" },
    { "templates.dir", T_STR,    F(templates_dir), 0, 0, 0, "folder of message templates (one YAML file each) loaded at start" },
    { "engine.shards",     T_U32, F(shards), 0, 0, JD_MAX_SHARDS, "shard threads (0: one per core)" },
    { "engine.partitions", T_U32, F(partitions), 0, 1, JD_MAX_PARTITIONS, "partitions (a power of two, fixed per data folder)" },
    { "engine.max_pending", T_U32, F(max_pending), 0, 1, 10000000, "requests waiting for the log before 503" },
    { "engine.snapshot_every", T_U64, F(snapshot_every), 0, 1000, UINT64_MAX, "records between snapshots" },
    { "engine.max_backlog", T_U64, F(max_backlog), 0, 1, UINT64_MAX, "records a shard may have waiting before requests are held (then 503 past engine.max_pending)" },
    { "engine.tick", T_DURATION_US, F(tick_us), 0, 1000, 60 * JD_SEC, "least time between clock records while journey waits are due" },
    { "journeys.recent_intents", T_U32, F(recent_intents), 0, 0, 1u << 20, "intents kept per partition for GET /v1/intents" },
    { "tasks.max_open", T_U32, F(tasks_max_open), 0, 1, 10000000, "open human tasks per partition (past it new tasks are dropped)" },
    { "http.threads",      T_U32, F(http_threads), 0, 1, 64, "HTTP server threads" },
    { "http.max_connections", T_U32, F(max_connections), 0, 1, 1000000, "open connections at most" },
    { "http.connection_timeout", T_DURATION_S, F(connection_timeout_s), 0, 1, 86400, "idle connection timeout" },
    { "limits.max_message_bytes", T_SIZE32, F(max_message_bytes), 0, 256, 16u << 20, "bytes a message (Segment: 32KB)" },
    { "limits.max_batch_bytes",   T_SIZE32, F(max_batch_bytes), 0, 1024, 64u << 20, "bytes a batch request (Segment: 500KB)" },
    { "limits.max_batch_messages", T_U32,   F(max_batch_messages), 0, 1, 1000000, "messages a batch" },
    { "limits.max_inflated_bytes", T_SIZE32, F(max_inflated_bytes), 0, 1024, 1u << 30, "bytes a gzip body may inflate to" },
    { "limits.max_json_depth", T_U32, F(max_json_depth), 0, 2, 1000, "JSON nesting depth" },
    { "dedupe.window",      T_DURATION_US, F(dedupe_window_us), 0, 0, 30 * JD_DAY, "how long a messageId is remembered" },
    { "dedupe.max_entries", T_U64, F(dedupe_max_entries), 0, 1024, 1ull << 32, "messageIds remembered at most (16 bytes each)" },
    { "log.segment_bytes",  T_SIZE64, F(segment_bytes), 0, 4096, 1ull << 40, "log segment file size" },
    { "profiles.max_traits_bytes", T_SIZE32, F(max_traits_bytes), 0, 64, 16u << 20, "traits JSON a profile" },
    { "profiles.max_anonymous_ids", T_U32, F(max_anonymous_ids), 0, 1, 65535, "anonymousIds a profile" },
    { "profiles.max_event_names", T_U32, F(max_event_names), 0, 1, 65535, "distinct event names counted a profile" },
    { "profiles.max_groups", T_U32, F(max_groups), 0, 1, 100000, "groups a profile belongs to" },
    { "profiles.max_tags", T_U32, F(max_tags), 0, 0, 100000, "tags a profile carries (set by journeys' update nodes)" },
    { "profiles.timeline", T_U32, F(timeline), 0, 0, JD_MAX_TIMELINE, "latest events and messages kept per profile (0: none)" },
    { "clock.travel", T_U32, F(clock_travel), 0, 0, 1, "1: POST /v1/clock moves time forward (staging and tests; never in production)" },
    { "identity.identifiers", T_STRLIST, F(identifiers), F(n_identifiers), 0, 0,
      "identify traits that identify a person (e.g. email, phone): linked across devices, merged on" },
    { "identity.max_user_ids", T_U32, F(max_user_ids), 0, 1, 16, "userIds one profile may have: a merge past it is refused" },
    { "identity.max_per_identifier", T_U32, F(max_per_identifier), 0, 1, 64, "values of each declared identifier one profile may have" },
    { "consent.exempt", T_NAMELIST, F(consent.exempt), F(consent.n_exempt), 0, JD_MAX_CONSENT_NAMES,
      "topics that need no consent on any channel (e.g. transactional, security)" },
    { "consent.opt_out", T_NAMELIST, F(consent.opt_out), F(consent.n_opt_out), 0, JD_MAX_CONSENT_NAMES,
      "channels where a person with no consent entry may be messaged (others: opt-in)" },
    { "links.secret", T_STR, F(links_secret), 0, 0, 0, "HMAC key of tracking links (default: drawn once, kept in DATA/credentials)" },
    { "links.base_url", T_STR, F(links_base_url), 0, 0, 0, "public URL tracking links start with (default: http://LISTEN)" },
    { "links.max_age", T_DURATION_US, F(links_max_age_us), 0, 0, UINT64_MAX, "tracking links older than this are refused (0: never)" },
};
#undef F

void jd_config_init(jd_config *c)
{
    memset(c, 0, sizeof *c);
    c->data_dir = jd_xstrdup("data");
    c->listen_host = jd_xstrdup("127.0.0.1");
    c->listen_port = 8080;
    c->journeys_dir = jd_xstrdup("journeys");
    c->segments_dir = jd_xstrdup("segments");
    c->templates_dir = jd_xstrdup("templates");
    c->log_level = JD_LOG_INFO;
    c->shards = 0;
    c->partitions = JD_DEF_PARTITIONS;
    c->max_pending = JD_DEF_INGEST_QUEUE_TXNS;
    c->snapshot_every = JD_DEF_SNAPSHOT_EVERY;
    c->max_tags = JD_DEF_MAX_TAGS;
    c->timeline = JD_DEF_TIMELINE;
    c->tick_us = 10 * 1000;
    c->max_backlog = 200000;
    c->recent_intents = 256;
    c->tasks_max_open = JD_DEF_TASKS_MAX_OPEN;
    c->http_threads = JD_DEF_HTTP_THREADS;
    c->max_connections = JD_DEF_MAX_CONNECTIONS;
    c->connection_timeout_s = JD_DEF_CONNECTION_TIMEOUT_S;
    c->max_message_bytes = JD_DEF_MAX_MESSAGE_BYTES;
    c->max_batch_bytes = JD_DEF_MAX_BATCH_BYTES;
    c->max_batch_messages = JD_DEF_MAX_BATCH_MESSAGES;
    c->max_inflated_bytes = JD_DEF_MAX_INFLATED_BYTES;
    c->max_json_depth = JD_DEF_MAX_JSON_DEPTH;
    c->dedupe_window_us = JD_DEF_DEDUPE_WINDOW_US;
    c->dedupe_max_entries = JD_DEF_DEDUPE_MAX_ENTRIES;
    c->segment_bytes = JD_DEF_SEGMENT_BYTES;
    c->max_traits_bytes = JD_DEF_MAX_TRAITS_BYTES;
    c->max_anonymous_ids = JD_DEF_MAX_ANON_IDS;
    c->max_event_names = JD_DEF_MAX_EVENT_NAMES;
    c->max_groups = JD_DEF_MAX_GROUPS;
    c->max_user_ids = 1;
    c->max_per_identifier = 1;
}

static void free_list(char **l, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) free(l[i]);
    free(l);
}

void jd_config_release(jd_config *c)
{
    free(c->config_path);
    free(c->data_dir);
    free(c->listen_host);
    free(c->journeys_dir);
    free(c->segments_dir);
    free(c->templates_dir);
    free(c->links_secret);
    free(c->links_base_url);
    free_list(c->write_keys, c->n_write_keys);
    free_list(c->identifiers, c->n_identifiers);
    free_list(c->admin_tokens, c->n_admin_tokens);
    free_list(c->consent.exempt, c->consent.n_exempt);
    free_list(c->consent.opt_out, c->consent.n_opt_out);
    prof_computed_defs_destroy(c->computed);
    dlv_channels_destroy(c->channels);
    dlv_guards_destroy(c->guards);
    memset(c, 0, sizeof *c);
}

static const setting *find_setting(const char *key)
{
    for (size_t i = 0; i < JD_ARRAY_LEN(settings); i++)
        if (strcmp(settings[i].key, key) == 0) return &settings[i];
    return NULL;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!*s || *s == '-' || *s == '+') return JD_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return JD_EINVAL;
    *out = v;
    return JD_OK;
}

static int set_listen(jd_config *c, const char *v, const char *src, jd_err *err)
{
    const char *colon = strrchr(v, ':');
    uint64_t port;
    if (!colon || colon == v || parse_u64(colon + 1, &port) != JD_OK || port > 65535)
        return jd_err_set(err, JD_EINVAL, src, "listen: expected HOST:PORT, got '%s'", v);
    const char *h = v;
    size_t hn = (size_t)(colon - v);
    if (h[0] == '[' && hn >= 2 && h[hn - 1] == ']') { h++; hn -= 2; }   /* [::1]:8080 */
    free(c->listen_host);
    c->listen_host = jd_xstrndup(h, hn);
    c->listen_port = (uint16_t)port;
    return JD_OK;
}

int jd_config_set(jd_config *c, const char *key, const char *value, const char *source, jd_err *err)
{
    const setting *s = find_setting(key);
    if (!s) return jd_err_set(err, JD_EINVAL, source, "unknown setting '%s'", key);
    char *base = (char *)c;
    uint64_t v = 0;
    int rc = JD_OK;
    switch (s->type) {
    case T_STR: {
        if (!*value) return jd_err_set(err, JD_EINVAL, source, "%s: must not be empty", key);
        char **f = (char **)(base + s->off);
        free(*f);
        *f = jd_xstrdup(value);
        return JD_OK;
    }
    case T_LISTEN:
        return set_listen(c, value, source, err);
    case T_LOGLEVEL:
        if (jd_log_parse_level(value, (jd_log_level *)(base + s->off)) != JD_OK)
            return jd_err_set(err, JD_EINVAL, source, "%s: expected debug, info, warn or error, got '%s'", key, value);
        return JD_OK;
    case T_STRLIST: {
        char ***l = (char ***)(base + s->off);
        uint32_t *n = (uint32_t *)(base + s->count_off);
        if (!*value) return jd_err_set(err, JD_EINVAL, source, "%s: an entry must not be empty", key);
        if (*n >= JD_MAX_KEYS) return jd_err_set(err, JD_ELIMIT, source, "%s: more than %d entries", key, JD_MAX_KEYS);
        *l = jd_xrealloc(*l, (*n + 1) * sizeof **l);
        (*l)[(*n)++] = jd_xstrdup(value);
        return JD_OK;
    }
    case T_NAMELIST: {   /* names the profile module matches byte for byte: checked here, where the file position is known */
        char ***l = (char ***)(base + s->off);
        uint32_t *n = (uint32_t *)(base + s->count_off);
        size_t len = strlen(value);
        bool ok = len >= 1 && len <= JD_MAX_CONSENT_NAME_BYTES;
        for (size_t k = 0; k < len && ok; k++)
            ok = (value[k] >= 'a' && value[k] <= 'z') || (value[k] >= '0' && value[k] <= '9') || value[k] == '_' || value[k] == '-';
        if (!ok)
            return jd_err_set(err, JD_EINVAL, source, "%s: '%.80s' is not a name of 1..%d bytes of a-z, 0-9, _ or -", key, value,
                              JD_MAX_CONSENT_NAME_BYTES);
        for (uint32_t k = 0; k < *n; k++)
            if (strcmp((*l)[k], value) == 0) return jd_err_set(err, JD_EINVAL, source, "%s: lists '%s' twice", key, value);
        if (*n >= s->max) return jd_err_set(err, JD_ELIMIT, source, "%s: more than %u entries", key, (unsigned)s->max);
        *l = jd_xrealloc(*l, (*n + 1) * sizeof **l);
        (*l)[(*n)++] = jd_xstrdup(value);
        return JD_OK;
    }
    case T_U32: case T_U64:
        rc = parse_u64(value, &v);
        if (rc) return jd_err_set(err, JD_EINVAL, source, "%s: expected a whole number, got '%s'", key, value);
        break;
    case T_DURATION_US: case T_DURATION_S:
        rc = jd_duration_parse(value, &v);
        if (rc) return jd_err_set(err, JD_EINVAL, source, "%s: expected a duration like 24h, 90s or 500ms, got '%s'", key, value);
        if (s->type == T_DURATION_S) v /= JD_SEC;
        break;
    case T_SIZE32: case T_SIZE64:
        rc = jd_size_parse(value, &v);
        if (rc) return jd_err_set(err, JD_EINVAL, source, "%s: expected a size like 32KB, 500KiB or 64MiB, got '%s'", key, value);
        break;
    }
    if (v < s->min || v > s->max)
        return jd_err_set(err, JD_EINVAL, source, "%s: %llu is out of range %llu..%llu", key,
                          (unsigned long long)v, (unsigned long long)s->min, (unsigned long long)s->max);
    if (s->type == T_U64 || s->type == T_SIZE64 || s->type == T_DURATION_US)
        *(uint64_t *)(base + s->off) = v;
    else
        *(uint32_t *)(base + s->off) = (uint32_t)v;
    return JD_OK;
}

/* Walks a YAML map, building dotted keys ("engine" + "shards"). */
static int load_map(jd_config *c, const char *path, const jd_yaml_node *map, const char *prefix, jd_err *err)
{
    for (const jd_yaml_node *k = map->child; k; k = k->next) {
        char key[128], where[160];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", k->text);
        snprintf(where, sizeof where, "%s:%u:%u", path, k->line, k->col);
        const jd_yaml_node *v = k->value;
        if (!*prefix && strcmp(k->text, "computed") == 0) {   /* a later file replaces them */
            prof_computed_defs *defs = NULL;
            int rc = prof_computed_parse(v, path, &defs, err);
            if (rc != JD_OK) return rc;
            prof_computed_defs_destroy(c->computed);
            c->computed = defs;
            continue;
        }
        if (!*prefix && strcmp(k->text, "channels") == 0) {   /* a later file replaces them */
            dlv_channels *chs = NULL;
            int rc = dlv_channels_parse(v, path, &chs, err);
            if (rc != JD_OK) return rc;
            dlv_channels_destroy(c->channels);
            c->channels = chs;
            continue;
        }
        if (!*prefix && strcmp(k->text, "guardrails") == 0) {   /* likewise */
            dlv_guards *g = NULL;
            int rc = dlv_guards_parse(v, path, &g, err);
            if (rc != JD_OK) return rc;
            dlv_guards_destroy(c->guards);
            c->guards = g;
            continue;
        }
        const setting *s = find_setting(key);
        if (!s && v->kind == JD_YAML_MAP) {
            int rc = load_map(c, path, v, key, err);
            if (rc != JD_OK) return rc;
            continue;
        }
        if (!s) return jd_err_set(err, JD_EINVAL, where, "unknown setting '%s'", key);
        if (s->type == T_STRLIST || s->type == T_NAMELIST) {
            if (v->kind == JD_YAML_SCALAR) {
                int rc = jd_config_set(c, key, v->text, where, err);
                if (rc != JD_OK) return rc;
                continue;
            }
            if (v->kind != JD_YAML_SEQ) return jd_err_set(err, JD_EINVAL, where, "%s: expected a list", key);
            for (const jd_yaml_node *it = v->child; it; it = it->next) {
                snprintf(where, sizeof where, "%s:%u:%u", path, it->line, it->col);
                if (it->kind != JD_YAML_SCALAR) return jd_err_set(err, JD_EINVAL, where, "%s: expected a string", key);
                int rc = jd_config_set(c, key, it->text, where, err);
                if (rc != JD_OK) return rc;
            }
            continue;
        }
        if (v->kind != JD_YAML_SCALAR)
            return jd_err_set(err, JD_EINVAL, where, "%s: expected a single value", key);
        snprintf(where, sizeof where, "%s:%u:%u", path, v->line, v->col);
        int rc = jd_config_set(c, key, v->text, where, err);
        if (rc != JD_OK) return rc;
    }
    return JD_OK;
}

int jd_config_load_file(jd_config *c, const char *path, jd_err *err)
{
    char *text = NULL;
    size_t n = 0;
    jd_yaml_doc *doc = NULL;
    const jd_yaml_node *root = NULL;
    int rc = jd_read_file(path, 1 << 20, &text, &n, err);
    if (rc != JD_OK) goto out;
    rc = jd_yaml_parse(path, text, n, &doc, &root, err);
    if (rc != JD_OK) goto out;
    free(c->config_path);
    c->config_path = jd_xstrdup(path);
    if (!root) goto out;   /* an empty file: all defaults */
    if (root->kind != JD_YAML_MAP) {
        char where[160];
        snprintf(where, sizeof where, "%s:%u:%u", path, root->line, root->col);
        rc = jd_err_set(err, JD_EINVAL, where, "expected a map of settings");
        goto out;
    }
    rc = load_map(c, path, root, "", err);
out:
    jd_yaml_free(doc);
    free(text);
    return rc;
}

int jd_config_check(const jd_config *c, jd_err *err)
{
    if (c->partitions & (c->partitions - 1))
        return jd_err_set(err, JD_EINVAL, "engine.partitions", "engine.partitions must be a power of two, got %u", c->partitions);
    if (c->n_identifiers > 14)
        return jd_err_set(err, JD_EINVAL, "identity.identifiers", "identity.identifiers lists %u identifiers, at most 14",
                          c->n_identifiers);
    for (uint32_t i = 0; i < c->n_identifiers; i++) {
        const char *n = c->identifiers[i];
        size_t len = strlen(n), ok = len > 0 && len <= 31;
        for (size_t k = 0; k < len && ok; k++)
            ok = (n[k] >= 'a' && n[k] <= 'z') || (n[k] >= 'A' && n[k] <= 'Z') || (n[k] >= '0' && n[k] <= '9') || n[k] == '_';
        if (!ok || strcmp(n, "userId") == 0 || strcmp(n, "anonymousId") == 0)
            return jd_err_set(err, JD_EINVAL, "identity.identifiers",
                              "identity.identifiers: '%s' is not a trait name of 1..31 letters, digits or _ (nor userId/anonymousId)", n);
        for (uint32_t k = 0; k < i; k++)
            if (strcmp(c->identifiers[k], n) == 0)
                return jd_err_set(err, JD_EINVAL, "identity.identifiers", "identity.identifiers lists '%s' twice", n);
    }
    if (c->max_message_bytes > c->max_batch_bytes)
        return jd_err_set(err, JD_EINVAL, "limits.max_message_bytes", "limits.max_message_bytes is larger than limits.max_batch_bytes");
    return JD_OK;
}

void jd_config_describe(jd_buf *out)
{
    static const char *const type_names[] = {
        [T_STR] = "text", [T_U32] = "number", [T_U64] = "number", [T_DURATION_US] = "duration",
        [T_DURATION_S] = "duration", [T_SIZE32] = "size", [T_SIZE64] = "size", [T_LISTEN] = "host:port",
        [T_STRLIST] = "list", [T_NAMELIST] = "list", [T_LOGLEVEL] = "level",
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(settings); i++)
        jd_buf_addf(out, "  %-28s %-9s %s\n", settings[i].key, type_names[settings[i].type], settings[i].help);
    jd_buf_addf(out, "  %-28s %-9s %s\n", "computed", "map",
                "computed traits: NAME: { count|sum|min|max|last|first_seen|last_seen: Event, property:, window:, buckets: }");
    jd_buf_addf(out, "  %-28s %-9s %s\n", "channels", "map",
                "delivery channels: NAME: { kind: email|sms|push|slack|webhook, url:, ... } (docs/delivery.md); none: sends are skipped");
    jd_buf_addf(out, "  %-28s %-9s %s\n", "guardrails", "map",
                "caps: [{channel, category, journey, max, per}], quiet_hours: [{channel, from, to, zone_trait, default_zone}]");
}
