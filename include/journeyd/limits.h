/* include/journeyd/limits.h -- every default ceiling in one place.
 *
 * Each limit has a config key (in parentheses) that overrides it, and the error
 * that reports hitting it names that key. docs/operations.md lists them all.
 */
#ifndef JOURNEYD_LIMITS_H
#define JOURNEYD_LIMITS_H

/* Ingest (Segment's own limits: segment.com/docs/connections/sources/catalog/libraries/server/http-api) */
#define JD_DEF_MAX_MESSAGE_BYTES   (32u * 1024)        /* limits.max_message_bytes */
#define JD_DEF_MAX_BATCH_BYTES     (500u * 1024)       /* limits.max_batch_bytes */
#define JD_DEF_MAX_BATCH_MESSAGES  2500u               /* limits.max_batch_messages */
/* A gzip body may not inflate past this (a zip bomb is refused, not decoded). */
#define JD_DEF_MAX_INFLATED_BYTES  (4u * 1024 * 1024)  /* limits.max_inflated_bytes */
#define JD_DEF_MAX_JSON_DEPTH      64                  /* limits.max_json_depth */

/* Deduplication by messageId */
#define JD_DEF_DEDUPE_WINDOW_US    (24ull * 3600 * 1000000)   /* dedupe.window */
#define JD_DEF_DEDUPE_MAX_ENTRIES  (8u * 1024 * 1024)         /* dedupe.max_entries */

/* HTTP */
#define JD_DEF_MAX_CONNECTIONS     4096                /* http.max_connections */
#define JD_DEF_CONNECTION_TIMEOUT_S 60                 /* http.connection_timeout */
#define JD_DEF_HTTP_THREADS        1                   /* http.threads */

/* Log */
#define JD_DEF_SEGMENT_BYTES       (64ull * 1024 * 1024)    /* log.segment_bytes */
#define JD_DEF_GROUP_MAX_BYTES     (8u * 1024 * 1024)       /* log.group_max_bytes */
#define JD_MAX_RECORD_BYTES        (16u * 1024 * 1024)      /* fixed: a record body */

/* Engine */
#define JD_DEF_PARTITIONS          64      /* engine.partitions (power of two, fixed per data dir) */
#define JD_MAX_PARTITIONS          4096
#define JD_MAX_SHARDS              256
#define JD_DEF_INGEST_QUEUE_TXNS   65536   /* engine.max_pending (requests waiting for fsync) */
#define JD_DEF_SNAPSHOT_EVERY      2000000 /* engine.snapshot_every (records between snapshots) */
#define JD_DEF_TASKS_MAX_OPEN      10000   /* tasks.max_open: open tasks per partition (done ones: as many) */
#define JD_TASK_MAX_FIELD          256     /* fixed: bytes of a task's assignee and outcome */
#define JD_TASK_MAX_NOTE           4096    /* fixed: bytes of a completion's note */

/* Profiles */
#define JD_DEF_MAX_TRAITS_BYTES    (64u * 1024)   /* profiles.max_traits_bytes */
#define JD_DEF_MAX_ANON_IDS        100            /* profiles.max_anonymous_ids (at most 65535) */
#define JD_DEF_MAX_EVENT_NAMES     1000           /* profiles.max_event_names: counted per profile (at most 65535) */
#define JD_DEF_MAX_GROUPS          50             /* profiles.max_groups */
#define JD_DEF_MAX_TAGS            100            /* profiles.max_tags: tags per profile */
#define JD_DEF_TIMELINE            10             /* profiles.timeline: latest events and messages per profile */
#define JD_MAX_TIMELINE            100            /* fixed: profiles.timeline at most */
#define JD_MAX_SHARED_KEYS         4096           /* fixed: trait key names a prof_store shares (tset.c); */
                                                  /* past it a key is kept in each profile that has it */
#define JD_MAX_SHARED_KEY_BYTES    64             /* fixed: longest trait key name shared */
/* Computed traits (computed: in the config; docs/operations.md) */
#define JD_MAX_COMPUTED            64             /* fixed: definitions in computed: */
#define JD_DEF_COMPUTED_BUCKETS    32             /* computed.NAME.buckets: time buckets of a window */
#define JD_MAX_COMPUTED_BUCKETS    64             /* fixed: computed.NAME.buckets at most */
#define JD_MAX_COMPUTED_VALUE_BYTES 1024          /* fixed: a `last` value's JSON text */

/* Expressions (fixed for now: named in their errors; config keys to come) */
#define JD_EXPR_MAX_SOURCE         16384    /* expr.max_source: bytes of source */
#define JD_EXPR_MAX_DEPTH          64       /* expr.max_depth: nesting after macro expansion */
#define JD_EXPR_MAX_NODES          4096     /* expr.max_nodes: AST nodes */
#define JD_EXPR_MAX_COST           100000   /* expr.max_cost: comprehension steps + calls per evaluation */
#define JD_EXPR_REGEX_MATCH_LIMIT  200000   /* expr.max_cost: PCRE2 steps per match */

/* Keys */
#define JD_MAX_KEYS                64

/* Templates (fixed for now: named in their errors; docs/templates.md) */
#define JD_TPL_MAX_SOURCE          (256u * 1024)       /* template.max_source: bytes of source */
#define JD_TPL_MAX_DEPTH           64                  /* template.max_depth: nested blocks and brackets */
#define JD_TPL_MAX_OUTPUT          (1024u * 1024)      /* template.max_output: bytes one render writes */
#define JD_TPL_MAX_ITERATIONS      100000              /* template.max_iterations: for-loop turns per render */
#define JD_TPL_MAX_SCRATCH         (8u * 1024 * 1024)  /* template.max_scratch: filter results, captures */

/* Consent (consent: in the config; docs/api.md "Consent") */
#define JD_MAX_CONSENT_NAMES       16             /* fixed: entries of consent.exempt, of consent.opt_out */
#define JD_MAX_CONSENT_NAME_BYTES  64             /* fixed: bytes of one topic or channel name there */

#endif
