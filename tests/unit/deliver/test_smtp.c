/* tests/unit/deliver/test_smtp.c -- email over SMTP against a real server:
 * aiosmtpd (Debian's python3-aiosmtpd, tests/unit/deliver/smtp_peer.py) run
 * with /usr/bin/python3 and stopped by its PID. The peer parses every message
 * it receives with Python's email package (an independent MIME
 * implementation) and writes what it found as JSON, which these tests read:
 * headers, both parts decoded, Message-ID, List-Unsubscribe, CRLF-only lines,
 * the line lengths; and the session: STARTTLS, AUTH. Faults: 451 then accept,
 * 550, wrong password, STARTTLS required but not offered, the server down then
 * up. Numbers in comments refer to src/deliver/mime.c's invariants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>

#include "peer.h"

#define PEER_PY "tests/unit/deliver/smtp_peer.py"

static results RS;
static char dir[64];
static pid_t peer_pid = -1;

static int setup(void **state)
{
    results_init(&RS);
    snprintf(dir, sizeof dir, "/tmp/jd-smtp-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    return 0;
}

static void stop_peer(void)
{
    if (peer_pid > 0) {
        kill(peer_pid, SIGTERM);
        waitpid(peer_pid, NULL, 0);
    }
    peer_pid = -1;
}

static int teardown(void **state)
{
    stop_peer();
    results_release(&RS);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!getenv("KEEP_SMTP_DIR") && system(cmd) != 0) return -1;
    return 0;
}

/* Starts smtp_peer.py on port with extra args (NULL-terminated); waits for
 * its "ready" line. */
static void start_peer(uint16_t port, ...)
{
    char ports[16];
    snprintf(ports, sizeof ports, "%u", port);
    const char *argv[16] = { "/usr/bin/python3", PEER_PY, ports, dir };
    size_t argc = 4;
    va_list ap;
    va_start(ap, port);
    for (const char *a; (a = va_arg(ap, const char *)) && argc < 15;) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    peer_pid = pid;
    char buf[64] = { 0 };
    size_t got = 0;
    struct pollfd pfd = { fd[0], POLLIN, 0 };
    while (got < sizeof buf - 1 && !strstr(buf, "ready\n")) {
        if (poll(&pfd, 1, 10000) <= 0) break;
        ssize_t r = read(fd[0], buf + got, sizeof buf - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd[0]);
    if (!strstr(buf, "ready")) fail_msg("smtp_peer.py did not start (is python3-aiosmtpd installed?)");
}

static size_t count_eml(void)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".eml") != NULL;
    if (d) closedir(d);
    return n;
}

static struct json_object *received(int n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%03d.json", dir, n);
    struct json_object *o = json_object_from_file(path);
    if (!o) fail_msg("no %s", path);
    return o;
}

static const char *jstr(struct json_object *o, const char *k)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null)) return NULL;
    return json_object_get_string(v);
}

/* Python hands text parts back with "\n"; ours are CRLF on the wire. */
static char *no_cr(const char *s)
{
    char *o = jd_xstrdup(s ? s : ""), *w = o;
    for (const char *p = o; *p; p++)
        if (*p != '\r') *w++ = *p;
    *w = 0;
    return o;
}

static dlv *start(const dlv_channel_cfg *ch)
{
    dlv_opts o = { .channels = ch, .nchannels = 1, .on_result = on_result, .on_unsent = on_unsent, .ctx = &RS,
                   .seed = 7 };
    dlv *d = NULL;
    jd_err err = { 0 };
    int rc = dlv_create(&d, &o, &err);
    if (rc != JD_OK) print_error("dlv_create: %s: %s\n", err.where, err.msg);
    assert_int_equal(rc, JD_OK);
    return d;
}

static dlv_channel_cfg mail_chan(const char *url)
{
    return (dlv_channel_cfg){
        .name = "email", .kind = DLV_EMAIL, .url = url, .from = "Acme <news@acme.example>",
        .tls = DLV_TLS_NONE, .timeout_us = 20 * JD_SEC, .connect_timeout_us = 5 * JD_SEC,
        .retry = { .max_attempts = 50, .backoff_base_us = 20000, .backoff_max_us = 60000 },
    };
}

