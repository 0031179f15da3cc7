/*
** src/engine/tasks.c -- the human task queue: task nodes become tasks in the
** partition that owns the person; people claim and complete them through the
** API; completing one writes a `Task Completed` event for the person.
**
** A task's life, each transition caused by one log record:
**
**   (none) -> OPEN      [eng__tasks_intent]  a task node's intent, in the turn
**                                            of the record that reached it
**   OPEN    -> CLAIMED  [apply_claim]        a TASK record {"op":"claim"}
**   OPEN|CLAIMED -> DONE [apply_complete]    a TASK record {"op":"complete"},
**                                            written after the task's event
**   DONE    -> (gone)   [evict_done]         the oldest done task, once more
**                                            than tasks.max_open are done
**
** The API id is "<partition>-<intent id as 16 hex digits>", so a claim or a
** completion goes straight to the partition (and shard) that holds the task;
** the intent id alone is the task's key inside the partition.
**
** A change runs in three hops, like an API entry (journeys.c):
**
**   caller -> task's shard: checked (404, 409), the record built  [change_check]
**          -> committer: made durable                              [change_committed]
**          -> task's shard: the applied result read back           [change_after]
**
** Invariants:
**  (1) Tasks are a function of the log: created by replayed intents as they
**      were live, changed only by TASK records (and DELETE, which forgets a
**      person's tasks); snapshots keep them (eng__tasks_encode, format 4).
**  (2) A completion's transaction is the event (a track `Task Completed`,
**      messageId "task-<id>-completed", routed like any event) then the TASK
**      record, whole or absent after a crash. So the record applying means
**      the event was written; applying it completes any task not yet done.
**  (3) Between its check and its record applying, a completion holds the task
**      (`completing`, memory only, never state): a second completion or a
**      claim is refused 409 at its check, so no task writes two events. The
**      fixed messageId also makes the log's dedupe drop a second event.
**  (4) Open (and claimed) tasks per partition are at most tasks.max_open: a
**      task past it is dropped, counted and named in a warning; done tasks
**      are kept up to the same number, the oldest evicted first.
**  (5) Applying reads no clock: times come from the records.
*/
#include "engine_int.h"
#include "journeyd/limits.h"
#include "journeyd/template.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TASK_RESULTS      8        /* applied outcomes kept for the requests waiting on them */
#define TASK_TITLE_MAX    1024     /* bytes of a rendered title; past it the node's text is kept */
#define TASK_ID_TEXT      32       /* "<partition>-<16 hex>" and its NUL */

enum { T_OPEN, T_CLAIMED, T_DONE };
static const char *const status_names[] = { [T_OPEN] = "open", [T_CLAIMED] = "claimed", [T_DONE] = "done" };

typedef struct task {
    uint64_t id;                 /* the intent id */
    uint64_t lsn, seq;           /* the record that created it; creation order in the partition */
    char    *queue, *title, *key, *journey, *node;
    char    *assignee, *outcome, *note;   /* NULL until claimed / completed */
    uint32_t version;
    int      status;
    bool     key_is_user;        /* the event goes out with userId (else anonymousId) = key */
    bool     completing;         /* invariant (3): not state, not in snapshots */
    int64_t  created_us, claimed_us, done_us;
    struct task *done_next;      /* done tasks, oldest first */
} task;

typedef struct task_result { uint64_t lsn; int rc; jd_err err; } task_result;

struct eng_tasks {
    jd_map  *by_id;              /* 8-byte intent id -> task */
    uint32_t open;               /* OPEN + CLAIMED */
    uint32_t ndone;
    task    *done_head, *done_tail;
    uint64_t seq, dropped;
    task_result res[TASK_RESULTS];   /* by lsn % TASK_RESULTS */
};

static uint32_t max_open(const eng *e) { return e->o.tasks_max_open ? e->o.tasks_max_open : JD_DEF_TASKS_MAX_OPEN; }

static void task_free(task *t)
{
    if (!t) return;
    free(t->queue);
    free(t->title);
    free(t->key);
    free(t->journey);
    free(t->node);
    free(t->assignee);
    free(t->outcome);
    free(t->note);
    free(t);
}

void eng__tasks_init(eng_part *p)
{
    p->tasks = jd_xcalloc(1, sizeof *p->tasks);
    p->tasks->by_id = jd_map_create(0);
}

