/* include/journeyd/instance.h -- one person's progress through one journey
 * version (part of the journey module).
 *
 * Owns: the instance state machine as pure step functions. Given a compiled
 * jrn_doc, an instance and one input (an entry, an event, a fired timer), a step
 * moves the instance through nodes until it waits or exits, and reports what it
 * did through the jrn_io callbacks: timers to arm or cancel, delivery and task
 * intents with deterministic ids, profile updates, node transitions (for
 * analytics), and the exit. No clock (time is an argument), no randomness
 * (split draws hash the instance id), no I/O: the shard that hosts instances
 * turns the callbacks into timer-wheel entries, log records and counters, so
 * replaying the log replays every decision.
 * Threading: instances belong to the shard thread that owns their profile.
 * Not here: storing instances, routing events to them, the timer wheel itself,
 * evaluating expressions (the io's eval callback does, with the activation).
 */
#ifndef JOURNEYD_INSTANCE_H
#define JOURNEYD_INSTANCE_H

#include "journeyd/base.h"
#include "journeyd/ingest.h"
#include "journeyd/journey.h"
#include "journeyd/timer.h"

typedef enum {
    JRN_ST_ACTIVE = 1,   /* between nodes inside a step (never seen between steps) */
    JRN_ST_WAITING,      /* parked on a wait node: a timer and/or an awaited event */
    JRN_ST_PAUSED,       /* an exit rule with action pause fired; waits for resume_event */
    JRN_ST_EXITED,
} jrn_state;

typedef enum {
    JRN_END_FINISHED = 1,  /* ran off the last node or reached an exit node */
    JRN_END_GOAL,          /* the goal event arrived within its window: converted */
    JRN_END_EXIT_RULE,     /* an exit rule with action end */
    JRN_END_CONTROL,       /* assigned to a split's control/holdout variant with no next */
    JRN_END_ERROR,         /* the step budget ran out (or, with a host that ends on them, an expression error) */
    JRN_END_ARCHIVED,      /* the journey was archived while the instance was in it */
    JRN_END_DELETED,       /* the person was deleted (DELETE /v1/profiles/{id}) */
    JRN_END_MERGED,        /* two people merged, both in this journey: the other side went on (jrn_host_merge_in) */
    JRN_END_COUNT_
} jrn_end;
const char *jrn_end_name(jrn_end why);   /* "finished", "goal", "exit_rule", "control", "error", "archived", "deleted", "merged" */

/* How an instance left a node, for per-edge analytics. */
typedef enum {
    JRN_EDGE_NEXT = 1, JRN_EDGE_BRANCH_ARM, JRN_EDGE_BRANCH_ELSE, JRN_EDGE_SPLIT_VARIANT,
    JRN_EDGE_WAIT_EVENT, JRN_EDGE_WAIT_TIMEOUT, JRN_EDGE_WAIT_DONE,
} jrn_edge;

/* One instance: small, fixed size (88 bytes), no pointers to the profile.
 * Embeds its timer (32 bytes) so a wait costs no allocation. Target: under
 * 200 bytes together with the host's records (docs/internals/instance.md). */
typedef struct jrn_instance {
    tw_entry timer;            /* armed while WAITING on a duration/until/timeout */
    uint64_t id;               /* hash(journey id, version, profile key, entry_seq given to jrn_enter) */
    int64_t  entered_us;       /* time of entry */
    int64_t  node_since_us;    /* when the current node was reached */
    int64_t  paused_left_us;   /* PAUSED: time left on the wait's timer, -1 none */
    uint32_t paused_rule;      /* PAUSED: index in doc->exits of the rule that paused; JRN_NONE otherwise */
    uint32_t version;
    uint32_t node;             /* current node index (valid while WAITING/PAUSED) */
    uint32_t steps;            /* node visits so far (part of intent ids: loops revisit) */
    uint16_t variant;          /* last split variant index + 1 (0: none; saturates at UINT16_MAX) */
    uint8_t  state;            /* jrn_state */
    uint8_t  end;              /* jrn_end once EXITED */
} jrn_instance;

