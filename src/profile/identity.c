/* src/profile/identity.c -- the identity directory (include/journeyd/identity.h).
 *
 * A profile that has links is one block: its identifiers one after the other,
 * the key first, each entry two bytes and the identifier's bytes:
 *
 *     [kind|LAST][len][len bytes] [kind|LAST][len][len bytes] ...
 *
 * (LAST, 0x80, marks the block's last entry; kind is IDN_USER or IDN_ANON for
 * the key, the identifier's own kind for a link). A profile key with no links,
 * and an identifier seen alone, have no block: an identifier the directory
 * does not hold is its own key.
 *
 * Blocks live in 256 KiB pages and are named by a u32 ref counting 8-byte
 * units (page << 15 | unit; ref 0 is never a block), so a directory holds at
 * most 32 GiB of blocks and a block at most one page. A block takes
 * units_for(its bytes): exact multiples of 8 bytes up to 512, a power of two
 * above. A freed block goes on the free list of its size (73 lists) and is
 * reused by the next block of that size (before a block grows in place: a
 * block that is the last thing in the last page grows there when no freed
 * chunk of its new size waits, and the last chunk freed goes back to the page).
 *
 * One table finds an identifier: open addressing with linear probing over
 * block refs, plus one tag byte a slot (0x80 | 7 bits of the hash, 0 empty,
 * 1 a tombstone) that spares most probes a visit to a block. Every
 * identifier of a block has its own slot holding the block's ref; a lookup
 * whose tag matches scans that block for the identifier (so two identifiers
 * of one block with equal tags cannot be mistaken for each other).
 * A person with a userId, an anonymousId and an email: one block of
 * 6 + 59 bytes (72 with the rounding) and three 5-byte slots.
 *
 * Invariants:
 *  (1) The key of every identifier is its block's first entry: a merge moves
 *      every entry of the merged block into the survivor's, so resolving is
 *      one lookup.
 *  (2) A block's entries are exactly the identifiers whose slots hold its
 *      ref, each once, its links in the order they were linked.
 *  (3) A block has at least two entries (its key and a link); a profile
 *      that loses its last link (a forget) loses its block.
 *  (4) No clock, no randomness: the same calls in the same order build the
 *      same directory, which is what replay relies on.
 *  (5) Pages are walkable: from unit 1 of page 0 (unit 0 of page 0 then unit
 *      0 of every later page) to each page's used mark, chunks follow each
 *      other, a block taking units_for(block_size) and a free chunk (first
 *      byte FREE_MARK) the units it records. Rehashing walks them, so the
 *      table stores no hashes.
 *  (6) len + tombs < cap * 3 / 4 after every insert (reserve() rehashes
 *      before an operation, never during one, since a rehash needs (5)); the
 *      table halves when less than 1/8 full, and everything (pages, table)
 *      is freed when the directory empties: idn_bytes is what it holds now.
 *  (7) Plan strings idn_resolve returns point into blocks; a block moves
 *      when it grows, so resolve copies the strings it passes to its own
 *      apply calls into the directory's scratch first.
 *  (8) Freed units are at most half the pages (or less than a page): when a
 *      forget passes that, the live blocks are copied into new pages
 *      (compact; every block moves, which only a forget may do). So a
 *      directory that churns holds at most about twice what it keeps, even
 *      when new identifiers are longer than the ones forgotten and their
 *      sizes' free lists cannot serve them.
 */
#include "journeyd/identity.h"
#include "journeyd/limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNIT_SHIFT  3u
#define PAGE_SHIFT  15u                      /* units a page: 32768 */
#define PAGE_UNITS  (1u << PAGE_SHIFT)
#define PAGE_BYTES  ((size_t)PAGE_UNITS << UNIT_SHIFT)   /* 256 KiB */
#define MAX_PAGES   (1u << (32 - PAGE_SHIFT))            /* refs are u32: 32 GiB */
#define NCLASS      73u                      /* 64 exact sizes (8..512 B), then 1 KiB..256 KiB */
#define LAST        0x80u
#define KIND_MASK   0x7Fu
#define FREE_MARK   0xFEu
#define TOMB        1u

typedef uint32_t ref;

