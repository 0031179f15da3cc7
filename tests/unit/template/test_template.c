/* tests/unit/template/test_template.c -- the template.h contract: every tag and
 * filter with its edge cases, whitespace control, HTML escaping, errors with
 * their exact positions, the limits, `now` as an input, and scratch reuse.
 * The differential test against liquidjs is tests/e2e/template.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "journeyd/base.h"
#include "journeyd/limits.h"
#include "journeyd/template.h"

static const char vars_json[] =
    "{\"profile\":{\"name\":\"ada\",\"age\":36,\"score\":0.75,\"vip\":true,\"off\":false,\"nick\":null,"
    "\"empty\":\"\",\"tags\":[\"vip\",\"beta\"],\"none\":[],\"addr\":{\"zip\":\"8001\"},"
    "\"bio\":\"<b>\\\"x\\\" & 'y'</b>\",\"when\":\"2026-03-01T08:05:09.250Z\",\"local\":\"2026-03-29T09:15:00+02:00\"},"
    "\"event\":{\"total\":120.5,\"n\":3,\"items\":[{\"sku\":\"A\",\"p\":2},{\"sku\":\"B\",\"p\":3}]}}";

static struct json_object *vars;
static int64_t NOW_US;

static int setup(void **state)
{
    (void)state;
    vars = json_tokener_parse(vars_json);
    assert_non_null(vars);
    assert_int_equal(jd_time_parse("2026-03-29T12:34:56Z", 20, &NOW_US), JD_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    json_object_put(vars);
    return 0;
}

/* Renders src; returns owned text, or NULL with *err filled. */
static char *render_opts(const char *src, const tpl_render_opts *o, jd_err *err)
{
    tpl *t = NULL;
    jd_err_clear(err);
    if (tpl_compile("t.liquid", src, strlen(src), NULL, &t, err) != JD_OK) return NULL;
    jd_buf out;
    jd_buf_init(&out, 1 << 22);
    char *res = NULL;
    if (tpl_render(t, vars, o, &out, err) == JD_OK) res = jd_xstrdup(out.data ? out.data : "");
    else assert_int_equal(out.len, 0);   /* truncated back on failure */
    jd_buf_release(&out);
    tpl_destroy(t);
    return res;
}

static void check_o(const char *src, const tpl_render_opts *o, const char *want)
{
    jd_err err;
    char *got = render_opts(src, o, &err);
    if (!got) fprintf(stderr, "%s: %s at %s\n", src, err.msg, err.where);
    assert_non_null(got);
    if (strcmp(got, want) != 0) fprintf(stderr, "template: %s\n  want: [%s]\n  got:  [%s]\n", src, want, got);
    assert_string_equal(got, want);
    free(got);
}

static void check(const char *src, const char *want)
{
    tpl_render_opts o = { .has_now = true, .now_us = NOW_US };
    check_o(src, &o, want);
}

static void check_html(const char *src, const char *want)
{
    tpl_render_opts o = { .html = true };
    check_o(src, &o, want);
}

static void check_err(const char *src, int code, const char *where, const char *msg)
{
    jd_err err;
    tpl_render_opts o = { 0 };
    char *got = render_opts(src, &o, &err);
    if (got) fprintf(stderr, "%s: rendered [%s], expected an error\n", src, got);
    assert_null(got);
    assert_int_equal(err.code, code);
    assert_string_equal(err.where, where);
    assert_string_equal(err.msg, msg);
}

static void test_output_and_lookups(void **state)
{
    (void)state;
    check("Hi {{ profile.name }}!", "Hi ada!");
    check("[{{ profile.missing }}{{ nope.x.y }}{{ profile.nick }}]", "[]");
    check("{{ profile.tags[0] }}{{ profile.tags[-1] }}{{ profile.tags[5] }}", "vipbeta");
    check("{{ profile.tags.size }}{{ profile.tags.first }}{{ profile.tags.last }}{{ profile.name.size }}", "2vipbeta3");
    check("{{ profile[\"addr\"].zip }}{{ profile.addr.size }}", "80011");
    check("{{ profile.tags }}", "vipbeta");
    check("{{ profile.addr }}", "{\"zip\":\"8001\"}");
    check("{{ true }} {{ false }} {{ nil }}. {{ 1.5 }} {{ 2.0 }} {{ -3 }}", "true false . 1.5 2.0 -3");
    check("{{ event.total }} {{ profile.score }}", "120.5 0.75");
    check("{{ (1..3) }}", "1..3");
    check("{{ }}x", "x");
}

