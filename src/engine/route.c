/*
** src/engine/route.c -- the identity edge: every event is routed through the
** identity directory before it is written, and merges become records.
**
** The committer owns the directory (include/journeyd/identity.h). When it
** stages a transaction, each event's identifiers are resolved (idn_resolve)
** and the event is rewritten as a ROUTED record naming the profile key it
** lands on. A merge of profile L into profile S becomes two records placed
** just before the event, in the same transaction:
**
**   MOVE_OUT (partition of L)   lsn m      L's shard takes L out of its stores
**   MOVE_IN  (partition of S)   lsn m + 1  S's shard merges what L's sent
**   ROUTED   (partition of S)              the event, on the merged profile
**   REFUSED  (S's, other's)                merges the limits refused, if any
**
** The state travels between the two shards as a message (moves.c), not
** through the log: it is a function of the log before lsn m, so a replay sends
** the same bytes again. A transaction is whole or absent after a crash, so
** there is never a MOVE_OUT without its MOVE_IN.
**
** Invariants:
**  (1) The directory equals the recorded decisions of every durable record:
**      replay applies them (eng__route_replay) and never decides again, so a
**      changed configuration cannot fork it from the shards' state.
**  (2) A refused group's decisions are undone by rebuilding the directory
**      from the last snapshot and the durable log (eng__route_rebuild).
**  (4) Snapshots hold no directory: it is rebuilt at start from the
**      identities the snapshot's profiles hold (eng__route_link_store), so the
**      committer never stops to copy it.
**  (3) Later events resolve through the directory, so once a merge is staged
**      nothing more is routed to L: L's shard applies nothing for L after
**      MOVE_OUT, and S's shard applies the event after MOVE_IN.
*/
#include "engine_int.h"
#include "journeyd/limits.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

/* ---- the routed event record --------------------------------------------------
 * u16 prefix_len (a multiple of 8, counting itself) | u8 flags | u8 nattach |
 * u16 key_len | key | nattach x (u8 kind_len | kind | u8 len | id) | zeros |
 * the event record of ingest_event_encode.                                    */

enum { RT_KEY_USER = 1, RT_ANON_REFUSED = 2 };

