/* src/template/render.c -- walking the compiled tree against one vars object.
 *
 * Invariants:
 *  (1) A render writes only to `out` (through tpl__add) and to its scratch
 *      arena; on failure `out` is truncated back to its length at the call.
 *  (2) break/continue travel up as R_BREAK/R_CONTINUE (positive) to the
 *      nearest for; errors are negative JD_* codes with err filled once, at
 *      the construct that failed.
 *  (3) Every for-loop turn counts against max_iterations, nested or not, so
 *      a render's work is bounded by source size x max_iterations.
 *  (4) `assign` writes the global slot even inside a loop (Liquid's
 *      assign goes to the outermost scope); loop variables are read through
 *      frames[depth], which only the loop at that depth sets.
 */
#include <stdio.h>
#include <stdlib.h>

#include "tpl_int.h"

enum { R_BREAK = 1, R_CONTINUE = 2 };

static const char *kind_name(const tv *v)
{
    switch (v->k) {
    case TV_UNSET: case TV_NIL: return "nil";
    case TV_BOOL: return "boolean";
    case TV_INT: return "integer";
    case TV_FLOAT: return "float";
    case TV_STR: return "string";
    case TV_JSON: return json_object_is_type(v->u.j, json_type_array) ? "array" : "hash";
    case TV_LIST: return "array";
    case TV_RANGE: return "range";
    default: return "value";
    }
}

static int64_t to_i(const tv *v)
{
    switch (v->k) {
    case TV_INT: return v->u.i;
    case TV_FLOAT: return v->u.d >= 9.2e18 ? INT64_MAX : v->u.d <= -9.2e18 ? INT64_MIN : (int64_t)v->u.d;
    case TV_STR: {
        char buf[32];
        size_t n = v->u.s.n < sizeof buf - 1 ? v->u.s.n : sizeof buf - 1;
        memcpy(buf, v->u.s.p, n);
        buf[n] = 0;
        return strtoll(buf, NULL, 10);
    }
    default: return 0;
    }
}

static int compare(rctx *r, const xexpr *e, const tv *a, const tv *b, bool *out)
{
    switch (e->op) {
    case OP_EQ: *out = tpl__equal(a, b); return JD_OK;
    case OP_NE: *out = !tpl__equal(a, b); return JD_OK;
    case OP_CONTAINS:
        *out = false;
        if (a->k == TV_STR) {
            const char *p;
            size_t n;
            int rc = tpl__to_s(r, b, &p, &n, e->line, e->col);
            if (rc != JD_OK) return rc;
            *out = n == 0 || (n <= a->u.s.n && memmem(a->u.s.p, a->u.s.n, p, n) != NULL);
            if (b->k == TV_NIL || b->k == TV_UNSET) *out = false;
        } else if (tpl__is_list(a)) {
            size_t n = tpl__list_len(a);
            for (size_t i = 0; i < n && !*out; i++) {
                tv x = tpl__list_at(a, i);
                *out = tpl__equal(&x, b);
            }
        } else if (a->k == TV_JSON && b->k == TV_STR) {
            tv x = tpl__lookup(r, a, b);   /* a key whose value is null counts as absent */
            *out = x.k != TV_NIL;
        }
        return JD_OK;
    default: break;
    }
    bool an = a->k == TV_INT || a->k == TV_FLOAT, bn = b->k == TV_INT || b->k == TV_FLOAT;
    int c;
    if (an && bn) {
        if (a->k == TV_INT && b->k == TV_INT) c = (a->u.i > b->u.i) - (a->u.i < b->u.i);
        else {
            double x = a->k == TV_INT ? (double)a->u.i : a->u.d, y = b->k == TV_INT ? (double)b->u.i : b->u.d;
            c = (x > y) - (x < y);
        }
    } else if (a->k == TV_STR && b->k == TV_STR) {
        size_t n = JD_MIN_OF(a->u.s.n, b->u.s.n);
        c = memcmp(a->u.s.p, b->u.s.p, n);
        if (c == 0) c = (a->u.s.n > b->u.s.n) - (a->u.s.n < b->u.s.n);
    } else if ((an || a->k == TV_STR) && (bn || b->k == TV_STR)) {
        /* Ruby raises here ("comparison of String with 1 failed"); so do we */
        return tpl__fail(r, e->line, e->col, JD_EINVAL, "comparison of %s with %s failed", kind_name(a), kind_name(b));
    } else {
        *out = false;   /* nil, booleans, arrays, hashes have no order: false, as in Liquid */
        return JD_OK;
    }
    switch (e->op) {
    case OP_LT: *out = c < 0; break;
    case OP_GT: *out = c > 0; break;
    case OP_LE: *out = c <= 0; break;
    default: *out = c >= 0; break;
    }
    return JD_OK;
}

