/*
** src/deliver/links.c -- signed tracking links: the open pixel, click
** redirects and one-click unsubscribes (include/journeyd/deliver.h "Signed
** tracking links", docs/delivery.md "Feedback loop").
**
** A token is base64url (no padding) of payload || mac:
**
**   u8 version (1) | u8 flags (1: key is a userId, 2: a target follows) |
**   u64 intent id (LE) | u32 issue time, seconds (LE) |
**   5 x (u8 len | bytes): key, journey, node, channel, category |
**   [u16 len (LE) | target]                                       | mac[16]
**
**   mac = HMAC-SHA256(secret, "jdl1" || kind || payload)[0..16)
**
** Why the target is inside the token rather than a signed `?to=`: a query
** value reaches the handler decoded by the HTTP library, and any difference
** between what was signed and what is decoded ('+' versus space, a stray
** %-escape) would either break links or, worse, tempt a lenient check. A
** target in the payload is bytes the MAC covers, redirected to as they are.
** Templates still write the readable `{{ message.click_url }}?to={{ url |
** url_encode }}`; dlv_links_apply seals each such link after rendering.
**
** Invariants:
**  (1) A token verifies only under the secret and the kind it was made for;
**      changing any byte of it, cutting it, or lengthening it fails (the MAC
**      covers the whole payload, and the payload is parsed to its exact end).
**  (2) A sealed click's target is an absolute http(s) URL without control
**      characters, checked when sealing and again when verifying: no token
**      redirects anywhere else (no open redirect, no javascript: URL).
**  (3) Nothing here reads a clock: the issue time is the intent's record
**      time, so replay renders the same links.
*/
#include "journeyd/deliver.h"

#include <json-c/json.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#define MAC_BYTES   16u
#define HEAD_BYTES  14u   /* version, flags, intent id, issue time */
#define F_USER      1u
#define F_TARGET    2u
#define MIN_SECRET  16u

struct dlv_links {
    char    *secret;
    size_t   secret_n;
    char    *base;
    uint64_t max_age_us;
};

/* ---- base64url ------------------------------------------------------------- */

/* OpenSSL's base64 (the standard alphabet, padded) with '+/' spelled '-_' and
 * the padding dropped. */
static void b64_encode(jd_buf *out, const uint8_t *p, size_t n)
{
    char *s = jd_xmalloc(4 * ((n + 2) / 3) + 1);
    int k = EVP_EncodeBlock((unsigned char *)s, p, (int)n);
    while (k > 0 && s[k - 1] == '=') k--;
    for (int i = 0; i < k; i++) s[i] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
    jd_buf_add(out, s, (size_t)k);
    free(s);
}

static bool b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Decodes n chars into out (cap bytes); the decoded length, or -1 when a
 * char is outside the alphabet, the length is impossible, unused bits are set
 * (one token, one spelling: invariant (1)) or it does not fit. OpenSSL's
 * decoder is lenient (it trims whitespace and ignores unused bits), so the
 * result must encode back to exactly s. */
static long b64_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
    size_t pad = (4 - n % 4) % 4;
    if (pad == 3 || n > (size_t)INT_MAX - 3) return -1;
    char *t = jd_xmalloc(n + pad);
    uint8_t *d = jd_xmalloc(3 * ((n + pad) / 4) + 1);
    for (size_t i = 0; i < n; i++) t[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    memset(t + n, '=', pad);
    long k = EVP_DecodeBlock(d, (const unsigned char *)t, (int)(n + pad));
    k = k < 0 ? -1 : k - (long)pad;   /* OpenSSL counts the padding as zero bytes */
    jd_buf back;
    jd_buf_init(&back, n + 4);
    if (k >= 0) b64_encode(&back, d, (size_t)k);
    if (k < 0 || (size_t)k > cap || back.len != n || memcmp(back.data, s, n) != 0) k = -1;
    else memcpy(out, d, (size_t)k);
    jd_buf_release(&back);
    free(t);
    free(d);
    return k;
}

/* ---- the MAC --------------------------------------------------------------- */

