/* bench/templates.c -- renders per second of a realistic email template.
 *
 * The template (an order confirmation: greeting, a for loop over items with
 * money and arithmetic filters, dates, conditions, an HTML body) is compiled
 * once and rendered in a loop against one vars object held as json-c (as a
 * delivery worker would hold it), with a reused scratch and output buffer.
 * The reference, measured in the same run, is the same text produced by hand
 * with snprintf and json_object_object_get_ex; the ratio is template / hand.
 * Built with -DCOUNT_ALLOCS and --wrap it also counts malloc/calloc/realloc
 * calls during the timed renders: steady-state renders promise none.
 * Not part of `make test`. Build: make build/bench/templates (the Makefile adds
 * -DCOUNT_ALLOCS and the --wrap flags, so it counts); by hand:
 *   cc -std=gnu17 -O2 -D_GNU_SOURCE -DCOUNT_ALLOCS -Iinclude -I/usr/include/json-c bench/templates.c \
 *      build/libjourneyd.a -o build/bench/templates_allocs -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc \
 *      $(pkg-config --libs json-c libxxhash openssl yaml-0.1 libpcre2-8 icu-uc icu-i18n) -lpthread -lm
 * Usage: build/bench/templates [seconds, default 1]
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "journeyd/base.h"
#include "journeyd/template.h"

static unsigned long allocs;
static int counting;
#ifdef COUNT_ALLOCS
void *__real_malloc(size_t n);
void *__real_calloc(size_t c, size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t c, size_t n);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n) { allocs += counting; return __real_malloc(n); }
void *__wrap_calloc(size_t c, size_t n) { allocs += counting; return __real_calloc(c, n); }
void *__wrap_realloc(void *p, size_t n) { allocs += counting; return __real_realloc(p, n); }
#endif

static const char vars_json[] =
    "{\"profile\":{\"first_name\":\"ada\",\"last_name\":\"Lovelace\",\"email\":\"ada@example.com\",\"plan\":\"pro\","
    "\"vip\":true,\"points\":1250},"
    "\"event\":{\"order_id\":\"o-981\",\"placed_at\":\"2026-03-29T10:00:00Z\",\"currency\":\"EUR\",\"coupon\":\"SUMMER10\","
    "\"items\":[{\"name\":\"Wool socks\",\"sku\":\"A1\",\"price\":2000,\"qty\":1},"
    "{\"name\":\"Trail shoes & laces\",\"sku\":\"B7\",\"price\":6550,\"qty\":2},"
    "{\"name\":\"Hat\",\"sku\":\"C3\",\"price\":3500,\"qty\":1}]},"
    "\"journey\":{\"name\":\"post-purchase\"},\"message\":{\"unsubscribe_url\":\"https://x.example/u/abc\"}}";

static const char tpl_src[] =
    "<html><body>\n"
    "<p>Hi {{ profile.first_name | capitalize | default: \"there\" }},</p>\n"
    "<p>Thanks for order {{ event.order_id }} placed on {{ event.placed_at | date: \"%B %-d, %Y at %H:%M\" }}.</p>\n"
    "<table>\n"
    "{%- assign total = 0 -%}\n"
    "{%- for item in event.items %}\n"
    "  <tr class=\"{% cycle_free %}{% if forloop.first %}first{% endif %}\"><td>{{ forloop.index }}</td>"
    "<td>{{ item.name | truncate: 24 }}</td><td>{{ item.qty }}</td>"
    "<td>{{ item.price | times: item.qty | money: event.currency }}</td></tr>\n"
    "  {%- assign total = total | plus: item.price | times: 1 -%}\n"
    "{%- endfor %}\n"
    "</table>\n"
    "<p>Total: {{ total | money_with_currency: event.currency }}</p>\n"
    "{% if profile.vip and profile.points > 1000 %}<p>You have {{ profile.points }} points.</p>{% endif %}\n"
    "{% case profile.plan %}{% when \"pro\" %}<p>Pro tip inside.</p>{% else %}<p>Upgrade!</p>{% endcase %}\n"
    "<p><a href=\"{{ message.unsubscribe_url }}\">Unsubscribe</a></p>\n"
    "</body></html>\n";

static size_t by_hand(struct json_object *v, char *buf, size_t cap)
{
    struct json_object *p, *e, *items, *x;
    json_object_object_get_ex(v, "profile", &p);
    json_object_object_get_ex(v, "event", &e);
    json_object_object_get_ex(e, "items", &items);
    size_t o = 0;
    json_object_object_get_ex(p, "first_name", &x);
    o += (size_t)snprintf(buf + o, cap - o, "<html><body>\n<p>Hi %s,</p>\n", json_object_get_string(x));
    json_object_object_get_ex(e, "order_id", &x);
    o += (size_t)snprintf(buf + o, cap - o, "<p>Thanks for order %s placed on March 29, 2026 at 10:00.</p>\n<table>",
                          json_object_get_string(x));
    int64_t total = 0;
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        struct json_object *it = json_object_array_get_idx(items, i), *nm, *pr, *q;
        json_object_object_get_ex(it, "name", &nm);
        json_object_object_get_ex(it, "price", &pr);
        json_object_object_get_ex(it, "qty", &q);
        int64_t line = json_object_get_int64(pr) * json_object_get_int64(q);
        o += (size_t)snprintf(buf + o, cap - o, "\n  <tr class=\"%s\"><td>%zu</td><td>%.24s</td><td>%lld</td><td>€%lld.%02lld</td></tr>",
                              i ? "" : "first", i + 1, json_object_get_string(nm), (long long)json_object_get_int64(q),
                              (long long)line / 100, (long long)line % 100);
        total += json_object_get_int64(pr);
    }
    o += (size_t)snprintf(buf + o, cap - o, "\n</table>\n<p>Total: €%lld.%02lld EUR</p>\n<p>You have 1250 points.</p>\n"
                          "<p>Pro tip inside.</p>\n<p><a href=\"https://x.example/u/abc\">Unsubscribe</a></p>\n</body></html>\n",
                          (long long)total / 100, (long long)total % 100);
    return o;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    struct json_object *vars = json_tokener_parse(vars_json);
    /* the template above has one deliberate unknown tag: prove it is refused, then drop it */
    tpl *t = NULL;
    jd_err err;
    if (tpl_compile("bench", tpl_src, strlen(tpl_src), NULL, &t, &err) == JD_OK) { fprintf(stderr, "expected an error\n"); return 1; }
    char *src = jd_xstrdup(tpl_src);
    char *c = strstr(src, "{% cycle_free %}");
    memmove(c, c + 16, strlen(c + 16) + 1);
    if (tpl_compile("bench", src, strlen(src), NULL, &t, &err) != JD_OK) { fprintf(stderr, "%s: %s\n", err.where, err.msg); return 1; }
    tpl_scratch *s = tpl_scratch_create(0);
    tpl_render_opts o = { .html = true, .scratch = s };
    jd_buf out;
    jd_buf_init(&out, 1 << 20);
    if (tpl_render(t, vars, &o, &out, &err) != JD_OK) { fprintf(stderr, "%s: %s\n", err.where, err.msg); return 1; }
    size_t bytes = out.len;
    uint64_t n = 0, t0 = jd_monotonic_ns();
    counting = 1;
    while (secs(t0) < seconds) {
        for (int i = 0; i < 1000; i++) {
            jd_buf_reset(&out);
            if (tpl_render(t, vars, &o, &out, &err) != JD_OK) return 1;
        }
        n += 1000;
    }
    counting = 0;
    double tpl_rate = (double)n / secs(t0);
    unsigned long tpl_allocs = allocs;
    char buf[8192];
    volatile size_t sink = 0;
    uint64_t m = 0;
    t0 = jd_monotonic_ns();
    while (secs(t0) < seconds) {
        for (int i = 0; i < 1000; i++) sink += by_hand(vars, buf, sizeof buf);
        m += 1000;
    }
    double hand_rate = (double)m / secs(t0);
    printf("template render (order confirmation, %zu bytes of HTML, 3 items): %.0f renders/s, %.2f us/render\n",
           bytes, tpl_rate, 1e6 / tpl_rate);
    printf("hand-written snprintf reference: %.0f renders/s; ratio template/hand: %.2fx slower\n", hand_rate,
           hand_rate / tpl_rate);
#ifdef COUNT_ALLOCS
    printf("allocations during %llu timed renders: %lu\n", (unsigned long long)n, tpl_allocs);
#else
    (void)tpl_allocs;
#endif
    (void)sink;
    jd_buf_release(&out);
    tpl_scratch_destroy(s);
    tpl_destroy(t);
    free(src);
    json_object_put(vars);
    return 0;
}
