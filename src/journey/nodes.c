/* src/journey/nodes.c -- the node kinds: one row each in jrn__kinds (name, parse,
 * release, to_json, and two facts the graph check needs).
 *
 * A node is a map with exactly one kind key (wait, branch, split, send, task,
 * update, exit) plus `next` (and `on_timeout` for a wait on an event with a
 * timeout). Adding a kind means adding a row and its three functions; the
 * reserved `decide` row already exists so that documents using it get a clear
 * "not available yet" instead of "unknown node kind".
 *
 * Invariants:
 *  (1) parse never stops at the first problem: a bad field is reported and the
 *      next one is read; the node stays safe to release (every pointer NULL or
 *      owned, every successor JRN_NONE until graph.c resolves it).
 *  (2) Every successor slot (next, on_timeout, arm, else, variant) is registered
 *      with jrn__edge_add, so graph.c sees every edge there is.
 *  (3) to_json writes the same shape parse reads: parse(to_json(d)) == d.
 */
#include "journey_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journeyd/tz.h"

const char *const jrn__node_keys[] = { "next", "on_timeout", NULL };

/* ---- wait ------------------------------------------------------------------ */

static const char *const wait_keys[] = { "event", "segment_enter", "segment_exit", "when", "timeout", "until", "days",
                                         "zone_trait", "default_zone", NULL };
static const char *const wait_event_only[] = { "when", "timeout", NULL };
static const char *const wait_until_only[] = { "days", "zone_trait", "default_zone", NULL };
static const char *const day_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };
static const char *const day_long[] = { "sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday" };

static bool parse_hhmm(const char *s, int *h, int *m)
{
    size_t n = strlen(s);
    if (n < 4 || n > 5 || s[n - 3] != ':') return false;
    for (size_t i = 0; i < n; i++)
        if (i != n - 3 && !isdigit((unsigned char)s[i])) return false;
    *h = n == 5 ? (s[0] - '0') * 10 + (s[1] - '0') : s[0] - '0';
    *m = (s[n - 2] - '0') * 10 + (s[n - 1] - '0');
    return *h <= 23 && *m <= 59;
}

static void forbid(jrn__ctx *c, const jd_yaml_node *map, const char *const *keys, const char *with)
{
    for (size_t i = 0; keys[i]; i++) {
        const jd_yaml_node *v = jd_yaml_get(map, keys[i]);
        if (v) jrn__diag_at(c, v, "'%s' goes with '%s' in a wait", keys[i], with);
    }
}

static void parse_days(jrn__ctx *c, const jd_yaml_node *y, uint8_t *mask)
{
    if (!jrn__want_seq(c, y, "days")) return;
    if (!y->child) jrn__diag_at(c, y, "'days' is empty (leave it out for any day)");
    for (const jd_yaml_node *d = y->child; d; d = d->next) {
        int i = 0;
        while (i < 7 && !(d->kind == JD_YAML_SCALAR && (strcmp(d->text, day_names[i]) == 0 || strcmp(d->text, day_long[i]) == 0))) i++;
        if (i < 7)
            *mask |= (uint8_t)(1u << i);
        else
            jrn__diag_at(c, d, "unknown day '%.32s' in 'days' (use sun, mon, tue, wed, thu, fri, sat)",
                         d->kind == JD_YAML_SCALAR ? d->text : jrn__yaml_kind(d));
    }
}

static void parse_wait_until(jrn__ctx *c, jrn_node *n, const jd_yaml_node *v, const jd_yaml_node *un)
{
    n->u.wait.kind = JRN_WAIT_UNTIL;
    forbid(c, v, wait_event_only, "event");
    if (un->kind != JD_YAML_SCALAR || !parse_hhmm(un->text, &n->u.wait.hour, &n->u.wait.minute))
        jrn__diag_at(c, un, "bad time of day '%.32s' in 'until': expected HH:MM from 00:00 to 23:59",
                     un->kind == JD_YAML_SCALAR ? un->text : jrn__yaml_kind(un));
    const jd_yaml_node *x;
    if ((x = jrn__get(v, "days"))) parse_days(c, x, &n->u.wait.weekdays);
    n->u.wait.zone_trait = (x = jrn__get(v, "zone_trait")) ? jrn__str(c, x, "zone_trait") : jd_xstrdup("timezone");
    if ((x = jrn__get(v, "default_zone"))) {
        n->u.wait.default_zone = jrn__str(c, x, "default_zone");
        if (n->u.wait.default_zone && !jd_tz_valid(n->u.wait.default_zone))
            jrn__diag_at(c, x, "unknown time zone '%.64s' in 'default_zone' (an IANA zone like America/New_York, or +02:00)",
                         n->u.wait.default_zone);
    } else {
        n->u.wait.default_zone = jd_xstrdup("UTC");
    }
}