static dlv_msg *simple(uint64_t id)
{
    dlv_msg *m = dlv_msg_create(id, DLV_EMAIL, "email", "ada@example.org");
    m->email.subject = jd_xstrdup("hello");
    m->email.text = jd_xstrdup("hi");
    return m;
}

static char *long_line(size_t n)
{
    char *s = jd_xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) s[i] = (char)('a' + i % 26);
    s[n] = 0;
    return s;
}

static void test_email_mime_as_python_reads_it(void **state)
{
    uint16_t port = free_port();
    start_peer(port, NULL);
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%u", port);
    dlv_channel_cfg ch = mail_chan(url);
    dlv *d = start(&ch);
    const char *subject = "Bienvenue, Zoë — votre offre 🎉 est prête pour vous dès aujourd'hui, et pour longtemps";
    char *ll = long_line(1200);
    char *text = jd_strfmt("Hello Zoë,\n.a line that starts with a dot\n.\nprice = 10 € \t \n%s\nbye\n", ll);
    const char *html = "<p>Hello <b>Zoë</b> &amp; co</p>\n<a href=\"https://acme.example/u?x=1&amp;t=2\">unsubscribe</a>\n";
    dlv_msg *m = dlv_msg_create(0xDEADBEEF, DLV_EMAIL, "email", "ada@example.org");
    m->email.from = jd_xstrdup("Acme Café <news@acme.example>");
    m->email.reply_to = jd_xstrdup("help@acme.example");
    m->email.subject = jd_xstrdup(subject);
    m->email.text = jd_xstrdup(text);
    m->email.html = jd_xstrdup(html);
    m->email.unsubscribe_url = jd_xstrdup("https://acme.example/unsub/one-click?t=abc");
    m->email.unsubscribe_mailto = jd_xstrdup("mailto:unsub@acme.example?subject=unsubscribe");
    assert_int_equal(dlv_submit(d, m, NULL), JD_OK);
    assert_int_equal(results_wait(&RS, 1, 10000), 1);
    dlv_destroy(d, JD_SEC);
    if (RS.r[0].outcome != DLV_SENT) fail_msg("not sent: %s", RS.r[0].error);
    assert_int_equal(RS.r[0].attempts, 1);
    assert_string_equal(RS.r[0].provider_id, "Q001");     /* "250 ... queued as Q001" */
    assert_int_equal(count_eml(), 1);

    struct json_object *o = received(1), *v;
    assert_string_equal(jstr(o, "mail_from"), "news@acme.example");
    assert_true(json_object_object_get_ex(o, "rcpt_tos", &v));
    assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 0)), "ada@example.org");
    assert_string_equal(jstr(o, "subject"), subject);                           /* RFC 2047 round trip */
    assert_string_equal(jstr(o, "from"), "Acme Café <news@acme.example>");
    assert_string_equal(jstr(o, "to"), "ada@example.org");
    assert_string_equal(jstr(o, "message_id"), "<00000000deadbeef@acme.example>");   /* (4) */
    assert_string_equal(jstr(o, "list_unsubscribe"),
                        "<https://acme.example/unsub/one-click?t=abc>, <mailto:unsub@acme.example?subject=unsubscribe>");
    assert_string_equal(jstr(o, "list_unsubscribe_post"), "List-Unsubscribe=One-Click");
    assert_string_equal(jstr(o, "content_type"), "multipart/alternative");
    assert_non_null(jstr(o, "date"));
    char *got_text = no_cr(jstr(o, "text")), *got_html = no_cr(jstr(o, "html"));
    assert_string_equal(got_text, text);        /* dots, trailing blanks, the 1200-char line: all back */
    assert_string_equal(got_html, html);
    free(got_text);
    free(got_html);
    assert_true(json_object_object_get_ex(o, "defects", &v));
    assert_int_equal(json_object_array_length(v), 0);
    assert_true(json_object_object_get_ex(o, "crlf_only", &v));
    assert_true(json_object_get_boolean(v));                                    /* (1) */
    assert_true(json_object_object_get_ex(o, "max_line", &v));
    assert_true(json_object_get_int(v) <= 78);
    json_object_put(o);
    free(ll);
    free(text);
}

