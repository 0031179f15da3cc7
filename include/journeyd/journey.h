/* include/journeyd/journey.h -- journey documents: parse, validate, compile.
 *
 * Owns: reading a journey document (YAML for people, the same shape as JSON over
 * the API), checking it with every error reported at once (file:line:col, node
 * id, message), compiling its expressions (src/expr) and its graph into an
 * immutable jrn_doc the engine runs. docs/journeys.md is the user-facing format.
 * Threading: a jrn_doc is immutable after jrn_doc_parse and may be read by any
 * number of shard threads.
 * Not here: journey instances and their state machine, versions and publishing
 * (they live with the engine), delivery.
 */
#ifndef JOURNEYD_JOURNEY_H
#define JOURNEYD_JOURNEY_H

#include "journeyd/base.h"
#include "journeyd/expr.h"

/* ---- diagnostics: every problem at once ---------------------------------- */

typedef struct jrn_diag {
    char where[128];   /* "journeys/cart.yaml:14:9" */
    char node[64];     /* node id, or "" for the document level */
    char msg[192];     /* "edge to missing node 'sendd'" */
} jrn_diag;

typedef struct jrn_diags {
    jrn_diag *v;
    size_t    n, cap;
} jrn_diags;
void jrn_diags_release(jrn_diags *d);
/* One line per diagnostic: "<where>: node '<node>': <msg>\n" (or without the node part). */
void jrn_diags_format(const jrn_diags *d, jd_buf *out);

/* What references are checked against. */
typedef struct jrn_env {
    const char *const *channels;    /* known channel names ("email", "sms", ...) */
    size_t             nchannels;
    /* NULL: every template name is accepted (templates arrive with issue 'Delivery'). */
    bool (*template_exists)(void *self, const char *channel, const char *name);
    void *self;
    const expr_decls *decls;        /* NULL: expr_decls_journeyd() */
    /* NULL: every segment id is accepted (`journeyd validate`). Else segment
     * references in exit rules, waits and the goal must name one that exists
     * (the registry passes its segments at publish time). */
    bool (*segment_exists)(const void *seg_self, const char *id);
    const void *seg_self;
} jrn_env;
/* The default environment: channels email, sms, push, webhook, slack, in_app; any template. */
const jrn_env *jrn_env_default(void);

/* ---- segment changes as events --------------------------------------------
 * A person joining or leaving a segment reaches their live instances as an
 * event of its own (jrn_on_segment in instance.h). Its name is the segment
 * id behind a 0x01 byte and a kind, "\x01segment_enter:<id>" or
 * "\x01segment_exit:<id>", and it is the only kind of event that matches
 * such a name (a tracked event never does, whatever its name), so exit rules,
 * waits and the goal written `segment_enter: <id>` are stored as an event
 * name and run through the same code as event rules. */
#define JRN_SEGMENT_EVENT_MARK '\x01'
#define JRN_SEGMENT_EVENT_MAX  96      /* a name's bytes with its NUL: ids are at most 64 */
/* Writes the event name of entering (enter) or leaving segment `id` into
 * buf (JRN_SEGMENT_EVENT_MAX bytes) and returns buf. Pure. */
char *jrn_segment_event_name(char buf[JRN_SEGMENT_EVENT_MAX], const char *id, bool enter);
/* The segment id inside a segment event name (a pointer into name) and
 * *enter, or NULL when name is an ordinary event name. Pure. */
const char *jrn_segment_event_parse(const char *name, bool *enter);

/* ---- the compiled document (read-only for the engine) ------------------- */

typedef enum {
    JRN_WAIT = 1, JRN_BRANCH, JRN_SPLIT, JRN_SEND, JRN_TASK, JRN_UPDATE, JRN_EXIT,
    JRN_DECIDE,          /* reserved for issue 'Next best action' */
    JRN_KIND_COUNT_
} jrn_kind;

typedef enum { JRN_WAIT_DURATION = 1, JRN_WAIT_UNTIL, JRN_WAIT_EVENT } jrn_wait_kind;
typedef enum { JRN_REENTRY_NEVER = 1, JRN_REENTRY_ALWAYS, JRN_REENTRY_COOLDOWN } jrn_reentry;
typedef enum { JRN_ENTRY_EVENT = 1, JRN_ENTRY_SEGMENT_ENTER, JRN_ENTRY_SEGMENT_EXIT, JRN_ENTRY_API } jrn_entry_kind;
typedef enum { JRN_EXIT_END = 1, JRN_EXIT_PAUSE } jrn_exit_action;

