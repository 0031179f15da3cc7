/*
** src/journey/host_codec.c -- a jrn_host in a snapshot, and back.
**
** Layout (little-endian, docs/internals/instance.md):
**   "JRNH" u32 format=2 | i64 now
**   u32 nstats  x { str journey | u32 version | u64 entered, active,
**                   exits[JRN_END_COUNT_], condition_errors | u32 nnodes |
**                   nnodes x u64 | str last_error }
**   u32 npeople x { str key | u16 npj x { str journey | u8 last_end |
**                   i64 last_entered | u64 last_entry_lsn | u32 ninst x inst } }
**   inst: u64 id | i64 entered, node_since, paused_left |
**         u32 paused_rule, version, node, steps | u16 variant | u8 state, end,
**         flags | u16 split_node | u64 timer_when (0: none; with
**         flags JH_HELD the deadline of a held wait, which is not armed) |
**         str entry ("" none)
**   u32 nseg x { str key | u64 segment bits | u32 nflips x { u32 bit | u64 when } }
**   str: u32 length | bytes
** Journeys are named by id (registry indexes are per process), so the
** registry is decoded first. Timers are re-armed at their deadlines.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_int.h"

#define HOST_MAGIC "JRNH"
#define HOST_FORMAT 2u   /* 2: segment states */

/* ---- writing ------------------------------------------------------------- */

static void w_u8(jd_buf *b, uint8_t v) { jd_buf_add(b, &v, 1); }
static void w_u16(jd_buf *b, uint16_t v) { uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) }; jd_buf_add(b, x, 2); }
static void w_u32(jd_buf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    jd_buf_add(b, x, 4);
}
static void w_u64(jd_buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    jd_buf_add(b, x, 8);
}
static void w_str(jd_buf *b, const char *s, size_t n)
{
    w_u32(b, (uint32_t)n);
    jd_buf_add(b, s, n);
}

static void w_inst(const jrn_host *h, jd_buf *b, const jh_inst *x)
{
    const jrn_instance *in = &x->in;
    w_u64(b, in->id);
    w_u64(b, (uint64_t)in->entered_us);
    w_u64(b, (uint64_t)in->node_since_us);
    w_u64(b, (uint64_t)in->paused_left_us);
    w_u32(b, in->paused_rule);
    w_u32(b, in->version);
    w_u32(b, in->node);
    w_u32(b, in->steps);
    w_u16(b, in->variant);
    w_u8(b, in->state);
    w_u8(b, in->end);
    w_u8(b, x->flags);
    w_u16(b, x->split_node);
    /* A held wait keeps its deadline: resume runs held waits in deadline order. */
    w_u64(b, tw_armed(&in->timer) || (x->flags & JH_HELD) ? in->timer.when_us : 0);
    const char *entry = jh__entry(h, x);
    w_str(b, entry ? entry : "", entry ? strlen(entry) : 0);
}

int jrn_host_encode(const jrn_host *h, jd_buf *b)
{
    jd_buf_add(b, HOST_MAGIC, 4);
    w_u32(b, HOST_FORMAT);
    w_u64(b, (uint64_t)h->now);
    uint32_t nstats = 0;
    for (uint32_t j = 0; j < h->nstats; j++)
        for (uint32_t v = 0; v < h->nstats_v[j]; v++) nstats += h->stats[j][v] != NULL;
    w_u32(b, nstats);
    for (uint32_t j = 0; j < h->nstats; j++)
        for (uint32_t v = 0; v < h->nstats_v[j]; v++) {
            const jrn_vstats *st = h->stats[j][v];
            if (!st) continue;
            const char *id = jrn_reg_at(h->reg, j)->id;
            w_str(b, id, strlen(id));
            w_u32(b, v + 1);
            w_u64(b, st->entered);
            w_u64(b, st->active);
            for (int k = 0; k < JRN_END_COUNT_; k++) w_u64(b, st->exits[k]);
            w_u64(b, st->condition_errors);
            w_u32(b, st->nnodes);
            for (uint32_t k = 0; k < st->nnodes; k++) w_u64(b, st->node_entered[k]);
            w_str(b, st->last_error, strlen(st->last_error));
        }
    w_u32(b, h->people.len);
    jh_person *p;
    JH_FOREACH_PERSON(h, p) {
        w_str(b, p->key, p->key_len);
        w_u16(b, p->n);
        for (uint16_t i = 0; i < p->n; i++) {
            const jh_pj *pj = &p->pj[i];
            const char *id = jrn_reg_at(h->reg, pj->journey)->id;
            uint32_t ninst = 0;
            for (const jh_inst *x = pj->live; x; x = x->next) ninst++;
            w_str(b, id, strlen(id));
            w_u8(b, pj->last_end);
            w_u64(b, (uint64_t)pj->last_entered_us);
            w_u64(b, pj->last_entry_lsn);
            w_u32(b, ninst);
            for (const jh_inst *x = pj->live; x; x = x->next) w_inst(h, b, x);
        }
    }
    jh__segs_encode(h, b, w_u32, w_u64);
    return b->len <= b->max ? JD_OK : JD_ELIMIT;
}

