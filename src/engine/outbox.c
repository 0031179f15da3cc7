/*
** src/engine/outbox.c -- send intents become messages: the shard side of
** delivery (the transport is src/deliver/).
**
** A send node's intent, in the shard that owns the person:
**   1. its template (templates.dir) and channel (channels:) must exist, the
**      person's consent must allow the channel and category
**      (prof_consent_allows), and the template must render (a recipient, valid
**      JSON for a webhook); otherwise the intent is skipped, with the reason,
**      and nothing is sent;
**   2. the rendered message goes into the partition's outbox, keyed by the
**      intent id, and a copy to the delivery thread (dlv_submit);
**   3. the delivery thread's result comes back as a RESULT record through the
**      log (eng__outbox_result -> eng_submit); applying it takes the entry out
**      of the outbox (sent), or into the dead letters (failed, dead).
**
** Invariants:
**  (1) The outbox is a function of the log: intents are produced by replay as
**      they were live, and a RESULT removes what it answers. So an entry whose
**      result never reached the log (a crash, a shutdown) is still there after
**      restart, and is submitted again with the same intent id: the provider
**      sees the same idempotency key (at least once here, exactly once there).
**  (2) Nothing is submitted before eng_set_delivery: intents replayed at start
**      wait in the outbox, and are submitted when delivery is attached (those
**      whose RESULT was in the log are gone by then).
**  (3) Rendering reads no clock: `now` in a template is the record's time.
*/
#include "engine_int.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What travels with a message to the delivery thread and back. */
typedef struct ob_user {
    uint32_t partition;
    char     key[];
} ob_user;

static const char *const outcome_names[] = { "sent", "failed", "dead" };

/* ---- messages ------------------------------------------------------------- */

static char *dup_or_null(const char *s) { return s ? jd_xstrdup(s) : NULL; }

static dlv_msg *msg_clone(const dlv_msg *m)
{
    dlv_msg *c = dlv_msg_create(m->intent_id, m->kind, m->channel, m->to);
    c->attempts = m->attempts;
    c->not_before_us = m->not_before_us;
    c->email.from = dup_or_null(m->email.from);
    c->email.reply_to = dup_or_null(m->email.reply_to);
    c->email.subject = dup_or_null(m->email.subject);
    c->email.text = dup_or_null(m->email.text);
    c->email.html = dup_or_null(m->email.html);
    c->email.unsubscribe_url = dup_or_null(m->email.unsubscribe_url);
    c->email.unsubscribe_mailto = dup_or_null(m->email.unsubscribe_mailto);
    c->sms.from = dup_or_null(m->sms.from);
    c->sms.body = dup_or_null(m->sms.body);
    c->push.title = dup_or_null(m->push.title);
    c->push.body = dup_or_null(m->push.body);
    c->push.data_json = dup_or_null(m->push.data_json);
    c->slack.text = dup_or_null(m->slack.text);
    c->slack.blocks_json = dup_or_null(m->slack.blocks_json);
    c->webhook.body_json = dup_or_null(m->webhook.body_json);
    return c;
}

/* The message's strings as a JSON object (snapshots, the deliveries API). */
static const struct { const char *name; size_t off; } msg_fields[] = {
#define F(path) { #path, offsetof(dlv_msg, path) }
    F(to), F(email.from), F(email.reply_to), F(email.subject), F(email.text), F(email.html),
    F(email.unsubscribe_url), F(email.unsubscribe_mailto), F(sms.from), F(sms.body), F(push.title),
    F(push.body), F(push.data_json), F(slack.text), F(slack.blocks_json), F(webhook.body_json),
#undef F
};

static json_object *msg_json(const dlv_msg *m)
{
    json_object *o = json_object_new_object();
    if (m->not_before_us) json_object_object_add(o, "not_before", json_object_new_int64((int64_t)m->not_before_us));
    json_object_object_add(o, "kind", json_object_new_string(dlv_kind_name(m->kind)));
    json_object_object_add(o, "channel", json_object_new_string(m->channel ? m->channel : ""));
    for (size_t i = 0; i < JD_ARRAY_LEN(msg_fields); i++) {
        const char *v = *(char *const *)((const char *)m + msg_fields[i].off);
        if (v) json_object_object_add(o, msg_fields[i].name, json_object_new_string(v));
    }
    return o;
}

