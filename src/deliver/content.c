/* src/deliver/content.c -- message templates: a folder of YAML files, one
 * template each, compiled at start; dlv_render fills a dlv_msg from one.
 *
 *   id: welcome                 what a send node's `template:` names
 *   kind: email                 the channel kind it is for
 *   subject: "Hi {{ profile.traits.first_name }}"
 *   text: |                     every other key: a Liquid template (docs/templates.md)
 *     ...
 *
 * The fields a kind takes are one table (`fields`), the rules of each kind
 * another (`kinds`): which fields it needs and its default recipient.
 *
 * Positions. An error inside a field points into the YAML file. For a
 * literal block scalar (`|`) the template's line L, column C is the file's
 * line (header line + L), column (indent + C); for a one-line plain or
 * quoted scalar written exactly as its value (no escapes), line and column
 * are offset from the value's start. Anything else (folded `>`, escapes,
 * multi-line plain scalars) reports the field's own position plus the
 * template's "at L:C".
 *
 * Invariants:
 *  (1) A loaded set is immutable: dlv_render reads it and allocates only its
 *      own scratch and the strings it hands to the message, so any number of
 *      threads may render at once.
 *  (2) dlv_render changes m only on success (all fields rendered and checked
 *      first, then moved in).
 *  (3) No clock: `date: "now"` is the now_us passed in.
 *  (4) Template ids are unique in a set.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "deliver_int.h"
#include "journeyd/config.h"
#include "journeyd/limits.h"
#include "journeyd/template.h"

#define ID_MAX      64
#define DATA_MAX    100           /* keys in a push template's data */
#define FILE_MAX    (1u << 20)    /* bytes of one template file */

enum fid { F_TO, F_SUBJECT, F_TEXT, F_HTML, F_FROM, F_REPLY_TO, F_BODY, F_TITLE, F_BLOCKS, F_DATA, F__N };

#define KB(k) (1u << (k))
#define ALL_KINDS (KB(DLV_EMAIL) | KB(DLV_SMS) | KB(DLV_PUSH) | KB(DLV_SLACK) | KB(DLV_WEBHOOK))
#define FB(f) (1u << (f))

static const struct fdef {
    const char *name;
    unsigned    kinds;      /* KB() of the kinds that take it */
    bool        html;       /* rendered with HTML escaping */
    bool        trim;       /* surrounding whitespace removed after rendering */
} fields[F__N] = {
    [F_TO]       = { "to",       ALL_KINDS, false, true },
    [F_SUBJECT]  = { "subject",  KB(DLV_EMAIL), false, true },
    [F_TEXT]     = { "text",     KB(DLV_EMAIL) | KB(DLV_SLACK), false, false },
    [F_HTML]     = { "html",     KB(DLV_EMAIL), true, false },
    [F_FROM]     = { "from",     KB(DLV_EMAIL) | KB(DLV_SMS), false, true },
    [F_REPLY_TO] = { "reply_to", KB(DLV_EMAIL), false, true },
    [F_BODY]     = { "body",     KB(DLV_SMS) | KB(DLV_PUSH) | KB(DLV_WEBHOOK), false, true },
    [F_TITLE]    = { "title",    KB(DLV_PUSH), false, true },
    [F_BLOCKS]   = { "blocks",   KB(DLV_SLACK), false, true },
    [F_DATA]     = { "data",     KB(DLV_PUSH), false, true },
};

static const struct kdef {
    unsigned    need_all;     /* FB() of fields required */
    unsigned    need_any;     /* FB() of fields at least one of which is required */
    const char *any_text;     /* how to say need_any */
    const char *to_var;       /* the default recipient's variable; NULL: the channel's URL */
} kinds[DLV__KINDS] = {
    [DLV_EMAIL]   = { FB(F_SUBJECT), FB(F_TEXT) | FB(F_HTML), "text or html", "profile.traits.email" },
    [DLV_SMS]     = { FB(F_BODY), 0, NULL, "profile.traits.phone" },
    [DLV_PUSH]    = { 0, FB(F_TITLE) | FB(F_BODY) | FB(F_DATA), "title, body or data", "profile.traits.push_token" },
    [DLV_SLACK]   = { 0, FB(F_TEXT) | FB(F_BLOCKS), "text or blocks", NULL },
    [DLV_WEBHOOK] = { FB(F_BODY), 0, NULL, NULL },
};

