/* commands.h: the `owlore` subcommands. Each takes (argc, argv) with argv[0]
 * the subcommand name, prints its own --help, and returns the process exit
 * code (0 success, 1 failure with a message already printed, 2 bad usage). */
#ifndef OWLORE_CMD_COMMANDS_H
#define OWLORE_CMD_COMMANDS_H

#include "core/error.h"

int cmd_version(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_outliers(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);

/* Prints "owlore <cmd>: error: <message>" and returns 1. */
#define OWLORE_VERSION "0.1.0"

int cmd_report_error(const char *cmd, const OwError *err);

#endif