static void mac_of(const dlv_links *l, dlv_link_kind k, const uint8_t *p, size_t n, uint8_t out[MAC_BYTES])
{
    uint8_t full[EVP_MAX_MD_SIZE], stack[1024], *msg = n + 5 <= sizeof stack ? stack : jd_xmalloc(n + 5);
    unsigned int fl = 0;
    memcpy(msg, "jdl1", 4);
    msg[4] = (uint8_t)k;
    memcpy(msg + 5, p, n);
    if (!HMAC(EVP_sha256(), l->secret, (int)l->secret_n, msg, n + 5, full, &fl))
        abort();   /* OpenSSL failing on SHA-256 is not an input error */
    if (msg != stack) free(msg);
    memcpy(out, full, MAC_BYTES);
}

/* ---- create ------------------------------------------------------------------ */

static bool is_http_url(const char *s, size_t n)
{
    size_t at = n >= 8 && strncmp(s, "https://", 8) == 0 ? 8 : n >= 7 && strncmp(s, "http://", 7) == 0 ? 7 : 0;
    if (!at || at == n || s[at] == '/') return false;   /* a host is required */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f) return false;   /* (2): no CR/LF, spaces, NULs */
    return true;
}

int dlv_links_create(dlv_links **out, const char *secret, const char *base_url, uint64_t max_age_us, jd_err *err)
{
    *out = NULL;
    if (!secret || strlen(secret) < MIN_SECRET)
        return jd_err_set(err, JD_EINVAL, "links.secret", "links.secret: at least %u bytes are required", MIN_SECRET);
    size_t bn = base_url ? strlen(base_url) : 0;
    while (bn && base_url[bn - 1] == '/') bn--;
    if (!bn || !is_http_url(base_url, bn) || memchr(base_url, '?', bn) || memchr(base_url, '#', bn))
        return jd_err_set(err, JD_EINVAL, "links.base_url", "links.base_url: expected an http(s) URL without query, got '%s'",
                          base_url ? base_url : "");
    dlv_links *l = jd_xcalloc(1, sizeof *l);
    l->secret = jd_xstrdup(secret);
    l->secret_n = strlen(secret);
    l->base = jd_xstrndup(base_url, bn);
    l->max_age_us = max_age_us;
    *out = l;
    return JD_OK;
}

void dlv_links_destroy(dlv_links *l)
{
    if (!l) return;
    OPENSSL_cleanse(l->secret, l->secret_n);
    free(l->secret);
    free(l->base);
    free(l);
}

const char *dlv_links_base(const dlv_links *l) { return l->base; }

/* ---- make ------------------------------------------------------------------------ */

static void put_le(jd_buf *b, uint64_t v, int n)
{
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
    jd_buf_add(b, t, (size_t)n);
}

char *dlv_link_url(const dlv_links *l, dlv_link_kind k, const dlv_link *in)
{
    const jd_str f[5] = { in->key, in->journey, in->node, in->channel, in->category };
    for (int i = 0; i < 5; i++)
        if (f[i].n > DLV_LINK_MAX_FIELD) return NULL;
    if (in->target.n && (in->target.n > DLV_LINK_MAX_TARGET || !is_http_url(in->target.p, in->target.n))) return NULL;
    jd_buf p, u;
    jd_buf_init(&p, 8192);
    uint8_t head[2] = { 1, (uint8_t)((in->key_is_user ? F_USER : 0) | (in->target.n ? F_TARGET : 0)) };
    jd_buf_add(&p, head, 2);
    put_le(&p, in->intent_id, 8);
    put_le(&p, (uint64_t)(in->at_us > 0 ? in->at_us / JD_SEC : 0) & 0xffffffffu, 4);
    for (int i = 0; i < 5; i++) {
        uint8_t n = (uint8_t)f[i].n;
        jd_buf_add(&p, &n, 1);
        jd_buf_add(&p, f[i].p, f[i].n);
    }
    if (in->target.n) {
        put_le(&p, in->target.n, 2);
        jd_buf_add(&p, in->target.p, in->target.n);
    }
    uint8_t mac[MAC_BYTES];
    mac_of(l, k, (const uint8_t *)p.data, p.len, mac);
    jd_buf_add(&p, mac, MAC_BYTES);
    jd_buf_init(&u, 16384);
    jd_buf_addf(&u, "%s/t/%c/", l->base, (char)k);
    b64_encode(&u, (const uint8_t *)p.data, p.len);
    char *s = jd_xstrndup(u.data, u.len);
    jd_buf_release(&p);
    jd_buf_release(&u);
    return s;
}