static void parse_wait(jrn__ctx *c, jrn_node *n, const jd_yaml_node *v, const jd_yaml_node *node)
{
    n->u.wait.timeout_next = JRN_NONE;
    const jd_yaml_node *timeout = NULL;
    if (!v) {
        jrn__diag(c, n->line, n->col, "'wait' needs a duration (wait: 1d), 'until' or 'event'");
    } else if (v->kind == JD_YAML_SCALAR) {
        n->u.wait.kind = JRN_WAIT_DURATION;
        jrn__duration(c, v, "wait", &n->u.wait.duration_us);
    } else if (v->kind == JD_YAML_MAP) {
        jrn__check_keys(c, v, wait_keys, "wait");
        const jd_yaml_node *ev = NULL, *un = jrn__get(v, "until"), *x;
        /* segment_enter / segment_exit are event waits on a membership change. */
        n->u.wait.event = jrn__event_ref(c, v, "a wait", &ev);
        if (ev && un) jrn__diag_at(c, un, "a wait takes 'event' (or a segment) or 'until', not both");
        if (ev) {
            n->u.wait.kind = JRN_WAIT_EVENT;
            forbid(c, v, wait_until_only, "until");
            if ((x = jrn__get(v, "when"))) n->u.wait.event_when = jrn__expr(c, x, "when", true);
            if ((timeout = jrn__get(v, "timeout"))) jrn__duration(c, timeout, "timeout", &n->u.wait.timeout_us);
        } else if (un) {
            parse_wait_until(c, n, v, un);
        } else {
            jrn__diag_at(c, v, "a wait needs 'event', 'segment_enter', 'segment_exit' or 'until' (or a duration: wait: 1d)");
        }
    } else {
        jrn__diag_at(c, v, "'wait' must be a duration or a map, got %s", jrn__yaml_kind(v));
    }
    const jd_yaml_node *ot = jrn__get(node, "on_timeout");
    /* A bad timeout was reported already: still follow on_timeout, so its target
     * does not also show up as unreachable. */
    if (n->u.wait.kind == JRN_WAIT_EVENT && timeout) {
        if (ot)
            jrn__edge_add(c, ot, &n->u.wait.timeout_next, n->index);
        else
            jrn__diag_at(c, timeout, "a wait with a timeout needs 'on_timeout' (the node to go to when it expires)");
    } else if (ot && (n->u.wait.kind == JRN_WAIT_DURATION || n->u.wait.kind == JRN_WAIT_UNTIL ||
                      (n->u.wait.kind == JRN_WAIT_EVENT && !timeout))) {
        jrn__diag_at(c, ot, "'on_timeout' goes with a wait on an event with a timeout");
    }
}

static void release_wait(jrn_node *n)
{
    free(n->u.wait.zone_trait);
    free(n->u.wait.default_zone);
    free(n->u.wait.event);
    expr_prog_destroy(n->u.wait.event_when);
}

