/*
** src/expr/guard.c -- expr_prog_guards: equalities a program's truth needs.
**
** A checked program's root is walked through N_AND nodes only (CEL's && is
** commutative and error-absorbing, but a false conjunct makes the whole false
** whatever the others are), collecting conjuncts of the shape
**     select(select(var, f1), ..., fn) == "literal"     (or literal on the left)
** has() selects (NF_TEST) are not paths. Anything else (||, !, calls) is not a
** guard; a program without one simply has none.
*/
#include <string.h>

#include "expr_int.h"

/* A select chain ending at a variable: fills g's var and path. */
static bool path_of(const expr_prog *p, const expr_node *n, expr_guard *g)
{
    const char *rev[EXPR_GUARD_MAX_PATH];
    uint32_t k = 0;
    while (n->op == N_SELECT && !(n->flags & NF_TEST)) {
        if (k == EXPR_GUARD_MAX_PATH) return false;
        rev[k++] = p->pool + n->soff;
        n = expr__kid(p, n, 0);
    }
    if (n->op != N_VAR || n->a >= p->nvars || k == 0) return false;
    g->var = p->vars[n->a].name;
    g->npath = k;
    for (uint32_t i = 0; i < k; i++) g->path[i] = rev[k - 1 - i];
    return true;
}

static bool string_lit(const expr_node *n) { return n->op == N_LIT && n->lit.kind == EXPR_STRING; }

static void walk(const expr_prog *p, const expr_node *n, expr_guard *out, size_t max, size_t *got)
{
    if (*got == max) return;
    if (n->op == N_AND) {
        walk(p, expr__kid(p, n, 0), out, max, got);
        walk(p, expr__kid(p, n, 1), out, max, got);
        return;
    }
    if (n->op != N_CALL || n->n != 2 || (n->flags & NF_RECV) || strcmp(expr__fns[n->fn].name, "_==_") != 0) return;
    const expr_node *a = expr__kid(p, n, 0), *b = expr__kid(p, n, 1);
    if (string_lit(a)) { const expr_node *t = a; a = b; b = t; }
    if (!string_lit(b)) return;
    expr_guard g;
    memset(&g, 0, sizeof g);
    if (!path_of(p, a, &g)) return;
    g.value = b->lit.v.s.p;
    g.value_len = b->lit.v.s.n;
    out[(*got)++] = g;
}

size_t expr_prog_guards(const expr_prog *p, expr_guard *out, size_t max)
{
    size_t got = 0;
    if (p && p->nnodes && max) walk(p, &p->nodes[p->root], out, max, &got);
    return got;
}

/* ---- does time alone change the value? -------------------------------------- */

bool expr_prog_reads_now(const expr_prog *p)
{
    if (!p) return false;
    for (uint32_t i = 0; i < p->nvars; i++)
        if (strcmp(p->vars[i].name, "now") == 0) return true;
    for (uint32_t i = 0; i < p->nnodes; i++)   /* days_since() reads `now` from the activation itself */
        if (p->nodes[i].op == N_CALL && strcmp(expr__fns[p->nodes[i].fn].name, "days_since") == 0) return true;
    return false;
}
