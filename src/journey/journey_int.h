/* src/journey/journey_int.h -- private to src/journey/: the parse context every
 * file of the validator shares, and the node-kind table.
 *
 * Files, in reading order:
 *   doc.c    jrn_doc_parse: the document keys (entry, reentry, exits, goal, start),
 *            diagnostics, helpers that read typed values from the YAML tree
 *   nodes.c  the node-kind table: one parse function per kind (wait, branch, ...)
 *   graph.c  edges resolved by id, reachability from start, cycles without a wait
 *   json.c   jrn_doc_to_json: the canonical JSON form
 *   cli.c    `journeyd validate FILE...`
 */
#ifndef JOURNEYD_JOURNEY_INT_H
#define JOURNEYD_JOURNEY_INT_H

#include "journeyd/config.h"
#include "journeyd/journey.h"

/* Ceilings. They are fixed (not configuration): a journey is reviewed by people,
 * and 500 nodes is already past what anyone can review. */
#define JRN_MAX_NODES     500      /* nodes in one document */
#define JRN_MAX_DIAGS     100      /* diagnostics kept for one document; then "too many errors" */
#define JRN_MAX_ID        64       /* node ids, journey ids, variant names */
#define JRN_MAX_TEXT      1024     /* names, titles, event names, trait keys */
#define JRN_MAX_DOC_BYTES (1u << 20)   /* one document, as read by `journeyd validate` */

/* An edge waiting for every node id to be known: `*slot` gets the target's index. */
typedef struct jrn__edge {
    uint32_t *slot;
    uint32_t from;                 /* source node index; JRN_NONE for `start:` */
    const jd_yaml_node *ref;       /* the scalar naming the target (its line:col) */
} jrn__edge;

typedef struct jrn__ctx {
    const char *name;              /* file name, for diagnostics */
    const char *text;              /* the source: block scalar positions are read from it */
    size_t n;
    const jrn_env *env;
    const expr_decls *decls;
    jrn_diags *diags;
    uint64_t *diag_key;            /* line << 32 | col of each diagnostic this parse added: they are sorted */
    size_t diag0;                  /* diags->n when the parse began */
    size_t nerrors;                /* counted even past JRN_MAX_DIAGS */
    jrn_doc *doc;
    const char *node;              /* the node being read ("" at document level) */
    jrn__edge *edges;
    size_t nedges, cap;
    uint32_t missing_edges;        /* edges to ids that do not exist */
    jd_map *ids;                   /* node id -> index + 1 (keys borrowed from doc->nodes[i].id) */
} jrn__ctx;

/* ---- diagnostics and typed reads (doc.c) ---------------------------------- */