enum { POS_NONE, POS_INLINE, POS_BLOCK };

/* One compiled field and how its positions map onto the file. */
struct field {
    tpl     *t;             /* NULL: absent */
    char    *name;          /* "subject", "data.url" */
    uint32_t line, col;     /* the value node */
    int      pos;           /* POS_* */
    uint32_t first_line;    /* POS_BLOCK: file line of the template's line 1 */
    uint32_t base_col;      /* POS_INLINE: file column of its first character; POS_BLOCK: indent */
};

struct dlv_template {
    char    *id, *path;
    dlv_kind kind;
    bool     to_default;            /* f[F_TO] is the kind's default recipient */
    struct field f[F__N];           /* f[F_DATA] unused: see data */
    struct field *data;             /* push data: one field per key (name "data.KEY") */
    size_t   ndata;
};

struct dlv_templates {
    dlv_template **v;
    size_t n;
    jd_map *by_id;                  /* id -> template (keys owned by the template) */
};

/* ---- errors and positions ------------------------------------------------ */

static int bad(jd_err *err, const char *file, uint32_t line, uint32_t col, int code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int bad(jd_err *err, const char *file, uint32_t line, uint32_t col, int code, const char *fmt, ...)
{
    char where[160], msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(where, sizeof where, "%s:%u:%u", file, line, col);
    return jd_err_set(err, code, where, "%s", msg);
}

static int bad_at(jd_err *err, const char *file, const jd_yaml_node *n, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bad_at(jd_err *err, const char *file, const jd_yaml_node *n, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bad(err, file, n->line, n->col, code, "%s", msg);
}

/* Reads "…:L:C" at the end of a template error's where. */
static bool inner_pos(const char *where, uint32_t *l, uint32_t *c)
{
    const char *c2 = strrchr(where, ':');
    if (!c2 || c2 == where) return false;
    const char *c1 = c2 - 1;
    while (c1 > where && *c1 != ':') c1--;
    if (*c1 != ':') return false;
    char *e1, *e2;
    unsigned long lv = strtoul(c1 + 1, &e1, 10), cv = strtoul(c2 + 1, &e2, 10);
    if (e1 != c2 || *e2 || lv == 0 || cv == 0) return false;
    *l = (uint32_t)lv;
    *c = (uint32_t)cv;
    return true;
}

/* A template error (te, where "NAME:L:C") as an error of the file: what
 * names the field ("subject", "template 'welcome' subject"). */
/* The file position of the template's (l, c); false when it does not map. */
static bool map_pos(const struct field *f, uint32_t l, uint32_t c, uint32_t *fl, uint32_t *fc)
{
    if (f->pos == POS_BLOCK) { *fl = f->first_line + l - 1; *fc = f->base_col + c; return true; }
    if (f->pos == POS_INLINE && l == 1) { *fl = f->line; *fc = f->base_col + c - 1; return true; }
    return false;
}

static int field_err(jd_err *err, const char *file, const struct field *f, const char *what, const jd_err *te)
{
    uint32_t l = 0, c = 0, fl, fc;
    if (!inner_pos(te->where, &l, &c)) return bad(err, file, f->line, f->col, te->code, "%s: %s", what, te->msg);
    if (!map_pos(f, l, c, &fl, &fc))
        return bad(err, file, f->line, f->col, te->code, "%s (at %u:%u of the template): %s", what, l, c, te->msg);
    /* a position inside the message ("... opened at 2:3") is the template's too */
    char msg[sizeof te->msg + 32];
    snprintf(msg, sizeof msg, "%s", te->msg);
    char *at = strstr(msg, " at ");
    unsigned ml, mc;
    int used = 0;
    while (at && !(sscanf(at, " at %u:%u%n", &ml, &mc, &used) == 2 && at[used] == '\0')) at = strstr(at + 1, " at ");
    uint32_t gl, gc;
    if (at && ml > 0 && mc > 0 && map_pos(f, ml, mc, &gl, &gc)) snprintf(at, sizeof msg - (size_t)(at - msg), " at %u:%u", gl, gc);
    return bad(err, file, fl, fc, te->code, "%s: %s", what, msg);
}

/* Byte offset of (line, col) in text (col in characters), or -1. */
static long offset_of(const char *text, size_t n, uint32_t line, uint32_t col)
{
    size_t i = 0;
    for (uint32_t l = 1; l < line; l++) {
        const char *nl = memchr(text + i, '\n', n - i);
        if (!nl) return -1;
        i = (size_t)(nl - text) + 1;
    }
    for (uint32_t c = 1; c < col && i < n; c++) {
        i++;
        while (i < n && ((unsigned char)text[i] & 0xC0) == 0x80) i++;
    }
    return i < n ? (long)i : -1;
}

/* Works out how f's template positions map onto the file (see the top). */
static void locate(struct field *f, const char *text, size_t n, const char *value)
{
    f->pos = POS_NONE;
    long off = offset_of(text, n, f->line, f->col);
    if (off < 0) return;
    const char *p = text + off, *end = text + n;
    size_t vl = strlen(value);
    if (*p == '|') {
        const char *q = p + 1;
        while (q < end && (*q == '-' || *q == '+')) q++;
        if (q < end && *q >= '1' && *q <= '9') return;   /* explicit indentation: not worth mapping */
        const char *nl = memchr(q, '\n', (size_t)(end - q));
        if (!nl) return;
        /* the indentation is the first non-blank content line's */
        uint32_t ln = f->line + 1;
        for (const char *s = nl + 1; s < end; ln++) {
            const char *e = memchr(s, '\n', (size_t)(end - s));
            if (!e) e = end;
            const char *t = s;
            while (t < e && *t == ' ') t++;
            if (t < e && *t != '\r') {
                f->pos = POS_BLOCK;
                f->first_line = f->line + 1;
                f->base_col = (uint32_t)(t - s);
                return;
            }
            s = e + 1;
        }
        return;
    }
    if (*p == '"' || *p == '\'') {
        if ((size_t)(end - p) > vl + 1 && memcmp(p + 1, value, vl) == 0 && p[vl + 1] == *p && !memchr(value, '\n', vl)) {
            f->pos = POS_INLINE;
            f->base_col = f->col + 1;
        }
        return;
    }
    if (*p != '>' && (size_t)(end - p) >= vl && memcmp(p, value, vl) == 0 && !memchr(value, '\n', vl)) {
        f->pos = POS_INLINE;
        f->base_col = f->col;
    }
}

/* ---- loading one file ---------------------------------------------------- */

static void field_release(struct field *f)
{
    tpl_destroy(f->t);
    free(f->name);
}

static void template_destroy(dlv_template *t)
{
    if (!t) return;
    for (int i = 0; i < F__N; i++) field_release(&t->f[i]);
    for (size_t i = 0; i < t->ndata; i++) field_release(&t->data[i]);
    free(t->data);
    free(t->id);
    free(t->path);
    free(t);
}

/* Compiles the template src into f (positions from the node at, or the
 * document's start for a built-in default). */
static int compile_field(struct field *f, const char *name, const char *path, const char *src, const jd_yaml_node *at,
                         const char *text, size_t n, jd_err *err)
{
    f->name = jd_xstrdup(name);
    f->line = at ? at->line : 1;
    f->col = at ? at->col : 1;
    if (at) locate(f, text, n, src);
    char tname[128];
    snprintf(tname, sizeof tname, "%s", name);
    jd_err te;
    jd_err_clear(&te);
    int rc = tpl_compile(tname, src, strlen(src), NULL, &f->t, &te);
    if (rc != JD_OK) return field_err(err, path, f, name, &te);
    return JD_OK;
}

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ID_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return true;
}

/* "an email", "an sms", "a push", ... */
static const char *a_kind(dlv_kind k)
{
    static const char *const s[DLV__KINDS] = { "an email", "an sms", "a push", "a slack", "a webhook" };
    return (unsigned)k < DLV__KINDS ? s[k] : "a";
}

static void allowed_list(dlv_kind k, char *out, size_t n)
{
    size_t o = (size_t)snprintf(out, n, "id, kind");
    for (int i = 0; i < F__N && o < n; i++)
        if (fields[i].kinds & KB(k)) o += (size_t)snprintf(out + o, n - o, ", %s", fields[i].name);
}

static int parse_data(dlv_template *t, const jd_yaml_node *v, const char *text, size_t n, jd_err *err)
{
    if (v->kind != JD_YAML_MAP)
        return bad_at(err, t->path, v, JD_EINVAL, "data: expected a map of KEY: template, like { url: \"https://...\" }");
    for (const jd_yaml_node *k = v->child; k; k = k->next) {
        if (t->ndata == DATA_MAX) return bad_at(err, t->path, k, JD_ELIMIT, "data: more than %d keys", DATA_MAX);
        if (!*k->text) return bad_at(err, t->path, k, JD_EINVAL, "data: a key must not be empty");
        for (size_t i = 0; i < t->ndata; i++)
            if (strcmp(t->data[i].name + 5, k->text) == 0)
                return bad_at(err, t->path, k, JD_EINVAL, "data.%.64s: given twice", k->text);
        char name[96];
        snprintf(name, sizeof name, "data.%.80s", k->text);
        if (k->value->kind != JD_YAML_SCALAR)
            return bad_at(err, t->path, k->value, JD_EINVAL, "%s: expected a template (text)", name);
        t->data = jd_xrealloc(t->data, (t->ndata + 1) * sizeof *t->data);
        memset(&t->data[t->ndata], 0, sizeof *t->data);
        int rc = compile_field(&t->data[t->ndata++], name, t->path, k->value->text, k->value, text, n, err);
        if (rc != JD_OK) return rc;
    }
    return JD_OK;
}

/* Parses and compiles one template file. JD_OK: *out owned. */
static int template_load(const char *path, const char *text, size_t n, dlv_template **out, jd_err *err)
{
    *out = NULL;
    jd_yaml_doc *doc = NULL;
    const jd_yaml_node *root = NULL;
    dlv_template *t = jd_xcalloc(1, sizeof *t);
    t->path = jd_xstrdup(path);
    int rc = jd_yaml_parse(path, text, n, &doc, &root, err);
    if (rc != JD_OK) goto out;
    rc = JD_EINVAL;
    if (!root || root->kind != JD_YAML_MAP) {
        bad(err, path, root ? root->line : 1, root ? root->col : 1, JD_EINVAL,
            "expected a map like { id: welcome, kind: email, subject: ..., text: ... }");
        goto out;
    }
    const jd_yaml_node *id = jd_yaml_get(root, "id"), *kind = jd_yaml_get(root, "kind");
    if (!id) { bad_at(err, path, root, JD_EINVAL, "id: required (what send nodes name: template: ID)"); goto out; }
    if (id->kind != JD_YAML_SCALAR || !id_ok(id->text)) {
        bad_at(err, path, id, JD_EINVAL, "id: expected 1 to 64 letters, digits, _ or -");
        goto out;
    }
    t->id = jd_xstrdup(id->text);
    if (!kind) { bad_at(err, path, root, JD_EINVAL, "kind: required (email, sms, push, slack or webhook)"); goto out; }
    if (kind->kind != JD_YAML_SCALAR || dlv_kind_parse(kind->text, &t->kind) != JD_OK) {
        bad_at(err, path, kind, JD_EINVAL, "kind: expected email, sms, push, slack or webhook, got '%.64s'",
               kind->kind == JD_YAML_SCALAR ? kind->text : "(not a single value)");
        goto out;
    }
    unsigned have = 0;
    for (const jd_yaml_node *k = root->child; k; k = k->next) {
        if (strcmp(k->text, "id") == 0 || strcmp(k->text, "kind") == 0) continue;
        int fi = 0;
        while (fi < F__N && strcmp(fields[fi].name, k->text) != 0) fi++;
        if (fi == F__N || !(fields[fi].kinds & KB(t->kind))) {
            char list[200];
            allowed_list(t->kind, list, sizeof list);
            bad_at(err, path, k, JD_EINVAL, "%.64s: unknown field for %s template (%s)", k->text, a_kind(t->kind), list);
            goto out;
        }
        if (have & FB(fi)) { bad_at(err, path, k, JD_EINVAL, "%s: given twice", k->text); goto out; }
        have |= FB(fi);
        if (fi == F_DATA) {
            rc = parse_data(t, k->value, text, n, err);
            if (rc != JD_OK) goto out;
            rc = JD_EINVAL;
            continue;
        }
        const jd_yaml_node *v = k->value;
        if (v->kind != JD_YAML_SCALAR) { bad_at(err, path, v, JD_EINVAL, "%s: expected a template (text)", k->text); goto out; }
        if (!*v->text) { bad_at(err, path, v, JD_EINVAL, "%s: must not be empty", k->text); goto out; }
        rc = compile_field(&t->f[fi], k->text, path, v->text, v, text, n, err);
        if (rc != JD_OK) goto out;
        rc = JD_EINVAL;
    }
    const struct kdef *kd = &kinds[t->kind];
    for (int fi = 0; fi < F__N; fi++)
        if ((kd->need_all & FB(fi)) && !(have & FB(fi))) {
            bad_at(err, path, root, JD_EINVAL, "%s: required in %s template", fields[fi].name, a_kind(t->kind));
            goto out;
        }
    if (kd->need_any && !(have & kd->need_any)) {
        bad_at(err, path, root, JD_EINVAL, "%s: %s template needs at least one of them", kd->any_text, a_kind(t->kind));
        goto out;
    }
    if (!(have & FB(F_TO)) && kd->to_var) {
        char src[96];
        snprintf(src, sizeof src, "{{ %s }}", kd->to_var);
        rc = compile_field(&t->f[F_TO], "to", path, src, NULL, text, n, err);
        if (rc != JD_OK) goto out;
        t->to_default = true;
    }
    rc = JD_OK;
out:
    jd_yaml_free(doc);
    if (rc != JD_OK) {
        template_destroy(t);
        t = NULL;
    }
    *out = t;
    return rc;
}

/* ---- the folder ---------------------------------------------------------- */

void dlv_templates_destroy(dlv_templates *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) template_destroy(s->v[i]);
    free(s->v);
    jd_map_destroy(s->by_id);
    free(s);
}

