/* src/expr/expr_int.h -- private to src/expr/: the AST that is also the
 * program, tokens, the function table, the evaluation context.
 *
 * Pipeline (one file each):
 *   lex.c     source -> tokens, line:col in code points, string escapes decoded
 *   parse.c   tokens -> AST (expr_node[]), macros expanded into comprehensions
 *   check.c   types every node, resolves identifiers and overloads
 *   compile.c expr_compile: the three above, literal regexes, finishing touches
 *   eval.c    tree-walking evaluator over the resolved AST
 *   value.c   JSON views, native lists/maps, equality, ordering, formatting
 *   funcs.c   the function/overload table and operator implementations
 *   strfn.c   string functions and regular expressions (PCRE2)
 *   timefn.c  timestamps, durations, time zones, journeyd's extensions
 *   cli.c     `journeyd eval`
 *
 * The program is the checked AST itself ("a resolved AST"): nodes in one
 * array, children by index, identifiers turned into variable/local slots,
 * calls bound to an overload (or to the few rows still possible) when the
 * checker could decide, list/map literals of literals built once. Measured
 * with bench/expr.c: `event.properties.total > 100.0 && profile.traits.country
 * == "FR"` takes ~155 ns against ~50 ns for the same four json-c lookups
 * written by hand; perf puts the walk itself at about a quarter of that, the
 * rest in json-c and the resolver, so a bytecode could win at most that
 * quarter and was not worth a second representation.
 */
#ifndef JOURNEYD_EXPR_INT_H
#define JOURNEYD_EXPR_INT_H

#include <stdio.h>
#include <string.h>

#include "journeyd/expr.h"
#include "journeyd/limits.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- limits (documented in docs/expressions.md; defined in limits.h) ---- */
#define EXPR_MAX_SOURCE  JD_EXPR_MAX_SOURCE
#define EXPR_MAX_DEPTH   JD_EXPR_MAX_DEPTH
#define EXPR_MAX_NODES   JD_EXPR_MAX_NODES
#define EXPR_MAX_COST    JD_EXPR_MAX_COST
#define EXPR_REGEX_MATCH_LIMIT JD_EXPR_REGEX_MATCH_LIMIT
#define EXPR_MAX_ARGS    3        /* no standard function takes more (receiver included) */

/* The internal kind of an error value; it never leaves expr_eval. */
#define EXPR_ERROR_ ((expr_kind)EXPR_KIND_COUNT_)

/* expr_val._flags */
#define VF_NATIVE 1u   /* EXPR_LIST/EXPR_MAP: v.native is an expr__list/expr__map */
#define VF_CONST  2u   /* ...owned by the program (a folded literal): never mutate */

typedef struct expr__list { uint32_t n, cap; expr_val *v; } expr__list;
typedef struct expr__map  { uint32_t n, cap; expr_val *kv; } expr__map;   /* kv[2i] key, kv[2i+1] value */
typedef struct expr__error { uint32_t node; char msg[]; } expr__error;

/* ---- tokens -------------------------------------------------------------- */

typedef enum {
    TK_EOF, TK_ERROR, TK_IDENT, TK_INT, TK_UINT, TK_DOUBLE, TK_STRING, TK_BYTES,
    TK_TRUE, TK_FALSE, TK_NULL, TK_IN,
    TK_LPAREN, TK_RPAREN, TK_LBRACK, TK_RBRACK, TK_LBRACE, TK_RBRACE,
    TK_DOT, TK_COMMA, TK_COLON, TK_QUESTION,
    TK_PLUS, TK_MINUS, TK_STAR, TK_SLASH, TK_PERCENT, TK_NOT,
    TK_EQ, TK_NE, TK_LT, TK_LE, TK_GT, TK_GE, TK_AND, TK_OR,
} expr__tk;

typedef struct expr__pool { char *p; size_t n, cap; } expr__pool;

typedef struct expr__tok {
    expr__tk k;
    uint32_t line, col;        /* 1-based; col counts code points */
    uint32_t off, len;         /* source span */
    uint64_t u;                /* TK_INT magnitude, TK_UINT value */
    double   d;                /* TK_DOUBLE */
    uint32_t soff, slen;       /* TK_IDENT/TK_STRING/TK_BYTES: text in the pool */
    const char *err;           /* TK_ERROR: what is wrong (static text) */
} expr__tok;

