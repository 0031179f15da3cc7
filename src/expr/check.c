/* src/expr/check.c -- the type checker: gradual typing with dyn.
 *
 * Types are int, uint, double, bool, string, bytes, null_type, list(T),
 * map(K, V), timestamp, duration, type and dyn. JSON-shaped variables are
 * map(string, dyn), so selecting their fields gives dyn and most checking of
 * event data happens at run time; literals, variables of known types and
 * function overloads are checked here.
 *
 * Invariants:
 *  (1) After checking, no N_IDENT remains: each became N_VAR (a declared
 *      variable, numbered in prog->vars in order of first use), N_LOCAL (a
 *      comprehension variable or accumulator, with its slot) or a type
 *      literal (int, uint, double, bool, string, bytes, list, map,
 *      null_type, type).
 *  (2) A call is accepted iff some overload row fits the static argument
 *      types, where dyn fits anything; with exactly one fitting row, the
 *      node remembers it (the evaluator still re-checks it at run time).
 *  (3) == and != need assignable types (as cel-go: `1 == 'a'` and
 *      `1 == 1.0` are compile errors, `dyn(1) == 1.0` is true at run time);
 *      null compares with anything. Orderings accept int/uint/double mixes.
 *  (4) Error messages and positions follow cel-go: "undeclared reference to
 *      'x'", "found no matching overload for '_+_' applied to '(int,
 *      string)'" at the operator, receiver calls as "'string.(int)'".
 */
#include <stdarg.h>
#include <stdlib.h>

#include "expr_int.h"

#define FAIL UINT32_MAX

typedef struct scope_ent { uint32_t soff, slen, slot, type; } scope_ent;

typedef struct checker {
    expr__build *b;
    const expr_decls *d;
    expr_prog *p;
    expr__type *types;
    uint32_t ntypes, captypes;
    scope_ent scope[2 * EXPR_MAX_DEPTH + 2];
    uint32_t nscope;
    jd_err *err;
    bool failed;
} checker;

