/* src/journey/doc.c -- a journey document: from YAML (or JSON) text to a checked,
 * compiled jrn_doc, or to every diagnostic at once.
 *
 * The reader walks the YAML tree (jd_yaml_parse keeps each node's line:col) once,
 * top-level keys first, then nodes through the kind table (nodes.c), then the
 * graph (graph.c). It never stops at the first problem: a bad value is reported
 * and skipped, and the rest of the document is still read, the way a compiler
 * reports every error in a file. Only a document that is not YAML at all, or
 * whose top level is not a map, ends the reading early.
 *
 * Invariants:
 *  (1) jrn_doc_parse returns JD_OK iff it added no diagnostic; then *out is a
 *      complete document (every edge resolved, every expression compiled).
 *  (2) Every diagnostic names the file, a line:col inside the file (never 0:0),
 *      and the node id when it is about a node. An expression's own LINE:COL is
 *      mapped into the file (map_expr_pos says how exactly).
 *  (3) Diagnostics come out sorted by position (then in the order found), so the
 *      output reads top to bottom like the file and golden files are stable.
 *  (4) At most JRN_MAX_DIAGS are kept; the last line then says how many more.
 *  (5) A partly built document is always safe to jrn_doc_destroy: everything is
 *      zeroed at allocation and every pointer is either NULL or owned.
 */
#include "journey_int.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/tz.h"

/* ---- diagnostics ---------------------------------------------------------- */

static void diags_push(jrn__ctx *c, uint32_t line, uint32_t col, const char *node, const char *msg)
{
    jrn_diags *d = c->diags;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->v = jd_xrealloc(d->v, d->cap * sizeof *d->v);
    }
    size_t k = d->n - c->diag0;
    c->diag_key = jd_xrealloc(c->diag_key, (k + 1) * sizeof *c->diag_key);
    c->diag_key[k] = (uint64_t)line << 32 | col;
    jrn_diag *g = &d->v[d->n++];
    memset(g, 0, sizeof *g);
    snprintf(g->where, sizeof g->where, "%.100s:%u:%u", c->name, line, col);
    snprintf(g->node, sizeof g->node, "%s", node ? node : "");
    snprintf(g->msg, sizeof g->msg, "%s", msg);
}