static dlv_msg *msg_from_json(uint64_t id, json_object *o)
{
    dlv_kind kind;
    const char *k = eng__jstr(o, "kind"), *ch = eng__jstr(o, "channel");
    if (!k || !ch || dlv_kind_parse(k, &kind) != JD_OK) return NULL;
    dlv_msg *m = dlv_msg_create(id, kind, ch, NULL);
    m->not_before_us = (uint64_t)eng__jint(o, "not_before");
    for (size_t i = 0; i < JD_ARRAY_LEN(msg_fields); i++) {
        const char *v = eng__jstr(o, msg_fields[i].name);
        if (v) *(char **)((char *)m + msg_fields[i].off) = jd_xstrdup(v);
    }
    return m;
}

/* ---- guardrails: caps and quiet hours (docs/delivery.md "Guardrails") ---------
 * A person's recent sends, newest last, at most DLV_GUARD_MAX_SENDS: what the
 * caps count. Names are kept as 32-bit hashes (a collision could only make a
 * cap count a send it should not: stricter, never looser). */
typedef struct ob_send { int64_t at_us; uint32_t channel, category, journey; } ob_send;
typedef struct ob_hist { uint32_t n; char *key; ob_send s[DLV_GUARD_MAX_SENDS]; } ob_hist;

static uint32_t h32(const char *s) { return (uint32_t)jd_hash64(s, strlen(s)); }

/* "7d", "12h", "90m": the largest unit that divides it. */
static void fmt_duration(uint64_t us, char *out, size_t cap)
{
    static const struct { uint64_t us; const char *u; } units[] = {
        { JD_DAY, "d" }, { JD_HOUR, "h" }, { JD_MIN, "m" }, { JD_SEC, "s" }, { 1000, "ms" }, { 1, "us" },
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(units); i++)
        if (us % units[i].us == 0) { snprintf(out, cap, "%llu%s", (unsigned long long)(us / units[i].us), units[i].u); return; }
}

static bool hist_match(const char *rule, uint32_t h) { return strcmp(rule, "*") == 0 || h32(rule) == h; }

static bool exempt(const eng *e, const char *category)
{
    const jd_consent_cfg *c = e->o.prof.consent;
    for (uint32_t i = 0; c && i < c->n_exempt; i++)
        if (strcmp(c->exempt[i], category) == 0) return true;
    return false;
}

/* The first cap the send would pass, written into why; false when none. */
static bool capped(eng_part *p, const char *key, size_t kn, const char *channel, const char *category,
                   const char *journey, int64_t at, char *why, size_t cap)
{
    const dlv_guards *g = p->e->o.guards;
    if (!g || !g->ncaps) return false;
    ob_hist *h = jd_map_get(p->sends, key, kn);
    for (size_t r = 0; r < g->ncaps; r++) {
        const dlv_cap *c = &g->caps[r];
        if (!dlv_guard_match(c->channel, channel) || !dlv_guard_match(c->category, category) ||
            !dlv_guard_match(c->journey, journey))
            continue;
        uint32_t n = 0;
        for (uint32_t i = 0; h && i < h->n; i++) {
            const ob_send *s = &h->s[i];
            if (s->at_us > at - (int64_t)c->per_us && hist_match(c->channel, s->channel) &&
                hist_match(c->category, s->category) && hist_match(c->journey, s->journey))
                n++;
        }
        if (n >= c->max) {
            char per[32];
            fmt_duration(c->per_us, per, sizeof per);
            snprintf(why, cap, "frequency cap: at most %u %s/%s message(s)%s%s per %s (guardrails.caps[%zu])", c->max,
                     c->channel, c->category, strcmp(c->journey, "*") ? " from journey " : "",
                     strcmp(c->journey, "*") ? c->journey : "", per, r);
            return true;
        }
    }
    return false;
}

static void remember_send(eng_part *p, const char *key, size_t kn, const char *channel, const char *category,
                          const char *journey, int64_t at)
{
    if (!p->e->o.guards || !p->e->o.guards->ncaps) return;
    ob_hist *h = jd_map_get(p->sends, key, kn);
    if (!h) {
        h = jd_xcalloc(1, sizeof *h);
        h->key = jd_xstrndup(key, kn);
        jd_map_put(p->sends, h->key, kn, h);
    }
    if (h->n == DLV_GUARD_MAX_SENDS) memmove(h->s, h->s + 1, (--h->n) * sizeof *h->s);
    h->s[h->n++] = (ob_send){ at, h32(channel), h32(category), h32(journey) };
}

