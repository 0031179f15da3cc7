/* src/journey/host_int.h -- private to src/journey/: the jrn_host layout that
 * host.c (running instances) and host_codec.c (the snapshot) share. */
#ifndef JOURNEYD_HOST_INT_H
#define JOURNEYD_HOST_INT_H

#include "journeyd/runtime.h"
#include "journeyd/timer.h"

#include <json-c/json.h>

enum { JH_HELD = 1 };            /* came due while its journey was paused: runs at resume */

typedef struct jh_person jh_person;

typedef struct jh_inst {         /* a live instance: 128 bytes */
    jrn_instance in;             /* its timer is in the host's wheel while waiting */
    jh_person   *p;
    struct jh_inst *next;        /* other live instances of the same (person, journey) */
    char        *entry;          /* the entry event's JSON when the version reads journey.entry */
    uint32_t     journey;        /* registry index */
    uint32_t     split_node;     /* the last split passed (journey.variant), JRN_NONE none */
    uint32_t     last_node;      /* for exit attribution */
    uint8_t      flags;          /* JH_* */
} jh_inst;

typedef struct jh_pj {           /* a person's history with one journey: 32 bytes */
    uint32_t journey;
    uint8_t  last_end;           /* jrn_end of the last instance that ended, 0 none */
    int64_t  last_entered_us;    /* INT64_MIN: never */
    uint64_t last_entry_lsn;     /* invariant (3) of host.c */
    jh_inst *live;
} jh_pj;

struct jh_person {
    jh_pj   *pj;
    uint16_t n, cap;
    uint32_t key_len;
    char     key[];              /* NUL-terminated */
};

struct jrn_host {
    const jrn_reg *reg;
    prof_store   *profiles;
    jrn_host_out  out;
    jrn_io        io;
    tw_wheel     *w;
    int64_t       now;
    uint64_t      lsn;           /* the record being applied (intents name it) */
    jd_map       *people;        /* key -> jh_person (key bytes: person->key) */
    size_t        live;
    jrn_vstats ***stats;         /* [journey][version - 1], lazily */
    uint32_t     *nstats_v, nstats;
    expr_scratch *scratch;
    json_tokener *tok;
    struct {                     /* the turn (host.c) */
        jh_person *p;
        jd_str key;
        const ingest_event *ev;
        const jrn_instance *in;
        int64_t now;
        uint32_t journey, version;   /* whose counters an error goes to */
        json_object *evj, *prof, *jobj;
        bool evj_done;
    } t;
};

jh_person *jh__person(const jrn_host *h, const char *key, size_t kn);
jh_person *jh__person_add(jrn_host *h, const char *key, size_t kn);
jh_pj *jh__pj(jh_person *p, uint32_t journey, bool add);
jh_inst *jh__inst_new(jrn_host *h, jh_person *p, jh_pj *pj);
const jrn_version *jh__version(const jrn_host *h, uint32_t journey, uint32_t version);
jrn_vstats *jh__stats(jrn_host *h, uint32_t journey, uint32_t version);
/* A fresh wheel at now (decode: the host is empty). */
void jh__reset_clock(jrn_host *h, int64_t now);

#endif