static tv vars_get(rctx *r, const char *name, size_t n)
{
    if (!r->vars) return tv_nil();
    tv root = tv_nil();
    root.k = TV_JSON;
    root.u.j = r->vars;
    tv key = tv_str(name, n);
    return tpl__lookup(r, &root, &key);
}

int tpl__eval(rctx *r, const xexpr *e, tv *out)
{
    int rc;
    switch (e->kind) {
    case X_LIT: *out = e->lit; return JD_OK;
    case X_RANGE: {
        tv a, b;
        if ((rc = tpl__eval(r, e->a, &a)) != JD_OK || (rc = tpl__eval(r, e->b, &b)) != JD_OK) return rc;
        *out = tv_nil();
        out->k = TV_RANGE;
        out->u.r.lo = to_i(&a);
        out->u.r.hi = to_i(&b);
        return JD_OK;
    }
    case X_CMP: {
        tv a, b;
        bool res = false;
        if ((rc = tpl__eval(r, e->a, &a)) != JD_OK || (rc = tpl__eval(r, e->b, &b)) != JD_OK) return rc;
        if ((rc = compare(r, e, &a, &b, &res)) != JD_OK) return rc;
        *out = tv_bool(res);
        return JD_OK;
    }
    case X_AND:
    case X_OR: {
        tv a;
        if ((rc = tpl__eval(r, e->a, &a)) != JD_OK) return rc;
        bool t = tpl__truthy(&a);
        if ((e->kind == X_AND && !t) || (e->kind == X_OR && t)) { *out = tv_bool(t); return JD_OK; }
        if ((rc = tpl__eval(r, e->b, &a)) != JD_OK) return rc;
        *out = tv_bool(tpl__truthy(&a));
        return JD_OK;
    }
    default: break;
    }
    tv v;
    switch (e->root) {
    case ROOT_LOOPVAR: v = r->frames[e->ref]->item; break;
    case ROOT_FORLOOP: v = tv_nil(); v.k = TV_LOOP; v.u.loop = r->frames[e->ref]; break;
    case ROOT_SLOT:
        v = r->slots[e->ref];
        if (v.k != TV_UNSET) break;
        /* not assigned yet: read the vars */
        v = vars_get(r, e->name, e->namelen);
        break;
    default: v = vars_get(r, e->name, e->namelen); break;
    }
    for (uint32_t i = 0; i < e->nsteps && v.k != TV_NIL; i++) {
        const xstep *st = &e->steps[i];
        tv key;
        if (st->name) key = tv_str(st->name, st->n);
        else if ((rc = tpl__eval(r, st->idx, &key)) != JD_OK) return rc;
        v = tpl__lookup(r, &v, &key);
    }
    if (v.k == TV_UNSET) v = tv_nil();
    *out = v;
    return JD_OK;
}

int tpl__apply(rctx *r, const xout *o, tv *out)
{
    tv v;
    int rc = tpl__eval(r, o->e, &v);
    if (rc != JD_OK) return rc;
    for (uint32_t i = 0; i < o->nf; i++) {
        const xfilter *f = &o->f[i];
        tv args[8], kw, res = tv_nil();
        for (uint32_t k = 0; k < f->nargs; k++)
            if ((rc = tpl__eval(r, f->args[k], &args[k])) != JD_OK) return rc;
        if (f->nkw && (rc = tpl__eval(r, f->kwargs[0], &kw)) != JD_OK) return rc;
        if ((rc = f->def->fn(r, f, &v, args, f->nkw ? &kw : NULL, &res)) != JD_OK) return rc;
        v = res;
    }
    *out = v;
    return JD_OK;
}

static int render_list(rctx *r, const tnode *n);

