/* tests/unit/deliver/test_links.c -- signed tracking links (src/deliver/links.c):
 * a link made is the link verified; every byte of a token changed, a token
 * cut short or lengthened, another kind, another secret: refused (invariant
 * 1); links.max_age; template variables; sealing "<click_url>?to=<target>"
 * after rendering, and what is not sealed (another intent's link, a
 * javascript: target: invariant 2); List-Unsubscribe taken from vars. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "journeyd/deliver.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define BASE   "https://t.example.com"

static jd_str S(const char *s) { return (jd_str){ s, (uint32_t)strlen(s) }; }

static dlv_link sample(void)
{
    return (dlv_link){ .intent_id = 0x1122334455667788ull, .at_us = 1700000000 * JD_SEC, .key_is_user = true,
                       .key = S("u-42"), .journey = S("welcome"), .node = S("mail1"), .channel = S("email"),
                       .category = S("marketing") };
}

static dlv_links *mk(const char *secret, uint64_t max_age)
{
    dlv_links *l = NULL;
    jd_err err;
    assert_int_equal(dlv_links_create(&l, secret, BASE "/", max_age, &err), JD_OK);
    return l;
}

static const char *token_of(const char *url, char kind)
{
    char pre[64];
    snprintf(pre, sizeof pre, BASE "/t/%c/", kind);
    assert_memory_equal(url, pre, strlen(pre));
    return url + strlen(pre);
}

static bool jd_str_is(jd_str s, const char *c) { return s.n == strlen(c) && memcmp(s.p, c, s.n) == 0; }

static void test_roundtrip(void **state)
{
    (void)state;
    dlv_links *l = mk(SECRET, 0);
    assert_string_equal(dlv_links_base(l), BASE);
    dlv_link in = sample(), out;
    char *u = dlv_link_url(l, DLV_LINK_UNSUB, &in);
    assert_non_null(u);
    char scratch[4096];
    jd_err err;
    assert_int_equal(dlv_link_verify(l, DLV_LINK_UNSUB, token_of(u, 'u'), 0, &out, scratch, sizeof scratch, &err), JD_OK);
    assert_true(out.intent_id == in.intent_id);
    assert_true(out.at_us == in.at_us);
    assert_true(out.key_is_user);
    assert_true(jd_str_is(out.key, "u-42") && jd_str_is(out.journey, "welcome") && jd_str_is(out.node, "mail1"));
    assert_true(jd_str_is(out.channel, "email") && jd_str_is(out.category, "marketing"));
    assert_int_equal(out.target.n, 0);
    /* the same link again: the same bytes (no clock, no randomness: replay) */
    char *u2 = dlv_link_url(l, DLV_LINK_UNSUB, &in);
    assert_string_equal(u, u2);
    free(u2);
    free(u);

    in.target = S("https://acme.example/pricing?plan=pro");
    in.key_is_user = false;
    u = dlv_link_url(l, DLV_LINK_CLICK, &in);
    assert_int_equal(dlv_link_verify(l, DLV_LINK_CLICK, token_of(u, 'c'), 0, &out, scratch, sizeof scratch, &err), JD_OK);
    assert_true(jd_str_is(out.target, "https://acme.example/pricing?plan=pro"));
    assert_false(out.key_is_user);
    free(u);
    dlv_links_destroy(l);
}

