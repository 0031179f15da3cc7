/* tests/unit/base/test_config.c -- settings: defaults, YAML files, flags, and the
 * one-line errors that name file:line:col and the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "journeyd/config.h"
#include "journeyd/limits.h"

static char *write_tmp(const char *text)
{
    char *path = jd_xstrdup("/tmp/jd-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* Loads text as a config file; returns the rc and fills err. */
static int load(jd_config *c, const char *text, jd_err *err, char **path_out)
{
    char *path = write_tmp(text);
    int rc = jd_config_load_file(c, path, err);
    if (path_out) *path_out = path;
    else { unlink(path); free(path); }
    return rc;
}

static void test_defaults(void **state)
{
    (void)state;
    jd_config c;
    jd_config_init(&c);
    assert_string_equal(c.data_dir, "data");
    assert_int_equal(c.listen_port, 8080);
    assert_int_equal(c.partitions, JD_DEF_PARTITIONS);
    assert_int_equal(c.max_message_bytes, 32 * 1024);
    assert_int_equal(c.max_batch_bytes, 500 * 1024);
    assert_int_equal(c.dedupe_window_us, 24 * JD_HOUR);
    jd_err err;
    assert_int_equal(jd_config_check(&c, &err), JD_OK);
    jd_config_release(&c);
}

static void test_file_nested_and_lists(void **state)
{
    (void)state;
    jd_config c;
    jd_config_init(&c);
    jd_err err;
    int rc = load(&c,
                  "# comment\n"
                  "data: /var/lib/journeyd\n"
                  "listen: '[::1]:9000'\n"
                  "write_keys: [k1, k2]\n"
                  "admin_tokens:\n  - t1\n"
                  "engine:\n  shards: 3\n  partitions: 128\n"
                  "dedupe:\n  window: 1h30m\n"
                  "limits.max_batch_bytes: 1MiB\n"
                  "log:\n  segment_bytes: 8MiB\n",
                  &err, NULL);
    if (rc != JD_OK) fail_msg("%s: %s", err.where, err.msg);
    assert_string_equal(c.data_dir, "/var/lib/journeyd");
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 9000);
    assert_int_equal(c.n_write_keys, 2);
    assert_string_equal(c.write_keys[1], "k2");
    assert_int_equal(c.n_admin_tokens, 1);
    assert_int_equal(c.shards, 3);
    assert_int_equal(c.partitions, 128);
    assert_int_equal(c.dedupe_window_us, 90 * JD_MIN);
    assert_int_equal(c.max_batch_bytes, 1024 * 1024);
    assert_int_equal(c.segment_bytes, 8 * 1024 * 1024);
    jd_config_release(&c);
}

static void test_errors_name_file_line_column_and_key(void **state)
{
    (void)state;
    static const struct { const char *text; const char *where_suffix; const char *msg_part; } cases[] = {
        { "engine:\n  shardz: 2\n", ":2:3", "unknown setting 'engine.shardz'" },
        { "engine:\n  shards: two\n", ":2:11", "engine.shards: expected a whole number, got 'two'" },
        { "engine:\n  shards: 9999\n", ":2:11", "engine.shards: 9999 is out of range 0..256" },
        { "listen: nowhere\n", ":1:9", "listen: expected HOST:PORT, got 'nowhere'" },
        { "dedupe:\n  window: soon\n", ":2:11", "dedupe.window: expected a duration" },
        { "limits:\n  max_batch_bytes: lots\n", ":2:20", "limits.max_batch_bytes: expected a size" },
        { "log_level: loud\n", ":1:12", "log_level: expected debug, info, warn or error" },
        { "data: [a, b]\n", ":1:1", "data: expected a single value" },
        { "data: a\ndata: b\n", ":2:1", "duplicate key 'data'" },
        { "a: &x 1\nb: *x\n", ":1:4", "anchors are not supported" },
        { "data: 'unterminated\n", ":", "" },
        { "- just\n- a list\n", ":1:1", "expected a map of settings" },
    };
    for (size_t i = 0; i < JD_ARRAY_LEN(cases); i++) {
        jd_config c;
        jd_config_init(&c);
        jd_err err;
        char *path;
        assert_int_not_equal(load(&c, cases[i].text, &err, &path), JD_OK);
        char want[256];
        snprintf(want, sizeof want, "%s%s", path, cases[i].where_suffix);
        if (strncmp(err.where, want, strlen(want)) != 0 || !strstr(err.msg, cases[i].msg_part))
            fail_msg("case %zu: got '%s: %s', want '%s: %s...'", i, err.where, err.msg, want, cases[i].msg_part);
        unlink(path);
        free(path);
        jd_config_release(&c);
    }
}

static void test_set_and_check(void **state)
{
    (void)state;
    jd_config c;
    jd_config_init(&c);
    jd_err err;
    assert_int_equal(jd_config_set(&c, "engine.partitions", "48", "--set", &err), JD_OK);
    assert_int_equal(jd_config_check(&c, &err), JD_EINVAL);
    assert_string_equal(err.msg, "engine.partitions must be a power of two, got 48");
    assert_int_equal(jd_config_set(&c, "nope", "1", "--set", &err), JD_EINVAL);
    assert_string_equal(err.where, "--set");
    assert_string_equal(err.msg, "unknown setting 'nope'");
    assert_int_equal(jd_config_set(&c, "write_keys", "", "--write-key", &err), JD_EINVAL);
    assert_int_equal(jd_config_set(&c, "listen", "0.0.0.0:0", "--listen", &err), JD_OK);
    assert_int_equal(c.listen_port, 0);
    jd_config_release(&c);
}

static void test_yaml_tree_positions(void **state)
{
    (void)state;
    const char *text = "journey:\n  id: welcome\n  nodes:\n    - id: a\n      wait: 3d\n";
    jd_yaml_doc *d;
    const jd_yaml_node *root;
    jd_err err;
    assert_int_equal(jd_yaml_parse("w.yaml", text, strlen(text), &d, &root, &err), JD_OK);
    const jd_yaml_node *nodes = jd_yaml_get(jd_yaml_get(root, "journey"), "nodes");
    assert_non_null(nodes);
    assert_int_equal(nodes->kind, JD_YAML_SEQ);
    const jd_yaml_node *wait = jd_yaml_get(nodes->child, "wait");
    assert_string_equal(wait->text, "3d");
    assert_int_equal(wait->line, 5);
    assert_int_equal(wait->col, 13);
    jd_yaml_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_nested_and_lists),
        cmocka_unit_test(test_errors_name_file_line_column_and_key),
        cmocka_unit_test(test_set_and_check),
        cmocka_unit_test(test_yaml_tree_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
