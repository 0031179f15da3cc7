/* src/base/yaml.c -- a YAML document as a tree of nodes that remember where they
 * were written, built from libyaml's event stream.
 *
 * Invariants:
 *  (1) Every node and string is carved from the document's own allocations and
 *      freed by jd_yaml_free; callers never free a node.
 *  (2) A map's children are key nodes (kind SCALAR) whose `value` is the value
 *      node; sequences' children are the items.
 *  (3) Anchors and aliases are refused: journey and config files have no use for
 *      them, and aliases are the "billion laughs" door.
 */
#include "journeyd/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct chunk { struct chunk *next; } chunk;   /* allocation list, freed together */

struct jd_yaml_doc {
    chunk *allocs;
    const jd_yaml_node *root;
};

static void *doc_alloc(jd_yaml_doc *d, size_t n)
{
    chunk *c = jd_xcalloc(1, sizeof(chunk) + n);
    c->next = d->allocs;
    d->allocs = c;
    return c + 1;
}

static jd_yaml_node *new_node(jd_yaml_doc *d, jd_yaml_kind k, const yaml_mark_t *m)
{
    jd_yaml_node *n = doc_alloc(d, sizeof *n);
    n->kind = k;
    n->line = (uint32_t)m->line + 1;
    n->col = (uint32_t)m->column + 1;
    return n;
}

static char *doc_strdup(jd_yaml_doc *d, const char *s, size_t n)
{
    char *p = doc_alloc(d, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

enum { MAX_DEPTH = 64 };

static int where(jd_err *err, const char *name, const yaml_mark_t *m, const char *msg)
{
    char w[96];
    snprintf(w, sizeof w, "%s:%zu:%zu", name, m->line + 1, m->column + 1);
    return jd_err_set(err, JD_EINVAL, w, "%s", msg);
}

/* Parses one node starting with event ev (already taken); recursive, depth-bounded. */
static int parse_node(yaml_parser_t *p, yaml_event_t *ev, jd_yaml_doc *d, const char *name,
                      int depth, jd_yaml_node **out, jd_err *err)
{
    if (depth > MAX_DEPTH) return where(err, name, &ev->start_mark, "document nested too deeply");
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return where(err, name, &ev->start_mark, "aliases are not supported");
    case YAML_SCALAR_EVENT: {
        if (ev->data.scalar.anchor) return where(err, name, &ev->start_mark, "anchors are not supported");
        jd_yaml_node *n = new_node(d, JD_YAML_SCALAR, &ev->start_mark);
        n->text = doc_strdup(d, (const char *)ev->data.scalar.value, ev->data.scalar.length);
        n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        *out = n;
        return JD_OK;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool is_map = ev->type == YAML_MAPPING_START_EVENT;
        if ((is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor))
            return where(err, name, &ev->start_mark, "anchors are not supported");
        jd_yaml_node *n = new_node(d, is_map ? JD_YAML_MAP : JD_YAML_SEQ, &ev->start_mark);
        jd_yaml_node **tail = &n->child;
        for (;;) {
            yaml_event_t e;
            if (!yaml_parser_parse(p, &e)) return where(err, name, &p->problem_mark, p->problem);
            if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&e);
                break;
            }
            jd_yaml_node *item = NULL;
            int rc = parse_node(p, &e, d, name, depth + 1, &item, err);
            yaml_event_delete(&e);
            if (rc != JD_OK) return rc;
            if (is_map) {
                if (item->kind != JD_YAML_SCALAR) {
                    yaml_mark_t m = { 0, item->line - 1, item->col - 1 };
                    return where(err, name, &m, "a key must be a plain value");
                }
                for (jd_yaml_node *k = n->child; k; k = k->next)
                    if (strcmp(k->text, item->text) == 0) {
                        yaml_mark_t m = { 0, item->line - 1, item->col - 1 };
                        char msg[160];
                        snprintf(msg, sizeof msg, "duplicate key '%.100s'", item->text);
                        return where(err, name, &m, msg);
                    }
                yaml_event_t v;
                if (!yaml_parser_parse(p, &v)) return where(err, name, &p->problem_mark, p->problem);
                rc = parse_node(p, &v, d, name, depth + 1, &item->value, err);
                yaml_event_delete(&v);
                if (rc != JD_OK) return rc;
            }
            *tail = item;
            tail = &item->next;
        }
        *out = n;
        return JD_OK;
    }
    default:
        return where(err, name, &ev->start_mark, "unexpected YAML event");
    }
}

int jd_yaml_parse(const char *name, const char *text, size_t n, jd_yaml_doc **out,
                  const jd_yaml_node **root, jd_err *err)
{
    int rc = JD_EINVAL;
    yaml_parser_t p;
    jd_yaml_doc *d = jd_xcalloc(1, sizeof *d);
    jd_yaml_node *top = NULL;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, n);
    for (;;) {
        yaml_event_t e;
        if (!yaml_parser_parse(&p, &e)) { rc = where(err, name, &p.problem_mark, p.problem); goto out; }
        yaml_event_type_t t = e.type;
        if (t == YAML_STREAM_END_EVENT) { yaml_event_delete(&e); break; }
        if (t == YAML_DOCUMENT_START_EVENT && top) {
            rc = where(err, name, &e.start_mark, "only one document is allowed");
            yaml_event_delete(&e);
            goto out;
        }
        if (t == YAML_SCALAR_EVENT || t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT ||
            t == YAML_ALIAS_EVENT) {
            rc = parse_node(&p, &e, d, name, 0, &top, err);
            yaml_event_delete(&e);
            if (rc != JD_OK) goto out;
            continue;
        }
        yaml_event_delete(&e);
    }
    d->root = top;
    *root = top;
    *out = d;
    d = NULL;
    rc = JD_OK;
out:
    yaml_parser_delete(&p);
    jd_yaml_free(d);
    return rc;
}

void jd_yaml_free(jd_yaml_doc *d)
{
    if (!d) return;
    for (chunk *c = d->allocs, *nx; c; c = nx) {
        nx = c->next;
        free(c);
    }
    free(d);
}

const jd_yaml_node *jd_yaml_get(const jd_yaml_node *map, const char *key)
{
    if (!map || map->kind != JD_YAML_MAP) return NULL;
    for (const jd_yaml_node *k = map->child; k; k = k->next)
        if (strcmp(k->text, key) == 0) return k->value;
    return NULL;
}