static void diag(jd_buf *diags, const jd_err *e)
{
    if (diags) jd_buf_addf(diags, "%s: error: %s\n", e->where, e->msg);
}

static bool is_yaml_name(const char *nm)
{
    size_t len = strlen(nm);
    return nm[0] != '.' && ((len > 5 && strcmp(nm + len - 5, ".yaml") == 0) || (len > 4 && strcmp(nm + len - 4, ".yml") == 0));
}

int dlv_templates_load_all(const char *dir, dlv_templates **out, jd_buf *diags, jd_err *err)
{
    *out = NULL;
    dlv_templates *s = jd_xcalloc(1, sizeof *s);
    s->by_id = jd_map_create(16);
    struct dirent **names = NULL;
    int count = scandir(dir, &names, NULL, alphasort);
    int rc = JD_OK;
    bool first = true;
    jd_err e;
    for (int i = 0; i < count; i++) {
        const char *nm = names[i]->d_name;
        if (!is_yaml_name(nm)) continue;
        char *path = jd_strfmt("%s/%s", dir, nm), *text = NULL;
        size_t n = 0;
        dlv_template *t = NULL;
        jd_err_clear(&e);
        int frc = jd_read_file(path, FILE_MAX, &text, &n, &e);
        if (frc == JD_OK && s->n == DLV_MAX_TEMPLATES)
            frc = bad(&e, path, 1, 1, JD_ELIMIT, "more than %d templates in %s", DLV_MAX_TEMPLATES, dir);
        if (frc == JD_OK) frc = template_load(path, text, n, &t, &e);
        if (frc == JD_OK) {
            dlv_template *other = jd_map_get(s->by_id, t->id, strlen(t->id));
            if (other) {   /* (4) */
                frc = bad(&e, path, 1, 1, JD_EINVAL, "id: '%s' is also the id of %s", t->id, other->path);
                /* point at the id itself */
                jd_yaml_doc *doc = NULL;
                const jd_yaml_node *root = NULL;
                jd_err ignore;
                if (jd_yaml_parse(path, text, n, &doc, &root, &ignore) == JD_OK && root) {
                    const jd_yaml_node *id = jd_yaml_get(root, "id");
                    if (id) bad_at(&e, path, id, JD_EINVAL, "id: '%s' is also the id of %s", t->id, other->path);
                }
                jd_yaml_free(doc);
                template_destroy(t);
                t = NULL;
            }
        }
        if (frc == JD_OK) {
            s->v = jd_xrealloc(s->v, (s->n + 1) * sizeof *s->v);
            s->v[s->n++] = t;
            jd_map_put(s->by_id, t->id, strlen(t->id), t);
        } else {
            if (first && err) *err = e;
            if (first) rc = frc;
            first = false;
            diag(diags, &e);
        }
        free(text);
        free(path);
    }
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
    if (rc != JD_OK) {
        dlv_templates_destroy(s);
        return rc;
    }
    *out = s;
    return JD_OK;
}