typedef struct expr__lexer {
    const char *src;
    size_t n, pos;
    uint32_t line, col;
    expr__pool *pool;
} expr__lexer;

void expr__lex_init(expr__lexer *lx, const char *src, size_t n, expr__pool *pool);
void expr__lex_next(expr__lexer *lx, expr__tok *t);
uint32_t expr__pool_add(expr__pool *pl, const void *p, size_t n);   /* NUL-terminates; returns offset */

/* ---- the AST (which is also the program) --------------------------------- */

typedef enum {
    N_LIT,       /* lit */
    N_IDENT,     /* before checking: name in the pool; after: N_VAR, N_LOCAL or N_LIT */
    N_VAR,       /* a = variable index */
    N_LOCAL,     /* a = local slot (comprehension variable or accumulator) */
    N_SELECT,    /* kid0 . name; NF_TEST for has() */
    N_CALL,      /* fn, kids = args (receiver first if NF_RECV) */
    N_AND, N_OR, /* kid0, kid1: commutative, error-absorbing */
    N_COND,      /* kid0 ? kid1 : kid2 */
    N_NSF,       /* @not_strictly_false(kid0) */
    N_LIST,      /* kids = elements */
    N_MAP,       /* kids = k0, v0, k1, v1, ... */
    N_COMP,      /* kids = range, init, cond, step, result; a = iter slot, b = accu slot */
    N_APPEND,    /* kid0 (the accumulator, a list) + [kid1], in place */
} expr__op;

#define NF_RECV   1u   /* N_CALL: receiver-style call e.f(...) */
#define NF_TEST   2u   /* N_SELECT: has(e.f) */
#define NF_NUMTOK 4u   /* N_LIT: a number literal straight from a token (for -literal) */
#define NF_ACCU   8u   /* N_LIST: a comprehension's fresh accumulator; never folded */

typedef struct expr_node {
    uint8_t  op;          /* expr__op */
    uint8_t  flags;       /* NF_* */
    uint16_t n;           /* number of children */
    uint16_t fn;          /* N_CALL: function index in expr__fns */
    int16_t  ovl;         /* N_CALL: overload chosen by the checker, -1: decide at run time */
    uint32_t kid;         /* first child in expr_prog.kids */
    uint32_t line, col;
    uint32_t type;        /* checker: type id */
    uint32_t a, b;        /* N_VAR: variable index; N_LOCAL: slot; N_COMP: a iter slot, b accu slot */
    uint32_t soff, slen;  /* N_LIT strings/bytes, N_IDENT/N_SELECT names, N_COMP iter var name */
    int32_t  re;          /* N_CALL matches() with a literal pattern: index in prog->re, else -1 */
    uint32_t cand;        /* N_CALL: bit i set if overload row i fits the static types (0: unknown) */
    expr_val lit;         /* N_LIT */
} expr_node;

/* Checker types: an interned table; ids 0..EXPR_TYPE are the kinds themselves
 * (EXPR_LIST = list(dyn), EXPR_MAP = map(dyn, dyn)). */
typedef struct expr__type { uint8_t kind; uint32_t a, b; } expr__type;

typedef struct expr__var { char *name; expr_kind kind, elem; uint32_t type; } expr__var;

struct expr_decls {
    expr__var *v;
    size_t n, cap;
};

struct expr_prog {
    char *src;
    size_t srclen;
    expr_node *nodes;
    uint32_t nnodes, root;
    uint32_t *kids;
    uint32_t nkids;
    char *pool;                /* literal text and names, each NUL-terminated */
    size_t poollen;
    expr__var *vars;           /* the variables the program uses */
    uint32_t nvars;
    uint32_t nslots;           /* comprehension locals */
    expr__type *types;
    uint32_t ntypes;
    pcre2_code **re;           /* literal patterns, compiled (and JIT-compiled) once */
    uint32_t nre;
    void **consts;             /* folded list/map literals (compile.c) */
    uint32_t nconsts;
    expr_kind kind;
};

static inline const expr_node *expr__kid(const expr_prog *p, const expr_node *n, unsigned i)
{
    return &p->nodes[p->kids[n->kid + i]];
}

/* ---- the function table (funcs.c) ---------------------------------------- */

typedef struct expr__ctx expr__ctx;
/* args[] are already evaluated and none is an error. Writes *out (which may
 * be an error made with expr__fail). */
typedef void (*expr__impl)(expr__ctx *c, const expr_node *n, const expr_val *args, expr_val *out);