/* ---- reading: every read is bounds-checked (disk is input) --------------- */

typedef struct rd {
    const uint8_t *p, *end, *start;
    bool bad;
} rd;

static const uint8_t *take(rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) { r->bad = true; return NULL; }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}
static uint64_t r_le(rd *r, int n)
{
    const uint8_t *q = take(r, (size_t)n);
    uint64_t v = 0;
    for (int i = 0; q && i < n; i++) v |= (uint64_t)q[i] << (8 * i);
    return v;
}
static uint8_t  r_u8(rd *r)  { return (uint8_t)r_le(r, 1); }
static uint16_t r_u16(rd *r) { return (uint16_t)r_le(r, 2); }
static uint32_t r_u32(rd *r) { return (uint32_t)r_le(r, 4); }
static uint64_t r_u64(rd *r) { return r_le(r, 8); }
static jd_str r_str(rd *r)
{
    uint32_t n = r_u32(r);
    const uint8_t *q = take(r, n);
    return q ? (jd_str){ (const char *)q, n } : (jd_str){ "", 0 };
}

/* The registry's journey with this id (ids are at most 64 bytes). */
static const jrn_journey *journey_named(const jrn_host *h, jd_str id)
{
    char buf[128];
    if (!id.n || id.n >= sizeof buf || memchr(id.p, 0, id.n)) return NULL;
    memcpy(buf, id.p, id.n);
    buf[id.n] = 0;
    return jrn_reg_find(h->reg, buf);
}

static int corrupt(rd *r, jd_err *err, const char *what)
{
    return jd_err_set(err, JD_ECORRUPT, "", "journey state at byte %zu: %s", (size_t)(r->p - r->start), what);
}

static int r_inst(jrn_host *h, rd *r, jh_person *p, jh_pj *pj, const jrn_journey *j, jd_err *err)
{
    jh_inst *x = jh__inst_new(h, p, pj);
    jrn_instance *in = &x->in;
    in->id = r_u64(r);
    in->entered_us = (int64_t)r_u64(r);
    in->node_since_us = (int64_t)r_u64(r);
    in->paused_left_us = (int64_t)r_u64(r);
    in->paused_rule = r_u32(r);
    in->version = r_u32(r);
    in->node = r_u32(r);
    in->steps = r_u32(r);
    in->variant = r_u16(r);
    in->state = r_u8(r);
    in->end = r_u8(r);
    x->flags = r_u8(r);
    x->split_node = r_u16(r);
    uint64_t when = r_u64(r);
    jd_str entry = r_str(r);
    if (r->bad) return corrupt(r, err, "truncated instance");
    if (in->version < 1 || in->version > j->nversions) return corrupt(r, err, "instance of a version that does not exist");
    const jrn_doc *doc = j->versions[in->version - 1]->doc;
    if (in->node >= doc->nnodes || (in->state != JRN_ST_WAITING && in->state != JRN_ST_PAUSED))
        return corrupt(r, err, "instance at an impossible node or state");
    x->flags &= (uint8_t)~JH_ENTRY;   /* set again by jh__entry_keep, from the bytes */
    if (entry.n) jh__entry_keep(h, x, entry);
    if (when && (x->flags & JH_HELD)) in->timer.when_us = when;   /* fired already: not armed */
    else if (when) tw_arm(h->w, &in->timer, when);
    return JD_OK;
}

