/*
** src/journey/host_codec.c -- a jrn_host in a snapshot, and back.
**
** Layout (little-endian, docs/internals/instance.md):
**   "JRNH" u32 format=3 | i64 now
**   u32 nstats  x { str journey | u32 version | u64 entered, active |
**                   u8 nexits x u64 exits (by jrn_end) | u64 condition_errors |
**                   u32 nnodes | nnodes x u64 | str last_error }
**   u32 npeople x { str key | u16 npj x pj }
**   pj:   str journey | u8 last_end | i64 last_entered | u64 last_entry_lsn |
**         u32 ninst x inst   (jh__pj_write; also the unit of host_merge.c's blob)
**   inst: u64 id | i64 entered, node_since, paused_left |
**         u32 paused_rule, version, node, steps | u16 variant | u8 state, end,
**         flags | u16 split_node | u64 timer_when (0: none; with
**         flags JH_HELD the deadline of a held wait, which is not armed) |
**         str entry ("" none)
**   u32 nseg x { str key | u64 segment bits | u32 nflips x { u32 bit | u64 when } }
**   u32 nhist x { str segment id | i64 first_hour | i64 first_day |
**                 u32 nh x u32 size | u32 nd x u32 size }      (format >= 4)
**   str: u32 length | bytes
** A size history (host_segments.c (5)) holds the newest points up to the
** clock's last hour / day boundary, oldest first, every boundary that has
** one written out (none pending); first_* is the first boundary after the
** segment's definition. Histories of segments the registry no longer has
** are skipped: a removed segment's history goes.
** Journeys are named by id (registry indexes are per process), so the
** registry is decoded first. Timers are re-armed at their deadlines.
** Format 2 (before JRN_END_MERGED) had no nexits: exactly 8 exit counters
** (index 0 unused, finished .. deleted); it is still read. Formats 2 and 3
** had no size histories: they decode with empty ones (points start at the
** next boundary).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_int.h"

#define HOST_MAGIC "JRNH"
#define HOST_FORMAT 4u   /* 2: segment states; 3: nexits before the exit counters; 4: size histories */
#define HOST_FORMAT_2_EXITS 8u   /* JRN_END_DELETED + 1: the counters format 2 wrote */

/* ---- writing ------------------------------------------------------------- */

static void w_u8(jd_buf *b, uint8_t v) { jd_buf_add(b, &v, 1); }
void jh__w_u16(jd_buf *b, uint16_t v) { uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) }; jd_buf_add(b, x, 2); }
void jh__w_u32(jd_buf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    jd_buf_add(b, x, 4);
}
void jh__w_u64(jd_buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    jd_buf_add(b, x, 8);
}
static void w_str(jd_buf *b, const char *s, size_t n)
{
    jh__w_u32(b, (uint32_t)n);
    jd_buf_add(b, s, n);
}

static void w_inst(const jrn_host *h, jd_buf *b, const jh_inst *x)
{
    const jrn_instance *in = &x->in;
    jh__w_u64(b, in->id);
    jh__w_u64(b, (uint64_t)in->entered_us);
    jh__w_u64(b, (uint64_t)in->node_since_us);
    jh__w_u64(b, (uint64_t)in->paused_left_us);
    jh__w_u32(b, in->paused_rule);
    jh__w_u32(b, in->version);
    jh__w_u32(b, in->node);
    jh__w_u32(b, in->steps);
    jh__w_u16(b, in->variant);
    w_u8(b, in->state);
    w_u8(b, in->end);
    w_u8(b, x->flags);
    jh__w_u16(b, x->split_node);
    /* A held wait keeps its deadline: resume runs held waits in deadline order. */
    jh__w_u64(b, tw_armed(&in->timer) || (x->flags & JH_HELD) ? in->timer.when_us : 0);
    const char *entry = jh__entry(h, x);
    w_str(b, entry ? entry : "", entry ? strlen(entry) : 0);
}
#define INST_MIN_BYTES 67   /* w_inst with an empty entry: 4x8 + 4x4 + 2 + 3 + 2 + 8 + 4 */

