/* src/expr/parse.c -- CEL's grammar, by recursive descent, to an AST.
 *
 *   Expr           = ConditionalOr ["?" ConditionalOr ":" Expr]
 *   ConditionalOr  = [ConditionalOr "||"] ConditionalAnd
 *   ConditionalAnd = [ConditionalAnd "&&"] Relation
 *   Relation       = [Relation Relop] Addition          Relop: < <= >= > == != in
 *   Addition       = [Addition ("+" | "-")] Multiplication
 *   Multiplication = [Multiplication ("*" | "/" | "%")] Unary
 *   Unary          = Member | "!" {"!"} Member | "-" {"-"} Member
 *   Member         = Primary | Member "." IDENT ["(" [ExprList] ")"] | Member "[" Expr "]"
 *   Primary        = ["."] IDENT ["(" [ExprList] ")"] | "(" Expr ")" | "[" [ExprList] "]"
 *                  | "{" [MapInits] "}" | LITERAL
 * (langdef.md). Message construction `M{f: e}` is not supported (no protobuf
 * types in journeyd). Trailing commas in lists, maps and calls are accepted,
 * as cel-go does.
 *
 * Invariants:
 *  (1) Every node carries the line:col of the token that names it: the
 *      operator for operators, '.' for a select, '[' for an index, the name
 *      for calls, the macro name for expanded macros.
 *  (2) Macros are expanded here, exactly as langdef.md's "Macros" defines them
 *      (see expand_macro), so the checker and evaluator only know
 *      comprehensions. The accumulator is named "@result": no user identifier
 *      can collide with it.
 *  (3) Recursion depth, tree height (EXPR_MAX_DEPTH) and node count
 *      (EXPR_MAX_NODES) are checked as nodes are made, so nothing downstream
 *      recurses deeper than the limit.
 *  (4) As in cel-go, an even run of '!' or '-' cancels out, and '-' directly
 *      before a number literal makes a negative literal (so
 *      -9223372036854775808 is an int).
 */
#include <stdarg.h>
#include <stdlib.h>

#include "expr_int.h"

#define NONE UINT32_MAX

typedef struct parser {
    expr__lexer lx;
    expr__tok cur, nxt;
    expr__build *b;
    const char *src;
    int depth;
    jd_err *err;
    bool failed;
    uint32_t accu_off;       /* "@result" in the pool */
} parser;

void expr__set_where(jd_err *err, uint32_t line, uint32_t col)
{
    if (err) snprintf(err->where, sizeof err->where, "%u:%u", line, col);
}

static void advance(parser *p)
{
    p->cur = p->nxt;
    if (p->cur.k != TK_EOF) expr__lex_next(&p->lx, &p->nxt);
}

