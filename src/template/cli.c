/* src/template/cli.c -- `journeyd render TEMPLATE_FILE --vars FILE.json [--html]
 * [--now RFC3339] [--currency CODE]`: preview a message template.
 *
 * Invariants:
 *  (1) Exit status: 0 with the rendered text on stdout exactly as rendered (no
 *      newline added); 2 with "FILE:LINE:COL: error: MSG" on stderr for a
 *      template error (compile or render); 2 with "error: ..." for bad usage or
 *      unreadable files.
 *  (2) The command reads no clock: `date: "now"` needs --now (time is an input).
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

#include "tpl_int.h"

#define VARS_MAX_BYTES (64u << 20)

static const char usage[] =
    "usage: journeyd render TEMPLATE_FILE [--vars FILE.json] [--html] [--now RFC3339] [--currency CODE]\n"
    "\n"
    "Compiles a Liquid template (docs/templates.md) and prints what it renders.\n"
    "\n"
    "  --vars FILE.json  a JSON object: its top-level keys (profile, event, journey,\n"
    "                    message, ...) are the template's variables\n"
    "  --html            escape every {{ }} output for HTML, as an email's HTML body is\n"
    "  --now RFC3339     the time `date` uses for \"now\" and \"today\" (no default:\n"
    "                    journeyd never reads the clock while rendering)\n"
    "  --currency CODE   ISO 4217 code for `money` without an argument (default USD)\n"
    "  --help            this text\n"
    "\n"
    "Exit status: 0 rendered; 2 \"FILE:LINE:COL: error: MESSAGE\" on stderr, or bad usage.\n";

int tpl_cli_render(int argc, char **argv)
{
    int rc = 2;
    const char *path = NULL, *vars_path = NULL, *now = NULL, *currency = NULL;
    bool html = false;
    char *src = NULL, *vtext = NULL;
    size_t n = 0, vn = 0;
    struct json_object *vars = NULL;
    tpl *t = NULL;
    jd_buf out;
    jd_buf_init(&out, JD_TPL_MAX_OUTPUT + 1);
    jd_err err;
    jd_err_clear(&err);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            rc = 0;
            goto out;
        } else if (strcmp(argv[i], "--vars") == 0 && i + 1 < argc) {
            vars_path = argv[++i];
        } else if (strcmp(argv[i], "--now") == 0 && i + 1 < argc) {
            now = argv[++i];
        } else if (strcmp(argv[i], "--currency") == 0 && i + 1 < argc) {
            currency = argv[++i];
        } else if (strcmp(argv[i], "--html") == 0) {
            html = true;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "error: unknown option '%s'\n%s", argv[i], usage);
            goto out;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "error: one template file only (got '%s' too)\n%s", argv[i], usage);
            goto out;
        }
    }
    if (!path) {
        fputs(usage, stderr);
        goto out;
    }
    tpl_render_opts o = { .html = html, .currency = currency };
    if (now) {
        if (jd_time_parse(now, strlen(now), &o.now_us) != JD_OK) {
            fprintf(stderr, "error: --now '%s' is not RFC 3339 time (2026-03-29T12:00:00Z)\n", now);
            goto out;
        }
        o.has_now = true;
    }
    if (jd_read_file(path, JD_TPL_MAX_SOURCE + 1, &src, &n, &err) != JD_OK) {
        fprintf(stderr, "error: %s: %s\n", path, err.msg[0] ? err.msg : "cannot read");
        goto out;
    }
    if (vars_path) {
        if (jd_read_file(vars_path, VARS_MAX_BYTES, &vtext, &vn, &err) != JD_OK) {
            fprintf(stderr, "error: %s: %s\n", vars_path, err.msg[0] ? err.msg : "cannot read");
            goto out;
        }
        enum json_tokener_error jerr = json_tokener_success;
        vars = json_tokener_parse_verbose(vtext, &jerr);
        if (!vars || !json_object_is_type(vars, json_type_object)) {
            fprintf(stderr, "error: %s: %s\n", vars_path,
                    vars ? "the vars file must hold a JSON object" : json_tokener_error_desc(jerr));
            goto out;
        }
    }
    jd_err_clear(&err);
    if (tpl_compile(path, src, n, NULL, &t, &err) != JD_OK || tpl_render(t, vars, &o, &out, &err) != JD_OK) {
        fprintf(stderr, "%s: error: %s\n", err.where, err.msg);
        goto out;
    }
    if (out.len) fwrite(out.data, 1, out.len, stdout);
    rc = 0;
out:
    jd_buf_release(&out);
    tpl_destroy(t);
    json_object_put(vars);
    free(src);
    free(vtext);
    return rc;
}
