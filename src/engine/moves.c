/*
** src/engine/moves.c -- the shard side of identity resolution: routed events,
** and a merged profile's state travelling from its old shard to its new one.
**
** route.c writes MOVE_OUT (lsn m, the loser's partition) and MOVE_IN (lsn
** m + 1, the survivor's) in one transaction. The loser's shard, applying
** MOVE_OUT, takes the person out of its profile store and journey host and
** sends both blobs as a move_msg; the survivor's shard, applying MOVE_IN,
** waits for that message and merges it in.
**
** Invariants:
**  (1) Every MOVE_OUT applied sends exactly one move_msg (possibly empty), to
**      the shard of its MOVE_IN, so a MOVE_IN never waits for nothing.
**  (2) Waiting cannot deadlock: a shard waits at MOVE_IN m + 1 only for the
**      shard applying MOVE_OUT m; that shard may itself be waiting, but only
**      for a smaller lsn, and shards apply records in lsn order, so the chain
**      of waits ends. (Replay pushes a MOVE_OUT's batch at once for the same
**      reason: committer.c replay_rec.)
**  (3) The blobs are a function of the log before m (shard.c invariant 2), so
**      a replay sends the same bytes: moving through a message is as durable
**      as moving through the log.
*/
#include "engine_int.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- routed events ----------------------------------------------------------- */

int eng__apply_routed(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng_part *p = &sh->e->parts[h->partition];
    eng_routed r;
    int rc = eng__routed_decode(h + 1, h->len, &r, err);
    if (rc != JD_OK) return rc;
    /* The profile sees the event as its key's: the directory chose the key,
     * and merges (MOVE_IN) already brought the other identifiers along. */
    ingest_event ev = r.ev;
    if (r.key_is_user) {
        ev.user_id = r.key;
        if (r.anon_refused) ev.anonymous_id = (jd_str){ 0 };
    } else {
        ev.user_id = (jd_str){ 0 };
        ev.anonymous_id = r.key;
    }
    ev.previous_id = (jd_str){ 0 };
    jrn_host_advance(p->host, ev.received_us, h->lsn);
    if (prof_suppresses(p->profiles, &ev)) {   /* a deleted person's late event */
        atomic_fetch_add_explicit(&sh->e->st_suppressed, 1, memory_order_relaxed);
        return JD_OK;
    }
    rc = prof_apply(p->profiles, &ev, err);
    for (uint32_t i = 0; rc == JD_OK && i < r.nattach; i++) {
        char kind[IDN_MAX_KIND_BYTES + 1];
        snprintf(kind, sizeof kind, "%.*s", (int)r.attach[i].kind.n, r.attach[i].kind.p);
        prof_add_identifier(p->profiles, r.key.p, r.key.n, kind, r.attach[i].v.p, r.attach[i].v.n);
    }
    jrn_host_event(p->host, &ev, h->lsn, ev.received_us);
    return rc;
}

/* ---- moves -------------------------------------------------------------------- */

static void stash_add(eng_shard *sh, move_msg *x)
{
    x->next_stash = sh->stash;
    sh->stash = x;
}

static move_msg *stash_take(eng_shard *sh, uint64_t lsn)
{
    for (move_msg **at = &sh->stash; *at; at = &(*at)->next_stash)
        if ((*at)->lsn == lsn) {
            move_msg *x = *at;
            *at = x->next_stash;
            return x;
        }
    return NULL;
}

static void move_free(move_msg *x)
{
    jd_buf_release(&x->prof);
    jd_buf_release(&x->host);
    free(x);
}

int eng__apply_move_out(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng *e = sh->e;
    eng_part *p = &e->parts[h->partition];
    eng_move m;
    if (eng__move_decode(h + 1, h->len, &m) != JD_OK)
        return jd_err_set(err, JD_ECORRUPT, "", "malformed MOVE_OUT record");
    jrn_host_advance(p->host, m.at_us, h->lsn);   /* due waits fire where the person was */
    move_msg *x = jd_xcalloc(1, sizeof *x);
    x->lsn = h->lsn;
    jd_buf_init(&x->prof, SIZE_MAX);
    jd_buf_init(&x->host, SIZE_MAX);
    prof_extract(p->profiles, m.from.p, m.from.n, &x->prof);      /* JD_ENOTFOUND: nothing to send */
    jrn_host_extract(p->host, m.from.p, m.from.n, &x->host);
    uint32_t to = eng__shard_of(e, eng__partition_of(e, m.to.p, m.to.n));
    if (to == sh->id) stash_add(sh, x);
    else {
        bool ok = jd_queue_push(&e->shards[to].moves, &x->node);
        JD_ASSERT(ok);   /* move queues close only after every shard stopped */
        (void)ok;
    }
    return JD_OK;
}

/* The state MOVE_OUT lsn sent: stashed already, or on its way (invariant 2). */
static move_msg *await_move(eng_shard *sh, uint64_t lsn)
{
    move_msg *x;
    while (!(x = stash_take(sh, lsn))) {
        jd_qnode *list = jd_queue_pop_all(&sh->moves, 1000);
        if (!list) jd_warn("shard %u: still waiting for the profile moved at lsn %llu", sh->id, (unsigned long long)lsn);
        for (jd_qnode *n = list, *next; n; n = next) {
            next = n->next;
            stash_add(sh, (move_msg *)n);
        }
    }
    return x;
}

int eng__apply_move_in(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng *e = sh->e;
    eng_part *p = &e->parts[h->partition];
    eng_move m;
    if (eng__move_decode(h + 1, h->len, &m) != JD_OK)
        return jd_err_set(err, JD_ECORRUPT, "", "malformed MOVE_IN record");
    move_msg *x = await_move(sh, h->lsn - 1);
    jrn_host_advance(p->host, m.at_us, h->lsn);
    int rc = prof_merge_in(p->profiles, m.to.p, m.to.n, m.to_is_user, m.from.p, m.from.n, m.from_is_user,
                           x->prof.data, x->prof.len, err);
    if (rc == JD_OK) rc = jrn_host_merge_in(p->host, m.to.p, m.to.n, x->host.data, x->host.len, h->lsn, err);
    move_free(x);
    return rc;
}

void eng__moves_release(eng_shard *sh)
{
    for (move_msg *x = sh->stash, *next; x; x = next) {
        next = x->next_stash;
        move_free(x);
    }
    sh->stash = NULL;
    jd_qnode *list = jd_queue_pop_all(&sh->moves, 0);
    for (jd_qnode *n = list, *next; n; n = next) {
        next = n->next;
        move_free((move_msg *)n);
    }
}

/* ---- refusals ------------------------------------------------------------------ */

int eng__apply_refused(eng_shard *sh, const rec_hdr *h, jd_err *err)
{
    eng_part *p = &sh->e->parts[h->partition];
    json_object *o = eng__json_n(h + 1, h->len);
    const char *key = o ? eng__jstr(o, "key") : NULL, *other = o ? eng__jstr(o, "other") : NULL;
    const char *reason = o ? eng__jstr(o, "reason") : NULL;
    int rc = JD_OK;
    if (!key || !other || !reason) rc = jd_err_set(err, JD_ECORRUPT, "", "malformed REFUSED record");
    else prof_note_refused(p->profiles, key, strlen(key), other, strlen(other), reason, eng__jint(o, "at"));
    json_object_put(o);
    return rc;
}