/* The latest end of a quiet window the send falls in (0: none). */
static int64_t quiet_until(const eng *e, json_object *vars, const char *channel, int64_t at)
{
    const dlv_guards *g = e->o.guards;
    int64_t until = 0;
    for (size_t i = 0; g && i < g->nquiet; i++) {
        const dlv_quiet *q = &g->quiet[i];
        if (!dlv_guard_match(q->channel, channel)) continue;
        json_object *prof, *traits, *z;
        const char *zone = NULL;
        if (json_object_object_get_ex(vars, "profile", &prof) && json_object_object_get_ex(prof, "traits", &traits) &&
            json_object_object_get_ex(traits, q->zone_trait, &z) && json_object_is_type(z, json_type_string))
            zone = json_object_get_string(z);
        int64_t u = 0;
        if (dlv_quiet_until(q, zone, at, &u) == JD_OK && u > until) until = u;
    }
    return until;
}

/* ---- entries ------------------------------------------------------------------ */

struct ob_entry {
    uint64_t id;
    char    *key, *journey, *node, *error;
    int64_t  at_us;
    bool     submitted;
    uint32_t attempts;           /* dead letters: tries made */
    int      outcome;            /* dead letters: DLV_FAILED or DLV_DEAD */
    dlv_msg *msg;                /* the rendered message (owned) */
};

static void entry_free(ob_entry *x)
{
    if (!x) return;
    free(x->key);
    free(x->journey);
    free(x->node);
    free(x->error);
    dlv_msg_destroy(x->msg);
    free(x);
}

void eng__outbox_init(eng_part *p)
{
    p->outbox = jd_map_create(0);
    p->sends = jd_map_create(0);
}

void eng__outbox_release(eng_part *p)
{
    size_t pos = 0;
    void *v;
    while (p->outbox && jd_map_next(p->outbox, &pos, NULL, NULL, &v)) entry_free(v);
    jd_map_destroy(p->outbox);
    p->outbox = NULL;
    pos = 0;
    while (p->sends && jd_map_next(p->sends, &pos, NULL, NULL, &v)) {
        free(((ob_hist *)v)->key);
        free(v);
    }
    jd_map_destroy(p->sends);
    p->sends = NULL;
    for (size_t i = 0; i < ENG_DEAD_LETTERS; i++) entry_free(p->dead[i]);
    memset(p->dead, 0, sizeof p->dead);
}

/* Hands the entry's message to the delivery thread; false if it did not take it. */
static bool submit(eng *e, eng_part *p, ob_entry *x)
{
    dlv *d = atomic_load_explicit(&e->dlv, memory_order_acquire);
    if (!d || x->submitted) return false;
    dlv_msg *m = msg_clone(x->msg);
    size_t kn = strlen(x->key);
    ob_user *u = jd_xmalloc(sizeof *u + kn + 1);
    u->partition = p->index;
    memcpy(u->key, x->key, kn + 1);
    m->user = u;
    jd_err err;
    if (dlv_submit(d, m, &err) != JD_OK) {   /* full or closing: it stays here (invariant 1) */
        free(u);
        dlv_msg_destroy(m);
        return false;
    }
    x->submitted = true;
    return true;
}

static void skip(eng *e, const jrn_intent *it, const char *why)
{
    atomic_fetch_add_explicit(&e->st_dlv_skipped, 1, memory_order_relaxed);
    jd_debug("intent %016llx of %.*s (%s/%s) skipped: %s", (unsigned long long)it->id, (int)it->key.n, it->key.p,
             it->journey->id, it->node->id, why);
}

/* The variables a template sees: profile, event, journey, message. */
static json_object *vars_of(const eng *e, const jrn_intent *it, const char *channel, const char *category)
{
    json_object *v = eng__intent_vars(it), *m = json_object_new_object();
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)it->id);
    json_object_object_add(m, "id", json_object_new_string(hex));
    json_object_object_add(m, "channel", json_object_new_string(channel));
    json_object_object_add(m, "category", json_object_new_string(category ? category : "marketing"));
    /* Tracking links: unsubscribe_url, open_pixel_url, click_url (links.c) */
    const char *cat = category ? category : "marketing", *jid = it->journey->id, *nid = it->node->id;
    dlv_link lk = { .intent_id = it->id, .at_us = it->at_us, .key = it->key,
                    .key_is_user = json_object_object_get_ex(it->profile, "userId", NULL),
                    .journey = { jid, (uint32_t)strlen(jid) }, .node = { nid, (uint32_t)strlen(nid) },
                    .channel = { channel, (uint32_t)strlen(channel) }, .category = { cat, (uint32_t)strlen(cat) } };
    dlv_links_vars(e->o.links, &lk, m);
    json_object_object_add(v, "message", m);
    return v;
}

