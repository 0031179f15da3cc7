/* include/journeyd/journey_cli.h -- `journeyd validate FILE...`.
 *
 * Owns: the validate subcommand (main.c's command table calls it). Checks each
 * journey file with jrn_doc_parse against the default environment; prints
 * "<file>: ok (<n> nodes)" on stdout for each good file and every diagnostic of
 * the bad ones on stderr ("<file>:<line>:<col>: node '<id>': <message>").
 * Not here: loading journeys into a running server.
 */
#ifndef JOURNEYD_JOURNEY_CLI_H
#define JOURNEYD_JOURNEY_CLI_H

/* argv[0] is "validate". Returns the exit status: 0 all files good, 1 at least
 * one bad (or unreadable), 2 bad usage. --help prints usage and returns 0. */
int jrn_cli_validate(int argc, char **argv);

/* `journeyd simulate --journey FILE --events FILE.ndjson [--until T] [--json]`:
 * replays recorded events through a journey on a virtual clock and prints the
 * intents each person would have received and the per-node funnel. Returns 0,
 * 1 (bad journey or event line), or 2 (usage). argv[0] is "simulate". */
int jrn_cli_simulate(int argc, char **argv);

#endif