/* Invariant (1): every byte, every cut, every kind, another secret. */
static void test_tampering(void **state)
{
    (void)state;
    dlv_links *l = mk(SECRET, 0), *other = mk(SECRET "x", 0);
    dlv_link in = sample(), out;
    in.target = S("https://acme.example/");
    char *u = dlv_link_url(l, DLV_LINK_CLICK, &in);
    const char *tok = token_of(u, 'c');
    size_t n = strlen(tok);
    char t[4096], scratch[4096];
    jd_err err;
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i++) {
        for (size_t a = 0; a < sizeof alpha - 1; a += 7) {   /* several replacements per position */
            if (alpha[a] == tok[i]) continue;
            memcpy(t, tok, n + 1);
            t[i] = alpha[a];
            assert_int_not_equal(dlv_link_verify(l, DLV_LINK_CLICK, t, 0, &out, scratch, sizeof scratch, &err), JD_OK);
        }
    }
    for (size_t k = 0; k < n; k++) {   /* cut short */
        memcpy(t, tok, k);
        t[k] = 0;
        assert_int_not_equal(dlv_link_verify(l, DLV_LINK_CLICK, t, 0, &out, scratch, sizeof scratch, &err), JD_OK);
    }
    snprintf(t, sizeof t, "%sAA", tok);   /* lengthened */
    assert_int_not_equal(dlv_link_verify(l, DLV_LINK_CLICK, t, 0, &out, scratch, sizeof scratch, &err), JD_OK);
    snprintf(t, sizeof t, "%s=", tok);    /* padding, or any other character */
    assert_int_not_equal(dlv_link_verify(l, DLV_LINK_CLICK, t, 0, &out, scratch, sizeof scratch, &err), JD_OK);
    /* another kind: a click token is no unsubscribe */
    assert_int_equal(dlv_link_verify(l, DLV_LINK_UNSUB, tok, 0, &out, scratch, sizeof scratch, &err), JD_EINVAL);
    assert_int_equal(dlv_link_verify(l, DLV_LINK_OPEN, tok, 0, &out, scratch, sizeof scratch, &err), JD_EINVAL);
    /* another secret */
    assert_int_equal(dlv_link_verify(other, DLV_LINK_CLICK, tok, 0, &out, scratch, sizeof scratch, &err), JD_EINVAL);
    assert_string_equal(err.msg, "the link's signature does not match");
    /* the right one still passes; a scratch too small fails cleanly */
    assert_int_equal(dlv_link_verify(l, DLV_LINK_CLICK, tok, 0, &out, scratch, sizeof scratch, &err), JD_OK);
    assert_int_equal(dlv_link_verify(l, DLV_LINK_CLICK, tok, 0, &out, scratch, 20, &err), JD_EINVAL);
    assert_int_equal(dlv_link_verify(l, DLV_LINK_CLICK, "", 0, &out, scratch, sizeof scratch, &err), JD_EINVAL);
    free(u);
    dlv_links_destroy(l);
    dlv_links_destroy(other);
}

static void test_limits_and_config(void **state)
{
    (void)state;
    dlv_links *l = NULL;
    jd_err err;
    assert_int_equal(dlv_links_create(&l, "short", BASE, 0, &err), JD_EINVAL);
    assert_string_equal(err.where, "links.secret");
    assert_int_equal(dlv_links_create(&l, SECRET, "ftp://x", 0, &err), JD_EINVAL);
    assert_string_equal(err.where, "links.base_url");
    assert_int_equal(dlv_links_create(&l, SECRET, "https://x/?a=1", 0, &err), JD_EINVAL);
    assert_null(l);

    /* max_age */
    l = mk(SECRET, 7 * JD_DAY);
    dlv_link in = sample(), out;
    char *u = dlv_link_url(l, DLV_LINK_OPEN, &in), scratch[4096];
    const char *tok = token_of(u, 'o');
    assert_int_equal(dlv_link_verify(l, DLV_LINK_OPEN, tok, in.at_us + 6 * JD_DAY, &out, scratch, sizeof scratch, &err), JD_OK);
    assert_int_equal(dlv_link_verify(l, DLV_LINK_OPEN, tok, in.at_us + 8 * JD_DAY, &out, scratch, sizeof scratch, &err), JD_ELIMIT);
    free(u);

    /* fields past their limits, targets that are not http(s) URLs: no link */
    char big[300];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = 0;
    in.key = S(big);
    assert_null(dlv_link_url(l, DLV_LINK_OPEN, &in));
    in = sample();
    static const char *const bad[] = { "javascript:alert(1)", "//evil.example/", "https://", "https:///path",
                                       "https://a.example/\r\nSet-Cookie: x", "data:text/html,hi" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        in.target = S(bad[i]);
        assert_null(dlv_link_url(l, DLV_LINK_CLICK, &in));
    }
    dlv_links_destroy(l);
}