static void json_wait(const jrn_doc *d, const jrn_node *n, jd_buf *b)
{
    jd_buf_adds(b, "\"wait\":");
    switch (n->u.wait.kind) {   /* three shapes of one kind */
    case JRN_WAIT_DURATION:
        jrn__json_duration(b, n->u.wait.duration_us);
        break;
    case JRN_WAIT_UNTIL:
        jd_buf_addf(b, "{\"until\":\"%02d:%02d\"", n->u.wait.hour, n->u.wait.minute);
        if (n->u.wait.weekdays) {
            jd_buf_adds(b, ",\"days\":[");
            for (int i = 0, k = 0; i < 7; i++)
                if (n->u.wait.weekdays & (1u << i)) jd_buf_addf(b, "%s\"%s\"", k++ ? "," : "", day_names[i]);
            jd_buf_adds(b, "]");
        }
        jd_buf_adds(b, ",\"zone_trait\":");
        jrn__json_str(b, n->u.wait.zone_trait);
        jd_buf_adds(b, ",\"default_zone\":");
        jrn__json_str(b, n->u.wait.default_zone);
        jd_buf_adds(b, "}");
        break;
    case JRN_WAIT_EVENT:
        jd_buf_adds(b, "{");
        jrn__json_event_ref(b, n->u.wait.event);
        if (n->u.wait.event_when) {
            jd_buf_adds(b, ",\"when\":");
            jrn__json_expr(b, n->u.wait.event_when);
        }
        if (n->u.wait.timeout_us) {
            jd_buf_adds(b, ",\"timeout\":");
            jrn__json_duration(b, n->u.wait.timeout_us);
        }
        jd_buf_adds(b, "}");
        if (n->u.wait.timeout_us) jrn__json_next(b, d, "on_timeout", n->u.wait.timeout_next);
        break;
    }
}

/* ---- branch ---------------------------------------------------------------- */

static const char *const arm_keys[] = { "when", "next", "else", NULL };

static void parse_branch(jrn__ctx *c, jrn_node *n, const jd_yaml_node *v, const jd_yaml_node *node)
{
    n->u.branch.else_next = JRN_NONE;
    if (!v) {
        jrn__diag(c, n->line, n->col, "'branch' needs a list of arms ({ when: ..., next: ... }, then { else: ... })");
        return;
    }
    if (!jrn__want_seq(c, v, "branch")) return;
    uint32_t cap = 0;
    for (const jd_yaml_node *a = v->child; a; a = a->next) cap++;
    n->u.branch.arms = jd_xcalloc(cap ? cap : 1, sizeof *n->u.branch.arms);
    bool seen_else = false;
    for (const jd_yaml_node *a = v->child; a; a = a->next) {
        if (!jrn__want_map(c, a, "branch[]")) continue;
        jrn__check_keys(c, a, arm_keys, "a branch arm");
        const jd_yaml_node *e = jd_yaml_get(a, "else"), *w = jrn__get(a, "when"), *nx = jrn__get(a, "next");
        if (e) {
            if (w || nx) jrn__diag_at(c, a, "an else arm takes only 'else: <node>'");
            if (seen_else) jrn__diag_at(c, a, "a branch has one else arm");
            else if (a->next) jrn__diag_at(c, a, "the else arm must be the last arm");
            seen_else = true;
            if (jrn__get(a, "else")) jrn__edge_add(c, e, &n->u.branch.else_next, n->index);
            continue;
        }
        if (!w) {
            jrn__diag_at(c, a, "a branch arm needs 'when' (or 'else')");
            continue;
        }
        jrn_branch_arm *arm = &n->u.branch.arms[n->u.branch.narms++];
        arm->line = a->line;
        arm->col = a->col;
        arm->next = JRN_NONE;
        arm->when = jrn__expr(c, w, "when", true);
        if (nx)
            jrn__edge_add(c, nx, &arm->next, n->index);
        else
            jrn__diag_at(c, a, "a branch arm needs 'next'");
    }
    if (n->u.branch.narms == 0) jrn__diag_at(c, v, "a branch needs at least one arm with 'when'");
}

static void release_branch(jrn_node *n)
{
    for (uint32_t i = 0; i < n->u.branch.narms; i++) expr_prog_destroy(n->u.branch.arms[i].when);
    free(n->u.branch.arms);
}

static void json_branch(const jrn_doc *d, const jrn_node *n, jd_buf *b)
{
    jd_buf_adds(b, "\"branch\":[");
    for (uint32_t i = 0; i < n->u.branch.narms; i++) {
        jd_buf_adds(b, i ? ",{\"when\":" : "{\"when\":");
        jrn__json_expr(b, n->u.branch.arms[i].when);
        jrn__json_next(b, d, "next", n->u.branch.arms[i].next);
        jd_buf_adds(b, "}");
    }
    if (n->u.branch.else_next != JRN_NONE) {
        jd_buf_adds(b, ",{\"else\":");
        jrn__json_str(b, d->nodes[n->u.branch.else_next].id);
        jd_buf_adds(b, "}");
    }
    jd_buf_adds(b, "]");
}