int jrn_host_decode(jrn_host *h, const void *data, size_t n, jd_err *err)
{
    rd r = { data, (const uint8_t *)data + n, data, false };
    const uint8_t *magic = take(&r, 4);
    if (!magic || memcmp(magic, HOST_MAGIC, 4) != 0) return corrupt(&r, err, "not journey state");
    if (r_u32(&r) != HOST_FORMAT) return corrupt(&r, err, "unknown format");
    jh__reset_clock(h, (int64_t)r_u64(&r));
    uint32_t nstats = r_u32(&r);
    for (uint32_t i = 0; i < nstats && !r.bad; i++) {
        const jrn_journey *j = journey_named(h, r_str(&r));
        uint32_t v = r_u32(&r);
        if (r.bad) break;
        if (!j || v < 1 || v > j->nversions) return corrupt(&r, err, "counters of an unknown journey version");
        jrn_vstats *st = jh__stats(h, j->index, v);
        st->entered = r_u64(&r);
        st->active = r_u64(&r);
        for (int k = 0; k < JRN_END_COUNT_; k++) st->exits[k] = r_u64(&r);
        st->condition_errors = r_u64(&r);
        uint32_t nn = r_u32(&r);
        if (nn != st->nnodes) return corrupt(&r, err, "node counters do not match the version");
        for (uint32_t k = 0; k < nn; k++) st->node_entered[k] = r_u64(&r);
        jd_str e = r_str(&r);
        snprintf(st->last_error, sizeof st->last_error, "%.*s", (int)e.n, e.p);
    }
    uint32_t npeople = r_u32(&r);
    for (uint32_t i = 0; i < npeople && !r.bad; i++) {
        jd_str key = r_str(&r);
        uint16_t npj = r_u16(&r);
        if (r.bad || !key.n) break;
        if (jh__person(h, key.p, key.n)) return corrupt(&r, err, "a person appears twice");
        jh_person *p = jh__person_add(h, key.p, key.n);
        for (uint16_t k = 0; k < npj && !r.bad; k++) {
            const jrn_journey *j = journey_named(h, r_str(&r));
            if (r.bad) break;
            if (!j) return corrupt(&r, err, "a person in an unknown journey");
            jh_pj *pj = jh__pj(p, j->index, true);
            pj->last_end = r_u8(&r);
            pj->last_entered_us = (int64_t)r_u64(&r);
            pj->last_entry_lsn = r_u64(&r);
            uint32_t ninst = r_u32(&r);
            for (uint32_t m = 0; m < ninst && !r.bad; m++) {
                int rc = r_inst(h, &r, p, pj, j, err);
                if (rc != JD_OK) return rc;
            }
            /* jh__inst_new prepends: put the list back in the encoded order, the
             * order the person's instances see an event (and emit intents). */
            jh_inst *rev = NULL;
            for (jh_inst *x = pj->live, *next; x; x = next) {
                next = x->next;
                x->next = rev;
                rev = x;
            }
            pj->live = rev;
        }
    }
    uint32_t nseg = r_u32(&r);
    for (uint32_t i = 0; i < nseg && !r.bad; i++) {
        jd_str key = r_str(&r);
        uint64_t bits = r_u64(&r);
        uint32_t nf = r_u32(&r), fb[JRN_MAX_SEGMENTS];
        uint64_t fw[JRN_MAX_SEGMENTS];
        if (r.bad) break;
        if (nf > JRN_MAX_SEGMENTS) return corrupt(&r, err, "more segment flips than segments");
        for (uint32_t k = 0; k < nf; k++) {
            fb[k] = r_u32(&r);
            fw[k] = r_u64(&r);
        }
        if (r.bad) break;
        if (jh__segs_decode_one(h, key, bits, fb, fw, nf) != JD_OK) return corrupt(&r, err, "bad segment state");
    }
    if (r.bad) return corrupt(&r, err, "truncated");
    if (r.p != r.end) return corrupt(&r, err, "trailing bytes");
    return JD_OK;
}
