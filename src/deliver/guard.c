/* src/deliver/guard.c -- guardrails from the configuration: frequency caps and
 * quiet hours (`guardrails:`, docs/delivery.md "Guardrails").
 *
 * Only the configuration lives here: the shard that owns a person applies
 * the rules when a send intent is produced (src/engine/outbox.c), from the
 * person's send history and time zone, so the decision is a function of the
 * log like everything the shard decides.
 */
#include "journeyd/deliver.h"
#include "journeyd/config.h"
#include "journeyd/tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad(jd_err *err, const char *file, const jd_yaml_node *at, const char *fmt, const char *key, const char *what)
{
    char where[sizeof err->where];
    snprintf(where, sizeof where, "%s:%u:%u", file, at ? at->line : 0, at ? at->col : 0);
    return jd_err_set(err, JD_EINVAL, where, fmt, key, what);
}

/* A name or "*" (any): [a-z0-9_-]{1,64}, like channels and categories. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (strcmp(s, "*") == 0) return true;
    if (n == 0 || n > DLV_GUARD_NAME) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-')) return false;
    return true;
}

static int hhmm(const char *s, int *out)
{
    int h, m;
    char tail;
    if (sscanf(s, "%d:%d%c", &h, &m, &tail) != 2 || h < 0 || h > 23 || m < 0 || m > 59 || strlen(s) != 5) return JD_EINVAL;
    *out = h * 60 + m;
    return JD_OK;
}

typedef struct field { const char *key; char *dst; } field;

static int parse_names(const jd_yaml_node *item, const char *file, const char *path, field *f, size_t nf,
                       const char *const *others, jd_err *err)
{
    for (const jd_yaml_node *k = item->child; k; k = k->next) {
        bool known = false;
        for (size_t i = 0; i < nf; i++) {
            if (strcmp(k->text, f[i].key) != 0) continue;
            known = true;
            char key[160];
            snprintf(key, sizeof key, "%s.%s", path, k->text);
            if (k->value->kind != JD_YAML_SCALAR || !name_ok(k->value->text))
                return bad(err, file, k->value, "%s: %s", key, "expected a name of 1..64 [a-z0-9_-], or \"*\" for any");
            snprintf(f[i].dst, DLV_GUARD_NAME + 1, "%s", k->value->text);
        }
        for (size_t i = 0; others[i] && !known; i++) known = strcmp(k->text, others[i]) == 0;
        if (!known) {
            char key[160];
            snprintf(key, sizeof key, "%s.%s", path, k->text);
            return bad(err, file, k, "%s: %s", key, "unknown key");
        }
    }
    return JD_OK;
}

static int parse_cap(const jd_yaml_node *item, const char *file, size_t i, dlv_cap *c, jd_err *err)
{
    char path[64];
    snprintf(path, sizeof path, "guardrails.caps[%zu]", i);
    if (item->kind != JD_YAML_MAP) return bad(err, file, item, "%s: %s", path, "expected a map like { channel: email, category: marketing, max: 3, per: 7d }");
    snprintf(c->channel, sizeof c->channel, "%s", "*");
    snprintf(c->category, sizeof c->category, "%s", "*");
    snprintf(c->journey, sizeof c->journey, "%s", "*");
    field f[] = { { "channel", c->channel }, { "category", c->category }, { "journey", c->journey } };
    static const char *const others[] = { "max", "per", NULL };
    int rc = parse_names(item, file, path, f, 3, others, err);
    if (rc != JD_OK) return rc;
    const jd_yaml_node *mx = jd_yaml_get(item, "max"), *per = jd_yaml_get(item, "per");
    char key[96];
    snprintf(key, sizeof key, "%s.max", path);
    char *end = NULL;
    unsigned long v = mx && mx->kind == JD_YAML_SCALAR ? strtoul(mx->text, &end, 10) : 0;
    if (!mx || mx->kind != JD_YAML_SCALAR || !end || *end || v < 1 || v > DLV_GUARD_MAX_SENDS)
        return bad(err, file, mx ? mx : item, "%s: %s", key, "expected a whole number of messages from 1 to 64");
    c->max = (uint32_t)v;
    snprintf(key, sizeof key, "%s.per", path);
    if (!per || per->kind != JD_YAML_SCALAR || jd_duration_parse(per->text, &c->per_us) != JD_OK || c->per_us == 0 ||
        c->per_us > 366 * JD_DAY)
        return bad(err, file, per ? per : item, "%s: %s", key, "expected a duration from 1s to 366d, like 7d or 12h");
    return JD_OK;
}

static int parse_quiet(const jd_yaml_node *item, const char *file, size_t i, dlv_quiet *q, jd_err *err)
{
    char path[64];
    snprintf(path, sizeof path, "guardrails.quiet_hours[%zu]", i);
    if (item->kind != JD_YAML_MAP) return bad(err, file, item, "%s: %s", path, "expected a map like { channel: sms, from: \"21:00\", to: \"08:00\" }");
    snprintf(q->channel, sizeof q->channel, "%s", "*");
    snprintf(q->zone_trait, sizeof q->zone_trait, "%s", "timezone");
    snprintf(q->default_zone, sizeof q->default_zone, "%s", "UTC");
    field f[] = { { "channel", q->channel } };
    static const char *const others[] = { "from", "to", "zone_trait", "default_zone", NULL };
    int rc = parse_names(item, file, path, f, 1, others, err);
    if (rc != JD_OK) return rc;
    const char *keys[2] = { "from", "to" };
    int *dst[2] = { &q->from_min, &q->to_min };
    for (int k = 0; k < 2; k++) {
        const jd_yaml_node *v = jd_yaml_get(item, keys[k]);
        char key[96];
        snprintf(key, sizeof key, "%s.%s", path, keys[k]);
        if (!v || v->kind != JD_YAML_SCALAR || hhmm(v->text, dst[k]) != JD_OK)
            return bad(err, file, v ? v : item, "%s: %s", key, "expected a local time HH:MM, 00:00 to 23:59, in quotes");
    }
    if (q->from_min == q->to_min) return bad(err, file, item, "%s: %s", path, "from and to are the same time: the window would be empty or all day");
    const jd_yaml_node *zt = jd_yaml_get(item, "zone_trait"), *dz = jd_yaml_get(item, "default_zone");
    if (zt) {
        if (zt->kind != JD_YAML_SCALAR || !*zt->text || strlen(zt->text) > DLV_GUARD_NAME)
            return bad(err, file, zt, "%s.zone_trait: %s", path, "expected a trait name");
        snprintf(q->zone_trait, sizeof q->zone_trait, "%s", zt->text);
    }
    if (dz) {
        if (dz->kind != JD_YAML_SCALAR || strlen(dz->text) > DLV_GUARD_NAME || !jd_tz_valid(dz->text))
            return bad(err, file, dz, "%s.default_zone: %s", path, "expected an IANA time zone such as Europe/Paris");
        snprintf(q->default_zone, sizeof q->default_zone, "%s", dz->text);
    }
    return JD_OK;
}

int dlv_guards_parse(const jd_yaml_node *map, const char *file, dlv_guards **out, jd_err *err)
{
    *out = NULL;
    if (!map || (map->kind == JD_YAML_SCALAR && (!*map->text || strcmp(map->text, "~") == 0))) return JD_OK;
    if (map->kind != JD_YAML_MAP) return bad(err, file, map, "%s: %s", "guardrails", "expected a map with caps: and quiet_hours:");
    dlv_guards *g = jd_xcalloc(1, sizeof *g);
    int rc = JD_OK;
    for (const jd_yaml_node *k = map->child; k && rc == JD_OK; k = k->next) {
        bool caps = strcmp(k->text, "caps") == 0, quiet = strcmp(k->text, "quiet_hours") == 0;
        if (!caps && !quiet) { rc = bad(err, file, k, "guardrails.%s: %s", k->text, "unknown key (caps, quiet_hours)"); break; }
        if (k->value->kind != JD_YAML_SEQ) { rc = bad(err, file, k->value, "guardrails.%s: %s", k->text, "expected a list"); break; }
        size_t i = 0;
        for (const jd_yaml_node *it = k->value->child; it && rc == JD_OK; it = it->next, i++) {
            if (caps && g->ncaps == DLV_GUARD_MAX_RULES) { rc = bad(err, file, it, "guardrails.%s: %s", "caps", "more than 32 caps"); break; }
            if (quiet && g->nquiet == DLV_GUARD_MAX_RULES) { rc = bad(err, file, it, "guardrails.%s: %s", "quiet_hours", "more than 32 windows"); break; }
            rc = caps ? parse_cap(it, file, i, &g->caps[g->ncaps++], err) : parse_quiet(it, file, i, &g->quiet[g->nquiet++], err);
        }
    }
    if (rc != JD_OK) { free(g); return rc; }
    *out = g;
    return JD_OK;
}

void dlv_guards_destroy(dlv_guards *g) { free(g); }

bool dlv_guard_match(const char *rule, const char *value) { return strcmp(rule, "*") == 0 || (value && strcmp(rule, value) == 0); }

int dlv_quiet_until(const dlv_quiet *q, const char *zone, int64_t at_us, int64_t *until_us)
{
    jd_local l;
    jd_err err;
    const char *z = zone && jd_tz_valid(zone) ? zone : q->default_zone;
    *until_us = 0;
    if (jd_tz_to_local(z, at_us, &l, &err) != JD_OK) return JD_EINVAL;
    int now = l.hour * 60 + l.minute;
    bool in = q->from_min < q->to_min ? (now >= q->from_min && now < q->to_min)
                                      : (now >= q->from_min || now < q->to_min);   /* across midnight */
    if (!in) return JD_OK;
    return jd_tz_next_local(z, at_us, q->to_min / 60, q->to_min % 60, 0, until_us, &err) == JD_OK ? JD_OK : JD_EINVAL;
}
