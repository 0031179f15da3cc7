/* src/profile/computed.c -- computed traits: their definitions (parsed from
 * the configuration's `computed:` map) and each profile's values, kept
 * incrementally as track events are applied. docs/internals/profile.md
 * ("Computed traits") has the layouts and the precision rules.
 *
 * A definition counts one track event name, with one kind:
 *   count       events                       sum       a numeric property
 *   min, max    of a numeric property        last      a property's value
 *   first_seen  earliest event time          last_seen latest event time
 * over all time, or over a sliding window of W split into B buckets of
 * width w = W / B (integer microseconds), aligned on multiples of w since
 * the Unix epoch. Bucket k holds the events with floor(ts / w) == k.
 *
 * Payloads of a profile's entries (profile_int.h has the entry header):
 *   all time count/sum/min/max/first_seen/last_seen   8 bytes: u64 / double / i64
 *   last (windowed or not)                            i64 at_us | JSON text
 *   windowed last_seen                                8 bytes (i64 latest time)
 *   windowed count/sum/min/max/first_seen             m x (i64 k | 8-byte value), 1 <= m <= B:
 *                                                     only the buckets that hold events, k ascending
 * A windowed last and last_seen need no buckets: the latest event overall is
 * the latest in the window if it is in the window at all.
 *
 * Invariants:
 *  (1) Values are a function of the events applied, in order: the time is
 *      the event's timestamp_us (never a clock), and reading a window takes
 *      `now` as an argument.
 *  (2) A profile holds at most one entry per definition; a bucketed entry
 *      holds its non-empty buckets in ascending k, all within B of the
 *      newest (k > newest - B): older ones are dropped as newer ones come.
 *  (3) Stored sums, minima and maxima are finite: a value that is not a JSON
 *      number, or that would make a sum overflow, is not applied.
 *  (4) A `last` value is one strict JSON value (not null) of at most
 *      JD_MAX_COMPUTED_VALUE_BYTES; a larger one is not applied and counts
 *      in the profile's `limited`. Its at_us only grows (later wins; equal
 *      times: the later applied, which is log order).
 *  (5) An entry's size changes only for `last` and when a bucketed entry
 *      gains or drops a bucket, so applying an event to an existing bucket or
 *      an all-time value allocates nothing. Memory follows activity: a person
 *      active on 2 days of a 7-day window holds 2 buckets, not B.
 *  (6) A window read at now counts buckets k with kn - B < k <= kn, where
 *      kn = floor(now / w): the window it covers starts between W - w and W
 *      before now, never earlier. An event B or more buckets behind the
 *      newest kept is outside every such window that ends at or after that
 *      newest event, and is not kept.
 */
#include "profile_int.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define CT_HDR    5u          /* u8 def | u32 len */
#define CT_SNAP_HDR 12u       /* u64 id | u32 len */
#define CT_SLOT   16u         /* i64 k | 8-byte value */
#define CT_EMPTY  INT64_MIN
#define CT_MIN_WINDOW_US JD_MIN
#define CT_MAX_WINDOW_US (3650 * JD_DAY)
#define CT_MAX_NAME  64u
#define CT_MAX_PATH  255u

static const struct ct_kind {
    const char *name;
    bool        property;      /* needs `property` */
    bool        bucketed;      /* keeps buckets when windowed */
} kinds[PROF_CT_KIND_END_] = {
    [PROF_CT_COUNT]      = { "count",      false, true  },
    [PROF_CT_SUM]        = { "sum",        true,  true  },
    [PROF_CT_MIN]        = { "min",        true,  true  },
    [PROF_CT_MAX]        = { "max",        true,  true  },
    [PROF_CT_LAST]       = { "last",       true,  false },
    [PROF_CT_FIRST_SEEN] = { "first_seen", false, true  },
    [PROF_CT_LAST_SEEN]  = { "last_seen",  false, false },
};

/* ---- definitions -------------------------------------------------------- */

uint32_t prof_computed_count(const prof_computed_defs *d) { return d ? d->n : 0; }

void prof_computed_defs_destroy(prof_computed_defs *d)
{
    if (!d) return;
    for (uint32_t i = 0; i < d->n; i++) {
        free(d->d[i].name);
        free(d->d[i].event);
        free(d->d[i].property);
    }
    jd_map_destroy(d->by_event);
    free(d);
}

static int bad(jd_err *err, const char *file, const jd_yaml_node *at, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bad(jd_err *err, const char *file, const jd_yaml_node *at, int code, const char *fmt, ...)
{
    char where[160], msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(where, sizeof where, "%s:%u:%u", file, at->line, at->col);
    return jd_err_set(err, code, where, "%s", msg);
}

static bool name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > CT_MAX_NAME || (n[0] >= '0' && n[0] <= '9')) return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

