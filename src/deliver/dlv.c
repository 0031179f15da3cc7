/* src/deliver/dlv.c -- the delivery thread: admission, waiting, rate limits,
 * concurrency, retries and shutdown around one curl multi handle.
 *
 * A job (one accepted message) moves through these states:
 *
 *   SUBMITTED -> WAITING   [admit]          not_before_us in the future
 *   SUBMITTED -> READY     [admit]          due now
 *   SUBMITTED -> done      [admit]          unknown channel / invalid / no attempts left
 *   WAITING   -> READY     [wake_due]       its due time passed
 *   READY     -> IN_FLIGHT [start_ready]    a token and a concurrency slot were free
 *   IN_FLIGHT -> done      [complete]       sent / permanent error / last attempt failed
 *   IN_FLIGHT -> WAITING   [complete]       transient error: backoff (and Retry-After)
 *   any       -> UNSENT    [dlv_main's end] stopping: handed back by dlv_destroy
 *
 * Invariants:
 *  (1) Every job accepted by dlv_submit ends exactly once: finish() (on_result)
 *      or the unsent list (on_unsent). chan.unfinished counts jobs of the
 *      channel between dlv_submit and that end, so max_queued bounds them all.
 *  (2) Only the delivery thread touches READY/WAITING/IN_FLIGHT jobs, the
 *      heap, the xfer pool and the multi handle (curl_multi_wakeup, the one
 *      call other threads make, is thread-safe).
 *  (3) msg->attempts is incremented when an attempt starts, so it always
 *      counts the tries that may have reached the provider.
 *  (4) A READY job starts only with a token of its channel's bucket and
 *      in_flight < max_in_flight: retries take tokens too (the provider sees them).
 *  (5) Timers read the monotonic clock; the wall clock (d->wall) is read only
 *      for what leaves the process (Date, timestamps) and for result times.
 *  (6) dlv_destroy closes the submit queue before it sets `stop`, so once the
 *      thread sees `stop` one more pop takes every message ever accepted.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver_int.h"

#define BODY_MAX (4u * 1024 * 1024)   /* one request or email on the wire */