void jrn__diag(jrn__ctx *c, uint32_t line, uint32_t col, const char *fmt, ...)
{
    if (line == 0) line = 1;
    if (col == 0) col = 1;
    c->nerrors++;
    if (c->nerrors > JRN_MAX_DIAGS) return;
    char msg[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diags_push(c, line, col, c->node, msg);
}

void jrn_diags_release(jrn_diags *d)
{
    if (!d) return;
    free(d->v);
    memset(d, 0, sizeof *d);
}

void jrn_diags_format(const jrn_diags *d, jd_buf *out)
{
    for (size_t i = 0; i < d->n; i++) {
        const jrn_diag *g = &d->v[i];
        if (g->node[0])
            jd_buf_addf(out, "%s: node '%s': %s\n", g->where, g->node, g->msg);
        else
            jd_buf_addf(out, "%s: %s\n", g->where, g->msg);
    }
}

/* Sorts what this parse added by position, keeping the order found for ties (3). */
static void diags_sort(jrn__ctx *c)
{
    size_t n = c->diags->n - c->diag0;
    if (n < 2) return;   /* also: v may be NULL, and NULL + 0 is undefined */
    jrn_diag *v = c->diags->v + c->diag0;
    for (size_t i = 1; i < n; i++) {   /* insertion sort: n <= JRN_MAX_DIAGS + 1, nearly sorted */
        jrn_diag g = v[i];
        uint64_t k = c->diag_key[i];
        size_t j = i;
        for (; j > 0 && c->diag_key[j - 1] > k; j--) {
            v[j] = v[j - 1];
            c->diag_key[j] = c->diag_key[j - 1];
        }
        v[j] = g;
        c->diag_key[j] = k;
    }
}

/* ---- typed reads ------------------------------------------------------- */

static bool is_null(const jd_yaml_node *y)
{
    return y->kind == JD_YAML_SCALAR && !y->quoted &&
           (y->text[0] == '\0' || strcmp(y->text, "~") == 0 || strcmp(y->text, "null") == 0);
}

const jd_yaml_node *jrn__get(const jd_yaml_node *map, const char *key)
{
    const jd_yaml_node *v = jd_yaml_get(map, key);
    return v && !is_null(v) ? v : NULL;
}

const char *jrn__yaml_kind(const jd_yaml_node *y)
{
    static const char *const names[] = { [JD_YAML_SCALAR] = "text", [JD_YAML_SEQ] = "a list", [JD_YAML_MAP] = "a map" };
    return names[y->kind];
}

static size_t count_keys(const char *const *v)
{
    size_t n = 0;
    while (v[n]) n++;
    return n;
}

void jrn__check_keys(jrn__ctx *c, const jd_yaml_node *map, const char *const *allowed, const char *what)
{
    size_t na = count_keys(allowed);
    for (const jd_yaml_node *k = map->child; k; k = k->next) {
        size_t i = 0;
        while (i < na && strcmp(k->text, allowed[i]) != 0) i++;
        if (i < na) continue;
        const char *s = jrn__suggest(k->text, allowed, na);
        if (s)
            jrn__diag_at(c, k, "unknown field '%.64s' in %s (did you mean '%s'?)", k->text, what, s);
        else {
            char list[160] = "";
            size_t len = 0;
            for (size_t j = 0; j < na && len < sizeof list; j++)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", j ? ", " : "", allowed[j]);
            jrn__diag_at(c, k, "unknown field '%.64s' in %s (expected %s)", k->text, what, list);
        }
    }
}

bool jrn__want_map(jrn__ctx *c, const jd_yaml_node *y, const char *field)
{
    if (y->kind == JD_YAML_MAP) return true;
    jrn__diag_at(c, y, "'%s' must be a map, got %s", field, jrn__yaml_kind(y));
    return false;
}

bool jrn__want_seq(jrn__ctx *c, const jd_yaml_node *y, const char *field)
{
    if (y->kind == JD_YAML_SEQ) return true;
    jrn__diag_at(c, y, "'%s' must be a list, got %s", field, jrn__yaml_kind(y));
    return false;
}

char *jrn__str(jrn__ctx *c, const jd_yaml_node *y, const char *field)
{
    if (y->kind != JD_YAML_SCALAR) {
        jrn__diag_at(c, y, "'%s' must be text, got %s", field, jrn__yaml_kind(y));
        return NULL;
    }
    size_t n = strlen(y->text);
    if (n == 0) {
        jrn__diag_at(c, y, "'%s' is empty", field);
        return NULL;
    }
    if (n > JRN_MAX_TEXT) {
        jrn__diag_at(c, y, "'%s' is longer than %d bytes", field, JRN_MAX_TEXT);
        return NULL;
    }
    return jd_xstrdup(y->text);
}

static bool ident_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isalnum((unsigned char)s[n]) && s[n] != '_' && s[n] != '-') return false;
    return n >= 1 && n <= JRN_MAX_ID;
}

char *jrn__ident(jrn__ctx *c, const jd_yaml_node *y, const char *field)
{
    if (y->kind != JD_YAML_SCALAR) {
        jrn__diag_at(c, y, "'%s' must be text, got %s", field, jrn__yaml_kind(y));
        return NULL;
    }
    if (!ident_ok(y->text)) {
        jrn__diag_at(c, y, "bad %s '%.64s': use 1 to %d letters, digits, '_' or '-'", field, y->text, JRN_MAX_ID);
        return NULL;
    }
    return jd_xstrdup(y->text);
}

bool jrn__bool(jrn__ctx *c, const jd_yaml_node *y, const char *field, bool *out)
{
    if (y->kind == JD_YAML_SCALAR && !y->quoted) {
        if (strcmp(y->text, "true") == 0) { *out = true; return true; }
        if (strcmp(y->text, "false") == 0) { *out = false; return true; }
    }
    if (y->kind == JD_YAML_SCALAR && y->quoted) {
        jrn__diag_at(c, y, "'%s' must be true or false, not the text \"%.64s\"", field, y->text);
        return false;
    }
    jrn__diag_at(c, y, "'%s' must be true or false, got %s%.64s%s", field,
                 y->kind == JD_YAML_SCALAR ? "'" : "", y->kind == JD_YAML_SCALAR ? y->text : jrn__yaml_kind(y),
                 y->kind == JD_YAML_SCALAR ? "'" : "");
    return false;
}