void eng__outbox_intent(eng_part *p, const jrn_intent *it)
{
    eng *e = p->e;
    const jrn_node *n = it->node;
    if (n->kind != JRN_SEND) return;   /* a task node's intent is a task (tasks.c) */
    const char *channel = n->u.send.channel, *category = n->u.send.category ? n->u.send.category : "marketing";
    char why[512];
    const dlv_template *t = e->o.templates ? dlv_templates_find(e->o.templates, n->u.send.template_name) : NULL;
    const dlv_channel_cfg *ch = NULL;
    for (size_t i = 0; i < e->o.nchannels && !ch; i++)
        if (strcmp(e->o.channels[i].name, channel) == 0) ch = &e->o.channels[i];
    if (!t) {
        snprintf(why, sizeof why, "no template '%s' (templates.dir)", n->u.send.template_name);
        skip(e, it, why);
        return;
    }
    if (!ch) {
        snprintf(why, sizeof why, "no channel '%s' configured (channels:)", channel);
        skip(e, it, why);
        return;
    }
    if (ch->kind != dlv_template_kind(t)) {
        snprintf(why, sizeof why, "template '%s' is for %s, channel '%s' is %s", n->u.send.template_name,
                 dlv_kind_name(dlv_template_kind(t)), channel, dlv_kind_name(ch->kind));
        skip(e, it, why);
        return;
    }
    if (!prof_consent_allows(p->profiles, it->key.p, it->key.n, channel, category, why, sizeof why)) {
        skip(e, it, why);
        return;
    }
    bool free_pass = exempt(e, category);   /* transactional: neither capped nor held */
    if (!free_pass && capped(p, it->key.p, it->key.n, channel, category, it->journey->id, it->at_us, why, sizeof why)) {
        atomic_fetch_add_explicit(&e->st_dlv_capped, 1, memory_order_relaxed);
        skip(e, it, why);
        return;
    }
    json_object *vars = vars_of(e, it, channel, category);
    dlv_msg *m = dlv_msg_create(it->id, ch->kind, channel, NULL);
    jd_err err;
    int rc = dlv_render(t, vars, it->at_us, m, &err);
    if (rc == JD_OK) dlv_links_apply(e->o.links, vars, m);   /* sealed click links, List-Unsubscribe (links.c) */
    /* Quiet hours: held by the transport until the window ends, not dropped.
     * The hold is part of the message, so a restart keeps it. */
    int64_t until = free_pass ? 0 : quiet_until(e, vars, channel, it->at_us);
    if (until > 0) {
        m->not_before_us = (uint64_t)until;
        atomic_fetch_add_explicit(&e->st_dlv_held, 1, memory_order_relaxed);
    }
    json_object_put(vars);
    if (rc != JD_OK) {
        snprintf(why, sizeof why, "render: %s%s%s", err.msg, err.where[0] ? " at " : "", err.where);
        dlv_msg_destroy(m);
        skip(e, it, why);
        return;
    }
    if (!free_pass) remember_send(p, it->key.p, it->key.n, channel, category, it->journey->id, it->at_us);
    ob_entry *x = jd_xcalloc(1, sizeof *x);
    x->id = it->id;
    x->key = jd_xstrndup(it->key.p, it->key.n);
    x->journey = jd_xstrdup(it->journey->id);
    x->node = jd_xstrdup(n->id);
    x->at_us = it->at_us;
    x->msg = m;
    ob_entry *old = jd_map_put(p->outbox, (const char *)&x->id, sizeof x->id, x);   /* the same intent again: replaced */
    if (old && !old->submitted) p->unsubmitted--;
    entry_free(old);
    atomic_fetch_add_explicit(&e->st_dlv_queued, 1, memory_order_relaxed);
    p->unsubmitted++;
    if (submit(e, p, x)) p->unsubmitted--;
}

/* Submits what is waiting: after eng_set_delivery, and after each batch for
 * what a full channel refused. Shard thread. */
void eng__outbox_flush(eng_part *p)
{
    size_t pos = 0;
    void *v;
    if (!p->unsubmitted || !atomic_load_explicit(&p->e->dlv, memory_order_acquire)) return;
    while (p->unsubmitted && jd_map_next(p->outbox, &pos, NULL, NULL, &v)) {
        if (((ob_entry *)v)->submitted) continue;
        if (!submit(p->e, p, v)) break;   /* full: the next batch tries again */
        p->unsubmitted--;
    }
}

/* ---- results: delivery thread -> log -> shard ----------------------------------- */

static void result_done(void *ctx, int status, const jd_err *err, uint64_t lsn)
{
    (void)ctx;
    (void)lsn;
    if (status != JD_OK) jd_warn("delivery: a result was not recorded (%s); the message will be sent again after a restart",
                                 err ? err->msg : "?");
}

