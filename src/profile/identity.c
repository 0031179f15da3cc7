/* src/profile/identity.c -- the identity directory (include/journeyd/identity.h).
 *
 * One map from identifier to node. A node is either
 *   a link   (key != NULL): an identifier that belongs to the profile `key`, or
 *   a head   (key == NULL): a profile key that has links, listing them in ids.
 * A profile key with no links, and an identifier seen alone, have no node: an
 * identifier the map does not hold is its own key.
 *
 * Invariants:
 *  (1) A link's key is a head, never another link: a merge re-points every
 *      link of the merged profile to the survivor, so resolving is one lookup.
 *  (2) A head's ids are exactly the links whose key is it, each once.
 *  (3) A head has at least one link; a profile that loses its last link (a
 *      forget) loses its head.
 *  (4) No clock, no randomness: the same calls in the same order build the
 *      same directory, which is what replay relies on.
 */
#include "journeyd/identity.h"
#include "journeyd/limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct idn_node idn_node;
struct idn_node {
    idn_node  *key;          /* a link: its profile's head; a head: NULL */
    idn_node **ids;          /* a head: its links */
    uint32_t   n, cap;
    uint8_t    kind;         /* of the identifier itself (a head: of its key) */
    uint8_t    len;          /* identifiers are at most IDN_MAX_ID_BYTES */
    char       v[];          /* NUL-terminated; the map borrows these bytes */
};

struct idn_dir {
    jd_map  *nodes;
    uint32_t limits[IDN_MAX_KINDS];
    uint32_t nkinds, ndeclared;
    char     kinds[IDN_MAX_KINDS][IDN_MAX_KIND_BYTES + 1];
    size_t   heap;
};

static bool kind_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > IDN_MAX_KIND_BYTES) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

uint32_t idn_kind(idn_dir *d, const char *name, size_t n)
{
    for (uint32_t k = 0; k < d->nkinds; k++)
        if (strlen(d->kinds[k]) == n && memcmp(d->kinds[k], name, n) == 0) return k;
    if (!kind_name_ok(name, n) || d->nkinds == IDN_MAX_KINDS) return UINT32_MAX;
    memcpy(d->kinds[d->nkinds], name, n);
    d->kinds[d->nkinds][n] = 0;
    d->limits[d->nkinds] = d->limits[IDN_DECLARED];   /* a kind only replay knows: the declared limit */
    return d->nkinds++;
}

const char *idn_kind_name(const idn_dir *d, uint32_t kind) { return kind < d->nkinds ? d->kinds[kind] : "?"; }
uint32_t idn_declared_count(const idn_dir *d) { return d->ndeclared; }

idn_dir *idn_create(const idn_opts *o)
{
    idn_dir *d = jd_xcalloc(1, sizeof *d);
    d->nodes = jd_map_create(0);
    snprintf(d->kinds[IDN_USER], sizeof d->kinds[IDN_USER], "userId");
    snprintf(d->kinds[IDN_ANON], sizeof d->kinds[IDN_ANON], "anonymousId");
    d->nkinds = 2;
    for (uint32_t k = 0; k < IDN_MAX_KINDS; k++) d->limits[k] = o->max_per_identifier ? o->max_per_identifier : 1;
    d->limits[IDN_USER] = o->max_user_ids ? o->max_user_ids : 1;
    d->limits[IDN_ANON] = o->max_anonymous_ids ? o->max_anonymous_ids : JD_DEF_MAX_ANON_IDS;
    for (uint32_t i = 0; i < o->ndeclared && d->nkinds < IDN_MAX_KINDS; i++)
        if (idn_kind(d, o->declared[i], strlen(o->declared[i])) != UINT32_MAX) d->ndeclared++;
    return d;
}

static void node_free(idn_dir *d, idn_node *x)
{
    d->heap -= sizeof *x + x->len + 1 + x->cap * sizeof *x->ids;
    free(x->ids);
    free(x);
}

void idn_destroy(idn_dir *d)
{
    if (!d) return;
    size_t pos = 0;
    void *v;
    while (jd_map_next(d->nodes, &pos, NULL, NULL, &v)) node_free(d, v);
    jd_map_destroy(d->nodes);
    free(d);
}

/* ---- nodes ----------------------------------------------------------------- */

static idn_node *node_get(const idn_dir *d, jd_str v) { return v.n ? jd_map_get(d->nodes, v.p, v.n) : NULL; }

static idn_node *node_new(idn_dir *d, jd_str v, uint32_t kind)
{
    JD_ASSERT(v.n > 0 && v.n <= IDN_MAX_ID_BYTES);
    idn_node *x = jd_xcalloc(1, sizeof *x + v.n + 1);
    memcpy(x->v, v.p, v.n);
    x->len = (uint8_t)v.n;
    x->kind = (uint8_t)kind;
    jd_map_put(d->nodes, x->v, v.n, x);
    d->heap += sizeof *x + v.n + 1;
    return x;
}