int dlv_templates_load(const char *dir, dlv_templates **out, jd_err *err)
{
    return dlv_templates_load_all(dir, out, NULL, err);
}

const dlv_template *dlv_templates_find(const dlv_templates *s, const char *id)
{
    return s && id ? jd_map_get(s->by_id, id, strlen(id)) : NULL;
}

size_t dlv_templates_count(const dlv_templates *s) { return s ? s->n : 0; }
const dlv_template *dlv_templates_at(const dlv_templates *s, size_t i) { return s && i < s->n ? s->v[i] : NULL; }
dlv_kind dlv_template_kind(const dlv_template *t) { return t->kind; }
const char *dlv_template_id(const dlv_template *t) { return t->id; }
const char *dlv_template_path(const dlv_template *t) { return t->path; }

/* ---- rendering ----------------------------------------------------------- */

static char *trimmed(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) { s++; n--; }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    return jd_xstrndup(s, n);
}

/* Renders one field into a new string (*out owned). */
static int render_field(const dlv_template *t, const struct field *f, bool html, bool trim, struct json_object *vars,
                        tpl_render_opts *o, char **out, jd_err *err)
{
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);   /* the render's own ceiling is o->max_output */
    jd_err te;
    jd_err_clear(&te);
    o->html = html;
    int rc = tpl_render(f->t, vars, o, &b, &te);
    if (rc != JD_OK) {
        char what[160];
        snprintf(what, sizeof what, "template '%s' %s", t->id, f->name);
        jd_buf_release(&b);
        return field_err(err, t->path, f, what, &te);
    }
    *out = trim ? trimmed(b.data ? b.data : "", b.len) : jd_xstrndup(b.data ? b.data : "", b.len);
    jd_buf_release(&b);
    return JD_OK;
}