void eng__outbox_on_result(const dlv_result *r, void *ctx)
{
    eng *e = ctx;
    ob_user *u = r->msg->user;
    if (!u) return;
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->intent_id);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "intent", json_object_new_string(hex));
    json_object_object_add(o, "key", json_object_new_string(u->key));
    json_object_object_add(o, "outcome", json_object_new_string(outcome_names[r->outcome]));
    json_object_object_add(o, "attempts", json_object_new_int64(r->attempts));
    json_object_object_add(o, "status", json_object_new_int64(r->status));
    if (r->provider_id) json_object_object_add(o, "provider_id", json_object_new_string(r->provider_id));
    if (r->error && *r->error) json_object_object_add(o, "error", json_object_new_string(r->error));
    json_object_object_add(o, "at", json_object_new_int64((int64_t)r->done_us));
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    eng_txn *t = eng_txn_create();
    eng__txn_add(t, ENG_REC_RESULT, (uint16_t)u->partition, s, (uint32_t)strlen(s));
    json_object_put(o);
    free(u);
    eng_submit(e, t, result_done, NULL);
}

void eng__outbox_on_unsent(dlv_msg *m, void *ctx)
{
    (void)ctx;
    free(m->user);   /* still in the outbox (invariant 1): sent again after the restart */
    dlv_msg_destroy(m);
}

int eng__apply_result(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng *e = sh->e;
    eng_part *p = &e->parts[h->partition];
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, (const char *)(h + 1), (int)h->len);
    json_tokener_free(tok);
    const char *hex = o ? eng__jstr(o, "intent") : NULL, *outcome = o ? eng__jstr(o, "outcome") : NULL;
    if (!hex || !outcome) {
        json_object_put(o);
        return jd_err_set(err, JD_ECORRUPT, "", "malformed RESULT record");
    }
    uint64_t id = strtoull(hex, NULL, 16);
    ob_entry *x = jd_map_del(p->outbox, (const char *)&id, sizeof id);
    if (x && !x->submitted) p->unsubmitted--;   /* a result for a copy sent before a restart */
    int oc = strcmp(outcome, "sent") == 0 ? DLV_SENT : strcmp(outcome, "failed") == 0 ? DLV_FAILED : DLV_DEAD;
    atomic_fetch_add_explicit(&e->st_dlv_outcomes[oc], 1, memory_order_relaxed);
    if (x && oc != DLV_SENT) {   /* a dead letter: kept (bounded) for GET /v1/deliveries and a retry */
        x->outcome = oc;
        x->attempts = (uint32_t)eng__jint(o, "attempts");
        const char *er = eng__jstr(o, "error");
        x->error = jd_xstrdup(er ? er : "");
        x->submitted = false;
        entry_free(p->dead[p->ndead % ENG_DEAD_LETTERS]);
        p->dead[p->ndead++ % ENG_DEAD_LETTERS] = x;
        x = NULL;
    }
    entry_free(x);
    json_object_put(o);
    return JD_OK;
}

/* ---- snapshot: the outbox and the dead letters as JSON ------------------------ */

static json_object *entry_json(const ob_entry *x)
{
    json_object *o = json_object_new_object();
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)x->id);
    json_object_object_add(o, "id", json_object_new_string(hex));
    json_object_object_add(o, "key", json_object_new_string(x->key));
    json_object_object_add(o, "journey", json_object_new_string(x->journey));
    json_object_object_add(o, "node", json_object_new_string(x->node));
    json_object_object_add(o, "at", json_object_new_int64(x->at_us));
    if (x->error) {
        json_object_object_add(o, "outcome", json_object_new_string(outcome_names[x->outcome]));
        json_object_object_add(o, "attempts", json_object_new_int64(x->attempts));
        json_object_object_add(o, "error", json_object_new_string(x->error));
    }
    json_object_object_add(o, "message", msg_json(x->msg));
    return o;
}

static ob_entry *entry_from_json(json_object *o)
{
    const char *id = eng__jstr(o, "id"), *key = eng__jstr(o, "key"), *j = eng__jstr(o, "journey"), *n = eng__jstr(o, "node");
    json_object *m;
    if (!id || !key || !j || !n || !json_object_object_get_ex(o, "message", &m)) return NULL;
    ob_entry *x = jd_xcalloc(1, sizeof *x);
    x->id = strtoull(id, NULL, 16);
    x->msg = msg_from_json(x->id, m);
    if (!x->msg) { free(x); return NULL; }
    x->key = jd_xstrdup(key);
    x->journey = jd_xstrdup(j);
    x->node = jd_xstrdup(n);
    x->at_us = eng__jint(o, "at");
    const char *er = eng__jstr(o, "error"), *oc = eng__jstr(o, "outcome");
    if (er) {
        x->error = jd_xstrdup(er);
        x->outcome = oc && strcmp(oc, "failed") == 0 ? DLV_FAILED : DLV_DEAD;
        x->attempts = (uint32_t)eng__jint(o, "attempts");
    }
    return x;
}

