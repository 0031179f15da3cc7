/*
** src/journey/host_merge.c -- moving one person's journey state between
** partitions when the identity directory merges person L into person S
** (jrn_host_extract, jrn_host_merge_in in include/journeyd/runtime.h).
**
** The blob (little-endian; the pj block is the snapshot's, host_codec.c):
**   "JRNM" u32 format=1 | u16 npj x pj
**   pj: str journey | u8 last_end | i64 last_entered | u64 last_entry_lsn |
**       u32 ninst x inst
** Journeys are named by id and instances carry their version number: the two
** hosts' registries hold the same journeys, but indexes are per process.
**
**   L on host A --jrn_host_extract--> blob --jrn_host_merge_in--> S on host B
**
** Invariants:
**  (1) Extract is a move, not an end: no exit is counted or reported, and no
**      segment_exit journey runs; A's `active` counters go down by the
**      instances that left, B's go up by those that arrive, so the sums over
**      partitions stay exact (entered stays where the entry happened).
**  (2) After a merge a person has live instances of a journey from one side
**      only: the side whose earliest live instance entered first (a tie: S's
**      own). The other side's end JRN_END_MERGED, counted on B and reported
**      through out.exit, like any end.
**  (3) Instance ids never change (intent ids hash them: a send made on A is
**      not made again on B). An id is hash(journey, version, person key,
**      entry lsn): the key differs, so L's ids differ from S's unless 64-bit
**      hashes collide.
**  (4) merge_in decodes and checks the whole blob before it changes the host:
**      bad bytes change nothing.
**  (5) A wait keeps its deadline. One already past is armed anyway and fires
**      at the next jrn_host_advance (tw_arm: a deadline at or before the
**      wheel's time fires at the next advance). A held wait stays held while
**      its journey is paused here, and runs at resume; held on A but running
**      here, it is armed like a past deadline.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_int.h"

#define MERGE_MAGIC  "JRNM"
#define MERGE_FORMAT 1u

/* ---- extract ----------------------------------------------------------------- */

int jrn_host_extract(jrn_host *h, const char *key, size_t kn, jd_buf *out)
{
    jd_str k = { key, (uint32_t)kn };
    jh_person *p = kn ? jh__person(h, key, kn) : NULL;
    if (!p && !jh__segs_known(h, k)) return JD_ENOTFOUND;

    /* Written aside first: a jd_buf refuses an add past its ceiling and keeps
     * going, so the blob goes into out whole or not at all. */
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX / 2);
    jd_buf_add(&b, MERGE_MAGIC, 4);
    jh__w_u32(&b, MERGE_FORMAT);
    jh__w_u16(&b, p ? p->n : 0);
    for (uint16_t i = 0; p && i < p->n; i++) jh__pj_write(h, &b, &p->pj[i]);
    int rc = jd_buf_add(out, b.data, b.len);
    jd_buf_release(&b);
    if (rc != JD_OK) return rc;

    /* Invariant (1): gone without an end. */
    for (uint16_t i = 0; p && i < p->n; i++)
        while (p->pj[i].live) {
            jh_inst *x = p->pj[i].live;
            jrn_vstats *st = jh__stats(h, x->journey, x->in.version);
            if (st->active) st->active--;
            jh__inst_free(h, x);   /* cancels the timer, drops the kept entry event */
        }
    if (p) jh__person_remove(h, p);
    jh__segs_forget(h, k);
    return JD_OK;
}

/* ---- merge_in: reading --------------------------------------------------------- */

typedef struct blob {
    jh_pj_rec *pj;
    uint16_t   n;   /* read so far (each owns its inst array) */
} blob;

static void blob_release(blob *b)
{
    for (uint16_t i = 0; i < b->n; i++) free(b->pj[i].inst);
    free(b->pj);
}

static int bad(const jh_rd *r, jd_err *err, const char *what)
{
    char where[40];
    snprintf(where, sizeof where, "merge+%zu", (size_t)(r->p - r->start));
    return jd_err_set(err, JD_ECORRUPT, where, "%s", what);
}

/* Invariant (4): every byte checked, nothing of the host touched. */
static int blob_read(const jrn_host *h, const void *data, size_t n, blob *b, jd_err *err)
{
    jh_rd r = { data, (const uint8_t *)data + n, data, false };
    const uint8_t *magic = jh__take(&r, 4);
    if (!magic) return bad(&r, err, "truncated");
    if (memcmp(magic, MERGE_MAGIC, 4) != 0) return bad(&r, err, "not a merge blob");
    uint32_t format = jh__r_u32(&r);
    uint16_t npj = jh__r_u16(&r);
    if (r.bad) return bad(&r, err, "truncated");
    if (format != MERGE_FORMAT) return bad(&r, err, "unknown merge format");
    b->pj = jd_xcalloc(npj ? npj : 1, sizeof *b->pj);
    for (uint16_t i = 0; i < npj; i++) {
        const char *why = "truncated";
        int rc = jh__pj_read(h, &r, &b->pj[i], &why);
        b->n++;
        if (rc != JD_OK) return bad(&r, err, why);
        for (uint16_t k = 0; k < i; k++)
            if (b->pj[k].journey.n == b->pj[i].journey.n &&
                memcmp(b->pj[k].journey.p, b->pj[i].journey.p, b->pj[i].journey.n) == 0)
                return bad(&r, err, "a journey appears twice");
    }
    if (r.p != r.end) return bad(&r, err, "trailing bytes");
    return JD_OK;
}