/* ---- split ----------------------------------------------------------------- */

static const char *const variant_keys[] = { "variant", "weight", "next", "control", NULL };
#define MAX_WEIGHT 1000000

static void parse_variant(jrn__ctx *c, jrn_node *n, const jd_yaml_node *a, jrn_variant *var)
{
    jrn__check_keys(c, a, variant_keys, "a split variant");
    const jd_yaml_node *nm = jrn__get(a, "variant"), *w = jrn__get(a, "weight"), *nx = jrn__get(a, "next"),
                       *ct = jrn__get(a, "control");
    if (nm) {
        var->name = jrn__ident(c, nm, "variant");
        for (uint32_t i = 0; var->name && i < n->u.split.nvariants; i++)
            if (n->u.split.variants[i].name && strcmp(n->u.split.variants[i].name, var->name) == 0)
                jrn__diag_at(c, nm, "duplicate variant '%s'", var->name);
    } else {
        jrn__diag_at(c, a, "a split variant needs 'variant' (its name)");
    }
    if (w) {
        const char *s = w->kind == JD_YAML_SCALAR && !w->quoted ? w->text : "";
        size_t i = 0;
        uint64_t v = 0;
        while (isdigit((unsigned char)s[i]) && v <= MAX_WEIGHT) v = v * 10 + (uint64_t)(s[i++] - '0');
        if (w->kind == JD_YAML_SCALAR && w->quoted)
            jrn__diag_at(c, w, "'weight' must be a whole number, not the text \"%.32s\"", w->text);
        else if (i == 0 || s[i] || v == 0 || v > MAX_WEIGHT)
            jrn__diag_at(c, w, "bad weight '%.32s': expected a whole number from 1 to %d",
                         w->kind == JD_YAML_SCALAR ? w->text : jrn__yaml_kind(w), MAX_WEIGHT);
        else
            var->weight = (uint32_t)v;
    } else {
        jrn__diag_at(c, a, "a split variant needs 'weight' (a whole number; variants get weight/total of people)");
    }
    if (ct) jrn__bool(c, ct, "control", &var->control);
    if (nx) jrn__edge_add(c, nx, &var->next, n->index);
}

static void parse_split(jrn__ctx *c, jrn_node *n, const jd_yaml_node *v, const jd_yaml_node *node)
{
    if (!v) {
        jrn__diag(c, n->line, n->col, "'split' needs a list of variants ({ variant: A, weight: 50, next: ... })");
        return;
    }
    if (!jrn__want_seq(c, v, "split")) return;
    uint32_t cap = 0;
    for (const jd_yaml_node *a = v->child; a; a = a->next) cap++;
    n->u.split.variants = jd_xcalloc(cap ? cap : 1, sizeof *n->u.split.variants);
    for (const jd_yaml_node *a = v->child; a; a = a->next) {
        if (!jrn__want_map(c, a, "split[]")) continue;
        jrn_variant *var = &n->u.split.variants[n->u.split.nvariants];
        var->next = JRN_NONE;
        parse_variant(c, n, a, var);
        n->u.split.nvariants++;   /* after parse_variant: it compares against the earlier ones */
        n->u.split.total_weight += var->weight;   /* <= 500 nodes' items * 1e6: fits */
    }
    if (cap == 0) jrn__diag_at(c, v, "a split needs at least one variant");
}

static void release_split(jrn_node *n)
{
    for (uint32_t i = 0; i < n->u.split.nvariants; i++) free(n->u.split.variants[i].name);
    free(n->u.split.variants);
}

static void json_split(const jrn_doc *d, const jrn_node *n, jd_buf *b)
{
    jd_buf_adds(b, "\"split\":[");
    for (uint32_t i = 0; i < n->u.split.nvariants; i++) {
        const jrn_variant *v = &n->u.split.variants[i];
        jd_buf_adds(b, i ? ",{\"variant\":" : "{\"variant\":");
        jrn__json_str(b, v->name);
        jd_buf_addf(b, ",\"weight\":%u", v->weight);
        if (v->control) jd_buf_adds(b, ",\"control\":true");
        if (v->next != JRN_NONE) jrn__json_next(b, d, "next", v->next);
        jd_buf_adds(b, "}");
    }
    jd_buf_adds(b, "]");
}