/* A hash iterates as [key, value] pairs (Ruby's Hash#each). */
static int object_pairs(rctx *r, const tnode *nd, struct json_object *j, tv *out)
{
    size_t n = (size_t)json_object_object_length(j), i = 0;
    tv *items = tpl__scratch(r, n * 3 * sizeof *items, nd->line, nd->col);
    if (!items) return JD_ELIMIT;
    json_object_object_foreach(j, k, val) {
        tv *pair = items + n + 2 * i;
        pair[0] = tv_str(k, strlen(k));
        pair[1] = tpl__from_json(val);
        items[i] = tv_nil();
        items[i].k = TV_LIST;
        items[i].u.l.items = pair;
        items[i].u.l.n = 2;
        i++;
    }
    *out = tv_nil();
    out->k = TV_LIST;
    out->u.l.items = items;
    out->u.l.n = n;
    return JD_OK;
}

static int render_for(rctx *r, const tnode *nd)
{
    tv coll, x;
    int rc = tpl__eval(r, nd->u.loop.coll, &coll);
    if (rc != JD_OK) return rc;
    if (coll.k == TV_JSON && json_object_is_type(coll.u.j, json_type_object)) {
        if ((rc = object_pairs(r, nd, coll.u.j, &coll)) != JD_OK) return rc;
    }
    size_t len = 0;
    bool single = false;
    if (tpl__is_list(&coll)) len = tpl__list_len(&coll);
    else if (coll.k == TV_STR && coll.u.s.n) { len = 1; single = true; }
    int64_t from = 0, to = (int64_t)len;
    if (nd->u.loop.offset) {
        if ((rc = tpl__eval(r, nd->u.loop.offset, &x)) != JD_OK) return rc;
        from = x.k == TV_NIL ? 0 : to_i(&x);
        if (from < 0) from = 0;
    }
    if (nd->u.loop.limit) {
        if ((rc = tpl__eval(r, nd->u.loop.limit, &x)) != JD_OK) return rc;
        if (x.k != TV_NIL) {
            int64_t lim = to_i(&x);
            if (lim < 0) lim = 0;
            if (from + lim < to) to = from + lim;
        }
    }
    if (from >= to) return render_list(r, nd->u.loop.els);
    int32_t d = nd->u.loop.depth;
    rloop fr = { .length = to - from, .parent = d > 0 ? r->frames[d - 1] : NULL };
    const rloop *saved = r->frames[d];
    r->frames[d] = &fr;
    rc = JD_OK;
    for (int64_t i = 0; i < fr.length; i++) {
        if (++r->iters > r->max_iters) {
            rc = tpl__fail(r, nd->line, nd->col, JD_ELIMIT, "loops ran more than %llu iterations (template.max_iterations)",
                           (unsigned long long)r->max_iters);
            break;
        }
        int64_t at = nd->u.loop.reversed ? to - 1 - i : from + i;
        fr.index0 = i;
        fr.item = single ? coll : tpl__list_at(&coll, (size_t)at);
        rc = render_list(r, nd->u.loop.body);
        if (rc == R_CONTINUE) rc = JD_OK;
        if (rc == R_BREAK) { rc = JD_OK; break; }
        if (rc != JD_OK) break;
    }
    r->frames[d] = saved;
    return rc;
}