static void test_whitespace_control(void **state)
{
    (void)state;
    check("a  {{- 'b' -}}  c", "abc");
    check("a\n  {%- if true -%}\n  b\n  {%- endif -%}\n  c", "abc");
    check("a {%- if true %} b {% endif -%} c", "a b c");
    check("x {{- nope -}} y", "xy");
    check("{%- raw -%} {{ x }} {%- endraw -%} .", "{{ x }}.");
}

static void test_if_unless_truthiness(void **state)
{
    (void)state;
    check("{% if profile.empty %}t{% endif %}{% if 0 %}z{% endif %}{% if profile.none %}a{% endif %}", "tza");
    check("{% if profile.nick %}x{% elsif profile.off %}y{% else %}n{% endif %}", "n");
    check("{% if profile.age > 40 %}a{% elsif profile.age >= 36 %}b{% else %}c{% endif %}", "b");
    check("{% unless profile.off %}u{% endunless %}{% unless profile.vip %}a{% elsif true %}b{% endunless %}", "ub");
    /* and/or fold from the right */
    check("{% if true or false and false %}A{% else %}B{% endif %}", "A");
    check("{% if false and false or true %}A{% else %}B{% endif %}", "B");
    check("{% if profile.tags contains 'beta' %}1{% endif %}{% if profile.name contains 'd' %}2{% endif %}"
          "{% if profile.addr contains 'zip' %}3{% endif %}{% if profile.nick contains 'x' %}4{% endif %}", "123");
    check("{% if profile.none == empty %}1{% endif %}{% if profile.empty == empty %}2{% endif %}"
          "{% if profile.nick == blank %}3{% endif %}{% if profile.nick == empty %}4{% endif %}", "123");
    check("{% if 1 == 1.0 %}1{% endif %}{% if 'a' < 'b' %}2{% endif %}{% if profile.nick < 5 %}3{% endif %}"
          "{% if profile.nick == nil %}4{% endif %}{% if 2 <> 3 %}5{% endif %}{% if 3 != 3 %}6{% endif %}", "1245");
    check("{% if profile.tags == profile.tags %}same{% endif %}", "same");
}

static void test_case_when(void **state)
{
    (void)state;
    check("{% case event.n %}{% when 1, 2 %}few{% when 3 or 4 %}some{% else %}many{% endcase %}", "some");
    check("{% case 'x' %}ignored{% when 'y' %}y{% else %}e{% endcase %}", "e");
    check("{% case 1 %}{% when 1 %}a{% when 1 %}b{% endcase %}", "ab");   /* every matching when renders */
    check("{% case profile.nick %}{% when nil %}nil{% endcase %}", "nil");
}

static void test_for(void **state)
{
    (void)state;
    check("{% for i in event.items %}{{ forloop.index }}{{ forloop.index0 }}{{ forloop.rindex }}{{ forloop.rindex0 }}"
          "{{ forloop.first }}{{ forloop.last }}{{ forloop.length }};{% endfor %}",
          "1021truefalse2;2110falsetrue2;");
    check("{% for i in (1..5) limit: 2 offset: 1 %}{{ i }}{% endfor %}", "23");
    check("{% for i in (1..4) reversed %}{{ i }}{% endfor %}", "4321");
    check("{% for i in (1..4) reversed limit: 2 %}{{ i }}{% endfor %}", "21");
    check("{% for i in (3..1) %}x{% else %}empty{% endfor %}", "empty");
    check("{% for i in profile.nick %}x{% else %}nil{% endfor %}", "nil");
    check("{% for c in profile.name %}[{{ c }}]{% endfor %}", "[ada]");
    check("{% for p in profile.addr %}{{ p[0] }}={{ p[1] }}{% endfor %}", "zip=8001");
    check("{% for i in (1..9) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}", "13");
    check("{% for a in (1..2) %}{% for b in (1..2) %}{{ forloop.parentloop.index }}{{ b }}{% endfor %}{% endfor %}", "11122122");
    check("{% for i in (1..2) %}{% endfor %}[{{ i }}][{{ forloop.index }}]", "[][]");
    check("{% for x in (1..2) %}{% assign x = 'a' %}{{ x }}{% endfor %}{{ x }}", "12a");   /* assign is global */
    check("{% for i in (1..event.n) %}{{ i }}{% endfor %}{% for i in ('2'..'3') %}{{ i }}{% endfor %}", "12323");
}