#define JRN_NONE UINT32_MAX   /* "no next node" */

typedef struct jrn_branch_arm { expr_prog *when; uint32_t next; uint32_t line, col; } jrn_branch_arm;
typedef struct jrn_variant { char *name; uint32_t weight; bool control; uint32_t next; } jrn_variant;
typedef struct jrn_trait_op { char *key; expr_prog *value; bool unset; } jrn_trait_op;   /* value NULL when unset */

typedef struct jrn_node {
    jrn_kind kind;
    char    *id;
    uint32_t index;          /* position in jrn_doc.nodes */
    uint32_t line, col;      /* where the node is defined */
    uint32_t next;           /* the default successor (JRN_NONE: the journey ends) */
    union {
        struct {             /* wait */
            jrn_wait_kind kind;
            uint64_t duration_us;                 /* DURATION */
            int hour, minute; uint8_t weekdays;   /* UNTIL: local time, weekday mask (bit 0 Sunday; 0 any) */
            char *zone_trait;                     /* UNTIL: profile trait holding the IANA zone */
            char *default_zone;                   /* UNTIL: used when the trait is missing or invalid */
            char *event; expr_prog *event_when;   /* EVENT: name (or a segment event name) and optional condition */
            uint64_t timeout_us;                  /* EVENT: 0 = wait forever */
            uint32_t timeout_next;                /* EVENT: successor on timeout */
        } wait;
        struct { jrn_branch_arm *arms; uint32_t narms; uint32_t else_next; } branch;
        struct { jrn_variant *variants; uint32_t nvariants; uint32_t total_weight; } split;
        struct { char *channel, *template_name, *category; } send;
        struct { char *queue, *title; expr_prog *title_expr; } task;
        struct { jrn_trait_op *ops; uint32_t nops; char **add_tags, **remove_tags; uint32_t nadd, nremove; } update;
        struct { char *reason; } exit;
    } u;
} jrn_node;

typedef struct jrn_exit_rule {
    char *event; expr_prog *when;       /* an event or segment event name (optionally with a condition), or a condition alone */
    jrn_exit_action action;
    char *resume_event;                 /* PAUSE: the event that resumes */
} jrn_exit_rule;

typedef struct jrn_doc {
    char *id, *name, *description;
    char *source_name;                   /* file name or "api" */
    struct {
        jrn_entry_kind kind;
        char *event; expr_prog *when;    /* EVENT */
        char *segment;                   /* SEGMENT_* (hook: segments arrive with issue 'Profiles') */
    } entry;
    jrn_reentry reentry;
    uint64_t    cooldown_us;
    bool        allow_concurrent;        /* a person may be in several instances at once */
    jrn_exit_rule *exits;   uint32_t nexits;
    struct { char *event; expr_prog *when; uint64_t within_us; bool present; } goal;   /* event: maybe a segment event name */
    jrn_node  *nodes;       uint32_t nnodes;
    uint32_t   start;                    /* index of the first node */
} jrn_doc;

/* Parses, validates and compiles a document. `name` is used in diagnostics.
 * JD_OK: *out is owned (jrn_doc_destroy). JD_EINVAL: *out is NULL and diags
 * holds every problem found (unknown node kind or field, a field of the wrong
 * type, an edge to a missing node, an unreachable node, a cycle without a wait
 * in it, an expression that does not parse or type-check (with the expression's
 * own line:col mapped into the file), an unknown channel or template, ...).
 * JSON input is accepted too (it is YAML). */
int  jrn_doc_parse(const char *name, const char *text, size_t n, const jrn_env *env,
                   jrn_doc **out, jrn_diags *diags);
void jrn_doc_destroy(jrn_doc *d);
/* The node with this id, or NULL. */
const jrn_node *jrn_doc_node(const jrn_doc *d, const char *id);
/* The document as canonical JSON (what GET /v1/journeys returns). */
int  jrn_doc_to_json(const jrn_doc *d, jd_buf *out);

#endif
