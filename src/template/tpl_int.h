/* src/template/tpl_int.h -- private to src/template/: the compiled tree, the
 * value type of a render, the arena both live in, and the filter table.
 *
 * Invariants:
 *  (1) A compiled tpl is a tree carved from one arena (tpl.mem) that points into
 *      its own copy of the source; nothing in it changes after tpl_compile.
 *  (2) A render's values are `tv`s: views of the caller's json-c objects, or
 *      strings and lists carved from the render's scratch arena; none outlives
 *      the render, none is freed on its own.
 *  (3) Variable roots are resolved at compile time: a for-loop variable or
 *      `forloop` to the loop's depth (lexical, as Liquid's scopes are), a name
 *      that some assign/capture writes to a global slot (read through to the
 *      vars object while unset), anything else to a vars lookup by name.
 */
#ifndef JOURNEYD_TPL_INT_H
#define JOURNEYD_TPL_INT_H

#include <json-c/json.h>
#include <string.h>

#include "journeyd/limits.h"
#include "journeyd/template.h"

/* ---- arena ---------------------------------------------------------------- */

typedef struct tpl_chunk { struct tpl_chunk *next; size_t cap, used; } tpl_chunk;
typedef struct tpl_arena { tpl_chunk *head; size_t total, max; } tpl_arena;

/* NULL when the arena would pass max (callers report the limit). */
void *tpl__alloc(tpl_arena *a, size_t n);
/* Drops everything carved; keeps one chunk big enough for all of it. */
void  tpl__arena_reset(tpl_arena *a);
void  tpl__arena_release(tpl_arena *a);

struct tpl_scratch { tpl_arena a; };

/* ---- values --------------------------------------------------------------- */

typedef enum {
    TV_UNSET = 0,  /* a slot no assign has written yet */
    TV_NIL, TV_BOOL, TV_INT, TV_FLOAT, TV_STR,
    TV_JSON,       /* a json-c array or object (a view) */
    TV_LIST,       /* an array made during the render (split, map, reverse ...) */
    TV_RANGE,      /* (lo..hi) */
    TV_EMPTY, TV_BLANK,   /* the literals `empty` and `blank` */
    TV_LOOP,       /* forloop */
} tv_kind;

struct rloop;
typedef struct tv {
    uint8_t k;
    uint8_t safe;  /* HTML-safe text: escape's result, a capture (html renders) */
    union {
        bool b;
        int64_t i;
        double d;
        struct { const char *p; size_t n; } s;
        struct json_object *j;
        struct { const struct tv *items; size_t n; } l;
        struct { int64_t lo, hi; } r;
        const struct rloop *loop;
    } u;
} tv;

static inline tv tv_nil(void) { tv v; memset(&v, 0, sizeof v); v.k = TV_NIL; return v; }
static inline tv tv_int(int64_t i) { tv v = tv_nil(); v.k = TV_INT; v.u.i = i; return v; }
static inline tv tv_float(double d) { tv v = tv_nil(); v.k = TV_FLOAT; v.u.d = d; return v; }
static inline tv tv_bool(bool b) { tv v = tv_nil(); v.k = TV_BOOL; v.u.b = b; return v; }
static inline tv tv_str(const char *p, size_t n) { tv v = tv_nil(); v.k = TV_STR; v.u.s.p = p; v.u.s.n = n; return v; }

/* ---- the compiled tree ---------------------------------------------------- */

typedef enum { X_LIT, X_VAR, X_RANGE, X_CMP, X_AND, X_OR } xkind;
typedef enum { OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE, OP_CONTAINS } xop;
typedef enum { ROOT_VARS, ROOT_SLOT, ROOT_LOOPVAR, ROOT_FORLOOP } xroot;

struct xexpr;
typedef struct xstep {            /* .name, ["name"] (name set) or [expr] */
    const char *name;
    uint32_t n;
    struct xexpr *idx;
} xstep;

typedef struct xexpr {
    uint8_t  kind, op, root;
    uint32_t line, col;
    tv lit;                       /* X_LIT */
    const char *name;             /* X_VAR: the root's name */
    uint32_t namelen;
    int32_t  ref;                 /* slot or loop depth */
    xstep   *steps;
    uint32_t nsteps;
    struct xexpr *a, *b;          /* X_RANGE lo/hi; X_CMP/X_AND/X_OR operands */
} xexpr;

struct rctx;
struct tpl_filter;
typedef struct xfilter {
    const struct tpl_filter *def;
    uint32_t line, col;
    uint32_t nargs, nkw;
    xexpr  **args;
    const char **kwname;
    uint32_t *kwlen;
    xexpr  **kwargs;
} xfilter;

