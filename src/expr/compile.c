/* src/expr/compile.c -- expr_compile: parse, check, finish; declarations.
 *
 * Invariants:
 *  (1) A program is immutable once expr_compile returns: evaluation reads
 *      nodes, kids, pool, vars and compiled regexes and writes nothing in
 *      it, so one program serves any number of threads.
 *  (2) Every limit is checked before the work it bounds: source length here,
 *      depth and node count in the parser (parse.c (3)).
 *  (3) Literal string/bytes nodes point into the program's pool once
 *      compiling is done (the pool no longer moves).
 *  (4) matches() with a literal pattern is compiled and JIT-compiled here; a
 *      bad literal pattern is a compile error at the pattern.
 *  (5) List and map literals made only of literals are built once, here,
 *      owned by the program and marked VF_CONST: evaluating them allocates
 *      nothing. A comprehension's accumulator (NF_ACCU) is never folded,
 *      since it is appended to in place; a map literal with a repeated or
 *      bad key is left to fail at run time, as CEL says.
 */
#include <stdlib.h>

#include "expr_int.h"

expr_decls *expr_decls_create(void) { return jd_xcalloc(1, sizeof(expr_decls)); }

void expr_decls_destroy(expr_decls *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) free(d->v[i].name);
    free(d->v);
    free(d);
}

void expr_decls_var(expr_decls *d, const char *name, expr_kind k, expr_kind elem)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->v[i].name, name) == 0) {   /* a redeclaration replaces */
            d->v[i].kind = k;
            d->v[i].elem = elem;
            return;
        }
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->v = jd_xrealloc(d->v, d->cap * sizeof *d->v);
    }
    d->v[d->n++] = (expr__var){ jd_xstrdup(name), k, elem, 0 };
}

expr_decls *expr_decls_journeyd(void)
{
    expr_decls *d = expr_decls_create();
    expr_decls_var(d, "event", EXPR_MAP, EXPR_DYN);
    expr_decls_var(d, "profile", EXPR_MAP, EXPR_DYN);
    expr_decls_var(d, "journey", EXPR_MAP, EXPR_DYN);
    expr_decls_var(d, "now", EXPR_TIMESTAMP, EXPR_DYN);
    return d;
}

void expr_prog_destroy(expr_prog *p)
{
    if (!p) return;
    for (uint32_t i = 0; i < p->nre; i++) pcre2_code_free(p->re[i]);
    free(p->re);
    for (uint32_t i = 0; i < p->nconsts; i++) free(p->consts[i]);
    free(p->consts);
    for (uint32_t i = 0; i < p->nvars; i++) free(p->vars[i].name);
    free(p->vars);
    free(p->types);
    free(p->nodes);
    free(p->kids);
    free(p->pool);
    free(p->src);
    free(p);
}

expr_kind expr_prog_kind(const expr_prog *p) { return p->kind; }
const char *expr_prog_source(const expr_prog *p) { return p->src; }