static void test_email_single_part_html(void **state)
{
    uint16_t port = free_port();
    start_peer(port, NULL);
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%u", port);
    dlv_channel_cfg ch = mail_chan(url);
    ch.message_id_domain = "mail.acme.example";
    dlv *d = start(&ch);
    dlv_msg *m = dlv_msg_create(1, DLV_EMAIL, "email", "bob@example.org");
    m->email.subject = jd_xstrdup("Plain ASCII subject");
    m->email.html = jd_xstrdup("<h1>Only HTML</h1>");
    assert_int_equal(dlv_submit(d, m, NULL), JD_OK);
    assert_int_equal(results_wait(&RS, 1, 10000), 1);
    dlv_destroy(d, JD_SEC);
    assert_int_equal(RS.r[0].outcome, DLV_SENT);
    struct json_object *o = received(1);
    assert_string_equal(jstr(o, "content_type"), "text/html");
    assert_string_equal(jstr(o, "message_id"), "<0000000000000001@mail.acme.example>");
    assert_string_equal(jstr(o, "from"), "Acme <news@acme.example>");
    assert_null(jstr(o, "text"));
    char *h = no_cr(jstr(o, "html"));
    assert_string_equal(h, "<h1>Only HTML</h1>\n");
    free(h);
    json_object_put(o);
}