static void head_add(idn_dir *d, idn_node *h, idn_node *link)
{
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 2;
        d->heap += (cap - h->cap) * sizeof *h->ids;
        h->ids = jd_xrealloc(h->ids, cap * sizeof *h->ids);
        h->cap = cap;
    }
    h->ids[h->n++] = link;
    link->key = h;
}

/* The head of key, made when key has none yet. */
static idn_node *head_of(idn_dir *d, jd_str key, bool is_user)
{
    idn_node *h = node_get(d, key);
    if (h && h->key) return h->key;   /* invariant (1): a stale key resolves on */
    return h ? h : node_new(d, key, is_user ? IDN_USER : IDN_ANON);
}

/* ---- resolving ------------------------------------------------------------- */

jd_str idn_lookup(const idn_dir *d, const char *id, size_t n, bool *is_user)
{
    jd_str s = { id, (uint32_t)n };
    idn_node *x = node_get(d, s);
    if (x && x->key) x = x->key;
    if (is_user) *is_user = x && x->kind == IDN_USER;
    return x ? (jd_str){ x->v, x->len } : s;
}

/* A profile as resolve sees it: its key and how many identifiers of each kind
 * it has (the key counting as one of its own kind). */
typedef struct prof_ref {
    jd_str   key;
    bool     is_user;
    uint32_t count[IDN_MAX_KINDS];
} prof_ref;

static void ref_of(const idn_dir *d, jd_str key, uint32_t key_kind, prof_ref *r)
{
    memset(r, 0, sizeof *r);
    idn_node *h = node_get(d, key);
    r->key = h ? (jd_str){ h->v, h->len } : key;
    r->is_user = (h ? h->kind : key_kind) == IDN_USER;
    r->count[r->is_user ? IDN_USER : IDN_ANON] = 1;
    for (uint32_t i = 0; h && i < h->n; i++) r->count[h->ids[i]->kind]++;
}

/* The first kind whose limit acc + add would pass, or UINT32_MAX. */
static uint32_t over_limit(const idn_dir *d, const uint32_t *acc, const uint32_t *add)
{
    for (uint32_t k = 0; k < d->nkinds; k++)
        if (add[k] && acc[k] + add[k] > d->limits[k]) return k;
    return UINT32_MAX;
}

static const char *limit_name(uint32_t k)
{
    return k == IDN_USER ? "identity.max_user_ids" : k == IDN_ANON ? "profiles.max_anonymous_ids"
                                                                   : "identity.max_per_identifier";
}

static void refuse(const idn_dir *d, idn_plan *p, jd_str other, bool is_key, uint32_t kind, uint32_t would)
{
    if (p->nrefused == IDN_MAX_EVENT_IDS) return;
    idn_refusal *r = &p->refused[p->nrefused++];
    r->other = other;
    r->is_key = is_key;
    snprintf(r->reason, sizeof r->reason, "%s would give one profile %u %s identifiers, over %s (%u)",
             is_key ? "merging" : "linking", would, d->kinds[kind], limit_name(kind), d->limits[kind]);
}