static void test_assign_capture_raw_comment(void **state)
{
    (void)state;
    check("{{ x }}{% assign x = profile.name | upcase %}{{ x }}", "ADA");
    check("{% assign s = 0 %}{% for i in event.items %}{% assign s = s | plus: i.p %}{% endfor %}{{ s }}", "5");
    check("{% capture c %}[{{ profile.name }}]{% endcapture %}{{ c }}{{ c | size }}", "[ada]5");
    check("{% assign profile = 'shadow' %}{{ profile }}", "shadow");
    check("{% raw %}{{ x }}{% if %}{% endraw %}", "{{ x }}{% if %}");
    check("a{% comment %}{{ x }}{% if %}{% comment %}{% endcomment %}{% endcomment %}b", "ab");
    check("a{% # note %}b{% echo 'c' | upcase %}", "abC");
}

static void test_string_filters(void **state)
{
    (void)state;
    check("{{ 'hÉllo wORLD' | capitalize }} {{ 'zürich' | upcase }} {{ 'ÉLODIE' | downcase }}", "Héllo world ZÜRICH élodie");
    check("{{ profile.bio | escape }}", "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");
    check("{{ '&amp; &lt; & &#39; &x' | escape_once }}", "&amp; &lt; &amp; &#39; &amp;x");
    check("{{ profile.nick | escape }}.", ".");
    check("{{ 'a b&c/é~' | url_encode }} {{ 'a+b%20c%2' | url_decode }}", "a+b%26c%2F%C3%A9~ a b c%2");
    check("{{ 'abcdefghij' | truncate: 5 }} {{ 'abc' | truncate: 3 }} {{ 'abcdef' | truncate: 4, '' }} {{ 'abcdef' | truncate: 2 }}",
          "ab... abc abcd ...");
    check("{{ 'héllo wörld' | truncate: 6, '…' }}", "héllo…");
    check("{{ ' one  two three ' | truncatewords: 2 }}|{{ 'a b' | truncatewords: 2 }}|{{ 'a b c' | truncatewords: 0, '' }}", "one two...|a b|a");
    check("{{ 'a,b,,c,,' | split: ',' | join: '-' }}|{{ ' a  b ' | split: ' ' | size }}|{{ 'héy' | split: '' | join: '.' }}|{{ '' | split: ',' | size }}",
          "a-b--c|2|h.é.y|0");
    check("{{ profile.tags | join }}|{{ profile.tags | join: ', ' }}|{{ profile.nick | join }}|", "vip beta|vip, beta||");
    check("{{ ' x ' | strip }}|{{ ' x ' | lstrip }}|{{ ' x ' | rstrip }}|", "x|x | x|");
    check("{{ 'a' | append: 'b' | prepend: 'c' }} {{ 'aXbX' | remove: 'X' }} {{ 'aXbX' | remove_first: 'X' }}", "cab ab abX");
    check("{{ 'aXbX' | replace: 'X', 'Y' }} {{ 'aXbX' | replace_first: 'X', 'Y' }} {{ 'ab' | replace: '', '-' }} {{ 'aXb' | replace: 'X' }}",
          "aYbY aYbX -a-b- ab");
    check("{{ '<p>a<br/>b</p><script>x<y</script><!-- c -->d' | strip_html }}", "abd");
    check("{{ 'a\nb\r\nc' | newline_to_br }}|{{ 'a\nb\r\nc' | strip_newlines }}", "a<br />\nb<br />\nc|abc");
    check("{{ 'hello' | slice: 1 }} {{ 'hello' | slice: 1, 3 }} {{ 'hello' | slice: -3, 2 }} {{ 'hello' | slice: 9 }}. {{ profile.tags | slice: -1 | join }}",
          "e ell ll . beta");
}