static void make_cert(char *cert, char *key, size_t n)
{
    snprintf(cert, n, "%s/cert.pem", dir);
    snprintf(key, n, "%s/key.pem", dir);
    char *cmd = jd_strfmt("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 "
                          "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1", key, cert);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static void test_email_starttls_and_auth(void **state)
{
    char cert[128], key[128];
    make_cert(cert, key, sizeof cert);
    uint16_t port = free_port();
    start_peer(port, "--tls", cert, key, "--auth", "mailer:s3cret", NULL);
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%u", port);
    dlv_channel_cfg ch = mail_chan(url);
    ch.tls = DLV_TLS_REQUIRED;
    ch.ca_file = cert;
    ch.user = "mailer";
    ch.password = "s3cret";
    dlv *d = start(&ch);
    assert_int_equal(dlv_submit(d, simple(1), NULL), JD_OK);
    assert_int_equal(results_wait(&RS, 1, 10000), 1);
    dlv_destroy(d, JD_SEC);
    if (RS.r[0].outcome != DLV_SENT) fail_msg("not sent: %s", RS.r[0].error);
    struct json_object *o = received(1), *v;
    assert_true(json_object_object_get_ex(o, "tls", &v));
    assert_true(json_object_get_boolean(v));
    assert_string_equal(jstr(o, "auth"), "mailer");
    json_object_put(o);

    /* a wrong password is permanent: one attempt, the server's reply in the error */
    ch.password = "wrong";
    d = start(&ch);
    assert_int_equal(dlv_submit(d, simple(2), NULL), JD_OK);
    assert_int_equal(results_wait(&RS, 2, 10000), 2);
    dlv_destroy(d, JD_SEC);
    const got_result *g = result_of(&RS, 2);
    assert_int_equal(g->outcome, DLV_FAILED);
    assert_int_equal(g->attempts, 1);
    assert_int_equal(g->status, 535);
    assert_non_null(strstr(g->error, "SMTP 535"));
    assert_int_equal(count_eml(), 1);
}

static void test_email_starttls_required_but_not_offered(void **state)
{
    uint16_t port = free_port();
    start_peer(port, NULL);
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%u", port);
    dlv_channel_cfg ch = mail_chan(url);
    ch.tls = DLV_TLS_DEFAULT;                       /* required */
    dlv *d = start(&ch);
    assert_int_equal(dlv_submit(d, simple(3), NULL), JD_OK);
    assert_int_equal(results_wait(&RS, 1, 10000), 1);
    dlv_destroy(d, JD_SEC);
    assert_int_equal(RS.r[0].outcome, DLV_FAILED);
    assert_int_equal(RS.r[0].attempts, 1);
    assert_int_equal(count_eml(), 0);
    print_message("starttls refused: %s\n", RS.r[0].error);
}

static void test_email_451_then_accepted(void **state)
{
    uint16_t port = free_port();
    start_peer(port, "--rcpt-fail", "451:2", NULL);
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%u", port);
    dlv_channel_cfg ch = mail_chan(url);
    dlv *d = start(&ch);
    assert_int_equal(dlv_submit(d, simple(4), NULL), JD_OK);
    assert_int_equal(results_wait(&RS, 1, 10000), 1);
    dlv_destroy(d, JD_SEC);
    if (RS.r[0].outcome != DLV_SENT) fail_msg("not sent: %s", RS.r[0].error);
    assert_int_equal(RS.r[0].attempts, 3);
    assert_int_equal(count_eml(), 1);
}

static void test_email_550_permanent(void **state)
{
    uint16_t port = free_port();
    start_peer(port, "--rcpt-fail", "550:100", NULL);
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%u", port);
    dlv_channel_cfg ch = mail_chan(url);
    dlv *d = start(&ch);
    assert_int_equal(dlv_submit(d, simple(5), NULL), JD_OK);
    assert_int_equal(results_wait(&RS, 1, 10000), 1);
    dlv_destroy(d, JD_SEC);
    assert_int_equal(RS.r[0].outcome, DLV_FAILED);
    assert_int_equal(RS.r[0].attempts, 1);
    assert_int_equal(RS.r[0].status, 550);
    assert_string_equal(RS.r[0].error, "SMTP 550: 550 5.1.1 no such user");
    assert_int_equal(count_eml(), 0);
}

static void test_email_server_down_then_up(void **state)
{
    uint16_t port = free_port();
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%u", port);
    dlv_channel_cfg ch = mail_chan(url);
    dlv *d = start(&ch);
    assert_int_equal(dlv_submit(d, simple(6), NULL), JD_OK);
    sleep_ms(200);                                  /* connection refused meanwhile */
    assert_int_equal(RS.n, 0);
    start_peer(port, NULL);
    assert_int_equal(results_wait(&RS, 1, 10000), 1);
    sleep_ms(100);
    dlv_destroy(d, JD_SEC);
    if (RS.r[0].outcome != DLV_SENT) fail_msg("not sent: %s", RS.r[0].error);
    assert_true(RS.r[0].attempts >= 2);
    assert_int_equal(count_eml(), 1);               /* one message */
    struct json_object *o = received(1);
    assert_string_equal(jstr(o, "message_id"), "<0000000000000006@acme.example>");
    json_object_put(o);
}

static void test_email_header_injection_refused(void **state)
{
    dlv_channel_cfg ch = mail_chan("smtp://127.0.0.1:9");
    dlv *d = start(&ch);
    dlv_msg *m = simple(7);
    free(m->email.subject);
    m->email.subject = jd_xstrdup("hi\r\nBcc: victim@example.org");
    assert_int_equal(dlv_submit(d, m, NULL), JD_OK);
    m = simple(8);
    free(m->to);
    m->to = jd_xstrdup("a@b.c, c@d.e");
    assert_int_equal(dlv_submit(d, m, NULL), JD_OK);
    assert_int_equal(results_wait(&RS, 2, 5000), 2);
    dlv_destroy(d, JD_SEC);
    assert_int_equal(result_of(&RS, 7)->outcome, DLV_FAILED);
    assert_int_equal(result_of(&RS, 7)->attempts, 0);
    assert_string_equal(result_of(&RS, 7)->error, "invalid message: control character in a header");
    assert_string_equal(result_of(&RS, 8)->error, "invalid message: recipient is not an email address");
}

int main(void)
{
    if (access(PEER_PY, R_OK) != 0) {
        fprintf(stderr, "run from the repository root (%s not found)\n", PEER_PY);
        return 1;
    }
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_email_mime_as_python_reads_it),
        T(test_email_single_part_html),
        T(test_email_starttls_and_auth),
        T(test_email_starttls_required_but_not_offered),
        T(test_email_451_then_accepted),
        T(test_email_550_permanent),
        T(test_email_server_down_then_up),
        T(test_email_header_injection_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