/* ---- send ------------------------------------------------------------------ */

static const char *const send_keys[] = { "channel", "template", "category", NULL };

static void parse_send(jrn__ctx *c, jrn_node *n, const jd_yaml_node *v, const jd_yaml_node *node)
{
    if (!v) {
        jrn__diag(c, n->line, n->col, "'send' needs channel and template");
        return;
    }
    if (!jrn__want_map(c, v, "send")) return;
    jrn__check_keys(c, v, send_keys, "send");
    const jd_yaml_node *ch = jrn__get(v, "channel"), *tp = jrn__get(v, "template"), *ca = jrn__get(v, "category");
    const jrn_env *env = c->env;
    bool channel_ok = false;
    if (ch && (n->u.send.channel = jrn__str(c, ch, "channel"))) {
        for (size_t i = 0; i < env->nchannels && !channel_ok; i++) channel_ok = strcmp(env->channels[i], ch->text) == 0;
        if (!channel_ok) {
            const char *s = jrn__suggest(ch->text, env->channels, env->nchannels);
            char list[128] = "";
            size_t len = 0;
            for (size_t i = 0; i < env->nchannels && len < sizeof list; i++)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", env->channels[i]);
            if (s)
                jrn__diag_at(c, ch, "unknown channel '%.64s' (did you mean '%s'?)", ch->text, s);
            else
                jrn__diag_at(c, ch, "unknown channel '%.64s' (known: %s)", ch->text, list);
        }
    } else if (!ch) {
        jrn__diag_at(c, v, "'send' needs 'channel' (email, sms, push, ...)");
    }
    if (tp && (n->u.send.template_name = jrn__str(c, tp, "template"))) {
        if (channel_ok && env->template_exists && !env->template_exists(env->self, n->u.send.channel, tp->text))
            jrn__diag_at(c, tp, "unknown template '%.64s' for channel '%s'", tp->text, n->u.send.channel);
    } else if (!tp) {
        jrn__diag_at(c, v, "'send' needs 'template' (the message template's name)");
    }
    n->u.send.category = ca ? jrn__ident(c, ca, "category") : jd_xstrdup("marketing");
}

static void release_send(jrn_node *n)
{
    free(n->u.send.channel);
    free(n->u.send.template_name);
    free(n->u.send.category);
}

static void json_send(const jrn_doc *d, const jrn_node *n, jd_buf *b)
{
    jd_buf_adds(b, "\"send\":{\"channel\":");
    jrn__json_str(b, n->u.send.channel);
    jd_buf_adds(b, ",\"template\":");
    jrn__json_str(b, n->u.send.template_name);
    jd_buf_adds(b, ",\"category\":");
    jrn__json_str(b, n->u.send.category);
    jd_buf_adds(b, "}");
}

/* ---- task ------------------------------------------------------------------ */

static const char *const task_keys[] = { "queue", "title", NULL };

static void parse_task(jrn__ctx *c, jrn_node *n, const jd_yaml_node *v, const jd_yaml_node *node)
{
    if (!v) {
        jrn__diag(c, n->line, n->col, "'task' needs queue and title");
        return;
    }
    if (!jrn__want_map(c, v, "task")) return;
    jrn__check_keys(c, v, task_keys, "task");
    const jd_yaml_node *q = jrn__get(v, "queue"), *t = jrn__get(v, "title");
    if (q)
        n->u.task.queue = jrn__ident(c, q, "queue");
    else
        jrn__diag_at(c, v, "'task' needs 'queue' (the team that picks it up, like sales)");
    /* The title is a template ({{ profile.traits.name }}): the template module
     * renders and checks it when it arrives; title_expr stays NULL until then. */
    if (t)
        n->u.task.title = jrn__str(c, t, "title");
    else
        jrn__diag_at(c, v, "'task' needs 'title'");
}

static void release_task(jrn_node *n)
{
    free(n->u.task.queue);
    free(n->u.task.title);
    expr_prog_destroy(n->u.task.title_expr);
}

