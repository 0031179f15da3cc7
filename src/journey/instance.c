/*
** src/journey/instance.c -- one person's progress through one journey version:
** entry, events, timers. The contract is include/journeyd/instance.h; the node
** kinds' step functions are in instance_step.c; docs/internals/instance.md has
** the long form (ordering rules, determinism, ids, memory).
**
** States and transitions (each naming its function):
**
**   (none)  -> ACTIVE    [jrn_enter]           initialized, start node reached
**   ACTIVE  -> ACTIVE    [run]                 send/task/update/branch/split: next node
**   ACTIVE  -> WAITING   [run, step_wait]      a wait node: timer armed and/or event awaited
**   ACTIVE  -> ACTIVE    [run, step_wait]      a wait on a segment change that already holds
**   ACTIVE  -> EXITED    [run, jrn__end]       exit node, no next, control holdout,
**                                              expression error, step budget
**   WAITING -> ACTIVE    [jrn_on_timer]        duration/until elapsed, event wait timed out
**   WAITING -> ACTIVE    [jrn_on_event]        the awaited event (and its `when`)
**                        [jrn_on_segment]      the awaited segment change, as an event
**   WAITING -> PAUSED    [pause]               an exit rule with action pause
**   PAUSED  -> WAITING   [resume]              the pausing rule's resume_on event
**   WAITING,
**   PAUSED  -> EXITED    [jrn_on_event]        goal (JRN_END_GOAL), exit rule with action end
**                        [jrn_on_profile_change]  a condition-only exit rule
**
** Invariants:
**  (1) Between calls the state is WAITING, PAUSED or EXITED, never ACTIVE.
**  (2) The timer is armed <=> WAITING on a duration, an until, or an event wait
**      with a timeout (jrn__timer_armed). Every path out of WAITING cancels it
**      or was started by it firing.
**  (3) PAUSED <=> paused_rule != JRN_NONE; then paused_left_us >= 0 is the time
**      that was left on the timer, or -1 when the wait had none.
**  (4) Nothing here reads a clock, draws a random number or keeps a global:
**      the callbacks made are a function of (doc, instance, input, now, the
**      answers of io->eval and io->trait). Replaying the log replays them.
**  (5) Each call visits at most JRN_MAX_STEPS_PER_TURN nodes.
**  (6) Every node change is reported by io->transition before the node runs;
**      an instance leaving the graph by an edge gets a transition to JRN_NONE,
**      then on_exit. Exits by goal, exit rule or error get on_exit only.
**
** On an event the order is fixed: goal, exit rules (document order; the first
** that matches acts), resume, the awaited event. A pausing event does not also
** resume; a resuming event is then seen by the wait it resumed.
*/
#include <stdio.h>
#include <string.h>

#include "journeyd/tz.h"
#include "journey_int.h"

/* ---- ids and small helpers ---------------------------------------------- */

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t jrn__intent_id(uint64_t instance_id, uint32_t node, uint32_t steps)
{
    uint8_t b[16];
    put_le(b, instance_id, 8);
    put_le(b + 8, node, 4);
    put_le(b + 12, steps, 4);
    return jd_hash64(b, sizeof b);
}

/* A different seed from the intent ids, so a draw says nothing about an id. */
#define SPLIT_SEED UINT64_C(0x73706c6974647261)   /* "splitdra" */

uint64_t jrn__split_draw(uint64_t instance_id, uint32_t node)
{
    uint8_t b[12];
    put_le(b, instance_id, 8);
    put_le(b + 8, node, 4);
    return jd_hash64_seed(b, sizeof b, SPLIT_SEED);
}

uint64_t jrn_instance_id(const jrn_doc *doc, uint32_t version, jd_str key, uint64_t entry_seq)
{
    uint8_t b[12];
    uint64_t h = jd_hash64(doc->id, strlen(doc->id));
    put_le(b, version, 4);
    put_le(b + 4, entry_seq, 8);
    h = jd_hash64_seed(b, sizeof b, h);
    return jd_hash64_seed(key.n ? key.p : "", key.n, h);
}

int64_t jrn__add_us(int64_t t, uint64_t d)
{
    if (d > (uint64_t)INT64_MAX || t > INT64_MAX - (int64_t)d) return INT64_MAX;
    return t + (int64_t)d;
}

/* Only track events have names journeys listen to (docs/journeys.md §3), and
 * a segment event name is matched by a segment change only (journey.h). */