/* A dotted path of non-empty segments ("total", "cart.value"). */
static bool path_ok(const char *p)
{
    size_t len = strlen(p);
    if (len == 0 || len > CT_MAX_PATH || p[0] == '.' || p[len - 1] == '.' || strstr(p, "..")) return false;
    return true;
}

static uint64_t def_id(const struct prof_cdef *c)
{
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    jd_buf_addf(&b, "%s%c%s%c%s%c%s%c%llu%c%u", c->name, 0, kinds[c->kind].name, 0, c->event, 0,
                c->property ? c->property : "", 0, (unsigned long long)c->window_us, 0, c->buckets);
    uint64_t h = jd_hash64(b.data, b.len);
    jd_buf_release(&b);
    return h;
}

/* Parses one definition NAME: { ... } into c (its strings owned by c). */
static int parse_def(const jd_yaml_node *k, const char *file, struct prof_cdef *c, jd_err *err)
{
    const char *name = k->text;
    const jd_yaml_node *v = k->value;
    if (!name_ok(name))
        return bad(err, file, k, JD_EINVAL,
                   "computed.%.64s: a name is 1 to 64 letters, digits or _, not starting with a digit", name);
    if (v->kind != JD_YAML_MAP)
        return bad(err, file, v, JD_EINVAL, "computed.%s: expected a map like { count: Logged In, window: 7d }", name);
    const jd_yaml_node *kind_at = NULL, *window_at = NULL, *buckets_at = NULL, *prop_at = NULL;
    for (const jd_yaml_node *e = v->child; e; e = e->next) {
        prof_ct_kind kd = 0;
        for (int i = 1; i < PROF_CT_KIND_END_; i++)
            if (strcmp(e->text, kinds[i].name) == 0) kd = (prof_ct_kind)i;
        if (kd) {
            if (kind_at)
                return bad(err, file, e, JD_EINVAL, "computed.%s: both %s and %s: a definition has one kind", name,
                           kind_at->text, e->text);
            kind_at = e;
            c->kind = kd;
        } else if (strcmp(e->text, "property") == 0) {
            prop_at = e;
        } else if (strcmp(e->text, "window") == 0) {
            window_at = e;
        } else if (strcmp(e->text, "buckets") == 0) {
            buckets_at = e;
        } else {
            return bad(err, file, e, JD_EINVAL,
                       "computed.%s: unknown key '%.64s' (kinds: count, sum, min, max, last, first_seen, "
                       "last_seen; options: property, window, buckets)", name, e->text);
        }
    }
    if (!kind_at)
        return bad(err, file, k, JD_EINVAL,
                   "computed.%s: needs one of count, sum, min, max, last, first_seen or last_seen", name);
    const jd_yaml_node *ev = kind_at->value;
    if (ev->kind != JD_YAML_SCALAR || !*ev->text)
        return bad(err, file, ev, JD_EINVAL, "computed.%s.%s: expected an event name", name, kinds[c->kind].name);
    c->name = jd_xstrdup(name);
    c->event = jd_xstrdup(ev->text);
    c->event_len = (uint32_t)strlen(ev->text);

    if (kinds[c->kind].property && !prop_at)
        return bad(err, file, kind_at, JD_EINVAL, "computed.%s: %s needs a property", name, kinds[c->kind].name);
    if (prop_at) {
        const jd_yaml_node *pv = prop_at->value;
        if (!kinds[c->kind].property)
            return bad(err, file, prop_at, JD_EINVAL, "computed.%s.property: %s takes no property", name,
                       kinds[c->kind].name);
        if (pv->kind != JD_YAML_SCALAR || !path_ok(pv->text))
            return bad(err, file, pv, JD_EINVAL,
                       "computed.%s.property: expected a dotted path inside properties, like total or cart.value",
                       name);
        c->property = jd_xstrdup(pv->text);
    }
    if (window_at) {
        const jd_yaml_node *wv = window_at->value;
        uint64_t w = 0;
        if (wv->kind != JD_YAML_SCALAR || jd_duration_parse(wv->text, &w) != JD_OK)
            return bad(err, file, wv, JD_EINVAL, "computed.%s.window: expected a duration like 7d, 24h or 30m, got '%.64s'",
                       name, wv->kind == JD_YAML_SCALAR ? wv->text : "(not a single value)");
        if (w < CT_MIN_WINDOW_US || w > CT_MAX_WINDOW_US)
            return bad(err, file, wv, JD_EINVAL, "computed.%s.window: %s is out of range 1m..3650d", name, wv->text);
        c->window_us = w;
        c->buckets = JD_DEF_COMPUTED_BUCKETS;
    }
    if (buckets_at) {
        const jd_yaml_node *bv = buckets_at->value;
        if (!window_at)
            return bad(err, file, buckets_at, JD_EINVAL, "computed.%s.buckets: only a window has buckets", name);
        char *end = NULL;
        unsigned long n = bv->kind == JD_YAML_SCALAR && bv->text[0] >= '0' && bv->text[0] <= '9'
                              ? strtoul(bv->text, &end, 10) : 0;
        if (!end || *end || n < 2 || n > JD_MAX_COMPUTED_BUCKETS)
            return bad(err, file, bv, JD_EINVAL, "computed.%s.buckets: expected a whole number 2..64, got '%.64s'",
                       name, bv->kind == JD_YAML_SCALAR ? bv->text : "(not a single value)");
        c->buckets = (uint32_t)n;
    }
    if (c->window_us) {
        c->width_us = c->window_us / c->buckets;
        c->bucketed = kinds[c->kind].bucketed;
    }
    c->id = def_id(c);
    return JD_OK;
}

