/* src/expr/lex.c -- CEL's lexis: tokens with line:column, literals decoded.
 *
 * Follows the LEXIS block of google/cel-spec doc/langdef.md: identifiers,
 * int/uint/double literals (decimal and 0x hex), single/double/triple-quoted
 * strings with the r (raw) and b (bytes) prefixes and all the escapes
 * (\a \b \f \n \r \t \v \\ \? \" \' \` \xHH \uHHHH \UHHHHHHHH \ooo),
 * whitespace and // comments.
 *
 * Invariants:
 *  (1) Columns count Unicode code points from 1, as cel-go reports them; a
 *      token's line:col is its first character's.
 *  (2) Decoded string/bytes/identifier text goes to the pool, NUL-terminated,
 *      so the evaluator can hand pool text to json-c as a C string.
 *  (3) A string literal decodes to valid UTF-8 (escapes included), a bytes
 *      literal to any octets; anything else is a TK_ERROR with a reason.
 *  (4) An int literal keeps its magnitude in u (up to 2^64-1): the parser
 *      decides whether it fits, because -9223372036854775808 is legal.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "expr_int.h"

uint32_t expr__pool_add(expr__pool *pl, const void *p, size_t n)
{
    if (pl->n + n + 1 > pl->cap) {
        size_t cap = pl->cap ? pl->cap : 256;
        while (cap < pl->n + n + 1) cap *= 2;
        pl->p = jd_xrealloc(pl->p, cap);
        pl->cap = cap;
    }
    uint32_t off = (uint32_t)pl->n;
    if (n) memcpy(pl->p + pl->n, p, n);
    pl->p[pl->n + n] = '\0';
    pl->n += n + 1;
    return off;
}

void expr__lex_init(expr__lexer *lx, const char *src, size_t n, expr__pool *pool)
{
    memset(lx, 0, sizeof *lx);
    lx->src = src;
    lx->n = n;
    lx->line = 1;
    lx->col = 1;
    lx->pool = pool;
}

static int peekc(const expr__lexer *lx, size_t ahead)
{
    return lx->pos + ahead < lx->n ? (unsigned char)lx->src[lx->pos + ahead] : -1;
}

/* Advances one byte, keeping line:col (invariant 1). */
static void adv(expr__lexer *lx)
{
    unsigned char ch = (unsigned char)lx->src[lx->pos++];
    if (ch == '\n') {
        lx->line++;
        lx->col = 1;
    } else if (ch == '\r') {
        if (lx->pos < lx->n && lx->src[lx->pos] == '\n') lx->pos++;
        lx->line++;
        lx->col = 1;
    } else if ((ch & 0xC0) != 0x80) {
        lx->col++;
    }
}

static bool is_ident0(int ch) { return ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }
static bool is_digit(int ch) { return ch >= '0' && ch <= '9'; }
static int  hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static size_t utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static void set_err(expr__tok *t, const char *msg)
{
    t->k = TK_ERROR;
    t->err = msg;
}

static const struct { const char *w; expr__tk k; } keywords[] = {
    { "true", TK_TRUE }, { "false", TK_FALSE }, { "null", TK_NULL }, { "in", TK_IN },
};