/* ---- verify ---------------------------------------------------------------------- */

int dlv_link_verify(const dlv_links *l, dlv_link_kind k, const char *token, int64_t now_us, dlv_link *out, void *scratch,
                    size_t cap, jd_err *err)
{
    memset(out, 0, sizeof *out);
    size_t tn = token ? strlen(token) : 0;
    uint8_t *p = scratch;
    long n = tn ? b64_decode(token, tn, p, cap) : -1;
    if (n < (long)(HEAD_BYTES + 5 + MAC_BYTES)) return jd_err_set(err, JD_EINVAL, "token", "malformed link");
    size_t pn = (size_t)n - MAC_BYTES;
    uint8_t want[MAC_BYTES];
    mac_of(l, k, p, pn, want);
    if (CRYPTO_memcmp(want, p + pn, MAC_BYTES) != 0) return jd_err_set(err, JD_EINVAL, "token", "the link's signature does not match");
    /* Signed by us, yet still parsed with every bound checked (a secret may
     * have signed an older format). */
    if (p[0] != 1 || (p[1] & ~(F_USER | F_TARGET))) return jd_err_set(err, JD_EINVAL, "token", "unknown link version");
    out->key_is_user = p[1] & F_USER;
    for (int i = 0; i < 8; i++) out->intent_id |= (uint64_t)p[2 + i] << (8 * i);
    uint64_t at = 0;
    for (int i = 0; i < 4; i++) at |= (uint64_t)p[10 + i] << (8 * i);
    out->at_us = (int64_t)(at * JD_SEC);
    size_t o = HEAD_BYTES;
    jd_str *f[5] = { &out->key, &out->journey, &out->node, &out->channel, &out->category };
    for (int i = 0; i < 5; i++) {
        if (o >= pn || p[o] > pn - o - 1) return jd_err_set(err, JD_EINVAL, "token", "malformed link");
        *f[i] = (jd_str){ (const char *)p + o + 1, p[o] };
        o += 1u + p[o];
    }
    if (p[1] & F_TARGET) {
        if (pn - o < 2) return jd_err_set(err, JD_EINVAL, "token", "malformed link");
        size_t tl = (size_t)p[o] | (size_t)p[o + 1] << 8;
        o += 2;
        if (tl == 0 || tl > pn - o || !is_http_url((const char *)p + o, tl))   /* (2) */
            return jd_err_set(err, JD_EINVAL, "token", "malformed link target");
        out->target = (jd_str){ (const char *)p + o, (uint32_t)tl };
        o += tl;
    }
    if (o != pn || !out->key.n) return jd_err_set(err, JD_EINVAL, "token", "malformed link");
    if (l->max_age_us && now_us > out->at_us && (uint64_t)(now_us - out->at_us) > l->max_age_us)
        return jd_err_set(err, JD_ELIMIT, "token", "the link has expired (links.max_age)");
    return JD_OK;
}

/* ---- templates ------------------------------------------------------------------- */