static int render_node(rctx *r, const tnode *nd)
{
    int rc;
    tv v;
    switch (nd->kind) {
    case N_TEXT: return tpl__add(r, nd->u.text.p, nd->u.text.n, nd->line, nd->col);
    case N_OUT:
        if ((rc = tpl__apply(r, &nd->u.out, &v)) != JD_OK) return rc;
        return tpl__emit(r, &v, r->o->html, nd->line, nd->col);
    case N_IF:
        for (uint32_t i = 0; i < nd->u.cond.n; i++) {
            const tbranch *b = &nd->u.cond.br[i];
            if (b->cond) {
                if ((rc = tpl__eval(r, b->cond, &v)) != JD_OK) return rc;
                if (tpl__truthy(&v) == b->negate) continue;
            }
            return render_list(r, b->body);
        }
        return JD_OK;
    case N_CASE: {
        tv subj;
        bool matched = false;
        if ((rc = tpl__eval(r, nd->u.cas.subj, &subj)) != JD_OK) return rc;
        for (uint32_t i = 0; i < nd->u.cas.n; i++) {
            const twhen *w = &nd->u.cas.w[i];
            for (uint32_t k = 0; k < w->nv; k++) {
                if ((rc = tpl__eval(r, w->vals[k], &v)) != JD_OK) return rc;
                if (!tpl__equal(&subj, &v)) continue;
                matched = true;
                if ((rc = render_list(r, w->body)) != JD_OK) return rc;
            }
        }
        if (!matched && nd->u.cas.has_else) return render_list(r, nd->u.cas.els);
        return JD_OK;
    }
    case N_FOR: return render_for(r, nd);
    case N_ASSIGN:
        if ((rc = tpl__apply(r, &nd->u.assign.val, &v)) != JD_OK) return rc;
        if (v.k == TV_LOOP) {   /* the frame lives on the stack: keep a copy */
            rloop *copy = tpl__scratch(r, sizeof *copy, nd->line, nd->col);
            if (!copy) return JD_ELIMIT;
            *copy = *v.u.loop;
            copy->parent = NULL;
            v.u.loop = copy;
        }
        r->slots[nd->u.assign.slot] = v;
        return JD_OK;
    case N_CAPTURE: {
        size_t start = r->out->len;
        rc = render_list(r, nd->u.capture.body);
        if (rc < 0) return rc;
        size_t n = r->out->len - start;
        char *s = tpl__scratch(r, n + 1, nd->line, nd->col);
        if (!s) return JD_ELIMIT;
        memcpy(s, r->out->data ? r->out->data + start : "", n);
        s[n] = 0;
        r->out->len = start;
        if (r->out->data) r->out->data[start] = 0;
        v = tv_str(s, n);
        v.safe = r->o->html;   /* already escaped where it had to be */
        r->slots[nd->u.capture.slot] = v;
        return rc;
    }
    case N_BREAK: return R_BREAK;
    case N_CONTINUE: return R_CONTINUE;
    }
    return JD_OK;
}

static int render_list(rctx *r, const tnode *n)
{
    for (; n; n = n->next) {
        int rc = render_node(r, n);
        if (rc != JD_OK) return rc;
    }
    return JD_OK;
}

tpl_scratch *tpl_scratch_create(size_t max_bytes)
{
    tpl_scratch *s = jd_xcalloc(1, sizeof *s);
    s->a.max = max_bytes ? max_bytes : JD_TPL_MAX_SCRATCH;
    return s;
}

void tpl_scratch_destroy(tpl_scratch *s)
{
    if (!s) return;
    tpl__arena_release(&s->a);
    free(s);
}

int tpl_render(const tpl *t, struct json_object *vars, const tpl_render_opts *o, jd_buf *out, jd_err *err)
{
    static const tpl_render_opts defaults;
    if (!o) o = &defaults;
    tpl_scratch *own = NULL, *s = o->scratch;
    if (!s) s = own = tpl_scratch_create(0);
    tpl__arena_reset(&s->a);
    rctx r = {
        .t = t, .o = o, .out = out, .out_start = out->len, .err = err, .scratch = &s->a,
        .vars = vars && json_object_is_type(vars, json_type_object) ? vars : NULL,
        .max_output = o->max_output ? o->max_output : JD_TPL_MAX_OUTPUT,
        .max_iters = o->max_iterations ? o->max_iterations : JD_TPL_MAX_ITERATIONS,
        .currency = o->currency && *o->currency ? o->currency : "USD",
    };
    int rc = JD_ELIMIT;
    r.slots = tpl__scratch(&r, (t->nslots + 1) * sizeof *r.slots, 1, 1);
    r.frames = tpl__scratch(&r, (t->max_loop_depth + 1) * sizeof *r.frames, 1, 1);
    if (!r.slots || !r.frames) goto out;
    memset(r.slots, 0, (t->nslots + 1) * sizeof *r.slots);   /* TV_UNSET */
    memset(r.frames, 0, (t->max_loop_depth + 1) * sizeof *r.frames);
    rc = render_list(&r, t->root);
    JD_ASSERT(rc <= 0);   /* break/continue outside a loop do not compile */
out:
    if (rc != JD_OK) {
        out->len = r.out_start;
        if (out->data) out->data[out->len] = 0;
    }
    tpl_scratch_destroy(own);
    return rc;
}
