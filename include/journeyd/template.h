/* include/journeyd/template.h -- message templates: Liquid (shopify.github.io/liquid).
 *
 * Owns: parsing and compiling a Liquid template once (at publish time) into an
 * immutable tree, and rendering it many times against a JSON object whose
 * top-level keys are the variables (profile, event, journey, message: delivery
 * passes them). Shopify's Ruby implementation is the reference for semantics;
 * what is supported, the deliberate choices (HTML escaping, errors, money) and
 * what is not supported yet are in docs/templates.md.
 * Threading: a compiled tpl is immutable and may be rendered from any number of
 * threads at once; a tpl_scratch and the vars object belong to one render.
 * Pure: rendering reads no clock (`date: "now"` takes the time from
 * tpl_render_opts.now_us), does no I/O, and allocates nothing per node beyond
 * the output buffer and the scratch arena (which a caller can reuse).
 * Not here: where the variables come from, sending, subject lines vs bodies.
 */
#ifndef JOURNEYD_TEMPLATE_H
#define JOURNEYD_TEMPLATE_H

#include "journeyd/base.h"

struct json_object;   /* json-c */

typedef struct tpl tpl;                 /* opaque, immutable once compiled */
typedef struct tpl_scratch tpl_scratch; /* opaque: render-time memory, reusable */

/* Compile-time limits; zero fields take the defaults of limits.h. */
typedef struct tpl_opts {
    size_t   max_source;   /* bytes of source (JD_TPL_MAX_SOURCE) */
    uint32_t max_depth;    /* nesting of blocks and brackets (JD_TPL_MAX_DEPTH) */
} tpl_opts;

/* Parses and compiles src (n bytes, need not be NUL-terminated). `name` is
 * the file or template name used in errors (borrowed for the call).
 * JD_OK: *out is owned (tpl_destroy). JD_EINVAL: err->where is
 * "NAME:LINE:COL" (1-based; columns count characters) of the first error and
 * err->msg says what was expected, e.g. "expected 'endif' to close 'if' at 3:1"
 * or "unknown filter 'upcas'". JD_ELIMIT: a limit (named in msg) was passed.
 * Unknown filters, wrong filter argument counts and unknown tags are compile
 * errors (Liquid's strict mode), so they surface at publish time. */
int  tpl_compile(const char *name, const char *src, size_t n, const tpl_opts *o, tpl **out, jd_err *err);
void tpl_destroy(tpl *t);
const char *tpl_name(const tpl *t);

/* How to render. Zero-initialise, then set what you need. */
typedef struct tpl_render_opts {
    bool        html;           /* escape every {{ }} output for HTML (docs/templates.md) */
    bool        has_now;        /* now_us is set: `date` of "now"/"today" uses it */
    int64_t     now_us;         /* the record's time (us since the epoch), never the wall clock */
    const char *currency;       /* ISO 4217 code for `money` without an argument; NULL: "USD" */
    size_t      max_output;     /* bytes this render may add to out (0: JD_TPL_MAX_OUTPUT) */
    uint64_t    max_iterations; /* for-loop iterations per render (0: JD_TPL_MAX_ITERATIONS) */
    tpl_scratch *scratch;       /* reused memory (NULL: one is made and freed for the call) */
} tpl_render_opts;

/* Renders t against vars (a JSON object, borrowed; NULL: no variables) and
 * appends the text to out. o may be NULL (all defaults: not HTML, no `now`).
 * JD_OK on success. On failure out is truncated back to its length at the
 * call and JD_EINVAL (a runtime error: "divided by 0", "comparison of string
 * with integer failed", `date: "now"` without a time) or JD_ELIMIT (output,
 * iterations or scratch past their limit, named in msg) is returned with
 * err->where "NAME:LINE:COL" of the tag or output that failed. Any thread. */
int tpl_render(const tpl *t, struct json_object *vars, const tpl_render_opts *o, jd_buf *out, jd_err *err);

/* Scratch memory for renders (strings made by filters, captures, assigned
 * lists): an arena reset at the start of each render that keeps its memory,
 * so steady-state renders allocate nothing. max_bytes 0: JD_TPL_MAX_SCRATCH.
 * Returns owned (tpl_scratch_destroy). One render at a time. */
tpl_scratch *tpl_scratch_create(size_t max_bytes);
void tpl_scratch_destroy(tpl_scratch *s);

/* `journeyd render TEMPLATE_FILE --vars FILE.json [--html] [--now RFC3339]
 * [--currency CODE]`: prints the rendered text as is (no newline added) and
 * returns 0; a template error prints "FILE:LINE:COL: error: MSG" on stderr
 * and returns 2; bad usage or unreadable files also return 2 with
 * "error: ..." on stderr. argv[0] is "render". Main thread only. */
int tpl_cli_render(int argc, char **argv);

#endif