void dlv_links_vars(const dlv_links *l, const dlv_link *in, struct json_object *message)
{
    if (!l || !message) return;
    static const struct { dlv_link_kind k; const char *name; } v[] = {
        { DLV_LINK_UNSUB, "unsubscribe_url" }, { DLV_LINK_OPEN, "open_pixel_url" }, { DLV_LINK_CLICK, "click_url" },
    };
    dlv_link bare = *in;
    bare.target = (jd_str){ 0 };
    for (size_t i = 0; i < JD_ARRAY_LEN(v); i++) {
        char *u = dlv_link_url(l, v[i].k, &bare);
        if (!u) return;
        json_object_object_add(message, v[i].name, json_object_new_string(u));
        free(u);
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* What url_encode writes (and what a hand-written absolute URL may hold
 * unencoded); anything else (a quote, '<', '&', a space) ends the value. */
static bool enc_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("%._~+-:/", c) != NULL;
}

/* One body: each "<base>/t/c/<token>?to=<enc>" whose token is an unsealed
 * click of intent `id` becomes "<base>/t/c/<sealed>". Returns owned, or NULL
 * when nothing changed. */
static char *seal_body(const dlv_links *l, uint64_t id, const char *s)
{
    char prefix[1024];
    int pl = snprintf(prefix, sizeof prefix, "%s/t/c/", l->base);
    if (pl < 0 || (size_t)pl >= sizeof prefix || !strstr(s, prefix)) return NULL;
    jd_buf out;
    jd_buf_init(&out, (size_t)1 << 30);
    bool changed = false;
    const char *at = s, *hit;
    uint8_t *scratch = jd_xmalloc(4096);
    char *target = jd_xmalloc(9 * DLV_LINK_MAX_TARGET + 1);   /* each of 3x chars may become 3 */
    while ((hit = strstr(at, prefix)) != NULL) {
        const char *tok = hit + pl, *te = tok;
        while (b64_char(*te)) te++;
        jd_buf_add(&out, at, (size_t)(hit - at));
        at = hit;
        const char *q = te;
        if (te - tok > 0 && te - tok < 4096 && strncmp(q, "?to=", 4) == 0) {
            const char *v = q + 4, *ve = v;
            while (*ve && enc_char(*ve)) ve++;
            /* decode the value: %XX; '+' is a space (url_encode's spelling) */
            size_t tn = 0;
            bool ok = ve > v && (size_t)(ve - v) <= 3 * DLV_LINK_MAX_TARGET;
            for (const char *c = v; ok && c < ve; c++) {
                int ch = (unsigned char)*c;
                if (ch == '%') {
                    int h = c + 2 < ve ? hexval(c[1]) : -1, lo = h >= 0 ? hexval(c[2]) : -1;
                    if (lo < 0) { ok = false; break; }
                    ch = h << 4 | lo;
                    c += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                if (ch == ' ') {   /* a space in a URL is %20, as a browser would send it */
                    memcpy(target + tn, "%20", 3);
                    tn += 3;
                } else {
                    target[tn++] = (char)ch;
                }
            }
            char tk[4096];
            memcpy(tk, tok, (size_t)(te - tok));
            tk[te - tok] = 0;
            dlv_link lk;
            jd_err err;
            if (ok && dlv_link_verify(l, DLV_LINK_CLICK, tk, 0, &lk, scratch, 4096, &err) == JD_OK && lk.intent_id == id &&
                !lk.target.n) {
                lk.target = (jd_str){ target, (uint32_t)tn };
                char *u = tn <= DLV_LINK_MAX_TARGET ? dlv_link_url(l, DLV_LINK_CLICK, &lk) : NULL;   /* NULL: (2) */
                if (u) {
                    jd_buf_adds(&out, u);
                    free(u);
                    at = ve;
                    changed = true;
                    continue;
                }
            }
        }
        jd_buf_add(&out, at, (size_t)(te - at));   /* left as it was */
        at = te;
    }
    jd_buf_adds(&out, at);
    free(scratch);
    free(target);
    char *r = changed ? jd_xstrndup(out.data, out.len) : NULL;
    jd_buf_release(&out);
    return r;
}

void dlv_links_apply(const dlv_links *l, struct json_object *vars, dlv_msg *m)
{
    if (!l || !m) return;
    char **bodies[] = { &m->email.text, &m->email.html, &m->sms.body, &m->push.body, &m->push.data_json,
                        &m->slack.text, &m->slack.blocks_json, &m->webhook.body_json };
    for (size_t i = 0; i < JD_ARRAY_LEN(bodies); i++) {
        char *s = *bodies[i] ? seal_body(l, m->intent_id, *bodies[i]) : NULL;
        if (!s) continue;
        free(*bodies[i]);
        *bodies[i] = s;
    }
    json_object *msg, *u;
    if (m->kind == DLV_EMAIL && !m->email.unsubscribe_url && vars && json_object_object_get_ex(vars, "message", &msg) &&
        json_object_object_get_ex(msg, "unsubscribe_url", &u) && json_object_is_type(u, json_type_string))
        m->email.unsubscribe_url = jd_xstrdup(json_object_get_string(u));
}