enum { S_GLOBAL = 1, S_RECV = 2, S_BOTH = 3 };
/* Result rules beyond a fixed kind. */
enum { R_FIXED, R_ARG0, R_ELEM0, R_LISTJOIN };

typedef struct expr__ovl {
    uint8_t style;                 /* S_* */
    uint8_t nargs;                 /* receiver included */
    uint8_t arg[EXPR_MAX_ARGS];    /* expr_kind; EXPR_DYN = any */
    uint8_t ret;                   /* expr_kind of the result (R_FIXED) */
    uint8_t rule;                  /* R_* */
    expr__impl impl;
} expr__ovl;

typedef struct expr__fn {
    const char *name;              /* "_+_", "size", "getHours", ... */
    const expr__ovl *ovl;          /* ends with a row whose impl is NULL */
    const char *ext;               /* NULL: standard CEL; else why journeyd adds it */
} expr__fn;

extern const expr__fn expr__fns[];
extern const size_t expr__nfns;
int expr__fn_find(const char *name, size_t n);     /* index or -1 */
/* Function indices the parser and evaluator name directly. */
int expr__fn_id(const char *name);

/* Overload tables of the other files, referenced by funcs.c's function table. */
#define EXPR__OVL_DECL(x) extern const expr__ovl x[]
EXPR__OVL_DECL(expr__ovl_size);
EXPR__OVL_DECL(expr__ovl_contains);
EXPR__OVL_DECL(expr__ovl_starts);
EXPR__OVL_DECL(expr__ovl_ends);
EXPR__OVL_DECL(expr__ovl_matches);
EXPR__OVL_DECL(expr__ovl_lower);
EXPR__OVL_DECL(expr__ovl_upper);
EXPR__OVL_DECL(expr__ovl_string);
EXPR__OVL_DECL(expr__ovl_bytes);
EXPR__OVL_DECL(expr__ovl_timestamp);
EXPR__OVL_DECL(expr__ovl_duration);
EXPR__OVL_DECL(expr__ovl_full_year);
EXPR__OVL_DECL(expr__ovl_month);
EXPR__OVL_DECL(expr__ovl_date);
EXPR__OVL_DECL(expr__ovl_day_of_month);
EXPR__OVL_DECL(expr__ovl_day_of_week);
EXPR__OVL_DECL(expr__ovl_day_of_year);
EXPR__OVL_DECL(expr__ovl_hours);
EXPR__OVL_DECL(expr__ovl_minutes);
EXPR__OVL_DECL(expr__ovl_seconds);
EXPR__OVL_DECL(expr__ovl_millis);
EXPR__OVL_DECL(expr__ovl_days_since);
EXPR__OVL_DECL(expr__ovl_local_hour);
EXPR__OVL_DECL(expr__ovl_in_segment);
EXPR__OVL_DECL(expr__ovl_consented);
/* add/sub for timestamps and durations live in timefn.c */
void expr__add_ts_dur(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out);
void expr__add_dur_ts(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out);
void expr__add_dur_dur(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out);
void expr__sub_ts_ts(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out);
void expr__sub_ts_dur(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out);
void expr__sub_dur_dur(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out);
void expr__neg_dur(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out);
void expr__int_of_ts(expr__ctx *c, const expr_node *n, const expr_val *a, expr_val *out);

/* Does runtime kind k satisfy parameter kind p? */
static inline bool expr__kind_fits(uint8_t p, expr_kind k) { return p == EXPR_DYN || p == k; }
const expr__ovl *expr__dispatch(const expr__fn *f, const expr_node *n, const expr_val *args, unsigned nargs);

/* ---- evaluation context (eval.c) ----------------------------------------- */

struct expr_scratch {
    char  *mem;
    size_t used, cap;
    bool   in_eval;                    /* PCRE2 allocations go to the arena only during eval */
    pcre2_general_context *gctx;
    pcre2_compile_context *cctx;
    pcre2_match_context   *mctx;
};

struct expr__ctx {
    const expr_prog *p;
    const expr_activation *a;
    expr_scratch *s;
    expr_val *vars;        /* resolved variables, by index */
    uint8_t  *var_state;   /* 0 not yet resolved, 1 resolved, 2 absent */
    expr_val *slots;       /* comprehension locals */
    uint64_t cost;
    bool     fatal;        /* cost or memory ceiling hit: the result is that error */
    expr_val fatal_err;
    expr__error *oom;      /* preallocated error for "scratch exhausted" */
};

