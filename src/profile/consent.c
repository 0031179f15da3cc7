/* src/profile/consent.c -- prof_consent_allows: whether a person may get a
 * message of a topic on a channel (the rules are numbered in
 * include/journeyd/profile.h and stated for users in docs/api.md "Consent").
 *
 * Why these rules (the product decision, kept next to the code that makes it):
 *  - Exempt topics skip consent entirely, channel-level refusals included:
 *    "email": false is how a person unsubscribes from all (marketing) email,
 *    and a password reset or a receipt must still reach them. Braze,
 *    Customer.io and Iterable send transactional messages to unsubscribed
 *    people for the same reason; CAN-SPAM and the GDPR do not ask consent for
 *    them (they rest on the contract, not on consent).
 *  - The topic-level entry is the person's more specific word, so it wins over
 *    the channel-level one, with one exception: a channel-level refusal newer
 *    than a topic-level grant ("unsubscribe from all email" clicked after
 *    subscribing to the newsletter) refuses, or an opt-out would go unheeded.
 *    The converse is deliberate: a channel-level grant never undoes a
 *    topic-level refusal, whatever their times, because sign-up and login
 *    flows resend {"email": true} routinely and must not resubscribe someone
 *    who refused one topic; a preference center resubscribes by writing the
 *    topic.
 *  - No entry means refused unless the channel is listed in consent.opt_out:
 *    opt-in is the default because a wrong opt-in fails closed (a message
 *    not sent, visible in the journey's counts), while a wrong opt-out sends
 *    messages nobody agreed to (the GDPR and ePrivacy for email in the EU,
 *    the TCPA for SMS in the US). US marketing email is commonly opt-out
 *    (CAN-SPAM): `consent.opt_out: [email]` says so, per channel.
 *
 * Invariants:
 *  (1) Reads the store, the policy and its arguments only: no clock, no
 *      allocation, so journeys evaluating it replay the same.
 *  (2) An entry counts only when its value starts {"granted":true or
 *      {"granted":false (apply_consent in profile.c writes granted first; a
 *      merge or a snapshot keeps the bytes); anything else is absent.
 */
#include "profile_int.h"

#include <stdio.h>

typedef struct centry {
    bool found, granted;
    int64_t at;
    const char *src;   /* the source's JSON string body (escapes kept), or NULL */
    uint32_t srcn;
} centry;

static bool name_in(const char *const *l, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(l[i], name) == 0) return true;
    return false;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static bool lit(const char **p, const char *end, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(end - *p) < n || memcmp(*p, s, n) != 0) return false;
    *p += n;
    return true;
}

/* (2): {"granted":bool[,"source":"..."]...} -> e; false when unreadable. */
static bool read_value(const prof_tent *t, centry *e)
{
    if (t->str || t->vl < 2) return false;   /* a tombstone, or not an object */
    const char *p = t->v, *end = t->v + t->vl;
    p = skip_ws(p, end);
    if (!lit(&p, end, "{")) return false;
    p = skip_ws(p, end);
    if (!lit(&p, end, "\"granted\"")) return false;
    p = skip_ws(p, end);
    if (!lit(&p, end, ":")) return false;
    p = skip_ws(p, end);
    if (lit(&p, end, "true")) e->granted = true;
    else if (lit(&p, end, "false")) e->granted = false;
    else return false;
    e->found = true;
    e->at = t->at;
    e->src = NULL;
    e->srcn = 0;
    p = skip_ws(p, end);
    if (lit(&p, end, ",") && (p = skip_ws(p, end), lit(&p, end, "\"source\"")) && (p = skip_ws(p, end), lit(&p, end, ":")) &&
        (p = skip_ws(p, end), lit(&p, end, "\""))) {
        const char *q = p;
        while (q < end && *q != '"') q += *q == '\\' && q + 1 < end ? 2 : 1;
        if (q < end) {
            e->src = p;
            e->srcn = (uint32_t)(q - p);
        }
    }
    return true;
}

/* "<what> granted|refused by <source> at <time>" */
static int describe(char *why, size_t cap, const char *what, const centry *e)
{
    char t[JD_TIME_TEXT];
    jd_time_format(e->at, t);
    if (e->src) return snprintf(why, cap, "%s %s by %.*s at %s", what, e->granted ? "granted" : "refused", (int)e->srcn, e->src, t);
    return snprintf(why, cap, "%s %s at %s", what, e->granted ? "granted" : "refused", t);
}

bool prof_consent_allows(const prof_store *s, const char *key, size_t kn, const char *channel, const char *topic,
                         char *why, size_t whycap)
{
    char tkey[2 * JD_MAX_CONSENT_NAME_BYTES + 200], scratch[1];
    if (!why || !whycap) { why = scratch; whycap = sizeof scratch; }
    size_t cn = channel ? strlen(channel) : 0, tn = topic ? strlen(topic) : 0;
    if (!cn || cn > JD_MAX_CONSENT_NAME_BYTES || memchr(channel, '/', cn)) {
        snprintf(why, whycap, "invalid channel");
        return false;
    }
    const jd_consent_cfg *pol = s->lim.consent;
    if (tn && pol && name_in((const char *const *)pol->exempt, pol->n_exempt, topic)) {   /* rule 1 */
        snprintf(why, whycap, "exempt topic %s", topic);
        return true;
    }
    /* A topic too long for tkey is longer than any consent key (128 bytes):
     * it can have no entry, and is then compared against nothing. */
    bool topic_fits = tn && cn + 1 + tn < sizeof tkey;
    if (topic_fits) snprintf(tkey, sizeof tkey, "%s/%s", channel, topic);
    else if (tn) snprintf(tkey, sizeof tkey, "%s/%.*s...", channel, 64, topic);
    centry ce = { 0 }, te = { 0 };
    const prof *p = kn ? prof__index_get(&s->by_key, key, kn) : NULL;
    const struct prof_rich *r = p ? p->rich : NULL;
    prof_titer it;
    prof_tent t;
    prof__titer_init(&it, r ? r->consent : NULL, r ? r->consent_len : 0);
    while (prof__tset_next(s, &it, &t)) {
        if (t.kl == cn && memcmp(t.k, channel, cn) == 0) read_value(&t, &ce);
        else if (topic_fits && t.kl == cn + 1 + tn && memcmp(t.k, tkey, t.kl) == 0) read_value(&t, &te);
    }
    if (te.found && te.granted && ce.found && !ce.granted && ce.at > te.at) {   /* rule 2 */
        char t2[JD_TIME_TEXT];
        jd_time_format(te.at, t2);
        int n = describe(why, whycap, channel, &ce);
        if (n >= 0 && (size_t)n < whycap) snprintf(why + n, whycap - (size_t)n, " (after %s was granted at %s)", tkey, t2);
        return false;
    }
    if (te.found) {   /* rule 3 */
        describe(why, whycap, tkey, &te);
        return te.granted;
    }
    if (ce.found) {   /* rule 4 */
        describe(why, whycap, channel, &ce);
        return ce.granted;
    }
    const char *what = tn ? tkey : channel;   /* rule 5 */
    if (pol && name_in((const char *const *)pol->opt_out, pol->n_opt_out, channel)) {
        snprintf(why, whycap, "%s is opt-out: no refusal of %s", channel, what);
        return true;
    }
    snprintf(why, whycap, "no consent for %s", what);
    return false;
}
