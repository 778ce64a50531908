/* args.h: command-line flags for the owlore commands.
 *
 * Each command declares a table of ArgSpec; args_parse fills the destinations,
 * collects positional arguments, and recognises --help. Flags take
 * "--name value" or "--name=value"; a bool flag takes no value ("--flag"), or
 * an explicit "--flag=true|false". Dashes and underscores in names are
 * interchangeable, so recipe keys (update_gap) and flags (--update-gap) match. */
#ifndef OWLORE_CORE_ARGS_H
#define OWLORE_CORE_ARGS_H

#include "core/error.h"

#include <stdint.h>
#include <stdio.h>

typedef enum { ARG_STR, ARG_INT, ARG_FLOAT, ARG_BOOL, ARG_SIZE } ArgType;

typedef struct ArgSpec {
    const char *name; /* without leading dashes, e.g. "gpu-mem" */
    ArgType type;
    void *dest;          /* const char **, int64_t *, double *, int *, size_t * */
    const char *metavar; /* shown in help, e.g. "DIR" */
    const char *help;
    int *seen; /* optional: set to 1 when the flag was given */
} ArgSpec;

typedef struct ArgsResult {
    int help; /* --help or -h was given */
    int npos;
    const char *pos[16]; /* positional arguments */
} ArgsResult;

/* Parses argv[1..argc-1] (argv[0] is the command name). Returns 0 or -1 with a
 * message naming the flag and the hint to run --help. */
int args_parse(int argc, char **argv, const ArgSpec *specs, int nspecs, ArgsResult *res, OwError *err);
void args_print_help(FILE *out, const char *usage, const char *description, const ArgSpec *specs, int nspecs);
/* Canonical comparison treating '-' and '_' alike. */
int args_name_eq(const char *a, const char *b);

#endif