void *expr__alloc(expr__ctx *c, size_t n);            /* NULL past the ceiling (sets fatal) */
/* Formats an error value into *out, located at node n. Returns nothing: callers
 * just `return expr__fail(...)` from void impls. */
void expr__fail(expr__ctx *c, const expr_node *n, expr_val *out, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void expr__no_overload(expr__ctx *c, const expr_node *n, const expr_val *args, unsigned nargs, expr_val *out);
bool expr__charge(expr__ctx *c, const expr_node *n, uint64_t units, expr_val *out);  /* false: over budget */
uint32_t expr__node_index(const expr__ctx *c, const expr_node *n);
const char *expr__fn_display(const expr_node *n);

/* ---- values (value.c) ---------------------------------------------------- */

void   expr__from_json(const struct json_object *j, expr_val *out);
size_t expr__list_len(const expr_val *l);
void   expr__list_at(const expr_val *l, size_t i, expr_val *out);
size_t expr__map_len(const expr_val *m);
/* 1 found (*out set), 0 absent, -1 the key's type cannot be a map key. */
int    expr__map_get(const expr_val *m, const expr_val *key, expr_val *out);
int    expr__map_get_str(const expr_val *m, const char *k, size_t kn, expr_val *out);
/* As expr__map_get_str for a key known to hold no NUL (a name from the program). */
int    expr__map_get_name(const expr_val *m, const char *k, size_t kn, expr_val *out);
/* Iterates a map's keys (and values): *pos starts at 0. */
typedef struct expr__mapit { size_t i; const void *e; } expr__mapit;
bool   expr__map_next(const expr_val *m, expr__mapit *it, expr_val *key, expr_val *val);
bool   expr__equal(const expr_val *a, const expr_val *b);
/* Ordering: 0 on success with *cmp in {-1, 0, 1} (NaN: *cmp = 2); -1 if not ordered. */
int    expr__compare(const expr_val *a, const expr_val *b, int *cmp);
const char *expr__type_name(const expr_val *v);       /* "int", "map", ..., for messages */
bool   expr__utf8_valid(const char *s, size_t n);
size_t expr__utf8_count(const char *s, size_t n);
int    expr__format_double(double d, char *out, size_t cap);   /* shortest round-trip text */
int    expr__format_ts(int64_t us, char *out, size_t cap);     /* RFC 3339, Z, fraction trimmed */
int    expr__format_dur(int64_t us, char *out, size_t cap);    /* "3600s", "1.5s" */
expr_val *expr__list_new(expr__ctx *c, uint32_t cap, expr_val *out);   /* native list value; NULL on OOM */
bool   expr__list_push(expr__ctx *c, expr_val *list, const expr_val *v);

/* ---- time (timefn.c) ----------------------------------------------------- */

#define EXPR_TS_MIN_S  INT64_C(-62135596800)    /* 0001-01-01T00:00:00Z */
#define EXPR_TS_MAX_S  INT64_C(253402300799)    /* 9999-12-31T23:59:59Z */
#define EXPR_DUR_MAX_S INT64_C(315576000000)    /* protobuf Duration range, +-10000 years */
int expr__ts_parse(const char *s, size_t n, int64_t *us);     /* RFC 3339, years 0001..9999 */
int expr__dur_parse(const char *s, size_t n, int64_t *us);    /* "1h30m", "1.5s", "-300ms" */

/* ---- strings and regexes (strfn.c) --------------------------------------- */

/* Compiles a pattern for matches() with RE2-like options; NULL and msg on error. */
pcre2_code *expr__re_compile(const char *pat, size_t n, pcre2_compile_context *cc, char *msg, size_t cap);

/* ---- parser / checker ---------------------------------------------------- */

typedef struct expr__build {
    expr_node *nodes;
    uint32_t nnodes, capnodes;
    uint32_t *kids;
    uint32_t nkids, capkids;
    expr__pool pool;
    uint32_t nslots;
    uint32_t accu_off;     /* "@result" in the pool */
} expr__build;

int expr__parse(const char *src, size_t n, expr__build *b, uint32_t *root, jd_err *err);
int expr__check(expr__build *b, uint32_t root, const expr_decls *d, expr_prog *p, jd_err *err);
void expr__set_where(jd_err *err, uint32_t line, uint32_t col);

#endif
