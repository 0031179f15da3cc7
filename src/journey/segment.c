/*
** src/journey/segment.c -- segment documents: `id`, `name`, `description`,
** `when` (a CEL condition over the profile), parsed and compiled once.
**
**   id: churn-risk
**   name: Churn risk
**   when: days_since(timestamp(profile.last_seen)) >= 14 && profile.traits.plan != "free"
**
** Problems are reported all at once like journey documents (jrn_diags, with
** file:line:col). `event` is not bound in a segment: membership is a property
** of the person, not of one event.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/runtime.h"
#include "journey_int.h"

static void diag(jrn_diags *d, const char *name, uint32_t line, uint32_t col, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void diag(jrn_diags *d, const char *name, uint32_t line, uint32_t col, const char *id, const char *fmt, ...)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->v = jd_xrealloc(d->v, d->cap * sizeof *d->v);
    }
    jrn_diag *g = &d->v[d->n++];
    memset(g, 0, sizeof *g);
    snprintf(g->where, sizeof g->where, "%s:%u:%u", name, line ? line : 1, col ? col : 1);
    snprintf(g->node, sizeof g->node, "%s", id ? id : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->msg, sizeof g->msg, fmt, ap);
    va_end(ap);
}

static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_')) return false;
    return true;
}

void jrn_segment_destroy(jrn_segment *s)
{
    if (!s) return;
    expr_prog_destroy(s->when);
    free(s->id);
    free(s->name);
    free(s->text);
    free(s);
}

int jrn_segment_parse(const char *name, const char *text, size_t n, jrn_segment **out, jrn_diags *diags)
{
    static const char *const keys[] = { "id", "name", "description", "when" };
    *out = NULL;
    size_t before = diags->n;
    jd_err err;
    jd_yaml_doc *doc = NULL;
    const jd_yaml_node *root = NULL;
    if (jd_yaml_parse(name, text, n, &doc, &root, &err) != JD_OK) {
        diag(diags, name, 1, 1, NULL, "%s%s%s", err.where[0] ? err.where : "", err.where[0] ? ": " : "", err.msg);
        goto out;
    }
    if (!root || root->kind != JD_YAML_MAP) {
        diag(diags, name, root ? root->line : 1, root ? root->col : 1, NULL, "a segment is a map with id and when");
        goto out;
    }
    for (const jd_yaml_node *k = root->child; k; k = k->next) {
        bool known = false;
        for (size_t i = 0; i < JD_ARRAY_LEN(keys); i++) known |= strcmp(k->text, keys[i]) == 0;
        if (!known) diag(diags, name, k->line, k->col, NULL, "unknown field '%s' in a segment (expected id, name, description, when)", k->text);
    }
    const jd_yaml_node *id = jd_yaml_get(root, "id"), *when = jd_yaml_get(root, "when"), *nm = jd_yaml_get(root, "name");
    const char *sid = id && id->kind == JD_YAML_SCALAR ? id->text : NULL;
    if (!sid || !valid_id(sid))
        diag(diags, name, id ? id->line : root->line, id ? id->col : root->col, NULL, "id is required: [a-z0-9_-]{1,64}");
    expr_prog *prog = NULL;
    if (!when || when->kind != JD_YAML_SCALAR) {
        diag(diags, name, root->line, root->col, sid, "when is required: a condition over the profile");
    } else {
        expr_decls *d = expr_decls_create();
        expr_decls_var(d, "profile", EXPR_MAP, EXPR_DYN);
        expr_decls_var(d, "now", EXPR_TIMESTAMP, EXPR_DYN);
        jd_err e;
        jd_err_clear(&e);
        if (expr_compile(when->text, strlen(when->text), d, &prog, &e) != JD_OK) {
            /* The expression's own line:col, counted from the value's start. */
            unsigned l = 1, c = 1;
            sscanf(e.where, "%u:%u", &l, &c);
            diag(diags, name, when->line + l - 1, l == 1 ? when->col + c - 1 : c, sid, "when: %s", e.msg);
        } else if (expr_prog_kind(prog) != EXPR_BOOL && expr_prog_kind(prog) != EXPR_DYN) {
            diag(diags, name, when->line, when->col, sid, "when must be a condition (bool), not %s",
                 expr_kind_name(expr_prog_kind(prog)));
        }
        expr_decls_destroy(d);
    }
    if (diags->n == before) {
        jrn_segment *s = jd_xcalloc(1, sizeof *s);
        s->id = jd_xstrdup(sid);
        s->name = jd_xstrdup(nm && nm->kind == JD_YAML_SCALAR ? nm->text : sid);
        s->text = jd_xstrndup(text, n);
        s->when = prog;
        s->uses_now = expr_prog_reads_now(prog);
        prog = NULL;
        *out = s;
    }
    expr_prog_destroy(prog);
out:
    jd_yaml_free(doc);
    return *out ? JD_OK : JD_EINVAL;
}
