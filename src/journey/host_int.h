/* src/journey/host_int.h -- private to src/journey/: the jrn_host layout that
 * host.c (running instances), host_codec.c (the snapshot), host_segments.c
 * and host_merge.c (moving a person between partitions) share. */
#ifndef JOURNEYD_HOST_INT_H
#define JOURNEYD_HOST_INT_H

#include "journeyd/runtime.h"
#include "journeyd/timer.h"

#include <json-c/json.h>

enum {
    JH_HELD = 1,                 /* came due while its journey was paused: runs at resume */
    JH_ENTRY = 2,                /* its entry event is kept in the host's entries map */
};

typedef struct jh_person jh_person;

/* A live instance: 112 bytes, one allocator size class (mimalloc's 112).
 * The node it is at (or left the graph from) is in.node. */
typedef struct jh_inst {
    jrn_instance in;             /* 88 bytes; its timer is in the host's wheel while waiting */
    jh_person   *p;
    struct jh_inst *next;        /* other live instances of the same (person, journey) */
    uint32_t     journey;        /* registry index */
    uint16_t     split_node;     /* the last split passed (journey.variant), JH_NO_SPLIT none */
    uint8_t      flags;          /* JH_* */
} jh_inst;
#define JH_NO_SPLIT UINT16_MAX   /* documents have at most 500 nodes */

typedef struct jh_pj {           /* a person's history with one journey: 32 bytes */
    uint32_t journey;
    uint8_t  last_end;           /* jrn_end of the last instance that ended, 0 none */
    int64_t  last_entered_us;    /* INT64_MIN: never */
    uint64_t last_entry_lsn;     /* invariant (3) of host.c */
    jh_inst *live;
} jh_pj;

struct jh_person {               /* 20 bytes + the key */
    jh_pj   *pj;
    uint16_t n, cap;
    uint32_t key_len;
    uint32_t hash;               /* of the key: the people table's probe and rehash */
    char     key[];              /* NUL-terminated */
};

/* The people of a partition: open addressing over person pointers (8 bytes a
 * slot; the key is the person's own), linear probing, at most 7/8 full. A
 * generic jd_map slot is 32 bytes, which alone was a sixth of an instance's
 * budget. */
typedef struct jh_people {
    jh_person **slots;
    uint32_t    cap, len;
} jh_people;
#define JH_FOREACH_PERSON(h, p) \
    for (uint32_t jh_i_ = 0; jh_i_ < (h)->people.cap; jh_i_++) \
        if (((p) = (h)->people.slots[jh_i_]) != NULL)

typedef struct jh_seg jh_seg;    /* host_segments.c: a person's segment bits and pending flips */
typedef struct jh_hist jh_hist;  /* host_segments.c: one segment's sizes at hour and day boundaries */

struct jrn_host {
    const jrn_reg *reg;
    prof_store   *profiles;
    jrn_host_out  out;
    jrn_io        io;
    tw_wheel     *w;
    int64_t       now;
    uint64_t      lsn;           /* the record being applied (intents name it) */
    jh_people     people;
    jd_map       *segs;          /* profile key -> jh_seg (host_segments.c) */
    tw_wheel     *wseg;          /* segment flips (invariant (2) of host_segments.c) */
    uint64_t      seg_errors;    /* segment conditions that failed (counted as false) */
    uint64_t      seg_size[JRN_MAX_SEGMENTS];   /* members per bit (invariant (4) of host_segments.c) */
    jh_hist      *hist[JRN_MAX_SEGMENTS];       /* by bit; NULL: no segment with that bit here */
    int64_t       hist_hour, hist_day;          /* boundaries recorded up to these (indexes since the epoch) */
    int64_t       hist_next_us;                 /* the first hour boundary not recorded: below it, no work */
    uint64_t      merge_errors;  /* merged-in instances of versions the registry lacks (dropped) */
    jd_map       *entries;       /* instance id (8 bytes) -> entry event JSON, for versions that read journey.entry */
    size_t        live;
    jrn_vstats ***stats;         /* [journey][version - 1], lazily */
    uint32_t     *nstats_v, nstats;
    expr_scratch *scratch;
    json_tokener *tok;
    uint32_t     *cand;          /* entry candidates of the event being applied */
    size_t        ncand;
    struct {                     /* the turn (host.c) */
        jh_person *p;
        jd_str key;
        const ingest_event *ev;
        const jrn_instance *in;
        int64_t now;
        uint32_t journey, version;   /* whose counters an error goes to */
        json_object *evj, *prof, *jobj;
        bool evj_done;
        bool changed;                /* an update node changed the person's profile, or a segment membership changed */
        bool updated;                /* an update node ran: segments are re-evaluated at the turn's end */
    } t;
};

jh_person *jh__person(const jrn_host *h, const char *key, size_t kn);
jh_person *jh__person_add(jrn_host *h, const char *key, size_t kn);
jh_pj *jh__pj(jh_person *p, uint32_t journey, bool add);
jh_inst *jh__inst_new(jrn_host *h, jh_person *p, jh_pj *pj);
/* Unlinks x from its pj, cancels its timer, drops its kept entry event, frees
 * it (invariant (1) of host.c). Counts nothing. */