static bool ev_named(const ingest_event *ev, const char *name)
{
    if (!ev || !name) return false;
    if (ev->type != (name[0] == JRN_SEGMENT_EVENT_MARK ? JRN_EV_SEGMENT : INGEST_TRACK)) return false;
    return jd_str_eq(ev->event, name, strlen(name));
}

void jrn__seg_event_make(jrn__seg_event *s, const char *id, bool entered, int64_t now_us)
{
    memset(&s->ev, 0, sizeof s->ev);
    jrn_segment_event_name(s->name, id, entered);
    int n = snprintf(s->json, sizeof s->json, "{\"type\":\"segment\",\"event\":\"segment_%s\",\"segment\":\"%.64s\"}",
                     entered ? "enter" : "exit", id);   /* ids are [A-Za-z0-9_-]: nothing to escape */
    s->ev.type = JRN_EV_SEGMENT;
    s->ev.timestamp_us = s->ev.received_us = now_us;
    s->ev.event = (jd_str){ s->name, (uint32_t)strlen(s->name) };
    s->ev.json = (jd_str){ s->json, (uint32_t)(n > 0 && (size_t)n < sizeof s->json ? n : 0) };
}

bool jrn__timer_armed(const jrn_doc *doc, const jrn_instance *in)
{
    if (in->state != JRN_ST_WAITING || in->node >= doc->nnodes) return false;
    const jrn_node *n = &doc->nodes[in->node];
    if (n->kind != JRN_WAIT) return false;
    return n->u.wait.kind != JRN_WAIT_EVENT || n->u.wait.timeout_us > 0;
}

bool jrn__eval(jrn__run *r, const expr_prog *p, bool *out)
{
    jd_err err;
    jd_err_clear(&err);
    if (!p) { *out = true; return true; }   /* an absent condition holds */
    if (r->io->eval(r->io->self, r->in, p, r->ev, r->now, out, &err) == JD_OK) return true;
    if (err.code == JD_OK) err.code = JD_EINVAL;
    jrn__end(r, JRN_END_ERROR, &err);
    return false;
}

void jrn__end(jrn__run *r, jrn_end why, const jd_err *err)
{
    jrn_instance *in = r->in;
    if (jrn__timer_armed(r->doc, in)) r->io->cancel(r->io->self, in);
    in->state = JRN_ST_EXITED;
    in->end = (uint8_t)why;
    in->paused_rule = JRN_NONE;
    in->paused_left_us = -1;
    r->io->on_exit(r->io->self, in, why, err, r->now);
}

/* ---- the run loop ---------------------------------------------------------- */

/* Moves the instance along hop and runs nodes until it waits or exits. The
 * caller has cancelled the timer, or it fired: from here on it is not armed. */
static void run(jrn__run *r, jrn__hop hop)
{
    jrn_instance *in = r->in;
    in->state = JRN_ST_ACTIVE;
    for (;;) {
        r->io->transition(r->io->self, in, in->node, hop.to, hop.edge, hop.arm, r->now);
        if (hop.to == JRN_NONE) { jrn__end(r, hop.end, NULL); return; }
        in->node = hop.to;
        in->node_since_us = r->now;
        in->steps++;
        const jrn_node *n = &r->doc->nodes[hop.to];
        if (++r->visits > JRN_MAX_STEPS_PER_TURN) {
            jd_err err;
            jd_err_set(&err, JD_ELIMIT, n->id, "step budget exceeded (%d node visits in one turn)",
                       JRN_MAX_STEPS_PER_TURN);
            jrn__end(r, JRN_END_ERROR, &err);
            return;
        }
        jrn__step_fn step = (unsigned)n->kind < JRN_KIND_COUNT_ ? jrn__steps[n->kind] : NULL;
        if (!step) {
            jd_err err;
            jd_err_set(&err, JD_EINVAL, n->id, "node kind %d cannot run", (int)n->kind);
            jrn__end(r, JRN_END_ERROR, &err);
            return;
        }
        hop = (jrn__hop){ JRN_NONE, JRN_EDGE_NEXT, 0, JRN_END_FINISHED };
        jrn__step_result res = step(r, n, &hop);
        if (res != JRN__HOP) return;   /* PARK: waiting; GONE: ended in the step */
    }
}

/* ---- entry ----------------------------------------------------------------- */

