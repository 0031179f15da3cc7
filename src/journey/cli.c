/* src/journey/cli.c -- `journeyd validate FILE...`: check journey documents the
 * way a compiler checks sources, every error at once, for people and for CI.
 *
 * Invariants:
 *  (1) Every file named is checked, even after a bad one: one run lists every
 *      problem in every file.
 *  (2) stdout gets one "ok" line per good file; stderr gets the diagnostics (and
 *      nothing else), so `2>errors.txt` is a clean list.
 *  (3) Exit status: 0 every file good, 1 any file bad or unreadable, 2 usage.
 */
#include "journeyd/journey_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journey_int.h"

static const char validate_help[] =
    "usage: journeyd validate FILE...\n\n"
    "Checks journey documents (YAML, or JSON) and reports every problem at once,\n"
    "one per line: FILE:LINE:COL: node 'ID': MESSAGE. Prints \"FILE: ok (N nodes)\"\n"
    "for each good file. Exit status: 0 all good, 1 a file is bad, 2 usage.\n"
    "The format is described in docs/journeys.md.\n\n"
    "options:\n"
    "  -h, --help   this help\n";

static int validate_file(const char *path)
{
    char *text = NULL;
    size_t n = 0;
    jd_err err;
    jd_err_clear(&err);
    int rc = jd_read_file(path, JRN_MAX_DOC_BYTES, &text, &n, &err);
    if (rc != JD_OK) {
        if (rc == JD_ELIMIT)
            fprintf(stderr, "%s: larger than %u bytes\n", path, JRN_MAX_DOC_BYTES);
        else if (rc == JD_ENOTFOUND)
            fprintf(stderr, "%s: no such file\n", path);
        else
            fprintf(stderr, "%s: %s\n", path, err.msg[0] ? err.msg : jd_strerror(rc));
        return 1;
    }
    jrn_diags diags = { 0 };
    jrn_doc *doc = NULL;
    rc = jrn_doc_parse(path, text, n, NULL, &doc, &diags);
    if (rc == JD_OK) {
        printf("%s: ok (%u node%s)\n", path, doc->nnodes, doc->nnodes == 1 ? "" : "s");
    } else {
        jd_buf out;
        jd_buf_init(&out, (size_t)1 << 26);
        jrn_diags_format(&diags, &out);
        fputs(out.data ? out.data : "", stderr);
        jd_buf_release(&out);
    }
    jrn_doc_destroy(doc);
    jrn_diags_release(&diags);
    free(text);
    return rc == JD_OK ? 0 : 1;
}

int jrn_cli_validate(int argc, char **argv)
{
    int nfiles = 0;
    bool files_only = false;   /* after "--" every argument is a file */
    for (int i = 1; i < argc; i++) {
        if (!files_only && strcmp(argv[i], "--") == 0) {
            files_only = true;
        } else if (!files_only && (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)) {
            fputs(validate_help, stdout);
            return 0;
        } else if (!files_only && argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "journeyd validate: unknown option '%s'\n%s", argv[i], validate_help);
            return 2;
        } else {
            nfiles++;
        }
    }
    if (nfiles == 0) {
        fprintf(stderr, "journeyd validate: no file given\n%s", validate_help);
        return 2;
    }
    int status = 0;
    files_only = false;
    for (int i = 1; i < argc; i++) {
        if (!files_only && strcmp(argv[i], "--") == 0) {
            files_only = true;
            continue;
        }
        if (validate_file(argv[i]) != 0) status = 1;
    }
    fflush(stdout);
    return status;
}
