/* src/expr/eval.c -- evaluating a compiled program: the tree walk, error
 * values, the scratch arena, the cost budget, and the JSON activation.
 *
 * Invariants:
 *  (1) Errors are values (kind EXPR_ERROR_, pointing at an expr__error in the
 *      arena with the node that raised it): functions are strict (the first
 *      erroneous argument is the result), while && and || absorb an error
 *      when the other side decides the result (false && error == false,
 *      error || true == true), ?: evaluates only the branch taken, and the
 *      comprehension macros combine errors as their expansion into && / ||
 *      says (langdef.md "Logical Operators", "Macros").
 *  (2) Two ceilings are fatal rather than values, so no && or || can absorb
 *      them and a runaway expression always stops: the cost budget
 *      (EXPR_MAX_COST units: one per call, one per comprehension iteration,
 *      plus size-proportional charges for string, list and regex work) and
 *      the scratch arena's size. Once either is hit every comprehension stops
 *      and the result is that error.
 *  (3) No malloc during an evaluation: values live in the caller's JSON, the
 *      program, or the scratch arena (PCRE2's match data and runtime
 *      patterns included, through the scratch's PCRE2 contexts).
 *  (4) A variable is resolved at most once per evaluation, on first use, and
 *      checked against its declared kind (RFC 3339 text becomes a timestamp
 *      for a timestamp variable) before any statically chosen overload sees
 *      it; funcs.c re-checks overloads at run time anyway.
 */
#include <json-c/json.h>
#include <stdarg.h>
#include <stdlib.h>

#include "expr_int.h"

#define ALIGN 16

/* ---- the scratch arena ---------------------------------------------------- */