int prof_computed_parse(const jd_yaml_node *map, const char *file, prof_computed_defs **out, jd_err *err)
{
    *out = NULL;
    if (!map || (map->kind == JD_YAML_SCALAR && !map->quoted && (!*map->text || strcmp(map->text, "~") == 0 ||
                                                                  strcmp(map->text, "null") == 0)))
        return JD_OK;   /* `computed:` with nothing under it */
    if (map->kind != JD_YAML_MAP)
        return bad(err, file, map, JD_EINVAL,
                   "computed: expected a map of definitions, like logins_7d: { count: Logged In, window: 7d }");
    prof_computed_defs *d = jd_xcalloc(1, sizeof *d);
    int rc = JD_OK;
    for (const jd_yaml_node *k = map->child; k; k = k->next) {
        if (d->n == JD_MAX_COMPUTED) {
            rc = bad(err, file, k, JD_ELIMIT, "computed: more than %d definitions", JD_MAX_COMPUTED);
            goto out;
        }
        rc = parse_def(k, file, &d->d[d->n], err);
        d->n++;   /* counted even on error, so that destroy frees its strings */
        if (rc != JD_OK) goto out;
    }
    d->by_event = jd_map_create(d->n);
    uint32_t nm = 0;
    for (uint32_t i = 0; i < d->n; i++) {
        struct prof_cdef *c = &d->d[i];
        uint64_t *m = jd_map_get(d->by_event, c->event, c->event_len);
        if (!m) {
            m = &d->masks[nm++];
            jd_map_put(d->by_event, c->event, c->event_len, m);
        }
        *m |= UINT64_C(1) << i;
    }
out:
    if (rc != JD_OK || d->n == 0) {
        prof_computed_defs_destroy(d);
        d = NULL;
    }
    *out = d;
    return rc;
}

uint64_t prof__computed_mask(const prof_computed_defs *d, jd_str ev)
{
    if (!d || !d->n || ev.n == 0) return 0;
    const uint64_t *m = jd_map_get(d->by_event, ev.p, ev.n);
    return m ? *m : 0;
}

bool prof__computed_needs_props(const prof_computed_defs *d, uint64_t mask)
{
    for (uint32_t i = 0; i < d->n; i++)
        if ((mask >> i & 1) && d->d[i].property) return true;
    return false;
}

/* ---- values ------------------------------------------------------------- */

typedef union ct_val { uint64_t u; int64_t i; double f; } ct_val;

static ct_val rdv(const uint8_t *p) { ct_val v; v.i = prof__rd64(p); return v; }
static void wrv(uint8_t *p, ct_val v) { prof__wr64(p, v.i); }

static int64_t floor_div(int64_t a, int64_t b) { int64_t q = a / b; return (a % b != 0 && a < 0) ? q - 1 : q; }
static uint32_t floor_mod(int64_t a, uint32_t b)
{
    int64_t r = a % (int64_t)b;
    return (uint32_t)(r < 0 ? r + b : r);
}

/* Folds x into *v for the kind. False (and *v unchanged) when a sum would
 * stop being finite (3). */
static bool combine(prof_ct_kind k, ct_val *v, ct_val x)
{
    switch (k) {
    case PROF_CT_COUNT: v->u = v->u > UINT64_MAX - x.u ? UINT64_MAX : v->u + x.u; return true;
    case PROF_CT_SUM: {
        double s = v->f + x.f;
        if (!isfinite(s)) return false;
        v->f = s;
        return true;
    }
    case PROF_CT_MIN:        if (x.f < v->f) v->f = x.f; return true;
    case PROF_CT_MAX:        if (x.f > v->f) v->f = x.f; return true;
    case PROF_CT_FIRST_SEEN: if (x.i < v->i) v->i = x.i; return true;
    case PROF_CT_LAST_SEEN:  if (x.i > v->i) v->i = x.i; return true;
    default: JD_ASSERT(0); return false;
    }
}