bool jrn__duration(jrn__ctx *c, const jd_yaml_node *y, const char *field, uint64_t *out)
{
    if (y->kind != JD_YAML_SCALAR) {
        jrn__diag_at(c, y, "'%s' must be a duration like 1h30m or 7d, got %s", field, jrn__yaml_kind(y));
        return false;
    }
    uint64_t us = 0;
    if (jd_duration_parse(y->text, &us) != JD_OK) {
        jrn__diag_at(c, y, "bad duration '%.64s' in '%s': expected a number and a unit (ms, s, m, h, d, w), like 1h30m or 7d",
                     y->text, field);
        return false;
    }
    if (us == 0) {
        jrn__diag_at(c, y, "'%s' must be longer than 0", field);
        return false;
    }
    *out = us;
    return true;
}

/* An event name: text, and not a segment event name (those are written
 * `segment_enter: <id>`, and only a membership change may match one). */
char *jrn__event_name(jrn__ctx *c, const jd_yaml_node *y, const char *field)
{
    char *s = jrn__str(c, y, field);
    if (s && s[0] == JRN_SEGMENT_EVENT_MARK) {
        jrn__diag_at(c, y, "'%s' cannot start with the byte 0x01 (it marks segment changes)", field);
        free(s);
        return NULL;
    }
    return s;
}

/* The keys that name what a rule, wait or goal reacts to. */
static const char *const event_ref_keys[] = { "event", "segment_enter", "segment_exit" };

char *jrn__event_ref(jrn__ctx *c, const jd_yaml_node *map, const char *what, const jd_yaml_node **at)
{
    const jd_yaml_node *which = NULL;
    size_t k = 0;
    *at = NULL;
    for (size_t i = 0; i < JD_ARRAY_LEN(event_ref_keys); i++) {
        const jd_yaml_node *v = jrn__get(map, event_ref_keys[i]);
        if (!v) continue;
        if (which) {
            jrn__diag_at(c, v, "%s takes one of event, segment_enter or segment_exit, not both '%s' and '%s'", what,
                         event_ref_keys[k], event_ref_keys[i]);
            continue;
        }
        which = v;
        k = i;
    }
    *at = which;
    if (!which) return NULL;
    if (k == 0) return jrn__event_name(c, which, "event");
    char *id = jrn__ident(c, which, event_ref_keys[k]);
    if (!id) return NULL;
    const jrn_env *env = c->env;
    if (env->segment_exists && !env->segment_exists(env->seg_self, id)) {
        jrn__diag_at(c, which, "unknown segment '%s' in '%s' (define the segment first)", id, event_ref_keys[k]);
        free(id);
        return NULL;
    }
    char name[JRN_SEGMENT_EVENT_MAX];
    jrn_segment_event_name(name, id, k == 1);
    free(id);
    return jd_xstrdup(name);
}

char *jrn_segment_event_name(char buf[JRN_SEGMENT_EVENT_MAX], const char *id, bool enter)
{
    snprintf(buf, JRN_SEGMENT_EVENT_MAX, "%csegment_%s:%.64s", JRN_SEGMENT_EVENT_MARK, enter ? "enter" : "exit", id);
    return buf;
}

const char *jrn_segment_event_parse(const char *name, bool *enter)
{
    if (!name || name[0] != JRN_SEGMENT_EVENT_MARK) return NULL;
    if (strncmp(name + 1, "segment_enter:", 14) == 0) { *enter = true; return name + 15; }
    if (strncmp(name + 1, "segment_exit:", 13) == 0) { *enter = false; return name + 14; }
    return NULL;
}

/* ---- expressions: compile, and map their positions into the file ----------- */

/* Byte offset of (line, col) in the source; col counts code points, as libyaml does. */
static size_t src_offset(const jrn__ctx *c, uint32_t line, uint32_t col)
{
    size_t i = 0;
    for (uint32_t l = 1; l < line && i < c->n; i++)
        if (c->text[i] == '\n') l++;
    for (uint32_t k = 1; k < col && i < c->n && c->text[i] != '\n'; k++) {
        i++;
        while (i < c->n && ((unsigned char)c->text[i] & 0xC0) == 0x80) i++;
    }
    return i;
}