void jh__pj_write(const jrn_host *h, jd_buf *b, const jh_pj *pj)
{
    const char *id = jrn_reg_at(h->reg, pj->journey)->id;
    uint32_t ninst = 0;
    for (const jh_inst *x = pj->live; x; x = x->next) ninst++;
    w_str(b, id, strlen(id));
    w_u8(b, pj->last_end);
    jh__w_u64(b, (uint64_t)pj->last_entered_us);
    jh__w_u64(b, pj->last_entry_lsn);
    jh__w_u32(b, ninst);
    for (const jh_inst *x = pj->live; x; x = x->next) w_inst(h, b, x);
}

int jrn_host_encode(const jrn_host *h, jd_buf *b)
{
    jd_buf_add(b, HOST_MAGIC, 4);
    jh__w_u32(b, HOST_FORMAT);
    jh__w_u64(b, (uint64_t)h->now);
    uint32_t nstats = 0;
    for (uint32_t j = 0; j < h->nstats; j++)
        for (uint32_t v = 0; v < h->nstats_v[j]; v++) nstats += h->stats[j][v] != NULL;
    jh__w_u32(b, nstats);
    for (uint32_t j = 0; j < h->nstats; j++)
        for (uint32_t v = 0; v < h->nstats_v[j]; v++) {
            const jrn_vstats *st = h->stats[j][v];
            if (!st) continue;
            const char *id = jrn_reg_at(h->reg, j)->id;
            w_str(b, id, strlen(id));
            jh__w_u32(b, v + 1);
            jh__w_u64(b, st->entered);
            jh__w_u64(b, st->active);
            w_u8(b, JRN_END_COUNT_);
            for (int k = 0; k < JRN_END_COUNT_; k++) jh__w_u64(b, st->exits[k]);
            jh__w_u64(b, st->condition_errors);
            jh__w_u32(b, st->nnodes);
            for (uint32_t k = 0; k < st->nnodes; k++) jh__w_u64(b, st->node_entered[k]);
            w_str(b, st->last_error, strlen(st->last_error));
        }
    jh__w_u32(b, h->people.len);
    jh_person *p;
    JH_FOREACH_PERSON(h, p) {
        w_str(b, p->key, p->key_len);
        jh__w_u16(b, p->n);
        for (uint16_t i = 0; i < p->n; i++) jh__pj_write(h, b, &p->pj[i]);
    }
    jh__segs_encode(h, b, jh__w_u32, jh__w_u64);
    jh__hist_encode(h, b);
    return b->len <= b->max ? JD_OK : JD_ELIMIT;
}

/* ---- reading: every read is bounds-checked (disk is input) --------------- */