void eng__outbox_encode(const eng_part *p, jd_buf *out)
{
    json_object *o = json_object_new_object(), *pend = json_object_new_array(), *dead = json_object_new_array();
    size_t pos = 0;
    void *v;
    while (jd_map_next(p->outbox, &pos, NULL, NULL, &v)) json_object_array_add(pend, entry_json(v));
    for (uint64_t i = p->ndead > ENG_DEAD_LETTERS ? p->ndead - ENG_DEAD_LETTERS : 0; i < p->ndead; i++)
        json_object_array_add(dead, entry_json(p->dead[i % ENG_DEAD_LETTERS]));
    json_object_object_add(o, "pending", pend);
    json_object_object_add(o, "dead", dead);
    json_object *sends = json_object_new_object();
    pos = 0;
    while (jd_map_next(p->sends, &pos, NULL, NULL, &v)) {
        const ob_hist *h = v;
        json_object *a = json_object_new_array();
        for (uint32_t i = 0; i < h->n; i++) {
            json_object *e4 = json_object_new_array();
            json_object_array_add(e4, json_object_new_int64(h->s[i].at_us));
            json_object_array_add(e4, json_object_new_int64(h->s[i].channel));
            json_object_array_add(e4, json_object_new_int64(h->s[i].category));
            json_object_array_add(e4, json_object_new_int64(h->s[i].journey));
            json_object_array_add(a, e4);
        }
        json_object_object_add(sends, h->key, a);
    }
    json_object_object_add(o, "sends", sends);
    jd_buf_adds(out, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

int eng__outbox_decode(eng_part *p, const char *s, size_t n, jd_err *err)
{
    if (n == 0) return JD_OK;
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, s, (int)n), *pend, *dead;
    json_tokener_free(tok);
    int rc = JD_OK;
    if (!o || !json_object_object_get_ex(o, "pending", &pend) || !json_object_object_get_ex(o, "dead", &dead) ||
        !json_object_is_type(pend, json_type_array) || !json_object_is_type(dead, json_type_array)) {
        rc = jd_err_set(err, JD_ECORRUPT, "", "unreadable outbox in partition %u", p->index);
        goto out;
    }
    for (size_t i = 0; i < json_object_array_length(pend); i++) {
        ob_entry *x = entry_from_json(json_object_array_get_idx(pend, i));
        if (!x) { rc = jd_err_set(err, JD_ECORRUPT, "", "unreadable outbox entry %zu in partition %u", i, p->index); goto out; }
        ob_entry *old = jd_map_put(p->outbox, (const char *)&x->id, sizeof x->id, x);
        if (old) p->unsubmitted--;
        entry_free(old);
        p->unsubmitted++;
    }
    for (size_t i = 0; i < json_object_array_length(dead); i++) {
        ob_entry *x = entry_from_json(json_object_array_get_idx(dead, i));
        if (!x) continue;
        entry_free(p->dead[p->ndead % ENG_DEAD_LETTERS]);
        p->dead[p->ndead++ % ENG_DEAD_LETTERS] = x;
    }
    json_object *sends;
    if (json_object_object_get_ex(o, "sends", &sends) && json_object_is_type(sends, json_type_object)) {
        json_object_object_foreach(sends, key, arr) {
            if (!json_object_is_type(arr, json_type_array)) continue;
            ob_hist *h = jd_xcalloc(1, sizeof *h);
            h->key = jd_xstrdup(key);
            for (size_t i = 0; i < json_object_array_length(arr) && h->n < DLV_GUARD_MAX_SENDS; i++) {
                json_object *e4 = json_object_array_get_idx(arr, i);
                if (!json_object_is_type(e4, json_type_array) || json_object_array_length(e4) != 4) continue;
                h->s[h->n++] = (ob_send){ json_object_get_int64(json_object_array_get_idx(e4, 0)),
                                          (uint32_t)json_object_get_int64(json_object_array_get_idx(e4, 1)),
                                          (uint32_t)json_object_get_int64(json_object_array_get_idx(e4, 2)),
                                          (uint32_t)json_object_get_int64(json_object_array_get_idx(e4, 3)) };
            }
            ob_hist *old = jd_map_put(p->sends, h->key, strlen(h->key), h);
            if (old) { free(old->key); free(old); }
        }
    }
out:
    json_object_put(o);
    return rc;
}

/* ---- attaching delivery ------------------------------------------------------------ */

static void flush_shard(eng_shard *sh, void *arg)
{
    (void)arg;
    for (uint32_t p = sh->id; p < sh->e->nparts; p += sh->e->nshards) eng__outbox_flush(&sh->e->parts[p]);
}

static void forget_submitted(eng_shard *sh, void *arg)
{
    (void)arg;
    for (uint32_t p = sh->id; p < sh->e->nparts; p += sh->e->nshards) {
        eng_part *part = &sh->e->parts[p];
        size_t pos = 0;
        void *v;
        while (jd_map_next(part->outbox, &pos, NULL, NULL, &v))
            if (((ob_entry *)v)->submitted) { ((ob_entry *)v)->submitted = false; part->unsubmitted++; }
    }
}

void eng_set_delivery(eng *e, dlv *d)
{
    atomic_store_explicit(&e->dlv, d, memory_order_release);
    if (d) {
        for (uint32_t s = 0; s < e->nshards; s++) eng__call(e, s, flush_shard, NULL);   /* invariant (2) */
        return;
    }
    /* Detaching: once every shard has passed this barrier none is inside
     * submit() with the old dlv; what it had taken and not answered is to be
     * sent again by a later attach (a result may still come and remove it). */
    for (uint32_t s = 0; s < e->nshards; s++) eng__call(e, s, forget_submitted, NULL);
    eng__shards_barrier(e);
}

void eng_dlv_callbacks(eng *e, dlv_opts *o)
{
    o->on_result = eng__outbox_on_result;
    o->on_unsent = eng__outbox_on_unsent;
    o->ctx = e;
}

/* ---- reading the outbox and the dead letters (GET /v1/deliveries) ---------------- */

typedef struct dl_job {
    uint32_t        limit;
    bool            dead;            /* dead letters, else the outbox */
    char           *id;              /* one message (hex), or NULL: a list */
    eng_json_fn     done;
    void           *ctx;
} dl_job;

static json_object *public_json(const ob_entry *x, uint32_t partition, bool dead)
{
    json_object *o = entry_json(x);
    json_object_object_add(o, "status", json_object_new_string(dead ? outcome_names[x->outcome] : x->submitted ? "sending" : "waiting"));
    json_object_object_add(o, "partition", json_object_new_int64(partition));
    return o;
}

static int by_at_desc(const void *a, const void *b)
{
    int64_t x = eng__jint(*(json_object *const *)a, "at"), y = eng__jint(*(json_object *const *)b, "at");
    return (x < y) - (x > y);
}

/* all: the entries from every shard (borrowed). */
static void dl_finish(void *arg, json_object *all)
{
    dl_job *j = arg;
    size_t n = json_object_array_length(all);
    if (j->id && n == 0) {
        jd_err err;
        jd_err_set(&err, JD_ENOTFOUND, "id", "no message %s in the outbox or the dead letters", j->id);
        eng__reply_err(j->done, j->ctx, JD_ENOTFOUND, &err, NULL);
    } else {
        json_object_array_sort(all, by_at_desc);
        json_object *out;
        if (j->id) out = json_object_get(json_object_array_get_idx(all, 0));
        else {
            out = json_object_new_array();
            for (size_t i = 0; i < n && i < j->limit; i++)
                json_object_array_add(out, json_object_get(json_object_array_get_idx(all, i)));
        }
        const char *s = json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        j->done(j->ctx, JD_OK, NULL, s, strlen(s));
        json_object_put(out);
    }
    free(j->id);
    free(j);
}

static void dl_shard(eng_shard *sh, void *arg, json_object *mine)
{
    dl_job *j = arg;
    eng *e = sh->e;
    uint64_t want = j->id ? strtoull(j->id, NULL, 16) : 0;
    for (uint32_t p = sh->id; p < e->nparts; p += e->nshards) {
        eng_part *part = &e->parts[p];
        if (j->id || !j->dead) {
            ob_entry *x = j->id ? jd_map_get(part->outbox, (const char *)&want, sizeof want) : NULL;
            if (x) json_object_array_add(mine, public_json(x, p, false));
            size_t pos = 0;
            void *v;
            while (!j->id && jd_map_next(part->outbox, &pos, NULL, NULL, &v)) json_object_array_add(mine, public_json(v, p, false));
        }
        if (j->id || j->dead)
            for (uint64_t i = part->ndead > ENG_DEAD_LETTERS ? part->ndead - ENG_DEAD_LETTERS : 0; i < part->ndead; i++) {
                ob_entry *x = part->dead[i % ENG_DEAD_LETTERS];
                if (x && (!j->id || x->id == want)) json_object_array_add(mine, public_json(x, p, true));
            }
    }
}

void eng_deliveries_get(eng *e, const char *id, bool dead, uint32_t limit, eng_json_fn done, void *ctx)
{
    dl_job *j = jd_xcalloc(1, sizeof *j);
    j->limit = limit ? limit : 100;
    j->dead = dead;
    j->id = id ? jd_xstrdup(id) : NULL;
    j->done = done;
    j->ctx = ctx;
    eng__fanout(e, dl_shard, dl_finish, j);
}

/* ---- retrying a dead letter: a RETRY record through the log ------------------------- */

typedef struct retry_job {
    eng        *e;
    char       *id;
    eng_json_fn done;
    void       *ctx;
} retry_job;

static void retry_free(retry_job *j)
{
    free(j->id);
    free(j);
}

static void retry_committed(void *ctx, int status, const jd_err *err, uint64_t lsn)
{
    retry_job *j = ctx;
    (void)lsn;
    if (status != JD_OK) eng__reply_err(j->done, j->ctx, status, err, NULL);
    else eng_deliveries_get(j->e, j->id, false, 1, j->done, j->ctx);   /* applied before this read (FIFO) */
    retry_free(j);
}

/* The message as it is now: a dead letter is retried through the log. */
static void retry_found(void *ctx, int rc, const jd_err *err, const char *json, size_t n)
{
    retry_job *j = ctx;
    (void)n;
    json_object *o = rc == JD_OK ? json_tokener_parse(json) : NULL;
    const char *status = o ? eng__jstr(o, "status") : NULL;
    int64_t part = o ? eng__jint(o, "partition") : -1;
    jd_err e2;
    if (rc != JD_OK) {
        eng__reply_err(j->done, j->ctx, rc, err, NULL);
        retry_free(j);
    } else if (!status || (strcmp(status, "failed") != 0 && strcmp(status, "dead") != 0)) {
        jd_err_set(&e2, JD_EBUSY, "status", "message %s is %s, not a dead letter", j->id, status ? status : "?");
        eng__reply_err(j->done, j->ctx, JD_EBUSY, &e2, NULL);
        retry_free(j);
    } else {
        char body[64];
        int len = snprintf(body, sizeof body, "{\"intent\":\"%s\"}", j->id);
        eng_txn *t = eng_txn_create();
        eng__txn_add(t, ENG_REC_RETRY, (uint16_t)part, body, (uint32_t)len);
        eng_submit(j->e, t, retry_committed, j);
    }
    json_object_put(o);
}

void eng_delivery_retry(eng *e, const char *id, eng_json_fn done, void *ctx)
{
    retry_job *j = jd_xcalloc(1, sizeof *j);
    j->e = e;
    j->id = jd_xstrdup(id);
    j->done = done;
    j->ctx = ctx;
    eng_deliveries_get(e, id, false, 1, retry_found, j);
}

/* RETRY: the dead letter goes back into the outbox and out again, same id. */
int eng__apply_retry(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng_part *p = &sh->e->parts[h->partition];
    char hex[17] = { 0 };
    const char *q = memmem(h + 1, h->len, "\"intent\":\"", 10);
    if (!q || (size_t)((const char *)(h + 1) + h->len - (q + 10)) < 16)
        return jd_err_set(err, JD_ECORRUPT, "", "malformed RETRY record");
    memcpy(hex, q + 10, 16);
    uint64_t id = strtoull(hex, NULL, 16);
    for (size_t i = 0; i < ENG_DEAD_LETTERS; i++) {
        ob_entry *x = p->dead[i];
        if (!x || x->id != id) continue;
        p->dead[i] = NULL;
        free(x->error);
        x->error = NULL;
        x->submitted = false;
        ob_entry *old = jd_map_put(p->outbox, (const char *)&x->id, sizeof x->id, x);
        if (old && !old->submitted) p->unsubmitted--;
        entry_free(old);
        p->unsubmitted++;
        atomic_fetch_add_explicit(&sh->e->st_dlv_retried, 1, memory_order_relaxed);
        eng__outbox_flush(p);
        return JD_OK;
    }
    return JD_OK;   /* already retried (a replay after it left the ring): nothing to do */
}