/* The entry for definition di in p's blob, or NULL. */
static uint8_t *ct_find(const prof *p, unsigned di, uint32_t *len)
{
    const struct prof_rich *r = p->rich;
    if (!r) return NULL;
    for (uint32_t i = 0; i < r->computed_len;) {
        uint32_t l = prof__rd32(r->computed + i + 1);
        if (r->computed[i] == di) {
            *len = l;
            return r->computed + i;
        }
        i += CT_HDR + l;
    }
    return NULL;
}

/* Puts definition di's entry (payload pl, n bytes) into p's blob: in place of
 * the old one if any (keeping its position), else at the end. */
static void ct_put(prof_store *s, prof *p, unsigned di, const uint8_t *pl, uint32_t n)
{
    struct prof_rich nr = prof__rich_get(p);
    uint32_t old_n = 0;
    uint8_t *old = ct_find(p, di, &old_n);
    size_t at = old ? (size_t)(old - nr.computed) : nr.computed_len;
    size_t drop = old ? CT_HDR + old_n : 0;
    size_t len = nr.computed_len - drop + CT_HDR + n;
    JD_ASSERT(len <= UINT32_MAX);
    uint8_t *b = jd_xmalloc(len);
    if (at) memcpy(b, nr.computed, at);
    b[at] = (uint8_t)di;
    prof__wr32(b + at + 1, n);
    memcpy(b + at + CT_HDR, pl, n);
    if (nr.computed_len > at + drop) memcpy(b + at + CT_HDR + n, nr.computed + at + drop, nr.computed_len - at - drop);
    nr.computed = b;
    nr.computed_len = (uint32_t)len;
    prof__rich_set(s, p, &nr);
}

/* Follows a dotted path inside props; NULL if a step is missing or null. */
static json_object *prop_get(json_object *props, const char *path)
{
    json_object *o = props;
    char seg[CT_MAX_PATH + 1];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        memcpy(seg, path, n);
        seg[n] = 0;
        json_object *next = NULL;
        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, seg, &next)) return NULL;
        o = next;
        path += n + (dot ? 1 : 0);
    }
    return o;
}

static void apply_last(prof_store *s, prof *p, unsigned di, json_object *val, int64_t ts)
{
    if (!val) return;   /* missing or null: the previous value stays */
    size_t tl = 0;
    const char *t = json_object_to_json_string_length(val, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &tl);
    if (tl > JD_MAX_COMPUTED_VALUE_BYTES) {   /* (4) */
        p->limited++;
        return;
    }
    uint32_t len = 0;
    uint8_t *e = ct_find(p, di, &len);
    if (e && ts < prof__rd64(e + CT_HDR)) return;   /* (4): an older event arrived late */
    if (e && len == 8 + tl) {
        prof__wr64(e + CT_HDR, ts);
        memcpy(e + CT_HDR + 8, t, tl);
        return;
    }
    uint8_t pl[8 + JD_MAX_COMPUTED_VALUE_BYTES];
    prof__wr64(pl, ts);
    memcpy(pl + 8, t, tl);
    ct_put(s, p, di, pl, (uint32_t)(8 + tl));
}