int jrn_entry_matches(const jrn_doc *doc, const ingest_event *ev, int64_t now_us,
                      const jrn_io *io, bool *out, jd_err *err)
{
    *out = false;
    if (doc->entry.kind != JRN_ENTRY_EVENT || !ev_named(ev, doc->entry.event)) return JD_OK;
    if (!doc->entry.when) { *out = true; return JD_OK; }
    return io->eval(io->self, NULL, doc->entry.when, ev, now_us, out, err);
}

bool jrn_reentry_allows(const jrn_doc *doc, bool in_journey, int64_t last_entered_us, int64_t now_us)
{
    if (last_entered_us == INT64_MIN) return true;        /* never entered */
    if (doc->reentry == JRN_REENTRY_NEVER) return false;
    if (in_journey && !doc->allow_concurrent) return false;
    if (doc->reentry == JRN_REENTRY_ALWAYS) return true;
    /* cooldown: at least cooldown_us since the last entry (out of order: no) */
    return now_us >= last_entered_us && (uint64_t)now_us - (uint64_t)last_entered_us >= doc->cooldown_us;
}

void jrn_enter(const jrn_doc *doc, uint32_t version, jrn_instance *in, jd_str key,
               uint64_t entry_seq, const ingest_event *ev, int64_t now_us, const jrn_io *io)
{
    memset(in, 0, sizeof *in);
    in->id = jrn_instance_id(doc, version, key, entry_seq);
    in->entered_us = now_us;
    in->node_since_us = now_us;
    in->paused_left_us = -1;
    in->paused_rule = JRN_NONE;
    in->version = version;
    in->node = JRN_NONE;
    in->state = JRN_ST_ACTIVE;   /* node JRN_NONE: the first move is from outside the graph */
    jrn__run r = { doc, in, ev, now_us, io, 0 };
    run(&r, (jrn__hop){ doc->start, JRN_EDGE_NEXT, 0, JRN_END_FINISHED });
}

/* ---- events ---------------------------------------------------------------- */

static void pause_at(jrn__run *r, uint32_t rule)
{
    jrn_instance *in = r->in;
    in->paused_left_us = -1;
    if (jrn__timer_armed(r->doc, in)) {
        /* Hold the timer: keep what was left, so the wait lasts as long as written. */
        int64_t when = in->timer.when_us > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)in->timer.when_us;
        in->paused_left_us = when > r->now ? when - r->now : 0;
        r->io->cancel(r->io->self, in);
    }
    in->paused_rule = rule;
    in->state = JRN_ST_PAUSED;
}

static void resume(jrn__run *r)
{
    jrn_instance *in = r->in;
    in->state = JRN_ST_WAITING;
    in->paused_rule = JRN_NONE;
    if (in->paused_left_us >= 0) r->io->arm(r->io->self, in, jrn__add_us(r->now, (uint64_t)in->paused_left_us));
    in->paused_left_us = -1;
}

/* The goal: true if the instance ended (converted or by an error). */
static bool check_goal(jrn__run *r)
{
    const jrn_doc *doc = r->doc;
    bool ok = false;
    if (!doc->goal.present || !ev_named(r->ev, doc->goal.event)) return false;
    if (doc->goal.within_us && (r->now < r->in->entered_us ||
                                (uint64_t)r->now - (uint64_t)r->in->entered_us > doc->goal.within_us))
        return false;
    if (!jrn__eval(r, doc->goal.when, &ok)) return true;
    if (ok) jrn__end(r, JRN_END_GOAL, NULL);
    return ok;
}

/* Exit rules in document order; with ev NULL only condition-only rules apply.
 * Returns true if the event was consumed (ended or paused). */
static bool check_exits(jrn__run *r)
{
    for (uint32_t i = 0; i < r->doc->nexits; i++) {
        const jrn_exit_rule *x = &r->doc->exits[i];
        bool ok = false;
        if (x->event ? !ev_named(r->ev, x->event) : !x->when) continue;
        if (x->action == JRN_EXIT_PAUSE && r->in->state == JRN_ST_PAUSED) continue;   /* already held */
        if (!jrn__eval(r, x->when, &ok)) return true;
        if (!ok) continue;
        if (x->action == JRN_EXIT_PAUSE) pause_at(r, i);
        else jrn__end(r, JRN_END_EXIT_RULE, NULL);
        return true;
    }
    return false;
}