/* JD_OK if s is one JSON value of the type want (json_type_null: any). */
static int json_check(const dlv_template *t, const struct field *f, const char *s, enum json_type want, jd_err *err)
{
    struct json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    size_t n = strlen(s);
    struct json_object *o = json_tokener_parse_ex(tok, s, (int)n);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t at = tok->char_offset;
    int rc = JD_OK;
    if (!o || je != json_tokener_success || at != n) {
        const char *why = je != json_tokener_success && je != json_tokener_continue ? json_tokener_error_desc(je)
                          : at != n ? "text after the JSON value" : "unexpected end of the text";
        rc = bad(err, t->path, f->line, f->col, JD_EINVAL, "template '%s' %s: rendered text is not valid JSON (%s at byte %zu)",
                 t->id, f->name, why, at);
    } else if (want != json_type_null && !json_object_is_type(o, want)) {
        rc = bad(err, t->path, f->line, f->col, JD_EINVAL, "template '%s' %s: rendered JSON is not %s", t->id, f->name,
                 want == json_type_array ? "an array" : "an object");
    }
    json_object_put(o);
    json_tokener_free(tok);
    return rc;
}

int dlv_render(const dlv_template *t, struct json_object *vars, int64_t now_us, dlv_msg *m, jd_err *err)
{
    if (m->kind != t->kind)
        return bad(err, t->path, 1, 1, JD_EINVAL, "template '%s' is for %s, the message is %s", t->id,
                   dlv_kind_name(t->kind), dlv_kind_name(m->kind) ? dlv_kind_name(m->kind) : "?");
    char *s[F__N] = { 0 };
    char *data_json = NULL;
    tpl_scratch *sc = tpl_scratch_create(0);   /* (1): one per call, shared by its fields */
    tpl_render_opts o = { .has_now = true, .now_us = now_us, .scratch = sc };
    int rc = JD_OK;
    for (int fi = 0; fi < F__N && rc == JD_OK; fi++) {
        if (!t->f[fi].t || (fi == F_TO && m->to)) continue;
        rc = render_field(t, &t->f[fi], fields[fi].html, fields[fi].trim, vars, &o, &s[fi], err);
    }
    if (rc != JD_OK) goto out;
    if (t->ndata) {
        struct json_object *d = json_object_new_object();
        for (size_t i = 0; i < t->ndata && rc == JD_OK; i++) {
            char *v = NULL;
            rc = render_field(t, &t->data[i], false, true, vars, &o, &v, err);
            if (rc == JD_OK) json_object_object_add(d, t->data[i].name + 5, json_object_new_string(v));
            free(v);
        }
        if (rc == JD_OK)
            data_json = jd_xstrdup(json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(d);
        if (rc != JD_OK) goto out;
    }
    if (s[F_TO] && !*s[F_TO]) {
        if (t->kind == DLV_SLACK || t->kind == DLV_WEBHOOK) {   /* an empty override: the channel's URL */
            free(s[F_TO]);
            s[F_TO] = NULL;
        } else if (t->to_default) {
            rc = bad(err, t->path, 1, 1, JD_EINVAL, "no recipient: %s is empty", kinds[t->kind].to_var);
            goto out;
        } else {
            rc = bad(err, t->path, t->f[F_TO].line, t->f[F_TO].col, JD_EINVAL,
                     "no recipient: template '%s' to rendered empty", t->id);
            goto out;
        }
    }
    if (t->kind == DLV_WEBHOOK && (rc = json_check(t, &t->f[F_BODY], s[F_BODY], json_type_null, err)) != JD_OK) goto out;
    if (s[F_BLOCKS] && (rc = json_check(t, &t->f[F_BLOCKS], s[F_BLOCKS], json_type_array, err)) != JD_OK) goto out;

    /* (2): everything rendered; hand the strings to m */
#define GIVE(dst, fi) do { if (s[fi]) { free(dst); dst = s[fi]; s[fi] = NULL; } } while (0)
    if (s[F_TO]) GIVE(m->to, F_TO);
    switch (t->kind) {
    case DLV_EMAIL:
        GIVE(m->email.subject, F_SUBJECT);
        GIVE(m->email.text, F_TEXT);
        GIVE(m->email.html, F_HTML);
        GIVE(m->email.from, F_FROM);
        GIVE(m->email.reply_to, F_REPLY_TO);
        break;
    case DLV_SMS:
        GIVE(m->sms.body, F_BODY);
        GIVE(m->sms.from, F_FROM);
        break;
    case DLV_PUSH:
        GIVE(m->push.title, F_TITLE);
        GIVE(m->push.body, F_BODY);
        if (data_json) {
            free(m->push.data_json);
            m->push.data_json = data_json;
            data_json = NULL;
        }
        break;
    case DLV_SLACK:
        GIVE(m->slack.text, F_TEXT);
        GIVE(m->slack.blocks_json, F_BLOCKS);
        break;
    case DLV_WEBHOOK:
        GIVE(m->webhook.body_json, F_BODY);
        break;
    default: JD_ASSERT(0);
    }
#undef GIVE
out:
    for (int fi = 0; fi < F__N; fi++) free(s[fi]);
    free(data_json);
    tpl_scratch_destroy(sc);
    return rc;
}