static void apply_one(prof_store *s, prof *p, unsigned di, const struct prof_cdef *c, json_object *props, int64_t ts)
{
    json_object *val = c->property ? prop_get(props, c->property) : NULL;
    if (c->kind == PROF_CT_LAST) {
        apply_last(s, p, di, val, ts);
        return;
    }
    ct_val x = { 0 };
    switch (c->kind) {
    case PROF_CT_COUNT: x.u = 1; break;
    case PROF_CT_SUM: case PROF_CT_MIN: case PROF_CT_MAX:
        if (!json_object_is_type(val, json_type_int) && !json_object_is_type(val, json_type_double)) return;
        x.f = json_object_get_double(val);
        if (!isfinite(x.f)) return;   /* (3) */
        break;
    default: x.i = ts; break;   /* first_seen, last_seen */
    }
    uint32_t len = 0;
    uint8_t *e = ct_find(p, di, &len);
    if (!c->bucketed) {
        if (e) {
            ct_val v = rdv(e + CT_HDR);
            if (combine(c->kind, &v, x)) wrv(e + CT_HDR, v);   /* (5): in place */
        } else {
            uint8_t pl[8];
            wrv(pl, x);
            ct_put(s, p, di, pl, 8);
        }
        return;
    }
    int64_t k = floor_div(ts, (int64_t)c->width_us);
    uint32_t m = e ? len / CT_SLOT : 0;
    uint8_t *q = e ? e + CT_HDR : NULL;
    int64_t newest = m ? prof__rd64(q + (m - 1) * CT_SLOT) : k;
    if (k <= newest - (int64_t)c->buckets) return;   /* (6): older than the window keeps */
    uint32_t i = 0;
    while (i < m && prof__rd64(q + i * CT_SLOT) < k) i++;
    if (i < m && prof__rd64(q + i * CT_SLOT) == k) {   /* (5): in place */
        ct_val v = rdv(q + i * CT_SLOT + 8);
        if (combine(c->kind, &v, x)) wrv(q + i * CT_SLOT + 8, v);
        return;
    }
    /* A new bucket at i; then only the buckets within B of the newest stay (2). */
    uint8_t pl[(JD_MAX_COMPUTED_BUCKETS + 1) * CT_SLOT];
    if (i) memcpy(pl, q, i * CT_SLOT);
    prof__wr64(pl + i * CT_SLOT, k);
    wrv(pl + i * CT_SLOT + 8, x);
    if (m > i) memcpy(pl + (i + 1) * CT_SLOT, q + i * CT_SLOT, (m - i) * CT_SLOT);
    uint32_t n = m + 1, first = 0;
    int64_t top = prof__rd64(pl + (n - 1) * CT_SLOT);
    while (first < n && prof__rd64(pl + first * CT_SLOT) <= top - (int64_t)c->buckets) first++;
    ct_put(s, p, di, pl + first * CT_SLOT, (n - first) * CT_SLOT);
}

void prof__computed_apply(prof_store *s, prof *p, uint64_t mask, json_object *props, int64_t ts)
{
    const prof_computed_defs *d = s->lim.computed;
    for (uint32_t i = 0; i < d->n; i++)
        if (mask >> i & 1) apply_one(s, p, i, &d->d[i], props, ts);
}

/* ---- reading ------------------------------------------------------------ */

enum { R_ABSENT, R_U, R_F, R_TIME, R_JSON };

typedef struct ct_read {
    int      type;
    ct_val   v;
    const char *text;   /* R_JSON */
    uint32_t text_len;
} ct_read;

/* In the window ending at now (6)? */
static bool in_window(const struct prof_cdef *c, int64_t k, int64_t now)
{
    int64_t kn = floor_div(now, (int64_t)c->width_us);
    return k != CT_EMPTY && k <= kn && k > kn - (int64_t)c->buckets;
}

static ct_read read_one(const struct prof_cdef *c, const uint8_t *e, uint32_t len, int64_t now)
{
    ct_read r = { R_ABSENT, { 0 }, NULL, 0 };
    int type = c->kind == PROF_CT_COUNT ? R_U
             : c->kind == PROF_CT_SUM || c->kind == PROF_CT_MIN || c->kind == PROF_CT_MAX ? R_F
             : c->kind == PROF_CT_LAST ? R_JSON : R_TIME;
    const uint8_t *pl = e ? e + CT_HDR : NULL;
    if (pl && !c->bucketed) {
        int64_t at = prof__rd64(pl);   /* last: at_us; last_seen: the time itself */
        if (!c->window_us || in_window(c, floor_div(at, (int64_t)c->width_us), now)) {
            r.type = type;
            r.v = rdv(pl);
            if (type == R_JSON) {
                r.text = (const char *)pl + 8;
                r.text_len = len - 8;
            }
        }
    } else if (pl) {
        bool any = false;
        for (uint32_t i = 0; i < len / CT_SLOT; i++) {
            const uint8_t *q = pl + i * CT_SLOT;
            if (!in_window(c, prof__rd64(q), now)) continue;
            ct_val x = rdv(q + 8);
            if (!any) r.v = x;
            else if (!combine(c->kind, &r.v, x)) r.v.f = r.v.f + x.f > 0 ? DBL_MAX : -DBL_MAX;   /* a sum past a double */
            any = true;
        }
        if (any) r.type = type;
    }
    if (r.type == R_ABSENT && (c->kind == PROF_CT_COUNT || c->kind == PROF_CT_SUM)) {
        r.type = type;   /* no events: 0 */
        r.v.u = 0;
        if (type == R_F) r.v.f = 0;
    }
    return r;
}

/* Shortest text that reads back as d ("30", "59.99", "1e+300"). */
static size_t fmt_double(double d, char out[40])
{
    int n = snprintf(out, 40, "%.15g", d);
    if (strtod(out, NULL) != d) n = snprintf(out, 40, "%.17g", d);
    return (size_t)n;
}

