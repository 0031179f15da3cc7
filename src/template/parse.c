/* src/template/parse.c -- Liquid source to the compiled tree (tpl_int.h).
 *
 * Two lexers: the document lexer (next_dtok) cuts the source into text,
 * {{ output }} and {% tag %} tokens and applies whitespace control (a '-'
 * inside a delimiter strips all whitespace, newlines included, on that side);
 * the markup lexer (klex) cuts a tag's or output's inside into words. The
 * parser is recursive descent: one function per tag, found in tags[].
 *
 * Invariants:
 *  (1) Every node and expression records the line:col of its first character;
 *      columns count characters (UTF-8 code points), both 1-based.
 *  (2) The first error stops the parse; err->where is "NAME:LINE:COL" and the
 *      message names what was expected. Nothing allocated survives a failure.
 *  (3) Conditions fold from the right, as Shopify's If tag builds them:
 *      `a and b or c` is `a and (b or c)`.
 *  (4) Unknown tags and filters, and wrong filter arities, are compile errors
 *      (Liquid's strict parse): a template that compiles does not fail for them
 *      at send time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "tpl_int.h"

/* ---- arena ------------------------------------------------------------------ */

#define CHUNK_HDR ((sizeof(tpl_chunk) + 15) & ~(size_t)15)

void *tpl__alloc(tpl_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    tpl_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = c ? c->cap * 2 : 4096;
        if (cap < n) cap = n;
        if (a->max && a->total + cap > a->max) {
            cap = n;
            if (a->total + cap > a->max) return NULL;
        }
        c = jd_xmalloc(CHUNK_HDR + cap);
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        a->total += cap;
    }
    void *p = (char *)c + CHUNK_HDR + c->used;
    c->used += n;
    return p;
}

void tpl__arena_reset(tpl_arena *a)
{
    if (!a->head) return;
    if (a->head->next) {
        size_t total = a->total;
        tpl__arena_release(a);
        tpl_chunk *c = jd_xmalloc(CHUNK_HDR + total);
        c->cap = total;
        c->used = 0;
        c->next = NULL;
        a->head = c;
        a->total = total;
    }
    a->head->used = 0;
}