/* Invariant 4. */
static int compile_regexes(expr_prog *p, jd_err *err)
{
    int matches = expr__fn_id("matches");
    for (uint32_t i = 0; i < p->nnodes; i++) {
        expr_node *n = &p->nodes[i];
        if (n->op != N_CALL || n->fn != matches || n->n != 2) continue;
        const expr_node *pat = expr__kid(p, n, 1);
        if (pat->op != N_LIT || pat->lit.kind != EXPR_STRING) continue;
        char msg[192];
        pcre2_code *re = expr__re_compile(pat->lit.v.s.p, pat->lit.v.s.n, NULL, msg, sizeof msg);
        if (!re) {
            jd_err_set(err, JD_EINVAL, NULL, "%s", msg);
            expr__set_where(err, pat->line, pat->col);
            return JD_EINVAL;
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* without JIT it still works, slower */
        p->re = jd_xrealloc(p->re, (p->nre + 1) * sizeof *p->re);
        n->re = (int32_t)p->nre;
        p->re[p->nre++] = re;
    }
    return JD_OK;
}

static void *own(expr_prog *p, size_t n)
{
    void *m = jd_xcalloc(1, n ? n : 1);
    p->consts = jd_xrealloc(p->consts, (p->nconsts + 1) * sizeof *p->consts);
    p->consts[p->nconsts++] = m;
    return m;
}

/* Invariant 5. Children come before their parents in the node array
 * (parse.c makes them first), so one forward pass folds nested literals. */
static void fold_literals(expr_prog *p)
{
    for (uint32_t i = 0; i < p->nnodes; i++) {
        expr_node *n = &p->nodes[i];
        if ((n->op != N_LIST && n->op != N_MAP) || (n->flags & NF_ACCU)) continue;
        bool all_lit = true;
        for (unsigned k = 0; k < n->n && all_lit; k++) all_lit = expr__kid(p, n, k)->op == N_LIT;
        if (!all_lit) continue;
        expr_val v = { .kind = n->op == N_LIST ? EXPR_LIST : EXPR_MAP, ._flags = VF_NATIVE | VF_CONST };
        if (n->op == N_LIST) {
            expr__list *l = own(p, sizeof *l);
            l->v = own(p, n->n * sizeof *l->v);
            for (unsigned k = 0; k < n->n; k++) l->v[k] = expr__kid(p, n, k)->lit;
            l->n = l->cap = n->n;
            v.v.native = l;
        } else {
            expr__map *m = own(p, sizeof *m);
            m->kv = own(p, n->n * sizeof *m->kv);
            v.v.native = m;
            bool ok = true;
            for (unsigned k = 0; k + 1 < n->n && ok; k += 2) {
                const expr_val *key = &expr__kid(p, n, k)->lit;
                expr_val dup;
                ok = (key->kind == EXPR_STRING || key->kind == EXPR_INT || key->kind == EXPR_UINT ||
                      key->kind == EXPR_BOOL) && expr__map_get(&v, key, &dup) == 0;
                m->kv[m->n * 2] = *key;
                m->kv[m->n * 2 + 1] = expr__kid(p, n, k + 1)->lit;
                m->n++;
            }
            if (!ok) continue;   /* the arrays stay owned, unused */
            m->cap = m->n;
        }
        n->op = N_LIT;
        n->lit = v;
    }
}

int expr_compile(const char *src, size_t n, const expr_decls *d, expr_prog **out, jd_err *err)
{
    int rc = JD_EINVAL;
    expr__build b;
    expr_prog *p = jd_xcalloc(1, sizeof *p);
    uint32_t root = 0;
    memset(&b, 0, sizeof b);
    *out = NULL;
    p->src = jd_xmalloc(n + 1);
    if (n) memcpy(p->src, src, n);
    p->src[n] = '\0';
    p->srclen = n;
    if (n > EXPR_MAX_SOURCE) {
        jd_err_set(err, JD_EINVAL, "1:1", "expression is longer than %d bytes (expr.max_source)", EXPR_MAX_SOURCE);
        goto out;
    }
    if (!expr__utf8_valid(src, n)) {
        jd_err_set(err, JD_EINVAL, "1:1", "Syntax error: the expression is not valid UTF-8");
        goto out;
    }
    rc = expr__parse(p->src, n, &b, &root, err);
    if (rc != JD_OK) goto out;
    rc = expr__check(&b, root, d, p, err);
    if (rc != JD_OK) goto out;
    /* Hand the build's arrays to the program (invariant 3). */
    p->nodes = b.nodes;
    p->nnodes = b.nnodes;
    p->kids = b.kids;
    p->nkids = b.nkids;
    p->pool = b.pool.p;
    p->poollen = b.pool.n;
    p->nslots = b.nslots;
    p->root = root;
    memset(&b, 0, sizeof b);
    for (uint32_t i = 0; i < p->nnodes; i++) {
        expr_node *x = &p->nodes[i];
        if (x->op == N_LIT && (x->lit.kind == EXPR_STRING || x->lit.kind == EXPR_BYTES)) {
            x->lit.v.s.p = p->pool + x->soff;
            x->lit.v.s.n = x->slen;
        }
    }
    fold_literals(p);
    rc = compile_regexes(p, err);
    if (rc != JD_OK) goto out;
    *out = p;
    p = NULL;
out:
    free(b.nodes);
    free(b.kids);
    free(b.pool.p);
    expr_prog_destroy(p);
    return rc;
}