void jrn__diag(jrn__ctx *c, uint32_t line, uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define jrn__diag_at(c, yn, ...) jrn__diag((c), (yn)->line, (yn)->col, __VA_ARGS__)

/* The value of `key` in map, or NULL when absent or null (`key:`, `~`, `null`). */
const jd_yaml_node *jrn__get(const jd_yaml_node *map, const char *key);
/* Reports every key of map not in allowed[] (NULL-terminated), naming `what`. */
void jrn__check_keys(jrn__ctx *c, const jd_yaml_node *map, const char *const *allowed, const char *what);
/* "a map", "a list", "text": what a YAML node is, for messages. */
const char *jrn__yaml_kind(const jd_yaml_node *y);
/* True if y is a map; else reports "'<field>' must be a map, got ...". */
bool jrn__want_map(jrn__ctx *c, const jd_yaml_node *y, const char *field);
bool jrn__want_seq(jrn__ctx *c, const jd_yaml_node *y, const char *field);
/* A non-empty scalar as an owned string, or NULL after a diagnostic. */
char *jrn__str(jrn__ctx *c, const jd_yaml_node *y, const char *field);
/* A scalar matching [A-Za-z0-9_-]{1,64} (node ids, variants): owned, or NULL. */
char *jrn__ident(jrn__ctx *c, const jd_yaml_node *y, const char *field);
bool jrn__bool(jrn__ctx *c, const jd_yaml_node *y, const char *field, bool *out);
/* A duration ("1h30m", "7d") greater than zero. */
bool jrn__duration(jrn__ctx *c, const jd_yaml_node *y, const char *field, uint64_t *out);
/* A scalar event name (jrn__str), refused if it starts with JRN_SEGMENT_EVENT_MARK. */
char *jrn__event_name(jrn__ctx *c, const jd_yaml_node *y, const char *field);
/* What a rule, wait or goal (map) reacts to: at most one of `event: <name>`,
 * `segment_enter: <id>`, `segment_exit: <id>` (two: "<what> takes one of
 * ..."). Returns the owned event name (a segment event name for the segment
 * keys, the id checked with env->segment_exists), or NULL when none is given
 * (*at NULL) or its value was bad (reported; *at is the value). */
char *jrn__event_ref(jrn__ctx *c, const jd_yaml_node *map, const char *what, const jd_yaml_node **at);
/* Compiles y as CEL; want_bool: the result must be bool (or dyn). Errors are
 * mapped from the expression's LINE:COL into the file. NULL after a diagnostic. */
expr_prog *jrn__expr(jrn__ctx *c, const jd_yaml_node *y, const char *field, bool want_bool);
/* Records an edge from node `from` to the id written in ref (resolved in graph.c). */
void jrn__edge_add(jrn__ctx *c, const jd_yaml_node *ref, uint32_t *slot, uint32_t from);
/* The closest of cands[] to word (edit distance <= 2), or NULL: for "did you mean". */
const char *jrn__suggest(const char *word, const char *const *cands, size_t n);

/* ---- node kinds (nodes.c) ----------------------------------------------- */

typedef struct jrn__kind_ops {
    const char *name;              /* the kind key in YAML */
    /* Reads the kind's value (v) and the node map (node) into n. */
    void (*parse)(jrn__ctx *c, jrn_node *n, const jd_yaml_node *v, const jd_yaml_node *node);
    void (*release)(jrn_node *n);
    void (*to_json)(const jrn_doc *d, const jrn_node *n, jd_buf *out);
    bool breaks_cycle;             /* a loop through this node is not a busy loop */
    bool has_next;                 /* `next:` is allowed on the node */
    const char *unavailable;       /* non-NULL: reserved kind, this says why */
} jrn__kind_ops;

extern const jrn__kind_ops jrn__kinds[JRN_KIND_COUNT_];
/* The node-level keys besides the kind key. */
extern const char *const jrn__node_keys[];
void jrn__parse_node(jrn__ctx *c, jrn_node *n, const jd_yaml_node *key);
void jrn__node_release(jrn_node *n);

/* ---- graph (graph.c) ------------------------------------------------------ */

/* Resolves edges, then (when they all resolved) checks reachability and cycles. */
void jrn__graph_check(jrn__ctx *c);

/* ---- JSON (json.c) ------------------------------------------------------ */

void jrn__json_duration(jd_buf *b, uint64_t us);
void jrn__json_str(jd_buf *b, const char *s);
void jrn__json_expr(jd_buf *b, const expr_prog *p);
void jrn__json_next(jd_buf *b, const jrn_doc *d, const char *key, uint32_t next);
/* `"event":"<name>"`, or `"segment_enter":"<id>"` / `"segment_exit":"<id>"` for a segment event name. */
void jrn__json_event_ref(jd_buf *b, const char *name);

/* ---- instances (instance.c: entry, events, timers; instance_step.c: the
 * node-kind step table) ------------------------------------------------------ */

#include "journeyd/instance.h"

/* One call into the state machine: what every step function sees. */
typedef struct jrn__run {
    const jrn_doc *doc;
    jrn_instance *in;
    const ingest_event *ev;        /* the event being handled; NULL for a timer or a profile change */
    int64_t now;
    const jrn_io *io;
    uint32_t visits;               /* node visits in this call, against JRN_MAX_STEPS_PER_TURN */
} jrn__run;

/* Where a step sends the instance next. end is used when to == JRN_NONE. */
typedef struct jrn__hop { uint32_t to; jrn_edge edge; uint32_t arm; jrn_end end; } jrn__hop;

typedef enum {
    JRN__HOP = 1,                  /* follow *hop */
    JRN__PARK,                     /* the instance waits (state WAITING) */
    JRN__GONE,                     /* the instance ended inside the step (an error) */
} jrn__step_result;

typedef jrn__step_result (*jrn__step_fn)(jrn__run *r, const jrn_node *n, jrn__hop *hop);
/* One step function per node kind; NULL for kinds the engine cannot run (decide). */
extern const jrn__step_fn jrn__steps[JRN_KIND_COUNT_];

/* Evaluates a condition for the run (event r->ev). false: the expression
 * failed and the instance has ended with JRN_END_ERROR. */
bool jrn__eval(jrn__run *r, const expr_prog *p, bool *out);
/* Ends the instance: cancels its timer if armed, state EXITED, on_exit. */
void jrn__end(jrn__run *r, jrn_end why, const jd_err *err);
/* True while the instance has a timer armed (WAITING on a duration, an until,
 * or an event wait with a timeout). */
bool jrn__timer_armed(const jrn_doc *doc, const jrn_instance *in);
/* t + d, saturating at INT64_MAX. */
int64_t jrn__add_us(int64_t t, uint64_t d);
/* A segment change as an event (jrn_on_segment): ev points into the struct. */
typedef struct jrn__seg_event {
    ingest_event ev;
    char name[JRN_SEGMENT_EVENT_MAX];
    char json[JRN_SEGMENT_EVENT_MAX + 64];
} jrn__seg_event;
void jrn__seg_event_make(jrn__seg_event *s, const char *id, bool entered, int64_t now_us);
/* Hashes of the instance id and a node (little-endian, so ids are the same on
 * every machine): the intent id (with steps) and the split draw. */
uint64_t jrn__intent_id(uint64_t instance_id, uint32_t node, uint32_t steps);
uint64_t jrn__split_draw(uint64_t instance_id, uint32_t node);

#endif