/* Walks `steps` characters of a scalar's value through its source, from byte i at
 * (*line, *col). YAML folds a line break and the indentation around it into one
 * space, so such a run counts as one character; in quoted scalars an escape
 * (\" or '') counts as one. */
static void walk_value(const jrn__ctx *c, size_t i, char quote, uint32_t steps, uint32_t *line, uint32_t *col)
{
    const char *t = c->text;
    for (uint32_t k = 0; k < steps && i < c->n; k++) {
        if (t[i] == ' ' || t[i] == '\t' || t[i] == '\r' || t[i] == '\n') {
            size_t j = i;
            bool nl = false;
            while (j < c->n && (t[j] == ' ' || t[j] == '\t' || t[j] == '\r' || t[j] == '\n')) nl |= t[j++] == '\n';
            if (nl) {
                for (; i < j; i++) {
                    if (t[i] == '\n') { (*line)++; *col = 1; } else (*col)++;
                }
                continue;
            }
        }
        size_t w = 1;
        if ((quote == '"' && t[i] == '\\') || (quote == '\'' && t[i] == '\'' && i + 1 < c->n && t[i + 1] == '\'')) w = 2;
        for (size_t e = 0; e < w && i < c->n; e++) {
            i++;
            while (i < c->n && ((unsigned char)t[i] & 0xC0) == 0x80) i++;
            (*col)++;
        }
    }
}

/* Maps an expression position (el:ec, 1-based, relative to the expression text)
 * into the file. Exact for one-line expressions (plain or quoted) and for literal
 * block scalars (`|`); for folded ones (plain over several lines, `>`) the fold
 * is walked back, so the position is exact unless the text has escapes or
 * comments between its lines. */
static void map_expr_pos(const jrn__ctx *c, const jd_yaml_node *y, uint32_t el, uint32_t ec,
                         uint32_t *line, uint32_t *col)
{
    size_t i = src_offset(c, y->line, y->col);
    char ch = i < c->n ? c->text[i] : '\0';
    *line = y->line;
    *col = y->col;
    if (ch == '|' || ch == '>') {
        /* Block scalar: the text starts on the next line, at its indentation. */
        while (i < c->n && c->text[i] != '\n') i++;
        size_t j = i + 1, ind = 0;
        while (j + ind < c->n && c->text[j + ind] == ' ') ind++;
        if (ch == '|') {
            *line = y->line + el;
            *col = (uint32_t)ind + ec;
            return;
        }
        *line = y->line + 1;
        *col = (uint32_t)ind + 1;
        walk_value(c, j + ind, 0, ec - 1, line, col);
        return;
    }
    char quote = (ch == '"' || ch == '\'') ? ch : 0;
    if (quote) { i++; (*col)++; }
    if (el > 1) {   /* a line break inside a quoted string: rare; point at the line start */
        *line = y->line + el - 1;
        *col = ec;
        return;
    }
    walk_value(c, i, quote, ec - 1, line, col);
}

expr_prog *jrn__expr(jrn__ctx *c, const jd_yaml_node *y, const char *field, bool want_bool)
{
    if (y->kind != JD_YAML_SCALAR) {
        jrn__diag_at(c, y, "'%s' must be an expression, got %s", field, jrn__yaml_kind(y));
        return NULL;
    }
    expr_prog *p = NULL;
    jd_err err;
    jd_err_clear(&err);
    if (expr_compile(y->text, strlen(y->text), c->decls, &p, &err) != JD_OK) {
        unsigned el = 1, ec = 1;
        if (sscanf(err.where, "%u:%u", &el, &ec) != 2 || el == 0 || ec == 0) el = ec = 1;
        uint32_t line, col;
        map_expr_pos(c, y, el, ec, &line, &col);
        /* A trait value written as bare text (`plan: pro`) reads a variable named
         * pro: say how to write text, the usual intent. */
        bool hint = !want_bool && strncmp(err.msg, "undeclared reference", 20) == 0;
        jrn__diag(c, line, col, "in '%s': %s%s", field, err.msg[0] ? err.msg : "invalid expression",
                  hint ? " (text needs quotes inside: \"'text'\")" : "");
        return NULL;
    }
    expr_kind k = expr_prog_kind(p);
    if (want_bool && k != EXPR_BOOL && k != EXPR_DYN) {
        jrn__diag_at(c, y, "'%s' must be a condition (bool), got %s", field, expr_kind_name(k));
        expr_prog_destroy(p);
        return NULL;
    }
    return p;
}