int prof__computed_json(const prof_store *s, const prof *p, int64_t now_us, jd_buf *b)
{
    const prof_computed_defs *d = s->lim.computed;
    int rc = jd_buf_add(b, "{", 1);
    bool first = true;
    for (uint32_t i = 0; d && i < d->n; i++) {
        uint32_t len = 0;
        const uint8_t *e = ct_find(p, i, &len);
        ct_read r = read_one(&d->d[i], e, len, now_us);
        if (r.type == R_ABSENT) continue;
        if (!first) rc |= jd_buf_add(b, ",", 1);
        first = false;
        rc |= jd_buf_add_json_str(b, d->d[i].name, strlen(d->d[i].name)) | jd_buf_add(b, ":", 1);
        char t[JD_TIME_TEXT > 40 ? JD_TIME_TEXT : 40];
        switch (r.type) {
        case R_U: rc |= jd_buf_addf(b, "%llu", (unsigned long long)(r.v.u > INT64_MAX ? INT64_MAX : r.v.u)); break;
        case R_F: rc |= jd_buf_add(b, t, fmt_double(r.v.f, t)); break;
        case R_TIME: rc |= jd_buf_add(b, "\"", 1) | jd_buf_add(b, t, jd_time_format(r.v.i, t)) | jd_buf_add(b, "\"", 1); break;
        default: rc |= jd_buf_add(b, r.text, r.text_len); break;
        }
    }
    return rc | jd_buf_add(b, "}", 1);
}

json_object *prof__computed_view(prof_store *s, const prof *p, int64_t now_us)
{
    const prof_computed_defs *d = s->lim.computed;
    json_object *o = json_object_new_object();
    for (uint32_t i = 0; d && i < d->n; i++) {
        uint32_t len = 0;
        const uint8_t *e = ct_find(p, i, &len);
        ct_read r = read_one(&d->d[i], e, len, now_us);
        json_object *v = NULL;
        char t[JD_TIME_TEXT > 40 ? JD_TIME_TEXT : 40];
        switch (r.type) {
        case R_ABSENT: continue;
        case R_U: v = json_object_new_int64(r.v.u > INT64_MAX ? INT64_MAX : (int64_t)r.v.u); break;
        case R_F: fmt_double(r.v.f, t); v = json_object_new_double_s(r.v.f, t); break;
        case R_TIME: v = json_object_new_string_len(t, (int)jd_time_format(r.v.i, t)); break;
        default: v = prof__stored_value(s, r.text, r.text_len); break;
        }
        json_object_object_add(o, d->d[i].name, v);
    }
    return o;
}

/* ---- snapshot ----------------------------------------------------------- */

void prof__computed_encode(const prof_store *s, const prof *p, jd_buf *b)
{
    const prof_computed_defs *d = s->lim.computed;
    const struct prof_rich *r = p->rich;
    uint32_t n = r ? r->computed_len : 0, entries = 0;
    for (uint32_t i = 0; i < n; entries++) i += CT_HDR + prof__rd32(r->computed + i + 1);
    uint8_t t[CT_SNAP_HDR];
    prof__wr32(t, n + entries * (CT_SNAP_HDR - CT_HDR));
    jd_buf_add(b, t, 4);
    for (uint32_t i = 0; i < n;) {
        uint32_t len = prof__rd32(r->computed + i + 1);
        prof__wr64(t, (int64_t)d->d[r->computed[i]].id);
        prof__wr32(t + 8, len);
        jd_buf_add(b, t, CT_SNAP_HDR);
        jd_buf_add(b, r->computed + i + CT_HDR, len);
        i += CT_HDR + len;
    }
}

/* Could bucket k hold an event (a time that fits in an i64)? Bytes from disk
 * are input: outside this range, newest - B would overflow. */
static bool bucket_ok(const struct prof_cdef *c, int64_t k)
{
    return k >= floor_div(INT64_MIN, (int64_t)c->width_us) && k <= INT64_MAX / (int64_t)c->width_us;
}

/* Checks a payload against its definition (snapshot.c invariant 1: the
 * bytes are input). NULL if good, else what is wrong. */