/* What a step needs from its host and tells it. Every callback gets io->self. */
typedef struct jrn_io {
    void *self;
    /* Evaluates a condition with variables event (ev, may be NULL), profile,
     * journey (this instance) and now. JD_OK and *out, or an error (the
     * instance then ends with JRN_END_ERROR and err is reported to on_exit). */
    int  (*eval)(void *self, const jrn_instance *in, const expr_prog *p,
                 const ingest_event *ev, int64_t now_us, bool *out, jd_err *err);
    /* The profile trait `key` as text (for the time-zone trait), or NULL. */
    const char *(*trait)(void *self, const char *key);
    /* Arms in->timer for when_us (tw_arm): a pause reads the deadline back
     * from in->timer.when_us to keep the time left. */
    void (*arm)(void *self, jrn_instance *in, int64_t when_us);
    void (*cancel)(void *self, jrn_instance *in);
    /* A send or task node was reached: intent_id is
     * hash(instance id, node index, steps) and never changes across replays
     * (it is the provider's idempotency key). */
    void (*intent)(void *self, const jrn_instance *in, const jrn_node *node, uint64_t intent_id, int64_t now_us);
    /* An update node was reached: the host applies its ops to the profile. */
    void (*update)(void *self, const jrn_instance *in, const jrn_node *node, int64_t now_us);
    /* The instance moved from node `from` (JRN_NONE on entry) to `to` (JRN_NONE
     * when it leaves the graph) by `edge`; arm is the branch arm or variant index. */
    void (*transition)(void *self, const jrn_instance *in, uint32_t from, uint32_t to,
                       jrn_edge edge, uint32_t arm, int64_t now_us);
    void (*on_exit)(void *self, const jrn_instance *in, jrn_end why, const jd_err *err, int64_t now_us);
    /* Is the instance's person a member of segment `id` now? Asked when a
     * wait on a segment change is reached (already there: it goes on at
     * once). NULL: never a member. */
    bool (*in_segment)(void *self, const jrn_instance *in, const char *id);
} jrn_io;

/* Node visits one call (enter, event, timer) may make before the instance
 * ends with JRN_END_ERROR "step budget exceeded". A validated graph has a wait
 * in every cycle and at most 500 nodes, so this only defends against a bug. */
#define JRN_MAX_STEPS_PER_TURN 1000

/* Should `ev` enter a person into doc? Checks the entry event name and its
 * condition (through io->eval with no instance: in == NULL). Re-entry policy
 * is the host's (it knows the person's past instances). */
int  jrn_entry_matches(const jrn_doc *doc, const ingest_event *ev, int64_t now_us,
                       const jrn_io *io, bool *out, jd_err *err);
/* Re-entry policy: may a person enter now, given whether they are in the
 * journey and when they last entered (INT64_MIN: never)? */
bool jrn_reentry_allows(const jrn_doc *doc, bool in_journey, int64_t last_entered_us, int64_t now_us);

/* The id jrn_enter gives an instance: hash(journey id, version, key, entry_seq). */
uint64_t jrn_instance_id(const jrn_doc *doc, uint32_t version, jd_str key, uint64_t entry_seq);

/* Initializes `in` and runs it from the start node until it waits or exits.
 * `key` is the profile key (part of the instance id). */
void jrn_enter(const jrn_doc *doc, uint32_t version, jrn_instance *in, jd_str key,
               uint64_t entry_seq, const ingest_event *ev, int64_t now_us, const jrn_io *io);
/* An event for this instance's person: goal, exit rules (end/pause), resume
 * of a paused instance, and a wait for this event, in that order. */
void jrn_on_event(const jrn_doc *doc, jrn_instance *in, const ingest_event *ev,
                  int64_t now_us, const jrn_io *io);
/* Segment changes reach instances as events of this type (no ingest type
 * has it) named jrn_segment_event_name(id, entered) (journey.h). */
#define JRN_EV_SEGMENT ((ingest_type)0)
/* The person joined (entered) or left segment `id` at now_us: the goal, exit
 * rules and a wait written `segment_enter: <id>` / `segment_exit: <id>`
 * react as jrn_on_event does to an event. In their `when`, `event` is
 * {"type":"segment","event":"segment_enter"|"segment_exit","segment":"<id>"}. */
void jrn_on_segment(const jrn_doc *doc, jrn_instance *in, const char *id, bool entered,
                    int64_t now_us, const jrn_io *io);
/* The instance's timer fired at now_us (duration or until elapsed, or an
 * event wait timed out). */
void jrn_on_timer(const jrn_doc *doc, jrn_instance *in, int64_t now_us, const jrn_io *io);
/* Re-checks condition-only exit rules (after the profile changed). */
void jrn_on_profile_change(const jrn_doc *doc, jrn_instance *in, int64_t now_us, const jrn_io *io);

/* Ends a waiting or paused instance from outside (archive): cancels its
 * timer and reports on_exit with why. */
void jrn_abort(const jrn_doc *doc, jrn_instance *in, jrn_end why, int64_t now_us, const jrn_io *io);

/* What the instance waits for, for GET /v1/profiles/{id}/journeys:
 * "timer", "event:<name>", "segment_enter:<id>", "segment_exit:<id>",
 * "resume:<name>" or "" (not waiting). */
const char *jrn_instance_waiting_for(const jrn_doc *doc, const jrn_instance *in, char *buf, size_t n);

#endif