void jrn__edge_add(jrn__ctx *c, const jd_yaml_node *ref, uint32_t *slot, uint32_t from)
{
    *slot = JRN_NONE;
    if (ref->kind != JD_YAML_SCALAR) {
        jrn__diag_at(c, ref, "an edge must name a node id, got %s", jrn__yaml_kind(ref));
        return;
    }
    if (c->nedges == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->edges = jd_xrealloc(c->edges, c->cap * sizeof *c->edges);
    }
    c->edges[c->nedges++] = (jrn__edge){ slot, from, ref };
}

/* Levenshtein distance, capped: only "did you mean" uses it, on short words. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > 64 || nb > 64) return 99;
    size_t row[65];
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

const char *jrn__suggest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t bd = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(word, cands[i]);
        if (d < bd && d < strlen(cands[i])) { bd = d; best = cands[i]; }
    }
    return best;
}

/* ---- the environment ------------------------------------------------------ */

static const char *const default_channels[] = { "email", "sms", "push", "webhook", "slack", "in_app" };
static expr_decls *default_decls;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static void make_default_decls(void) { default_decls = expr_decls_journeyd(); }

static const jrn_env env_default = {
    .channels = default_channels, .nchannels = JD_ARRAY_LEN(default_channels),
};

const jrn_env *jrn_env_default(void) { return &env_default; }

/* ---- the document keys -------------------------------------------------- */

static const char *const doc_keys[] = {
    "id", "name", "description", "entry", "reentry", "cooldown", "concurrent", "exits", "goal", "start", "nodes", NULL,
};
static const char *const entry_keys[] = { "event", "segment_enter", "segment_exit", "api", "when", NULL };
static const char *const exit_keys[] = { "event", "segment_enter", "segment_exit", "when", "action", "resume_on", NULL };
static const char *const goal_keys[] = { "event", "segment_enter", "segment_exit", "when", "within", NULL };

/* Each entry kind is a key of `entry:`; exactly one must be there. */
static const struct { const char *key; jrn_entry_kind kind; } entry_kinds[] = {
    { "event", JRN_ENTRY_EVENT }, { "segment_enter", JRN_ENTRY_SEGMENT_ENTER },
    { "segment_exit", JRN_ENTRY_SEGMENT_EXIT }, { "api", JRN_ENTRY_API },
};

static void parse_entry(jrn__ctx *c, const jd_yaml_node *y)
{
    jrn_doc *d = c->doc;
    if (!jrn__want_map(c, y, "entry")) return;
    jrn__check_keys(c, y, entry_keys, "entry");
    const jd_yaml_node *which = NULL;
    for (size_t i = 0; i < JD_ARRAY_LEN(entry_kinds); i++) {
        const jd_yaml_node *v = jrn__get(y, entry_kinds[i].key);
        if (!v) continue;
        if (d->entry.kind) {
            jrn__diag_at(c, v, "'entry' takes one of event, segment_enter, segment_exit or api, not both '%s' and '%s'",
                         entry_kinds[d->entry.kind - 1].key, entry_kinds[i].key);
            continue;
        }
        d->entry.kind = entry_kinds[i].kind;
        which = v;
    }
    if (!d->entry.kind) {
        jrn__diag_at(c, y, "'entry' needs one of event, segment_enter, segment_exit or api");
        return;
    }
    switch (d->entry.kind) {   /* four kinds with different value types: clearer than a table */
    case JRN_ENTRY_EVENT: d->entry.event = jrn__event_name(c, which, "event"); break;
    case JRN_ENTRY_SEGMENT_ENTER: d->entry.segment = jrn__ident(c, which, "segment_enter"); break;
    case JRN_ENTRY_SEGMENT_EXIT: d->entry.segment = jrn__ident(c, which, "segment_exit"); break;
    case JRN_ENTRY_API: {
        bool on = false;
        if (jrn__bool(c, which, "api", &on) && !on) jrn__diag_at(c, which, "'api' can only be true");
        break;
    }
    }
    const jd_yaml_node *w = jrn__get(y, "when");
    if (w) {
        if (d->entry.kind == JRN_ENTRY_EVENT)
            d->entry.when = jrn__expr(c, w, "when", true);
        else
            jrn__diag_at(c, w, "'when' goes with an event entry (use a branch node after a segment or api entry)");
    }
}