struct dlv {
    dlv__chan *chans;
    size_t     nchans;
    dlv_result_fn on_result;
    dlv_unsent_fn on_unsent;
    void      *ctx;
    const jd_clock *wall;
    char      *user_agent;
    jd_queue   inq;
    CURLM     *multi;
    pthread_t  thread;
    int        wake_pending;   /* atomic: a wakeup is on its way */
    int        stop;           /* atomic: set by dlv_destroy after closing inq (6) */
    int        users;          /* atomic: threads inside dlv_submit */
    uint64_t   grace_ns;
    /* delivery thread only (2) */
    uint64_t   rng;
    dlv__job **heap;
    size_t     nheap, capheap;
    dlv__xfer **xs;            /* every xfer made, for cut-off and cleanup */
    size_t     nxs;
    dlv__job  *unsent;         /* list through ->next, handed back by dlv_destroy */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static uint64_t mono_ns(void) { return jd_monotonic_ns(); }

static uint64_t next_rand(dlv *d)   /* splitmix64 */
{
    uint64_t z = (d->rng += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static dlv__chan *find_chan(dlv *d, const char *name)
{
    if (!name) return NULL;
    for (size_t i = 0; i < d->nchans; i++)
        if (strcmp(d->chans[i].cfg.name, name) == 0) return &d->chans[i];
    return NULL;
}

/* ---- the waiting heap (by due_ns) ---------------------------------------- */

static void heap_swap(dlv *d, size_t a, size_t b)
{
    dlv__job *t = d->heap[a];
    d->heap[a] = d->heap[b];
    d->heap[b] = t;
    d->heap[a]->heap_i = a;
    d->heap[b]->heap_i = b;
}

static void heap_push(dlv *d, dlv__job *j)
{
    if (d->nheap == d->capheap) {
        d->capheap = d->capheap ? d->capheap * 2 : 64;
        d->heap = jd_xrealloc(d->heap, d->capheap * sizeof *d->heap);
    }
    size_t i = d->nheap++;
    d->heap[i] = j;
    j->heap_i = i;
    while (i > 0 && d->heap[(i - 1) / 2]->due_ns > d->heap[i]->due_ns) {
        heap_swap(d, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static dlv__job *heap_pop(dlv *d)
{
    dlv__job *top = d->heap[0];
    d->heap[0] = d->heap[--d->nheap];
    d->heap[0]->heap_i = 0;
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < d->nheap && d->heap[l]->due_ns < d->heap[m]->due_ns) m = l;
        if (r < d->nheap && d->heap[r]->due_ns < d->heap[m]->due_ns) m = r;
        if (m == i) break;
        heap_swap(d, i, m);
        i = m;
    }
    return top;
}

static void ready_push(dlv__chan *c, dlv__job *j)
{
    j->next = NULL;
    if (c->ready_tail) c->ready_tail->next = j; else c->ready_head = j;
    c->ready_tail = j;
}

static dlv__job *ready_pop(dlv__chan *c)
{
    dlv__job *j = c->ready_head;
    c->ready_head = j->next;
    if (!c->ready_head) c->ready_tail = NULL;
    return j;
}

/* ---- ends of a job (1) ---------------------------------------------------- */

static void free_job(dlv__job *j)
{
    dlv_msg_destroy(j->msg);
    free(j);
}

static void finish(dlv *d, dlv__job *j, dlv_outcome out)
{
    dlv__chan *c = j->ch;
    dlv_result r = {
        .intent_id = j->msg->intent_id,
        .outcome = out,
        .attempts = j->msg->attempts,
        .status = j->status,
        .provider_id = out == DLV_SENT && j->provider_id[0] ? j->provider_id : NULL,
        .error = out == DLV_SENT ? "" : j->error,
        .accepted_us = j->accepted_us,
        .done_us = jd_clock_now(d->wall),
        .elapsed_us = (mono_ns() - j->accepted_ns) / 1000,
        .last_attempt_us = j->last_attempt_us,
        .msg = j->msg,
    };
    if (c) {
        uint64_t *ctr = out == DLV_SENT ? &c->n_sent : out == DLV_FAILED ? &c->n_failed : &c->n_dead;
        __atomic_add_fetch(ctr, 1, __ATOMIC_RELAXED);
    }
    /* room first: a callback that submits the next message finds it */
    if (c) __atomic_sub_fetch(&c->unfinished, 1, __ATOMIC_RELAXED);
    d->on_result(&r, d->ctx);
    free_job(j);
}

static void fail_now(dlv *d, dlv__job *j, dlv_outcome out, const char *fmt, const char *arg)
{
    snprintf(j->error, sizeof j->error, fmt, arg);
    finish(d, j, out);
}

static void to_unsent(dlv *d, dlv__job *j, uint64_t not_before_us)
{
    j->msg->not_before_us = not_before_us;
    j->next = d->unsent;
    d->unsent = j;
}

/* ---- admission ------------------------------------------------------------ */

static void admit(dlv *d, dlv__job *j, uint64_t now_ns, uint64_t now_us)
{
    dlv__chan *c = j->ch;
    char why[200];
    if (!c) { fail_now(d, j, DLV_FAILED, "invalid message: unknown channel '%s'", j->msg->channel ? j->msg->channel : ""); return; }
    if (dlv__msg_check(c, j->msg, why, sizeof why) != 0) { fail_now(d, j, DLV_FAILED, "invalid message: %s", why); return; }
    if (j->msg->attempts >= c->cfg.retry.max_attempts) {
        snprintf(j->error, sizeof j->error, "no attempts left (%u made, max_attempts %u)", j->msg->attempts,
                 c->cfg.retry.max_attempts);
        finish(d, j, DLV_DEAD);
        return;
    }
    if (j->msg->not_before_us > now_us) {
        j->due_ns = now_ns + (j->msg->not_before_us - now_us) * 1000;
        heap_push(d, j);
    } else {
        ready_push(c, j);
    }
}

/* ---- attempts -------------------------------------------------------------- */

/* Transfers are pooled per channel: a handle is only ever set up for one
 * channel's kind and options, so it needs no curl_easy_reset between uses. */
static dlv__xfer *get_xfer(dlv *d, dlv__chan *c)
{
    dlv__xfer *x = c->free_x;
    if (x) { c->free_x = x->next_free; return x; }
    x = jd_xcalloc(1, sizeof *x);
    x->easy = curl_easy_init();
    if (!x->easy) abort();   /* OOM policy */
    jd_buf_init(&x->body, BODY_MAX);
    jd_buf_init(&x->resp, DLV__RESP_MAX);
    d->xs = jd_xrealloc(d->xs, (d->nxs + 1) * sizeof *d->xs);
    d->xs[d->nxs++] = x;
    return x;
}

static void put_xfer(dlv *d, dlv__xfer *x)
{
    curl_slist_free_all(x->headers);
    curl_slist_free_all(x->rcpt);
    x->headers = x->rcpt = NULL;
    dlv__chan *c = x->job->ch;
    x->job = NULL;
    x->next_free = c->free_x;
    c->free_x = x;
}

static bool take_token(dlv__chan *c, uint64_t now_ns)
{
    if (c->cfg.rate_per_s <= 0) return true;
    double add = (double)(now_ns - c->tokens_ns) / 1e9 * c->cfg.rate_per_s;
    c->tokens_ns = now_ns;
    c->tokens = c->tokens + add > c->cfg.burst ? c->cfg.burst : c->tokens + add;
    if (c->tokens < 1.0) return false;
    c->tokens -= 1.0;
    return true;
}

static void start_ready(dlv *d, uint64_t now_ns, uint64_t now_us)
{
    for (size_t i = 0; i < d->nchans; i++) {
        dlv__chan *c = &d->chans[i];
        while (c->ready_head && c->in_flight < c->cfg.max_in_flight && take_token(c, now_ns)) {
            dlv__job *j = ready_pop(c);
            dlv__xfer *x = get_xfer(d, c);
            char why[200];
            x->job = j;
            if (dlv__xfer_prepare(x, d->user_agent, now_us, why, sizeof why) != JD_OK) {
                put_xfer(d, x);
                fail_now(d, j, DLV_FAILED, "invalid message: %s", why);
                continue;
            }
            j->msg->attempts++;              /* (3) */
            j->attempt_ns = now_ns;
            __atomic_add_fetch(&c->in_flight, 1, __ATOMIC_RELAXED);
            if (curl_multi_add_handle(d->multi, x->easy) != CURLM_OK) abort();
        }
    }
}

/* Full jitter (AWS "Exponential Backoff and Jitter"): uniform in
 * [0, min(max, base * 2^(attempts-1))]. */
static uint64_t backoff_us(dlv *d, const dlv__chan *c, uint32_t attempts)
{
    const dlv_retry *r = &c->cfg.retry;
    uint32_t shift = attempts > 0 ? attempts - 1 : 0;
    uint64_t ceil = shift >= 40 || r->backoff_base_us > (r->backoff_max_us >> shift) ? r->backoff_max_us
                                                                                      : r->backoff_base_us << shift;
    return next_rand(d) % (ceil + 1);
}

static void complete(dlv *d, dlv__xfer *x, CURLcode cc, bool stopping, uint64_t now_ns, uint64_t now_us)
{
    dlv__job *j = x->job;
    dlv__chan *c = j->ch;
    curl_multi_remove_handle(d->multi, x->easy);
    __atomic_sub_fetch(&c->in_flight, 1, __ATOMIC_RELAXED);
    j->last_attempt_us = (now_ns - j->attempt_ns) / 1000;
    uint64_t ra = 0;
    int cls = dlv__xfer_classify(x, cc, now_us, &ra);
    put_xfer(d, x);
    if (cls == DLV__OK) { finish(d, j, DLV_SENT); return; }
    if (cls == DLV__PERMANENT) { finish(d, j, DLV_FAILED); return; }
    if (j->msg->attempts >= c->cfg.retry.max_attempts) { finish(d, j, DLV_DEAD); return; }
    uint64_t delay = backoff_us(d, c, j->msg->attempts);
    if (ra) {
        if (ra > c->cfg.retry.retry_after_max_us) ra = c->cfg.retry.retry_after_max_us;
        if (ra > delay) delay = ra;
    }
    if (stopping) { to_unsent(d, j, now_us + delay); return; }
    __atomic_add_fetch(&c->n_retries, 1, __ATOMIC_RELAXED);
    j->due_ns = now_ns + delay * 1000;
    heap_push(d, j);
}

/* ---- the loop ---------------------------------------------------------------- */

static void take_queue(dlv *d, uint64_t now_ns, uint64_t now_us)
{
    jd_qnode *n = jd_queue_pop_all(&d->inq, 0);
    while (n) {
        jd_qnode *next = n->next;
        admit(d, (dlv__job *)n, now_ns, now_us);
        n = next;
    }
}

static int poll_timeout_ms(dlv *d, uint64_t now_ns, bool stopping, uint64_t deadline_ns)
{
    uint64_t wait = 1000 * UINT64_C(1000000);   /* at most 1 s between looks */
    if (stopping) wait = deadline_ns > now_ns ? deadline_ns - now_ns : 0;
    else {
        if (d->nheap) {
            uint64_t due = d->heap[0]->due_ns;
            wait = JD_MIN_OF(wait, due > now_ns ? due - now_ns : 0);
        }
        for (size_t i = 0; i < d->nchans; i++) {
            dlv__chan *c = &d->chans[i];
            if (!c->ready_head || c->in_flight >= c->cfg.max_in_flight || c->cfg.rate_per_s <= 0) continue;
            double need = c->tokens >= 1.0 ? 0 : (1.0 - c->tokens) / c->cfg.rate_per_s * 1e9;
            wait = JD_MIN_OF(wait, (uint64_t)need);
        }
    }
    return (int)((wait + 999999) / 1000000);
}

static size_t total_in_flight(dlv *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->nchans; i++) n += d->chans[i].in_flight;
    return n;
}

static void *dlv_main(void *arg)
{
    dlv *d = arg;
    bool stopping = false;
    uint64_t deadline_ns = 0;
    for (;;) {
        __atomic_store_n(&d->wake_pending, 0, __ATOMIC_SEQ_CST);
        uint64_t now_ns = mono_ns(), now_us = jd_clock_now(d->wall);
        if (!stopping && __atomic_load_n(&d->stop, __ATOMIC_ACQUIRE)) {
            stopping = true;
            deadline_ns = now_ns + d->grace_ns;
        }
        take_queue(d, now_ns, now_us);    /* after `stop`: the last pop (6) */
        while (d->nheap && d->heap[0]->due_ns <= now_ns) {
            dlv__job *j = heap_pop(d);
            ready_push(j->ch, j);
        }
        if (!stopping) start_ready(d, now_ns, now_us);
        int running = 0, left = 0, done = 0;
        curl_multi_perform(d->multi, &running);
        CURLMsg *m;
        while ((m = curl_multi_info_read(d->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            dlv__xfer *x = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode cc = m->data.result;
            complete(d, x, cc, stopping, mono_ns(), jd_clock_now(d->wall));
            done++;
        }
        now_ns = mono_ns();
        if (stopping && (total_in_flight(d) == 0 || now_ns >= deadline_ns)) break;
        int ms = done ? 0 : poll_timeout_ms(d, now_ns, stopping, deadline_ns);
        curl_multi_poll(d->multi, NULL, 0, ms, NULL);
    }
    /* cut off what is still in flight: it may have reached the provider (3) */
    uint64_t now_ns = mono_ns(), now_us = jd_clock_now(d->wall);
    for (size_t i = 0; i < d->nxs; i++) {
        dlv__xfer *x = d->xs[i];
        if (!x->job) continue;
        dlv__job *j = x->job;
        curl_multi_remove_handle(d->multi, x->easy);
        __atomic_sub_fetch(&j->ch->in_flight, 1, __ATOMIC_RELAXED);
        put_xfer(d, x);
        to_unsent(d, j, 0);
    }
    while (d->nheap) {
        dlv__job *j = heap_pop(d);
        to_unsent(d, j, now_us + (j->due_ns > now_ns ? (j->due_ns - now_ns) / 1000 : 0));
    }
    for (size_t i = 0; i < d->nchans; i++)
        while (d->chans[i].ready_head) to_unsent(d, ready_pop(&d->chans[i]), 0);
    return NULL;
}

/* ---- the API ------------------------------------------------------------------ */

dlv_msg *dlv_msg_create(uint64_t intent_id, dlv_kind kind, const char *channel, const char *to)
{
    dlv_msg *m = jd_xcalloc(1, sizeof *m);
    m->intent_id = intent_id;
    m->kind = kind;
    m->channel = channel ? jd_xstrdup(channel) : NULL;
    m->to = to ? jd_xstrdup(to) : NULL;
    return m;
}

void dlv_msg_destroy(dlv_msg *m)
{
    if (!m) return;
    char *s[] = { m->channel, m->to, m->email.from, m->email.reply_to, m->email.subject, m->email.text,
                  m->email.html, m->email.unsubscribe_url, m->email.unsubscribe_mailto, m->sms.from, m->sms.body,
                  m->push.title, m->push.body, m->push.data_json, m->slack.text, m->slack.blocks_json,
                  m->webhook.body_json };
    for (size_t i = 0; i < JD_ARRAY_LEN(s); i++) free(s[i]);
    free(m);
}

const char *dlv_outcome_name(dlv_outcome o)
{
    return o == DLV_SENT ? "sent" : o == DLV_FAILED ? "failed" : o == DLV_DEAD ? "dead" : "?";
}

static void free_dlv(dlv *d)
{
    for (size_t i = 0; i < d->nxs; i++) {
        curl_easy_cleanup(d->xs[i]->easy);
        jd_buf_release(&d->xs[i]->body);
        jd_buf_release(&d->xs[i]->resp);
        free(d->xs[i]);
    }
    free(d->xs);
    if (d->multi) curl_multi_cleanup(d->multi);
    for (size_t i = 0; i < d->nchans; i++) dlv__chan_release(&d->chans[i]);
    free(d->chans);
    free(d->heap);
    free(d->user_agent);
    jd_queue_release(&d->inq);
    free(d);
}

int dlv_create(dlv **out, const dlv_opts *o, jd_err *err)
{
    int rc = JD_EINVAL;
    *out = NULL;
    pthread_once(&curl_once, curl_init);
    dlv *d = jd_xcalloc(1, sizeof *d);
    jd_queue_init(&d->inq);
    d->chans = jd_xcalloc(o->nchannels ? o->nchannels : 1, sizeof *d->chans);
    d->on_result = o->on_result;
    d->on_unsent = o->on_unsent;
    d->ctx = o->ctx;
    d->wall = o->wall ? o->wall : &jd_clock_real;   /* the edge (deliver.h) */
    d->user_agent = jd_xstrdup(o->user_agent ? o->user_agent : "journeyd");
    if (!o->on_result) { jd_err_set(err, JD_EINVAL, "deliver", "on_result is required"); goto out; }
    long conns = 8;
    for (size_t i = 0; i < o->nchannels; i++) {
        d->nchans++;   /* released by free_dlv even when init fails */
        rc = dlv__chan_init(&d->chans[i], &o->channels[i], err);
        if (rc != JD_OK) goto out;
        for (size_t k = 0; k < i; k++)
            if (strcmp(d->chans[k].cfg.name, d->chans[i].cfg.name) == 0) {
                rc = jd_err_set(err, JD_EINVAL, "channels", "channel '%s' is defined twice", d->chans[i].cfg.name);
                goto out;
            }
        conns += d->chans[i].cfg.max_in_flight;
    }
    rc = JD_EINVAL;
    if (o->seed) d->rng = o->seed;
    else jd_random_bytes(&d->rng, sizeof d->rng);
    d->multi = curl_multi_init();
    if (!d->multi) abort();
    /* keep a connection per possible concurrent attempt (reuse, not reconnect) */
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, conns);
    if (pthread_create(&d->thread, NULL, dlv_main, d) != 0) {
        jd_err_set(err, JD_EIO, "deliver", "cannot start the delivery thread");
        rc = JD_EIO;
        goto out;
    }
    *out = d;
    d = NULL;
    rc = JD_OK;
out:
    if (d) free_dlv(d);
    return rc;
}

int dlv_submit(dlv *d, dlv_msg *msg, jd_err *err)
{
    int rc = JD_EBUSY;
    __atomic_add_fetch(&d->users, 1, __ATOMIC_SEQ_CST);
    dlv__chan *c = find_chan(d, msg->channel);
    bool counted = false;
    if (__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE) || jd_queue_closed(&d->inq)) {
        jd_err_set(err, JD_EBUSY, "deliver", "delivery is shutting down");
        goto out;
    }
    if (c) {
        uint64_t u = __atomic_fetch_add(&c->unfinished, 1, __ATOMIC_RELAXED);
        counted = true;
        if (u >= c->cfg.max_queued) {
            __atomic_add_fetch(&c->n_refused, 1, __ATOMIC_RELAXED);
            rc = jd_err_set(err, JD_ELIMIT, "deliver", "channel '%s' has %u messages queued (channels.%s.max_queued)",
                            c->cfg.name, c->cfg.max_queued, c->cfg.name);
            goto out;
        }
    }
    dlv__job *j = jd_xcalloc(1, sizeof *j);
    j->msg = msg;
    j->ch = c;
    j->accepted_ns = mono_ns();
    j->accepted_us = jd_clock_now(d->wall);
    if (!jd_queue_push(&d->inq, &j->node)) {
        free(j);
        jd_err_set(err, JD_EBUSY, "deliver", "delivery is shutting down");
        goto out;
    }
    counted = false;
    if (c) __atomic_add_fetch(&c->n_accepted, 1, __ATOMIC_RELAXED);
    if (!__atomic_exchange_n(&d->wake_pending, 1, __ATOMIC_SEQ_CST)) curl_multi_wakeup(d->multi);
    rc = JD_OK;
out:
    if (counted) __atomic_sub_fetch(&c->unfinished, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&d->users, 1, __ATOMIC_SEQ_CST);
    return rc;
}

size_t dlv_room(dlv *d, const char *channel)
{
    dlv__chan *c = find_chan(d, channel);
    if (!c) return 0;
    uint64_t u = __atomic_load_n(&c->unfinished, __ATOMIC_RELAXED);
    return u >= c->cfg.max_queued ? 0 : (size_t)(c->cfg.max_queued - u);
}

int dlv_channel_stats(dlv *d, const char *channel, dlv_stats *out)
{
    dlv__chan *c = find_chan(d, channel);
    if (!c) return JD_ENOTFOUND;
    out->accepted = __atomic_load_n(&c->n_accepted, __ATOMIC_RELAXED);
    out->sent = __atomic_load_n(&c->n_sent, __ATOMIC_RELAXED);
    out->failed = __atomic_load_n(&c->n_failed, __ATOMIC_RELAXED);
    out->dead = __atomic_load_n(&c->n_dead, __ATOMIC_RELAXED);
    out->retries = __atomic_load_n(&c->n_retries, __ATOMIC_RELAXED);
    out->refused_full = __atomic_load_n(&c->n_refused, __ATOMIC_RELAXED);
    out->unfinished = __atomic_load_n(&c->unfinished, __ATOMIC_RELAXED);
    out->in_flight = __atomic_load_n(&c->in_flight, __ATOMIC_RELAXED);
    return JD_OK;
}

void dlv_destroy(dlv *d, uint64_t grace_us)
{
    if (!d) return;
    d->grace_ns = grace_us * 1000;
    jd_queue_close(&d->inq);                                   /* (6): first */
    while (__atomic_load_n(&d->users, __ATOMIC_SEQ_CST)) sched_yield();
    __atomic_store_n(&d->stop, 1, __ATOMIC_RELEASE);
    curl_multi_wakeup(d->multi);
    pthread_join(d->thread, NULL);
    while (d->unsent) {
        dlv__job *j = d->unsent;
        d->unsent = j->next;
        __atomic_sub_fetch(&j->ch->unfinished, 1, __ATOMIC_RELAXED);
        if (d->on_unsent) d->on_unsent(j->msg, d->ctx);
        else dlv_msg_destroy(j->msg);
        free(j);
    }
    free_dlv(d);
}