static void test_list_filters(void **state)
{
    (void)state;
    check("{{ profile.tags | first }} {{ profile.tags | last }} {{ 'abc' | first }}. {{ profile.none | first }}.", "vip beta . .");
    check("{{ profile.tags | size }} {{ 'héllo' | size }} {{ profile.addr | size }} {{ 5 | size }} {{ profile.nick | size }}", "2 5 1 8 0");
    check("{{ profile.tags | reverse | join: ',' }} {{ event.items | map: 'sku' | join }}", "beta,vip A B");
    check("{{ '3,1,3,2,1' | split: ',' | uniq | join }} {{ event.items | map: 'nope' | compact | size }}", "3 1 2 0");
}

static void test_default(void **state)
{
    (void)state;
    check("{{ profile.nick | default: 'f' }} {{ profile.empty | default: 'e' }} {{ profile.none | default: 'n' }} {{ profile.name | default: 'x' }}",
          "f e n ada");
    check("{{ profile.off | default: 'd' }} {{ profile.off | default: 'd', allow_false: true }} {{ 0 | default: 1 }} {{ nope | default }}.",
          "d false 0 .");
}

static void test_numbers(void **state)
{
    (void)state;
    check("{{ 4 | plus: 2 }} {{ 4 | minus: 6 }} {{ 4 | times: 3 }} {{ 4 | plus: 2.5 }} {{ 0.1 | plus: 0.2 }} {{ 3.0 | times: 2 }}",
          "6 -2 12 6.5 0.3 6.0");
    check("{{ 10 | divided_by: 4 }} {{ -7 | divided_by: 2 }} {{ 10 | divided_by: 4.0 }} {{ 7 | modulo: 3 }} {{ -7 | modulo: 3 }} {{ 7.5 | modulo: 2 }}",
          "2 -4 2.5 1 2 1.5");
    check("{{ '4' | plus: 1 }} {{ '1.5' | plus: 1 }} {{ '12abc' | plus: 0 }} {{ 'abc' | plus: 1 }} {{ nope | plus: 1 }} {{ true | plus: 1 }}",
          "5 2.5 12 1 1 1");
    check("{{ 3.14159 | round }} {{ 3.14159 | round: 2 }} {{ 2.5 | round }} {{ -2.5 | round }} {{ 1.005 | round: 2 }} {{ 1234 | round: 1 }} {{ 1250 | round: -2 }}",
          "3 3.14 3 -3 1.01 1234 1300");
    check("{{ 4.2 | ceil }} {{ 4.8 | floor }} {{ -4.2 | floor }} {{ -3 | abs }} {{ -3.5 | abs }} {{ 3 | at_least: 5 }} {{ 7 | at_most: 5.5 }}",
          "5 4 -5 3 3.5 5 5.5");
    check("{{ 100000000000000000000.0 }} {{ 0.0001 }} {{ 0.00001 }}", "1.0e+20 0.0001 1.0e-05");
}

static void test_money(void **state)
{
    (void)state;
    check("{{ 1999 | money }} {{ 123456789 | money }} {{ -50 | money }} {{ 0 | money }} {{ 1999.6 | money }} {{ '250' | money }}",
          "$19.99 $1,234,567.89 -$0.50 $0.00 $20.00 $2.50");
    check("{{ 1999 | money: 'EUR' }} {{ 1999 | money_with_currency }} {{ 1999 | money_with_currency: 'GBP' }}",
          "€19.99 $19.99 USD £19.99 GBP");
    check("{{ 1999 | money_without_currency }} {{ 2000 | money_without_trailing_zeros }} {{ 2050 | money_without_trailing_zeros }}",
          "19.99 $20 $20.50");
    check("{{ 1500 | money: 'JPY' }} {{ 1999 | money: 'XYZ' }} {{ nope | money }}.", "¥1,500 19.99 XYZ .");
    tpl_render_opts o = { .currency = "EUR" };
    check_o("{{ 1999 | money }}", &o, "€19.99");
}