static void put16(jd_buf *b, uint16_t v) { uint8_t t[2] = { (uint8_t)v, (uint8_t)(v >> 8) }; jd_buf_add(b, t, 2); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void put_prefix(eng *e, jd_buf *b, const idn_plan *pl)
{
    static const char zeros[8];
    size_t at = b->len;
    put16(b, 0);
    uint8_t fl[2] = { (uint8_t)((pl->key_is_user ? RT_KEY_USER : 0) | (pl->anon_refused ? RT_ANON_REFUSED : 0)),
                      (uint8_t)pl->nattach };
    jd_buf_add(b, fl, 2);
    put16(b, (uint16_t)pl->key.n);
    jd_buf_add(b, pl->key.p, pl->key.n);
    for (uint32_t i = 0; i < pl->nattach; i++) {
        const char *kn = idn_kind_name(e->dir, pl->attach[i].kind);
        uint8_t l = (uint8_t)strlen(kn), vl = (uint8_t)pl->attach[i].v.n;
        jd_buf_add(b, &l, 1);
        jd_buf_add(b, kn, l);
        jd_buf_add(b, &vl, 1);
        jd_buf_add(b, pl->attach[i].v.p, vl);
    }
    size_t len = b->len - at;
    jd_buf_add(b, zeros, REC_ALIGN(len) - len);
    len = REC_ALIGN(len);
    b->data[at] = (char)len;
    b->data[at + 1] = (char)(len >> 8);
}

int eng__routed_decode(const void *body, size_t n, eng_routed *out, jd_err *err)
{
    const uint8_t *p = body;
    memset(out, 0, sizeof *out);
    if (n < 8) goto bad;
    size_t plen = get16(p), at = 6;
    if (plen < 8 || plen > n || plen % 8) goto bad;
    out->key_is_user = p[2] & RT_KEY_USER;
    out->anon_refused = p[2] & RT_ANON_REFUSED;
    out->nattach = p[3];
    size_t kl = get16(p + 4);
    if (kl == 0 || kl > plen - at || out->nattach > IDN_MAX_EVENT_IDS) goto bad;
    out->key = (jd_str){ (const char *)p + at, (uint32_t)kl };
    at += kl;
    for (uint32_t i = 0; i < out->nattach; i++) {
        if (at >= plen || p[at] == 0 || p[at] > plen - at - 1) goto bad;
        out->attach[i].kind = (jd_str){ (const char *)p + at + 1, p[at] };
        at += 1u + p[at];
        if (at >= plen || p[at] == 0 || p[at] > plen - at - 1) goto bad;
        out->attach[i].v = (jd_str){ (const char *)p + at + 1, p[at] };
        at += 1u + p[at];
    }
    return ingest_event_decode(p + plen, n - plen, &out->ev, err);
bad:
    return jd_err_set(err, JD_ECORRUPT, "", "routed event record has a malformed prefix");
}

/* ---- moves ------------------------------------------------------------------
 * u8 from_is_user | u8 to_is_user | u16 from_len | u16 to_len | u16 0 |
 * i64 at_us | from | to                                                        */

static void put_move(jd_buf *b, jd_str from, bool fu, jd_str to, bool tu, int64_t at)
{
    uint8_t h[16] = { fu, tu, (uint8_t)from.n, (uint8_t)(from.n >> 8), (uint8_t)to.n, (uint8_t)(to.n >> 8), 0, 0 };
    for (int i = 0; i < 8; i++) h[8 + i] = (uint8_t)((uint64_t)at >> (8 * i));
    jd_buf_add(b, h, sizeof h);
    jd_buf_add(b, from.p, from.n);
    jd_buf_add(b, to.p, to.n);
}

int eng__move_decode(const void *body, size_t n, eng_move *m)
{
    const uint8_t *p = body;
    if (n < 16) return JD_ECORRUPT;
    size_t fl = get16(p + 2), tl = get16(p + 4);
    if (!fl || !tl || fl + tl != n - 16) return JD_ECORRUPT;
    m->from_is_user = p[0];
    m->to_is_user = p[1];
    uint64_t at = 0;
    for (int i = 0; i < 8; i++) at |= (uint64_t)p[8 + i] << (8 * i);
    m->at_us = (int64_t)at;
    m->from = (jd_str){ (const char *)p + 16, (uint32_t)fl };
    m->to = (jd_str){ (const char *)p + 16 + fl, (uint32_t)tl };
    return JD_OK;
}

/* ---- staging: rewriting a transaction ---------------------------------------- */

/* Appends one record (header + body + padding) to out. */
static void out_rec(jd_buf *out, const rec_hdr *tmpl, uint16_t type, uint16_t part, const jd_buf *body)
{
    static const char zeros[8];
    rec_hdr h = *tmpl;
    h.type = type;
    h.partition = part;
    h.len = (uint32_t)body->len;
    jd_buf_add(out, &h, sizeof h);
    jd_buf_add(out, body->data, body->len);
    jd_buf_add(out, zeros, REC_ALIGN(body->len) - body->len);
}

static void refused_rec(eng *e, jd_buf *out, uint32_t *n, jd_buf *body, jd_str key, jd_str other,
                        const char *reason, int64_t at)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "key", json_object_new_string_len(key.p, (int)key.n));
    json_object_object_add(o, "other", json_object_new_string_len(other.p, (int)other.n));
    json_object_object_add(o, "reason", json_object_new_string(reason));
    json_object_object_add(o, "at", json_object_new_int64(at));
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    jd_buf_reset(body);
    jd_buf_add(body, s, strlen(s));
    rec_hdr t = { 0 };
    out_rec(out, &t, ENG_REC_REFUSED, (uint16_t)eng__partition_of(e, key.p, key.n), body);
    (*n)++;
    json_object_put(o);
    jd_warn("identity: %.*s and %.*s not merged: %s", (int)key.n, key.p, (int)other.n, other.p, reason);
}