static uint32_t fail_at(checker *k, const expr_node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static uint32_t fail_at(checker *k, const expr_node *n, const char *fmt, ...)
{
    if (k->failed) return FAIL;
    k->failed = true;
    if (k->err) {
        va_list ap;
        va_start(ap, fmt);
        jd_err_clear(k->err);
        k->err->code = JD_EINVAL;
        vsnprintf(k->err->msg, sizeof k->err->msg, fmt, ap);
        va_end(ap);
        expr__set_where(k->err, n->line, n->col);
    }
    return FAIL;
}

/* ---- the type table ----------------------------------------------------------- */

static uint32_t intern(checker *k, expr_kind kind, uint32_t a, uint32_t b)
{
    for (uint32_t i = 0; i < k->ntypes; i++)
        if (k->types[i].kind == kind && k->types[i].a == a && k->types[i].b == b) return i;
    if (k->ntypes == k->captypes) {
        k->captypes = k->captypes ? k->captypes * 2 : 32;
        k->types = jd_xrealloc(k->types, k->captypes * sizeof *k->types);
    }
    k->types[k->ntypes] = (expr__type){ (uint8_t)kind, a, b };
    return k->ntypes++;
}

static void types_init(checker *k)
{
    /* ids 0..EXPR_TYPE are the kinds; list and map with dyn parameters. */
    for (int i = 0; i <= EXPR_TYPE; i++) {
        expr_kind kind = (expr_kind)i;
        uint32_t a = (kind == EXPR_LIST || kind == EXPR_MAP) ? EXPR_DYN : 0;
        uint32_t b = kind == EXPR_MAP ? EXPR_DYN : 0;
        if (k->ntypes == k->captypes) {
            k->captypes = k->captypes ? k->captypes * 2 : 32;
            k->types = jd_xrealloc(k->types, k->captypes * sizeof *k->types);
        }
        k->types[k->ntypes++] = (expr__type){ (uint8_t)kind, a, b };
    }
}

static expr_kind kind_of(const checker *k, uint32_t t) { return (expr_kind)k->types[t].kind; }

static size_t type_str(const checker *k, uint32_t t, char *out, size_t cap)
{
    const expr__type *ty = &k->types[t];
    char a[96], b[96];
    if (ty->kind == EXPR_LIST) {
        type_str(k, ty->a, a, sizeof a);
        return (size_t)snprintf(out, cap, "list(%.80s)", a);
    }
    if (ty->kind == EXPR_MAP) {
        type_str(k, ty->a, a, sizeof a);
        type_str(k, ty->b, b, sizeof b);
        return (size_t)snprintf(out, cap, "map(%.40s, %.40s)", a, b);
    }
    return (size_t)snprintf(out, cap, "%s", expr_kind_name((expr_kind)ty->kind));
}

static bool assignable(const checker *k, uint32_t a, uint32_t b)
{
    if (a == b || a == EXPR_DYN || b == EXPR_DYN) return true;
    const expr__type *x = &k->types[a], *y = &k->types[b];
    if (x->kind != y->kind) return false;
    if (x->kind == EXPR_LIST) return assignable(k, x->a, y->a);
    if (x->kind == EXPR_MAP) return assignable(k, x->a, y->a) && assignable(k, x->b, y->b);
    return true;
}

/* The most specific type both fit, or FAIL. */
static uint32_t join(checker *k, uint32_t a, uint32_t b)
{
    if (a == b) return a;
    if (a == EXPR_DYN || b == EXPR_DYN) return EXPR_DYN;
    expr__type x = k->types[a], y = k->types[b];
    if (x.kind != y.kind) return FAIL;
    if (x.kind == EXPR_LIST) {
        uint32_t e = join(k, x.a, y.a);
        return intern(k, EXPR_LIST, e == FAIL ? EXPR_DYN : e, 0);
    }
    if (x.kind == EXPR_MAP) {
        uint32_t kk = join(k, x.a, y.a), vv = join(k, x.b, y.b);
        return intern(k, EXPR_MAP, kk == FAIL ? EXPR_DYN : kk, vv == FAIL ? EXPR_DYN : vv);
    }
    return a;
}

static uint32_t decl_type(checker *k, expr_kind kind, expr_kind elem)
{
    if (kind == EXPR_LIST) return intern(k, EXPR_LIST, elem, 0);
    if (kind == EXPR_MAP) return intern(k, EXPR_MAP, EXPR_STRING, elem);
    return kind;
}

/* ---- identifiers (invariant 1) ------------------------------------------------- */

static const struct { const char *name; expr_kind kind; } type_names[] = {
    { "int", EXPR_INT }, { "uint", EXPR_UINT }, { "double", EXPR_DOUBLE }, { "bool", EXPR_BOOL },
    { "string", EXPR_STRING }, { "bytes", EXPR_BYTES }, { "list", EXPR_LIST }, { "map", EXPR_MAP },
    { "null_type", EXPR_NULL }, { "type", EXPR_TYPE },
};

static uint32_t check_ident(checker *k, expr_node *n)
{
    const char *name = k->b->pool.p + n->soff;
    bool rooted = n->flags & NF_RECV;   /* ".name": never a comprehension variable */
    for (uint32_t i = k->nscope; i-- > 0 && !rooted;) {
        const scope_ent *s = &k->scope[i];
        if (s->slen == n->slen && memcmp(k->b->pool.p + s->soff, name, n->slen) == 0) {
            n->op = N_LOCAL;
            n->a = s->slot;
            return s->type;
        }
    }
    for (size_t i = 0; k->d && i < k->d->n; i++) {
        const expr__var *v = &k->d->v[i];
        if (strcmp(v->name, name) != 0) continue;
        uint32_t idx;
        for (idx = 0; idx < k->p->nvars; idx++)
            if (strcmp(k->p->vars[idx].name, name) == 0) break;
        if (idx == k->p->nvars) {
            k->p->vars = jd_xrealloc(k->p->vars, (k->p->nvars + 1) * sizeof *k->p->vars);
            k->p->vars[idx] = (expr__var){ jd_xstrdup(name), v->kind, v->elem, decl_type(k, v->kind, v->elem) };
            k->p->nvars++;
        }
        n->op = N_VAR;
        n->a = idx;
        return k->p->vars[idx].type;
    }
    for (size_t i = 0; i < JD_ARRAY_LEN(type_names); i++) {
        if (strcmp(type_names[i].name, name) == 0) {
            n->op = N_LIT;
            memset(&n->lit, 0, sizeof n->lit);
            n->lit.kind = EXPR_TYPE;
            n->lit.v.type = type_names[i].kind;
            return EXPR_TYPE;
        }
    }
    return fail_at(k, n, "undeclared reference to '%s'", name);
}

/* ---- calls (invariants 2, 3) ----------------------------------------------------- */

static bool fits(const checker *k, uint8_t param, uint32_t t)
{
    return param == EXPR_DYN || kind_of(k, t) == EXPR_DYN || kind_of(k, t) == param;
}

static uint32_t no_overload(checker *k, const expr_node *n, const char *fname, const uint32_t *ts, unsigned na)
{
    char buf[160] = "";
    size_t o = 0;
    bool recv = n->flags & NF_RECV;
    for (unsigned i = 0; i < na && o < sizeof buf; i++) {
        char t[96];
        type_str(k, ts[i], t, sizeof t);
        const char *sep = i == 0 ? (recv ? "" : "(") : (recv && i == 1 ? ".(" : ", ");
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", sep, t);
    }
    if (o < sizeof buf) snprintf(buf + o, sizeof buf - o, "%s", recv && na == 1 ? ".()" : ")");
    if (na == 0) snprintf(buf, sizeof buf, "()");
    return fail_at(k, n, "found no matching overload for '%s' applied to '%s'", fname, buf);
}

static uint32_t result_type(checker *k, const expr__ovl *o, const uint32_t *ts)
{
    switch (o->rule) {
    case R_ARG0: return ts[0];
    case R_ELEM0: {
        const expr__type *t = &k->types[ts[0]];
        if (t->kind == EXPR_LIST) return t->a;
        if (t->kind == EXPR_MAP) return t->b;
        return EXPR_DYN;
    }
    case R_LISTJOIN: {
        uint32_t j = join(k, ts[0], ts[1]);
        return j == FAIL || kind_of(k, j) != EXPR_LIST ? (uint32_t)EXPR_LIST : j;
    }
    default: return o->ret;
    }
}

static uint32_t check(checker *k, uint32_t id);

static uint32_t check_call(checker *k, expr_node *n)
{
    uint32_t ts[EXPR_MAX_ARGS + 1];
    unsigned na = n->n;
    const char *fname = n->fn < expr__nfns ? expr__fns[n->fn].name : k->b->pool.p + n->soff;
    for (unsigned i = 0; i < na; i++) {
        uint32_t t = check(k, k->b->kids[n->kid + i]);
        if (t == FAIL) return FAIL;
        if (i < JD_ARRAY_LEN(ts)) ts[i] = t;
    }
    if (n->fn >= expr__nfns) return fail_at(k, n, "undeclared reference to '%s'", fname);
    if (na > EXPR_MAX_ARGS) return no_overload(k, n, fname, ts, EXPR_MAX_ARGS);
    const expr__fn *f = &expr__fns[n->fn];
    int chosen = -1, count = 0;
    uint32_t rt = FAIL;
    for (int i = 0; f->ovl[i].impl; i++) {
        const expr__ovl *o = &f->ovl[i];
        if (o->nargs != na || !(o->style & ((n->flags & NF_RECV) ? S_RECV : S_GLOBAL))) continue;
        bool ok = true;
        for (unsigned a = 0; a < na && ok; a++) ok = fits(k, o->arg[a], ts[a]);
        if (!ok) continue;
        uint32_t r = result_type(k, o, ts);
        rt = count == 0 ? r : (r == rt ? rt : (uint32_t)EXPR_DYN);
        if (i < 32) n->cand |= UINT32_C(1) << i;
        chosen = i;
        count++;
    }
    if (count == 0) return no_overload(k, n, fname, ts, na);
    n->ovl = count == 1 ? (int16_t)chosen : -1;
    /* Type relations the rows cannot say (invariant 3). */
    if (strcmp(f->name, "_==_") == 0 || strcmp(f->name, "_!=_") == 0) {
        if (!assignable(k, ts[0], ts[1]) && ts[0] != EXPR_NULL && ts[1] != EXPR_NULL)
            return no_overload(k, n, fname, ts, na);
    } else if (strcmp(f->name, "@in") == 0) {
        const expr__type *c = &k->types[ts[1]];
        if (c->kind != EXPR_DYN && !assignable(k, ts[0], c->a)) return no_overload(k, n, fname, ts, na);
    } else if (strcmp(f->name, "_[_]") == 0) {
        const expr__type *c = &k->types[ts[0]];
        if (c->kind == EXPR_MAP && !assignable(k, ts[1], c->a)) return no_overload(k, n, fname, ts, na);
    }
    return rt;
}

/* ---- the walk --------------------------------------------------------------------- */

static bool key_type_ok(const checker *k, uint32_t t)
{
    expr_kind kk = kind_of(k, t);
    return kk == EXPR_DYN || kk == EXPR_STRING || kk == EXPR_INT || kk == EXPR_UINT || kk == EXPR_BOOL;
}

static uint32_t check_comp(checker *k, expr_node *n)
{
    uint32_t rt = check(k, k->b->kids[n->kid]);
    if (rt == FAIL) return FAIL;
    const expr__type *r = &k->types[rt];
    uint32_t it;
    if (r->kind == EXPR_LIST || r->kind == EXPR_MAP) it = r->a;
    else if (r->kind == EXPR_DYN) it = EXPR_DYN;
    else {
        char t[96];
        type_str(k, rt, t, sizeof t);
        return fail_at(k, n, "expression of type '%s' cannot be the range of a comprehension "
                             "(must be list, map, or dynamic)", t);
    }
    uint32_t init = check(k, k->b->kids[n->kid + 1]);
    if (init == FAIL) return FAIL;
    if (k->nscope + 2 > JD_ARRAY_LEN(k->scope)) return fail_at(k, n, "comprehensions nest too deeply");
    n->a = k->b->nslots++;
    n->b = k->b->nslots++;
    scope_ent *sv = &k->scope[k->nscope++];
    *sv = (scope_ent){ n->soff, n->slen, n->a, it };
    k->scope[k->nscope++] = (scope_ent){ k->b->accu_off, 7, n->b, init };   /* "@result" */
    uint32_t cond = check(k, k->b->kids[n->kid + 2]);
    uint32_t step = cond == FAIL ? FAIL : check(k, k->b->kids[n->kid + 3]);
    uint32_t res = FAIL;
    if (step != FAIL) {
        uint32_t j = join(k, init, step);
        k->scope[k->nscope - 1].type = j == FAIL ? (uint32_t)EXPR_DYN : j;
        res = check(k, k->b->kids[n->kid + 4]);
    }
    k->nscope -= 2;
    return res;
}

static uint32_t check(checker *k, uint32_t id)
{
    expr_node *n = &k->b->nodes[id];
    uint32_t t = FAIL, a, b, c;
    switch ((expr__op)n->op) {
    case N_LIT:
        t = n->lit.kind == EXPR_TYPE ? (uint32_t)EXPR_TYPE : (uint32_t)n->lit.kind;
        break;
    case N_IDENT:
        t = check_ident(k, n);
        break;
    case N_SELECT:
        a = check(k, k->b->kids[n->kid]);
        if (a == FAIL) return FAIL;
        if (kind_of(k, a) == EXPR_MAP && key_type_ok(k, k->types[a].a) &&
            (kind_of(k, k->types[a].a) == EXPR_STRING || kind_of(k, k->types[a].a) == EXPR_DYN))
            t = k->types[a].b;
        else if (kind_of(k, a) == EXPR_DYN)
            t = EXPR_DYN;
        else {
            char s[96];
            type_str(k, a, s, sizeof s);
            return fail_at(k, n, "type '%s' does not support field selection", s);
        }
        if (n->flags & NF_TEST) t = EXPR_BOOL;
        break;
    case N_CALL:
        t = check_call(k, n);
        break;
    case N_AND:
    case N_OR:
        a = check(k, k->b->kids[n->kid]);
        b = a == FAIL ? FAIL : check(k, k->b->kids[n->kid + 1]);
        if (b == FAIL) return FAIL;
        if (!fits(k, EXPR_BOOL, a) || !fits(k, EXPR_BOOL, b)) {
            uint32_t ts[2] = { a, b };
            return no_overload(k, n, n->op == N_AND ? "_&&_" : "_||_", ts, 2);
        }
        t = EXPR_BOOL;
        break;
    case N_COND:
        a = check(k, k->b->kids[n->kid]);
        b = a == FAIL ? FAIL : check(k, k->b->kids[n->kid + 1]);
        c = b == FAIL ? FAIL : check(k, k->b->kids[n->kid + 2]);
        if (c == FAIL) return FAIL;
        t = join(k, b, c);
        if (!fits(k, EXPR_BOOL, a) || t == FAIL) {
            uint32_t ts[3] = { a, b, c };
            n->fn = UINT16_MAX;
            return no_overload(k, n, "_?_:_", ts, 3);
        }
        break;
    case N_NSF:
        if (check(k, k->b->kids[n->kid]) == FAIL) return FAIL;
        t = EXPR_BOOL;
        break;
    case N_LIST: {
        uint32_t e = FAIL;
        for (unsigned i = 0; i < n->n; i++) {
            uint32_t x = check(k, k->b->kids[n->kid + i]);
            if (x == FAIL) return FAIL;
            e = i == 0 ? x : join(k, e, x);
            if (e == FAIL) e = EXPR_DYN;
        }
        t = intern(k, EXPR_LIST, n->n ? e : EXPR_DYN, 0);
        break;
    }
    case N_MAP: {
        uint32_t kt = EXPR_DYN, vt = EXPR_DYN;
        for (unsigned i = 0; i + 1 < n->n; i += 2) {
            uint32_t x = check(k, k->b->kids[n->kid + i]);
            uint32_t y = x == FAIL ? FAIL : check(k, k->b->kids[n->kid + i + 1]);
            if (y == FAIL) return FAIL;
            if (!key_type_ok(k, x)) {
                char s[96];
                type_str(k, x, s, sizeof s);
                return fail_at(k, &k->b->nodes[k->b->kids[n->kid + i]], "unsupported map key type '%s'", s);
            }
            kt = i == 0 ? x : join(k, kt, x);
            vt = i == 0 ? y : join(k, vt, y);
            if (kt == FAIL) kt = EXPR_DYN;
            if (vt == FAIL) vt = EXPR_DYN;
        }
        t = intern(k, EXPR_MAP, kt, vt);
        break;
    }
    case N_COMP:
        t = check_comp(k, n);
        break;
    case N_APPEND:
        a = check(k, k->b->kids[n->kid]);
        b = a == FAIL ? FAIL : check(k, k->b->kids[n->kid + 1]);
        if (b == FAIL) return FAIL;
        t = intern(k, EXPR_LIST, b, 0);
        break;
    case N_VAR:
    case N_LOCAL:
        t = EXPR_DYN;   /* not produced before checking */
        break;
    }
    if (t == FAIL) return FAIL;
    k->b->nodes[id].type = t;
    return t;
}

int expr__check(expr__build *b, uint32_t root, const expr_decls *d, expr_prog *p, jd_err *err)
{
    checker k;
    memset(&k, 0, sizeof k);
    k.b = b;
    k.d = d;
    k.p = p;
    k.err = err;
    types_init(&k);
    uint32_t t = check(&k, root);
    p->types = k.types;
    p->ntypes = k.ntypes;
    if (t == FAIL) return JD_EINVAL;
    p->kind = kind_of(&k, t);
    return JD_OK;
}
