/* include/journeyd/config.h -- YAML documents as trees, and journeyd's configuration.
 *
 * Part of base. Owns: loading a YAML document (libyaml) into a tree whose every
 * node knows its line and column (the journey validator and config errors need
 * them), and the configuration: defaults (limits.h), the config file, then
 * command-line flags, each value checked. A bad value stops start-up with one
 * line naming the file, line, column and key.
 * Threading: a loaded jd_config is read-only after load; any thread may read it.
 * Not here: what the values mean to each module.
 */
#ifndef JOURNEYD_CONFIG_H
#define JOURNEYD_CONFIG_H

#include "journeyd/base.h"

/* ---- YAML tree ---------------------------------------------------------- */

typedef enum { JD_YAML_SCALAR, JD_YAML_SEQ, JD_YAML_MAP } jd_yaml_kind;

typedef struct jd_yaml_node jd_yaml_node;
struct jd_yaml_node {
    jd_yaml_kind  kind;
    uint32_t      line, col;       /* 1-based, where the node starts */
    const char   *text;            /* scalar: its value; map entry: its key (see below) */
    bool          quoted;          /* scalar written in quotes: never a number or bool */
    jd_yaml_node *child;           /* seq/map: first item; map items are key nodes */
    jd_yaml_node *next;            /* next sibling */
    jd_yaml_node *value;           /* map key node: its value */
};

typedef struct jd_yaml_doc jd_yaml_doc;
/* Parses one YAML document (aliases and anchors refused). Returns owned *out
 * (jd_yaml_free); *root is valid until then (NULL for an empty document).
 * err->where is "<name>:<line>:<col>". */
int  jd_yaml_parse(const char *name, const char *text, size_t n, jd_yaml_doc **out,
                   const jd_yaml_node **root, jd_err *err);
void jd_yaml_free(jd_yaml_doc *d);
const jd_yaml_node *jd_yaml_get(const jd_yaml_node *map, const char *key);

/* ---- configuration ------------------------------------------------------ */

typedef struct prof_computed_defs prof_computed_defs;   /* include/journeyd/profile.h */
typedef struct dlv_channels dlv_channels;               /* include/journeyd/deliver.h */

/* consent: the consent policy (docs/api.md "Consent", docs/operations.md). Its
 * meaning is the profile module's (prof_consent_allows, via prof_limits.consent);
 * here only its checked values: each name 1..JD_MAX_CONSENT_NAME_BYTES bytes of
 * [a-z0-9_-], at most JD_MAX_CONSENT_NAMES per list, no name twice. */
typedef struct jd_consent_cfg {
    char   **exempt;  uint32_t n_exempt;    /* consent.exempt: topics that need no consent */
    char   **opt_out; uint32_t n_opt_out;   /* consent.opt_out: channels where no entry means allowed */
} jd_consent_cfg;

typedef struct jd_config {
    char    *config_path;           /* NULL when none */
    char    *data_dir;              /* data */
    char    *listen_host;           /* listen: host part */
    uint16_t listen_port;           /* listen: port part (0: any free port) */
    char    *journeys_dir;          /* journeys.dir */
    char    *segments_dir;          /* segments.dir */
    char    *templates_dir;         /* templates.dir: message templates (docs/delivery.md) */
    jd_log_level log_level;         /* log_level */
    char   **write_keys;  uint32_t n_write_keys;     /* write_keys */
    char   **admin_tokens; uint32_t n_admin_tokens;  /* admin_tokens */
    /* engine */
    uint32_t shards;                /* engine.shards (0 = one per core) */
    uint32_t partitions;            /* engine.partitions */
    uint32_t max_pending;           /* engine.max_pending */
    uint64_t snapshot_every;        /* engine.snapshot_every */
    uint64_t tick_us;               /* engine.tick */
    uint64_t max_backlog;           /* engine.max_backlog */
    uint32_t recent_intents;        /* journeys.recent_intents */
    uint32_t tasks_max_open;        /* tasks.max_open */
    /* http */
    uint32_t http_threads;          /* http.threads */
    uint32_t max_connections;       /* http.max_connections */
    uint32_t connection_timeout_s;  /* http.connection_timeout */
    /* limits */
    uint32_t max_message_bytes, max_batch_bytes, max_batch_messages, max_inflated_bytes, max_json_depth;
    /* dedupe */
    uint64_t dedupe_window_us;      /* dedupe.window */
    uint64_t dedupe_max_entries;    /* dedupe.max_entries */
    /* log */
    uint64_t segment_bytes;         /* log.segment_bytes */
    /* profiles */
    uint32_t max_traits_bytes, max_anonymous_ids, max_event_names, max_groups, max_tags;
    uint32_t timeline;              /* profiles.timeline: entries kept per profile, 0..JD_MAX_TIMELINE */
    /* identity */
    char   **identifiers; uint32_t n_identifiers;   /* identity.identifiers */
    uint32_t max_user_ids, max_per_identifier;      /* identity.max_user_ids, identity.max_per_identifier */
    uint32_t clock_travel;          /* clock.travel: 1 lets POST /v1/clock move time forward */
    jd_consent_cfg consent;         /* consent.exempt, consent.opt_out (lists owned) */
    /* computed: trait definitions (owned; NULL: none). Parsed by the profile
     * module (prof_computed_parse), passed to every store as prof_limits.computed. */
    prof_computed_defs *computed;
    /* channels: the delivery channels (owned; NULL: none configured, and
     * send nodes are then skipped). Parsed by the deliver module
     * (dlv_channels_parse); a later file replaces them. */
    dlv_channels *channels;
    /* guardrails: frequency caps and quiet hours (owned; NULL: none;
     * dlv_guards_parse). */
    struct dlv_guards *guards;
    /* links: signed tracking links (docs/delivery.md "Feedback loop"). */
    char    *links_secret;          /* links.secret (NULL: drawn at first start, kept in DATA/credentials) */
    char    *links_base_url;        /* links.base_url (NULL: http://<listen>) */
    uint64_t links_max_age_us;      /* links.max_age (0: links never expire) */
} jd_config;

void jd_config_init(jd_config *c);          /* defaults */
void jd_config_release(jd_config *c);
/* Loads a YAML config file over the current values. */
int  jd_config_load_file(jd_config *c, const char *path, jd_err *err);
/* Sets one value by its dotted key ("engine.shards") from text, as a flag would;
 * `source` names where it came from in errors ("--shards"). Lists append. */
int  jd_config_set(jd_config *c, const char *key, const char *value, const char *source, jd_err *err);
/* Final checks across values (partitions a power of two, ...). */
int  jd_config_check(const jd_config *c, jd_err *err);
/* Writes "key: value" lines of every setting (secrets masked) for --help and docs. */
void jd_config_describe(jd_buf *out);

#endif