static void json_task(const jrn_doc *d, const jrn_node *n, jd_buf *b)
{
    jd_buf_adds(b, "\"task\":{\"queue\":");
    jrn__json_str(b, n->u.task.queue);
    jd_buf_adds(b, ",\"title\":");
    jrn__json_str(b, n->u.task.title);
    jd_buf_adds(b, "}");
}

/* ---- update ---------------------------------------------------------------- */

static const char *const update_keys[] = { "set", "unset", "add_tags", "remove_tags", NULL };

/* A list of names (unset, add_tags, remove_tags): owned strings, NULL for bad items. */
static char **parse_names(jrn__ctx *c, const jd_yaml_node *y, const char *field, uint32_t *count)
{
    *count = 0;
    if (!y || !jrn__want_seq(c, y, field)) return NULL;
    uint32_t n = 0;
    for (const jd_yaml_node *i = y->child; i; i = i->next) n++;
    if (n == 0) jrn__diag_at(c, y, "'%s' is empty", field);
    char **v = jd_xcalloc(n ? n : 1, sizeof *v);
    for (const jd_yaml_node *i = y->child; i; i = i->next) v[(*count)++] = jrn__str(c, i, field);
    return v;
}

static void parse_update(jrn__ctx *c, jrn_node *n, const jd_yaml_node *v, const jd_yaml_node *node)
{
    if (!v || !jrn__want_map(c, v, "update")) {
        if (!v) jrn__diag(c, n->line, n->col, "'update' needs set, unset, add_tags or remove_tags");
        return;
    }
    jrn__check_keys(c, v, update_keys, "update");
    const jd_yaml_node *set = jrn__get(v, "set"), *unset = jrn__get(v, "unset");
    uint32_t nset = 0, nunset = 0;
    if (set && jrn__want_map(c, set, "set")) {
        for (const jd_yaml_node *k = set->child; k; k = k->next) nset++;
        if (nset == 0) jrn__diag_at(c, set, "'set' is empty");
    } else {
        set = NULL;
    }
    char **un = parse_names(c, unset, "unset", &nunset);
    n->u.update.ops = jd_xcalloc(nset + nunset ? nset + nunset : 1, sizeof *n->u.update.ops);
    for (const jd_yaml_node *k = set ? set->child : NULL; k; k = k->next) {
        jrn_trait_op *op = &n->u.update.ops[n->u.update.nops++];
        op->key = jd_xstrdup(k->text);
        if (!k->text[0]) jrn__diag_at(c, k, "a trait name is empty");
        /* The value is CEL: `plan: "'pro'"` sets the text pro, `plan: pro` reads a variable. */
        op->value = jrn__expr(c, k->value, k->text, false);
    }
    for (uint32_t i = 0; i < nunset; i++) {
        jrn_trait_op *op = &n->u.update.ops[n->u.update.nops++];
        op->key = un[i];
        op->unset = true;
        for (uint32_t j = 0; op->key && j < nset; j++)
            if (strcmp(n->u.update.ops[j].key, op->key) == 0)
                jrn__diag_at(c, unset, "trait '%.64s' is both set and unset", op->key);
    }
    free(un);
    n->u.update.add_tags = parse_names(c, jrn__get(v, "add_tags"), "add_tags", &n->u.update.nadd);
    n->u.update.remove_tags = parse_names(c, jrn__get(v, "remove_tags"), "remove_tags", &n->u.update.nremove);
    if (!set && !unset && !n->u.update.nadd && !n->u.update.nremove && !jrn__get(v, "add_tags") &&
        !jrn__get(v, "remove_tags"))
        jrn__diag_at(c, v, "'update' needs set, unset, add_tags or remove_tags");
}

static void release_update(jrn_node *n)
{
    for (uint32_t i = 0; i < n->u.update.nops; i++) {
        free(n->u.update.ops[i].key);
        expr_prog_destroy(n->u.update.ops[i].value);
    }
    free(n->u.update.ops);
    for (uint32_t i = 0; i < n->u.update.nadd; i++) free(n->u.update.add_tags[i]);
    for (uint32_t i = 0; i < n->u.update.nremove; i++) free(n->u.update.remove_tags[i]);
    free(n->u.update.add_tags);
    free(n->u.update.remove_tags);
}