struct idn_dir {
    /* the table */
    uint32_t *slot;          /* block refs */
    uint8_t  *tag;           /* 0 empty, TOMB, or 0x80 | hash >> 57 */
    uint32_t  cap, len, tombs;
    /* the pages */
    uint8_t **page;
    uint16_t *used;          /* units used in each page but the last */
    uint32_t  npages, pages_cap, bump;   /* bump: units used in the last page */
    ref       freel[NCLASS];
    size_t    free_units;
    /* kinds and limits */
    uint32_t limits[IDN_MAX_KINDS];
    uint32_t nkinds, ndeclared;
    char     kinds[IDN_MAX_KINDS][IDN_MAX_KIND_BYTES + 1];
    /* (7): resolve's copies of the strings it applies; entries built for a call */
    char     scratch[IDN_MAX_EVENT_IDS + 1][IDN_MAX_ID_BYTES];
    uint8_t  tmp[2][2 + IDN_MAX_ID_BYTES];
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

/* Frees the pages and the table: the directory holds nothing (6). */
static void release_all(idn_dir *d)
{
    for (uint32_t i = 0; i < d->npages; i++) free(d->page[i]);
    free(d->page);
    free(d->used);
    free(d->slot);
    free(d->tag);
    d->page = NULL;
    d->used = NULL;
    d->slot = NULL;
    d->tag = NULL;
    d->npages = d->pages_cap = d->bump = 0;
    d->cap = d->len = d->tombs = 0;
    memset(d->freel, 0, sizeof d->freel);
    d->free_units = 0;
}

void idn_destroy(idn_dir *d)
{
    if (!d) return;
    release_all(d);
    free(d);
}

/* ---- blocks and pages ------------------------------------------------------ */

static inline uint8_t *at(const idn_dir *d, ref r)
{
    return d->page[r >> PAGE_SHIFT] + ((size_t)(r & (PAGE_UNITS - 1)) << UNIT_SHIFT);
}

static inline uint8_t *ent_next(const uint8_t *e) { return (uint8_t *)e + 2 + e[1]; }
static inline jd_str ent_str(const uint8_t *e) { return (jd_str){ (const char *)e + 2, e[1] }; }

static size_t block_size(const uint8_t *b)
{
    const uint8_t *e = b;
    while (!(e[0] & LAST)) e = ent_next(e);
    return (size_t)(ent_next(e) - b);
}

static uint32_t units_for(size_t bytes)
{
    uint32_t u = (uint32_t)((bytes + 7) >> UNIT_SHIFT), p = 128;
    if (u <= 64) return u;
    while (p < u) p <<= 1;
    return p;
}

static uint32_t class_of(uint32_t units)
{
    if (units <= 64) return units - 1;
    uint32_t c = 64;
    for (uint32_t p = 128; p < units; p <<= 1) c++;
    return c;
}

static ref chunk_alloc(idn_dir *d, uint32_t units)
{
    uint32_t c = class_of(units);
    if (d->freel[c]) {
        ref r = d->freel[c];
        memcpy(&d->freel[c], at(d, r) + 4, sizeof(ref));
        d->free_units -= units;
        return r;
    }
    if (!d->npages || d->bump + units > PAGE_UNITS) {
        if (d->npages == MAX_PAGES) {   /* 32 GiB of identifiers: out of memory by the policy of base.h */
            jd_error("identity: the directory holds 32 GiB, its ceiling");
            abort();
        }
        if (d->npages == d->pages_cap) {
            d->pages_cap = d->pages_cap ? d->pages_cap * 2 : 8;
            d->page = jd_xrealloc(d->page, d->pages_cap * sizeof *d->page);
            d->used = jd_xrealloc(d->used, d->pages_cap * sizeof *d->used);
        }
        if (d->npages) d->used[d->npages - 1] = (uint16_t)d->bump;
        d->page[d->npages++] = jd_xmalloc(PAGE_BYTES);
        d->bump = d->npages == 1 ? 1 : 0;   /* ref 0 is never a block */
    }
    ref r = (d->npages - 1) << PAGE_SHIFT | d->bump;
    d->bump += units;
    return r;
}

static void chunk_free(idn_dir *d, ref r, uint32_t units)
{
    if ((r >> PAGE_SHIFT) == d->npages - 1 && (r & (PAGE_UNITS - 1)) + units == d->bump) {
        d->bump -= units;   /* the last chunk: given back to the page */
        return;
    }
    uint8_t *p = at(d, r);
    uint16_t u = (uint16_t)units;
    uint32_t c = class_of(units);
    p[0] = FREE_MARK;
    memcpy(p + 2, &u, sizeof u);
    memcpy(p + 4, &d->freel[c], sizeof(ref));
    d->freel[c] = r;
    d->free_units += units;
}

/* Whether block r (old units) is the last chunk of the last page and can take units. */
static bool grows_in_place(const idn_dir *d, ref r, uint32_t old, uint32_t units)
{
    uint32_t u = r & (PAGE_UNITS - 1);
    return (r >> PAGE_SHIFT) == d->npages - 1 && u + old == d->bump && u + units <= PAGE_UNITS;
}

/* ---- the table ------------------------------------------------------------- */

static inline uint64_t id_hash(const char *p, size_t n) { return jd_hash64(p, n); }
static inline uint8_t tag_of(uint64_t h) { return (uint8_t)(0x80 | (h >> 57)); }

/* The entry holding (p, n), and its block in *r; NULL when not held. */
static uint8_t *find(const idn_dir *d, const char *p, size_t n, uint64_t h, ref *r)
{
    if (!d->len || !n || n > IDN_MAX_ID_BYTES) return NULL;
    uint8_t tg = tag_of(h);
    for (size_t m = d->cap - 1, i = (size_t)h & m;; i = (i + 1) & m) {
        uint8_t t = d->tag[i];
        if (!t) return NULL;
        if (t != tg) continue;
        uint8_t *e = at(d, d->slot[i]);
        for (;; e = ent_next(e)) {
            if (e[1] == n && memcmp(e + 2, p, n) == 0) {
                *r = d->slot[i];
                return e;
            }
            if (e[0] & LAST) break;
        }
    }
}

static void place(idn_dir *d, uint64_t h, ref r)
{
    size_t m = d->cap - 1, i = (size_t)h & m;
    while (d->tag[i] > TOMB) i = (i + 1) & m;
    if (d->tag[i] == TOMB) d->tombs--;
    d->tag[i] = tag_of(h);
    d->slot[i] = r;
    d->len++;
}

/* Builds the table anew with cap slots from the pages (5). */
static void rehash(idn_dir *d, uint32_t cap)
{
    free(d->slot);
    free(d->tag);
    d->cap = cap;
    d->slot = jd_xmalloc((size_t)cap * sizeof *d->slot);
    d->tag = jd_xcalloc(cap, 1);
    d->len = d->tombs = 0;
    for (uint32_t pg = 0; pg < d->npages; pg++) {
        uint32_t end = pg == d->npages - 1 ? d->bump : d->used[pg];
        for (uint32_t u = pg ? 0 : 1; u < end;) {
            ref r = pg << PAGE_SHIFT | u;
            uint8_t *b = at(d, r);
            if (b[0] == FREE_MARK) {
                uint16_t n;
                memcpy(&n, b + 2, sizeof n);
                u += n;
                continue;
            }
            for (uint8_t *e = b;; e = ent_next(e)) {
                place(d, id_hash((const char *)e + 2, e[1]), r);
                if (e[0] & LAST) break;
            }
            u += units_for(block_size(b));
        }
    }
}

/* Room for k more identifiers without a rehash during the operation (6). */
static void reserve(idn_dir *d, uint32_t k)
{
    if ((size_t)(d->len + d->tombs + k) * 4 < (size_t)d->cap * 3) return;
    uint32_t cap = d->cap ? d->cap : 16;
    while ((size_t)(d->len + k) * 8 > (size_t)cap * 5) {   /* live entries over 5/8: grow */
        JD_ASSERT(cap < (1u << 31));
        cap *= 2;
    }
    rehash(d, cap);   /* else only tombstones filled it: the same size, swept */
}

/* The slot of the identifier e of block old, pointed at now. */
static void retarget(idn_dir *d, const uint8_t *e, ref old, ref now)
{
    uint64_t h = id_hash((const char *)e + 2, e[1]);
    uint8_t tg = tag_of(h);
    for (size_t m = d->cap - 1, i = (size_t)h & m;; i = (i + 1) & m) {
        JD_ASSERT(d->tag[i]);
        if (d->tag[i] == tg && d->slot[i] == old) {
            d->slot[i] = now;
            return;
        }
    }
}

static void unplace(idn_dir *d, const uint8_t *e, ref r)
{
    uint64_t h = id_hash((const char *)e + 2, e[1]);
    uint8_t tg = tag_of(h);
    for (size_t m = d->cap - 1, i = (size_t)h & m;; i = (i + 1) & m) {
        JD_ASSERT(d->tag[i]);
        if (d->tag[i] == tg && d->slot[i] == r) {
            d->tag[i] = TOMB;
            d->len--;
            d->tombs++;
            return;
        }
    }
}

/* ---- building blocks ------------------------------------------------------- */

/* A lone entry in d->tmp[which]. */
static const uint8_t *tmp_entry(idn_dir *d, int which, uint32_t kind, jd_str v)
{
    uint8_t *e = d->tmp[which];
    e[0] = (uint8_t)(kind | LAST);
    e[1] = (uint8_t)v.n;
    memcpy(e + 2, v.p, v.n);
    return e;
}

/* The survivor's block tr (or, when tr is 0, the new key entry key) followed
 * by the entries of add (nadd bytes, its LAST flag ignored), as one block; the
 * slots follow (2): tr's entries re-pointed when the block moved, the key's
 * and the added entries' placed, unless they are the entries of block from
 * (re-pointed, and from freed). Returns false, changing nothing, when the
 * block would pass a page. Needs reserve(d, 2) first. */
static bool join(idn_dir *d, ref tr, const uint8_t *key, const uint8_t *add, size_t nadd, ref from)
{
    const uint8_t *head = tr ? at(d, tr) : key;
    size_t nhead = block_size(head), total = nhead + nadd;
    if (total > PAGE_BYTES) {
        jd_warn("identity: %.*s would hold %zu bytes of identifiers, over a page (%zu); link ignored",
                (int)head[1], (const char *)head + 2, total, PAGE_BYTES);
        return false;
    }
    uint32_t old = tr ? units_for(nhead) : 0, units = units_for(total);
    ref nr = tr;
    if (tr && units == old) {
        /* it fits in its chunk */
    } else if (tr && !d->freel[class_of(units)] && grows_in_place(d, tr, old, units)) {
        d->bump += units - old;
    } else {   /* a freed chunk of the size first: churn reuses what it frees */
        nr = chunk_alloc(d, units);
        memcpy(at(d, nr), tr ? at(d, tr) : key, nhead);   /* at(d, tr) again: chunk_alloc may add a page */
    }
    uint8_t *b = at(d, nr);
    memcpy(b + nhead, add, nadd);
    uint8_t *e = b;
    for (; ent_next(e) < b + total; e = ent_next(e)) e[0] &= (uint8_t)~LAST;
    e[0] |= LAST;
    /* (2): every entry's slot holds nr. */
    for (e = b;; e = ent_next(e)) {
        bool mine = e < b + nhead;
        ref was = mine ? tr : from;
        if (!was) place(d, id_hash((const char *)e + 2, e[1]), nr);
        else if (was != nr) retarget(d, e, was, nr);
        if (e[0] & LAST) break;
    }
    if (tr && nr != tr) chunk_free(d, tr, old);
    if (from) chunk_free(d, from, units_for(nadd));
    return true;
}

/* ---- resolving ------------------------------------------------------------- */

jd_str idn_lookup(const idn_dir *d, const char *id, size_t n, bool *is_user)
{
    ref r;
    uint8_t *e = find(d, id, n, id_hash(id, n), &r);
    uint8_t *k = e ? at(d, r) : NULL;
    if (is_user) *is_user = k && (k[0] & KIND_MASK) == IDN_USER;
    return k ? ent_str(k) : (jd_str){ id, (uint32_t)n };
}

/* A profile as resolve sees it: its key and how many identifiers of each kind
 * it has (the key counting as one of its own kind). */
typedef struct prof_ref {
    jd_str   key;
    bool     is_user;
    uint32_t count[IDN_MAX_KINDS];
} prof_ref;

static void ref_of_block(const uint8_t *b, prof_ref *r)
{
    memset(r, 0, sizeof *r);
    r->key = ent_str(b);
    r->is_user = (b[0] & KIND_MASK) == IDN_USER;
    for (const uint8_t *e = b;; e = ent_next(e)) {
        r->count[e[0] & KIND_MASK]++;
        if (e[0] & LAST) break;
    }
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

/* s copied into the scratch row i (7). */
static jd_str stash(idn_dir *d, size_t i, jd_str s)
{
    memcpy(d->scratch[i], s.p, s.n);
    return (jd_str){ d->scratch[i], s.n };
}

/* Where s is held now, or s itself when the directory does not hold it. */
static jd_str held(const idn_dir *d, jd_str s, jd_str orig)
{
    ref r;
    uint8_t *e = find(d, s.p, s.n, id_hash(s.p, s.n), &r);
    return e ? ent_str(e) : orig;
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
        ref r;
        if (find(d, ids[i].v.p, ids[i].v.n, id_hash(ids[i].v.p, ids[i].v.n), &r)) {
            ref_of_block(at(d, r), &refs[i]);
        } else if (ids[i].kind == IDN_USER || ids[i].kind == IDN_ANON) {
            memset(&refs[i], 0, sizeof refs[i]);
            refs[i].key = ids[i].v;
            refs[i].is_user = ids[i].kind == IDN_USER;
            refs[i].count[ids[i].kind] = 1;
        } else {
            continue;
        }
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
    if (!p->nmoves && !p->nattach) return;   /* nothing changes: the strings stay where they are */
    /* Apply (7): the key's and the merged keys' bytes may live in blocks that
     * move, so the calls get copies; the plan points at the bytes' new homes
     * after (a string the directory does not hold is the event's own). */
    jd_str key = stash(d, 0, p->key), from[IDN_MAX_EVENT_IDS];
    for (uint32_t m = 0; m < p->nmoves; m++) from[m] = stash(d, 1 + m, p->moves[m].from);
    for (uint32_t m = 0; m < p->nmoves; m++) idn_apply_move(d, from[m], p->moves[m].from_is_user, key, p->key_is_user);
    for (uint32_t a = 0; a < p->nattach; a++) idn_apply_attach(d, key, p->key_is_user, p->attach[a].kind, p->attach[a].v);
    p->key = held(d, key, p->key);
    for (uint32_t m = 0; m < p->nmoves; m++) p->moves[m].from = held(d, from[m], p->moves[m].from);
}

/* ---- recorded decisions ---------------------------------------------------------- */

void idn_apply_move(idn_dir *d, jd_str from, bool from_is_user, jd_str to, bool to_is_user)
{
    if (!from.n || !to.n || from.n > IDN_MAX_ID_BYTES || to.n > IDN_MAX_ID_BYTES) return;
    if (jd_str_eq(from, to.p, to.n)) return;
    reserve(d, 2);
    ref fr = 0, tr = 0;
    uint8_t *x = find(d, from.p, from.n, id_hash(from.p, from.n), &fr);
    find(d, to.p, to.n, id_hash(to.p, to.n), &tr);
    if (x && x != at(d, fr)) {   /* from is a link already */
        if (fr != tr) {
            jd_str k = ent_str(at(d, fr));
            jd_warn("identity: %.*s is already linked to %.*s; move to %.*s ignored", (int)from.n, from.p,
                    (int)k.n, k.p, (int)to.n, to.p);
        }
        return;
    }
    if (x && fr == tr) return;   /* to is one of from's links */
    const uint8_t *key = tr ? NULL : tmp_entry(d, 0, to_is_user ? IDN_USER : IDN_ANON, to);
    if (!x) {
        join(d, tr, key, tmp_entry(d, 1, from_is_user ? IDN_USER : IDN_ANON, from), 2 + from.n, 0);
        return;
    }
    /* A profile with links: they follow it (1), then its key, in the order
     * the survivor would have linked them one by one. Copied to the end of
     * the block from's entries rotated: links first, the key last. */
    uint8_t *fb = at(d, fr);
    size_t nf = block_size(fb), nk = 2 + (size_t)fb[1];
    uint8_t rot[2 * (2 + IDN_MAX_ID_BYTES)], *buf = nf <= sizeof rot ? rot : jd_xmalloc(nf);
    memcpy(buf, fb + nk, nf - nk);
    memcpy(buf + nf - nk, fb, nk);
    join(d, tr, key, buf, nf, fr);
    if (buf != rot) free(buf);
}

void idn_apply_attach(idn_dir *d, jd_str key, bool key_is_user, uint32_t kind, jd_str v)
{
    if (!v.n || v.n > IDN_MAX_ID_BYTES || kind >= d->nkinds) return;
    if (!key.n || key.n > IDN_MAX_ID_BYTES) return;
    ref r, tr = 0;
    if (find(d, v.p, v.n, id_hash(v.p, v.n), &r)) return;
    reserve(d, 2);
    find(d, key.p, key.n, id_hash(key.p, key.n), &tr);
    const uint8_t *k = tr ? NULL : tmp_entry(d, 0, key_is_user ? IDN_USER : IDN_ANON, key);
    join(d, tr, k, tmp_entry(d, 1, kind, v), 2 + v.n, 0);
}

/* (8): the live blocks copied, in order, into new pages; the old ones freed,
 * the table built anew over the new refs. */
static void compact(idn_dir *d)
{
    uint8_t **page = d->page;
    uint16_t *used = d->used;
    uint32_t npages = d->npages, bump = d->bump;
    d->page = NULL;
    d->used = NULL;
    d->npages = d->pages_cap = d->bump = 0;
    memset(d->freel, 0, sizeof d->freel);
    d->free_units = 0;
    for (uint32_t pg = 0; pg < npages; pg++) {
        uint32_t end = pg == npages - 1 ? bump : used[pg];
        for (uint32_t u = pg ? 0 : 1; u < end;) {
            uint8_t *b = page[pg] + ((size_t)u << UNIT_SHIFT);
            if (b[0] == FREE_MARK) {
                uint16_t n;
                memcpy(&n, b + 2, sizeof n);
                u += n;
                continue;
            }
            size_t size = block_size(b);
            uint32_t units = units_for(size);
            memcpy(at(d, chunk_alloc(d, units)), b, size);
            u += units;
        }
        free(page[pg]);
    }
    free(page);
    free(used);
    uint32_t cap = d->cap;
    while (cap > 16 && (size_t)d->len * 8 < cap) cap /= 2;
    rehash(d, cap);
}

void idn_forget(idn_dir *d, const char *id, size_t n)
{
    ref r;
    if (!find(d, id, n, id_hash(id, n), &r)) return;
    uint8_t *b = at(d, r);
    for (uint8_t *e = b;; e = ent_next(e)) {
        unplace(d, e, r);
        if (e[0] & LAST) break;
    }
    chunk_free(d, r, units_for(block_size(b)));
    if (d->len == 0) {
        release_all(d);   /* (6) */
        return;
    }
    size_t units = (size_t)d->npages * PAGE_UNITS;
    if (d->free_units >= PAGE_UNITS && d->free_units * 2 > units) compact(d);   /* (8) */
    else if (d->cap > 16 && (size_t)d->len * 8 < d->cap) rehash(d, d->cap / 2);
}

void idn_each(const idn_dir *d, const char *key, size_t n, void (*fn)(void *ctx, uint32_t kind, jd_str v), void *ctx)
{
    ref r;
    if (!find(d, key, n, id_hash(key, n), &r)) return;
    const uint8_t *e = at(d, r);
    while (!(e[0] & LAST)) {
        e = ent_next(e);
        fn(ctx, e[0] & KIND_MASK, ent_str(e));
    }
}

size_t idn_entries(const idn_dir *d) { return d->len; }

size_t idn_bytes(const idn_dir *d)
{
    return (size_t)d->npages * PAGE_BYTES + (size_t)d->pages_cap * (sizeof *d->page + sizeof *d->used) +
           (size_t)d->cap * (sizeof *d->slot + 1);
}