void tpl__arena_release(tpl_arena *a)
{
    tpl_chunk *c = a->head;
    while (c) {
        tpl_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

/* ---- parser state ------------------------------------------------------------ */

typedef enum { T_EOF, T_TEXT, T_OUT, T_TAG } ttype;
typedef struct dtok {
    ttype type;
    size_t at;           /* the token's first byte ('{' of a delimiter) */
    size_t start, end;   /* text, or the inside of the delimiters */
} dtok;

typedef struct parser {
    tpl *t;
    const char *src;
    size_t n, pos;
    jd_err *err;
    bool failed, trim_next;
    size_t lc_off;
    uint32_t lc_line, lc_col;
    uint32_t depth, max_depth;
    const char **loopvar;
    uint32_t *loopvarlen;
    uint32_t nloops;
    const char **slotname;
    uint32_t *slotlen;
    uint32_t nslots, capslots;
    xexpr **refs;
    size_t nrefs, caprefs;
} parser;

static void lc(parser *P, size_t off, uint32_t *line, uint32_t *col)
{
    if (off < P->lc_off) { P->lc_off = 0; P->lc_line = 1; P->lc_col = 1; }
    for (size_t i = P->lc_off; i < off && i < P->n; i++) {
        unsigned char c = (unsigned char)P->src[i];
        if (c == '\n') { P->lc_line++; P->lc_col = 1; }
        else if ((c & 0xC0) != 0x80) P->lc_col++;
    }
    P->lc_off = off;
    *line = P->lc_line;
    *col = P->lc_col;
}

static void perr(parser *P, size_t off, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void perr(parser *P, size_t off, int code, const char *fmt, ...)
{
    if (P->failed) return;
    P->failed = true;
    uint32_t line, col;
    lc(P, off, &line, &col);
    if (!P->err) return;
    P->err->code = code;
    snprintf(P->err->where, sizeof P->err->where, "%s:%u:%u", P->t->name, line, col);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(P->err->msg, sizeof P->err->msg, fmt, ap);
    va_end(ap);
}

static void *palloc(parser *P, size_t n)
{
    void *p = tpl__alloc(&P->t->mem, n);   /* the compile arena has no max */
    memset(p, 0, n);
    return p;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_word(char c) { return is_alpha(c) || is_digit(c) || c == '-'; }

/* ---- the document lexer -------------------------------------------------------- */

static size_t find_open(const parser *P, size_t from)
{
    for (size_t i = from; i + 1 < P->n; i++)
        if (P->src[i] == '{' && (P->src[i + 1] == '{' || P->src[i + 1] == '%')) return i;
    return P->n;
}

static size_t find_close(const parser *P, size_t from, char c1)
{
    for (size_t i = from; i + 1 < P->n; i++)
        if (P->src[i] == c1 && P->src[i + 1] == '}') return i;
    return P->n;
}

/* Next token; text tokens that whitespace control empties are skipped. */
static bool next_dtok(parser *P, dtok *tk)
{
    for (;;) {
        if (P->pos >= P->n) {
            tk->type = T_EOF;
            tk->at = tk->start = tk->end = P->n;
            return true;
        }
        size_t at = P->pos;
        const char *s = P->src;
        if (at + 1 < P->n && s[at] == '{' && (s[at + 1] == '{' || s[at + 1] == '%')) {
            bool out = s[at + 1] == '{';
            size_t i = at + 2;
            if (i < P->n && s[i] == '-') i++;
            size_t c = find_close(P, i, out ? '}' : '%');
            if (c >= P->n) {
                perr(P, at, JD_EINVAL, out ? "'{{' is not closed (expected '}}')" : "'{%%' is not closed (expected '%%}')");
                return false;
            }
            size_t end = c;
            P->trim_next = false;
            if (end > i && s[end - 1] == '-') { end--; P->trim_next = true; }
            tk->type = out ? T_OUT : T_TAG;
            tk->at = at;
            tk->start = i;
            tk->end = end;
            P->pos = c + 2;
            return true;
        }
        size_t e = find_open(P, at);
        size_t b = at, te = e;
        if (P->trim_next)
            while (b < te && is_ws(s[b])) b++;
        if (e + 2 < P->n && s[e + 2] == '-')
            while (te > b && is_ws(s[te - 1])) te--;
        P->trim_next = false;
        P->pos = e;
        if (te > b) {
            tk->type = T_TEXT;
            tk->at = at;
            tk->start = b;
            tk->end = te;
            return true;
        }
    }
}

/* ---- the markup lexer ----------------------------------------------------------- */

typedef enum {
    K_END, K_IDENT, K_STR, K_INT, K_FLOAT, K_DOT, K_DOTDOT, K_LBRACK, K_RBRACK,
    K_LPAREN, K_RPAREN, K_PIPE, K_COLON, K_COMMA, K_CMP, K_ASSIGN,
} ktype;

typedef struct ktok { ktype t; size_t s, e; int op; } ktok;
typedef struct klex { parser *P; size_t pos, end; ktok cur; const char *what; } klex;

static bool klex_next(klex *L)
{
    parser *P = L->P;
    const char *s = P->src;
    while (L->pos < L->end && is_ws(s[L->pos])) L->pos++;
    ktok *k = &L->cur;
    k->s = L->pos;
    k->op = 0;
    if (L->pos >= L->end) { k->t = K_END; k->e = L->pos; return true; }
    char c = s[L->pos];
    size_t i = L->pos;
    if (is_alpha(c)) {
        while (i < L->end && is_word(s[i])) i++;
        if (i < L->end && s[i] == '?') i++;
        k->t = K_IDENT;
    } else if (is_digit(c) || (c == '-' && i + 1 < L->end && is_digit(s[i + 1]))) {
        i++;
        while (i < L->end && is_digit(s[i])) i++;
        k->t = K_INT;
        if (i + 1 < L->end && s[i] == '.' && is_digit(s[i + 1])) {
            i++;
            while (i < L->end && is_digit(s[i])) i++;
            k->t = K_FLOAT;
        }
    } else if (c == '"' || c == '\'') {
        i++;
        while (i < L->end && s[i] != c) i++;
        if (i >= L->end) {
            perr(P, L->pos, JD_EINVAL, "string is not closed (expected %c)", c);
            return false;
        }
        i++;
        k->t = K_STR;
    } else if (c == '.') {
        i++;
        k->t = K_DOT;
        if (i < L->end && s[i] == '.') { i++; k->t = K_DOTDOT; }
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
        char d = i + 1 < L->end ? s[i + 1] : 0;
        k->t = K_CMP;
        if (c == '=' && d == '=') { k->op = OP_EQ; i += 2; }
        else if (c == '=') { k->t = K_ASSIGN; i++; }
        else if (c == '!' && d == '=') { k->op = OP_NE; i += 2; }
        else if (c == '<' && d == '>') { k->op = OP_NE; i += 2; }
        else if (c == '<' && d == '=') { k->op = OP_LE; i += 2; }
        else if (c == '>' && d == '=') { k->op = OP_GE; i += 2; }
        else if (c == '<') { k->op = OP_LT; i++; }
        else if (c == '>') { k->op = OP_GT; i++; }
        else { perr(P, L->pos, JD_EINVAL, "unexpected '!' in %s", L->what); return false; }
    } else {
        static const char single[] = "[]()|:,";
        static const ktype kinds[] = { K_LBRACK, K_RBRACK, K_LPAREN, K_RPAREN, K_PIPE, K_COLON, K_COMMA };
        const char *f = c ? strchr(single, c) : NULL;
        if (!f) {
            if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
                perr(P, L->pos, JD_EINVAL, "unexpected character '%c' in %s", c, L->what);
            else
                perr(P, L->pos, JD_EINVAL, "unexpected byte 0x%02x in %s", (unsigned char)c, L->what);
            return false;
        }
        k->t = kinds[f - single];
        i++;
    }
    k->e = i;
    L->pos = i;
    return true;
}

static bool kis(const klex *L, const char *word)
{
    size_t n = strlen(word);
    return L->cur.t == K_IDENT && L->cur.e - L->cur.s == n && memcmp(L->P->src + L->cur.s, word, n) == 0;
}

/* "'text'" or "the end of the tag" for messages. */
static const char *kdesc(const klex *L, char *buf, size_t cap)
{
    if (L->cur.t == K_END) return L->what[0] == 'o' ? "'}}'" : "'%}'";
    size_t n = L->cur.e - L->cur.s;
    if (n > 40) n = 40;
    snprintf(buf, cap, "'%.*s'", (int)n, L->P->src + L->cur.s);
    return buf;
}

static bool kexpect(klex *L, ktype t, const char *what)
{
    if (L->cur.t == t) return klex_next(L);
    char b[64];
    perr(L->P, L->cur.s, JD_EINVAL, "expected %s, got %s", what, kdesc(L, b, sizeof b));
    return false;
}

static bool kend(klex *L, const char *after)
{
    if (L->cur.t == K_END) return true;
    char b[64];
    perr(L->P, L->cur.s, JD_EINVAL, "unexpected %s after %s", kdesc(L, b, sizeof b), after);
    return false;
}

/* ---- expressions ----------------------------------------------------------------- */

static xexpr *new_expr(parser *P, xkind k, size_t off)
{
    xexpr *e = palloc(P, sizeof *e);
    e->kind = (uint8_t)k;
    lc(P, off, &e->line, &e->col);
    return e;
}

static bool enter(parser *P, size_t off)
{
    if (++P->depth <= P->max_depth) return true;
    perr(P, off, JD_ELIMIT, "nested deeper than %u (template.max_depth)", P->max_depth);
    return false;
}

static xexpr *parse_primary(klex *L);

static xexpr *parse_var(klex *L)
{
    parser *P = L->P;
    xexpr *e = new_expr(P, X_VAR, L->cur.s);
    e->name = P->src + L->cur.s;
    e->namelen = (uint32_t)(L->cur.e - L->cur.s);
    e->ref = -1;
    for (int k = (int)P->nloops - 1; k >= 0; k--)
        if (P->loopvarlen[k] == e->namelen && memcmp(P->loopvar[k], e->name, e->namelen) == 0) {
            e->root = ROOT_LOOPVAR;
            e->ref = k;
            break;
        }
    if (e->ref < 0 && P->nloops && e->namelen == 7 && memcmp(e->name, "forloop", 7) == 0) {
        e->root = ROOT_FORLOOP;
        e->ref = (int32_t)P->nloops - 1;
    }
    if (e->ref < 0) {
        e->root = ROOT_VARS;
        if (P->nrefs == P->caprefs) {
            P->caprefs = P->caprefs ? P->caprefs * 2 : 32;
            P->refs = jd_xrealloc(P->refs, P->caprefs * sizeof *P->refs);
        }
        P->refs[P->nrefs++] = e;
    }
    if (!klex_next(L)) return NULL;
    xstep steps[64];
    uint32_t n = 0;
    uint32_t depth0 = P->depth;
    for (;;) {
        if (L->cur.t != K_DOT && L->cur.t != K_LBRACK) break;
        if (n == JD_ARRAY_LEN(steps)) {
            perr(P, L->cur.s, JD_ELIMIT, "more than %zu lookups in one variable", JD_ARRAY_LEN(steps));
            return NULL;
        }
        xstep *st = &steps[n++];
        memset(st, 0, sizeof *st);
        if (L->cur.t == K_DOT) {
            if (!klex_next(L)) return NULL;
            if (L->cur.t != K_IDENT) {
                char b[64];
                perr(P, L->cur.s, JD_EINVAL, "expected a name after '.', got %s", kdesc(L, b, sizeof b));
                return NULL;
            }
            st->name = P->src + L->cur.s;
            st->n = (uint32_t)(L->cur.e - L->cur.s);
            if (!klex_next(L)) return NULL;
        } else {
            if (!enter(P, L->cur.s) || !klex_next(L)) return NULL;
            xexpr *ix = parse_primary(L);
            if (!ix || !kexpect(L, K_RBRACK, "']'")) return NULL;
            P->depth--;
            if (ix->kind == X_LIT && ix->lit.k == TV_STR) {
                st->name = ix->lit.u.s.p;
                st->n = (uint32_t)ix->lit.u.s.n;
            } else {
                st->idx = ix;
            }
        }
    }
    P->depth = depth0;
    if (n) {
        e->steps = palloc(P, n * sizeof *e->steps);
        memcpy(e->steps, steps, n * sizeof *e->steps);
        e->nsteps = n;
    }
    return e;
}

static xexpr *parse_primary(klex *L)
{
    parser *P = L->P;
    const char *s = P->src;
    ktok k = L->cur;
    size_t n = k.e - k.s;
    xexpr *e;
    switch (k.t) {
    case K_STR:
        e = new_expr(P, X_LIT, k.s);
        e->lit = tv_str(s + k.s + 1, n - 2);
        return klex_next(L) ? e : NULL;
    case K_INT: {
        e = new_expr(P, X_LIT, k.s);
        char buf[32];
        if (n >= sizeof buf) n = sizeof buf - 1;
        memcpy(buf, s + k.s, n);
        buf[n] = 0;
        errno = 0;
        long long v = strtoll(buf, NULL, 10);
        if (errno == ERANGE) {
            perr(P, k.s, JD_EINVAL, "integer %s is out of range (64 bits)", buf);
            return NULL;
        }
        e->lit = tv_int(v);
        return klex_next(L) ? e : NULL;
    }
    case K_FLOAT: {
        e = new_expr(P, X_LIT, k.s);
        char buf[64];
        if (n >= sizeof buf) n = sizeof buf - 1;
        memcpy(buf, s + k.s, n);
        buf[n] = 0;
        e->lit = tv_float(strtod(buf, NULL));
        return klex_next(L) ? e : NULL;
    }
    case K_LPAREN: {
        e = new_expr(P, X_RANGE, k.s);
        if (!enter(P, k.s) || !klex_next(L)) return NULL;
        if (!(e->a = parse_primary(L))) return NULL;
        if (!kexpect(L, K_DOTDOT, "'..' in a range")) return NULL;
        if (!(e->b = parse_primary(L))) return NULL;
        if (!kexpect(L, K_RPAREN, "')' to close the range")) return NULL;
        P->depth--;
        return e;
    }
    case K_IDENT: {
        /* Literal words, unless looked into (`empty.size` is a variable lookup). */
        size_t after = L->pos;
        bool lookup = after < L->end && (s[after] == '.' || s[after] == '[');
        static const struct { const char *w; tv_kind k; int b; } words[] = {
            { "true", TV_BOOL, 1 }, { "false", TV_BOOL, 0 }, { "nil", TV_NIL, 0 }, { "null", TV_NIL, 0 },
            { "empty", TV_EMPTY, 0 }, { "blank", TV_BLANK, 0 },
        };
        if (!lookup)
            for (size_t i = 0; i < JD_ARRAY_LEN(words); i++)
                if (strlen(words[i].w) == n && memcmp(words[i].w, s + k.s, n) == 0) {
                    e = new_expr(P, X_LIT, k.s);
                    e->lit = tv_nil();
                    e->lit.k = (uint8_t)words[i].k;
                    e->lit.u.b = words[i].b;
                    return klex_next(L) ? e : NULL;
                }
        return parse_var(L);
    }
    default: {
        char b[64];
        perr(P, k.s, JD_EINVAL, "expected a value, got %s", kdesc(L, b, sizeof b));
        return NULL;
    }
    }
}

static xexpr *parse_cmp(klex *L)
{
    xexpr *a = parse_primary(L);
    if (!a) return NULL;
    int op = -1;
    if (L->cur.t == K_CMP) op = L->cur.op;
    else if (kis(L, "contains")) op = OP_CONTAINS;
    if (op < 0) return a;
    xexpr *e = new_expr(L->P, X_CMP, L->cur.s);
    e->op = (uint8_t)op;
    if (!klex_next(L)) return NULL;
    e->a = a;
    if (!(e->b = parse_primary(L))) return NULL;
    return e;
}

/* Invariant (3): collect, then fold from the right. */
static xexpr *parse_cond(klex *L)
{
    xexpr *terms[256];
    int ops[256];
    size_t n = 0;
    for (;;) {
        if (n == JD_ARRAY_LEN(terms)) {
            perr(L->P, L->cur.s, JD_ELIMIT, "more than %zu conditions joined by and/or", JD_ARRAY_LEN(terms));
            return NULL;
        }
        if (!(terms[n] = parse_cmp(L))) return NULL;
        if (kis(L, "and")) ops[n] = X_AND;
        else if (kis(L, "or")) ops[n] = X_OR;
        else { n++; break; }
        n++;
        if (!klex_next(L)) return NULL;
    }
    xexpr *e = terms[n - 1];
    for (size_t i = n - 1; i-- > 0;) {
        xexpr *x = new_expr(L->P, (xkind)ops[i], 0);
        x->line = terms[i]->line;
        x->col = terms[i]->col;
        x->a = terms[i];
        x->b = e;
        e = x;
    }
    return e;
}

static bool parse_filters(klex *L, xout *o)
{
    parser *P = L->P;
    xfilter fs[64];
    uint32_t nf = 0;
    while (L->cur.t == K_PIPE) {
        if (!klex_next(L)) return false;
        if (L->cur.t != K_IDENT) {
            char b[64];
            perr(P, L->cur.s, JD_EINVAL, "expected a filter name after '|', got %s", kdesc(L, b, sizeof b));
            return false;
        }
        if (nf == JD_ARRAY_LEN(fs)) {
            perr(P, L->cur.s, JD_ELIMIT, "more than %zu filters in a row", JD_ARRAY_LEN(fs));
            return false;
        }
        xfilter *f = &fs[nf++];
        memset(f, 0, sizeof *f);
        size_t fs0 = L->cur.s, fn = L->cur.e - L->cur.s;
        lc(P, fs0, &f->line, &f->col);
        f->def = tpl__filter_find(P->src + fs0, fn);
        if (!f->def) {
            perr(P, fs0, JD_EINVAL, "unknown filter '%.*s'", (int)(fn > 40 ? 40 : fn), P->src + fs0);
            return false;
        }
        if (!klex_next(L)) return false;
        xexpr *args[8], *kw = NULL;
        size_t kwoff = 0;
        uint32_t na = 0;
        if (L->cur.t == K_COLON) {
            if (!klex_next(L)) return false;
            for (;;) {
                /* NAME: value is a keyword argument */
                if (L->cur.t == K_IDENT) {
                    size_t save = L->pos;
                    ktok name = L->cur;
                    if (!klex_next(L)) return false;
                    if (L->cur.t == K_COLON) {
                        size_t nn = name.e - name.s;
                        if (!f->def->kw || strlen(f->def->kw) != nn || memcmp(f->def->kw, P->src + name.s, nn) != 0) {
                            perr(P, name.s, JD_EINVAL, "filter '%s' takes no argument '%.*s'", f->def->name,
                                 (int)(nn > 40 ? 40 : nn), P->src + name.s);
                            return false;
                        }
                        if (!klex_next(L) || !(kw = parse_primary(L))) return false;
                        kwoff = name.s;
                        goto next_arg;
                    }
                    L->pos = save;
                    L->cur = name;
                }
                if (na == JD_ARRAY_LEN(args)) {
                    perr(P, L->cur.s, JD_EINVAL, "filter '%s' takes at most %u arguments", f->def->name, f->def->max_args);
                    return false;
                }
                if (!(args[na++] = parse_primary(L))) return false;
            next_arg:
                if (L->cur.t != K_COMMA) break;
                if (!klex_next(L)) return false;
            }
        }
        (void)kwoff;
        if (na < f->def->min_args) {
            perr(P, fs0, JD_EINVAL, "filter '%s' needs %u argument%s, got %u", f->def->name, f->def->min_args,
                 f->def->min_args == 1 ? "" : "s", na);
            return false;
        }
        if (na > f->def->max_args) {
            perr(P, args[f->def->max_args] ? fs0 : fs0, JD_EINVAL, "filter '%s' takes at most %u argument%s, got %u",
                 f->def->name, f->def->max_args, f->def->max_args == 1 ? "" : "s", na);
            return false;
        }
        f->nargs = na;
        f->args = palloc(P, (na ? na : 1) * sizeof *f->args);
        memcpy(f->args, args, na * sizeof *args);
        if (kw) {
            f->nkw = 1;
            f->kwargs = palloc(P, sizeof *f->kwargs);
            f->kwargs[0] = kw;
        }
    }
    if (nf) {
        o->f = palloc(P, nf * sizeof *o->f);
        memcpy(o->f, fs, nf * sizeof *fs);
        o->nf = nf;
    }
    return true;
}

static bool parse_xout(klex *L, xout *o)
{
    if (!(o->e = parse_primary(L))) return false;
    return parse_filters(L, o);
}

/* ---- blocks and tags --------------------------------------------------------------- */

static tnode *new_node(parser *P, nkind k, size_t off)
{
    tnode *nd = palloc(P, sizeof *nd);
    nd->kind = (uint8_t)k;
    lc(P, off, &nd->line, &nd->col);
    return nd;
}

static void klex_init(klex *L, parser *P, size_t start, size_t end, const char *what)
{
    L->P = P;
    L->pos = start;
    L->end = end;
    L->what = what;
}

/* The tag's name (a word, or "#") and a lexer over the rest. */
static void tag_name(parser *P, const dtok *tk, size_t *ns, size_t *nn, klex *L)
{
    size_t i = tk->start;
    while (i < tk->end && is_ws(P->src[i])) i++;
    size_t s = i;
    if (i < tk->end && P->src[i] == '#') i++;
    else while (i < tk->end && (is_alpha(P->src[i]) || is_digit(P->src[i]))) i++;
    *ns = s;
    *nn = i - s;
    klex_init(L, P, i, tk->end, "tag");
}

static bool name_is(const parser *P, size_t s, size_t n, const char *w)
{
    return strlen(w) == n && memcmp(P->src + s, w, n) == 0;
}

typedef struct stop { dtok tk; size_t ns, nn; klex L; } stop;

static tnode *parse_block(parser *P, const char *const *stops, stop *st);

typedef int (*tag_fn)(parser *P, const dtok *tk, klex *L, tnode **out);

static void fmt_pos(parser *P, size_t off, char *buf, size_t cap)
{
    uint32_t line, col;
    lc(P, off, &line, &col);
    snprintf(buf, cap, "%u:%u", line, col);
}

static void not_closed(parser *P, const char *tag, const char *end, size_t at)
{
    char pos[32];
    fmt_pos(P, at, pos, sizeof pos);
    perr(P, P->n, JD_EINVAL, "expected '%s' to close '%s' opened at %s", end, tag, pos);
}

static bool grow_branches(tbranch **v, uint32_t n, uint32_t *cap)
{
    if (n < *cap) return true;
    *cap = *cap ? *cap * 2 : 4;
    *v = jd_xrealloc(*v, *cap * sizeof **v);
    return true;
}

static int tag_if_common(parser *P, const dtok *tk, klex *L, tnode **out, bool unless)
{
    const char *tag = unless ? "unless" : "if";
    const char *end = unless ? "endunless" : "endif";
    const char *stops[] = { "elsif", "else", end, NULL };
    const char *stops_else[] = { end, NULL };
    tbranch *br = NULL;
    uint32_t n = 0, cap = 0;
    tnode *nd = new_node(P, N_IF, tk->at);
    int rc = JD_EINVAL;
    if (!klex_next(L)) goto out;
    xexpr *cond = parse_cond(L);
    if (!cond || !kend(L, "the condition")) goto out;
    bool negate = unless, in_else = false;
    for (;;) {
        stop st;
        tnode *body = parse_block(P, in_else ? stops_else : stops, &st);
        if (P->failed) goto out;
        grow_branches(&br, n, &cap);
        br[n++] = (tbranch){ cond, negate, body };
        if (st.tk.type == T_EOF) { not_closed(P, tag, end, tk->at); goto out; }
        if (name_is(P, st.ns, st.nn, end)) {
            if (!klex_next(&st.L) || !kend(&st.L, end)) goto out;
            break;
        }
        if (!klex_next(&st.L)) goto out;
        negate = false;
        if (name_is(P, st.ns, st.nn, "else")) {
            if (!kend(&st.L, "'else'")) goto out;
            cond = NULL;
            in_else = true;
        } else {
            if (!(cond = parse_cond(&st.L)) || !kend(&st.L, "the condition")) goto out;
        }
    }
    nd->u.cond.br = palloc(P, n * sizeof *br);
    memcpy(nd->u.cond.br, br, n * sizeof *br);
    nd->u.cond.n = n;
    *out = nd;
    rc = JD_OK;
out:
    free(br);
    return rc;
}

static int tag_if(parser *P, const dtok *tk, klex *L, tnode **out) { return tag_if_common(P, tk, L, out, false); }
static int tag_unless(parser *P, const dtok *tk, klex *L, tnode **out) { return tag_if_common(P, tk, L, out, true); }

static int tag_case(parser *P, const dtok *tk, klex *L, tnode **out)
{
    const char *stops[] = { "when", "else", "endcase", NULL };
    const char *stops_else[] = { "endcase", NULL };
    twhen *w = NULL;
    uint32_t n = 0, cap = 0;
    int rc = JD_EINVAL;
    tnode *nd = new_node(P, N_CASE, tk->at);
    if (!klex_next(L)) goto out;
    if (!(nd->u.cas.subj = parse_primary(L)) || !kend(L, "the value of 'case'")) goto out;
    stop st;
    parse_block(P, stops, &st);   /* between case and the first when: ignored, as in Liquid */
    if (P->failed) goto out;
    for (;;) {
        if (st.tk.type == T_EOF) { not_closed(P, "case", "endcase", tk->at); goto out; }
        if (!klex_next(&st.L)) goto out;
        if (name_is(P, st.ns, st.nn, "endcase")) {
            if (!kend(&st.L, "'endcase'")) goto out;
            break;
        }
        if (name_is(P, st.ns, st.nn, "else")) {
            if (!kend(&st.L, "'else'")) goto out;
            nd->u.cas.has_else = true;
            nd->u.cas.els = parse_block(P, stops_else, &st);
            if (P->failed) goto out;
            continue;
        }
        /* when a, b or c */
        xexpr *vals[64];
        uint32_t nv = 0;
        for (;;) {
            if (nv == JD_ARRAY_LEN(vals)) { perr(P, st.L.cur.s, JD_ELIMIT, "more than 64 values in one 'when'"); goto out; }
            if (!(vals[nv++] = parse_primary(&st.L))) goto out;
            if (st.L.cur.t == K_COMMA || kis(&st.L, "or")) {
                if (!klex_next(&st.L)) goto out;
                continue;
            }
            if (!kend(&st.L, "the value of 'when'")) goto out;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            w = jd_xrealloc(w, cap * sizeof *w);
        }
        twhen *x = &w[n++];
        x->nv = nv;
        x->vals = palloc(P, nv * sizeof *vals);
        memcpy(x->vals, vals, nv * sizeof *vals);
        x->body = parse_block(P, stops, &st);
        if (P->failed) goto out;
    }
    if (n) {
        nd->u.cas.w = palloc(P, n * sizeof *w);
        memcpy(nd->u.cas.w, w, n * sizeof *w);
    }
    nd->u.cas.n = n;
    *out = nd;
    rc = JD_OK;
out:
    free(w);
    return rc;
}

static int tag_for(parser *P, const dtok *tk, klex *L, tnode **out)
{
    const char *stops[] = { "else", "endfor", NULL };
    const char *stops_else[] = { "endfor", NULL };
    tnode *nd = new_node(P, N_FOR, tk->at);
    if (!klex_next(L)) return JD_EINVAL;
    if (L->cur.t != K_IDENT) {
        char b[64];
        perr(P, L->cur.s, JD_EINVAL, "expected a variable name after 'for', got %s", kdesc(L, b, sizeof b));
        return JD_EINVAL;
    }
    ktok var = L->cur;
    if (!klex_next(L)) return JD_EINVAL;
    if (!kis(L, "in")) {
        char b[64];
        perr(P, L->cur.s, JD_EINVAL, "expected 'in', got %s", kdesc(L, b, sizeof b));
        return JD_EINVAL;
    }
    if (!klex_next(L) || !(nd->u.loop.coll = parse_primary(L))) return JD_EINVAL;
    while (L->cur.t != K_END) {
        if (L->cur.t == K_COMMA) { if (!klex_next(L)) return JD_EINVAL; continue; }
        if (kis(L, "reversed")) {
            nd->u.loop.reversed = true;
            if (!klex_next(L)) return JD_EINVAL;
            continue;
        }
        bool lim = kis(L, "limit"), off = kis(L, "offset");
        if (!lim && !off) {
            char b[64];
            perr(P, L->cur.s, JD_EINVAL, "expected 'limit:', 'offset:' or 'reversed', got %s", kdesc(L, b, sizeof b));
            return JD_EINVAL;
        }
        if (!klex_next(L) || !kexpect(L, K_COLON, "':'")) return JD_EINVAL;
        if (off && kis(L, "continue")) {
            perr(P, L->cur.s, JD_EINVAL, "'offset: continue' is not supported");
            return JD_EINVAL;
        }
        xexpr *x = parse_primary(L);
        if (!x) return JD_EINVAL;
        if (lim) nd->u.loop.limit = x; else nd->u.loop.offset = x;
    }
    if (P->nloops >= P->max_depth) {
        perr(P, tk->at, JD_ELIMIT, "nested deeper than %u (template.max_depth)", P->max_depth);
        return JD_EINVAL;
    }
    nd->u.loop.depth = (int32_t)P->nloops;
    P->loopvar[P->nloops] = P->src + var.s;
    P->loopvarlen[P->nloops] = (uint32_t)(var.e - var.s);
    P->nloops++;
    if (P->nloops > P->t->max_loop_depth) P->t->max_loop_depth = P->nloops;
    stop st;
    nd->u.loop.body = parse_block(P, stops, &st);
    P->nloops--;
    if (P->failed) return JD_EINVAL;
    if (st.tk.type == T_EOF) { not_closed(P, "for", "endfor", tk->at); return JD_EINVAL; }
    if (!klex_next(&st.L)) return JD_EINVAL;
    if (name_is(P, st.ns, st.nn, "else")) {
        if (!kend(&st.L, "'else'")) return JD_EINVAL;
        nd->u.loop.els = parse_block(P, stops_else, &st);
        if (P->failed) return JD_EINVAL;
        if (st.tk.type == T_EOF) { not_closed(P, "for", "endfor", tk->at); return JD_EINVAL; }
        if (!klex_next(&st.L)) return JD_EINVAL;
    }
    if (!kend(&st.L, "'endfor'")) return JD_EINVAL;
    *out = nd;
    return JD_OK;
}

static int32_t slot_for(parser *P, const char *name, uint32_t n)
{
    for (uint32_t i = 0; i < P->nslots; i++)
        if (P->slotlen[i] == n && memcmp(P->slotname[i], name, n) == 0) return (int32_t)i;
    if (P->nslots == P->capslots) {
        P->capslots = P->capslots ? P->capslots * 2 : 16;
        P->slotname = jd_xrealloc(P->slotname, P->capslots * sizeof *P->slotname);
        P->slotlen = jd_xrealloc(P->slotlen, P->capslots * sizeof *P->slotlen);
    }
    P->slotname[P->nslots] = name;
    P->slotlen[P->nslots] = n;
    return (int32_t)P->nslots++;
}

static int tag_assign(parser *P, const dtok *tk, klex *L, tnode **out)
{
    tnode *nd = new_node(P, N_ASSIGN, tk->at);
    if (!klex_next(L)) return JD_EINVAL;
    if (L->cur.t != K_IDENT) {
        char b[64];
        perr(P, L->cur.s, JD_EINVAL, "expected a variable name after 'assign', got %s", kdesc(L, b, sizeof b));
        return JD_EINVAL;
    }
    nd->u.assign.slot = slot_for(P, P->src + L->cur.s, (uint32_t)(L->cur.e - L->cur.s));
    if (!klex_next(L) || !kexpect(L, K_ASSIGN, "'='")) return JD_EINVAL;
    if (!parse_xout(L, &nd->u.assign.val) || !kend(L, "the value")) return JD_EINVAL;
    *out = nd;
    return JD_OK;
}

static int tag_capture(parser *P, const dtok *tk, klex *L, tnode **out)
{
    const char *stops[] = { "endcapture", NULL };
    tnode *nd = new_node(P, N_CAPTURE, tk->at);
    if (!klex_next(L)) return JD_EINVAL;
    if (L->cur.t == K_IDENT)
        nd->u.capture.slot = slot_for(P, P->src + L->cur.s, (uint32_t)(L->cur.e - L->cur.s));
    else if (L->cur.t == K_STR)
        nd->u.capture.slot = slot_for(P, P->src + L->cur.s + 1, (uint32_t)(L->cur.e - L->cur.s - 2));
    else {
        char b[64];
        perr(P, L->cur.s, JD_EINVAL, "expected a variable name after 'capture', got %s", kdesc(L, b, sizeof b));
        return JD_EINVAL;
    }
    if (!klex_next(L) || !kend(L, "the variable name")) return JD_EINVAL;
    stop st;
    nd->u.capture.body = parse_block(P, stops, &st);
    if (P->failed) return JD_EINVAL;
    if (st.tk.type == T_EOF) { not_closed(P, "capture", "endcapture", tk->at); return JD_EINVAL; }
    if (!klex_next(&st.L) || !kend(&st.L, "'endcapture'")) return JD_EINVAL;
    *out = nd;
    return JD_OK;
}

/* {% raw %}: everything up to {% endraw %} is text, delimiters included. */
static int tag_raw(parser *P, const dtok *tk, klex *L, tnode **out)
{
    if (!klex_next(L) || !kend(L, "'raw'")) return JD_EINVAL;
    const char *s = P->src;
    for (size_t i = P->pos; i + 1 < P->n; i++) {
        if (s[i] != '{' || s[i + 1] != '%') continue;
        size_t j = i + 2;
        bool ltrim = j < P->n && s[j] == '-';
        if (ltrim) j++;
        while (j < P->n && is_ws(s[j])) j++;
        if (j + 6 > P->n || memcmp(s + j, "endraw", 6) != 0) continue;
        j += 6;
        while (j < P->n && is_ws(s[j])) j++;
        bool rtrim = j < P->n && s[j] == '-';
        if (rtrim) j++;
        if (j + 1 >= P->n || s[j] != '%' || s[j + 1] != '}') continue;
        size_t b = P->pos, e = i;
        if (P->trim_next) while (b < e && is_ws(s[b])) b++;
        if (ltrim) while (e > b && is_ws(s[e - 1])) e--;
        P->trim_next = rtrim;
        P->pos = j + 2;
        if (e > b) {
            tnode *nd = new_node(P, N_TEXT, b);
            nd->u.text.p = s + b;
            nd->u.text.n = e - b;
            *out = nd;
        }
        return JD_OK;
    }
    not_closed(P, "raw", "endraw", tk->at);
    return JD_EINVAL;
}

static int tag_comment(parser *P, const dtok *tk, klex *L, tnode **out)
{
    (void)L;
    (void)out;
    int nest = 0;
    for (;;) {
        dtok t;
        if (!next_dtok(P, &t)) return JD_EINVAL;
        if (t.type == T_EOF) { not_closed(P, "comment", "endcomment", tk->at); return JD_EINVAL; }
        if (t.type != T_TAG) continue;
        size_t ns, nn;
        klex L2;
        tag_name(P, &t, &ns, &nn, &L2);
        if (name_is(P, ns, nn, "comment")) nest++;
        else if (name_is(P, ns, nn, "endcomment") && nest-- == 0) return JD_OK;
        else if (name_is(P, ns, nn, "raw")) {   /* a raw block may hide an endcomment */
            tnode *ignored = NULL;
            if (tag_raw(P, &t, &L2, &ignored) != JD_OK) return JD_EINVAL;
        }
    }
}

static int tag_inline_comment(parser *P, const dtok *tk, klex *L, tnode **out)
{
    (void)P; (void)tk; (void)L; (void)out;
    return JD_OK;
}

static int tag_echo(parser *P, const dtok *tk, klex *L, tnode **out)
{
    tnode *nd = new_node(P, N_OUT, tk->at);
    if (!klex_next(L)) return JD_EINVAL;
    if (L->cur.t == K_END) return JD_OK;
    if (!parse_xout(L, &nd->u.out) || !kend(L, "the value")) return JD_EINVAL;
    *out = nd;
    return JD_OK;
}

static int tag_jump(parser *P, const dtok *tk, klex *L, tnode **out, nkind k, const char *name)
{
    if (!klex_next(L) || !kend(L, name)) return JD_EINVAL;
    if (!P->nloops) {
        perr(P, tk->at, JD_EINVAL, "'%s' outside a for loop", name);
        return JD_EINVAL;
    }
    *out = new_node(P, k, tk->at);
    return JD_OK;
}
static int tag_break(parser *P, const dtok *tk, klex *L, tnode **out) { return tag_jump(P, tk, L, out, N_BREAK, "break"); }
static int tag_continue(parser *P, const dtok *tk, klex *L, tnode **out) { return tag_jump(P, tk, L, out, N_CONTINUE, "continue"); }

static const struct tagdef { const char *name; tag_fn parse; } tags[] = {
    { "if",       tag_if },
    { "unless",   tag_unless },
    { "case",     tag_case },
    { "for",      tag_for },
    { "assign",   tag_assign },
    { "capture",  tag_capture },
    { "raw",      tag_raw },
    { "comment",  tag_comment },
    { "#",        tag_inline_comment },
    { "echo",     tag_echo },
    { "break",    tag_break },
    { "continue", tag_continue },
};

/* Parses nodes until EOF or a tag named in stops (then st says which). */
static tnode *parse_block(parser *P, const char *const *stops, stop *st)
{
    tnode *head = NULL, **tail = &head;
    if (!enter(P, P->pos)) return NULL;
    for (;;) {
        dtok tk;
        if (!next_dtok(P, &tk)) return NULL;
        tnode *nd = NULL;
        if (tk.type == T_EOF) {
            if (st) st->tk = tk;
            break;
        }
        if (tk.type == T_TEXT) {
            nd = new_node(P, N_TEXT, tk.start);
            nd->u.text.p = P->src + tk.start;
            nd->u.text.n = tk.end - tk.start;
        } else if (tk.type == T_OUT) {
            klex L;
            klex_init(&L, P, tk.start, tk.end, "output");
            if (!klex_next(&L)) return NULL;
            if (L.cur.t != K_END) {
                nd = new_node(P, N_OUT, tk.at);
                if (!parse_xout(&L, &nd->u.out)) return NULL;
                if (L.cur.t != K_END) {
                    char b[64];
                    perr(P, L.cur.s, JD_EINVAL, "expected '|' or '}}', got %s", kdesc(&L, b, sizeof b));
                    return NULL;
                }
            }
        } else {
            size_t ns, nn;
            klex L;
            tag_name(P, &tk, &ns, &nn, &L);
            bool stopped = false;
            for (size_t i = 0; stops && stops[i]; i++)
                if (name_is(P, ns, nn, stops[i])) stopped = true;
            if (stopped) {
                st->tk = tk;
                st->ns = ns;
                st->nn = nn;
                st->L = L;
                break;
            }
            const struct tagdef *def = NULL;
            for (size_t i = 0; i < JD_ARRAY_LEN(tags); i++)
                if (name_is(P, ns, nn, tags[i].name)) def = &tags[i];
            if (!def) {
                if (nn == 0) perr(P, tk.at, JD_EINVAL, "expected a tag name after '{%%'");
                else perr(P, tk.at, JD_EINVAL, "unknown tag '%.*s'", (int)(nn > 40 ? 40 : nn), P->src + ns);
                return NULL;
            }
            if (def->parse(P, &tk, &L, &nd) != JD_OK) return NULL;
        }
        if (nd) {
            *tail = nd;
            tail = &nd->next;
        }
    }
    P->depth--;
    return head;
}

/* ---- the entry point ------------------------------------------------------------------- */

int tpl_compile(const char *name, const char *src, size_t n, const tpl_opts *o, tpl **out, jd_err *err)
{
    size_t max_source = o && o->max_source ? o->max_source : JD_TPL_MAX_SOURCE;
    uint32_t max_depth = o && o->max_depth ? o->max_depth : JD_TPL_MAX_DEPTH;
    *out = NULL;
    if (!name) name = "template";
    tpl *t = jd_xcalloc(1, sizeof *t);
    t->name = jd_xstrdup(name);
    parser P = { .t = t, .n = n, .err = err, .lc_line = 1, .lc_col = 1, .max_depth = max_depth };
    int rc = JD_EINVAL;
    if (n > max_source) {
        P.src = "";
        P.n = 0;
        perr(&P, 0, JD_ELIMIT, "template is longer than %zu bytes (template.max_source)", max_source);
        rc = JD_ELIMIT;
        goto out;
    }
    t->src = jd_xmalloc(n + 1);
    if (n) memcpy(t->src, src, n);
    t->src[n] = 0;
    P.src = t->src;
    P.loopvar = jd_xcalloc(max_depth + 1, sizeof *P.loopvar);
    P.loopvarlen = jd_xcalloc(max_depth + 1, sizeof *P.loopvarlen);
    t->root = parse_block(&P, NULL, NULL);
    if (P.failed) {
        rc = err ? err->code : JD_EINVAL;
        if (rc != JD_ELIMIT) rc = JD_EINVAL;
        goto out;
    }
    /* Invariant (3): names some assign or capture writes read a slot. */
    for (size_t i = 0; i < P.nrefs; i++)
        for (uint32_t s = 0; s < P.nslots; s++)
            if (P.slotlen[s] == P.refs[i]->namelen && memcmp(P.slotname[s], P.refs[i]->name, P.slotlen[s]) == 0) {
                P.refs[i]->root = ROOT_SLOT;
                P.refs[i]->ref = (int32_t)s;
                break;
            }
    t->nslots = P.nslots;
    *out = t;
    t = NULL;
    rc = JD_OK;
out:
    free(P.loopvar);
    free(P.loopvarlen);
    free(P.slotname);
    free(P.slotlen);
    free(P.refs);
    tpl_destroy(t);
    return rc;
}

void tpl_destroy(tpl *t)
{
    if (!t) return;
    tpl__arena_release(&t->mem);
    free(t->name);
    free(t->src);
    free(t);
}

const char *tpl_name(const tpl *t) { return t->name; }