void eng__tasks_release(eng_part *p)
{
    if (!p->tasks) return;
    size_t pos = 0;
    void *v;
    while (jd_map_next(p->tasks->by_id, &pos, NULL, NULL, &v)) task_free(v);
    jd_map_destroy(p->tasks->by_id);
    free(p->tasks);
    p->tasks = NULL;
}

static task *find(const eng_part *p, uint64_t id) { return jd_map_get(p->tasks->by_id, (const char *)&id, sizeof id); }

static void format_id(uint32_t partition, uint64_t id, char out[TASK_ID_TEXT])
{
    snprintf(out, TASK_ID_TEXT, "%u-%016llx", partition, (unsigned long long)id);
}

/* "<partition>-<16 hex>" -> its parts; false if it is not one (then: 404). */
static bool parse_id(const eng *e, const char *s, uint32_t *partition, uint64_t *id)
{
    uint64_t part = 0, v = 0;
    size_t i = 0;
    for (; s[i] >= '0' && s[i] <= '9' && i < 5; i++) part = part * 10 + (uint64_t)(s[i] - '0');
    if (i == 0 || s[i] != '-' || part >= e->nparts) return false;
    const char *h = s + i + 1;
    for (i = 0; i < 16; i++) {
        char c = h[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return false;
        v = v << 4 | (uint64_t)d;
    }
    if (h[16]) return false;
    *partition = (uint32_t)part;
    *id = v;
    return true;
}

/* ---- creating: a task node's intent ------------------------------------------ */

/* The title is a Liquid template over profile, event, journey and task. A
 * title that does not compile or render stays the node's text (journeys are
 * checked at publish; a render error is about this person's data). */
static char *render_title(const jrn_intent *it, const char *api_id)
{
    const char *src = it->node->u.task.title ? it->node->u.task.title : "";
    if (!strstr(src, "{{") && !strstr(src, "{%")) return jd_xstrdup(src);
    tpl *t = NULL;
    jd_err err;
    char *out = NULL;
    if (tpl_compile(it->node->id, src, strlen(src), NULL, &t, &err) != JD_OK) goto out;
    json_object *v = eng__intent_vars(it), *tk = json_object_new_object();
    json_object_object_add(tk, "id", json_object_new_string(api_id));
    json_object_object_add(tk, "queue", json_object_new_string(it->node->u.task.queue ? it->node->u.task.queue : ""));
    json_object_object_add(v, "task", tk);
    tpl_render_opts ro = { .has_now = true, .now_us = it->at_us, .max_output = TASK_TITLE_MAX };
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    if (tpl_render(t, v, &ro, &b, &err) == JD_OK) out = jd_xstrndup(b.data ? b.data : "", b.len);
    jd_buf_release(&b);
    json_object_put(v);
out:
    if (!out) jd_debug("task %s: title kept as written: %s%s%s", api_id, err.msg, err.where[0] ? " at " : "", err.where);
    tpl_destroy(t);
    return out ? out : jd_xstrdup(src);
}

void eng__tasks_intent(eng_part *p, const jrn_intent *it)
{
    eng *e = p->e;
    struct eng_tasks *ts = p->tasks;
    if (it->node->kind != JRN_TASK || find(p, it->id)) return;   /* the same intent twice: one task */
    char api_id[TASK_ID_TEXT];
    format_id(p->index, it->id, api_id);
    if (ts->open >= max_open(e)) {   /* (4) */
        ts->dropped++;
        atomic_fetch_add_explicit(&e->st_tasks_dropped, 1, memory_order_relaxed);
        if ((ts->dropped & (ts->dropped - 1)) == 0)   /* 1, 2, 4, 8...: named without flooding the log */
            jd_warn("tasks: partition %u has %u open tasks (tasks.max_open); task %s of %.*s (%s/%s) dropped, "
                    "%llu so far", p->index, ts->open, api_id, (int)it->key.n, it->key.p, it->journey->id,
                    it->node->id, (unsigned long long)ts->dropped);
        return;
    }
    json_object *u = NULL;
    task *t = jd_xcalloc(1, sizeof *t);
    t->id = it->id;
    t->lsn = it->lsn;
    t->seq = ++ts->seq;
    t->queue = jd_xstrdup(it->node->u.task.queue ? it->node->u.task.queue : "");
    t->title = render_title(it, api_id);
    t->key = jd_xstrndup(it->key.p, it->key.n);
    t->journey = jd_xstrdup(it->journey->id);
    t->node = jd_xstrdup(it->node->id);
    t->version = it->version;
    t->status = T_OPEN;
    /* A profile without a userId is keyed by its anonymousId; no profile at
     * all (an API entry of someone never seen) is a userId. */
    t->key_is_user = !prof_is_key(p->profiles, it->key.p, it->key.n) || json_object_object_get_ex(it->profile, "userId", &u);
    t->created_us = it->at_us;
    jd_map_put(ts->by_id, (const char *)&t->id, sizeof t->id, t);
    ts->open++;
}

/* ---- JSON ---------------------------------------------------------------------- */

static void add_time(json_object *o, const char *k, int64_t us)
{
    char t[JD_TIME_TEXT];
    jd_time_format(us, t);
    json_object_object_add(o, k, json_object_new_string(t));
}

static void add_str(json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

/* The API's view of a task (docs/api.md "Tasks"). */
static json_object *task_json(uint32_t partition, const task *t)
{
    char id[TASK_ID_TEXT];
    format_id(partition, t->id, id);
    json_object *o = json_object_new_object();
    add_str(o, "id", id);
    add_str(o, "queue", t->queue);
    add_str(o, "title", t->title);
    add_str(o, "status", status_names[t->status]);
    add_str(o, "person", t->key);
    add_str(o, "journey", t->journey);
    json_object_object_add(o, "version", json_object_new_int64(t->version));
    add_str(o, "node", t->node);
    add_time(o, "created_at", t->created_us);
    add_str(o, "assignee", t->assignee);
    if (t->claimed_us) add_time(o, "claimed_at", t->claimed_us);
    else add_str(o, "claimed_at", NULL);
    add_str(o, "outcome", t->outcome);
    add_str(o, "note", t->note);
    if (t->status == T_DONE) add_time(o, "completed_at", t->done_us);
    else add_str(o, "completed_at", NULL);
    return o;
}

static void reply_json(eng_json_fn done, void *ctx, json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    done(ctx, JD_OK, NULL, s, strlen(s));
}

/* ---- applying TASK records ------------------------------------------------------- */

static void done_push(struct eng_tasks *ts, task *t)
{
    t->done_next = NULL;
    if (ts->done_tail) ts->done_tail->done_next = t;
    else ts->done_head = t;
    ts->done_tail = t;
    ts->ndone++;
}

static void done_unlink(struct eng_tasks *ts, task *t)
{
    task **pp = &ts->done_head, *prev = NULL;
    while (*pp && *pp != t) { prev = *pp; pp = &(*pp)->done_next; }
    if (!*pp) return;
    *pp = t->done_next;
    if (ts->done_tail == t) ts->done_tail = prev;
    ts->ndone--;
}

/* (4): the oldest done tasks go once more than max_open are done. */
static void evict_done(eng *e, struct eng_tasks *ts)
{
    while (ts->ndone > max_open(e)) {
        task *t = ts->done_head;
        ts->done_head = t->done_next;
        if (!ts->done_head) ts->done_tail = NULL;
        ts->ndone--;
        jd_map_del(ts->by_id, (const char *)&t->id, sizeof t->id);
        task_free(t);
    }
}

static int apply_claim(eng_part *p, task *t, const char *assignee, int64_t at, jd_err *err)
{
    char id[TASK_ID_TEXT];
    format_id(p->index, t->id, id);
    if (t->status == T_DONE) return jd_err_set(err, JD_EBUSY, "status", "task %s is done", id);
    if (t->status == T_CLAIMED && strcmp(t->assignee, assignee) != 0)
        return jd_err_set(err, JD_EBUSY, "assignee", "task %s is claimed by '%s'", id, t->assignee);
    if (t->status == T_CLAIMED) return JD_OK;   /* the same person again: nothing changes */
    t->status = T_CLAIMED;
    t->assignee = jd_xstrdup(assignee);
    t->claimed_us = at;
    return JD_OK;
}

/* (2): the event is in the log already, so anything not done completes. */
static int apply_complete(eng_part *p, task *t, json_object *o, int64_t at, jd_err *err)
{
    const char *outcome = eng__jstr(o, "outcome"), *note = eng__jstr(o, "note"), *who = eng__jstr(o, "assignee");
    t->completing = false;
    if (t->status == T_DONE) {
        char id[TASK_ID_TEXT];
        format_id(p->index, t->id, id);
        return jd_err_set(err, JD_EBUSY, "status", "task %s is done", id);
    }
    if (!t->assignee && who) t->assignee = jd_xstrdup(who);
    t->outcome = jd_xstrdup(outcome ? outcome : "");
    t->note = note ? jd_xstrdup(note) : NULL;
    t->status = T_DONE;
    t->done_us = at;
    p->tasks->open--;
    done_push(p->tasks, t);
    evict_done(p->e, p->tasks);
    return JD_OK;
}

int eng__apply_task(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng_part *p = &sh->e->parts[h->partition];
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, (const char *)(h + 1), (int)h->len);
    json_tokener_free(tok);
    const char *op = o ? eng__jstr(o, "op") : NULL, *hex = o ? eng__jstr(o, "task") : NULL;
    if (!op || !hex || (strcmp(op, "claim") && strcmp(op, "complete"))) {
        json_object_put(o);
        return jd_err_set(err, JD_ECORRUPT, "", "malformed TASK record %llu", (unsigned long long)h->lsn);
    }
    uint64_t id = strtoull(hex, NULL, 16);
    int64_t at = eng__jint(o, "at");
    task_result *res = &p->tasks->res[h->lsn % TASK_RESULTS];
    res->lsn = h->lsn;
    jd_err_clear(&res->err);
    task *t = find(p, id);
    const char *assignee = eng__jstr(o, "assignee");
    if (!t) res->rc = jd_err_set(&res->err, JD_ENOTFOUND, "id", "no task %u-%s", p->index, hex);
    else if (op[1] == 'l') res->rc = apply_claim(p, t, assignee ? assignee : "", at, &res->err);
    else res->rc = apply_complete(p, t, o, at, &res->err);
    json_object_put(o);
    return JD_OK;   /* a refusal is an answer for the request, not a failure to apply */
}

/* DELETE (journeys.c): the person's tasks go with them. */
void eng__tasks_forget(eng_part *p, const char *key)
{
    struct eng_tasks *ts = p->tasks;
    size_t pos = 0;
    void *v;
    task **gone = NULL;
    size_t n = 0;
    while (jd_map_next(ts->by_id, &pos, NULL, NULL, &v)) {
        task *t = v;
        if (strcmp(t->key, key) != 0) continue;
        gone = jd_xrealloc(gone, (n + 1) * sizeof *gone);
        gone[n++] = t;
    }
    for (size_t i = 0; i < n; i++) {
        task *t = gone[i];
        if (t->status == T_DONE) done_unlink(ts, t);
        else ts->open--;
        jd_map_del(ts->by_id, (const char *)&t->id, sizeof t->id);
        task_free(t);
    }
    free(gone);
}

/* ---- snapshots: {"seq":n,"dropped":n,"tasks":[... open, then done oldest first]} -- */

static json_object *snap_json(const task *t)
{
    json_object *o = json_object_new_object();
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)t->id);
    add_str(o, "id", hex);
    json_object_object_add(o, "lsn", json_object_new_int64((int64_t)t->lsn));
    json_object_object_add(o, "seq", json_object_new_int64((int64_t)t->seq));
    add_str(o, "queue", t->queue);
    add_str(o, "title", t->title);
    add_str(o, "key", t->key);
    json_object_object_add(o, "user", json_object_new_boolean(t->key_is_user));
    add_str(o, "journey", t->journey);
    json_object_object_add(o, "version", json_object_new_int64(t->version));
    add_str(o, "node", t->node);
    add_str(o, "status", status_names[t->status]);
    json_object_object_add(o, "created", json_object_new_int64(t->created_us));
    if (t->assignee) add_str(o, "assignee", t->assignee);
    if (t->claimed_us) json_object_object_add(o, "claimed", json_object_new_int64(t->claimed_us));
    if (t->outcome) add_str(o, "outcome", t->outcome);
    if (t->note) add_str(o, "note", t->note);
    if (t->status == T_DONE) json_object_object_add(o, "done", json_object_new_int64(t->done_us));
    return o;
}