void jrn_on_event(const jrn_doc *doc, jrn_instance *in, const ingest_event *ev,
                  int64_t now_us, const jrn_io *io)
{
    jrn__run r = { doc, in, ev, now_us, io, 0 };
    if (in->state != JRN_ST_WAITING && in->state != JRN_ST_PAUSED) return;
    if (check_goal(&r) || check_exits(&r)) return;
    if (in->state == JRN_ST_PAUSED) {
        if (in->paused_rule >= doc->nexits || !ev_named(ev, doc->exits[in->paused_rule].resume_event)) return;
        resume(&r);
    }
    const jrn_node *n = &doc->nodes[in->node];
    if (n->kind != JRN_WAIT || n->u.wait.kind != JRN_WAIT_EVENT || !ev_named(ev, n->u.wait.event)) return;
    bool ok = false;
    if (!jrn__eval(&r, n->u.wait.event_when, &ok) || !ok) return;
    if (jrn__timer_armed(doc, in)) io->cancel(io->self, in);
    run(&r, (jrn__hop){ n->next, JRN_EDGE_WAIT_EVENT, 0, JRN_END_FINISHED });
}

void jrn_on_segment(const jrn_doc *doc, jrn_instance *in, const char *id, bool entered,
                    int64_t now_us, const jrn_io *io)
{
    jrn__seg_event se;
    jrn__seg_event_make(&se, id, entered, now_us);
    jrn_on_event(doc, in, &se.ev, now_us, io);
}

void jrn_on_timer(const jrn_doc *doc, jrn_instance *in, int64_t now_us, const jrn_io *io)
{
    if (!jrn__timer_armed(doc, in)) return;   /* stale: paused, moved on or exited */
    const jrn_node *n = &doc->nodes[in->node];
    jrn__run r = { doc, in, NULL, now_us, io, 0 };
    if (n->u.wait.kind == JRN_WAIT_EVENT)
        run(&r, (jrn__hop){ n->u.wait.timeout_next, JRN_EDGE_WAIT_TIMEOUT, 0, JRN_END_FINISHED });
    else
        run(&r, (jrn__hop){ n->next, JRN_EDGE_WAIT_DONE, 0, JRN_END_FINISHED });
}

void jrn_on_profile_change(const jrn_doc *doc, jrn_instance *in, int64_t now_us, const jrn_io *io)
{
    jrn__run r = { doc, in, NULL, now_us, io, 0 };
    if (in->state != JRN_ST_WAITING && in->state != JRN_ST_PAUSED) return;
    check_exits(&r);
}

void jrn_abort(const jrn_doc *doc, jrn_instance *in, jrn_end why, int64_t now_us, const jrn_io *io)
{
    jrn__run r = { doc, in, NULL, now_us, io, 0 };
    if (in->state != JRN_ST_WAITING && in->state != JRN_ST_PAUSED) return;
    jrn__end(&r, why, NULL);
}

const char *jrn_end_name(jrn_end why)
{
    static const char *const names[JRN_END_COUNT_] = {
        [JRN_END_FINISHED] = "finished", [JRN_END_GOAL] = "goal", [JRN_END_EXIT_RULE] = "exit_rule",
        [JRN_END_CONTROL] = "control", [JRN_END_ERROR] = "error", [JRN_END_ARCHIVED] = "archived",
        [JRN_END_DELETED] = "deleted", [JRN_END_MERGED] = "merged",
    };
    return (unsigned)why < JRN_END_COUNT_ && names[why] ? names[why] : "unknown";
}

const char *jrn_instance_waiting_for(const jrn_doc *doc, const jrn_instance *in, char *buf, size_t n)
{
    if (!n) return buf;
    buf[0] = '\0';
    if (in->state == JRN_ST_PAUSED && in->paused_rule < doc->nexits) {
        snprintf(buf, n, "resume:%s", doc->exits[in->paused_rule].resume_event);
    } else if (in->state == JRN_ST_WAITING && in->node < doc->nnodes && doc->nodes[in->node].kind == JRN_WAIT) {
        const jrn_node *w = &doc->nodes[in->node];
        bool enter = false;
        const char *seg = w->u.wait.kind == JRN_WAIT_EVENT ? jrn_segment_event_parse(w->u.wait.event, &enter) : NULL;
        if (seg) snprintf(buf, n, "segment_%s:%s", enter ? "enter" : "exit", seg);
        else if (w->u.wait.kind == JRN_WAIT_EVENT) snprintf(buf, n, "event:%s", w->u.wait.event);
        else snprintf(buf, n, "timer");
    }
    return buf;
}