typedef struct xout { xexpr *e; xfilter *f; uint32_t nf; } xout;

typedef enum { N_TEXT, N_OUT, N_IF, N_CASE, N_FOR, N_ASSIGN, N_CAPTURE, N_BREAK, N_CONTINUE } nkind;

struct tnode;
typedef struct tbranch { xexpr *cond; bool negate; struct tnode *body; } tbranch;   /* cond NULL: else */
typedef struct twhen { xexpr **vals; uint32_t nv; struct tnode *body; } twhen;

typedef struct tnode {
    uint8_t kind;
    uint32_t line, col;
    struct tnode *next;
    union {
        struct { const char *p; size_t n; } text;
        xout out;
        struct { tbranch *br; uint32_t n; } cond;
        struct { xexpr *subj; twhen *w; uint32_t n; struct tnode *els; bool has_else; } cas;
        struct { int32_t depth; xexpr *coll, *limit, *offset; bool reversed; struct tnode *body, *els; } loop;
        struct { int32_t slot; xout val; } assign;
        struct { int32_t slot; struct tnode *body; } capture;
    } u;
} tnode;

struct tpl {
    tpl_arena mem;
    char *name;
    char *src;          /* the copy the tree points into */
    tnode *root;
    uint32_t nslots;
    uint32_t max_loop_depth;
};

/* ---- rendering ------------------------------------------------------------ */

typedef struct rloop {
    tv item;
    int64_t index0, length;
    const struct rloop *parent;
} rloop;

typedef struct rctx {
    const tpl *t;
    struct json_object *vars;
    const tpl_render_opts *o;
    jd_buf *out;
    size_t out_start, max_output;
    jd_err *err;
    tpl_arena *scratch;
    tv *slots;
    const rloop **frames;
    uint64_t iters, max_iters;
    const char *currency;
} rctx;

/* Sets err for the construct at line:col; returns code. */
int tpl__fail(rctx *r, uint32_t line, uint32_t col, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Carves n bytes from the scratch; NULL (err set, JD_ELIMIT) past the limit. */
void *tpl__scratch(rctx *r, size_t n, uint32_t line, uint32_t col);

/* value.c */
tv   tpl__from_json(struct json_object *j);
bool tpl__truthy(const tv *v);
/* Ruby's to_s into the scratch (strings are returned as they are). */
int  tpl__to_s(rctx *r, const tv *v, const char **p, size_t *n, uint32_t line, uint32_t col);
/* Appends to_s of v to a jd_buf (for rendering); arrays are concatenated. */
int  tpl__emit(rctx *r, const tv *v, bool escape, uint32_t line, uint32_t col);
int  tpl__add(rctx *r, const char *p, size_t n, uint32_t line, uint32_t col);
int  tpl__add_escaped(rctx *r, const char *p, size_t n, uint32_t line, uint32_t col);
bool tpl__equal(const tv *a, const tv *b);
/* Ruby Float#to_s: "3.0", "0.1", "1.0e+20". Returns the length; buf >= 32 bytes. */
size_t tpl__fmt_float(double d, char *buf);
/* Lists: JSON arrays, made lists and ranges. */
bool   tpl__is_list(const tv *v);
size_t tpl__list_len(const tv *v);
tv     tpl__list_at(const tv *v, size_t i);
size_t tpl__utf8_len(const char *p, size_t n);
/* Liquid's lookup of key on v (hash key, array index, size/first/last). */
tv tpl__lookup(rctx *r, const tv *v, const tv *key);

/* filters.c */
typedef int (*tpl_filter_fn)(rctx *r, const xfilter *f, const tv *in, const tv *args, const tv *kw, tv *out);
typedef struct tpl_filter {
    const char *name;
    uint8_t min_args, max_args;
    const char *kw;        /* the one keyword argument it takes, or NULL */
    tpl_filter_fn fn;
} tpl_filter;
const tpl_filter *tpl__filter_find(const char *name, size_t n);

/* date.c: `date`'s input rules and strftime. */
int tpl__date(rctx *r, const xfilter *f, const tv *in, const tv *fmt, tv *out);
/* Parses RFC 3339 / ISO 8601 text; the offset in seconds is kept (Ruby's
 * Time.parse keeps it); utc is false when the text gave a numeric offset
 * (%Z is then empty, as in Ruby). false if it is not such text. */
bool tpl__parse_time(const char *s, size_t n, int64_t *secs, int32_t *usec, int32_t *off_s, bool *utc);

/* render.c */
int tpl__eval(rctx *r, const xexpr *e, tv *out);
int tpl__apply(rctx *r, const xout *o, tv *out);

#endif
