/* fuzz/journey_parse.c -- libFuzzer harness for jrn_doc_parse (and to_json).
 *
 * Input: a journey document, YAML or JSON. Whatever the bytes, jrn_doc_parse
 * must not crash, leak or hit undefined behaviour, and:
 *  - JD_OK comes with a document and no diagnostic; JD_EINVAL with at least one
 *    diagnostic and no document;
 *  - every diagnostic names the file with a line:col of at least 1:1 (the
 *    "too many errors" line names only the file) and a non-empty message;
 *  - an accepted document's edges all point at nodes; its canonical JSON parses
 *    back into a document whose JSON is the same bytes.
 * Corpus: fuzz/corpus/journey_parse/ (the shipped journeys and golden cases).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/journey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

static void check_next(const jrn_doc *d, uint32_t next, bool may_be_none)
{
    CHECK(next < d->nnodes || (may_be_none && next == JRN_NONE));
}

static void check_doc(const jrn_doc *d)
{
    CHECK(d->nnodes > 0 && d->start < d->nnodes);
    for (uint32_t i = 0; i < d->nnodes; i++) {
        const jrn_node *n = &d->nodes[i];
        CHECK(n->index == i && n->id && jrn_doc_node(d, n->id) == n);
        check_next(d, n->next, true);
        if (n->kind == JRN_WAIT && n->u.wait.kind == JRN_WAIT_EVENT && n->u.wait.timeout_us)
            check_next(d, n->u.wait.timeout_next, false);
        if (n->kind == JRN_BRANCH) {
            for (uint32_t k = 0; k < n->u.branch.narms; k++) check_next(d, n->u.branch.arms[k].next, false);
            check_next(d, n->u.branch.else_next, true);
        }
        if (n->kind == JRN_SPLIT) {
            uint32_t total = 0;
            for (uint32_t k = 0; k < n->u.split.nvariants; k++) {
                check_next(d, n->u.split.variants[k].next, true);
                total += n->u.split.variants[k].weight;
            }
            CHECK(total == n->u.split.total_weight && total > 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jrn_diags diags = { 0 };
    jrn_doc *doc = NULL;
    int rc = jrn_doc_parse("f.yaml", (const char *)data, size, NULL, &doc, &diags);
    if (rc == JD_OK) {
        CHECK(doc && diags.n == 0);
        check_doc(doc);
        jd_buf a, b;
        jd_buf_init(&a, 1u << 24);
        jd_buf_init(&b, 1u << 24);
        CHECK(jrn_doc_to_json(doc, &a) == JD_OK);
        jrn_doc *again = NULL;
        jrn_diags d2 = { 0 };
        if (jrn_doc_parse("f.json", a.data, a.len, NULL, &again, &d2) != JD_OK) {
            jd_buf t;
            jd_buf_init(&t, 1u << 20);
            jrn_diags_format(&d2, &t);
            fprintf(stderr, "canonical JSON refused:\n%s\n%s", a.data, t.data ? t.data : "");
            abort();
        }
        CHECK(jrn_doc_to_json(again, &b) == JD_OK);
        CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
        jrn_doc_destroy(again);
        jrn_diags_release(&d2);
        jd_buf_release(&a);
        jd_buf_release(&b);
    } else {
        CHECK(rc == JD_EINVAL && !doc && diags.n > 0);
        for (size_t i = 0; i < diags.n; i++) {
            const jrn_diag *g = &diags.v[i];
            CHECK(g->msg[0]);
            unsigned l = 0, c = 0;
            if (strncmp(g->msg, "too many errors", 15) == 0)
                CHECK(strcmp(g->where, "f.yaml") == 0);
            else
                CHECK(sscanf(g->where, "f.yaml:%u:%u", &l, &c) == 2 && l >= 1 && c >= 1);
        }
        jd_buf t;
        jd_buf_init(&t, 1u << 24);
        jrn_diags_format(&diags, &t);
        jd_buf_release(&t);
    }
    jrn_doc_destroy(doc);
    jrn_diags_release(&diags);
    return 0;
}