static json_object *vars_for(dlv_links *l, const dlv_link *in)
{
    json_object *v = json_object_new_object(), *m = json_object_new_object();
    dlv_links_vars(l, in, m);
    json_object_object_add(v, "message", m);
    return v;
}

static const char *vget(json_object *v, const char *k)
{
    json_object *m, *s;
    assert_true(json_object_object_get_ex(v, "message", &m));
    if (!json_object_object_get_ex(m, k, &s)) return NULL;
    return json_object_get_string(s);
}

static void test_seal(void **state)
{
    (void)state;
    dlv_links *l = mk(SECRET, 0);
    dlv_link in = sample(), other = sample(), out;
    other.intent_id++;
    json_object *v = vars_for(l, &in), *vo = vars_for(l, &other);
    const char *click = vget(v, "click_url"), *unsub = vget(v, "unsubscribe_url"), *pix = vget(v, "open_pixel_url");
    assert_non_null(click);
    assert_non_null(unsub);
    assert_non_null(pix);
    assert_memory_equal(pix, BASE "/t/o/", strlen(BASE "/t/o/"));

    dlv_msg *m = dlv_msg_create(in.intent_id, DLV_EMAIL, "email", "a@b.example");
    char html[8192];
    /* sealed: the url_encode spelling; left: another intent's link, a
     * javascript: target, a click_url without ?to= */
    snprintf(html, sizeof html,
             "<a href=\"%s?to=https%%3A%%2F%%2Facme.example%%2Fpricing%%3Fq%%3Da+b\">p</a> "
             "<a href=\"%s?to=https%%3A%%2F%%2Fevil.example%%2F\">x</a> "
             "<a href=\"%s?to=javascript%%3Aalert(1)\">j</a> <a href=\"%s\">bare</a>",
             click, vget(vo, "click_url"), click, click);
    m->email.html = jd_xstrdup(html);
    m->email.text = jd_xstrdup("no links here");
    dlv_links_apply(l, v, m);
    assert_string_equal(m->email.unsubscribe_url, unsub);   /* List-Unsubscribe */
    assert_string_equal(m->email.text, "no links here");
    const char *h = m->email.html, *q = strstr(h, "\"");
    assert_non_null(q);
    const char *end = strchr(q + 1, '"');
    char first[4096];
    memcpy(first, q + 1, (size_t)(end - q - 1));
    first[end - q - 1] = 0;
    assert_null(strstr(first, "?to="));
    char scratch[8192];
    jd_err err;
    assert_int_equal(dlv_link_verify(l, DLV_LINK_CLICK, token_of(first, 'c'), 0, &out, scratch, sizeof scratch, &err), JD_OK);
    assert_true(jd_str_is(out.target, "https://acme.example/pricing?q=a%20b"));
    /* the other intent's link and the javascript: one are as they were */
    assert_non_null(strstr(h, "?to=https%3A%2F%2Fevil.example%2F"));
    assert_non_null(strstr(h, "?to=javascript%3Aalert(1)"));
    char bare[4200];
    snprintf(bare, sizeof bare, "<a href=\"%s\">bare</a>", click);
    assert_non_null(strstr(h, bare));

    /* a template's own List-Unsubscribe stays; NULL links: nothing */
    dlv_msg *m2 = dlv_msg_create(in.intent_id, DLV_EMAIL, "email", "a@b.example");
    m2->email.unsubscribe_url = jd_xstrdup("https://prefs.example/u");
    dlv_links_apply(l, v, m2);
    assert_string_equal(m2->email.unsubscribe_url, "https://prefs.example/u");
    dlv_links_apply(NULL, v, m2);
    dlv_msg_destroy(m2);
    dlv_msg_destroy(m);
    json_object_put(v);
    json_object_put(vo);
    dlv_links_destroy(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_limits_and_config),
        cmocka_unit_test(test_seal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