/* Open tasks first by creation, then done ones oldest first, so decoding
 * rebuilds the done order (4) by appending. */
static int cmp_seq(const void *a, const void *b)
{
    const task *x = *(task *const *)a, *y = *(task *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void eng__tasks_encode(const eng_part *p, jd_buf *out)
{
    const struct eng_tasks *ts = p->tasks;
    json_object *o = json_object_new_object(), *arr = json_object_new_array();
    size_t n = 0, pos = 0;
    void *v;
    task **open = jd_xcalloc(ts->open + 1, sizeof *open);
    while (jd_map_next(ts->by_id, &pos, NULL, NULL, &v))
        if (((task *)v)->status != T_DONE && n < ts->open) open[n++] = v;
    qsort(open, n, sizeof *open, cmp_seq);
    for (size_t i = 0; i < n; i++) json_object_array_add(arr, snap_json(open[i]));
    for (const task *t = ts->done_head; t; t = t->done_next) json_object_array_add(arr, snap_json(t));
    free(open);
    json_object_object_add(o, "seq", json_object_new_int64((int64_t)ts->seq));
    json_object_object_add(o, "dropped", json_object_new_int64((int64_t)ts->dropped));
    json_object_object_add(o, "tasks", arr);
    jd_buf_adds(out, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

static task *task_from_json(json_object *o)
{
    const char *id = eng__jstr(o, "id"), *q = eng__jstr(o, "queue"), *title = eng__jstr(o, "title"),
               *key = eng__jstr(o, "key"), *j = eng__jstr(o, "journey"), *n = eng__jstr(o, "node"),
               *st = eng__jstr(o, "status");
    if (!id || !q || !title || !key || !j || !n || !st) return NULL;
    int status = -1;
    for (int i = 0; i < (int)JD_ARRAY_LEN(status_names); i++)
        if (strcmp(st, status_names[i]) == 0) status = i;
    if (status < 0) return NULL;
    task *t = jd_xcalloc(1, sizeof *t);
    json_object *u;
    t->id = strtoull(id, NULL, 16);
    t->lsn = (uint64_t)eng__jint(o, "lsn");
    t->seq = (uint64_t)eng__jint(o, "seq");
    t->queue = jd_xstrdup(q);
    t->title = jd_xstrdup(title);
    t->key = jd_xstrdup(key);
    t->key_is_user = !json_object_object_get_ex(o, "user", &u) || json_object_get_boolean(u);
    t->journey = jd_xstrdup(j);
    t->version = (uint32_t)eng__jint(o, "version");
    t->node = jd_xstrdup(n);
    t->status = status;
    t->created_us = eng__jint(o, "created");
    const char *a = eng__jstr(o, "assignee"), *oc = eng__jstr(o, "outcome"), *note = eng__jstr(o, "note");
    t->assignee = a ? jd_xstrdup(a) : NULL;
    t->outcome = oc ? jd_xstrdup(oc) : NULL;
    t->note = note ? jd_xstrdup(note) : NULL;
    t->claimed_us = eng__jint(o, "claimed");
    t->done_us = eng__jint(o, "done");
    if (t->status == T_CLAIMED && !t->assignee) {
        task_free(t);
        return NULL;
    }
    return t;
}

int eng__tasks_decode(eng_part *p, const char *s, size_t n, jd_err *err)
{
    struct eng_tasks *ts = p->tasks;
    if (n == 0) return JD_OK;
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, s, (int)n), *arr;
    json_tokener_free(tok);
    int rc = JD_OK;
    if (!o || !json_object_object_get_ex(o, "tasks", &arr) || !json_object_is_type(arr, json_type_array)) {
        rc = jd_err_set(err, JD_ECORRUPT, "", "unreadable tasks in partition %u", p->index);
        goto out;
    }
    ts->seq = (uint64_t)eng__jint(o, "seq");
    ts->dropped = (uint64_t)eng__jint(o, "dropped");
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        task *t = task_from_json(json_object_array_get_idx(arr, i));
        if (!t) { rc = jd_err_set(err, JD_ECORRUPT, "", "unreadable task %zu in partition %u", i, p->index); goto out; }
        task *old = jd_map_put(ts->by_id, (const char *)&t->id, sizeof t->id, t);
        if (old) {   /* not written by us: keep the first */
            jd_map_put(ts->by_id, (const char *)&old->id, sizeof old->id, old);
            task_free(t);
            continue;
        }
        if (t->status == T_DONE) done_push(ts, t);
        else ts->open++;
    }
out:
    json_object_put(o);
    return rc;
}

/* ---- reads ------------------------------------------------------------------------ */

typedef struct task_job {
    eng        *e;
    uint32_t    partition;
    uint64_t    id;
    char        api_id[TASK_ID_TEXT];
    bool        complete;                 /* else claim */
    char       *assignee, *outcome, *note;
    int64_t     at_us;
    int         status;                   /* of the commit */
    jd_err      err;
    uint64_t    lsn;
    eng_json_fn done;
    void       *ctx;
} task_job;

static void job_free(task_job *j)
{
    free(j->assignee);
    free(j->outcome);
    free(j->note);
    free(j);
}

static void not_found(task_job *j)
{
    jd_err err;
    jd_err_set(&err, JD_ENOTFOUND, "id", "no task '%s'", j->api_id);
    eng__reply_err(j->done, j->ctx, JD_ENOTFOUND, &err, NULL);
}

static void get_read(eng_shard *sh, void *arg)
{
    task_job *j = arg;
    const task *t = find(&sh->e->parts[j->partition], j->id);
    if (!t) {
        not_found(j);
    } else {
        json_object *o = task_json(j->partition, t);
        reply_json(j->done, j->ctx, o);
        json_object_put(o);
    }
    job_free(j);
}

/* A job for the task named id, or NULL after answering 404 (not an id). */
static task_job *job_for(eng *e, const char *id, eng_json_fn done, void *ctx)
{
    task_job *j = jd_xcalloc(1, sizeof *j);
    j->e = e;
    j->done = done;
    j->ctx = ctx;
    snprintf(j->api_id, sizeof j->api_id, "%.*s", TASK_ID_TEXT - 1, id);
    if (strlen(id) < TASK_ID_TEXT && parse_id(e, id, &j->partition, &j->id)) return j;
    if (strlen(id) >= TASK_ID_TEXT) snprintf(j->api_id + TASK_ID_TEXT - 4, 4, "...");
    not_found(j);
    job_free(j);
    return NULL;
}

void eng_task_get(eng *e, const char *id, eng_json_fn done, void *ctx)
{
    task_job *j = job_for(e, id, done, ctx);
    if (j) eng__call(e, eng__shard_of(e, j->partition), get_read, j);
}

typedef struct list_job {
    uint32_t        limit;
    char           *queue;
    int             status;               /* -1: any */
    eng_json_fn     done;
    void           *ctx;
} list_job;

/* Newest first: by the creating record, then partition, then creation order. */
static int cmp_newest(const void *a, const void *b)
{
    json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b;
    static const char *const keys[] = { "_lsn", "_part", "_seq" };
    for (size_t i = 0; i < JD_ARRAY_LEN(keys); i++) {
        int64_t u = eng__jint(x, keys[i]), v = eng__jint(y, keys[i]);
        if (u != v) return u > v ? -1 : 1;
    }
    return 0;
}

/* all: {"_lsn","_part","_seq", task} from every shard (borrowed). */
static void list_finish(void *arg, json_object *all)
{
    list_job *j = arg;
    json_object_array_sort(all, cmp_newest);
    json_object *out = json_object_new_object(), *arr = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(all) && i < j->limit; i++) {
        json_object *o = json_object_array_get_idx(all, i);
        json_object_object_del(o, "_lsn");
        json_object_object_del(o, "_part");
        json_object_object_del(o, "_seq");
        json_object_array_add(arr, json_object_get(o));
    }
    json_object_object_add(out, "queue", json_object_new_string(j->queue));
    json_object_object_add(out, "tasks", arr);
    reply_json(j->done, j->ctx, out);
    json_object_put(out);
    free(j->queue);
    free(j);
}

static void list_shard(eng_shard *sh, void *arg, json_object *mine)
{
    list_job *j = arg;
    eng *e = sh->e;
    for (uint32_t p = sh->id; p < e->nparts; p += e->nshards) {
        size_t pos = 0;
        void *v;
        while (jd_map_next(e->parts[p].tasks->by_id, &pos, NULL, NULL, &v)) {
            const task *t = v;
            if (strcmp(t->queue, j->queue) != 0 || (j->status >= 0 && t->status != j->status)) continue;
            json_object *o = task_json(p, t);
            json_object_object_add(o, "_lsn", json_object_new_int64((int64_t)t->lsn));
            json_object_object_add(o, "_part", json_object_new_int64(p));
            json_object_object_add(o, "_seq", json_object_new_int64((int64_t)t->seq));
            json_object_array_add(mine, o);
        }
    }
    /* Only this shard's newest `limit` can make the answer. */
    json_object_array_sort(mine, cmp_newest);
    size_t n = json_object_array_length(mine);
    if (n > j->limit) json_object_array_del_idx(mine, j->limit, n - j->limit);
}

void eng_tasks_list(eng *e, const char *queue, const char *status, uint32_t limit, eng_json_fn done, void *ctx)
{
    int st = -1;
    for (int i = 0; status && i < (int)JD_ARRAY_LEN(status_names); i++)
        if (strcmp(status, status_names[i]) == 0) st = i;
    if (status && st < 0) {
        jd_err err;
        jd_err_set(&err, JD_EINVAL, "status", "status must be open, claimed or done");
        eng__reply_err(done, ctx, JD_EINVAL, &err, NULL);
        return;
    }
    list_job *j = jd_xcalloc(1, sizeof *j);
    j->queue = jd_xstrdup(queue);
    j->status = st;
    j->limit = limit ? limit : 100;
    j->done = done;
    j->ctx = ctx;
    eng__fanout(e, list_shard, list_finish, j);
}

/* ---- changes: claim and complete ------------------------------------------------- */

/* Third hop (task's shard): what applying the record decided, or why the log refused. */
static void change_after(eng_shard *sh, void *arg)
{
    task_job *j = arg;
    eng_part *p = &sh->e->parts[j->partition];
    task *t = find(p, j->id);
    if (j->status != JD_OK) {
        if (t && j->complete) t->completing = false;   /* (3): the hold ends with the request */
        eng__reply_err(j->done, j->ctx, j->status, &j->err, NULL);
    } else if (p->tasks->res[j->lsn % TASK_RESULTS].lsn != j->lsn) {
        jd_err err;
        jd_err_set(&err, JD_EBUSY, "", "the change was applied but its result was overwritten; see GET /v1/tasks/%s",
                   j->api_id);
        eng__reply_err(j->done, j->ctx, JD_EBUSY, &err, NULL);
    } else if (p->tasks->res[j->lsn % TASK_RESULTS].rc != JD_OK) {
        const task_result *r = &p->tasks->res[j->lsn % TASK_RESULTS];
        eng__reply_err(j->done, j->ctx, r->rc, &r->err, NULL);
    } else if (!t) {
        not_found(j);   /* evicted or deleted since: rare */
    } else {
        json_object *o = task_json(j->partition, t);
        reply_json(j->done, j->ctx, o);
        json_object_put(o);
    }
    job_free(j);
}

/* Second hop (committer thread). */
static void change_committed(void *ctx, int status, const jd_err *err, uint64_t lsn)
{
    task_job *j = ctx;
    j->status = status;
    j->lsn = lsn;
    if (err) j->err = *err;
    else jd_err_clear(&j->err);
    eng__call(j->e, eng__shard_of(j->e, j->partition), change_after, j);
}

/* The event a completion writes (2), parsed as any track call so it is
 * routed, deduplicated and applied like one. */
static int completion_event(const task_job *j, const task *t, ingest_batch **out, jd_err *err)
{
    json_object *m = json_object_new_object(), *props = json_object_new_object();
    char ts[JD_TIME_TEXT], mid[TASK_ID_TEXT + 16];
    jd_time_format(j->at_us, ts);
    snprintf(mid, sizeof mid, "task-%s-completed", j->api_id);
    json_object_object_add(m, "type", json_object_new_string("track"));
    json_object_object_add(m, "event", json_object_new_string("Task Completed"));
    json_object_object_add(m, t->key_is_user ? "userId" : "anonymousId", json_object_new_string(t->key));
    json_object_object_add(m, "messageId", json_object_new_string(mid));
    json_object_object_add(m, "timestamp", json_object_new_string(ts));
    add_str(props, "task_id", j->api_id);
    add_str(props, "queue", t->queue);
    add_str(props, "outcome", j->outcome);
    add_str(props, "journey", t->journey);
    add_str(props, "node", t->node);
    add_str(props, "assignee", t->assignee ? t->assignee : j->assignee);
    add_str(props, "note", j->note);
    json_object_object_add(m, "properties", props);
    const char *s = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_message_bytes = JD_MAX_RECORD_BYTES / 2;   /* the API bounded note and names already */
    int rc = ingest_parse(&lim, INGEST_ROUTE_TRACK, s, strlen(s), j->at_us, NULL, NULL, out, err);
    json_object_put(m);
    return rc;
}

/* First hop (task's shard): refusals that need no record, then the record. */
static void change_check(eng_shard *sh, void *arg)
{
    task_job *j = arg;
    eng *e = sh->e;
    task *t = find(&e->parts[j->partition], j->id);
    jd_err err;
    int rc = JD_OK;
    if (!t) {
        not_found(j);
        job_free(j);
        return;
    }
    if (t->status == T_DONE) rc = jd_err_set(&err, JD_EBUSY, "status", "task %s is done", j->api_id);
    else if (t->completing) rc = jd_err_set(&err, JD_EBUSY, "status", "task %s is being completed", j->api_id);
    else if (t->status == T_CLAIMED && j->assignee && strcmp(t->assignee, j->assignee) != 0)
        rc = jd_err_set(&err, JD_EBUSY, "assignee", "task %s is claimed by '%s'", j->api_id, t->assignee);
    if (rc == JD_OK && !j->complete && t->status == T_CLAIMED) {   /* claimed by this assignee already */
        json_object *o = task_json(j->partition, t);
        reply_json(j->done, j->ctx, o);
        json_object_put(o);
        job_free(j);
        return;
    }
    ingest_batch *b = NULL;
    if (rc == JD_OK && j->complete) rc = completion_event(j, t, &b, &err);
    if (rc != JD_OK) {
        eng__reply_err(j->done, j->ctx, rc, &err, NULL);
        ingest_batch_destroy(b);
        job_free(j);
        return;
    }
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)j->id);
    json_object *o = json_object_new_object();
    add_str(o, "op", j->complete ? "complete" : "claim");
    add_str(o, "task", hex);
    if (j->assignee) add_str(o, "assignee", j->assignee);
    if (j->complete) add_str(o, "outcome", j->outcome);
    if (j->note) add_str(o, "note", j->note);
    json_object_object_add(o, "at", json_object_new_int64(j->at_us));
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    eng_txn *tx = eng_txn_create();
    if (b) {   /* (2): the event first, the record last (its lsn is the transaction's) */
        for (size_t i = 0; i < b->n; i++) eng_txn_add_event(tx, e, &b->msgs[i]);
        ingest_batch_destroy(b);
        t->completing = true;   /* (3) */
    }
    eng__txn_add(tx, ENG_REC_TASK, (uint16_t)j->partition, s, (uint32_t)strlen(s));
    json_object_put(o);
    eng_submit(e, tx, change_committed, j);
}

void eng_task_change(eng *e, const eng_task_req *req, eng_json_fn done, void *ctx)
{
    task_job *j = job_for(e, req->id ? req->id : "", done, ctx);
    if (!j) return;
    j->complete = req->op && strcmp(req->op, "complete") == 0;
    j->assignee = req->assignee ? jd_xstrdup(req->assignee) : NULL;
    j->outcome = req->outcome ? jd_xstrdup(req->outcome) : NULL;
    j->note = req->note ? jd_xstrdup(req->note) : NULL;
    j->at_us = req->at_us;
    jd_err err;
    if (!j->complete && (!req->op || strcmp(req->op, "claim") != 0))
        jd_err_set(&err, JD_EINVAL, "op", "unknown task operation '%s'", req->op ? req->op : "");
    else if (!j->complete && !j->assignee) jd_err_set(&err, JD_EINVAL, "assignee", "assignee is required");
    else if (j->complete && !j->outcome) jd_err_set(&err, JD_EINVAL, "outcome", "outcome is required");
    else {
        eng__call(e, eng__shard_of(e, j->partition), change_check, j);
        return;
    }
    eng__reply_err(done, ctx, JD_EINVAL, &err, NULL);
    job_free(j);
}
