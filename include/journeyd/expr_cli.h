/* include/journeyd/expr_cli.h -- `journeyd eval`: evaluate one CEL expression.
 *
 * Owns: the command line of `journeyd eval 'EXPR' [--vars FILE.json] [--tz ZONE]`.
 * The vars file is a JSON object whose top-level keys become variables, each
 * declared dyn except `now`, a timestamp (RFC 3339 text in the file).
 * Prints the value in CEL's literal syntax on stdout and returns 0; on a
 * compile or evaluation error prints "error: <msg> at LINE:COL" on stderr and
 * returns 1; bad usage (or an unreadable vars file) returns 2.
 * Threading: main thread only (it writes stdout/stderr).
 * Not here: the expression language itself (expr.h).
 */
#ifndef JOURNEYD_EXPR_CLI_H
#define JOURNEYD_EXPR_CLI_H

/* argv[0] is "eval". Returns the process exit status. */
int expr_cli_eval(int argc, char **argv);

#endif