static void test_date(void **state)
{
    (void)state;
    check("{{ profile.when | date: '%Y-%m-%d %H:%M:%S.%L' }}", "2026-03-01 08:05:09.250");
    check("{{ profile.when | date: '%a %A %b %B %d %e %j %y %C %u %w' }}", "Sun Sunday Mar March 01  1 060 26 20 7 0");
    check("{{ profile.when | date: '%I:%M %p %l %P %-d/%-m %_m %^a %10A|' }}", "08:05 AM  8 am 1/3  3 SUN     Sunday|");
    check("{{ profile.when | date: '%F %T %D %R %r %c' }}", "2026-03-01 08:05:09 03/01/26 08:05 08:05:09 AM Sun Mar  1 08:05:09 2026");
    check("{{ profile.when | date: '%s %z %:z %Z %% %Q' }}", "1772352309 +0000 +00:00 UTC % %Q");
    check("{{ profile.local | date: '%H:%M %z %Z|' }}", "09:15 +0200 |");
    check("{{ 0 | date: '%Y' }} {{ '86400' | date: '%F' }} {{ '2026-12-31' | date: '%V %G %U %W' }} {{ '2027-01-01' | date: '%V %G' }}",
          "1970 1970-01-02 53 2026 52 52 53 2026");
    check("{{ 'now' | date: '%F %T' }} {{ 'TODAY' | date: '%Y' }}", "2026-03-29 12:34:56 2026");
    check("{{ 'not a date' | date: '%Y' }} {{ profile.when | date: '' }} {{ 1.5 | date: '%Y' }} {{ '2026-02-30' | date: '%F' }}",
          "not a date 2026-03-01T08:05:09.250Z 1.5 2026-02-30");
    check_err("{{ 'now' | date: '%Y' }}", JD_EINVAL, "t.liquid:1:12",
              "date: \"now\" needs the render time (tpl_render_opts.now_us, render --now)");
}

static void test_html_escaping(void **state)
{
    (void)state;
    check_html("<p>{{ profile.bio }}</p>", "<p>&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;</p>");
    check_html("{{ profile.bio | escape }}", "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");   /* not twice */
    check_html("{{ '<a>\n' | newline_to_br }}", "&lt;a&gt;<br />\n");
    check_html("{% capture c %}<i>{{ '<' }}</i>{% endcapture %}{{ c }}", "<i>&lt;</i>");
    check_html("{{ profile.tags }} {{ 3 }} {% raw %}<b>{% endraw %}", "vipbeta 3 <b>");
    check("{{ profile.bio }}", "<b>\"x\" & 'y'</b>");   /* text bodies are not escaped */
}