/* ---- merge_in: adopting -------------------------------------------------------- */

/* Ends x from outside (invariant (2), or an archived journey): counted and
 * reported by the host's on_exit, like jrn_host_forget's ends. */
static void end_inst(jrn_host *h, jh_person *p, jh_inst *x, jrn_end why)
{
    jh__turn_begin(h, p, (jd_str){ p->key, p->key_len }, NULL);
    jrn_abort(jh__version(h, x->journey, x->in.version)->doc, &x->in, why, h->now, &h->io);
    x->in.state = JRN_ST_EXITED;
    jh__inst_free(h, x);
    h->t.changed = false;   /* nothing changed the profile */
    jh__turn_end(h);
}

/* Invariant (5). */
static void arm(jrn_host *h, const jrn_journey *j, jh_inst *x, uint64_t when)
{
    if (when && (x->flags & JH_HELD) && j->status == JRN_PAUSED) {
        x->in.timer.when_us = when;   /* held: runs at resume, in deadline order */
        return;
    }
    x->flags &= (uint8_t)~JH_HELD;
    if (when) tw_arm(h->w, &x->in.timer, when);
}

static void adopt(jrn_host *h, jd_str key, const jh_pj_rec *rec, uint64_t lsn)
{
    uint32_t nknown = 0;
    int64_t theirs = INT64_MAX, mine = INT64_MAX;
    for (uint32_t m = 0; m < rec->ninst; m++) {
        if (!rec->inst[m].known) { h->merge_errors++; continue; }
        nknown++;
        if (rec->inst[m].in.entered_us < theirs) theirs = rec->inst[m].in.entered_us;
    }
    if (!rec->j) return;   /* no such journey here: its history goes too */
    const jrn_journey *j = rec->j;
    jh_person *p = jh__person_add(h, key.p, key.n);
    jh_pj *pj = jh__pj(p, j->index, true);

    /* History: the later entry wins, with its end. The lsn is only a guard
     * against one record entering twice (host.c (3)): the larger of the two,
     * theirs capped at this record's, as it may come from another log. */
    if (rec->last_entered_us > pj->last_entered_us) {
        pj->last_entered_us = rec->last_entered_us;
        pj->last_end = rec->last_end;
    }
    uint64_t their_lsn = rec->last_entry_lsn < lsn ? rec->last_entry_lsn : lsn;
    if (their_lsn > pj->last_entry_lsn) pj->last_entry_lsn = their_lsn;
    if (!nknown) return;

    for (const jh_inst *x = pj->live; x; x = x->next)
        if (x->in.entered_us < mine) mine = x->in.entered_us;
    bool both = pj->live != NULL, theirs_go_on = !both || theirs < mine;
    if (both && theirs_go_on)
        while (pj->live) end_inst(h, p, pj->live, JRN_END_MERGED);

    jh_inst **placed = jd_xmalloc(nknown * sizeof *placed);
    uint32_t np = 0;
    for (uint32_t m = 0; m < rec->ninst; m++) {
        const jh_inst_rec *ir = &rec->inst[m];
        if (!ir->known) continue;
        jh_inst *x = jh__inst_place(h, p, pj, ir);
        jh__stats(h, j->index, ir->in.version)->active++;   /* invariant (1) */
        if (theirs_go_on) arm(h, j, x, ir->when);
        placed[np++] = x;
    }
    /* Theirs lost (their ends are counted here), or arrived in a journey
     * archived here: nothing would ever move them. */
    if (!theirs_go_on || j->status == JRN_ARCHIVED)
        for (uint32_t i = 0; i < np; i++) end_inst(h, p, placed[i], theirs_go_on ? JRN_END_ARCHIVED : JRN_END_MERGED);
    free(placed);
}

int jrn_host_merge_in(jrn_host *h, const char *key, size_t kn, const void *data, size_t n, uint64_t lsn, jd_err *err)
{
    if (!n) return JD_OK;
    blob b = { NULL, 0 };
    int rc = blob_read(h, data, n, &b, err);
    if (rc != JD_OK) goto out;
    if (!kn) {
        rc = jd_err_set(err, JD_EINVAL, "key", "empty person key");
        goto out;
    }
    h->lsn = lsn;
    for (uint16_t i = 0; i < b.n; i++) adopt(h, (jd_str){ key, (uint32_t)kn }, &b.pj[i], lsn);
out:
    blob_release(&b);
    return rc;
}

uint64_t jrn_host_merge_errors(const jrn_host *h) { return h->merge_errors; }
