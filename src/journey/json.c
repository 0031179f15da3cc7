/* src/journey/json.c -- jrn_doc_to_json: the canonical JSON form of a document
 * (what GET /v1/journeys returns, and what the API accepts back).
 *
 * Invariants:
 *  (1) The output has the input's shape (docs/journeys.md), so parsing it gives
 *      the same document: durations are written as text ("1h30m"), expressions
 *      as their source, defaults written out (reentry, category, zone).
 *  (2) Keys come in a fixed order and nodes in document order: the same document
 *      always gives the same bytes (diffs and ETags stay stable).
 */
#include "journey_int.h"

#include <string.h>

void jrn__json_str(jd_buf *b, const char *s)
{
    s = s ? s : "";
    jd_buf_add_json_str(b, s, strlen(s));
}

void jrn__json_expr(jd_buf *b, const expr_prog *p)
{
    jrn__json_str(b, p ? expr_prog_source(p) : "");
}

void jrn__json_next(jd_buf *b, const jrn_doc *d, const char *key, uint32_t next)
{
    if (next == JRN_NONE || next >= d->nnodes) return;
    jd_buf_addf(b, ",\"%s\":", key);
    jrn__json_str(b, d->nodes[next].id);
}

/* Largest units first, so 90 minutes is "1h30m" and 7 days "7d" (not "1w":
 * people write trial lengths in days). */
void jrn__json_duration(jd_buf *b, uint64_t us)
{
    static const struct { const char *unit; uint64_t us; } units[] = {
        { "d", JD_DAY }, { "h", JD_HOUR }, { "m", JD_MIN }, { "s", JD_SEC }, { "ms", 1000 }, { "us", 1 },
    };
    jd_buf_adds(b, "\"");
    if (us == 0) jd_buf_adds(b, "0s");
    for (size_t i = 0; i < JD_ARRAY_LEN(units) && us; i++) {
        if (us < units[i].us) continue;
        jd_buf_addf(b, "%llu%s", (unsigned long long)(us / units[i].us), units[i].unit);
        us %= units[i].us;
    }
    jd_buf_adds(b, "\"");
}

void jrn__json_event_ref(jd_buf *b, const char *name)
{
    bool enter = false;
    const char *seg = jrn_segment_event_parse(name, &enter);
    jd_buf_adds(b, seg ? (enter ? "\"segment_enter\":" : "\"segment_exit\":") : "\"event\":");
    jrn__json_str(b, seg ? seg : name);
}

static const char *const entry_key[] = {
    [JRN_ENTRY_EVENT] = "event", [JRN_ENTRY_SEGMENT_ENTER] = "segment_enter",
    [JRN_ENTRY_SEGMENT_EXIT] = "segment_exit", [JRN_ENTRY_API] = "api",
};
static const char *const reentry_name[] = {
    [JRN_REENTRY_NEVER] = "never", [JRN_REENTRY_ALWAYS] = "always", [JRN_REENTRY_COOLDOWN] = "cooldown",
};

static void entry_json(const jrn_doc *d, jd_buf *b)
{
    jd_buf_addf(b, ",\"entry\":{\"%s\":", entry_key[d->entry.kind]);
    if (d->entry.kind == JRN_ENTRY_EVENT)
        jrn__json_str(b, d->entry.event);
    else if (d->entry.kind == JRN_ENTRY_API)
        jd_buf_adds(b, "true");
    else
        jrn__json_str(b, d->entry.segment);
    if (d->entry.when) {
        jd_buf_adds(b, ",\"when\":");
        jrn__json_expr(b, d->entry.when);
    }
    jd_buf_adds(b, "}");
}

static void exits_json(const jrn_doc *d, jd_buf *b)
{
    if (!d->nexits) return;
    jd_buf_adds(b, ",\"exits\":[");
    for (uint32_t i = 0; i < d->nexits; i++) {
        const jrn_exit_rule *r = &d->exits[i];
        jd_buf_adds(b, i ? ",{" : "{");
        const char *sep = "";
        if (r->event) {
            jrn__json_event_ref(b, r->event);
            sep = ",";
        }
        if (r->when) {
            jd_buf_addf(b, "%s\"when\":", sep);
            jrn__json_expr(b, r->when);
        }
        jd_buf_addf(b, ",\"action\":\"%s\"", r->action == JRN_EXIT_PAUSE ? "pause" : "end");
        if (r->resume_event) {
            jd_buf_adds(b, ",\"resume_on\":");
            jrn__json_str(b, r->resume_event);
        }
        jd_buf_adds(b, "}");
    }
    jd_buf_adds(b, "]");
}

static void goal_json(const jrn_doc *d, jd_buf *b)
{
    if (!d->goal.present) return;
    jd_buf_adds(b, ",\"goal\":{");
    jrn__json_event_ref(b, d->goal.event);
    if (d->goal.when) {
        jd_buf_adds(b, ",\"when\":");
        jrn__json_expr(b, d->goal.when);
    }
    if (d->goal.within_us) {
        jd_buf_adds(b, ",\"within\":");
        jrn__json_duration(b, d->goal.within_us);
    }
    jd_buf_adds(b, "}");
}

int jrn_doc_to_json(const jrn_doc *d, jd_buf *out)
{
    jd_buf b;
    jd_buf_init(&b, (size_t)1 << 30);   /* out's own ceiling applies when it is copied */
    jd_buf_adds(&b, "{\"id\":");
    jrn__json_str(&b, d->id);
    if (d->name) {
        jd_buf_adds(&b, ",\"name\":");
        jrn__json_str(&b, d->name);
    }
    if (d->description) {
        jd_buf_adds(&b, ",\"description\":");
        jrn__json_str(&b, d->description);
    }
    entry_json(d, &b);
    jd_buf_addf(&b, ",\"reentry\":\"%s\"", reentry_name[d->reentry]);
    if (d->reentry == JRN_REENTRY_COOLDOWN) {
        jd_buf_adds(&b, ",\"cooldown\":");
        jrn__json_duration(&b, d->cooldown_us);
    }
    jd_buf_addf(&b, ",\"concurrent\":%s", d->allow_concurrent ? "true" : "false");
    exits_json(d, &b);
    goal_json(d, &b);
    jd_buf_adds(&b, ",\"start\":");
    jrn__json_str(&b, d->nodes[d->start].id);
    jd_buf_adds(&b, ",\"nodes\":{");
    for (uint32_t i = 0; i < d->nnodes; i++) {
        const jrn_node *n = &d->nodes[i];
        if (i) jd_buf_adds(&b, ",");
        jrn__json_str(&b, n->id);
        jd_buf_adds(&b, ":{");
        jrn__kinds[n->kind].to_json(d, n, &b);
        if (jrn__kinds[n->kind].has_next) jrn__json_next(&b, d, "next", n->next);
        jd_buf_adds(&b, "}");
    }
    jd_buf_adds(&b, "}}");
    int rc = jd_buf_add(out, b.data, b.len);   /* JD_ELIMIT: nothing added */
    jd_buf_release(&b);
    return rc;
}
