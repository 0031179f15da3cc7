/* src/expr/cli.c -- `journeyd eval 'EXPR' [--vars FILE.json] [--tz ZONE]`.
 *
 * Invariants:
 *  (1) Exit status: 0 with the value on stdout; 1 with "error: <msg> at
 *      LINE:COL" on stderr for a compile or evaluation error; 2 for bad usage
 *      or a vars file that cannot be read or is not a JSON object.
 *  (2) Every top-level key of the vars file that is an identifier is declared
 *      dyn, except `now`, declared timestamp; without --vars there are no
 *      variables. Keys like "segment:vip" stay readable by in_segment(), and
 *      "consent:email/marketing" (or "consent:email") by consented(): eval
 *      has no profile store nor consent policy, so the answer is given, not
 *      worked out from profile.consent.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

#include "expr_int.h"
#include "journeyd/expr_cli.h"
#include "journeyd/tz.h"

#define VARS_MAX_BYTES (64u << 20)
#define CLI_SCRATCH    (16u << 20)

static const char usage[] =
    "usage: journeyd eval 'EXPR' [--vars FILE.json] [--tz ZONE]\n"
    "\n"
    "Compiles and evaluates one CEL expression (docs/expressions.md) and prints\n"
    "its value in CEL's literal syntax: 1, 1u, 2.5, \"text\", b\"\\x00\", [1, 2],\n"
    "{\"k\": v}, timestamp(\"2026-01-01T00:00:00Z\"), duration(\"90s\"), null, true.\n"
    "\n"
    "  --vars FILE.json  a JSON object; each top-level key is a variable (dyn),\n"
    "                    except \"now\", a timestamp given as RFC 3339 text.\n"
    "                    \"segment:ID\": true|false answers in_segment(\"ID\");\n"
    "                    \"consent:CHANNEL/TOPIC\" (\"consent:CHANNEL\"): true|false\n"
    "                    answers consented(\"CHANNEL\", \"TOPIC\") (consented(\"CHANNEL\")).\n"
    "  --tz ZONE         time zone for timestamp accessors called without one\n"
    "                    (IANA name or +HH:MM; default UTC)\n"
    "  --                the next argument is the expression (for one starting with '--')\n"
    "  --help            this text\n"
    "\n"
    "Exit status: 0 value printed; 1 \"error: MESSAGE at LINE:COL\" on stderr;\n"
    "2 bad usage or unreadable vars file.\n";

static int load_vars(const char *path, struct json_object **out)
{
    char *text = NULL;
    size_t len = 0;
    jd_err err;
    if (jd_read_file(path, VARS_MAX_BYTES, &text, &len, &err) != JD_OK) {
        fprintf(stderr, "error: %s: %s\n", path, err.msg);
        return 2;
    }
    enum json_tokener_error jerr = json_tokener_success;
    struct json_object *j = json_tokener_parse_verbose(text, &jerr);
    free(text);
    if (!j || !json_object_is_type(j, json_type_object)) {
        fprintf(stderr, "error: %s: %s\n", path,
                j ? "the vars file must hold a JSON object" : json_tokener_error_desc(jerr));
        json_object_put(j);
        return 2;
    }
    *out = j;
    return 0;
}

int expr_cli_eval(int argc, char **argv)
{
    int rc = 2;
    const char *src = NULL, *vars_path = NULL, *tz = NULL;
    struct json_object *vars = NULL;
    expr_decls *decls = NULL;
    expr_prog *prog = NULL;
    expr_scratch *scratch = NULL;
    jd_buf out;
    jd_buf_init(&out, 256u << 20);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            rc = 0;
            goto out;
        } else if (strcmp(argv[i], "--vars") == 0 && i + 1 < argc) {
            vars_path = argv[++i];
        } else if (strcmp(argv[i], "--tz") == 0 && i + 1 < argc) {
            tz = argv[++i];
        } else if (strcmp(argv[i], "--") == 0 && i + 1 < argc && !src) {
            src = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] == '-' && ((argv[i][2] | 0x20) >= 'a' && (argv[i][2] | 0x20) <= 'z')) {
            /* An option; "--5" (a double negation) is an expression. */
            fprintf(stderr, "error: unknown option '%s'\n%s", argv[i], usage);
            goto out;
        } else if (!src) {
            src = argv[i];
        } else {
            fprintf(stderr, "error: one expression only (got '%s' too)\n%s", argv[i], usage);
            goto out;
        }
    }
    if (!src) {
        fputs(usage, stderr);
        goto out;
    }
    if (tz && !jd_tz_valid(tz)) {
        fprintf(stderr, "error: unknown time zone '%s'\n", tz);
        goto out;
    }
    if (vars_path && (rc = load_vars(vars_path, &vars)) != 0) goto out;
    decls = expr_decls_json(vars);
    jd_err err;
    jd_err_clear(&err);
    rc = 1;
    if (expr_compile(src, strlen(src), decls, &prog, &err) != JD_OK) {
        fprintf(stderr, "error: %s at %s\n", err.msg, err.where);
        goto out;
    }
    expr_activation act;
    expr_activation_json(&act, vars);
    act.default_tz = tz;
    scratch = expr_scratch_create(CLI_SCRATCH);
    expr_val v;
    if (expr_eval(prog, &act, scratch, &v, &err) != JD_OK) {
        fprintf(stderr, "error: %s at %s\n", err.msg, err.where);
        goto out;
    }
    if (expr_val_format(&v, &out) != JD_OK) {
        fprintf(stderr, "error: the value is too large to print\n");
        goto out;
    }
    printf("%s\n", out.data ? out.data : "");
    rc = 0;
out:
    jd_buf_release(&out);
    expr_scratch_destroy(scratch);
    expr_prog_destroy(prog);
    expr_decls_destroy(decls);
    json_object_put(vars);
    return rc;
}