static const struct { const char *name; jrn_reentry v; } reentries[] = {
    { "never", JRN_REENTRY_NEVER }, { "always", JRN_REENTRY_ALWAYS }, { "cooldown", JRN_REENTRY_COOLDOWN },
};

static void parse_reentry(jrn__ctx *c, const jd_yaml_node *top)
{
    jrn_doc *d = c->doc;
    const jd_yaml_node *r = jrn__get(top, "reentry"), *cd = jrn__get(top, "cooldown");
    d->reentry = JRN_REENTRY_NEVER;
    if (r) {
        size_t i = 0;
        while (i < JD_ARRAY_LEN(reentries) && !(r->kind == JD_YAML_SCALAR && strcmp(r->text, reentries[i].name) == 0)) i++;
        if (i < JD_ARRAY_LEN(reentries))
            d->reentry = reentries[i].v;
        else
            jrn__diag_at(c, r, "'reentry' must be never, always or cooldown, got %s%.64s%s",
                         r->kind == JD_YAML_SCALAR ? "'" : "", r->kind == JD_YAML_SCALAR ? r->text : jrn__yaml_kind(r),
                         r->kind == JD_YAML_SCALAR ? "'" : "");
    }
    if (cd) {
        if (r && d->reentry != JRN_REENTRY_COOLDOWN)
            jrn__diag_at(c, cd, "'cooldown' goes with 'reentry: cooldown'");
        else if (!r)
            jrn__diag_at(c, cd, "'cooldown' needs 'reentry: cooldown'");
        else
            jrn__duration(c, cd, "cooldown", &d->cooldown_us);
    } else if (d->reentry == JRN_REENTRY_COOLDOWN) {
        jrn__diag_at(c, r, "'reentry: cooldown' needs 'cooldown' (a duration like 7d)");
    }
    const jd_yaml_node *cc = jrn__get(top, "concurrent");
    if (cc) jrn__bool(c, cc, "concurrent", &d->allow_concurrent);
}

static const struct { const char *name; jrn_exit_action v; } exit_actions[] = {
    { "end", JRN_EXIT_END }, { "pause", JRN_EXIT_PAUSE },
};

static void parse_exit_rule(jrn__ctx *c, const jd_yaml_node *y, jrn_exit_rule *r)
{
    r->action = JRN_EXIT_END;
    if (!jrn__want_map(c, y, "exits[]")) return;
    jrn__check_keys(c, y, exit_keys, "an exit rule");
    const jd_yaml_node *ev = NULL, *w = jrn__get(y, "when"), *a = jrn__get(y, "action"), *ro = jrn__get(y, "resume_on");
    r->event = jrn__event_ref(c, y, "an exit rule", &ev);
    if (w) r->when = jrn__expr(c, w, "when", true);
    if (!ev && !w) jrn__diag_at(c, y, "an exit rule needs an event (event, segment_enter or segment_exit), 'when' or both");
    if (a) {
        size_t i = 0;
        while (i < JD_ARRAY_LEN(exit_actions) && !(a->kind == JD_YAML_SCALAR && strcmp(a->text, exit_actions[i].name) == 0)) i++;
        if (i < JD_ARRAY_LEN(exit_actions))
            r->action = exit_actions[i].v;
        else
            jrn__diag_at(c, a, "'action' must be end or pause");
    }
    if (ro && r->action != JRN_EXIT_PAUSE)
        jrn__diag_at(c, ro, "'resume_on' goes with 'action: pause'");
    else if (ro)
        r->resume_event = jrn__event_name(c, ro, "resume_on");
    else if (a && r->action == JRN_EXIT_PAUSE)
        jrn__diag_at(c, a, "'action: pause' needs 'resume_on' (the event that resumes the journey)");
}