/* One raw event: resolve, then MOVE_OUT/MOVE_IN pairs, the event, refusals. */
static void route_event(eng *e, const rec_hdr *h, jd_buf *out, uint32_t *n, jd_buf *body)
{
    const uint8_t *p = (const uint8_t *)(h + 1);
    uint8_t ndecl = p[0];
    size_t at = 1;
    idn_id ids[IDN_MAX_EVENT_IDS];
    size_t nids = 0;
    jd_str decl[IDN_MAX_EVENT_IDS];
    uint32_t dkind[IDN_MAX_EVENT_IDS];
    for (uint8_t i = 0; i < ndecl; i++) {   /* written by eng_txn_add_event: trusted */
        dkind[i] = p[at];
        decl[i] = (jd_str){ (const char *)p + at + 2, p[at + 1] };
        at += 2u + p[at + 1];
    }
    at = REC_ALIGN(at);
    ingest_event ev;
    jd_err err;
    int rc = ingest_event_decode(p + at, h->len - at, &ev, &err);
    JD_ASSERT(rc == JD_OK);   /* encoded on this process a moment ago */
    (void)rc;
    if (ev.user_id.n) ids[nids++] = (idn_id){ IDN_USER, ev.user_id };
    for (uint8_t i = 0; i < ndecl && nids < IDN_MAX_EVENT_IDS - 2; i++) ids[nids++] = (idn_id){ dkind[i], decl[i] };
    if (ev.anonymous_id.n) ids[nids++] = (idn_id){ IDN_ANON, ev.anonymous_id };
    if (ev.type == INGEST_ALIAS && ev.previous_id.n) ids[nids++] = (idn_id){ IDN_ANON, ev.previous_id };
    idn_plan pl;
    idn_resolve(e->dir, ids, nids, &pl);

    for (uint32_t m = 0; m < pl.nmoves; m++) {
        jd_buf_reset(body);
        put_move(body, pl.moves[m].from, pl.moves[m].from_is_user, pl.key, pl.key_is_user, ev.received_us);
        rec_hdr t = { 0 };
        out_rec(out, &t, ENG_REC_MOVE_OUT, (uint16_t)eng__partition_of(e, pl.moves[m].from.p, pl.moves[m].from.n), body);
        out_rec(out, &t, ENG_REC_MOVE_IN, (uint16_t)eng__partition_of(e, pl.key.p, pl.key.n), body);
        *n += 2;
        atomic_fetch_add_explicit(&e->st_merges, 1, memory_order_relaxed);
    }
    jd_buf_reset(body);
    put_prefix(e, body, &pl);
    jd_buf_add(body, p + at, h->len - at);
    out_rec(out, h, ENG_REC_ROUTED, (uint16_t)eng__partition_of(e, pl.key.p, pl.key.n), body);
    (*n)++;
    for (uint32_t r = 0; r < pl.nrefused; r++) {
        refused_rec(e, out, n, body, pl.key, pl.refused[r].other, pl.refused[r].reason, ev.received_us);
        if (pl.refused[r].is_key)
            refused_rec(e, out, n, body, pl.refused[r].other, pl.key, pl.refused[r].reason, ev.received_us);
        atomic_fetch_add_explicit(&e->st_merges_refused, 1, memory_order_relaxed);
    }
}

/* An ENTER names a person as the API found them; route it to where they are now. */
static void route_enter(eng *e, const rec_hdr *h, jd_buf *out, uint32_t *n, jd_buf *body)
{
    json_object *o = eng__json_n(h + 1, h->len);
    const char *key = o ? eng__jstr(o, "key") : NULL;
    if (!key) {
        jd_buf_reset(body);
        jd_buf_add(body, h + 1, h->len);
        out_rec(out, h, h->type, h->partition, body);
    } else {
        jd_str k = idn_lookup(e->dir, key, strlen(key), NULL);
        json_object_object_add(o, "key", json_object_new_string_len(k.p, (int)k.n));
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        jd_buf_reset(body);
        jd_buf_add(body, s, strlen(s));
        out_rec(out, h, h->type, (uint16_t)eng__partition_of(e, k.p, k.n), body);
    }
    (*n)++;
    json_object_put(o);
}

void eng__route_txn(eng *e, eng_txn *t)
{
    if (!t->route) return;
    jd_buf out, body;
    jd_buf_init(&out, SIZE_MAX);
    jd_buf_init(&body, SIZE_MAX);
    uint32_t n = 0;
    rec_hdr *h = (rec_hdr *)t->recs.data;
    for (uint32_t i = 0; i < t->n; i++, h = REC_NEXT(h)) {
        if (!h->dup && h->type == ENG_REC_EVENT_RAW) {
            route_event(e, h, &out, &n, &body);
            continue;
        }
        if (!h->dup && h->type == ENG_REC_ENTER) {
            route_enter(e, h, &out, &n, &body);
            continue;
        }
        if (!h->dup) eng__route_replay_rec(e, h->type, h + 1, h->len);   /* a DELETE forgets */
        jd_buf_add(&out, h, sizeof *h + REC_ALIGN(h->len));
        n++;
    }
    jd_buf_release(&t->recs);
    jd_buf_release(&body);
    t->recs = out;
    t->n = n;
}