static void lex_number(expr__lexer *lx, expr__tok *t)
{
    size_t start = lx->pos;
    bool is_float = false;
    if (peekc(lx, 0) == '0' && (peekc(lx, 1) == 'x' || peekc(lx, 1) == 'X')) {
        adv(lx);
        adv(lx);
        uint64_t v = 0;
        bool overflow = false, any = false;
        while (hexval(peekc(lx, 0)) >= 0) {
            if (v >> 60) overflow = true;
            v = v * 16 + (uint64_t)hexval(peekc(lx, 0));
            any = true;
            adv(lx);
        }
        if (!any) return set_err(t, "invalid hex literal");
        t->u = v;
        if (peekc(lx, 0) == 'u' || peekc(lx, 0) == 'U') {
            adv(lx);
            t->k = TK_UINT;
        } else {
            t->k = TK_INT;
        }
        if (overflow) return set_err(t, t->k == TK_UINT ? "invalid uint literal" : "invalid int literal");
        return;
    }
    while (is_digit(peekc(lx, 0))) adv(lx);
    if (peekc(lx, 0) == '.' && is_digit(peekc(lx, 1))) {
        is_float = true;
        adv(lx);
        while (is_digit(peekc(lx, 0))) adv(lx);
    }
    if (peekc(lx, 0) == 'e' || peekc(lx, 0) == 'E') {
        int o = 1;
        if (peekc(lx, 1) == '+' || peekc(lx, 1) == '-') o = 2;
        if (is_digit(peekc(lx, o))) {
            is_float = true;
            for (int i = 0; i < o; i++) adv(lx);
            while (is_digit(peekc(lx, 0))) adv(lx);
        }
    }
    char buf[64];
    size_t len = lx->pos - start;
    if (is_float) {
        if (len >= sizeof buf) return set_err(t, "invalid double literal");
        memcpy(buf, lx->src + start, len);
        buf[len] = '\0';
        t->k = TK_DOUBLE;
        t->d = strtod(buf, NULL);
        return;
    }
    uint64_t v = 0;
    bool overflow = false;
    for (size_t i = start; i < lx->pos; i++) {
        unsigned dgt = (unsigned)(lx->src[i] - '0');
        if (v > (UINT64_MAX - dgt) / 10) overflow = true;
        v = v * 10 + dgt;
    }
    t->u = v;
    if (peekc(lx, 0) == 'u' || peekc(lx, 0) == 'U') {
        adv(lx);
        t->k = TK_UINT;
    } else {
        t->k = TK_INT;
    }
    if (overflow) set_err(t, t->k == TK_UINT ? "invalid uint literal" : "invalid int literal");
}

