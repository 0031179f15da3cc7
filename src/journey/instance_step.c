/*
** src/journey/instance_step.c -- what each node kind does when an instance
** reaches it: one step function per kind, in the table jrn__steps (the run
** loop in instance.c calls them). A step either names the next hop
** (JRN__HOP), parks the instance on a wait (JRN__PARK), or has ended it
** (JRN__GONE, an expression or time-zone error).
**
** Invariants:
**  (1) A step reports through io only: intent, update, arm. Transitions and
**      exits are the run loop's (instance.c invariant 6).
**  (2) Only step_wait parks, and it arms the timer exactly when
**      jrn__timer_armed will say so (instance.c invariant 2). A wait on a
**      segment change that already holds (io->in_segment) does not park: it
**      hops to `next` as if the change had come.
**  (3) Draws are hashes: split variant = jrn__split_draw(id, node) over the
**      cumulative weights; intent id = jrn__intent_id(id, node, steps).
*/
#include <stdio.h>

#include "journeyd/tz.h"
#include "journey_int.h"

/* ---- wait ------------------------------------------------------------------ */

/* The deadline of an until wait, in the zone from the profile trait, or the
 * node's default zone when the trait is missing or not a zone. */
static bool until_deadline(jrn__run *r, const jrn_node *n, int64_t *when)
{
    const char *zone = n->u.wait.zone_trait ? r->io->trait(r->io->self, n->u.wait.zone_trait) : NULL;
    jd_err err;
    jd_err_clear(&err);
    if (!zone || !jd_tz_valid(zone)) zone = n->u.wait.default_zone ? n->u.wait.default_zone : "UTC";
    if (jd_tz_next_local(zone, r->now, n->u.wait.hour, n->u.wait.minute, n->u.wait.weekdays, when, &err) == JD_OK)
        return true;
    if (!err.where[0]) snprintf(err.where, sizeof err.where, "%s", n->id);
    jrn__end(r, JRN_END_ERROR, &err);
    return false;
}

static jrn__step_result step_wait(jrn__run *r, const jrn_node *n, jrn__hop *hop)
{
    int64_t when = -1;
    (void)hop;
    switch (n->u.wait.kind) {   /* three shapes of one kind: a table would be longer */
    case JRN_WAIT_DURATION: when = jrn__add_us(r->now, n->u.wait.duration_us); break;
    case JRN_WAIT_UNTIL:    if (!until_deadline(r, n, &when)) return JRN__GONE; break;
    case JRN_WAIT_EVENT: {
        bool enter = false;
        const char *seg = jrn_segment_event_parse(n->u.wait.event, &enter);
        if (seg && r->io->in_segment && r->io->in_segment(r->io->self, r->in, seg) == enter) {
            /* Already there: the change has happened and would never come, so
             * the wait goes on at once, as if it had just come (its `when`
             * sees the same event). */
            jrn__seg_event se;
            jrn__seg_event_make(&se, seg, enter, r->now);
            const ingest_event *was = r->ev;
            bool ok = false;
            r->ev = &se.ev;
            bool alive = jrn__eval(r, n->u.wait.event_when, &ok);
            r->ev = was;
            if (!alive) return JRN__GONE;
            if (ok) {
                *hop = (jrn__hop){ n->next, JRN_EDGE_WAIT_EVENT, 0, JRN_END_FINISHED };
                return JRN__HOP;
            }
        }
        if (n->u.wait.timeout_us) when = jrn__add_us(r->now, n->u.wait.timeout_us);
        break;
    }
    }
    r->in->state = JRN_ST_WAITING;
    if (when >= 0) r->io->arm(r->io->self, r->in, when);
    return JRN__PARK;
}

/* ---- branch and split ------------------------------------------------------ */

static jrn__step_result step_branch(jrn__run *r, const jrn_node *n, jrn__hop *hop)
{
    for (uint32_t i = 0; i < n->u.branch.narms; i++) {
        bool ok = false;
        if (!jrn__eval(r, n->u.branch.arms[i].when, &ok)) return JRN__GONE;
        if (ok) {
            *hop = (jrn__hop){ n->u.branch.arms[i].next, JRN_EDGE_BRANCH_ARM, i, JRN_END_FINISHED };
            return JRN__HOP;
        }
    }
    /* else (arm index narms); without an else the journey ends for the rest */
    *hop = (jrn__hop){ n->u.branch.else_next, JRN_EDGE_BRANCH_ELSE, n->u.branch.narms, JRN_END_FINISHED };
    return JRN__HOP;
}

static jrn__step_result step_split(jrn__run *r, const jrn_node *n, jrn__hop *hop)
{
    uint64_t total = 0, draw;
    uint32_t v = 0;
    for (uint32_t i = 0; i < n->u.split.nvariants; i++) total += n->u.split.variants[i].weight;
    if (total == 0) {   /* validation requires weights >= 1 and a variant: defend anyway */
        jd_err err;
        jd_err_set(&err, JD_EINVAL, n->id, "split has no weight");
        jrn__end(r, JRN_END_ERROR, &err);
        return JRN__GONE;
    }
    draw = jrn__split_draw(r->in->id, n->index) % total;
    for (uint64_t cum = 0; v < n->u.split.nvariants; v++) {
        cum += n->u.split.variants[v].weight;
        if (draw < cum) break;
    }
    const jrn_variant *var = &n->u.split.variants[v];
    r->in->variant = (uint16_t)(v + 1 < UINT16_MAX ? v + 1 : UINT16_MAX);
    *hop = (jrn__hop){ var->next, JRN_EDGE_SPLIT_VARIANT, v,
                       var->control && var->next == JRN_NONE ? JRN_END_CONTROL : JRN_END_FINISHED };
    return JRN__HOP;
}

/* ---- actions --------------------------------------------------------------- */

static jrn__step_result step_intent(jrn__run *r, const jrn_node *n, jrn__hop *hop)
{
    r->io->intent(r->io->self, r->in, n, jrn__intent_id(r->in->id, n->index, r->in->steps), r->now);
    hop->to = n->next;
    return JRN__HOP;
}

static jrn__step_result step_update(jrn__run *r, const jrn_node *n, jrn__hop *hop)
{
    r->io->update(r->io->self, r->in, n, r->now);
    hop->to = n->next;
    return JRN__HOP;
}

static jrn__step_result step_exit(jrn__run *r, const jrn_node *n, jrn__hop *hop)
{
    (void)r; (void)n;
    hop->to = JRN_NONE;   /* the reason is n->u.exit.reason, read by on_exit from in->node */
    return JRN__HOP;
}

const jrn__step_fn jrn__steps[JRN_KIND_COUNT_] = {
    [JRN_WAIT]   = step_wait,
    [JRN_BRANCH] = step_branch,
    [JRN_SPLIT]  = step_split,
    [JRN_SEND]   = step_intent,
    [JRN_TASK]   = step_intent,
    [JRN_UPDATE] = step_update,
    [JRN_EXIT]   = step_exit,
    [JRN_DECIDE] = NULL,         /* reserved: refused by validation */
};