static void test_compile_errors(void **state)
{
    (void)state;
    check_err("Hi {{ profile.name | upcas }}", JD_EINVAL, "t.liquid:1:22", "unknown filter 'upcas'");
    check_err("a\n{% if x %}\n b", JD_EINVAL, "t.liquid:3:3", "expected 'endif' to close 'if' opened at 2:1");
    check_err("{% for i in (1..3) %}", JD_EINVAL, "t.liquid:1:22", "expected 'endfor' to close 'for' opened at 1:1");
    check_err("{% unless x %}{% endif %}", JD_EINVAL, "t.liquid:1:15", "unknown tag 'endif'");
    check_err("{{ x", JD_EINVAL, "t.liquid:1:1", "'{{' is not closed (expected '}}')");
    check_err("{% if x", JD_EINVAL, "t.liquid:1:1", "'{%' is not closed (expected '%}')");
    check_err("{% nope %}", JD_EINVAL, "t.liquid:1:1", "unknown tag 'nope'");
    check_err("{%  %}", JD_EINVAL, "t.liquid:1:1", "expected a tag name after '{%'");
    check_err("{{ 'abc }}", JD_EINVAL, "t.liquid:1:4", "string is not closed (expected ')");
    check_err("{{ a b }}", JD_EINVAL, "t.liquid:1:6", "expected '|' or '}}', got 'b'");
    check_err("{{ a | }}", JD_EINVAL, "t.liquid:1:8", "expected a filter name after '|', got '}}'");
    check_err("{{ a | plus }}", JD_EINVAL, "t.liquid:1:8", "filter 'plus' needs 1 argument, got 0");
    check_err("{{ a | upcase: 1 }}", JD_EINVAL, "t.liquid:1:8", "filter 'upcase' takes at most 0 arguments, got 1");
    check_err("{{ a | default: 1, nope: 2 }}", JD_EINVAL, "t.liquid:1:20", "filter 'default' takes no argument 'nope'");
    check_err("{% if a == %}", JD_EINVAL, "t.liquid:1:12", "expected a value, got '%}'");
    check_err("{% if a %}{% else junk %}{% endif %}", JD_EINVAL, "t.liquid:1:19", "unexpected 'junk' after 'else'");
    check_err("{% for in x %}", JD_EINVAL, "t.liquid:1:11", "expected 'in', got 'x'");
    check_err("{% for i in x limit 3 %}", JD_EINVAL, "t.liquid:1:21", "expected ':', got '3'");
    check_err("{% for i in x offset: continue %}", JD_EINVAL, "t.liquid:1:23", "'offset: continue' is not supported");
    check_err("{% assign = 1 %}", JD_EINVAL, "t.liquid:1:11", "expected a variable name after 'assign', got '='");
    check_err("{% assign x 1 %}", JD_EINVAL, "t.liquid:1:13", "expected '=', got '1'");
    check_err("{% continue %}", JD_EINVAL, "t.liquid:1:1", "'continue' outside a for loop");
    check_err("{{ (1..) }}", JD_EINVAL, "t.liquid:1:8", "expected a value, got ')'");
    check_err("{{ a.  }}", JD_EINVAL, "t.liquid:1:8", "expected a name after '.', got '}}'");
    check_err("{{ a ! b }}", JD_EINVAL, "t.liquid:1:6", "unexpected '!' in output");
    check_err("{{ a # }}", JD_EINVAL, "t.liquid:1:6", "unexpected character '#' in output");
    check_err("{% raw %}x", JD_EINVAL, "t.liquid:1:11", "expected 'endraw' to close 'raw' opened at 1:1");
    check_err("{% comment %}x", JD_EINVAL, "t.liquid:1:15", "expected 'endcomment' to close 'comment' opened at 1:1");
    check_err("é {{ é }}", JD_EINVAL, "t.liquid:1:6", "unexpected byte 0xc3 in output");
    check_err("{{ 99999999999999999999 }}", JD_EINVAL, "t.liquid:1:4", "integer 99999999999999999999 is out of range (64 bits)");
}

static void test_render_errors(void **state)
{
    (void)state;
    check_err("ab\n  {{ 1 | divided_by: 0 }}", JD_EINVAL, "t.liquid:2:10", "divided by 0");
    check_err("{{ 1 | modulo: 0 }}", JD_EINVAL, "t.liquid:1:8", "divided by 0");
    check_err("{{ 1.5 | divided_by: 0 }}", JD_EINVAL, "t.liquid:1:10", "divided by 0");
    check_err("{{ 9223372036854775807 | plus: 1 }}", JD_EINVAL, "t.liquid:1:26", "integer overflow in 'plus'");
    check_err("{% if 'a' > 1 %}{% endif %}", JD_EINVAL, "t.liquid:1:11", "comparison of string with integer failed");
    check_err("{{ 'x' | truncate: 'abc' }}", JD_EINVAL, "t.liquid:1:10", "filter 'truncate': invalid integer");
}