static uint32_t fail_at(parser *p, uint32_t line, uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static uint32_t fail_at(parser *p, uint32_t line, uint32_t col, const char *fmt, ...)
{
    if (p->failed) return NONE;
    p->failed = true;
    if (p->err) {
        va_list ap;
        va_start(ap, fmt);
        jd_err_clear(p->err);
        p->err->code = JD_EINVAL;
        vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
        va_end(ap);
        expr__set_where(p->err, line, col);
    }
    return NONE;
}

/* The token as the user wrote it, for "mismatched input 'X'". */
static const char *tok_text(const parser *p, const expr__tok *t, char *buf, size_t cap)
{
    if (t->k == TK_EOF) return "<EOF>";
    size_t n = t->len < 24 ? t->len : 24;
    snprintf(buf, cap, "%.*s%s", (int)n, p->src + t->off, t->len > n ? "..." : "");
    return buf;
}

/* A syntax error at the current token: lexer errors say what is wrong with the
 * token, others what was expected instead of it. */
static uint32_t unexpected(parser *p, const char *expecting)
{
    char buf[40];
    const expr__tok *t = &p->cur;
    if (t->k == TK_ERROR) {
        if (strcmp(t->err, "token recognition error") == 0)
            return fail_at(p, t->line, t->col, "Syntax error: token recognition error at: '%s'",
                           tok_text(p, t, buf, sizeof buf));
        return fail_at(p, t->line, t->col, "Syntax error: %s", t->err);
    }
    return fail_at(p, t->line, t->col, "Syntax error: mismatched input '%s' expecting %s",
                   tok_text(p, t, buf, sizeof buf), expecting);
}

static bool expect(parser *p, expr__tk k, const char *what)
{
    if (p->cur.k == k) {
        advance(p);
        return true;
    }
    unexpected(p, what);
    return false;
}

/* Makes a node with the given children (invariant 3). */
static uint32_t mk(parser *p, expr__op op, uint32_t line, uint32_t col, const uint32_t *kids, size_t nk)
{
    expr__build *b = p->b;
    if (p->failed) return NONE;
    for (size_t i = 0; i < nk; i++)
        if (kids[i] == NONE) return NONE;
    if (b->nnodes >= EXPR_MAX_NODES)
        return fail_at(p, line, col, "expression has more than %d nodes (expr.max_nodes)", EXPR_MAX_NODES);
    uint32_t h = 0;
    for (size_t i = 0; i < nk; i++)
        if (b->nodes[kids[i]].type > h) h = b->nodes[kids[i]].type;
    if (h + 1 > EXPR_MAX_DEPTH)
        return fail_at(p, line, col, "expression nests deeper than %d levels (expr.max_depth)", EXPR_MAX_DEPTH);
    if (b->nnodes == b->capnodes) {
        b->capnodes = b->capnodes ? b->capnodes * 2 : 64;
        b->nodes = jd_xrealloc(b->nodes, b->capnodes * sizeof *b->nodes);
    }
    if (b->nkids + nk > b->capkids) {
        while (b->nkids + nk > b->capkids) b->capkids = b->capkids ? b->capkids * 2 : 64;
        b->kids = jd_xrealloc(b->kids, b->capkids * sizeof *b->kids);
    }
    uint32_t id = b->nnodes++;
    expr_node *n = &b->nodes[id];
    memset(n, 0, sizeof *n);
    n->op = (uint8_t)op;
    n->line = line;
    n->col = col;
    n->ovl = -1;
    n->re = -1;
    n->fn = UINT16_MAX;
    n->kid = b->nkids;
    n->n = (uint16_t)nk;
    n->type = h + 1;            /* the height, until the checker stores the type */
    for (size_t i = 0; i < nk; i++) b->kids[b->nkids++] = kids[i];
    return id;
}

static uint32_t mk_call(parser *p, const char *fn, uint32_t line, uint32_t col, const uint32_t *kids, size_t nk)
{
    uint32_t id = mk(p, N_CALL, line, col, kids, nk);
    if (id != NONE) p->b->nodes[id].fn = (uint16_t)expr__fn_id(fn);
    return id;
}

static uint32_t mk_ident(parser *p, uint32_t soff, uint32_t slen, uint32_t line, uint32_t col)
{
    uint32_t id = mk(p, N_IDENT, line, col, NULL, 0);
    if (id != NONE) {
        p->b->nodes[id].soff = soff;
        p->b->nodes[id].slen = slen;
    }
    return id;
}

static uint32_t mk_lit(parser *p, expr_kind k, int64_t i, uint32_t line, uint32_t col)
{
    uint32_t id = mk(p, N_LIT, line, col, NULL, 0);
    if (id != NONE) {
        p->b->nodes[id].lit.kind = k;
        p->b->nodes[id].lit.v.i = i;
    }
    return id;
}

static uint32_t parse_expr(parser *p);

/* ---- macros (invariant 2) ---------------------------------------------- */

enum { M_ALL, M_EXISTS, M_EXISTS_ONE, M_MAP, M_FILTER };
static const struct { const char *name; int kind; uint8_t nargs_min, nargs_max; } macros[] = {
    { "all", M_ALL, 2, 2 }, { "exists", M_EXISTS, 2, 2 }, { "exists_one", M_EXISTS_ONE, 2, 2 },
    { "map", M_MAP, 2, 3 }, { "filter", M_FILTER, 2, 2 },
};

static int macro_of(const char *name, size_t nargs)
{
    for (size_t i = 0; i < JD_ARRAY_LEN(macros); i++)
        if (strcmp(macros[i].name, name) == 0 && nargs >= macros[i].nargs_min && nargs <= macros[i].nargs_max)
            return macros[i].kind;
    return -1;
}

/* target.NAME(x, ...) -> comprehension (langdef.md "Macros"):
 *   all        init true,  cond @not_strictly_false(@result),  step @result && p
 *   exists     init false, cond @not_strictly_false(!@result), step @result || p
 *   exists_one init 0,     cond true, step p ? @result + 1 : @result, result @result == 1
 *   map        init [],    cond true, step @result + [t]  (or p ? @result + [t] : @result)
 *   filter     init [],    cond true, step p ? @result + [x] : @result
 * with result @result unless said otherwise. */
static uint32_t expand_macro(parser *p, int kind, uint32_t target, const uint32_t *args, size_t nargs,
                             uint32_t line, uint32_t col)
{
    expr_node *x = &p->b->nodes[args[0]];
    if (x->op != N_IDENT || x->flags)
        return fail_at(p, x->line, x->col, "Syntax error: argument must be a simple name");
    uint32_t xoff = x->soff, xlen = x->slen;
    uint32_t A = p->accu_off, AL = 7;
#define ACC() mk_ident(p, A, AL, line, col)
    uint32_t init, cond, step, result, k[3];
    switch (kind) {
    case M_ALL:
    case M_EXISTS:
        init = mk_lit(p, EXPR_BOOL, kind == M_EXISTS ? 0 : 1, line, col);
        k[0] = ACC();
        if (kind == M_EXISTS) k[0] = mk_call(p, "!_", line, col, k, 1);
        cond = mk(p, N_NSF, line, col, k, 1);
        k[0] = ACC();
        k[1] = args[1];
        step = mk(p, kind == M_ALL ? N_AND : N_OR, line, col, k, 2);
        result = ACC();
        break;
    case M_EXISTS_ONE:
        init = mk_lit(p, EXPR_INT, 0, line, col);
        cond = mk_lit(p, EXPR_BOOL, 1, line, col);
        k[0] = ACC();
        k[1] = mk_lit(p, EXPR_INT, 1, line, col);
        k[1] = mk_call(p, "_+_", line, col, k, 2);
        k[0] = args[1];
        k[2] = ACC();
        step = mk(p, N_COND, line, col, k, 3);
        k[0] = ACC();
        k[1] = mk_lit(p, EXPR_INT, 1, line, col);
        result = mk_call(p, "_==_", line, col, k, 2);
        break;
    default: /* M_MAP, M_FILTER */
        init = mk(p, N_LIST, line, col, NULL, 0);
        if (init != NONE) p->b->nodes[init].flags |= NF_ACCU;
        cond = mk_lit(p, EXPR_BOOL, 1, line, col);
        k[0] = ACC();
        k[1] = kind == M_FILTER ? mk_ident(p, xoff, xlen, line, col) : args[nargs - 1];
        step = mk(p, N_APPEND, line, col, k, 2);
        if (kind == M_FILTER || nargs == 3) {
            k[0] = args[1];
            k[1] = step;
            k[2] = ACC();
            step = mk(p, N_COND, line, col, k, 3);
        }
        result = ACC();
        break;
    }
#undef ACC
    uint32_t kids[5] = { target, init, cond, step, result };
    uint32_t id = mk(p, N_COMP, line, col, kids, 5);
    if (id != NONE) {
        p->b->nodes[id].soff = xoff;
        p->b->nodes[id].slen = xlen;
    }
    return id;
}

/* ---- calls, lists, maps -------------------------------------------------- */

/* '(' [Expr {',' Expr}] ')' after a function name; args[0] may hold a receiver. */
static size_t parse_args(parser *p, uint32_t **args, size_t have)
{
    size_t n = have, cap = have + 4;
    uint32_t *a = jd_xrealloc(*args, cap * sizeof *a);
    advance(p);   /* '(' */
    while (!p->failed && p->cur.k != TK_RPAREN) {
        if (n == cap) a = jd_xrealloc(a, (cap *= 2) * sizeof *a);
        a[n++] = parse_expr(p);
        if (p->failed) break;
        if (p->cur.k == TK_COMMA) advance(p);
        else if (p->cur.k != TK_RPAREN) unexpected(p, "{',', ')'}");
    }
    if (!p->failed) advance(p);
    *args = a;
    return n;
}

static uint32_t finish_call(parser *p, const expr__tok *name, uint32_t *args, size_t n, bool recv)
{
    const char *fname = p->b->pool.p + name->soff;
    uint32_t id;
    int m = recv ? macro_of(fname, n - 1) : -1;
    if (m >= 0) {
        id = expand_macro(p, m, args[0], args + 1, n - 1, name->line, name->col);
    } else if (!recv && n == 1 && strcmp(fname, "has") == 0) {
        expr_node *a = &p->b->nodes[args[0]];
        if (a->op != N_SELECT) {
            id = fail_at(p, a->line, a->col, "Syntax error: invalid argument to has() macro");
        } else {
            a->flags |= NF_TEST;
            id = args[0];
        }
    } else {
        id = mk(p, N_CALL, name->line, name->col, args, n);
        if (id != NONE) {
            expr_node *c = &p->b->nodes[id];
            int fn = expr__fn_find(fname, name->slen);
            c->fn = fn < 0 ? UINT16_MAX : (uint16_t)fn;
            c->soff = name->soff;
            c->slen = name->slen;
            if (recv) c->flags |= NF_RECV;
        }
    }
    free(args);
    return id;
}

static uint32_t parse_list(parser *p)
{
    expr__tok open = p->cur;
    advance(p);
    uint32_t *a = NULL;
    size_t n = 0, cap = 0;
    while (!p->failed && p->cur.k != TK_RBRACK) {
        if (n == cap) a = jd_xrealloc(a, (cap = cap ? cap * 2 : 8) * sizeof *a);
        a[n++] = parse_expr(p);
        if (p->failed) break;
        if (p->cur.k == TK_COMMA) advance(p);
        else if (p->cur.k != TK_RBRACK) unexpected(p, "{',', ']'}");
    }
    uint32_t id = NONE;
    if (!p->failed) {
        advance(p);
        id = mk(p, N_LIST, open.line, open.col, a, n);
    }
    free(a);
    return id;
}

static uint32_t parse_map(parser *p)
{
    expr__tok open = p->cur;
    advance(p);
    uint32_t *a = NULL;
    size_t n = 0, cap = 0;
    while (!p->failed && p->cur.k != TK_RBRACE) {
        if (n + 2 > cap) a = jd_xrealloc(a, (cap = cap ? cap * 2 : 8) * sizeof *a);
        a[n++] = parse_expr(p);
        if (p->failed || !expect(p, TK_COLON, "':'")) break;
        a[n++] = parse_expr(p);
        if (p->failed) break;
        if (p->cur.k == TK_COMMA) advance(p);
        else if (p->cur.k != TK_RBRACE) unexpected(p, "{',', '}'}");
    }
    uint32_t id = NONE;
    if (!p->failed) {
        advance(p);
        id = mk(p, N_MAP, open.line, open.col, a, n);
    }
    free(a);
    return id;
}

/* ---- primary, member, unary ---------------------------------------------- */

static uint32_t number_literal(parser *p, bool negate, uint32_t line, uint32_t col)
{
    expr__tok t = p->cur;
    uint32_t id;
    if (t.k == TK_DOUBLE) {
        id = mk(p, N_LIT, line, col, NULL, 0);
        if (id != NONE) {
            p->b->nodes[id].lit.kind = EXPR_DOUBLE;
            p->b->nodes[id].lit.v.d = negate ? -t.d : t.d;
        }
    } else if (t.k == TK_UINT) {
        id = mk(p, N_LIT, line, col, NULL, 0);
        if (id != NONE) {
            p->b->nodes[id].lit.kind = EXPR_UINT;
            p->b->nodes[id].lit.v.u = t.u;
        }
    } else {
        if (t.u > (uint64_t)INT64_MAX + (negate ? 1 : 0))
            return fail_at(p, t.line, t.col, "Syntax error: invalid int literal");
        int64_t v = negate ? (int64_t)(0 - t.u) : (int64_t)t.u;
        id = mk_lit(p, EXPR_INT, v, line, col);
    }
    if (id != NONE) p->b->nodes[id].flags |= NF_NUMTOK;
    advance(p);
    return id;
}

/* langdef.md reserves these for embedding CEL in other languages. */
static bool is_reserved(const char *name)
{
    static const char *const words[] = { "as", "break", "const", "continue", "else", "for", "function", "if",
                                         "import", "let", "loop", "package", "namespace", "return", "var",
                                         "void", "while" };
    for (size_t i = 0; i < JD_ARRAY_LEN(words); i++)
        if (strcmp(words[i], name) == 0) return true;
    return false;
}

static uint32_t parse_primary(parser *p)
{
    expr__tok t = p->cur;
    uint32_t id;
    switch (t.k) {
    case TK_INT: case TK_UINT: case TK_DOUBLE:
        return number_literal(p, false, t.line, t.col);
    case TK_MINUS:   /* only reached as '-' NUMBER (invariant 4) */
        advance(p);
        return number_literal(p, true, t.line, t.col);
    case TK_STRING: case TK_BYTES:
        id = mk(p, N_LIT, t.line, t.col, NULL, 0);
        if (id != NONE) {
            p->b->nodes[id].lit.kind = t.k == TK_STRING ? EXPR_STRING : EXPR_BYTES;
            p->b->nodes[id].soff = t.soff;
            p->b->nodes[id].slen = t.slen;
        }
        advance(p);
        return id;
    case TK_TRUE: case TK_FALSE:
        advance(p);
        return mk_lit(p, EXPR_BOOL, t.k == TK_TRUE, t.line, t.col);
    case TK_NULL:
        advance(p);
        return mk_lit(p, EXPR_NULL, 0, t.line, t.col);
    case TK_LPAREN: {
        advance(p);
        id = parse_expr(p);
        if (id != NONE && !expect(p, TK_RPAREN, "')'")) return NONE;
        return id;
    }
    case TK_LBRACK:
        return parse_list(p);
    case TK_LBRACE:
        return parse_map(p);
    case TK_DOT:
    case TK_IDENT: {
        if (t.k == TK_DOT) {   /* a root-scoped name: the same as the plain name here */
            advance(p);
            if (p->cur.k != TK_IDENT) return unexpected(p, "IDENTIFIER");
        }
        expr__tok name = p->cur;
        if (is_reserved(p->b->pool.p + name.soff))
            return fail_at(p, name.line, name.col, "Syntax error: reserved identifier: %s", p->b->pool.p + name.soff);
        advance(p);
        if (p->cur.k == TK_LPAREN) {
            uint32_t *args = NULL;
            size_t n = parse_args(p, &args, 0);
            if (p->failed) {
                free(args);
                return NONE;
            }
            return finish_call(p, &name, args, n, false);
        }
        id = mk_ident(p, name.soff, name.slen, name.line, name.col);
        if (id != NONE && t.k == TK_DOT) p->b->nodes[id].flags |= NF_RECV;   /* marks ".name" */
        return id;
    }
    default:
        return unexpected(p, "an expression");
    }
}

static uint32_t parse_member(parser *p)
{
    uint32_t id = parse_primary(p);
    while (id != NONE && !p->failed) {
        expr__tok op = p->cur;
        if (op.k == TK_DOT) {
            advance(p);
            if (p->cur.k != TK_IDENT) return unexpected(p, "IDENTIFIER");
            expr__tok name = p->cur;
            advance(p);
            if (p->cur.k == TK_LPAREN) {
                uint32_t *args = jd_xmalloc(sizeof *args);
                args[0] = id;
                size_t n = parse_args(p, &args, 1);
                if (p->failed) {
                    free(args);
                    return NONE;
                }
                id = finish_call(p, &name, args, n, true);
            } else {
                uint32_t k[1] = { id };
                id = mk(p, N_SELECT, op.line, op.col, k, 1);
                if (id != NONE) {
                    p->b->nodes[id].soff = name.soff;
                    p->b->nodes[id].slen = name.slen;
                }
            }
        } else if (op.k == TK_LBRACK) {
            advance(p);
            uint32_t k[2] = { id, parse_expr(p) };
            if (p->failed || !expect(p, TK_RBRACK, "']'")) return NONE;
            id = mk_call(p, "_[_]", op.line, op.col, k, 2);
        } else if (op.k == TK_LBRACE) {
            return fail_at(p, op.line, op.col, "Syntax error: message construction is not supported");
        } else {
            break;
        }
    }
    return id;
}

static uint32_t parse_unary(parser *p)
{
    expr__tok op = p->cur;
    if (op.k == TK_MINUS && (p->nxt.k == TK_INT || p->nxt.k == TK_DOUBLE)) return parse_member(p);
    if (op.k != TK_NOT && op.k != TK_MINUS) return parse_member(p);
    size_t count = 0;
    while (p->cur.k == op.k) {
        count++;
        advance(p);
    }
    uint32_t id = parse_member(p);
    if (count % 2 == 0) return id;   /* invariant 4 */
    uint32_t k[1] = { id };
    return mk_call(p, op.k == TK_NOT ? "!_" : "-_", op.line, op.col, k, 1);
}

/* ---- binary levels --------------------------------------------------------- */

static const struct { expr__tk k; int level; const char *fn; } binops[] = {
    { TK_STAR, 1, "_*_" }, { TK_SLASH, 1, "_/_" }, { TK_PERCENT, 1, "_%_" },
    { TK_PLUS, 2, "_+_" }, { TK_MINUS, 2, "_-_" },
    { TK_EQ, 3, "_==_" }, { TK_NE, 3, "_!=_" }, { TK_LT, 3, "_<_" }, { TK_LE, 3, "_<=_" },
    { TK_GT, 3, "_>_" }, { TK_GE, 3, "_>=_" }, { TK_IN, 3, "@in" },
    { TK_AND, 4, NULL }, { TK_OR, 5, NULL },
};

static uint32_t parse_level(parser *p, int level)
{
    if (level == 0) return parse_unary(p);
    uint32_t left = parse_level(p, level - 1);
    for (;;) {
        if (left == NONE || p->failed) return NONE;
        const char *fn = NULL;
        bool found = false;
        for (size_t i = 0; i < JD_ARRAY_LEN(binops); i++) {
            if (binops[i].k == p->cur.k && binops[i].level == level) {
                fn = binops[i].fn;
                found = true;
            }
        }
        if (!found) return left;
        expr__tok op = p->cur;
        advance(p);
        uint32_t k[2] = { left, parse_level(p, level - 1) };
        if (level == 4 || level == 5) left = mk(p, level == 4 ? N_AND : N_OR, op.line, op.col, k, 2);
        else left = mk_call(p, fn, op.line, op.col, k, 2);
    }
}

static uint32_t parse_expr(parser *p)
{
    if (++p->depth > EXPR_MAX_DEPTH) {
        p->depth--;
        return fail_at(p, p->cur.line, p->cur.col, "expression nests deeper than %d levels (expr.max_depth)",
                       EXPR_MAX_DEPTH);
    }
    uint32_t id = parse_level(p, 5);
    if (id != NONE && p->cur.k == TK_QUESTION) {
        expr__tok q = p->cur;
        advance(p);
        uint32_t k[3] = { id, parse_level(p, 5), NONE };
        if (!p->failed && expect(p, TK_COLON, "':'")) {
            k[2] = parse_expr(p);
            id = mk(p, N_COND, q.line, q.col, k, 3);
        } else {
            id = NONE;
        }
    }
    p->depth--;
    return p->failed ? NONE : id;
}

int expr__parse(const char *src, size_t n, expr__build *b, uint32_t *root, jd_err *err)
{
    parser p;
    memset(&p, 0, sizeof p);
    p.b = b;
    p.src = src;
    p.err = err;
    p.accu_off = b->accu_off = expr__pool_add(&b->pool, "@result", 7);
    expr__lex_init(&p.lx, src, n, &b->pool);
    expr__lex_next(&p.lx, &p.nxt);
    advance(&p);
    uint32_t id = parse_expr(&p);
    if (id != NONE && p.cur.k != TK_EOF) id = unexpected(&p, "<EOF>");
    if (id == NONE || p.failed) return JD_EINVAL;
    *root = id;
    return JD_OK;
}