static const char *check_payload(prof_store *s, const struct prof_cdef *c, const uint8_t *pl, uint32_t len)
{
    if (c->kind == PROF_CT_LAST) {
        if (len <= 8 || len - 8 > JD_MAX_COMPUTED_VALUE_BYTES) return "bad computed value length";
        bool ok = false;
        json_object *v = prof__parse_value(s, pl + 8, len - 8, &ok);
        json_object_put(v);
        return ok && v ? NULL : "bad computed value";   /* (4): not null */
    }
    bool num = c->kind == PROF_CT_SUM || c->kind == PROF_CT_MIN || c->kind == PROF_CT_MAX;
    if (!c->bucketed) {
        if (len != 8) return "bad computed value length";
        return num && !isfinite(rdv(pl).f) ? "bad computed number" : NULL;
    }
    if (len == 0 || len % CT_SLOT || len / CT_SLOT > c->buckets) return "bad computed value length";
    uint32_t m = len / CT_SLOT;
    int64_t newest = prof__rd64(pl + (m - 1) * CT_SLOT);
    if (!bucket_ok(c, newest)) return "bad computed bucket";
    for (uint32_t i = 0; i < m; i++) {   /* (2) */
        int64_t k = prof__rd64(pl + i * CT_SLOT);
        ct_val v = rdv(pl + i * CT_SLOT + 8);
        if (!bucket_ok(c, k) || (i && k <= prof__rd64(pl + (i - 1) * CT_SLOT)) || k <= newest - (int64_t)c->buckets)
            return "bad computed bucket";
        if (num && !isfinite(v.f)) return "bad computed number";
        if (c->kind == PROF_CT_FIRST_SEEN && floor_div(v.i, (int64_t)c->width_us) != k) return "bad computed bucket";
    }
    return NULL;
}

/* A snapshot before version 6 kept every bucket of a window in a ring of B
 * slots (bucket k in slot k mod B, CT_EMPTY when none): the non-empty ones,
 * in order, within B of the newest, are today's payload. Returns its length
 * in out (len bytes at most), or UINT32_MAX when the ring is malformed. */
static uint32_t from_ring(const struct prof_cdef *c, const uint8_t *pl, uint32_t len, uint8_t *out)
{
    if (len != c->buckets * CT_SLOT) return UINT32_MAX;
    uint32_t m = 0;
    for (uint32_t i = 0; i < c->buckets; i++) {
        int64_t k = prof__rd64(pl + i * CT_SLOT);
        if (k == CT_EMPTY) continue;
        if (floor_mod(k, c->buckets) != i || !bucket_ok(c, k)) return UINT32_MAX;
        uint32_t j = m++;   /* insertion sort by k: B is at most 64 */
        while (j && prof__rd64(out + (j - 1) * CT_SLOT) > k) {
            memcpy(out + j * CT_SLOT, out + (j - 1) * CT_SLOT, CT_SLOT);
            j--;
        }
        memcpy(out + j * CT_SLOT, pl + i * CT_SLOT, CT_SLOT);
    }
    if (!m) return 0;
    int64_t newest = prof__rd64(out + (m - 1) * CT_SLOT);
    uint32_t first = 0;
    while (prof__rd64(out + first * CT_SLOT) <= newest - (int64_t)c->buckets) first++;
    memmove(out, out + first * CT_SLOT, (m - first) * CT_SLOT);
    return (m - first) * CT_SLOT;
}

int prof__computed_decode(prof_store *s, const uint8_t *src, size_t n, uint8_t **out, uint32_t *out_len,
                          size_t *bad_at, const char **what)
{
    const prof_computed_defs *d = s->lim.computed;
    uint64_t seen = 0;
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    int rc = JD_ECORRUPT;
    *out = NULL;
    *out_len = 0;
    for (size_t i = 0; i < n;) {
        *bad_at = i;
        if (n - i < CT_SNAP_HDR) { *what = "truncated computed header"; goto out; }
        uint64_t id = (uint64_t)prof__rd64(src + i);
        uint32_t len = prof__rd32(src + i + 8);
        const uint8_t *pl = src + i + CT_SNAP_HDR;
        if (len > n - i - CT_SNAP_HDR) { *what = "computed length past its set"; goto out; }
        i += CT_SNAP_HDR + len;
        uint32_t di = 0;
        while (di < prof_computed_count(d) && d->d[di].id != id) di++;
        if (di == prof_computed_count(d)) continue;   /* removed or changed since: dropped */
        if (seen >> di & 1) { *what = "duplicate computed value"; goto out; }
        seen |= UINT64_C(1) << di;
        uint8_t ring[JD_MAX_COMPUTED_BUCKETS * CT_SLOT];
        if (s->computed_ring && d->d[di].bucketed) {   /* an older snapshot's dense ring */
            uint32_t l2 = from_ring(&d->d[di], pl, len, ring);
            if (l2 == UINT32_MAX) { *what = "bad computed bucket"; *bad_at += CT_SNAP_HDR; goto out; }
            if (l2 == 0) continue;
            pl = ring;
            len = l2;
        }
        if ((*what = check_payload(s, &d->d[di], pl, len))) {
            *bad_at += CT_SNAP_HDR;
            goto out;
        }
        uint8_t h[CT_HDR];
        h[0] = (uint8_t)di;
        prof__wr32(h + 1, len);
        jd_buf_add(&b, h, CT_HDR);
        jd_buf_add(&b, pl, len);
    }
    if (b.len > UINT32_MAX) { *what = "computed values too long"; goto out; }
    if (b.len) {   /* an exact allocation: heap counts prof__alloc_size(len) */
        *out_len = (uint32_t)b.len;
        *out = memcpy(jd_xmalloc(b.len), b.data, b.len);
    }
    rc = JD_OK;
out:
    jd_buf_release(&b);
    return rc;
}

