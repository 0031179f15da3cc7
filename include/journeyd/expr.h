/* include/journeyd/expr.h -- the expression language: CEL (cel.dev).
 *
 * Owns: lexing, parsing, type-checking and compiling CEL expressions once
 * (at publish time), and evaluating the compiled program many times against
 * an activation (the variables `event`, `profile`, `journey`, `now`), fast and
 * without allocating per evaluation beyond a caller-provided scratch arena.
 * Semantics follow google/cel-spec doc/langdef.md; what is not supported yet is
 * listed in docs/expressions.md. journeyd's extensions (days_since, local_hour,
 * in_segment, consented, ...) are documented there as extensions.
 * Threading: a compiled expr_prog is immutable and may be evaluated from any
 * number of threads at once; an expr_scratch belongs to one thread.
 * Not here: where values come from (the activation's resolver does that),
 * journeys, profiles.
 */
#ifndef JOURNEYD_EXPR_H
#define JOURNEYD_EXPR_H

#include "journeyd/base.h"

struct json_object;   /* json-c */

/* ---- types (for declarations and checking) ------------------------------ */

typedef enum {
    EXPR_DYN = 0, EXPR_NULL, EXPR_BOOL, EXPR_INT, EXPR_UINT, EXPR_DOUBLE, EXPR_STRING,
    EXPR_BYTES, EXPR_LIST, EXPR_MAP, EXPR_TIMESTAMP, EXPR_DURATION, EXPR_TYPE,
    EXPR_KIND_COUNT_
} expr_kind;

const char *expr_kind_name(expr_kind k);   /* "int", "string", "map", ... */

/* Declared variables, with their types. A variable of kind EXPR_MAP with
 * value kind EXPR_DYN is the usual JSON-shaped object (event, profile.traits):
 * its fields are checked at run time. Owned by the caller; may be shared by
 * many compiles; immutable once compiling starts. */
typedef struct expr_decls expr_decls;
expr_decls *expr_decls_create(void);
void expr_decls_destroy(expr_decls *d);
/* Declares `name` (a simple identifier) with kind k; for maps and lists
 * elem is the value/element kind (EXPR_DYN when unknown). */
void expr_decls_var(expr_decls *d, const char *name, expr_kind k, expr_kind elem);
/* The standard journeyd environment: event (map), profile (map), journey (map), now (timestamp). */
expr_decls *expr_decls_journeyd(void);

/* ---- compiling ---------------------------------------------------------- */

typedef struct expr_prog expr_prog;   /* opaque, immutable */

/* Parses, checks and compiles src (n bytes). On failure returns JD_EINVAL with
 * err->where "LINE:COL" (1-based, of the offending token or sub-expression) and
 * err->msg a CEL-style message, e.g. "found no matching overload for '_+_'
 * applied to '(int, string)'" or "undeclared reference to 'evnt'". Limits:
 * source length, nesting depth and node count (named in the error).
 * Returns owned *out (expr_prog_destroy). */
int  expr_compile(const char *src, size_t n, const expr_decls *d, expr_prog **out, jd_err *err);
void expr_prog_destroy(expr_prog *p);
/* The kind the checker inferred for the whole expression (EXPR_DYN if unknown). */
expr_kind expr_prog_kind(const expr_prog *p);
const char *expr_prog_source(const expr_prog *p);

/* ---- values and evaluation ---------------------------------------------- */

/* A value. Strings and bytes point into the activation's data or the scratch
 * arena; valid until expr_scratch_reset. JSON-shaped maps and lists are views
 * of json-c objects (kind EXPR_MAP/EXPR_LIST with json != NULL), so an event
 * is never converted as a whole. */
typedef struct expr_val {
    expr_kind kind;
    union {
        bool     b;
        int64_t  i;          /* int; timestamp: us since epoch; duration: us */
        uint64_t u;
        double   d;
        struct { const char *p; size_t n; } s;   /* string, bytes */
        const struct json_object *json;           /* map or list view */
        const void *native;                       /* lists/maps built during evaluation */
        expr_kind type;                           /* EXPR_TYPE: the type value */
    } v;
    uint32_t _flags;          /* private */
} expr_val;

/* Scratch memory for evaluations: an arena reset after each one. */
typedef struct expr_scratch expr_scratch;
expr_scratch *expr_scratch_create(size_t max_bytes);
void expr_scratch_reset(expr_scratch *s);
void expr_scratch_destroy(expr_scratch *s);

/* Where variable values come from. resolve() fills *out for a declared
 * variable name and returns JD_OK, or JD_ENOTFOUND (then the variable is absent:
 * `has()` is false and a select on it is a "no such key" error). */
typedef struct expr_activation {
    int (*resolve)(void *self, const char *name, expr_val *out);
    void *self;
    const char *default_tz;   /* IANA zone for timestamp accessors without one (NULL: UTC) */
} expr_activation;

/* Convenience: an activation over a JSON object whose top-level keys are the
 * variables ({"event":{...},"profile":{...},"now":"2026-...Z"}); string values
 * of variables declared as timestamps are parsed as RFC 3339. Borrows vars. */
void expr_activation_json(expr_activation *a, const struct json_object *vars);
/* The declarations that go with it: every top-level key of vars that is an
 * identifier, as dyn, except `now`, a timestamp. Returns owned (expr_decls_destroy);
 * vars may be NULL (no variables). */
expr_decls *expr_decls_json(const struct json_object *vars);

/* ---- guards: what a host may check before evaluating -------------------- */

/* A test every true evaluation of a program passes: its top-level
 * conjunction (a && b && ...) contains `VAR.f1. ... .fn == "text"` (either
 * side). Where the value at that path is absent or is not that string, the
 * program is false or an error, so a host may skip it (journeys index entry
 * conditions by their guards). Strings borrow the program. */
#define EXPR_GUARD_MAX_PATH 8
typedef struct expr_guard {
    const char *var;
    const char *path[EXPR_GUARD_MAX_PATH];
    uint32_t    npath;
    const char *value;
    size_t      value_len;
} expr_guard;
/* Writes at most max guards of p to out, in source order; returns how many. */
size_t expr_prog_guards(const expr_prog *p, expr_guard *out, size_t max);
/* Can p's value change with `now` alone (it reads `now`, or calls days_since)?
 * Hosts then look for the moment it flips (segments). */
bool expr_prog_reads_now(const expr_prog *p);

/* A JSON value as an expr_val (objects and arrays as views, not copies): for
 * activations that resolve variables themselves. Borrows j. */
void expr_val_from_json(const struct json_object *j, expr_val *out);

/* Evaluates p. JD_OK: *out is the result (valid until the scratch is reset).
 * A CEL error value (division by zero, no such key, overflow, no matching
 * overload at run time, comprehension cost over the budget) returns JD_EINVAL
 * with err->where the sub-expression's LINE:COL and err->msg CEL's message.
 * Pure: no clock (now comes from the activation), no I/O, no allocation
 * outside the scratch. Any thread. */
int  expr_eval(const expr_prog *p, const expr_activation *a, expr_scratch *s, expr_val *out, jd_err *err);
/* As expr_eval, for conditions: a non-bool result is an error. */
int  expr_eval_bool(const expr_prog *p, const expr_activation *a, expr_scratch *s, bool *out, jd_err *err);

/* Writes v in CEL's literal syntax (1, 1u, 1.5, "s", b"x", [1, 2], {"k": v},
 * timestamp("2026-01-01T00:00:00Z"), duration("3600s"), null, true). */
int  expr_val_format(const expr_val *v, jd_buf *out);

#endif