static void json_names(jd_buf *b, const char *key, char **v, uint32_t n, bool *first)
{
    if (!n) return;
    jd_buf_addf(b, "%s\"%s\":[", *first ? "" : ",", key);
    for (uint32_t i = 0; i < n; i++) {
        if (i) jd_buf_adds(b, ",");
        jrn__json_str(b, v[i]);
    }
    jd_buf_adds(b, "]");
    *first = false;
}

static void json_update(const jrn_doc *d, const jrn_node *n, jd_buf *b)
{
    bool first = true;
    jd_buf_adds(b, "\"update\":{");
    uint32_t nset = 0, nunset = 0;
    for (uint32_t i = 0; i < n->u.update.nops; i++) n->u.update.ops[i].unset ? nunset++ : nset++;
    if (nset) {
        jd_buf_adds(b, "\"set\":{");
        for (uint32_t i = 0, k = 0; i < n->u.update.nops; i++) {
            if (n->u.update.ops[i].unset) continue;
            if (k++) jd_buf_adds(b, ",");
            jrn__json_str(b, n->u.update.ops[i].key);
            jd_buf_adds(b, ":");
            jrn__json_expr(b, n->u.update.ops[i].value);
        }
        jd_buf_adds(b, "}");
        first = false;
    }
    if (nunset) {
        char **keys = jd_xcalloc(nunset, sizeof *keys);
        for (uint32_t i = 0, k = 0; i < n->u.update.nops; i++)
            if (n->u.update.ops[i].unset) keys[k++] = n->u.update.ops[i].key;
        json_names(b, "unset", keys, nunset, &first);
        free(keys);
    }
    json_names(b, "add_tags", n->u.update.add_tags, n->u.update.nadd, &first);
    json_names(b, "remove_tags", n->u.update.remove_tags, n->u.update.nremove, &first);
    jd_buf_adds(b, "}");
}

/* ---- exit ------------------------------------------------------------------ */

static const char *const exit_node_keys[] = { "reason", NULL };

static void parse_exit(jrn__ctx *c, jrn_node *n, const jd_yaml_node *v, const jd_yaml_node *node)
{
    if (!v) return;   /* `exit:` alone: end here, no reason */
    if (v->kind == JD_YAML_SCALAR) {   /* shorthand: `exit: converted` */
        n->u.exit.reason = jrn__str(c, v, "exit");
        return;
    }
    if (!jrn__want_map(c, v, "exit")) return;
    jrn__check_keys(c, v, exit_node_keys, "exit");
    const jd_yaml_node *r = jrn__get(v, "reason");
    if (r) n->u.exit.reason = jrn__str(c, r, "reason");
}

static void release_exit(jrn_node *n) { free(n->u.exit.reason); }

static void json_exit(const jrn_doc *d, const jrn_node *n, jd_buf *b)
{
    jd_buf_adds(b, "\"exit\":{");
    if (n->u.exit.reason) {
        jd_buf_adds(b, "\"reason\":");
        jrn__json_str(b, n->u.exit.reason);
    }
    jd_buf_adds(b, "}");
}

/* ---- the table ------------------------------------------------------------- */

const jrn__kind_ops jrn__kinds[JRN_KIND_COUNT_] = {
    /*              name      parse         release         to_json       breaks_cycle has_next */
    [JRN_WAIT]   = { "wait",   parse_wait,   release_wait,   json_wait,    true,  true,  NULL },
    [JRN_BRANCH] = { "branch", parse_branch, release_branch, json_branch,  false, false, NULL },
    [JRN_SPLIT]  = { "split",  parse_split,  release_split,  json_split,   false, false, NULL },
    [JRN_SEND]   = { "send",   parse_send,   release_send,   json_send,    false, true,  NULL },
    [JRN_TASK]   = { "task",   parse_task,   release_task,   json_task,    false, true,  NULL },
    [JRN_UPDATE] = { "update", parse_update, release_update, json_update,  false, true,  NULL },
    [JRN_EXIT]   = { "exit",   parse_exit,   release_exit,   json_exit,    false, false, NULL },
    [JRN_DECIDE] = { "decide", NULL,         NULL,           NULL,         false, true,
                     "the decide node is not available yet (it arrives with next best action)" },
};