/* One escape after the backslash; appends to out (bytes: octets for \x and octal). */
static const char *lex_escape(expr__lexer *lx, bool bytes, char *out, size_t *on)
{
    static const char simple[] = "a\ab\bf\fn\nr\rt\tv\v\\\\??\"\"''``";
    int ch = peekc(lx, 0);
    if (ch < 0) return "unterminated string literal";
    for (size_t i = 0; i + 1 < sizeof simple; i += 2) {
        if (simple[i] == ch) {
            adv(lx);
            out[(*on)++] = simple[i + 1];
            return NULL;
        }
    }
    uint32_t cp = 0;
    int digits = 0;
    if (ch == 'x' || ch == 'X') digits = 2;
    else if (ch == 'u') digits = 4;
    else if (ch == 'U') digits = 8;
    if (digits) {
        adv(lx);
        for (int i = 0; i < digits; i++) {
            int h = hexval(peekc(lx, 0));
            if (h < 0) return "invalid escape sequence";
            cp = cp * 16 + (uint32_t)h;
            adv(lx);
        }
        if (digits == 2 && bytes) {
            out[(*on)++] = (char)cp;
            return NULL;
        }
    } else if (ch >= '0' && ch <= '3') {
        for (int i = 0; i < 3; i++) {
            int d = peekc(lx, 0);
            if (d < '0' || d > '7') return "invalid escape sequence";
            cp = cp * 8 + (uint32_t)(d - '0');
            adv(lx);
        }
        if (bytes) {
            out[(*on)++] = (char)cp;
            return NULL;
        }
    } else {
        return "invalid escape sequence";
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return "invalid unicode code point";
    *on += utf8_put(out + *on, cp);
    return NULL;
}

static void lex_string(expr__lexer *lx, expr__tok *t, bool raw, bool bytes)
{
    int q = peekc(lx, 0);
    bool triple = peekc(lx, 1) == q && peekc(lx, 2) == q;
    for (int i = 0; i < (triple ? 3 : 1); i++) adv(lx);
    /* Decoding never grows the text: every escape is at least as long as its
     * UTF-8 (\uHHHH is 6 chars for at most 3 bytes), so the span bounds it. */
    char *out = jd_xmalloc(lx->n - lx->pos + 1);
    size_t on = 0;
    const char *err = NULL;
    for (;;) {
        int ch = peekc(lx, 0);
        if (ch < 0) { err = "unterminated string literal"; break; }
        if (ch == q && (!triple || (peekc(lx, 1) == q && peekc(lx, 2) == q))) {
            for (int i = 0; i < (triple ? 3 : 1); i++) adv(lx);
            break;
        }
        if (!triple && (ch == '\n' || ch == '\r')) { err = "unterminated string literal"; break; }
        if (ch == '\\' && !raw) {
            adv(lx);
            err = lex_escape(lx, bytes, out, &on);
            if (err) break;
            continue;
        }
        if (ch == '\r') {                 /* newlines in triple-quoted text become \n */
            out[on++] = '\n';
            adv(lx);
            continue;
        }
        out[on++] = (char)ch;
        adv(lx);
    }
    if (!err && !bytes && !expr__utf8_valid(out, on)) err = "invalid UTF-8 in string literal";
    if (err) {
        set_err(t, err);
    } else {
        t->k = bytes ? TK_BYTES : TK_STRING;
        t->soff = expr__pool_add(lx->pool, out, on);
        t->slen = (uint32_t)on;
    }
    free(out);
}

static const struct { char s[3]; expr__tk k; } puncts[] = {
    { "==", TK_EQ }, { "!=", TK_NE }, { "<=", TK_LE }, { ">=", TK_GE }, { "&&", TK_AND }, { "||", TK_OR },
    { "(", TK_LPAREN }, { ")", TK_RPAREN }, { "[", TK_LBRACK }, { "]", TK_RBRACK }, { "{", TK_LBRACE },
    { "}", TK_RBRACE }, { ".", TK_DOT }, { ",", TK_COMMA }, { ":", TK_COLON }, { "?", TK_QUESTION },
    { "+", TK_PLUS }, { "-", TK_MINUS }, { "*", TK_STAR }, { "/", TK_SLASH }, { "%", TK_PERCENT },
    { "!", TK_NOT }, { "<", TK_LT }, { ">", TK_GT },
};

void expr__lex_next(expr__lexer *lx, expr__tok *t)
{
    memset(t, 0, sizeof *t);
    for (;;) {   /* whitespace and comments */
        int ch = peekc(lx, 0);
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f') {
            adv(lx);
        } else if (ch == '/' && peekc(lx, 1) == '/') {
            while (peekc(lx, 0) >= 0 && peekc(lx, 0) != '\n' && peekc(lx, 0) != '\r') adv(lx);
        } else {
            break;
        }
    }
    t->line = lx->line;
    t->col = lx->col;
    t->off = (uint32_t)lx->pos;
    int ch = peekc(lx, 0);
    if (ch < 0) {
        t->k = TK_EOF;
    } else if (is_digit(ch) || (ch == '.' && is_digit(peekc(lx, 1)))) {
        lex_number(lx, t);
    } else if (ch == '"' || ch == '\'') {
        lex_string(lx, t, false, false);
    } else if (is_ident0(ch)) {
        /* String prefixes: r, b, and both in either order and case. */
        int c0 = ch | 0x20, c1 = peekc(lx, 1);
        bool raw = false, bytes = false;
        size_t pre = 0;
        if ((c0 == 'r' || c0 == 'b') && (c1 == '"' || c1 == '\'')) {
            pre = 1;
        } else if ((c0 == 'r' || c0 == 'b') && c1 >= 0 && ((c1 | 0x20) == 'r' || (c1 | 0x20) == 'b') &&
                   (c1 | 0x20) != c0 && (peekc(lx, 2) == '"' || peekc(lx, 2) == '\'')) {
            pre = 2;
        }
        if (pre) {
            for (size_t i = 0; i < pre; i++) {
                int p = peekc(lx, 0) | 0x20;
                if (p == 'r') raw = true;
                if (p == 'b') bytes = true;
                adv(lx);
            }
            lex_string(lx, t, raw, bytes);
        } else {
            size_t s = lx->pos;
            while (is_ident0(peekc(lx, 0)) || is_digit(peekc(lx, 0))) adv(lx);
            size_t n = lx->pos - s;
            t->k = TK_IDENT;
            for (size_t i = 0; i < JD_ARRAY_LEN(keywords); i++) {
                if (strlen(keywords[i].w) == n && memcmp(keywords[i].w, lx->src + s, n) == 0)
                    t->k = keywords[i].k;
            }
            if (t->k == TK_IDENT) {
                t->soff = expr__pool_add(lx->pool, lx->src + s, n);
                t->slen = (uint32_t)n;
            }
        }
    } else {
        for (size_t i = 0; i < JD_ARRAY_LEN(puncts); i++) {
            size_t pn = strlen(puncts[i].s);
            if (lx->pos + pn <= lx->n && memcmp(lx->src + lx->pos, puncts[i].s, pn) == 0) {
                for (size_t k = 0; k < pn; k++) adv(lx);
                t->k = puncts[i].k;
                t->len = (uint32_t)(lx->pos - t->off);
                return;
            }
        }
        adv(lx);
        while (lx->pos < lx->n && ((unsigned char)lx->src[lx->pos] & 0xC0) == 0x80) adv(lx);
        set_err(t, "token recognition error");
    }
    t->len = (uint32_t)(lx->pos - t->off);
}