static void parse_exits(jrn__ctx *c, const jd_yaml_node *y)
{
    if (!jrn__want_seq(c, y, "exits")) return;
    uint32_t n = 0;
    for (const jd_yaml_node *e = y->child; e; e = e->next) n++;
    c->doc->exits = jd_xcalloc(n ? n : 1, sizeof *c->doc->exits);
    c->doc->nexits = n;
    uint32_t i = 0;
    for (const jd_yaml_node *e = y->child; e; e = e->next) parse_exit_rule(c, e, &c->doc->exits[i++]);
}

static void parse_goal(jrn__ctx *c, const jd_yaml_node *y)
{
    jrn_doc *d = c->doc;
    if (!jrn__want_map(c, y, "goal")) return;
    jrn__check_keys(c, y, goal_keys, "goal");
    d->goal.present = true;
    const jd_yaml_node *ev = NULL, *w = jrn__get(y, "when"), *win = jrn__get(y, "within");
    d->goal.event = jrn__event_ref(c, y, "'goal'", &ev);
    if (!ev) jrn__diag_at(c, y, "'goal' needs 'event' (the conversion event), 'segment_enter' or 'segment_exit'");
    if (w) d->goal.when = jrn__expr(c, w, "when", true);
    if (win) jrn__duration(c, win, "within", &d->goal.within_us);
}

static void parse_nodes(jrn__ctx *c, const jd_yaml_node *y)
{
    jrn_doc *d = c->doc;
    if (!jrn__want_map(c, y, "nodes")) return;
    uint32_t n = 0;
    for (const jd_yaml_node *k = y->child; k; k = k->next) n++;
    if (n == 0) {
        jrn__diag_at(c, y, "'nodes' is empty: a journey needs at least one node");
        return;
    }
    if (n > JRN_MAX_NODES) {
        jrn__diag_at(c, y, "too many nodes: %u (at most %d)", n, JRN_MAX_NODES);
        return;
    }
    d->nodes = jd_xcalloc(n, sizeof *d->nodes);
    d->nnodes = n;
    c->ids = jd_map_create(n * 2);
    uint32_t i = 0;
    for (const jd_yaml_node *k = y->child; k; k = k->next, i++) {
        jrn_node *nd = &d->nodes[i];
        nd->index = i;
        nd->line = k->line;
        nd->col = k->col;
        nd->next = JRN_NONE;
        if (!ident_ok(k->text))
            jrn__diag_at(c, k, "bad node id '%.64s': use 1 to %d letters, digits, '_' or '-'", k->text, JRN_MAX_ID);
        nd->id = jd_xstrdup(k->text);
        jd_map_put(c->ids, nd->id, strlen(nd->id), nd);
    }
    i = 0;
    for (const jd_yaml_node *k = y->child; k; k = k->next, i++) {
        c->node = d->nodes[i].id;
        jrn__parse_node(c, &d->nodes[i], k);
    }
    c->node = "";
}

static bool journey_id_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!(islower((unsigned char)s[n]) || isdigit((unsigned char)s[n]) || s[n] == '-' || s[n] == '_')) return false;
    return n >= 1 && n <= JRN_MAX_ID;
}

static void parse_top(jrn__ctx *c, const jd_yaml_node *top)
{
    jrn_doc *d = c->doc;
    jrn__check_keys(c, top, doc_keys, "the journey");
    const jd_yaml_node *v;
    if ((v = jrn__get(top, "id"))) {
        if (v->kind == JD_YAML_SCALAR && journey_id_ok(v->text))
            d->id = jd_xstrdup(v->text);
        else
            jrn__diag_at(c, v, "bad journey id '%.64s': use 1 to %d lowercase letters, digits, '-' or '_'",
                         v->kind == JD_YAML_SCALAR ? v->text : jrn__yaml_kind(v), JRN_MAX_ID);
    } else {
        jrn__diag(c, top->line, top->col, "missing 'id' (the journey's id, like cart-abandonment)");
    }
    if ((v = jrn__get(top, "name"))) d->name = jrn__str(c, v, "name");
    if ((v = jrn__get(top, "description"))) d->description = jrn__str(c, v, "description");
    if ((v = jrn__get(top, "entry")))
        parse_entry(c, v);
    else
        jrn__diag(c, top->line, top->col, "missing 'entry' (how people enter: event, segment_enter, segment_exit or api)");
    parse_reentry(c, top);
    if ((v = jrn__get(top, "exits"))) parse_exits(c, v);
    if ((v = jrn__get(top, "goal"))) parse_goal(c, v);
    if ((v = jrn__get(top, "nodes")))
        parse_nodes(c, v);
    else
        jrn__diag(c, top->line, top->col, "missing 'nodes' (the journey's steps)");
    d->start = d->nnodes ? 0 : JRN_NONE;
    if ((v = jrn__get(top, "start")) && d->nnodes) jrn__edge_add(c, v, &d->start, JRN_NONE);
}