void jh__inst_free(jrn_host *h, jh_inst *x);
/* Removes p from the people table and frees it; its instances must be gone. */
void jh__person_remove(jrn_host *h, jh_person *p);
const jrn_version *jh__version(const jrn_host *h, uint32_t journey, uint32_t version);
jrn_vstats *jh__stats(jrn_host *h, uint32_t journey, uint32_t version);
/* The entry event JSON of x (a version that reads journey.entry), or NULL;
 * keeping one sets JH_ENTRY (keyed by x->in.id, which must be final). */
const char *jh__entry(const jrn_host *h, const jh_inst *x);
void jh__entry_keep(jrn_host *h, jh_inst *x, jd_str json);
/* host.c, for host_segments.c: the turn, the activation, entering. */
void jh__turn_begin(jrn_host *h, jh_person *p, jd_str key, const ingest_event *ev);
void jh__turn_end(jrn_host *h);
int  jh__resolve(void *self, const char *name, expr_val *out);
int  jh__try_enter(jrn_host *h, const jrn_journey *j, jd_str key, uint64_t lsn, const ingest_event *ev, jd_err *err);

/* Segment re-evaluations at the end of one turn after update nodes (host.c
 * invariant (6)); a change past them waits for the person's next turn. */
#define JH_MAX_SEGMENT_ROUNDS 8

/* host_segments.c */
void jh__segs_init(jrn_host *h, int64_t now);
void jh__segs_reset_clock(jrn_host *h, int64_t now);
void jh__segs_release(jrn_host *h);
/* Re-evaluates every segment for key at now (inside a turn); runs the
 * segment-entered journeys and arms flips. */
void jh__segs_update(jrn_host *h, jd_str key, int64_t now, uint64_t lsn);
bool jh__seg_member(const jrn_host *h, jd_str key, uint32_t bit);
void jh__segs_forget(jrn_host *h, jd_str key);   /* a deleted person: bits and flips go */
bool jh__segs_known(const jrn_host *h, jd_str key);   /* has bits or a pending flip */
void jh__segs_encode(const jrn_host *h, jd_buf *b, void (*w32)(jd_buf *, uint32_t), void (*w64)(jd_buf *, uint64_t));
int  jh__segs_decode_one(jrn_host *h, jd_str key, uint64_t bits, const uint32_t *fbits, const uint64_t *fwhen, uint32_t nf);

/* A fresh wheel at now (decode: the host is empty). */
void jh__reset_clock(jrn_host *h, int64_t now);

/* ---- host_codec.c: one person's history with one journey, in bytes ------------
 * The block the snapshot writes per (person, journey) and jrn_host_extract's
 * blob is made of (layout at the top of host_codec.c):
 *   str journey | u8 last_end | i64 last_entered | u64 last_entry_lsn |
 *   u32 ninst x inst */
void jh__w_u16(jd_buf *b, uint16_t v);
void jh__w_u32(jd_buf *b, uint32_t v);
void jh__w_u64(jd_buf *b, uint64_t v);
void jh__pj_write(const jrn_host *h, jd_buf *b, const jh_pj *pj);

typedef struct jh_rd {           /* a bounds-checked reader over bytes that are input */
    const uint8_t *p, *end, *start;
    bool bad;                    /* a read went past the end: every later read gives 0 */
} jh_rd;
const uint8_t *jh__take(jh_rd *r, size_t n);
uint16_t jh__r_u16(jh_rd *r);
uint32_t jh__r_u32(jh_rd *r);
uint64_t jh__r_u64(jh_rd *r);

/* host_segments.c: size history in a snapshot (layout in host_codec.c).
 * decode reads the section (has_section: format >= 4; else there is none)
 * and gives every registry segment left without one an empty history;
 * JD_ECORRUPT with *why on bad bytes. */
void jh__hist_encode(const jrn_host *h, jd_buf *b);
int  jh__hist_decode(jrn_host *h, jh_rd *r, bool has_section, const char **why);

typedef struct jh_inst_rec {     /* one decoded instance, not yet in a host */
    jrn_instance in;             /* timer zeroed */
    uint8_t  flags;              /* JH_HELD only: JH_ENTRY follows entry */
    uint16_t split_node;
    uint64_t when;               /* its timer's deadline (held: the held one), 0 none */
    jd_str   entry;              /* entry event JSON borrowed from the bytes, n 0 none */
    bool     known;              /* the registry has its version */
} jh_inst_rec;

typedef struct jh_pj_rec {
    jd_str   journey;            /* borrowed from the bytes */
    const jrn_journey *j;        /* NULL: the registry has no journey with that id */
    uint8_t  last_end;
    int64_t  last_entered_us;
    uint64_t last_entry_lsn;
    jh_inst_rec *inst;           /* owned: free() */
    uint32_t ninst;
} jh_pj_rec;
/* Reads one block. JD_OK: *out filled (out->inst owned, also on failure:
 * free it); an instance of an unknown journey or version is read whole with
 * known false. JD_ECORRUPT: *why says what was wrong (the reader stops at it). */
int jh__pj_read(const jrn_host *h, jh_rd *r, jh_pj_rec *out, const char **why);
/* Links rec at the tail of pj's live list (the encoded order is the order a
 * person's instances see an event), keeps its entry event, counts it live.
 * Arms nothing and touches no counters: the caller decides about its timer. */
jh_inst *jh__inst_place(jrn_host *h, jh_person *p, jh_pj *pj, const jh_inst_rec *rec);

#endif