static void *re_malloc(size_t n, void *data)
{
    expr_scratch *s = data;
    if (!s->in_eval) return malloc(n);
    size_t off = (s->used + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (off > s->cap || n > s->cap - off) return NULL;
    s->used = off + n;
    return s->mem + off;
}

static void re_free(void *p, void *data)
{
    expr_scratch *s = data;
    if (p && !((char *)p >= s->mem && (char *)p < s->mem + s->cap)) free(p);
}

expr_scratch *expr_scratch_create(size_t max_bytes)
{
    expr_scratch *s = jd_xcalloc(1, sizeof *s);
    s->cap = max_bytes < 1024 ? 1024 : max_bytes;
    s->mem = jd_xmalloc(s->cap);
    s->gctx = pcre2_general_context_create(re_malloc, re_free, s);
    s->cctx = pcre2_compile_context_create(s->gctx);
    s->mctx = pcre2_match_context_create(s->gctx);
    if (!s->gctx || !s->cctx || !s->mctx) {
        fprintf(stderr, "journeyd: out of memory creating PCRE2 contexts\n");
        abort();
    }
    pcre2_set_match_limit(s->mctx, EXPR_REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(s->mctx, EXPR_REGEX_MATCH_LIMIT);
    pcre2_set_heap_limit(s->mctx, (uint32_t)(s->cap / 2048 + 1));
    return s;
}

void expr_scratch_reset(expr_scratch *s) { s->used = 0; }

void expr_scratch_destroy(expr_scratch *s)
{
    if (!s) return;
    s->in_eval = false;
    pcre2_match_context_free(s->mctx);
    pcre2_compile_context_free(s->cctx);
    pcre2_general_context_free(s->gctx);
    free(s->mem);
    free(s);
}

uint32_t expr__node_index(const expr__ctx *c, const expr_node *n) { return (uint32_t)(n - c->p->nodes); }

static void set_fatal(expr__ctx *c, const expr_node *n, const char *msg, expr_val *out);

static void make_error(expr__ctx *c, const expr_node *n, expr_val *out, const char *msg)
{
    size_t len = strlen(msg);
    expr__error *e;
    size_t off = (c->s->used + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (off > c->s->cap || sizeof *e + len + 1 > c->s->cap - off) {
        char m[120];
        snprintf(m, sizeof m, "evaluation needs more than %zu bytes of scratch memory (expr.max_scratch)",
                 c->s->cap);
        return set_fatal(c, n, m, out);
    }
    e = (expr__error *)(c->s->mem + off);
    c->s->used = off + sizeof *e + len + 1;
    e->node = expr__node_index(c, n);
    memcpy(e->msg, msg, len + 1);
    memset(out, 0, sizeof *out);
    out->kind = EXPR_ERROR_;
    out->v.native = e;
}

static void set_fatal(expr__ctx *c, const expr_node *n, const char *msg, expr_val *out)
{
    if (!c->fatal) {
        c->fatal = true;
        if (c->oom) {
            c->oom->node = expr__node_index(c, n);
            snprintf(c->oom->msg, 120, "%s", msg);
        }
        memset(&c->fatal_err, 0, sizeof c->fatal_err);
        c->fatal_err.kind = EXPR_ERROR_;
        c->fatal_err.v.native = c->oom;
    }
    if (out) *out = c->fatal_err;
}

void *expr__alloc(expr__ctx *c, size_t n)
{
    expr_scratch *s = c->s;
    size_t off = (s->used + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (off > s->cap || n > s->cap - off) {
        char msg[120];
        snprintf(msg, sizeof msg, "evaluation needs more than %zu bytes of scratch memory (expr.max_scratch)",
                 s->cap);
        set_fatal(c, &c->p->nodes[c->p->root], msg, NULL);
        return NULL;
    }
    s->used = off + n;
    return s->mem + off;
}

void expr__fail(expr__ctx *c, const expr_node *n, expr_val *out, const char *fmt, ...)
{
    if (c->fatal) {
        *out = c->fatal_err;
        return;
    }
    char msg[sizeof ((jd_err *)0)->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    make_error(c, n, out, msg);
}

const char *expr__fn_display(const expr_node *n)
{
    return n->fn < expr__nfns ? expr__fns[n->fn].name : "?";
}

void expr__no_overload(expr__ctx *c, const expr_node *n, const expr_val *args, unsigned nargs, expr_val *out)
{
    char types[96] = "";
    size_t o = 0;
    for (unsigned i = 0; i < nargs && o < sizeof types; i++)
        o += (size_t)snprintf(types + o, sizeof types - o, "%s%s", i ? ", " : "", expr__type_name(&args[i]));
    expr__fail(c, n, out, "found no matching overload for '%s' applied to '(%s)'", expr__fn_display(n), types);
}

bool expr__charge(expr__ctx *c, const expr_node *n, uint64_t units, expr_val *out)
{
    c->cost += units;
    if (c->cost <= EXPR_MAX_COST && !c->fatal) return true;
    char msg[80];
    snprintf(msg, sizeof msg, "evaluation cost exceeded %d (expr.max_cost)", EXPR_MAX_COST);
    set_fatal(c, n, msg, out);
    return false;
}

/* ---- native lists --------------------------------------------------------- */

expr_val *expr__list_new(expr__ctx *c, uint32_t cap, expr_val *out)
{
    expr__list *l = expr__alloc(c, sizeof *l);
    expr_val *items = cap ? expr__alloc(c, cap * sizeof *items) : NULL;
    if (!l || (cap && !items)) return NULL;
    l->n = 0;
    l->cap = cap;
    l->v = items;
    memset(out, 0, sizeof *out);
    out->kind = EXPR_LIST;
    out->_flags = VF_NATIVE;
    out->v.native = l;
    return out;
}

bool expr__list_push(expr__ctx *c, expr_val *list, const expr_val *v)
{
    expr__list *l = (expr__list *)list->v.native;
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 4;
        expr_val *items = expr__alloc(c, cap * sizeof *items);
        if (!items) return false;
        if (l->n) memcpy(items, l->v, l->n * sizeof *items);
        l->v = items;
        l->cap = cap;
    }
    l->v[l->n++] = *v;
    return true;
}

/* ---- variables (invariant 4) ------------------------------------------------ */

static void var_get(expr__ctx *c, const expr_node *n, expr_val *out)
{
    uint32_t i = n->a;
    const expr__var *d = &c->p->vars[i];
    if (c->var_state[i] == 0) {
        expr_val v;
        c->var_state[i] = 2;
        if (c->a && c->a->resolve && c->a->resolve(c->a->self, d->name, &v) == JD_OK) {
            c->var_state[i] = 1;
            int64_t us;
            if (d->kind == EXPR_TIMESTAMP && v.kind == EXPR_STRING) {
                if (expr__ts_parse(v.v.s.p, v.v.s.n, &us) != 0)
                    return expr__fail(c, n, out, "variable '%s' is not an RFC 3339 timestamp", d->name);
                memset(&v, 0, sizeof v);
                v.kind = EXPR_TIMESTAMP;
                v.v.i = us;
            } else if (d->kind == EXPR_DURATION && v.kind == EXPR_STRING) {
                if (expr__dur_parse(v.v.s.p, v.v.s.n, &us) != 0)
                    return expr__fail(c, n, out, "variable '%s' is not a duration", d->name);
                memset(&v, 0, sizeof v);
                v.kind = EXPR_DURATION;
                v.v.i = us;
            }
            if (d->kind != EXPR_DYN && v.kind != d->kind)
                return expr__fail(c, n, out, "variable '%s' is %s, declared %s", d->name, expr__type_name(&v),
                                  expr_kind_name(d->kind));
            c->vars[i] = v;
        }
    }
    if (c->var_state[i] == 2) return expr__fail(c, n, out, "no such key: %s", d->name);
    *out = c->vars[i];
}

/* ---- the walk ---------------------------------------------------------------- */

static void eval(expr__ctx *c, const expr_node *n, expr_val *out);

static inline bool is_err(const expr_val *v) { return v->kind == EXPR_ERROR_; }
static inline bool is_false(const expr_val *v) { return v->kind == EXPR_BOOL && !v->v.b; }
static inline bool is_true(const expr_val *v) { return v->kind == EXPR_BOOL && v->v.b; }
static inline void set_bool(expr_val *o, bool b) { memset(o, 0, sizeof *o); o->kind = EXPR_BOOL; o->v.b = b; }

static void eval_select(expr__ctx *c, const expr_node *n, expr_val *out)
{
    const expr_node *k = expr__kid(c->p, n, 0);
    const char *name = c->p->pool + n->soff;
    expr_val m;
    if ((n->flags & NF_TEST) && k->op == N_VAR) {
        var_get(c, k, &m);
        if (c->var_state[k->a] == 2) return set_bool(out, false);   /* has() on an absent variable */
    } else {
        eval(c, k, &m);
    }
    if (is_err(&m)) {
        *out = m;
        return;
    }
    if (m.kind != EXPR_MAP)
        return expr__fail(c, n, out, "type '%s' does not support field selection", expr__type_name(&m));
    int found = expr__map_get_name(&m, name, n->slen, out);
    if (n->flags & NF_TEST) return set_bool(out, found == 1);
    if (found != 1) expr__fail(c, n, out, "no such key: %s", name);
}

static void eval_call(expr__ctx *c, const expr_node *n, expr_val *out)
{
    expr_val args[EXPR_MAX_ARGS];
    unsigned na = n->n;
    if (na > EXPR_MAX_ARGS || n->fn >= expr__nfns) return expr__fail(c, n, out, "unknown function");
    for (unsigned i = 0; i < na; i++) {
        eval(c, expr__kid(c->p, n, i), &args[i]);
        if (is_err(&args[i])) {
            *out = args[i];
            return;
        }
    }
    if (!expr__charge(c, n, 1, out)) return;
    const expr__fn *f = &expr__fns[n->fn];
    const expr__ovl *o = expr__dispatch(f, n, args, na);
    if (!o) return expr__no_overload(c, n, args, na, out);
    o->impl(c, n, args, out);
}

/* && and || (invariant 1): a deciding operand wins over an error. */
static void eval_logic(expr__ctx *c, const expr_node *n, bool is_and, expr_val *out)
{
    expr_val l, r;
    eval(c, expr__kid(c->p, n, 0), &l);
    if (is_and ? is_false(&l) : is_true(&l)) {
        *out = l;
        return;
    }
    eval(c, expr__kid(c->p, n, 1), &r);
    if (is_and ? is_false(&r) : is_true(&r)) {
        *out = r;
        return;
    }
    if (is_err(&l)) { *out = l; return; }
    if (is_err(&r)) { *out = r; return; }
    if (l.kind == EXPR_BOOL && r.kind == EXPR_BOOL) {
        *out = l;
        return;
    }
    expr__fail(c, n, out, "found no matching overload for '%s' applied to '(%s, %s)'", is_and ? "_&&_" : "_||_",
               expr__type_name(&l), expr__type_name(&r));
}

static void eval_list(expr__ctx *c, const expr_node *n, expr_val *out)
{
    expr_val list;
    if (!expr__charge(c, n, n->n / 8, out)) return;
    if (!expr__list_new(c, n->n, &list)) return expr__fail(c, n, out, "out of scratch memory");
    expr__list *l = (expr__list *)list.v.native;
    for (unsigned i = 0; i < n->n; i++) {
        eval(c, expr__kid(c->p, n, i), &l->v[i]);
        if (is_err(&l->v[i])) {
            *out = l->v[i];
            return;
        }
        l->n++;
    }
    *out = list;
}

static void eval_map(expr__ctx *c, const expr_node *n, expr_val *out)
{
    unsigned pairs = n->n / 2u;
    if (!expr__charge(c, n, pairs * (uint64_t)pairs / 64, out)) return;
    expr__map *m = expr__alloc(c, sizeof *m);
    expr_val *kv = pairs ? expr__alloc(c, 2 * pairs * sizeof *kv) : NULL;
    if (!m || (pairs && !kv)) return expr__fail(c, n, out, "out of scratch memory");
    m->n = 0;
    m->cap = pairs;
    m->kv = kv;
    expr_val map = { .kind = EXPR_MAP, ._flags = VF_NATIVE, .v.native = m };
    for (unsigned i = 0; i < pairs; i++) {
        const expr_node *kn = expr__kid(c->p, n, 2 * i);
        eval(c, kn, &kv[2 * i]);
        if (is_err(&kv[2 * i])) { *out = kv[2 * i]; return; }
        eval(c, expr__kid(c->p, n, 2 * i + 1), &kv[2 * i + 1]);
        if (is_err(&kv[2 * i + 1])) { *out = kv[2 * i + 1]; return; }
        expr_kind kk = kv[2 * i].kind;
        if (kk != EXPR_STRING && kk != EXPR_INT && kk != EXPR_UINT && kk != EXPR_BOOL)
            return expr__fail(c, kn, out, "unsupported key type '%s'", expr_kind_name(kk));
        expr_val dup;
        if (expr__map_get(&map, &kv[2 * i], &dup) == 1) return expr__fail(c, kn, out, "Failed with repeated key");
        m->n++;
    }
    *out = map;
}

/* The spec's comprehension: accu = init; for each element (list element or
 * map key): if !cond break; accu = step; then result. */
static void eval_comp(expr__ctx *c, const expr_node *n, expr_val *out)
{
    expr_val range, accu, cond, elem;
    eval(c, expr__kid(c->p, n, 0), &range);
    if (is_err(&range)) {
        *out = range;
        return;
    }
    if (range.kind != EXPR_LIST && range.kind != EXPR_MAP)
        return expr__fail(c, n, out, "expression of type '%s' cannot be the range of a comprehension",
                          expr__type_name(&range));
    eval(c, expr__kid(c->p, n, 1), &accu);
    if (is_err(&accu)) {
        *out = accu;
        return;
    }
    size_t len = range.kind == EXPR_LIST ? expr__list_len(&range) : 0;
    expr__mapit it = { 0, NULL };
    for (size_t i = 0;; i++) {
        if (range.kind == EXPR_LIST) {
            if (i >= len) break;
            expr__list_at(&range, i, &elem);
        } else if (!expr__map_next(&range, &it, &elem, NULL)) {
            break;
        }
        if (!expr__charge(c, n, 1, out)) return;   /* invariant 2 */
        c->slots[n->a] = elem;
        c->slots[n->b] = accu;
        eval(c, expr__kid(c->p, n, 2), &cond);
        if (c->fatal) return set_fatal(c, n, "", out);
        if (is_err(&cond)) {
            *out = cond;
            return;
        }
        if (is_false(&cond)) break;
        eval(c, expr__kid(c->p, n, 3), &accu);
        if (c->fatal) return set_fatal(c, n, "", out);
    }
    c->slots[n->b] = accu;
    eval(c, expr__kid(c->p, n, 4), out);
}

static void eval(expr__ctx *c, const expr_node *n, expr_val *out)
{
    expr_val v;
    switch ((expr__op)n->op) {
    case N_LIT: *out = n->lit; return;
    case N_VAR: var_get(c, n, out); return;
    case N_LOCAL: *out = c->slots[n->a]; return;
    case N_SELECT: eval_select(c, n, out); return;
    case N_CALL: eval_call(c, n, out); return;
    case N_AND: eval_logic(c, n, true, out); return;
    case N_OR: eval_logic(c, n, false, out); return;
    case N_COND:
        eval(c, expr__kid(c->p, n, 0), &v);
        if (is_err(&v)) {
            *out = v;
            return;
        }
        if (v.kind != EXPR_BOOL) {
            memset(out, 0, sizeof *out);
            return expr__fail(c, n, out, "found no matching overload for '_?_:_' applied to '(%s, ...)'",
                              expr__type_name(&v));
        }
        eval(c, expr__kid(c->p, n, v.v.b ? 1 : 2), out);
        return;
    case N_NSF:
        eval(c, expr__kid(c->p, n, 0), &v);
        return set_bool(out, !is_false(&v));
    case N_LIST: eval_list(c, n, out); return;
    case N_MAP: eval_map(c, n, out); return;
    case N_COMP: eval_comp(c, n, out); return;
    case N_APPEND: {
        expr_val e;
        eval(c, expr__kid(c->p, n, 0), &v);
        eval(c, expr__kid(c->p, n, 1), &e);
        if (is_err(&v)) { *out = v; return; }
        if (is_err(&e)) { *out = e; return; }
        /* The accumulator is a list this comprehension made and only it can
         * name ("@result"), so appending in place is invisible. */
        if (v.kind != EXPR_LIST || !(v._flags & VF_NATIVE)) return expr__fail(c, n, out, "accumulator is not a list");
        if (v._flags & VF_CONST) {   /* never reached (NF_ACCU), but never write into the program */
            expr_val copy;
            size_t len = expr__list_len(&v);
            if (!expr__list_new(c, (uint32_t)len, &copy)) return expr__fail(c, n, out, "out of scratch memory");
            for (size_t i = 0; i < len; i++) expr__list_at(&v, i, &((expr__list *)copy.v.native)->v[i]);
            ((expr__list *)copy.v.native)->n = (uint32_t)len;
            v = copy;
        }
        if (!expr__list_push(c, &v, &e)) return expr__fail(c, n, out, "out of scratch memory");
        *out = v;
        return;
    }
    case N_IDENT: break;
    }
    expr__fail(c, n, out, "unresolved identifier");
}

/* ---- the public entry points -------------------------------------------------- */

static int run(const expr_prog *p, const expr_activation *a, expr_scratch *s, expr_val *out, jd_err *err)
{
    int rc = JD_EINVAL;
    expr__ctx c;
    memset(&c, 0, sizeof c);
    c.p = p;
    c.a = a;
    c.s = s;
    s->in_eval = true;
    c.oom = NULL;
    size_t need = sizeof(expr__error) + 128;
    size_t off = (s->used + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (off > s->cap || need > s->cap - off) {
        jd_err_set(err, JD_ELIMIT, "1:1", "scratch memory is full (expr.max_scratch)");
        rc = JD_ELIMIT;
        goto out;
    }
    c.oom = (expr__error *)(s->mem + off);
    s->used = off + need;
    c.oom->node = p->root;
    c.oom->msg[0] = '\0';
    c.vars = expr__alloc(&c, (p->nvars + 1) * sizeof *c.vars);
    c.var_state = expr__alloc(&c, p->nvars + 1);
    c.slots = expr__alloc(&c, (p->nslots + 1) * sizeof *c.slots);
    if (!c.vars || !c.var_state || !c.slots) {
        jd_err_set(err, JD_ELIMIT, "1:1", "scratch memory is full (expr.max_scratch)");
        rc = JD_ELIMIT;
        goto out;
    }
    memset(c.var_state, 0, p->nvars + 1);
    eval(&c, &p->nodes[p->root], out);
    if (c.fatal) *out = c.fatal_err;
    if (out->kind == EXPR_ERROR_) {
        const expr__error *e = out->v.native;
        const expr_node *n = &p->nodes[e->node < p->nnodes ? e->node : p->root];
        jd_err_set(err, JD_EINVAL, NULL, "%s", e->msg[0] ? e->msg : "evaluation failed");
        expr__set_where(err, n->line, n->col);
        goto out;
    }
    rc = JD_OK;
out:
    s->in_eval = false;
    return rc;
}

int expr_eval(const expr_prog *p, const expr_activation *a, expr_scratch *s, expr_val *out, jd_err *err)
{
    return run(p, a, s, out, err);
}

int expr_eval_bool(const expr_prog *p, const expr_activation *a, expr_scratch *s, bool *out, jd_err *err)
{
    size_t mark = s->used;   /* a bool needs no memory: give the scratch back */
    expr_val v;
    int rc = run(p, a, s, &v, err);
    if (rc == JD_OK && v.kind != EXPR_BOOL) {
        const expr_node *n = &p->nodes[p->root];
        jd_err_set(err, JD_EINVAL, NULL, "condition is %s, want bool", expr__type_name(&v));
        expr__set_where(err, n->line, n->col);
        rc = JD_EINVAL;
    }
    if (rc == JD_OK) *out = v.v.b;
    s->used = mark;
    return rc;
}

/* ---- the JSON activation ---------------------------------------------------------- */

static int json_resolve(void *self, const char *name, expr_val *out)
{
    struct json_object *vars = self, *v;
    if (!vars || !json_object_is_type(vars, json_type_object) || !json_object_object_get_ex(vars, name, &v))
        return JD_ENOTFOUND;
    expr__from_json(v, out);
    return JD_OK;
}

void expr_val_from_json(const struct json_object *j, expr_val *out) { expr__from_json(j, out); }

void expr_activation_json(expr_activation *a, const struct json_object *vars)
{
    memset(a, 0, sizeof *a);
    a->resolve = json_resolve;
    a->self = (void *)vars;
}

static bool is_ident(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

expr_decls *expr_decls_json(const struct json_object *vars)
{
    expr_decls *d = expr_decls_create();
    if (!vars || !json_object_is_type(vars, json_type_object)) return d;
    json_object_object_foreach((struct json_object *)vars, key, val) {
        (void)val;
        if (is_ident(key)) expr_decls_var(d, key, strcmp(key, "now") == 0 ? EXPR_TIMESTAMP : EXPR_DYN, EXPR_DYN);
    }
    return d;
}