/* ---- replay: the recorded decisions ---------------------------------------- */

static void forget_ids(eng *e, const void *body, uint32_t len)
{
    json_object *o = eng__json_n(body, len), *ids;
    const char *id = o ? eng__jstr(o, "id") : NULL;
    if (id) idn_forget(e->dir, id, strlen(id));
    if (o && json_object_object_get_ex(o, "ids", &ids) && json_object_is_type(ids, json_type_array))
        for (size_t i = 0; i < json_object_array_length(ids); i++) {
            json_object *x = json_object_array_get_idx(ids, i);
            if (json_object_is_type(x, json_type_string))
                idn_forget(e->dir, json_object_get_string(x), (size_t)json_object_get_string_len(x));
        }
    json_object_put(o);
}

void eng__route_replay_rec(eng *e, uint16_t type, const void *body, uint32_t len)
{
    jd_err err;
    if (type == ENG_REC_MOVE_OUT) {
        eng_move m;
        if (eng__move_decode(body, len, &m) == JD_OK) idn_apply_move(e->dir, m.from, m.from_is_user, m.to, m.to_is_user);
    } else if (type == ENG_REC_ROUTED) {
        eng_routed r;
        if (eng__routed_decode(body, len, &r, &err) != JD_OK) return;
        for (uint32_t i = 0; i < r.nattach; i++) {
            uint32_t k = idn_kind(e->dir, r.attach[i].kind.p, r.attach[i].kind.n);
            if (k != UINT32_MAX) idn_apply_attach(e->dir, r.key, r.key_is_user, k, r.attach[i].v);
        }
    } else if (type == ENG_REC_DELETE) {
        forget_ids(e, body, len);
    }
}

typedef struct rebuild_ctx { eng *e; } rebuild_ctx;

static int rebuild_rec(void *arg, const log_rec *r)
{
    rebuild_ctx *c = arg;
    eng__route_replay_rec(c->e, r->type, r->body, r->len);
    return 0;
}

/* The directory from the identities the profiles hold: every anonymousId and
 * identifier of a profile is a link to its key (the merges and links that put
 * them there are exactly the directory's decisions, invariant (1)). */
static void link_identity(void *ctx, jd_str key, bool key_is_user, const char *kind, jd_str id)
{
    eng *e = ctx;
    if (strcmp(kind, "anonymousId") == 0 || strcmp(kind, "userId") == 0) {
        idn_apply_move(e->dir, id, kind[0] == 'u', key, key_is_user);
        return;
    }
    uint32_t k = idn_kind(e->dir, kind, strlen(kind));
    if (k != UINT32_MAX) idn_apply_attach(e->dir, key, key_is_user, k, id);
}

void eng__route_link_store(eng *e, const prof_store *s) { prof_store_each_identity(s, link_identity, e); }

void eng__route_rebuild(eng *e)
{
    jd_err err;
    uint64_t lsn = atomic_load(&e->st_snapshot_lsn);
    idn_destroy(e->dir);
    e->dir = idn_create(&e->o.identity);
    int rc = lsn ? eng__snapshot_load_directory(e, lsn, &err) : JD_OK;
    rebuild_ctx c = { e };
    if (rc == JD_OK) rc = log_replay(e->log, lsn + 1, rebuild_rec, &c, &err);
    if (rc != JD_OK) jd_error("identity: cannot rebuild the directory after a refused write: %s", err.msg);
}

/* ---- lookups for readers (a call on the committer thread) ---------------------- */

typedef struct resolve_job {
    char *id;
    eng_resolved_fn fn;
    void *arg;
} resolve_job;

static void resolve_run(eng *e, void *arg)
{
    resolve_job *j = arg;
    bool is_user;
    jd_str k = idn_lookup(e->dir, j->id, strlen(j->id), &is_user);
    char *key = jd_xstrndup(k.p, k.n);
    j->fn(e, key, j->arg);   /* takes key */
    free(j->id);
    free(j);
}

void eng__resolve(eng *e, const char *id, eng_resolved_fn fn, void *arg)
{
    resolve_job *j = jd_xcalloc(1, sizeof *j);
    j->id = jd_xstrdup(id);
    j->fn = fn;
    j->arg = arg;
    if (eng__committer_call(e, resolve_run, j)) return;
    fn(e, j->id, arg);   /* closing: answer as if the directory did not hold it */
    free(j);
}