/* ---- merging two profiles' values (merge.c) ------------------------------ */

/* Merges one definition's payloads (both present) into out; returns the
 * length. all time: fold as an event would (a sum that would stop being
 * finite keeps the survivor's, (3)); last: the later at_us wins, equal times
 * the survivor's (a); windowed last_seen: the later; bucketed: bucket by
 * bucket on k, then only those within B of the newest stay (2). */
static uint32_t merge_one(const struct prof_cdef *c, const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl,
                          uint8_t *out)
{
    if (c->kind == PROF_CT_LAST) {
        const uint8_t *w = prof__rd64(b) > prof__rd64(a) ? b : a;
        uint32_t wl = w == b ? bl : al;
        memcpy(out, w, wl);
        return wl;
    }
    if (!c->bucketed) {
        ct_val v = rdv(a);
        combine(c->kind, &v, rdv(b));   /* false: v stays the survivor's */
        wrv(out, v);
        return 8;
    }
    uint32_t ma = al / CT_SLOT, mb = bl / CT_SLOT, i = 0, j = 0, m = 0;
    while (i < ma || j < mb) {   /* both ascending in k: a sorted union */
        int64_t ka = i < ma ? prof__rd64(a + i * CT_SLOT) : INT64_MAX;
        int64_t kb = j < mb ? prof__rd64(b + j * CT_SLOT) : INT64_MAX;
        uint8_t *o = out + m++ * CT_SLOT;
        if (ka < kb) { memcpy(o, a + i++ * CT_SLOT, CT_SLOT); continue; }
        if (kb < ka) { memcpy(o, b + j++ * CT_SLOT, CT_SLOT); continue; }
        ct_val v = rdv(a + i++ * CT_SLOT + 8);
        combine(c->kind, &v, rdv(b + j++ * CT_SLOT + 8));
        prof__wr64(o, ka);
        wrv(o + 8, v);
    }
    int64_t newest = prof__rd64(out + (m - 1) * CT_SLOT);
    uint32_t first = 0;
    while (prof__rd64(out + first * CT_SLOT) <= newest - (int64_t)c->buckets) first++;
    memmove(out, out + first * CT_SLOT, (m - first) * CT_SLOT);
    return (m - first) * CT_SLOT;
}

uint8_t *prof__computed_merge(const prof_store *s, const uint8_t *sb, uint32_t sl, const uint8_t *lb, uint32_t ll,
                              uint32_t *out_len)
{
    const prof_computed_defs *d = s->lim.computed;
    jd_buf b;
    jd_buf_init(&b, SIZE_MAX);
    /* The survivor's entries in their order (merged with the loser's), then
     * the loser's that the survivor lacks. */
    const uint8_t *lent[JD_MAX_COMPUTED] = { 0 };
    for (uint32_t i = 0; i < ll; i += CT_HDR + prof__rd32(lb + i + 1)) lent[lb[i]] = lb + i;
    for (uint32_t i = 0; i < sl; i += CT_HDR + prof__rd32(sb + i + 1)) {
        unsigned di = sb[i];
        uint32_t len = prof__rd32(sb + i + 1);
        const uint8_t *le = lent[di];
        if (!le) {
            jd_buf_add(&b, sb + i, CT_HDR + len);
            continue;
        }
        uint8_t pl[8 + JD_MAX_COMPUTED_VALUE_BYTES + 2 * JD_MAX_COMPUTED_BUCKETS * CT_SLOT];
        uint32_t n = merge_one(&d->d[di], sb + i + CT_HDR, len, le + CT_HDR, prof__rd32(le + 1), pl);
        uint8_t h[CT_HDR];
        h[0] = (uint8_t)di;
        prof__wr32(h + 1, n);
        jd_buf_add(&b, h, CT_HDR);
        jd_buf_add(&b, pl, n);
        lent[di] = NULL;
    }
    for (uint32_t i = 0; i < ll; i += CT_HDR + prof__rd32(lb + i + 1))
        if (lent[lb[i]]) jd_buf_add(&b, lb + i, CT_HDR + prof__rd32(lb + i + 1));
    JD_ASSERT(b.len <= UINT32_MAX);
    *out_len = (uint32_t)b.len;
    uint8_t *out = b.len ? memcpy(jd_xmalloc(b.len), b.data, b.len) : NULL;   /* exact: heap counts it */
    jd_buf_release(&b);
    return out;
}