static void test_limits(void **state)
{
    (void)state;
    /* nesting */
    jd_buf src;
    jd_buf_init(&src, 1 << 20);
    for (int i = 0; i < 70; i++) jd_buf_adds(&src, "{% if true %}");
    tpl *t = NULL;
    jd_err err;
    assert_int_equal(tpl_compile("deep", src.data, src.len, NULL, &t, &err), JD_ELIMIT);
    assert_string_equal(err.msg, "nested deeper than 64 (template.max_depth)");
    assert_string_equal(err.where, "deep:1:833");
    jd_buf_release(&src);
    /* source size */
    tpl_opts co = { .max_source = 8 };
    assert_int_equal(tpl_compile("big", "123456789", 9, &co, &t, &err), JD_ELIMIT);
    assert_string_equal(err.msg, "template is longer than 8 bytes (template.max_source)");
    assert_string_equal(err.where, "big:1:1");
    /* iterations, output, scratch */
    tpl_render_opts o = { .max_iterations = 10 };
    assert_null(render_opts("{% for i in (1..3) %}{% for j in (1..4) %}{% endfor %}{% endfor %}", &o, &err));
    assert_int_equal(err.code, JD_ELIMIT);
    assert_string_equal(err.where, "t.liquid:1:1");   /* the outer loop's 11th turn */
    assert_string_equal(err.msg, "loops ran more than 10 iterations (template.max_iterations)");
    assert_null(render_opts("{% for i in (1..1000000000) %}{% endfor %}", NULL, &err));
    assert_string_equal(err.msg, "loops ran more than 100000 iterations (template.max_iterations)");
    tpl_render_opts o2 = { .max_output = 5 };
    assert_null(render_opts("abc{{ 'def' }}", &o2, &err));
    assert_int_equal(err.code, JD_ELIMIT);
    assert_string_equal(err.where, "t.liquid:1:4");
    assert_string_equal(err.msg, "output exceeds 5 bytes (template.max_output)");
    tpl_scratch *s = tpl_scratch_create(64 * 1024);
    tpl_render_opts o3 = { .scratch = s };
    assert_null(render_opts("{% assign x = 'aaaaaaaaaaaaaaaa' %}{% for i in (1..20) %}{% assign x = x | append: x %}{% endfor %}", &o3, &err));
    assert_int_equal(err.code, JD_ELIMIT);
    assert_string_equal(err.msg, "render needs more than 65536 bytes of scratch memory (template.max_scratch)");
    tpl_scratch_destroy(s);
}

/* One compiled template, many renders with one scratch, output appended. */
static void test_reuse(void **state)
{
    (void)state;
    const char *src = "{% for i in event.items %}{{ i.sku | downcase | append: '!' }}{% endfor %}";
    tpl *t = NULL;
    jd_err err;
    assert_int_equal(tpl_compile(NULL, src, strlen(src), NULL, &t, &err), JD_OK);
    assert_string_equal(tpl_name(t), "template");
    tpl_scratch *s = tpl_scratch_create(0);
    tpl_render_opts o = { .scratch = s };
    jd_buf out;
    jd_buf_init(&out, 1 << 20);
    jd_buf_adds(&out, ">");
    for (int i = 0; i < 100; i++) assert_int_equal(tpl_render(t, vars, &o, &out, &err), JD_OK);
    assert_int_equal(out.len, 1 + 100 * 4);
    assert_memory_equal(out.data, ">a!b!a!b!", 9);
    assert_int_equal(tpl_render(t, NULL, NULL, &out, &err), JD_OK);   /* no vars: missing renders empty */
    jd_buf_release(&out);
    tpl_scratch_destroy(s);
    tpl_destroy(t);
    /* the source need not be NUL-terminated */
    assert_int_equal(tpl_compile("n", "{{ 1 }}xyz", 7, NULL, &t, &err), JD_OK);
    jd_buf_init(&out, 64);
    assert_int_equal(tpl_render(t, NULL, NULL, &out, &err), JD_OK);
    assert_string_equal(out.data, "1");
    jd_buf_release(&out);
    tpl_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_and_lookups),
        cmocka_unit_test(test_whitespace_control),
        cmocka_unit_test(test_if_unless_truthiness),
        cmocka_unit_test(test_case_when),
        cmocka_unit_test(test_for),
        cmocka_unit_test(test_assign_capture_raw_comment),
        cmocka_unit_test(test_string_filters),
        cmocka_unit_test(test_list_filters),
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_money),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_html_escaping),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_render_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_reuse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