/* Why `next` is refused on the kinds without one. */
static const char *const no_next_why[JRN_KIND_COUNT_] = {
    [JRN_BRANCH] = "its arms name where to go; use an else arm for the rest",
    [JRN_SPLIT] = "each variant names its own next",
    [JRN_EXIT] = "the journey ends here",
};

static const char kinds_list[] = "wait, branch, split, send, task, update or exit";

static int kind_of(const char *s)
{
    for (int k = 1; k < JRN_KIND_COUNT_; k++)
        if (jrn__kinds[k].name && strcmp(jrn__kinds[k].name, s) == 0) return k;
    return 0;
}

static bool is_node_key(const char *s)
{
    for (size_t i = 0; jrn__node_keys[i]; i++)
        if (strcmp(jrn__node_keys[i], s) == 0) return true;
    return false;
}

void jrn__parse_node(jrn__ctx *c, jrn_node *n, const jd_yaml_node *key)
{
    const jd_yaml_node *v = key->value, *kind_key = NULL;
    if (v->kind != JD_YAML_MAP) {
        jrn__diag_at(c, v, "a node must be a map with one kind (%s), got %s", kinds_list, jrn__yaml_kind(v));
        return;
    }
    bool unknown_seen = false;
    for (const jd_yaml_node *k = v->child; k; k = k->next) {
        int kind = kind_of(k->text);
        if (kind && kind_key) {
            jrn__diag_at(c, k, "a node has exactly one kind: found '%s' and '%s'", kind_key->text, k->text);
        } else if (kind) {
            kind_key = k;
            n->kind = (jrn_kind)kind;
        }
    }
    for (const jd_yaml_node *k = v->child; k; k = k->next) {
        if (kind_of(k->text) || is_node_key(k->text)) continue;
        static const char *const kind_names[] = { "wait", "branch", "split", "send", "task", "update", "exit" };
        static const char *const field_names[] = { "next", "on_timeout" };
        if (!kind_key && !unknown_seen) {
            /* No kind key: the first unknown key is most likely a misspelt kind. */
            const char *s = jrn__suggest(k->text, kind_names, JD_ARRAY_LEN(kind_names));
            if (s)
                jrn__diag_at(c, k, "unknown node kind '%.64s' (did you mean '%s'?)", k->text, s);
            else
                jrn__diag_at(c, k, "unknown node kind '%.64s' (expected %s)", k->text, kinds_list);
        } else {
            const char *s = jrn__suggest(k->text, field_names, JD_ARRAY_LEN(field_names));
            if (s)
                jrn__diag_at(c, k, "unknown field '%.64s' in a node (did you mean '%s'?)", k->text, s);
            else
                jrn__diag_at(c, k, "unknown field '%.64s' in a node (expected its kind, next or on_timeout)", k->text);
        }
        unknown_seen = true;
    }
    if (!kind_key) {
        if (!unknown_seen) jrn__diag_at(c, v, "a node needs a kind: one of %s", kinds_list);
        return;
    }
    const jrn__kind_ops *ops = &jrn__kinds[n->kind];
    if (ops->unavailable) {
        jrn__diag_at(c, kind_key, "%s", ops->unavailable);
        n->kind = 0;   /* nothing to release, nothing to run */
        return;
    }
    const jd_yaml_node *kv = kind_key->value;
    ops->parse(c, n, kv && !(kv->kind == JD_YAML_SCALAR && !kv->quoted &&
                             (!kv->text[0] || !strcmp(kv->text, "~") || !strcmp(kv->text, "null"))) ? kv : NULL, v);
    const jd_yaml_node *nx = jrn__get(v, "next");
    if (nx && !ops->has_next)
        jrn__diag_at(c, nx, "'next' does not go on a %s node: %s", ops->name, no_next_why[n->kind]);
    else if (nx)
        jrn__edge_add(c, nx, &n->next, n->index);
    if (n->kind != JRN_WAIT && jrn__get(v, "on_timeout"))
        jrn__diag_at(c, jrn__get(v, "on_timeout"), "'on_timeout' goes with a wait on an event with a timeout");
}

void jrn__node_release(jrn_node *n)
{
    if (n->kind > 0 && n->kind < JRN_KIND_COUNT_ && jrn__kinds[n->kind].release) jrn__kinds[n->kind].release(n);
    free(n->id);
}
