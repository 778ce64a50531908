/* commands.h: the `owlore` subcommands. Each takes (argc, argv) with argv[0]
 * the subcommand name, prints its own --help, and returns the process exit
 * code (0 success, 1 failure with a message already printed, 2 bad usage). */
#ifndef OWLORE_CMD_COMMANDS_H
#define OWLORE_CMD_COMMANDS_H

#include "core/args.h"
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
int cmd_generate(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_probe(int argc, char **argv);

/* Prints "owlore <cmd>: error: <message>" and returns 1. */
#define OWLORE_VERSION "0.1.0"

int cmd_report_error(const char *cmd, const OwError *err);

/* args_parse with the command's --help: -1 when the command goes on, else its
 * exit code (2 after a bad flag, reported; 0 after printing the help). */
int cmd_args(const char *cmd, int argc, char **argv, const ArgSpec *specs, int nspecs, const char *usage,
             const char *description, ArgsResult *res);

/* The --device, --gpu-mem and --threads flags of the commands that compute. */
#define CMD_DEVICE_SPECS(device, gpu_mem, threads)                                       \
    {"device", ARG_STR, device, "DEV", "cuda | cuda:N | cpu | auto (default)", NULL},    \
        {"gpu-mem", ARG_SIZE, gpu_mem, "SIZE", "device memory cap, e.g. 24GiB", NULL}, { \
        "threads", ARG_INT, threads, "N", "CPU threads (0: all)", NULL                   \
    }

#endif