void idn_resolve(idn_dir *d, const idn_id *ids, size_t n, idn_plan *p)
{
    memset(p, 0, sizeof *p);
    /* Where each identifier points now: a profile, or nowhere (a declared
     * identifier nobody has yet). Only userIds and anonymousIds are keys. */
    prof_ref refs[IDN_MAX_EVENT_IDS];
    bool is_ref[IDN_MAX_EVENT_IDS] = { 0 };
    size_t first = SIZE_MAX;
    n = JD_MIN_OF(n, (size_t)IDN_MAX_EVENT_IDS);
    for (size_t i = 0; i < n; i++) {
        if (!ids[i].v.n || ids[i].v.n > IDN_MAX_ID_BYTES) continue;
        idn_node *x = node_get(d, ids[i].v);
        if (x && x->key) x = x->key;
        if (x) ref_of(d, (jd_str){ x->v, x->len }, x->kind, &refs[i]);
        else if (ids[i].kind == IDN_USER || ids[i].kind == IDN_ANON) ref_of(d, ids[i].v, ids[i].kind, &refs[i]);
        else continue;
        is_ref[i] = true;
        if (first == SIZE_MAX) first = i;
    }
    JD_ASSERT(first != SIZE_MAX);   /* the contract: a userId or an anonymousId */
    prof_ref *s = &refs[first];
    p->key = s->key;
    p->key_is_user = s->is_user;
    uint32_t acc[IDN_MAX_KINDS];
    memcpy(acc, s->count, sizeof acc);
    jd_str merged[IDN_MAX_EVENT_IDS];
    size_t nmerged = 0;

    for (size_t i = 0; i < n; i++) {
        if (i == first || !ids[i].v.n || ids[i].v.n > IDN_MAX_ID_BYTES) continue;
        if (is_ref[i]) {
            prof_ref *r = &refs[i];
            bool seen = jd_str_eq(r->key, s->key.p, s->key.n);
            for (size_t m = 0; m < nmerged && !seen; m++) seen = jd_str_eq(r->key, merged[m].p, merged[m].n);
            if (seen) continue;
            uint32_t k = over_limit(d, acc, r->count);
            if (k != UINT32_MAX) {
                refuse(d, p, r->key, true, k, acc[k] + r->count[k]);
                if (ids[i].kind == IDN_ANON) p->anon_refused = true;
                continue;
            }
            for (uint32_t j = 0; j < d->nkinds; j++) acc[j] += r->count[j];
            merged[nmerged++] = r->key;
            p->moves[p->nmoves].from = r->key;
            p->moves[p->nmoves++].from_is_user = r->is_user;
        } else {
            uint32_t one[IDN_MAX_KINDS] = { 0 }, kind = ids[i].kind;
            bool dup = false;
            for (uint32_t a = 0; a < p->nattach && !dup; a++) dup = jd_str_eq(p->attach[a].v, ids[i].v.p, ids[i].v.n);
            if (dup || kind >= d->nkinds) continue;
            one[kind] = 1;
            if (over_limit(d, acc, one) != UINT32_MAX) {
                refuse(d, p, ids[i].v, false, kind, acc[kind] + 1);
                continue;
            }
            acc[kind]++;
            p->attach[p->nattach++] = ids[i];
        }
    }
    /* Apply. The plan's strings must survive: a merged key's bytes live in
     * its node, which a move keeps (the node becomes a link). */
    for (uint32_t m = 0; m < p->nmoves; m++)
        idn_apply_move(d, p->moves[m].from, p->moves[m].from_is_user, p->key, p->key_is_user);
    for (uint32_t a = 0; a < p->nattach; a++) idn_apply_attach(d, p->key, p->key_is_user, p->attach[a].kind, p->attach[a].v);
    /* The key's bytes may have been the event's: point them at the directory's. */
    idn_node *h = node_get(d, p->key);
    if (h) p->key = (jd_str){ h->v, h->len };
    for (uint32_t m = 0; m < p->nmoves; m++) {
        idn_node *x = node_get(d, p->moves[m].from);
        if (x) p->moves[m].from = (jd_str){ x->v, x->len };
    }
}

/* ---- recorded decisions ---------------------------------------------------------- */

void idn_apply_move(idn_dir *d, jd_str from, bool from_is_user, jd_str to, bool to_is_user)
{
    if (!from.n || !to.n || from.n > IDN_MAX_ID_BYTES || to.n > IDN_MAX_ID_BYTES) return;
    if (jd_str_eq(from, to.p, to.n)) return;
    idn_node *h = head_of(d, to, to_is_user);
    idn_node *x = node_get(d, from);
    if (x && x->key) {
        if (x->key != h) jd_warn("identity: %.*s is already linked to %s; move to %.*s ignored",
                                 (int)from.n, from.p, x->key->v, (int)to.n, to.p);
        return;
    }
    if (x == h) return;
    if (!x) {
        x = node_new(d, from, from_is_user ? IDN_USER : IDN_ANON);
    } else {   /* a head: its links follow it (invariant 1) */
        for (uint32_t i = 0; i < x->n; i++) head_add(d, h, x->ids[i]);
        d->heap -= x->cap * sizeof *x->ids;
        free(x->ids);
        x->ids = NULL;
        x->n = x->cap = 0;
    }
    head_add(d, h, x);
}

void idn_apply_attach(idn_dir *d, jd_str key, bool key_is_user, uint32_t kind, jd_str v)
{
    if (!v.n || v.n > IDN_MAX_ID_BYTES || kind >= d->nkinds || node_get(d, v)) return;
    idn_node *h = head_of(d, key, key_is_user);
    head_add(d, h, node_new(d, v, kind));
}

void idn_forget(idn_dir *d, const char *id, size_t n)
{
    idn_node *x = node_get(d, (jd_str){ id, (uint32_t)n });
    if (!x) return;
    idn_node *h = x->key ? x->key : x;
    for (uint32_t i = 0; i < h->n; i++) {
        jd_map_del(d->nodes, h->ids[i]->v, h->ids[i]->len);
        node_free(d, h->ids[i]);
    }
    jd_map_del(d->nodes, h->v, h->len);
    node_free(d, h);
}

void idn_each(const idn_dir *d, const char *key, size_t n, void (*fn)(void *ctx, uint32_t kind, jd_str v), void *ctx)
{
    idn_node *h = node_get(d, (jd_str){ key, (uint32_t)n });
    if (h && h->key) h = h->key;
    for (uint32_t i = 0; h && i < h->n; i++) fn(ctx, h->ids[i]->kind, (jd_str){ h->ids[i]->v, h->ids[i]->len });
}

size_t idn_entries(const idn_dir *d) { return jd_map_len(d->nodes); }
size_t idn_bytes(const idn_dir *d) { return d->heap + jd_map_len(d->nodes) * 32; }