int jrn_doc_parse(const char *name, const char *text, size_t n, const jrn_env *env, jrn_doc **out, jrn_diags *diags)
{
    int rc = JD_EINVAL;
    jd_yaml_doc *yd = NULL;
    const jd_yaml_node *top = NULL;
    jd_err err;
    jrn__ctx c = { .name = name ? name : "journey", .text = text, .n = n, .diags = diags, .node = "" };
    c.diag0 = diags->n;
    c.env = env ? env : jrn_env_default();
    if (c.env->decls) {
        c.decls = c.env->decls;
    } else {
        pthread_once(&default_once, make_default_decls);
        c.decls = default_decls;
    }
    *out = NULL;
    c.doc = jd_xcalloc(1, sizeof *c.doc);
    c.doc->source_name = jd_xstrdup(c.name);
    c.doc->start = JRN_NONE;

    jd_err_clear(&err);
    if (jd_yaml_parse(c.name, text, n, &yd, &top, &err) != JD_OK) {
        /* err.where is "<name>:<line>:<col>": take the position back out of it. */
        unsigned line = 1, col = 1;
        const char *p = strrchr(err.where, ':');
        if (p) {
            const char *q = p;
            while (q > err.where && q[-1] != ':') q--;
            if (q > err.where) sscanf(q, "%u:%u", &line, &col);
        }
        jrn__diag(&c, line, col, "not valid YAML: %s", err.msg);
        goto out;
    }
    if (!top || top->kind != JD_YAML_MAP) {
        jrn__diag(&c, top ? top->line : 1, top ? top->col : 1,
                  "a journey must be a map with id, entry and nodes, got %s", top ? jrn__yaml_kind(top) : "an empty document");
        goto out;
    }
    parse_top(&c, top);
    jrn__graph_check(&c);
    if (c.nerrors == 0) {
        *out = c.doc;
        c.doc = NULL;
        rc = JD_OK;
    }
out:
    if (c.nerrors > JRN_MAX_DIAGS) {
        char msg[96];
        snprintf(msg, sizeof msg, "too many errors: %zu more not shown", c.nerrors - JRN_MAX_DIAGS);
        diags_push(&c, UINT32_MAX, 0, "", msg);
        /* It sorts last; show a real position instead of the sort key. */
        snprintf(diags->v[diags->n - 1].where, sizeof diags->v[0].where, "%.100s", c.name);
    }
    diags_sort(&c);
    free(c.diag_key);
    free(c.edges);
    jd_map_destroy(c.ids);
    jd_yaml_free(yd);
    jrn_doc_destroy(c.doc);
    return rc;
}

/* ---- the compiled document ------------------------------------------------ */

void jrn_doc_destroy(jrn_doc *d)
{
    if (!d) return;
    free(d->id);
    free(d->name);
    free(d->description);
    free(d->source_name);
    free(d->entry.event);
    free(d->entry.segment);
    expr_prog_destroy(d->entry.when);
    for (uint32_t i = 0; i < d->nexits; i++) {
        free(d->exits[i].event);
        expr_prog_destroy(d->exits[i].when);
        free(d->exits[i].resume_event);
    }
    free(d->exits);
    free(d->goal.event);
    expr_prog_destroy(d->goal.when);
    for (uint32_t i = 0; i < d->nnodes; i++) jrn__node_release(&d->nodes[i]);
    free(d->nodes);
    free(d);
}

const jrn_node *jrn_doc_node(const jrn_doc *d, const char *id)
{
    for (uint32_t i = 0; i < d->nnodes; i++)
        if (strcmp(d->nodes[i].id, id) == 0) return &d->nodes[i];
    return NULL;
}