const uint8_t *jh__take(jh_rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) { r->bad = true; return NULL; }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}
static uint64_t r_le(jh_rd *r, int n)
{
    const uint8_t *q = jh__take(r, (size_t)n);
    uint64_t v = 0;
    for (int i = 0; q && i < n; i++) v |= (uint64_t)q[i] << (8 * i);
    return v;
}
static uint8_t r_u8(jh_rd *r) { return (uint8_t)r_le(r, 1); }
uint16_t jh__r_u16(jh_rd *r) { return (uint16_t)r_le(r, 2); }
uint32_t jh__r_u32(jh_rd *r) { return (uint32_t)r_le(r, 4); }
uint64_t jh__r_u64(jh_rd *r) { return r_le(r, 8); }
static jd_str r_str(jh_rd *r)
{
    uint32_t n = jh__r_u32(r);
    const uint8_t *q = jh__take(r, n);
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

/* One instance; j NULL: its journey is unknown (read whole, known false). */
static int r_inst(jh_rd *r, const jrn_journey *j, jh_inst_rec *x, const char **why)
{
    jrn_instance *in = &x->in;
    memset(x, 0, sizeof *x);
    in->id = jh__r_u64(r);
    in->entered_us = (int64_t)jh__r_u64(r);
    in->node_since_us = (int64_t)jh__r_u64(r);
    in->paused_left_us = (int64_t)jh__r_u64(r);
    in->paused_rule = jh__r_u32(r);
    in->version = jh__r_u32(r);
    in->node = jh__r_u32(r);
    in->steps = jh__r_u32(r);
    in->variant = jh__r_u16(r);
    in->state = r_u8(r);
    in->end = r_u8(r);
    x->flags = r_u8(r) & JH_HELD;   /* JH_ENTRY follows the entry bytes */
    x->split_node = jh__r_u16(r);
    x->when = jh__r_u64(r);
    x->entry = r_str(r);
    if (r->bad) { *why = "truncated instance"; return JD_ECORRUPT; }
    if (!j || in->version < 1 || in->version > j->nversions) return JD_OK;   /* known stays false */
    const jrn_doc *doc = j->versions[in->version - 1]->doc;
    /* instance.c (3): PAUSED <=> a pausing rule */
    bool paused = in->state == JRN_ST_PAUSED;
    if (in->node >= doc->nnodes || (in->state != JRN_ST_WAITING && !paused) ||
        paused != (in->paused_rule != JRN_NONE) || (paused && in->paused_rule >= doc->nexits)) {
        *why = "instance at an impossible node or state";
        return JD_ECORRUPT;
    }
    x->known = true;
    return JD_OK;
}

int jh__pj_read(const jrn_host *h, jh_rd *r, jh_pj_rec *out, const char **why)
{
    memset(out, 0, sizeof *out);
    out->journey = r_str(r);
    out->last_end = r_u8(r);
    out->last_entered_us = (int64_t)jh__r_u64(r);
    out->last_entry_lsn = jh__r_u64(r);
    uint32_t n = jh__r_u32(r);
    if (r->bad) { *why = "truncated"; return JD_ECORRUPT; }
    if (out->last_end >= JRN_END_COUNT_) { *why = "unknown end reason"; return JD_ECORRUPT; }
    /* The count is input: no allocation beyond what the bytes can hold. */
    if (n > (size_t)(r->end - r->p) / INST_MIN_BYTES) { r->bad = true; *why = "truncated"; return JD_ECORRUPT; }
    out->j = journey_named(h, out->journey);
    out->inst = n ? jd_xcalloc(n, sizeof *out->inst) : NULL;
    for (uint32_t i = 0; i < n; i++) {
        int rc = r_inst(r, out->j, &out->inst[i], why);
        if (rc != JD_OK) return rc;
        out->ninst++;
    }
    return JD_OK;
}

jh_inst *jh__inst_place(jrn_host *h, jh_person *p, jh_pj *pj, const jh_inst_rec *rec)
{
    jh_inst *x = jh__inst_new(h, p, pj);   /* prepends: moved to the tail below */
    pj->live = x->next;
    x->next = NULL;
    jh_inst **tail = &pj->live;
    while (*tail) tail = &(*tail)->next;
    *tail = x;
    x->in = rec->in;
    memset(&x->in.timer, 0, sizeof x->in.timer);
    x->flags = rec->flags & JH_HELD;
    x->split_node = rec->split_node;
    if (rec->entry.n) jh__entry_keep(h, x, rec->entry);
    return x;
}

static int corrupt(jh_rd *r, jd_err *err, const char *what)
{
    return jd_err_set(err, JD_ECORRUPT, "", "journey state at byte %zu: %s", (size_t)(r->p - r->start), what);
}

int jrn_host_decode(jrn_host *h, const void *data, size_t n, jd_err *err)
{
    jh_rd r = { data, (const uint8_t *)data + n, data, false };
    const uint8_t *magic = jh__take(&r, 4);
    if (!magic || memcmp(magic, HOST_MAGIC, 4) != 0) return corrupt(&r, err, "not journey state");
    uint32_t format = jh__r_u32(&r);
    if (format < 2 || format > HOST_FORMAT) return corrupt(&r, err, "unknown format");
    jh__reset_clock(h, (int64_t)jh__r_u64(&r));
    uint32_t nstats = jh__r_u32(&r);
    for (uint32_t i = 0; i < nstats && !r.bad; i++) {
        const jrn_journey *j = journey_named(h, r_str(&r));
        uint32_t v = jh__r_u32(&r);
        if (r.bad) break;
        if (!j || v < 1 || v > j->nversions) return corrupt(&r, err, "counters of an unknown journey version");
        jrn_vstats *st = jh__stats(h, j->index, v);
        st->entered = jh__r_u64(&r);
        st->active = jh__r_u64(&r);
        uint32_t nexits = format == 2 ? HOST_FORMAT_2_EXITS : r_u8(&r);
        if (nexits > JRN_END_COUNT_) return corrupt(&r, err, "counters of unknown end reasons");
        for (uint32_t k = 0; k < nexits; k++) st->exits[k] = jh__r_u64(&r);
        st->condition_errors = jh__r_u64(&r);
        uint32_t nn = jh__r_u32(&r);
        if (nn != st->nnodes) return corrupt(&r, err, "node counters do not match the version");
        for (uint32_t k = 0; k < nn; k++) st->node_entered[k] = jh__r_u64(&r);
        jd_str e = r_str(&r);
        snprintf(st->last_error, sizeof st->last_error, "%.*s", (int)e.n, e.p);
    }
    uint32_t npeople = jh__r_u32(&r);
    for (uint32_t i = 0; i < npeople && !r.bad; i++) {
        jd_str key = r_str(&r);
        uint16_t npj = jh__r_u16(&r);
        if (r.bad || !key.n) break;
        if (jh__person(h, key.p, key.n)) return corrupt(&r, err, "a person appears twice");
        jh_person *p = jh__person_add(h, key.p, key.n);
        for (uint16_t k = 0; k < npj && !r.bad; k++) {
            jh_pj_rec rec;
            const char *why = NULL;
            int rc = jh__pj_read(h, &r, &rec, &why);
            if (rc == JD_OK && !rec.j) { rc = JD_ECORRUPT; why = "a person in an unknown journey"; }
            for (uint32_t m = 0; rc == JD_OK && m < rec.ninst; m++)
                if (!rec.inst[m].known) { rc = JD_ECORRUPT; why = "instance of a version that does not exist"; }
            if (rc == JD_OK && jh__pj(p, rec.j->index, false)) { rc = JD_ECORRUPT; why = "a journey appears twice"; }
            if (rc != JD_OK) {
                free(rec.inst);
                return corrupt(&r, err, why);
            }
            jh_pj *pj = jh__pj(p, rec.j->index, true);
            pj->last_end = rec.last_end;
            pj->last_entered_us = rec.last_entered_us;
            pj->last_entry_lsn = rec.last_entry_lsn;
            for (uint32_t m = 0; m < rec.ninst; m++) {
                const jh_inst_rec *ir = &rec.inst[m];
                jh_inst *x = jh__inst_place(h, p, pj, ir);
                if (ir->when && (x->flags & JH_HELD)) x->in.timer.when_us = ir->when;   /* fired already: not armed */
                else if (ir->when) tw_arm(h->w, &x->in.timer, ir->when);
            }
            free(rec.inst);
        }
    }
    uint32_t nseg = jh__r_u32(&r);
    for (uint32_t i = 0; i < nseg && !r.bad; i++) {
        jd_str key = r_str(&r);
        uint64_t bits = jh__r_u64(&r);
        uint32_t nf = jh__r_u32(&r), fb[JRN_MAX_SEGMENTS];
        uint64_t fw[JRN_MAX_SEGMENTS];
        if (r.bad) break;
        if (nf > JRN_MAX_SEGMENTS) return corrupt(&r, err, "more segment flips than segments");
        for (uint32_t k = 0; k < nf; k++) {
            fb[k] = jh__r_u32(&r);
            fw[k] = jh__r_u64(&r);
        }
        if (r.bad) break;
        if (jh__segs_decode_one(h, key, bits, fb, fw, nf) != JD_OK) return corrupt(&r, err, "bad segment state");
    }
    const char *why = "truncated";
    if (!r.bad && jh__hist_decode(h, &r, format >= 4, &why) != JD_OK) return corrupt(&r, err, why);
    if (r.bad) return corrupt(&r, err, "truncated");
    if (r.p != r.end) return corrupt(&r, err, "trailing bytes");
    return JD_OK;
}
